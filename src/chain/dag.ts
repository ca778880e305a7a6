/**
 * Dependency order of a set of blocks: computed, never trusted.
 *
 * A sync receives headers in whatever order a relay sends them; validation needs every dependency
 * before its dependents. `topologicalOrder` is Kahn's algorithm with a deterministic tie-break, and
 * rejects a cycle (E_CYCLE) or a dependency that is neither in the set nor already known
 * (E_UNKNOWN_DEP).
 *
 * Where ids are CIDs computed from the bytes, a cycle would need a sha2-256 collision; the check
 * still runs because the function orders any id graph (for example ids a peer claims before the
 * bytes arrive).
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import type { Header } from './header.ts'

/**
 * Order `nodes` (id -> ids it depends on) so that every node comes after its dependencies.
 * Dependencies outside `nodes` must satisfy `isKnown`. Ties are broken by id order.
 */
export function topologicalOrder(nodes: ReadonlyMap<string, readonly string[]>, isKnown: (id: string) => boolean = () => false): string[] {
  const waiting = new Map<string, number>()
  const dependents = new Map<string, string[]>()
  for (const [id, deps] of nodes) {
    let count = 0
    for (const [i, dep] of deps.entries()) {
      if (nodes.has(dep)) {
        count++
        const list = dependents.get(dep)
        if (list === undefined) dependents.set(dep, [id])
        else list.push(id)
      } else if (!isKnown(dep)) {
        reject('E_UNKNOWN_DEP', `${id}.depends_on[${i}]`, `${dep} is neither in the set nor known`)
      }
    }
    waiting.set(id, count)
  }
  const ready = [...waiting].filter(([, n]) => n === 0).map(([id]) => id).sort()
  const order: string[] = []
  while (ready.length > 0) {
    const id = ready.shift() as string
    order.push(id)
    const freed: string[] = []
    for (const next of dependents.get(id) ?? []) {
      const left = (waiting.get(next) as number) - 1
      waiting.set(next, left)
      if (left === 0) freed.push(next)
    }
    if (freed.length > 0) {
      ready.push(...freed)
      ready.sort()
    }
  }
  if (order.length < nodes.size) {
    const stuck = [...waiting].filter(([, n]) => n > 0).map(([id]) => id).sort()
    reject('E_CYCLE', stuck[0] as string, `cycle among ${stuck.length} blocks: ${stuck.slice(0, 4).join(', ')}${stuck.length > 4 ? ', ...' : ''}`)
  }
  return order
}

/** The blocks a header links to: prev (linear chains) and depends_on. */
export function linksOf(header: Header): CID[] {
  return header.prev === null ? [...header.depends_on] : [header.prev, ...header.depends_on]
}

/** Order decoded blocks for validation: dependencies (in the set or `isKnown`) first. */
export function orderBlocks<T extends { readonly cid: CID; readonly header: Header }>(blocks: readonly T[], isKnown: (cid: string) => boolean): T[] {
  const byId = new Map(blocks.map((b) => [b.cid.toString(), b]))
  const graph = new Map([...byId].map(([id, b]) => [id, linksOf(b.header).map((c) => c.toString())]))
  return topologicalOrder(graph, isKnown).map((id) => byId.get(id) as T)
}
