// swiglu: h = silu(a) ⊙ b, silu(x) = x / (1 + exp(-x)), over the pass's T rows of `cols`.
// Used by the shared expert (routed experts fuse it into moe_gate_up).

override WG: u32 = 256u; // threads per workgroup

struct Params {
  cols: u32, // row length (hidden width)
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> a: array<f32>;        // [T, cols] w1 x
@group(0) @binding(1) var<storage, read> b: array<f32>;        // [T, cols] w3 x
@group(0) @binding(2) var<storage, read_write> h: array<f32>;  // [T, cols]
@group(0) @binding(3) var<uniform> step: Step;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  if (i >= step.n_tokens * params.cols) {
    return;
  }
  let x = a[i];
  h[i] = x / (1.0 + exp(-x)) * b[i];
}
