/**
 * Tiny models for the WebGPU training tests: every architecture variant the forward supports,
 * as decoded blocks (what WebGpuTrainer uploads, int8 / fp32 / mixed matrices) and as the float32
 * FloatModel the CPU reference trains (the same values: int8 dequantised as q * scale).
 */
import type { Architecture } from '../../src/chain/meta.ts'
import { blockNames, expectedTensors } from '../../src/chain/params.ts'
import type { BlockTensors } from '../../src/engine/interface.ts'
import { floatModel, type FloatModel } from '../../src/train/train.ts'
import { dequantizeAll, readBlockTensors } from '../../src/model/weights.ts'
import { buildPayload } from '../../src/tensor/payload.ts'
import type { DType } from '../../src/tensor/tblock.ts'
import { createRandom } from '../fixtures/random.ts'
import { TRAIN_BASE_ARCH as BASE } from '../fixtures/train-arch.ts'

export type MatrixKind = 'fp32' | 'int8' | 'mixed'

export interface TrainVariant {
  readonly name: string
  readonly arch: Architecture
  /** Frozen matrices' storage. */
  readonly matrices: MatrixKind
}

/** Tiny configurations that together cover every variant the forward knows, with each matrix storage. */
export const GPU_TRAIN_VARIANTS: readonly TrainVariant[] = Object.freeze(
  (
    [
      ['MHA, softmax (top 2 of 3), no shared expert, tied, fp32', {}, 'fp32'],
      ['GQA 4/2, softmax_topk (top 2 of 4), ungated shared, qk_norm, untied, int8', { n_heads: 4, n_kv_heads: 2, n_experts: 4, router_weighting: 'softmax_topk', shared_expert_hidden_dim: 5, qk_norm: true, tie_embeddings: false }, 'int8'],
      ['GQA 2/1, unit (top 1 of 3), gated shared, q/k/v biases, tied, 3 layers, mixed int8/fp16/fp32', { n_layers: 3, n_kv_heads: 1, top_k: 1, router_weighting: 'unit', shared_expert_hidden_dim: 4, shared_expert_gate: true, attention_bias: true }, 'mixed'],
      ['GQA 4/1, softmax with top_k = n_experts, gated shared, qk_norm, biases, untied, fp32', { n_heads: 4, n_kv_heads: 1, n_experts: 2, top_k: 2, shared_expert_hidden_dim: 6, shared_expert_gate: true, qk_norm: true, attention_bias: true, tie_embeddings: false }, 'fp32'],
      ['MHA, softmax_topk top 1, ungated shared, biases, qk_norm, tied, dim 12, int8', { dim: 12, head_dim: 6, expert_hidden_dim: 7, top_k: 1, router_weighting: 'softmax_topk', shared_expert_hidden_dim: 3, attention_bias: true, qk_norm: true }, 'int8']
    ] as const
  ).map(([name, change, matrices]) => Object.freeze({ name, arch: Object.freeze({ ...BASE, ...change }) as Architecture, matrices }))
)

/** Random blocks for `arch`: matrices uniform in ±0.4 stored as `matrices`, norm weights 1 ± 0.3 and biases ±0.2 as fp32. */
export function trainBlocks(arch: Architecture, seed: number, matrices: MatrixKind): Map<string, BlockTensors> {
  const rnd = createRandom(seed)
  const kinds: DType[] = ['int8', 'fp16', 'fp32']
  return new Map(blockNames(arch).map((name) => {
    const tensors = expectedTensors(name, arch).map((spec) => {
      const n = spec.shape.reduce((a, b) => a * b, 1)
      const norm = /norm$/.test(spec.name)
      const bias = /^b[qkv]$/.test(spec.name)
      const values = Float32Array.from({ length: n }, () => (norm ? 1 + rnd.float(0.3) : rnd.float(bias ? 0.2 : 0.4)))
      const dtype: DType = spec.shape.length === 1 ? 'fp32' : matrices === 'mixed' ? rnd.pick(kinds) : matrices
      return { name: spec.name, values, shape: spec.shape, dtype }
    })
    return [name, readBlockTensors(name, arch, buildPayload(tensors))]
  }))
}

/** The same model in float32 for the CPU reference. */
export function cpuModel(arch: Architecture, blocks: ReadonlyMap<string, BlockTensors>): FloatModel {
  return floatModel(arch, new Map([...blocks].map(([name, t]) => [name, dequantizeAll(t)])))
}

export function randomTokens(arch: Architecture, length: number, seed: number): number[] {
  const rnd = createRandom(seed)
  return Array.from({ length }, () => rnd.int(arch.vocab_size))
}

/** max |a − b| / max(max |b|, 1e-30): the error relative to the reference's largest entry. */
export function maxRelative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`lengths ${a.length} and ${b.length}`)
  let err = 0
  let scale = 0
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs((a[i] as number) - (b[i] as number)))
    scale = Math.max(scale, Math.abs(b[i] as number))
  }
  return err / Math.max(scale, 1e-30)
}
