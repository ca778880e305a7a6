/**
 * The full node: validates submissions with src/chain's rules and stores what passes, and applies
 * finality checkpoints (relay/node/finality.ts: its validator keys' votes and anyone's, pooled).
 *
 * Submissions, votes and checkpoints are judged one at a time (a queue), so two blocks that race can
 * never both pass a rule that depends on state (a balance, a reward already paid, the final branch).
 * Every rule runs before anything is written; a refused submission leaves the store's content
 * unchanged and is logged as a rejection, against the block only when the block is to blame
 * (src/chain/refusal.ts).
 *
 * @module
 */
import { EventEmitter } from 'node:events'
import { checkCheckpoint, checkpointId, decodeCheckpoint, encodeCheckpoint, type Checkpoint } from '../../src/chain/checkpoint.ts'
import { headerCid, decodeHeader, type Header } from '../../src/chain/header.ts'
import { refusalScope, type RefusalScope } from '../../src/chain/refusal.ts'
import { checkSubmissionBlocks, decodeSubmission, type Submission } from '../../src/chain/submission.ts'
import { validateBlock } from '../../src/chain/validate.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { RuleError, TRANSIENT_CODES, reject } from '../../src/errors.ts'
import { VotePool, type AggregationPolicy, type CheckpointSigner, type VoteOutcome } from './finality.ts'
import type { ChainStore, Rejection } from './interface.ts'

export interface FullNodeOptions {
  /** The node's clock (ms); tests pin it. */
  readonly now?: () => number
  /** Largest submission CAR accepted. */
  readonly maxSubmissionBytes?: number
  /** The validator keys this node holds, voting for checkpoints of its heads (none: it only pools others' votes). */
  readonly signer?: CheckpointSigner
  /**
   * Where votes pooled to a quorum are assembled into the checkpoint (finality.ts aggregatorOf).
   * `anywhere` (default): on every node that pools them (one machine, or votes posted over HTTP).
   * `scheduled`: only on the node holding the scheduled aggregator's key (a peer network, where every
   * other node applies the checkpoint the aggregator gossips, so all hold the same document).
   */
  readonly aggregation?: 'anywhere' | 'scheduled'
}

/**
 * Where a PoL candidate goes once every other rule passed (relay/pol/service.ts): it applies the admission
 * policy (throwing a RuleError to refuse) and queues the candidate for the validators.
 */
export interface CandidateGate<T> {
  admit(block: AcceptedBlock, submission: Submission, car: Uint8Array): T
}

export interface FullNodeEvents {
  accepted: [block: AcceptedBlock]
  rejected: [rejection: Rejection]
  /** A checkpoint became final here (its bytes carry the quorum's signatures). */
  finalized: [checkpoint: Checkpoint, bytes: Uint8Array]
  /** This node's keys signed a vote (for the network to carry to other nodes). */
  vote: [bytes: Uint8Array]
}

export class FullNode extends EventEmitter<FullNodeEvents> {
  readonly store: ChainStore
  readonly #now: () => number
  readonly #maxBytes: number | undefined
  readonly #signer: CheckpointSigner | null
  readonly #votes: VotePool
  readonly #mayAggregate: AggregationPolicy | undefined
  #queue: Promise<unknown> = Promise.resolve()

  constructor(store: ChainStore, options: FullNodeOptions = {}) {
    super()
    this.store = store
    this.#now = options.now ?? Date.now
    this.#maxBytes = options.maxSubmissionBytes
    this.#signer = options.signer ?? null
    this.#votes = new VotePool(this.#now)
    const signer = this.#signer
    this.#mayAggregate = options.aggregation !== 'scheduled' ? undefined : (meta, number, elapsed) => signer?.aggregates(meta, number, elapsed) === true
  }

  /** A submission CAR decoded, or the refusal (logged, typed) of one that does not decode. */
  async #decode(car: Uint8Array): Promise<Submission> {
    try {
      return await decodeSubmission(car, this.#maxBytes)
    } catch (e) {
      throw this.#refused(e, null)
    }
  }

  /** Judge a submission CAR; resolves with the accepted block, rejects with the RuleError that refused it. */
  submitCar(car: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<AcceptedBlock> {
    return this.#enqueue(async () => {
      const submission = await this.#decode(car)
      return this.#judge(submission, options.signal)
    })
  }

  /**
   * Judge a submission CAR that may be a PoL candidate: a new chain B version without its
   * certificate runs every rule but the certificate (nothing is stored) and then goes to `gate`;
   * a candidate already accepted is a replay (E_REPLAY). Anything else is judged as submitCar does.
   */
  submitOrQueue<T>(car: Uint8Array, gate: CandidateGate<T> | null, options: { signal?: AbortSignal } = {}): Promise<{ accepted: AcceptedBlock } | { candidate: T }> {
    return this.#enqueue(async () => {
      const submission = await this.#decode(car)
      if (gate === null || !isCandidate(submission)) return { accepted: await this.#judge(submission, options.signal) }
      try {
        const known = this.store.get(headerCid(submission.input.header))
        if (known !== undefined) reject('E_REPLAY', 'header', `already accepted as B:${known.header.index} (${known.header.expert_name} v${known.expertVersion})`)
        const now = this.#now()
        const block = await validateBlock(submission.input, this.store, options.signal === undefined ? { now, deferCertificate: true } : { now, deferCertificate: true, signal: options.signal })
        checkSubmissionBlocks(block, submission.blocks)
        return { candidate: gate.admit(block, submission, car) }
      } catch (e) {
        throw this.#refused(e, submission.input.header)
      }
    })
  }

  /**
   * Log a refusal the node did not make itself (the PoL service's), as #refused does; `scope`
   * overrides refusal.ts (a validators' verdict blames the candidate's weights, so its block).
   */
  logRejection(e: RuleError, header: Uint8Array | null, scope?: RefusalScope): void {
    this.#refused(e, header, scope)
  }

  /** Let this node's keys vote for its current heads (at start; the node also votes after every block). */
  vote(): Promise<void> {
    return this.#enqueue(async () => this.#voteNow())
  }

  /** A vote from elsewhere (a checkpoint document with one or more signatures): pooled, applied at a quorum. */
  submitVote(bytes: Uint8Array): Promise<VoteOutcome> {
    return this.#enqueue(async () => this.#pool(decodeCheckpoint(bytes)))
  }

  /**
   * A whole checkpoint (a quorum's signatures), for instance from another node: applied when it is
   * the next in sequence; the one already applied at its number is a no-op; one that conflicts with
   * it is refused (E_CHECKPOINT: more than a third of the validators signed both).
   */
  submitCheckpoint(bytes: Uint8Array): Promise<Checkpoint> {
    return this.#enqueue(async () => {
      const checkpoint = decodeCheckpoint(bytes)
      const last = this.store.checkpoint()
      if (last !== null && checkpoint.number <= last.number) {
        const [row] = this.store.checkpoints(checkpoint.number, 1)
        if (row !== undefined && row.id === checkpointId(checkpoint).toString()) return decodeCheckpoint(row.bytes)
        reject('E_CHECKPOINT', 'checkpoint.number', `checkpoint ${checkpoint.number} is already final here as ${row?.id ?? '?'}: a conflicting quorum means validators signed both`)
      }
      checkCheckpoint(checkpoint, this.store, last, { quorum: true })
      this.#finalize(checkpoint)
      return checkpoint
    })
  }

  /** The node's own keys vote for the current heads, and the vote is pooled (in the queue). */
  #voteNow(): void {
    const vote = this.#signer?.vote(this.store) ?? null
    if (vote === null) return
    this.emit('vote', encodeCheckpoint(vote))
    this.#pool(vote)
  }

  /** Assemble a pooled quorum if this node's turn as aggregator has come (the network calls this now and then). */
  aggregate(): Promise<void> {
    return this.#enqueue(async () => {
      const checkpoint = this.#votes.retry(this.store, this.#mayAggregate)
      if (checkpoint !== null) this.#finalize(checkpoint)
    })
  }

  #pool(vote: Checkpoint): VoteOutcome {
    const outcome = this.#votes.add(vote, this.store, this.#mayAggregate)
    if (outcome.status === 'final') this.#finalize(outcome.checkpoint)
    return outcome
  }

  /** Store a checkpoint the rules accepted with a quorum, announce it, and vote again if the heads moved past it. */
  #finalize(checkpoint: Checkpoint): void {
    const bytes = encodeCheckpoint(checkpoint)
    this.store.putCheckpoint(checkpoint, bytes)
    this.emit('finalized', checkpoint, bytes)
    this.#voteNow()
  }

  /** Judge an already decoded submission (local tools: `blyan init`, importers). */
  submit(submission: Submission, options: { signal?: AbortSignal } = {}): Promise<AcceptedBlock> {
    return this.#enqueue(() => this.#judge(submission, options.signal))
  }

  async #judge(submission: Submission, signal: AbortSignal | undefined): Promise<AcceptedBlock> {
    try {
      const known = this.store.get(headerCid(submission.input.header))
      if (known !== undefined) return known // idempotent: a resubmission is not an error
      const block = await validateBlock(submission.input, this.store, signal === undefined ? { now: this.#now() } : { now: this.#now(), signal })
      checkSubmissionBlocks(block, submission.blocks)
      this.store.put(block, submission.blocks)
      this.emit('accepted', block)
      // A new A, C or D block may move a head: the node's keys vote now, before the next submission.
      if (block.header.chain_id !== 'B') this.#voteNow()
      return block
    } catch (e) {
      throw this.#refused(e, submission.input.header)
    }
  }

  /**
   * Log a RuleError as a rejection (except transient ones: an orphan may pass later) and return it.
   * Its scope says whether the header itself is refused or only this submission (refusal.ts).
   */
  #refused(e: unknown, header: Uint8Array | null, scope?: RefusalScope): unknown {
    if (!(e instanceof RuleError)) return e
    if (TRANSIENT_CODES.includes(e.code)) return e
    let cid: string | null = null
    let decoded: Header | null = null
    if (header !== null) {
      cid = headerCid(header).toString()
      try {
        decoded = decodeHeader(header)
      } catch {
        // an undecodable header is still named by the hash of its bytes
      }
    }
    const rejection: Rejection = {
      cid, code: e.code, field: e.field, message: e.message, at: this.#now(), chain: decoded?.chain_id ?? null, blockType: decoded?.block_type ?? null,
      scope: scope ?? (cid === null ? 'submission' : decoded === null ? 'block' : refusalScope(e, decoded))
    }
    this.store.addRejection(rejection)
    this.emit('rejected', rejection)
    return e
  }

  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(job, job)
    this.#queue = run.catch(() => undefined)
    return run
  }
}

/** A new chain B version without its certificate: a PoL candidate. */
function isCandidate(submission: Submission): boolean {
  if (submission.input.certificate !== undefined) return false
  try {
    const h = decodeHeader(submission.input.header)
    return h.chain_id === 'B' && h.supersedes !== null
  } catch {
    return false // the judge names what is wrong with it
  }
}
