/**
 * The model to run, read from a relay: the chain A head's rules (architecture, tokenizer link) and
 * the param index's blocks. Every header and document fetched is checked against its CID; the CIDs
 * themselves come from the relay's status (issue-5's header sync will check signatures and rules
 * too, against a pinned genesis).
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { cidMatches } from '../codec/cbor.ts'
import { decodeHeader } from '../chain/header.ts'
import { decodeMeta, type MetaDocument } from '../chain/meta.ts'
import { reject } from '../errors.ts'
import type { BlockGetter, BlockRef, ModelSource } from '../model/source.ts'
import { fetchUnixfsFile } from '../tensor/tiles.ts'

export interface RelayModel extends ModelSource {
  readonly meta: MetaDocument
  readonly genesis: string
  /** Tokenizer file bytes (verified), when chain A links one. */
  readonly tokenizer: Uint8Array | null
}

/** A block from `get`, checked against its CID (E_PAYLOAD when it does not hash to it). */
async function verified(get: BlockGetter, cid: CID, what: string): Promise<Uint8Array> {
  const bytes = await get(cid)
  if (!cidMatches(cid, bytes)) reject('E_PAYLOAD', what, `${cid} does not match the bytes served`)
  return bytes
}

export async function fetchRelayModel(relay: string, get: BlockGetter, fetchImpl: typeof fetch = fetch): Promise<RelayModel> {
  const base = relay.replace(/\/+$/, '')
  const res = await fetchImpl(`${base}/api/status`)
  if (!res.ok) throw new Error(`${base}/api/status: HTTP ${res.status}`)
  const status = (await res.json()) as { genesis: string | null; heads: { A: { cid: string } | null }; paramIndex: { entries: Record<string, string> } }
  if (status.genesis === null || status.heads.A === null) throw new Error(`${base}: the relay has no chain A yet`)
  const metaHeader = decodeHeader(await verified(get, CID.parse(status.heads.A.cid), 'chain A head'))
  const meta = decodeMeta(await verified(get, metaHeader.payload, 'meta document'))
  const blocks = new Map<string, BlockRef>()
  await Promise.all(Object.entries(status.paramIndex.entries).map(async ([name, text]) => {
    const cid = CID.parse(text)
    const header = decodeHeader(await verified(get, cid, name))
    if (header.chain_id !== 'B' || header.expert_name !== name) reject('E_EXPERT_NAME', name, `the param index names ${cid}, which is ${header.expert_name ?? header.chain_id}`)
    blocks.set(name, { name, cid, payload: header.payload, payloadSize: header.payload_size })
  }))
  const tokenizer = meta.tokenizer === null ? null : await fetchUnixfsFile(meta.tokenizer.payload, meta.tokenizer.size, get)
  return { architecture: meta.architecture, blocks, meta, genesis: status.genesis, tokenizer }
}
