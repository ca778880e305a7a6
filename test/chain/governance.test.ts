/**
 * Dataset governance (src/chain/governance.ts): proposals are used for nothing until a validator
 * quorum approves them; which pools are in force is a function of one chain A block; the lifecycle
 * and the decision document refuse what they must.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { CID } from 'multiformats/cid'
import { assembleDecision, decodeDecision, encodeDecision, type DecisionBody } from '../../src/chain/decision.ts'
import { poolsInForce, validationPoolFor } from '../../src/chain/governance.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { encodeCbor } from '../../src/codec/cbor.ts'
import { DEFAULT_DATA_SHARE, DEFAULT_GATE, decodeMeta, encodeMeta, gateOf } from '../../src/chain/meta.ts'
import { assertRule } from '../fixtures/assert-rule.ts'
import { Devnet, reseal, testKey, type Built } from '../fixtures/devnet.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { rewardAmount, type RewardDocument } from '../../src/chain/ledger.ts'
import type { CertificateBody } from '../../src/chain/pol.ts'

const STRANGER = testKey('stranger')
const TEXT = 'Once upon a time there was a cat.\n\nThe cat sat.\n'

function pools(d: Devnet, rules: AcceptedBlock): { validation: string[]; train: string[] } {
  const p = poolsInForce(d.chain, rules)
  return { validation: p.validation.map(String), train: p.train.map(String) }
}

/** The standard devnet plus a stranger's proposal of a validation pool after the approvals. */
async function withProposal(split: 'train' | 'validation' = 'validation'): Promise<Devnet> {
  const d = await Devnet.standard()
  await d.submit(await d.dataset('evil', split, TEXT, 'approve-validation', STRANGER))
  return d
}

describe('dataset governance', () => {
  test('a stranger\'s proposal is used for nothing; a quorum\'s approval comes into force with the next chain A block, a retirement likewise', async () => {
    const d = await withProposal()
    const validation = d.cid('validation').toString()
    const evil = d.cid('evil').toString()
    const beacon = d.accepted('beacon')
    assert.deepEqual(pools(d, beacon), { validation: [validation], train: [d.cid('train').toString()] })
    // The next chain A block names the chain D head, the proposal included: still not a pool.
    const a2 = await d.submit(d.metaBlock('a2', 'beacon'))
    assert.deepEqual(a2.header.depends_on.map(String), [evil])
    assert.deepEqual(pools(d, a2).validation, [validation])

    await d.submit(d.decision('approve-evil', 'evil', 'evil'))
    assert.deepEqual(pools(d, a2).validation, [validation], 'a decision does not change the pools of a rules block made before it')
    const a3 = await d.submit(d.metaBlock('a3', 'a2'))
    assert.deepEqual(pools(d, a3).validation, [validation, evil], 'in approval order')

    await d.submit(d.decision('retire-validation', 'validation', 'approve-evil', { verdict: 'retire', tier: null, reasons: ['overlaps a training pool'] }))
    const a4 = await d.submit(d.metaBlock('a4', 'a3'))
    assert.deepEqual(pools(d, a4).validation, [evil])
    assert.deepEqual(pools(d, a3).validation, [validation, evil], 'history keeps its pools')
    assert.deepEqual(pools(d, a4).train, [d.cid('train').toString()])
  })

  test('tiers decide use: gold serves both roles, silver trains only, experimental nothing', async () => {
    const d = await Devnet.standard()
    await d.submit(await d.dataset('silver-val', 'validation', TEXT, 'approve-validation', STRANGER))
    await d.submit(await d.dataset('silver-train', 'train', TEXT, 'silver-val', STRANGER))
    await d.submit(await d.dataset('exp-train', 'train', TEXT + '\nMore.\n', 'silver-train', STRANGER))
    await d.submit(d.decision('d1', 'silver-val', 'exp-train', { tier: 'silver' }))
    await d.submit(d.decision('d2', 'silver-train', 'd1', { tier: 'silver' }))
    await d.submit(d.decision('d3', 'exp-train', 'd2', { tier: 'experimental' }))
    const rules = await d.submit(d.metaBlock('a2', 'beacon'))
    assert.deepEqual(pools(d, rules), { validation: [d.cid('validation').toString()], train: [d.cid('train').toString(), d.cid('silver-train').toString()] })
  })

  test('the validation pool a slice uses is pool (start mod n): nobody chooses it', () => {
    const a = { toString: () => 'a' } as unknown as CID
    const b = { toString: () => 'b' } as unknown as CID
    assert.equal(validationPoolFor({ validation: [a, b], train: [] }, 7), b)
    assert.equal(validationPoolFor({ validation: [a, b], train: [] }, 8), a)
    assert.equal(validationPoolFor({ validation: [], train: [a] }, 8), undefined)
  })

  test('a certificate whose slice names an unapproved pool is refused (E_POOL), even signed by a quorum', async () => {
    const d = await withProposal()
    await d.submit(d.metaBlock('a2', 'beacon'))
    const forged = await d.newVersion('forged', 'expert1.0', 'layer1.expert0', 77, (body) => d.certificate({ ...body, slice: { ...body.slice, dataset: d.cid('evil') } }))
    await assertRule(() => d.submit(forged), 'E_POOL', 'certificate.slice.dataset')
    const honest = await d.newVersion('honest', 'expert1.0', 'layer1.expert0', 77)
    await d.submit(honest)
  })

  test('the lifecycle: each decision the stage does not allow is refused (E_DECISION)', async () => {
    const d = await withProposal()
    await assertRule(() => d.submit(d.decision('x1', 'train', 'evil')), 'E_DECISION', 'payload.verdict') // approved already
    await assertRule(() => d.submit(d.decision('x2', 'evil', 'evil', { verdict: 'retire', tier: null, reasons: ['why'] })), 'E_DECISION', 'payload.verdict') // never approved
    await assertRule(() => d.submit(d.decision('x3', 'evil', 'evil', { role: 'train' })), 'E_DECISION', 'payload.role')
    await assertRule(() => d.submit(d.decision('x4', 'evil', 'evil', { meta: d.cid('beacon') })), 'E_DECISION', 'payload.meta')
    await assertRule(() => d.submit(d.decision('x5', 'evil', 'evil', { dataset: d.cid('train') })), 'E_DECISION', 'payload.dataset')
    await d.submit(d.decision('reject-evil', 'evil', 'evil', { verdict: 'reject', tier: null, reasons: ['near-duplicate of train'] }))
    await assertRule(() => d.submit(d.decision('x6', 'evil', 'reject-evil')), 'E_DECISION', 'payload.verdict') // rejected stays rejected
    const rules = await d.submit(d.metaBlock('a2', 'beacon'))
    assert.deepEqual(pools(d, rules).validation, [d.cid('validation').toString()])
  })

  test('a decision needs a quorum, a validator author, and its dataset on its branch', async () => {
    const d = await withProposal()
    await assertRule(() => d.submit(d.decision('q', 'evil', 'evil', {}, 2)), 'E_QUORUM', 'payload.signatures')
    await assertRule(() => d.submit(reseal(d.decision('u', 'evil', 'evil'), {}, STRANGER)), 'E_UNAUTHORIZED', 'miner_pub')
    // A decision on a branch that forks below the proposal: the dataset is not on it.
    await assertRule(() => d.submit(d.decision('b', 'evil', 'approve-train')), 'E_DEPS', 'depends_on')
  })

  test('chain A never takes decisions back: its chain D link only moves forward (E_DEPS)', async () => {
    const d = await withProposal()
    const a2 = await d.submit(d.metaBlock('a2', 'beacon'))
    assert.ok(a2.header.depends_on[0]?.equals(d.cid('evil')))
    const back = d.metaBlock('back', 'a2')
    await assertRule(() => d.submit(reseal(back, { depends_on: [d.cid('approve-train')] }, d.validators[0] as Uint8Array)), 'E_DEPS', 'depends_on[0]')
    await assertRule(() => d.submit(reseal(back, { depends_on: [] }, d.validators[0] as Uint8Array)), 'E_DEPS', 'depends_on')
    await assertRule(() => d.submit(reseal(back, { depends_on: [d.cid('reward')] }, d.validators[0] as Uint8Array)), 'E_DEPS', 'depends_on[0]')
    await assertRule(() => d.submit(reseal(back, { depends_on: [d.cid('evil'), d.cid('train')].sort((x, y) => Buffer.compare(x.bytes, y.bytes)) }, d.validators[0] as Uint8Array)), 'E_DEPS', 'depends_on')
    await d.submit(back)
  })

  test('chain A\'s gate thresholds: optional (defaults apply), and checked when present', async () => {
    const d = new Devnet()
    assert.deepEqual(gateOf(decodeMeta(encodeMeta(d.meta))), DEFAULT_GATE)
    const tuned = { ...d.meta, gate: { ...DEFAULT_GATE, max_duplicate: 0.1, loss_max: 0.9 } }
    assert.deepEqual(gateOf(decodeMeta(encodeMeta(tuned))), tuned.gate)
    await assertRule(() => decodeMeta(encodeMeta({ ...d.meta, gate: { ...DEFAULT_GATE, max_pii: 2 } })), 'E_META', 'gate.max_pii')
    await assertRule(() => decodeMeta(encodeMeta({ ...d.meta, gate: { ...DEFAULT_GATE, loss_min: 0.5, loss_max: 0.4 } })), 'E_META', 'gate.loss_max')
    await assertRule(() => decodeMeta(encodeMeta({ ...d.meta, gate: { ...DEFAULT_GATE, extra: 1 } as never })), 'E_META')
  })

  test('rewards for data: a version that learned from a pool pays the pool\'s proposer the data share; anything else is E_REWARD or E_POOL', async () => {
    const d = await withProposal('train')
    // A candidate on the rules block that brings the pools into force (A:1), judged under the next (A:2).
    await d.submit(d.metaBlock('a2', 'beacon'))
    const plain = await d.param('plain', 'layer1.expert0', { seed: 55, signer: d.miner, supersedes: 'expert1.0' })
    const candidate = reseal(plain, { depends_on: [d.cid('beacon'), d.cid('expert1.0')].sort((x, y) => Buffer.compare(x.bytes, y.bytes)) }, d.miner)
    d.built.set('learned', candidate)
    const record = d.cid('approve-train') // the chain rules only need a dag-cbor link here; its content is the validators' (E_RECORD)
    const body = (trainedOn: CID): CertificateBody => ({ ...d.certificateBody(candidate.sealed.cid, d.cid('expert1.0'), 2.5, 2.3, 'a2'), record, trained_on: trainedOn })
    const good = d.certificate(body(d.cid('train')))
    await assertRule(() => d.submit({ ...candidate, input: { ...candidate.input, certificate: d.certificate(body(d.cid('evil'))) } }), 'E_POOL', 'certificate.trained_on')
    await d.submit({ ...candidate, input: { ...candidate.input, certificate: good } })

    const total = rewardAmount(body(d.cid('train')), d.meta.reward)
    const share = Math.floor(total * DEFAULT_DATA_SHARE)
    const proposer = publicKeyOf(d.validators[0] as Uint8Array) // the fixture's pools are proposed by validator 0
    const reward = (name: string, amount: number, data?: RewardDocument['data']): Built =>
      d.reward(name, 'learned', good, 'transfer', amount, { rules: 'a2', ...(data === undefined ? {} : { data }) })
    await assertRule(() => d.submit(reward('r1', total)), 'E_REWARD', 'payload.amount')
    await assertRule(() => d.submit(reward('r2', total - share)), 'E_REWARD', 'payload.data')
    await assertRule(() => d.submit(reward('r3', total - share, { to: publicKeyOf(d.miner), amount: share })), 'E_REWARD', 'payload.data.to')
    const before = d.chain.balance(proposer, d.cid('transfer'))
    const paid = await d.submit(reward('r4', total - share, { to: proposer, amount: share }))
    assert.equal(d.chain.balance(proposer, paid.cid), before + share)
    assert.equal(d.chain.balance(publicKeyOf(d.miner), paid.cid) - d.chain.balance(publicKeyOf(d.miner), d.cid('transfer')), total - share)
  })

  test('decision documents: schema errors are E_DECISION, and encoding is canonical', async () => {
    const d = await Devnet.standard()
    const good = decodeDecision(d.built.get('approve-validation')?.input.payload as Uint8Array)
    assert.deepEqual(encodeDecision(good), d.built.get('approve-validation')?.input.payload)
    const body: DecisionBody = { ...good }
    const bad = (change: Record<string, unknown>): Uint8Array => encodeCbor({ ...body, signatures: [], ...change })
    await assertRule(() => decodeDecision(bad({ tier: null })), 'E_DECISION', 'payload.tier')
    await assertRule(() => decodeDecision(bad({ verdict: 'reject', tier: null, reasons: [] })), 'E_DECISION', 'payload.reasons')
    await assertRule(() => decodeDecision(bad({ verdict: 'reject', tier: 'gold', reasons: ['x'] })), 'E_DECISION', 'payload.tier')
    await assertRule(() => decodeDecision(bad({ reasons: [''] })), 'E_DECISION', 'payload.reasons[0]')
    await assertRule(() => decodeDecision(bad({ verdict: 'promote' })), 'E_DECISION', 'payload.verdict')
    await assertRule(() => decodeDecision(bad({ kind: 'blyan/pol-certificate' })), 'E_DECISION', 'payload.kind')
    await assertRule(() => decodeDecision(bad({ extra: 1 })), 'E_DECISION')
    assert.deepEqual(decodeDecision(encodeDecision(assembleDecision(body, []))).signatures, [])
  })
})
