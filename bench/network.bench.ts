/**
 * The peer network (relay/p2p) on loopback, 5 nodes of the genesis devnet (4 validators, each with
 * its own key, and a relay), against baselines measured in the same run:
 *
 * - gossip propagation of a block (header and submission CAR) from node 0 to each other node,
 *   p50 / p99, vs one HTTP round trip (`GET /api/status`) on loopback;
 * - history sync (`blyan init --join`'s joinNetwork: the whole chain by request/response, every block
 *   judged) in blocks/s and MB/s, vs `blyan export` + `blyan import-car` of the same chain;
 * - bitswap tile throughput (every chain B payload block, from a peer) vs the HTTP trustless
 *   gateway serving the same blocks, 16 requests in flight each.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { SecretKey } from '../src/chain/keys.ts'
import { exportCar, importCar } from '../relay/node/archive.ts'
import { openChainStore } from '../relay/node/chain-store.ts'
import { FullNode } from '../relay/node/full-node.ts'
import { nextRulesSubmission } from '../relay/node/governance.ts'
import { joinNetwork } from '../relay/p2p/join.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import type { CID } from 'multiformats/cid'
import { startBitswap, wantBlock } from '../relay/p2p/bitswap.ts'
import { createPeerHost } from '../relay/p2p/host.ts'
import type { Served } from '../relay/serve.ts'
import { addressOf, networkSeed, nodeDir, startPeer, until } from '../test/fixtures/network.ts'

const BLOCKS = 40

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

export async function run(): Promise<void> {
  const seed = await networkSeed(4)
  const nodes: Served[] = []
  try {
    for (const dir of [...seed.keys.map((k) => nodeDir(seed, k)), nodeDir(seed, null)]) nodes.push(await startPeer(dir, nodes.map(addressOf)))
    await until('the mesh', () => nodes.every((n) => (n.network?.peers().filter((p) => p.seenAt !== null).length ?? 0) === 4), 30_000)
    const n0 = nodes[0] as Served

    // Gossip: when each other node accepted each block, from the moment node 0 accepted it.
    const arrivals = new Map<string, number[]>()
    nodes.slice(1).forEach((n) => n.node.on('accepted', (b) => arrivals.get(b.cid.toString())?.push(performance.now())))
    const delays: number[] = []
    for (let i = 0; i < BLOCKS; i++) {
      const car = await nextRulesSubmission(n0.node.store, seed.keys[i % 4] as SecretKey, Date.now())
      let t0 = 0
      let key = ''
      const once = (b: { cid: { toString(): string } }): void => {
        key = b.cid.toString()
        arrivals.set(key, [])
        t0 = performance.now()
      }
      n0.node.once('accepted', once)
      await n0.node.submitCar(car)
      await until('every node to get the block', () => (arrivals.get(key)?.length ?? 0) >= 4, 20_000, 5)
      for (const t of arrivals.get(key) as number[]) delays.push(t - t0)
    }
    const http: number[] = []
    for (let i = 0; i < 200; i++) {
      const t = performance.now()
      await (await fetch(`${nodes[1]?.url}api/status`)).arrayBuffer()
      http.push(performance.now() - t)
    }
    const [g50, g99, h50] = [percentile(delays, 50), percentile(delays, 99), percentile(http, 50)]
    console.log(`gossip of a block to 4 peers: p50 ${g50.toFixed(1)} ms, p99 ${g99.toFixed(1)} ms (${delays.length} arrivals); HTTP round trip p50 ${h50.toFixed(2)} ms`)
    console.log(`  ratio gossip p50 / HTTP round trip: ${(g50 / h50).toFixed(1)}x; p99: ${(g99 / h50).toFixed(1)}x`)

    // Bitswap vs the trustless gateway, for every payload block of chain B.
    const tiles = n0.node.store.headers('B', 0, Number.MAX_SAFE_INTEGER, 100_000).flatMap((b) => n0.node.store.rawCidsOf(b.cid).filter((c) => c.code !== 0x71))
    // The client holds nothing: every block comes from the peer. A fresh client each round (a peer
    // sends a block once per want it has seen from a client).
    const nothing = { getRaw: () => undefined, hasRaw: () => false } as unknown as Parameters<typeof startBitswap>[1]
    const inFlight = async (fetchOne: (cid: CID) => Promise<number>): Promise<{ ms: number; bytes: number }> => {
      const t = performance.now()
      let bytes = 0
      for (let i = 0; i < tiles.length; i += 16) bytes += (await Promise.all(tiles.slice(i, i + 16).map(fetchOne))).reduce((a, b) => a + b, 0)
      return { ms: performance.now() - t, bytes }
    }
    const rounds = 5
    let bs = { ms: 0, bytes: 0 }
    let gw = { ms: 0, bytes: 0 }
    for (let r = 0; r < rounds; r++) {
      const client = await createPeerHost({ privateKey: await generateKeyPair('Ed25519') })
      const bitswap = await startBitswap(client, nothing)
      try {
        await client.dial(multiaddr(addressOf(nodes[1] as Served)))
        const b = await inFlight(async (cid) => (await wantBlock(bitswap, cid)).length)
        bs = { ms: bs.ms + b.ms, bytes: bs.bytes + b.bytes }
      } finally {
        await bitswap.stop()
        await client.stop()
      }
      const g = await inFlight(async (cid) => (await (await fetch(`${nodes[1]?.url}ipfs/${cid}?format=raw`)).arrayBuffer()).byteLength)
      gw = { ms: gw.ms + g.ms, bytes: gw.bytes + g.bytes }
    }
    const mbps = (x: { ms: number; bytes: number }): number => x.bytes / 2 ** 20 / (x.ms / 1000)
    console.log(`payload blocks (${tiles.length} x ${rounds}, ${(bs.bytes / rounds / 2 ** 20).toFixed(2)} MiB a round): bitswap ${mbps(bs).toFixed(1)} MB/s, HTTP gateway ${mbps(gw).toFixed(1)} MB/s`)
    console.log(`  ratio bitswap / gateway: ${(mbps(bs) / mbps(gw)).toFixed(2)}x`)

    // History sync vs export + import-car of the same chain.
    const work = mkdtempSync(join(tmpdir(), 'blyan-bench-net-'))
    try {
      const store = openChainStore(join(work, 'joined.sqlite'))
      const t1 = performance.now()
      const report = await joinNetwork({ node: new FullNode(store), dataDir: work, target: addressOf(nodes[2] as Served) })
      const syncMs = performance.now() - t1
      const blocks = store.size
      store.close()
      const bytes = statSync(join(work, 'joined.sqlite')).size
      const t2 = performance.now()
      await exportCar(n0.node.store, join(work, 'chain.car'))
      const copy = openChainStore(join(work, 'copy.sqlite'))
      await importCar(new FullNode(copy), readFileSync(join(work, 'chain.car')))
      const carMs = performance.now() - t2
      copy.close()
      console.log(`history sync of ${blocks} blocks (${(bytes / 2 ** 20).toFixed(1)} MiB store, ${report.checkpoints} checkpoints): ${(blocks / (syncMs / 1000)).toFixed(0)} blocks/s, ${(bytes / 2 ** 20 / (syncMs / 1000)).toFixed(1)} MB/s`)
      console.log(`  export + import-car of the same chain: ${(blocks / (carMs / 1000)).toFixed(0)} blocks/s; ratio sync / car: ${(carMs / syncMs).toFixed(2)}x the speed`)
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  } finally {
    for (const n of nodes) await n.close()
  }
}
