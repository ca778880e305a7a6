/**
 * PoL windows (src/pol/sequences.ts, protocol.md §6.1) and trust levels (relay/pol/trust.ts): the pure
 * rules every validator and miner must apply identically.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Tokenizer } from '../../src/model/tokenizer/index.ts'
import { DatasetTooSmallError, SequencePool, splitDocuments, tokenStream } from '../../src/pol/sequences.ts'
import { trustLevel } from '../../relay/pol/trust.ts'

/** A tokenizer whose ids are char codes + 10 (BOS = 1): enough to see what the windows hold. */
const chars: Tokenizer = {
  bos: 1,
  eos: 2,
  encode: (text: string, options?: { bos?: boolean }) => [...(options?.bos === true ? [1] : []), ...[...text].map((c) => c.charCodeAt(0) + 10)],
  decode: () => ''
} as unknown as Tokenizer

test('documents: split at runs of blank lines (spaces and tabs count as blank), CRLF read as LF, trimmed, empties dropped', () => {
  assert.deepEqual(splitDocuments('a\n\nb'), ['a', 'b'])
  assert.deepEqual(splitDocuments('a\r\n\r\nb\r\nc'), ['a', 'b\nc'])
  assert.deepEqual(splitDocuments('  a \n \t \n\n\nb\n\n'), ['a', 'b'])
  assert.deepEqual(splitDocuments('\n\n\n'), [])
  assert.deepEqual(splitDocuments('one line\nsame story'), ['one line\nsame story'])
})

test('the token stream: each document with BOS first, concatenated in order', () => {
  assert.deepEqual([...tokenStream('ab\n\nc', chars)], [1, 107, 108, 1, 109])
})

test('windows: N = floor((L - 1) / seqLen), window j = tokens [j*seqLen, j*seqLen + seqLen], slices wrap mod N', () => {
  const stream = Int32Array.from({ length: 11 }, (_, i) => i)
  const pool = new SequencePool(stream, 3)
  assert.equal(pool.size, 3)
  assert.deepEqual([...pool.window(0)], [0, 1, 2, 3])
  assert.deepEqual([...pool.window(2)], [6, 7, 8, 9])
  assert.deepEqual(pool.slice(2, 4).map((w) => w[0]), [6, 0, 3, 6])
  assert.deepEqual(pool.slice(2 ** 40 + 1, 1).map((w) => w[0]), [((2 ** 40 + 1) % 3) * 3])
  assert.throws(() => pool.window(3), RangeError)
  assert.throws(() => pool.slice(-1, 1), RangeError)
  assert.throws(() => pool.slice(0, 0), RangeError)
  assert.throws(() => new SequencePool(Int32Array.of(1, 2, 3), 3), DatasetTooSmallError)
})

test('trust: newbie until 3 consecutive acceptances, trusted until 5 consecutive rejections', () => {
  const A = 'accepted' as const
  const R = 'rejected' as const
  assert.equal(trustLevel([]), 'newbie')
  assert.equal(trustLevel([A, A]), 'newbie')
  assert.equal(trustLevel([A, A, R, A]), 'newbie', 'consecutive, not in total')
  assert.equal(trustLevel([A, A, A]), 'trusted')
  assert.equal(trustLevel([A, A, A, R, R, R, R]), 'trusted', '4 failures keep trust')
  assert.equal(trustLevel([A, A, A, R, R, R, R, R]), 'newbie')
  assert.equal(trustLevel([A, A, A, R, R, R, R, R, A, A, A]), 'trusted', 'and it can be earned back')
})
