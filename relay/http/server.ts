/**
 * The relay's HTTP server: gateway (`/ipfs/`), API (`/api/`), live feed (`/ws`) and, when a site
 * root is given, the built site. API and gateway responses carry CORS headers and are rate limited
 * per client address, each request weighted by its cost (rate-limit.ts `requestCost`: a headers
 * page or a CAR export costs more than a status read); `/ws` upgrades go through the same limiter
 * and a cap per address. The site is served with cross-origin isolation and a Content-Security-Policy
 * (static.ts). A client that goes away mid-request is dropped quietly; any other failure is one
 * line in the log and a 500.
 *
 * @module
 */
import { requestUrl } from './request-url.ts'
import type { NetworkView } from '../p2p/network.ts'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createApiHandler } from './routes.ts'
import type { PolService } from '../pol/service.ts'
import type { DatasetScreener } from '../pol/screener.ts'
import { createGatewayHandler, createGatewayStats, type GatewayOptions } from './gateway.ts'
import { DEFAULT_RATE_LIMIT, createRateLimiter, requestCost, type RateLimit } from './rate-limit.ts'
import { CORS_HEADERS, sendError, type Handler } from './respond.ts'
import type { FullNode } from '../node/full-node.ts'
import { createStaticHandler } from './static.ts'
import type { UploadPolicy } from './upload.ts'
import { attachHeaderFeed, type HeaderFeed } from './ws.ts'

export interface RelayOptions {
  readonly node: FullNode
  readonly version: string
  /** Directory of the built site; omitted: no site (API, gateway and feed only). */
  readonly siteRoot?: string
  readonly rateLimit?: RateLimit
  /** Limits on submissions (upload.ts DEFAULT_UPLOAD_POLICY by default). */
  readonly uploads?: Partial<UploadPolicy>
  /** Test mode only: alter the bytes the gateway serves (see gateway.ts). */
  readonly tamper?: GatewayOptions['tamper']
  /** The node's PoL service (candidates, jobs, leases in the API). */
  readonly pol?: PolService
  /** The node's dataset screener (gate reports in /api/datasets). */
  readonly screener?: DatasetScreener
  /** The peer network (peers and relays in /api/status). */
  readonly network?: NetworkView
}

export interface Relay {
  readonly server: Server
  readonly feed: HeaderFeed
  /** Stop accepting, close the feed and open connections. */
  close(): Promise<void>
}

export function createRelay(options: RelayOptions): Relay {
  const limiter = createRateLimiter(options.rateLimit ?? DEFAULT_RATE_LIMIT)
  const stats = createGatewayStats()
  const gateway = createGatewayHandler({ store: options.node.store, stats, ...(options.tamper === undefined ? {} : { tamper: options.tamper }) })
  const api = createApiHandler({
    node: options.node,
    version: options.version,
    gatewayStats: stats,
    ...(options.pol === undefined ? {} : { pol: options.pol }),
    ...(options.screener === undefined ? {} : { screener: options.screener }),
    ...(options.network === undefined ? {} : { network: options.network }),
    ...(options.uploads === undefined ? {} : { uploads: options.uploads })
  })
  const site: Handler | null = options.siteRoot === undefined ? null : createStaticHandler({ root: options.siteRoot })

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = requestUrl(req.url)
    const path = url.pathname
    const shared = path.startsWith('/ipfs/') || path.startsWith('/api/')
    if (shared) {
      for (const [k, v] of Object.entries(CORS_HEADERS)) res.setHeader(k, v)
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { 'Access-Control-Max-Age': '86400' })
        res.end()
        return
      }
      const wait = limiter.take(req.socket.remoteAddress ?? 'unknown', requestCost(req.method ?? 'GET', url, req.headers.accept))
      if (wait > 0) {
        // A refused request with a body (an upload): close the connection rather than let Node read
        // and discard the rest of the body to keep it alive, which would cost what the limit saves.
        const body = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
        sendError(res, 429, 'RATE_LIMITED', `too many requests: retry in ${wait} s`, { 'Retry-After': String(wait), ...(body ? { Connection: 'close' } : {}) })
        if (body) res.once('finish', () => req.destroy())
        return
      }
      if (await gateway(req, res)) return
      if (await api(req, res)) return
    }
    if (site !== null && (await site(req, res))) return
    sendError(res, 404, 'NOT_FOUND', `nothing at ${path}`)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      // A client that closed its connection is not a fault of the node: nothing to answer or log.
      if (req.destroyed || res.destroyed || isConnectionReset(e)) {
        res.destroy()
        return
      }
      console.error(`relay: ${req.method} ${req.url}: ${e instanceof Error ? e.message : String(e)}`)
      if (!res.headersSent) sendError(res, 500, 'INTERNAL', 'internal error')
      else res.destroy()
    })
  })
  const feed = attachHeaderFeed(server, options.node, options.version, {
    admit: (req) => limiter.take(req.socket.remoteAddress ?? 'unknown', requestCost('GET', requestUrl(req.url), undefined, true))
  })
  return {
    server,
    feed,
    close: () =>
      new Promise<void>((resolve) => {
        feed.close()
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}

/** An error from a connection the client reset or aborted. */
function isConnectionReset(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (e instanceof Error && e.message === 'aborted')
}
