/**
 * Each header field corrupted in turn is rejected with its own rule.
 *
 * Semantic corruptions are re-signed and re-mined (as a key-holding attacker would), so the rule
 * that fires is the one the corruption breaks, not E_SIG or E_POW. Type corruptions are written
 * straight into the DAG-CBOR map and must name the field.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import type { CID } from 'multiformats/cid'
import { DAG_CBOR, DAG_PB, cidOf, compareCids } from '../../src/codec/cbor.ts'
import { HEADER_KEYS, decodeHeader, encodeHeader, headerCid, type Header } from '../../src/chain/header.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { meetsDifficulty } from '../../src/chain/pow.ts'
import { MAX_FUTURE_MS, validateBlock, type BlockInput } from '../../src/chain/validate.ts'
import { RuleError, type RuleCode } from '../../src/errors.ts'
import { assertRule } from '../fixtures/assert-rule.ts'
import { Devnet, NOW, reseal, type Built } from '../fixtures/devnet.ts'

const d = await Devnet.standard()
const validator = d.validators[0] as Uint8Array
const unknown = (seed: string, codec = DAG_CBOR): CID => cidOf(new TextEncoder().encode(seed), codec)
const sorted = (...cids: CID[]): CID[] => cids.sort(compareCids)
const validate = (input: BlockInput): Promise<unknown> => validateBlock(input, d.chain, { now: NOW })
const block = (name: string): Built => d.built.get(name) as Built

interface Case {
  readonly field: keyof Header
  readonly what: string
  readonly target: string
  readonly change: Partial<Record<keyof Header, unknown>>
  readonly code: RuleCode
  readonly signer?: Uint8Array
}

const transfer = block('transfer').sealed.header
const cases: Case[] = [
  { field: 'version', what: 'version 2', target: 'transfer', change: { version: 2 }, code: 'E_VERSION' },
  { field: 'chain_id', what: 'unknown chain', target: 'transfer', change: { chain_id: 'E' }, code: 'E_CHAIN_ID' },
  { field: 'chain_id', what: 'a transfer moved to chain D', target: 'transfer', change: { chain_id: 'D' }, code: 'E_BLOCK_TYPE' },
  { field: 'index', what: 'skips a height', target: 'transfer', change: { index: 7 }, code: 'E_INDEX' },
  { field: 'index', what: 'wrong DAG height', target: 'expert0.0v1', change: { index: 0 }, code: 'E_INDEX' },
  { field: 'prev', what: 'unknown block', target: 'transfer', change: { prev: unknown('nothing') }, code: 'E_UNKNOWN_DEP' },
  { field: 'prev', what: 'a block of chain D', target: 'transfer', change: { prev: d.cid('validation') }, code: 'E_PREV' },
  { field: 'prev', what: 'set on chain B', target: 'embedding', change: { prev: d.cid('genesis') }, code: 'E_PREV' },
  { field: 'depends_on', what: 'an unknown block', target: 'embedding', change: { depends_on: sorted(d.cid('genesis'), unknown('x')) }, code: 'E_UNKNOWN_DEP' },
  { field: 'depends_on', what: 'not ascending', target: 'expert0.0v1', change: { depends_on: sorted(d.cid('genesis'), d.cid('expert0.0')).reverse() }, code: 'E_DEPS' },
  { field: 'depends_on', what: 'no chain A block', target: 'embedding', change: { depends_on: [] }, code: 'E_META_DEP' },
  { field: 'depends_on', what: 'a dataset from chain B', target: 'embedding', change: { depends_on: sorted(d.cid('genesis'), d.cid('train')) }, code: 'E_DEPS' },
  { field: 'block_type', what: 'not a chain B type', target: 'router0', change: { block_type: 'meta' }, code: 'E_BLOCK_TYPE' },
  { field: 'block_type', what: 'disagrees with the name', target: 'router0', change: { block_type: 'expert' }, code: 'E_EXPERT_NAME' },
  { field: 'expert_name', what: 'expert outside the architecture', target: 'expert1.1', change: { expert_name: 'layer1.expert7' }, code: 'E_EXPERT_NAME' },
  { field: 'expert_name', what: 'not a name', target: 'expert1.1', change: { expert_name: 'layer1.Expert1' }, code: 'E_EXPERT_NAME' },
  { field: 'expert_name', what: 'set on chain C', target: 'transfer', change: { expert_name: 'embedding' }, code: 'E_EXPERT_NAME' },
  { field: 'layer_id', what: 'disagrees with the name', target: 'expert1.1', change: { layer_id: 0 }, code: 'E_LAYER' },
  { field: 'layer_id', what: 'layer outside the architecture', target: 'expert1.1', change: { expert_name: 'layer5.expert1', layer_id: 5 }, code: 'E_LAYER' },
  { field: 'payload', what: 'another file', target: 'embedding', change: { payload: unknown('other', DAG_PB) }, code: 'E_PAYLOAD' },
  { field: 'payload', what: 'wrong codec for chain B', target: 'embedding', change: { payload: unknown('other') }, code: 'E_PAYLOAD' },
  { field: 'payload', what: 'another document', target: 'transfer', change: { payload: unknown('other') }, code: 'E_PAYLOAD' },
  { field: 'payload_size', what: 'one byte more', target: 'embedding', change: { payload_size: block('embedding').sealed.header.payload_size + 1 }, code: 'E_PAYLOAD_SIZE' },
  { field: 'payload_size', what: 'zero', target: 'transfer', change: { payload_size: 0 }, code: 'E_PAYLOAD_SIZE' },
  { field: 'timestamp', what: 'before prev', target: 'transfer', change: { timestamp: transfer.timestamp - 60_000 }, code: 'E_TIMESTAMP' },
  { field: 'timestamp', what: 'before a dependency', target: 'expert0.0v1', change: { timestamp: block('expert0.0').sealed.header.timestamp - 1 }, code: 'E_TIMESTAMP' },
  { field: 'timestamp', what: 'too far ahead', target: 'transfer', change: { timestamp: NOW + MAX_FUTURE_MS + 1 }, code: 'E_FUTURE' },
  { field: 'difficulty', what: 'below chain A requirement', target: 'embedding', change: { difficulty: 2 }, code: 'E_DIFFICULTY' },
  { field: 'miner_pub', what: 'a non-validator signs an initial version', target: 'embedding', change: {}, signer: d.miner, code: 'E_UNAUTHORIZED' },
  { field: 'miner_pub', what: 'a non-validator signs a reward', target: 'reward', change: {}, signer: d.alice, code: 'E_UNAUTHORIZED' },
  { field: 'supersedes', what: 'a version of another expert', target: 'expert0.0v1', change: { supersedes: d.cid('expert0.1'), depends_on: sorted(d.cid('genesis'), d.cid('expert0.1')) }, code: 'E_SUPERSEDES' },
  { field: 'supersedes', what: 'not in depends_on', target: 'expert0.0v1', change: { supersedes: d.cid('expert0.1') }, code: 'E_SUPERSEDES' },
  { field: 'supersedes', what: 'set on chain C', target: 'transfer', change: { supersedes: d.cid('expert0.0') }, code: 'E_SUPERSEDES' },
  { field: 'pol', what: 'another certificate', target: 'reward', change: { pol: unknown('cert') }, code: 'E_POL' },
  { field: 'pol', what: 'missing on a reward', target: 'reward', change: { pol: null }, code: 'E_POL' },
  { field: 'pol', what: 'set on a transfer', target: 'transfer', change: { pol: unknown('cert') }, code: 'E_POL' }
]

describe('each header field corrupted (re-signed, re-mined) gets its own rule', () => {
  for (const c of cases) {
    test(`${c.field}: ${c.what} -> ${c.code}`, async () => {
      const original = block(c.target)
      const signer = c.signer ?? (c.target === 'transfer' ? d.miner : c.target === 'expert0.0v1' ? d.miner : validator)
      const bad = reseal(original, c.change, signer)
      await assertRule(() => validate(bad.input), c.code)
    })
  }

  test('the uncorrupted originals re-sealed by their signer are valid (the cases above are not vacuous)', async () => {
    for (const name of new Set(cases.map((c) => c.target))) {
      const signer = name === 'transfer' || name === 'expert0.0v1' ? d.miner : validator
      const again = reseal(block(name), { timestamp: block(name).sealed.header.timestamp + 1 }, signer)
      // A certificate names its candidate's CID, so a re-sealed candidate needs a new one.
      const input = name === 'expert0.0v1' ? { ...again.input, certificate: d.certificate(d.certificateBody(again.sealed.cid, d.cid('expert0.0'))) } : again.input
      await validate(input)
    }
  })

  test('nonce: another nonce without new work -> E_POW', async () => {
    const h = block('embedding').sealed.header
    let nonce = h.nonce + 1
    while (meetsDifficulty(headerCid(encodeHeader({ ...h, nonce })).multihash.digest, h.difficulty)) nonce++
    await assertRule(() => validate({ ...block('embedding').input, header: encodeHeader({ ...h, nonce }) }), 'E_POW', 'nonce')
  })

  test('payload_sig: a flipped byte -> E_SIG', async () => {
    const h = block('embedding').sealed.header
    const sig = h.payload_sig.slice()
    sig[10] = (sig[10] as number) ^ 1
    await assertRule(() => validate({ ...block('embedding').input, header: mined({ ...h, payload_sig: sig }) }), 'E_SIG', 'payload_sig')
  })

  test('payload_sig: the high-S twin of a valid signature -> E_SIG', async () => {
    const h = block('embedding').sealed.header
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    const s = BigInt('0x' + Buffer.from(h.payload_sig.subarray(32)).toString('hex'))
    const high = Uint8Array.from(Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex'))
    const sig = new Uint8Array([...h.payload_sig.subarray(0, 32), ...high])
    await assertRule(() => validate({ ...block('embedding').input, header: mined({ ...h, payload_sig: sig }) }), 'E_SIG', 'payload_sig')
  })

  test('miner_pub: another key without re-signing -> E_SIG; not a curve point -> E_PUBKEY', async () => {
    const h = block('embedding').sealed.header
    await assertRule(() => validate({ ...block('embedding').input, header: mined({ ...h, miner_pub: publicKeyOf(d.validators[1] as Uint8Array) }) }), 'E_SIG', 'payload_sig')
    const offCurve = new Uint8Array(33).fill(0xff)
    offCurve[0] = 2
    await assertRule(() => validate({ ...block('embedding').input, header: mined({ ...h, miner_pub: offCurve }) }), 'E_PUBKEY', 'miner_pub')
    const badPrefix = h.miner_pub.slice()
    badPrefix[0] = 4
    await assertRule(() => validate({ ...block('embedding').input, header: mined({ ...h, miner_pub: badPrefix }) }), 'E_PUBKEY', 'miner_pub')
  })
})

/** Re-mine (but do not re-sign) a header: only the signature can be wrong. */
function mined(h: Header): Uint8Array {
  for (let nonce = 0; ; nonce++) {
    const bytes = encodeHeader({ ...h, nonce })
    if (meetsDifficulty(headerCid(bytes).multihash.digest, h.difficulty)) return bytes
  }
}

describe('each header field with a wrong type, missing, or an extra key gets a rule naming it', () => {
  const original = dagCbor.decode(block('expert0.0v1').sealed.bytes) as Record<string, unknown>
  const wrong: unknown[] = ['x', -1, 1.5, null, new Uint8Array(3), [1], { a: 1 }, true, 2 ** 60]
  for (const key of HEADER_KEYS) {
    test(`${key}`, () => {
      let checked = 0
      for (const value of wrong) {
        const o = { ...original, [key]: value }
        let bytes: Uint8Array
        try {
          bytes = dagCbor.encode(o)
        } catch {
          continue
        }
        try {
          decodeHeader(bytes)
        } catch (e) {
          assert.ok(e instanceof RuleError, `${key}=${String(value)}: ${String(e)}`)
          assert.equal(e.field.split(/[.[]/)[0], key, `${key}=${String(value)}: ${e.message}`)
          checked++
          continue
        }
        // Some values are legal for some keys (null prev on B, an integer index): they must decode to themselves.
        assert.deepEqual(decodeHeader(bytes)[key], value, `${key}=${String(value)} passed but changed`)
      }
      assert.ok(checked >= 5, `${key}: only ${checked} corruptions rejected`)
      const missing: Record<string, unknown> = { ...original }
      delete missing[key]
      assert.throws(() => decodeHeader(dagCbor.encode(missing)), (e: unknown) => e instanceof RuleError && e.code === 'E_SCHEMA' && e.field === key)
    })
  }
  test('an extra key', () => {
    assert.throws(() => decodeHeader(dagCbor.encode({ ...original, extra: 1 })), (e: unknown) => e instanceof RuleError && e.code === 'E_SCHEMA' && e.field === 'extra')
  })
})
