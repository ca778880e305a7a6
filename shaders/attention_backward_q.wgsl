// attention_backward_q: the first half of the attention backward, one thread per (query head h,
// token t). Forward (attention_train.wgsl): s_u = q[t, h] · k_u / sqrt(head_dim) over the cached
// rows u = 0 ..= pos + t, P = softmax(s), att[t, h] = Σ_u P_u v_u. Given datt = dL/datt[t, h]:
//   dP_u = datt · v_u,  dS_u = P_u (dP_u − Σ_w P_w dP_w) / sqrt(head_dim),  dq[t, h] = Σ_u dS_u k_u.
// P is recomputed from q and the caches (exact two-pass softmax: no per-layer copy of P is kept),
// and P and dS are written to `probs` and `dscores` (n_heads, pitch, pitch) for
// attention_backward_kv, which sums them over queries into dk and dv. Query head h reads key/value
// head h / (n_heads / n_kv_heads) (grouped-query). A thread walks its own rows only: no barriers.

const MAX_HEAD_DIM: u32 = 256u; // ATTENTION_MAX_HEAD_DIM
override WG: u32 = 64u;         // threads per workgroup

struct Params {
  n_heads: u32,    // query heads
  n_kv_heads: u32, // key/value heads, divides n_heads
  head_dim: u32,   // at most MAX_HEAD_DIM
  kv_offset: u32,  // first element of this layer in the caches: layer * rows * kv_dim
  pitch: u32,      // row length of probs / dscores: the most positions a pass has
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> q: array<f32>;              // [T, n_heads * head_dim] rotated queries
@group(0) @binding(1) var<storage, read> k_cache: array<f32>;        // [layers, rows, kv_dim] rotated keys
@group(0) @binding(2) var<storage, read> v_cache: array<f32>;        // [layers, rows, kv_dim]
@group(0) @binding(3) var<storage, read> datt: array<f32>;           // [T, n_heads * head_dim]
@group(0) @binding(4) var<storage, read_write> dq: array<f32>;       // [T, n_heads * head_dim]
@group(0) @binding(5) var<storage, read_write> probs: array<f32>;    // [n_heads, pitch, pitch]
@group(0) @binding(6) var<storage, read_write> dscores: array<f32>;  // [n_heads, pitch, pitch]
@group(0) @binding(7) var<uniform> step: Step;
@group(0) @binding(8) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let h = i % params.n_heads;
  let t = i / params.n_heads;
  if (t >= step.n_tokens) {
    return;
  }
  let hd = params.head_dim;
  let kv_dim = params.n_kv_heads * hd;
  let head_base = params.kv_offset + (h / (params.n_heads / params.n_kv_heads)) * hd;
  let last = step.pos + t;
  let q_base = t * params.n_heads * hd + h * hd;
  let row = (h * params.pitch + t) * params.pitch;
  let norm = sqrt(f32(hd));
  var qs: array<f32, MAX_HEAD_DIM>;
  var ds: array<f32, MAX_HEAD_DIM>;
  for (var d = 0u; d < hd; d++) {
    qs[d] = q[q_base + d];
    ds[d] = datt[q_base + d];
  }
  // scores and their max
  var m = -3.0e38;
  for (var u = 0u; u <= last; u++) {
    let kr = head_base + u * kv_dim;
    var s = 0.0;
    for (var d = 0u; d < hd; d++) {
      s += qs[d] * k_cache[kr + d];
    }
    s /= norm;
    probs[row + u] = s;
    m = max(m, s);
  }
  // exp and their sum
  var l = 0.0;
  for (var u = 0u; u <= last; u++) {
    let p = exp(probs[row + u] - m);
    probs[row + u] = p;
    l += p;
  }
  // P, dP and Σ P dP
  var pdp = 0.0;
  for (var u = 0u; u <= last; u++) {
    let p = probs[row + u] / l;
    probs[row + u] = p;
    let vr = head_base + u * kv_dim;
    var dp = 0.0;
    for (var d = 0u; d < hd; d++) {
      dp += ds[d] * v_cache[vr + d];
    }
    dscores[row + u] = dp;
    pdp += p * dp;
  }
  // dS, and dq = Σ_u dS_u k_u (ds now holds dq)
  for (var d = 0u; d < hd; d++) {
    ds[d] = 0.0;
  }
  for (var u = 0u; u <= last; u++) {
    let g = probs[row + u] * (dscores[row + u] - pdp) / norm;
    dscores[row + u] = g;
    let kr = head_base + u * kv_dim;
    for (var d = 0u; d < hd; d++) {
      ds[d] += g * k_cache[kr + d];
    }
  }
  for (var d = 0u; d < hd; d++) {
    dq[q_base + d] = ds[d];
  }
}
