/**
 * The CPU reference backward pass: gradients of the mean next-token cross-entropy with respect to
 * every parameter of the architecture, from the activations a training forward (train-forward.ts)
 * kept. It is the oracle the WebGPU backward kernels are tested against, so it reads top to bottom
 * as the chain rule of forward.ts, in reverse: classifier, final norm, then per layer (last first)
 * MoE FFN (experts, router, shared expert, ffn_norm) and attention (wo, softmax, RoPE, qk norm,
 * q/k/v, attention_norm), then the token embeddings.
 *
 * Numerics: float64 arithmetic and float64 scratch for every activation gradient; parameter
 * gradients are float32 (the parameters' own shape and type), each entry receiving one float64 sum
 * over the positions of a sequence, added in ascending position order. Nothing depends on timing
 * or threads, so gradients are bit-identical from run to run.
 *
 * Routing: top-k selection is piecewise constant, so no gradient flows through *which* experts
 * were chosen. Gradients flow through the routing weights into the router logits (softmax over all
 * experts: dr_e = p_e (dw_e - Σ_j p_j dw_j), dw_e = 0 for unselected experts; softmax over the
 * selected: the same over the selected only; unit: none) and through the selected experts.
 *
 * Extra loss terms (LossTerms; genesis training uses both): distillation mixes the next-token
 * cross-entropy with the cross-entropy against a teacher's distribution at each position, and
 * router balance adds the Switch Transformer's load-balancing loss of every layer. Without them
 * the loss, and every bit of every gradient, is the plain next-token cross-entropy's.
 *
 * Target mode (Proof-of-Learning mining trains one expert, everything else frozen): with a
 * Gradients built for (layer, expert), no parameter gradient other than that expert's is
 * computed, activation gradients are propagated only down to that layer's MoE output, and nothing
 * below it is touched. The target expert's gradient is computed by the same code on the same
 * inputs as in full mode, so it equals the full gradient's slice bit for bit.
 *
 * ```ts
 * const s = new TrainState(arch, 64)
 * const b = new BackwardState(arch, 64)
 * const g = new Gradients(arch, { layer: 2, expert: 1 })   // or new Gradients(arch) for all
 * const loss = trainForward(arch, weights, s, tokens)
 * backward(arch, weights, s, b, tokens, g, 1 / (tokens.length - 1))
 * ```
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import { silu, type ExpertRef, type ReferenceWeights } from '../model/forward.ts'
import { checkTokens, expertOf, type LayerActivations, type Store, type TrainState } from './train-forward.ts'
import type { EmbeddingWeights, ExpertWeights, LayerWeights } from '../model/weights.ts'

// ---------------------------------------------------------------------------------------------
// Loss terms

/**
 * Terms added to a sequence's loss. Per position p, with student logits l_p and next token y:
 *   (1 − λ) · CE(onehot(y), l_p) + λ · CE(teacher_p, l_p)          (λ = teacher.weight, 0 without teacher)
 * and per layer, over the sequence's n positions (f_e: share of the n·top_k routing slots that went
 * to expert e; P_e: mean over positions of softmax(router logits)_e over all experts):
 *   balance · n · E · Σ_e f_e P_e                                   (1 · balance · n when perfectly even)
 * f is piecewise constant (which experts were chosen), so the balance gradient flows through P only.
 */
export interface LossTerms {
  /** Distillation: rows p = 0..n-1 of (n, vocab) hold the teacher's next-token distribution at position p. */
  readonly teacher?: { readonly probs: Float32Array | Float64Array; readonly weight: number }
  /** Load-balancing weight (Switch Transformer's α; 0.01 is customary). @default 0 */
  readonly balance?: number
}

function checkTerms(arch: Architecture, terms: LossTerms, n: number): { lambda: number; probs: Float32Array | Float64Array | null; balance: number } {
  const lambda = terms.teacher?.weight ?? 0
  const probs = terms.teacher?.probs ?? null
  const balance = terms.balance ?? 0
  if (!(lambda >= 0 && lambda <= 1)) throw new RangeError(`terms.teacher.weight: expected a number in [0, 1], got ${lambda}`)
  if (probs !== null && probs.length < n * arch.vocab_size) throw new RangeError(`terms.teacher.probs: expected at least ${n} x ${arch.vocab_size} values, got ${probs.length}`)
  if (!(balance >= 0 && Number.isFinite(balance))) throw new RangeError(`terms.balance: expected a finite number >= 0, got ${balance}`)
  return { lambda, probs, balance }
}

/**
 * The sum over positions of the loss LossTerms define, for the last trainForward on `s` (float64).
 * With no terms it is s.lossSum. backward(..., scale, terms) is the gradient of scale × this.
 */
export function objective(arch: Architecture, s: TrainState, terms: LossTerms = {}): number {
  const n = s.positions
  const { lambda, probs, balance } = checkTerms(arch, terms, n)
  const vocab = arch.vocab_size
  let sum = 0
  for (let p = 0; p < n; p++) {
    let ce = s.losses[p] as number
    if (probs !== null && lambda > 0) {
      const o = p * vocab
      let max = -Infinity
      for (let i = 0; i < vocab; i++) max = Math.max(max, s.logits[o + i] as number)
      let z = 0
      for (let i = 0; i < vocab; i++) z += Math.exp((s.logits[o + i] as number) - max)
      const logZ = Math.log(z) + max
      let soft = 0
      for (let i = 0; i < vocab; i++) soft += (probs[o + i] as number) * (logZ - (s.logits[o + i] as number))
      ce = (1 - lambda) * ce + lambda * soft
    }
    sum += ce
  }
  if (balance > 0) {
    const E = arch.n_experts
    const f = new Float64Array(E)
    const P = new Float64Array(E)
    for (const A of s.layers) {
      routerShares(A, n, E, arch.top_k, f, P)
      let dot = 0
      for (let e = 0; e < E; e++) dot += (f[e] as number) * (P[e] as number)
      sum += balance * n * E * dot
    }
  }
  return sum
}

/** f (E) = share of the n·k routing slots each expert got; P (E) = mean over positions of softmax(router logits). */
function routerShares(A: LayerActivations, n: number, E: number, k: number, f: Float64Array, P: Float64Array): void {
  f.fill(0)
  P.fill(0)
  for (let slot = 0; slot < n * k; slot++) f[A.selected[slot] as number] = (f[A.selected[slot] as number] as number) + 1 / (n * k)
  for (let p = 0; p < n; p++) {
    const ro = p * E
    let max = -Infinity
    for (let e = 0; e < E; e++) max = Math.max(max, A.routerLogits[ro + e] as number)
    let z = 0
    for (let e = 0; e < E; e++) z += Math.exp((A.routerLogits[ro + e] as number) - max)
    for (let e = 0; e < E; e++) P[e] = (P[e] as number) + Math.exp((A.routerLogits[ro + e] as number) - max) / z / n
  }
}

// ---------------------------------------------------------------------------------------------
// Gradients and scratch

/** Parameter gradients, float32, in the weights' own structs and shapes. */
export class Gradients {
  /** null: every parameter; else only this expert's gradient exists. */
  readonly target: ExpertRef | null
  /** null in target mode. */
  readonly embedding: EmbeddingWeights | null
  /** null in target mode. */
  readonly layers: readonly LayerWeights[] | null
  /** [layer][expert]; in target mode only the target is non-null. */
  readonly experts: readonly (readonly (ExpertWeights | null)[])[]
  readonly #all: readonly Float32Array[]

  /**
   * `alloc` makes each tensor, always in the same order (default: a new Float32Array). A
   * full Gradients has the shape of a whole parameter set, so the same layout over shared memory
   * also holds weights (genesis training shares them with its worker threads).
   */
  constructor(arch: Architecture, target: ExpertRef | null = null, alloc: (length: number) => Float32Array = (n) => new Float32Array(n)) {
    if (target !== null) {
      const { layer, expert } = target
      if (!Number.isSafeInteger(layer) || layer < 0 || layer >= arch.n_layers) throw new RangeError(`target.layer: expected integer in [0, ${arch.n_layers - 1}], got ${layer}`)
      if (!Number.isSafeInteger(expert) || expert < 0 || expert >= arch.n_experts) throw new RangeError(`target.expert: expected integer in [0, ${arch.n_experts - 1}], got ${expert}`)
    }
    const { dim, head_dim: hd, vocab_size: vocab } = arch
    const qDim = arch.n_heads * hd
    const kvDim = arch.n_kv_heads * hd
    const f = alloc
    const ffn = (hidden: number): ExpertWeights => ({ w1: f(hidden * dim), w2: f(dim * hidden), w3: f(hidden * dim) })
    const full = target === null
    this.target = target === null ? null : Object.freeze({ layer: target.layer, expert: target.expert })
    this.embedding = full ? { tokEmbeddings: f(vocab * dim), norm: f(dim), output: arch.tie_embeddings ? null : f(vocab * dim) } : null
    this.layers = full
      ? Array.from({ length: arch.n_layers }, () => ({
          attentionNorm: f(dim),
          wq: f(qDim * dim),
          wk: f(kvDim * dim),
          wv: f(kvDim * dim),
          wo: f(dim * qDim),
          bq: arch.attention_bias ? f(qDim) : null,
          bk: arch.attention_bias ? f(kvDim) : null,
          bv: arch.attention_bias ? f(kvDim) : null,
          qNorm: arch.qk_norm ? f(qDim) : null,
          kNorm: arch.qk_norm ? f(kvDim) : null,
          ffnNorm: f(dim),
          gate: f(arch.n_experts * dim),
          shared: arch.shared_expert_hidden_dim > 0 ? ffn(arch.shared_expert_hidden_dim) : null,
          sharedGate: arch.shared_expert_gate ? f(dim) : null
        }))
      : null
    this.experts = Array.from({ length: arch.n_layers }, (_, l) =>
      Array.from({ length: arch.n_experts }, (_, e) => (full || (target.layer === l && target.expert === e) ? ffn(arch.expert_hidden_dim) : null))
    )
    const all: Float32Array[] = []
    if (this.embedding !== null) all.push(this.embedding.tokEmbeddings, this.embedding.norm, ...(this.embedding.output === null ? [] : [this.embedding.output]))
    for (const L of this.layers ?? []) {
      for (const t of [L.attentionNorm, L.wq, L.wk, L.wv, L.wo, L.bq, L.bk, L.bv, L.qNorm, L.kNorm, L.ffnNorm, L.gate, L.sharedGate]) if (t !== null) all.push(t)
      if (L.shared !== null) all.push(L.shared.w1, L.shared.w2, L.shared.w3)
    }
    for (const layer of this.experts) for (const e of layer) if (e !== null) all.push(e.w1, e.w2, e.w3)
    this.#all = Object.freeze(all)
  }

  /** Every gradient tensor (the same arrays), in a fixed order. */
  tensors(): readonly Float32Array[] {
    return this.#all
  }

  /** Set every gradient to zero (backward accumulates). */
  zero(): void {
    for (const t of this.#all) t.fill(0)
  }
}

/** Backward scratch, float64, allocated once for up to maxPositions positions. T = maxPositions. */
export class BackwardState {
  readonly maxPositions: number
  readonly dLogits: Float64Array // (T, vocab)
  readonly dX: Float64Array // (T, dim) gradient of the residual stream at the current point
  readonly dF: Float64Array // (T, dim) gradient of a normed block input (xf, then xa, then xn)
  readonly dH1: Float64Array // (T, max hidden) of the expert being back-propagated, per routed row
  readonly dH3: Float64Array // (T, max hidden)
  readonly dRouteW: Float64Array // (T, top_k) gradient of each routing weight
  readonly dR: Float64Array // (T, n_experts) gradient of the router logits
  readonly dZ: Float64Array // (T) gradient of the shared gate's pre-sigmoid logit
  readonly dAtt: Float64Array // (T, n_heads * hd)
  readonly dQ: Float64Array // (T, n_heads * hd)
  readonly dK: Float64Array // (T, n_kv * hd)
  readonly dV: Float64Array // (T, n_kv * hd)
  readonly dP: Float64Array // (T) one row of attention-weight gradients
  readonly acc: Float64Array // (max width) one row of a sum
  readonly rows: Int32Array // (T) activation rows routed to the expert being back-propagated
  readonly rowPos: Int32Array // (T) the position of each of them
  readonly unitWeights: Float64Array // (T) all ones: the weight of an ungated shared expert's rows
  readonly share: Float64Array // (n_experts) f: share of routing slots per expert (balance term)
  readonly prob: Float64Array // (n_experts) P: mean router probability per expert (balance term)

  constructor(arch: Architecture, maxPositions: number = arch.max_seq_len) {
    if (!Number.isSafeInteger(maxPositions) || maxPositions < 1 || maxPositions > arch.max_seq_len) {
      throw new RangeError(`maxPositions: expected integer in [1, ${arch.max_seq_len}], got ${maxPositions}`)
    }
    const T = maxPositions
    const qDim = arch.n_heads * arch.head_dim
    const kvDim = arch.n_kv_heads * arch.head_dim
    const hidden = Math.max(arch.expert_hidden_dim, arch.shared_expert_hidden_dim)
    this.maxPositions = T
    this.dLogits = new Float64Array(T * arch.vocab_size)
    this.dX = new Float64Array(T * arch.dim)
    this.dF = new Float64Array(T * arch.dim)
    this.dH1 = new Float64Array(T * hidden)
    this.dH3 = new Float64Array(T * hidden)
    this.dRouteW = new Float64Array(T * arch.top_k)
    this.dR = new Float64Array(T * arch.n_experts)
    this.dZ = new Float64Array(T)
    this.dAtt = new Float64Array(T * qDim)
    this.dQ = new Float64Array(T * qDim)
    this.dK = new Float64Array(T * kvDim)
    this.dV = new Float64Array(T * kvDim)
    this.dP = new Float64Array(T)
    this.acc = new Float64Array(Math.max(arch.dim, qDim, hidden, arch.vocab_size))
    this.rows = new Int32Array(T)
    this.rowPos = new Int32Array(T)
    this.unitWeights = new Float64Array(T).fill(1)
    this.share = new Float64Array(arch.n_experts)
    this.prob = new Float64Array(arch.n_experts)
  }
}

// ---------------------------------------------------------------------------------------------
// Backward blocks (output first, no allocation)

/** dW (d, m) += Σ_t dY[t]ᵀ X[t] over rows t < n: each entry one float64 sum over t ascending. */
function accumulateOuter(dW: Float32Array, dY: Float64Array, X: Store, n: number, d: number, m: number, acc: Float64Array): void {
  for (let i = 0; i < d; i++) {
    acc.fill(0, 0, m)
    for (let t = 0; t < n; t++) {
      const dy = dY[t * d + i] as number
      const xo = t * m
      for (let j = 0; j < m; j++) acc[j] = (acc[j] as number) + dy * (X[xo + j] as number)
    }
    const o = i * m
    for (let j = 0; j < m; j++) dW[o + j] = (dW[o + j] as number) + (acc[j] as number)
  }
}

/** db (d) += Σ_t dY[t] over rows t < n. */
function accumulateRows(db: Float32Array, dY: Float64Array, n: number, d: number): void {
  for (let i = 0; i < d; i++) {
    let sum = 0
    for (let t = 0; t < n; t++) sum += dY[t * d + i] as number
    db[i] = (db[i] as number) + sum
  }
}

/** dX (n rows, m) += dY (n rows, d) · W (d, m): the input gradient of x ↦ W·x, row by row. */
function addMatmulT(dX: Float64Array, dY: Float64Array, w: Float32Array, n: number, d: number, m: number, acc: Float64Array): void {
  for (let t = 0; t < n; t++) {
    acc.fill(0, 0, m)
    for (let i = 0; i < d; i++) {
      const dy = dY[t * d + i] as number
      const row = i * m
      for (let j = 0; j < m; j++) acc[j] = (acc[j] as number) + dy * (w[row + j] as number)
    }
    const o = t * m
    for (let j = 0; j < m; j++) dX[o + j] = (dX[o + j] as number) + (acc[j] as number)
  }
}

/**
 * RMSNorm y = w ⊙ x · s, s = (mean(x²) + eps)^-1/2, backward over rows t < n:
 * dw += Σ_t dy ⊙ x · s (when dw is given), then in place dY[t] ← dx[t] = s w ⊙ dy − x s³ (Σ_c dy_c w_c x_c) / width,
 * then dX[t] += dx[t] when dX is given (the residual it feeds).
 */
function rmsnormBackward(dX: Float64Array | null, dY: Float64Array, x: Store, scale: Float64Array, w: Float32Array, dw: Float32Array | null, n: number, width: number): void {
  if (dw !== null) {
    for (let c = 0; c < width; c++) {
      let sum = 0
      for (let t = 0; t < n; t++) sum += (dY[t * width + c] as number) * (x[t * width + c] as number) * (scale[t] as number)
      dw[c] = (dw[c] as number) + sum
    }
  }
  for (let t = 0; t < n; t++) {
    const o = t * width
    const s = scale[t] as number
    let dot = 0
    for (let c = 0; c < width; c++) dot += (dY[o + c] as number) * (w[c] as number) * (x[o + c] as number)
    const k = (s * s * s * dot) / width
    for (let c = 0; c < width; c++) {
      const dx = s * (w[c] as number) * (dY[o + c] as number) - (x[o + c] as number) * k
      dY[o + c] = dx
      if (dX !== null) dX[o + c] = (dX[o + c] as number) + dx
    }
  }
}

/** In place: RoPE backward (the inverse rotation) on every head of each row t < n of d (n, heads * hd). */
function ropeBackward(d: Float64Array, n: number, heads: number, hd: number, table: { cos: Float32Array; sin: Float32Array }): void {
  const half = hd / 2
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const c = table.cos[t * half + i] as number
        const s = table.sin[t * half + i] as number
        const a = (t * heads + h) * hd + 2 * i
        const d0 = d[a] as number
        const d1 = d[a + 1] as number
        d[a] = d0 * c + d1 * s
        d[a + 1] = d1 * c - d0 * s
      }
    }
  }
}

/**
 * Backward of one SwiGLU FFN applied at `count` activation rows (b.rows, positions b.rowPos), each
 * output scaled by weight[row] and added to the residual whose gradient is b.dX:
 * dy = weight · dX[pos]; dg = w2ᵀ dy; dh1 = dg ⊙ h3 ⊙ silu'(h1); dh3 = dg ⊙ silu(h1).
 * Parameter gradients into `grad` when given; input gradients added to b.dF[pos] when `input`.
 */
function swigluBackward(
  b: BackwardState,
  count: number,
  weight: Float64Array,
  h1: Store,
  h3: Store,
  g: Store,
  xf: Store,
  e: ExpertWeights,
  grad: ExpertWeights | null,
  hidden: number,
  dim: number,
  input: boolean
): void {
  const { dX, dF, dH1, dH3, acc, rows, rowPos } = b
  for (let r = 0; r < count; r++) {
    const row = rows[r] as number
    const po = (rowPos[r] as number) * dim
    const ho = row * hidden
    const wgt = weight[row] as number
    acc.fill(0, 0, hidden)
    for (let i = 0; i < dim; i++) {
      const dy = wgt * (dX[po + i] as number)
      const wo = i * hidden
      for (let j = 0; j < hidden; j++) acc[j] = (acc[j] as number) + dy * (e.w2[wo + j] as number)
    }
    for (let j = 0; j < hidden; j++) {
      const a = h1[ho + j] as number
      const sig = 1 / (1 + Math.exp(-a))
      const dg = acc[j] as number
      dH1[r * hidden + j] = dg * (h3[ho + j] as number) * sig * (1 + a * (1 - sig))
      dH3[r * hidden + j] = dg * silu(a)
    }
    if (input) {
      for (let j = 0; j < hidden; j++) {
        const d1 = dH1[r * hidden + j] as number
        const d3 = dH3[r * hidden + j] as number
        const wo = j * dim
        for (let i = 0; i < dim; i++) dF[po + i] = (dF[po + i] as number) + d1 * (e.w1[wo + i] as number) + d3 * (e.w3[wo + i] as number)
      }
    }
  }
  if (grad === null) return
  // w2 (dim, hidden) += Σ_rows (weight · dX[pos]) ⊗ g[row]
  for (let i = 0; i < dim; i++) {
    acc.fill(0, 0, hidden)
    for (let r = 0; r < count; r++) {
      const row = rows[r] as number
      const dy = (weight[row] as number) * (dX[(rowPos[r] as number) * dim + i] as number)
      const go = row * hidden
      for (let j = 0; j < hidden; j++) acc[j] = (acc[j] as number) + dy * (g[go + j] as number)
    }
    for (let j = 0; j < hidden; j++) grad.w2[i * hidden + j] = (grad.w2[i * hidden + j] as number) + (acc[j] as number)
  }
  // w1, w3 (hidden, dim) += Σ_rows dh ⊗ xf[pos]
  accumulateRowsOuter(grad.w1, dH1, xf, rowPos, count, hidden, dim, acc)
  accumulateRowsOuter(grad.w3, dH3, xf, rowPos, count, hidden, dim, acc)
}

/** dW (d, m) += Σ_r dH[r]ᵀ X[pos[r]] over r < count: accumulateOuter on gathered rows of X. */
function accumulateRowsOuter(dW: Float32Array, dH: Float64Array, X: Store, pos: Int32Array, count: number, d: number, m: number, acc: Float64Array): void {
  for (let j = 0; j < d; j++) {
    acc.fill(0, 0, m)
    for (let r = 0; r < count; r++) {
      const dh = dH[r * d + j] as number
      const xo = (pos[r] as number) * m
      for (let i = 0; i < m; i++) acc[i] = (acc[i] as number) + dh * (X[xo + i] as number)
    }
    for (let i = 0; i < m; i++) dW[j * m + i] = (dW[j * m + i] as number) + (acc[i] as number)
  }
}

/** b.rows / b.rowPos = the activation rows (position * top_k + slot) where the router picked `expert`; returns how many. */
function routedRows(b: BackwardState, A: LayerActivations, expert: number, n: number, k: number): number {
  let count = 0
  for (let p = 0; p < n; p++) {
    for (let j = 0; j < k; j++) {
      if (A.selected[p * k + j] === expert) {
        b.rows[count] = p * k + j
        b.rowPos[count] = p
        count++
      }
    }
  }
  return count
}

// ---------------------------------------------------------------------------------------------
// Backward

/**
 * Add to `g` the gradient of `scale` × (sum over positions of the cross-entropy) for the sequence
 * the last trainForward(arch, w, s, tokens) ran on. scale = 1 / (tokens.length - 1) gives the
 * gradient of that forward's mean loss; 1 / (positions in the batch) of a batch's mean loss.
 * `g` accumulates: zero it between steps. With `terms`, the gradient of scale × objective(arch, s, terms).
 */
export function backward(arch: Architecture, w: ReferenceWeights, s: TrainState, b: BackwardState, tokens: ArrayLike<number>, g: Gradients, scale: number, terms: LossTerms = {}): void {
  checkTokens(arch, tokens, Math.min(s.maxPositions, b.maxPositions))
  const n = tokens.length - 1
  if (n !== s.positions) throw new RangeError(`tokens: ${n} positions, but the last trainForward ran ${s.positions}`)
  if (!Number.isFinite(scale)) throw new RangeError(`scale: expected a finite number, got ${scale}`)
  const { lambda, probs, balance } = checkTerms(arch, terms, n)
  const { dim, head_dim: hd, n_heads: heads, n_kv_heads: kvHeads, n_experts: experts, top_k: k, vocab_size: vocab } = arch
  const qDim = heads * hd
  const kvDim = kvHeads * hd
  const group = heads / kvHeads
  const hidden = arch.expert_hidden_dim
  const T = s.maxPositions
  const full = g.target === null
  const lowest = g.target === null ? 0 : g.target.layer
  const { dLogits, dX, dF, acc } = b
  const GE = g.embedding

  // cross-entropy: dlogits = scale · (softmax(logits) − onehot(next token))
  for (let p = 0; p < n; p++) {
    const o = p * vocab
    let max = -Infinity
    for (let i = 0; i < vocab; i++) max = Math.max(max, s.logits[o + i] as number)
    let sum = 0
    for (let i = 0; i < vocab; i++) sum += Math.exp((s.logits[o + i] as number) - max)
    for (let i = 0; i < vocab; i++) dLogits[o + i] = (scale * Math.exp((s.logits[o + i] as number) - max)) / sum
    const target = o + (tokens[p + 1] as number)
    if (probs !== null && lambda > 0) {
      // target distribution (1 − λ) onehot + λ teacher
      for (let i = 0; i < vocab; i++) dLogits[o + i] = (dLogits[o + i] as number) - scale * lambda * (probs[o + i] as number)
      dLogits[target] = (dLogits[target] as number) - scale * (1 - lambda)
    } else {
      dLogits[target] = (dLogits[target] as number) - scale
    }
  }

  // classifier (tied: into tok_embeddings) and final norm
  if (GE !== null) accumulateOuter(GE.output ?? GE.tokEmbeddings, dLogits, s.xn, n, vocab, dim, acc)
  dF.fill(0, 0, n * dim)
  addMatmulT(dF, dLogits, w.embedding.output ?? w.embedding.tokEmbeddings, n, vocab, dim, acc)
  dX.fill(0, 0, n * dim)
  rmsnormBackward(dX, dF, s.residual[arch.n_layers] as Store, s.finalScale, w.embedding.norm, GE === null ? null : GE.norm, n, dim)

  for (let l = arch.n_layers - 1; l >= lowest; l--) {
    const L = w.layers[l] as LayerWeights
    const A = s.layers[l] as LayerActivations
    const G = g.layers === null ? null : (g.layers[l] as LayerWeights)
    const GX = g.experts[l] as readonly (ExpertWeights | null)[]

    // MoE FFN. dX holds dL/d(layer output) = dL/d(moe): the residual passes it on unchanged.
    if (!full && l === lowest) {
      // the target layer: only the target expert's parameter gradient, nothing further down
      const e = (g.target as ExpertRef).expert
      const count = routedRows(b, A, e, n, k)
      swigluBackward(b, count, A.routeWeights, A.h1, A.h3, A.g, A.xf, expertOf(w, l, e), GX[e] as ExpertWeights, hidden, dim, false)
      break
    }
    dF.fill(0, 0, n * dim)
    // routed experts, by expert index
    for (let e = 0; e < experts; e++) {
      const count = routedRows(b, A, e, n, k)
      if (count > 0) swigluBackward(b, count, A.routeWeights, A.h1, A.h3, A.g, A.xf, expertOf(w, l, e), GX[e] ?? null, hidden, dim, true)
    }
    // router: routing weight gradients dw = dX · expert output, then the logits per router_weighting
    const routerGrad = arch.router_weighting !== 'unit' || balance > 0
    if (arch.router_weighting === 'unit' && balance > 0) b.dR.fill(0, 0, n * experts)
    if (arch.router_weighting !== 'unit') {
      for (let p = 0; p < n; p++) {
        for (let j = 0; j < k; j++) {
          const slot = p * k + j
          let dw = 0
          for (let i = 0; i < dim; i++) dw += (dX[p * dim + i] as number) * (A.expertOut[slot * dim + i] as number)
          b.dRouteW[slot] = dw
        }
        let dot = 0
        for (let j = 0; j < k; j++) dot += (b.dRouteW[p * k + j] as number) * (A.routeWeights[p * k + j] as number)
        const ro = p * experts
        if (arch.router_weighting === 'softmax') {
          // p_e = softmax over all experts (forward's pool), dr_e = p_e (dw_e − Σ_j w_j dw_j)
          let max = -Infinity
          for (let e = 0; e < experts; e++) max = Math.max(max, A.routerLogits[ro + e] as number)
          let sum = 0
          for (let e = 0; e < experts; e++) sum += Math.exp((A.routerLogits[ro + e] as number) - max)
          for (let e = 0; e < experts; e++) b.dR[ro + e] = (-Math.exp((A.routerLogits[ro + e] as number) - max) / sum) * dot
          for (let j = 0; j < k; j++) {
            const e = A.selected[p * k + j] as number
            b.dR[ro + e] = (A.routeWeights[p * k + j] as number) * ((b.dRouteW[p * k + j] as number) - dot)
          }
        } else {
          // softmax over the selected: dr_e = w_e (dw_e − Σ_j w_j dw_j) for selected e, 0 elsewhere
          b.dR.fill(0, ro, ro + experts)
          for (let j = 0; j < k; j++) {
            const e = A.selected[p * k + j] as number
            b.dR[ro + e] = (A.routeWeights[p * k + j] as number) * ((b.dRouteW[p * k + j] as number) - dot)
          }
        }
      }
    }
    if (balance > 0) {
      // d(balance · n · E · Σ_e f_e P_e)/d r_pc = balance · E · p_c (f_c − Σ_e f_e p_e), f held fixed
      routerShares(A, n, experts, k, b.share, b.prob)
      for (let p = 0; p < n; p++) {
        const ro = p * experts
        let max = -Infinity
        for (let e = 0; e < experts; e++) max = Math.max(max, A.routerLogits[ro + e] as number)
        let z = 0
        for (let e = 0; e < experts; e++) z += Math.exp((A.routerLogits[ro + e] as number) - max)
        let dot = 0
        for (let e = 0; e < experts; e++) dot += (b.share[e] as number) * (Math.exp((A.routerLogits[ro + e] as number) - max) / z)
        for (let c = 0; c < experts; c++) {
          const pc = Math.exp((A.routerLogits[ro + c] as number) - max) / z
          b.dR[ro + c] = (b.dR[ro + c] as number) + scale * balance * experts * pc * ((b.share[c] as number) - dot)
        }
      }
    }
    if (routerGrad) {
      if (G !== null) accumulateOuter(G.gate, b.dR, A.xf, n, experts, dim, acc)
      addMatmulT(dF, b.dR, L.gate, n, experts, dim, acc)
    }
    // shared expert, scaled by its gate: d(gate) = dX · shared output, through the sigmoid
    if (L.shared !== null) {
      if (L.sharedGate !== null) {
        for (let p = 0; p < n; p++) {
          let dgate = 0
          for (let i = 0; i < dim; i++) dgate += (dX[p * dim + i] as number) * (A.sharedOut[p * dim + i] as number)
          const sg = A.sharedGate[p] as number
          const dz = dgate * sg * (1 - sg)
          b.dZ[p] = dz
          for (let i = 0; i < dim; i++) dF[p * dim + i] = (dF[p * dim + i] as number) + dz * (L.sharedGate[i] as number)
        }
        if (G !== null && G.sharedGate !== null) accumulateOuter(G.sharedGate, b.dZ, A.xf, n, 1, dim, acc)
      }
      for (let p = 0; p < n; p++) {
        b.rows[p] = p
        b.rowPos[p] = p
      }
      swigluBackward(b, n, L.sharedGate === null ? b.unitWeights : A.sharedGate, A.sharedH1, A.sharedH3, A.sharedG, A.xf, L.shared, G === null ? null : G.shared, arch.shared_expert_hidden_dim, dim, true)
    }
    // ffn_norm: dX becomes dL/d(xMid)
    rmsnormBackward(dX, dF, A.xMid, A.ffnScale, L.ffnNorm, G === null ? null : G.ffnNorm, n, dim)

    // attention output projection: dAtt = woᵀ dX
    if (G !== null) accumulateOuter(G.wo, dX, A.att, n, dim, qDim, acc)
    b.dAtt.fill(0, 0, n * qDim)
    addMatmulT(b.dAtt, dX, L.wo, n, dim, qDim, acc)
    // per head: att = P v, P = softmax(q·k / sqrt(hd)) over u <= t
    b.dQ.fill(0, 0, n * qDim)
    b.dK.fill(0, 0, n * kvDim)
    b.dV.fill(0, 0, n * kvDim)
    const inv = 1 / Math.sqrt(hd)
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group)
      for (let t = 0; t < n; t++) {
        const pr = (h * T + t) * T
        const qo = t * qDim + h * hd
        let dot = 0
        for (let u = 0; u <= t; u++) {
          const vo = u * kvDim + kvh * hd
          let dp = 0
          for (let i = 0; i < hd; i++) dp += (b.dAtt[qo + i] as number) * (A.v[vo + i] as number)
          b.dP[u] = dp
          dot += (A.probs[pr + u] as number) * dp
        }
        for (let u = 0; u <= t; u++) {
          const a = A.probs[pr + u] as number
          const ds = a * ((b.dP[u] as number) - dot) * inv
          const ko = u * kvDim + kvh * hd
          for (let i = 0; i < hd; i++) {
            b.dQ[qo + i] = (b.dQ[qo + i] as number) + ds * (A.k[ko + i] as number)
            b.dK[ko + i] = (b.dK[ko + i] as number) + ds * (A.q[qo + i] as number)
            b.dV[ko + i] = (b.dV[ko + i] as number) + a * (b.dAtt[qo + i] as number)
          }
        }
      }
    }
    ropeBackward(b.dQ, n, heads, hd, s.rope)
    ropeBackward(b.dK, n, kvHeads, hd, s.rope)
    if (L.qNorm !== null && L.kNorm !== null) {
      rmsnormBackward(null, b.dQ, A.qRaw, A.qScale, L.qNorm, G === null ? null : G.qNorm, n, qDim)
      rmsnormBackward(null, b.dK, A.kRaw, A.kScale, L.kNorm, G === null ? null : G.kNorm, n, kvDim)
    }
    if (G !== null) {
      if (G.bq !== null && G.bk !== null && G.bv !== null) {
        accumulateRows(G.bq, b.dQ, n, qDim)
        accumulateRows(G.bk, b.dK, n, kvDim)
        accumulateRows(G.bv, b.dV, n, kvDim)
      }
      accumulateOuter(G.wq, b.dQ, A.xa, n, qDim, dim, acc)
      accumulateOuter(G.wk, b.dK, A.xa, n, kvDim, dim, acc)
      accumulateOuter(G.wv, b.dV, A.xa, n, kvDim, dim, acc)
    }
    // q, k, v projections, then attention_norm: dX becomes dL/d(layer input)
    dF.fill(0, 0, n * dim)
    addMatmulT(dF, b.dQ, L.wq, n, qDim, dim, acc)
    addMatmulT(dF, b.dK, L.wk, n, kvDim, dim, acc)
    addMatmulT(dF, b.dV, L.wv, n, kvDim, dim, acc)
    rmsnormBackward(dX, dF, s.residual[l] as Store, A.attnScale, L.attentionNorm, G === null ? null : G.attentionNorm, n, dim)
  }

  // token embeddings: each position's residual gradient into its token's row
  if (GE !== null) {
    for (let p = 0; p < n; p++) {
      const row = (tokens[p] as number) * dim
      for (let i = 0; i < dim; i++) GE.tokEmbeddings[row + i] = (GE.tokEmbeddings[row + i] as number) + (dX[p * dim + i] as number)
    }
  }
}
