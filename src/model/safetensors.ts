/**
 * safetensors (huggingface/safetensors): reader with bounds checks, and a writer.
 *
 *   [0, 8)        N: u64 little-endian, header length
 *   [8, 8+N)      header: UTF-8 JSON object starting with "{", may end in spaces (writers pad to 8 bytes)
 *                   { "<tensor>": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] }, ...,
 *                     "__metadata__": { "<key>": "<string>" } (optional) }
 *   [8+N, EOF)    data buffer; offsets are relative to its start
 *
 * The rules checked are those of the reference implementation (safetensors/src/tensor.rs,
 * `read_metadata` and `Metadata::validate`) and its README: N at most 100,000,000 bytes (the
 * reference's MAX_HEADER_SIZE) and within the file; the header valid UTF-8 and JSON, starting with
 * "{", without duplicate keys; `__metadata__` a string-to-string map; for each tensor,
 * `end - begin = product(shape) * dtype size` (empty tensors and rank-0 scalars allowed); sorted by
 * offsets, the tensors tile the data buffer exactly: the first starts at 0, each starts where the
 * previous ended (no overlaps, no holes: "the byte buffer needs to be entirely indexed, and cannot
 * contain holes. This prevents the creation of polyglot files"), and the last ends at the end of
 * the file (no trailing bytes). Only F32, F16 and BF16 tensors are accepted (the importers need
 * floats); any other dtype is a clear error. Values are converted to float32 exactly and must be
 * finite.
 *
 * @module
 */
import { f32BitsToF16Bits } from '../tensor/f16.ts'
import { bf16FromBytes, checkFinite, f16FromBytes, f32FromBytes, product } from './_bytes.ts'
import { ModelFormatError, formatError } from './errors.ts'
import type { NamedTensor } from './imported.ts'

/** Largest header length N, as the reference implementation (100 MB, decimal). */
export const SAFETENSORS_MAX_HEADER = 100_000_000

export type SafetensorsDType = 'F32' | 'F16' | 'BF16'
export const SAFETENSORS_DTYPE_SIZE: Readonly<Record<SafetensorsDType, number>> = /* @__PURE__ */ Object.freeze({ F32: 4, F16: 2, BF16: 2 })
/** The reference's other dtypes: recognised, so the error can say "unsupported" rather than "unknown". */
const OTHER_DTYPES = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'I16', 'U16', 'I32', 'U32', 'F64', 'I64', 'U64', 'C64']

export interface SafetensorsEntry {
  readonly name: string
  readonly dtype: SafetensorsDType
  readonly shape: readonly number[]
  /** Absolute byte offsets in the file: [begin, end). */
  readonly begin: number
  readonly end: number
}

export interface SafetensorsHeader {
  /** N: bytes of JSON after the 8-byte length. */
  readonly headerLength: number
  /** 8 + N: where the data buffer starts. */
  readonly dataStart: number
  readonly metadata: Readonly<Record<string, string>> | null
  /** In data order. */
  readonly tensors: ReadonlyMap<string, SafetensorsEntry>
}

/**
 * From the first 8 bytes: how many bytes (8 + N) `parseSafetensorsHeader` needs. Checks N against
 * the limit and the file length, so a reader can fetch the header without trusting it.
 */
export function safetensorsPrefixLength(first8: Uint8Array, fileLength: number, file: string | null = null): number {
  if (fileLength < 8 || first8.length < 8) formatError(file, Math.min(fileLength, first8.length), `truncated at byte ${Math.min(fileLength, first8.length)}: expected 8 bytes of header length`)
  const view = new DataView(first8.buffer, first8.byteOffset, 8)
  const n = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32
  if (n > SAFETENSORS_MAX_HEADER) formatError(file, 0, `header length ${n} is over the limit of ${SAFETENSORS_MAX_HEADER} bytes`)
  if (n < 2) formatError(file, 0, `header length ${n} is too small for a JSON object`)
  if (8 + n > fileLength) formatError(file, fileLength, `truncated at byte ${fileLength}: expected ${8 + n - fileLength} more bytes of the JSON header`)
  return 8 + n
}

/** Parse and check the header. `prefix` holds at least the file's first 8 + N bytes; `fileLength` is the whole file's. */
export function parseSafetensorsHeader(prefix: Uint8Array, fileLength: number, file: string | null = null): SafetensorsHeader {
  const dataStart = safetensorsPrefixLength(prefix, fileLength, file)
  if (prefix.length < dataStart) formatError(file, prefix.length, `truncated at byte ${prefix.length}: expected ${dataStart - prefix.length} more bytes of the JSON header`)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(prefix.subarray(8, dataStart))
  } catch {
    formatError(file, 8, 'header is not valid UTF-8')
  }
  if (!text.startsWith('{')) formatError(file, 8, 'header does not start with "{"')
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    formatError(file, 8, `header is not valid JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) formatError(file, 8, 'header is not a JSON object')
  const dup = duplicateKey(text)
  if (dup !== null) formatError(file, 8, `header repeats the key ${JSON.stringify(dup)}`)

  let metadata: Record<string, string> | null = null
  const entries: SafetensorsEntry[] = []
  const dataLength = fileLength - dataStart
  for (const [name, info] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (info === null) continue
      if (typeof info !== 'object' || Array.isArray(info)) formatError(file, 8, '__metadata__ is not an object')
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') formatError(file, 8, `__metadata__.${k} is not a string`)
      }
      metadata = Object.freeze({ ...(info as Record<string, string>) })
      continue
    }
    const what = `tensor ${JSON.stringify(name)}`
    if (typeof info !== 'object' || info === null || Array.isArray(info)) formatError(file, 8, `${what} is not an object`)
    const o = info as Record<string, unknown>
    const dtype = o['dtype']
    if (typeof dtype !== 'string') formatError(file, 8, `${what} has no dtype string`)
    if (!(dtype in SAFETENSORS_DTYPE_SIZE)) {
      formatError(file, 8, OTHER_DTYPES.includes(dtype) ? `${what} has dtype ${dtype}: only F32, F16 and BF16 are supported` : `${what} has unknown dtype ${JSON.stringify(dtype)}`)
    }
    const shape = o['shape']
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) formatError(file, 8, `${what}: shape must be a list of non-negative integers`)
    const offsets = o['data_offsets']
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      formatError(file, 8, `${what}: data_offsets must be two non-negative integers`)
    }
    const [begin, end] = offsets as [number, number]
    if (end < begin) formatError(file, 8, `${what}: data_offsets [${begin}, ${end}] end before they begin`)
    if (end > dataLength) formatError(file, fileLength, `truncated at byte ${fileLength}: expected ${end - dataLength} more bytes of ${what}`)
    const size = product(shape as number[]) * SAFETENSORS_DTYPE_SIZE[dtype as SafetensorsDType]
    if (end - begin !== size) formatError(file, dataStart + begin, `${what}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${size}`)
    entries.push(Object.freeze({ name, dtype: dtype as SafetensorsDType, shape: Object.freeze([...(shape as number[])]), begin: dataStart + begin, end: dataStart + end }))
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end)
  let at = dataStart
  for (const e of entries) {
    if (e.begin < at) formatError(file, e.begin, `tensor ${JSON.stringify(e.name)} at bytes [${e.begin}, ${e.end}) overlaps the previous tensor`)
    if (e.begin > at) formatError(file, at, `bytes [${at}, ${e.begin}) before tensor ${JSON.stringify(e.name)} belong to no tensor`)
    at = e.end
  }
  if (at !== fileLength) formatError(file, at, `${fileLength - at} trailing bytes after the last tensor`)
  return Object.freeze({ headerLength: dataStart - 8, dataStart, metadata, tensors: new Map(entries.map((e) => [e.name, e])) })
}

/** Convert one tensor's bytes (exactly entry.end - entry.begin of them) to float32, checked finite. */
export function decodeSafetensorsTensor(entry: SafetensorsEntry, bytes: Uint8Array, file: string | null = null): Float32Array {
  if (bytes.length !== entry.end - entry.begin) formatError(file, entry.begin, `read ${bytes.length} bytes of tensor ${JSON.stringify(entry.name)}, expected ${entry.end - entry.begin}`)
  const values = entry.dtype === 'F32' ? f32FromBytes(bytes) : entry.dtype === 'F16' ? f16FromBytes(bytes) : bf16FromBytes(bytes)
  checkFinite(values, file, entry.begin, `tensor ${JSON.stringify(entry.name)}`, SAFETENSORS_DTYPE_SIZE[entry.dtype])
  return values
}

/** Parse a whole file in memory: header plus every tensor as float32. */
export function parseSafetensors(bytes: Uint8Array, file: string | null = null): { header: SafetensorsHeader; tensors: Map<string, NamedTensor> } {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes: expected Uint8Array')
  const header = parseSafetensorsHeader(bytes, bytes.length, file)
  const tensors = new Map<string, NamedTensor>()
  for (const e of header.tensors.values()) {
    tensors.set(e.name, Object.freeze({ name: e.name, shape: e.shape, values: decodeSafetensorsTensor(e, bytes.subarray(e.begin, e.end), file) }))
  }
  return { header, tensors }
}

/**
 * The first key that repeats inside any one JSON object of `text` (already valid JSON), or null.
 * JSON.parse keeps the last of duplicate keys silently; the safetensors README disallows them.
 */
function duplicateKey(text: string): string | null {
  const frames: { keys: Set<string> | null; expectKey: boolean }[] = []
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]
    if (ch === '"') {
      let j = i + 1
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      const top = frames[frames.length - 1]
      if (top !== undefined && top.keys !== null && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string
        if (top.keys.has(key)) return key
        top.keys.add(key)
        top.expectKey = false
      }
      i = j
    } else if (ch === '{') frames.push({ keys: new Set(), expectKey: true })
    else if (ch === '[') frames.push({ keys: null, expectKey: false })
    else if (ch === '}' || ch === ']') frames.pop()
    else if (ch === ',') {
      const top = frames[frames.length - 1]
      if (top !== undefined && top.keys !== null) top.expectKey = true
    }
  }
  return null
}

// ---------------------------------------------------------------------------------------------
// writer

export interface SafetensorsInput {
  readonly name: string
  readonly dtype: SafetensorsDType
  readonly shape: readonly number[]
  /** float32 values, rounded to the dtype (F16, BF16: to nearest, ties to even) */
  readonly values: Float32Array
}

/**
 * Write a safetensors file as the reference serializer does: tensors sorted by dtype (wider first,
 * so every tensor is aligned to its element size) then name, `__metadata__` first in the header,
 * the header padded with spaces to a multiple of 8 bytes.
 */
export function writeSafetensors(tensors: readonly SafetensorsInput[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const rank: Record<SafetensorsDType, number> = { F32: 0, BF16: 1, F16: 2 }
  const sorted = [...tensors].sort((a, b) => rank[a.dtype] - rank[b.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown> // "__proto__" is a valid tensor name
  if (metadata !== undefined) header['__metadata__'] = { ...metadata }
  let offset = 0
  for (const t of sorted) {
    if (t.name === '__metadata__' || t.name in header) throw new RangeError(`tensor name ${JSON.stringify(t.name)} is reserved or repeated`)
    if (t.values.length !== product(t.shape)) throw new RangeError(`${t.name}: ${t.values.length} values for shape [${t.shape.join(', ')}]`)
    const size = t.values.length * SAFETENSORS_DTYPE_SIZE[t.dtype]
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] }
    offset += size
  }
  let json = new TextEncoder().encode(JSON.stringify(header))
  const padded = Math.ceil(json.length / 8) * 8
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20)
    p.set(json)
    json = p
  }
  const out = new Uint8Array(8 + json.length + offset)
  const view = new DataView(out.buffer)
  view.setUint32(0, json.length, true)
  out.set(json, 8)
  let at = 8 + json.length
  const bits = new Uint32Array(1)
  const f = new Float32Array(bits.buffer)
  for (const t of sorted) {
    for (let i = 0; i < t.values.length; i++) {
      const v = t.values[i] as number
      if (t.dtype === 'F32') {
        view.setFloat32(at, v, true)
        at += 4
        continue
      }
      f[0] = v
      const b = bits[0] as number
      const h = t.dtype === 'F16' ? f32BitsToF16Bits(b) : bf16Bits(b)
      view.setUint16(at, h, true)
      at += 2
    }
  }
  if (at !== out.length) throw new ModelFormatError(null, at, 'writer bug: data length mismatch')
  return out
}

/** float32 bits -> bfloat16 bits, round to nearest, ties to even; NaN stays a (quiet) NaN. */
function bf16Bits(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff
}
