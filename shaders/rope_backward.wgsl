// rope_backward: the gradient through RoPE is the inverse rotation, in place on the gradients of
// the rotated q and k of the pass's tokens: (d0, d1) <- (d0 c + d1 s, d1 c − d0 s) on interleaved
// pairs (2i, 2i+1) of every head, c and s from the same table as rope.wgsl.
//
// One thread per pair: per token, n_heads * half q pairs then n_kv_heads * half k pairs.

override WG: u32 = 256u; // threads per workgroup

struct Params {
  n_heads: u32,    // query heads
  n_kv_heads: u32, // key/value heads
  head_dim: u32,   // even
  sin_offset: u32, // first sin element in `table`: max_seq_len * head_dim / 2
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read_write> dq: array<f32>; // [T, n_heads * head_dim]
@group(0) @binding(1) var<storage, read_write> dk: array<f32>; // [T, n_kv_heads * head_dim]
@group(0) @binding(2) var<storage, read> table: array<f32>;    // cos [max_seq_len, head_dim / 2] then sin
@group(0) @binding(3) var<uniform> step: Step;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let half = params.head_dim / 2u;
  let q_pairs = params.n_heads * half;
  let per_token = q_pairs + params.n_kv_heads * half;
  let t = i / per_token;
  if (t >= step.n_tokens) {
    return;
  }
  let j = i % per_token;
  let pos = step.pos + t;
  if (j < q_pairs) {
    let p = j % half;
    let c = table[pos * half + p];
    let s = table[params.sin_offset + pos * half + p];
    let a = t * params.n_heads * params.head_dim + (j / half) * params.head_dim + 2u * p;
    let d0 = dq[a];
    let d1 = dq[a + 1u];
    dq[a] = d0 * c + d1 * s;
    dq[a + 1u] = d1 * c - d0 * s;
  } else {
    let jk = j - q_pairs;
    let p = jk % half;
    let c = table[pos * half + p];
    let s = table[params.sin_offset + pos * half + p];
    let a = t * params.n_kv_heads * params.head_dim + (jk / half) * params.head_dim + 2u * p;
    let d0 = dk[a];
    let d1 = dk[a + 1u];
    dk[a] = d0 * c + d1 * s;
    dk[a + 1u] = d1 * c - d0 * s;
  }
}
