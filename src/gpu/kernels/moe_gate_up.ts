/**
 * moe_gate_up: h[t, k] = silu(W1_slot x[t]) ⊙ (W3_slot x[t]) for each route of each token, the
 * weights picked from the expert pool by the slot the router wrote (NONE: zeros).
 *
 * @module
 */
import { dispatch, type Dispatch, type GpuContext } from '../context.ts'
import type { GpuMatrix } from '../upload.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of moe_gate_up.wgsl. */
export const MOE_GATE_UP_PARAMS = [
  ['rows', 'u32'], // expert hidden width
  ['cols', 'u32'], // model width
  ['stride', 'u32'], // 4-column groups per weight row
  ['slot_size', 'u32'], // rows * stride
  ['top_k', 'u32'], // routes per token
  ['layer', 'u32'], // this layer
  ['n_layers', 'u32'] // route rows per token
] as const
export type MoeGateUpParams = ParamValues<typeof MOE_GATE_UP_PARAMS>

export function packMoeGateUpParams(p: MoeGateUpParams): Uint32Array {
  return packParams('moe_gate_up', MOE_GATE_UP_PARAMS, p)
}

export interface MoeGateUpBuffers {
  /** pools (slots, hidden, stride) */
  readonly w1: GpuMatrix
  readonly w3: GpuMatrix
  /** (T, dim) ffn-normed input */
  readonly x: GPUBuffer
  /** (T, n_layers, top_k) Route */
  readonly routes: GPUBuffer
  /** (T, top_k, hidden) */
  readonly h: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` for int8 or f32 expert pools (its cache key). */
export function moeGateUpKey(ctx: GpuContext, int8: boolean): PipelineKey {
  return {
    kernel: 'moe_gate_up',
    defines: int8 ? (ctx.features.packed4x8 ? ['INT8', 'PACKED'] : ['INT8']) : [],
    overrides: { WG: ctx.tuning.moeWg, TPR: ctx.tuning.moeThreadsPerRow }
  }
}

export async function moeGateUp(ctx: GpuContext, label: string, b: MoeGateUpBuffers, p: { topK: number; layer: number; nLayers: number }): Promise<Dispatch> {
  const int8 = b.w1.dtype === 'int8'
  if (b.w3.dtype !== b.w1.dtype) throw new TypeError('moe_gate_up: w1 and w3 pools must share a dtype')
  const pipeline = await ctx.pipelines.get(moeGateUpKey(ctx, int8))
  const { rows, cols, stride } = b.w1
  const params = ctx.uniform(`${label}.params`, packMoeGateUpParams({ rows, cols, stride, slot_size: rows * stride, top_k: p.topK, layer: p.layer, n_layers: p.nLayers }))
  const entries: [number, GPUBuffer][] = [[0, b.w1.weights], [1, b.w3.weights], [4, b.x], [5, b.routes], [6, b.h], [7, params]]
  if (int8) entries.push([2, b.w1.scales as GPUBuffer], [3, b.w3.scales as GPUBuffer])
  const groups = Math.ceil(rows / (ctx.tuning.moeWg / ctx.tuning.moeThreadsPerRow))
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), (t) => [groups, t * p.topK, 1])
}
