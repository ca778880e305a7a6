/**
 * moe_up_train: h1, h3 and g = silu(h1) ⊙ h3 of every route (training forward), frozen experts
 * from the pool, the trained one from its float32 buffer.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import { poolDefines, type RouteParams, type TrainExperts } from './_experts.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of moe_up_train.wgsl. */
export const MOE_UP_TRAIN_PARAMS = [
  ['hidden', 'u32'], // expert hidden width
  ['dim', 'u32'], // model width
  ['stride', 'u32'], // per W1 / W3 row
  ['top_k', 'u32'], // routes per token
  ['layer', 'u32'], // this layer
  ['n_layers', 'u32'], // route rows per token
  ['target_layer', 'u32'], // the trained expert's layer
  ['target_expert', 'u32'], // the trained expert
  ['rows_max', 'u32'] // rows of each of h1, h3, g
] as const
export type MoeUpTrainParams = ParamValues<typeof MOE_UP_TRAIN_PARAMS>

export function packMoeUpTrainParams(p: MoeUpTrainParams): Uint32Array {
  return packParams('moe_up_train', MOE_UP_TRAIN_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` for int8 or f32 pools (its cache key). */
export function moeUpTrainKey(ctx: GpuContext, int8: boolean): PipelineKey {
  return { kernel: 'moe_up_train', defines: poolDefines(int8, ctx.features.packed4x8), overrides: { WG: ctx.tuning.elementwiseWg } }
}

export interface MoeUpTrainBuffers {
  readonly experts: TrainExperts
  /** (T, dim) ffn-normed input */
  readonly x: GPUBuffer
  /** (T, n_layers, top_k) Route */
  readonly routes: GPUBuffer
  /** h1, h3, g: each (rowsMax, hidden) */
  readonly hs: GPUBuffer
  readonly step: GPUBuffer
}

export async function moeUpTrain(ctx: GpuContext, label: string, b: MoeUpTrainBuffers, p: RouteParams): Promise<Dispatch> {
  const x = b.experts
  const int8 = x.dtype === 'int8'
  const pipeline = await ctx.pipelines.get(moeUpTrainKey(ctx, int8))
  const params = ctx.uniform(`${label}.params`, packMoeUpTrainParams({
    hidden: x.hidden, dim: x.dim, stride: x.strideD, top_k: p.topK, layer: p.layer, n_layers: p.nLayers,
    target_layer: p.targetLayer, target_expert: p.targetExpert, rows_max: p.rowsMax
  }))
  const entries: [number, GPUBuffer][] = [[0, x.w13], [2, x.trained], [3, b.x], [4, b.routes], [5, b.hs], [6, b.step], [7, params]]
  if (int8) entries.push([1, x.s13 as GPUBuffer])
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), (t) => grid1d(Math.ceil((t * p.topK * x.hidden) / ctx.tuning.elementwiseWg)))
}
