/**
 * The training forward pass: a whole token sequence at once, causal attention over it, and every
 * activation the backward pass (backward.ts) needs kept in a TrainState allocated once.
 *
 * It computes exactly what forward.ts computes token by token: the same operations in the same
 * order, float64 accumulation, and (precision 'f32') float32 storage of every value forward.ts
 * stores. Its logits at position p are forward.ts's logits for (tokens[p], p) bit for bit, so the
 * loss it reports is the loss validators compute with the reference. Precision 'f64' runs the same
 * code with float64 storage: the exact function of the (float32) weights, for gradient checks by
 * finite differences, where float32 rounding noise would swamp the differences.
 *
 * Loss: the mean over positions p = 0..n-1 (n = tokens.length - 1) of
 * -log softmax(logits_p)[tokens[p + 1]], in nats per token, computed in float64 as
 * src/engine/engine.ts's crossEntropy does: log(sum exp(l - max)) + max - l[target].
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import { ropeTable, silu, type ReferenceWeights } from '../model/forward.ts'
import type { ExpertWeights, LayerWeights } from '../model/weights.ts'

/** Storage of activations: 'f32' is what forward.ts stores, 'f64' is for gradient checks. */
export type Precision = 'f32' | 'f64'
export type Store = Float32Array | Float64Array

// ---------------------------------------------------------------------------------------------
// Neural-net blocks over rows (output first, offsets instead of subarrays: no allocation)

/** out[o..o+d) = W (d, n) · x[xo..xo+n) [+ bias (d)]: forward.ts's matmul at offsets. */
export function matvec(out: Store, o: number, x: Store, xo: number, w: Float32Array, n: number, d: number, bias: Float32Array | null): void {
  for (let i = 0; i < d; i++) {
    let sum = 0
    const row = i * n
    for (let j = 0; j < n; j++) sum += (w[row + j] as number) * (x[xo + j] as number)
    out[o + i] = bias === null ? sum : sum + (bias[i] as number)
  }
}

/**
 * For r < count: row outRow[r] of out (·, d) = W (d, n) · row xRow[r] of x (·, n) [+ bias (d)].
 * Four rows at a time: four independent float64 sums share each weight load, and each is still
 * summed j = 0..n-1 as matvec does, so every row gets the same bits as forward.ts's matmul. A
 * single sum is bound by the latency of float64 adds: 0.6 GMAC/s against 1.3 for four (Node 20,
 * a 512 x 64 matrix), which halves the forward's time.
 */
function matmulIndexed(out: Store, outRow: Int32Array, x: Store, xRow: Int32Array, count: number, w: Float32Array, n: number, d: number, bias: Float32Array | null): void {
  let r = 0
  for (; r + 4 <= count; r += 4) {
    const x0 = (xRow[r] as number) * n
    const x1 = (xRow[r + 1] as number) * n
    const x2 = (xRow[r + 2] as number) * n
    const x3 = (xRow[r + 3] as number) * n
    const o0 = (outRow[r] as number) * d
    const o1 = (outRow[r + 1] as number) * d
    const o2 = (outRow[r + 2] as number) * d
    const o3 = (outRow[r + 3] as number) * d
    for (let i = 0; i < d; i++) {
      const row = i * n
      let s0 = 0
      let s1 = 0
      let s2 = 0
      let s3 = 0
      for (let j = 0; j < n; j++) {
        const wj = w[row + j] as number
        s0 += wj * (x[x0 + j] as number)
        s1 += wj * (x[x1 + j] as number)
        s2 += wj * (x[x2 + j] as number)
        s3 += wj * (x[x3 + j] as number)
      }
      if (bias === null) {
        out[o0 + i] = s0
        out[o1 + i] = s1
        out[o2 + i] = s2
        out[o3 + i] = s3
      } else {
        const b = bias[i] as number
        out[o0 + i] = s0 + b
        out[o1 + i] = s1 + b
        out[o2 + i] = s2 + b
        out[o3 + i] = s3 + b
      }
    }
  }
  for (; r < count; r++) matvec(out, (outRow[r] as number) * d, x, (xRow[r] as number) * n, w, n, d, bias)
}

/** out (rows, n) = rmsnorm(x (rows, n)) * w, and scale (rows) = 1 / rms of each row (what backward needs). */
function rmsnormRows(out: Store, scale: Float64Array, x: Store, w: Float32Array, rows: number, n: number, eps: number): void {
  for (let t = 0; t < rows; t++) {
    const o = t * n
    let ss = 0
    for (let i = 0; i < n; i++) ss += (x[o + i] as number) * (x[o + i] as number)
    const s = 1 / Math.sqrt(ss / n + eps)
    scale[t] = s
    for (let i = 0; i < n; i++) out[o + i] = (w[i] as number) * (s * (x[o + i] as number))
  }
}

/** In place: RoPE on interleaved pairs of each head of each row of x (rows, heads * hd); row t is position t. */
function ropeRows(x: Store, rows: number, heads: number, hd: number, table: { cos: Float32Array; sin: Float32Array }): void {
  const half = hd / 2
  for (let t = 0; t < rows; t++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const c = table.cos[t * half + i] as number
        const s = table.sin[t * half + i] as number
        const a = (t * heads + h) * hd + 2 * i
        const x0 = x[a] as number
        const x1 = x[a + 1] as number
        x[a] = x0 * c - x1 * s
        x[a + 1] = x0 * s + x1 * c
      }
    }
  }
}

/** In place: x[o..o+n) = softmax, as forward.ts's softmax stores it. */
function softmaxAt(x: Store, o: number, n: number): void {
  let max = -Infinity
  for (let i = 0; i < n; i++) if ((x[o + i] as number) > max) max = x[o + i] as number
  let sum = 0
  for (let i = 0; i < n; i++) {
    const e = Math.exp((x[o + i] as number) - max)
    x[o + i] = e
    sum += e
  }
  for (let i = 0; i < n; i++) x[o + i] = (x[o + i] as number) / sum
}

/**
 * selected[so..so+k) = the k largest of logits[lo..lo+E) by descending logit, ties to the lower
 * index: forward.ts's topK without its sort's allocations (a strict > scan keeps the lower index).
 */
function topKAt(selected: Int32Array, so: number, logits: Store, lo: number, experts: number, k: number): void {
  for (let j = 0; j < k; j++) {
    let best = -1
    let bestLogit = -Infinity
    for (let e = 0; e < experts; e++) {
      let taken = false
      for (let i = 0; i < j; i++) if (selected[so + i] === e) taken = true
      if (taken) continue
      const v = logits[lo + e] as number
      if (best < 0 || v > bestLogit) {
        best = e
        bestLogit = v
      }
    }
    selected[so + j] = best
  }
}

/** weights[so..so+k) per router_weighting, exactly as forward.ts's routerWeights (same pools, same summation order). */
function routeWeightsAt(weights: Float64Array, selected: Int32Array, so: number, logits: Store, lo: number, experts: number, k: number, weighting: Architecture['router_weighting']): void {
  if (weighting === 'unit') {
    for (let j = 0; j < k; j++) weights[so + j] = 1
    return
  }
  let max = -Infinity
  let sum = 0
  if (weighting === 'softmax') {
    for (let e = 0; e < experts; e++) max = Math.max(max, logits[lo + e] as number)
    for (let e = 0; e < experts; e++) sum += Math.exp((logits[lo + e] as number) - max)
  } else {
    for (let j = 0; j < k; j++) max = Math.max(max, logits[lo + (selected[so + j] as number)] as number)
    for (let j = 0; j < k; j++) sum += Math.exp((logits[lo + (selected[so + j] as number)] as number) - max)
  }
  for (let j = 0; j < k; j++) weights[so + j] = Math.exp((logits[lo + (selected[so + j] as number)] as number) - max) / sum
}

/**
 * One SwiGLU FFN on `count` rows: for r < count, x row xRow[r] (dim) gives, at activation row
 * hRow[r], h1 = w1·x, h3 = w3·x, g = silu(h1) ⊙ h3 (hidden each) and out = w2·g (dim): what
 * forward.ts's addExpert stores in hb, hb2, hb and xb2, before the routing weight.
 */
function swigluRows(h1: Store, h3: Store, g: Store, out: Store, hRow: Int32Array, x: Store, xRow: Int32Array, count: number, e: ExpertWeights, hidden: number, dim: number): void {
  matmulIndexed(h1, hRow, x, xRow, count, e.w1, dim, hidden, null)
  matmulIndexed(h3, hRow, x, xRow, count, e.w3, dim, hidden, null)
  for (let r = 0; r < count; r++) {
    const ho = (hRow[r] as number) * hidden
    for (let i = 0; i < hidden; i++) g[ho + i] = silu(h1[ho + i] as number) * (h3[ho + i] as number)
  }
  matmulIndexed(out, hRow, g, hRow, count, e.w2, hidden, dim, null)
}

/** -log softmax(logits[o..o+n))[target], in float64: engine.ts's crossEntropy. */
function crossEntropyAt(logits: Store, o: number, n: number, target: number): number {
  let max = -Infinity
  for (let i = 0; i < n; i++) max = Math.max(max, logits[o + i] as number)
  let sum = 0
  for (let i = 0; i < n; i++) sum += Math.exp((logits[o + i] as number) - max)
  return Math.log(sum) + max - (logits[o + target] as number)
}

// ---------------------------------------------------------------------------------------------
// Activations

/** What one layer's forward keeps for the backward. T = the state's maxPositions. */
export class LayerActivations {
  readonly attnScale: Float64Array // (T) 1 / rms of the layer input
  readonly xa: Store // (T, dim) attention_norm(x)
  readonly qRaw: Store // (T, n_heads * hd) wq·xa + bq, before qk norm
  readonly kRaw: Store // (T, n_kv * hd)
  readonly qScale: Float64Array // (T) 1 / rms of qRaw (qk_norm)
  readonly kScale: Float64Array // (T)
  readonly q: Store // (T, n_heads * hd) after qk norm and RoPE
  readonly k: Store // (T, n_kv * hd) after qk norm and RoPE
  readonly v: Store // (T, n_kv * hd)
  readonly probs: Store // (n_heads, T, T) attention weights; row t holds positions 0..t
  readonly att: Store // (T, n_heads * hd) attention output, the input of wo
  readonly xMid: Store // (T, dim) residual after attention
  readonly ffnScale: Float64Array // (T) 1 / rms of xMid
  readonly xf: Store // (T, dim) ffn_norm(xMid), the input of the router and experts
  readonly routerLogits: Store // (T, n_experts)
  readonly selected: Int32Array // (T, top_k) experts by descending logit
  readonly routeWeights: Float64Array // (T, top_k) weight of each selected expert
  readonly h1: Store // (T, top_k, expert_hidden) w1·xf of each selected expert
  readonly h3: Store // (T, top_k, expert_hidden) w3·xf
  readonly g: Store // (T, top_k, expert_hidden) silu(h1) ⊙ h3
  readonly expertOut: Store // (T, top_k, dim) w2·g, before the routing weight
  readonly sharedH1: Store // (T, shared_hidden)
  readonly sharedH3: Store // (T, shared_hidden)
  readonly sharedG: Store // (T, shared_hidden)
  readonly sharedOut: Store // (T, dim) before the shared gate
  readonly sharedGate: Float64Array // (T) sigmoid(shared_gate · xf), 1 when ungated

  constructor(arch: Architecture, T: number, make: (n: number) => Store) {
    const qDim = arch.n_heads * arch.head_dim
    const kvDim = arch.n_kv_heads * arch.head_dim
    const slots = T * arch.top_k
    const sh = arch.shared_expert_hidden_dim
    this.attnScale = new Float64Array(T)
    this.xa = make(T * arch.dim)
    this.qRaw = make(T * qDim)
    this.kRaw = make(T * kvDim)
    this.qScale = new Float64Array(T)
    this.kScale = new Float64Array(T)
    this.q = make(T * qDim)
    this.k = make(T * kvDim)
    this.v = make(T * kvDim)
    this.probs = make(arch.n_heads * T * T)
    this.att = make(T * qDim)
    this.xMid = make(T * arch.dim)
    this.ffnScale = new Float64Array(T)
    this.xf = make(T * arch.dim)
    this.routerLogits = make(T * arch.n_experts)
    this.selected = new Int32Array(slots)
    this.routeWeights = new Float64Array(slots)
    this.h1 = make(slots * arch.expert_hidden_dim)
    this.h3 = make(slots * arch.expert_hidden_dim)
    this.g = make(slots * arch.expert_hidden_dim)
    this.expertOut = make(slots * arch.dim)
    this.sharedH1 = make(T * sh)
    this.sharedH3 = make(T * sh)
    this.sharedG = make(T * sh)
    this.sharedOut = make(sh > 0 ? T * arch.dim : 0)
    this.sharedGate = new Float64Array(T)
  }
}

/** Every activation of a training forward over up to maxPositions positions: allocated once, reused. */
export class TrainState {
  readonly precision: Precision
  /** Most positions a sequence may have (tokens.length - 1), at most max_seq_len. */
  readonly maxPositions: number
  /** Positions of the last forward (tokens.length - 1). */
  positions = 0
  /** Sum over positions of the last forward's cross-entropy (float64); the loss is lossSum / positions. */
  lossSum = 0
  readonly rope: { cos: Float32Array; sin: Float32Array }
  readonly residual: Store[] // (n_layers + 1) × (T, dim): the input of each layer, then the last layer's output
  readonly layers: LayerActivations[] // (n_layers)
  readonly finalScale: Float64Array // (T) 1 / rms of the last residual
  readonly xn: Store // (T, dim) norm(residual), the classifier input
  readonly logits: Store // (T, vocab) row p: logits at position p
  readonly losses: Float64Array // (T) cross-entropy at each position
  readonly blockOut: Store // (T, dim) wo output before the residual add (forward.ts's xb2)
  readonly moe: Store // (dim) accumulated expert outputs of one position
  readonly iota: Int32Array // (T) 0, 1, 2, ...: row indices of a whole sequence
  readonly rows: Int32Array // (T) activation rows (position * top_k + slot) routed to one expert
  readonly rowPos: Int32Array // (T) the position of each of them

  constructor(arch: Architecture, maxPositions: number = arch.max_seq_len, precision: Precision = 'f32') {
    if (!Number.isSafeInteger(maxPositions) || maxPositions < 1 || maxPositions > arch.max_seq_len) {
      throw new RangeError(`maxPositions: expected integer in [1, ${arch.max_seq_len}], got ${maxPositions}`)
    }
    if (precision !== 'f32' && precision !== 'f64') throw new RangeError(`precision: expected 'f32' or 'f64', got ${JSON.stringify(precision)}`)
    const T = maxPositions
    const make = precision === 'f32' ? (n: number): Store => new Float32Array(n) : (n: number): Store => new Float64Array(n)
    this.precision = precision
    this.maxPositions = T
    this.rope = ropeTable(arch)
    this.residual = Array.from({ length: arch.n_layers + 1 }, () => make(T * arch.dim))
    this.layers = Array.from({ length: arch.n_layers }, () => new LayerActivations(arch, T, make))
    this.finalScale = new Float64Array(T)
    this.xn = make(T * arch.dim)
    this.logits = make(T * arch.vocab_size)
    this.losses = new Float64Array(T)
    this.blockOut = make(T * arch.dim)
    this.moe = make(arch.dim)
    this.iota = Int32Array.from({ length: T }, (_, i) => i)
    this.rows = new Int32Array(T)
    this.rowPos = new Int32Array(T)
  }
}

/** Expert (l, e) of `w`; training needs every expert the router picks. */
export function expertOf(w: ReferenceWeights, l: number, e: number): ExpertWeights {
  const ew = w.expert(l, e)
  if (ew === undefined) throw new RangeError(`weights: expert ${e} of layer ${l} is not loaded (training needs every expert)`)
  return ew
}

/** Throws RangeError unless tokens is 2..maxPositions + 1 integers in the vocabulary. */
export function checkTokens(arch: Architecture, tokens: ArrayLike<number>, maxPositions: number, title = 'tokens'): void {
  if (tokens.length < 2 || tokens.length > maxPositions + 1) throw new RangeError(`${title}: expected 2..${maxPositions + 1} tokens, got ${tokens.length}`)
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as number
    if (!Number.isInteger(t) || t < 0 || t >= arch.vocab_size) throw new RangeError(`${title}[${i}]: token ${t} outside the vocabulary`)
  }
}

// ---------------------------------------------------------------------------------------------
// Forward

/**
 * Forward over positions 0..n-1 (n = tokens.length - 1), keeping every activation in `s`. With
 * `fromLayer` > 0 it starts at that layer from `s.residual[fromLayer]` as a previous pass over the
 * same tokens left it (weights below that layer must be the same): the result is bit-identical to a
 * full pass, and a second model that differs only from that layer up costs only those layers.
 * Returns the mean cross-entropy of predicting tokens[1..n] (nats per token); s.losses holds each
 * position's, s.lossSum their float64 sum, s.logits each position's logits.
 */
export function trainForward(arch: Architecture, w: ReferenceWeights, s: TrainState, tokens: ArrayLike<number>, fromLayer = 0): number {
  checkTokens(arch, tokens, s.maxPositions)
  if (!Number.isInteger(fromLayer) || fromLayer < 0 || fromLayer >= arch.n_layers) throw new RangeError(`fromLayer: expected integer in [0, ${arch.n_layers - 1}], got ${fromLayer}`)
  const n = tokens.length - 1
  const { dim, head_dim: hd, n_heads: heads, n_kv_heads: kvHeads, norm_eps: eps, n_experts: experts, top_k: k } = arch
  const qDim = heads * hd
  const kvDim = kvHeads * hd
  const group = heads / kvHeads
  const hidden = arch.expert_hidden_dim
  const T = s.maxPositions
  s.positions = n

  // token embeddings (unless resuming at `fromLayer`: s.residual[fromLayer] holds, from the caller's
  // previous pass over the same tokens with the same weights below it, that layer's input)
  if (fromLayer === 0) {
    const emb = w.embedding.tokEmbeddings
    const x0 = s.residual[0] as Store
    for (let p = 0; p < n; p++) {
      const row = (tokens[p] as number) * dim
      for (let i = 0; i < dim; i++) x0[p * dim + i] = emb[row + i] as number
    }
  }

  for (let l = fromLayer; l < arch.n_layers; l++) {
    const L = w.layers[l] as LayerWeights
    const A = s.layers[l] as LayerActivations
    const x = s.residual[l] as Store
    const xOut = s.residual[l + 1] as Store

    // attention: rmsnorm -> q, k, v -> (qk norm) -> RoPE -> per-head causal softmax(q·k) v -> wo -> residual
    rmsnormRows(A.xa, A.attnScale, x, L.attentionNorm, n, dim, eps)
    matmulIndexed(A.qRaw, s.iota, A.xa, s.iota, n, L.wq, dim, qDim, L.bq)
    matmulIndexed(A.kRaw, s.iota, A.xa, s.iota, n, L.wk, dim, kvDim, L.bk)
    matmulIndexed(A.v, s.iota, A.xa, s.iota, n, L.wv, dim, kvDim, L.bv)
    if (L.qNorm !== null && L.kNorm !== null) {
      rmsnormRows(A.q, A.qScale, A.qRaw, L.qNorm, n, qDim, eps)
      rmsnormRows(A.k, A.kScale, A.kRaw, L.kNorm, n, kvDim, eps)
    } else {
      for (let i = 0; i < n * qDim; i++) A.q[i] = A.qRaw[i] as number
      for (let i = 0; i < n * kvDim; i++) A.k[i] = A.kRaw[i] as number
    }
    ropeRows(A.q, n, heads, hd, s.rope)
    ropeRows(A.k, n, kvHeads, hd, s.rope)
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group)
      for (let t = 0; t < n; t++) {
        const pr = (h * T + t) * T
        const qo = t * qDim + h * hd
        for (let u = 0; u <= t; u++) {
          const ko = u * kvDim + kvh * hd
          let score = 0
          for (let i = 0; i < hd; i++) score += (A.q[qo + i] as number) * (A.k[ko + i] as number)
          A.probs[pr + u] = score / Math.sqrt(hd)
        }
        softmaxAt(A.probs, pr, t + 1)
        for (let i = 0; i < hd; i++) A.att[qo + i] = 0
        for (let u = 0; u <= t; u++) {
          const vo = u * kvDim + kvh * hd
          const a = A.probs[pr + u] as number
          for (let i = 0; i < hd; i++) A.att[qo + i] = (A.att[qo + i] as number) + a * (A.v[vo + i] as number)
        }
      }
    }
    matmulIndexed(s.blockOut, s.iota, A.att, s.iota, n, L.wo, qDim, dim, null)
    for (let i = 0; i < n * dim; i++) A.xMid[i] = (x[i] as number) + (s.blockOut[i] as number)

    // MoE FFN: rmsnorm -> router logits -> top-k -> weighted experts (+ shared expert) -> residual
    rmsnormRows(A.xf, A.ffnScale, A.xMid, L.ffnNorm, n, dim, eps)
    matmulIndexed(A.routerLogits, s.iota, A.xf, s.iota, n, L.gate, dim, experts, null)
    for (let p = 0; p < n; p++) {
      topKAt(A.selected, p * k, A.routerLogits, p * experts, experts, k)
      routeWeightsAt(A.routeWeights, A.selected, p * k, A.routerLogits, p * experts, experts, k, arch.router_weighting)
    }
    // each expert on the positions routed to it (activation row p * top_k + slot), then the shared expert on all
    for (let e = 0; e < experts; e++) {
      let count = 0
      for (let slot = 0; slot < n * k; slot++) {
        if (A.selected[slot] !== e) continue
        s.rows[count] = slot
        s.rowPos[count] = Math.floor(slot / k)
        count++
      }
      if (count > 0) swigluRows(A.h1, A.h3, A.g, A.expertOut, s.rows, A.xf, s.rowPos, count, expertOf(w, l, e), hidden, dim)
    }
    if (L.shared !== null) swigluRows(A.sharedH1, A.sharedH3, A.sharedG, A.sharedOut, s.iota, A.xf, s.iota, n, L.shared, arch.shared_expert_hidden_dim, dim)
    // per position, in forward.ts's order: the selected experts' weighted outputs, the gated shared expert, the residual
    for (let p = 0; p < n; p++) {
      const xo = p * dim
      s.moe.fill(0)
      for (let j = 0; j < k; j++) {
        const slot = p * k + j
        const weight = A.routeWeights[slot] as number
        for (let i = 0; i < dim; i++) s.moe[i] = (s.moe[i] as number) + weight * (A.expertOut[slot * dim + i] as number)
      }
      if (L.shared !== null) {
        let gate = 1
        if (L.sharedGate !== null) {
          let z = 0
          for (let i = 0; i < dim; i++) z += (L.sharedGate[i] as number) * (A.xf[xo + i] as number)
          gate = 1 / (1 + Math.exp(-z))
        }
        A.sharedGate[p] = gate
        for (let i = 0; i < dim; i++) s.moe[i] = (s.moe[i] as number) + gate * (A.sharedOut[xo + i] as number)
      }
      for (let i = 0; i < dim; i++) xOut[xo + i] = (A.xMid[xo + i] as number) + (s.moe[i] as number)
    }
  }

  // final norm, classifier, cross-entropy of the next token
  rmsnormRows(s.xn, s.finalScale, s.residual[arch.n_layers] as Store, w.embedding.norm, n, dim, eps)
  matmulIndexed(s.logits, s.iota, s.xn, s.iota, n, w.embedding.output ?? w.embedding.tokEmbeddings, dim, arch.vocab_size, null)
  let sum = 0
  for (let p = 0; p < n; p++) {
    const ce = crossEntropyAt(s.logits, p * arch.vocab_size, arch.vocab_size, tokens[p + 1] as number)
    s.losses[p] = ce
    sum += ce
  }
  s.lossSum = sum
  return sum / n
}
