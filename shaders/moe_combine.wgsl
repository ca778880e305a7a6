// moe_combine: a residual add of weighted terms, out-of-place so the forward keeps its input:
//   y[t] = x[t] + (Σ_k w[t, k] e[t, k] + gate[t] s[t])
// After the experts: e = each route's expert output, w = its routing weight, s = the shared
// expert's output, gate = sigmoid(z[t]) when gated else 1 (the CPU reference's order: the weighted
// experts, then the shared expert, then the residual). After attention: one term, weight 1
// (`use_routes` 0, no s): y = x + wo·att.

override WG: u32 = 64u; // threads per workgroup

struct Params {
  cols: u32,       // row length
  terms: u32,      // e rows per token (top_k, or 1)
  use_routes: u32, // 1: weight term k by routes[t, layer, k].weight, else 1
  layer: u32,      // this layer (routes row)
  n_layers: u32,   // route rows per token
  has_s: u32,      // 1: add gate * s
  gated: u32,      // 1: gate = sigmoid(z[t]), else 1
}

#include step // struct Step { pos, n_tokens }
#include route // const NONE, struct Route { expert, slot, weight }

@group(0) @binding(0) var<storage, read> x: array<f32>;         // [T, cols]
@group(0) @binding(1) var<storage, read> e: array<f32>;         // [T, terms, cols]
@group(0) @binding(2) var<storage, read> routes: array<Route>;  // [T, n_layers, terms], a dummy unless use_routes
@group(0) @binding(3) var<storage, read> s: array<f32>;         // [T, cols], a dummy unless has_s
@group(0) @binding(4) var<storage, read> z: array<f32>;         // [T] gate logits, a dummy unless gated
@group(0) @binding(5) var<storage, read_write> y: array<f32>;   // [T, cols]
@group(0) @binding(6) var<uniform> step: Step;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let C = params.cols;
  let t = i / C;
  if (t >= step.n_tokens) {
    return;
  }
  let c = i % C;
  var m = 0.0;
  for (var k = 0u; k < params.terms; k++) {
    var w = 1.0;
    if (params.use_routes != 0u) {
      w = routes[(t * params.n_layers + params.layer) * params.terms + k].weight;
    }
    m += w * e[(t * params.terms + k) * C + c];
  }
  if (params.has_s != 0u) {
    var gate = 1.0;
    if (params.gated != 0u) {
      gate = 1.0 / (1.0 + exp(-z[t]));
    }
    m += gate * s[i];
  }
  y[i] = x[i] + m;
}
