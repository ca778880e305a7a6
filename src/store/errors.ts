/**
 * Cache failures, and how a browser says "storage full".
 *
 * @module
 */

/**
 * The browser refused to store a block even after the cache evicted least recently used tiles.
 * The message is written for the user (the UI shows it through `CacheUsage.error`); nothing that
 * was cached is lost except the evicted tiles, and blocks keep coming from relays meanwhile.
 */
export class CacheQuotaError extends Error {
  override readonly name = 'CacheQuotaError'
  /** Bytes of the block that could not be stored. */
  readonly bytes: number
  /** Bytes freed by evicting before the retry. */
  readonly freed: number

  constructor(bytes: number, freed: number, cause: unknown) {
    super(
      `The browser refused to store more data for this site (storage quota reached), even after ` +
        `freeing ${mib(freed)} of cached tiles. Free disk space or lower the cache budget in Settings; ` +
        `meanwhile blocks that do not fit are fetched from relays each time.`,
      { cause }
    )
    this.bytes = bytes
    this.freed = freed
  }
}

/**
 * True for an IndexedDB quota failure. Browsers report it as a `QuotaExceededError` DOMException
 * (legacy code 22; Firefox's older `NS_ERROR_DOM_QUOTA_REACHED`), or as an `AbortError` for the
 * transaction whose own `error` (or `cause`) is the quota error.
 */
export function isQuotaError(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false
  const { name, code } = e as { name?: unknown; code?: unknown }
  if (name === 'QuotaExceededError' || name === 'NS_ERROR_DOM_QUOTA_REACHED') return true
  if (code === 22 && name !== 'AbortError') return true
  if (name === 'AbortError') {
    const inner = (e as { error?: unknown; cause?: unknown }).error ?? (e as { cause?: unknown }).cause
    return inner !== e && isQuotaError(inner)
  }
  return false
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`
}
