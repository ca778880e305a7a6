/**
 * `blyan init --join`: a new node of an existing network. It asks a peer (a multiaddr, or a relay
 * URL whose /api/status names the node's multiaddrs) for its status, checks the genesis against
 * the one the operator pinned (`--anchor`), brings in the genesis and the whole history through the
 * full node's rules (sync.ts), and remembers the peer in `<data>/peers.json` for `blyan start`.
 *
 * @module
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CID } from 'multiformats/cid'
import { createRelayClient } from '../../src/net/relay-client.ts'
import { PEERS_FILE } from '../devnet.ts'
import type { FullNode } from '../node/full-node.ts'
import { PEER_KEY_FILE, createPeerHost, loadPeerKey } from './host.ts'
import { PeerRequests } from './reqresp.ts'
import { BlockImporter, type BitswapStats, type SyncReport } from './sync.ts'
import { startBitswap, wantBlock } from './bitswap.ts'

/** The network could not be joined: nothing useful was written (the caller removes the store). */
export class JoinError extends Error {
  override readonly name = 'JoinError'
}

export interface JoinOptions {
  readonly node: FullNode
  readonly dataDir: string
  /** A peer's multiaddr (with /p2p/ID), or the http(s) URL of a node or relay on the network. */
  readonly target: string
  /** The genesis the operator trusts; the peer's must be this one. */
  readonly anchor?: CID
  readonly onProgress?: (line: string) => void
}

/** The multiaddrs a target names: itself, or those a relay URL's /api/status lists. */
export async function peerAddresses(target: string): Promise<string[]> {
  if (!/^https?:\/\//.test(target)) return [target]
  const listen = (await createRelayClient(target).status()).listen
  if (listen.length === 0) throw new JoinError(`${target} is not on a peer network (its /api/status lists no multiaddrs): start it with --listen, or give a peer's multiaddr`)
  return [...listen]
}

export async function joinNetwork(options: JoinOptions): Promise<SyncReport & { genesis: CID; peer: string; bitswap: BitswapStats }> {
  const { node, dataDir } = options
  const log = options.onProgress ?? (() => undefined)
  const addresses = await peerAddresses(options.target)
  const host = await createPeerHost({ privateKey: await loadPeerKey(join(dataDir, PEER_KEY_FILE)), listen: [] })
  const bitswap = await startBitswap(host, node.store)
  try {
    const { multiaddr } = await import('@multiformats/multiaddr')
    let lastError: unknown = null
    for (const address of addresses) {
      let connection
      try {
        connection = await host.dial(multiaddr(address), { signal: AbortSignal.timeout(10_000) })
      } catch (e) {
        lastError = e
        continue
      }
      const peer = connection.remotePeer
      const requests = new PeerRequests(host)
      const status = await requests.status(peer)
      if (status.genesis === null) throw new JoinError(`${address} has no genesis`)
      if (options.anchor !== undefined && !status.genesis.equals(options.anchor)) {
        throw new JoinError(`${address} is on the network of genesis ${status.genesis}, not the pinned ${options.anchor}`)
      }
      log(`joining the network of genesis ${status.genesis} through ${address} (${status.blocks} blocks)`)
      let offence: string | null = null
      const importer = new BlockImporter({ node, requests, onOffence: (o) => { offence ??= o.message }, want: (cid, signal) => wantBlock(bitswap, cid, signal) })
      const [genesisCar] = await requests.blocksByRoot(peer, [status.genesis])
      if (genesisCar === undefined) throw new JoinError(`${address} did not send its genesis block`)
      const genesis = await importer.importCar(genesisCar, peer)
      if (genesis.block === null || !genesis.block.cid.equals(status.genesis)) throw new JoinError(`the genesis ${address} sent was refused${offence === null ? '' : `: ${offence}`}`)
      const report = await importer.syncFrom(peer, status)
      if (offence !== null) throw new JoinError(`${address} sent blocks that break the rules: ${offence}`)
      writeFileSync(join(dataDir, PEERS_FILE), JSON.stringify([address], null, 2) + '\n')
      return { ...report, accepted: report.accepted + 1, genesis: status.genesis, peer: address, bitswap: { ...importer.bitswap } }
    }
    throw new JoinError(`could not reach ${addresses.join(' or ')}: ${lastError instanceof Error ? lastError.message : String(lastError)}`)
  } finally {
    await bitswap.stop()
    await host.stop()
  }
}
