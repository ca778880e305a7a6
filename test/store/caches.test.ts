/**
 * The client's caches on a real IndexedDB (fake-indexeddb): the Helia blockstore routes dag-cbor to
 * the unbudgeted header cache and the rest to the tile cache, CacheUsage adds both up, a header at
 * the quota is made room for by evicting tiles, and Helia 7 uses the blockstore: blocks fetched
 * from a real relay are served again, relay stopped, by a fresh Helia over the reopened caches.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { trustlessGateway } from '@helia/block-brokers'
import { fallbackRouter } from '@helia/fallback-router'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import type { Blockstore } from 'interface-blockstore'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { cidOf, encodeCbor } from '../../src/codec/cbor.ts'
import { polyfillWithResolvers } from '../../src/net/helia.ts'
import { openCaches } from '../../src/store/caches.ts'
import { linksOf } from '../../relay/node/ipld.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { createRelay } from '../../relay/http/server.ts'
import { openChainStore } from '../../relay/node/chain-store.ts'
import { Devnet, NOW, submissionCar } from '../fixtures/devnet.ts'
import { quotaKV, type Quota } from './quota-kv.ts'

let dbs = 0
const freshDb = (): string => `caches-test-${++dbs}`

async function rawBlock(seed: number, size = 100): Promise<{ cid: CID; bytes: Uint8Array }> {
  const bytes = new Uint8Array(size).map((_, i) => (seed * 17 + i) & 0xff)
  bytes[0] = seed
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

function headerBlock(n: number): { cid: CID; bytes: Uint8Array } {
  const bytes = encodeCbor({ kind: 'test header', n })
  return { cid: cidOf(bytes), bytes }
}

async function read(store: Blockstore, cid: CID, options: object = {}): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const c of store.get(cid, options)) chunks.push(c)
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : new Uint8Array(Buffer.concat(chunks))
}

describe('the client caches', () => {
  test('the blockstore puts dag-cbor in the header cache and raw leaves and dag-pb nodes in the tile cache', async () => {
    const caches = await openCaches({ budgetBytes: 10_000, dbName: freshDb() })
    const header = headerBlock(1)
    const leaf = await rawBlock(1, 300)
    const nodeBytes = dagPb.encode(dagPb.prepare({ Data: new Uint8Array([8, 2]), Links: [{ Hash: leaf.cid, Tsize: 300 }] }))
    const node = { cid: CID.createV1(dagPb.code, await sha256.digest(nodeBytes)), bytes: nodeBytes }
    for (const b of [header, leaf, node]) await caches.blockstore.put(b.cid, b.bytes)

    assert.equal(caches.headers.has(header.cid), true)
    assert.equal(caches.tiles.has(header.cid), false)
    assert.equal(caches.tiles.has(leaf.cid) && caches.tiles.has(node.cid), true)
    for (const b of [header, leaf, node]) assert.deepEqual(await read(caches.blockstore, b.cid), b.bytes)
    assert.deepEqual(await caches.usage(), {
      tileBytes: 300 + nodeBytes.length,
      tileBlocks: 2,
      budgetBytes: 10_000,
      headerBytes: header.bytes.length,
      headerBlocks: 1,
      quotaBytes: null, // Node has no navigator.storage
      error: null
    })
    const all = []
    for await (const pair of caches.blockstore.getAll()) all.push(pair.cid.toString())
    assert.equal(all.length, 3)
  })

  test('setBudget evicts tiles only, and clear() empties both caches', async () => {
    const caches = await openCaches({ budgetBytes: 10_000, dbName: freshDb() })
    const tiles = await Promise.all([1, 2, 3].map((i) => rawBlock(i)))
    for (const t of tiles) await caches.blockstore.put(t.cid, t.bytes)
    await caches.blockstore.put(headerBlock(1).cid, headerBlock(1).bytes)
    await caches.setBudget(150)
    const u = await caches.usage()
    assert.deepEqual([u.tileBlocks, u.tileBytes, u.budgetBytes, u.headerBlocks], [1, 100, 150, 1])
    assert.equal(caches.tiles.has((tiles[2] as { cid: CID }).cid), true)
    await caches.clear()
    const empty = await caches.usage()
    assert.deepEqual([empty.tileBlocks, empty.tileBytes, empty.headerBlocks, empty.headerBytes], [0, 0, 0, 0])
  })

  test('at the quota, a header is made room for by evicting tiles; when nothing helps, Helia\'s put still resolves and usage() says why', async () => {
    const db = freshDb()
    const quota: Quota = { limit: 1000, used: 0, refused: 0 }
    const caches = await openCaches({ budgetBytes: 10_000, dbName: db, kv: (which) => quotaKV(`${db}-${which}`, quota) })
    const tiles = await Promise.all(Array.from({ length: 10 }, (_, i) => rawBlock(i)))
    for (const t of tiles) await caches.blockstore.put(t.cid, t.bytes)
    const header = headerBlock(1)
    await caches.blockstore.put(header.cid, header.bytes)
    assert.equal(caches.headers.has(header.cid), true)
    // A quarter of the tiles' 1000 bytes went, oldest first.
    assert.deepEqual(tiles.map((t) => caches.tiles.has(t.cid)), [false, false, false, true, true, true, true, true, true, true])

    quota.limit = 0 // nothing can be stored any more
    const second = headerBlock(2)
    assert.equal(await caches.blockstore.put(second.cid, second.bytes), second.cid)
    const usage = await caches.usage()
    assert.match(usage.error ?? '', /storage quota/)
    assert.equal(caches.headers.has(header.cid), true, 'headers are never evicted')
    await assert.rejects(caches.headers.put(second.cid, second.bytes), { name: 'CacheQuotaError' })
  })
})

// ------------------------------------------------------------------------------------ Helia


async function heliaOver(blockstore: Blockstore, gateway: string) {
  polyfillWithResolvers()
  const { createHeliaLight } = await import('helia')
  const helia = createHeliaLight({
    blockstore,
    codecs: [dagCbor],
    blockBrokers: [trustlessGateway({ allowInsecure: true, allowLocal: true })],
    routers: [fallbackRouter({ gateways: [gateway], shuffle: false }), { name: 'noop', async *findProviders() {} } as never]
  })
  await helia.start()
  return helia
}

/** Every block reachable from `root`, read through Helia's blockstore: CID string -> bytes. */
async function walk(helia: Awaited<ReturnType<typeof heliaOver>>, root: CID, options: object = {}): Promise<Map<string, Uint8Array>> {
  const seen = new Map<string, Uint8Array>()
  const stack = [root]
  while (stack.length > 0) {
    const cid = stack.pop() as CID
    if (seen.has(cid.toString())) continue
    const bytes = await read(helia.blockstore as unknown as Blockstore, cid, { signal: AbortSignal.timeout(10_000), ...options })
    seen.set(cid.toString(), bytes)
    stack.push(...linksOf(cid, bytes))
  }
  return seen
}

describe('Helia over the caches', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blyan-store-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  test('blocks fetched from a relay are served again from the reopened caches with the relay stopped', async () => {
    const d = new Devnet()
    const genesis = d.genesis()
    await d.submit(genesis)
    const embedding = await d.param('embedding', 'embedding', { seed: 1 })
    await d.submit(embedding)

    const store = openChainStore(join(dir, 'chain.sqlite'))
    const relay = createRelay({ node: new FullNode(store, { now: () => NOW }), version: 'test' })
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(relay.server.address() as AddressInfo).port}`
    for (const built of [genesis, embedding]) {
      const res = await fetch(`${url}/api/blocks`, { method: 'POST', headers: { 'Content-Type': 'application/vnd.ipld.car' }, body: (await submissionCar(built)) as Uint8Array<ArrayBuffer> })
      assert.equal(res.status, 201, await res.text())
    }

    const dbName = freshDb()
    const root = embedding.sealed.cid
    const first = await openCaches({ budgetBytes: 64 << 20, dbName })
    const online = await heliaOver(first.blockstore, url)
    const fetched = await walk(online, root)
    await online.stop()
    await first.flush()
    const usage = await first.usage()
    assert.ok(usage.headerBlocks >= 3 && usage.tileBlocks >= 1, JSON.stringify(usage)) // headers, meta document; payload
    assert.equal(usage.headerBlocks + usage.tileBlocks, fetched.size)

    await relay.close()
    store.close()

    // A reload: new cache objects on the same databases, a fresh Helia, the relay gone.
    const second = await openCaches({ budgetBytes: 64 << 20, dbName })
    assert.deepEqual(await second.usage(), usage)
    const offline = await heliaOver(second.blockstore, url)
    try {
      const again = await walk(offline, root)
      assert.deepEqual(again, fetched)
      assert.deepEqual(await walk(offline, root, { offline: true }), fetched, 'no network needed')
      const unknown = await rawBlock(99)
      await assert.rejects(read(offline.blockstore as unknown as Blockstore, unknown.cid, { offline: true }), { name: 'BlockNotFoundWhileOfflineError' })
    } finally {
      await offline.stop()
    }
  })
})
