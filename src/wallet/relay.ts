/**
 * What a relay's PoL routes say about a wallet (docs/api.md): `GET /api/balance/<key>`,
 * `GET /api/miners/<key>` (trust, quota, candidates newest first) and `GET /api/candidates/<cid>`.
 *
 * These are reports, not proofs: a balance or a verdict is what the relay's node computed. The
 * chain itself (chain B certificates, chain C rewards) is what the page verifies; the explorer
 * shows it. Answers are read field by field into the API's types; a field of the wrong type reads
 * as null, and an answer that is not the documented shape throws {@link WalletRelayError}.
 *
 * @module
 */
import type { CandidateInfo, CandidateStatus, WalletActivity } from './types.ts'

/** A relay route failed: unreachable, an HTTP error (with the API's code), or not the documented JSON. */
export class WalletRelayError extends Error {
  override readonly name = 'WalletRelayError'
  readonly relay: string
  readonly status: number | null
  readonly code: string
  constructor(relay: string, status: number | null, code: string, message: string) {
    super(message)
    this.relay = relay
    this.status = status
    this.code = code
  }
}

export interface RelayOptions {
  readonly fetch?: typeof fetch
  readonly signal?: AbortSignal
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)
const STATUSES: readonly CandidateStatus[] = ['pending', 'accepted', 'rejected']

/** A candidate from the API's JSON (snake_case), or null when it has no CID or status. */
export function candidateFrom(raw: unknown): CandidateInfo | null {
  if (typeof raw !== 'object' || raw === null) return null
  const r = raw as Record<string, unknown>
  const cid = str(r['cid'])
  const status = r['status']
  if (cid === null || !(STATUSES as readonly unknown[]).includes(status)) return null
  return Object.freeze({
    cid,
    status: status as CandidateStatus,
    expert: str(r['expert']),
    code: str(r['code']),
    message: str(r['message']),
    lossBefore: num(r['loss_before']),
    lossAfter: num(r['loss_after']),
    amount: num(r['amount']),
    reward: str(r['reward']),
    rewardFinal: typeof r['reward_final'] === 'boolean' ? r['reward_final'] : null,
    certificate: str(r['certificate']),
    receivedAt: num(r['received_at']),
    decidedAt: num(r['decided_at'])
  })
}

async function getJson(relay: string, path: string, options: RelayOptions): Promise<unknown> {
  const base = relay.replace(/\/+$/, '')
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis)
  let res: Response
  try {
    res = await fetchImpl(`${base}${path}`, { cache: 'no-store', ...(options.signal === undefined ? {} : { signal: options.signal }) })
  } catch (e) {
    if (options.signal?.aborted === true) throw e
    throw new WalletRelayError(base, null, 'UNREACHABLE', `${base} is unreachable (${e instanceof Error ? e.message : String(e)})`)
  }
  const body = (await res.json().catch(() => undefined)) as { error?: { code?: unknown; message?: unknown } } | undefined
  if (!res.ok) {
    const code = typeof body?.error?.code === 'string' ? body.error.code : `HTTP_${res.status}`
    const message = typeof body?.error?.message === 'string' ? body.error.message : `HTTP ${res.status}`
    throw new WalletRelayError(base, res.status, code, `${base}${path}: ${message}`)
  }
  if (typeof body !== 'object' || body === null) throw new WalletRelayError(base, res.status, 'PROTOCOL', `${base}${path}: not JSON`)
  return body
}

/** `GET /api/candidates/<cid>`. */
export async function fetchCandidate(relay: string, cid: string, options: RelayOptions = {}): Promise<CandidateInfo> {
  const body = (await getJson(relay, `/api/candidates/${encodeURIComponent(cid)}`, options)) as { candidate?: unknown }
  const c = candidateFrom(body.candidate)
  if (c === null || c.cid !== cid) throw new WalletRelayError(relay, 200, 'PROTOCOL', `${relay}: the answer for candidate ${cid} is not one`)
  return c
}

/** `GET /api/balance/<key>`: integer units at the chain C head, and at the final chain C block (null when the relay did not say). */
export async function fetchBalance(relay: string, publicKey: string, options: RelayOptions = {}): Promise<{ balance: number; finalBalance: number | null }> {
  const body = (await getJson(relay, `/api/balance/${publicKey}`, options)) as { balance?: unknown; final_balance?: unknown }
  const balance = num(body.balance)
  if (balance === null) throw new WalletRelayError(relay, 200, 'PROTOCOL', `${relay}: the balance answer has no balance`)
  return { balance, finalBalance: num(body.final_balance) }
}

/**
 * Everything the wallet view shows, from one relay. Balance and history are asked together; one
 * failing leaves its part null or empty and says why in `error` (a relay without the PoL service
 * answers 404 on /api/miners but still knows balances).
 */
export async function fetchActivity(relay: string, publicKey: string, options: RelayOptions & { now?: number } = {}): Promise<WalletActivity> {
  const [balance, miner] = await Promise.allSettled([
    fetchBalance(relay, publicKey, options),
    getJson(relay, `/api/miners/${publicKey}`, options) as Promise<{ trust?: unknown; quota?: Record<string, unknown>; candidates?: unknown }>
  ])
  const errors: string[] = []
  if (balance.status === 'rejected') errors.push(reason(balance.reason))
  if (miner.status === 'rejected') {
    const e = miner.reason
    errors.push(e instanceof WalletRelayError && e.status === 404 ? `${relay} runs no Proof-of-Learning service: no candidate history there` : reason(e))
  }
  const m = miner.status === 'fulfilled' ? miner.value : null
  const trust = m?.trust === 'newbie' || m?.trust === 'trusted' ? m.trust : null
  const q = m?.quota
  const quota = q !== undefined && num(q['perDay']) !== null && num(q['pending']) !== null && num(q['leases']) !== null
    ? Object.freeze({ perDay: q['perDay'] as number, pending: q['pending'] as number, leases: q['leases'] as number })
    : null
  const candidates = Array.isArray(m?.candidates) ? (m.candidates as unknown[]).map(candidateFrom).filter((c): c is CandidateInfo => c !== null) : []
  return Object.freeze({
    relay,
    balance: balance.status === 'fulfilled' ? balance.value.balance : null,
    finalBalance: balance.status === 'fulfilled' ? balance.value.finalBalance : null,
    trust,
    quota,
    candidates: Object.freeze(candidates),
    error: errors.length === 0 ? null : errors.join('; '),
    at: options.now ?? Date.now()
  })
}

/**
 * Poll `GET /api/candidates/<cid>` until the validators decide (what a reload does with a
 * submitted candidate). Transient failures (relay restarting) are retried; `signal` stops it.
 */
export async function followCandidate(relay: string, cid: string, options: RelayOptions & { pollMs?: number; onPoll?: (c: CandidateInfo) => void } = {}): Promise<CandidateInfo> {
  for (;;) {
    options.signal?.throwIfAborted()
    try {
      const c = await fetchCandidate(relay, cid, options)
      options.onPoll?.(c)
      if (c.status !== 'pending') return c
    } catch (e) {
      // A candidate the relay does not know (404) will not appear later: say so. Anything else may pass.
      if (e instanceof WalletRelayError && e.status === 404) throw e
      if (options.signal?.aborted === true) throw e
    }
    await sleep(options.pollMs ?? 1000, options.signal)
  }
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, rejectPromise) => {
    const t = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => {
      clearTimeout(t)
      rejectPromise(signal.reason)
    }, { once: true })
  })
}
