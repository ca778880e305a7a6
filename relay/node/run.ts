/**
 * `blyan generate` and `blyan eval`: the engine over a local store, for scripts and validators.
 *
 * Weights are read from the store block by block and verified on the way in (TileSource), decoded
 * and checked against chain A, then run on the chosen backend: `cpu` (the reference), `webgpu` (our
 * kernels; in Node through Dawn on SwiftShader or a real GPU), `ort` (ONNX Runtime Web, wasm).
 *
 * @module
 */
import type { Architecture } from '../../src/chain/meta.ts'
import { CpuBackend } from '../../src/engine/cpu.ts'
import { Engine, type UsedExpert } from '../../src/engine/engine.ts'
import type { Backend } from '../../src/engine/interface.ts'
import { complete } from '../../src/engine/complete.ts'
import { createTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.ts'
import type { ChainStore } from './interface.ts'
import { storedModel, type StoredModel } from './stored-model.ts'

export type BackendName = 'cpu' | 'webgpu' | 'ort'
export const BACKENDS: readonly BackendName[] = Object.freeze(['cpu', 'webgpu', 'ort'])

/** A backend for the architecture, created the way Node can: Dawn for webgpu, wasm for ORT. */
export async function createBackend(name: BackendName, arch: Architecture, maxResidentExperts: number): Promise<Backend> {
  if (name === 'cpu') return new CpuBackend(arch)
  if (name === 'ort') {
    const { OrtBackend } = await import('../../src/engine/ort.ts')
    return OrtBackend.create(arch, { provider: 'wasm' })
  }
  const { createNodeBackend } = await import('./webgpu-node.ts')
  return createNodeBackend(arch, maxResidentExperts)
}

export interface RunContext {
  readonly model: StoredModel
  readonly tokenizer: Tokenizer
  readonly engine: Engine
}

/** Model, tokenizer and engine for a store. */
export async function openRun(store: ChainStore, backend: BackendName, options: { maxResidentExperts?: number } = {}): Promise<RunContext> {
  const model = await storedModel(store)
  const t = model.meta.tokenizer
  if (t === null || model.tokenizer === null) throw new Error('chain A links no tokenizer: this devnet cannot turn text into tokens')
  const tokenizer = createTokenizer(t.format, model.tokenizer, model.architecture.vocab_size, t.bos_id, t.eos_id)
  const arch = model.architecture
  const resident = options.maxResidentExperts ?? arch.n_layers * arch.n_experts
  const engine = await Engine.create(model, await createBackend(backend, arch, resident), model.tiles, { maxResidentExperts: resident })
  return { model, tokenizer, engine }
}

export interface GenerateResult {
  readonly text: string
  readonly tokens: number[]
  readonly experts: UsedExpert[]
  readonly stats: {
    readonly backend: BackendName
    readonly promptTokens: number
    readonly generatedTokens: number
    readonly tokensPerSecond: number
    readonly bytesFetched: number
    readonly tilesFetched: number
  }
}

export interface GenerateOptions {
  readonly prompt: string
  readonly maxTokens: number
  readonly temperature: number
  readonly topP: number
  readonly seed: number
  /** Text as it is generated (for streaming to stdout). */
  readonly onText?: (text: string) => void
}

/** Generate after a prompt (BOS first); stops at EOS, or at BOS as llama2.c's stories do. */
export async function generate(run: RunContext, backend: BackendName, options: GenerateOptions): Promise<GenerateResult> {
  const { engine, tokenizer, model } = run
  const onText = options.onText
  const g = await complete(engine, tokenizer, {
    prompt: options.prompt,
    maxTokens: options.maxTokens,
    temperature: options.temperature,
    topP: options.topP,
    seed: options.seed,
    ...(onText === undefined ? {} : { onToken: (_id: number, text: string) => { if (text !== '') onText(text) } })
  })
  return {
    text: g.text,
    tokens: g.tokens,
    experts: g.experts,
    stats: {
      backend,
      promptTokens: g.stats.promptTokens,
      generatedTokens: g.stats.generatedTokens,
      tokensPerSecond: g.stats.tokensPerSecond,
      bytesFetched: model.tiles.stats.bytes,
      tilesFetched: model.tiles.stats.tiles
    }
  }
}

/** Mean next-token cross-entropy (nats) of a text: one sequence from BOS, its first `maxTokens` tokens. */
export async function evaluateText(run: RunContext, text: string, maxTokens: number): Promise<{ loss: number; predicted: number; tokens: number }> {
  const tokens = run.tokenizer.encode(text, { bos: true }).slice(0, maxTokens)
  const r = await run.engine.evaluate(tokens)
  return { ...r, tokens: tokens.length }
}
