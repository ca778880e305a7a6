// moe_gate_up: for each token t and each of its top_k routes, h[t, k] = silu(W1_s x[t]) ⊙ (W3_s x[t])
// with s the pool slot the router wrote (like ggml's mul_mat_id, experts are picked by index into
// one pool of equal-size slots); a NONE slot (expert not resident) yields zeros.
// Variants: INT8 (4 int8 per u32 + per-row scales, PACKED for unpack4xI8) or float32 (vec4).
// Grid: x over row groups of WG / TPR rows, y over t * top_k + k.

override WG: u32 = 256u; // threads per workgroup
override TPR: u32 = 64u; // threads per row: a power of two dividing WG

struct Params {
  rows: u32,       // expert hidden width
  cols: u32,       // model width
  stride: u32,     // words (int8) or vec4 (f32) per weight row, ceil(cols / 4)
  slot_size: u32,  // rows * stride: one expert matrix in the pool
  top_k: u32,      // routes per token
  layer: u32,      // this layer
  n_layers: u32,   // route rows per token
}

#include route // const NONE, struct Route { expert, slot, weight }

#if INT8
@group(0) @binding(0) var<storage, read> w1: array<u32>;          // [slots, rows, stride] int8 x 4
@group(0) @binding(1) var<storage, read> w3: array<u32>;          // [slots, rows, stride] int8 x 4
@group(0) @binding(2) var<storage, read> s1: array<f32>;          // [slots, rows]
@group(0) @binding(3) var<storage, read> s3: array<f32>;          // [slots, rows]
#else
@group(0) @binding(0) var<storage, read> w1: array<vec4<f32>>;    // [slots, rows, stride]
@group(0) @binding(1) var<storage, read> w3: array<vec4<f32>>;    // [slots, rows, stride]
#endif
@group(0) @binding(4) var<storage, read> x: array<f32>;           // [T, cols]
@group(0) @binding(5) var<storage, read> routes: array<Route>;    // [T, n_layers, top_k]
@group(0) @binding(6) var<storage, read_write> h: array<f32>;     // [T, top_k, rows]
@group(0) @binding(7) var<uniform> params: Params;

var<workgroup> part1: array<f32, WG>;
var<workgroup> part3: array<f32, WG>;

#if INT8
#include int8 // unpack(word): four int8 of a u32 as floats
#endif

#include x4 // x4(base, c): x[base + c .. base + c + 3], zero past params.cols

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tk = wid.y;
  let t = tk / params.top_k;
  let route = routes[(t * params.n_layers + params.layer) * params.top_k + tk % params.top_k];
  let lane = lid % TPR;
  let r = wid.x * (WG / TPR) + lid / TPR;
  let live = route.slot != NONE && r < params.rows;
  var a = 0.0;
  var b = 0.0;
  if (live) {
    let base = route.slot * params.slot_size + r * params.stride;
    let xb = t * params.cols;
    for (var j = lane; j < params.stride; j += TPR) {
      let xv = x4(xb, 4u * j);
#if INT8
      a += dot(unpack(w1[base + j]), xv);
      b += dot(unpack(w3[base + j]), xv);
#else
      a += dot(w1[base + j], xv);
      b += dot(w3[base + j], xv);
#endif
    }
  }
  part1[lid] = a;
  part3[lid] = b;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      part1[lid] += part1[lid + s];
      part3[lid] += part3[lid + s];
    }
    workgroupBarrier();
  }
  if (lane == 0u && r < params.rows) {
    var v = 0.0;
    if (live) {
#if INT8
      let g = s1[route.slot * params.rows + r] * part1[lid];
      let u = s3[route.slot * params.rows + r] * part3[lid];
#else
      let g = part1[lid];
      let u = part3[lid];
#endif
      v = g / (1.0 + exp(-g)) * u;
    }
    h[tk * params.rows + r] = v;
  }
}
