import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ModelFormatError } from '../../src/model/errors.ts'
import { importLlama2c, parseLlama2c, type Llama2cLayer } from '../../src/model/llama2c.ts'
import { LLAMA2C_BOS, LLAMA2C_EOS, llama2cTokenizer, parseLlama2cTokenizer } from '../../src/model/tokenizer/llama2c-file.ts'
import { TINY_LLAMA2C, q80RoundTrip, randomLlama2c, writeLlama2c, writeLlama2cTokenizer } from '../fixtures/llama2c.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'

const LAYER_KEYS: (keyof Llama2cLayer)[] = ['attention_norm', 'wq', 'wk', 'wv', 'wo', 'ffn_norm', 'w1', 'w2', 'w3']

function throwsFormat(fn: () => unknown, re: RegExp, offset?: number | null): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${String(e)}`)
    assert.equal(e.name, 'ModelFormatError')
    assert.match(e.message, re)
    assert.doesNotMatch(e.message, /\n/)
    if (offset !== undefined) assert.equal(e.offset, offset)
    return true
  })
}

describe('llama2.c: the real stories260K checkpoints', () => {
  test('version 0: the facts of ../shared/data/README.md', (t) => {
    const bytes = sharedData('stories260K.bin')
    if (bytes === null) return t.skip(SHARED_DATA_MISSING)
    const { config, weights } = parseLlama2c(bytes, 'stories260K.bin')
    assert.deepEqual(config, { version: 0, dim: 64, hidden_dim: 172, n_layers: 5, n_heads: 8, n_kv_heads: 4, vocab_size: 512, seq_len: 512, shared_classifier: true, group_size: 0 })
    assert.equal(weights.output, null)
    assert.equal(weights.tok_embeddings.length, 512 * 64)
    assert.equal(weights.layers.length, 5)
    assert.equal(weights.layers[0]?.wk.length, 32 * 64)
    assert.equal(weights.layers[4]?.w2.length, 64 * 172)
    // The first embedding values, read independently from the file (header is 28 bytes).
    assert.equal(weights.tok_embeddings[0], new DataView(bytes.buffer, bytes.byteOffset).getFloat32(28, true))
  })

  test('version 2 (Q8_0, group size 4) holds the same weights within Q8_0 error', (t) => {
    const v0 = sharedData('stories260K.bin')
    const v2 = sharedData('stories260K_q8.bin')
    if (v0 === null || v2 === null) return t.skip(SHARED_DATA_MISSING)
    const a = parseLlama2c(v0)
    const b = parseLlama2c(v2)
    assert.deepEqual({ ...b.config, version: 0, group_size: 0 }, a.config)
    assert.equal(b.config.group_size, 4)
    // Q8_0 rounds each value to the nearest multiple of scale = max|group| / 127: error <= scale / 2.
    const gs = b.config.group_size
    const check = (x: Float32Array, y: Float32Array, what: string): void => {
      for (let g = 0; g < x.length / gs; g++) {
        let max = 0
        for (let i = 0; i < gs; i++) max = Math.max(max, Math.abs(x[g * gs + i] as number))
        for (let i = 0; i < gs; i++) {
          const err = Math.abs((x[g * gs + i] as number) - (y[g * gs + i] as number))
          assert.ok(err <= (max / 127) * 0.5 * (1 + 1e-5) + 1e-12, `${what}[${g * gs + i}]: error ${err} over half a step (${max / 254})`)
        }
      }
    }
    check(a.weights.tok_embeddings, b.weights.tok_embeddings, 'tok_embeddings')
    a.weights.layers.forEach((layer, l) => {
      for (const k of LAYER_KEYS) {
        const bl = b.weights.layers[l] as Llama2cLayer
        if (k.endsWith('norm')) assert.deepEqual(bl[k], layer[k], `layers[${l}].${k} is fp32 in both`)
        else check(layer[k], bl[k], `layers[${l}].${k}`)
      }
    })
    assert.deepEqual(b.weights.norm, a.weights.norm)
  })

  test('tok512.bin: 512 pieces, BOS 1 and EOS 2; a wrong vocabulary size is refused', (t) => {
    const bytes = sharedData('tok512.bin')
    if (bytes === null) return t.skip(SHARED_DATA_MISSING)
    const vocab = parseLlama2cTokenizer(bytes, 512, 'tok512.bin')
    assert.equal(vocab.max_token_length, 7)
    assert.equal(vocab.tokens.length, 512)
    const text = (i: number): string => new TextDecoder().decode(vocab.tokens[i]?.piece)
    assert.equal(text(0), '<unk>')
    assert.equal(text(LLAMA2C_BOS), '\n<s>\n')
    assert.equal(text(LLAMA2C_EOS), '\n</s>\n')
    assert.equal(text(403), ' Once') // README: top token after BOS
    const tok = llama2cTokenizer(bytes, 512, 'tok512.bin')
    assert.deepEqual({ format: tok.format, bos: tok.bos_id, eos: tok.eos_id, size: tok.bytes.length }, { format: 'llama2c', bos: 1, eos: 2, size: 6227 })
    throwsFormat(() => parseLlama2cTokenizer(bytes, 511, 'tok512.bin'), /^tok512\.bin: \d+ trailing bytes after 511 tokens/)
    throwsFormat(() => parseLlama2cTokenizer(bytes, 513, 'tok512.bin'), /^tok512\.bin: truncated at byte 6227: expected 4 more bytes of token 512 score$/, 6227)
  })

  test('a truncated or padded real checkpoint names the file, the byte and the tensor', (t) => {
    const bytes = sharedData('stories260K.bin')
    if (bytes === null) return t.skip(SHARED_DATA_MISSING)
    // Byte 1048576 falls in the freq_cis_imag block (floats 259968+2048.. of 264128 after the 28-byte header).
    throwsFormat(() => parseLlama2c(bytes.subarray(0, 1048576), 'stories260K.bin'), /^stories260K\.bin: truncated at byte 1048576: expected 7964 more bytes of freq_cis_imag$/, 1048576)
    const wqEnd = 28 + 4 * (32768 + 320 + 3 * 4096)
    throwsFormat(() => parseLlama2c(bytes.subarray(0, wqEnd - 100), 'stories260K.bin'), /truncated at byte \d+: expected 100 more bytes of layers\[2\]\.wq$/)
    const longer = new Uint8Array(bytes.length + 3)
    longer.set(bytes)
    throwsFormat(() => parseLlama2c(longer, 'stories260K.bin'), /^stories260K\.bin: 3 trailing bytes after the last tensor/, bytes.length)
  })
})

describe('llama2.c: synthetic checkpoints of every version', () => {
  for (const shared of [true, false]) {
    test(`versions 0 and 1 round-trip exactly; version 2 dequantizes as runq.c (shared classifier: ${shared})`, () => {
      const ckpt = randomLlama2c({ ...TINY_LLAMA2C, shared_classifier: shared }, shared ? 1 : 2)
      for (const version of [0, 1, 2] as const) {
        const parsed = parseLlama2c(writeLlama2c(ckpt, version, 4), `v${version}.bin`)
        assert.deepEqual(parsed.config, { ...ckpt.config, version, group_size: version === 2 ? 4 : 0 })
        const expect = (w: Float32Array): Float32Array => (version === 2 ? q80RoundTrip(w, 4) : w)
        assert.deepEqual(parsed.weights.tok_embeddings, expect(ckpt.weights.tok_embeddings))
        assert.deepEqual(parsed.weights.norm, ckpt.weights.norm)
        assert.deepEqual(parsed.weights.output, shared ? null : expect(ckpt.weights.output as Float32Array))
        ckpt.weights.layers.forEach((layer, l) => {
          for (const k of LAYER_KEYS) assert.deepEqual(parsed.weights.layers[l]?.[k], k.endsWith('norm') ? layer[k] : expect(layer[k]), `v${version} layers[${l}].${k}`)
        })
      }
    })
  }

  test('header rules: versions, flags, padding, group size, dims', () => {
    const ckpt = randomLlama2c(TINY_LLAMA2C, 3)
    const edit = (version: 0 | 1 | 2, f: (v: DataView, b: Uint8Array) => void): Uint8Array => {
      const b = writeLlama2c(ckpt, version, 4)
      f(new DataView(b.buffer), b)
      return b
    }
    throwsFormat(() => parseLlama2c(edit(2, (v) => v.setInt32(4, 3, true)), 'x.bin'), /^x\.bin: unsupported llama2\.c version 3 \(supported: 0, 1, 2\)$/, 4)
    throwsFormat(() => parseLlama2c(edit(1, (_, b) => void (b[36] = 2))), /shared_classifier flag is 2/, 36)
    throwsFormat(() => parseLlama2c(edit(2, (_, b) => void (b[200] = 1))), /header padding byte 200 is 1/, 200)
    throwsFormat(() => parseLlama2c(edit(2, (v) => v.setInt32(37, 0, true))), /group_size is 0/, 37)
    throwsFormat(() => parseLlama2c(edit(2, (v) => v.setInt32(37, 3, true))), /not a multiple of group_size 3/)
    throwsFormat(() => parseLlama2c(edit(1, (v) => v.setInt32(28, -32, true))), /config\.vocab_size is -32/, 28)
    throwsFormat(() => parseLlama2c(edit(0, (v) => v.setInt32(12, 3, true))), /config\.n_heads 3 does not divide dim 16/, 12)
    throwsFormat(() => parseLlama2c(edit(0, (v) => v.setInt32(16, 3, true))), /config\.n_kv_heads 3 does not divide n_heads 4/, 16)
    throwsFormat(() => parseLlama2c(edit(0, (v) => v.setInt32(12, 8, true))), /head size 2 is odd|truncated|trailing/)
    throwsFormat(() => parseLlama2c(edit(0, (v) => v.setInt32(8, 0, true))), /config\.n_layers is 0/, 8)
    throwsFormat(() => parseLlama2c(edit(0, (v) => v.setInt32(0, 1 << 30, true))), /truncated at byte \d+: expected \d+ more bytes of tok_embeddings \(the header describes a model far larger than the file\)/)
    throwsFormat(() => parseLlama2c(new Uint8Array(10), 'short.bin'), /^short\.bin: truncated at byte 10: expected 2 more bytes of config\.n_layers$/, 10)
  })

  test('NaN weights are refused with the byte offset', () => {
    const ckpt = randomLlama2c(TINY_LLAMA2C, 4)
    const bytes = writeLlama2c(ckpt, 0)
    new DataView(bytes.buffer).setFloat32(28 + 4 * 5, NaN, true)
    throwsFormat(() => parseLlama2c(bytes), /tok_embeddings\[5\] is NaN: tensors must be finite/, 48)
  })

  test('importLlama2c: blocks, architecture, options', () => {
    const ckpt = randomLlama2c({ ...TINY_LLAMA2C, shared_classifier: false }, 5)
    const m = importLlama2c(writeLlama2c(ckpt, 0), { experts: 3, topK: 2, file: 'tiny.bin' })
    assert.equal(m.source, 'llama2c')
    assert.deepEqual(
      { e: m.architecture.n_experts, k: m.architecture.top_k, h: m.architecture.expert_hidden_dim, tie: m.architecture.tie_embeddings, w: m.architecture.router_weighting, hd: m.architecture.head_dim },
      { e: 3, k: 2, h: 15, tie: false, w: 'unit', hd: 4 }
    )
    assert.deepEqual(m.blocks.get('embedding')?.map((t) => t.name), ['tok_embeddings', 'norm', 'output'])
    assert.deepEqual(m.blocks.get('layer1.router')?.[1]?.values, ckpt.weights.layers[1]?.wq, 'interleaved RoPE: wq stored unpermuted')
    assert.equal(m.tokenizer, null)
    const defaults = importLlama2c(writeLlama2c(ckpt, 0))
    assert.deepEqual([defaults.architecture.n_experts, defaults.architecture.top_k], [4, 4])
    assert.throws(() => importLlama2c(writeLlama2c(ckpt, 0), { experts: 0 }), RangeError)
    assert.throws(() => importLlama2c(writeLlama2c(ckpt, 0), { experts: 45 }), RangeError)
    assert.throws(() => importLlama2c(writeLlama2c(ckpt, 0), { experts: 2, topK: 3 }), RangeError)
  })

  test('tokenizer structure rules', () => {
    const pieces = ['<unk>', '<s>', '</s>', 'a', 'bc']
    const good = writeLlama2cTokenizer(pieces)
    assert.equal(parseLlama2cTokenizer(good, 5).tokens.length, 5)
    const edit = (f: (v: DataView) => void): Uint8Array => {
      const b = good.slice()
      f(new DataView(b.buffer))
      return b
    }
    throwsFormat(() => parseLlama2cTokenizer(edit((v) => v.setInt32(0, 0, true)), 5, 't.bin'), /^t\.bin: max_token_length is 0/, 0)
    throwsFormat(() => parseLlama2cTokenizer(edit((v) => v.setInt32(8, 6, true)), 5), /token 0 length is 6, expected 1\.\.5/, 8)
    throwsFormat(() => parseLlama2cTokenizer(edit((v) => v.setInt32(8, 0, true)), 5), /token 0 length is 0/)
    throwsFormat(() => parseLlama2cTokenizer(edit((v) => v.setFloat32(4, Infinity, true)), 5), /token 0 score is Infinity/, 4)
    throwsFormat(() => parseLlama2cTokenizer(good, 2), /needs BOS 1 and EOS 2, so at least 3 tokens; the model has 2/)
  })
})
