/**
 * The real model: stories260K (llama2.c, 5 layers, dim 64, GQA 8/4, vocab 512) imported with its
 * dense FFNs split into 4 experts (top_k 4: exactly the dense model), run by the Engine greedily
 * for 64 tokens from BOS on the WebGPU backend and on the CPU backend, from float32 payloads and
 * from int8 ones. Float32 must give the CPU's tokens, which begin as llama2.c's `run` does.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { importModel } from '../../relay/import.ts'
import type { Architecture } from '../../src/chain/meta.ts'
import { CpuBackend } from '../../src/engine/cpu.ts'
import { Engine } from '../../src/engine/engine.ts'
import type { Backend } from '../../src/engine/interface.ts'
import { WebGpuBackend } from '../../src/engine/webgpu.ts'
import { Sampler } from '../../src/model/sampler.ts'
import { buildPayload } from '../../src/tensor/payload.ts'
import { SHARED_DATA_MISSING, sharedData, sharedPath } from '../fixtures/shared-data.ts'
import { memoryModel } from './_model.ts'
import { NO_GPU, testGpu } from './_setup.ts'

const gpu = await testGpu()
const EXPECTED_START = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298]

async function generate(arch: Architecture, payloads: Map<string, Uint8Array>, backend: Backend): Promise<number[]> {
  const { model, tiles } = await memoryModel(arch, payloads)
  const engine = await Engine.create(model, backend, tiles)
  try {
    const out = await engine.generate([1], { maxTokens: 64, sampler: new Sampler(arch.vocab_size, { temperature: 0 }) })
    return out.tokens
  } finally {
    engine.destroy()
  }
}

describe('stories260K on the WebGPU backend', { skip: gpu === null ? NO_GPU : false }, () => {
  test('greedy 64 tokens from BOS: float32 equals the CPU backend; int8 compared with float32', async (t) => {
    if (sharedData('stories260K.bin') === null) return t.skip(SHARED_DATA_MISSING)
    const imported = await importModel(sharedPath('stories260K.bin'), { experts: 4 })
    const arch = imported.architecture
    const payloadsOf = (matrices: 'fp32' | 'int8'): Map<string, Uint8Array> =>
      new Map([...imported.blocks].map(([name, tensors]) => [name, buildPayload(tensors.map((x) => ({ name: x.name, values: x.values, shape: x.shape, dtype: x.shape.length === 1 ? 'fp32' : matrices })))]))
    const device = gpu?.device as GPUDevice
    const webgpu = (): Promise<WebGpuBackend> => WebGpuBackend.create(device, arch, { maxResidentExperts: arch.n_layers * arch.n_experts, wgslLanguageFeatures: gpu?.wgslLanguageFeatures as ReadonlySet<string> })

    const f32 = payloadsOf('fp32')
    const cpu = await generate(arch, f32, new CpuBackend(arch))
    const started = performance.now()
    const gpuTokens = await generate(arch, f32, await webgpu())
    const ms = performance.now() - started
    assert.deepEqual(cpu.slice(0, EXPECTED_START.length), EXPECTED_START, 'the CPU reference')
    assert.equal(gpuTokens.length, 64)
    assert.deepEqual(gpuTokens, cpu)
    console.log(`stories260K f32: 64 WebGPU tokens identical to the CPU's (${(ms / 64).toFixed(1)} ms/token with loading): ${gpuTokens.slice(0, 12).join(' ')} ...`)

    const q8 = payloadsOf('int8')
    const cpuQ8 = await generate(arch, q8, new CpuBackend(arch))
    const gpuQ8 = await generate(arch, q8, await webgpu())
    const firstDiff = (a: number[], b: number[]): number => {
      const i = a.findIndex((x, j) => x !== b[j])
      return i === -1 && a.length === b.length ? -1 : i === -1 ? Math.min(a.length, b.length) : i
    }
    const vsF32 = firstDiff(gpuQ8, gpuTokens)
    console.log(`stories260K int8: WebGPU ${firstDiff(gpuQ8, cpuQ8) === -1 ? 'identical to' : `differs at ${firstDiff(gpuQ8, cpuQ8)} from`} the CPU's int8 tokens; vs float32: ${vsF32 === -1 ? 'identical for all 64 tokens' : `first difference at position ${vsF32}`}`)
    assert.deepEqual(gpuQ8, cpuQ8)
  })
})
