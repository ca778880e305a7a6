/**
 * The page's chain, kept current: the header cache replayed on start (re-validated, no network),
 * then every relay followed through its `/ws` feed, each (re)connect syncing what was missed
 * (src/net/sync.ts checks every header by every rule). It knows the sync phase the status shows,
 * pins the trust anchor on first use, and writes what a reload replays.
 *
 * One follower per anchor and relay list: the Client makes a new one when either changes.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { DAG_CBOR, cidOf } from '../codec/cbor.ts'
import type { ChainId } from '../chain/header.ts'
import { MemoryChain } from '../chain/memory.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import type { PageBlocks } from '../net/blocks.ts'
import { DEFAULT_BACKOFF, RelayError, openFeed, type Backoff, type WebSocketFactory } from '../net/relay-client.ts'
import type { RelaySet } from '../net/relays.ts'
import { normalizeRelayUrl } from '../net/relay-client.ts'

/** Most relays a page adds from announcements (a relay cannot make a tab open connections without bound). */
const MAX_DISCOVERED_RELAYS = 8
import { HeaderSync, WrongNetworkError } from '../net/sync.ts'
import type { VerifyPool } from '../net/verify-pool.ts'
import type { StoredSyncState } from '../store/settings.ts'
import type { HeadInfo, SyncState } from './api.ts'

/** Where a reload's chain is kept: the accepted header CIDs and checkpoints (store/settings.ts). */
export interface SyncStateStore {
  loadSync(): Promise<StoredSyncState>
  saveSync(state: StoredSyncState): Promise<void>
}

export interface FollowerOptions {
  readonly pool: VerifyPool
  readonly blocks: PageBlocks
  readonly relays: RelaySet
  readonly store: SyncStateStore
  /** Header bytes and checkpoints are kept here for the next reload (the header cache). */
  readonly keep: (cid: CID, bytes: Uint8Array) => void
  /** The pinned chain A genesis, or null to pin the first one accepted. */
  readonly anchor: string | null
  readonly onPin: (anchor: string) => void
  /** A header accepted after the first sync (`live`): the explorer's feed. */
  readonly onLive: (block: AcceptedBlock) => void
  /** Anything the status shows changed. */
  readonly onChange: () => void
  readonly WebSocket?: WebSocketFactory
  readonly backoff?: Backoff
}

/** How long a save waits for more changes. */
const SAVE_DELAY_MS = 200

export class ChainFollower {
  readonly chain = new MemoryChain()
  readonly #options: FollowerOptions
  readonly #sync: HeaderSync
  readonly #feeds = new Map<string, { close(): void; wake(): void }>()
  readonly #syncing = new Set<string>()
  /** Relays added from other relays' announcements. */
  #discovered = 0
  #phase: SyncState['phase'] = 'starting'
  readonly #startedAt = performance.now()
  #liveMs: number | null = null
  #error: string | null = null
  #saveTimer: ReturnType<typeof setTimeout> | null = null
  /** Resolvers waiting for the next change (a chat waiting for a model). */
  #waiters: (() => void)[] = []

  constructor(options: FollowerOptions) {
    this.#options = options
    this.#sync = new HeaderSync({
      chain: this.chain,
      pool: options.pool,
      getBlock: async (cid, what, signal) => (await options.blocks.get(cid, what, signal)).bytes,
      anchor: options.anchor,
      onAnchor: (cid) => options.onPin(cid),
      onAccepted: (block) => this.#accepted(block),
      onRejected: () => this.#changed(),
      onFinalized: (_checkpoint, bytes) => this.#finalized(bytes)
    })
  }

  get anchor(): string | null {
    return this.#sync.anchor
  }

  get phase(): SyncState['phase'] {
    return this.#phase
  }

  /** Sync is done for now: live or offline, no relay being synced, and some chain known. */
  get settled(): boolean {
    return (this.#phase === 'live' || this.#phase === 'offline') && this.#syncing.size === 0 && this.chain.size > 0
  }

  /** Replay the header cache, then follow every relay. */
  async start(): Promise<void> {
    await this.#warmStart()
    for (const url of this.#options.relays.urls) this.#follow(url)
    this.#changed()
  }

  /** Close the feeds; a save that was due is done now. */
  async stop(): Promise<void> {
    for (const feed of this.#feeds.values()) feed.close()
    this.#feeds.clear()
    if (this.#saveTimer !== null) {
      // What this page verified last is what the next load replays.
      clearTimeout(this.#saveTimer)
      this.#saveTimer = null
      await this.#saveNow()
    }
  }

  /** Resolves at the next change of chain or sync state, or after `ms`. */
  nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms)
      this.#waiters.push(() => {
        clearTimeout(t)
        resolve()
      })
    })
  }

  /** Recompute the phase (relays changed health, ...) and tell whoever waits. */
  refresh(): void {
    this.#changed()
  }

  state(): SyncState {
    const chain = this.chain
    const headOf = (b: AcceptedBlock | undefined): HeadInfo | null => (b === undefined ? null : { height: b.header.index, cid: b.cid.toString() })
    const heads = {} as Record<ChainId, HeadInfo | null>
    for (const c of ['A', 'C', 'D'] as const) heads[c] = headOf(chain.head(c))
    heads.B = headOf(chain.blocks('B').reduce<AcceptedBlock | undefined>((m, x) => (m === undefined || x.header.index > m.header.index ? x : m), undefined))
    const checkpoint = chain.checkpoint()
    const finalHead = (cid: CID | null): HeadInfo | null => headOf(cid === null ? undefined : chain.get(cid))
    return {
      phase: this.#phase,
      anchor: this.anchor,
      heads,
      verified: chain.size,
      rejected: [...this.#sync.rejected],
      error: this.#error,
      liveMs: this.#liveMs,
      finality: checkpoint === null ? null : { number: checkpoint.number, heads: { A: finalHead(checkpoint.heads.A), C: finalHead(checkpoint.heads.C), D: finalHead(checkpoint.heads.D) } }
    }
  }

  /** Re-validate what an earlier visit accepted, from the header cache alone (no network). */
  async #warmStart(): Promise<void> {
    const stored = await this.#options.store.loadSync()
    if (stored.accepted.length === 0) return
    if (stored.anchor !== null && this.anchor !== null && stored.anchor !== this.anchor) return
    const blocks = this.#options.blocks
    const offered = []
    for (const cid of stored.accepted) {
      const bytes = await blocks.local(CID.parse(cid))
      if (bytes !== undefined) offered.push({ cid, bytes, source: 'cache' })
    }
    // A document missing from the cache and no relay yet: the live sync fetches it.
    await this.#sync.ingest(offered).catch(() => undefined)
    // Then the checkpoints, judged again by the rules: finality survives a reload without network.
    for (const [number, cid] of stored.checkpoints.entries()) {
      const bytes = await blocks.local(CID.parse(cid))
      if (bytes === undefined) break
      this.#sync.offerCheckpointBytes(number, bytes, 'cache')
    }
  }

  /**
   * A relay another relay of this network announced (its /api/status `relays`): followed like the
   * configured ones, so the tab keeps working when the relay it started from goes away. Its chain is
   * judged by the same rules and anchor (a relay on another network is marked so and left).
   */
  #discover(url: string): void {
    if (this.#discovered >= MAX_DISCOVERED_RELAYS) return
    let added: boolean
    try {
      added = this.#options.relays.add(url)
    } catch {
      return // not an http(s) URL
    }
    if (!added) return
    this.#discovered++
    this.#follow(normalizeRelayUrl(url))
  }

  /** Open a relay's feed; each (re)connect syncs what was missed. */
  #follow(url: string): void {
    const relays = this.#options.relays
    const feed = openFeed(url, {
      onOpen: () => {
        relays.markUp(url)
        void this.#syncFrom(url)
      },
      onHeader: (entry) => {
        this.#sync.offer(entry, url).then(() => this.#changed(), () => this.#changed())
      },
      onCheckpoint: (entry) => {
        this.#sync.offerCheckpoint(entry, url)
        this.#changed()
      },
      onDown: (reason, retryAt) => {
        relays.markDown(url, reason, retryAt)
        this.#changed()
      }
    }, { ...(this.#options.WebSocket === undefined ? {} : { WebSocket: this.#options.WebSocket }), backoff: this.#options.backoff ?? DEFAULT_BACKOFF })
    this.#feeds.set(url, feed)
  }

  async #syncFrom(url: string): Promise<void> {
    const relays = this.#options.relays
    this.#syncing.add(url)
    this.#changed()
    try {
      const { relays: announced } = await this.#sync.syncRelay(relays.client(url))
      this.#error = null
      for (const other of announced) this.#discover(other)
    } catch (e) {
      if (e instanceof WrongNetworkError) {
        relays.markWrongNetwork(url, e.message)
        this.#feeds.get(url)?.close()
      } else if (e instanceof RelayError) relays.markDown(url, e.message)
      else this.#error = e instanceof Error ? e.message : String(e)
    } finally {
      this.#syncing.delete(url)
      this.#changed()
    }
  }

  #accepted(block: AcceptedBlock): void {
    this.#options.keep(block.cid, block.bytes)
    if (this.#phase === 'live') this.#options.onLive(block)
    this.#saveSoon()
    this.#changed()
  }

  /** A checkpoint this page verified: kept (by its CID) for the next reload; finality changed what pages show. */
  #finalized(bytes: Uint8Array): void {
    this.#options.keep(cidOf(bytes, DAG_CBOR), bytes)
    this.#saveSoon()
    this.#changed()
  }

  #saveSoon(): void {
    if (this.#saveTimer !== null) return
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = null
      void this.#saveNow()
    }, SAVE_DELAY_MS)
  }

  /** Write the sync state (what a reload replays) now. */
  #saveNow(): Promise<void> {
    return this.#options.store.saveSync({
      anchor: this.anchor,
      accepted: this.chain.blocks().map((b) => b.cid.toString()),
      checkpoints: this.chain.checkpoints().map((c) => cidOf(c.bytes, DAG_CBOR).toString())
    }).catch(() => undefined)
  }

  /** Something changed: recompute the phase, wake waiters, tell the client. */
  #changed(): void {
    const relays = this.#options.relays.states()
    if (this.#syncing.size > 0) this.#phase = 'syncing'
    else if (relays.some((r) => r.health === 'up')) this.#phase = 'live'
    else if (relays.length > 0 && relays.every((r) => r.health === 'down' || r.health === 'wrong-network')) this.#phase = 'offline'
    if (this.#phase === 'live' && this.#liveMs === null) this.#liveMs = performance.now() - this.#startedAt
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
    this.#options.onChange()
  }
}
