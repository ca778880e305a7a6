import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import type { RuleCode } from '../../src/errors.ts'
import {
  TBLOCK_HEADER_SIZE,
  align256,
  canonicalTBlockHeader,
  decodeTBlockHeader,
  encodeTBlockHeader,
  tblockByteLength,
  type DType,
  type TBlockHeader
} from '../../src/tensor/tblock.ts'
import { decodeTensorBlock, encodeTensorBlock } from '../../src/tensor/tensorblock.ts'
import { assertRule } from './fixtures/tensors.ts'

/** Any valid header, canonical or not. */
const header: fc.Arbitrary<TBlockHeader> = fc
  .record({
    dtype: fc.constantFrom<DType>('fp16', 'int8', 'fp32'),
    rows: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 2 ** 30 })),
    layout: fc.constantFrom('row_major' as const, 'col_major' as const),
    scaleGap: fc.integer({ min: 0, max: 1000 }),
    dataGap: fc.integer({ min: 0, max: 1000 })
  })
  .chain((h) =>
    fc.integer({ min: 1, max: Math.floor(2 ** 30 / h.rows) }).map((cols): TBlockHeader => {
      const quantized = h.dtype === 'int8'
      const scaleOffset = quantized ? 128 + 4 * h.scaleGap : 0
      const dataOffset = align256(quantized ? scaleOffset + 4 * h.rows : 128) + 256 * h.dataGap
      return {
        version: 1,
        dtype: h.dtype,
        rows: h.rows,
        cols,
        layout: h.layout,
        quantization: quantized ? 'int8_symmetric_per_channel' : 'none',
        scaleOffset,
        dataOffset,
        merkleOffset: 0
      }
    })
  )

const u32 = (h: Uint8Array, off: number, v: number) => new DataView(h.buffer, h.byteOffset).setUint32(off, v, true)
const u64 = (h: Uint8Array, off: number, v: bigint) => new DataView(h.buffer, h.byteOffset).setBigUint64(off, v, true)

describe('TBLOCK01 header', () => {
  test('property: encode -> decode round-trips every valid header', () => {
    fc.assert(
      fc.property(header, (h) => {
        const bytes = encodeTBlockHeader(h)
        assert.equal(bytes.length, TBLOCK_HEADER_SIZE)
        assert.deepEqual({ ...decodeTBlockHeader(bytes) }, h)
        assert.deepEqual(encodeTBlockHeader(decodeTBlockHeader(bytes)), bytes)
      }),
      { numRuns: 1000 }
    )
  })

  test('byte layout matches the table', () => {
    const h = canonicalTBlockHeader('int8', 3, 5)
    const b = encodeTBlockHeader(h)
    const dv = new DataView(b.buffer)
    assert.equal(new TextDecoder().decode(b.subarray(0, 8)), 'TBLOCK01')
    assert.deepEqual(
      [dv.getUint32(8, true), dv.getUint32(12, true), dv.getBigUint64(16, true), dv.getBigUint64(24, true)],
      [1, 2, 3n, 5n]
    )
    assert.deepEqual([dv.getUint32(32, true), dv.getUint32(36, true)], [0, 1])
    assert.deepEqual([dv.getBigUint64(40, true), dv.getBigUint64(48, true), dv.getBigUint64(56, true)], [128n, 256n, 0n])
    assert.ok(b.subarray(64).every((x) => x === 0))
    assert.equal(canonicalTBlockHeader('fp16', 100, 7).dataOffset, 256)
    assert.equal(canonicalTBlockHeader('int8', 100, 7).dataOffset, 768) // align256(128 + 400)
    assert.equal(tblockByteLength(canonicalTBlockHeader('fp32', 2, 3)), 256 + 24)
  })

  // Each corruption keeps every other field valid, so it must be refused with this field's code.
  type Corruption = [name: string, code: RuleCode, field: string, apply: (b: Uint8Array) => void]
  const corruptions = (dtype: DType): Corruption[] => {
    const list: Corruption[] = [
      ['magic', 'E_TB_MAGIC', 'magic', (b) => (b[0] = 0x74)],
      ['magic last byte', 'E_TB_MAGIC', 'magic', (b) => (b[7] = 0x32)],
      ['version 0', 'E_TB_VERSION', 'version', (b) => u32(b, 8, 0)],
      ['version 2', 'E_TB_VERSION', 'version', (b) => u32(b, 8, 2)],
      ['version max', 'E_TB_VERSION', 'version', (b) => u32(b, 8, 0xffffffff)],
      ['dtype 0', 'E_TB_DTYPE', 'dtype', (b) => u32(b, 12, 0)],
      ['dtype fp8', 'E_TB_DTYPE', 'dtype', (b) => u32(b, 12, 3)],
      ['dtype 5', 'E_TB_DTYPE', 'dtype', (b) => u32(b, 12, 5)],
      ['dtype max', 'E_TB_DTYPE', 'dtype', (b) => u32(b, 12, 0xffffffff)],
      ['rows 0', 'E_TB_SHAPE', 'rows', (b) => u64(b, 16, 0n)],
      ['rows 2^30+1', 'E_TB_SHAPE', 'rows', (b) => u64(b, 16, 2n ** 30n + 1n)],
      ['rows 2^53', 'E_TB_SHAPE', 'rows', (b) => u64(b, 16, 2n ** 53n)],
      ['rows 2^64-1', 'E_TB_SHAPE', 'rows', (b) => u64(b, 16, 2n ** 64n - 1n)],
      ['cols 0', 'E_TB_SHAPE', 'cols', (b) => u64(b, 24, 0n)],
      ['cols 2^64-1', 'E_TB_SHAPE', 'cols', (b) => u64(b, 24, 2n ** 64n - 1n)],
      ['rows*cols > 2^30', 'E_TB_SHAPE', 'cols', (b) => u64(b, 24, 2n ** 29n)],
      ['layout 2', 'E_TB_LAYOUT', 'layout', (b) => u32(b, 32, 2)],
      ['layout max', 'E_TB_LAYOUT', 'layout', (b) => u32(b, 32, 0xffffffff)],
      ['quantization 2', 'E_TB_QUANT', 'quantization', (b) => u32(b, 36, 2)],
      ['quantization flipped', 'E_TB_QUANT', 'quantization', (b) => u32(b, 36, dtype === 'int8' ? 0 : 1)],
      ['data offset 0', 'E_TB_OFFSET', 'dataOffset', (b) => u64(b, 48, 0n)],
      ['data offset 128', 'E_TB_OFFSET', 'dataOffset', (b) => u64(b, 48, 128n)],
      ['data offset unaligned', 'E_TB_OFFSET', 'dataOffset', (b) => u64(b, 48, 260n)],
      ['data offset 2^53', 'E_TB_OFFSET', 'dataOffset', (b) => u64(b, 48, 2n ** 53n)],
      ['data offset 2^64-256', 'E_TB_OFFSET', 'dataOffset', (b) => u64(b, 48, 2n ** 64n - 256n)],
      ['merkle offset 1', 'E_TB_OFFSET', 'merkleOffset', (b) => u64(b, 56, 1n)],
      ['merkle offset 256', 'E_TB_OFFSET', 'merkleOffset', (b) => u64(b, 56, 256n)],
      ['merkle offset max', 'E_TB_OFFSET', 'merkleOffset', (b) => u64(b, 56, 2n ** 64n - 1n)]
    ]
    if (dtype === 'int8') {
      list.push(
        ['scale offset 0', 'E_TB_OFFSET', 'scaleOffset', (b) => u64(b, 40, 0n)],
        ['scale offset 124', 'E_TB_OFFSET', 'scaleOffset', (b) => u64(b, 40, 124n)],
        ['scale offset unaligned', 'E_TB_OFFSET', 'scaleOffset', (b) => u64(b, 40, 130n)],
        ['scales overlap data', 'E_TB_OFFSET', 'scaleOffset', (b) => u64(b, 40, 252n)],
        ['scales after data', 'E_TB_OFFSET', 'scaleOffset', (b) => u64(b, 40, 1024n)],
        ['scale offset 2^64-4', 'E_TB_OFFSET', 'scaleOffset', (b) => u64(b, 40, 2n ** 64n - 4n)]
      )
    } else {
      list.push(['scale offset without quantization', 'E_TB_OFFSET', 'scaleOffset', (b) => u64(b, 40, 128n)])
    }
    for (let i = 64; i < 128; i++) list.push([`reserved byte ${i}`, 'E_TB_RESERVED', 'reserved', (b) => (b[i] = 1)])
    return list
  }

  for (const dtype of ['int8', 'fp16', 'fp32'] as const) {
    test(`${dtype}: each corrupted header field gives its own code`, () => {
      const block = encodeTensorBlock(new Float32Array(15).map((_, i) => i - 7), [3, 5], dtype)
      decodeTensorBlock(block)
      for (const [name, code, field, apply] of corruptions(dtype)) {
        const bad = block.slice()
        apply(bad)
        assertRule(() => decodeTensorBlock(bad), code, field)
        assertRule(() => decodeTBlockHeader(bad), code, field)
        assert.ok(name)
      }
    })

    test(`${dtype}: truncation gives E_TB_TRUNCATED, trailing bytes E_TB_OFFSET`, () => {
      const block = encodeTensorBlock(new Float32Array(15).fill(1), [3, 5], dtype)
      for (let n = 0; n < block.length; n++) {
        assertRule(() => decodeTensorBlock(block.subarray(0, n)), 'E_TB_TRUNCATED', n < 128 ? 'header' : 'data')
      }
      // A valid header whose data lies past the end of the bytes is a truncated block.
      const far = block.slice()
      u64(far, 48, 2n ** 53n - 256n)
      decodeTBlockHeader(far)
      assertRule(() => decodeTensorBlock(far), 'E_TB_TRUNCATED', 'data')
      const longer = new Uint8Array(block.length + 1)
      longer.set(block)
      assertRule(() => decodeTensorBlock(longer), 'E_TB_OFFSET', 'length')
    })
  }

  test('fp8 is refused with its own message', () => {
    const b = encodeTBlockHeader(canonicalTBlockHeader('fp16', 1, 1))
    u32(b, 12, 3)
    assert.throws(() => decodeTBlockHeader(b), /fp8 is not supported in version 1/)
  })

  test('a data end beyond 2^53 - 1 is refused, not rounded', () => {
    const b = encodeTBlockHeader(canonicalTBlockHeader('fp32', 10, 10)) // 400 data bytes
    u64(b, 48, 2n ** 53n - 256n)
    assertRule(() => decodeTBlockHeader(b), 'E_TB_OFFSET', 'dataOffset')
  })

  test('encoding an invalid header is a RangeError / TypeError, not a RuleError', () => {
    const h = canonicalTBlockHeader('int8', 2, 2)
    assert.throws(() => encodeTBlockHeader({ ...h, dataOffset: 300 }), (e: Error) => e instanceof RangeError && /dataOffset/.test(e.message))
    assert.throws(() => encodeTBlockHeader({ ...h, rows: -1 }), (e: Error) => e instanceof RangeError && /h\.rows/.test(e.message))
    assert.throws(() => encodeTBlockHeader({ ...h, dtype: 'fp8' as DType }), (e: Error) => e instanceof RangeError && /h\.dtype/.test(e.message))
    assert.throws(() => decodeTBlockHeader('x' as unknown as Uint8Array), TypeError)
  })
})
