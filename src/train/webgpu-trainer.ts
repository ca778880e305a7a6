/**
 * Proof-of-Learning training on WebGPU: one expert (layer l, expert e) trained with everything
 * else frozen, the same contract as the CPU reference's trainExpert (src/train/train.ts): the same
 * options, the same batches drawn from the seed, the gradient of each batch's mean loss, AdamW on
 * the expert's w1, w2, w3; the trained expert (float32) and each step's batch loss come back.
 *
 * ```ts
 * const { expert, losses } = await trainExpertWebGpu(device, model, { target: { layer: 2, expert: 1 }, sequences, steps: 50, batchSize: 4, learningRate: 1e-3, seed: 7 })
 * ```
 *
 * `model` is a FloatModel (float32, as the CPU trains) or the decoded blocks a backend loads
 * (BlockModel): then frozen matrices stay int8 with their row scales where stored so, as the
 * inference forward reads them; the trained expert is always float32 on the GPU.
 *
 * The math is train-forward.ts and backward.ts (target mode) in float32 on our WGSL kernels:
 * - forward over a whole sequence from position 0, reusing the prefill kernels (embedding,
 *   rmsnorm, matmul, rope into a per-layer K/V cache, router, swiglu) plus training kernels that
 *   keep what the backward needs: each route's h1, h3, g (moe_up_train) and expert output
 *   (moe_down_train), each residual (moe_combine, out of place); attention_train is attention.wgsl
 *   with a thread per (head, token) instead of a workgroup (3x faster on SwiftShader, where its
 *   barriers dominated a training pass);
 * - backward: cross-entropy, classifier and final norm, then each layer above the target in full
 *   (experts, router weights, shared expert and its gate, ffn_norm, wo, attention, RoPE, qk norm,
 *   q/k/v, attention_norm: activation gradients only, every weight there being frozen), then the
 *   target layer's expert alone: dW2 = Σ (w dx) gᵀ, dW1 = Σ dh1 xfᵀ, dW3 = Σ dh3 xfᵀ over the
 *   routes to it (weight_grad). Nothing below the target layer is touched.
 * - AdamW (adamw.wgsl) on the trained buffer, whose bias corrections are written per step.
 *
 * Everything is allocated and bound at create: weights, activations for up to `maxPositions`
 * positions (layers below the target share one set), backward scratch, gradients and moments, and
 * every Params uniform. A step is one command buffer: per sequence of the batch, two copies put
 * its length and tokens where the kernels read them, then one compute pass records its forward and
 * backward; then AdamW; then one readback of the per-position losses. The only per-step writes are
 * the batch's tokens, the loss scale (1 / positions) and AdamW's Params.
 *
 * Numerics: float32 throughout (the CPU reference accumulates in float64), so gradients agree with
 * backward.ts to float32 rounding, which test/train/webgpu-trainer.test.ts bounds; losses are summed in float64
 * on the host in position order, as trainExpert sums them.
 *
 * @module
 */
import { aint } from '../assert.ts'
import { EMBEDDING_NAME, expertName, routerName } from '../chain/header.ts'
import type { Architecture } from '../chain/meta.ts'
import { AdamW, type AdamWOptions } from './adamw.ts'
import { ropeTable, type ExpertRef } from '../model/forward.ts'
import type { FloatModel, TrainOptions, TrainResult } from './train.ts'
import { sequenceDraw } from '../model/random.ts'
import { checkTokens, expertOf } from './train-forward.ts'
import type { ExpertWeights } from '../model/weights.ts'
import { dequantize, type TensorView } from '../tensor/tensorblock.ts'
import { GpuContext, gpuFeatures, record, type Dispatch } from '../gpu/context.ts'
import { adamw, adamwStepParams, packAdamwParams, type AdamwSettings } from '../gpu/kernels/adamw.ts'
import { attentionBackwardKv } from '../gpu/kernels/attention_backward_kv.ts'
import { attentionBackwardQ } from '../gpu/kernels/attention_backward_q.ts'
import { attentionTrain } from '../gpu/kernels/attention_train.ts'
import { crossEntropy } from '../gpu/kernels/cross_entropy.ts'
import { embedding } from '../gpu/kernels/embedding.ts'
import { matmul } from '../gpu/kernels/matmul.ts'
import { matmulDx } from '../gpu/kernels/matmul_dx.ts'
import { moeCombine } from '../gpu/kernels/moe_combine.ts'
import { moeDownBackward } from '../gpu/kernels/moe_down_backward.ts'
import { moeDownTrain } from '../gpu/kernels/moe_down_train.ts'
import { moeUpBackward } from '../gpu/kernels/moe_up_backward.ts'
import { moeUpTrain } from '../gpu/kernels/moe_up_train.ts'
import { rmsnorm } from '../gpu/kernels/rmsnorm.ts'
import { rmsnormBackward } from '../gpu/kernels/rmsnorm_backward.ts'
import { rope } from '../gpu/kernels/rope.ts'
import { ropeBackward } from '../gpu/kernels/rope_backward.ts'
import { ROUTE_BYTES, WEIGHTING_CODE, router } from '../gpu/kernels/router.ts'
import { routerBackward } from '../gpu/kernels/router_backward.ts'
import { sigmoidGateBackward } from '../gpu/kernels/sigmoid_gate_backward.ts'
import { swiglu } from '../gpu/kernels/swiglu.ts'
import { swigluBackward } from '../gpu/kernels/swiglu_backward.ts'
import { weightGrad } from '../gpu/kernels/weight_grad.ts'
import { trainedOffsets, type RouteParams, type TrainExperts } from '../gpu/kernels/_experts.ts'
import { ATTENTION_MAX_HEAD_DIM, tuningFor, type Tuning } from '../gpu/tuning.ts'
import { gpuDType, hostMatrix, hostVector, type GpuDType, type GpuMatrix, type HostMatrix } from '../gpu/upload.ts'
import { DeviceLostError, type BlockTensors } from '../engine/interface.ts'
import type { LayerWeights } from '../engine/webgpu.ts' // a `layer<L>.router` block on the GPU, frozen here

// ---------------------------------------------------------------------------------------------
// Options and models

/** The decoded blocks of a model, as a backend loads them (int8 matrices stay int8 on the GPU). */
export interface BlockModel {
  readonly architecture: Architecture
  /** Block name (`embedding`, `layer<L>.router`, `layer<L>.expert<E>`) -> its checked tensors; every expert present. */
  readonly blocks: ReadonlyMap<string, BlockTensors>
}

/** Float32 weights (the CPU reference's) or decoded blocks. */
export type TrainModel = FloatModel | BlockModel

/** What the GPU needs beyond trainExpert's options. */
export interface WebGpuTrainOptions {
  /** WGSL language features of the GPU instance; default: the browser's, else none. */
  readonly wgslLanguageFeatures?: ReadonlySet<string>
  /** Kernel sizes. @default tuningFor(device.adapterInfo) */
  readonly tuning?: Tuning
}

export interface WebGpuTrainerOptions extends WebGpuTrainOptions {
  /** The expert to train; everything else stays frozen. */
  readonly target: ExpertRef
  /** Most positions (tokens - 1) of a sequence. @default max_seq_len */
  readonly maxPositions?: number
  /** Most sequences per step. @default 1 */
  readonly maxBatch?: number
  /** @default 1e-3 */
  readonly learningRate?: number
  /** AdamW's other settings (adamw.ts defaults). */
  readonly adamw?: Omit<AdamWOptions, 'lr'>
}

/** A batch's gradient of the target expert (float32, new arrays) and its losses. */
export interface BatchGradients {
  readonly expert: ExpertWeights
  /** Σ over the batch's positions of the cross-entropy (float64 sum of float32 losses). */
  readonly lossSum: number
  readonly positions: number
}

// ---------------------------------------------------------------------------------------------
// Weights, activations, scratch

/** What one layer's forward keeps for the backward. P = maxPositions, k = top_k. */
interface LayerActivations {
  readonly x: GPUBuffer // (P, dim) the layer's input (residual stream)
  readonly xMid: GPUBuffer // (P, dim) residual after attention
  readonly xf: GPUBuffer // (P, dim) ffn_norm(xMid): router and expert input
  readonly qRaw: GPUBuffer | null // (P, n_heads * hd) before qk norm
  readonly kRaw: GPUBuffer | null // (P, n_kv * hd)
  readonly q: GPUBuffer // (P, n_heads * hd) after qk norm and RoPE
  readonly routerLogits: GPUBuffer // (P, n_experts)
  readonly hs: GPUBuffer // h1, h3, g of each route: each (P * k, expert_hidden)
  readonly expertOut: GPUBuffer // (P * k, dim) each route's w2 g, before its weight
  readonly sh1: GPUBuffer | null // (P, shared_hidden) shared w1 xf
  readonly sh3: GPUBuffer | null // (P, shared_hidden) shared w3 xf
  readonly sh: GPUBuffer | null // (P, shared_hidden) silu(sh1) ⊙ sh3
  readonly shOut: GPUBuffer | null // (P, dim) shared expert output
  readonly shZ: GPUBuffer | null // (P) shared gate logit
}

/** Buffers every layer shares: forward scratch, caches, routing, backward scratch, batch I/O. */
interface TrainState {
  readonly xa: GPUBuffer // (P, dim) attention_norm(x)
  readonly k: GPUBuffer // (P, n_kv * hd) keys before RoPE
  readonly v: GPUBuffer // (P, n_kv * hd)
  readonly att: GPUBuffer // (P, n_heads * hd) attention output
  readonly xb2: GPUBuffer // (P, dim) wo·att
  readonly keyCache: GPUBuffer // (n_layers, P, n_kv * hd) rotated keys of every layer
  readonly valueCache: GPUBuffer // (n_layers, P, n_kv * hd)
  readonly rope: GPUBuffer // cos (max_seq_len, hd / 2) then sin
  readonly residency: GPUBuffer // (n_layers, n_experts) u32: slot = layer * n_experts + expert
  readonly routes: GPUBuffer // (P, n_layers, top_k) Route
  readonly missing: GPUBuffer // the router's missing list (never used: every expert is resident)
  readonly xOut: GPUBuffer // (P, dim) the last layer's output
  readonly xn: GPUBuffer // (P, dim) final norm
  readonly logits: GPUBuffer // (P, vocab)
  readonly losses: GPUBuffer // (P) cross-entropy of each position
  // backward
  readonly dLogits: GPUBuffer // (P, vocab)
  readonly dX: GPUBuffer // (P, dim) gradient of the residual stream where the backward is
  readonly dF: GPUBuffer // (P, dim) gradient of a normed block input (xn, xf, xa)
  readonly dAtt: GPUBuffer // (P, n_heads * hd)
  readonly dQ: GPUBuffer // (P, n_heads * hd) of the rotated queries, then rotated back
  readonly dK: GPUBuffer // (P, n_kv * hd)
  readonly dV: GPUBuffer // (P, n_kv * hd)
  readonly dQRaw: GPUBuffer | null // (P, n_heads * hd) before qk norm
  readonly dKRaw: GPUBuffer | null // (P, n_kv * hd)
  readonly probs: GPUBuffer // (n_heads, P, P) attention rows
  readonly dScores: GPUBuffer // (n_heads, P, P)
  readonly dhs: GPUBuffer // dh1, dh3: each (P * k, expert_hidden); dy (P * k, dim)
  readonly dR: GPUBuffer | null // (P, n_experts) router logit gradients
  readonly dSG: GPUBuffer | null // (P, shared_hidden) shared W2ᵀ dX
  readonly dSH1: GPUBuffer | null // (P, shared_hidden)
  readonly dSH3: GPUBuffer | null // (P, shared_hidden)
  readonly dZ: GPUBuffer | null // (P) shared gate logit gradient
  // the trained expert
  readonly grad: GPUBuffer // like experts.trained: W1 | W3 | W2 gradients
  readonly m: GPUBuffer // AdamW moments, same layout
  readonly vm: GPUBuffer
  // per step
  readonly step: GPUBuffer // uniform { pos 0, n_tokens, 0, 0 } of the sequence being recorded
  readonly tokens: GPUBuffer // (P + 1) u32 token ids of that sequence
  readonly scale: GPUBuffer // (1) float32: 1 / positions of the batch
  readonly batchSteps: GPUBuffer // (maxBatch, 4) u32: each sequence's step uniform
  readonly batchTokens: GPUBuffer // (maxBatch, P + 1) u32
  readonly lossStaging: GPUBuffer // MAP_READ (maxBatch, P) float32
}

// ---------------------------------------------------------------------------------------------
// The trainer

export class WebGpuTrainer {
  readonly arch: Architecture
  readonly device: GPUDevice
  readonly target: ExpertRef
  readonly maxPositions: number
  readonly maxBatch: number
  /** AdamW settings (lr, betas, eps, weight decay). */
  readonly adamw: AdamwSettings
  /** The frozen pool's type: int8 when every expert matrix is stored int8. */
  readonly expertDType: GpuDType
  readonly #ctx: GpuContext
  readonly #experts: TrainExperts
  readonly #s: TrainState
  #ops: readonly Dispatch[] = []
  #update: { readonly dispatch: Dispatch; readonly params: GPUBuffer } | null = null
  #t = 0
  #lost: GPUDeviceLostInfo | null = null
  #destroyed = false
  #busy = false
  // host scratch for a step's tables, allocated once
  readonly #stepWords: Uint32Array
  readonly #tokenWords: Uint32Array
  readonly #scale = new Float32Array(1)

  private constructor(device: GPUDevice, arch: Architecture, ctx: GpuContext, experts: TrainExperts, s: TrainState, o: { target: ExpertRef; maxPositions: number; maxBatch: number; adamw: AdamwSettings; dtype: GpuDType }) {
    this.device = device
    this.arch = arch
    this.#ctx = ctx
    this.#experts = experts
    this.#s = s
    this.target = Object.freeze({ layer: o.target.layer, expert: o.target.expert })
    this.maxPositions = o.maxPositions
    this.maxBatch = o.maxBatch
    this.adamw = Object.freeze({ ...o.adamw })
    this.expertDType = o.dtype
    this.#stepWords = new Uint32Array(o.maxBatch * 4)
    this.#tokenWords = new Uint32Array(o.maxBatch * (o.maxPositions + 1))
    device.lost.then((info) => {
      this.#lost = info
    }, () => {})
  }

  /** Upload `model`, allocate everything for `options`, compile and bind every kernel. */
  static async create(device: GPUDevice, model: TrainModel, options: WebGpuTrainerOptions): Promise<WebGpuTrainer> {
    const arch = model.architecture
    const { target } = options
    aint(target?.layer, 'target.layer', 0, arch.n_layers - 1)
    aint(target?.expert, 'target.expert', 0, arch.n_experts - 1)
    const maxPositions = options.maxPositions ?? arch.max_seq_len
    aint(maxPositions, 'maxPositions', 1, arch.max_seq_len)
    const maxBatch = options.maxBatch ?? 1
    aint(maxBatch, 'maxBatch', 1)
    if (arch.head_dim > ATTENTION_MAX_HEAD_DIM) throw new RangeError(`webgpu trainer: head_dim ${arch.head_dim} above the attention kernels' ${ATTENTION_MAX_HEAD_DIM}`)
    const settings = new AdamW([], { ...options.adamw, lr: options.learningRate ?? 1e-3 }) // checks them by name
    const features = options.wgslLanguageFeatures ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu?.wgslLanguageFeatures
    const ctx = new GpuContext(device, gpuFeatures(features, device), options.tuning ?? tuningFor((device as { adapterInfo?: GPUAdapterInfo }).adapterInfo))
    try {
      const host = hostModel(model, target)
      const experts = uploadExperts(ctx, arch, host)
      const s = allocateState(ctx, arch, maxPositions, maxBatch, trainedOffsets(experts).total)
      const adamwSettings = { lr: settings.lr, beta1: settings.beta1, beta2: settings.beta2, eps: settings.eps, weightDecay: settings.weightDecay }
      const trainer = new WebGpuTrainer(device, arch, ctx, experts, s, { target, maxPositions, maxBatch, adamw: adamwSettings, dtype: host.expertDType })
      await trainer.#bind(host)
      return trainer
    } catch (e) {
      ctx.destroy()
      throw e
    }
  }

  /** AdamW steps taken. */
  get steps(): number {
    return this.#t
  }

  /**
   * Forward and target-only backward of `batch` without an update: the gradient of the batch's
   * mean loss (mean over every predicted token) for the target expert, as backward.ts's
   * Gradients(arch, target) holds it after backward(…, 1 / positions) on each sequence.
   */
  async gradients(batch: readonly ArrayLike<number>[]): Promise<BatchGradients> {
    const r = await this.#exclusive(() => this.#run(batch, false))
    const grad = new Float32Array(await this.#read(this.#s.grad, trainedOffsets(this.#experts).total * 4))
    return { expert: this.#unpack(grad), lossSum: r.lossSum, positions: r.positions }
  }

  /** One training step on `batch`: returns its mean loss (before the update), then AdamW updates the expert. */
  async step(batch: readonly ArrayLike<number>[]): Promise<number> {
    const r = await this.#exclusive(() => this.#run(batch, true))
    return r.lossSum / r.positions
  }

  /** The trained expert now (float32, new arrays). */
  async expert(): Promise<ExpertWeights> {
    this.#usable()
    return this.#unpack(new Float32Array(await this.#read(this.#experts.trained, trainedOffsets(this.#experts).total * 4)))
  }

  destroy(): void {
    this.#destroyed = true
    this.#ctx.destroy()
  }

  // -------------------------------------------------------------------------------------------
  // A step, top to bottom

  /** Record the batch's forward and backward passes (and AdamW when `update`), submit, read the losses back. */
  async #run(batch: readonly ArrayLike<number>[], update: boolean): Promise<{ lossSum: number; positions: number }> {
    this.#usable()
    const P = this.maxPositions
    if (!Array.isArray(batch) || batch.length < 1 || batch.length > this.maxBatch) throw new RangeError(`batch: expected 1..${this.maxBatch} sequences, got ${Array.isArray(batch) ? batch.length : typeof batch}`)
    batch.forEach((tokens, i) => checkTokens(this.arch, tokens, P, `batch[${i}]`))
    const s = this.#s
    // the batch's step uniforms and tokens, and the loss scale
    let positions = 0
    batch.forEach((tokens, i) => {
      const n = tokens.length - 1
      positions += n
      this.#stepWords.set([0, n, 0, 0], i * 4)
      for (let j = 0; j <= n; j++) this.#tokenWords[i * (P + 1) + j] = tokens[j] as number
    })
    this.#scale[0] = 1 / positions
    this.#ctx.write(s.batchSteps, 0, this.#stepWords.subarray(0, batch.length * 4))
    this.#ctx.write(s.batchTokens, 0, this.#tokenWords.subarray(0, batch.length * (P + 1)))
    this.#ctx.write(s.scale, 0, this.#scale)
    if (update) {
      const n = trainedOffsets(this.#experts).total
      this.#ctx.write((this.#update as { params: GPUBuffer }).params, 0, packAdamwParams(adamwStepParams(n, this.adamw, this.#t + 1)))
    }

    const encoder = this.device.createCommandEncoder({ label: 'train step' })
    encoder.clearBuffer(s.grad)
    batch.forEach((tokens, i) => {
      const n = tokens.length - 1
      encoder.copyBufferToBuffer(s.batchSteps, i * 16, s.step, 0, 16)
      encoder.copyBufferToBuffer(s.batchTokens, i * (P + 1) * 4, s.tokens, 0, (n + 1) * 4)
      const pass = encoder.beginComputePass({ label: `sequence ${i}` })
      for (const d of this.#ops) record(pass, d, n)
      pass.end()
      encoder.copyBufferToBuffer(s.losses, 0, s.lossStaging, i * P * 4, n * 4)
    })
    if (update) {
      const pass = encoder.beginComputePass({ label: 'adamw' })
      record(pass, (this.#update as { dispatch: Dispatch }).dispatch, 1)
      pass.end()
    }
    this.device.queue.submit([encoder.finish()])
    if (update) this.#t++

    const bytes = batch.length * P * 4
    try {
      await s.lossStaging.mapAsync(GPUMapMode.READ, 0, bytes)
    } catch (e) {
      throw await this.#lostOr(e)
    }
    let lossSum = 0
    try {
      const losses = new Float32Array(s.lossStaging.getMappedRange(0, bytes))
      batch.forEach((tokens, i) => {
        let sum = 0 // each sequence's sum in position order, then the batch's, as trainExpert sums
        for (let p = 0; p < tokens.length - 1; p++) sum += losses[i * P + p] as number
        lossSum += sum
      })
    } finally {
      s.lossStaging.unmap()
    }
    return { lossSum, positions }
  }

  // -------------------------------------------------------------------------------------------
  // Binding: the forward and backward programs, as train-forward.ts and backward.ts read

  async #bind(host: HostModel): Promise<void> {
    const arch = this.arch
    const ctx = this.#ctx
    const s = this.#s
    const X = this.#experts
    const P = this.maxPositions
    const lt = this.target.layer
    const { dim, head_dim: hd, n_heads: heads, n_kv_heads: kvHeads, top_k: k, n_layers: layers, norm_eps: eps } = arch
    const qDim = heads * hd
    const kvDim = kvHeads * hd
    const sh = arch.shared_expert_hidden_dim
    const H = arch.expert_hidden_dim
    const sinOffset = arch.max_seq_len * (hd / 2)
    const matrix = (label: string, m: HostMatrix): GpuMatrix => uploadMatrix(ctx, label, m)
    const vector = (label: string, v: Float32Array | null): GPUBuffer | null => (v === null ? null : ctx.upload(label, v))

    // frozen weights
    const tokEmbeddings = matrix('tok_embeddings', host.tokEmbeddings)
    const output = host.output === null ? tokEmbeddings : matrix('output', host.output)
    const norm = ctx.upload('norm', host.norm)
    const W: LayerWeights[] = host.layers.map((L, l) => ({
      attentionNorm: ctx.upload(`l${l}.attention_norm`, L.attentionNorm),
      wq: matrix(`l${l}.wq`, L.wq),
      wk: matrix(`l${l}.wk`, L.wk),
      wv: matrix(`l${l}.wv`, L.wv),
      wo: matrix(`l${l}.wo`, L.wo),
      bq: vector(`l${l}.bq`, L.bq),
      bk: vector(`l${l}.bk`, L.bk),
      bv: vector(`l${l}.bv`, L.bv),
      qNorm: vector(`l${l}.q_norm`, L.qNorm),
      kNorm: vector(`l${l}.k_norm`, L.kNorm),
      ffnNorm: ctx.upload(`l${l}.ffn_norm`, L.ffnNorm),
      gate: matrix(`l${l}.gate`, L.gate),
      shared: L.shared === null ? null : { w1: matrix(`l${l}.shared_w1`, L.shared.w1), w2: matrix(`l${l}.shared_w2`, L.shared.w2), w3: matrix(`l${l}.shared_w3`, L.shared.w3) },
      sharedGate: L.sharedGate === null ? null : matrix(`l${l}.shared_gate`, L.sharedGate)
    }))

    // activations: layers from the target up keep their own, the layers below share one set
    const f32 = (label: string, n: number): GPUBuffer => ctx.storage(label, n * 4)
    const activations = (label: string): LayerActivations => ({
      x: f32(`${label}.x`, P * dim),
      xMid: f32(`${label}.x_mid`, P * dim),
      xf: f32(`${label}.xf`, P * dim),
      qRaw: arch.qk_norm ? f32(`${label}.q_raw`, P * qDim) : null,
      kRaw: arch.qk_norm ? f32(`${label}.k_raw`, P * kvDim) : null,
      q: f32(`${label}.q`, P * qDim),
      routerLogits: f32(`${label}.router_logits`, P * arch.n_experts),
      hs: f32(`${label}.hs`, 3 * P * k * H),
      expertOut: f32(`${label}.expert_out`, P * k * dim),
      sh1: sh > 0 ? f32(`${label}.sh1`, P * sh) : null,
      sh3: sh > 0 ? f32(`${label}.sh3`, P * sh) : null,
      sh: sh > 0 ? f32(`${label}.sh`, P * sh) : null,
      shOut: sh > 0 ? f32(`${label}.sh_out`, P * dim) : null,
      shZ: sh > 0 && arch.shared_expert_gate ? f32(`${label}.sh_z`, P) : null
    })
    const below = lt > 0 ? activations('below') : null
    const A: LayerActivations[] = Array.from({ length: layers }, (_, l) => (l >= lt ? activations(`l${l}`) : (below as LayerActivations)))
    const route = (l: number): RouteParams => ({ topK: k, layer: l, nLayers: layers, targetLayer: lt, targetExpert: this.target.expert, rowsMax: P * k })
    const ops: Dispatch[] = []
    const op = async (d: Promise<Dispatch>): Promise<void> => void ops.push(await d)

    // ---- forward: embedding, per layer attention then MoE FFN, final norm, classifier
    await op(embedding(ctx, 'embedding', tokEmbeddings, s.tokens, (A[0] as LayerActivations).x, s.step)) // x = tok_embeddings[token]
    for (let l = 0; l < layers; l++) {
      const L = W[l] as LayerWeights
      const a = A[l] as LayerActivations
      const out = l + 1 < layers ? (A[l + 1] as LayerActivations).x : s.xOut
      const kvOffset = l * P * kvDim
      // attention: rmsnorm -> q, k, v (+ bias) -> (qk norm) -> RoPE into the layer's cache -> causal softmax(q·k) v -> wo -> residual
      await op(rmsnorm(ctx, `l${l}.attention_norm`, a.x, L.attentionNorm, s.xa, s.step, { n: dim, eps }))
      await op(matmul(ctx, `l${l}.wq`, L.wq, s.xa, a.qRaw ?? a.q, s.step, { bias: L.bq }))
      await op(matmul(ctx, `l${l}.wk`, L.wk, s.xa, a.kRaw ?? s.k, s.step, { bias: L.bk }))
      await op(matmul(ctx, `l${l}.wv`, L.wv, s.xa, s.v, s.step, { bias: L.bv }))
      if (a.qRaw !== null && a.kRaw !== null && L.qNorm !== null && L.kNorm !== null) {
        await op(rmsnorm(ctx, `l${l}.q_norm`, a.qRaw, L.qNorm, a.q, s.step, { n: qDim, eps }))
        await op(rmsnorm(ctx, `l${l}.k_norm`, a.kRaw, L.kNorm, s.k, s.step, { n: kvDim, eps }))
      }
      await op(rope(ctx, `l${l}.rope`, { q: a.q, k: s.k, v: s.v, kCache: s.keyCache, vCache: s.valueCache, table: s.rope, step: s.step },
        { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, kv_offset: kvOffset, sin_offset: sinOffset }))
      await op(attentionTrain(ctx, `l${l}.attention`, { q: a.q, kCache: s.keyCache, vCache: s.valueCache, out: s.att, step: s.step },
        { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, kv_offset: kvOffset }))
      await op(matmul(ctx, `l${l}.wo`, L.wo, s.att, s.xb2, s.step))
      await op(moeCombine(ctx, `l${l}.attention_residual`, { x: a.x, e: s.xb2, y: a.xMid, step: s.step }, { cols: dim, terms: 1 })) // xMid = x + wo·att
      // MoE FFN: rmsnorm -> router logits -> top-k, weights -> each route's expert (h1, h3, g kept) -> shared expert -> residual
      await op(rmsnorm(ctx, `l${l}.ffn_norm`, a.xMid, L.ffnNorm, a.xf, s.step, { n: dim, eps }))
      await op(matmul(ctx, `l${l}.gate`, L.gate, a.xf, a.routerLogits, s.step))
      await op(router(ctx, `l${l}.router`, { logits: a.routerLogits, residency: s.residency, routes: s.routes, missing: s.missing, step: s.step },
        { n_experts: arch.n_experts, top_k: k, weighting: WEIGHTING_CODE[arch.router_weighting], layer: l, n_layers: layers, capacity: 0 }))
      await op(moeUpTrain(ctx, `l${l}.moe_up`, { experts: X, x: a.xf, routes: s.routes, hs: a.hs, step: s.step }, route(l)))
      await op(moeDownTrain(ctx, `l${l}.moe_down`, { experts: X, hs: a.hs, routes: s.routes, out: a.expertOut, step: s.step }, route(l)))
      if (L.shared !== null && a.sh1 !== null && a.sh3 !== null && a.sh !== null && a.shOut !== null) {
        await op(matmul(ctx, `l${l}.shared_w1`, L.shared.w1, a.xf, a.sh1, s.step))
        await op(matmul(ctx, `l${l}.shared_w3`, L.shared.w3, a.xf, a.sh3, s.step))
        await op(swiglu(ctx, `l${l}.shared_swiglu`, a.sh1, a.sh3, a.sh, s.step, { cols: sh }))
        await op(matmul(ctx, `l${l}.shared_w2`, L.shared.w2, a.sh, a.shOut, s.step))
        if (L.sharedGate !== null && a.shZ !== null) await op(matmul(ctx, `l${l}.shared_gate`, L.sharedGate, a.xf, a.shZ, s.step))
      }
      await op(moeCombine(ctx, `l${l}.ffn_residual`, { x: a.xMid, e: a.expertOut, routes: s.routes, s: a.shOut, z: a.shZ, y: out, step: s.step },
        { cols: dim, terms: k, layer: l, nLayers: layers })) // x' = xMid + Σ_k w_k e_k (+ gate · shared)
    }
    await op(rmsnorm(ctx, 'final_norm', s.xOut, norm, s.xn, s.step, { n: dim, eps })) // xn = rmsnorm(x) * norm, every position
    await op(matmul(ctx, 'classifier', output, s.xn, s.logits, s.step)) // logits = output xn

    // ---- backward: cross-entropy, classifier, final norm, the layers above the target, the target expert
    await op(crossEntropy(ctx, 'cross_entropy', { logits: s.logits, tokens: s.tokens, scale: s.scale, dlogits: s.dLogits, losses: s.losses, step: s.step }, { vocab: arch.vocab_size, target_offset: 1 }))
    await op(matmulDx(ctx, 'classifier.dx', output, s.dLogits, s.dF, s.step)) // dxn = dlogits · output
    await op(rmsnormBackward(ctx, 'final_norm.dx', s.dF, s.xOut, norm, s.dX, s.step, { n: dim, eps })) // dX = dL/d(last layer output)
    for (let l = layers - 1; l > lt; l--) {
      const L = W[l] as LayerWeights
      const a = A[l] as LayerActivations
      const kvOffset = l * P * kvDim
      // MoE FFN: dX = dL/d(layer output) = dL/d(moe); the residual passes it to xMid unchanged
      await op(moeDownBackward(ctx, `l${l}.moe_down.dx`, { experts: X, dx: s.dX, hs: a.hs, routes: s.routes, dhs: s.dhs, step: s.step }, { ...route(l), targetOnly: false }))
      await op(moeUpBackward(ctx, `l${l}.moe_up.dx`, { experts: X, dhs: s.dhs, routes: s.routes, df: s.dF, step: s.step }, route(l))) // dF = Σ W1ᵀ dh1 + W3ᵀ dh3
      if (arch.router_weighting !== 'unit' && s.dR !== null) {
        // routing weights: dw_k = dX · e_k, through the softmax into the router logits, dF += dr · gate
        await op(routerBackward(ctx, `l${l}.router.dx`, { dx: s.dX, e: a.expertOut, routes: s.routes, logits: a.routerLogits, dr: s.dR, step: s.step },
          { nExperts: arch.n_experts, topK: k, weighting: arch.router_weighting, layer: l, nLayers: layers, dim }))
        await op(matmulDx(ctx, `l${l}.gate.dx`, L.gate, s.dR, s.dF, s.step, { accumulate: true }))
      }
      if (L.shared !== null && a.sh1 !== null && a.sh3 !== null && a.shOut !== null && s.dSG !== null && s.dSH1 !== null && s.dSH3 !== null) {
        // shared expert, scaled by its gate: d(gate logit) = (dX · shared) σ (1 − σ), dF += dz · shared_gate
        if (L.sharedGate !== null && a.shZ !== null && s.dZ !== null) {
          await op(sigmoidGateBackward(ctx, `l${l}.shared_gate.dz`, s.dX, a.shOut, a.shZ, s.dZ, s.step, { cols: dim }))
          await op(matmulDx(ctx, `l${l}.shared_gate.dx`, L.sharedGate, s.dZ, s.dF, s.step, { accumulate: true }))
        }
        await op(matmulDx(ctx, `l${l}.shared_w2.dx`, L.shared.w2, s.dX, s.dSG, s.step)) // dsg = W2ᵀ dX
        await op(swigluBackward(ctx, `l${l}.shared_swiglu.dx`, { dg: s.dSG, a: a.sh1, b: a.sh3, z: a.shZ, da: s.dSH1, db: s.dSH3, step: s.step }, { cols: sh }))
        await op(matmulDx(ctx, `l${l}.shared_w1.dx`, L.shared.w1, s.dSH1, s.dF, s.step, { accumulate: true }))
        await op(matmulDx(ctx, `l${l}.shared_w3.dx`, L.shared.w3, s.dSH3, s.dF, s.step, { accumulate: true }))
      }
      await op(rmsnormBackward(ctx, `l${l}.ffn_norm.dx`, s.dF, a.xMid, L.ffnNorm, s.dX, s.step, { n: dim, eps, accumulate: true })) // dX = dL/d(xMid)
      // attention: wo, softmax(q·k) v per head, RoPE, qk norm, q/k/v, attention_norm
      await op(matmulDx(ctx, `l${l}.wo.dx`, L.wo, s.dX, s.dAtt, s.step)) // datt = woᵀ dX
      await op(attentionBackwardQ(ctx, `l${l}.attention.dq`, { q: a.q, kCache: s.keyCache, vCache: s.valueCache, datt: s.dAtt, dq: s.dQ, probs: s.probs, dscores: s.dScores, step: s.step },
        { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, kv_offset: kvOffset, pitch: P }))
      await op(attentionBackwardKv(ctx, `l${l}.attention.dkv`, { q: a.q, datt: s.dAtt, probs: s.probs, dscores: s.dScores, dk: s.dK, dv: s.dV, step: s.step },
        { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, pitch: P }))
      await op(ropeBackward(ctx, `l${l}.rope.dx`, s.dQ, s.dK, s.rope, s.step, { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, sin_offset: sinOffset }))
      let dq = s.dQ
      let dk = s.dK
      if (a.qRaw !== null && a.kRaw !== null && L.qNorm !== null && L.kNorm !== null && s.dQRaw !== null && s.dKRaw !== null) {
        await op(rmsnormBackward(ctx, `l${l}.q_norm.dx`, s.dQ, a.qRaw, L.qNorm, s.dQRaw, s.step, { n: qDim, eps }))
        await op(rmsnormBackward(ctx, `l${l}.k_norm.dx`, s.dK, a.kRaw, L.kNorm, s.dKRaw, s.step, { n: kvDim, eps }))
        dq = s.dQRaw
        dk = s.dKRaw
      }
      await op(matmulDx(ctx, `l${l}.wq.dx`, L.wq, dq, s.dF, s.step)) // dF = dq·wq + dk·wk + dv·wv
      await op(matmulDx(ctx, `l${l}.wk.dx`, L.wk, dk, s.dF, s.step, { accumulate: true }))
      await op(matmulDx(ctx, `l${l}.wv.dx`, L.wv, s.dV, s.dF, s.step, { accumulate: true }))
      await op(rmsnormBackward(ctx, `l${l}.attention_norm.dx`, s.dF, a.x, L.attentionNorm, s.dX, s.step, { n: dim, eps, accumulate: true })) // dX = dL/d(layer input)
    }
    // the target layer: only the target expert's routes, its weight gradients, nothing further down
    const a = A[lt] as LayerActivations
    const rows = P * k
    const offsets = trainedOffsets(X)
    await op(moeDownBackward(ctx, 'target.moe_down.dx', { experts: X, dx: s.dX, hs: a.hs, routes: s.routes, dhs: s.dhs, step: s.step }, { ...route(lt), targetOnly: true }))
    // w2 (dim, hidden) += Σ_routes (w dX[t]) gᵀ; w1, w3 (hidden, dim) += Σ_routes dh xf[t]ᵀ
    await op(weightGrad(ctx, 'target.w2.grad', s.dhs, a.hs, s.grad, s.step, { rows: dim, cols: H, perToken: k, dyOffset: 2 * rows * H, xOffset: 2 * rows * H, dwOffset: offsets.w2 }))
    await op(weightGrad(ctx, 'target.w1.grad', s.dhs, a.xf, s.grad, s.step, { rows: H, cols: dim, perToken: k, xDiv: k }))
    await op(weightGrad(ctx, 'target.w3.grad', s.dhs, a.xf, s.grad, s.step, { rows: H, cols: dim, perToken: k, xDiv: k, dyOffset: rows * H, dwOffset: offsets.w3 }))
    this.#ops = ops

    // AdamW on the whole trained buffer (W1 | W3 | W2; padding columns stay zero)
    this.#update = await adamw(ctx, 'adamw', { p: X.trained, g: s.grad, m: s.m, v: s.vm }, offsets.total)
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  /** The trained buffer's layout (W1 | W3 | W2, rows padded) -> ExpertWeights. */
  #unpack(data: Float32Array): ExpertWeights {
    const { hidden: H, dim: D, strideD, strideH } = this.#experts
    const o = trainedOffsets(this.#experts)
    return {
      w1: unpadRows(data.subarray(0, o.w3), H, D, strideD * 4),
      w3: unpadRows(data.subarray(o.w3, o.w2), H, D, strideD * 4),
      w2: unpadRows(data.subarray(o.w2, o.total), D, H, strideH * 4)
    }
  }

  /** A copy of `bytes` of `buffer` (a temporary staging buffer: not on the step path). */
  async #read(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({ label: 'train readback', size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
    try {
      const encoder = this.device.createCommandEncoder()
      encoder.copyBufferToBuffer(buffer, 0, staging, 0, bytes)
      this.device.queue.submit([encoder.finish()])
      try {
        await staging.mapAsync(GPUMapMode.READ)
      } catch (e) {
        throw await this.#lostOr(e)
      }
      return staging.getMappedRange().slice(0)
    } finally {
      staging.destroy()
    }
  }

  /** Steps share buffers: one at a time. */
  async #exclusive<T>(f: () => Promise<T>): Promise<T> {
    if (this.#busy) throw new Error('webgpu trainer: a step is already running (await it first)')
    this.#busy = true
    try {
      return await f()
    } finally {
      this.#busy = false
    }
  }

  #usable(): void {
    if (this.#lost !== null) throw new DeviceLostError(this.#lost.reason, this.#lost.message === '' ? 'device lost' : this.#lost.message)
    if (this.#destroyed) throw new Error('webgpu trainer: destroyed')
  }

  /** After a failed GPU operation: DeviceLostError if the device is (or within a second becomes) lost, else the error. */
  async #lostOr(e: unknown): Promise<unknown> {
    if (this.#lost === null) await Promise.race([this.device.lost, new Promise((resolve) => setTimeout(resolve, 1000))])
    if (this.#lost !== null) return new DeviceLostError(this.#lost.reason, this.#lost.message === '' ? 'device lost' : this.#lost.message)
    return e
  }
}

// ---------------------------------------------------------------------------------------------
// trainExpert on WebGPU

/**
 * trainExpert (src/train/train.ts) on `device`: the same options, batches (seeded shuffle,
 * reshuffled every pass), loss history and result; `model` as WebGpuTrainer.create takes it.
 */
export async function trainExpertWebGpu(device: GPUDevice, model: TrainModel, options: TrainOptions & WebGpuTrainOptions): Promise<TrainResult> {
  const arch = model.architecture
  const { target, sequences, steps, signal, onStep } = options
  const batchSize = options.batchSize ?? 1
  const seed = options.seed ?? 0
  aint(steps, 'steps', 0)
  aint(batchSize, 'batchSize', 1)
  aint(seed, 'seed', 0, 2 ** 32 - 1)
  signal?.throwIfAborted()
  const longest = checkSequences(arch, sequences)
  const trainer = await WebGpuTrainer.create(device, model, {
    target, maxPositions: longest - 1, maxBatch: batchSize, learningRate: options.learningRate ?? 1e-3,
    ...(options.adamw === undefined ? {} : { adamw: options.adamw }),
    ...(options.wgslLanguageFeatures === undefined ? {} : { wgslLanguageFeatures: options.wgslLanguageFeatures }),
    ...(options.tuning === undefined ? {} : { tuning: options.tuning })
  })
  try {
    const batch: ArrayLike<number>[] = new Array(batchSize)
    const losses = new Float64Array(steps)
    const draw = sequenceDraw(sequences.length, seed) // trainExpert's batches, seed for seed
    for (let step = 0; step < steps; step++) {
      for (let i = 0; i < batchSize; i++) batch[i] = sequences[draw()] as ArrayLike<number>
      const loss = await trainer.step(batch)
      losses[step] = loss
      onStep?.(step, loss)
      signal?.throwIfAborted()
    }
    return { expert: await trainer.expert(), losses }
  } finally {
    trainer.destroy()
  }
}

// ---------------------------------------------------------------------------------------------
// Host-side weights

/** A `layer<L>.router` block on the host, in kernel layout. */
interface HostLayer {
  readonly attentionNorm: Float32Array
  readonly wq: HostMatrix
  readonly wk: HostMatrix
  readonly wv: HostMatrix
  readonly wo: HostMatrix
  readonly bq: Float32Array | null
  readonly bk: Float32Array | null
  readonly bv: Float32Array | null
  readonly qNorm: Float32Array | null
  readonly kNorm: Float32Array | null
  readonly ffnNorm: Float32Array
  readonly gate: HostMatrix
  readonly shared: { readonly w1: HostMatrix; readonly w2: HostMatrix; readonly w3: HostMatrix } | null
  readonly sharedGate: HostMatrix | null
}

/** The model on the host in kernel layout; experts converted one at a time as they are uploaded. */
interface HostModel {
  readonly tokEmbeddings: HostMatrix
  readonly norm: Float32Array
  readonly output: HostMatrix | null
  readonly layers: readonly HostLayer[]
  /** The frozen pool's type. */
  readonly expertDType: GpuDType
  /** Expert (l, e) as `expertDType`. */
  expert(l: number, e: number): { readonly w1: HostMatrix; readonly w2: HostMatrix; readonly w3: HostMatrix }
  /** The trained expert's starting weights, float32 (dequantised as the CPU reference reads them). */
  readonly target: ExpertWeights
}

function hostModel(model: TrainModel, target: ExpertRef): HostModel {
  const arch = model.architecture
  const { dim, vocab_size: vocab, expert_hidden_dim: H } = arch
  const qDim = arch.n_heads * arch.head_dim
  const kvDim = arch.n_kv_heads * arch.head_dim
  const sh = arch.shared_expert_hidden_dim
  if ('weights' in model) {
    const w = model.weights
    const m = (title: string, v: Float32Array, rows: number, cols: number): HostMatrix => padMatrix(title, v, rows, cols)
    return {
      tokEmbeddings: m('tok_embeddings', w.embedding.tokEmbeddings, vocab, dim),
      norm: w.embedding.norm,
      output: w.embedding.output === null ? null : m('output', w.embedding.output, vocab, dim),
      layers: w.layers.map((L, l) => ({
        attentionNorm: L.attentionNorm,
        wq: m(`layer${l}.wq`, L.wq, qDim, dim),
        wk: m(`layer${l}.wk`, L.wk, kvDim, dim),
        wv: m(`layer${l}.wv`, L.wv, kvDim, dim),
        wo: m(`layer${l}.wo`, L.wo, dim, qDim),
        bq: L.bq, bk: L.bk, bv: L.bv, qNorm: L.qNorm, kNorm: L.kNorm,
        ffnNorm: L.ffnNorm,
        gate: m(`layer${l}.gate`, L.gate, arch.n_experts, dim),
        shared: L.shared === null ? null : { w1: m(`layer${l}.shared_w1`, L.shared.w1, sh, dim), w2: m(`layer${l}.shared_w2`, L.shared.w2, dim, sh), w3: m(`layer${l}.shared_w3`, L.shared.w3, sh, dim) },
        sharedGate: L.sharedGate === null ? null : m(`layer${l}.shared_gate`, L.sharedGate, 1, dim)
      })),
      expertDType: 'f32',
      expert: (l, e) => {
        const x = expertOf(w, l, e)
        return { w1: m(`layer${l}.expert${e}.w1`, x.w1, H, dim), w2: m(`layer${l}.expert${e}.w2`, x.w2, dim, H), w3: m(`layer${l}.expert${e}.w3`, x.w3, H, dim) }
      },
      target: expertOf(w, target.layer, target.expert)
    }
  }
  const block = (name: string): BlockTensors => {
    const b = model.blocks.get(name)
    if (b === undefined) throw new RangeError(`model: no ${name} block (training needs every block)`)
    return b
  }
  const tensor = (b: string, name: string): TensorView => {
    const v = block(b).get(name)
    if (v === undefined) throw new RangeError(`model: ${b} has no ${name}`)
    return v
  }
  const opt = (b: string, name: string): Float32Array | null => {
    const v = block(b).get(name)
    return v === undefined ? null : hostVector(v)
  }
  let int8 = true
  for (let l = 0; l < arch.n_layers; l++) for (let e = 0; e < arch.n_experts; e++) for (const n of ['w1', 'w2', 'w3']) if (gpuDType(tensor(expertName(l, e), n)) !== 'int8') int8 = false
  const expertDType: GpuDType = int8 ? 'int8' : 'f32'
  const emb = block(EMBEDDING_NAME)
  const targetName = expertName(target.layer, target.expert)
  return {
    tokEmbeddings: hostMatrix(tensor(EMBEDDING_NAME, 'tok_embeddings')),
    norm: hostVector(tensor(EMBEDDING_NAME, 'norm')),
    output: emb.has('output') ? hostMatrix(tensor(EMBEDDING_NAME, 'output')) : null,
    layers: Array.from({ length: arch.n_layers }, (_, l) => {
      const r = routerName(l)
      const t = block(r)
      return {
        attentionNorm: hostVector(tensor(r, 'attention_norm')),
        wq: hostMatrix(tensor(r, 'wq')),
        wk: hostMatrix(tensor(r, 'wk')),
        wv: hostMatrix(tensor(r, 'wv')),
        wo: hostMatrix(tensor(r, 'wo')),
        bq: opt(r, 'bq'), bk: opt(r, 'bk'), bv: opt(r, 'bv'), qNorm: opt(r, 'q_norm'), kNorm: opt(r, 'k_norm'),
        ffnNorm: hostVector(tensor(r, 'ffn_norm')),
        gate: hostMatrix(tensor(r, 'gate')),
        shared: t.has('shared_w1') ? { w1: hostMatrix(tensor(r, 'shared_w1')), w2: hostMatrix(tensor(r, 'shared_w2')), w3: hostMatrix(tensor(r, 'shared_w3')) } : null,
        sharedGate: t.has('shared_gate') ? hostMatrix(tensor(r, 'shared_gate')) : null
      }
    }),
    expertDType,
    expert: (l, e) => {
      const b = expertName(l, e)
      return { w1: hostMatrix(tensor(b, 'w1'), expertDType), w2: hostMatrix(tensor(b, 'w2'), expertDType), w3: hostMatrix(tensor(b, 'w3'), expertDType) }
    },
    target: { w1: dequantize(tensor(targetName, 'w1')), w2: dequantize(tensor(targetName, 'w2')), w3: dequantize(tensor(targetName, 'w3')) }
  }
}

function uploadMatrix(ctx: GpuContext, label: string, m: HostMatrix): GpuMatrix {
  return {
    dtype: m.dtype, rows: m.rows, cols: m.cols, stride: m.stride,
    weights: ctx.upload(label, m.data),
    scales: m.scales === null ? null : ctx.upload(`${label}.scales`, m.scales)
  }
}

/** Every expert into the frozen pool (slot = layer * n_experts + expert), the target also into the float32 trained buffer. */
function uploadExperts(ctx: GpuContext, arch: Architecture, host: HostModel): TrainExperts {
  const { dim: D, expert_hidden_dim: H, n_layers: layers, n_experts: E } = arch
  const strideD = Math.ceil(D / 4)
  const strideH = Math.ceil(H / 4)
  const slots = layers * E
  const int8 = host.expertDType === 'int8'
  const group = int8 ? 4 : 16 // bytes per 4-column group
  const w13 = ctx.storage('pool.w13', slots * 2 * H * strideD * group)
  const w2 = ctx.storage('pool.w2', slots * D * strideH * group)
  const s13 = int8 ? ctx.storage('pool.w13.scales', slots * 2 * H * 4) : null
  const s2 = int8 ? ctx.storage('pool.w2.scales', slots * D * 4) : null
  for (let l = 0; l < layers; l++) {
    for (let e = 0; e < E; e++) {
      const slot = l * E + e
      const x = host.expert(l, e)
      ctx.write(w13, slot * 2 * H * strideD * group, x.w1.data)
      ctx.write(w13, (slot * 2 + 1) * H * strideD * group, x.w3.data)
      ctx.write(w2, slot * D * strideH * group, x.w2.data)
      if (s13 !== null && s2 !== null) {
        ctx.write(s13, slot * 2 * H * 4, x.w1.scales as Float32Array)
        ctx.write(s13, (slot * 2 + 1) * H * 4, x.w3.scales as Float32Array)
        ctx.write(s2, slot * D * 4, x.w2.scales as Float32Array)
      }
    }
  }
  const shape = { hidden: H, dim: D, strideD, strideH }
  const o = trainedOffsets(shape)
  const trainedHost = new Float32Array(o.total)
  trainedHost.set(padRows(host.target.w1, H, D), 0)
  trainedHost.set(padRows(host.target.w3, H, D), o.w3)
  trainedHost.set(padRows(host.target.w2, D, H), o.w2)
  return { dtype: host.expertDType, ...shape, w13, s13, w2, s2, trained: ctx.upload('trained', trainedHost) }
}

/** Every buffer a step uses, for up to P positions and `maxBatch` sequences. */
function allocateState(ctx: GpuContext, arch: Architecture, P: number, maxBatch: number, trainedFloats: number): TrainState {
  const { dim, n_layers: layers, top_k: k, vocab_size: vocab } = arch
  const qDim = arch.n_heads * arch.head_dim
  const kvDim = arch.n_kv_heads * arch.head_dim
  const sh = arch.shared_expert_hidden_dim
  const H = arch.expert_hidden_dim
  const f32 = (label: string, n: number): GPUBuffer => ctx.storage(label, n * 4)
  const table = ropeTable(arch)
  const ropeData = new Float32Array(table.cos.length * 2)
  ropeData.set(table.cos)
  ropeData.set(table.sin, table.cos.length)
  const residency = Uint32Array.from({ length: layers * arch.n_experts }, (_, i) => i)
  return {
    xa: f32('xa', P * dim),
    k: f32('k', P * kvDim),
    v: f32('v', P * kvDim),
    att: f32('att', P * qDim),
    xb2: f32('xb2', P * dim),
    keyCache: f32('key_cache', layers * P * kvDim),
    valueCache: f32('value_cache', layers * P * kvDim),
    rope: ctx.upload('rope_table', ropeData),
    residency: ctx.upload('residency', residency),
    routes: ctx.storage('routes', P * layers * k * ROUTE_BYTES),
    missing: ctx.storage('missing', 16),
    xOut: f32('x_out', P * dim),
    xn: f32('xn', P * dim),
    logits: f32('logits', P * vocab),
    losses: f32('losses', P),
    dLogits: f32('d_logits', P * vocab),
    dX: f32('d_x', P * dim),
    dF: f32('d_f', P * dim),
    dAtt: f32('d_att', P * qDim),
    dQ: f32('d_q', P * qDim),
    dK: f32('d_k', P * kvDim),
    dV: f32('d_v', P * kvDim),
    dQRaw: arch.qk_norm ? f32('d_q_raw', P * qDim) : null,
    dKRaw: arch.qk_norm ? f32('d_k_raw', P * kvDim) : null,
    probs: f32('probs', arch.n_heads * P * P),
    dScores: f32('d_scores', arch.n_heads * P * P),
    dhs: f32('d_hs', 2 * P * k * H + P * k * dim),
    dR: arch.router_weighting === 'unit' ? null : f32('d_r', P * arch.n_experts),
    dSG: sh > 0 ? f32('d_sg', P * sh) : null,
    dSH1: sh > 0 ? f32('d_sh1', P * sh) : null,
    dSH3: sh > 0 ? f32('d_sh3', P * sh) : null,
    dZ: sh > 0 && arch.shared_expert_gate ? f32('d_z', P) : null,
    grad: f32('grad', trainedFloats),
    m: f32('adamw.m', trainedFloats),
    vm: f32('adamw.v', trainedFloats),
    step: ctx.uniform('step', new Uint32Array(4)),
    tokens: ctx.storage('tokens', (P + 1) * 4),
    scale: ctx.storage('scale', 4),
    batchSteps: ctx.storage('batch_steps', maxBatch * 16),
    batchTokens: ctx.storage('batch_tokens', maxBatch * (P + 1) * 4),
    lossStaging: ctx.storage('loss_staging', maxBatch * P * 4, 0x0001 | 0x0008) // MAP_READ | COPY_DST
  }
}

/** Row-major float32 (rows, cols) as a float32 HostMatrix (rows padded to whole vec4s). */
function padMatrix(title: string, values: Float32Array, rows: number, cols: number): HostMatrix {
  if (!(values instanceof Float32Array) || values.length !== rows * cols) throw new RangeError(`model: ${title} should be a Float32Array of ${rows} x ${cols}`)
  const data = padRows(values, rows, cols)
  return { dtype: 'f32', rows, cols, stride: Math.ceil(cols / 4), data: new Uint32Array(data.buffer, data.byteOffset, data.length), scales: null }
}

/** Row-major (rows, cols) -> rows of ceil(cols / 4) * 4 floats, zero padded. */
function padRows(values: Float32Array, rows: number, cols: number): Float32Array {
  const pitch = Math.ceil(cols / 4) * 4
  if (pitch === cols) return values.slice()
  const out = new Float32Array(rows * pitch)
  for (let r = 0; r < rows; r++) out.set(values.subarray(r * cols, (r + 1) * cols), r * pitch)
  return out
}

/** Rows of `pitch` floats -> row-major (rows, cols), a new array. */
function unpadRows(data: Float32Array, rows: number, cols: number, pitch: number): Float32Array {
  const out = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * pitch, r * pitch + cols), r * cols)
  return out
}

// ---------------------------------------------------------------------------------------------
// Batches: the same draw as train.ts's trainExpert, so a seed gives both the same batches

/** Checks every sequence; returns the longest length. */
function checkSequences(arch: Architecture, sequences: readonly ArrayLike<number>[]): number {
  if (!Array.isArray(sequences) || sequences.length === 0) throw new RangeError('sequences: expected a non-empty array of token sequences')
  let longest = 0
  sequences.forEach((tokens, i) => {
    checkTokens(arch, tokens, arch.max_seq_len, `sequences[${i}]`)
    longest = Math.max(longest, tokens.length)
  })
  return longest
}
