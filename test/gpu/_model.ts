/**
 * Models for backend tests: random payloads for an architecture (int8 / fp16 / fp32 matrices or a
 * mix), decoded as the engine would, and an in-memory ModelSource + TileSource over them.
 */
import type { CID } from 'multiformats/cid'
import type { Architecture } from '../../src/chain/meta.ts'
import { EMBEDDING_NAME, routerName } from '../../src/chain/header.ts'
import { blockNames, expectedTensors } from '../../src/chain/params.ts'
import { readBlockTensors } from '../../src/model/weights.ts'
import { buildPayload } from '../../src/tensor/payload.ts'
import { importPayload } from '../../src/tensor/tiles.ts'
import type { DType } from '../../src/tensor/tblock.ts'
import { createTileSource, sourcedFrom } from '../../src/engine/tile-source.ts'
import type { Backend, BlockRef, BlockTensors, ModelSource, TileSource } from '../../src/engine/interface.ts'
import { createRandom } from '../fixtures/random.ts'

export type MatrixDType = DType | 'mixed'

/** Random payloads for every block of `arch`: matrices of `dtype` (mixed: per tensor), fp32 vectors. */
export function randomPayloads(arch: Architecture, seed: number, dtype: MatrixDType = 'int8', scale = 0.5): Map<string, Uint8Array> {
  const rnd = createRandom(seed)
  const kinds: DType[] = ['int8', 'fp16', 'fp32']
  return new Map(blockNames(arch).map((name) => [name, buildPayload(expectedTensors(name, arch).map((spec) => {
    const n = spec.shape.reduce((a, b) => a * b, 1)
    const values = new Float32Array(n)
    for (let i = 0; i < n; i++) values[i] = rnd.float(scale)
    const d: DType = spec.shape.length === 1 ? 'fp32' : dtype === 'mixed' ? rnd.pick(kinds) : dtype
    return { name: spec.name, values, shape: spec.shape, dtype: d }
  }))]))
}

/** Decoded, checked tensors of every block. */
export function decodeAll(arch: Architecture, payloads: ReadonlyMap<string, Uint8Array>): Map<string, BlockTensors> {
  return new Map([...payloads].map(([name, p]) => [name, readBlockTensors(name, arch, p)]))
}

/** The embedding and router blocks. */
export function sharedOf(arch: Architecture, blocks: ReadonlyMap<string, BlockTensors>): Map<string, BlockTensors> {
  const names = [EMBEDDING_NAME, ...Array.from({ length: arch.n_layers }, (_, l) => routerName(l))]
  return new Map(names.map((n) => [n, blocks.get(n) as BlockTensors]))
}

/** loadShared, then every expert whose (layer, expert) passes `keep`. */
export async function loadModel(backend: Backend, arch: Architecture, blocks: ReadonlyMap<string, BlockTensors>, keep: (l: number, e: number) => boolean = () => true): Promise<void> {
  await backend.loadShared(sharedOf(arch, blocks))
  for (let l = 0; l < arch.n_layers; l++) {
    for (let e = 0; e < arch.n_experts; e++) if (keep(l, e)) await backend.loadExpert(l, e, blocks.get(`layer${l}.expert${e}`) as BlockTensors)
  }
}

/** A ModelSource and a verifying TileSource over payloads held in memory. */
export async function memoryModel(arch: Architecture, payloads: ReadonlyMap<string, Uint8Array>): Promise<{ model: ModelSource; tiles: TileSource }> {
  const store = new Map<string, Uint8Array>()
  const blocks = new Map<string, BlockRef>()
  for (const [name, bytes] of payloads) {
    const { cid, blocks: dag } = await importPayload(bytes)
    for (const [k, v] of dag) store.set(k, v.slice())
    blocks.set(name, { name, cid, payload: cid, payloadSize: bytes.length })
  }
  const tiles = createTileSource(sourcedFrom(async (cid: CID) => {
    const b = store.get(cid.toString())
    if (b === undefined) throw new Error(`no block ${cid.toString()}`)
    return b
  }, 'a test store'))
  return { model: { architecture: arch, blocks }, tiles }
}
