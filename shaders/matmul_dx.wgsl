// matmul_dx: the input gradient of a projection Y = X Wᵀ: dX[t, c] = Σ_r dY[t, r] W[r, c]
// (dX = dY W), written or added to dX (`accumulate`). Variants as matmul: INT8 (4 int8 per u32,
// rows padded to `stride` words, one float32 scale per row; PACKED for unpack4xI8) or float32 rows
// padded to `stride` vec4s.
//
// A thread owns one group of four columns (one weight word or vec4 per row) for TPT tokens: per
// row it loads that group and TPT gradients, TPT four-wide multiply-adds, no workgroup memory and no
// barriers (SwiftShader runs barriers as fiber switches, see tuning.ts). The gradients of a row are
// the same for every thread of a token group: cached loads.

const TPT: u32 = 4u;     // tokens per thread (register block)
override WG: u32 = 64u;  // threads per workgroup

struct Params {
  rows: u32,       // weight rows R: the length of a dY row
  cols: u32,       // weight columns C: the length of a dX row
  stride: u32,     // 4-column groups per weight row, ceil(C / 4)
  accumulate: u32, // 1: dX += dY W, else dX = dY W
}

#include step // struct Step { pos, n_tokens }

#if INT8
@group(0) @binding(0) var<storage, read> w: array<u32>;          // [R, stride] int8 x 4
@group(0) @binding(1) var<storage, read> scales: array<f32>;     // [R]
@group(0) @binding(2) var<storage, read> dy: array<f32>;         // [T, R]
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;   // [T, C]
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<uniform> params: Params;
#else
@group(0) @binding(0) var<storage, read> w: array<vec4<f32>>;    // [R, stride]
@group(0) @binding(1) var<storage, read> dy: array<f32>;         // [T, R]
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;   // [T, C]
@group(0) @binding(3) var<uniform> step: Step;
@group(0) @binding(4) var<uniform> params: Params;
#endif

#if INT8
#include int8 // unpack(word): four int8 of a u32 as floats
#endif

/** Weight columns 4j..4j+3 of row r, dequantised (padding columns are zero). */
fn weight4(r: u32, j: u32) -> vec4<f32> {
#if INT8
  return scales[r] * unpack(w[r * params.stride + j]);
#else
  return w[r * params.stride + j];
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let n = step.n_tokens;
  let j = i % params.stride;
  let t0 = (i / params.stride) * TPT;
  if (t0 >= n) {
    return;
  }
  let R = params.rows;
  var acc: array<vec4<f32>, TPT>;
  for (var r = 0u; r < R; r++) {
    let wv = weight4(r, j);
    for (var tp = 0u; tp < TPT; tp++) {
      let t = min(t0 + tp, n - 1u); // rows past the pass are computed and dropped
      acc[tp] += dy[t * R + r] * wv;
    }
  }
  let C = params.cols;
  for (var tp = 0u; tp < TPT; tp++) {
    let t = t0 + tp;
    if (t >= n) {
      break;
    }
    for (var q = 0u; q < 4u; q++) {
      let c = 4u * j + q;
      if (c < C) {
        var v = acc[tp][q];
        if (params.accumulate != 0u) {
          v += dx[t * C + c];
        }
        dx[t * C + c] = v;
      }
    }
  }
}
