/**
 * Settings and sync state in a real IndexedDB (fake-indexeddb): defaults when nothing is stored, a
 * round trip, and damaged records falling back to defaults field by field without throwing.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { cidOf, encodeCbor } from '../../src/codec/cbor.ts'
import { idbKV } from '../../src/store/kv.ts'
import { defaultSettings, loadSettings, loadSyncState, saveSettings, saveSyncState } from '../../src/store/settings.ts'
import { DEFAULT_CACHE_BUDGET, type Settings } from '../../src/client/api.ts'

let dbs = 0
const freshKV = () => idbKV(`settings-test-${++dbs}`, 'settings')
const cid = (n: number): string => cidOf(encodeCbor({ n })).toString()

describe('settings', () => {
  test('nothing stored: the defaults', async () => {
    const expected = { relays: [], cacheBudgetBytes: DEFAULT_CACHE_BUDGET, backend: 'auto', trustAnchor: null }
    assert.deepEqual(defaultSettings(), expected)
    assert.deepEqual(await loadSettings(freshKV()), expected)
  })

  test('a round trip, in the default database too', async () => {
    const settings: Settings = { relays: ['http://127.0.0.1:8080', 'https://relay.example/'], cacheBudgetBytes: 1 << 20, backend: 'webgpu', trustAnchor: cid(1) }
    const kv = freshKV()
    assert.deepEqual(await saveSettings(settings, kv), settings)
    assert.deepEqual(await loadSettings(kv), settings)
    await saveSettings(settings)
    assert.deepEqual(await loadSettings(), settings)
  })

  test('a damaged record falls back to the defaults field by field, and never throws', async () => {
    const kv = freshKV()
    const cases: [unknown, Settings][] = [
      ['garbage', defaultSettings()],
      [null, defaultSettings()],
      [{ relays: 'http://a', cacheBudgetBytes: -5, backend: 'cuda', trustAnchor: 'not a cid' }, defaultSettings()],
      [{ cacheBudgetBytes: 1.5, backend: 7, trustAnchor: 7 }, defaultSettings()],
      [
        { relays: ['http://a:1', 42, 'ftp://b', 'not a url', 'http://a:1'], cacheBudgetBytes: 1000, backend: 'cpu', trustAnchor: cid(2), extra: true },
        { relays: ['http://a:1'], cacheBudgetBytes: 1000, backend: 'cpu', trustAnchor: cid(2) }
      ]
    ]
    for (const [record, expected] of cases) {
      await kv.setMany([['settings', record]])
      assert.deepEqual(await loadSettings(kv), expected, JSON.stringify(record))
    }
  })

  test('saving a value our code should never produce throws, naming the field', async () => {
    const d = defaultSettings()
    const kv = freshKV()
    await assert.rejects(saveSettings({ ...d, backend: 'cuda' as never }, kv), (e: Error) => e instanceof RangeError && /backend/.test(e.message))
    await assert.rejects(saveSettings({ ...d, relays: ['ws://x'] }, kv), (e: Error) => e instanceof TypeError && /relays\[0\]/.test(e.message))
    await assert.rejects(saveSettings({ ...d, cacheBudgetBytes: -1 }, kv), (e: Error) => e instanceof RangeError && /cacheBudgetBytes/.test(e.message))
    await assert.rejects(saveSettings({ ...d, trustAnchor: 'xyz' }, kv), (e: Error) => e instanceof TypeError && /trustAnchor/.test(e.message))
    assert.deepEqual(await loadSettings(kv), d, 'nothing was stored')
  })
})

describe('sync state', () => {
  test('empty when nothing is stored; a round trip keeps the acceptance order', async () => {
    const kv = freshKV()
    assert.deepEqual(await loadSyncState(kv), { anchor: null, accepted: [], checkpoints: [] })
    const state = { anchor: cid(0), accepted: [cid(0), cid(3), cid(1), cid(2)], checkpoints: [cid(4), cid(5)] }
    await saveSyncState(state, kv)
    assert.deepEqual(await loadSyncState(kv), state)
    assert.deepEqual(await loadSettings(kv), defaultSettings(), 'sync state and settings are separate records')
  })

  test('a damaged record keeps its valid CIDs, in order, and nothing else', async () => {
    const kv = freshKV()
    await kv.setMany([['sync', { anchor: 5, accepted: [cid(1), 'nope', 7, cid(2)], checkpoints: [cid(3), 'gap', cid(4)] }]])
    assert.deepEqual(await loadSyncState(kv), { anchor: null, accepted: [cid(1), cid(2)], checkpoints: [cid(3)] }, 'checkpoints: the sequence up to its first gap')
    await kv.setMany([['sync', 'garbage']])
    assert.deepEqual(await loadSyncState(kv), { anchor: null, accepted: [], checkpoints: [] })
    await assert.rejects(saveSyncState({ anchor: null, accepted: ['nope'], checkpoints: [] }, kv), { name: 'TypeError' })
    await assert.rejects(saveSyncState({ anchor: null, accepted: [], checkpoints: ['nope'] }, kv), { name: 'TypeError' })
  })
})
