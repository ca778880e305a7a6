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
import { blockNames } from '../../src/chain/params.ts'
import { batchOrderHash, type TrainingRecord } from '../../src/chain/record.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { reject } from '../../src/errors.ts'
import { batchOrder } from '../../src/model/random.ts'
import type { MetaDocument } from '../../src/chain/meta.ts'
import { DEFAULT_JOB_SETTINGS, attemptTerms, type Job, type JobSettings } from '../../src/pol/job.ts'
import type { ChainStore } from '../node/interface.ts'
import type { Lease } from './pol-store.ts'

function idOf(base: CID): string {
  return Buffer.from(sha256(base.bytes).subarray(0, 8)).toString('hex')
}

/** What a job on `base` asks for, given the training pools in force (non-empty) and the node's settings. */
export interface JobTerms {
  readonly id: string
  readonly dataset: CID
  readonly count: number
  readonly seqLen: number
  readonly steps: number
  readonly batchSize: number
  readonly learningRate: number
}

export function jobTerms(base: CID, train: readonly CID[], settings: JobSettings, seqLen: number): JobTerms {
  const id = idOf(base)
  const digest = Buffer.from(id, 'hex')
  return Object.freeze({
    id,
    dataset: train[digest.readUInt16BE(6) % train.length] as CID,
    count: settings.shardSequences,
    seqLen,
    steps: settings.steps,
    batchSize: settings.batchSize,
    learningRate: settings.learningRate
  })
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
    const terms = jobTerms(block.cid, train, settings, meta.pol.seq_len)
    const held = holders(terms.id)
    jobs.push(Object.freeze({
      id: terms.id,
      expert: name,
      layer: Number(m[1]),
      expertIndex: Number(m[2]),
      base: block.cid.toString(),
      baseVersion: block.expertVersion,
      shard: Object.freeze({ dataset: terms.dataset.toString(), count: terms.count }),
      seqLen: terms.seqLen,
      steps: terms.steps,
      batchSize: terms.batchSize,
      learningRate: terms.learningRate,
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

/**
 * Rule E_RECORD for validators: a candidate's training record is the job this node gives for its
 * base under the candidate's rules block (pool and settings), its windows and seed are those of the
 * attempt it names by the candidate's key `miner` (hex; src/pol/job.ts attemptTerms), its batch order is the
 * seed's, and the model it names is one whole model whose `expert` is the base, every block an
 * accepted chain B block of its name.
 */
export function checkRecordAgainstJob(record: TrainingRecord, miner: string, rules: AcceptedBlock, store: ChainStore, settings: JobSettings = DEFAULT_JOB_SETTINGS): void {
  const meta = rules.document as MetaDocument
  const train = poolsInForce(store, rules).train
  if (train.length === 0) reject('E_RECORD', 'record.dataset', 'no training pool is in force under the candidate\'s rules block')
  const terms = jobTerms(record.base, train, settings, meta.pol.seq_len)
  if (!record.dataset.equals(terms.dataset)) reject('E_RECORD', 'record.dataset', `the job trains on ${terms.dataset}`)
  // Where this attempt of this key trains, and its seed: not the miner's to choose.
  const attempt = attemptTerms(record.base, miner, record.attempt)
  const want = { start: attempt.start, count: terms.count, seq_len: terms.seqLen, seed: attempt.seed, steps: terms.steps, batch_size: terms.batchSize, learning_rate: terms.learningRate }
  for (const [key, value] of Object.entries(want)) {
    if (record[key as keyof typeof want] !== value) reject('E_RECORD', `record.${key}`, `the job's ${key} is ${value}, the record says ${String(record[key as keyof typeof want])}`)
  }
  const order = batchOrderHash(batchOrder(record.count, record.steps, record.batch_size, record.seed))
  if (Buffer.compare(order, record.batch_order) !== 0) reject('E_RECORD', 'record.batch_order', 'is not the batch order the seed gives')
  const names = blockNames(meta.architecture)
  if (Object.keys(record.model).length !== names.length) reject('E_RECORD', 'record.model', `names ${Object.keys(record.model).length} blocks, the model has ${names.length}`)
  for (const name of names) {
    const cid = record.model[name]
    const block = cid === undefined ? undefined : store.get(cid)
    if (block === undefined || block.header.chain_id !== 'B' || block.header.expert_name !== name) reject('E_RECORD', `record.model.${name}`, 'not an accepted chain B block of that name')
  }
  if (!record.model[record.expert]?.equals(record.base)) reject('E_RECORD', `record.model.${record.expert}`, 'must be the base the candidate supersedes')
}
