/**
 * router_backward: gradients of the router logits through the routing weights (softmax over all
 * experts or over the selected ones), for dF += dr · gate.
 *
 * @module
 */
import type { RouterWeighting } from '../../chain/meta.ts'
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import { WEIGHTING_CODE } from './router.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of router_backward.wgsl. */
export const ROUTER_BACKWARD_PARAMS = [
  ['n_experts', 'u32'], // experts in the layer
  ['top_k', 'u32'], // routes per token
  ['weighting', 'u32'], // WEIGHTING_CODE (softmax or softmax_topk)
  ['layer', 'u32'], // this layer
  ['n_layers', 'u32'], // route rows per token
  ['dim', 'u32'] // model width
] as const
export type RouterBackwardParams = ParamValues<typeof ROUTER_BACKWARD_PARAMS>

export function packRouterBackwardParams(p: RouterBackwardParams): Uint32Array {
  return packParams('router_backward', ROUTER_BACKWARD_PARAMS, p)
}

export interface RouterBackwardBuffers {
  /** (T, dim) gradient of the layer output */
  readonly dx: GPUBuffer
  /** (T, top_k, dim) expert outputs before weighting */
  readonly e: GPUBuffer
  /** (T, n_layers, top_k) Route */
  readonly routes: GPUBuffer
  /** (T, n_experts) router logits */
  readonly logits: GPUBuffer
  /** (T, n_experts) */
  readonly dr: GPUBuffer
  readonly step: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function routerBackwardKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'router_backward', overrides: { WG: ctx.tuning.routerWg } }
}

export async function routerBackward(ctx: GpuContext, label: string, b: RouterBackwardBuffers, p: { nExperts: number; topK: number; weighting: RouterWeighting; layer: number; nLayers: number; dim: number }): Promise<Dispatch> {
  if (p.weighting === 'unit') throw new RangeError('router_backward: unit routing weights have no gradient')
  const pipeline = await ctx.pipelines.get(routerBackwardKey(ctx))
  const params = ctx.uniform(`${label}.params`, packRouterBackwardParams({
    n_experts: p.nExperts, top_k: p.topK, weighting: WEIGHTING_CODE[p.weighting], layer: p.layer, n_layers: p.nLayers, dim: p.dim
  }))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.dx], [1, b.e], [2, b.routes], [3, b.logits], [4, b.dr], [5, b.step], [6, params]])
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil(t / ctx.tuning.routerWg)))
}
