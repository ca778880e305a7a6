/**
 * The page's Helia light node: blocks by CID from the local cache (IndexedDB, src/store) or else
 * from the configured relays as trustless gateways, each checked against its CID before it is
 * stored or returned. No public network: the only block broker is the RelaySet's.
 *
 * Helia hashes every fetched block with the hasher given here (the verify pool: WebCrypto SHA-256 in
 * workers) through the `validateFn` it hands the broker; the broker runs it per relay, so a relay
 * whose bytes fail is named as a liar and the next relay asked (relays.ts).
 *
 * @module
 */
import type { BlockBroker, BlockRetrievalOptions } from '@helia/interface'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'
import { from as hasherFrom } from 'multiformats/hashes/hasher'
import type { MultihashHasher } from 'multiformats/hashes/interface'
import * as dagCbor from '@ipld/dag-cbor'
import { SHA2_256, collectBytes } from '../codec/cbor.ts'
import type { RelaySet } from './relays.ts'

export type Helia = ReturnType<(typeof import('helia'))['createHeliaLight']>

/** A sha2-256 multihash hasher over any SHA-256 implementation (the verify pool's). */
export function sha256Hasher(sha256: (bytes: Uint8Array) => Promise<Uint8Array>): MultihashHasher<typeof SHA2_256> {
  return hasherFrom({ name: 'sha2-256', code: SHA2_256, encode: async (bytes) => (await sha256(bytes)) as Uint8Array<ArrayBuffer> })
}

/**
 * A Helia block broker over a RelaySet. `labelOf` names what a CID is (for the lie record), when
 * the caller knows; `onServed` is told which relay's bytes passed the check.
 */
export function relayBroker(relays: RelaySet, labelOf: (cid: CID) => string | undefined = () => undefined, onServed?: (cid: CID, relay: string) => void): BlockBroker {
  return {
    name: 'blyan-relays',
    async retrieve(cid: CID, options: BlockRetrievalOptions = {}): Promise<Uint8Array> {
      const validateFn = options.validateFn
      const label = labelOf(cid)
      const { bytes, relay } = await relays.fetchBlock(cid, {
        verify: async (bytes) => {
          if (validateFn === undefined) return false
          try {
            await validateFn(bytes)
            return true
          } catch (e) {
            options.signal?.throwIfAborted()
            void e
            return false
          }
        },
        ...(label === undefined ? {} : { what: label }),
        ...(options.signal === undefined ? {} : { signal: options.signal })
      })
      onServed?.(cid, relay)
      return bytes
    }
  }
}

/** Node 20 lacks Promise.withResolvers, which Helia uses (browsers have it): added where missing. */
export function polyfillWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: unknown }
  if (typeof P.withResolvers === 'function') return
  P.withResolvers = function withResolvers<T>() {
    let resolve!: (value: T) => void
    let reject!: (reason?: unknown) => void
    const promise = new Promise<T>((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise, resolve, reject }
  }
}

export interface LightNodeOptions {
  readonly relays: RelaySet
  readonly blockstore: Blockstore
  /** SHA-256 used to check fetched blocks (default: Helia's own). */
  readonly sha256?: (bytes: Uint8Array) => Promise<Uint8Array>
  readonly labelOf?: (cid: CID) => string | undefined
  readonly onServed?: (cid: CID, relay: string) => void
}

export async function createLightNode(options: LightNodeOptions): Promise<Helia> {
  polyfillWithResolvers()
  const { createHeliaLight } = await import('helia')
  const relays = options.relays
  const labelOf = options.labelOf
  const helia = createHeliaLight({
    blockstore: options.blockstore,
    codecs: [dagCbor],
    ...(options.sha256 === undefined ? {} : { hashers: [sha256Hasher(options.sha256)] }),
    blockBrokers: [() => relayBroker(relays, labelOf, options.onServed)],
    // Helia asks routers for providers; ours has none to offer and ends at once.
    routers: [{ name: 'none', async *findProviders() {} } as never]
  })
  await helia.start()
  return helia
}

/** One block through Helia (the cache, else a relay, verified), as one byte array. */
export async function heliaBlock(helia: Helia, cid: CID, signal?: AbortSignal): Promise<Uint8Array> {
  return collectBytes(helia.blockstore.get(cid, signal === undefined ? {} : { signal }))
}
