// moe_down_train: the training forward's expert down-projection, per route row s = t * top_k + k:
//   out[s] = W2 g[s]   (the expert's output before its routing weight, which the router's backward
// needs; moe_combine.wgsl weights and sums them into the residual). Weights as moe_up_train.wgsl:
// frozen experts from the pool (INT8 or float32), the trained expert from `trained`.
// One thread per (route row s, output row i).

override WG: u32 = 64u; // threads per workgroup

struct Params {
  dim: u32,           // model width D: output rows
  hidden: u32,        // expert hidden width H
  stride: u32,        // words (int8) or vec4 (f32) per W2 row, ceil(H / 4)
  top_k: u32,         // routes per token
  layer: u32,         // this layer
  n_layers: u32,      // route rows per token
  target_layer: u32,  // the trained expert's layer
  target_expert: u32, // the trained expert
  rows_max: u32,      // rows of each of h1, h3, g in `hs`
  w2_offset: u32,     // first vec4 of W2 in `trained`
}

#include step // struct Step { pos, n_tokens }
// bindings 0-2, the expert weights: pool = W2 of each slot [slots, D, stride],
// scales = [slots, D] (INT8), trained = W2 [D, stride] at w2_offset
#include moe_train // struct Route, NONE, those bindings, pool4(i), is_trained(route)
@group(0) @binding(3) var<storage, read> hs: array<f32>;           // h1, h3, g: each [rows_max, H]
@group(0) @binding(4) var<storage, read> routes: array<Route>;     // [T, n_layers, top_k]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;    // [T * top_k, D]
@group(0) @binding(6) var<uniform> step: Step;
@group(0) @binding(7) var<uniform> params: Params;

/** g[s, c..c+3], zero past H. */
fn g4(base: u32, c: u32) -> vec4<f32> {
  let n = params.hidden;
  return vec4<f32>(
    hs[base + c],
    select(0.0, hs[base + min(c + 1u, n - 1u)], c + 1u < n),
    select(0.0, hs[base + min(c + 2u, n - 1u)], c + 2u < n),
    select(0.0, hs[base + min(c + 3u, n - 1u)], c + 3u < n));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let D = params.dim;
  let s = i / D;
  if (s >= step.n_tokens * params.top_k) {
    return;
  }
  let r = i % D;
  let t = s / params.top_k;
  let route = routes[(t * params.n_layers + params.layer) * params.top_k + s % params.top_k];
  let gb = 2u * params.rows_max * params.hidden + s * params.hidden;
  var a = 0.0;
  if (is_trained(route)) {
    let base = params.w2_offset + r * params.stride;
    for (var j = 0u; j < params.stride; j++) {
      a += dot(trained[base + j], g4(gb, 4u * j));
    }
  } else if (route.slot != NONE) {
    let base = (route.slot * D + r) * params.stride;
    for (var j = 0u; j < params.stride; j++) {
      a += dot(pool4(base + j), g4(gb, 4u * j));
    }
#if INT8
    a *= scales[route.slot * D + r];
#endif
  }
  out[s * D + r] = a;
}
