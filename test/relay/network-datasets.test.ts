/**
 * Issue 16, dataset approvals on the votes topic: 4 validators, each on its own node with its own
 * key, and a relay. A clean training pool proposed at the relay is screened by every validator's
 * node, each gossips its signed vote, and the scheduled validator's node seals the decision with a
 * quorum of signatures (approved, silver) and the chain A block that brings it into force; every
 * node holds the same chain. A clean validation pool waits, screened, for validators to approve it
 * by hand: three operators each run `blyan dataset approve --tier gold` with their own node's one
 * key, each a vote, and the third vote makes the quorum. No node holds a quorum of keys.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { CID } from 'multiformats/cid'
import { randomSecretKey } from '../../src/chain/keys.ts'
import { decodeDecision } from '../../src/chain/decision.ts'
import { proposalSubmission } from '../../src/chain/proposal.ts'
import { poolsInForce } from '../../src/chain/governance.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import type { Served } from '../../relay/serve.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'
import { runCli } from '../fixtures/cli.ts'
import { addressOf, networkSeed, nodeDir, postBlock, startPeer, until, type NetworkSeed } from '../fixtures/network.ts'

const train = sharedData('tinystories_train_slice.txt')

describe('dataset approvals voted by validators on their own nodes', { skip: train === null ? SHARED_DATA_MISSING : false }, () => {
  let seed: NetworkSeed
  const nodes: Served[] = []
  const dirs: string[] = []

  before(async () => {
    seed = await networkSeed(4)
    dirs.push(...seed.keys.map((k) => nodeDir(seed, k)), nodeDir(seed, null))
    for (const dir of dirs) nodes.push(await startPeer(dir, nodes.map(addressOf)))
    await until('the mesh', () => nodes.every((n) => (n.network?.peers().filter((p) => p.seenAt !== null).length ?? 0) === 4), 20_000)
  })

  after(async () => {
    for (const n of nodes) await n.close()
  })

  test('a clean training pool proposed at the relay: approved (silver) by a quorum of votes, in force, the same everywhere', async () => {
    const relay = nodes[4] as Served
    const p = await proposalSubmission(relay.node.store, randomSecretKey(), {
      name: 'fresh-stories', split: 'train', content: (train as Uint8Array).subarray(300_000, 420_000), license: 'CDLA-Sharing-1.0', description: 'proposed in a network test'
    }, Date.now())
    const posted = await postBlock(relay.url, p.car)
    assert.ok(posted.status === 200 || posted.status === 201, JSON.stringify(posted))
    const decided = (n: Served): AcceptedBlock | undefined =>
      n.node.store.headers('D', 0, Number.MAX_SAFE_INTEGER, 10_000).find((b) => b.header.block_type === 'decision' && b.header.depends_on.some((d) => d.equals(p.cid as CID)))
    const ms = await until('every node to hold the decision and the rules block that brings it into force', () => nodes.every((n) => {
      const d = decided(n)
      return d !== undefined && poolsInForce(n.node.store, n.node.store.head('A') as AcceptedBlock).train.some((c) => c.equals(p.cid as CID))
    }), 120_000, 250)
    console.log(`# approved and in force on every node ${ms} ms after the proposal`)
    const decision = decodeDecision(nodes[0]?.node.store.getRaw((decided(nodes[0] as Served) as AcceptedBlock).header.payload) as Uint8Array)
    assert.equal(decision.verdict, 'approve')
    assert.equal(decision.tier, 'silver')
    assert.ok(decision.signatures.length >= 3, `${decision.signatures.length} signatures from validators on separate nodes`)
    await until('one chain everywhere', () => new Set(nodes.map((n) => `${n.node.store.head('A')?.cid} ${n.node.store.head('D')?.cid}`)).size === 1, 20_000)
  })

  test('a validation pool approved gold by hand: one vote per validator (blyan dataset approve with its node\'s one key), sealed at the third', async () => {
    const relay = nodes[4] as Served
    const p = await proposalSubmission(relay.node.store, randomSecretKey(), {
      name: 'more-validation', split: 'validation', content: (train as Uint8Array).subarray(600_000, 700_000), license: 'CDLA-Sharing-1.0', description: 'a validation pool proposed in a network test'
    }, Date.now())
    assert.ok([200, 201].includes((await postBlock(relay.url, p.car)).status))
    await until('the validators to screen it', async () => {
      const res = (await (await fetch(`${(nodes[0] as Served).url}api/datasets`)).json()) as { datasets: { cid: string; stage: string }[] }
      return res.datasets.find((d) => d.cid === p.cid.toString())?.stage === 'screened'
    }, 120_000, 500)
    const inForce = (n: Served): boolean => poolsInForce(n.node.store, n.node.store.head('A') as AcceptedBlock).validation.some((c) => c.equals(p.cid as CID))
    for (const i of [0, 1, 2]) {
      assert.ok(!nodes.some(inForce), `not in force before the quorum (vote ${i + 1})`)
      const r = await runCli('dataset', 'approve', p.cid.toString(), '--relay', (nodes[i] as Served).url, '--data', dirs[i] as string, '--tier', 'gold')
      assert.equal(r.code, 0, r.out)
      assert.match(r.out, /voted to approve .* \(1 of the 3 signatures a decision needs; counted/)
    }
    await until('the gold pool in force on every node', () => nodes.every(inForce), 60_000, 250)
  })
})
