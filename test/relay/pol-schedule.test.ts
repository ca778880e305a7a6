/**
 * The PoL service's schedule survives failures: a round that cannot judge a candidate (here no
 * validation pool is in force yet, so no beacon is made) says why on the candidate, and a later round judges it
 * without any other event (no new candidate, no manual runRound). The attack this stops: after the
 * first admission the periodic timer was replaced by a one-shot round, so a candidate left pending by
 * a failed round waited (holding its miner's quota) until someone else submitted.
 */
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { randomSecretKey, type SecretKey } from '../../src/chain/keys.ts'
import { KEYS_DIR, openExistingStore, readKeyFile } from '../../relay/devnet.ts'
import { devnetParts, readGenesis } from '../../relay/genesis/genesis.ts'
import type { ChainStore } from '../../relay/node/interface.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { proposalSubmission } from '../../src/chain/proposal.ts'
import { decisionSubmission } from '../../relay/node/governance.ts'
import { PolService } from '../../relay/pol/service.ts'
import { PolStore, type CandidateRecord } from '../../relay/pol/pol-store.ts'
import { GENESIS_DIR, genesisDevnet, nudgedCandidate } from '../fixtures/genesis-devnet.ts'

const INTERVAL_MS = 200

/** Poll `read` until `done` holds (the PoL service works on its own timers), or fail after `ms`. */
async function until<T>(read: () => T, done: (value: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = read()
    if (done(value)) return value
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(value)} after ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

describe('PoL rounds on a steady schedule', () => {
  let dir: string
  let store: ChainStore
  let node: FullNode
  let polStore: PolStore
  let pol: PolService
  let validators: SecretKey[]
  const log: string[] = []

  before(async () => {
    dir = await genesisDevnet({ datasets: (d) => d.split === 'train' })
    store = openExistingStore(dir)
    node = new FullNode(store)
    polStore = PolStore.open(join(dir, 'pol.sqlite'))
    const keysDir = join(dir, KEYS_DIR)
    validators = readdirSync(keysDir).filter((f) => f.endsWith('.key')).sort().map((f) => readKeyFile(join(keysDir, f)))
    pol = new PolService({ node, polStore, validators, log: (l) => log.push(l) })
    pol.start(INTERVAL_MS)
  })

  after(async () => {
    await pol.stop()
    polStore.close()
    store.close()
  })

  test('a candidate a failed round left pending says why, and is judged by a later round with nothing else happening', async () => {
    const candidate = await nudgedCandidate(store, 0, 0, randomSecretKey())
    const cid = candidate.sealed.cid.toString()
    const outcome = await node.submitOrQueue(candidate.car, pol)
    assert.ok('candidate' in outcome, 'admitted')

    // No validation dataset: the round cannot judge it. It stays pending and says why.
    const failed = await until(() => pol.candidate(cid) as CandidateRecord, (c) => c.attempts >= 1, 30_000, 'a failed attempt')
    assert.equal(failed.status, 'pending')
    assert.match(failed.lastError ?? '', /no validation pool is in force/)
    const attempts = failed.attempts
    await until(() => (pol.candidate(cid) as CandidateRecord).attempts, (n) => n > attempts, 30_000, 'retried on the schedule')

    // The missing pool arrives as governance does it: anyone proposes it on chain D, the validators
    // approve it, and the node brings the approval into force with a chain A block. No candidate, no call into the service.
    const g = await readGenesis(GENESIS_DIR)
    const validation = devnetParts(g).datasets.find((d) => d.split === 'validation')
    assert.ok(validation !== undefined)
    const p = await proposalSubmission(store, randomSecretKey(), { name: validation.name, license: validation.license, split: 'validation', description: validation.description, content: validation.bytes }, Date.now())
    const proposal = await node.submitCar(p.car)
    await node.submitCar(await decisionSubmission(store, validators, { dataset: proposal.cid, verdict: 'approve', tier: 'gold' }, Date.now()))

    const decided = await until(() => pol.candidate(cid) as CandidateRecord, (c) => c.status !== 'pending', 60_000, 'a verdict')
    assert.ok(decided.lossBefore !== null && decided.lossAfter !== null, `judged on the validation pool: ${decided.status} ${decided.code ?? ''}`)
    assert.ok(log.some((l) => /could not judge .* retrying next round/.test(l)), 'the failure was logged')
  })
})
