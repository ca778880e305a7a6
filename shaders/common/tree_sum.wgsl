// tree_sum: a sum over groups of `width` consecutive threads (width a power of two dividing WG: the
// TPR lanes that share a row, or the whole workgroup) by a tree in workgroup memory, a barrier per
// level. Declares `partial`. Every thread of the workgroup calls it, in uniform control flow and
// with a uniform width (it has barriers); `partial` may be written again only after a barrier.

var<workgroup> partial: array<f32, WG>;

/** Σ v over this thread's group of `width` threads, for every thread of the group. */
fn tree_sum(v: f32, lid: u32, width: u32) -> f32 {
  let lane = lid % width;
  partial[lid] = v;
  workgroupBarrier();
  for (var s = width / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      partial[lid] += partial[lid + s];
    }
    workgroupBarrier();
  }
  return partial[lid - lane];
}
