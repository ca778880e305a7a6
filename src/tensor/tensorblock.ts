/**
 * TensorBlock = TBLOCK01 header + optional scales + element data, as one byte string.
 *
 *   [0, 128)                       header (tblock.ts)
 *   [scaleOffset, +4*M)            M float32 scales, int8 only (canonical: at 128)
 *   [dataOffset, +M*N*size)        elements, fp16 as binary16 bits (canonical: 256-aligned,
 *                                  right after the scales, or at 256)
 * and nothing after the data. The encoder always writes row_major; the decoder also reads
 * col_major. Decoding returns views into the caller's bytes when they are aligned for the
 * element type (zero-copy), else copies.
 *
 * @module
 */
import { reject } from '../errors.ts'
import { aarray, abytes, af32, aint, aoneOf } from '../assert.ts'
import { f16BitsToF32Bits } from './f16.ts'
import { assertFinite, dequantizeF16, dequantizeInt8, quantizeF16, quantizeInt8 } from './quant.ts'
import {
  DTYPES,
  TBLOCK_MAX_ELEMENTS,
  canonicalTBlockHeader,
  decodeTBlockHeader,
  encodeTBlockHeader,
  tblockByteLength,
  type DType,
  type TBlockHeader
} from './tblock.ts'

/** A decoded TensorBlock. Typed arrays may alias the bytes that were decoded. */
export interface TensorView {
  header: TBlockHeader
  /** (rows) float32 per-output-channel scales for int8; null for fp16/fp32 */
  scales: Float32Array | null
  /**
   * (rows, cols) for row_major, (cols, rows) for col_major: Int8Array for int8, Uint16Array of
   * binary16 bits for fp16, Float32Array for fp32.
   */
  data: Int8Array | Uint16Array | Float32Array
}

/** Typed-array views read the host's byte order; every current JS host is little-endian. */
const HOST_LE = /* @__PURE__ */ new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * Shape -> matrix: rows = product of all dims but the last, cols = the last dim ([n] -> 1 x n).
 * Throws TypeError/RangeError for anything but 1..n positive integer dims with at most 2^30 elements.
 */
export function matrixDims(shape: readonly number[], title = 'shape'): { rows: number; cols: number } {
  aarray(shape, title)
  if (shape.length < 1) throw new RangeError(`${title}: rank must be at least 1`)
  let rows = 1
  for (let i = 0; i < shape.length; i++) {
    aint(shape[i], `${title}[${i}]`, 1, TBLOCK_MAX_ELEMENTS)
    if (i < shape.length - 1) rows *= shape[i]!
    if (rows > TBLOCK_MAX_ELEMENTS) throw new RangeError(`${title}: more than 2^30 elements`)
  }
  const cols = shape[shape.length - 1]!
  if (rows * cols > TBLOCK_MAX_ELEMENTS) throw new RangeError(`${title}: more than 2^30 elements`)
  return { rows, cols }
}

/**
 * Encode a float32 tensor of `shape` (row-major, values.length = product of shape) as a canonical
 * TensorBlock of `dtype`. int8 is quantized per row (quant.ts); fp16 refuses |x| >= 65520.
 * Non-finite values: RuleError E_NONFINITE with the element index as `field`.
 */
export function encodeTensorBlock(values: Float32Array, shape: readonly number[], dtype: DType): Uint8Array {
  af32(values, 'values')
  aoneOf(dtype, DTYPES, 'dtype')
  const { rows, cols } = matrixDims(shape)
  const n = rows * cols
  if (values.length !== n) throw new RangeError(`values: shape [${shape.join(', ')}] needs ${n} elements, got ${values.length}`)
  const h = canonicalTBlockHeader(dtype, rows, cols)
  const out = new Uint8Array(tblockByteLength(h))
  out.set(encodeTBlockHeader(h), 0)
  if (dtype === 'fp32') {
    assertFinite(values)
    new Float32Array(out.buffer, h.dataOffset, n).set(values)
  } else if (dtype === 'fp16') {
    quantizeF16(new Uint16Array(out.buffer, h.dataOffset, n), values)
  } else {
    quantizeInt8(new Int8Array(out.buffer, h.dataOffset, n), new Float32Array(out.buffer, h.scaleOffset, rows), values, rows, cols)
  }
  if (!HOST_LE) swapInPlace(out, h)
  return out
}

/**
 * Decode and fully check one TensorBlock: the header (tblock.ts), then the length (shorter than
 * the data end: E_TB_TRUNCATED; longer: E_TB_OFFSET), then that every fp16/fp32 element and
 * every dequantized int8 value q * scale is finite (E_NONFINITE, `field` = `scales[r]` or
 * `data[i]`).
 */
export function decodeTensorBlock(bytes: Uint8Array): TensorView {
  abytes(bytes, 'bytes')
  const header = decodeTBlockHeader(bytes)
  const end = tblockByteLength(header)
  if (bytes.length < end) reject('E_TB_TRUNCATED', 'data', `block is ${bytes.length} bytes, its data ends at ${end}`)
  if (bytes.length > end) reject('E_TB_OFFSET', 'length', `${bytes.length - end} bytes after the data end ${end}`)
  const { rows, cols, dtype } = header
  const n = rows * cols

  let scales: Float32Array | null = null
  if (header.quantization === 'int8_symmetric_per_channel') {
    scales = view(bytes, header.scaleOffset, rows, Float32Array)
    for (let r = 0; r < rows; r++) {
      // Every dequantized q * scale must be a finite float32: 127 * scale for the symmetric range
      // the encoder writes; -128 * scale is checked element-wise in the rare rows where only it
      // overflows.
      if (!Number.isFinite(Math.fround(127 * scales[r]!))) {
        reject('E_NONFINITE', `scales[${r}]`, `scale ${scales[r]} is not finite or overflows float32 when dequantized`)
      }
      if (!Number.isFinite(Math.fround(128 * scales[r]!))) {
        const q = new Int8Array(bytes.buffer, bytes.byteOffset + header.dataOffset, n)
        for (let c = 0; c < cols; c++) {
          const i = header.layout === 'row_major' ? r * cols + c : c * rows + r
          if (q[i] === -128) reject('E_NONFINITE', `data[${i}]`, `-128 * scale ${scales[r]} overflows float32`)
        }
      }
    }
  }

  let data: Int8Array | Uint16Array | Float32Array
  if (dtype === 'int8') {
    data = new Int8Array(bytes.buffer, bytes.byteOffset + header.dataOffset, n)
  } else if (dtype === 'fp16') {
    const h = view(bytes, header.dataOffset, n, Uint16Array)
    for (let i = 0; i < n; i++) {
      if ((h[i]! & 0x7c00) === 0x7c00) reject('E_NONFINITE', `data[${i}]`, `fp16 element ${i} is NaN or infinite`)
    }
    data = h
  } else {
    const f = view(bytes, header.dataOffset, n, Float32Array)
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(f[i]!)) reject('E_NONFINITE', `data[${i}]`, `fp32 element ${i} is ${f[i]}`)
    }
    data = f
  }
  return Object.freeze({ header, scales, data })
}

/**
 * Dequantize a view into out (rows, cols), row-major whatever the stored layout:
 * int8 -> q * scale[row], fp16 -> exact float32, fp32 -> copy.
 */
export function dequantizeInto(out: Float32Array, v: TensorView): void {
  af32(out, 'out')
  const { rows, cols, layout } = v.header
  const n = rows * cols
  if (out.length !== n) throw new RangeError(`out: expected ${n} elements, got ${out.length}`)
  const data = v.data
  if (layout === 'row_major') {
    if (data instanceof Int8Array) dequantizeInt8(out, data, v.scales!, rows, cols)
    else if (data instanceof Uint16Array) dequantizeF16(out, data)
    else out.set(data)
    return
  }
  // col_major: element (r, c) is stored at c*rows + r. One loop per dtype, no branch inside.
  if (data instanceof Int8Array) {
    const scales = v.scales!
    for (let r = 0; r < rows; r++) {
      const s = scales[r]!
      for (let c = 0; c < cols; c++) out[r * cols + c] = data[c * rows + r]! * s
    }
  } else if (data instanceof Uint16Array) {
    const bits = new Uint32Array(out.buffer, out.byteOffset, n)
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) bits[r * cols + c] = f16BitsToF32Bits(data[c * rows + r]!)
    }
  } else {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[r * cols + c] = data[c * rows + r]!
    }
  }
}

/** Allocating wrapper: (rows, cols) row-major float32. */
export function dequantize(v: TensorView): Float32Array {
  const out = new Float32Array(v.header.rows * v.header.cols)
  dequantizeInto(out, v)
  return out
}

// ---------------------------------------------------------------------------- utilities

type TypedCtor<T> = { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number }

/** `count` elements at `offset` of bytes: a view when aligned (and the host is LE), else a copy. */
function view<T extends Uint16Array | Float32Array>(bytes: Uint8Array, offset: number, count: number, Ctor: TypedCtor<T>): T {
  const size = Ctor.BYTES_PER_ELEMENT
  const start = bytes.byteOffset + offset
  if (HOST_LE && start % size === 0) return new Ctor(bytes.buffer as ArrayBuffer, start, count)
  // A copy with its own buffer: Node's Buffer#slice is a view, so never rely on slice copying.
  const copy = new Uint8Array(bytes.subarray(offset, offset + count * size))
  if (!HOST_LE) swapBytes(copy, size)
  return new Ctor(copy.buffer, 0, count)
}

function swapBytes(b: Uint8Array, size: number): void {
  for (let i = 0; i + size <= b.length; i += size) b.subarray(i, i + size).reverse()
}

/** Encoder output on a big-endian host: flip scales and data to little-endian. */
function swapInPlace(out: Uint8Array, h: TBlockHeader): void {
  if (h.scaleOffset !== 0) swapBytes(out.subarray(h.scaleOffset, h.scaleOffset + 4 * h.rows), 4)
  const size = h.dtype === 'fp32' ? 4 : h.dtype === 'fp16' ? 2 : 1
  if (size > 1) swapBytes(out.subarray(h.dataOffset), size)
}
