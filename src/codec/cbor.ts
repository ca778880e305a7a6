/**
 * Strict DAG-CBOR for protocol objects, and the CIDs that name them.
 *
 * Every protocol object (header, meta document, certificate, ...) has exactly one valid encoding:
 * decoding re-encodes and compares, so two byte strings can never name the same object. Hashing is
 * synchronous (@noble/hashes) because objects are small and validation code stays simple; bulk tile
 * hashing uses WebCrypto in src/tensor/tiles.ts instead.
 *
 * @module
 */
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { reject } from '../errors.ts'

/** Multicodec code of DAG-CBOR (0x71). */
export const DAG_CBOR = 0x71
/** Multicodec code of dag-pb (0x70), the UnixFS node codec. */
export const DAG_PB = 0x70
/** Multicodec code of raw bytes (0x55), the UnixFS leaf codec. */
export const RAW = 0x55
/** Multihash code of sha2-256 (0x12), the only hash the protocol accepts. */
export const SHA2_256 = 0x12

/** Encode a protocol object as canonical DAG-CBOR (map keys sorted by length, then bytes). */
export function encodeCbor(value: unknown): Uint8Array {
  return dagCbor.encode(value)
}

/**
 * Decode untrusted DAG-CBOR bytes, refusing anything over `maxBytes` and any encoding that is not
 * the canonical one. Throws RuleError E_TOO_LARGE, E_DECODE or E_NONCANONICAL with `field`.
 */
export function decodeCbor(bytes: Uint8Array, maxBytes: number, field: string): unknown {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${field}: expected Uint8Array`)
  if (bytes.length > maxBytes) reject('E_TOO_LARGE', field, `${bytes.length} bytes, limit ${maxBytes}`)
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (e) {
    reject('E_DECODE', field, e instanceof Error ? e.message : String(e))
  }
  let again: Uint8Array
  try {
    again = dagCbor.encode(value)
  } catch (e) {
    reject('E_DECODE', field, e instanceof Error ? e.message : String(e))
  }
  if (!bytesEqual(again, bytes)) reject('E_NONCANONICAL', field)
  return value
}

/** CIDv1 (codec, sha2-256) of `bytes`. */
export function cidOf(bytes: Uint8Array, codec: number = DAG_CBOR): CID {
  return CID.createV1(codec, Digest.create(SHA2_256, sha256(bytes)))
}

/** True when `cid` is CIDv1 with sha2-256 and one of `codecs`. */
export function isProtocolCid(cid: CID, codecs: readonly number[]): boolean {
  return cid.version === 1 && cid.multihash.code === SHA2_256 && cid.multihash.size === 32 && codecs.includes(cid.code)
}

/** True when `bytes` hash (sha2-256) to the digest of `cid`. */
export function cidMatches(cid: CID, bytes: Uint8Array): boolean {
  return cid.multihash.code === SHA2_256 && bytesEqual(sha256(bytes), cid.multihash.digest)
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Bytewise order of two byte strings (shorter first when one is a prefix). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d
  }
  return a.length - b.length
}

/** Order of CIDs by their binary form: the order `depends_on` and fork-choice ties use. */
export function compareCids(a: CID, b: CID): number {
  return compareBytes(a.bytes, b.bytes)
}

/** Byte arrays joined end to end (the one array itself when there is one). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** One byte array from a block as stores stream it (interface-blockstore's `get` and `put`). */
export async function collectBytes(input: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  if (input instanceof Uint8Array) return input
  const parts: Uint8Array[] = []
  for await (const part of input) parts.push(part)
  return concatBytes(parts)
}

export function toHex(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += b.toString(16).padStart(2, '0')
  return s
}

export function fromHex(hex: string): Uint8Array {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError('hex: expected an even-length hex string')
  }
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}
