/**
 * The three backends agree, on the real model served from a real devnet:
 * - stories260K imported with --dtype f32, 4 experts per layer, top_k = 4: greedy 64 tokens from BOS
 *   are identical on cpu, webgpu (Node: Dawn) and ort (wasm), in Node and in headless Chromium
 *   (webgpu, ort-wasm, ort-webgpu), and decode to the reference text;
 * - per-token logits agree within 1e-3 max absolute difference;
 * - with int8 weights, all backends agree with each other, and the test states where int8 first
 *   departs from f32.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { Sampler } from '../../src/model/sampler.ts'
import { main } from '../../relay/cli.ts'
import { openExistingStore } from '../../relay/devnet.ts'
import { serve } from '../../relay/serve.ts'
import { openRun, type BackendName } from '../../relay/node/run.ts'
import { nodeGpu } from '../../src/gpu/node.ts'
import { CHROMIUM_MISSING, buildPage, hasChromium, launchChromium, newPage } from '../fixtures/browser.ts'
import { SHARED_DATA_MISSING, sharedData, sharedPath } from '../fixtures/shared-data.ts'

const TOKENS = 64
const REFERENCE_TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.'
const tmp = mkdtempSync(join(tmpdir(), 'blyan-backends-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

async function quiet<T>(run: () => Promise<T>): Promise<T> {
  const log = console.log
  console.log = () => undefined
  try {
    return await run()
  } finally {
    console.log = log
  }
}

/** A stories260K devnet with `dtype` weights, 4 experts per layer, top_k 4. */
const devnets = new Map<string, Promise<string>>()
function devnet(dtype: 'f32' | 'int8'): Promise<string> {
  let dir = devnets.get(dtype)
  if (dir === undefined) {
    dir = (async () => {
      const d = join(tmp, dtype)
      const code = await quiet(() => main(['init', '--data', d, '--model', sharedPath('stories260K.bin'), '--tokenizer', sharedPath('tok512.bin'), '--experts', '4', '--dtype', dtype]))
      assert.equal(code, 0)
      return d
    })()
    devnets.set(dtype, dir)
  }
  return dir
}

interface Run {
  readonly tokens: number[]
  readonly logits: Float32Array[]
  readonly text: string
}

async function runNode(dir: string, backend: BackendName): Promise<Run> {
  const store = openExistingStore(dir)
  try {
    const run = await openRun(store, backend)
    const logits: Float32Array[] = []
    const g = await run.engine.generate([1], { maxTokens: TOKENS, sampler: new Sampler(run.model.architecture.vocab_size), onLogits: (l) => void logits.push(l.slice()) })
    run.engine.destroy()
    return { tokens: g.tokens, logits, text: run.tokenizer.decode([1, ...g.tokens]) }
  } finally {
    store.close()
  }
}

function maxAbsDiff(a: readonly ArrayLike<number>[], b: readonly ArrayLike<number>[]): number {
  let worst = 0
  for (let t = 0; t < Math.min(a.length, b.length); t++) {
    const x = a[t] as ArrayLike<number>
    const y = b[t] as ArrayLike<number>
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs((x[i] as number) - (y[i] as number)))
  }
  return worst
}

function firstDifference(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}

const cpuRuns = new Map<string, Promise<Run>>()
function cpu(dtype: 'f32' | 'int8'): Promise<Run> {
  let r = cpuRuns.get(dtype)
  if (r === undefined) {
    r = devnet(dtype).then((dir) => runNode(dir, 'cpu'))
    cpuRuns.set(dtype, r)
  }
  return r
}

describe('backends in Node agree on stories260K', () => {
  test('f32: cpu gives the reference text', async (t) => {
    if (sharedData('stories260K.bin') === null) return t.skip(SHARED_DATA_MISSING)
    const r = await cpu('f32')
    assert.equal(r.tokens.length, TOKENS)
    assert.ok(r.text.startsWith(REFERENCE_TEXT), r.text)
  })

  for (const backend of ['ort', 'webgpu'] as const) {
    test(`f32 and int8: ${backend} gives cpu's tokens, logits within 1e-3`, async (t) => {
      if (sharedData('stories260K.bin') === null) return t.skip(SHARED_DATA_MISSING)
      if (backend === 'webgpu' && (await nodeGpu()) === null) return t.skip('no WebGPU adapter in Node (Dawn needs libvulkan1 and an ICD)')
      for (const dtype of ['f32', 'int8'] as const) {
        const reference = await cpu(dtype)
        const r = await runNode(await devnet(dtype), backend)
        assert.deepEqual(r.tokens, reference.tokens, `${backend} ${dtype}: first difference at ${firstDifference(r.tokens, reference.tokens)}`)
        const diff = maxAbsDiff(r.logits, reference.logits)
        console.log(`# ${backend} vs cpu, ${dtype}: ${TOKENS} tokens identical, max |logit difference| ${diff.toExponential(2)} (allowed 1e-3)`)
        assert.ok(diff <= 1e-3, `${backend} ${dtype}: ${diff}`)
      }
    })
  }

  test('int8 against f32: where the quantized model first departs', async (t) => {
    if (sharedData('stories260K.bin') === null) return t.skip(SHARED_DATA_MISSING)
    const [f32, int8] = [await cpu('f32'), await cpu('int8')]
    const at = firstDifference(f32.tokens, int8.tokens)
    console.log(`# int8 vs f32 (cpu, greedy ${TOKENS} tokens): ${at < 0 ? 'identical' : `first departs at generated token ${at} (${f32.tokens[at]} vs ${int8.tokens[at]})`}`)
    assert.ok(at < 0 || at >= 10, 'int8 keeps at least the first sentence')
  })
})

describe('backends in headless Chromium agree with cpu', () => {
  for (const dtype of ['f32', 'int8'] as const) {
    test(`${dtype}: webgpu, ort-wasm and ort-webgpu in the page give cpu's tokens, logits within 1e-3`, async (t) => {
      if (sharedData('stories260K.bin') === null) return t.skip(SHARED_DATA_MISSING)
      if (!hasChromium()) return t.skip(CHROMIUM_MISSING)
      const reference = await cpu(dtype)
      const site = await buildPage('harness')
      const served = await serve({ dataDir: await devnet(dtype), port: 0, host: '127.0.0.1', siteRoot: site.dir, log: () => undefined })
      const browser = await launchChromium()
      try {
        const page = await newPage(browser)
        await page.goto(served.url)
        await page.waitForFunction(() => window.blyan?.ready === true)
        // ORT's WebGPU EP on SwiftShader is slow (a readback per session run): the int8 run is shorter.
        for (const [backend, tokens] of [['webgpu', TOKENS], ['ort-wasm', TOKENS], ['ort-webgpu', dtype === 'f32' ? TOKENS : 16]] as const) {
          const r = await page.evaluate(([b, n]) => window.blyan.generate({ backend: b, maxTokens: n, keepLogits: true }), [backend, tokens] as const)
          assert.deepEqual(r.tokens, reference.tokens.slice(0, tokens), `${backend} (${r.info}): first difference at ${firstDifference(r.tokens, reference.tokens)}`)
          const diff = maxAbsDiff(r.logits, reference.logits.slice(0, tokens))
          console.log(`# Chromium ${backend} (${r.info}) vs cpu, ${dtype}: ${tokens} tokens identical, max |logit difference| ${diff.toExponential(2)} (allowed 1e-3), ${r.seconds.toFixed(1)} s`)
          assert.ok(diff <= 1e-3, `${backend}: ${diff}`)
        }
        // warmUp compiles every pipeline the model runs, prompt (prefill) and decode: the run adds none.
        const w = await page.evaluate((int8) => window.blyan.generate({ backend: 'webgpu', maxTokens: 3, prompt: [1, 400, 401, 402], warmUp: { int8 } }), dtype === 'int8')
        assert.ok(w.pipelines !== null && w.pipelines.warm > 0, 'warmUp compiled pipelines')
        assert.equal(w.pipelines.run, w.pipelines.warm, `after warmUp, loading and running the ${dtype} model compiled ${w.pipelines.run - w.pipelines.warm} more pipeline(s)`)
      } finally {
        await browser.close()
        await served.close()
        site.cleanup()
      }
    })
  }
})
