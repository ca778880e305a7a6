/**
 * TileSources: verified payload bytes from wherever blocks come from.
 *
 * `createTileSource(getBlock)` turns a block getter that says where each block came from (the
 * page's Helia node, a relay's trustless gateway, a local store) into a TileSource that fetches a
 * payload's UnixFS DAG and checks every block against the CID that names it, so the getter need not
 * be trusted. It counts tiles and bytes and reports each block as it arrives.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { RAW } from '../codec/cbor.ts'
import type { BlockGetter } from '../model/source.ts'
import { fetchUnixfsFile } from '../tensor/tiles.ts'
import type { TileSource, TileStats } from './interface.ts'

/** A block getter that says where each block came from (`what`: what the block is, for its errors). */
export type SourcedBlockGetter = (cid: CID, what: string, signal?: AbortSignal) => Promise<{ readonly bytes: Uint8Array; readonly from: string }>

/** A plain getter as a sourced one: every block said to come from `from`. */
export function sourcedFrom(get: BlockGetter, from: string): SourcedBlockGetter {
  return async (cid, _what, signal) => ({ bytes: await get(cid, signal), from })
}

export interface TileSourceOptions {
  /** Blocks fetched in parallel per payload (default 8). */
  readonly concurrency?: number
  /** `getBlock` checks every block against its CID itself (Helia with the verify pool): do not hash twice. */
  readonly getBlockVerifies?: boolean
}

export function createTileSource(getBlock: SourcedBlockGetter, options: TileSourceOptions = {}): TileSource {
  const stats: TileStats = { tiles: 0, blocks: 0, bytes: 0 }
  return {
    stats,
    payload: (root, size, o = {}) => {
      const name = o.name ?? 'a payload'
      return fetchUnixfsFile(root, size, async (cid, signal) => {
        const { bytes, from } = await getBlock(cid, `${cid.code === RAW ? 'a tile' : 'a node'} of ${name}`, signal)
        o.onBlock?.({ cid, bytes: bytes.length, from })
        return bytes
      }, {
        counts: stats,
        ...(o.signal === undefined ? {} : { signal: o.signal }),
        ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
        ...(options.getBlockVerifies === true ? { getBlockVerifies: true } : {})
      })
    }
  }
}
