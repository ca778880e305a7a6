/**
 * The dataset hole (issue 15), as an attacker tries it on the default network: a fresh key adds
 * chain D `validation` and `train` datasets of its own. Before the validators approve them, the
 * job board does not hand out their shards, the PoL service does not judge on them, and a
 * certificate naming them (even one signed by the whole validator set) is refused by the full node
 * and by a light client that synced the same relay.
 */
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { CID } from 'multiformats/cid'
import type { DatasetDocument } from '../../src/chain/dataset.ts'
import { poolsInForce } from '../../src/chain/governance.ts'
import { randomSecretKey, type SecretKey } from '../../src/chain/keys.ts'
import type { MetaDocument } from '../../src/chain/meta.ts'
import { assembleCertificate, encodeCertificate, signCertificate, sliceStart, type CertificateBody } from '../../src/chain/pol.ts'
import { encodeSubmission } from '../../src/chain/submission.ts'
import { validateBlock } from '../../src/chain/validate.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { createRelayClient } from '../../src/net/relay-client.ts'
import { MinerChain } from '../../src/pol/chain.ts'
import { buildCandidate } from '../../src/pol/candidate.ts'
import { KEYS_DIR, readKeyFile } from '../../relay/devnet.ts'
import { devnetParts, readGenesis } from '../../relay/genesis/genesis.ts'
import { proposalSubmission } from '../../src/chain/proposal.ts'
import { serve, type Served } from '../../relay/serve.ts'
import { assertRule } from '../fixtures/assert-rule.ts'
import { GENESIS_DIR, currentExpert, genesisDevnet, nudgedCandidate } from '../fixtures/genesis-devnet.ts'

const CAR = 'application/vnd.ipld.car'

async function post(url: string, car: Uint8Array): Promise<{ status: number; code: string | undefined }> {
  const res = await fetch(new URL('api/blocks', url.endsWith('/') ? url : `${url}/`), { method: 'POST', headers: { 'Content-Type': CAR }, body: car as Uint8Array<ArrayBuffer> })
  const body = (await res.json()) as { error?: { code: string } }
  return { status: res.status, code: body.error?.code }
}

describe('a stranger\'s datasets before approval', () => {
  let served: Served
  let validators: SecretKey[]
  const stranger = randomSecretKey()
  const proposals: CID[] = []

  before(async () => {
    const dir = await genesisDevnet()
    const keysDir = join(dir, KEYS_DIR)
    validators = readdirSync(keysDir).filter((f) => f.endsWith('.key')).sort().map((f) => readKeyFile(join(keysDir, f)))
    served = await serve({ dataDir: dir, port: 0, host: '127.0.0.1', log: () => undefined })
    // The attacker's pools: 40 KB of the public training text, as a validation pool and as a training pool.
    const train = devnetParts(await readGenesis(GENESIS_DIR)).datasets.find((d) => d.split === 'train')
    assert.ok(train !== undefined)
    const text = train.bytes.subarray(0, 40_000)
    for (const split of ['validation', 'train'] as const) {
      const p = await proposalSubmission(served.node.store, stranger, { name: `mine-${split}`, license: 'CC0-1.0', split, description: 'my own pool', content: text }, Date.now())
      const posted = await post(served.url, p.car)
      assert.equal(posted.status, 201, 'proposing is open to any key')
      proposals.push(p.cid)
    }
  })

  after(() => served.close())

  test('jobs keep drawing shards from the approved training pool only', async () => {
    const store = served.node.store
    const approved = poolsInForce(store, store.head('A') as AcceptedBlock)
    assert.equal(approved.train.length, 1)
    assert.ok(!approved.train.some((c) => proposals.some((p) => p.equals(c))))
    const jobs = await createRelayClient(served.url).jobs()
    assert.ok(jobs.length > 0)
    for (const job of jobs) assert.equal(job.shard.dataset, approved.train[0]?.toString(), `${job.expert} trains on the approved pool`)
  })

  test('the PoL service judges a candidate on the approved validation pool, not the stranger\'s', async () => {
    const store = served.node.store
    const candidate = await nudgedCandidate(store, 0, 1, randomSecretKey())
    const submitted = await post(served.url, candidate.car)
    assert.equal(submitted.status, 202)
    // The node's own schedule judges it (or this round does, whichever comes first).
    await served.pol.runRound()
    const record = served.pol.candidate(candidate.sealed.cid.toString())
    assert.ok(record !== undefined && record.lossBefore !== null, `judged: ${record?.status} ${record?.message ?? ''}`)
    const beacon = store.get(candidate.sealed.header.depends_on.find((c) => store.get(c)?.header.chain_id === 'A') as CID) as AcceptedBlock
    const next = store.headers('A', beacon.header.index + 1, beacon.header.index + 1, 10)[0] as AcceptedBlock
    assert.deepEqual(poolsInForce(store, next).validation.map(String), poolsInForce(store, beacon).validation.map(String), 'the beacon brought no new pool')
    assert.ok(!poolsInForce(store, next).validation.some((c) => proposals.some((p) => p.equals(c))))
  })

  test('a certificate naming the stranger\'s pool, signed by every validator, is refused by the full node and by a light client (E_POOL)', async () => {
    const store = served.node.store
    // A candidate on a rules block that has a beacon after it, certified on the stranger's validation pool.
    const rules = store.headers('A', 1, 1, 10)[0] as AcceptedBlock
    const beacon = store.headers('A', 2, 2, 10)[0] as AcceptedBlock
    assert.ok(beacon.header.prev?.equals(rules.cid))
    const name = 'layer1.expert3'
    const { block: base, weights } = await currentExpert(store, name)
    const router = store.paramIndex().get('layer1.router') as AcceptedBlock
    const meta = rules.document as MetaDocument
    const candidate = await buildCandidate({
      architecture: meta.architecture, layer: 1, expert: 3, weights: { w1: weights.w1.map((v) => v * 1.01), w2: weights.w2, w3: weights.w3 }, dtype: 'int8',
      rules: rules.cid, base: { cid: base.cid, index: base.header.index }, router: { cid: router.cid, index: router.header.index },
      difficulty: meta.pow.B, timestamp: Date.now(), key: stranger
    })
    const body: CertificateBody = {
      kind: 'blyan/pol-certificate', version: 1, candidate: candidate.sealed.cid, base: base.cid, meta: beacon.cid,
      slice: { dataset: proposals[0] as CID, start: sliceStart(candidate.sealed.cid, beacon.cid), count: meta.pol.eval_sequences },
      loss_before: 2, loss_after: 1, record: null, trained_on: null
    }
    const certificate = encodeCertificate(assembleCertificate(body, validators.map((k) => signCertificate(body, k))))
    const input = { header: candidate.sealed.bytes, payload: candidate.payload, certificate }
    const full = await post(served.url, await encodeSubmission(input))
    assert.deepEqual([full.status, full.code], [422, 'E_POOL'], 'the full node')

    const light = new MinerChain(createRelayClient(served.url))
    await light.sync()
    assert.equal(light.rejected.length, 0)
    assert.equal((light.chain.get(proposals[0] as CID)?.document as DatasetDocument).split, 'validation', 'the light client holds the stranger\'s proposal')
    await assertRule(() => validateBlock(input, light.chain, { now: Date.now() }), 'E_POOL', 'certificate.slice.dataset')
    // The same certificate naming the approved pool passes every rule but the losses it claims: proof the refusal is the pool's.
    const honest = { ...body, slice: { ...body.slice, dataset: poolsInForce(light.chain, beacon).validation[0] as CID } }
    const honestInput = { ...input, certificate: encodeCertificate(assembleCertificate(honest, validators.map((k) => signCertificate(honest, k)))) }
    await validateBlock(honestInput, light.chain, { now: Date.now() })
  })
})
