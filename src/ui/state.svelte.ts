/**
 * The client's state as the views see it: the latest `ClientStatus` (relay health, sync, cache,
 * backend), the saved settings, and a one-second clock for countdowns. One instance per page,
 * made by App and shared through context.
 *
 * Status events can come hundreds of times a second during a sync; they are coalesced to one per
 * animation frame, so the page redraws at most at the display's rate.
 *
 * @module
 */
import { getContext, setContext } from 'svelte'
import type { BlockSummary, CacheUsage, ClientApi, ClientStatus, Settings } from '../client/api.ts'
import { startOverrides, type UrlOptions } from './params.ts'

const KEY = Symbol('blyan.state')

/**
 * Values crossing to the worker are structured-cloned, and Svelte's state proxies cannot be: pass
 * plain copies (this is `$state.snapshot` for plain data).
 */
export function plain<T>(value: T): T {
  return $state.snapshot(value) as T
}

export class ClientState {
  readonly client: ClientApi
  readonly options: UrlOptions
  status: ClientStatus | null = $state(null)
  settings: Settings | null = $state(null)
  /** Set when start() failed: the page cannot work without the client. */
  startError: string | null = $state(null)
  /** Date.now(), updated every second while the page is open (retry countdowns, "5 s ago"). */
  now: number = $state(Date.now())

  #pending: ClientStatus | null = null
  #frame = 0
  #blockListeners = new Set<(block: BlockSummary) => void>()
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(client: ClientApi, options: UrlOptions) {
    this.client = client
    this.options = options
  }

  /** Subscribe to status and blocks, then start the client with the URL's overrides. */
  async start(): Promise<void> {
    this.#timer = setInterval(() => (this.now = Date.now()), 1000)
    try {
      await this.client.onStatus((s) => this.#receive(s))
      await this.client.onBlock((b) => {
        for (const listener of this.#blockListeners) listener(b)
      })
      const first = await this.client.start(startOverrides(this.options))
      if (this.status === null) this.status = first
      this.settings = await this.client.settings()
    } catch (e) {
      this.startError = e instanceof Error ? e.message : String(e)
    }
  }

  stop(): void {
    clearInterval(this.#timer)
    if (this.#frame !== 0) cancelAnimationFrame(this.#frame)
  }

  #receive(status: ClientStatus): void {
    this.#pending = status
    if (this.#frame !== 0) return
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0
      if (this.#pending !== null) this.status = this.#pending
      this.#pending = null
    })
  }

  /** Call `listener` for each block accepted live; returns the unsubscribe function. */
  onBlock(listener: (block: BlockSummary) => void): () => void {
    this.#blockListeners.add(listener)
    return () => this.#blockListeners.delete(listener)
  }

  /** Change settings, then show the status and settings the client reports back. */
  async updateSettings(patch: Partial<Settings>): Promise<void> {
    this.status = await this.client.updateSettings(plain(patch))
    this.settings = await this.client.settings()
  }

  async clearCache(): Promise<CacheUsage> {
    const cache = await this.client.clearCache()
    if (this.status !== null) this.status = { ...this.status, cache }
    return cache
  }
}

export function setClientState(state: ClientState): ClientState {
  return setContext(KEY, state)
}

export function getClientState(): ClientState {
  const state = getContext<ClientState | undefined>(KEY)
  if (state === undefined) throw new Error('getClientState: no client state in context; mount the component inside App')
  return state
}
