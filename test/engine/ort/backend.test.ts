/**
 * The whole OrtBackend (wasm EP) against the CpuBackend: per-token logits on the tiny devnet and on
 * architectures covering every forward-pass option, the missing/selected protocol with only some
 * experts resident, unload/reload, the Engine driving it with a small expert LRU, and typed errors.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { expertName } from '../../../src/chain/header.ts'
import type { Architecture } from '../../../src/chain/meta.ts'
import { CpuBackend } from '../../../src/engine/cpu.ts'
import { Engine } from '../../../src/engine/engine.ts'
import type { Backend, BlockTensors, ForwardResult } from '../../../src/engine/interface.ts'
import { OrtBackend, OrtBackendStateError } from '../../../src/engine/ort.ts'
import { argmax, Sampler } from '../../../src/model/sampler.ts'
import { readBlockTensors } from '../../../src/model/weights.ts'
import { TINY_ARCH, paramPayload } from '../../fixtures/devnet.ts'
import { memoryModel } from '../../fixtures/engine.ts'
import { FP16, FP32, INT8, TEST_ARCHS, allBlockNames, loadModel, maxAbs, maxAbsDiff, randomModel, type WeightFormat } from './fixtures.ts'

/** Per-token logits, ORT vs CPU: max abs. */
const LOGITS_TOLERANCE = 1e-3
const TOKENS = 20

function logitsOf(r: ForwardResult, what: string): { logits: Float32Array; used: readonly (readonly number[])[] } {
  assert.ok('logits' in r, `${what}: expected logits, got missing experts ${JSON.stringify(r)}`)
  return r
}

/** The devnet's own random blocks (paramPayload: int8 matrices, fp32 vectors), decoded as the engine decodes them. */
function devnetModel(arch: Architecture = TINY_ARCH): Map<string, BlockTensors> {
  return new Map(allBlockNames(arch).map((n, i) => [n, readBlockTensors(n, arch, paramPayload(n, arch, 1000 + i))]))
}

/**
 * Run `tokens` tokens on both backends, each fed the CPU's greedy choice, and compare logits and
 * used experts per token. Returns the worst logit error.
 */
async function compare(what: string, arch: Architecture, cpu: Backend, ort: Backend, tokens = TOKENS): Promise<number> {
  let worst = 0
  let token = 1
  for (let pos = 0; pos < tokens; pos++) {
    const want = logitsOf(await cpu.forward(token, pos), `${what} cpu pos ${pos}`)
    const got = logitsOf(await ort.forward(token, pos), `${what} ort pos ${pos}`)
    const err = maxAbsDiff(got.logits, want.logits)
    assert.ok(err <= LOGITS_TOLERANCE, `${what}, pos ${pos}: max abs logit error ${err} > ${LOGITS_TOLERANCE} (logits up to ${maxAbs(want.logits)})`)
    assert.deepEqual(got.used, want.used, `${what}, pos ${pos}: experts used`)
    worst = Math.max(worst, err)
    token = argmax(want.logits)
  }
  return worst
}

async function pair(arch: Architecture, blocks: ReadonlyMap<string, BlockTensors>, experts?: readonly (readonly [number, number])[]): Promise<{ cpu: CpuBackend; ort: OrtBackend }> {
  const cpu = new CpuBackend(arch)
  const ort = await OrtBackend.create(arch)
  await loadModel(cpu, arch, blocks, experts)
  await loadModel(ort, arch, blocks, experts)
  return { cpu, ort }
}

describe('OrtBackend (wasm EP) vs CpuBackend', () => {
  test(`tiny devnet architecture (devnet payloads): per-token logits within ${LOGITS_TOLERANCE} over ${TOKENS} tokens, same experts`, async () => {
    const { cpu, ort } = await pair(TINY_ARCH, devnetModel())
    const worst = await compare('devnet', TINY_ARCH, cpu, ort)
    console.log(`# devnet: max abs logit error ${worst.toExponential(2)} (tolerance ${LOGITS_TOLERANCE})`)
    ort.destroy()
  })

  test(`architectures covering qk_norm, bias, shared experts, softmax/softmax_topk/unit, GQA, tied/untied; int8, fp32, fp16 weights`, async () => {
    const formats: readonly [string, WeightFormat][] = [['int8', INT8], ['fp32', FP32], ['fp16', FP16]]
    for (const [ai, { what, arch }] of TEST_ARCHS.entries()) {
      for (const [fi, [fname, format]] of formats.entries()) {
        const { cpu, ort } = await pair(arch, randomModel(arch, 10 * ai + fi + 1, format))
        const worst = await compare(`${what}, ${fname}`, arch, cpu, ort, Math.min(TOKENS, arch.max_seq_len))
        console.log(`# ${what}, ${fname}: max abs logit error ${worst.toExponential(2)} (tolerance ${LOGITS_TOLERANCE})`)
        ort.destroy()
      }
    }
  })

  test('missing/selected protocol: same answers as the CPU with only expert 0 of each layer resident; reruns recompute identically', async () => {
    for (const { what, arch } of TEST_ARCHS.slice(0, 3)) {
      const blocks = randomModel(arch, 77)
      const firstOnly = Array.from({ length: arch.n_layers }, (_, l) => [l, 0] as const)
      const { cpu, ort } = await pair(arch, blocks, firstOnly)
      const full = await OrtBackend.create(arch)
      await loadModel(full, arch, blocks)
      let token = 1
      let misses = 0
      for (let pos = 0; pos < 16; pos++) {
        for (;;) {
          const want = await cpu.forward(token, pos)
          const got = await ort.forward(token, pos)
          if ('missing' in want) {
            assert.deepEqual(got, want, `${what}, pos ${pos}: missing/selected`)
            misses++
            for (const { layer, expert } of want.missing) {
              const t = blocks.get(expertName(layer, expert)) as BlockTensors
              await cpu.loadExpert(layer, expert, t)
              await ort.loadExpert(layer, expert, t)
            }
            continue
          }
          const g = logitsOf(got, what)
          assert.ok(maxAbsDiff(g.logits, want.logits) <= LOGITS_TOLERANCE, `${what}, pos ${pos}`)
          // the same token through a backend that never missed: bit for bit the same
          const f = logitsOf(await full.forward(token, pos), `${what} full`)
          assert.deepEqual(g.logits, f.logits, `${what}, pos ${pos}: rerun after loading differs from an uninterrupted run`)
          token = argmax(want.logits)
          break
        }
      }
      assert.ok(misses > 0, `${what}: the test should have hit missing experts`)
      ort.destroy()
      full.destroy()
    }
  })

  test('unload/reload: an unloaded expert is reported missing, and reloading it restores identical logits', async () => {
    const { arch } = TEST_ARCHS[0] as (typeof TEST_ARCHS)[number]
    const blocks = randomModel(arch, 5)
    const ort = await OrtBackend.create(arch)
    await loadModel(ort, arch, blocks)
    const before = logitsOf(await ort.forward(3, 0), 'pos 0')
    const [layer, [expert]] = [1, before.used[1] as number[]] as const
    ort.unloadExpert(layer, expert as number)
    ort.unloadExpert(layer, expert as number) // unloading twice is harmless
    const r = await ort.forward(3, 0)
    assert.ok('missing' in r)
    assert.deepEqual(r.missing, [{ layer, expert }])
    assert.deepEqual(r.selected, before.used.flatMap((es, l) => es.map((e) => ({ layer: l, expert: e }))))
    await ort.loadExpert(layer, expert as number, blocks.get(expertName(layer, expert as number)) as BlockTensors)
    assert.deepEqual(logitsOf(await ort.forward(3, 0), 'reloaded').logits, before.logits)
    // loading an expert that is already resident replaces it
    await ort.loadExpert(layer, expert as number, blocks.get(expertName(layer, expert as number)) as BlockTensors)
    assert.deepEqual(logitsOf(await ort.forward(3, 0), 'replaced').logits, before.logits)
    ort.destroy()
  })

  test('reset forgets the sequence: the same tokens give the same logits again', async () => {
    const ort = await OrtBackend.create(TINY_ARCH)
    await loadModel(ort, TINY_ARCH, devnetModel())
    const run = async (): Promise<Float32Array[]> => {
      const out: Float32Array[] = []
      for (const [pos, t] of [5, 9, 2, 7].entries()) out.push(logitsOf(await ort.forward(t, pos), `pos ${pos}`).logits)
      return out
    }
    const first = await run()
    ort.reset()
    assert.deepEqual(await run(), first)
    ort.destroy()
  })

  test('dequantizeAtLoad gives the same logits as dequantizing at every run', async () => {
    const { arch } = TEST_ARCHS[2] as (typeof TEST_ARCHS)[number]
    const blocks = randomModel(arch, 9)
    const a = await OrtBackend.create(arch)
    const b = await OrtBackend.create(arch, { dequantizeAtLoad: true })
    await loadModel(a, arch, blocks)
    await loadModel(b, arch, blocks)
    for (const [pos, t] of [1, 4, 8, 3].entries()) assert.deepEqual(logitsOf(await b.forward(t, pos), 'folded').logits, logitsOf(await a.forward(t, pos), 'per run').logits)
    a.destroy()
    b.destroy()
  })

  test('the Engine drives it like the CPU backend: same greedy tokens with an expert LRU of n_layers x top_k', async () => {
    const arch = (TEST_ARCHS[1] as (typeof TEST_ARCHS)[number]).arch
    const payloads = new Map(allBlockNames(arch).map((n, i) => [n, paramPayload(n, arch, 50 + i)]))
    const tokens: number[][] = []
    for (const make of [async () => new CpuBackend(arch), () => OrtBackend.create(arch)]) {
      const { model, tiles } = await memoryModel(arch, payloads)
      const engine = await Engine.create(model, await make(), tiles, { maxResidentExperts: arch.n_layers * arch.top_k })
      const g = await engine.generate([1, 4], { maxTokens: 16, sampler: new Sampler(arch.vocab_size) })
      assert.ok(engine.stats.expertsEvicted > 0, 'the LRU should have evicted experts')
      tokens.push(g.tokens)
      engine.destroy()
    }
    assert.deepEqual(tokens[1], tokens[0])
  })

  test('typed errors: forward before loadShared or after destroy, tokens and positions outside the model', async () => {
    const ort = await OrtBackend.create(TINY_ARCH)
    await assert.rejects(ort.forward(1, 0), (e: unknown) => e instanceof OrtBackendStateError && e.name === 'OrtBackendStateError')
    await assert.rejects(ort.loadShared(new Map()), RangeError)
    await loadModel(ort, TINY_ARCH, devnetModel())
    await assert.rejects(ort.forward(TINY_ARCH.vocab_size, 0), RangeError)
    await assert.rejects(ort.forward(1, TINY_ARCH.max_seq_len), RangeError)
    await assert.rejects(ort.forward(1.5, 0), RangeError)
    ort.destroy()
    await assert.rejects(ort.forward(1, 0), (e: unknown) => e instanceof OrtBackendStateError)
    await assert.rejects(ort.loadExpert(0, 0, new Map()), (e: unknown) => e instanceof OrtBackendStateError)
    await assert.rejects(OrtBackend.create(null as never), TypeError)
  })
})
