/**
 * Words and small rules for the explorer: what each chain holds, how a block is named in lists,
 * merging live blocks into a list, and how a header field is shown.
 *
 * @module
 */
import type { BlockSummary } from '../client/api.ts'
import type { Json } from '../chain/json.ts'
import type { GenesisRecordView, RecordLossPair } from '../explorer/record.ts'
import type { ExplorerChain } from './routes.ts'
import { looksLikeCid } from './format.ts'

export const CHAIN_INFO: Readonly<Record<ExplorerChain, { readonly name: string; readonly about: string }>> = Object.freeze({
  A: { name: 'Meta', about: 'Architecture, proof-of-work and PoL rules, rewards and the validator set; linear from the genesis block, the trust anchor.' },
  B: { name: 'Parameters', about: 'The model: an embedding block, a router per layer and one block per expert; a DAG, new versions supersede old ones.' },
  C: { name: 'Ledger', about: 'Transfers, and rewards paid only for PoL-certified blocks; linear.' },
  D: { name: 'Datasets', about: 'Training and validation data by content CID, with licence and splits; linear.' }
})

/** What a block is, as its page's title says: `layer0.expert3`, `genesis-train` (a dataset, or its decision), `meta`, `reward`. */
export function blockTitle(b: Pick<BlockSummary, 'name' | 'blockType'>): string {
  return b.name ?? b.blockType
}

/**
 * The search box's examples, each a query that finds a block on any network: the genesis (`A:0`)
 * and a chain B label (summaries.ts `labelOf`; every model has a layer 0 with at least 2 experts).
 */
export const SEARCH_EXAMPLES = Object.freeze({ height: 'A:0', label: 'B:layer0.expert1@v0', name: 'layer0' })

/** The search box's placeholder: what it takes, with {@link SEARCH_EXAMPLES}. */
export const SEARCH_PLACEHOLDER = `CID, ${SEARCH_EXAMPLES.height}, ${SEARCH_EXAMPLES.label}, a name or a key`

/**
 * What to say when a query finds nothing, beyond the list of what search takes: `B:3` reads as a
 * depth in chain B's DAG, not a position, so say how chain B blocks are named instead.
 */
export function searchMissHint(query: string): string | null {
  const depth = /^b:(\d+)$/i.exec(query.trim())
  if (depth === null) return null
  return `Chain B is a DAG, not a line: B:${depth[1]} reads as depth ${depth[1]} (the header's index), and no block here is that deep. Chain B blocks are named by expert and version, like ${SEARCH_EXAMPLES.label}; ${SEARCH_EXAMPLES.label.replace(/@v\d+$/, '')} lists every version of that expert.`
}

/** Where a block sits: `height 3` on chains A, C, D; on chain B `depth 0 in the DAG` (its index names no block). */
export function blockPosition(b: Pick<BlockSummary, 'chain' | 'index'>): string {
  return b.chain === 'B' ? `depth ${b.index} in the DAG` : `height ${b.index}`
}

/**
 * What a header field means where its raw value misleads: `version` is the header format's version,
 * not the expert's; chain B's `index` is a depth, not a position; `pol` is set on chain C rewards
 * only, so it is null on a certified chain B version, whose certificate lives elsewhere. null for
 * other fields.
 */
export function headerFieldNote(
  name: string,
  b: Pick<BlockSummary, 'chain' | 'version' | 'pol' | 'label'> & { readonly header: { readonly [key: string]: Json } }
): string | null {
  if (name === 'version') {
    return b.chain === 'B' ? `header format version, not the expert's: this block is expert version v${b.version}` : 'header format version'
  }
  if (name === 'index' && b.chain === 'B') {
    return `depth in chain B's DAG: 1 + the deepest chain B block it depends on, 0 for every initial version; the label ${b.label} names the block`
  }
  if (name !== 'pol' || b.header['pol'] !== null) return null
  const only = 'set only on chain C rewards'
  if (b.chain !== 'B') return `${only} (the PoL certificate a reward pays for)`
  switch (b.pol) {
    case 'genesis':
      return `${only}. An initial version has no PoL certificate: its signature by a validator of its rules (miner_pub) certifies it`
    case 'certified':
      return `${only}. This version's PoL certificate names this block, so the block cannot link it: the certificate came with the block's submission (Proof of Learning, above), and the chain C reward that pays for this version links it in its own pol field`
    default:
      return `${only}. A new version's PoL certificate names the block, so the block cannot link it; this page has not found it yet (it looks in the chain C reward that pays for the version)`
  }
}

/** Put `fresh` blocks into a newest-first list, once each, keeping it newest first. */
export function mergeBlocks(list: readonly BlockSummary[], fresh: readonly BlockSummary[]): BlockSummary[] {
  const seen = new Set(list.map((b) => b.cid))
  const added: BlockSummary[] = []
  for (const b of fresh) {
    if (seen.has(b.cid)) continue
    seen.add(b.cid)
    added.push(b)
  }
  if (added.length === 0) return list.slice()
  return [...added, ...list].sort((a, b) => b.index - a.index || b.timestamp - a.timestamp || (a.cid < b.cid ? -1 : a.cid > b.cid ? 1 : 0))
}

/** How one header field's value is drawn. */
export type FieldView =
  | { readonly kind: 'null' }
  | { readonly kind: 'cid'; readonly value: string }
  | { readonly kind: 'cids'; readonly values: readonly string[] }
  | { readonly kind: 'hex'; readonly value: string }
  | { readonly kind: 'time'; readonly value: number }
  | { readonly kind: 'text'; readonly value: string }
  | { readonly kind: 'json'; readonly value: string }

/** Decide how a header field (as the API's JSON gives it) is shown. */
export function fieldView(key: string, value: Json): FieldView {
  if (value === null) return { kind: 'null' }
  if (typeof value === 'string') {
    if (looksLikeCid(value)) return { kind: 'cid', value }
    if (/^[0-9a-f]{40,}$/.test(value)) return { kind: 'hex', value }
    return { kind: 'text', value }
  }
  if (typeof value === 'number') return key === 'timestamp' ? { kind: 'time', value } : { kind: 'text', value: String(value) }
  if (typeof value === 'boolean') return { kind: 'text', value: String(value) }
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' && looksLikeCid(v))) return { kind: 'cids', values: value as string[] }
  return { kind: 'json', value: JSON.stringify(value, null, 2) }
}

/** A PoL certificate body (as the API's JSON gives it) in the terms the block page shows. */
export interface CertificateView {
  readonly lossBefore: number | null
  readonly lossAfter: number | null
  /** (before - after) / before. */
  readonly improvement: number | null
  readonly slice: { readonly dataset: string; readonly start: number; readonly count: number } | null
  /** The beacon: the chain A block whose rules and validator set applied. */
  readonly meta: string | null
  readonly base: string | null
}

/** Read a certificate body's fields; a field of the wrong type reads as null (display only). */
export function certificateView(body: Json): CertificateView {
  const o = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {}) as { readonly [k: string]: Json }
  const num = (v: Json | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)
  const str = (v: Json | undefined): string | null => (typeof v === 'string' ? v : null)
  const lossBefore = num(o['loss_before'])
  const lossAfter = num(o['loss_after'])
  const s = o['slice']
  const sl = (typeof s === 'object' && s !== null && !Array.isArray(s) ? s : {}) as { readonly [k: string]: Json }
  const dataset = str(sl['dataset'])
  const start = num(sl['start'])
  const count = num(sl['count'])
  return {
    lossBefore,
    lossAfter,
    improvement: lossBefore !== null && lossAfter !== null && lossBefore > 0 ? (lossBefore - lossAfter) / lossBefore : null,
    slice: dataset !== null && start !== null && count !== null ? { dataset, start, count } : null,
    meta: str(o['meta']),
    base: str(o['base'])
  }
}

// ------------------------------------------------------------------------------------ training record

/** The training record a chain D block's document links (`record`, `record_size`), or null. */
export function datasetRecordLink(b: { readonly chain: string; readonly document: Json }): { readonly cid: string; readonly size: number } | null {
  if (b.chain !== 'D') return null
  const d = b.document
  if (typeof d !== 'object' || d === null || Array.isArray(d)) return null
  const cid = d['record']
  const size = d['record_size']
  return typeof cid === 'string' && typeof size === 'number' && Number.isSafeInteger(size) && size > 0 ? { cid, size } : null
}

/** The explorer's goal for the least-used expert: at least this fraction of its uniform share. */
export const USAGE_GOAL = 0.25

/** A loss in nats per token, three decimals (`5.939`). */
export function formatNats(nats: number): string {
  return Number.isFinite(nats) ? nats.toFixed(3) : '–'
}

/** A share of routing slots as a percentage, one decimal (`13.1%`). */
export function formatShare(share: number): string {
  return `${(share * 100).toFixed(1)}%`
}

/** The losses table: a row per evaluation set the record has. */
export function recordLossRows(record: GenesisRecordView): { readonly id: 'heldout' | 'tinystories'; readonly label: string; readonly pair: RecordLossPair }[] {
  const rows: { id: 'heldout' | 'tinystories'; label: string; pair: RecordLossPair }[] = [{ id: 'heldout', label: 'held-out generated pool', pair: record.evaluation.heldout }]
  if (record.evaluation.tinystories !== null) rows.push({ id: 'tinystories', label: 'TinyStories validation slice', pair: record.evaluation.tinystories })
  return rows
}

export interface UsageCell {
  readonly expert: number
  readonly share: number
  /** share x n_experts: 1 is the uniform share. */
  readonly ratio: number
  /** Bar height, 0..1 of the chart's scale. */
  readonly height: number
  /** Below the goal ({@link USAGE_GOAL} of uniform). */
  readonly low: boolean
  /** `layer 2 expert 5: 13.1% of routing slots (uniform 12.5%)`. */
  readonly title: string
}

export interface UsageView {
  readonly experts: number
  readonly uniform: number
  /** Where the uniform share sits, 0..1 of the chart's scale (the same for every layer). */
  readonly uniformAt: number
  readonly layers: readonly { readonly layer: number; readonly cells: readonly UsageCell[]; readonly minRatio: number }[]
  readonly minRatio: number
  readonly meetsGoal: boolean
  /** `least-used expert: 0.43 x its uniform share (the goal is >= 0.25)`. */
  readonly summary: string
}

/**
 * The per-layer expert usage as bars on one scale for every layer (so layers compare), the top at
 * the largest share or 1.5 x uniform, whichever is higher (the uniform mark never sits at the top).
 */
export function usageView(record: GenesisRecordView): UsageView {
  const experts = record.model.architecture.n_experts
  const uniform = 1 / experts
  const rows = record.evaluation.expert_usage
  const top = Math.max(uniform * 1.5, ...rows.flat())
  const layers = rows.map((shares, layer) => {
    const cells = shares.map((share, expert) => ({
      expert,
      share,
      ratio: share * experts,
      height: share / top,
      low: share * experts < USAGE_GOAL,
      title: `layer ${layer} expert ${expert}: ${formatShare(share)} of routing slots (uniform ${formatShare(uniform)})`
    }))
    return { layer, cells, minRatio: Math.min(...cells.map((c) => c.ratio)) }
  })
  const minRatio = record.evaluation.min_usage_vs_uniform
  return {
    experts,
    uniform,
    uniformAt: uniform / top,
    layers,
    minRatio,
    meetsGoal: minRatio >= USAGE_GOAL,
    summary: `least-used expert: ${minRatio.toFixed(2)} x its uniform share (the goal is >= ${USAGE_GOAL})`
  }
}

/** A hex digest or commit cut to its head (`5a6171384b7c`); `unknown` and short values as they are. */
export function shortHex(value: string, head = 12): string {
  return /^[0-9a-f]+$/.test(value) && value.length > head ? value.slice(0, head) : value
}
