import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatAgo, formatBytes, formatMs, formatTimestamp, looksLikeCid, middleEllipsis, percent, plural, secondsUntil } from '../../src/ui/format.ts'

test('formatBytes uses binary units with three significant digits', () => {
  assert.equal(formatBytes(0), '0 B')
  assert.equal(formatBytes(512), '512 B')
  assert.equal(formatBytes(1023), '1023 B')
  assert.equal(formatBytes(1024), '1.00 KiB')
  assert.equal(formatBytes(1536), '1.50 KiB')
  assert.equal(formatBytes(256 * 1024), '256 KiB')
  assert.equal(formatBytes(12.34 * 1024 * 1024), '12.3 MiB')
  assert.equal(formatBytes(512 * 1024 * 1024), '512 MiB')
  assert.equal(formatBytes(1024 * 1024 - 1), '1.00 MiB')
  assert.equal(formatBytes(3 * 1024 ** 3), '3.00 GiB')
  assert.equal(formatBytes(-1), '–')
  assert.equal(formatBytes(NaN), '–')
})

test('middleEllipsis keeps both ends and leaves short values whole', () => {
  const cid = 'bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmi6kfxzxe'
  assert.equal(middleEllipsis(cid), 'bafyreig…kfxzxe')
  assert.equal(middleEllipsis(cid, 4, 4), 'bafy…xzxe')
  assert.equal(middleEllipsis('short'), 'short')
  // A cut must save something: 8 + 1 + 6 characters are shown as they are.
  assert.equal(middleEllipsis('abcdefghijklmno'), 'abcdefghijklmno')
  assert.equal(middleEllipsis('abcdefghijklmnop'), 'abcdefgh…klmnop')
})

test('percent, plural, secondsUntil', () => {
  assert.equal(percent(1, 4), 25)
  assert.equal(percent(5, 4), 100)
  assert.equal(percent(1, 0), 0)
  assert.equal(plural(1, 'tile'), '1 tile')
  assert.equal(plural(3, 'tile'), '3 tiles')
  assert.equal(plural(1200, 'header'), '1,200 headers')
  assert.equal(secondsUntil(8000, 0), 8)
  assert.equal(secondsUntil(7001, 0), 8)
  assert.equal(secondsUntil(0, 5000), 0)
})

test('times and durations', () => {
  assert.equal(formatAgo(0, 1000), 'just now')
  assert.equal(formatAgo(0, 42_000), '42 s ago')
  assert.equal(formatAgo(0, 5 * 60_000), '5 min ago')
  assert.equal(formatAgo(0, 3 * 3600_000), '3 h ago')
  assert.equal(formatAgo(0, 72 * 3600_000), '3 d ago')
  assert.equal(formatTimestamp(Date.UTC(2025, 0, 31, 14, 5, 9)), '2025-01-31 14:05:09 UTC')
  assert.equal(formatMs(850), '850 ms')
  assert.equal(formatMs(1234), '1.2 s')
  assert.equal(formatMs(12_345), '12 s')
})

test('looksLikeCid', () => {
  assert.ok(looksLikeCid('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmi6kfxzxe'))
  assert.ok(looksLikeCid('QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'))
  assert.ok(!looksLikeCid('layer0.expert1'))
  assert.ok(!looksLikeCid('02' + 'ab'.repeat(32)))
})
