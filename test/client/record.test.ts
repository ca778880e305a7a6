/**
 * The client's datasetRecord (src/client/client.ts) against real relays over a small devnet whose
 * chain D datasets link training records, as `blyan init --genesis` makes them:
 *
 * - a record over 256 KiB (a dag-pb file of several blocks) is fetched block by block, each checked
 *   against its CID, and parsed;
 * - a file that matches its CID but is not a record is refused with the field named;
 * - a relay that alters the record's bytes is not believed: alone, the record is unavailable and
 *   the client says why;
 * - blocks that are not chain D datasets with a record are answered with their own codes.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { blockNames } from '../../src/chain/params.ts'
import { importPayload } from '../../src/tensor/tiles.ts'
import type { ClientStatus } from '../../src/client/api.ts'
import { Client } from '../../src/client/client.ts'
import { STORE_FILE, initDevnet } from '../../relay/devnet.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { openChainStore } from '../../relay/node/chain-store.ts'
import { TINY_ARCH, paramPayload } from '../fixtures/devnet.ts'
import { recordBytes, sampleRecord } from '../fixtures/record.ts'
import { DevnetNode, type RunningRelay } from '../fixtures/site-devnet.ts'
import { clientEnvironment } from '../fixtures/client.ts'

let dbCount = 0

async function live(client: Client, blocks: number): Promise<ClientStatus> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const s = await client.status()
    if (s.sync.phase === 'live' && s.sync.verified === blocks) return s
    if (Date.now() > deadline) assert.fail(`timed out waiting for sync: ${JSON.stringify(s.sync)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('client: a dataset\'s training record', () => {
  // Over 256 KiB, so the record is a dag-pb file of several blocks (the recipe is not interpreted).
  const good = recordBytes({ ...sampleRecord(), recipe: { notes: 'x'.repeat(300_000) } })
  const bad = recordBytes({ kind: 'blyan/genesis-record', version: 1 })
  const text = (s: string): Uint8Array => new TextEncoder().encode(s)
  let dir: string
  let node: DevnetNode
  let honest: RunningRelay
  let liar: RunningRelay
  let goodCid: CID
  const datasets = new Map<string, string>()
  const clients: Client[] = []
  const open = async (relays: string[]): Promise<Client> => {
    const c = new Client(clientEnvironment(`record-${dbCount++}`))
    clients.push(c)
    await c.start({ relays })
    await live(c, node.store.size)
    return c
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'blyan-record-'))
    const store = openChainStore(join(dir, STORE_FILE))
    try {
      const payloads = new Map(blockNames(TINY_ARCH).map((name, i) => [name, paramPayload(name, TINY_ARCH, i + 1)]))
      await initDevnet({
        node: new FullNode(store), dataDir: dir, difficulty: 4, model: { architecture: TINY_ARCH, tokenizer: null, payloads },
        datasets: [
          { name: 'genesis-train', split: 'train', license: 'MIT', description: 'train', bytes: text('Once upon a time.\n\nThe end.'), record: bad },
          { name: 'genesis-validation', split: 'validation', license: 'MIT', description: 'held out', bytes: text('Lily had a red ball.'), record: good },
          { name: 'plain', split: 'train', license: 'MIT', description: 'no record', bytes: text('A cat sat.') }
        ]
      })
    } finally {
      store.close()
    }
    goodCid = (await importPayload(good)).cid
    assert.equal(goodCid.code, 0x70, 'the good record is a dag-pb file')
    node = new DevnetNode(dir)
    for (const b of node.store.headers('D', 0, Number.MAX_SAFE_INTEGER, 100)) datasets.set((b.document as { name: string }).name, b.cid.toString())
    honest = await node.relay()
    liar = await node.relay({ lieAbout: [goodCid] })
  })

  after(async () => {
    for (const c of clients) await c.close()
    await honest?.close()
    await liar?.close()
    node?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  test('fetched block by block, checked against its CID, and parsed', async () => {
    const client = await open([honest.url])
    const got = await client.datasetRecord(datasets.get('genesis-validation') as string)
    assert.ok(got.ok, JSON.stringify(got))
    assert.equal(got.cid, goodCid.toString())
    assert.equal(got.size, good.length)
    assert.deepEqual(got.bytes, good)
    assert.equal(got.record.evaluation.heldout.student_chain, 5.939425416887137)
    assert.equal(got.record.evaluation.expert_usage.length, TINY_ARCH.n_layers)
  })

  test('a file that matches its CID but is no record: refused, the field named', async () => {
    const client = await open([honest.url])
    const got = await client.datasetRecord(datasets.get('genesis-train') as string)
    assert.equal(got.ok, false)
    assert.ok(!got.ok)
    assert.equal(got.code, 'not-a-record')
    assert.match(got.message, /matches its CID, but it is not a valid training record: network: expected a non-empty string, got missing/)
  })

  test('only a relay that alters the record: unavailable, and the client says why', async () => {
    const client = await open([liar.url])
    const got = await client.datasetRecord(datasets.get('genesis-validation') as string)
    assert.ok(!got.ok, 'altered bytes are not believed')
    assert.equal(got.code, 'unavailable')
    assert.match(got.message, /do not match its CID/)
    const relay = (await client.status()).relays[0]
    assert.equal(relay?.lies[0]?.cid, goodCid.toString())
  })

  test('no record, not chain D, not a CID: each its own code', async () => {
    const client = await open([honest.url])
    const plain = await client.datasetRecord(datasets.get('plain') as string)
    assert.ok(!plain.ok)
    assert.equal(plain.code, 'no-record')
    const genesis = await client.datasetRecord(node.store.genesis()?.cid.toString() as string)
    assert.ok(!genesis.ok)
    assert.equal(genesis.code, 'not-found')
    const junk = await client.datasetRecord('not a cid')
    assert.ok(!junk.ok)
    assert.equal(junk.code, 'not-found')
  })
})
