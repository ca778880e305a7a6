/**
 * Decode tokens/s per backend (cpu, webgpu, ort-wasm, ort-webgpu) on the same random-weight int8 MoE
 * (bench/synthetic.ts) in the same headless Chromium page (test/browser/bench/main.ts `decode`),
 * weights handed straight to `Backend.loadShared` / `loadExpert` (every expert resident, no tile
 * fetching), greedy decoding from one token after a short warm-up. The baseline is the CPU backend
 * (the llama2.c-style reference in JS) measured in the same run: each backend's tokens/s is printed
 * as a ratio to it. Greedy ids are compared with the CPU backend's (same model, so they should agree
 * unless two logits nearly tie).
 *
 * Bounded in time: a backend whose warm-up shows 32 tokens would take more than BUDGET_S seconds runs
 * fewer (at least 4), and the line says how many.
 */
import type { Architecture } from '../src/chain/meta.ts'
import type { BenchBackend, DecodeReport } from '../test/browser/bench/main.ts'
import { openBenchPage } from './browser.ts'
import { BASE, describeArch } from './synthetic.ts'

const ARCH: Architecture = Object.freeze({ ...BASE, dim: 512, n_layers: 4, n_heads: 8, n_kv_heads: 4, head_dim: 64, expert_hidden_dim: 1408, vocab_size: 32000, max_seq_len: 256 })
const BACKENDS: readonly BenchBackend[] = ['cpu', 'webgpu', 'ort-wasm', 'ort-webgpu']
const TOKENS = 32
const WARMUP = 4
const BUDGET_S = 20

function firstDifference(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i
  return -1
}

export async function run(): Promise<void> {
  const b = await openBenchPage()
  if (b === null) return
  try {
    const a = await b.page.evaluate(() => window.blyanBench.adapter())
    console.log(`adapter: ${a.vendor} ${a.architecture} ${a.description} (${a.tuning} tuning), ${a.cores} cores`)
    console.log(`model: ${describeArch(ARCH)}, random weights, all ${ARCH.n_layers * ARCH.n_experts} experts resident; greedy ${TOKENS} tokens from token 1 after ${WARMUP} warm-up tokens (fewer when ${TOKENS} would take over ${BUDGET_S} s)`)
    let cpu: DecodeReport | null = null
    for (const backend of BACKENDS) {
      let r: DecodeReport
      try {
        r = await b.page.evaluate((s) => window.blyanBench.decode(s), { backend, arch: ARCH, tokens: TOKENS, warmup: WARMUP, budgetSeconds: BUDGET_S, first: 1 })
      } catch (e) {
        console.log(`${backend}: failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`)
        continue
      }
      const tps = r.tokens / r.seconds
      if (backend === 'cpu') cpu = r
      const ratio = cpu === null ? '' : backend === 'cpu' ? ' (baseline)' : `, ${(tps / (cpu.tokens / cpu.seconds)).toFixed(2)}x cpu`
      const diff = cpu === null || backend === 'cpu' ? -2 : firstDifference(r.ids, cpu.ids)
      const same = diff === -2 ? '' : diff < 0 ? `, greedy ids = cpu's over ${Math.min(r.tokens, cpu?.tokens ?? 0)}` : `, greedy ids depart from cpu's at token ${diff}`
      const short = r.tokens < TOKENS ? ` (only ${r.tokens} tokens: ${TOKENS} would exceed ${BUDGET_S} s)` : ''
      console.log(`${backend} [${r.info}]: ${tps.toFixed(2)} tokens/s, ${((r.seconds / r.tokens) * 1000).toFixed(1)} ms/token over ${r.tokens} tokens${short}${ratio}${same}; load ${r.loadSeconds.toFixed(1)} s`)
    }
  } finally {
    await b.close()
  }
}
