// What the training MoE kernels (moe_up_train, moe_down_train, moe_down_backward, moe_up_backward)
// share, the WGSL side of src/gpu/kernels/_experts.ts: the expert weights at bindings 0-2 and the
// rule for which of them a route reads. Frozen experts sit in `pool` by the route's slot, INT8
// (4 int8 per u32 + one float32 scale per row) or float32 vec4, rows padded to params.stride: W1
// then W3 of each slot [slots, 2, H, stride] for the up-projection kernels, W2 [slots, D, stride]
// for the down-projection ones. The trained expert (target_layer, target_expert) is float32 in
// `trained`, W1 [H, stride_D], W3 [H, stride_D] then W2 [D, stride_H], whatever the pool's type.
// Needs params.layer, params.target_layer and params.target_expert.

#include route // const NONE, struct Route
#if INT8
#include int8 // unpack(word)
@group(0) @binding(0) var<storage, read> pool: array<u32>;          // [slots, rows, stride] int8 x 4
@group(0) @binding(1) var<storage, read> scales: array<f32>;        // [slots, rows]
#else
@group(0) @binding(0) var<storage, read> pool: array<vec4<f32>>;    // [slots, rows, stride]
#endif
@group(0) @binding(2) var<storage, read> trained: array<vec4<f32>>; // W1, W3, W2 of the trained expert

/** Pool vec4 i (four columns of a row) as floats, without the row's scale. */
fn pool4(i: u32) -> vec4<f32> {
#if INT8
  return unpack(pool[i]);
#else
  return pool[i];
#endif
}

/** Whether `route` goes to the trained expert (read from `trained`, not the pool). */
fn is_trained(route: Route) -> bool {
  return params.layer == params.target_layer && route.expert == params.target_expert;
}
