/**
 * Host-side layout of weights for the kernels, from checked TensorViews.
 *
 * A matrix [rows, cols] becomes rows of `stride = ceil(cols / 4)` groups of four columns, zero
 * padded at the end of each row so every row starts on a u32 / vec4 boundary:
 * - int8: 4 values per u32 word (column 4j in the low byte of word j), plus the per-row float32
 *   scales as stored. Rows are repacked only when cols % 4 != 0 (or the layout is col_major).
 * - float32: 4 floats per group. fp16 TensorBlocks are widened to float32 here, exactly (every
 *   binary16 is a float32), since the GPU may lack shader-f16 (SwiftShader does); int8 can also be
 *   widened (q * scale, the CPU reference's dequantisation) when a float32 expert pool needs it.
 * col_major blocks are transposed to rows. Vectors (norms, biases) are plain float32 arrays.
 *
 * @module
 */
import { dequantize, type TensorView } from '../tensor/tensorblock.ts'

export type GpuDType = 'int8' | 'f32'

/** A matrix in kernel layout, still on the host. */
export interface HostMatrix {
  readonly dtype: GpuDType
  readonly rows: number
  readonly cols: number
  /** Groups of 4 columns per row: ceil(cols / 4). */
  readonly stride: number
  /** int8: (rows, stride) words of 4 int8; f32: (rows, stride * 4) float32 bits. */
  readonly data: Uint32Array
  /** (rows) int8 scales; null for f32. */
  readonly scales: Float32Array | null
}

/** The kernel dtype a stored dtype maps to: int8 stays int8, fp16 and fp32 become f32. */
export function gpuDType(v: TensorView): GpuDType {
  return v.header.dtype === 'int8' ? 'int8' : 'f32'
}

/** Bytes of a matrix's weights on the GPU. */
export function matrixBytes(dtype: GpuDType, rows: number, cols: number): number {
  return rows * Math.ceil(cols / 4) * (dtype === 'int8' ? 4 : 16)
}

/** Lay out a tensor for the kernels, as `as` (default: its own kind; int8 -> f32 dequantises). */
export function hostMatrix(v: TensorView, as: GpuDType = gpuDType(v)): HostMatrix {
  const { rows, cols, layout } = v.header
  const stride = Math.ceil(cols / 4)
  if (as === 'int8') {
    if (!(v.data instanceof Int8Array) || v.scales === null) throw new TypeError('hostMatrix: only int8 tensors can stay int8')
    const q = v.data
    const data = new Uint32Array(rows * stride)
    const bytes = new Int8Array(data.buffer)
    const pitch = stride * 4
    if (layout === 'row_major') {
      if (cols === pitch) bytes.set(q)
      else for (let r = 0; r < rows; r++) bytes.set(q.subarray(r * cols, (r + 1) * cols), r * pitch)
    } else {
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) bytes[r * pitch + c] = q[c * rows + r] as number
    }
    return { dtype: 'int8', rows, cols, stride, data, scales: Float32Array.from(v.scales) }
  }
  return padF32(dequantize(v), rows, cols)
}

/** Widen an int8 HostMatrix to f32 (q * scale per row, as the CPU reference dequantises). */
export function widenMatrix(m: HostMatrix): HostMatrix {
  if (m.dtype === 'f32') return m
  const q = new Int8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength)
  const dense = new Float32Array(m.rows * m.cols)
  const scales = m.scales as Float32Array
  for (let r = 0; r < m.rows; r++) {
    const s = scales[r] as number
    for (let c = 0; c < m.cols; c++) dense[r * m.cols + c] = (q[r * m.stride * 4 + c] as number) * s
  }
  return padF32(dense, m.rows, m.cols)
}

/** Row-major float32 (rows, cols) -> rows padded to a multiple of 4 floats. */
function padF32(dense: Float32Array, rows: number, cols: number): HostMatrix {
  const stride = Math.ceil(cols / 4)
  const pitch = stride * 4
  let out = dense
  if (pitch !== cols) {
    out = new Float32Array(rows * pitch)
    for (let r = 0; r < rows; r++) out.set(dense.subarray(r * cols, (r + 1) * cols), r * pitch)
  }
  return { dtype: 'f32', rows, cols, stride, data: new Uint32Array(out.buffer, out.byteOffset, out.length), scales: null }
}

/** A rank-1 tensor (norm weights, biases) as float32. */
export function hostVector(v: TensorView): Float32Array {
  return dequantize(v)
}

/** A matrix on the GPU in kernel layout (for the expert pool: `slots` matrices back to back). */
export interface GpuMatrix {
  readonly dtype: GpuDType
  readonly rows: number
  readonly cols: number
  readonly stride: number
  /** int8: (slots, rows, stride) u32; f32: (slots, rows, stride) vec4. */
  readonly weights: GPUBuffer
  /** int8: (slots, rows) float32; null for f32. */
  readonly scales: GPUBuffer | null
}
