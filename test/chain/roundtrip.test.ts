/**
 * Round-trip properties for every chain encoder/decoder: headers of every block type, meta,
 * ledger and dataset documents, PoL certificates, param indexes. decode(encode(x)) = x, and the
 * encoding is canonical (encode(decode(bytes)) = bytes).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { sha256 } from '@noble/hashes/sha2.js'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { DAG_CBOR, DAG_PB, RAW, SHA2_256, compareCids, encodeCbor } from '../../src/codec/cbor.ts'
import { isRuleError } from '../../src/errors.ts'
import { decodeDataset, encodeDataset, type DatasetDocument } from '../../src/chain/dataset.ts'
import {
  BLOCK_TYPES, MAX_DEPENDENCIES, decodeHeader, encodeHeader, expertName, routerName, signingBytes, type ChainId, type Header
} from '../../src/chain/header.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { decodeLedgerDocument, encodeLedgerDocument, type LedgerDocument } from '../../src/chain/ledger.ts'
import { ROUTER_WEIGHTINGS, decodeMeta, encodeMeta, type MetaDocument } from '../../src/chain/meta.ts'
import { decodeParamIndex, encodeParamIndex, type ParamIndexDocument } from '../../src/chain/paramindex.ts'
import { decodeCertificate, encodeCertificate, type Certificate } from '../../src/chain/pol.ts'

const RUNS = { numRuns: 300 }
const keys = Array.from({ length: 8 }, (_, i) => publicKeyOf(sha256(new Uint8Array([i + 1]))))

const arbCid = (codec: number): fc.Arbitrary<CID> =>
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((d) => CID.createV1(codec, Digest.create(SHA2_256, d)))
const arbKey = fc.constantFrom(...keys)
const arbSafe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })

const arbHeader: fc.Arbitrary<Header> = fc
  .record({
    chain: fc.constantFrom<ChainId>('A', 'B', 'C', 'D'),
    pick: fc.nat(),
    index: fc.nat({ max: 1_000_000 }),
    prev: arbCid(DAG_CBOR),
    deps: fc.uniqueArray(arbCid(DAG_CBOR), { maxLength: 6, selector: (c) => c.toString() }),
    layer: fc.nat({ max: 99 }),
    expert: fc.nat({ max: 255 }),
    payloadCodec: fc.boolean(),
    payloadDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    payloadSize: fc.integer({ min: 1, max: 2 ** 20 }),
    timestamp: fc.integer({ min: 0, max: 2 ** 48 }),
    nonce: arbSafe,
    difficulty: fc.nat({ max: 256 }),
    miner: arbKey,
    sig: fc.uint8Array({ minLength: 64, maxLength: 64 }),
    supersede: fc.boolean(),
    pol: arbCid(DAG_CBOR)
  })
  .map((r) => {
    const types = BLOCK_TYPES[r.chain]
    const blockType = types[r.pick % types.length] as Header['block_type']
    const deps = r.chain === 'A' ? [] : [...r.deps].sort(compareCids)
    const isB = r.chain === 'B'
    const name = !isB ? null : blockType === 'embedding' ? 'embedding' : blockType === 'router' ? routerName(r.layer) : expertName(r.layer, r.expert)
    const codec = isB ? (r.payloadCodec ? DAG_PB : RAW) : DAG_CBOR
    return {
      version: 1,
      chain_id: r.chain,
      index: r.index,
      prev: isB || r.index === 0 ? null : r.prev,
      depends_on: deps,
      block_type: blockType,
      expert_name: name,
      layer_id: !isB || blockType === 'embedding' ? null : r.layer,
      payload: CID.createV1(codec, Digest.create(SHA2_256, r.payloadDigest)),
      payload_size: r.payloadSize,
      timestamp: r.timestamp,
      nonce: r.nonce,
      difficulty: r.difficulty,
      miner_pub: r.miner,
      payload_sig: r.sig,
      supersedes: isB && r.supersede && deps.length > 0 ? (deps[r.pick % deps.length] as CID) : null,
      pol: r.chain === 'C' && blockType === 'reward' ? r.pol : null
    } as Header
  })

function sameEncoding(a: Uint8Array, b: Uint8Array): void {
  assert.equal(Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex'))
}

describe('headers', () => {
  test('decode(encode(h)) = h for headers of every chain and block type', () => {
    const seen = new Set<string>()
    fc.assert(
      fc.property(arbHeader, (h) => {
        seen.add(`${h.chain_id}:${h.block_type}`)
        const bytes = encodeHeader(h)
        const back = decodeHeader(bytes)
        sameEncoding(encodeHeader(back), bytes)
        for (const key of Object.keys(h) as (keyof Header)[]) {
          const [x, y] = [h[key], back[key]]
          if (x instanceof CID || y instanceof CID) assert.ok(CID.asCID(y)?.equals(x), key)
          else assert.deepEqual(y, x, key)
        }
      }),
      RUNS
    )
    assert.equal(seen.size, 8, `block types covered: ${[...seen].join(' ')}`)
  })

  test('signing bytes ignore nonce and payload_sig, and change with every other field', () => {
    fc.assert(
      fc.property(arbHeader, arbSafe, fc.uint8Array({ minLength: 64, maxLength: 64 }), (h, nonce, sig) => {
        sameEncoding(signingBytes(h), signingBytes({ ...h, nonce, payload_sig: sig } as Header))
        assert.notDeepEqual(signingBytes(h), signingBytes({ ...h, timestamp: h.timestamp + 1 }))
      }),
      { numRuns: 100 }
    )
  })

  test('too many dependencies are refused', () => {
    const h = fc.sample(arbHeader.filter((x) => x.chain_id === 'B'), 1)[0] as Header
    const deps = fc.sample(arbCid(DAG_CBOR), MAX_DEPENDENCIES + 1).sort(compareCids)
    assert.throws(() => decodeHeader(encodeHeader({ ...h, depends_on: deps, supersedes: null })), { name: 'RuleError', code: 'E_SCHEMA' })
  })
})

const arbMeta: fc.Arbitrary<MetaDocument> = fc
  .record({
    heads: fc.integer({ min: 1, max: 16 }),
    group: fc.integer({ min: 1, max: 4 }),
    headDim: fc.integer({ min: 1, max: 64 }).map((x) => 2 * x),
    dim: fc.integer({ min: 1, max: 4096 }),
    layers: fc.integer({ min: 1, max: 64 }),
    experts: fc.integer({ min: 1, max: 64 }),
    k: fc.nat(),
    weighting: fc.constantFrom(...ROUTER_WEIGHTINGS),
    shared: fc.nat({ max: 512 }),
    gate: fc.boolean(),
    qk: fc.boolean(),
    tie: fc.boolean(),
    eps: fc.double({ min: 1e-8, max: 0.1, noNaN: true }),
    theta: fc.double({ min: 2, max: 1e7, noNaN: true }),
    tokenizer: fc.option(arbCid(RAW)),
    pow: fc.tuple(fc.nat({ max: 40 }), fc.nat({ max: 40 }), fc.nat({ max: 40 }), fc.nat({ max: 40 })),
    delta: fc.double({ min: 0, max: 0.5, noNaN: true }),
    validators: fc.uniqueArray(arbKey, { minLength: 1, maxLength: 8 })
  })
  .map((r) => ({
    kind: 'blyan/meta',
    version: 1,
    network: 'net-1',
    architecture: {
      family: 'llama_moe',
      dim: r.dim,
      n_layers: r.layers,
      n_heads: r.heads * r.group,
      n_kv_heads: r.heads,
      head_dim: r.headDim,
      vocab_size: 512,
      max_seq_len: 256,
      expert_hidden_dim: 64,
      n_experts: r.experts,
      top_k: 1 + (r.k % r.experts),
      router_weighting: r.weighting,
      shared_expert_hidden_dim: r.shared,
      shared_expert_gate: r.gate && r.shared > 0,
      qk_norm: r.qk,
      attention_bias: r.tie,
      tie_embeddings: r.tie,
      norm_eps: r.eps,
      rope_theta: r.theta
    },
    tokenizer: r.tokenizer === null ? null : { format: 'llama2c', payload: r.tokenizer, size: 6000, bos_id: 1, eos_id: 2 },
    pow: { A: r.pow[0], B: r.pow[1], C: r.pow[2], D: r.pow[3] },
    pol: { delta: r.delta, eval_sequences: 16, seq_len: 64 },
    reward: { base: 1000 },
    validators: [...r.validators].sort((a, b) => Buffer.compare(a, b))
  }) as MetaDocument)

describe('documents', () => {
  test('meta documents', () => {
    fc.assert(fc.property(arbMeta, (m) => {
      const bytes = encodeMeta(m)
      const back = decodeMeta(bytes)
      sameEncoding(encodeMeta(back), bytes)
      assert.deepEqual(back.architecture, m.architecture)
    }), RUNS)
  })

  test('ledger documents', () => {
    const arb = fc.record({ reward: fc.boolean(), to: arbKey, amount: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), memo: fc.string({ maxLength: 256 }) })
    fc.assert(fc.property(arb, (r) => {
      const doc: LedgerDocument = r.reward
        ? { kind: 'blyan/reward', version: 1, to: r.to, amount: r.amount }
        : { kind: 'blyan/transfer', version: 1, to: r.to, amount: r.amount, memo: r.memo }
      const bytes = encodeLedgerDocument(doc)
      const back = decodeLedgerDocument(bytes, r.reward ? 'reward' : 'transfer')
      assert.deepEqual(back, doc)
      sameEncoding(encodeLedgerDocument(back), bytes)
    }), RUNS)
  })

  test('dataset documents', () => {
    const arb = fc.record({
      name: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,30}$/),
      split: fc.constantFrom('train', 'validation' as const),
      content: arbCid(DAG_PB),
      size: fc.integer({ min: 1, max: 2 ** 40 }),
      description: fc.string({ maxLength: 200 }),
      record: fc.option(fc.tuple(arbCid(DAG_PB), fc.integer({ min: 1, max: 2 ** 30 })), { nil: undefined })
    })
    fc.assert(fc.property(arb, (r) => {
      const doc: DatasetDocument = {
        kind: 'blyan/dataset', version: 1, name: r.name, license: 'CC-BY-4.0', split: r.split, format: 'text/plain; blank-line-separated', content: r.content, content_size: r.size, description: r.description,
        ...(r.record === undefined ? {} : { record: r.record[0], record_size: r.record[1] })
      }
      const bytes = encodeDataset(doc)
      sameEncoding(encodeDataset(decodeDataset(bytes)), bytes)
      assert.equal(decodeDataset(bytes).name, r.name)
      assert.equal(decodeDataset(bytes).record?.toString(), r.record?.[0].toString())
    }), RUNS)
  })

  test('dataset documents: a record needs its size, and both must be sound', () => {
    const base = { kind: 'blyan/dataset', version: 1, name: 'd', license: 'MIT', split: 'train', format: 'text/plain; blank-line-separated', content: fc.sample(arbCid(DAG_PB), 1)[0], content_size: 5, description: '' }
    const record = fc.sample(arbCid(DAG_PB), 1)[0]
    const refused = (doc: object, field: RegExp): void => assert.throws(() => decodeDataset(encodeCbor(doc)), (e: unknown) => isRuleError(e) && e.code === 'E_DATASET' && field.test(e.field ?? ''))
    refused({ ...base, record }, /record_size/)
    refused({ ...base, record_size: 3 }, /record_size/)
    refused({ ...base, record, record_size: 0 }, /record_size/)
    refused({ ...base, record: fc.sample(arbCid(DAG_CBOR), 1)[0], record_size: 3 }, /record/)
  })

  test('PoL certificates', () => {
    const arb = fc.record({
      links: fc.tuple(arbCid(DAG_CBOR), arbCid(DAG_CBOR), arbCid(DAG_CBOR), arbCid(DAG_CBOR)),
      start: fc.nat(),
      count: fc.integer({ min: 1, max: 4096 }),
      before: fc.double({ min: 0.001, max: 20, noNaN: true }),
      after: fc.double({ min: 0, max: 20, noNaN: true }),
      signers: fc.uniqueArray(arbKey, { maxLength: 8 }),
      sig: fc.uint8Array({ minLength: 64, maxLength: 64 })
    })
    fc.assert(fc.property(arb, (r) => {
      const cert: Certificate = {
        kind: 'blyan/pol-certificate', version: 1, candidate: r.links[0], base: r.links[1], meta: r.links[2],
        slice: { dataset: r.links[3], start: r.start, count: r.count }, loss_before: r.before, loss_after: r.after, record: r.start % 2 === 0 ? null : r.links[0], trained_on: r.start % 2 === 0 ? null : r.links[3],
        signatures: [...r.signers].sort((a, b) => Buffer.compare(a, b)).map((validator) => ({ validator, signature: r.sig }))
      }
      const bytes = encodeCertificate(cert)
      const back = decodeCertificate(bytes)
      sameEncoding(encodeCertificate(back), bytes)
      assert.equal(back.loss_after, r.after)
      assert.equal(back.signatures.length, r.signers.length)
    }), RUNS)
  })

  test('param indexes', () => {
    const arb = fc.dictionary(fc.tuple(fc.nat({ max: 40 }), fc.nat({ max: 64 })).map(([l, e]) => expertName(l, e)), arbCid(DAG_CBOR), { maxKeys: 30 })
    fc.assert(fc.property(arb, (entries) => {
      const doc: ParamIndexDocument = { kind: 'blyan/param-index', version: 1, entries }
      const { bytes } = encodeParamIndex(doc)
      const back = decodeParamIndex(bytes)
      sameEncoding(encodeParamIndex(back).bytes, bytes)
      assert.deepEqual(Object.keys(back.entries).sort(), Object.keys(entries).sort())
    }), RUNS)
  })
})
