/**
 * int8 GEMV / GEMM in headless Chromium, three ways on the same weights, in the same page
 * (test/browser/bench/main.ts `gemv`), interleaved rounds, medians:
 *
 * - ours: matvec_int8 (decode, 1 token) / matmul (INT8) (prefill, 64 tokens) through src/gpu with the
 *   backend's pipelines, tuning profile and upload; many dispatches in one command buffer, timed from
 *   encoding to `queue.onSubmittedWorkDone()`, divided by the dispatch count. "alone" is one dispatch
 *   per submit (submit latency included).
 * - ORT: ONNX Runtime Web's WebGPU EP (`onnxruntime-web/webgpu`, as our ORT backend loads it) on the
 *   graph our ORT backend builds for an int8 matrix, DequantizeLinear(axis 0) -> Gemm(transB=1);
 *   input and output stay on ORT's GPU device (`Tensor.fromGpuBuffer`, `preferredOutputLocation:
 *   'gpu-buffer'`), N runs timed to ORT's device `queue.onSubmittedWorkDone()`.
 * - copy: a WGSL kernel reading the int8 weight buffer as vec4<u32> and writing it to another buffer,
 *   the bandwidth proxy.
 *
 * Baselines and goals (ratios within each round, then the median):
 * - bandwidth fraction = our weight bytes read per second / the copy's bytes moved (read + write)
 *   per second, i.e. t_copy / (2 t_ours); goal >= 0.7. The fraction of the copy's read bandwidth
 *   alone (twice that) is printed beside it.
 * - speed vs ORT = t_ORT / t_ours; goal >= 1.5.
 * Outputs are compared: max |ours - ORT| over the whole output, and both against a float64
 * reference on the first 8 rows, so the comparison is of the same computation.
 *
 * `BENCH_GEMV_SHAPES='[[4096,4096,1]]'` (rows, cols, tokens) runs other shapes.
 */
import type { GemvReport, GemvSpec } from '../test/browser/bench/main.ts'
import { openBenchPage } from './browser.ts'
import { median } from './measure.ts'

/** rows x cols (x tokens): decode GEMVs from a 64-wide toy to Llama-7B's MLP, and a 64-token prefill GEMM (dim 2048 -> 5632). */
const SHAPES: readonly (readonly [rows: number, cols: number, tokens: number])[] = [
  [64, 172, 1], [512, 2048, 1], [2048, 5632, 1], [4096, 4096, 1], [4096, 11008, 1], [5632, 2048, 64]
]

/** Seconds as µs (below 10 ms) or ms. */
const time = (s: number): string => (s < 0.01 ? `${(s * 1e6).toFixed(s < 1e-4 ? 1 : 0)} µs` : `${(s * 1e3).toFixed(1)} ms`)
const gbs = (bytes: number, s: number): string => `${(bytes / s / 1e9).toFixed(2)} GB/s`

function line(r: GemvReport): string {
  const gemm = r.tokens > 1
  const t = median(r.ours)
  const copy = median(r.copy)
  const flops = (s: number): string => (gemm ? `, ${((2 * r.tokens * r.rows * r.cols) / s / 1e9).toFixed(2)} GFLOP/s` : '')
  const name = gemm ? `int8 GEMM ${r.tokens}x${r.cols}->${r.rows}` : `int8 GEMV ${r.rows}x${r.cols}`
  const frac = median(r.ours.map((o, i) => (r.copy[i] as number) / (2 * o)))
  const parts = [
    `${name} (${(r.weightBytes / 1e6).toFixed(2)} MB)`,
    `ours ${time(t)}/dispatch (${r.reps.ours} per command buffer; alone ${time(median(r.oursSingle))}), ${gbs(r.weightBytes, t)}${flops(t)}`,
    `copy ${time(copy)}, ${gbs(r.weightBytes, copy)} read (${gbs(2 * r.weightBytes, copy)} read+write)`,
    // a GEMM reuses each weight for every token: its bound is arithmetic, not bandwidth
    gemm ? `bandwidth fraction n/a (GEMM)` : `bandwidth fraction ${frac.toFixed(2)} of copy read+write (${(2 * frac).toFixed(2)} of copy read; goal >= 0.7)`
  ]
  if (r.ort.length > 0) {
    const speed = median(r.ours.map((o, i) => (r.ort[i] as number) / o))
    parts.splice(2, 0, `ORT ${time(median(r.ort))}/run (${r.reps.ort} per block), ${gbs(r.weightBytes, median(r.ort))}${flops(median(r.ort))}`)
    parts.push(`ours vs ORT ${speed.toFixed(2)}x (goal >= 1.5)`)
    parts.push(`max |ours - ORT| ${r.diff.oursOrt.toExponential(1)}; vs float64 on ${r.diff.checkedRows} rows: ours ${r.diff.oursRef.toExponential(1)}, ORT ${r.diff.ortRef.toExponential(1)} (|y| <= ${r.diff.refMax.toFixed(2)})`)
  } else {
    parts.splice(2, 0, `ORT failed: ${r.ortError ?? 'unknown error'}`)
    parts.push(`ours vs float64 on ${r.diff.checkedRows} rows: ${r.diff.oursRef.toExponential(1)} (|y| <= ${r.diff.refMax.toFixed(2)})`)
  }
  return parts.join(' | ')
}

export async function run(): Promise<void> {
  const b = await openBenchPage()
  if (b === null) return
  try {
    const a = await b.page.evaluate(() => window.blyanBench.adapter())
    const software = a.tuning === 'cpu'
    console.log(`adapter: ${a.vendor} ${a.architecture} ${a.description} (${a.tuning} tuning, unpack4xI8 ${a.packed4x8 ? 'yes' : 'no'}), ${a.cores} cores, max storage binding ${(a.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB`)
    if (software) console.log('software adapter: every "GPU" figure below is CPU work (SwiftShader); read them as relative, not as GPU speed')
    const shapes = process.env['BENCH_GEMV_SHAPES'] === undefined ? SHAPES : (JSON.parse(process.env['BENCH_GEMV_SHAPES']) as typeof SHAPES)
    let printedOrt = false
    for (const [rows, cols, tokens] of shapes) {
      const need = Math.max(rows * Math.ceil(cols / 4) * 4 * 4, tokens * Math.max(rows, cols) * 4) // ORT's dequantized float32 copy is the largest buffer
      if (need > a.maxStorageBufferBindingSize) {
        console.log(`int8 ${rows}x${cols}: skipped, needs a ${need}-byte binding, the adapter allows ${a.maxStorageBufferBindingSize}`)
        continue
      }
      const spec: GemvSpec = { rows, cols, tokens, rounds: 5, targetSeconds: software ? 0.2 : 0.05, maxReps: 1000, copyItems: software ? 8 : 1 }
      const r = await b.page.evaluate((s) => window.blyanBench.gemv(s), spec)
      if (!printedOrt && r.ortLimits !== null) {
        printedOrt = true
        console.log(`ORT WebGPU EP: its own device (max storage binding ${(r.ortLimits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB), output ${r.ortOutput ?? '?'} on the GPU`)
      }
      console.log(line(r))
    }
  } finally {
    await b.close()
  }
}
