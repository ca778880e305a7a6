/**
 * The model a local store holds, for `blyan generate` and `blyan eval`: the chain A head's rules and
 * the param index, with blocks read from the store (still verified block by block on the way in).
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import type { MetaDocument } from '../../src/chain/meta.ts'
import { chainModel, type ModelSource } from '../../src/model/source.ts'
import { createTileSource, sourcedFrom } from '../../src/engine/tile-source.ts'
import type { TileSource } from '../../src/engine/interface.ts'
import { fetchUnixfsFile } from '../../src/tensor/tiles.ts'
import type { ChainStore } from './interface.ts'

export interface StoredModel extends ModelSource {
  readonly meta: MetaDocument
  readonly tokenizer: Uint8Array | null
  readonly tiles: TileSource
}

export async function storedModel(store: ChainStore): Promise<StoredModel> {
  const model = chainModel(store)
  if ('missing' in model) throw new Error(`the store cannot make the model: ${model.missing}`)
  const { meta, blocks } = model
  const get = async (cid: CID): Promise<Uint8Array> => {
    const bytes = store.getRaw(cid)
    if (bytes === undefined) throw new Error(`the store lacks block ${cid}`)
    return bytes
  }
  const tokenizer = meta.tokenizer === null ? null : await fetchUnixfsFile(meta.tokenizer.payload, meta.tokenizer.size, get)
  return { architecture: meta.architecture, blocks, meta, tokenizer, tiles: createTileSource(sourcedFrom(get, 'the store')) }
}
