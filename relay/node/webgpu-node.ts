/**
 * The WebGPU backend in Node: Dawn through the `webgpu` package (on SwiftShader without a GPU).
 *
 * @module
 */
import type { Architecture } from '../../src/chain/meta.ts'
import type { Backend } from '../../src/engine/interface.ts'
import { WebGpuBackend } from '../../src/engine/webgpu.ts'
import { requestModelDevice } from '../../src/gpu/device.ts'
import { nodeGpu } from '../../src/gpu/node.ts'

export async function createNodeBackend(arch: Architecture, maxResidentExperts: number): Promise<Backend> {
  const gpu = await nodeGpu()
  if (gpu === null) {
    throw new Error('no WebGPU adapter: install a GPU driver with Vulkan, or Debian\'s chromium (SwiftShader) and libvulkan1')
  }
  const device = await requestModelDevice(gpu.adapter, arch, { maxResidentExperts })
  return WebGpuBackend.create(device, arch, { maxResidentExperts, wgslLanguageFeatures: gpu.wgslLanguageFeatures })
}
