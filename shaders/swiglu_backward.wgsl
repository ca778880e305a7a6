// swiglu_backward: the backward of h = silu(a) ⊙ b scaled per row by gate[t] (the shared expert:
// sigmoid(z[t]) when gated, else 1), given dg = the gradient of the unscaled product (W2ᵀ dy):
//   dg' = gate[t] dg,  da = dg' ⊙ b ⊙ σ(a) (1 + a (1 − σ(a))),  db = dg' ⊙ silu(a)
// Elementwise over the pass's rows.

override WG: u32 = 64u; // threads per workgroup

struct Params {
  cols: u32,  // row length (hidden width)
  gated: u32, // 1: scale row t by sigmoid(z[t])
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> dg: array<f32>;         // [T, cols] W2ᵀ dy
@group(0) @binding(1) var<storage, read> a: array<f32>;          // [T, cols] w1 x
@group(0) @binding(2) var<storage, read> b: array<f32>;          // [T, cols] w3 x
@group(0) @binding(3) var<storage, read> z: array<f32>;          // [T] gate logits, a dummy unless gated
@group(0) @binding(4) var<storage, read_write> da: array<f32>;   // [T, cols]
@group(0) @binding(5) var<storage, read_write> db: array<f32>;   // [T, cols]
@group(0) @binding(6) var<uniform> step: Step;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let t = i / params.cols;
  if (t >= step.n_tokens) {
    return;
  }
  var d = dg[i];
  if (params.gated != 0u) {
    d *= 1.0 / (1.0 + exp(-z[t]));
  }
  let x = a[i];
  let sig = 1.0 / (1.0 + exp(-x));
  da[i] = d * b[i] * sig * (1.0 + x * (1.0 - sig));
  db[i] = d * x * sig;
}
