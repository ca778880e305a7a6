import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { CarReader } from '@ipld/car'
import { concatBytes } from '@noble/hashes/utils.js'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { UnixFS } from 'ipfs-unixfs'
import { exporter } from 'ipfs-unixfs-exporter'
import { importByteStream, importBytes } from 'ipfs-unixfs-importer'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { writeCar } from '../../src/chain/submission.ts'
import { buildPayload, decodePayloadIndex, parsePayload, payloadIndexLength } from '../../src/tensor/payload.ts'
import { decodeTensorBlock } from '../../src/tensor/tensorblock.ts'
import {
  TILE_SIZE,
  UNIXFS_OPTIONS,
  extractTilePath,
  importPayload,
  tileCount,
  tilesForRange,
  verifyTile,
  verifyTilePath,
  type TilePath
} from '../../src/tensor/tiles.ts'
import { assertRuleAsync, blockGetter, prng, randomBytes, randomTensors } from './fixtures/tensors.ts'

const MERKLE_OR_TILE = ['E_MERKLE', 'E_TILE'] as const

/** A ~1.3 MiB payload (6 tiles) and a single-tile payload, imported once for the whole file. */
const big = buildPayload(randomTensors(prng(1), 1_363_148)) // 1.3 MiB
const small = buildPayload(randomTensors(prng(2), 20_000))
const bigImport = await importPayload(big)
const smallImport = await importPayload(small)

async function exportBytes(cid: CID, blockstore: MemoryBlockstore): Promise<Uint8Array> {
  const entry = await exporter(cid, blockstore)
  if (entry.type !== 'file' && entry.type !== 'raw') throw new Error(`exported a ${entry.type}`)
  const parts: Uint8Array[] = []
  for await (const chunk of entry.content()) parts.push(chunk)
  return concatBytes(...parts)
}

async function allPaths(root: CID, blocks: Map<string, Uint8Array>, size: number): Promise<TilePath[]> {
  const paths: TilePath[] = []
  for (let t = 0; t < tileCount(size); t++) paths.push(await extractTilePath(root, t, blockGetter(blocks)))
  return paths
}

describe('tiles: interop with the reference UnixFS and CAR implementations', () => {
  test('the payloads have the expected shape: 6 tiles under one dag-pb root, and one raw leaf', () => {
    assert.equal(tileCount(big.length), 6)
    assert.equal(bigImport.cid.version, 1)
    assert.equal(bigImport.cid.code, dagPb.code)
    assert.equal(bigImport.blocks.size, 7)
    assert.ok(small.length <= TILE_SIZE)
    assert.equal(smallImport.cid.code, raw.code, 'single tile: the root is the raw leaf')
    assert.equal(smallImport.blocks.size, 1)
  })

  for (const [name, payload, imported] of [
    ['6-tile', big, bigImport],
    ['single-tile', small, smallImport]
  ] as const) {
    test(`${name} payload comes back byte-identical through ipfs-unixfs-exporter`, async () => {
      const bs = new MemoryBlockstore()
      for (const [k, v] of imported.blocks) await bs.put(CID.parse(k), v)
      assert.deepEqual(await exportBytes(imported.cid, bs), payload)
    })

    test(`${name} payload survives a CAR round trip, every CID recomputing from its bytes`, async () => {
      const car = await writeCar([imported.cid], [...imported.blocks].map(([k, v]) => ({ cid: CID.parse(k), bytes: v })))
      const reader = await CarReader.fromBytes(car)
      assert.deepEqual((await reader.getRoots()).map(String), [imported.cid.toString()])
      const bs = new MemoryBlockstore()
      let count = 0
      for await (const { cid, bytes } of reader.blocks()) {
        const again = CID.create(1, cid.code, await sha256.digest(bytes))
        assert.ok(again.equals(cid), `${cid} recomputes`)
        await bs.put(cid, bytes)
        count++
      }
      assert.equal(count, imported.blocks.size)
      assert.deepEqual(await exportBytes(imported.cid, bs), payload)
    })
  }

  test('importPayload honours an aborted signal', async () => {
    const ac = new AbortController()
    ac.abort()
    await assert.rejects(importPayload(small, { signal: ac.signal }), { name: 'AbortError' })
  })
})

describe('tiles: Merkle paths', () => {
  test('every tile path verifies and yields the tile bytes at tile * TILE_SIZE', async () => {
    for (const [payload, { cid, blocks }] of [
      [big, bigImport],
      [small, smallImport]
    ] as const) {
      for (const path of await allPaths(cid, blocks, payload.length)) {
        const { offset, bytes } = await verifyTilePath(cid, path)
        assert.equal(offset, path.tile * TILE_SIZE)
        assert.deepEqual(bytes, payload.subarray(offset, offset + TILE_SIZE))
      }
    }
  })

  test('deeper trees (fan-out 2 and 3) extract and verify the same way', async () => {
    for (const fanout of [2, 3]) {
      const blocks = new Map<string, Uint8Array>()
      const store = { put: (c: CID, b: Uint8Array) => (blocks.set(c.toString(), b), c) }
      const { cid } = await importBytes(big, store, { ...UNIXFS_OPTIONS, layout: balanced({ maxChildrenPerNode: fanout }) })
      for (const path of await allPaths(cid, blocks, big.length)) {
        assert.ok(path.blocks.length >= 3)
        const { offset, bytes } = await verifyTilePath(cid, path)
        assert.deepEqual(bytes, big.subarray(offset, offset + TILE_SIZE))
      }
    }
  })

  test('a real 2-level tree: 1025 tiles under the 1024 fan-out', async () => {
    // 1024 identical tiles deduplicate to one leaf block, so this costs hashing, not memory.
    const tile = randomBytes(prng(9), TILE_SIZE)
    const tail = randomBytes(prng(10), 1000)
    const blocks = new Map<string, Uint8Array>()
    const store = { put: (c: CID, b: Uint8Array) => (blocks.set(c.toString(), b), c) }
    const source = (function* () {
      for (let i = 0; i < 1024; i++) yield tile
      yield tail
    })()
    const { cid } = await importByteStream(source, store, { ...UNIXFS_OPTIONS })
    const size = 1024 * TILE_SIZE + tail.length
    assert.equal(tileCount(size), 1025)
    for (const t of [0, 1023, 1024]) {
      const path = await extractTilePath(cid, t, blockGetter(blocks))
      assert.equal(path.blocks.length, 3, 'root -> level-1 node -> leaf')
      const { offset, bytes } = await verifyTilePath(cid, path)
      assert.equal(offset, t * TILE_SIZE)
      assert.deepEqual(bytes, t === 1024 ? tail : tile)
    }
    await assert.rejects(extractTilePath(cid, 1025, blockGetter(blocks)), RangeError)
  })

  test('a flipped byte in any block of a path is refused', async () => {
    const paths = await allPaths(bigImport.cid, bigImport.blocks, big.length)
    for (const path of paths) {
      for (let b = 0; b < path.blocks.length; b++) {
        const len = path.blocks[b]!.length
        for (const at of [0, 1, len >> 1, len - 1]) {
          const blocks = path.blocks.map((x) => x.slice())
          blocks[b]![at]! ^= 0x01
          await assertRuleAsync(() => verifyTilePath(bigImport.cid, { tile: path.tile, blocks }), b === path.blocks.length - 1 ? 'E_TILE' : 'E_MERKLE')
        }
      }
    }
    const single = (await allPaths(smallImport.cid, smallImport.blocks, small.length))[0]!
    const flipped = single.blocks[0]!.slice()
    flipped[7]! ^= 0x80
    await assertRuleAsync(() => verifyTilePath(smallImport.cid, { tile: 0, blocks: [flipped] }), 'E_TILE')
  })

  test('swapped sibling leaf, wrong tile index, truncated or extended path, other root: refused', async () => {
    const { cid } = bigImport
    const paths = await allPaths(cid, bigImport.blocks, big.length)
    const p2 = paths[2]!
    const p3 = paths[3]!
    await assertRuleAsync(() => verifyTilePath(cid, { tile: 2, blocks: [p2.blocks[0]!, p3.blocks[1]!] }), MERKLE_OR_TILE)
    await assertRuleAsync(() => verifyTilePath(cid, { tile: 3, blocks: p2.blocks }), MERKLE_OR_TILE)
    await assertRuleAsync(() => verifyTilePath(cid, { tile: 6, blocks: p2.blocks }), 'E_MERKLE', 'tile')
    await assertRuleAsync(() => verifyTilePath(cid, { tile: 2, blocks: p2.blocks.slice(0, 1) }), 'E_MERKLE', 'blocks')
    await assertRuleAsync(() => verifyTilePath(cid, { tile: 2, blocks: [] }), 'E_MERKLE', 'blocks')
    await assertRuleAsync(() => verifyTilePath(cid, { tile: 2, blocks: [...p2.blocks, p2.blocks[1]!] }), 'E_MERKLE', 'blocks')
    await assertRuleAsync(() => verifyTilePath(cid, { tile: 2, blocks: p2.blocks.slice(1) }), 'E_MERKLE')
    // Root of another payload, and a single-tile path presented for the big root and vice versa.
    await assertRuleAsync(() => verifyTilePath(smallImport.cid, p2), MERKLE_OR_TILE)
    const s0 = await extractTilePath(smallImport.cid, 0, blockGetter(smallImport.blocks))
    await assertRuleAsync(() => verifyTilePath(cid, { tile: 0, blocks: s0.blocks }), 'E_MERKLE')
    await assertRuleAsync(() => verifyTilePath(smallImport.cid, { tile: 1, blocks: s0.blocks }), 'E_MERKLE')
  })

  test('only CIDv1 sha2-256 roots; malformed nodes give E_MERKLE, never a library error', async () => {
    const path = await extractTilePath(bigImport.cid, 0, blockGetter(bigImport.blocks))
    const rootBytes = path.blocks[0]!
    const v0 = CID.createV0(await sha256.digest(rootBytes))
    await assertRuleAsync(() => verifyTilePath(v0, path), 'E_MERKLE', 'root')
    const sha512Root = CID.createV1(dagPb.code, await sha512.digest(rootBytes))
    await assertRuleAsync(() => verifyTilePath(sha512Root, path), 'E_MERKLE', 'root')
    const identityRoot = CID.createV1(raw.code, identity.digest(new Uint8Array([1])))
    await assertRuleAsync(() => verifyTilePath(identityRoot, { tile: 0, blocks: [new Uint8Array([1])] }), 'E_MERKLE', 'root')
    const cborRoot = CID.createV1(0x71, await sha256.digest(rootBytes))
    await assertRuleAsync(() => verifyTilePath(cborRoot, path), 'E_MERKLE', 'root')

    const leaf = path.blocks[1]!
    const asRoot = async (bytes: Uint8Array) => CID.createV1(dagPb.code, await sha256.digest(bytes))
    const cases: Uint8Array[] = [
      new Uint8Array([0xff, 0xff, 0xff]), // not dag-pb
      dagPb.encode({ Links: [] }), // no Data
      dagPb.encode({ Data: new Uint8Array([0xff]), Links: [] }), // Data is not UnixFS
      dagPb.encode({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: [{ Hash: CID.createV1(raw.code, await sha256.digest(leaf)), Name: 'x' }] }),
      dagPb.encode({ Data: new UnixFS({ type: 'file', data: new Uint8Array([1]) }).marshal(), Links: [] }), // inline data, no links
      dagPb.encode({ Data: new UnixFS({ type: 'file', blockSizes: [] }).marshal(), Links: [{ Hash: CID.createV1(raw.code, await sha256.digest(leaf)) }] }),
      dagPb.encode({ Data: new UnixFS({ type: 'file', blockSizes: [0n] }).marshal(), Links: [{ Hash: CID.createV1(raw.code, await sha256.digest(leaf)) }] }),
      dagPb.encode({ Data: new UnixFS({ type: 'file', blockSizes: [BigInt(leaf.length)] }).marshal(), Links: [{ Hash: CID.createV1(raw.code, await sha512.digest(leaf)) }] })
    ]
    for (const node of cases) {
      const root = await asRoot(node)
      await assertRuleAsync(() => verifyTilePath(root, { tile: 0, blocks: [node, leaf] }), 'E_MERKLE')
      await assertRuleAsync(() => extractTilePath(root, 0, async () => node), 'E_MERKLE')
    }
    // A parent that claims a different size for the leaf than the leaf has.
    const lying = dagPb.encode({
      Data: new UnixFS({ type: 'file', blockSizes: [BigInt(leaf.length + 1)] }).marshal(),
      Links: [{ Hash: CID.createV1(raw.code, await sha256.digest(leaf)) }]
    })
    const lyingRoot = await asRoot(lying)
    await assertRuleAsync(() => verifyTilePath(lyingRoot, { tile: 0, blocks: [lying, leaf] }), 'E_MERKLE')
  })

  test('remembered nodes only stand in for byte-identical blocks', async () => {
    const path = await extractTilePath(bigImport.cid, 4, blockGetter(bigImport.blocks))
    const own = { tile: 4, blocks: path.blocks.map((b) => b.slice()) }
    await verifyTilePath(bigImport.cid, own) // the root node is now remembered
    own.blocks[0]![20]! ^= 0x04 // change the caller's buffer after verification
    await assertRuleAsync(() => verifyTilePath(bigImport.cid, own), 'E_MERKLE', 'blocks[0]')
    own.blocks[0]![20]! ^= 0x04
    await verifyTilePath(bigImport.cid, own)
    // Changing the buffers while a verification is in flight does not change what was checked.
    const fresh = { tile: 5, blocks: (await extractTilePath(bigImport.cid, 5, blockGetter(bigImport.blocks))).blocks.map((b) => b.slice()) }
    const pending = verifyTilePath(bigImport.cid, fresh)
    fresh.blocks[1]![0]! ^= 0xff
    const { bytes } = await pending
    assert.equal(bytes, fresh.blocks[1], 'returns the caller’s leaf buffer')
    await assertRuleAsync(() => verifyTilePath(bigImport.cid, fresh), 'E_TILE', 'blocks[1]')
  })

  test('verifyTile checks a tile against a trusted leaf CID', async () => {
    const root = dagPb.decode(bigImport.blocks.get(bigImport.cid.toString())!)
    for (let t = 0; t < root.Links.length; t++) {
      const leafCid = root.Links[t]!.Hash
      const bytes = big.subarray(t * TILE_SIZE, (t + 1) * TILE_SIZE)
      await verifyTile(leafCid, bytes)
      const bad = bytes.slice()
      bad[bad.length - 1]! ^= 1
      await assertRuleAsync(() => verifyTile(leafCid, bad), 'E_TILE', 'bytes')
    }
    await assertRuleAsync(() => verifyTile(bigImport.cid, big.subarray(0, 10)), 'E_MERKLE', 'leafCid')
    await assert.rejects(verifyTile('cid' as unknown as CID, big), TypeError)
  })
})

describe('tiles: byte ranges', () => {
  test('tilesForRange maps each tensor to exactly the tiles that cover its bytes', async () => {
    const parsed = parsePayload(big)
    const index = decodePayloadIndex(big)
    assert.ok(payloadIndexLength(big) + 16 <= TILE_SIZE, 'the index fits the first tile')
    for (const e of index.tensors) {
      const { first, last } = tilesForRange(e.offset, e.size, big.length)
      assert.ok(first * TILE_SIZE <= e.offset && e.offset < (first + 1) * TILE_SIZE)
      const end = e.offset + e.size - 1
      assert.ok(last * TILE_SIZE <= end && end < (last + 1) * TILE_SIZE)
      // Light-client flow: verify only those tiles, cut the TensorBlock out, decode it.
      const parts: Uint8Array[] = []
      for (let t = first; t <= last; t++) {
        const path = await extractTilePath(bigImport.cid, t, blockGetter(bigImport.blocks))
        parts.push((await verifyTilePath(bigImport.cid, path)).bytes)
      }
      const span = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
      parts.reduce((at, p) => (span.set(p, at), at + p.length), 0)
      const block = span.subarray(e.offset - first * TILE_SIZE, e.offset - first * TILE_SIZE + e.size)
      const v = decodeTensorBlock(block)
      assert.deepEqual(v.header, parsed.tensors.get(e.name)!.header)
    }
  })

  test('edges and misuse', () => {
    assert.deepEqual(tilesForRange(0, 1, 1), { first: 0, last: 0 })
    assert.deepEqual(tilesForRange(TILE_SIZE - 1, 2, 3 * TILE_SIZE), { first: 0, last: 1 })
    assert.deepEqual(tilesForRange(TILE_SIZE, TILE_SIZE, 3 * TILE_SIZE), { first: 1, last: 1 })
    assert.deepEqual(tilesForRange(0, 3 * TILE_SIZE, 3 * TILE_SIZE), { first: 0, last: 2 })
    assert.throws(() => tilesForRange(0, 0, 10), RangeError)
    assert.throws(() => tilesForRange(5, 6, 10), /length/)
    assert.throws(() => tilesForRange(10, 1, 10), /offset/)
    assert.throws(() => tilesForRange(-1, 1, 10), /offset/)
    assert.throws(() => tilesForRange(0, 1, 0), /payloadSize/)
  })
})
