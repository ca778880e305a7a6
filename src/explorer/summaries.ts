/**
 * Blocks as the explorer shows them: a {@link BlockSummary} per accepted block for lists, search
 * results and the DAG, and a {@link BlockDetail} with every header field for the block page.
 *
 * Pure functions over blocks this page accepted (src/chain/view.ts `AcceptedBlock`): nothing here
 * checks anything; src/explorer/verify.ts re-checks a block from its bytes.
 *
 * Every block has a **label**, the one name lists, block pages and search use for it
 * ({@link blockLabel}): `A:3`, `C:12`, `D:2` on the linear chains (chain and height), and
 * `B:layer0.expert3@v1` on chain B (expert name and expert version), because chain B is a DAG:
 * its header `index` is a depth (every initial version is at 0), which tells no block apart.
 *
 * ```ts
 * const index = chain.paramIndex()
 * const rows = chain.blocks('B').map((b) => summarize(b, index))
 * const page = detail(chain.get(cid)!, index, chain.blocks())
 * ```
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { compareCids, toHex } from '../codec/cbor.ts'
import type { DatasetDocument } from '../chain/dataset.ts'
import type { Decision } from '../chain/decision.ts'
import { CHAIN_IDS, type ChainId } from '../chain/header.ts'
import { toJson, type Json } from '../chain/json.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import type { PayloadIndex } from '../tensor/payload.ts'
import { tileCount } from '../tensor/tiles.ts'
import type { BlockDetail, BlockSummary, PolStatus } from './types.ts'

/**
 * How a chain B block is certified. Every accepted chain B block is (protocol.md §8): an initial
 * version (`supersedes` null) by a validator's signature under its rules, which validate.ts requires
 * (`genesis`); a later version by the PoL certificate it was accepted with (`certified`). `none` for
 * chains A, C and D, and for a later version whose record lacks its certificate (a store that did
 * not keep it: nothing here certifies it).
 */
export function polStatus(block: AcceptedBlock): PolStatus {
  if (block.header.chain_id !== 'B') return 'none'
  if (block.certificate !== null) return 'certified'
  return block.header.supersedes === null ? 'genesis' : 'none'
}

/** True when `block` is the param index's current version of its expert. */
export function isCurrent(block: AcceptedBlock, paramIndex: ReadonlyMap<string, AcceptedBlock>): boolean {
  const name = block.header.expert_name
  if (block.header.chain_id !== 'B' || name === null) return false
  return paramIndex.get(name)?.cid.equals(block.cid) === true
}

/**
 * A block's label: `<chain>:<height>` on the linear chains A, C, D (`A:0`, `C:12`), and
 * `B:<expert name>@v<expert version>` on chain B (`B:embedding@v0`, `B:layer0.expert3@v1`). Search
 * reads every label back (src/explorer/search.ts). Two competing versions of one expert (the same
 * version number, which the param index picks between) share a label; their CIDs tell them apart.
 */
export function labelOf(chain: ChainId, index: number, expertName: string | null, version: number): string {
  return chain === 'B' && expertName !== null ? `B:${expertName}@v${version}` : `${chain}:${index}`
}

/** {@link labelOf} for an accepted block. */
export function blockLabel(block: AcceptedBlock): string {
  const h = block.header
  return labelOf(h.chain_id, h.index, h.expert_name, block.expertVersion)
}

/** Finds an accepted block by CID (the page's chain), for names a block takes from another. */
export type BlockLookup = (cid: CID) => AcceptedBlock | undefined

/**
 * What a block is called besides its label: a chain B block's expert name; a chain D `dataset`'s
 * name (its document's `name`) and a `decision`'s, the name of the dataset it decides (when `lookup`
 * finds that block); null otherwise.
 */
export function blockName(block: AcceptedBlock, lookup?: BlockLookup): string | null {
  const h = block.header
  if (h.chain_id === 'B') return h.expert_name
  if (h.chain_id !== 'D' || block.document === null) return null
  if (h.block_type === 'dataset') return (block.document as DatasetDocument).name
  const decided = lookup?.((block.document as Decision).dataset)
  return decided !== undefined && decided.header.block_type === 'dataset' && decided.document !== null ? (decided.document as DatasetDocument).name : null
}

/** One accepted block as lists, search results and the DAG show it (`lookup` names a decision's dataset). */
export function summarize(block: AcceptedBlock, paramIndex: ReadonlyMap<string, AcceptedBlock>, lookup?: BlockLookup): BlockSummary {
  const h = block.header
  return Object.freeze({
    cid: block.cid.toString(),
    label: blockLabel(block),
    name: blockName(block, lookup),
    chain: h.chain_id,
    index: h.index,
    blockType: h.block_type,
    expertName: h.expert_name,
    layer: h.layer_id,
    timestamp: h.timestamp,
    minerPub: toHex(h.miner_pub),
    difficulty: h.difficulty,
    payload: h.payload.toString(),
    payloadSize: h.payload_size,
    prev: h.prev === null ? null : h.prev.toString(),
    dependsOn: Object.freeze(h.depends_on.map((d) => d.toString())),
    supersedes: h.supersedes === null ? null : h.supersedes.toString(),
    version: block.expertVersion,
    pol: polStatus(block),
    current: isCurrent(block, paramIndex),
    finality: null
  })
}

/** A summary (or detail) with its finality, from the page's checkpoints (`isFinal`: MemoryChain.isFinal). */
export function withFinality<T extends BlockSummary>(summary: T, block: AcceptedBlock, isFinal: (block: AcceptedBlock) => boolean): T {
  if (block.header.chain_id === 'B') return summary
  return Object.freeze({ ...summary, finality: isFinal(block) ? 'final' : 'pending' })
}

/** Blocks that name `cid` in `depends_on` or `supersedes`, ordered by chain, index, CID. */
export function dependentsOf(cid: CID, blocks: Iterable<AcceptedBlock>): AcceptedBlock[] {
  const out: AcceptedBlock[] = []
  for (const b of blocks) {
    const h = b.header
    if (h.depends_on.some((d) => d.equals(cid)) || h.supersedes?.equals(cid) === true) out.push(b)
  }
  return out.sort(compareBlocks)
}

/**
 * Everything the block page shows. `allBlocks` are the accepted blocks searched for dependents.
 * `payloadIndex` gives the tensors of a chain B block accepted without its payload (light mode:
 * the index decoded from its verified first tile, src/tensor/payload.ts `decodePayloadIndex`);
 * otherwise tensors come from the block's record, and are null when it has none.
 */
export function detail(
  block: AcceptedBlock,
  paramIndex: ReadonlyMap<string, AcceptedBlock>,
  allBlocks: Iterable<AcceptedBlock>,
  payloadIndex?: PayloadIndex | null
): BlockDetail {
  const isB = block.header.chain_id === 'B'
  const certificate = block.certificate
  const { signatures, ...body } = certificate?.value ?? { signatures: [] }
  const all = [...allBlocks]
  return Object.freeze({
    ...summarize(block, paramIndex, (cid) => all.find((b) => b.cid.equals(cid))),
    header: toJson(block.header) as { [key: string]: Json },
    headerHex: toHex(block.bytes),
    meta: block.meta.toString(),
    work: block.work.toString(),
    document: toJson(block.document),
    tensors: isB ? tensorsOf(payloadIndex ?? block.tensors) : null,
    certificate: certificate === null ? null : Object.freeze({
      cid: certificate.cid.toString(),
      body: toJson(body),
      signers: Object.freeze(signatures.map((s) => toHex(s.validator)))
    }),
    tiles: isB ? tileCount(block.header.payload_size) : 0,
    dependents: Object.freeze(dependentsOf(block.cid, all).map((b) => b.cid.toString()))
  })
}

/**
 * The tensors of an index with their byte ranges. validate.ts records the payload's full index
 * (a PayloadIndex, typed as the IndexedTensors the shape rule reads), so offset and size are there;
 * 0 only for a record that kept names, dtypes and shapes alone.
 */
function tensorsOf(index: AcceptedBlock['tensors'] | PayloadIndex | null): BlockDetail['tensors'] {
  if (index === null) return null
  return Object.freeze(index.tensors.map((t) => {
    const located = t as Partial<PayloadIndex['tensors'][number]>
    return Object.freeze({
      name: t.name,
      dtype: t.dtype,
      shape: Object.freeze([...t.shape]),
      offset: located.offset ?? 0,
      size: located.size ?? 0
    })
  }))
}

/** Explorer order of blocks: chain (A..D), index, then CID bytes. */
export function compareBlocks(a: AcceptedBlock, b: AcceptedBlock): number {
  const ca = CHAIN_IDS.indexOf(a.header.chain_id)
  const cb = CHAIN_IDS.indexOf(b.header.chain_id)
  if (ca !== cb) return ca - cb
  if (a.header.index !== b.header.index) return a.header.index - b.header.index
  return compareCids(a.cid, b.cid)
}
