/**
 * moe_combine: out-of-place residual add y = x + Σ_k w_k e_k (+ gate · s), for the training
 * forward, which keeps each residual.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of moe_combine.wgsl. */
export const MOE_COMBINE_PARAMS = [
  ['cols', 'u32'], // row length
  ['terms', 'u32'], // e rows per token
  ['use_routes', 'u32'], // 1: weight term k by its route
  ['layer', 'u32'], // this layer
  ['n_layers', 'u32'], // route rows per token
  ['has_s', 'u32'], // 1: add gate * s
  ['gated', 'u32'] // 1: gate = sigmoid(z[t])
] as const
export type MoeCombineParams = ParamValues<typeof MOE_COMBINE_PARAMS>

export function packMoeCombineParams(p: MoeCombineParams): Uint32Array {
  return packParams('moe_combine', MOE_COMBINE_PARAMS, p)
}

export interface MoeCombineBuffers {
  /** (T, cols) */
  readonly x: GPUBuffer
  /** (T, terms, cols) */
  readonly e: GPUBuffer
  /** (T, cols) */
  readonly y: GPUBuffer
  readonly step: GPUBuffer
  /** (T, n_layers, terms) Route: weights of the terms; absent: weight 1 */
  readonly routes?: GPUBuffer | null
  /** (T, cols) an extra term (the shared expert) */
  readonly s?: GPUBuffer | null
  /** (T) gate logits of s: scaled by sigmoid(z[t]) */
  readonly z?: GPUBuffer | null
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function moeCombineKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'moe_combine', overrides: { WG: ctx.tuning.elementwiseWg } }
}

export async function moeCombine(ctx: GpuContext, label: string, b: MoeCombineBuffers, p: { cols: number; terms: number; layer?: number; nLayers?: number }): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(moeCombineKey(ctx))
  const routes = b.routes ?? null
  const s = b.s ?? null
  const z = b.z ?? null
  const params = ctx.uniform(`${label}.params`, packMoeCombineParams({
    cols: p.cols, terms: p.terms, use_routes: routes === null ? 0 : 1, layer: p.layer ?? 0, n_layers: p.nLayers ?? 1,
    has_s: s === null ? 0 : 1, gated: z === null ? 0 : 1
  }))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.x], [1, b.e], [2, routes ?? ctx.dummy], [3, s ?? ctx.dummy], [4, z ?? ctx.dummy], [5, b.y], [6, b.step], [7, params]])
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil((t * p.cols) / ctx.tuning.elementwiseWg)))
}
