/**
 * Params packing shared by the kernel modules: a WGSL `struct Params` of 4-byte scalars is, in a
 * uniform buffer, those scalars at 4-byte offsets in declaration order, the struct size rounded up
 * to 16 bytes. Each kernel module lists its fields in the WGSL order and packs through here (floats
 * bit-cast, as ggml-webgpu's `ggml_webgpu_u32_from_f32`); test/gpu/layout.test.ts parses every
 * WGSL struct and checks the lists against it.
 *
 * @module
 */

export type ParamType = 'u32' | 'f32'
/** Fields in WGSL declaration order. */
export type ParamFields = readonly (readonly [name: string, type: ParamType])[]
/** A value for every field. */
export type ParamValues<F extends ParamFields> = { readonly [P in F[number] as P[0]]: number }

/** Words a Params struct of `fields` occupies in a uniform buffer (a multiple of 4: 16 bytes). */
export function paramsWords(fields: ParamFields): number {
  return Math.ceil(fields.length / 4) * 4
}

/** Pack `values` in the order of `fields`. u32 fields must be integers in [0, 2^32). */
export function packParams<F extends ParamFields>(kernel: string, fields: F, values: ParamValues<F>): Uint32Array {
  const words = new Uint32Array(paramsWords(fields))
  const floats = new Float32Array(words.buffer)
  const v = values as Readonly<Record<string, number>>
  fields.forEach(([name, type], i) => {
    const x = v[name]
    if (typeof x !== 'number' || Number.isNaN(x)) throw new TypeError(`${kernel} params.${name}: expected a number, got ${x}`)
    if (type === 'f32') floats[i] = x
    else if (Number.isInteger(x) && x >= 0 && x <= 0xffffffff) words[i] = x
    else throw new RangeError(`${kernel} params.${name}: expected a u32, got ${x}`)
  })
  return words
}
