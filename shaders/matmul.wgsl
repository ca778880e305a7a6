// matmul: Y[t, r] = Σ_c W[r, c] X[t, c] (+ bias[r]) for the n_tokens rows of X at once (prefill
// GEMM). Variants: INT8 (W is int8 as in matvec_int8: 4 per u32, rows padded to `stride` words,
// one float32 scale per row; with PACKED, unpack4xI8), else float32 rows padded to `stride` vec4s.
//
// A workgroup computes a tile of TILE_T tokens x TILE_R rows, walking the columns TILE_K at a time:
// it stages the Q tile (unpacked to float) and the X tile in workgroup memory as vec4s of four
// consecutive columns, then each thread accumulates a register block of TPT tokens x RPT rows.
// Per four columns a thread loads TPT + RPT vec4s for TPT x RPT four-term dot products: 8 loads
// for 64 multiply-adds, where one accumulator per thread needed a load per multiply-add.
// TILE_R = ROW_LANES * RPT, TILE_T = TOKEN_LANES * TPT, WG = TOKEN_LANES * ROW_LANES.

const RPT: u32 = 4u;                        // rows per thread (register block)
const TPT: u32 = 4u;                        // tokens per thread (register block)
override TILE_T: u32 = 16u;                 // tokens per tile, a multiple of TPT
override ROW_LANES: u32 = 16u;              // threads across the rows of a tile
override TILE_K: u32 = 32u;                 // columns per step, a multiple of 4
override TILE_R: u32 = ROW_LANES * RPT;     // rows per tile
override TOKEN_LANES: u32 = TILE_T / TPT;   // threads across the tokens of a tile
override WG: u32 = TOKEN_LANES * ROW_LANES; // threads per workgroup
override K4: u32 = TILE_K / 4u;             // vec4 columns per step

struct Params {
  rows: u32,     // output rows (R)
  cols: u32,     // input length (C)
  stride: u32,   // 4-column groups per weight row, ceil(C / 4)
  x_offset: u32, // first element of X
  y_offset: u32, // first element of Y
  has_bias: u32, // 1: add bias[r]
}

#include step // struct Step { pos, n_tokens }

#if INT8
@group(0) @binding(0) var<storage, read> w: array<u32>;         // [R, stride] int8 x 4
@group(0) @binding(1) var<storage, read> scales: array<f32>;    // [R]
@group(0) @binding(2) var<storage, read> x: array<f32>;         // [x_offset + T * C]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;   // [y_offset + T * R]
@group(0) @binding(4) var<storage, read> bias: array<f32>;      // [R], a dummy when has_bias = 0
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<uniform> params: Params;
#else
@group(0) @binding(0) var<storage, read> w: array<vec4<f32>>;   // [R, stride]
@group(0) @binding(1) var<storage, read> x: array<f32>;         // [x_offset + T * C]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;   // [y_offset + T * R]
@group(0) @binding(3) var<storage, read> bias: array<f32>;      // [R], a dummy when has_bias = 0
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<uniform> params: Params;
#endif

var<workgroup> ws: array<vec4<f32>, TILE_R * K4>; // [TILE_R, K4] weights of the tile, as floats
var<workgroup> xs: array<vec4<f32>, TILE_T * K4>; // [TILE_T, K4] inputs of the tile

#if INT8
#include int8 // unpack(word): four int8 of a u32 as floats
#endif

/** Weight columns 4j..4j+3 of row r, zero outside the matrix. */
fn weight4(r: u32, j: u32) -> vec4<f32> {
  if (r >= params.rows || j >= params.stride) {
    return vec4<f32>(0.0);
  }
#if INT8
  return unpack(w[r * params.stride + j]);
#else
  return w[r * params.stride + j];
#endif
}

/** X[t, 4j..4j+3], zero outside the tokens and columns. */
fn input4(t: u32, j: u32) -> vec4<f32> {
  let n = params.cols;
  let c = 4u * j;
  if (t >= step.n_tokens || c >= n) {
    return vec4<f32>(0.0);
  }
  let o = params.x_offset + t * n + c;
  return vec4<f32>(
    x[o],
    select(0.0, x[o + 1u], c + 1u < n),
    select(0.0, x[o + 2u], c + 2u < n),
    select(0.0, x[o + 3u], c + 3u < n));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r0 = wid.x * TILE_R;
  let t0 = wid.y * TILE_T;
  let lt = lid / ROW_LANES; // token lane: tokens lt, lt + TOKEN_LANES, ...
  let lr = lid % ROW_LANES; // row lane: rows lr, lr + ROW_LANES, ...
  var acc = array<f32, TPT * RPT>(); // [TPT, RPT]
  for (var k0 = 0u; k0 < params.stride; k0 += K4) {
    for (var i = lid; i < TILE_R * K4; i += WG) {
      ws[i] = weight4(r0 + i / K4, k0 + i % K4);
    }
    for (var i = lid; i < TILE_T * K4; i += WG) {
      xs[i] = input4(t0 + i / K4, k0 + i % K4);
    }
    workgroupBarrier();
    for (var j = 0u; j < K4; j++) {
      var xv: array<vec4<f32>, TPT>;
      for (var tp = 0u; tp < TPT; tp++) {
        xv[tp] = xs[(lt + TOKEN_LANES * tp) * K4 + j];
      }
      for (var rp = 0u; rp < RPT; rp++) {
        let wv = ws[(lr + ROW_LANES * rp) * K4 + j];
        for (var tp = 0u; tp < TPT; tp++) {
          acc[tp * RPT + rp] += dot(wv, xv[tp]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var tp = 0u; tp < TPT; tp++) {
    let t = t0 + lt + TOKEN_LANES * tp;
    if (t >= step.n_tokens) {
      continue;
    }
    for (var rp = 0u; rp < RPT; rp++) {
      let r = r0 + lr + ROW_LANES * rp;
      if (r < params.rows) {
#if INT8
        var v = scales[r] * acc[tp * RPT + rp];
#else
        var v = acc[tp * RPT + rp];
#endif
        if (params.has_bias != 0u) {
          v += bias[r];
        }
        y[params.y_offset + t * params.rows + r] = v;
      }
    }
  }
}
