// moe_down: moe[t] = Σ_k weight[t, k] W2_s h[t, k] over the token's routes, s the pool slot the
// router wrote; NONE slots are skipped. h (moe_gate_up's output) is the input binding `x`. Writes
// (does not accumulate): the residual add follows.
// Variants: INT8 (4 int8 per u32 + per-row scales, PACKED for unpack4xI8) or float32 (vec4).
// Grid: x over row groups of WG / TPR rows, y over tokens.

override WG: u32 = 256u; // threads per workgroup
override TPR: u32 = 64u; // threads per row: a power of two dividing WG

struct Params {
  rows: u32,       // model width
  cols: u32,       // expert hidden width
  stride: u32,     // words (int8) or vec4 (f32) per weight row, ceil(cols / 4)
  slot_size: u32,  // rows * stride: one expert matrix in the pool
  top_k: u32,      // routes per token
  layer: u32,      // this layer
  n_layers: u32,   // route rows per token
}

#include route // const NONE, struct Route { expert, slot, weight }

#if INT8
@group(0) @binding(0) var<storage, read> w2: array<u32>;          // [slots, rows, stride] int8 x 4
@group(0) @binding(1) var<storage, read> s2: array<f32>;          // [slots, rows]
#else
@group(0) @binding(0) var<storage, read> w2: array<vec4<f32>>;    // [slots, rows, stride]
#endif
@group(0) @binding(2) var<storage, read> x: array<f32>;           // [T, top_k, cols] h, from moe_gate_up
@group(0) @binding(3) var<storage, read> routes: array<Route>;    // [T, n_layers, top_k]
@group(0) @binding(4) var<storage, read_write> moe: array<f32>;   // [T, rows]
@group(0) @binding(5) var<uniform> params: Params;

#include tree_sum // var<workgroup> partial; tree_sum(v, lid, width): Σ v over `width` threads

#if INT8
#include int8 // unpack(word): four int8 of a u32 as floats
#endif

#include x4 // x4(base, c): x[base + c .. base + c + 3], zero past params.cols

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y;
  let lane = lid % TPR;
  let r = wid.x * (WG / TPR) + lid / TPR;
  var acc = 0.0;
  if (r < params.rows) {
    for (var k = 0u; k < params.top_k; k++) {
      let route = routes[(t * params.n_layers + params.layer) * params.top_k + k];
      if (route.slot == NONE) {
        continue;
      }
      let base = route.slot * params.slot_size + r * params.stride;
      let hb = (t * params.top_k + k) * params.cols;
      var d = 0.0;
      for (var j = lane; j < params.stride; j += TPR) {
#if INT8
        d += dot(unpack(w2[base + j]), x4(hb, 4u * j));
#else
        d += dot(w2[base + j], x4(hb, 4u * j));
#endif
      }
#if INT8
      acc += route.weight * s2[route.slot * params.rows + r] * d;
#else
      acc += route.weight * d;
#endif
    }
  }
  let total = tree_sum(acc, lid, TPR);
  if (lane == 0u && r < params.rows) {
    moe[t * params.rows + r] = total;
  }
}
