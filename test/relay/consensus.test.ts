/**
 * Issue 13's consensus and fairness attacks against a node over HTTP, each one a test that fails on
 * the code before the fix:
 *
 * - a heavy branch of chain C that erased a later entry (the miner's self-transfer on its own
 *   reward at difficulty 16), and of chain D that hid the validation dataset: refused (E_DIFFICULTY
 *   at a chosen difficulty; E_FINALIZED at the required one, once 3 of 4 validators signed a
 *   checkpoint), the head and the balances unchanged;
 * - `blyan start`'s node (it holds the validator keys) finalizes every block before it judges the
 *   next submission: a competing block is never accepted, there is no window;
 * - the poisoned CAR: someone else's valid header wrapped with a junk block is refused as a
 *   submission (E_CAR, transient) without marking the header rejected, and the header's child waits
 *   as an orphan (E_UNKNOWN_DEP, transient) instead of being refused for good;
 * - the job board lockout: 32 fresh keys lease every job, and a miner still gets one.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CarReader } from '@ipld/car'
import { documentPayload, type HeaderDraft } from '../../src/chain/build.ts'
import { cidOf, toHex } from '../../src/codec/cbor.ts'
import { encodeDataset } from '../../src/chain/dataset.ts'
import { publicKeyOf, randomSecretKey } from '../../src/chain/keys.ts'
import { encodeLedgerDocument } from '../../src/chain/ledger.ts'
import { writeCar } from '../../src/chain/submission.ts'
import { signLeaseRequest, type Job } from '../../src/pol/job.ts'
import { leaseJob } from '../../src/pol/mining.ts'
import { importPayload } from '../../src/tensor/tiles.ts'
import { serve, type Served } from '../../relay/serve.ts'
import type { ChainStore } from '../../relay/node/interface.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { createRelay, type Relay } from '../../relay/http/server.ts'
import { openChainStore } from '../../relay/node/chain-store.ts'
import { Devnet, DIFFICULTY, NOW, submissionCar, testKey, type Built } from '../fixtures/devnet.ts'
import { genesisDevnet } from '../fixtures/genesis-devnet.ts'

const CAR = 'application/vnd.ipld.car'

interface Posted {
  status: number
  body: { accepted?: { cid: string }; error?: { code: string; field?: string; transient?: boolean }; status?: string; last_refused_submission?: { code: string } }
}

async function post(url: string, path: string, type: string, body: Uint8Array): Promise<Posted> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'Content-Type': type }, body: body as Uint8Array<ArrayBuffer> })
  return { status: res.status, body: (await res.json()) as Posted['body'] }
}

const submit = (url: string, car: Uint8Array): Promise<Posted> => post(url, '/api/blocks', CAR, car)

/** A chain C transfer by the devnet's miner to itself on `prev`, at `difficulty`. */
function selfTransfer(d: Devnet, name: string, prev: string, difficulty = DIFFICULTY): Built {
  const doc = documentPayload(encodeLedgerDocument({ kind: 'blyan/transfer', version: 1, to: publicKeyOf(d.miner), amount: 1, memo: 'mine' }))
  const p = d.built.get(prev) as Built
  return d.make(name, { ...d.base('C', 'transfer'), index: p.sealed.header.index + 1, prev: p.sealed.cid, payload: doc.cid, payload_size: doc.size, difficulty } as HeaderDraft, doc.bytes, d.miner)
}

/** A chain D dataset by a stranger on `prev`, with its content file. */
async function strangerDataset(d: Devnet, name: string, prev: string): Promise<Built> {
  const content = new TextEncoder().encode(`${name}: the stranger's own pool.\n`)
  const file = await importPayload(content)
  const doc = documentPayload(encodeDataset({
    kind: 'blyan/dataset', version: 1, name, license: 'CC0-1.0', split: 'validation', format: 'text/plain; blank-line-separated',
    content: file.cid, content_size: content.length, description: ''
  }))
  const p = d.built.get(prev) as Built
  const built = { ...d.make(name, { ...d.base('D', 'dataset'), index: p.sealed.header.index + 1, prev: p.sealed.cid, payload: doc.cid, payload_size: doc.size } as HeaderDraft, doc.bytes, testKey('stranger')), files: [content] }
  d.built.set(name, built)
  return built
}

interface Running {
  readonly relay: Relay
  readonly store: ChainStore
  readonly url: string
  close(): Promise<void>
}

const dirs: string[] = []
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

/** A relay over an empty store (its node holds no validator key) with every block of `d` submitted. */
async function relayOf(d: Devnet): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'blyan-consensus-'))
  dirs.push(dir)
  const store = openChainStore(join(dir, 'chain.sqlite'))
  const relay = createRelay({ node: new FullNode(store, { now: () => NOW }), version: 'test' })
  await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(relay.server.address() as AddressInfo).port}`
  for (const built of d.built.values()) assert.equal((await submit(url, await submissionCar(built))).status, 201)
  return { relay, store, url, close: async () => { await relay.close(); store.close() } }
}

const balanceOf = async (url: string, key: Uint8Array): Promise<{ balance: number; final_balance: number }> =>
  (await (await fetch(`${url}/api/balance/${toHex(publicKeyOf(key))}`)).json()) as { balance: number; final_balance: number }

describe('consensus an author cannot buy, over HTTP', () => {
  test('without finality the heavy branches win: the attack is real on a node that only counts work', async () => {
    const d = await Devnet.standard()
    const r = await relayOf(d)
    try {
      assert.equal((await balanceOf(r.url, d.alice)).balance, 100)
      for (const b of [selfTransfer(d, 'evil1', 'reward'), selfTransfer(d, 'evil2', 'evil1')]) assert.equal((await submit(r.url, await submissionCar(b))).status, 201)
      assert.equal((await balanceOf(r.url, d.alice)).balance, 0, 'a longer branch of two cheap blocks erased alice\'s 100')
    } finally {
      await r.close()
    }
  })

  test('a chosen difficulty is refused; after a 3-of-4 checkpoint the branches of C and D are refused and nothing moves', async () => {
    const d = await Devnet.standard()
    const r = await relayOf(d)
    try {
      // The attack: one block at difficulty 16 on the miner's own reward.
      const heavy = await submit(r.url, await submissionCar(selfTransfer(d, 'heavy', 'reward', 16)))
      assert.deepEqual([heavy.status, heavy.body.error?.code, heavy.body.error?.transient], [422, 'E_DIFFICULTY', false])

      const two = await post(r.url, '/api/checkpoints', 'application/vnd.ipld.dag-cbor', d.signedCheckpoint(2))
      assert.deepEqual([two.status, two.body.error?.code], [422, 'E_QUORUM'], '2 of 4 signatures are not a quorum')
      const three = await post(r.url, '/api/checkpoints', 'application/vnd.ipld.dag-cbor', d.signedCheckpoint(3))
      assert.equal(three.status, 201)
      const heads = await (await fetch(`${r.url}/api/status`)).json() as { heads: Record<string, { cid: string }>; finality: { number: number } }
      assert.equal(heads.finality.number, 0)

      for (const [what, built] of [['C', selfTransfer(d, 'evil1', 'reward')], ['D', await strangerDataset(d, 'mine', 'train')]] as const) {
        const refused = await submit(r.url, await submissionCar(built))
        assert.deepEqual([refused.status, refused.body.error?.code, refused.body.error?.transient], [422, 'E_FINALIZED', false], what)
      }
      const after = await (await fetch(`${r.url}/api/status`)).json() as typeof heads
      assert.deepEqual(after.heads, heads.heads, 'every head unchanged')
      const alice = await balanceOf(r.url, d.alice)
      assert.deepEqual([alice.balance, alice.final_balance], [100, 100], 'alice\'s entry stays, and is final')
      assert.equal(after.heads['D']?.cid, d.cid('approve-validation').toString(), 'the approval of the validation pool stays the head of chain D')
    } finally {
      await r.close()
    }
  })
})

describe('a node that holds the validator keys (npm start)', () => {
  let served: Served
  let url: string

  before(async () => {
    served = await serve({ dataDir: await genesisDevnet(), port: 0, host: '127.0.0.1', log: () => undefined })
    url = served.url.replace(/\/$/, '')
  })

  after(async () => served.close())

  test('finalizes each block before judging the next submission: a competing block is refused, never accepted', async () => {
    const store = served.node.store
    const final = store.checkpoint()
    assert.ok(final !== null, 'blyan init finalized the genesis')
    const headD = store.head('D')
    assert.ok(headD !== undefined)
    // Two competing blocks on the same parent, sent together: the first accepted is final before the second is judged.
    const d = new Devnet()
    const make = async (name: string): Promise<Uint8Array> => {
      const content = new TextEncoder().encode(`${name}: a pool.\n`)
      const file = await importPayload(content)
      const doc = documentPayload(encodeDataset({ kind: 'blyan/dataset', version: 1, name, license: 'CC0-1.0', split: 'train', format: 'text/plain; blank-line-separated', content: file.cid, content_size: content.length, description: '' }))
      const built = d.make(name, {
        chain_id: 'D', block_type: 'dataset', index: headD.header.index + 1, prev: headD.cid, depends_on: [store.head('A')?.cid], expert_name: null, layer_id: null,
        payload: doc.cid, payload_size: doc.size, timestamp: Date.now(), difficulty: headD.header.difficulty, supersedes: null, pol: null
      } as HeaderDraft, doc.bytes, randomSecretKey())
      return submissionCar({ ...built, files: [content] })
    }
    const [x, y] = await Promise.all([submit(url, await make('first')), submit(url, await make('second'))])
    const codes = [x, y].map((p) => p.status === 201 ? 'accepted' : p.body.error?.code).sort()
    assert.deepEqual(codes, ['E_FINALIZED', 'accepted'])
    const winner = (x.status === 201 ? x : y).body.accepted?.cid
    assert.equal(store.head('D')?.cid.toString(), winner)
    assert.equal(store.checkpoint()?.heads.D?.toString(), winner, 'final at once')
    assert.equal(store.checkpoint()?.number, (final?.number ?? 0) + 1)
  })

  test('the poisoned CAR: a valid header wrapped with a junk block is not marked rejected; its child waits, transient; then both are accepted', async () => {
    const store = served.node.store
    const d = new Devnet()
    const headD = store.head('D')
    assert.ok(headD !== undefined)
    const victimKey = randomSecretKey()
    const dataset = async (name: string, prev: { cid: Built['sealed']['cid']; index: number }): Promise<Built & { files: Uint8Array[] }> => {
      const content = new TextEncoder().encode(`${name}: a pool.\n`)
      const file = await importPayload(content)
      const doc = documentPayload(encodeDataset({ kind: 'blyan/dataset', version: 1, name, license: 'CC0-1.0', split: 'train', format: 'text/plain; blank-line-separated', content: file.cid, content_size: content.length, description: '' }))
      const built = d.make(name, {
        chain_id: 'D', block_type: 'dataset', index: prev.index + 1, prev: prev.cid, depends_on: [store.head('A')?.cid], expert_name: null, layer_id: null,
        payload: doc.cid, payload_size: doc.size, timestamp: Date.now(), difficulty: headD.header.difficulty, supersedes: null, pol: null
      } as HeaderDraft, doc.bytes, victimKey)
      return { ...built, files: [content] }
    }
    const victim = await dataset('victim', { cid: headD.cid, index: headD.header.index })
    const child = await dataset('child', { cid: victim.sealed.cid, index: victim.sealed.header.index })
    // The attacker intercepts the victim's CAR and adds one junk block.
    const reader = await CarReader.fromBytes(await submissionCar(victim))
    const blocks: { cid: Built['sealed']['cid']; bytes: Uint8Array }[] = []
    for await (const block of reader.blocks()) blocks.push(block)
    const junk = new TextEncoder().encode('junk')
    const poisoned = await writeCar(await reader.getRoots(), [...blocks, { cid: cidOf(junk, 0x55), bytes: junk }])
    const refused = await submit(url, poisoned)
    assert.deepEqual([refused.status, refused.body.error?.code, refused.body.error?.transient], [400, 'E_CAR', true])
    const view = (await (await fetch(`${url}/api/blocks/${victim.sealed.cid}`)).json()) as Posted['body']
    assert.equal(view.status, 'unknown', 'the header is not marked rejected')
    assert.equal(view.last_refused_submission?.code, 'E_CAR')
    const orphan = await submit(url, await submissionCar(child))
    assert.deepEqual([orphan.status, orphan.body.error?.code, orphan.body.error?.transient], [422, 'E_UNKNOWN_DEP', true], 'the child waits for its parent')
    assert.equal((await submit(url, await submissionCar(victim))).status, 201, 'the victim\'s own submission is accepted')
    assert.equal((await submit(url, await submissionCar(child))).status, 201, 'then its child')
  })

  test('32 fresh keys lease every job, and a miner still gets one (newbie leases are shared)', async () => {
    const { jobs } = (await (await fetch(`${url}/api/jobs`)).json()) as { jobs: Job[] }
    assert.equal(jobs.length, 32)
    await Promise.all(jobs.map(async (job) => {
      const res = await fetch(`${url}/api/jobs/${job.id}/lease`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(signLeaseRequest(job.id, randomSecretKey())) })
      assert.equal(res.status, 200)
    }))
    const board = (await (await fetch(`${url}/api/jobs`)).json()) as { jobs: Job[] }
    assert.ok(board.jobs.every((j) => j.sharedBy.length === 1 && j.lease === null), 'every job leased, none exclusively')
    // Bodies that are not a lease request are 400s, not 500s.
    for (const bad of ['null', '[]', '"x"', '{"miner": 1}', 'not json']) {
      const res = await fetch(`${url}/api/jobs/${jobs[0]?.id}/lease`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: bad })
      assert.equal(res.status, 400, bad)
    }
    const miner = randomSecretKey()
    const job = await leaseJob(url, miner)
    assert.ok(jobs.some((j) => j.id === job.id))
    const after = (await (await fetch(`${url}/api/jobs`)).json()) as { jobs: Job[] }
    assert.ok(after.jobs.find((j) => j.id === job.id)?.sharedBy.some((l) => l.miner === toHex(publicKeyOf(miner))))
  })
})
