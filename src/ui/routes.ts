/**
 * Hash routes of the site: `#/chat`, `#/explorer`, `#/donate`, `#/datasets`, `#/wallet`, `#/settings`.
 *
 * Hash routing keeps the site a set of static files: any static host (the relay, an IPFS gateway)
 * can serve it without rewrite rules.
 *
 * @module
 */
import type { ChainId } from '../chain/header.ts'

/** Every view, in nav order. */
export const ROUTES = Object.freeze([
  { id: 'chat', label: 'Chat' },
  { id: 'explorer', label: 'Explorer' },
  { id: 'donate', label: 'Donate' },
  { id: 'datasets', label: 'Datasets' },
  { id: 'wallet', label: 'Wallet' },
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

// ------------------------------------------------------------------------------------ explorer

export type ExplorerChain = ChainId
export const EXPLORER_CHAINS: readonly ExplorerChain[] = Object.freeze(['A', 'B', 'C', 'D'])

/** The chain the explorer opens on: B holds the model's blocks, which is what people come to see. */
export const DEFAULT_CHAIN: ExplorerChain = 'B'

/** What the explorer shows, from the part of the hash after `#/explorer`. */
export type ExplorerRoute =
  | { readonly kind: 'chain'; readonly chain: ExplorerChain }
  | { readonly kind: 'dag' }
  | { readonly kind: 'rejections' }
  | { readonly kind: 'network' }
  | { readonly kind: 'search'; readonly query: string }
  | { readonly kind: 'block'; readonly cid: string }

function decode(part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    return part
  }
}

/**
 * `#/explorer` and `#/explorer/chain/<A-D>` list a chain, `#/explorer/dag` draws chain B,
 * `#/explorer/rejections` lists refused submissions, `#/explorer/network` shows the peer network, `#/explorer/search/<query>` searches,
 * `#/explorer/<cid>` shows one block.
 */
export function explorerRouteFromHash(hash: string): ExplorerRoute {
  const path = hash.replace(/^#\/?/, '').split('?', 1)[0] ?? ''
  const parts = path.split('/').filter((p) => p !== '')
  const [, first, second] = parts
  if (first === undefined) return { kind: 'chain', chain: DEFAULT_CHAIN }
  if (first === 'dag') return { kind: 'dag' }
  if (first === 'rejections') return { kind: 'rejections' }
  if (first === 'network') return { kind: 'network' }
  if (first === 'chain') {
    const chain = EXPLORER_CHAINS.find((c) => c === second?.toUpperCase())
    return { kind: 'chain', chain: chain ?? DEFAULT_CHAIN }
  }
  if (first === 'search') {
    const query = decode(parts.slice(2).join('/')).trim()
    return query === '' ? { kind: 'chain', chain: DEFAULT_CHAIN } : { kind: 'search', query }
  }
  return { kind: 'block', cid: decode(first) }
}

/** The link for an explorer route. */
export function hrefForExplorer(route: ExplorerRoute): string {
  switch (route.kind) {
    case 'chain':
      return `#/explorer/chain/${route.chain}`
    case 'dag':
      return '#/explorer/dag'
    case 'rejections':
      return '#/explorer/rejections'
    case 'network':
      return '#/explorer/network'
    case 'search':
      return `#/explorer/search/${encodeURIComponent(route.query)}`
    case 'block':
      return `#/explorer/${encodeURIComponent(route.cid)}`
  }
}

/** The explorer link for a block, e.g. `#/explorer/bafyrei...`. */
export function hrefForBlock(cid: string): string {
  return hrefForExplorer({ kind: 'block', cid })
}
