/**
 * attention: per (query head, token), softmax(q · K / sqrt(head_dim)) V over cached positions
 * 0 ..= pos + t, online softmax in tiles of the workgroup size.
 *
 * @module
 */
import { dispatch, type Dispatch, type GpuContext } from '../context.ts'
import { ATTENTION_MAX_HEAD_DIM, attentionWorkgroup } from '../tuning.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of attention.wgsl. */
export const ATTENTION_PARAMS = [
  ['n_heads', 'u32'], // query heads
  ['n_kv_heads', 'u32'], // key/value heads
  ['head_dim', 'u32'], // at most the workgroup size
  ['kv_offset', 'u32'] // layer * max_seq_len * kv_dim
] as const
export type AttentionParams = ParamValues<typeof ATTENTION_PARAMS>

export function packAttentionParams(p: AttentionParams): Uint32Array {
  return packParams('attention', ATTENTION_PARAMS, p)
}

export interface AttentionBuffers {
  /** (T, n_heads * head_dim) rotated queries */
  readonly q: GPUBuffer
  /** (n_layers, max_seq_len, kv_dim) */
  readonly kCache: GPUBuffer
  readonly vCache: GPUBuffer
  /** (T, n_heads * head_dim) */
  readonly out: GPUBuffer
  readonly step: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` for heads of `headDim` (its cache key). */
export function attentionKey(ctx: GpuContext, headDim: number): PipelineKey {
  return { kernel: 'attention', overrides: { WG: attentionWorkgroup(ctx.tuning, headDim) } }
}

export async function attention(ctx: GpuContext, label: string, b: AttentionBuffers, p: AttentionParams): Promise<Dispatch> {
  if (p.head_dim > ATTENTION_MAX_HEAD_DIM) throw new RangeError(`attention: head_dim ${p.head_dim} above ${ATTENTION_MAX_HEAD_DIM}`)
  const pipeline = await ctx.pipelines.get(attentionKey(ctx, p.head_dim))
  const params = ctx.uniform(`${label}.params`, packAttentionParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.q], [1, b.kCache], [2, b.vCache], [3, b.out], [4, b.step], [5, params]])
  return dispatch(label, pipeline, bg, (t) => [p.n_heads, t, 1])
}
