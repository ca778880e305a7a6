/**
 * Trust levels and quotas of miner keys (the vision document's §12.3, without staking): a key
 * starts as a newbie, becomes trusted after 3 consecutive PoL successes, and falls back to newbie
 * after 5 consecutive failures. Levels come from the outcomes the PoL service recorded, so they
 * need no extra state and a restarted node computes the same ones.
 *
 * @module
 */

export type TrustLevel = 'newbie' | 'trusted'

export interface Quota {
  /** Candidates submitted in any 24 hours. */
  readonly perDay: number
  /** Candidates waiting for the validators at once. */
  readonly pending: number
  /** Job leases held at once. */
  readonly leases: number
}

export const QUOTAS: Readonly<Record<TrustLevel, Quota>> = Object.freeze({
  newbie: Object.freeze({ perDay: 20, pending: 2, leases: 1 }),
  trusted: Object.freeze({ perDay: 200, pending: 8, leases: 4 })
})

export const PROMOTE_AFTER_SUCCESSES = 3
export const DEMOTE_AFTER_FAILURES = 5
export const DAY_MS = 24 * 60 * 60 * 1000

/** The level a key's decided outcomes (oldest first) give it. */
export function trustLevel(outcomes: readonly ('accepted' | 'rejected')[]): TrustLevel {
  let level: TrustLevel = 'newbie'
  let run = 0
  let last: 'accepted' | 'rejected' | null = null
  for (const o of outcomes) {
    run = o === last ? run + 1 : 1
    last = o
    if (o === 'accepted' && run >= PROMOTE_AFTER_SUCCESSES) level = 'trusted'
    if (o === 'rejected' && run >= DEMOTE_AFTER_FAILURES) level = 'newbie'
  }
  return level
}
