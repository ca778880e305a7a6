/**
 * Genesis step 1 (relay/genesis/corpus.ts) on the real teacher, stories260K: stories sampled from
 * BOS are English stories, the same seed gives the same corpus, the two pools are disjoint, a
 * story's pool does not depend on how many stories were sampled, and a pool's text reads back as
 * the same stories through the PoL document splitter.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { importLlama2c } from '../../src/model/llama2c.ts'
import { createTokenizer } from '../../src/model/tokenizer/index.ts'
import { floatModel } from '../../src/train/train.ts'
import { splitDocuments } from '../../src/pol/sequences.ts'
import { isValidation, poolText, sampleCorpus, type CorpusOptions } from '../../relay/genesis/corpus.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'

test('a teacher-sampled corpus: English stories, seeded, disjoint pools stable under the corpus size, pool text round-trips', async (t) => {
  const bin = sharedData('stories260K.bin')
  const tok = sharedData('tok512.bin')
  if (bin === null || tok === null) return t.skip(SHARED_DATA_MISSING)
  const model = importLlama2c(bin, { experts: 1 })
  const blocks = new Map([...model.blocks].map(([name, tensors]) => [name, new Map(tensors.map((x) => [x.name, x.values]))]))
  const teacher = floatModel(model.architecture, blocks)
  const tokenizer = createTokenizer('llama2c', tok, model.architecture.vocab_size, 1, 2)
  const options: CorpusOptions = { architecture: model.architecture, weights: teacher.weights, tokenizer, stories: 12, seed: 7, maxTokens: 160, validationFraction: 0.3 }
  const a = await sampleCorpus(options)
  const b = await sampleCorpus(options)
  assert.deepEqual(b, a, 'the same seed, the same corpus')
  const all = [...a.train, ...a.validation]
  assert.equal(all.length + a.dropped, 12)
  assert.ok(a.validation.length > 0 && a.train.length > 0)
  assert.equal(new Set(all).size, all.length)
  assert.ok(!a.train.some((s) => a.validation.includes(s)), 'disjoint pools')
  // English stories: common story words, letters and spaces dominate.
  const words = all.join(' ').toLowerCase()
  for (const w of [' the ', ' was ', ' and ']) assert.ok(words.includes(w), `"${w}" appears`)
  assert.ok((words.match(/[a-z ]/g)?.length ?? 0) / words.length > 0.9)
  // Pool membership is a function of seed and text: a shorter run puts its stories in the same pools.
  const short = await sampleCorpus({ ...options, stories: 6 })
  for (const s of short.train) assert.ok(a.train.includes(s))
  for (const s of short.validation) assert.ok(a.validation.includes(s) && isValidation(7, s, 0.3))
  assert.deepEqual(splitDocuments(poolText(a.train)), [...a.train].map((s) => s.replace(/\n[ \t]*\n/g, '\n').trim()))
})
