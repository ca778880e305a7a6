/**
 * The relay's per-client rate limit: token buckets per address, each request weighted by what it
 * costs the node to answer.
 *
 * @module
 */

export interface RateLimit {
  /** Requests a client may make at once (bucket size). */
  readonly burst: number
  /** Requests per second the bucket refills. */
  readonly perSecond: number
}

export const DEFAULT_RATE_LIMIT: RateLimit = Object.freeze({ burst: 2000, perSecond: 1000 })

/**
 * What a request costs in rate-limit tokens: 1 for a small read, more for what is costly to answer,
 * so one address cannot spend the node's CPU on its most expensive routes at the rate it may read
 * status: a page of headers costs 1 per 10 headers it may hold, a CAR export walks a DAG, a
 * submission is hashed and judged, a WebSocket upgrade holds a connection and every later block.
 */
export function requestCost(method: string, url: URL, accept: string | undefined, upgrade = false): number {
  const path = url.pathname
  if (upgrade) return 20
  if (path === '/api/blocks' && method === 'POST') return 20
  if (path === '/api/headers') {
    const limit = Number(url.searchParams.get('limit') ?? 100)
    return 1 + Math.ceil(Math.min(Number.isFinite(limit) && limit > 0 ? limit : 100, 1000) / 10)
  }
  if (path === '/api/rejections') return 5
  if (path.startsWith('/api/jobs/') && method !== 'GET') return 5
  if (path.startsWith('/ipfs/')) {
    const car = url.searchParams.get('format') === 'car' || (accept ?? '').includes('application/vnd.ipld.car')
    if (!car) return 1
    const scope = url.searchParams.get('dag-scope') ?? 'all'
    return scope === 'block' ? 2 : scope === 'entity' ? 10 : 50
  }
  return 1
}

/**
 * Token buckets per client address. `take` answers 0 when a request of `cost` tokens may proceed,
 * else the seconds until it could (for `Retry-After`). Idle buckets are forgotten, so memory stays
 * bounded.
 */
export function createRateLimiter(limit: RateLimit, now: () => number = () => performance.now()): { take(client: string, cost?: number): number } {
  const buckets = new Map<string, { tokens: number; at: number }>()
  let lastSweep = now()
  return {
    take(client: string, cost = 1): number {
      const t = now()
      if (t - lastSweep > 60_000) {
        for (const [k, b] of buckets) if (t - b.at > 60_000) buckets.delete(k)
        lastSweep = t
      }
      const b = buckets.get(client) ?? { tokens: limit.burst, at: t }
      b.tokens = Math.min(limit.burst, b.tokens + ((t - b.at) / 1000) * limit.perSecond)
      b.at = t
      buckets.set(client, b)
      const need = Math.min(cost, limit.burst)
      if (b.tokens >= need) {
        b.tokens -= need
        return 0
      }
      return Math.max(1, Math.ceil((need - b.tokens) / limit.perSecond))
    }
  }
}
