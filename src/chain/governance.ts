/**
 * Dataset governance: which chain D datasets the network uses, decided by the validator quorum.
 *
 * Anyone may *propose* a dataset (a chain D `dataset` block, PoW only). It is used for nothing until
 * validators *decide* on it: a chain D `decision` block whose document is signed by more than 2/3
 * of the validator set of its rules block (quorum.ts, the signatures PoL certificates and
 * checkpoints use). A decision approves a proposed dataset into a tier, rejects it with reasons, or
 * retires an approved one. Its lifecycle on a chain D branch:
 *
 *     proposed --approve(tier)--> approved --retire--> retired
 *         \----reject(reasons)--> rejected
 *
 * **Which pools are in force** is a function of one chain A block: each chain A block after the
 * genesis names (in `depends_on`) the chain D block whose decisions are in force under it, and that
 * pointer only moves forward on chain D (validate.ts). So every node, and the light client, derives
 * the same pools for the same rules block, whatever order it learned of decisions in; a decision
 * takes effect with the next chain A block. Tiers decide use (TIER_USES): validation slices come from
 * `gold` validation pools; training shards from `gold` or `silver` training pools; `experimental`
 * pools are recorded, not used. Pools are listed in the order their approvals are on chain D.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import type { DatasetDocument, DatasetSplit } from './dataset.ts'
import { decisionBodyBytes, type Decision, type Tier, type Verdict } from './decision.ts'
import type { MetaDocument } from './meta.ts'
import { checkSignatures } from './quorum.ts'
import type { AcceptedBlock } from './view.ts'
import { descendsFrom, type BlockLookup } from './forkchoice.ts'

/** What an approved pool of each tier may be used for, by its role. */
export const TIER_USES: Readonly<Record<Tier, readonly DatasetSplit[]>> = Object.freeze({
  gold: Object.freeze(['train', 'validation'] as const),
  silver: Object.freeze(['train'] as const),
  experimental: Object.freeze([] as const)
})

// ---------------------------------------------------------------------------------------------
// The lifecycle, folded over a chain D branch

export type Stage = 'proposed' | 'approved' | 'rejected' | 'retired'

export interface DatasetState {
  /** The chain D `dataset` block. */
  readonly dataset: CID
  readonly role: DatasetSplit
  readonly stage: Stage
  /** Set once approved (kept when retired). */
  readonly tier: Tier | null
  /** The decision block that set the stage (null while proposed). */
  readonly decision: CID | null
  /** Chain D height of the approval (pools in force are listed in this order); -1 before one. */
  readonly approvedAt: number
  readonly reasons: readonly string[]
}

/** Every dataset's state on a chain D branch, by dataset CID string. */
export type DatasetStates = ReadonlyMap<string, DatasetState>

const EMPTY: DatasetStates = new Map()
/** States after a chain D block, by its CID: a pure function of the CID (a hash chain), so one memo serves every view. */
const memo = new Map<string, DatasetStates>()
const MEMO_LIMIT = 512

/**
 * Dataset states after chain D block `at` (null: before the first): its branch folded from the
 * first block. Every block on the branch must be accepted in `view`.
 */
export function datasetStates(view: BlockLookup, at: AcceptedBlock | null): DatasetStates {
  if (at === null) return EMPTY
  const key = at.cid.toString()
  const known = memo.get(key)
  if (known !== undefined) return known
  // Walk down to the nearest memoized block, then fold back up (no recursion: chains can be long).
  const path: AcceptedBlock[] = []
  let base: DatasetStates = EMPTY
  for (let b: AcceptedBlock | undefined = at; b !== undefined;) {
    const m = memo.get(b.cid.toString())
    if (m !== undefined) { base = m; break }
    path.push(b)
    if (b.header.prev === null) break
    const prev = view.get(b.header.prev)
    if (prev === undefined) throw new Error(`datasetStates: ${b.header.prev} (prev of ${b.cid}) is not in the view`)
    b = prev
  }
  let states = base
  for (const b of path.reverse()) {
    states = applyBlock(states, b)
    if (memo.size >= MEMO_LIMIT) memo.delete(memo.keys().next().value as string)
    memo.set(b.cid.toString(), states)
  }
  return states
}

function applyBlock(states: DatasetStates, block: AcceptedBlock): DatasetStates {
  const next = new Map(states)
  if (block.header.block_type === 'dataset') {
    const doc = block.document as DatasetDocument
    next.set(block.cid.toString(), Object.freeze({ dataset: block.cid, role: doc.split, stage: 'proposed', tier: null, decision: null, approvedAt: -1, reasons: Object.freeze([]) }))
  } else {
    const d = block.document as Decision
    const before = states.get(d.dataset.toString()) as DatasetState
    next.set(d.dataset.toString(), Object.freeze({
      ...before,
      stage: STAGE_AFTER[d.verdict],
      tier: d.verdict === 'approve' ? d.tier : before.tier,
      decision: block.cid,
      approvedAt: d.verdict === 'approve' ? block.header.index : before.approvedAt,
      reasons: d.reasons
    }))
  }
  return next
}

const STAGE_AFTER: Readonly<Record<Verdict, Stage>> = Object.freeze({ approve: 'approved', reject: 'rejected', retire: 'retired' })
/** The stage each verdict moves a dataset from. */
const STAGE_BEFORE: Readonly<Record<Verdict, Stage>> = Object.freeze({ approve: 'proposed', reject: 'proposed', retire: 'approved' })

/**
 * Rule E_DECISION: a decision block's document decides on the dataset block it depends on, under
 * its own rules block, for the dataset's own role, as the lifecycle allows from the dataset's stage
 * on the decision's branch (`states`: after its prev); then its signatures are a quorum of the rules
 * block's validators (E_CERT_SIGNER, E_CERT_SIG, E_QUORUM).
 */
export function checkDecision(decision: Decision, dataset: AcceptedBlock, rules: AcceptedBlock, states: DatasetStates): void {
  if (!decision.dataset.equals(dataset.cid)) reject('E_DECISION', 'payload.dataset', 'must be the dataset block the decision depends on')
  if (!decision.meta.equals(rules.cid)) reject('E_DECISION', 'payload.meta', 'must be the decision block\'s chain A dependency (its rules block)')
  const state = states.get(dataset.cid.toString())
  if (state === undefined) reject('E_DECISION', 'payload.dataset', 'not a dataset proposed on this chain D branch')
  if (decision.role !== state.role) reject('E_DECISION', 'payload.role', `the dataset was proposed as "${state.role}"`)
  const from = STAGE_BEFORE[decision.verdict]
  if (state.stage !== from) reject('E_DECISION', 'payload.verdict', `a dataset that is ${state.stage} cannot be given "${decision.verdict}" (only a ${from} one)`)
  checkSignatures(decisionBodyBytes(decision), decision.signatures, rules.document as MetaDocument, 'payload', true)
}

// ---------------------------------------------------------------------------------------------
// Pools in force under a rules block

export interface PoolsInForce {
  /** Chain D `dataset` blocks whose validation slices PoL certificates may use, in approval order. */
  readonly validation: readonly CID[]
  /** Chain D `dataset` blocks jobs draw training shards from, in approval order. */
  readonly train: readonly CID[]
}

/** The chain D block whose decisions are in force under chain A block `rules` (null: none, as at a genesis). */
export function governanceOf(rules: AcceptedBlock): CID | null {
  if (rules.header.chain_id !== 'A') throw new TypeError(`governanceOf: ${rules.cid} is a chain ${rules.header.chain_id} block, not chain A`)
  return rules.header.depends_on[0] ?? null
}

/** The approved pools of each role under chain A block `rules`. */
export function poolsInForce(view: BlockLookup, rules: AcceptedBlock): PoolsInForce {
  return poolsAt(view, governanceOf(rules))
}

/** The approved pools of each role after chain D block `at` (null: none). */
export function poolsAt(view: BlockLookup, at: CID | null): PoolsInForce {
  const block = at === null ? null : view.get(at)
  if (block === undefined) throw new Error(`poolsAt: chain D block ${String(at)} is not in the view`)
  const approved = [...datasetStates(view, block).values()].filter((s) => s.stage === 'approved').sort((a, b) => a.approvedAt - b.approvedAt)
  const usable = (role: DatasetSplit): readonly CID[] =>
    Object.freeze(approved.filter((s) => s.role === role && s.tier !== null && TIER_USES[s.tier].includes(role)).map((s) => s.dataset))
  return Object.freeze({ validation: usable('validation'), train: usable('train') })
}

/**
 * The validation pool a candidate's slice must come from, under the certificate's rules block:
 * pool number (start mod n) of the n in force, so neither miner nor validators choose it. Undefined
 * when none is in force.
 */
export function validationPoolFor(pools: PoolsInForce, sliceStart: number): CID | undefined {
  const n = pools.validation.length
  return n === 0 ? undefined : pools.validation[sliceStart % n]
}

/**
 * `depends_on` for a new chain A block after `prev`: the chain D block `head` when it extends the
 * chain D block `prev` names (so new decisions come into force), else what `prev` names.
 */
export function nextGovernance(view: BlockLookup, prev: AcceptedBlock, head: AcceptedBlock | undefined): CID[] {
  const before = governanceOf(prev)
  if (head === undefined) return before === null ? [] : [before]
  if (before === null) return [head.cid]
  const last = view.get(before)
  return last !== undefined && descendsFrom(view, head, last) ? [head.cid] : [before]
}
