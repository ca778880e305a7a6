/**
 * IPLD traversal for the relay: the links of a block, and the blocks of a DAG in depth-first order.
 *
 * @module
 */
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { DAG_CBOR, DAG_PB } from '../../src/codec/cbor.ts'

/** Links of a block in the order a depth-first CAR lists them (dag-pb links, or CIDs in a dag-cbor value). */
export function linksOf(cid: CID, bytes: Uint8Array): CID[] {
  if (cid.code === DAG_PB) return dagPb.decode(bytes).Links.map((l) => l.Hash)
  if (cid.code !== DAG_CBOR) return []
  const out: CID[] = []
  const walk = (v: unknown): void => {
    const link = CID.asCID(v)
    if (link !== null) out.push(link)
    else if (Array.isArray(v)) v.forEach(walk)
    else if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) Object.values(v).forEach(walk)
  }
  walk(dagCbor.decode(bytes))
  return out
}

/**
 * Visit the DAG under `root` depth-first, each block once. `follow(cid)` decides whether to descend
 * into a block's links (default: always). Blocks `get` lacks are skipped and reported through `missing`.
 */
export function* walkDag(
  root: CID,
  get: (cid: CID) => Uint8Array | undefined,
  options: { follow?: (cid: CID) => boolean; missing?: (cid: CID) => void } = {}
): Generator<{ cid: CID; bytes: Uint8Array }> {
  const seen = new Set<string>()
  const stack: CID[] = [root]
  while (stack.length > 0) {
    const cid = stack.pop() as CID
    const key = cid.toString()
    if (seen.has(key)) continue
    seen.add(key)
    const bytes = get(cid)
    if (bytes === undefined) {
      options.missing?.(cid)
      continue
    }
    yield { cid, bytes }
    if (options.follow !== undefined && !options.follow(cid)) continue
    const children = linksOf(cid, bytes)
    for (let i = children.length - 1; i >= 0; i--) if (!seen.has((children[i] as CID).toString())) stack.push(children[i] as CID)
  }
}
