/**
 * attention_train: causal attention for the training forward, one thread per (query head, token)
 * with an online softmax: attention.wgsl's result without workgroup reductions.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { ATTENTION_MAX_HEAD_DIM } from '../tuning.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of attention_train.wgsl. */
export const ATTENTION_TRAIN_PARAMS = [
  ['n_heads', 'u32'], // query heads
  ['n_kv_heads', 'u32'], // key/value heads
  ['head_dim', 'u32'], // at most ATTENTION_MAX_HEAD_DIM
  ['kv_offset', 'u32'] // this layer's first cache element
] as const
export type AttentionTrainParams = ParamValues<typeof ATTENTION_TRAIN_PARAMS>

export function packAttentionTrainParams(p: AttentionTrainParams): Uint32Array {
  return packParams('attention_train', ATTENTION_TRAIN_PARAMS, p)
}

export interface AttentionTrainBuffers {
  /** (T, n_heads * head_dim) rotated queries */
  readonly q: GPUBuffer
  /** (layers, rows, kv_dim) rotated keys and values, as rope.wgsl wrote them */
  readonly kCache: GPUBuffer
  readonly vCache: GPUBuffer
  /** (T, n_heads * head_dim) */
  readonly out: GPUBuffer
  readonly step: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function attentionTrainKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'attention_train', overrides: { WG: ctx.tuning.elementwiseWg } }
}

export async function attentionTrain(ctx: GpuContext, label: string, b: AttentionTrainBuffers, p: AttentionTrainParams): Promise<Dispatch> {
  if (p.head_dim > ATTENTION_MAX_HEAD_DIM) throw new RangeError(`attention_train: head_dim ${p.head_dim} above ${ATTENTION_MAX_HEAD_DIM}`)
  const pipeline = await ctx.pipelines.get(attentionTrainKey(ctx))
  const params = ctx.uniform(`${label}.params`, packAttentionTrainParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.q], [1, b.kCache], [2, b.vCache], [3, b.out], [4, b.step], [5, params]])
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil((t * p.n_heads) / ctx.tuning.elementwiseWg)))
}
