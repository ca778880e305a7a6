/**
 * The full node: validates submissions with src/chain's rules and stores what passes.
 *
 * Submissions are judged one at a time (a queue), so two blocks that race can never both pass a
 * rule that depends on state (a balance, a reward already paid). Every rule runs before anything is
 * written; a refused submission leaves the store's content unchanged and is logged as a rejection.
 *
 * @module
 */
import { EventEmitter } from 'node:events'
import { headerCid, decodeHeader } from '../src/chain/header.ts'
import { checkSubmissionBlocks, decodeSubmission, type Submission } from '../src/chain/submission.ts'
import { validateBlock } from '../src/chain/validate.ts'
import type { AcceptedBlock } from '../src/chain/view.ts'
import { RuleError, TRANSIENT_CODES, reject } from '../src/errors.ts'
import type { ChainStore, Rejection } from './interface.ts'

export interface FullNodeOptions {
  /** The node's clock (ms); tests pin it. */
  readonly now?: () => number
  /** Largest submission CAR accepted. */
  readonly maxSubmissionBytes?: number
}

/**
 * Where a PoL candidate goes once every other rule passed (relay/pol.ts): it applies the admission
 * policy (throwing a RuleError to refuse) and queues the candidate for the validators.
 */
export interface CandidateGate<T> {
  admit(block: AcceptedBlock, submission: Submission, car: Uint8Array): T
}

export interface FullNodeEvents {
  accepted: [block: AcceptedBlock]
  rejected: [rejection: Rejection]
}

export class FullNode extends EventEmitter<FullNodeEvents> {
  readonly store: ChainStore
  readonly #now: () => number
  readonly #maxBytes: number | undefined
  #queue: Promise<unknown> = Promise.resolve()

  constructor(store: ChainStore, options: FullNodeOptions = {}) {
    super()
    this.store = store
    this.#now = options.now ?? Date.now
    this.#maxBytes = options.maxSubmissionBytes
  }

  /** Judge a submission CAR; resolves with the accepted block, rejects with the RuleError that refused it. */
  submitCar(car: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<AcceptedBlock> {
    return this.#enqueue(async () => {
      let submission: Submission
      try {
        submission = await decodeSubmission(car, this.#maxBytes)
      } catch (e) {
        throw this.#refused(e, null)
      }
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
      let submission: Submission
      try {
        submission = await decodeSubmission(car, this.#maxBytes)
      } catch (e) {
        throw this.#refused(e, null)
      }
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

  /** Log a refusal the node did not make itself (the PoL service's verdicts), as #refused does. */
  logRejection(e: RuleError, header: Uint8Array): void {
    this.#refused(e, header)
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
      return block
    } catch (e) {
      throw this.#refused(e, submission.input.header)
    }
  }

  /** Log a RuleError as a rejection (except transient ones: an orphan may pass later) and return it. */
  #refused(e: unknown, header: Uint8Array | null): unknown {
    if (!(e instanceof RuleError)) return e
    if (TRANSIENT_CODES.includes(e.code)) return e
    let cid: string | null = null
    let chain: Rejection['chain'] = null
    let blockType: string | null = null
    if (header !== null) {
      cid = headerCid(header).toString()
      try {
        const h = decodeHeader(header)
        chain = h.chain_id
        blockType = h.block_type
      } catch {
        // an undecodable header is still named by the hash of its bytes
      }
    }
    const rejection: Rejection = { cid, code: e.code, field: e.field, message: e.message, at: this.#now(), chain, blockType }
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
