// sigmoid_gate_backward: the gradient of a per-token gate logit z[t] when y += sigmoid(z[t]) s[t]
// (the Qwen2-style shared expert gate): dz[t] = (dy[t] · s[t]) σ (1 − σ), σ = sigmoid(z[t]).
// The gate weights are frozen: dz feeds dF += dz · shared_gate (matmul_dx.wgsl). One thread per token.

override WG: u32 = 64u; // threads per workgroup

struct Params {
  cols: u32, // row length (model width)
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> dy: array<f32>;        // [T, cols] gradient of y
@group(0) @binding(1) var<storage, read> s: array<f32>;         // [T, cols] the gated term
@group(0) @binding(2) var<storage, read> z: array<f32>;         // [T] gate logits
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;  // [T]
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.y * nwg.x * WG + gid.x;
  if (t >= step.n_tokens) {
    return;
  }
  let C = params.cols;
  var d = 0.0;
  for (var i = 0u; i < C; i++) {
    d += dy[t * C + i] * s[t * C + i];
  }
  let sg = 1.0 / (1.0 + exp(-z[t]));
  dz[t] = d * sg * (1.0 - sg);
}
