/**
 * Issue 16, distributed Proof-of-Learning: a donor mines through the relay (a node without keys);
 * its candidate is gossiped to 4 validator nodes, each holding only its own key; the scheduled
 * validator seals the beacon, each validator evaluates on its own and gossips its signed vote, and
 * the beacon's sealer assembles the certificate and mints the reward, which every node stores.
 * With one validator's node stopped and its key in a liar's hands (signing false losses), the
 * candidate is still certified, by the 3 honest signatures; with a second validator stopped no
 * quorum can form: after the vote deadline the candidate is refused everywhere (E_QUORUM, saying
 * how many voted and accepted) and no version or reward is written.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { toHex } from '../../src/codec/cbor.ts'
import { publicKeyOf, randomSecretKey, type SecretKey } from '../../src/chain/keys.ts'
import { assembleCertificate, decodeCertificate, encodeCertificate, signCertificate, type Certificate } from '../../src/chain/pol.ts'
import { createPeerHost } from '../../relay/p2p/host.ts'
import { topicsOf } from '../../relay/p2p/messages.ts'
import type { CandidateInfo } from '../../src/net/relay-api.ts'
import { mineOnce } from '../../src/pol/mining.ts'
import type { Served } from '../../relay/serve.ts'
import { serve } from '../../relay/serve.ts'
import { addressOf, networkSeed, nodeDir, until, type NetworkSeed } from '../fixtures/network.ts'

const VOTE_DEADLINE_MS = 15_000

describe('distributed Proof-of-Learning: 4 validators on their own nodes judge a donor\'s candidate sent to a relay', () => {
  let seed: NetworkSeed
  const validators: Served[] = []
  let relay: Served
  let liar: { lies: number; stop(): Promise<void> } | undefined

  before(async () => {
    seed = await networkSeed(4)
    const start = (dir: string, peers: string[]): Promise<Served> => serve({
      dataDir: dir, port: 0, host: '127.0.0.1', log: process.env['NET_LOG'] === undefined ? () => undefined : (l) => console.log(`[${dir.slice(-6)}] ${l}`), voteDeadlineMs: VOTE_DEADLINE_MS, p2p: { listen: ['/ip4/127.0.0.1/tcp/0'], peers }
    })
    for (const key of seed.keys) validators.push(await start(nodeDir(seed, key), validators.map(addressOf)))
    relay = await start(nodeDir(seed, null), validators.map(addressOf))
    await until('the mesh', () => [...validators, relay].every((n) => (n.network?.peers().filter((p) => p.seenAt !== null).length ?? 0) === 4), 20_000)
    // Gossip subscriptions too: a candidate published before the relay knows who listens reaches nobody until it is announced again.
    const topic = topicsOf(relay.node.store.genesis()?.cid as CID).candidates
    await until('the candidates topic mesh', () => [...validators, relay].every((n) => (n.network?.host.services.pubsub.getSubscribers(topic).length ?? 0) === 4), 20_000)
  })

  after(async () => {
    await liar?.stop()
    for (const n of [...validators, relay]) await n.close().catch(() => undefined)
  })

  /**
   * Jobs already mined in this suite: training is deterministic, so mining one again would bring the
   * same weights, which the network refuses as a copy (E_COPY).
   */
  const mined = new Map<string, number>()

  /** Mine through the relay until a candidate is submitted (a job whose self-check finds no gain is skipped); its outcome. */
  async function donate(): Promise<CandidateInfo> {
    const key: SecretKey = randomSecretKey()
    for (let i = 0; i < 8; i++) {
      const r = await mineOnce({ relay: relay.url.replace(/\/$/, ''), key, attempts: mined, decisionTimeoutMs: VOTE_DEADLINE_MS + 120_000, pollMs: 250 })
      mined.set(r.job.id, (mined.get(r.job.id) ?? 0) + 1)
      if (r.outcome !== null) return r.outcome
    }
    throw new Error('eight jobs without a gain worth submitting')
  }

  /**
   * A donation the validators certify: a candidate whose gain on the miner's self-check falls short
   * on the beacon's slice is refused (E_POL_THRESHOLD, as it should be), and the donor tries again.
   */
  async function donateAccepted(): Promise<CandidateInfo> {
    let outcome = await donate()
    for (let i = 0; i < 3 && outcome.status === 'rejected' && outcome.code === 'E_POL_THRESHOLD'; i++) outcome = await donate()
    return outcome
  }

  const running = (): Served[] => [...validators.filter((v) => v.network?.host.status === 'started'), relay]

  test('all 4 up: certified by a quorum of votes from separate nodes, rewarded, the same on every node', async () => {
    const outcome = await donateAccepted()
    assert.equal(outcome.status, 'accepted', JSON.stringify(outcome))
    const cid = CID.parse(outcome.cid)
    await until('every node to hold the version and its reward', () => running().every((n) => n.node.store.get(cid) !== undefined && n.node.store.head('C') !== undefined), 20_000)
    const cert = relay.node.store.get(cid)?.certificate?.value as Certificate
    assert.ok(cert.signatures.length >= 3, `${cert.signatures.length} signatures`)
    await until('one content everywhere', () => new Set(running().map((n) => n.node.store.contentHash())).size === 1, 20_000)
  })

  test('one validator stopped, its key signing false losses: still certified, by the 3 honest signatures', async () => {
    await (validators[3] as Served).close()
    liar = await falseVoter(seed.keys[3] as SecretKey, [...validators.slice(0, 3), relay], relay.node.store.genesis()?.cid as CID)
    const outcome = await donateAccepted()
    assert.equal(outcome.status, 'accepted', JSON.stringify(outcome))
    const cert = relay.node.store.get(CID.parse(outcome.cid))?.certificate?.value as Certificate
    assert.equal(cert.signatures.length, 3)
    assert.ok(!cert.signatures.some((s) => toHex(s.validator) === toHex(publicKeyOf(seed.keys[3] as SecretKey))), 'not the liar\'s')
    assert.ok(liar.lies > 0, 'the liar voted')
  })

  test('a second validator stopped: no quorum, refused everywhere with why, nothing written', async () => {
    await (validators[2] as Served).close()
    const sizes = running().map((n) => n.node.store.size)
    const versions = relay.node.store.headers('B', 0, Number.MAX_SAFE_INTEGER, 10_000).length
    const rewards = relay.node.store.headers('C', 0, Number.MAX_SAFE_INTEGER, 10_000).length
    // A candidate the two honest validators accept is refused for want of a quorum; one they find no
    // better than its base is refused for that (E_POL_THRESHOLD), and the donor tries again.
    let outcome: CandidateInfo | undefined
    let beacons = 0
    for (let i = 0; i < 4 && outcome?.code !== 'E_QUORUM'; i++) {
      outcome = await donate()
      beacons++
      assert.equal(outcome.status, 'rejected', JSON.stringify(outcome))
      assert.ok(outcome.code === 'E_QUORUM' || outcome.code === 'E_POL_THRESHOLD', JSON.stringify(outcome))
    }
    const refused = outcome as CandidateInfo
    assert.equal(refused.code, 'E_QUORUM', 'a candidate the honest validators accept')
    assert.match(refused.message ?? '', /2 of 4 validators accepted \(3 voted\), 3 needed/)
    await until('both running validators to refuse it too', () => validators.slice(0, 2).every((v) => v.pol.candidate(refused.cid)?.status === 'rejected'), 20_000)
    assert.equal(relay.node.store.headers('B', 0, Number.MAX_SAFE_INTEGER, 10_000).length, versions, 'no new version')
    assert.equal(relay.node.store.headers('C', 0, Number.MAX_SAFE_INTEGER, 10_000).length, rewards, 'no reward')
    // Only the beacons (one chain A block per candidate) were added.
    await until('every node to hold the beacons', () => running().every((n, i) => n.node.store.size === (sizes[i] as number) + beacons), 20_000)
  })
})

/**
 * A validator's key in a liar's hands: on a host of its own, it answers every honest PoL vote on
 * the votes topic with its own vote for the same candidate, claiming the candidate did not improve
 * (loss_after = loss_before), signed with `key`.
 */
async function falseVoter(key: SecretKey, peers: readonly Served[], genesis: CID): Promise<{ lies: number; stop(): Promise<void> }> {
  const host = await createPeerHost({ privateKey: await generateKeyPair('Ed25519') })
  const topic = topicsOf(genesis).votes
  host.services.pubsub.subscribe(topic)
  for (const p of peers) await host.dial(multiaddr(addressOf(p)))
  const lied = new Set<string>()
  const state = {
    lies: 0,
    stop: async () => { await host.stop() }
  }
  host.services.pubsub.addEventListener('message', (e) => {
    if (e.detail.topic !== topic) return
    let vote: Certificate
    try {
      vote = decodeCertificate(e.detail.data)
    } catch {
      return // a finality vote
    }
    if (lied.has(vote.candidate.toString())) return
    lied.add(vote.candidate.toString())
    const { signatures: _s, ...honest } = vote
    const body = { ...honest, loss_after: honest.loss_before }
    state.lies++
    void host.services.pubsub.publish(topic, encodeCertificate(assembleCertificate(body, [signCertificate(body, key)])))
  })
  await until('the liar to be in the votes mesh', () => host.services.pubsub.getSubscribers(topic).length >= peers.length, 10_000)
  return state
}
