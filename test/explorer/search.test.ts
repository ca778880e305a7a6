/**
 * Explorer summaries, block details, search and lists over the standard devnet as the light
 * client holds it (chain B accepted without payloads).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { CID } from 'multiformats/cid'
import { toHex } from '../../src/codec/cbor.ts'
import { HEADER_KEYS, expertName } from '../../src/chain/header.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { listBlocks, parseQuery, searchBlocks } from '../../src/explorer/search.ts'
import { blockLabel, detail, labelOf, summarize } from '../../src/explorer/summaries.ts'
import { decodePayloadIndex } from '../../src/tensor/payload.ts'
import { decodeFileNode } from '../../src/codec/unixfs.ts'
import { Devnet } from '../fixtures/devnet.ts'
import { lightNet, wideDevnet } from './_net.ts'

const standard = (async () => lightNet(await Devnet.standard()))()

/** `C:0 reward`, `B:1 layer0.expert0`: how a result reads in an assertion. */
const label = (s: { chain: string; index: number; expertName: string | null; blockType: string }): string => `${s.chain}:${s.index} ${s.expertName ?? s.blockType}`

describe('summaries', () => {
  test('every block: fields from the header, PoL status and the current version', async () => {
    const net = await standard
    const d = net.devnet
    const index = net.chain.paramIndex()
    for (const block of net.chain.blocks()) {
      const s = summarize(block, index)
      const h = block.header
      assert.equal(s.cid, block.cid.toString())
      assert.equal(s.chain, h.chain_id)
      assert.equal(s.index, h.index)
      assert.equal(s.minerPub, toHex(h.miner_pub))
      assert.equal(s.payload, h.payload.toString())
      assert.deepEqual(s.dependsOn, h.depends_on.map(String))
      assert.ok(Object.isFrozen(s))
      if (h.chain_id !== 'B') {
        assert.equal(s.pol, 'none')
        assert.equal(s.current, false)
      }
    }
    const pol = (name: string): unknown => summarize(d.accepted(name), index).pol
    assert.equal(pol('embedding'), 'genesis')
    assert.equal(pol('expert0.0'), 'genesis')
    assert.equal(pol('expert0.0v1'), 'certified')
    assert.equal(pol('reward'), 'none')
    const v0 = summarize(d.accepted('expert0.0'), index)
    const v1 = summarize(d.accepted('expert0.0v1'), index)
    assert.deepEqual([v0.version, v0.current, v1.version, v1.current], [0, false, 1, true])
    assert.equal(v1.supersedes, v0.cid)
    assert.equal(summarize(d.accepted('expert1.1'), index).current, true)
  })

  test('labels: chain and height on A, C, D; expert name and version on chain B, one per block here', async () => {
    const net = await standard
    const d = net.devnet
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    const labelled = (name: string): string => summarize(d.accepted(name), index).label
    assert.equal(labelled('genesis'), 'A:0')
    assert.equal(labelled('reward'), 'C:0')
    assert.equal(labelled('transfer'), 'C:1')
    assert.equal(labelled('embedding'), 'B:embedding@v0')
    assert.equal(labelled('expert0.0'), 'B:layer0.expert0@v0')
    assert.equal(labelled('expert0.0v1'), 'B:layer0.expert0@v1')
    assert.equal(blockLabel(d.accepted('expert0.0v1')), 'B:layer0.expert0@v1')
    // Every chain B block sits at depth 0 or 1, yet each has a label of its own.
    const b = blocks.filter((x) => x.header.chain_id === 'B')
    assert.ok(b.filter((x) => x.header.index === 0).length > 1)
    assert.equal(new Set(b.map(blockLabel)).size, b.length)
    assert.equal(new Set(blocks.map(blockLabel)).size, blocks.length)
    assert.equal(labelOf('B', 3, 'layer2.router', 4), 'B:layer2.router@v4')
    assert.equal(labelOf('D', 3, null, 0), 'D:3')
  })

  test('names: a chain B block\'s expert, a dataset\'s name, a decision\'s dataset (when the lookup finds it)', async () => {
    const net = await standard
    const d = net.devnet
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    const lookup = (cid: CID): AcceptedBlock | undefined => net.chain.get(cid)
    const named = (name: string): string | null => summarize(d.accepted(name), index, lookup).name
    assert.equal(named('expert0.0v1'), 'layer0.expert0')
    assert.equal(named('train'), 'train')
    assert.equal(named('validation'), 'validation')
    assert.equal(named('approve-train'), 'train')
    assert.equal(named('approve-validation'), 'validation')
    assert.equal(named('genesis'), null)
    assert.equal(named('reward'), null)
    assert.equal(summarize(d.accepted('approve-train'), index).name, null, 'no lookup: the decision\'s dataset is unknown')
    // Lists and search name decisions from the blocks they are given.
    assert.deepEqual(listBlocks(blocks, index, 'D', 10).map((s) => `${s.label} ${s.name} ${s.blockType}`), ['D:3 validation decision', 'D:2 train decision', 'D:1 validation dataset', 'D:0 train dataset'])
    assert.equal(detail(net.chain.get(d.cid('approve-train')) as AcceptedBlock, index, blocks).name, 'train')
  })

  test('detail: every header field, the certificate and its signers, tiles, dependents', async () => {
    const net = await standard
    const d = net.devnet
    const index = net.chain.paramIndex()
    const all = net.chain.blocks()
    const light = (name: string): AcceptedBlock => net.chain.get(d.cid(name)) as AcceptedBlock
    const v1 = detail(light('expert0.0v1'), index, all)
    assert.deepEqual(Object.keys(v1.header).sort(), [...HEADER_KEYS].sort())
    assert.equal(v1.header['expert_name'], expertName(0, 0))
    assert.equal(v1.header['payload_sig'], toHex(light('expert0.0v1').header.payload_sig))
    assert.equal(v1.headerHex, toHex(light('expert0.0v1').bytes))
    assert.equal(v1.meta, net.anchor)
    assert.equal(v1.work, '16')
    assert.equal(v1.tiles, 1)
    assert.equal(v1.tensors, null, 'light mode: no payload, no tensors')
    assert.ok(v1.certificate !== null)
    assert.deepEqual(v1.certificate.signers, d.validators.slice(0, 3).map((k) => toHex(publicKeyOf(k))))
    const body = v1.certificate.body as Record<string, unknown>
    assert.equal(body['candidate'], v1.cid)
    assert.equal(body['loss_after'], 2.3)
    assert.equal(body['signatures'], undefined, 'the body is what validators sign')
    assert.deepEqual(v1.dependents, [d.cid('reward').toString()])
    assert.deepEqual(detail(light('expert0.0'), index, all).dependents, [v1.cid])

    const genesis = detail(light('genesis'), index, all)
    assert.equal(genesis.tiles, 0)
    assert.equal(genesis.certificate, null)
    assert.equal((genesis.document as Record<string, unknown>)['network'], 'blyan-testnet')
    assert.equal(genesis.dependents.length, 14, 'every B, C and D block names the genesis')
    assert.deepEqual(genesis.dependents.map((c) => all.find((b) => b.cid.toString() === c)!.header.chain_id).join(''), 'BBBBBBBBCCDDDD', 'by chain, index, CID')

    const reward = detail(light('reward'), index, all)
    assert.equal(reward.certificate?.cid, v1.certificate.cid, 'the reward links the same certificate')
    assert.equal(reward.work, '16')
    assert.equal(detail(light('transfer'), index, all).work, '32', 'cumulative on linear chains')
  })

  test('detail: tensors from the index of the first tile (light mode) or from a full record', async () => {
    const net = await lightNet(await wideDevnet())
    const block = net.devnet.accepted('expert0.0v1') // the full devnet's record, payload checked
    const light = net.chain.get(block.cid) as AcceptedBlock
    const index = net.chain.paramIndex()
    const full = detail(block, index, [block])
    assert.equal(full.tiles, 3)
    assert.deepEqual(full.tensors?.map((t) => [t.name, t.dtype, t.shape.join('x')]), [['w1', 'int8', '3072x64'], ['w2', 'int8', '64x3072'], ['w3', 'int8', '3072x64']])
    assert.ok(full.tensors !== null && full.tensors.every((t) => t.offset % 256 === 0 && t.size > 0))
    assert.equal(detail(light, index, [light]).tensors, null)
    const tile0 = await net.getBlock(decodeFileNode(await net.getBlock(light.header.payload), 'root').links[0]!)
    assert.deepEqual(detail(light, index, [light], decodePayloadIndex(tile0)).tensors, full.tensors)
  })
})

describe('search', () => {
  test('queries parse into every reading they allow; garbage into none', () => {
    assert.deepEqual(parseQuery(''), [])
    assert.deepEqual(parseQuery('   '), [])
    assert.deepEqual(parseQuery('#$%!'), [])
    assert.deepEqual(parseQuery('A:3').map((q) => q.kind), ['height'])
    assert.deepEqual(parseQuery(' b:0 '), [{ kind: 'height', chain: 'B', index: 0 }])
    assert.deepEqual(parseQuery('7'), [{ kind: 'height', chain: null, index: 7 }])
    assert.deepEqual(parseQuery('12345678').map((q) => q.kind), ['height', 'key'])
    assert.deepEqual(parseQuery('Layer0.Expert'), [{ kind: 'name', name: 'layer0.expert' }, { kind: 'dataset', name: 'layer0.expert' }])
    assert.deepEqual(parseQuery('reward').map((q) => q.kind), ['name', 'dataset', 'type'])
    assert.deepEqual(parseQuery('B:layer0.expert3@v1'), [{ kind: 'label', name: 'layer0.expert3', version: 1 }])
    assert.deepEqual(parseQuery('layer0.expert3@v1'), [{ kind: 'label', name: 'layer0.expert3', version: 1 }])
    assert.deepEqual(parseQuery('b:Layer0.Expert3@2'), [{ kind: 'label', name: 'layer0.expert3', version: 2 }])
    assert.deepEqual(parseQuery('B:layer0.expert3'), [{ kind: 'name', name: 'layer0.expert3' }])
    assert.deepEqual(parseQuery('genesis-train'), [{ kind: 'dataset', name: 'genesis-train' }])
    assert.deepEqual(parseQuery('B:3'), [{ kind: 'height', chain: 'B', index: 3 }])
    assert.throws(() => parseQuery(3 as unknown as string), TypeError)
  })

  test('by header, payload or certificate CID: exact, in either base32 case', async () => {
    const net = await standard
    const d = net.devnet
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    const emb = d.accepted('embedding')
    assert.deepEqual(searchBlocks(emb.cid.toString(), blocks, index).map((s) => s.cid), [emb.cid.toString()])
    assert.deepEqual(searchBlocks(emb.cid.toString().toUpperCase(), blocks, index).map((s) => s.cid), [emb.cid.toString()])
    assert.deepEqual(searchBlocks(emb.header.payload.toString(), blocks, index).map((s) => s.cid), [emb.cid.toString()])
    assert.deepEqual(searchBlocks(emb.cid.toV1().toString().slice(0, -1), blocks, index), [], 'no partial CIDs')
    const cert = d.accepted('expert0.0v1').certificate!.cid.toString()
    assert.deepEqual(searchBlocks(cert, blocks, index).map(label), ['B:1 layer0.expert0', 'C:0 reward'])
  })

  test('by height: A:0, b:0, and a bare integer across chains, ordered by chain then index', async () => {
    const net = await standard
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    assert.deepEqual(searchBlocks('A:0', blocks, index).map(label), ['A:0 meta'])
    assert.deepEqual(searchBlocks('A:1', blocks, index).map(label), ['A:1 meta'])
    assert.deepEqual(searchBlocks('A:2', blocks, index), [])
    assert.equal(searchBlocks('b:0', blocks, index).length, 7)
    assert.ok(searchBlocks('b:0', blocks, index).every((s) => s.chain === 'B' && s.index === 0))
    assert.deepEqual(searchBlocks('1', blocks, index).map(label), ['A:1 meta', 'B:1 layer0.expert0', 'C:1 transfer', 'D:1 dataset'])
    const zero = searchBlocks('0', blocks, index).map((s) => s.chain)
    assert.deepEqual(zero, ['A', 'B', 'B', 'B', 'B', 'B', 'B', 'B', 'C', 'D'])
  })

  test('by expert name: exact first, then prefix at a number boundary; by block type', async () => {
    const net = await standard
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    const names = (q: string): string[] => searchBlocks(q, blocks, index).map(label)
    assert.deepEqual(names('layer0.expert0'), ['B:0 layer0.expert0', 'B:1 layer0.expert0'])
    assert.deepEqual(names('LAYER1.ROUTER'), ['B:0 layer1.router'])
    assert.deepEqual(new Set(names('layer0')), new Set(['B:0 layer0.router', 'B:0 layer0.expert0', 'B:0 layer0.expert1', 'B:1 layer0.expert0']))
    assert.deepEqual(new Set(names('layer0.expert')), new Set(['B:0 layer0.expert0', 'B:0 layer0.expert1', 'B:1 layer0.expert0']))
    assert.deepEqual(names('layer0.expert1'), ['B:0 layer0.expert1'])
    assert.deepEqual(names('layer0.exp'), names('layer0.expert'))
    assert.deepEqual(names('embed'), ['B:0 embedding'])
    assert.deepEqual(names('layer2'), [])
    assert.equal(names('layer').length, 7)
    assert.deepEqual(names('router'), ['B:0 layer0.router', 'B:0 layer1.router'])
    assert.deepEqual(names('reward'), ['C:0 reward'])
    // An exact name outranks prefixes: `layer0.expert1` first though it sorts after `layer0.expert0`.
    assert.equal(names('layer0.expert1')[0], 'B:0 layer0.expert1')
  })

  test('by label: every label a list shows finds its block; B:<expert> every version of it', async () => {
    const net = await standard
    const d = net.devnet
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    for (const chain of ['A', 'B', 'C', 'D'] as const) {
      for (const row of listBlocks(blocks, index, chain, 100)) {
        const found = searchBlocks(row.label, blocks, index)
        assert.equal(found[0]?.cid, row.cid, `${row.label} finds its block first`)
        if (chain === 'B') assert.deepEqual(found.map((s) => s.cid), [row.cid], `${row.label} finds only its block`)
        assert.equal(searchBlocks(row.label.toLowerCase(), blocks, index)[0]?.cid, row.cid, 'in either case')
      }
    }
    assert.deepEqual(searchBlocks('layer0.expert0@v1', blocks, index).map((s) => s.label), ['B:layer0.expert0@v1'])
    assert.deepEqual(searchBlocks('B:layer0.expert0@1', blocks, index).map((s) => s.label), ['B:layer0.expert0@v1'])
    assert.deepEqual(searchBlocks('B:layer0.expert0@v2', blocks, index), [])
    assert.deepEqual(searchBlocks('B:layer0.expert0', blocks, index).map((s) => s.label), ['B:layer0.expert0@v0', 'B:layer0.expert0@v1'])
    assert.deepEqual(searchBlocks('B:layer0.expert1@v0', blocks, index).map((s) => s.cid), [d.cid('expert0.1').toString()])
    // `B:<n>` is still the header's index, a depth in the DAG: B:1 is the one version at depth 1, B:3 nothing here.
    assert.deepEqual(searchBlocks('B:1', blocks, index).map((s) => s.label), ['B:layer0.expert0@v1'])
    assert.deepEqual(searchBlocks('B:3', blocks, index), [])
  })

  test('by dataset name: exact first, then prefix; a decision by the dataset it decides', async () => {
    const net = await standard
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    const found = (q: string): string[] => searchBlocks(q, blocks, index).map((s) => `${s.label} ${s.blockType}`)
    assert.deepEqual(found('train'), ['D:0 dataset', 'D:2 decision'])
    assert.deepEqual(found('VALID'), ['D:1 dataset', 'D:3 decision'])
    assert.deepEqual(found('trains'), [])
  })

  test('by public key: whole or a prefix of 8+ hex digits, signer first, then ledger recipient', async () => {
    const net = await standard
    const d = net.devnet
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    const miner = toHex(publicKeyOf(d.miner))
    const keyed = (q: string): string[] => searchBlocks(q, blocks, index).map(label)
    assert.deepEqual(keyed(miner), ['B:1 layer0.expert0', 'C:1 transfer', 'C:0 reward'])
    assert.deepEqual(keyed(miner.toUpperCase()), keyed(miner))
    assert.deepEqual(keyed(`0x${miner.slice(0, 8)}`), keyed(miner))
    assert.deepEqual(keyed(miner.slice(0, 7)), [], 'under 8 hex digits is not a key')
    assert.deepEqual(keyed(toHex(publicKeyOf(d.alice))), ['C:1 transfer'])
    const v0 = toHex(publicKeyOf(d.validators[0]!))
    assert.equal(keyed(v0.slice(0, 10)).length, 14, 'genesis, the beacon, 2 datasets, 2 decisions, 7 initial versions, the reward')
    assert.deepEqual(keyed('02' + 'f'.repeat(64)), [])
  })

  test('limits and garbage', async () => {
    const net = await standard
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    for (const q of ['', '   ', 'zzz', 'not a cid', '::', 'A:', 'E:1', '-1', '1.5', 'bafy', 'x'.repeat(300)]) assert.deepEqual(searchBlocks(q, blocks, index), [], q)
    assert.equal(searchBlocks('0', blocks, index, 3).length, 3)
    assert.deepEqual(searchBlocks('0', blocks, index, 0), [])
    assert.throws(() => searchBlocks('0', blocks, index, -1), RangeError)
  })
})

describe('listBlocks', () => {
  test('newest first, at most limit, below before', async () => {
    const net = await standard
    const index = net.chain.paramIndex()
    const blocks = net.chain.blocks()
    assert.deepEqual(listBlocks(blocks, index, 'A', 10).map(label), ['A:1 meta', 'A:0 meta'])
    assert.deepEqual(listBlocks(blocks, index, 'C', 10).map(label), ['C:1 transfer', 'C:0 reward'])
    assert.deepEqual(listBlocks(blocks, index, 'C', 10, 1).map(label), ['C:0 reward'])
    assert.deepEqual(listBlocks(blocks, index, 'C', 10, 0), [])
    const b = listBlocks(blocks, index, 'B', 3)
    assert.equal(b[0]?.expertName, 'layer0.expert0')
    assert.equal(b[0]?.index, 1)
    assert.ok((b[1]?.timestamp as number) > (b[2]?.timestamp as number), 'equal heights: latest first')
    assert.equal(listBlocks(blocks, index, 'B', 100).length, 8)
    assert.deepEqual(listBlocks(blocks, index, 'D', 0), [])
    assert.throws(() => listBlocks(blocks, index, 'E' as 'A', 1), RangeError)
  })
})
