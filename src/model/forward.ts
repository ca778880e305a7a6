/**
 * The CPU reference forward pass: one token at a time, float32 storage, written to be read top to
 * bottom like llama2.c's run.c. It is the oracle every backend is tested against and the evaluator
 * validators run for Proof-of-Learning, so it favours clarity and determinism over speed: plain
 * loops, float64 accumulation, float32 storage, no threads, no reordering.
 *
 * Conventions shared by every backend (docs/protocol.md §7):
 * - RMSNorm: x * w / sqrt(mean(x^2) + eps).
 * - RoPE on interleaved pairs (x[2i], x[2i+1]) of each head, angle pos * theta^(-2i/head_dim); the
 *   cos/sin table is computed once (float64, stored float32) and shared with the GPU backends so all
 *   rotate by the same numbers.
 * - Router: logits = gate · ffn_norm(x); top-k by logit (ties: lower index); weights per
 *   `router_weighting` (softmax over all / softmax over the selected / 1); experts and the shared
 *   expert (scaled by sigmoid(shared_gate · x) when gated) read the same ffn-normed x.
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import type { EmbeddingWeights, ExpertWeights, LayerWeights } from './weights.ts'

// ---------------------------------------------------------------------------------------------
// Neural-net blocks (output first, allocation-free)

/** out (n) = rmsnorm(x (n)) * w (n) */
export function rmsnorm(out: Float32Array, x: Float32Array, w: Float32Array, eps: number): void {
  let ss = 0
  for (let i = 0; i < x.length; i++) ss += (x[i] as number) * (x[i] as number)
  const scale = 1 / Math.sqrt(ss / x.length + eps)
  for (let i = 0; i < x.length; i++) out[i] = (w[i] as number) * (scale * (x[i] as number))
}

/** out (d) = W (d, n) · x (n) [+ bias (d)] */
export function matmul(out: Float32Array, x: Float32Array, w: Float32Array, n: number, d: number, bias: Float32Array | null = null): void {
  for (let i = 0; i < d; i++) {
    let sum = 0
    const row = i * n
    for (let j = 0; j < n; j++) sum += (w[row + j] as number) * (x[j] as number)
    out[i] = bias === null ? sum : sum + (bias[i] as number)
  }
}

/** In place: x (n) = softmax(x). */
export function softmax(x: Float32Array, n: number = x.length): void {
  let max = -Infinity
  for (let i = 0; i < n; i++) if ((x[i] as number) > max) max = x[i] as number
  let sum = 0
  for (let i = 0; i < n; i++) {
    const e = Math.exp((x[i] as number) - max)
    x[i] = e
    sum += e
  }
  for (let i = 0; i < n; i++) x[i] = (x[i] as number) / sum
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x))
}

/** The RoPE table: cos and sin (max_seq_len, head_dim / 2), shared by every backend. */
export function ropeTable(arch: Architecture): { cos: Float32Array; sin: Float32Array } {
  const half = arch.head_dim / 2
  const cos = new Float32Array(arch.max_seq_len * half)
  const sin = new Float32Array(arch.max_seq_len * half)
  for (let pos = 0; pos < arch.max_seq_len; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(arch.rope_theta, -(2 * i) / arch.head_dim)
      cos[pos * half + i] = Math.cos(angle)
      sin[pos * half + i] = Math.sin(angle)
    }
  }
  return { cos, sin }
}

/** In place: rotate interleaved pairs of each head of x (heads * head_dim) at position pos. */
export function rope(x: Float32Array, heads: number, headDim: number, pos: number, table: { cos: Float32Array; sin: Float32Array }): void {
  const half = headDim / 2
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      const c = table.cos[pos * half + i] as number
      const s = table.sin[pos * half + i] as number
      const a = h * headDim + 2 * i
      const x0 = x[a] as number
      const x1 = x[a + 1] as number
      x[a] = x0 * c - x1 * s
      x[a + 1] = x0 * s + x1 * c
    }
  }
}

/** Selected experts by descending logit, ties to the lower index. */
export function topK(logits: Float32Array, k: number): number[] {
  const order = Array.from(logits.keys()).sort((a, b) => (logits[b] as number) - (logits[a] as number) || a - b)
  return order.slice(0, k)
}

/** Weight of each selected expert (same order as `selected`), per the architecture's router_weighting. */
export function routerWeights(logits: Float32Array, selected: readonly number[], weighting: Architecture['router_weighting']): number[] {
  if (weighting === 'unit') return selected.map(() => 1)
  const pool = weighting === 'softmax' ? Array.from(logits) : selected.map((e) => logits[e] as number)
  const max = Math.max(...pool)
  const sum = pool.reduce((s, v) => s + Math.exp(v - max), 0)
  return selected.map((e) => Math.exp((logits[e] as number) - max) / sum)
}

// ---------------------------------------------------------------------------------------------
// Model and run state

/** An expert a forward pass needed but did not have. */
export interface ExpertRef {
  readonly layer: number
  readonly expert: number
}

/** Where the weights come from: the embedding and routers always, experts as they are loaded. */
export interface ReferenceWeights {
  readonly embedding: EmbeddingWeights
  readonly layers: readonly LayerWeights[]
  /** Expert weights, or undefined when not loaded (yet). */
  expert(layer: number, expert: number): ExpertWeights | undefined
}

/** Activations and the KV cache: allocated once, reused by every forward. */
export class RunState {
  readonly x: Float32Array // (dim) residual stream
  readonly xb: Float32Array // (dim) normed input / scratch
  readonly xb2: Float32Array // (dim) block output
  readonly q: Float32Array // (n_heads * hd)
  readonly k: Float32Array // (n_kv * hd)
  readonly v: Float32Array // (n_kv * hd)
  readonly att: Float32Array // (n_heads * hd) attention output
  readonly scores: Float32Array // (max_seq_len)
  readonly hb: Float32Array // (max(expert_hidden, shared_hidden))
  readonly hb2: Float32Array // (max(expert_hidden, shared_hidden))
  readonly moe: Float32Array // (dim) accumulated expert outputs
  readonly routerLogits: Float32Array // (n_experts)
  readonly logits: Float32Array // (vocab)
  readonly keyCache: Float32Array // (n_layers, max_seq_len, n_kv * hd)
  readonly valueCache: Float32Array // (n_layers, max_seq_len, n_kv * hd)
  /** Experts each layer used at the last forward: (n_layers) lists. */
  readonly used: number[][]

  constructor(arch: Architecture) {
    const kvDim = arch.n_kv_heads * arch.head_dim
    const hidden = Math.max(arch.expert_hidden_dim, arch.shared_expert_hidden_dim)
    this.x = new Float32Array(arch.dim)
    this.xb = new Float32Array(arch.dim)
    this.xb2 = new Float32Array(arch.dim)
    this.q = new Float32Array(arch.n_heads * arch.head_dim)
    this.k = new Float32Array(kvDim)
    this.v = new Float32Array(kvDim)
    this.att = new Float32Array(arch.n_heads * arch.head_dim)
    this.scores = new Float32Array(arch.max_seq_len)
    this.hb = new Float32Array(hidden)
    this.hb2 = new Float32Array(hidden)
    this.moe = new Float32Array(arch.dim)
    this.routerLogits = new Float32Array(arch.n_experts)
    this.logits = new Float32Array(arch.vocab_size)
    this.keyCache = new Float32Array(arch.n_layers * arch.max_seq_len * kvDim)
    this.valueCache = new Float32Array(arch.n_layers * arch.max_seq_len * kvDim)
    this.used = Array.from({ length: arch.n_layers }, () => [])
  }
}

/** out (dim) += weight * SwiGLU expert(x (dim)) */
function addExpert(out: Float32Array, s: RunState, x: Float32Array, e: ExpertWeights, hidden: number, dim: number, weight: number): void {
  const hb = s.hb.subarray(0, hidden)
  const hb2 = s.hb2.subarray(0, hidden)
  matmul(hb, x, e.w1, dim, hidden)
  matmul(hb2, x, e.w3, dim, hidden)
  for (let i = 0; i < hidden; i++) hb[i] = silu(hb[i] as number) * (hb2[i] as number)
  matmul(s.xb2, hb, e.w2, hidden, dim)
  for (let i = 0; i < dim; i++) out[i] = (out[i] as number) + weight * (s.xb2[i] as number)
}

/**
 * One token at position `pos`: returns the logits (s.logits), or the experts that were needed but
 * are not loaded, with every expert the router picked up to that layer (so a loader keeps them). In that case the KV cache rows at `pos` of the layers before the missing expert
 * are written, and running the same (token, pos) again after loading recomputes them identically.
 */
export function forward(arch: Architecture, w: ReferenceWeights, s: RunState, table: { cos: Float32Array; sin: Float32Array }, token: number, pos: number): { logits: Float32Array } | { missing: ExpertRef[]; selected: ExpertRef[] } {
  const { dim, head_dim: hd, n_heads: heads, n_kv_heads: kvHeads, norm_eps: eps } = arch
  const kvDim = kvHeads * hd
  const group = heads / kvHeads
  if (!Number.isInteger(token) || token < 0 || token >= arch.vocab_size) throw new RangeError(`token ${token} outside the vocabulary`)
  if (!Number.isInteger(pos) || pos < 0 || pos >= arch.max_seq_len) throw new RangeError(`position ${pos} outside 0..${arch.max_seq_len - 1}`)

  // token embedding
  s.x.set(w.embedding.tokEmbeddings.subarray(token * dim, (token + 1) * dim))

  for (let l = 0; l < arch.n_layers; l++) {
    const L = w.layers[l] as LayerWeights

    // attention: rmsnorm -> q, k, v -> (qk norm) -> RoPE -> cache -> per-head softmax(q·k) v -> wo -> residual
    rmsnorm(s.xb, s.x, L.attentionNorm, eps)
    matmul(s.q, s.xb, L.wq, dim, heads * hd, L.bq)
    matmul(s.k, s.xb, L.wk, dim, kvDim, L.bk)
    matmul(s.v, s.xb, L.wv, dim, kvDim, L.bv)
    if (L.qNorm !== null && L.kNorm !== null) {
      rmsnorm(s.q, s.q, L.qNorm, eps)
      rmsnorm(s.k, s.k, L.kNorm, eps)
    }
    rope(s.q, heads, hd, pos, table)
    rope(s.k, kvHeads, hd, pos, table)
    const cacheBase = l * arch.max_seq_len * kvDim
    s.keyCache.set(s.k, cacheBase + pos * kvDim)
    s.valueCache.set(s.v, cacheBase + pos * kvDim)
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group)
      const q = s.q.subarray(h * hd, (h + 1) * hd)
      for (let t = 0; t <= pos; t++) {
        const k = s.keyCache.subarray(cacheBase + t * kvDim + kvh * hd)
        let score = 0
        for (let i = 0; i < hd; i++) score += (q[i] as number) * (k[i] as number)
        s.scores[t] = score / Math.sqrt(hd)
      }
      softmax(s.scores, pos + 1)
      const out = s.att.subarray(h * hd, (h + 1) * hd)
      out.fill(0)
      for (let t = 0; t <= pos; t++) {
        const v = s.valueCache.subarray(cacheBase + t * kvDim + kvh * hd)
        const a = s.scores[t] as number
        for (let i = 0; i < hd; i++) out[i] = (out[i] as number) + a * (v[i] as number)
      }
    }
    matmul(s.xb2, s.att, L.wo, heads * hd, dim)
    for (let i = 0; i < dim; i++) s.x[i] = (s.x[i] as number) + (s.xb2[i] as number)

    // MoE FFN: rmsnorm -> router logits -> top-k -> weighted experts (+ shared expert) -> residual
    rmsnorm(s.xb, s.x, L.ffnNorm, eps)
    matmul(s.routerLogits, s.xb, L.gate, dim, arch.n_experts)
    const selected = topK(s.routerLogits, arch.top_k)
    s.used[l] = selected
    const missing = selected.filter((e) => w.expert(l, e) === undefined).map((expert) => ({ layer: l, expert }))
    if (missing.length > 0) {
      const picked = s.used.slice(0, l + 1).flatMap((experts, layer) => experts.map((expert) => ({ layer, expert })))
      return { missing, selected: picked }
    }
    const weights = routerWeights(s.routerLogits, selected, arch.router_weighting)
    s.moe.fill(0)
    selected.forEach((e, i) => addExpert(s.moe, s, s.xb, w.expert(l, e) as ExpertWeights, arch.expert_hidden_dim, dim, weights[i] as number))
    if (L.shared !== null) {
      let gate = 1
      if (L.sharedGate !== null) {
        let z = 0
        for (let i = 0; i < dim; i++) z += (L.sharedGate[i] as number) * (s.xb[i] as number)
        gate = 1 / (1 + Math.exp(-z))
      }
      addExpert(s.moe, s, s.xb, L.shared, arch.shared_expert_hidden_dim, dim, gate)
    }
    for (let i = 0; i < dim; i++) s.x[i] = (s.x[i] as number) + (s.moe[i] as number)
  }

  // final norm and classifier
  rmsnorm(s.x, s.x, w.embedding.norm, eps)
  matmul(s.logits, s.x, w.embedding.output ?? w.embedding.tokEmbeddings, dim, arch.vocab_size)
  return { logits: s.logits }
}
