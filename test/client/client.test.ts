/**
 * The site's client (src/client/client.ts) end to end in Node, against real relays over a real
 * stories260K devnet: the same code the client worker runs, with the inline verify pool,
 * fake-indexeddb (a real IndexedDB implementation) and the CPU backend.
 *
 * - sync verifies every header and pins the genesis on first use;
 * - a temperature-0 answer has the tokens `blyan generate --backend cpu` gives, lists its experts,
 *   and a reload (a new client over the same IndexedDB) answers again without fetching a tile;
 * - a lying relay is caught, named, and the honest relay serves the block; alone, it gets the
 *   expert refused with the reason;
 * - prepareChat starts the backend ahead of the prompt without fetching a tile, and the answer uses it;
 * - a dead relay is reported and the client recovers when it comes back;
 * - a relay of another network is set aside;
 * - the explorer's Verify passes every step on an expert block, tile Merkle path included.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { decodeHeader } from '../../src/chain/header.ts'
import { CpuBackend } from '../../src/engine/cpu.ts'
import type { ChatFailure, ChatResult, Sampling } from '../../src/client/api.ts'
import { Client } from '../../src/client/client.ts'
import { generate, openRun } from '../../relay/node/run.ts'
import { main } from '../../relay/cli.ts'
import { tidyAnswer } from '../../src/client/conversation.ts'
import { SHARED_DATA_MISSING } from '../fixtures/shared-data.ts'
import { DevnetNode, PROMPT, siteDevnet, type RunningRelay } from '../fixtures/site-devnet.ts'
import { clientEnvironment, untilStatus } from '../fixtures/client.ts'

const GREEDY: Sampling = { temperature: 0, topP: 0.9, maxTokens: 24, seed: 1 }
let dbCount = 0

async function answer(client: Client, prompt = PROMPT): Promise<{ ok: true; result: ChatResult } | { ok: false; failure: ChatFailure }> {
  return client.chat({ prompt, history: [], sampling: GREEDY }, () => undefined)
}

const dirP = siteDevnet()

describe('site client', { skip: dirP === null ? SHARED_DATA_MISSING : false }, () => {
  let node: DevnetNode
  let honest: RunningRelay
  let expected: { tokens: number[]; text: string }
  const clients: Client[] = []
  const open = async (prefix: string, relays: string[], extra: Partial<Parameters<Client['start']>[0]> = {}): Promise<Client> => {
    const c = new Client(clientEnvironment(prefix))
    clients.push(c)
    await c.start({ relays, ...extra })
    return c
  }

  before(async () => {
    const dir = await (dirP as Promise<string>)
    node = new DevnetNode(dir)
    honest = await node.relay()
    const run = await openRun(node.store, 'cpu')
    const g = await generate(run, 'cpu', { prompt: PROMPT, maxTokens: GREEDY.maxTokens, temperature: 0, topP: 0.9, seed: 1 })
    run.engine.destroy()
    expected = { tokens: g.tokens, text: g.text }
  })

  after(async () => {
    for (const c of clients) await c.close()
    await honest.close()
    node.close()
  })

  test('sync verifies every header and pins the genesis on first use', async () => {
    const client = await open(`sync-${dbCount++}`, [honest.url])
    const s = await untilStatus(client, 'live', (x) => x.sync.phase === 'live' && x.sync.verified === node.store.size)
    assert.equal(s.sync.anchor, node.store.genesis()?.cid.toString())
    assert.deepEqual(s.sync.rejected, [])
    assert.equal((await client.settings()).trustAnchor, s.sync.anchor)
    assert.equal(s.relays[0]?.health, 'up')
  })

  test('temperature 0 gives the tokens of blyan generate --backend cpu; a reload answers from the cache alone', async () => {
    const prefix = `chat-${dbCount++}`
    const first = await open(prefix, [honest.url])
    const before = await honest.stats()
    const a = await answer(first)
    assert.ok(a.ok, JSON.stringify(a))
    assert.deepEqual(a.result.tokens, expected.tokens)
    // The same text, cut back to a clean end when the token limit stopped it mid-word.
    assert.equal(a.result.text, tidyAnswer(expected.text, a.result.finish))
    assert.ok(a.result.experts.length > 0)
    for (const e of a.result.experts) {
      assert.match(e.name, /^layer\d+\.expert\d+$/)
      assert.equal(e.pol, 'genesis')
      assert.equal(e.cid, node.store.paramIndex().get(e.name)?.cid.toString())
    }
    assert.ok(a.result.stats.fetchedTiles > 0)
    assert.equal(a.result.stats.cachedTiles, 0)
    assert.equal((await honest.stats()).tiles - before.tiles, a.result.stats.fetchedTiles)
    await first.close()

    // A reload: a new client over the same IndexedDB.
    const second = await open(prefix, [honest.url])
    const mid = await honest.stats()
    const b = await answer(second)
    assert.ok(b.ok, JSON.stringify(b))
    assert.deepEqual(b.result.tokens, expected.tokens)
    assert.equal(b.result.stats.fetchedTiles, 0)
    assert.ok(b.result.stats.cachedTiles > 0)
    assert.equal((await honest.stats()).tiles, mid.tiles, 'the relay served no tile to the reloaded client')
  })

  /** The payload root of an expert the greedy answer uses: what a lying relay alters. */
  async function usedExpertPayload(): Promise<{ name: string; payload: CID }> {
    const c = await open(`probe-${dbCount++}`, [honest.url])
    const a = await answer(c)
    assert.ok(a.ok)
    const e = a.result.experts[0]
    assert.ok(e !== undefined)
    const header = decodeHeader(node.store.getRaw(CID.parse(e.cid)) as Uint8Array)
    return { name: e.name, payload: header.payload }
  }

  test('prepareChat starts the backend once the model is known, fetching no tile; the answer runs on it', async () => {
    const prefix = `prepare-${dbCount++}`
    const started: CpuBackend[] = []
    const env = clientEnvironment(prefix)
    const c = new Client({
      ...env,
      createBackend: async (choice, arch) => {
        const b = await env.createBackend(choice, arch)
        started.push(b.backend as CpuBackend)
        return b
      }
    })
    clients.push(c)
    const before = await honest.stats()
    await c.prepareChat()
    await c.start({ relays: [honest.url] })
    await untilStatus(c, 'live', (x) => x.sync.phase === 'live' && x.sync.verified === node.store.size)
    for (let i = 0; i < 100 && started.length === 0; i++) await new Promise((r) => setTimeout(r, 20))
    assert.equal(started.length, 1, 'the backend started before any prompt')
    assert.equal((await honest.stats()).tiles, before.tiles, 'preparing fetches no tile')
    const a = await answer(c)
    assert.ok(a.ok, JSON.stringify(a))
    assert.deepEqual(a.result.tokens, expected.tokens)
    assert.equal(started.length, 1, 'the answer ran on the prepared backend')
  })

  test('a lying relay is caught and named; the honest relay serves the block', async () => {
    const target = await usedExpertPayload()
    const liar = await node.relay({ lieAbout: [target.payload] })
    try {
      const client = await open(`lie-${dbCount++}`, [liar.url, honest.url])
      const a = await answer(client)
      assert.ok(a.ok, JSON.stringify(a))
      assert.deepEqual(a.result.tokens, expected.tokens)
      const s = await client.status()
      const liarState = s.relays.find((r) => r.url === liar.url)
      assert.equal(liarState?.lies.length, 1)
      assert.equal(liarState?.lies[0]?.cid, target.payload.toString())
      assert.match(liarState?.lies[0]?.what ?? '', new RegExp(target.name.replace('.', '\\.')))
      assert.equal(s.relays.find((r) => r.url === honest.url)?.lies.length, 0)
    } finally {
      await liar.close()
    }
  })

  test('with only the lying relay, the chat refuses that expert and says why', async () => {
    const target = await usedExpertPayload()
    const liar = await node.relay({ lieAbout: [target.payload] })
    try {
      const client = await open(`lie-only-${dbCount++}`, [liar.url])
      const a = await answer(client)
      assert.equal(a.ok, false)
      if (a.ok) return
      assert.ok(['E_TILE', 'E_CID'].includes(a.failure.code), a.failure.code)
      assert.equal(a.failure.expert, target.name)
      assert.deepEqual(a.failure.relays, [liar.url])
      assert.match(a.failure.message, /do not match/)
      assert.ok(a.failure.message.includes(liar.url))
    } finally {
      await liar.close()
    }
  })

  test('a dead relay is reported, and the client recovers when it comes back', async () => {
    const relay = await node.relay()
    const client = await open(`dead-${dbCount++}`, [relay.url])
    await untilStatus(client, 'live', (s) => s.sync.phase === 'live' && s.sync.verified === node.store.size)
    await relay.close()
    const down = await untilStatus(client, 'down', (s) => s.relays[0]?.health === 'down')
    assert.equal(down.sync.phase, 'offline')
    assert.ok(down.relays[0]?.retryAt !== null)
    assert.ok((down.relays[0]?.error ?? '').length > 0)
    const back = await node.relay({ port: relay.port })
    try {
      const up = await untilStatus(client, 'back up', (s) => s.relays[0]?.health === 'up' && s.sync.phase === 'live')
      assert.equal(up.relays[0]?.error, null)
      const a = await answer(client)
      assert.ok(a.ok, JSON.stringify(a))
    } finally {
      await back.close()
    }
  })

  test('a relay of another network (another genesis) is set aside', async () => {
    const first = await open(`anchor-${dbCount++}`, [honest.url])
    const anchor = (await untilStatus(first, 'live', (s) => s.sync.anchor !== null)).sync.anchor as string
    const otherDir = `${await (dirP as Promise<string>)}-other`
    const log = console.log
    console.log = () => undefined
    try {
      assert.equal(await main(['init', '--data', otherDir, '--model', (await import('../fixtures/shared-data.ts')).sharedPath('stories260K.bin'), '--experts', '2']), 0)
    } finally {
      console.log = log
    }
    const other = new DevnetNode(otherDir)
    const stranger = await other.relay()
    try {
      const client = await open(`anchor-${dbCount++}`, [stranger.url, honest.url], { trustAnchor: anchor })
      const s = await untilStatus(client, 'stranger set aside', (x) => x.relays[0]?.health === 'wrong-network' && x.sync.verified === node.store.size)
      assert.match(s.relays[0]?.error ?? '', /trust anchor/)
      assert.equal(s.sync.anchor, anchor)
    } finally {
      await stranger.close()
      other.close()
    }
  })

  test('explorer: search finds an expert and Verify passes every step, the tile Merkle path included', async () => {
    const client = await open(`explorer-${dbCount++}`, [honest.url])
    await untilStatus(client, 'live', (s) => s.sync.phase === 'live' && s.sync.verified === node.store.size)
    const found = await client.search('layer1.expert2')
    assert.equal(found[0]?.expertName, 'layer1.expert2')
    const cid = found[0]?.cid as string
    const detail = await client.block(cid)
    assert.ok(detail !== null)
    assert.ok(detail.tensors !== null && detail.tensors.length > 0, 'tensors read from the verified first tile')
    const steps: string[] = []
    const report = await client.verify(cid, 0, (s) => steps.push(`${s.id}:${s.status}`))
    assert.equal(report.ok, true, JSON.stringify(report.steps))
    for (const s of report.steps) assert.equal(s.status, 'passed', `${s.id}: ${s.detail}`)
    for (const id of ['cid', 'pow', 'signature', 'anchor', 'rules', 'pol', 'tile-root', 'tile-leaf']) assert.ok(report.steps.some((s) => s.id === id), id)
    assert.equal(report.anchor, node.store.genesis()?.cid.toString())
    const dag = await client.dag()
    assert.equal(dag.nodes.length, node.store.paramIndex().size)
  })
})
