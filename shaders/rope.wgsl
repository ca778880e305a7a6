// rope: rotate interleaved pairs (2i, 2i+1) of every q and k head of the pass's tokens by the
// angles of their positions, and store k and v into the layer's KV cache rows (the cache write is
// folded in here). The cos/sin table is ropeTable() computed once on the CPU (float64, stored
// float32) and uploaded, so every backend rotates by the same numbers.
//
// One thread per pair: per token, n_heads * half q pairs then n_kv_heads * half k/v pairs.

override WG: u32 = 256u; // threads per workgroup

struct Params {
  n_heads: u32,    // query heads
  n_kv_heads: u32, // key/value heads
  head_dim: u32,   // even
  kv_offset: u32,  // first element of this layer in the caches: layer * max_seq_len * kv_dim
  sin_offset: u32, // first sin element in `table`: max_seq_len * head_dim / 2
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read_write> q: array<f32>;       // [T, n_heads * head_dim], rotated in place
@group(0) @binding(1) var<storage, read> k: array<f32>;             // [T, kv_dim]
@group(0) @binding(2) var<storage, read> v: array<f32>;             // [T, kv_dim]
@group(0) @binding(3) var<storage, read_write> k_cache: array<f32>; // [n_layers, max_seq_len, kv_dim]
@group(0) @binding(4) var<storage, read_write> v_cache: array<f32>; // [n_layers, max_seq_len, kv_dim]
@group(0) @binding(5) var<storage, read> table: array<f32>;         // cos [max_seq_len, head_dim / 2] then sin, same shape
@group(0) @binding(6) var<uniform> step: Step;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let half = params.head_dim / 2u;
  let q_pairs = params.n_heads * half;
  let kv_pairs = params.n_kv_heads * half;
  let per_token = q_pairs + kv_pairs;
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
    let x0 = q[a];
    let x1 = q[a + 1u];
    q[a] = x0 * c - x1 * s;
    q[a + 1u] = x0 * s + x1 * c;
  } else {
    let jk = j - q_pairs;
    let p = jk % half;
    let c = table[pos * half + p];
    let s = table[params.sin_offset + pos * half + p];
    let kv_dim = params.n_kv_heads * params.head_dim;
    let e = (jk / half) * params.head_dim + 2u * p; // element within the token's k / v
    let a = t * kv_dim + e;
    let x0 = k[a];
    let x1 = k[a + 1u];
    let row = params.kv_offset + pos * kv_dim + e;
    k_cache[row] = x0 * c - x1 * s;
    k_cache[row + 1u] = x0 * s + x1 * c;
    v_cache[row] = v[a];
    v_cache[row + 1u] = v[a + 1u];
  }
}
