/**
 * The client: everything the site does that is not drawing, behind the ClientApi (api.ts).
 *
 * It keeps the relays (relays.ts) and their live feeds, syncs and verifies headers into the page's
 * own chain (sync.ts), fetches blocks through a Helia node over the IndexedDB caches (helia.ts,
 * src/store), runs chats on the engine, and answers the explorer. Isomorphic: the browser runs it in
 * the client worker (client.worker.ts) with Web Workers, IndexedDB and WebGPU; Node tests run it
 * with the inline verify pool, fake-indexeddb and the CPU backend.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { DAG_CBOR, RAW, cidOf, toHex } from '../codec/cbor.ts'
import type { ChainId } from '../chain/header.ts'
import type { DatasetDocument } from '../chain/dataset.ts'
import type { LedgerDocument } from '../chain/ledger.ts'
import { MemoryChain } from '../chain/memory.ts'
import type { Architecture, MetaDocument } from '../chain/meta.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import { complete } from '../engine/complete.ts'
import { Engine } from '../engine/engine.ts'
import { DeviceLostError, type Backend, type TileSource, type TileStats } from '../engine/interface.ts'
import { chainModel, type ModelSource } from '../model/source.ts'
import { RULES, isRuleError } from '../errors.ts'
import { dagView } from '../explorer/dag.ts'
import { MAX_RECORD_BYTES, RecordError, parseGenesisRecord } from '../explorer/record.ts'
import { listBlocks, searchBlocks } from '../explorer/search.ts'
import { detail, summarize, withFinality } from '../explorer/summaries.ts'
import { verifyBlock } from '../explorer/verify.ts'
import { createTokenizer, type Tokenizer } from '../model/tokenizer/index.ts'
import { createLightNode, heliaBlock, type Helia } from '../net/helia.ts'
import { DEFAULT_BACKOFF, RelayError, openFeed, type Backoff, type WebSocketFactory } from '../net/relay-client.ts'
import { BlockUnavailableError, RelaySet } from '../net/relays.ts'
import { HeaderSync, WrongNetworkError } from '../net/sync.ts'
import type { Caches } from '../store/caches.ts'
import type { StoredSyncState } from '../store/settings.ts'
import { decodePayloadIndex, type PayloadIndex } from '../tensor/payload.ts'
import { extractTilePath, fetchUnixfsFile } from '../tensor/tiles.ts'
import type {
  BackendChoice,
  BackendInfo,
  BlockPage,
  BlockSummary,
  CacheUsage,
  ChatEvent,
  ChatFailure,
  ChatProgress,
  ChatResult,
  ClientApi,
  ClientStatus,
  DagView,
  DatasetRecordFile,
  HeadInfo,
  RejectionInfo,
  RejectionList,
  Sampling,
  Settings,
  SyncState,
  UsedExpertInfo,
  VerifyReport,
  VerifyStep
} from './api.ts'
import type { VerifyPool } from '../net/verify.ts'

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

/** How long a chat waits for sync to produce a complete model before it gives up. */
const MODEL_WAIT_MS = 60_000
/** How long the explorer waits for a dataset's training record before it says no relay served it. */
const RECORD_TIMEOUT_MS = 60_000
/** Status listeners are told at most this often (ms). */
const STATUS_THROTTLE_MS = 100

interface Model {
  readonly source: ModelSource
  readonly meta: MetaDocument
  /** Changes when chain A's head or any block of the param index does. */
  readonly key: string
  /** Payload CID -> block name. */
  readonly names: ReadonlyMap<string, string>
}

interface Run {
  readonly key: string
  readonly engine: Engine
  readonly tokenizer: Tokenizer
  readonly info: BackendInfo
  /** What starting it cost (ChatResult.stats.setup), reported by the answer that started it. */
  setup: { backendMs: number; sharedMs: number } | null
}

const NO_SETUP = { backendMs: 0, sharedMs: 0 } as const

/** A backend being started, its kernels compiling as soon as it exists. */
interface StartedBackend {
  readonly backend: Backend
  readonly info: BackendInfo
}

/** Which backend fits a model: the choice and the architecture (weights do not matter). */
function backendKey(choice: BackendChoice, arch: Architecture): string {
  return `${choice}|${JSON.stringify(arch)}`
}

/** A run's start-up cost, once: the answer that started it reports it, later ones report zeros. */
function takeSetup(run: Run): { backendMs: number; sharedMs: number } {
  const s = run.setup ?? NO_SETUP
  run.setup = null
  return s
}

/** Network and cache counts of one answer. */
interface Counters {
  fetchedTiles: number
  fetchedBytes: number
  cachedTiles: number
}

/** The BlockUnavailableError inside Helia's wrapping (LoadBlockFailedError / AggregateError), if any. */
function unavailable(e: unknown, depth = 0): BlockUnavailableError | null {
  if (e instanceof BlockUnavailableError) return e
  if (depth > 4 || typeof e !== 'object' || e === null) return null
  const inner = (e as { errors?: unknown }).errors
  if (Array.isArray(inner)) for (const x of inner) {
    const found = unavailable(x, depth + 1)
    if (found !== null) return found
  }
  return unavailable((e as { cause?: unknown }).cause, depth + 1)
}

export class Client implements ClientApi {
  readonly #env: ClientEnvironment
  #settings: Settings | null = null
  #caches: Caches | null = null
  #relays: RelaySet | null = null
  #helia: Helia | null = null
  #chain = new MemoryChain()
  #sync: HeaderSync | null = null
  readonly #feeds = new Map<string, { close(): void; wake(): void }>()
  readonly #syncing = new Set<string>()
  #phase: SyncState['phase'] = 'starting'
  /** The chat view is open (prepareChat): start a backend for the model as soon as it is known. */
  #wantChat = false
  #prepared: { readonly key: string; readonly ready: Promise<StartedBackend> } | null = null
  /** When the current sync began, and how long it took to reach `live` the first time. */
  #syncStartedAt = 0
  #liveMs: number | null = null
  #error: string | null = null
  #started: Promise<ClientStatus> | null = null
  /** What a CID is, for naming it when a relay lies about it. */
  readonly #labels = new Map<string, string>()
  readonly #statusListeners = new Set<(s: ClientStatus) => void>()
  readonly #blockListeners = new Set<(b: BlockSummary) => void>()
  /** Resolvers waiting for the next change of chain state (a chat waiting for a model). */
  #waiters: (() => void)[] = []
  #statusTimer: ReturnType<typeof setTimeout> | null = null
  #saveTimer: ReturnType<typeof setTimeout> | null = null
  #run: Run | null = null
  #chat: AbortController | null = null
  #progress: ((p: ChatProgress) => void) | null = null
  /** The block a chat is loading, for naming it in a failure. */
  #loading: string | null = null
  /** Chain B payload indexes read for the explorer (payload CID -> index). */
  readonly #payloadIndexes = new Map<string, PayloadIndex | null>()
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
    const relays = overrides.relays !== undefined && overrides.relays.length > 0 ? overrides.relays : stored.relays.length > 0 ? stored.relays : this.#env.defaultRelays
    this.#settings = { ...stored, ...overrides, relays }
    if (overrides.trustAnchor !== undefined && overrides.trustAnchor !== stored.trustAnchor) await this.#env.settings.save({ ...stored, trustAnchor: overrides.trustAnchor })
    this.#caches = await this.#env.openCaches(this.#settings.cacheBudgetBytes)
    this.#relays = new RelaySet(relays, this.#env.fetch)
    this.#relays.onChange(() => this.#changed())
    this.#helia = await createLightNode({
      relays: this.#relays,
      blockstore: this.#caches.blockstore,
      sha256: (bytes) => this.#env.pool.sha256(bytes),
      labelOf: (cid) => this.#labels.get(cid.toString())
    })
    await this.#restart()
    return this.status()
  }

  /** (Re)build the chain from the header cache, then follow every relay. */
  async #restart(): Promise<void> {
    for (const feed of this.#feeds.values()) feed.close()
    this.#feeds.clear()
    this.#chain = new MemoryChain()
    this.#payloadIndexes.clear()
    this.#dropRun()
    const settings = this.#need(this.#settings)
    this.#sync = new HeaderSync({
      chain: this.#chain,
      pool: this.#env.pool,
      getBlock: (cid, what, signal) => this.#block(cid, what, signal),
      anchor: settings.trustAnchor,
      onAnchor: (cid) => void this.#pin(cid),
      onAccepted: (block) => this.#accepted(block),
      onRejected: () => this.#changed(),
      onFinalized: (_checkpoint, bytes) => this.#finalized(bytes)
    })
    this.#phase = 'starting'
    this.#syncStartedAt = performance.now()
    this.#liveMs = null
    await this.#warmStart()
    for (const url of this.#need(this.#relays).urls) this.#follow(url)
    this.#changed()
  }

  /** Re-validate what an earlier visit accepted, from the header cache alone (no network). */
  async #warmStart(): Promise<void> {
    const sync = this.#need(this.#sync)
    const stored = await this.#env.settings.loadSync()
    if (stored.accepted.length === 0) return
    if (stored.anchor !== null && sync.anchor !== null && stored.anchor !== sync.anchor) return
    const caches = this.#need(this.#caches)
    const offered = []
    for (const cid of stored.accepted) {
      const bytes = await localBlock(caches, CID.parse(cid))
      if (bytes !== undefined) offered.push({ cid, bytes, source: 'cache' })
    }
    try {
      await sync.ingest(offered)
    } catch (e) {
      // A document missing from the cache and no relay yet: the live sync fetches it.
      this.#error = null
      void e
    }
    // Then the checkpoints, judged again by the rules: finality survives a reload without network.
    for (const [number, cid] of stored.checkpoints.entries()) {
      const bytes = await localBlock(caches, CID.parse(cid))
      if (bytes === undefined) break
      sync.offerCheckpointBytes(number, bytes, 'cache')
    }
  }

  /** Open a relay's feed; each (re)connect syncs what was missed. */
  #follow(url: string): void {
    const relays = this.#need(this.#relays)
    const feed = openFeed(url, {
      onOpen: () => {
        relays.markUp(url)
        void this.#syncFrom(url)
      },
      onHeader: (entry) => {
        const sync = this.#sync
        if (sync === null) return
        sync.offer(entry, url).then(() => this.#changed(), () => this.#changed())
      },
      onCheckpoint: (entry) => {
        this.#sync?.offerCheckpoint(entry, url)
        this.#changed()
      },
      onDown: (reason, retryAt) => {
        relays.markDown(url, reason, retryAt)
        this.#changed()
      }
    }, { ...(this.#env.WebSocket === undefined ? {} : { WebSocket: this.#env.WebSocket }), backoff: this.#env.backoff ?? DEFAULT_BACKOFF })
    this.#feeds.set(url, feed)
  }

  async #syncFrom(url: string): Promise<void> {
    const relays = this.#need(this.#relays)
    const sync = this.#need(this.#sync)
    this.#syncing.add(url)
    this.#changed()
    try {
      await sync.syncRelay(relays.client(url))
      this.#error = null
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

  async #pin(cid: string): Promise<void> {
    const settings = this.#need(this.#settings)
    this.#settings = { ...settings, trustAnchor: cid }
    const stored = await this.#env.settings.load()
    await this.#env.settings.save({ ...stored, trustAnchor: cid })
    this.#changed()
  }

  #accepted(block: AcceptedBlock): void {
    void this.#caches?.headers.put(block.cid, block.bytes).catch(() => undefined)
    if (this.#phase === 'live') {
      const summary = this.#final(summarize(block, this.#chain.paramIndex()), block)
      for (const l of this.#blockListeners) l(summary)
    }
    this.#saveSoon()
    this.#changed()
  }

  /** A checkpoint this page verified: kept in the header cache (by its CID) for the next reload; finality changed what pages show. */
  #finalized(bytes: Uint8Array): void {
    void this.#caches?.headers.put(cidOf(bytes, DAG_CBOR), bytes).catch(() => undefined)
    this.#saveSoon()
    this.#changed()
  }

  #saveSoon(): void {
    if (this.#saveTimer !== null) return
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = null
      void this.#saveNow()
    }, 200)
  }

  /** Write the sync state (what a reload replays) now. */
  #saveNow(): Promise<void> {
    const state: StoredSyncState = {
      anchor: this.#sync?.anchor ?? null,
      accepted: this.#chain.blocks().map((b) => b.cid.toString()),
      checkpoints: this.#chain.checkpoints().map((c) => cidOf(c.bytes, DAG_CBOR).toString())
    }
    return this.#env.settings.saveSync(state).catch(() => undefined)
  }

  /** A summary (or detail) with its finality by this page's own checkpoints. */
  #final<T extends BlockSummary>(summary: T, block: AcceptedBlock | undefined = this.#chain.get(CID.parse(summary.cid))): T {
    return block === undefined ? summary : withFinality(summary, block, (b) => this.#chain.isFinal(b))
  }

  /** Stop everything (tests; the worker lives as long as the page). */
  async close(): Promise<void> {
    this.#chat?.abort()
    for (const feed of this.#feeds.values()) feed.close()
    this.#feeds.clear()
    if (this.#statusTimer !== null) clearTimeout(this.#statusTimer)
    if (this.#saveTimer !== null) {
      // A save was due: do it now, so what this page verified last is what the next load replays.
      clearTimeout(this.#saveTimer)
      this.#saveTimer = null
      await this.#saveNow()
    }
    this.#dropRun()
    this.#releasePrepared()
    await this.#caches?.flush()
    await this.#helia?.stop()
  }

  // ---------------------------------------------------------------------------- status

  async status(): Promise<ClientStatus> {
    const caches = this.#caches
    if (caches !== null) this.#cacheUsage = await caches.usage()
    return this.#snapshot()
  }

  #snapshot(): ClientStatus {
    const heads = {} as Record<ChainId, { height: number; cid: string } | null>
    for (const chain of ['A', 'C', 'D'] as const) {
      const h = this.#chain.head(chain)
      heads[chain] = h === undefined ? null : { height: h.header.index, cid: h.cid.toString() }
    }
    const b = this.#chain.blocks('B')
    const top = b.reduce<AcceptedBlock | null>((m, x) => (m === null || x.header.index > m.header.index ? x : m), null)
    heads.B = top === null ? null : { height: top.header.index, cid: top.cid.toString() }
    const checkpoint = this.#chain.checkpoint()
    const finalHead = (cid: CID | null): HeadInfo | null => {
      const b = cid === null ? undefined : this.#chain.get(cid)
      return b === undefined ? null : { height: b.header.index, cid: b.cid.toString() }
    }
    const finality = checkpoint === null ? null : { number: checkpoint.number, heads: { A: finalHead(checkpoint.heads.A), C: finalHead(checkpoint.heads.C), D: finalHead(checkpoint.heads.D) } }
    return {
      relays: this.#relays?.states() ?? [],
      sync: {
        phase: this.#phase,
        anchor: this.#sync?.anchor ?? this.#settings?.trustAnchor ?? null,
        heads,
        verified: this.#chain.size,
        rejected: [...(this.#sync?.rejected ?? [])],
        error: this.#error,
        liveMs: this.#liveMs,
        finality
      },
      cache: this.#cacheUsage ?? { tileBytes: 0, tileBlocks: 0, budgetBytes: this.#settings?.cacheBudgetBytes ?? 0, headerBytes: 0, headerBlocks: 0, quotaBytes: null, error: null },
      backend: this.#run?.info ?? null
    }
  }

  async onStatus(listener: (status: ClientStatus) => void): Promise<void> {
    this.#statusListeners.add(listener)
    listener(await this.status())
  }

  async onBlock(listener: (block: BlockSummary) => void): Promise<void> {
    this.#blockListeners.add(listener)
  }

  /** Something changed: recompute the phase, wake waiters, tell listeners soon. */
  #changed(): void {
    const relays = this.#relays?.states() ?? []
    if (this.#syncing.size > 0) this.#phase = 'syncing'
    else if (relays.some((r) => r.health === 'up')) this.#phase = 'live'
    else if (relays.length > 0 && relays.every((r) => r.health === 'down' || r.health === 'wrong-network')) this.#phase = 'offline'
    if (this.#phase === 'live') {
      if (this.#liveMs === null && this.#syncStartedAt > 0) this.#liveMs = performance.now() - this.#syncStartedAt
      this.#prepare()
    }
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
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
    const before = this.#need(this.#settings)
    const next: Settings = { ...before, ...patch }
    this.#settings = await this.#env.settings.save(next)
    if (patch.cacheBudgetBytes !== undefined && patch.cacheBudgetBytes !== before.cacheBudgetBytes) await this.#need(this.#caches).setBudget(patch.cacheBudgetBytes)
    if (patch.backend !== undefined && patch.backend !== before.backend) {
      this.#dropRun()
      this.#releasePrepared()
      this.#prepare()
    }
    const relaysChanged = patch.relays !== undefined && patch.relays.join('\n') !== before.relays.join('\n')
    const anchorChanged = patch.trustAnchor !== undefined && patch.trustAnchor !== before.trustAnchor
    if (relaysChanged) this.#need(this.#relays).set(next.relays.length > 0 ? next.relays : this.#env.defaultRelays)
    if (relaysChanged || anchorChanged) await this.#restart()
    return this.status()
  }

  // ---------------------------------------------------------------------------- blocks

  /**
   * Verified bytes of a block: the cache, else a relay (checked by Helia with the verify pool).
   * With `counters`, tiles are counted as fetched or cached for the chat's progress.
   */
  async #block(cid: CID, what: string, signal?: AbortSignal, counters?: Counters): Promise<Uint8Array> {
    const helia = this.#need(this.#helia)
    const key = cid.toString()
    const local = counters === undefined ? false : await this.#need(this.#caches).blockstore.has(cid)
    this.#labels.set(key, what)
    let bytes: Uint8Array
    try {
      bytes = await heliaBlock(helia, cid, signal)
    } catch (e) {
      throw unavailable(e) ?? e
    } finally {
      this.#labels.delete(key)
    }
    if (counters !== undefined && cid.code === RAW) {
      if (local) counters.cachedTiles++
      else {
        counters.fetchedTiles++
        counters.fetchedBytes += bytes.length
      }
    }
    return bytes
  }

  // ---------------------------------------------------------------------------- chat

  /** The model chain A and the page's own param index describe, or why there is none yet. */
  #model(): Model | string {
    const m = chainModel(this.#chain)
    if ('missing' in m) return m.missing
    return { source: m, meta: m.meta, key: m.key, names: new Map([...m.blocks.values()].map((b) => [b.payload.toString(), b.name])) }
  }

  async #waitModel(signal: AbortSignal): Promise<Model> {
    const deadline = Date.now() + MODEL_WAIT_MS
    for (;;) {
      const m = this.#model()
      if (typeof m !== 'string') return m
      const settled = this.#phase === 'live' || this.#phase === 'offline'
      if ((settled && this.#syncing.size === 0 && this.#chain.size > 0) || Date.now() > deadline) throw new ModelUnavailableError(m, this.#phase)
      signal.throwIfAborted()
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000)
        this.#waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }

  #dropRun(): void {
    this.#run?.engine.destroy()
    this.#run = null
  }

  /** Start a backend and compile its kernels (warmUp) without waiting: weights download meanwhile. */
  #startBackend(choice: BackendChoice, arch: Architecture): Promise<StartedBackend> {
    return this.#env.createBackend(choice, arch).then((b) => {
      // A compile error here comes back from loadShared, with the weights' context: nothing to report twice.
      void b.backend.warmUp?.().catch(() => undefined)
      return b
    })
  }

  /** The backend prepareChat started if it fits, else a new one (one that does not fit is released). */
  #takeBackend(choice: BackendChoice, arch: Architecture): Promise<StartedBackend> {
    const p = this.#prepared
    this.#prepared = null
    if (p !== null && p.key === backendKey(choice, arch)) return p.ready
    if (p !== null) void p.ready.then((b) => b.backend.destroy(), () => undefined)
    return this.#startBackend(choice, arch)
  }

  #releasePrepared(): void {
    const p = this.#prepared
    this.#prepared = null
    if (p !== null) void p.ready.then((b) => b.backend.destroy(), () => undefined)
  }

  /**
   * The chat view is open and the model known: start its backend now (device, buffers, kernels; no
   * weights are fetched), so the first answer does not wait for it. Once per model and backend choice.
   */
  #prepare(): void {
    if (!this.#wantChat || this.#run !== null || this.#prepared !== null || this.#chat !== null || this.#settings === null) return
    const model = this.#model()
    if (typeof model === 'string') return
    const choice = this.#settings.backend
    const ready = this.#startBackend(choice, model.source.architecture)
    const prepared = { key: backendKey(choice, model.source.architecture), ready }
    this.#prepared = prepared
    // A failure is not reported here: the first answer starts the backend again and says why.
    ready.catch(() => {
      if (this.#prepared === prepared) this.#prepared = null
    })
  }

  #tileSource(model: Model, counters: () => Counters | undefined): TileSource {
    const stats: TileStats = { tiles: 0, blocks: 0, bytes: 0 }
    return {
      stats,
      payload: async (root, size, options = {}) => {
        const name = model.names.get(root.toString()) ?? 'a parameter block'
        this.#loading = name
        const c = counters()
        const progress = (phase: ChatProgress['phase']): void => {
          if (c === undefined) return
          this.#progress?.({ phase, block: name, bytes: c.fetchedBytes, tiles: c.fetchedTiles, cachedTiles: c.cachedTiles, totalBytes: size })
        }
        progress('fetch')
        const signal = options.signal ?? this.#chat?.signal
        const bytes = await fetchUnixfsFile(root, size, async (cid, s) => {
          const b = await this.#block(cid, `${cid.code === RAW ? 'a tile' : 'a node'} of ${name}`, s, c)
          progress('fetch')
          return b
        }, { getBlockVerifies: true, counts: stats, ...(signal === undefined ? {} : { signal }) })
        progress('load')
        this.#loading = null
        return bytes
      }
    }
  }

  async #runFor(model: Model, choice: BackendChoice, counters: () => Counters | undefined): Promise<Run> {
    const key = `${model.key}|${choice}`
    if (this.#run !== null && this.#run.key === key) return this.#run
    this.#dropRun()
    const t = model.meta.tokenizer
    if (t === null) throw new ModelUnavailableError('chain A links no tokenizer: text cannot be turned into tokens', this.#phase)
    this.#loading = 'the tokenizer'
    const c = counters()
    const arch = model.source.architecture
    // The tokenizer comes over the network while the backend starts (device, buffers, kernels): neither waits for the other.
    const started = performance.now()
    let backendMs = 0
    const backendReady = this.#takeBackend(choice, arch).then((b) => {
      backendMs = performance.now() - started
      return b
    })
    const tokenizerReady = fetchUnixfsFile(t.payload, t.size, (cid, s) => this.#block(cid, 'a block of the tokenizer', s, c), { getBlockVerifies: true })
    const [tokFile, created] = await Promise.allSettled([tokenizerReady, backendReady])
    if (created.status === 'rejected') throw created.reason
    const { backend, info } = created.value
    if (tokFile.status === 'rejected') {
      backend.destroy()
      throw tokFile.reason
    }
    const tokenizer = createTokenizer(t.format, tokFile.value, arch.vocab_size, t.bos_id, t.eos_id)
    this.#loading = null
    let engine: Engine
    try {
      engine = await Engine.create(model.source, backend, this.#tileSource(model, counters))
    } catch (e) {
      backend.destroy()
      throw e
    }
    this.#run = { key, engine, tokenizer, info, setup: { backendMs, sharedMs: performance.now() - started - backendMs } }
    return this.#run
  }

  async prepareChat(): Promise<void> {
    this.#wantChat = true
    this.#prepare()
  }

  async chat(prompt: string, sampling: Sampling, onEvent: (event: ChatEvent) => void): Promise<{ ok: true; result: ChatResult } | { ok: false; failure: ChatFailure }> {
    if (this.#chat !== null) return { ok: false, failure: { code: 'BUSY', message: 'an answer is being written: stop it first', expert: null, relays: [] } }
    const controller = new AbortController()
    this.#chat = controller
    const counters: Counters = { fetchedTiles: 0, fetchedBytes: 0, cachedTiles: 0 }
    this.#progress = (progress) => onEvent({ type: 'progress', progress })
    const tokens: number[] = []
    let text = ''
    const started = performance.now()
    let firstTokenMs = 0
    let info: BackendInfo | null = null
    try {
      this.#progress({ phase: 'sync', block: null, bytes: 0, tiles: 0, cachedTiles: 0, totalBytes: null })
      const model = await this.#waitModel(controller.signal)
      const run = await this.#runFor(model, this.#need(this.#settings).backend, () => (this.#chat === controller ? counters : undefined))
      info = run.info
      onEvent({ type: 'backend', backend: run.info })
      this.#changed()
      const c = await complete(run.engine, run.tokenizer, {
        prompt,
        maxTokens: sampling.maxTokens,
        temperature: sampling.temperature,
        topP: sampling.topP,
        seed: sampling.seed,
        signal: controller.signal,
        onToken: (id, piece) => {
          if (tokens.length === 0) firstTokenMs = performance.now() - started
          tokens.push(id)
          text += piece
          onEvent({ type: 'token', id, text: piece })
        }
      })
      const experts: UsedExpertInfo[] = c.experts.map((e) => {
        const block = this.#chain.get(CID.parse(e.cid))
        return { name: e.name, layer: e.layer, expert: e.expert, cid: e.cid, version: block?.expertVersion ?? 0, pol: block === undefined ? 'none' : summarize(block, this.#chain.paramIndex()).pol }
      })
      return {
        ok: true,
        result: {
          text: c.text,
          tokens: c.tokens,
          experts,
          backend: run.info,
          finish: c.finish,
          stats: { promptTokens: c.stats.promptTokens, generatedTokens: c.stats.generatedTokens, tokensPerSecond: c.stats.tokensPerSecond, firstTokenMs, setup: takeSetup(run), ...counters }
        }
      }
    } catch (e) {
      if (controller.signal.aborted && info !== null) {
        return { ok: true, result: { text, tokens, experts: [], backend: info, finish: 'stopped', stats: { promptTokens: 0, generatedTokens: tokens.length, tokensPerSecond: 0, firstTokenMs, setup: NO_SETUP, ...counters } } }
      }
      if (e instanceof DeviceLostError) this.#dropRun()
      return { ok: false, failure: this.#failure(e) }
    } finally {
      this.#chat = null
      this.#progress = null
      this.#loading = null
      this.#changed()
    }
  }

  #failure(e: unknown): ChatFailure {
    const loading = this.#loading
    const u = unavailable(e)
    if (u !== null) {
      const expert = loading ?? u.what
      if (u.lied.length > 0) {
        return {
          code: CID.parse(u.cid).code === RAW ? 'E_TILE' : 'E_CID',
          message: `${u.what ?? 'a block'} (${u.cid}): every relay that has it served bytes that do not match its CID (${u.lied.join(', ')} lied). Blyan does not run weights it cannot verify, so ${expert ?? 'this block'} was not run.`,
          expert,
          relays: u.lied
        }
      }
      return { code: 'UNAVAILABLE', message: u.message, expert, relays: [] }
    }
    if (isRuleError(e)) return { code: e.code, message: `${loading ?? 'a block'} failed a rule: ${e.message}`, expert: loading, relays: [] }
    if (e instanceof ModelUnavailableError) return { code: 'NO_MODEL', message: e.message, expert: null, relays: [] }
    return { code: 'ERROR', message: e instanceof Error ? e.message : String(e), expert: loading, relays: [] }
  }

  async stop(): Promise<void> {
    this.#chat?.abort()
  }

  // ---------------------------------------------------------------------------- explorer

  async listBlocks(chain: ChainId, limit: number, before?: number): Promise<BlockSummary[]> {
    return listBlocks(this.#chain.blocks(), this.#chain.paramIndex(), chain, limit, before).map((s) => this.#final(s))
  }

  async search(query: string): Promise<BlockSummary[]> {
    return searchBlocks(query, this.#chain.blocks(), this.#chain.paramIndex()).map((s) => this.#final(s))
  }

  async block(cid: string): Promise<BlockPage | null> {
    let c: CID
    try {
      c = CID.parse(cid)
    } catch {
      return null
    }
    const block = this.#chain.get(c)
    if (block === undefined) return null
    const payloadIndex = block.header.chain_id === 'B' ? await this.#payloadIndex(block) : null
    const all = this.#chain.blocks()
    return Object.freeze({ ...this.#final(detail(block, this.#chain.paramIndex(), all, payloadIndex), block), ...polLinks(block, all) })
  }

  async datasetRecord(cid: string): Promise<DatasetRecordFile> {
    let c: CID
    try {
      c = CID.parse(cid)
    } catch {
      return { ok: false, code: 'not-found', message: `not a CID: ${cid}` }
    }
    const block = this.#chain.get(c)
    if (block === undefined || block.header.chain_id !== 'D') return { ok: false, code: 'not-found', message: `no chain D block ${cid} in this page's verified chain` }
    // The record's CID and size are the verified document's: a relay's word is not taken for them.
    const doc = block.document as DatasetDocument
    if (doc.record === undefined || doc.record_size === undefined) return { ok: false, code: 'no-record', message: `dataset ${doc.name} links no training record` }
    const root = doc.record
    const size = doc.record_size
    if (size > MAX_RECORD_BYTES) return { ok: false, code: 'too-large', message: `the record is ${size} bytes, more than the ${MAX_RECORD_BYTES} the explorer reads` }
    let bytes: Uint8Array
    try {
      bytes = await fetchUnixfsFile(root, size, (x, signal) => this.#block(x, `a block of the training record of ${doc.name}`, signal), {
        getBlockVerifies: true,
        signal: AbortSignal.timeout(RECORD_TIMEOUT_MS)
      })
    } catch (e) {
      if (isRuleError(e)) return { ok: false, code: 'invalid', message: `the record file ${root} fails a check against its CID and the document's record_size: ${e.message}` }
      const gone = unavailable(e)
      if (gone !== null) return { ok: false, code: 'unavailable', message: gone.message }
      const timedOut = e instanceof Error && e.name === 'TimeoutError'
      return { ok: false, code: 'unavailable', message: timedOut ? `no relay served the record ${root} within ${RECORD_TIMEOUT_MS / 1000} s` : `the record ${root} could not be fetched: ${e instanceof Error ? e.message : String(e)}` }
    }
    try {
      return { ok: true, cid: root.toString(), size, bytes, record: parseGenesisRecord(bytes) }
    } catch (e) {
      if (e instanceof RecordError) return { ok: false, code: 'not-a-record', message: `the file ${root} matches its CID, but it is ${e.message}` }
      throw e
    }
  }

  async currentExperts(): Promise<Record<string, { cid: string; version: number }>> {
    const out: Record<string, { cid: string; version: number }> = {}
    for (const [name, b] of this.#chain.paramIndex()) out[name] = { cid: b.cid.toString(), version: b.expertVersion }
    return out
  }

  async rejections(limit: number): Promise<RejectionList> {
    const n = Math.max(1, Math.min(Math.trunc(limit) || 100, 1000))
    const errors: string[] = []
    for (const url of this.#relayOrder()) {
      try {
        const body = (await this.#relayJson(url, `/api/rejections?limit=${n}`)) as { rejections?: unknown }
        if (!Array.isArray(body.rejections)) throw new Error('the answer has no rejections list')
        return { relay: url, rejections: body.rejections.map(rejectionFrom).filter((r): r is RejectionInfo => r !== null), error: null }
      } catch (e) {
        errors.push(`${url}: ${e instanceof Error ? e.message : String(e)}`)
      }
    }
    return { relay: null, rejections: [], error: errors.length === 0 ? 'no relay is configured' : errors.join('; ') }
  }

  async rejectionOf(cid: string): Promise<(RejectionInfo & { relay: string }) | null> {
    for (const url of this.#relayOrder()) {
      try {
        const body = (await this.#relayJson(url, `/api/blocks/${encodeURIComponent(cid)}`)) as { status?: unknown; rejection?: unknown }
        const r = body.status === 'rejected' ? rejectionFrom(body.rejection) : null
        if (r !== null) return { ...r, relay: url }
      } catch {
        continue
      }
    }
    return null
  }

  /** Relays to ask for reports (rejections): those up first. */
  #relayOrder(): string[] {
    const states = this.#relays?.states() ?? []
    return [...states.filter((r) => r.health === 'up'), ...states.filter((r) => r.health !== 'up' && r.health !== 'wrong-network')].map((r) => r.url)
  }

  async #relayJson(url: string, path: string): Promise<unknown> {
    const fetchImpl = this.#env.fetch ?? globalThis.fetch.bind(globalThis)
    const res = await fetchImpl(`${url}${path}`, { cache: 'no-store' })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    return res.json()
  }

  /** A chain B block's tensor index, from its first tile (verified); null when it cannot be had. */
  async #payloadIndex(block: AcceptedBlock): Promise<PayloadIndex | null> {
    const key = block.header.payload.toString()
    if (this.#payloadIndexes.has(key)) return this.#payloadIndexes.get(key) ?? null
    let index: PayloadIndex | null = null
    try {
      const path = await extractTilePath(block.header.payload, 0, (cid) => this.#block(cid, `a tile of ${block.header.expert_name ?? key}`))
      index = decodePayloadIndex(path.blocks[path.blocks.length - 1] as Uint8Array)
    } catch {
      index = null
    }
    this.#payloadIndexes.set(key, index)
    return index
  }

  async dag(): Promise<DagView> {
    return dagView(this.#chain.blocks(), this.#chain.paramIndex())
  }

  async verify(cid: string, tile: number | null, onStep?: (step: VerifyStep) => void): Promise<VerifyReport> {
    const c = CID.parse(cid)
    const block = this.#chain.get(c)
    const headerBytes = block?.bytes ?? (await this.#untrusted(c))
    return verifyBlock({
      cid: c,
      headerBytes,
      view: this.#chain,
      anchor: this.#sync?.anchor ?? null,
      getBlock: (x) => this.#untrusted(x),
      tile,
      now: Date.now()
    }, onStep)
  }

  /**
   * Bytes for the explorer's re-check, deliberately unverified: the cache's copy, else the first
   * relay that has the block. verifyBlock checks every one against its CID itself.
   */
  async #untrusted(cid: CID): Promise<Uint8Array> {
    const local = await localBlock(this.#need(this.#caches), cid)
    if (local !== undefined) return local
    for (const relay of this.#need(this.#relays).usable()) {
      try {
        const bytes = await relay.block(cid.toString())
        if (bytes !== null) return bytes
      } catch {
        continue
      }
    }
    throw new Error(`no relay has ${cid}`)
  }

  async clearCache(): Promise<CacheUsage> {
    await this.#need(this.#caches).clear()
    await this.#env.settings.saveSync({ anchor: this.#sync?.anchor ?? null, accepted: [], checkpoints: [] })
    this.#payloadIndexes.clear()
    const s = await this.status()
    this.#changed()
    return s.cache
  }

  #need<T>(x: T | null): T {
    if (x === null) throw new Error('the client is not started: call start() first')
    return x
  }
}

/** No complete model could be had from sync. */
export class ModelUnavailableError extends Error {
  override readonly name = 'ModelUnavailableError'
  constructor(reason: string, phase: SyncState['phase']) {
    super(phase === 'offline' ? `${reason}: no relay can be reached` : `${reason}: the chain is not (yet) complete on the relays`)
  }
}

/** A block from the caches only (no network), or undefined. */
async function localBlock(caches: Caches, cid: CID): Promise<Uint8Array | undefined> {
  if (!(await caches.blockstore.has(cid))) return undefined
  const chunks: Uint8Array[] = []
  for await (const c of caches.blockstore.get(cid)) chunks.push(c)
  if (chunks.length === 1) return chunks[0]
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}

/** A rejection from a relay's JSON (`/api/rejections`, `/api/blocks/<cid>`), or null when it is not one. */
function rejectionFrom(raw: unknown): RejectionInfo | null {
  if (typeof raw !== 'object' || raw === null) return null
  const r = raw as Record<string, unknown>
  const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null)
  const code = str(r['code'])
  const at = r['at']
  if (code === null || typeof at !== 'number') return null
  return Object.freeze({
    cid: str(r['cid']),
    code,
    rule: (RULES as Record<string, string>)[code] ?? null,
    field: str(r['field']),
    message: typeof r['message'] === 'string' ? withoutCode(r['message'], code) : '',
    at,
    chain: str(r['chain']),
    blockType: str(r['blockType']) ?? str(r['block_type'])
  })
}

/** A RuleError's message starts with its code and field (`E_X (field): ...`), which the list shows beside it. */
function withoutCode(message: string, code: string): string {
  if (!message.startsWith(code)) return message
  const rest = message.slice(code.length)
  const m = /^( \([^)]*\))?: /.exec(rest)
  return m === null ? message : rest.slice(m[0].length)
}

/**
 * PoL links of a block within the page's chain: a certified chain B version's reward (the chain C
 * block whose `pol` is its certificate), and a reward's certified version.
 */
function polLinks(block: AcceptedBlock, all: readonly AcceptedBlock[]): Pick<BlockPage, 'reward' | 'rewardFor'> {
  const h = block.header
  if (h.chain_id === 'B' && block.certificate !== null) {
    const cert = block.certificate.cid
    const reward = all.find((b) => b.header.chain_id === 'C' && b.header.pol?.equals(cert) === true)
    if (reward === undefined) return { reward: null, rewardFor: null }
    const doc = reward.document as LedgerDocument | null
    return { reward: { cid: reward.cid.toString(), amount: doc?.amount ?? null, to: doc === null ? null : toHex(doc.to) }, rewardFor: null }
  }
  if (h.chain_id === 'C' && h.pol !== null) {
    const pol = h.pol
    const certified = all.find((b) => b.header.chain_id === 'B' && b.certificate?.cid.equals(pol) === true)
    return { reward: null, rewardFor: certified?.cid.toString() ?? null }
  }
  return { reward: null, rewardFor: null }
}
