/**
 * WebGPU training on the real stories260K, cut into 4 experts per layer with top-2 routing (as
 * test/train/train-real.test.ts cuts it), against the CPU reference: target-expert gradients of a
 * batch of two 64-token windows for experts low, middle and high in the stack, with float32 and
 * with int8 frozen weights (the CPU reads the same int8 values dequantised), and three training
 * steps (losses, weights, held-out loss). Tolerances and their reasons: test/train/webgpu-trainer.test.ts.
 * Skipped without ../shared/data or without a WebGPU adapter.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { BlockTensors } from '../../src/engine/interface.ts'
import { WebGpuTrainer, trainExpertWebGpu, type BlockModel } from '../../src/train/webgpu-trainer.ts'
import { BackwardState, Gradients, backward } from '../../src/train/backward.ts'
import type { ExpertRef } from '../../src/model/forward.ts'
import { evaluateLoss, trainExpert, type FloatModel } from '../../src/train/train.ts'
import { TrainState, trainForward } from '../../src/train/train-forward.ts'
import { readBlockTensors, type ExpertWeights } from '../../src/model/weights.ts'
import { buildPayload } from '../../src/tensor/payload.ts'
import { routedStories } from '../fixtures/routed-stories.ts'
import { SHARED_DATA_MISSING } from '../fixtures/shared-data.ts'
import { cpuModel, maxRelative } from '../gpu/_train.ts'
import { NO_GPU, testGpu } from '../gpu/_setup.ts'

const gpu = await testGpu()
const FEATURES: ReadonlySet<string> = gpu?.wgslLanguageFeatures ?? new Set()
const SEQ_LEN = 64
const KEYS = ['w1', 'w2', 'w3'] as const

interface Real {
  readonly f32: FloatModel
  /** Every matrix int8 (per-row scales), vectors fp32: as an int8 chain model is stored. */
  readonly int8: BlockModel
  /** int8's values dequantised, for the CPU. */
  readonly int8Cpu: FloatModel
  readonly train: number[][]
  readonly validation: number[][]
}

let real: Real | null | undefined

function loadReal(): Real | null {
  if (real !== undefined) return real
  const stories = routedStories()
  if (stories === null) return (real = null)
  const { imported, model: f32 } = stories
  const arch = imported.architecture
  const blocks = new Map<string, BlockTensors>([...imported.blocks].map(([name, tensors]) => [name, readBlockTensors(name, arch, buildPayload(tensors.map((t) => ({ name: t.name, values: t.values, shape: t.shape, dtype: t.shape.length === 1 ? 'fp32' : 'int8' }))))]))
  real = { f32, int8: { architecture: arch, blocks }, int8Cpu: cpuModel(arch, blocks), train: stories.windows('tinystories_train_slice.txt', 8, SEQ_LEN), validation: stories.windows('tinystories_val_slice.txt', 4, SEQ_LEN) }
  return real
}

function cpuGradients(model: FloatModel, target: ExpertRef, batch: readonly number[][]): ExpertWeights {
  const arch = model.architecture
  const s = new TrainState(arch, SEQ_LEN)
  const b = new BackwardState(arch, SEQ_LEN)
  const g = new Gradients(arch, target)
  for (const tokens of batch) {
    trainForward(arch, model.weights, s, tokens)
    backward(arch, model.weights, s, b, tokens, g, 1 / (batch.length * SEQ_LEN))
  }
  return g.experts[target.layer]?.[target.expert] as ExpertWeights
}

describe('WebGPU training on the real stories260K (4 experts per layer, top 2)', { skip: gpu === null ? NO_GPU : false }, () => {
  for (const weights of ['f32', 'int8'] as const) {
    test(`${weights} frozen weights: target-expert gradients of 2 x ${SEQ_LEN} tokens against backward.ts (f32: layers 0, 2, 4; int8: layer 2)`, async (t) => {
      const r = loadReal()
      if (r === null) return t.skip(SHARED_DATA_MISSING)
      const device = (gpu as { device: GPUDevice }).device
      const batch = r.train.slice(0, 2)
      const targets = weights === 'f32' ? [{ layer: 0, expert: 1 }, { layer: 2, expert: 0 }, { layer: 4, expert: 3 }] : [{ layer: 2, expert: 0 }]
      const report: string[] = []
      for (const target of targets) {
        const cpu = cpuGradients(weights === 'f32' ? r.f32 : r.int8Cpu, target, batch)
        const trainer = await WebGpuTrainer.create(device, weights === 'f32' ? r.f32 : r.int8, { target, maxPositions: SEQ_LEN, maxBatch: 2, wgslLanguageFeatures: FEATURES })
        try {
          assert.equal(trainer.expertDType, weights)
          const got = await trainer.gradients(batch)
          const errs = KEYS.map((k) => {
            assert.ok(cpu[k].some((x) => x !== 0), `layer ${target.layer} expert ${target.expert}: a token of the batch was routed to it`)
            const rel = maxRelative(got.expert[k], cpu[k])
            assert.ok(rel <= 1e-3, `layer ${target.layer} expert ${target.expert} ${k}: relative error ${rel.toExponential(2)}`)
            return rel
          })
          report.push(`layer ${target.layer} expert ${target.expert} ${errs.map((e) => e.toExponential(2)).join(' / ')}`)
        } finally {
          trainer.destroy()
        }
      }
      console.log(`stories260K ${weights}: max|g_gpu − g_cpu| / max|g_cpu| (w1 / w2 / w3): ${report.join('; ')}`)
    })
  }

  test('3 steps of AdamW on layer 2 expert 0 (batches of 2 windows): losses, weights and held-out loss as trainExpert', async (t) => {
    const r = loadReal()
    if (r === null) return t.skip(SHARED_DATA_MISSING)
    const device = (gpu as { device: GPUDevice }).device
    const target = { layer: 2, expert: 0 }
    const LR = 1e-3
    const STEPS = 3
    const options = { target, sequences: r.train, steps: STEPS, batchSize: 2, learningRate: LR, seed: 1 }
    const cpu = await trainExpert(r.f32, options)
    const started = performance.now()
    const got = await trainExpertWebGpu(device, r.f32, { ...options, wgslLanguageFeatures: FEATURES })
    const ms = performance.now() - started
    got.losses.forEach((loss, i) => assert.ok(Math.abs(loss - (cpu.losses[i] as number)) <= 1e-3 * (cpu.losses[i] as number), `step ${i}: ${loss} vs ${cpu.losses[i]}`))
    let rms = 0
    let max = 0
    for (const k of KEYS) {
      let ss = 0
      for (let i = 0; i < cpu.expert[k].length; i++) {
        const d = Math.abs((got.expert[k][i] as number) - (cpu.expert[k][i] as number)) / (LR * STEPS)
        ss += d * d
        max = Math.max(max, d)
      }
      rms = Math.max(rms, Math.sqrt(ss / cpu.expert[k].length))
    }
    assert.ok(rms <= 1e-3 && max <= 0.05, `weights: rms ${rms.toExponential(2)}, max ${max.toExponential(2)} (units of lr · steps)`)
    const w = r.f32.weights
    const trained = (e: ExpertWeights): FloatModel => ({ architecture: r.f32.architecture, weights: { ...w, expert: (l, x) => (l === target.layer && x === target.expert ? e : w.expert(l, x)) } })
    const before = await evaluateLoss(r.f32, r.validation)
    const evalGpu = await evaluateLoss(trained(got.expert), r.validation)
    const evalCpu = await evaluateLoss(trained(cpu.expert), r.validation)
    assert.ok(Math.abs(evalGpu - evalCpu) <= 1e-5 * evalCpu, `held-out loss ${evalGpu} vs ${evalCpu}`)
    console.log(`stories260K 3 steps: losses ${Array.from(got.losses, (x) => x.toFixed(5)).join(', ')} (CPU ${Array.from(cpu.losses, (x) => x.toFixed(5)).join(', ')}); weights |Δ| rms ${rms.toExponential(2)}, max ${max.toExponential(2)} lr·steps; held-out ${before.toFixed(5)} -> ${evalGpu.toFixed(6)} (CPU-trained ${evalCpu.toFixed(6)}); WebGPU ${(ms / STEPS).toFixed(0)} ms/step with setup (diagnostic)`)
  })
})
