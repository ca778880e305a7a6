/**
 * The node-to-node wire formats (docs/protocol.md §Peer network has vectors): gossip topics and
 * their messages, and the request/response protocols. Every message is one strict DAG-CBOR map
 * (src/codec/cbor.ts: one valid encoding, size-limited before decoding); a malformed one is a
 * RuleError (E_SCHEMA, E_DECODE, E_TOO_LARGE), which the network counts against its sender.
 *
 * Blocks travel as the submission CARs `FullNode.submitCar` takes (src/chain/submission.ts), so a
 * block from a peer is judged by exactly the rules and the one atomic write of any submission.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { decodeCbor, encodeCbor } from '../../src/codec/cbor.ts'
import * as S from '../../src/codec/schema.ts'
import { CHAIN_IDS, type ChainId } from '../../src/chain/header.ts'
import { reject } from '../../src/errors.ts'

/** Largest gossip message: a block whose submission CAR is larger is announced by its header alone. */
export const MAX_GOSSIP_BYTES = 64 * 1024
/** Largest request, and largest response frame other than a block (a status, a checkpoint). */
export const MAX_REQUEST_BYTES = 64 * 1024
/** Largest response frame: one submission CAR (a chain B block carries its whole expert). */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024
/** Most heights one blocks-by-range request spans, and most roots one blocks-by-root request names. */
export const MAX_BLOCKS_PER_REQUEST = 64
/** Most item frames in one answer (a range of chain B heights holds every expert's version at each). */
export const MAX_ITEMS_PER_RESPONSE = 1024
/** Most checkpoints one request may ask for. */
export const MAX_CHECKPOINTS_PER_REQUEST = 256

/** Request/response protocol ids (libp2p multistream-select names). They do not name a network: status says which one a peer is on. */
export const PROTOCOLS = Object.freeze({
  status: '/blyan/status/1',
  blocksByRange: '/blyan/blocks-by-range/1',
  blocksByRoot: '/blyan/blocks-by-root/1',
  checkpoints: '/blyan/checkpoints/1'
})

/** Gossip topics of the network whose chain A genesis is `genesis`: a node of another network never shares one. */
export function topicsOf(genesis: CID): { readonly blocks: string; readonly votes: string; readonly candidates: string } {
  const g = genesis.toString()
  return { blocks: `/blyan/${g}/blocks/1`, votes: `/blyan/${g}/votes/1`, candidates: `/blyan/${g}/candidates/1` }
}

// ------------------------------------------------------------------------------------- gossip

export const BLOCK_ANNOUNCEMENT_KIND = 'blyan/block-announcement'

/**
 * A block on the blocks topic: its header, and its whole submission CAR when the message stays
 * within MAX_GOSSIP_BYTES (else `car` is null and receivers fetch it by blocks-by-root from the
 * peer that forwarded it). The message id is the SHA-256 of the message bytes, so a block is
 * carried once however many nodes publish it.
 */
export interface BlockAnnouncement {
  readonly kind: typeof BLOCK_ANNOUNCEMENT_KIND
  readonly version: 1
  readonly header: Uint8Array
  readonly car: Uint8Array | null
}

export function encodeBlockAnnouncement(header: Uint8Array, car: Uint8Array | null): Uint8Array {
  const message = (c: Uint8Array | null): Uint8Array => encodeCbor({ kind: BLOCK_ANNOUNCEMENT_KIND, version: 1, header, car: c })
  if (car === null) return message(null)
  const whole = message(car)
  return whole.length <= MAX_GOSSIP_BYTES ? whole : message(null)
}

export function decodeBlockAnnouncement(bytes: Uint8Array): BlockAnnouncement {
  const o = S.exactMap(decodeCbor(bytes, MAX_GOSSIP_BYTES, 'announcement'), ['kind', 'version', 'header', 'car'], 'announcement')
  if (o['kind'] !== BLOCK_ANNOUNCEMENT_KIND || o['version'] !== 1) reject('E_SCHEMA', 'announcement.kind', `expected ${BLOCK_ANNOUNCEMENT_KIND} version 1`)
  return { kind: BLOCK_ANNOUNCEMENT_KIND, version: 1, header: S.bytes(o, 'header', 'announcement'), car: o['car'] === null ? null : S.bytes(o, 'car', 'announcement') }
}

// ----------------------------------------------------------------------------- request/response

/** A chain's head as a peer sees it. */
export interface HeadInfo {
  readonly cid: CID
  readonly index: number
}

export const STATUS_KIND = 'blyan/status'

/** A node's answer to a status request: which network, how far it is, and how to reach it. */
export interface StatusMessage {
  readonly kind: typeof STATUS_KIND
  readonly version: 1
  /** Its chain A genesis (the network); null for a node that has none yet. */
  readonly genesis: CID | null
  /** Fork-choice head of each chain it has (B: the highest index). */
  readonly heads: Readonly<Partial<Record<ChainId, HeadInfo>>>
  /** Number of its last final checkpoint, or null. */
  readonly checkpoint: number | null
  /** Accepted blocks it holds. */
  readonly blocks: number
  /** Validator key it holds (33 bytes), or null for a node without one (a relay). */
  readonly validator: Uint8Array | null
  /** HTTP base URLs where it, and relays it knows, serve browsers (the site, /api, the gateway, /ws). */
  readonly relays: readonly string[]
}

export function encodeStatus(status: Omit<StatusMessage, 'kind' | 'version'>): Uint8Array {
  const heads: Record<string, { cid: CID; index: number }> = {}
  for (const c of CHAIN_IDS) {
    const h = status.heads[c]
    if (h !== undefined) heads[c] = { cid: h.cid, index: h.index }
  }
  return encodeCbor({ kind: STATUS_KIND, version: 1, genesis: status.genesis, heads, checkpoint: status.checkpoint, blocks: status.blocks, validator: status.validator, relays: [...status.relays] })
}

export function decodeStatus(bytes: Uint8Array): StatusMessage {
  const o = S.exactMap(decodeCbor(bytes, MAX_REQUEST_BYTES, 'status'), ['kind', 'version', 'genesis', 'heads', 'checkpoint', 'blocks', 'validator', 'relays'], 'status')
  if (o['kind'] !== STATUS_KIND || o['version'] !== 1) reject('E_SCHEMA', 'status.kind', `expected ${STATUS_KIND} version 1`)
  const rawHeads = o['heads']
  if (typeof rawHeads !== 'object' || rawHeads === null || Array.isArray(rawHeads)) reject('E_SCHEMA', 'status.heads', 'expected a map')
  const heads: Partial<Record<ChainId, HeadInfo>> = {}
  for (const key of Object.keys(rawHeads)) {
    if (!(CHAIN_IDS as readonly string[]).includes(key)) reject('E_SCHEMA', `status.heads.${key}`, 'unknown chain')
    const h = S.exactMap((rawHeads as S.Fields)[key], ['cid', 'index'], `status.heads.${key}`)
    heads[key as ChainId] = { cid: S.cid(h, 'cid', `status.heads.${key}`), index: S.uint(h, 'index', `status.heads.${key}`) }
  }
  const relays = S.list(o, 'relays', 'status', 16).map((r, i) => {
    if (typeof r !== 'string' || r.length > 256 || !/^https?:\/\/[^\s]+$/.test(r)) reject('E_SCHEMA', `status.relays[${i}]`, 'expected an http(s) URL of at most 256 characters')
    return r
  })
  return {
    kind: STATUS_KIND,
    version: 1,
    genesis: S.cidOrNull(o, 'genesis', 'status'),
    heads,
    checkpoint: o['checkpoint'] === null ? null : S.uint(o, 'checkpoint', 'status'),
    blocks: S.uint(o, 'blocks', 'status'),
    validator: o['validator'] === null ? null : S.bytes(o, 'validator', 'status', 33),
    relays
  }
}

export const RANGE_KIND = 'blyan/blocks-by-range'
export const ROOT_KIND = 'blyan/blocks-by-root'
export const CHECKPOINTS_KIND = 'blyan/checkpoints'

/**
 * Accepted blocks of `chain` with from <= index < from + count (every branch), in index order, at
 * most MAX_ITEMS_PER_RESPONSE. `files`: false leaves the UnixFS blocks of chain B payloads out of
 * the CARs (the requester fetches those tiles by bitswap, from any peer).
 */
export interface RangeRequest {
  readonly kind: typeof RANGE_KIND
  readonly version: 1
  readonly chain: ChainId
  readonly from: number
  readonly count: number
  readonly files: boolean
}

/** Accepted blocks by header CID (those the peer lacks are left out of the answer); `files` as in RangeRequest. */
export interface RootRequest {
  readonly kind: typeof ROOT_KIND
  readonly version: 1
  readonly roots: readonly CID[]
  readonly files: boolean
}

/** Final checkpoints number >= from, at most count, in sequence. */
export interface CheckpointsRequest {
  readonly kind: typeof CHECKPOINTS_KIND
  readonly version: 1
  readonly from: number
  readonly count: number
}

export type BlockRequest = RangeRequest | RootRequest | CheckpointsRequest

export const encodeRequest = (request: BlockRequest): Uint8Array => encodeCbor(request)

export function decodeRequest(bytes: Uint8Array): BlockRequest {
  const raw = decodeCbor(bytes, MAX_REQUEST_BYTES, 'request')
  const kind = typeof raw === 'object' && raw !== null ? (raw as S.Fields)['kind'] : undefined
  if (kind === RANGE_KIND) {
    const o = S.exactMap(raw, ['kind', 'version', 'chain', 'from', 'count', 'files'], 'request')
    if (o['version'] !== 1) reject('E_SCHEMA', 'request.version', 'expected 1')
    return {
      kind, version: 1, chain: S.oneOf(o, 'chain', 'request', CHAIN_IDS), from: S.uint(o, 'from', 'request'), count: S.uint(o, 'count', 'request', MAX_BLOCKS_PER_REQUEST),
      files: S.bool(o, 'files', 'request')
    }
  }
  if (kind === ROOT_KIND) {
    const o = S.exactMap(raw, ['kind', 'version', 'roots', 'files'], 'request')
    if (o['version'] !== 1) reject('E_SCHEMA', 'request.version', 'expected 1')
    const roots = S.list(o, 'roots', 'request', MAX_BLOCKS_PER_REQUEST).map((_, i) => S.cid(o['roots'] as S.Fields, String(i), 'request.roots'))
    return { kind, version: 1, roots, files: S.bool(o, 'files', 'request') }
  }
  if (kind === CHECKPOINTS_KIND) {
    const o = S.exactMap(raw, ['kind', 'version', 'from', 'count'], 'request')
    if (o['version'] !== 1) reject('E_SCHEMA', 'request.version', 'expected 1')
    return { kind, version: 1, from: S.uint(o, 'from', 'request'), count: S.uint(o, 'count', 'request', MAX_CHECKPOINTS_PER_REQUEST) }
  }
  reject('E_SCHEMA', 'request.kind', `expected ${RANGE_KIND}, ${ROOT_KIND} or ${CHECKPOINTS_KIND}`)
}

export const RESPONSE_KIND = 'blyan/response'
export type ResponseCode = 'ok' | 'bad_request' | 'rate_limited' | 'unavailable'
export const RESPONSE_CODES: readonly ResponseCode[] = Object.freeze(['ok', 'bad_request', 'rate_limited', 'unavailable'])

/**
 * The first frame of every answer: `ok` and how many item frames follow (each a submission CAR or
 * a checkpoint document), or why the request was refused (`message` says more; no frames follow).
 */
export interface ResponseHead {
  readonly kind: typeof RESPONSE_KIND
  readonly version: 1
  readonly code: ResponseCode
  readonly count: number
  readonly message: string
}

export function encodeResponseHead(code: ResponseCode, count: number, message = ''): Uint8Array {
  return encodeCbor({ kind: RESPONSE_KIND, version: 1, code, count, message: message.slice(0, 512) })
}

export function decodeResponseHead(bytes: Uint8Array): ResponseHead {
  const o = S.exactMap(decodeCbor(bytes, MAX_REQUEST_BYTES, 'response'), ['kind', 'version', 'code', 'count', 'message'], 'response')
  if (o['kind'] !== RESPONSE_KIND || o['version'] !== 1) reject('E_SCHEMA', 'response.kind', `expected ${RESPONSE_KIND} version 1`)
  return { kind: RESPONSE_KIND, version: 1, code: S.oneOf(o, 'code', 'response', RESPONSE_CODES), count: S.uint(o, 'count', 'response', MAX_ITEMS_PER_RESPONSE), message: S.str(o, 'message', 'response', 512) }
}
