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
import { RuleError, TRANSIENT_CODES } from '../errors.ts'
import { compareBytes } from './cbor.ts'
import { decodeHeader, headerCid, type ChainId } from './header.ts'
import type { PublicKey } from './keys.ts'
import type { LedgerDocument } from './ledger.ts'
import { bestTip } from './forkchoice.ts'
import { buildParamIndex } from './paramindex.ts'
import { validateBlock, type BlockInput, type ValidateOptions } from './validate.ts'
import type { AcceptedBlock, ChainView } from './view.ts'

export class MemoryChain implements ChainView {
  readonly #blocks = new Map<string, AcceptedBlock>()
  readonly #rejected = new Map<string, RuleError>()
  /** Linear chains: CIDs of blocks something extends (so not tips). */
  readonly #extended = new Set<string>()

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
      const doc = block.document as LedgerDocument
      if (compareBytes(doc.to, publicKey) === 0) total += doc.amount
      if (block.header.block_type === 'transfer' && compareBytes(block.header.miner_pub, publicKey) === 0) total -= doc.amount
    }
    return total
  }

  isRewarded(candidate: CID, at: CID | null): boolean {
    for (const block of this.#branch(at)) {
      if (block.header.block_type === 'reward' && block.certificate?.value.candidate.equals(candidate) === true) return true
    }
    return false
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
   * unless the code is transient (an orphan, a timestamp ahead of our clock): those may pass later.
   */
  async submit(input: BlockInput, options: ValidateOptions): Promise<AcceptedBlock> {
    try {
      const block = await validateBlock(input, this, options)
      this.add(block)
      return block
    } catch (e) {
      if (e instanceof RuleError && !TRANSIENT_CODES.includes(e.code)) {
        const cid = safeCid(input.header)
        if (cid !== null) this.#rejected.set(cid, e)
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

  /** Fork choice head of a linear chain. */
  head(chain: Exclude<ChainId, 'B'>): AcceptedBlock | undefined {
    return bestTip(this.tips(chain))
  }

  /** Expert name -> newest certified version. */
  paramIndex(): Map<string, AcceptedBlock> {
    return buildParamIndex(this.blocks('B'))
  }
}

/** The CID of header bytes that at least decode, for remembering a rejection; null for junk. */
function safeCid(bytes: Uint8Array): string | null {
  try {
    decodeHeader(bytes)
  } catch {
    return null
  }
  return headerCid(bytes).toString()
}
