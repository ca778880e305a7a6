/**
 * A route table and its matcher, for the JSON API (routes.ts).
 *
 * ```ts
 * const routes: Route<Context>[] = [
 *   { methods: ['POST'], path: '/api/blocks', exclusive: true, handler: submitBlock },
 *   { methods: ['GET', 'HEAD'], path: '/api/blocks/:cid', handler: getBlock }   // call.params['cid']
 * ]
 * const match = matchRoute(routes, 'GET', '/api/blocks/bafy...')
 * ```
 *
 * A path pattern is segments separated by `/`, each a literal or a `:name` parameter. A parameter
 * matches any one segment, the empty one included, as it is in the URL (not percent-decoded).
 *
 * What a request matches, in order:
 * 1. the first route whose pattern matches the path and whose methods include the request's;
 * 2. else, when `exclusive` routes match the path: 405 with their methods in `Allow` (so `GET
 *    /api/blocks`, whose only route is `POST`, is told to POST);
 * 3. else the table's default methods (`GET, HEAD`: the API is read-only but where a route says
 *    otherwise): a request with any other method is 405 with those in `Allow`, one with them is 404.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

/** A request as a route handler sees it. */
export interface RouteCall {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly url: URL
  /** The pattern's `:name` segments, by name. */
  readonly params: Readonly<Record<string, string>>
}

export interface Route<C> {
  readonly methods: readonly string[]
  /** e.g. `/api/jobs/:id/lease`. */
  readonly path: string
  /** The path answers no other method: any other is 405 with this route's methods in `Allow`. */
  readonly exclusive?: boolean
  /** Answers the request (always: a route that matched owns the response). */
  readonly handler: (context: C, call: RouteCall) => Promise<void> | void
}

export type RouteMatch<C> =
  | { readonly route: Route<C>; readonly params: Readonly<Record<string, string>> }
  | { readonly allow: readonly string[] }
  | null

/** The methods a path answers when no route claims it exclusively. */
export const DEFAULT_METHODS: readonly string[] = Object.freeze(['GET', 'HEAD'])

/** The route a request takes, the methods to allow (405), or null (404). */
export function matchRoute<C>(routes: readonly Route<C>[], method: string, path: string): RouteMatch<C> {
  const segments = path.split('/')
  const allow: string[] = []
  for (const route of routes) {
    const params = matchPath(route.path, segments)
    if (params === null) continue
    if (route.methods.includes(method)) return { route, params }
    if (route.exclusive === true) allow.push(...route.methods)
  }
  if (allow.length > 0) return { allow }
  return DEFAULT_METHODS.includes(method) ? null : { allow: DEFAULT_METHODS }
}

/** The parameters of `pattern` in a path's segments, or null when the path does not match. */
function matchPath(pattern: string, segments: readonly string[]): Record<string, string> | null {
  const parts = pattern.split('/')
  if (parts.length !== segments.length) return null
  const params: Record<string, string> = {}
  for (const [i, part] of parts.entries()) {
    const segment = segments[i] as string
    if (part.startsWith(':')) params[part.slice(1)] = segment
    else if (part !== segment) return null
  }
  return params
}
