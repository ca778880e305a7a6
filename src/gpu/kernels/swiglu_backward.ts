/**
 * swiglu_backward: da, db of h = gate[t] · silu(a) ⊙ b from dg (the shared expert's backward).
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of swiglu_backward.wgsl. */
export const SWIGLU_BACKWARD_PARAMS = [
  ['cols', 'u32'], // row length
  ['gated', 'u32'] // 1: scale row t by sigmoid(z[t])
] as const
export type SwigluBackwardParams = ParamValues<typeof SWIGLU_BACKWARD_PARAMS>

export function packSwigluBackwardParams(p: SwigluBackwardParams): Uint32Array {
  return packParams('swiglu_backward', SWIGLU_BACKWARD_PARAMS, p)
}

export interface SwigluBackwardBuffers {
  /** (T, cols) W2ᵀ dy */
  readonly dg: GPUBuffer
  /** (T, cols) w1 x and w3 x from the forward */
  readonly a: GPUBuffer
  readonly b: GPUBuffer
  /** (T) gate logits; absent: ungated */
  readonly z?: GPUBuffer | null
  /** (T, cols) */
  readonly da: GPUBuffer
  readonly db: GPUBuffer
  readonly step: GPUBuffer
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function swigluBackwardKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'swiglu_backward', overrides: { WG: ctx.tuning.elementwiseWg } }
}

export async function swigluBackward(ctx: GpuContext, label: string, b: SwigluBackwardBuffers, p: { cols: number }): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(swigluBackwardKey(ctx))
  const z = b.z ?? null
  const params = ctx.uniform(`${label}.params`, packSwigluBackwardParams({ cols: p.cols, gated: z === null ? 0 : 1 }))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.dg], [1, b.a], [2, b.b], [3, z ?? ctx.dummy], [4, b.da], [5, b.db], [6, b.step], [7, params]])
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil((t * p.cols) / ctx.tuning.elementwiseWg)))
}
