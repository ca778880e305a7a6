/**
 * adamw: one AdamW step on float32 parameters (src/train/adamw.ts on the GPU). The step-dependent
 * bias corrections live in Params, so the trainer rewrites its uniform before each step (`write`).
 *
 * @module
 */
import { dispatch, grid1d, type Dispatch, type GpuContext } from '../context.ts'
import { packParams, type ParamValues } from './_params.ts'
import type { PipelineKey } from '../pipelines.ts'

/** struct Params of adamw.wgsl. */
export const ADAMW_PARAMS = [
  ['n', 'u32'], // parameters
  ['lr', 'f32'], // learning rate
  ['beta1', 'f32'], // first-moment decay
  ['beta2', 'f32'], // second-moment decay
  ['eps', 'f32'], // added to sqrt(v̂)
  ['decay', 'f32'], // 1 − lr · weight_decay
  ['c1', 'f32'], // 1 − β1^t
  ['c2', 'f32'] // 1 − β2^t
] as const
export type AdamwParams = ParamValues<typeof ADAMW_PARAMS>

export function packAdamwParams(p: AdamwParams): Uint32Array {
  return packParams('adamw', ADAMW_PARAMS, p)
}

export interface AdamwSettings {
  readonly lr: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly weightDecay: number
}

/** Params for step t (from 1): bias corrections in float64, then rounded to float32 with the rest. */
export function adamwStepParams(n: number, s: AdamwSettings, t: number): AdamwParams {
  return { n, lr: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, decay: 1 - s.lr * s.weightDecay, c1: 1 - Math.pow(s.beta1, t), c2: 1 - Math.pow(s.beta2, t) }
}

/** The pipeline this kernel runs on `ctx` (its cache key). */
export function adamwKey(ctx: GpuContext): PipelineKey {
  return { kernel: 'adamw', overrides: { WG: ctx.tuning.elementwiseWg } }
}

export interface AdamwBuffers {
  /** (n) parameters, updated in place */
  readonly p: GPUBuffer
  /** (n) gradients */
  readonly g: GPUBuffer
  /** (n) moments, updated in place (zero before the first step) */
  readonly m: GPUBuffer
  readonly v: GPUBuffer
}

/** A bound AdamW step and its Params uniform: write adamwStepParams(n, s, t) there before step t. */
export async function adamw(ctx: GpuContext, label: string, b: AdamwBuffers, n: number): Promise<{ dispatch: Dispatch; params: GPUBuffer }> {
  const pipeline = await ctx.pipelines.get(adamwKey(ctx))
  const params = ctx.uniform(`${label}.params`, packAdamwParams({ n, lr: 0, beta1: 0, beta2: 0, eps: 0, decay: 1, c1: 1, c2: 1 }))
  const bg = ctx.bindGroup(label, pipeline, [[0, b.p], [1, b.g], [2, b.m], [3, b.v], [4, params]])
  const groups = grid1d(Math.ceil(n / ctx.tuning.elementwiseWg))
  return { dispatch: dispatch(label, pipeline, bg, () => groups), params }
}
