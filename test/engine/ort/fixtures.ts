/**
 * ORT backend fixtures: random weights of any architecture as checked block tensors (through the
 * product's own payload encoder and reader), the architectures the ORT tests cover, and helpers to
 * load a backend and compare logits.
 */
import { EMBEDDING_NAME, expertName, routerName } from '../../../src/chain/header.ts'
import type { Architecture } from '../../../src/chain/meta.ts'
import { expectedTensors } from '../../../src/chain/params.ts'
import type { Backend, BlockTensors } from '../../../src/engine/interface.ts'
import { checkArchitecture } from '../../../src/model/imported.ts'
import { readBlockTensors } from '../../../src/model/weights.ts'
import { buildPayload } from '../../../src/tensor/payload.ts'
import type { DType } from '../../../src/tensor/tblock.ts'
import { TINY_ARCH } from '../../fixtures/devnet.ts'
import { createRandom } from '../../fixtures/random.ts'

export interface WeightFormat {
  /** dtype of rank-2 tensors (matrices). */
  readonly matrices: DType
  /** dtype of rank-1 tensors (norms, biases): fp32 or fp16. */
  readonly vectors: 'fp32' | 'fp16'
}

export const INT8: WeightFormat = Object.freeze({ matrices: 'int8', vectors: 'fp32' })
export const FP32: WeightFormat = Object.freeze({ matrices: 'fp32', vectors: 'fp32' })
export const FP16: WeightFormat = Object.freeze({ matrices: 'fp16', vectors: 'fp16' })

/** Every block name of `arch`: embedding, then per layer the router and its experts. */
export function allBlockNames(arch: Architecture): string[] {
  const names = [EMBEDDING_NAME]
  for (let l = 0; l < arch.n_layers; l++) {
    names.push(routerName(l))
    for (let e = 0; e < arch.n_experts; e++) names.push(expertName(l, e))
  }
  return names
}

/**
 * One block's tensors, random in [-scale, scale), encoded as a payload in `format` and read back
 * with readBlockTensors (decoded and shape-checked, as the engine hands them to a backend).
 * Norm weights are drawn around 1, as trained models have them.
 */
export function randomBlock(name: string, arch: Architecture, seed: number, format: WeightFormat = INT8, scale = 0.5): BlockTensors {
  const rnd = createRandom(seed)
  const payload = buildPayload(
    expectedTensors(name, arch).map((spec) => {
      const n = spec.shape.reduce((a, b) => a * b, 1)
      const norm = spec.name.endsWith('norm')
      const values = new Float32Array(n)
      for (let i = 0; i < n; i++) values[i] = norm ? 1 + rnd.float(0.25) : rnd.float(scale)
      return { name: spec.name, values, shape: spec.shape, dtype: spec.shape.length === 1 ? format.vectors : format.matrices }
    })
  )
  return readBlockTensors(name, arch, payload)
}

/** Random tensors for every block of `arch`. */
export function randomModel(arch: Architecture, seed: number, format: WeightFormat = INT8): Map<string, BlockTensors> {
  return new Map(allBlockNames(arch).map((n, i) => [n, randomBlock(n, arch, seed * 1000 + i, format)]))
}

function arch(overrides: Partial<Architecture>): Architecture {
  return checkArchitecture({ ...TINY_ARCH, ...overrides }, null)
}

/** Architectures covering every option the forward pass has (each checked against the chain A schema). */
export const TEST_ARCHS: readonly { readonly what: string; readonly arch: Architecture }[] = Object.freeze([
  {
    what: 'Qwen2-MoE-like: GQA 4/2, attention bias, gated shared expert, softmax, untied',
    arch: arch({ dim: 24, n_layers: 2, n_heads: 4, n_kv_heads: 2, head_dim: 8, vocab_size: 40, max_seq_len: 24, expert_hidden_dim: 16, n_experts: 4, top_k: 2, router_weighting: 'softmax', shared_expert_hidden_dim: 12, shared_expert_gate: true, attention_bias: true, tie_embeddings: false, norm_eps: 1e-6, rope_theta: 1e6 })
  },
  {
    what: 'OLMoE-like: MHA, qk_norm, softmax, untied',
    arch: arch({ dim: 16, n_layers: 2, n_heads: 4, n_kv_heads: 4, head_dim: 4, vocab_size: 32, max_seq_len: 20, expert_hidden_dim: 12, n_experts: 5, top_k: 2, router_weighting: 'softmax', qk_norm: true, tie_embeddings: false })
  },
  {
    what: 'Mixtral-like: GQA 4/1, softmax_topk, ungated shared expert, tied',
    arch: arch({ dim: 16, n_layers: 3, n_heads: 4, n_kv_heads: 1, head_dim: 6, vocab_size: 24, max_seq_len: 20, expert_hidden_dim: 10, n_experts: 4, top_k: 2, router_weighting: 'softmax_topk', shared_expert_hidden_dim: 8 })
  },
  {
    what: 'everything at once: unit weights, top_k = n_experts, qk_norm, bias, gated shared expert, GQA 2/1, tied',
    arch: arch({ dim: 12, n_layers: 2, n_heads: 2, n_kv_heads: 1, head_dim: 6, vocab_size: 20, max_seq_len: 20, expert_hidden_dim: 8, n_experts: 3, top_k: 3, router_weighting: 'unit', shared_expert_hidden_dim: 6, shared_expert_gate: true, qk_norm: true, attention_bias: true })
  }
])

/** loadShared with the embedding and router blocks of `blocks`, then loadExpert for each of `experts` (default: all). */
export async function loadModel(backend: Backend, arch: Architecture, blocks: ReadonlyMap<string, BlockTensors>, experts?: readonly (readonly [number, number])[]): Promise<void> {
  const shared = new Map([...blocks].filter(([n]) => !n.includes('.expert')))
  await backend.loadShared(shared)
  const all = experts ?? Array.from({ length: arch.n_layers * arch.n_experts }, (_, i) => [Math.floor(i / arch.n_experts), i % arch.n_experts] as const)
  for (const [l, e] of all) await backend.loadExpert(l, e, blocks.get(expertName(l, e)) as BlockTensors)
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`lengths differ: ${a.length} vs ${b.length}`)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)))
  return m
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] as number))
  return m
}
