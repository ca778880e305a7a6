/**
 * Genesis student training (relay/genesis/student.ts): training tokens/s of the genesis student
 * (config.ts architecture, distillation from stories260K) on the worker-thread trainer with 2
 * shards against 1 shard, same sequences, same batches, in the same run; and the teacher forward's
 * share (distillation off). A training token is one predicted position: the teacher's forward, the
 * student's forward and full backward, its share of AdamW and the shard sum.
 *
 * Each figure is the median over rounds of a few steps (rounds interleave the settings). On a
 * 2-core machine 2 shards can at best double 1; the gap is the main thread's shard sum, norm clip
 * and AdamW over all 0.48 M parameters between steps, and the two workers sharing memory bandwidth.
 * Needs ../shared/data (the teacher and TinyStories text to train on).
 */
import { readFileSync } from 'node:fs'
import { GENESIS_RECIPE } from '../relay/genesis/config.ts'
import { loadTeacher, poolSequences } from '../relay/genesis/pipeline.ts'
import { trainStudent, type StudentConfig } from '../relay/genesis/student.ts'
import { sequenceDraw } from '../src/model/random.ts'
import { splitDocuments } from '../src/pol/sequences.ts'
import { sharedData, sharedPath } from '../test/fixtures/shared-data.ts'
import { median } from './measure.ts'

const STEPS = 6
const ROUNDS = 3

export async function run(): Promise<void> {
  if (sharedData('stories260K.bin') === null || sharedData('tinystories_train_slice.txt') === null) {
    console.log('skipped: needs ../shared/data (stories260K.bin, tok512.bin, tinystories_train_slice.txt)')
    return
  }
  const teacher = loadTeacher(sharedPath('stories260K.bin'), sharedPath('tok512.bin'))
  const arch = GENESIS_RECIPE.student.architecture
  const stories = splitDocuments(readFileSync(sharedPath('tinystories_train_slice.txt'), 'utf8')).slice(0, 200)
  const sequences = poolSequences(teacher.tokenizer, stories, arch.max_seq_len)
  const base: StudentConfig = { ...GENESIS_RECIPE.student, steps: STEPS, warmupSteps: 1 }
  const settings: [string, StudentConfig][] = [
    ['1 shard (baseline)', { ...base, shards: 1 }],
    ['2 shards', { ...base, shards: 2 }],
    ['2 shards, no teacher (distillation off)', { ...base, shards: 2, distillWeight: 0 }]
  ]
  // per-step predicted tokens: the trainer's seeded draw, replayed
  const draw = sequenceDraw(sequences.length, base.seed + 1)
  const stepTokens = Array.from({ length: STEPS }, () => Array.from({ length: base.batchSize }, draw).reduce((n, i) => n + (sequences[i] as Int32Array).length - 1, 0))
  const rates = new Map<string, number[]>(settings.map(([name]) => [name, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, config] of settings) {
      // steady state: from the end of step 0 (workers started, code warm) to the end of the last
      const ends: number[] = []
      await trainStudent({ config, teacher: teacher.model, sequences, onStep: () => void ends.push(performance.now()) })
      const tokens = stepTokens.slice(1).reduce((a, b) => a + b, 0)
      rates.get(name)?.push(tokens / (((ends.at(-1) as number) - (ends[0] as number)) / 1000))
    }
  }
  const baseline = median(rates.get(settings[0]?.[0] as string) ?? [])
  for (const [name] of settings) {
    const rate = median(rates.get(name) ?? [])
    console.log(`${name.padEnd(42)} ${rate.toFixed(0).padStart(6)} training tokens/s   ${(rate / baseline).toFixed(2)}x`)
  }
}
