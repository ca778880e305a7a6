/**
 * The float32 model PoL works on (training and evaluation): every block of the param index read
 * through a verifying block getter, decoded and checked against chain A (readBlockTensors), and
 * dequantized. The same code loads it from a node's store (validators) and over a relay (miners).
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import type { Architecture } from '../chain/meta.ts'
import type { BlockRef } from '../engine/interface.ts'
import type { ExpertRef } from '../model/forward.ts'
import { floatModel, type FloatModel } from '../train/train.ts'
import { dequantizeAll, readBlockTensors, type ExpertWeights } from '../model/weights.ts'
import { fetchUnixfsFile } from '../tensor/tiles.ts'

/** Bytes of an IPLD block by CID, checked against it (a store, or a relay through a verifying getter). */
export type BlockGetter = (cid: CID, signal?: AbortSignal) => Promise<Uint8Array>

/** One block's tensors in float32. */
export async function loadBlock(arch: Architecture, block: BlockRef, get: BlockGetter, signal?: AbortSignal): Promise<Map<string, Float32Array>> {
  const payload = await fetchUnixfsFile(block.payload, block.payloadSize, get, signal === undefined ? {} : { signal })
  return dequantizeAll(readBlockTensors(block.name, arch, payload))
}

/** Every block of `blocks` (name -> ref) in float32, as the model train.ts runs. */
export async function loadFloatModel(arch: Architecture, blocks: ReadonlyMap<string, BlockRef>, get: BlockGetter, signal?: AbortSignal): Promise<FloatModel> {
  const tensors = new Map<string, Map<string, Float32Array>>()
  for (const [name, ref] of blocks) tensors.set(name, await loadBlock(arch, ref, get, signal))
  return floatModel(arch, tensors)
}

/** The same model with one expert replaced (nothing copied). */
export function withExpert(model: FloatModel, target: ExpertRef, expert: ExpertWeights): FloatModel {
  const w = model.weights
  return Object.freeze({
    architecture: model.architecture,
    weights: { embedding: w.embedding, layers: w.layers, expert: (l: number, e: number) => (l === target.layer && e === target.expert ? expert : w.expert(l, e)) }
  })
}
