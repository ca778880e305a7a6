/**
 * The WebGPU backend: the model on the user's GPU through our WGSL kernels (shaders/*.wgsl), the
 * same math as the CPU reference (src/model/forward.ts) in float32.
 *
 * Everything is allocated at load: weights (int8 as stored, 4 per u32 with their scales; fp32 as
 * is; fp16 widened to f32), the activations, the KV cache, an expert pool of `maxResidentExperts`
 * equal slots with a residency table (layer, expert) -> slot, and every Params uniform and bind
 * group. A token is one command encoder: embedding -> per layer attention, router, MoE (+ shared
 * expert) -> final norm -> classifier, then ONE readback of the logits, every layer's routes and
 * the missing list. `forward()` allocates nothing on the GPU; it writes the 16-byte step uniform and
 * the token id.
 *
 * Speculative residency: the pass runs as if every expert the router picks were resident. The
 * router kernel looks each pick up in the residency table; a non-resident pick gets slot NONE
 * (the expert kernels skip it) and is appended to the missing list. After the readback, if
 * anything is missing, the first layer with a missing expert is the last one computed exactly:
 * the backend reports that layer's missing experts and every pick of the layers up to it (what the
 * CPU reference reports) and discards the rest of the pass, computed from a wrong hidden state.
 * The engine loads them and runs the same (token, pos) again, which overwrites the KV rows at pos.
 * A token whose experts are all resident costs one pass and no CPU round trip per layer.
 *
 * ```ts
 * const device = await requestModelDevice(adapter, arch, { maxResidentExperts: 16 })
 * const backend = await WebGpuBackend.create(device, arch, { maxResidentExperts: 16 })
 * const engine = await Engine.create(model, backend, tiles, { maxResidentExperts: 16 })
 * ```
 *
 * @module
 */
import { EMBEDDING_NAME, routerName } from '../chain/header.ts'
import type { Architecture } from '../chain/meta.ts'
import { ropeTable } from '../model/forward.ts'
import type { TensorView } from '../tensor/tensorblock.ts'
import { GpuContext, gpuFeatures, record, type Dispatch } from '../gpu/context.ts'
import { add, addKey } from '../gpu/kernels/add.ts'
import { attention, attentionKey } from '../gpu/kernels/attention.ts'
import { embedding, embeddingKey } from '../gpu/kernels/embedding.ts'
import { matmul, matmulKey } from '../gpu/kernels/matmul.ts'
import { matvec, matvecKey, vec4Rows } from '../gpu/kernels/matvec.ts'
import { moeDown, moeDownKey } from '../gpu/kernels/moe_down.ts'
import { moeGateUp, moeGateUpKey } from '../gpu/kernels/moe_gate_up.ts'
import { rmsnorm, rmsnormKey } from '../gpu/kernels/rmsnorm.ts'
import { rope, ropeKey } from '../gpu/kernels/rope.ts'
import { NO_SLOT, ROUTE_BYTES, WEIGHTING_CODE, router, routerKey } from '../gpu/kernels/router.ts'
import { swiglu, swigluKey } from '../gpu/kernels/swiglu.ts'
import type { PipelineKey } from '../gpu/pipelines.ts'
import { ATTENTION_MAX_HEAD_DIM, PREFILL_TOKENS, tuningFor, type Tuning } from '../gpu/tuning.ts'
import { gpuDType, hostMatrix, hostVector, widenMatrix, type GpuDType, type GpuMatrix, type HostMatrix } from '../gpu/upload.ts'
import { DeviceLostError, type Backend, type BlockTensors, type ExpertRef, type ForwardResult } from './interface.ts'

export interface WebGpuBackendOptions {
  /** Expert pool slots: the most experts resident at once (the engine's LRU size). */
  readonly maxResidentExperts: number
  /**
   * WGSL language features of the GPU instance (`navigator.gpu.wgslLanguageFeatures`); default:
   * the browser's, else none. `packed_4x8_integer_dot_product` selects unpack4xI8.
   */
  readonly wgslLanguageFeatures?: ReadonlySet<string>
  /** Tokens per prefill pass (rows of the activation buffers). @default min(PREFILL_TOKENS, max_seq_len) */
  readonly prefillTokens?: number
  /** Kernel sizes. @default tuningFor(device.adapterInfo): CPU_TUNING on software adapters, else GPU_TUNING */
  readonly tuning?: Tuning
}

// ---------------------------------------------------------------------------------------------
// Weights, activations, bound kernels

/** A `layer<L>.router` block on the GPU (also what the WebGPU trainer keeps frozen). */
export interface LayerWeights {
  readonly attentionNorm: GPUBuffer // (dim)
  readonly wq: GpuMatrix // (n_heads * hd, dim)
  readonly wk: GpuMatrix // (n_kv * hd, dim)
  readonly wv: GpuMatrix // (n_kv * hd, dim)
  readonly wo: GpuMatrix // (dim, n_heads * hd)
  readonly bq: GPUBuffer | null // (n_heads * hd)
  readonly bk: GPUBuffer | null // (n_kv * hd)
  readonly bv: GPUBuffer | null // (n_kv * hd)
  readonly qNorm: GPUBuffer | null // (n_heads * hd)
  readonly kNorm: GPUBuffer | null // (n_kv * hd)
  readonly ffnNorm: GPUBuffer // (dim)
  readonly gate: GpuMatrix // (n_experts, dim)
  readonly shared: { readonly w1: GpuMatrix; readonly w2: GpuMatrix; readonly w3: GpuMatrix } | null // (sh, dim), (dim, sh), (sh, dim)
  readonly sharedGate: GpuMatrix | null // (1, dim)
}

/** The expert pool: `slots` experts per matrix, back to back, one dtype for all. */
interface ExpertPool {
  readonly dtype: GpuDType
  readonly w1: GpuMatrix // (slots, hidden, dim)
  readonly w3: GpuMatrix // (slots, hidden, dim)
  readonly w2: GpuMatrix // (slots, dim, hidden)
}

/** Activations for up to P tokens (P = prefill rows; decode uses row 0), the KV cache, routing. */
interface RunState {
  readonly x: GPUBuffer // (P, dim) residual stream
  readonly xb: GPUBuffer // (P, dim) normed input
  readonly xb2: GPUBuffer // (P, dim) attention output projection
  readonly q: GPUBuffer // (P, n_heads * hd) rotated queries
  readonly k: GPUBuffer // (P, kv_dim)
  readonly v: GPUBuffer // (P, kv_dim)
  readonly qRaw: GPUBuffer | null // (P, n_heads * hd) before qk_norm
  readonly kRaw: GPUBuffer | null // (P, kv_dim) before qk_norm
  readonly att: GPUBuffer // (P, n_heads * hd) attention output
  readonly routerLogits: GPUBuffer // (P, n_experts)
  readonly h: GPUBuffer // (P, top_k, expert_hidden) expert activations
  readonly moe: GPUBuffer // (P, dim) weighted expert sum
  readonly sh1: GPUBuffer | null // (P, shared_hidden) shared w1 x
  readonly sh3: GPUBuffer | null // (P, shared_hidden) shared w3 x
  readonly sh: GPUBuffer | null // (P, shared_hidden) silu(sh1) * sh3
  readonly shOut: GPUBuffer | null // (P, dim) shared expert output
  readonly shGate: GPUBuffer | null // (P) shared gate logit
  readonly logits: GPUBuffer // (vocab)
  readonly keyCache: GPUBuffer // (n_layers, max_seq_len, kv_dim)
  readonly valueCache: GPUBuffer // (n_layers, max_seq_len, kv_dim)
  readonly rope: GPUBuffer // cos (max_seq_len, hd / 2) then sin
  readonly tokens: GPUBuffer // (P) u32 token ids
  readonly step: GPUBuffer // uniform { pos, n_tokens, 0, 0 }
  readonly residency: GPUBuffer // (n_layers, n_experts) u32 slot or NO_SLOT
  readonly routes: GPUBuffer // (P, n_layers, top_k) Route { expert, slot, weight }
  readonly missing: GPUBuffer // u32 count, then (layer, expert) pairs: (1 + 2 * P * n_layers * top_k)
  readonly staging: GPUBuffer // MAP_READ: logits | routes | missing
}

/** One layer's kernels, bound. Projections are matvec (decode) or matmul (prefill). */
interface LayerOps {
  readonly attentionNorm: Dispatch
  readonly wq: Dispatch
  readonly wk: Dispatch
  readonly wv: Dispatch
  readonly qNorm: Dispatch | null
  readonly kNorm: Dispatch | null
  readonly rope: Dispatch
  readonly attention: Dispatch
  readonly wo: Dispatch
  readonly attentionResidual: Dispatch
  readonly ffnNorm: Dispatch
  readonly gate: Dispatch
  readonly router: Dispatch
  readonly shared: { readonly w1: Dispatch; readonly w3: Dispatch; readonly swiglu: Dispatch; readonly w2: Dispatch; readonly gate: Dispatch | null } | null
  readonly ffnResidual: Dispatch
}

interface PassOps {
  readonly embed: Dispatch
  readonly layers: readonly LayerOps[]
  readonly finalNorm: Dispatch
  readonly classifier: Dispatch
}

/** What one pass read back. */
interface PassResult {
  readonly logits: Float32Array | null
  /** (T, n_layers, top_k) x { expert, slot, weight bits } */
  readonly routes: Uint32Array
  /** (layer, expert) pairs the router found missing */
  readonly missing: readonly ExpertRef[]
}

// ---------------------------------------------------------------------------------------------
// The backend

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu'
  readonly arch: Architecture
  readonly device: GPUDevice
  /** Tokens per prefill pass. */
  readonly prefillTokens: number
  readonly #ctx: GpuContext
  readonly #slots: number
  readonly #s: RunState
  readonly #stagingLayout: { readonly routes: number; readonly missing: number; readonly size: number }
  #decode: PassOps | null = null
  #prefill: PassOps | null = null
  #layers: LayerWeights[] = []
  #pool: ExpertPool | null = null
  /** moe_gate_up / moe_down per layer, bound to the current pool (rebound if it is widened). */
  #moe: { gateUp: Dispatch; down: Dispatch }[] = []
  /** `${layer}.${expert}` -> slot; free slots, the lowest last. */
  readonly #slotOf = new Map<string, number>()
  #free: number[]
  /** Serialises passes and pool changes (one staging buffer, one set of activations). */
  #queue: Promise<unknown> = Promise.resolve()
  #lost: GPUDeviceLostInfo | null = null
  #destroyed = false
  readonly #step = new Uint32Array(4)
  readonly #token = new Uint32Array(1)

  private constructor(device: GPUDevice, arch: Architecture, options: WebGpuBackendOptions) {
    this.device = device
    this.arch = arch
    this.#slots = options.maxResidentExperts
    this.prefillTokens = Math.min(options.prefillTokens ?? PREFILL_TOKENS, arch.max_seq_len)
    const features = options.wgslLanguageFeatures ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu?.wgslLanguageFeatures
    this.#ctx = new GpuContext(device, gpuFeatures(features, device), options.tuning ?? tuningFor((device as { adapterInfo?: GPUAdapterInfo }).adapterInfo))
    this.#free = Array.from({ length: this.#slots }, (_, i) => this.#slots - 1 - i)
    device.lost.then((info) => {
      this.#lost = info
    }, () => {})

    const { dim, n_layers: layers, top_k: k, max_seq_len: seq } = arch
    const P = this.prefillTokens
    const qDim = arch.n_heads * arch.head_dim
    const kvDim = arch.n_kv_heads * arch.head_dim
    const sh = arch.shared_expert_hidden_dim
    const f32 = (label: string, n: number): GPUBuffer => this.#ctx.storage(label, n * 4)
    const routeCount = P * layers * k
    const table = ropeTable(arch)
    const ropeData = new Float32Array(table.cos.length * 2)
    ropeData.set(table.cos)
    ropeData.set(table.sin, table.cos.length)
    const routesOffset = arch.vocab_size * 4
    const missingOffset = routesOffset + routeCount * ROUTE_BYTES
    this.#stagingLayout = { routes: routesOffset, missing: missingOffset, size: missingOffset + (1 + 2 * routeCount) * 4 }
    this.#s = {
      x: f32('x', P * dim),
      xb: f32('xb', P * dim),
      xb2: f32('xb2', P * dim),
      q: f32('q', P * qDim),
      k: f32('k', P * kvDim),
      v: f32('v', P * kvDim),
      qRaw: arch.qk_norm ? f32('q_raw', P * qDim) : null,
      kRaw: arch.qk_norm ? f32('k_raw', P * kvDim) : null,
      att: f32('att', P * qDim),
      routerLogits: f32('router_logits', P * arch.n_experts),
      h: f32('h', P * k * arch.expert_hidden_dim),
      moe: f32('moe', P * dim),
      sh1: sh > 0 ? f32('sh1', P * sh) : null,
      sh3: sh > 0 ? f32('sh3', P * sh) : null,
      sh: sh > 0 ? f32('sh', P * sh) : null,
      shOut: sh > 0 ? f32('sh_out', P * dim) : null,
      shGate: sh > 0 && arch.shared_expert_gate ? f32('sh_gate', P) : null,
      logits: f32('logits', arch.vocab_size),
      keyCache: f32('key_cache', layers * seq * kvDim),
      valueCache: f32('value_cache', layers * seq * kvDim),
      rope: this.#ctx.upload('rope_table', ropeData),
      tokens: this.#ctx.storage('tokens', P * 4),
      step: this.#ctx.uniform('step', this.#step),
      residency: this.#ctx.upload('residency', new Uint32Array(layers * arch.n_experts).fill(NO_SLOT)),
      routes: this.#ctx.storage('routes', routeCount * ROUTE_BYTES),
      missing: this.#ctx.storage('missing', (1 + 2 * routeCount) * 4),
      staging: this.#ctx.storage('staging', this.#stagingLayout.size, 0x0001 | 0x0008) // MAP_READ | COPY_DST
    }
  }

  /**
   * A backend for `arch` on `device` (request it with requestModelDevice for real models). Checks
   * what the kernels support; weights come with loadShared / loadExpert.
   */
  static async create(device: GPUDevice, arch: Architecture, options: WebGpuBackendOptions): Promise<WebGpuBackend> {
    const slots = options.maxResidentExperts
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`maxResidentExperts: expected a positive integer, got ${slots}`)
    if (options.prefillTokens !== undefined && (!Number.isInteger(options.prefillTokens) || options.prefillTokens < 1)) {
      throw new RangeError(`prefillTokens: expected a positive integer, got ${options.prefillTokens}`)
    }
    if (arch.head_dim > ATTENTION_MAX_HEAD_DIM) throw new RangeError(`webgpu backend: head_dim ${arch.head_dim} above the attention kernel's ${ATTENTION_MAX_HEAD_DIM}`)
    return new WebGpuBackend(device, arch, options)
  }

  /**
   * Every pipeline a model of this architecture runs, for int8 or f32 weights: the same keys the
   * kernels ask for in loadShared and the expert pool (a test checks a load after warmUp compiles nothing).
   */
  pipelineKeys(int8: boolean): PipelineKey[] {
    const arch = this.arch
    const ctx = this.#ctx
    // A projection reading `cols` inputs: matvec for one token, matmul for a prompt.
    const projection = (cols: number): PipelineKey[] => [matvecKey(ctx, { int8, vec4: vec4Rows({ cols }, 0) }), matmulKey(ctx, int8)]
    const keys = [
      embeddingKey(ctx, int8), rmsnormKey(ctx), ropeKey(ctx), attentionKey(ctx, arch.head_dim), addKey(ctx), routerKey(ctx),
      ...projection(arch.dim), ...projection(arch.n_heads * arch.head_dim),
      moeGateUpKey(ctx, int8), moeDownKey(ctx, int8)
    ]
    if (arch.shared_expert_hidden_dim > 0) keys.push(swigluKey(ctx), ...projection(arch.shared_expert_hidden_dim))
    return keys
  }

  /**
   * Compile every pipeline in parallel before any weight arrives (int8 weights unless told): a cold
   * start then compiles while it downloads, and loadShared finds the pipelines in the device's cache.
   */
  async warmUp(options: { int8?: boolean } = {}): Promise<void> {
    this.#usable()
    await Promise.all(this.pipelineKeys(options.int8 ?? true).map((key) => this.#ctx.pipelines.get(key)))
  }

  /** Pipelines compiled on this backend's device so far. */
  get pipelineCount(): number {
    return this.#ctx.pipelines.size
  }

  // -------------------------------------------------------------------------------------------
  // Loading

  async loadShared(blocks: ReadonlyMap<string, BlockTensors>): Promise<void> {
    this.#usable()
    if (this.#decode !== null) throw new Error('webgpu backend: loadShared was already called')
    const arch = this.arch
    const get = (name: string): BlockTensors => {
      const b = blocks.get(name)
      if (b === undefined) throw new Error(`webgpu backend: no ${name} block`)
      return b
    }
    const emb = get(EMBEDDING_NAME)
    const tokEmbeddings = this.#matrix('tok_embeddings', must(emb, 'tok_embeddings'))
    const norm = this.#vector('norm', must(emb, 'norm'))
    const outputView = emb.get('output')
    const output = outputView === undefined ? tokEmbeddings : this.#matrix('output', outputView)
    this.#layers = Array.from({ length: arch.n_layers }, (_, l) => this.#layerWeights(l, get(routerName(l))))
    const first = get(routerName(0)).get('wq')
    this.#pool = this.#allocatePool(first !== undefined && gpuDType(first) === 'int8' ? 'int8' : 'f32')

    const s = this.#s
    const build = async (mode: 'decode' | 'prefill', shared: readonly Omit<LayerOps, 'wq' | 'wk' | 'wv' | 'wo' | 'gate' | 'shared'>[] | null): Promise<PassOps> => {
      const proj = (label: string, w: GpuMatrix, x: GPUBuffer, y: GPUBuffer, bias: GPUBuffer | null = null): Promise<Dispatch> =>
        mode === 'decode' ? matvec(this.#ctx, label, w, x, y, { bias }) : matmul(this.#ctx, label, w, x, y, s.step, { bias })
      const layers: LayerOps[] = []
      for (let l = 0; l < arch.n_layers; l++) {
        const L = this.#layers[l] as LayerWeights
        const common = shared?.[l] ?? (await this.#layerCommon(l, L))
        const sw = L.shared
        layers.push({
          ...common,
          wq: await proj(`l${l}.wq`, L.wq, s.xb, s.qRaw ?? s.q, L.bq),
          wk: await proj(`l${l}.wk`, L.wk, s.xb, s.kRaw ?? s.k, L.bk),
          wv: await proj(`l${l}.wv`, L.wv, s.xb, s.v, L.bv),
          wo: await proj(`l${l}.wo`, L.wo, s.att, s.xb2),
          gate: await proj(`l${l}.gate`, L.gate, s.xb, s.routerLogits),
          shared: sw === null ? null : {
            w1: await proj(`l${l}.shared_w1`, sw.w1, s.xb, s.sh1 as GPUBuffer),
            w3: await proj(`l${l}.shared_w3`, sw.w3, s.xb, s.sh3 as GPUBuffer),
            swiglu: await swiglu(this.#ctx, `l${l}.shared_swiglu`, s.sh1 as GPUBuffer, s.sh3 as GPUBuffer, s.sh as GPUBuffer, s.step, { cols: arch.shared_expert_hidden_dim }),
            w2: await proj(`l${l}.shared_w2`, sw.w2, s.sh as GPUBuffer, s.shOut as GPUBuffer),
            gate: L.sharedGate === null ? null : await proj(`l${l}.shared_gate`, L.sharedGate, s.xb, s.shGate as GPUBuffer)
          }
        })
      }
      return {
        embed: await embedding(this.#ctx, 'embedding', tokEmbeddings, s.tokens, s.x, s.step),
        layers,
        finalNorm: await rmsnorm(this.#ctx, 'final_norm', s.x, norm, s.xb, s.step, { n: arch.dim, eps: arch.norm_eps, lastOnly: true }),
        classifier: await matvec(this.#ctx, 'classifier', output, s.xb, s.logits)
      }
    }
    this.#decode = await build('decode', null)
    this.#prefill = await build('prefill', this.#decode.layers)
    await this.#bindPool()
  }

  async loadExpert(layer: number, expert: number, tensors: BlockTensors): Promise<void> {
    this.#checkExpert(layer, expert)
    const views = (['w1', 'w3', 'w2'] as const).map((n) => must(tensors, n))
    await this.#exclusive(async () => {
      this.#usable()
      let pool = this.#pool
      if (pool === null) throw new Error('webgpu backend: loadShared first')
      const dtype: GpuDType = views.every((v) => gpuDType(v) === 'int8') ? 'int8' : 'f32'
      if (pool.dtype === 'int8' && dtype === 'f32') pool = await this.#widenPool()
      const key = `${layer}.${expert}`
      const slot = this.#slotOf.get(key) ?? this.#free.pop()
      if (slot === undefined) throw new RangeError(`webgpu backend: all ${this.#slots} expert slots are in use (maxResidentExperts): unload an expert first`)
      const [w1, w3, w2] = views.map((v) => hostMatrix(v as TensorView, pool.dtype)) as [HostMatrix, HostMatrix, HostMatrix]
      this.#writeSlot(pool.w1, slot, w1)
      this.#writeSlot(pool.w3, slot, w3)
      this.#writeSlot(pool.w2, slot, w2)
      this.#slotOf.set(key, slot)
      this.#ctx.write(this.#s.residency, (layer * this.arch.n_experts + expert) * 4, Uint32Array.of(slot))
    })
  }

  unloadExpert(layer: number, expert: number): void {
    this.#checkExpert(layer, expert)
    const key = `${layer}.${expert}`
    const slot = this.#slotOf.get(key)
    if (slot === undefined || this.#destroyed) return
    this.#slotOf.delete(key)
    this.#free.push(slot)
    this.#ctx.write(this.#s.residency, (layer * this.arch.n_experts + expert) * 4, Uint32Array.of(NO_SLOT))
  }

  /** Experts resident now, as `${layer}.${expert}` keys. */
  get resident(): ReadonlySet<string> {
    return new Set(this.#slotOf.keys())
  }

  // -------------------------------------------------------------------------------------------
  // Running

  /** One token at `pos`: one GPU pass, one readback. */
  async forward(token: number, pos: number): Promise<ForwardResult> {
    this.#checkToken(token)
    this.#checkPositions(pos, 1)
    return this.#exclusive(async () => {
      const ops = this.#ready(this.#decode)
      this.#token[0] = token
      const r = await this.#pass(ops, this.#token, pos, true)
      const firstMissing = firstMissingLayer(r.missing)
      if (firstMissing !== null) return this.#missingResult(r, 1, firstMissing, this.#emptyPicks())
      const used = this.#picks(r.routes, 1, this.arch.n_layers - 1, this.#emptyPicks())
      return { logits: r.logits as Float32Array, used }
    })
  }

  /**
   * The prompt `tokens` at positions pos.. in passes of `prefillTokens` tokens (GEMM projections,
   * causal attention over the rows written so far), one readback per pass; the last token's
   * logits and, per layer, the union of the experts used. A missing expert stops at that pass:
   * the result names it with every pick so far, and the engine reruns the whole prefill.
   */
  async prefill(tokens: readonly number[], pos: number): Promise<ForwardResult> {
    if (!Array.isArray(tokens) || tokens.length === 0) throw new RangeError('tokens: at least one token')
    for (const t of tokens) this.#checkToken(t)
    this.#checkPositions(pos, tokens.length)
    return this.#exclusive(async () => {
      const ops = this.#ready(this.#prefill)
      const P = this.prefillTokens
      const used = this.#emptyPicks()
      const ids = new Uint32Array(P)
      for (let start = 0; start < tokens.length; start += P) {
        const T = Math.min(P, tokens.length - start)
        for (let t = 0; t < T; t++) ids[t] = tokens[start + t] as number
        const last = start + T === tokens.length
        const r = await this.#pass(ops, ids.subarray(0, T), pos + start, last)
        const firstMissing = firstMissingLayer(r.missing)
        if (firstMissing !== null) return this.#missingResult(r, T, firstMissing, used)
        this.#picks(r.routes, T, this.arch.n_layers - 1, used)
        if (last) return { logits: r.logits as Float32Array, used }
      }
      throw new Error('unreachable')
    })
  }

  /** Positions restart at 0; stale KV rows beyond the new positions are never read. */
  reset(): void {}

  destroy(): void {
    this.#destroyed = true
    this.#ctx.destroy()
    this.#pool = null
    this.#decode = null
    this.#prefill = null
    this.#slotOf.clear()
  }

  // -------------------------------------------------------------------------------------------
  // The pass, top to bottom

  /** Record the model for the T tokens of `ids` at positions pos.., submit, read back. */
  async #pass(ops: PassOps, ids: Uint32Array, pos: number, withLogits: boolean): Promise<PassResult> {
    const s = this.#s
    const T = ids.length
    this.#step[0] = pos
    this.#step[1] = T
    this.#ctx.write(s.step, 0, this.#step)
    this.#ctx.write(s.tokens, 0, ids)
    const encoder = this.device.createCommandEncoder({ label: 'forward' })
    encoder.clearBuffer(s.missing, 0, 4)
    const pass = encoder.beginComputePass({ label: 'forward' })
    this.#encodeModel(pass, ops, T, withLogits)
    pass.end()
    const layout = this.#stagingLayout
    const routeBytes = T * this.arch.n_layers * this.arch.top_k * ROUTE_BYTES
    const missingBytes = (1 + (2 * routeBytes) / ROUTE_BYTES) * 4
    if (withLogits) encoder.copyBufferToBuffer(s.logits, 0, s.staging, 0, this.arch.vocab_size * 4)
    encoder.copyBufferToBuffer(s.routes, 0, s.staging, layout.routes, routeBytes)
    encoder.copyBufferToBuffer(s.missing, 0, s.staging, layout.missing, missingBytes)
    this.device.queue.submit([encoder.finish()])
    try {
      await s.staging.mapAsync(GPUMapMode.READ, 0, layout.size)
    } catch (e) {
      throw await this.#lostOr(e)
    }
    try {
      const bytes = s.staging.getMappedRange(0, layout.size)
      const logits = withLogits ? new Float32Array(bytes.slice(0, this.arch.vocab_size * 4)) : null
      const routes = new Uint32Array(bytes.slice(layout.routes, layout.routes + routeBytes))
      const m = new Uint32Array(bytes, layout.missing, missingBytes / 4)
      const count = Math.min(m[0] as number, (missingBytes / 4 - 1) / 2)
      const missing = Array.from({ length: count }, (_, i) => ({ layer: m[1 + 2 * i] as number, expert: m[2 + 2 * i] as number }))
      return { logits, routes, missing }
    } finally {
      s.staging.unmap()
    }
  }

  /** The model as llama2.c's forward(): embedding, per layer attention then MoE FFN, classifier. */
  #encodeModel(pass: GPUComputePassEncoder, ops: PassOps, T: number, withLogits: boolean): void {
    record(pass, ops.embed, T) // x = tok_embeddings[token]
    ops.layers.forEach((L, l) => {
      // attention: rmsnorm -> q, k, v (+ bias) -> (qk norm) -> RoPE, cache rows -> softmax(q·k) v -> wo -> residual
      record(pass, L.attentionNorm, T) // xb = rmsnorm(x) * attention_norm
      record(pass, L.wq, T) // q = wq xb (+ bq)
      record(pass, L.wk, T) // k = wk xb (+ bk)
      record(pass, L.wv, T) // v = wv xb (+ bv)
      if (L.qNorm !== null && L.kNorm !== null) {
        record(pass, L.qNorm, T) // q = rmsnorm(q) * q_norm over the whole projection
        record(pass, L.kNorm, T)
      }
      record(pass, L.rope, T) // rotate q, k; k, v -> cache rows pos..
      record(pass, L.attention, T) // att = softmax(q K / sqrt(hd)) V per head, causal
      record(pass, L.wo, T) // xb2 = wo att
      record(pass, L.attentionResidual, T) // x += xb2

      // MoE FFN: rmsnorm -> router logits -> top-k, weights, slots -> experts by slot (+ shared) -> residual
      const moe = this.#moe[l] as { gateUp: Dispatch; down: Dispatch }
      record(pass, L.ffnNorm, T) // xb = rmsnorm(x) * ffn_norm
      record(pass, L.gate, T) // router logits = gate xb
      record(pass, L.router, T) // routes: top-k experts, weights, pool slots; missing list
      record(pass, moe.gateUp, T) // h_k = silu(w1_slot xb) * (w3_slot xb)
      record(pass, moe.down, T) // moe = sum_k weight_k w2_slot h_k
      if (L.shared !== null) {
        record(pass, L.shared.w1, T) // shared expert: sh = silu(w1 xb) * (w3 xb), out = w2 sh
        record(pass, L.shared.w3, T)
        record(pass, L.shared.swiglu, T)
        record(pass, L.shared.w2, T)
        if (L.shared.gate !== null) record(pass, L.shared.gate, T) // gate logit = shared_gate xb
      }
      record(pass, L.ffnResidual, T) // x += moe (+ sigmoid(gate) * shared)
    })
    if (!withLogits) return
    record(pass, ops.finalNorm, T) // xb = rmsnorm(x[last]) * norm
    record(pass, ops.classifier, 1) // logits = output xb
  }

  // -------------------------------------------------------------------------------------------
  // Loading helpers

  #matrix(label: string, v: TensorView): GpuMatrix {
    const m = hostMatrix(v)
    return {
      dtype: m.dtype, rows: m.rows, cols: m.cols, stride: m.stride,
      weights: this.#ctx.upload(label, m.data),
      scales: m.scales === null ? null : this.#ctx.upload(`${label}.scales`, m.scales)
    }
  }

  #vector(label: string, v: TensorView): GPUBuffer {
    return this.#ctx.upload(label, hostVector(v))
  }

  #layerWeights(l: number, t: BlockTensors): LayerWeights {
    const m = (name: string): GpuMatrix => this.#matrix(`l${l}.${name}`, must(t, name))
    const vec = (name: string): GPUBuffer => this.#vector(`l${l}.${name}`, must(t, name))
    const opt = (name: string): GPUBuffer | null => (t.has(name) ? vec(name) : null)
    return {
      attentionNorm: vec('attention_norm'),
      wq: m('wq'),
      wk: m('wk'),
      wv: m('wv'),
      wo: m('wo'),
      bq: opt('bq'),
      bk: opt('bk'),
      bv: opt('bv'),
      qNorm: opt('q_norm'),
      kNorm: opt('k_norm'),
      ffnNorm: vec('ffn_norm'),
      gate: m('gate'),
      shared: t.has('shared_w1') ? { w1: m('shared_w1'), w2: m('shared_w2'), w3: m('shared_w3') } : null,
      sharedGate: t.has('shared_gate') ? m('shared_gate') : null
    }
  }

  /** The token-count-generic kernels of a layer (the same in decode and prefill). */
  async #layerCommon(l: number, L: LayerWeights): Promise<Omit<LayerOps, 'wq' | 'wk' | 'wv' | 'wo' | 'gate' | 'shared'>> {
    const arch = this.arch
    const s = this.#s
    const ctx = this.#ctx
    const qDim = arch.n_heads * arch.head_dim
    const kvDim = arch.n_kv_heads * arch.head_dim
    const kvOffset = l * arch.max_seq_len * kvDim
    const eps = arch.norm_eps
    const qk = L.qNorm !== null && L.kNorm !== null && s.qRaw !== null && s.kRaw !== null
    return {
      attentionNorm: await rmsnorm(ctx, `l${l}.attention_norm`, s.x, L.attentionNorm, s.xb, s.step, { n: arch.dim, eps }),
      qNorm: qk ? await rmsnorm(ctx, `l${l}.q_norm`, s.qRaw as GPUBuffer, L.qNorm as GPUBuffer, s.q, s.step, { n: qDim, eps }) : null,
      kNorm: qk ? await rmsnorm(ctx, `l${l}.k_norm`, s.kRaw as GPUBuffer, L.kNorm as GPUBuffer, s.k, s.step, { n: kvDim, eps }) : null,
      rope: await rope(ctx, `l${l}.rope`, { q: s.q, k: s.k, v: s.v, kCache: s.keyCache, vCache: s.valueCache, table: s.rope, step: s.step },
        { n_heads: arch.n_heads, n_kv_heads: arch.n_kv_heads, head_dim: arch.head_dim, kv_offset: kvOffset, sin_offset: arch.max_seq_len * (arch.head_dim / 2) }),
      attention: await attention(ctx, `l${l}.attention`, { q: s.q, kCache: s.keyCache, vCache: s.valueCache, out: s.att, step: s.step },
        { n_heads: arch.n_heads, n_kv_heads: arch.n_kv_heads, head_dim: arch.head_dim, kv_offset: kvOffset }),
      attentionResidual: await add(ctx, `l${l}.attention_residual`, s.x, s.xb2, s.step, { cols: arch.dim }),
      ffnNorm: await rmsnorm(ctx, `l${l}.ffn_norm`, s.x, L.ffnNorm, s.xb, s.step, { n: arch.dim, eps }),
      router: await router(ctx, `l${l}.router`, { logits: s.routerLogits, residency: s.residency, routes: s.routes, missing: s.missing, step: s.step }, {
        n_experts: arch.n_experts, top_k: arch.top_k, weighting: WEIGHTING_CODE[arch.router_weighting], layer: l, n_layers: arch.n_layers,
        capacity: this.prefillTokens * arch.n_layers * arch.top_k
      }),
      ffnResidual: await add(ctx, `l${l}.ffn_residual`, s.x, s.moe, s.step, { cols: arch.dim, b: s.shOut, g: s.shGate })
    }
  }

  #allocatePool(dtype: GpuDType): ExpertPool {
    const { dim, expert_hidden_dim: h } = this.arch
    const n = this.#slots
    const matrix = (label: string, rows: number, cols: number): GpuMatrix => {
      const stride = Math.ceil(cols / 4)
      const words = n * rows * stride * (dtype === 'int8' ? 1 : 4)
      return {
        dtype, rows, cols, stride,
        weights: this.#ctx.storage(`pool.${label}`, words * 4),
        scales: dtype === 'int8' ? this.#ctx.storage(`pool.${label}.scales`, n * rows * 4) : null
      }
    }
    return { dtype, w1: matrix('w1', h, dim), w3: matrix('w3', h, dim), w2: matrix('w2', dim, h) }
  }

  /** Bind the MoE kernels of every layer to the current pool. */
  async #bindPool(): Promise<void> {
    const pool = this.#pool as ExpertPool
    const s = this.#s
    const p = (l: number): { topK: number; layer: number; nLayers: number } => ({ topK: this.arch.top_k, layer: l, nLayers: this.arch.n_layers })
    const moe: { gateUp: Dispatch; down: Dispatch }[] = []
    for (let l = 0; l < this.arch.n_layers; l++) {
      moe.push({
        gateUp: await moeGateUp(this.#ctx, `l${l}.moe_gate_up`, { w1: pool.w1, w3: pool.w3, x: s.xb, routes: s.routes, h: s.h }, p(l)),
        down: await moeDown(this.#ctx, `l${l}.moe_down`, { w2: pool.w2, h: s.h, routes: s.routes, moe: s.moe }, p(l))
      })
    }
    this.#moe = moe
  }

  #writeSlot(pool: GpuMatrix, slot: number, m: HostMatrix): void {
    this.#ctx.write(pool.weights, slot * m.data.byteLength, m.data)
    if (pool.scales !== null) this.#ctx.write(pool.scales, slot * m.rows * 4, m.scales as Float32Array)
  }

  /**
   * An int8 pool receiving a float expert becomes a float32 pool: the resident int8 experts are
   * read back, widened exactly as the CPU dequantises (q * scale), and written to new buffers.
   */
  async #widenPool(): Promise<ExpertPool> {
    const old = this.#pool as ExpertPool
    const read = async (b: GPUBuffer): Promise<ArrayBuffer> => {
      const staging = this.device.createBuffer({ label: 'widen', size: b.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
      const enc = this.device.createCommandEncoder()
      enc.copyBufferToBuffer(b, 0, staging, 0, b.size)
      this.device.queue.submit([enc.finish()])
      try {
        await staging.mapAsync(GPUMapMode.READ)
      } catch (e) {
        throw await this.#lostOr(e)
      }
      const out = staging.getMappedRange().slice(0)
      staging.destroy()
      return out
    }
    const wide = this.#allocatePool('f32')
    for (const key of ['w1', 'w3', 'w2'] as const) {
      const o = old[key]
      const words = new Uint32Array(await read(o.weights))
      const scales = new Float32Array(await read(o.scales as GPUBuffer))
      const slotWords = o.rows * o.stride
      for (const slot of this.#slotOf.values()) {
        const m: HostMatrix = {
          dtype: 'int8', rows: o.rows, cols: o.cols, stride: o.stride,
          data: words.subarray(slot * slotWords, (slot + 1) * slotWords),
          scales: scales.subarray(slot * o.rows, (slot + 1) * o.rows)
        }
        this.#writeSlot(wide[key], slot, widenMatrix(m))
      }
      this.#ctx.release(o.weights)
      this.#ctx.release(o.scales as GPUBuffer)
    }
    this.#pool = wide
    await this.#bindPool()
    return wide
  }

  // -------------------------------------------------------------------------------------------
  // Results, checks, errors

  /** (n_layers) empty pick lists. */
  #emptyPicks(): number[][] {
    return Array.from({ length: this.arch.n_layers }, () => [])
  }

  /** Add the experts of layers 0..upTo of the T tokens' routes to `into` (per layer, first seen first). */
  #picks(routes: Uint32Array, T: number, upTo: number, into: number[][]): number[][] {
    const { n_layers: layers, top_k: k } = this.arch
    for (let t = 0; t < T; t++) {
      for (let l = 0; l <= upTo; l++) {
        const list = into[l] as number[]
        for (let j = 0; j < k; j++) {
          const e = routes[((t * layers + l) * k + j) * 3] as number
          if (!list.includes(e)) list.push(e)
        }
      }
    }
    return into
  }

  /**
   * The result of a pass that found missing experts: those of the first layer with any (exactly
   * computed up to there), and every pick up to that layer plus `earlier` (picks of completed passes).
   */
  #missingResult(r: PassResult, T: number, layer: number, earlier: number[][]): ForwardResult {
    const wanted = new Set(r.missing.filter((m) => m.layer === layer).map((m) => m.expert))
    const picks = this.#picks(r.routes, T, layer, earlier.map((l) => [...l]))
    const missing = (picks[layer] as number[]).filter((e) => wanted.has(e)).map((expert) => ({ layer, expert }))
    const selected = picks.flatMap((experts, l) => experts.map((expert) => ({ layer: l, expert })))
    return { missing, selected }
  }

  /** Run `f` after every earlier pass or pool change finished. */
  #exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(f, f)
    this.#queue = run.catch(() => {})
    return run
  }

  #usable(): void {
    if (this.#lost !== null) throw new DeviceLostError(this.#lost.reason, this.#lost.message === '' ? 'device lost' : this.#lost.message)
    if (this.#destroyed) throw new Error('webgpu backend: destroyed')
  }

  #ready(ops: PassOps | null): PassOps {
    this.#usable()
    if (ops === null) throw new Error('webgpu backend: loadShared first')
    return ops
  }

  /** After a failed GPU operation: DeviceLostError if the device is (or within a second becomes) lost, else the error. */
  async #lostOr(e: unknown): Promise<unknown> {
    if (this.#lost === null) await Promise.race([this.device.lost, new Promise((resolve) => setTimeout(resolve, 1000))])
    if (this.#lost !== null) return new DeviceLostError(this.#lost.reason, this.#lost.message === '' ? 'device lost' : this.#lost.message)
    return e
  }

  #checkToken(token: number): void {
    if (!Number.isInteger(token) || token < 0 || token >= this.arch.vocab_size) throw new RangeError(`token ${token} outside the vocabulary`)
  }

  #checkPositions(pos: number, count: number): void {
    if (!Number.isInteger(pos) || pos < 0 || pos + count > this.arch.max_seq_len) {
      throw new RangeError(`positions ${pos}..${pos + count - 1} outside 0..${this.arch.max_seq_len - 1}`)
    }
  }

  #checkExpert(layer: number, expert: number): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.arch.n_layers) throw new RangeError(`layer ${layer} of ${this.arch.n_layers}`)
    if (!Number.isInteger(expert) || expert < 0 || expert >= this.arch.n_experts) throw new RangeError(`expert ${expert} of ${this.arch.n_experts}`)
  }
}

/** The lowest layer in a missing list, or null when empty. */
function firstMissingLayer(missing: readonly ExpertRef[]): number | null {
  return missing.length === 0 ? null : Math.min(...missing.map((m) => m.layer))
}

function must(t: BlockTensors, name: string): TensorView {
  const v = t.get(name)
  if (v === undefined) throw new Error(`webgpu backend: missing tensor ${name}`)
  return v
}
