/**
 * The miner trusts its own verified chain, not a relay's reports: on the PoL devnet (stories260K,
 * 4 experts, a node as `blyan start` serves it), behind a lying relay that rewrites `/api/status`'s
 * param index and the job board and serves a forged version of an expert (a well-formed chain B
 * header for the right expert, hashing to its CID, signed by another key, never certified):
 *
 * - a job whose base is the forged version is refused before any training (E_STALE_BASE), and its
 *   lease is given back;
 * - a lie about another expert's version changes nothing: the miner never fetches the forged block
 *   and trains on the model its chain names;
 * - a job whose training data is not a dataset of the verified chain D is refused (E_DATASET).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { toHex } from '../../src/codec/cbor.ts'
import { sealBlock, type HeaderDraft } from '../../src/chain/build.ts'
import { decodeHeader } from '../../src/chain/header.ts'
import { publicKeyOf, randomSecretKey } from '../../src/chain/keys.ts'
import { isRuleError } from '../../src/errors.ts'
import type { Job } from '../../src/net/relay-api.ts'
import { mineOnce, type Trainer } from '../../src/pol/mining.ts'
import { polDevnet, servePolDevnet } from '../fixtures/pol-devnet.ts'
import { SHARED_DATA_MISSING } from '../fixtures/shared-data.ts'

const dirP = polDevnet()

/** What the lying relay changes, and what it saw asked. */
interface Lies {
  /** Param index entries to rewrite in `/api/status`. */
  readonly paramIndex?: Readonly<Record<string, string>>
  /** The one job the board lists, rewritten. */
  readonly job: (job: Job) => Job
  /** Forged blocks it serves from its gateway, by CID. */
  readonly blocks: ReadonlyMap<string, Uint8Array>
}

/** A relay in front of `url` that lies as told; `fetched` lists the gateway CIDs asked for. */
function lyingRelay(url: string, lies: Lies): { fetch: typeof fetch; fetched: string[] } {
  const fetched: string[] = []
  const json = (body: unknown): Response => new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } })
  const liar = (async (input: string | URL | Request, init?: RequestInit) => {
    const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    const path = new URL(href).pathname
    const gateway = /^\/ipfs\/([^/?]+)/.exec(path)
    if (gateway !== null) {
      fetched.push(gateway[1] as string)
      const forged = lies.blocks.get(gateway[1] as string)
      if (forged !== undefined) return new Response(forged as Uint8Array<ArrayBuffer>, { status: 200, headers: { 'content-type': 'application/vnd.ipld.raw' } })
    }
    const res = await fetch(input, init)
    if ((init?.method ?? 'GET') !== 'GET' || !res.ok) return res
    if (path === '/api/status' && lies.paramIndex !== undefined) {
      const s = (await res.json()) as { paramIndex: { entries: Record<string, string> } }
      return json({ ...s, paramIndex: { ...s.paramIndex, entries: { ...s.paramIndex.entries, ...lies.paramIndex } } })
    }
    if (path === '/api/jobs') {
      const { jobs } = (await res.json()) as { jobs: Job[] }
      return json({ jobs: [lies.job(jobs[0] as Job)] })
    }
    return res
  }) as typeof fetch
  return { fetch: liar, fetched }
}

/** A forged version of `expert`'s current block: the same fields, signed and mined by another key. */
async function forgeVersion(url: string, expert: string): Promise<{ cid: string; bytes: Uint8Array }> {
  const { entries } = ((await (await fetch(`${url}/api/status`)).json()) as { paramIndex: { entries: Record<string, string> } }).paramIndex
  const current = decodeHeader(new Uint8Array(await (await fetch(`${url}/ipfs/${entries[expert]}?format=raw`)).arrayBuffer()))
  const { version: _v, miner_pub: _m, payload_sig: _s, nonce: _n, ...draft } = current
  const sealed = sealBlock({ ...draft, timestamp: current.timestamp + 1 } as HeaderDraft, randomSecretKey())
  return { cid: sealed.cid.toString(), bytes: sealed.bytes }
}

/** A trainer that records that it ran, then stops the round (these tests are about what comes before). */
function stopAtTraining(): { train: Trainer; calls: number } {
  const spy = {
    calls: 0,
    train: (async () => {
      spy.calls++
      throw new Error('stop: training reached')
    }) as Trainer
  }
  return spy
}

describe('the miner trusts its verified chain, not a relay\'s param index or job board', { skip: dirP === null ? SHARED_DATA_MISSING : false }, () => {
  let url: string

  servePolDevnet((_, u) => {
    url = u
  })

  test('a job superseding a version the verified chain never certified is refused before training, and its lease given back', async () => {
    const board = ((await (await fetch(`${url}/api/jobs`)).json()) as { jobs: Job[] }).jobs
    const expert = (board[0] as Job).expert
    const forged = await forgeVersion(url, expert)
    const relay = lyingRelay(url, { paramIndex: { [expert]: forged.cid }, job: (j) => ({ ...j, base: forged.cid }), blocks: new Map([[forged.cid, forged.bytes]]) })
    const trainer = stopAtTraining()
    const key = randomSecretKey()
    await assert.rejects(mineOnce({ relay: url, key, fetch: relay.fetch, train: trainer.train, selfCheckWindows: 0 }), (e: unknown) => {
      assert.ok(isRuleError(e, 'E_STALE_BASE'), String(e))
      assert.match((e as Error).message, new RegExp(`current version in the verified chain is v0 ${board[0]?.base}`))
      return true
    })
    assert.equal(trainer.calls, 0, 'no training on a model the chain does not name')
    assert.ok(!relay.fetched.includes(forged.cid), 'the forged block is not even fetched')
    const after = ((await (await fetch(`${url}/api/jobs`)).json()) as { jobs: Job[] }).jobs.find((j) => j.id === board[0]?.id)
    assert.ok(after !== undefined && !after.sharedBy.some((l) => l.miner === toHex(publicKeyOf(key))), 'the lease went back')
  })

  test('a lie about another expert\'s version changes nothing: the miner trains on the blocks its chain names', async () => {
    const board = ((await (await fetch(`${url}/api/jobs`)).json()) as { jobs: Job[] }).jobs
    const other = (board.find((j) => j.expert !== board[0]?.expert) as Job).expert
    const forged = await forgeVersion(url, other)
    const relay = lyingRelay(url, { paramIndex: { [other]: forged.cid }, job: (j) => j, blocks: new Map([[forged.cid, forged.bytes]]) })
    const trainer = stopAtTraining()
    await assert.rejects(mineOnce({ relay: url, key: randomSecretKey(), fetch: relay.fetch, train: trainer.train, selfCheckWindows: 0 }), /stop: training reached/)
    assert.equal(trainer.calls, 1, 'an honest job trains')
    assert.ok(!relay.fetched.includes(forged.cid), 'the block the relay\'s param index names was never fetched')
    const verified = decodeHeader(new Uint8Array(await (await fetch(`${url}/ipfs/${board.find((j) => j.expert === other)?.base}?format=raw`)).arrayBuffer()))
    assert.ok(relay.fetched.includes(verified.payload.toString()), 'the verified version\'s weights were')
  })

  test('a job whose training data is not a dataset of the verified chain D is refused', async () => {
    const genesis = ((await (await fetch(`${url}/api/status`)).json()) as { genesis: string }).genesis
    const relay = lyingRelay(url, { job: (j) => ({ ...j, shard: { ...j.shard, dataset: genesis } }), blocks: new Map() })
    const trainer = stopAtTraining()
    await assert.rejects(mineOnce({ relay: url, key: randomSecretKey(), fetch: relay.fetch, train: trainer.train, selfCheckWindows: 0 }), (e: unknown) => isRuleError(e, 'E_DATASET'))
    assert.equal(trainer.calls, 0)
    assert.ok(CID.parse(genesis))
  })
})
