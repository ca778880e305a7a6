/**
 * The explorer's training record parser (src/explorer/record.ts) and the block page's view of it
 * (src/ui/explorer.ts): a record as `npm run genesis` writes it parses; every way a file can fail
 * to be one is refused with a RecordError naming the field.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { MAX_RECORD_BYTES, RecordError, parseGenesisRecord } from '../../src/explorer/record.ts'
import { datasetRecordLink, formatNats, recordLossRows, shortHex, usageView } from '../../src/ui/explorer.ts'
import { TINY_ARCH } from '../fixtures/devnet.ts'
import { recordBytes, sampleRecord } from '../fixtures/record.ts'

const GENESIS_MANIFEST = fileURLToPath(new URL('../../genesis/manifest.json', import.meta.url))

/** A copy of the sample record with `edit` applied to it. */
function edited(edit: (r: any) => void): Uint8Array {
  const r = structuredClone(sampleRecord())
  edit(r)
  return recordBytes(r)
}

function refused(input: Uint8Array | string, path: string, detail: RegExp): void {
  assert.throws(() => parseGenesisRecord(input), (e: unknown) => {
    assert.ok(e instanceof RecordError, `a RecordError, got ${String(e)}`)
    assert.equal(e.path, path, e.message)
    assert.match(e.message, detail)
    assert.match(e.message, /^not a valid training record: /)
    return true
  })
}

describe('parseGenesisRecord', () => {
  test('a record as the pipeline writes it parses, every field as written', () => {
    const raw = sampleRecord()
    const r = parseGenesisRecord(recordBytes(raw))
    assert.equal(r.kind, 'blyan/genesis-record')
    assert.equal(r.network, 'blyan-genesis')
    assert.deepEqual(r.code, { commit: '5a6171384b7c9c6b5779ba41d6ed337c54bf3691', dirty: true })
    assert.equal(r.teacher.file, 'stories260K.bin')
    assert.equal(r.model.parameters, 477760)
    assert.equal(r.model.architecture.n_experts, TINY_ARCH.n_experts)
    assert.deepEqual(r.training.loss_curve.map((p) => p[0]), [0, 1, 2])
    assert.equal(r.evaluation.heldout.student_chain, 5.939425416887137)
    assert.equal(r.evaluation.tinystories?.tokens, 300)
    assert.deepEqual(r.evaluation.expert_usage, (raw['evaluation'] as { expert_usage: unknown }).expert_usage)
    assert.deepEqual(r.recipe, raw['recipe'])
    assert.deepEqual(r.datasets.map((d) => `${d.name}:${d.split}`), ['genesis-train:train', 'genesis-validation:validation'])
    // The same from text, and with TinyStories absent (null) and fields it does not know.
    assert.deepEqual(parseGenesisRecord(new TextDecoder().decode(recordBytes(raw))), r)
    const bare = parseGenesisRecord(edited((x) => {
      x.evaluation.tinystories = null
      x.seconds = { student: 12 }
    }))
    assert.equal(bare.evaluation.tinystories, null)
  })

  test('the record of the genesis directory (genesis/manifest.json, when there is one) parses', { skip: !existsSync(GENESIS_MANIFEST) ? 'no genesis/manifest.json' : false }, () => {
    const manifest = JSON.parse(readFileSync(GENESIS_MANIFEST, 'utf8')) as { summary: unknown }
    const r = parseGenesisRecord(JSON.stringify(manifest.summary))
    assert.equal(r.evaluation.expert_usage.length, r.model.architecture.n_layers)
  })

  test('not UTF-8, not JSON, too large, not an object: refused as a whole', () => {
    refused(new Uint8Array([0x7b, 0xff, 0x7d]), 'record', /not UTF-8/)
    refused('{"kind": ', 'record', /not JSON/)
    refused('[1, 2]', 'record', /expected an object, got an array of 2/)
    refused('null', 'record', /expected an object, got null/)
    refused(new Uint8Array(MAX_RECORD_BYTES + 1), 'record', /more than the/)
  })

  test('another kind or version of file', () => {
    refused(edited((x) => (x.kind = 'blyan/genesis')), 'kind', /expected "blyan\/genesis-record", got "blyan\/genesis"/)
    refused(edited((x) => (x.version = 2)), 'version', /expected 1, got 2/)
    refused(edited((x) => delete x.recipe), 'recipe', /missing/)
  })

  test('each field missing or of the wrong type is named', () => {
    const cases: [string, (x: any) => void, RegExp][] = [
      ['network', (x) => (x.network = ''), /a non-empty string/],
      ['code', (x) => (x.code = 'abc'), /an object/],
      ['code.commit', (x) => delete x.code.commit, /missing/],
      ['code.dirty', (x) => (x.code.dirty = 'yes'), /true or false/],
      ['teacher.sha256', (x) => (x.teacher.sha256 = 'B0A5'), /SHA-256/],
      ['teacher.architecture.n_layers', (x) => (x.teacher.architecture.n_layers = 0), /an integer >= 1, got 0/],
      ['datasets', (x) => (x.datasets = {}), /an array/],
      ['datasets[1].split', (x) => (x.datasets[1].split = 'test'), /"train" or "validation"/],
      ['datasets[0].cid', (x) => (x.datasets[0].cid = 'not-a-cid'), /a CID/],
      ['model.parameters', (x) => (x.model.parameters = 1.5), /an integer/],
      ['model.architecture.top_k', (x) => (x.model.architecture.top_k = 9), /more than n_experts/],
      ['model.blocks[0].cid', (x) => (x.model.blocks[0].cid = 42), /a CID/],
      ['training.tokens', (x) => (x.training.tokens = -1), /an integer >= 0/],
      ['training.loss_curve[1]', (x) => (x.training.loss_curve[1] = [1, 2]), /\[step, loss, objective\]/],
      ['training.loss_curve[1][1]', (x) => (x.training.loss_curve[1][1] = 'NaN'), /a finite number/],
      ['training.loss_curve[2][0]', (x) => (x.training.loss_curve[2][0] = 1), /does not follow step 1/],
      ['evaluation.heldout', (x) => delete x.evaluation.heldout, /an object, got missing/],
      ['evaluation.heldout.teacher', (x) => (x.evaluation.heldout.teacher = null), /a finite number >= 0, got null/],
      ['evaluation.tinystories', (x) => delete x.evaluation.tinystories, /an object, got missing/],
      ['evaluation.tinystories.tokens', (x) => (x.evaluation.tinystories.tokens = 0), /an integer >= 1/],
      ['evaluation.expert_usage', (x) => x.evaluation.expert_usage.pop(), /1 layers, the student has 2/],
      ['evaluation.expert_usage[1]', (x) => x.evaluation.expert_usage[1].push(0.1), /3 experts, the student has 2/],
      ['evaluation.expert_usage[0][1]', (x) => (x.evaluation.expert_usage[0][1] = 1.5), /a share between 0 and 1/],
      ['evaluation.min_usage_vs_uniform', (x) => (x.evaluation.min_usage_vs_uniform = -0.1), /a finite number >= 0/]
    ]
    for (const [path, edit, detail] of cases) refused(edited(edit), path, detail)
  })
})

describe('the block page view of a record', () => {
  const record = parseGenesisRecord(recordBytes(sampleRecord()))

  test('a chain D document links a record; nothing else does', () => {
    assert.deepEqual(datasetRecordLink({ chain: 'D', document: { name: 'x', record: 'bafkrei', record_size: 10 } }), { cid: 'bafkrei', size: 10 })
    assert.equal(datasetRecordLink({ chain: 'D', document: { name: 'x' } }), null)
    assert.equal(datasetRecordLink({ chain: 'D', document: { record: 'bafkrei', record_size: 0 } }), null)
    assert.equal(datasetRecordLink({ chain: 'A', document: { record: 'bafkrei', record_size: 10 } }), null)
    assert.equal(datasetRecordLink({ chain: 'D', document: null }), null)
  })

  test('losses: a row per evaluation set, nats/token to three decimals', () => {
    assert.deepEqual(recordLossRows(record).map((r) => r.label), ['held-out generated pool', 'TinyStories validation slice'])
    assert.equal(formatNats(record.evaluation.heldout.student_chain), '5.939')
    const bare = parseGenesisRecord(edited((x) => (x.evaluation.tinystories = null)))
    assert.deepEqual(recordLossRows(bare).map((r) => r.id), ['heldout'])
    assert.equal(shortHex(record.code.commit), '5a6171384b7c')
    assert.equal(shortHex('unknown'), 'unknown')
  })

  test('expert usage: a cell per layer and expert, on one scale, the uniform share marked, the goal stated', () => {
    const u = usageView(record)
    assert.equal(u.experts, 2)
    assert.equal(u.uniform, 0.5)
    assert.equal(u.layers.length, 2)
    const cell = u.layers[1]?.cells[1]
    assert.equal(cell?.title, 'layer 1 expert 1: 25.0% of routing slots (uniform 50.0%)')
    assert.equal(cell?.ratio, 0.5)
    assert.equal(cell?.low, false)
    assert.equal(u.layers[1]?.cells[0]?.height, 1)
    assert.equal(u.uniformAt, 0.5 / 0.75)
    assert.equal(u.summary, 'least-used expert: 0.50 x its uniform share (the goal is >= 0.25)')
    assert.equal(u.meetsGoal, true)
    const skewed = usageView(parseGenesisRecord(edited((x) => {
      x.evaluation.expert_usage[0] = [0.95, 0.05]
      x.evaluation.min_usage_vs_uniform = 0.1
    })))
    assert.equal(skewed.layers[0]?.cells[1]?.low, true)
    assert.equal(skewed.meetsGoal, false)
    assert.equal(skewed.summary, 'least-used expert: 0.10 x its uniform share (the goal is >= 0.25)')
  })
})
