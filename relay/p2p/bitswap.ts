/**
 * Bitswap between full nodes (`@helia/bitswap` over the chain store): every node serves the IPLD
 * blocks its accepted blocks brought, and fetches the payload tiles of chain B blocks from any peer
 * that has them. Bitswap names each block by its CID and hashes what arrives, so bytes that do not
 * match their CID never leave it; what a tile is worth is judged, as always, by the full node.
 *
 * @module
 */
import { createBitswap, type Bitswap } from '@helia/bitswap'
import { defaultLogger } from '@libp2p/logger'
import type { CID } from 'multiformats/cid'
import type { ChainStore } from '../node/interface.ts'
import type { PeerHost } from './host.ts'

/** How long one block is wanted before giving up (no peer has it). */
export const WANT_TIMEOUT_MS = 30_000

/** The chain store as bitswap's blockstore: read-only (what a node stores, it stores by accepting a block). */
function storeBlockstore(store: ChainStore): Parameters<typeof createBitswap>[0]['blockstore'] {
  const missing = (cid: CID): Error => Object.assign(new Error(`not found: ${cid}`), { name: 'NotFoundError' })
  return {
    async *get(cid: CID) {
      const bytes = store.getRaw(cid)
      if (bytes === undefined) throw missing(cid)
      yield bytes
    },
    async has(cid: CID) {
      return store.hasRaw(cid)
    },
    async put(cid: CID) {
      return cid
    },
    async *putMany() {},
    async *getMany() {},
    async *getAll() {},
    async delete() {},
    async *deleteMany() {}
  } as unknown as Parameters<typeof createBitswap>[0]['blockstore']
}

/** No content routing: bitswap asks the peers this node is connected to. */
const NO_ROUTING = {
  name: 'none',
  async *findProviders() {},
  async provide() {},
  async cancelReprovide() {},
  async put() {},
  async get(): Promise<never> { throw new Error('no routing') },
  async findPeer(): Promise<never> { throw new Error('no routing') },
  async *getClosestPeers() {}
}

/** A started bitswap over `host` serving `store`. */
export async function startBitswap(host: PeerHost, store: ChainStore): Promise<Bitswap> {
  const bitswap = createBitswap({
    routing: NO_ROUTING as unknown as Parameters<typeof createBitswap>[0]['routing'],
    blockstore: storeBlockstore(store),
    logger: defaultLogger(),
    libp2p: host,
    // Protocol CIDs are sha2-256 only (bitswap has that one built in).
    getHasher: (async (code: number) => { throw new Error(`hash 0x${code.toString(16)} is not used by Blyan`) }) as unknown as Parameters<typeof createBitswap>[0]['getHasher']
  })
  await bitswap.start()
  return bitswap
}

/** A block from any connected peer, by bitswap, within WANT_TIMEOUT_MS. */
export function wantBlock(bitswap: Bitswap, cid: CID, signal?: AbortSignal): Promise<Uint8Array> {
  const timeout = AbortSignal.timeout(WANT_TIMEOUT_MS)
  return bitswap.want(cid, { signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]) })
}
