/**
 * The browser miner's run, kept in IndexedDB (database `blyan-miner`) so a reload picks it up: the
 * relay and key it mines with, the job it holds, and the candidate once one is submitted.
 *
 * What a reload does follows from the record alone ({@link resumePlan}): a submitted candidate is
 * with the validators whatever happens to the page, so it is followed to its verdict, never
 * trained again (a second submission of the same job would only be refused as a copy); a job
 * without a candidate restarts (training state is not worth saving: a job is minutes of work).
 * The record exists only while a run is active: Stop and a settled run delete it.
 *
 * Read back as untrusted, like settings: a damaged record is no run (never an exception).
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { aint, aoneOf } from '../assert.ts'
import { idbKV, type KV } from './kv.ts'

/** What trains the expert: the CPU reference, or WebGPU once a trainer exists. */
export type TrainBackend = 'cpu' | 'webgpu'

export const TRAIN_BACKENDS: readonly TrainBackend[] = Object.freeze(['cpu', 'webgpu'])

const RUN = 'run'

export interface StoredMinerRun {
  /** The relay's base URL. */
  readonly relay: string
  /** The wallet's public key (hex) the run mines with: another wallet does not resume it. */
  readonly miner: string
  readonly backend: TrainBackend
  /** Take the next job when this one is decided. */
  readonly keepGoing: boolean
  /** The job leased (its id and expert), null between jobs. */
  readonly job: { readonly id: string; readonly expert: string } | null
  /** The candidate's CID once submitted. */
  readonly candidate: string | null
  readonly startedAt: number
}

/** What a reload does with the stored run. */
export type ResumePlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'follow'; readonly candidate: string; readonly run: StoredMinerRun }
  | { readonly kind: 'restart'; readonly run: StoredMinerRun }

let defaultKV: KV | undefined
function minerKV(): KV {
  defaultKV ??= idbKV('blyan-miner', 'miner')
  return defaultKV
}

const isHexKey = (v: unknown): v is string => typeof v === 'string' && /^0[23][0-9a-f]{64}$/.test(v)
/** A job id: 16 hex digits (src/pol/job.ts). */
export const isJobId = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{16}$/.test(v)
const isExpert = (v: unknown): v is string => typeof v === 'string' && /^layer\d+\.expert\d+$/.test(v)

function isRelayUrl(v: unknown): v is string {
  if (typeof v !== 'string') return false
  try {
    const u = new URL(v)
    return u.protocol === 'http:' || u.protocol === 'https:'
  } catch {
    return false
  }
}

function isCid(v: unknown): v is string {
  if (typeof v !== 'string') return false
  try {
    CID.parse(v)
    return true
  } catch {
    return false
  }
}

/** A stored run from an untrusted value, or null when it does not hold together. Never throws. */
export function minerRunFrom(raw: unknown): StoredMinerRun | null {
  if (typeof raw !== 'object' || raw === null) return null
  const r = raw as Record<string, unknown>
  if (!isRelayUrl(r['relay']) || !isHexKey(r['miner'])) return null
  const job = r['job'] as Record<string, unknown> | null | undefined
  let parsedJob: StoredMinerRun['job'] = null
  if (job !== null && job !== undefined) {
    if (typeof job !== 'object' || !isJobId(job['id']) || !isExpert(job['expert'])) return null
    parsedJob = Object.freeze({ id: job['id'], expert: job['expert'] })
  }
  const candidate = r['candidate'] ?? null
  if (candidate !== null && !isCid(candidate)) return null
  const startedAt = r['startedAt']
  return Object.freeze({
    relay: r['relay'],
    miner: r['miner'],
    backend: (TRAIN_BACKENDS as readonly unknown[]).includes(r['backend']) ? (r['backend'] as TrainBackend) : 'cpu',
    keepGoing: r['keepGoing'] === true,
    job: parsedJob,
    candidate: candidate as string | null,
    startedAt: typeof startedAt === 'number' && Number.isSafeInteger(startedAt) && startedAt >= 0 ? startedAt : 0
  })
}

export async function loadMinerRun(kv: KV = minerKV()): Promise<StoredMinerRun | null> {
  try {
    return minerRunFrom(await kv.get(RUN))
  } catch {
    return null
  }
}

/** Check and store `run` (TypeError / RangeError naming the field for a value our code should never make). */
export async function saveMinerRun(run: StoredMinerRun, kv: KV = minerKV()): Promise<void> {
  if (!isRelayUrl(run.relay)) throw new TypeError(`relay: expected an http(s) URL, got ${JSON.stringify(run.relay)}`)
  if (!isHexKey(run.miner)) throw new TypeError(`miner: expected a compressed public key in hex, got ${JSON.stringify(run.miner)}`)
  aoneOf(run.backend, TRAIN_BACKENDS, 'backend')
  if (typeof run.keepGoing !== 'boolean') throw new TypeError('keepGoing: expected boolean')
  if (run.job !== null && (!isJobId(run.job.id) || !isExpert(run.job.expert))) throw new TypeError(`job: expected { id: 16 hex digits, expert: layerN.expertM }, got ${JSON.stringify(run.job)}`)
  if (run.candidate !== null && !isCid(run.candidate)) throw new TypeError(`candidate: expected a CID or null, got ${JSON.stringify(run.candidate)}`)
  aint(run.startedAt, 'startedAt')
  await kv.setMany([[RUN, { relay: run.relay, miner: run.miner, backend: run.backend, keepGoing: run.keepGoing, job: run.job === null ? null : { ...run.job }, candidate: run.candidate, startedAt: run.startedAt }]])
}

export async function clearMinerRun(kv: KV = minerKV()): Promise<void> {
  await kv.delMany([RUN])
}

/**
 * What to do with a stored run for the wallet `miner` (hex public key, null without a wallet):
 * nothing when there is no run or it belongs to another key; follow its candidate when one was
 * submitted; else restart its job.
 */
export function resumePlan(run: StoredMinerRun | null, miner: string | null): ResumePlan {
  if (run === null || miner === null || run.miner !== miner) return { kind: 'none' }
  if (run.candidate !== null) return { kind: 'follow', candidate: run.candidate, run }
  return { kind: 'restart', run }
}

/** Jobs whose attempt counts a key keeps (the newest); a job's id names its base, so old ones go stale. */
export const MAX_TRIED_JOBS = 512
const ATTEMPTS = 'attempts:'

/**
 * How many attempts `miner` (hex public key) made at each job (job id -> count), so its next
 * attempt trains other windows with another seed (src/pol/job.ts attemptTerms) and the least
 * tried jobs come first; empty when none or unreadable.
 */
export async function loadAttempts(miner: string, kv: KV = minerKV()): Promise<Map<string, number>> {
  try {
    const v = await kv.get(ATTEMPTS + miner)
    if (!Array.isArray(v)) return new Map()
    return new Map(v.filter((e): e is [string, number] => Array.isArray(e) && isJobId(e[0]) && Number.isSafeInteger(e[1]) && e[1] > 0))
  } catch {
    return new Map()
  }
}

/** Count one more attempt of `miner` at job `id`; the count it has now. */
export async function recordAttempt(miner: string, id: string, kv: KV = minerKV()): Promise<number> {
  if (!isJobId(id)) throw new TypeError(`id: expected 16 hex digits, got ${JSON.stringify(id)}`)
  const attempts = await loadAttempts(miner, kv)
  const n = (attempts.get(id) ?? 0) + 1
  attempts.delete(id)
  attempts.set(id, n)
  await kv.setMany([[ATTEMPTS + miner, [...attempts].slice(-MAX_TRIED_JOBS)]])
  return n
}
