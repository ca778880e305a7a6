/**
 * The relay's JSON API (`/api/...`), documented route by route in docs/api.md: a table of routes
 * (API_ROUTES: methods, path pattern, handler; router.ts matches them), each handler a small
 * function over the API's shared state (ApiContext).
 *
 * Reads come straight from the chain store; `POST /api/blocks` hands a submission CAR to the full
 * node. Every response a client should verify carries the bytes to verify (header hex, CIDs), never
 * only a JSON view (views.ts).
 *
 * @module
 */
import { requestUrl } from './request-url.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CID } from 'multiformats/cid'
import { fromHex } from '../../src/codec/cbor.ts'
import { CHAIN_IDS, type ChainId, type Header } from '../../src/chain/header.ts'
import { blockToJson, toJson, type Json } from '../../src/chain/json.ts'
import { isValidPublicKey } from '../../src/chain/keys.ts'
import { encodeParamIndex, paramIndexDocument } from '../../src/chain/paramindex.ts'
import { MAX_CHECKPOINT_BYTES, type Checkpoint } from '../../src/chain/checkpoint.ts'
import type { MetaDocument } from '../../src/chain/meta.ts'
import { canResubmit } from '../../src/chain/refusal.ts'
import { RuleError } from '../../src/errors.ts'
import type { ChainStore } from '../node/interface.ts'
import type { FullNode } from '../node/full-node.ts'
import { LeaseError, type PolService } from '../pol/service.ts'
import type { DatasetScreener } from '../pol/screener.ts'
import { QUOTAS } from '../pol/trust.ts'
import type { GatewayStats } from './gateway.ts'
import { BodyTooLargeError, readBody, sendError, sendJson, type Handler } from './respond.ts'
import { matchRoute, type Route, type RouteCall } from './router.ts'
import { DEFAULT_UPLOAD_POLICY, UploadAbortedError, UploadBusyError, UploadGate, readSubmission, submissionLimit, type UploadPolicy } from './upload.ts'
import type { NetworkView } from '../p2p/network.ts'
import { candidateJson, checkpointJson, datasetReport, datasetsJson, statusJson } from './views.ts'

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
  /** The quality gate's reports on proposals this node screened (absent: none are shown). */
  readonly screener?: DatasetScreener
  /** The peer network this node is on (absent: a one-machine network). */
  readonly network?: NetworkView
}

/** What the API's handlers share: the node and its store, the PoL service, the upload budget. */
export interface ApiContext {
  readonly node: FullNode
  readonly store: ChainStore
  readonly version: string
  readonly gatewayStats: GatewayStats | undefined
  readonly pol: PolService | undefined
  readonly screener: DatasetScreener | undefined
  readonly network: NetworkView | undefined
  readonly policy: UploadPolicy
  readonly uploads: UploadGate
}

type ApiRoute = Route<ApiContext>

const READ = ['GET', 'HEAD']
const DAG_CBOR_TYPE = 'application/vnd.ipld.dag-cbor'
const CAR_TYPE = 'application/vnd.ipld.car'

/** The API. The order matters only between routes of one path (router.ts). */
export const API_ROUTES: readonly ApiRoute[] = Object.freeze([
  { methods: ['POST'], path: '/api/blocks', exclusive: true, handler: submitBlock },
  { methods: ['POST'], path: '/api/checkpoints', handler: submitCheckpoint },
  { methods: ['POST'], path: '/api/checkpoints/votes', handler: submitVote },
  { methods: ['POST'], path: '/api/datasets/votes', handler: submitDecisionVote },
  { methods: ['POST'], path: '/api/jobs/:id/lease', exclusive: true, handler: withPol(leaseJob) },
  { methods: ['DELETE'], path: '/api/jobs/:id/lease', exclusive: true, handler: withPol(releaseJob) },
  { methods: READ, path: '/api/jobs', handler: withPol(listJobs) },
  { methods: READ, path: '/api/candidates/:cid', handler: withPol(getCandidate) },
  { methods: READ, path: '/api/miners/:key', handler: withPol(getMiner) },
  { methods: READ, path: '/api/status', handler: getStatus },
  { methods: READ, path: '/api/stats', handler: getStats },
  { methods: READ, path: '/api/headers', handler: listHeaders },
  { methods: READ, path: '/api/blocks/:cid', handler: getBlock },
  { methods: READ, path: '/api/checkpoints', handler: listCheckpoints },
  { methods: READ, path: '/api/params', handler: getParams },
  { methods: READ, path: '/api/balance/:key', handler: getBalance },
  { methods: READ, path: '/api/rejections', handler: listRejections },
  { methods: READ, path: '/api/datasets', handler: listDatasets },
  { methods: READ, path: '/api/datasets/:cid/report', handler: getDatasetReport }
])

export function createApiHandler({ node, version, uploads, gatewayStats, pol, screener, network }: ApiOptions): Handler {
  const policy: UploadPolicy = { ...DEFAULT_UPLOAD_POLICY, ...uploads }
  const context: ApiContext = { node, store: node.store, version, gatewayStats, pol, screener, network, policy, uploads: new UploadGate(policy) }
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = requestUrl(req.url)
    if (!url.pathname.startsWith('/api/')) return false
    const match = matchRoute(API_ROUTES, req.method ?? 'GET', url.pathname)
    if (match === null) sendError(res, 404, 'NOT_FOUND', `no route ${url.pathname}`)
    else if ('allow' in match) methodNotAllowed(res, match.allow.join(', '))
    else await match.route.handler(context, { req, res, url, params: match.params })
    return true
  }
}

// ---------------------------------------------------------------------------------------------
// Submissions: blocks, checkpoints, votes

/** `POST /api/blocks`: a submission CAR, read within the upload budget (upload.ts), then judged by the node. */
async function submitBlock(ctx: ApiContext, { req, res }: RouteCall): Promise<void> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim()
  if (type !== CAR_TYPE) return sendError(res, 415, 'UNSUPPORTED_MEDIA_TYPE', `submit a block as a CAR: Content-Type ${CAR_TYPE}`)
  let ticket
  try {
    ticket = ctx.uploads.enter(req.socket.remoteAddress ?? 'unknown')
  } catch (e) {
    if (!(e instanceof UploadBusyError)) throw e
    return refuseBusy(req, res, e)
  }
  try {
    const limitFor = (header: Header): number => submissionLimit(header, (ctx.store.head('A')?.document as MetaDocument | undefined)?.architecture ?? null, ctx.policy)
    let read
    try {
      read = await readSubmission(req, ticket, limitFor, ctx.policy.maxSubmissionBytes)
    } catch (e) {
      if (e instanceof UploadAbortedError) return void req.destroy()
      if (e instanceof UploadBusyError) return refuseBusy(req, res, e)
      if (!(e instanceof RuleError)) throw e
      // Refused while streaming (not a CAR, a bad header, over its kind's limit): stop reading, log it as the node logs any refusal.
      ctx.node.logRejection(e, null)
      return refuseUpload(req, res, statusOf(e), { error: ruleErrorBody(e, null) })
    }
    try {
      const outcome = await ctx.node.submitOrQueue(read.car, ctx.pol ?? null)
      if ('accepted' in outcome) sendJson(res, 201, { accepted: blockToJson(outcome.accepted) })
      else sendJson(res, 202, { candidate: candidateJson(outcome.candidate, ctx.store) })
    } catch (e) {
      if (!(e instanceof RuleError)) throw e
      sendJson(res, statusOf(e), { error: ruleErrorBody(e, read.header) })
    }
  } finally {
    ticket.release()
  }
}

/** `POST /api/checkpoints`: a checkpoint with its quorum of signatures. */
function submitCheckpoint(ctx: ApiContext, call: RouteCall): Promise<void> {
  return withCheckpointBody(call, async (body) => {
    const checkpoint = await ctx.node.submitCheckpoint(body)
    sendJson(call.res, 201, { checkpoint: checkpointJson(lastCheckpointRow(ctx.node, checkpoint)) })
  })
}

/** `POST /api/checkpoints/votes`: one validator's vote, pooled until a body has a quorum. */
function submitVote(ctx: ApiContext, call: RouteCall): Promise<void> {
  return withCheckpointBody(call, async (body) => {
    const outcome = await ctx.node.submitVote(body)
    sendJson(call.res, outcome.status === 'final' ? 201 : 200, outcome.status === 'final'
      ? { status: 'final', checkpoint: checkpointJson(lastCheckpointRow(ctx.node, outcome.checkpoint)) }
      : outcome.status === 'pooled' ? { status: 'pooled', signatures: outcome.signatures, needed: outcome.needed } : { status: 'stale' })
  })
}

/**
 * `POST /api/datasets/votes`: one validator's signed vote on a proposal (a decision document with its
 * signature), for a peer network whose validators each hold one key: counted by this node and sent
 * on to the others; the scheduled validator's node seals the decision at a quorum.
 */
function submitDecisionVote(ctx: ApiContext, call: RouteCall): Promise<void> {
  return withCheckpointBody(call, async (body) => {
    if (ctx.network === undefined) return sendError(call.res, 409, 'NOT_NETWORKED', 'this node is not on a peer network: decide with a quorum of validator keys (blyan dataset approve --data DIR)')
    sendJson(call.res, 202, { status: await ctx.network.submitDecisionVote(body) })
  })
}

/** Read a checkpoint document (dag-cbor, bounded) and hand it to `judge`; a rule it breaks answers 422. */
async function withCheckpointBody({ req, res }: RouteCall, judge: (body: Uint8Array) => Promise<void>): Promise<void> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim()
  if (type !== DAG_CBOR_TYPE) return sendError(res, 415, 'UNSUPPORTED_MEDIA_TYPE', `send the checkpoint document as ${DAG_CBOR_TYPE}`)
  let body: Uint8Array
  try {
    body = await readBody(req, MAX_CHECKPOINT_BYTES)
  } catch (e) {
    if (e instanceof BodyTooLargeError) return refuseTooLarge(req, res, e)
    throw e
  }
  try {
    await judge(body)
  } catch (e) {
    if (!(e instanceof RuleError)) throw e
    sendJson(res, 422, { error: { code: e.code, field: e.field, message: e.message } })
  }
}

/** The stored row of a checkpoint just applied. */
function lastCheckpointRow(node: FullNode, checkpoint: Checkpoint): { number: number; id: string; bytes: Uint8Array } {
  const [row] = node.store.checkpoints(checkpoint.number, 1)
  if (row === undefined) throw new Error(`checkpoint ${checkpoint.number} was applied but is not stored`)
  return row
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

// ---------------------------------------------------------------------------------------------
// Proof of Learning: jobs, leases, candidates, miners

type PolHandler = (ctx: ApiContext, call: RouteCall, pol: PolService) => Promise<void> | void

/** A PoL route: 404 on a node that runs no PoL service. */
function withPol(handler: PolHandler): ApiRoute['handler'] {
  return (ctx, call) => {
    if (ctx.pol === undefined) return sendError(call.res, 404, 'NOT_FOUND', 'this node runs no Proof-of-Learning service (no validator keys, or not a full node)')
    return handler(ctx, call, ctx.pol)
  }
}

/** `POST /api/jobs/:id/lease`: a miner's signed request for a job. */
function leaseJob(_ctx: ApiContext, call: RouteCall, pol: PolService): Promise<void> {
  return withLeaseRequest(call, (job, r) => {
    const lease = pol.lease(job, r.miner, r.at, r.signature)
    sendJson(call.res, 200, { lease: { job: lease.job, miner: lease.miner, leased_at: lease.leasedAt, expires_at: lease.expiresAt } })
  })
}

/** `DELETE /api/jobs/:id/lease`: a miner gives a job back, signed likewise. */
function releaseJob(_ctx: ApiContext, call: RouteCall, pol: PolService): Promise<void> {
  return withLeaseRequest(call, (job, r) => {
    pol.release(job, r.miner, r.at, r.signature)
    sendJson(call.res, 200, { released: job })
  })
}

interface LeaseRequest {
  readonly miner: string
  readonly at: number
  readonly signature: string
}

const LEASE_BODY = 'the body is JSON: { "miner": hex key, "at": ms, "signature": hex }'

/** Read a lease or release body (JSON, bounded) and run `act` on it; a LeaseError it throws is the answer. */
async function withLeaseRequest({ req, res, params }: RouteCall, act: (job: string, request: LeaseRequest) => void): Promise<void> {
  let request: { miner?: unknown; at?: unknown; signature?: unknown } | null
  try {
    request = JSON.parse(new TextDecoder().decode(await readBody(req, 4096))) as typeof request
  } catch (e) {
    if (e instanceof BodyTooLargeError) return refuseTooLarge(req, res, e)
    return badRequest(res, LEASE_BODY)
  }
  if (typeof request !== 'object' || request === null || typeof request.miner !== 'string' || typeof request.at !== 'number' || typeof request.signature !== 'string') {
    return badRequest(res, LEASE_BODY)
  }
  try {
    act(params['id'] ?? '', { miner: request.miner, at: request.at, signature: request.signature })
  } catch (e) {
    if (!(e instanceof LeaseError)) throw e
    sendError(res, e.status, e.code, e.message)
  }
}

/** `GET /api/jobs`: the job board. */
function listJobs(_ctx: ApiContext, { res }: RouteCall, pol: PolService): void {
  sendJson(res, 200, { jobs: toJson(pol.jobs()) })
}

/** `GET /api/candidates/:cid`: a candidate and what became of it. */
function getCandidate(ctx: ApiContext, { res, params }: RouteCall, pol: PolService): void {
  const cid = params['cid'] ?? ''
  const c = pol.candidate(cid)
  if (c === undefined) return sendJson(res, 404, { status: 'unknown', error: { code: 'NOT_FOUND', message: `no candidate ${cid}` } })
  sendJson(res, 200, { candidate: candidateJson(c, ctx.store) })
}

/** `GET /api/miners/:key`: a miner key's trust level, quota and latest candidates. */
function getMiner(ctx: ApiContext, { res, params }: RouteCall, pol: PolService): void {
  const miner = (params['key'] ?? '').toLowerCase()
  if (!/^[0-9a-f]{66}$/.test(miner)) return badRequest(res, 'the public key is 33 bytes of hex')
  const trust = pol.trustOf(miner)
  sendJson(res, 200, { miner, trust, quota: toJson(QUOTAS[trust]), candidates: pol.polStore.byMiner(miner, 100).map((c) => candidateJson(c, ctx.store)) })
}

// ---------------------------------------------------------------------------------------------
// Chain reads

/** `GET /api/status`. */
function getStatus(ctx: ApiContext, { res }: RouteCall): void {
  sendJson(res, 200, statusJson(ctx.node, ctx.version, ctx.network))
}

/** `GET /api/stats`: what the gateway served. */
function getStats(ctx: ApiContext, { res }: RouteCall): void {
  const g = ctx.gatewayStats ?? { blocks: 0, tiles: 0, bytes: 0 }
  sendJson(res, 200, { gateway: { blocks: g.blocks, tiles: g.tiles, bytes: g.bytes } })
}

/** `GET /api/headers?chain=&from=&to=&limit=`: a page of one chain's accepted blocks. */
function listHeaders(ctx: ApiContext, { res, url }: RouteCall): void {
  const chain = url.searchParams.get('chain') ?? ''
  if (!(CHAIN_IDS as readonly string[]).includes(chain)) return badRequest(res, 'chain must be A, B, C or D')
  const from = intParam(url, 'from', 0)
  const limit = intParam(url, 'limit', 100)
  const to = intParam(url, 'to', Number.MAX_SAFE_INTEGER)
  if (from === null || to === null || limit === null || limit < 1) return badRequest(res, 'from, to and limit are non-negative integers, limit at least 1')
  const blocks = ctx.store.headers(chain as ChainId, from, to, Math.min(limit, 1000))
  sendJson(res, 200, { chain, from, to, blocks: blocks.map(blockToJson) })
}

/** `GET /api/blocks/:cid`: an accepted block, or why it was rejected. */
function getBlock(ctx: ApiContext, { res, params }: RouteCall): void {
  const cid = parseCid(params['cid'])
  if (cid === null) return badRequest(res, `not a CID: ${params['cid']}`)
  const block = ctx.store.get(cid)
  if (block !== undefined) {
    const received = ctx.network?.provenance(cid)
    return sendJson(res, 200, { status: 'accepted', ...blockToJson(block), ...(received === undefined ? {} : { received: { from: received.from, at: received.at } }) })
  }
  const rejection = ctx.store.rejectionOf(cid)
  if (rejection !== undefined) return sendJson(res, 200, { status: 'rejected', cid: cid.toString(), rejection: toJson(rejection) })
  // Only a submission of it was refused (its CAR, a certificate someone attached, admission): the block itself may still come.
  const refused = ctx.store.rejectionOf(cid, 'submission')
  sendJson(res, 404, { status: 'unknown', error: { code: 'NOT_FOUND', message: `no block ${cid}` }, ...(refused === undefined ? {} : { last_refused_submission: toJson(refused) }) })
}

/** `GET /api/checkpoints?from=&limit=`: finality checkpoints in sequence. */
function listCheckpoints(ctx: ApiContext, { res, url }: RouteCall): void {
  const from = intParam(url, 'from', 0)
  const limit = intParam(url, 'limit', 100)
  if (from === null || limit === null || limit < 1) return badRequest(res, 'from and limit are non-negative integers, limit at least 1')
  sendJson(res, 200, { latest: ctx.store.checkpoint()?.number ?? null, checkpoints: ctx.store.checkpoints(from, Math.min(limit, 1000)).map(checkpointJson) })
}

/** `GET /api/params`: the param index document, with its bytes. */
function getParams(ctx: ApiContext, { res }: RouteCall): void {
  const doc = paramIndexDocument(ctx.store.paramIndex())
  const { cid, bytes } = encodeParamIndex(doc)
  sendJson(res, 200, { cid: cid.toString(), dag_cbor_hex: Buffer.from(bytes).toString('hex'), entries: toJson(doc.entries) })
}

/** `GET /api/balance/:key`: a key's balance at the chain C head, and at the final chain C block. */
function getBalance(ctx: ApiContext, { res, params }: RouteCall): void {
  const hex = params['key'] ?? ''
  let key: Uint8Array
  try {
    key = fromHex(hex)
  } catch {
    return badRequest(res, 'the public key is 33 bytes of hex')
  }
  if (!isValidPublicKey(key)) return badRequest(res, 'not a compressed secp256k1 public key')
  const head = ctx.store.head('C')
  const final = ctx.store.checkpoint()?.heads.C ?? null
  sendJson(res, 200, {
    public_key: hex, balance: ctx.store.balance(key, head?.cid ?? null), head: head?.cid.toString() ?? null,
    // What no branch can take away: the balance at the final chain C block (the rest is pending until validators checkpoint it).
    final_balance: ctx.store.balance(key, final), final_head: final?.toString() ?? null
  })
}

/** `GET /api/datasets`: every dataset proposed on the chain D head's branch, its stage, and the gate's report. */
function listDatasets(ctx: ApiContext, { res }: RouteCall): void {
  sendJson(res, 200, datasetsJson(ctx.store, ctx.screener))
}

/** `GET /api/datasets/:cid/report`: the gate report's DAG-CBOR bytes (the one the decision links, else the node's own). */
function getDatasetReport(ctx: ApiContext, { res, params }: RouteCall): void {
  const bytes = datasetReport(ctx.store, ctx.screener, params['cid'] ?? '')
  if (bytes === null) return sendError(res, 404, 'NOT_FOUND', 'no gate report on that dataset here')
  res.writeHead(200, { 'Content-Type': DAG_CBOR_TYPE, 'Content-Length': bytes.length })
  res.end(bytes)
}

/** `GET /api/rejections?limit=&before=`: the newest refusals. */
function listRejections(ctx: ApiContext, { res, url }: RouteCall): void {
  const limit = Math.min(intParam(url, 'limit', 100) ?? 100, 1000)
  const before = intParam(url, 'before', Number.MAX_SAFE_INTEGER)
  if (before === null) return badRequest(res, 'before is a time in ms')
  sendJson(res, 200, { rejections: toJson(ctx.store.rejections(limit, before)) })
}

// ---------------------------------------------------------------------------------------------
// Helpers

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
function refuseUpload(req: IncomingMessage, res: ServerResponse, status: number, body: Json, headers: Record<string, string> = {}): void {
  sendJson(res, status, body, { ...headers, Connection: 'close' })
  res.once('finish', () => req.destroy())
}

function refuseBusy(req: IncomingMessage, res: ServerResponse, e: UploadBusyError): void {
  refuseUpload(req, res, 503, { error: { code: 'BUSY', message: e.message } }, { 'Retry-After': String(e.retryAfterSeconds) })
}

function refuseTooLarge(req: IncomingMessage, res: ServerResponse, e: BodyTooLargeError): void {
  refuseUpload(req, res, 413, { error: { code: 'E_TOO_LARGE', message: e.message } })
}

function badRequest(res: ServerResponse, message: string): void {
  sendError(res, 400, 'BAD_REQUEST', message)
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  sendError(res, 405, 'METHOD_NOT_ALLOWED', `allowed: ${allow}`, { Allow: allow })
}
