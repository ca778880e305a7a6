/**
 * Getting a GPUDevice able to hold a model: WebGPU's default limits (128 MiB storage bindings,
 * 256 MiB buffers) are too small for real models, so the device is requested with the limits the
 * largest buffer needs (assuming float32 weights, the worst case), capped at what the adapter
 * offers. Buffers beyond the granted limits fail at load with a RangeError naming the tensor.
 *
 * Every other limit the kernels need is within WebGPU's defaults: at most 7 storage buffers per
 * stage (default 8), 12 KiB of workgroup memory (16 KiB), 256 invocations per workgroup (256).
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import { PREFILL_TOKENS } from './tuning.ts'
import { matrixBytes } from './upload.ts'

export interface ModelDeviceOptions {
  /** Expert pool slots the backend will allocate. */
  readonly maxResidentExperts: number
}

/** Bytes of the largest buffer a WebGpuBackend for `arch` allocates, with float32 weights. */
export function largestBuffer(arch: Architecture, options: ModelDeviceOptions): number {
  const { dim, vocab_size: vocab, n_layers: layers, max_seq_len: seq } = arch
  const q = arch.n_heads * arch.head_dim
  const kv = arch.n_kv_heads * arch.head_dim
  const h = arch.expert_hidden_dim
  const sh = arch.shared_expert_hidden_dim
  const t = Math.min(PREFILL_TOKENS, seq)
  return Math.max(
    matrixBytes('f32', vocab, dim),
    matrixBytes('f32', q, dim),
    matrixBytes('f32', dim, q),
    matrixBytes('f32', arch.n_experts, dim),
    matrixBytes('f32', sh, dim),
    matrixBytes('f32', dim, sh),
    options.maxResidentExperts * Math.max(matrixBytes('f32', h, dim), matrixBytes('f32', dim, h)),
    layers * seq * kv * 4,
    t * Math.max(q, dim, arch.top_k * h, sh) * 4
  )
}

/** Request a device from `adapter` with storage limits raised for the model. */
export async function requestModelDevice(adapter: GPUAdapter, arch: Architecture, options: ModelDeviceOptions, label = 'blyan'): Promise<GPUDevice> {
  const need = largestBuffer(arch, options)
  const cap = (name: 'maxStorageBufferBindingSize' | 'maxBufferSize'): number => Math.min(adapter.limits[name], Math.max(need, 1 << 27))
  return adapter.requestDevice({
    label,
    // subgroups: faster reductions where the adapter has them (gpuFeatures reads it back)
    requiredFeatures: adapter.features.has('subgroups') ? ['subgroups'] : [],
    requiredLimits: { maxStorageBufferBindingSize: cap('maxStorageBufferBindingSize'), maxBufferSize: cap('maxBufferSize') }
  })
}

/**
 * A device for training (src/train/webgpu-trainer.ts): the adapter's largest storage binding and
 * buffer sizes (every frozen expert sits in one pool buffer per matrix kind), subgroups when offered.
 */
export async function requestTrainingDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  return adapter.requestDevice({
    label: 'blyan training',
    requiredFeatures: adapter.features.has('subgroups') ? ['subgroups'] : [],
    requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize }
  })
}
