/**
 * `blyan dataset` against a running node of the committed genesis network: a user proposes a
 * validation pool, the node's gate screens it, validators approve it by hand (gold) and it becomes
 * the second validation pool in force; then they retire it. A proposal copied from an approved pool
 * is rejected by the gate, and the CLI says why.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { poolsInForce } from '../../src/chain/governance.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { devnetParts, readGenesis } from '../../relay/genesis/genesis.ts'
import { serve, type Served } from '../../relay/serve.ts'
import { runCli } from '../fixtures/cli.ts'
import { GENESIS_DIR, genesisDevnet } from '../fixtures/genesis-devnet.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'

describe('blyan dataset', () => {
  let node: Served
  let dataDir: string
  const tmp = mkdtempSync(join(tmpdir(), 'blyan-dataset-cli-'))
  const key = join(tmp, 'me.key')
  process.once('exit', () => rmSync(tmp, { recursive: true, force: true }))

  before(async () => {
    dataDir = await genesisDevnet()
    node = await serve({ dataDir, port: 0, host: '127.0.0.1', log: () => undefined })
  })
  after(() => node.close())

  const inForce = (): string[] => poolsInForce(node.node.store, node.node.store.head('A') as AcceptedBlock).validation.map(String)

  test('propose a validation pool, screened; approve it by hand (gold): in force; retire it: gone', async (t) => {
    const val = sharedData('tinystories_val_slice.txt')
    if (val === null) return t.skip(SHARED_DATA_MISSING)
    const file = join(tmp, 'stories.txt')
    writeFileSync(file, val.subarray(0, 100_000))
    const proposed = await runCli('dataset', 'propose', file, '--relay', node.url, '--name', 'more-stories', '--split', 'validation', '--license', 'CDLA-Sharing-1.0', '--key', key)
    assert.equal(proposed.code, 0, proposed.out)
    assert.match(proposed.out, /proposed more-stories \(validation\): (\S+)/)
    assert.match(proposed.out, /screened .*gate passed/)
    const cid = (/proposed more-stories \(validation\): (\S+)/.exec(proposed.out) as RegExpExecArray)[1] as string
    assert.ok(!inForce().includes(cid), 'screened is not approved')

    const approved = await runCli('dataset', 'approve', cid, '--relay', node.url, '--data', dataDir, '--tier', 'gold')
    assert.equal(approved.code, 0, approved.out)
    assert.match(approved.out, /the gate's report \S+: passed/)
    await waitFor(() => inForce().includes(cid))
    assert.equal(inForce().length, 2, 'the genesis pool and this one')
    const listed = await runCli('dataset', 'list', '--relay', node.url)
    assert.match(listed.out, new RegExp(`${cid}  more-stories \\(validation, 100000 bytes, CDLA-Sharing-1.0\\)  approved gold, in force  gate passed`))

    const missing = await runCli('dataset', 'retire', cid, '--relay', node.url, '--data', dataDir)
    assert.equal(missing.code, 2, 'a retirement needs a reason')
    const retired = await runCli('dataset', 'retire', cid, '--relay', node.url, '--data', dataDir, '--reason', 'superseded by a larger pool')
    assert.equal(retired.code, 0, retired.out)
    await waitFor(() => !inForce().includes(cid))
    assert.deepEqual(CID.parse(inForce()[0] as string).toString(), inForce()[0])
  })

  test('a copy of an approved pool is rejected by the gate, and the CLI says why', async () => {
    const file = join(tmp, 'copy.txt')
    writeFileSync(file, devnetParts(await readGenesis(GENESIS_DIR)).datasets.find((d) => d.split === 'train')?.bytes as Uint8Array)
    const proposed = await runCli('dataset', 'propose', file, '--relay', node.url, '--name', 'my-copy', '--split', 'train', '--key', key)
    assert.equal(proposed.code, 0, proposed.out)
    assert.match(proposed.out, /rejected .*gate failed: duplicates .*\[duplicates: \d+ of \d+ documents repeat/)
    const refused = await runCli('dataset', 'approve', 'not-a-cid', '--relay', node.url, '--data', dataDir)
    assert.equal(refused.code, 1)
    assert.match(refused.out, /is not a CID/)
  })
})

async function waitFor(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.ok(done(), 'in time')
}
