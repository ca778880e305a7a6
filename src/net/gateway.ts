/**
 * Blocks from an IPFS trustless gateway (a Blyan relay, or any gateway): `GET /ipfs/<cid>?format=raw`.
 * The bytes are not trusted here; callers check them against the CID (createTileSource does).
 *
 * @module
 */
import type { CID } from 'multiformats/cid'

/** A gateway answered something other than the block. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError'
  readonly gateway: string
  readonly status: number
  constructor(gateway: string, status: number, message: string) {
    super(`${gateway}: ${message}`)
    this.gateway = gateway
    this.status = status
  }
}

/** A block getter over one gateway base URL (e.g. `http://127.0.0.1:8080`). */
export function gatewayBlockGetter(gateway: string, fetchImpl: typeof fetch = fetch): (cid: CID, signal?: AbortSignal) => Promise<Uint8Array> {
  const base = gateway.replace(/\/+$/, '')
  return async (cid, signal) => {
    const init: RequestInit = { headers: { Accept: 'application/vnd.ipld.raw' } }
    if (signal !== undefined) init.signal = signal
    const res = await fetchImpl(`${base}/ipfs/${cid}?format=raw`, init)
    if (!res.ok) throw new GatewayError(base, res.status, `block ${cid}: HTTP ${res.status}`)
    return new Uint8Array(await res.arrayBuffer())
  }
}
