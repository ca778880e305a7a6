/**
 * Words and small rules for the explorer: what each chain holds, how a block is named in lists,
 * merging live blocks into a list, and how a header field is shown.
 *
 * @module
 */
import type { BlockSummary } from '../workers/api.ts'
import type { Json } from '../chain/json.ts'
import type { ExplorerChain } from './routes.ts'
import { looksLikeCid } from './format.ts'

export const CHAIN_INFO: Readonly<Record<ExplorerChain, { readonly name: string; readonly about: string }>> = Object.freeze({
  A: { name: 'Meta', about: 'Architecture, proof-of-work and PoL rules, rewards and the validator set; linear from the genesis block, the trust anchor.' },
  B: { name: 'Parameters', about: 'The model: an embedding block, a router per layer and one block per expert; a DAG, new versions supersede old ones.' },
  C: { name: 'Ledger', about: 'Transfers, and rewards paid only for PoL-certified blocks; linear.' },
  D: { name: 'Datasets', about: 'Training and validation data by content CID, with licence and splits; linear.' }
})

/** How a block is named in a list: `layer0.expert3`, `meta`, `reward`. */
export function blockTitle(b: BlockSummary): string {
  return b.expertName ?? b.blockType
}

/** `A:3`, `B:12`: chain and height (chain B's index is its depth in the DAG). */
export function blockPosition(b: Pick<BlockSummary, 'chain' | 'index'>): string {
  return `${b.chain}:${b.index}`
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
