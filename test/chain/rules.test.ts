/**
 * Chain rules beyond single header fields: DAG order and cycles, chain A succession and fork
 * choice, chain B shapes and versions, PoL certificates and quorum, the ledger, datasets, and the
 * param index. Every rejection is asserted by its code.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { describe, test } from 'node:test'
import { documentPayload, type HeaderDraft } from '../../src/chain/build.ts'
import { DAG_CBOR, cidOf, compareCids } from '../../src/codec/cbor.ts'
import { orderBlocks, topologicalOrder } from '../../src/chain/dag.ts'
import { encodeDataset, type DatasetDocument } from '../../src/chain/dataset.ts'
import { bestTip, compareTips } from '../../src/chain/forkchoice.ts'
import { expertName, headerCid, routerName } from '../../src/chain/header.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { encodeLedgerDocument } from '../../src/chain/ledger.ts'
import { MemoryChain } from '../../src/chain/memory.ts'
import { encodeMeta, quorumSize, type MetaDocument } from '../../src/chain/meta.ts'
import { decodeParamIndex, encodeParamIndex, paramIndexDocument } from '../../src/chain/paramindex.ts'
import { assembleCertificate, decodeCertificate, encodeCertificate, signCertificate, sliceStart } from '../../src/chain/pol.ts'
import { validateBlock, type BlockInput } from '../../src/chain/validate.ts'
import { buildPayload } from '../../src/tensor/payload.ts'
import { importPayload } from '../../src/tensor/tiles.ts'
import { isRuleError } from '../../src/errors.ts'
import { assertRule } from '../fixtures/assert-rule.ts'
import { Devnet, NOW, paramPayload, reseal, type Built } from '../fixtures/devnet.ts'

const validate = (d: Devnet, input: BlockInput): Promise<unknown> => validateBlock(input, d.chain, { now: NOW })

describe('the standard devnet', () => {
  test('every chain and block type is accepted, balances and param index follow', async () => {
    const d = await Devnet.standard()
    assert.equal(d.chain.size, 16)
    const head = d.chain.head('C')
    assert.ok(head !== undefined && head.cid.equals(d.cid('transfer')))
    const earned = 1080 // floor(1000 * (1 + (2.5 - 2.3) / 2.5))
    assert.equal(d.chain.balance(publicKeyOf(d.miner), head.cid), earned - 100)
    assert.equal(d.chain.balance(publicKeyOf(d.alice), head.cid), 100)
    assert.equal(d.chain.balance(publicKeyOf(d.miner), d.cid('reward')), earned)
    const index = d.chain.paramIndex()
    assert.equal(index.size, 7)
    assert.ok(index.get(expertName(0, 0))?.cid.equals(d.cid('expert0.0v1')))
    assert.equal(index.get(expertName(0, 0))?.expertVersion, 1)
    assert.ok(index.get(expertName(1, 1))?.cid.equals(d.cid('expert1.1')))
  })

  test('a block submitted twice is accepted the same (idempotent), and the store does not grow', async () => {
    const d = await Devnet.standard()
    await d.submit(d.built.get('embedding') as Built)
    assert.equal(d.chain.size, 16)
  })
})

describe('DAG order', () => {
  test('a cycle -> E_CYCLE; an unknown dependency -> E_UNKNOWN_DEP; a valid graph is ordered', async () => {
    await assertRule(() => topologicalOrder(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', []]])), 'E_CYCLE', 'a')
    await assertRule(() => topologicalOrder(new Map([['a', ['a']]])), 'E_CYCLE', 'a')
    await assertRule(() => topologicalOrder(new Map([['a', ['z']]])), 'E_UNKNOWN_DEP', 'a.depends_on[0]')
    assert.deepEqual(topologicalOrder(new Map([['c', ['a', 'b']], ['b', ['a']], ['a', []], ['z', ['y']]]), (id) => id === 'y'), ['a', 'b', 'c', 'z'])
  })

  test('shuffled blocks are ordered and all accepted by a fresh node', async () => {
    const d = await Devnet.standard()
    const blocks = [...d.built.values()].map((b) => ({ cid: b.sealed.cid, header: b.sealed.header, input: b.input })).reverse()
    blocks.push(blocks.splice(3, 1)[0] as (typeof blocks)[number])
    const ordered = orderBlocks(blocks, () => false)
    const fresh = new MemoryChain()
    // A certificate's beacon is not a header link: a new version judged before it waits (and so do
    // blocks on it), as the page's sync does; each pass must make progress.
    for (let waiting = ordered; waiting.length > 0;) {
      const next: typeof ordered = []
      for (const b of waiting) {
        await fresh.submit(b.input, { now: NOW }).catch((e: unknown) => {
          assert.ok(isRuleError(e, 'E_CERT') || isRuleError(e, 'E_UNKNOWN_DEP'), String(e))
          next.push(b)
        })
      }
      assert.ok(next.length < waiting.length, `no progress: ${next.length} blocks wait`)
      waiting = next
    }
    assert.equal(fresh.size, 16)
    assert.ok(fresh.paramIndex().get(expertName(0, 0))?.cid.equals(d.cid('expert0.0v1')))
  })

  test('a block out of order is an orphan (E_UNKNOWN_DEP, not remembered); a block on a rejected one -> E_INVALID_DEP', async () => {
    const d = new Devnet()
    const g = d.genesis()
    const emb = await d.param('embedding', 'embedding', { seed: 1 })
    await assertRule(() => d.submit(emb), 'E_UNKNOWN_DEP', 'depends_on[0]')
    assert.equal(d.chain.isRejected(emb.sealed.cid), false)
    await d.submit(g)
    await d.submit(emb)
    // A router carrying an expert's tensors is rejected by shape; an expert depending on it is then invalid.
    const bad = await d.param('router0', routerName(0), { seed: 2 })
    const wrongPayload = paramPayload(expertName(0, 0), d.meta.architecture, 3)
    const file = await importPayload(wrongPayload)
    const badRouter = reseal(bad, { payload: file.cid, payload_size: wrongPayload.length }, d.validators[0] as Uint8Array)
    await assertRule(() => d.submit({ ...badRouter, input: { ...badRouter.input, payload: wrongPayload } }), 'E_SHAPE')
    assert.equal(d.chain.isRejected(badRouter.sealed.cid), true)
    const onBad = reseal(await d.param('e', expertName(0, 1), { seed: 4 }), { index: 1, depends_on: [d.cid('genesis'), badRouter.sealed.cid].sort(compareCids) }, d.validators[0] as Uint8Array)
    await assertRule(() => d.submit(onBad), 'E_INVALID_DEP', /^depends_on\[\d\]$/)
  })
})

describe('chain B payloads', () => {
  test('missing, extra, misshapen or int8 vector tensors -> E_SHAPE; bytes that do not import to the CID -> E_PAYLOAD', async () => {
    const d = await Devnet.standard()
    const arch = d.meta.architecture
    const base = d.built.get('expert1.1') as Built
    const variants: { what: string; tensors: { name: string; shape: number[]; dtype: 'fp32' | 'int8' }[] }[] = [
      { what: 'missing w3', tensors: [{ name: 'w1', shape: [8, 8], dtype: 'int8' }, { name: 'w2', shape: [8, 8], dtype: 'int8' }] },
      { what: 'extra bias', tensors: [{ name: 'w1', shape: [8, 8], dtype: 'int8' }, { name: 'w2', shape: [8, 8], dtype: 'int8' }, { name: 'w3', shape: [8, 8], dtype: 'int8' }, { name: 'b1', shape: [8], dtype: 'fp32' }] },
      { what: 'transposed w2', tensors: [{ name: 'w1', shape: [8, 8], dtype: 'int8' }, { name: 'w2', shape: [4, 16], dtype: 'int8' }, { name: 'w3', shape: [8, 8], dtype: 'int8' }] }
    ]
    assert.equal(arch.expert_hidden_dim, 8)
    for (const v of variants) {
      const payload = buildPayload(v.tensors.map((t) => ({ ...t, values: new Float32Array(t.shape.reduce((a, b) => a * b, 1)).fill(0.25) })))
      const file = await importPayload(payload)
      const bad = reseal(base, { payload: file.cid, payload_size: payload.length }, d.validators[0] as Uint8Array)
      await assertRule(() => validate(d, { ...bad.input, payload }), 'E_SHAPE', /^payload\./)
    }
    // A norm vector quantized to int8 (one scale for the whole vector) is refused.
    const router = d.built.get('router1') as Built
    const tensors = paramPayload(routerName(1), arch, 5)
    const { parsePayload } = await import('../../src/tensor/payload.ts')
    const { dequantize } = await import('../../src/tensor/tensorblock.ts')
    const parsed = parsePayload(tensors)
    const int8Norm = buildPayload(parsed.index.tensors.map((t) => ({
      name: t.name, shape: t.shape, dtype: t.name === 'attention_norm' ? 'int8' : t.dtype, values: dequantize(parsed.tensors.get(t.name)!)
    })))
    const file = await importPayload(int8Norm)
    const badRouter = reseal(router, { payload: file.cid, payload_size: int8Norm.length }, d.validators[0] as Uint8Array)
    await assertRule(() => validate(d, { ...badRouter.input, payload: int8Norm }), 'E_SHAPE', 'payload.attention_norm')
    const other = paramPayload(expertName(1, 1), arch, 77)
    await assertRule(() => validate(d, { ...base.input, payload: other }), 'E_PAYLOAD', 'payload')
  })
})

describe('chain A', () => {
  async function metaBlock(d: Devnet, doc: MetaDocument, signer: Uint8Array, prev = 'beacon', index = 2): Promise<Built> {
    return d.metaBlock(`meta${index}-${d.tick()}`, prev, doc, signer, index)
  }

  test('a validator may publish new rules; others -> E_UNAUTHORIZED; the architecture is fixed -> E_ARCH_CHANGE', async () => {
    const d = await Devnet.standard()
    const next = { ...d.meta, pol: { ...d.meta.pol, delta: 0.02 } }
    await d.submit(await metaBlock(d, next, d.validators[1] as Uint8Array))
    await assertRule(async () => d.submit(await metaBlock(d, next, d.miner)), 'E_UNAUTHORIZED', 'miner_pub')
    await assertRule(async () => d.submit(await metaBlock(d, { ...next, architecture: { ...d.meta.architecture, top_k: 2 } }, d.validators[1] as Uint8Array)), 'E_ARCH_CHANGE', 'payload.architecture.top_k')
    await assertRule(async () => d.submit(await metaBlock(d, { ...next, network: 'other' }, d.validators[1] as Uint8Array)), 'E_ARCH_CHANGE', 'payload.network')
  })

  test('a genesis must be signed by one of its own validators', async () => {
    const d = new Devnet()
    const g = d.genesis()
    await assertRule(() => d.submit(reseal(g, {}, d.miner)), 'E_UNAUTHORIZED', 'miner_pub')
  })

  test('meta documents: schema, architecture and validator set are checked', async () => {
    const d = new Devnet()
    const cases: [MetaDocument, string, string][] = [
      [{ ...d.meta, validators: [...d.meta.validators].reverse() }, 'E_VALIDATORS', 'validators[1]'],
      [{ ...d.meta, validators: [] }, 'E_VALIDATORS', 'validators'],
      [{ ...d.meta, architecture: { ...d.meta.architecture, n_kv_heads: 3 } }, 'E_ARCH', 'architecture.n_kv_heads'],
      [{ ...d.meta, architecture: { ...d.meta.architecture, top_k: 3 } }, 'E_ARCH', 'architecture.top_k'],
      [{ ...d.meta, pol: { ...d.meta.pol, delta: 1 } }, 'E_META', 'pol.delta'],
      [{ ...d.meta, kind: 'x' } as unknown as MetaDocument, 'E_META', 'kind']
    ]
    for (const [doc, code, field] of cases) {
      const p = documentPayload(encodeMeta(doc))
      const g = d.make('g', { ...d.base('A', 'meta'), payload: p.cid, payload_size: p.size } as HeaderDraft, p.bytes, d.validators[0] as Uint8Array)
      await assertRule(() => validate(d, g.input), code as never, field)
    }
  })

  test('fork choice: most cumulative work wins, ties go to the lowest CID', async () => {
    const d = await Devnet.standard()
    const a = await metaBlock(d, d.meta, d.validators[1] as Uint8Array)
    const b = await metaBlock(d, d.meta, d.validators[2] as Uint8Array)
    await d.submit(a)
    await d.submit(b)
    const tips = d.chain.tips('A')
    assert.equal(tips.length, 2)
    const first = Buffer.compare(a.sealed.cid.bytes, b.sealed.cid.bytes) < 0 ? a : b
    assert.equal(Math.sign(compareTips(d.chain.get(a.sealed.cid)!, d.chain.get(b.sealed.cid)!)), Buffer.compare(a.sealed.cid.bytes, b.sealed.cid.bytes))
    assert.ok(d.chain.head('A')?.cid.equals(first.sealed.cid))
    // Extending the losing tip gives it more work: it becomes the head.
    const loser = d.chain.head('A')?.cid.equals(a.sealed.cid) === true ? b : a
    const loserName = [...d.built].find(([, v]) => v === loser)?.[0] as string
    const c = await metaBlock(d, d.meta, d.validators[0] as Uint8Array, loserName, 3)
    await d.submit(c)
    assert.ok(d.chain.head('A')?.cid.equals(c.sealed.cid))
    assert.equal(bestTip([]), undefined)
  })

  test('a heavier block outweighs a longer chain of light ones', () => {
    const x = { cid: cidOf(new Uint8Array([1]), DAG_CBOR), work: 3n * 16n }
    const y = { cid: cidOf(new Uint8Array([2]), DAG_CBOR), work: 16n + 1024n }
    assert.equal(bestTip([x, y]), y)
  })
})

describe('PoL certificates', () => {
  test('quorum is more than two thirds', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 100].map(quorumSize), [1, 2, 3, 3, 4, 5, 5, 67])
  })

  test('a new version needs a certificate with a quorum of valid validator signatures over its own CID', async () => {
    const d = await Devnet.standard()
    const make = async (certify: Parameters<Devnet['newVersion']>[4]) => d.newVersion(`v-${d.tick()}`, 'expert1.0', expertName(1, 0), 5, certify)
    const cand = await make((b) => d.certificate(b))
    await validate(d, cand.input)
    const noCert = { header: cand.input.header, payload: cand.input.payload }
    await assertRule(() => validate(d, noCert), 'E_POL', 'certificate')
    await assertRule(async () => validate(d, (await make((b) => d.certificate(b, 2))).input), 'E_QUORUM', 'certificate.signatures')
    await assertRule(async () => validate(d, (await make((b) => d.certificate({ ...b, loss_after: 2.49 }))).input), 'E_POL_THRESHOLD', 'certificate.loss_after')
    await assertRule(async () => validate(d, (await make((b) => d.certificate({ ...b, candidate: d.cid('expert1.1') }))).input), 'E_CERT', 'certificate.candidate')
    await assertRule(async () => validate(d, (await make((b) => d.certificate({ ...b, base: d.cid('expert1.1') }))).input), 'E_CERT', 'certificate.base')
    await assertRule(async () => validate(d, (await make((b) => d.certificate({ ...b, slice: { ...b.slice, dataset: d.cid('train') } }))).input), 'E_POOL', 'certificate.slice.dataset')
    // The slice is the beacon's: the chain A block right after the candidate's rules, start and count derived.
    await assertRule(async () => validate(d, (await make((b) => d.certificate({ ...b, meta: d.cid('genesis') }))).input), 'E_CERT', 'certificate.meta')
    await assertRule(async () => validate(d, (await make((b) => d.certificate({ ...b, slice: { ...b.slice, start: b.slice.start + 1 } }))).input), 'E_CERT', 'certificate.slice.start')
    await assertRule(async () => validate(d, (await make((b) => d.certificate({ ...b, slice: { ...b.slice, count: b.slice.count + 1 } }))).input), 'E_CERT', 'certificate.slice.count')
    const outsider = (b: Parameters<typeof signCertificate>[0]) =>
      encodeCertificate(assembleCertificate(b, [...d.validators.slice(0, 2), d.miner].map((k) => signCertificate(b, k))))
    await assertRule(async () => validate(d, (await make(outsider)).input), 'E_CERT_SIGNER', /certificate\.signatures\[\d\]\.validator/)
    const forged = (b: Parameters<typeof signCertificate>[0]) => {
      const sigs = d.validators.slice(0, 3).map((k) => signCertificate(b, k))
      const s = sigs[1]!.signature.slice()
      s[5] = (s[5] as number) ^ 0x40
      return encodeCertificate(assembleCertificate(b, [sigs[0]!, { ...sigs[1]!, signature: s }, sigs[2]!]))
    }
    await assertRule(async () => validate(d, (await make(forged)).input), 'E_CERT_SIG', 'certificate.signatures[1].signature')
    const repeated = (b: Parameters<typeof signCertificate>[0]) => {
      const s = signCertificate(b, d.validators[0] as Uint8Array)
      return encodeCertificate({ ...assembleCertificate(b, [s]), signatures: [s, s, s] })
    }
    await assertRule(async () => validate(d, (await make(repeated)).input), 'E_CERT_SIGNER', 'certificate.signatures[1]')
  })

  test('sliceStart: the first 6 bytes of sha256(candidate CID || beacon CID), big-endian', () => {
    const a = CID.parse('bafyreiapov2bbmph5ja5p4bonkhfg5u77nhzjbwapazclptcpbo6r33oi4')
    const b = CID.parse('bafyreiabugp43febulr4b2vn67bkdu5bf6zskpp6f2k6ihvy3ntqays2ti')
    const digest = createHash('sha256').update(a.bytes).update(b.bytes).digest()
    assert.equal(sliceStart(a, b), digest.readUIntBE(0, 6))
    assert.notEqual(sliceStart(a, b), sliceStart(b, a))
    assert.ok(Number.isSafeInteger(sliceStart(a, b)))
  })

  test('certificates round-trip and reject malformed bytes with E_CERT / E_DECODE', async () => {
    const d = await Devnet.standard()
    const bytes = (d.built.get('expert0.0v1') as Built).input.certificate as Uint8Array
    const cert = decodeCertificate(bytes)
    assert.deepEqual(encodeCertificate(cert), bytes)
    await assertRule(() => decodeCertificate(bytes.subarray(0, bytes.length - 3)), 'E_DECODE')
    await assertRule(() => decodeCertificate(encodeLedgerDocument({ kind: 'blyan/reward', version: 1, to: publicKeyOf(d.miner), amount: 1 })), 'E_CERT')
  })

  test('competing versions of one base: the param index prefers the lower certified loss', async () => {
    const d = await Devnet.standard()
    const a = await d.newVersion('a', 'expert1.0', expertName(1, 0), 6, (b) => d.certificate({ ...b, loss_after: 2.4 }))
    const b = await d.newVersion('b', 'expert1.0', expertName(1, 0), 7, (body) => d.certificate({ ...body, loss_after: 2.2 }))
    await d.submit(a)
    await d.submit(b)
    assert.ok(d.chain.paramIndex().get(expertName(1, 0))?.cid.equals(b.sealed.cid))
    // A version on top of the worse one is newer, so it wins.
    const c = await d.newVersion('c', 'a', expertName(1, 0), 8)
    await d.submit(c)
    assert.equal(d.chain.paramIndex().get(expertName(1, 0))?.expertVersion, 2)
    const doc = paramIndexDocument(d.chain.paramIndex())
    const { bytes, cid } = encodeParamIndex(doc)
    assert.deepEqual(decodeParamIndex(bytes), doc)
    assert.ok(cid.equals(cidOf(bytes, DAG_CBOR)))
    assert.ok(doc.entries[expertName(1, 0)]?.equals(c.sealed.cid))
  })
})

describe('chain C ledger', () => {
  test('no negative balance -> E_BALANCE; a zero amount -> E_AMOUNT', async () => {
    const d = await Devnet.standard()
    await assertRule(() => validate(d, d.transfer('t1', d.miner, d.alice, 981, 'transfer').input), 'E_BALANCE', 'payload.amount')
    await validate(d, d.transfer('t2', d.miner, d.alice, 980, 'transfer').input)
    await assertRule(() => validate(d, d.transfer('t3', d.alice, d.miner, 101, 'transfer').input), 'E_BALANCE')
    await assertRule(() => validate(d, d.transfer('t4', d.alice, d.miner, 0, 'transfer').input), 'E_AMOUNT', 'payload.amount')
  })

  test('a reward mints once per candidate per branch, to its miner, exactly the formula -> E_REWARD', async () => {
    const d = await Devnet.standard()
    const cert = (d.built.get('expert0.0v1') as Built).input.certificate as Uint8Array
    await assertRule(() => validate(d, d.reward('again', 'expert0.0v1', cert, 'transfer').input), 'E_REWARD', 'pol')
    // On another branch (a fork from the start of chain C) the same reward is valid.
    await validate(d, d.reward('fork', 'expert0.0v1', cert, null).input)
    await assertRule(() => validate(d, d.reward('more', 'expert0.0v1', cert, null, 5000).input), 'E_REWARD', 'payload.amount')
    const toAlice = documentPayload(encodeLedgerDocument({ kind: 'blyan/reward', version: 1, to: publicKeyOf(d.alice), amount: 1080 }))
    const r = d.reward('alice', 'expert0.0v1', cert, null)
    const bad = reseal(r, { payload: toAlice.cid, payload_size: toAlice.size }, d.validators[0] as Uint8Array)
    await assertRule(() => validate(d, { ...bad.input, payload: toAlice.bytes }), 'E_REWARD', 'payload.to')
    // An initial version has no certificate, so it cannot be rewarded.
    await assertRule(() => validate(d, d.reward('initial', 'expert1.1', cert, null).input), 'E_REWARD', 'pol')
  })
})

describe('chain D datasets', () => {
  test('a malformed dataset document -> E_DATASET', async () => {
    const d = await Devnet.standard()
    const good = d.built.get('train') as Built
    const docs: [Partial<DatasetDocument>, string][] = [
      [{ split: 'test' as never }, 'payload.split'],
      [{ content_size: 0 }, 'payload.content_size'],
      [{ name: 'Has Spaces' }, 'payload.name'],
      [{ content: d.cid('genesis') }, 'payload.content']
    ]
    for (const [change, field] of docs) {
      const doc = documentPayload(encodeDataset({
        kind: 'blyan/dataset', version: 1, name: 'x', license: 'MIT', split: 'train', format: 'text/plain; blank-line-separated',
        content: cidOf(new Uint8Array([1]), 0x55), content_size: 1, description: '', ...change
      }))
      const bad = reseal(good, { payload: doc.cid, payload_size: doc.size, prev: d.cid('validation'), index: 2, timestamp: d.tick() }, d.validators[0] as Uint8Array)
      await assertRule(() => validate(d, { ...bad.input, payload: doc.bytes }), 'E_DATASET', field)
    }
    assert.ok(headerCid(good.sealed.bytes).equals(good.sealed.cid))
  })
})

describe('light clients (chain B payloads deferred)', () => {
  test('every devnet block is accepted with chain B payloads left out; header, signature and certificate rules still run', async () => {
    const d = await Devnet.standard()
    const light = new MemoryChain()
    for (const built of d.built.values()) {
      const input = built.sealed.header.chain_id === 'B' ? { ...built.input, payload: null } : built.input
      const block = await light.submit(input, { now: NOW })
      if (block.header.chain_id === 'B') assert.equal(block.tensors, null, 'no tensor index without the payload')
    }
    assert.equal(light.size, d.chain.size)
    assert.ok(light.paramIndex().get(expertName(0, 0))?.cid.equals(d.cid('expert0.0v1')))
    const v1 = d.built.get('expert0.0v1') as Built
    await assertRule(() => validateBlock({ header: v1.input.header, payload: null }, light, { now: NOW }), 'E_POL', 'certificate')
    const forged = reseal(d.built.get('expert1.1') as Built, {}, d.miner)
    await assertRule(() => validateBlock({ ...forged.input, payload: null }, light, { now: NOW }), 'E_UNAUTHORIZED')
    await assertRule(() => validateBlock({ ...(d.built.get('transfer') as Built).input, payload: null }, light, { now: NOW }), 'E_PAYLOAD', 'payload')
  })
})
