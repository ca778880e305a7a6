import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { INT8_QMAX, fromInt8, toInt8 } from '../../src/tensor/quant.ts'
import { encodeTensorBlock } from '../../src/tensor/tensorblock.ts'
import { assertRule } from './fixtures/tensors.ts'

/** A finite float32 matrix: (rows, cols) plus its row-major values. */
const matrix = (extreme: boolean, limit = 1e6) =>
  fc.record({ rows: fc.integer({ min: 1, max: 6 }), cols: fc.integer({ min: 1, max: 12 }) }).chain(({ rows, cols }) =>
    fc.record({
      rows: fc.constant(rows),
      cols: fc.constant(cols),
      w: fc.float32Array({
        minLength: rows * cols,
        maxLength: rows * cols,
        noNaN: true,
        noDefaultInfinity: true,
        ...(extreme ? {} : { min: -limit, max: limit })
      })
    })
  )

function checkBound(w: Float32Array, q: Int8Array, scales: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const s = scales[r]!
    assert.ok(Number.isFinite(s) && s >= 0, `scale ${s}`)
    assert.ok(Number.isFinite(Math.fround(127 * s)), `127 * scale ${s} overflows`)
    let max = 0
    for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(w[r * cols + c]!))
    if (max === 0) assert.equal(s, 0)
    // The documented rule, except where max/127 underflows into float32 subnormals or 127 * scale
    // would round past the largest float32.
    if (max / INT8_QMAX >= 2 ** -126 && max < 3.4e38) assert.equal(s, Math.fround(max / INT8_QMAX))
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c
      const qi = q[i]!
      assert.ok(qi >= -INT8_QMAX && qi <= INT8_QMAX, `q ${qi}`)
      // float64: q*s is exact, and so is the difference (see quant.ts)
      assert.ok(Number.isFinite(Math.fround(qi * s)), 'dequantized value is finite')
      const err = Math.abs(w[i]! - qi * s)
      if (err > s / 2) assert.fail(`row ${r} col ${c}: |${w[i]} - ${qi}*${s}| = ${err} > ${s / 2}`)
    }
  }
}

describe('int8 quantization', () => {
  test('property: |w - q*scale| <= scale/2 for every element (moderate values)', () => {
    fc.assert(
      fc.property(matrix(false), ({ rows, cols, w }) => {
        const { q, scales } = toInt8(w, rows, cols)
        checkBound(w, q, scales, rows, cols)
        const back = fromInt8(q, scales, rows, cols)
        for (let i = 0; i < w.length; i++) assert.equal(back[i], Math.fround(q[i]! * scales[Math.floor(i / cols)]!))
      }),
      { numRuns: 500 }
    )
  })

  test('property: bound holds over the whole float32 range, subnormals included', () => {
    fc.assert(
      fc.property(matrix(true), ({ rows, cols, w }) => {
        const { q, scales } = toInt8(w, rows, cols)
        checkBound(w, q, scales, rows, cols)
      }),
      { numRuns: 500 }
    )
  })

  test('edge rows: all zero, one subnormal, max float32, exact ties', () => {
    const cases: number[][] = [
      [0, 0, -0, 0],
      [2 ** -149, 0, -(2 ** -149)],
      [3 * 2 ** -149, 2 ** -149, 2 * 2 ** -149],
      [1e-40, -3e-41, 7e-42], // scale underflows: the bumped scale must still bound the error
      [3.4028234663852886e38, -3.4028234663852886e38, 1],
      [127, 0.5, 1.5, -0.5, -126.5], // scale 1: ties at .5 are within scale/2 either way
      [1, 1 / 3, 2 / 3, 0.001]
    ]
    for (const row of cases) {
      const w = new Float32Array(row)
      const { q, scales } = toInt8(w, 1, w.length)
      checkBound(w, q, scales, 1, w.length)
    }
    // max/127 = 1.496 * 2^-149 rounds down to 2^-149, too small for 190 * 2^-149 (> 127.5 ulps):
    // the scale is stepped up to 2^-148.
    const tiny = toInt8(new Float32Array([190 * 2 ** -149, -(2 ** -149)]), 1, 2)
    assert.equal(tiny.scales[0], 2 ** -148)
    assert.deepEqual([...tiny.q], [95, 0]) // -0.5 ulps is a tie: 0 is within scale/2
    const zero = toInt8(new Float32Array(4), 2, 2)
    assert.deepEqual([...zero.scales], [0, 0])
    assert.deepEqual([...zero.q], [0, 0, 0, 0])
  })

  test('property: NaN / +-Infinity anywhere is refused with E_NONFINITE naming that index', () => {
    fc.assert(
      fc.property(
        matrix(false, 60000), // fp16-safe, so only the planted value is refused
        fc.nat(),
        fc.constantFrom(NaN, Infinity, -Infinity),
        fc.constantFrom('int8', 'fp16', 'fp32'),
        ({ rows, cols, w }, at, bad, dtype) => {
          const i = at % w.length
          const x = new Float32Array(w)
          x[i] = bad
          if (dtype === 'int8') assertRule(() => toInt8(x, rows, cols), 'E_NONFINITE', String(i))
          else assertRule(() => encodeTensorBlock(x, [rows, cols], dtype), 'E_NONFINITE', String(i))
        }
      ),
      { numRuns: 300 }
    )
  })

  test('argument misuse is a TypeError / RangeError naming the argument', () => {
    assert.throws(() => toInt8(new Float32Array(6), 2, 4), /w: expected 8/)
    assert.throws(() => toInt8(new Float32Array(6), 0, 6), (e: Error) => e instanceof RangeError && e.message.startsWith('rows'))
    assert.throws(() => toInt8(new Float64Array(6) as unknown as Float32Array, 2, 3), (e: Error) => e instanceof TypeError && e.message.startsWith('w'))
  })
})
