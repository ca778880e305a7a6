// router: from the router logits (computed by matvec/matmul), per token: the top_k experts by
// descending logit (ties to the lower index), their weights per router_weighting, and the pool slot
// of each from the residency table. A selected expert that is not resident gets slot NONE (the
// expert kernels skip it) and is appended as (layer, expert) to the `missing` list, whose first
// word is an atomic counter (cleared before each pass).
//
// One thread per token; top_k passes over the logits, each taking the best expert that comes after
// the previous pick in (logit descending, index ascending) order, so no per-thread list is needed.

override WG: u32 = 64u; // threads (tokens) per workgroup

struct Params {
  n_experts: u32, // experts in the layer
  top_k: u32,     // experts per token
  weighting: u32, // 0 softmax (over all experts), 1 softmax_topk (over the selected), 2 unit
  layer: u32,     // this layer
  n_layers: u32,  // route rows per token
  capacity: u32,  // (layer, expert) pairs `missing` can hold
}

#include step // struct Step { pos, n_tokens }
#include route // const NONE, struct Route { expert, slot, weight }

@group(0) @binding(0) var<storage, read> logits: array<f32>;              // [T, n_experts]
@group(0) @binding(1) var<storage, read> residency: array<u32>;           // [n_layers, n_experts] slot or NONE
@group(0) @binding(2) var<storage, read_write> routes: array<Route>;       // [T, n_layers, top_k]
@group(0) @binding(3) var<storage, read_write> missing: array<atomic<u32>>; // [1 + 2 * capacity]: count, then (layer, expert) pairs
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  if (t >= step.n_tokens) {
    return;
  }
  let n = params.n_experts;
  let base = t * n;
  let out = (t * params.n_layers + params.layer) * params.top_k;
  var prev = NONE;
  var prev_logit = 0.0;
  var first = 0.0;    // the top logit: the max over all experts and over the selected
  var sum_sel = 0.0;  // Σ over the selected of exp(logit - first)
  for (var k = 0u; k < params.top_k; k++) {
    var best = NONE;
    var best_logit = 0.0;
    for (var e = 0u; e < n; e++) {
      let v = logits[base + e];
      let after = prev == NONE || v < prev_logit || (v == prev_logit && e > prev);
      if (after && (best == NONE || v > best_logit)) {
        best = e;
        best_logit = v;
      }
    }
    prev = best;
    prev_logit = best_logit;
    if (k == 0u) {
      first = best_logit;
    }
    sum_sel += exp(best_logit - first);
    let slot = residency[params.layer * n + best];
    if (slot == NONE) {
      let i = atomicAdd(&missing[0], 1u);
      if (i < params.capacity) {
        atomicStore(&missing[1u + 2u * i], params.layer);
        atomicStore(&missing[2u + 2u * i], best);
      }
    }
    routes[out + k] = Route(best, slot, 0.0);
  }
  var denom = sum_sel;
  if (params.weighting == 0u) {
    denom = 0.0;
    for (var e = 0u; e < n; e++) {
      denom += exp(logits[base + e] - first);
    }
  }
  for (var k = 0u; k < params.top_k; k++) {
    var wk = 1.0;
    if (params.weighting != 2u) {
      wk = exp(logits[base + routes[out + k].expert] - first) / denom;
    }
    routes[out + k].weight = wk;
  }
}
