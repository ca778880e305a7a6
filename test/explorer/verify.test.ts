/**
 * The explorer's Verify action over real devnets validated as the light client validates them:
 * every block re-checks with every step passed (tile paths on single-tile, three-tile and
 * 1025-tile payloads, the last with an interior level), and each kind of lie fails the step that
 * catches it, with every later step skipped. The adversary is a relay: a getBlock wrapper that
 * alters the real bytes of one block.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { CID } from 'multiformats/cid'
import { documentPayload, type HeaderDraft } from '../../src/chain/build.ts'
import { decodeHeader, type Header, type UnsignedHeader } from '../../src/chain/header.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { encodeMeta } from '../../src/chain/meta.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { verifyBlock, type VerifyInput } from '../../src/explorer/verify.ts'
import { decodeFileNode } from '../../src/codec/unixfs.ts'
import { TILE_SIZE } from '../../src/tensor/tiles.ts'
import type { VerifyReport, VerifyStep } from '../../src/client/api.ts'
import { Devnet, NOW, reseal, sealUnchecked, type Built } from '../fixtures/devnet.ts'
import { HUGE_TILES, hugeDevnet, hugeTileBlock, lightNet, wideDevnet, type LightNet } from './_net.ts'

const standard = (async () => lightNet(await Devnet.standard()))()
const wide = (async () => lightNet(await wideDevnet()))()

function input(net: LightNet, block: AcceptedBlock, change: Partial<VerifyInput> = {}): VerifyInput {
  return { cid: block.cid, headerBytes: block.bytes, view: net.chain, anchor: net.anchor, getBlock: net.getBlock, tile: null, now: NOW, ...change }
}

/** A relay that serves `alter(bytes)` for one CID and the truth for every other. */
function lyingRelay(net: LightNet, target: CID, alter: (bytes: Uint8Array) => Uint8Array): VerifyInput['getBlock'] {
  return async (cid) => {
    const bytes = await net.getBlock(cid)
    return cid.equals(target) ? alter(bytes.slice()) : bytes
  }
}

function flip(at: number): (bytes: Uint8Array) => Uint8Array {
  return (bytes) => {
    bytes[at] = (bytes[at] as number) ^ 0x01
    return bytes
  }
}

function statuses(report: VerifyReport): Record<string, string> {
  return Object.fromEntries(report.steps.map((s) => [s.id, s.status]))
}

function step(report: VerifyReport, id: string): VerifyStep {
  const s = report.steps.find((x) => x.id === id)
  assert.ok(s !== undefined, `no step ${id} in ${report.steps.map((x) => x.id).join(', ')}`)
  return s
}

/** Asserts that `failed` is the one failed step, every step before it passed (or was skipped as allowed) and every one after is skipped for it. */
function assertFailsAt(report: VerifyReport, failed: string, detail?: RegExp): void {
  assert.equal(report.ok, false)
  const i = report.steps.findIndex((s) => s.id === failed)
  assert.ok(i >= 0, `no step ${failed}`)
  assert.equal(report.steps[i]?.status, 'failed', `${failed}: ${report.steps[i]?.detail}`)
  if (detail !== undefined) assert.match(report.steps[i]?.detail as string, detail)
  for (const s of report.steps.slice(0, i)) assert.ok(s.status === 'passed' || (s.id === 'anchor' && s.status === 'skipped'), `${s.id} before ${failed}: ${s.status} ${s.detail}`)
  for (const s of report.steps.slice(i + 1)) {
    assert.equal(s.status, 'skipped', `${s.id} after ${failed}`)
    assert.match(s.detail, new RegExp(`${failed} failed`))
  }
}

const CHAIN_STEPS = ['cid', 'decode', 'pow', 'signature', 'anchor', 'rules', 'pol']

describe('verifyBlock: every devnet block re-checks', () => {
  test('the standard devnet: every block passes every step; PoL is skipped off chain B; single-tile paths', async () => {
    const net = await standard
    assert.equal(net.chain.size, 16)
    for (const block of net.chain.blocks()) {
      const seen: VerifyStep[] = []
      const report = await verifyBlock(input(net, block), (s) => seen.push(s))
      const name = `${block.header.chain_id}:${block.header.index} ${block.header.expert_name ?? block.header.block_type}`
      assert.equal(report.ok, true, `${name}: ${JSON.stringify(report.steps, null, 1)}`)
      assert.deepEqual(seen, report.steps, 'onStep sees every step as it settles, in order')
      assert.equal(report.cid, block.cid.toString())
      assert.equal(report.anchor, net.anchor)
      if (block.header.chain_id === 'B') {
        assert.deepEqual(report.steps.map((s) => s.id), [...CHAIN_STEPS, 'tile-root', 'tile-leaf'])
        assert.ok(report.steps.every((s) => s.status === 'passed'), name)
        assert.equal(report.tile, 0)
        assert.match(step(report, 'tile-root').detail, /the payload is one tile/)
        assert.match(step(report, 'tile-leaf').detail, new RegExp(`^${block.header.payload_size} bytes at payload offset 0`))
      } else {
        assert.deepEqual(report.steps.map((s) => s.id), CHAIN_STEPS)
        assert.deepEqual(report.steps.filter((s) => s.status !== 'passed').map((s) => s.id), ['pol'])
        assert.equal(step(report, 'pol').status, 'skipped')
        assert.equal(report.tile, null)
      }
      assert.match(step(report, 'pow').detail, new RegExp(`leading zero bits in the CID digest >= difficulty ${block.header.difficulty}`))
      assert.match(step(report, 'anchor').detail, new RegExp(`genesis ${net.anchor}, the pinned anchor`))
    }
  })

  test('PoL: the initial version by the genesis rules, the new version by 3 of 4 validators', async () => {
    const net = await standard
    const v0 = await verifyBlock(input(net, net.devnet.accepted('expert0.0')))
    assert.match(step(v0, 'pol').detail, /^genesis version \(v0\), certified by the genesis rules: signed by validator .* one of the 4 of A:0/)
    const v1 = await verifyBlock(input(net, net.devnet.accepted('expert0.0v1')))
    assert.match(step(v1, 'pol').detail, /^3 of 4 validators of A:1 signed, 3 needed; loss 2\.5 -> 2\.3 nats \(8\.00% better, delta 1%\)/)
    assert.match(step(v1, 'rules').detail, /version 1, superseding/)
    const reward = await verifyBlock(input(net, net.devnet.accepted('reward')))
    assert.match(step(reward, 'pol').detail, /chain C: .*passed the rules step/)
  })

  test('multi-tile payloads: tiles 0, 1 and the short last tile of both versions', async () => {
    const net = await wide
    for (const name of ['expert0.0', 'expert0.0v1']) {
      const block = net.devnet.accepted(name)
      const size = block.header.payload_size
      assert.equal(Math.ceil(size / TILE_SIZE), 3, 'three tiles')
      for (const tile of [0, 1, 2]) {
        const report = await verifyBlock(input(net, block, { tile }))
        assert.equal(report.ok, true, JSON.stringify(report.steps, null, 1))
        assert.equal(report.tile, tile)
        assert.deepEqual(report.steps.map((s) => s.id), [...CHAIN_STEPS, 'tile-root', 'tile-leaf'])
        assert.match(step(report, 'tile-root').detail, new RegExp(`UnixFS file of ${size} bytes in 3 links; tile ${tile} \\(byte ${tile * TILE_SIZE}\\) is under link ${tile}`))
        const length = Math.min(TILE_SIZE, size - tile * TILE_SIZE)
        assert.match(step(report, 'tile-leaf').detail, new RegExp(`^${length} bytes at payload offset ${tile * TILE_SIZE} .* path of 2 blocks from the payload CID verified \\(tile ${tile} of 3\\)`))
        assert.equal(step(report, 'tile-leaf').label, `Tile ${tile}`)
      }
    }
  })

  test('a block the page has not accepted yet is judged from scratch against its chain', async () => {
    const net = await standard
    const d = net.devnet
    const next = d.transfer('thanks back', d.alice, d.miner, 10, 'transfer')
    net.store.set(next.sealed.header.payload.toString(), next.input.payload)
    const report = await verifyBlock({ ...input(net, net.chain.blocks()[0] as AcceptedBlock), cid: next.sealed.cid, headerBytes: next.sealed.bytes })
    assert.equal(report.ok, true, JSON.stringify(report.steps, null, 1))
    assert.match(step(report, 'rules').detail, /transfer of 10 covered by the sender's balance/)
    assert.equal(net.chain.get(next.sealed.cid), undefined, 'verifying stores nothing')
  })
})

describe('verifyBlock: lies fail the step that catches them', () => {
  test('a flipped byte in the header bytes fails cid; nothing after it runs', async () => {
    const net = await standard
    const block = net.devnet.accepted('expert0.0v1')
    const bytes = block.bytes.slice()
    bytes[40] = (bytes[40] as number) ^ 0x80
    const report = await verifyBlock(input(net, block, { headerBytes: bytes }))
    assertFailsAt(report, 'cid', new RegExp(`^the ${bytes.length} header bytes hash to \\S+, not ${block.cid}`))
    assert.deepEqual(report.steps.map((s) => s.id), [...CHAIN_STEPS], 'an undecoded header gets no tile steps')
    assert.equal(report.tile, null)
  })

  test('a header signed by another key than miner_pub fails signature; anchor, rules, pol and the tile path are skipped', async () => {
    const net = await standard
    const d = net.devnet
    const header = decodeHeader(d.accepted('embedding').bytes)
    const { payload_sig: _s, nonce: _n, ...unsigned } = header
    const forged = sealUnchecked(unsigned as UnsignedHeader, d.miner) // keeps validator 0's miner_pub
    assert.notDeepEqual(publicKeyOf(d.miner), header.miner_pub)
    const report = await verifyBlock({ ...input(net, d.accepted('embedding')), cid: forged.cid, headerBytes: forged.bytes })
    assertFailsAt(report, 'signature', /^E_SIG \(payload_sig\)/)
    assert.deepEqual(statuses(report), {
      cid: 'passed', decode: 'passed', pow: 'passed', signature: 'failed',
      anchor: 'skipped', rules: 'skipped', pol: 'skipped', 'tile-root': 'skipped', 'tile-leaf': 'skipped'
    })
  })

  test('a re-signed header that breaks a chain rule fails rules; a new version the page has no certificate for fails rules', async () => {
    const net = await standard
    const d = net.devnet
    const bad = reseal(d.built.get('embedding')!, { index: 3 }, d.validators[0]!)
    const report = await verifyBlock({ ...input(net, d.accepted('embedding')), cid: bad.sealed.cid, headerBytes: bad.sealed.bytes })
    assertFailsAt(report, 'rules', /E_INDEX \(index\): must be 0/)

    const v2 = await d.newVersion('expert0.0v2', 'expert0.0v1', 'layer0.expert0', 4242)
    const unknown = await verifyBlock({ ...input(net, d.accepted('expert0.0v1')), cid: v2.sealed.cid, headerBytes: v2.sealed.bytes })
    assertFailsAt(unknown, 'rules', /judged with its PoL certificate, and this page has none/)
  })

  test('a relay serving a wrong document or certificate fails rules', async () => {
    const net = await standard
    const d = net.devnet
    const transfer = d.accepted('transfer')
    const doc = await verifyBlock(input(net, transfer, { getBlock: lyingRelay(net, transfer.header.payload, flip(5)) }))
    assertFailsAt(doc, 'rules', /bytes served for the document .* do not hash to it/)
    const v1 = d.accepted('expert0.0v1')
    const cert = await verifyBlock(input(net, v1, { getBlock: lyingRelay(net, v1.certificate!.cid, flip(20)) }))
    assertFailsAt(cert, 'rules', /the PoL certificate .* do not hash to it/)
  })

  test('a different pinned anchor fails anchor; no anchor skips it and the rest still runs', async () => {
    const net = await standard
    const d = net.devnet
    const block = d.accepted('reward')
    const other = d.accepted('train').cid.toString()
    const report = await verifyBlock(input(net, block, { anchor: other }))
    assertFailsAt(report, 'anchor', new RegExp(`rules block A:0 .* leads by 0 prev links to genesis ${net.anchor}, not the pinned anchor ${other}`))
    const garbage = await verifyBlock(input(net, block, { anchor: 'not a cid' }))
    assertFailsAt(garbage, 'anchor', /is not a CID/)
    const none = await verifyBlock(input(net, block, { anchor: null }))
    assert.equal(none.ok, true)
    assert.equal(none.anchor, null)
    assert.equal(step(none, 'anchor').status, 'skipped')
    assert.match(step(none, 'anchor').detail, /no trust anchor pinned/)
    assert.equal(step(none, 'rules').status, 'passed')
  })

  test('the anchor walk follows prev links, fetching headers the page lacks from the relay and checking them', async () => {
    const net = await lightNet(await Devnet.standard())
    const d = net.devnet
    const doc = documentPayload(encodeMeta(d.meta))
    const meta = (name: string, index: number, prev: string): Built => {
      const built = d.make(name, { ...d.base('A', 'meta'), index, prev: d.cid(prev), payload: doc.cid, payload_size: doc.size } as HeaderDraft, doc.bytes, d.validators[0]!)
      net.store.set(built.sealed.cid.toString(), built.sealed.bytes)
      return built
    }
    const meta1 = meta('meta1', 1, 'genesis')
    const meta2 = meta('meta2', 2, 'meta1')
    const verify2 = (getBlock = net.getBlock): Promise<VerifyReport> =>
      verifyBlock({ ...input(net, d.accepted('genesis')), cid: meta2.sealed.cid, headerBytes: meta2.sealed.bytes, getBlock })
    const orphan = await verify2()
    assert.match(step(orphan, 'anchor').detail, new RegExp(`^this block \\(A:2\\) leads by 2 prev links to genesis ${net.anchor}, the pinned anchor`))
    assertFailsAt(orphan, 'rules', /E_UNKNOWN_DEP \(prev\)/)
    const lied = await verify2(lyingRelay(net, meta1.sealed.cid, flip(30)))
    assertFailsAt(lied, 'anchor', new RegExp(`bytes served for chain A block ${meta1.sealed.cid} .*do not hash to it`))
    await net.chain.submit({ header: meta1.sealed.bytes, payload: doc.bytes }, { now: NOW })
    const whole = await verify2()
    assert.equal(whole.ok, true, JSON.stringify(whole.steps, null, 1))
    assert.match(step(whole, 'rules').detail, /index 2 follows A:1, signed by a validator/)
  })

  test('a relay altering a tile fails tile-leaf; altering the root node fails tile-root', async () => {
    const net = await wide
    const block = net.devnet.accepted('expert0.0v1')
    const tileCid = decodeFileNode(await net.getBlock(block.header.payload), 'root').links[1] as CID
    const leaf = await verifyBlock(input(net, block, { tile: 1, getBlock: lyingRelay(net, tileCid, flip(1000)) }))
    assertFailsAt(leaf, 'tile-leaf', /E_TILE \(bytes\): tile does not hash to/)
    const other = await verifyBlock(input(net, block, { tile: 0, getBlock: lyingRelay(net, tileCid, flip(1000)) }))
    assert.equal(other.ok, true, 'tile 0 does not read tile 1')

    const root = await verifyBlock(input(net, block, { tile: 2, getBlock: lyingRelay(net, block.header.payload, flip(10)) }))
    assertFailsAt(root, 'tile-root', /do not hash to the payload CID/)
    assert.deepEqual(root.steps.slice(-2).map((s) => `${s.id} ${s.status}`), ['tile-root failed', 'tile-leaf skipped'])

    const single = await standard
    const emb = single.devnet.accepted('embedding')
    const one = await verifyBlock(input(single, emb, { getBlock: lyingRelay(single, emb.header.payload, flip(300)) }))
    assertFailsAt(one, 'tile-root', /do not hash to the payload CID/)
  })

  test('a tile out of range is a failed step, not an exception', async () => {
    const net = await wide
    const block = net.devnet.accepted('expert0.0')
    for (const tile of [3, 1000, -1, 1.5]) {
      const report = await verifyBlock(input(net, block, { tile }))
      assertFailsAt(report, 'tile-root', new RegExp(`^tile ${tile} is out of range: the payload's ${block.header.payload_size} bytes make 3 tiles \\(0\\.\\.2\\)`))
    }
  })

  test('an aborted verify rejects with the abort reason', async () => {
    const net = await standard
    const controller = new AbortController()
    controller.abort()
    await assert.rejects(verifyBlock(input(net, net.devnet.accepted('genesis'), { signal: controller.signal })), { name: 'AbortError' })
  })
})

describe('verifyBlock: a payload of more than 1024 tiles (an interior level)', () => {
  test('tile-root, tile-node-1, tile-leaf pass for the first, a middle and the last tile; a lying relay fails the level it lies about', async () => {
    const net = await lightNet(await hugeDevnet())
    const { block } = await hugeTileBlock(net)
    for (const tile of [0, 700, HUGE_TILES - 1]) {
      const report = await verifyBlock(input(net, block, { tile }))
      assert.equal(report.ok, true, JSON.stringify(report.steps, null, 1))
      assert.deepEqual(report.steps.map((s) => s.id), [...CHAIN_STEPS, 'tile-root', 'tile-node-1', 'tile-leaf'])
      const under = tile < 1024 ? 0 : 1
      assert.match(step(report, 'tile-root').detail, new RegExp(`in 2 links; tile ${tile} \\(byte ${tile * TILE_SIZE}\\) is under link ${under}`))
      assert.match(step(report, 'tile-node-1').detail, new RegExp(`covers bytes \\[${under * 1024 * TILE_SIZE}, \\d+\\) in ${under === 0 ? 1024 : 1} links; tile ${tile} is under link ${tile % 1024}`))
      assert.match(step(report, 'tile-leaf').detail, new RegExp(`path of 3 blocks from the payload CID verified \\(tile ${tile} of ${HUGE_TILES}\\)`))
    }

    const root = decodeFileNode(await net.getBlock(block.header.payload), 'root')
    const node = root.links[0] as CID
    const lie = await verifyBlock(input(net, block, { tile: 5, getBlock: lyingRelay(net, node, flip(100)) }))
    assertFailsAt(lie, 'tile-node-1', /do not hash to the link in their parent/)
    const leafCid = decodeFileNode(await net.getBlock(node), 'node').links[5] as CID
    const leaf = await verifyBlock(input(net, block, { tile: 5, getBlock: lyingRelay(net, leafCid, (b) => b.subarray(0, 100)) }))
    assertFailsAt(leaf, 'tile-leaf', /E_TILE/)

    // Steps after a failure list the levels a balanced tree of this size has.
    const forged = sealUnchecked((({ payload_sig: _s, nonce: _n, ...u }) => u)(block.header as Header) as UnsignedHeader, net.devnet.miner)
    const sig = await verifyBlock({ ...input(net, block), cid: forged.cid, headerBytes: forged.bytes })
    assert.deepEqual(sig.steps.slice(-3).map((s) => `${s.id} ${s.status}`), ['tile-root skipped', 'tile-node-1 skipped', 'tile-leaf skipped'])
  })
})
