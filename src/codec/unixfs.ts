/**
 * UnixFS files as the protocol lays them out (protocol.md §11): raw leaves under dag-pb `file` nodes
 * of at most 1024 links and no inline data, every CID v1 sha2-256. Decoding one node and walking a
 * whole file over a synchronous block source are here, once, for everything that reads files: the
 * light client's tile paths (src/tensor/tiles.ts), submissions, the explorer's level-by-level
 * Verify, and the full node's store (relay/node/chain-store.ts).
 *
 * Untrusted input gets RuleErrors: E_MERKLE for a node, link or size that is not what the layout
 * allows, E_INCOMPLETE for a block the source lacks, E_TOO_LARGE for a file over a caller's limit.
 *
 * @module
 */
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { isRuleError, reject } from '../errors.ts'
import { DAG_PB, RAW, SHA2_256 } from './cbor.ts'

/** Links per dag-pb node (the importer's balanced layout). */
export const UNIXFS_MAX_LINKS = 1024
/** Deepest tree walked: 1024^8 leaves is beyond any payload. */
export const UNIXFS_MAX_DEPTH = 8

/** A decoded interior node: children with the file bytes each covers. */
export interface FileNode {
  /** (links) child CIDs, in file order */
  readonly links: readonly CID[]
  /** (links) file bytes under each link, all > 0 */
  readonly sizes: readonly number[]
  /** sum of sizes */
  readonly size: number
}

/** The CID, if CIDv1 sha2-256 with codec raw or dag-pb; else E_MERKLE naming `field`. */
export function fileCid(x: unknown, field: string): CID {
  const cid = CID.asCID(x)
  if (cid === null) reject('E_MERKLE', field, 'not a CID')
  if (cid.version !== 1) reject('E_MERKLE', field, 'only CIDv1 is accepted')
  if (cid.multihash.code !== SHA2_256 || cid.multihash.digest.length !== 32) reject('E_MERKLE', field, 'only sha2-256 CIDs are accepted')
  if (cid.code !== RAW && cid.code !== DAG_PB) reject('E_MERKLE', field, `codec 0x${cid.code.toString(16)} is neither raw nor dag-pb`)
  return cid
}

/** dag-pb + UnixFS `file` with 1..1024 links and no inline data (what the importer writes above raw leaves); E_MERKLE naming `field` otherwise. */
export function decodeFileNode(block: Uint8Array, field: string): FileNode {
  let pb: dagPb.PBNode
  let fs: UnixFS
  try {
    pb = dagPb.decode(block)
    if (pb.Data === undefined) reject('E_MERKLE', field, 'dag-pb node has no UnixFS data')
    fs = UnixFS.unmarshal(pb.Data)
  } catch (e) {
    if (isRuleError(e)) throw e
    reject('E_MERKLE', field, `not a dag-pb UnixFS node: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (fs.type !== 'file') reject('E_MERKLE', field, `UnixFS type ${fs.type}, expected file`)
  if (fs.data !== undefined && fs.data.length > 0) reject('E_MERKLE', field, 'interior node holds inline data')
  if (pb.Links.length < 1 || pb.Links.length > UNIXFS_MAX_LINKS || pb.Links.length !== fs.blockSizes.length) {
    reject('E_MERKLE', field, `${pb.Links.length} links with ${fs.blockSizes.length} blockSizes`)
  }
  const links: CID[] = []
  const sizes: number[] = []
  let size = 0
  pb.Links.forEach((link, i) => {
    links.push(fileCid(link.Hash, `${field}.Links[${i}]`))
    const s = fs.blockSizes[i] as bigint
    if (s < 1n || s > BigInt(Number.MAX_SAFE_INTEGER)) reject('E_MERKLE', `${field}.blockSizes[${i}]`, `block size ${s}`)
    sizes.push(Number(s))
    size += Number(s)
  })
  if (!Number.isSafeInteger(size)) reject('E_MERKLE', field, 'file size overflows')
  return { links, sizes, size }
}

/** The child whose byte range [start, start + size) holds `target`; E_MERKLE when no link covers it. */
export function selectChild(node: FileNode, nodeStart: number, target: number, field: string): { cid: CID; start: number; size: number } {
  let start = nodeStart
  for (let i = 0; i < node.links.length; i++) {
    const size = node.sizes[i] as number
    if (target < start + size) return { cid: node.links[i] as CID, start, size }
    start += size
  }
  reject('E_MERKLE', field, `no link covers byte ${target}`)
}

export interface WalkOptions {
  /** The file size the caller expects (a header's payload_size, a document's content_size): E_MERKLE when the file is another size. */
  readonly size?: number
  /** Largest file accepted: E_TOO_LARGE (field of the root) beyond it, before any child is read. */
  readonly maxBytes?: number
  /** The error field of a block, from its CID and its path from the root (`root.Links[2]`). Default: the path. */
  readonly field?: (cid: CID, path: string) => string
  /**
   * Each block in depth-first file order (a block linked twice is visited twice), with the file
   * offset it starts at. Return true to stop the walk there (the size is then not checked).
   */
  readonly visit?: (cid: CID, bytes: Uint8Array, offset: number) => boolean | void
}

/**
 * Walk the UnixFS file at `root` over a synchronous source of blocks already checked against their
 * CIDs (a store, a decoded CAR): every block present (E_INCOMPLETE), every CID of the right form,
 * every node a file node whose sizes its children match (E_MERKLE), at most UNIXFS_MAX_DEPTH deep.
 * Returns the file size.
 */
export function walkFile(root: CID, getBlock: (cid: CID) => Uint8Array | undefined, options: WalkOptions = {}): number {
  const fieldOf = options.field ?? ((_cid: CID, path: string) => path)
  const get = (cid: CID, path: string): Uint8Array => {
    const block = getBlock(cid)
    if (block === undefined) reject('E_INCOMPLETE', fieldOf(cid, path), `block ${cid} is missing`)
    return block
  }
  const rootCid = fileCid(root, 'root')
  const rootField = fieldOf(rootCid, 'root')
  const rootBytes = get(rootCid, 'root')
  let stopped = false
  const check = (size: number): void => {
    if (options.maxBytes !== undefined && size > options.maxBytes) reject('E_TOO_LARGE', rootField, `file of ${size} bytes, limit ${options.maxBytes}`)
    if (options.size !== undefined && size !== options.size) reject('E_MERKLE', rootField, `file of ${size} bytes, expected ${options.size}`)
  }
  if (rootCid.code === RAW) {
    check(rootBytes.length)
    options.visit?.(rootCid, rootBytes, 0)
    return rootBytes.length
  }
  const top = decodeFileNode(rootBytes, rootField)
  check(top.size)
  if (options.visit?.(rootCid, rootBytes, 0) === true) return top.size
  const walk = (node: FileNode, start: number, depth: number, path: string): void => {
    if (depth > UNIXFS_MAX_DEPTH) reject('E_MERKLE', fieldOf(rootCid, path), `deeper than ${UNIXFS_MAX_DEPTH} levels`)
    let offset = start
    for (let i = 0; i < node.links.length && !stopped; i++) {
      const cid = node.links[i] as CID
      const childPath = `${path}.Links[${i}]`
      const expected = node.sizes[i] as number
      const block = get(cid, childPath)
      if (cid.code === RAW) {
        if (block.length !== expected) reject('E_MERKLE', fieldOf(cid, childPath), `leaf of ${block.length} bytes, the parent says ${expected}`)
        if (options.visit?.(cid, block, offset) === true) stopped = true
      } else {
        const child = decodeFileNode(block, fieldOf(cid, childPath))
        if (child.size !== expected) reject('E_MERKLE', fieldOf(cid, childPath), `node covers ${child.size} bytes, the parent says ${expected}`)
        if (options.visit?.(cid, block, offset) === true) stopped = true
        else walk(child, offset, depth + 1, childPath)
      }
      offset += expected
    }
  }
  walk(top, 0, 1, 'root')
  return top.size
}

/** The first `want` bytes of the file at `root` (fewer when the file is shorter), reading no more blocks than that takes. */
export function fileHead(root: CID, getBlock: (cid: CID) => Uint8Array | undefined, want: number, options: Pick<WalkOptions, 'field'> = {}): Uint8Array {
  const out = new Uint8Array(want)
  let have = 0
  walkFile(root, getBlock, {
    ...options,
    visit: (cid, bytes, offset) => {
      if (cid.code !== RAW) return false
      const take = Math.min(bytes.length, want - offset)
      if (take > 0) out.set(bytes.subarray(0, take), offset)
      have = Math.max(have, offset + take)
      return offset + bytes.length >= want
    }
  })
  return out.subarray(0, have)
}
