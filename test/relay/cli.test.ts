/**
 * The `blyan` command line as a user meets it (the real bin, in a child process): help for every
 * command, one-line errors naming the argument or file, exit codes, and truncated, oversized or
 * garbage model files and CARs refused cleanly, never with a stack trace. And `npm start`'s entry
 * creating a devnet on first run.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { main } from '../../relay/cli.ts'
import { checkJobSettings } from '../../relay/pol/jobs.ts'
import { Devnet, submissionCar } from '../fixtures/devnet.ts'
import { SHARED_DATA_MISSING, sharedData, sharedPath } from '../fixtures/shared-data.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const BIN = join(ROOT, 'bin', 'blyan.js')
const tmp = mkdtempSync(join(tmpdir(), 'blyan-cli-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

function blyan(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 })
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr }
}

/** The error output is one line (plus a usage block for usage errors) and never a stack trace. */
function assertCleanError(r: { err: string }, pattern: RegExp): void {
  assert.match(r.err, pattern)
  assert.doesNotMatch(r.err, /\n\s+at /, `a stack trace leaked:\n${r.err}`)
}

describe('blyan CLI', () => {
  test('--help for the tool and every command', () => {
    const top = blyan('--help')
    assert.equal(top.code, 0)
    for (const command of ['init', 'start', 'verify', 'export', 'import-car']) {
      assert.match(top.out, new RegExp(`blyan ${command}`))
      const r = blyan(command, '--help')
      assert.equal(r.code, 0, command)
      assert.match(r.out, new RegExp(`^blyan ${command} `), command)
    }
    assert.equal(blyan().code, 2)
    assert.match(blyan('--version').out, /^\d+\.\d+\.\d+/)
  })

  test('usage errors name the argument and exit 2', () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [['init', '--model', 'x.bin'], /--data is required/],
      [['init', '--data', join(tmp, 'a'), '--model', 'x.bin', '--dtype', 'int4'], /--dtype must be int8 or f32, got "int4"/],
      [['init', '--data', join(tmp, 'a'), '--model', 'x.bin', '--experts', '0'], /--experts must be an integer from 1/],
      [['init', '--data', join(tmp, 'a'), '--model', 'x.bin', '--dataset', 'nofile'], /--dataset expects NAME=FILE/],
      [['start', '--data', tmp, '--port', 'http'], /--port must be an integer/],
      [['verify', '--data', tmp, '--bogus'], /Unknown option '--bogus'/],
      [['export', '--data', tmp], /--car is required/]
    ]
    for (const [args, pattern] of cases) {
      const r = blyan(...args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`)
      assertCleanError(r, pattern)
    }
  })

  test('missing files, missing devnets and damaged stores are one-line errors with exit 1', () => {
    const cases: [string[], RegExp][] = [
      [['init', '--data', join(tmp, 'b'), '--model', join(tmp, 'missing.bin')], /missing\.bin/],
      [['verify', '--data', join(tmp, 'nothing')], /no devnet here/],
      [['import-car', '--data', join(tmp, 'c'), '--car', join(tmp, 'missing.car')], /missing\.car: cannot read the CAR: ENOENT/]
    ]
    for (const [args, pattern] of cases) {
      const r = blyan(...args)
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`)
      assertCleanError(r, pattern)
    }
    const garbageStore = join(tmp, 'garbage-store')
    spawnSync('mkdir', ['-p', garbageStore])
    writeFileSync(join(garbageStore, 'chain.sqlite'), 'this is not a database'.repeat(100))
    for (const command of ['verify', 'start']) {
      const r = blyan(command, '--data', garbageStore, ...(command === 'start' ? ['--port', '0'] : []))
      assert.equal(r.code, 1, `${command}: the node refuses a damaged store`)
      assertCleanError(r, /store damaged at .*chain\.sqlite/)
    }
  })

  test('truncated, oversized and garbage model files are refused with the file and byte offset', (t) => {
    const model = sharedData('stories260K.bin')
    if (model === null) return t.skip(SHARED_DATA_MISSING)
    const cases: [string, Uint8Array, RegExp][] = [
      ['truncated.bin', model.subarray(0, 100_000), /truncated\.bin: .*truncated at byte \d+/],
      ['oversized.bin', new Uint8Array([...model, 1, 2, 3, 4]), /oversized\.bin: .*(trailing|extra|more than)/i],
      ['garbage.bin', new Uint8Array(4096).fill(0xab), /garbage\.bin/],
      ['empty.bin', new Uint8Array(0), /empty\.bin/]
    ]
    for (const [name, bytes, pattern] of cases) {
      const path = join(tmp, name)
      writeFileSync(path, bytes)
      const r = blyan('init', '--data', join(tmp, `dn-${name}`), '--model', path)
      assert.equal(r.code, 1, `${name}: ${r.err}`)
      assertCleanError(r, pattern)
    }
  })

  test('truncated and garbage CARs are refused by import-car with a one-line reason', async () => {
    const d = await Devnet.standard()
    const cars: Uint8Array[] = []
    for (const built of d.built.values()) cars.push(await submissionCar(built))
    const good = cars[0] as Uint8Array
    const cases: [string, Uint8Array][] = [
      ['garbage.car', new Uint8Array(2048).fill(7)],
      ['truncated.car', good.subarray(0, good.length - 40)],
      ['empty.car', new Uint8Array(0)]
    ]
    for (const [name, bytes] of cases) {
      const path = join(tmp, name)
      writeFileSync(path, bytes)
      const r = blyan('import-car', '--data', join(tmp, `import-${name}`), '--car', path)
      assert.equal(r.code, 1, `${name}: ${r.out}${r.err}`)
      assertCleanError(r, /E_CAR|rejected/)
    }
  })

  test('main() resolves to exit codes without exiting the process', async () => {
    const err = console.error
    console.error = () => undefined
    try {
      assert.equal(await main(['verify', '--data', join(tmp, 'none')]), 1)
      assert.equal(await main(['nope']), 2)
    } finally {
      console.error = err
    }
  })
})

describe('job settings (node policy, <data>/jobs.json)', () => {
  test('checkJobSettings keeps sound settings and names the bad field', () => {
    const good = { steps: 60, batchSize: 8, learningRate: 1e-3, shardSequences: 512 }
    assert.deepEqual(checkJobSettings(good, 'jobs.json'), good)
    assert.throws(() => checkJobSettings({ ...good, steps: 0 }, 'jobs.json'), /jobs\.json: steps must be an integer/)
    assert.throws(() => checkJobSettings({ ...good, learningRate: 'fast' }, 'jobs.json'), /jobs\.json: learningRate/)
    assert.throws(() => checkJobSettings(null, 'jobs.json'), /jobs\.json: expected an object/)
  })
})

describe('npm start', () => {
  test('a BLYAN_MODEL that does not exist is named, and nothing is created', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'relay', 'start.ts')], {
      encoding: 'utf8', timeout: 120_000,
      env: { ...process.env, BLYAN_DATA: join(tmp, 'no-model'), BLYAN_MODEL: join(tmp, 'nowhere.bin'), PORT: '0' }
    })
    assert.equal(r.status, 1)
    assert.match(r.stderr, /BLYAN_MODEL=.*nowhere\.bin: no such file or directory/)
    assert.ok(!existsSync(join(tmp, 'no-model', 'chain.sqlite')))
  })

  test('first run with no model configured creates the devnet from genesis/ and serves site, API and gateway', async () => {
    const data = join(tmp, 'npm-start')
    const env: NodeJS.ProcessEnv = { ...process.env, BLYAN_DATA: data, PORT: '0' }
    delete env['BLYAN_MODEL']
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'relay', 'start.ts')], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = ''
        const timer = setTimeout(() => reject(new Error(`no URL after 120 s:\n${out}`)), 120_000)
        const onData = (chunk: Buffer): void => {
          out += chunk.toString()
          const m = /Blyan node at (http:\/\/\S+)/.exec(out)
          if (m !== null) {
            clearTimeout(timer)
            resolve(m[1] as string)
          }
        }
        child.stdout.on('data', onData)
        child.stderr.on('data', onData)
        child.once('exit', (code) => reject(new Error(`exited ${code}:\n${out}`)))
      })
      const status = (await (await fetch(`${url}api/status`)).json()) as { heads: Record<string, { height: number } | null>; paramIndex: { entries: Record<string, string> } }
      assert.equal(Object.keys(status.paramIndex.entries).length, 1 + 4 * (1 + 8), 'the genesis MoE: embedding, 4 routers, 4 x 8 experts')
      assert.equal(status.heads['D']?.height, 3, 'the generated training and validation pools and their approvals are in chain D')
      const site = await fetch(url)
      assert.equal(site.status, 200)
      assert.equal(site.headers.get('cross-origin-embedder-policy'), 'require-corp')
      const genesis = await fetch(`${url}ipfs/bafkqaaa?format=raw`)
      assert.equal(genesis.status, 200)
    } finally {
      child.kill('SIGTERM')
      await new Promise((resolve) => child.once('exit', resolve))
    }
  })
})
