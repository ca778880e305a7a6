/**
 * moe_down_backward: per route, dg = W2ᵀ (w dx[t]) and the SwiGLU backward to dh1, dh3; in
 * target-only mode just the trained expert's routes, keeping dy = w dx[t] for its W2 gradient.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import { poolDefines, trainedOffsets, type RouteParams, type TrainExperts } from './_experts.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of moe_down_backward.wgsl. */
export const MOE_DOWN_BACKWARD_PARAMS = [
  ['dim', 'u32'], // model width: W2 rows
  ['hidden', 'u32'], // expert hidden width: W2 columns
  ['stride', 'u32'], // per W2 row
  ['top_k', 'u32'], // routes per token
  ['layer', 'u32'], // this layer
  ['n_layers', 'u32'], // route rows per token
  ['target_layer', 'u32'], // the trained expert's layer
  ['target_expert', 'u32'], // the trained expert
  ['rows_max', 'u32'], // rows of each part of hs and dhs
  ['w2_offset', 'u32'], // first vec4 of W2 in the trained buffer
  ['target_only', 'u32'] // 1: only the trained expert's routes, keep dy
] as const
export type MoeDownBackwardParams = ParamValues<typeof MOE_DOWN_BACKWARD_PARAMS>

export function packMoeDownBackwardParams(p: MoeDownBackwardParams): Uint32Array {
  return packParams('moe_down_backward', MOE_DOWN_BACKWARD_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` for int8 or f32 pools (its cache key). */
export function moeDownBackwardKey(ctx: GpuContext, int8: boolean): PipelineKey {
  return { kernel: 'moe_down_backward', defines: poolDefines(int8, ctx.features.packed4x8), overrides: { WG: ctx.tuning.elementwiseWg } }
}

export interface MoeDownBackwardBuffers {
  readonly experts: TrainExperts
  /** (T, dim) gradient of the layer output */
  readonly dx: GPUBuffer
  /** h1, h3, g: each (rowsMax, hidden), from moe_up_train */
  readonly hs: GPUBuffer
  /** (T, n_layers, top_k) Route */
  readonly routes: GPUBuffer
  /** dh1 (rowsMax, hidden), dh3 (rowsMax, hidden), dy (rowsMax, dim) */
  readonly dhs: GPUBuffer
  readonly step: GPUBuffer
}

export async function moeDownBackward(ctx: GpuContext, label: string, b: MoeDownBackwardBuffers, p: RouteParams & { readonly targetOnly: boolean }): Promise<Dispatch> {
  const x = b.experts
  const int8 = x.dtype === 'int8'
  const pipeline = await ctx.pipelines.get(moeDownBackwardKey(ctx, int8))
  const params = ctx.uniform(`${label}.params`, packMoeDownBackwardParams({
    dim: x.dim, hidden: x.hidden, stride: x.strideH, top_k: p.topK, layer: p.layer, n_layers: p.nLayers,
    target_layer: p.targetLayer, target_expert: p.targetExpert, rows_max: p.rowsMax, w2_offset: trainedOffsets(x).w2 / 4,
    target_only: p.targetOnly ? 1 : 0
  }))
  const entries: [number, GPUBuffer][] = [[0, x.w2], [2, x.trained], [3, b.dx], [4, b.hs], [5, b.routes], [6, b.dhs], [7, b.step], [8, params]]
  if (int8) entries.push([1, x.s2 as GPUBuffer])
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), (t) => grid1d(Math.ceil((t * p.topK * x.hidden) / ctx.tuning.elementwiseWg)))
}
