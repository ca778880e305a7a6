/**
 * swiglu: h = silu(a) ⊙ b over the pass's rows (the shared expert's activation).
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of swiglu.wgsl. */
export const SWIGLU_PARAMS = [
  ['cols', 'u32'] // row length
] as const
export type SwigluParams = ParamValues<typeof SWIGLU_PARAMS>

export function packSwigluParams(p: SwigluParams): Uint32Array {
  return packParams('swiglu', SWIGLU_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function swigluKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'swiglu', overrides: { WG: ctx.tuning.elementwiseWg } }
}

export async function swiglu(ctx: GpuContext, label: string, a: GPUBuffer, b: GPUBuffer, h: GPUBuffer, step: GPUBuffer, p: SwigluParams): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(swigluKey(ctx))
  const params = ctx.uniform(`${label}.params`, packSwigluParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, a], [1, b], [2, h], [3, step], [4, params]])
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil((t * p.cols) / ctx.tuning.elementwiseWg)))
}
