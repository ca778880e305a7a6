/**
 * sigmoid_gate_backward: dz[t] = (dy[t] · s[t]) σ(z[t]) (1 − σ(z[t])) for y += sigmoid(z) s.
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of sigmoid_gate_backward.wgsl. */
export const SIGMOID_GATE_BACKWARD_PARAMS = [
  ['cols', 'u32'] // row length
] as const
export type SigmoidGateBackwardParams = ParamValues<typeof SIGMOID_GATE_BACKWARD_PARAMS>

export function packSigmoidGateBackwardParams(p: SigmoidGateBackwardParams): Uint32Array {
  return packParams('sigmoid_gate_backward', SIGMOID_GATE_BACKWARD_PARAMS, p)
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function sigmoidGateBackwardKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'sigmoid_gate_backward', overrides: { WG: ctx.tuning.routerWg } }
}

/** dz (T) from dy (T, cols), s (T, cols), z (T). */
export async function sigmoidGateBackward(ctx: GpuContext, label: string, dy: GPUBuffer, s: GPUBuffer, z: GPUBuffer, dz: GPUBuffer, step: GPUBuffer, p: SigmoidGateBackwardParams): Promise<Dispatch> {
  const pipeline = await ctx.pipelines.get(sigmoidGateBackwardKey(ctx))
  const params = ctx.uniform(`${label}.params`, packSigmoidGateBackwardParams(p))
  const bg = ctx.bindGroup(label, pipeline, [[0, dy], [1, s], [2, z], [3, dz], [4, step], [5, params]])
  return dispatch(label, pipeline, bg, (t) => grid1d(Math.ceil(t / ctx.tuning.routerWg)))
}
