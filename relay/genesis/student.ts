/**
 * `npm run genesis`, step 2: train a student MoE from scratch by distillation from a teacher, on the
 * CPU reference (src/train/train-forward.ts, backward.ts, adamw.ts), data-parallel over worker
 * threads.
 *
 * Per step: the batch is the next `batchSize` sequences of a seeded shuffle (sequenceDraw, as
 * trainExpert draws); sequence i of the batch goes to shard i mod shards. Each shard (a worker
 * thread) runs, per sequence, the teacher's forward (its next-token distributions), the student's
 * forward and the backward of the LossTerms objective (next-token cross-entropy mixed with the
 * teacher's distributions, plus the routers' load-balancing loss) into its own gradient buffer.
 * The main thread adds the shards' gradients in shard order, clips their global norm and takes
 * one AdamW step at the step's learning rate (linear warm-up, cosine decay). Weights live in one
 * SharedArrayBuffer every thread reads, written only by the main thread between steps.
 *
 * Deterministic: for the same configuration (shards included) every bit of the result is the
 * same on any run of the same code and JavaScript engine. Initialisation: matrices N(0, 0.02),
 * residual-output projections (wo, expert w2) N(0, 0.02 / sqrt(2 · layers)), norms 1.
 *
 * @module
 */
import type { Worker } from 'node:worker_threads'
import type { Architecture } from '../../src/chain/meta.ts'
import { Gradients } from '../../src/train/backward.ts'
import { AdamW } from '../../src/train/adamw.ts'
import type { ReferenceWeights } from '../../src/model/forward.ts'
import { mulberry32, sequenceDraw } from '../../src/model/random.ts'
import type { FloatModel } from '../../src/train/train.ts'
import { startTsWorker } from './worker.ts'

export interface StudentConfig {
  readonly architecture: Architecture
  readonly steps: number
  readonly batchSize: number
  /** Peak learning rate. */
  readonly learningRate: number
  /** Linear warm-up steps, then cosine decay to `minLearningRate`. */
  readonly warmupSteps: number
  readonly minLearningRate: number
  readonly weightDecay: number
  /** Global gradient-norm clip. */
  readonly clipNorm: number
  /** λ: weight of the teacher's distribution in each position's loss (backward.ts LossTerms). */
  readonly distillWeight: number
  /** α: router load-balancing weight (backward.ts LossTerms). */
  readonly balanceWeight: number
  /** Seed of the initial weights (the batch order uses seed + 1). */
  readonly seed: number
  /** Worker threads; part of the result's definition (gradients are added per shard). */
  readonly shards: number
}

export interface StepRecord {
  readonly step: number
  readonly learningRate: number
  /** Next-token cross-entropy of the batch (nats/token), before the step's update. */
  readonly ce: number
  /** The full objective per token (with distillation and balance terms). */
  readonly objective: number
  readonly gradNorm: number
}

export interface StudentOptions {
  readonly config: StudentConfig
  readonly teacher: FloatModel
  /** Token sequences (BOS first), 2..max_seq_len + 1 tokens each, in both vocabularies. */
  readonly sequences: readonly Int32Array[]
  readonly signal?: AbortSignal
  readonly onStep?: (record: StepRecord, tokensPerSecond: number) => void
}

export interface StudentResult {
  readonly model: FloatModel
  readonly history: readonly StepRecord[]
}

/** The step's learning rate: linear warm-up to the peak, then cosine decay to the minimum at the last step. */
export function learningRateAt(c: StudentConfig, step: number): number {
  if (step < c.warmupSteps) return (c.learningRate * (step + 1)) / c.warmupSteps
  const t = c.steps <= c.warmupSteps + 1 ? 1 : (step - c.warmupSteps) / (c.steps - c.warmupSteps - 1)
  return c.minLearningRate + 0.5 * (c.learningRate - c.minLearningRate) * (1 + Math.cos(Math.PI * Math.min(1, t)))
}

/** A full parameter set laid out over `buffer` (Gradients' layout), and its total length in floats. */
export function parameterSet(arch: Architecture, buffer: ArrayBufferLike | null): { params: Gradients; length: number } {
  let offset = 0
  const params = new Gradients(arch, null, (n) => {
    const view = buffer === null ? new Float32Array(0) : new Float32Array(buffer, offset * 4, n)
    offset += n
    return view
  })
  return { params, length: offset }
}

/** A parameter set as the forward pass's weights. */
export function weightsOf(params: Gradients): ReferenceWeights {
  if (params.embedding === null || params.layers === null) throw new Error('weightsOf: expected a full parameter set')
  const experts = params.experts
  return { embedding: params.embedding, layers: params.layers, expert: (l, e) => experts[l]?.[e] ?? undefined }
}

/** Seeded initial weights (module doc). */
export function initialize(arch: Architecture, params: Gradients, seed: number): void {
  const random = mulberry32(seed)
  const normal = (): number => {
    // Box-Muller; 1 - u keeps the log finite
    const u = 1 - random()
    const v = random()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }
  const fill = (t: Float32Array | null, std: number): void => {
    if (t !== null) for (let i = 0; i < t.length; i++) t[i] = std * normal()
  }
  const ones = (t: Float32Array | null): void => void t?.fill(1)
  const std = 0.02
  const residual = std / Math.sqrt(2 * arch.n_layers)
  const E = params.embedding
  if (E === null || params.layers === null) throw new Error('initialize: expected a full parameter set')
  fill(E.tokEmbeddings, std)
  ones(E.norm)
  fill(E.output, std)
  params.layers.forEach((L, l) => {
    ones(L.attentionNorm)
    fill(L.wq, std)
    fill(L.wk, std)
    fill(L.wv, std)
    fill(L.wo, residual)
    for (const b of [L.bq, L.bk, L.bv]) b?.fill(0)
    ones(L.qNorm)
    ones(L.kNorm)
    ones(L.ffnNorm)
    fill(L.gate, std)
    if (L.shared !== null) {
      fill(L.shared.w1, std)
      fill(L.shared.w3, std)
      fill(L.shared.w2, residual)
    }
    fill(L.sharedGate, std)
    for (const e of params.experts[l] ?? []) {
      if (e === null) continue
      fill(e.w1, std)
      fill(e.w3, std)
      fill(e.w2, residual)
    }
  })
}

/** What a shard worker is started with. */
export interface ShardData {
  readonly architecture: Architecture
  readonly teacherArchitecture: Architecture
  /** The teacher's parameters in parameterSet layout. */
  readonly teacher: Float32Array
  readonly weights: SharedArrayBuffer
  readonly gradients: SharedArrayBuffer
  /** Every sequence back to back, and offsets (length + 1). */
  readonly tokens: Int32Array
  readonly offsets: Int32Array
  readonly maxPositions: number
  readonly distillWeight: number
  readonly balanceWeight: number
}

/** A shard's work for one step, and its answer. */
export interface ShardJob { readonly sequences: readonly number[]; readonly scale: number }
export interface ShardReply { readonly ce: number; readonly objective: number; readonly positions: number }

export async function trainStudent(options: StudentOptions): Promise<StudentResult> {
  const { config: c, teacher, sequences, signal } = options
  const arch = c.architecture
  checkConfig(c, teacher.architecture, sequences)
  const { length } = parameterSet(arch, null)
  const weightBuffer = new SharedArrayBuffer(length * 4)
  const { params } = parameterSet(arch, weightBuffer)
  initialize(arch, params, c.seed)

  // the teacher in the same layout, copied once into each worker
  const teacherFlat = new Float32Array(parameterSet(teacher.architecture, null).length)
  copyWeights(teacher, parameterSet(teacher.architecture, teacherFlat.buffer).params)

  const offsets = new Int32Array(sequences.length + 1)
  sequences.forEach((s, i) => (offsets[i + 1] = (offsets[i] as number) + s.length))
  const tokens = new Int32Array(offsets[sequences.length] as number)
  sequences.forEach((s, i) => tokens.set(s, offsets[i] as number))
  const maxPositions = Math.max(...sequences.map((s) => s.length - 1))

  const shards = Array.from({ length: c.shards }, () => {
    const gradients = new SharedArrayBuffer(length * 4)
    const data: ShardData = {
      architecture: arch, teacherArchitecture: teacher.architecture, teacher: teacherFlat, weights: weightBuffer, gradients,
      tokens, offsets, maxPositions, distillWeight: c.distillWeight, balanceWeight: c.balanceWeight
    }
    return { worker: startTsWorker(new URL('./student-shard.ts', import.meta.url), data), grads: parameterSet(arch, gradients).params }
  })
  const total = new Gradients(arch)
  const opt = new AdamW(params.tensors(), { lr: c.learningRate, weightDecay: c.weightDecay })
  const draw = sequenceDraw(sequences.length, c.seed + 1)
  const history: StepRecord[] = []
  try {
    let started = performance.now()
    let tokensSince = 0
    for (let step = 0; step < c.steps; step++) {
      signal?.throwIfAborted()
      const batch = Array.from({ length: c.batchSize }, draw)
      const positions = batch.reduce((sum, i) => sum + (sequences[i] as Int32Array).length - 1, 0)
      const replies = await Promise.all(shards.map((shard, w) => ask(shard.worker, { sequences: batch.filter((_, i) => i % c.shards === w), scale: 1 / positions })))
      // gradients of the batch mean, added in shard order
      const sums = total.tensors()
      sums.forEach((t, k) => {
        t.set(shards[0]?.grads.tensors()[k] as Float32Array)
        for (let w = 1; w < shards.length; w++) {
          const g = shards[w]?.grads.tensors()[k] as Float32Array
          for (let i = 0; i < t.length; i++) t[i] = (t[i] as number) + (g[i] as number)
        }
      })
      let sq = 0
      for (const t of sums) for (let i = 0; i < t.length; i++) sq += (t[i] as number) * (t[i] as number)
      const gradNorm = Math.sqrt(sq)
      if (gradNorm > c.clipNorm) {
        const k = c.clipNorm / gradNorm
        for (const t of sums) for (let i = 0; i < t.length; i++) t[i] = (t[i] as number) * k
      }
      const lr = learningRateAt(c, step)
      opt.step(sums, lr)
      const record: StepRecord = {
        step,
        learningRate: lr,
        ce: replies.reduce((s, r) => s + r.ce, 0) / positions,
        objective: replies.reduce((s, r) => s + r.objective, 0) / positions,
        gradNorm
      }
      history.push(record)
      tokensSince += positions
      const elapsed = (performance.now() - started) / 1000
      options.onStep?.(record, tokensSince / Math.max(elapsed, 1e-3))
      if (elapsed > 30) {
        started = performance.now()
        tokensSince = 0
      }
    }
  } finally {
    await Promise.all(shards.map((s) => s.worker.terminate()))
  }
  // the result: plain (unshared) copies
  const out = new Gradients(arch)
  out.tensors().forEach((t, k) => t.set(params.tensors()[k] as Float32Array))
  return { model: Object.freeze({ architecture: arch, weights: weightsOf(out) }), history }
}

/** Copy a FloatModel's weights into a parameter set of the same architecture. */
export function copyWeights(from: FloatModel, to: Gradients): void {
  const w = from.weights
  const E = to.embedding
  if (E === null || to.layers === null) throw new Error('copyWeights: expected a full parameter set')
  E.tokEmbeddings.set(w.embedding.tokEmbeddings)
  E.norm.set(w.embedding.norm)
  if (E.output !== null && w.embedding.output !== null) E.output.set(w.embedding.output)
  to.layers.forEach((L, l) => {
    const F = w.layers[l]
    if (F === undefined) throw new RangeError(`copyWeights: no layer ${l}`)
    for (const key of ['attentionNorm', 'wq', 'wk', 'wv', 'wo', 'bq', 'bk', 'bv', 'qNorm', 'kNorm', 'ffnNorm', 'gate', 'sharedGate'] as const) {
      const dst = L[key]
      const val = F[key]
      if (dst !== null && val !== null) dst.set(val)
    }
    if (L.shared !== null && F.shared !== null) for (const k of ['w1', 'w2', 'w3'] as const) L.shared[k].set(F.shared[k])
    to.experts[l]?.forEach((e, x) => {
      const fe = w.expert(l, x)
      if (e === null || fe === undefined) throw new RangeError(`copyWeights: expert ${x} of layer ${l} is missing`)
      for (const k of ['w1', 'w2', 'w3'] as const) e[k].set(fe[k])
    })
  })
}

function checkConfig(c: StudentConfig, teacher: Architecture, sequences: readonly Int32Array[]): void {
  const positive = (v: number, name: string): void => {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`config.${name}: expected a positive integer, got ${v}`)
  }
  positive(c.steps, 'steps')
  positive(c.batchSize, 'batchSize')
  positive(c.shards, 'shards')
  if (c.warmupSteps < 0 || !Number.isSafeInteger(c.warmupSteps)) throw new RangeError(`config.warmupSteps: expected an integer >= 0, got ${c.warmupSteps}`)
  if (!(c.learningRate > 0) || !(c.minLearningRate >= 0) || c.minLearningRate > c.learningRate) throw new RangeError('config: learning rates must satisfy 0 <= minLearningRate <= learningRate, learningRate > 0')
  if (c.architecture.vocab_size !== teacher.vocab_size) throw new RangeError(`config.architecture.vocab_size ${c.architecture.vocab_size} differs from the teacher's ${teacher.vocab_size}: distillation needs one vocabulary`)
  if (sequences.length === 0) throw new RangeError('sequences: expected at least one')
  const limit = Math.min(c.architecture.max_seq_len, teacher.max_seq_len) + 1
  sequences.forEach((s, i) => {
    if (s.length < 2 || s.length > limit) throw new RangeError(`sequences[${i}]: expected 2..${limit} tokens, got ${s.length}`)
  })
}

function ask(worker: Worker, job: ShardJob): Promise<ShardReply> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: ShardReply | { error: string }): void => {
      cleanup()
      if ('error' in m) reject(new Error(`genesis shard: ${m.error}`))
      else resolve(m)
    }
    const onError = (e: Error): void => {
      cleanup()
      reject(e)
    }
    const cleanup = (): void => {
      worker.off('message', onMessage)
      worker.off('error', onError)
    }
    worker.on('message', onMessage)
    worker.on('error', onError)
    worker.postMessage(job)
  })
}
