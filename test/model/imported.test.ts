/**
 * Every importer's output, checked against the chain's own rules: each block holds exactly
 * expectedTensors(name, architecture) (names, order, shapes), the architecture survives the meta
 * schema (a MetaDocument round-trips through encodeMeta/decodeMeta), and each block builds a
 * payload that passes the E_SHAPE rule.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { importModel } from '../../relay/import.ts'
import { RAW, cidOf } from '../../src/codec/cbor.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { decodeMeta, encodeMeta, type MetaDocument } from '../../src/chain/meta.ts'
import { blockNames, checkParamShapes, expectedTensors } from '../../src/chain/params.ts'
import { type ImportedModel } from '../../src/model/imported.ts'
import { importLlama2c } from '../../src/model/llama2c.ts'
import { buildPayload, parsePayload } from '../../src/tensor/payload.ts'
import { testKey } from '../fixtures/devnet.ts'
import { writeHfCheckpoint } from '../fixtures/hf.ts'
import { TINY_LLAMA2C, randomLlama2c, writeLlama2c } from '../fixtures/llama2c.ts'
import { SHARED_DATA_MISSING, sharedData, sharedPath } from '../fixtures/shared-data.ts'

const root = mkdtempSync(join(tmpdir(), 'blyan-imported-'))
after(() => rmSync(root, { recursive: true, force: true }))

async function models(): Promise<[string, ImportedModel][]> {
  const out: [string, ImportedModel][] = []
  if (sharedData('stories260K.bin') !== null) {
    out.push(['stories260K.bin (4 experts)', await importModel(sharedPath('stories260K.bin'))])
    out.push(['stories260K_q8.bin (7 experts, top 2)', await importModel(sharedPath('stories260K_q8.bin'), { experts: 7, topK: 2, tokenizer: sharedPath('tok512.bin') })])
  }
  out.push(['synthetic llama2.c v1, unshared classifier', importLlama2c(writeLlama2c(randomLlama2c({ ...TINY_LLAMA2C, shared_classifier: false }, 7), 1), { experts: 3 })])
  out.push(['Mixtral (2 shards)', await importModel(writeHfCheckpoint(join(root, 'mixtral'), 'mixtral', { shards: 2 }).dir)])
  out.push(['OLMoE', await importModel(writeHfCheckpoint(join(root, 'olmoe'), 'olmoe').dir)])
  out.push(['Qwen2-MoE (tied)', await importModel(writeHfCheckpoint(join(root, 'qwen'), 'qwen2_moe', { overrides: { tie_word_embeddings: true } }).dir)])
  return out
}

describe('imported models fit the chain', async () => {
  const all = await models()
  test('the real stories260K checkpoints are among them', (t) => {
    if (sharedData('stories260K.bin') === null) return t.skip(SHARED_DATA_MISSING)
    assert.equal(all.filter(([, m]) => m.source === 'llama2c' && m.tokenizer !== null).length, 2)
  })
  for (const [label, model] of all) {
    test(`${label}: blocks = expectedTensors, architecture passes the meta schema, payloads pass E_SHAPE`, () => {
      const a = model.architecture
      assert.deepEqual([...model.blocks.keys()], blockNames(a))
      for (const [name, tensors] of model.blocks) {
        const specs = expectedTensors(name, a)
        assert.deepEqual(tensors.map((t) => [t.name, t.shape]), specs.map((s) => [s.name, s.shape]), name)
        for (const t of tensors) {
          assert.ok(t.values instanceof Float32Array)
          assert.equal(t.values.length, t.shape.reduce((x, y) => x * y, 1), `${name}.${t.name}`)
        }
      }
      const doc: MetaDocument = {
        kind: 'blyan/meta',
        version: 1,
        network: 'import-test',
        architecture: a,
        tokenizer: model.tokenizer === null ? null : { format: model.tokenizer.format, payload: cidOf(model.tokenizer.bytes, RAW), size: model.tokenizer.bytes.length, bos_id: model.tokenizer.bos_id, eos_id: model.tokenizer.eos_id },
        pow: { A: 1, B: 1, C: 1, D: 1 },
        pol: { delta: 0.01, eval_sequences: 4, seq_len: Math.min(32, a.max_seq_len) },
        reward: { base: 100 },
        validators: [publicKeyOf(testKey('import validator'))]
      }
      const decoded = decodeMeta(encodeMeta(doc))
      assert.deepEqual(decoded.architecture, a)
      assert.deepEqual(decoded.tokenizer, doc.tokenizer)
      for (const name of [blockNames(a)[0] as string, blockNames(a)[1] as string, blockNames(a)[2] as string]) {
        const tensors = model.blocks.get(name) ?? []
        const payload = buildPayload(tensors.map((t) => ({ name: t.name, values: t.values, shape: t.shape, dtype: t.shape.length === 1 ? 'fp32' : 'int8' })))
        checkParamShapes(name, a, parsePayload(payload).index)
      }
    })
  }
})
