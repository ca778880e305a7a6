/**
 * What a relay's PoL routes say about a wallet (docs/api.md), asked through the one relay client
 * (src/net/relay-client.ts): `GET /api/balance/<key>`, `GET /api/miners/<key>` (trust, quota,
 * candidates newest first) and `GET /api/candidates/<cid>`.
 *
 * These are reports, not proofs: a balance or a verdict is what the relay's node computed. The
 * chain itself (chain B certificates, chain C rewards) is what the page verifies; the explorer
 * shows it.
 *
 * @module
 */
import type { CandidateInfo } from '../net/relay-api.ts'
import { RelayError, createRelayClient } from '../net/relay-client.ts'
import type { WalletActivity } from './types.ts'
import { sleep } from '../time.ts'

export interface RelayOptions {
  readonly fetch?: typeof fetch
  readonly signal?: AbortSignal
}

/**
 * Everything the wallet view shows, from one relay. Balance and history are asked together; one
 * failing leaves its part null or empty and says why in `error` (a relay without the PoL service
 * answers 404 on /api/miners but still knows balances).
 */
export async function fetchActivity(relay: string, publicKey: string, options: RelayOptions & { now?: number } = {}): Promise<WalletActivity> {
  const client = createRelayClient(relay, options.fetch)
  const [balance, miner] = await Promise.allSettled([client.balance(publicKey, options.signal), client.miner(publicKey, options.signal)])
  const errors: string[] = []
  if (balance.status === 'rejected') errors.push(reason(balance.reason))
  if (miner.status === 'rejected') {
    const e = miner.reason
    errors.push(e instanceof RelayError && e.status === 404 ? `${client.url} runs no Proof-of-Learning service: no candidate history there` : reason(e))
  }
  const m = miner.status === 'fulfilled' ? miner.value : null
  return Object.freeze({
    relay,
    balance: balance.status === 'fulfilled' ? balance.value.balance : null,
    finalBalance: balance.status === 'fulfilled' ? balance.value.finalBalance : null,
    trust: m?.trust ?? null,
    quota: m?.quota ?? null,
    candidates: m?.candidates ?? Object.freeze([]),
    error: errors.length === 0 ? null : errors.join('; '),
    at: options.now ?? Date.now()
  })
}

/**
 * Poll `GET /api/candidates/<cid>` until the validators decide (what a reload does with a
 * submitted candidate). Transient failures (relay restarting) are retried; `signal` stops it.
 */
export async function followCandidate(relay: string, cid: string, options: RelayOptions & { pollMs?: number; onPoll?: (c: CandidateInfo) => void } = {}): Promise<CandidateInfo> {
  const client = createRelayClient(relay, options.fetch)
  for (;;) {
    options.signal?.throwIfAborted()
    try {
      const c = await client.candidate(cid, options.signal)
      options.onPoll?.(c)
      if (c.status !== 'pending') return c
    } catch (e) {
      // A candidate the relay does not know (404) will not appear later: say so. Anything else may pass.
      if (e instanceof RelayError && e.status === 404) throw e
      if (options.signal?.aborted === true) throw e
    }
    await sleep(options.pollMs ?? 1000, options.signal)
  }
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
