// rmsnorm_backward: the input gradient of y = w ⊙ x s, s = (mean(x²) + eps)^-1/2, per row t:
//   dx = s w ⊙ dy − x s³ (Σ_c dy_c w_c x_c) / n
// written to `out` or added to it (`accumulate`: the residual stream the norm reads from). s is
// recomputed from x (one more reduction) instead of kept by the forward.
// TPR threads share a row (WG / TPR rows per workgroup), their partial sums added by a tree in
// workgroup memory; TPR = 1 (software adapters) sums a row per thread, with no tree.

override WG: u32 = 64u; // threads per workgroup
override TPR: u32 = 1u; // threads per row: a power of two dividing WG

struct Params {
  n: u32,          // row length
  eps: f32,        // norm epsilon
  accumulate: u32, // 1: out += dx, else out = dx
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> dy: array<f32>;         // [T, n] gradient of the norm's output
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [T, n] the norm's input
@group(0) @binding(2) var<storage, read> w: array<f32>;          // [n]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [T, n]
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> part_ss: array<f32, WG>;
var<workgroup> part_dot: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = params.n;
  let lane = lid % TPR;
  let t = wid.x * (WG / TPR) + lid / TPR;
  let live = t < step.n_tokens;
  let o = t * n;
  var ss = 0.0;
  var d = 0.0;
  if (live) {
    for (var i = lane; i < n; i += TPR) {
      let v = x[o + i];
      ss += v * v;
      d += dy[o + i] * w[i] * v;
    }
  }
  part_ss[lid] = ss;
  part_dot[lid] = d;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      part_ss[lid] += part_ss[lid + s];
      part_dot[lid] += part_dot[lid + s];
    }
    workgroupBarrier();
  }
  if (!live) {
    return;
  }
  let scale = 1.0 / sqrt(part_ss[lid - lane] / f32(n) + params.eps);
  let k = scale * scale * scale * part_dot[lid - lane] / f32(n);
  for (var i = lane; i < n; i += TPR) {
    var v = scale * w[i] * dy[o + i] - x[o + i] * k;
    if (params.accumulate != 0u) {
      v += out[o + i];
    }
    out[o + i] = v;
  }
}
