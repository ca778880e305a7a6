/**
 * The full node's chain store as the rest of the relay sees it (the API, the WebSocket feed, the
 * gateway, the PoL service), its refusal log, and its errors. The SQLite implementation is
 * chain-store.ts; others import these with `import type` where they can.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import type { Checkpoint } from '../../src/chain/checkpoint.ts'
import type { ChainId } from '../../src/chain/header.ts'
import type { RefusalScope } from '../../src/chain/refusal.ts'
import type { AcceptedBlock, ChainView } from '../../src/chain/view.ts'
import type { RuleCode } from '../../src/errors.ts'

/** A submission the node refused, kept with its reason for the explorer and `GET /api/rejections`. */
export interface Rejection {
  /** Header CID when the header bytes hash-decoded far enough to name one; null for junk. */
  readonly cid: string | null
  readonly code: RuleCode
  readonly field: string
  /** The full human message (`E_POW (nonce): ...`). */
  readonly message: string
  /** When it was refused, ms since the epoch. */
  readonly at: number
  /** Chain and block type, when the header decoded. */
  readonly chain: ChainId | null
  readonly blockType: string | null
  /**
   * `block`: the header itself is refused (whoever submits it); `cid` reads as rejected and its
   * children get E_INVALID_DEP. `submission`: only this submission was (its CAR, its certificate,
   * the node's admission policy); the block stays submittable (src/chain/refusal.ts).
   */
  readonly scope: RefusalScope
}

/**
 * The full node's persistent chain store: a ChainView (so src/chain validates against it directly)
 * plus what the relay serves. Every accepted block is written with all the IPLD blocks it brings in
 * one transaction: after a crash it is either fully present and indexed, or absent.
 */
export interface ChainStore extends ChainView {
  /**
   * Store a block that validateBlock accepted, with every IPLD block it brings (CID string -> bytes):
   * its header, its payload (a document block, or every UnixFS block of the file), files its
   * documents link (tokenizer, dataset content) and its certificate. Atomic and idempotent.
   */
  put(block: AcceptedBlock, blocks: ReadonlyMap<string, Uint8Array>): void
  /** Record a refused submission. */
  addRejection(rejection: Rejection): void
  /** Append a finality checkpoint that checkCheckpoint accepted (with a quorum) as the next in sequence. */
  putCheckpoint(checkpoint: Checkpoint, bytes: Uint8Array): void
  /** Checkpoints with number >= `from`, in order, at most `limit`: number, id (body CID) and bytes. */
  checkpoints(from: number, limit: number): { number: number; id: string; bytes: Uint8Array }[]
  /** Bytes of an IPLD block that some accepted block brought (never bytes of a refused submission). */
  getRaw(cid: CID): Uint8Array | undefined
  hasRaw(cid: CID): boolean
  /** CIDs of the IPLD blocks an accepted block brought, header first. */
  rawCidsOf(block: CID): CID[]
  /** Accepted blocks of one chain with from <= index <= to, by index then CID, at most `limit`. */
  headers(chain: ChainId, from: number, to: number, limit: number): AcceptedBlock[]
  /** Chain A index 0 block (the trust anchor), if any. With several, the fork-choice winner's ancestor. */
  genesis(): AcceptedBlock | undefined
  /** Head of a chain: fork choice for A, C, D (the best tip on the final branch); for B the highest index (ties: lowest CID). */
  head(chain: ChainId): AcceptedBlock | undefined
  /** Expert name -> newest certified version (src/chain/paramindex.ts rules). */
  paramIndex(): Map<string, AcceptedBlock>
  /** Newest rejections first. */
  rejections(limit: number, before?: number): Rejection[]
  /** The latest rejection of a header CID in `scope` (default `block`: the header itself refused), if any. */
  rejectionOf(cid: CID, scope?: RefusalScope): Rejection | undefined
  /** The first accepted chain B block whose payload is `payload` (the same weights), if any. */
  paramByPayload(payload: CID): AcceptedBlock | undefined
  /** Every accepted block in acceptance order (dependencies before dependents). */
  all(): Iterable<AcceptedBlock>
  /** Number of accepted blocks. */
  readonly size: number
  /**
   * A digest of everything accepted (blocks, IPLD bytes, derived index), independent of insertion
   * order: equal stores have equal hashes. Rejections are a log, not content, and are excluded.
   */
  contentHash(): string
  /** Re-verify the whole store (hashes, links, completeness); throws StoreDamagedError naming the first damaged item. */
  check(options?: { onProgress?: (done: number, total: number) => void }): void
  close(): void
}

/** The store on disk is damaged: the node refuses to serve it. `item` names what is wrong (a CID, a table). */
export class StoreDamagedError extends Error {
  override readonly name = 'StoreDamagedError'
  readonly item: string
  constructor(item: string, detail: string, options?: { cause?: unknown }) {
    super(`store damaged at ${item}: ${detail}`, options)
    this.item = item
  }
}

/** The store's file or directory cannot be written (read-only, or no permission): the node cannot accept blocks, so it does not start. */
export class StoreAccessError extends Error {
  override readonly name = 'StoreAccessError'
  readonly path: string
  constructor(path: string, detail: string, options?: { cause?: unknown }) {
    super(`${path} is not writable (${detail}): the node writes every block it accepts there; fix the permissions or choose another data directory`, options)
    this.path = path
  }
}
