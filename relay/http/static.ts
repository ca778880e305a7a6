/**
 * Static file handler for the built site (`dist/`), with the headers the site needs:
 *
 * - COOP `same-origin` + COEP `require-corp` on every response, so the page is cross-origin isolated
 *   (SharedArrayBuffer for ONNX Runtime Web threads), plus CORP `same-origin`.
 * - `immutable` caching for `assets/` (vite puts a content hash in those names), `no-cache` (always
 *   revalidate, ETag / 304) for everything else, index.html included.
 * - SPA fallback: a path without a file extension that names no file gets index.html.
 * - 404 for a missing path with an extension, 403 for `..` segments or a symlink leaving the root,
 *   405 for methods other than GET and HEAD.
 *
 * ```ts
 * import { createServer } from 'node:http'
 * const serve = createStaticHandler({ root: 'dist' })
 * createServer((req, res) => void serve(req, res)).listen(8080)
 * ```
 *
 * @module
 */
import { createReadStream } from 'node:fs'
import { open, realpath, type FileHandle } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Stats } from 'node:fs'
import { extname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Handler } from './respond.ts'

/** Content types by extension; anything else is served as `application/octet-stream`. */
export const MIME_TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8'
})

/** Sent on every response: cross-origin isolation (COOP + COEP) and CORP for our own resources. */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin'
})

/**
 * Content-Security-Policy of the site: code only from this origin (plus WebAssembly compilation, which
 * ONNX Runtime Web needs), no plugins, and no framing by any other page (`frame-ancestors 'none'`, and
 * X-Frame-Options for browsers without CSP 2). Connections may go to any http(s)/ws(s) URL: the page
 * talks to the relays its user configures (`?relay=`, Settings), and verifies every byte they send.
 * Inline styles are allowed because Svelte sets style attributes (progress bars, the DAG view).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self' http: https: ws: wss:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join('; ')

/** Sent with every site response, beside the isolation headers. */
export const SITE_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff'
})

export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable'
export const CACHE_REVALIDATE = 'no-cache'

export interface StaticOptions {
  /** Folder to serve: the vite build output. */
  readonly root: string
  /** File (relative to root) answered for extension-less paths that name no file. @default 'index.html' */
  readonly fallback?: string
  /** Folder (relative to root) of content-hashed files, cached as immutable. @default 'assets' */
  readonly immutableDir?: string
}

interface OpenFile {
  readonly fh: FileHandle
  readonly st: Stats
  /** Path relative to the root, with `/` separators. */
  readonly rel: string
}

/** Create a handler that serves `options.root`. It answers every request it is given (resolves `true`). */
export function createStaticHandler(options: StaticOptions): Handler {
  if (typeof options?.root !== 'string' || options.root === '') throw new TypeError('createStaticHandler: "root" must be a non-empty path')
  const root = resolve(options.root)
  const fallback = options.fallback ?? 'index.html'
  const immutablePrefix = `${(options.immutableDir ?? 'assets').replace(/\/+$/, '')}/`
  let realRoot: Promise<string> | undefined

  /** Open `rel` under the root as a regular file; undefined when it is missing or not a file. */
  async function openFile(rel: string): Promise<OpenFile | undefined | 'outside'> {
    const path = join(root, rel)
    let real: string
    try {
      real = await realpath(path)
    } catch {
      return undefined
    }
    realRoot ??= realpath(root)
    const within = relative(await realRoot, real)
    if (within.startsWith('..') || isAbsolute(within)) return 'outside'
    let fh: FileHandle
    try {
      fh = await open(real, 'r')
    } catch {
      return undefined
    }
    const st = await fh.stat()
    if (st.isFile()) return { fh, st, rel: within.split(sep).join('/') }
    await fh.close()
    return undefined
  }

  return async function serveStatic(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    for (const [name, value] of Object.entries(ISOLATION_HEADERS)) res.setHeader(name, value)
    for (const [name, value] of Object.entries(SITE_SECURITY_HEADERS)) res.setHeader(name, value)
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD')
        return plain(res, 405, 'Method Not Allowed')
      }
      const target = req.url ?? '/'
      if (!target.startsWith('/')) return plain(res, 400, 'Bad Request')
      let path: string
      try {
        path = decodeURIComponent(target.replace(/[?#].*$/s, ''))
      } catch {
        return plain(res, 400, 'Bad Request')
      }
      if (path.includes('\0')) return plain(res, 400, 'Bad Request')
      const segments = path.split(/[/\\]/).filter((s) => s !== '' && s !== '.')
      if (segments.includes('..')) return plain(res, 403, 'Forbidden')

      const rel = segments.join('/')
      let file = await openFile(rel === '' ? fallback : rel)
      // A folder answers with its index.html, as static hosts do.
      if (file === undefined && rel !== '') file = await openFile(`${rel}/index.html`)
      // SPA fallback: client-side routes have no extension; a missing asset (with one) stays a 404.
      if (file === undefined && extname(segments.at(-1) ?? '') === '') file = await openFile(fallback)
      if (file === 'outside') return plain(res, 403, 'Forbidden')
      if (file === undefined) return plain(res, 404, 'Not Found')
      await send(req, res, file, file.rel.startsWith(immutablePrefix) ? CACHE_IMMUTABLE : CACHE_REVALIDATE)
      return true
    } catch (e) {
      if (!res.headersSent) return plain(res, 500, 'Internal Server Error')
      res.destroy(e instanceof Error ? e : undefined)
      return true
    }
  }
}

async function send(req: IncomingMessage, res: ServerResponse, file: OpenFile, cacheControl: string): Promise<void> {
  const { fh, st, rel } = file
  try {
    // Weak validator from size and mtime: cheap, and changes whenever a build rewrites the file.
    const etag = `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`
    res.setHeader('Content-Type', MIME_TYPES[extname(rel).toLowerCase()] ?? 'application/octet-stream')
    res.setHeader('Cache-Control', cacheControl)
    res.setHeader('ETag', etag)
    res.setHeader('Last-Modified', st.mtime.toUTCString())
    if (matchesEtag(req.headers['if-none-match'], etag)) {
      res.writeHead(304).end()
      return
    }
    res.setHeader('Content-Length', st.size)
    if (req.method === 'HEAD') {
      res.writeHead(200).end()
      return
    }
    res.writeHead(200)
    try {
      await pipeline(createReadStream('', { fd: fh, autoClose: false }), res)
    } catch {
      // The client went away mid-transfer; pipeline has already destroyed the response.
    }
  } finally {
    await fh.close()
  }
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  const strip = (t: string): string => t.trim().replace(/^W\//, '')
  return header.split(',').some((t) => t.trim() === '*' || strip(t) === strip(etag))
}

function plain(res: ServerResponse, status: number, text: string): true {
  const body = `${status} ${text}\n`
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store'
  })
  res.end(res.req.method === 'HEAD' ? undefined : body)
  return true
}
