import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ModelFormatError } from '../../src/model/errors.ts'
import { SAFETENSORS_MAX_HEADER, parseSafetensors, parseSafetensorsHeader, safetensorsPrefixLength, writeSafetensors, type SafetensorsInput } from '../../src/model/safetensors.ts'
import { f16BitsToF32 } from '../../src/tensor/f16.ts'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

/** A file from a raw header string and data bytes (no checks): for rejection cases. */
function rawFile(header: string, data: Uint8Array | number = 0, n?: number): Uint8Array {
  const h = enc(header)
  const d = typeof data === 'number' ? new Uint8Array(data) : data
  const out = new Uint8Array(8 + h.length + d.length)
  new DataView(out.buffer).setUint32(0, n ?? h.length, true)
  out.set(h, 8)
  out.set(d, 8 + h.length)
  return out
}

function rejects(bytes: Uint8Array, re: RegExp, offset?: number | null): void {
  assert.throws(() => parseSafetensors(bytes, 'm.safetensors'), (e: unknown) => {
    assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${String(e)}`)
    assert.match(e.message, re)
    assert.equal(e.file, 'm.safetensors')
    if (offset !== undefined) assert.equal(e.offset, offset)
    return true
  })
}

describe('safetensors: the reference implementation\'s vectors', () => {
  // safetensors/src/tensor.rs tests: test_serialization, test_serialization_forced_alignement, test_empty.
  const data = new Uint8Array(Float32Array.from([0, 1, 2, 3, 4, 5]).buffer)
  test('test_serialization: "attn.0" F32 [1, 2, 3], header of exactly 64 bytes', () => {
    const out = writeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], values: Float32Array.from([0, 1, 2, 3, 4, 5]) }])
    const expected = [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
      58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
      0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64
    ]
    assert.deepEqual([...out], expected)
    const parsed = parseSafetensors(out)
    assert.deepEqual(parsed.tensors.get('attn.0')?.values, Float32Array.from([0, 1, 2, 3, 4, 5]))
    assert.deepEqual(parsed.tensors.get('attn.0')?.shape, [1, 2, 3])
    assert.deepEqual(new Uint8Array(out.subarray(72)), data)
  })
  test('test_serialization_forced_alignement: "attn0" [1, 1, 2, 3], header padded with 7 spaces to 72', () => {
    const out = writeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], values: Float32Array.from([0, 1, 2, 3, 4, 5]) }])
    assert.equal(new DataView(out.buffer).getUint32(0, true), 72)
    assert.equal(new TextDecoder().decode(out.subarray(8, 80)), '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ')
    assert.deepEqual(parseSafetensors(out).header.dataStart, 80)
  })
  test('test_empty: no tensors, with and without __metadata__', () => {
    assert.deepEqual([...writeSafetensors([])], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32])
    const withMeta = writeSafetensors([], { framework: 'pt' })
    assert.deepEqual([...withMeta.subarray(0, 8)], [40, 0, 0, 0, 0, 0, 0, 0])
    assert.equal(new TextDecoder().decode(withMeta.subarray(8)), '{"__metadata__":{"framework":"pt"}}     ')
    const parsed = parseSafetensors(withMeta)
    assert.deepEqual(parsed.header.metadata, { framework: 'pt' })
    assert.equal(parsed.tensors.size, 0)
  })
})

describe('safetensors: round trips', () => {
  test('F32, F16 and BF16 convert to float32 exactly; scalars and empty tensors are allowed', () => {
    const f16 = Float32Array.from([0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8, -0])
    const bf16 = Float32Array.from([0, 1, -2.5, 3.3895313892515355e38, 1.1754943508222875e-38, -0.0078125])
    const inputs: SafetensorsInput[] = [
      { name: 'b.half', dtype: 'F16', shape: [7], values: f16 },
      { name: 'a.brain', dtype: 'BF16', shape: [2, 3], values: bf16 },
      { name: 'c.full', dtype: 'F32', shape: [2, 2], values: Float32Array.from([1.5, -1e-30, 3e38, 0.1]) },
      { name: 'scalar', dtype: 'F32', shape: [], values: Float32Array.from([7]) },
      { name: 'empty', dtype: 'F16', shape: [0, 4], values: new Float32Array(0) }
    ]
    const bytes = writeSafetensors(inputs, { format: 'pt' })
    const { header, tensors } = parseSafetensors(bytes)
    for (const t of inputs) {
      assert.deepEqual(tensors.get(t.name)?.values, t.values, t.name)
      assert.deepEqual(tensors.get(t.name)?.shape, t.shape)
      assert.equal(header.tensors.get(t.name)?.dtype, t.dtype)
    }
    // Aligned: every tensor starts at a multiple of its element size from the data start.
    for (const e of header.tensors.values()) assert.equal((e.begin - header.dataStart) % (e.dtype === 'F32' ? 4 : 2), 0)
    // The writer rounds to nearest even.
    const r = parseSafetensors(writeSafetensors([{ name: 'x', dtype: 'BF16', shape: [2], values: Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8]) }]))
    assert.deepEqual(r.tensors.get('x')?.values, Float32Array.from([1, 1 + 2 ** -6]))
    const h = parseSafetensors(writeSafetensors([{ name: 'x', dtype: 'F16', shape: [1], values: Float32Array.from([1 + 2 ** -11]) }]))
    assert.equal(h.tensors.get('x')?.values[0], f16BitsToF32(0x3c00))
  })

  test('headers are read from a prefix: safetensorsPrefixLength says how many bytes', () => {
    const bytes = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], values: Float32Array.from([1, 2, 3]) }])
    const n = safetensorsPrefixLength(bytes.subarray(0, 8), bytes.length)
    const header = parseSafetensorsHeader(bytes.subarray(0, n), bytes.length, 'm')
    assert.deepEqual(header.tensors.get('w'), { name: 'w', dtype: 'F32', shape: [3], begin: n, end: n + 12 })
  })
})

describe('safetensors: every rule of the format', () => {
  const f32 = (name: string, begin: number, end: number, shape = [(end - begin) / 4]): string => `"${name}":{"dtype":"F32","shape":${JSON.stringify(shape)},"data_offsets":[${begin},${end}]}`
  test('header length', () => {
    rejects(new Uint8Array(5), /truncated at byte 5: expected 8 bytes of header length/, 5)
    rejects(rawFile('{}', 0, SAFETENSORS_MAX_HEADER + 1), /header length 100000001 is over the limit of 100000000 bytes/, 0)
    const huge = rawFile('{}')
    new DataView(huge.buffer).setUint32(4, 1, true)
    rejects(huge, /header length 4294967298 is over the limit/)
    rejects(rawFile('{}', 0, 50), /truncated at byte 10: expected 48 more bytes of the JSON header/, 10)
  })
  test('header text', () => {
    const bad = rawFile('{"a"}')
    bad[10] = 0xff
    rejects(bad, /header is not valid UTF-8/, 8)
    rejects(rawFile(' {}'), /header does not start with "\{"/)
    rejects(rawFile('{"a":'), /header is not valid JSON/)
    rejects(rawFile('{}   x'), /header is not valid JSON/)
    rejects(rawFile(`{${f32('w', 0, 4)},${f32('w', 4, 8)}}`, 8), /header repeats the key "w"/)
    rejects(rawFile(`{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, 4), /header repeats the key "dtype"/)
    rejects(rawFile('{"__metadata__":{"a":1}}'), /__metadata__\.a is not a string/)
    rejects(rawFile('{"__metadata__":[]}'), /__metadata__ is not an object/)
  })
  test('tensor entries', () => {
    rejects(rawFile('{"w":[]}'), /tensor "w" is not an object/)
    rejects(rawFile('{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}', 8), /tensor "w" has dtype I64: only F32, F16 and BF16 are supported/)
    rejects(rawFile('{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,8]}}', 8), /tensor "w" has unknown dtype "Q4"/)
    rejects(rawFile('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4), /shape must be a list of non-negative integers/)
    rejects(rawFile('{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', 4), /shape must be/)
    rejects(rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', 4), /data_offsets must be two non-negative integers/)
    rejects(rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 4), /end before they begin/)
    rejects(rawFile(`{${f32('w', 0, 8, [3])}}`, 8), /hold 8 bytes, shape \[3\] of F32 needs 12/)
    rejects(rawFile(`{${f32('w', 0, 8, [2 ** 40, 2 ** 40])}}`, 8), /needs/)
  })
  test('the data buffer is tiled exactly: no overlap, no hole, no trailing bytes, nothing missing', () => {
    rejects(rawFile(`{${f32('a', 0, 8)},${f32('b', 4, 12)}}`, 12), /tensor "b" at bytes \[\d+, \d+\) overlaps the previous tensor/)
    rejects(rawFile(`{${f32('a', 0, 4)},${f32('b', 8, 12)}}`, 12), /bytes \[\d+, \d+\) before tensor "b" belong to no tensor/)
    rejects(rawFile(`{${f32('a', 4, 8)}}`, 8), /before tensor "a" belong to no tensor/)
    rejects(rawFile(`{${f32('a', 0, 4)}}`, 6), /2 trailing bytes after the last tensor/)
    rejects(rawFile(`{${f32('a', 0, 8)}}`, 6), /truncated at byte \d+: expected 2 more bytes of tensor "a"/)
    rejects(rawFile('{}', 3), /3 trailing bytes after the last tensor/)
  })
  test('values must be finite', () => {
    const bytes = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], values: Float32Array.from([1, NaN]) }])
    rejects(bytes, /tensor "w"\[1\] is NaN: tensors must be finite/, bytes.length - 4)
    rejects(writeSafetensors([{ name: 'w', dtype: 'F16', shape: [1], values: Float32Array.from([1e6]) }]), /is Infinity/)
  })
})
