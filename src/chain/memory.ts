/**
 * An in-memory chain store: a ChainView that accepts blocks through validate.ts.
 *
 * Used by tests, tools and light clients that keep state in memory; the full node implements the
 * same ChainView over SQLite. Queries walk the branch (balances are O(height)): fine for the sizes an
 * in-memory store holds, and simple enough to serve as the reference for the indexed stores.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { RuleError } from '../errors.ts'
import { compareBytes } from '../codec/cbor.ts'
import { checkCheckpoint, checkpointId, decodeCheckpoint, isFinal, type Checkpoint, type FinalChain } from './checkpoint.ts'
import { decodeHeader, headerCid, type ChainId, type Header } from './header.ts'
import type { PublicKey } from './keys.ts'
import { ledgerCredits } from './ledger.ts'
import { headOf } from './forkchoice.ts'
import { buildParamIndex } from './paramindex.ts'
import { refusalScope } from './refusal.ts'
import { validateBlock, type BlockInput, type ValidateOptions } from './validate.ts'
import type { AcceptedBlock, ChainView } from './view.ts'

export class MemoryChain implements ChainView {
  readonly #blocks = new Map<string, AcceptedBlock>()
  readonly #rejected = new Map<string, RuleError>()
  /** Linear chains: CIDs of blocks something extends (so not tips). */
  readonly #extended = new Set<string>()
  /** Finality checkpoints applied, in number order, with their bytes. */
  readonly #checkpoints: { readonly checkpoint: Checkpoint; readonly bytes: Uint8Array }[] = []

  get(cid: CID): AcceptedBlock | undefined {
    return this.#blocks.get(cid.toString())
  }

  isRejected(cid: CID): boolean {
    return this.#rejected.has(cid.toString())
  }

  /** Why a block was rejected, if it was. */
  rejection(cid: CID): RuleError | undefined {
    return this.#rejected.get(cid.toString())
  }

  get size(): number {
    return this.#blocks.size
  }

  balance(publicKey: PublicKey, at: CID | null): number {
    let total = 0
    for (const block of this.#branch(at)) {
      for (const c of ledgerCredits(block)) if (compareBytes(c.pub, publicKey) === 0) total += c.delta
    }
    return total
  }

  isRewarded(candidate: CID, at: CID | null): boolean {
    for (const block of this.#branch(at)) {
      if (block.header.block_type === 'reward' && block.certificate?.value.candidate.equals(candidate) === true) return true
    }
    return false
  }

  checkpoint(): Checkpoint | null {
    return this.#checkpoints.at(-1)?.checkpoint ?? null
  }

  /** Every checkpoint applied, oldest first, with its bytes (what a reload replays). */
  checkpoints(): readonly { readonly checkpoint: Checkpoint; readonly bytes: Uint8Array }[] {
    return this.#checkpoints
  }

  /**
   * Apply a finality checkpoint: the next in sequence, with a quorum of its signers (checkpoint.ts
   * rules; RuleError otherwise). The same checkpoint again is a no-op. Its heads become final.
   */
  applyCheckpoint(bytes: Uint8Array): Checkpoint {
    const checkpoint = decodeCheckpoint(bytes)
    const last = this.checkpoint()
    if (last !== null && checkpoint.number <= last.number) {
      const same = this.#checkpoints[checkpoint.number]?.checkpoint
      if (same !== undefined && checkpointId(same).equals(checkpointId(checkpoint))) return same
    }
    checkCheckpoint(checkpoint, this, last, { quorum: true })
    this.#checkpoints.push(Object.freeze({ checkpoint, bytes }))
    return checkpoint
  }

  /** True when a checkpoint made `block` final (chains A, C, D). */
  isFinal(block: AcceptedBlock): boolean {
    return isFinal(this, block, this.checkpoint())
  }

  /** Blocks from `at` back to the chain's first block. */
  *#branch(at: CID | null): Generator<AcceptedBlock> {
    let cid = at
    while (cid !== null) {
      const block = this.get(cid)
      if (block === undefined) return
      yield block
      cid = block.header.prev
    }
  }

  /**
   * Validate and store a block. A rule violation is remembered (so dependents get E_INVALID_DEP)
   * when it blames the block itself (refusal.ts): not for an orphan, a clock ahead of ours, or a bad
   * certificate attached to a version that cannot name its own.
   */
  async submit(input: BlockInput, options: ValidateOptions): Promise<AcceptedBlock> {
    try {
      const block = await validateBlock(input, this, options)
      this.add(block)
      return block
    } catch (e) {
      if (e instanceof RuleError) {
        const header = safeHeader(input.header)
        if (header !== null && refusalScope(e, header) === 'block') this.#rejected.set(headerCid(input.header).toString(), e)
      }
      throw e
    }
  }

  /** Store a block that validate.ts accepted. */
  add(block: AcceptedBlock): void {
    const key = block.cid.toString()
    if (this.#blocks.has(key)) return
    this.#blocks.set(key, block)
    if (block.header.prev !== null) this.#extended.add(block.header.prev.toString())
  }

  /** Every accepted block, in insertion order (dependencies first). */
  blocks(chain?: ChainId): AcceptedBlock[] {
    const all = [...this.#blocks.values()]
    return chain === undefined ? all : all.filter((b) => b.header.chain_id === chain)
  }

  /** Tips of a linear chain: accepted blocks nothing extends. */
  tips(chain: Exclude<ChainId, 'B'>): AcceptedBlock[] {
    return this.blocks(chain).filter((b) => !this.#extended.has(b.cid.toString()))
  }

  /** Fork choice head of a linear chain: the best tip on the final branch (forkchoice.ts). */
  head(chain: FinalChain): AcceptedBlock | undefined {
    const final = this.checkpoint()?.heads[chain] ?? null
    return headOf(this, this.tips(chain), final === null ? undefined : this.get(final))
  }

  /** Expert name -> newest certified version. */
  paramIndex(): Map<string, AcceptedBlock> {
    return buildParamIndex(this.blocks('B'))
  }
}

/** Header bytes decoded, for blaming a rejection on them; null for junk (nothing to remember). */
function safeHeader(bytes: Uint8Array): Header | null {
  try {
    return decodeHeader(bytes)
  } catch {
    return null
  }
}
