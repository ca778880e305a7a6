/**
 * Issue 18, jobs that never run dry: each attempt at a job trains its own windows with its own seed,
 * derived from the base, the miner's key and the attempt number (src/pol/job.ts attemptTerms), so
 * two donors never train the same windows in the same order, a retry after a no-gain attempt trains
 * other windows, and anyone recomputes both from the training record.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import * as raw from 'multiformats/codecs/raw'
import { toHex } from '../../src/codec/cbor.ts'
import { publicKeyOf, randomSecretKey } from '../../src/chain/keys.ts'
import { attemptTerms } from '../../src/pol/job.ts'
import { attemptsAt, jobOrder } from '../../src/pol/mining.ts'
import type { Job } from '../../src/pol/job.ts'

const base = CID.create(1, raw.code, await sha256.digest(new TextEncoder().encode('layer0.expert0 v0')))
const keys = Array.from({ length: 20 }, () => toHex(publicKeyOf(randomSecretKey())))

describe('attempt terms', () => {
  test('two donors never get the same windows and seed for the same expert and version', () => {
    const terms = keys.map((k) => attemptTerms(base, k, 0))
    assert.equal(new Set(terms.map((t) => `${t.start}/${t.seed}`)).size, keys.length)
    assert.equal(new Set(terms.map((t) => t.seed)).size, keys.length)
  })

  test('a retry after a no-gain attempt trains on other windows, with another seed', () => {
    const k = keys[0] as string
    const tries = Array.from({ length: 50 }, (_, i) => attemptTerms(base, k, i))
    assert.equal(new Set(tries.map((t) => t.start)).size, 50)
    assert.equal(new Set(tries.map((t) => t.seed)).size, 50)
  })

  test('anyone recomputes them: a fixed vector, and input checks', () => {
    const k = '02' + '11'.repeat(32)
    // sha256("blyan-attempt/1" || base CID bytes || key || uint32be(3)): start = first 6 bytes, seed = next 4,
    // big-endian; the expected values computed with Python's hashlib (docs/protocol.md has the vector).
    assert.equal(base.toString(), 'bafkreidqtyhj52zrhjs2mwy56qs3axp37pgai5yt46znz352r5kngwj3ca')
    assert.deepEqual(attemptTerms(base, k, 3), { start: 70405841930589, seed: 1224762811 })
    assert.throws(() => attemptTerms(base, 'not a key', 0), TypeError)
    assert.throws(() => attemptTerms(base, k, -1), RangeError)
    assert.throws(() => attemptTerms(base, k, 2 ** 32), RangeError)
  })
})

describe('which job a donor takes', () => {
  const job = (id: string, base: string, shared = 0): Job => ({
    id, expert: `layer0.expert${id.at(-1)}`, layer: 0, expertIndex: Number(id.at(-1)), base, baseVersion: 0,
    shard: { dataset: 'd', count: 8 }, seqLen: 64, steps: 3, batchSize: 2, learningRate: 1e-3, lease: null,
    sharedBy: Array.from({ length: shared }, (_, i) => ({ miner: `m${i}`, expiresAt: 0 }))
  })
  const jobs = [job('000000000000000a', 'A'), job('000000000000000b', 'B'), job('000000000000000c', 'C', 1)]

  test('the least tried first, so donors spread over experts before any is tried again', () => {
    const order = (tried: Record<string, number>): string[] => jobOrder(jobs, keys[0] as string, undefined, new Map(Object.entries(tried))).map((j) => j.id.at(-1) as string)
    assert.deepEqual(order({}), ['a', 'b', 'c'])
    assert.deepEqual(order({ '000000000000000a': 1 }), ['b', 'c', 'a'])
    assert.deepEqual(order({ '000000000000000a': 1, '000000000000000b': 1 }), ['c', 'a', 'b'])
    assert.deepEqual(order({ '000000000000000a': 2, '000000000000000b': 1, '000000000000000c': 1 }), ['b', 'c', 'a'])
  })

  test('a lost count never repeats an attempt the relay has judged: its candidates on the base count', () => {
    const n = attemptsAt(jobs, new Map([['000000000000000a', 1]]), [
      { base: 'A' }, { base: 'A' }, { base: 'C' }
    ] as never)
    assert.deepEqual([...n].sort(), [['000000000000000a', 2], ['000000000000000c', 1]])
  })
})
