#if SUBGROUP
enable subgroups;
#endif
// matvec_int8: y = scale ⊙ (Q x) (+ bias) for one token (decode).
//
// Q is an int8 matrix packed 4 values per u32 word (little-endian: column 4j is the low byte of
// word j), rows zero-padded to `stride` words; each row has one float32 scale. TPR threads share a
// row: each sums dot(q[4j..4j+3], x[4j..4j+3]) over words j = lane, lane + TPR, ...; a tree in
// workgroup memory adds the TPR partial sums; the scale multiplies the integer-weighted sum once.
// Variants: PACKED (unpack4xI8, WGSL feature packed_4x8_integer_dot_product), else shifts.
// SUBGROUP (TPR at most the subgroup size): the TPR partial sums are added by subgroupShuffleXor
// butterflies instead of a tree in workgroup memory with a barrier per level.
// VEC4 (cols a multiple of 16, x_offset a multiple of 4): Q is read 16 int8 (a vec4<u32>) and x 16
// floats (four vec4) per load, with no bounds checks: a quarter of the load instructions, which is
// what a memory-bound GEMV on a real GPU is limited by.
// RPT > 1: a thread sums RPT consecutive rows, so each load of x serves RPT weight loads (x is
// otherwise read four times as often as the weights, from cache).

override WG: u32 = 256u; // threads per workgroup
override TPR: u32 = 64u; // threads per row: a power of two dividing WG
override RPT: u32 = 1u;  // rows per thread, 1..4: each x load then serves RPT rows

struct Params {
  rows: u32,     // output rows
  cols: u32,     // input length
  stride: u32,   // u32 words per weight row, ceil(cols / 4)
  x_offset: u32, // first element of x
  y_offset: u32, // first element of y
  has_bias: u32, // 1: add bias[r]
}

#if VEC4
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;   // [rows, stride / 4] int8 x 16
@group(0) @binding(1) var<storage, read> scales: array<f32>;    // [rows]
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;   // [(x_offset + cols) / 4]
#else
@group(0) @binding(0) var<storage, read> w: array<u32>;         // [rows, stride] int8 x 4
@group(0) @binding(1) var<storage, read> scales: array<f32>;    // [rows]
@group(0) @binding(2) var<storage, read> x: array<f32>;         // [x_offset + cols]
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;   // [y_offset + rows]
@group(0) @binding(4) var<storage, read> bias: array<f32>;      // [rows], a dummy when has_bias = 0
@group(0) @binding(5) var<uniform> params: Params;

#include tree_sum // var<workgroup> partial; tree_sum(v, lid, width): Σ v over `width` threads

#include int8 // unpack(word): four int8 of a u32 as floats

#if VEC4
#else
#include x4 // x4(base, c): x[base + c .. base + c + 3], zero past params.cols
#endif

#if VEC4
/** Row r's dot product with x over the 16 columns of vec4 word j (0 past the last row). */
fn row16(r: u32, words: u32, j: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> f32 {
  if (r >= params.rows) {
    return 0.0;
  }
  let q = w[r * words + j];
  return dot(unpack(q.x), x0) + dot(unpack(q.y), x1) + dot(unpack(q.z), x2) + dot(unpack(q.w), x3);
}
#else
/** Row r's dot product with x over the 4 columns of word j (0 past the last row). */
fn row4(r: u32, j: u32, xv: vec4<f32>) -> f32 {
  if (r >= params.rows) {
    return 0.0;
  }
  return dot(unpack(w[r * params.stride + j]), xv);
}
#endif

/** Sum of `v` over the TPR lanes of a row; every lane gets it (lane 0 writes it). */
fn reduce(v: f32, lid: u32) -> f32 {
  var sum = v;
#if SUBGROUP
  for (var m = TPR / 2u; m > 0u; m >>= 1u) {
    sum += subgroupShuffleXor(sum, m);
  }
#else
  if (TPR > 1u) {
    sum = tree_sum(sum, lid, TPR);
    workgroupBarrier(); // partial is reused for the next row
  }
#endif
  return sum;
}

fn store(r: u32, sum: f32) {
  if (r < params.rows) {
    var v = scales[r] * sum;
    if (params.has_bias != 0u) {
      v += bias[r];
    }
    y[params.y_offset + r] = v;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let group = wid.y * nwg.x + wid.x; // 2-D grid when the workgroups exceed 65535
  let lane = lid % TPR;
  let r0 = (group * (WG / TPR) + lid / TPR) * RPT; // this thread's rows: r0 .. r0 + RPT - 1
  // One accumulator per row, unrolled: RPT is a pipeline constant, so the unused branches vanish.
  var s0 = 0.0;
  var s1 = 0.0;
  var s2 = 0.0;
  var s3 = 0.0;
#if VEC4
  let words = params.stride / 4u;
  let xo = params.x_offset / 4u;
  for (var j = lane; j < words; j += TPR) {
    let xb = xo + 4u * j;
    let x0 = x[xb];
    let x1 = x[xb + 1u];
    let x2 = x[xb + 2u];
    let x3 = x[xb + 3u];
    s0 += row16(r0, words, j, x0, x1, x2, x3);
    if (RPT > 1u) { s1 += row16(r0 + 1u, words, j, x0, x1, x2, x3); }
    if (RPT > 2u) { s2 += row16(r0 + 2u, words, j, x0, x1, x2, x3); }
    if (RPT > 3u) { s3 += row16(r0 + 3u, words, j, x0, x1, x2, x3); }
  }
#else
  for (var j = lane; j < params.stride; j += TPR) {
    let xv = x4(params.x_offset, 4u * j);
    s0 += row4(r0, j, xv);
    if (RPT > 1u) { s1 += row4(r0 + 1u, j, xv); }
    if (RPT > 2u) { s2 += row4(r0 + 2u, j, xv); }
    if (RPT > 3u) { s3 += row4(r0 + 3u, j, xv); }
  }
#endif
  let t0 = reduce(s0, lid);
  if (lane == 0u) { store(r0, t0); }
  if (RPT > 1u) {
    let t1 = reduce(s1, lid);
    if (lane == 0u) { store(r0 + 1u, t1); }
  }
  if (RPT > 2u) {
    let t2 = reduce(s2, lid);
    if (lane == 0u) { store(r0 + 2u, t2); }
  }
  if (RPT > 3u) {
    let t3 = reduce(s3, lid);
    if (lane == 0u) { store(r0 + 3u, t3); }
  }
}
