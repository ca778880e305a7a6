/**
 * weight_grad: a weight gradient dW += dYᵀ X over the rows of a pass (per token or per route),
 * float32, in the kernel layout of a float32 matrix (rows padded to whole vec4s).
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** Weight rows per thread, the `RB` const of weight_grad.wgsl. */
export const WEIGHT_GRAD_ROWS_PER_THREAD = 4

/** struct Params of weight_grad.wgsl. */
export const WEIGHT_GRAD_PARAMS = [
  ['rows', 'u32'], // dW rows R
  ['cols', 'u32'], // dW columns C
  ['stride', 'u32'], // 4-column groups per dW row
  ['per_token', 'u32'], // rows s per token
  ['dy_div', 'u32'], // dY row of s: s / dy_div
  ['x_div', 'u32'], // X row of s: s / x_div
  ['dy_offset', 'u32'], // first element of dY
  ['x_offset', 'u32'], // first element of X
  ['dw_offset', 'u32'] // first element of dW
] as const
export type WeightGradParams = ParamValues<typeof WEIGHT_GRAD_PARAMS>

export function packWeightGradParams(p: WeightGradParams): Uint32Array {
  return packParams('weight_grad', WEIGHT_GRAD_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function weightGradKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'weight_grad', overrides: { WG: ctx.tuning.elementwiseWg } }
}

export interface WeightGradShape {
  readonly rows: number
  readonly cols: number
  /** Rows s per token (top_k for per-route rows). @default 1 */
  readonly perToken?: number
  /** dY row of s is s / dyDiv. @default 1 */
  readonly dyDiv?: number
  /** X row of s is s / xDiv. @default 1 */
  readonly xDiv?: number
  readonly dyOffset?: number
  readonly xOffset?: number
  readonly dwOffset?: number
}

/** dW (rows, ceil(cols / 4) * 4) += Σ_s dY[s / dyDiv]ᵀ X[s / xDiv] over s < step.n_tokens * perToken. */
export async function weightGrad(ctx: GpuContext, label: string, dy: GPUBuffer, x: GPUBuffer, dw: GPUBuffer, step: GPUBuffer, p: WeightGradShape): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(weightGradKey(ctx))
  const stride = Math.ceil(p.cols / 4)
  const params = ctx.uniform(`${label}.params`, packWeightGradParams({
    rows: p.rows, cols: p.cols, stride, per_token: p.perToken ?? 1, dy_div: p.dyDiv ?? 1, x_div: p.xDiv ?? 1,
    dy_offset: p.dyOffset ?? 0, x_offset: p.xOffset ?? 0, dw_offset: p.dwOffset ?? 0
  }))
  const bg = ctx.bindGroup(label, pipeline, [[0, dy], [1, x], [2, dw], [3, step], [4, params]])
  const groups = grid1d(Math.ceil((stride * Math.ceil(p.rows / WEIGHT_GRAD_ROWS_PER_THREAD)) / ctx.tuning.elementwiseWg))
  return dispatch(label, pipeline, bg, () => groups)
}
