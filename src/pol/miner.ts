/**
 * A miner's round, as the browser's miner worker and `blyan mine` run it against a relay:
 *
 * 1. take a job from the job board and lease it (signed with the miner's key);
 * 2. fetch the model (the param index's blocks, every byte checked against its CID) and the job's
 *    training windows from its chain D dataset;
 * 3. train the job's expert (the CPU reference, or another trainer such as WebGPU's);
 * 4. check the gain itself on a sample of the public validation pool, after re-quantizing as the
 *    block will be, with a margin (2 x delta): no point submitting what validators will refuse;
 * 5. build the candidate on the chain A head, sign it, solve its PoW, submit it, and follow it until
 *    the validators decide (rebuilding once if the head moved meanwhile).
 *
 * Isomorphic: `fetch` and the trainer are injected; nothing here touches Node or the DOM.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { cidMatches, toHex } from '../codec/cbor.ts'
import type { DatasetDocument } from '../chain/dataset.ts'
import { decodeDataset } from '../chain/dataset.ts'
import { decodeHeader } from '../chain/header.ts'
import { publicKeyOf, type SecretKey } from '../chain/keys.ts'
import { meetsThreshold } from '../chain/pol.ts'
import { reject } from '../errors.ts'
import type { ExpertRef } from '../model/forward.ts'
import { createTokenizer } from '../model/tokenizer/index.ts'
import { evaluatePair, trainExpert, type FloatModel, type TrainOptions, type TrainResult } from '../model/train.ts'
import { dequantizeAll, expertWeights, readBlockTensors } from '../model/weights.ts'
import { fetchRelayModel, type RelayModel } from '../net/model.ts'
import { fetchUnixfsFile } from '../tensor/tiles.ts'
import { buildCandidate, expertPayload } from './candidate.ts'
import { requestTime, signLeaseRequest, type Job } from './job.ts'
import { loadFloatModel, withExpert } from './model.ts'
import { SequencePool } from './sequences.ts'

/** The self-check asks for this many times delta before submitting. */
export const SELF_CHECK_MARGIN = 2

/** Trains the target expert (trainExpert's contract): the CPU reference by default. */
export type Trainer = (model: FloatModel, options: TrainOptions) => Promise<TrainResult>

/** What a candidate became, as GET /api/candidates/<cid> says. */
export interface CandidateOutcome {
  readonly cid: string
  readonly status: 'pending' | 'accepted' | 'rejected'
  readonly code: string | null
  readonly message: string | null
  readonly loss_before: number | null
  readonly loss_after: number | null
  readonly amount: number | null
  readonly reward: string | null
  /** Whether the reward block is final (under a validator checkpoint); null without one. */
  readonly reward_final?: boolean | null
  readonly certificate: string | null
}

export type MinerEvent =
  | { readonly type: 'job'; readonly job: Job }
  | { readonly type: 'fetch'; readonly what: string }
  | { readonly type: 'step'; readonly step: number; readonly steps: number; readonly loss: number; readonly tokensPerSecond: number }
  | { readonly type: 'self-check'; readonly lossBefore: number; readonly lossAfter: number; readonly windows: number }
  | { readonly type: 'submitted'; readonly cid: string }
  | { readonly type: 'outcome'; readonly outcome: CandidateOutcome }

export interface MineOptions {
  /** The relay's base URL. */
  readonly relay: string
  readonly key: SecretKey
  readonly fetch?: typeof fetch
  readonly train?: Trainer
  /** Windows of the validation pool the self-check uses (0: skip it). @default 32 */
  readonly selfCheckWindows?: number
  /** How long to wait for the validators' decision. @default 10 minutes */
  readonly decisionTimeoutMs?: number
  readonly pollMs?: number
  readonly signal?: AbortSignal
  readonly onEvent?: (event: MinerEvent) => void
  /** Job ids not to take (this miner gave up on them in this session). */
  readonly skip?: ReadonlySet<string>
}

export interface MineResult {
  readonly job: Job
  /** null when the self-check found no gain worth submitting. */
  readonly outcome: CandidateOutcome | null
  readonly losses: Float64Array
  readonly selfCheck: { readonly lossBefore: number; readonly lossAfter: number } | null
}

/** The relay refused a request; `code` is the API's error code (E_QUOTA, LEASED, E_STALE_RULES, ...). */
export class MinerError extends Error {
  override readonly name = 'MinerError'
  readonly code: string
  readonly status: number
  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

/** No job is free (all leased, or the node has none). */
export class NoJobError extends Error {
  override readonly name = 'NoJobError'
}

interface Api {
  json<T>(path: string, init?: RequestInit): Promise<T>
  block(cid: CID): Promise<Uint8Array>
}

function api(relay: string, fetchImpl: typeof fetch, signal: AbortSignal | undefined): Api {
  const base = relay.replace(/\/+$/, '')
  return {
    async json<T>(path: string, init: RequestInit = {}): Promise<T> {
      const res = await fetchImpl(`${base}${path}`, signal === undefined ? init : { ...init, signal })
      const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } }
      if (!res.ok) throw new MinerError(res.status, body.error?.code ?? `HTTP_${res.status}`, `${path}: ${body.error?.message ?? `HTTP ${res.status}`}`)
      return body as T
    },
    async block(cid: CID): Promise<Uint8Array> {
      const res = await fetchImpl(`${base}/ipfs/${cid}?format=raw`, { headers: { Accept: 'application/vnd.ipld.raw' }, ...(signal === undefined ? {} : { signal }) })
      if (!res.ok) throw new MinerError(res.status, `HTTP_${res.status}`, `block ${cid}: HTTP ${res.status}`)
      const bytes = new Uint8Array(await res.arrayBuffer())
      if (!cidMatches(cid, bytes)) reject('E_CID', 'block', `${base} served bytes for ${cid} that do not hash to it`)
      return bytes
    }
  }
}

/**
 * Lease a job: one already leased to this key first, then the free jobs with the fewest miners on
 * them (newbie leases are shared: donors spread over the board rather than pile onto one job), in
 * the board's order otherwise. Skips jobs a trusted key holds, and jobs whose base this key already
 * had a candidate rejected on: the same job trains the same weights again, and the node refuses a
 * payload it has judged (E_COPY).
 */
export async function leaseJob(relay: string, key: SecretKey, options: { fetch?: typeof fetch; signal?: AbortSignal; now?: () => number; skip?: ReadonlySet<string> } = {}): Promise<Job> {
  const a = api(relay, options.fetch ?? globalThis.fetch.bind(globalThis), options.signal)
  const miner = toHex(publicKeyOf(key))
  const { jobs } = await a.json<{ jobs: Job[] }>('/api/jobs')
  const history = await a.json<{ candidates: { base: string; status: string }[] }>(`/api/miners/${miner}`).catch(() => ({ candidates: [] }))
  const failed = new Set(history.candidates.filter((c) => c.status === 'rejected').map((c) => c.base))
  const now = options.now ?? Date.now
  const mine = (j: Job): boolean => j.lease?.miner === miner || (j.sharedBy ?? []).some((l) => l.miner === miner)
  const order = jobs
    .map((job, i) => ({ job, i, rank: mine(job) ? -1 : (job.sharedBy ?? []).length }))
    .sort((x, y) => x.rank - y.rank || x.i - y.i)
    .map((x) => x.job)
  for (const job of order) {
    if (job.lease !== null && job.lease.miner !== miner) continue
    if (failed.has(job.base) || options.skip?.has(job.id) === true) continue
    try {
      await a.json('/api/jobs/' + job.id + '/lease', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(signLeaseRequest(job.id, key, 'lease', requestTime(now())))
      })
      return job
    } catch (e) {
      if (e instanceof MinerError && e.code === 'LEASED') continue
      throw e
    }
  }
  throw new NoJobError(jobs.length === 0 ? 'the node offers no job' : `no free job: ${jobs.length} jobs, each leased to a trusted miner or already tried by this key on the same version`)
}

/** Give a lease back (a job this key will not finish), so others, and this key's next lease, can have it. */
export async function releaseJob(relay: string, key: SecretKey, job: string, options: { fetch?: typeof fetch; now?: () => number } = {}): Promise<void> {
  const a = api(relay, options.fetch ?? globalThis.fetch.bind(globalThis), undefined)
  await a.json(`/api/jobs/${job}/lease`, {
    method: 'DELETE',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(signLeaseRequest(job, key, 'release', requestTime((options.now ?? Date.now)())))
  })
}

/** One job, start to finish. */
export async function mineOnce(options: MineOptions): Promise<MineResult> {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis)
  const { signal } = options
  const emit = options.onEvent ?? (() => undefined)
  const a = api(options.relay, fetchImpl, signal)

  const job = await leaseJob(options.relay, options.key, { fetch: fetchImpl, ...(signal === undefined ? {} : { signal }), ...(options.skip === undefined ? {} : { skip: options.skip }) })
  emit({ type: 'job', job })
  try {
    return await work(options, a, job, fetchImpl, emit)
  } finally {
    // Done with the job whatever happened: the lease goes back (best effort; it expires anyway).
    await releaseJob(options.relay, options.key, job.id, { fetch: fetchImpl }).catch(() => undefined)
  }
}

async function work(options: MineOptions, a: Api, job: Job, fetchImpl: typeof fetch, emit: (event: MinerEvent) => void): Promise<MineResult> {
  const { signal } = options

  emit({ type: 'fetch', what: 'model' })
  const relayModel = await fetchRelayModel(options.relay, (cid) => a.block(cid), fetchImpl)
  if (relayModel.blocks.get(job.expert)?.cid.toString() !== job.base) {
    throw new MinerError(409, 'E_STALE_BASE', `${job.expert} moved on since the job was listed: take another job`)
  }
  const arch = relayModel.architecture
  const model = await loadFloatModel(arch, relayModel.blocks, (cid) => a.block(cid), signal)
  const tokenizer = tokenizerOf(relayModel)

  emit({ type: 'fetch', what: 'training data' })
  const train = SequencePool.fromText(await datasetText(a, CID.parse(job.shard.dataset)), tokenizer, job.seqLen)
  const target: ExpertRef = { layer: job.layer, expert: job.expertIndex }
  const tokensPerStep = job.batchSize * job.seqLen
  let last = performance.now()
  const trainer = options.train ?? trainExpert
  const trained = await trainer(model, {
    target, sequences: train.slice(job.shard.start, job.shard.count), steps: job.steps, batchSize: job.batchSize,
    learningRate: job.learningRate, seed: job.seed, ...(signal === undefined ? {} : { signal }),
    onStep: (step, loss) => {
      const now = performance.now()
      emit({ type: 'step', step, steps: job.steps, loss, tokensPerSecond: (tokensPerStep * 1000) / Math.max(now - last, 1e-3) })
      last = now
    }
  })

  // What validators will see: the weights after int8 re-quantization.
  const dtype = await matrixDtype(a, relayModel, job.expert)
  const payloadWeights = expertWeights(dequantizeAll(readBlockTensors(job.expert, arch, expertPayload(arch, trained.expert, dtype))))
  let selfCheck: MineResult['selfCheck'] = null
  const windows = options.selfCheckWindows ?? 32
  if (windows > 0) {
    emit({ type: 'fetch', what: 'validation pool' })
    const pool = SequencePool.fromText(await datasetText(a, await validationPool(a)), tokenizer, relayModel.meta.pol.seq_len)
    const sample = pool.slice(job.seed % pool.size, Math.min(windows, pool.size))
    const { lossBefore, lossAfter } = await evaluatePair(model, withExpert(model, target, payloadWeights), target.layer, sample, signal === undefined ? {} : { signal })
    selfCheck = { lossBefore, lossAfter }
    emit({ type: 'self-check', lossBefore, lossAfter, windows: sample.length })
    // A margin over delta: the validators' slice is other windows, and a gain just above delta on
    // this sample is as likely to fall below it there.
    if (!meetsThreshold(lossBefore, lossAfter, SELF_CHECK_MARGIN * relayModel.meta.pol.delta)) return { job, outcome: null, losses: trained.losses, selfCheck }
  }

  let cid: string | null = null
  for (let attempt = 0; cid === null; attempt++) {
    const status = await a.json<{ heads: { A: { cid: string } | null } }>('/api/status')
    const rules = CID.parse(status.heads.A?.cid ?? '')
    const base = CID.parse(job.base)
    const router = relayModel.blocks.get(`layer${job.layer}.router`)?.cid as CID
    const candidate = await buildCandidate({
      architecture: arch, layer: job.layer, expert: job.expertIndex, weights: trained.expert, dtype, rules,
      base: { cid: base, index: decodeHeader(await a.block(base)).index }, router: { cid: router, index: decodeHeader(await a.block(router)).index },
      difficulty: relayModel.meta.pow.B, timestamp: Date.now(), key: options.key, ...(signal === undefined ? {} : { mine: { signal } })
    })
    try {
      await a.json('/api/blocks', { method: 'POST', headers: { 'Content-Type': 'application/vnd.ipld.car' }, body: candidate.car as Uint8Array<ArrayBuffer> })
      cid = candidate.sealed.cid.toString()
    } catch (e) {
      // The chain A head moved between reading it and submitting (a validation round): rebuild once.
      if (e instanceof MinerError && e.code === 'E_STALE_RULES' && attempt === 0) continue
      throw e
    }
  }
  emit({ type: 'submitted', cid })

  const deadline = Date.now() + (options.decisionTimeoutMs ?? 10 * 60 * 1000)
  for (;;) {
    const { candidate } = await a.json<{ candidate: CandidateOutcome }>(`/api/candidates/${cid}`)
    if (candidate.status !== 'pending' || Date.now() > deadline) {
      emit({ type: 'outcome', outcome: candidate })
      return { job, outcome: candidate, losses: trained.losses, selfCheck }
    }
    await sleep(options.pollMs ?? 1000, signal)
  }
}

function tokenizerOf(m: RelayModel): ReturnType<typeof createTokenizer> {
  const t = m.meta.tokenizer
  if (t === null || m.tokenizer === null) throw new Error('chain A links no tokenizer: there is no text to train on')
  return createTokenizer(t.format, m.tokenizer, m.architecture.vocab_size, t.bos_id, t.eos_id)
}

/** The text of a chain D dataset block, every block of it checked. */
async function datasetText(a: Api, dataset: CID): Promise<string> {
  const header = decodeHeader(await a.block(dataset))
  if (header.chain_id !== 'D') reject('E_DATASET', 'dataset', `${dataset} is not a chain D block`)
  const doc: DatasetDocument = decodeDataset(await a.block(header.payload))
  return new TextDecoder().decode(await fetchUnixfsFile(doc.content, doc.content_size, (cid) => a.block(cid)))
}

/** The newest validation dataset of chain D, walking back from its head. */
async function validationPool(a: Api): Promise<CID> {
  const status = await a.json<{ heads: { D: { cid: string } | null } }>('/api/status')
  let at = status.heads.D === null ? null : CID.parse(status.heads.D.cid)
  while (at !== null) {
    const header = decodeHeader(await a.block(at))
    if (decodeDataset(await a.block(header.payload)).split === 'validation') return at
    at = header.prev
  }
  throw new Error('chain D has no validation dataset')
}

/** int8 when the base version's matrices are int8 (how this network stores them), else fp32. */
async function matrixDtype(a: Api, m: RelayModel, name: string): Promise<'int8' | 'fp32'> {
  const ref = m.blocks.get(name)
  if (ref === undefined) throw new Error(`the model has no ${name}`)
  const payload = await fetchUnixfsFile(ref.payload, ref.payloadSize, (cid) => a.block(cid))
  return readBlockTensors(name, m.architecture, payload).get('w1')?.header.dtype === 'int8' ? 'int8' : 'fp32'
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, rejectPromise) => {
    const t = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => {
      clearTimeout(t)
      rejectPromise(signal.reason)
    }, { once: true })
  })
}
