/**
 * Payload: the byte string a chain B block commits to. One index, then TensorBlocks.
 *
 *   [0, 8)        magic, ASCII "BLYNPAY1"
 *   [8, 12)       L, u32 little-endian: index length, at most 1 MiB
 *   [12, 16)      reserved u32, 0
 *   [16, 16+L)    index, canonical DAG-CBOR:
 *                   { version: 1, tensors: [{ name, offset, size, dtype, shape }, ...] }
 *   zero padding up to align256(16 + L)
 *   TensorBlock 0 at tensors[0].offset = align256(16 + L), size tensors[0].size bytes
 *   zero padding up to the next multiple of 256
 *   TensorBlock 1 at tensors[1].offset = align256(tensors[0].offset + tensors[0].size) ...
 *   end of payload = end of the last TensorBlock
 *
 * The index sits at the front so a light client can read it from the first tile (tiles.ts):
 * `payloadIndexLength(first 16 bytes)` says how many bytes `decodePayloadIndex` needs, and the
 * index then says which byte ranges, hence which tiles, hold each tensor. Offsets are from the
 * payload start; every layout rule is checked on the index alone, so those ranges can be trusted
 * before any TensorBlock is fetched.
 *
 * @module
 */
import * as dagCbor from '@ipld/dag-cbor'
import { decodeCbor } from '../codec/cbor.ts'
import * as S from '../codec/schema.ts'
import { RuleError, isRuleError, reject } from '../errors.ts'
import { aarray, abytes } from '../assert.ts'
import { DTYPES, DTYPE_SIZE, TBLOCK_MAX_ELEMENTS, align256, canonicalTBlockHeader, tblockByteLength, type DType } from './tblock.ts'
import { decodeTensorBlock, encodeTensorBlock, matrixDims, type TensorView } from './tensorblock.ts'

export const PAYLOAD_MAGIC = 'BLYNPAY1'
/** Bytes before the index: magic, L, reserved. */
export const PAYLOAD_PREFIX_SIZE = 16
/** Largest index L in bytes: 1 MiB. */
export const PAYLOAD_MAX_INDEX_LENGTH = 1 << 20
export const PAYLOAD_VERSION = 1
/** Largest tensor rank in an index. */
export const PAYLOAD_MAX_RANK = 4
/** Tensor names: 1..128 of [A-Za-z0-9_.]. */
export const TENSOR_NAME_RE = /^[A-Za-z0-9_.]{1,128}$/

/** One index entry. `offset` and `size` locate the TensorBlock in the payload, in bytes. */
export interface PayloadEntry {
  name: string
  /** from the payload start; multiple of 256 */
  offset: number
  /** TensorBlock length */
  size: number
  dtype: DType
  /** rank 1..4, dims >= 1; the TensorBlock holds (product of all but last, last) */
  shape: readonly number[]
}

export interface PayloadIndex {
  version: 1
  /** in payload order, at least one */
  tensors: readonly PayloadEntry[]
}

/** Index bytes one entry may take, at most (name of 128 characters, offsets and dims as 9-byte CBOR integers, keys). */
const MAX_INDEX_ENTRY_BYTES = 256

/**
 * The largest payload that can hold exactly these tensors: each in its largest encoding (the
 * TensorBlock of whichever dtype is longest for its shape), 256-byte aligned after an index of
 * the largest size its entries can encode to. The layout rules fix every byte of a payload from its
 * index, so no valid payload of these tensors is longer: a full node can refuse a longer upload, or
 * a header claiming more, before reading it.
 */
export function maxPayloadSize(tensors: readonly { readonly shape: readonly number[] }[]): number {
  let size = align256(PAYLOAD_PREFIX_SIZE + 16 + MAX_INDEX_ENTRY_BYTES * tensors.length)
  for (const t of tensors) {
    const { rows, cols } = matrixDims(t.shape)
    size += align256(Math.max(...DTYPES.map((d) => tblockByteLength(canonicalTBlockHeader(d, rows, cols)))))
  }
  return size
}

/** A tensor to put in a payload: float32 values, row-major over `shape`. */
export interface PayloadTensor {
  name: string
  /** (product of shape) row-major */
  values: Float32Array
  shape: readonly number[]
  dtype: DType
}

export interface ParsedPayload {
  index: PayloadIndex
  /** name -> decoded TensorBlock (views into the payload bytes where aligned) */
  tensors: Map<string, TensorView>
}

const MAGIC_BYTES = /* @__PURE__ */ new TextEncoder().encode(PAYLOAD_MAGIC)
const TOP_KEYS = ['tensors', 'version'] as const
const ENTRY_KEYS = ['dtype', 'name', 'offset', 'shape', 'size'] as const

// ---------------------------------------------------------------------------- index

/**
 * L from the first 16 payload bytes, after checking magic and reserved (E_PAYLOAD_MAGIC) and
 * L <= 1 MiB (E_TOO_LARGE). A reader needs the first 16 + L bytes for `decodePayloadIndex`.
 */
export function payloadIndexLength(first16: Uint8Array): number {
  abytes(first16, 'first16')
  if (first16.length < PAYLOAD_PREFIX_SIZE) {
    reject('E_PAYLOAD_MAGIC', 'magic', `${first16.length} bytes, the payload header needs 16`)
  }
  for (let i = 0; i < MAGIC_BYTES.length; i++) {
    if (first16[i] !== MAGIC_BYTES[i]) reject('E_PAYLOAD_MAGIC', 'magic')
  }
  const dv = new DataView(first16.buffer, first16.byteOffset, PAYLOAD_PREFIX_SIZE)
  const length = dv.getUint32(8, true)
  if (dv.getUint32(12, true) !== 0) reject('E_PAYLOAD_MAGIC', 'reserved', 'reserved header word is not 0')
  if (length > PAYLOAD_MAX_INDEX_LENGTH) reject('E_TOO_LARGE', 'index', `index is ${length} bytes, at most 1 MiB allowed`)
  return length
}

/**
 * Serialise an index as the payload prefix: 16 header bytes + canonical DAG-CBOR (16 + L bytes,
 * no padding). Throws TypeError/RangeError for an index that decoding would refuse.
 */
export function encodePayloadIndex(index: PayloadIndex): Uint8Array {
  if (typeof index !== 'object' || index === null) throw new TypeError('index: expected PayloadIndex object')
  aarray(index.tensors, 'index.tensors')
  const plain = {
    version: index.version,
    tensors: index.tensors.map((e, i) => {
      if (typeof e !== 'object' || e === null) throw new TypeError(`index.tensors[${i}]: expected object`)
      aarray(e.shape, `index.tensors[${i}].shape`)
      return { name: e.name, offset: e.offset, size: e.size, dtype: e.dtype, shape: [...e.shape] }
    })
  }
  const cbor = dagCbor.encode(plain)
  if (cbor.length > PAYLOAD_MAX_INDEX_LENGTH) throw new RangeError(`index: ${cbor.length} bytes of DAG-CBOR exceed 1 MiB`)
  const out = new Uint8Array(PAYLOAD_PREFIX_SIZE + cbor.length)
  out.set(MAGIC_BYTES, 0)
  new DataView(out.buffer).setUint32(8, cbor.length, true)
  out.set(cbor, PAYLOAD_PREFIX_SIZE)
  // Fail closed: never emit an index our own decoder refuses.
  try {
    decodePayloadIndex(out)
  } catch (e) {
    if (isRuleError(e)) throw new RangeError(`index: ${e.message}`)
    throw e
  }
  return out
}

/**
 * Decode and check the index from a payload prefix of at least 16 + L bytes (extra bytes are
 * ignored). Checks, in order: header (E_PAYLOAD_MAGIC, E_TOO_LARGE), enough bytes
 * (E_PAYLOAD_INDEX), DAG-CBOR (E_DECODE), canonical encoding (E_NONCANONICAL), schema with exact
 * key sets (E_SCHEMA with the path as field; E_VERSION), then layout: offsets contiguous with
 * 256-alignment and sizes large enough for their shape and dtype (E_PAYLOAD_INDEX).
 */
export function decodePayloadIndex(prefix: Uint8Array): PayloadIndex {
  abytes(prefix, 'prefix')
  const length = payloadIndexLength(prefix)
  if (prefix.length < PAYLOAD_PREFIX_SIZE + length) {
    reject('E_PAYLOAD_INDEX', 'index', `index needs ${PAYLOAD_PREFIX_SIZE + length} bytes, got ${prefix.length}`)
  }
  const value = decodeCbor(prefix.subarray(PAYLOAD_PREFIX_SIZE, PAYLOAD_PREFIX_SIZE + length), PAYLOAD_MAX_INDEX_LENGTH, 'index')
  const index = checkIndexSchema(value)
  checkIndexLayout(index, length)
  return index
}

function checkIndexSchema(value: unknown): PayloadIndex {
  const top = S.exactMap(value, TOP_KEYS, '')
  const version = S.uint(top, 'version', '')
  if (version !== PAYLOAD_VERSION) reject('E_VERSION', 'version', `payload index version ${version}, only 1 is supported`)
  const list = S.list(top, 'tensors', '', PAYLOAD_MAX_INDEX_LENGTH)
  if (list.length < 1) reject('E_SCHEMA', 'tensors', 'a payload holds at least one tensor')
  const names = new Set<string>()
  const tensors = list.map((item: unknown, i: number): PayloadEntry => {
    const path = `tensors[${i}]`
    const e = S.exactMap(item, ENTRY_KEYS, path)
    const name = S.str(e, 'name', path, 128, TENSOR_NAME_RE)
    if (names.has(name)) reject('E_SCHEMA', `${path}.name`, `duplicate tensor name ${name}`)
    names.add(name)
    const offset = S.uint(e, 'offset', path)
    const size = S.uint(e, 'size', path)
    if (size < 1) reject('E_SCHEMA', `${path}.size`, 'size must be positive')
    const dtype = S.oneOf(e, 'dtype', path, DTYPES)
    const shapeList = S.list(e, 'shape', path, PAYLOAD_MAX_RANK)
    if (shapeList.length < 1) reject('E_SCHEMA', `${path}.shape`, 'shape must be an array of rank 1..4')
    const shape = shapeList.map((dim, d) => {
      const v = S.uint(S.item(dim), '', `${path}.shape[${d}]`, TBLOCK_MAX_ELEMENTS)
      if (v < 1) reject('E_SCHEMA', `${path}.shape[${d}]`, 'dims must be positive integers')
      return v
    })
    if (shape.reduce((a, b) => a * b, 1) > TBLOCK_MAX_ELEMENTS) reject('E_SCHEMA', `${path}.shape`, 'more than 2^30 elements')
    return Object.freeze({ name, offset, size, dtype, shape: Object.freeze(shape) })
  })
  return Object.freeze({ version: 1, tensors: Object.freeze(tensors) })
}

/** Offsets: first at align256(16 + L), each next at align256(previous end). Sizes: fit the tensor. */
function checkIndexLayout(index: PayloadIndex, length: number): void {
  let expected = align256(PAYLOAD_PREFIX_SIZE + length)
  index.tensors.forEach((e, i) => {
    if (e.offset !== expected) {
      reject('E_PAYLOAD_INDEX', `tensors[${i}].offset`, `offset ${e.offset}, expected ${expected} (256-aligned, contiguous)`)
    }
    // The smallest TensorBlock for this shape and dtype is the canonical one; any other layout
    // only moves the data by multiples of 256.
    const { rows, cols } = matrixDims(e.shape)
    const min = tblockByteLength(canonicalTBlockHeader(e.dtype, rows, cols))
    const dataBytes = rows * cols * DTYPE_SIZE[e.dtype]
    if (e.size < min || (e.size - dataBytes) % 256 !== 0) {
      reject('E_PAYLOAD_INDEX', `tensors[${i}].size`, `size ${e.size} cannot hold a ${e.dtype} [${e.shape.join(', ')}] TensorBlock`)
    }
    if (e.offset + e.size > Number.MAX_SAFE_INTEGER - 256) reject('E_PAYLOAD_INDEX', `tensors[${i}].size`, 'payload end overflows')
    expected = align256(e.offset + e.size)
  })
}

// ---------------------------------------------------------------------------- payload

/**
 * Build a payload from float32 tensors, in the given order. Each is encoded as a canonical
 * TensorBlock of its dtype (tensorblock.ts). Non-finite values: RuleError E_NONFINITE with
 * field `tensors[k].values[i]`. Bad names, shapes or ranks: TypeError/RangeError.
 */
export function buildPayload(tensors: readonly PayloadTensor[]): Uint8Array {
  aarray(tensors, 'tensors')
  if (tensors.length < 1) throw new RangeError('tensors: a payload holds at least one tensor')
  const names = new Set<string>()
  const blocks = tensors.map((t, k) => {
    if (typeof t !== 'object' || t === null) throw new TypeError(`tensors[${k}]: expected object`)
    if (typeof t.name !== 'string' || !TENSOR_NAME_RE.test(t.name)) {
      throw new RangeError(`tensors[${k}].name: expected 1..128 characters of [A-Za-z0-9_.], got ${JSON.stringify(t.name)}`)
    }
    if (names.has(t.name)) throw new RangeError(`tensors[${k}].name: duplicate name ${t.name}`)
    names.add(t.name)
    aarray(t.shape, `tensors[${k}].shape`)
    if (t.shape.length > PAYLOAD_MAX_RANK) throw new RangeError(`tensors[${k}].shape: rank ${t.shape.length} exceeds 4`)
    try {
      return encodeTensorBlock(t.values, t.shape, t.dtype)
    } catch (e) {
      if (isRuleError(e)) throw new RuleError(e.code, `tensors[${k}].values[${e.field}]`, detailOf(e))
      throw e
    }
  })
  // The index holds the offsets, and the offsets start after the index: iterate to the fixed
  // point. Offsets only grow, so the CBOR only grows, and this ends within a few rounds.
  let start = align256(PAYLOAD_PREFIX_SIZE)
  for (let round = 0; ; round++) {
    if (round > 16) throw new Error('buildPayload: index layout did not converge (bug)')
    let offset = start
    const entries = tensors.map((t, k): PayloadEntry => {
      const e = { name: t.name, offset, size: blocks[k]!.length, dtype: t.dtype, shape: [...t.shape] }
      offset = align256(offset + e.size)
      return e
    })
    const entriesEnd = entries[entries.length - 1]!.offset + blocks[blocks.length - 1]!.length
    const prefixLength = PAYLOAD_PREFIX_SIZE + dagCbor.encode({ version: 1, tensors: entries }).length
    if (align256(prefixLength) !== start) {
      start = align256(prefixLength)
      continue
    }
    const prefix = encodePayloadIndex({ version: 1, tensors: entries })
    const out = new Uint8Array(entriesEnd)
    out.set(prefix, 0)
    entries.forEach((e, k) => out.set(blocks[k]!, e.offset))
    return out
  }
}

/**
 * Decode and check a whole payload: the index (decodePayloadIndex), zero padding, the payload
 * ending exactly at the last TensorBlock (E_PAYLOAD_INDEX), every TensorBlock
 * (decodeTensorBlock; its RuleError `field` is prefixed with `tensors[i].`), and each block's
 * header agreeing with its entry's dtype and shape (E_PAYLOAD_INDEX).
 */
export function parsePayload(bytes: Uint8Array): ParsedPayload {
  abytes(bytes, 'bytes')
  const index = decodePayloadIndex(bytes)
  const tensors = new Map<string, TensorView>()
  let cursor = PAYLOAD_PREFIX_SIZE + payloadIndexLength(bytes)
  index.tensors.forEach((e, i) => {
    const path = `tensors[${i}]`
    if (e.offset > bytes.length) reject('E_PAYLOAD_INDEX', `${path}.offset`, `payload ends at ${bytes.length}, before ${e.offset}`)
    checkZero(bytes, cursor, e.offset)
    const end = e.offset + e.size
    if (end > bytes.length) reject('E_PAYLOAD_INDEX', `${path}.size`, `payload ends at ${bytes.length}, before ${end}`)
    let v: TensorView
    try {
      v = decodeTensorBlock(bytes.subarray(e.offset, end))
    } catch (err) {
      if (isRuleError(err)) throw new RuleError(err.code, `${path}.${err.field}`, detailOf(err))
      throw err
    }
    const { rows, cols } = matrixDims(e.shape)
    if (v.header.dtype !== e.dtype) reject('E_PAYLOAD_INDEX', `${path}.dtype`, `index says ${e.dtype}, TensorBlock is ${v.header.dtype}`)
    if (v.header.rows !== rows || v.header.cols !== cols) {
      reject('E_PAYLOAD_INDEX', `${path}.shape`, `index says ${rows}x${cols}, TensorBlock is ${v.header.rows}x${v.header.cols}`)
    }
    tensors.set(e.name, v)
    cursor = end
  })
  if (bytes.length !== cursor) reject('E_PAYLOAD_INDEX', 'length', `${bytes.length - cursor} bytes after the last TensorBlock`)
  return Object.freeze({ index, tensors })
}

// ---------------------------------------------------------------------------- utilities

/** A RuleError's message without its `CODE (field): ` prefix, to re-throw under a longer field. */
function detailOf(e: RuleError): string {
  return e.message.slice(`${e.code} (${e.field}): `.length)
}

function checkZero(bytes: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) reject('E_PAYLOAD_INDEX', 'padding', `padding byte ${i} is not zero`)
}

