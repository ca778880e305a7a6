/**
 * GPU test setup: one Dawn device for the whole suite (SwiftShader on machines without a GPU), and
 * helpers to run dispatches and read buffers back. `testGpu()` is null when no adapter can be
 * created; tests then skip with NO_GPU.
 */
import { nodeGpu } from '../../src/gpu/node.ts'
import { GpuContext, gpuFeatures, record, type Dispatch, type GpuFeatures } from '../../src/gpu/context.ts'

export const NO_GPU = 'no WebGPU adapter (the `webgpu` package with SwiftShader needs chromium installed): GPU tests skipped'

export interface TestGpu {
  readonly adapter: GPUAdapter
  readonly device: GPUDevice
  readonly features: GpuFeatures
  readonly wgslLanguageFeatures: ReadonlySet<string>
}

let shared: Promise<TestGpu | null> | null = null

/** A fresh device with the adapter's largest storage limits. */
export async function newDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('subgroups') ? ['subgroups'] : [],
    requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize }
  })
  device.addEventListener('uncapturederror', (e) => console.error('WebGPU uncaptured error:', (e as GPUUncapturedErrorEvent).error.message))
  return device
}

/** The suite's device, created on first use. */
export function testGpu(): Promise<TestGpu | null> {
  shared ??= (async () => {
    const g = await nodeGpu()
    if (g === null) return null
    const device = await newDevice(g.adapter)
    return { adapter: g.adapter, device, features: gpuFeatures(g.wgslLanguageFeatures, device), wgslLanguageFeatures: g.wgslLanguageFeatures }
  })()
  return shared
}

/** Record dispatches in one pass for `tokens` tokens, submit, and wait. */
export async function run(ctx: GpuContext, dispatches: readonly Dispatch[], tokens = 1): Promise<void> {
  const enc = ctx.device.createCommandEncoder()
  const pass = enc.beginComputePass()
  for (const d of dispatches) record(pass, d, tokens)
  pass.end()
  ctx.device.queue.submit([enc.finish()])
  await ctx.device.queue.onSubmittedWorkDone()
}

/** `bytes` of `buffer` from `offset`, copied to the host. */
export async function readBytes(device: GPUDevice, buffer: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
  const enc = device.createCommandEncoder()
  enc.copyBufferToBuffer(buffer, offset, staging, 0, bytes)
  device.queue.submit([enc.finish()])
  await staging.mapAsync(GPUMapMode.READ)
  const out = staging.getMappedRange().slice(0)
  staging.unmap()
  staging.destroy()
  return out
}

export async function readF32(device: GPUDevice, buffer: GPUBuffer, count: number, offset = 0): Promise<Float32Array> {
  return new Float32Array(await readBytes(device, buffer, count * 4, offset * 4))
}

export async function readU32(device: GPUDevice, buffer: GPUBuffer, count: number, offset = 0): Promise<Uint32Array> {
  return new Uint32Array(await readBytes(device, buffer, count * 4, offset * 4))
}

/** Largest |a[i] - b[i]|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`lengths ${a.length} and ${b.length}`)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)))
  return m
}
