/**
 * Finality on a full node: the validator keys it holds vote for checkpoints of its heads, and votes
 * (its own and, through `POST /api/checkpoints/votes`, anyone's) are pooled until one body has a
 * quorum. The rules of a checkpoint are src/chain/checkpoint.ts; this module only decides when to
 * sign and what to keep.
 *
 * **When a key signs.** After every accepted chain A, C or D block (in the node's submission queue,
 * right after the block is stored), if the fork-choice heads moved since the last checkpoint. So on
 * a node holding a quorum of keys (a devnet) a block is final before the next submission is judged:
 * no window in which a competing branch could win. With validators on separate machines the window
 * is the time their votes take to meet.
 *
 * **What a key never signs.** A body that conflicts with the last one it signed: a lower number, or
 * the same number with heads that do not extend the ones it signed. Two conflicting checkpoints can
 * then both reach a quorum only if more than a third of the validators break this rule (quorums of
 * more than 2/3 overlap in more than 1/3). The last vote of each key is stored (`VoteLog`, in
 * pol.sqlite) before the vote leaves the node, so a restart cannot make a key forget it.
 *
 * @module
 */
import { toHex } from '../../src/codec/cbor.ts'
import {
  FINAL_CHAINS, assembleCheckpoint, checkCheckpoint, checkpointId, decodeCheckpoint, encodeCheckpoint, nextCheckpointBody, signCheckpoint,
  type Checkpoint, type CheckpointBody, type CheckpointHeads
} from '../../src/chain/checkpoint.ts'
import { descendsFrom } from '../../src/chain/forkchoice.ts'
import { publicKeyOf, type SecretKey } from '../../src/chain/keys.ts'
import { isValidator, quorumSize, type MetaDocument } from '../../src/chain/meta.ts'
import type { ValidatorSignature } from '../../src/chain/quorum.ts'
import type { ChainView } from '../../src/chain/view.ts'
import type { ChainStore } from './interface.ts'

/** Where a node remembers the last checkpoint vote each of its keys signed (hex key -> the vote's bytes). */
export interface VoteLog {
  lastVote(validator: string): Uint8Array | undefined
  recordVote(validator: string, number: number, vote: Uint8Array): void
}

/** A VoteLog in memory (`blyan init`, tests): forgotten with the process. */
export function memoryVoteLog(): VoteLog {
  const votes = new Map<string, Uint8Array>()
  return {
    lastVote: (validator) => votes.get(validator),
    recordVote: (validator, _number, vote) => void votes.set(validator, vote)
  }
}

/** The heads a checkpoint would finalize now: the fork-choice head of each linear chain. */
export function currentHeads(store: ChainStore): CheckpointHeads | null {
  const a = store.head('A')
  if (a === undefined) return null
  return { A: a.cid, C: store.head('C')?.cid ?? null, D: store.head('D')?.cid ?? null }
}

function sameHeads(a: CheckpointHeads, b: CheckpointHeads): boolean {
  return FINAL_CHAINS.every((c) => (a[c] === null ? b[c] === null : b[c] !== null && a[c].equals(b[c] as NonNullable<CheckpointHeads['A']>)))
}

/** Each head of `next` extends (or is) the same chain's head in `before`, in `view`. */
function extendsHeads(view: ChainView, before: CheckpointHeads, next: CheckpointHeads): boolean {
  return FINAL_CHAINS.every((c) => {
    const b = before[c]
    if (b === null) return true
    const n = next[c]
    const nb = n === null ? undefined : view.get(n)
    const bb = view.get(b)
    return nb !== undefined && bb !== undefined && descendsFrom(view, nb, bb)
  })
}

/** The validator keys a node holds, signing checkpoint votes under the rule above. */
export class CheckpointSigner {
  readonly #keys: readonly SecretKey[]
  readonly #log: VoteLog

  constructor(keys: readonly SecretKey[], log: VoteLog) {
    this.#keys = keys
    this.#log = log
  }

  get size(): number {
    return this.#keys.length
  }

  /**
   * A vote for the store's current heads, when they moved since its last checkpoint: the body,
   * signed by every held key that is in the signing set and may sign it. Null when there is
   * nothing to finalize or no key may sign.
   */
  vote(store: ChainStore): Checkpoint | null {
    const heads = currentHeads(store)
    const genesis = store.genesis()
    if (heads === null || genesis === undefined) return null
    const last = store.checkpoint()
    if (last !== null && sameHeads(last.heads, heads)) return null
    const body = nextCheckpointBody(last, genesis.cid, heads)
    const signers = store.get(body.meta)?.document as MetaDocument | undefined
    if (signers === undefined) return null
    const signatures: ValidatorSignature[] = []
    for (const key of this.#keys) {
      const pub = publicKeyOf(key)
      if (!isValidator(signers, pub)) continue
      const hex = toHex(pub)
      const previous = this.#log.lastVote(hex)
      if (previous !== undefined && !this.#maySign(store, decodeCheckpoint(previous), body)) continue
      const signature = signCheckpoint(body, key)
      this.#log.recordVote(hex, body.number, encodeCheckpoint(assembleCheckpoint(body, [signature])))
      signatures.push(signature)
    }
    return signatures.length === 0 ? null : assembleCheckpoint(body, signatures)
  }

  /**
   * Heads extending (or equal to) the ones signed before, at the same or a later number: an honest
   * key's signatures, whatever their numbers, all lie on one line of heads, so no two quorums (at
   * any numbers) can finalize branches that exclude each other.
   */
  #maySign(view: ChainView, signed: CheckpointBody, body: CheckpointBody): boolean {
    if (body.number < signed.number) return false
    return extendsHeads(view, signed.heads, body.heads)
  }

  /**
   * True when a key held here aggregates checkpoint `number` after `elapsedMs` of votes for it (see
   * `aggregatorOf`). A node without keys never aggregates: it applies the checkpoint it receives.
   */
  aggregates(meta: MetaDocument, number: number, elapsedMs: number): boolean {
    const turn = aggregatorOf(meta, number, elapsedMs)
    return this.#keys.some((k) => toHex(publicKeyOf(k)) === turn)
  }
}

/** How long an aggregator has before the next validator in the schedule takes over. */
export const AGGREGATOR_TAKEOVER_MS = 4000

/**
 * Which validator (hex key) assembles checkpoint `number` from the votes, `elapsedMs` after the
 * first vote for it: validator number mod n of the signing set, then the next one every
 * AGGREGATOR_TAKEOVER_MS (it is down, or slow). With validators on separate nodes, one assembler
 * per number makes every node apply the same checkpoint document (the same signatures), instead of
 * each pooling its own quorum.
 */
export function aggregatorOf(meta: MetaDocument, number: number, elapsedMs: number): string {
  const n = meta.validators.length
  const turn = (number + Math.floor(Math.max(0, elapsedMs) / AGGREGATOR_TAKEOVER_MS)) % n
  return toHex(meta.validators[turn] as Uint8Array)
}

/** Whether this node may assemble checkpoint `number` from separate votes now (FullNode's option). */
export type AggregationPolicy = (meta: MetaDocument, number: number, elapsedMs: number) => boolean

/** What happened to a vote given to the pool. */
export type VoteOutcome =
  /** Its body reached a quorum: here is the checkpoint, to apply. */
  | { readonly status: 'final'; readonly checkpoint: Checkpoint }
  /** Kept: its body has `signatures` of the `needed`. */
  | { readonly status: 'pooled'; readonly signatures: number; readonly needed: number }
  /** For a number already final (nothing to do). */
  | { readonly status: 'stale' }

/** Bodies pooled per number at most: a validator that signs junk cannot grow the pool without bound. */
const MAX_BODIES = 16

/**
 * Votes for the next checkpoint number, pooled by body until one has a quorum. Each vote is checked
 * (checkCheckpoint without the quorum: sequence, heads, every signature) before it counts.
 *
 * Each validator counts for its newest body only: with validators on separate nodes, heads move
 * while votes travel, and a validator re-signs the same number for heads that extend its last
 * vote. Its signature moves to the newer body (an older vote that arrives late, for heads the
 * newer one extends, is ignored), so the pool holds at most one body per validator and the bodies
 * for the heads everyone reached in the end gather the quorum.
 */
export class VotePool {
  #number = -1
  readonly #bodies = new Map<string, { readonly body: Checkpoint; readonly signatures: Map<string, ValidatorSignature> }>()
  /** Validator (hex) -> id of the body its newest vote is for. */
  readonly #latest = new Map<string, string>()

  /** When the first vote for the current number arrived (ms, the pool's clock). */
  #since = 0
  readonly #now: () => number

  constructor(now: () => number = Date.now) {
    this.#now = now
  }

  /**
   * Add a vote (RuleError when it breaks a rule, including a number beyond the next: fetch the
   * missing checkpoints first). A document that carries a quorum itself is final; votes pooled to a
   * quorum are assembled only where `mayAggregate` says so (default: anywhere).
   */
  add(vote: Checkpoint, view: ChainView, mayAggregate?: AggregationPolicy): VoteOutcome {
    const last = view.checkpoint()
    const next = last === null ? 0 : last.number + 1
    if (vote.number < next) return { status: 'stale' }
    checkCheckpoint(vote, view, last, { quorum: false })
    if (next !== this.#number) {
      this.#bodies.clear()
      this.#latest.clear()
      this.#number = next
      this.#since = this.#now()
    }
    if (vote.signatures.length >= this.#needed(vote, view)) {
      this.#bodies.clear()
      this.#latest.clear()
      return { status: 'final', checkpoint: vote }
    }
    const id = checkpointId(vote).toString()
    let entry = this.#bodies.get(id)
    if (entry === undefined) {
      if (this.#bodies.size >= MAX_BODIES) return { status: 'pooled', signatures: 0, needed: this.#needed(vote, view) }
      entry = { body: vote, signatures: new Map() }
      this.#bodies.set(id, entry)
    }
    for (const s of vote.signatures) {
      const validator = toHex(s.validator)
      const before = this.#latest.get(validator)
      const previous = before === undefined || before === id ? undefined : this.#bodies.get(before)
      if (previous !== undefined) {
        // A late vote for heads its newer vote already extends: the newer one stands.
        if (extendsHeads(view, vote.heads, previous.body.heads)) continue
        previous.signatures.delete(validator)
        if (previous.signatures.size === 0) this.#bodies.delete(before as string)
      }
      this.#latest.set(validator, id)
      entry.signatures.set(validator, s)
    }
    if (entry.signatures.size === 0) this.#bodies.delete(id)
    const needed = this.#needed(vote, view)
    if (entry.signatures.size < needed || !this.#mayAssemble(vote, view, mayAggregate)) return { status: 'pooled', signatures: entry.signatures.size, needed }
    return this.#assemble(entry)
  }

  /** A body of the pool that has a quorum, assembled when this node's turn came (the aggregator's takeover); null otherwise. */
  retry(view: ChainView, mayAggregate?: AggregationPolicy): Checkpoint | null {
    const last = view.checkpoint()
    if (this.#number !== (last === null ? 0 : last.number + 1)) return null
    for (const entry of this.#bodies.values()) {
      if (entry.signatures.size >= this.#needed(entry.body, view) && this.#mayAssemble(entry.body, view, mayAggregate)) {
        const out = this.#assemble(entry)
        return out.status === 'final' ? out.checkpoint : null
      }
    }
    return null
  }

  #mayAssemble(vote: Checkpoint, view: ChainView, mayAggregate: AggregationPolicy | undefined): boolean {
    return mayAggregate === undefined || mayAggregate(view.get(vote.meta)?.document as MetaDocument, vote.number, this.#now() - this.#since)
  }

  #assemble(entry: { readonly body: Checkpoint; readonly signatures: Map<string, ValidatorSignature> }): VoteOutcome {
    this.#bodies.clear()
    this.#latest.clear()
    return { status: 'final', checkpoint: assembleCheckpoint(entry.body, [...entry.signatures.values()]) }
  }

  #needed(vote: Checkpoint, view: ChainView): number {
    return quorumSize((view.get(vote.meta)?.document as MetaDocument).validators.length)
  }
}
