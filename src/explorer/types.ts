/**
 * What the explorer shows, as plain structured-cloneable objects: block summaries and pages, chain B
 * as a graph, Verify's steps, the relay's rejections, a dataset's training record. The explorer's
 * modules produce them from the page's verified chain; the client contract (src/client/api.ts)
 * passes them to the UI.
 *
 * @module
 */
import type { ChainId } from '../chain/header.ts'
import type { Json } from '../chain/json.ts'
import type { RejectionInfo } from '../net/relay-api.ts'
import type { GenesisRecordView } from './record.ts'

export type { RejectionInfo } from '../net/relay-api.ts'

export type PolStatus = 'genesis' | 'certified' | 'none'

/** One accepted block, as lists and search results show it. */
export interface BlockSummary {
  readonly cid: string
  /**
   * The block's label in lists, block pages and search (summaries.ts `labelOf`): `A:3`, `C:12`,
   * `D:2` (chain and height); `B:layer0.expert3@v1` (expert name and version: chain B's `index` is
   * a depth in its DAG, 0 for every initial version, so it names no block).
   */
  readonly label: string
  /** Chain B: the expert name; chain D: the dataset's name (a decision: the dataset it decides); else null. */
  readonly name: string | null
  readonly chain: ChainId
  /** The header's `index`: the height on chains A, C, D; on chain B the depth in the DAG (1 + the deepest chain B block it depends on). */
  readonly index: number
  readonly blockType: string
  readonly expertName: string | null
  readonly layer: number | null
  readonly timestamp: number
  /** Compressed secp256k1 key, hex. */
  readonly minerPub: string
  readonly difficulty: number
  readonly payload: string
  readonly payloadSize: number
  readonly prev: string | null
  readonly dependsOn: readonly string[]
  readonly supersedes: string | null
  /** Chain B: expert version (0 initial). */
  readonly version: number
  /** Chain B: how the version is certified; chains A, C, D: `none`. */
  readonly pol: PolStatus
  /** Chain B: this block is the param index's current version of its expert. */
  readonly current: boolean
  /**
   * Chains A, C, D: `final` once a validator checkpoint (verified here) holds it, so no branch can
   * displace it; `pending` until then. null on chain B (its blocks are never displaced) or when not known.
   */
  readonly finality: 'final' | 'pending' | null
}

export interface BlockDetail extends BlockSummary {
  /** Every header field, as JSON (CIDs as strings, bytes as hex). */
  readonly header: { readonly [key: string]: Json }
  readonly headerHex: string
  /** The chain A block whose rules apply. */
  readonly meta: string
  /** Cumulative work (linear chains) or own work (chain B), decimal. */
  readonly work: string
  /** Decoded document (chains A, C, D). */
  readonly document: Json
  /** Chain B: the payload's tensors. */
  readonly tensors: readonly { readonly name: string; readonly dtype: string; readonly shape: readonly number[]; readonly offset: number; readonly size: number }[] | null
  /** PoL certificate, when the block has one. */
  readonly certificate: { readonly cid: string; readonly body: Json; readonly signers: readonly string[] } | null
  /** Chain B: tiles in the payload (the Verify action can check any one's Merkle path). */
  readonly tiles: number
  /** Blocks that name this one in depends_on or supersedes. */
  readonly dependents: readonly string[]
}

/**
 * A block page: the explorer's detail plus the Proof-of-Learning links the client finds in its own
 * chain (a certified version and the chain C reward minted for its certificate).
 */
export interface BlockPage extends BlockDetail {
  /** Chain B, PoL certified: the chain C reward whose `pol` names this block's certificate (`label`: `C:5`). */
  readonly reward: { readonly cid: string; readonly label: string; readonly amount: number | null; readonly to: string | null } | null
  /** Chain C reward: the chain B block whose certificate it pays for. */
  readonly rewardFor: string | null
}

export interface RejectionList {
  /** The relay that answered, null when none did. */
  readonly relay: string | null
  readonly rejections: readonly RejectionInfo[]
  /** Why no relay answered. */
  readonly error: string | null
}

/**
 * A chain D dataset's training record (its document's `record`): the file fetched whole through the
 * page's verified path (the cache, else a relay, each block checked against its CID, the UnixFS
 * tree's links and sizes against the root and the document's `record_size`), then parsed as a
 * genesis record (src/explorer/record.ts). The CID and size come from the page's own verified chain,
 * never from a relay's JSON. `code` on failure: `not-found` (no such chain D block here),
 * `no-record` (its document links none), `too-large`, `unavailable` (no relay served bytes that
 * match), `invalid` (the file's tree breaks a rule), `not-a-record` (verified bytes, but not a
 * training record: the message names the field).
 */
export type DatasetRecordFile =
  | { readonly ok: true; readonly cid: string; readonly size: number; readonly bytes: Uint8Array; readonly record: GenesisRecordView }
  | { readonly ok: false; readonly code: 'not-found' | 'no-record' | 'too-large' | 'unavailable' | 'invalid' | 'not-a-record'; readonly message: string }

/** Chain B as a graph: a node per block, edges for depends_on (within B) and supersedes. */
export interface DagView {
  readonly nodes: readonly BlockSummary[]
  readonly edges: readonly { readonly from: string; readonly to: string; readonly kind: 'depends_on' | 'supersedes' }[]
}

export type VerifyStepStatus = 'pending' | 'passed' | 'failed' | 'skipped'

export interface VerifyStep {
  /** Stable id: `cid`, `pow`, `signature`, `rules`, `pol`, `anchor`, `tile-root`, `tile-node-1`, ..., `tile-leaf`. */
  readonly id: string
  readonly label: string
  readonly status: VerifyStepStatus
  /** What was checked, with the numbers (e.g. `20 leading zero bits >= difficulty 8`) or why it failed. */
  readonly detail: string
}

export interface VerifyReport {
  readonly cid: string
  readonly ok: boolean
  readonly steps: readonly VerifyStep[]
  /** The trust anchor the chain was checked against. */
  readonly anchor: string | null
  /** The tile whose Merkle path was checked, if any. */
  readonly tile: number | null
}
