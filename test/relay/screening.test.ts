/**
 * Nodes screen what anyone proposes (relay/pol/screener.ts): two nodes of one network (the committed
 * genesis; the second started from a copy of the first's data) get the same proposal over HTTP. Both write byte-identical
 * gate reports; a clean training pool is approved (silver), comes into force with the next chain A
 * block, and jobs draw shards from it; a copy of an approved pool is rejected with its reasons and
 * the report its decision links; a clean validation pool waits, screened, for validators to approve
 * it by hand, and is used by nothing meanwhile.
 */
import assert from 'node:assert/strict'
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { CID } from 'multiformats/cid'
import type { DatasetSplit } from '../../src/chain/dataset.ts'
import { poolsInForce } from '../../src/chain/governance.ts'
import { randomSecretKey } from '../../src/chain/keys.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { createRelayClient } from '../../src/net/relay-client.ts'
import { devnetParts, readGenesis } from '../../relay/genesis/genesis.ts'
import { proposalSubmission } from '../../src/chain/proposal.ts'
import { serve, type Served } from '../../relay/serve.ts'
import { GENESIS_DIR, genesisDevnet } from '../fixtures/genesis-devnet.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'

/** A proposal (chain D dataset block) by a fresh key, as the submission CAR a browser would POST. */
function proposal(node: Served, name: string, split: DatasetSplit, content: Uint8Array): Promise<{ cid: CID; car: Uint8Array }> {
  return proposalSubmission(node.node.store, randomSecretKey(), { name, split, content, license: 'CDLA-Sharing-1.0', description: `${name}: proposed in a test` }, Date.now())
}

interface DatasetView { cid: string; stage: string; decision: string | null; tier: string | null; in_force: boolean; reasons: string[]; report_cid: string | null; report: { pass: boolean; checks: { name: string; pass: boolean }[] } | null }

async function datasets(node: Served): Promise<DatasetView[]> {
  const res = await fetch(new URL('api/datasets', node.url))
  assert.equal(res.status, 200)
  return ((await res.json()) as { datasets: DatasetView[] }).datasets
}

describe('screening proposed datasets', () => {
  const nodes: Served[] = []
  const train = sharedData('tinystories_train_slice.txt')
  const val = sharedData('tinystories_val_slice.txt')

  before(async () => {
    // Two nodes of one network: the second starts from a copy of the first's data directory (same chain, same keys).
    const first = await genesisDevnet()
    const second = mkdtempSync(join(tmpdir(), 'blyan-screening-'))
    process.once('exit', () => rmSync(second, { recursive: true, force: true }))
    cpSync(first, second, { recursive: true })
    for (const dir of [first, second]) nodes.push(await serve({ dataDir: dir, port: 0, host: '127.0.0.1', log: () => undefined }))
  })
  after(async () => {
    for (const n of nodes) await n.close()
  })

  test('a clean training pool: the same report on both nodes, approved silver, in force with the next chain A block, and jobs draw from it', async (t) => {
    if (train === null) return t.skip(SHARED_DATA_MISSING)
    const text = train.subarray(300_000, 420_000)
    const reports: Uint8Array[] = []
    const p = await proposal(nodes[0] as Served, 'fresh-stories', 'train', text)
    for (const node of nodes) {
      assert.equal((await createRelayClient(node.url).submit(p.car) as { accepted: { cid: string } }).accepted.cid, p.cid.toString())
      await node.screener?.idle() // the node screens what it accepts, on its own
      const report = node.screener?.report(p.cid)
      assert.ok(report !== null && report !== undefined)
      assert.ok(report.report.pass, report.report.checks.filter((c) => !c.pass).map((c) => c.detail).join('; '))
      reports.push(report.bytes)
      // The approval is on chain D; the node brings it into force with a chain A block.
      const store = node.node.store
      for (let i = 0; i < 100 && !poolsInForce(store, store.head('A') as AcceptedBlock).train.some((c) => c.equals(p.cid)); i++) await new Promise((r) => setTimeout(r, 50))
      const listed = (await datasets(node)).find((d) => d.cid === p.cid.toString())
      assert.deepEqual([listed?.stage, listed?.tier, listed?.in_force], ['approved', 'silver', true])
      assert.ok(listed?.report_cid !== null && listed?.report?.pass === true, 'the decision links the report')
      const served = await fetch(new URL(`ipfs/${listed?.report_cid}?format=raw`, node.url))
      assert.deepEqual(new Uint8Array(await served.arrayBuffer()), report.bytes, 'the gateway serves the linked report')
      const jobs = await createRelayClient(node.url).jobs()
      assert.ok(jobs.some((j) => j.shard.dataset === p.cid.toString()), 'some jobs train on the new pool')
    }
    assert.deepEqual(reports[1], reports[0], 'two nodes, byte-identical reports')
  })

  test('a copy of an approved pool is rejected with its reasons; the report is linked', async () => {
    const node = nodes[0] as Served
    const copy = devnetParts(await readGenesis(GENESIS_DIR)).datasets.find((d) => d.split === 'train')?.bytes as Uint8Array
    const p = await proposal(node, 'copied', 'train', copy)
    await createRelayClient(node.url).submit(p.car)
    await node.screener?.idle()
    const listed = (await datasets(node)).find((d) => d.cid === p.cid.toString())
    assert.equal(listed?.stage, 'rejected')
    assert.match(listed?.reasons.join(' ') ?? '', /^duplicates: /)
    assert.equal(listed?.report?.checks.find((c) => c.name === 'duplicates')?.pass, false)
    assert.equal(listed?.in_force, false)
  })

  test('a clean validation pool is screened and waits for validators: it is used by nothing until approved by hand', async (t) => {
    if (val === null) return t.skip(SHARED_DATA_MISSING)
    const node = nodes[1] as Served
    const p = await proposal(node, 'fresh-validation', 'validation', val.subarray(0, 120_000))
    await createRelayClient(node.url).submit(p.car)
    await node.screener?.idle()
    const listed = (await datasets(node)).find((d) => d.cid === p.cid.toString())
    assert.deepEqual([listed?.stage, listed?.decision ?? null, listed?.in_force, listed?.report?.pass], ['screened', null, false, true])
  })
})
