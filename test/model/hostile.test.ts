/**
 * Hostile inputs for every model-file parser: truncations at many offsets, flipped header bits,
 * oversized dimensions, garbage. The only acceptable failure is a ModelFormatError (never a
 * RangeError from a DataView, a JSON TypeError, an out-of-memory or a hang); some flips may still
 * parse, which is fine.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import fc from 'fast-check'
import { importModel } from '../../relay/import.ts'
import { ModelFormatError } from '../../src/model/errors.ts'
import { hfTokenizer, importHf, parseShardIndex, shardedSource } from '../../src/model/hf.ts'
import { importLlama2c, parseLlama2c } from '../../src/model/llama2c.ts'
import { parseSafetensors, parseSafetensorsHeader, writeSafetensors } from '../../src/model/safetensors.ts'
import { parseLlama2cTokenizer } from '../../src/model/tokenizer/llama2c-file.ts'
import { hfConfig, writeHfCheckpoint, type Json } from '../fixtures/hf.ts'
import { TINY_LLAMA2C, randomLlama2c, writeLlama2c, writeLlama2cTokenizer } from '../fixtures/llama2c.ts'
import { createRandom } from '../fixtures/random.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'

const root = mkdtempSync(join(tmpdir(), 'blyan-hostile-'))
after(() => rmSync(root, { recursive: true, force: true }))

/** Run `fn`; it may succeed, or throw a ModelFormatError with a one-line message; anything else fails the test. */
function onlyFormatErrors(fn: () => unknown, what: string): boolean {
  try {
    fn()
    return true
  } catch (e) {
    if (!(e instanceof ModelFormatError)) assert.fail(`${what}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`)
    assert.doesNotMatch(e.message, /\n/, what)
    assert.ok(e.offset === null || (Number.isSafeInteger(e.offset) && e.offset >= 0), `${what}: offset ${e.offset}`)
    return false
  }
}

function mustFail(fn: () => unknown, what: string): void {
  assert.equal(onlyFormatErrors(fn, what), false, `${what}: parsed`)
}

/** Offsets 0..dense, then `extra` random ones, then the last few. */
function cuts(length: number, dense: number, extra: number, seed: number): number[] {
  const rnd = createRandom(seed)
  const set = new Set<number>()
  for (let i = 0; i < Math.min(dense, length); i++) set.add(i)
  for (let i = 0; i < extra; i++) set.add(rnd.int(length))
  for (let i = 1; i <= 8 && i <= length; i++) set.add(length - i)
  return [...set].sort((a, b) => a - b)
}

function flipEachBit(bytes: Uint8Array, from: number, to: number, run: (b: Uint8Array, what: string) => void): void {
  for (let i = from; i < Math.min(to, bytes.length); i++) {
    for (let bit = 0; bit < 8; bit++) {
      const b = bytes.slice()
      b[i] = (b[i] as number) ^ (1 << bit)
      run(b, `byte ${i} bit ${bit}`)
    }
  }
}

function garbage(seed: number, count: number, maxLength: number, prefix: Uint8Array = new Uint8Array(0)): Uint8Array[] {
  const rnd = createRandom(seed)
  return Array.from({ length: count }, () => {
    const g = rnd.bytes(rnd.int(maxLength))
    const out = new Uint8Array(prefix.length + g.length)
    out.set(prefix)
    out.set(g, prefix.length)
    return out
  })
}

describe('hostile llama2.c checkpoints', () => {
  const ckpt = randomLlama2c(TINY_LLAMA2C, 11)
  for (const version of [0, 1, 2] as const) {
    test(`version ${version}: truncations, flipped header bits, oversized dims, garbage`, () => {
      const good = writeLlama2c(ckpt, version, 4)
      const parse = (b: Uint8Array, what: string): boolean => onlyFormatErrors(() => importLlama2c(b, { file: 'h.bin', experts: 2 }), what)
      assert.ok(parse(good, 'the good file'))
      for (const n of cuts(good.length, 300, 200, version)) mustFail(() => parseLlama2c(good.subarray(0, n), 'h.bin'), `cut at ${n}`)
      flipEachBit(good, 0, version === 0 ? 28 : 48, (b, what) => void parse(b, what))
      const view = (b: Uint8Array): DataView => new DataView(b.buffer)
      const first = version === 0 ? 0 : 8
      for (let field = 0; field < 7; field++) {
        for (const v of [0x7fffffff, -1, -0x80000000, 1 << 30, 65536]) {
          const b = good.slice()
          view(b).setInt32(first + 4 * field, v, true)
          // seq_len (field 6) sizes nothing in versions 1 and 2: 65536 is a valid context length there.
          if (version !== 0 && field === 6 && v === 65536) assert.ok(parse(b, 'seq_len 65536'))
          else mustFail(() => importLlama2c(b, { experts: 2 }), `field ${field} = ${v}`)
        }
      }
      if (version === 2) {
        for (const gs of [0x7fffffff, -4, 1 << 20]) {
          const b = good.slice()
          view(b).setInt32(37, gs, true)
          mustFail(() => parseLlama2c(b), `group size ${gs}`)
        }
      }
      const magic = version === 0 ? new Uint8Array(0) : good.subarray(0, 8)
      for (const [i, g] of garbage(20 + version, 300, 3000, magic).entries()) onlyFormatErrors(() => parseLlama2c(g), `garbage ${i}`)
    })
  }

  test('the real stories260K.bin and stories260K_q8.bin: truncations and header flips', (t) => {
    const v0 = sharedData('stories260K.bin')
    const v2 = sharedData('stories260K_q8.bin')
    if (v0 === null || v2 === null) return t.skip(SHARED_DATA_MISSING)
    for (const [bytes, header] of [[v0, 28], [v2, 48]] as const) {
      for (const n of cuts(bytes.length, 64, 150, bytes.length)) mustFail(() => parseLlama2c(bytes.subarray(0, n), 'stories260K'), `cut at ${n}`)
      flipEachBit(bytes, 0, header, (b, what) => void onlyFormatErrors(() => parseLlama2c(b), what))
    }
  })

  test('tokenizers: truncations, flips, garbage', () => {
    const good = writeLlama2cTokenizer(['<unk>', '<s>', '</s>', 'hello', ' world', 'x'])
    parseLlama2cTokenizer(good, 6)
    for (const n of cuts(good.length, good.length, 0, 1)) mustFail(() => parseLlama2cTokenizer(good.subarray(0, n), 6), `cut at ${n}`)
    flipEachBit(good, 0, good.length, (b, what) => void onlyFormatErrors(() => parseLlama2cTokenizer(b, 6), what))
    for (const [i, g] of garbage(3, 300, 200).entries()) onlyFormatErrors(() => parseLlama2cTokenizer(g, 6), `garbage ${i}`)
    const huge = new Uint8Array(4)
    new DataView(huge.buffer).setInt32(0, 7, true)
    mustFail(() => parseLlama2cTokenizer(huge, 1 << 22), 'a vocabulary of 4M tokens in 4 bytes')
  })
})

describe('hostile safetensors', () => {
  const good = writeSafetensors([
    { name: 'a', dtype: 'F32', shape: [2, 3], values: Float32Array.from([1, 2, 3, 4, 5, 6]) },
    { name: 'b', dtype: 'BF16', shape: [4], values: Float32Array.from([1, -1, 0.5, 2]) },
    { name: 'c', dtype: 'F16', shape: [], values: Float32Array.from([3]) }
  ], { format: 'pt' })

  test('truncations, flipped bits, garbage', () => {
    assert.ok(onlyFormatErrors(() => parseSafetensors(good), 'the good file'))
    for (const n of cuts(good.length, good.length, 0, 1)) mustFail(() => parseSafetensors(good.subarray(0, n)), `cut at ${n}`)
    flipEachBit(good, 0, good.length, (b, what) => void onlyFormatErrors(() => parseSafetensors(b), what))
    for (const [i, g] of garbage(4, 300, 300).entries()) onlyFormatErrors(() => parseSafetensors(g), `garbage ${i}`)
    const lengths = new Uint8Array(8)
    for (const n of [0, 1, 2, 2 ** 32 + 2, 2 ** 53]) {
      const b = good.slice()
      const v = new DataView(b.buffer)
      v.setUint32(0, n % 2 ** 32, true)
      v.setUint32(4, Math.floor(n / 2 ** 32), true)
      onlyFormatErrors(() => parseSafetensors(b), `header length ${n}`)
    }
    lengths.fill(0xff)
    mustFail(() => parseSafetensors(lengths), 'header length 2^64 - 1')
  })

  test('arbitrary JSON headers (fast-check)', () => {
    const entry = fc.record({
      dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I8', 'U64', 'X'), fc.anything()),
      shape: fc.oneof(fc.array(fc.oneof(fc.nat(8), fc.integer(), fc.double())), fc.anything()),
      data_offsets: fc.oneof(fc.tuple(fc.nat(64), fc.nat(64)), fc.anything())
    }, { requiredKeys: [] })
    const header = fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__metadata__', '__proto__', 'constructor')), fc.oneof(entry, fc.anything()))
    fc.assert(
      fc.property(header, fc.nat(64), (h, dataLength) => {
        const json = new TextEncoder().encode(JSON.stringify(h))
        const b = new Uint8Array(8 + json.length + dataLength)
        new DataView(b.buffer).setUint32(0, json.length, true)
        b.set(json, 8)
        onlyFormatErrors(() => parseSafetensors(b), JSON.stringify(h))
      }),
      { numRuns: 600, seed: 42 }
    )
  })
})

describe('hostile Hugging Face inputs', () => {
  const ck = writeHfCheckpoint(join(root, 'olmoe'), 'olmoe', { tokenizer: false })
  const bytes = new Uint8Array(writeSafetensors([...ck.tensors.values()]))
  const header = parseSafetensorsHeader(bytes, bytes.length, 'model.safetensors')
  const source = shardedSource([{ file: 'model.safetensors', header, read: (e) => bytes.subarray(e.begin, e.end) }], null)

  test('config.json with fields replaced by arbitrary values (fast-check)', () => {
    const base = hfConfig('olmoe')
    const keys = [...Object.keys(base), 'head_dim', 'rope_parameters', 'rope_scaling', 'mlp_only_layers', 'layer_types', 'sliding_window', 'num_local_experts', 'model_type']
    const value = fc.oneof(fc.anything(), fc.integer(), fc.constantFrom(0, -1, 1, 2, 3, 2 ** 31, 2 ** 53, 1e308, Infinity, NaN, 0.5, 'silu', 'olmoe', 'mixtral', 'qwen2_moe', null, true))
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 4 }), (edits) => {
        const config: Json = { ...base, ...edits }
        onlyFormatErrors(() => importHf(config, source), JSON.stringify(edits))
      }),
      { numRuns: 400, seed: 7 }
    )
    for (const config of [null, [], 'x', 1, { model_type: 'olmoe' }]) mustFail(() => importHf(config, source), JSON.stringify(config))
    // The largest architecture the meta schema allows, against a tiny checkpoint: fails at the first missing tensor, at once.
    const t0 = performance.now()
    mustFail(() => importHf({ ...base, num_hidden_layers: 1024, num_experts: 1024, hidden_size: 1 << 20, vocab_size: 1 << 22, num_attention_heads: 1024, num_key_value_heads: 1024 }, source), 'huge config')
    assert.ok(performance.now() - t0 < 1000, 'no work sized by the config before the checkpoint is consulted')
  })

  test('index json and tokenizer.json of arbitrary shape (fast-check)', () => {
    fc.assert(fc.property(fc.oneof(fc.anything(), fc.record({ weight_map: fc.dictionary(fc.string(), fc.anything()) })), (j) => void onlyFormatErrors(() => parseShardIndex(j), JSON.stringify(j))), { numRuns: 300, seed: 3 })
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.record({ model: fc.anything(), added_tokens: fc.anything() })), fc.anything(), fc.anything(), (tok, cfg, tcfg) => {
        const json = JSON.stringify(tok) ?? 'undefined'
        onlyFormatErrors(() => hfTokenizer(new TextEncoder().encode(json), cfg, tcfg), json)
      }),
      { numRuns: 300, seed: 4 }
    )
  })

  test('files on disk: garbage configs, shards, checkpoints and wrong kinds of paths', async () => {
    const dir = join(root, 'junk')
    const cases: [string, () => void][] = [
      ['garbage config.json', () => writeFileSync(join(dir, 'config.json'), '{"model_type": "olmoe", ')],
      ['config.json not an object', () => writeFileSync(join(dir, 'config.json'), '[1, 2]')],
      ['garbage shard', () => (writeHfCheckpoint(dir, 'olmoe', { tokenizer: false }), writeFileSync(join(dir, 'model.safetensors'), createRandom(1).bytes(500)))],
      ['empty shard', () => (writeHfCheckpoint(dir, 'olmoe', { tokenizer: false }), writeFileSync(join(dir, 'model.safetensors'), new Uint8Array(0)))],
      ['no shard', () => writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig('olmoe')))],
      ['garbage tokenizer.json', () => (writeHfCheckpoint(dir, 'olmoe'), writeFileSync(join(dir, 'tokenizer.json'), '\u0000'))],
      ['garbage index', () => (writeHfCheckpoint(dir, 'mixtral', { shards: 2 }), writeFileSync(join(dir, 'model.safetensors.index.json'), 'nope'))],
      ['config.json is a directory', () => mkdirSync(join(dir, 'config.json'))]
    ]
    for (const [what, make] of cases) {
      rmSync(dir, { recursive: true, force: true })
      mkdirSync(dir)
      make()
      await assert.rejects(importModel(dir), (e: unknown) => e instanceof ModelFormatError && !/\n/.test(e.message), what)
    }
    const bin = join(root, 'garbage.bin')
    for (const [i, g] of garbage(9, 20, 4000).entries()) {
      writeFileSync(bin, g)
      await assert.rejects(importModel(bin), (e: unknown) => e instanceof ModelFormatError && e.file === bin, `garbage.bin ${i}`)
    }
    writeFileSync(bin, writeLlama2c(randomLlama2c(TINY_LLAMA2C, 1), 0))
    await assert.rejects(importModel(bin, { tokenizer: join(root, 'missing.bin') }), (e: unknown) => e instanceof ModelFormatError && e.file === join(root, 'missing.bin'))
    writeFileSync(join(root, 'tok.bin'), createRandom(2).bytes(100))
    await assert.rejects(importModel(bin, { tokenizer: join(root, 'tok.bin') }), (e: unknown) => e instanceof ModelFormatError && e.file === join(root, 'tok.bin'))
  })
})
