/**
 * `/ws`: a live feed of newly accepted headers.
 *
 * On connect a client gets `{ type: "hello", status }` (the same object as GET /api/status), then
 * `{ type: "accepted", block }` for each accepted block, in acceptance order, where `block` is the
 * API's block view including `header_hex` (verify it; it is just bytes from a relay), and
 * `{ type: "finalized", checkpoint: { number, id, hex } }` for each finality checkpoint. Clients that
 * stop reading (over 4 MiB buffered) or stop answering pings are dropped. Upgrades are admitted by
 * the relay's rate limiter, and at most MAX_CLIENTS_PER_ADDRESS feeds are open per client address.
 *
 * @module
 */
import { requestUrl } from './request-url.ts'
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { toHex } from '../../src/codec/cbor.ts'
import { checkpointId, type Checkpoint } from '../../src/chain/checkpoint.ts'
import { blockToJson } from '../../src/chain/json.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { statusJson } from './views.ts'
import type { FullNode } from '../node/full-node.ts'

const MAX_BUFFERED = 4 * 1024 * 1024
const PING_MS = 30_000
/** Feeds one client address may hold open at once. */
export const MAX_CLIENTS_PER_ADDRESS = 16

export interface HeaderFeedOptions {
  /** The rate limiter's verdict on an upgrade: 0 to admit, else the seconds to wait. */
  readonly admit?: (req: IncomingMessage) => number
}

export interface HeaderFeed {
  /** Number of connected clients. */
  readonly clients: number
  close(): void
}

export function attachHeaderFeed(server: Server, node: FullNode, version: string, options: HeaderFeedOptions = {}): HeaderFeed {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 })
  const alive = new WeakMap<WebSocket, boolean>()
  const perAddress = new Map<string, number>()

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy())
    const path = requestUrl(req.url).pathname
    if (path !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n')
      return
    }
    const address = req.socket.remoteAddress ?? 'unknown'
    const wait = options.admit?.(req) ?? 0
    const open = perAddress.get(address) ?? 0
    if (wait > 0 || open >= MAX_CLIENTS_PER_ADDRESS) {
      const retry = Math.max(wait, 1)
      socket.end(`HTTP/1.1 429 Too Many Requests\r\nRetry-After: ${retry}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      perAddress.set(address, (perAddress.get(address) ?? 0) + 1)
      ws.once('close', () => {
        const left = (perAddress.get(address) ?? 1) - 1
        if (left <= 0) perAddress.delete(address)
        else perAddress.set(address, left)
      })
      wss.emit('connection', ws, req)
    })
  }
  server.on('upgrade', onUpgrade)

  wss.on('connection', (ws: WebSocket) => {
    alive.set(ws, true)
    ws.on('pong', () => alive.set(ws, true))
    ws.on('error', () => ws.terminate())
    ws.send(JSON.stringify({ type: 'hello', status: statusJson(node, version) }))
  })

  const broadcast = (message: string): void => {
    for (const ws of wss.clients) {
      if (ws.readyState !== ws.OPEN) continue
      if (ws.bufferedAmount > MAX_BUFFERED) ws.terminate()
      else ws.send(message)
    }
  }
  const onAccepted = (block: AcceptedBlock): void => broadcast(JSON.stringify({ type: 'accepted', block: blockToJson(block) }))
  const onFinalized = (checkpoint: Checkpoint, bytes: Uint8Array): void => {
    broadcast(JSON.stringify({ type: 'finalized', checkpoint: { number: checkpoint.number, id: checkpointId(checkpoint).toString(), hex: toHex(bytes) } }))
  }
  node.on('accepted', onAccepted)
  node.on('finalized', onFinalized)

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
      node.off('finalized', onFinalized)
      server.off('upgrade', onUpgrade)
      for (const ws of wss.clients) ws.terminate()
      wss.close()
    }
  }
}
