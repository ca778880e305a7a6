/**
 * A content-addressed block cache in IndexedDB with a byte budget and least-recently-used
 * eviction. It implements interface-blockstore 7, so Helia can use it as its blockstore: a block
 * it holds is served without network, and a missing one throws interface-store's `NotFoundError`,
 * which Helia's `has()`-then-fetch path relies on.
 *
 * ```ts
 * const tiles = await openBlockCache({ kv: idbKV('blyan-tiles', 'blocks'), budgetBytes: 512 << 20 })
 * const helia = createHeliaLight({ blockstore: tiles, ... })
 * ```
 *
 * Layout in the KV (keys are CID strings, base32 CIDv1):
 * - `<cid>`   -> the block's bytes (Uint8Array);
 * - `m:<cid>` -> `[size, use]`, written in the same transaction as the bytes.
 * Counts are the sum of the `m:` records, rebuilt when the cache opens, so they survive a reload
 * exactly and cannot drift from what is stored (no running total is persisted).
 *
 * Recency: `use` is a logical clock (a counter, not wall time, so ties and clock changes cannot
 * reorder blocks). A put writes it with the bytes; a read bumps it in memory and marks the block
 * dirty, and dirty `m:` records are written in one batch `flushDelayMs` after the first read (and
 * on `flush()` / `close()`). A reload therefore keeps recency up to the last flush: at worst the
 * reads of the last second are forgotten, which only makes eviction slightly less exact.
 *
 * Every write (put, delete, eviction, flush, clear) runs under one in-page lock, so parallel puts,
 * duplicates included, keep the byte count exact. Reads do not take the lock. Two pages on one
 * database each keep their own index: a block another page evicted reads as `NotFoundError` (and is
 * forgotten), one it added is seen after a reload; run one client worker per origin.
 *
 * The cache does not hash what it is given: callers put verified blocks (Helia checks every block
 * against its CID before it puts it).
 *
 * @module
 */
import type { Blockstore, InputPair, Pair } from 'interface-blockstore'
import { NotFoundError } from 'interface-store'
import { CID } from 'multiformats/cid'
import { aint } from '../assert.ts'
import { collectBytes } from '../codec/cbor.ts'
import { CacheQuotaError, isQuotaError } from './errors.ts'
import type { KV } from './kv.ts'

export interface BlockCacheOptions {
  readonly kv: KV
  /** Most bytes kept before least recently used blocks are evicted; null: no budget (never evicted for space). */
  readonly budgetBytes: number | null
  /**
   * Called when IndexedDB reports its quota full; frees at least `bytes` somewhere and returns the
   * bytes freed. Default: evict this cache's least recently used blocks (max of `bytes` and a
   * quarter of what it holds) when it has a budget, else nothing can be freed.
   */
  readonly reclaim?: (bytes: number) => Promise<number>
  /** Delay before read recency is written (default 1000 ms). */
  readonly flushDelayMs?: number
}

export interface BlockCacheUsage {
  readonly bytes: number
  readonly blocks: number
  readonly budgetBytes: number | null
  /** The last unrecovered quota error's message; cleared by the next stored block or clear(). */
  readonly error: string | null
}

interface Options {
  readonly signal?: AbortSignal
}

interface Entry {
  readonly size: number
  use: number
}

const META = 'm:'
const metaKey = (key: string): string => META + key

/** The KV key of a block: its CID as base32 CIDv1 (a v0 CID names the same dag-pb block as its v1). */
export function blockKey(cid: CID): string {
  return cid.toV1().toString()
}

/** Open a cache on `kv`, rebuilding counts and recency from its metadata records. */
export async function openBlockCache(options: BlockCacheOptions): Promise<BlockCache> {
  if (options.budgetBytes !== null) aint(options.budgetBytes, 'budgetBytes')
  const { kv } = options
  const keys = await kv.keys()
  const blockKeys = keys.filter((k) => !k.startsWith(META))
  const present = new Set(blockKeys)
  const metas = await kv.getMany(blockKeys.map(metaKey))
  const loaded: [string, Entry][] = []
  const repaired: [string, unknown][] = []
  for (const [i, key] of blockKeys.entries()) {
    const m = metas[i]
    if (Array.isArray(m) && m.length === 2 && Number.isSafeInteger(m[0]) && m[0] >= 0 && Number.isSafeInteger(m[1])) {
      loaded.push([key, { size: m[0], use: m[1] }])
      continue
    }
    // Bytes without a readable record (written by another version, or damaged): measure them once.
    const bytes = await kv.get(key)
    if (!(bytes instanceof Uint8Array)) continue
    loaded.push([key, { size: bytes.length, use: 0 }])
    repaired.push([metaKey(key), [bytes.length, 0]])
  }
  const orphans = keys.filter((k) => k.startsWith(META) && !present.has(k.slice(META.length)))
  if (orphans.length > 0) await kv.delMany(orphans)
  if (repaired.length > 0) await kv.setMany(repaired)
  loaded.sort((a, b) => a[1].use - b[1].use)
  const cache = new BlockCache(options, new Map(loaded))
  if (options.budgetBytes !== null) await cache.setBudget(options.budgetBytes)
  return cache
}

export class BlockCache implements Blockstore {
  readonly #kv: KV
  readonly #reclaim: ((bytes: number) => Promise<number>) | null
  readonly #flushDelayMs: number
  /** Oldest use first: a read moves its block to the end, so eviction takes from the front. */
  readonly #index: Map<string, Entry>
  readonly #dirty = new Set<string>()
  #budget: number | null
  #bytes = 0
  #clock = 0
  #error: string | null = null
  #timer: ReturnType<typeof setTimeout> | undefined
  #tail: Promise<unknown> = Promise.resolve()

  /** Use {@link openBlockCache}. */
  constructor(options: BlockCacheOptions, index: Map<string, Entry>) {
    this.#kv = options.kv
    this.#budget = options.budgetBytes
    this.#flushDelayMs = options.flushDelayMs ?? 1000
    this.#reclaim = options.reclaim ?? null
    this.#index = index
    for (const e of index.values()) {
      this.#bytes += e.size
      this.#clock = Math.max(this.#clock, e.use)
    }
  }

  usage(): BlockCacheUsage {
    return Object.freeze({ bytes: this.#bytes, blocks: this.#index.size, budgetBytes: this.#budget, error: this.#error })
  }

  has(cid: CID, options: Options = {}): boolean {
    options.signal?.throwIfAborted()
    return this.#index.has(blockKey(cid))
  }

  /**
   * Store a block. Already held: only its recency changes. Larger than the whole budget: not
   * cached, and not an error. Throws {@link CacheQuotaError} when the browser's quota is still full
   * after evicting.
   */
  async put(cid: CID, bytes: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options: Options = {}): Promise<CID> {
    options.signal?.throwIfAborted()
    const block = await collectBytes(bytes)
    await this.#exclusive(() => this.#store(blockKey(cid), block))
    return cid
  }

  async *putMany(source: Iterable<InputPair> | AsyncIterable<InputPair>, options: Options = {}): AsyncGenerator<CID> {
    for await (const { cid, bytes } of source) yield await this.put(cid, bytes, options)
  }

  /** The block as one chunk; throws interface-store's NotFoundError when it is not cached. A read counts as a use. */
  async *get(cid: CID, options: Options = {}): AsyncGenerator<Uint8Array> {
    options.signal?.throwIfAborted()
    yield await this.#read(blockKey(cid))
  }

  async *getMany(source: Iterable<CID> | AsyncIterable<CID>, options: Options = {}): AsyncGenerator<Pair> {
    for await (const cid of source) {
      options.signal?.throwIfAborted()
      yield { cid, bytes: once(await this.#read(blockKey(cid))) }
    }
  }

  async *getAll(options: Options = {}): AsyncGenerator<Pair> {
    for (const key of [...this.#index.keys()]) {
      options.signal?.throwIfAborted()
      const bytes = await this.#kv.get(key)
      if (bytes instanceof Uint8Array) yield { cid: CID.parse(key), bytes: once(bytes) }
    }
  }

  async delete(cid: CID, options: Options = {}): Promise<void> {
    options.signal?.throwIfAborted()
    const key = blockKey(cid)
    await this.#exclusive(async () => {
      await this.#kv.delMany([key, metaKey(key)])
      this.#drop(key)
    })
  }

  async *deleteMany(source: Iterable<CID> | AsyncIterable<CID>, options: Options = {}): AsyncGenerator<CID> {
    for await (const cid of source) {
      await this.delete(cid, options)
      yield cid
    }
  }

  /** Evict least recently used blocks until at least `bytes` are freed (or the cache is empty); returns the bytes freed. */
  evict(bytes: number): Promise<number> {
    aint(bytes, 'bytes')
    return this.#exclusive(() => this.#evictLocked(bytes))
  }

  /** Change the budget (null: none), evicting at once down to it. */
  setBudget(budgetBytes: number | null): Promise<void> {
    if (budgetBytes !== null) aint(budgetBytes, 'budgetBytes')
    return this.#exclusive(async () => {
      this.#budget = budgetBytes
      if (budgetBytes !== null && this.#bytes > budgetBytes) await this.#evictLocked(this.#bytes - budgetBytes)
    })
  }

  /** Remove every block; counts go to 0 and a recorded quota error is cleared. */
  clear(): Promise<void> {
    return this.#exclusive(async () => {
      await this.#kv.clear()
      this.#index.clear()
      this.#dirty.clear()
      this.#bytes = 0
      this.#error = null
    })
  }

  /** Write pending read recency now. A quota error here is ignored: recency is a hint, not data. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    return this.#exclusive(async () => {
      const records: [string, unknown][] = []
      for (const key of this.#dirty) {
        const e = this.#index.get(key)
        if (e !== undefined) records.push([metaKey(key), [e.size, e.use]])
      }
      this.#dirty.clear()
      if (records.length === 0) return
      try {
        await this.#kv.setMany(records)
      } catch (e) {
        if (!isQuotaError(e)) throw e
      }
    })
  }

  /** Flush and stop the flush timer (a page about to drop the cache). */
  close(): Promise<void> {
    return this.flush()
  }

  // ---------------------------------------------------------------------------------- internals

  /** Run `fn` after every write queued before it; a failure does not block later writes. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn)
    this.#tail = run.catch(() => undefined)
    return run
  }

  async #store(key: string, block: Uint8Array): Promise<void> {
    if (this.#index.has(key)) {
      this.#touch(key)
      return
    }
    const size = block.length
    if (this.#budget !== null) {
      if (size > this.#budget) return
      if (this.#bytes + size > this.#budget) await this.#evictLocked(this.#bytes + size - this.#budget)
    }
    const use = ++this.#clock
    const write = (): Promise<void> => this.#kv.setMany([[key, owned(block)], [metaKey(key), [size, use]]])
    try {
      await write()
    } catch (first) {
      if (!isQuotaError(first)) throw first
      const freed = this.#reclaim !== null
        ? await this.#reclaim(size)
        : this.#budget !== null ? await this.#evictLocked(Math.max(size, Math.ceil(this.#bytes / 4))) : 0
      try {
        if (freed === 0) throw first // nothing freed: a retry would fail the same way
        await write()
      } catch (second) {
        if (!isQuotaError(second)) throw second
        const error = new CacheQuotaError(size, freed, second)
        this.#error = error.message
        throw error
      }
    }
    this.#index.set(key, { size, use })
    this.#bytes += size
    this.#error = null
  }

  async #read(key: string): Promise<Uint8Array> {
    if (!this.#index.has(key)) throw new NotFoundError(`block ${key} is not in the cache`)
    const bytes = await this.#kv.get(key)
    if (!(bytes instanceof Uint8Array)) {
      // Evicted meanwhile, or removed by another page on the same database: forget it if still gone.
      await this.#exclusive(async () => {
        if ((await this.#kv.get(key)) === undefined) {
          await this.#kv.delMany([metaKey(key)])
          this.#drop(key)
        }
      })
      throw new NotFoundError(`block ${key} is not in the cache`)
    }
    this.#touch(key)
    return bytes
  }

  /** Mark a use: move to the back of the LRU order and schedule the recency write. */
  #touch(key: string): void {
    const e = this.#index.get(key)
    if (e === undefined) return
    e.use = ++this.#clock
    this.#index.delete(key)
    this.#index.set(key, e)
    this.#dirty.add(key)
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        this.flush().catch(() => undefined)
      }, this.#flushDelayMs)
      // In Node (tests, tools) a pending recency write must not keep the process alive.
      ;(this.#timer as { unref?: () => void }).unref?.()
    }
  }

  #drop(key: string): void {
    const e = this.#index.get(key)
    if (e === undefined) return
    this.#index.delete(key)
    this.#dirty.delete(key)
    this.#bytes -= e.size
  }

  /** Delete least recently used blocks, in one transaction, until `need` bytes are freed. */
  async #evictLocked(need: number): Promise<number> {
    const victims: string[] = []
    let freed = 0
    for (const [key, e] of this.#index) {
      if (freed >= need) break
      victims.push(key)
      freed += e.size
    }
    if (victims.length === 0) return 0
    await this.#kv.delMany(victims.flatMap((k) => [k, metaKey(k)]))
    for (const key of victims) this.#drop(key)
    return freed
  }
}


/**
 * The bytes as a view of their own ArrayBuffer. IndexedDB structured-clones a typed array's whole
 * buffer, so a subarray of a large response would store the whole response.
 */
function owned(bytes: Uint8Array): Uint8Array {
  const whole = bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
  return whole ? bytes : new Uint8Array(bytes)
}

function* once(bytes: Uint8Array): Generator<Uint8Array> {
  yield bytes
}
