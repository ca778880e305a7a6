/**
 * The relay's JSON API (`/api/...`), documented route by route in docs/api.md.
 *
 * Reads come straight from the chain store; `POST /api/blocks` hands a submission CAR to the full
 * node. Every response a client should verify carries the bytes to verify (header hex, CIDs), never
 * only a JSON view.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CID } from 'multiformats/cid'
import { fromHex } from '../src/codec/cbor.ts'
import { CHAIN_IDS, type ChainId } from '../src/chain/header.ts'
import { blockToJson, toJson, type Json } from '../src/chain/json.ts'
import { isValidPublicKey } from '../src/chain/keys.ts'
import { encodeParamIndex, paramIndexDocument } from '../src/chain/paramindex.ts'
import { isFinal, MAX_CHECKPOINT_BYTES, type Checkpoint } from '../src/chain/checkpoint.ts'
import type { Header } from '../src/chain/header.ts'
import type { MetaDocument } from '../src/chain/meta.ts'
import { canResubmit } from '../src/chain/refusal.ts'
import { RuleError } from '../src/errors.ts'
import type { ChainStore, Handler } from './interface.ts'
import type { GatewayStats } from './gateway.ts'
import type { FullNode } from './node.ts'
import { BodyTooLargeError, readBody, sendError, sendJson } from './http.ts'
import { LeaseError, type PolService } from './pol.ts'
import type { CandidateRecord } from './pol-store.ts'
import { QUOTAS } from './trust.ts'
import { DEFAULT_UPLOAD_POLICY, UploadAbortedError, UploadBusyError, UploadGate, readSubmission, submissionLimit, type UploadPolicy } from './upload.ts'

export interface ApiOptions {
  readonly node: FullNode
  /** Reported in /api/status. */
  readonly version: string
  /** Limits on `POST /api/blocks` (upload.ts); defaults DEFAULT_UPLOAD_POLICY. */
  readonly uploads?: Partial<UploadPolicy>
  /** Shown by GET /api/stats. */
  readonly gatewayStats?: GatewayStats
  /** The Proof-of-Learning service: candidates, jobs and leases (absent: those routes answer 404). */
  readonly pol?: PolService
}

/** HTTP status for a rule violation: 413 too large, 400 a malformed CAR, 422 any other rule. */
function statusOf(e: RuleError): number {
  if (e.code === 'E_TOO_LARGE') return 413
  if (e.code === 'E_CAR') return 400
  return 422
}

/** A refusal as the API says it; `transient`: submitting again (later, or the same header wrapped right) can succeed (refusal.ts). */
function ruleErrorBody(e: RuleError, header: Header | null): { [key: string]: Json } {
  return { code: e.code, field: e.field, message: e.message, transient: canResubmit(e, header) }
}

/** Status: what a client needs to start syncing and to check it talks to the network it trusts. */
export function statusJson(node: FullNode, version: string): { [key: string]: Json } {
  const store = node.store
  const heads: { [key: string]: Json } = {}
  for (const chain of CHAIN_IDS) {
    const head = store.head(chain)
    heads[chain] = head === undefined ? null : { height: head.header.index, cid: head.cid.toString() }
  }
  const index = store.paramIndex()
  const doc = paramIndexDocument(index)
  const meta = store.head('A')
  return {
    version,
    genesis: store.genesis()?.cid.toString() ?? null,
    network: meta === undefined ? null : toJson((meta.document as { network: string }).network),
    heads,
    finality: finalityJson(node),
    paramIndex: { cid: encodeParamIndex(doc).cid.toString(), entries: toJson(doc.entries) },
    blocks: store.size
  }
}

/** The newest checkpoint, as status shows it: its number and id, and the final head of each linear chain. */
function finalityJson(node: FullNode): Json {
  const checkpoint = node.store.checkpoint()
  if (checkpoint === null) return null
  const [row] = node.store.checkpoints(checkpoint.number, 1)
  const heads: { [key: string]: Json } = {}
  for (const chain of ['A', 'C', 'D'] as const) {
    const cid = checkpoint.heads[chain]
    const block = cid === null ? undefined : node.store.get(cid)
    heads[chain] = block === undefined ? null : { height: block.header.index, cid: block.cid.toString() }
  }
  return { number: checkpoint.number, id: row?.id ?? null, heads }
}

/** A checkpoint as the API lists it: the bytes to verify, with its number and id. */
function checkpointJson(row: { number: number; id: string; bytes: Uint8Array }): { [key: string]: Json } {
  return { number: row.number, id: row.id, hex: Buffer.from(row.bytes).toString('hex') }
}

const DAG_CBOR_TYPE = 'application/vnd.ipld.dag-cbor'

/** A PoL candidate as the API shows it; `reward_final` says whether its reward is under a checkpoint yet. */
function candidateJson(c: CandidateRecord, store: ChainStore): { [key: string]: Json } {
  const reward = c.reward === null ? undefined : store.get(CID.parse(c.reward))
  return {
    reward_final: reward === undefined ? null : isFinal(store, reward, store.checkpoint()),
    cid: c.cid, status: c.status, expert: c.expert, base: c.base, miner: c.miner, rules: c.rules, payload: c.payload,
    received_at: c.receivedAt, code: c.code, message: c.message, beacon: c.beacon, certificate: c.certificate,
    reward: c.reward, amount: c.amount, loss_before: c.lossBefore, loss_after: c.lossAfter, decided_at: c.decidedAt,
    attempts: c.attempts, last_error: c.lastError
  }
}

export function createApiHandler({ node, version, uploads: uploadOptions, gatewayStats, pol }: ApiOptions): Handler {
  const store = node.store
  const policy: UploadPolicy = { ...DEFAULT_UPLOAD_POLICY, ...uploadOptions }
  const uploads = new UploadGate(policy)
  const limitFor = (header: Header): number => submissionLimit(header, (store.head('A')?.document as MetaDocument | undefined)?.architecture ?? null, policy)
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://relay')
    if (!url.pathname.startsWith('/api/')) return false
    const route = url.pathname.slice('/api/'.length).split('/')
    const [name, arg] = route
    const method = req.method ?? 'GET'

    if (name === 'blocks' && route.length === 1) {
      if (method !== 'POST') return methodNotAllowed(res, 'POST')
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim()
      if (type !== 'application/vnd.ipld.car') {
        sendError(res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'submit a block as a CAR: Content-Type application/vnd.ipld.car')
        return true
      }
      let ticket
      try {
        ticket = uploads.enter(req.socket.remoteAddress ?? 'unknown')
      } catch (e) {
        if (!(e instanceof UploadBusyError)) throw e
        return refuseUpload(req, res, 503, { error: { code: 'BUSY', message: e.message } }, { 'Retry-After': String(e.retryAfterSeconds) })
      }
      try {
        let read
        try {
          read = await readSubmission(req, ticket, limitFor, policy.maxSubmissionBytes)
        } catch (e) {
          if (e instanceof UploadAbortedError) {
            req.destroy()
            return true
          }
          if (e instanceof UploadBusyError) return refuseUpload(req, res, 503, { error: { code: 'BUSY', message: e.message } }, { 'Retry-After': String(e.retryAfterSeconds) })
          if (!(e instanceof RuleError)) throw e
          // Refused while streaming (not a CAR, a bad header, over its kind's limit): stop reading, log it as the node logs any refusal.
          node.logRejection(e, null)
          return refuseUpload(req, res, statusOf(e), { error: ruleErrorBody(e, null) })
        }
        try {
          const outcome = await node.submitOrQueue(read.car, pol ?? null)
          if ('accepted' in outcome) sendJson(res, 201, { accepted: blockToJson(outcome.accepted) })
          else sendJson(res, 202, { candidate: candidateJson(outcome.candidate, store) })
        } catch (e) {
          if (!(e instanceof RuleError)) throw e
          sendJson(res, statusOf(e), { error: ruleErrorBody(e, read.header) })
        }
      } finally {
        ticket.release()
      }
      return true
    }

    if (name === 'checkpoints' && (route.length === 1 || (route.length === 2 && arg === 'votes')) && method === 'POST') {
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim()
      if (type !== DAG_CBOR_TYPE) {
        sendError(res, 415, 'UNSUPPORTED_MEDIA_TYPE', `send the checkpoint document as ${DAG_CBOR_TYPE}`)
        return true
      }
      let body: Uint8Array
      try {
        body = await readBody(req, MAX_CHECKPOINT_BYTES)
      } catch (e) {
        if (e instanceof BodyTooLargeError) return refuseUpload(req, res, 413, { error: { code: 'E_TOO_LARGE', message: e.message } })
        throw e
      }
      try {
        if (arg === 'votes') {
          const outcome = await node.submitVote(body)
          sendJson(res, outcome.status === 'final' ? 201 : 200, outcome.status === 'final'
            ? { status: 'final', checkpoint: checkpointJson(lastCheckpointRow(node, outcome.checkpoint)) }
            : outcome.status === 'pooled' ? { status: 'pooled', signatures: outcome.signatures, needed: outcome.needed } : { status: 'stale' })
        } else {
          const checkpoint = await node.submitCheckpoint(body)
          sendJson(res, 201, { checkpoint: checkpointJson(lastCheckpointRow(node, checkpoint)) })
        }
      } catch (e) {
        if (!(e instanceof RuleError)) throw e
        sendJson(res, 422, { error: { code: e.code, field: e.field, message: e.message } })
      }
      return true
    }

    if (name === 'jobs' && route.length === 3 && route[2] === 'lease') {
      if (method !== 'POST' && method !== 'DELETE') return methodNotAllowed(res, 'POST, DELETE')
      if (pol === undefined) return noPol(res)
      let request: { miner?: unknown; at?: unknown; signature?: unknown } | null
      try {
        request = JSON.parse(new TextDecoder().decode(await readBody(req, 4096))) as typeof request
      } catch (e) {
        if (e instanceof BodyTooLargeError) return refuseUpload(req, res, 413, { error: { code: 'E_TOO_LARGE', message: e.message } })
        return badRequest(res, 'the body is JSON: { "miner": hex key, "at": ms, "signature": hex }')
      }
      if (typeof request !== 'object' || request === null || typeof request.miner !== 'string' || typeof request.at !== 'number' || typeof request.signature !== 'string') {
        return badRequest(res, 'the body is JSON: { "miner": hex key, "at": ms, "signature": hex }')
      }
      try {
        if (method === 'DELETE') {
          pol.release(arg ?? '', request.miner, request.at, request.signature)
          sendJson(res, 200, { released: arg ?? '' })
        } else {
          const lease = pol.lease(arg ?? '', request.miner, request.at, request.signature)
          sendJson(res, 200, { lease: { job: lease.job, miner: lease.miner, leased_at: lease.leasedAt, expires_at: lease.expiresAt } })
        }
      } catch (e) {
        if (!(e instanceof LeaseError)) throw e
        sendError(res, e.status, e.code, e.message)
      }
      return true
    }

    if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, 'GET, HEAD')

    if (name === 'jobs' && route.length === 1) {
      if (pol === undefined) return noPol(res)
      sendJson(res, 200, { jobs: toJson(pol.jobs()) })
      return true
    }

    if (name === 'candidates' && route.length === 2) {
      if (pol === undefined) return noPol(res)
      const c = pol.candidate(arg ?? '')
      if (c === undefined) {
        sendJson(res, 404, { status: 'unknown', error: { code: 'NOT_FOUND', message: `no candidate ${arg ?? ''}` } })
        return true
      }
      sendJson(res, 200, { candidate: candidateJson(c, store) })
      return true
    }

    if (name === 'miners' && route.length === 2) {
      if (pol === undefined) return noPol(res)
      const miner = (arg ?? '').toLowerCase()
      if (!/^[0-9a-f]{66}$/.test(miner)) return badRequest(res, 'the public key is 33 bytes of hex')
      const trust = pol.trustOf(miner)
      sendJson(res, 200, { miner, trust, quota: toJson(QUOTAS[trust]), candidates: pol.polStore.byMiner(miner, 100).map((c) => candidateJson(c, store)) })
      return true
    }

    if (name === 'status' && route.length === 1) {
      sendJson(res, 200, statusJson(node, version))
      return true
    }

    if (name === 'stats' && route.length === 1) {
      const g = gatewayStats ?? { blocks: 0, tiles: 0, bytes: 0 }
      sendJson(res, 200, { gateway: { blocks: g.blocks, tiles: g.tiles, bytes: g.bytes } })
      return true
    }

    if (name === 'headers' && route.length === 1) {
      const chain = url.searchParams.get('chain') ?? ''
      if (!(CHAIN_IDS as readonly string[]).includes(chain)) return badRequest(res, 'chain must be A, B, C or D')
      const from = intParam(url, 'from', 0)
      const limit = intParam(url, 'limit', 100)
      const to = intParam(url, 'to', Number.MAX_SAFE_INTEGER)
      if (from === null || to === null || limit === null || limit < 1) return badRequest(res, 'from, to and limit are non-negative integers, limit at least 1')
      const blocks = store.headers(chain as ChainId, from, to, Math.min(limit, 1000))
      sendJson(res, 200, { chain, from, to, blocks: blocks.map(blockToJson) })
      return true
    }

    if (name === 'blocks' && route.length === 2) {
      const cid = parseCid(arg)
      if (cid === null) return badRequest(res, `not a CID: ${arg}`)
      const block = store.get(cid)
      if (block !== undefined) {
        sendJson(res, 200, { status: 'accepted', ...blockToJson(block) })
        return true
      }
      const rejection = store.rejectionOf(cid)
      if (rejection !== undefined) {
        sendJson(res, 200, { status: 'rejected', cid: cid.toString(), rejection: toJson(rejection) })
        return true
      }
      // Only a submission of it was refused (its CAR, a certificate someone attached, admission): the block itself may still come.
      const refused = store.rejectionOf(cid, 'submission')
      sendJson(res, 404, { status: 'unknown', error: { code: 'NOT_FOUND', message: `no block ${cid}` }, ...(refused === undefined ? {} : { last_refused_submission: toJson(refused) }) })
      return true
    }

    if (name === 'checkpoints' && route.length === 1) {
      const from = intParam(url, 'from', 0)
      const limit = intParam(url, 'limit', 100)
      if (from === null || limit === null || limit < 1) return badRequest(res, 'from and limit are non-negative integers, limit at least 1')
      sendJson(res, 200, { latest: store.checkpoint()?.number ?? null, checkpoints: store.checkpoints(from, Math.min(limit, 1000)).map(checkpointJson) })
      return true
    }

    if (name === 'params' && route.length === 1) {
      const doc = paramIndexDocument(store.paramIndex())
      const { cid, bytes } = encodeParamIndex(doc)
      sendJson(res, 200, { cid: cid.toString(), dag_cbor_hex: Buffer.from(bytes).toString('hex'), entries: toJson(doc.entries) })
      return true
    }

    if (name === 'balance' && route.length === 2) {
      let key: Uint8Array
      try {
        key = fromHex(arg ?? '')
      } catch {
        return badRequest(res, 'the public key is 33 bytes of hex')
      }
      if (!isValidPublicKey(key)) return badRequest(res, 'not a compressed secp256k1 public key')
      const head = store.head('C')
      const final = store.checkpoint()?.heads.C ?? null
      sendJson(res, 200, {
        public_key: arg ?? '', balance: store.balance(key, head?.cid ?? null), head: head?.cid.toString() ?? null,
        // What no branch can take away: the balance at the final chain C block (the rest is pending until validators checkpoint it).
        final_balance: store.balance(key, final), final_head: final?.toString() ?? null
      })
      return true
    }

    if (name === 'rejections' && route.length === 1) {
      const limit = Math.min(intParam(url, 'limit', 100) ?? 100, 1000)
      const before = intParam(url, 'before', Number.MAX_SAFE_INTEGER)
      if (before === null) return badRequest(res, 'before is a time in ms')
      sendJson(res, 200, { rejections: toJson(store.rejections(limit, before)) })
      return true
    }

    sendError(res, 404, 'NOT_FOUND', `no route ${url.pathname}`)
    return true
  }
}

/** The stored row of a checkpoint just applied. */
function lastCheckpointRow(node: FullNode, checkpoint: Checkpoint): { number: number; id: string; bytes: Uint8Array } {
  const [row] = node.store.checkpoints(checkpoint.number, 1)
  if (row === undefined) throw new Error(`checkpoint ${checkpoint.number} was applied but is not stored`)
  return row
}

function parseCid(text: string | undefined): CID | null {
  try {
    return CID.parse(text ?? '')
  } catch {
    return null
  }
}

/** A non-negative integer query parameter, `fallback` when absent, null when malformed. */
function intParam(url: URL, name: string, fallback: number): number | null {
  const v = url.searchParams.get(name)
  if (v === null) return fallback
  const n = Number(v)
  return Number.isSafeInteger(n) && n >= 0 ? n : null
}

/**
 * Answer a request whose body the node will not read (any further): the answer, then the connection
 * closes, so Node neither reads nor drains the rest of an unwanted upload.
 */
function refuseUpload(req: IncomingMessage, res: ServerResponse, status: number, body: Json, headers: Record<string, string> = {}): true {
  sendJson(res, status, body, { ...headers, Connection: 'close' })
  res.once('finish', () => req.destroy())
  return true
}

function noPol(res: ServerResponse): true {
  sendError(res, 404, 'NOT_FOUND', 'this node runs no Proof-of-Learning service (no validator keys, or not a full node)')
  return true
}

function badRequest(res: ServerResponse, message: string): true {
  sendError(res, 400, 'BAD_REQUEST', message)
  return true
}

function methodNotAllowed(res: ServerResponse, allow: string): true {
  sendError(res, 405, 'METHOD_NOT_ALLOWED', `allowed: ${allow}`, { Allow: allow })
  return true
}
