/**
 * Training records (Proof-of-Data-Learning): what a candidate says it learned from and how.
 *
 * A miner submits its candidate with a record: the model it started from (every block of the param
 * index), the training pool and the windows of it, the seed, steps, batch size and learning rate,
 * a hash of the batch order, the loss of every step, and hashes of the trained weights (after every
 * step when the trainer holds them on the CPU, and at the end). Validators check the record against
 * the candidate and its job before certifying, and the certificate links it (`record`), so the
 * chain says which data every version learned from. Anyone can replay it (src/pol/audit.ts).
 *
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { DAG_CBOR, DAG_PB, RAW, decodeCbor, encodeCbor, isProtocolCid } from '../codec/cbor.ts'
import * as S from '../codec/schema.ts'

export const RECORD_KIND = 'blyan/training-record'
/** 2: `attempt` added (the windows and seed are the attempt's, src/pol/job.ts attemptTerms). */
export const RECORD_VERSION = 2
/** Largest record (a model of a few thousand blocks, a few thousand steps). */
export const MAX_RECORD_BYTES = 1024 * 1024
export type TrainingBackend = 'cpu' | 'webgpu'

export interface TrainingRecord {
  readonly kind: typeof RECORD_KIND
  readonly version: typeof RECORD_VERSION
  /** The expert trained, e.g. `layer0.expert3`. */
  readonly expert: string
  /** The version it started from (the candidate's `supersedes`). */
  readonly base: CID
  /** The candidate's payload: the weights training produced, as submitted. */
  readonly payload: CID
  /** The model trained in: block name -> chain B block, every parameter group (the param index then). */
  readonly model: Readonly<Record<string, CID>>
  /** The training pool (a chain D dataset block) and the windows of it (protocol.md §6.1). */
  readonly dataset: CID
  readonly start: number
  readonly count: number
  readonly seq_len: number
  readonly seed: number
  /** Which attempt of the miner at this base it was: with the base and the candidate's key it gives `start` and `seed`. */
  readonly attempt: number
  readonly steps: number
  readonly batch_size: number
  readonly learning_rate: number
  /** sha256 of the batch order: the window index of every sequence of every step, uint32 little-endian. */
  readonly batch_order: Uint8Array
  /** Who trained: `cpu` (the reference, bit-reproducible) or `webgpu` (reproducible within float tolerance). */
  readonly backend: TrainingBackend
  /** The batch loss of every step, before its update. */
  readonly losses: readonly number[]
  /** sha256 of the expert's float32 weights after every step (`cpu`), or none (`webgpu`). */
  readonly step_hashes: readonly Uint8Array[]
  /** sha256 of the trained expert's float32 weights. */
  readonly weights: Uint8Array
}

const KEYS = [
  'kind', 'version', 'expert', 'base', 'payload', 'model', 'dataset', 'start', 'count', 'seq_len', 'seed', 'attempt', 'steps', 'batch_size',
  'learning_rate', 'batch_order', 'backend', 'losses', 'step_hashes', 'weights'
] as const

export function encodeRecord(record: TrainingRecord): Uint8Array {
  return encodeCbor({ ...record, model: { ...record.model }, losses: [...record.losses], step_hashes: [...record.step_hashes] })
}

/** Decode and check a training record's schema (E_RECORD). */
export function decodeRecord(bytes: Uint8Array): TrainingRecord {
  const p = 'record'
  const o = S.exactMap(decodeCbor(bytes, MAX_RECORD_BYTES, p), KEYS, p, 'E_RECORD')
  if (o['kind'] !== RECORD_KIND) reject('E_RECORD', 'record.kind', `expected "${RECORD_KIND}"`)
  if (S.uint(o, 'version', p, undefined, 'E_RECORD') !== RECORD_VERSION) reject('E_VERSION', 'record.version', `record version ${String(o['version'])}`)
  const block = (c: CID, field: string): CID => {
    if (!isProtocolCid(c, [DAG_CBOR])) reject('E_RECORD', field, 'not a block CID')
    return c
  }
  const modelRaw = o['model']
  if (typeof modelRaw !== 'object' || modelRaw === null || Array.isArray(modelRaw)) reject('E_RECORD', 'record.model', 'a map of block name to block CID')
  const model: Record<string, CID> = {}
  for (const name of Object.keys(modelRaw)) model[name] = block(S.cid(modelRaw as S.Fields, name, 'record.model', 'E_RECORD'), `record.model.${name}`)
  const steps = S.uint(o, 'steps', p, 1 << 20, 'E_RECORD')
  const losses = S.list(o, 'losses', p, 1 << 20, 'E_RECORD').map((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) reject('E_RECORD', `record.losses[${i}]`, 'a finite number')
    return v
  })
  const hashes = S.list(o, 'step_hashes', p, 1 << 20, 'E_RECORD').map((v, i) => {
    if (!(v instanceof Uint8Array) || v.length !== 32) reject('E_RECORD', `record.step_hashes[${i}]`, '32 bytes')
    return v
  })
  const backend = S.oneOf(o, 'backend', p, ['cpu', 'webgpu'] as const, 'E_RECORD')
  if (losses.length !== steps) reject('E_RECORD', 'record.losses', `${losses.length} losses for ${steps} steps`)
  if (hashes.length !== (backend === 'cpu' ? steps : 0)) reject('E_RECORD', 'record.step_hashes', backend === 'cpu' ? `one per step (${steps})` : 'none from a webgpu trainer')
  const dataset = S.cid(o, 'dataset', p, 'E_RECORD')
  const payload = S.cid(o, 'payload', p, 'E_RECORD')
  if (!isProtocolCid(payload, [DAG_PB, RAW])) reject('E_RECORD', 'record.payload', 'a UnixFS file CID')
  return Object.freeze({
    kind: RECORD_KIND,
    version: RECORD_VERSION,
    expert: S.str(o, 'expert', p, 64, undefined, 'E_RECORD'),
    base: block(S.cid(o, 'base', p, 'E_RECORD'), 'record.base'),
    payload,
    model: Object.freeze(model),
    dataset: block(dataset, 'record.dataset'),
    start: S.uint(o, 'start', p, undefined, 'E_RECORD'),
    count: S.uint(o, 'count', p, 1 << 24, 'E_RECORD'),
    seq_len: S.uint(o, 'seq_len', p, 1 << 20, 'E_RECORD'),
    seed: S.uint(o, 'seed', p, 2 ** 32 - 1, 'E_RECORD'),
    attempt: S.uint(o, 'attempt', p, 2 ** 32 - 1, 'E_RECORD'),
    steps,
    batch_size: S.uint(o, 'batch_size', p, 1 << 16, 'E_RECORD'),
    learning_rate: S.finite(o, 'learning_rate', p, 'E_RECORD'),
    batch_order: S.bytes(o, 'batch_order', p, 32, 'E_RECORD'),
    backend,
    losses: Object.freeze(losses),
    step_hashes: Object.freeze(hashes),
    weights: S.bytes(o, 'weights', p, 32, 'E_RECORD')
  })
}

/** sha256 of float32 arrays, little-endian, in order (an expert's w1 ‖ w2 ‖ w3). */
export function weightsHash(arrays: readonly Float32Array[]): Uint8Array {
  const h = sha256.create()
  for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
  return h.digest()
}

/** sha256 of a batch order (uint32 little-endian). */
export function batchOrderHash(order: Int32Array): Uint8Array {
  const bytes = new Uint8Array(order.length * 4)
  const view = new DataView(bytes.buffer)
  order.forEach((v, i) => view.setUint32(i * 4, v, true))
  return sha256(bytes)
}
