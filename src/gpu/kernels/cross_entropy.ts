/**
 * cross_entropy: per-position next-token loss and its logit gradient, scaled by a per-step factor.
 *
 * @module
 */
import { dispatch, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of cross_entropy.wgsl. */
export const CROSS_ENTROPY_PARAMS = [
  ['vocab', 'u32'], // logits per position
  ['target_offset', 'u32'] // target of position t: tokens[t + target_offset]
] as const
export type CrossEntropyParams = ParamValues<typeof CROSS_ENTROPY_PARAMS>

export function packCrossEntropyParams(p: CrossEntropyParams): Uint32Array {
  return packParams('cross_entropy', CROSS_ENTROPY_PARAMS, p)
}

export interface CrossEntropyBuffers {
  /** (T, vocab) */
  readonly logits: GPUBuffer
  /** (T + target_offset) u32 token ids */
  readonly tokens: GPUBuffer
  /** (1) float32: the gradient's scale (1 / positions of the batch) */
  readonly scale: GPUBuffer
  /** (T, vocab) */
  readonly dlogits: GPUBuffer
  /** (T) loss of each position */
  readonly losses: GPUBuffer
  readonly step: GPUBuffer
}

/**
 * The pipeline this kernel runs on `ctx` (its cache key): normWg threads, matvecThreadsPerRow of
 * them per row (the GEMV's choice: 1 on software adapters, where barriers are slow).
 */
export function crossEntropyKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'cross_entropy', overrides: { WG: ctx.tuning.normWg, TPR: ctx.tuning.matvecThreadsPerRow } }
}

export async function crossEntropy(ctx: GpuContext, label: string, b: CrossEntropyBuffers, p: CrossEntropyParams): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(crossEntropyKey(ctx))
  const params = ctx.uniform(`${label}.params`, packCrossEntropyParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.logits], [1, b.tokens], [2, b.scale], [3, b.dlogits], [4, b.losses], [5, b.step], [6, params]])
  const rows = ctx.tuning.normWg / ctx.tuning.matvecThreadsPerRow
  return dispatch(label, pipeline, bg, (t) => [Math.ceil(t / rows), 1, 1])
}
