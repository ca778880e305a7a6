/**
 * Near-duplicate documents by MinHash over word shingles, with LSH banding to find candidates.
 *
 * A document's words are its runs of letters and digits, lower-cased; its shingles are the runs of
 * SHINGLE_WORDS consecutive words (a shorter document is one shingle). Its signature is, for each of
 * PERMUTATIONS seeded 32-bit hash functions, the least hash over its shingles; the share of equal
 * positions in two signatures estimates the Jaccard similarity of their shingle sets. Integer
 * arithmetic only, so every node computes the same signatures.
 *
 * @module
 */

export const SHINGLE_WORDS = 5
export const PERMUTATIONS = 64
/** LSH: BANDS bands of ROWS positions; two documents are compared when a whole band agrees. */
const BANDS = 16
const ROWS = PERMUTATIONS / BANDS

export type Signature = Uint32Array

/** FNV-1a over the UTF-16 code units of a string. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** murmur3's 32-bit finalizer: a bijective mix. */
function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const SEEDS = Uint32Array.from({ length: PERMUTATIONS }, (_, i) => mix(0x9e3779b9 * (i + 1)))

export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []
}

/** The MinHash signature of a document. */
export function signature(text: string): Signature {
  const w = words(text)
  const sig = new Uint32Array(PERMUTATIONS).fill(0xffffffff)
  const count = Math.max(1, w.length - SHINGLE_WORDS + 1)
  for (let i = 0; i < count; i++) {
    const h = fnv1a(w.slice(i, i + SHINGLE_WORDS).join(' '))
    for (let p = 0; p < PERMUTATIONS; p++) {
      const v = mix(h ^ (SEEDS[p] as number))
      if (v < (sig[p] as number)) sig[p] = v
    }
  }
  return sig
}

/** Estimated Jaccard similarity: the share of equal positions. */
export function similarity(a: Signature, b: Signature): number {
  let same = 0
  for (let p = 0; p < PERMUTATIONS; p++) if (a[p] === b[p]) same++
  return same / PERMUTATIONS
}

/** Reference documents' signatures, indexed by band for candidate lookup. */
export class MinHashIndex {
  readonly #signatures: Signature[] = []
  readonly #bands = new Map<string, number[]>()

  get size(): number {
    return this.#signatures.length
  }

  add(sig: Signature): void {
    const id = this.#signatures.length
    this.#signatures.push(sig)
    for (const key of bandKeys(sig)) {
      const list = this.#bands.get(key)
      if (list === undefined) this.#bands.set(key, [id])
      else list.push(id)
    }
  }

  /** The highest similarity of `sig` to an indexed signature that shares a band with it (0 for none). */
  nearest(sig: Signature): number {
    let best = 0
    const seen = new Set<number>()
    for (const key of bandKeys(sig)) {
      for (const id of this.#bands.get(key) ?? []) {
        if (seen.has(id)) continue
        seen.add(id)
        best = Math.max(best, similarity(sig, this.#signatures[id] as Signature))
      }
    }
    return best
  }
}

function bandKeys(sig: Signature): string[] {
  const keys: string[] = []
  for (let b = 0; b < BANDS; b++) keys.push(`${b}:${Array.from(sig.subarray(b * ROWS, (b + 1) * ROWS)).join(',')}`)
  return keys
}
