/**
 * The key-value seam under every cache: six operations, implemented over idb-keyval by default.
 *
 * The caches never touch IndexedDB directly, so a test can put a real IndexedDB (fake-indexeddb)
 * behind a wrapper that refuses writes past a quota with a real `QuotaExceededError`, and watch
 * the eviction path run. `setMany` and `delMany` are one IndexedDB transaction each: a block and
 * its metadata record are written, or deleted, together or not at all.
 *
 * @module
 */
import * as idb from 'idb-keyval'

export interface KV {
  get(key: string): Promise<unknown>
  getMany(keys: readonly string[]): Promise<unknown[]>
  /** Atomic: every entry is written, or none (one transaction). */
  setMany(entries: readonly (readonly [string, unknown])[]): Promise<void>
  /** Atomic, like setMany. */
  delMany(keys: readonly string[]): Promise<void>
  keys(): Promise<string[]>
  clear(): Promise<void>
}

/**
 * A KV over one idb-keyval store. idb-keyval creates the object store only when it creates the
 * database, so each store needs a database of its own: never open two store names in one dbName.
 * Opening is lazy (first operation), so this is safe to call where no IndexedDB exists.
 */
export function idbKV(dbName: string, storeName: string): KV {
  const store = idb.createStore(dbName, storeName)
  return Object.freeze({
    get: (key: string) => idb.get(key, store),
    getMany: (keys: readonly string[]) => idb.getMany([...keys], store),
    setMany: (entries: readonly (readonly [string, unknown])[]) => idb.setMany(entries.map(([k, v]) => [k, v]), store),
    delMany: (keys: readonly string[]) => idb.delMany([...keys], store),
    keys: () => idb.keys<IDBValidKey>(store).then((keys) => keys.filter((k): k is string => typeof k === 'string')),
    clear: () => idb.clear(store)
  })
}
