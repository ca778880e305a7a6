/**
 * Mutation fuzzer for headers and chain documents.
 *
 * Every mutated input is either accepted or rejected with a RuleError: never another exception,
 * never a hang. 20,000 mutated headers per run by default (BLYAN_FUZZ_SCALE multiplies), plus
 * mutated meta, ledger, dataset and certificate documents. A failure prints the seed; replay with
 * BLYAN_FUZZ_SEED=<seed>.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { DAG_CBOR, DAG_PB, RAW, SHA2_256 } from '../../src/codec/cbor.ts'
import { decodeDataset } from '../../src/chain/dataset.ts'
import { HEADER_KEYS, type Header } from '../../src/chain/header.ts'
import { decodeLedgerDocument } from '../../src/chain/ledger.ts'
import { decodeMeta } from '../../src/chain/meta.ts'
import { decodeCertificate } from '../../src/chain/pol.ts'
import { validateBlock, type BlockInput } from '../../src/chain/validate.ts'
import { RuleError } from '../../src/errors.ts'
import { Devnet, NOW, reseal, type Built } from '../fixtures/devnet.ts'
import { createRandom, seedFrom, type Random } from '../fixtures/random.ts'

const SCALE = Number(process.env['BLYAN_FUZZ_SCALE'] ?? '1')
const SEED = seedFrom(process.env['BLYAN_FUZZ_SEED'])
const HEADERS = Math.round(20_000 * SCALE)
const DOCUMENTS = Math.round(5_000 * SCALE)

const d = await Devnet.standard()
const blocks = [...d.built.values()]

/** Values of every DAG-CBOR kind, with boundaries, to splice into maps. */
function randomValue(r: Random): unknown {
  switch (r.int(14)) {
    case 0: return r.pick([0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32, Number.MAX_SAFE_INTEGER])
    case 1: return -1 - r.int(1000)
    case 2: return r.pick([1.5, -0.5, 1e300, 5e-324])
    case 3: return r.pick(['', 'A', 'B', 'E', 'meta', 'expert', 'layer0.expert0', 'embedding', 'x'.repeat(300)])
    case 4: return r.bytes(r.pick([0, 1, 32, 33, 64, 65]))
    case 5: return null
    case 6: return r.next() < 0.5
    case 7: return CID.createV1(r.pick([DAG_CBOR, DAG_PB, RAW, 0x0129]), Digest.create(SHA2_256, r.bytes(32)))
    case 8: return CID.createV1(DAG_CBOR, Digest.create(0x13, r.bytes(64)))
    case 9: return [randomValue(r), randomValue(r)]
    case 10: return { a: randomValue(r) }
    case 11: return 2n ** 64n - 1n
    case 12: return r.pick(blocks).sealed.cid
    default: return Array.from({ length: 70 }, () => r.pick(blocks).sealed.cid)
  }
}

/** A mutated copy of DAG-CBOR bytes: byte edits, or a structural edit of the decoded map. */
function mutateCbor(r: Random, bytes: Uint8Array, keys: readonly string[]): Uint8Array {
  const kind = r.int(10)
  if (kind < 5) {
    const out = new Uint8Array(bytes)
    switch (kind) {
      case 0: for (let i = 1 + r.int(4); i > 0; i--) { const at = r.int(out.length); out[at] = (out[at] as number) ^ (1 << r.int(8)) } return out
      case 1: for (let i = 1 + r.int(4); i > 0; i--) out[r.int(out.length)] = r.int(256); return out
      case 2: return out.subarray(0, r.int(out.length))
      case 3: { const at = r.int(out.length); return new Uint8Array([...out.subarray(0, at), ...r.bytes(1 + r.int(8)), ...out.subarray(at)]) }
      default: { const at = r.int(out.length); return new Uint8Array([...out.subarray(0, at), ...out.subarray(at + 1 + r.int(8))]) }
    }
  }
  const o = dagCbor.decode(bytes) as Record<string, unknown>
  const key = r.pick(keys)
  switch (kind) {
    case 5: delete o[key]; break
    case 6: o[r.pick(['extra', 'Version', key + '_'])] = randomValue(r); break
    default: o[key] = randomValue(r)
  }
  try {
    return dagCbor.encode(o)
  } catch {
    return bytes.subarray(1)
  }
}

async function expectTyped(run: () => unknown, what: string, input: Uint8Array, seed: number): Promise<'ok' | 'rule'> {
  try {
    await run()
    return 'ok'
  } catch (e) {
    if (e instanceof RuleError) return 'rule'
    assert.fail(`${what}: untyped ${String(e)}\nseed ${seed}; input ${Buffer.from(input).toString('hex')}`)
  }
}

test(`fuzz: ${HEADERS} mutated headers are accepted or rejected with a RuleError (seed ${SEED})`, { timeout: 600_000 }, async () => {
  const r = createRandom(SEED)
  const codes = new Map<string, number>()
  let ok = 0
  for (let i = 0; i < HEADERS; i++) {
    const original = r.pick(blocks)
    let input: BlockInput
    if (i % 50 === 0) {
      // A key-holding attacker: a semantic change, signed and mined, so the deep rules run.
      const key = r.pick(HEADER_KEYS.filter((k) => k !== 'miner_pub' && k !== 'payload_sig' && k !== 'nonce'))
      let built: Built
      try {
        // Mining needs a small numeric difficulty: anything else would search forever.
        const value = key === 'difficulty' ? r.int(7) : randomValue(r)
        built = reseal(original, { [key]: value } as Partial<Record<keyof Header, unknown>>, r.pick([...d.validators, d.miner]))
      } catch (e) {
        // Values the encoder itself refuses (a bigint key, for example) never reach a validator.
        if (e instanceof TypeError || (e instanceof Error && /encode|CID|Non-string|undefined|number/i.test(e.message))) continue
        throw e
      }
      input = built.input
    } else {
      input = { ...original.input, header: mutateCbor(r, original.sealed.bytes, HEADER_KEYS) }
    }
    try {
      await validateBlock(input, d.chain, { now: NOW })
      ok++
    } catch (e) {
      if (!(e instanceof RuleError)) assert.fail(`untyped ${String(e)}\nseed ${SEED}, iteration ${i}; header ${Buffer.from(input.header).toString('hex')}`)
      codes.set(e.code, (codes.get(e.code) ?? 0) + 1)
    }
  }
  const summary = [...codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c}:${n}`).join(' ')
  console.log(`# header fuzz: ${HEADERS} inputs, ${ok} valid (new nonce or harmless change), rejections ${summary}`)
  // The fuzzer must reach past decoding into the deep rules, or it proves little.
  for (const code of ['E_DECODE', 'E_SCHEMA', 'E_POW', 'E_SIG']) assert.ok((codes.get(code) ?? 0) > 0, `never hit ${code}: ${summary}`)
  assert.ok(codes.size >= 12, `only ${codes.size} distinct rules hit: ${summary}`)
})

test(`fuzz: ${DOCUMENTS} mutated documents of each kind decode or are rejected with a RuleError (seed ${SEED})`, { timeout: 600_000 }, async () => {
  const r = createRandom(SEED ^ 0x5eed)
  const doc = (name: string): Uint8Array => (d.built.get(name) as Built).input.payload
  const cert = (d.built.get('expert0.0v1') as Built).input.certificate as Uint8Array
  const kinds: [string, Uint8Array, (b: Uint8Array) => unknown][] = [
    ['meta', doc('genesis'), decodeMeta],
    ['transfer', doc('transfer'), (b) => decodeLedgerDocument(b, 'transfer')],
    ['reward', doc('reward'), (b) => decodeLedgerDocument(b, 'reward')],
    ['dataset', doc('train'), decodeDataset],
    ['certificate', cert, decodeCertificate]
  ]
  for (const [name, bytes, decode] of kinds) {
    const keys = Object.keys(dagCbor.decode(bytes) as object)
    let rules = 0
    for (let i = 0; i < DOCUMENTS; i++) {
      const mutated = mutateCbor(r, bytes, keys)
      if ((await expectTyped(() => decode(mutated), name, mutated, SEED)) === 'rule') rules++
    }
    assert.ok(rules > DOCUMENTS / 2, `${name}: only ${rules} of ${DOCUMENTS} mutations were rejected`)
  }
})
