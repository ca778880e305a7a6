/**
 * Types and error classes shared by the relay's parts (static site now; API, WebSocket, gateway and
 * full node later). Implementations import these with `import type` where they can.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * One part of the relay's HTTP surface. It resolves `true` when it answered the request and `false`
 * when the request is not its business, so `relay/start.ts` can try handlers in order.
 */
export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>

/** Why the site needs (or does not need) a build. */
export interface Staleness {
  readonly stale: boolean
  /** One line for the log, e.g. `dist/index.html is missing` or `src/ui/App.svelte is newer than dist/index.html`. */
  readonly reason: string
}

/** The vite build of the site failed; `cause` holds vite's error. */
export class SiteBuildError extends Error {
  override readonly name = 'SiteBuildError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}
