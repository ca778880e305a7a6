/**
 * Proof of work, against spam: the header CID's sha2-256 digest must start with `difficulty` zero
 * bits. The nonce is outside the signing bytes, so a signed header is mined without re-signing.
 *
 * The search re-encodes nothing: the header is encoded once per CBOR width of the nonce, split around
 * the nonce's bytes, and each try writes the nonce in place and hashes.
 *
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { encodeHeader, type Header } from './header.ts'

/** Number of leading zero bits of `digest`. */
export function leadingZeroBits(digest: Uint8Array): number {
  let bits = 0
  for (const byte of digest) {
    if (byte === 0) {
      bits += 8
      continue
    }
    return bits + Math.clz32(byte) - 24
  }
  return bits
}

/** True when `digest` has at least `difficulty` leading zero bits. */
export function meetsDifficulty(digest: Uint8Array, difficulty: number): boolean {
  return leadingZeroBits(digest) >= difficulty
}

/** Work of one block at `difficulty`: the expected number of hashes, 2^difficulty. */
export function blockWork(difficulty: number): bigint {
  return 1n << BigInt(difficulty)
}

/** Byte width of a CBOR unsigned integer: the nonce's encoded size. */
function cborUintWidth(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9
}

function writeCborUint(out: Uint8Array, at: number, n: number): void {
  const width = cborUintWidth(n)
  if (width === 1) {
    out[at] = n
    return
  }
  out[at] = [0, 0, 0x18, 0x19, 0, 0x1a, 0, 0, 0, 0x1b][width] as number
  let v = BigInt(n)
  for (let i = width - 1; i >= 1; i--) {
    out[at + i] = Number(v & 0xffn)
    v >>= 8n
  }
}

/** Encoded header with the nonce's value bytes located: `bytes[at .. at + width)`. */
function template(header: Header, nonce: number): { bytes: Uint8Array; at: number } {
  // nonce and nonce +- 1 (same parity pair, so same width) differ only in the nonce's last byte.
  const width = cborUintWidth(nonce)
  const probe = nonce % 2 === 0 ? nonce + 1 : nonce - 1
  const a = encodeHeader({ ...header, nonce })
  const b = encodeHeader({ ...header, nonce: probe })
  let last = 0
  while (a[last] === b[last]) last++
  return { bytes: a, at: last - (width - 1) }
}

export interface MineOptions {
  /** First nonce to try (default 0). */
  readonly start?: number
  /** Give up after this many tries (default: until found). */
  readonly maxTries?: number
  readonly signal?: AbortSignal
  /** Called about every 64k tries. */
  readonly onProgress?: (event: { readonly tries: number; readonly nonce: number }) => void
}

/**
 * Find a nonce that makes the header meet its `difficulty`, synchronously (for tests and workers).
 * Returns the header with that nonce, or null when `maxTries` ran out.
 */
export function solvePow<H extends Header>(header: H, options: Omit<MineOptions, 'signal' | 'onProgress'> = {}): H | null {
  const found = searchNonce(header, options.start ?? 0, options.maxTries ?? Infinity)
  return found.nonce === null ? null : { ...header, nonce: found.nonce }
}

/** Async PoW search that yields to the event loop, honours `signal` and reports progress. */
export async function minePow<H extends Header>(header: H, options: MineOptions = {}): Promise<H> {
  let nonce = options.start ?? 0
  let tries = 0
  const max = options.maxTries ?? Infinity
  const slice = 1 << 16
  for (;;) {
    options.signal?.throwIfAborted()
    const found = searchNonce(header, nonce, Math.min(slice, max - tries))
    if (found.nonce !== null) return { ...header, nonce: found.nonce }
    tries += found.tries
    nonce += found.tries
    if (tries >= max) throw new RangeError(`minePow: no nonce found in ${max} tries`)
    options.onProgress?.({ tries, nonce })
    await new Promise((resolve) => setTimeout(resolve, 0))
  }
}

function searchNonce(header: Header, start: number, maxTries: number): { nonce: number | null; tries: number } {
  if (!Number.isSafeInteger(start) || start < 0) throw new RangeError('start: expected a non-negative safe integer')
  let t = template(header, start)
  let width = cborUintWidth(start)
  let tries = 0
  for (let nonce = start; tries < maxTries && nonce <= Number.MAX_SAFE_INTEGER; nonce++, tries++) {
    if (cborUintWidth(nonce) !== width) {
      t = template(header, nonce)
      width = cborUintWidth(nonce)
    }
    writeCborUint(t.bytes, t.at, nonce)
    if (meetsDifficulty(sha256(t.bytes), header.difficulty)) return { nonce, tries: tries + 1 }
  }
  return { nonce: null, tries }
}
