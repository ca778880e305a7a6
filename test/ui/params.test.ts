import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import * as dagCbor from '@ipld/dag-cbor'
import { DEFAULT_SAMPLING } from '../../src/client/api.ts'
import { normalizeRelayUrl, parseSamplingValue, readUrlOptions, startOverrides, urlParams } from '../../src/ui/url-params.ts'

test('normalizeRelayUrl accepts http(s) base URLs and says why others are refused', () => {
  assert.deepEqual(normalizeRelayUrl('http://127.0.0.1:8080/'), { ok: true, url: 'http://127.0.0.1:8080' })
  assert.deepEqual(normalizeRelayUrl(' https://relay.example/blyan/ '), { ok: true, url: 'https://relay.example/blyan' })
  assert.deepEqual(normalizeRelayUrl('relay.example:8080'), { ok: true, url: 'http://relay.example:8080' })
  assert.equal(normalizeRelayUrl('').ok, false)
  assert.equal(normalizeRelayUrl('ftp://x').ok, false)
  assert.equal(normalizeRelayUrl('ws://x').ok, false)
  assert.equal(normalizeRelayUrl('http://u:p@x').ok, false)
  assert.equal(normalizeRelayUrl('http://x/?a=1').ok, false)
  assert.equal(normalizeRelayUrl('http://[::1').ok, false)
})

test('parseSamplingValue checks numbers, whole numbers and ranges', () => {
  assert.deepEqual(parseSamplingValue('temperature', '0'), { ok: true, value: 0 })
  assert.deepEqual(parseSamplingValue('temperature', '0.7'), { ok: true, value: 0.7 })
  assert.equal(parseSamplingValue('temperature', '-1').ok, false)
  assert.equal(parseSamplingValue('temperature', 'hot').ok, false)
  assert.equal(parseSamplingValue('temperature', '').ok, false)
  assert.equal(parseSamplingValue('topP', '1.5').ok, false)
  assert.equal(parseSamplingValue('maxTokens', '1.5').ok, false)
  assert.equal(parseSamplingValue('maxTokens', '0').ok, false)
  assert.deepEqual(parseSamplingValue('seed', '7'), { ok: true, value: 7 })
})

test('readUrlOptions: relays (repeatable), sampling, backend, genesis; problems for bad values', async () => {
  const none = readUrlOptions('')
  assert.deepEqual(none.relays, [])
  assert.deepEqual(none.sampling, DEFAULT_SAMPLING)
  assert.equal(none.backend, null)
  assert.deepEqual(none.genesis, { kind: 'none' })
  assert.deepEqual(none.problems, [])
  assert.deepEqual(startOverrides(none), {})

  const cid = CID.createV1(dagCbor.code, await sha256.digest(dagCbor.encode({ chain_id: 'A', index: 0 }))).toString()
  const o = readUrlOptions(`?relay=http://a:1/&relay=https://b&relay=http://a:1&temperature=0&top_p=0.5&max_tokens=32&seed=9&backend=cpu&genesis=${cid}`)
  assert.deepEqual(o.relays, ['http://a:1', 'https://b'])
  assert.deepEqual(o.sampling, { temperature: 0, topP: 0.5, maxTokens: 32, seed: 9 })
  assert.equal(o.backend, 'cpu')
  assert.deepEqual(o.problems, [])
  assert.deepEqual(startOverrides(o), { relays: ['http://a:1', 'https://b'], trustAnchor: cid, backend: 'cpu' })

  const bad = readUrlOptions('?relay=ftp://x&temperature=hot&backend=tpu&genesis=nope')
  assert.deepEqual(bad.relays, [])
  assert.equal(bad.sampling.temperature, DEFAULT_SAMPLING.temperature)
  assert.equal(bad.backend, null)
  assert.equal(bad.genesis.kind, 'invalid')
  assert.equal(bad.problems.length, 4)
  assert.match(bad.problems[1] ?? '', /^\?temperature=hot is not a number; using 0\.8$/)
  assert.deepEqual(startOverrides(bad), {})
})

test('URL options are also read after the hash route', () => {
  assert.equal(urlParams('?a=1', '#/chat?b=2').get('b'), '2')
  const o = readUrlOptions('', '#/chat?temperature=0&relay=http://r:9')
  assert.equal(o.sampling.temperature, 0)
  assert.deepEqual(o.relays, ['http://r:9'])
  // camelCase spellings work too
  assert.equal(readUrlOptions('?topP=0.3&maxTokens=5').sampling.maxTokens, 5)
})
