/**
 * The ONNX graphs the ORT backend runs, built from a block's checked tensors. One graph per piece
 * of work the engine can schedule on its own:
 *
 * | graph | inputs | outputs |
 * |---|---|---|
 * | `attention` (per layer) | x [1, dim], cos/sin [hd/2, 1] (the `ropeTable` row of pos), past_k/past_v [T, n_kv, hd] (rows 0..pos-1) | x_attn = x + attention(x) [1, dim], k/v [1, n_kv*hd] (the rows for pos), xn = ffn_norm(x_attn) [1, dim], router = gate · xn [1, n_experts], shared [1, dim] (sigmoid-gated shared expert of xn, when the architecture has one) |
 * | `expert` (per resident expert) | xn [1, dim] | out = w2 · (silu(w1 xn) ⊙ w3 xn) [1, dim] |
 * | `head` | x [1, dim] | logits = classifier · rmsnorm(x) [1, vocab] |
 *
 * The routing decision (top-k, weights, which experts to fetch) is in JS between `attention` and
 * `expert`, so experts load selectively, exactly as on the CPU reference (src/model/forward.ts),
 * whose steps each graph follows one to one.
 *
 * Matrices: [out, in] row-major with per-row int8 scales (src/chain/params.ts). An int8 matrix is
 * an int8 initializer -> DequantizeLinear (per-row scale, axis 0, zero point 0) -> Gemm(transB=1):
 * the weights stay int8 in the session (a quarter of float32), and the product sees exactly the
 * float32 values q * scale the CPU reference dequantizes to, so the only difference left is float32
 * summation order. MatMulInteger would need int8 activations too (DynamicQuantizeLinear), an error
 * the reference does not make, so it is not used. fp16 matrices become float32 (exact), fp32 ones
 * are used as they are.
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import { dequantize, type TensorView } from '../tensor/tensorblock.ts'
import { OnnxGraph } from './ort-onnx.ts'
import type { BlockTensors } from './interface.ts'

/** Input and output names of the graphs. */
export const ATTENTION_IO = Object.freeze({
  x: 'x', cos: 'cos', sin: 'sin', pastK: 'past_k', pastV: 'past_v',
  xAttn: 'x_attn', k: 'k', v: 'v', xn: 'xn', router: 'router', shared: 'shared'
})
export const EXPERT_IO = Object.freeze({ xn: 'xn', out: 'out' })
export const HEAD_IO = Object.freeze({ x: 'x', logits: 'logits' })

/** The run-time dimension of the past K/V inputs (positions before the current one). */
export const PAST_DIM = 'past'

/** A weight matrix (rows = out, cols = in), row-major: int8 with per-row scales, or float32. */
export type Matrix =
  | { readonly kind: 'int8'; readonly rows: number; readonly cols: number; readonly q: Int8Array /* (rows, cols) */; readonly scales: Float32Array /* (rows) */ }
  | { readonly kind: 'f32'; readonly rows: number; readonly cols: number; readonly data: Float32Array /* (rows, cols) */ }

/**
 * A TensorView as a row-major Matrix: int8 stays int8 (a col_major int8 block is transposed into a
 * copy), fp16 and fp32 become float32.
 */
export function matrixOf(v: TensorView): Matrix {
  const { rows, cols, layout } = v.header
  if (!(v.data instanceof Int8Array)) return { kind: 'f32', rows, cols, data: dequantize(v) }
  const scales = v.scales as Float32Array
  if (layout === 'row_major') return { kind: 'int8', rows, cols, q: v.data, scales }
  const q = new Int8Array(rows * cols)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) q[r * cols + c] = v.data[c * rows + r] as number
  return { kind: 'int8', rows, cols, q, scales }
}

/** Row `r` of a matrix as float32, exactly as `dequantize` gives it (q * scale rounded to float32). */
export function matrixRow(out: Float32Array, m: Matrix, r: number): void {
  const base = r * m.cols
  if (m.kind === 'f32') {
    out.set(m.data.subarray(base, base + m.cols))
    return
  }
  const s = m.scales[r] as number
  for (let c = 0; c < m.cols; c++) out[c] = (m.q[base + c] as number) * s
}

function tensor(t: BlockTensors, name: string, block: string): TensorView {
  const v = t.get(name)
  if (v === undefined) throw new RangeError(`${block}: no tensor ${name} (payloads must pass readBlockTensors)`)
  return v
}

// ---------------------------------------------------------------------------------------------
// Building blocks (each appends nodes and returns the output value's name)

/** out [1, rows] = x [1, cols] · Wᵀ (+ bias). */
function linear(g: OnnxGraph, x: string, m: Matrix, hint: string, bias: Float32Array | null = null, out?: string): string {
  let w: string
  if (m.kind === 'f32') {
    w = g.f32(hint, m.data, [m.rows, m.cols])
  } else {
    const q = g.i8(`${hint}_q`, m.q, [m.rows, m.cols])
    const scale = g.f32(`${hint}_scale`, m.scales, [m.rows])
    const zero = g.i8(`${hint}_zero`, new Int8Array(m.rows), [m.rows])
    w = g.node('DequantizeLinear', [q, scale, zero], { axis: 0 })
  }
  const inputs = bias === null ? [x, w] : [x, w, g.f32(`${hint}_bias`, bias, [m.rows])]
  return g.node('Gemm', inputs, { transB: 1 }, out)
}

/** out = w * x / sqrt(mean(x²) + eps), over the last axis. */
function rmsnorm(g: OnnxGraph, x: string, w: Float32Array, eps: number, hint: string, out?: string): string {
  const ms = g.node('ReduceMean', [g.node('Mul', [x, x])], { axes: [-1], keepdims: 1 })
  const inv = g.node('Reciprocal', [g.node('Sqrt', [g.node('Add', [ms, g.scalar('eps', eps)])])])
  return g.node('Mul', [g.f32(hint, w, [w.length]), g.node('Mul', [x, inv])], {}, out)
}

/**
 * RoPE on interleaved pairs: x [1, heads*hd] viewed as [heads, hd/2, 2]; each pair (x0, x1) turns
 * by the angle whose cos/sin ([hd/2, 1], the table row of pos) are inputs.
 */
function rope(g: OnnxGraph, x: string, heads: number, hd: number, cos: string, sin: string, out?: string): string {
  const pairs = g.node('Reshape', [x, g.i64('pairs_shape', [heads, hd / 2, 2])])
  const [x0, x1] = g.nodeN('Split', [pairs], 2, { axis: 2 }) as [string, string]
  const r0 = g.node('Sub', [g.node('Mul', [x0, cos]), g.node('Mul', [x1, sin])])
  const r1 = g.node('Add', [g.node('Mul', [x0, sin]), g.node('Mul', [x1, cos])])
  return g.node('Reshape', [g.node('Concat', [r0, r1], { axis: 2 }), g.i64('flat_shape', [1, heads * hd])], {}, out)
}

/** SwiGLU FFN: w2 · (silu(w1 x) ⊙ w3 x), silu(h) = h * sigmoid(h). */
function swiglu(g: OnnxGraph, x: string, w1: Matrix, w2: Matrix, w3: Matrix, hint: string, out?: string): string {
  const h1 = linear(g, x, w1, `${hint}w1`)
  const h3 = linear(g, x, w3, `${hint}w3`)
  const h = g.node('Mul', [g.node('Mul', [h1, g.node('Sigmoid', [h1])]), h3])
  return linear(g, h, w2, `${hint}w2`, null, out)
}

// ---------------------------------------------------------------------------------------------
// Graphs

/** The `attention` graph of layer `layer` from its `layer<L>.router` block (see the module table). */
export function attentionGraph(arch: Architecture, layer: number, t: BlockTensors): Uint8Array {
  const block = `layer${layer}.router`
  const get = (n: string): TensorView => tensor(t, n, block)
  const vec = (n: string): Float32Array => dequantize(get(n))
  const { dim, head_dim: hd, n_heads: heads, n_kv_heads: kvHeads, norm_eps: eps } = arch
  const group = heads / kvHeads
  const io = ATTENTION_IO
  const g = new OnnxGraph(`attention_${layer}`)
  const x = g.input(io.x, [1, dim])
  const cos = g.input(io.cos, [hd / 2, 1])
  const sin = g.input(io.sin, [hd / 2, 1])
  const pastK = g.input(io.pastK, [PAST_DIM, kvHeads, hd])
  const pastV = g.input(io.pastV, [PAST_DIM, kvHeads, hd])

  // q, k, v of the normed x, (qk norm over the full vectors), RoPE
  const xb = rmsnorm(g, x, vec('attention_norm'), eps, 'attention_norm')
  const bias = (n: string): Float32Array | null => (arch.attention_bias ? vec(n) : null)
  let q = linear(g, xb, matrixOf(get('wq')), 'wq', bias('bq'))
  let k = linear(g, xb, matrixOf(get('wk')), 'wk', bias('bk'))
  const v = linear(g, xb, matrixOf(get('wv')), 'wv', bias('bv'), io.v)
  if (arch.qk_norm) {
    q = rmsnorm(g, q, vec('q_norm'), eps, 'q_norm')
    k = rmsnorm(g, k, vec('k_norm'), eps, 'k_norm')
  }
  q = rope(g, q, heads, hd, cos, sin)
  k = rope(g, k, kvHeads, hd, cos, sin, io.k)

  // the cache rows 0..pos: past rows, then this position's; Kᵀ [n_kv, hd, T+1], V [n_kv, T+1, hd]
  const rowShape = g.i64('row_shape', [1, kvHeads, hd])
  const keys = g.node('Concat', [pastK, g.node('Reshape', [k, rowShape])], { axis: 0 })
  const values = g.node('Concat', [pastV, g.node('Reshape', [v, rowShape])], { axis: 0 })
  const keysT = g.node('Transpose', [keys], { perm: [1, 2, 0] })
  const valuesT = g.node('Transpose', [values], { perm: [1, 0, 2] })

  // grouped-query attention: head h reads kv head floor(h / group), so q is [n_kv, group, hd]
  const qg = g.node('Reshape', [q, g.i64('group_shape', [kvHeads, group, hd])])
  const scores = g.node('Div', [g.node('MatMul', [qg, keysT]), g.scalar('sqrt_hd', Math.sqrt(hd))])
  const att = g.node('MatMul', [g.node('Softmax', [scores], { axis: -1 }), valuesT])
  const attFlat = g.node('Reshape', [att, g.i64('att_shape', [1, heads * hd])])
  const xAttn = g.node('Add', [x, linear(g, attFlat, matrixOf(get('wo')), 'wo')], {}, io.xAttn)

  // the FFN's normed input, the router logits, the shared expert
  const xn = rmsnorm(g, xAttn, vec('ffn_norm'), eps, 'ffn_norm', io.xn)
  linear(g, xn, matrixOf(get('gate')), 'gate', null, io.router)
  g.output(io.xAttn, [1, dim])
  g.output(io.k, [1, kvHeads * hd])
  g.output(io.v, [1, kvHeads * hd])
  g.output(io.xn, [1, dim])
  g.output(io.router, [1, arch.n_experts])
  if (arch.shared_expert_hidden_dim > 0) {
    const w = (n: string): Matrix => matrixOf(get(n))
    if (arch.shared_expert_gate) {
      const out = swiglu(g, xn, w('shared_w1'), w('shared_w2'), w('shared_w3'), 'shared_')
      const gate = g.node('Sigmoid', [linear(g, xn, w('shared_gate'), 'shared_gate')])
      g.node('Mul', [out, gate], {}, io.shared)
    } else {
      swiglu(g, xn, w('shared_w1'), w('shared_w2'), w('shared_w3'), 'shared_', io.shared)
    }
    g.output(io.shared, [1, dim])
  }
  return g.encode()
}

/** The `expert` graph of a `layer<L>.expert<E>` block. */
export function expertGraph(arch: Architecture, layer: number, expert: number, t: BlockTensors): Uint8Array {
  const block = `layer${layer}.expert${expert}`
  const w = (n: string): Matrix => matrixOf(tensor(t, n, block))
  const g = new OnnxGraph(`expert_${layer}_${expert}`)
  const xn = g.input(EXPERT_IO.xn, [1, arch.dim])
  swiglu(g, xn, w('w1'), w('w2'), w('w3'), '', EXPERT_IO.out)
  g.output(EXPERT_IO.out, [1, arch.dim])
  return g.encode()
}

/** The `head` graph: final RMSNorm and the classifier (`output`, or `tok_embeddings` when tied). */
export function headGraph(arch: Architecture, t: BlockTensors, classifier: Matrix): Uint8Array {
  const g = new OnnxGraph('head')
  const x = g.input(HEAD_IO.x, [1, arch.dim])
  const xn = rmsnorm(g, x, dequantize(tensor(t, 'norm', 'embedding')), arch.norm_eps, 'norm')
  linear(g, xn, classifier, 'classifier', null, HEAD_IO.logits)
  g.output(HEAD_IO.logits, [1, arch.vocab_size])
  return g.encode()
}
