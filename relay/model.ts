/**
 * The model a local store holds, for `blyan generate` and `blyan eval`: the chain A head's rules and
 * the param index, with blocks read from the store (still verified block by block on the way in).
 *
 * @module
 */
import type { MetaDocument } from '../src/chain/meta.ts'
import type { BlockRef, ModelSource } from '../src/engine/interface.ts'
import { createTileSource } from '../src/engine/tile-source.ts'
import type { TileSource } from '../src/engine/interface.ts'
import { fetchUnixfsFile } from '../src/tensor/tiles.ts'
import type { ChainStore } from './interface.ts'

export interface StoredModel extends ModelSource {
  readonly meta: MetaDocument
  readonly tokenizer: Uint8Array | null
  readonly tiles: TileSource
}

export async function storedModel(store: ChainStore): Promise<StoredModel> {
  const head = store.head('A')
  if (head === undefined) throw new Error('the store has no chain A: nothing to run')
  const meta = head.document as MetaDocument
  const blocks = new Map<string, BlockRef>()
  for (const [name, block] of store.paramIndex()) blocks.set(name, { name, cid: block.cid, payload: block.header.payload, payloadSize: block.header.payload_size })
  const get = async (cid: import('multiformats/cid').CID): Promise<Uint8Array> => {
    const bytes = store.getRaw(cid)
    if (bytes === undefined) throw new Error(`the store lacks block ${cid}`)
    return bytes
  }
  const tokenizer = meta.tokenizer === null ? null : await fetchUnixfsFile(meta.tokenizer.payload, meta.tokenizer.size, get)
  return { architecture: meta.architecture, blocks, meta, tokenizer, tiles: createTileSource(get) }
}
