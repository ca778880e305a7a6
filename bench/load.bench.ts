/**
 * A node under bad traffic: another client's `GET /api/status` latency (p50, p99 of 100 reads a
 * second from its own address, 127.0.0.2) while the node is idle, while 4 clients keep streaming
 * 200 MB uploads at it (garbage, and header-first CARs of a real candidate padded with junk, each
 * restarted as soon as the node cuts it off), and while one address floods the costliest routes
 * (1000-header pages of chain B and full-DAG CAR exports, 50 connections). The node is `blyan start`
 * on a genesis devnet in a child process, the load comes from another (bench/load-client.ts), and
 * the measuring client is this one. Prints each phase's p99 as a
 * ratio to idle (goal: at most 3x; issue 13 measured 1.6 s p99 under uploads and a 556 ms median
 * under a headers flood before the limits).
 */
import { spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomSecretKey } from '../src/chain/keys.ts'
import { openChainStore } from '../relay/node/chain-store.ts'
import { genesisDevnet, nudgedCandidate } from '../test/fixtures/genesis-devnet.ts'
import { median } from './measure.ts'
import { startNode } from '../test/fixtures/node-process.ts'
import { paddedSubmission } from '../test/fixtures/uploads.ts'

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? '5')
const MB = 1024 * 1024
/** The other client's address: its own rate-limit bucket (loopback answers all of 127.0.0.0/8). */
const READER = '127.0.0.2'

/** Reads per second the other client makes: a busy page, well inside its own rate limit. */
const READS_PER_SECOND = 100

/** Latencies (ms) of status reads from READER, one every 1/READS_PER_SECOND s, for `seconds`. */
async function statusLatencies(url: string, seconds: number): Promise<number[]> {
  const u = new URL(`${url}/api/status`)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const out: number[] = []
  const end = performance.now() + seconds * 1000
  for (let next = performance.now(); performance.now() < end; next += 1000 / READS_PER_SECOND) {
    const wait = next - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    const t = performance.now()
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: u.hostname, port: u.port, path: u.pathname, localAddress: READER, agent }, (res) => {
        res.resume()
        res.once('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))))
      })
      req.once('error', reject)
      req.end()
    })
    out.push(performance.now() - t)
  }
  agent.destroy()
  return out
}

function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] as number
}

/** Run bench/load-client.ts with `args` (and `input` on stdin) in a child process; its JSON line of totals. */
function loadClient<T>(args: string[], input = ''): Promise<T> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./load-client.ts', import.meta.url)), ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  child.stdin.end(input)
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`load client exited ${code}`)))))
}

export async function run(): Promise<void> {
  const dir = await genesisDevnet()
  const store = openChainStore(join(dir, 'chain.sqlite'))
  const car = (await nudgedCandidate(store, 0, 1, randomSecretKey())).car
  const headB = store.head('B')?.cid.toString() as string
  store.close()
  const { child, url } = await startNode(dir)
  try {
    await statusLatencies(url, 1) // warm up
    const phases: { name: string; latencies: number[]; note: string }[] = []
    const idle = await statusLatencies(url, SECONDS)
    phases.push({ name: 'idle', latencies: idle, note: '' })

    const prefixes = [new TextEncoder().encode('garbage'), new Uint8Array(64 * 1024).fill(7), paddedSubmission(car), paddedSubmission(car)].map((p) => Buffer.from(p).toString('hex'))
    const streaming = loadClient<{ uploads: number; bytes: number }>(['uploads', url, String(SECONDS + 1)], JSON.stringify(prefixes))
    await new Promise((resolve) => setTimeout(resolve, 500))
    const underUploads = await statusLatencies(url, SECONDS)
    const up = await streaming
    phases.push({ name: '4 x 200 MB uploads streaming', latencies: underUploads, note: `${up.uploads} uploads cut off after ${(up.bytes / Math.max(1, up.uploads) / MB).toFixed(2)} MB each on average` })

    const flood = loadClient<{ requests: number; refused: number; throughput: number }>(['flood', url, String(SECONDS + 1), `/ipfs/${headB}?format=car&dag-scope=all`])
    await new Promise((resolve) => setTimeout(resolve, 500))
    const underFlood = await statusLatencies(url, SECONDS)
    const result = await flood
    phases.push({
      name: 'one address floods header pages + CAR exports (50 connections)',
      latencies: underFlood,
      note: `flood: ${result.requests} requests, ${result.refused} refused (429), ${(result.throughput / MB).toFixed(1)} MB/s served`
    })

    const base = percentile(idle, 0.99)
    console.log(`/api/status from ${READER}, ${READS_PER_SECOND} reads/s, ${SECONDS} s per phase; ratio = p99 / idle p99 (goal <= 3)`)
    for (const p of phases) {
      const p99 = percentile(p.latencies, 0.99)
      console.log(`  ${p.name}: ${p.latencies.length} reads, p50 ${median(p.latencies).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, ratio ${(p99 / base).toFixed(2)}${p.note === '' ? '' : `; ${p.note}`}`)
    }
  } finally {
    child.kill('SIGKILL')
  }
}
