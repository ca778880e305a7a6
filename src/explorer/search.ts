/**
 * Explorer search and lists over accepted blocks.
 *
 * One search box takes any of: a CID (header, payload, or PoL certificate; exact), a block's label
 * (summaries.ts `labelOf`: `A:3`, `D:1`, `B:layer0.expert3@v1`, also without `B:` or with `@1`), a
 * height (`A:3`; on chain B `B:1` is a depth in the DAG; a bare integer for every chain), an expert
 * name (exact, then prefix: `layer0`, `layer0.expert`, `B:layer0.expert3` for every version of it),
 * a dataset name (exact, then prefix: `genesis-train`; a decision matches the name of the dataset it
 * decides), a block type (`reward`), or a public key in hex (33-byte `miner_pub`, or a prefix of at
 * least 8 hex digits; chain C recipients match too). Every reading of the query that parses is
 * tried, so `12345678` is a height and a key prefix. Results are ordered by how well they match
 * (exact CID first), then chain, index, CID; each block appears once.
 *
 * ```ts
 * parseQuery('A:3')                               // [{ kind: 'height', chain: 'A', index: 3 }]
 * parseQuery('B:layer0.expert3@v1')               // [{ kind: 'label', name: 'layer0.expert3', version: 1 }]
 * searchBlocks('layer0.expert', chain.blocks(), chain.paramIndex()) // every layer-0 expert block
 * listBlocks(chain.blocks(), chain.paramIndex(), 'A', 20)           // newest 20 chain A blocks
 * ```
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { aint } from '../assert.ts'
import { toHex } from '../codec/cbor.ts'
import { BLOCK_TYPES, CHAIN_IDS, type ChainId } from '../chain/header.ts'
import type { LedgerDocument } from '../chain/ledger.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import type { BlockSummary } from './types.ts'
import { blockName, compareBlocks, summarize, type BlockLookup } from './summaries.ts'

/** Most results a search returns unless told otherwise. */
export const SEARCH_LIMIT = 200
/** Fewest hex digits a public-key prefix needs (fewer match too much to mean anything). */
export const MIN_KEY_PREFIX = 8
/** Hex digits of a compressed secp256k1 key (33 bytes). */
export const KEY_HEX_LENGTH = 66

/** One reading of a search query. */
export type Query =
  | { readonly kind: 'cid'; readonly cid: CID }
  | { readonly kind: 'height'; readonly chain: ChainId | null; readonly index: number }
  | { readonly kind: 'label'; readonly name: string; readonly version: number }
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'dataset'; readonly name: string }
  | { readonly kind: 'type'; readonly blockType: string }
  | { readonly kind: 'key'; readonly hex: string }

/** How a block matched, best first: the sort key of results. */
const RANK = Object.freeze({
  headerCid: 0,
  payloadCid: 1,
  certificateCid: 2,
  height: 3,
  label: 3,
  exactName: 4,
  blockType: 5,
  namePrefix: 6,
  exactKey: 7,
  keyPrefix: 8,
  recipient: 9
})

const HEIGHT_RE = /^([abcd]):(\d{1,15})$/i
const INTEGER_RE = /^\d{1,15}$/
const HEX_RE = /^(?:0x)?([0-9a-f]+)$/i
/** A chain B label (`B:layer0.expert3@v1`), also without `B:` or the `v`. */
const LABEL_RE = /^(?:b:)?([a-z][a-z0-9.]*)@v?(\d{1,9})$/i
/** A possible start of an expert name (`embedding`, `layer<L>.router`, `layer<L>.expert<E>`), also after `B:`; match() does the rest. */
const NAME_RE = /^(?:b:)?([a-z][a-z0-9.]*)$/
/** A possible start of a dataset name (src/chain/dataset.ts: `[a-z0-9][a-z0-9._-]*`) with a letter in it, so a number stays a height. */
const DATASET_RE = /^(?=.*[a-z])[a-z0-9][a-z0-9._-]{0,63}$/
const ALL_TYPES: readonly string[] = Object.freeze(Object.values(BLOCK_TYPES).flat())

/** Every reading of `query` that parses; [] for an empty or unreadable one. */
export function parseQuery(query: string): Query[] {
  if (typeof query !== 'string') throw new TypeError('query: expected string')
  const q = query.trim()
  if (q.length === 0 || q.length > 256) return []
  const out: Query[] = []
  const cid = parseCid(q)
  if (cid !== null) out.push({ kind: 'cid', cid })
  const height = HEIGHT_RE.exec(q)
  if (height !== null) out.push({ kind: 'height', chain: (height[1] as string).toUpperCase() as ChainId, index: Number(height[2]) })
  else if (INTEGER_RE.test(q)) out.push({ kind: 'height', chain: null, index: Number(q) })
  const lower = q.toLowerCase()
  const label = LABEL_RE.exec(lower)
  if (label !== null) out.push({ kind: 'label', name: label[1] as string, version: Number(label[2]) })
  const name = NAME_RE.exec(lower)?.[1]
  if (name !== undefined) out.push({ kind: 'name', name })
  if (DATASET_RE.test(lower)) out.push({ kind: 'dataset', name: lower })
  if (ALL_TYPES.includes(lower) && lower !== 'embedding') out.push({ kind: 'type', blockType: lower })
  const hex = HEX_RE.exec(q)?.[1]?.toLowerCase()
  if (hex !== undefined && hex.length >= MIN_KEY_PREFIX && hex.length <= KEY_HEX_LENGTH) out.push({ kind: 'key', hex })
  return out
}

/** A CID in any multibase the multiformats parser knows (base32 `b...`, base58btc `Qm...`/`z...`), case-insensitively for base32. */
function parseCid(q: string): CID | null {
  if (!/^[A-Za-z0-9]{8,}$/.test(q)) return null
  for (const text of q.startsWith('b') || q.startsWith('B') ? [q, q.toLowerCase()] : [q]) {
    try {
      return CID.parse(text)
    } catch {
      // not a CID in this spelling
    }
  }
  return null
}

/** The best rank at which `block` matches `query`, or null (`lookup` names a decision's dataset). */
function match(block: AcceptedBlock, query: Query, lookup: BlockLookup): number | null {
  const h = block.header
  switch (query.kind) {
    case 'cid':
      if (block.cid.equals(query.cid)) return RANK.headerCid
      if (h.payload.equals(query.cid)) return RANK.payloadCid
      if (block.certificate?.cid.equals(query.cid) === true) return RANK.certificateCid
      return null
    case 'height':
      return h.index === query.index && (query.chain === null || h.chain_id === query.chain) ? RANK.height : null
    case 'label':
      return h.chain_id === 'B' && h.expert_name === query.name && block.expertVersion === query.version ? RANK.label : null
    case 'name':
      return nameRank(h.expert_name, query.name)
    case 'dataset':
      return h.chain_id === 'D' ? nameRank(blockName(block, lookup), query.name) : null
    case 'type':
      return h.block_type === query.blockType ? RANK.blockType : null
    case 'key': {
      const miner = toHex(h.miner_pub)
      if (miner === query.hex) return RANK.exactKey
      if (miner.startsWith(query.hex)) return RANK.keyPrefix
      if (h.chain_id === 'C' && block.document !== null && toHex((block.document as LedgerDocument).to).startsWith(query.hex)) return RANK.recipient
      return null
    }
  }
}

/** How `name` matches a name query: exact, or a prefix ending at a number boundary; null if not. */
function nameRank(name: string | null, query: string): number | null {
  if (name === null) return null
  if (name === query) return RANK.exactName
  if (!name.startsWith(query)) return null
  // `layer1` is not a prefix of `layer10...`: a query ending in a number matches that number whole.
  const next = name.charAt(query.length)
  return /\d$/.test(query) && /\d/.test(next) ? null : RANK.namePrefix
}

/** A lookup by CID over `blocks` (for a decision's dataset name). */
export function lookupIn(blocks: readonly AcceptedBlock[]): BlockLookup {
  let byCid: Map<string, AcceptedBlock> | null = null
  return (cid) => {
    byCid ??= new Map(blocks.map((b) => [b.cid.toString(), b]))
    return byCid.get(cid.toString())
  }
}

/** Accepted blocks matching `query`, best match first, then chain, index, CID. */
export function findBlocks(query: string, blocks: Iterable<AcceptedBlock>, limit = SEARCH_LIMIT): AcceptedBlock[] {
  aint(limit, 'limit')
  const readings = parseQuery(query)
  if (readings.length === 0 || limit === 0) return []
  const all = [...blocks]
  const lookup = lookupIn(all)
  const hits: { block: AcceptedBlock; rank: number }[] = []
  for (const block of all) {
    let best: number | null = null
    for (const reading of readings) {
      const rank = match(block, reading, lookup)
      if (rank !== null && (best === null || rank < best)) best = rank
    }
    if (best !== null) hits.push({ block, rank: best })
  }
  hits.sort((a, b) => a.rank - b.rank || compareBlocks(a.block, b.block))
  return hits.slice(0, limit).map((h) => h.block)
}

/** {@link findBlocks} as summaries (the client's `search`). */
export function searchBlocks(query: string, blocks: Iterable<AcceptedBlock>, paramIndex: ReadonlyMap<string, AcceptedBlock>, limit = SEARCH_LIMIT): BlockSummary[] {
  const all = [...blocks]
  const lookup = lookupIn(all)
  return findBlocks(query, all, limit).map((b) => summarize(b, paramIndex, lookup))
}

/**
 * Blocks of one chain, newest first (highest index, then latest timestamp, then CID), at most
 * `limit`, only those below index `before` when given: the explorer's pages.
 */
export function listBlocks(
  blocks: Iterable<AcceptedBlock>,
  paramIndex: ReadonlyMap<string, AcceptedBlock>,
  chain: ChainId,
  limit: number,
  before?: number
): BlockSummary[] {
  if (!CHAIN_IDS.includes(chain)) throw new RangeError(`chain: expected one of ${CHAIN_IDS.join(', ')}, got ${String(chain)}`)
  aint(limit, 'limit')
  if (before !== undefined) aint(before, 'before')
  const all = [...blocks]
  const rows: AcceptedBlock[] = []
  for (const b of all) {
    if (b.header.chain_id === chain && (before === undefined || b.header.index < before)) rows.push(b)
  }
  rows.sort((a, b) => b.header.index - a.header.index || b.header.timestamp - a.header.timestamp || compareBlocks(a, b))
  const lookup = lookupIn(all)
  return rows.slice(0, limit).map((b) => summarize(b, paramIndex, lookup))
}
