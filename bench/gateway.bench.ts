/**
 * Gateway raw-block throughput and p99 latency at 50 concurrent connections, against a plain static
 * file server serving the same bytes from disk, both in one child process while autocannon loads
 * them from this one. Rounds alternate between the two servers; medians are reported, with the
 * ratio gateway / static (goal: at least 0.8 of the static server's throughput).
 *
 * The store is a stories260K devnet (../shared/data) when present, else the test devnet.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { main } from '../relay/cli.ts'
import { FullNode } from '../relay/node/full-node.ts'
import { openChainStore } from '../relay/node/chain-store.ts'
import { Devnet, submissionCar } from '../test/fixtures/devnet.ts'
import { sharedData, sharedPath } from '../test/fixtures/shared-data.ts'
import { median } from './measure.ts'

const CONNECTIONS = 50
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? '4')
const ROUNDS = 3

async function makeStore(dir: string): Promise<string> {
  if (sharedData('stories260K.bin') !== null) {
    const log = console.log
    console.log = () => undefined
    await main(['init', '--data', dir, '--model', sharedPath('stories260K.bin'), '--tokenizer', sharedPath('tok512.bin')])
    console.log = log
    return join(dir, 'chain.sqlite')
  }
  const d = await Devnet.standard()
  const path = join(dir, 'chain.sqlite')
  const store = openChainStore(path)
  const node = new FullNode(store, { now: () => Date.now() + 86_400_000 * 365 })
  for (const built of d.built.values()) await node.submitCar(await submissionCar(built))
  store.close()
  return path
}

interface Load { readonly rps: number; readonly mbps: number; readonly p99: number; readonly errors: number }

async function load(port: number, paths: string[]): Promise<Load> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: CONNECTIONS,
    duration: SECONDS,
    requests: paths.map((path) => ({ method: 'GET', path })),
    headers: { accept: 'application/vnd.ipld.raw' }
  })
  return { rps: result.requests.average, mbps: result.throughput.average / 1e6, p99: result.latency.p99, errors: result.errors + result.non2xx }
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'blyan-bench-gw-'))
  try {
    const storePath = await makeStore(dir)
    const store = openChainStore(storePath)
    const cids: string[] = []
    let bytes = 0
    for (const block of store.all()) for (const cid of store.rawCidsOf(block.cid)) {
      cids.push(cid.toString())
      bytes += (store.getRaw(cid) as Uint8Array).length
    }
    store.close()
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./gateway-server.ts', import.meta.url)), storePath], { stdio: ['ignore', 'pipe', 'inherit'] })
    const ports = await new Promise<{ gateway: number; static: number }>((resolve, reject) => {
      child.stdout.once('data', (chunk: Buffer) => resolve(JSON.parse(chunk.toString()) as never))
      child.once('exit', (code) => reject(new Error(`server exited ${code}`)))
    })
    try {
      console.log(`gateway: ${cids.length} raw blocks (${(bytes / cids.length / 1024).toFixed(1)} KiB average), ${CONNECTIONS} connections, ${SECONDS} s x ${ROUNDS} rounds each`)
      const paths = cids.map((c) => `/ipfs/${c}?format=raw`)
      await load(ports.static, paths.slice(0, 10)) // warm both up
      await load(ports.gateway, paths.slice(0, 10))
      const gw: Load[] = []
      const st: Load[] = []
      for (let r = 0; r < ROUNDS; r++) {
        st.push(await load(ports.static, paths))
        gw.push(await load(ports.gateway, paths))
      }
      const show = (name: string, runs: Load[]): string =>
        `${name}: ${median(runs.map((x) => x.rps)).toFixed(0)} req/s, ${median(runs.map((x) => x.mbps)).toFixed(1)} MB/s, p99 ${median(runs.map((x) => x.p99)).toFixed(1)} ms, errors ${runs.reduce((n, x) => n + x.errors, 0)}`
      console.log(`gateway: ${show('static file server', st)}`)
      console.log(`gateway: ${show('relay gateway', gw)}`)
      // Requests per second over the same block mix is the fair measure: MB/s also counts the
      // gateway's longer response headers (ETag, CORS, cache), which flatters it.
      const ratio = median(gw.map((x) => x.rps)) / median(st.map((x) => x.rps))
      const p99 = median(gw.map((x) => x.p99)) / median(st.map((x) => x.p99))
      console.log(`gateway: throughput ratio gateway / static = ${ratio.toFixed(2)} (requests/s over the same blocks; goal >= 0.8); p99 latency ratio ${p99.toFixed(2)}`)
    } finally {
      child.kill()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
