/**
 * Every workgroup, tile and batch size of the WGSL kernels, in one place (ggml-webgpu keeps its
 * WEBGPU_MUL_MAT_* block the same way). The kernels read them as `override` constants, so a change
 * here needs no shader edit; the pipeline cache keys include them.
 *
 * Two profiles, picked from the adapter (`tuningFor`):
 * - GPU_TUNING for hardware: many threads per output row, reductions in workgroup memory.
 * - CPU_TUNING for software adapters (SwiftShader, which CI and GPU-less browsers run): there every
 *   barrier switches fibers for each 4-lane batch of the workgroup, so a 256-thread matvec
 *   workgroup with a 6-level tree cost 8x more than 64 threads each summing a whole row (measured
 *   on SwiftShader 5: 2048x2048 int8 GEMV 258 ms vs 37 ms).
 * Both are tested on every kernel (test/gpu/kernels.test.ts), and GPU_TUNING passed the whole GPU
 * suite on an NVIDIA H200 (Dawn/Vulkan); speed on hardware is tuned later (bench/kernels.bench.ts).
 *
 * @module
 */

/** WebGPU's default maxComputeWorkgroupsPerDimension: larger 1-D grids are folded into 2-D. */
export const MAX_WORKGROUPS_PER_DIM = 65535

/** matmul_*: rows per thread, the `RPT` const of the WGSL (a register block: fixed there). */
export const MATMUL_ROWS_PER_THREAD = 4

/** matmul_*: tokens per thread, the `TPT` const of the WGSL (the register block's other side). */
export const MATMUL_TOKENS_PER_THREAD = 4

/** attention: largest head_dim the kernel handles (one thread per output element, 256 invocations at most). */
export const ATTENTION_MAX_HEAD_DIM = 256

/**
 * Tokens per prefill pass: the activation buffers hold this many rows; longer prompts run in
 * several passes. Capped by max_seq_len.
 */
export const PREFILL_TOKENS = 64

export interface Tuning {
  readonly name: string
  /** matvec_int8 / matvec_f32 (decode GEMV): threads per workgroup. */
  readonly matvecWg: number
  /** Threads sharing one output row: a power of two dividing matvecWg (1: a thread sums a row, no reduction). */
  readonly matvecThreadsPerRow: number
  /** matvec_int8: rows each thread sums (1..4), so one load of x serves that many weight loads. */
  readonly matvecRowsPerThread: number
  /** moe_gate_up / moe_down: as matvec, per (token, route). */
  readonly moeWg: number
  readonly moeThreadsPerRow: number
  /** matmul_* (prefill GEMM): tokens per tile, a multiple of MATMUL_TOKENS_PER_THREAD. */
  readonly matmulTileT: number
  /** matmul_*: threads across the rows of a tile (each owns MATMUL_ROWS_PER_THREAD rows). Workgroup = (tileT / 4) x rowLanes. */
  readonly matmulRowLanes: number
  /** matmul_*: columns staged per step, a multiple of 4. Workgroup memory: (rowLanes·4·(tileK+1) + tileT·tileK) floats. */
  readonly matmulTileK: number
  /** rmsnorm: one workgroup per row (power of two: tree reduction). */
  readonly normWg: number
  /** attention: smallest workgroup (power of two); raised to the next power of two >= head_dim. */
  readonly attentionMinWg: number
  /** rope, swiglu, add, embedding: one thread per element (or pair). */
  readonly elementwiseWg: number
  /** router: tokens (threads) per workgroup. */
  readonly routerWg: number
}

export const GPU_TUNING: Tuning = Object.freeze({
  name: 'gpu',
  // 64 lanes per row, 2 rows per thread, 4 rows per workgroup. Measured on an NVIDIA H200 (Dawn,
  // VEC4, bench/gemv-node.bench.ts), µs at 4096x4096 / 4096x11008: 128/64/2 11.9 / 23.8, 256/64/2
  // 12.1 / 24.5, 256/64/1 14.3 / 30.7, 256/32/2 (subgroup reductions) 12.1 / 30.7, 256/16/4 24.5 / 85
  matvecWg: 128,
  matvecThreadsPerRow: 64,
  matvecRowsPerThread: 2,
  moeWg: 256,
  moeThreadsPerRow: 64,
  // 32 tokens x 64 rows per tile, 128 threads with 4 x 4 register blocks, 12 KiB of workgroup memory
  matmulTileT: 32,
  matmulRowLanes: 16,
  matmulTileK: 32,
  normWg: 256,
  attentionMinWg: 64,
  elementwiseWg: 256,
  routerWg: 64
})

export const CPU_TUNING: Tuning = Object.freeze({
  name: 'cpu',
  // a thread per row: no barriers in the reduction
  matvecWg: 64,
  matvecThreadsPerRow: 1,
  matvecRowsPerThread: 2, // SwiftShader 2048x5632: 34 ms, against 40 ms with 1 and 36 ms with 4
  moeWg: 64,
  moeThreadsPerRow: 1,
  // 32 tokens x 32 rows per tile, 64 threads with 4 x 4 register blocks (SwiftShader, 64x2048->5632:
  // 1.61 s per pass; 8x32 1.71 s, 16x64 1.68 s; the one-accumulator kernel before took 3.09 s)
  matmulTileT: 32,
  matmulRowLanes: 8,
  matmulTileK: 32,
  normWg: 64,
  attentionMinWg: 64,
  elementwiseWg: 64,
  routerWg: 64
})

/** CPU_TUNING for software adapters (fallback adapters, SwiftShader), else GPU_TUNING. */
export function tuningFor(info: Partial<Pick<GPUAdapterInfo, 'architecture' | 'isFallbackAdapter'>> | undefined): Tuning {
  return info?.isFallbackAdapter === true || info?.architecture === 'swiftshader' ? CPU_TUNING : GPU_TUNING
}

/** attention workgroup size for a head_dim. */
export function attentionWorkgroup(t: Tuning, headDim: number): number {
  let wg = t.attentionMinWg
  while (wg < headDim) wg *= 2
  return wg
}
