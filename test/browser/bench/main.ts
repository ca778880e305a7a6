/**
 * Bench page (not part of the site), driven by bench/gemv.bench.ts and bench/decode.bench.ts
 * through `window.blyanBench`:
 *
 * - `gemv(spec)`: int8 GEMV (tokens = 1) or GEMM (tokens > 1) on random weights with per-row
 *   scales, three ways, in interleaved rounds: our matvec_int8 / matmul (INT8) kernels through
 *   src/gpu (the backend's pipelines, tuning and upload), many dispatches in one command buffer;
 *   ONNX Runtime Web's WebGPU EP (`onnxruntime-web/webgpu`, as src/engine/ort-runtime.ts loads it)
 *   on the graph our ORT backend builds for a matrix, DequantizeLinear (axis 0) -> Gemm(transB=1),
 *   input and output left on ORT's GPU device; and a copy kernel moving the weight bytes (the
 *   bandwidth proxy). Outputs are compared (ours vs ORT, both vs a float64 reference on a few rows).
 * - `decode(spec)`: greedy decoding on a random-weight int8 MoE (bench/synthetic.ts) on one backend
 *   (cpu, webgpu, ort-wasm, ort-webgpu), all experts resident, weights from memory.
 *
 * - `verifyPool(spec)`: SHA-256 of 256 KiB tiles through the site's verify pool (src/workers:
 *   `workers` Web Workers, WebCrypto in each) against one thread hashing with WebCrypto.
 *
 * Everything is timed here, with `performance.now()`; the Node side only prints.
 */
import type { Architecture } from '../../../src/chain/meta.ts'
import { CpuBackend } from '../../../src/engine/cpu.ts'
import type { Backend, BlockTensors } from '../../../src/engine/interface.ts'
import { OnnxGraph } from '../../../src/engine/ort-onnx.ts'
import { loadOrt, type Ort, type OrtSession, type OrtTensor } from '../../../src/engine/ort-runtime.ts'
import { OrtBackend } from '../../../src/engine/ort.ts'
import { WebGpuBackend } from '../../../src/engine/webgpu.ts'
import { GpuContext, gpuFeatures, record, type Dispatch } from '../../../src/gpu/context.ts'
import { requestModelDevice } from '../../../src/gpu/device.ts'
import { matmul } from '../../../src/gpu/kernels/matmul.ts'
import { matvec } from '../../../src/gpu/kernels/matvec.ts'
import { MAX_WORKGROUPS_PER_DIM, tuningFor } from '../../../src/gpu/tuning.ts'
import { hostMatrix, type GpuMatrix } from '../../../src/gpu/upload.ts'
import { canonicalTBlockHeader } from '../../../src/tensor/tblock.ts'
import type { TensorView } from '../../../src/tensor/tensorblock.ts'
import { greedy, load, tensorsFor } from '../../../bench/synthetic.ts'
import { TILE_SIZE } from '../../../src/tensor/tiles.ts'
import { workerPool } from '../../../src/workers/verify-pool.ts'

// ---------------------------------------------------------------------------------------------
// Our device

interface OurGpu {
  readonly adapter: GPUAdapter
  readonly device: GPUDevice
  readonly ctx: GpuContext
}

let ourGpu: Promise<OurGpu> | null = null

/** Our device, with the adapter's largest storage binding and buffer sizes (the bench's big matrices need them). */
function gpu(): Promise<OurGpu> {
  ourGpu ??= (async () => {
    const adapter = await navigator.gpu?.requestAdapter()
    if (adapter === null || adapter === undefined) throw new Error('no WebGPU adapter')
    const device = await adapter.requestDevice({
      label: 'bench',
      requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize }
    })
    const ctx = new GpuContext(device, gpuFeatures(navigator.gpu.wgslLanguageFeatures, device), tuningFor(adapter.info))
    return { adapter, device, ctx }
  })()
  return ourGpu
}

export interface AdapterReport {
  readonly vendor: string
  readonly architecture: string
  readonly description: string
  readonly tuning: string
  readonly packed4x8: boolean
  readonly maxStorageBufferBindingSize: number
  readonly maxBufferSize: number
  readonly cores: number
}

async function adapter(): Promise<AdapterReport> {
  const { adapter: a, device, ctx } = await gpu()
  return {
    vendor: a.info.vendor, architecture: a.info.architecture, description: a.info.description, tuning: ctx.tuning.name,
    packed4x8: ctx.features.packed4x8,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize, maxBufferSize: device.limits.maxBufferSize,
    cores: navigator.hardwareConcurrency
  }
}

// ---------------------------------------------------------------------------------------------
// GEMV / GEMM

/** The bandwidth proxy: dst = src, 16 bytes per load, grid-stride so the workgroup count is bounded. */
const COPY_WGSL = `
override WG: u32 = 64u;
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = arrayLength(&src);
  let threads = nwg.x * WG;
  for (var i = gid.x; i < n; i += threads) {
    dst[i] = src[i];
  }
}
`

export interface GemvSpec {
  readonly rows: number
  readonly cols: number
  /** 1: GEMV (matvec_int8); more: GEMM (matmul (INT8)) over that many tokens. */
  readonly tokens: number
  readonly rounds: number
  /** Seconds each timed block aims at (dispatches per command buffer, ORT runs per block follow). */
  readonly targetSeconds: number
  /** Most dispatches in one command buffer / ORT runs in one block. */
  readonly maxReps: number
  /** Vec4 words each copy thread moves at least (bounds the copy kernel's workgroup count). */
  readonly copyItems: number
}

export interface GemvReport {
  readonly rows: number
  readonly cols: number
  readonly tokens: number
  /** Bytes of int8 weights (rows x stride x 4, what the kernels read and the copy moves). */
  readonly weightBytes: number
  readonly reps: { readonly ours: number; readonly copy: number; readonly ort: number }
  /** Seconds per dispatch (batched), per round. */
  readonly ours: number[]
  /** Seconds of one dispatch submitted alone (submit to onSubmittedWorkDone), per round. */
  readonly oursSingle: number[]
  readonly copy: number[]
  /** Seconds per session run, per round (empty when ORT could not run the shape). */
  readonly ort: number[]
  readonly ortError: string | null
  /** Whether ORT wrote into our preallocated GPU output, or allocated one per run. */
  readonly ortOutput: 'preallocated' | 'allocated per run' | null
  /** max |ours - ORT| over the whole output, max |ours - ref| and |ORT - ref| on the checked rows, max |ref|. */
  readonly diff: { readonly oursOrt: number; readonly oursRef: number; readonly ortRef: number; readonly refMax: number; readonly checkedRows: number }
  readonly ortLimits: { readonly maxStorageBufferBindingSize: number; readonly maxBufferSize: number } | null
  readonly setupSeconds: number
}

/** xorshift32 in [-1, 1). */
function random(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 2 ** 31 - 1
  }
}

async function readBuffer(device: GPUDevice, buffer: GPUBuffer, bytes: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
  const enc = device.createCommandEncoder()
  enc.copyBufferToBuffer(buffer, 0, staging, 0, bytes)
  device.queue.submit([enc.finish()])
  await staging.mapAsync(GPUMapMode.READ)
  const out = new Float32Array(staging.getMappedRange().slice(0))
  staging.unmap()
  staging.destroy()
  return out
}

/** Seconds per dispatch of `reps` dispatches recorded in one compute pass, encoding to onSubmittedWorkDone. */
async function timeBatch(device: GPUDevice, reps: number, one: (pass: GPUComputePassEncoder) => void): Promise<number> {
  const t = performance.now()
  const enc = device.createCommandEncoder()
  const pass = enc.beginComputePass()
  for (let i = 0; i < reps; i++) one(pass)
  pass.end()
  device.queue.submit([enc.finish()])
  await device.queue.onSubmittedWorkDone()
  return (performance.now() - t) / 1000 / reps
}

const repsFor = (seconds: number, spec: GemvSpec): number => Math.max(1, Math.min(spec.maxReps, Math.round(spec.targetSeconds / Math.max(seconds, 1e-7))))

/** ORT's session for y [T, rows] = x [T, cols] · dequant(Q, scale)ᵀ, its device and GPU-resident input and output. */
interface OrtGemv {
  readonly ort: Ort
  readonly session: OrtSession
  readonly device: GPUDevice
  readonly feeds: Record<string, OrtTensor>
  /** Preallocated output, or null when ORT allocates it per run (then each result is disposed). */
  fetches: Record<string, OrtTensor> | null
  readonly buffers: GPUBuffer[]
  readonly outBytes: number
  last: OrtTensor | null
}

async function ortGemv(q: Int8Array, scales: Float32Array, x: Float32Array, rows: number, cols: number, tokens: number): Promise<OrtGemv> {
  const ort = await loadOrt({ provider: 'webgpu' })
  // The graph src/engine/ort-graphs.ts `linear()` builds for an int8 matrix.
  const g = new OnnxGraph('gemv')
  const xIn = g.input('x', [tokens, cols])
  const w = g.node('DequantizeLinear', [g.i8('w_q', q, [rows, cols]), g.f32('w_scale', scales, [rows]), g.i8('w_zero', new Int8Array(rows), [rows])], { axis: 0 })
  g.output(g.node('Gemm', [xIn, w], { transB: 1 }, 'y'), [tokens, rows])
  const session = await ort.InferenceSession.create(g.encode(), { executionProviders: ['webgpu'], graphOptimizationLevel: 'all', preferredOutputLocation: 'gpu-buffer' })
  const device = (await ort.env.webgpu.device) as GPUDevice
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST
  const xb = device.createBuffer({ label: 'ort.x', size: x.byteLength, usage })
  device.queue.writeBuffer(xb, 0, x)
  const outBytes = tokens * rows * 4
  const yb = device.createBuffer({ label: 'ort.y', size: outBytes, usage })
  return {
    ort, session, device, outBytes, buffers: [xb, yb], last: null,
    feeds: { x: ort.Tensor.fromGpuBuffer(xb, { dataType: 'float32', dims: [tokens, cols] }) },
    fetches: { y: ort.Tensor.fromGpuBuffer(yb, { dataType: 'float32', dims: [tokens, rows] }) }
  }
}

/** One session run (output stays on the GPU). */
async function ortRun(o: OrtGemv): Promise<void> {
  if (o.fetches !== null) {
    await o.session.run(o.feeds, o.fetches)
    return
  }
  const r = await o.session.run(o.feeds)
  o.last?.dispose()
  o.last = r['y'] as OrtTensor
}

async function ortOutput(o: OrtGemv): Promise<Float32Array> {
  if (o.fetches !== null) return readBuffer(o.device, o.buffers[1] as GPUBuffer, o.outBytes)
  return (await (o.last as OrtTensor).getData()) as Float32Array
}

async function gemv(spec: GemvSpec): Promise<GemvReport> {
  const started = performance.now()
  const { device, ctx } = await gpu()
  const { rows, cols, tokens: T } = spec
  const rand = random(rows * 31 + cols * 7 + T)
  // int8 weights in [-127, 127], per-row scales around 1/(127 sqrt(cols)) so outputs are O(1)
  const q = new Int8Array(rows * cols)
  for (let i = 0; i < q.length; i++) q[i] = Math.round(rand() * 127)
  const scales = new Float32Array(rows)
  for (let r = 0; r < rows; r++) scales[r] = (1 + 0.5 * rand()) / (127 * Math.sqrt(cols))
  const x = new Float32Array(T * cols)
  for (let i = 0; i < x.length; i++) x[i] = rand()

  // ours: the backend's upload (hostMatrix) and kernel modules
  const view: TensorView = { header: canonicalTBlockHeader('int8', rows, cols), scales, data: q }
  const h = hostMatrix(view)
  const w: GpuMatrix = { ...h, weights: ctx.upload('bench.w', h.data), scales: ctx.upload('bench.s', h.scales as Float32Array) }
  const xBuf = ctx.upload('bench.x', x)
  const yBuf = ctx.storage('bench.y', T * rows * 4)
  const step = ctx.uniform('bench.step', Uint32Array.of(0, T, 0, 0))
  const d: Dispatch = T === 1 ? await matvec(ctx, 'bench.gemv', w, xBuf, yBuf) : await matmul(ctx, 'bench.gemm', w, xBuf, yBuf, step)
  const ours = (pass: GPUComputePassEncoder): void => record(pass, d, T)

  // the copy kernel over the same weight buffer
  const weightBytes = h.data.byteLength
  const dst = ctx.storage('bench.copy', weightBytes)
  const copyWg = ctx.tuning.elementwiseWg
  const copyPipeline = await device.createComputePipelineAsync({
    label: 'bench.copy', layout: 'auto',
    compute: { module: device.createShaderModule({ label: 'bench.copy', code: COPY_WGSL }), entryPoint: 'main', constants: { WG: copyWg } }
  })
  const copyGroup = ctx.bindGroup('bench.copy', copyPipeline, [[0, w.weights], [1, dst]])
  const copyGroups = Math.min(MAX_WORKGROUPS_PER_DIM, Math.ceil(weightBytes / 16 / (copyWg * spec.copyItems)))
  const copy = (pass: GPUComputePassEncoder): void => {
    pass.setPipeline(copyPipeline)
    pass.setBindGroup(0, copyGroup)
    pass.dispatchWorkgroups(copyGroups)
  }

  // ORT on its own device
  let o: OrtGemv | null = null
  let ortError: string | null = null
  try {
    o = await ortGemv(q, scales, x, rows, cols, T)
    try {
      await ortRun(o)
    } catch {
      o.fetches = null // ORT would not write into our preallocated output: let it allocate
      await ortRun(o)
    }
  } catch (e) {
    ortError = e instanceof Error ? e.message : String(e)
  }

  // warm-up (first runs) and calibration of the repetitions: a second run when the first was quick
  const calibrate = async (block: () => Promise<number>): Promise<number> => {
    const first = await block()
    return repsFor(first > 0.05 ? first : await block(), spec)
  }
  const reps = { ours: await calibrate(() => timeBatch(device, 1, ours)), copy: await calibrate(() => timeBatch(device, 1, copy)), ort: 0 }
  const ortBlock = async (n: number): Promise<number> => {
    const oo = o as OrtGemv
    await oo.device.queue.onSubmittedWorkDone()
    const t = performance.now()
    for (let i = 0; i < n; i++) await ortRun(oo)
    await oo.device.queue.onSubmittedWorkDone()
    return (performance.now() - t) / 1000 / n
  }
  if (o !== null) reps.ort = await calibrate(() => ortBlock(1))

  // outputs: ours vs ORT everywhere, both vs a float64 reference on a few rows
  const mine = await readBuffer(device, yBuf, T * rows * 4)
  const theirs = o === null ? null : await ortOutput(o)
  const checkedRows = Math.min(rows, 8)
  let oursOrt = 0
  let oursRef = 0
  let ortRef = 0
  let refMax = 0
  if (theirs !== null) for (let i = 0; i < mine.length; i++) oursOrt = Math.max(oursOrt, Math.abs((mine[i] as number) - (theirs[i] as number)))
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < checkedRows; r++) {
      let s = 0
      for (let c = 0; c < cols; c++) s += (q[r * cols + c] as number) * (x[t * cols + c] as number)
      const ref = s * (scales[r] as number)
      refMax = Math.max(refMax, Math.abs(ref))
      oursRef = Math.max(oursRef, Math.abs((mine[t * rows + r] as number) - ref))
      if (theirs !== null) ortRef = Math.max(ortRef, Math.abs((theirs[t * rows + r] as number) - ref))
    }
  }

  // interleaved rounds
  const report = { ours: [] as number[], oursSingle: [] as number[], copy: [] as number[], ort: [] as number[] }
  for (let r = 0; r < spec.rounds; r++) {
    report.ours.push(await timeBatch(device, reps.ours, ours))
    if (o !== null) report.ort.push(await ortBlock(reps.ort))
    report.copy.push(await timeBatch(device, reps.copy, copy))
    // one dispatch alone; when a command buffer already held one, that round's figure is it
    report.oursSingle.push(reps.ours === 1 ? (report.ours[r] as number) : await timeBatch(device, 1, ours))
  }

  const ortLimits = o === null ? null : { maxStorageBufferBindingSize: o.device.limits.maxStorageBufferBindingSize, maxBufferSize: o.device.limits.maxBufferSize }
  for (const b of [w.weights, w.scales as GPUBuffer, xBuf, yBuf, step, dst]) ctx.release(b)
  if (o !== null) {
    o.last?.dispose()
    await o.session.release()
    for (const b of o.buffers) b.destroy()
  }
  return {
    rows, cols, tokens: T, weightBytes, reps, ...report, ortError, ortLimits,
    ortOutput: o === null ? null : o.fetches === null ? 'allocated per run' : 'preallocated',
    diff: { oursOrt: theirs === null ? NaN : oursOrt, oursRef, ortRef: theirs === null ? NaN : ortRef, refMax, checkedRows },
    setupSeconds: (performance.now() - started) / 1000
  }
}

// ---------------------------------------------------------------------------------------------
// Decode

export type BenchBackend = 'cpu' | 'webgpu' | 'ort-wasm' | 'ort-webgpu'

export interface DecodeSpec {
  readonly backend: BenchBackend
  readonly arch: Architecture
  /** Greedy tokens timed (fewer when the warm-up shows they would take more than budgetSeconds). */
  readonly tokens: number
  readonly warmup: number
  readonly budgetSeconds: number
  /** First token id. */
  readonly first: number
}

export interface DecodeReport {
  readonly backend: BenchBackend
  readonly info: string
  readonly loadSeconds: number
  readonly warmupSeconds: number
  readonly tokens: number
  readonly seconds: number
  readonly ids: number[]
}

const models = new Map<string, Map<string, BlockTensors>>()

async function createBackend(name: BenchBackend, arch: Architecture): Promise<{ backend: Backend; info: string; device: GPUDevice | null }> {
  if (name === 'cpu') return { backend: new CpuBackend(arch), info: 'cpu', device: null }
  if (name === 'ort-wasm' || name === 'ort-webgpu') {
    const provider = name === 'ort-wasm' ? 'wasm' : 'webgpu'
    return { backend: await OrtBackend.create(arch, { provider }), info: `onnxruntime-web ${provider}`, device: null }
  }
  const a = await navigator.gpu?.requestAdapter()
  if (a === null || a === undefined) throw new Error('no WebGPU adapter')
  const maxResidentExperts = arch.n_layers * arch.n_experts
  const device = await requestModelDevice(a, arch, { maxResidentExperts })
  const backend = await WebGpuBackend.create(device, arch, { maxResidentExperts, wgslLanguageFeatures: new Set(navigator.gpu.wgslLanguageFeatures) })
  return { backend, info: `webgpu ${a.info.vendor} ${a.info.architecture} (${tuningFor(a.info).name} tuning)`, device }
}

async function decode(spec: DecodeSpec): Promise<DecodeReport> {
  const key = JSON.stringify(spec.arch)
  let t = models.get(key)
  if (t === undefined) {
    models.clear()
    t = tensorsFor(spec.arch)
    models.set(key, t)
  }
  const started = performance.now()
  const { backend, info, device } = await createBackend(spec.backend, spec.arch)
  try {
    await load(backend, spec.arch, t)
    const loadSeconds = (performance.now() - started) / 1000
    // ORT settles its thread count when the first session starts (threads need cross-origin isolation)
    const threads = spec.backend === 'ort-wasm' ? `, ${(await loadOrt({ provider: 'wasm' })).env.wasm.numThreads ?? '?'} threads, crossOriginIsolated ${String(crossOriginIsolated)}` : ''
    const warm = await greedy(backend, spec.first, spec.warmup)
    const perToken = warm.seconds / Math.max(1, spec.warmup)
    const tokens = Math.max(4, Math.min(spec.tokens, Math.floor(spec.budgetSeconds / perToken)))
    const run = await greedy(backend, spec.first, tokens)
    return { backend: spec.backend, info: info + threads, loadSeconds, warmupSeconds: warm.seconds, tokens, seconds: run.seconds, ids: run.ids }
  } finally {
    backend.destroy()
    device?.destroy()
  }
}

// ---------------------------------------------------------------------------------------------
// Verify pool

export interface VerifyPoolSpec {
  readonly workers: number
  readonly tiles: number
  readonly rounds: number
}

/** Tiles hashed per second through the pool and on this thread alone (best round of each). */
async function verifyPool(spec: VerifyPoolSpec): Promise<{ poolTilesPerSecond: number; singleTilesPerSecond: number; workers: number }> {
  const tiles = Array.from({ length: spec.tiles }, (_, i) => {
    const t = new Uint8Array(TILE_SIZE)
    for (let o = 0; o < t.length; o += 65536) crypto.getRandomValues(t.subarray(o, o + 65536))
    t[0] = i & 0xff
    return t
  })
  const pool = workerPool(spec.workers, () => new Worker(new URL('../../../src/workers/verify.worker.ts', import.meta.url), { type: 'module' }))
  try {
    await Promise.all(Array.from({ length: spec.workers * 2 }, () => pool.sha256(tiles[0] as Uint8Array))) // start the workers
    let poolBest = Infinity
    let singleBest = Infinity
    for (let r = 0; r < spec.rounds; r++) {
      let t = performance.now()
      await Promise.all(tiles.map((tile) => pool.sha256(tile)))
      poolBest = Math.min(poolBest, performance.now() - t)
      t = performance.now()
      for (const tile of tiles) await crypto.subtle.digest('SHA-256', tile)
      singleBest = Math.min(singleBest, performance.now() - t)
    }
    return { poolTilesPerSecond: (spec.tiles * 1000) / poolBest, singleTilesPerSecond: (spec.tiles * 1000) / singleBest, workers: spec.workers }
  } finally {
    pool.destroy()
  }
}

declare global {
  interface Window {
    blyanBench: { adapter: typeof adapter; gemv: typeof gemv; decode: typeof decode; verifyPool: typeof verifyPool; hardwareConcurrency: number; ready: true }
  }
}

window.blyanBench = { adapter, gemv, decode, verifyPool, hardwareConcurrency: navigator.hardwareConcurrency, ready: true }
