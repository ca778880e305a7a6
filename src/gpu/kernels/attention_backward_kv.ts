/**
 * attention_backward_kv: dk and dv, one thread per (key row, key/value head, element), summed over
 * the queries that saw the row, from attention_backward_q's P and dS (passes from position 0).
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of attention_backward_kv.wgsl. */
export const ATTENTION_BACKWARD_KV_PARAMS = [
  ['n_heads', 'u32'], // query heads
  ['n_kv_heads', 'u32'], // key/value heads
  ['head_dim', 'u32'], // elements per head
  ['pitch', 'u32'] // row length of probs / dscores
] as const
export type AttentionBackwardKvParams = ParamValues<typeof ATTENTION_BACKWARD_KV_PARAMS>

export function packAttentionBackwardKvParams(p: AttentionBackwardKvParams): Uint32Array {
  return packParams('attention_backward_kv', ATTENTION_BACKWARD_KV_PARAMS, p)
}

export interface AttentionBackwardKvBuffers {
  /** (T, n_heads * head_dim) rotated queries */
  readonly q: GPUBuffer
  /** (T, n_heads * head_dim) gradient of the attention output */
  readonly datt: GPUBuffer
  /** (n_heads, pitch, pitch) from attention_backward_q */
  readonly probs: GPUBuffer
  readonly dscores: GPUBuffer
  /** (T, n_kv_heads * head_dim) gradients of the rotated keys and of the values */
  readonly dk: GPUBuffer
  readonly dv: GPUBuffer
  readonly step: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function attentionBackwardKvKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'attention_backward_kv', overrides: { WG: ctx.tuning.elementwiseWg } }
}

export async function attentionBackwardKv(ctx: GpuContext, label: string, b: AttentionBackwardKvBuffers, p: AttentionBackwardKvParams): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(attentionBackwardKvKey(ctx))
  const params = ctx.uniform(`${label}.params`, packAttentionBackwardKvParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.q], [1, b.datt], [2, b.probs], [3, b.dscores], [4, b.dk], [5, b.dv], [6, b.step], [7, params]])
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil((t * p.n_kv_heads * p.head_dim) / ctx.tuning.elementwiseWg)))
}
