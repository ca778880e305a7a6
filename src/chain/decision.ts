/**
 * Chain D decision documents: a validator quorum's approval, rejection or retirement of a proposed
 * dataset (governance.ts holds the lifecycle and which pools are in force).
 *
 * Signed as PoL certificates and checkpoints are (quorum.ts): each validator signs the canonical
 * bytes of the body, the document without `signatures`, whose `kind` keeps it apart from the others.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { DAG_CBOR, decodeCbor, encodeCbor, isProtocolCid } from '../codec/cbor.ts'
import { DATASET_SPLITS, type DatasetSplit } from './dataset.ts'
import type { SecretKey } from './keys.ts'
import { decodeSignatures, signBody, signaturesForEncoding, sortSignatures, type ValidatorSignature } from './quorum.ts'
import * as S from '../codec/schema.ts'

export const DECISION_KIND = 'blyan/dataset-decision'
export const DECISION_VERSION = 1
/** Largest decision document (256 signatures and reasons). */
export const MAX_DECISION_BYTES = 64 * 1024

export type Verdict = 'approve' | 'reject' | 'retire'
export const VERDICTS: readonly Verdict[] = Object.freeze(['approve', 'reject', 'retire'])
export type Tier = 'gold' | 'silver' | 'experimental'
export const TIERS: readonly Tier[] = Object.freeze(['gold', 'silver', 'experimental'])
/** Most reasons a decision lists, and the longest one. */
export const MAX_REASONS = 32
export const MAX_REASON_LENGTH = 512

/** What validators sign. */
export interface DecisionBody {
  readonly kind: typeof DECISION_KIND
  readonly version: typeof DECISION_VERSION
  /** The chain D `dataset` block decided on. */
  readonly dataset: CID
  /** The chain A block whose validator set signs: the decision block's rules block. */
  readonly meta: CID
  readonly verdict: Verdict
  /** The dataset's role: its proposed split (validators do not repurpose data). */
  readonly role: DatasetSplit
  /** `approve`: the tier; otherwise null. */
  readonly tier: Tier | null
  /** Why: at least one for `reject` and `retire` (for example the quality gate's failed checks). */
  readonly reasons: readonly string[]
  /** The quality gate's report on the dataset (a dag-cbor `blyan/dataset-report`, src/pol/gate.ts), carried with the decision; null when none was run. */
  readonly report: CID | null
}

export interface Decision extends DecisionBody {
  /** Strictly ascending by validator key; more than 2/3 of `meta`'s validator set. */
  readonly signatures: readonly ValidatorSignature[]
}

const BODY_KEYS = ['kind', 'version', 'dataset', 'meta', 'verdict', 'role', 'tier', 'reasons', 'report'] as const

function bodyFields(body: DecisionBody): Record<string, unknown> {
  return { kind: body.kind, version: body.version, dataset: body.dataset, meta: body.meta, verdict: body.verdict, role: body.role, tier: body.tier, reasons: [...body.reasons], report: body.report }
}

/** Canonical bytes validators sign. */
export function decisionBodyBytes(body: DecisionBody): Uint8Array {
  return encodeCbor(bodyFields(body))
}

export function encodeDecision(decision: Decision): Uint8Array {
  return encodeCbor({ ...bodyFields(decision), signatures: signaturesForEncoding(decision.signatures) })
}

/** One validator's signature over a decision body. */
export function signDecision(body: DecisionBody, secretKey: SecretKey): ValidatorSignature {
  return signBody(decisionBodyBytes(body), secretKey)
}

/** A decision from a body and signatures, sorted as the encoding requires. */
export function assembleDecision(body: DecisionBody, signatures: readonly ValidatorSignature[]): Decision {
  const b = bodyFields(body) as unknown as DecisionBody
  return Object.freeze({ ...b, reasons: Object.freeze([...b.reasons]), signatures: sortSignatures(signatures) })
}

/** Decode decision bytes and check their schema (E_DECISION) and signature order (E_CERT_SIGNER). */
export function decodeDecision(bytes: Uint8Array): Decision {
  const p = 'payload'
  const o = S.exactMap(decodeCbor(bytes, MAX_DECISION_BYTES, p), [...BODY_KEYS, 'signatures'], p, 'E_DECISION')
  if (o['kind'] !== DECISION_KIND) reject('E_DECISION', 'payload.kind', `expected "${DECISION_KIND}"`)
  if (S.uint(o, 'version', p, undefined, 'E_DECISION') !== DECISION_VERSION) reject('E_VERSION', 'payload.version', `decision version ${String(o['version'])}`)
  const link = (key: string): CID => {
    const c = S.cid(o, key, p, 'E_DECISION')
    if (!isProtocolCid(c, [DAG_CBOR])) reject('E_DECISION', `payload.${key}`, 'not a block CID')
    return c
  }
  const dataset = link('dataset')
  const meta = link('meta')
  const verdict = S.oneOf(o, 'verdict', p, VERDICTS, 'E_DECISION')
  const role = S.oneOf(o, 'role', p, DATASET_SPLITS, 'E_DECISION')
  const tier = o['tier'] === null ? null : S.oneOf(o, 'tier', p, TIERS, 'E_DECISION')
  if ((verdict === 'approve') !== (tier !== null)) reject('E_DECISION', 'payload.tier', verdict === 'approve' ? 'an approval names a tier' : `a ${verdict} has tier null`)
  const reasons = S.list(o, 'reasons', p, MAX_REASONS, 'E_DECISION').map((r, i) => {
    if (typeof r !== 'string' || r.length === 0 || r.length > MAX_REASON_LENGTH) reject('E_DECISION', `payload.reasons[${i}]`, `a string of 1..${MAX_REASON_LENGTH} characters`)
    return r
  })
  if (verdict !== 'approve' && reasons.length === 0) reject('E_DECISION', 'payload.reasons', `a ${verdict} gives at least one reason`)
  const report = S.cidOrNull(o, 'report', p, 'E_DECISION')
  if (report !== null && !isProtocolCid(report, [DAG_CBOR])) reject('E_DECISION', 'payload.report', 'not a dag-cbor document CID')
  const signatures = decodeSignatures(o, p, 'E_DECISION')
  return Object.freeze({ kind: DECISION_KIND, version: DECISION_VERSION, dataset, meta, verdict, role, tier, reasons: Object.freeze(reasons), report, signatures })
}
