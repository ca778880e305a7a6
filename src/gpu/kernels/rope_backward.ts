/**
 * rope_backward: the inverse rotation of RoPE, in place on the gradients of q and k.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of rope_backward.wgsl. */
export const ROPE_BACKWARD_PARAMS = [
  ['n_heads', 'u32'], // query heads
  ['n_kv_heads', 'u32'], // key/value heads
  ['head_dim', 'u32'], // even
  ['sin_offset', 'u32'] // max_seq_len * head_dim / 2
] as const
export type RopeBackwardParams = ParamValues<typeof ROPE_BACKWARD_PARAMS>

export function packRopeBackwardParams(p: RopeBackwardParams): Uint32Array {
  return packParams('rope_backward', ROPE_BACKWARD_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function ropeBackwardKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'rope_backward', overrides: { WG: ctx.tuning.elementwiseWg } }
}

/** dq (T, n_heads * hd), dk (T, n_kv * hd) rotated back in place; table as rope.ts's. */
export async function ropeBackward(ctx: GpuContext, label: string, dq: GPUBuffer, dk: GPUBuffer, table: GPUBuffer, step: GPUBuffer, p: RopeBackwardParams): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(ropeBackwardKey(ctx))
  const params = ctx.uniform(`${label}.params`, packRopeBackwardParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, dq], [1, dk], [2, table], [3, step], [4, params]])
  const perToken = ((p.n_heads + p.n_kv_heads) * p.head_dim) / 2
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil((t * perToken) / ctx.tuning.elementwiseWg)))
}
