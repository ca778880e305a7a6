/**
 * attention_backward_q: one thread per (query head, token): the softmax row P and dS = P (dP −
 * Σ P dP) / sqrt(head_dim) recomputed from q and the caches, kept for attention_backward_kv, and
 * dq = dS K.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { ATTENTION_MAX_HEAD_DIM } from '../tuning.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of attention_backward_q.wgsl. */
export const ATTENTION_BACKWARD_Q_PARAMS = [
  ['n_heads', 'u32'], // query heads
  ['n_kv_heads', 'u32'], // key/value heads
  ['head_dim', 'u32'], // at most ATTENTION_MAX_HEAD_DIM
  ['kv_offset', 'u32'], // this layer's first cache element
  ['pitch', 'u32'] // row length of probs / dscores
] as const
export type AttentionBackwardQParams = ParamValues<typeof ATTENTION_BACKWARD_Q_PARAMS>

export function packAttentionBackwardQParams(p: AttentionBackwardQParams): Uint32Array {
  return packParams('attention_backward_q', ATTENTION_BACKWARD_Q_PARAMS, p)
}

export interface AttentionBackwardQBuffers {
  /** (T, n_heads * head_dim) rotated queries */
  readonly q: GPUBuffer
  /** (layers, rows, kv_dim) rotated keys and values, as rope.wgsl wrote them */
  readonly kCache: GPUBuffer
  readonly vCache: GPUBuffer
  /** (T, n_heads * head_dim) gradient of the attention output */
  readonly datt: GPUBuffer
  /** (T, n_heads * head_dim) */
  readonly dq: GPUBuffer
  /** (n_heads, pitch, pitch) softmax rows, written */
  readonly probs: GPUBuffer
  /** (n_heads, pitch, pitch) dS rows, written */
  readonly dscores: GPUBuffer
  readonly step: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function attentionBackwardQKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'attention_backward_q', overrides: { WG: ctx.tuning.elementwiseWg } }
}

export async function attentionBackwardQ(ctx: GpuContext, label: string, b: AttentionBackwardQBuffers, p: AttentionBackwardQParams): Promise<Dispatch> {
  if (p.head_dim > ATTENTION_MAX_HEAD_DIM) throw new RangeError(`attention_backward_q: head_dim ${p.head_dim} above ${ATTENTION_MAX_HEAD_DIM}`)
  const pipeline = await ctx.pipelines.get(attentionBackwardQKey(ctx))
  const params = ctx.uniform(`${label}.params`, packAttentionBackwardQParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.q], [1, b.kCache], [2, b.vCache], [3, b.datt], [4, b.dq], [5, b.probs], [6, b.dscores], [7, b.step], [8, params]])
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil((t * p.n_heads) / ctx.tuning.elementwiseWg)))
}
