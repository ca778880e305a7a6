// int8 weights: four signed bytes per u32 word, little-endian (column 4j is the low byte of word j,
// as src/gpu/upload.ts packs them). PACKED: unpack4xI8 (WGSL language feature
// packed_4x8_integer_dot_product), else shifts: each byte moved to the top, then an arithmetic
// shift right sign-extends it.

/** Four signed bytes of a word as floats. */
fn unpack(word: u32) -> vec4<f32> {
#if PACKED
  return vec4<f32>(unpack4xI8(word));
#else
  let v = bitcast<vec4<i32>>(vec4<u32>(word << 24u, word << 16u, word << 8u, word));
  return vec4<f32>(v >> vec4<u32>(24u));
#endif
}
