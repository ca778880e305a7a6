/**
 * rope: rotate q and k of the pass's tokens by the shared cos/sin table, and store k, v in the
 * layer's KV cache rows pos .. pos + T - 1.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of rope.wgsl. */
export const ROPE_PARAMS = [
  ['n_heads', 'u32'], // query heads
  ['n_kv_heads', 'u32'], // key/value heads
  ['head_dim', 'u32'], // even
  ['kv_offset', 'u32'], // layer * max_seq_len * kv_dim
  ['sin_offset', 'u32'] // max_seq_len * head_dim / 2
] as const
export type RopeParams = ParamValues<typeof ROPE_PARAMS>

export function packRopeParams(p: RopeParams): Uint32Array {
  return packParams('rope', ROPE_PARAMS, p)
}

export interface RopeBuffers {
  /** (T, n_heads * head_dim), rotated in place */
  readonly q: GPUBuffer
  /** (T, kv_dim) */
  readonly k: GPUBuffer
  /** (T, kv_dim) */
  readonly v: GPUBuffer
  /** (n_layers, max_seq_len, kv_dim) */
  readonly kCache: GPUBuffer
  readonly vCache: GPUBuffer
  /** cos (max_seq_len, head_dim / 2) then sin */
  readonly table: GPUBuffer
  readonly step: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function ropeKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'rope', overrides: { WG: ctx.tuning.elementwiseWg } }
}

export async function rope(ctx: GpuContext, label: string, b: RopeBuffers, p: RopeParams): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(ropeKey(ctx))
  const params = ctx.uniform(`${label}.params`, packRopeParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.q], [1, b.k], [2, b.v], [3, b.kCache], [4, b.vCache], [5, b.table], [6, b.step], [7, params]])
  const perToken = ((p.n_heads + p.n_kv_heads) * p.head_dim) / 2
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil((t * perToken) / ctx.tuning.elementwiseWg)))
}
