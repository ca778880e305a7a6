/**
 * The CPU training reference on tiny random models of every architecture variant: the training
 * forward equals forward.ts, gradients of every parameter match central finite differences,
 * target-expert gradients equal the full gradients' slice bit for bit, AdamW against a hand
 * computation, and the training loop's determinism and cancellation.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Architecture } from '../../src/chain/meta.ts'
import { crossEntropy } from '../../src/engine/engine.ts'
import { AdamW } from '../../src/train/adamw.ts'
import { BackwardState, Gradients, backward, objective, type LossTerms } from '../../src/train/backward.ts'
import { RunState, forward, ropeTable, type ReferenceWeights } from '../../src/model/forward.ts'
import { evaluateLoss, trainExpert, type FloatModel } from '../../src/train/train.ts'
import { TrainState, trainForward } from '../../src/train/train-forward.ts'
import type { ExpertWeights, LayerWeights } from '../../src/model/weights.ts'
import { createRandom } from '../fixtures/random.ts'
import { TRAIN_BASE_ARCH as BASE } from '../fixtures/train-arch.ts'

/** Tiny configurations that together cover every variant the forward pass knows. */
export const TRAIN_VARIANTS: readonly { readonly name: string; readonly arch: Architecture }[] = Object.freeze(
  (
    [
      ['MHA, router softmax (top 2 of 3), no shared expert, tied classifier', {}],
      ['GQA 4/2, softmax_topk (top 2 of 4), ungated shared expert, qk_norm, untied', { n_heads: 4, n_kv_heads: 2, n_experts: 4, router_weighting: 'softmax_topk', shared_expert_hidden_dim: 5, qk_norm: true, tie_embeddings: false }],
      ['GQA 2/1, unit (top 1 of 3), gated shared expert, q/k/v biases, tied, 3 layers', { n_layers: 3, n_kv_heads: 1, top_k: 1, router_weighting: 'unit', shared_expert_hidden_dim: 4, shared_expert_gate: true, attention_bias: true }],
      ['GQA 4/1, softmax over all with top_k = n_experts, gated shared, qk_norm, biases, untied', { n_heads: 4, n_kv_heads: 1, n_experts: 2, top_k: 2, shared_expert_hidden_dim: 6, shared_expert_gate: true, qk_norm: true, attention_bias: true, tie_embeddings: false }],
      ['MHA, softmax_topk with top 1 (weight 1), ungated shared, biases, qk_norm, tied', { top_k: 1, router_weighting: 'softmax_topk', shared_expert_hidden_dim: 3, attention_bias: true, qk_norm: true }]
    ] as const
  ).map(([name, change]) => Object.freeze({ name, arch: Object.freeze({ ...BASE, ...change }) as Architecture }))
)

/** Random float32 weights for `arch`: matrices uniform in ±0.4, norm weights 1 ± 0.3, biases ±0.2. */
export function randomWeights(arch: Architecture, seed: number): ReferenceWeights {
  const rnd = createRandom(seed)
  const mat = (n: number): Float32Array => Float32Array.from({ length: n }, () => rnd.float(0.4))
  const norm = (n: number): Float32Array => Float32Array.from({ length: n }, () => 1 + rnd.float(0.3))
  const bias = (n: number): Float32Array => Float32Array.from({ length: n }, () => rnd.float(0.2))
  const { dim, vocab_size: vocab } = arch
  const qDim = arch.n_heads * arch.head_dim
  const kvDim = arch.n_kv_heads * arch.head_dim
  const ffn = (h: number): ExpertWeights => ({ w1: mat(h * dim), w2: mat(dim * h), w3: mat(h * dim) })
  const embedding = { tokEmbeddings: mat(vocab * dim), norm: norm(dim), output: arch.tie_embeddings ? null : mat(vocab * dim) }
  const layers: LayerWeights[] = Array.from({ length: arch.n_layers }, () => ({
    attentionNorm: norm(dim),
    wq: mat(qDim * dim),
    wk: mat(kvDim * dim),
    wv: mat(kvDim * dim),
    wo: mat(dim * qDim),
    bq: arch.attention_bias ? bias(qDim) : null,
    bk: arch.attention_bias ? bias(kvDim) : null,
    bv: arch.attention_bias ? bias(kvDim) : null,
    qNorm: arch.qk_norm ? norm(qDim) : null,
    kNorm: arch.qk_norm ? norm(kvDim) : null,
    ffnNorm: norm(dim),
    gate: mat(arch.n_experts * dim),
    shared: arch.shared_expert_hidden_dim > 0 ? ffn(arch.shared_expert_hidden_dim) : null,
    sharedGate: arch.shared_expert_gate ? mat(dim) : null
  }))
  const experts = Array.from({ length: arch.n_layers }, () => Array.from({ length: arch.n_experts }, () => ffn(arch.expert_hidden_dim)))
  return { embedding, layers, expert: (l, e) => experts[l]?.[e] }
}

export function randomTokens(arch: Architecture, length: number, seed: number): number[] {
  const rnd = createRandom(seed)
  return Array.from({ length }, () => rnd.int(arch.vocab_size))
}

export interface NamedParameter {
  readonly name: string
  readonly weight: Float32Array
  readonly grad: Float32Array
}

/** Every parameter tensor of `w` with its gradient in a full `g`, named as on chain (params.ts). */
export function namedParameters(arch: Architecture, w: ReferenceWeights, g: Gradients): NamedParameter[] {
  const out: NamedParameter[] = []
  const add = (name: string, weight: Float32Array | null, grad: Float32Array | null | undefined): void => {
    if ((weight === null) !== (grad === null || grad === undefined)) throw new Error(`${name}: weight and gradient disagree on presence`)
    if (weight !== null && grad !== null && grad !== undefined) out.push({ name, weight, grad })
  }
  const GE = g.embedding
  if (GE === null || g.layers === null) throw new Error('namedParameters needs full gradients')
  add('tok_embeddings', w.embedding.tokEmbeddings, GE.tokEmbeddings)
  add('norm', w.embedding.norm, GE.norm)
  add('output', w.embedding.output, GE.output)
  for (let l = 0; l < arch.n_layers; l++) {
    const L = w.layers[l] as LayerWeights
    const G = g.layers[l] as LayerWeights
    const p = `layer${l}.`
    add(p + 'attention_norm', L.attentionNorm, G.attentionNorm)
    for (const k of ['wq', 'wk', 'wv', 'wo', 'bq', 'bk', 'bv', 'qNorm', 'kNorm', 'ffnNorm', 'gate', 'sharedGate'] as const) add(p + k, L[k], G[k])
    add(p + 'shared_w1', L.shared?.w1 ?? null, G.shared?.w1)
    add(p + 'shared_w2', L.shared?.w2 ?? null, G.shared?.w2)
    add(p + 'shared_w3', L.shared?.w3 ?? null, G.shared?.w3)
    for (let e = 0; e < arch.n_experts; e++) {
      const ew = w.expert(l, e) as ExpertWeights
      const ge = g.experts[l]?.[e] as ExpertWeights
      for (const k of ['w1', 'w2', 'w3'] as const) add(`layer${l}.expert${e}.${k}`, ew[k], ge[k])
    }
  }
  return out
}

const SEQ = 10 // tokens per sequence: 9 predicted positions

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

/** Selected experts of every layer of the last forward (to spot a top-k flip under perturbation). */
function selections(arch: Architecture, s: TrainState): string {
  return s.layers.map((A) => A.selected.subarray(0, s.positions * arch.top_k).join(',')).join('|')
}

describe('training forward = forward.ts', () => {
  for (const { name, arch } of TRAIN_VARIANTS) {
    test(`${name}: every position's logits bit for bit, the loss as engine.ts's crossEntropy sums it`, () => {
      const w = randomWeights(arch, 11)
      const tokens = randomTokens(arch, arch.max_seq_len + 1, 12)
      const s = new TrainState(arch)
      const loss = trainForward(arch, w, s, tokens)
      const rs = new RunState(arch)
      const table = ropeTable(arch)
      let total = 0
      for (let p = 0; p < arch.max_seq_len; p++) {
        const r = forward(arch, w, rs, table, tokens[p] as number, p)
        assert.ok('logits' in r)
        const row = s.logits.subarray(p * arch.vocab_size, (p + 1) * arch.vocab_size)
        for (let i = 0; i < arch.vocab_size; i++) {
          assert.ok(Math.abs((row[i] as number) - (r.logits[i] as number)) <= 1e-5, `position ${p} logit ${i}: ${row[i]} vs ${r.logits[i]}`)
        }
        assert.ok(bitsEqual(row as Float32Array, r.logits), `position ${p}: logits differ in some bit`)
        total += crossEntropy(r.logits, tokens[p + 1] as number)
      }
      assert.equal(loss, total / arch.max_seq_len)
    })
  }
})

/*
 * Finite-difference tolerance. The check runs the forward in float64 storage ('f64'), so the loss is
 * the exact function of the float32 weights up to ~1e-16 relative roundoff. A weight w0 is moved to
 * the float32 values nearest w0 ± h (h = 1e-4), the steps a, b actually taken are exact in float64,
 * and the second-order difference for unequal steps
 *   L' ≈ (b² (L(w0+a) − L0) + a² (L0 − L(w0−b))) / (a b (a + b))
 * has truncation error O(h² L''') and roundoff ~1e-16 · L / h ≈ 1e-11. The analytic gradient is
 * stored in float32 (6e-8 relative). Measured worst relative error over these models: 3.5e-6 at
 * h = 1e-4 (6e-7 at h = 1e-5, where roundoff starts to show). Accept |fd − g| ≤ 1e-4 · max(|fd|, |g|)
 * + 1e-8: 30x above the truncation error, yet a wrong term (a missing eps, a dropped bias or gate
 * path, a sign) shows up as 1e-2 or worse. The 1e-8 floor covers gradients that are exactly zero
 * (experts no token picked, the router of a `unit` model), where fd is ~1e-12.
 */
const FD_STEP = 1e-4
const FD_RELATIVE = 1e-4
const FD_FLOOR = 1e-8

describe('backward: gradients of every parameter against central finite differences', () => {
  for (const [v, { name, arch }] of TRAIN_VARIANTS.entries()) {
    test(name, (t) => {
      const w = randomWeights(arch, 100 + v)
      const tokens = randomTokens(arch, SEQ, 200 + v)
      const n = SEQ - 1
      const s = new TrainState(arch, n, 'f64')
      const b = new BackwardState(arch, n)
      const g = new Gradients(arch)
      const loss0 = trainForward(arch, w, s, tokens)
      const routes = selections(arch, s)
      backward(arch, w, s, b, tokens, g, 1 / n)
      const rnd = createRandom(300 + v)
      let worst = 0
      let checked = 0
      let nonzero = 0
      let flips = 0
      const tensors = namedParameters(arch, w, g)
      assert.equal(tensors.length, g.tensors().length, 'every gradient tensor is checked')
      for (const { name: tensor, weight, grad } of tensors) {
        for (let c = 0; c < 4; c++) {
          // tok_embeddings: rows of tokens the sequence reads, where the gradient is not trivially 0
          const i = tensor === 'tok_embeddings' ? (tokens[rnd.int(n)] as number) * arch.dim + rnd.int(arch.dim) : rnd.int(weight.length)
          const w0 = weight[i] as number
          weight[i] = w0 + FD_STEP
          const a = (weight[i] as number) - w0
          const up = trainForward(arch, w, s, tokens)
          const upRoutes = selections(arch, s)
          weight[i] = w0 - FD_STEP
          const bb = w0 - (weight[i] as number)
          const down = trainForward(arch, w, s, tokens)
          const downRoutes = selections(arch, s)
          weight[i] = w0
          if (upRoutes !== routes || downRoutes !== routes) {
            flips++ // a top-k choice changed: the loss is not differentiable across it
            continue
          }
          const fd = (bb * bb * (up - loss0) + a * a * (loss0 - down)) / (a * bb * (a + bb))
          const an = grad[i] as number
          const err = Math.abs(fd - an)
          worst = Math.max(worst, err / Math.max(Math.abs(fd), Math.abs(an), 1e-4))
          checked++
          if (Math.abs(an) > 1e-4) nonzero++
          assert.ok(err <= FD_RELATIVE * Math.max(Math.abs(fd), Math.abs(an)) + FD_FLOOR, `${tensor}[${i}]: analytic ${an}, finite difference ${fd}`)
        }
      }
      t.diagnostic(`${checked} coordinates of ${tensors.length} tensors, ${nonzero} nonzero, worst relative error ${worst.toExponential(2)}, ${flips} top-k flips skipped`)
      assert.ok(flips <= checked / 20, `${flips} perturbations changed a top-k choice`)
      assert.ok(nonzero >= checked * 0.8, `only ${nonzero} of ${checked} checked gradients are nonzero: the check is too weak`)
    })
  }
})

describe('backward with distillation and router balance terms: gradients against finite differences of objective()', () => {
  for (const [v, { name, arch }] of TRAIN_VARIANTS.entries()) {
    test(name, (t) => {
      const w = randomWeights(arch, 400 + v)
      const tokens = randomTokens(arch, SEQ, 500 + v)
      const n = SEQ - 1
      // a teacher distribution per position: random logits through a softmax
      const rnd = createRandom(600 + v)
      const probs = new Float64Array(n * arch.vocab_size)
      for (let p = 0; p < n; p++) {
        let z = 0
        for (let i = 0; i < arch.vocab_size; i++) z += probs[p * arch.vocab_size + i] = Math.exp(3 * rnd.float(1))
        for (let i = 0; i < arch.vocab_size; i++) probs[p * arch.vocab_size + i] = (probs[p * arch.vocab_size + i] as number) / z
      }
      const terms: LossTerms = { teacher: { probs, weight: 0.7 }, balance: 0.3 }
      const s = new TrainState(arch, n, 'f64')
      const b = new BackwardState(arch, n)
      const g = new Gradients(arch)
      trainForward(arch, w, s, tokens)
      const loss0 = objective(arch, s, terms) / n
      assert.ok(loss0 !== s.lossSum / n, 'the terms change the loss')
      const routes = selections(arch, s)
      backward(arch, w, s, b, tokens, g, 1 / n, terms)
      let checked = 0
      let flips = 0
      let worst = 0
      const tensors = namedParameters(arch, w, g)
      for (const { name: tensor, weight, grad } of tensors) {
        if (!/gate$|tok_embeddings|output|wq|layer0\.expert0\.w1/.test(tensor)) continue // the router, the ends of the net, one expert
        for (let c = 0; c < 4; c++) {
          const i = tensor === 'tok_embeddings' ? (tokens[rnd.int(n)] as number) * arch.dim + rnd.int(arch.dim) : rnd.int(weight.length)
          const w0 = weight[i] as number
          weight[i] = w0 + FD_STEP
          const a = (weight[i] as number) - w0
          trainForward(arch, w, s, tokens)
          const up = objective(arch, s, terms) / n
          const upRoutes = selections(arch, s)
          weight[i] = w0 - FD_STEP
          const bb = w0 - (weight[i] as number)
          trainForward(arch, w, s, tokens)
          const down = objective(arch, s, terms) / n
          const downRoutes = selections(arch, s)
          weight[i] = w0
          if (upRoutes !== routes || downRoutes !== routes) {
            flips++
            continue
          }
          const fd = (bb * bb * (up - loss0) + a * a * (loss0 - down)) / (a * bb * (a + bb))
          const an = grad[i] as number
          const err = Math.abs(fd - an)
          worst = Math.max(worst, err / Math.max(Math.abs(fd), Math.abs(an), 1e-4))
          checked++
          assert.ok(err <= FD_RELATIVE * Math.max(Math.abs(fd), Math.abs(an)) + FD_FLOOR, `${tensor}[${i}]: analytic ${an}, finite difference ${fd}`)
        }
      }
      t.diagnostic(`${checked} coordinates, worst relative error ${worst.toExponential(2)}, ${flips} top-k flips skipped`)
      assert.ok(checked >= 20 && flips <= checked / 10)
    })
  }

  test('no terms: the objective is the cross-entropy and the gradient is bit-identical to the plain one; bad terms are refused', () => {
    const { arch } = TRAIN_VARIANTS[0] as { arch: Architecture }
    const w = randomWeights(arch, 7)
    const tokens = randomTokens(arch, SEQ, 8)
    const s = new TrainState(arch, SEQ - 1)
    const b = new BackwardState(arch, SEQ - 1)
    trainForward(arch, w, s, tokens)
    assert.equal(objective(arch, s), s.lossSum)
    const plain = new Gradients(arch)
    const zero = new Gradients(arch)
    backward(arch, w, s, b, tokens, plain, 0.1)
    backward(arch, w, s, b, tokens, zero, 0.1, { balance: 0, teacher: { probs: new Float32Array((SEQ - 1) * arch.vocab_size), weight: 0 } })
    plain.tensors().forEach((t, i) => assert.ok(bitsEqual(t, zero.tensors()[i] as Float32Array)))
    assert.throws(() => backward(arch, w, s, b, tokens, plain, 1, { balance: -1 }), (e: unknown) => e instanceof RangeError && /^terms\.balance/.test(e.message))
    assert.throws(() => objective(arch, s, { teacher: { probs: new Float32Array(3), weight: 0.5 } }), (e: unknown) => e instanceof RangeError && /^terms\.teacher\.probs/.test(e.message))
  })
})

describe('backward: target-expert mode', () => {
  for (const [v, { name, arch }] of TRAIN_VARIANTS.entries()) {
    test(`${name}: each expert's gradient equals the full gradient's slice bit for bit`, () => {
      const w = randomWeights(arch, 400 + v)
      const seqs = [randomTokens(arch, SEQ, 500 + v), randomTokens(arch, SEQ - 3, 600 + v)]
      const s = new TrainState(arch, SEQ - 1)
      const b = new BackwardState(arch, SEQ - 1)
      const positions = seqs.reduce((k, q) => k + q.length - 1, 0)
      const run = (g: Gradients): void => {
        for (const tokens of seqs) {
          trainForward(arch, w, s, tokens)
          backward(arch, w, s, b, tokens, g, 1 / positions)
        }
      }
      const full = new Gradients(arch)
      run(full)
      let nonzero = 0
      for (let l = 0; l < arch.n_layers; l++) {
        for (let e = 0; e < arch.n_experts; e++) {
          const g = new Gradients(arch, { layer: l, expert: e })
          assert.equal(g.embedding, null)
          assert.equal(g.layers, null)
          assert.equal(g.tensors().length, 3, 'only the target expert has gradients')
          run(g)
          const mine = g.experts[l]?.[e] as ExpertWeights
          const slice = full.experts[l]?.[e] as ExpertWeights
          for (const k of ['w1', 'w2', 'w3'] as const) assert.ok(bitsEqual(mine[k], slice[k]), `layer ${l} expert ${e} ${k}`)
          if (mine.w2.some((x) => x !== 0)) nonzero++
        }
      }
      assert.ok(nonzero >= arch.n_layers, `only ${nonzero} experts had a nonzero gradient`)
    })
  }

  test('target mode computes nothing below the target layer: frozen weights there are never read', () => {
    const { arch } = TRAIN_VARIANTS[2] as { arch: Architecture }
    const w = randomWeights(arch, 7)
    const tokens = randomTokens(arch, SEQ, 8)
    const s = new TrainState(arch, SEQ - 1)
    const b = new BackwardState(arch, SEQ - 1)
    trainForward(arch, w, s, tokens)
    const target = { layer: 1, expert: 2 }
    const g = new Gradients(arch, target)
    // poison everything the backward must not touch: layer 0, layer 1's attention, other experts of layer 1
    const poisoned: ReferenceWeights = {
      embedding: { ...w.embedding, tokEmbeddings: w.embedding.output === null ? w.embedding.tokEmbeddings : new Float32Array(w.embedding.tokEmbeddings.length).fill(NaN) },
      layers: w.layers.map((L, l) => (l < target.layer ? nanLayer(L) : l === target.layer ? { ...nanLayer(L), shared: L.shared, sharedGate: L.sharedGate, gate: L.gate } : L)),
      expert: (l, e) => (l < target.layer || (l === target.layer && e !== target.expert) ? nanExpert(w.expert(l, e) as ExpertWeights) : w.expert(l, e))
    }
    backward(arch, poisoned, s, b, tokens, g, 1 / (SEQ - 1))
    const grad = g.experts[1]?.[2] as ExpertWeights
    assert.ok([grad.w1, grad.w2, grad.w3].every((a) => a.every(Number.isFinite)), 'no NaN reached the target gradient')
    const ref = new Gradients(arch, target)
    backward(arch, w, s, b, tokens, ref, 1 / (SEQ - 1))
    for (const k of ['w1', 'w2', 'w3'] as const) assert.ok(bitsEqual(grad[k], (ref.experts[1]?.[2] as ExpertWeights)[k]))
  })
})

function nanLayer(L: LayerWeights): LayerWeights {
  const nan = (a: Float32Array | null): Float32Array | null => (a === null ? null : new Float32Array(a.length).fill(NaN))
  return {
    attentionNorm: nan(L.attentionNorm) as Float32Array,
    wq: nan(L.wq) as Float32Array,
    wk: nan(L.wk) as Float32Array,
    wv: nan(L.wv) as Float32Array,
    wo: nan(L.wo) as Float32Array,
    bq: nan(L.bq),
    bk: nan(L.bk),
    bv: nan(L.bv),
    qNorm: nan(L.qNorm),
    kNorm: nan(L.kNorm),
    ffnNorm: nan(L.ffnNorm) as Float32Array,
    gate: nan(L.gate) as Float32Array,
    shared: L.shared === null ? null : nanExpert(L.shared),
    sharedGate: nan(L.sharedGate)
  }
}

function nanExpert(e: ExpertWeights): ExpertWeights {
  return { w1: new Float32Array(e.w1.length).fill(NaN), w2: new Float32Array(e.w2.length).fill(NaN), w3: new Float32Array(e.w3.length).fill(NaN) }
}

describe('AdamW', () => {
  test('two steps against a hand computation (bias correction, decoupled decay, eps)', () => {
    const p = Float32Array.from([1, -2, 0.5, 3])
    const opt = new AdamW([p], { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 })
    // Step 1: m̂ = g and v̂ = g², so each entry moves by lr · g / (|g| + eps) after decaying by (1 - lr · wd) = 0.999.
    opt.step([Float32Array.from([0.1, -0.2, 0, 4])])
    const step1 = [0.999 - 0.1 * (0.1 / (0.1 + 1e-8)), -1.998 + 0.1 * (0.2 / (0.2 + 1e-8)), 0.4995, 2.997 - 0.1 * (4 / (4 + 1e-8))]
    // = [0.89900001, -1.89800000, 0.4995, 2.8970000]
    assert.deepEqual([...p], step1.map(Math.fround))
    assert.ok(Math.abs((p[0] as number) - 0.89900001) < 1e-7)
    // Step 2 with g = [0.3, 0.2, 1, -4]: m = 0.9 m1 + 0.1 g, v = 0.999 v1 + 0.001 g², m̂ = m / 0.19, v̂ = v / 0.001999.
    opt.step([Float32Array.from([0.3, 0.2, 1, -4])])
    const g1 = [0.1, -0.2, 0, 4]
    const g2 = [0.3, 0.2, 1, -4]
    const expected = step1.map((p1, i) => {
      const m = 0.9 * (0.1 * (g1[i] as number)) + 0.1 * (g2[i] as number)
      const v = 0.999 * (0.001 * (g1[i] as number) ** 2) + 0.001 * (g2[i] as number) ** 2
      return Math.fround(p1) * 0.999 - (0.1 * (m / 0.19)) / (Math.sqrt(v / 0.001999) + 1e-8)
    })
    // entry 0 by hand: m = 0.009 + 0.03 = 0.039, v = 0.00000999 + 0.00009 = 0.00009999, m̂ = 0.2052632,
    // v̂ = 0.0500200, update = 0.1 · 0.2052632 / 0.2236516 = 0.0917781; p = 0.89810101 − 0.0917781 = 0.8063229
    assert.ok(Math.abs((expected[0] as number) - 0.8063229) < 1e-6)
    // float32 storage of m and v rounds at the 1e-7 relative level
    p.forEach((x, i) => assert.ok(Math.abs(x - (expected[i] as number)) <= 1e-6 * Math.max(1, Math.abs(expected[i] as number)), `entry ${i}: ${x} vs ${expected[i]}`))
    assert.equal(opt.t, 2)
  })

  test('no weight decay and a zero gradient leaves a parameter exactly unchanged; runs are bit-identical', () => {
    const run = (): Float32Array => {
      const p = Float32Array.from([0.25, -0.7, 1.5])
      const opt = new AdamW([p], { weightDecay: 0 })
      for (let i = 0; i < 5; i++) opt.step([Float32Array.from([0, Math.sin(i), Math.cos(i)])])
      return p
    }
    const a = run()
    assert.equal(a[0], 0.25)
    assert.ok(bitsEqual(a, run()))
  })

  test('bad options and gradients are refused by name', () => {
    assert.throws(() => new AdamW([new Float32Array(2)], { lr: 0 }), (e: unknown) => e instanceof RangeError && /^lr:/.test(e.message))
    assert.throws(() => new AdamW([new Float32Array(2)], { beta2: 1 }), (e: unknown) => e instanceof RangeError && /^beta2:/.test(e.message))
    const opt = new AdamW([new Float32Array(2)])
    assert.throws(() => opt.step([new Float32Array(3)]), (e: unknown) => e instanceof RangeError && /^grads\[0\]/.test(e.message))
  })
})

describe('trainExpert and evaluateLoss on a tiny model', () => {
  const { arch } = TRAIN_VARIANTS[1] as { arch: Architecture }
  const model = (): FloatModel => ({ architecture: arch, weights: randomWeights(arch, 42) })
  const sequences = Array.from({ length: 6 }, (_, i) => randomTokens(arch, SEQ, 900 + i))

  test('evaluateLoss: the mean of forward.ts cross-entropies over every predicted token, bit for bit', async () => {
    const m = model()
    const rs = new RunState(arch)
    const table = ropeTable(arch)
    let total = 0
    let count = 0
    for (const tokens of sequences.slice(0, 3)) {
      for (let p = 0; p + 1 < tokens.length; p++) {
        const r = forward(arch, m.weights, rs, table, tokens[p] as number, p)
        assert.ok('logits' in r)
        total += crossEntropy(r.logits, tokens[p + 1] as number)
        count++
      }
    }
    assert.equal(await evaluateLoss(m, sequences.slice(0, 3)), total / count)
  })

  test('one step: the AdamW update of the batch-mean gradient; the caller\'s weights are not written', async () => {
    const m = model()
    const target = { layer: 1, expert: 3 }
    const original = (m.weights.expert(1, 3) as ExpertWeights).w1.slice()
    const steps: [number, number][] = []
    const r = await trainExpert(m, { target, sequences: sequences.slice(0, 2), steps: 1, batchSize: 2, learningRate: 0.01, onStep: (i, loss) => void steps.push([i, loss]) })
    assert.ok(bitsEqual((m.weights.expert(1, 3) as ExpertWeights).w1, original))
    // by hand: forward + target backward of both sequences (scale 1 / all positions), one AdamW step
    const s = new TrainState(arch, SEQ - 1)
    const b = new BackwardState(arch, SEQ - 1)
    const g = new Gradients(arch, target)
    let lossSum = 0
    for (const tokens of sequences.slice(0, 2)) {
      trainForward(arch, m.weights, s, tokens)
      lossSum += s.lossSum
      backward(arch, m.weights, s, b, tokens, g, 1 / (2 * (SEQ - 1)))
    }
    const base = m.weights.expert(1, 3) as ExpertWeights
    const mine = { w1: base.w1.slice(), w2: base.w2.slice(), w3: base.w3.slice() }
    const grad = g.experts[1]?.[3] as ExpertWeights
    new AdamW([mine.w1, mine.w2, mine.w3], { lr: 0.01 }).step([grad.w1, grad.w2, grad.w3])
    // the batch's sequences may be summed in the other order: equal to float32 rounding of the gradient
    for (const k of ['w1', 'w2', 'w3'] as const) {
      r.expert[k].forEach((x, i) => assert.ok(Math.abs(x - (mine[k][i] as number)) <= 1e-6, `${k}[${i}]`))
      assert.ok(!bitsEqual(r.expert[k], base[k]), `${k} was updated`)
    }
    assert.deepEqual(steps.map(([i]) => i), [0])
    assert.ok(Math.abs((steps[0]?.[1] as number) - lossSum / (2 * (SEQ - 1))) < 1e-12)
    assert.equal(r.losses.length, 1)
  })

  test('deterministic for a seed; another seed draws another order; the loss goes down', async () => {
    const options = { target: { layer: 0, expert: 1 }, sequences, steps: 12, batchSize: 2, learningRate: 0.02, seed: 5 }
    const a = await trainExpert(model(), options)
    const b = await trainExpert(model(), options)
    for (const k of ['w1', 'w2', 'w3'] as const) assert.ok(bitsEqual(a.expert[k], b.expert[k]))
    assert.ok(Buffer.from(a.losses.buffer).equals(Buffer.from(b.losses.buffer)))
    const c = await trainExpert(model(), { ...options, seed: 6 })
    assert.ok(!bitsEqual(a.expert.w1, c.expert.w1))
    const m = model()
    const before = await evaluateLoss(m, sequences)
    const trained: FloatModel = { architecture: arch, weights: { ...m.weights, expert: (l, e) => (l === 0 && e === 1 ? a.expert : m.weights.expert(l, e)) } }
    const after = await evaluateLoss(trained, sequences)
    assert.ok(after < before, `training loss ${before} -> ${after}`)
  })

  test('an AbortSignal stops training between steps; bad arguments are refused by name', async () => {
    const controller = new AbortController()
    const seen: number[] = []
    await assert.rejects(
      trainExpert(model(), { target: { layer: 0, expert: 0 }, sequences, steps: 10, signal: controller.signal, onStep: (i) => (seen.push(i), i === 2 && controller.abort()) }),
      (e: unknown) => e instanceof Error && e.name === 'AbortError'
    )
    assert.deepEqual(seen, [0, 1, 2])
    await assert.rejects(evaluateLoss(model(), sequences, { signal: AbortSignal.abort() }), (e: unknown) => e instanceof Error && e.name === 'AbortError')
    await assert.rejects(trainExpert(model(), { target: { layer: 2, expert: 0 }, sequences, steps: 1 }), (e: unknown) => e instanceof RangeError && /^target\.layer/.test(e.message))
    await assert.rejects(trainExpert(model(), { target: { layer: 0, expert: 0 }, sequences: [[1]], steps: 1 }), (e: unknown) => e instanceof RangeError && /^sequences\[0\]/.test(e.message))
    await assert.rejects(evaluateLoss(model(), [[1, 99]]), (e: unknown) => e instanceof RangeError && /^sequences\[0\]\[1\]: token 99/.test(e.message))
    await assert.rejects(trainExpert(model(), { target: { layer: 0, expert: 0 }, sequences, steps: -1 }), (e: unknown) => e instanceof RangeError && /^steps:/.test(e.message))
  })
})
