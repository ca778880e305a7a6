/**
 * The block cache on a real IndexedDB (fake-indexeddb) through idb-keyval: round trips with real
 * CIDs, least-recently-used eviction under the budget, exact counts under parallel puts, a reload
 * that starts warm with its counts and recency, quota errors recovered by eviction or reported
 * with CacheQuotaError, and clear().
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { cidOf, encodeCbor } from '../../src/codec/cbor.ts'
import { openBlockCache, type BlockCache } from '../../src/store/block-cache.ts'
import { CacheQuotaError, isQuotaError } from '../../src/store/errors.ts'
import { idbKV } from '../../src/store/kv.ts'
import { quotaKV, type Quota } from './quota-kv.ts'

let dbs = 0
/** A database name no other test uses (fake-indexeddb is one global for the whole test process). */
const freshDb = (): string => `block-cache-test-${++dbs}`

interface Block {
  readonly cid: CID
  readonly bytes: Uint8Array
}

/** A raw block of `size` bytes, distinct per `seed`, named by its sha2-256 CID. */
async function rawBlock(seed: number, size = 100): Promise<Block> {
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i++) bytes[i] = (seed * 31 + i * 7) & 0xff
  bytes[0] = seed & 0xff
  bytes[1] = seed >> 8
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

async function read(cache: BlockCache, cid: CID): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const c of cache.get(cid)) chunks.push(c)
  assert.equal(chunks.length, 1)
  return chunks[0] as Uint8Array
}

const blocks = (n: number, size = 100, from = 0): Promise<Block[]> => Promise.all(Array.from({ length: n }, (_, i) => rawBlock(from + i, size)))

describe('block cache', () => {
  test('put and get round trip real CIDs (raw and dag-cbor); a missing block throws NotFoundError', async () => {
    const cache = await openBlockCache({ kv: idbKV(freshDb(), 'blocks'), budgetBytes: null })
    const tile = await rawBlock(1, 1000)
    const headerBytes = encodeCbor({ kind: 'test', n: 1 })
    const header = { cid: cidOf(headerBytes), bytes: headerBytes }
    assert.equal(await cache.put(tile.cid, tile.bytes), tile.cid)
    await cache.put(header.cid, [headerBytes.subarray(0, 3), headerBytes.subarray(3)]) // chunked input
    assert.deepEqual(await read(cache, tile.cid), tile.bytes)
    assert.deepEqual(await read(cache, header.cid), headerBytes)
    assert.equal(cache.has(tile.cid), true)
    assert.deepEqual(cache.usage(), { bytes: 1000 + headerBytes.length, blocks: 2, budgetBytes: null, error: null })
    const all = []
    for await (const pair of cache.getAll()) all.push(pair.cid.toString())
    assert.deepEqual(all.sort(), [tile.cid.toString(), header.cid.toString()].sort())

    const missing = await rawBlock(2)
    assert.equal(cache.has(missing.cid), false)
    await assert.rejects(read(cache, missing.cid), { name: 'NotFoundError' })
    await cache.delete(tile.cid)
    await assert.rejects(read(cache, tile.cid), { name: 'NotFoundError' })
    assert.deepEqual(cache.usage(), { bytes: headerBytes.length, blocks: 1, budgetBytes: null, error: null })
  })

  test('a subarray is stored as its own bytes, not its whole buffer', async () => {
    const kv = idbKV(freshDb(), 'blocks')
    const cache = await openBlockCache({ kv, budgetBytes: null })
    const big = new Uint8Array(4096).fill(9)
    const bytes = big.subarray(100, 200)
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await cache.put(cid, bytes)
    const stored = (await kv.get(cid.toString())) as Uint8Array
    assert.equal(stored.buffer.byteLength, 100)
  })

  test('over budget, the least recently used blocks go first: a block read recently survives', async () => {
    const cache = await openBlockCache({ kv: idbKV(freshDb(), 'blocks'), budgetBytes: 300 })
    const [a, b, c, d] = (await blocks(4)) as [Block, Block, Block, Block]
    for (const x of [a, b, c]) await cache.put(x.cid, x.bytes)
    await read(cache, a.cid) // a is now more recent than b and c
    await cache.put(d.cid, d.bytes)
    assert.deepEqual([a, b, c, d].map((x) => cache.has(x.cid)), [true, false, true, true])
    await cache.put(a.cid, a.bytes) // a put of a held block is a use too
    const [e] = (await blocks(1, 100, 10)) as [Block]
    await cache.put(e.cid, e.bytes)
    assert.deepEqual([a, c, d, e].map((x) => cache.has(x.cid)), [true, false, true, true])
    assert.deepEqual(cache.usage(), { bytes: 300, blocks: 3, budgetBytes: 300, error: null })
  })

  test('a block larger than the whole budget is not cached, evicts nothing, and put still resolves', async () => {
    const cache = await openBlockCache({ kv: idbKV(freshDb(), 'blocks'), budgetBytes: 300 })
    const small = await rawBlock(1)
    const huge = await rawBlock(2, 301)
    await cache.put(small.cid, small.bytes)
    assert.equal(await cache.put(huge.cid, huge.bytes), huge.cid)
    assert.equal(cache.has(huge.cid), false)
    assert.equal(cache.has(small.cid), true)
    assert.deepEqual(cache.usage(), { bytes: 100, blocks: 1, budgetBytes: 300, error: null })
  })

  test('50 parallel puts with duplicates keep the byte and block counts exact, with and without eviction', async () => {
    const distinct = await Promise.all(Array.from({ length: 30 }, (_, i) => rawBlock(i, 50 + i * 13)))
    const puts = Array.from({ length: 50 }, (_, i) => distinct[(i * 7) % 30] as Block)
    const total = distinct.reduce((n, x) => n + x.bytes.length, 0)

    const db = freshDb()
    const cache = await openBlockCache({ kv: idbKV(db, 'blocks'), budgetBytes: null })
    await Promise.all(puts.map((x) => cache.put(x.cid, x.bytes)))
    assert.deepEqual(cache.usage(), { bytes: total, blocks: 30, budgetBytes: null, error: null })
    const reopened = await openBlockCache({ kv: idbKV(db, 'blocks'), budgetBytes: null })
    assert.deepEqual(reopened.usage(), cache.usage())

    const budget = 2000
    const small = await openBlockCache({ kv: idbKV(freshDb(), 'blocks'), budgetBytes: budget })
    await Promise.all(puts.map((x) => small.put(x.cid, x.bytes)))
    const held = distinct.filter((x) => small.has(x.cid))
    const heldBytes = held.reduce((n, x) => n + x.bytes.length, 0)
    assert.ok(heldBytes <= budget && held.length > 0)
    assert.deepEqual(small.usage(), { bytes: heldBytes, blocks: held.length, budgetBytes: budget, error: null })
    for (const x of held) assert.deepEqual(await read(small, x.cid), x.bytes)
  })

  test('a reload starts warm: a second cache on the same database sees the blocks, the counts and the recency', async () => {
    const db = freshDb()
    const first = await openBlockCache({ kv: idbKV(db, 'blocks'), budgetBytes: 300 })
    const [a, b, c, d] = (await blocks(4)) as [Block, Block, Block, Block]
    for (const x of [a, b, c]) await first.put(x.cid, x.bytes)
    await read(first, a.cid)
    await first.close() // writes the pending recency of the read

    const second = await openBlockCache({ kv: idbKV(db, 'blocks'), budgetBytes: 300 })
    assert.deepEqual(second.usage(), { bytes: 300, blocks: 3, budgetBytes: 300, error: null })
    assert.deepEqual(await read(second, c.cid), c.bytes)
    await second.put(d.cid, d.bytes) // b is the least recently used: a was read before the reload, c after
    assert.deepEqual([a, b, c, d].map((x) => second.has(x.cid)), [true, false, true, true])
  })

  test('the recency of reads is written on its own after the flush delay', async () => {
    const db = freshDb()
    const first = await openBlockCache({ kv: idbKV(db, 'blocks'), budgetBytes: 200, flushDelayMs: 1 })
    const [a, b, c] = (await blocks(3)) as [Block, Block, Block]
    await first.put(a.cid, a.bytes)
    await first.put(b.cid, b.bytes)
    await read(first, a.cid)
    // Wait for the timer's write itself, not for an amount of time: poll the stored record.
    const kv = idbKV(db, 'blocks')
    while (((await kv.get(`m:${a.cid}`)) as number[])[1] !== 3) await new Promise((r) => setTimeout(r, 1))
    const second = await openBlockCache({ kv: idbKV(db, 'blocks'), budgetBytes: 200 })
    await second.put(c.cid, c.bytes)
    assert.deepEqual([a, b, c].map((x) => second.has(x.cid)), [true, false, true])
  })

  test('on open, a block without its record is measured, and a record without its block is dropped', async () => {
    const db = freshDb()
    const kv = idbKV(db, 'blocks')
    const [a, b] = (await blocks(2, 120)) as [Block, Block]
    await kv.setMany([[a.cid.toString(), a.bytes], [`m:${b.cid}`, [120, 5]], [`m:${a.cid}`, 'damaged']])
    const cache = await openBlockCache({ kv, budgetBytes: null })
    assert.deepEqual(cache.usage(), { bytes: 120, blocks: 1, budgetBytes: null, error: null })
    assert.deepEqual((await kv.keys()).sort(), [a.cid.toString(), `m:${a.cid}`].sort())
    assert.deepEqual(await kv.get(`m:${a.cid}`), [120, 0])
  })

  test('setBudget evicts down to the new budget at once, least recently used first', async () => {
    const cache = await openBlockCache({ kv: idbKV(freshDb(), 'blocks'), budgetBytes: 1000 })
    const five = await blocks(5)
    for (const x of five) await cache.put(x.cid, x.bytes)
    await read(cache, (five[0] as Block).cid)
    await cache.setBudget(250)
    assert.deepEqual(five.map((x) => cache.has(x.cid)), [true, false, false, false, true])
    assert.deepEqual(cache.usage(), { bytes: 200, blocks: 2, budgetBytes: 250, error: null })
  })

  test('clear() empties the cache, counts go to 0, and a reload agrees', async () => {
    const db = freshDb()
    const cache = await openBlockCache({ kv: idbKV(db, 'blocks'), budgetBytes: null })
    const three = await blocks(3)
    for (const x of three) await cache.put(x.cid, x.bytes)
    await cache.clear()
    assert.deepEqual(cache.usage(), { bytes: 0, blocks: 0, budgetBytes: null, error: null })
    await assert.rejects(read(cache, (three[0] as Block).cid), { name: 'NotFoundError' })
    assert.deepEqual((await openBlockCache({ kv: idbKV(db, 'blocks'), budgetBytes: null })).usage().blocks, 0)
  })

  test('a block another page removed reads as NotFoundError and is forgotten', async () => {
    const db = freshDb()
    const cache = await openBlockCache({ kv: idbKV(db, 'blocks'), budgetBytes: null })
    const a = await rawBlock(1)
    await cache.put(a.cid, a.bytes)
    await idbKV(db, 'blocks').delMany([a.cid.toString()])
    await assert.rejects(read(cache, a.cid), { name: 'NotFoundError' })
    assert.deepEqual(cache.usage(), { bytes: 0, blocks: 0, budgetBytes: null, error: null })
  })
})

describe('block cache at the storage quota', () => {
  test('isQuotaError knows the browsers\' quota errors and nothing else', () => {
    const quota = new DOMException('full', 'QuotaExceededError')
    assert.equal(isQuotaError(quota), true)
    assert.equal(isQuotaError(Object.assign(new DOMException('aborted', 'AbortError'), { error: quota })), true)
    assert.equal(isQuotaError(new DOMException('aborted', 'AbortError')), false)
    assert.equal(isQuotaError(new DOMException('bad', 'DataCloneError')), false)
    assert.equal(isQuotaError(new Error('QuotaExceededError')), false)
    assert.equal(isQuotaError(null), false)
  })

  test('a quota error evicts least recently used blocks and the retry stores the block', async () => {
    const quota: Quota = { limit: 1000, used: 0, refused: 0 }
    const cache = await openBlockCache({ kv: quotaKV(freshDb(), quota), budgetBytes: 10_000 })
    const nine = await blocks(9)
    for (const x of nine) await cache.put(x.cid, x.bytes)
    await read(cache, (nine[0] as Block).cid)
    const big = await rawBlock(100, 300)
    await cache.put(big.cid, big.bytes)
    assert.equal(quota.refused, 1)
    // 300 bytes were needed (more than a quarter of 900): the three least recently used went.
    assert.deepEqual(nine.map((x) => cache.has(x.cid)), [true, false, false, false, true, true, true, true, true])
    assert.deepEqual(await read(cache, big.cid), big.bytes)
    assert.deepEqual(cache.usage(), { bytes: 900, blocks: 7, budgetBytes: 10_000, error: null })
    assert.equal(quota.used, 900)
  })

  test('a quota error eviction cannot fix throws CacheQuotaError, reports it in usage(), and loses only the evicted blocks', async () => {
    const quota: Quota = { limit: 1000, used: 0, refused: 0 }
    const cache = await openBlockCache({ kv: quotaKV(freshDb(), quota), budgetBytes: 10_000 })
    const eight = await blocks(8)
    for (const x of eight) await cache.put(x.cid, x.bytes)
    quota.limit = 500 // the disk filled up meanwhile
    const next = await rawBlock(50)
    const error = await cache.put(next.cid, next.bytes).then(() => null, (e: unknown) => e)
    assert.ok(error instanceof CacheQuotaError)
    assert.equal(error.name, 'CacheQuotaError')
    assert.equal(quota.refused, 2, 'one refusal, eviction, one retry')
    assert.equal(cache.usage().error, error.message)
    // A quarter of 800 bytes was evicted (the two least recently used); the other six are intact.
    assert.deepEqual(eight.map((x) => cache.has(x.cid)), [false, false, true, true, true, true, true, true])
    for (const x of eight.slice(2)) assert.deepEqual(await read(cache, x.cid), x.bytes)
    assert.deepEqual({ ...cache.usage(), error: null }, { bytes: 600, blocks: 6, budgetBytes: 10_000, error: null })
    assert.equal(cache.has(next.cid), false)

    quota.limit = 1000 // space again: the next put succeeds and the error clears
    await cache.put(next.cid, next.bytes)
    assert.deepEqual(cache.usage(), { bytes: 700, blocks: 7, budgetBytes: 10_000, error: null })
  })

  test('with no budget and no reclaim, a quota error throws CacheQuotaError and evicts nothing', async () => {
    const quota: Quota = { limit: 250, used: 0, refused: 0 }
    const cache = await openBlockCache({ kv: quotaKV(freshDb(), quota), budgetBytes: null })
    const [a, b, c] = (await blocks(3)) as [Block, Block, Block]
    await cache.put(a.cid, a.bytes)
    await cache.put(b.cid, b.bytes)
    await assert.rejects(cache.put(c.cid, c.bytes), { name: 'CacheQuotaError' })
    assert.deepEqual({ ...cache.usage(), error: null }, { bytes: 200, blocks: 2, budgetBytes: null, error: null })
    assert.equal(typeof cache.usage().error, 'string')
  })
})
