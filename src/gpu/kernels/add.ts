/**
 * add: the residual, y += a (+ gate ⊙ b, gate = sigmoid(g[t]) or 1).
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of add.wgsl. */
export const ADD_PARAMS = [
  ['cols', 'u32'], // row length
  ['has_b', 'u32'], // 1: add gate * b
  ['gated', 'u32'] // 1: gate = sigmoid(g[t])
] as const
export type AddParams = ParamValues<typeof ADD_PARAMS>

export function packAddParams(p: AddParams): Uint32Array {
  return packParams('add', ADD_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function addKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'add', overrides: { WG: ctx.tuning.elementwiseWg } }
}

/** y (T, cols) += a (+ sigmoid(g[t]) or 1 times b); b and g optional. */
export async function add(ctx: GpuContext, label: string, y: GPUBuffer, a: GPUBuffer, step: GPUBuffer, p: { cols: number; b?: GPUBuffer | null; g?: GPUBuffer | null }): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(addKey(ctx))
  const b = p.b ?? null
  const g = p.g ?? null
  const params = ctx.uniform(`${label}.params`, packAddParams({ cols: p.cols, has_b: b === null ? 0 : 1, gated: g === null ? 0 : 1 }))
  const bg = ctx.bindGroup(label, pipeline, [[0, y], [1, a], [2, b ?? ctx.dummy], [3, g ?? ctx.dummy], [4, step], [5, params]])
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil((t * p.cols) / ctx.tuning.elementwiseWg)))
}
