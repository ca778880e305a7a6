/**
 * Synthetic int8 MoE models for benches: random weights with real shapes, handed straight to a
 * Backend (`loadShared` / `loadExpert`), no chain or tile source. Shared by bench/kernels.bench.ts
 * (Node, Dawn) and the bench page test/browser/bench/main.ts (Chromium), so no Node imports here.
 */
import type { Architecture } from '../src/chain/meta.ts'
import type { Backend } from '../src/engine/interface.ts'

/** Everything but the sizes: llama-style MoE, 8 experts top 2, 4 KV heads of 64, no shared expert. */
export const BASE = { family: 'llama_moe', n_kv_heads: 4, head_dim: 64, max_seq_len: 256, n_experts: 8, top_k: 2, router_weighting: 'softmax_topk', shared_expert_hidden_dim: 0, shared_expert_gate: false, qk_norm: false, attention_bias: false, tie_embeddings: true, norm_eps: 1e-5, rope_theta: 10000 } as const

/** One line describing a model: `dim 512, 4 layers, 8/4 heads of 64, 8 experts of 1408 (top 2), vocab 32000, int8`. */
export function describeArch(arch: Architecture): string {
  return `dim ${arch.dim}, ${arch.n_layers} layers, ${arch.n_heads}/${arch.n_kv_heads} heads of ${arch.head_dim}, ${arch.n_experts} experts of ${arch.expert_hidden_dim} (top ${arch.top_k}), vocab ${arch.vocab_size}, max_seq_len ${arch.max_seq_len}, int8`
}

/** The synthetic model and decode timing live in src/engine/probe.ts (the page's backend choice uses them too). */
export { syntheticTensors as tensorsFor, loadSynthetic as load, decodeMs } from '../src/engine/probe.ts'

/** Index of the largest value (the first on ties): greedy sampling. */
export function argmax(v: Float32Array): number {
  let best = 0
  for (let i = 1; i < v.length; i++) if ((v[i] as number) > (v[best] as number)) best = i
  return best
}

/**
 * Greedy decoding from `first` at position 0: `tokens` forward passes, each fed the argmax of the
 * previous logits. Every expert must be resident (a missing expert throws). Returns the ids and the
 * seconds the passes took.
 */
export async function greedy(b: Backend, first: number, tokens: number): Promise<{ ids: number[]; seconds: number }> {
  b.reset()
  const ids: number[] = []
  let token = first
  const t = performance.now()
  for (let pos = 0; pos < tokens; pos++) {
    const r = await b.forward(token, pos)
    if (!('logits' in r)) throw new Error(`greedy: experts ${r.missing.map((e) => `${e.layer}/${e.expert}`).join(', ')} are not resident`)
    token = argmax(r.logits)
    ids.push(token)
  }
  return { ids, seconds: (performance.now() - t) / 1000 }
}
