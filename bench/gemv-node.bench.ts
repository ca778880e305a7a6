/**
 * int8 GEMV against a copy kernel in Node through Dawn (the `webgpu` package): the same WGSL and
 * tuning as the backend, on whatever adapter Dawn finds (SwiftShader here, a real GPU where there
 * is one). Per shape: our matvec_int8 (the VEC4 variant when the shape allows it, and the scalar
 * one), and a copy kernel moving the weight bytes (read as vec4<u32>, written back), timed the
 * same way: many dispatches in one command buffer, wall time to onSubmittedWorkDone, medians of
 * interleaved rounds. Prints µs per dispatch, GB/s and the fraction of the copy's bandwidth.
 *
 * Runs standalone too (`node --import tsx bench/gemv-node.bench.ts`), which is how it is carried to
 * a lent GPU machine.
 */
import { GpuContext, gpuFeatures, type Dispatch } from '../src/gpu/context.ts'
import { matmul } from '../src/gpu/kernels/matmul.ts'
import { matvec } from '../src/gpu/kernels/matvec.ts'
import { nodeGpu } from '../src/gpu/node.ts'
import { GPU_TUNING, tuningFor } from '../src/gpu/tuning.ts'
import { hostMatrix } from '../src/gpu/upload.ts'
import { encodeTensorBlock, decodeTensorBlock } from '../src/tensor/tensorblock.ts'
import { median } from './measure.ts'

const SHAPES: [number, number][] = JSON.parse(process.env['BENCH_GEMV_SHAPES'] ?? '[[64,172],[512,2048],[2048,5632],[4096,4096],[4096,11008]]') as [number, number][]

const COPY_WGSL = `
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
override WG: u32 = 256u;
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * (nwg.x * WG) + gid.x;
  if (i < arrayLength(&src)) { dst[i] = src[i]; }
}`

/** Seconds per dispatch: `reps` dispatches per command buffer, median of `rounds`. */
async function time(device: GPUDevice, d: { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup; grid: readonly [number, number, number] }, reps: number): Promise<number> {
  const enc = device.createCommandEncoder()
  const pass = enc.beginComputePass()
  for (let i = 0; i < reps; i++) {
    pass.setPipeline(d.pipeline)
    pass.setBindGroup(0, d.bindGroup)
    pass.dispatchWorkgroups(...d.grid)
  }
  pass.end()
  const started = performance.now()
  device.queue.submit([enc.finish()])
  await device.queue.onSubmittedWorkDone()
  return (performance.now() - started) / 1000 / reps
}

export async function run(): Promise<void> {
  const g = await nodeGpu()
  if (g === null) return void console.log('gemv-node: skipped: no WebGPU adapter in Node (Dawn needs libvulkan1 and an ICD)')
  const info = g.adapter.info
  const software = info.architecture === 'swiftshader' || info.isFallbackAdapter
  const limit = g.adapter.limits.maxStorageBufferBindingSize
  const device = await g.adapter.requestDevice({
    requiredFeatures: g.adapter.features.has('subgroups') ? ['subgroups'] : [],
    requiredLimits: { maxStorageBufferBindingSize: limit, maxBufferSize: g.adapter.limits.maxBufferSize }
  })
  const tuning = process.env['BENCH_TUNING'] === 'gpu' ? GPU_TUNING : tuningFor(info)
  const features = gpuFeatures(g.wgslLanguageFeatures, device)
  const ctx = new GpuContext(device, features, tuning)
  // Other (workgroup, threads per row, rows per thread) to compare, e.g. BENCH_MATVEC='[[256,32,1],[128,16,4]]'.
  const sweep: [number, number, number?][] = JSON.parse(process.env['BENCH_MATVEC'] ?? '[]') as [number, number, number?][]
  const sweepCtx = sweep.map(([wg, tpr, rpt = 1]) => new GpuContext(device, features, { ...tuning, name: `${wg}/${tpr}/${rpt}`, matvecWg: wg, matvecThreadsPerRow: tpr, matvecRowsPerThread: rpt }))
  console.log(`gemv-node: adapter ${info.vendor} ${info.architecture} ${info.description ?? ''} (${tuning.name} tuning ${tuning.matvecWg}/${tuning.matvecThreadsPerRow}/${tuning.matvecRowsPerThread}; subgroup size ${features.subgroupSize})`)
  const copy = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: COPY_WGSL }), entryPoint: 'main' } })
  const rounds = 5
  for (const [rows, cols] of SHAPES) {
    const bytes = rows * cols
    const values = new Float32Array(rows * cols)
    let seed = 1
    for (let i = 0; i < values.length; i++) values[i] = ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5)
    const h = hostMatrix(decodeTensorBlock(encodeTensorBlock(values, [rows, cols], 'int8')))
    const w = { ...h, weights: ctx.upload(`w${rows}`, h.data), scales: ctx.upload(`s${rows}`, h.scales as Float32Array) }
    const x = ctx.storage(`x${rows}`, Math.ceil(cols / 4) * 16)
    const y = ctx.storage(`y${rows}`, rows * 4)
    const ours = await matvec(ctx, `gemv${rows}x${cols}`, w, x, y)
    const scalar = await matvec(ctx, `gemv${rows}x${cols}s`, w, x, y, { variant: 'scalar' })
    const others = await Promise.all(sweepCtx.map(async (c) => {
      const wc = { ...h, weights: c.upload(`w${rows}`, h.data), scales: c.upload(`s${rows}`, h.scales as Float32Array) }
      return { name: c.tuning.name, d: await matvec(c, `gemv${rows}x${cols}`, wc, c.storage(`x${rows}`, Math.ceil(cols / 4) * 16), c.storage(`y${rows}`, rows * 4)) }
    }))
    const dst = ctx.storage(`dst${rows}`, h.data.byteLength)
    const vec4s = h.data.byteLength / 16
    const copyGroups = Math.ceil(vec4s / 256)
    const copyGrid: [number, number, number] = copyGroups > 65535 ? [65535, Math.ceil(copyGroups / 65535), 1] : [copyGroups, 1, 1]
    const copyBind = device.createBindGroup({ layout: copy.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: w.weights } }, { binding: 1, resource: { buffer: dst } }] })
    const asRun = (d: Dispatch) => ({ pipeline: d.pipeline, bindGroup: d.bindGroup, grid: d.decode })
    const reps = Math.max(5, Math.min(200, Math.round((software ? 2e7 : 2e10) / bytes)))
    const t = { ours: [] as number[], scalar: [] as number[], copy: [] as number[] }
    const tOthers = others.map(() => [] as number[])
    for (let r = 0; r < rounds; r++) {
      t.copy.push(await time(device, { pipeline: copy, bindGroup: copyBind, grid: copyGrid }, reps))
      t.ours.push(await time(device, asRun(ours), reps))
      t.scalar.push(await time(device, asRun(scalar), reps))
      for (const [i, o2] of others.entries()) (tOthers[i] as number[]).push(await time(device, asRun(o2.d), reps))
    }
    const sweepText = others.map((o2, i) => `${o2.name} ${(median(tOthers[i] as number[]) * 1e6).toFixed(1)} µs`).join(', ')
    const [o, s, c] = [median(t.ours), median(t.scalar), median(t.copy)]
    const gbs = (b: number, sec: number): string => (b / sec / 1e9).toFixed(1)
    console.log(`gemv-node: ${rows}x${cols} int8 (${(bytes / 1e6).toFixed(2)} MB): ours ${(o * 1e6).toFixed(1)} µs ${gbs(bytes, o)} GB/s` +
      ` | scalar variant ${(s * 1e6).toFixed(1)} µs | copy ${(c * 1e6).toFixed(1)} µs ${gbs(2 * h.data.byteLength, c)} GB/s read+write` +
      ` | ours / copy read bandwidth ${((c / o)).toFixed(2)}, of read+write ${(c / (2 * o)).toFixed(2)} | VEC4 speed-up ${(s / o).toFixed(2)}x` +
      (sweepText === '' ? '' : ` | other tunings: ${sweepText}`))
  }
  // Prefill GEMM: tile configurations ([tileT, rowLanes, tileK]) at BENCH_MATMUL_SHAPE (rows, cols, tokens).
  const [mr, mc, mt] = JSON.parse(process.env['BENCH_MATMUL_SHAPE'] ?? '[4096,4096,64]') as [number, number, number]
  const configs: [number, number, number][] = JSON.parse(process.env['BENCH_MATMUL'] ?? `[[${tuning.matmulTileT},${tuning.matmulRowLanes},${tuning.matmulTileK}]]`) as [number, number, number][]
  const mv = new Float32Array(mr * mc).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5)
  const mh = hostMatrix(decodeTensorBlock(encodeTensorBlock(mv, [mr, mc], 'int8')))
  const stepBuf = ctx.uniform('step', new Uint32Array([0, mt, 0, 0]))
  const results: string[] = []
  for (const [tileT, rowLanes, tileK] of configs) {
    const c = new GpuContext(device, features, { ...tuning, matmulTileT: tileT, matmulRowLanes: rowLanes, matmulTileK: tileK })
    const wm = { ...mh, weights: c.upload('mw', mh.data), scales: c.upload('ms', mh.scales as Float32Array) }
    let d: Dispatch
    try {
      d = await matmul(c, 'gemm', wm, c.storage('mx', mt * mc * 4), c.storage('my', mt * mr * 4), stepBuf)
    } catch (e) {
      results.push(`${tileT}x${rowLanes}x${tileK} refused (${e instanceof Error ? e.message.split('.')[0] : String(e)})`)
      continue
    }
    const grid = d.grid(mt)
    const times: number[] = []
    for (let r = 0; r < rounds; r++) times.push(await time(device, { pipeline: d.pipeline, bindGroup: d.bindGroup, grid }, software ? 1 : 50))
    const sec = median(times)
    results.push(`${tileT}x${rowLanes}x${tileK} ${(sec * 1e6).toFixed(1)} µs (${((2 * mr * mc * mt) / sec / 1e12).toFixed(2)} TFLOP/s)`)
  }
  console.log(`gemv-node: int8 GEMM ${mt} tokens x ${mc} -> ${mr}: ${results.join(', ')}`)
  ctx.destroy()
  device.destroy()
}

if (import.meta.url === `file://${process.argv[1]}` || process.env['BENCH_STANDALONE'] === 'gemv-node') await run()
