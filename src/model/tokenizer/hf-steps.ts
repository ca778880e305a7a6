/**
 * The text stages of a Hugging Face `tokenizer.json` around its model: `normalizer`,
 * `pre_tokenizer` and `decoder`, each built once from its JSON into a plain function.
 *
 * Semantics follow the `tokenizers` crate (src/normalizers, src/pre_tokenizers, src/decoders,
 * src/tokenizer/normalizer.rs `split` and pattern.rs `find_matches`):
 * - A pre-tokenizer maps pieces to pieces. Splitting a piece finds the pattern's matches, covering
 *   the piece with alternating (non-)matches, groups them by the delimiter behaviour and drops
 *   empty results. ByteLevel then rewrites each piece's UTF-8 bytes as GPT-2's printable alphabet.
 * - A decoder maps the list of token strings to a list of strings; the caller joins them.
 *
 * Supported: normalizers Sequence, Replace, Prepend, NFC, NFD, NFKC, NFKD, Lowercase, Strip,
 * ByteLevel; pre-tokenizers Sequence, ByteLevel, Split, Metaspace, Digits, WhitespaceSplit;
 * decoders Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace. Anything else is a
 * ModelFormatError naming it.
 *
 * One approximation: Metaspace's `prepend_scheme: "first"` prepends to a piece whose *original*
 * offset is 0. Here that is a piece at the start of the text that no earlier split cut anything off;
 * the two differ only when a normalizer inserts text that a later split cuts off, which no published
 * tokenizer does (they use Metaspace *instead* of the Prepend normalizer).
 *
 * @module
 */
import { formatError } from '../errors.ts'
import { onigRegex } from './hf-regex.ts'

// ---------------------------------------------------------------------------------------------
// tokenizer.json access, with the JSON path in every error

/** A value at a path in tokenizer.json; its readers throw ModelFormatError naming the path. */
export class JsonAt {
  constructor(
    readonly value: unknown,
    readonly path: string,
    readonly file: string | null
  ) {}

  fail(detail: string): never {
    return formatError(this.file, null, `${this.path}: ${detail}`)
  }

  unsupported(feature: string): never {
    return formatError(this.file, null, `${this.path}: ${feature} is not supported`)
  }

  get absent(): boolean {
    return this.value === undefined || this.value === null
  }

  /** The member `key` of this object (absent when missing). */
  at(key: string): JsonAt {
    const o = this.object()
    return new JsonAt(Object.hasOwn(o, key) ? o[key] : undefined, `${this.path}.${key}`, this.file)
  }

  object(): Record<string, unknown> {
    if (typeof this.value !== 'object' || this.value === null || Array.isArray(this.value)) this.fail(`expected an object, got ${kind(this.value)}`)
    return this.value as Record<string, unknown>
  }

  array(): JsonAt[] {
    if (!Array.isArray(this.value)) this.fail(`expected an array, got ${kind(this.value)}`)
    return (this.value as unknown[]).map((v, i) => new JsonAt(v, `${this.path}[${i}]`, this.file))
  }

  string(fallback?: string): string {
    if (this.absent && fallback !== undefined) return fallback
    if (typeof this.value !== 'string') this.fail(`expected a string, got ${kind(this.value)}`)
    return this.value as string
  }

  /** A Rust `char`: a string of exactly one code point. */
  char(): string {
    const s = this.string()
    if (Array.from(s).length !== 1) this.fail(`expected one character, got ${JSON.stringify(s)}`)
    return s
  }

  bool(fallback: boolean): boolean {
    if (this.absent) return fallback
    if (typeof this.value !== 'boolean') this.fail(`expected true or false, got ${kind(this.value)}`)
    return this.value as boolean
  }

  int(fallback?: number): number {
    if (this.absent && fallback !== undefined) return fallback
    if (typeof this.value !== 'number' || !Number.isSafeInteger(this.value) || this.value < 0) this.fail(`expected a non-negative integer, got ${kind(this.value)}`)
    return this.value as number
  }

  /** The `type` tag of a component object. */
  type(): string {
    return this.at('type').string()
  }
}

function kind(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? 'an object' : JSON.stringify(v)
}

/** A `pattern` member: `{ "String": s }` (a literal) or `{ "Regex": r }` (Oniguruma). */
function pattern(j: JsonAt): RegExp | string {
  const o = j.object()
  if (typeof o['String'] === 'string' && Object.keys(o).length === 1) return o['String']
  if (typeof o['Regex'] === 'string' && Object.keys(o).length === 1) return onigRegex(o['Regex'], j.path, j.file)
  return j.fail('expected { "String": ... } or { "Regex": ... }')
}

// ---------------------------------------------------------------------------------------------
// matching and splitting (tokenizer/pattern.rs, normalizer.rs)

/** [start, end, isMatch] in UTF-16 units; a pattern's matches cover the whole string in order. */
export type Match = readonly [number, number, boolean]

/** Matches of a regex (or literal; an empty literal matches nothing), with the gaps between them. */
export function findMatches(p: RegExp | string, s: string): Match[] {
  if (s === '') return [[0, 0, false]]
  if (typeof p === 'string' && p === '') return [[0, s.length, false]]
  const out: Match[] = []
  let prev = 0
  const hit = (start: number, end: number): void => {
    if (prev !== start) out.push([prev, start, false])
    out.push([start, end, true])
    prev = end
  }
  if (typeof p === 'string') {
    for (let at = s.indexOf(p); at !== -1; at = s.indexOf(p, at + p.length)) hit(at, at + p.length)
  } else {
    // V8 tries zero-width lookarounds between the halves of a surrogate pair even in `u` mode
    // ("a😀".matchAll(/(?![^\n])/gu) finds index 2); Oniguruma works on whole characters.
    const split = (i: number): boolean => i > 0 && i < s.length && /[\uD800-\uDBFF]/.test(s[i - 1] as string) && /[\uDC00-\uDFFF]/.test(s[i] as string)
    for (const m of s.matchAll(p)) if (!split(m.index) && !split(m.index + m[0].length)) hit(m.index, m.index + m[0].length)
  }
  if (prev !== s.length) out.push([prev, s.length, false])
  return out
}

/** Matches of single characters (code points) satisfying `is`. */
function charMatches(is: (c: string) => boolean, s: string): Match[] {
  if (s === '') return [[0, 0, false]]
  const out: Match[] = []
  let last = 0
  let at = 0
  for (const c of s) {
    const end = at + c.length
    if (is(c)) {
      if (last < at) out.push([last, at, false])
      out.push([at, end, true])
      last = end
    }
    at = end
  }
  if (at > last) out.push([last, at, false])
  return out
}

export type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous'
const BEHAVIORS: readonly SplitBehavior[] = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']

/** A pre-token: its text and whether it starts the original text (for Metaspace "first"). */
export interface Piece {
  readonly text: string
  readonly atStart: boolean
}

/** NormalizedString::split: group `matches` by `behavior`, slice `piece`, drop empty results. */
export function splitPiece(piece: Piece, matches: readonly Match[], behavior: SplitBehavior): Piece[] {
  let spans: [number, number, boolean][] // [start, end, remove]
  if (behavior === 'Isolated') spans = matches.map(([s, e]) => [s, e, false])
  else if (behavior === 'Removed') spans = matches.map(([s, e, m]) => [s, e, m])
  else if (behavior === 'Contiguous' || behavior === 'MergedWithPrevious') {
    spans = []
    let previous = false
    for (const [s, e, m] of matches) {
      const extend = behavior === 'Contiguous' ? m === previous : m && !previous
      const last = spans[spans.length - 1]
      if (extend && last !== undefined) last[1] = e
      else spans.push([s, e, false])
      previous = m
    }
  } else {
    spans = []
    let previous = false
    for (let i = matches.length - 1; i >= 0; i--) {
      const [s, e, m] = matches[i] as Match
      const last = spans[spans.length - 1]
      if (m && !previous && last !== undefined) last[0] = s
      else spans.push([s, e, false])
      previous = m
    }
    spans.reverse()
  }
  const out: Piece[] = []
  for (const [s, e, remove] of spans) {
    if (!remove && e > s) out.push({ text: piece.text.slice(s, e), atStart: piece.atStart && s === 0 })
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// GPT-2's byte-level alphabet (pre_tokenizers/byte_level.rs bytes_char)

/** byte -> printable character: printable Latin-1 bytes stand for themselves, the rest map to U+0100 upwards. */
export const BYTE_TO_CHAR: readonly string[] = /* @__PURE__ */ (() => {
  const bs: number[] = []
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b)
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b)
  for (let b = 0xae; b <= 0xff; b++) bs.push(b)
  const cs = [...bs]
  let n = 0
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b)
      cs.push(256 + n++)
    }
  }
  const out = new Array<string>(256)
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i] as number)))
  return Object.freeze(out)
})()

export const CHAR_TO_BYTE: ReadonlyMap<string, number> = /* @__PURE__ */ new Map(BYTE_TO_CHAR.map((c, b) => [c, b]))

export function toByteLevel(s: string): string {
  let out = ''
  for (const b of new TextEncoder().encode(s)) out += BYTE_TO_CHAR[b]
  return out
}

/** The regex GPT-2 (and ByteLevel with use_regex) splits with. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
let gpt2: RegExp | null = null

const isWhitespace = (c: string): boolean => /^\p{White_Space}$/u.test(c)

// ---------------------------------------------------------------------------------------------
// normalizers

export type Normalizer = (s: string) => string

/** The `normalizer` of tokenizer.json, or null for none. */
export function buildNormalizer(j: JsonAt): Normalizer | null {
  if (j.absent) return null
  const type = j.type()
  switch (type) {
    case 'Sequence': {
      const steps = j
        .at('normalizers')
        .array()
        .map((n) => buildNormalizer(n))
        .filter((n): n is Normalizer => n !== null)
      return (s) => steps.reduce((acc, n) => n(acc), s)
    }
    case 'Replace': {
      const p = pattern(j.at('pattern'))
      const content = j.at('content').string()
      if (p === '') return (s) => s
      return (s) => (typeof p === 'string' ? s.replaceAll(p, () => content) : s.replace(p, () => content))
    }
    case 'Prepend': {
      const prepend = j.at('prepend').string()
      return (s) => (s === '' ? s : prepend + s)
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (s) => s.normalize(type)
    case 'Lowercase':
      // char by char, as Rust's char::to_lowercase (no final-sigma context, unlike String.toLowerCase)
      return (s) => Array.from(s, (c) => c.toLowerCase()).join('')
    case 'Strip': {
      const left = j.at('strip_left').bool(false)
      const right = j.at('strip_right').bool(false)
      return (s) => {
        let out = s
        if (left) out = out.replace(/^\p{White_Space}+/u, '')
        if (right) out = out.replace(/\p{White_Space}+$/u, '')
        return out
      }
    }
    case 'ByteLevel':
      return toByteLevel
    default:
      return j.unsupported(`normalizer type ${JSON.stringify(type)}`)
  }
}

// ---------------------------------------------------------------------------------------------
// pre-tokenizers

export type PreTokenizer = (pieces: readonly Piece[]) => Piece[]

function behaviorOf(j: JsonAt): SplitBehavior {
  const b = j.string()
  if (!(BEHAVIORS as readonly string[]).includes(b)) j.unsupported(`split behavior ${JSON.stringify(b)}`)
  return b as SplitBehavior
}

/** Metaspace's prepend scheme, from `prepend_scheme` or the older `add_prefix_space`. */
function prependScheme(j: JsonAt): 'always' | 'never' | 'first' {
  const legacy = j.at('add_prefix_space')
  const scheme = j.at('prepend_scheme')
  if (scheme.absent) return legacy.bool(true) ? 'always' : 'never'
  const s = scheme.string()
  if (s !== 'always' && s !== 'never' && s !== 'first') return scheme.unsupported(`prepend_scheme ${JSON.stringify(s)}`)
  return s
}

const flatMap =
  (f: (p: Piece) => Piece[]): PreTokenizer =>
  (pieces) =>
    pieces.flatMap(f)

/** The `pre_tokenizer` of tokenizer.json, or null for none. */
export function buildPreTokenizer(j: JsonAt): PreTokenizer | null {
  if (j.absent) return null
  const type = j.type()
  switch (type) {
    case 'Sequence': {
      const steps = j
        .at('pretokenizers')
        .array()
        .map((p) => buildPreTokenizer(p))
        .filter((p): p is PreTokenizer => p !== null)
      return (pieces) => steps.reduce<Piece[]>((acc, p) => p(acc), [...pieces])
    }
    case 'ByteLevel': {
      const prefix = j.at('add_prefix_space').bool(true)
      const useRegex = j.at('use_regex').bool(true)
      const re = useRegex ? (gpt2 ??= onigRegex(GPT2_PATTERN, 'GPT-2')) : null
      return flatMap((p) => {
        const piece = prefix && !p.text.startsWith(' ') ? { text: ` ${p.text}`, atStart: p.atStart } : p
        const parts = re === null ? [piece] : splitPiece(piece, findMatches(re, piece.text), 'Isolated')
        return parts.map((q) => ({ text: toByteLevel(q.text), atStart: q.atStart }))
      })
    }
    case 'Split': {
      const p = pattern(j.at('pattern'))
      const behavior = behaviorOf(j.at('behavior'))
      const invert = j.at('invert').bool(false)
      return flatMap((piece) => {
        const m = findMatches(p, piece.text)
        return splitPiece(piece, invert ? m.map(([s, e, x]) => [s, e, !x] as const) : m, behavior)
      })
    }
    case 'Metaspace': {
      const replacement = j.at('replacement').char()
      const scheme = prependScheme(j)
      const split = j.at('split').bool(true)
      return flatMap((p) => {
        let text = p.text.replaceAll(' ', replacement)
        if (!text.startsWith(replacement) && (scheme === 'always' || (scheme === 'first' && p.atStart))) text = replacement + text
        const piece = { text, atStart: p.atStart }
        return split ? splitPiece(piece, charMatches((c) => c === replacement, text), 'MergedWithNext') : [piece]
      })
    }
    case 'Digits': {
      const individual = j.at('individual_digits').bool(false)
      const isDigit = (c: string): boolean => /^\p{N}$/u.test(c)
      return flatMap((p) => splitPiece(p, charMatches(isDigit, p.text), individual ? 'Isolated' : 'Contiguous'))
    }
    case 'WhitespaceSplit':
      return flatMap((p) => splitPiece(p, charMatches(isWhitespace, p.text), 'Removed'))
    default:
      return j.unsupported(`pre_tokenizer type ${JSON.stringify(type)}`)
  }
}

// ---------------------------------------------------------------------------------------------
// decoders

export type Decoder = (tokens: readonly string[]) => string[]

const BYTE_TOKEN = /^<0x(\+[0-9A-Fa-f]|[0-9A-Fa-f]{2})>$/

/** ByteFallback: a run of `<0xXX>` tokens becomes its UTF-8 text, or one U+FFFD per byte when invalid. */
function byteFallback(tokens: readonly string[]): string[] {
  const out: string[] = []
  let bytes: number[] = []
  const flush = (): void => {
    if (bytes.length === 0) return
    try {
      out.push(new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes)))
    } catch {
      for (let i = 0; i < bytes.length; i++) out.push('\uFFFD')
    }
    bytes = []
  }
  for (const t of tokens) {
    const m = BYTE_TOKEN.exec(t)
    if (m !== null) bytes.push(parseInt(m[1] as string, 16))
    else {
      flush()
      out.push(t)
    }
  }
  flush()
  return out
}

/** The `decoder` of tokenizer.json, or null for none (tokens are then joined with spaces). */
export function buildDecoder(j: JsonAt): Decoder | null {
  if (j.absent) return null
  const type = j.type()
  switch (type) {
    case 'Sequence': {
      const steps = j
        .at('decoders')
        .array()
        .map((d) => buildDecoder(d))
        .filter((d): d is Decoder => d !== null)
      return (tokens) => steps.reduce<string[]>((acc, d) => d(acc), [...tokens])
    }
    case 'ByteLevel':
      return (tokens) => {
        const bytes: number[] = []
        for (const t of tokens) {
          const mapped = Array.from(t, (c) => CHAR_TO_BYTE.get(c))
          if (mapped.every((b) => b !== undefined)) bytes.push(...(mapped as number[]))
          else bytes.push(...new TextEncoder().encode(t))
        }
        return [new TextDecoder().decode(Uint8Array.from(bytes))]
      }
    case 'Replace': {
      const p = pattern(j.at('pattern'))
      const content = j.at('content').string()
      if (p === '') return (tokens) => [...tokens]
      return (tokens) => tokens.map((t) => (typeof p === 'string' ? t.replaceAll(p, () => content) : t.replace(p, () => content)))
    }
    case 'ByteFallback':
      return byteFallback
    case 'Fuse':
      return (tokens) => [tokens.join('')]
    case 'Strip': {
      const content = j.at('content').char()
      const start = j.at('start').int()
      const stop = j.at('stop').int()
      return (tokens) =>
        tokens.map((t) => {
          const cs = Array.from(t)
          let from = 0
          while (from < start && from < cs.length && cs[from] === content) from++
          let to = cs.length
          while (cs.length - to < stop && to > from && cs[to - 1] === content) to--
          return cs.slice(from, to).join('')
        })
    }
    case 'Metaspace': {
      const replacement = j.at('replacement').char()
      const scheme = prependScheme(j)
      // As the crate does: the first token loses every replacement character, not just a leading one.
      return (tokens) => tokens.map((t, i) => t.replaceAll(replacement, i === 0 && scheme !== 'never' ? '' : ' '))
    }
    default:
      return j.unsupported(`decoder type ${JSON.stringify(type)}`)
  }
}
