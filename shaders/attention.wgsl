// attention: out[t, h] = Σ_j softmax_j(q[t, h] · K[j] / sqrt(head_dim)) V[j] over the cached
// positions j = 0 ..= pos + t (causal: a token of a prefill pass sees the rows written before it),
// one workgroup per (query head, token); query head h reads key/value head h / (n_heads / n_kv_heads)
// (grouped-query attention).
//
// Keys are walked WG at a time with an online softmax (running max m and sum l; the accumulator is
// rescaled by exp(m_old - m_new) per tile), so any sequence length works with O(WG) workgroup
// memory. Thread d < head_dim owns output element d: head_dim must be at most WG.

override WG: u32 = 64u; // threads per workgroup: a power of two >= head_dim

struct Params {
  n_heads: u32,    // query heads
  n_kv_heads: u32, // key/value heads, divides n_heads
  head_dim: u32,   // at most WG
  kv_offset: u32,  // first element of this layer in the caches: layer * max_seq_len * kv_dim
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> q: array<f32>;          // [T, n_heads * head_dim]
@group(0) @binding(1) var<storage, read> k_cache: array<f32>;    // [n_layers, max_seq_len, kv_dim]
@group(0) @binding(2) var<storage, read> v_cache: array<f32>;    // [n_layers, max_seq_len, kv_dim]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [T, n_heads * head_dim]
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<uniform> params: Params;

const NEG: f32 = -3.0e38; // below any score, finite so that NEG - NEG is 0, not NaN

var<workgroup> qs: array<f32, WG>;  // the query head
var<workgroup> ps: array<f32, WG>;  // exp(score - m) of the tile
var<workgroup> red: array<f32, WG>; // reduction scratch

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let t = wid.y;
  let hd = params.head_dim;
  let kv_dim = params.n_kv_heads * hd;
  let head_base = (h / (params.n_heads / params.n_kv_heads)) * hd;
  let last = step.pos + t; // last position this token sees
  let q_base = t * params.n_heads * hd + h * hd;
  let norm = sqrt(f32(hd));
  if (lid < hd) {
    qs[lid] = q[q_base + lid];
  }
  workgroupBarrier();
  var m = NEG;
  var l = 0.0;
  var acc = 0.0;
  for (var s = 0u; s <= last; s += WG) {
    let j = s + lid;
    var score = NEG;
    if (j <= last) {
      let kr = params.kv_offset + j * kv_dim + head_base;
      var d = 0.0;
      for (var i = 0u; i < hd; i++) {
        d += qs[i] * k_cache[kr + i];
      }
      score = d / norm;
    }
    red[lid] = score;
    workgroupBarrier();
    for (var o = WG / 2u; o > 0u; o >>= 1u) {
      if (lid < o) {
        red[lid] = max(red[lid], red[lid + o]);
      }
      workgroupBarrier();
    }
    let m_new = max(m, red[0]);
    workgroupBarrier();
    var p = 0.0;
    if (j <= last) {
      p = exp(score - m_new);
    }
    ps[lid] = p;
    red[lid] = p;
    workgroupBarrier();
    for (var o = WG / 2u; o > 0u; o >>= 1u) {
      if (lid < o) {
        red[lid] += red[lid + o];
      }
      workgroupBarrier();
    }
    let corr = exp(m - m_new);
    l = l * corr + red[0];
    if (lid < hd) {
      var a = acc * corr;
      let n = min(WG, last + 1u - s);
      let vr = params.kv_offset + s * kv_dim + head_base + lid;
      for (var jj = 0u; jj < n; jj++) {
        a += ps[jj] * v_cache[vr + jj * kv_dim];
      }
      acc = a;
    }
    m = m_new;
    workgroupBarrier();
  }
  if (lid < hd) {
    out[q_base + lid] = acc / l;
  }
}
