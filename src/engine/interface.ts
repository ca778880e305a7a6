/**
 * The inference engine's interfaces: where weights come from (TileSource), what a model is made of
 * (ModelSource), and what a backend must do (Backend). Implementations: src/engine/cpu.ts (the
 * reference), src/engine/webgpu.ts (our WGSL kernels), src/engine/ort.ts (ONNX Runtime Web).
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import type { Architecture } from '../chain/meta.ts'
import type { ExpertRef } from '../model/forward.ts'
import type { TensorView } from '../tensor/tensorblock.ts'

export type { ExpertRef } from '../model/forward.ts'

export type { BlockRef, ModelSource } from '../model/source.ts'

export interface TileStats {
  /** Tiles (UnixFS leaves) and other DAG blocks fetched. */
  tiles: number
  blocks: number
  /** Bytes of every block fetched (leaves and interior nodes). */
  bytes: number
}

/**
 * Verified payload bytes by CID. Every block it returns was checked against the CID that names it
 * (and so against the payload CID in a signed header): the engine never sees unverified bytes.
 */
export interface TileSource {
  payload(root: CID, size: number, options?: PayloadOptions): Promise<Uint8Array>
  readonly stats: TileStats
}

export interface PayloadOptions {
  readonly signal?: AbortSignal
  /** What the payload is (`layer0.expert1`): names its blocks in errors and in a lying relay's record. */
  readonly name?: string
  /** Each block of the payload as it arrives, verified. */
  readonly onBlock?: (arrival: BlockArrival) => void
}

/** One block of a payload as it arrived: its CID, size, and where from (`cache`, or a relay's URL). */
export interface BlockArrival {
  readonly cid: CID
  readonly bytes: number
  readonly from: string
}

/** A parameter block's tensors, decoded and checked (shapes against chain A, values finite). */
export type BlockTensors = ReadonlyMap<string, TensorView>

export type ForwardResult =
  | { readonly logits: Float32Array; readonly used: readonly (readonly number[])[] }
  /** Experts picked but not resident, and every expert picked so far in this token (resident or not). */
  | { readonly missing: readonly ExpertRef[]; readonly selected: readonly ExpertRef[] }

/**
 * A backend runs the model on some device. The engine hands it checked tensors and decides which
 * experts are resident; the backend computes.
 */
export interface Backend {
  readonly name: 'cpu' | 'webgpu' | 'ort'
  /** Prepare the embedding and every layer's router block (tensors by block name). Called once. */
  loadShared(blocks: ReadonlyMap<string, BlockTensors>): Promise<void>
  /** Make an expert resident. */
  loadExpert(layer: number, expert: number, tensors: BlockTensors): Promise<void>
  /** Free an expert's memory (the engine's LRU decided). */
  unloadExpert(layer: number, expert: number): void
  /**
   * One token at `pos`: the logits (a copy the caller may keep) and the experts each layer used,
   * or the experts the router picked that are not resident (with all it picked so far, which the
   * engine keeps resident while loading). After loading them, the same (token, pos) is run again; a
   * backend must recompute it exactly.
   */
  forward(token: number, pos: number): Promise<ForwardResult>
  /**
   * Optional: a prompt of several tokens at positions pos, pos+1, ... in one batched pass (GEMM
   * instead of GEMV); the logits are those of the last token, `used` the union over the tokens.
   * Must leave the KV cache exactly as forward() token by token would.
   */
  prefill?(tokens: readonly number[], pos: number): Promise<ForwardResult>
  /** Forget the sequence (the KV cache). */
  reset(): void
  /** Optional: prepare what needs no weights (e.g. compile GPU pipelines) so the first load is faster. */
  warmUp?(): Promise<void>
  /** Release everything; the backend is unusable afterwards. */
  destroy(): void
}

/** A device the backend depended on is gone (a lost WebGPU device): recreate the engine. */
export class DeviceLostError extends Error {
  override readonly name = 'DeviceLostError'
  readonly reason: string
  constructor(reason: string, message: string) {
    super(`the GPU device was lost (${reason}): ${message}; create the engine again`)
    this.reason = reason
  }
}
