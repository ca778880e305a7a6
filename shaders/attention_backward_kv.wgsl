// attention_backward_kv: the second half of the attention backward, one thread per (key row u,
// key/value head g, element d): sums attention_backward_q's P and dS over the queries that saw row u,
//   dk[u, g] = Σ_{h of g} Σ_{t >= u} dS[h, t, u] q[t, h],   dv[u, g] = Σ_{h of g} Σ_{t >= u} P[h, t, u] datt[t, h],
// in ascending (h, t) order, no atomics. For training passes, which start at position 0: key row u
// is token u of the pass (step.pos must be 0).

override WG: u32 = 64u; // threads per workgroup

struct Params {
  n_heads: u32,    // query heads
  n_kv_heads: u32, // key/value heads, divides n_heads
  head_dim: u32,   // elements per head
  pitch: u32,      // row length of probs / dscores
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> q: array<f32>;          // [T, n_heads * head_dim]
@group(0) @binding(1) var<storage, read> datt: array<f32>;       // [T, n_heads * head_dim]
@group(0) @binding(2) var<storage, read> probs: array<f32>;      // [n_heads, pitch, pitch]
@group(0) @binding(3) var<storage, read> dscores: array<f32>;    // [n_heads, pitch, pitch]
@group(0) @binding(4) var<storage, read_write> dk: array<f32>;   // [T, n_kv_heads * head_dim]
@group(0) @binding(5) var<storage, read_write> dv: array<f32>;   // [T, n_kv_heads * head_dim]
@group(0) @binding(6) var<uniform> step: Step;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let hd = params.head_dim;
  let kv_dim = params.n_kv_heads * hd;
  let u = i / kv_dim;
  let n = step.n_tokens;
  if (u >= n) {
    return;
  }
  let g = (i % kv_dim) / hd;
  let d = i % hd;
  let group = params.n_heads / params.n_kv_heads;
  let q_dim = params.n_heads * hd;
  var dkd = 0.0;
  var dvd = 0.0;
  for (var hh = 0u; hh < group; hh++) {
    let h = g * group + hh;
    for (var t = u; t < n; t++) {
      let at = (h * params.pitch + t) * params.pitch + u;
      let qo = t * q_dim + h * hd + d;
      dkd += dscores[at] * q[qo];
      dvd += probs[at] * datt[qo];
    }
  }
  dk[i] = dkd;
  dv[i] = dvd;
}
