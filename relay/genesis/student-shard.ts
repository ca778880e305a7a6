/**
 * One shard of genesis training (student.ts): a worker thread that, for each job, runs per
 * sequence the teacher's forward, the student's forward and the backward of the distillation and
 * balance objective into its gradient buffer, and answers the loss sums.
 *
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads'
import { BackwardState, backward, objective } from '../../src/train/backward.ts'
import { TrainState, trainForward } from '../../src/train/train-forward.ts'
import { parameterSet, weightsOf, type ShardData, type ShardJob, type ShardReply } from './student.ts'

const d = workerData as ShardData
const arch = d.architecture
const student = weightsOf(parameterSet(arch, d.weights).params)
const teacher = weightsOf(parameterSet(d.teacherArchitecture, d.teacher.buffer).params)
const grads = parameterSet(arch, d.gradients).params
const s = new TrainState(arch, d.maxPositions)
const ts = new TrainState(d.teacherArchitecture, d.maxPositions)
const b = new BackwardState(arch, d.maxPositions)
const vocab = arch.vocab_size
const probs = new Float32Array(d.maxPositions * vocab)

/** probs rows p < n = softmax of the teacher's logits at position p. */
function teacherDistributions(n: number): void {
  for (let p = 0; p < n; p++) {
    const o = p * vocab
    let max = -Infinity
    for (let i = 0; i < vocab; i++) max = Math.max(max, ts.logits[o + i] as number)
    let z = 0
    for (let i = 0; i < vocab; i++) z += probs[o + i] = Math.exp((ts.logits[o + i] as number) - max)
    for (let i = 0; i < vocab; i++) probs[o + i] = (probs[o + i] as number) / z
  }
}

parentPort?.on('message', (job: ShardJob) => {
  try {
    grads.zero()
    let ce = 0
    let total = 0
    let positions = 0
    const terms = { teacher: { probs, weight: d.distillWeight }, balance: d.balanceWeight }
    for (const i of job.sequences) {
      const tokens = d.tokens.subarray(d.offsets[i] as number, d.offsets[i + 1] as number)
      if (d.distillWeight > 0) {
        trainForward(d.teacherArchitecture, teacher, ts, tokens)
        teacherDistributions(tokens.length - 1)
      }
      trainForward(arch, student, s, tokens)
      ce += s.lossSum
      total += objective(arch, s, terms)
      positions += s.positions
      backward(arch, student, s, b, tokens, grads, job.scale, terms)
    }
    parentPort?.postMessage({ ce, objective: total, positions } satisfies ShardReply)
  } catch (e) {
    parentPort?.postMessage({ error: e instanceof Error ? e.stack ?? e.message : String(e) })
  }
})
