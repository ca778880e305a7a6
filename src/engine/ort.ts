/**
 * The ONNX Runtime Web backend: the reference forward pass (src/model/forward.ts) as per-layer
 * ONNX graphs built in code from the block weights (src/engine/ort-graphs.ts), on ORT's WebAssembly
 * or WebGPU execution provider.
 *
 * ```ts
 * const backend = await OrtBackend.create(arch, { provider: 'webgpu' })
 * const engine = await Engine.create(model, backend, tiles)
 * ```
 *
 * One token, top to bottom, as in the reference: embedding row (JS) -> per layer the `attention`
 * session (attention + residual, the K/V rows of pos, ffn_norm(x), router logits, gated shared
 * expert) -> top-k and router weights (JS, the reference's own `topK` / `routerWeights`, so ties
 * and weightings cannot drift) -> one `expert` session per picked expert -> weighted sum and
 * residual (JS) -> `head` session (final norm, classifier). Routing happens in JS between sessions,
 * so a missing expert is reported before any expert work, and only picked experts are ever loaded.
 *
 * The KV cache lives in JS (per layer (max_seq_len, n_kv * hd), as in the reference); each
 * `attention` run reads rows 0..pos-1 and returns the rows for pos, written at pos. A token that
 * stops at a missing expert has written rows for pos in earlier layers; rerunning the same
 * (token, pos) overwrites them with the same values, and nothing reads row pos before then.
 *
 * @module
 */
import { EMBEDDING_NAME, routerName } from '../chain/header.ts'
import type { Architecture } from '../chain/meta.ts'
import { ropeTable, routerWeights, topK, type ExpertRef } from '../model/forward.ts'
import type { Backend, BlockTensors, ForwardResult } from './interface.ts'
import { ATTENTION_IO, EXPERT_IO, HEAD_IO, attentionGraph, expertGraph, headGraph, matrixOf, matrixRow, type Matrix } from './ort-graphs.ts'
import { createSession, loadOrt, runSession, type Ort, type OrtProvider, type OrtRuntimeOptions, type OrtSession, type SessionSettings } from './ort-runtime.ts'

export { OrtSessionError, type OrtProvider, type OrtRuntimeOptions } from './ort-runtime.ts'

export type OrtBackendOptions = OrtRuntimeOptions

/** The backend was used out of order: forward before loadShared, or anything after destroy. */
export class OrtBackendStateError extends Error {
  override readonly name = 'OrtBackendStateError'
}

/** Sessions of the shared blocks: the head and one attention graph per layer. */
interface SharedSessions {
  readonly embedding: Matrix // (vocab, dim) tok_embeddings, for the row lookup
  readonly head: OrtSession
  readonly layers: readonly OrtSession[] // (n_layers)
}

export class OrtBackend implements Backend {
  readonly name = 'ort'
  readonly provider: OrtProvider
  readonly #settings: SessionSettings
  readonly #arch: Architecture
  readonly #ort: Ort
  readonly #table: { cos: Float32Array; sin: Float32Array } // (max_seq_len, hd / 2) each
  readonly #keys: Float32Array[] // (n_layers) x (max_seq_len, n_kv * hd)
  readonly #values: Float32Array[] // (n_layers) x (max_seq_len, n_kv * hd)
  readonly #x: Float32Array // (dim) residual stream
  readonly #moe: Float32Array // (dim) weighted expert outputs
  readonly #used: number[][] // (n_layers) experts picked at the last forward
  readonly #experts = new Map<string, OrtSession>()
  #shared: SharedSessions | null = null
  #destroyed = false

  private constructor(arch: Architecture, ort: Ort, settings: SessionSettings) {
    this.#arch = arch
    this.#ort = ort
    this.provider = settings.provider
    this.#settings = settings
    this.#table = ropeTable(arch)
    const rows = arch.max_seq_len * arch.n_kv_heads * arch.head_dim
    this.#keys = Array.from({ length: arch.n_layers }, () => new Float32Array(rows))
    this.#values = Array.from({ length: arch.n_layers }, () => new Float32Array(rows))
    this.#x = new Float32Array(arch.dim)
    this.#moe = new Float32Array(arch.dim)
    this.#used = Array.from({ length: arch.n_layers }, () => [])
  }

  /** Load ONNX Runtime for `options.provider` (default 'wasm'); sessions come with loadShared. */
  static async create(arch: Architecture, options: OrtBackendOptions = {}): Promise<OrtBackend> {
    if (typeof arch !== 'object' || arch === null) throw new TypeError('arch: expected an Architecture')
    const ort = await loadOrt(options)
    return new OrtBackend(arch, ort, { provider: options.provider ?? 'wasm', dequantizeAtLoad: options.dequantizeAtLoad ?? false })
  }

  #alive(): void {
    if (this.#destroyed) throw new OrtBackendStateError('ort backend: destroyed; create a new one')
  }

  #session(graph: string, bytes: Uint8Array): Promise<OrtSession> {
    return createSession(this.#ort, this.#settings, graph, bytes)
  }

  async loadShared(blocks: ReadonlyMap<string, BlockTensors>): Promise<void> {
    this.#alive()
    const get = (name: string): BlockTensors => {
      const b = blocks.get(name)
      if (b === undefined) throw new RangeError(`blocks: no ${name} block`)
      return b
    }
    const arch = this.#arch
    const embedding = get(EMBEDDING_NAME)
    const tok = embedding.get('tok_embeddings')
    if (tok === undefined) throw new RangeError('blocks: the embedding block has no tok_embeddings')
    const table = matrixOf(tok)
    const output = embedding.get('output')
    const classifier = arch.tie_embeddings || output === undefined ? table : matrixOf(output)
    const layerBlocks = Array.from({ length: arch.n_layers }, (_, l) => get(routerName(l)))
    const created: OrtSession[] = []
    try {
      const head = await this.#session('head', headGraph(arch, embedding, classifier))
      created.push(head)
      for (const [l, t] of layerBlocks.entries()) created.push(await this.#session(`attention_${l}`, attentionGraph(arch, l, t)))
      this.#releaseShared()
      this.#shared = { embedding: table, head, layers: created.slice(1) }
    } catch (e) {
      for (const s of created) release(s)
      throw e
    }
  }

  async loadExpert(layer: number, expert: number, tensors: BlockTensors): Promise<void> {
    this.#alive()
    const session = await this.#session(`expert_${layer}_${expert}`, expertGraph(this.#arch, layer, expert, tensors))
    const key = `${layer}.${expert}`
    const old = this.#experts.get(key)
    if (old !== undefined) release(old)
    this.#experts.set(key, session)
  }

  unloadExpert(layer: number, expert: number): void {
    const key = `${layer}.${expert}`
    const s = this.#experts.get(key)
    if (s === undefined) return
    this.#experts.delete(key)
    release(s)
  }

  async forward(token: number, pos: number): Promise<ForwardResult> {
    this.#alive()
    const shared = this.#shared
    if (shared === null) throw new OrtBackendStateError('ort backend: loadShared first')
    const arch = this.#arch
    const { dim, head_dim: hd, n_kv_heads: kvHeads } = arch
    if (!Number.isInteger(token) || token < 0 || token >= arch.vocab_size) throw new RangeError(`token ${token} outside the vocabulary`)
    if (!Number.isInteger(pos) || pos < 0 || pos >= arch.max_seq_len) throw new RangeError(`position ${pos} outside 0..${arch.max_seq_len - 1}`)
    const { Tensor } = this.#ort
    const kvDim = kvHeads * hd
    const half = hd / 2
    const x = this.#x
    const moe = this.#moe

    // token embedding
    matrixRow(x, shared.embedding, token)
    // this position's row of the shared RoPE table
    const cos = new Tensor('float32', this.#table.cos.subarray(pos * half, (pos + 1) * half), [half, 1])
    const sin = new Tensor('float32', this.#table.sin.subarray(pos * half, (pos + 1) * half), [half, 1])

    for (let l = 0; l < arch.n_layers; l++) {
      // attention (+ residual), this position's K/V rows, ffn_norm(x), router logits, shared expert
      const keys = this.#keys[l] as Float32Array
      const values = this.#values[l] as Float32Array
      const graph = `attention_${l}`
      const a = await runSession(shared.layers[l] as OrtSession, graph, {
        [ATTENTION_IO.x]: new Tensor('float32', x, [1, dim]),
        [ATTENTION_IO.cos]: cos,
        [ATTENTION_IO.sin]: sin,
        [ATTENTION_IO.pastK]: new Tensor('float32', keys.subarray(0, pos * kvDim), [pos, kvHeads, hd]),
        [ATTENTION_IO.pastV]: new Tensor('float32', values.subarray(0, pos * kvDim), [pos, kvHeads, hd])
      })
      keys.set(a[ATTENTION_IO.k] as Float32Array, pos * kvDim)
      values.set(a[ATTENTION_IO.v] as Float32Array, pos * kvDim)

      // MoE: top-k of the router logits, missing experts reported before any expert runs
      const router = a[ATTENTION_IO.router] as Float32Array
      const selected = topK(router, arch.top_k)
      this.#used[l] = selected
      const missing: ExpertRef[] = selected.filter((e) => !this.#experts.has(`${l}.${e}`)).map((expert) => ({ layer: l, expert }))
      if (missing.length > 0) {
        const picked = this.#used.slice(0, l + 1).flatMap((experts, layer) => experts.map((expert) => ({ layer, expert })))
        return { missing, selected: picked }
      }
      const weights = routerWeights(router, selected, arch.router_weighting)
      const xn = new Tensor('float32', a[ATTENTION_IO.xn] as Float32Array, [1, dim])
      moe.fill(0)
      for (const [i, e] of selected.entries()) {
        const r = await runSession(this.#experts.get(`${l}.${e}`) as OrtSession, `expert_${l}_${e}`, { [EXPERT_IO.xn]: xn })
        const out = r[EXPERT_IO.out] as Float32Array
        const w = weights[i] as number
        for (let j = 0; j < dim; j++) moe[j] = (moe[j] as number) + w * (out[j] as number)
      }
      const sharedOut = a[ATTENTION_IO.shared]
      if (sharedOut !== undefined) for (let j = 0; j < dim; j++) moe[j] = (moe[j] as number) + (sharedOut[j] as number)
      const xAttn = a[ATTENTION_IO.xAttn] as Float32Array
      for (let j = 0; j < dim; j++) x[j] = (xAttn[j] as number) + (moe[j] as number)
    }

    // final norm and classifier; ORT hands back a fresh array each run, so the caller may keep it
    const h = await runSession(shared.head, 'head', { [HEAD_IO.x]: new Tensor('float32', x, [1, dim]) })
    return { logits: h[HEAD_IO.logits] as Float32Array, used: this.#used.map((u) => [...u]) }
  }

  reset(): void {
    for (const k of this.#keys) k.fill(0)
    for (const v of this.#values) v.fill(0)
  }

  destroy(): void {
    this.#destroyed = true
    this.#releaseShared()
    for (const s of this.#experts.values()) release(s)
    this.#experts.clear()
  }

  #releaseShared(): void {
    if (this.#shared === null) return
    release(this.#shared.head)
    for (const s of this.#shared.layers) release(s)
    this.#shared = null
  }
}

/**
 * Free a session's memory. Release is async in ORT but the Backend's unload and destroy are not;
 * a failed release leaves nothing to act on (the session is dropped either way), so it is ignored.
 */
function release(s: OrtSession): void {
  s.release().catch(() => {})
}
