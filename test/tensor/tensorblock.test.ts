import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { f32ToF16Bits } from '../../src/tensor/f16.ts'
import { fromF16, toF16, toInt8 } from '../../src/tensor/quant.ts'
import { encodeTBlockHeader, type DType, type TBlockHeader } from '../../src/tensor/tblock.ts'
import { decodeTensorBlock, dequantize, encodeTensorBlock, type TensorView } from '../../src/tensor/tensorblock.ts'
import { assertRule } from './fixtures/tensors.ts'

/** A shape of rank 1..3 and matching finite values (fp16-safe when `f16`). */
const tensor = (f16: boolean) =>
  fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 3 }).chain((shape) => {
    const n = shape.reduce((a, b) => a * b, 1)
    return fc.record({
      shape: fc.constant(shape),
      values: fc.float32Array({
        minLength: n,
        maxLength: n,
        noNaN: true,
        noDefaultInfinity: true,
        ...(f16 ? { min: -65504, max: 65504 } : {})
      })
    })
  })

/** Check a decoded int8 view against the source values: q within range, error <= scale/2. */
function checkInt8(v: TensorView, values: Float32Array): void {
  const { rows, cols } = v.header
  const q = v.data as Int8Array
  for (let i = 0; i < values.length; i++) {
    const s = v.scales![Math.floor(i / cols)]!
    assert.ok(Math.abs(values[i]! - q[i]! * s) <= s / 2)
  }
  assert.equal(q.length, rows * cols)
}

describe('TensorBlock', () => {
  test('property: fp32 round-trips bit-exactly', () => {
    fc.assert(
      fc.property(tensor(false), ({ shape, values }) => {
        const v = decodeTensorBlock(encodeTensorBlock(values, shape, 'fp32'))
        assert.equal(v.header.cols, shape[shape.length - 1])
        assert.equal(v.header.rows * v.header.cols, values.length)
        assert.equal(v.scales, null)
        const out = dequantize(v)
        for (let i = 0; i < values.length; i++) assert.ok(Object.is(out[i], values[i]))
      }),
      { numRuns: 300 }
    )
  })

  test('property: fp16 round-trips to the nearest half', () => {
    fc.assert(
      fc.property(tensor(true), ({ shape, values }) => {
        const v = decodeTensorBlock(encodeTensorBlock(values, shape, 'fp16'))
        const out = dequantize(v)
        for (let i = 0; i < values.length; i++) {
          assert.equal((v.data as Uint16Array)[i], f32ToF16Bits(values[i]!))
          // within half an fp16 ulp (2^-11 relative for normals, 2^-25 absolute for subnormals)
          const tol = Math.max(Math.abs(values[i]!) * 2 ** -11, 2 ** -25)
          assert.ok(Math.abs(out[i]! - values[i]!) <= tol, `${values[i]} -> ${out[i]}`)
        }
      }),
      { numRuns: 300 }
    )
  })

  test('property: int8 round-trips within scale/2', () => {
    fc.assert(
      fc.property(tensor(false), ({ shape, values }) => {
        const v = decodeTensorBlock(encodeTensorBlock(values, shape, 'int8'))
        assert.equal(v.header.quantization, 'int8_symmetric_per_channel')
        checkInt8(v, values)
        const out = dequantize(v)
        for (let i = 0; i < values.length; i++) {
          const s = v.scales![Math.floor(i / v.header.cols)]!
          assert.equal(out[i], Math.fround((v.data as Int8Array)[i]! * s))
        }
      }),
      { numRuns: 300 }
    )
  })

  test('shape -> matrix: rank 1 is one row, higher ranks fold into rows', () => {
    const v1 = decodeTensorBlock(encodeTensorBlock(new Float32Array(6), [6], 'fp32'))
    assert.deepEqual([v1.header.rows, v1.header.cols], [1, 6])
    const v4 = decodeTensorBlock(encodeTensorBlock(new Float32Array(120), [2, 3, 4, 5], 'fp16'))
    assert.deepEqual([v4.header.rows, v4.header.cols], [24, 5])
    assert.equal(v4.header.layout, 'row_major')
  })

  for (const dtype of ['fp32', 'fp16', 'int8'] as const) {
    test(`${dtype}: col_major blocks dequantize to row-major`, () => {
      const rows = 3
      const cols = 4
      const values = new Float32Array(rows * cols).map((_, i) => (i - 5) * 0.75)
      // Build a col_major block by hand: same header but layout 1, data transposed.
      const rowBlock = encodeTensorBlock(values, [rows, cols], dtype)
      const h = decodeTensorBlock(rowBlock).header
      const colBlock = rowBlock.slice()
      colBlock.set(encodeTBlockHeader({ ...h, layout: 'col_major' } as TBlockHeader), 0)
      const size = dtype === 'fp32' ? 4 : dtype === 'fp16' ? 2 : 1
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const from = h.dataOffset + (r * cols + c) * size
          const to = h.dataOffset + (c * rows + r) * size
          colBlock.set(rowBlock.subarray(from, from + size), to)
        }
      }
      const got = dequantize(decodeTensorBlock(colBlock))
      const want = dequantize(decodeTensorBlock(rowBlock))
      assert.deepEqual([...got], [...want])
      if (dtype === 'fp32') assert.deepEqual([...got], [...values])
    })
  }

  test('views alias aligned bytes and copy misaligned ones', () => {
    for (const dtype of ['fp32', 'fp16', 'int8'] as DType[]) {
      const values = new Float32Array(40).map((_, i) => i / 8)
      const block = encodeTensorBlock(values, [5, 8], dtype)
      const aligned = decodeTensorBlock(block)
      assert.equal(aligned.data.buffer, block.buffer, `${dtype} aligned view`)
      const shifted = new Uint8Array(block.length + 1)
      shifted.set(block, 1)
      const odd = decodeTensorBlock(shifted.subarray(1))
      if (dtype === 'int8') assert.equal(odd.data.buffer, shifted.buffer, 'int8 needs no alignment')
      else assert.notEqual(odd.data.buffer, shifted.buffer, `${dtype} misaligned copy`)
      if (odd.scales !== null) assert.notEqual(odd.scales.buffer, shifted.buffer)
      assert.deepEqual([...dequantize(odd)], [...dequantize(aligned)])
    }
  })

  test('non-finite data or scales in a block are refused with E_NONFINITE', () => {
    const fp32 = encodeTensorBlock(new Float32Array([1, 2, 3, 4]), [2, 2], 'fp32')
    new DataView(fp32.buffer).setFloat32(256 + 8, NaN, true)
    assertRule(() => decodeTensorBlock(fp32), 'E_NONFINITE', 'data[2]')
    const fp16 = encodeTensorBlock(new Float32Array([1, 2, 3, 4]), [2, 2], 'fp16')
    new DataView(fp16.buffer).setUint16(256 + 6, 0xfc00, true)
    assertRule(() => decodeTensorBlock(fp16), 'E_NONFINITE', 'data[3]')
    const int8 = encodeTensorBlock(new Float32Array([1, 2, 3, 4]), [2, 2], 'int8')
    for (const bad of [Infinity, NaN, 3e38, -3e38]) {
      const b = int8.slice()
      new DataView(b.buffer).setFloat32(128 + 4, bad, true)
      assertRule(() => decodeTensorBlock(b), 'E_NONFINITE', 'scales[1]')
    }
    // 127 * scale fits but 128 * scale does not: only q = -128 is refused.
    const s = Math.fround(3.4028234663852886e38 / 127.9)
    const b = int8.slice()
    new DataView(b.buffer).setFloat32(128 + 4, s, true)
    b[256 + 2] = 0x81 // q = -127
    b[256 + 3] = 0x7f // q = 127
    const v = decodeTensorBlock(b)
    assert.ok(dequantize(v).every(Number.isFinite))
    b[256 + 3] = 0x80 // q = -128
    assertRule(() => decodeTensorBlock(b), 'E_NONFINITE', 'data[3]')
  })

  test('encoding checks its arguments', () => {
    assert.throws(() => encodeTensorBlock(new Float32Array(5), [2, 3], 'fp32'), /values: shape \[2, 3\] needs 6/)
    assert.throws(() => encodeTensorBlock(new Float32Array(0), [], 'fp32'), /shape: rank/)
    assert.throws(() => encodeTensorBlock(new Float32Array(2), [2, 0.5] as number[], 'fp32'), /shape\[1\]/)
    assert.throws(() => encodeTensorBlock(new Float32Array(2), [2], 'fp8' as DType), /dtype/)
    assert.throws(() => encodeTensorBlock(new Float32Array(1), [2 ** 16, 2 ** 15], 'int8'), /2\^30/)
  })

  test('wrappers agree with the block encoder', () => {
    const x = new Float32Array([0.1, -2.5, 7, 1e-3, 300, -0])
    const v16 = decodeTensorBlock(encodeTensorBlock(x, [2, 3], 'fp16'))
    assert.deepEqual([...(v16.data as Uint16Array)], [...toF16(x)])
    assert.deepEqual([...dequantize(v16)], [...fromF16(toF16(x))])
    const v8 = decodeTensorBlock(encodeTensorBlock(x, [2, 3], 'int8'))
    const q = toInt8(x, 2, 3)
    assert.deepEqual([...(v8.data as Int8Array)], [...q.q])
    assert.deepEqual([...v8.scales!], [...q.scales])
  })
})
