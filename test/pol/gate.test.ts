/**
 * The automatic quality gate (src/pol/gate.ts) on real text: the committed genesis model, its
 * tokenizer and its approved pools as the references, and proposals made from them and from the
 * TinyStories slices in ../shared/data. Each kind of bad pool is rejected with its reason; a fresh,
 * clean slice passes; two gates write byte-identical reports.
 */
import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { DEFAULT_GATE, type Architecture } from '../../src/chain/meta.ts'
import { RAW, cidOf } from '../../src/codec/cbor.ts'
import { tokenizerOf, type Tokenizer } from '../../src/model/tokenizer/index.ts'
import { dequantizeAll, readBlockTensors } from '../../src/model/weights.ts'
import { encodeReport, hasPii, runGate, type CheckName, type GateReport, type ReferencePool } from '../../src/pol/gate.ts'
import { splitDocuments } from '../../src/pol/sequences.ts'
import { floatModel, type FloatModel } from '../../src/train/train.ts'
import { devnetParts, readGenesis } from '../../relay/genesis/genesis.ts'
import { GENESIS_DIR } from '../fixtures/genesis-devnet.ts'
import { createRandom } from '../fixtures/random.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'

const PROPOSAL = CID.parse('bafyreiabvbzyqyoyxhmftn5lsb72g7qgjw55gmfc6kawnb3f42o4kvose4')
const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

interface Genesis {
  arch: Architecture
  seqLen: number
  tokenizer: () => Tokenizer
  model: () => FloatModel
  train: string
  validation: string
  references: ReferencePool[]
}

async function loadGenesis(): Promise<Genesis> {
  const parts = devnetParts(await readGenesis(GENESIS_DIR))
  const arch = parts.model.architecture
  const pool = (split: 'train' | 'validation'): Uint8Array => (parts.datasets.find((d) => d.split === split) as { bytes: Uint8Array }).bytes
  const text = (split: 'train' | 'validation'): string => new TextDecoder().decode(pool(split))
  return {
    arch,
    seqLen: parts.pol.seq_len,
    tokenizer: () => tokenizerOf(parts.model.tokenizer as NonNullable<typeof parts.model.tokenizer>, arch.vocab_size),
    model: () => floatModel(arch, new Map([...parts.model.payloads].map(([n, p]) => [n, dequantizeAll(readBlockTensors(n, arch, p))]))),
    train: text('train'),
    validation: text('validation'),
    references: (['train', 'validation'] as const).map((role) => ({ cid: cidOf(pool(role), RAW), role, text: text(role) }))
  }
}

describe('the dataset quality gate', () => {
  let g: Genesis
  let tokenizer: Tokenizer
  let model: FloatModel
  before(async () => {
    g = await loadGenesis()
    tokenizer = g.tokenizer()
    model = g.model()
  })
  const gate = (content: Uint8Array, role: 'train' | 'validation' = 'train'): Promise<GateReport> =>
    runGate({ dataset: PROPOSAL, role, content, params: DEFAULT_GATE, references: g.references, tokenizer, model, seqLen: g.seqLen })
  const failed = (r: GateReport): CheckName[] => r.checks.filter((c) => !c.pass).map((c) => c.name)
  const value = (r: GateReport, name: CheckName): number | undefined => r.checks.find((c) => c.name === name)?.value

  test('a fresh, clean slice of TinyStories passes, as training or validation data', async (t) => {
    const val = sharedData('tinystories_val_slice.txt')
    const train = sharedData('tinystories_train_slice.txt')
    if (val === null || train === null) return t.skip(SHARED_DATA_MISSING)
    for (const [role, bytes] of [['validation', val.subarray(0, 200_000)], ['train', train.subarray(200_000, 400_000)]] as const) {
      const r = await gate(bytes, role)
      assert.ok(r.pass, `${role}: ${r.checks.filter((c) => !c.pass).map((c) => c.detail).join('; ')}`)
      assert.equal(r.checks.length, 8, 'every check ran')
    }
  })

  test('an exact copy of an approved pool is rejected as duplicates', async () => {
    const r = await gate(enc(g.train))
    assert.deepEqual(failed(r), ['duplicates'])
    assert.equal(value(r, 'duplicates'), 1)
  })

  test('a near-duplicate (10% of the documents edited) is rejected, the edited ones found by MinHash', async () => {
    const docs = splitDocuments(g.train)
    const edit = (d: string): string => d.replace(/\b(\w+)\b/, 'Suddenly')
    const copy = docs.map((d, i) => (i % 10 === 0 ? edit(d) : d))
    const r = await gate(enc(copy.join('\n\n')))
    assert.deepEqual(failed(r), ['duplicates'])
    assert.equal(value(r, 'duplicates'), 1, 'the edited documents count too')
    // The edited tenth alone: no document is an exact copy, nearly all are near ones.
    const edited = docs.filter((_, i) => i % 10 === 0).map(edit)
    const only = await gate(enc(edited.join('\n\n')))
    assert.deepEqual(failed(only), ['duplicates'])
    assert.ok((value(only, 'duplicates') as number) > 0.9, `near duplicates ${value(only, 'duplicates')}`)
  })

  test('a validation pool drawn from a training pool is rejected as contamination, and the reverse', async () => {
    const fromTrain = splitDocuments(g.train).slice(0, 300).join('\n\n')
    const r = await gate(enc(fromTrain), 'validation')
    assert.deepEqual(failed(r), ['contamination'])
    const fromValidation = await gate(enc(g.validation), 'train')
    assert.deepEqual(failed(fromValidation), ['contamination'])
  })

  test('random characters are rejected: the tokenizer spells them byte by byte and the model cannot read them', async () => {
    const rnd = createRandom(7)
    const alphabet = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?"\'()[]{}<>@#$%^&*~éüßøñ中文日本語']
    const docs = Array.from({ length: 200 }, () => Array.from({ length: 300 }, () => alphabet[rnd.int(alphabet.length)]).join(''))
    const r = await gate(enc(docs.join('\n\n')))
    assert.ok(failed(r).includes('byte_fallback'), JSON.stringify(failed(r)))
    assert.ok(failed(r).includes('loss'), JSON.stringify(failed(r)))
  })

  test('a pool full of e-mail addresses (and phone numbers, keys) is rejected as PII', async () => {
    const docs = splitDocuments(g.validation).slice(0, 100).map((d, i) => `${d} Write to tom${i}@example.com for more.`)
    const r = await gate(enc(docs.join('\n\n')))
    assert.ok(failed(r).includes('pii'))
    assert.equal(value(r, 'pii'), 1)
    assert.ok(hasPii('call +1 (555) 123-4567 now'))
    assert.ok(hasPii('-----BEGIN OPENSSH PRIVATE KEY-----'))
    assert.ok(!hasPii('Tom had 3 apples and 12 pears in 2024.'))
  })

  test('an oversized file and the wrong format are rejected before anything else runs', async () => {
    const big = await gate(new Uint8Array(DEFAULT_GATE.max_bytes + 1).fill(0x61))
    assert.deepEqual(big.checks.map((c) => [c.name, c.pass]), [['size', false]])
    const binary = await gate(Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0xfe))
    assert.deepEqual(binary.checks.map((c) => [c.name, c.pass]), [['size', true], ['utf8', false]])
    const control = await gate(enc('Once upon a time\u0000 there was a cat.\n\nThe end.'))
    assert.deepEqual(failed(control), ['utf8'])
    const oneBlock = await gate(enc(splitDocuments(g.validation).slice(0, 50).join('\n')))
    assert.ok(failed(oneBlock).includes('documents'), 'no blank-line structure: one document')
  })

  test('two gates (their own tokenizer and model) write byte-identical reports', async () => {
    const content = enc(splitDocuments(g.validation).slice(0, 60).map((d) => d.replace('the', 'a')).join('\n\n'))
    const a = encodeReport(await gate(content, 'validation'))
    const b = encodeReport(await runGate({ dataset: PROPOSAL, role: 'validation', content, params: DEFAULT_GATE, references: g.references, tokenizer: g.tokenizer(), model: g.model(), seqLen: g.seqLen }))
    assert.deepEqual(b, a)
  })
})
