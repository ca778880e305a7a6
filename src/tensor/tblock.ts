/**
 * TBLOCK01: the 128-byte header in front of every TensorBlock.
 *
 * A TensorBlock is one tensor as stored inside a payload. All integers are little-endian:
 *
 * | off | size | field                                                                         |
 * |-----|------|-------------------------------------------------------------------------------|
 * |   0 |    8 | magic, ASCII "TBLOCK01"                                                       |
 * |   8 |    4 | version u32 = 1                                                               |
 * |  12 |    4 | dtype u32: 1 fp16, 2 int8, 3 fp8 (reserved, refused in v1), 4 fp32           |
 * |  16 |    8 | rows M u64 (output channels)                                                  |
 * |  24 |    8 | cols N u64                                                                    |
 * |  32 |    4 | layout u32: 0 row_major data[r*N+c], 1 col_major data[c*M+r]                  |
 * |  36 |    4 | quantization u32: 0 none (fp16/fp32), 1 int8 symmetric per row (int8 only)    |
 * |  40 |    8 | scale offset u64 from block start: M float32 scales; 0 when unquantized        |
 * |  48 |    8 | data offset u64 from block start, multiple of 256                             |
 * |  56 |    8 | Merkle offset u64, must be 0 in v1 (see below)                                |
 * |  64 |   64 | reserved, all zero                                                            |
 *
 * Limits: 1 <= M, N and M*N <= 2^30 elements. Scales (4*M bytes, 4-aligned, at >= 128) come
 * before the data and do not overlap it; the block ends exactly where the data ends.
 * Canonical encoder output puts scales at 128 and data at align256(128 + 4*M) when quantized,
 * else data at 256; decoders accept any layout that passes the checks.
 *
 * Why the Merkle offset is always 0: version 1 carries no per-block hash tree. A payload is
 * stored as a UnixFS file whose 256 KiB raw leaves (tiles) are already hashed into the payload
 * CID, so a light client verifies any byte range through that DAG (tiles.ts) instead. The field
 * stays in the header so a later version can add an in-block tree without moving anything.
 *
 * @module
 */
import { RuleError, isRuleError, reject } from '../errors.ts'
import { abytes, aint, aoneOf } from '../assert.ts'

export const TBLOCK_MAGIC = 'TBLOCK01'
export const TBLOCK_VERSION = 1
/** Header length in bytes; the smallest possible scale or data offset. */
export const TBLOCK_HEADER_SIZE = 128
/** Data offsets are multiples of this (GPU- and SIMD-friendly alignment). */
export const TBLOCK_DATA_ALIGN = 256
/** Most elements (M*N) one TensorBlock may hold: 2^30. */
export const TBLOCK_MAX_ELEMENTS = 2 ** 30

/** Element type as stored. */
export type DType = 'fp16' | 'int8' | 'fp32'
export type Layout = 'row_major' | 'col_major'
export type Quantization = 'none' | 'int8_symmetric_per_channel'

export const DTYPES: readonly DType[] = /* @__PURE__ */ Object.freeze(['fp16', 'int8', 'fp32'] as const)
/** Bytes per stored element. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = /* @__PURE__ */ Object.freeze({ fp16: 2, int8: 1, fp32: 4 })
/** The u32 written at offset 12. */
export const DTYPE_CODE: Readonly<Record<DType, number>> = /* @__PURE__ */ Object.freeze({ fp16: 1, int8: 2, fp32: 4 })
const DTYPE_FP8 = 3
const LAYOUT_CODE: Readonly<Record<Layout, number>> = { row_major: 0, col_major: 1 }
const QUANT_CODE: Readonly<Record<Quantization, number>> = { none: 0, int8_symmetric_per_channel: 1 }

/** The decoded header. Offsets are byte offsets from the start of the TensorBlock. */
export interface TBlockHeader {
  version: 1
  dtype: DType
  /** M, output channels */
  rows: number
  /** N */
  cols: number
  layout: Layout
  quantization: Quantization
  /** start of the M float32 scales; 0 when quantization is 'none' */
  scaleOffset: number
  /** start of the M*N elements; multiple of 256 */
  dataOffset: number
  /** always 0 in version 1 */
  merkleOffset: number
}

const MAGIC_BYTES = /* @__PURE__ */ new TextEncoder().encode(TBLOCK_MAGIC)

/** Round up to the next multiple of 256. */
export function align256(n: number): number {
  return Math.ceil(n / TBLOCK_DATA_ALIGN) * TBLOCK_DATA_ALIGN
}

/** The header the encoder writes for a row-major tensor: int8 is always quantized. */
export function canonicalTBlockHeader(dtype: DType, rows: number, cols: number): TBlockHeader {
  aoneOf(dtype, DTYPES, 'dtype')
  aint(rows, 'rows', 1, TBLOCK_MAX_ELEMENTS)
  aint(cols, 'cols', 1, TBLOCK_MAX_ELEMENTS)
  if (rows * cols > TBLOCK_MAX_ELEMENTS) throw new RangeError(`rows*cols: ${rows * cols} elements exceed 2^30`)
  const quantized = dtype === 'int8'
  return Object.freeze({
    version: 1,
    dtype,
    rows,
    cols,
    layout: 'row_major',
    quantization: quantized ? 'int8_symmetric_per_channel' : 'none',
    scaleOffset: quantized ? TBLOCK_HEADER_SIZE : 0,
    dataOffset: quantized ? align256(TBLOCK_HEADER_SIZE + 4 * rows) : 256,
    merkleOffset: 0
  })
}

/** Total TensorBlock length implied by a (valid) header: where its data ends. */
export function tblockByteLength(h: TBlockHeader): number {
  return h.dataOffset + h.rows * h.cols * DTYPE_SIZE[h.dtype]
}

/** Serialise a header to 128 bytes. Throws RangeError/TypeError for a header decoding would refuse. */
export function encodeTBlockHeader(h: TBlockHeader): Uint8Array {
  if (typeof h !== 'object' || h === null) throw new TypeError('h: expected TBlockHeader object')
  if (h.version !== TBLOCK_VERSION) throw new RangeError(`h.version: expected 1, got ${String(h.version)}`)
  aoneOf(h.dtype, DTYPES, 'h.dtype')
  aint(h.rows, 'h.rows')
  aint(h.cols, 'h.cols')
  aoneOf(h.layout, ['row_major', 'col_major'], 'h.layout')
  aoneOf(h.quantization, ['none', 'int8_symmetric_per_channel'], 'h.quantization')
  aint(h.scaleOffset, 'h.scaleOffset')
  aint(h.dataOffset, 'h.dataOffset')
  aint(h.merkleOffset, 'h.merkleOffset')
  const out = new Uint8Array(TBLOCK_HEADER_SIZE)
  const dv = new DataView(out.buffer)
  out.set(MAGIC_BYTES, 0)
  dv.setUint32(8, h.version, true)
  dv.setUint32(12, DTYPE_CODE[h.dtype], true)
  dv.setBigUint64(16, BigInt(h.rows), true)
  dv.setBigUint64(24, BigInt(h.cols), true)
  dv.setUint32(32, LAYOUT_CODE[h.layout], true)
  dv.setUint32(36, QUANT_CODE[h.quantization], true)
  dv.setBigUint64(40, BigInt(h.scaleOffset), true)
  dv.setBigUint64(48, BigInt(h.dataOffset), true)
  dv.setBigUint64(56, BigInt(h.merkleOffset), true)
  // Fail closed: never emit a header our own decoder refuses.
  try {
    decodeTBlockHeader(out)
  } catch (e) {
    if (isRuleError(e)) throw new RangeError(`h: ${e.message}`)
    throw e
  }
  return out
}

/**
 * Parse and check the first 128 bytes of a TensorBlock (more bytes may follow; they are not read).
 * Checks every rule that does not need the block length; `decodeTensorBlock` adds the rest
 * (E_TB_TRUNCATED, trailing bytes). Throws RuleError with the header field name as `field`.
 */
export function decodeTBlockHeader(bytes: Uint8Array): TBlockHeader {
  abytes(bytes, 'bytes')
  if (bytes.length < TBLOCK_HEADER_SIZE) {
    reject('E_TB_TRUNCATED', 'header', `${bytes.length} bytes, a TBLOCK01 header needs 128`)
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, TBLOCK_HEADER_SIZE)
  for (let i = 0; i < MAGIC_BYTES.length; i++) {
    if (bytes[i] !== MAGIC_BYTES[i]) reject('E_TB_MAGIC', 'magic')
  }
  const version = dv.getUint32(8, true)
  if (version !== TBLOCK_VERSION) reject('E_TB_VERSION', 'version', `version ${version}, only 1 is supported`)

  const dtypeCode = dv.getUint32(12, true)
  if (dtypeCode === DTYPE_FP8) reject('E_TB_DTYPE', 'dtype', 'fp8 is not supported in version 1')
  const dtype = DTYPES.find((d) => DTYPE_CODE[d] === dtypeCode) ?? reject('E_TB_DTYPE', 'dtype', `unknown dtype ${dtypeCode}`)

  const rows = readU64(dv, 16, 'E_TB_SHAPE', 'rows')
  const cols = readU64(dv, 24, 'E_TB_SHAPE', 'cols')
  if (rows < 1 || rows > TBLOCK_MAX_ELEMENTS) reject('E_TB_SHAPE', 'rows', `rows ${rows} not in [1, 2^30]`)
  if (cols < 1 || cols > TBLOCK_MAX_ELEMENTS) reject('E_TB_SHAPE', 'cols', `cols ${cols} not in [1, 2^30]`)
  if (rows * cols > TBLOCK_MAX_ELEMENTS) reject('E_TB_SHAPE', 'cols', `rows*cols = ${rows * cols} exceeds 2^30`)

  const layoutCode = dv.getUint32(32, true)
  const layout: Layout =
    layoutCode === 0 ? 'row_major' : layoutCode === 1 ? 'col_major' : reject('E_TB_LAYOUT', 'layout', `unknown layout ${layoutCode}`)

  const quantCode = dv.getUint32(36, true)
  if (quantCode > 1) reject('E_TB_QUANT', 'quantization', `unknown quantization ${quantCode}`)
  const quantization: Quantization = quantCode === 1 ? 'int8_symmetric_per_channel' : 'none'
  if ((dtype === 'int8') !== (quantCode === 1)) {
    reject('E_TB_QUANT', 'quantization', `quantization ${quantization} does not fit dtype ${dtype}`)
  }

  const scaleOffset = readU64(dv, 40, 'E_TB_OFFSET', 'scaleOffset')
  const dataOffset = readU64(dv, 48, 'E_TB_OFFSET', 'dataOffset')
  const merkleOffset = readU64(dv, 56, 'E_TB_OFFSET', 'merkleOffset')
  // Data: 256-aligned, after the header, and its end must stay a safe integer.
  if (dataOffset < TBLOCK_HEADER_SIZE || dataOffset % TBLOCK_DATA_ALIGN !== 0) {
    reject('E_TB_OFFSET', 'dataOffset', `data offset ${dataOffset} is not a multiple of 256 at or after 128`)
  }
  const dataBytes = rows * cols * DTYPE_SIZE[dtype]
  if (dataOffset > Number.MAX_SAFE_INTEGER - dataBytes) reject('E_TB_OFFSET', 'dataOffset', 'data end overflows')
  // Scales: only when quantized; 4-aligned, after the header, ending at or before the data.
  if (quantization === 'none') {
    if (scaleOffset !== 0) reject('E_TB_OFFSET', 'scaleOffset', 'scale offset must be 0 without quantization')
  } else {
    if (scaleOffset < TBLOCK_HEADER_SIZE || scaleOffset % 4 !== 0) {
      reject('E_TB_OFFSET', 'scaleOffset', `scale offset ${scaleOffset} is not 4-aligned at or after 128`)
    }
    if (scaleOffset > dataOffset - 4 * rows) {
      reject('E_TB_OFFSET', 'scaleOffset', `scales [${scaleOffset}, +${4 * rows}) overlap or follow the data at ${dataOffset}`)
    }
  }
  if (merkleOffset !== 0) reject('E_TB_OFFSET', 'merkleOffset', 'Merkle offset must be 0 in version 1')
  for (let i = 64; i < TBLOCK_HEADER_SIZE; i++) {
    if (bytes[i] !== 0) reject('E_TB_RESERVED', 'reserved', `reserved byte ${i} is ${bytes[i]}`)
  }
  return Object.freeze({ version: 1, dtype, rows, cols, layout, quantization, scaleOffset, dataOffset, merkleOffset })
}

/** u64 as a number; values above 2^53 - 1 are refused with `code` rather than rounded. */
function readU64(dv: DataView, offset: number, code: 'E_TB_SHAPE' | 'E_TB_OFFSET', field: string): number {
  const v = dv.getBigUint64(offset, true)
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RuleError(code, field, `${v} does not fit a safe integer`)
  return Number(v)
}
