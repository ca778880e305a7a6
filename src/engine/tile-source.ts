/**
 * TileSources: verified payload bytes from wherever blocks come from.
 *
 * `createTileSource(getBlock)` turns any block getter (a relay's trustless gateway, a local store,
 * later Helia) into a TileSource that fetches a payload's UnixFS DAG and checks every block against
 * the CID that names it, so the getter need not be trusted. It counts tiles and bytes.
 *
 * @module
 */
import type { BlockGetter } from '../model/source.ts'
import { fetchUnixfsFile } from '../tensor/tiles.ts'
import type { TileSource, TileStats } from './interface.ts'

export interface TileSourceOptions {
  /** Blocks fetched in parallel per payload (default 8). */
  readonly concurrency?: number
  /** `getBlock` checks every block against its CID itself (Helia with the verify pool): do not hash twice. */
  readonly getBlockVerifies?: boolean
}

export function createTileSource(getBlock: BlockGetter, options: TileSourceOptions = {}): TileSource {
  const stats: TileStats = { tiles: 0, blocks: 0, bytes: 0 }
  return {
    stats,
    payload: (root, size, o = {}) =>
      fetchUnixfsFile(root, size, getBlock, {
        counts: stats,
        ...(o.signal === undefined ? {} : { signal: o.signal }),
        ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
        ...(options.getBlockVerifies === true ? { getBlockVerifies: true } : {})
      })
  }
}
