/**
 * WebGPU training (src/train/webgpu-trainer.ts) against the CPU reference on tiny random models of
 * every architecture variant (router_weighting softmax / softmax_topk / unit, shared expert
 * absent / ungated / gated, qk_norm, q/k/v biases, MHA and GQA, tied and untied classifier,
 * frozen matrices fp32 / int8 / mixed int8-fp16-fp32):
 * - the target expert's gradient of a batch's mean loss, for every (layer, expert) of every
 *   variant, against backward.ts in one-expert mode;
 * - trainExpertWebGpu against trainExpert: same batches, losses, weights;
 * - determinism, cancellation, argument checks.
 *
 * Gradient error: per tensor (w1, w2, w3), max |g_gpu − g_cpu| / max |g_cpu| ≤ 1e-3 (the task's
 * bound; measured around 1e-6: float32 kernels against float64 sums). An expert no token was routed
 * to has an exactly zero gradient on both.
 *
 * Training: each step's loss within 1e-3 relative. Weights: AdamW moves an entry by about lr per
 * step whatever the gradient's size (m̂ / sqrt(v̂) ≈ ±1), so a gradient error δ moves it by about
 * lr δ / |g|: with δ ~ 1e-6 of the largest entry, entries agree to well under 1e-2 lr per step
 * unless their gradient is within ~1e-4 of zero relative to the largest, where a sign can differ
 * (up to 2 lr per step). Accept rms |Δw| ≤ 1e-3 · lr · steps and max |Δw| ≤ 0.05 · lr · steps (a
 * wrong learning rate, decay, bias correction or batch is off by ≥ 0.1 lr per step on most
 * entries; measured max about 1e-5 lr · steps), and the loss of the trained model on the training
 * sequences (evaluateLoss, the validators' measure) within 1e-5 relative.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Architecture } from '../../src/chain/meta.ts'
import { WebGpuTrainer, trainExpertWebGpu } from '../../src/train/webgpu-trainer.ts'
import { BackwardState, Gradients, backward } from '../../src/train/backward.ts'
import type { ExpertRef } from '../../src/model/forward.ts'
import { evaluateLoss, trainExpert, type FloatModel } from '../../src/train/train.ts'
import { TrainState, trainForward } from '../../src/train/train-forward.ts'
import type { ExpertWeights } from '../../src/model/weights.ts'
import { GPU_TRAIN_VARIANTS, cpuModel, maxRelative, randomTokens, trainBlocks, type TrainVariant } from '../gpu/_train.ts'
import { NO_GPU, testGpu } from '../gpu/_setup.ts'

const gpu = await testGpu()
const FEATURES: ReadonlySet<string> = gpu?.wgslLanguageFeatures ?? new Set()
const GRAD_TOLERANCE = 1e-3
const KEYS = ['w1', 'w2', 'w3'] as const

function bitsEqual(a: Float32Array | Float64Array, b: Float32Array | Float64Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

/** CPU: the target's gradient of the batch's mean loss (backward.ts, one-expert mode) and the loss sum. */
function cpuGradients(model: FloatModel, target: ExpertRef, batch: readonly number[][]): { grad: ExpertWeights; lossSum: number } {
  const arch = model.architecture
  const longest = Math.max(...batch.map((s) => s.length)) - 1
  const positions = batch.reduce((n, s) => n + s.length - 1, 0)
  const s = new TrainState(arch, longest)
  const b = new BackwardState(arch, longest)
  const g = new Gradients(arch, target)
  let lossSum = 0
  for (const tokens of batch) {
    trainForward(arch, model.weights, s, tokens)
    lossSum += s.lossSum
    backward(arch, model.weights, s, b, tokens, g, 1 / positions)
  }
  return { grad: g.experts[target.layer]?.[target.expert] as ExpertWeights, lossSum }
}

/** Weights after training: rms and max |gpu − cpu| in units of lr · steps. */
function weightDiff(a: Float32Array, b: Float32Array, unit: number): { rms: number; max: number } {
  let ss = 0
  let max = 0
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number))
    ss += d * d
    max = Math.max(max, d)
  }
  return { rms: Math.sqrt(ss / a.length) / unit, max: max / unit }
}

function withExpert(model: FloatModel, target: ExpertRef, expert: ExpertWeights): FloatModel {
  const w = model.weights
  return { architecture: model.architecture, weights: { ...w, expert: (l, e) => (l === target.layer && e === target.expert ? expert : w.expert(l, e)) } }
}

function setup(v: number, variant: TrainVariant): { arch: Architecture; blocks: ReturnType<typeof trainBlocks>; model: FloatModel } {
  const blocks = trainBlocks(variant.arch, 100 + v, variant.matrices)
  return { arch: variant.arch, blocks, model: cpuModel(variant.arch, blocks) }
}

describe('WebGPU training: target-expert gradients against backward.ts (one-expert mode)', { skip: gpu === null ? NO_GPU : false }, () => {
  for (const [v, variant] of GPU_TRAIN_VARIANTS.entries()) {
    test(`${variant.name}: every (layer, expert) as the target`, async () => {
      const device = (gpu as { device: GPUDevice }).device
      const { arch, blocks, model } = setup(v, variant)
      const batch = [randomTokens(arch, 10, 200 + v), randomTokens(arch, 7, 300 + v)]
      let worst = 0
      let zero = 0
      for (let layer = 0; layer < arch.n_layers; layer++) {
        for (let expert = 0; expert < arch.n_experts; expert++) {
          const target = { layer, expert }
          const cpu = cpuGradients(model, target, batch)
          const trainer = await WebGpuTrainer.create(device, { architecture: arch, blocks }, { target, maxPositions: 9, maxBatch: 2, wgslLanguageFeatures: FEATURES })
          try {
            const r = await trainer.gradients(batch)
            assert.equal(r.positions, 15)
            assert.ok(Math.abs(r.lossSum - cpu.lossSum) <= 1e-5 * cpu.lossSum, `loss sum ${r.lossSum} vs ${cpu.lossSum}`)
            for (const key of KEYS) {
              if (cpu.grad[key].every((x) => x === 0)) {
                assert.ok(r.expert[key].every((x) => x === 0), `layer ${layer} expert ${expert} ${key}: no routed token, yet a nonzero gradient`)
                zero++
                continue
              }
              const rel = maxRelative(r.expert[key], cpu.grad[key])
              assert.ok(rel <= GRAD_TOLERANCE, `layer ${layer} expert ${expert} ${key}: relative error ${rel.toExponential(2)}`)
              worst = Math.max(worst, rel)
            }
          } finally {
            trainer.destroy()
          }
        }
      }
      console.log(`${variant.name}: ${arch.n_layers * arch.n_experts} targets, worst max|g_gpu − g_cpu| / max|g_cpu| = ${worst.toExponential(2)} (tolerance ${GRAD_TOLERANCE})${zero > 0 ? `, ${zero / 3} unrouted expert(s) exactly zero` : ''}`)
    })
  }
})

describe('trainExpertWebGpu against trainExpert', { skip: gpu === null ? NO_GPU : false }, () => {
  const LR = 0.01
  const STEPS = 4
  for (const [v, variant] of GPU_TRAIN_VARIANTS.entries()) {
    test(`${variant.name}: ${STEPS} steps of 2 sequences, the same batches, losses and weights`, async () => {
      const device = (gpu as { device: GPUDevice }).device
      const { arch, blocks, model } = setup(v, variant)
      const sequences = Array.from({ length: 5 }, (_, i) => randomTokens(arch, 6 + i, 900 + 10 * v + i))
      const target = { layer: 0, expert: 1 }
      const options = { target, sequences, steps: STEPS, batchSize: 2, learningRate: LR, seed: 3 + v }
      const cpu = await trainExpert(model, options)
      const seen: number[] = []
      const r = await trainExpertWebGpu(device, { architecture: arch, blocks }, { ...options, wgslLanguageFeatures: FEATURES, onStep: (i) => void seen.push(i) })
      assert.deepEqual(seen, [0, 1, 2, 3])
      assert.equal(r.losses.length, STEPS)
      let lossErr = 0
      r.losses.forEach((loss, i) => {
        const rel = Math.abs(loss - (cpu.losses[i] as number)) / (cpu.losses[i] as number)
        assert.ok(rel <= 1e-3, `step ${i}: loss ${loss} vs ${cpu.losses[i]}`)
        lossErr = Math.max(lossErr, rel)
      })
      const diffs = KEYS.map((k) => weightDiff(r.expert[k], cpu.expert[k], LR * STEPS))
      for (const [i, d] of diffs.entries()) {
        assert.ok(d.rms <= 1e-3 && d.max <= 0.05, `${KEYS[i]}: rms ${d.rms.toExponential(2)}, max ${d.max.toExponential(2)} (units of lr · steps)`)
      }
      const base = model.weights.expert(0, 1) as ExpertWeights
      assert.ok(!bitsEqual(r.expert.w1, base.w1), 'w1 was trained')
      const evalGpu = await evaluateLoss(withExpert(model, target, r.expert), sequences)
      const evalCpu = await evaluateLoss(withExpert(model, target, cpu.expert), sequences)
      assert.ok(Math.abs(evalGpu - evalCpu) <= 1e-5 * evalCpu, `evaluateLoss ${evalGpu} vs ${evalCpu}`)
      console.log(`${variant.name}: losses max rel ${lossErr.toExponential(2)}; weights |Δ| rms ${Math.max(...diffs.map((d) => d.rms)).toExponential(2)}, max ${Math.max(...diffs.map((d) => d.max)).toExponential(2)} lr·steps; evaluateLoss ${evalGpu.toFixed(6)} vs ${evalCpu.toFixed(6)}`)
    })
  }

  test('FloatModel input, bit-identical reruns, the caller\'s weights untouched, another seed another order', async () => {
    const device = (gpu as { device: GPUDevice }).device
    const { arch, model } = setup(1, GPU_TRAIN_VARIANTS[1] as TrainVariant)
    const sequences = Array.from({ length: 4 }, (_, i) => randomTokens(arch, 9, 700 + i))
    const before = (model.weights.expert(1, 2) as ExpertWeights).w2.slice()
    const options = { target: { layer: 1, expert: 2 }, sequences, steps: 3, batchSize: 1, learningRate: 0.02, seed: 9 }
    const a = await trainExpertWebGpu(device, model, options)
    const b = await trainExpertWebGpu(device, model, options)
    for (const k of KEYS) assert.ok(bitsEqual(a.expert[k], b.expert[k]), `${k}: reruns differ`)
    assert.ok(bitsEqual(a.losses, b.losses))
    assert.ok(bitsEqual((model.weights.expert(1, 2) as ExpertWeights).w2, before), 'the model was not written')
    const cpu = await trainExpert(model, options)
    a.losses.forEach((loss, i) => assert.ok(Math.abs(loss - (cpu.losses[i] as number)) <= 1e-3 * (cpu.losses[i] as number)))
    const c = await trainExpertWebGpu(device, model, { ...options, seed: 10 })
    assert.ok(!bitsEqual(a.losses, c.losses), 'seed 10 draws another order')
  })

  test('an AbortSignal stops training between steps; bad arguments are refused by name', async () => {
    const device = (gpu as { device: GPUDevice }).device
    const { arch, blocks, model } = setup(0, GPU_TRAIN_VARIANTS[0] as TrainVariant)
    const m = { architecture: arch, blocks }
    const sequences = Array.from({ length: 3 }, (_, i) => randomTokens(arch, 6, 800 + i))
    const controller = new AbortController()
    const seen: number[] = []
    await assert.rejects(
      trainExpertWebGpu(device, m, { target: { layer: 0, expert: 0 }, sequences, steps: 10, signal: controller.signal, onStep: (i) => (seen.push(i), i === 2 && controller.abort()) }),
      (e: unknown) => e instanceof Error && e.name === 'AbortError'
    )
    assert.deepEqual(seen, [0, 1, 2])
    await assert.rejects(trainExpertWebGpu(device, m, { target: { layer: 0, expert: 0 }, sequences, steps: 1, signal: AbortSignal.abort() }), (e: unknown) => e instanceof Error && e.name === 'AbortError')
    const refused = async (p: Promise<unknown>, re: RegExp): Promise<void> => assert.rejects(p, (e: unknown) => e instanceof RangeError && re.test(e.message))
    await refused(trainExpertWebGpu(device, model, { target: { layer: 2, expert: 0 }, sequences, steps: 1 }), /^target\.layer:/)
    await refused(trainExpertWebGpu(device, m, { target: { layer: 0, expert: 3 }, sequences, steps: 1 }), /^target\.expert:/)
    await refused(trainExpertWebGpu(device, m, { target: { layer: 0, expert: 0 }, sequences: [[1]], steps: 1 }), /^sequences\[0\]/)
    await refused(trainExpertWebGpu(device, m, { target: { layer: 0, expert: 0 }, sequences: [[1, 99]], steps: 1 }), /^sequences\[0\]\[1\]: token 99/)
    await refused(trainExpertWebGpu(device, m, { target: { layer: 0, expert: 0 }, sequences, steps: -1 }), /^steps:/)
    await refused(trainExpertWebGpu(device, m, { target: { layer: 0, expert: 0 }, sequences, steps: 1, learningRate: 0 }), /^lr:/)
    const trainer = await WebGpuTrainer.create(device, m, { target: { layer: 1, expert: 0 }, maxPositions: 5, maxBatch: 1 })
    await refused(trainer.step([sequences[0] as number[], sequences[1] as number[]]), /^batch: expected 1\.\.1 sequences/)
    await refused(trainer.step([[1, 2, 3, 4, 5, 6, 7]]), /^batch\[0\]: expected 2\.\.6 tokens/)
    trainer.destroy()
    await assert.rejects(trainer.step([[1, 2]]), /destroyed/)
  })
})
