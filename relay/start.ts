/**
 * `npm start`: build the site if it is stale, then serve it.
 *
 * For now this is the static server for `dist/`; the full node and the relay API join here later.
 * Environment: `PORT` (default 8080), `HOST` (default 127.0.0.1).
 *
 * @module
 */
import { createServer } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureBuilt } from './build.ts'
import { createStaticHandler } from './static.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

function fail(message: string): never {
  console.error(`blyan: ${message}`)
  process.exit(1)
}

function portFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') return 8080
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`PORT must be an integer from 0 to 65535, got "${value}"`)
  return port
}

const port = portFromEnv(process.env['PORT'])
const host = process.env['HOST'] || '127.0.0.1'

try {
  await ensureBuilt({ root: ROOT })
} catch (e) {
  fail(e instanceof Error ? e.message : String(e))
}

const serveStatic = createStaticHandler({ root: join(ROOT, 'dist') })
const server = createServer((req, res) => {
  serveStatic(req, res).catch((e: unknown) => {
    console.error(`blyan: ${req.method} ${req.url}: ${e instanceof Error ? e.message : String(e)}`)
    res.destroy()
  })
})

server.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EADDRINUSE') fail(`port ${port} on ${host} is already in use; set PORT to use another`)
  if (e.code === 'EACCES') fail(`no permission to listen on ${host}:${port}; set PORT above 1023`)
  if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') fail(`HOST ${host} is not an address of this machine`)
  fail(`server error: ${e.message}`)
})

server.listen(port, host, () => {
  const address = server.address()
  const bound = typeof address === 'object' && address !== null ? address.port : port
  const shown = host.includes(':') ? `[${host}]` : host
  console.log(`Blyan site at http://${shown}:${bound}/  (Ctrl+C to stop)`)
})

function shutdown(signal: NodeJS.Signals): void {
  console.log(`${signal}: stopping`)
  server.close(() => process.exit(0))
  // Keep-alive connections would hold close() open; idle ones go now, busy ones get a moment.
  server.closeIdleConnections()
  setTimeout(() => {
    server.closeAllConnections()
  }, 2000).unref()
}
process.once('SIGINT', shutdown)
process.once('SIGTERM', shutdown)
