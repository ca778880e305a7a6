/**
 * A full node on the peer network: its libp2p host (host.ts), the request/response protocols
 * (reqresp.ts), history sync (sync.ts) and three gossip topics named by the genesis (messages.ts):
 *
 * - **blocks**: every block this node accepts from its own sources (HTTP submissions, its PoL
 *   service, its validators) is announced; a gossiped block passes the cheap header checks (decode,
 *   proof of work, signature) before it is forwarded, and is judged by the full node before it is
 *   stored. A block whose links this node lacks is fetched, with them, from the peer that sent it.
 * - **votes**: finality votes and final checkpoints (relay/node/finality.ts), pooled by the node,
 *   and validators' votes on dataset proposals (relay/pol/screener.ts).
 * - **candidates**: PoL candidates a node admitted, admitted in turn by every node's PoL service;
 *   **votes** also carry PoL votes (a certificate with one validator's signature), counted by it.
 *
 * Peers are the ones the operator named (`--peer`), redialled while down, and whoever dials in.
 * Every few seconds the node asks each peer's status, measures its latency, and syncs from one
 * that holds a head or a checkpoint it lacks: gossip is fast, sync is what heals a partition or a
 * restart. A peer that sends provably bad bytes (offences, sync.ts) is scored down (gossipsub's own
 * score plus an application score) and, at the third strike or at once for another genesis,
 * disconnected and refused for `banMs`.
 *
 * @module
 */
import { EventEmitter } from 'node:events'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { CID } from 'multiformats/cid'
import { decodeCheckpoint, type Checkpoint } from '../../src/chain/checkpoint.ts'
import { decodeHeader, headerCid } from '../../src/chain/header.ts'
import { checkPow, checkSignature } from '../../src/chain/validate.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { RuleError } from '../../src/errors.ts'
import { decodeCbor } from '../../src/codec/cbor.ts'
import { CERT_KIND } from '../../src/chain/pol.ts'
import type { PolService } from '../pol/service.ts'
import type { DatasetScreener } from '../pol/screener.ts'
import { DECISION_KIND, decisionBodyBytes, decodeDecision } from '../../src/chain/decision.ts'
import { checkSignatures } from '../../src/chain/quorum.ts'
import type { MetaDocument } from '../../src/chain/meta.ts'
import { storedSubmissionCar } from '../node/archive.ts'
import type { FullNode } from '../node/full-node.ts'
import { createPeerHost, type PeerHost } from './host.ts'
import { MAX_GOSSIP_BYTES, decodeBlockAnnouncement, encodeBlockAnnouncement, topicsOf, type HeadInfo, type StatusMessage } from './messages.ts'
import { PeerRequests, serveRequests, storeStatus } from './reqresp.ts'
import { BlockImporter, OFFENCE_CODES, isAhead, type BitswapStats, type Offence } from './sync.ts'
import type { Bitswap } from '@helia/bitswap'
import { startBitswap, wantBlock } from './bitswap.ts'

/** gossipsub's validator verdicts (string values of its TopicValidatorResult enum). */
type Verdict = 'accept' | 'ignore' | 'reject'

export interface NetworkOptions {
  readonly node: FullNode
  readonly privateKey: Parameters<typeof createPeerHost>[0]['privateKey']
  /** Multiaddrs to listen on (default: a free TCP port on 127.0.0.1). */
  readonly listen?: readonly string[]
  /** Multiaddrs of peers to dial and keep dialling (with their /p2p/ id). */
  readonly peers?: readonly string[]
  /** The node's PoL service: candidates and PoL votes travel through it (validators on their own nodes). */
  readonly pol?: PolService
  /** The node's dataset screener (a validator's node): decision votes travel through it. */
  readonly screener?: DatasetScreener
  /** This node's validator key (33 bytes), announced in its status; null for a relay. */
  readonly validator?: Uint8Array | null
  /** How often peers' status is polled (and a peer ahead synced from). @default 2000 */
  readonly statusIntervalMs?: number
  /** How long a banned peer is refused. @default 10 minutes */
  readonly banMs?: number
  readonly log?: (line: string) => void
}

/** What this node knows of a peer, for /api/status and the explorer's Network view. */
export interface PeerInfo {
  readonly id: string
  readonly addrs: readonly string[]
  /** Round trip of the last ping, ms. */
  readonly latencyMs: number | null
  /** gossipsub's score of the peer (application score included). */
  readonly score: number
  readonly strikes: number
  readonly heads: Readonly<Partial<Record<'A' | 'B' | 'C' | 'D', HeadInfo>>> | null
  readonly checkpoint: number | null
  /** The validator key it announced (hex), or null (a relay). */
  readonly validator: string | null
  readonly relays: readonly string[]
  /** When its status was last read (ms since the epoch). */
  readonly seenAt: number | null
}

/** Where a block this node holds came from (the explorer shows it on a block page). */
export interface Provenance {
  /** The peer id it came from, or `local` (an HTTP submission, this node's own service). */
  readonly from: string
  readonly at: number
}

/** What the HTTP API shows of the peer network (/api/status, a block's provenance). */
export interface NetworkView {
  readonly peerId: string
  submitDecisionVote(bytes: Uint8Array): Promise<'counted' | 'forwarded'>
  multiaddrs(): string[]
  peers(): PeerInfo[]
  relays(): string[]
  provenance(cid: CID): Provenance | undefined
}

export interface NetworkEvents {
  /** A peer broke a rule (it lost score; `banned` when it was disconnected for it). */
  offence: [offence: Offence, banned: boolean]
  /** A sync from a peer brought blocks or checkpoints. */
  synced: [peer: string, accepted: number, checkpoints: number, ms: number]
}

/** Strikes after which a peer is disconnected and refused. */
const STRIKES_TO_BAN = 3
/** Provenance entries kept (newest). */
const MAX_PROVENANCE = 50_000

export class PeerNetwork extends EventEmitter<NetworkEvents> implements NetworkView {
  readonly host: PeerHost
  readonly node: FullNode
  readonly #requests: PeerRequests
  readonly #importer: BlockImporter
  readonly #topics: ReturnType<typeof topicsOf>
  readonly #static: readonly Multiaddr[]
  readonly #validator: Uint8Array | null
  readonly #banMs: number
  readonly #log: (line: string) => void
  readonly #strikes = new Map<string, number>()
  readonly #banned = new Map<string, number>()
  readonly #status = new Map<string, { status: StatusMessage; at: number; latencyMs: number | null }>()
  readonly #provenance = new Map<string, Provenance>()
  readonly #relays = new Set<string>()
  #ownRelay: string | null = null
  #syncing: Promise<void> | null = null
  #timer: ReturnType<typeof setInterval> | null = null
  #unserve: (() => Promise<void>) | null = null
  #stopped = false
  readonly #onAccepted: (block: AcceptedBlock) => void
  readonly #onVote: (bytes: Uint8Array) => void
  readonly #onFinalized: (checkpoint: Checkpoint, bytes: Uint8Array) => void
  readonly #pol: PolService | null
  readonly #screener: DatasetScreener | null
  readonly #onCandidate: (header: Uint8Array, car: Uint8Array) => void

  readonly #bitswap: Bitswap

  private constructor(
    host: PeerHost, bitswap: Bitswap, options: NetworkOptions, staticPeers: readonly Multiaddr[], genesis: CID, banned: Map<string, number>, strikes: Map<string, number>
  ) {
    super()
    this.host = host
    this.#bitswap = bitswap
    this.node = options.node
    this.#banned = banned
    this.#strikes = strikes
    this.#requests = new PeerRequests(host)
    this.#importer = new BlockImporter({ node: options.node, requests: this.#requests, onOffence: (o) => this.#offence(o), want: (cid, signal) => wantBlock(bitswap, cid, signal) })
    this.#topics = topicsOf(genesis)
    this.#static = staticPeers
    this.#validator = options.validator ?? null
    this.#banMs = options.banMs ?? 10 * 60 * 1000
    this.#log = options.log ?? (() => undefined)
    this.#onAccepted = (block) => this.#announce(block)
    this.#onVote = (bytes) => this.#publish(this.#topics.votes, bytes)
    this.#onFinalized = (_checkpoint, bytes) => this.#publish(this.#topics.votes, bytes)
    this.#pol = options.pol ?? null
    this.#screener = options.screener ?? null
    this.#onCandidate = (header, car) => this.#publish(this.#topics.candidates, encodeBlockAnnouncement(header, car))
  }

  /** Start the host, serve the protocols, join the topics, dial the peers, and follow the network. */
  static async start(options: NetworkOptions): Promise<PeerNetwork> {
    const genesis = options.node.store.genesis()
    if (genesis === undefined) throw new Error('the store has no genesis: make one (blyan init) or join a network (blyan init --join) first')
    const { multiaddr } = await import('@multiformats/multiaddr')
    const staticPeers = (options.peers ?? []).map((p) => {
      try {
        return multiaddr(p)
      } catch (e) {
        throw new Error(`--peer ${p} is not a multiaddr (${e instanceof Error ? e.message : String(e)}); expected /ip4/HOST/tcp/PORT/p2p/PEER_ID`)
      }
    })
    // The ban list and strikes exist before the host, whose connection gater reads them.
    const banned = new Map<string, number>()
    const strikes = new Map<string, number>()
    const host = await createPeerHost({
      privateKey: options.privateKey,
      ...(options.listen === undefined ? {} : { listen: options.listen }),
      isBanned: (peer) => (banned.get(peer.toString()) ?? 0) > Date.now(),
      appScore: (peer) => -100 * (strikes.get(peer) ?? 0)
    })
    const net = new PeerNetwork(host, await startBitswap(host, options.node.store), options, staticPeers, genesis.cid, banned, strikes)
    await net.#start(options.statusIntervalMs ?? 2000)
    return net
  }

  async #start(intervalMs: number): Promise<void> {
    this.#unserve = await serveRequests(this.host, {
      store: this.node.store,
      status: () => ({ ...storeStatus(this.node.store), validator: this.#validator, relays: this.relays() }),
      onBadRequest: (peer, e) => this.#offence({ peer, code: e instanceof RuleError ? e.code : 'E_SCHEMA', message: e instanceof Error ? e.message : String(e) })
    })
    const pubsub = this.host.services.pubsub
    pubsub.topicValidators.set(this.#topics.blocks, (peer, message) => this.#validateBlock(peer, message.data) as never)
    pubsub.topicValidators.set(this.#topics.votes, (peer, message) => this.#validateVote(peer, message.data) as never)
    pubsub.topicValidators.set(this.#topics.candidates, (peer, message) => this.#validateCandidate(peer, message.data) as never)
    pubsub.subscribe(this.#topics.blocks)
    pubsub.subscribe(this.#topics.votes)
    pubsub.subscribe(this.#topics.candidates)
    this.node.on('accepted', this.#onAccepted)
    this.node.on('vote', this.#onVote)
    this.node.on('finalized', this.#onFinalized)
    this.#pol?.on('candidate', this.#onCandidate)
    this.#pol?.on('vote', this.#onVote)
    this.#screener?.on('vote', this.#onVote)
    this.host.addEventListener('peer:identify', (e) => {
      void this.#poll(e.detail.peerId).catch(() => undefined)
    })
    this.#dialStatic()
    this.#timer = setInterval(() => {
      this.#dialStatic()
      void this.node.aggregate().catch(() => undefined)
      for (const peer of this.host.getPeers()) void this.#poll(peer).catch(() => undefined)
    }, intervalMs)
    this.#timer.unref()
  }

  /** Multiaddrs this node listens on, with its peer id. */
  multiaddrs(): string[] {
    return this.host.getMultiaddrs().map(String)
  }

  get peerId(): string {
    return this.host.peerId.toString()
  }

  /** Tell peers where this node serves browsers (its own HTTP URL, announced in status). */
  setRelayUrl(url: string): void {
    this.#ownRelay = url.replace(/\/$/, '')
  }

  /** HTTP relays this node knows: its own first, then those its peers announced (at most 16). */
  relays(): string[] {
    const all = new Set<string>()
    if (this.#ownRelay !== null) all.add(this.#ownRelay)
    for (const r of this.#relays) all.add(r)
    return [...all].slice(0, 16)
  }

  peers(): PeerInfo[] {
    const pubsub = this.host.services.pubsub as unknown as { getScore?: (id: string) => number }
    return this.host.getPeers().map((peer) => {
      const id = peer.toString()
      const s = this.#status.get(id)
      return {
        id,
        addrs: this.host.getConnections(peer).map((c) => c.remoteAddr.toString()),
        latencyMs: s?.latencyMs ?? null,
        score: pubsub.getScore?.(id) ?? 0,
        strikes: this.#strikes.get(id) ?? 0,
        heads: s?.status.heads ?? null,
        checkpoint: s?.status.checkpoint ?? null,
        validator: s?.status.validator === null || s === undefined ? null : Buffer.from(s.status.validator).toString('hex'),
        relays: s?.status.relays ?? [],
        seenAt: s?.at ?? null
      }
    })
  }

  /**
   * A validator's decision vote given to this node over HTTP (`blyan dataset approve` with one key):
   * checked (its rules block known here, its signers validators of it), counted by this node's
   * screener if it has one, and sent to the network. RuleError for a vote that breaks a rule.
   */
  async submitDecisionVote(bytes: Uint8Array): Promise<'counted' | 'forwarded'> {
    const vote = decodeDecision(bytes)
    const rules = this.node.store.get(vote.meta)
    if (rules === undefined || rules.header.chain_id !== 'A') throw new RuleError('E_UNKNOWN_DEP', 'decision.meta', `${vote.meta} is not a chain A block here`)
    checkSignatures(decisionBodyBytes(vote), vote.signatures, rules.document as MetaDocument, 'decision', false)
    const counted = this.#screener === null ? 'ignored' : await this.#screener.submitVote(bytes)
    this.#publish(this.#topics.votes, bytes)
    return counted === 'counted' ? 'counted' : 'forwarded'
  }

  /** Payload tiles this node fetched by bitswap (blocks and bytes). */
  get bitswapStats(): Readonly<BitswapStats> {
    return this.#importer.bitswap
  }

  /** Where a block came from, when this node got it while running. */
  provenance(cid: CID): Provenance | undefined {
    return this.#provenance.get(cid.toString())
  }

  /** Sync from every connected peer that is ahead, now (the periodic poll does this anyway). */
  async syncNow(): Promise<void> {
    await Promise.all(this.host.getPeers().map((p) => this.#poll(p).catch(() => undefined)))
    await this.#syncing
  }

  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer !== null) clearInterval(this.#timer)
    this.node.off('accepted', this.#onAccepted)
    this.node.off('vote', this.#onVote)
    this.node.off('finalized', this.#onFinalized)
    this.#pol?.off('candidate', this.#onCandidate)
    this.#pol?.off('vote', this.#onVote)
    this.#screener?.off('vote', this.#onVote)
    await this.#syncing?.catch(() => undefined)
    await this.#unserve?.()
    await this.#bitswap.stop()
    await this.host.stop()
  }

  // ----------------------------------------------------------------------------------- peers

  #dialStatic(): void {
    if (this.#stopped) return
    const connected = new Set(this.host.getPeers().map(String))
    for (const addr of this.#static) {
      const id = addr.getComponents().find((c) => c.name === 'p2p')?.value
      if (id !== undefined && connected.has(id)) continue
      void this.host.dial(addr, { signal: AbortSignal.timeout(5000) }).catch(() => undefined)
    }
  }

  /** Read a peer's status and latency; a peer on another network is banned; one that is ahead is synced from. */
  async #poll(peer: PeerId): Promise<void> {
    if (this.#stopped) return
    const id = peer.toString()
    const status = await this.#requests.status(peer)
    let latencyMs: number | null = null
    try {
      latencyMs = await this.host.services.ping.ping(peer, { signal: AbortSignal.timeout(5000) })
    } catch {
      // latency unknown this time
    }
    const genesis = this.node.store.genesis()
    if (status.genesis === null || genesis === undefined || !status.genesis.equals(genesis.cid)) {
      this.#offence({ peer, code: 'E_ANCHOR', message: `its genesis is ${String(status.genesis)}, this network's ${genesis?.cid.toString() ?? 'none'}` })
      return
    }
    this.#status.set(id, { status, at: Date.now(), latencyMs })
    for (const r of status.relays) if (this.#relays.size < 64) this.#relays.add(r.replace(/\/$/, ''))
    if (isAhead(this.node, status)) this.#sync(peer, status)
  }

  /** One sync at a time: a second request while one runs is dropped (the next poll asks again). */
  #sync(peer: PeerId, status: StatusMessage): void {
    if (this.#syncing !== null || this.#stopped) return
    this.#syncing = (async () => {
      try {
        const report = await this.#importer.syncFrom(peer, status)
        if (report.accepted > 0 || report.checkpoints > 0) {
          this.#log(`sync: ${report.accepted} blocks and ${report.checkpoints} checkpoints from ${peer.toString().slice(-8)} in ${report.ms} ms`)
          this.emit('synced', peer.toString(), report.accepted, report.checkpoints, report.ms)
        }
      } catch (e) {
        if (!this.#stopped) this.#log(`sync from ${peer.toString().slice(-8)} stopped: ${e instanceof Error ? e.message : String(e)}`)
      } finally {
        this.#syncing = null
      }
    })()
  }

  #offence(offence: Offence): void {
    const id = offence.peer.toString()
    const strikes = (this.#strikes.get(id) ?? 0) + 1
    this.#strikes.set(id, strikes)
    const banned = strikes >= STRIKES_TO_BAN || offence.code === 'E_ANCHOR'
    this.#log(`peer ${id.slice(-8)}: ${offence.message}${banned ? ' (disconnected)' : ` (strike ${strikes})`}`)
    if (banned) {
      this.#banned.set(id, Date.now() + this.#banMs)
      void this.host.hangUp(offence.peer).catch(() => undefined)
    }
    this.emit('offence', offence, banned)
  }

  // ---------------------------------------------------------------------------------- gossip

  /** A block this node accepted from its own sources goes out on the blocks topic. */
  #announce(block: AcceptedBlock): void {
    const key = block.cid.toString()
    if (this.#importer.importing(block.cid)) return
    this.#remember(key, 'local')
    void storedSubmissionCar(this.node.store, block)
      .then((car) => this.#publish(this.#topics.blocks, encodeBlockAnnouncement(this.node.store.getRaw(block.cid) as Uint8Array, car)))
      .catch((e: unknown) => this.#log(`gossip: could not announce ${key}: ${e instanceof Error ? e.message : String(e)}`))
  }

  #publish(topic: string, data: Uint8Array): void {
    if (this.#stopped) return
    this.host.services.pubsub.publish(topic, data).catch((e: unknown) => this.#log(`gossip: publish failed: ${e instanceof Error ? e.message : String(e)}`))
  }

  #remember(cid: string, from: string): void {
    if (this.#provenance.has(cid)) return
    if (this.#provenance.size >= MAX_PROVENANCE) this.#provenance.delete(this.#provenance.keys().next().value as string)
    this.#provenance.set(cid, { from, at: Date.now() })
  }

  /**
   * The blocks topic's validator: Reject what is provably bad (it costs the sender score), Ignore
   * what this node cannot use yet or already has, Accept (forward) the rest. A block whose links are
   * here is judged in full before it is forwarded; one whose links are missing is forwarded on its
   * header's checks and brought in, with its links, from the peer.
   */
  async #validateBlock(peer: PeerId, data: Uint8Array): Promise<Verdict> {
    let headerBytes: Uint8Array
    let car: Uint8Array | null
    let cid: CID
    try {
      const a = decodeBlockAnnouncement(data)
      headerBytes = a.header
      car = a.car
      cid = headerCid(headerBytes)
      const header = decodeHeader(headerBytes)
      if (this.node.store.get(cid) !== undefined) return 'ignore'
      checkPow(cid, header.difficulty)
      checkSignature(header)
    } catch (e) {
      return this.#rejectGossip(peer, e)
    }
    const key = cid.toString()
    this.#remember(key, peer.toString())
    if (car !== null && this.#importer.linksKnown(headerBytes)) {
      const outcome = await this.#importer.importCar(car, peer)
      if (outcome.block !== null) return 'accept'
      return outcome.offence === null ? 'ignore' : 'reject'
    }
    // Its links (or its bytes) come from the peer, in the background.
    void this.#fetchAnnounced(peer, cid, car)
    return 'accept'
  }

  async #fetchAnnounced(peer: PeerId, cid: CID, car: Uint8Array | null): Promise<void> {
    try {
      const cars = car === null ? await this.#requests.blocksByRoot(peer, [cid], { files: false }) : [car]
      for (const c of cars) await this.#importer.importCar(c, peer)
    } catch (e) {
      this.#log(`gossip: could not bring in ${cid} from ${peer.toString().slice(-8)}: ${e instanceof Error ? e.message : String(e)}`)
    }
  }

  /**
   * The candidates topic: a PoL candidate (a new expert version without its certificate), admitted
   * by this node's PoL service with the same admission rules as an HTTP submission, so that every
   * validator judges it and a copy is refused network-wide.
   */
  async #validateCandidate(peer: PeerId, data: Uint8Array): Promise<Verdict> {
    if (this.#pol === null) return 'ignore'
    let car: Uint8Array | null
    try {
      car = decodeBlockAnnouncement(data).car
    } catch (e) {
      return this.#rejectGossip(peer, e)
    }
    if (car === null) return 'ignore'
    try {
      await this.node.submitOrQueue(car, this.#pol)
      return 'accept'
    } catch (e) {
      if (e instanceof RuleError && OFFENCE_CODES.has(e.code)) return this.#rejectGossip(peer, e)
      // Stale rules or base, a copy, a quota: not this node's to forward.
      return 'ignore'
    }
  }

  /** The votes topic: a finality vote or checkpoint (pooled by the node), or a PoL vote (counted by the PoL service). */
  async #validateVote(peer: PeerId, data: Uint8Array): Promise<Verdict> {
    let kind: unknown
    try {
      kind = (decodeCbor(data, MAX_GOSSIP_BYTES, 'vote') as { kind?: unknown } | null)?.kind
      if (kind === CERT_KIND) {
        if (this.#pol === null) return 'ignore'
        return this.#pol.submitVote(data) === 'counted' ? 'accept' : 'ignore'
      }
      if (kind === DECISION_KIND) {
        // A relay has no screener: it forwards what decodes (the decision block itself is judged by the rules when it comes).
        if (this.#screener === null) return (decodeDecision(data), 'accept')
        return (await this.#screener.submitVote(data)) === 'counted' ? 'accept' : 'ignore'
      }
      decodeCheckpoint(data)
    } catch (e) {
      return this.#rejectGossip(peer, e)
    }
    try {
      const outcome = await this.node.submitVote(data)
      return outcome.status === 'stale' ? 'ignore' : 'accept'
    } catch (e) {
      if (e instanceof RuleError && (e.code === 'E_CERT_SIG' || e.code === 'E_CERT_SIGNER')) return this.#rejectGossip(peer, e)
      // Out of sequence or naming heads this node lacks: not yet (the status poll syncs what is missing).
      return 'ignore'
    }
  }

  #rejectGossip(peer: PeerId, e: unknown): Verdict {
    if (!(e instanceof RuleError)) throw e
    if (OFFENCE_CODES.has(e.code) || e.code === 'E_CERT_SIGNER' || e.code === 'E_CHECKPOINT') this.#offence({ peer, code: e.code, message: `gossiped ${e.message}` })
    return 'reject'
  }
}

