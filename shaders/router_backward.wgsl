// router_backward: the gradient of the router logits through the routing weights (top-k selection
// is piecewise constant: no gradient flows through which experts were picked). Per token t, with
// dw_k = dx[t] · e[t, k] the gradient of route k's weight (e its expert's output):
//   softmax over all experts:      dr_e = p_e (dw_e − Σ_k w_k dw_k), dw_e = 0 for unselected e
//   softmax over the selected:     the same for selected e, 0 elsewhere
// (`unit` weights have no gradient: the trainer skips this kernel). The router weights are frozen:
// only dr is needed, for dF += dr · gate (matmul_dx.wgsl). One thread per token.

override WG: u32 = 64u; // threads per workgroup

struct Params {
  n_experts: u32, // experts in the layer
  top_k: u32,     // routes per token
  weighting: u32, // WEIGHTING_CODE: 0 softmax over all, 1 softmax over the selected
  layer: u32,     // this layer
  n_layers: u32,  // route rows per token
  dim: u32,       // model width D
}

#include step // struct Step { pos, n_tokens }
#include route // const NONE, struct Route { expert, slot, weight }

@group(0) @binding(0) var<storage, read> dx: array<f32>;        // [T, D] gradient of the layer output
@group(0) @binding(1) var<storage, read> e: array<f32>;         // [T, top_k, D] expert outputs before weighting
@group(0) @binding(2) var<storage, read> routes: array<Route>;  // [T, n_layers, top_k]
@group(0) @binding(3) var<storage, read> logits: array<f32>;    // [T, n_experts] router logits
@group(0) @binding(4) var<storage, read_write> dr: array<f32>;  // [T, n_experts]
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<uniform> params: Params;

/** dx[t] · e[t, k] */
fn route_grad(t: u32, k: u32) -> f32 {
  let D = params.dim;
  var d = 0.0;
  for (var i = 0u; i < D; i++) {
    d += dx[t * D + i] * e[(t * params.top_k + k) * D + i];
  }
  return d;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.y * nwg.x * WG + gid.x;
  if (t >= step.n_tokens) {
    return;
  }
  let E = params.n_experts;
  let rb = (t * params.n_layers + params.layer) * params.top_k;
  var wdw = 0.0; // Σ_k w_k dw_k
  for (var k = 0u; k < params.top_k; k++) {
    wdw += routes[rb + k].weight * route_grad(t, k);
  }
  let o = t * E;
  if (params.weighting == 0u) {
    var m = -3.0e38;
    for (var x = 0u; x < E; x++) {
      m = max(m, logits[o + x]);
    }
    var sum = 0.0;
    for (var x = 0u; x < E; x++) {
      sum += exp(logits[o + x] - m);
    }
    for (var x = 0u; x < E; x++) {
      dr[o + x] = -exp(logits[o + x] - m) / sum * wdw;
    }
  } else {
    for (var x = 0u; x < E; x++) {
      dr[o + x] = 0.0;
    }
  }
  for (var k = 0u; k < params.top_k; k++) {
    let route = routes[rb + k];
    dr[o + route.expert] = route.weight * (route_grad(t, k) - wdw);
  }
}
