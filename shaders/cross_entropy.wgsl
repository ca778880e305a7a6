// cross_entropy: per position t, the loss −log softmax(logits[t])[y] with y = tokens[t + target_offset]
// (the next token), computed as log(Σ exp(l − max)) + max − l[y] like the CPU reference, and its
// gradient with respect to the logits, scaled by the batch's 1 / positions:
//   dlogits[t] = scale (softmax(logits[t]) − onehot(y)).
// `scale` is a one-float buffer the trainer writes per step. TPR threads share a position (WG / TPR
// positions per workgroup), reducing the max and the sum by a tree in workgroup memory; TPR = 1
// (software adapters) walks a row per thread, with no tree.

override WG: u32 = 64u; // threads per workgroup
override TPR: u32 = 1u; // threads per position: a power of two dividing WG

struct Params {
  vocab: u32,         // logits per position
  target_offset: u32, // the target of position t is tokens[t + target_offset]
}

#include step // struct Step { pos, n_tokens }

@group(0) @binding(0) var<storage, read> logits: array<f32>;         // [T, vocab]
@group(0) @binding(1) var<storage, read> tokens: array<u32>;         // [T + target_offset]
@group(0) @binding(2) var<storage, read> scale: array<f32>;          // [1]
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;  // [T, vocab]
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;   // [T]
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<uniform> params: Params;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let V = params.vocab;
  let lane = lid % TPR;
  let first = lid - lane;
  let t = wid.x * (WG / TPR) + lid / TPR;
  let live = t < step.n_tokens;
  let o = t * V;
  var m = -3.0e38;
  if (live) {
    for (var i = lane; i < V; i += TPR) {
      m = max(m, logits[o + i]);
    }
  }
  red[lid] = m;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      red[lid] = max(red[lid], red[lid + s]);
    }
    workgroupBarrier();
  }
  let mx = red[first];
  workgroupBarrier();
  var sum = 0.0;
  if (live) {
    for (var i = lane; i < V; i += TPR) {
      sum += exp(logits[o + i] - mx);
    }
  }
  red[lid] = sum;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      red[lid] += red[lid + s];
    }
    workgroupBarrier();
  }
  if (!live) {
    return;
  }
  let total = red[first];
  let k = scale[0];
  let y = tokens[t + params.target_offset];
  for (var i = lane; i < V; i += TPR) {
    var d = k * exp(logits[o + i] - mx) / total;
    if (i == y) {
      d -= k;
    }
    dlogits[o + i] = d;
  }
  if (lane == 0u) {
    losses[t] = log(total) + mx - logits[o + y];
  }
}
