/**
 * The browser miner (src/client/miner.ts) in Node, against a node as `blyan start` serves it on
 * the PoL devnet (stories260K, 4 experts, top-2, 3 validators): the same code the miner worker
 * runs, with fake-indexeddb for the wallet and the stored run.
 *
 * - a reload during training restarts the same job; a reload after submission follows the same
 *   candidate to its verdict without training again; the candidate is accepted with a gain of at
 *   least delta, and the wallet's balance and history show it;
 * - the site's client (src/client/client.ts), following the relay's live feed meanwhile, takes the
 *   accepted version into its own chain: the certificate found through the relay's hint or the
 *   reward that links it, the reward linked from the block page, the version current in its param
 *   index; after a reload with no relay, from its header cache alone;
 * - Stop aborts training at once and leaves nothing to resume.
 *
 * A "reload" is `close()` (the run is aborted, the stored run kept, as when a page goes away)
 * and a new Miner over the same IndexedDB.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { DAG_CBOR, cidOf } from '../../src/codec/cbor.ts'
import { idbKV, type KV } from '../../src/store/kv.ts'
import { Client } from '../../src/client/client.ts'
import { loadMinerRun } from '../../src/store/miner-run.ts'
import type { DonateState } from '../../src/client/api.ts'
import { Miner, type MinerEnvironment } from '../../src/client/miner.ts'
import { trainExpert } from '../../src/train/train.ts'
import { polDevnet, servePolDevnet } from '../fixtures/pol-devnet.ts'
import { SHARED_DATA_MISSING } from '../fixtures/shared-data.ts'
import { holdJob } from '../fixtures/site-devnet.ts'
import { clientEnvironment } from '../fixtures/client.ts'

const dirP = polDevnet()
let dbs = 0

/** A miner and every state it reported. */
function watched(walletKV: KV, minerKV: KV, env: MinerEnvironment = {}): { miner: Miner; states: DonateState[]; until(what: string, ok: (s: DonateState) => boolean, timeoutMs?: number): Promise<DonateState> } {
  const miner = new Miner({ walletKV, minerKV, pollMs: 200, ...env })
  const states: DonateState[] = []
  const waiters = new Set<() => void>()
  void miner.onDonate((s) => {
    states.push(s)
    for (const w of waiters) w()
  })
  return {
    miner,
    states,
    until(what, ok, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = states.find(ok)
          const ended = states.find((s) => s.phase === 'done' || s.phase === 'error' || s.phase === 'stopped')
          if (hit === undefined && ended !== undefined) {
            waiters.delete(check)
            clearTimeout(timer)
            reject(new Error(`the run ended (${ended.phase}) before ${what}: ${JSON.stringify(ended.outcome ?? ended.error)}`))
            return
          }
          if (hit === undefined) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve(hit)
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`timed out waiting for ${what}; last state ${JSON.stringify({ ...states.at(-1), losses: undefined })}`))
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    }
  }
}

/** Poll `f` until it returns something other than undefined. */
async function eventually<T>(what: () => Promise<string>, f: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v !== undefined) return v
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${await what()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe('browser miner in Node', { skip: dirP === null ? SHARED_DATA_MISSING : false }, () => {
  let relay: string

  servePolDevnet(async (_, url) => {
    relay = url
    await holdJob(relay, 'layer0.expert0')
  })

  test('reload while training restarts the job; reload while pending follows the same candidate to acceptance', async () => {
    const walletKV = idbKV(`miner-wallet-${++dbs}`, 'wallet')
    const minerKV = idbKV(`miner-run-${dbs}`, 'miner')

    // A page following the relay while the miner works: it takes the new version from the live feed.
    const prefix = `miner-site-${dbs}`
    const client = new Client(clientEnvironment(prefix))
    after(() => client.close())
    await client.start({ relays: [relay] })

    const first = watched(walletKV, minerKV)
    const made = await first.miner.createWallet()
    assert.ok(made.ok)
    await first.miner.startDonating({ relay, backend: 'cpu', keepGoing: false })
    const training = await first.until('training', (s) => s.phase === 'training' && s.step >= 2)
    const job = training.job
    assert.ok(job !== null)
    await first.miner.close()
    const stored = await loadMinerRun(minerKV)
    assert.deepEqual(stored?.job, { id: job.id, expert: job.expert }, 'the leased job is stored')
    assert.equal(stored?.candidate, null)

    const second = watched(walletKV, minerKV)
    const resumed = await second.miner.resume()
    assert.equal(resumed.resumed, 'restart')
    const restarted = await second.until('the job again', (s) => s.job !== null)
    assert.equal(restarted.job?.id, job.id, 'the same job restarts')
    const pending = await second.until('submitted', (s) => s.phase === 'pending' && s.candidate !== null)
    const cid = pending.candidate as string
    assert.ok(pending.losses.length === job.steps, 'trained every step before submitting')
    assert.ok(pending.selfCheck !== null && pending.selfCheck.lossAfter < pending.selfCheck.lossBefore)
    await second.miner.close()
    assert.equal((await loadMinerRun(minerKV))?.candidate, cid, 'the candidate is stored')

    const third = watched(walletKV, minerKV)
    const following = await third.miner.resume()
    assert.equal(following.resumed, 'follow')
    assert.equal(following.candidate, cid)
    const done = await third.until('the verdict', (s) => s.phase === 'done' || s.phase === 'error')
    assert.equal(done.phase, 'done', JSON.stringify(done.error))
    assert.ok(third.states.every((s) => s.phase !== 'training' && s.phase !== 'leasing'), 'no training after the reload')
    const outcome = done.outcome
    assert.ok(outcome !== null)
    assert.equal(outcome.cid, cid)
    assert.equal(outcome.status, 'accepted', `${outcome.code}: ${outcome.message}`)
    assert.ok(outcome.delta !== null && outcome.improvement !== null && outcome.improvement >= outcome.delta, `improvement ${outcome.improvement} >= delta ${outcome.delta}`)
    assert.ok((outcome.amount ?? 0) > 0 && outcome.reward !== null && outcome.certificate !== null)
    assert.equal(done.earned, outcome.amount)
    assert.equal(await loadMinerRun(minerKV), null, 'a settled run leaves nothing to resume')

    const activity = await third.miner.activity(relay)
    assert.ok(activity !== null)
    assert.equal(activity.balance, outcome.amount)
    assert.equal(activity.error, null)
    assert.equal(activity.trust, 'newbie')
    assert.deepEqual(activity.candidates.map((c) => [c.cid, c.status, c.reward]), [[cid, 'accepted', outcome.reward]])
    await third.miner.close()

    // The site's client, live since before mining: the certified version in its own chain, with its certificate and reward.
    const page = await eventually(async () => `the certified version in the page's chain: ${JSON.stringify(await client.block(cid))?.slice(0, 300)} ${JSON.stringify((await client.status()).sync)}`, async () => {
      const b = await client.block(cid)
      return b?.reward === null ? undefined : (b ?? undefined)
    })
    assert.equal(page.pol, 'certified')
    assert.equal(page.current, true)
    assert.equal(page.certificate?.cid, outcome.certificate)
    assert.equal(page.reward?.cid, outcome.reward)
    assert.equal(page.reward?.amount, outcome.amount)
    assert.equal((await client.currentExperts())[job.expert]?.cid, cid)
    assert.equal((await client.block(outcome.reward as string))?.rewardFor, cid, 'the reward page links back to the version')
    assert.deepEqual((await client.status()).sync.rejected, [])
    await new Promise((r) => setTimeout(r, 400)) // the client saves what it accepted 200 ms after the last block
    await client.close()
    // Reloaded with no relay: re-validated from the header cache, the certificate found through the cached reward.
    const reloaded = new Client(clientEnvironment(prefix))
    try {
      await reloaded.start({ relays: ['http://127.0.0.1:9'] })
      assert.equal((await reloaded.block(cid))?.pol, 'certified', 're-validated from the header cache, the certificate found through the cached reward')
    } finally {
      await reloaded.close()
    }
  })

  test('keep going: a job given up on (no gain worth submitting) is not taken again', async () => {
    // A trainer that learns nothing (zero steps): every self-check finds no gain, so nothing is submitted.
    const learnsNothing: MinerEnvironment['trainers'] = { cpu: (model, options) => trainExpert(model, { ...options, steps: 0 }) }
    const w = watched(idbKV(`miner-wallet-${++dbs}`, 'wallet'), idbKV(`miner-run-${dbs}`, 'miner'), { trainers: learnsNothing })
    assert.ok((await w.miner.createWallet()).ok)
    await w.miner.startDonating({ relay, backend: 'cpu', keepGoing: true })
    // Not `until`: a keep-going run passes through 'done' after every job.
    let third: DonateState | undefined
    try {
      third = await eventually(async () => `three jobs given up on; last state ${JSON.stringify({ ...w.states.at(-1), losses: undefined })}`,
        async () => w.states.find((s) => s.history.length >= 3), 180_000)
    } finally {
      await w.miner.stopDonating()
    }
    assert.ok(third.history.slice(0, 3).every((o) => o.status === 'no-gain' && o.cid === null), JSON.stringify(third.history))
    const jobs = w.states.slice(0, w.states.indexOf(third) + 1).map((s) => s.job?.id).filter((id): id is string => id !== undefined)
    assert.equal(new Set(jobs).size, 3, `three different jobs leased one after another, not the same again: ${[...new Set(jobs)].join(', ')}`)
  })

  test('Stop aborts training at once and leaves nothing to resume', async () => {
    const walletKV = idbKV(`miner-wallet-${++dbs}`, 'wallet')
    const minerKV = idbKV(`miner-run-${dbs}`, 'miner')
    const w = watched(walletKV, minerKV)
    assert.ok((await w.miner.createWallet()).ok)
    await w.miner.startDonating({ relay, backend: 'cpu', keepGoing: true })
    await w.until('training', (s) => s.phase === 'training' && s.step >= 1)
    const t = performance.now()
    const stopped = await w.miner.stopDonating()
    assert.ok(performance.now() - t < 2000, `stopped in ${performance.now() - t} ms`)
    assert.equal(stopped.phase, 'stopped')
    assert.equal(await loadMinerRun(minerKV), null)
    const again = watched(walletKV, minerKV)
    assert.equal((await again.miner.resume()).phase, 'idle')
  })

  test('a run judges the chain the site pinned: a relay serving another genesis is refused (E_ANCHOR) before any lease', async () => {
    const elsewhere = cidOf(new TextEncoder().encode('another network'), DAG_CBOR).toString()
    const w = watched(idbKV(`miner-wallet-${++dbs}`, 'wallet'), idbKV(`miner-run-${dbs}`, 'miner'), { anchor: async () => elsewhere })
    assert.ok((await w.miner.createWallet()).ok)
    await w.miner.startDonating({ relay, backend: 'cpu', keepGoing: false })
    const ended = await eventually(async () => `an error; states ${JSON.stringify(w.states.map((s) => s.phase))}`, async () => w.states.find((s) => s.phase === 'error'), 60_000)
    assert.equal(ended.error?.code, 'E_ANCHOR', ended.error?.message)
    assert.match(ended.error?.message ?? '', new RegExp(elsewhere))
    assert.ok(w.states.every((s) => s.job === null), 'no job was leased')
  })

  test('without a wallet, or on WebGPU without a trainer, nothing starts and the state says why', async () => {
    const w = watched(idbKV(`miner-wallet-${++dbs}`, 'wallet'), idbKV(`miner-run-${dbs}`, 'miner'))
    assert.equal((await w.miner.startDonating({ relay, backend: 'cpu', keepGoing: false })).error?.code, 'E_NO_WALLET')
    assert.ok((await w.miner.createWallet()).ok)
    assert.equal((await w.miner.startDonating({ relay, backend: 'webgpu', keepGoing: false })).error?.code, 'E_BACKEND')
  })
})
