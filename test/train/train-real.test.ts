/**
 * The CPU training reference on the real stories260K, cut into 4 experts per layer with top-2
 * routing (the `routed` devnet's model): the training forward equals forward.ts, target-expert
 * gradients equal the full gradients' slice, a few dozen AdamW steps on one expert lower the loss
 * on held-out text, and evaluateLoss is bit-reproducible. Step timings are reported as diagnostics
 * (no thresholds). Skipped without ../shared/data.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { BackwardState, Gradients, backward } from '../../src/train/backward.ts'
import { RunState, forward, ropeTable } from '../../src/model/forward.ts'
import { evaluateLoss, trainExpert, type FloatModel } from '../../src/train/train.ts'
import { TrainState, trainForward } from '../../src/train/train-forward.ts'
import type { ExpertWeights } from '../../src/model/weights.ts'
import { routedStories } from '../fixtures/routed-stories.ts'
import { SHARED_DATA_MISSING } from '../fixtures/shared-data.ts'

const SEQ_LEN = 64 // predicted tokens per window
const TARGET = { layer: 2, expert: 0 }

interface Real {
  readonly model: FloatModel
  readonly train: number[][]
  readonly validation: number[][]
}

let real: Real | null | undefined

/** The model (float32, 4 experts, top 2) and windows of seqLen + 1 tokens from the train and validation slices. */
function loadReal(): Real | null {
  if (real !== undefined) return real
  const stories = routedStories()
  if (stories === null) return (real = null)
  real = { model: stories.model, train: stories.windows('tinystories_train_slice.txt', 120, SEQ_LEN), validation: stories.windows('tinystories_val_slice.txt', 16, SEQ_LEN) }
  return real
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

describe('training on the real stories260K (4 experts per layer, top 2)', () => {
  test('the training forward gives forward.ts\'s logits at every position of a held-out window, bit for bit', (t) => {
    const r = loadReal()
    if (r === null) return t.skip(SHARED_DATA_MISSING)
    const arch = r.model.architecture
    const tokens = r.validation[0] as number[]
    assert.equal(tokens.length, SEQ_LEN + 1)
    const s = new TrainState(arch, SEQ_LEN)
    trainForward(arch, r.model.weights, s, tokens)
    const rs = new RunState(arch)
    const table = ropeTable(arch)
    for (let p = 0; p < SEQ_LEN; p++) {
      const out = forward(arch, r.model.weights, rs, table, tokens[p] as number, p)
      assert.ok('logits' in out)
      const row = s.logits.subarray(p * arch.vocab_size, (p + 1) * arch.vocab_size) as Float32Array
      let worst = 0
      for (let i = 0; i < arch.vocab_size; i++) worst = Math.max(worst, Math.abs((row[i] as number) - (out.logits[i] as number)))
      assert.ok(worst <= 1e-5, `position ${p}: logits differ by ${worst}`)
      assert.ok(bitsEqual(row, out.logits), `position ${p}: logits differ in some bit`)
    }
  })

  test('target-expert gradients equal the full gradients\' slice; one step\'s cost of each (diagnostic)', (t) => {
    const r = loadReal()
    if (r === null) return t.skip(SHARED_DATA_MISSING)
    const arch = r.model.architecture
    const w = r.model.weights
    const batch = r.train.slice(0, 4)
    const s = new TrainState(arch, SEQ_LEN)
    const b = new BackwardState(arch, SEQ_LEN)
    const step = (g: Gradients): number => {
      const started = performance.now()
      g.zero()
      for (const tokens of batch) {
        trainForward(arch, w, s, tokens)
        backward(arch, w, s, b, tokens, g, 1 / (batch.length * SEQ_LEN))
      }
      return performance.now() - started
    }
    const full = new Gradients(arch)
    const targets = [TARGET, { layer: 0, expert: 1 }, { layer: 4, expert: 3 }].map((target) => new Gradients(arch, target))
    step(full) // warm up
    const fullMs = Math.min(step(full), step(full))
    const targetMs = targets.map((g) => Math.min(step(g), step(g)))
    targets.forEach((g) => {
      const { layer, expert } = g.target as { layer: number; expert: number }
      const mine = g.experts[layer]?.[expert] as ExpertWeights
      const slice = full.experts[layer]?.[expert] as ExpertWeights
      for (const k of ['w1', 'w2', 'w3'] as const) assert.ok(bitsEqual(mine[k], slice[k]), `layer ${layer} expert ${expert} ${k}`)
      assert.ok(mine.w2.some((x) => x !== 0), `layer ${layer} expert ${expert}: some token of the batch was routed to it`)
    })
    t.diagnostic(`one step (forward + backward of 4 × ${SEQ_LEN} tokens): full gradients ${fullMs.toFixed(0)} ms; target expert only: layer 2 ${targetMs[0]?.toFixed(0)} ms, layer 0 ${targetMs[1]?.toFixed(0)} ms, layer 4 ${targetMs[2]?.toFixed(0)} ms`)
  })

  test(`30 steps of AdamW on layer ${TARGET.layer} expert ${TARGET.expert} lower the held-out loss; evaluateLoss is bit-reproducible`, async (t) => {
    const r = loadReal()
    if (r === null) return t.skip(SHARED_DATA_MISSING)
    const before = await evaluateLoss(r.model, r.validation)
    assert.ok(Object.is(await evaluateLoss(r.model, r.validation), before), 'evaluateLoss twice: the same bits')
    const started = performance.now()
    const result = await trainExpert(r.model, { target: TARGET, sequences: r.train, steps: 30, batchSize: 4, learningRate: 1e-3, seed: 1 })
    const ms = performance.now() - started
    const weights = r.model.weights
    const trained: FloatModel = {
      architecture: r.model.architecture,
      weights: { ...weights, expert: (l, e) => (l === TARGET.layer && e === TARGET.expert ? result.expert : weights.expert(l, e)) }
    }
    const after = await evaluateLoss(trained, r.validation)
    assert.ok(Object.is(await evaluateLoss(trained, r.validation), after), 'evaluateLoss twice after training: the same bits')
    const first = result.losses.slice(0, 5).reduce((a, b) => a + b) / 5
    const last = result.losses.slice(-5).reduce((a, b) => a + b) / 5
    t.diagnostic(`held-out loss ${before.toFixed(4)} -> ${after.toFixed(4)} nats/token; training batch loss (mean of 5) ${first.toFixed(3)} -> ${last.toFixed(3)}; ${(ms / 30).toFixed(0)} ms per step`)
    assert.ok(result.losses.every(Number.isFinite))
    assert.ok(last < first, `training loss ${first} -> ${last}`)
    // a 1% improvement is PoL's order of delta; this training gives several percent
    assert.ok(after < before * 0.99, `held-out loss ${before} -> ${after}`)
  })
})
