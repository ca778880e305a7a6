// attention_train: the training forward's causal attention, one thread per (query head h, token t):
//   att[t, h] = Σ_u softmax_u(q[t, h] · k_u / sqrt(head_dim)) v_u   over the cached rows u = 0 ..= pos + t
// with an online softmax (running max m and sum l; the accumulator is rescaled by exp(m_old − m)
// when the max grows). It computes what attention.wgsl computes, without its workgroup reductions:
// a workgroup per (h, t) pays a barrier per tree level, which SwiftShader runs as fiber switches
// (tuning.ts), and a training pass has few tokens but many heads times tokens. Query head h reads
// key/value head h / (n_heads / n_kv_heads) (grouped-query). The query and the accumulator are
// private arrays of MAX_HEAD_DIM floats.

const MAX_HEAD_DIM: u32 = 256u; // ATTENTION_MAX_HEAD_DIM
override WG: u32 = 64u;         // threads per workgroup

struct Params {
  n_heads: u32,    // query heads
  n_kv_heads: u32, // key/value heads, divides n_heads
  head_dim: u32,   // at most MAX_HEAD_DIM
  kv_offset: u32,  // first element of this layer in the caches: layer * rows * kv_dim
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> q: array<f32>;          // [T, n_heads * head_dim] rotated queries
@group(0) @binding(1) var<storage, read> k_cache: array<f32>;    // [layers, rows, kv_dim] rotated keys
@group(0) @binding(2) var<storage, read> v_cache: array<f32>;    // [layers, rows, kv_dim]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [T, n_heads * head_dim]
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<uniform> params: Params;

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
  let q_base = t * params.n_heads * hd + h * hd;
  let norm = sqrt(f32(hd));
  var qs: array<f32, MAX_HEAD_DIM>;
  var acc: array<f32, MAX_HEAD_DIM>;
  for (var d = 0u; d < hd; d++) {
    qs[d] = q[q_base + d];
  }
  var m = -3.0e38;
  var l = 0.0;
  for (var u = 0u; u <= step.pos + t; u++) {
    let kr = head_base + u * kv_dim;
    var s = 0.0;
    for (var d = 0u; d < hd; d++) {
      s += qs[d] * k_cache[kr + d];
    }
    s /= norm;
    if (s > m) {
      let c = exp(m - s);
      l *= c;
      for (var d = 0u; d < hd; d++) {
        acc[d] *= c;
      }
      m = s;
    }
    let p = exp(s - m);
    l += p;
    for (var d = 0u; d < hd; d++) {
      acc[d] += p * v_cache[kr + d];
    }
  }
  for (var d = 0u; d < hd; d++) {
    out[q_base + d] = acc[d] / l;
  }
}
