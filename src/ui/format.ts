/**
 * Display helpers for the site: byte sizes, middle-ellipsis identifiers, relative times. Pure
 * functions of their arguments, so views stay declarative and the helpers are tested in Node.
 *
 * @module
 */

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const

/**
 * Bytes in binary units with three significant digits: `0 B`, `512 B`, `1.50 KiB`, `12.3 MiB`,
 * `512 MiB`. Binary because the cache budget is set in MiB and tiles are 256 KiB.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '–'
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024
    unit++
  }
  if (unit === 0) return `${Math.round(value)} B`
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2
  // 1023.95 KiB rounds to "1024 KiB"; step up so the figure always has at most three digits.
  if (Number(value.toFixed(digits)) >= 1024 && unit < BYTE_UNITS.length - 1) return `1.00 ${BYTE_UNITS[unit + 1]}`
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`
}

/** `value` of `total` as a whole percentage in 0..100 (0 when total is not positive). */
export function percent(value: number, total: number): number {
  if (!(total > 0) || !Number.isFinite(value)) return 0
  return Math.max(0, Math.min(100, Math.round((value / total) * 100)))
}

/**
 * Shorten a long identifier (CID, public key) by cutting its middle: `bafyreig…x7q4ka`. The start
 * tells the kind (`bafyrei` is dag-cbor sha2-256, `bafkrei` raw), the end tells blocks apart.
 */
export function middleEllipsis(value: string, head = 8, tail = 6): string {
  if (value.length <= head + tail + 1) return value
  return `${value.slice(0, head)}…${value.slice(value.length - tail)}`
}

/** A count with its noun: `1 tile`, `3 tiles`, `0 experts`. */
export function plural(count: number, one: string, many = `${one}s`): string {
  return `${count.toLocaleString('en-US')} ${count === 1 ? one : many}`
}

/** Whole seconds until `at` (never negative), for "retrying in 8 s". */
export function secondsUntil(at: number, now: number): number {
  return Math.max(0, Math.ceil((at - now) / 1000))
}

/** How long ago `then` was, coarsely: `just now`, `42 s ago`, `5 min ago`, `3 h ago`, `2 d ago`. */
export function formatAgo(then: number, now: number): string {
  const s = Math.round((now - then) / 1000)
  if (s < 5) return 'just now'
  if (s < 60) return `${s} s ago`
  const m = Math.round(s / 60)
  if (m < 60) return `${m} min ago`
  const h = Math.round(m / 60)
  if (h < 48) return `${h} h ago`
  return `${Math.round(h / 24)} d ago`
}

/** A block timestamp (ms since the epoch) as an ISO-like UTC string: `2025-01-31 14:05:09 UTC`. */
export function formatTimestamp(ms: number): string {
  if (!Number.isFinite(ms)) return '–'
  const d = new Date(ms)
  if (Number.isNaN(d.getTime())) return '–'
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`
}

/** Milliseconds as `850 ms` or `1.2 s`. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–'
  if (ms < 1000) return `${Math.round(ms)} ms`
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`
}

/** Does this string look like a CID we can link to (CIDv1 base32 or a CIDv0)? Display only. */
export function looksLikeCid(value: string): boolean {
  return /^b[a-z2-7]{50,}$/.test(value) || /^Qm[1-9A-HJ-NP-Za-km-z]{44}$/.test(value)
}

/** What a thrown value says: an Error's message, anything else as a string. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
