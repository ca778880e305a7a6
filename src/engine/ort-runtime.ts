/**
 * Loading ONNX Runtime Web and running sessions, for Node and browsers alike (no `node:` imports).
 *
 * Which build serves which execution provider:
 * - `wasm`: `onnxruntime-web/wasm`, the plain WebAssembly build (`ort-wasm-simd-threaded.{mjs,wasm}`):
 *   the smallest, and it runs unchanged in Node 20, where the wasm file is found next to the module.
 * - `webgpu`: `onnxruntime-web/webgpu`, ORT's native WebGPU EP (`ort-wasm-simd-threaded.asyncify.{mjs,wasm}`).
 *   Not the default `onnxruntime-web` entry: its JS WebGPU path (JSEP) ran DequantizeLinear wrongly
 *   on SwiftShader (shared/NOTES-stack.md), the native EP did not.
 * Each is imported on first use, so a page only downloads the one it runs.
 *
 * ORT's `env` is global per build and read once, when the first session initialises the wasm
 * module; `loadOrt` sets it before that and never again, so the first caller's `numThreads` and
 * `wasmPaths` win. In Node it sets one thread: the per-token graphs are small, and worker threads
 * would only add start-up time.
 *
 * In browsers, vite bundles both builds and their `.wasm` files as assets (ORT locates them with
 * `new URL(..., import.meta.url)`), so no `wasmPaths` is needed for a vite-built page. Checked in
 * headless Chromium (SwiftShader WebGPU): wasm and webgpu both matched the CPU backend to 4e-6,
 * with and without COOP/COEP (threads need a cross-origin-isolated page; without it ORT runs one).
 *
 * @module
 */
import type * as OrtModule from 'onnxruntime-web'

/** The ONNX Runtime Web module (both builds share the same API and types). */
export type Ort = typeof OrtModule
export type OrtSession = OrtModule.InferenceSession
export type OrtTensor = OrtModule.Tensor

export type OrtProvider = 'wasm' | 'webgpu'
export const ORT_PROVIDERS: readonly OrtProvider[] = Object.freeze(['wasm', 'webgpu'])

export interface OrtRuntimeOptions {
  /** Execution provider. @default 'wasm' */
  readonly provider?: OrtProvider
  /**
   * Where ORT finds its `.wasm`/`.mjs` files: a URL prefix (ending in `/`) or per-file URLs
   * (`ort.env.wasm.wasmPaths`). Needed when a bundler does not ship them next to the ORT module,
   * or when they are served from `public/` (threads, below). @default ORT's own lookup
   */
  readonly wasmPaths?: string | { readonly wasm?: string | URL; readonly mjs?: string | URL }
  /**
   * WebAssembly threads. More than one needs a cross-origin-isolated page (COOP/COEP headers).
   * @default 1 in Node, ORT's choice (cores when cross-origin isolated, else 1) elsewhere
   */
  readonly numThreads?: number
  /**
   * Turn int8 weights into float32 once, when a session is created, instead of at every run.
   * ORT does not constant-fold DequantizeLinear by default (it keeps Q/DQ pairs for quantized
   * kernels); with this on (the `session.disable_quant_qdq` config) it does. Measured on the wasm EP
   * in Node, a 4096 x 4096 int8 Gemm took 14.7 ms per run dequantizing each time and 3.7 ms folded,
   * but folded weights take four times the memory, and a wasm32 heap holds at most 4 GiB. The
   * results are the same either way (the same float32 q * scale values).
   * @default false
   */
  readonly dequantizeAtLoad?: boolean
}

/** ORT failed to create or run a session: the graph it was building or running, and ORT's error as `cause`. */
export class OrtSessionError extends Error {
  override readonly name = 'OrtSessionError'
  /** The graph (`attention_0`, `expert_1_3`, `head`). */
  readonly graph: string
  readonly phase: 'create' | 'run'
  constructor(graph: string, phase: 'create' | 'run', cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause)
    super(`ONNX Runtime could not ${phase} the ${graph} session: ${why}`, { cause })
    this.graph = graph
    this.phase = phase
  }
}

const isNode = (): boolean =>
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string'

/** Builds whose env this module has configured (each is configured once, before its first session). */
const configured = new WeakSet<object>()

/** Import the ORT build for `provider` and configure its env on first use. */
export async function loadOrt(options: OrtRuntimeOptions = {}): Promise<Ort> {
  const provider = options.provider ?? 'wasm'
  if (!ORT_PROVIDERS.includes(provider)) throw new RangeError(`provider: expected 'wasm' or 'webgpu', got ${String(provider)}`)
  if (options.numThreads !== undefined && !(Number.isInteger(options.numThreads) && options.numThreads >= 0)) {
    throw new RangeError(`numThreads: expected a non-negative integer, got ${options.numThreads}`)
  }
  if (options.dequantizeAtLoad !== undefined && typeof options.dequantizeAtLoad !== 'boolean') {
    throw new TypeError(`dequantizeAtLoad: expected a boolean, got ${typeof options.dequantizeAtLoad}`)
  }
  // Literal specifiers, so bundlers see and split both builds.
  const ort: Ort = provider === 'webgpu' ? await import('onnxruntime-web/webgpu') : await import('onnxruntime-web/wasm')
  if (!configured.has(ort.env)) {
    configured.add(ort.env)
    const threads = options.numThreads ?? (isNode() ? 1 : undefined)
    if (threads !== undefined) ort.env.wasm.numThreads = threads
    if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths as OrtModule.Env.WasmPrefixOrFilePaths
  }
  return ort
}

/** Session settings every graph of a backend shares. */
export interface SessionSettings {
  readonly provider: OrtProvider
  readonly dequantizeAtLoad: boolean
}

/** A session for the model `bytes`, named `graph` in errors. */
export async function createSession(ort: Ort, settings: SessionSettings, graph: string, bytes: Uint8Array): Promise<OrtSession> {
  const options: OrtModule.InferenceSession.SessionOptions = { executionProviders: [settings.provider], graphOptimizationLevel: 'all' }
  if (settings.dequantizeAtLoad) options.extra = { session: { disable_quant_qdq: '1' } }
  try {
    return await ort.InferenceSession.create(bytes, options)
  } catch (e) {
    throw new OrtSessionError(graph, 'create', e)
  }
}

/** Run `session` and return its float32 outputs by name. */
export async function runSession(session: OrtSession, graph: string, feeds: Record<string, OrtTensor>): Promise<Record<string, Float32Array>> {
  let results: OrtModule.InferenceSession.ReturnType
  try {
    results = await session.run(feeds)
  } catch (e) {
    throw new OrtSessionError(graph, 'run', e)
  }
  const out: Record<string, Float32Array> = {}
  for (const [name, t] of Object.entries(results)) {
    if (!(t.data instanceof Float32Array)) throw new OrtSessionError(graph, 'run', new TypeError(`output ${name} is ${t.type}, not float32`))
    out[name] = t.data
  }
  return out
}
