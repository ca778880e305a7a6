/**
 * The client: everything the site does that is not drawing, behind the ClientApi (api.ts).
 *
 * A thin class over its parts, each in its own module:
 * - the page's verified block getter (src/net/blocks.ts: Helia over the IndexedDB caches and the
 *   relays, src/net/relays.ts);
 * - the chain (follower.ts: the header cache replayed, every relay followed and synced by the rules);
 * - the chat (chat-runner.ts: engine runs on the model that chain names);
 * - the explorer's questions (queries.ts);
 * - settings and the caches, here.
 * Isomorphic: the browser runs it in the client worker (client.worker.ts) with Web Workers,
 * IndexedDB and WebGPU; Node tests run it with the inline verify pool, fake-indexeddb and the CPU
 * backend.
 *
 * @module
 */
import type { ChainId } from '../chain/header.ts'
import type { Architecture } from '../chain/meta.ts'
import type { Backend } from '../engine/interface.ts'
import { PageBlocks } from '../net/blocks.ts'
import type { Backoff, WebSocketFactory } from '../net/relay-client.ts'
import { RelaySet } from '../net/relays.ts'
import type { VerifyPool } from '../net/verify-pool.ts'
import type { Caches } from '../store/caches.ts'
import type { StoredSyncState } from '../store/settings.ts'
import type {
  BackendChoice,
  BackendInfo,
  BlockPage,
  AuditReport,
  BlockSummary,
  CacheUsage,
  ChatEvent,
  ChatRequest,
  ChatFailure,
  ChatResult,
  ClientApi,
  ClientStatus,
  DagView, NetworkView, Provenance,
  DatasetRecordFile,
  RejectionInfo,
  RejectionList,
  ModelCard,
  Settings,
  VerifyReport,
  VerifyStep
} from './api.ts'
import { ChatRunner } from './chat-runner.ts'
import { ChainFollower } from './follower.ts'
import { ExplorerQueries } from './queries.ts'


/** What the client runs on: the browser worker and Node tests supply different pieces. */
export interface ClientEnvironment {
  readonly pool: VerifyPool
  readonly openCaches: (budgetBytes: number) => Promise<Caches>
  readonly settings: {
    load(): Promise<Settings>
    save(settings: Settings): Promise<Settings>
    loadSync(): Promise<StoredSyncState>
    saveSync(state: StoredSyncState): Promise<void>
  }
  /** An engine backend for the choice; `fallback` in the info says why it is not the one asked for. */
  readonly createBackend: (choice: BackendChoice, arch: Architecture) => Promise<{ backend: Backend; info: BackendInfo }>
  /** Relays when settings have none (the page's own origin when a relay serves it). */
  readonly defaultRelays: readonly string[]
  readonly WebSocket?: WebSocketFactory
  readonly fetch?: typeof fetch
  readonly backoff?: Backoff
}

/** Status listeners are told at most this often (ms). */
const STATUS_THROTTLE_MS = 100

/** The parts a started client is made of. */
interface Parts {
  readonly caches: Caches
  readonly relays: RelaySet
  readonly blocks: PageBlocks
  readonly chat: ChatRunner
  readonly queries: ExplorerQueries
}

export class Client implements ClientApi {
  readonly #env: ClientEnvironment
  #settings: Settings | null = null
  #parts: Parts | null = null
  /** The chain and its sync; a new one when relays or the trust anchor change. */
  #follower: ChainFollower | null = null
  #started: Promise<ClientStatus> | null = null
  /** The chat view opened (prepareChat), perhaps before start: the chat prepares its backend. */
  #wantChat = false
  readonly #statusListeners = new Set<(s: ClientStatus) => void>()
  readonly #blockListeners = new Set<(b: BlockSummary) => void>()
  #statusTimer: ReturnType<typeof setTimeout> | null = null
  #cacheUsage: CacheUsage | null = null

  constructor(env: ClientEnvironment) {
    this.#env = env
  }

  // ---------------------------------------------------------------------------- lifecycle

  start(overrides: Partial<Settings> = {}): Promise<ClientStatus> {
    this.#started ??= this.#start(overrides)
    return this.#started
  }

  async #start(overrides: Partial<Settings>): Promise<ClientStatus> {
    const stored = await this.#env.settings.load()
    const urls = overrides.relays !== undefined && overrides.relays.length > 0 ? overrides.relays : stored.relays.length > 0 ? stored.relays : this.#env.defaultRelays
    this.#settings = { ...stored, ...overrides, relays: urls }
    if (overrides.trustAnchor !== undefined && overrides.trustAnchor !== stored.trustAnchor) await this.#env.settings.save({ ...stored, trustAnchor: overrides.trustAnchor })
    const caches = await this.#env.openCaches(this.#settings.cacheBudgetBytes)
    const relays = new RelaySet(urls, this.#env.fetch)
    relays.onChange(() => this.#follower?.refresh())
    const blocks = await PageBlocks.open({ relays, blockstore: caches.blockstore, sha256: (bytes) => this.#env.pool.sha256(bytes) })
    const follower = (): ChainFollower => this.#need(this.#follower)
    const chat = new ChatRunner({
      blocks,
      createBackend: this.#env.createBackend,
      choice: () => this.#need(this.#settings).backend,
      follower,
      onChange: () => this.#changed()
    })
    this.#parts = { caches, relays, blocks, chat, queries: new ExplorerQueries({ blocks, relays, follower }) }
    await this.#restart()
    if (this.#wantChat) chat.want()
    return this.status()
  }

  /** (Re)build the chain from the header cache, then follow every relay. */
  async #restart(): Promise<void> {
    const parts = this.#need(this.#parts)
    await this.#follower?.stop()
    parts.queries.forget()
    parts.chat.dropRun()
    this.#follower = new ChainFollower({
      pool: this.#env.pool,
      blocks: parts.blocks,
      relays: parts.relays,
      store: this.#env.settings,
      keep: (cid, bytes) => void parts.caches.headers.put(cid, bytes).catch(() => undefined),
      anchor: this.#need(this.#settings).trustAnchor,
      onPin: (cid) => void this.#pin(cid),
      onLive: (block) => {
        const summary = parts.queries.live(block)
        for (const l of this.#blockListeners) l(summary)
      },
      onChange: () => this.#changed(),
      ...(this.#env.WebSocket === undefined ? {} : { WebSocket: this.#env.WebSocket }),
      ...(this.#env.backoff === undefined ? {} : { backoff: this.#env.backoff })
    })
    await this.#follower.start()
  }

  async #pin(cid: string): Promise<void> {
    this.#settings = { ...this.#need(this.#settings), trustAnchor: cid }
    const stored = await this.#env.settings.load()
    await this.#env.settings.save({ ...stored, trustAnchor: cid })
    this.#changed()
  }

  /** Stop everything (tests; the worker lives as long as the page). */
  async close(): Promise<void> {
    const parts = this.#parts
    parts?.chat.close()
    if (this.#statusTimer !== null) clearTimeout(this.#statusTimer)
    await this.#follower?.stop()
    await parts?.caches.flush()
    await parts?.blocks.stop()
  }

  // ---------------------------------------------------------------------------- status

  async status(): Promise<ClientStatus> {
    const caches = this.#parts?.caches
    if (caches !== undefined) this.#cacheUsage = await caches.usage()
    return this.#snapshot()
  }

  #snapshot(): ClientStatus {
    const settings = this.#settings
    const follower = this.#follower
    const sync = follower?.state() ?? {
      phase: 'starting', anchor: settings?.trustAnchor ?? null, heads: { A: null, B: null, C: null, D: null }, verified: 0, rejected: [], error: null, liveMs: null, finality: null
    }
    return {
      relays: this.#parts?.relays.states() ?? [],
      sync: sync.anchor === null ? { ...sync, anchor: settings?.trustAnchor ?? null } : sync,
      cache: this.#cacheUsage ?? { tileBytes: 0, tileBlocks: 0, budgetBytes: settings?.cacheBudgetBytes ?? 0, headerBytes: 0, headerBlocks: 0, quotaBytes: null, error: null },
      backend: this.#parts?.chat.backend ?? null
    }
  }

  async onStatus(listener: (status: ClientStatus) => void): Promise<void> {
    this.#statusListeners.add(listener)
    listener(await this.status())
  }

  async onBlock(listener: (block: BlockSummary) => void): Promise<void> {
    this.#blockListeners.add(listener)
  }

  /** Something changed: a live chain lets the chat prepare its backend; listeners are told soon. */
  #changed(): void {
    if (this.#follower?.phase === 'live') this.#parts?.chat.prepare()
    if (this.#statusTimer !== null || this.#statusListeners.size === 0) return
    this.#statusTimer = setTimeout(() => {
      this.#statusTimer = null
      void this.status().then((s) => {
        for (const l of this.#statusListeners) l(s)
      })
    }, STATUS_THROTTLE_MS)
  }

  // ---------------------------------------------------------------------------- settings

  async settings(): Promise<Settings> {
    return this.#settings ?? (await this.#env.settings.load())
  }

  async updateSettings(patch: Partial<Settings>): Promise<ClientStatus> {
    const parts = this.#need(this.#parts)
    const before = this.#need(this.#settings)
    const next: Settings = { ...before, ...patch }
    this.#settings = await this.#env.settings.save(next)
    if (patch.cacheBudgetBytes !== undefined && patch.cacheBudgetBytes !== before.cacheBudgetBytes) await parts.caches.setBudget(patch.cacheBudgetBytes)
    if (patch.backend !== undefined && patch.backend !== before.backend) parts.chat.changeBackend()
    const relaysChanged = patch.relays !== undefined && patch.relays.join('\n') !== before.relays.join('\n')
    const anchorChanged = patch.trustAnchor !== undefined && patch.trustAnchor !== before.trustAnchor
    if (relaysChanged) parts.relays.set(next.relays.length > 0 ? next.relays : this.#env.defaultRelays)
    if (relaysChanged || anchorChanged) await this.#restart()
    return this.status()
  }

  async clearCache(): Promise<CacheUsage> {
    const parts = this.#need(this.#parts)
    await parts.caches.clear()
    await this.#env.settings.saveSync({ anchor: this.#follower?.anchor ?? null, accepted: [], checkpoints: [] })
    parts.queries.forget()
    const s = await this.status()
    this.#changed()
    return s.cache
  }

  // ---------------------------------------------------------------------------- chat

  async prepareChat(): Promise<void> {
    this.#wantChat = true
    this.#parts?.chat.want()
  }

  chat(request: ChatRequest, onEvent: (event: ChatEvent) => void): Promise<{ ok: true; result: ChatResult } | { ok: false; failure: ChatFailure }> {
    return this.#need(this.#parts).chat.chat(request, onEvent)
  }

  modelCard(): Promise<ModelCard | null> {
    return this.#queries.modelCard()
  }

  async stop(): Promise<void> {
    this.#parts?.chat.stop()
  }

  // ---------------------------------------------------------------------------- explorer

  async listBlocks(chain: ChainId, limit: number, before?: number): Promise<BlockSummary[]> {
    return this.#queries.listBlocks(chain, limit, before)
  }

  async search(query: string): Promise<BlockSummary[]> {
    return this.#queries.search(query)
  }

  block(cid: string): Promise<BlockPage | null> {
    return this.#queries.block(cid)
  }

  datasetRecord(cid: string): Promise<DatasetRecordFile> {
    return this.#queries.datasetRecord(cid)
  }

  async currentExperts(): Promise<Record<string, { cid: string; version: number }>> {
    return this.#queries.currentExperts()
  }

  rejections(limit: number): Promise<RejectionList> {
    return this.#queries.rejections(limit)
  }

  rejectionOf(cid: string): Promise<(RejectionInfo & { relay: string }) | null> {
    return this.#queries.rejectionOf(cid)
  }

  async dag(): Promise<DagView> {
    return this.#queries.dag()
  }

  network(): Promise<NetworkView> {
    return this.#queries.network()
  }

  provenance(cid: string): Promise<Provenance | null> {
    return this.#queries.provenance(cid)
  }

  verify(cid: string, tile: number | null, onStep?: (step: VerifyStep) => void): Promise<VerifyReport> {
    return this.#queries.verify(cid, tile, onStep)
  }

  audit(cid: string, onStep?: (step: number, steps: number) => void): Promise<AuditReport> {
    return this.#queries.audit(cid, onStep)
  }

  get #queries(): ExplorerQueries {
    return this.#need(this.#parts).queries
  }

  #need<T>(x: T | null): T {
    if (x === null) throw new Error('the client is not started: call start() first')
    return x
  }
}
