/**
 * llama2.c BPE (src/model/tokenizer/llama2c.ts) against three outside truths:
 * - the reference facts of ../shared/data/README.md: stories260K's greedy ids from BOS and the text
 *   they print (the 30 ids were produced by a forward pass of run.c's algorithm over
 *   stories260K.bin; the README gives the first 10 and the text, which both check them);
 * - encodings derived by hand from run.c's algorithm over tok512.bin's pieces and scores (each
 *   derivation is written next to its expected ids);
 * - `runcEncode` below, a line-by-line port of run.c's `encode` (O(n²) rescans, sorted-vocabulary
 *   binary search), run against the queue-based merge on stories and random text.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { ModelFormatError } from '../../src/model/errors.ts'
import { TextStream, createTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.ts'
import { parseLlama2cTokenizer } from '../../src/model/tokenizer/llama2c-file.ts'
import { writeLlama2cTokenizer } from '../fixtures/llama2c.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'

/** stories260K, temperature 0, 30 steps from BOS (README: "ids start 403 407 261 378 432 383 286 261 376 298"). */
const GREEDY = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433]
/** What run.c prints for them (README; its line break there is a wrapped space). */
const GREEDY_TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park'

function tok512(): Tokenizer | null {
  const bytes = sharedData('tok512.bin')
  return bytes === null ? null : createTokenizer('llama2c', bytes, 512, 1, 2, 'tok512.bin')
}

/** The first `n` stories of the TinyStories validation slice (blank-line separated). */
function stories(n: number): string[] | null {
  const bytes = sharedData('tinystories_val_slice.txt')
  if (bytes === null) return null
  return new TextDecoder()
    .decode(bytes)
    .split(/\n\s*\n/)
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .slice(0, n)
}

/**
 * run.c's `encode`, transcribed: pieces as C strings, lookups by binary search over the vocabulary
 * sorted with strcmp, and the O(n²) merge loop (best score strictly above -1e10, first of equals).
 */
function runcEncode(bytes: Uint8Array, vocabSize: number, text: string, bos: boolean, eos: boolean): number[] {
  const vocab = parseLlama2cTokenizer(bytes, vocabSize)
  const str = (b: Uint8Array): string => String.fromCharCode(...b.subarray(0, b.indexOf(0) === -1 ? b.length : b.indexOf(0)))
  const pieces = vocab.tokens.map((t) => str(t.piece))
  const sorted = pieces.map((s, id) => ({ s, id })).sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : a.id - b.id))
  const lookup = (s: string): number => {
    let lo = 0
    let hi = sorted.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const e = sorted[mid] as { s: string; id: number }
      if (e.s === s) {
        let first = mid // the lowest id among equal pieces, as tokenizer/llama2c.ts documents
        while (first > 0 && (sorted[first - 1] as { s: string }).s === s) first--
        return (sorted[first] as { id: number }).id
      }
      if (e.s < s) lo = mid + 1
      else hi = mid - 1
    }
    return -1
  }
  const tokens: number[] = []
  if (bos) tokens.push(1)
  if (text !== '') tokens.push(lookup(' '))
  const utf8 = new TextEncoder().encode(text)
  let buf: number[] = []
  for (let i = 0; i < utf8.length; i++) {
    const c = utf8[i] as number
    if ((c & 0xc0) !== 0x80) buf = []
    buf.push(c)
    if ((((utf8[i + 1] ?? 0) as number) & 0xc0) === 0x80 && buf.length < 4) continue
    const id = lookup(String.fromCharCode(...buf))
    if (id !== -1) tokens.push(id)
    else for (const b of buf) tokens.push(b + 3)
    buf = []
  }
  const floor = Math.fround(-1e10)
  for (;;) {
    let bestScore = floor
    let bestId = -1
    let bestIdx = -1
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup((pieces[tokens[i] as number] as string) + (pieces[tokens[i + 1] as number] as string))
      if (id !== -1 && (vocab.tokens[id]?.score as number) > bestScore) {
        bestScore = vocab.tokens[id]?.score as number
        bestId = id
        bestIdx = i
      }
    }
    if (bestIdx === -1) break
    tokens.splice(bestIdx, 2, bestId)
  }
  if (eos) tokens.push(2)
  return tokens
}

describe('llama2.c BPE (tokenizer/llama2c.ts) on tok512.bin', () => {
  test('README reference: the greedy ids decode to the reference text, and encoding it gives them back', (t) => {
    const tok = tok512()
    if (tok === null) return t.skip(SHARED_DATA_MISSING)
    assert.equal(tok.decode([1, ...GREEDY]), GREEDY_TEXT)
    // Without BOS before it, the first piece keeps its space: the first 10 ids end mid-word (" g" is 298).
    assert.equal(tok.decode(GREEDY.slice(0, 10)), ' Once upon a time, there was a little g')
    assert.deepEqual(tok.encode(GREEDY_TEXT, { bos: true }), [1, ...GREEDY])
    assert.deepEqual(tok.encode(GREEDY_TEXT, { bos: true, eos: true }), [1, ...GREEDY, 2])
    // run.c's generation loop prints decode(prev, next) piece by piece.
    assert.equal(GREEDY.map((id, i) => tok.decodeToken(i === 0 ? 1 : (GREEDY[i - 1] as number), id)).join(''), GREEDY_TEXT)
  })

  test('golden encodings, derived by hand from run.c over tok512 pieces (id "piece" score)', (t) => {
    const tok = tok512()
    if (tok === null) return t.skip(SHARED_DATA_MISSING)
    const golden: [string, number[]][] = [
      // No text: no dummy prefix either.
      ['', []],
      // 410 " " + 412 "a"; " a" is 261 (-2): merged.
      ['a', [261]],
      // 410 " ", 440 "H", 417 "i"; pairs " H" 320 (-61), "Hi" absent -> [320, 417]; " Hi" absent.
      ['Hi', [320, 417]],
      // " ", h, e, l, l, o: best "he" 260 (-1) over " h" (-11) and "ll" (-47); then " he" 281 (-22); then "ll" 306;
      // " hell" / " hel" / "llo" absent -> [281, 306, 414].
      ['hello', [281, 306, 414]],
      // " ", L, i, l, y: "il" 290 (-31); then " L" 307 (-48) beats "ily" 310 (-51); then "ily"; then " Lily" 317 (-58).
      ['Lily', [317]],
      // Two spaces: "  " is not a piece.
      [' ', [410, 410]],
      // "é" 485 is a piece, " é" is not.
      ['é', [410, 485]],
      // "\n" is no piece: byte fallback 0x0A + 3 = 13; " a" 261 merges, "<0x0A>b" does not.
      ['a\nb', [261, 13, 430]],
      // U+1F600 is F0 9F 98 80: ids 0xF0+3, 0x9F+3, 0x98+3, 0x80+3.
      ['😀', [410, 243, 162, 155, 131]],
      // 日 E6 97 A5, 本 E6 9C AC.
      ['日本', [410, 233, 154, 168, 233, 159, 175]],
      // The README's first four greedy tokens.
      ['Once upon a time', [403, 407, 261, 378]]
    ]
    for (const [text, ids] of golden) {
      assert.deepEqual(tok.encode(text), ids, JSON.stringify(text))
      assert.deepEqual(tok.encode(text, { bos: true, eos: true }), [1, ...ids, 2], JSON.stringify(text))
    }
  })

  test('round trip on the first 200 TinyStories validation stories: decode(encode(s, bos)) === s and decode(encode(s)) === " " + s', (t) => {
    const tok = tok512()
    const texts = stories(200)
    if (tok === null || texts === null) return t.skip(SHARED_DATA_MISSING)
    assert.equal(texts.length, 200)
    // The rule: encode puts the dummy-prefix " " before non-empty text; decode drops the leading
    // space of the first piece only after BOS. So with BOS the text comes back exactly, without it
    // with one space in front.
    for (const s of texts) {
      assert.equal(tok.decode(tok.encode(s, { bos: true })), s)
      assert.equal(tok.decode(tok.encode(s)), ` ${s}`)
    }
  })

  test('byte fallback: characters outside the vocabulary round-trip through <0xXX> tokens', (t) => {
    const tok = tok512()
    if (tok === null) return t.skip(SHARED_DATA_MISSING)
    for (const s of ['😀 emoji', '日本語のテキスト', 'Ünïcödé ñ', '\u0000\u0001\t\r', 'mixed 🐉 dragon 龍 and 👩‍👩‍👧 family', '\u{10FFFF}']) {
      const ids = tok.encode(s, { bos: true })
      assert.ok(ids.every((id) => id >= 0 && id < 512))
      assert.equal(tok.decode(ids), s, JSON.stringify(s))
    }
    // A lone surrogate is not text: it encodes as U+FFFD (EF BF BD), as TextEncoder writes it.
    assert.deepEqual(tok.encode('\uD800'), [410, 0xef + 3, 0xbf + 3, 0xbd + 3])
  })

  test('empty string, BOS and EOS', (t) => {
    const tok = tok512()
    if (tok === null) return t.skip(SHARED_DATA_MISSING)
    assert.deepEqual(tok.encode(''), [])
    assert.deepEqual(tok.encode('', { bos: true }), [1])
    assert.deepEqual(tok.encode('', { bos: true, eos: true }), [1, 2])
    assert.equal(tok.decode([]), '')
    assert.equal(tok.decode([1, 2]), '')
    assert.deepEqual([tok.vocabSize, tok.bos, tok.eos], [512, 1, 2])
  })

  test('decodeToken is run.c decode: space stripped after BOS only, <0xXX> is its byte, BOS/EOS print nothing', (t) => {
    const tok = tok512()
    if (tok === null) return t.skip(SHARED_DATA_MISSING)
    assert.equal(tok.decodeToken(1, 403), 'Once')
    assert.equal(tok.decodeToken(403, 407), ' upon')
    assert.equal(tok.decodeToken(-1, 403), ' Once')
    assert.equal(tok.decodeToken(261, 13), '\n')
    assert.equal(tok.decodeToken(261, 3 + 0x41), 'A')
    assert.equal(tok.decodeToken(261, 3 + 0xf0), '\uFFFD', 'a lone lead byte is not a character')
    assert.equal(tok.decodeToken(403, 1), '')
    assert.equal(tok.decodeToken(403, 2), '')
    assert.throws(() => tok.decodeToken(1, 512), RangeError)
    assert.throws(() => tok.decodeToken(-2, 5), RangeError)
    assert.throws(() => tok.decode([0.5]), RangeError)
  })

  test('TextStream: streamed pieces concatenate to decode(), never splitting a character', (t) => {
    const tok = tok512()
    if (tok === null) return t.skip(SHARED_DATA_MISSING)
    const sequences: number[][] = [[1, ...GREEDY], tok.encode('Hi 😀 日本!', { bos: true }), tok.encode('é😀')]
    for (const ids of sequences) {
      const stream = new TextStream(tok)
      const parts: string[] = ids.map((id) => stream.push(id))
      parts.push(stream.flush())
      assert.ok(parts.every((p) => !p.includes('\uFFFD')), JSON.stringify(parts))
      assert.equal(parts.join(''), tok.decode(ids))
    }
  })

  test("the queued merge equals run.c's rescan: stories and random text (fast-check)", (t) => {
    const bytes = sharedData('tok512.bin')
    const tok = tok512()
    const texts = stories(30)
    if (bytes === null || tok === null || texts === null) return t.skip(SHARED_DATA_MISSING)
    for (const s of texts) assert.deepEqual(tok.encode(s, { bos: true }), runcEncode(bytes, 512, s, true, false))
    const piece = fc.constantFrom(' ', 'the', 'a', 'e', 'll', 'Lily', ' ', '\n', '"', "'", '.', ',', 'é', '😀', '日', 'ing', 'Tim', 'my', 'x', 'q')
    const text = fc.oneof(fc.array(piece, { maxLength: 30 }).map((a) => a.join('')), fc.string({ unit: 'binary', maxLength: 30 }))
    fc.assert(
      fc.property(text, fc.boolean(), fc.boolean(), (s, bos, eos) => {
        assert.deepEqual(tok.encode(s, { bos, eos }), runcEncode(bytes, 512, s, bos, eos))
      }),
      { numRuns: 300, seed: 7 }
    )
  })
})

describe('llama2.c BPE on hand-made tokenizer files', () => {
  /** Pieces with scores -i (writeLlama2cTokenizer): earlier pieces merge first. */
  const file = (pieces: string[]): Uint8Array => writeLlama2cTokenizer(pieces)
  const bytePieces = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)

  test('ties go to the first pair; BOS takes part in merging as in run.c', () => {
    // Scores: "aa" (259) -259 beats "ab" (260) -260; "a", "b" never merge with BOS "\n<s>\n" unless
    // a piece spells it, as "\n<s>\n " (264) does here, with the dummy space.
    const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ...bytePieces, 'aa', 'ab', ' ', 'a', 'b', '\n<s>\n ']
    const tok = createTokenizer('llama2c', file(pieces), pieces.length, 1, 2)
    assert.deepEqual(tok.encode('aaa'), [261, 259, 262], '" a a a": "aa" at the first of two equal pairs')
    assert.deepEqual(tok.encode('aab'), [261, 259, 263])
    assert.deepEqual(tok.encode('b', { bos: true }), [264, 263], 'BOS merged with the dummy prefix')
  })

  test('bad files are ModelFormatErrors: no " " piece, too few tokens for byte fallback', () => {
    const noSpace = ['<unk>', '<s>', '</s>', 'a']
    assert.throws(() => createTokenizer('llama2c', file(noSpace), 4, 1, 2, 'nospace.bin'), (e: unknown) => e instanceof ModelFormatError && e.file === 'nospace.bin' && /dummy prefix/.test(e.message))
    const small = ['<unk>', '<s>', '</s>', ' ', 'a']
    const tok = createTokenizer('llama2c', file(small), 5, 1, 2)
    assert.deepEqual(tok.encode('a'), [3, 4])
    assert.throws(() => tok.encode('é'), (e: unknown) => e instanceof ModelFormatError && /byte fallback of 0xc3/.test(e.message))
  })

  test('arbitrary bytes: only ModelFormatErrors (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 3, max: 40 }), (bytes, vocab) => {
        try {
          createTokenizer('llama2c', bytes, vocab, 1, 2).encode('a b')
        } catch (e) {
          assert.ok(e instanceof ModelFormatError, String(e))
        }
      }),
      { numRuns: 300, seed: 11 }
    )
  })
})
