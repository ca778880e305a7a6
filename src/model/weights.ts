/**
 * Model weights as float32 arrays, one group per chain B block, read from verified payloads.
 *
 * The CPU reference and the validators run on these; GPU backends upload the int8 TensorBlocks
 * directly and use the same names. Shapes follow src/chain/params.ts: matrices are [out, in]
 * row-major (llama2.c's convention).
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import { checkParamShapes } from '../chain/params.ts'
import { EMBEDDING_NAME, routerName } from '../chain/header.ts'
import { parsePayload } from '../tensor/payload.ts'
import { dequantize, type TensorView } from '../tensor/tensorblock.ts'

/** The `embedding` block. */
export interface EmbeddingWeights {
  readonly tokEmbeddings: Float32Array // (vocab, dim)
  readonly norm: Float32Array // (dim)
  /** The classifier; null when tied to tokEmbeddings. */
  readonly output: Float32Array | null // (vocab, dim)
}

/** A `layer<L>.router` block: attention, norms, router, shared expert. */
export interface LayerWeights {
  readonly attentionNorm: Float32Array // (dim)
  readonly wq: Float32Array // (n_heads * hd, dim)
  readonly wk: Float32Array // (n_kv * hd, dim)
  readonly wv: Float32Array // (n_kv * hd, dim)
  readonly wo: Float32Array // (dim, n_heads * hd)
  readonly bq: Float32Array | null // (n_heads * hd)
  readonly bk: Float32Array | null // (n_kv * hd)
  readonly bv: Float32Array | null // (n_kv * hd)
  readonly qNorm: Float32Array | null // (n_heads * hd)
  readonly kNorm: Float32Array | null // (n_kv * hd)
  readonly ffnNorm: Float32Array // (dim)
  readonly gate: Float32Array // (n_experts, dim)
  readonly shared: ExpertWeights | null
  readonly sharedGate: Float32Array | null // (dim)
}

/** A `layer<L>.expert<E>` block: one SwiGLU FFN, w2 · (silu(w1 x) ⊙ w3 x). */
export interface ExpertWeights {
  readonly w1: Float32Array // (hidden, dim)
  readonly w2: Float32Array // (dim, hidden)
  readonly w3: Float32Array // (hidden, dim)
}

/** The tensors of a parameter payload, decoded (E_TB_*, E_NONFINITE) and checked against the architecture (E_SHAPE). */
export function readBlockTensors(name: string, arch: Architecture, payload: Uint8Array): Map<string, TensorView> {
  const parsed = parsePayload(payload)
  checkParamShapes(name, arch, parsed.index)
  return parsed.tensors
}

/** Float32 copies of checked tensors, for the CPU reference. */
export function dequantizeAll(tensors: ReadonlyMap<string, TensorView>): Map<string, Float32Array> {
  return new Map([...tensors].map(([k, v]) => [k, dequantize(v)]))
}

function must(t: Map<string, Float32Array>, name: string): Float32Array {
  const v = t.get(name)
  if (v === undefined) throw new Error(`missing tensor ${name}`) // unreachable after checkParamShapes
  return v
}

export function embeddingWeights(t: Map<string, Float32Array>): EmbeddingWeights {
  return { tokEmbeddings: must(t, 'tok_embeddings'), norm: must(t, 'norm'), output: t.get('output') ?? null }
}

export function layerWeights(t: Map<string, Float32Array>): LayerWeights {
  const shared = t.has('shared_w1') ? { w1: must(t, 'shared_w1'), w2: must(t, 'shared_w2'), w3: must(t, 'shared_w3') } : null
  return {
    attentionNorm: must(t, 'attention_norm'),
    wq: must(t, 'wq'),
    wk: must(t, 'wk'),
    wv: must(t, 'wv'),
    wo: must(t, 'wo'),
    bq: t.get('bq') ?? null,
    bk: t.get('bk') ?? null,
    bv: t.get('bv') ?? null,
    qNorm: t.get('q_norm') ?? null,
    kNorm: t.get('k_norm') ?? null,
    ffnNorm: must(t, 'ffn_norm'),
    gate: must(t, 'gate'),
    shared,
    sharedGate: t.get('shared_gate') ?? null
  }
}

export function expertWeights(t: Map<string, Float32Array>): ExpertWeights {
  return { w1: must(t, 'w1'), w2: must(t, 'w2'), w3: must(t, 'w3') }
}

/** Block names every token needs: the embedding and each layer's router block. */
export function sharedBlockNames(arch: Architecture): string[] {
  return [EMBEDDING_NAME, ...Array.from({ length: arch.n_layers }, (_, l) => routerName(l))]
}
