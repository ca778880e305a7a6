/**
 * Lossy storage conversions: float32 -> int8 (symmetric, one scale per output channel) and
 * float32 -> fp16, plus the exact inverses. CPU reference path, llama2.c style: primitives write
 * into an output argument given first and allocate nothing; the wrappers `toInt8`/`fromInt8`/`toF16`/`fromF16`
 * allocate for convenience.
 *
 * int8, per row r of an (M, N) row-major matrix W:
 *   scale[r] = fround(max_c |W[r,c]| / 127)        (stored as float32)
 *   q[r,c]   = clamp(round(W[r,c] / scale[r]), -127, 127)
 *   W'[r,c]  = q[r,c] * scale[r]
 * Guarantee, in exact arithmetic: |W[r,c] - q[r,c] * scale[r]| <= scale[r] / 2. float64 evaluates
 * that check exactly here (q * scale needs at most 8 + 24 bits, and the difference is a multiple
 * of ulp(scale)/2 below 2^33 ulps), so after rounding we fix q up by +-1 whenever the check fails.
 * An all-zero row gets scale 0 and q 0. Where max/127 underflows into float32 subnormals the
 * rounded scale can be too small for the bound (max > 127.5 * scale); we then step the scale up
 * one float32 ulp at a time until it holds, so the guarantee covers every finite input. At the
 * top of the range the scale may instead step down one ulp so that 127 * scale stays finite.
 *
 * NaN and infinities are refused with RuleError E_NONFINITE, `field` = the element index.
 *
 * @module
 */
import { reject } from '../errors.ts'
import { af32, aint } from '../assert.ts'
import { F16_INF, f16BitsToF32Bits, f32BitsToF16Bits } from './f16.ts'

/** Largest int8 magnitude used; -128 is never produced (symmetric range). */
export const INT8_QMAX = 127

// ---------------------------------------------------------------------------- utilities

const scratchF32 = /* @__PURE__ */ new Float32Array(1)
const scratchU32 = /* @__PURE__ */ new Uint32Array(scratchF32.buffer)

/** Next float32 above a non-negative finite float32. */
function nextUpF32(x: number): number {
  scratchF32[0] = x
  scratchU32[0] = scratchU32[0]! + 1
  return scratchF32[0]!
}

/** Next float32 below a positive finite float32. */
function nextDownF32(x: number): number {
  scratchF32[0] = x
  scratchU32[0] = scratchU32[0]! - 1
  return scratchF32[0]!
}

/** Bit view of a Float32Array (always 4-aligned, so never a copy). */
function bitsOf(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length)
}

/** Throws E_NONFINITE at the first NaN / infinity of x. */
export function assertFinite(x: Float32Array, field = ''): void {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) reject('E_NONFINITE', `${field}${i}`, `element ${i} is ${x[i]}`)
  }
}

// ---------------------------------------------------------------------------- int8

/**
 * Symmetric per-row int8 quantization.
 * outQ (rows, cols) row-major, outScales (rows), w (rows, cols) row-major.
 */
export function quantizeInt8(outQ: Int8Array, outScales: Float32Array, w: Float32Array, rows: number, cols: number): void {
  aint(rows, 'rows', 1)
  aint(cols, 'cols', 1)
  af32(w, 'w')
  af32(outScales, 'outScales')
  if (!(outQ instanceof Int8Array)) throw new TypeError('outQ: expected Int8Array')
  const n = rows * cols
  if (w.length !== n) throw new RangeError(`w: expected ${n} elements (rows*cols), got ${w.length}`)
  if (outQ.length !== n) throw new RangeError(`outQ: expected ${n} elements, got ${outQ.length}`)
  if (outScales.length !== rows) throw new RangeError(`outScales: expected ${rows} elements, got ${outScales.length}`)
  assertFinite(w)
  for (let r = 0; r < rows; r++) {
    const base = r * cols
    let max = 0
    for (let c = 0; c < cols; c++) {
      const a = Math.abs(w[base + c]!)
      if (a > max) max = a
    }
    let scale = Math.fround(max / INT8_QMAX)
    if (max > 0 && scale === 0) scale = nextUpF32(0)
    while (max > 127.5 * scale) scale = nextUpF32(scale) // only in the subnormal range; see module doc
    // At the top of the float32 range, rounding max/127 up can make 127 * scale overflow to
    // infinity on dequantization; one ulp down keeps max <= 127.5 * scale with room to spare.
    while (!Number.isFinite(Math.fround(INT8_QMAX * scale))) scale = nextDownF32(scale)
    outScales[r] = scale
    if (scale === 0) {
      outQ.fill(0, base, base + cols)
      continue
    }
    const half = scale / 2 // exact: scale is a float32, float64 has room for one more bit below it
    for (let c = 0; c < cols; c++) {
      const x = w[base + c]!
      let q = Math.round(x / scale)
      if (q > INT8_QMAX) q = INT8_QMAX
      else if (q < -INT8_QMAX) q = -INT8_QMAX
      const err = x - q * scale // exact in float64 (see module doc)
      if (err > half && q < INT8_QMAX) q++
      else if (err < -half && q > -INT8_QMAX) q--
      if (Math.abs(x - q * scale) > half) throw new Error(`quantizeInt8: bound violated at ${base + c} (bug)`)
      outQ[base + c] = q
    }
  }
}

/** Dequantize row-major int8: out (rows, cols) = q (rows, cols) * scales (rows), rounded to float32. */
export function dequantizeInt8(out: Float32Array, q: Int8Array, scales: Float32Array, rows: number, cols: number): void {
  const n = rows * cols
  if (out.length !== n || q.length !== n || scales.length !== rows) {
    throw new RangeError(`dequantizeInt8: out/q must hold ${n} elements and scales ${rows}`)
  }
  for (let r = 0; r < rows; r++) {
    const s = scales[r]!
    const base = r * cols
    for (let c = 0; c < cols; c++) out[base + c] = q[base + c]! * s
  }
}

/** Allocating wrapper: { q (rows, cols), scales (rows) }. */
export function toInt8(w: Float32Array, rows: number, cols: number): { q: Int8Array; scales: Float32Array } {
  aint(rows, 'rows', 1)
  aint(cols, 'cols', 1)
  const q = new Int8Array(rows * cols)
  const scales = new Float32Array(rows)
  quantizeInt8(q, scales, w, rows, cols)
  return { q, scales }
}

/** Allocating wrapper: (rows, cols) float32. */
export function fromInt8(q: Int8Array, scales: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols)
  dequantizeInt8(out, q, scales, rows, cols)
  return out
}

// ---------------------------------------------------------------------------- fp16

/**
 * float32 -> binary16 bits, element-wise, round to nearest even. out (n), x (n).
 * Refuses NaN / infinities and finite values that would overflow to infinity (|x| >= 65520)
 * with E_NONFINITE at that element's index.
 */
export function quantizeF16(out: Uint16Array, x: Float32Array): void {
  af32(x, 'x')
  if (!(out instanceof Uint16Array)) throw new TypeError('out: expected Uint16Array')
  if (out.length !== x.length) throw new RangeError(`out: expected ${x.length} elements, got ${out.length}`)
  const bits = bitsOf(x)
  for (let i = 0; i < bits.length; i++) {
    const h = f32BitsToF16Bits(bits[i]!)
    if ((h & F16_INF) === F16_INF) {
      reject('E_NONFINITE', String(i), `element ${i} = ${x[i]} is not finite in fp16 (max 65504)`)
    }
    out[i] = h
  }
}

/** binary16 bits -> float32, element-wise and exact. out (n), h (n). */
export function dequantizeF16(out: Float32Array, h: Uint16Array): void {
  if (out.length !== h.length) throw new RangeError(`out: expected ${h.length} elements, got ${out.length}`)
  const bits = bitsOf(out)
  for (let i = 0; i < h.length; i++) bits[i] = f16BitsToF32Bits(h[i]!)
}

/** Allocating wrapper for quantizeF16. */
export function toF16(x: Float32Array): Uint16Array {
  af32(x, 'x')
  const out = new Uint16Array(x.length)
  quantizeF16(out, x)
  return out
}

/** Allocating wrapper for dequantizeF16. */
export function fromF16(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length)
  dequantizeF16(out, h)
  return out
}
