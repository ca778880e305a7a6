/**
 * matvec_int8 / matvec_f32: y = W x (+ bias) for one token (decode). Both shaders share Params.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import type { GpuMatrix } from '../upload.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of matvec_int8.wgsl and matvec_f32.wgsl. */
export const MATVEC_PARAMS = [
  ['rows', 'u32'], // output rows
  ['cols', 'u32'], // input length
  ['stride', 'u32'], // 4-column groups per weight row
  ['x_offset', 'u32'], // first element of x
  ['y_offset', 'u32'], // first element of y
  ['has_bias', 'u32'] // 1: add bias[r]
] as const
export type MatvecParams = ParamValues<typeof MATVEC_PARAMS>

export function packMatvecParams(p: MatvecParams): Uint32Array {
  return packParams('matvec', MATVEC_PARAMS, p)
}

export interface MatvecOptions {
  /** `scalar` forces the u32-per-load, workgroup-memory variant (benches compare it). @default 'auto' */
  readonly variant?: 'auto' | 'scalar'
  readonly bias?: GPUBuffer | null
  readonly xOffset?: number
  readonly yOffset?: number
}

/** The VEC4 variant applies: whole 16-byte weight rows and a 16-byte aligned x. */
export function vec4Rows(w: Pick<GpuMatrix, 'cols'>, xOffset: number): boolean {
  return w.cols % 16 === 0 && xOffset % 4 === 0
}

/**
 * The pipeline this kernel runs on `ctx` (its cache key): int8 or f32 weights, whether the VEC4
 * variant applies (vec4Rows), and the scalar variant forced (tests compare against it).
 */
export function matvecKey(ctx: GpuContext, o: { int8: boolean; vec4: boolean; scalar?: boolean }): PipelineKey {
  const defines: string[] = []
  const fast = o.int8 && o.scalar !== true
  if (o.int8 && ctx.features.packed4x8) defines.push('PACKED')
  if (fast && o.vec4) defines.push('VEC4')
  const tpr = ctx.tuning.matvecThreadsPerRow
  if (fast && tpr > 1 && tpr <= ctx.features.subgroupSize) defines.push('SUBGROUP')
  return {
    kernel: o.int8 ? 'matvec_int8' : 'matvec_f32',
    defines,
    overrides: o.int8
      ? { WG: ctx.tuning.matvecWg, TPR: ctx.tuning.matvecThreadsPerRow, RPT: ctx.tuning.matvecRowsPerThread }
      : { WG: ctx.tuning.matvecWg, TPR: ctx.tuning.matvecThreadsPerRow }
  }
}

/** y[yOffset + r] = (W x[xOffset..])[r] (+ bias[r]). */
export async function matvec(ctx: GpuContext, label: string, w: GpuMatrix, x: GPUBuffer, y: GPUBuffer, o: MatvecOptions = {}): Promise<Dispatch> {
  const int8 = w.dtype === 'int8'
  const pipeline = await ctx.pipelines.get(matvecKey(ctx, { int8, vec4: vec4Rows(w, o.xOffset ?? 0), scalar: o.variant === 'scalar' }))
  const bias = o.bias ?? null
  const params = ctx.uniform(`${label}.params`, packMatvecParams({
    rows: w.rows, cols: w.cols, stride: w.stride, x_offset: o.xOffset ?? 0, y_offset: o.yOffset ?? 0, has_bias: bias === null ? 0 : 1
  }))
  const b = bias ?? ctx.dummy
  const entries: [number, GPUBuffer][] = int8
    ? [[0, w.weights], [1, w.scales as GPUBuffer], [2, x], [3, y], [4, b], [5, params]]
    : [[0, w.weights], [1, x], [2, y], [3, b], [4, params]]
  const rowsPerGroup = (ctx.tuning.matvecWg / ctx.tuning.matvecThreadsPerRow) * (int8 ? ctx.tuning.matvecRowsPerThread : 1)
  const groups = grid1d(Math.ceil(w.rows / rowsPerGroup))
  return dispatch(label, pipeline, ctx.bindGroup(label, pipeline, entries), () => groups)
}
