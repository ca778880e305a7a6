/**
 * HTTP plumbing shared by the relay's handlers: the handler type, JSON and error responses, CORS
 * headers, and bounded request bodies. The per-client rate limit is rate-limit.ts.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Json } from '../../src/chain/json.ts'

/**
 * One part of the relay's HTTP surface. It resolves `true` when it answered the request and `false`
 * when the request is not its business, so the server (server.ts) can try handlers in order.
 */
export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>

/** Headers every API and gateway response carries: readable from any origin, embeddable cross-origin. */
export const CORS_HEADERS = Object.freeze({
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, HEAD, POST, DELETE, OPTIONS',
  'Access-Control-Allow-Headers': 'Content-Type, Accept, Range',
  'Access-Control-Expose-Headers': 'Content-Type, Content-Length, ETag, X-Ipfs-Path, X-Ipfs-Roots, Retry-After',
  'Cross-Origin-Resource-Policy': 'cross-origin'
})

export function sendJson(res: ServerResponse, status: number, body: Json, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers
  })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}

/**
 * An error response: `{ error: { code, message, ... } }`. `code` is a RuleError code (`E_POW`) for
 * protocol rejections, or an HTTP-level name (`NOT_FOUND`, `RATE_LIMITED`) otherwise.
 */
export function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { code, message } }, headers)
}

export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError'
}

/** Read a request body of at most `limit` bytes (BodyTooLargeError beyond it). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'] ?? NaN)
  if (declared > limit) throw new BodyTooLargeError(`body of ${declared} bytes, limit ${limit}`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw new BodyTooLargeError(`body over ${limit} bytes`)
    chunks.push(chunk)
  }
  const body = Buffer.concat(chunks, size)
  return new Uint8Array(body.buffer, body.byteOffset, body.length)
}
