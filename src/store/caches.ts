/**
 * The client worker's two block caches and the one blockstore Helia sees over them.
 *
 * ```ts
 * const caches = await openCaches({ budgetBytes: settings.cacheBudgetBytes })
 * const helia = createHeliaLight({ blockstore: caches.blockstore, ... })
 * ```
 *
 * - `headers`: DAG-CBOR blocks (headers, meta and ledger documents, PoL certificates). Small and
 *   needed to re-validate the chain after a reload without network, so there is no budget and
 *   they are never evicted.
 * - `tiles`: everything else (raw leaves and dag-pb nodes of payloads), under the byte budget from
 *   Settings, least recently used evicted first.
 *
 * Each lives in its own IndexedDB database (`<dbName>-headers`, `<dbName>-tiles`), because
 * idb-keyval keeps one object store per database. The browser's quota is shared by both: when a
 * header write hits it, tiles are evicted to make room.
 *
 * @module
 */
import type { Blockstore, InputPair, Pair } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'
import { aint } from '../assert.ts'
import { DAG_CBOR } from '../codec/cbor.ts'
import { openBlockCache, type BlockCache } from './block-cache.ts'
import { CacheQuotaError } from './errors.ts'
import { idbKV, type KV } from './kv.ts'

export interface CacheUsage {
  /** Tile cache (payload blocks): bytes and blocks held, against the budget. */
  readonly tileBytes: number
  readonly tileBlocks: number
  readonly budgetBytes: number
  /** Header cache (headers, documents, certificates): not evicted. */
  readonly headerBytes: number
  readonly headerBlocks: number
  /** navigator.storage.estimate(), when the browser gives one. */
  readonly quotaBytes: number | null
  /** Set after a quota error the client could not recover from by evicting. */
  readonly error: string | null
}

export interface CachesOptions {
  /** Most bytes the tile cache keeps (Settings.cacheBudgetBytes). */
  readonly budgetBytes: number
  /** Prefix of the databases (default `blyan`). */
  readonly dbName?: string
  /** The KV of each cache (default: idb-keyval, database `<dbName>-<which>`); a seam for tests. */
  readonly kv?: (which: 'headers' | 'tiles') => KV
  /** Delay before read recency is written (default 1000 ms). */
  readonly flushDelayMs?: number
}

export interface Caches {
  readonly headers: BlockCache
  readonly tiles: BlockCache
  /**
   * For Helia: routes by CID codec (dag-cbor to `headers`, the rest to `tiles`). Its `put` never
   * throws {@link CacheQuotaError}: Helia stores a fetched block before handing it over, so a full
   * disk would otherwise fail the fetch itself. The error shows in `usage().error` instead.
   */
  readonly blockstore: Blockstore
  usage(): Promise<CacheUsage>
  /** Empty both caches (and forget a recorded quota error). */
  clear(): Promise<void>
  /** New tile budget, evicting at once down to it. */
  setBudget(budgetBytes: number): Promise<void>
  /** Write pending read recency now (e.g. before the page closes). */
  flush(): Promise<void>
}

export async function openCaches(options: CachesOptions): Promise<Caches> {
  aint(options.budgetBytes, 'budgetBytes')
  const dbName = options.dbName ?? 'blyan'
  const kvOf = options.kv ?? ((which: 'headers' | 'tiles') => idbKV(`${dbName}-${which}`, 'blocks'))
  const delay = options.flushDelayMs === undefined ? {} : { flushDelayMs: options.flushDelayMs }
  const tiles = await openBlockCache({ kv: kvOf('tiles'), budgetBytes: options.budgetBytes, ...delay })
  const headers = await openBlockCache({
    kv: kvOf('headers'),
    budgetBytes: null,
    // Headers are never evicted: room for one comes out of the tiles (same origin, same quota).
    reclaim: (bytes) => tiles.evict(Math.max(bytes, Math.ceil(tiles.usage().bytes / 4))),
    ...delay
  })
  const route = (cid: CID): BlockCache => (cid.code === DAG_CBOR ? headers : tiles)

  const blockstore: Blockstore = {
    has: (cid, o) => route(cid).has(cid, o),
    async put(cid, bytes, o) {
      try {
        return await route(cid).put(cid, bytes, o)
      } catch (e) {
        if (e instanceof CacheQuotaError) return cid
        throw e
      }
    },
    async *putMany(source: Iterable<InputPair> | AsyncIterable<InputPair>, o) {
      for await (const { cid, bytes } of source) yield await blockstore.put(cid, bytes, o)
    },
    get: (cid, o) => route(cid).get(cid, o),
    async *getMany(source: Iterable<CID> | AsyncIterable<CID>, o): AsyncGenerator<Pair> {
      for await (const cid of source) yield* route(cid).getMany([cid], o)
    },
    async *getAll(o): AsyncGenerator<Pair> {
      yield* headers.getAll(o)
      yield* tiles.getAll(o)
    },
    delete: (cid, o) => route(cid).delete(cid, o),
    async *deleteMany(source: Iterable<CID> | AsyncIterable<CID>, o) {
      for await (const cid of source) {
        await route(cid).delete(cid, o)
        yield cid
      }
    }
  }

  return Object.freeze({
    headers,
    tiles,
    blockstore,
    async usage(): Promise<CacheUsage> {
      const h = headers.usage()
      const t = tiles.usage()
      return Object.freeze({
        tileBytes: t.bytes,
        tileBlocks: t.blocks,
        budgetBytes: t.budgetBytes ?? 0,
        headerBytes: h.bytes,
        headerBlocks: h.blocks,
        quotaBytes: await quota(),
        error: t.error ?? h.error
      })
    },
    async clear() {
      await Promise.all([headers.clear(), tiles.clear()])
    },
    setBudget: (budgetBytes: number) => tiles.setBudget(budgetBytes),
    async flush() {
      await Promise.all([headers.flush(), tiles.flush()])
    }
  })
}

/** The origin's storage quota, when the browser tells (navigator.storage.estimate()). */
async function quota(): Promise<number | null> {
  const storage = typeof navigator === 'undefined' ? undefined : navigator.storage
  if (typeof storage?.estimate !== 'function') return null
  try {
    return (await storage.estimate()).quota ?? null
  } catch {
    return null
  }
}
