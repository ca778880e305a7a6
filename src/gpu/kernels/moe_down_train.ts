/**
 * moe_down_train: each route's expert output W2 g before its routing weight (training forward).
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import { poolDefines, trainedOffsets, type RouteParams, type TrainExperts } from './_experts.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of moe_down_train.wgsl. */
export const MOE_DOWN_TRAIN_PARAMS = [
  ['dim', 'u32'], // model width: output rows
  ['hidden', 'u32'], // expert hidden width
  ['stride', 'u32'], // per W2 row
  ['top_k', 'u32'], // routes per token
  ['layer', 'u32'], // this layer
  ['n_layers', 'u32'], // route rows per token
  ['target_layer', 'u32'], // the trained expert's layer
  ['target_expert', 'u32'], // the trained expert
  ['rows_max', 'u32'], // rows of each of h1, h3, g
  ['w2_offset', 'u32'] // first vec4 of W2 in the trained buffer
] as const
export type MoeDownTrainParams = ParamValues<typeof MOE_DOWN_TRAIN_PARAMS>

export function packMoeDownTrainParams(p: MoeDownTrainParams): Uint32Array {
  return packParams('moe_down_train', MOE_DOWN_TRAIN_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` for int8 or f32 pools (its cache key). */
export function moeDownTrainKey(ctx: GpuContext, int8: boolean): PipelineKey {
  return { kernel: 'moe_down_train', defines: poolDefines(int8, ctx.features.packed4x8), overrides: { WG: ctx.tuning.elementwiseWg } }
}

export interface MoeDownTrainBuffers {
  readonly experts: TrainExperts
  /** h1, h3, g: each (rowsMax, hidden) */
  readonly hs: GPUBuffer
  /** (T, n_layers, top_k) Route */
  readonly routes: GPUBuffer
  /** (T * top_k, dim) */
  readonly out: GPUBuffer
  readonly step: GPUBuffer
}

export async function moeDownTrain(ctx: GpuContext, label: string, b: MoeDownTrainBuffers, p: RouteParams): Promise<Dispatch> {
  const x = b.experts
  const int8 = x.dtype === 'int8'
  const pipeline = await ctx.pipelines.get(moeDownTrainKey(ctx, int8))
  const params = ctx.uniform(`${label}.params`, packMoeDownTrainParams({
    dim: x.dim, hidden: x.hidden, stride: x.strideH, top_k: p.topK, layer: p.layer, n_layers: p.nLayers,
    target_layer: p.targetLayer, target_expert: p.targetExpert, rows_max: p.rowsMax, w2_offset: trainedOffsets(x).w2 / 4
  }))
  const entries: [number, GPUBuffer][] = [[0, x.w2], [2, x.trained], [3, b.hs], [4, b.routes], [5, b.out], [6, b.step], [7, params]]
  if (int8) entries.push([1, x.s2 as GPUBuffer])
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), (t) => grid1d(Math.ceil((t * p.topK * x.dim) / ctx.tuning.elementwiseWg)))
}
