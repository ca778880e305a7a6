// weight_grad: a weight gradient dW += dYᵀ X over the rows s < n_tokens * per_token of a pass:
// dW[r, c] += Σ_s dY[s / dy_div, r] X[s / x_div, c]. Rows of dY and X are picked by dividing s, so
// one kernel serves per-token rows (div 1) and per-route rows (s = t * top_k + k: the expert's
// input xf[t] is row s / top_k). dW is float32 in the kernel layout (rows padded to `stride` vec4s)
// at `dw_offset`; it only accumulates (the trainer clears it before a step).
//
// A thread owns RB rows x one group of four columns: per s it loads RB gradients and four inputs
// for 4 RB multiply-adds; no workgroup memory, no barriers.

const RB: u32 = 4u;      // weight rows per thread (register block)
override WG: u32 = 64u;  // threads per workgroup

struct Params {
  rows: u32,      // R: dW rows, the length of a dY row
  cols: u32,      // C: dW columns, the length of an X row
  stride: u32,    // 4-column groups per dW row, ceil(C / 4)
  per_token: u32, // rows s per token: n = n_tokens * per_token
  dy_div: u32,    // dY row of s: s / dy_div
  x_div: u32,     // X row of s: s / x_div
  dy_offset: u32, // first element of dY
  x_offset: u32,  // first element of X
  dw_offset: u32, // first element of dW
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> dy: array<f32>;        // [dy_offset + (n / dy_div) * R]
@group(0) @binding(1) var<storage, read> x: array<f32>;         // [x_offset + (n / x_div) * C]
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;  // [dw_offset + R * stride * 4]
@group(0) @binding(3) var<uniform> step: Step;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  let R = params.rows;
  let C = params.cols;
  let j = i % params.stride;
  let r0 = (i / params.stride) * RB;
  if (r0 >= R) {
    return;
  }
  let c0 = 4u * j;
  let n = step.n_tokens * params.per_token;
  var acc: array<vec4<f32>, RB>;
  for (var s = 0u; s < n; s++) {
    let xo = params.x_offset + (s / params.x_div) * C + c0;
    let xv = vec4<f32>(
      x[xo],
      select(0.0, x[min(xo + 1u, xo + C - 1u - c0)], c0 + 1u < C),
      select(0.0, x[min(xo + 2u, xo + C - 1u - c0)], c0 + 2u < C),
      select(0.0, x[min(xo + 3u, xo + C - 1u - c0)], c0 + 3u < C));
    let yo = params.dy_offset + (s / params.dy_div) * R;
    for (var rr = 0u; rr < RB; rr++) {
      let r = min(r0 + rr, R - 1u); // rows past R are computed and dropped
      acc[rr] += dy[yo + r] * xv;
    }
  }
  let pitch = params.stride * 4u;
  for (var rr = 0u; rr < RB; rr++) {
    let r = r0 + rr;
    if (r >= R) {
      break;
    }
    for (var q = 0u; q < 4u; q++) {
      if (c0 + q < C) {
        let o = params.dw_offset + r * pitch + c0 + q;
        dw[o] += acc[rr][q];
      }
    }
  }
}
