/**
 * The chat: answers from the engine on the model the page's own verified chain names.
 *
 * A run (engine, backend, tokenizer) is kept per model and backend choice; a new model (a newer
 * certified version, a new rules block) or another backend choice starts a new one. When the chat
 * view opens (`want`), the backend is started and its kernels compiled before the first prompt,
 * while weights stay unfetched. Weights reach the GPU as network -> verify -> engine -> backend: the
 * engine fetches through the tile source (the page's verified block getter) and reports each block
 * as it arrives, which is all the progress bar needs.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { RAW } from '../codec/cbor.ts'
import type { Architecture, MetaDocument } from '../chain/meta.ts'
import { complete } from '../engine/complete.ts'
import { Engine, type LoadEvent } from '../engine/engine.ts'
import { DeviceLostError, type Backend, type BlockArrival } from '../engine/interface.ts'
import { createTileSource } from '../engine/tile-source.ts'
import { isRuleError } from '../errors.ts'
import { summarize } from '../explorer/summaries.ts'
import { chainModel, type ChainModel } from '../model/source.ts'
import { createTokenizer, type Tokenizer } from '../model/tokenizer/index.ts'
import { unavailable, type PageBlocks } from '../net/blocks.ts'
import { fetchUnixfsFile } from '../tensor/tiles.ts'
import type { BackendChoice, BackendInfo, ChatEvent, ChatFailure, ChatProgress, ChatRequest, ChatResult, SyncState, UsedExpertInfo } from './api.ts'
import { drawSeed, fitConversation, tidyAnswer, unreadContext, type FittedConversation } from './conversation.ts'
import type { ChainFollower } from './follower.ts'

/** How long a chat waits for sync to produce a complete model before it gives up. */
const MODEL_WAIT_MS = 60_000

/** No complete model could be had from sync. */
export class ModelUnavailableError extends Error {
  override readonly name = 'ModelUnavailableError'
  constructor(reason: string, phase: SyncState['phase']) {
    super(phase === 'offline'
      ? `Cannot reach a relay, and this page has no verified model of its own yet (${reason}). The page keeps retrying the relays (see the status bar); ask again once one answers.`
      : `${reason}: the chain is not (yet) complete on the relays`)
  }
}

export interface ChatRunnerOptions {
  readonly blocks: PageBlocks
  /** An engine backend for the choice; `fallback` in the info says why it is not the one asked for. */
  readonly createBackend: (choice: BackendChoice, arch: Architecture) => Promise<{ backend: Backend; info: BackendInfo }>
  /** The backend the settings choose now. */
  readonly choice: () => BackendChoice
  /** The page's chain now (the client replaces its follower when relays or the anchor change). */
  readonly follower: () => ChainFollower
  /** A run started or ended: the status shows its backend. */
  readonly onChange: () => void
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

/** Network and cache counts of one answer. */
interface Counters {
  fetchedTiles: number
  fetchedBytes: number
  cachedTiles: number
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

/** Counts a block that arrived: tiles (raw leaves) over the network, with their bytes, or from the cache. */
function count(c: Counters, arrival: BlockArrival): void {
  if (arrival.cid.code !== RAW) return
  if (arrival.from === 'cache') c.cachedTiles++
  else {
    c.fetchedTiles++
    c.fetchedBytes += arrival.bytes
  }
}

export class ChatRunner {
  readonly #options: ChatRunnerOptions
  /** The chat view is open (want): start a backend for the model as soon as it is known. */
  #wanted = false
  #prepared: { readonly key: string; readonly ready: Promise<StartedBackend> } | null = null
  #run: Run | null = null
  #chat: AbortController | null = null
  /** The block a chat is loading, for naming it in a failure. */
  #loading: string | null = null

  constructor(options: ChatRunnerOptions) {
    this.#options = options
  }

  /** The backend of the current run, once a chat has started one. */
  get backend(): BackendInfo | null {
    return this.#run?.info ?? null
  }

  /** The chat view is open: start the backend once the model is known. */
  want(): void {
    this.#wanted = true
    this.prepare()
  }

  /**
   * The chat view is open and the model known: start its backend now (device, buffers, kernels; no
   * weights are fetched), so the first answer does not wait for it. Once per model and backend choice.
   */
  prepare(): void {
    if (!this.#wanted || this.#run !== null || this.#prepared !== null || this.#chat !== null) return
    const model = chainModel(this.#options.follower().chain)
    if ('missing' in model) return
    const choice = this.#options.choice()
    const ready = this.#startBackend(choice, model.architecture)
    const prepared = { key: backendKey(choice, model.architecture), ready }
    this.#prepared = prepared
    // A failure is not reported here: the first answer starts the backend again and says why.
    ready.catch(() => {
      if (this.#prepared === prepared) this.#prepared = null
    })
  }

  /** The chain was rebuilt: the run's model may be gone. */
  dropRun(): void {
    this.#run?.engine.destroy()
    this.#run = null
  }

  /** Another backend was chosen: end the run and the prepared backend, and prepare the new one. */
  changeBackend(): void {
    this.dropRun()
    this.#releasePrepared()
    this.prepare()
  }

  stop(): void {
    this.#chat?.abort()
  }

  close(): void {
    this.stop()
    this.dropRun()
    this.#releasePrepared()
  }

  async chat(request: ChatRequest, onEvent: (event: ChatEvent) => void): Promise<{ ok: true; result: ChatResult } | { ok: false; failure: ChatFailure }> {
    if (this.#chat !== null) return { ok: false, failure: { code: 'BUSY', message: 'an answer is being written: stop it first', expert: null, relays: [] } }
    const controller = new AbortController()
    this.#chat = controller
    const counters: Counters = { fetchedTiles: 0, fetchedBytes: 0, cachedTiles: 0 }
    const progress = (phase: ChatProgress['phase'], block: string | null = null, totalBytes: number | null = null): void =>
      onEvent({ type: 'progress', progress: { phase, block, bytes: counters.fetchedBytes, tiles: counters.fetchedTiles, cachedTiles: counters.cachedTiles, totalBytes } })
    // What the engine reports as it loads blocks, as this answer's progress.
    const onLoad = (e: LoadEvent): void => {
      if (e.type === 'fetch') {
        this.#loading = e.block.name
        if (e.arrival !== null) count(counters, e.arrival)
        progress('fetch', e.block.name, e.block.payloadSize)
      } else {
        this.#loading = null
        progress('load', e.block.name, e.block.payloadSize)
      }
    }
    const tokens: number[] = []
    let text = ''
    const started = performance.now()
    let firstTokenMs = 0
    let info: BackendInfo | null = null
    let fitted: FittedConversation | null = null
    let window = 0
    const sampling = request.sampling
    const seed = sampling.seed ?? drawSeed()
    try {
      progress('sync')
      const model = await this.#waitModel(controller.signal)
      window = model.architecture.max_seq_len
      const run = await this.#runFor(model, this.#options.choice(), { signal: controller.signal, onLoad }, counters)
      info = run.info
      onEvent({ type: 'backend', backend: run.info })
      this.#options.onChange()
      fitted = fitConversation(run.tokenizer, window, request.history, request.prompt, sampling.maxTokens)
      const c = await complete(run.engine, run.tokenizer, {
        prompt: fitted.tokens,
        maxTokens: fitted.context.maxTokens,
        temperature: sampling.temperature,
        topP: sampling.topP,
        seed,
        signal: controller.signal,
        onLoad,
        onToken: (id, piece) => {
          if (tokens.length === 0) firstTokenMs = performance.now() - started
          tokens.push(id)
          text += piece
          onEvent({ type: 'token', id, text: piece })
        }
      })
      const chain = this.#options.follower().chain
      const experts: UsedExpertInfo[] = c.experts.map((e) => {
        const block = chain.get(CID.parse(e.cid))
        return { name: e.name, layer: e.layer, expert: e.expert, cid: e.cid, version: block?.expertVersion ?? 0, pol: block === undefined ? 'none' : summarize(block, chain.paramIndex()).pol }
      })
      return {
        ok: true,
        result: {
          text: tidyAnswer(c.text, c.finish),
          seed,
          context: fitted.context,
          tokens: c.tokens,
          experts,
          backend: run.info,
          finish: c.finish,
          stats: { promptTokens: c.stats.promptTokens, generatedTokens: c.stats.generatedTokens, tokensPerSecond: c.stats.tokensPerSecond, firstTokenMs, setup: takeSetup(run), ...counters }
        }
      }
    } catch (e) {
      if (controller.signal.aborted && info !== null) {
        const context = fitted?.context ?? unreadContext(window, sampling.maxTokens)
        return { ok: true, result: { text: tidyAnswer(text, 'stopped'), seed, context, tokens, experts: [], backend: info, finish: 'stopped', stats: { promptTokens: 0, generatedTokens: tokens.length, tokensPerSecond: 0, firstTokenMs, setup: NO_SETUP, ...counters } } }
      }
      if (e instanceof DeviceLostError) this.dropRun()
      return { ok: false, failure: this.#failure(e) }
    } finally {
      this.#chat = null
      this.#loading = null
      this.#options.onChange()
    }
  }

  /** The model the page's chain names, once sync has it (ModelUnavailableError when it settles without one). */
  async #waitModel(signal: AbortSignal): Promise<ChainModel> {
    const deadline = Date.now() + MODEL_WAIT_MS
    for (;;) {
      const follower = this.#options.follower()
      const m = chainModel(follower.chain)
      if (!('missing' in m)) return m
      // No relay answers and the page has no model of its own: say so now, not after the wait.
      if (follower.settled || follower.phase === 'offline' || Date.now() > deadline) throw new ModelUnavailableError(m.missing, follower.phase)
      signal.throwIfAborted()
      await follower.nextChange(1000)
    }
  }

  /** Start a backend and compile its kernels (warmUp) without waiting: weights download meanwhile. */
  #startBackend(choice: BackendChoice, arch: Architecture): Promise<StartedBackend> {
    return this.#options.createBackend(choice, arch).then((b) => {
      // A compile error here comes back from loadShared, with the weights' context: nothing to report twice.
      void b.backend.warmUp?.().catch(() => undefined)
      return b
    })
  }

  /** The backend `prepare` started if it fits, else a new one (one that does not fit is released). */
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

  async #runFor(model: ChainModel, choice: BackendChoice, load: { signal: AbortSignal; onLoad: (e: LoadEvent) => void }, counters: Counters): Promise<Run> {
    const key = `${model.key}|${choice}`
    if (this.#run !== null && this.#run.key === key) return this.#run
    this.dropRun()
    const meta: MetaDocument = model.meta
    const t = meta.tokenizer
    if (t === null) throw new ModelUnavailableError('chain A links no tokenizer: text cannot be turned into tokens', this.#options.follower().phase)
    this.#loading = 'the tokenizer'
    const arch = model.architecture
    const blocks = this.#options.blocks
    // The tokenizer comes over the network while the backend starts (device, buffers, kernels): neither waits for the other.
    const started = performance.now()
    let backendMs = 0
    const backendReady = this.#takeBackend(choice, arch).then((b) => {
      backendMs = performance.now() - started
      return b
    })
    const tokenizerReady = fetchUnixfsFile(t.payload, t.size, async (cid, signal) => {
      const b = await blocks.get(cid, 'a block of the tokenizer', signal)
      count(counters, { cid, bytes: b.bytes.length, from: b.from })
      return b.bytes
    }, { getBlockVerifies: true, signal: load.signal })
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
      const tiles = createTileSource((cid, what, signal) => blocks.get(cid, what, signal), { getBlockVerifies: true })
      engine = await Engine.create(model, backend, tiles, load)
    } catch (e) {
      backend.destroy()
      throw e
    }
    this.#run = { key, engine, tokenizer, info, setup: { backendMs, sharedMs: performance.now() - started - backendMs } }
    return this.#run
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
}
