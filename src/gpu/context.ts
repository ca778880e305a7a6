/**
 * What every kernel module needs: the device, its pipeline cache, the WGSL features to specialise
 * for, and buffer helpers that track what they create (so a backend frees it all in one call).
 * Also `Dispatch`, a kernel bound to its buffers at load time, and `record()`, which puts one into
 * a compute pass.
 *
 * @module
 */
import { pipelineCache, type PipelineCache } from './pipelines.ts'
import { MAX_WORKGROUPS_PER_DIM, type Tuning } from './tuning.ts'

/** Optional WGSL capabilities the kernels use when present. */
export interface GpuFeatures {
  /** WGSL language feature `packed_4x8_integer_dot_product`: unpack4xI8 instead of shifts. */
  readonly packed4x8: boolean
  /**
   * The device's smallest subgroup size when it was created with the `subgroups` feature, else 0.
   * Reductions over at most this many lanes use subgroupShuffleXor instead of workgroup memory.
   */
  readonly subgroupSize: number
}

/** Features from a `navigator.gpu.wgslLanguageFeatures`-like set and, for subgroups, the device. */
export function gpuFeatures(wgslLanguageFeatures: ReadonlySet<string> | undefined, device?: GPUDevice): GpuFeatures {
  const info = (device as { adapterInfo?: { subgroupMinSize?: number } } | undefined)?.adapterInfo
  const subgroups = device?.features.has('subgroups') === true ? (info?.subgroupMinSize ?? 0) : 0
  return { packed4x8: wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false, subgroupSize: subgroups }
}

/** A kernel bound to its buffers: record it with the tokens of a pass. */
export interface Dispatch {
  readonly label: string
  readonly pipeline: GPUComputePipeline
  readonly bindGroup: GPUBindGroup
  /** Workgroups for one token (decode), computed once. */
  readonly decode: readonly [number, number, number]
  /** Workgroups for a pass of `tokens` tokens (prefill). */
  readonly grid: (tokens: number) => readonly [number, number, number]
}

/** Record `d` for a pass of `tokens` tokens. */
export function record(pass: GPUComputePassEncoder, d: Dispatch, tokens: number): void {
  const [x, y, z] = tokens === 1 ? d.decode : d.grid(tokens)
  pass.setPipeline(d.pipeline)
  pass.setBindGroup(0, d.bindGroup)
  pass.dispatchWorkgroups(x, y, z)
}

/** `count` workgroups along x, folded into (65535, ceil(count / 65535)) when larger (kernels linearise y * nx + x). */
export function grid1d(count: number): [number, number, number] {
  const n = Math.max(1, count)
  return n <= MAX_WORKGROUPS_PER_DIM ? [n, 1, 1] : [MAX_WORKGROUPS_PER_DIM, Math.ceil(n / MAX_WORKGROUPS_PER_DIM), 1]
}

/** A Dispatch whose grid is `grid(tokens)`. */
export function dispatch(label: string, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: (tokens: number) => [number, number, number]): Dispatch {
  return Object.freeze({ label, pipeline, bindGroup, decode: Object.freeze(grid(1)), grid })
}

/** A binding: a whole buffer, or a range of one. */
export type Resource = GPUBuffer | GPUBufferBinding

export const STORAGE_USAGE = 0x80 | 0x08 | 0x04 // STORAGE | COPY_DST | COPY_SRC (GPUBufferUsage, numeric so no global is needed at import)
const UNIFORM_USAGE = 0x40 | 0x08 // UNIFORM | COPY_DST

export class GpuContext {
  readonly device: GPUDevice
  readonly features: GpuFeatures
  /** Workgroup and tile sizes (tuning.ts profile). */
  readonly tuning: Tuning
  readonly pipelines: PipelineCache
  /** A 16-byte storage buffer bound where a kernel's optional input is absent. */
  readonly dummy: GPUBuffer
  readonly #buffers = new Set<GPUBuffer>()

  constructor(device: GPUDevice, features: GpuFeatures, tuning: Tuning) {
    this.device = device
    this.features = features
    this.tuning = tuning
    this.pipelines = pipelineCache(device)
    this.dummy = this.storage('dummy', 16)
  }

  /** A zeroed storage buffer of `bytes` (rounded up to 4). Throws RangeError beyond the device's limits. */
  storage(label: string, bytes: number, usage: number = STORAGE_USAGE): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 4) * 4)
    const limits = this.device.limits
    const max = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize)
    if (size > max) {
      throw new RangeError(`${label}: needs a ${size}-byte storage buffer, the device allows ${max} (request higher limits, see requestModelDevice, or use fewer resident experts)`)
    }
    const b = this.device.createBuffer({ label, size, usage })
    this.#buffers.add(b)
    return b
  }

  /** A storage buffer holding `data`. */
  upload(label: string, data: ArrayBufferView): GPUBuffer {
    const b = this.storage(label, data.byteLength)
    this.write(b, 0, data)
    return b
  }

  /** queue.writeBuffer of a typed array (its byte length a multiple of 4). */
  write(buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
    this.device.queue.writeBuffer(buffer, offset, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength)
  }

  /** A uniform buffer holding packed Params (written once, at load). */
  uniform(label: string, words: Uint32Array): GPUBuffer {
    const b = this.device.createBuffer({ label, size: Math.max(16, words.byteLength), usage: UNIFORM_USAGE })
    this.#buffers.add(b)
    this.write(b, 0, words)
    return b
  }

  /** A bind group for group 0 of `pipeline`: [binding, resource] pairs. */
  bindGroup(label: string, pipeline: GPUComputePipeline, entries: readonly (readonly [number, Resource])[]): GPUBindGroup {
    return this.device.createBindGroup({
      label,
      layout: pipeline.getBindGroupLayout(0),
      entries: entries.map(([binding, r]) => ({ binding, resource: 'buffer' in r ? r : { buffer: r } }))
    })
  }

  /** Destroy one tracked buffer. */
  release(buffer: GPUBuffer): void {
    if (this.#buffers.delete(buffer)) buffer.destroy()
  }

  /** Destroy every buffer this context created. */
  destroy(): void {
    for (const b of this.#buffers) b.destroy()
    this.#buffers.clear()
  }
}
