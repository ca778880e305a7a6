/**
 * llama2.c's BPE tokenizer: encode and decode exactly as run.c's `encode` and `decode` do, over a
 * `tokenizer.bin` checked by parseLlama2cTokenizer (src/model/tokenizer/llama2c-file.ts).
 *
 * encode(text, bos, eos), run.c step by step:
 * 1. BOS (1) first when asked.
 * 2. When the text is not empty, the id of the piece " " (sentencepiece's add_dummy_prefix).
 * 3. The UTF-8 bytes, one code point at a time (a lead byte and up to 3 continuation bytes): the
 *    id of the piece equal to those bytes, or else one id per byte, `byte + 3` (byte fallback: ids
 *    3..258 are `<0x00>`..`<0xFF>`, after `<unk>`, `<s>`, `</s>`).
 * 4. While some adjacent pair's concatenated piece is in the vocabulary with a score above -1e10,
 *    merge the pair whose piece scores highest, the first of equals. BOS takes part, as in run.c.
 * 5. EOS (2) last when asked.
 *
 * Pieces compare as C strings do in run.c (strcmp, sprintf "%s%s"): bytes up to the first NUL.
 * run.c finds pieces by binary search over the sorted vocabulary, which picks an arbitrary one of
 * two equal pieces; here the lower id wins. Text is a JS string, so its UTF-8 is well formed (a lone
 * surrogate encodes as U+FFFD, as TextEncoder does) and may hold U+0000, which run.c's C string
 * cannot: it is the byte 0x00, which byte fallback encodes as `<0x00>`.
 *
 * decode(prev, token): the token's piece; after BOS a leading space is dropped; a piece
 * `<0xXX>` is that byte. run.c matches byte pieces with sscanf("<0x%02hhX>"), which also accepts
 * malformed prefixes such as "<0x4"; here only the exact six-character form counts, which is all
 * sentencepiece writes. BOS and EOS decode to nothing (run.c stops at BOS and prints EOS as its
 * marker "\n</s>\n"; neither is text).
 *
 * @module
 */
import { mergePairs, type PairMerge } from './bpe.ts'
import { formatError } from '../errors.ts'
import type { EncodeOptions, Tokenizer } from './interface.ts'
import { parseLlama2cTokenizer } from './llama2c-file.ts'

/** run.c's `best_score` starts at -1e10 (a C float): only pieces scoring above it merge. */
const MIN_SCORE = Math.fround(-1e10)
/** Ids of the byte tokens start here (after <unk>, <s>, </s>). */
const BYTE_OFFSET = 3
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/
/** Pair lookups remembered before the cache starts over. */
const PAIR_CACHE = 1 << 20

/** A C string's bytes as a JS "binary string" (one char per byte): concatenation and Map lookup act on bytes. */
function binary(bytes: Uint8Array): string {
  let end = bytes.indexOf(0)
  if (end === -1) end = bytes.length
  let s = ''
  for (let i = 0; i < end; i++) s += String.fromCharCode(bytes[i] as number)
  return s
}

class Llama2cBpe implements Tokenizer {
  readonly vocabSize: number
  readonly bos: number
  readonly eos: number
  /** (vocabSize) each token's piece, bytes up to the first NUL, as a binary string */
  readonly #pieces: string[]
  /** (vocabSize) what each token prints: its piece, or the one byte of a `<0xXX>` piece */
  readonly #text: Uint8Array[]
  /** (vocabSize) float32 merge scores */
  readonly #scores: Float32Array
  /** piece -> lowest id with that piece */
  readonly #ids = new Map<string, number>()
  /** left * vocabSize + right -> merge, or null for a pair that does not merge */
  readonly #pairs = new Map<number, PairMerge | null>()
  readonly #space: number
  readonly #file: string | null

  constructor(bytes: Uint8Array, vocabSize: number, bos: number, eos: number, file: string | null) {
    const vocab = parseLlama2cTokenizer(bytes, vocabSize, file)
    this.vocabSize = vocabSize
    this.bos = bos
    this.eos = eos
    this.#file = file
    this.#pieces = vocab.tokens.map((t) => binary(t.piece))
    this.#scores = Float32Array.from(vocab.tokens, (t) => t.score)
    this.#text = vocab.tokens.map((t, i) => {
      const m = BYTE_PIECE.exec(this.#pieces[i] as string)
      return m === null ? t.piece.subarray(0, (this.#pieces[i] as string).length) : Uint8Array.of(parseInt(m[1] as string, 16))
    })
    this.#pieces.forEach((p, i) => {
      if (!this.#ids.has(p)) this.#ids.set(p, i)
    })
    const space = this.#ids.get(' ')
    if (space === undefined) formatError(file, null, 'has no " " piece, which llama2.c encodes before every text (the dummy prefix)')
    this.#space = space
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError('text: expected string')
    const tokens: number[] = []
    if (options.bos === true) tokens.push(this.bos)
    if (text !== '') tokens.push(this.#space)
    const bytes = new TextEncoder().encode(text)
    let start = 0
    for (let i = 0; i < bytes.length; i++) {
      // run.c: a byte that is not a continuation byte (10xxxxxx) starts a new code point...
      if (((bytes[i] as number) & 0xc0) !== 0x80) start = i
      // ...which goes on while the next byte continues it, up to 4 bytes.
      if (i + 1 < bytes.length && ((bytes[i + 1] as number) & 0xc0) === 0x80 && i + 1 - start < 4) continue
      const cp = bytes.subarray(start, i + 1)
      const id = this.#ids.get(binary(cp))
      if (id !== undefined) tokens.push(id)
      else for (const b of cp) tokens.push(this.#byteId(b))
      start = i + 1
    }
    const merged = mergePairs(tokens, (l, r) => this.#merge(l, r))
    if (options.eos === true) merged.push(this.eos)
    return merged
  }

  isByteToken(token: number): boolean {
    return BYTE_PIECE.test(this.#pieces[token] ?? '')
  }

  decodeToken(previous: number, token: number): string {
    return new TextDecoder().decode(this.#piece(previous, token))
  }

  decode(tokens: readonly number[]): string {
    const parts = tokens.map((t, i) => this.#piece(i === 0 ? -1 : (tokens[i - 1] as number), t))
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let at = 0
    for (const p of parts) {
      out.set(p, at)
      at += p.length
    }
    return new TextDecoder().decode(out)
  }

  /** run.c decode: the bytes `token` prints after `previous`. */
  #piece(previous: number, token: number): Uint8Array {
    if (!Number.isSafeInteger(previous) || previous < -1 || previous >= this.vocabSize) throw new RangeError(`previous: expected -1 or a token id below ${this.vocabSize}, got ${previous}`)
    if (!Number.isSafeInteger(token) || token < 0 || token >= this.vocabSize) throw new RangeError(`token: expected a token id below ${this.vocabSize}, got ${token}`)
    if (token === this.bos || token === this.eos) return new Uint8Array(0)
    const text = this.#text[token] as Uint8Array
    // Following BOS, sentencepiece's decoder strips the leading space (llama2.c PR #89).
    return previous === this.bos && text[0] === 0x20 ? text.subarray(1) : text
  }

  #byteId(b: number): number {
    const id = b + BYTE_OFFSET
    if (id >= this.vocabSize) formatError(this.#file, null, `has ${this.vocabSize} tokens, too few for byte fallback of 0x${b.toString(16).padStart(2, '0')} (id ${id})`)
    return id
  }

  #merge(left: number, right: number): PairMerge | undefined {
    const key = left * this.vocabSize + right
    let m = this.#pairs.get(key)
    if (m === undefined) {
      const id = this.#ids.get((this.#pieces[left] as string) + (this.#pieces[right] as string))
      m = id !== undefined && (this.#scores[id] as number) > MIN_SCORE ? { priority: -(this.#scores[id] as number), id } : null
      // Bounded: a long-running node sees many texts, but a vocabulary has few pairs worth keeping.
      if (this.#pairs.size >= PAIR_CACHE) this.#pairs.clear()
      this.#pairs.set(key, m)
    }
    return m ?? undefined
  }
}

/** The llama2.c tokenizer in `bytes` (tokenizer.bin) for a model of `vocabSize` tokens. */
export function llama2cBpe(bytes: Uint8Array, vocabSize: number, bos: number, eos: number, file: string | null = null): Tokenizer {
  return Object.freeze(new Llama2cBpe(bytes, vocabSize, bos, eos, file))
}
