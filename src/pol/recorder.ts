/**
 * Writing a training record while training (src/chain/record.ts): the step hashes a CPU trainer's
 * onStep hands over, then the record of the finished run. One implementation for the miner and
 * for anything that trains the way a miner does (the audit bench).
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { RECORD_KIND, RECORD_VERSION, batchOrderHash, weightsHash, type TrainingBackend, type TrainingRecord } from '../chain/record.ts'
import { batchOrder } from '../model/random.ts'
import type { ExpertWeights } from '../model/weights.ts'
import type { TrainResult } from '../train/train.ts'

/** What the training was: everything of a record but its outcome. */
export type TrainingTerms = Omit<TrainingRecord, 'kind' | 'version' | 'payload' | 'batch_order' | 'losses' | 'step_hashes' | 'weights' | 'backend'>

export class TrainingRecorder {
  readonly #terms: TrainingTerms
  readonly #backend: TrainingBackend
  readonly #hashes: Uint8Array[] = []

  constructor(terms: TrainingTerms, backend: TrainingBackend) {
    this.#terms = terms
    this.#backend = backend
  }

  /** Call from the trainer's onStep: a CPU run hashes the weights after every step. */
  step(expert: ExpertWeights | undefined): void {
    if (this.#backend === 'cpu' && expert !== undefined) this.#hashes.push(weightsHash([expert.w1, expert.w2, expert.w3]))
  }

  /** The record of the finished run, whose weights became `payload`. */
  record(trained: TrainResult, payload: CID): TrainingRecord {
    const t = this.#terms
    return Object.freeze({
      kind: RECORD_KIND, version: RECORD_VERSION, ...t, payload,
      batch_order: batchOrderHash(batchOrder(t.count, t.steps, t.batch_size, t.seed)), backend: this.#backend,
      losses: [...trained.losses], step_hashes: this.#backend === 'cpu' ? [...this.#hashes] : [],
      weights: weightsHash([trained.expert.w1, trained.expert.w2, trained.expert.w3])
    })
  }
}
