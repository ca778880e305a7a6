/**
 * Internal: bounds-checked little-endian reads for the model importers.
 *
 * Every read names what it reads, so a short file fails with
 * `truncated at byte N: expected K more bytes of <what>` instead of a DataView RangeError.
 *
 * @module
 */
import { f16BitsToF32Bits } from '../tensor/f16.ts'
import { ModelFormatError, formatError } from './errors.ts'

/** True on little-endian hosts, where float32 bytes can be copied into a Float32Array as they are. */
const LITTLE_ENDIAN = /* @__PURE__ */ new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** A cursor over one file's bytes. */
export class ByteReader {
  readonly bytes: Uint8Array
  readonly file: string | null
  private readonly view: DataView
  /** Next byte to read. */
  pos = 0

  constructor(bytes: Uint8Array, file: string | null) {
    this.bytes = bytes
    this.file = file
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  get remaining(): number {
    return this.bytes.length - this.pos
  }

  /** Throw the truncation error unless `n` more bytes of `what` are there. */
  need(n: number, what: string): void {
    if (n > this.remaining) {
      throw new ModelFormatError(this.file, this.bytes.length, `truncated at byte ${this.bytes.length}: expected ${n - this.remaining} more bytes of ${what}`)
    }
  }

  i32(what: string): number {
    this.need(4, what)
    const v = this.view.getInt32(this.pos, true)
    this.pos += 4
    return v
  }

  u32(what: string): number {
    this.need(4, what)
    const v = this.view.getUint32(this.pos, true)
    this.pos += 4
    return v
  }

  u8(what: string): number {
    this.need(1, what)
    return this.bytes[this.pos++] as number
  }

  f32(what: string): number {
    this.need(4, what)
    const v = this.view.getFloat32(this.pos, true)
    this.pos += 4
    return v
  }

  /** `n` bytes as a view (no copy). */
  take(n: number, what: string): Uint8Array {
    this.need(n, what)
    const out = this.bytes.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  /** `n` float32 values, copied, checked finite. */
  f32s(n: number, what: string): Float32Array {
    const at = this.pos
    const out = f32FromBytes(this.take(n * 4, what))
    checkFinite(out, this.file, at, what, 4)
    return out
  }

  /** Throw unless every byte was read. */
  end(what: string): void {
    if (this.remaining !== 0) formatError(this.file, this.pos, `${this.remaining} trailing bytes after ${what} (file is ${this.bytes.length} bytes, expected ${this.pos})`)
  }
}

/** Little-endian float32 bytes (length a multiple of 4) -> a new Float32Array. */
export function f32FromBytes(bytes: Uint8Array): Float32Array {
  const n = bytes.length >>> 2
  // new Uint8Array(...) copies; Buffer#slice would be a view into a shared buffer.
  if (LITTLE_ENDIAN) return new Float32Array(new Uint8Array(bytes.subarray(0, n * 4)).buffer)
  const out = new Float32Array(n)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true)
  return out
}

/** Little-endian binary16 bytes -> float32 values (exact). */
export function f16FromBytes(bytes: Uint8Array): Float32Array {
  const n = bytes.length >>> 1
  const out = new Float32Array(n)
  const bits = new Uint32Array(out.buffer)
  for (let i = 0; i < n; i++) bits[i] = f16BitsToF32Bits((bytes[2 * i] as number) | ((bytes[2 * i + 1] as number) << 8))
  return out
}

/** Little-endian bfloat16 bytes -> float32 values (exact: bf16 is the top half of a float32). */
export function bf16FromBytes(bytes: Uint8Array): Float32Array {
  const n = bytes.length >>> 1
  const out = new Float32Array(n)
  const bits = new Uint32Array(out.buffer)
  for (let i = 0; i < n; i++) bits[i] = (((bytes[2 * i] as number) | ((bytes[2 * i + 1] as number) << 8)) << 16) >>> 0
  return out
}

/** Throw unless every value is finite; `at` is the byte offset of values[0], `size` bytes per value. */
export function checkFinite(values: Float32Array, file: string | null, at: number | null, what: string, size: number): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      formatError(file, at === null ? null : at + i * size, `${what}[${i}] is ${values[i]}: tensors must be finite`)
    }
  }
}

/** Product of dims as a float: exact below 2^53, and still larger than any file above it. */
export function product(dims: readonly number[]): number {
  let n = 1
  for (const d of dims) n *= d
  return n
}
