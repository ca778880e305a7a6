/**
 * rmsnorm: y[t] = w ⊙ x[t] / sqrt(mean(x[t]²) + eps), one workgroup per token row; `lastOnly`
 * normalises only the pass's last row, into row 0 (the final norm before the classifier).
 *
 * @module
 */
import { dispatch, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of rmsnorm.wgsl. */
export const RMSNORM_PARAMS = [
  ['n', 'u32'], // row length
  ['eps', 'f32'], // norm epsilon
  ['last_only', 'u32'] // 1: only the last row, into row 0
] as const
export type RmsnormParams = ParamValues<typeof RMSNORM_PARAMS>

export function packRmsnormParams(p: RmsnormParams): Uint32Array {
  return packParams('rmsnorm', RMSNORM_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function rmsnormKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'rmsnorm', overrides: { WG: ctx.tuning.normWg } }
}

export async function rmsnorm(ctx: GpuContext, label: string, x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, step: GPUBuffer, p: { n: number; eps: number; lastOnly?: boolean }): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(rmsnormKey(ctx))
  const lastOnly = p.lastOnly === true
  const params = ctx.uniform(`${label}.params`, packRmsnormParams({ n: p.n, eps: p.eps, last_only: lastOnly ? 1 : 0 }))
  const bg = ctx.bindGroup(label, pipeline, [[0, x], [1, w], [2, y], [3, step], [4, params]])
  return dispatch(label, pipeline, bg, (t) => [lastOnly ? 1 : t, 1, 1])
}
