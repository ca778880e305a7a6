// moe_up_backward: the input gradient of every route's up-projections, summed per token:
//   dF[t] (=|+=) Σ_k (W1_kᵀ dh1[t, k] + W3_kᵀ dh3[t, k])
// with each route's weights as moe_up_train.wgsl picks them (pool by slot, INT8 or float32; the
// trained expert from `trained`). dh1, dh3 from moe_down_backward.wgsl (zeros where a route does
// not count). One thread per (token t, group of four columns): per hidden row it loads that row's
// four W1 and W3 columns.

override WG: u32 = 64u; // threads per workgroup

struct Params {
  dim: u32,           // model width D: dF row length
  hidden: u32,        // expert hidden width H
  stride: u32,        // words (int8) or vec4 (f32) per W1 / W3 row, ceil(D / 4)
  top_k: u32,         // routes per token
  layer: u32,         // this layer
  n_layers: u32,      // route rows per token
  target_layer: u32,  // the trained expert's layer
  target_expert: u32, // the trained expert
  rows_max: u32,      // rows of each part of `dhs`
  accumulate: u32,    // 1: dF += ..., else dF = ...
}

#include step // struct Step { pos, n_tokens }
// bindings 0-2, the expert weights: pool = W1 then W3 of each slot [slots, 2, H, stride],
// scales = [slots, 2, H] (INT8), trained = W1, W3 [H, stride]
#include moe_train // struct Route, NONE, those bindings, pool4(i), is_trained(route)
@group(0) @binding(3) var<storage, read> dhs: array<f32>;           // dh1 [rows_max, H], dh3 [rows_max, H], ...
@group(0) @binding(4) var<storage, read> routes: array<Route>;      // [T, n_layers, top_k]
@group(0) @binding(5) var<storage, read_write> df: array<f32>;      // [T, D]
@group(0) @binding(6) var<uniform> step: Step;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let t = i / params.stride;
  if (t >= step.n_tokens) {
    return;
  }
  let j = i % params.stride;
  let H = params.hidden;
  let R = params.rows_max * H;
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < params.top_k; k++) {
    let s = t * params.top_k + k;
    let route = routes[(t * params.n_layers + params.layer) * params.top_k + k];
    let ho = s * H;
    if (is_trained(route)) {
      for (var h = 0u; h < H; h++) {
        acc += dhs[ho + h] * trained[h * params.stride + j] + dhs[R + ho + h] * trained[(H + h) * params.stride + j];
      }
    } else if (route.slot != NONE) {
      let b1 = route.slot * 2u * H;
      for (var h = 0u; h < H; h++) {
#if INT8
        let w1 = scales[b1 + h] * pool4((b1 + h) * params.stride + j);
        let w3 = scales[b1 + H + h] * pool4((b1 + H + h) * params.stride + j);
#else
        let w1 = pool4((b1 + h) * params.stride + j);
        let w3 = pool4((b1 + H + h) * params.stride + j);
#endif
        acc += dhs[ho + h] * w1 + dhs[R + ho + h] * w3;
      }
    }
  }
  let D = params.dim;
  for (var q = 0u; q < 4u; q++) {
    let c = 4u * j + q;
    if (c < D) {
      var v = acc[q];
      if (params.accumulate != 0u) {
        v += df[t * D + c];
      }
      df[t * D + c] = v;
    }
  }
}
