import assert from 'node:assert/strict'
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { importModel } from '../../relay/import.ts'
import { ModelFormatError } from '../../src/model/errors.ts'
import { writeHfCheckpoint } from '../fixtures/hf.ts'
import { TINY_LLAMA2C, randomLlama2c, writeLlama2c, writeLlama2cTokenizer } from '../fixtures/llama2c.ts'
import { SHARED_DATA_MISSING, sharedData, sharedPath } from '../fixtures/shared-data.ts'

const root = mkdtempSync(join(tmpdir(), 'blyan-import-'))
after(() => rmSync(root, { recursive: true, force: true }))

const formatError = (file: string, re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${String(e)}`)
  assert.equal(e.file, file)
  assert.match(e.message, re)
  return true
}

describe('relay/import.ts: importModel', () => {
  test('stories260K.bin: tok512.bin is found beside it; 4 experts by default, all of them active', async (t) => {
    if (sharedData('stories260K.bin') === null || sharedData('tok512.bin') === null) return t.skip(SHARED_DATA_MISSING)
    const model = await importModel(sharedPath('stories260K.bin'))
    assert.equal(model.source, 'llama2c')
    assert.deepEqual([model.architecture.n_experts, model.architecture.top_k, model.architecture.expert_hidden_dim, model.architecture.max_seq_len], [4, 4, 43, 512])
    assert.deepEqual([model.tokenizer?.format, model.tokenizer?.bos_id, model.tokenizer?.eos_id, model.tokenizer?.bytes.length], ['llama2c', 1, 2, 6227])
    assert.equal(model.blocks.size, 1 + 5 * 5)
    // A copy elsewhere has no tokenizer beside it.
    const lone = join(root, 'lone.bin')
    copyFileSync(sharedPath('stories260K.bin'), lone)
    assert.equal((await importModel(lone, { experts: 2, topK: 1 })).tokenizer, null)
    const q8 = await importModel(sharedPath('stories260K_q8.bin'), { experts: 3, tokenizer: sharedPath('tok512.bin') })
    assert.deepEqual([q8.architecture.n_experts, q8.architecture.top_k, q8.tokenizer?.bos_id], [3, 3, 1])
  })

  test('a llama2.c model and its tokenizer must agree on the vocabulary', async () => {
    const bin = join(root, 'tiny.bin')
    writeFileSync(bin, writeLlama2c(randomLlama2c(TINY_LLAMA2C, 2), 2))
    const tok = join(root, `tok${TINY_LLAMA2C.vocab_size}.bin`)
    writeFileSync(tok, writeLlama2cTokenizer(Array.from({ length: TINY_LLAMA2C.vocab_size }, (_, i) => `t${i}`)))
    assert.equal((await importModel(bin)).tokenizer?.bytes.length, (await importModel(bin, { tokenizer: tok })).tokenizer?.bytes.length)
    const short = join(root, 'short-tok.bin')
    writeFileSync(short, writeLlama2cTokenizer(['a', 'b', 'c', 'd']))
    await assert.rejects(importModel(bin, { tokenizer: short }), formatError(short, /truncated at byte \d+: expected 4 more bytes of token 4 score/))
  })

  test('Hugging Face: a directory or its config.json; topK overrides; experts and seed are llama2.c options', async () => {
    const ck = writeHfCheckpoint(join(root, 'hf'), 'olmoe')
    const a = await importModel(ck.dir)
    const b = await importModel(join(ck.dir, 'config.json'), { topK: 4, experts: 4 })
    assert.deepEqual([a.architecture.top_k, b.architecture.top_k], [2, 4])
    await assert.rejects(importModel(ck.dir, { experts: 8 }), RangeError)
    await assert.rejects(importModel(ck.dir, { seed: 1 }), RangeError)
    await assert.rejects(importModel(ck.dir, { topK: 5 }), RangeError)
    const notok = writeHfCheckpoint(join(root, 'hf-notok'), 'mixtral', { tokenizer: false })
    assert.equal((await importModel(notok.dir)).tokenizer, null)
    const withTok = await importModel(notok.dir, { tokenizer: join(ck.dir, 'tokenizer.json') })
    assert.deepEqual([withTok.tokenizer?.bos_id, withTok.tokenizer?.eos_id], [1, 2], 'ids from the model config.json')
  })

  test('wrong kinds of paths name the path', async () => {
    const missing = join(root, 'nope.bin')
    await assert.rejects(importModel(missing), formatError(missing, /^.*nope\.bin: cannot read: no such file or directory$/))
    const txt = join(root, 'model.txt')
    writeFileSync(txt, 'hello')
    await assert.rejects(importModel(txt), formatError(txt, /is not a llama2\.c checkpoint \(\.bin\) or a Hugging Face model directory/))
    await assert.rejects(importModel(root), formatError(root, /is a directory without config\.json/))
    await assert.rejects(importModel(''), TypeError)
  })
})
