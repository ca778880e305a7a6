/**
 * Crash safety of the running node: `blyan start` is killed with SIGKILL at random moments during a
 * burst of concurrent block submissions over HTTP. After every kill the store re-verifies from
 * genesis (`blyan verify`), every block acknowledged (201) before the kill is present, and every
 * other submitted block is either fully present or entirely absent: no partial block is visible.
 *
 * 30 rounds by default; BLYAN_CRASH_ROUNDS sets more.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { decodeSubmission } from '../../src/chain/submission.ts'
import { verifyStore } from '../../relay/node/archive.ts'
import { STORE_FILE, openExistingStore } from '../../relay/devnet.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { openChainStore } from '../../relay/node/chain-store.ts'
import { Devnet, NOW, submissionCar } from '../fixtures/devnet.ts'
import { createRandom } from '../fixtures/random.ts'
import { freshDataset } from '../fixtures/bad-submissions.ts'
import { startNode } from '../fixtures/node-process.ts'

const ROUNDS = Number(process.env['BLYAN_CRASH_ROUNDS'] ?? '30')
const BURST = 8
const dir = mkdtempSync(join(tmpdir(), 'blyan-crash-'))
after(() => rmSync(dir, { recursive: true, force: true }))

test(`SIGKILL during submission bursts, ${ROUNDS} rounds: nothing acknowledged is lost, nothing partial is visible`, { timeout: 900_000 }, async () => {
  // A devnet to build on, written through the node's own path.
  const d = await Devnet.standard()
  const store = openChainStore(join(dir, STORE_FILE))
  const node = new FullNode(store, { now: () => NOW })
  for (const built of d.built.values()) await node.submitCar(await submissionCar(built))
  store.close()

  // Independent blocks for the bursts: datasets on forks of chain D, each with its own content file.
  const pending: { cid: CID; car: Uint8Array; blocks: string[] }[] = []
  for (let i = 0; i < ROUNDS * BURST; i++) {
    const ds = await freshDataset(d, `crash-${i}`)
    pending.push({ cid: ds.built.sealed.cid, car: ds.car, blocks: [...(await decodeSubmission(ds.car)).blocks.keys()] })
  }

  const rnd = createRandom(Number(process.env['BLYAN_FUZZ_SEED'] ?? Date.now()) >>> 0)
  const acknowledged = new Set<string>()
  let killedMidway = 0
  for (let round = 0; round < ROUNDS; round++) {
    const { child, url } = await startNode(dir)
    const burst = pending.slice(round * BURST, (round + 1) * BURST)
    const exited = new Promise((resolve) => child.once('exit', resolve))
    const posts = burst.map(async (p) => {
      try {
        const res = await fetch(`${url}/api/blocks`, { method: 'POST', headers: { 'Content-Type': 'application/vnd.ipld.car' }, body: p.car as Uint8Array<ArrayBuffer> })
        if (res.status === 201) acknowledged.add(p.cid.toString())
        else assert.fail(`round ${round}: ${res.status} ${await res.text()}`)
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e
        // the connection died with the node: not acknowledged
      }
    })
    await new Promise((resolve) => setTimeout(resolve, rnd.int(40)))
    child.kill('SIGKILL')
    await exited
    await Promise.all(posts)
    if ([...burst].some((p) => !acknowledged.has(p.cid.toString()))) killedMidway++

    const after = openExistingStore(dir)
    try {
      await verifyStore(after, { now: NOW + 1 })
      for (const cid of acknowledged) assert.ok(after.get(CID.parse(cid)) !== undefined, `round ${round}: acknowledged ${cid} lost`)
      for (const p of burst) {
        const present = after.get(p.cid) !== undefined
        // Each submission's blocks are its own (unique header, document and content), so all or none.
        const visible = p.blocks.filter((k) => after.hasRaw(CID.parse(k)))
        assert.ok(visible.length === (present ? p.blocks.length : 0),
          `round ${round}: ${p.cid} is ${present ? 'present' : 'absent'} with ${visible.length} of ${p.blocks.length} blocks visible`)
      }
    } finally {
      after.close()
    }
  }
  console.log(`# crash: ${ROUNDS} rounds, ${acknowledged.size} of ${ROUNDS * BURST} submissions acknowledged, ${killedMidway} rounds killed mid-burst`)
  assert.ok(killedMidway > 0, 'no round was killed while submissions were in flight: the test proved nothing')
})
