/**
 * Explorer search and lists over accepted blocks.
 *
 * One search box takes any of: a CID (header, payload, or PoL certificate; exact), a height
 * (`A:3`, `b:0`, or a bare integer for every chain), an expert name (exact, then prefix: `layer0`,
 * `layer0.expert`), a block type (`reward`), or a public key in hex (33-byte `miner_pub`, or a prefix
 * of at least 8 hex digits; chain C recipients match too). Every reading of the query that parses
 * is tried, so `12345678` is a height and a key prefix. Results are ordered by how well they match
 * (exact CID first), then chain, index, CID; each block appears once.
 *
 * ```ts
 * parseQuery('A:3')                               // [{ kind: 'height', chain: 'A', index: 3 }]
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
import { compareBlocks, summarize } from './summaries.ts'

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
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'type'; readonly blockType: string }
  | { readonly kind: 'key'; readonly hex: string }

/** How a block matched, best first: the sort key of results. */
const RANK = Object.freeze({
  headerCid: 0,
  payloadCid: 1,
  certificateCid: 2,
  height: 3,
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
/** A possible start of an expert name (`embedding`, `layer<L>.router`, `layer<L>.expert<E>`); match() does the rest. */
const NAME_RE = /^[a-z][a-z0-9.]*$/
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
  if (NAME_RE.test(lower)) out.push({ kind: 'name', name: lower })
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

/** The best rank at which `block` matches `query`, or null. */
function match(block: AcceptedBlock, query: Query): number | null {
  const h = block.header
  switch (query.kind) {
    case 'cid':
      if (block.cid.equals(query.cid)) return RANK.headerCid
      if (h.payload.equals(query.cid)) return RANK.payloadCid
      if (block.certificate?.cid.equals(query.cid) === true) return RANK.certificateCid
      return null
    case 'height':
      return h.index === query.index && (query.chain === null || h.chain_id === query.chain) ? RANK.height : null
    case 'name': {
      const name = h.expert_name
      if (name === null) return null
      if (name === query.name) return RANK.exactName
      if (!name.startsWith(query.name)) return null
      // `layer1` is not a prefix of `layer10...`: a query ending in a number matches that number whole.
      const next = name.charAt(query.name.length)
      return /\d$/.test(query.name) && /\d/.test(next) ? null : RANK.namePrefix
    }
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

/** Accepted blocks matching `query`, best match first, then chain, index, CID. */
export function findBlocks(query: string, blocks: Iterable<AcceptedBlock>, limit = SEARCH_LIMIT): AcceptedBlock[] {
  aint(limit, 'limit')
  const readings = parseQuery(query)
  if (readings.length === 0 || limit === 0) return []
  const hits: { block: AcceptedBlock; rank: number }[] = []
  for (const block of blocks) {
    let best: number | null = null
    for (const reading of readings) {
      const rank = match(block, reading)
      if (rank !== null && (best === null || rank < best)) best = rank
    }
    if (best !== null) hits.push({ block, rank: best })
  }
  hits.sort((a, b) => a.rank - b.rank || compareBlocks(a.block, b.block))
  return hits.slice(0, limit).map((h) => h.block)
}

/** {@link findBlocks} as summaries (the client's `search`). */
export function searchBlocks(query: string, blocks: Iterable<AcceptedBlock>, paramIndex: ReadonlyMap<string, AcceptedBlock>, limit = SEARCH_LIMIT): BlockSummary[] {
  return findBlocks(query, blocks, limit).map((b) => summarize(b, paramIndex))
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
  const rows: AcceptedBlock[] = []
  for (const b of blocks) {
    if (b.header.chain_id === chain && (before === undefined || b.header.index < before)) rows.push(b)
  }
  rows.sort((a, b) => b.header.index - a.header.index || b.header.timestamp - a.header.timestamp || compareBlocks(a, b))
  return rows.slice(0, limit).map((b) => summarize(b, paramIndex))
}
