/**
 * Issue 16, distributed Proof-of-Learning: a donor mines through the relay (a node without keys);
 * its candidate is gossiped to 4 validator nodes, each holding only its own key; the scheduled
 * validator seals the beacon, each validator evaluates on its own and gossips its signed vote, and
 * the beacon's sealer assembles the certificate and mints the reward, which every node stores.
 * With one validator stopped the candidate is still certified, by 3 signatures; with two stopped
 * no quorum can form: after the vote deadline the candidate is refused everywhere (E_QUORUM, saying
 * how many voted) and no version or reward is written.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { randomSecretKey, type SecretKey } from '../../src/chain/keys.ts'
import type { Certificate } from '../../src/chain/pol.ts'
import type { CandidateInfo } from '../../src/net/relay-api.ts'
import { mineOnce } from '../../src/pol/mining.ts'
import type { Served } from '../../relay/serve.ts'
import { serve } from '../../relay/serve.ts'
import { addressOf, networkSeed, nodeDir, until, type NetworkSeed } from '../fixtures/network.ts'

const VOTE_DEADLINE_MS = 20_000

describe('distributed Proof-of-Learning: 4 validators on their own nodes judge a donor\'s candidate sent to a relay', () => {
  let seed: NetworkSeed
  const validators: Served[] = []
  let relay: Served

  before(async () => {
    seed = await networkSeed(4)
    const start = (dir: string, peers: string[]): Promise<Served> => serve({
      dataDir: dir, port: 0, host: '127.0.0.1', log: () => undefined, voteDeadlineMs: VOTE_DEADLINE_MS, p2p: { listen: ['/ip4/127.0.0.1/tcp/0'], peers }
    })
    for (const key of seed.keys) validators.push(await start(nodeDir(seed, key), validators.map(addressOf)))
    relay = await start(nodeDir(seed, null), validators.map(addressOf))
    await until('the mesh', () => [...validators, relay].every((n) => (n.network?.peers().filter((p) => p.seenAt !== null).length ?? 0) === 4), 20_000)
  })

  after(async () => {
    for (const n of [...validators, relay]) await n.close().catch(() => undefined)
  })

  /** Mine through the relay until a candidate is submitted (a job whose self-check finds no gain is skipped); its outcome. */
  async function donate(): Promise<CandidateInfo> {
    const key: SecretKey = randomSecretKey()
    const skip = new Set<string>()
    for (let i = 0; i < 4; i++) {
      const r = await mineOnce({ relay: relay.url.replace(/\/$/, ''), key, skip, decisionTimeoutMs: VOTE_DEADLINE_MS + 30_000, pollMs: 250 })
      if (r.outcome !== null) return r.outcome
      skip.add(r.job.id)
    }
    throw new Error('four jobs without a gain worth submitting')
  }

  const running = (): Served[] => [...validators.filter((v) => v.network?.host.status === 'started'), relay]

  test('all 4 up: certified by a quorum of votes from separate nodes, rewarded, the same on every node', async () => {
    const outcome = await donate()
    assert.equal(outcome.status, 'accepted', JSON.stringify(outcome))
    const cid = CID.parse(outcome.cid)
    await until('every node to hold the version and its reward', () => running().every((n) => n.node.store.get(cid) !== undefined && n.node.store.head('C') !== undefined), 20_000)
    const cert = relay.node.store.get(cid)?.certificate?.value as Certificate
    assert.ok(cert.signatures.length >= 3, `${cert.signatures.length} signatures`)
    await until('one content everywhere', () => new Set(running().map((n) => n.node.store.contentHash())).size === 1, 20_000)
  })

  test('one validator stopped: still certified, with the 3 others\' signatures', async () => {
    await (validators[3] as Served).close()
    const outcome = await donate()
    assert.equal(outcome.status, 'accepted', JSON.stringify(outcome))
    const cert = relay.node.store.get(CID.parse(outcome.cid))?.certificate?.value as Certificate
    assert.equal(cert.signatures.length, 3)
  })

  test('two validators stopped: no quorum, refused everywhere with why, nothing written', async () => {
    await (validators[2] as Served).close()
    const sizes = running().map((n) => n.node.store.size)
    const versions = relay.node.store.headers('B', 0, Number.MAX_SAFE_INTEGER, 10_000).length
    const rewards = relay.node.store.headers('C', 0, Number.MAX_SAFE_INTEGER, 10_000).length
    const outcome = await donate()
    assert.equal(outcome.status, 'rejected', JSON.stringify(outcome))
    assert.equal(outcome.code, 'E_QUORUM')
    assert.match(outcome.message ?? '', /2 of 4 validators accepted \(2 voted\), 3 needed/)
    await until('both running validators to refuse it too', () => validators.slice(0, 2).every((v) => v.pol.candidate(outcome.cid)?.status === 'rejected'), 20_000)
    assert.equal(relay.node.store.headers('B', 0, Number.MAX_SAFE_INTEGER, 10_000).length, versions, 'no new version')
    assert.equal(relay.node.store.headers('C', 0, Number.MAX_SAFE_INTEGER, 10_000).length, rewards, 'no reward')
    // Only the beacon (one chain A block) was added.
    assert.deepEqual(running().map((n) => n.node.store.size), sizes.map((s) => s + 1))
  })
})
