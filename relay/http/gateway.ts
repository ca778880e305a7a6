/**
 * IPFS trustless gateway (https://specs.ipfs.tech/http-gateways/trustless-gateway/) over the chain
 * store: `GET /ipfs/<cid>` answers a raw block (`?format=raw` or `Accept: application/vnd.ipld.raw`)
 * or a CAR (`?format=car` or `Accept: application/vnd.ipld.car`, `dag-scope=block|entity|all`).
 * Clients check every block against its CID, so this serves bytes without being trusted. Only
 * blocks of accepted submissions are served; anything else is 404.
 *
 * @module
 */
import { requestUrl } from './request-url.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CarWriter } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { DAG_CBOR, RAW } from '../../src/codec/cbor.ts'
import type { ChainStore } from '../node/interface.ts'
import { sendError, type Handler } from './respond.ts'
import { walkDag } from '../node/ipld.ts'

const RAW_TYPE = 'application/vnd.ipld.raw'
const CAR_TYPE = 'application/vnd.ipld.car'
const CAR_CONTENT_TYPE = `${CAR_TYPE}; version=1; order=dfs; dups=n`
const IDENTITY = 0x00
/** Content-addressed responses never change. */
const IMMUTABLE = 'public, max-age=29030400, immutable'

type Format = 'raw' | 'car'
type DagScope = 'block' | 'entity' | 'all'

/** Which response the request asks for, from `?format=` first, then `Accept`. */
function negotiate(url: URL, accept: string | undefined): Format | 'none' | 'bad' {
  const format = url.searchParams.get('format')
  if (format !== null) return format === 'raw' || format === 'car' ? format : 'bad'
  const types = (accept ?? '').split(',').map((t) => t.trim().split(';')[0]?.trim().toLowerCase())
  for (const t of types) {
    if (t === RAW_TYPE) return 'raw'
    if (t === CAR_TYPE) return 'car'
  }
  return 'none'
}

export interface GatewayOptions {
  readonly store: ChainStore
  /** Counters this gateway increments (GET /api/stats shows them). */
  readonly stats?: GatewayStats
  /**
   * Test mode only: rewrite the bytes served for a CID (a lying relay, for the light client's tests
   * and demos). Never set in production.
   */
  readonly tamper?: (cid: CID, bytes: Uint8Array) => Uint8Array
}

/** What a gateway has served: requests answered with a block, raw leaves among them, bytes. */
export interface GatewayStats {
  blocks: number
  tiles: number
  bytes: number
}

export function createGatewayStats(): GatewayStats {
  return { blocks: 0, tiles: 0, bytes: 0 }
}

export function createGatewayHandler({ store, stats, tamper }: GatewayOptions): Handler {
  /** Bytes of a CID: stored blocks, or the inline bytes of an identity CID (the `bafkqaaa` probe). */
  const bytesOf = (cid: CID): Uint8Array | undefined => {
    if (cid.multihash.code === IDENTITY) return cid.multihash.digest
    const bytes = store.getRaw(cid)
    if (bytes === undefined) return undefined
    if (stats !== undefined) {
      stats.blocks++
      stats.bytes += bytes.length
      if (cid.code === RAW) stats.tiles++
    }
    return tamper === undefined ? bytes : tamper(cid, bytes)
  }

  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = requestUrl(req.url)
    if (!url.pathname.startsWith('/ipfs/')) return false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, 405, 'METHOD_NOT_ALLOWED', 'the gateway answers GET and HEAD', { Allow: 'GET, HEAD, OPTIONS' })
      return true
    }
    const parts = url.pathname.slice('/ipfs/'.length).split('/').filter((p) => p !== '')
    if (parts.length !== 1) {
      sendError(res, 400, 'BAD_REQUEST', 'paths below a CID are not served: request the block CID itself')
      return true
    }
    let cid: CID
    try {
      cid = CID.parse(parts[0] as string)
    } catch {
      sendError(res, 400, 'BAD_REQUEST', `not a CID: ${parts[0]}`)
      return true
    }
    const format = negotiate(url, req.headers.accept)
    if (format === 'bad') {
      sendError(res, 400, 'BAD_REQUEST', 'format must be raw or car')
      return true
    }
    if (format === 'none') {
      sendError(res, 406, 'NOT_ACCEPTABLE', `a trustless gateway serves ${RAW_TYPE} and ${CAR_TYPE} only (use ?format=raw or ?format=car)`)
      return true
    }
    const root = bytesOf(cid)
    if (root === undefined) {
      sendError(res, 404, 'NOT_FOUND', `no block ${cid}`)
      return true
    }
    const common = { 'Cache-Control': IMMUTABLE, 'X-Content-Type-Options': 'nosniff', 'X-Ipfs-Path': url.pathname, Vary: 'Accept' }
    if (format === 'raw') {
      res.writeHead(200, {
        ...common,
        'Content-Type': RAW_TYPE,
        'Content-Length': root.length,
        ETag: `"${cid}.raw"`,
        'Content-Disposition': `attachment; filename="${cid}.bin"`
      })
      res.end(req.method === 'HEAD' ? undefined : root)
      return true
    }
    const scopeParam = url.searchParams.get('dag-scope') ?? 'all'
    if (scopeParam !== 'block' && scopeParam !== 'entity' && scopeParam !== 'all') {
      sendError(res, 400, 'BAD_REQUEST', 'dag-scope must be block, entity or all')
      return true
    }
    const scope: DagScope = scopeParam
    res.writeHead(200, {
      ...common,
      'Content-Type': CAR_CONTENT_TYPE,
      ETag: `"${cid}.car.${scope}"`,
      'X-Ipfs-Roots': cid.toString(),
      'Content-Disposition': `attachment; filename="${cid}.car"`
    })
    if (req.method === 'HEAD') {
      res.end()
      return true
    }
    await writeCar(res, cid, scope, bytesOf)
    return true
  }
}

/**
 * Stream a CARv1 of the DAG under `root` in depth-first order without duplicates. `entity` follows
 * dag-pb links (a whole UnixFS file) but not dag-cbor ones (a header is its own entity); `all`
 * follows every link (a header's whole history).
 */
async function writeCar(res: ServerResponse, root: CID, scope: DagScope, bytesOf: (cid: CID) => Uint8Array | undefined): Promise<void> {
  const { writer, out } = CarWriter.create([root])
  const pump = (async () => {
    for await (const chunk of out) {
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve))
    }
  })()
  const follow = (cid: CID): boolean => scope === 'all' || (scope === 'entity' && cid.code !== DAG_CBOR)
  for (const block of walkDag(root, bytesOf, { follow })) await writer.put(block)
  await writer.close()
  await pump
  res.end()
}
