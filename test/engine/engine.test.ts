/**
 * The engine with the CPU reference backend: greedy decoding of the real model, selective loading
 * (bytes fetched = shared blocks + exactly the experts used, less than the model), the expert LRU,
 * and bad weights refused with a typed error before any backend work.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { EMBEDDING_NAME, expertName, routerName } from '../../src/chain/header.ts'
import { CpuBackend } from '../../src/engine/cpu.ts'
import { Engine, type LoadEvent } from '../../src/engine/engine.ts'
import type { Backend, BlockTensors } from '../../src/engine/interface.ts'
import { Sampler } from '../../src/model/sampler.ts'
import { RuleError } from '../../src/errors.ts'
import { parsePayload } from '../../src/tensor/payload.ts'
import { importModel } from '../../relay/import.ts'
import { TINY_ARCH, paramPayload } from '../fixtures/devnet.ts'
import { importedPayloads, memoryModel } from '../fixtures/engine.ts'
import { SHARED_DATA_MISSING, sharedData, sharedPath } from '../fixtures/shared-data.ts'

const REFERENCE = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298]

function tinyPayloads(arch = TINY_ARCH): Map<string, Uint8Array> {
  const names = [EMBEDDING_NAME]
  for (let l = 0; l < arch.n_layers; l++) {
    names.push(routerName(l))
    for (let e = 0; e < arch.n_experts; e++) names.push(expertName(l, e))
  }
  return new Map(names.map((n, i) => [n, paramPayload(n, arch, 1000 + i)]))
}

/** A backend that records calls and delegates to the CPU backend. */
function spy(inner: Backend): Backend & { calls: string[] } {
  const calls: string[] = []
  return {
    name: inner.name,
    calls,
    loadShared: (b: ReadonlyMap<string, BlockTensors>) => (calls.push('loadShared'), inner.loadShared(b)),
    loadExpert: (l: number, e: number, t: BlockTensors) => (calls.push(`load ${l}.${e}`), inner.loadExpert(l, e, t)),
    unloadExpert: (l: number, e: number) => (calls.push(`unload ${l}.${e}`), inner.unloadExpert(l, e)),
    forward: (t: number, p: number) => inner.forward(t, p),
    reset: () => inner.reset(),
    destroy: () => inner.destroy()
  }
}

describe('engine on the CPU reference', () => {
  test('stories260K, 4 experts, top_k 4, int8 and f32: greedy decoding gives the reference text ids', async (t) => {
    if (sharedData('stories260K.bin') === null) return t.skip(SHARED_DATA_MISSING)
    const imported = await importModel(sharedPath('stories260K.bin'), { experts: 4 })
    for (const dtype of ['fp32', 'int8'] as const) {
      const { model, tiles } = await memoryModel(imported.architecture, importedPayloads(imported, dtype))
      const engine = await Engine.create(model, new CpuBackend(model.architecture), tiles)
      const g = await engine.generate([1], { maxTokens: 32, sampler: new Sampler(model.architecture.vocab_size) })
      assert.deepEqual(g.tokens.slice(0, REFERENCE.length), REFERENCE, dtype)
      assert.equal(g.experts.length, 5 * 4)
    }
  })

  test('loads report themselves to whoever asked: each block as it arrives and where from, then the upload; a generation\'s signal aborts its loads', async () => {
    const { model, tiles, dagBytes } = await memoryModel(TINY_ARCH, tinyPayloads())
    const shared: LoadEvent[] = []
    const engine = await Engine.create(model, new CpuBackend(TINY_ARCH), tiles, { onLoad: (e) => shared.push(e) })
    const sharedNames = [EMBEDDING_NAME, ...Array.from({ length: TINY_ARCH.n_layers }, (_, l) => routerName(l))]
    /** Per block: that its fetch started before anything arrived, the bytes that arrived (all from the store), and its upload. */
    const perBlock = (events: readonly LoadEvent[]): Map<string, { started: boolean; arrived: number; loaded: number | null }> => {
      const out = new Map<string, { started: boolean; arrived: number; loaded: number | null }>()
      for (const e of events) {
        const b = out.get(e.block.name) ?? { started: false, arrived: 0, loaded: null }
        if (e.type === 'fetch' && e.arrival === null) b.started = b.arrived === 0
        else if (e.type === 'fetch' && e.arrival !== null) {
          assert.equal(e.arrival.from, 'a test store')
          assert.equal(b.loaded, null, 'nothing arrives after the upload')
          b.arrived += e.arrival.bytes
        } else if (e.type === 'load') b.loaded = e.bytes
        out.set(e.block.name, b)
      }
      return out
    }
    const s = perBlock(shared)
    assert.deepEqual([...s.keys()].sort(), [...sharedNames].sort(), 'create loads the shared blocks, and reports them to its own listener')
    for (const [name, b] of s) assert.deepEqual(b, { started: true, arrived: dagBytes.get(name), loaded: model.blocks.get(name)?.payloadSize }, name)

    const used: LoadEvent[] = []
    const g = await engine.generate([1], { maxTokens: 4, sampler: new Sampler(TINY_ARCH.vocab_size), onLoad: (e) => used.push(e) })
    const u = perBlock(used)
    assert.deepEqual([...u.keys()].sort(), g.experts.map((e) => e.name).sort(), 'a generation hears of exactly the experts it loaded')
    for (const [name, b] of u) assert.deepEqual(b, { started: true, arrived: dagBytes.get(name), loaded: model.blocks.get(name)?.payloadSize }, name)

    const fresh = await Engine.create(model, new CpuBackend(TINY_ARCH), tiles)
    const controller = new AbortController()
    const aborted = fresh.generate([1], { maxTokens: 4, sampler: new Sampler(TINY_ARCH.vocab_size), signal: controller.signal, onLoad: (e) => { if (e.type === 'fetch') controller.abort(new Error('stopped while loading')) } })
    await assert.rejects(aborted, /stopped while loading/)
  })

  test('with top_k < n_experts, bytes fetched = shared blocks + exactly the experts used, less than the whole model', async (t) => {
    const cases: { what: string; arch: typeof TINY_ARCH; payloads: Map<string, Uint8Array> }[] = [
      { what: 'tiny random model, top-1 of 2', arch: TINY_ARCH, payloads: tinyPayloads() }
    ]
    if (sharedData('stories260K.bin') !== null) {
      const imported = await importModel(sharedPath('stories260K.bin'), { experts: 8, topK: 2 })
      cases.push({ what: 'stories260K, top-2 of 8', arch: imported.architecture, payloads: importedPayloads(imported, 'int8') })
    } else {
      t.diagnostic(SHARED_DATA_MISSING)
    }
    for (const c of cases) {
      const { model, tiles, dagBytes } = await memoryModel(c.arch, c.payloads)
      const engine = await Engine.create(model, new CpuBackend(c.arch), tiles)
      const g = await engine.generate([1], { maxTokens: 12, sampler: new Sampler(c.arch.vocab_size) })
      const shared = [EMBEDDING_NAME, ...Array.from({ length: c.arch.n_layers }, (_, l) => routerName(l))]
      const expected = [...shared, ...g.experts.map((e) => e.name)].reduce((n, name) => n + (dagBytes.get(name) as number), 0)
      const whole = [...dagBytes.values()].reduce((a, b) => a + b, 0)
      assert.equal(tiles.stats.bytes, expected, c.what)
      assert.ok(tiles.stats.bytes < whole, `${c.what}: ${tiles.stats.bytes} of ${whole} bytes`)
      assert.ok(g.experts.length < c.arch.n_layers * c.arch.n_experts, `${c.what}: some experts unused`)
      console.log(`# ${c.what}: fetched ${tiles.stats.bytes} of ${whole} bytes (${g.experts.length} of ${c.arch.n_layers * c.arch.n_experts} experts used)`)
    }
  })

  test('the expert LRU evicts the least recently used expert and reloads it on demand, with identical results', async () => {
    const payloads = tinyPayloads()
    const full = await memoryModel(TINY_ARCH, payloads)
    const reference = await (await Engine.create(full.model, new CpuBackend(TINY_ARCH), full.tiles)).generate([1, 5, 9], { maxTokens: 20, sampler: new Sampler(16) })
    const small = await memoryModel(TINY_ARCH, payloads)
    const backend = spy(new CpuBackend(TINY_ARCH))
    const engine = await Engine.create(small.model, backend, small.tiles, { maxResidentExperts: TINY_ARCH.n_layers * TINY_ARCH.top_k })
    const g = await engine.generate([1, 5, 9], { maxTokens: 20, sampler: new Sampler(16) })
    assert.deepEqual(g.tokens, reference.tokens)
    assert.ok(engine.stats.expertsEvicted > 0, 'something was evicted')
    assert.ok(backend.calls.some((c) => c.startsWith('unload')))
    await assert.rejects(Engine.create(small.model, new CpuBackend(TINY_ARCH), small.tiles, { maxResidentExperts: 1 }), /needs up to 2 experts/)
  })

  test('weights with NaN or with shapes other than chain A says are refused with a typed error before the backend sees any', async () => {
    const payloads = tinyPayloads()
    // A NaN in the first layer's attention norm (an fp32 tensor): the bytes are a valid payload otherwise.
    const router = (payloads.get(routerName(0)) as Uint8Array).slice()
    const norm = parsePayload(router).index.tensors.find((x) => x.name === 'attention_norm')
    assert.ok(norm !== undefined)
    new DataView(router.buffer).setFloat32(norm.offset + 256 + 4, NaN, true)
    const withNaN = new Map(payloads)
    withNaN.set(routerName(0), router)
    // An expert block holding a router's tensors.
    const misshapen = new Map(payloads)
    misshapen.set(expertName(1, 1), paramPayload(routerName(1), TINY_ARCH, 5))
    for (const [what, p, code, when] of [['NaN', withNaN, 'E_NONFINITE', 'create'], ['shape', misshapen, 'E_SHAPE', 'expert']] as const) {
      const { model, tiles } = await memoryModel(TINY_ARCH, p)
      const backend = spy(new CpuBackend(TINY_ARCH))
      let error: unknown
      try {
        const engine = await Engine.create(model, backend, tiles)
        // Force every expert through the loader: the misshapen one must be refused on load.
        for (let pos = 0; pos < 16; pos++) await engine.step(pos % 16, pos)
      } catch (e) {
        error = e
      }
      assert.ok(error instanceof RuleError, `${what}: ${String(error)}`)
      assert.equal(error.code, code)
      if (when === 'create') assert.deepEqual(backend.calls, [], 'no backend call before the refusal')
      else assert.ok(!backend.calls.includes('load 1.1'), 'the misshapen expert never reached the backend')
    }
  })

  test('a tile source serving tampered bytes is refused (E_TILE), and the engine never starts', async () => {
    const payloads = tinyPayloads()
    const mem = await memoryModel(TINY_ARCH, payloads)
    const block = mem.model.blocks.get(EMBEDDING_NAME)
    assert.ok(block !== undefined)
    const bytes = (payloads.get(EMBEDDING_NAME) as Uint8Array).slice()
    bytes[300] = (bytes[300] as number) ^ 1
    mem.tamper(block.payload, bytes)
    await assert.rejects(Engine.create(mem.model, new CpuBackend(TINY_ARCH), mem.tiles), (e: unknown) => e instanceof RuleError && e.code === 'E_TILE')
  })

  test('evaluate: mean next-token cross-entropy over windows', async () => {
    const { model, tiles } = await memoryModel(TINY_ARCH, tinyPayloads())
    const engine = await Engine.create(model, new CpuBackend(TINY_ARCH), tiles)
    const tokens = Array.from({ length: 70 }, (_, i) => (i * 7) % 16)
    const r = await engine.evaluate(tokens)
    assert.equal(r.predicted, 31 + 31 + 5, 'windows of 32: 31 + 31 + 5 predictions')
    assert.ok(r.loss > 0 && r.loss < 10, `loss ${r.loss}`)
  })
})
