/**
 * The real model through the Engine on the ORT backend (wasm EP): stories260K cut into 4 experts
 * (top 4, so exactly the dense model), greedy 64 tokens from BOS, identical to the CPU backend's
 * tokens for fp32 and int8 payloads. Also reports where int8 first departs from fp32.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { CpuBackend } from '../../../src/engine/cpu.ts'
import { Engine } from '../../../src/engine/engine.ts'
import type { Backend } from '../../../src/engine/interface.ts'
import { OrtBackend } from '../../../src/engine/ort.ts'
import { Sampler } from '../../../src/model/sampler.ts'
import { importModel } from '../../../relay/import.ts'
import { importedPayloads, memoryModel } from '../../fixtures/engine.ts'
import { SHARED_DATA_MISSING, sharedData, sharedPath } from '../../fixtures/shared-data.ts'

/** The CPU reference's first greedy tokens from BOS (test/engine/engine.test.ts). */
const REFERENCE = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298]
const TOKENS = 64
const BOS = 1

describe('OrtBackend on stories260K through the Engine', () => {
  test(`greedy ${TOKENS} tokens from BOS: ORT = CPU for fp32 and int8 payloads`, async (t) => {
    if (sharedData('stories260K.bin') === null) return t.skip(SHARED_DATA_MISSING)
    const imported = await importModel(sharedPath('stories260K.bin'), { experts: 4 })
    const arch = imported.architecture
    const byDtype = new Map<string, number[]>()
    for (const dtype of ['fp32', 'int8'] as const) {
      const { model, tiles } = await memoryModel(arch, importedPayloads(imported, dtype))
      const runs: number[][] = []
      for (const backend of [new CpuBackend(arch) as Backend, await OrtBackend.create(arch)]) {
        const started = performance.now()
        const engine = await Engine.create(model, backend, tiles)
        const g = await engine.generate([BOS], { maxTokens: TOKENS, sampler: new Sampler(arch.vocab_size, { temperature: 0 }) })
        console.log(`# ${dtype} ${backend.name}: ${g.tokens.length} tokens in ${(performance.now() - started).toFixed(0)} ms (load included)`)
        engine.destroy()
        runs.push(g.tokens)
      }
      const [cpu, ort] = runs as [number[], number[]]
      assert.equal(ort.length, TOKENS)
      assert.deepEqual(ort, cpu, `${dtype}: ORT tokens differ from the CPU backend's`)
      assert.deepEqual(ort.slice(0, REFERENCE.length), REFERENCE, dtype)
      byDtype.set(dtype, ort)
    }
    const f32 = byDtype.get('fp32') as number[]
    const int8 = byDtype.get('int8') as number[]
    const departs = int8.findIndex((tok, i) => tok !== f32[i])
    console.log(departs === -1 ? `# int8 = fp32 for all ${TOKENS} tokens` : `# int8 first departs from fp32 at generated token ${departs} (from the logits at position ${departs}): ${int8[departs]} vs ${f32[departs]}`)
  })
})
