/**
 * Settings and the light client's sync state, kept in IndexedDB (database `blyan-settings`).
 *
 * What was stored is read back through a validator, field by field: a record written by another
 * version, or damaged, yields the defaults for the fields it gets wrong and keeps the rest. Loading
 * never throws for bad data; saving checks its argument and throws TypeError / RangeError, naming
 * the field, for a value our own code should never produce.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { aarray, aint, aoneOf } from '../assert.ts'
import { idbKV, type KV } from './kv.ts'

/** Which engine backend to run: `auto` is WebGPU when an adapter exists, else ONNX Runtime WASM. */
export type BackendChoice = 'auto' | 'webgpu' | 'ort-wasm' | 'cpu'

export const BACKEND_CHOICES: readonly BackendChoice[] = Object.freeze(['auto', 'webgpu', 'ort-wasm', 'cpu'])

export interface Settings {
  /** Relay base URLs (e.g. `http://127.0.0.1:8080`), tried in this order for blocks. */
  readonly relays: readonly string[]
  /** Most bytes the tile cache keeps before evicting the least recently used tiles. */
  readonly cacheBudgetBytes: number
  readonly backend: BackendChoice
  /**
   * The trust anchor: chain A's genesis CID. null until pinned; the first sync pins the genesis it
   * verifies (trust on first use), and later syncs refuse a relay whose chain starts elsewhere.
   */
  readonly trustAnchor: string | null
}

export const DEFAULT_CACHE_BUDGET = 512 * 1024 * 1024

const SETTINGS = 'settings'
const SYNC = 'sync'

let defaultKV: KV | undefined
/** The settings database (opened on first use). */
function settingsKV(): KV {
  defaultKV ??= idbKV('blyan-settings', 'settings')
  return defaultKV
}

/** Relays: none (the client adds the page's origin). Budget: DEFAULT_CACHE_BUDGET. Backend: auto. No trust anchor yet. */
export function defaultSettings(): Settings {
  return Object.freeze({ relays: Object.freeze([]), cacheBudgetBytes: DEFAULT_CACHE_BUDGET, backend: 'auto', trustAnchor: null })
}

/** Settings from an untrusted record: each field kept when valid, else its default. Never throws. */
export function settingsFrom(raw: unknown): Settings {
  const d = defaultSettings()
  const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>
  const relays = Array.isArray(r['relays']) ? r['relays'].filter(isRelayUrl) : d.relays
  const budget = r['cacheBudgetBytes']
  const backend = r['backend']
  return Object.freeze({
    relays: Object.freeze([...new Set(relays)]),
    cacheBudgetBytes: typeof budget === 'number' && Number.isSafeInteger(budget) && budget >= 0 ? budget : d.cacheBudgetBytes,
    backend: (BACKEND_CHOICES as readonly unknown[]).includes(backend) ? (backend as BackendChoice) : d.backend,
    trustAnchor: isCid(r['trustAnchor']) ? (r['trustAnchor'] as string) : d.trustAnchor
  })
}

export async function loadSettings(kv: KV = settingsKV()): Promise<Settings> {
  try {
    return settingsFrom(await kv.get(SETTINGS))
  } catch {
    // IndexedDB unavailable (private mode in some browsers, blocked storage): run on defaults.
    return defaultSettings()
  }
}

/** Check and store `settings`; returns what was stored. */
export async function saveSettings(settings: Settings, kv: KV = settingsKV()): Promise<Settings> {
  aarray(settings.relays, 'relays')
  settings.relays.forEach((url, i) => {
    if (!isRelayUrl(url)) throw new TypeError(`relays[${i}]: expected an http(s) URL, got ${JSON.stringify(url)}`)
  })
  aint(settings.cacheBudgetBytes, 'cacheBudgetBytes')
  aoneOf(settings.backend, BACKEND_CHOICES, 'backend')
  if (settings.trustAnchor !== null && !isCid(settings.trustAnchor)) throw new TypeError(`trustAnchor: expected a CID or null, got ${JSON.stringify(settings.trustAnchor)}`)
  const record = { relays: [...settings.relays], cacheBudgetBytes: settings.cacheBudgetBytes, backend: settings.backend, trustAnchor: settings.trustAnchor }
  await kv.setMany([[SETTINGS, record]])
  return settingsFrom(record)
}

// ------------------------------------------------------------------------------------ sync state

/**
 * What a reload needs to re-validate the chain from the header cache without network: the trust
 * anchor the headers were accepted under, the accepted header CIDs in acceptance order (each
 * one's dependencies come before it, so replaying them in order through the rules rebuilds the chain),
 * and the finality checkpoints applied, in sequence.
 */
export interface StoredSyncState {
  readonly anchor: string | null
  readonly accepted: readonly string[]
  /** CIDs of the finality checkpoints applied, in sequence (their bytes are in the header cache). */
  readonly checkpoints: readonly string[]
}

/** Sync state from an untrusted record: invalid CIDs are dropped; anything unreadable is the empty state. */
export function syncStateFrom(raw: unknown): StoredSyncState {
  const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>
  const accepted = Array.isArray(r['accepted']) ? r['accepted'].filter(isCid) : []
  // Checkpoints are a sequence: keep the valid prefix (a gap would make every later one unusable).
  const checkpoints: string[] = []
  for (const c of Array.isArray(r['checkpoints']) ? r['checkpoints'] : []) {
    if (!isCid(c)) break
    checkpoints.push(c as string)
  }
  return Object.freeze({ anchor: isCid(r['anchor']) ? (r['anchor'] as string) : null, accepted: Object.freeze(accepted as string[]), checkpoints: Object.freeze(checkpoints) })
}

export async function loadSyncState(kv: KV = settingsKV()): Promise<StoredSyncState> {
  try {
    return syncStateFrom(await kv.get(SYNC))
  } catch {
    return syncStateFrom(undefined)
  }
}

export async function saveSyncState(state: StoredSyncState, kv: KV = settingsKV()): Promise<void> {
  if (state.anchor !== null && !isCid(state.anchor)) throw new TypeError(`anchor: expected a CID or null, got ${JSON.stringify(state.anchor)}`)
  aarray(state.accepted, 'accepted')
  state.accepted.forEach((cid, i) => {
    if (!isCid(cid)) throw new TypeError(`accepted[${i}]: expected a CID string, got ${JSON.stringify(cid)}`)
  })
  aarray(state.checkpoints, 'checkpoints')
  state.checkpoints.forEach((cid, i) => {
    if (!isCid(cid)) throw new TypeError(`checkpoints[${i}]: expected a CID string, got ${JSON.stringify(cid)}`)
  })
  await kv.setMany([[SYNC, { anchor: state.anchor, accepted: [...state.accepted], checkpoints: [...state.checkpoints] }]])
}

// ------------------------------------------------------------------------------------ checks

function isRelayUrl(value: unknown): value is string {
  if (typeof value !== 'string') return false
  try {
    const url = new URL(value)
    return url.protocol === 'http:' || url.protocol === 'https:'
  } catch {
    return false
  }
}

function isCid(value: unknown): value is string {
  if (typeof value !== 'string') return false
  try {
    CID.parse(value)
    return true
  } catch {
    return false
  }
}
