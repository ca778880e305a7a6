/**
 * Hugging Face `tokenizer.json` with a BPE model, encoded and decoded as the `tokenizers` crate
 * does (`TokenizerImpl::encode` without a post-processor, `decode` with skip_special_tokens).
 *
 * Both families the chain imports are BPE:
 * - SentencePiece style (Mixtral, Llama 2): `byte_fallback` BPE over characters, a space marker
 *   `▁` from the normalizer (Prepend + Replace) or a Metaspace pre-tokenizer, and a decoder that
 *   undoes it (Replace, ByteFallback, Fuse, Strip, or Metaspace).
 * - GPT-2 byte level (OLMoE, Qwen2-MoE): a ByteLevel pre-tokenizer (or a Split regex followed by
 *   one) that maps UTF-8 bytes to printable characters before BPE, and a ByteLevel decoder.
 *
 * encode(text):
 * 1. `added_tokens` are cut out first, leftmost-longest (an Aho-Corasick search in the crate):
 *    first those with `normalized: false` on the raw text, then, in each remaining segment after
 *    the normalizer has run, those with `normalized: true` (matched against their normalized
 *    content). `single_word`, `lstrip` and `rstrip` behave as in added_vocabulary.rs.
 * 2. Each other segment: normalizer, pre-tokenizer (src/model/tokenizer/hf-steps.ts), then the
 *    BPE model on each piece: one symbol per character (with `continuing_subword_prefix` /
 *    `end_of_word_suffix`), a character missing from the vocabulary becomes its `<0xXX>` byte
 *    tokens (`byte_fallback`), else `unk_token` (consecutive ones fused with `fuse_unk`), else
 *    nothing; then merges by rank, the leftmost of equals (src/model/tokenizer/bpe.ts). With
 *    `ignore_merges`, a piece that is itself in the vocabulary is one token.
 * 3. BOS / EOS when asked. The `post_processor` is not applied: callers ask for BOS / EOS
 *    explicitly, which is all the published templates (TemplateProcessing with `<s>`, ByteLevel
 *    offsets trimming) add to a single sequence. `truncation` and `padding` are batch settings
 *    and are ignored.
 *
 * decode(ids): each id's token string (an added token's content, normalized when the token is
 * `normalized`, else the model's token), skipping
 * special added tokens, BOS and EOS; then the decoder, or the strings joined by spaces when there
 * is none. Ids below the model's vocabulary size that name no token (padding rows) add nothing.
 *
 * Refused with a ModelFormatError naming the feature: a model other than BPE, BPE `dropout`, and
 * every normalizer, pre-tokenizer, decoder and regex construct that hf-steps.ts and
 * hf-regex.ts do not list. A token id at or above the model's vocabulary size is refused
 * too: the model could never embed it.
 *
 * @module
 */
import { mergePairs, type PairMerge } from './bpe.ts'
import { formatError } from '../errors.ts'
import type { EncodeOptions, Tokenizer } from './interface.ts'
import { JsonAt, buildDecoder, buildNormalizer, buildPreTokenizer, type Decoder, type Normalizer, type Piece, type PreTokenizer } from './hf-steps.ts'

/** Pair keys are left * vocabSize + right, exact below 2^53. */
const MAX_VOCAB = 1 << 26
/** Pieces whose tokens are remembered before the cache starts over (the crate keeps 10000). */
const WORD_CACHE = 10_000

// ---------------------------------------------------------------------------------------------
// added tokens (tokenizer/added_vocabulary.rs)

interface AddedToken {
  readonly id: number
  readonly content: string
  readonly singleWord: boolean
  readonly lstrip: boolean
  readonly rstrip: boolean
  readonly normalized: boolean
  readonly special: boolean
}

/** A segment of the input: text for the model, or an added token already matched. */
interface Segment extends Piece {
  readonly id?: number
}

/** One character of Rust regex `\w` (Unicode): Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control. */
const WORD = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u
const SPACE = /^\p{White_Space}$/u

/** The code point that ends at UTF-16 index `i` of `s` ('' at the start). */
function charBefore(s: string, i: number): string {
  if (i <= 0) return ''
  const low = s.charCodeAt(i - 1)
  return i >= 2 && low >= 0xdc00 && low <= 0xdfff ? s.slice(i - 2, i) : s.slice(i - 1, i)
}

/** The code point that starts at UTF-16 index `i` of `s` ('' at the end). */
function charAt(s: string, i: number): string {
  const cp = s.codePointAt(i)
  return cp === undefined ? '' : String.fromCodePoint(cp)
}

/** Finds added tokens leftmost-longest and splits text around them, as AddedVocabulary::find_matches. */
class AddedMatcher {
  /** first UTF-16 unit -> [pattern, token], longest pattern first */
  readonly #byFirst = new Map<string, [string, AddedToken][]>()

  constructor(entries: readonly [string, AddedToken][]) {
    for (const [pattern, token] of entries) {
      if (pattern === '') continue
      const list = this.#byFirst.get(pattern[0] as string) ?? []
      list.push([pattern, token])
      this.#byFirst.set(pattern[0] as string, list)
    }
    for (const list of this.#byFirst.values()) list.sort((a, b) => b[0].length - a[0].length)
  }

  get empty(): boolean {
    return this.#byFirst.size === 0
  }

  #find(s: string, from: number): { start: number; end: number; token: AddedToken } | null {
    for (let i = from; i < s.length; i++) {
      const list = this.#byFirst.get(s[i] as string)
      if (list === undefined) continue
      for (const [p, token] of list) if (s.startsWith(p, i)) return { start: i, end: i + p.length, token }
    }
    return null
  }

  /** Split `piece` into added tokens and the text between them. */
  split(piece: Piece): Segment[] {
    const s = piece.text
    // The crate drops empty splits here, before any pre-tokenizer could prepend to them.
    if (s === '') return []
    if (this.empty) return [piece]
    const out: Segment[] = []
    const text = (a: number, b: number): void => void out.push({ text: s.slice(a, b), atStart: piece.atStart && a === 0 })
    let done = 0
    for (let m = this.#find(s, 0); m !== null; m = this.#find(s, m.end)) {
      let start = m.start
      let stop = m.end
      const t = m.token
      // single_word: no word character (Rust regex \w) right before or right after the match.
      if (t.singleWord && (WORD.test(charBefore(s, start)) || WORD.test(charAt(s, stop)))) continue
      // lstrip / rstrip: the whitespace before / after the token is part of it (but not whitespace an earlier match took).
      if (t.lstrip) {
        while (start > done && SPACE.test(charBefore(s, start))) start -= charBefore(s, start).length
        start = Math.max(start, done)
      }
      if (t.rstrip) while (stop < s.length && SPACE.test(charAt(s, stop))) stop += charAt(s, stop).length
      if (done < start) text(done, start)
      out.push({ text: s.slice(start, stop), atStart: piece.atStart && start === 0, id: t.id })
      done = stop
    }
    if (done !== s.length) text(done, s.length)
    return out
  }
}

// ---------------------------------------------------------------------------------------------
// the BPE model (models/bpe/model.rs, word.rs)

class BpeModel {
  readonly vocab = new Map<string, number>()
  /** id -> token */
  readonly tokens = new Map<number, string>()
  /** left * vocabSize + right -> merge (priority = rank) */
  readonly #merges = new Map<number, PairMerge>()
  readonly #cache = new Map<string, readonly number[]>()
  readonly #unk: string | null
  readonly #fuseUnk: boolean
  readonly byteFallback: boolean
  readonly #ignoreMerges: boolean
  readonly #prefix: string
  readonly #suffix: string
  readonly #vocabSize: number
  readonly #file: string | null

  constructor(j: JsonAt, vocabSize: number) {
    this.#vocabSize = vocabSize
    this.#file = j.file
    const type = j.at('type')
    if (!type.absent && type.string() !== 'BPE') type.unsupported(`model type ${JSON.stringify(type.value)} (only BPE)`)
    if (type.absent && j.at('merges').absent) j.unsupported('a model without "type": "BPE" and merges')
    const dropout = j.at('dropout')
    if (!dropout.absent && dropout.value !== 0) dropout.unsupported(`BPE dropout ${JSON.stringify(dropout.value)} (it makes encoding random)`)
    this.#unk = j.at('unk_token').absent ? null : j.at('unk_token').string()
    this.#fuseUnk = j.at('fuse_unk').bool(false)
    this.byteFallback = j.at('byte_fallback').bool(false)
    this.#ignoreMerges = j.at('ignore_merges').bool(false)
    this.#prefix = j.at('continuing_subword_prefix').absent ? '' : j.at('continuing_subword_prefix').string()
    this.#suffix = j.at('end_of_word_suffix').absent ? '' : j.at('end_of_word_suffix').string()

    const vocab = j.at('vocab')
    for (const [token, id] of Object.entries(vocab.object())) {
      const at = new JsonAt(id, `${vocab.path}[${JSON.stringify(token)}]`, j.file)
      const n = at.int()
      if (n >= vocabSize) at.fail(`token id ${n} is outside the model's vocabulary of ${vocabSize}`)
      const other = this.tokens.get(n)
      if (other !== undefined) at.fail(`id ${n} is also the id of ${JSON.stringify(other)}`)
      this.vocab.set(token, n)
      this.tokens.set(n, token)
    }

    const merges = j.at('merges')
    merges.array().forEach((m, rank) => {
      let pair: [string, string]
      if (typeof m.value === 'string') {
        const parts = m.value.split(' ')
        if (parts.length !== 2) m.fail(`expected "left right", got ${JSON.stringify(m.value)}`)
        pair = parts as [string, string]
      } else {
        const parts = m.array()
        if (parts.length !== 2) m.fail('expected a [left, right] pair')
        pair = [(parts[0] as JsonAt).string(), (parts[1] as JsonAt).string()]
      }
      const [a, b] = pair
      const left = this.vocab.get(a)
      const right = this.vocab.get(b)
      const merged = a + (this.#prefix !== '' ? b.slice(this.#prefix.length) : b)
      const id = this.vocab.get(merged)
      for (const [name, value] of [[a, left], [b, right], [merged, id]] as const) {
        if (value === undefined) m.fail(`merge ${JSON.stringify(`${a} ${b}`)} needs ${JSON.stringify(name)}, which is not in model.vocab`)
      }
      // A repeated pair keeps its last rank, as the crate's HashMap collect does.
      this.#merges.set((left as number) * vocabSize + (right as number), { priority: rank, id: id as number })
    })
  }

  /** Token ids for one pre-token. */
  tokenize(word: string): readonly number[] {
    if (word === '') return []
    if (this.#ignoreMerges) {
      const id = this.vocab.get(word)
      if (id !== undefined) return [id]
    }
    const hit = this.#cache.get(word)
    if (hit !== undefined) return hit
    const ids = mergePairs(this.#symbols(word), (l, r) => this.#merges.get(l * this.#vocabSize + r))
    if (this.#cache.size >= WORD_CACHE) this.#cache.clear()
    this.#cache.set(word, ids)
    return ids
  }

  /** BPE::merge_word before merging: one symbol per character. */
  #symbols(word: string): number[] {
    const chars = Array.from(word)
    const out: number[] = []
    let unk: number | null = null
    chars.forEach((c, i) => {
      const s = (i > 0 ? this.#prefix : '') + c + (i === chars.length - 1 ? this.#suffix : '')
      const id = this.vocab.get(s)
      if (id !== undefined) {
        if (unk !== null) out.push(unk)
        unk = null
        out.push(id)
        return
      }
      if (this.byteFallback) {
        const bytes = Array.from(new TextEncoder().encode(s), (b) => this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`))
        if (bytes.every((b) => b !== undefined)) {
          // The crate adds these without first flushing a pending unk (which then lands after them).
          out.push(...(bytes as number[]))
          return
        }
      }
      if (this.#unk === null) return // no unk token: the character is dropped, as in the crate
      const unkId = this.vocab.get(this.#unk)
      if (unkId === undefined) formatError(this.#file, null, `model.unk_token ${JSON.stringify(this.#unk)} is not in model.vocab`)
      if (unk !== null && !this.#fuseUnk) out.push(unk)
      if (unk === null || !this.#fuseUnk) unk = unkId
    })
    if (unk !== null) out.push(unk)
    return out
  }
}

// ---------------------------------------------------------------------------------------------
// the tokenizer

class HfTokenizer implements Tokenizer {
  readonly vocabSize: number
  readonly bos: number
  readonly eos: number
  readonly #model: BpeModel
  readonly #normalizer: Normalizer | null
  readonly #preTokenizer: PreTokenizer | null
  readonly #decoder: Decoder | null
  readonly #raw: AddedMatcher
  readonly #normalized: AddedMatcher
  /** id -> an added token's string, which decodes before the model's token for that id */
  readonly #added = new Map<number, string>()
  /** strings of special added tokens: skipped when decoding */
  readonly #special = new Set<string>()

  constructor(json: unknown, vocabSize: number, bos: number, eos: number, file: string | null) {
    this.vocabSize = vocabSize
    this.bos = bos
    this.eos = eos
    const root = new JsonAt(json, 'tokenizer.json', file)
    root.object()
    this.#model = new BpeModel(root.at('model'), vocabSize)
    this.#normalizer = buildNormalizer(root.at('normalizer'))
    this.#preTokenizer = buildPreTokenizer(root.at('pre_tokenizer'))
    this.#decoder = buildDecoder(root.at('decoder'))

    const added = root.at('added_tokens')
    const tokens: AddedToken[] = []
    for (const t of added.absent ? [] : added.array()) {
      const id = t.at('id').int()
      if (id >= vocabSize) t.at('id').fail(`token id ${id} is outside the model's vocabulary of ${vocabSize}`)
      const special = t.at('special').bool(false)
      const token: AddedToken = {
        id,
        content: t.at('content').string(),
        singleWord: t.at('single_word').bool(false),
        lstrip: t.at('lstrip').bool(false),
        rstrip: t.at('rstrip').bool(false),
        normalized: t.at('normalized').bool(!special),
        special
      }
      if (token.content === '') continue // the crate ignores empty added tokens
      tokens.push(token)
      // A normalized token matches, and decodes as (tokenizers 0.23), its content normalized.
      const string = token.normalized && this.#normalizer !== null ? this.#normalizer(token.content) : token.content
      this.#added.set(id, string)
      if (special) this.#special.add(string)
    }
    this.#raw = new AddedMatcher(tokens.filter((t) => !t.normalized).map((t) => [t.content, t]))
    this.#normalized = new AddedMatcher(tokens.filter((t) => t.normalized).map((t) => [this.#added.get(t.id) as string, t]))
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError('text: expected string')
    // Rust strings cannot hold lone surrogates; encode them as the U+FFFD TextEncoder would write.
    const input = text.replace(/\p{Cs}/gu, '\uFFFD')
    const out: number[] = []
    if (options.bos === true) out.push(this.bos)
    for (const seg of this.#raw.split({ text: input, atStart: true })) {
      if (seg.id !== undefined) {
        out.push(seg.id)
        continue
      }
      const normalized = { text: this.#normalizer === null ? seg.text : this.#normalizer(seg.text), atStart: seg.atStart }
      for (const sub of this.#normalized.split(normalized)) {
        if (sub.id !== undefined) {
          out.push(sub.id)
          continue
        }
        const pieces = this.#preTokenizer === null ? [sub] : this.#preTokenizer([sub])
        for (const p of pieces) for (const id of this.#model.tokenize(p.text)) out.push(id)
      }
    }
    if (options.eos === true) out.push(this.eos)
    return out
  }

  isByteToken(token: number): boolean {
    return this.#model.byteFallback && /^<0x[0-9A-F]{2}>$/.test(this.#model.tokens.get(token) ?? '')
  }

  decode(tokens: readonly number[]): string {
    const strings: string[] = []
    for (const id of tokens) {
      this.#check(id, 'token')
      if (id === this.bos || id === this.eos) continue
      const s = this.#added.get(id) ?? this.#model.tokens.get(id)
      if (s === undefined || this.#special.has(s)) continue
      strings.push(s)
    }
    if (this.#decoder === null) return strings.join(' ')
    return this.#decoder(strings).join('')
  }

  decodeToken(previous: number, token: number): string {
    this.#check(token, 'token')
    if (previous === -1) return this.decode([token])
    this.#check(previous, 'previous')
    const before = this.decode([previous])
    const both = this.decode([previous, token])
    return both.startsWith(before) ? both.slice(before.length) : this.decode([token])
  }

  #check(id: number, name: string): void {
    if (!Number.isSafeInteger(id) || id < 0 || id >= this.vocabSize) throw new RangeError(`${name}: expected a token id below ${this.vocabSize}, got ${id}`)
  }
}

/** The tokenizer in `bytes` (a tokenizer.json) for a model of `vocabSize` tokens. */
export function hfTokenizerJson(bytes: Uint8Array, vocabSize: number, bos: number, eos: number, file: string | null = null): Tokenizer {
  if (vocabSize > MAX_VOCAB) formatError(file, null, `a model vocabulary of ${vocabSize} tokens is more than this tokenizer supports (${MAX_VOCAB})`)
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (e) {
    formatError(file, null, `is not valid UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  return Object.freeze(new HfTokenizer(json, vocabSize, bos, eos, file))
}
