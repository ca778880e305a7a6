/**
 * What each chain B block must hold, derived from the chain A architecture.
 *
 * Weight matrices follow the llama2.c / PyTorch convention: [out, in], one output channel per row,
 * which is the axis int8 scales run along.
 *
 * | block | tensors (shape) |
 * |---|---|
 * | `embedding` | `tok_embeddings` [vocab, dim], `norm` [dim], `output` [vocab, dim] unless tie_embeddings |
 * | `layer<L>.router` | `attention_norm` [dim], `wq` [heads*hd, dim], `wk` [kv*hd, dim], `wv` [kv*hd, dim], `wo` [dim, heads*hd], `bq` [heads*hd], `bk` [kv*hd], `bv` [kv*hd] when attention_bias, `q_norm` [heads*hd] and `k_norm` [kv*hd] when qk_norm, `ffn_norm` [dim], `gate` [experts, dim], `shared_w1` [sh, dim], `shared_w2` [dim, sh], `shared_w3` [sh, dim] with a shared expert, `shared_gate` [1, dim] when gated |
 * | `layer<L>.expert<E>` | `w1` [hidden, dim], `w2` [dim, hidden], `w3` [hidden, dim] (SwiGLU: w2(silu(w1 x) * w3 x)) |
 *
 * Vectors (rank 1: norms, biases) must be fp32 or fp16: one int8 scale for a whole vector would lose its shape.
 *
 * @module
 */
import { reject } from '../errors.ts'
import { EMBEDDING_NAME, expertName, parseExpertName, routerName } from './header.ts'
import type { Architecture } from './meta.ts'

export type TensorDType = 'fp16' | 'int8' | 'fp32'

/** A tensor a block must hold. */
export interface TensorSpec {
  readonly name: string
  readonly shape: readonly number[]
}

/** The slice of a payload index the shape rule reads (src/tensor's PayloadIndex satisfies it). */
export interface IndexedTensors {
  readonly tensors: readonly { readonly name: string; readonly dtype: TensorDType; readonly shape: readonly number[] }[]
}

/** Every parameter group an architecture has, in canonical order: the embedding, then per layer its router and experts. */
export function blockNames(arch: Architecture): string[] {
  const names = [EMBEDDING_NAME]
  for (let l = 0; l < arch.n_layers; l++) {
    names.push(routerName(l))
    for (let e = 0; e < arch.n_experts; e++) names.push(expertName(l, e))
  }
  return names
}

/** Parameters of every block an architecture has (the sum of its tensors' elements). */
export function parameterCount(arch: Architecture): number {
  let n = 0
  for (const name of blockNames(arch)) for (const t of expectedTensors(name, arch)) n += t.shape.reduce((a, d) => a * d, 1)
  return n
}

/** Tensors the block named `expertName` must hold, in canonical order. Throws E_EXPERT_NAME / E_LAYER outside the architecture. */
export function expectedTensors(expertName: string, arch: Architecture): readonly TensorSpec[] {
  const parsed = parseExpertName(expertName)
  if (parsed === null) reject('E_EXPERT_NAME', 'expert_name', `"${expertName}" is not a parameter name`)
  const { dim, head_dim: hd, n_heads: heads, n_kv_heads: kv } = arch
  if (parsed.kind === 'embedding') {
    const specs: TensorSpec[] = [
      { name: 'tok_embeddings', shape: [arch.vocab_size, dim] },
      { name: 'norm', shape: [dim] }
    ]
    if (!arch.tie_embeddings) specs.push({ name: 'output', shape: [arch.vocab_size, dim] })
    return specs
  }
  if (parsed.layer >= arch.n_layers) reject('E_LAYER', 'layer_id', `layer ${parsed.layer} of ${arch.n_layers}`)
  if (parsed.kind === 'expert') {
    if (parsed.expert >= arch.n_experts) reject('E_EXPERT_NAME', 'expert_name', `expert ${parsed.expert} of ${arch.n_experts}`)
    const h = arch.expert_hidden_dim
    return [
      { name: 'w1', shape: [h, dim] },
      { name: 'w2', shape: [dim, h] },
      { name: 'w3', shape: [h, dim] }
    ]
  }
  const specs: TensorSpec[] = [
    { name: 'attention_norm', shape: [dim] },
    { name: 'wq', shape: [heads * hd, dim] },
    { name: 'wk', shape: [kv * hd, dim] },
    { name: 'wv', shape: [kv * hd, dim] },
    { name: 'wo', shape: [dim, heads * hd] }
  ]
  if (arch.attention_bias) specs.push({ name: 'bq', shape: [heads * hd] }, { name: 'bk', shape: [kv * hd] }, { name: 'bv', shape: [kv * hd] })
  if (arch.qk_norm) specs.push({ name: 'q_norm', shape: [heads * hd] }, { name: 'k_norm', shape: [kv * hd] })
  specs.push({ name: 'ffn_norm', shape: [dim] }, { name: 'gate', shape: [arch.n_experts, dim] })
  const sh = arch.shared_expert_hidden_dim
  if (sh > 0) {
    specs.push({ name: 'shared_w1', shape: [sh, dim] }, { name: 'shared_w2', shape: [dim, sh] }, { name: 'shared_w3', shape: [sh, dim] })
    if (arch.shared_expert_gate) specs.push({ name: 'shared_gate', shape: [1, dim] })
  }
  return specs
}

/** Rule E_SHAPE: the payload holds exactly the expected tensors, with the expected shapes. */
export function checkParamShapes(expertName: string, arch: Architecture, index: IndexedTensors): void {
  const expected = expectedTensors(expertName, arch)
  const held = new Map(index.tensors.map((t) => [t.name, t]))
  for (const spec of expected) {
    const t = held.get(spec.name)
    if (t === undefined) reject('E_SHAPE', `payload.${spec.name}`, 'missing')
    if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      reject('E_SHAPE', `payload.${spec.name}`, `shape [${t.shape.join(', ')}], architecture says [${spec.shape.join(', ')}]`)
    }
    if (t.shape.length === 1 && t.dtype === 'int8') reject('E_SHAPE', `payload.${spec.name}`, 'vectors are fp32 or fp16')
  }
  if (held.size !== expected.length) {
    const extra = [...held.keys()].find((n) => !expected.some((s) => s.name === n))
    reject('E_SHAPE', `payload.${extra ?? '?'}`, `not a tensor of ${expertName}`)
  }
}
