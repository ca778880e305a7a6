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
import type { BlockSummary, CacheUsage, ClientApi, ClientStatus, Settings } from '../client/api.ts'
import { pageContext } from './context.ts'
import { errorMessage } from './format.ts'
import { startOverrides, type UrlOptions } from './url-params.ts'

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
  /** True once the client's start() has returned: before, it refuses queries (the first status comes earlier). */
  started: boolean = $state(false)
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
      this.started = true
      this.settings = await this.client.settings()
    } catch (e) {
      this.startError = errorMessage(e)
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

/**
 * One settings form's saving: `saving` while its change is on its way (controls wait), `error`
 * saying why the last change was not saved. Anchor, backend and relay settings use one each.
 */
export class SettingsSaver {
  saving: boolean = $state(false)
  error: string | null = $state(null)
  readonly #app: ClientState

  constructor(app: ClientState) {
    this.#app = app
  }

  /** Save `patch` (ClientState.updateSettings); true when it was saved, else `error` says why. */
  async save(patch: Partial<Settings>): Promise<boolean> {
    this.saving = true
    this.error = null
    try {
      await this.#app.updateSettings(patch)
      return true
    } catch (e) {
      this.error = errorMessage(e)
      return false
    } finally {
      this.saving = false
    }
  }
}

const context = pageContext<ClientState>('client state', 'getClientState')
export const setClientState = context.set
export const getClientState = context.get
