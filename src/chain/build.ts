/**
 * Making blocks: fill a header, sign it, solve its PoW.
 *
 * Used by `blyan init`, miners, tests and the vector generator. Sealing signs the signing bytes,
 * then searches the nonce (which the signature does not cover), then encodes; the result always
 * passes the header-only rules, which `sealBlock` checks before returning (fail closed).
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { DAG_CBOR, cidOf, compareCids } from '../codec/cbor.ts'
import { HEADER_VERSION, decodeHeader, encodeHeader, headerCid, signingBytes, type Header, type UnsignedHeader } from './header.ts'
import { publicKeyOf, signMessage, type SecretKey } from './keys.ts'
import { minePow, solvePow, type MineOptions } from './pow.ts'

/** Header fields a block author chooses: everything but version, signer, signature and nonce. */
export type HeaderDraft = Omit<UnsignedHeader, 'version' | 'miner_pub'>

export interface SealedBlock {
  readonly header: Header
  /** Header bytes: what a CID names and a relay serves. */
  readonly bytes: Uint8Array
  readonly cid: CID
}

/** Sign a draft with `secretKey`; the nonce is 0 until PoW is solved. */
export function signDraft(draft: HeaderDraft, secretKey: SecretKey): Header {
  const unsigned = {
    ...draft,
    version: HEADER_VERSION,
    depends_on: [...draft.depends_on].sort(compareCids),
    miner_pub: publicKeyOf(secretKey)
  } as UnsignedHeader
  return { ...unsigned, payload_sig: signMessage(signingBytes(unsigned), secretKey), nonce: 0 } as Header
}

function finish(header: Header): SealedBlock {
  const bytes = encodeHeader(header)
  decodeHeader(bytes) // the header-only rules hold, or this throws the rule a caller broke
  return Object.freeze({ header, bytes, cid: headerCid(bytes) })
}

/** Sign and mine synchronously (small difficulties: tests, devnets, tools). */
export function sealBlock(draft: HeaderDraft, secretKey: SecretKey): SealedBlock {
  const mined = solvePow(signDraft(draft, secretKey))
  if (mined === null) throw new Error('sealBlock: nonce space exhausted')
  return finish(mined)
}

/** Sign and mine asynchronously, abortable, with progress (browser miners, high difficulty). */
export async function sealBlockAsync(draft: HeaderDraft, secretKey: SecretKey, options: MineOptions = {}): Promise<SealedBlock> {
  return finish(await minePow(signDraft(draft, secretKey), options))
}

/** A DAG-CBOR document payload and its CID, ready to name in a header. */
export function documentPayload(bytes: Uint8Array): { readonly bytes: Uint8Array; readonly cid: CID; readonly size: number } {
  return Object.freeze({ bytes, cid: cidOf(bytes, DAG_CBOR), size: bytes.length })
}
