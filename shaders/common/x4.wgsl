// x4: a float32 input row read four columns at a time, for the kernels whose weight rows are
// groups of four columns (vec4 or four int8 in a u32): the weights' padding columns are zero, but
// the input there may be anything, so it reads as zero. Needs the kernel's `x: array<f32>` binding
// and params.cols (the row length).

/** x[base + c .. base + c + 3], zero from column params.cols on. */
fn x4(base: u32, c: u32) -> vec4<f32> {
  let n = params.cols;
  return vec4<f32>(
    select(0.0, x[base + c], c < n),
    select(0.0, x[base + c + 1u], c + 1u < n),
    select(0.0, x[base + c + 2u], c + 2u < n),
    select(0.0, x[base + c + 3u], c + 3u < n));
}
