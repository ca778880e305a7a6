// matvec_f32: y = W x (+ bias) for one token (decode), float32 weights (the `--dtype f32` path;
// fp16 TensorBlocks are widened to float32 at upload, exactly, as the GPU may lack shader-f16).
//
// Rows are zero-padded to `stride` vec4s. TPR threads share a row, each summing dot products of
// vec4 column groups j = lane, lane + TPR, ...; a tree in workgroup memory adds the partial sums.

override WG: u32 = 256u; // threads per workgroup
override TPR: u32 = 64u; // threads per row: a power of two dividing WG

struct Params {
  rows: u32,     // output rows
  cols: u32,     // input length
  stride: u32,   // vec4 per weight row, ceil(cols / 4)
  x_offset: u32, // first element of x
  y_offset: u32, // first element of y
  has_bias: u32, // 1: add bias[r]
}

@group(0) @binding(0) var<storage, read> w: array<vec4<f32>>;   // [rows, stride]
@group(0) @binding(1) var<storage, read> x: array<f32>;         // [x_offset + cols]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;   // [y_offset + rows]
@group(0) @binding(3) var<storage, read> bias: array<f32>;      // [rows], a dummy when has_bias = 0
@group(0) @binding(4) var<uniform> params: Params;

#include tree_sum // var<workgroup> partial; tree_sum(v, lid, width): Σ v over `width` threads

#include x4 // x4(base, c): x[base + c .. base + c + 3], zero past params.cols

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let group = wid.y * nwg.x + wid.x;
  let lane = lid % TPR;
  let r = group * (WG / TPR) + lid / TPR;
  var sum = 0.0;
  if (r < params.rows) {
    let base = r * params.stride;
    for (var j = lane; j < params.stride; j += TPR) {
      sum += dot(w[base + j], x4(params.x_offset, 4u * j));
    }
  }
  let total = tree_sum(sum, lid, TPR);
  if (lane == 0u && r < params.rows) {
    var v = total;
    if (params.has_bias != 0u) {
      v += bias[r];
    }
    y[params.y_offset + r] = v;
  }
}
