/**
 * The README as a newcomer uses it, in a fresh clone with no `../shared` beside it
 * (test/fixtures/checkout.ts): every ```sh example outside the "For developers" section runs, in
 * the README's order, and succeeds.
 *
 * How the examples are run:
 * - each line of a block is a command (`\` continues a line); `a && b` runs a, then b;
 * - `npm ci` is not run: the clone's node_modules is this checkout's, installed from the same
 *   lockfile (the install itself is checked below: no warnings); `npm test` is this suite;
 * - commands that serve (`npm start`, `npm run devnet`, `blyan start`, `blyan relay`) are started in
 *   the background and waited for until their HTTP port answers, as a user gives them a terminal of
 *   their own. One that needs a port or data directory an earlier one holds stops that one first,
 *   by SIGTERM to its npm (the server must stop with it), as the user would with Ctrl+C;
 * - the README's ports (8080-8099, 4000-4009) become free ports chosen for the run, and `PORT` is
 *   set for the npm scripts accordingly; `HOME` is a scratch directory (the miner's key);
 * - placeholders are what a user copies from an earlier output: `<dataset CID>` from
 *   `dataset propose`, `<version CID>` a version `blyan mine` got accepted (mining again when the
 *   jobs mined so far were not accepted: the validators' slice is drawn by chance).
 *
 * And `npm ci` itself: no warnings under this Node, and the Node versions package.json and the
 * README promise are accepted by every package of the lockfile.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { ROOT, alive, answers, descendants, freePorts, freshCheckout, waitFor, type Checkout } from './fixtures/checkout.ts'

const DEVELOPERS = /^For developers\b/
/** Longest one example command may take (mining a job, replaying one). */
const COMMAND_MS = 300_000
/** Longest a server may take to answer after it is started (a first `npm start` builds the site). */
const SERVE_MS = 180_000
/** How long a stopped server may take to close its port and end its processes. */
const STOP_MS = 10_000
/** Attempts at getting a version accepted for `<version CID>` (the README's mine command first). */
const MINE_ATTEMPTS = 3

export interface ShBlock {
  /** The `##`/`###` headings it is under, e.g. "What is here / Mining (Proof-of-Learning)". */
  readonly section: string
  /** Its commands: continuation lines joined, blank and comment-only lines dropped. */
  readonly commands: readonly string[]
  /** Under the "For developers" heading: may need ../shared, not run. */
  readonly developers: boolean
}

/** Every ```sh block of a README, with the section it is in. */
export function shBlocks(markdown: string): ShBlock[] {
  const blocks: ShBlock[] = []
  let h2 = ''
  let h3 = ''
  let lines: string[] | null = null
  for (const line of markdown.split('\n')) {
    if (lines !== null) {
      if (/^```\s*$/.test(line)) {
        const commands = lines.join('\n').replace(/\\\n\s*/g, '').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
        blocks.push({ section: h3 === '' ? h2 : `${h2} / ${h3}`, commands, developers: DEVELOPERS.test(h2) })
        lines = null
      } else lines.push(line)
    } else if (/^```(sh|bash|shell)\s*$/.test(line)) lines = []
    else if (line.startsWith('## ')) [h2, h3] = [line.slice(3).trim(), '']
    else if (line.startsWith('### ')) h3 = line.slice(4).trim()
  }
  return blocks
}

/** A command without its trailing `# comment` (a `#` inside quotes is kept). */
export function withoutComment(command: string): string {
  let quote: string | null = null
  for (let i = 0; i < command.length; i++) {
    const c = command[i] as string
    if (quote !== null) {
      if (c === quote) quote = null
    } else if (c === '"' || c === "'") quote = c
    else if (c === '#' && (i === 0 || /\s/.test(command[i - 1] as string))) return command.slice(0, i).trimEnd()
  }
  return command.trim()
}

type Kind = 'skip' | 'serve' | 'run'

/** What the runner does with one `&&`-part of a command. */
export function kindOf(part: string): Kind {
  if (/^npm (ci|test)$/.test(part)) return 'skip'
  if (/^npm (start|run devnet)$/.test(part) || /^npx blyan (start|relay)\b/.test(part)) return 'serve'
  return 'run'
}

/** The README ports a serving command takes, and the data directory it holds. */
function claims(part: string): { ports: number[]; data: string } {
  if (part === 'npm start') return { ports: [8080], data: '.blyan' }
  if (part === 'npm run devnet') return { ports: [8080, 8081, 8082, 8083, 8084], data: '.blyan-devnet' }
  const port = /--port\s+(\d+)/.exec(part)
  const listen = [...part.matchAll(/--listen\s+\S*\/tcp\/(\d+)/g)].map((m) => Number(m[1]))
  return { ports: [port === null ? 8080 : Number(port[1]), ...listen], data: /--data\s+(\S+)/.exec(part)?.[1] ?? '' }
}

const README = readFileSync(join(ROOT, 'README.md'), 'utf8')

describe('README: sections and where ../shared may appear', () => {
  test('a "For developers" section holds every example that needs ../shared; no other example names it', () => {
    const blocks = shBlocks(README)
    const users = blocks.filter((b) => !b.developers)
    assert.ok(blocks.some((b) => b.developers), 'the README has a "## For developers (needs ../shared/data)" section with its examples')
    assert.ok(users.length >= 5, `examples for users: ${users.length}`)
    for (const b of users) for (const c of b.commands) assert.ok(!c.includes('../shared'), `${b.section}: "${c}" needs ../shared, which a fresh clone does not have`)
  })
})

interface Server {
  readonly command: string
  readonly child: ChildProcess
  readonly url: string
  readonly ports: readonly number[]
  readonly data: string
  output(): string
}

describe('README examples run in a fresh clone without ../shared', () => {
  let clone: Checkout
  let base = 0
  let home = ''
  const servers: Server[] = []
  /** Everything the finished commands printed, in order (placeholders are read from it). */
  const outputs: { command: string; out: string }[] = []

  before(async () => {
    clone = freshCheckout('readme')
    home = join(clone.work, 'home')
    mkdirSync(home)
    base = await freePorts(30)
  })
  after(async () => {
    for (const s of [...servers].reverse()) await stop(s, false)
    clone?.remove()
  })

  /** A README port to this run's port. */
  const mapPort = (p: number): number => (p >= 8080 && p < 8100 ? base + p - 8080 : p >= 4000 && p < 4010 ? base + 20 + p - 4000 : p)
  const mapPorts = (text: string): string => text.replace(/\b(80[89]\d|400\d)\b/g, (p) => String(mapPort(Number(p))))

  function env(): NodeJS.ProcessEnv {
    const e: NodeJS.ProcessEnv = { ...process.env, HOME: home, PORT: String(mapPort(8080)), HOST: '127.0.0.1', npm_config_update_notifier: 'false' }
    for (const k of Object.keys(e)) if (k.startsWith('BLYAN_') || k === 'TEST_FILTER') delete e[k]
    return e
  }

  /** SIGTERM to the server's npm (never its group): its port must close and its processes end. */
  async function stop(s: Server, strict: boolean): Promise<void> {
    servers.splice(servers.indexOf(s), 1)
    const pid = s.child.pid as number
    const below = descendants(pid)
    try {
      process.kill(pid, 'SIGTERM')
    } catch {
      // already gone
    }
    const closed = await waitFor(async () => !(await answers(`${s.url}/api/status`, 500)), STOP_MS)
    const ended = await waitFor(() => [pid, ...below].every((p) => !alive(p)), STOP_MS)
    if (!closed || !ended) {
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {
        // gone
      }
      await waitFor(() => [pid, ...below].every((p) => !alive(p)), STOP_MS)
    }
    if (strict) assert.ok(closed && ended, `"${s.command}" still ran ${STOP_MS / 1000} s after SIGTERM to its npm (port ${closed ? 'closed' : 'open'})`)
  }

  async function serve(part: string): Promise<void> {
    const { ports, data } = claims(part)
    for (const s of [...servers]) {
      if (s.ports.some((p) => ports.includes(p)) || s.data === data) await stop(s, true)
    }
    const command = mapPorts(part)
    const url = `http://127.0.0.1:${mapPort(ports[0] as number)}`
    const child = spawn('bash', ['-c', `exec ${command}`], { cwd: clone.dir, env: env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c: Buffer) => void (out += c.toString()))
    child.stderr.on('data', (c: Buffer) => void (out += c.toString()))
    const server: Server = { command: part, child, url, ports, data, output: () => out }
    servers.push(server)
    let exited: string | null = null
    child.once('exit', (code, signal) => void (exited = String(code ?? signal)))
    const started = performance.now()
    const up = await waitFor(async () => exited !== null || (await answers(`${url}/api/status`)), SERVE_MS, 500)
    assert.ok(up && exited === null, `"${part}" ${exited === null ? `did not answer at ${url} in ${SERVE_MS / 1000} s` : `exited (${exited})`}:\n${out}`)
    console.log(`# serving: ${part}  (${url}, ${((performance.now() - started) / 1000).toFixed(1)} s)`)
  }

  function run(part: string): { code: number | null; out: string } {
    const command = mapPorts(fill(part))
    const started = performance.now()
    const r = spawnSync('bash', ['-c', command], { cwd: clone.dir, env: env(), encoding: 'utf8', timeout: COMMAND_MS })
    const out = `${r.stdout}${r.stderr}`
    outputs.push({ command: part, out })
    const tail = out.trim().split('\n').slice(-3).map((l) => `#     ${l}`).join('\n')
    console.log(`# ran: ${part}  (exit ${r.status ?? r.signal}, ${((performance.now() - started) / 1000).toFixed(1)} s)\n${tail}`)
    return { code: r.status, out }
  }

  /** The accepted versions `blyan mine` reported so far. */
  function acceptedVersions(): string[] {
    const versions: string[] = []
    for (const { command, out } of outputs) {
      if (!/\bblyan mine\b/.test(command)) continue
      let candidate: string | null = null
      for (const line of out.split('\n')) {
        const m = /submitted candidate (\S+?);/.exec(line)
        if (m !== null) candidate = m[1] as string
        if (line.startsWith('accepted:') && candidate !== null) versions.push(candidate)
      }
    }
    return versions
  }

  /** Replace `<...>` placeholders with what the earlier outputs give. */
  function fill(part: string): string {
    return part.replace(/<([a-z][a-z ]*)>/gi, (whole, name: string) => {
      if (name === 'dataset CID') {
        const all = outputs.flatMap(({ out }) => [...out.matchAll(/proposed \S+ \((?:train|validation)\): (\S+)/g)].map((m) => m[1] as string))
        assert.ok(all.length > 0, `${whole}: no dataset was proposed before "${part}"`)
        return all[all.length - 1] as string
      }
      if (name === 'version CID') {
        const mine = [...outputs].reverse().find((o) => /\bblyan mine\b/.test(o.command))
        assert.ok(mine !== undefined, `${whole}: nothing was mined before "${part}"`)
        for (let attempt = 1; acceptedVersions().length === 0 && attempt < MINE_ATTEMPTS; attempt++) {
          console.log(`# no version accepted yet: mining again (${mine.command})`)
          assert.equal(run(mine.command).code, 0)
        }
        const versions = acceptedVersions()
        assert.ok(versions.length > 0, `${whole}: no version accepted in ${MINE_ATTEMPTS} attempts at "${mine.command}"`)
        return versions[versions.length - 1] as string
      }
      throw new Error(`"${part}": no value for the placeholder ${whole}`)
    })
  }

  const blocks = shBlocks(README).filter((b) => !b.developers)
  for (const [i, block] of blocks.entries()) {
    test(`${i + 1}. ${block.section}: ${withoutComment(block.commands[0] ?? '')}`, { timeout: COMMAND_MS * (MINE_ATTEMPTS + 1) }, async () => {
      for (const command of block.commands) {
        for (const part of withoutComment(command).split('&&').map((p) => p.trim())) {
          const kind = kindOf(part)
          if (kind === 'skip') console.log(`# not run: ${part} (${part === 'npm ci' ? 'node_modules is linked from this checkout' : 'this is the test suite'})`)
          else if (kind === 'serve') await serve(part)
          else {
            const { code, out } = run(part)
            assert.equal(code, 0, `"${part}" failed:\n${out}`)
          }
        }
      }
    })
  }
})

/** A version as [major, minor, patch]. */
type Version = readonly [number, number, number]

function parseVersion(text: string): Version {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text)
  if (m === null) throw new Error(`not a version: ${text}`)
  return [Number(m[1]), Number(m[2]), Number(m[3])]
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2]
}

/**
 * Does `version` satisfy an npm `engines` range? The forms package-lock.json holds: `||` of
 * space-separated comparators (`>=`, `>`, `<`, `<=`, `=`, `^`, `~`, bare and partial versions with
 * `x`/`*`), and `*`. Anything else throws, so a new form is noticed.
 */
export function satisfies(version: Version, range: string): boolean {
  return range.split('||').some((set) => {
    const comparators = set.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).filter((c) => c !== '')
    return comparators.every((c) => {
      if (c === '*' || c === 'x') return true
      const m = /^(>=|<=|>|<|=|\^|~)?v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(c)
      if (m === null) throw new Error(`engines range "${range}": cannot read "${c}"`)
      const op = m[1] ?? ''
      const major = Number(m[2])
      const minor = m[3] === undefined || m[3] === 'x' || m[3] === '*' ? null : Number(m[3])
      const patch = minor === null || m[4] === undefined || m[4] === 'x' || m[4] === '*' ? null : Number(m[4])
      const low: Version = [major, minor ?? 0, patch ?? 0]
      // The first version above a partial one: 20 -> 21.0.0, 20.19 -> 20.20.0.
      const next: Version = minor === null ? [major + 1, 0, 0] : patch === null ? [major, minor + 1, 0] : [major, minor, patch + 1]
      const v = compare(version, low)
      switch (op) {
        case '>=': return v >= 0
        case '>': return compare(version, next) >= 0
        case '<': return v < 0
        case '<=': return compare(version, next) < 0
        case '^': {
          const top: Version = major > 0 || minor === null ? [major + 1, 0, 0] : minor > 0 || patch === null ? [0, minor + 1, 0] : [0, 0, (patch ?? 0) + 1]
          return v >= 0 && compare(version, top) < 0
        }
        case '~': return v >= 0 && compare(version, minor === null ? [major + 1, 0, 0] : [major, minor + 1, 0]) < 0
        default: return v >= 0 && compare(version, next) < 0 // bare: exact, or an x-range when partial
      }
    })
  })
}

describe('npm ci: no warnings, and an honest Node requirement', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { engines?: { node?: string } | string[] }> }
  /** The oldest version of each branch of package.json's range (`^20.19.4 || ^22.13.0 || >=24.3.0` -> 20.19.4, 22.13.0, 24.3.0). */
  const minima = pkg.engines.node.split('||').map((branch): Version => {
    const m = /(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(branch)
    if (m === null) throw new Error(`package.json engines.node: cannot read "${branch}"`)
    return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)]
  })

  test('the range reader', () => {
    assert.ok(satisfies([20, 20, 2], '^20.19.4 || ^22.13.0 || >=24.3.0'))
    assert.ok(!satisfies([20, 19, 3], '^20.19.4 || ^22.13.0'))
    assert.ok(!satisfies([22, 12, 0], '^20.19.4 || ^22.13.0'))
    assert.ok(!satisfies([20, 20, 2], '^22 || ^24 || >=26'))
    assert.ok(!satisfies([20, 20, 2], '>=22'))
    assert.ok(satisfies([20, 0, 0], '>= 0.8.x') && satisfies([20, 1, 0], '20.x') && !satisfies([21, 0, 0], '20.x') && satisfies([20, 0, 0], '10.* || >= 12.*'))
    assert.ok(satisfies([20, 0, 0], '^18 || >=20') && !satisfies([19, 0, 0], '^18 || >=20') && satisfies([20, 19, 0], '>=20.19'))
  })

  test('every package in package-lock.json accepts the oldest Node of each line package.json allows, and this Node', () => {
    assert.ok(satisfies(parseVersion(process.version), pkg.engines.node), `this Node (${process.version}) is one package.json allows (${pkg.engines.node})`)
    const refused: string[] = []
    for (const [path, entry] of Object.entries(lock.packages)) {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node
      if (path === '' || range === undefined) continue
      for (const v of [...minima, parseVersion(process.version)]) if (!satisfies(v, range)) refused.push(`${path.replace(/^.*node_modules\//, '')} wants node ${range}, not ${v.join('.')}`)
    }
    assert.deepEqual(refused, [], 'a dependency refuses a Node version package.json promises: raise engines (and the README) or pin it (package.json overrides)')
  })

  test('the README states the same Node requirement', () => {
    for (const v of minima) assert.ok(README.includes(v[2] === 0 ? `${v[0]}.${v[1]}` : v.join('.')), `README names Node ${v.join('.')} (package.json engines: ${pkg.engines.node})`)
  })

  test('npm ci in a fresh checkout prints no warnings (EBADENGINE or other)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'blyan-npm-ci-'))
    try {
      for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, f), join(dir, f))
      // A dry run resolves the lockfile's tree and checks every package's engines as npm ci does; offline: the lockfile is all it reads.
      const r = spawnSync('npm', ['ci', '--dry-run', '--offline', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8', timeout: 120_000, env: { ...process.env, npm_config_update_notifier: 'false' } })
      const out = `${r.stdout}${r.stderr}`
      assert.equal(r.status, 0, out)
      assert.deepEqual(out.split('\n').filter((l) => /npm (warn|WARN|error|ERR)/.test(l)), [], 'npm ci warns')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
