/**
 * matmul: Y = X Wᵀ (+ bias) for the tokens of a prefill pass (GEMM), int8 (INT8) or float32
 * weights; both variants share Params (the same fields as matvec: the GEMM is the GEMV over T rows of X).
 *
 * @module
 */
import { dispatch, type Dispatch, type GpuContext } from '../context.ts'
import { MATMUL_ROWS_PER_THREAD } from '../tuning.ts'
import type { GpuMatrix } from '../upload.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of matmul.wgsl. */
export const MATMUL_PARAMS = [
  ['rows', 'u32'], // output rows (R)
  ['cols', 'u32'], // input length (C)
  ['stride', 'u32'], // 4-column groups per weight row
  ['x_offset', 'u32'], // first element of X
  ['y_offset', 'u32'], // first element of Y
  ['has_bias', 'u32'] // 1: add bias[r]
] as const
export type MatmulParams = ParamValues<typeof MATMUL_PARAMS>

export function packMatmulParams(p: MatmulParams): Uint32Array {
  return packParams('matmul', MATMUL_PARAMS, p)
}

export interface MatmulOptions {
  readonly bias?: GPUBuffer | null
  readonly xOffset?: number
  readonly yOffset?: number
}

/** The pipeline this kernel runs on `ctx` for int8 or f32 weights (its cache key). */
export function matmulKey(ctx: GpuContext, int8: boolean): PipelineKey {
  return {
    kernel: 'matmul',
    defines: int8 ? (ctx.features.packed4x8 ? ['INT8', 'PACKED'] : ['INT8']) : [],
    overrides: { TILE_T: ctx.tuning.matmulTileT, ROW_LANES: ctx.tuning.matmulRowLanes, TILE_K: ctx.tuning.matmulTileK }
  }
}

/** Y[t, r] = (W X[t])[r] (+ bias[r]) for t < step.n_tokens; X (T, cols), Y (T, rows) dense. */
export async function matmul(ctx: GpuContext, label: string, w: GpuMatrix, x: GPUBuffer, y: GPUBuffer, step: GPUBuffer, o: MatmulOptions = {}): Promise<Dispatch> {
  const int8 = w.dtype === 'int8'
  const pipeline = await ctx.pipelines.get(matmulKey(ctx, int8))
  const bias = o.bias ?? null
  const params = ctx.uniform(`${label}.params`, packMatmulParams({
    rows: w.rows, cols: w.cols, stride: w.stride, x_offset: o.xOffset ?? 0, y_offset: o.yOffset ?? 0, has_bias: bias === null ? 0 : 1
  }))
  const b = bias ?? ctx.dummy
  const entries: [number, GPUBuffer][] = int8
    ? [[0, w.weights], [1, w.scales as GPUBuffer], [2, x], [3, y], [4, b], [5, step], [6, params]]
    : [[0, w.weights], [1, x], [2, y], [3, b], [4, step], [5, params]]
  const { matmulRowLanes, matmulTileT } = ctx.tuning
  const tileR = matmulRowLanes * MATMUL_ROWS_PER_THREAD
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), (t) => [Math.ceil(w.rows / tileR), Math.ceil(t / matmulTileT), 1])
}
