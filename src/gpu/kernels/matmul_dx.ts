/**
 * matmul_dx: the input gradient of a projection, dX (=|+=) dY W for the tokens of a pass, int8
 * (INT8) or float32 weights in the forward's layout (upload.ts).
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import type { GpuMatrix } from '../upload.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** Tokens per thread, the `TPT` const of matmul_dx.wgsl. */
export const MATMUL_DX_TOKENS_PER_THREAD = 4

/** struct Params of matmul_dx.wgsl. */
export const MATMUL_DX_PARAMS = [
  ['rows', 'u32'], // weight rows R: a dY row
  ['cols', 'u32'], // weight columns C: a dX row
  ['stride', 'u32'], // 4-column groups per weight row
  ['accumulate', 'u32'] // 1: dX += dY W
] as const
export type MatmulDxParams = ParamValues<typeof MATMUL_DX_PARAMS>

export function packMatmulDxParams(p: MatmulDxParams): Uint32Array {
  return packParams('matmul_dx', MATMUL_DX_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` for int8 or f32 weights (its cache key). */
export function matmulDxKey(ctx: GpuContext, int8: boolean): PipelineKey {
  return { kernel: 'matmul_dx', defines: int8 ? (ctx.features.packed4x8 ? ['INT8', 'PACKED'] : ['INT8']) : [], overrides: { WG: ctx.tuning.elementwiseWg } }
}

/** dX (T, cols) = [dX +] dY (T, rows) · W (rows, cols) for t < step.n_tokens. */
export async function matmulDx(ctx: GpuContext, label: string, w: GpuMatrix, dy: GPUBuffer, dx: GPUBuffer, step: GPUBuffer, o: { accumulate?: boolean } = {}): Promise<Dispatch> {
  const int8 = w.dtype === 'int8'
  const pipeline = await ctx.pipelines.get(matmulDxKey(ctx, int8))
  const params = ctx.uniform(`${label}.params`, packMatmulDxParams({ rows: w.rows, cols: w.cols, stride: w.stride, accumulate: o.accumulate === true ? 1 : 0 }))
  const entries: [number, GPUBuffer][] = int8
    ? [[0, w.weights], [1, w.scales as GPUBuffer], [2, dy], [3, dx], [4, step], [5, params]]
    : [[0, w.weights], [1, dy], [2, dx], [3, step], [4, params]]
  const wg = ctx.tuning.elementwiseWg
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), (t) => grid1d(Math.ceil((w.stride * Math.ceil(t / MATMUL_DX_TOKENS_PER_THREAD)) / wg)))
}
