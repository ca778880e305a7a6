/**
 * Mutation fuzzer: at least 20,000 mutated TensorBlocks and 20,000 mutated payloads / payload
 * indexes per run (times BLYAN_FUZZ_SCALE). Each input must decode (and re-encode cleanly) or be
 * refused with a RuleError; any other exception, a case slower than 2 s, or a hang fails with the
 * seed and the input in hex. Replay with BLYAN_FUZZ_SEED=<seed>.
 *
 * Cases run in a worker so a hang can be detected and the stuck input rebuilt from (seed, i).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Worker } from 'node:worker_threads'
import { buildCorpus, makeCase } from './fixtures/fuzz-cases.ts'
import { hex } from './fixtures/tensors.ts'

const scale = Number(process.env['BLYAN_FUZZ_SCALE'] ?? '1')
const seedEnv = process.env['BLYAN_FUZZ_SEED']
const seed = seedEnv === undefined ? (Math.random() * 2 ** 32) >>> 0 : Number(seedEnv) >>> 0
const tblockCount = Math.ceil(20_000 * scale)
const total = tblockCount + Math.ceil(20_000 * scale)
const HANG_MS = 10_000

interface Report {
  outcomes: Record<string, number>
  failures: { i: number; kind: string; mutation: string; error: string }[]
  slowest: { i: number; ms: number }
}

/** Start the worker through tsx, whose loader a worker does not inherit from `node --import tsx`. */
function startWorker(progress: Int32Array): Worker {
  const tsx = import.meta.resolve('tsx/esm/api')
  const entry = new URL('./fixtures/fuzz-worker.ts', import.meta.url).href
  const src = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}) })`
  return new Worker(src, { eval: true, workerData: { seed, tblockCount, total, progress } })
}

function describeCase(i: number): string {
  const where = `seed ${seed} (BLYAN_FUZZ_SEED=${seed}), case ${i}`
  try {
    const c = makeCase(seed, i, buildCorpus(), tblockCount)
    return `${where}, ${c.kind}, mutation "${c.mutation}"\ninput: ${hex(c.bytes)}`
  } catch (e) {
    return `${where} (the case itself could not be rebuilt: ${e instanceof Error ? e.stack : String(e)})`
  }
}

test(`fuzz: ${tblockCount} TensorBlocks + ${total - tblockCount} payloads/indexes, seed ${seed}`, { timeout: 600_000 }, async () => {
  console.log(`fuzz seed ${seed} (replay: BLYAN_FUZZ_SEED=${seed}), scale ${scale}`)
  const progress = new Int32Array(new SharedArrayBuffer(4))
  const worker = startWorker(progress)
  let last = -1
  let lastChange = Date.now()
  const report = await new Promise<Report>((resolve, reject) => {
    const watchdog = setInterval(() => {
      const now = Atomics.load(progress, 0)
      if (now !== last) {
        last = now
        lastChange = Date.now()
      } else if (Date.now() - lastChange > HANG_MS) {
        clearInterval(watchdog)
        void worker.terminate()
        reject(new Error(`fuzz case hung for ${HANG_MS} ms: ${describeCase(now)}`))
      }
    }, 250)
    worker.once('message', (m: Report) => {
      clearInterval(watchdog)
      void worker.terminate()
      resolve(m)
    })
    worker.once('error', (e) => {
      clearInterval(watchdog)
      reject(new Error(`fuzz worker crashed near case ${Atomics.load(progress, 0)}: ${e.stack ?? e}\n${describeCase(Atomics.load(progress, 0))}`))
    })
  })
  const summary = Object.entries(report.outcomes)
    .sort()
    .map(([k, n]) => `${k}=${n}`)
    .join(' ')
  console.log(`fuzz outcomes: ${summary}; slowest case ${report.slowest.i}: ${report.slowest.ms.toFixed(1)} ms`)
  if (report.failures.length > 0) {
    const details = report.failures.map((f) => `${f.error}\n${describeCase(f.i)}`).join('\n\n')
    assert.fail(`${report.failures.length}+ fuzz inputs escaped as non-RuleError failures:\n${details}`)
  }
  assert.ok(report.slowest.ms < 2000, `slow case: ${describeCase(report.slowest.i)}`)
  const count = (prefix: string) => Object.entries(report.outcomes).filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0)
  assert.equal(count('tblock:'), tblockCount)
  assert.equal(count('payload:') + count('index:'), total - tblockCount)
  // The fuzzer must reach both sides: some mutants still decode, most are refused.
  for (const kind of ['tblock', 'payload', 'index']) {
    assert.ok((report.outcomes[`${kind}:ok`] ?? 0) > 0, `no ${kind} mutant decoded`)
    assert.ok(count(`${kind}:E_`) > 0, `no ${kind} mutant was refused`)
  }
})
