/**
 * Hash routes of the site: `#/chat`, `#/explorer`, `#/donate`, `#/settings`.
 *
 * Hash routing keeps the site a set of static files: any static host (the relay, an IPFS gateway)
 * can serve it without rewrite rules.
 *
 * @module
 */

/** Every view, in nav order. */
export const ROUTES = Object.freeze([
  { id: 'chat', label: 'Chat' },
  { id: 'explorer', label: 'Explorer' },
  { id: 'donate', label: 'Donate' },
  { id: 'settings', label: 'Settings' }
] as const)

export type RouteId = (typeof ROUTES)[number]['id']

/** The view an empty hash (`''`, `#`, `#/`) shows. */
export const DEFAULT_ROUTE: RouteId = 'chat'

/** The link for a view, e.g. `#/chat`. */
export function hrefFor(id: RouteId): string {
  return `#/${id}`
}

/**
 * The view a `location.hash` names, or `undefined` for a hash that names no view.
 * Anything after the view name (`#/explorer/bafy...`) is left for the view to read.
 */
export function routeFromHash(hash: string): RouteId | undefined {
  const path = hash.replace(/^#\/?/, '')
  const id = path.split(/[/?]/, 1)[0] ?? ''
  if (id === '') return DEFAULT_ROUTE
  return ROUTES.find((r) => r.id === id)?.id
}
