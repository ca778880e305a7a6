/**
 * The relay API's answers as typed values (docs/api.md), read field by field from untrusted JSON:
 * a field of the wrong type reads as null, an answer without what identifies it (a candidate's CID
 * and status, a rejection's code and time) reads as nothing. These are a relay's *reports* (a
 * balance, a verdict, a job board): what a page trusts comes from its own verified chain instead.
 * The one client that asks for them is relay-client.ts.
 *
 * @module
 */
import { RULES } from '../errors.ts'

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)

/** A mining job as the job board serves it (`GET /api/jobs`; relay/pol/jobs.ts derives them from chain state). */
export interface Job {
  /** 16 hex digits: sha256(base CID bytes), first 8 bytes. */
  readonly id: string
  readonly expert: string
  readonly layer: number
  readonly expertIndex: number
  /** The current version to supersede (CID), and its version number. */
  readonly base: string
  readonly baseVersion: number
  /**
   * The chain D `train` dataset to train on, and how many of its windows (src/pol/sequences.ts) an
   * attempt takes; where they start, and the seed, are each attempt's own (src/pol/job.ts attemptTerms).
   */
  readonly shard: { readonly dataset: string; readonly count: number }
  readonly seqLen: number
  readonly steps: number
  readonly batchSize: number
  readonly learningRate: number
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

/** The JSON body of a lease or release request (POST|DELETE /api/jobs/<job>/lease): src/pol/job.ts signs one. */
export interface LeaseRequest {
  /** The miner's compressed public key, hex. */
  readonly miner: string
  readonly at: number
  /** 64-byte compact signature over leaseMessage(job, miner, at, action), hex. */
  readonly signature: string
}

export type CandidateStatus = 'pending' | 'accepted' | 'rejected'
const STATUSES: readonly CandidateStatus[] = ['pending', 'accepted', 'rejected']

/** A candidate as the relay's PoL service reports it (`GET /api/candidates/<cid>`, `/api/miners/<key>`). */
export interface CandidateInfo {
  readonly cid: string
  readonly status: CandidateStatus
  readonly expert: string | null
  /** The version it supersedes (CID), and its author's public key (hex). */
  readonly base: string | null
  readonly miner: string | null
  readonly code: string | null
  readonly message: string | null
  readonly lossBefore: number | null
  readonly lossAfter: number | null
  /** Credits minted for it, and the chain C reward block. */
  readonly amount: number | null
  readonly reward: string | null
  /** Whether the reward block is under a validator checkpoint (final) or not yet (pending); null without a reward, or when the relay did not say. */
  readonly rewardFinal: boolean | null
  readonly certificate: string | null
  readonly receivedAt: number | null
  readonly decidedAt: number | null
  /** Validation rounds it has had, and why the last failed (a validator's fault, not the candidate's). */
  readonly attempts: number | null
  readonly lastError: string | null
}

/** A candidate from the API's JSON (snake_case), or null when it has no CID or status. */
export function candidateFrom(raw: unknown): CandidateInfo | null {
  if (typeof raw !== 'object' || raw === null) return null
  const r = raw as Record<string, unknown>
  const cid = str(r['cid'])
  const status = r['status']
  if (cid === null || !(STATUSES as readonly unknown[]).includes(status)) return null
  return Object.freeze({
    cid,
    status: status as CandidateStatus,
    expert: str(r['expert']),
    base: str(r['base']),
    miner: str(r['miner']),
    code: str(r['code']),
    message: str(r['message']),
    lossBefore: num(r['loss_before']),
    lossAfter: num(r['loss_after']),
    amount: num(r['amount']),
    reward: str(r['reward']),
    rewardFinal: typeof r['reward_final'] === 'boolean' ? r['reward_final'] : null,
    certificate: str(r['certificate']),
    receivedAt: num(r['received_at']),
    decidedAt: num(r['decided_at']),
    attempts: num(r['attempts']),
    lastError: str(r['last_error'])
  })
}

/** A miner key as the PoL service knows it (`GET /api/miners/<key>`). */
export interface MinerReport {
  readonly trust: 'newbie' | 'trusted' | null
  readonly quota: { readonly perDay: number; readonly pending: number; readonly leases: number } | null
  /** Newest first. */
  readonly candidates: readonly CandidateInfo[]
}

export function minerReportFrom(raw: unknown): MinerReport {
  const m = (typeof raw === 'object' && raw !== null ? raw : {}) as { trust?: unknown; quota?: Record<string, unknown>; candidates?: unknown }
  const trust = m.trust === 'newbie' || m.trust === 'trusted' ? m.trust : null
  const q = m.quota
  const quota = q !== undefined && num(q['perDay']) !== null && num(q['pending']) !== null && num(q['leases']) !== null
    ? Object.freeze({ perDay: q['perDay'] as number, pending: q['pending'] as number, leases: q['leases'] as number })
    : null
  const candidates = Array.isArray(m.candidates) ? m.candidates.map(candidateFrom).filter((c): c is CandidateInfo => c !== null) : []
  return Object.freeze({ trust, quota, candidates: Object.freeze(candidates) })
}

/** One gate check as `GET /api/datasets` reports it (src/pol/gate.ts GateCheck). */
export interface DatasetCheckInfo {
  readonly name: string
  readonly value: number
  readonly limit: number
  readonly pass: boolean
  readonly detail: string
}

/** A proposed dataset as the relay reports it (`GET /api/datasets`): its stage and the gate's report. Not verified here. */
export interface DatasetInfo {
  readonly cid: string
  readonly index: number
  readonly name: string
  readonly license: string
  readonly split: 'train' | 'validation'
  readonly size: number
  readonly description: string
  /** Hex public key of the proposer. */
  readonly proposer: string
  /** `screened`: the node ran the gate, no decision yet. */
  readonly stage: 'proposed' | 'screened' | 'approved' | 'rejected' | 'retired'
  readonly tier: 'gold' | 'silver' | 'experimental' | null
  readonly decision: string | null
  readonly reasons: readonly string[]
  /** A pool in force under the relay's chain A head. */
  readonly inForce: boolean
  /** Units the proposer earned from versions that learned from it (data shares), and those versions. */
  readonly earned: number
  readonly learnedBy: readonly { readonly expert: string; readonly version: string }[]
  /** The report the decision links (a dag-cbor block), when one does. */
  readonly reportCid: string | null
  readonly report: { readonly pass: boolean; readonly checks: readonly DatasetCheckInfo[] } | null
}

/** A key's ledger balance (`GET /api/balance/<key>`): at the chain C head, and at the final chain C block (null when the relay did not say). */
export interface BalanceReport {
  readonly balance: number
  readonly finalBalance: number | null
}

/** A submission a relay refused (`GET /api/rejections`, `/api/blocks/<cid>`): reported by the relay, not verified here. */
export interface RejectionInfo {
  /** The refused block's CID, when the submission got as far as having one. */
  readonly cid: string | null
  readonly code: string
  /** What the rule code means (src/errors.ts RULES), when it is a rule code. */
  readonly rule: string | null
  readonly field: string | null
  readonly message: string
  readonly at: number
  readonly chain: string | null
  readonly blockType: string | null
}

/** A rejection from the API's JSON, or null without a code and time. */
export function rejectionFrom(raw: unknown): RejectionInfo | null {
  if (typeof raw !== 'object' || raw === null) return null
  const r = raw as Record<string, unknown>
  const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null)
  const code = text(r['code'])
  const at = r['at']
  if (code === null || typeof at !== 'number') return null
  return Object.freeze({
    cid: text(r['cid']),
    code,
    rule: (RULES as Record<string, string>)[code] ?? null,
    field: text(r['field']),
    message: typeof r['message'] === 'string' ? withoutCode(r['message'], code) : '',
    at,
    chain: text(r['chain']),
    blockType: text(r['blockType']) ?? text(r['block_type'])
  })
}

/** A RuleError's message starts with its code and field (`E_X (field): ...`), which lists show beside it. */
function withoutCode(message: string, code: string): string {
  if (!message.startsWith(code)) return message
  const rest = message.slice(code.length)
  const m = /^( \([^)]*\))?: /.exec(rest)
  return m === null ? message : rest.slice(m[0].length)
}

/** What `POST /api/blocks` did with a submission: stored it (201), or queued a PoL candidate (202). */
export type SubmitResult = { readonly accepted: { readonly cid: string } } | { readonly candidate: CandidateInfo }
