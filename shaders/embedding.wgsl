// embedding: x[t] = dequant(E[tokens[t]]): a row gather, int8 rows times their scale (INT8) or
// float32 rows, with the same padded row layout as the matvec kernels (the tied classifier reads
// the same buffer).

override WG: u32 = 256u; // threads per workgroup

struct Params {
  cols: u32,   // model width
  stride: u32, // words (int8) or vec4 (f32) per row, ceil(cols / 4)
}

#include step // struct Step { pos, n_tokens }

#if INT8
@group(0) @binding(0) var<storage, read> table: array<u32>;        // [vocab, stride] int8 x 4
@group(0) @binding(1) var<storage, read> scales: array<f32>;       // [vocab]
#else
@group(0) @binding(0) var<storage, read> table: array<vec4<f32>>;  // [vocab, stride]
#endif
@group(0) @binding(2) var<storage, read> tokens: array<u32>;       // [T]
@group(0) @binding(3) var<storage, read_write> x: array<f32>;      // [T, cols]
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let cols = params.cols;
  let t = i / cols;
  if (t >= step.n_tokens) {
    return;
  }
  let c = i % cols;
  let row = tokens[t];
#if INT8
  let word = table[row * params.stride + c / 4u];
  let q = bitcast<i32>(word << (24u - 8u * (c % 4u))) >> 24u;
  x[i] = f32(q) * scales[row];
#else
  x[i] = table[row * params.stride + c / 4u][c % 4u];
#endif
}
