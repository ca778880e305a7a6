/**
 * How fast a trainer trains on this device: a few steps of it on a synthetic copy of the model
 * (src/engine/probe.ts: the architecture's shapes, random weights) and random token windows. The
 * Donate view's default trainer is the faster one measured, not the one an adapter's presence
 * suggests (a software GPU trains far slower than the CPU reference).
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import { syntheticTensors } from '../engine/probe.ts'
import { dequantizeAll } from '../model/weights.ts'
import { floatModel } from '../train/train.ts'
import type { Trainer } from './mining.ts'

/** Steps a probe runs; the first (compiling, allocating) is not timed. */
const PROBE_STEPS = 3

/** Milliseconds per training step of `train` on a synthetic copy of `arch` (batch `batchSize` × `seqLen` tokens). */
export async function trainerMsPerStep(train: Trainer, arch: Architecture, batchSize = 2, seqLen = Math.min(64, arch.max_seq_len)): Promise<number> {
  const tensors = syntheticTensors(arch)
  const model = floatModel(arch, new Map([...tensors].map(([name, t]) => [name, dequantizeAll(t)])))
  let s = 7
  const token = (): number => ((s = (s * 1103515245 + 12345) >>> 0) % arch.vocab_size)
  const sequences = Array.from({ length: batchSize * PROBE_STEPS }, () => Int32Array.from({ length: seqLen + 1 }, token))
  const ends: number[] = []
  await train(model, { target: { layer: 0, expert: 0 }, sequences, steps: PROBE_STEPS, batchSize, learningRate: 1e-3, seed: 1, onStep: () => ends.push(performance.now()) })
  const first = ends[0] as number
  const last = ends[ends.length - 1] as number
  return (last - first) / (ends.length - 1)
}
