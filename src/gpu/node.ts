/**
 * Node-only glue: WebGPU in Node through the `webgpu` package (Dawn). The only file of src/gpu that
 * touches `process` or Node modules; everything else takes a `GPUDevice` and runs in browsers too.
 *
 * Dawn finds no adapter on a machine without a GPU unless Vulkan is pointed at SwiftShader (a CPU
 * implementation shipped with Debian's chromium): `VK_ICD_FILENAMES` must name its ICD and
 * `XDG_RUNTIME_DIR` must be set (else Dawn logs errors). We set both when they are unset and the ICD
 * file exists, before the first instance is created (Dawn reads them then).
 *
 * ```ts
 * const gpu = await nodeGpu()                 // null when no adapter can be had
 * const device = await requestModelDevice(gpu.adapter, arch, { maxResidentExperts: 8 })
 * ```
 *
 * @module
 */
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'

/** Debian's chromium ships SwiftShader's Vulkan ICD here. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json'

export interface NodeGpu {
  readonly gpu: GPU
  readonly adapter: GPUAdapter
  /** WGSL language features of this instance (what `navigator.gpu.wgslLanguageFeatures` is in a browser). */
  readonly wgslLanguageFeatures: ReadonlySet<string>
}

let instance: GPU | null = null

/** The process-wide Dawn instance and an adapter, or null when the package or an adapter is unavailable. */
export async function nodeGpu(): Promise<NodeGpu | null> {
  if (instance === null) {
    if (process.env['VK_ICD_FILENAMES'] === undefined && existsSync(SWIFTSHADER_ICD)) process.env['VK_ICD_FILENAMES'] = SWIFTSHADER_ICD
    if (process.env['XDG_RUNTIME_DIR'] === undefined) process.env['XDG_RUNTIME_DIR'] = tmpdir()
    let mod: typeof import('webgpu')
    try {
      mod = await import('webgpu')
    } catch {
      return null
    }
    // GPUBufferUsage, GPUMapMode, ... as browser globals.
    Object.assign(globalThis, mod.globals)
    instance = mod.create(['backend=vulkan'])
  }
  const adapter = await instance.requestAdapter()
  if (adapter === null) return null
  return { gpu: instance, adapter, wgslLanguageFeatures: new Set(instance.wgslLanguageFeatures) }
}
