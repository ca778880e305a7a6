import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import fc from 'fast-check'
import {
  PAYLOAD_MAX_INDEX_LENGTH,
  buildPayload,
  decodePayloadIndex,
  encodePayloadIndex,
  parsePayload,
  payloadIndexLength,
  type PayloadEntry,
  type PayloadIndex,
  type PayloadTensor
} from '../../src/tensor/payload.ts'
import { align256, canonicalTBlockHeader, tblockByteLength, type DType } from '../../src/tensor/tblock.ts'
import { dequantize, matrixDims } from '../../src/tensor/tensorblock.ts'
import { assertRule, prng, randomTensors } from './fixtures/tensors.ts'

const nameArb = fc.stringMatching(/^[A-Za-z0-9_.]{1,20}$/)
const dtypeArb = fc.constantFrom<DType>('fp16', 'int8', 'fp32')
const shapeArb = fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 })

/** Raw prefix for any JS value as the index (no checks): magic, L, reserved, DAG-CBOR. */
function rawPrefix(index: unknown, cbor: Uint8Array = dagCbor.encode(index)): Uint8Array {
  const out = new Uint8Array(16 + cbor.length)
  out.set(new TextEncoder().encode('BLYNPAY1'), 0)
  new DataView(out.buffer).setUint32(8, cbor.length, true)
  out.set(cbor, 16)
  return out
}

/** Lay out entries (name, dtype, shape, extra 256-byte blocks) at valid offsets: the fixed point. */
function layout(specs: { name: string; dtype: DType; shape: number[]; extra: number }[]): PayloadIndex {
  let start = 256
  for (;;) {
    let offset = start
    const tensors: PayloadEntry[] = specs.map((s) => {
      const { rows, cols } = matrixDims(s.shape)
      const size = tblockByteLength(canonicalTBlockHeader(s.dtype, rows, cols)) + 256 * s.extra
      const e = { name: s.name, offset, size, dtype: s.dtype, shape: s.shape }
      offset = align256(offset + size)
      return e
    })
    const index: PayloadIndex = { version: 1, tensors }
    const next = align256(rawPrefix(index).length)
    if (next === start) return index
    start = next
  }
}

/** Payload with its index object replaced (blocks kept at their offsets; caller keeps L's alignment). */
function withIndex(payload: Uint8Array, mutate: (index: any) => void): Uint8Array {
  const idx = structuredClone(decodePayloadIndex(payload)) as any
  mutate(idx)
  const prefix = rawPrefix(idx)
  const start = align256(16 + payloadIndexLength(payload))
  assert.ok(prefix.length <= start, 'mutation grew the index past the first block')
  const out = payload.slice()
  out.fill(0, 0, start)
  out.set(prefix, 0)
  return out
}

describe('payload index', () => {
  test('property: encode -> decode round-trips', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ name: nameArb, dtype: dtypeArb, shape: shapeArb, extra: fc.integer({ min: 0, max: 3 }) }), {
          minLength: 1,
          maxLength: 8,
          selector: (s) => s.name
        }),
        (specs) => {
          const index = layout(specs)
          const prefix = encodePayloadIndex(index)
          assert.equal(payloadIndexLength(prefix), prefix.length - 16)
          assert.deepEqual(structuredClone(decodePayloadIndex(prefix)), index)
          // Extra bytes after the index (the rest of the first tile) are ignored.
          const longer = new Uint8Array(prefix.length + 100)
          longer.set(prefix)
          assert.deepEqual(structuredClone(decodePayloadIndex(longer)), index)
        }
      ),
      { numRuns: 300 }
    )
  })

  test('header: magic, reserved, length limit, truncation', () => {
    const good = encodePayloadIndex(layout([{ name: 'a', dtype: 'fp32', shape: [2], extra: 0 }]))
    const bad = good.slice()
    bad[3] = 0x21
    assertRule(() => decodePayloadIndex(bad), 'E_PAYLOAD_MAGIC', 'magic')
    const res = good.slice()
    res[15] = 1
    assertRule(() => decodePayloadIndex(res), 'E_PAYLOAD_MAGIC', 'reserved')
    assertRule(() => payloadIndexLength(good.subarray(0, 15)), 'E_PAYLOAD_MAGIC', 'magic')
    const big = good.slice()
    new DataView(big.buffer).setUint32(8, PAYLOAD_MAX_INDEX_LENGTH + 1, true)
    assertRule(() => decodePayloadIndex(big), 'E_TOO_LARGE', 'index')
    new DataView(big.buffer).setUint32(8, 0xffffffff, true)
    assertRule(() => payloadIndexLength(big), 'E_TOO_LARGE', 'index')
    assertRule(() => decodePayloadIndex(good.subarray(0, good.length - 1)), 'E_PAYLOAD_INDEX', 'index')
  })

  test('CBOR: undecodable and non-canonical encodings', () => {
    assertRule(() => decodePayloadIndex(rawPrefix(null, new Uint8Array([0xff]))), 'E_DECODE', 'index')
    assertRule(() => decodePayloadIndex(rawPrefix(null, new Uint8Array(0))), 'E_DECODE', 'index')
    assertRule(() => decodePayloadIndex(rawPrefix(null, new Uint8Array([0xa1, 0x61]))), 'E_DECODE', 'index')
    const index = layout([{ name: 'a', dtype: 'fp32', shape: [2], extra: 0 }])
    const cbor = dagCbor.encode(index)
    // Trailing byte after the object.
    assertRule(() => decodePayloadIndex(rawPrefix(null, new Uint8Array([...cbor, 0x00]))), 'E_DECODE', 'index')
    // 1 as a two-byte integer (0x18 0x01) instead of 0x01: @ipld/dag-cbor's strict decoder
    // already refuses non-minimal integers, so this is E_DECODE (as in src/codec/cbor.ts).
    const versionAt = cbor.findIndex((_, i) => cbor[i] === 0x67 && new TextDecoder().decode(cbor.subarray(i + 1, i + 8)) === 'version')
    assert.ok(versionAt > 0)
    const longInt = new Uint8Array([...cbor.subarray(0, versionAt + 8), 0x18, 0x01, ...cbor.subarray(versionAt + 9)])
    assertRule(() => decodePayloadIndex(rawPrefix(null, longInt)), 'E_DECODE', 'index')
    // Map keys out of canonical order (version before tensors): a hand-built map.
    const te = new TextEncoder()
    const keysSwapped = new Uint8Array([0xa2, 0x67, ...te.encode('version'), 0x01, 0x67, ...te.encode('tensors'), ...dagCbor.encode(index.tensors)])
    assertRule(() => decodePayloadIndex(rawPrefix(null, keysSwapped)), 'E_NONCANONICAL', 'index')
    // A float 1.0 where an integer belongs: float64 encodes differently from int 1.
    const asFloat = new Uint8Array([...cbor.subarray(0, versionAt + 8), 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, ...cbor.subarray(versionAt + 9)])
    assertRule(() => decodePayloadIndex(rawPrefix(null, asFloat)), 'E_NONCANONICAL', 'index')
  })

  test('schema: exact keys, types and ranges, with the path as field', () => {
    const base = layout([
      { name: 'a', dtype: 'fp32', shape: [2], extra: 0 },
      { name: 'b', dtype: 'int8', shape: [2, 3], extra: 0 },
      { name: 'c', dtype: 'fp16', shape: [1, 2, 3], extra: 0 }
    ])
    const check = (mutate: (i: any) => void, code: Parameters<typeof assertRule>[1], field: string) => {
      const idx = structuredClone(base) as any
      mutate(idx)
      assertRule(() => decodePayloadIndex(rawPrefix(idx)), code, field)
    }
    check((i) => (i.extra = 1), 'E_SCHEMA', 'extra')
    check((i) => delete i.version, 'E_SCHEMA', 'version')
    check((i) => delete i.tensors, 'E_SCHEMA', 'tensors')
    check((i) => (i.version = 2), 'E_VERSION', 'version')
    check((i) => (i.version = '1'), 'E_SCHEMA', 'version')
    check((i) => (i.tensors = []), 'E_SCHEMA', 'tensors')
    check((i) => (i.tensors = {}), 'E_SCHEMA', 'tensors')
    check((i) => (i.tensors[2] = [1]), 'E_SCHEMA', 'tensors[2]')
    check((i) => delete i.tensors[2].shape, 'E_SCHEMA', 'tensors[2].shape')
    check((i) => (i.tensors[1].layout = 0), 'E_SCHEMA', 'tensors[1].layout')
    check((i) => (i.tensors[0].name = ''), 'E_SCHEMA', 'tensors[0].name')
    check((i) => (i.tensors[0].name = 'a-b'), 'E_SCHEMA', 'tensors[0].name')
    check((i) => (i.tensors[0].name = 'x'.repeat(129)), 'E_SCHEMA', 'tensors[0].name')
    check((i) => (i.tensors[2].name = 'a'), 'E_SCHEMA', 'tensors[2].name')
    check((i) => (i.tensors[1].dtype = 'fp8'), 'E_SCHEMA', 'tensors[1].dtype')
    check((i) => (i.tensors[1].offset = -256), 'E_SCHEMA', 'tensors[1].offset')
    check((i) => (i.tensors[1].offset = 2 ** 60), 'E_SCHEMA', 'tensors[1].offset') // decodes as bigint
    check((i) => (i.tensors[1].size = 0), 'E_SCHEMA', 'tensors[1].size')
    check((i) => (i.tensors[1].size = 1.5), 'E_SCHEMA', 'tensors[1].size')
    check((i) => (i.tensors[2].shape = []), 'E_SCHEMA', 'tensors[2].shape')
    check((i) => (i.tensors[2].shape = [1, 1, 1, 1, 1]), 'E_SCHEMA', 'tensors[2].shape')
    check((i) => (i.tensors[2].shape = [1, 0, 3]), 'E_SCHEMA', 'tensors[2].shape[1]')
    check((i) => (i.tensors[2].shape = [2 ** 16, 2 ** 15]), 'E_SCHEMA', 'tensors[2].shape')
    check((i) => (i.tensors[2].shape = new Uint8Array([1])), 'E_SCHEMA', 'tensors[2].shape')
    check((i) => (i.tensors[0].name = null), 'E_SCHEMA', 'tensors[0].name')
  })

  test('layout: offsets contiguous and 256-aligned, sizes fit the tensor', () => {
    const base = layout([
      { name: 'a', dtype: 'fp32', shape: [2], extra: 0 },
      { name: 'b', dtype: 'int8', shape: [200, 3], extra: 0 }
    ])
    const check = (mutate: (i: any) => void, field: string) => {
      const idx = structuredClone(base) as any
      mutate(idx)
      assertRule(() => decodePayloadIndex(rawPrefix(idx)), 'E_PAYLOAD_INDEX', field)
    }
    check((i) => (i.tensors[0].offset += 256), 'tensors[0].offset')
    check((i) => (i.tensors[0].offset = 0), 'tensors[0].offset')
    check((i) => (i.tensors[1].offset += 1), 'tensors[1].offset')
    check((i) => (i.tensors[1].offset += 256), 'tensors[1].offset')
    check((i) => (i.tensors[1].size -= 256), 'tensors[1].size') // smaller than its scales + data
    check((i) => (i.tensors[1].size += 1), 'tensors[1].size')
    check((i) => (i.tensors[0].size = 1), 'tensors[0].size')
    // A larger, non-canonical TensorBlock (data moved by 256) is a valid entry.
    const idx = structuredClone(base) as any
    idx.tensors[1].size += 256
    decodePayloadIndex(rawPrefix(idx))
  })
})

describe('payload', () => {
  const tensorArb = fc
    .record({ name: nameArb, dtype: dtypeArb, shape: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }) })
    .chain((t) => {
      const n = t.shape.reduce((a, b) => a * b, 1)
      const range = t.dtype === 'fp16' ? { min: -60000, max: 60000 } : {}
      return fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, ...range }).map((values) => ({ ...t, values }))
    })

  function checkRoundTrip(tensors: readonly PayloadTensor[], payload: Uint8Array): void {
    const parsed = parsePayload(payload)
    assert.equal(parsed.tensors.size, tensors.length)
    parsed.index.tensors.forEach((e, k) => {
      const t = tensors[k]!
      assert.equal(e.name, t.name)
      assert.deepEqual([...e.shape], [...t.shape])
      assert.equal(e.offset % 256, 0)
      const v = parsed.tensors.get(t.name)!
      const out = dequantize(v)
      for (let i = 0; i < t.values.length; i++) {
        const x = t.values[i]!
        if (t.dtype === 'fp32') assert.ok(Object.is(out[i], x))
        else if (t.dtype === 'fp16') assert.ok(Math.abs(out[i]! - x) <= Math.max(Math.abs(x) * 2 ** -11, 2 ** -25), `${x} -> ${out[i]}`)
        else {
          const s = v.scales![Math.floor(i / v.header.cols)]!
          assert.ok(Math.abs(x - (v.data as Int8Array)[i]! * s) <= s / 2, 'int8 error within scale/2 (float64)')
          assert.ok(Math.abs(x - out[i]!) <= s / 2 + Math.abs(out[i]!) * 2 ** -24, 'float32 result within scale/2 + rounding')
        }
      }
    })
  }

  test('property: buildPayload -> parsePayload gives the tensors back', () => {
    fc.assert(
      fc.property(fc.uniqueArray(tensorArb, { minLength: 1, maxLength: 6, selector: (t) => t.name }), (tensors) => {
        checkRoundTrip(tensors, buildPayload(tensors))
      }),
      { numRuns: 200 }
    )
  })

  test('a ~1 MiB payload of every dtype round-trips, with views into the payload', () => {
    const tensors = randomTensors(prng(7), 1 << 20)
    const payload = buildPayload(tensors)
    checkRoundTrip(tensors, payload)
    const v = parsePayload(payload).tensors.get('layer0.big')!
    assert.equal(v.data.buffer, payload.buffer, 'zero-copy')
  })

  test('a payload held in a Node Buffer at an unaligned offset (as SQLite and HTTP hand them out) decodes the same', () => {
    const tensors = randomTensors(prng(11), 1 << 14)
    const payload = buildPayload(tensors)
    for (const offset of [1, 2, 3, 642]) {
      const host = Buffer.alloc(payload.length + offset + 7, 0xee)
      host.set(payload, offset)
      checkRoundTrip(tensors, host.subarray(offset, offset + payload.length))
    }
  })

  test('an index longer than 240 bytes pushes the first block to 512 and beyond', () => {
    const tensors: PayloadTensor[] = Array.from({ length: 40 }, (_, k) => ({
      name: `blocks.${k}.ffn.w1`,
      values: new Float32Array([k]),
      shape: [1],
      dtype: 'fp32' as const
    }))
    const payload = buildPayload(tensors)
    const index = decodePayloadIndex(payload)
    assert.ok(payloadIndexLength(payload) > 240)
    assert.equal(index.tensors[0]!.offset, align256(16 + payloadIndexLength(payload)))
    checkRoundTrip(tensors, payload)
  })

  test('padding, trailing bytes, truncation, header mismatch, TensorBlock errors', () => {
    const tensors: PayloadTensor[] = [
      { name: 'a', values: new Float32Array(8).fill(1), shape: [8], dtype: 'fp32' },
      { name: 'b', values: new Float32Array(6).fill(2), shape: [2, 3], dtype: 'int8' }
    ]
    const payload = buildPayload(tensors)
    const index = decodePayloadIndex(payload)
    const a = index.tensors[0]!
    const b = index.tensors[1]!
    const pad = (at: number) => {
      const p = payload.slice()
      p[at] = 1
      assertRule(() => parsePayload(p), 'E_PAYLOAD_INDEX', 'padding')
    }
    pad(16 + payloadIndexLength(payload)) // after the index
    pad(a.offset - 1)
    pad(a.offset + a.size) // between blocks
    pad(b.offset - 1)
    assertRule(() => parsePayload(new Uint8Array([...payload, 0])), 'E_PAYLOAD_INDEX', 'length')
    assertRule(() => parsePayload(payload.subarray(0, payload.length - 1)), 'E_PAYLOAD_INDEX', 'tensors[1].size')
    assertRule(() => parsePayload(payload.subarray(0, b.offset)), 'E_PAYLOAD_INDEX', 'tensors[1].size')
    assertRule(() => parsePayload(payload.subarray(0, b.offset - 1)), 'E_PAYLOAD_INDEX', 'tensors[1].offset')
    assertRule(() => parsePayload(payload.subarray(0, 100)), 'E_PAYLOAD_INDEX', 'index')
    assertRule(() => parsePayload(payload.subarray(0, 200)), 'E_PAYLOAD_INDEX', 'tensors[0].offset')
    assertRule(() => parsePayload(payload.subarray(0, 300)), 'E_PAYLOAD_INDEX', 'tensors[0].size')
    // Same size, other dtype / shape in the index.
    assertRule(() => parsePayload(withIndex(payload, (i) => ((i.tensors[0].dtype = 'fp16'), (i.tensors[0].shape = [16])))), 'E_PAYLOAD_INDEX', 'tensors[0].dtype')
    assertRule(() => parsePayload(withIndex(payload, (i) => (i.tensors[0].shape = [2, 4]))), 'E_PAYLOAD_INDEX', 'tensors[0].shape')
    assertRule(() => parsePayload(withIndex(payload, (i) => (i.tensors[1].shape = [3, 2]))), 'E_PAYLOAD_INDEX', 'tensors[1].shape')
    // TensorBlock errors keep their code, under the entry's path.
    const magic = payload.slice()
    magic[b.offset] = 0
    assertRule(() => parsePayload(magic), 'E_TB_MAGIC', 'tensors[1].magic')
    const nan = payload.slice()
    new DataView(nan.buffer).setFloat32(a.offset + 256 + 4, NaN, true)
    assertRule(() => parsePayload(nan), 'E_NONFINITE', 'tensors[0].data[1]')
  })

  test('buildPayload: E_NONFINITE names the tensor and element; misuse is a TypeError / RangeError', () => {
    const ok = { name: 'a', values: new Float32Array(2), shape: [2], dtype: 'fp32' as const }
    assertRule(() => buildPayload([ok, { ...ok, name: 'b', values: new Float32Array([0, NaN]) }]), 'E_NONFINITE', 'tensors[1].values[1]')
    assertRule(() => buildPayload([{ ...ok, dtype: 'fp16', values: new Float32Array([1e6, 0]) }]), 'E_NONFINITE', 'tensors[0].values[0]')
    assert.throws(() => buildPayload([]), RangeError)
    assert.throws(() => buildPayload([ok, ok]), /tensors\[1\]\.name: duplicate/)
    assert.throws(() => buildPayload([{ ...ok, name: 'a/b' }]), /tensors\[0\]\.name/)
    assert.throws(() => buildPayload([{ ...ok, values: new Float32Array(1), shape: [1, 1, 1, 1, 1] }]), /rank 5/)
    assert.throws(() => buildPayload([{ ...ok, values: [0, 0] as unknown as Float32Array }]), TypeError)
    assert.throws(() => encodePayloadIndex({ version: 1, tensors: [] }), RangeError)
  })
})
