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

var<workgroup> partial: array<f32, WG>;

/** x[c..c+3], zero past cols. */
fn x4(c: u32) -> vec4<f32> {
  let o = params.x_offset;
  let n = params.cols;
  return vec4<f32>(
    select(0.0, x[o + c], c < n),
    select(0.0, x[o + c + 1u], c + 1u < n),
    select(0.0, x[o + c + 2u], c + 2u < n),
    select(0.0, x[o + c + 3u], c + 3u < n));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let group = wid.y * nwg.x + wid.x;
  let lane = lid % TPR;
  let r = group * (WG / TPR) + lid / TPR;
  var sum = 0.0;
  if (r < params.rows) {
    let base = r * params.stride;
    for (var j = lane; j < params.stride; j += TPR) {
      sum += dot(w[base + j], x4(4u * j));
    }
  }
  partial[lid] = sum;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      partial[lid] += partial[lid + s];
    }
    workgroupBarrier();
  }
  if (lane == 0u && r < params.rows) {
    var v = partial[lid];
    if (params.has_bias != 0u) {
      v += bias[r];
    }
    y[params.y_offset + r] = v;
  }
}
