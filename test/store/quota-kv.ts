/**
 * A KV that behaves like a browser at its storage quota: it passes every operation to a real
 * idb-keyval store (fake-indexeddb in Node) and refuses a write that would take the block bytes of
 * all KVs sharing one {@link Quota} past its limit, with a real `QuotaExceededError` DOMException,
 * before writing anything (IndexedDB aborts the whole transaction). Only Uint8Array values count;
 * the small metadata records are free, as they nearly are in a browser.
 */
import { idbKV, type KV } from '../../src/store/kv.ts'

export interface Quota {
  limit: number
  used: number
  /** Writes refused so far. */
  refused: number
}

export function quotaKV(dbName: string, quota: Quota): KV {
  const inner = idbKV(dbName, 'blocks')
  const sizes = new Map<string, number>()
  const sizeOf = (v: unknown): number => (v instanceof Uint8Array ? v.byteLength : 0)
  return {
    get: (key) => inner.get(key),
    getMany: (keys) => inner.getMany(keys),
    keys: () => inner.keys(),
    async setMany(entries) {
      let used = quota.used
      for (const [k, v] of entries) used += sizeOf(v) - (sizes.get(k) ?? 0)
      if (used > quota.limit) {
        quota.refused++
        throw new DOMException(`quota of ${quota.limit} bytes exceeded`, 'QuotaExceededError')
      }
      await inner.setMany(entries)
      quota.used = used
      for (const [k, v] of entries) sizes.set(k, sizeOf(v))
    },
    async delMany(keys) {
      await inner.delMany(keys)
      for (const k of keys) {
        quota.used -= sizes.get(k) ?? 0
        sizes.delete(k)
      }
    },
    async clear() {
      await inner.clear()
      for (const size of sizes.values()) quota.used -= size
      sizes.clear()
    }
  }
}
