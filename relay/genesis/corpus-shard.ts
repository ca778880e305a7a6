/**
 * A corpus-sampling worker (pipeline.ts): samples the stories whose index it is given and posts
 * each one's token ids as soon as it is done; the main thread assembles them in story order.
 *
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { Architecture } from '../../src/chain/meta.ts'
import { RunState, ropeTable } from '../../src/model/forward.ts'
import { createTokenizer } from '../../src/model/tokenizer/index.ts'
import type { CorpusRecipe } from './config.ts'
import { storyIds } from './corpus.ts'
import { parameterSet, weightsOf } from './student.ts'

export interface CorpusShardData {
  readonly architecture: Architecture
  readonly teacher: Float32Array
  readonly tokenizer: Uint8Array
  readonly bos: number
  readonly eos: number
  readonly recipe: CorpusRecipe
  readonly indices: readonly number[]
}

const d = workerData as CorpusShardData
const weights = weightsOf(parameterSet(d.architecture, d.teacher.buffer).params)
const tokenizer = createTokenizer('llama2c', d.tokenizer, d.architecture.vocab_size, d.bos, d.eos)
const options = { ...d.recipe, architecture: d.architecture, weights, tokenizer }
const s = new RunState(d.architecture)
const table = ropeTable(d.architecture)
for (const index of d.indices) parentPort?.postMessage({ index, ids: storyIds(options, index, s, table) })
