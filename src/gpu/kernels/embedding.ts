/**
 * embedding: x[t] = dequant(E[tokens[t]]), a row gather from the (padded) embedding matrix.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import type { GpuMatrix } from '../upload.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of embedding.wgsl. */
export const EMBEDDING_PARAMS = [
  ['cols', 'u32'], // model width
  ['stride', 'u32'] // 4-column groups per row
] as const
export type EmbeddingParams = ParamValues<typeof EMBEDDING_PARAMS>

export function packEmbeddingParams(p: EmbeddingParams): Uint32Array {
  return packParams('embedding', EMBEDDING_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` for an int8 or f32 table (its cache key). */
export function embeddingKey(ctx: GpuContext, int8: boolean): PipelineKey {
  return { kernel: 'embedding', defines: int8 ? ['INT8'] : [], overrides: { WG: ctx.tuning.elementwiseWg } }
}

/** x (T, cols) = table[tokens[t]] for t < step.n_tokens; tokens (T) u32. */
export async function embedding(ctx: GpuContext, label: string, table: GpuMatrix, tokens: GPUBuffer, x: GPUBuffer, step: GPUBuffer): Promise<Dispatch> {
  const int8 = table.dtype === 'int8'
  const pipeline = await ctx.pipelines.get(embeddingKey(ctx, int8))
  const params = ctx.uniform(`${label}.params`, packEmbeddingParams({ cols: table.cols, stride: table.stride }))
  const entries: [number, GPUBuffer][] = [[0, table.weights], [2, tokens], [3, x], [4, step], [5, params]]
  if (int8) entries.push([1, table.scales as GPUBuffer])
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), (t) => grid1d(Math.ceil((t * table.cols) / ctx.tuning.elementwiseWg)))
}
