/**
 * Proof-of-Learning on a full node, on the real model (stories260K, 4 experts per layer, top-2, 3
 * validators, TinyStories train and validation slices in chain D):
 *
 * - an expert trained on its job's shard (the CPU reference, re-quantized to int8) is accepted:
 *   3 validators compute bit-identical losses, sign, the candidate enters chain B with its
 *   certificate, the param index and the jobs move to it, and its miner is rewarded on chain C;
 * - refused with the right code, the store unchanged: no improvement (E_POL_THRESHOLD, after a
 *   round), a replay of the accepted block (E_REPLAY), its weights under another key (E_COPY), a
 *   forged signature (E_SIG), a stale base version (E_STALE_BASE), stale rules (E_STALE_RULES),
 *   a newbie key over its quota (E_QUOTA).
 */
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { signingBytes, type UnsignedHeader } from '../../src/chain/header.ts'
import { publicKeyOf, randomSecretKey, type SecretKey } from '../../src/chain/keys.ts'
import { rewardAmount } from '../../src/chain/ledger.ts'
import type { MetaDocument } from '../../src/chain/meta.ts'
import { decodeCertificate, improvement } from '../../src/chain/pol.ts'
import { encodeSubmission } from '../../src/chain/submission.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { isRuleError, type RuleCode } from '../../src/errors.ts'
import { evaluateLoss, evaluatePair, trainExpert } from '../../src/train/train.ts'
import type { ExpertWeights } from '../../src/model/weights.ts'
import { buildCandidate, type Candidate } from '../../src/pol/candidate.ts'
import { loadFloatModel, withExpert } from '../../src/pol/float-model.ts'
import { SequencePool } from '../../src/pol/sequences.ts'
import { DEFAULT_JOB_SETTINGS, attemptTerms } from '../../src/pol/job.ts'
import { toHex } from '../../src/codec/cbor.ts'
import { KEYS_DIR, openExistingStore, readKeyFile } from '../../relay/devnet.ts'
import type { ChainStore } from '../../relay/node/interface.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { PolService } from '../../relay/pol/service.ts'
import { PolStore, type CandidateRecord } from '../../relay/pol/pol-store.ts'
import { createTokenizer } from '../../src/model/tokenizer/index.ts'
import { fetchUnixfsFile } from '../../src/tensor/tiles.ts'
import type { DatasetDocument } from '../../src/chain/dataset.ts'
import { poolsInForce } from '../../src/chain/governance.ts'
import { sealUnchecked } from '../fixtures/devnet.ts'
import { POL_VALIDATORS, copyPolDevnet, polDevnet } from '../fixtures/pol-devnet.ts'
import { SHARED_DATA_MISSING } from '../fixtures/shared-data.ts'

const dirP = polDevnet()
const TARGET = { layer: 0, expert: 1 } as const
const NAME = 'layer0.expert1'

/** A devnet copy with its node and PoL service (validators: every key the devnet made). */
class Net {
  readonly store: ChainStore
  readonly node: FullNode
  readonly pol: PolService
  readonly polStore: PolStore
  readonly log: string[] = []

  constructor(dir: string) {
    this.store = openExistingStore(dir)
    this.node = new FullNode(this.store)
    this.polStore = PolStore.open(join(dir, 'pol.sqlite'))
    const keysDir = join(dir, KEYS_DIR)
    const validators = readdirSync(keysDir).filter((f) => f.endsWith('.key')).sort().map((f) => readKeyFile(join(keysDir, f)))
    this.pol = new PolService({ node: this.node, polStore: this.polStore, validators, log: (l) => this.log.push(l) })
  }

  get meta(): MetaDocument {
    return this.store.head('A')?.document as MetaDocument
  }

  current(name: string): AcceptedBlock {
    return this.store.paramIndex().get(name) as AcceptedBlock
  }

  /** A candidate for `name` with `weights`, on the current head, base and router. */
  candidate(name: string, weights: ExpertWeights, key: SecretKey, base: AcceptedBlock = this.current(name)): Promise<Candidate> {
    const [layer, expert] = (/^layer(\d+)\.expert(\d+)$/.exec(name) ?? []).slice(1).map(Number) as [number, number]
    const router = this.current(`layer${layer}.router`)
    return buildCandidate({
      architecture: this.meta.architecture, layer, expert, weights, dtype: 'int8',
      rules: (this.store.head('A') as AcceptedBlock).cid,
      base: { cid: base.cid, index: base.header.index }, router: { cid: router.cid, index: router.header.index },
      difficulty: this.meta.pow.B, timestamp: Date.now(), key
    })
  }

  submit(car: Uint8Array): Promise<{ accepted: AcceptedBlock } | { candidate: CandidateRecord }> {
    return this.node.submitOrQueue(car, this.pol)
  }

  async refused(car: Uint8Array, code: RuleCode): Promise<void> {
    const hash = this.store.contentHash()
    await assert.rejects(this.submit(car), (e: unknown) => isRuleError(e, code) || assert.fail(`expected ${code}, got ${String(e)}`))
    assert.equal(this.store.contentHash(), hash, `${code}: the store is unchanged`)
  }

  async close(): Promise<void> {
    await this.pol.stop()
    this.polStore.close()
    this.store.close()
  }
}

/** The float weights of the current version of `name` in a store. */
async function baseModel(store: ChainStore) {
  const meta = store.head('A')?.document as MetaDocument
  const blocks = new Map([...store.paramIndex()].map(([n, b]) => [n, { name: n, cid: b.cid, payload: b.header.payload, payloadSize: b.header.payload_size }]))
  return loadFloatModel(meta.architecture, blocks, async (cid: CID) => store.getRaw(cid) as Uint8Array)
}

/** The validation pool's windows of a devnet. */
async function validationPool(net: Net): Promise<SequencePool> {
  const meta = net.meta
  const get = async (cid: CID): Promise<Uint8Array> => net.store.getRaw(cid) as Uint8Array
  const t = meta.tokenizer as NonNullable<MetaDocument['tokenizer']>
  const tokenizer = createTokenizer(t.format, await fetchUnixfsFile(t.payload, t.size, get), meta.architecture.vocab_size, t.bos_id, t.eos_id)
  const doc = net.store.get(poolsInForce(net.store, net.store.head('A') as AcceptedBlock).validation[0] as CID)?.document as DatasetDocument
  return SequencePool.fromText(new TextDecoder().decode(await fetchUnixfsFile(doc.content, doc.content_size, get)), tokenizer, meta.pol.seq_len)
}

function scaled(w: ExpertWeights, f: number): ExpertWeights {
  return { w1: w.w1.map((x) => x * f), w2: w.w2.map((x) => x * f), w3: w.w3.map((x) => x * f) }
}

describe('Proof-of-Learning on a full node', { skip: dirP === null ? SHARED_DATA_MISSING : false }, () => {
  let trained: ExpertWeights
  let original: ExpertWeights
  const nets: Net[] = []
  const open = async (): Promise<Net> => {
    const n = new Net(await copyPolDevnet())
    nets.push(n)
    return n
  }

  before(async () => {
    // The job's training, as a miner runs it: its shard of the train dataset, its settings.
    const net = await open()
    const meta = net.meta
    const model = await baseModel(net.store)
    const get = async (cid: CID): Promise<Uint8Array> => net.store.getRaw(cid) as Uint8Array
    const t = meta.tokenizer as NonNullable<MetaDocument['tokenizer']>
    const tokenizer = createTokenizer(t.format, await fetchUnixfsFile(t.payload, t.size, get), meta.architecture.vocab_size, t.bos_id, t.eos_id)
    const doc = net.store.get(poolsInForce(net.store, net.store.head('A') as AcceptedBlock).train[0] as CID)?.document as DatasetDocument
    const pool = SequencePool.fromText(new TextDecoder().decode(await fetchUnixfsFile(doc.content, doc.content_size, get)), tokenizer, meta.pol.seq_len)
    const job = net.pol.jobs().find((j) => j.expert === NAME)
    assert.ok(job !== undefined)
    const s = DEFAULT_JOB_SETTINGS
    const { start, seed } = attemptTerms(CID.parse(job.base), toHex(publicKeyOf(randomSecretKey())), 0)
    const r = await trainExpert(model, { target: TARGET, sequences: pool.slice(start, job.shard.count), steps: s.steps, batchSize: s.batchSize, learningRate: s.learningRate, seed })
    trained = r.expert
    original = model.weights.expert(TARGET.layer, TARGET.expert) as ExpertWeights
  })

  after(async () => {
    for (const n of nets) await n.close()
  })

  test('a trained expert is accepted: bit-identical losses from 3 validators, certificate, param index, jobs and reward follow', async () => {
    const net = await open()
    const miner = randomSecretKey()
    const before = net.current(NAME)
    const headA = net.store.head('A') as AcceptedBlock
    const cand = await net.candidate(NAME, trained, miner)
    const queued = await net.submit(cand.car)
    assert.ok('candidate' in queued && queued.candidate.status === 'pending')
    assert.equal(net.store.get(cand.sealed.cid), undefined, 'a candidate is not stored before it is certified')

    const report = await net.pol.runRound()
    const [d] = report.decided
    assert.equal(d?.status, "accepted", JSON.stringify(d) + net.log.join("\n"))
    assert.equal(d.verdicts.length, POL_VALIDATORS)
    for (const v of d.verdicts) {
      assert.ok(Object.is(v.lossBefore, d.verdicts[0]?.lossBefore) && Object.is(v.lossAfter, d.verdicts[0]?.lossAfter), 'validators compute bit-identical losses')
    }
    const accepted = net.store.get(cand.sealed.cid) as AcceptedBlock
    assert.ok(accepted !== undefined && accepted.certificate !== null)
    // What validators run (evaluatePair: shared layers below the expert's) = two full evaluations, bit for bit.
    const model = await baseModel(net.store)
    const slice = (await validationPool(net)).slice(0, 8)
    const upper = { layer: 2, expert: 1 }
    const pair = await evaluatePair(model, withExpert(model, upper, trained), upper.layer, slice)
    assert.ok(Object.is(pair.lossBefore, await evaluateLoss(model, slice)))
    assert.ok(Object.is(pair.lossAfter, await evaluateLoss(withExpert(model, upper, trained), slice)))
    assert.notEqual(pair.lossAfter, pair.lossBefore)
    const cert = decodeCertificate(accepted.certificate.bytes)
    assert.equal(cert.signatures.length, POL_VALIDATORS)
    assert.ok(improvement(cert) >= net.meta.pol.delta, `improvement ${improvement(cert)} >= delta ${net.meta.pol.delta}`)
    assert.ok(Object.is(cert.loss_before, d.verdicts[0]?.lossBefore))
    // the beacon: the chain A block right after the candidate's rules
    const beacon = net.store.get(cert.meta) as AcceptedBlock
    assert.ok(beacon.header.prev?.equals(headA.cid))
    // the param index and the job board move to the new version
    assert.ok(net.current(NAME).cid.equals(cand.sealed.cid))
    assert.equal(net.current(NAME).expertVersion, before.expertVersion + 1)
    const job = net.pol.jobs().find((j) => j.expert === NAME)
    assert.equal(job?.base, cand.sealed.cid.toString())
    // the reward
    const reward = net.store.head('C') as AcceptedBlock
    assert.equal(reward.header.block_type, 'reward')
    assert.ok(reward.header.pol?.equals(accepted.certificate.cid))
    assert.equal(net.store.balance(publicKeyOf(miner), reward.cid), rewardAmount(cert, net.meta.reward))
    const record = net.pol.candidate(cand.sealed.cid.toString())
    assert.equal(record?.status, 'accepted')
    assert.equal(record?.amount, rewardAmount(cert, net.meta.reward))
    assert.equal(net.pol.trustOf(Buffer.from(publicKeyOf(miner)).toString('hex')), 'newbie', 'one success is not trust yet')

    // A replay of the accepted block, and its weights under another key: refused, nothing changes.
    await net.refused(cand.car, 'E_REPLAY')
    await net.refused((await net.candidate(NAME, trained, randomSecretKey())).car, 'E_COPY')
    // A new version on the old base (v0 was superseded).
    await net.refused((await net.candidate(NAME, scaled(trained, 1.01), miner, before)).car, 'E_STALE_BASE')
  })

  test('a round cut short after certification (no reward yet) is finished by the next round, not refused as a replay', async () => {
    const first = await open()
    const second = await open()
    const miner = randomSecretKey()
    const cand = await first.candidate(NAME, trained, miner)
    assert.ok('candidate' in (await first.submit(cand.car)))
    assert.ok('candidate' in (await second.submit(cand.car)))
    assert.equal((await first.pol.runRound()).decided[0]?.status, 'accepted')
    // On the second node, the state a crash between "candidate stored" and "reward minted" leaves.
    const accepted = first.store.get(cand.sealed.cid) as AcceptedBlock
    const beacon = first.store.get(decodeCertificate((accepted.certificate as NonNullable<AcceptedBlock['certificate']>).bytes).meta) as AcceptedBlock
    const raw = async (cid: CID): Promise<Uint8Array> => first.store.getRaw(cid) as Uint8Array
    const t = first.meta.tokenizer as NonNullable<MetaDocument['tokenizer']>
    await second.node.submitCar(await encodeSubmission({ header: beacon.bytes, payload: await raw(beacon.header.payload), files: [await fetchUnixfsFile(t.payload, t.size, raw)] }))
    await second.node.submitCar(await encodeSubmission({ header: accepted.bytes, payload: cand.payload, certificate: accepted.certificate?.bytes as Uint8Array }))
    assert.equal(second.store.head('C'), undefined, 'no reward yet')
    const [d] = (await second.pol.runRound()).decided
    assert.equal(d?.status, 'accepted')
    const reward = second.store.head('C') as AcceptedBlock
    assert.equal(reward.header.block_type, 'reward')
    assert.equal(second.store.balance(publicKeyOf(miner), reward.cid), first.store.balance(publicKeyOf(miner), first.store.head('C')?.cid ?? null))
  })

  test('two nodes judging the same candidate under the same beacon write byte-identical certificates', async () => {
    const first = await open()
    const second = await open()
    const cand = await first.candidate(NAME, trained, randomSecretKey())
    assert.ok('candidate' in (await first.submit(cand.car)))
    assert.ok('candidate' in (await second.submit(cand.car)))
    assert.equal((await first.pol.runRound()).decided[0]?.status, 'accepted')
    // The second node gets the first one's beacon, then judges on its own (its own model, its own passes).
    const cert = (first.store.get(cand.sealed.cid) as AcceptedBlock).certificate as NonNullable<AcceptedBlock['certificate']>
    const beacon = first.store.get(cert.value.meta) as AcceptedBlock
    const raw = async (cid: CID): Promise<Uint8Array> => first.store.getRaw(cid) as Uint8Array
    const t = first.meta.tokenizer as NonNullable<MetaDocument['tokenizer']>
    await second.node.submitCar(await encodeSubmission({ header: beacon.bytes, payload: await raw(beacon.header.payload), files: [await fetchUnixfsFile(t.payload, t.size, raw)] }))
    const [d] = (await second.pol.runRound()).decided
    assert.equal(d?.status, 'accepted')
    const other = (second.store.get(cand.sealed.cid) as AcceptedBlock).certificate as NonNullable<AcceptedBlock['certificate']>
    assert.equal(other.cid.toString(), cert.cid.toString(), 'same losses, same slice, same signatures: the same certificate')
  })

  test('refused with the right code, the store unchanged: no improvement, forged signature, stale rules, over quota', async () => {
    const net = await open()
    const miner = randomSecretKey()

    // Forged: miner_pub names another key than the one that signed (PoW solved, so only E_SIG can fire).
    const honest = await net.candidate(NAME, scaled(original, 1.02), miner)
    const { payload_sig: _s, nonce: _n, ...unsigned } = honest.sealed.header
    const forged = sealUnchecked({ ...unsigned, miner_pub: publicKeyOf(randomSecretKey()) } as UnsignedHeader, miner)
    assert.ok(signingBytes(unsigned).length > 0)
    await net.refused(await encodeSubmission({ header: forged.bytes, payload: honest.payload }), 'E_SIG')

    // Over quota: a newbie key may have 2 candidates waiting.
    const a = await net.candidate('layer1.expert0', scaled(original, 1.03), miner)
    const b = await net.candidate('layer2.expert0', scaled(original, 1.04), miner)
    const c = await net.candidate('layer3.expert0', scaled(original, 1.05), miner)
    assert.ok('candidate' in (await net.submit(a.car)))
    assert.ok('candidate' in (await net.submit(b.car)))
    await net.refused(c.car, 'E_QUOTA')

    // No improvement: the base weights scaled by 1.02 make the loss worse. Judged in a round.
    const worse = await net.candidate(NAME, scaled(original, 1.02), randomSecretKey())
    assert.ok('candidate' in (await net.submit(worse.car)))
    const indexBefore = [...net.store.paramIndex()].map(([n, blk]) => `${n}=${blk.cid}`).join()
    const balanceHead = net.store.head('C')?.cid.toString() ?? null
    const report = await net.pol.runRound()
    const verdict = report.decided.find((x) => x.cid === worse.sealed.cid.toString())
    assert.equal(verdict?.status, 'rejected')
    assert.equal(verdict?.code, 'E_POL_THRESHOLD')
    assert.equal(net.store.get(worse.sealed.cid), undefined)
    assert.equal([...net.store.paramIndex()].map(([n, blk]) => `${n}=${blk.cid}`).join(), indexBefore, 'the param index is unchanged')
    assert.equal(net.store.head('C')?.cid.toString() ?? null, balanceHead, 'no reward')
    const rejection = net.store.rejectionOf(worse.sealed.cid)
    assert.equal(rejection?.code, 'E_POL_THRESHOLD')
    assert.match(rejection?.message ?? '', /loss [\d.]+ -> [\d.]+ nats on 16 validation windows/)
    // Its resubmission gets the same verdict, without a second evaluation; the same weights in a new
    // block (another key, another CID) are a copy: no second roll of the dice on another slice.
    await net.refused(worse.car, 'E_POL_THRESHOLD')
    await net.refused((await net.candidate(NAME, scaled(original, 1.02), randomSecretKey())).car, 'E_COPY')

    // Stale rules: the round made a beacon, so a candidate built on the old head is refused.
    const stale = await buildCandidate({
      architecture: net.meta.architecture, layer: 1, expert: 1, weights: scaled(original, 1.06), dtype: 'int8',
      rules: net.store.genesis()?.cid as CID, base: { cid: net.current('layer1.expert1').cid, index: 0 },
      router: { cid: net.current('layer1.router').cid, index: 0 }, difficulty: net.meta.pow.B, timestamp: Date.now(), key: randomSecretKey()
    })
    await net.refused(stale.car, 'E_STALE_RULES')
  })
})
