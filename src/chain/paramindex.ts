/**
 * The param index: expert name -> the block holding its newest certified version.
 *
 * Every chain B block in a ChainView is certified: an initial version by a validator's signature
 * (certified by the genesis rules), a later one by its PoL certificate. The newest version is the
 * highest `expertVersion`; between equal versions (two improvements of one base) the lower certified
 * loss wins, then the lower CID, so every node builds the same index.
 *
 * The index is itself a DAG-CBOR document, so it has a CID a relay can serve and a client can pin.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { DAG_CBOR, cidOf, compareCids, decodeCbor, encodeCbor, isProtocolCid } from '../codec/cbor.ts'
import { parseExpertName } from './header.ts'
import * as S from '../codec/schema.ts'
import type { AcceptedBlock } from './view.ts'

export const PARAM_INDEX_KIND = 'blyan/param-index'

/** Negative when `a` should be preferred to `b` as the current version of one expert. */
export function compareVersions(a: AcceptedBlock, b: AcceptedBlock): number {
  if (a.expertVersion !== b.expertVersion) return b.expertVersion - a.expertVersion
  const la = a.certificate?.value.loss_after ?? Infinity
  const lb = b.certificate?.value.loss_after ?? Infinity
  if (la !== lb) return la < lb ? -1 : 1
  return compareCids(a.cid, b.cid)
}

/** Newest certified version of every expert among `blocks` (non-B blocks are ignored). */
export function buildParamIndex(blocks: Iterable<AcceptedBlock>): Map<string, AcceptedBlock> {
  const index = new Map<string, AcceptedBlock>()
  for (const block of blocks) {
    const name = block.header.expert_name
    if (block.header.chain_id !== 'B' || name === null) continue
    const current = index.get(name)
    if (current === undefined || compareVersions(block, current) < 0) index.set(name, block)
  }
  return index
}

export interface ParamIndexDocument {
  readonly kind: typeof PARAM_INDEX_KIND
  readonly version: 1
  /** Expert name -> chain B block CID. */
  readonly entries: Readonly<Record<string, CID>>
}

export function paramIndexDocument(index: ReadonlyMap<string, AcceptedBlock>): ParamIndexDocument {
  const entries: Record<string, CID> = {}
  for (const [name, block] of index) entries[name] = block.cid
  return Object.freeze({ kind: PARAM_INDEX_KIND, version: 1, entries: Object.freeze(entries) })
}

export function encodeParamIndex(doc: ParamIndexDocument): { bytes: Uint8Array; cid: CID } {
  const bytes = encodeCbor(doc)
  return { bytes, cid: cidOf(bytes, DAG_CBOR) }
}

export function decodeParamIndex(bytes: Uint8Array): ParamIndexDocument {
  const o = S.exactMap(decodeCbor(bytes, 4 * 1024 * 1024, 'param-index'), ['kind', 'version', 'entries'], '')
  if (o['kind'] !== PARAM_INDEX_KIND) reject('E_SCHEMA', 'kind', `expected "${PARAM_INDEX_KIND}"`)
  if (o['version'] !== 1) reject('E_VERSION', 'version', `param index version ${String(o['version'])}`)
  const raw = S.exactMap(o['entries'], Object.keys(o['entries'] ?? {}), 'entries')
  const entries: Record<string, CID> = {}
  for (const name of Object.keys(raw)) {
    if (parseExpertName(name) === null) reject('E_SCHEMA', `entries.${name}`, 'not a parameter name')
    const c = S.cid(raw, name, 'entries')
    if (!isProtocolCid(c, [DAG_CBOR])) reject('E_SCHEMA', `entries.${name}`, 'not a block CID')
    entries[name] = c
  }
  return Object.freeze({ kind: PARAM_INDEX_KIND, version: 1, entries: Object.freeze(entries) })
}
