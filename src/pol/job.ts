/**
 * A mining job as the job board serves it (`GET /api/jobs`): which expert to improve, from which
 * version, on which training windows, with which settings. Jobs are derived from chain state
 * (relay/pol/jobs.ts), so every node serves the same ones; a job's id changes when its base does.
 *
 * @module
 */
import { toHex } from '../codec/cbor.ts'
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
