// add: the residual. y[t] += a[t] (+ gate[t] * b[t] when has_b), gate = sigmoid(g[t]) when gated
// else 1. After attention: x += wo·att. After the FFN: x += moe (+ shared expert output, scaled by
// its sigmoid gate in Qwen2-style models), in the CPU reference's order: x + (moe + gate * shared).

override WG: u32 = 256u; // threads per workgroup

struct Params {
  cols: u32,  // row length
  has_b: u32, // 1: add gate * b too
  gated: u32, // 1: gate = sigmoid(g[t]), else 1
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read_write> y: array<f32>;  // [T, cols]
@group(0) @binding(1) var<storage, read> a: array<f32>;        // [T, cols]
@group(0) @binding(2) var<storage, read> b: array<f32>;        // [T, cols], a dummy unless has_b
@group(0) @binding(3) var<storage, read> g: array<f32>;        // [T] gate logits, a dummy unless gated
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let t = i / params.cols;
  if (t >= step.n_tokens) {
    return;
  }
  var v = a[i];
  if (params.has_b != 0u) {
    var gate = 1.0;
    if (params.gated != 0u) {
      gate = 1.0 / (1.0 + exp(-g[t]));
    }
    v += gate * b[i];
  }
  y[i] += v;
}
