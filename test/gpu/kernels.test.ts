/**
 * Kernel parity: every WGSL kernel against the CPU reference primitives of src/model/forward.ts
 * (matmul, rmsnorm, rope, softmax, topK, routerWeights, silu) on random shapes, including sizes
 * that are not multiples of 4 or of the workgroup sizes. Each test logs the largest error it saw
 * and the tolerance it allowed.
 *
 * Dot-product tolerance (matvec, matmul, experts): per output, (n + 2) * 2^-23 * Σ_c |w_c x_c|, the
 * worst-case float32 summation bound for n terms (2u per term, u = 2^-24) plus one rounding for the
 * int8 scale; the CPU reference sums in float64, so this bounds the GPU's float32 error alone.
 */
import { before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { matmul as cpuMatmul, rmsnorm as cpuRmsnorm, rope as cpuRope, ropeTable, routerWeights, silu, softmax, topK } from '../../src/model/forward.ts'
import { GpuContext, type GpuFeatures } from '../../src/gpu/context.ts'
import { CPU_TUNING, GPU_TUNING, type Tuning } from '../../src/gpu/tuning.ts'
import { hostMatrix, type GpuMatrix, type HostMatrix } from '../../src/gpu/upload.ts'
import { matvec } from '../../src/gpu/kernels/matvec.ts'
import { matmul } from '../../src/gpu/kernels/matmul.ts'
import { rmsnorm } from '../../src/gpu/kernels/rmsnorm.ts'
import { rope } from '../../src/gpu/kernels/rope.ts'
import { attention } from '../../src/gpu/kernels/attention.ts'
import { swiglu } from '../../src/gpu/kernels/swiglu.ts'
import { NO_SLOT, ROUTE_BYTES, WEIGHTING_CODE, router } from '../../src/gpu/kernels/router.ts'
import { moeGateUp } from '../../src/gpu/kernels/moe_gate_up.ts'
import { moeDown } from '../../src/gpu/kernels/moe_down.ts'
import { embedding } from '../../src/gpu/kernels/embedding.ts'
import { add } from '../../src/gpu/kernels/add.ts'
import { decodeTensorBlock, dequantize, encodeTensorBlock, type TensorView } from '../../src/tensor/tensorblock.ts'
import type { Architecture } from '../../src/chain/meta.ts'
import { TINY_ARCH } from '../fixtures/devnet.ts'
import { createRandom, type Random } from '../fixtures/random.ts'
import { NO_GPU, maxAbsDiff, readBytes, readF32, run, testGpu } from './_setup.ts'

const SIZES = [1, 3, 5, 63, 64, 65, 172, 257]
const U = 2 ** -23

const gpu = await testGpu()

let tuning: Tuning = GPU_TUNING

/** A context with the current `tuning` profile. */
function ctxFor(features?: Partial<GpuFeatures>): GpuContext {
  if (gpu === null) throw new Error('unreachable')
  return new GpuContext(gpu.device, { ...gpu.features, ...features }, tuning)
}

function randomValues(rnd: Random, n: number, scale = 1): Float32Array {
  const v = new Float32Array(n)
  for (let i = 0; i < n; i++) v[i] = rnd.float(scale)
  return v
}

function view(values: Float32Array, rows: number, cols: number, dtype: 'int8' | 'fp32' | 'fp16'): TensorView {
  return decodeTensorBlock(encodeTensorBlock(values, [rows, cols], dtype))
}

function uploadMatrix(ctx: GpuContext, m: HostMatrix): GpuMatrix {
  return { dtype: m.dtype, rows: m.rows, cols: m.cols, stride: m.stride, weights: ctx.upload('w', m.data), scales: m.scales === null ? null : ctx.upload('s', m.scales) }
}

/** A (1, 1, 1, 1)-shaped step uniform: pos, n_tokens. */
function stepBuffer(ctx: GpuContext, pos: number, tokens: number): GPUBuffer {
  return ctx.uniform('step', new Uint32Array([pos, tokens, 0, 0]))
}

/** Per-row dot tolerance (see the module doc). */
function dotTolerance(w: Float32Array, x: Float32Array, rows: number, cols: number, xOffset = 0): Float32Array {
  const tol = new Float32Array(rows)
  for (let r = 0; r < rows; r++) {
    let s = 0
    for (let c = 0; c < cols; c++) s += Math.abs((w[r * cols + c] as number) * (x[xOffset + c] as number))
    tol[r] = (cols + 2) * U * s + 1e-30
  }
  return tol
}

/** Largest error, and the largest error / tolerance ratio (must be <= 1). */
function checkWithin(got: Float32Array, want: Float32Array, tol: ArrayLike<number>): { err: number; ratio: number; tol: number } {
  let err = 0
  let ratio = 0
  let maxTol = 0
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs((got[i] as number) - (want[i] as number))
    const t = tol[i % tol.length] as number
    err = Math.max(err, e)
    ratio = Math.max(ratio, e / t)
    maxTol = Math.max(maxTol, t)
  }
  return { err, ratio, tol: maxTol }
}

/**
 * GPU_TUNING with rows reduced over 4 lanes (at most SwiftShader's subgroup size, so the SUBGROUP
 * variants run here too) and 3 rows per thread (row counts that are not multiples of it).
 */
const SUBGROUP_TUNING: Tuning = Object.freeze({ ...GPU_TUNING, name: 'gpu, 4 lanes x 3 rows per thread (subgroup reductions)', matvecWg: 64, matvecThreadsPerRow: 4, matvecRowsPerThread: 3 })
/** GPU_TUNING with 2 rows per thread through the workgroup-memory tree. */
const ROWS_TUNING: Tuning = Object.freeze({ ...GPU_TUNING, name: 'gpu, 2 rows per thread', matvecRowsPerThread: 2 })
const PROFILES = gpu !== null && gpu.features.subgroupSize >= 4 ? [GPU_TUNING, CPU_TUNING, ROWS_TUNING, SUBGROUP_TUNING] : [GPU_TUNING, CPU_TUNING, ROWS_TUNING]

for (const profile of PROFILES) describe(`gpu kernels vs the CPU reference (${profile.name} tuning)`, { skip: gpu === null ? NO_GPU : false }, () => {
  before(() => {
    tuning = profile
  })
  for (const [name, dtype, packed] of [['int8 (unpack4xI8)', 'int8', true], ['int8 (shifts)', 'int8', false], ['f32', 'fp32', false], ['fp16 -> f32', 'fp16', false]] as const) {
    test(`matvec ${name}: rows x cols over ${SIZES.join(', ')}, bias and offsets`, async () => {
      const ctx = ctxFor({ packed4x8: packed })
      const rnd = createRandom(11)
      let worst = { err: 0, ratio: 0, tol: 0 }
      try {
        for (const rows of SIZES) {
          for (const cols of SIZES) {
            const v = view(randomValues(rnd, rows * cols), rows, cols, dtype)
            const w = dequantize(v)
            const xOffset = rnd.int(3)
            const x = randomValues(rnd, xOffset + cols + 5) // trailing junk past cols must not leak in
            x.fill(1e30, xOffset + cols)
            const bias = rnd.next() < 0.5 ? randomValues(rnd, rows) : null
            const want = new Float32Array(rows)
            cpuMatmul(want, x.subarray(xOffset, xOffset + cols), w, cols, rows, bias)
            const m = uploadMatrix(ctx, hostMatrix(v))
            const xb = ctx.upload('x', x)
            const yb = ctx.storage('y', (rows + 2) * 4)
            const d = await matvec(ctx, 'mv', m, xb, yb, { bias: bias === null ? null : ctx.upload('b', bias), xOffset, yOffset: 2 })
            await run(ctx, [d])
            const got = await readF32(ctx.device, yb, rows, 2)
            const tol = dotTolerance(w, x, rows, cols, xOffset)
            if (bias !== null) for (let r = 0; r < rows; r++) tol[r] = (tol[r] as number) + U * Math.abs(want[r] as number)
            const c = checkWithin(got, want, tol)
            assert.ok(c.ratio <= 1, `rows ${rows} cols ${cols}: error ${c.err} above tolerance (ratio ${c.ratio})`)
            if (c.ratio > worst.ratio) worst = c
          }
        }
        console.log(`[${tuning.name}] matvec ${name}: max |err| ${worst.err.toExponential(2)}, tolerance (cols+2)·2^-23·Σ|w·x| up to ${worst.tol.toExponential(2)}, worst err/tol ${worst.ratio.toFixed(3)}`)
      } finally {
        ctx.destroy()
      }
    })
  }

  for (const [name, dtype, packed] of [['int8', 'int8', true], ['int8 (shifts)', 'int8', false], ['f32', 'fp32', false]] as const) {
    test(`matmul ${name}: T x rows x cols, tiles not dividing the shapes`, async () => {
      const ctx = ctxFor({ packed4x8: packed })
      const rnd = createRandom(12)
      let worst = { err: 0, ratio: 0, tol: 0 }
      try {
        for (const [T, rows, cols] of [[1, 1, 1], [3, 5, 7], [16, 64, 32], [17, 65, 63], [40, 172, 257], [5, 257, 172], [64, 3, 65]] as const) {
          const v = view(randomValues(rnd, rows * cols), rows, cols, dtype)
          const w = dequantize(v)
          const x = randomValues(rnd, T * cols)
          const bias = rows % 2 === 1 ? randomValues(rnd, rows) : null
          const m = uploadMatrix(ctx, hostMatrix(v))
          const yb = ctx.storage('y', T * rows * 4)
          const d = await matmul(ctx, 'mm', m, ctx.upload('x', x), yb, stepBuffer(ctx, 0, T), { bias: bias === null ? null : ctx.upload('b', bias) })
          await run(ctx, [d], T)
          const got = await readF32(ctx.device, yb, T * rows)
          for (let t = 0; t < T; t++) {
            const want = new Float32Array(rows)
            cpuMatmul(want, x.subarray(t * cols, (t + 1) * cols), w, cols, rows, bias)
            const tol = dotTolerance(w, x, rows, cols, t * cols)
            if (bias !== null) for (let r = 0; r < rows; r++) tol[r] = (tol[r] as number) + U * Math.abs(want[r] as number)
            const c = checkWithin(got.subarray(t * rows, (t + 1) * rows), want, tol)
            assert.ok(c.ratio <= 1, `T ${T} rows ${rows} cols ${cols} token ${t}: error ${c.err} (ratio ${c.ratio})`)
            if (c.ratio > worst.ratio) worst = c
          }
        }
        console.log(`[${tuning.name}] matmul ${name}: max |err| ${worst.err.toExponential(2)}, tolerance (cols+2)·2^-23·Σ|w·x| up to ${worst.tol.toExponential(2)}, worst err/tol ${worst.ratio.toFixed(3)}`)
      } finally {
        ctx.destroy()
      }
    })
  }

  test('rmsnorm: rows of every size, and last-row-only', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(13)
    let worst = 0
    const TOL = 1e-5
    try {
      for (const n of SIZES) {
        const T = 3
        const x = randomValues(rnd, T * n, 2)
        const w = randomValues(rnd, n)
        const want = new Float32Array(T * n)
        for (let t = 0; t < T; t++) cpuRmsnorm(want.subarray(t * n, (t + 1) * n), x.subarray(t * n, (t + 1) * n), w, 1e-5)
        const xb = ctx.upload('x', x)
        const wb = ctx.upload('w', w)
        const yb = ctx.storage('y', T * n * 4)
        const last = ctx.storage('last', n * 4)
        const step = stepBuffer(ctx, 0, T)
        await run(ctx, [await rmsnorm(ctx, 'n', xb, wb, yb, step, { n, eps: 1e-5 }), await rmsnorm(ctx, 'last', xb, wb, last, step, { n, eps: 1e-5, lastOnly: true })], T)
        const got = await readF32(ctx.device, yb, T * n)
        const gotLast = await readF32(ctx.device, last, n)
        const err = Math.max(maxAbsDiff(got, want), maxAbsDiff(gotLast, want.subarray((T - 1) * n)))
        assert.ok(err <= TOL, `n ${n}: ${err}`)
        worst = Math.max(worst, err)
      }
      console.log(`[${tuning.name}] rmsnorm: max |err| ${worst.toExponential(2)}, tolerance ${TOL} (outputs of magnitude ~1)`)
    } finally {
      ctx.destroy()
    }
  })

  test('rope + KV store: q rotated in place, k rotated and v copied into the cache rows', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(14)
    const TOL = 1e-6
    let worst = 0
    try {
      for (const [heads, kvHeads, hd, pos, T] of [[2, 1, 4, 0, 1], [4, 2, 6, 7, 3], [3, 3, 2, 30, 2], [8, 4, 64, 100, 5]] as const) {
        const arch: Architecture = { ...TINY_ARCH, n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, max_seq_len: 128 }
        const table = ropeTable(arch)
        const half = hd / 2
        const kvDim = kvHeads * hd
        const layers = 2
        const layer = 1
        const q = randomValues(rnd, T * heads * hd)
        const k = randomValues(rnd, T * kvDim)
        const v = randomValues(rnd, T * kvDim)
        const tableBuf = new Float32Array(2 * arch.max_seq_len * half)
        tableBuf.set(table.cos)
        tableBuf.set(table.sin, table.cos.length)
        const qb = ctx.upload('q', q)
        const kCache = ctx.storage('kc', layers * arch.max_seq_len * kvDim * 4)
        const vCache = ctx.storage('vc', layers * arch.max_seq_len * kvDim * 4)
        const kvOffset = layer * arch.max_seq_len * kvDim
        const d = await rope(ctx, 'rope', { q: qb, k: ctx.upload('k', k), v: ctx.upload('v', v), kCache, vCache, table: ctx.upload('t', tableBuf), step: stepBuffer(ctx, pos, T) },
          { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, kv_offset: kvOffset, sin_offset: table.cos.length })
        await run(ctx, [d], T)
        const gotQ = await readF32(ctx.device, qb, q.length)
        const gotK = await readF32(ctx.device, kCache, T * kvDim, kvOffset + pos * kvDim)
        const gotV = await readF32(ctx.device, vCache, T * kvDim, kvOffset + pos * kvDim)
        for (let t = 0; t < T; t++) {
          cpuRope(q.subarray(t * heads * hd, (t + 1) * heads * hd), heads, hd, pos + t, table)
          cpuRope(k.subarray(t * kvDim, (t + 1) * kvDim), kvHeads, hd, pos + t, table)
        }
        const err = Math.max(maxAbsDiff(gotQ, q), maxAbsDiff(gotK, k), maxAbsDiff(gotV, v))
        assert.ok(err <= TOL, `heads ${heads}/${kvHeads} hd ${hd} pos ${pos}: ${err}`)
        worst = Math.max(worst, err)
      }
      console.log(`[${tuning.name}] rope: max |err| ${worst.toExponential(2)}, tolerance ${TOL}; v copied exactly`)
    } finally {
      ctx.destroy()
    }
  })

  test('attention: decode and causal prefill, GQA, sequences longer than a tile', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(15)
    const TOL = 2e-5
    let worst = 0
    try {
      for (const [heads, kvHeads, hd, pos, T] of [[2, 1, 4, 0, 1], [4, 2, 8, 5, 1], [4, 4, 3 * 2, 70, 1], [8, 2, 64, 130, 1], [2, 1, 16, 0, 9], [6, 3, 10, 60, 7], [1, 1, 128, 3, 2]] as const) {
        const seq = 256
        const kvDim = kvHeads * hd
        const layers = 2
        const layer = 1
        const kvOffset = layer * seq * kvDim
        const kc = randomValues(rnd, layers * seq * kvDim, 2)
        const vc = randomValues(rnd, layers * seq * kvDim)
        const q = randomValues(rnd, T * heads * hd, 2)
        const out = ctx.storage('out', T * heads * hd * 4)
        const d = await attention(ctx, 'att', { q: ctx.upload('q', q), kCache: ctx.upload('kc', kc), vCache: ctx.upload('vc', vc), out, step: stepBuffer(ctx, pos, T) },
          { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, kv_offset: kvOffset })
        await run(ctx, [d], T)
        const got = await readF32(ctx.device, out, T * heads * hd)
        const want = new Float32Array(T * heads * hd)
        const scores = new Float32Array(seq)
        for (let t = 0; t < T; t++) {
          for (let h = 0; h < heads; h++) {
            const kvh = Math.floor(h / (heads / kvHeads))
            const last = pos + t
            for (let j = 0; j <= last; j++) {
              let s = 0
              for (let i = 0; i < hd; i++) s += (q[t * heads * hd + h * hd + i] as number) * (kc[kvOffset + j * kvDim + kvh * hd + i] as number)
              scores[j] = s / Math.sqrt(hd)
            }
            softmax(scores, last + 1)
            for (let i = 0; i < hd; i++) {
              let a = 0
              for (let j = 0; j <= last; j++) a += (scores[j] as number) * (vc[kvOffset + j * kvDim + kvh * hd + i] as number)
              want[t * heads * hd + h * hd + i] = a
            }
          }
        }
        const err = maxAbsDiff(got, want)
        assert.ok(err <= TOL, `heads ${heads}/${kvHeads} hd ${hd} pos ${pos} T ${T}: ${err}`)
        worst = Math.max(worst, err)
      }
      console.log(`[${tuning.name}] attention: max |err| ${worst.toExponential(2)}, tolerance ${TOL} (outputs are convex combinations of values in [-1, 1])`)
    } finally {
      ctx.destroy()
    }
  })

  test('swiglu and add (plain, with b, gated)', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(16)
    const TOL = 4 * U * 16 // 4 ulp at 16: values reach ~12
    let worst = 0
    try {
      for (const cols of SIZES) {
        const T = 2
        const a = randomValues(rnd, T * cols, 8)
        const b = randomValues(rnd, T * cols, 2)
        const g = randomValues(rnd, T, 3)
        const y0 = randomValues(rnd, T * cols)
        const hb = ctx.storage('h', T * cols * 4)
        const step = stepBuffer(ctx, 0, T)
        const ab = ctx.upload('a', a)
        const bb = ctx.upload('b', b)
        const gb = ctx.upload('g', g)
        const yPlain = ctx.upload('y1', y0)
        const yB = ctx.upload('y2', y0)
        const yGated = ctx.upload('y3', y0)
        await run(ctx, [
          await swiglu(ctx, 'sw', ab, bb, hb, step, { cols }),
          await add(ctx, 'add', yPlain, ab, step, { cols }),
          await add(ctx, 'addb', yB, ab, step, { cols, b: bb }),
          await add(ctx, 'addg', yGated, ab, step, { cols, b: bb, g: gb })
        ], T)
        const wantH = a.map((v, i) => silu(v) * (b[i] as number))
        const wantPlain = y0.map((v, i) => v + (a[i] as number))
        const wantB = y0.map((v, i) => v + Math.fround((a[i] as number) + (b[i] as number)))
        const wantG = y0.map((v, i) => v + Math.fround((a[i] as number) + (1 / (1 + Math.exp(-(g[Math.floor(i / cols)] as number)))) * (b[i] as number)))
        const err = Math.max(
          maxAbsDiff(await readF32(ctx.device, hb, T * cols), wantH) / 8,
          maxAbsDiff(await readF32(ctx.device, yPlain, T * cols), wantPlain),
          maxAbsDiff(await readF32(ctx.device, yB, T * cols), wantB),
          maxAbsDiff(await readF32(ctx.device, yGated, T * cols), wantG)
        )
        assert.ok(err <= TOL, `cols ${cols}: ${err}`)
        worst = Math.max(worst, err)
      }
      console.log(`[${tuning.name}] swiglu/add: max |err| ${worst.toExponential(2)} (swiglu relative to |a| <= 8), tolerance ${TOL.toExponential(2)} (4 ulp at 16)`)
    } finally {
      ctx.destroy()
    }
  })

  test('router: top-k with ties to the lower index, softmax / softmax_topk / unit weights, slots and the missing list', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(17)
    const TOL = 1e-6
    let worst = 0
    try {
      for (const [nExperts, k, weighting] of [[2, 1, 'softmax_topk'], [4, 4, 'unit'], [8, 2, 'softmax'], [63, 8, 'softmax_topk'], [5, 3, 'softmax'], [64, 6, 'unit']] as const) {
        const T = 5
        const layers = 3
        const layer = 2
        const logits = randomValues(rnd, T * nExperts, 4)
        // ties: token 1 all equal, token 2 pairs of equal values
        for (let e = 0; e < nExperts; e++) logits[nExperts + e] = 0.5
        for (let e = 0; e < nExperts; e++) logits[2 * nExperts + e] = Math.fround(Math.floor(e / 2) * 0.25)
        const residency = new Uint32Array(layers * nExperts).fill(NO_SLOT)
        const slots = new Map<number, number>()
        for (let e = 0; e < nExperts; e++) if (rnd.next() < 0.5) { slots.set(e, 100 + e); residency[layer * nExperts + e] = 100 + e }
        const capacity = T * layers * k
        const routes = ctx.storage('routes', T * layers * k * ROUTE_BYTES)
        const missing = ctx.storage('missing', (1 + 2 * capacity) * 4)
        const d = await router(ctx, 'router', { logits: ctx.upload('l', logits), residency: ctx.upload('res', residency), routes, missing, step: stepBuffer(ctx, 0, T) },
          { n_experts: nExperts, top_k: k, weighting: WEIGHTING_CODE[weighting], layer, n_layers: layers, capacity })
        await run(ctx, [d], T)
        const r = await readBytes(ctx.device, routes, T * layers * k * ROUTE_BYTES)
        const ru = new Uint32Array(r)
        const rf = new Float32Array(r)
        const m = new Uint32Array(await readBytes(ctx.device, missing, (1 + 2 * capacity) * 4))
        const wantMissing: string[] = []
        for (let t = 0; t < T; t++) {
          const l = logits.subarray(t * nExperts, (t + 1) * nExperts)
          const sel = topK(l, k)
          const w = routerWeights(l, sel, weighting)
          sel.forEach((e, j) => {
            const i = ((t * layers + layer) * k + j) * 3
            assert.equal(ru[i], e, `token ${t} pick ${j}`)
            assert.equal(ru[i + 1], slots.get(e) ?? NO_SLOT)
            worst = Math.max(worst, Math.abs((rf[i + 2] as number) - (w[j] as number)))
            if (!slots.has(e)) wantMissing.push(`${layer}.${e}`)
          })
        }
        const gotMissing = Array.from({ length: m[0] as number }, (_, i) => `${m[1 + 2 * i]}.${m[2 + 2 * i]}`)
        assert.deepEqual(gotMissing.sort(), wantMissing.sort())
      }
      assert.ok(worst <= TOL, `weights: ${worst}`)
      console.log(`[${tuning.name}] router: picks and slots exact, weights max |err| ${worst.toExponential(2)}, tolerance ${TOL}`)
    } finally {
      ctx.destroy()
    }
  })

  for (const [name, dtype] of [['int8', 'int8'], ['f32', 'fp32']] as const) {
    test(`moe_gate_up + moe_down (${name} pool): routed experts by slot, NONE skipped`, async () => {
      const ctx = ctxFor()
      const rnd = createRandom(18)
      let worst = 0
      let worstTol = 0
      let worstRatio = 0
      try {
        for (const [dim, hidden, topK, T] of [[8, 8, 1, 1], [5, 63, 2, 3], [64, 172, 3, 2], [65, 3, 2, 4]] as const) {
          const slots = 4
          const layers = 2
          const layer = 1
          const experts = Array.from({ length: slots }, () => ({
            w1: view(randomValues(rnd, hidden * dim, 0.5), hidden, dim, dtype),
            w3: view(randomValues(rnd, hidden * dim, 0.5), hidden, dim, dtype),
            w2: view(randomValues(rnd, dim * hidden, 0.5), dim, hidden, dtype)
          }))
          const pool = (key: 'w1' | 'w3' | 'w2'): GpuMatrix => {
            const ms = experts.map((e) => hostMatrix(e[key]))
            const first = ms[0] as HostMatrix
            const data = new Uint32Array(slots * first.data.length)
            ms.forEach((m, s) => data.set(m.data, s * first.data.length))
            const scales = first.scales === null ? null : new Float32Array(slots * first.rows)
            if (scales !== null) ms.forEach((m, s) => scales.set(m.scales as Float32Array, s * first.rows))
            return { dtype: first.dtype, rows: first.rows, cols: first.cols, stride: first.stride, weights: ctx.upload(key, data), scales: scales === null ? null : ctx.upload(`${key}s`, scales) }
          }
          // routes (T, layers, topK): random slots, some NONE
          const routeWords = new Uint32Array(T * layers * topK * 3)
          const rf = new Float32Array(routeWords.buffer)
          const chosen: { slot: number; weight: number }[][] = []
          for (let t = 0; t < T; t++) {
            chosen.push([])
            for (let k = 0; k < topK; k++) {
              const slot = rnd.next() < 0.2 ? NO_SLOT : rnd.int(slots)
              const weight = rnd.next()
              const i = ((t * layers + layer) * topK + k) * 3
              routeWords[i] = 0
              routeWords[i + 1] = slot
              rf[i + 2] = weight
              ;(chosen[t] as { slot: number; weight: number }[]).push({ slot, weight })
            }
          }
          const x = randomValues(rnd, T * dim)
          const routes = ctx.upload('routes', routeWords)
          const h = ctx.storage('h', T * topK * hidden * 4)
          const moe = ctx.storage('moe', T * dim * 4)
          const p = { topK, layer, nLayers: layers }
          await run(ctx, [
            await moeGateUp(ctx, 'gu', { w1: pool('w1'), w3: pool('w3'), x: ctx.upload('x', x), routes, h }, p),
            await moeDown(ctx, 'down', { w2: pool('w2'), h, routes, moe }, p)
          ], T)
          const got = await readF32(ctx.device, moe, T * dim)
          const want = new Float32Array(T * dim)
          const tol = new Float32Array(T * dim)
          for (let t = 0; t < T; t++) {
            const xt = x.subarray(t * dim, (t + 1) * dim)
            for (const { slot, weight } of chosen[t] as { slot: number; weight: number }[]) {
              if (slot === NO_SLOT) continue
              const e = experts[slot] as (typeof experts)[number]
              const [w1, w3, w2] = [dequantize(e.w1), dequantize(e.w3), dequantize(e.w2)]
              const a = new Float32Array(hidden)
              const b = new Float32Array(hidden)
              cpuMatmul(a, xt, w1, dim, hidden)
              cpuMatmul(b, xt, w3, dim, hidden)
              const hb = a.map((v, i) => silu(v) * (b[i] as number))
              const o = new Float32Array(dim)
              cpuMatmul(o, hb, w2, hidden, dim)
              // h = silu(a) b: |dh| <= 1.1 |da| |b| + |silu(a)| |db| + 2u |h| (|silu'| <= 1.1)
              const t1 = dotTolerance(w1, xt, hidden, dim)
              const t3 = dotTolerance(w3, xt, hidden, dim)
              const hTol = t1.map((v, i) => 1.1 * v * Math.abs(b[i] as number) + Math.abs(silu(a[i] as number)) * (t3[i] as number) + 2 * U * Math.abs(silu(a[i] as number) * (b[i] as number)))
              for (let r = 0; r < dim; r++) {
                want[t * dim + r] = (want[t * dim + r] as number) + weight * (o[r] as number)
                let s = 0
                let sh = 0
                for (let c = 0; c < hidden; c++) {
                  s += Math.abs((w2[r * hidden + c] as number) * (hb[c] as number))
                  sh += Math.abs(w2[r * hidden + c] as number) * (hTol[c] as number)
                }
                tol[t * dim + r] = (tol[t * dim + r] as number) + weight * ((hidden + topK + 2) * U * s + sh)
              }
            }
          }
          for (let i = 0; i < tol.length; i++) tol[i] = (tol[i] as number) + 1e-30
          const c = checkWithin(got, want, tol)
          assert.ok(c.ratio <= 1, `dim ${dim} hidden ${hidden} topK ${topK}: ${c.err} (ratio ${c.ratio})`)
          worst = Math.max(worst, c.err)
          worstTol = Math.max(worstTol, c.tol)
          worstRatio = Math.max(worstRatio, c.ratio)
        }
        console.log(`[${tuning.name}] moe ${name}: max |err| ${worst.toExponential(2)}, tolerance per output Σ_k w_k ((hidden+k+2)·2^-23·Σ|w2·h| + Σ|w2|·tol(h)), tol(h) = 1.1·tol(w1x)·|w3x| + |silu(w1x)|·tol(w3x) + 2^-22·|h|, up to ${worstTol.toExponential(2)}, worst err/tol ${worstRatio.toExponential(2)}`)
      } finally {
        ctx.destroy()
      }
    })
  }

  for (const dtype of ['int8', 'fp32'] as const) {
    test(`embedding ${dtype}: row gather + dequant, exact`, async () => {
      const ctx = ctxFor()
      const rnd = createRandom(19)
      try {
        for (const [vocab, dim] of [[16, 8], [5, 3], [300, 65], [7, 257]] as const) {
          const v = view(randomValues(rnd, vocab * dim), vocab, dim, dtype)
          const table = dequantize(v)
          const tokens = new Uint32Array([vocab - 1, 0, rnd.int(vocab), rnd.int(vocab)])
          const x = ctx.storage('x', tokens.length * dim * 4)
          await run(ctx, [await embedding(ctx, 'emb', uploadMatrix(ctx, hostMatrix(v)), ctx.upload('tok', tokens), x, stepBuffer(ctx, 0, tokens.length))], tokens.length)
          const got = await readF32(ctx.device, x, tokens.length * dim)
          tokens.forEach((tok, t) => assert.deepEqual(got.subarray(t * dim, (t + 1) * dim), table.subarray(tok * dim, (tok + 1) * dim)))
        }
        console.log(`[${tuning.name}] embedding ${dtype}: max |err| 0 (exact), tolerance 0`)
      } finally {
        ctx.destroy()
      }
    })
  }
})

describe('host layout (no GPU)', () => {
  test('int8 rows padded to whole words, col_major transposed, fp16 widened exactly', () => {
    const rnd = createRandom(20)
    for (const [rows, cols] of [[3, 5], [2, 8], [1, 1], [4, 7]] as const) {
      const values = randomValues(rnd, rows * cols)
      const v = view(values, rows, cols, 'int8')
      const m = hostMatrix(v)
      assert.equal(m.stride, Math.ceil(cols / 4))
      const bytes = new Int8Array(m.data.buffer)
      const q = v.data as Int8Array
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < m.stride * 4; c++) assert.equal(bytes[r * m.stride * 4 + c], c < cols ? q[r * cols + c] : 0)
      }
      // the same tensor stored col_major
      const colData = new Int8Array(rows * cols)
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) colData[c * rows + r] = q[r * cols + c] as number
      const col: TensorView = { header: { ...v.header, layout: 'col_major' }, scales: v.scales, data: colData }
      assert.deepEqual(hostMatrix(col).data, m.data)
      // f32 widening matches the CPU dequantisation
      const f = hostMatrix(v, 'f32')
      const dense = dequantize(v)
      const fv = new Float32Array(f.data.buffer)
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) assert.equal(fv[r * f.stride * 4 + c], dense[r * cols + c])
      const h = hostMatrix(view(values, rows, cols, 'fp16'))
      assert.equal(h.dtype, 'f32')
    }
  })
})
