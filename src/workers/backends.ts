/**
 * Engine backends in a browser (window or worker): WebGPU through our kernels when an adapter is
 * there, else ONNX Runtime Web on WASM, and the CPU reference on request. `auto` falls back and says
 * why, so the page can show it.
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import { CpuBackend } from '../engine/cpu.ts'
import type { Backend } from '../engine/interface.ts'
import { requestModelDevice } from '../gpu/device.ts'
import type { BackendChoice, BackendInfo } from '../client/api.ts'

async function webgpu(arch: Architecture): Promise<{ backend: Backend; info: BackendInfo }> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu
  if (gpu === undefined) throw new Error('this browser has no WebGPU')
  const adapter = await gpu.requestAdapter()
  if (adapter === null) throw new Error('no WebGPU adapter')
  const { WebGpuBackend } = await import('../engine/webgpu.ts')
  const maxResidentExperts = arch.n_layers * arch.n_experts
  const device = await requestModelDevice(adapter, arch, { maxResidentExperts })
  const backend = await WebGpuBackend.create(device, arch, { maxResidentExperts, wgslLanguageFeatures: new Set(gpu.wgslLanguageFeatures) })
  const what = [adapter.info.vendor, adapter.info.architecture].filter((s) => s !== '').join(' ')
  return { backend, info: { name: 'webgpu', detail: `WebGPU${what === '' ? '' : ` (${what})`}`, fallback: null } }
}

async function ortWasm(arch: Architecture, fallback: string | null): Promise<{ backend: Backend; info: BackendInfo }> {
  const { OrtBackend } = await import('../engine/ort.ts')
  const backend = await OrtBackend.create(arch, { provider: 'wasm' })
  const threads = globalThis.crossOriginIsolated === true ? 'threads' : 'one thread'
  return { backend, info: { name: 'ort-wasm', detail: `ONNX Runtime Web (WASM, ${threads})`, fallback } }
}

export async function createBrowserBackend(choice: BackendChoice, arch: Architecture): Promise<{ backend: Backend; info: BackendInfo }> {
  if (choice === 'cpu') return { backend: new CpuBackend(arch), info: { name: 'cpu', detail: 'CPU (JavaScript reference)', fallback: null } }
  if (choice === 'ort-wasm') return ortWasm(arch, null)
  try {
    return await webgpu(arch)
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e)
    if (choice === 'webgpu') throw new Error(`WebGPU was chosen in settings, but ${why}`)
    return ortWasm(arch, why)
  }
}
