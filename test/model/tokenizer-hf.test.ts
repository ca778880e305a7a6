/**
 * Hugging Face tokenizer.json (src/model/tokenizer/hf.ts and its steps / regex files).
 *
 * Expected ids come from running the algorithm by hand over the small files in
 * test/fixtures/tokenizer-json.ts (each derivation is written beside its ids: symbols, then merges
 * by rank, the leftmost of equals). While this was written every one of them was also checked
 * against Hugging Face `tokenizers` 0.23 (its Node binding, outside the project), as were the
 * regex translations in the last suite.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import fc from 'fast-check'
import { importModel } from '../../relay/import.ts'
import { ModelFormatError } from '../../src/model/errors.ts'
import { hfTokenizer } from '../../src/model/hf.ts'
import { TextStream, createTokenizer, tokenizerOf, type Tokenizer } from '../../src/model/tokenizer/index.ts'
import { onigRegex } from '../../src/model/tokenizer/hf-regex.ts'
import { JsonAt, buildPreTokenizer } from '../../src/model/tokenizer/hf-steps.ts'
import { TOKENIZER_JSON, writeHfCheckpoint } from '../fixtures/hf.ts'
import { ENDOFTEXT, IM_END, IM_START, QWEN2_PATTERN, bl, blVocab, byteLevelJson, jsonBytes, sentencePieceJson, sp, spByte } from '../fixtures/tokenizer-json.ts'

const root = mkdtempSync(join(tmpdir(), 'blyan-tokenizer-'))
after(() => rmSync(root, { recursive: true, force: true }))

const hf = (json: unknown, vocabSize = 300, bos = 1, eos = 2): Tokenizer => createTokenizer('hf_tokenizer_json', jsonBytes(json), vocabSize, bos, eos, 'tokenizer.json')

/** Asserts a ModelFormatError about tokenizer.json whose message matches `re`. */
const formatError = (re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${String(e)}`)
  assert.equal(e.name, 'ModelFormatError')
  assert.match(e.message, re)
  return true
}

describe('tokenizer.json, SentencePiece style (Mixtral): byte-fallback BPE', () => {
  const tok = hf(sentencePieceJson('legacy'))

  test('merges by rank, the leftmost of equal ranks', () => {
    // Normalized "▁hello▁world": ▁ h e l l o ▁ w o r l d. Ranks: "▁ h" 0, "l o" 1, "e l" 2, "▁ w" 3,
    // "o r" 4, then "▁h el" 5 (now adjacent), "▁hel lo" 6, "▁w or" 7, "l d" 8, "▁wor ld" 9.
    assert.deepEqual(tok.encode('hello world'), [sp('▁hello'), sp('▁world')])
    // "▁abc": "b c" (10) outranks "a b" (11), and "a bc" is no merge.
    assert.deepEqual(tok.encode('abc'), [sp('▁'), sp('a'), sp('bc')])
    // "▁aaa": "a a" (12) at two places: the left one merges.
    assert.deepEqual(tok.encode('aaa'), [sp('▁'), sp('aa'), sp('a')])
    assert.deepEqual(tok.encode('aaaa'), [sp('▁'), sp('aa'), sp('aa')])
    // "▁é": "▁ é" (13).
    assert.deepEqual(tok.encode('é'), [sp('▁é')])
    // Spaces become ▁: "▁hello▁▁world" leaves one ▁ alone.
    assert.deepEqual(tok.encode('hello  world'), [sp('▁hello'), sp('▁'), sp('▁world')])
  })

  test('byte fallback: characters outside the vocabulary are <0xXX> tokens, and decode back', () => {
    // "i" and "!" are not tokens: 0x69 and 0x21 fall back to ids 3 + byte.
    assert.deepEqual(tok.encode('hi!'), [sp('▁h'), spByte(0x69), spByte(0x21)])
    assert.deepEqual(tok.encode('😀'), [sp('▁'), spByte(0xf0), spByte(0x9f), spByte(0x98), spByte(0x80)])
    for (const s of ['hi!', '😀', '日本語', 'mixed é and 🐉', ' leading', 'two  spaces', 'tab\tnew\nline']) assert.equal(tok.decode(tok.encode(s, { bos: true })), s)
    // An invalid byte run decodes as one U+FFFD per byte (ByteFallback), never as a broken string.
    assert.equal(tok.decode([spByte(0xf0), spByte(0x9f), sp('a')]), '\uFFFD\uFFFDa')
  })

  test('unk: fused or not when byte fallback is off', () => {
    // "▁hxxh": x is no token: <unk> (0) per x, or one <unk> for the run with fuse_unk.
    assert.deepEqual(hf(sentencePieceJson('legacy', { byte_fallback: false, fuse_unk: false })).encode('hxxh'), [sp('▁h'), 0, 0, sp('h')])
    assert.deepEqual(hf(sentencePieceJson('legacy', { byte_fallback: false })).encode('hxxh'), [sp('▁h'), 0, sp('h')])
    assert.throws(() => hf(sentencePieceJson('legacy', { byte_fallback: false, unk_token: '<nope>' })).encode('x'), formatError(/unk_token "<nope>" is not in model.vocab/))
  })

  test('special tokens are matched before normalization and skipped when decoding', () => {
    assert.deepEqual(tok.encode('<s>hello'), [1, sp('▁hello')])
    assert.deepEqual(tok.encode('hello</s>'), [sp('▁hello'), 2])
    assert.equal(tok.decode([1, sp('▁hello'), sp('▁world'), 2]), 'hello world')
    assert.deepEqual(tok.encode(''), [])
    assert.deepEqual(tok.encode('hello', { bos: true, eos: true }), [1, sp('▁hello'), 2])
  })

  test('decode: Replace, ByteFallback, Fuse, then Strip the one leading space', () => {
    assert.equal(tok.decode([sp('▁hello'), sp('▁world')]), 'hello world')
    assert.equal(tok.decode([sp('▁world')]), 'world')
    assert.equal(tok.decodeToken(sp('▁hello'), sp('▁world')), ' world')
    assert.equal(tok.decodeToken(1, sp('▁hello')), 'hello')
    assert.equal(tok.decodeToken(-1, sp('▁world')), 'world')
    const stream = new TextStream(tok)
    const ids = tok.encode('hello 😀 world', { bos: true })
    assert.equal(ids.map((id) => stream.push(id)).join('') + stream.flush(), 'hello 😀 world')
  })

  test('Metaspace pre-tokenizer, prepend_scheme "first": ▁ only at the very start of the text', () => {
    const ms = hf(sentencePieceJson('metaspace'))
    assert.deepEqual(ms.encode('hello world'), [sp('▁hello'), sp('▁world')])
    // After <s> the text no longer starts the input: "hello" gets no ▁ (h, e l -> el, l o -> lo).
    assert.deepEqual(ms.encode('<s>hello'), [1, sp('h'), sp('el'), sp('lo')])
    assert.deepEqual(ms.encode('<s> hello'), [1, sp('▁hello')])
    assert.equal(ms.decode(ms.encode('<s>hello world')), 'hello world')
  })

  test('round trip without ▁ in the text (fast-check)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        if (s.includes('▁')) return
        assert.equal(tok.decode(tok.encode(s)), s)
      }),
      { numRuns: 300, seed: 5 }
    )
  })
})

describe('tokenizer.json, GPT-2 byte level (OLMoE, Qwen2-MoE)', () => {
  // BOS / EOS decode to nothing: here they are <|endoftext|>, not the bytes 1 and 2.
  const olmoe = hf(byteLevelJson('olmoe'), 300, ENDOFTEXT, ENDOFTEXT)
  const qwen = hf(byteLevelJson('qwen2'), 300, ENDOFTEXT, IM_END)

  test('ByteLevel pre-tokenizer with the GPT-2 regex (OLMoE)', () => {
    // "Hello" | " world" | "!": H e l l o: "H e" 6, "l l" 7, "He ll" 8, "Hell o" 9; Ġ w o r l d: "Ġ w" 10,
    // "o r" 11, "Ġw or" 12, "l d" 13, "Ġwor ld" 14; "!" is byte 0x21.
    assert.deepEqual(olmoe.encode('Hello world!'), [bl('Hello'), bl('Ġworld'), 0x21])
    // GPT-2 regex: "I" | "'" | "M" ('m is lowercase only) | " 123" | " fine" | "\n" | "\n" | "ok".
    // " 123" -> Ġ 1 2 3 with "Ġ 1" 17; " fine" -> "Ġ f" 0, "i n" 1, "Ġf in" 2, "Ġfin e" 3; "o k" 4.
    assert.deepEqual(olmoe.encode("I'M 123 fine\n\nok"), [0x49, 0x27, 0x4d, bl('Ġ1'), 0x32, 0x33, bl('Ġfine'), 0x0a, 0x0a, bl('ok')])
    assert.deepEqual(olmoe.encode('ok<|endoftext|>ok'), [bl('ok'), ENDOFTEXT, bl('ok')])
    assert.equal(olmoe.decode([bl('ok'), ENDOFTEXT, bl('ok')]), 'okok')
  })

  test('Split with the Qwen2 regex, case-insensitive contractions, then ByteLevel (Qwen2)', () => {
    // Qwen2 regex: "I" | "'M" ((?i:'m)) | " " | "1" | "2" | "3" (one digit each) | " fine" | "\n\n" | "ok".
    assert.deepEqual(qwen.encode("I'M 123 fine\n\nok"), [0x49, bl("'M"), 0x20, 0x31, 0x32, 0x33, bl('Ġfine'), bl('ĊĊ'), bl('ok')])
    assert.deepEqual(qwen.encode('Hello world!'), [bl('Hello'), bl('Ġworld'), 0x21])
    assert.deepEqual(qwen.encode('<|im_start|>user\nhi<|im_end|>'), [IM_START, ...new TextEncoder().encode('user\nhi'), IM_END])
    assert.equal(qwen.decode([IM_START, ...new TextEncoder().encode('user\nhi'), IM_END]), 'user\nhi')
  })

  test('byte level is lossless: decode(encode(s)) === s for NFC text (fast-check)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (raw) => {
        const s = raw.replace(/\p{Cs}/gu, '\uFFFD').normalize('NFC')
        assert.equal(olmoe.decode(olmoe.encode(s)), s)
        assert.equal(qwen.decode(qwen.encode(s)), s)
      }),
      { numRuns: 300, seed: 6 }
    )
  })

  test('TextStream holds a character split across byte tokens until it is whole', () => {
    const ids = qwen.encode('a😀b')
    assert.deepEqual(ids, [0x61, 0xf0, 0x9f, 0x98, 0x80, 0x62])
    const stream = new TextStream(qwen)
    assert.deepEqual(
      ids.map((id) => stream.push(id)),
      ['a', '', '', '', '😀', 'b']
    )
  })
})

describe('tokenizer.json: the less common BPE options and steps', () => {
  test('ignore_merges: a piece that is itself a token is that token', () => {
    // "xyz" (290) is in the vocabulary but no merge builds it.
    const vocab = { ...blVocab(), xyz: 290 }
    assert.deepEqual(hf(byteLevelJson('qwen2', { vocab })).encode('xyz Hello'), [0x78, 0x79, 0x7a, 0x20, bl('Hello')])
    assert.deepEqual(hf(byteLevelJson('qwen2', { vocab, ignore_merges: true })).encode('xyz Hello'), [290, 0x20, bl('Hello')])
  })

  test('continuing_subword_prefix, WhitespaceSplit, unk, and no decoder (tokens joined by spaces)', () => {
    const json = {
      version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: { type: 'WhitespaceSplit' }, post_processor: null, decoder: null,
      model: { type: 'BPE', unk_token: '[UNK]', continuing_subword_prefix: '##', vocab: { '[UNK]': 0, h: 1, '##e': 2, '##y': 3, he: 4, hey: 5 }, merges: ['h ##e', 'he ##y'] }
    }
    const tok = hf(json, 10, 9, 9)
    // "hey": h ##e ##y -> "h ##e" -> he ##y -> "he ##y" makes "he" + "y" = hey. "hz": h, ##z unknown -> [UNK].
    assert.deepEqual(tok.encode('hey he hz'), [5, 4, 1, 0])
    assert.equal(tok.decode([5, 4, 1, 0]), 'hey he h [UNK]')
  })

  test('Digits, Metaspace decoder (first token), Strip decoder at both ends', () => {
    const json = {
      version: '1.0', added_tokens: [], normalizer: null, post_processor: null,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Digits', individual_digits: true }] },
      decoder: { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }, { type: 'Strip', content: 'x', start: 1, stop: 2 }] },
      model: { type: 'BPE', vocab: { '▁a▁b': 0, xxcxx: 1, '▁d': 2, '1': 3, '2': 4, ab: 5 }, merges: [] }
    }
    const tok = hf(json, 10, 9, 9)
    // "ab" has no merge to build it and no unk: dropped, as in the crate. Digits split one by one.
    assert.deepEqual(tok.encode('ab12 1'), [3, 4, 3])
    // Metaspace drops every ▁ of the first token and turns the others into spaces; Strip then cuts
    // one leading and up to two trailing "x" per token.
    assert.equal(tok.decode([0, 1, 2]), 'abxc d')
    assert.equal(tok.decode([2, 0]), 'd a b')
  })
})

describe("test/fixtures/hf.ts's TOKENIZER_JSON and relay/import.ts", () => {
  test('the generated checkpoints\' tokenizer.json encodes and decodes', () => {
    const tok = hf(TOKENIZER_JSON, 40, 1, 2)
    // "abab" is one GPT-2 piece: a b a b, "a b" merges twice into "ab" (7).
    assert.deepEqual(tok.encode('abab'), [7, 7])
    assert.deepEqual(tok.encode('ab<|endoftext|>ab'), [7, 3, 7])
    assert.equal(tok.decode([7, 3, 7]), 'abab')
    const imported = hfTokenizer(jsonBytes(TOKENIZER_JSON), { bos_token_id: 1, eos_token_id: 2 }, null)
    assert.deepEqual(tokenizerOf(imported, 40).encode('ba', { bos: true }), [1, 6, 5])
  })

  test('importModel builds the tokenizer of a Hugging Face directory, and refuses one it cannot run', async () => {
    const ck = writeHfCheckpoint(join(root, 'qwen'), 'qwen2_moe')
    const model = await importModel(ck.dir)
    assert.ok(model.textTokenizer)
    assert.deepEqual(model.textTokenizer.encode('abab', { eos: true }), [7, 7, 4])
    assert.equal(model.textTokenizer.eos, 4)
    assert.equal((await importModel(writeHfCheckpoint(join(root, 'none'), 'mixtral', { tokenizer: false }).dir)).textTokenizer, null)
    const path = join(ck.dir, 'tokenizer.json')
    writeFileSync(path, JSON.stringify({ ...TOKENIZER_JSON, pre_tokenizer: { type: 'BertPreTokenizer' } }))
    await assert.rejects(importModel(ck.dir), (e: unknown) => formatError(/pre_tokenizer type "BertPreTokenizer" is not supported/)(e) && (e as ModelFormatError).file === path)
  })
})

describe('tokenizer.json: what is refused, and how', () => {
  const base = sentencePieceJson('legacy')
  const model = base['model'] as Record<string, unknown>
  const cases: [string, unknown, RegExp][] = [
    ['Unigram model', { ...base, model: { type: 'Unigram', vocab: [] } }, /tokenizer\.json\.model\.type: model type "Unigram" \(only BPE\) is not supported/],
    ['BPE dropout', { ...base, model: { ...model, dropout: 0.1 } }, /dropout 0\.1 \(it makes encoding random\) is not supported/],
    ['normalizer', { ...base, normalizer: { type: 'BertNormalizer' } }, /tokenizer\.json\.normalizer: normalizer type "BertNormalizer" is not supported/],
    ['decoder', { ...base, decoder: { type: 'Sequence', decoders: [{ type: 'WordPiece', prefix: '##' }] } }, /decoders\[0\]: decoder type "WordPiece" is not supported/],
    ['regex construct', { ...base, pre_tokenizer: { type: 'Split', pattern: { Regex: '\\bx' }, behavior: 'Isolated', invert: false } }, /\\b is not supported/],
    ['merge outside the vocabulary', { ...base, model: { ...model, merges: ['h i'] } }, /merges\[0\]: merge "h i" needs "i", which is not in model.vocab/],
    ['id past the model vocabulary', { ...base, model: { ...model, vocab: { ...(model['vocab'] as object), big: 300 } } }, /token id 300 is outside the model's vocabulary of 300/],
    ['added id past the vocabulary', { ...base, added_tokens: [{ id: 999, content: 'x', special: true }] }, /added_tokens\[0\]\.id: token id 999 is outside/],
    ['two tokens, one id', { ...base, model: { ...model, vocab: { ...(model['vocab'] as object), again: 5 } } }, /id 5 is also the id of/],
    ['not JSON', '{', /is not valid UTF-8 JSON/]
  ]
  for (const [what, json, re] of cases) {
    test(what, () => {
      const bytes = typeof json === 'string' ? new TextEncoder().encode(json) : jsonBytes(json)
      assert.throws(() => createTokenizer('hf_tokenizer_json', bytes, 300, 1, 2, 'tokenizer.json'), formatError(re))
    })
  }

  test('arbitrary JSON: only ModelFormatErrors (fast-check)', () => {
    const component = fc.oneof(fc.anything(), fc.record({ type: fc.constantFrom('Sequence', 'Replace', 'Split', 'ByteLevel', 'Metaspace', 'Strip', 'BPE', 'NFC'), pattern: fc.anything(), normalizers: fc.anything() }))
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.record({ model: fc.oneof(fc.anything(), fc.record({ vocab: fc.anything(), merges: fc.anything() })), normalizer: component, pre_tokenizer: component, decoder: component, added_tokens: fc.anything() })), (j) => {
        try {
          createTokenizer('hf_tokenizer_json', new TextEncoder().encode(JSON.stringify(j) ?? 'null'), 50, 1, 2).encode('a b')
        } catch (e) {
          assert.ok(e instanceof ModelFormatError, String(e))
        }
      }),
      { numRuns: 300, seed: 8 }
    )
  })
})

describe('createTokenizer', () => {
  test('argument checks are TypeError / RangeError', () => {
    const bytes = jsonBytes(TOKENIZER_JSON)
    assert.throws(() => createTokenizer('hf_tokenizer_json', [] as unknown as Uint8Array, 40, 1, 2), TypeError)
    assert.throws(() => createTokenizer('hf_tokenizer_json', bytes, 0, 0, 0), RangeError)
    assert.throws(() => createTokenizer('hf_tokenizer_json', bytes, 40, 40, 2), RangeError)
    assert.throws(() => createTokenizer('sentencepiece' as 'llama2c', bytes, 40, 1, 2), RangeError)
    const tok = createTokenizer('hf_tokenizer_json', bytes, 40, 1, 2)
    assert.throws(() => tok.encode(5 as unknown as string), TypeError)
    assert.throws(() => tok.decode([40]), RangeError)
    assert.ok(Object.isFrozen(tok))
  })
})

describe('Oniguruma -> JavaScript regex', () => {
  test('the Qwen2 pattern: (?i:...) expanded with Unicode case folding, \\s as White_Space', () => {
    assert.equal(
      onigRegex(QWEN2_PATTERN, 'test').source,
      "(?:'[sSſ]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\p{White_Space}\\p{L}\\p{N}]+[\\r\\n]*|\\p{White_Space}*[\\r\\n]+|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+"
    )
  })

  test('splits as tokenizers 0.23 (Oniguruma) does', () => {
    const split = (pattern: string, text: string): string[] => {
      const pre = buildPreTokenizer(new JsonAt({ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, 'pre_tokenizer', null))
      return (pre as NonNullable<typeof pre>)([{ text, atStart: true }]).map((p) => p.text)
    }
    // Each expected split was produced by tokenizers 0.23's Split pre-tokenizer.
    // " 'S": no contraction can start at the space, so " '" goes to ` ?[^\s\p{L}\p{N}]+`; "'ſ" is (?i:'s).
    assert.deepEqual(split(QWEN2_PATTERN, "it's 'S ſ'ſ"), ['it', "'s", " '", 'S', ' ſ', "'ſ"])
    assert.deepEqual(split('\\s+', 'a\u0085b\uFEFFc'), ['a', '\u0085', 'b\uFEFFc'])
    assert.deepEqual(split('.', 'a\rb'), ['a', '\r', 'b'])
    assert.deepEqual(split('^a', 'ab\nab'), ['a', 'b\n', 'a', 'b'])
    assert.deepEqual(split('(?i)ks', '\u212aSKs'), ['\u212aS', 'Ks'], 'the Kelvin sign folds to k')
    assert.deepEqual(split('x{,2}', 'xxx'), ['xx', 'x'])
    assert.deepEqual(split('\\p{Han}+', 'a日本b'), ['a', '日本', 'b'])
    assert.deepEqual(split('$', 'a😀'), ['a😀'])
  })

  test('unsupported constructs name themselves', () => {
    for (const [pattern, what] of [
      ['\\bx', /\\b is not supported/],
      ['a++', /possessive quantifier/],
      ['(?>a)', /the group \(\?>a/],
      ['[[:alpha:]]', /nested character class or POSIX bracket/],
      ['[a&&b]', /class intersection/],
      ['(?i:[a-z])', /range in a case-insensitive character class/],
      ['(a', /unterminated group/]
    ] as const) {
      assert.throws(() => onigRegex(pattern, 'pre_tokenizer.pattern', 'tokenizer.json'), formatError(what), pattern)
    }
  })
})
