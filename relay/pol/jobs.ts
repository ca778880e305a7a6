/**
 * The job board's jobs, derived from chain state: one per expert (the param index's current
 * version is the base), training windows from one of the training pools in force under the chain A
 * head (src/chain/governance.ts: approved by a validator quorum), the pool and the start derived
 * from the job id, settings from JobSettings. Leases live in the PoL store; service.ts
 * says who holds what.
 *
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { CID } from 'multiformats/cid'
import { poolsInForce } from '../../src/chain/governance.ts'
import type { MetaDocument } from '../../src/chain/meta.ts'
import { DEFAULT_JOB_SETTINGS, type Job, type JobSettings } from '../../src/pol/job.ts'
import type { ChainStore } from '../node/interface.ts'
import type { Lease } from './pol-store.ts'

function idOf(base: CID): string {
  return Buffer.from(sha256(base.bytes).subarray(0, 8)).toString('hex')
}

/** Who holds a job now: the exclusive (trusted) lease, if any, and the newbie keys sharing it. */
export interface JobHolders {
  readonly exclusive: Lease | null
  readonly shared: readonly Lease[]
}

/** Every job the chain gives, with who holds each. */
export function deriveJobs(store: ChainStore, holders: (job: string) => JobHolders, settings: JobSettings = DEFAULT_JOB_SETTINGS): Job[] {
  const head = store.head('A')
  const train = head === undefined ? [] : poolsInForce(store, head).train
  if (head === undefined || train.length === 0) return []
  const meta = head.document as MetaDocument
  const jobs: Job[] = []
  for (const [name, block] of store.paramIndex()) {
    if (block.header.block_type !== 'expert') continue
    const m = /^layer(\d+)\.expert(\d+)$/.exec(name)
    if (m === null) continue
    const id = idOf(block.cid)
    const digest = Buffer.from(id, 'hex')
    const held = holders(id)
    jobs.push(Object.freeze({
      id,
      expert: name,
      layer: Number(m[1]),
      expertIndex: Number(m[2]),
      base: block.cid.toString(),
      baseVersion: block.expertVersion,
      shard: Object.freeze({ dataset: (train[digest.readUInt16BE(6) % train.length] as CID).toString(), start: digest.readUIntBE(0, 6), count: settings.shardSequences }),
      seqLen: meta.pol.seq_len,
      steps: settings.steps,
      batchSize: settings.batchSize,
      learningRate: settings.learningRate,
      seed: digest.readUInt32BE(4),
      lease: held.exclusive === null ? null : Object.freeze({ miner: held.exclusive.miner, expiresAt: held.exclusive.expiresAt }),
      sharedBy: Object.freeze(held.shared.map((l) => Object.freeze({ miner: l.miner, expiresAt: l.expiresAt })))
    }))
  }
  return jobs.sort((a, b) => a.layer - b.layer || a.expertIndex - b.expertIndex)
}

/** JobSettings from JSON (a genesis manifest, `<data>/jobs.json`), every field checked. */
export function checkJobSettings(value: unknown, where: string): JobSettings {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${where}: expected an object {steps, batchSize, learningRate, shardSequences}`)
  const o = value as Record<string, unknown>
  const int = (key: string, max: number): number => {
    const v = o[key]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new Error(`${where}: ${key} must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`)
    return v
  }
  const lr = o['learningRate']
  if (typeof lr !== 'number' || !(lr > 0 && lr < 1)) throw new Error(`${where}: learningRate must be a number in (0, 1), got ${JSON.stringify(lr)}`)
  return Object.freeze({ steps: int('steps', 100_000), batchSize: int('batchSize', 1024), learningRate: lr, shardSequences: int('shardSequences', 1_000_000) })
}
