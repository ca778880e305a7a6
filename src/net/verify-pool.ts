/**
 * What the verify pool's workers do: hash bytes (WebCrypto SHA-256) and check a header's own proofs
 * (it decodes, hashes to its CID, meets its difficulty, carries a valid signature). These are the
 * costly, stateless parts of validation; the rules that need the chain (links, quorum, balances)
 * run after, in sync.ts, over the page's validated state.
 *
 * Pure and isomorphic: the worker entry (verify.worker.ts) exposes these; `inlinePool` runs them on
 * the calling thread where workers are not available (Node tools and tests).
 *
 * @module
 */
import { decodeHeader, headerCid } from '../chain/header.ts'
import { checkPow, checkSignature } from '../chain/validate.ts'
import { isRuleError } from '../errors.ts'

export type HeaderCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: string; readonly field: string; readonly message: string }

export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
}

/** A header's own proofs: decoding, CID, PoW, signature. */
export function checkHeaderProofs(bytes: Uint8Array, cid: string): HeaderCheck {
  try {
    const header = decodeHeader(bytes)
    const actual = headerCid(bytes)
    if (actual.toString() !== cid) return { ok: false, code: 'E_CID', field: 'cid', message: `the header bytes hash to ${actual}, not ${cid}` }
    checkPow(actual, header.difficulty)
    checkSignature(header)
    return { ok: true }
  } catch (e) {
    if (isRuleError(e)) return { ok: false, code: e.code, field: e.field, message: e.message }
    return { ok: false, code: 'E_SCHEMA', field: 'header', message: e instanceof Error ? e.message : String(e) }
  }
}

/** The worker API. */
export const verifyApi = { sha256, checkHeaderProofs: async (bytes: Uint8Array, cid: string) => checkHeaderProofs(bytes, cid) }
export type VerifyApi = typeof verifyApi

/** Hashing and header checks, spread over workers. */
export interface VerifyPool {
  /** Workers (1 for the inline pool). */
  readonly size: number
  sha256(bytes: Uint8Array): Promise<Uint8Array>
  checkHeaderProofs(bytes: Uint8Array, cid: string): Promise<HeaderCheck>
  destroy(): void
}

/** The pool on this thread: the same functions, no workers. */
export function inlinePool(): VerifyPool {
  return { size: 1, sha256, checkHeaderProofs: async (bytes, cid) => checkHeaderProofs(bytes, cid), destroy() {} }
}

/** Workers for a machine with `hardwareConcurrency` logical cores: all of them, at most 8. */
export function poolSize(hardwareConcurrency: number | undefined): number {
  const n = hardwareConcurrency ?? 2
  return Math.max(1, Math.min(8, Math.floor(n)))
}
