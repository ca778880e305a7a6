/**
 * A mining job as the job board serves it (`GET /api/jobs`): which expert to improve, from which
 * version, on which training pool, with which settings. Jobs are derived from chain state
 * (relay/pol/jobs.ts), so every node serves the same ones; a job's id changes when its base does.
 *
 * Where in the pool an attempt trains, and its seed, are the attempt's own ({@link attemptTerms}):
 * derived from the base, the miner's key and the attempt number, so two miners, or two attempts of
 * one, never train the same windows in the same order, and anyone recomputes them from the
 * training record (which names the attempt) and the candidate's key.
 *
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import type { CID } from 'multiformats/cid'
import { fromHex, toHex } from '../codec/cbor.ts'
import { publicKeyOf, signMessage, type SecretKey } from '../chain/keys.ts'
import type { LeaseRequest } from '../net/relay-api.ts'

export type { Job, LeaseRequest } from '../net/relay-api.ts'

/** Training settings every job gets (a node may choose others). */
export interface JobSettings {
  readonly steps: number
  readonly batchSize: number
  readonly learningRate: number
  /** Windows in a job's shard. */
  readonly shardSequences: number
}

export const DEFAULT_JOB_SETTINGS: JobSettings = Object.freeze({ steps: 40, batchSize: 4, learningRate: 2e-3, shardSequences: 64 })

/** Largest attempt number (a uint32 in the training record). */
export const MAX_ATTEMPT = 0xffffffff

const ATTEMPT_DOMAIN = new TextEncoder().encode('blyan-attempt/1')

/**
 * Where attempt `attempt` of `miner` (compressed public key, hex) at the job on `base` trains: the
 * first of its windows in the job's pool (taken modulo the pool's size) and its seed (batch order),
 * from sha256("blyan-attempt/1" || base CID bytes || miner key || attempt as uint32 big-endian):
 * `start` is its first 6 bytes, `seed` the next 4, both big-endian.
 */
export function attemptTerms(base: CID, miner: string, attempt: number): { readonly start: number; readonly seed: number } {
  if (!/^0[23][0-9a-f]{64}$/.test(miner)) throw new TypeError(`miner: expected a compressed public key in hex, got ${JSON.stringify(miner)}`)
  if (!Number.isInteger(attempt) || attempt < 0 || attempt > MAX_ATTEMPT) throw new RangeError(`attempt: a uint32, got ${attempt}`)
  const key = fromHex(miner)
  const input = new Uint8Array(ATTEMPT_DOMAIN.length + base.bytes.length + key.length + 4)
  input.set(ATTEMPT_DOMAIN, 0)
  input.set(base.bytes, ATTEMPT_DOMAIN.length)
  input.set(key, ATTEMPT_DOMAIN.length + base.bytes.length)
  new DataView(input.buffer).setUint32(input.length - 4, attempt)
  const d = new DataView(sha256(input).buffer)
  return Object.freeze({ start: d.getUint16(0) * 2 ** 32 + d.getUint32(2), seed: d.getUint32(6) })
}

/**
 * What a lease request (or its release) signs: the job, the miner's key and the time, so a lease
 * cannot be taken or dropped in another's name. `at` is also the key's request sequence: a node
 * takes each key's requests only with a larger `at` than any before (requestTime), so a captured
 * request cannot be replayed.
 */
export function leaseMessage(job: string, miner: string, at: number, action: 'lease' | 'release' = 'lease'): Uint8Array {
  return new TextEncoder().encode(`blyan-${action}/1 ${job} ${miner} ${at}`)
}

/** A lease (or release) request for `job`, signed by `key`, at `at` (default: requestTime()). */
export function signLeaseRequest(job: string, key: SecretKey, action: 'lease' | 'release' = 'lease', at: number = requestTime()): LeaseRequest {
  const miner = toHex(publicKeyOf(key))
  return { miner, at, signature: toHex(signMessage(leaseMessage(job, miner, at, action), key)) }
}

let lastRequestTime = 0

/** The `at` of this process's next signed request: the clock, but always later than the last one (two requests in one millisecond). */
export function requestTime(now: number = Date.now()): number {
  lastRequestTime = Math.max(now, lastRequestTime + 1)
  return lastRequestTime
}
