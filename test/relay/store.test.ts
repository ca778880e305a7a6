/**
 * The full node's SQLite chain store (relay/node/chain-store.ts) against the in-memory reference (MemoryChain):
 * the same blocks, validated through either, give the same answers (blocks, fork choice, balances,
 * rewards, param index, header ranges). The store persists, hashes its content independently of
 * order, names the first damaged item, and survives SIGKILL at any instant with every reported
 * block complete.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { CID } from 'multiformats/cid'
import { StoreDamagedError, type ChainStore, type Rejection } from '../../relay/node/interface.ts'
import { openChainStore } from '../../relay/node/chain-store.ts'
import { documentPayload, type HeaderDraft } from '../../src/chain/build.ts'
import { DAG_CBOR, cidOf, compareCids } from '../../src/codec/cbor.ts'
import { orderBlocks } from '../../src/chain/dag.ts'
import { encodeDataset } from '../../src/chain/dataset.ts'
import { CHAIN_IDS, EMBEDDING_NAME, expertName, type ChainId } from '../../src/chain/header.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { rewardAmount } from '../../src/chain/ledger.ts'
import { MemoryChain } from '../../src/chain/memory.ts'
import { encodeMeta, type MetaDocument } from '../../src/chain/meta.ts'
import { decodeCertificate } from '../../src/chain/pol.ts'
import { validateBlock, type FullBlockInput } from '../../src/chain/validate.ts'
import type { AcceptedBlock, ChainView } from '../../src/chain/view.ts'
import { RuleError } from '../../src/errors.ts'
import { importPayload } from '../../src/tensor/tiles.ts'
import { Devnet, NOW, TINY_ARCH, type Built } from '../fixtures/devnet.ts'
import { submissionBlocks, submissionToJson } from './fixtures/submission.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CRASH_WRITER = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url))
const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

/** Dataset contents of the standard devnet (test/fixtures/devnet.ts), the files its D blocks link. */
const STANDARD_FILES: Record<string, Uint8Array> = {
  train: enc('Once upon a time.\n\nThe end.\n'),
  validation: enc('A cat sat.\n\nA dog ran.\n')
}

/** 300 KB of text: a two-tile UnixFS file (dag-pb root over two raw leaves). */
function bigText(seed: number): Uint8Array {
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'far']
  let s = ''
  for (let i = 0; s.length < 300_000; i++) s += words[(i * 7 + seed) % words.length] + (i % 13 === 12 ? '.\n\n' : ' ')
  return enc(s)
}

// ---------------------------------------------------------------------------------------------
// The scenario: the standard devnet plus forks on chains A and C and competing versions on B

interface Scenario {
  readonly d: Devnet
  /** Block names in acceptance order (dependencies first). */
  readonly names: string[]
  /** Name -> the linked files its submission brings. */
  readonly files: Map<string, Uint8Array[]>
}

function metaBlock(d: Devnet, name: string, doc: MetaDocument, signer: Uint8Array, prev = 'genesis', index = 1): Built {
  const p = documentPayload(encodeMeta(doc))
  return d.make(name, { ...d.base('A', 'meta'), index, prev: d.cid(prev), payload: p.cid, payload_size: p.size } as HeaderDraft, p.bytes, signer)
}

async function scenario(): Promise<Scenario> {
  const d = await Devnet.standard()
  const names = [...d.built.keys()]
  const files = new Map<string, Uint8Array[]>(Object.entries(STANDARD_FILES).map(([k, v]) => [k, [v]]))
  const add = async (name: string, built: Built | Promise<Built>): Promise<void> => {
    await d.submit(await built)
    names.push(name)
  }
  // Chain A: two meta blocks at index 1 (a fork), later a third on the fork-choice loser.
  await add('metaA', metaBlock(d, 'metaA', { ...d.meta, pol: { ...d.meta.pol, delta: 0.02 } }, d.validators[1] as Uint8Array))
  await add('metaB', metaBlock(d, 'metaB', { ...d.meta, pol: { ...d.meta.pol, delta: 0.03 } }, d.validators[2] as Uint8Array))
  // Chain B: two improvements of one base (lower loss wins), then a version on the worse one (newer wins).
  await add('v-a', d.newVersion('v-a', 'expert1.0', expertName(1, 0), 6, (b) => d.certificate({ ...b, loss_after: 2.4 })))
  await add('v-b', d.newVersion('v-b', 'expert1.0', expertName(1, 0), 7, (b) => d.certificate({ ...b, loss_after: 2.2 })))
  // Chain C: a second branch from index 0 rewarding the same candidate, with transfers both ways.
  const cert = (d.built.get('expert0.0v1') as Built).input.certificate as Uint8Array
  await add('fork', d.reward('fork', 'expert0.0v1', cert, null))
  await add('fork-t1', d.transfer('fork-t1', d.miner, d.alice, 500, 'fork'))
  await add('fork-t2', d.transfer('fork-t2', d.alice, d.miner, 200, 'fork-t1'))
  const certA = (d.built.get('v-a') as Built).input.certificate as Uint8Array
  await add('reward-a', d.reward('reward-a', 'v-a', certA, 'transfer', rewardAmount(decodeCertificate(certA), d.meta.reward)))
  await add('v-c', d.newVersion('v-c', 'v-a', expertName(1, 0), 8))
  await add('fork-t3', d.transfer('fork-t3', d.miner, d.alice, 1, 'fork-t2'))
  const loser = compareCids(d.cid('metaA'), d.cid('metaB')) < 0 ? 'metaB' : 'metaA'
  await add('metaC', metaBlock(d, 'metaC', d.meta, d.validators[0] as Uint8Array, loser, 2))
  // Chain D: a dataset whose content is a two-tile file.
  const big = bigText(1)
  files.set('big-data', [big])
  await add('big-data', d.dataset('big-data', 'train', new TextDecoder().decode(big), 'validation'))
  return { d, names, files }
}

const inputOf = (s: Scenario, name: string): FullBlockInput => (s.d.built.get(name) as Built).input
const blocksOf = (s: Scenario, name: string): Promise<Map<string, Uint8Array>> => submissionBlocks(inputOf(s, name), s.files.get(name) ?? [])

/** Validate `name` against the store (as the node does) and put it with what its submission brings. */
async function accept(store: ChainStore, s: Scenario, name: string): Promise<AcceptedBlock> {
  const block = await validateBlock(inputOf(s, name), store, { now: NOW })
  store.put(block, await blocksOf(s, name))
  return block
}

/** Chain B head of the reference: highest index, ties lowest CID bytes. */
function headB(blocks: readonly AcceptedBlock[]): AcceptedBlock | undefined {
  return [...blocks].sort((a, b) => b.header.index - a.header.index || compareCids(a.cid, b.cid))[0]
}

function refHead(ref: MemoryChain, chain: ChainId): string | undefined {
  return (chain === 'B' ? headB(ref.blocks('B')) : ref.head(chain))?.cid.toString()
}

/** Validation outcome through a view: 'ok' or the rule code. */
async function outcome(view: ChainView, input: FullBlockInput): Promise<string> {
  try {
    await validateBlock(input, view, { now: NOW })
    return 'ok'
  } catch (e) {
    if (e instanceof RuleError) return e.code
    throw e
  }
}

function rejectionOf(e: RuleError, cid: CID | null, chain: ChainId | null, blockType: string | null): Rejection {
  return { cid: cid?.toString() ?? null, code: e.code, field: e.field, message: e.message, at: NOW, chain, blockType, scope: 'block' }
}

/** Everything a query can ask agrees between the store and the reference. */
function assertAgrees(store: ChainStore, s: Scenario, order: readonly string[] = s.names.map((n) => s.d.cid(n).toString())): void {
  const ref = s.d.chain
  assert.equal(store.size, ref.size)
  for (const name of s.names) {
    const cid = s.d.cid(name)
    assert.deepStrictEqual(store.get(cid), ref.get(cid), name)
    assert.equal(store.isRejected(cid), false)
  }
  assert.deepEqual([...store.all()].map((b) => b.cid.toString()), order)
  for (const chain of CHAIN_IDS) assert.equal(store.head(chain)?.cid.toString(), refHead(ref, chain), `head ${chain}`)
  assert.equal(store.genesis()?.cid.toString(), s.d.cid('genesis').toString())

  const cBlocks = [null, ...ref.blocks('C').map((b) => b.cid)]
  const keys = [s.d.miner, s.d.alice, s.d.validators[0] as Uint8Array].map(publicKeyOf)
  const candidates = ['expert0.0v1', 'v-a', 'v-b', 'expert1.1'].map((n) => s.d.cid(n))
  for (const at of cBlocks) {
    for (const pub of keys) assert.equal(store.balance(pub, at), ref.balance(pub, at), `balance at ${String(at)}`)
    for (const c of candidates) assert.equal(store.isRewarded(c, at), ref.isRewarded(c, at), `isRewarded ${c} at ${String(at)}`)
  }
  const index = (m: Map<string, AcceptedBlock>): [string, string][] => [...m].map(([k, b]): [string, string] => [k, b.cid.toString()]).sort()
  assert.deepEqual(index(store.paramIndex()), index(ref.paramIndex()))

  for (const chain of CHAIN_IDS) {
    const sorted = ref.blocks(chain).sort((a, b) => a.header.index - b.header.index || compareCids(a.cid, b.cid))
    for (const [from, to, limit] of [[0, 0, 10], [0, 1000, 1000], [1, 2, 10], [0, 1000, 3], [5, 3, 10], [2, 2, 0]] as const) {
      const want = sorted.filter((b) => b.header.index >= from && b.header.index <= to).slice(0, limit).map((b) => b.cid.toString())
      assert.deepEqual(store.headers(chain, from, to, limit).map((b) => b.cid.toString()), want, `headers ${chain} ${from}..${to} limit ${limit}`)
    }
  }
}

// ---------------------------------------------------------------------------------------------

describe('relay chain store (SQLite)', () => {
  let dir: string
  let s: Scenario
  let store: ChainStore
  let path: string

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'blyan-store-'))
    s = await scenario()
    path = join(dir, 'chain.db')
    store = openChainStore(path)
  })
  after(() => {
    try {
      store.close()
    } catch {
      // already closed by a test
    }
    rmSync(dir, { recursive: true, force: true })
  })

  test('blocks validated through the store equal the reference; heads follow fork choice after every put', async () => {
    const ref = new MemoryChain()
    assert.equal(store.head('A'), undefined)
    assert.equal(store.genesis(), undefined)
    for (const name of s.names) {
      const block = await accept(store, s, name)
      const want = s.d.chain.get(block.cid) as AcceptedBlock
      assert.deepStrictEqual(block, want, name)
      ref.add(want)
      for (const chain of CHAIN_IDS) assert.equal(store.head(chain)?.cid.toString(), refHead(ref, chain), `head ${chain} after ${name}`)
    }
    assertAgrees(store, s)
    // The forks did what they are for.
    assert.equal(store.head('A')?.cid.toString(), s.d.cid('metaC').toString())
    assert.equal(store.head('C')?.cid.toString(), s.d.cid('fork-t3').toString())
    assert.equal(store.paramIndex().get(expertName(1, 0))?.cid.toString(), s.d.cid('v-c').toString())
    assert.equal(store.balance(publicKeyOf(s.d.miner), s.d.cid('fork-t3')), 1080 - 500 + 200 - 1)
    assert.equal(store.isRewarded(s.d.cid('expert0.0v1'), s.d.cid('fork-t1')), true)
    assert.equal(store.isRewarded(s.d.cid('v-a'), s.d.cid('fork-t3')), false)
    store.check()
  })

  test('validation through the store refuses what the reference refuses, and remembers permanent rejections', async () => {
    const d = s.d
    const cert = inputOf(s, 'expert0.0v1').certificate as Uint8Array
    const cases: FullBlockInput[] = [
      d.reward('again-main', 'expert0.0v1', cert, 'reward-a').input, // rewarded on this branch
      d.reward('again-fork', 'expert0.0v1', cert, 'fork-t3').input,
      d.transfer('over', d.miner, d.alice, 780, 'fork-t3').input, // 779 left on the fork
      d.transfer('exact', d.miner, d.alice, 779, 'fork-t3').input,
      d.transfer('over-main', d.miner, d.alice, 980 + 1040 + 1, 'reward-a').input, // reward-a earned 1040
      d.transfer('exact-main', d.miner, d.alice, 980 + 1040, 'reward-a').input
    ]
    for (const input of cases) assert.equal(await outcome(store, input), await outcome(d.chain, input))
    assert.deepEqual(await Promise.all(cases.map((i) => outcome(store, i))), ['E_REWARD', 'E_REWARD', 'E_BALANCE', 'ok', 'E_BALANCE', 'ok'])

    // A refused block is remembered, so a block on it is invalid, not an orphan; transient codes are not.
    const doc = documentPayload(encodeDataset({
      kind: 'blyan/dataset', version: 1, name: 'x', license: 'MIT', split: 'train', format: 'text/plain; blank-line-separated',
      content: cidOf(new Uint8Array([1]), 0x55), content_size: 0, description: ''
    }))
    const bad = d.make('bad', { ...d.base('D', 'dataset'), index: 3, prev: d.cid('big-data'), payload: doc.cid, payload_size: doc.size } as HeaderDraft, doc.bytes, d.validators[0] as Uint8Array)
    const child = await d.dataset('on-bad', 'train', 'x', 'bad')
    assert.equal(await outcome(store, child.input), 'E_UNKNOWN_DEP')
    store.addRejection(rejectionOf(new RuleError('E_UNKNOWN_DEP', 'prev'), child.sealed.cid, 'D', 'dataset'))
    assert.equal(store.isRejected(child.sealed.cid), false)
    const hash = store.contentHash()
    const err = await validateBlock(bad.input, store, { now: NOW }).then(() => assert.fail('accepted'), (e: unknown) => e as RuleError)
    assert.equal(err.code, 'E_DATASET')
    store.addRejection(rejectionOf(err, bad.sealed.cid, 'D', 'dataset'))
    store.addRejection(rejectionOf(new RuleError('E_DECODE', 'header'), null, null, null))
    assert.equal(store.isRejected(bad.sealed.cid), true)
    assert.equal(await outcome(store, child.input), 'E_INVALID_DEP')
    // Rejections are a log, not content; a refused block's bytes are never served.
    assert.equal(store.contentHash(), hash)
    assert.equal(store.hasRaw(bad.sealed.cid), false)
    assert.equal(store.getRaw(doc.cid), undefined)
    const log = store.rejections(10)
    assert.deepEqual(log.map((r) => r.code), ['E_DECODE', 'E_DATASET', 'E_UNKNOWN_DEP'])
    assert.deepEqual(store.rejections(1).map((r) => r.code), ['E_DECODE'])
    assert.deepEqual(store.rejections(10, NOW), [])
    assert.equal(log[1]?.cid, bad.sealed.cid.toString())
  })

  test('put is idempotent, refuses an incomplete submission without a trace, and serves exactly the blocks it brought', async () => {
    const hash = store.contentHash()
    const size = store.size
    // The same block again: nothing changes.
    const name = 'big-data'
    store.put(s.d.chain.get(s.d.cid(name)) as AcceptedBlock, await blocksOf(s, name))
    assert.equal(store.size, size)
    assert.equal(store.contentHash(), hash)

    // A valid block whose payload file lacks a leaf: RangeError naming it, nothing stored.
    const text = bigText(2)
    const built = await s.d.dataset('partial', 'validation', new TextDecoder().decode(text), 'big-data')
    const block = await validateBlock(built.input, store, { now: NOW })
    const full = await submissionBlocks(built.input, [text])
    const leaf = [...(await importPayload(text)).blocks.keys()].find((k) => k.startsWith('bafk')) as string
    const partial = new Map([...full].filter(([k]) => k !== leaf))
    assert.throws(() => store.put(block, partial), (e: unknown) => e instanceof RangeError && e.message.includes(leaf))
    const noDoc = new Map([...full].filter(([k]) => k !== built.sealed.header.payload.toString()))
    assert.throws(() => store.put(block, noDoc), RangeError)
    const tampered = new Map(full)
    tampered.set(built.sealed.header.payload.toString(), new Uint8Array([1, 2, 3]))
    assert.throws(() => store.put(block, tampered), RangeError)
    assert.equal(store.get(built.sealed.cid), undefined)
    assert.equal(store.hasRaw(built.sealed.cid), false)
    assert.equal(store.contentHash(), hash)
    assert.equal(store.size, size)

    // Every accepted block owns exactly what its submission brought, header first.
    for (const n of s.names) {
      const cid = s.d.cid(n)
      const brought = await blocksOf(s, n)
      const raws = store.rawCidsOf(cid).map(String)
      assert.equal(raws[0], cid.toString())
      assert.deepEqual([...raws].sort(), [...brought.keys()].sort(), n)
      for (const k of raws) assert.deepEqual(store.getRaw(CID.parse(k)), brought.get(k))
    }
    // The dataset's two-tile file: root first, then its leaves in file order.
    const content = await importPayload(bigText(1))
    const raws = store.rawCidsOf(s.d.cid('big-data')).map(String)
    assert.equal(raws.length, 5)
    assert.equal(raws[2], content.cid.toString())
    assert.equal(store.hasRaw(content.cid), true)
    assert.deepEqual(store.rawCidsOf(built.sealed.cid), [])
  })

  test('the content hash ignores insertion order; a store with a block less differs', async () => {
    const other = openChainStore(join(dir, 'other.db'))
    const shuffled = orderBlocks(s.names.map((n) => s.d.chain.get(s.d.cid(n)) as AcceptedBlock).reverse(), () => false)
    assert.notDeepEqual(shuffled.map((b) => b.cid.toString()), s.names.map((n) => s.d.cid(n).toString()))
    const nameOf = new Map(s.names.map((n) => [s.d.cid(n).toString(), n]))
    for (const [i, block] of shuffled.entries()) {
      if (i === shuffled.length - 1) assert.notEqual(other.contentHash(), store.contentHash())
      other.put(block, await blocksOf(s, nameOf.get(block.cid.toString()) as string))
    }
    assert.equal(other.contentHash(), store.contentHash())
    assertAgrees(other, s, shuffled.map((b) => b.cid.toString()))
    other.check()
    other.close()
  })

  test('close and reopen: everything is still there (decoded afresh), check() passes', () => {
    const hash = store.contentHash()
    store.close()
    store = openChainStore(path, { cacheSize: 0 })
    assert.equal(store.contentHash(), hash)
    assertAgrees(store, s)
    let calls = 0
    let last: [number, number] = [0, 0]
    store.check({ onProgress: (done, total) => { calls++; last = [done, total] } })
    assert.ok(calls >= 2)
    assert.equal(last[0], last[1])
    assert.equal(store.rejections(10).length, 3)
    assert.equal(store.isRejected(s.d.cid('bad')), true)
  })
})

describe('relay chain store: the rejection log', () => {
  test('is bounded by maxRejections, newest first, pages by time, and refuses malformed entries', () => {
    const dir = mkdtempSync(join(tmpdir(), 'blyan-store-log-'))
    try {
      const store = openChainStore(join(dir, 'log.db'), { maxRejections: 5 })
      const entry = (at: number): Rejection => ({ cid: null, code: 'E_DECODE', field: 'header', message: `E_DECODE (header): ${at}`, at, chain: null, blockType: null, scope: 'block' })
      for (let at = 1; at <= 8; at++) store.addRejection(entry(at))
      assert.deepEqual(store.rejections(100).map((r) => r.at), [8, 7, 6, 5, 4])
      assert.deepEqual(store.rejections(2, 7).map((r) => r.at), [6, 5])
      assert.deepEqual(store.rejections(0), [])
      assert.throws(() => store.addRejection({ ...entry(9), code: 'E_NOPE' as never }), RangeError)
      assert.throws(() => store.addRejection({ ...entry(9), at: -1 }), RangeError)
      assert.throws(() => store.addRejection({ ...entry(9), chain: 'E' as never }), RangeError)
      assert.throws(() => store.rejections(-1), RangeError)
      assert.throws(() => store.headers('E' as never, 0, 1, 1), RangeError)
      assert.throws(() => store.headers('A', 0, 1.5, 1), RangeError)
      assert.equal(store.rejections(100).length, 5)
      store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('relay chain store: multi-tile parameter payloads and linked tokenizers', () => {
  test('an embedding of two tiles and a genesis with a tokenizer file round-trip and check', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blyan-store-big-'))
    try {
      const d = new Devnet({ ...TINY_ARCH, vocab_size: 40_000 })
      const tokenizer = bigText(3)
      const tok = await importPayload(tokenizer)
      ;(d as { meta: MetaDocument }).meta = { ...d.meta, tokenizer: { format: 'llama2c', payload: tok.cid, size: tokenizer.length, bos_id: 1, eos_id: 2 } }
      const g = d.genesis()
      await d.submit(g)
      const emb = await d.param('embedding', EMBEDDING_NAME, { seed: 1 })
      await d.submit(emb)
      const path = join(dir, 'big.db')
      let store = openChainStore(path)
      for (const [b, files] of [[g, [tokenizer]], [emb, []]] as const) {
        store.put(await validateBlock(b.input, store, { now: NOW }), await submissionBlocks(b.input, files))
      }
      store.close()
      store = openChainStore(path)
      assert.deepStrictEqual(store.get(emb.sealed.cid), d.chain.get(emb.sealed.cid))
      assert.deepStrictEqual(store.get(g.sealed.cid), d.chain.get(g.sealed.cid))
      assert.equal(store.rawCidsOf(emb.sealed.cid).length, 4) // header, dag-pb root, two tiles
      assert.equal(store.rawCidsOf(g.sealed.cid).length, 5) // header, document, tokenizer root and tiles
      assert.equal(store.head('B')?.cid.toString(), emb.sealed.cid.toString())
      store.check()
      store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

// ---------------------------------------------------------------------------------------------
// Damage

describe('relay chain store: damage is named, never served', () => {
  let dir: string
  let good: string
  let s: Scenario
  let cids: { header: string; doc: string; leaf: string; transfer: string; expert: string }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'blyan-store-damage-'))
    s = await scenario()
    good = join(dir, 'good.db')
    const store = openChainStore(good)
    for (const name of s.names) await accept(store, s, name)
    const content = await importPayload(bigText(1))
    cids = {
      header: s.d.cid('router1').toString(),
      doc: s.d.built.get('train')?.sealed.header.payload.toString() as string,
      leaf: [...content.blocks.keys()].filter((k) => k !== content.cid.toString())[1] as string,
      transfer: s.d.cid('fork-t1').toString(),
      expert: s.d.cid('v-c').toString()
    }
    store.close()
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  let copies = 0
  /** A copy of the good store, changed through a plain better-sqlite3 connection. */
  function damaged(sql: string | ((db: Database.Database) => void)): string {
    const copy = join(dir, `copy-${copies++}.db`)
    copyFileSync(good, copy)
    const db = new Database(copy)
    db.pragma('foreign_keys = OFF')
    if (typeof sql === 'string') db.exec(sql)
    else sql(db)
    db.close()
    return copy
  }

  function assertDamaged(file: string, item: string, detail?: RegExp): void {
    assert.throws(() => {
      const store = openChainStore(file)
      try {
        store.check()
      } finally {
        store.close()
      }
    }, (e: unknown) => {
      assert.ok(e instanceof StoreDamagedError, `expected StoreDamagedError, got ${String(e)}`)
      assert.equal(e.name, 'StoreDamagedError')
      assert.equal(e.item, item, e.message)
      if (detail !== undefined) assert.match(e.message, detail)
      return true
    })
  }

  test('the untouched copy passes', () => {
    const store = openChainStore(damaged(() => {}))
    store.check()
    assert.equal(store.size, s.names.length)
    store.close()
  })

  test('raw bytes that no longer hash to their CID: the CID', () => {
    assertDamaged(damaged(`UPDATE raw SET bytes = X'00' || bytes WHERE cid = '${cids.doc}'`), cids.doc, /hash/)
    assertDamaged(damaged(`UPDATE raw SET bytes = substr(bytes, 2) WHERE cid = '${cids.header}'`), cids.header, /hash/)
  })

  test('a missing UnixFS leaf, header, document or owner row: the missing CID', () => {
    assertDamaged(damaged(`DELETE FROM raw WHERE cid = '${cids.leaf}'`), cids.leaf, /missing/)
    assertDamaged(damaged(`DELETE FROM raw WHERE cid = '${cids.header}'`), cids.header, /missing/)
    assertDamaged(damaged(`DELETE FROM raw WHERE cid = '${cids.doc}'`), cids.doc, /missing/)
    assertDamaged(damaged(`DELETE FROM owners WHERE raw = '${cids.leaf}'`), cids.leaf, /owners/)
  })

  test('index rows that disagree with the bytes: the block', () => {
    assertDamaged(damaged(`UPDATE blocks SET timestamp = timestamp + 1 WHERE cid = '${cids.header}'`), cids.header, /timestamp/)
    assertDamaged(damaged(`UPDATE blocks SET idx = 7 WHERE cid = '${cids.header}'`), cids.header, /idx/)
    assertDamaged(damaged(`UPDATE blocks SET work = '1' WHERE cid = '${cids.transfer}'`), cids.transfer, /work/)
    assertDamaged(damaged(`UPDATE blocks SET expert_version = 1 WHERE cid = '${cids.expert}'`), cids.expert, /expert_version/)
    assertDamaged(damaged(`DELETE FROM deps WHERE block = (SELECT seq FROM blocks WHERE cid = '${cids.expert}') AND dep != (SELECT meta FROM blocks WHERE cid = '${cids.expert}')`), cids.expert, /deps/)
    assertDamaged(damaged(`UPDATE ledger SET delta = delta + 1 WHERE block = (SELECT seq FROM blocks WHERE cid = '${cids.transfer}')`), cids.transfer, /ledger/)
    assertDamaged(damaged(`DELETE FROM rewards`), s.d.cid('reward').toString(), /rewards/)
    assertDamaged(damaged(`UPDATE blocks SET extended = 0`), s.d.cid('genesis').toString(), /extended/)
  })

  test('stray rows: a raw block no accepted block owns is hidden and named; a row pointing nowhere names its table', () => {
    const orphan = cidOf(enc('stray'), DAG_CBOR)
    const file = damaged((db) => db.prepare('INSERT INTO raw (cid, bytes) VALUES (?, ?)').run(orphan.toString(), enc('stray')))
    const store = openChainStore(file)
    assert.equal(store.getRaw(orphan), undefined)
    assert.equal(store.hasRaw(orphan), false)
    store.close()
    assertDamaged(file, orphan.toString(), /owned by no/)
    assertDamaged(damaged(`INSERT INTO deps (block, dep) VALUES (99999, '${cids.header}')`), 'deps')
  })

  test('a truncated file or garbage: the file; another schema: schema', () => {
    const truncated = damaged(() => {})
    truncateSync(truncated, Math.floor(statSync(truncated).size / 2))
    assertDamaged(truncated, truncated)
    const garbage = join(dir, 'garbage.db')
    writeFileSync(garbage, Buffer.alloc(64 * 1024, 0x5a))
    assert.throws(() => openChainStore(garbage), (e: unknown) => e instanceof StoreDamagedError && e.item === garbage)
    assertDamaged(damaged('PRAGMA user_version = 99'), 'schema', /version 99/)
    assertDamaged(damaged('DROP TABLE rewards'), 'rewards', /missing/)
    const foreign = join(dir, 'foreign.db')
    const db = new Database(foreign)
    db.exec('CREATE TABLE t (x)')
    db.close()
    assertDamaged(foreign, 'schema', /not a Blyan chain store/)
  })
})

// ---------------------------------------------------------------------------------------------
// Crash safety

describe('relay chain store: SIGKILL at any instant', () => {
  const rounds = Math.max(10, Number(process.env['BLYAN_CRASH_ROUNDS'] ?? 10))
  let dir: string
  let dataFile: string
  /** CID string -> raw CIDs its submission brings. */
  const expected = new Map<string, string[]>()

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'blyan-store-crash-'))
    // The standard devnet, then 200 datasets in a line, each with its own content file (every
    // 25th a two-tile file), so a store takes a few hundred transactions to fill.
    const d = await Devnet.standard()
    const entries = []
    for (const [name, built] of d.built) entries.push({ name, built, files: STANDARD_FILES[name] === undefined ? [] : [STANDARD_FILES[name]] })
    let prev = 'validation'
    for (let i = 0; i < 200; i++) {
      const text = i % 25 === 0 ? bigText(i) : enc(`story ${i}\n\n${'once upon a time '.repeat(20 + i)}\n`)
      const name = `data-${i}`
      entries.push({ name, built: await d.dataset(name, 'train', new TextDecoder().decode(text), prev), files: [text] })
      prev = name
    }
    const json = []
    for (const e of entries) {
      const blocks = await submissionBlocks(e.built.input, e.files)
      expected.set(e.built.sealed.cid.toString(), [...blocks.keys()].sort())
      json.push(submissionToJson(e.built.sealed.cid.toString(), e.built.input, blocks))
    }
    dataFile = join(dir, 'devnet.json')
    writeFileSync(dataFile, JSON.stringify(json))
    mkdirSync(join(dir, 'stores'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  /**
   * Run the writer, then SIGKILL it: `delayMs` after it starts opening its store, or, with
   * `afterPuts`, `delayMs` after it reports that many puts (so the kill lands in or near the next one).
   */
  function killRound(delayMs: number, afterPuts?: number): Promise<{ opened: string[]; puts: Map<string, string[]> }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', CRASH_WRITER, dataFile, join(dir, 'stores')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      const opened: string[] = []
      const puts = new Map<string, string[]>()
      let buffered = ''
      let stderr = ''
      let timer: NodeJS.Timeout | undefined
      let count = 0
      const arm = (): void => {
        timer ??= setTimeout(() => child.kill('SIGKILL'), delayMs)
      }
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        buffered += chunk
        const lines = buffered.split('\n')
        buffered = lines.pop() as string
        for (const line of lines) {
          const [kind, arg] = line.split(' ') as [string, string]
          if (kind === 'open') {
            opened.push(arg)
            puts.set(arg, [])
            if (afterPuts === undefined) arm()
          } else if (kind === 'put') {
            puts.get(opened[opened.length - 1] as string)?.push(arg)
            if (++count === afterPuts) arm()
          }
        }
      })
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
      child.on('error', reject)
      child.on('exit', (code, signal) => {
        clearTimeout(timer)
        if (signal !== 'SIGKILL') reject(new Error(`writer exited with ${String(code)} before the kill: ${stderr}`))
        else resolve({ opened, puts })
      })
    })
  }

  test(`${rounds} kills: every reported block is present and complete, no raw block without its owner`, { timeout: 120_000 }, async (t) => {
    let reported = 0
    const perRound: number[] = []
    for (let round = 0; round < rounds; round++) {
      // Even rounds: a random moment; odd rounds: just after a random put, inside or near the next.
      const { opened, puts } = round % 2 === 0 ? await killRound(Math.floor(Math.random() * 300)) : await killRound(Math.floor(Math.random() * 4), 1 + Math.floor(Math.random() * 60))
      perRound.push([...puts.values()].reduce((n, p) => n + p.length, 0))
      for (const file of opened) {
        const store = openChainStore(file)
        try {
          store.check()
          for (const cid of puts.get(file) ?? []) {
            const c = CID.parse(cid)
            assert.ok(store.get(c) !== undefined, `${cid} was reported put`)
            assert.deepEqual(store.rawCidsOf(c).map(String).sort(), expected.get(cid))
            for (const raw of expected.get(cid) ?? []) assert.ok(store.hasRaw(CID.parse(raw)))
          }
          reported += puts.get(file)?.length ?? 0
          // Blocks present but not reported (killed between put and print) are complete too: check() covered them.
          for (const block of store.all()) assert.deepEqual(store.rawCidsOf(block.cid).map(String).sort(), expected.get(block.cid.toString()))
        } finally {
          store.close()
        }
        const db = new Database(file)
        assert.equal(db.prepare('SELECT count(*) FROM raw WHERE NOT EXISTS (SELECT 1 FROM owners WHERE owners.raw = raw.cid)').pluck().get(), 0)
        db.close()
      }
    }
    t.diagnostic(`blocks reported per round: ${perRound.join(' ')}`)
    assert.ok(reported > 0, 'the writer never got a block in before being killed')
  })
})
