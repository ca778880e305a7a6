/**
 * Request/response between nodes (messages.ts has the formats): status, blocks by range, blocks by
 * root, checkpoints. One request per libp2p stream, every message length-prefixed: the request,
 * then the answer's head (`ok` and a count, or why not), then `count` item frames.
 *
 * The server side answers from the chain store and nothing else; each peer has a request budget
 * (a token bucket) so one peer cannot keep the node busy serving it. The client side checks only
 * framing and sizes: what the items are worth is for the full node to judge (sync.ts).
 *
 * @module
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { CID } from 'multiformats/cid'
import { CHAIN_IDS } from '../../src/chain/header.ts'
import { RuleError } from '../../src/errors.ts'
import type { ChainStore } from '../node/interface.ts'
import { storedSubmissionCar } from '../node/archive.ts'
import {
  MAX_FRAME_BYTES, MAX_ITEMS_PER_RESPONSE, MAX_REQUEST_BYTES, PROTOCOLS, decodeRequest, decodeResponseHead, decodeStatus, encodeRequest, encodeResponseHead, encodeStatus,
  type ResponseCode, type StatusMessage
} from './messages.ts'
import type { PeerHost } from './host.ts'

/** A peer answered a request with a refusal, or not in the protocol's shape. */
export class PeerRequestError extends Error {
  override readonly name = 'PeerRequestError'
  readonly peer: string
  /** The peer's refusal code, or `protocol` for an answer that breaks the framing. */
  readonly code: ResponseCode | 'protocol'
  constructor(peer: string, code: ResponseCode | 'protocol', message: string, options?: { cause?: unknown }) {
    super(`peer ${peer.slice(-8)}: ${message}`, options)
    this.peer = peer
    this.code = code
  }
}

/** Requests a peer may make: a bucket of `burst` tokens refilled at `perSecond`. */
export interface RequestBudget {
  readonly burst: number
  readonly perSecond: number
}

export const DEFAULT_REQUEST_BUDGET: RequestBudget = Object.freeze({ burst: 200, perSecond: 50 })

/** How long one request may take, end to end. */
export const REQUEST_TIMEOUT_MS = 30_000

export interface ServeOptions {
  readonly store: ChainStore
  /** This node's status (its validator key, the relays it knows). */
  readonly status: () => Omit<StatusMessage, 'kind' | 'version'>
  readonly budget?: RequestBudget
  /** A request that broke the protocol (the network counts it against the peer). */
  readonly onBadRequest?: (peer: PeerId, error: unknown) => void
}

/** The status a store gives: genesis, heads, last checkpoint, size. */
export function storeStatus(store: ChainStore): Pick<StatusMessage, 'genesis' | 'heads' | 'checkpoint' | 'blocks'> {
  const heads: Partial<Record<(typeof CHAIN_IDS)[number], { cid: CID; index: number }>> = {}
  for (const c of CHAIN_IDS) {
    const h = store.head(c)
    if (h !== undefined) heads[c] = { cid: h.cid, index: h.header.index }
  }
  return { genesis: store.genesis()?.cid ?? null, heads, checkpoint: store.checkpoint()?.number ?? null, blocks: store.size }
}

/** Register the four protocols' handlers on `host`; returns a function that unregisters them. */
export async function serveRequests(host: PeerHost, options: ServeOptions): Promise<() => Promise<void>> {
  const buckets = new Map<string, { tokens: number; at: number }>()
  const budget = options.budget ?? DEFAULT_REQUEST_BUDGET
  const take = (peer: PeerId): boolean => {
    const key = peer.toString()
    const now = Date.now()
    const b = buckets.get(key) ?? { tokens: budget.burst, at: now }
    b.tokens = Math.min(budget.burst, b.tokens + ((now - b.at) / 1000) * budget.perSecond)
    b.at = now
    buckets.set(key, b)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  const handle = (answer: (request: Uint8Array) => Promise<Uint8Array[]>, readsRequest: boolean) => async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
    const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
    try {
      const request = readsRequest ? (await lp.read({ signal })).subarray() : new Uint8Array()
      if (!take(peer)) {
        await lp.write(encodeResponseHead('rate_limited', 0, `over ${budget.perSecond} requests/s`), { signal })
      } else {
        let items: Uint8Array[]
        try {
          items = await answer(request)
        } catch (e) {
          if (!(e instanceof RuleError)) throw e
          options.onBadRequest?.(peer, e)
          await lp.write(encodeResponseHead('bad_request', 0, e.message), { signal })
          await stream.close({ signal })
          return
        }
        await lp.write(encodeResponseHead('ok', items.length), { signal })
        for (const item of items) await lp.write(item, { signal })
      }
      await stream.close({ signal })
    } catch (e) {
      stream.abort(e instanceof Error ? e : new Error(String(e)))
    }
  }

  const store = options.store
  const blocks = async (request: Uint8Array): Promise<Uint8Array[]> => {
    const r = decodeRequest(request)
    if (r.kind === 'blyan/checkpoints') return store.checkpoints(r.from, r.count).map((c) => c.bytes)
    const found = r.kind === 'blyan/blocks-by-range'
      ? store.headers(r.chain, r.from, r.from + r.count - 1, MAX_ITEMS_PER_RESPONSE)
      : r.roots.map((cid) => store.get(cid)).filter((b) => b !== undefined)
    return Promise.all(found.map((b) => storedSubmissionCar(store, b, { files: r.files })))
  }
  await host.handle(PROTOCOLS.status, handle(async () => [encodeStatus(options.status())], false))
  await host.handle(PROTOCOLS.blocksByRange, handle(blocks, true))
  await host.handle(PROTOCOLS.blocksByRoot, handle(blocks, true))
  await host.handle(PROTOCOLS.checkpoints, handle(blocks, true))
  return async () => {
    for (const p of Object.values(PROTOCOLS)) await host.unhandle(p)
  }
}

/** Ask `peer` and read the whole answer: the item frames, in order. */
async function ask(host: PeerHost, peer: PeerId, protocol: string, request: Uint8Array | null, signal?: AbortSignal): Promise<Uint8Array[]> {
  const who = peer.toString()
  const deadline = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  const s = signal === undefined ? deadline : AbortSignal.any([signal, deadline])
  let stream: Stream
  try {
    stream = await host.dialProtocol(peer, protocol, { signal: s })
  } catch (e) {
    throw new PeerRequestError(who, 'unavailable', `cannot open ${protocol}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
  const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
  try {
    if (request !== null) await lp.write(request, { signal: s })
    const head = decodeResponseHead((await lp.read({ signal: s })).subarray())
    if (head.code !== 'ok') throw new PeerRequestError(who, head.code, `refused ${protocol}: ${head.code}${head.message === '' ? '' : ` (${head.message})`}`)
    const items: Uint8Array[] = []
    for (let i = 0; i < head.count; i++) items.push((await lp.read({ signal: s })).subarray())
    await stream.close({ signal: s }).catch(() => undefined)
    return items
  } catch (e) {
    stream.abort(e instanceof Error ? e : new Error(String(e)))
    if (e instanceof PeerRequestError) throw e
    if (e instanceof RuleError) throw new PeerRequestError(who, 'protocol', `malformed answer to ${protocol}: ${e.message}`, { cause: e })
    throw new PeerRequestError(who, 'unavailable', `${protocol} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
}

/** The client side: one function per protocol. */
export class PeerRequests {
  readonly #host: PeerHost
  constructor(host: PeerHost) {
    this.#host = host
  }

  async status(peer: PeerId, signal?: AbortSignal): Promise<StatusMessage> {
    const [frame] = await ask(this.#host, peer, PROTOCOLS.status, null, signal)
    if (frame === undefined) throw new PeerRequestError(peer.toString(), 'protocol', 'status answer without a status')
    try {
      return decodeStatus(frame)
    } catch (e) {
      throw new PeerRequestError(peer.toString(), 'protocol', `malformed status: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
    }
  }

  /** Submission CARs of the peer's blocks of one chain, index from .. from+count-1. */
  blocksByRange(peer: PeerId, chain: (typeof CHAIN_IDS)[number], from: number, count: number, options: { files?: boolean; signal?: AbortSignal } = {}): Promise<Uint8Array[]> {
    return ask(this.#host, peer, PROTOCOLS.blocksByRange, encodeRequest({ kind: 'blyan/blocks-by-range', version: 1, chain, from, count, files: options.files ?? true }), options.signal)
  }

  /** Submission CARs of the blocks `roots` names (those the peer has). */
  blocksByRoot(peer: PeerId, roots: readonly CID[], options: { files?: boolean; signal?: AbortSignal } = {}): Promise<Uint8Array[]> {
    return ask(this.#host, peer, PROTOCOLS.blocksByRoot, encodeRequest({ kind: 'blyan/blocks-by-root', version: 1, roots, files: options.files ?? true }), options.signal)
  }

  /** The peer's final checkpoints from `from` (documents with a quorum of signatures). */
  checkpoints(peer: PeerId, from: number, count: number, signal?: AbortSignal): Promise<Uint8Array[]> {
    return ask(this.#host, peer, PROTOCOLS.checkpoints, encodeRequest({ kind: 'blyan/checkpoints', version: 1, from, count }), signal)
  }
}

