/**
 * A node that bad traffic cannot wear down, and that will not start in a state it cannot serve:
 *
 * - 4 uploads of 200 MB (garbage, and header-first CARs of a real candidate padded with junk) are
 *   refused as they stream: `blyan start`'s resident memory grows by less than 100 MB (before: each
 *   body was buffered whole, 740 MB for four), and another client's /api/status still answers;
 * - rate limits weigh a route's cost: a flood of 1000-header pages is cut off long before a status
 *   reader would be, and /ws upgrades go through the limiter too (before: 1,870 handshakes/s);
 * - the site sends a Content-Security-Policy and cannot be framed;
 * - a read-only data directory, a damaged pol.sqlite and a missing validator key each stop
 *   `blyan start` with one line (before: it started and answered 500s, or served a corrupt index).
 */
import assert from 'node:assert/strict'
import { spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CarReader } from '@ipld/car'
import type { CID } from 'multiformats/cid'
import WebSocket from 'ws'
import { cidOf } from '../../src/codec/cbor.ts'
import { writeCar } from '../../src/chain/submission.ts'
import { randomSecretKey } from '../../src/chain/keys.ts'
import { KEYS_DIR } from '../../relay/devnet.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { PolStore } from '../../relay/pol/pol-store.ts'
import { createRelay } from '../../relay/http/server.ts'
import { openChainStore } from '../../relay/node/chain-store.ts'
import { genesisDevnet, nudgedCandidate } from '../fixtures/genesis-devnet.ts'
import { BLYAN_BIN, plainNode, startNode, type CommandWrap } from '../fixtures/node-process.ts'
import { carHead, paddedSubmission, streamUpload } from '../fixtures/uploads.ts'

const MB = 1024 * 1024

/** Run `blyan start` expecting it to refuse: its exit code and what it printed. */
function startRefused(dir: string, wrap: CommandWrap = plainNode): { code: number | null; stdout: string; stderr: string } {
  const [command, args] = wrap([BLYAN_BIN, 'start', '--data', dir, '--port', '0'])
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 60_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** The refusal is one line naming the problem: no stack trace, and the node never listened. */
function assertOneLine(r: { code: number | null; stdout: string; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`)
  assert.doesNotMatch(r.stdout + r.stderr, /Blyan node at/)
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^checking store \[/.test(l))
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`)
  assert.match(lines[0] as string, pattern)
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace')
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? 0) * 1024
}

describe('bounded work per request', () => {
  let dir: string
  let node: { child: ChildProcess; url: string }
  let candidateCar: Uint8Array

  before(async () => {
    dir = await genesisDevnet()
    const store = openChainStore(join(dir, 'chain.sqlite'))
    candidateCar = (await nudgedCandidate(store, 0, 1, randomSecretKey())).car
    store.close()
    node = await startNode(dir)
    node.child.stdout?.on('data', (c: Buffer) => { printed += c.toString() })
    node.child.stderr?.on('data', (c: Buffer) => { printed += c.toString() })
  })

  after(() => {
    node?.child.kill('SIGKILL')
  })

  /** What the node printed since it started (its log lines, and any error). */
  let printed = ''

  test('4 x 200 MB uploads are refused as they stream: resident memory grows by less than 100 MB; status still answers', async (t) => {
    const pid = node.child.pid as number
    const before = rssBytes(pid)
    let peak = before
    const sampler = setInterval(() => { peak = Math.max(peak, rssBytes(pid)) }, 20)
    // A header-first CAR of a real candidate whose next block claims 200 MB: well-formed as far as it goes.
    const wellFormed = paddedSubmission(candidateCar)
    const uploads = [streamUpload(node.url, new TextEncoder().encode('garbage')), streamUpload(node.url, new Uint8Array(64 * 1024).fill(7)), streamUpload(node.url, wellFormed), streamUpload(node.url, wellFormed)]
    const status = await fetch(`${node.url}/api/status`)
    assert.equal(status.status, 200, 'another client is answered while the uploads stream')
    const results = await Promise.all(uploads)
    clearInterval(sampler)
    peak = Math.max(peak, rssBytes(pid))
    for (const r of results) {
      assert.ok(r.status === null || (r.status >= 400 && r.status < 600), `refused: ${JSON.stringify(r)}`)
      assert.ok(r.sent < 200 * MB, `cut off before the end: ${JSON.stringify(r)}`)
    }
    assert.ok(results.some((r) => r.status === 413), `the well-formed ones are over their kind's limit: ${JSON.stringify(results)}`)
    const growth = peak - before
    t.diagnostic(`answers ${results.map((r) => r.status).join(', ')}; bytes handed to the socket ${results.map((r) => (r.sent / MB).toFixed(2)).join(', ')} MB; node RSS ${(before / MB).toFixed(0)} MB, peak growth ${(growth / MB).toFixed(1)} MB`)
    assert.ok(growth < 100 * MB, `resident memory grew by ${(growth / MB).toFixed(1)} MB`)
    // The node still takes a real submission afterwards.
    const res = await fetch(`${node.url}/api/blocks`, { method: 'POST', headers: { 'Content-Type': 'application/vnd.ipld.car' }, body: candidateCar as Uint8Array<ArrayBuffer> })
    assert.equal(res.status, 202, await res.text())
  })

  test('a header that is not first, and a CAR over its kind\'s limit, are refused with their codes as they stream', async () => {
    const reader = await CarReader.fromBytes(candidateCar)
    const blocks: { cid: CID; bytes: Uint8Array }[] = []
    for await (const b of reader.blocks()) blocks.push(b)
    const roots = await reader.getRoots()
    const send = async (car: Uint8Array): Promise<{ status: number; error: { code: string; message: string } }> => {
      const res = await fetch(`${node.url}/api/blocks`, { method: 'POST', headers: { 'Content-Type': 'application/vnd.ipld.car' }, body: car as Uint8Array<ArrayBuffer> })
      return { status: res.status, error: ((await res.json()) as { error: { code: string; message: string } }).error }
    }
    const notFirst = await send(await writeCar(roots, [...blocks.slice(1), blocks[0] as { cid: CID; bytes: Uint8Array }]))
    assert.deepEqual([notFirst.status, notFirst.error.code], [400, 'E_CAR'])
    assert.match(notFirst.error.message, /first block must be the header/)
    const big = new Uint8Array(4 * MB).fill(9)
    const over = await send(await writeCar(roots, [...blocks, { cid: cidOf(big, 0x55), bytes: big }]))
    assert.deepEqual([over.status, over.error.code], [413, 'E_TOO_LARGE'])
    assert.match(over.error.message, /for a chain B expert block/)
  })

  test('an upload the client aborts midway is dropped quietly: no error, no stack trace in the node\'s log', async () => {
    const head = carHead(candidateCar)
    await new Promise<void>((resolve) => {
      const u = new URL(`${node.url}/api/blocks`)
      const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'Content-Type': 'application/vnd.ipld.car', 'Content-Length': String(candidateCar.length) } })
      req.on('error', () => resolve())
      req.write(head)
      setTimeout(() => {
        req.destroy()
        setTimeout(resolve, 300)
      }, 100)
    })
    assert.equal((await fetch(`${node.url}/api/status`)).status, 200)
    assert.doesNotMatch(printed, /relay: |^\s+at /m, printed)
  })
})

describe('rate limits weighted by cost, the site\'s headers', () => {
  test('a flood of 1000-header pages is cut off before a status reader; /ws upgrades are limited too', async () => {
    const store = openChainStore(join(mkdtempSync(join(tmpdir(), 'blyan-limits-')), 'chain.sqlite'))
    const site = mkdtempSync(join(tmpdir(), 'blyan-site-'))
    writeFileSync(join(site, 'index.html'), '<!doctype html><title>Blyan</title>')
    const relay = createRelay({ node: new FullNode(store), version: 'test', siteRoot: site, rateLimit: { burst: 400, perSecond: 1 } })
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(relay.server.address() as AddressInfo).port}`
    try {
      const codes = async (path: string, n: number): Promise<number[]> => {
        const out: number[] = []
        for (let i = 0; i < n; i++) out.push((await fetch(`${url}${path}`)).status)
        return out
      }
      const pages = await codes('/api/headers?chain=B&limit=1000', 10)
      assert.equal(pages.filter((c) => c === 200).length, 3, `a page of 1000 headers costs 101 of the 400 tokens: ${pages}`)
      assert.ok(pages.slice(3).every((c) => c === 429))
      // Status costs 1: the same budget would have served 400 of them.
      const fresh = createRelay({ node: new FullNode(store), version: 'test', rateLimit: { burst: 400, perSecond: 1 } })
      await new Promise<void>((resolve) => fresh.server.listen(0, '127.0.0.1', resolve))
      const freshUrl = `http://127.0.0.1:${(fresh.server.address() as AddressInfo).port}`
      let ok = 0
      for (let i = 0; i < 300; i++) if ((await fetch(`${freshUrl}/api/status`)).status === 200) ok++
      assert.equal(ok, 300)
      // /ws upgrades spend the same tokens (20 each): the 97 the pages left admit 4 feeds, then 429.
      const upgrade = (): Promise<number> => new Promise<number>((resolve) => {
        const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`)
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
        ws.on('open', () => {
          ws.close()
          resolve(101)
        })
        ws.on('error', () => undefined)
      })
      const upgrades: number[] = []
      for (let i = 0; i < 6; i++) upgrades.push(await upgrade())
      assert.deepEqual(upgrades, [101, 101, 101, 101, 429, 429])
      await fresh.close()

      // The site: a CSP that forbids framing and foreign code, over its isolation headers.
      const page = await fetch(`${url}/`)
      const csp = page.headers.get('content-security-policy') ?? ''
      assert.match(csp, /frame-ancestors 'none'/)
      assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/)
      assert.match(csp, /object-src 'none'/)
      assert.equal(page.headers.get('x-frame-options'), 'DENY')
      assert.equal(page.headers.get('cross-origin-opener-policy'), 'same-origin')
    } finally {
      await relay.close()
      store.close()
    }
  })
})

describe('fail loudly at start', () => {
  let base: string

  before(async () => {
    base = await genesisDevnet()
    PolStore.open(join(base, 'pol.sqlite')).close() // as a node that ran leaves it (closed: its tables are in the file)
  })

  const copy = (name: string): string => {
    const dir = join(mkdtempSync(join(tmpdir(), `blyan-${name}-`)), 'data')
    cpSync(base, dir, { recursive: true })
    return dir
  }

  test('a damaged pol.sqlite: one line naming it', () => {
    const dir = copy('badpol')
    const file = join(dir, 'pol.sqlite')
    assert.ok(statSync(file).size > 8192)
    const fd = openSync(file, 'r+')
    writeSync(fd, new Uint8Array(4096).fill(0xab), 0, 4096, 4096) // the second page: the schema's tables
    closeSync(fd)
    assertOneLine(startRefused(dir), /pol\.sqlite.*(damaged|malformed)/)
  })

  test('a missing validator key: one line naming the file', () => {
    const dir = copy('nokey')
    rmSync(join(dir, KEYS_DIR, 'validator-1.key'))
    assertOneLine(startRefused(dir), /validator-1\.key is missing/)
  })

  test('a read-only data directory: one line, before it listens', (t) => {
    const dir = copy('readonly')
    let wrap: CommandWrap | undefined
    if (process.getuid?.() !== 0) {
      for (const f of readdirSync(dir)) if (f.endsWith('.sqlite')) chmodSync(join(dir, f), 0o444)
      chmodSync(dir, 0o555)
    } else {
      // root ignores file modes: make the directory a read-only bind mount in a mount namespace of its own.
      const probe = spawnSync('unshare', ['--mount', 'sh', '-c', `mount --bind -o ro "${dir}" "${dir}" && ! touch "${dir}/probe"`], { encoding: 'utf8' })
      if (probe.status !== 0) return t.skip(`cannot make a read-only directory as root here (unshare: ${probe.stderr.trim() || probe.status})`)
      wrap = (argv) => ['unshare', ['--mount', 'sh', '-c', `mount --bind -o ro "${dir}" "${dir}" && exec "${process.execPath}" ${argv.map((a) => `"${a}"`).join(' ')}`]]
    }
    try {
      assertOneLine(startRefused(dir, wrap), /not writable/)
    } finally {
      if (process.getuid?.() !== 0) chmodSync(dir, 0o755)
      mkdirSync(dir, { recursive: true })
    }
  })
})
