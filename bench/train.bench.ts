/**
 * Proof-of-Learning training speed: training tokens/s of one expert on WebGPU (Node, Dawn;
 * src/train/webgpu-trainer.ts) against the CPU reference trainExpert (src/train/train.ts), measured
 * in the same run on the same model, sequences and settings (target, batch, learning rate, seed:
 * the same batches). A training token is one predicted position of a batch sequence (forward,
 * target-only backward, AdamW share).
 *
 * Figures: CPU trainExpert (baseline, whole call); WebGPU trainExpertWebGpu (whole call: upload,
 * bind and every step, pipelines already compiled by a warm-up call); WebGPU steady state (median
 * WebGpuTrainer.step of a trainer already built). Rounds interleave CPU and GPU; medians. The first
 * step's loss of both is printed as a check that they trained the same thing.
 *
 * Models: stories260K from ../shared/data (4 experts per layer, top 2; 64-token windows of the
 * TinyStories slice) when present, and synthetic int8 MoE models (bench/synthetic.ts weights: one
 * random block per kind): small on a software adapter (SwiftShader: CPU work, read the ratios),
 * larger on a hardware GPU, where the CPU baseline trains fewer steps (its tokens/s is per token).
 */
import { readFileSync } from 'node:fs'
import type { Architecture } from '../src/chain/meta.ts'
import { WebGpuTrainer, trainExpertWebGpu, type TrainModel } from '../src/train/webgpu-trainer.ts'
import type { BlockTensors } from '../src/engine/interface.ts'
import { requestModelDevice } from '../src/gpu/device.ts'
import { nodeGpu } from '../src/gpu/node.ts'
import { tuningFor } from '../src/gpu/tuning.ts'
import { importLlama2c } from '../src/model/llama2c.ts'
import { createTokenizer } from '../src/model/tokenizer/index.ts'
import { floatModel, trainExpert, type FloatModel } from '../src/train/train.ts'
import { dequantizeAll } from '../src/model/weights.ts'
import { sharedData, sharedPath } from '../test/fixtures/shared-data.ts'
import { median } from './measure.ts'
import { BASE, describeArch, tensorsFor } from './synthetic.ts'

const SEQ = 64 // predicted tokens per sequence

interface Case {
  readonly name: string
  readonly arch: Architecture
  readonly cpu: FloatModel
  readonly gpu: TrainModel
  readonly sequences: number[][]
  readonly target: { layer: number; expert: number }
  readonly batchSize: number
  /** Steps of each GPU run and of each CPU run, and the CPU's batch (smaller when the CPU is slow: its rate is per token). */
  readonly gpuSteps: number
  readonly cpuSteps: number
  readonly cpuBatch: number
  readonly rounds: number
}

function stories(steps: number, rounds: number): Case | null {
  const bytes = sharedData('stories260K.bin')
  const tok = sharedData('tok512.bin')
  if (bytes === null || tok === null || sharedData('tinystories_train_slice.txt') === null) return null
  const imported = importLlama2c(bytes, { experts: 4, topK: 2 })
  const model = floatModel(imported.architecture, new Map([...imported.blocks].map(([name, tensors]) => [name, new Map(tensors.map((t) => [t.name, t.values]))])))
  const tokenizer = createTokenizer('llama2c', tok, 512, 1, 2)
  const stream: number[] = []
  for (const doc of readFileSync(sharedPath('tinystories_train_slice.txt'), 'utf8').split(/\n[ \t]*\n/)) {
    if (doc.trim() !== '') stream.push(...tokenizer.encode(doc.trim(), { bos: true }))
    if (stream.length > 32 * SEQ) break
  }
  const sequences = Array.from({ length: 32 }, (_, j) => stream.slice(j * SEQ, j * SEQ + SEQ + 1))
  return { name: 'stories260K f32 (4 experts, top 2)', arch: model.architecture, cpu: model, gpu: model, sequences, target: { layer: 2, expert: 0 }, batchSize: 4, gpuSteps: steps, cpuSteps: steps, cpuBatch: 4, rounds }
}

function synthetic(arch: Architecture, gpuSteps: number, cpuSteps: number, cpuBatch: number, rounds: number): Case {
  const blocks = tensorsFor(arch)
  // tensorsFor shares one block per kind: dequantise each distinct block once
  const floats = new Map<BlockTensors, Map<string, Float32Array>>()
  const cpu = floatModel(arch, new Map([...blocks].map(([name, t]) => {
    let f = floats.get(t)
    if (f === undefined) floats.set(t, (f = dequantizeAll(t)))
    return [name, f]
  })))
  let seed = 7
  const next = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) % arch.vocab_size
  const sequences = Array.from({ length: 16 }, () => Array.from({ length: SEQ + 1 }, next))
  return { name: `synthetic int8: ${describeArch(arch)}`, arch, cpu, gpu: { architecture: arch, blocks }, sequences, target: { layer: Math.floor(arch.n_layers / 2), expert: 1 }, batchSize: 4, gpuSteps, cpuSteps, cpuBatch, rounds }
}

export async function run(): Promise<void> {
  const g = await nodeGpu()
  if (g === null) {
    console.log('no WebGPU adapter: skipped')
    return
  }
  const info = g.adapter.info
  const software = tuningFor(info).name === 'cpu'
  console.log(`adapter: ${info.vendor} ${info.architecture} ${info.description} (${tuningFor(info).name} tuning)`)
  const cases: Case[] = []
  const real = stories(software ? 2 : 8, software ? 2 : 3)
  if (real === null) console.log('stories260K: ../shared/data absent, skipped')
  else cases.push(real)
  if (software) {
    cases.push(synthetic({ ...BASE, dim: 128, n_layers: 2, n_heads: 4, n_kv_heads: 2, head_dim: 32, vocab_size: 1024, expert_hidden_dim: 256, max_seq_len: SEQ + 1 }, 1, 1, 4, 1))
  } else {
    cases.push(synthetic({ ...BASE, dim: 256, n_layers: 4, n_heads: 8, n_kv_heads: 4, head_dim: 32, vocab_size: 4096, expert_hidden_dim: 512, max_seq_len: SEQ + 1 }, 8, 1, 4, 2))
    // bench/decode.bench.ts's model
    cases.push(synthetic({ ...BASE, dim: 512, n_layers: 4, n_heads: 8, n_kv_heads: 4, head_dim: 64, vocab_size: 32000, expert_hidden_dim: 1408, max_seq_len: SEQ + 1 }, 8, 1, 1, 1))
  }

  for (const c of cases) {
    const adapter = (await nodeGpu())?.adapter ?? g.adapter // a fresh adapter: each makes one device
    const device = await requestModelDevice(adapter, c.arch, { maxResidentExperts: c.arch.n_layers * c.arch.n_experts })
    try {
      const options = { target: c.target, sequences: c.sequences, batchSize: c.batchSize, learningRate: 1e-3, seed: 1 }
      const gpuOptions = { ...options, wgslLanguageFeatures: g.wgslLanguageFeatures }
      const tokensPerStep = c.batchSize * SEQ
      const cpuTokensPerStep = c.cpuBatch * SEQ
      await trainExpertWebGpu(device, c.gpu, { ...gpuOptions, steps: 1 }) // compiles every pipeline
      const cpuRuns: number[] = []
      const gpuRuns: number[] = []
      let cpuLoss = 0
      let gpuLoss = 0
      for (let r = 0; r < c.rounds; r++) {
        let t = performance.now()
        const cpu = await trainExpert(c.cpu, { ...options, batchSize: c.cpuBatch, steps: c.cpuSteps })
        cpuRuns.push((performance.now() - t) / 1000)
        cpuLoss = cpu.losses[0] as number
        t = performance.now()
        const gpu = await trainExpertWebGpu(device, c.gpu, { ...gpuOptions, steps: c.gpuSteps })
        gpuRuns.push((performance.now() - t) / 1000)
        gpuLoss = gpu.losses[0] as number
      }
      // steady state: a trainer built once, the same batches' sizes
      const trainer = await WebGpuTrainer.create(device, c.gpu, { target: c.target, maxPositions: SEQ, maxBatch: c.batchSize, wgslLanguageFeatures: g.wgslLanguageFeatures })
      const batch = c.sequences.slice(0, c.batchSize)
      await trainer.step(batch)
      const steps: number[] = []
      for (let i = 0; i < Math.max(3, c.gpuSteps); i++) {
        const t = performance.now()
        await trainer.step(batch)
        steps.push((performance.now() - t) / 1000)
      }
      trainer.destroy()
      const cpuRate = (c.cpuSteps * cpuTokensPerStep) / median(cpuRuns)
      const gpuRate = (c.gpuSteps * tokensPerStep) / median(gpuRuns)
      const stepRate = tokensPerStep / median(steps)
      console.log(`\n${c.name}; target layer ${c.target.layer} expert ${c.target.expert}, batches of ${c.batchSize} x ${SEQ} tokens`)
      console.log(`  CPU trainExpert (baseline):       ${cpuRate.toFixed(1)} tokens/s (${plural(c.cpuSteps, 'step')} of ${c.cpuBatch} x ${SEQ} tokens in ${median(cpuRuns).toFixed(2)} s, median of ${c.rounds})`)
      console.log(`  WebGPU trainExpertWebGpu (whole): ${gpuRate.toFixed(1)} tokens/s (${plural(c.gpuSteps, 'step')} in ${median(gpuRuns).toFixed(2)} s incl. upload and binding): ${(gpuRate / cpuRate).toFixed(2)}x the CPU`)
      console.log(`  WebGPU steady step:               ${stepRate.toFixed(1)} tokens/s (${(median(steps) * 1000).toFixed(1)} ms per step): ${(stepRate / cpuRate).toFixed(2)}x the CPU`)
      if (c.cpuBatch === c.batchSize) console.log(`  first-step loss: CPU ${cpuLoss.toFixed(6)}, WebGPU ${gpuLoss.toFixed(6)} (relative difference ${(Math.abs(gpuLoss - cpuLoss) / cpuLoss).toExponential(1)})`)
    } finally {
      device.destroy()
    }
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
