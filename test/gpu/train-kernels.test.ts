/**
 * Training kernels against plain CPU loops (float64) of what they compute, the formulas of
 * src/train/backward.ts and src/train/adamw.ts: dense backward GEMMs (input gradients for int8 and
 * float32 weights, weight gradients), RMSNorm, RoPE and attention backward (causal, GQA, a layer
 * offset into the caches), cross-entropy, the MoE route kernels (forward and backward, int8 and
 * float32 pools, the trained expert read from its own buffer), router backward for both softmax
 * kinds, SwiGLU and shared-gate backward, the residual combine, AdamW. Shapes are small and not
 * multiples of 4 or of the workgroup sizes; each runs under the CPU and GPU tuning profiles.
 *
 * Tolerance: max |gpu − cpu| ≤ 1e-5 · max |cpu| per output tensor. The kernels sum in float32
 * and the references in float64; the sums here have at most a few hundred terms, whose float32
 * error is around 1e-7 of the largest output (the logged figures), while a wrong index, a
 * missing term or a wrong sign is off by 1e-2 or more.
 */
import { before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { AdamW } from '../../src/train/adamw.ts'
import { ropeTable, routerWeights, silu, topK } from '../../src/model/forward.ts'
import type { Architecture } from '../../src/chain/meta.ts'
import { GpuContext } from '../../src/gpu/context.ts'
import { CPU_TUNING, GPU_TUNING, type Tuning } from '../../src/gpu/tuning.ts'
import { hostMatrix, type GpuMatrix } from '../../src/gpu/upload.ts'
import { adamw, adamwStepParams, packAdamwParams } from '../../src/gpu/kernels/adamw.ts'
import { attentionBackwardKv } from '../../src/gpu/kernels/attention_backward_kv.ts'
import { attentionBackwardQ } from '../../src/gpu/kernels/attention_backward_q.ts'
import { attentionTrain } from '../../src/gpu/kernels/attention_train.ts'
import { crossEntropy } from '../../src/gpu/kernels/cross_entropy.ts'
import { matmulDx } from '../../src/gpu/kernels/matmul_dx.ts'
import { moeCombine } from '../../src/gpu/kernels/moe_combine.ts'
import { moeDownBackward } from '../../src/gpu/kernels/moe_down_backward.ts'
import { moeDownTrain } from '../../src/gpu/kernels/moe_down_train.ts'
import { moeUpBackward } from '../../src/gpu/kernels/moe_up_backward.ts'
import { moeUpTrain } from '../../src/gpu/kernels/moe_up_train.ts'
import { rmsnormBackward } from '../../src/gpu/kernels/rmsnorm_backward.ts'
import { ropeBackward } from '../../src/gpu/kernels/rope_backward.ts'
import { ROUTE_BYTES, WEIGHTING_CODE } from '../../src/gpu/kernels/router.ts'
import { routerBackward } from '../../src/gpu/kernels/router_backward.ts'
import { sigmoidGateBackward } from '../../src/gpu/kernels/sigmoid_gate_backward.ts'
import { swigluBackward } from '../../src/gpu/kernels/swiglu_backward.ts'
import { weightGrad } from '../../src/gpu/kernels/weight_grad.ts'
import { trainedOffsets, type TrainExperts } from '../../src/gpu/kernels/_experts.ts'
import { decodeTensorBlock, dequantize, encodeTensorBlock } from '../../src/tensor/tensorblock.ts'
import { createRandom, type Random } from '../fixtures/random.ts'
import { NO_GPU, readF32, run, testGpu } from './_setup.ts'

const gpu = await testGpu()
const TOLERANCE = 1e-5
let tuning: Tuning = CPU_TUNING

function ctxFor(packed4x8?: boolean): GpuContext {
  if (gpu === null) throw new Error('unreachable')
  return new GpuContext(gpu.device, { ...gpu.features, ...(packed4x8 === undefined ? {} : { packed4x8 }) }, tuning)
}

function values(rnd: Random, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rnd.float(scale))
}

function step(ctx: GpuContext, tokens: number): GPUBuffer {
  return ctx.uniform('step', new Uint32Array([0, tokens, 0, 0]))
}

/** A matrix (rows, cols) stored as `dtype`: its GPU form and the float32 values the CPU sees. */
function matrix(ctx: GpuContext, rnd: Random, rows: number, cols: number, dtype: 'int8' | 'fp32'): { gpu: GpuMatrix; cpu: Float32Array } {
  const v = decodeTensorBlock(encodeTensorBlock(values(rnd, rows * cols, 0.5), [rows, cols], dtype))
  const h = hostMatrix(v)
  return {
    gpu: { dtype: h.dtype, rows, cols, stride: h.stride, weights: ctx.upload('w', h.data), scales: h.scales === null ? null : ctx.upload('s', h.scales) },
    cpu: dequantize(v)
  }
}

/** max |got − want| / max |want|, asserted within TOLERANCE; returns it. */
function check(label: string, got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length, `${label}: length`)
  let err = 0
  let scale = 0
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs((got[i] as number) - (want[i] as number)))
    scale = Math.max(scale, Math.abs(want[i] as number))
    assert.ok(Number.isFinite(got[i] as number), `${label}[${i}] = ${got[i]}`)
  }
  const rel = err / Math.max(scale, 1e-30)
  assert.ok(rel <= TOLERANCE, `${label}: max |gpu − cpu| / max |cpu| = ${rel.toExponential(2)} above ${TOLERANCE}`)
  return rel
}

/** Routes (T, n_layers, top_k) as the router writes them: { expert, slot, weight }. */
function routesBytes(routes: readonly { expert: number; slot: number; weight: number }[]): Uint32Array {
  const out = new Uint32Array((routes.length * ROUTE_BYTES) / 4)
  const f = new Float32Array(out.buffer)
  routes.forEach((r, i) => {
    out[i * 3] = r.expert
    out[i * 3 + 1] = r.slot
    f[i * 3 + 2] = r.weight
  })
  return out
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x))

for (const profile of [CPU_TUNING, GPU_TUNING]) describe(`training kernels vs CPU loops (${profile.name} tuning)`, { skip: gpu === null ? NO_GPU : false }, () => {
  before(() => {
    tuning = profile
  })
  const log = (name: string, rel: number): void => console.log(`[${profile.name}] ${name}: max |gpu − cpu| / max |cpu| = ${rel.toExponential(2)} (tolerance ${TOLERANCE})`)

  for (const [dtype, packed] of [['fp32', false], ['int8', true], ['int8', false]] as const) {
    test(`matmul_dx ${dtype}${dtype === 'int8' ? (packed ? ' (unpack4xI8)' : ' (shifts)') : ''}: dX = dY W and dX += dY W`, async () => {
      const ctx = ctxFor(packed)
      const rnd = createRandom(1)
      let worst = 0
      try {
        for (const [R, C, T] of [[5, 7, 3], [64, 172, 9], [512, 64, 17], [1, 13, 5]] as const) {
          const w = matrix(ctx, rnd, R, C, dtype)
          const dy = values(rnd, T * R)
          const prior = values(rnd, T * C)
          for (const accumulate of [false, true]) {
            const want = new Float64Array(T * C)
            for (let t = 0; t < T; t++) {
              for (let c = 0; c < C; c++) {
                let s = 0
                for (let r = 0; r < R; r++) s += (dy[t * R + r] as number) * (w.cpu[r * C + c] as number)
                want[t * C + c] = (accumulate ? (prior[t * C + c] as number) : 0) + s
              }
            }
            const dx = ctx.upload('dx', prior)
            await run(ctx, [await matmulDx(ctx, 'dx', w.gpu, ctx.upload('dy', dy), dx, step(ctx, T), { accumulate })], T)
            worst = Math.max(worst, check(`R ${R} C ${C} T ${T} accumulate ${accumulate}`, await readF32(ctx.device, dx, T * C), want))
          }
        }
        log(`matmul_dx ${dtype}`, worst)
      } finally {
        ctx.destroy()
      }
    })
  }

  test('weight_grad: dW += Σ_s dY[s / dy_div]ᵀ X[s / x_div] at offsets, per-token and per-route rows', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(2)
    let worst = 0
    try {
      for (const [R, C, T, perToken, dyDiv, xDiv] of [[5, 7, 3, 1, 1, 1], [6, 8, 9, 2, 1, 2], [43, 64, 17, 2, 1, 2], [9, 6, 5, 3, 3, 1]] as const) {
        const n = T * perToken
        const dyOffset = 3
        const xOffset = 5
        const dwOffset = 8
        const dy = values(rnd, dyOffset + (n / dyDiv) * R)
        const x = values(rnd, xOffset + (n / xDiv) * C)
        const pitch = Math.ceil(C / 4) * 4
        const prior = values(rnd, dwOffset + R * pitch)
        const want = Float64Array.from(prior)
        for (let r = 0; r < R; r++) {
          for (let c = 0; c < C; c++) {
            let s = 0
            for (let i = 0; i < n; i++) s += (dy[dyOffset + Math.floor(i / dyDiv) * R + r] as number) * (x[xOffset + Math.floor(i / xDiv) * C + c] as number)
            want[dwOffset + r * pitch + c] = (prior[dwOffset + r * pitch + c] as number) + s
          }
        }
        const dw = ctx.upload('dw', prior)
        const d = await weightGrad(ctx, 'dw', ctx.upload('dy', dy), ctx.upload('x', x), dw, step(ctx, T), { rows: R, cols: C, perToken, dyDiv, xDiv, dyOffset, xOffset, dwOffset })
        await run(ctx, [d], T)
        worst = Math.max(worst, check(`R ${R} C ${C} T ${T}`, await readF32(ctx.device, dw, prior.length), want))
      }
      log('weight_grad', worst)
    } finally {
      ctx.destroy()
    }
  })

  test('rmsnorm_backward: dx = s w ⊙ dy − x s³ (Σ dy w x) / n, written and accumulated', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(3)
    const eps = 1e-5
    let worst = 0
    try {
      for (const [n, T] of [[8, 3], [65, 7], [300, 2]] as const) {
        const x = values(rnd, T * n)
        const dy = values(rnd, T * n)
        const w = Float32Array.from({ length: n }, () => 1 + rnd.float(0.3))
        const prior = values(rnd, T * n)
        for (const accumulate of [false, true]) {
          const want = new Float64Array(T * n)
          for (let t = 0; t < T; t++) {
            let ss = 0
            let dot = 0
            for (let i = 0; i < n; i++) {
              ss += (x[t * n + i] as number) ** 2
              dot += (dy[t * n + i] as number) * (w[i] as number) * (x[t * n + i] as number)
            }
            const s = 1 / Math.sqrt(ss / n + eps)
            for (let i = 0; i < n; i++) {
              const dx = s * (w[i] as number) * (dy[t * n + i] as number) - ((x[t * n + i] as number) * s * s * s * dot) / n
              want[t * n + i] = (accumulate ? (prior[t * n + i] as number) : 0) + dx
            }
          }
          const out = ctx.upload('out', prior)
          await run(ctx, [await rmsnormBackward(ctx, 'rb', ctx.upload('dy', dy), ctx.upload('x', x), ctx.upload('w', w), out, step(ctx, T), { n, eps, accumulate })], T)
          worst = Math.max(worst, check(`n ${n} T ${T}`, await readF32(ctx.device, out, T * n), want))
        }
      }
      log('rmsnorm_backward', worst)
    } finally {
      ctx.destroy()
    }
  })

  test('rope_backward: the inverse rotation of q and k gradients', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(4)
    const arch = { head_dim: 6, max_seq_len: 16, rope_theta: 10000 } as Architecture
    const table = ropeTable(arch)
    const tableData = new Float32Array(table.cos.length * 2)
    tableData.set(table.cos)
    tableData.set(table.sin, table.cos.length)
    try {
      const [heads, kvHeads, hd, T] = [4, 2, 6, 9]
      const dq = values(rnd, T * heads * hd)
      const dk = values(rnd, T * kvHeads * hd)
      const inverse = (d: Float32Array, h: number): Float64Array => {
        const out = Float64Array.from(d)
        for (let t = 0; t < T; t++) {
          for (let j = 0; j < h; j++) {
            for (let i = 0; i < hd / 2; i++) {
              const c = table.cos[t * (hd / 2) + i] as number
              const s = table.sin[t * (hd / 2) + i] as number
              const a = (t * h + j) * hd + 2 * i
              out[a] = (d[a] as number) * c + (d[a + 1] as number) * s
              out[a + 1] = (d[a + 1] as number) * c - (d[a] as number) * s
            }
          }
        }
        return out
      }
      const bq = ctx.upload('dq', dq)
      const bk = ctx.upload('dk', dk)
      await run(ctx, [await ropeBackward(ctx, 'rope', bq, bk, ctx.upload('table', tableData), step(ctx, T), { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, sin_offset: table.cos.length })], T)
      log('rope_backward', Math.max(check('dq', await readF32(ctx.device, bq, dq.length), inverse(dq, heads)), check('dk', await readF32(ctx.device, bk, dk.length), inverse(dk, kvHeads))))
    } finally {
      ctx.destroy()
    }
  })

  test('cross_entropy: per-position loss and scale · (softmax − onehot(next token))', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(5)
    try {
      for (const [V, T] of [[16, 5], [512, 9]] as const) {
        const logits = values(rnd, T * V, 4)
        const tokens = Uint32Array.from({ length: T + 1 }, () => rnd.int(V))
        const scale = 0.125
        const wantLoss = new Float64Array(T)
        const wantD = new Float64Array(T * V)
        for (let t = 0; t < T; t++) {
          let max = -Infinity
          for (let i = 0; i < V; i++) max = Math.max(max, logits[t * V + i] as number)
          let sum = 0
          for (let i = 0; i < V; i++) sum += Math.exp((logits[t * V + i] as number) - max)
          const y = tokens[t + 1] as number
          wantLoss[t] = Math.log(sum) + max - (logits[t * V + y] as number)
          for (let i = 0; i < V; i++) wantD[t * V + i] = (scale * Math.exp((logits[t * V + i] as number) - max)) / sum - (i === y ? scale : 0)
        }
        const dl = ctx.storage('dl', T * V * 4)
        const losses = ctx.storage('losses', T * 4)
        await run(ctx, [await crossEntropy(ctx, 'ce', { logits: ctx.upload('l', logits), tokens: ctx.upload('t', tokens), scale: ctx.upload('s', Float32Array.of(scale)), dlogits: dl, losses, step: step(ctx, T) }, { vocab: V, target_offset: 1 })], T)
        log(`cross_entropy V ${V}`, Math.max(check('losses', await readF32(ctx.device, losses, T), wantLoss), check('dlogits', await readF32(ctx.device, dl, T * V), wantD)))
      }
    } finally {
      ctx.destroy()
    }
  })

  test('attention_train, attention_backward_q/kv: causal GQA attention and its gradients dq, dk, dv', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(6)
    try {
      const [heads, kvHeads, hd, T, P, layer] = [4, 2, 6, 7, 9, 1]
      const qDim = heads * hd
      const kvDim = kvHeads * hd
      const group = heads / kvHeads
      const q = values(rnd, T * qDim)
      const kCache = values(rnd, 2 * P * kvDim)
      const vCache = values(rnd, 2 * P * kvDim)
      const datt = values(rnd, T * qDim)
      const base = layer * P * kvDim
      // CPU: train-forward.ts's attention and backward.ts's gradients
      const att = new Float64Array(T * qDim)
      const dq = new Float64Array(T * qDim)
      const dk = new Float64Array(T * kvDim)
      const dv = new Float64Array(T * kvDim)
      const inv = 1 / Math.sqrt(hd)
      for (let h = 0; h < heads; h++) {
        const g = Math.floor(h / group)
        for (let t = 0; t < T; t++) {
          const qo = t * qDim + h * hd
          const p = new Float64Array(t + 1)
          let max = -Infinity
          for (let u = 0; u <= t; u++) {
            let s = 0
            for (let i = 0; i < hd; i++) s += (q[qo + i] as number) * (kCache[base + u * kvDim + g * hd + i] as number)
            p[u] = s * inv
            max = Math.max(max, p[u] as number)
          }
          let sum = 0
          for (let u = 0; u <= t; u++) sum += (p[u] = Math.exp((p[u] as number) - max))
          for (let u = 0; u <= t; u++) p[u] = (p[u] as number) / sum
          const dp = new Float64Array(t + 1)
          let dot = 0
          for (let u = 0; u <= t; u++) {
            for (let i = 0; i < hd; i++) {
              att[qo + i] = (att[qo + i] as number) + (p[u] as number) * (vCache[base + u * kvDim + g * hd + i] as number)
              dp[u] = (dp[u] as number) + (datt[qo + i] as number) * (vCache[base + u * kvDim + g * hd + i] as number)
            }
            dot += (p[u] as number) * (dp[u] as number)
          }
          for (let u = 0; u <= t; u++) {
            const ds = (p[u] as number) * ((dp[u] as number) - dot) * inv
            for (let i = 0; i < hd; i++) {
              const ko = u * kvDim + g * hd + i
              dq[qo + i] = (dq[qo + i] as number) + ds * (kCache[base + ko] as number)
              dk[ko] = (dk[ko] as number) + ds * (q[qo + i] as number)
              dv[ko] = (dv[ko] as number) + (p[u] as number) * (datt[qo + i] as number)
            }
          }
        }
      }
      const s = step(ctx, T)
      const qb = ctx.upload('q', q)
      const kb = ctx.upload('k', kCache)
      const vb = ctx.upload('v', vCache)
      const db = ctx.upload('datt', datt)
      const out = ctx.storage('att', T * qDim * 4)
      const dqb = ctx.storage('dq', T * qDim * 4)
      const dkb = ctx.storage('dk', T * kvDim * 4)
      const dvb = ctx.storage('dv', T * kvDim * 4)
      const probs = ctx.storage('probs', heads * P * P * 4)
      const dscores = ctx.storage('dscores', heads * P * P * 4)
      await run(ctx, [
        await attentionTrain(ctx, 'att', { q: qb, kCache: kb, vCache: vb, out, step: s }, { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, kv_offset: base }),
        await attentionBackwardQ(ctx, 'dq', { q: qb, kCache: kb, vCache: vb, datt: db, dq: dqb, probs, dscores, step: s }, { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, kv_offset: base, pitch: P }),
        await attentionBackwardKv(ctx, 'dkv', { q: qb, datt: db, probs, dscores, dk: dkb, dv: dvb, step: s }, { n_heads: heads, n_kv_heads: kvHeads, head_dim: hd, pitch: P })
      ], T)
      log('attention_train + backward', Math.max(
        check('att', await readF32(ctx.device, out, T * qDim), att),
        check('dq', await readF32(ctx.device, dqb, T * qDim), dq),
        check('dk', await readF32(ctx.device, dkb, T * kvDim), dk),
        check('dv', await readF32(ctx.device, dvb, T * kvDim), dv)
      ))
    } finally {
      ctx.destroy()
    }
  })

  for (const [dtype, packed] of [['fp32', false], ['int8', true], ['int8', false]] as const) {
    test(`moe_up_train, moe_down_train, moe_down_backward, moe_up_backward: ${dtype} pool${dtype === 'int8' ? (packed ? ' (unpack4xI8)' : ' (shifts)') : ''}, the trained expert from its own buffer`, async () => {
      const ctx = ctxFor(packed)
      const rnd = createRandom(7)
      try {
        const [layers, E, H, D, k, T, P] = [2, 3, 5, 6, 2, 4, 6]
        const target = { layer: 1, expert: 2 }
        const strideD = Math.ceil(D / 4)
        const strideH = Math.ceil(H / 4)
        // frozen pool: slot = l * E + e, W1 and W3 adjacent; the CPU sees the dequantised values
        const group = dtype === 'int8' ? 1 : 4 // u32 words per 4-column group
        const w13 = new Uint32Array(layers * E * 2 * H * strideD * group)
        const s13 = new Float32Array(layers * E * 2 * H)
        const w2 = new Uint32Array(layers * E * D * strideH * group)
        const s2 = new Float32Array(layers * E * D)
        const cpu: { w1: Float32Array; w3: Float32Array; w2: Float32Array }[] = []
        const put = (rows: number, cols: number, data: Uint32Array, scales: Float32Array, wordAt: number, scaleAt: number): Float32Array => {
          const v = decodeTensorBlock(encodeTensorBlock(values(rnd, rows * cols, 0.5), [rows, cols], dtype))
          const h = hostMatrix(v)
          data.set(h.data, wordAt)
          if (h.scales !== null) scales.set(h.scales, scaleAt)
          return dequantize(v)
        }
        for (let slot = 0; slot < layers * E; slot++) {
          cpu.push({
            w1: put(H, D, w13, s13, slot * 2 * H * strideD * group, slot * 2 * H),
            w3: put(H, D, w13, s13, (slot * 2 + 1) * H * strideD * group, (slot * 2 + 1) * H),
            w2: put(D, H, w2, s2, slot * D * strideH * group, slot * D)
          })
        }
        // the trained expert: float32, other values than its pool slot's
        const tw = { w1: values(rnd, H * D, 0.5), w3: values(rnd, H * D, 0.5), w2: values(rnd, D * H, 0.5) }
        const o = trainedOffsets({ hidden: H, dim: D, strideD, strideH })
        const trained = new Float32Array(o.total)
        const pad = (m: Float32Array, rows: number, cols: number, at: number): void => {
          const pitch = Math.ceil(cols / 4) * 4
          for (let r = 0; r < rows; r++) trained.set(m.subarray(r * cols, (r + 1) * cols), at + r * pitch)
        }
        pad(tw.w1, H, D, 0)
        pad(tw.w3, H, D, o.w3)
        pad(tw.w2, D, H, o.w2)
        const experts: TrainExperts = {
          dtype: dtype === 'int8' ? 'int8' : 'f32', hidden: H, dim: D, strideD, strideH,
          w13: ctx.upload('w13', w13), s13: dtype === 'int8' ? ctx.upload('s13', s13) : null,
          w2: ctx.upload('w2', w2), s2: dtype === 'int8' ? ctx.upload('s2', s2) : null,
          trained: ctx.upload('trained', trained)
        }
        // routes of layer 1: each token's top_k distinct experts, the target among them for some
        const routes: { expert: number; slot: number; weight: number }[] = []
        for (let t = 0; t < T; t++) {
          for (let l = 0; l < layers; l++) {
            const first = (t + l) % E
            for (let j = 0; j < k; j++) {
              const e = (first + j) % E
              routes.push({ expert: e, slot: l * E + e, weight: 0.3 + 0.4 * rnd.next() })
            }
          }
        }
        const route = (t: number, j: number): { expert: number; slot: number; weight: number } => routes[(t * layers + target.layer) * k + j] as { expert: number; slot: number; weight: number }
        const weightsOf = (t: number, j: number): { w1: Float32Array; w3: Float32Array; w2: Float32Array } => (route(t, j).expert === target.expert ? tw : (cpu[route(t, j).slot] as { w1: Float32Array; w3: Float32Array; w2: Float32Array }))
        const x = values(rnd, T * D)
        const dx = values(rnd, T * D)
        // CPU: forward (h1, h3, g, out), backward in both modes, then moe_up_backward of the full mode
        const R = P * k
        const hs = new Float64Array(3 * R * H)
        const out = new Float64Array(T * k * D)
        const full = new Float64Array(2 * R * H)
        const only = new Float64Array(2 * R * H + R * D)
        for (let t = 0; t < T; t++) {
          for (let j = 0; j < k; j++) {
            const s = t * k + j
            const w = weightsOf(t, j)
            for (let r = 0; r < H; r++) {
              let a = 0
              let b = 0
              for (let c = 0; c < D; c++) {
                a += (w.w1[r * D + c] as number) * (x[t * D + c] as number)
                b += (w.w3[r * D + c] as number) * (x[t * D + c] as number)
              }
              hs[s * H + r] = a
              hs[R * H + s * H + r] = b
              hs[2 * R * H + s * H + r] = silu(a) * b
            }
            for (let i = 0; i < D; i++) {
              let a = 0
              for (let r = 0; r < H; r++) a += (w.w2[i * H + r] as number) * (hs[2 * R * H + s * H + r] as number)
              out[s * D + i] = a
            }
            const isTarget = route(t, j).expert === target.expert
            for (let r = 0; r < H; r++) {
              let dg = 0
              for (let i = 0; i < D; i++) dg += (w.w2[i * H + r] as number) * route(t, j).weight * (dx[t * D + i] as number)
              const a = hs[s * H + r] as number
              const sig = sigmoid(a)
              const d1 = dg * (hs[R * H + s * H + r] as number) * sig * (1 + a * (1 - sig))
              const d3 = dg * silu(a)
              full[s * H + r] = d1
              full[R * H + s * H + r] = d3
              only[s * H + r] = isTarget ? d1 : 0
              only[R * H + s * H + r] = isTarget ? d3 : 0
            }
            for (let i = 0; i < D; i++) only[2 * R * H + s * D + i] = isTarget ? route(t, j).weight * (dx[t * D + i] as number) : 0
          }
        }
        const prior = values(rnd, T * D)
        const dF = Float64Array.from(prior)
        for (let t = 0; t < T; t++) {
          for (let j = 0; j < k; j++) {
            const s = t * k + j
            const w = weightsOf(t, j)
            for (let c = 0; c < D; c++) {
              for (let r = 0; r < H; r++) dF[t * D + c] = (dF[t * D + c] as number) + (full[s * H + r] as number) * (w.w1[r * D + c] as number) + (full[R * H + s * H + r] as number) * (w.w3[r * D + c] as number)
            }
          }
        }
        // GPU
        const st = step(ctx, T)
        const rb = ctx.upload('routes', routesBytes(routes))
        const hsb = ctx.storage('hs', 3 * R * H * 4)
        const outb = ctx.storage('out', T * k * D * 4)
        const fullb = ctx.storage('dhs', (2 * R * H + R * D) * 4)
        const onlyb = ctx.storage('dhs', (2 * R * H + R * D) * 4)
        const dfb = ctx.upload('df', prior)
        const xb = ctx.upload('x', x)
        const dxb = ctx.upload('dx', dx)
        const p = { topK: k, layer: target.layer, nLayers: layers, targetLayer: target.layer, targetExpert: target.expert, rowsMax: R }
        await run(ctx, [
          await moeUpTrain(ctx, 'up', { experts, x: xb, routes: rb, hs: hsb, step: st }, p),
          await moeDownTrain(ctx, 'down', { experts, hs: hsb, routes: rb, out: outb, step: st }, p),
          await moeDownBackward(ctx, 'down.dx', { experts, dx: dxb, hs: hsb, routes: rb, dhs: fullb, step: st }, { ...p, targetOnly: false }),
          await moeDownBackward(ctx, 'down.dx.target', { experts, dx: dxb, hs: hsb, routes: rb, dhs: onlyb, step: st }, { ...p, targetOnly: true }),
          await moeUpBackward(ctx, 'up.dx', { experts, dhs: fullb, routes: rb, df: dfb, step: st }, { ...p, accumulate: true })
        ], T)
        const rows = T * k
        const part = async (b: GPUBuffer, at: number, n: number): Promise<Float32Array> => readF32(ctx.device, b, n, at)
        log(`moe route kernels ${dtype}`, Math.max(
          check('h1', await part(hsb, 0, rows * H), hs.subarray(0, rows * H)),
          check('h3', await part(hsb, R * H, rows * H), hs.subarray(R * H, R * H + rows * H)),
          check('g', await part(hsb, 2 * R * H, rows * H), hs.subarray(2 * R * H, 2 * R * H + rows * H)),
          check('out', await readF32(ctx.device, outb, rows * D), out),
          check('dh1', await part(fullb, 0, rows * H), full.subarray(0, rows * H)),
          check('dh3', await part(fullb, R * H, rows * H), full.subarray(R * H, R * H + rows * H)),
          check('dh1 (target only)', await part(onlyb, 0, rows * H), only.subarray(0, rows * H)),
          check('dh3 (target only)', await part(onlyb, R * H, rows * H), only.subarray(R * H, R * H + rows * H)),
          check('dy (target only)', await part(onlyb, 2 * R * H, rows * D), only.subarray(2 * R * H, 2 * R * H + rows * D)),
          check('dF', await readF32(ctx.device, dfb, T * D), dF)
        ))
      } finally {
        ctx.destroy()
      }
    })
  }

  for (const weighting of ['softmax', 'softmax_topk'] as const) {
    test(`router_backward ${weighting}: dr through the routing weights`, async () => {
      const ctx = ctxFor()
      const rnd = createRandom(8)
      try {
        const [E, k, D, T, layers, layer] = [5, 2, 7, 6, 3, 1]
        const logits = values(rnd, T * E, 2)
        const routes: { expert: number; slot: number; weight: number }[] = []
        for (let t = 0; t < T; t++) {
          for (let l = 0; l < layers; l++) {
            const row = logits.subarray(t * E, (t + 1) * E)
            const selected = topK(row, k)
            const w = routerWeights(row, selected, weighting)
            selected.forEach((e, j) => routes.push(l === layer ? { expert: e, slot: e, weight: w[j] as number } : { expert: 0, slot: 0, weight: 0 }))
          }
        }
        const dx = values(rnd, T * D)
        const e = values(rnd, T * k * D)
        const want = new Float64Array(T * E)
        for (let t = 0; t < T; t++) {
          const r = routes.slice((t * layers + layer) * k, (t * layers + layer + 1) * k)
          const dw = r.map((_, j) => {
            let s = 0
            for (let i = 0; i < D; i++) s += (dx[t * D + i] as number) * (e[(t * k + j) * D + i] as number)
            return s
          })
          const dot = r.reduce((s, x, j) => s + x.weight * (dw[j] as number), 0)
          if (weighting === 'softmax') {
            const row = Array.from(logits.subarray(t * E, (t + 1) * E))
            const max = Math.max(...row)
            const sum = row.reduce((s, v) => s + Math.exp(v - max), 0)
            row.forEach((v, x) => (want[t * E + x] = (-Math.exp(v - max) / sum) * dot))
          }
          r.forEach((x, j) => (want[t * E + x.expert] = x.weight * ((dw[j] as number) - dot)))
        }
        const dr = ctx.storage('dr', T * E * 4)
        await run(ctx, [await routerBackward(ctx, 'rb', { dx: ctx.upload('dx', dx), e: ctx.upload('e', e), routes: ctx.upload('routes', routesBytes(routes)), logits: ctx.upload('l', logits), dr, step: step(ctx, T) },
          { nExperts: E, topK: k, weighting, layer, nLayers: layers, dim: D })], T)
        log(`router_backward ${weighting} (code ${WEIGHTING_CODE[weighting]})`, check('dr', await readF32(ctx.device, dr, T * E), want))
        await assert.rejects(routerBackward(ctx, 'unit', { dx: dr, e: dr, routes: dr, logits: dr, dr, step: step(ctx, 1) }, { nExperts: E, topK: k, weighting: 'unit', layer, nLayers: layers, dim: D }), RangeError)
      } finally {
        ctx.destroy()
      }
    })
  }

  test('swiglu_backward (gated and not) and sigmoid_gate_backward', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(9)
    try {
      const [C, T, D] = [7, 5, 6]
      const dg = values(rnd, T * C)
      const a = values(rnd, T * C, 2)
      const b = values(rnd, T * C)
      const z = values(rnd, T, 2)
      let worst = 0
      for (const gated of [false, true]) {
        const da = new Float64Array(T * C)
        const db = new Float64Array(T * C)
        for (let i = 0; i < T * C; i++) {
          const d = (dg[i] as number) * (gated ? sigmoid(z[Math.floor(i / C)] as number) : 1)
          const x = a[i] as number
          da[i] = d * (b[i] as number) * sigmoid(x) * (1 + x * (1 - sigmoid(x)))
          db[i] = d * silu(x)
        }
        const dab = ctx.storage('da', T * C * 4)
        const dbb = ctx.storage('db', T * C * 4)
        await run(ctx, [await swigluBackward(ctx, 'sb', { dg: ctx.upload('dg', dg), a: ctx.upload('a', a), b: ctx.upload('b', b), z: gated ? ctx.upload('z', z) : null, da: dab, db: dbb, step: step(ctx, T) }, { cols: C })], T)
        worst = Math.max(worst, check(`da gated ${gated}`, await readF32(ctx.device, dab, T * C), da), check(`db gated ${gated}`, await readF32(ctx.device, dbb, T * C), db))
      }
      log('swiglu_backward', worst)
      const dy = values(rnd, T * D)
      const s = values(rnd, T * D)
      const dz = new Float64Array(T)
      for (let t = 0; t < T; t++) {
        let d = 0
        for (let i = 0; i < D; i++) d += (dy[t * D + i] as number) * (s[t * D + i] as number)
        const sg = sigmoid(z[t] as number)
        dz[t] = d * sg * (1 - sg)
      }
      const dzb = ctx.storage('dz', T * 4)
      await run(ctx, [await sigmoidGateBackward(ctx, 'gb', ctx.upload('dy', dy), ctx.upload('s', s), ctx.upload('z', z), dzb, step(ctx, T), { cols: D })], T)
      log('sigmoid_gate_backward', check('dz', await readF32(ctx.device, dzb, T), dz))
    } finally {
      ctx.destroy()
    }
  })

  test('moe_combine: y = x + Σ_k w_k e_k + sigmoid(z) s, and y = x + a', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(10)
    try {
      const [C, T, k, layers, layer] = [7, 5, 2, 2, 1]
      const x = values(rnd, T * C)
      const e = values(rnd, T * k * C)
      const s = values(rnd, T * C)
      const z = values(rnd, T)
      const routes = Array.from({ length: T * layers * k }, () => ({ expert: 0, slot: 0, weight: rnd.next() }))
      const want = new Float64Array(T * C)
      const plain = new Float64Array(T * C)
      for (let t = 0; t < T; t++) {
        for (let c = 0; c < C; c++) {
          let m = 0
          for (let j = 0; j < k; j++) m += (routes[(t * layers + layer) * k + j] as { weight: number }).weight * (e[(t * k + j) * C + c] as number)
          m += sigmoid(z[t] as number) * (s[t * C + c] as number)
          want[t * C + c] = (x[t * C + c] as number) + m
          plain[t * C + c] = (x[t * C + c] as number) + (e[t * C + c] as number)
        }
      }
      const y = ctx.storage('y', T * C * 4)
      const y2 = ctx.storage('y2', T * C * 4)
      const xb = ctx.upload('x', x)
      const eb = ctx.upload('e', e)
      const st = step(ctx, T)
      await run(ctx, [
        await moeCombine(ctx, 'moe', { x: xb, e: eb, routes: ctx.upload('r', routesBytes(routes)), s: ctx.upload('s', s), z: ctx.upload('z', z), y, step: st }, { cols: C, terms: k, layer, nLayers: layers }),
        await moeCombine(ctx, 'residual', { x: xb, e: eb, y: y2, step: st }, { cols: C, terms: 1 })
      ], T)
      log('moe_combine', Math.max(check('y', await readF32(ctx.device, y, T * C), want), check('y = x + a', await readF32(ctx.device, y2, T * C), plain)))
    } finally {
      ctx.destroy()
    }
  })

  test('adamw: three steps equal src/train/adamw.ts', async () => {
    const ctx = ctxFor()
    const rnd = createRandom(11)
    try {
      const n = 301
      const settings = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 }
      const p0 = values(rnd, n)
      const grads = [values(rnd, n), values(rnd, n), values(rnd, n)]
      const cpu = p0.slice()
      const opt = new AdamW([cpu], settings)
      const p = ctx.upload('p', p0)
      const g = ctx.storage('g', n * 4)
      const { dispatch, params } = await adamw(ctx, 'adamw', { p, g, m: ctx.storage('m', n * 4), v: ctx.storage('v', n * 4) }, n)
      for (const [i, grad] of grads.entries()) {
        opt.step([grad])
        ctx.write(g, 0, grad)
        ctx.write(params, 0, packAdamwParams(adamwStepParams(n, settings, i + 1)))
        await run(ctx, [dispatch])
      }
      log('adamw (parameters after 3 steps)', check('p', await readF32(ctx.device, p, n), cpu))
    } finally {
      ctx.destroy()
    }
  })
})
