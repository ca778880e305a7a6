/**
 * A mining job as the job board serves it (`GET /api/jobs`): which expert to improve, from which
 * version, on which training windows, with which settings. Jobs are derived from chain state
 * (relay/jobs.ts), so every node serves the same ones; a job's id changes when its base does.
 *
 * @module
 */
import { toHex } from '../codec/cbor.ts'
import { publicKeyOf, signMessage, type SecretKey } from '../chain/keys.ts'

export interface Job {
  /** 16 hex digits: sha256(base CID bytes), first 8 bytes. */
  readonly id: string
  readonly expert: string
  readonly layer: number
  readonly expertIndex: number
  /** The current version to supersede (CID), and its version number. */
  readonly base: string
  readonly baseVersion: number
  /** Training windows (src/pol/sequences.ts) of a chain D `train` dataset. */
  readonly shard: { readonly dataset: string; readonly start: number; readonly count: number }
  readonly seqLen: number
  readonly steps: number
  readonly batchSize: number
  readonly learningRate: number
  readonly seed: number
  /**
   * The exclusive lease, held by a trusted key (one with accepted work behind it), and until when
   * (ms); null when none holds it. Only a trusted key's lease keeps other miners off a job.
   */
  readonly lease: { readonly miner: string; readonly expiresAt: number } | null
  /**
   * Newbie keys working on it now: their leases are shared, so fresh keys, which cost nothing to
   * make, cannot lock the board. Miners spread over the jobs with the fewest.
   */
  readonly sharedBy: readonly { readonly miner: string; readonly expiresAt: number }[]
}

/** Training settings every job gets (a node may choose others). */
export interface JobSettings {
  readonly steps: number
  readonly batchSize: number
  readonly learningRate: number
  /** Windows in a job's shard. */
  readonly shardSequences: number
}

export const DEFAULT_JOB_SETTINGS: JobSettings = Object.freeze({ steps: 40, batchSize: 4, learningRate: 2e-3, shardSequences: 64 })

/**
 * What a lease request (or its release) signs: the job, the miner's key and the time, so a lease
 * cannot be taken or dropped in another's name. `at` is also the key's request sequence: a node
 * takes each key's requests only with a larger `at` than any before (requestTime), so a captured
 * request cannot be replayed.
 */
export function leaseMessage(job: string, miner: string, at: number, action: 'lease' | 'release' = 'lease'): Uint8Array {
  return new TextEncoder().encode(`blyan-${action}/1 ${job} ${miner} ${at}`)
}

/** The JSON body of a lease or release request (POST|DELETE /api/jobs/<job>/lease). */
export interface LeaseRequest {
  /** The miner's compressed public key, hex. */
  readonly miner: string
  readonly at: number
  /** 64-byte compact signature over leaseMessage(job, miner, at, action), hex. */
  readonly signature: string
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
