/**
 * Finality in the site's client (src/client/client.ts, the code the page runs), against a real
 * relay over a genesis devnet with 4 validator keys (quorum 3) whose node holds none of them:
 *
 * - the genesis is final (blyan init's checkpoint 0), verified by the page's own rules;
 * - a new chain D block is shown `pending`; votes from 2 validators leave it so, the third makes a
 *   checkpoint and the page (over /ws) shows it `final`;
 * - a block competing with the final one is refused by the node (E_FINALIZED, not transient), and
 *   offered to the page it is refused there too;
 * - a reload with the relay gone re-applies the checkpoints from the cache: still final.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { documentPayload, sealBlock, type HeaderDraft } from '../../src/chain/build.ts'
import { assembleCheckpoint, encodeCheckpoint, nextCheckpointBody, signCheckpoint } from '../../src/chain/checkpoint.ts'
import { encodeDataset } from '../../src/chain/dataset.ts'
import { randomSecretKey } from '../../src/chain/keys.ts'
import { encodeSubmission } from '../../src/chain/submission.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { Client } from '../../src/client/client.ts'
import { importPayload } from '../../src/tensor/tiles.ts'
import { KEYS_DIR, readKeyFile } from '../../relay/devnet.ts'
import { genesisDevnet } from '../fixtures/genesis-devnet.ts'
import { DevnetNode, type RunningRelay } from '../fixtures/site-devnet.ts'
import { clientEnvironment, untilStatus } from '../fixtures/client.ts'

/** A chain D dataset block by a stranger's key on `prev` (any key may add one): a block the validators have not checkpointed. */
async function strangerDataset(node: DevnetNode, name: string, prev: AcceptedBlock): Promise<Uint8Array> {
  const content = new TextEncoder().encode(`${name}: a story of my own.\n`)
  const file = await importPayload(content)
  const doc = documentPayload(encodeDataset({
    kind: 'blyan/dataset', version: 1, name, license: 'CC0-1.0', split: 'train', format: 'text/plain; blank-line-separated',
    content: file.cid, content_size: content.length, description: ''
  }))
  const rules = node.store.head('A') as AcceptedBlock
  const sealed = sealBlock({
    chain_id: 'D', block_type: 'dataset', index: prev.header.index + 1, prev: prev.cid, depends_on: [rules.cid], expert_name: null, layer_id: null,
    payload: doc.cid, payload_size: doc.size, timestamp: Date.now(), difficulty: prev.header.difficulty, supersedes: null, pol: null
  } as HeaderDraft, randomSecretKey())
  return encodeSubmission({ header: sealed.bytes, payload: doc.bytes, files: [content] })
}

async function post(url: string, type: string, body: Uint8Array): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body: body as Uint8Array<ArrayBuffer> })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe('finality in the site client', () => {
  let dir: string
  let node: DevnetNode
  let relay: RunningRelay
  const clients: Client[] = []

  before(async () => {
    dir = await genesisDevnet({ validators: 4 })
    node = new DevnetNode(dir)
    relay = await node.relay()
  })

  after(async () => {
    for (const c of clients) await c.close()
    await relay.close()
    node.close()
  })

  test('pending until a checkpoint signed by 3 of 4 validators, then final; a competing block is refused; a reload keeps finality offline', async () => {
    const prefix = 'finality'
    const client = new Client(clientEnvironment(prefix))
    clients.push(client)
    await client.start({ relays: [relay.url] })
    let s = await untilStatus(client, 'live with checkpoint 0', (x) => x.sync.phase === 'live' && x.sync.verified === node.store.size && x.sync.finality?.number === 0)
    assert.deepEqual(s.sync.rejected, [])
    const datasets = await client.listBlocks('D', 10)
    assert.ok(datasets.length >= 2 && datasets.every((b) => b.finality === 'final'), 'the genesis datasets are final')
    assert.ok((await client.listBlocks('B', 5)).every((b) => b.finality === null), 'chain B is not checkpointed')

    // A new chain D block: accepted by the node, pending everywhere.
    const finalD = node.store.head('D') as AcceptedBlock
    const added = await post(`${relay.url}/api/blocks`, 'application/vnd.ipld.car', await strangerDataset(node, 'stranger', finalD))
    assert.equal(added.status, 201, JSON.stringify(added.body))
    const newCid = (added.body['accepted'] as { cid: string }).cid
    s = await untilStatus(client, 'the new block', (x) => x.sync.heads.D?.cid === newCid)
    assert.equal((await client.block(newCid))?.finality, 'pending')
    assert.equal((await client.block(finalD.cid.toString()))?.finality, 'final')

    // Votes: each validator signs the same body; 2 of 4 are pooled, the third makes the checkpoint.
    const keys = [0, 1, 2, 3].map((i) => readKeyFile(join(dir, KEYS_DIR, `validator-${i}.key`)))
    const last = node.store.checkpoint()
    const genesis = node.store.genesis() as AcceptedBlock
    const body = nextCheckpointBody(last, genesis.cid, { A: (node.store.head('A') as AcceptedBlock).cid, C: node.store.head('C')?.cid ?? null, D: node.store.head('D')?.cid ?? null })
    const vote = (i: number): Uint8Array => encodeCheckpoint(assembleCheckpoint(body, [signCheckpoint(body, keys[i] as Uint8Array)]))
    const dagCbor = 'application/vnd.ipld.dag-cbor'
    assert.deepEqual((await post(`${relay.url}/api/checkpoints/votes`, dagCbor, vote(0))).body, { status: 'pooled', signatures: 1, needed: 3 })
    assert.deepEqual((await post(`${relay.url}/api/checkpoints/votes`, dagCbor, vote(1))).body, { status: 'pooled', signatures: 2, needed: 3 })
    assert.equal((await client.block(newCid))?.finality, 'pending', 'two votes make nothing final')
    const third = await post(`${relay.url}/api/checkpoints/votes`, dagCbor, vote(3))
    assert.equal(third.status, 201)
    assert.equal((third.body['checkpoint'] as { number: number }).number, 1)
    await untilStatus(client, 'checkpoint 1 over /ws', (x) => x.sync.finality?.number === 1)
    assert.equal((await client.block(newCid))?.finality, 'final')
    const status = (await (await fetch(`${relay.url}/api/status`)).json()) as { finality: { number: number; heads: { D: { cid: string } } } }
    assert.equal(status.finality.number, 1)
    assert.equal(status.finality.heads.D.cid, newCid)

    // A block competing with the final one: refused by the node, for good.
    const competing = await post(`${relay.url}/api/blocks`, 'application/vnd.ipld.car', await strangerDataset(node, 'usurper', finalD))
    assert.equal(competing.status, 422)
    assert.deepEqual([(competing.body['error'] as { code: string }).code, (competing.body['error'] as { transient: boolean }).transient], ['E_FINALIZED', false])
    assert.equal(node.store.head('D')?.cid.toString(), newCid)

    // A reload without the relay: headers and checkpoints come back from the cache, judged again.
    await client.close()
    const port = relay.port
    await relay.close()
    const offline = new Client(clientEnvironment(prefix))
    clients.push(offline)
    await offline.start({ relays: [`http://127.0.0.1:${port}`] })
    const again = await untilStatus(offline, 'the cached checkpoints', (x) => x.sync.finality?.number === 1)
    assert.equal(again.sync.heads.D?.cid, newCid)
    assert.equal((await offline.block(newCid))?.finality, 'final')
    relay = await node.relay({ port })
  })
})
