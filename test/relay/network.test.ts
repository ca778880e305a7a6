/**
 * Issue 16: many full nodes, one network. Five nodes on loopback (4 validators, each holding only
 * its own key, and 1 relay) dial each other over libp2p; blocks are submitted over HTTP at random
 * nodes and travel by gossip and sync; every store converges to the same content hash, finality
 * checkpoints are formed from votes of validators on different nodes, and a node started later
 * syncs the whole history from its peers.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Served } from '../../relay/serve.ts'
import { runCli } from '../fixtures/cli.ts'
import { addressOf, headsOf, networkSeed, nodeDir, postBlock, rulesBlocks, startPeer, until, type NetworkSeed } from '../fixtures/network.ts'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serve } from '../../relay/serve.ts'
import { nextRulesSubmission } from '../../relay/node/governance.ts'
import type { SecretKey } from '../../src/chain/keys.ts'

describe('a network of five nodes on libp2p (4 validators on their own nodes, 1 relay)', () => {
  let seed: NetworkSeed
  const nodes: Served[] = []

  before(async () => {
    seed = await networkSeed(4)
    const dirs = [...seed.keys.map((k) => nodeDir(seed, k)), nodeDir(seed, null)]
    for (const dir of dirs) nodes.push(await startPeer(dir, nodes.map(addressOf)))
  })

  after(async () => {
    for (const n of nodes) await n.close()
  })

  test('the nodes find each other: status lists listen multiaddrs, peers and validators', async () => {
    await until('every node sees the 4 others', () => nodes.every((n) => (n.network?.peers().filter((p) => p.seenAt !== null).length ?? 0) === 4))
    const status = (await (await fetch(`${nodes[4]?.url}api/status`)).json()) as { p2p: { peerId: string; listen: string[]; peers: { id: string; validator: string | null }[] }; relays: string[] }
    assert.equal(status.p2p.listen.length, 1)
    assert.match(status.p2p.listen[0] as string, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    assert.equal(status.p2p.peers.length, 4)
    assert.equal(status.p2p.peers.filter((p) => p.validator !== null).length, 4, 'the relay sees four validators')
    assert.equal(status.relays.length, 5, 'every node announces where it serves browsers')
  })

  test('blocks submitted at random nodes reach every store: the same content hash everywhere, and checkpoints from validators on separate nodes', async () => {
    const cars = await rulesBlocks(seed, 12)
    let seedRandom = 7
    const random = (): number => (seedRandom = (seedRandom * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    for (const car of cars) {
      const target = nodes[Math.floor(random() * nodes.length)] as Served
      // A node may not have the block's parent yet (it is on its way by gossip): retry as a client would.
      await until('the block to be accepted', async () => {
        const r = await postBlock(target.url, car)
        return r.status === 200 || r.status === 201 || `${r.status} ${r.code}`
      }, 20_000, 50)
    }
    const ms = await until('every store to hold the same content', () => {
      const hashes = new Set(nodes.map((n) => n.node.store.contentHash()))
      return hashes.size === 1 || nodes.map((n) => `${n.node.store.size}/${n.node.store.checkpoint()?.number}`).join(',')
    }, 30_000)
    console.log(`# 5 nodes converged ${ms} ms after the last submission`)
    const headA = nodes[0]?.node.store.head('A')
    assert.equal(headA?.header.index, 13, 'genesis, the decisions block and 12 rules blocks')
    // Finality: votes of the four validators (each on its own node) meet, on every node.
    await until('the last rules block to be final on every node', () => nodes.every((n) => n.node.store.checkpoint()?.heads.A.equals(headA?.cid as never) === true), 30_000)
  })

  test('a node started after 200 more blocks joins (blyan init --join through a relay URL) and syncs the same heads and checkpoints', async () => {
    // At most five nodes at once: the relay leaves, the newcomer takes its place.
    await (nodes.pop() as Served).close()
    const n0 = nodes[0] as Served
    for (let i = 0; i < 200; i++) await n0.node.submitCar(await nextRulesSubmission(n0.node.store, seed.keys[i % 4] as SecretKey, Date.now()))
    await until('the four validators to hold the 200 blocks and finalize them', () => {
      const hashes = new Set(nodes.map((n) => n.node.store.contentHash()))
      return (hashes.size === 1 && n0.node.store.checkpoint()?.heads.A.equals(n0.node.store.head('A')?.cid as never) === true) || nodes.map((n) => `${n.node.store.size}/${n.node.store.checkpoint()?.number}`).join(',')
    }, 60_000)
    const dir = mkdtempSync(join(tmpdir(), 'blyan-join-'))
    try {
      const t0 = Date.now()
      const joined = await runCli('init', '--data', dir, '--join', (nodes[1] as Served).url, '--anchor', n0.node.store.genesis()?.cid.toString() as string)
      assert.equal(joined.code, 0, joined.out)
      assert.match(joined.out, /joined the network of genesis/)
      // The experts' payload tiles came by bitswap (the CARs carried headers and certificates).
      const tiles = Number(/\((\d+) payload blocks/.exec(joined.out)?.[1])
      assert.ok(tiles >= 37, `${tiles} payload blocks by bitswap: ${joined.out}`)
      console.log(`# joined: ${n0.node.store.size} blocks synced in ${Date.now() - t0} ms, ${tiles} payload blocks by bitswap`)
      const late = await serve({ dataDir: dir, port: 0, host: '127.0.0.1', log: () => undefined })
      try {
        assert.ok(late.network !== undefined, 'a joined node is on the peer network without --peer (peers.json)')
        assert.equal(headsOf(late.node.store), headsOf(n0.node.store))
        assert.equal(late.node.store.contentHash(), n0.node.store.contentHash(), 'the same blocks and checkpoints')
        // Then it follows gossip: a block submitted at another node arrives.
        const n2 = nodes[2] as Served
        const block = await n2.node.submitCar(await nextRulesSubmission(n2.node.store, seed.keys[2] as SecretKey, Date.now()))
        const ms = await until('the new block to reach the late node', () => late.node.store.get(block.cid) !== undefined, 20_000)
        console.log(`# a block submitted at node 2 reached the late node in ${ms} ms`)
        assert.equal(late.network?.provenance(block.cid)?.from !== 'local', true, 'it came from a peer')
      } finally {
        await late.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('init --join refuses a peer on another network than the pinned genesis, and leaves no store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blyan-join-'))
    try {
      const r = await runCli('init', '--data', dir, '--join', addressOf(nodes[0] as Served), '--anchor', 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
      assert.equal(r.code, 1)
      assert.match(r.out, /not the pinned bafyreigh2akiscaildc/)
      assert.equal(existsSync(join(dir, 'chain.sqlite')), false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
