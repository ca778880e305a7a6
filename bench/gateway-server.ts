/**
 * Child process of bench/gateway.bench.ts: serves one store two ways, so the load generator runs
 * in another process. Prints `{"gateway": port, "static": port}` once both listen.
 *
 * - gateway: the relay (createRelay) over the chain store, rate limit lifted;
 * - static: a plain node:http file server answering GET /ipfs/<cid> with fs.readFile of a file
 *   holding the same bytes (written from the store at start): the baseline.
 */
import { createServer } from 'node:http'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FullNode } from '../relay/node/full-node.ts'
import { createRelay } from '../relay/http/server.ts'
import { openChainStore } from '../relay/node/chain-store.ts'

const storePath = process.argv[2] as string
const store = openChainStore(storePath)
const files = mkdtempSync(join(tmpdir(), 'blyan-static-'))
for (const block of store.all()) for (const cid of store.rawCidsOf(block.cid)) writeFileSync(join(files, cid.toString()), store.getRaw(cid) as Uint8Array)

const relay = createRelay({ node: new FullNode(store), version: 'bench', rateLimit: { burst: 1e12, perSecond: 1e12 } })
const plain = createServer((req, res) => {
  const cid = (req.url ?? '').split('?')[0]?.slice('/ipfs/'.length) ?? ''
  if (!/^[a-z0-9]+$/.test(cid)) return void res.writeHead(400).end()
  readFile(join(files, cid)).then(
    (bytes) => res.writeHead(200, { 'Content-Type': 'application/vnd.ipld.raw', 'Content-Length': bytes.length }).end(bytes),
    () => res.writeHead(404).end()
  )
})
const listen = (server: ReturnType<typeof createServer>): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
console.log(JSON.stringify({ gateway: await listen(relay.server), static: await listen(plain) }))
