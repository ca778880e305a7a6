/**
 * `/ws`: a live feed of newly accepted headers.
 *
 * On connect a client gets `{ type: "hello", status }` (the same object as GET /api/status), then
 * `{ type: "accepted", block }` for each accepted block, in acceptance order, where `block` is the
 * API's block view including `header_hex` (verify it; it is just bytes from a relay). Clients that
 * stop reading (over 4 MiB buffered) or stop answering pings are dropped.
 *
 * @module
 */
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { blockToJson } from '../src/chain/json.ts'
import type { AcceptedBlock } from '../src/chain/view.ts'
import { statusJson } from './api.ts'
import type { FullNode } from './node.ts'

const MAX_BUFFERED = 4 * 1024 * 1024
const PING_MS = 30_000

export interface HeaderFeed {
  /** Number of connected clients. */
  readonly clients: number
  close(): void
}

export function attachHeaderFeed(server: Server, node: FullNode, version: string): HeaderFeed {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 })
  const alive = new WeakMap<WebSocket, boolean>()

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const path = new URL(req.url ?? '/', 'http://relay').pathname
    if (path !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  }
  server.on('upgrade', onUpgrade)

  wss.on('connection', (ws: WebSocket) => {
    alive.set(ws, true)
    ws.on('pong', () => alive.set(ws, true))
    ws.on('error', () => ws.terminate())
    ws.send(JSON.stringify({ type: 'hello', status: statusJson(node, version) }))
  })

  const onAccepted = (block: AcceptedBlock): void => {
    const message = JSON.stringify({ type: 'accepted', block: blockToJson(block) })
    for (const ws of wss.clients) {
      if (ws.readyState !== ws.OPEN) continue
      if (ws.bufferedAmount > MAX_BUFFERED) ws.terminate()
      else ws.send(message)
    }
  }
  node.on('accepted', onAccepted)

  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (alive.get(ws) === false) {
        ws.terminate()
        continue
      }
      alive.set(ws, false)
      ws.ping()
    }
  }, PING_MS)
  pinger.unref()

  return {
    get clients() {
      return wss.clients.size
    },
    close() {
      clearInterval(pinger)
      node.off('accepted', onAccepted)
      server.off('upgrade', onUpgrade)
      for (const ws of wss.clients) ws.terminate()
      wss.close()
    }
  }
}
