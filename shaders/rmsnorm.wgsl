// rmsnorm: y[t] = w ⊙ x[t] / sqrt(mean(x[t]^2) + eps), one workgroup per token row.
// With last_only = 1, one workgroup normalises row n_tokens - 1 into row 0 of y (the final norm
// before the classifier, which only the last token of a pass needs).

override WG: u32 = 256u; // threads per workgroup (a power of two)

struct Params {
  n: u32,         // row length
  eps: f32,       // norm epsilon
  last_only: u32, // 1: normalise only the last row, into row 0
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> x: array<f32>;         // [T, n]
@group(0) @binding(1) var<storage, read> w: array<f32>;         // [n]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;   // [T, n] ([1, n] when last_only)
@group(0) @binding(3) var<uniform> step: Step;
@group(0) @binding(4) var<uniform> params: Params;

#include tree_sum // var<workgroup> partial; tree_sum(v, lid, width): Σ v over `width` threads

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = params.n;
  var src = wid.x * n;
  var dst = src;
  if (params.last_only != 0u) {
    src = (step.n_tokens - 1u) * n;
    dst = 0u;
  }
  var ss = 0.0;
  for (var i = lid; i < n; i += WG) {
    let v = x[src + i];
    ss += v * v;
  }
  let scale = 1.0 / sqrt(tree_sum(ss, lid, WG) / f32(n) + params.eps);
  for (var i = lid; i < n; i += WG) {
    y[dst + i] = w[i] * (scale * x[src + i]);
  }
}
