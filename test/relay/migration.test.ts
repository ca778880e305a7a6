/**
 * Stores written before finality open and keep working: a version 1 chain store gains the
 * checkpoints table and rejection scopes, passes its check, and the node's keys finalize its heads
 * at start; a version 1 pol.sqlite gains round-failure notes, lease sequences and votes, and keeps
 * its candidates and leases.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import Database from 'better-sqlite3'
import { KEYS_DIR, readKeyFile } from '../../relay/devnet.ts'
import { CheckpointSigner, memoryVoteLog } from '../../relay/node/finality.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { POL_SCHEMA_VERSION, PolStore } from '../../relay/pol/pol-store.ts'
import { SCHEMA_VERSION, openChainStore } from '../../relay/node/chain-store.ts'
import { genesisDevnet } from '../fixtures/genesis-devnet.ts'

/** The pol.sqlite schema of version 1 (before this version), as that code created it. */
const POL_V1 = `
CREATE TABLE candidates (
  cid TEXT PRIMARY KEY, car BLOB NOT NULL, miner TEXT NOT NULL, expert TEXT NOT NULL, base TEXT NOT NULL, rules TEXT NOT NULL,
  payload TEXT NOT NULL, received_at INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
  code TEXT, message TEXT, beacon TEXT, certificate TEXT, reward TEXT, amount INTEGER, loss_before REAL, loss_after REAL, decided_at INTEGER
);
CREATE INDEX candidates_status ON candidates(status, received_at);
CREATE INDEX candidates_miner ON candidates(miner, received_at);
CREATE INDEX candidates_payload ON candidates(payload);
CREATE TABLE leases (job TEXT PRIMARY KEY, miner TEXT NOT NULL, leased_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX leases_miner ON leases(miner, expires_at);
`

describe('stores from before finality', () => {
  test('a version 1 chain store is migrated, passes its check, and its heads become final when the node\'s keys vote', async () => {
    const dir = await genesisDevnet()
    const path = join(dir, 'chain.sqlite')
    // Back to version 1: no checkpoints table, no rejection scope.
    const db = new Database(path)
    db.exec("INSERT INTO rejections (cid, code, field, message, at, chain, block_type, scope) VALUES (NULL, 'E_DECODE', 'header', 'junk', 1, NULL, NULL, 'block')")
    db.exec('DROP TABLE checkpoints; ALTER TABLE rejections DROP COLUMN scope;')
    db.pragma('user_version = 1')
    db.close()

    const store = openChainStore(path)
    try {
      const version = new Database(path, { readonly: true })
      assert.equal(version.pragma('user_version', { simple: true }), SCHEMA_VERSION)
      version.close()
      store.check()
      assert.equal(store.checkpoint(), null)
      assert.equal(store.rejections(10)[0]?.scope, 'block', 'old rejections keep blaming their block')
      const keysDir = join(dir, KEYS_DIR)
      const keys = readdirSync(keysDir).filter((f) => f.endsWith('.key')).sort().map((f) => readKeyFile(join(keysDir, f)))
      const node = new FullNode(store, { signer: new CheckpointSigner(keys, memoryVoteLog()) })
      await node.vote()
      const checkpoint = store.checkpoint()
      assert.equal(checkpoint?.number, 0)
      assert.ok(checkpoint?.heads.A.equals(store.head('A')?.cid as never))
      assert.ok(checkpoint?.heads.D?.equals(store.head('D')?.cid as never))
      store.check()
    } finally {
      store.close()
    }
  })

  test('a version 1 pol.sqlite keeps its candidates and leases and gains the new tables', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'blyan-polv1-')), 'pol.sqlite')
    const db = new Database(path)
    db.exec(POL_V1)
    db.pragma('application_id = 1112299856') // 'BLYP'
    db.pragma('user_version = 1')
    db.prepare("INSERT INTO candidates (cid, car, miner, expert, base, rules, payload, received_at, status) VALUES ('c1', x'00', 'm1', 'layer0.expert0', 'b', 'r', 'p', 5, 'pending')").run()
    db.prepare("INSERT INTO leases VALUES ('job1', 'm1', 1, 9999999999999)").run()
    db.close()

    const store = PolStore.open(path)
    try {
      const c = store.get('c1')
      assert.equal(c?.status, 'pending')
      assert.equal(c?.attempts, 0)
      assert.equal(c?.lastError, null)
      assert.deepEqual(store.leasesOn('job1', 2).map((l) => l.miner), ['m1'])
      assert.equal(store.advanceSequence('m1', 10), true)
      assert.equal(store.advanceSequence('m1', 10), false)
      store.recordVote('v', 0, new Uint8Array([1]))
      assert.deepEqual(store.lastVote('v'), new Uint8Array([1]))
      store.noteFailure('c1', 'no validation dataset')
      assert.equal(store.get('c1')?.attempts, 1)
    } finally {
      store.close()
    }
    const check = new Database(path, { readonly: true })
    assert.equal(check.pragma('user_version', { simple: true }), POL_SCHEMA_VERSION)
    check.close()
    PolStore.open(path).close() // opens again as version 2
  })
})
