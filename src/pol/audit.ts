/**
 * Auditing a training record (Proof-of-Data-Learning): replay the training a version's record
 * describes, on the model and the data it names, and compare step by step.
 *
 * A record from the CPU reference (`backend: cpu`) replays bit for bit: every step's loss and weight
 * hash, the final weights' hash and the payload (after the same int8 re-quantization) must match,
 * and the first step that does not is reported. A WebGPU trainer sums in another order, so its
 * record replays within tolerance: every loss within LOSS_TOLERANCE (relative) and the final weights
 * within WEIGHT_TOLERANCE of the version's (relative to their largest magnitude). A replay costs
 * about what the miner's training cost: the same steps, plus hashing the weights after each.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import type { Architecture, MetaDocument } from '../chain/meta.ts'
import type { DatasetDocument } from '../chain/dataset.ts'
import { batchOrderHash, decodeRecord, weightsHash, type TrainingRecord } from '../chain/record.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import { batchOrder } from '../model/random.ts'
import { chainTokenizer, type BlockRef } from '../model/source.ts'
import type { Tokenizer } from '../model/tokenizer/index.ts'
import { dequantizeAll, expertWeights, readBlockTensors, type ExpertWeights } from '../model/weights.ts'
import { fetchUnixfsFile, importPayload } from '../tensor/tiles.ts'
import { trainExpert } from '../train/train.ts'
import { expertPayload } from './candidate.ts'
import { loadFloatModel, type BlockGetter } from './float-model.ts'
import { SequencePool } from './sequences.ts'

export const LOSS_TOLERANCE = 1e-3
export const WEIGHT_TOLERANCE = 1e-2

export interface AuditInput {
  readonly record: TrainingRecord
  /** The audited version's header (its payload must be the record's). */
  readonly version: AcceptedBlock
  readonly architecture: Architecture
  /** Accepted blocks by CID (the record's model entries are looked up here). */
  readonly lookup: (cid: CID) => AcceptedBlock | undefined
  /** Verified block bytes (weights, the version's payload). */
  readonly get: BlockGetter
  readonly tokenizer: Tokenizer
  /** The text of the record's training pool. */
  readonly datasetText: string
  readonly signal?: AbortSignal
  readonly onStep?: (step: number, steps: number) => void
}

export interface AuditResult {
  readonly pass: boolean
  readonly mode: 'exact' | 'tolerance'
  /** The first step (from 0) where the replay left the record, or null; `steps` for the final weights. */
  readonly firstDifference: number | null
  /** One line for people. */
  readonly detail: string
}

const hex = (b: Uint8Array): string => Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join('')
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((v, i) => v === b[i])

/** Replay `input.record` and compare; the result says where the replay first differs. */
export async function auditRecord(input: AuditInput): Promise<AuditResult> {
  const { record, architecture: arch } = input
  const exact = record.backend === 'cpu'
  const mode = exact ? 'exact' : 'tolerance'
  const fail = (step: number | null, detail: string): AuditResult => Object.freeze({ pass: false, mode, firstDifference: step, detail })
  if (!record.payload.equals(input.version.header.payload)) return fail(null, `the record names payload ${record.payload}, the version holds ${input.version.header.payload}`)
  if (!same(batchOrderHash(batchOrder(record.count, record.steps, record.batch_size, record.seed)), record.batch_order)) return fail(0, 'the batch order is not the one the seed gives')

  const blocks = new Map<string, BlockRef>()
  for (const [name, cid] of Object.entries(record.model)) {
    const block = input.lookup(cid)
    if (block === undefined || block.header.chain_id !== 'B' || block.header.expert_name !== name) return fail(null, `the record's ${name} (${cid}) is not an accepted block of that name`)
    blocks.set(name, { name, cid, payload: block.header.payload, payloadSize: block.header.payload_size })
  }
  const model = await loadFloatModel(arch, blocks, input.get, input.signal)
  const sequences = SequencePool.fromText(input.datasetText, input.tokenizer, record.seq_len).slice(record.start, record.count)
  const m = /^layer(\d+)\.expert(\d+)$/.exec(record.expert)
  if (m === null) return fail(null, `${record.expert} is not an expert`)

  let first: { step: number; detail: string } | null = null
  // The replay stops at the first difference (or when the caller aborts).
  const stop = new AbortController()
  const signal = input.signal === undefined ? stop.signal : AbortSignal.any([input.signal, stop.signal])
  const replay = trainExpert(model, {
    target: { layer: Number(m[1]), expert: Number(m[2]) }, sequences, steps: record.steps, batchSize: record.batch_size,
    learningRate: record.learning_rate, seed: record.seed, signal,
    onStep: (step, loss, expert) => {
      input.onStep?.(step, record.steps)
      if (first !== null) return
      const claimed = record.losses[step] as number
      const lossOk = exact ? loss === claimed : Math.abs(loss - claimed) <= LOSS_TOLERANCE * Math.abs(claimed)
      if (!lossOk) first = { step, detail: `step ${step}: the replay's loss is ${loss}, the record says ${claimed}` }
      else if (exact && expert !== undefined) {
        const h = weightsHash([expert.w1, expert.w2, expert.w3])
        if (!same(h, record.step_hashes[step] as Uint8Array)) first = { step, detail: `step ${step}: the weights hash to ${hex(h)}…, the record says ${hex(record.step_hashes[step] as Uint8Array)}…` }
      }
      if (first !== null) stop.abort()
    }
  })
  const trained = await replay.catch((e: unknown) => {
    if (first === null) throw e
    return null
  })
  if (first !== null || trained === null) return fail((first as { step: number } | null)?.step ?? null, (first as { detail: string } | null)?.detail ?? 'the replay stopped')

  // The version's own weights, as validators read them.
  const payload = await fetchUnixfsFile(input.version.header.payload, input.version.header.payload_size, input.get, input.signal === undefined ? {} : { signal: input.signal })
  const tensors = readBlockTensors(record.expert, arch, payload)
  if (exact) {
    const h = weightsHash([trained.expert.w1, trained.expert.w2, trained.expert.w3])
    if (!same(h, record.weights)) return fail(record.steps, `the trained weights hash to ${hex(h)}…, the record says ${hex(record.weights)}…`)
    const dtype = tensors.get('w1')?.header.dtype === 'int8' ? 'int8' : 'fp32'
    const replayed = (await importPayload(expertPayload(arch, trained.expert, dtype))).cid
    if (!replayed.equals(record.payload)) return fail(record.steps, `the replayed weights make payload ${replayed}, the version holds ${record.payload}`)
    return Object.freeze({ pass: true, mode, firstDifference: null, detail: `${record.steps} steps replayed bit for bit: every loss, every weight hash and the payload ${record.payload} match` })
  }
  const diff = relativeDifference(trained.expert, expertWeights(dequantizeAll(tensors)))
  if (diff > WEIGHT_TOLERANCE) return fail(record.steps, `the replayed weights differ from the version's by ${diff.toExponential(2)} (relative), more than ${WEIGHT_TOLERANCE}`)
  return Object.freeze({ pass: true, mode, firstDifference: null, detail: `${record.steps} steps replayed: losses within ${LOSS_TOLERANCE}, weights within ${diff.toExponential(2)} of the version's (relative)` })
}

/** max |a - b| over max |b|, over the three matrices. */
function relativeDifference(a: ExpertWeights, b: ExpertWeights): number {
  let diff = 0
  let scale = 0
  for (const k of ['w1', 'w2', 'w3'] as const) {
    const x = a[k]
    const y = b[k]
    for (let i = 0; i < y.length; i++) {
      diff = Math.max(diff, Math.abs((x[i] as number) - (y[i] as number)))
      scale = Math.max(scale, Math.abs(y[i] as number))
    }
  }
  return scale === 0 ? diff : diff / scale
}

/** A version that cannot be audited: not a chain B block, no training record, or a record naming data the chain lacks. */
export class AuditUnavailableError extends Error {
  override readonly name = 'AuditUnavailableError'
}

/** What a verified chain must answer for an audit: accepted blocks, and chain A's head (the tokenizer). */
export interface AuditedChain {
  get(cid: CID): AcceptedBlock | undefined
  head(chain: 'A'): AcceptedBlock | undefined
}

export interface VersionAudit extends AuditResult {
  readonly record: TrainingRecord
  readonly recordCid: CID
  /** The training pool's name (its dataset document's). */
  readonly datasetName: string
}

/**
 * Audit certified version `version` of `chain`: read the record its certificate links, the pool and
 * the tokenizer the chain names, every byte through `get` (a verifying getter), and replay.
 * `onRecord` hears what is about to be replayed before the replay starts.
 */
export async function auditCertifiedVersion(
  version: AcceptedBlock, chain: AuditedChain, get: BlockGetter,
  options: { readonly signal?: AbortSignal; readonly onStep?: (step: number, steps: number) => void; readonly onRecord?: (record: TrainingRecord, datasetName: string) => void } = {}
): Promise<VersionAudit> {
  if (version.header.chain_id !== 'B') throw new AuditUnavailableError(`${version.cid} is not a chain B block`)
  const recordCid = version.certificate?.value.record ?? null
  if (recordCid === null) throw new AuditUnavailableError(`${version.header.expert_name} has no training record (${version.certificate === null ? 'an initial version' : 'its certificate links none'}): nothing to audit`)
  const record = decodeRecord(await get(recordCid, options.signal))
  const rules = chain.head('A')
  const pool = chain.get(record.dataset)
  if (rules === undefined) throw new AuditUnavailableError('the verified chain has no chain A block')
  if (pool === undefined || pool.header.block_type !== 'dataset') throw new AuditUnavailableError(`the record's pool ${record.dataset} is not a dataset of this chain`)
  const meta = rules.document as MetaDocument
  const tokenizer = await chainTokenizer(meta, get, options.signal)
  if (tokenizer === null) throw new AuditUnavailableError('the verified chain names no tokenizer')
  const doc = pool.document as DatasetDocument
  options.onRecord?.(record, doc.name)
  const signal = options.signal === undefined ? {} : { signal: options.signal }
  const result = await auditRecord({
    record, version, architecture: meta.architecture, lookup: (c) => chain.get(c), get, tokenizer,
    datasetText: new TextDecoder().decode(await fetchUnixfsFile(doc.content, doc.content_size, get, signal)),
    ...signal, ...(options.onStep === undefined ? {} : { onStep: options.onStep })
  })
  return Object.freeze({ ...result, record, recordCid, datasetName: doc.name })
}
