/**
 * IEEE 754 binary16 <-> binary32 bit conversion, written out because Node 20 lacks
 * `Math.f16round` / `Float16Array`.
 *
 * binary16 bits: `s eeeee mmmmmmmmmm` (1 sign, 5 exponent with bias 15, 10 mantissa).
 * binary32 bits: `s eeeeeeee mmmmmmmmmmmmmmmmmmmmmmm` (bias 127, 23 mantissa).
 * f32 -> f16 rounds to nearest, ties to even, into subnormals (down to 2^-24 = 0x0001), and
 * overflows to infinity from 65520 up (65504 = 0x7bff is the largest finite half). Callers that
 * store tensors refuse that overflow (see `quantizeF16` in quant.ts); these scalar functions only
 * convert.
 *
 * @module
 */

/** Scratch for reading a float's bits; allocated once (llama2.c: no allocation per call). */
const scratchF32 = /* @__PURE__ */ new Float32Array(1)
const scratchU32 = /* @__PURE__ */ new Uint32Array(scratchF32.buffer)

/** Largest finite binary16 value, 0x7bff. */
export const F16_MAX = 65504
/** binary16 bit pattern of +Infinity. */
export const F16_INF = 0x7c00

/**
 * binary32 bits (as an unsigned 32-bit number) -> binary16 bits, round to nearest even.
 * NaN maps to a quiet NaN with the same sign; anything at or above 65520 in magnitude to infinity.
 */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  const mant = bits & 0x7fffff
  if (exp === 0xff) return sign | F16_INF | (mant !== 0 ? 0x200 | (mant >>> 13) : 0)
  const e = exp - 127 + 15 // rebiased exponent
  if (e >= 31) return sign | F16_INF
  if (e <= 0) {
    // Subnormal (or zero) half: value = m * 2^(exp-150) with the implicit bit; the half's unit is
    // 2^-24, so shift right by 126 - exp = 14 - e. Below 2^-25 everything rounds to (signed) zero.
    if (e < -10) return sign
    const m = mant | 0x800000
    const shift = 14 - e // 14..24
    let half = m >>> shift
    const rem = m & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (rem > halfway || (rem === halfway && (half & 1) !== 0)) half++ // may carry into 0x0400: correct
    return sign | half
  }
  let half = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) !== 0)) half++ // carry may reach 0x7c00 = infinity
  return sign | half
}

/** binary16 bits -> binary32 bits (exact: every half is a float). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0
  if (mant === 0) return sign >>> 0
  // Subnormal half m * 2^-24: normalise so the leading 1 becomes the implicit bit.
  let m = mant
  let e = 113 // f32 biased exponent of 2^-14, decremented per shift
  while ((m & 0x400) === 0) {
    m <<= 1
    e--
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0
}

/** A number, rounded to float32 first, as binary16 bits. */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x
  return f32BitsToF16Bits(scratchU32[0]!)
}

/** binary16 bits as a number. */
export function f16BitsToF32(h: number): number {
  scratchU32[0] = f16BitsToF32Bits(h)
  return scratchF32[0]!
}
