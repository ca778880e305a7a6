/**
 * `npm start` as a newcomer meets it, in a fresh clone (test/fixtures/checkout.ts): it prints a few
 * plain lines (no bundler file listing or timing report), and the server stops with the process
 * that started it: Ctrl+C, SIGTERM or SIGKILL to `npm`, and the same for `npx blyan start` (where
 * npm runs the bin through `sh -c`). Before relay/lifetime.ts, killing npm left node serving as an
 * orphan.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { alive, answers, descendants, freePorts, freshCheckout, waitFor, type Checkout } from '../fixtures/checkout.ts'

/** What a kill must achieve within this: the port closed and every process npm started gone. */
const STOP_MS = 8000

interface Started {
  readonly child: ChildProcess
  readonly url: string
  /** Everything printed so far (stdout and stderr). */
  output(): string
}

describe('npm start: a few lines, and the server stops with npm', () => {
  let clone: Checkout
  let port = 0
  const running = new Set<ChildProcess>()

  before(() => {
    clone = freshCheckout('start')
  })
  after(() => {
    for (const child of running) killGroup(child)
    clone?.remove()
  })

  function env(): NodeJS.ProcessEnv {
    const e: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', BLYAN_DATA: join(clone.work, 'data'), HOME: clone.work, npm_config_update_notifier: 'false' }
    for (const k of ['BLYAN_MODEL', 'BLYAN_TOKENIZER', 'TEST_FILTER']) delete e[k]
    return e
  }

  /** Spawn `command` in the clone (its own process group) and wait for the node's URL. */
  async function start(command: string, args: (port: number) => string[]): Promise<Started> {
    port = await freePorts(1) // a port of its own: a server that outlived an earlier test must not fail this one
    const argv = args(port)
    const child = spawn(command, argv, { cwd: clone.dir, env: env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    running.add(child)
    let out = ''
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL after 180 s:\n${out}`)), 180_000)
      const onData = (chunk: Buffer): void => {
        out += chunk.toString()
        const m = /Blyan node at (http:\/\/\S+?)\/?\s/.exec(out)
        if (m !== null) {
          clearTimeout(timer)
          resolve({ child, url: m[1] as string, output: () => out })
        }
      }
      child.stdout.on('data', onData)
      child.stderr.on('data', onData)
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`${command} ${argv.join(' ')} exited (${code ?? signal}) before serving:\n${out}`))
      })
    })
  }

  /** Kill the parent only (never its group), then expect the port closed and every process below it gone. */
  async function killParent(s: Started, signal: NodeJS.Signals): Promise<void> {
    const pid = s.child.pid as number
    await waitFor(() => descendants(pid).length > 0, 5000)
    const below = descendants(pid)
    assert.ok(below.length > 0, 'the server runs below npm')
    assert.ok(await answers(`${s.url}/api/status`), 'serving before the kill')
    process.kill(pid, signal)
    const portClosed = await waitFor(async () => !(await answers(`${s.url}/api/status`, 500)), STOP_MS)
    const gone = await waitFor(() => below.every((p) => !alive(p)), STOP_MS)
    const left = below.filter(alive)
    if (left.length > 0) {
      // Clean up after a failure, so that the next test starts on its own.
      killGroup(s.child)
      await waitFor(() => below.every((p) => !alive(p)), STOP_MS)
    }
    running.delete(s.child)
    assert.ok(portClosed, `${signal} to npm (pid ${pid}): ${s.url} still answers after ${STOP_MS / 1000} s`)
    assert.ok(gone, `${signal} to npm (pid ${pid}): processes ${left.join(', ')} outlived it\n${s.output()}`)
  }

  test('first run: the build is one line, no bundler listing or timings; the URL and what is served', async () => {
    const s = await start('npm', () => ['start'])
    await waitFor(() => /Ctrl\+C stops it/.test(s.output()), 10_000)
    const out = s.output()
    const lines = out.split('\n').filter((l) => l.trim() !== '')
    console.log(`# npm start printed ${lines.length} lines:\n${lines.map((l) => `#   ${l}`).join('\n')}`)
    assert.doesNotMatch(out, /PLUGIN_TIMINGS|bundlerTimings|rolldown|The slowest callbacks/, 'no bundler timing report')
    assert.doesNotMatch(out, /dist\/assets\/|computing gzip size|modules transformed|vite v\d/, 'no per-file listing of the build')
    assert.doesNotMatch(out, /no Svelte config found/)
    assert.match(out, /building the site \(dist\/index\.html is missing\)/)
    assert.match(out, /site built in \d+(\.\d)? s/)
    assert.match(out, /serving the site \(dist\/\), the API \(\/api\), the IPFS gateway \(\/ipfs\) and the \/ws feed/)
    assert.ok(lines.length <= 20, `a few lines, got ${lines.length}`)
    // Ctrl+C in a terminal: SIGINT to the whole foreground process group.
    const pid = s.child.pid as number
    const below = descendants(pid)
    process.kill(-pid, 'SIGINT')
    assert.ok(await waitFor(async () => !(await answers(`${s.url}/api/status`, 500)), STOP_MS), 'Ctrl+C stops it')
    assert.ok(await waitFor(() => [pid, ...below].every((p) => !alive(p)), STOP_MS), 'and every process')
    running.delete(s.child)
    assert.match(s.output(), /SIGINT: stopping/)
  })

  test('SIGTERM to npm stops the server', async () => {
    const s = await start('npm', () => ['start'])
    assert.doesNotMatch(s.output(), /building the site/, 'built once')
    await killParent(s, 'SIGTERM')
  })

  test('SIGKILL to npm stops the server (it notices its parent is gone)', async () => {
    await killParent(await start('npm', () => ['start']), 'SIGKILL')
  })

  test('npx blyan start: SIGTERM or SIGKILL to npx stops the server behind its sh -c', async () => {
    const args = (p: number): string[] => ['blyan', 'start', '--data', join(clone.work, 'data'), '--port', String(p)]
    await killParent(await start('npx', args), 'SIGTERM')
    await killParent(await start('npx', args), 'SIGKILL')
  })
})

/** Last resort: SIGKILL the whole process group a detached child leads. */
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
  } catch {
    // already gone
  }
}
