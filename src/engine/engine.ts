/**
 * The engine: runs a backend over weights fetched by CID, loading only the experts the router picks.
 *
 * Shared blocks (embedding, every layer's router block) load once. Each token runs whole on the
 * backend; when the router picks experts that are not resident, the backend says which, the engine
 * fetches and checks exactly those blocks, and the token runs again. Resident experts are kept in an
 * LRU of bounded size. Every byte comes from the TileSource, which verifies it; every payload is then
 * decoded and checked (finite values, shapes of chain A) before any backend sees it.
 *
 * Loads report themselves (LoadEvent: each block as it arrives and where from, then the upload) to
 * whoever asked for the work: `create`'s options for the shared blocks, `generate`'s for the experts
 * a generation needs; both abort through their signal.
 *
 * @module
 */
import { EMBEDDING_NAME, expertName, routerName } from '../chain/header.ts'
import { readBlockTensors } from '../model/weights.ts'
import type { Sampler } from '../model/sampler.ts'
import type { Backend, BlockArrival, BlockRef, BlockTensors, ExpertRef, ForwardResult, ModelSource, TileSource } from './interface.ts'

/**
 * A parameter block loading, for progress bars: its fetch starting (`arrival` null), each of its
 * blocks as it arrives verified, then (`load`) its upload to the backend.
 */
export type LoadEvent =
  | { readonly type: 'fetch'; readonly block: BlockRef; readonly arrival: BlockArrival | null }
  | { readonly type: 'load'; readonly block: BlockRef; readonly bytes: number }

/** Who a load is for: its abort signal and progress listener. */
export interface LoadOptions {
  readonly signal?: AbortSignal
  readonly onLoad?: (event: LoadEvent) => void
}

export interface EngineOptions extends LoadOptions {
  /** Most experts resident at once; beyond it the least recently used is unloaded. Default: every expert. */
  readonly maxResidentExperts?: number
}

export interface EngineStats {
  /** Tokens run through the model (prompt and generated). */
  tokens: number
  /** Milliseconds spent in forward passes (including expert loads). */
  forwardMs: number
  expertsLoaded: number
  expertsEvicted: number
  /** Token runs repeated because an expert was not resident. */
  retries: number
  /** (n_layers, n_experts): how often each expert was used. */
  readonly usage: number[][]
}

/** An expert block a generation used. */
export interface UsedExpert {
  readonly layer: number
  readonly expert: number
  readonly name: string
  readonly cid: string
}

export interface GenerateOptions extends LoadOptions {
  readonly maxTokens: number
  readonly sampler: Sampler
  /** Stop at this token (default: none; pass the tokenizer's EOS, or BOS for llama2.c stories). */
  readonly stopTokens?: readonly number[]
  /** Each generated token as it is sampled. */
  readonly onToken?: (token: number) => void
  /** The logits each generated token was sampled from (for tests and audits). */
  readonly onLogits?: (logits: Float32Array) => void
  /** Stops generating between tokens (the generation so far is returned with finish `stopped`) and aborts loads. */
  readonly signal?: AbortSignal
}

export interface Generation {
  /** Generated ids (not the prompt). */
  readonly tokens: number[]
  /** The expert blocks this generation used. */
  readonly experts: UsedExpert[]
  /** `end` at a stop token, `length` at maxTokens or max_seq_len, `stopped` by the signal. */
  readonly finish: 'end' | 'length' | 'stopped'
  readonly stats: { readonly tokensPerSecond: number; readonly promptTokens: number; readonly generatedTokens: number }
}

export class Engine {
  readonly model: ModelSource
  readonly backend: Backend
  readonly tiles: TileSource
  readonly stats: EngineStats
  readonly #maxResident: number
  readonly #options: EngineOptions
  /** Resident experts, least recently used first (Map keeps insertion order). */
  readonly #resident = new Map<string, ExpertRef>()

  private constructor(model: ModelSource, backend: Backend, tiles: TileSource, options: EngineOptions) {
    const arch = model.architecture
    this.model = model
    this.backend = backend
    this.tiles = tiles
    this.#options = options
    const all = arch.n_layers * arch.n_experts
    const need = arch.n_layers * arch.top_k
    this.#maxResident = options.maxResidentExperts ?? all
    if (!Number.isInteger(this.#maxResident) || this.#maxResident < need) {
      throw new RangeError(`maxResidentExperts: a token needs up to ${need} experts at once (n_layers x top_k), got ${options.maxResidentExperts}`)
    }
    this.stats = { tokens: 0, forwardMs: 0, expertsLoaded: 0, expertsEvicted: 0, retries: 0, usage: Array.from({ length: arch.n_layers }, () => new Array<number>(arch.n_experts).fill(0)) }
  }

  /** Fetch, check and load the shared blocks; the engine is then ready to run. */
  static async create(model: ModelSource, backend: Backend, tiles: TileSource, options: EngineOptions = {}): Promise<Engine> {
    const engine = new Engine(model, backend, tiles, options)
    const names = [EMBEDDING_NAME, ...Array.from({ length: model.architecture.n_layers }, (_, l) => routerName(l))]
    // Fetched together: each block is verified on its own, so none waits for another's round trips.
    const shared = new Map(await allOrFirstError(names.map(async (name) => [name, await engine.#read(name, options)] as const)))
    await backend.loadShared(shared)
    return engine
  }

  /** Fetch a block's payload through the TileSource and check it; throws RuleError for bad weights. */
  async #read(name: string, load: LoadOptions): Promise<BlockTensors> {
    const block = this.model.blocks.get(name)
    if (block === undefined) throw new Error(`the model has no block ${name}`)
    const { signal, onLoad } = load
    onLoad?.({ type: 'fetch', block, arrival: null })
    const payload = await this.tiles.payload(block.payload, block.payloadSize, {
      name,
      ...(signal === undefined ? {} : { signal }),
      ...(onLoad === undefined ? {} : { onBlock: (arrival: BlockArrival) => onLoad({ type: 'fetch', block, arrival }) })
    })
    onLoad?.({ type: 'load', block, bytes: payload.length })
    return readBlockTensors(name, this.model.architecture, payload)
  }

  async #load(needed: readonly ExpertRef[], keep: ReadonlySet<string>, load: LoadOptions): Promise<void> {
    // Fetch and verify every missing expert at once, then upload them one by one (evicting as needed).
    const missing = needed.filter((ref) => !this.#resident.has(`${ref.layer}.${ref.expert}`))
    const tensors = await allOrFirstError(missing.map((ref) => this.#read(expertName(ref.layer, ref.expert), load)))
    for (const [i, ref] of missing.entries()) {
      const key = `${ref.layer}.${ref.expert}`
      if (this.#resident.has(key)) continue
      while (this.#resident.size >= this.#maxResident) {
        const victim = [...this.#resident].find(([k]) => !keep.has(k))
        if (victim === undefined) throw new ExpertCapacityError(this.#maxResident)
        this.backend.unloadExpert(victim[1].layer, victim[1].expert)
        this.#resident.delete(victim[0])
        this.stats.expertsEvicted++
      }
      await this.backend.loadExpert(ref.layer, ref.expert, tensors[i] as BlockTensors)
      this.#resident.set(key, ref)
      this.stats.expertsLoaded++
    }
  }

  /**
   * Every token uses every expert (top_k = n_experts) and all fit at once: load them in one batch
   * (fetched together) instead of discovering them one layer per forward pass.
   */
  #everyExpertUsed(): boolean {
    const arch = this.model.architecture
    return arch.top_k === arch.n_experts && this.#maxResident >= arch.n_layers * arch.n_experts
  }

  #allExperts(): ExpertRef[] {
    const arch = this.model.architecture
    return Array.from({ length: arch.n_layers * arch.n_experts }, (_, i) => ({ layer: Math.floor(i / arch.n_experts), expert: i % arch.n_experts }))
  }

  /** Logits for `token` at `pos`, loading whatever experts the router picks (for `load`: the engine's options by default). */
  step(token: number, pos: number, load: LoadOptions = this.#options): Promise<Float32Array> {
    return this.#run(() => this.backend.forward(token, pos), 1, load)
  }

  /** Run a backend pass until every expert it picks is resident; returns the logits. */
  async #run(pass: () => Promise<ForwardResult>, tokens: number, load: LoadOptions): Promise<Float32Array> {
    const started = performance.now()
    const keep = new Set<string>()
    for (;;) {
      // The engine's own signal ends every pass; a generation's stops it between tokens, and its loads.
      this.#options.signal?.throwIfAborted()
      const r = await pass()
      if ('logits' in r) {
        r.used.forEach((experts, layer) => {
          for (const e of experts) {
            const key = `${layer}.${e}`
            const ref = this.#resident.get(key)
            if (ref !== undefined) {
              this.#resident.delete(key) // most recently used goes last
              this.#resident.set(key, ref)
            }
            ;(this.stats.usage[layer] as number[])[e] = ((this.stats.usage[layer] as number[])[e] as number) + 1
          }
        })
        this.stats.tokens += tokens
        this.stats.forwardMs += performance.now() - started
        return r.logits
      }
      for (const m of [...r.missing, ...r.selected]) keep.add(`${m.layer}.${m.expert}`)
      await this.#load(this.#everyExpertUsed() ? this.#allExperts() : r.missing, keep, load)
      this.stats.retries++
    }
  }

  /** Generate after `prompt` (token ids, BOS first if the model wants one) from position 0. */
  async generate(prompt: readonly number[], options: GenerateOptions): Promise<Generation> {
    if (prompt.length === 0) throw new RangeError('prompt: at least one token (BOS)')
    const maxSeq = this.model.architecture.max_seq_len
    this.backend.reset()
    const before = this.stats.usage.map((l) => [...l])
    const started = performance.now()
    const tokens: number[] = []
    let logits: Float32Array | null = null
    const promptTokens = prompt.slice(0, maxSeq)
    let pos = 0
    if (promptTokens.length > 1 && this.backend.prefill !== undefined) {
      try {
        logits = await this.#run(() => (this.backend.prefill as NonNullable<Backend['prefill']>)(promptTokens, 0), promptTokens.length, options)
        pos = promptTokens.length
      } catch (e) {
        // The prompt's experts together exceed the LRU: run it token by token instead.
        if (!(e instanceof ExpertCapacityError)) throw e
        this.backend.reset()
      }
    }
    while (pos < promptTokens.length) logits = await this.step(promptTokens[pos] as number, pos++, options)
    let finish: Generation['finish'] = 'length'
    while (logits !== null && tokens.length < options.maxTokens && pos < maxSeq) {
      if (options.signal?.aborted === true) {
        finish = 'stopped'
        break
      }
      options.onLogits?.(logits)
      const next = options.sampler.sample(logits)
      if (options.stopTokens?.includes(next) === true) {
        finish = 'end'
        break
      }
      tokens.push(next)
      options.onToken?.(next)
      if (tokens.length === options.maxTokens || pos >= maxSeq) break
      logits = await this.step(next, pos++, options)
    }
    const seconds = (performance.now() - started) / 1000
    return {
      tokens,
      finish,
      experts: this.#usedSince(before),
      stats: { tokensPerSecond: (prompt.length + tokens.length) / seconds, promptTokens: prompt.length, generatedTokens: tokens.length }
    }
  }

  /**
   * Mean next-token cross-entropy (nats) of `tokens`, in windows of max_seq_len tokens: inside a
   * window each position predicts the next token of the window, the KV cache restarting per window.
   */
  async evaluate(tokens: readonly number[]): Promise<{ loss: number; predicted: number }> {
    const window = this.model.architecture.max_seq_len
    let total = 0
    let predicted = 0
    for (let start = 0; start + 1 < tokens.length; start += window) {
      const chunk = tokens.slice(start, start + window)
      this.backend.reset()
      for (let pos = 0; pos + 1 < chunk.length; pos++) {
        const logits = await this.step(chunk[pos] as number, pos)
        total += crossEntropy(logits, chunk[pos + 1] as number)
        predicted++
      }
    }
    return { loss: predicted === 0 ? NaN : total / predicted, predicted }
  }

  #usedSince(before: readonly (readonly number[])[]): UsedExpert[] {
    const used: UsedExpert[] = []
    this.stats.usage.forEach((counts, layer) => counts.forEach((n, expert) => {
      if (n > ((before[layer] as readonly number[])[expert] as number)) {
        const name = expertName(layer, expert)
        used.push({ layer, expert, name, cid: this.model.blocks.get(name)?.cid.toString() ?? '' })
      }
    }))
    return used
  }

  destroy(): void {
    this.backend.destroy()
    this.#resident.clear()
  }
}

/** -log softmax(logits)[target], in float64. */
export function crossEntropy(logits: Float32Array, target: number): number {
  let max = -Infinity
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i] as number)
  let sum = 0
  for (let i = 0; i < logits.length; i++) sum += Math.exp((logits[i] as number) - max)
  return Math.log(sum) + max - (logits[target] as number)
}

/** More experts are needed at once than the LRU holds (a batched prompt pass); one token always fits. */
export class ExpertCapacityError extends Error {
  override readonly name = 'ExpertCapacityError'
  constructor(capacity: number) {
    super(`expert LRU: all ${capacity} resident experts are needed by this pass`)
  }
}

/**
 * Promise.all that waits for every promise to settle before rejecting with the first error (in
 * input order), so no fetch is left running unobserved and the error named is deterministic.
 */
async function allOrFirstError<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises)
  const failed = settled.find((r) => r.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  return settled.map((r) => (r as PromiseFulfilledResult<T>).value)
}
