/**
 * WebGpuBackend against CpuBackend (the reference) on the devnet architecture and on random
 * architectures covering qk_norm, attention biases, shared experts with and without a gate, the
 * three router weightings, GQA and MHA, tied and untied classifiers, widths that are not multiples
 * of 4, and int8 / fp16 / fp32 / mixed payloads:
 * - per-token logits within 1e-3 (max abs) and the same experts used, over >= 16 tokens;
 * - prefill (several passes) equal to token-by-token, and decoding after it;
 * - the missing/selected protocol exactly as the CPU reports it, and logits after loading;
 * - the engine's LRU (unload / reload) generating the CPU's tokens;
 * - an int8 expert pool widened to float32 when a float expert arrives;
 * - device loss: DeviceLostError, then a new backend on a new device works.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Architecture } from '../../src/chain/meta.ts'
import { CpuBackend } from '../../src/engine/cpu.ts'
import { Engine } from '../../src/engine/engine.ts'
import type { BlockTensors, ForwardResult } from '../../src/engine/interface.ts'
import { WebGpuBackend } from '../../src/engine/webgpu.ts'
import { GPU_TUNING, type Tuning } from '../../src/gpu/tuning.ts'
import { Sampler } from '../../src/model/sampler.ts'
import { paramPayload, TINY_ARCH } from '../fixtures/devnet.ts'
import { blockNames } from '../../src/chain/params.ts'
import { createRandom } from '../fixtures/random.ts'
import { decodeAll, loadModel, memoryModel, randomPayloads, sharedOf } from './_model.ts'
import { nodeGpu } from '../../src/gpu/node.ts'
import { largestBuffer, requestModelDevice } from '../../src/gpu/device.ts'
import { NO_GPU, maxAbsDiff, newDevice, testGpu } from './_setup.ts'

const TOL = 1e-3
const gpu = await testGpu()

const arch = (o: Partial<Architecture>): Architecture => Object.freeze({ ...TINY_ARCH, ...o })

interface Case {
  readonly name: string
  readonly arch: Architecture
  readonly payloads: Map<string, Uint8Array>
  readonly tokens: number
}

const devnetPayloads = new Map(blockNames(TINY_ARCH).map((n, i) => [n, paramPayload(n, TINY_ARCH, 1000 + i)]))
const QK = arch({ dim: 16, n_heads: 4, n_kv_heads: 2, head_dim: 4, vocab_size: 40, max_seq_len: 40, expert_hidden_dim: 12, n_experts: 4, top_k: 2, router_weighting: 'softmax', qk_norm: true, tie_embeddings: false })
const SHARED = arch({ dim: 12, n_heads: 3, n_kv_heads: 1, head_dim: 6, vocab_size: 33, max_seq_len: 48, expert_hidden_dim: 10, n_experts: 3, top_k: 2, shared_expert_hidden_dim: 7, shared_expert_gate: true, attention_bias: true })
const UNIT = arch({ dim: 10, n_layers: 3, n_heads: 2, n_kv_heads: 2, head_dim: 6, vocab_size: 29, max_seq_len: 32, expert_hidden_dim: 13, n_experts: 4, top_k: 3, router_weighting: 'unit', shared_expert_hidden_dim: 5 })
const QWEN = arch({ dim: 64, n_heads: 4, n_kv_heads: 2, head_dim: 64, vocab_size: 64, max_seq_len: 80, expert_hidden_dim: 32, n_experts: 8, top_k: 2, router_weighting: 'softmax', qk_norm: true, attention_bias: true, shared_expert_hidden_dim: 16, shared_expert_gate: true, tie_embeddings: false, rope_theta: 1e6 })

const CASES: Case[] = [
  { name: 'devnet TINY_ARCH (int8, tied, GQA 2/1, softmax_topk)', arch: TINY_ARCH, payloads: devnetPayloads, tokens: 20 },
  { name: 'qk_norm, GQA 4/2, softmax, untied, fp32', arch: QK, payloads: randomPayloads(QK, 2, 'fp32'), tokens: 20 },
  { name: 'attention biases, gated shared expert, softmax_topk, tied, mixed int8/fp16/fp32', arch: SHARED, payloads: randomPayloads(SHARED, 3, 'mixed'), tokens: 20 },
  { name: 'unit weighting, ungated shared expert, widths 10/13/5, MHA, 3 layers, int8', arch: UNIT, payloads: randomPayloads(UNIT, 4, 'int8'), tokens: 16 },
  { name: 'all features, head_dim 64, 70 positions (past one attention tile), fp16', arch: QWEN, payloads: randomPayloads(QWEN, 5, 'fp16'), tokens: 70 }
]

function tokenStream(c: Case, seed: number): number[] {
  const rnd = createRandom(seed)
  return Array.from({ length: c.tokens }, () => rnd.int(c.arch.vocab_size))
}

function logitsOf(r: ForwardResult): Float32Array {
  if (!('logits' in r)) throw new Error(`expected logits, got missing ${JSON.stringify(r.missing)}`)
  return r.logits
}

describe('WebGpuBackend vs CpuBackend', { skip: gpu === null ? NO_GPU : false }, () => {
  const device = gpu?.device as GPUDevice
  const features = gpu?.wgslLanguageFeatures as ReadonlySet<string>

  /** Token-by-token logits and experts vs the CPU, then prefill (passes of 7) and decoding after it. */
  async function checkCase(c: Case, tuning: Tuning | undefined, count: number): Promise<void> {
    const blocks = decodeAll(c.arch, c.payloads)
    const all = c.arch.n_layers * c.arch.n_experts
    const cpu = new CpuBackend(c.arch)
    const g = await WebGpuBackend.create(device, c.arch, { maxResidentExperts: all, wgslLanguageFeatures: features, prefillTokens: 7, ...(tuning === undefined ? {} : { tuning }) })
    try {
      await loadModel(cpu, c.arch, blocks)
      await loadModel(g, c.arch, blocks)
      const tokens = tokenStream(c, 99).slice(0, count)
      const want: Float32Array[] = []
      let worst = 0
      for (let pos = 0; pos < tokens.length; pos++) {
        const rc = await cpu.forward(tokens[pos] as number, pos)
        const rg = await g.forward(tokens[pos] as number, pos)
        const err = maxAbsDiff(logitsOf(rg), logitsOf(rc))
        assert.ok(err <= TOL, `pos ${pos}: max |logit error| ${err}`)
        assert.deepEqual('used' in rg && rg.used, 'used' in rc && rc.used, `pos ${pos}: experts used`)
        worst = Math.max(worst, err)
        want.push(logitsOf(rc))
      }
      // prefill the first m tokens (several passes), then decode the rest after it
      g.reset()
      const m = Math.min(tokens.length - 3, 17)
      const rp = await g.prefill(tokens.slice(0, m), 0)
      let prefillErr = maxAbsDiff(logitsOf(rp), want[m - 1] as Float32Array)
      // the union of the experts the CPU used over the prompt
      const union = Array.from({ length: c.arch.n_layers }, () => new Set<number>())
      cpu.reset()
      for (let pos = 0; pos < m; pos++) {
        const r = await cpu.forward(tokens[pos] as number, pos)
        if ('used' in r) r.used.forEach((u, l) => u.forEach((e) => union[l]?.add(e)))
      }
      assert.deepEqual('used' in rp && rp.used.map((u) => [...u].sort()), union.map((u) => [...u].sort()), 'prefill: union of the experts used')
      for (let pos = m; pos < tokens.length; pos++) {
        prefillErr = Math.max(prefillErr, maxAbsDiff(logitsOf(await g.forward(tokens[pos] as number, pos)), want[pos] as Float32Array))
      }
      assert.ok(prefillErr <= TOL, `prefill: ${prefillErr}`)
      console.log(`${c.name} [${tuning?.name ?? 'auto'} tuning]: ${tokens.length} tokens, max |logit err| ${worst.toExponential(2)}; prefill(${m}) + decode ${prefillErr.toExponential(2)}; tolerance ${TOL}`)
    } finally {
      g.destroy()
      cpu.destroy()
    }
  }

  for (const c of CASES) {
    test(`${c.name}: ${c.tokens} tokens, then prefill in passes of 7`, () => checkCase(c, undefined, c.tokens))
  }

  test('the hardware tuning profile (GPU_TUNING) end to end', async () => {
    for (const c of CASES.slice(0, 4)) await checkCase(c, GPU_TUNING, 16)
  })

  test('missing/selected: the router\'s picks exactly as the CPU reports them, then equal logits after loading', async () => {
    for (const c of [CASES[2] as Case, CASES[3] as Case]) {
      const blocks = decodeAll(c.arch, c.payloads)
      const cpu = new CpuBackend(c.arch)
      const g = await WebGpuBackend.create(device, c.arch, { maxResidentExperts: c.arch.n_layers * c.arch.n_experts, wgslLanguageFeatures: features })
      const rnd = createRandom(7)
      try {
        // start with expert 0 of every layer only
        const keep = (_l: number, e: number): boolean => e === 0
        await loadModel(cpu, c.arch, blocks, keep)
        await loadModel(g, c.arch, blocks, keep)
        const tokens = tokenStream(c, 5)
        let retries = 0
        let worst = 0
        for (let pos = 0; pos < tokens.length; pos++) {
          for (;;) {
            const rc = await cpu.forward(tokens[pos] as number, pos)
            const rg = await g.forward(tokens[pos] as number, pos)
            if ('logits' in rc) {
              worst = Math.max(worst, maxAbsDiff(logitsOf(rg), rc.logits))
              break
            }
            assert.ok('missing' in rg, `pos ${pos}: the GPU found nothing missing, the CPU ${JSON.stringify(rc.missing)}`)
            assert.deepEqual(rg.missing, rc.missing, `pos ${pos}: missing`)
            assert.deepEqual(rg.selected, rc.selected, `pos ${pos}: selected`)
            for (const { layer, expert } of rc.missing) {
              const t = blocks.get(`layer${layer}.expert${expert}`) as BlockTensors
              await cpu.loadExpert(layer, expert, t)
              await g.loadExpert(layer, expert, t)
            }
            retries++
          }
          // unload a random expert from both now and then
          if (rnd.next() < 0.5) {
            const l = rnd.int(c.arch.n_layers)
            const e = rnd.int(c.arch.n_experts)
            cpu.unloadExpert(l, e)
            g.unloadExpert(l, e)
          }
        }
        assert.ok(retries > 3, `only ${retries} retries: the test did not exercise the protocol`)
        assert.ok(worst <= TOL, `logits after loading: ${worst}`)
        console.log(`${c.name}: ${retries} missing/selected reports identical to the CPU's; logits max |err| ${worst.toExponential(2)}`)
      } finally {
        g.destroy()
        cpu.destroy()
      }
    }
  })

  test('engine: LRU of n_layers x top_k experts (unload/reload) and prefill generate the CPU engine\'s tokens', async () => {
    const c = CASES[1] as Case
    const { model, tiles } = await memoryModel(c.arch, c.payloads)
    const small = c.arch.n_layers * c.arch.top_k
    const run = async (backend: CpuBackend | WebGpuBackend, maxResidentExperts: number, prompt: number[]) => {
      const engine = await Engine.create(model, backend, tiles, { maxResidentExperts })
      try {
        const out = await engine.generate(prompt, { maxTokens: 24, sampler: new Sampler(c.arch.vocab_size, { temperature: 0 }) })
        return { tokens: out.tokens, evicted: engine.stats.expertsEvicted, retries: engine.stats.retries }
      } finally {
        engine.destroy()
      }
    }
    const all = c.arch.n_layers * c.arch.n_experts
    const prompt = [1, 5, 9, 2, 30, 7, 11]
    // A prompt whose experts exceed the small LRU: the engine falls back from prefill to token by token.
    const lruCpu = await run(new CpuBackend(c.arch), small, prompt)
    const lruGpu = await run(await WebGpuBackend.create(device, c.arch, { maxResidentExperts: small, wgslLanguageFeatures: features, prefillTokens: 4 }), small, prompt)
    assert.deepEqual(lruGpu.tokens, lruCpu.tokens)
    assert.ok(lruGpu.evicted > 0, 'the LRU never evicted')
    const pCpu = await run(new CpuBackend(c.arch), all, prompt)
    const pGpu = await run(await WebGpuBackend.create(device, c.arch, { maxResidentExperts: all, wgslLanguageFeatures: features, prefillTokens: 4 }), all, prompt)
    assert.deepEqual(pGpu.tokens, pCpu.tokens)
    console.log(`engine: LRU of ${small}: ${lruGpu.tokens.length} tokens equal to the CPU's, ${lruGpu.evicted} evictions, ${lruGpu.retries} retries; prefill of ${prompt.length}: ${pGpu.tokens.length} tokens equal`)
  })

  test('an int8 expert pool is widened to float32 when a float expert arrives', async () => {
    const c = CASES[3] as Case
    const blocks = decodeAll(c.arch, c.payloads)
    const f32 = decodeAll(c.arch, randomPayloads(c.arch, 77, 'fp32'))
    const cpu = new CpuBackend(c.arch)
    const g = await WebGpuBackend.create(device, c.arch, { maxResidentExperts: c.arch.n_layers * c.arch.n_experts, wgslLanguageFeatures: features })
    try {
      await loadModel(cpu, c.arch, blocks)
      await loadModel(g, c.arch, blocks)
      const replaced = f32.get('layer1.expert2') as BlockTensors
      await cpu.loadExpert(1, 2, replaced)
      await g.loadExpert(1, 2, replaced)
      let worst = 0
      for (const [pos, t] of tokenStream(c, 8).entries()) {
        worst = Math.max(worst, maxAbsDiff(logitsOf(await g.forward(t, pos)), logitsOf(await cpu.forward(t, pos))))
      }
      assert.ok(worst <= TOL, `${worst}`)
      console.log(`widened pool: max |logit err| ${worst.toExponential(2)}`)
    } finally {
      g.destroy()
      cpu.destroy()
    }
  })

  test('device loss: forward rejects with DeviceLostError; a new backend on a new device works', async () => {
    const c = CASES[0] as Case
    const blocks = decodeAll(c.arch, c.payloads)
    const all = c.arch.n_layers * c.arch.n_experts
    // an adapter gives one device: each device needs a fresh adapter
    const adapter = async (): Promise<GPUAdapter> => ((await nodeGpu()) ?? assert.fail('no adapter')).adapter
    const doomed = await newDevice(await adapter())
    const g = await WebGpuBackend.create(doomed, c.arch, { maxResidentExperts: all, wgslLanguageFeatures: features })
    await loadModel(g, c.arch, blocks)
    logitsOf(await g.forward(1, 0))
    doomed.destroy()
    await assert.rejects(g.forward(2, 1), (e: Error) => e.name === 'DeviceLostError')
    await assert.rejects(g.forward(2, 1), (e: Error) => e.name === 'DeviceLostError')
    await assert.rejects(g.loadExpert(0, 0, blocks.get('layer0.expert0') as BlockTensors), (e: Error) => e.name === 'DeviceLostError')
    g.destroy()

    const fresh = await requestModelDevice(await adapter(), c.arch, { maxResidentExperts: all })
    assert.ok(fresh.limits.maxStorageBufferBindingSize >= largestBuffer(c.arch, { maxResidentExperts: all }))
    const cpu = new CpuBackend(c.arch)
    const h = await WebGpuBackend.create(fresh, c.arch, { maxResidentExperts: all, wgslLanguageFeatures: features })
    try {
      await loadModel(h, c.arch, blocks)
      await loadModel(cpu, c.arch, blocks)
      for (let pos = 0; pos < 4; pos++) {
        assert.ok(maxAbsDiff(logitsOf(await h.forward(pos + 1, pos)), logitsOf(await cpu.forward(pos + 1, pos))) <= TOL)
      }
    } finally {
      h.destroy()
      fresh.destroy()
    }
  })

  test('argument checks', async () => {
    const c = CASES[0] as Case
    await assert.rejects(WebGpuBackend.create(device, c.arch, { maxResidentExperts: 0 }), RangeError)
    const g = await WebGpuBackend.create(device, c.arch, { maxResidentExperts: 1, wgslLanguageFeatures: features })
    try {
      await assert.rejects(g.forward(0, 0), /loadShared first/)
      const blocks = decodeAll(c.arch, c.payloads)
      await g.loadShared(sharedOf(c.arch, blocks))
      await assert.rejects(g.forward(c.arch.vocab_size, 0), RangeError)
      await assert.rejects(g.forward(0, c.arch.max_seq_len), RangeError)
      await assert.rejects(g.prefill([1, 2], c.arch.max_seq_len - 1), RangeError)
      await g.loadExpert(0, 0, blocks.get('layer0.expert0') as BlockTensors)
      await assert.rejects(g.loadExpert(0, 1, blocks.get('layer0.expert1') as BlockTensors), /expert slots are in use/)
      g.unloadExpert(0, 0)
      await g.loadExpert(0, 1, blocks.get('layer0.expert1') as BlockTensors)
      assert.deepEqual([...g.resident], ['0.1'])
    } finally {
      g.destroy()
    }
  })
})
