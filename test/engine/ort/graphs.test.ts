/**
 * Each ORT graph against the CPU reference primitives (src/model/forward.ts) on random weights,
 * int8, fp32 and fp16, on the wasm EP. The reference computes in float64 and stores float32; ORT
 * computes in float32 in its own summation order, so outputs agree to about 1e-6 relative.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { EMBEDDING_NAME, expertName, routerName } from '../../../src/chain/header.ts'
import type { Architecture } from '../../../src/chain/meta.ts'
import type { BlockTensors } from '../../../src/engine/interface.ts'
import { ATTENTION_IO, EXPERT_IO, HEAD_IO, attentionGraph, expertGraph, headGraph, matrixOf, matrixRow } from '../../../src/engine/ort-graphs.ts'
import { OnnxGraph } from '../../../src/engine/ort-onnx.ts'
import { OrtSessionError, createSession, loadOrt, runSession, type Ort, type SessionSettings } from '../../../src/engine/ort-runtime.ts'
import { matmul, rmsnorm, rope, ropeTable, silu, softmax } from '../../../src/model/forward.ts'
import { dequantizeAll, embeddingWeights, expertWeights, layerWeights, type ExpertWeights } from '../../../src/model/weights.ts'
import { dequantize, type TensorView } from '../../../src/tensor/tensorblock.ts'
import { createRandom } from '../../fixtures/random.ts'
import { FP16, FP32, INT8, TEST_ARCHS, maxAbs, maxAbsDiff, randomBlock, type WeightFormat } from './fixtures.ts'

/** Graph outputs vs the reference: absolute, on values of magnitude up to ~10. */
const GRAPH_TOLERANCE = 1e-4
const WASM: SessionSettings = { provider: 'wasm', dequantizeAtLoad: false }
const FORMATS: readonly [string, WeightFormat][] = [['int8', INT8], ['fp32', FP32], ['fp16', FP16]]

async function run(ort: Ort, graph: string, bytes: Uint8Array, feeds: Record<string, { data: Float32Array; dims: number[] }>): Promise<Record<string, Float32Array>> {
  const session = await createSession(ort, WASM, graph, bytes)
  try {
    return await runSession(session, graph, Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.dims)])))
  } finally {
    await session.release()
  }
}

function check(what: string, got: Float32Array | undefined, want: Float32Array, tolerance = GRAPH_TOLERANCE): number {
  assert.ok(got !== undefined, `${what}: no output`)
  const err = maxAbsDiff(got, want)
  assert.ok(err <= tolerance, `${what}: max abs error ${err} > ${tolerance} (values up to ${maxAbs(want)})`)
  return err
}

function randomVector(n: number, seed: number, scale = 1): Float32Array {
  const rnd = createRandom(seed)
  return Float32Array.from({ length: n }, () => rnd.float(scale))
}

/** out (dim) = w2 · (silu(w1 x) ⊙ w3 x), the reference's addExpert without the accumulation. */
function swigluRef(x: Float32Array, e: ExpertWeights, hidden: number, dim: number): Float32Array {
  const h1 = new Float32Array(hidden)
  const h3 = new Float32Array(hidden)
  matmul(h1, x, e.w1, dim, hidden)
  matmul(h3, x, e.w3, dim, hidden)
  for (let i = 0; i < hidden; i++) h1[i] = silu(h1[i] as number) * (h3[i] as number)
  const out = new Float32Array(dim)
  matmul(out, h1, e.w2, hidden, dim)
  return out
}

/** The reference's attention and router steps for one layer (forward.ts, loop body up to top-k), past rows given. */
function attentionRef(arch: Architecture, t: BlockTensors, x: Float32Array, pos: number, pastK: Float32Array, pastV: Float32Array): Record<string, Float32Array> {
  const L = layerWeights(dequantizeAll(t))
  const { dim, head_dim: hd, n_heads: heads, n_kv_heads: kvHeads, norm_eps: eps } = arch
  const kvDim = kvHeads * hd
  const group = heads / kvHeads
  const xb = new Float32Array(dim)
  const q = new Float32Array(heads * hd)
  const k = new Float32Array(kvDim)
  const v = new Float32Array(kvDim)
  rmsnorm(xb, x, L.attentionNorm, eps)
  matmul(q, xb, L.wq, dim, heads * hd, L.bq)
  matmul(k, xb, L.wk, dim, kvDim, L.bk)
  matmul(v, xb, L.wv, dim, kvDim, L.bv)
  if (L.qNorm !== null && L.kNorm !== null) {
    rmsnorm(q, q, L.qNorm, eps)
    rmsnorm(k, k, L.kNorm, eps)
  }
  const table = ropeTable(arch)
  rope(q, heads, hd, pos, table)
  rope(k, kvHeads, hd, pos, table)
  const keys = new Float32Array((pos + 1) * kvDim)
  const values = new Float32Array((pos + 1) * kvDim)
  keys.set(pastK)
  keys.set(k, pos * kvDim)
  values.set(pastV)
  values.set(v, pos * kvDim)
  const att = new Float32Array(heads * hd)
  const scores = new Float32Array(pos + 1)
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group)
    for (let s = 0; s <= pos; s++) {
      let score = 0
      for (let i = 0; i < hd; i++) score += (q[h * hd + i] as number) * (keys[s * kvDim + kvh * hd + i] as number)
      scores[s] = score / Math.sqrt(hd)
    }
    softmax(scores, pos + 1)
    for (let s = 0; s <= pos; s++) {
      for (let i = 0; i < hd; i++) att[h * hd + i] = (att[h * hd + i] as number) + (scores[s] as number) * (values[s * kvDim + kvh * hd + i] as number)
    }
  }
  const xAttn = new Float32Array(dim)
  matmul(xAttn, att, L.wo, heads * hd, dim)
  for (let i = 0; i < dim; i++) xAttn[i] = (xAttn[i] as number) + (x[i] as number)
  const xn = new Float32Array(dim)
  rmsnorm(xn, xAttn, L.ffnNorm, eps)
  const router = new Float32Array(arch.n_experts)
  matmul(router, xn, L.gate, dim, arch.n_experts)
  const out: Record<string, Float32Array> = { [ATTENTION_IO.xAttn]: xAttn, [ATTENTION_IO.k]: k, [ATTENTION_IO.v]: v, [ATTENTION_IO.xn]: xn, [ATTENTION_IO.router]: router }
  if (L.shared !== null) {
    const shared = swigluRef(xn, L.shared, arch.shared_expert_hidden_dim, dim)
    if (L.sharedGate !== null) {
      let z = 0
      for (let i = 0; i < dim; i++) z += (L.sharedGate[i] as number) * (xn[i] as number)
      const gate = 1 / (1 + Math.exp(-z))
      for (let i = 0; i < dim; i++) shared[i] = gate * (shared[i] as number)
    }
    out[ATTENTION_IO.shared] = shared
  }
  return out
}

describe('ORT graphs vs the CPU reference primitives (wasm EP)', async () => {
  const ort = await loadOrt({ provider: 'wasm' })

  test('attention graph: every output, positions 0 (empty past) to max_seq_len - 1, every test architecture and weight format', async () => {
    let worst = 0
    for (const [ai, { what, arch }] of TEST_ARCHS.entries()) {
      for (const [fname, format] of FORMATS) {
        const layer = 1
        const t = randomBlock(routerName(layer), arch, 100 + ai, format)
        const bytes = attentionGraph(arch, layer, t)
        const kvDim = arch.n_kv_heads * arch.head_dim
        const table = ropeTable(arch)
        const half = arch.head_dim / 2
        for (const pos of [0, 1, 5, arch.max_seq_len - 1]) {
          const x = randomVector(arch.dim, pos + 7, 2)
          const pastK = randomVector(pos * kvDim, pos + 11)
          const pastV = randomVector(pos * kvDim, pos + 13)
          const want = attentionRef(arch, t, x, pos, pastK, pastV)
          const got = await run(ort, `attention_${layer}`, bytes, {
            [ATTENTION_IO.x]: { data: x, dims: [1, arch.dim] },
            [ATTENTION_IO.cos]: { data: table.cos.slice(pos * half, (pos + 1) * half), dims: [half, 1] },
            [ATTENTION_IO.sin]: { data: table.sin.slice(pos * half, (pos + 1) * half), dims: [half, 1] },
            [ATTENTION_IO.pastK]: { data: pastK, dims: [pos, arch.n_kv_heads, arch.head_dim] },
            [ATTENTION_IO.pastV]: { data: pastV, dims: [pos, arch.n_kv_heads, arch.head_dim] }
          })
          assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), what)
          for (const [name, w] of Object.entries(want)) worst = Math.max(worst, check(`${what}, ${fname}, pos ${pos}, ${name}`, got[name], w))
        }
      }
    }
    console.log(`# attention graph: max abs error ${worst.toExponential(2)} (tolerance ${GRAPH_TOLERANCE})`)
  })

  test('expert graph: SwiGLU of random inputs, every test architecture and weight format', async () => {
    let worst = 0
    for (const [ai, { what, arch }] of TEST_ARCHS.entries()) {
      for (const [fname, format] of FORMATS) {
        const t = randomBlock(expertName(0, 1), arch, 200 + ai, format)
        const bytes = expertGraph(arch, 0, 1, t)
        const e = expertWeights(dequantizeAll(t))
        for (let i = 0; i < 3; i++) {
          const xn = randomVector(arch.dim, 300 + i, 2)
          const got = await run(ort, 'expert_0_1', bytes, { [EXPERT_IO.xn]: { data: xn, dims: [1, arch.dim] } })
          worst = Math.max(worst, check(`${what}, ${fname}`, got[EXPERT_IO.out], swigluRef(xn, e, arch.expert_hidden_dim, arch.dim)))
        }
      }
    }
    console.log(`# expert graph: max abs error ${worst.toExponential(2)} (tolerance ${GRAPH_TOLERANCE})`)
  })

  test('head graph: final RMSNorm and classifier, tied and untied, every weight format', async () => {
    let worst = 0
    for (const [ai, { what, arch }] of TEST_ARCHS.entries()) {
      for (const [fname, format] of FORMATS) {
        const t = randomBlock(EMBEDDING_NAME, arch, 400 + ai, format)
        const w = embeddingWeights(dequantizeAll(t))
        const classifier = matrixOf((t.get('output') ?? t.get('tok_embeddings')) as TensorView)
        const bytes = headGraph(arch, t, classifier)
        const x = randomVector(arch.dim, 500 + ai, 3)
        const xn = new Float32Array(arch.dim)
        rmsnorm(xn, x, w.norm, arch.norm_eps)
        const want = new Float32Array(arch.vocab_size)
        matmul(want, xn, w.output ?? w.tokEmbeddings, arch.dim, arch.vocab_size)
        const got = await run(ort, 'head', bytes, { [HEAD_IO.x]: { data: x, dims: [1, arch.dim] } })
        worst = Math.max(worst, check(`${what}, ${fname}`, got[HEAD_IO.logits], want))
      }
    }
    console.log(`# head graph: max abs error ${worst.toExponential(2)} (tolerance ${GRAPH_TOLERANCE})`)
  })

  test('dequantizeAtLoad folds int8 weights into the same float32 values: identical outputs', async () => {
    const { arch } = TEST_ARCHS[0] as (typeof TEST_ARCHS)[number]
    const t = randomBlock(expertName(0, 0), arch, 600, INT8)
    const bytes = expertGraph(arch, 0, 0, t)
    const xn = new ort.Tensor('float32', randomVector(arch.dim, 601, 2), [1, arch.dim])
    const outs: Float32Array[] = []
    for (const dequantizeAtLoad of [false, true]) {
      const s = await createSession(ort, { provider: 'wasm', dequantizeAtLoad }, 'expert_0_0', bytes)
      outs.push((await runSession(s, 'expert_0_0', { [EXPERT_IO.xn]: xn }))[EXPERT_IO.out] as Float32Array)
      await s.release()
    }
    assert.deepEqual(outs[0], outs[1])
  })

  test('embedding rows: matrixRow gives exactly what dequantize gives, for int8 (row and col major), fp16 and fp32', () => {
    const arch = (TEST_ARCHS[1] as (typeof TEST_ARCHS)[number]).arch
    for (const [fname, format] of FORMATS) {
      const v = randomBlock(EMBEDDING_NAME, arch, 700, format).get('tok_embeddings') as TensorView
      const full = dequantize(v)
      const m = matrixOf(v)
      const row = new Float32Array(arch.dim)
      for (let r = 0; r < arch.vocab_size; r++) {
        matrixRow(row, m, r)
        assert.deepEqual(row, full.subarray(r * arch.dim, (r + 1) * arch.dim), `${fname} row ${r}`)
      }
    }
    // a col_major int8 block (the decoder accepts it; the encoder never writes it): (r, c) at c * rows + r
    const rows = 3
    const cols = 5
    const data = Int8Array.from({ length: rows * cols }, (_, i) => i * 9 - 60)
    const scales = Float32Array.of(0.5, 0.25, 2)
    const colMajor: TensorView = {
      header: { version: 1, dtype: 'int8', rows, cols, layout: 'col_major', quantization: 'int8_symmetric_per_channel', scaleOffset: 128, dataOffset: 256, merkleOffset: 0 },
      scales,
      data
    }
    const m = matrixOf(colMajor)
    assert.equal(m.kind, 'int8')
    const full = dequantize(colMajor)
    const row = new Float32Array(cols)
    for (let r = 0; r < rows; r++) {
      matrixRow(row, m, r)
      assert.deepEqual(row, full.subarray(r * cols, (r + 1) * cols))
    }
  })

  test('ORT failures are OrtSessionError naming the graph and the phase', async () => {
    await assert.rejects(createSession(ort, WASM, 'garbage', new Uint8Array([1, 2, 3, 4])), (e: unknown) => e instanceof OrtSessionError && e.name === 'OrtSessionError' && e.graph === 'garbage' && e.phase === 'create')
    const g = new OnnxGraph('double')
    const x = g.input('x', [1, 4])
    g.output(g.node('Add', [x, x], {}, 'y'), [1, 4])
    const s = await createSession(ort, WASM, 'double', g.encode())
    const y = await runSession(s, 'double', { x: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4), [1, 4]) })
    assert.deepEqual(y['y'], Float32Array.of(2, 4, 6, 8))
    await assert.rejects(runSession(s, 'double', { x: new ort.Tensor('float32', new Float32Array(3), [1, 3]) }), (e: unknown) => e instanceof OrtSessionError && e.phase === 'run')
    await s.release()
  })

  test('graph builder refuses duplicate names and constants of the wrong size', () => {
    const g = new OnnxGraph('bad')
    g.input('x', [1])
    assert.throws(() => g.input('x', [1]), RangeError)
    assert.throws(() => g.f32('w', new Float32Array(5), [2, 3]), RangeError)
    assert.throws(() => g.i8('w', new Int8Array(5), [2, 3]), RangeError)
  })

  test('loadOrt refuses bad options', async () => {
    await assert.rejects(loadOrt({ provider: 'cuda' as never }), RangeError)
    await assert.rejects(loadOrt({ numThreads: -1 }), RangeError)
    await assert.rejects(loadOrt({ dequantizeAtLoad: 'yes' as never }), TypeError)
  })
})
