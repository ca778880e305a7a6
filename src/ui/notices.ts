/**
 * What the status strip tells the user about relays and sync, as plain sentences. A relay that is
 * down says so with its retry countdown and disappears once it answers again; a relay that served
 * bytes not matching their CID, or headers that broke a rule, is named in a warning that stays.
 *
 * @module
 */
import type { ClientStatus, RelayState, SyncState } from '../client/api.ts'
import { plural, secondsUntil } from './format.ts'

export type NoticeLevel = 'info' | 'warn' | 'error'

export interface Notice {
  /** Stable key for lists: kind and relay. */
  readonly id: string
  readonly level: NoticeLevel
  readonly text: string
  /** The relay this is about, when there is one. */
  readonly relay: string | null
}

/** `relay http://x is unreachable, retrying in 8 s` (or `retrying now` once the time has come). */
export function downText(relay: RelayState, now: number): string {
  const retry = relay.retryAt === null ? 'retrying' : secondsUntil(relay.retryAt, now) > 0 ? `retrying in ${secondsUntil(relay.retryAt, now)} s` : 'retrying now'
  return `relay ${relay.url} is unreachable, ${retry}`
}

/** The warning for a relay that lied, naming it and the block it lied about. */
export function lieText(relay: RelayState, others: readonly RelayState[]): string {
  const last = relay.lies.reduce<RelayState['lies'][number] | undefined>((m, l) => (m === undefined || l.at > m.at ? l : m), undefined)
  const what = last === undefined ? '' : last.what.trim() !== '' ? ` (${last.what.trim()})` : ` (${last.cid})`
  const more = relay.lies.length > 1 ? `, and ${plural(relay.lies.length - 1, 'other block')}` : ''
  const honest = others.some((r) => r.url !== relay.url && r.health === 'up' && r.lies.length === 0)
  const fallback = honest ? 'blocks are taken from other relays' : 'its bytes were refused, and no honest relay is reachable'
  return `relay ${relay.url} served a block that does not match its CID${what}${more}: it lied; ${fallback}`
}

function rejectedNotices(sync: SyncState): Notice[] {
  const byRelay = new Map<string, SyncState['rejected'][number][]>()
  for (const r of sync.rejected) byRelay.set(r.relay, [...(byRelay.get(r.relay) ?? []), r])
  return [...byRelay].map(([relay, list]) => {
    const first = list[0]
    const why = first === undefined ? '' : ` (${first.code}${first.field === '' ? '' : ` in ${first.field}`}: ${first.message})`
    return {
      id: `rejected:${relay}`,
      level: 'error' as const,
      relay,
      text: `relay ${relay} offered ${plural(list.length, 'header')} that failed the rules here${why}; they were refused`
    }
  })
}

/** Every notice for this status, most serious first. */
export function notices(status: ClientStatus, now: number): Notice[] {
  const out: Notice[] = []
  const { relays, sync } = status
  if (relays.length === 0) {
    out.push({ id: 'no-relay', level: 'error', relay: null, text: 'No relay is set: add one in Settings, or open this page with ?relay=URL' })
  }
  for (const r of relays) if (r.lies.length > 0) out.push({ id: `lie:${r.url}`, level: 'error', relay: r.url, text: lieText(r, relays) })
  out.push(...rejectedNotices(sync))
  for (const r of relays) {
    if (r.health === 'wrong-network') {
      out.push({ id: `network:${r.url}`, level: 'error', relay: r.url, text: `relay ${r.url} is on another network${r.error === null ? '' : ` (${r.error})`}; it is not used` })
    }
  }
  if (sync.phase === 'error' && sync.error !== null) out.push({ id: 'sync-error', level: 'error', relay: null, text: `Sync failed: ${sync.error}` })
  for (const r of relays) if (r.health === 'down') out.push({ id: `down:${r.url}`, level: 'warn', relay: r.url, text: downText(r, now) })
  if (status.cache.error !== null) out.push({ id: 'cache', level: 'warn', relay: null, text: `Cache: ${status.cache.error}` })
  return out
}

/** One short line for the sync state: `Live · 42 headers verified`. */
export function syncSummary(sync: SyncState): string {
  const verified = plural(sync.verified, 'header')
  switch (sync.phase) {
    case 'starting':
      return 'Starting…'
    case 'syncing':
      return `Syncing · ${verified} verified`
    case 'live':
      return `Live · ${verified} verified`
    case 'offline':
      return `Offline · ${verified} verified`
    case 'error':
      return `Sync error · ${verified} verified`
  }
}

/** Relays by health, for the strip: `2 relays up`, `1 of 2 relays up`, `2 relays up · 1 lied`. */
export function relaySummary(relays: readonly RelayState[]): string {
  if (relays.length === 0) return 'no relay'
  const up = relays.filter((r) => r.health === 'up').length
  const lied = relays.filter((r) => r.lies.length > 0).length
  const health = up === relays.length ? (relays.length === 1 ? '1 relay up' : `${relays.length} relays up`) : `${up} of ${plural(relays.length, 'relay')} up`
  return lied === 0 ? health : `${health} · ${lied} lied`
}

/** Does any relay deserve a persistent warning (it lied or broke a rule)? */
export function anyLiar(status: ClientStatus): boolean {
  return status.relays.some((r) => r.lies.length > 0) || status.sync.rejected.length > 0
}

/**
 * Why a view has nothing to show yet, in the words every view uses: no relay reachable (named, with
 * why), still syncing, or simply nothing there. `what` is the missing thing: `blocks on chain B`.
 */
export function emptyText(what: string, status: ClientStatus | null): string {
  if (status === null || status.sync.phase === 'starting') return `Starting: ${what} appear once the chain is verified.`
  if (status.sync.phase === 'offline') {
    const down = status.relays.filter((r) => r.health === 'down' || r.health === 'wrong-network')
    const why = down.map((r) => `${r.url}${r.error === null ? '' : ` (${r.error})`}`).join(', ')
    return `Cannot reach a relay${why === '' ? '' : `: ${why}`}. This page has no verified ${what} yet; it keeps retrying (see the status bar).`
  }
  if (status.sync.phase === 'syncing') return `Syncing: ${what} appear as their headers are verified.`
  return `No ${what} yet.`
}
