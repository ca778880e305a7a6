/**
 * Issue 16's faults on the peer network: a peer gossiping blocks with bad signatures, a node of
 * another network, and a peer serving bytes that do not match their CIDs are each scored down and
 * disconnected while the honest nodes keep converging; a partition of {2 nodes} / {3 nodes} that
 * both extend chain A heals to one head by the fork-choice rule once the halves meet.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { CarReader } from '@ipld/car'
import type { SecretKey } from '../../src/chain/keys.ts'
import { decodeHeader, type Header, type UnsignedHeader } from '../../src/chain/header.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { writeCar } from '../../src/chain/submission.ts'
import { createPeerHost, type PeerHost } from '../../relay/p2p/host.ts'
import { PROTOCOLS, encodeBlockAnnouncement, encodeResponseHead, encodeStatus, topicsOf } from '../../relay/p2p/messages.ts'
import { storeStatus } from '../../relay/p2p/reqresp.ts'
import { nextRulesSubmission } from '../../relay/node/governance.ts'
import type { Served } from '../../relay/serve.ts'
import { sealUnchecked } from '../fixtures/devnet.ts'
import { addressOf, headsOf, networkSeed, nodeDir, startPeer, until, type NetworkSeed } from '../fixtures/network.ts'

/** A bare libp2p host on the network's topics: the attacker, speaking the wire protocol by hand. */
async function attacker(genesis: Parameters<typeof topicsOf>[0], target: Served): Promise<PeerHost> {
  const host = await createPeerHost({ privateKey: await generateKeyPair('Ed25519') })
  const topics = topicsOf(genesis)
  host.services.pubsub.subscribe(topics.blocks)
  await host.dial(multiaddr(addressOf(target)))
  await until('the target to join the attacker\'s mesh', () => host.services.pubsub.getSubscribers(topics.blocks).length > 0, 10_000)
  return host
}

/** The submission CAR's header bytes, and the CAR's blocks. */
async function carParts(car: Uint8Array): Promise<{ header: Uint8Array; blocks: { cid: import('multiformats/cid').CID; bytes: Uint8Array }[]; roots: import('multiformats/cid').CID[] }> {
  const reader = await CarReader.fromBytes(car)
  const roots = await reader.getRoots()
  const blocks: { cid: import('multiformats/cid').CID; bytes: Uint8Array }[] = []
  for await (const b of reader.blocks()) blocks.push({ cid: b.cid, bytes: b.bytes })
  const header = blocks.find((b) => b.cid.equals(roots[0] as never))?.bytes as Uint8Array
  return { header, blocks, roots }
}

describe('faults on the peer network', () => {
  let seed: NetworkSeed
  const nodes: Served[] = []

  before(async () => {
    seed = await networkSeed(4)
    for (const dir of [nodeDir(seed, seed.keys[0] as SecretKey), nodeDir(seed, seed.keys[1] as SecretKey), nodeDir(seed, null)]) nodes.push(await startPeer(dir, nodes.map(addressOf)))
    await until('the three nodes to see each other', () => nodes.every((n) => (n.network?.peers().filter((p) => p.seenAt !== null).length ?? 0) === 2))
  })

  after(async () => {
    for (const n of nodes) await n.close()
  })

  /** A valid block on the head, made at node `at`, and that the others receive it. */
  async function stillConverging(at: number, key: number): Promise<void> {
    const n = nodes[at] as Served
    const block = await n.node.submitCar(await nextRulesSubmission(n.node.store, seed.keys[key] as SecretKey, Date.now()))
    await until('every honest node to receive the block', () => nodes.every((x) => x.node.store.get(block.cid) !== undefined), 20_000)
    assert.equal(new Set(nodes.map((x) => headsOf(x.node.store))).size, 1)
  }

  test('a peer gossiping blocks with bad signatures is scored down and disconnected; the rest keep converging', async () => {
    const n0 = nodes[0] as Served
    const liar = await attacker(n0.node.store.genesis()?.cid as never, n0)
    try {
      const offences: string[] = []
      n0.network?.on('offence', (o) => offences.push(o.code))
      for (let i = 0; i < 3; i++) {
        const { header } = await carParts(await nextRulesSubmission(n0.node.store, seed.keys[0] as SecretKey, Date.now() + i))
        // The header names validator 0 as its author, but another key signed it (and the PoW is real).
        const { payload_sig: _s, nonce: _n, ...unsigned } = decodeHeader(header) as Header
        const forged = sealUnchecked(unsigned as UnsignedHeader, seed.keys[3] as SecretKey)
        await liar.services.pubsub.publish(topicsOf(n0.node.store.genesis()?.cid as never).blocks, encodeBlockAnnouncement(forged.bytes, null))
      }
      await until('the liar to be disconnected', () => !liar.getPeers().some((p) => p.toString() === n0.network?.peerId), 10_000)
      assert.deepEqual(offences, ['E_SIG', 'E_SIG', 'E_SIG'])
      const score = n0.network?.peers().find((p) => p.id === liar.peerId.toString())
      assert.equal(score, undefined, 'no longer a peer')
      // Banned: a new connection is refused as soon as the node knows who dials.
      await liar.dial(multiaddr(addressOf(n0)), { signal: AbortSignal.timeout(3000) }).catch(() => undefined)
      await until('the banned peer to stay disconnected', () => !liar.getPeers().some((p) => p.toString() === n0.network?.peerId), 10_000)
      await stillConverging(1, 1)
    } finally {
      await liar.stop()
    }
  })

  test('a node of another network (another genesis) is disconnected at its first status', async () => {
    const other = await networkSeed(1, { datasets: false })
    const stranger = await startPeer(nodeDir(other, other.keys[0] as SecretKey), [addressOf(nodes[2] as Served)])
    try {
      const offences: string[] = []
      nodes[2]?.network?.on('offence', (o) => offences.push(o.code))
      await until('the stranger to be refused', () => offences.includes('E_ANCHOR'), 10_000)
      await until('the stranger to be disconnected', () => stranger.network?.host.getPeers().length === 0, 10_000)
      assert.notEqual(stranger.node.store.genesis()?.cid.toString(), nodes[2]?.node.store.genesis()?.cid.toString())
      assert.equal(nodes[2]?.node.store.size, nodes[0]?.node.store.size, 'nothing of the other network came in')
    } finally {
      await stranger.close()
    }
    await stillConverging(0, 0)
  })

  test('a peer serving bytes that do not match their CIDs is scored down and disconnected', async () => {
    const n0 = nodes[0] as Served
    const liar = await attacker(n0.node.store.genesis()?.cid as never, n0)
    const store = n0.node.store
    // The liar answers status like a node of the network, and every block request with altered bytes.
    const cars = new Map<string, Uint8Array>()
    await liar.handle(PROTOCOLS.status, async (stream) => {
      const lp = lpStream(stream)
      await lp.write(encodeResponseHead('ok', 1))
      await lp.write(encodeStatus({ ...storeStatus(store), validator: null, relays: [] }))
      await stream.close()
    })
    await liar.handle(PROTOCOLS.blocksByRoot, async (stream) => {
      const lp = lpStream(stream, { maxDataLength: 1 << 24 })
      await lp.read()
      const [car] = [...cars.values()].slice(-1)
      const { blocks, roots } = await carParts(car as Uint8Array)
      const altered = blocks.map((b, i) => (i === blocks.length - 1 ? { cid: b.cid, bytes: Uint8Array.from(b.bytes, (x, j) => (j === 0 ? x ^ 1 : x)) } : b))
      await lp.write(encodeResponseHead('ok', 1))
      await lp.write(await writeCar(roots, altered))
      await stream.close()
    })
    try {
      const offences: string[] = []
      n0.network?.on('offence', (o) => offences.push(o.code))
      for (let i = 0; i < 3; i++) {
        const car = await nextRulesSubmission(store, seed.keys[0] as SecretKey, Date.now() + i)
        const { header, roots } = await carParts(car)
        cars.set((roots[0] as never as { toString(): string }).toString(), car)
        await liar.services.pubsub.publish(topicsOf(store.genesis()?.cid as never).blocks, encodeBlockAnnouncement(header, null))
        await until('the node to fetch the block from the liar', () => offences.length > i, 10_000)
      }
      assert.deepEqual(offences, ['E_CAR', 'E_CAR', 'E_CAR'])
      await until('the liar to be disconnected', () => !liar.getPeers().some((p) => p.toString() === n0.network?.peerId), 10_000)
      await stillConverging(1, 1)
    } finally {
      await liar.stop()
    }
  })
})

describe('a partition of {2 nodes} / {3 nodes} heals by fork choice', () => {
  let seed: NetworkSeed
  const left: Served[] = []
  const right: Served[] = []

  before(async () => {
    seed = await networkSeed(4)
    // Validators 0 and 1 on the left; 2, 3 and a relay on the right: neither half holds a quorum (3 of 4).
    for (const k of [0, 1]) left.push(await startPeer(nodeDir(seed, seed.keys[k] as SecretKey), left.map(addressOf)))
    for (const k of [2, 3, null]) right.push(await startPeer(nodeDir(seed, k === null ? null : seed.keys[k] as SecretKey), right.map(addressOf)))
  })

  after(async () => {
    for (const n of [...left, ...right]) await n.close()
  })

  test('both halves extend chain A; once they meet, every node has one head: the heavier branch', async () => {
    const extend = async (side: Served[], count: number, key: number): Promise<void> => {
      const n = side[0] as Served
      for (let i = 0; i < count; i++) await n.node.submitCar(await nextRulesSubmission(n.node.store, seed.keys[key] as SecretKey, Date.now()))
      await until('the half to agree', () => new Set(side.map((x) => headsOf(x.node.store))).size === 1, 20_000)
    }
    await extend(left, 2, 0)
    await extend(right, 3, 2)
    const leftHead = left[0]?.node.store.head('A')
    const rightHead = right[0]?.node.store.head('A')
    assert.notEqual(leftHead?.cid.toString(), rightHead?.cid.toString(), 'two branches')
    // The partition heals: one link between the halves.
    await left[0]?.network?.host.dial(multiaddr(addressOf(right[0] as Served)))
    const all = [...left, ...right]
    const ms = await until('one chain A head everywhere', () => new Set(all.map((n) => n.node.store.head('A')?.cid.toString())).size === 1 || all.map((n) => n.node.store.head('A')?.header.index).join(','), 30_000)
    console.log(`# the partition healed ${ms} ms after the halves met`)
    assert.equal(all[0]?.node.store.head('A')?.cid.toString(), rightHead?.cid.toString(), 'the heavier (longer) branch wins')
    assert.ok(right[0]?.node.store.get(leftHead?.cid as never) !== undefined, 'the node the left half met holds the losing branch too')
  })
})
