// moe_up_train: the training forward's expert up-projections. For each token t and each of its
// top_k routes (row s = t * top_k + k), with the expert's weights picked by the route:
//   h1[s] = W1 x[t],  h3[s] = W3 x[t],  g[s] = silu(h1[s]) ⊙ h3[s]
// all three kept for the backward (moe_gate_up.wgsl fuses them into g alone). Frozen experts come
// from the pool by the route's slot (INT8: 4 int8 per u32 + per-row scales, PACKED for
// unpack4xI8; else float32 vec4); the trained expert (target_layer, target_expert) from the float32
// `trained` buffer, whatever the pool's type.
// One thread per (route row s, hidden row r).

override WG: u32 = 64u; // threads per workgroup

struct Params {
  hidden: u32,        // expert hidden width H
  dim: u32,           // model width D
  stride: u32,        // words (int8) or vec4 (f32) per W1 / W3 row, ceil(D / 4)
  top_k: u32,         // routes per token
  layer: u32,         // this layer
  n_layers: u32,      // route rows per token
  target_layer: u32,  // the trained expert's layer
  target_expert: u32, // the trained expert
  rows_max: u32,      // rows of each of h1, h3, g in `hs`
}

#include step // struct Step { pos, n_tokens }
// bindings 0-2, the expert weights: pool = W1 then W3 of each slot [slots, 2, H, stride],
// scales = [slots, 2, H] (INT8), trained = W1, W3 [H, stride]
#include moe_train // struct Route, NONE, those bindings, pool4(i), is_trained(route)
@group(0) @binding(3) var<storage, read> x: array<f32>;            // [T, D] ffn-normed input
@group(0) @binding(4) var<storage, read> routes: array<Route>;     // [T, n_layers, top_k]
@group(0) @binding(5) var<storage, read_write> hs: array<f32>;     // h1, h3, g: each [rows_max, H]
@group(0) @binding(6) var<uniform> step: Step;
@group(0) @binding(7) var<uniform> params: Params;

fn x4(base: u32, c: u32) -> vec4<f32> {
  let n = params.dim;
  return vec4<f32>(
    x[base + c],
    select(0.0, x[base + min(c + 1u, n - 1u)], c + 1u < n),
    select(0.0, x[base + min(c + 2u, n - 1u)], c + 2u < n),
    select(0.0, x[base + min(c + 3u, n - 1u)], c + 3u < n));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let H = params.hidden;
  let s = i / H;
  if (s >= step.n_tokens * params.top_k) {
    return;
  }
  let r = i % H;
  let t = s / params.top_k;
  let route = routes[(t * params.n_layers + params.layer) * params.top_k + s % params.top_k];
  let xb = t * params.dim;
  var a = 0.0;
  var b = 0.0;
  if (is_trained(route)) {
    let b1 = r * params.stride;
    let b3 = (H + r) * params.stride;
    for (var j = 0u; j < params.stride; j++) {
      let xv = x4(xb, 4u * j);
      a += dot(trained[b1 + j], xv);
      b += dot(trained[b3 + j], xv);
    }
  } else if (route.slot != NONE) {
    let b1 = (route.slot * 2u * H + r) * params.stride;
    let b3 = b1 + H * params.stride;
    for (var j = 0u; j < params.stride; j++) {
      let xv = x4(xb, 4u * j);
      a += dot(pool4(b1 + j), xv);
      b += dot(pool4(b3 + j), xv);
    }
#if INT8
    a *= scales[route.slot * 2u * H + r];
    b *= scales[(route.slot * 2u + 1u) * H + r];
#endif
  }
  let o = s * H + r;
  let R = params.rows_max * H;
  hs[o] = a;
  hs[R + o] = b;
  hs[2u * R + o] = a / (1.0 + exp(-a)) * b;
}
