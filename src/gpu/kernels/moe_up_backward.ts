/**
 * moe_up_backward: dF (=|+=) Σ over each token's routes of W1ᵀ dh1 + W3ᵀ dh3.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import { poolDefines, type RouteParams, type TrainExperts } from './_experts.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of moe_up_backward.wgsl. */
export const MOE_UP_BACKWARD_PARAMS = [
  ['dim', 'u32'], // model width: dF row length
  ['hidden', 'u32'], // expert hidden width
  ['stride', 'u32'], // per W1 / W3 row
  ['top_k', 'u32'], // routes per token
  ['layer', 'u32'], // this layer
  ['n_layers', 'u32'], // route rows per token
  ['target_layer', 'u32'], // the trained expert's layer
  ['target_expert', 'u32'], // the trained expert
  ['rows_max', 'u32'], // rows of each part of dhs
  ['accumulate', 'u32'] // 1: dF += ...
] as const
export type MoeUpBackwardParams = ParamValues<typeof MOE_UP_BACKWARD_PARAMS>

export function packMoeUpBackwardParams(p: MoeUpBackwardParams): Uint32Array {
  return packParams('moe_up_backward', MOE_UP_BACKWARD_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` for int8 or f32 pools (its cache key). */
export function moeUpBackwardKey(ctx: GpuContext, int8: boolean): PipelineKey {
  return { kernel: 'moe_up_backward', defines: poolDefines(int8, ctx.features.packed4x8), overrides: { WG: ctx.tuning.elementwiseWg } }
}

export interface MoeUpBackwardBuffers {
  readonly experts: TrainExperts
  /** dh1, dh3: each (rowsMax, hidden), from moe_down_backward */
  readonly dhs: GPUBuffer
  /** (T, n_layers, top_k) Route */
  readonly routes: GPUBuffer
  /** (T, dim) */
  readonly df: GPUBuffer
  readonly step: GPUBuffer
}

export async function moeUpBackward(ctx: GpuContext, label: string, b: MoeUpBackwardBuffers, p: RouteParams & { readonly accumulate?: boolean }): Promise<Dispatch> {
  const x = b.experts
  const int8 = x.dtype === 'int8'
  const pipeline = await ctx.pipelines.get(moeUpBackwardKey(ctx, int8))
  const params = ctx.uniform(`${label}.params`, packMoeUpBackwardParams({
    dim: x.dim, hidden: x.hidden, stride: x.strideD, top_k: p.topK, layer: p.layer, n_layers: p.nLayers,
    target_layer: p.targetLayer, target_expert: p.targetExpert, rows_max: p.rowsMax, accumulate: p.accumulate === true ? 1 : 0
  }))
  const entries: [number, GPUBuffer][] = [[0, x.w13], [2, x.trained], [3, b.dhs], [4, b.routes], [5, b.df], [6, b.step], [7, params]]
  if (int8) entries.push([1, x.s13 as GPUBuffer])
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), (t) => grid1d(Math.ceil((t * x.strideD) / ctx.tuning.elementwiseWg)))
}
