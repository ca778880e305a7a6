/**
 * Issue 16, a node killed while it syncs: `blyan start --peer` as a child process, SIGKILLed in the
 * middle of a history sync of 400 blocks, leaves a store that verifies (every block whole or
 * absent: the one atomic write per block) and, started again, finishes syncing to the same heads.
 * Then churn: with a random node of three restarted every few seconds for 60 s while blocks keep
 * coming, every node converges once it stops.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { SecretKey } from '../../src/chain/keys.ts'
import { STORE_FILE } from '../../relay/devnet.ts'
import { openChainStore } from '../../relay/node/chain-store.ts'
import { CheckpointSigner, memoryVoteLog } from '../../relay/node/finality.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { nextRulesSubmission } from '../../relay/node/governance.ts'
import type { Served } from '../../relay/serve.ts'
import { BLYAN_BIN } from '../fixtures/node-process.ts'
import { addressOf, headsOf, networkSeed, nodeDir, startPeer, until, type NetworkSeed } from '../fixtures/network.ts'

/** `blyan start` on the peer network as a child process; its URL once it listens. */
function startChild(dir: string, peer: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BLYAN_BIN, 'start', '--data', dir, '--port', '0', '--listen', '/ip4/127.0.0.1/tcp/0', '--peer', peer], { stdio: ['ignore', 'pipe', 'pipe'] })
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`node did not start: ${out}`)), 60_000)
    const onData = (chunk: Buffer): void => {
      out += chunk.toString()
      const m = /Blyan node at (http:\/\/[^\s]+)/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve({ child, url: m[1] as string })
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`node exited with ${code}: ${out}`))
    })
  })
}

async function blocksAt(url: string): Promise<number> {
  try {
    return ((await (await fetch(`${url}api/status`)).json()) as { blocks: number }).blocks
  } catch {
    return -1
  }
}

describe('a node killed (SIGKILL) while it syncs', () => {
  let seed: NetworkSeed
  let source: Served
  let target = 0

  before(async () => {
    seed = await networkSeed(4)
    // The network's history: 400 rules blocks, each final, made offline with every key; then served by a relay (no keys).
    const dir = nodeDir(seed, null)
    const store = openChainStore(join(dir, STORE_FILE))
    const node = new FullNode(store, { signer: new CheckpointSigner(seed.keys, memoryVoteLog()) })
    for (let i = 0; i < 400; i++) await node.submitCar(await nextRulesSubmission(store, seed.keys[i % 4] as SecretKey, Date.now()))
    target = store.size
    store.close()
    source = await startPeer(dir, [])
  })

  after(async () => {
    await source.close()
  })

  test('the store it leaves verifies, and after a restart it finishes syncing to the same heads', async () => {
    const dir = nodeDir(seed, null)
    const before = openChainStore(join(dir, STORE_FILE))
    const start = before.size
    before.close()
    const first = await startChild(dir, addressOf(source))
    let seen = 0
    try {
      await until('the sync to be under way', async () => (seen = await blocksAt(first.url)) > start + 20 || `${seen}`, 60_000, 20)
    } finally {
      first.child.kill('SIGKILL')
      await new Promise((r) => first.child.once('exit', r))
    }
    const killed = openChainStore(join(dir, STORE_FILE))
    try {
      killed.check()
      console.log(`# killed at ${killed.size} of ${target} blocks; the store verifies`)
      assert.ok(killed.size < target, 'killed before the end of the sync')
    } finally {
      killed.close()
    }
    const second = await startChild(dir, addressOf(source))
    try {
      const ms = await until('the restarted node to finish syncing', async () => (await blocksAt(second.url)) === target, 60_000)
      console.log(`# the restarted node finished syncing in ${ms} ms`)
    } finally {
      second.child.kill('SIGTERM')
      await new Promise((r) => second.child.once('exit', r))
    }
    const synced = openChainStore(join(dir, STORE_FILE))
    try {
      assert.equal(headsOf(synced), headsOf(source.node.store))
      assert.equal(synced.contentHash(), source.node.store.contentHash())
    } finally {
      synced.close()
    }
  })
})

describe('churn: a random node of three restarted every few seconds for 60 s', () => {
  let seed: NetworkSeed
  const dirs: string[] = []
  const nodes: (Served | null)[] = []

  before(async () => {
    seed = await networkSeed(4)
    for (const k of [0, 1, 2]) dirs.push(nodeDir(seed, seed.keys[k] as SecretKey))
    for (const d of dirs) nodes.push(await startPeer(d, nodes.flatMap((n) => (n === null ? [] : [addressOf(n)]))))
  })

  after(async () => {
    for (const n of nodes) await n?.close()
  })

  test('blocks keep coming at the nodes that are up; once the churn stops, every node converges (the time it took is printed)', async () => {
    const t0 = Date.now()
    let seedRandom = 11
    const random = (n: number): number => (seedRandom = (seedRandom * 1103515245 + 12345) % 2 ** 31) % n
    let made = 0
    while (Date.now() - t0 < 60_000) {
      // Restart one node (same data directory, same peer key, dialling the others).
      const i = random(3)
      await nodes[i]?.close()
      nodes[i] = null
      const up = nodes.filter((n): n is Served => n !== null)
      // A block at a node that is up.
      const at = up[random(up.length)] as Served
      await at.node.submitCar(await nextRulesSubmission(at.node.store, seed.keys[random(4)] as SecretKey, Date.now()))
      made++
      nodes[i] = await startPeer(dirs[i] as string, up.map(addressOf))
      await new Promise((r) => setTimeout(r, 1500 + random(2000)))
    }
    const stopped = Date.now()
    const all = nodes as Served[]
    const ms = await until('every node to hold the same heads', () => new Set(all.map((n) => headsOf(n.node.store))).size === 1 || all.map((n) => n.node.store.size).join(','), 120_000, 200)
    console.log(`# ${made} blocks during 60 s of churn; converged ${ms} ms after it stopped (${Date.now() - stopped} ms)`)
    // Blocks made at a node that had not caught up yet fork chain A; fork choice keeps one branch.
    assert.ok((all[0]?.node.store.head('A')?.header.index ?? 0) > made / 2, 'the head carries most of the blocks')
  })
})

