import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ClientStatus, DonateOutcome, DonateState } from '../../src/client/api.ts'
import { newerVersion } from '../../src/ui/chat.ts'
import { candidateLine, formatDelta, formatGain, isRunning, lossCurve, minerRelay, outcomeView, phaseText, stageStatuses } from '../../src/ui/donate.ts'
import { certificateView } from '../../src/ui/explorer.ts'

const CID_A = 'bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmi6kfxzxe'
const CID_B = 'bafyreib4pff766vhpbxbhjbqqnsh5emeznvujayjj4z2iu533cprgbz23m'

function outcome(patch: Partial<DonateOutcome>): DonateOutcome {
  return { status: 'accepted', cid: CID_A, expert: 'layer0.expert1', code: null, message: null, lossBefore: 4, lossAfter: 3, improvement: 0.25, delta: 0.005, amount: 125, reward: CID_B, rewardFinal: true, certificate: CID_B, at: 1, ...patch }
}

test('the miner uses the first relay that is up, else the first usable, else the page origin', () => {
  const relay = (url: string, health: ClientStatus['relays'][number]['health']) => ({ url, health, error: null, lies: [], blocks: 0, bytes: 0, lastSeen: null, retryAt: null })
  const status = (relays: ReturnType<typeof relay>[]) => ({ relays } as unknown as ClientStatus)
  assert.equal(minerRelay(null, 'http://o'), 'http://o')
  assert.equal(minerRelay(status([relay('http://a', 'down'), relay('http://b', 'up')]), 'http://o'), 'http://b')
  assert.equal(minerRelay(status([relay('http://x', 'wrong-network'), relay('http://a', 'down')]), 'http://o'), 'http://a')
  assert.equal(minerRelay(status([relay('http://x', 'wrong-network')]), 'http://o'), 'http://o')
})

test('gains and thresholds read as signed percentages of the loss', () => {
  assert.equal(formatGain(0.246), '−24.6%')
  assert.equal(formatGain(0.0016), '−0.16%')
  assert.equal(formatGain(-0.0045), '+0.45%')
  assert.equal(formatGain(null), '–')
  assert.equal(formatDelta(0.005), '0.5%')
  assert.equal(formatDelta(0.05), '5%')
  assert.equal(formatDelta(0.0125), '1.25%')
})

test('the loss curve spans the box, grows with the steps, and survives a flat or empty series', () => {
  assert.deepEqual(lossCurve([], 40, 600, 160), { path: '', last: null, min: 0, max: 0 })
  const c = lossCurve([5, 4, 3], 3, 100, 50, 5)
  assert.equal(c.path.split('L').length, 3)
  assert.ok(c.path.startsWith('M5 '))
  assert.equal(c.last?.x, 95, 'the last of 3 steps sits at the right edge')
  assert.ok(c.min < 3 && c.max > 5, 'headroom around the range')
  const early = lossCurve([5, 4], 40, 100, 50, 5)
  assert.ok((early.last?.x ?? 100) < 10, 'two of 40 steps stay at the left')
  const flat = lossCurve([2, 2, 2], 3, 100, 50, 5)
  assert.ok(flat.max > flat.min && flat.path !== '')
  assert.ok(!lossCurve([1, Number.NaN, 2], 3, 100, 50).path.includes('NaN'))
})

test('stages: done before the current one; outcomes close them; a followed candidate skips the training stages', () => {
  const base = { outcome: null, resumed: null } as const
  assert.deepEqual(Object.values(stageStatuses({ ...base, phase: 'training' })), ['done', 'done', 'active', 'todo', 'todo', 'todo'])
  assert.deepEqual(Object.values(stageStatuses({ ...base, phase: 'idle' })), ['todo', 'todo', 'todo', 'todo', 'todo', 'todo'])
  assert.deepEqual(Object.values(stageStatuses({ ...base, phase: 'done', outcome: outcome({}) })), ['done', 'done', 'done', 'done', 'done', 'done'])
  assert.deepEqual(Object.values(stageStatuses({ ...base, phase: 'done', outcome: outcome({ status: 'rejected' }) })).at(-1), 'failed')
  assert.deepEqual(Object.values(stageStatuses({ ...base, phase: 'done', outcome: outcome({ status: 'no-gain' }) })).slice(3), ['failed', 'skipped', 'skipped'])
  assert.deepEqual(Object.values(stageStatuses({ phase: 'pending', outcome: null, resumed: 'follow' })), ['skipped', 'skipped', 'skipped', 'skipped', 'done', 'active'])
})

test('phases: running or not, and what the run says', () => {
  for (const p of ['leasing', 'fetching', 'training', 'self-check', 'submitting', 'pending', 'waiting'] as const) assert.ok(isRunning(p), p)
  for (const p of ['idle', 'done', 'stopped', 'error'] as const) assert.ok(!isRunning(p), p)
  const s = (patch: Partial<DonateState>) => ({ phase: 'idle', fetching: null, job: null, resumed: null, error: null, ...patch }) as Pick<DonateState, 'phase' | 'fetching' | 'job' | 'resumed' | 'error'>
  assert.match(phaseText(s({ phase: 'fetching', fetching: 'training data' })), /training data/)
  assert.match(phaseText(s({ phase: 'pending', resumed: 'follow' })), /reload/)
  assert.equal(phaseText(s({ phase: 'error', error: { code: 'E_QUOTA', message: 'one lease at a time' } })), 'one lease at a time')
})

test('outcomes are told with their losses, the threshold and the reason', () => {
  const ok = outcomeView(outcome({}))
  assert.equal(ok.tone, 'ok')
  assert.match(ok.detail, /layer0\.expert1 run your version/)
  assert.match(ok.detail, /125 credits/)
  assert.match(outcomeView(outcome({ lossBefore: null, lossAfter: null })).detail, /lower validation loss/)
  const bad = outcomeView(outcome({ status: 'rejected', code: 'E_POL_THRESHOLD', message: 'loss 4 -> 3.99 nats: needs at most 3.98', amount: null }))
  assert.equal(bad.tone, 'bad')
  assert.equal(bad.title, 'Rejected · E_POL_THRESHOLD')
  assert.ok(bad.detail.startsWith('loss 4 -> 3.99'))
  assert.equal(outcomeView(outcome({ status: 'no-gain', message: 'no gain' })).tone, 'warn')
  assert.equal(candidateLine({ cid: CID_A, status: 'rejected', expert: null, code: 'E_COPY', message: 'copied', lossBefore: null, lossAfter: null, amount: null, reward: null, rewardFinal: null, certificate: null, receivedAt: null, decidedAt: null, base: null, miner: null, attempts: null, lastError: null }).detail, 'E_COPY: copied')
  // A reward is told final or pending, as the relay's checkpoint says.
  assert.match(outcomeView(outcome({})).detail, /final: a validator checkpoint holds it/)
  assert.match(outcomeView(outcome({ rewardFinal: false })).detail, /pending until the validators' next checkpoint/)
  const accepted = { cid: CID_A, status: 'accepted' as const, expert: null, code: null, message: null, lossBefore: 4, lossAfter: 3, amount: 1250, reward: CID_B, rewardFinal: false, certificate: CID_B, receivedAt: 1, decidedAt: 2, base: null, miner: null, attempts: null, lastError: null }
  assert.match(candidateLine(accepted).detail, /1,250 credits, pending$/)
  assert.match(candidateLine({ ...accepted, rewardFinal: true }).detail, /1,250 credits, final$/)
})

test('an expert is marked when the page knows a newer accepted version than the answer used', () => {
  const used = { name: 'layer0.expert1', version: 0, cid: CID_A }
  assert.equal(newerVersion(used, {}), null)
  assert.equal(newerVersion(used, { 'layer0.expert1': { cid: CID_A, version: 0 } }), null)
  assert.deepEqual(newerVersion(used, { 'layer0.expert1': { cid: CID_B, version: 1 } }), { cid: CID_B, version: 1 })
  assert.equal(newerVersion({ ...used, version: 2, cid: CID_B }, { 'layer0.expert1': { cid: CID_A, version: 1 } }), null, 'an older current version is not newer')
})

test('a certificate body reads as losses, gain and slice; wrong types read as null', () => {
  const v = certificateView({ kind: 'blyan/pol-certificate', loss_before: 4, loss_after: 3, slice: { dataset: CID_A, start: 12, count: 32 }, meta: CID_B, base: CID_A })
  assert.deepEqual(v, { lossBefore: 4, lossAfter: 3, improvement: 0.25, slice: { dataset: CID_A, start: 12, count: 32 }, meta: CID_B, base: CID_A })
  assert.deepEqual(certificateView(null), { lossBefore: null, lossAfter: null, improvement: null, slice: null, meta: null, base: null })
  assert.equal(certificateView({ loss_before: '4', slice: { dataset: CID_A, start: 'x', count: 1 } }).slice, null)
})
