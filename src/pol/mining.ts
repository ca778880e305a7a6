/**
 * A miner's round, as the browser's miner worker and `blyan mine` run it against a relay:
 *
 * 1. bring the miner's own verified chain up to date (src/pol/chain.ts: the header sync the chat
 *    runs), then take a job from the job board and lease it (signed with the miner's key); a job is
 *    refused unless the version it supersedes is the current one on that chain (E_STALE_BASE) and
 *    its training data is a dataset of that chain (E_DATASET);
 * 2. load the model that chain names (every byte checked against its CID) and the job's training
 *    windows;
 * 3. train the job's expert (the CPU reference, or another trainer such as WebGPU's);
 * 4. check the gain itself on a sample of the public validation pool, after re-quantizing as the
 *    block will be, with a margin (2 x delta): no point submitting what validators will refuse;
 * 5. build the candidate on the verified chain A head, sign it, solve its PoW, submit it, and
 *    follow it until the validators decide (syncing and rebuilding once if the head moved meanwhile).
 *
 * Isomorphic: `fetch` and the trainer are injected; nothing here touches Node or the DOM.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { toHex } from '../codec/cbor.ts'
import { routerName } from '../chain/header.ts'
import type { MetaDocument } from '../chain/meta.ts'
import { publicKeyOf, type SecretKey } from '../chain/keys.ts'
import { meetsThreshold } from '../chain/pol.ts'
import { reject } from '../errors.ts'
import type { ExpertRef } from '../model/forward.ts'
import type { ChainModel } from '../model/source.ts'
import { evaluatePair, trainExpert, type FloatModel, type TrainOptions, type TrainResult } from '../train/train.ts'
import { dequantizeAll, expertWeights, readBlockTensors } from '../model/weights.ts'
import type { CandidateInfo } from '../net/relay-api.ts'
import { createRelayClient, RelayError, type RelayClient } from '../net/relay-client.ts'
import { fetchUnixfsFile } from '../tensor/tiles.ts'
import { encodeRecord, type TrainingBackend } from '../chain/record.ts'
import { TrainingRecorder } from './recorder.ts'
import { buildCandidate, expertPayload } from './candidate.ts'
import { MinerChain } from './chain.ts'
import { attemptTerms, requestTime, signLeaseRequest, type Job } from './job.ts'
import { loadFloatModel, withExpert } from './float-model.ts'
import { SequencePool } from './sequences.ts'
import { sleep } from '../time.ts'

/** The self-check asks for this many times delta before submitting. */
export const SELF_CHECK_MARGIN = 2

/**
 * A relative loss change as every view writes it (page, CLI, docs): the sign is the loss's, so a
 * lower loss (an improvement) is `−0.46%` and a higher one `+1.2%`; `improvement` is
 * (before − after) / before.
 */
export function formatLossChange(improvement: number | null): string {
  if (improvement === null || !Number.isFinite(improvement)) return '–'
  const pct = improvement * 100
  const digits = Math.abs(pct) < 1 ? 2 : 1
  return `${pct > 0 ? '−' : pct < 0 ? '+' : ''}${Math.abs(pct).toFixed(digits)}%`
}

/** A share as a percentage, three significant digits at most: `0.3%`, `0.6%`, `1.25%`. */
function percent(share: number): string {
  return `${Number((share * 100).toPrecision(3))}%`
}

/** True when a self-check's improvement is enough to submit: SELF_CHECK_MARGIN × delta. */
export function selfCheckPasses(improvement: number | null, delta: number): boolean {
  return improvement !== null && improvement >= SELF_CHECK_MARGIN * delta
}

/**
 * The two thresholds in one sentence, the same on the page, in `blyan mine` and in the docs:
 * `submitted when the self-check lowers the loss by 0.6% or more (validators accept −0.3%, on other windows)`.
 */
export function submitRule(delta: number): string {
  return `a candidate is submitted when the self-check lowers the validation loss by ${percent(SELF_CHECK_MARGIN * delta)} or more (${SELF_CHECK_MARGIN} × the ${percent(delta)} validators accept, because they judge it on other windows)`
}

/** What a self-check found, against the rule: `loss −0.46%: under the −0.6% needed to submit`. */
export function selfCheckVerdict(improvement: number | null, delta: number): string {
  const needed = `−${percent(SELF_CHECK_MARGIN * delta)}`
  return selfCheckPasses(improvement, delta) ? `loss ${formatLossChange(improvement)}: meets the ${needed} needed to submit` : `loss ${formatLossChange(improvement)}: short of the ${needed} needed to submit`
}

/** Trains the target expert (trainExpert's contract): the CPU reference by default. */
export type Trainer = (model: FloatModel, options: TrainOptions) => Promise<TrainResult>

export type MinerEvent =
  | { readonly type: 'job'; readonly job: Job }
  | { readonly type: 'fetch'; readonly what: string }
  | { readonly type: 'step'; readonly step: number; readonly steps: number; readonly loss: number; readonly tokensPerSecond: number }
  | { readonly type: 'self-check'; readonly lossBefore: number; readonly lossAfter: number; readonly windows: number }
  | { readonly type: 'submitted'; readonly cid: string }
  | { readonly type: 'outcome'; readonly outcome: CandidateInfo }

export interface MineOptions {
  /** The relay's base URL. */
  readonly relay: string
  readonly key: SecretKey
  readonly fetch?: typeof fetch
  /**
   * The miner's verified chain, kept between jobs so each sync takes only new headers; one is made
   * (and synced from `relay`, trusting the genesis it serves first) when absent.
   */
  readonly chain?: MinerChain
  readonly train?: Trainer
  /** What `train` runs on, for the training record. @default 'cpu' without `train`, else 'webgpu' */
  readonly backend?: TrainingBackend
  /** Windows of the validation pool the self-check uses (0: skip it). @default 32 */
  readonly selfCheckWindows?: number
  /** How long to wait for the validators' decision. @default 10 minutes */
  readonly decisionTimeoutMs?: number
  readonly pollMs?: number
  readonly signal?: AbortSignal
  readonly onEvent?: (event: MinerEvent) => void
  /**
   * Attempts this key already made at each job (job id -> count), kept by the caller: a job is
   * taken again, as its next attempt (other windows, another seed), only after every job with fewer.
   */
  readonly attempts?: ReadonlyMap<string, number>
  /** A job to take first when this key may (the one a reloaded page restarts). */
  readonly prefer?: string
}

export interface MineResult {
  readonly job: Job
  /** null when the self-check found no gain worth submitting. */
  readonly outcome: CandidateInfo | null
  readonly losses: Float64Array
  readonly selfCheck: { readonly lossBefore: number; readonly lossAfter: number } | null
  /** The attempt this was (its windows and seed: src/pol/job.ts attemptTerms); the caller counts it. */
  readonly attempt: number
  /** The rules' PoL delta the self-check was held to (SELF_CHECK_MARGIN × delta). */
  readonly delta: number
}

/** No job is free (all leased, or the node has none). */
export class NoJobError extends Error {
  override readonly name = 'NoJobError'
  readonly code = 'NO_JOB'
}

/**
 * The order a miner tries the board's jobs in: `prefer` first, then jobs already leased to this key
 * (a newbie holds one lease at a time, so asking for another first would be refused), then those
 * with the fewest miners on them (newbie leases are shared: donors spread over the board rather
 * than pile onto one job), in the board's order otherwise.
 */
export function jobOrder(jobs: readonly Job[], miner: string, prefer?: string, attempts: ReadonlyMap<string, number> = new Map()): Job[] {
  const mine = (j: Job): boolean => j.lease?.miner === miner || (j.sharedBy ?? []).some((l) => l.miner === miner)
  const rank = (j: Job): number => (j.id === prefer ? -2 : mine(j) ? -1 : (j.sharedBy ?? []).length)
  // Fewest attempts by this key first: donors spread over experts before any expert is tried again.
  const tried = (j: Job): number => (j.id === prefer ? -1 : attempts.get(j.id) ?? 0)
  return jobs.map((job, i) => ({ job, i, rank: rank(job), tried: tried(job) })).sort((x, y) => x.tried - y.tried || x.rank - y.rank || x.i - y.i).map((x) => x.job)
}

export interface LeaseOptions {
  readonly fetch?: typeof fetch
  readonly signal?: AbortSignal
  readonly now?: () => number
  /** Attempts this key made at each job: the least tried come first (see jobOrder). */
  readonly attempts?: ReadonlyMap<string, number>
  readonly prefer?: string
}

const relayOf = (relay: string | RelayClient, fetchImpl: typeof fetch | undefined): RelayClient =>
  typeof relay === 'string' ? createRelayClient(relay, fetchImpl) : relay

/**
 * This key's attempts at each job: the caller's count, or the candidates the relay has from this
 * key on the job's base when it knows more (a lost count must not repeat a judged attempt: the same
 * windows train the same weights, and the node refuses a payload it has judged, E_COPY).
 */
export function attemptsAt(jobs: readonly Job[], known: ReadonlyMap<string, number>, candidates: readonly CandidateInfo[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const job of jobs) {
    const submitted = candidates.filter((c) => c.base === job.base).length
    const n = Math.max(known.get(job.id) ?? 0, submitted)
    if (n > 0) out.set(job.id, n)
  }
  return out
}

/**
 * Lease the first job of `jobOrder` this key may have (jobs a trusted key holds are passed over);
 * with how many attempts this key made at it before (the next attempt's number).
 */
export async function leaseJob(relay: string | RelayClient, key: SecretKey, options: LeaseOptions = {}): Promise<Job & { readonly attempt: number }> {
  const r = relayOf(relay, options.fetch)
  const { signal } = options
  const miner = toHex(publicKeyOf(key))
  const jobs = await r.jobs(signal)
  const history = await r.miner(miner, signal).catch(() => ({ candidates: [] as CandidateInfo[] }))
  const attempts = attemptsAt(jobs, options.attempts ?? new Map(), history.candidates)
  const now = options.now ?? Date.now
  for (const job of jobOrder(jobs, miner, options.prefer, attempts)) {
    if (job.lease !== null && job.lease.miner !== miner) continue
    try {
      await r.lease(job.id, signLeaseRequest(job.id, key, 'lease', requestTime(now())), signal)
      return { ...job, attempt: attempts.get(job.id) ?? 0 }
    } catch (e) {
      if (e instanceof RelayError && e.code === 'LEASED') continue
      throw e
    }
  }
  throw new NoJobError(jobs.length === 0 ? 'the node offers no job' : `no free job: ${jobs.length} jobs, each leased to a trusted miner`)
}

/** Give a lease back (a job this key will not finish), so others, and this key's next lease, can have it. */
export async function releaseJob(relay: string | RelayClient, key: SecretKey, job: string, options: { fetch?: typeof fetch; now?: () => number } = {}): Promise<void> {
  await relayOf(relay, options.fetch).release(job, signLeaseRequest(job, key, 'release', requestTime((options.now ?? Date.now)())))
}

/** One job, start to finish. */
export async function mineOnce(options: MineOptions): Promise<MineResult> {
  const { signal } = options
  const emit = options.onEvent ?? (() => undefined)
  const chain = options.chain ?? new MinerChain(createRelayClient(options.relay, options.fetch))
  const relay = chain.relay

  emit({ type: 'fetch', what: 'chain' })
  await chain.sync(signal)
  const job = await leaseJob(relay, options.key, {
    ...(signal === undefined ? {} : { signal }), ...(options.attempts === undefined ? {} : { attempts: options.attempts }), ...(options.prefer === undefined ? {} : { prefer: options.prefer })
  })
  emit({ type: 'job', job })
  try {
    return await work(options, chain, job, emit)
  } finally {
    // Done with the job whatever happened: the lease goes back (best effort; it expires anyway).
    await releaseJob(relay, options.key, job.id).catch(() => undefined)
  }
}

/**
 * The job's base as this miner's verified chain has it: its current version, or E_STALE_BASE (the
 * job is stale, or the relay names a version the chain never certified).
 */
function verifiedBase(chain: MinerChain, job: Job): { readonly cid: CID; readonly index: number } {
  const current = chain.current(job.expert)
  if (current === undefined || current.cid.toString() !== job.base) {
    reject('E_STALE_BASE', 'supersedes', `the job supersedes ${job.expert} at ${job.base}, but its current version in the verified chain is ${current === undefined ? 'none' : `v${current.expertVersion} ${current.cid}`}: take another job`)
  }
  return { cid: current.cid, index: current.header.index }
}

async function work(options: MineOptions, chain: MinerChain, job: Job & { readonly attempt: number }, emit: (event: MinerEvent) => void): Promise<MineResult> {
  const { signal } = options
  verifiedBase(chain, job)
  const trainSet = chain.dataset(CID.parse(job.shard.dataset)).block.cid
  // This attempt's windows and seed: the base, this key and the attempt number give them.
  const { attempt } = job
  const { start, seed } = attemptTerms(CID.parse(job.base), toHex(publicKeyOf(options.key)), attempt)

  emit({ type: 'fetch', what: 'model' })
  const model: ChainModel = chain.model()
  const arch = model.architecture
  const floats = await loadFloatModel(arch, model.blocks, chain.getter('model', signal), signal)
  const tokenizer = await chain.tokenizer(model, signal)

  emit({ type: 'fetch', what: 'training data' })
  const train = SequencePool.fromText(await chain.datasetText(trainSet, signal), tokenizer, job.seqLen)
  const target: ExpertRef = { layer: job.layer, expert: job.expertIndex }
  const tokensPerStep = job.batchSize * job.seqLen
  let last = performance.now()
  const trainer = options.train ?? trainExpert
  // What it learned from, and how (src/chain/record.ts): the validators check it, anyone can replay it.
  const recorder = new TrainingRecorder({
    expert: job.expert, base: CID.parse(job.base), model: Object.fromEntries([...model.blocks].map(([name, ref]) => [name, ref.cid])), dataset: trainSet,
    start, count: job.shard.count, seq_len: job.seqLen, seed, attempt, steps: job.steps, batch_size: job.batchSize, learning_rate: job.learningRate
  }, options.backend ?? (options.train === undefined ? 'cpu' : 'webgpu'))
  const trained = await trainer(floats, {
    target, sequences: train.slice(start, job.shard.count), steps: job.steps, batchSize: job.batchSize,
    learningRate: job.learningRate, seed, ...(signal === undefined ? {} : { signal }),
    onStep: (step, loss, expert) => {
      recorder.step(expert)
      const now = performance.now()
      emit({ type: 'step', step, steps: job.steps, loss, tokensPerSecond: (tokensPerStep * 1000) / Math.max(now - last, 1e-3) })
      last = now
    }
  })

  // What validators will see: the weights after int8 re-quantization.
  const dtype = await matrixDtype(chain, model, job.expert, signal)
  const payloadWeights = expertWeights(dequantizeAll(readBlockTensors(job.expert, arch, expertPayload(arch, trained.expert, dtype))))
  let selfCheck: MineResult['selfCheck'] = null
  const windows = options.selfCheckWindows ?? 32
  if (windows > 0) {
    emit({ type: 'fetch', what: 'validation pool' })
    const pool = SequencePool.fromText(await chain.datasetText(chain.validationPool(), signal), tokenizer, model.meta.pol.seq_len)
    const sample = pool.slice(seed % pool.size, Math.min(windows, pool.size))
    const { lossBefore, lossAfter } = await evaluatePair(floats, withExpert(floats, target, payloadWeights), target.layer, sample, signal === undefined ? {} : { signal })
    selfCheck = { lossBefore, lossAfter }
    emit({ type: 'self-check', lossBefore, lossAfter, windows: sample.length })
    // A margin over delta: the validators' slice is other windows, and a gain just above delta on
    // this sample is as likely to fall below it there.
    if (!meetsThreshold(lossBefore, lossAfter, SELF_CHECK_MARGIN * model.meta.pol.delta)) return { job, outcome: null, losses: trained.losses, selfCheck, attempt, delta: model.meta.pol.delta }
  }

  let cid: string | null = null
  for (let attempt = 0; cid === null; attempt++) {
    // The verified chain's rules, base and router: after a re-sync they may have moved on.
    const rules = chain.chain.head('A')
    const router = chain.current(routerName(job.layer))
    if (rules === undefined || router === undefined) return reject('E_UNKNOWN_DEP', 'rules', 'the verified chain lost its chain A head or the router')
    const record = (payload: CID): Uint8Array[] => [encodeRecord(recorder.record(trained, payload))]
    const candidate = await buildCandidate({
      documents: record,
      architecture: arch, layer: job.layer, expert: job.expertIndex, weights: trained.expert, dtype, rules: rules.cid,
      base: verifiedBase(chain, job), router: { cid: router.cid, index: router.header.index },
      difficulty: (rules.document as MetaDocument).pow.B, timestamp: Date.now(), key: options.key, ...(signal === undefined ? {} : { mine: { signal } })
    })
    try {
      await chain.relay.submit(candidate.car, signal)
      cid = candidate.sealed.cid.toString()
    } catch (e) {
      // The chain A head moved between syncing and submitting (a validation round): sync and rebuild once.
      if (e instanceof RelayError && e.code === 'E_STALE_RULES' && attempt === 0) {
        await chain.sync(signal)
        continue
      }
      throw e
    }
  }
  emit({ type: 'submitted', cid })

  const deadline = Date.now() + (options.decisionTimeoutMs ?? 10 * 60 * 1000)
  for (;;) {
    const candidate = await chain.relay.candidate(cid, signal)
    if (candidate.status !== 'pending' || Date.now() > deadline) {
      emit({ type: 'outcome', outcome: candidate })
      return { job, outcome: candidate, losses: trained.losses, selfCheck, attempt, delta: model.meta.pol.delta }
    }
    await sleep(options.pollMs ?? 1000, signal)
  }
}

/** int8 when the base version's matrices are int8 (how this network stores them), else fp32. */
async function matrixDtype(chain: MinerChain, model: ChainModel, name: string, signal: AbortSignal | undefined): Promise<'int8' | 'fp32'> {
  const ref = model.blocks.get(name)
  if (ref === undefined) throw new Error(`the model has no ${name}`)
  const payload = await fetchUnixfsFile(ref.payload, ref.payloadSize, chain.getter(name, signal))
  return readBlockTensors(name, model.architecture, payload).get('w1')?.header.dtype === 'int8' ? 'int8' : 'fp32'
}
