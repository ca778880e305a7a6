/**
 * `npm run genesis`, step 4a: measure the student against the teacher, and its routers.
 *
 * Losses are evaluateLoss (src/train/train.ts: mean next-token cross-entropy, bit-reproducible)
 * over the same sequences for every model. Expert usage counts, per layer, the routing slots each
 * expert got (top_k per token) over the same sequences.
 *
 * @module
 */
import { parseExpertName } from '../../src/chain/header.ts'
import type { NamedTensor } from '../../src/model/imported.ts'
import { blockNames, expectedTensors } from '../../src/chain/params.ts'
import { evaluateLoss, floatModel, type FloatModel } from '../../src/train/train.ts'
import { TrainState, trainForward } from '../../src/train/train-forward.ts'
import { dequantizeAll, readBlockTensors } from '../../src/model/weights.ts'
import { buildPayload } from '../../src/tensor/payload.ts'
import type { LossPair } from './genesis.ts'

/** Sequences cut to what both models can read. */
export function fitSequences(sequences: readonly Int32Array[], maxSeqLen: number): Int32Array[] {
  return sequences.map((s) => s.subarray(0, maxSeqLen + 1)).filter((s) => s.length >= 2)
}

export async function lossPair(student: FloatModel, studentChain: FloatModel, teacher: FloatModel, sequences: readonly Int32Array[]): Promise<LossPair> {
  const seqs = fitSequences(sequences, Math.min(student.architecture.max_seq_len, teacher.architecture.max_seq_len))
  return {
    student: await evaluateLoss(student, seqs),
    student_chain: await evaluateLoss(studentChain, seqs),
    teacher: await evaluateLoss(teacher, seqs),
    sequences: seqs.length,
    tokens: seqs.reduce((n, s) => n + s.length - 1, 0)
  }
}

/** [layer][expert]: share of the layer's routing slots each expert got over `sequences`. */
export function expertUsage(model: FloatModel, sequences: readonly Int32Array[]): number[][] {
  const arch = model.architecture
  const seqs = fitSequences(sequences, arch.max_seq_len)
  const s = new TrainState(arch, Math.max(...seqs.map((q) => q.length - 1)))
  const counts = Array.from({ length: arch.n_layers }, () => new Float64Array(arch.n_experts))
  let slots = 0
  for (const tokens of seqs) {
    trainForward(arch, model.weights, s, tokens)
    s.layers.forEach((A, l) => {
      const c = counts[l] as Float64Array
      for (let i = 0; i < s.positions * arch.top_k; i++) c[A.selected[i] as number] = (c[A.selected[i] as number] as number) + 1
    })
    slots += s.positions * arch.top_k
  }
  return counts.map((c) => [...c].map((n) => n / slots))
}

/** A block's tensors (expectedTensors order, chain names) read from a float model. */
export function blockTensors(model: FloatModel, name: string): NamedTensor[] {
  const arch = model.architecture
  const parsed = parseExpertName(name)
  if (parsed === null) throw new RangeError(`${name}: not a block name`)
  const w = model.weights
  const pick = (tensor: string): Float32Array | null => {
    if (parsed.kind === 'embedding') return ({ tok_embeddings: w.embedding.tokEmbeddings, norm: w.embedding.norm, output: w.embedding.output } as Record<string, Float32Array | null>)[tensor] ?? null
    if (parsed.kind === 'expert') return (w.expert(parsed.layer, parsed.expert) as unknown as Record<string, Float32Array> | undefined)?.[tensor] ?? null
    const L = w.layers[parsed.layer]
    if (L === undefined) return null
    const map: Record<string, Float32Array | null> = {
      attention_norm: L.attentionNorm, wq: L.wq, wk: L.wk, wv: L.wv, wo: L.wo, bq: L.bq, bk: L.bk, bv: L.bv, q_norm: L.qNorm, k_norm: L.kNorm,
      ffn_norm: L.ffnNorm, gate: L.gate, shared_w1: L.shared?.w1 ?? null, shared_w2: L.shared?.w2 ?? null, shared_w3: L.shared?.w3 ?? null, shared_gate: L.sharedGate
    }
    return map[tensor] ?? null
  }
  return expectedTensors(name, arch).map((spec) => {
    const values = pick(spec.name)
    if (values === null) throw new RangeError(`${name}: the model has no ${spec.name}`)
    return { name: spec.name, shape: spec.shape, values }
  })
}

/** Every chain B payload of a float model: int8 matrices, fp32 vectors (what blyan init stores). */
export function chainPayloads(model: FloatModel): Map<string, Uint8Array> {
  return new Map(blockNames(model.architecture).map((name) => [
    name,
    buildPayload(blockTensors(model, name).map((t) => ({ name: t.name, values: t.values, shape: t.shape, dtype: t.shape.length === 1 ? 'fp32' : 'int8' })))
  ]))
}

/** The model the chain holds: each payload read back and dequantized. */
export function chainModel(model: FloatModel, payloads: ReadonlyMap<string, Uint8Array>): FloatModel {
  const arch = model.architecture
  return floatModel(arch, new Map([...payloads].map(([name, bytes]) => [name, dequantizeAll(readBlockTensors(name, arch, bytes))])))
}
