/**
 * The genesis recipe: everything `npm run genesis` needs besides the teacher file. The manifest
 * records it whole, so a rerun with the same recipe and teacher reproduces the same CIDs.
 *
 * @module
 */
import { PLAIN_MOE, type Architecture, type PolParams } from '../../src/chain/meta.ts'
import type { JobSettings } from '../../src/pol/job.ts'
import type { StudentConfig } from './student.ts'

export interface CorpusRecipe {
  readonly stories: number
  readonly seed: number
  readonly temperature: number
  readonly topP: number
  readonly maxTokens: number
  readonly minTokens: number
  readonly validationFraction: number
}

export interface GenesisRecipe {
  readonly network: string
  readonly corpus: CorpusRecipe
  readonly student: StudentConfig
  /** Validation stories the expert-usage and loss measurements run on (the first n of the pool). */
  readonly evaluationStories: number
  /** The network's Proof-of-Learning parameters (chain A meta). */
  readonly pol: PolParams
  /** Training settings of the jobs a genesis node publishes (node policy, `<data>/jobs.json`). */
  readonly jobs: JobSettings
}

/** The student: 8 experts per layer, top-2, llama2.c's vocabulary (the teacher's), ~0.48 M parameters. */
export const STUDENT_ARCHITECTURE: Architecture = Object.freeze({
  family: 'llama_moe',
  dim: 64,
  n_layers: 4,
  n_heads: 8,
  n_kv_heads: 4,
  head_dim: 8,
  vocab_size: 512,
  max_seq_len: 256,
  expert_hidden_dim: 64,
  n_experts: 8,
  top_k: 2,
  router_weighting: 'softmax_topk',
  ...PLAIN_MOE
})

export const GENESIS_RECIPE: GenesisRecipe = Object.freeze({
  network: 'blyan-genesis',
  corpus: Object.freeze({ stories: 2600, seed: 20261126, temperature: 1, topP: 0.95, maxTokens: 255, minTokens: 16, validationFraction: 0.1 }),
  student: Object.freeze({
    architecture: STUDENT_ARCHITECTURE,
    steps: 1600,
    batchSize: 8,
    learningRate: 3e-3,
    warmupSteps: 50,
    minLearningRate: 3e-4,
    weightDecay: 0.01,
    clipNorm: 1,
    distillWeight: 0.7,
    balanceWeight: 0.01,
    seed: 20261127,
    shards: 2
  }),
  evaluationStories: 120,
  // Measured on this student (40-60 steps on one expert): gains of 0.2-1.9% per job on 16-window
  // slices with 512-window shards, against 0-0.9% with 64-window shards (a 64-window shard is ~1,000
  // tokens per expert: memorised, not learned from). delta 0.3% accepts most of those jobs.
  pol: Object.freeze({ delta: 0.003, eval_sequences: 16, seq_len: 64 }),
  jobs: Object.freeze({ steps: 60, batchSize: 8, learningRate: 1e-3, shardSequences: 512 })
})
