import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ClientStatus, RelayState, SyncState } from '../../src/client/api.ts'
import { anyLiar, downText, notices, relaySummary, syncSummary } from '../../src/ui/notices.ts'

function relay(url: string, patch: Partial<RelayState> = {}): RelayState {
  return { url, health: 'up', error: null, lies: [], blocks: 0, bytes: 0, lastSeen: null, retryAt: null, ...patch }
}

function status(relays: RelayState[], sync: Partial<SyncState> = {}): ClientStatus {
  return {
    relays,
    sync: { phase: 'live', anchor: null, heads: { A: null, B: null, C: null, D: null }, verified: 12, rejected: [], error: null, liveMs: null, finality: null, ...sync },
    cache: { tileBytes: 0, tileBlocks: 0, budgetBytes: 1, headerBytes: 0, headerBlocks: 0, quotaBytes: null, error: null },
    backend: null
  }
}

test('a dead relay says it is unreachable with its retry countdown, and nothing once it is back', () => {
  const down = relay('http://127.0.0.1:9', { health: 'down', error: 'fetch failed', retryAt: 10_000 })
  assert.equal(downText(down, 2_000), 'relay http://127.0.0.1:9 is unreachable, retrying in 8 s')
  assert.equal(downText(down, 10_000), 'relay http://127.0.0.1:9 is unreachable, retrying now')
  assert.equal(downText({ ...down, retryAt: null }, 0), 'relay http://127.0.0.1:9 is unreachable, retrying')
  const list = notices(status([down]), 2_000)
  assert.deepEqual(list.map((n) => [n.level, n.relay, n.text]), [['warn', 'http://127.0.0.1:9', 'relay http://127.0.0.1:9 is unreachable, retrying in 8 s']])
  assert.deepEqual(notices(status([relay('http://127.0.0.1:9')]), 2_000), [])
})

test('a lying relay is named in a warning that stays, with the block it lied about', () => {
  const liar = relay('http://bad:1', { lies: [{ cid: 'bafkreiabc', what: 'tile 0 of layer1.expert2', at: 1 }] })
  const honest = relay('http://good:2')
  const [n] = notices(status([liar, honest]), 0)
  assert.equal(n?.level, 'error')
  assert.equal(n?.relay, 'http://bad:1')
  assert.equal(n?.text, 'relay http://bad:1 served a block that does not match its CID (tile 0 of layer1.expert2): it lied; blocks are taken from other relays')
  assert.match(notices(status([liar]), 0)[0]?.text ?? '', /it lied; its bytes were refused, and no honest relay is reachable$/)
  const twice = { ...liar, lies: [...liar.lies, { cid: 'bafkreidef', what: '', at: 2 }] }
  assert.match(notices(status([twice, honest]), 0)[0]?.text ?? '', /\(bafkreidef\), and 1 other block: it lied/)
  // the relay set keeps lies newest first: the newest is named either way
  const newestFirst = { ...liar, lies: [{ cid: 'bafkreidef', what: '', at: 2 }, ...liar.lies] }
  assert.match(notices(status([newestFirst, honest]), 0)[0]?.text ?? '', /\(bafkreidef\), and 1 other block: it lied/)
  assert.ok(anyLiar(status([liar])))
  assert.ok(!anyLiar(status([honest])))
})

test('headers refused by the rules name the relay that offered them', () => {
  const s = status([relay('http://r:1')], { rejected: [
    { cid: 'bafyrei1', code: 'E_POW', field: 'nonce', message: 'not enough work', relay: 'http://r:1' },
    { cid: 'bafyrei2', code: 'E_SIG', field: 'payload_sig', message: 'bad signature', relay: 'http://r:1' }
  ] })
  const [n] = notices(s, 0)
  assert.equal(n?.text, 'relay http://r:1 offered 2 headers that failed the rules here (E_POW in nonce: not enough work); they were refused')
  assert.ok(anyLiar(s))
})

test('no relay, wrong network and sync errors are reported', () => {
  assert.match(notices(status([]), 0)[0]?.text ?? '', /No relay is set/)
  const wrong = relay('http://other:1', { health: 'wrong-network', error: 'genesis bafyreiX is not the pinned anchor' })
  assert.equal(notices(status([wrong]), 0)[0]?.text, 'relay http://other:1 is on another network (genesis bafyreiX is not the pinned anchor); it is not used')
  assert.equal(notices(status([relay('http://r')], { phase: 'error', error: 'boom' }), 0)[0]?.text, 'Sync failed: boom')
})

test('summaries', () => {
  assert.equal(syncSummary(status([]).sync), 'Live · 12 headers verified')
  assert.equal(syncSummary({ ...status([]).sync, phase: 'syncing', verified: 1 }), 'Syncing · 1 header verified')
  assert.equal(relaySummary([]), 'no relay')
  assert.equal(relaySummary([relay('a')]), '1 relay up')
  assert.equal(relaySummary([relay('a'), relay('b')]), '2 relays up')
  assert.equal(relaySummary([relay('a'), relay('b', { health: 'down' })]), '1 of 2 relays up')
  assert.equal(relaySummary([relay('a'), relay('b', { lies: [{ cid: 'c', what: '', at: 0 }] })]), '2 relays up · 1 lied')
})
