/**
 * What the training MoE kernels (moe_up_train, moe_down_train, moe_down_backward,
 * moe_up_backward) share: the expert weights they read and where a layer's routes are.
 *
 * Frozen experts sit in one pool of slots (slot = layer * n_experts + expert: all resident, the
 * router's residency table maps each expert to its own slot), int8 with per-row scales or float32
 * in the forward's row layout (upload.ts); W1 and W3 of a slot are adjacent so one binding covers
 * both. The trained expert is float32 in its own buffer, in the same row layout, W1 | W3 | W2 back
 * to back, so one AdamW dispatch updates all three; a route to (target layer, target expert) reads
 * it instead of the pool, whatever the pool's type.
 *
 * @module
 */
import type { GpuDType } from '../upload.ts'

/** Expert weights on the GPU for training. H = expert hidden width, D = model width. */
export interface TrainExperts {
  readonly dtype: GpuDType
  readonly hidden: number
  readonly dim: number
  /** Words (int8) or vec4 (f32) per W1 / W3 row: ceil(D / 4). */
  readonly strideD: number
  /** Words (int8) or vec4 (f32) per W2 row: ceil(H / 4). */
  readonly strideH: number
  /** (slots, 2, H, strideD): W1 then W3 of each slot. */
  readonly w13: GPUBuffer
  /** (slots, 2, H) int8 row scales; null for f32. */
  readonly s13: GPUBuffer | null
  /** (slots, D, strideH). */
  readonly w2: GPUBuffer
  /** (slots, D) int8 row scales; null for f32. */
  readonly s2: GPUBuffer | null
  /** float32 vec4: W1 (H, strideD), W3 (H, strideD), W2 (D, strideH). */
  readonly trained: GPUBuffer
}

/** Where the layer's routes are and which expert is trained. */
export interface RouteParams {
  /** Routes per token. */
  readonly topK: number
  readonly layer: number
  /** Route rows per token in the routes buffer. */
  readonly nLayers: number
  readonly targetLayer: number
  readonly targetExpert: number
  /** Rows of each part (h1, h3, g / dh1, dh3, dy) of the route-row buffers: maxPositions * top_k. */
  readonly rowsMax: number
}

/** Floats of the trained buffer before W3 and before W2. */
export function trainedOffsets(x: Pick<TrainExperts, 'hidden' | 'dim' | 'strideD' | 'strideH'>): { w3: number; w2: number; total: number } {
  const w1 = x.hidden * x.strideD * 4
  return { w3: w1, w2: 2 * w1, total: 2 * w1 + x.dim * x.strideH * 4 }
}

/** `INT8` (and `PACKED` where unpack4xI8 is available) for int8 pools. */
export function poolDefines(int8: boolean, packed4x8: boolean): string[] {
  return int8 ? (packed4x8 ? ['INT8', 'PACKED'] : ['INT8']) : []
}
