/**
 * Talking to one relay: every route of its HTTP API (docs/api.md), typed, and its `/ws` feed of
 * accepted headers and finality checkpoints, kept open with reconnects and exponential backoff.
 * The site, both miners and the wallet use this one client.
 *
 * Nothing a relay answers is trusted here: header bytes are checked by sync.ts against their CIDs
 * and the rules, blocks by the CIDs that name them, and reports (jobs, balances, verdicts) are
 * reports. This module only moves bytes and reports failures as typed errors naming the relay.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import type { ChainId } from '../chain/header.ts'
import {
  candidateFrom, minerReportFrom, rejectionFrom,
  type BalanceReport, type CandidateInfo, type DatasetInfo, type Job, type LeaseRequest, type MinerReport, type RejectionInfo, type SubmitResult
} from './relay-api.ts'

/**
 * Why a relay could not be used: unreachable (network), an HTTP error status (with the API's error
 * `code`: E_QUOTA, LEASED, E_STALE_RULES, NOT_FOUND, ...), or an answer that is not what the API
 * documents.
 */
export class RelayError extends Error {
  override readonly name = 'RelayError'
  readonly relay: string
  readonly kind: 'unreachable' | 'http' | 'protocol'
  readonly status: number | null
  /** The API's error code for an HTTP error; `UNREACHABLE` or `PROTOCOL` otherwise. */
  readonly code: string
  constructor(relay: string, kind: RelayError['kind'], message: string, status: number | null = null, code?: string) {
    super(`${relay}: ${message}`)
    this.relay = relay
    this.kind = kind
    this.status = status
    this.code = code ?? (kind === 'http' ? `HTTP_${status}` : kind === 'unreachable' ? 'UNREACHABLE' : 'PROTOCOL')
  }
}

/** What sync needs of `GET /api/status`. */
export interface RelayStatus {
  readonly genesis: string | null
  readonly heads: Readonly<Record<ChainId, { readonly height: number; readonly cid: string } | null>>
  readonly blocks: number
  /** Other relays of the network the relay knows (HTTP base URLs; the site adds them to its relay set). */
  readonly relays: readonly string[]
  /** The node's libp2p listen multiaddrs (for `blyan init --join URL`); none off a peer network. */
  readonly listen: readonly string[]
}

/** A peer a relay's node sees on the peer network (`/api/status` `p2p.peers`). */
export interface NetworkPeer {
  readonly id: string
  readonly latencyMs: number | null
  readonly score: number | null
  readonly strikes: number
  /** Its validator key (hex), or null for a relay. */
  readonly validator: string | null
  readonly heads: Readonly<Partial<Record<ChainId, { readonly height: number; readonly cid: string }>>> | null
  readonly checkpoint: number | null
  readonly seenAt: number | null
}

/** A relay's node on the peer network: its peer id, listen multiaddrs and peers; null off one. Unverified (what the relay says). */
export interface NetworkStatus {
  readonly peerId: string
  readonly listen: readonly string[]
  readonly peers: readonly NetworkPeer[]
}

/** `/api/status`'s `p2p` part, checked for shape. */
function networkStatusOf(p2p: unknown): NetworkStatus | null {
  const o = p2p as { peerId?: unknown; listen?: unknown; peers?: unknown } | null
  if (o === null || typeof o !== 'object' || typeof o.peerId !== 'string' || !Array.isArray(o.peers)) return null
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)
  const peers = (o.peers as unknown[]).slice(0, 256).flatMap((raw): NetworkPeer[] => {
    const p = raw as Record<string, unknown> | null
    if (p === null || typeof p !== 'object' || typeof p['id'] !== 'string') return []
    const heads = p['heads'] !== null && typeof p['heads'] === 'object' ? p['heads'] as NetworkPeer['heads'] : null
    return [{
      id: p['id'], latencyMs: num(p['latencyMs']), score: num(p['score']), strikes: num(p['strikes']) ?? 0,
      validator: typeof p['validator'] === 'string' ? p['validator'] : null, heads, checkpoint: num(p['checkpoint']), seenAt: num(p['seenAt'])
    }]
  })
  return { peerId: o.peerId, listen: Array.isArray(o.listen) ? o.listen.filter((a): a is string => typeof a === 'string') : [], peers }
}

/** One header as `/api/headers` and `/ws` carry it: its CID and its DAG-CBOR bytes (hex). */
export interface HeaderEntry {
  readonly cid: string
  readonly header_hex: string
  /**
   * The CID of the PoL certificate the relay accepted the block with, as its block view names it. A
   * hint only: a new chain B version does not link its certificate (the certificate names the
   * block, so it cannot be inside it), and the bytes fetched by this CID are judged by the rules.
   */
  readonly certificate?: string
}

/** A block view's header entry (`/api/headers`, `/ws`), or null when it lacks cid or header_hex. */
function entryOf(b: { cid?: unknown; header_hex?: unknown; certificate?: unknown }): HeaderEntry | null {
  if (typeof b.cid !== 'string' || typeof b.header_hex !== 'string') return null
  const cert = (b.certificate as { cid?: unknown } | null | undefined)?.cid
  return typeof cert === 'string' ? { cid: b.cid, header_hex: b.header_hex, certificate: cert } : { cid: b.cid, header_hex: b.header_hex }
}

/** One finality checkpoint as `/api/checkpoints` and `/ws` carry it: its number, id (body CID) and DAG-CBOR bytes (hex). */
export interface CheckpointEntry {
  readonly number: number
  readonly id: string
  readonly hex: string
}

function checkpointEntryOf(c: unknown): CheckpointEntry | null {
  const o = c as { number?: unknown; id?: unknown; hex?: unknown } | null
  if (o === null || typeof o !== 'object' || typeof o.number !== 'number' || typeof o.id !== 'string' || typeof o.hex !== 'string') return null
  return { number: o.number, id: o.id, hex: o.hex }
}

/** Most headers asked for per page (the relay's maximum). */
export const HEADERS_PAGE = 1000

/** Base URL without trailing slashes: the key relays are known by. */
export function normalizeRelayUrl(url: string): string {
  const u = new URL(url)
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RangeError(`relay URL: http or https, got ${url}`)
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`
}

export interface RelayClient {
  readonly url: string
  status(signal?: AbortSignal): Promise<RelayStatus>
  /** The relay's node on the peer network (null: a one-machine network). */
  network(signal?: AbortSignal): Promise<NetworkStatus | null>
  /** Every accepted header of a chain with index >= from, page by page. */
  headers(chain: ChainId, from: number, signal?: AbortSignal): Promise<HeaderEntry[]>
  /** A block's raw bytes from the trustless gateway, or null when the relay does not have it (404). Unverified. */
  block(cid: string, signal?: AbortSignal): Promise<Uint8Array | null>
  /** Finality checkpoints with number >= from, in sequence (none from a relay that predates finality). */
  checkpoints(from: number, signal?: AbortSignal): Promise<CheckpointEntry[]>
  /** One validator's signed vote on a dataset proposal (a peer network): counted and carried to the other validators. */
  submitDecisionVote(bytes: Uint8Array, signal?: AbortSignal): Promise<'counted' | 'forwarded'>
  /** Submit a block as a submission CAR; a refusal throws RelayError with the rule code. */
  submit(car: Uint8Array, signal?: AbortSignal): Promise<SubmitResult>
  /** What the relay refused lately, newest first. */
  rejections(limit: number, signal?: AbortSignal): Promise<RejectionInfo[]>
  /** How a block reached the relay's node on the peer network: the peer id (or `local`) and when; null when it does not say. Unverified. */
  received(cid: string, signal?: AbortSignal): Promise<{ readonly from: string; readonly at: number } | null>
  /** The relay's refusal of a block CID, or null when it has none (accepted or unknown). */
  rejectionOf(cid: string, signal?: AbortSignal): Promise<RejectionInfo | null>
  /** The job board (a node with a PoL service). */
  jobs(signal?: AbortSignal): Promise<Job[]>
  lease(job: string, request: LeaseRequest, signal?: AbortSignal): Promise<void>
  release(job: string, request: LeaseRequest, signal?: AbortSignal): Promise<void>
  /** A candidate's record (RelayError 404 for one the node never admitted). */
  candidate(cid: string, signal?: AbortSignal): Promise<CandidateInfo>
  miner(publicKey: string, signal?: AbortSignal): Promise<MinerReport>
  balance(publicKey: string, signal?: AbortSignal): Promise<BalanceReport>
  /** Datasets proposed on the relay's chain D, their stages and gate reports. */
  datasets(signal?: AbortSignal): Promise<DatasetInfo[]>
  /** The gate report's DAG-CBOR bytes for a dataset (linked by its decision, or the node's own), or null when there is none. Unverified. */
  datasetReport(cid: string, signal?: AbortSignal): Promise<Uint8Array | null>
}

export function createRelayClient(url: string, fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis)): RelayClient {
  const base = normalizeRelayUrl(url)

  const request = async (path: string, init: RequestInit): Promise<Response> => {
    let res: Response
    try {
      res = await fetchImpl(`${base}${path}`, { ...init, cache: 'no-store' })
    } catch (e) {
      if (init.signal?.aborted === true) throw e
      throw new RelayError(base, 'unreachable', `unreachable (${e instanceof Error ? e.message : String(e)})`)
    }
    return res
  }

  /** A JSON answer; an HTTP error throws RelayError with the API's code and message. */
  const call = async (path: string, init: RequestInit = {}): Promise<unknown> => {
    const res = await request(path, init)
    const method = init.method ?? 'GET'
    const body = (await res.json().catch(() => undefined)) as { error?: { code?: unknown; message?: unknown } } | undefined
    if (!res.ok) {
      const code = typeof body?.error?.code === 'string' ? body.error.code : undefined
      const message = typeof body?.error?.message === 'string' ? body.error.message : `HTTP ${res.status}`
      throw new RelayError(base, 'http', `${method} ${path}: ${message}`, res.status, code)
    }
    if (typeof body !== 'object' || body === null) throw new RelayError(base, 'protocol', `${method} ${path}: not JSON`)
    return body
  }
  const json = (path: string, signal?: AbortSignal): Promise<unknown> => call(path, signal === undefined ? {} : { signal })
  const withSignal = (init: RequestInit, signal: AbortSignal | undefined): RequestInit => (signal === undefined ? init : { ...init, signal })
  const leaseCall = async (method: 'POST' | 'DELETE', job: string, body: LeaseRequest, signal: AbortSignal | undefined): Promise<void> => {
    await call(`/api/jobs/${encodeURIComponent(job)}/lease`, withSignal({ method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }, signal))
  }

  return {
    url: base,

    async status(signal) {
      const s = (await json('/api/status', signal)) as Partial<RelayStatus> | null
      if (s === null || typeof s !== 'object' || typeof s.heads !== 'object' || s.heads === null || !(s.genesis === null || typeof s.genesis === 'string')) {
        throw new RelayError(base, 'protocol', '/api/status lacks genesis or heads')
      }
      const raw = s as { relays?: unknown; p2p?: { listen?: unknown } | null }
      const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').slice(0, 64) : [])
      return {
        genesis: s.genesis, heads: s.heads, blocks: typeof s.blocks === 'number' ? s.blocks : 0,
        relays: strings(raw.relays).filter((r) => /^https?:\/\//.test(r)), listen: strings(raw.p2p?.listen)
      }
    },

    async network(signal) {
      const s = (await json('/api/status', signal)) as { p2p?: unknown } | null
      return networkStatusOf(s?.p2p ?? null)
    },

    async headers(chain, from, signal) {
      const out: HeaderEntry[] = []
      const seen = new Set<string>()
      let next = from
      for (;;) {
        const page = (await json(`/api/headers?chain=${chain}&from=${next}&limit=${HEADERS_PAGE}`, signal)) as { blocks?: unknown }
        if (!Array.isArray(page.blocks)) throw new RelayError(base, 'protocol', `/api/headers?chain=${chain} has no blocks list`)
        let added = 0
        let last = next
        for (const b of page.blocks as { cid?: unknown; header_hex?: unknown; certificate?: unknown; header?: { index?: unknown } }[]) {
          const entry = entryOf(b)
          if (entry === null) throw new RelayError(base, 'protocol', '/api/headers: an entry lacks cid or header_hex')
          if (typeof b.header?.index === 'number') last = Math.max(last, b.header.index)
          if (seen.has(entry.cid)) continue
          seen.add(entry.cid)
          out.push(entry)
          added++
        }
        // A short page is the last. A full page continues at its highest index (repeats are skipped);
        // a full page adding nothing new would loop forever, so it ends too.
        if (page.blocks.length < HEADERS_PAGE || added === 0) return out
        next = last
      }
    },

    async block(cid, signal) {
      const res = await request(`/ipfs/${cid}?format=raw`, { headers: { Accept: 'application/vnd.ipld.raw' }, ...(signal === undefined ? {} : { signal }) })
      if (res.status === 404) return null
      if (!res.ok) throw new RelayError(base, 'http', `block ${cid}: HTTP ${res.status}`, res.status)
      return new Uint8Array(await res.arrayBuffer())
    },

    async checkpoints(from, signal) {
      const out: CheckpointEntry[] = []
      for (let next = from; ;) {
        const page = (await json(`/api/checkpoints?from=${next}&limit=${HEADERS_PAGE}`, signal)) as { checkpoints?: unknown }
        if (!Array.isArray(page.checkpoints)) throw new RelayError(base, 'protocol', '/api/checkpoints has no checkpoints list')
        for (const c of page.checkpoints) {
          const entry = checkpointEntryOf(c)
          if (entry === null || entry.number !== next) throw new RelayError(base, 'protocol', `/api/checkpoints: entry ${out.length} is not checkpoint ${next}`)
          out.push(entry)
          next++
        }
        if (page.checkpoints.length < HEADERS_PAGE) return out
      }
    },

    async submitDecisionVote(bytes, signal) {
      const body = (await call('/api/datasets/votes', withSignal({ method: 'POST', headers: { 'Content-Type': 'application/vnd.ipld.dag-cbor' }, body: bytes as Uint8Array<ArrayBuffer> }, signal))) as { status?: unknown }
      if (body.status !== 'counted' && body.status !== 'forwarded') throw new RelayError(base, 'protocol', 'POST /api/datasets/votes: no status')
      return body.status
    },

    async submit(car, signal) {
      const body = (await call('/api/blocks', withSignal({ method: 'POST', headers: { 'Content-Type': 'application/vnd.ipld.car' }, body: car as Uint8Array<ArrayBuffer> }, signal))) as { accepted?: { cid?: unknown }; candidate?: unknown }
      if (typeof body.accepted?.cid === 'string') return { accepted: { cid: body.accepted.cid } }
      const candidate = candidateFrom(body.candidate)
      if (candidate === null) throw new RelayError(base, 'protocol', 'POST /api/blocks: neither an accepted block nor a candidate')
      return { candidate }
    },

    async rejections(limit, signal) {
      const n = Math.max(1, Math.min(Math.trunc(limit) || 100, 1000))
      const body = (await json(`/api/rejections?limit=${n}`, signal)) as { rejections?: unknown }
      if (!Array.isArray(body.rejections)) throw new RelayError(base, 'protocol', '/api/rejections has no rejections list')
      return body.rejections.map(rejectionFrom).filter((r): r is RejectionInfo => r !== null)
    },

    async received(cid, signal) {
      let body: { received?: { from?: unknown; at?: unknown } }
      try {
        body = (await json(`/api/blocks/${encodeURIComponent(cid)}`, signal)) as typeof body
      } catch (e) {
        if (e instanceof RelayError && e.status === 404) return null
        throw e
      }
      const r = body.received
      return typeof r?.from === 'string' && typeof r.at === 'number' ? { from: r.from, at: r.at } : null
    },

    async rejectionOf(cid, signal) {
      let body: { status?: unknown; rejection?: unknown }
      try {
        body = (await json(`/api/blocks/${encodeURIComponent(cid)}`, signal)) as typeof body
      } catch (e) {
        if (e instanceof RelayError && e.status === 404) return null
        throw e
      }
      return body.status === 'rejected' ? rejectionFrom(body.rejection) : null
    },

    async jobs(signal) {
      const body = (await json('/api/jobs', signal)) as { jobs?: unknown }
      if (!Array.isArray(body.jobs)) throw new RelayError(base, 'protocol', '/api/jobs has no jobs list')
      return body.jobs as Job[]
    },

    lease: (job, body, signal) => leaseCall('POST', job, body, signal),
    release: (job, body, signal) => leaseCall('DELETE', job, body, signal),

    async candidate(cid, signal) {
      const body = (await json(`/api/candidates/${encodeURIComponent(cid)}`, signal)) as { candidate?: unknown }
      const c = candidateFrom(body.candidate)
      if (c === null || c.cid !== cid) throw new RelayError(base, 'protocol', `the answer for candidate ${cid} is not one`)
      return c
    },

    async miner(publicKey, signal) {
      return minerReportFrom(await json(`/api/miners/${encodeURIComponent(publicKey)}`, signal))
    },

    async balance(publicKey, signal) {
      const body = (await json(`/api/balance/${encodeURIComponent(publicKey)}`, signal)) as { balance?: unknown; final_balance?: unknown }
      if (typeof body.balance !== 'number') throw new RelayError(base, 'protocol', 'the balance answer has no balance')
      return { balance: body.balance, finalBalance: typeof body.final_balance === 'number' ? body.final_balance : null }
    },

    async datasets(signal) {
      const body = (await json('/api/datasets', signal)) as { datasets?: unknown }
      if (!Array.isArray(body.datasets)) throw new RelayError(base, 'protocol', '/api/datasets has no datasets list')
      return body.datasets.map((d: Record<string, unknown>) => {
        if (typeof d['cid'] !== 'string' || typeof d['stage'] !== 'string') throw new RelayError(base, 'protocol', '/api/datasets: an entry lacks cid or stage')
        return {
          cid: d['cid'], index: Number(d['index']), name: String(d['name']), license: String(d['license']), split: d['split'] as DatasetInfo['split'],
          size: Number(d['size']), description: String(d['description'] ?? ''), proposer: String(d['proposer']), stage: d['stage'] as DatasetInfo['stage'],
          tier: (d['tier'] ?? null) as DatasetInfo['tier'], decision: typeof d['decision'] === 'string' ? d['decision'] : null,
          reasons: Array.isArray(d['reasons']) ? d['reasons'].map(String) : [], inForce: d['in_force'] === true,
          earned: typeof d['earned'] === 'number' ? d['earned'] : 0, learnedBy: Array.isArray(d['learned_by']) ? d['learned_by'] as DatasetInfo['learnedBy'] : [],
          reportCid: typeof d['report_cid'] === 'string' ? d['report_cid'] : null, report: (d['report'] ?? null) as DatasetInfo['report']
        }
      })
    },

    async datasetReport(cid, signal) {
      const res = await request(`/api/datasets/${encodeURIComponent(cid)}/report`, { headers: { Accept: 'application/vnd.ipld.dag-cbor' }, ...(signal === undefined ? {} : { signal }) })
      if (res.status === 404) return null
      if (!res.ok) throw new RelayError(base, 'http', `the report on ${cid}: HTTP ${res.status}`, res.status)
      return new Uint8Array(await res.arrayBuffer())
    }
  }
}

/**
 * A relay's trustless gateway as a block getter: the bytes it serves for a CID, unverified (check
 * them against the CID, as tile sources do), or RelayError `NOT_FOUND` when it lacks the block.
 */
export function relayBlockGetter(relay: RelayClient): (cid: CID, signal?: AbortSignal) => Promise<Uint8Array> {
  return async (cid, signal) => {
    const bytes = await relay.block(cid.toString(), signal)
    if (bytes === null) throw new RelayError(relay.url, 'http', `block ${cid}: not found`, 404, 'NOT_FOUND')
    return bytes
  }
}

// ----------------------------------------------------------------------------------- live feed

/** The WebSocket constructor to use (the browser's, or the `ws` package in Node). */
export type WebSocketFactory = new (url: string) => WebSocket

export interface FeedHandlers {
  /** The socket opened (the relay is reachable again). */
  onOpen(): void
  /** A header the relay accepted. */
  onHeader(entry: HeaderEntry): void
  /** A finality checkpoint the relay applied (verify it: it is only bytes from a relay). */
  onCheckpoint?(entry: CheckpointEntry): void
  /** The socket closed or failed; the next attempt is at `retryAt` (ms since the epoch). */
  onDown(reason: string, retryAt: number): void
}

export interface Backoff {
  /** First delay, ms. */
  readonly initialMs: number
  /** Largest delay, ms. */
  readonly maxMs: number
}

export const DEFAULT_BACKOFF: Backoff = Object.freeze({ initialMs: 1000, maxMs: 30_000 })

/** Delay before reconnect attempt `attempt` (0-based): doubling from initialMs, capped, with +-20% jitter so clients spread out. */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30))
  return Math.round(base * (0.8 + 0.4 * random()))
}

/**
 * Keep a `/ws` feed open: reconnect with backoff after any close, until `close()`. `wake()` makes a
 * waiting reconnect happen now (the user pressed retry, or another request just reached the relay).
 */
export function openFeed(url: string, handlers: FeedHandlers, options: { WebSocket?: WebSocketFactory; backoff?: Backoff } = {}): { close(): void; wake(): void } {
  const Ws = options.WebSocket ?? globalThis.WebSocket
  const backoff = options.backoff ?? DEFAULT_BACKOFF
  const wsUrl = `${normalizeRelayUrl(url).replace(/^http/, 'ws')}/ws`
  let attempt = 0
  let closed = false
  let socket: WebSocket | null = null
  let timer: ReturnType<typeof setTimeout> | null = null

  const connect = (): void => {
    timer = null
    if (closed) return
    let opened = false
    let reported = false
    const down = (reason: string): void => {
      if (reported || closed) return
      reported = true
      socket = null
      const delay = backoffDelay(opened ? 0 : attempt, backoff)
      attempt = opened ? 1 : attempt + 1
      handlers.onDown(reason, Date.now() + delay)
      timer = setTimeout(connect, delay)
    }
    try {
      socket = new Ws(wsUrl)
    } catch (e) {
      down(e instanceof Error ? e.message : String(e))
      return
    }
    socket.onopen = () => {
      opened = true
      attempt = 0
      handlers.onOpen()
    }
    socket.onmessage = (event: MessageEvent) => {
      if (typeof event.data !== 'string') return
      let message: { type?: unknown; block?: { cid?: unknown; header_hex?: unknown; certificate?: unknown }; checkpoint?: unknown }
      try {
        message = JSON.parse(event.data) as typeof message
      } catch {
        return
      }
      const entry = message.type === 'accepted' && typeof message.block === 'object' && message.block !== null ? entryOf(message.block) : null
      if (entry !== null) handlers.onHeader(entry)
      const checkpoint = message.type === 'finalized' ? checkpointEntryOf(message.checkpoint) : null
      if (checkpoint !== null) handlers.onCheckpoint?.(checkpoint)
    }
    socket.onerror = () => down('connection failed')
    socket.onclose = (event: CloseEvent) => down(opened ? `connection closed (${event.code})` : 'unreachable')
  }

  connect()
  return {
    close() {
      closed = true
      if (timer !== null) clearTimeout(timer)
      socket?.close()
    },
    wake() {
      if (timer === null || closed) return
      clearTimeout(timer)
      connect()
    }
  }
}
