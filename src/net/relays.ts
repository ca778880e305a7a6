/**
 * The relays a page uses, what each has done, and fetching a block from whichever is honest.
 *
 * A block is asked of the relays in order of standing (up before unknown before down; fewer lies
 * first) and its bytes are checked against its CID before anything else sees them. A relay whose
 * bytes do not match has lied: it is recorded, named to the user, and the next relay is asked.
 * Bytes that do match are correct whoever served them, so a relay that lied once is still asked,
 * last. When no relay has good bytes the caller gets a BlockUnavailableError saying who lied, who
 * lacked the block and who was down.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { RelayError, createRelayClient, normalizeRelayUrl, type RelayClient } from './relay-client.ts'

export type RelayHealth = 'unknown' | 'up' | 'down' | 'wrong-network'

export interface RelayLie {
  /** The CID whose bytes did not hash to it. */
  readonly cid: string
  /** What the block is, when the client knows (e.g. `tile 0 of layer0.expert1`). */
  readonly what: string
  readonly at: number
}

export interface RelayState {
  readonly url: string
  readonly health: RelayHealth
  /** Why it is down or on the wrong network. */
  readonly error: string | null
  /** Blocks it served that did not match their CID (newest first): it lied. Never used while an honest relay has the block. */
  readonly lies: readonly RelayLie[]
  /** Verified blocks it served, and their bytes. */
  readonly blocks: number
  readonly bytes: number
  /** ms since the epoch of the last good answer. */
  readonly lastSeen: number | null
  /** When the next reconnect is tried (down relays back off exponentially). */
  readonly retryAt: number | null
}

/** Lies kept per relay (the newest). */
const MAX_LIES = 20

/** No relay could give verified bytes for a block. */
export class BlockUnavailableError extends Error {
  override readonly name = 'BlockUnavailableError'
  readonly cid: string
  /** What the block is, when the caller said (e.g. `layer0.expert1`). */
  readonly what: string | null
  /** Relays that served bytes not matching the CID. */
  readonly lied: readonly string[]
  /** Relays that answered 404. */
  readonly missing: readonly string[]
  /** Relays that could not be reached or answered an error. */
  readonly down: readonly string[]
  constructor(cid: string, what: string | null, lied: readonly string[], missing: readonly string[], down: readonly string[]) {
    const parts: string[] = []
    if (lied.length > 0) parts.push(`${lied.join(', ')} served bytes that do not match its CID`)
    if (missing.length > 0) parts.push(`${missing.join(', ')} do not have it`)
    if (down.length > 0) parts.push(`${down.join(', ')} could not be reached`)
    if (parts.length === 0) parts.push('no relay is configured')
    super(`no verified copy of ${what === null ? 'block' : what} ${cid}: ${parts.join('; ')}`)
    this.cid = cid
    this.what = what
    this.lied = lied
    this.missing = missing
    this.down = down
  }
}

interface Entry {
  readonly client: RelayClient
  health: RelayHealth
  error: string | null
  lies: RelayLie[]
  blocks: number
  bytes: number
  lastSeen: number | null
  retryAt: number | null
}

export interface FetchBlockOptions {
  /** Resolves true when the bytes hash to the CID (Helia's validateFn, or the verify pool). */
  readonly verify: (bytes: Uint8Array) => Promise<boolean>
  /** What the block is, for the lie record and errors. */
  readonly what?: string
  readonly signal?: AbortSignal
}

const RANK: Readonly<Record<RelayHealth, number>> = { up: 0, unknown: 1, down: 2, 'wrong-network': 3 }

export class RelaySet {
  readonly #entries = new Map<string, Entry>()
  readonly #listeners = new Set<() => void>()
  readonly #fetch: typeof fetch

  constructor(urls: readonly string[], fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis)) {
    this.#fetch = fetchImpl
    this.set(urls)
  }

  /** Replace the relay list (keeping what is known about relays that stay). */
  set(urls: readonly string[]): void {
    const keep = new Map(this.#entries)
    this.#entries.clear()
    for (const raw of urls) {
      const url = normalizeRelayUrl(raw)
      if (this.#entries.has(url)) continue
      this.#entries.set(url, keep.get(url) ?? { client: createRelayClient(url, this.#fetch), health: 'unknown', error: null, lies: [], blocks: 0, bytes: 0, lastSeen: null, retryAt: null })
    }
    this.#changed()
  }

  /** Add a relay (one another relay announced); false when it is already in the set. */
  add(url: string): boolean {
    const key = normalizeRelayUrl(url)
    if (this.#entries.has(key)) return false
    this.#entries.set(key, { client: createRelayClient(key, this.#fetch), health: 'unknown', error: null, lies: [], blocks: 0, bytes: 0, lastSeen: null, retryAt: null })
    this.#changed()
    return true
  }

  get urls(): string[] {
    return [...this.#entries.keys()]
  }

  client(url: string): RelayClient {
    return this.#entry(url).client
  }

  /** Relays that may be asked for chain data: not on another network. */
  usable(): RelayClient[] {
    return this.#ordered().filter((e) => e.health !== 'wrong-network').map((e) => e.client)
  }

  states(): RelayState[] {
    return [...this.#entries.values()].map((e) => ({
      url: e.client.url,
      health: e.health,
      error: e.error,
      lies: [...e.lies],
      blocks: e.blocks,
      bytes: e.bytes,
      lastSeen: e.lastSeen,
      retryAt: e.retryAt
    }))
  }

  /** Called after any change of a relay's standing. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  markUp(url: string): void {
    const e = this.#entry(url)
    const changed = e.health !== 'up'
    e.lastSeen = Date.now()
    if (e.health === 'wrong-network') return
    e.health = 'up'
    e.error = null
    e.retryAt = null
    if (changed) this.#changed()
  }

  markDown(url: string, reason: string, retryAt: number | null = null): void {
    const e = this.#entry(url)
    if (e.health === 'wrong-network') return
    e.health = 'down'
    e.error = reason
    e.retryAt = retryAt
    this.#changed()
  }

  markWrongNetwork(url: string, reason: string): void {
    const e = this.#entry(url)
    e.health = 'wrong-network'
    e.error = reason
    e.retryAt = null
    this.#changed()
  }

  markLie(url: string, cid: string, what: string): void {
    const e = this.#entry(url)
    e.lies = [{ cid, what, at: Date.now() }, ...e.lies.filter((l) => l.cid !== cid)].slice(0, MAX_LIES)
    this.#changed()
  }

  /**
   * Verified bytes of a block: each relay in turn until one serves bytes `verify` accepts.
   * Throws BlockUnavailableError when none does (or the signal's reason when aborted).
   */
  async fetchBlock(cid: CID, options: FetchBlockOptions): Promise<{ bytes: Uint8Array; relay: string }> {
    const key = cid.toString()
    const what = options.what ?? null
    const lied: string[] = []
    const missing: string[] = []
    const down: string[] = []
    for (const e of this.#ordered()) {
      if (e.health === 'wrong-network') continue
      options.signal?.throwIfAborted()
      const url = e.client.url
      let bytes: Uint8Array | null
      try {
        bytes = await e.client.block(key, options.signal)
      } catch (err) {
        options.signal?.throwIfAborted()
        if (err instanceof RelayError && err.kind === 'http' && err.status !== null && err.status < 500 && err.status !== 429) {
          missing.push(url)
          continue
        }
        down.push(url)
        this.markDown(url, err instanceof Error ? err.message : String(err))
        continue
      }
      this.markUp(url)
      if (bytes === null) {
        missing.push(url)
        continue
      }
      if (!(await options.verify(bytes))) {
        lied.push(url)
        this.markLie(url, key, what ?? 'a block')
        continue
      }
      e.blocks++
      e.bytes += bytes.length
      return { bytes, relay: url }
    }
    throw new BlockUnavailableError(key, what, lied, missing, down)
  }

  #entry(url: string): Entry {
    const e = this.#entries.get(normalizeRelayUrl(url))
    if (e === undefined) throw new RangeError(`unknown relay ${url}`)
    return e
  }

  /** Up first, then unknown, then down; within a rank, fewer lies first, then configured order. */
  #ordered(): Entry[] {
    return [...this.#entries.values()]
      .map((e, i) => ({ e, i }))
      .sort((a, b) => RANK[a.e.health] - RANK[b.e.health] || a.e.lies.length - b.e.lies.length || a.i - b.i)
      .map(({ e }) => e)
  }

  #changed(): void {
    for (const l of this.#listeners) l()
  }
}
