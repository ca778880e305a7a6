/**
 * Mining end to end over HTTP, on the real model: a node as `blyan start` serves it (PoL service
 * judging with the devnet's 3 validator keys), its job board and leases, and `blyan mine` taking a
 * job, training, submitting, and getting the candidate accepted and rewarded.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { toHex } from '../../src/codec/cbor.ts'
import { publicKeyOf, randomSecretKey, signMessage } from '../../src/chain/keys.ts'
import { DEFAULT_JOB_SETTINGS, leaseMessage, signLeaseRequest, type Job } from '../../src/pol/job.ts'
import { main } from '../../relay/cli.ts'
import { CID } from 'multiformats/cid'
import { poolsInForce } from '../../src/chain/governance.ts'
import { rewardAmount, type RewardDocument } from '../../src/chain/ledger.ts'
import type { MetaDocument } from '../../src/chain/meta.ts'
import type { Certificate } from '../../src/chain/pol.ts'
import { batchOrderHash, decodeRecord } from '../../src/chain/record.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { batchOrder } from '../../src/model/random.ts'
import { createRelayClient } from '../../src/net/relay-client.ts'
import { auditRecord } from '../../src/pol/audit.ts'
import { MinerChain } from '../../src/pol/chain.ts'
import { checkRecordAgainstJob } from '../../relay/pol/jobs.ts'
import { assertRule } from '../fixtures/assert-rule.ts'
import { runCli } from '../fixtures/cli.ts'
import { clientEnvironment, untilStatus } from '../fixtures/client.ts'
import { Client } from '../../src/client/client.ts'
import type { Served } from '../../relay/serve.ts'
import { readKeyFile } from '../../relay/devnet.ts'
import { polDevnet, servePolDevnet } from '../fixtures/pol-devnet.ts'
import { SHARED_DATA_MISSING } from '../fixtures/shared-data.ts'

const dirP = polDevnet()

async function json<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, init)
  return { status: res.status, body: (await res.json()) as T }
}

function leaseBody(job: string, key: Uint8Array, at = Date.now(), signer = key): string {
  // Signed by `signer` in `key`'s name: a forgery when they differ.
  return JSON.stringify({ ...signLeaseRequest(job, signer, 'lease', at), miner: toHex(publicKeyOf(key)) })
}

describe('mining over HTTP', { skip: dirP === null ? SHARED_DATA_MISSING : false }, () => {
  let served: Served
  let url: string

  servePolDevnet((s, u) => {
    served = s
    url = u
  })

  test('the job board: a job per expert, leases signed by the miner, newbie leases shared, a trusted key\'s exclusive, quotas, no replays, signed release', async () => {
    const { body } = await json<{ jobs: Job[] }>(`${url}/api/jobs`)
    assert.equal(body.jobs.length, 20, '5 layers x 4 experts')
    assert.ok(body.jobs.every((j) => j.lease === null && j.sharedBy.length === 0 && j.baseVersion === 0 && j.seqLen === 64))
    const [a, b, c] = body.jobs as [Job, Job, Job]
    const alice = randomSecretKey()
    const bob = randomSecretKey()
    const lease = (job: Job, key: Uint8Array, at?: number, signer?: Uint8Array) =>
      json<{ lease?: { expires_at: number }; error?: { code: string } }>(`${url}/api/jobs/${job.id}/lease`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: leaseBody(job.id, key, at, signer) })
    assert.equal((await lease(a, alice, undefined, bob)).status, 401, 'signed by another key')
    assert.equal((await lease(a, alice, Date.now() - 60 * 60 * 1000)).status, 400, 'an old request')
    const at = Date.now()
    const ok = await lease(a, alice, at)
    assert.equal(ok.status, 200)
    assert.ok((ok.body.lease?.expires_at ?? 0) > Date.now())
    const replay = await lease(a, alice, at)
    assert.deepEqual([replay.status, replay.body.error?.code], [409, 'E_REPLAY'], 'the same signed request twice')
    assert.equal((await lease(a, alice, at + 1)).status, 200, 'renewing is fine')
    assert.equal((await lease(a, bob)).status, 200, 'a newbie lease is shared: another miner may take the job too')
    const quota = await lease(b, alice, at + 2)
    assert.equal(quota.status, 429, 'a newbie holds one lease at a time')
    assert.equal(quota.body.error?.code, 'E_QUOTA')
    const listed = (await json<{ jobs: Job[] }>(`${url}/api/jobs`)).body.jobs.find((j) => j.id === a.id)
    assert.equal(listed?.lease, null, 'no exclusive holder')
    assert.deepEqual(listed?.sharedBy.map((l) => l.miner).sort(), [toHex(publicKeyOf(alice)), toHex(publicKeyOf(bob))].sort())
    assert.equal((await json(`${url}/api/jobs/ffffffffffffffff/lease`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: leaseBody('ffffffffffffffff', bob) })).status, 404)
    for (const bad of ['null', '[]', '"x"', '{"miner": 1}']) {
      assert.equal((await fetch(`${url}/api/jobs/${a.id}/lease`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: bad })).status, 400, bad)
    }

    // A trusted key (3 accepted candidates in a row) leases exclusively.
    const carol = randomSecretKey()
    const carolHex = toHex(publicKeyOf(carol))
    for (let i = 0; i < 3; i++) {
      const cid = `bafyreitrust${i}${'a'.repeat(40)}`
      served.pol.polStore.add({ cid, miner: carolHex, expert: 'layer0.expert0', base: 'x', rules: 'x', payload: `p${i}${carolHex}`, receivedAt: Date.now() }, new Uint8Array(1))
      served.pol.polStore.decide(cid, { status: 'accepted', at: Date.now() + i })
    }
    assert.equal(served.pol.trustOf(carolHex), 'trusted')
    assert.equal((await lease(c, carol)).status, 200)
    const taken = await lease(c, bob)
    assert.deepEqual([taken.status, taken.body.error?.code], [409, 'LEASED'])
    assert.equal((await json<{ jobs: Job[] }>(`${url}/api/jobs`)).body.jobs.find((j) => j.id === c.id)?.lease?.miner, carolHex)

    // Releasing: only the holder, signed for release (a lease signature does not release); a release is not replayable either.
    const release = (job: Job, key: Uint8Array, action: 'lease' | 'release' = 'release', at = Date.now() + 10) => {
      const miner = toHex(publicKeyOf(key))
      return json<{ error?: { code: string } }>(`${url}/api/jobs/${job.id}/lease`, { method: 'DELETE', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ miner, at, signature: toHex(signMessage(leaseMessage(job.id, miner, at, action), key)) }) })
    }
    assert.equal((await release(a, alice, 'lease', at + 3)).status, 401)
    assert.equal((await release(b, bob)).status, 404, 'bob holds no lease on it')
    assert.equal((await release(a, alice, 'release', at + 4)).status, 200)
    assert.equal((await lease(a, alice, at + 5)).status, 200, 'free again for alice')
    const replayedRelease = await release(a, alice, 'release', at + 4)
    assert.deepEqual([replayedRelease.status, replayedRelease.body.error?.code], [409, 'E_REPLAY'], 'a captured release cannot drop the later lease')
    assert.ok((await json<{ jobs: Job[] }>(`${url}/api/jobs`)).body.jobs.find((j) => j.id === a.id)?.sharedBy.some((l) => l.miner === toHex(publicKeyOf(alice))))
    for (const [job, key, t] of [[a, alice, at + 6], [a, bob, undefined], [c, carol, undefined]] as const) assert.equal((await release(job, key, 'release', t)).status, 200)
  })

  test('blyan mine --jobs 2: trains, skips a job without gain, submits, gets accepted and rewarded, gives leases back', async () => {
    const keyFile = join(mkdtempSync(join(tmpdir(), 'blyan-miner-')), 'miner.key')
    const lines: string[] = []
    const log = console.log
    console.log = (line: unknown) => void lines.push(String(line))
    let code: number
    try {
      code = await main(['mine', '--relay', url, '--key', keyFile, '--jobs', '2', '--json'])
    } finally {
      console.log = log
    }
    assert.equal(code, 0, lines.join('\n'))
    type Result = { job: string; expert: string; outcome: { cid: string; status: string; amount: number; loss_before: number; loss_after: number } | null; selfCheck: { lossBefore: number; lossAfter: number } | null }
    const results = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Result)
    assert.equal(results.length, 2, lines.join('\n'))
    assert.notEqual(results[0]?.job, results[1]?.job, 'a job given up on (no gain) is not taken again')
    const result = results.find((r) => r.outcome?.status === 'accepted')
    assert.ok(result !== undefined && result.outcome !== null, lines.join('\n'))
    assert.ok(result.selfCheck !== null && result.selfCheck.lossAfter < result.selfCheck.lossBefore, JSON.stringify(result.selfCheck))
    const key = readKeyFile(keyFile)
    const miner = toHex(publicKeyOf(key))
    const balance = await json<{ balance: number }>(`${url}/api/balance/${miner}`)
    assert.equal(balance.body.balance, result.outcome.amount)
    const params = await json<{ entries: Record<string, string> }>(`${url}/api/params`)
    assert.equal(params.body.entries[result.expert], result.outcome.cid, 'the param index serves the new version')
    const block = await json<{ status: string; certificate: string | null }>(`${url}/api/blocks/${result.outcome.cid}`)
    assert.equal(block.body.status, 'accepted')
    const history = await json<{ trust: string; candidates: { cid: string; status: string }[] }>(`${url}/api/miners/${miner}`)
    assert.equal(history.body.trust, 'newbie')
    assert.ok(history.body.candidates.some((c) => c.cid === result.outcome?.cid && c.status === 'accepted'))
    // every lease went back when its job ended
    assert.ok((await json<{ jobs: Job[] }>(`${url}/api/jobs`)).body.jobs.every((j) => j.lease === null && j.sharedBy.length === 0))

    // Proof-of-Data-Learning: the certificate links the miner's training record, naming a training pool in force.
    const store = served.node.store
    const version = store.get(CID.parse(result.outcome.cid)) as AcceptedBlock
    const recordCid = version.certificate?.value.record ?? null
    assert.ok(recordCid !== null, 'the certificate links a training record')
    const record = decodeRecord(store.getRaw(recordCid) as Uint8Array)
    assert.ok(poolsInForce(store, store.get(version.meta) as AcceptedBlock).train.some((c) => c.equals(record.dataset)), 'it names an approved training pool')
    assert.deepEqual([record.expert, record.backend, record.step_hashes.length], [result.expert, 'cpu', record.steps])
    const audit = await runCli('audit', result.outcome.cid, '--relay', url)
    assert.equal(audit.code, 0, audit.out)
    assert.match(audit.out, /PASS \(exact\): \d+ steps replayed bit for bit/)

    // Rewards for data: the pool's proposer got the data share of the reward, the miner the rest.
    const reward = store.headers('C', 0, 1 << 20, 1 << 16).find((b) => b.certificate?.value.candidate.equals(version.cid) === true) as AcceptedBlock
    const doc = reward.document as RewardDocument
    const proposer = (store.get(record.dataset) as AcceptedBlock).header.miner_pub
    const total = rewardAmount(version.certificate?.value as Certificate, (store.get(reward.meta)?.document as MetaDocument).reward)
    assert.deepEqual([doc.amount, doc.data?.amount], [total - Math.floor(total * 0.1), Math.floor(total * 0.1)], 'the default data share is 10%')
    assert.deepEqual(doc.data?.to, proposer)
    assert.equal(store.balance(proposer, store.head('C')?.cid ?? null), doc.data?.amount)
    const pool = (await createRelayClient(url).datasets()).find((p) => p.cid === record.dataset.toString())
    assert.deepEqual([pool?.earned, pool?.learnedBy], [doc.data?.amount, [{ expert: result.expert, version: result.outcome.cid }]], 'the pool shows what it earned and who learned from it')
  })

  test('an altered training record fails the audit at the step where the replay first differs; validators refuse one that is not the job\'s (E_RECORD)', async () => {
    const store = served.node.store
    const version = [...store.headers('B', 0, 1 << 20, 1 << 16)].find((b) => b.certificate?.value.record != null) as AcceptedBlock
    const record = decodeRecord(store.getRaw(version.certificate?.value.record as CID) as Uint8Array)
    const chain = new MinerChain(createRelayClient(url))
    await chain.sync()
    const model = chain.model()
    const inputs = {
      version, architecture: model.architecture, lookup: (c: CID) => chain.chain.get(c), get: chain.getter('audit'),
      tokenizer: await chain.tokenizer(model), datasetText: await chain.datasetText(record.dataset)
    }
    const otherWindows = await auditRecord({ ...inputs, record: { ...record, start: record.start + 1 } })
    assert.deepEqual([otherWindows.pass, otherWindows.firstDifference], [false, 0], otherWindows.detail)
    const seed = record.seed + 1
    const otherSeed = await auditRecord({ ...inputs, record: { ...record, seed, batch_order: batchOrderHash(batchOrder(record.count, record.steps, record.batch_size, seed)) } })
    assert.deepEqual([otherSeed.pass, otherSeed.firstDifference], [false, 0], otherSeed.detail)
    const hashes = [...record.step_hashes]
    hashes[3] = new Uint8Array(32)
    const forgedStep = await auditRecord({ ...inputs, record: { ...record, step_hashes: hashes } })
    assert.deepEqual([forgedStep.pass, forgedStep.firstDifference], [false, 3], forgedStep.detail)
    assert.match(forgedStep.detail, /^step 3: the weights hash to/)
    // Validators check a record against the job before judging: another seed or other windows is not the job.
    const rules = store.get(version.header.depends_on.find((c) => store.get(c)?.header.chain_id === 'A') as CID) as AcceptedBlock
    const miner = toHex(version.header.miner_pub)
    assert.doesNotThrow(() => checkRecordAgainstJob(record, miner, rules, store, DEFAULT_JOB_SETTINGS))
    await assertRule(() => checkRecordAgainstJob({ ...record, start: record.start + 1 }, miner, rules, store, DEFAULT_JOB_SETTINGS), 'E_RECORD', 'record.start')
    await assertRule(() => checkRecordAgainstJob({ ...record, seed }, miner, rules, store, DEFAULT_JOB_SETTINGS), 'E_RECORD', 'record.seed')
    // The windows are this key's attempt's: another key's, or another attempt named in the record, are not.
    await assertRule(() => checkRecordAgainstJob(record, toHex(publicKeyOf(randomSecretKey())), rules, store, DEFAULT_JOB_SETTINGS), 'E_RECORD', 'record.start')
    await assertRule(() => checkRecordAgainstJob({ ...record, attempt: record.attempt + 1 }, miner, rules, store, DEFAULT_JOB_SETTINGS), 'E_RECORD', 'record.start')

    // The site's explorer audits the same version on the page's own device (its client, in Node here).
    const client = new Client(clientEnvironment(`audit-${Date.now()}`))
    try {
      await client.start({ relays: [url] })
      await untilStatus(client, 'live', (s) => s.sync.phase === 'live' && s.sync.verified === store.size)
      const steps: number[] = []
      const page = await client.audit(version.cid.toString(), (step) => steps.push(step))
      assert.ok(page.ok && page.pass && page.mode === 'exact', JSON.stringify(page))
      assert.equal(steps.length, record.steps, 'progress for every step')
      const initial = await client.audit((store.paramIndex().get('embedding') as AcceptedBlock).cid.toString())
      assert.ok(!initial.ok && /no training record/.test(initial.message))
    } finally {
      await client.close()
    }
  })
})
