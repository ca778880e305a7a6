// adamw: one AdamW step (Loshchilov & Hutter 2019, as torch.optim.AdamW and src/train/adamw.ts
// compute it) on n float32 parameters, in place:
//   p ← p (1 − lr wd);  m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;  p ← p − lr (m / c1) / (sqrt(v / c2) + eps)
// with the bias corrections c1 = 1 − β1^t, c2 = 1 − β2^t of step t computed on the host (float64)
// and written with the other Params before each step. One thread per parameter.

override WG: u32 = 64u; // threads per workgroup

struct Params {
  n: u32,      // parameters
  lr: f32,     // learning rate
  beta1: f32,  // first-moment decay
  beta2: f32,  // second-moment decay
  eps: f32,    // added to sqrt(v̂)
  decay: f32,  // 1 − lr · weight_decay
  c1: f32,     // 1 − β1^t
  c2: f32,     // 1 − β2^t
}

@group(0) @binding(0) var<storage, read_write> p: array<f32>;  // [n] parameters
@group(0) @binding(1) var<storage, read> g: array<f32>;        // [n] gradients
@group(0) @binding(2) var<storage, read_write> m: array<f32>;  // [n] first moments
@group(0) @binding(3) var<storage, read_write> v: array<f32>;  // [n] second moments
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  if (i >= params.n) {
    return;
  }
  let gi = g[i];
  let mi = params.beta1 * m[i] + (1.0 - params.beta1) * gi;
  let vi = params.beta2 * v[i] + (1.0 - params.beta2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = p[i] * params.decay - params.lr * (mi / params.c1) / (sqrt(vi / params.c2) + params.eps);
}
