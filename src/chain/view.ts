/**
 * What validation needs to know about blocks already accepted: the ChainView interface.
 *
 * Validation (validate.ts) is pure over this interface, so the light client (IndexedDB), the full
 * node (SQLite) and tests (memory.ts) run the same rules over their own storage.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import type { DatasetDocument } from './dataset.ts'
import type { Decision } from './decision.ts'
import type { Header } from './header.ts'
import type { PublicKey } from './keys.ts'
import type { LedgerDocument } from './ledger.ts'
import type { MetaDocument } from './meta.ts'
import type { IndexedTensors } from './params.ts'
import type { Certificate } from './pol.ts'

/** A block that passed every rule, with what validation derived from it. */
export interface AcceptedBlock {
  readonly cid: CID
  /** Header bytes (DAG-CBOR). */
  readonly bytes: Uint8Array
  readonly header: Header
  /** Decoded payload document (chains A, C, D); null on chain B. */
  readonly document: MetaDocument | LedgerDocument | DatasetDocument | Decision | null
  /** Chain B: the payload's tensor index. */
  readonly tensors: IndexedTensors | null
  /** Chain B new versions and chain C rewards: the PoL certificate and its CID. */
  readonly certificate: { readonly cid: CID; readonly bytes: Uint8Array; readonly value: Certificate } | null
  /** The chain A block whose rules apply (itself for chain A). */
  readonly meta: CID
  /** Linear chains: cumulative work 2^difficulty from the chain's first block; chain B: the block's own work. */
  readonly work: bigint
  /** Chain B: version of the expert, 0 for an initial version, supersedes' version + 1 after; 0 elsewhere. */
  readonly expertVersion: number
}

export interface ChainView {
  /** An accepted block, or undefined. */
  get(cid: CID): AcceptedBlock | undefined
  /** True when the block was rejected by a rule (so dependents are invalid, not orphans). */
  isRejected(cid: CID): boolean
  /** Chain C: balance of `publicKey` after block `at` (null: before the first block, so 0). */
  balance(publicKey: PublicKey, at: CID | null): number
  /** Chain C: true when a reward for `candidate` is in the branch ending at `at`. */
  isRewarded(candidate: CID, at: CID | null): boolean
  /** The newest finality checkpoint applied (its heads are final), or null before the first. */
  checkpoint(): Finality | null
}

/**
 * What a view knows of finality: the newest checkpoint's number and the final block of each linear
 * chain (checkpoint.ts holds the whole document; any Checkpoint is a Finality).
 */
export interface Finality {
  readonly number: number
  readonly heads: { readonly A: CID; readonly C: CID | null; readonly D: CID | null }
}
