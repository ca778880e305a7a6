/**
 * The page's one verified block getter: the Helia light node (helia.ts) over the IndexedDB caches
 * and the relays, every block checked against its CID (by the verify pool) before it is stored or
 * returned, each answer saying where the block came from (`cache`, or the relay that served it).
 *
 * What a CID is (`what`, e.g. "a tile of layer0.expert1") is known only while it is being fetched:
 * the relay set names it in a liar's record and in BlockUnavailableError.
 *
 * @module
 */
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'
import { collectBytes } from '../codec/cbor.ts'
import { createLightNode, heliaBlock, type Helia } from './helia.ts'
import { BlockUnavailableError, type RelaySet } from './relays.ts'

/** A verified block and where it came from: `cache`, or the URL of the relay that served it. */
export interface FetchedBlock {
  readonly bytes: Uint8Array
  readonly from: string
}

export interface PageBlocksOptions {
  readonly relays: RelaySet
  /** The tile cache (IndexedDB): what Helia checks first and stores into. */
  readonly blockstore: Blockstore
  /** SHA-256 for checking fetched blocks (the verify pool's). */
  readonly sha256: (bytes: Uint8Array) => Promise<Uint8Array>
}

/** The BlockUnavailableError inside Helia's wrapping (LoadBlockFailedError / AggregateError), if any. */
export function unavailable(e: unknown, depth = 0): BlockUnavailableError | null {
  if (e instanceof BlockUnavailableError) return e
  if (depth > 4 || typeof e !== 'object' || e === null) return null
  const inner = (e as { errors?: unknown }).errors
  if (Array.isArray(inner)) for (const x of inner) {
    const found = unavailable(x, depth + 1)
    if (found !== null) return found
  }
  return unavailable((e as { cause?: unknown }).cause, depth + 1)
}

export class PageBlocks {
  readonly #relays: RelaySet
  readonly #blockstore: Blockstore
  readonly #helia: Helia
  /** What each CID being fetched is. */
  readonly #labels: Map<string, string>
  /** The relay that served each CID the broker fetched, until `get` reads it. */
  readonly #servedBy: Map<string, string>

  private constructor(relays: RelaySet, blockstore: Blockstore, helia: Helia, labels: Map<string, string>, servedBy: Map<string, string>) {
    this.#relays = relays
    this.#blockstore = blockstore
    this.#helia = helia
    this.#labels = labels
    this.#servedBy = servedBy
  }

  static async open(options: PageBlocksOptions): Promise<PageBlocks> {
    const labels = new Map<string, string>()
    const servedBy = new Map<string, string>()
    const helia = await createLightNode({
      relays: options.relays,
      blockstore: options.blockstore,
      sha256: options.sha256,
      labelOf: (cid) => labels.get(cid.toString()),
      onServed: (cid, relay) => void servedBy.set(cid.toString(), relay)
    })
    return new PageBlocks(options.relays, options.blockstore, helia, labels, servedBy)
  }

  /**
   * Verified bytes of a block: the cache, else a relay. Throws BlockUnavailableError (which relays
   * lied, lacked it or were down) when no relay gave bytes that match the CID.
   */
  async get(cid: CID, what: string, signal?: AbortSignal): Promise<FetchedBlock> {
    const key = cid.toString()
    const cached = await this.#blockstore.has(cid)
    this.#labels.set(key, what)
    try {
      const bytes = await heliaBlock(this.#helia, cid, signal)
      return { bytes, from: cached ? 'cache' : (this.#servedBy.get(key) ?? 'a relay') }
    } catch (e) {
      throw unavailable(e) ?? e
    } finally {
      this.#labels.delete(key)
      this.#servedBy.delete(key)
    }
  }

  /** The cache's copy only (no network), or undefined. */
  async local(cid: CID): Promise<Uint8Array | undefined> {
    if (!(await this.#blockstore.has(cid))) return undefined
    return collectBytes(this.#blockstore.get(cid))
  }

  /**
   * Deliberately unverified bytes (for the explorer's re-check, which hashes them itself): the
   * cache's copy, else the first relay that has the block.
   */
  async untrusted(cid: CID): Promise<Uint8Array> {
    const local = await this.local(cid)
    if (local !== undefined) return local
    for (const relay of this.#relays.usable()) {
      try {
        const bytes = await relay.block(cid.toString())
        if (bytes !== null) return bytes
      } catch {
        continue
      }
    }
    throw new Error(`no relay has ${cid}`)
  }

  async stop(): Promise<void> {
    await this.#helia.stop()
  }
}
