/**
 * MoEfication: split a dense SwiGLU FFN into experts without changing what it computes.
 *
 * A dense FFN is `FFN(x) = w2 · (silu(w1·x) ⊙ (w3·x))` with `hidden` units; unit i owns row i of w1
 * and w3 and column i of w2, and FFN(x) is the sum over units of `w2[:, i] · silu(w1_i·x) · (w3_i·x)`.
 * Any partition of the units into groups therefore splits the FFN into experts whose outputs add up
 * to the dense output exactly, whatever the grouping (Zhang et al. 2022, "MoEfication: Transformer
 * Feed-forward Layers are Mixtures of Experts"). The grouping only matters once fewer than all
 * experts run (top_k < n_experts): then units that fire together should sit together.
 *
 * **Padding.** `hidden` is padded to `N · m` with `m = ceil(hidden / N)` by zero rows of w1 and w3 and
 * zero columns of w2. A padded unit contributes `silu(0) · 0 = 0` exactly, so every expert has the
 * same width `m` (the chain's `expert_hidden_dim`).
 *
 * **Clustering** (MoEfication's "parameter clustering split"): balanced spherical k-means on the
 * L2-normalised rows of w1, deterministic for a given seed.
 *   1. Features f_i = w1_i / |w1_i| (a zero row stays zero).
 *   2. Initial centroids by k-means++ with cosine distance 1 - f·c, drawn with a mulberry32 PRNG
 *      seeded by `seed` (default 0).
 *   3. Balanced assignment: every cluster holds at most m units. Units are taken in order of their
 *      best similarity (highest first, ties by unit index); each goes to the most similar cluster
 *      that still has room (ties by cluster index).
 *   4. Each centroid becomes the normalised sum of its units' features (an empty cluster keeps its
 *      centroid). Steps 3-4 repeat until the assignment stops changing, at most `iterations` (25).
 *   5. Experts are ordered by their smallest unit index, units inside an expert ascending, then the
 *      zero padding fills the free slots (in expert order).
 *
 * **Router predictor.** Gate row e is the mean of the original (unnormalised) w1 rows of expert e's
 * real units, so the router logit is `logit_e(x) = c_e · x` on the ffn-normed input x, which equals the
 * mean gate pre-activation `mean_i (w1_i · x)` of the expert's units. Units clustered by w1
 * direction fire on similar inputs, so a high mean pre-activation predicts a large share of the
 * layer's activation mass in that expert. With router_weighting `unit` each selected expert weighs 1,
 * so top_k = N reproduces the dense layer exactly; smaller top_k is an approximation that this
 * predictor chooses. (An expert made only of padding gets a zero row.)
 *
 * @module
 */
import { aint } from '../assert.ts'
import { mulberry32 } from './random.ts'

/** A dense SwiGLU FFN, [out, in] row-major like llama2.c. */
export interface DenseFfn {
  readonly dim: number
  readonly hidden: number
  readonly w1: Float32Array // (hidden, dim)
  readonly w2: Float32Array // (dim, hidden)
  readonly w3: Float32Array // (hidden, dim)
}

export interface ExpertFfn {
  readonly w1: Float32Array // (m, dim)
  readonly w2: Float32Array // (dim, m)
  readonly w3: Float32Array // (m, dim)
}

export interface MoefiedFfn {
  /** m = ceil(hidden / N): every expert's width. */
  readonly expertHidden: number
  /** Expert e's slot j holds dense unit units[e * m + j], or -1 for zero padding. */
  readonly units: Int32Array // (N, m)
  readonly experts: readonly ExpertFfn[]
  /** Router weights: row e = mean w1 row of expert e's units. */
  readonly gate: Float32Array // (N, dim)
}

export interface MoefyOptions {
  /** N, the number of experts, 1..hidden. */
  readonly experts: number
  /** k-means++ seed. @default 0 */
  readonly seed?: number
  /** Most k-means rounds. @default 25 */
  readonly iterations?: number
}

/** Split `ffn` into `options.experts` experts of equal width (see the module doc for the algorithm). */
export function moefy(ffn: DenseFfn, options: MoefyOptions): MoefiedFfn {
  const { dim, hidden } = ffn
  aint(dim, 'dim', 1)
  aint(hidden, 'hidden', 1)
  const n = options.experts
  aint(n, 'experts', 1, hidden)
  for (const k of ['w1', 'w2', 'w3'] as const) {
    if (!(ffn[k] instanceof Float32Array) || ffn[k].length !== dim * hidden) throw new RangeError(`${k}: expected Float32Array of ${dim * hidden}`)
  }
  const m = Math.ceil(hidden / n)
  const assign = n === 1 ? new Int32Array(hidden) : clusterUnits(ffn.w1, hidden, dim, n, m, options.seed ?? 0, options.iterations ?? 25)
  const units = layoutUnits(assign, hidden, n, m)
  const experts: ExpertFfn[] = []
  const gate = new Float32Array(n * dim)
  const sum = new Float64Array(dim)
  for (let e = 0; e < n; e++) {
    const w1 = new Float32Array(m * dim)
    const w3 = new Float32Array(m * dim)
    const w2 = new Float32Array(dim * m)
    sum.fill(0)
    let real = 0
    for (let j = 0; j < m; j++) {
      const u = units[e * m + j] as number
      if (u < 0) continue
      real++
      w1.set(ffn.w1.subarray(u * dim, (u + 1) * dim), j * dim)
      w3.set(ffn.w3.subarray(u * dim, (u + 1) * dim), j * dim)
      for (let r = 0; r < dim; r++) {
        w2[r * m + j] = ffn.w2[r * hidden + u] as number
        sum[r] = (sum[r] as number) + (ffn.w1[u * dim + r] as number)
      }
    }
    if (real > 0) for (let r = 0; r < dim; r++) gate[e * dim + r] = (sum[r] as number) / real
    experts.push(Object.freeze({ w1, w2, w3 }))
  }
  return Object.freeze({ expertHidden: m, units, experts: Object.freeze(experts), gate })
}

/** Experts ordered by smallest unit, units ascending, then padding (-1) into the free slots. */
function layoutUnits(assign: Int32Array, hidden: number, n: number, m: number): Int32Array {
  const groups: number[][] = Array.from({ length: n }, () => [])
  for (let u = 0; u < hidden; u++) (groups[assign[u] as number] as number[]).push(u)
  groups.sort((a, b) => (a[0] ?? Infinity) - (b[0] ?? Infinity))
  const units = new Int32Array(n * m).fill(-1)
  groups.forEach((g, e) => g.forEach((u, j) => (units[e * m + j] = u)))
  return units
}

/**
 * Balanced spherical k-means of the rows of w1 (hidden, dim) into n clusters of at most m units:
 * returns each unit's cluster. Deterministic for a given seed.
 */
export function clusterUnits(w1: Float32Array, hidden: number, dim: number, n: number, m: number, seed: number, iterations: number): Int32Array {
  // 1. normalised features
  const f = new Float64Array(hidden * dim)
  for (let u = 0; u < hidden; u++) {
    let ss = 0
    for (let r = 0; r < dim; r++) ss += (w1[u * dim + r] as number) ** 2
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0
    for (let r = 0; r < dim; r++) f[u * dim + r] = (w1[u * dim + r] as number) * inv
  }
  const dot = (u: number, c: Float64Array, e: number): number => {
    let s = 0
    for (let r = 0; r < dim; r++) s += (f[u * dim + r] as number) * (c[e * dim + r] as number)
    return s
  }
  // 2. k-means++ initialisation (cosine distance)
  const rand = mulberry32(seed)
  const c = new Float64Array(n * dim)
  const best = new Float64Array(hidden).fill(Infinity)
  let pick = Math.floor(rand() * hidden)
  for (let e = 0; e < n; e++) {
    c.set(f.subarray(pick * dim, (pick + 1) * dim), e * dim)
    if (e === n - 1) break
    let total = 0
    for (let u = 0; u < hidden; u++) {
      const d = Math.max(0, 1 - dot(u, c, e))
      if (d < (best[u] as number)) best[u] = d
      total += (best[u] as number) ** 2
    }
    if (total === 0) {
      pick = (pick + 1) % hidden
      continue
    }
    let target = rand() * total
    pick = hidden - 1
    for (let u = 0; u < hidden; u++) {
      target -= (best[u] as number) ** 2
      if (target < 0) {
        pick = u
        break
      }
    }
  }
  // 3-4. balanced assignment and centroid update
  let assign = new Int32Array(hidden).fill(-1)
  const sims = new Float64Array(hidden * n)
  const order = Array.from({ length: hidden }, (_, u) => u)
  const prefs = Array.from({ length: n }, (_, e) => e)
  for (let it = 0; it < iterations; it++) {
    const top = new Float64Array(hidden).fill(-Infinity)
    for (let u = 0; u < hidden; u++) {
      for (let e = 0; e < n; e++) {
        const s = dot(u, c, e)
        sims[u * n + e] = s
        if (s > (top[u] as number)) top[u] = s
      }
    }
    order.sort((a, b) => (top[b] as number) - (top[a] as number) || a - b)
    const room = new Int32Array(n).fill(m)
    const next = new Int32Array(hidden)
    for (const u of order) {
      prefs.sort((a, b) => (sims[u * n + b] as number) - (sims[u * n + a] as number) || a - b)
      const e = prefs.find((k) => (room[k] as number) > 0) as number
      room[e] = (room[e] as number) - 1
      next[u] = e
    }
    const changed = next.some((e, u) => e !== assign[u])
    assign = next
    if (!changed) break
    const sum = new Float64Array(n * dim)
    for (let u = 0; u < hidden; u++) {
      const e = assign[u] as number
      for (let r = 0; r < dim; r++) sum[e * dim + r] = (sum[e * dim + r] as number) + (f[u * dim + r] as number)
    }
    for (let e = 0; e < n; e++) {
      let ss = 0
      for (let r = 0; r < dim; r++) ss += (sum[e * dim + r] as number) ** 2
      if (ss === 0) continue
      const inv = 1 / Math.sqrt(ss)
      for (let r = 0; r < dim; r++) c[e * dim + r] = (sum[e * dim + r] as number) * inv
    }
  }
  return assign
}
