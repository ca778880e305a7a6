/**
 * Proof-of-Learning on the CPU reference: train one expert with everything else frozen, and the
 * validators' loss.
 *
 * ```ts
 * const model = floatModel(arch, blocks)                    // block name -> tensor name -> float32
 * const before = await evaluateLoss(model, validation)      // mean nats/token, bit-reproducible
 * const { expert, losses } = await trainExpert(model, { target: { layer: 2, expert: 1 }, sequences, steps: 50, learningRate: 1e-3, seed: 7 })
 * ```
 *
 * Training: each step takes the next `batchSize` sequences of a seeded shuffle (reshuffled every
 * pass over the data), runs the training forward and the target-only backward on each, and takes
 * one AdamW step on the target expert's w1, w2, w3 from the gradient of the batch's mean loss
 * (mean over every predicted token of the batch). The loss history holds each step's batch loss,
 * measured before that step's update. The caller's weights are never written: the target expert is
 * copied first. Everything is allocated before the step loop.
 *
 * Evaluation: sequences in the order given, each position's cross-entropy summed in float64 in
 * position order, divided by the number of predicted tokens. It is the training forward in float32
 * storage, which computes exactly forward.ts's logits, so any machine running this code gets the
 * same bits.
 *
 * Both are async only so an AbortSignal can land between steps (they yield to the event loop every
 * few tens of milliseconds); the work itself is synchronous and single-threaded.
 *
 * @module
 */
import { aint } from '../assert.ts'
import { EMBEDDING_NAME, expertName, routerName } from '../chain/header.ts'
import type { Architecture } from '../chain/meta.ts'
import { AdamW, type AdamWOptions } from './adamw.ts'
import { sequenceDraw } from '../model/random.ts'
import { BackwardState, Gradients, backward } from './backward.ts'
import type { ExpertRef, ReferenceWeights } from '../model/forward.ts'
import { TrainState, checkTokens, trainForward } from './train-forward.ts'
import { embeddingWeights, expertWeights, layerWeights, type ExpertWeights } from '../model/weights.ts'

/** A model in float32, every expert present. */
export interface FloatModel {
  readonly architecture: Architecture
  readonly weights: ReferenceWeights
}

export interface TrainOptions {
  /** The expert to train; everything else stays frozen. */
  readonly target: ExpertRef
  /** Token sequences of 2..max_seq_len + 1 tokens each: position p predicts token p + 1. */
  readonly sequences: readonly ArrayLike<number>[]
  /** AdamW steps. */
  readonly steps: number
  /** Sequences per step. @default 1 */
  readonly batchSize?: number
  /** @default 1e-3 */
  readonly learningRate?: number
  /** Seed of the order sequences are drawn in. @default 0 */
  readonly seed?: number
  /** AdamW's other settings (adamw.ts defaults: β1 0.9, β2 0.999, eps 1e-8, weight decay 0.01). */
  readonly adamw?: Omit<AdamWOptions, 'lr'>
  readonly signal?: AbortSignal
  /**
   * Called after each step with its index (from 0), its batch loss, and the trained weights after
   * its update when the trainer holds them in memory (the CPU reference does; read them, do not keep them).
   */
  readonly onStep?: (step: number, loss: number, expert?: ExpertWeights) => void
}

export interface TrainResult {
  /** The trained expert (new arrays). */
  readonly expert: ExpertWeights
  /** (steps) the batch loss of each step, before its update. */
  readonly losses: Float64Array
}

export interface EvaluateOptions {
  readonly signal?: AbortSignal
}

/** Block name -> tensor name -> float32 values (e.g. dequantizeAll of each chain B block) as a FloatModel. */
export function floatModel(architecture: Architecture, blocks: ReadonlyMap<string, Map<string, Float32Array>>): FloatModel {
  const block = (name: string): Map<string, Float32Array> => {
    const b = blocks.get(name)
    if (b === undefined) throw new RangeError(`blocks: no ${name}`)
    return b
  }
  const embedding = embeddingWeights(block(EMBEDDING_NAME))
  const layers = Array.from({ length: architecture.n_layers }, (_, l) => layerWeights(block(routerName(l))))
  const experts = Array.from({ length: architecture.n_layers }, (_, l) => Array.from({ length: architecture.n_experts }, (_, e) => expertWeights(block(expertName(l, e)))))
  return Object.freeze({ architecture, weights: { embedding, layers, expert: (l: number, e: number) => experts[l]?.[e] } })
}

/** Mean cross-entropy (nats per predicted token) of `sequences` under `model`: deterministic, bit-reproducible. */
export async function evaluateLoss(model: FloatModel, sequences: readonly ArrayLike<number>[], options: EvaluateOptions = {}): Promise<number> {
  const arch = model.architecture
  options.signal?.throwIfAborted()
  const longest = checkSequences(arch, sequences)
  const s = new TrainState(arch, longest - 1, 'f32')
  let total = 0
  let count = 0
  let lastYield = performance.now()
  for (const tokens of sequences) {
    trainForward(arch, model.weights, s, tokens)
    for (let p = 0; p < s.positions; p++) total += s.losses[p] as number
    count += s.positions
    lastYield = await breathe(lastYield, options.signal)
  }
  return total / count
}

/**
 * evaluateLoss of `base` and of `candidate` on the same sequences, where the two models differ only
 * in layer `fromLayer` and above (a new version of an expert of that layer): each sequence's layers
 * below it run once. Bit-identical to two evaluateLoss calls; what a PoL validator runs.
 */
export async function evaluatePair(base: FloatModel, candidate: FloatModel, fromLayer: number, sequences: readonly ArrayLike<number>[], options: EvaluateOptions = {}): Promise<{ lossBefore: number; lossAfter: number }> {
  const arch = base.architecture
  options.signal?.throwIfAborted()
  const longest = checkSequences(arch, sequences)
  const s = new TrainState(arch, longest - 1, 'f32')
  let before = 0
  let after = 0
  let count = 0
  let lastYield = performance.now()
  for (const tokens of sequences) {
    trainForward(arch, base.weights, s, tokens)
    for (let p = 0; p < s.positions; p++) before += s.losses[p] as number
    trainForward(arch, candidate.weights, s, tokens, fromLayer)
    for (let p = 0; p < s.positions; p++) after += s.losses[p] as number
    count += s.positions
    lastYield = await breathe(lastYield, options.signal)
  }
  return { lossBefore: before / count, lossAfter: after / count }
}

/** Train `options.target` on `options.sequences` (module doc); returns the trained expert and the loss history. */
export async function trainExpert(model: FloatModel, options: TrainOptions): Promise<TrainResult> {
  const arch = model.architecture
  const { target, sequences, steps, signal, onStep } = options
  const batchSize = options.batchSize ?? 1
  const seed = options.seed ?? 0
  aint(steps, 'steps', 0)
  aint(batchSize, 'batchSize', 1)
  aint(seed, 'seed', 0, 2 ** 32 - 1)
  signal?.throwIfAborted()
  const longest = checkSequences(arch, sequences)
  const g = new Gradients(arch, target) // checks target
  const base = model.weights.expert(target.layer, target.expert)
  if (base === undefined) throw new RangeError(`model: expert ${target.expert} of layer ${target.layer} is not loaded`)

  // the trained copy, seen by the forward in place of the original
  const trained: ExpertWeights = { w1: base.w1.slice(), w2: base.w2.slice(), w3: base.w3.slice() }
  const weights: ReferenceWeights = {
    embedding: model.weights.embedding,
    layers: model.weights.layers,
    expert: (l, e) => (l === target.layer && e === target.expert ? trained : model.weights.expert(l, e))
  }
  const grad = g.experts[target.layer]?.[target.expert] as ExpertWeights
  const grads = [grad.w1, grad.w2, grad.w3]
  const opt = new AdamW([trained.w1, trained.w2, trained.w3], { ...options.adamw, lr: options.learningRate ?? 1e-3 })
  const s = new TrainState(arch, longest - 1, 'f32')
  const b = new BackwardState(arch, longest - 1)
  const batch = new Int32Array(batchSize)
  const losses = new Float64Array(steps)
  const draw = sequenceDraw(sequences.length, seed)
  let lastYield = performance.now()

  for (let step = 0; step < steps; step++) {
    // the batch: the next sequences of the shuffled order
    let positions = 0
    for (let i = 0; i < batchSize; i++) {
      const at = draw()
      batch[i] = at
      positions += (sequences[at] as ArrayLike<number>).length - 1
    }
    // forward and target-only backward of each sequence, gradient of the batch mean
    g.zero()
    let lossSum = 0
    for (let i = 0; i < batchSize; i++) {
      const tokens = sequences[batch[i] as number] as ArrayLike<number>
      trainForward(arch, weights, s, tokens)
      lossSum += s.lossSum
      backward(arch, weights, s, b, tokens, g, 1 / positions)
    }
    opt.step(grads)
    const loss = lossSum / positions
    losses[step] = loss
    onStep?.(step, loss, trained)
    lastYield = await breathe(lastYield, signal)
  }
  return { expert: trained, losses }
}

// ---------------------------------------------------------------------------------------------
// Utilities

/** Checks every sequence; returns the longest length. */
function checkSequences(arch: Architecture, sequences: readonly ArrayLike<number>[]): number {
  if (!Array.isArray(sequences) || sequences.length === 0) throw new RangeError('sequences: expected a non-empty array of token sequences')
  let longest = 0
  sequences.forEach((tokens, i) => {
    checkTokens(arch, tokens, arch.max_seq_len, `sequences[${i}]`)
    longest = Math.max(longest, tokens.length)
  })
  return longest
}

/** Yield to the event loop when 20 ms have passed since the last time (so an abort can land); then check the signal. */
async function breathe(last: number, signal: AbortSignal | undefined): Promise<number> {
  if (performance.now() - last < 20) {
    signal?.throwIfAborted()
    return last
  }
  await new Promise((resolve) => setTimeout(resolve, 0))
  signal?.throwIfAborted()
  return performance.now()
}
