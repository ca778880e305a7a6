/**
 * moe_down: moe[t] = Σ_k weight[t, k] W2_slot h[t, k] over each token's routes (NONE skipped).
 *
 * @module
 */
import { dispatch, type Dispatch, type GpuContext } from '../context.ts'
import type { GpuMatrix } from '../upload.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of moe_down.wgsl. */
export const MOE_DOWN_PARAMS = [
  ['rows', 'u32'], // model width
  ['cols', 'u32'], // expert hidden width
  ['stride', 'u32'], // 4-column groups per weight row
  ['slot_size', 'u32'], // rows * stride
  ['top_k', 'u32'], // routes per token
  ['layer', 'u32'], // this layer
  ['n_layers', 'u32'] // route rows per token
] as const
export type MoeDownParams = ParamValues<typeof MOE_DOWN_PARAMS>

export function packMoeDownParams(p: MoeDownParams): Uint32Array {
  return packParams('moe_down', MOE_DOWN_PARAMS, p)
}

export interface MoeDownBuffers {
  /** pool (slots, dim, stride) */
  readonly w2: GpuMatrix
  /** (T, top_k, hidden) */
  readonly h: GPUBuffer
  /** (T, n_layers, top_k) Route */
  readonly routes: GPUBuffer
  /** (T, dim) */
  readonly moe: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` for int8 or f32 expert pools (its cache key). */
export function moeDownKey(ctx: GpuContext, int8: boolean): PipelineKey {
  return {
    kernel: 'moe_down',
    defines: int8 ? (ctx.features.packed4x8 ? ['INT8', 'PACKED'] : ['INT8']) : [],
    overrides: { WG: ctx.tuning.moeWg, TPR: ctx.tuning.moeThreadsPerRow }
  }
}

export async function moeDown(ctx: GpuContext, label: string, b: MoeDownBuffers, p: { topK: number; layer: number; nLayers: number }): Promise<Dispatch> {
  const int8 = b.w2.dtype === 'int8'
  const pipeline = await ctx.pipelines.get(moeDownKey(ctx, int8))
  const { rows, cols, stride } = b.w2
  const params = ctx.uniform(`${label}.params`, packMoeDownParams({ rows, cols, stride, slot_size: rows * stride, top_k: p.topK, layer: p.layer, n_layers: p.nLayers }))
  const entries: [number, GPUBuffer][] = [[0, b.w2.weights], [2, b.h], [3, b.routes], [4, b.moe], [5, params]]
  if (int8) entries.push([1, b.w2.scales as GPUBuffer])
  const groups = Math.ceil(rows / (ctx.tuning.moeWg / ctx.tuning.moeThreadsPerRow))
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), (t) => [groups, t, 1])
}
