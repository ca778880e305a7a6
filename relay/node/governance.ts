/**
 * Blocks validators make to govern datasets (src/chain/governance.ts holds the rules): a decision
 * on a proposed dataset, signed by a quorum of the keys given, and the next chain A block, which
 * brings the chain D head's decisions into force (it doubles as the PoL beacon).
 *
 * Both return submission CARs, judged by the node like any other submission.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { documentPayload, sealBlock, type HeaderDraft } from '../../src/chain/build.ts'
import { DAG_CBOR, cidOf } from '../../src/codec/cbor.ts'
import type { DatasetDocument } from '../../src/chain/dataset.ts'
import type { ChainHeads } from '../../src/chain/proposal.ts'
import { DECISION_KIND, DECISION_VERSION, assembleDecision, encodeDecision, signDecision, type Decision, type DecisionBody, type Tier, type Verdict } from '../../src/chain/decision.ts'
import { nextGovernance } from '../../src/chain/governance.ts'
import type { SecretKey } from '../../src/chain/keys.ts'
import { isValidator, quorumSize, type MetaDocument } from '../../src/chain/meta.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { encodeSubmission } from '../../src/chain/submission.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { fetchUnixfsFile } from '../../src/tensor/tiles.ts'
import type { ChainStore } from './interface.ts'

export interface DecisionRequest {
  readonly dataset: CID
  readonly verdict: Verdict
  /** `approve` only. */
  readonly tier?: Tier
  readonly reasons?: readonly string[]
  /** The gate's report (encodeReport), linked from the decision and carried with it. */
  readonly report?: Uint8Array
}

/** Why a decision cannot be made here (not a rule of the chain: the node refuses before sealing). */
export class DecisionError extends Error {
  override readonly name = 'DecisionError'
}

/** The body validators sign to decide `request` on the chain D head's branch, under the chain A head. */
export function decisionBody(store: ChainHeads, request: DecisionRequest): DecisionBody {
  const rules = store.head('A')
  const dataset = store.get(request.dataset)
  if (rules === undefined || store.head('D') === undefined) throw new DecisionError('the chain has no chain A or chain D block yet')
  if (dataset === undefined || dataset.header.chain_id !== 'D' || dataset.header.block_type !== 'dataset') throw new DecisionError(`${request.dataset} is not a proposed dataset (a chain D dataset block) here`)
  return {
    kind: DECISION_KIND,
    version: DECISION_VERSION,
    dataset: dataset.cid,
    meta: rules.cid,
    verdict: request.verdict,
    role: (dataset.document as DatasetDocument).split,
    tier: request.verdict === 'approve' ? request.tier ?? 'gold' : null,
    reasons: request.reasons ?? [],
    report: request.report === undefined ? null : cidOf(request.report, DAG_CBOR)
  }
}

/**
 * A decision block on `request.dataset` after the chain D head, under the chain A head, signed by
 * every key of `keys` in the head's validator set (they must be a quorum) and sealed by the first.
 */
export async function decisionSubmission(store: ChainHeads, keys: readonly SecretKey[], request: DecisionRequest, now: number): Promise<Uint8Array> {
  const body = decisionBody(store, request)
  const meta = (store.get(body.meta) as AcceptedBlock).document as MetaDocument
  const signers = keys.filter((k) => isValidator(meta, publicKeyOf(k)))
  const need = quorumSize(meta.validators.length)
  if (signers.length < need) throw new DecisionError(`these keys hold ${signers.length} of the ${meta.validators.length} validator seats; a decision needs ${need}`)
  return sealedDecision(store, assembleDecision(body, signers.map((k) => signDecision(body, k))), signers[0] as SecretKey, request.report, now)
}

/**
 * The decision block of `decision` (a body and a quorum of signatures, gathered on this node or
 * from validators on theirs), after the chain D head, sealed by `sealer`; `report` is the gate
 * report the body names, carried with it.
 */
export async function sealedDecision(store: ChainHeads, decision: Decision, sealer: SecretKey, report: Uint8Array | undefined, now: number): Promise<Uint8Array> {
  const rules = store.get(decision.meta)
  const prev = store.head('D')
  const dataset = store.get(decision.dataset)
  if (rules === undefined || prev === undefined || dataset === undefined) throw new DecisionError('the decision names blocks this node does not hold')
  const meta = rules.document as MetaDocument
  const doc = documentPayload(encodeDecision(decision))
  const sealed = sealBlock({
    chain_id: 'D', block_type: 'decision', index: prev.header.index + 1, prev: prev.cid, depends_on: [rules.cid, dataset.cid],
    expert_name: null, layer_id: null, payload: doc.cid, payload_size: doc.size,
    timestamp: Math.max(now, prev.header.timestamp, rules.header.timestamp, dataset.header.timestamp), difficulty: meta.pow.D, supersedes: null, pol: null
  } as HeaderDraft, sealer)
  return encodeSubmission({ header: sealed.bytes, payload: doc.bytes, documents: report === undefined ? [] : [report] })
}

/**
 * The next chain A block: the head's rules unchanged, naming the chain D head when it extends the
 * chain D block the head names (nextGovernance), so decisions made since come into force. Sealed by
 * `key` (a validator of the head's rules); the submission carries the tokenizer file the rules link.
 */
export async function nextRulesSubmission(store: ChainStore, key: SecretKey, now: number): Promise<Uint8Array> {
  const head = store.head('A') as AcceptedBlock
  const meta = head.document as MetaDocument
  const raw = (cid: CID): Uint8Array => {
    const bytes = store.getRaw(cid)
    if (bytes === undefined) throw new Error(`the store lacks block ${cid}`)
    return bytes
  }
  const doc = documentPayload(raw(head.header.payload))
  const sealed = sealBlock({
    chain_id: 'A', block_type: 'meta', index: head.header.index + 1, prev: head.cid, depends_on: nextGovernance(store, head, store.head('D')),
    expert_name: null, layer_id: null, payload: doc.cid, payload_size: doc.size,
    timestamp: Math.max(now, head.header.timestamp + 1, store.head('D')?.header.timestamp ?? 0), difficulty: meta.pow.A, supersedes: null, pol: null
  } as HeaderDraft, key)
  const files = meta.tokenizer === null ? [] : [await fetchUnixfsFile(meta.tokenizer.payload, meta.tokenizer.size, async (cid) => raw(cid))]
  return encodeSubmission({ header: sealed.bytes, payload: doc.bytes, files })
}

/** True when the chain D head holds decisions the chain A head does not yet bring into force. */
export function decisionsPending(store: ChainStore): boolean {
  const head = store.head('A')
  if (head === undefined) return false
  const next = nextGovernance(store, head, store.head('D'))
  const now = head.header.depends_on[0]
  return next[0] !== undefined && (now === undefined || !next[0].equals(now))
}
