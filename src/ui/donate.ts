/**
 * Words and geometry for the Donate and Wallet views: which relay the miner uses, the stages of a
 * run, the loss curve's SVG path, and how outcomes and candidates are told. Pure, tested in Node.
 *
 * @module
 */
import type { CandidateInfo, ClientStatus, DonateOutcome, DonatePhase, DonateState } from '../client/api.ts'
import { formatLossChange } from '../pol/mining.ts'

/** The relay the miner takes jobs from: the client's first relay that is up, else its first, else this page's origin. */
export function minerRelay(status: ClientStatus | null, origin: string): string {
  const relays = status?.relays ?? []
  return (relays.find((r) => r.health === 'up') ?? relays.find((r) => r.health !== 'wrong-network'))?.url ?? origin
}

/** The stages a run goes through, in order, as the view's stepper shows them. */
export const STAGES = Object.freeze([
  { id: 'lease', label: 'Lease a job' },
  { id: 'fetch', label: 'Fetch & verify' },
  { id: 'train', label: 'Train' },
  { id: 'check', label: 'Self-check' },
  { id: 'submit', label: 'Submit' },
  { id: 'judge', label: 'Validators' }
] as const)

export type StageId = (typeof STAGES)[number]['id']
export type StageStatus = 'done' | 'active' | 'todo' | 'failed' | 'skipped'

const STAGE_OF: Partial<Record<DonatePhase, StageId>> = {
  leasing: 'lease', fetching: 'fetch', training: 'train', 'self-check': 'check', submitting: 'submit', pending: 'judge'
}

/** Each stage's status for a state: those before the current one done, the current active. */
export function stageStatuses(s: Pick<DonateState, 'phase' | 'outcome' | 'resumed'>): Record<StageId, StageStatus> {
  const ids = STAGES.map((x) => x.id)
  const out = Object.fromEntries(ids.map((id) => [id, 'todo'])) as Record<StageId, StageStatus>
  const current = STAGE_OF[s.phase]
  if (s.phase === 'done' && s.outcome !== null) {
    for (const id of ids) out[id] = 'done'
    if (s.outcome.status === 'no-gain') {
      out.check = 'failed'
      out.submit = 'skipped'
      out.judge = 'skipped'
    } else if (s.outcome.status === 'rejected') out.judge = 'failed'
    if (s.resumed === 'follow') for (const id of ['lease', 'fetch', 'train', 'check'] as const) out[id] = 'skipped'
    return out
  }
  if (current === undefined) return out
  const at = ids.indexOf(current)
  ids.forEach((id, i) => {
    out[id] = i < at ? 'done' : i === at ? 'active' : 'todo'
  })
  // Followed after a reload: nothing before the judging ran in this page.
  if (s.resumed === 'follow') for (const id of ['lease', 'fetch', 'train', 'check'] as const) out[id] = 'skipped'
  return out
}

/** What the run is doing, in a few words. */
export function phaseText(s: Pick<DonateState, 'phase' | 'fetching' | 'job' | 'resumed' | 'error'>): string {
  switch (s.phase) {
    case 'idle': return 'Not running'
    case 'leasing': return 'Taking a job from the job board…'
    case 'fetching': return `Fetching and verifying the ${s.fetching ?? 'model'}…`
    case 'training': return `Training ${s.job?.expert ?? 'the expert'}…`
    case 'self-check': return 'Checking the gain on the public validation pool…'
    case 'submitting': return 'Signing, solving proof-of-work and submitting…'
    case 'pending': return s.resumed === 'follow' ? 'Following your submitted candidate after the reload: waiting for the validators…' : 'Waiting for the validators…'
    case 'done': return 'Done'
    case 'waiting': return `Waiting to retry: ${s.error?.message ?? 'no job free'}`
    case 'stopped': return 'Stopped'
    case 'error': return s.error?.message ?? 'Stopped with an error'
  }
}

/** True while a run holds the miner (Start is off, Stop is on). */
export function isRunning(phase: DonatePhase): boolean {
  return phase !== 'idle' && phase !== 'done' && phase !== 'stopped' && phase !== 'error'
}

/** A loss in nats per token, 4 decimals: `3.4816`. */
export function formatLoss(loss: number | null): string {
  return loss === null || !Number.isFinite(loss) ? '–' : loss.toFixed(4)
}

/** A relative change as a signed percentage: an improvement of 0.246 is `−24.6%` of the loss. */
export const formatGain = formatLossChange

/** delta as the view says it, three significant digits at most: `0.5%`, `5%`, `1.25%`. */
export function formatDelta(delta: number | null): string {
  if (delta === null || !Number.isFinite(delta)) return '–'
  return `${Number((delta * 100).toPrecision(3))}%`
}

/** Credits (integer units). */
export function formatCredits(n: number | null): string {
  return n === null ? '–' : n.toLocaleString('en-US')
}

export interface LossCurve {
  /** SVG path of the losses, in a `width` x `height` box with `pad` inside. */
  readonly path: string
  /** The last point (the marker), and the range drawn. */
  readonly last: { readonly x: number; readonly y: number } | null
  readonly min: number
  readonly max: number
}

/**
 * The training loss as a polyline over `steps` steps (x fixed by the step count, so the curve
 * grows left to right as steps arrive), y scaled to the losses seen, with a little headroom.
 */
export function lossCurve(losses: readonly number[], steps: number, width: number, height: number, pad = 6): LossCurve {
  const finite = losses.filter((l) => Number.isFinite(l))
  if (finite.length === 0) return { path: '', last: null, min: 0, max: 0 }
  let min = Math.min(...finite)
  let max = Math.max(...finite)
  if (max - min < 1e-6) {
    min -= 0.05
    max += 0.05
  }
  const span = max - min
  min -= span * 0.08
  max += span * 0.08
  const n = Math.max(steps, losses.length, 2)
  const x = (i: number): number => pad + (i / (n - 1)) * (width - 2 * pad)
  const y = (l: number): number => pad + (1 - (l - min) / (max - min)) * (height - 2 * pad)
  let path = ''
  let last: { x: number; y: number } | null = null
  losses.forEach((l, i) => {
    if (!Number.isFinite(l)) return
    const px = Math.round(x(i) * 10) / 10
    const py = Math.round(y(l) * 10) / 10
    path += `${path === '' ? 'M' : 'L'}${px} ${py}`
    last = { x: px, y: py }
  })
  return { path, last, min, max }
}

export interface OutcomeView {
  readonly tone: 'ok' | 'bad' | 'warn'
  readonly title: string
  readonly detail: string
}

/** What the reward's finality means to the donor, as a clause. */
function rewardState(final: boolean | null): string {
  if (final === true) return ' (final: a validator checkpoint holds it)'
  if (final === false) return ' (pending until the validators\' next checkpoint makes it final)'
  return ''
}

/** How an outcome is told. */
export function outcomeView(o: DonateOutcome): OutcomeView {
  const losses = o.lossBefore !== null && o.lossAfter !== null ? `validation loss ${formatLoss(o.lossBefore)} → ${formatLoss(o.lossAfter)} nats (${formatGain(o.improvement)}${o.delta === null ? '' : `; ${formatDelta(o.delta)} needed`})` : null
  switch (o.status) {
    case 'accepted':
      return { tone: 'ok', title: `Accepted: ${o.expert} has a new version`, detail: `${losses === null ? 'Validators measured a lower validation loss. ' : ''}It is in the model now: answers routed to ${o.expert} run your version. ${o.amount === null ? 'A reward' : `${formatCredits(o.amount)} credits`} went to your wallet${rewardState(o.rewardFinal)}.` }
    case 'rejected':
      return { tone: 'bad', title: `Rejected${o.code === null ? '' : ` · ${o.code}`}`, detail: `${o.message ?? 'The validators refused the candidate.'}${losses === null || (o.message ?? '').includes('->') ? '' : ` (${losses})`}` }
    case 'no-gain':
      return { tone: 'warn', title: 'Not submitted: no gain worth sending', detail: o.message ?? 'The self-check found no gain.' }
  }
}

/** A candidate's line in the wallet's history. */
export function candidateLine(c: CandidateInfo): { tone: 'ok' | 'bad' | 'busy'; label: string; detail: string } {
  const gain = c.lossBefore !== null && c.lossAfter !== null && c.lossBefore > 0 ? (c.lossBefore - c.lossAfter) / c.lossBefore : null
  if (c.status === 'accepted') {
    const reward = c.amount === null ? '' : `; ${formatCredits(c.amount)} credits${c.rewardFinal === true ? ', final' : c.rewardFinal === false ? ', pending' : ''}`
    return { tone: 'ok', label: 'accepted', detail: `loss ${formatLoss(c.lossBefore)} → ${formatLoss(c.lossAfter)} (${formatGain(gain)})${reward}` }
  }
  if (c.status === 'rejected') return { tone: 'bad', label: 'rejected', detail: `${c.code ?? ''}${c.message === null ? '' : `: ${c.message}`}` }
  return { tone: 'busy', label: 'pending', detail: 'waiting for the validators' }
}
