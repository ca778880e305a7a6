// moe_down_backward: the backward of each route's SwiGLU expert down to its hidden gradients. For
// route row s = t * top_k + k with routing weight w, the expert's output w · W2 g[s] is added to
// the residual whose gradient is dx[t]:
//   dy = w dx[t],  dg = W2ᵀ dy,  dh1 = dg ⊙ h3 ⊙ σ(h1) (1 + h1 (1 − σ(h1))),  dh3 = dg ⊙ silu(h1)
// (σ the sigmoid) into dh1[s], dh3[s]. With `target_only` only the routes to the trained expert
// (target_layer, target_expert) count (the others get zeros) and dy is kept too, in dy[s]: what
// weight_grad.wgsl needs for W2's gradient. Weights as moe_up_train.wgsl: frozen experts from the
// pool (INT8 or float32), the trained expert from the float32 `trained` buffer.
// One thread per (route row s, hidden column j): dg[j] walks column j of W2.

override WG: u32 = 64u; // threads per workgroup

struct Params {
  dim: u32,           // model width D: W2 rows
  hidden: u32,        // expert hidden width H: W2 columns
  stride: u32,        // words (int8) or vec4 (f32) per W2 row, ceil(H / 4)
  top_k: u32,         // routes per token
  layer: u32,         // this layer
  n_layers: u32,      // route rows per token
  target_layer: u32,  // the trained expert's layer
  target_expert: u32, // the trained expert
  rows_max: u32,      // rows of each part of `hs` and `dhs`
  w2_offset: u32,     // first vec4 of W2 in `trained`
  target_only: u32,   // 1: only routes to the trained expert, and keep dy
}

#include step // struct Step { pos, n_tokens }
// bindings 0-2, the expert weights: pool = W2 of each slot [slots, D, stride],
// scales = [slots, D] (INT8), trained = W2 [D, stride] at w2_offset
#include moe_train // struct Route, NONE, those bindings, pool4(i), is_trained(route)
@group(0) @binding(3) var<storage, read> dx: array<f32>;            // [T, D] gradient of the layer output
@group(0) @binding(4) var<storage, read> hs: array<f32>;            // h1, h3, g: each [rows_max, H]
@group(0) @binding(5) var<storage, read> routes: array<Route>;      // [T, n_layers, top_k]
@group(0) @binding(6) var<storage, read_write> dhs: array<f32>;     // dh1 [rows_max, H], dh3 [rows_max, H], dy [rows_max, D]
@group(0) @binding(7) var<uniform> step: Step;
@group(0) @binding(8) var<uniform> params: Params;

/** W2[i, j] of a pool slot, without its row scale. */
fn pool_at(slot: u32, i: u32, j: u32) -> f32 {
  let at = (slot * params.dim + i) * params.stride + j / 4u;
#if INT8
  let word = pool[at];
  return f32(bitcast<i32>(word << (24u - 8u * (j % 4u))) >> 24u);
#else
  return pool[at][j % 4u];
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let H = params.hidden;
  let D = params.dim;
  let s = i / H;
  if (s >= step.n_tokens * params.top_k) {
    return;
  }
  let j = i % H;
  let t = s / params.top_k;
  let route = routes[(t * params.n_layers + params.layer) * params.top_k + s % params.top_k];
  let is_target = is_trained(route);
  var live = is_target || route.slot != NONE;
  if (params.target_only != 0u) {
    live = is_target;
  }
  let xo = t * D;
  var dg = 0.0;
  if (live && is_target) {
    for (var r = 0u; r < D; r++) {
      dg += trained[params.w2_offset + r * params.stride + j / 4u][j % 4u] * dx[xo + r];
    }
  } else if (live) {
    for (var r = 0u; r < D; r++) {
#if INT8
      dg += scales[route.slot * D + r] * pool_at(route.slot, r, j) * dx[xo + r];
#else
      dg += pool_at(route.slot, r, j) * dx[xo + r];
#endif
    }
  }
  dg *= route.weight;
  let o = s * H + j;
  let R = params.rows_max * H;
  let a = hs[o];
  let sig = 1.0 / (1.0 + exp(-a));
  var d1 = dg * hs[R + o] * sig * (1.0 + a * (1.0 - sig));
  var d3 = dg * a * sig;
  if (!live) {
    d1 = 0.0;
    d3 = 0.0;
  }
  dhs[o] = d1;
  dhs[R + o] = d3;
  if (params.target_only != 0u) {
    // dy rows: thread j writes columns j, j + H, ...
    let yo = 2u * R + s * D;
    for (var c = j; c < D; c += H) {
      dhs[yo + c] = select(0.0, route.weight * dx[xo + c], live);
    }
  }
}
