/**
 * rmsnorm_backward: the input gradient of RMSNorm per row, written or added to the residual
 * gradient.
 *
 * @module
 */
import { dispatch, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of rmsnorm_backward.wgsl. */
export const RMSNORM_BACKWARD_PARAMS = [
  ['n', 'u32'], // row length
  ['eps', 'f32'], // norm epsilon
  ['accumulate', 'u32'] // 1: out += dx
] as const
export type RmsnormBackwardParams = ParamValues<typeof RMSNORM_BACKWARD_PARAMS>

export function packRmsnormBackwardParams(p: RmsnormBackwardParams): Uint32Array {
  return packParams('rmsnorm_backward', RMSNORM_BACKWARD_PARAMS, p)
}

/**
 * The pipeline this kernel runs on `ctx` (its cache key): normWg threads, matvecThreadsPerRow of
 * them per row (the GEMV's choice: 1 on software adapters, where barriers are slow).
 */
export function rmsnormBackwardKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'rmsnorm_backward', overrides: { WG: ctx.tuning.normWg, TPR: ctx.tuning.matvecThreadsPerRow } }
}

/** out (T, n) [+]= d rmsnorm(x) · w / dx given dy, for t < step.n_tokens. */
export async function rmsnormBackward(ctx: GpuContext, label: string, dy: GPUBuffer, x: GPUBuffer, w: GPUBuffer, out: GPUBuffer, step: GPUBuffer, p: { n: number; eps: number; accumulate?: boolean }): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(rmsnormBackwardKey(ctx))
  const params = ctx.uniform(`${label}.params`, packRmsnormBackwardParams({ n: p.n, eps: p.eps, accumulate: p.accumulate === true ? 1 : 0 }))
  const bg = ctx.bindGroup(label, pipeline, [[0, dy], [1, x], [2, w], [3, out], [4, step], [5, params]])
  const rows = ctx.tuning.normWg / ctx.tuning.matvecThreadsPerRow
  return dispatch(label, pipeline, bg, (t) => [Math.ceil(t / rows), 1, 1])
}
