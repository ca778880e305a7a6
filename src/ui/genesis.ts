/**
 * The trust anchor: the genesis CID of chain A, pinned by the URL parameter `?genesis=<cid>`.
 *
 * A header's hash is its CIDv1 (dag-cbor, sha2-256), see DESIGN §4, so a genesis CID that is not of
 * that kind can never match a block and is reported as invalid instead of being shown as pinned.
 *
 * @module
 */
import { CID } from 'multiformats/cid'

const DAG_CBOR = 0x71
const SHA2_256 = 0x12

export type Genesis =
  | { readonly kind: 'none' }
  | { readonly kind: 'pinned'; readonly cid: string }
  | { readonly kind: 'invalid'; readonly raw: string; readonly reason: string }

/** Read the pinned genesis from a `location.search` string such as `?genesis=bafyrei...`. */
export function readGenesis(search: string): Genesis {
  const raw = new URLSearchParams(search).get('genesis')?.trim()
  if (raw === undefined || raw === '') return Object.freeze({ kind: 'none' })
  let cid: CID
  try {
    cid = CID.parse(raw)
  } catch {
    return Object.freeze({ kind: 'invalid', raw, reason: 'not a CID' })
  }
  if (cid.version !== 1 || cid.code !== DAG_CBOR || cid.multihash.code !== SHA2_256) {
    return Object.freeze({ kind: 'invalid', raw, reason: 'not a CIDv1 dag-cbor sha2-256 block CID' })
  }
  return Object.freeze({ kind: 'pinned', cid: cid.toString() })
}
