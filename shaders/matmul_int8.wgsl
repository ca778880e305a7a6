// matmul_int8: Y[t, r] = scale[r] * Σ_c Q[r, c] X[t, c] (+ bias[r]) for the n_tokens rows of X at
// once (prefill GEMM). Q as in matvec_int8 (4 int8 per u32, rows padded to `stride` words).
//
// A workgroup computes a tile of TILE_T tokens x TILE_R rows, walking the columns TILE_K at a time:
// it stages the Q tile (unpacked to float) and the X tile in workgroup memory, then each thread
// accumulates RPT rows of one token. TILE_R = ROW_LANES * RPT; WG = TILE_T * ROW_LANES.

const RPT: u32 = 4u;                    // rows per thread (private accumulators)
override TILE_T: u32 = 16u;             // tokens per tile
override ROW_LANES: u32 = 16u;          // threads across the rows of a tile
override TILE_K: u32 = 32u;             // columns per step, a multiple of 4
override TILE_R: u32 = ROW_LANES * RPT; // rows per tile
override WG: u32 = TILE_T * ROW_LANES;  // threads per workgroup
override WS_PITCH: u32 = TILE_K + 1u;   // padded row pitch of the staged weights (fewer bank conflicts)

struct Params {
  rows: u32,     // output rows (R)
  cols: u32,     // input length (C)
  stride: u32,   // u32 words per weight row, ceil(C / 4)
  x_offset: u32, // first element of X
  y_offset: u32, // first element of Y
  has_bias: u32, // 1: add bias[r]
}

struct Step {
  pos: u32,      // position of the first token
  n_tokens: u32, // tokens in this pass (T)
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;         // [R, stride] int8 x 4
@group(0) @binding(1) var<storage, read> scales: array<f32>;    // [R]
@group(0) @binding(2) var<storage, read> x: array<f32>;         // [x_offset + T * C]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;   // [y_offset + T * R]
@group(0) @binding(4) var<storage, read> bias: array<f32>;      // [R], a dummy when has_bias = 0
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<uniform> params: Params;

var<workgroup> ws: array<f32, TILE_R * WS_PITCH>;
var<workgroup> xs: array<f32, TILE_T * TILE_K>;

fn unpack(word: u32) -> vec4<f32> {
#if PACKED
  return vec4<f32>(unpack4xI8(word));
#else
  let v = bitcast<vec4<i32>>(vec4<u32>(word << 24u, word << 16u, word << 8u, word));
  return vec4<f32>(v >> vec4<u32>(24u));
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r0 = wid.x * TILE_R;
  let t0 = wid.y * TILE_T;
  let lt = lid / ROW_LANES;
  let lr = lid % ROW_LANES;
  let n_tokens = step.n_tokens;
  var acc = array<f32, RPT>();
  for (var k0 = 0u; k0 < params.cols; k0 += TILE_K) {
    // stage Q[r0.., k0..] (zeros outside the matrix)
    for (var i = lid; i < TILE_R * (TILE_K / 4u); i += WG) {
      let rr = i / (TILE_K / 4u);
      let jj = i % (TILE_K / 4u);
      let r = r0 + rr;
      let j = k0 / 4u + jj;
      var v = vec4<f32>(0.0);
      if (r < params.rows && j < params.stride) {
        v = unpack(w[r * params.stride + j]);
      }
      let o = rr * WS_PITCH + 4u * jj;
      ws[o] = v.x;
      ws[o + 1u] = v.y;
      ws[o + 2u] = v.z;
      ws[o + 3u] = v.w;
    }
    // stage X[t0.., k0..]
    for (var i = lid; i < TILE_T * TILE_K; i += WG) {
      let t = t0 + i / TILE_K;
      let c = k0 + i % TILE_K;
      xs[i] = select(0.0, x[params.x_offset + t * params.cols + c], t < n_tokens && c < params.cols);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      let xv = xs[lt * TILE_K + kk];
      for (var i = 0u; i < RPT; i++) {
        acc[i] += ws[(lr + ROW_LANES * i) * WS_PITCH + kk] * xv;
      }
    }
    workgroupBarrier();
  }
  let t = t0 + lt;
  if (t < n_tokens) {
    for (var i = 0u; i < RPT; i++) {
      let r = r0 + lr + ROW_LANES * i;
      if (r < params.rows) {
        var v = scales[r] * acc[i];
        if (params.has_bias != 0u) {
          v += bias[r];
        }
        y[params.y_offset + t * params.rows + r] = v;
      }
    }
  }
}
