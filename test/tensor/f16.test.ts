import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { f16BitsToF32, f32ToF16Bits } from '../../src/tensor/f16.ts'
import { fromF16, toF16 } from '../../src/tensor/quant.ts'
import { assertRule } from './fixtures/tensors.ts'

/** IEEE 754 binary16 value from its fields, written from the definition (independent of f16.ts). */
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN
  if (e === 0) return s * m * 2 ** -24
  return s * (1 + m / 1024) * 2 ** (e - 15)
}

describe('f16 bit conversion', () => {
  test('known bit patterns', () => {
    const known: [number, number][] = [
      [1.0, 0x3c00],
      [-2.0, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
      [0.333251953125, 0x3555],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [0, 0x0000]
    ]
    for (const [x, h] of known) {
      assert.equal(f32ToF16Bits(x), h, `f32ToF16Bits(${x})`)
      assert.equal(f16BitsToF32(h), x, `f16BitsToF32(0x${h.toString(16)})`)
    }
    assert.equal(f32ToF16Bits(-0), 0x8000)
    assert.ok(Object.is(f16BitsToF32(0x8000), -0))
    assert.ok(Number.isNaN(f16BitsToF32(0x7e00)))
    assert.equal(f32ToF16Bits(NaN) & 0x7c00, 0x7c00)
    assert.notEqual(f32ToF16Bits(NaN) & 0x3ff, 0)
  })

  test('rounding: ties to even, overflow to infinity, underflow to zero', () => {
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00, '1 + half ulp: tie, even is 1.0')
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02, '1 + 1.5 ulp: tie, even is 1 + 2 ulp')
    assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01, 'just above the tie rounds up')
    assert.equal(f32ToF16Bits(65519), 0x7bff, 'below 65520 stays finite')
    assert.equal(f32ToF16Bits(65520), 0x7c00, '65520 ties to even = infinity')
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000, 'half the smallest subnormal ties to 0')
    assert.equal(f32ToF16Bits(-(2 ** -25)), 0x8000)
    assert.equal(f32ToF16Bits(2 ** -25 + 2 ** -40), 0x0001, 'above the tie rounds up to 2^-24')
    assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002, '1.5 subnormal ulps ties to even 2')
    assert.equal(f32ToF16Bits(2 ** -149), 0x0000, 'float32 subnormals vanish')
  })

  test('all 65536 halves: decode matches the definition, and finite ones round-trip through float32', () => {
    let finite = 0
    for (let h = 0; h < 0x10000; h++) {
      const want = halfValue(h)
      const got = f16BitsToF32(h)
      if (Number.isNaN(want)) {
        assert.ok(Number.isNaN(got), `0x${h.toString(16)}`)
        continue
      }
      assert.ok(Object.is(got, h === 0x8000 ? -0 : want) || got === want, `0x${h.toString(16)}: ${got} != ${want}`)
      if (Number.isFinite(want)) {
        finite++
        assert.equal(Math.fround(got), got, 'every half is a float32')
        const back = f32ToF16Bits(got)
        if (back !== h) assert.fail(`0x${h.toString(16)} -> ${got} -> 0x${back.toString(16)}`)
      }
    }
    assert.equal(finite, 65536 - 2048)
  })

  test('every midpoint between adjacent positive halves rounds to the even neighbour', () => {
    for (let h = 0; h < 0x7bff; h++) {
      const lo = halfValue(h)
      const hi = halfValue(h + 1)
      const mid = (lo + hi) / 2 // exact in float32: needs 12 significant bits
      assert.equal(Math.fround(mid), mid)
      const even = (h & 1) === 0 ? h : h + 1
      if (f32ToF16Bits(mid) !== even) assert.fail(`midpoint of 0x${h.toString(16)}: got 0x${f32ToF16Bits(mid).toString(16)}`)
      if (f32ToF16Bits(-mid) !== (even | 0x8000)) assert.fail(`negative midpoint of 0x${h.toString(16)}`)
      // One float32 ulp either side decides by distance.
      const below = Math.fround(mid - mid * 2 ** -23)
      const above = Math.fround(mid + mid * 2 ** -23)
      if (below > lo && f32ToF16Bits(below) !== h) assert.fail(`below midpoint of 0x${h.toString(16)}`)
      if (f32ToF16Bits(above) !== h + 1) assert.fail(`above midpoint of 0x${h.toString(16)}`)
    }
  })

  test('toF16 refuses values that overflow to infinity, with the element index', () => {
    const x = new Float32Array([1, 2, 65519, 65520, 3])
    assertRule(() => toF16(x), 'E_NONFINITE', '3')
    assertRule(() => toF16(new Float32Array([0, NaN])), 'E_NONFINITE', '1')
    assertRule(() => toF16(new Float32Array([-Infinity])), 'E_NONFINITE', '0')
    assert.deepEqual([...fromF16(toF16(new Float32Array([1, -2, 65504])))], [1, -2, 65504])
  })

  test('argument misuse is a TypeError / RangeError naming the argument', () => {
    assert.throws(() => toF16([1, 2] as unknown as Float32Array), (e: Error) => e instanceof TypeError && /x:/.test(e.message))
  })
})
