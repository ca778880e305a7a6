/**
 * router: top-k experts per token (ties to the lower index), their weights, their pool slots from
 * the residency table; non-resident picks go to the `missing` list.
 *
 * @module
 */
import type { RouterWeighting } from '../../chain/meta.ts'
import { dispatch, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** The residency table's and the routes' "not resident" slot. */
export const NO_SLOT = 0xffffffff
/** Bytes of one Route { expert: u32, slot: u32, weight: f32 }. */
export const ROUTE_BYTES = 12
/** router_weighting as the kernel's `weighting` code. */
export const WEIGHTING_CODE: Readonly<Record<RouterWeighting, number>> = Object.freeze({ softmax: 0, softmax_topk: 1, unit: 2 })

/** struct Params of router.wgsl. */
export const ROUTER_PARAMS = [
  ['n_experts', 'u32'], // experts in the layer
  ['top_k', 'u32'], // experts per token
  ['weighting', 'u32'], // WEIGHTING_CODE
  ['layer', 'u32'], // this layer
  ['n_layers', 'u32'], // route rows per token
  ['capacity', 'u32'] // (layer, expert) pairs `missing` holds
] as const
export type RouterParams = ParamValues<typeof ROUTER_PARAMS>

export function packRouterParams(p: RouterParams): Uint32Array {
  return packParams('router', ROUTER_PARAMS, p)
}

export interface RouterBuffers {
  /** (T, n_experts) router logits */
  readonly logits: GPUBuffer
  /** (n_layers, n_experts) u32: slot or NO_SLOT */
  readonly residency: GPUBuffer
  /** (T, n_layers, top_k) Route */
  readonly routes: GPUBuffer
  /** u32: count, then (layer, expert) pairs */
  readonly missing: GPUBuffer
  readonly step: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function routerKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'router', overrides: { WG: ctx.tuning.routerWg } }
}

export async function router(ctx: GpuContext, label: string, b: RouterBuffers, p: RouterParams): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(routerKey(ctx))
  const params = ctx.uniform(`${label}.params`, packRouterParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.logits], [1, b.residency], [2, b.routes], [3, b.missing], [4, b.step], [5, params]])
  return dispatch(label, pipeline, bg, (t) => [Math.ceil(t / ctx.tuning.routerWg), 1, 1])
}
