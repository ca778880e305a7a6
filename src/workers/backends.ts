/**
 * Engine backends in a browser (window or worker): WebGPU through our kernels, ONNX Runtime Web on
 * WASM, and the CPU reference on request.
 *
 * `auto` does not take WebGPU because an adapter exists: a software adapter (SwiftShader and the
 * like) runs on the CPU and is often slower than WASM. It times both on a synthetic copy of the
 * model (src/engine/probe.ts: same shapes, random weights, a few decode steps) and runs the faster,
 * saying why in `fallback`; the verdict is kept per adapter and architecture (IndexedDB), so the
 * probe runs once per device. A model too big to copy for a probe goes by the adapter's kind.
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import { CpuBackend } from '../engine/cpu.ts'
import type { Backend } from '../engine/interface.ts'
import { parameterCount } from '../chain/params.ts'
import { decodeMs, loadSynthetic, syntheticTensors } from '../engine/probe.ts'
import { adapterName, softwareRenderer } from '../gpu/adapter-kind.ts'
import { requestModelDevice } from '../gpu/device.ts'
import { idbKV, type KV } from '../store/kv.ts'
import type { BackendChoice, BackendInfo } from '../client/api.ts'

/** Largest synthetic model the probe builds (parameters: about a byte each at int8); above it the adapter's kind decides. */
const PROBE_MAX_BYTES = 64 * 1024 * 1024
/** Decode steps per probe round, and rounds (the median is kept; the first round warms up). */
const PROBE_TOKENS = 8
const PROBE_ROUNDS = 3

type Created = { backend: Backend; info: BackendInfo }
type Measured = { readonly webgpu: number; readonly 'ort-wasm': number }

async function webgpuAdapter(): Promise<{ gpu: GPU; adapter: GPUAdapter }> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu
  if (gpu === undefined) throw new Error('this browser has no WebGPU')
  const adapter = await gpu.requestAdapter()
  if (adapter === null) throw new Error('no WebGPU adapter')
  return { gpu, adapter }
}

/** A WebGPU backend on an adapter of its own (an adapter gives one device only: each backend asks anew). */
async function webgpu(arch: Architecture, fallback: string | null = null, measured?: Measured): Promise<Created> {
  const { gpu, adapter } = await webgpuAdapter()
  const { WebGpuBackend } = await import('../engine/webgpu.ts')
  const maxResidentExperts = arch.n_layers * arch.n_experts
  const device = await requestModelDevice(adapter, arch, { maxResidentExperts })
  const backend = await WebGpuBackend.create(device, arch, { maxResidentExperts, wgslLanguageFeatures: new Set(gpu.wgslLanguageFeatures) })
  const soft = softwareRenderer(adapter.info)
  const detail = `WebGPU (${adapterName(adapter.info)}${soft === null ? '' : `, a software GPU: ${soft} runs on the CPU`})`
  return { backend, info: { name: 'webgpu', detail, fallback, ...(measured === undefined ? {} : { measured }) } }
}

async function ortWasm(arch: Architecture, fallback: string | null, measured?: Measured): Promise<Created> {
  const { OrtBackend } = await import('../engine/ort.ts')
  const backend = await OrtBackend.create(arch, { provider: 'wasm' })
  const threads = globalThis.crossOriginIsolated === true ? 'threads' : 'one thread'
  return { backend, info: { name: 'ort-wasm', detail: `ONNX Runtime Web (WASM, ${threads})`, fallback, ...(measured === undefined ? {} : { measured }) } }
}

/** ms per token of `create()`'s backend on a synthetic copy of `arch`; the backend is released. */
async function probe(create: () => Promise<Created>, arch: Architecture): Promise<number> {
  const { backend } = await create()
  try {
    await loadSynthetic(backend, arch, syntheticTensors(arch))
    return await decodeMs(backend, PROBE_TOKENS, PROBE_ROUNDS)
  } finally {
    backend.destroy()
  }
}

let verdicts: KV | null = null
function verdictStore(): KV {
  verdicts ??= idbKV('blyan-backend-choice', 'verdicts')
  return verdicts
}

function isMeasured(v: unknown): v is Measured {
  if (typeof v !== 'object' || v === null) return false
  const m = v as Record<string, unknown>
  return typeof m['webgpu'] === 'number' && typeof m['ort-wasm'] === 'number' && m['webgpu'] > 0 && m['ort-wasm'] > 0
}

/** Both backends' ms per token for `arch` on this adapter: from the kept verdict, or measured now (and kept). */
async function measure(arch: Architecture, info: GPUAdapterInfo): Promise<Measured> {
  const i = info
  const key = JSON.stringify([i.vendor, i.architecture, i.device, i.description, arch])
  const kept = await verdictStore().get(key).catch(() => undefined)
  if (isMeasured(kept)) return kept
  const webgpuMs = await probe(() => webgpu(arch), arch)
  const ortMs = await probe(() => ortWasm(arch, null), arch)
  const m: Measured = { webgpu: webgpuMs, 'ort-wasm': ortMs }
  await verdictStore().setMany([[key, m]]).catch(() => undefined)
  return m
}

const ms = (v: number): string => `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`

/** The automatic choice: WebGPU when it is measured faster (or is a real GPU and the model too big to probe), else ONNX Runtime WASM. */
async function automatic(arch: Architecture): Promise<Created> {
  // This adapter is only asked what it is: each backend requests its own (a device consumes one).
  let info: GPUAdapterInfo
  try {
    info = (await webgpuAdapter()).adapter.info
  } catch (e) {
    return ortWasm(arch, e instanceof Error ? e.message : String(e))
  }
  const soft = softwareRenderer(info)
  if (parameterCount(arch) > PROBE_MAX_BYTES) {
    return soft === null ? webgpu(arch) : ortWasm(arch, `the WebGPU adapter is a software GPU (${soft} runs on the CPU), and the model is too big to time both here`)
  }
  let m: Measured
  try {
    m = await measure(arch, info)
  } catch (e) {
    // A backend that cannot even run the probe: the other one, saying why.
    const why = e instanceof Error ? e.message : String(e)
    return soft === null ? webgpu(arch, `the backend probe failed (${why})`) : ortWasm(arch, `the WebGPU adapter is a software GPU (${soft}) and the probe failed (${why})`)
  }
  const kind = soft === null ? 'WebGPU' : `WebGPU on a software GPU (${soft} runs on the CPU)`
  if (m.webgpu <= m['ort-wasm']) return webgpu(arch, null, m)
  return ortWasm(arch, `${kind} measured ${ms(m.webgpu)} a token, ONNX Runtime WASM ${ms(m['ort-wasm'])}: the faster one runs`, m)
}

export async function createBrowserBackend(choice: BackendChoice, arch: Architecture): Promise<Created> {
  if (choice === 'cpu') return { backend: new CpuBackend(arch), info: { name: 'cpu', detail: 'CPU (JavaScript reference)', fallback: null } }
  if (choice === 'ort-wasm') return ortWasm(arch, null)
  if (choice === 'webgpu') {
    try {
      return await webgpu(arch)
    } catch (e) {
      throw new Error(`WebGPU was chosen in settings, but ${e instanceof Error ? e.message : String(e)}`)
    }
  }
  return automatic(arch)
}
