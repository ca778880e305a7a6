/**
 * Tiles: a payload stored as a UnixFS file, and Merkle paths from its CID to any one tile.
 *
 * The payload is imported with fixed 256 KiB chunks as raw leaves (CIDv1, codec raw 0x55,
 * sha2-256): each leaf is one *tile*, tile t holding payload bytes [t * TILE_SIZE, +TILE_SIZE)
 * (the last one shorter). Leaves hang under dag-pb (0x70) UnixFS `file` nodes, at most 1024 per
 * node, in a balanced tree:
 *
 *   1 tile             root = the raw leaf itself (reduceSingleLeafToSelf)
 *   2 .. 1024 tiles    root dag-pb node -> leaves                     (payloads <= 256 MiB)
 *   1025 .. 1024^2     root -> up to 1024 dag-pb nodes -> leaves      (payloads <= 256 GiB)
 *
 * Each dag-pb node's UnixFS `blockSizes[i]` is the number of file bytes under link i, so a
 * verifier can tell which link covers a byte offset without fetching siblings. A TilePath is the
 * blocks from the root down to one leaf; `verifyTilePath` hashes each and checks that the next
 * block is the link covering the tile's byte range, ending at a raw leaf at offset
 * tile * TILE_SIZE of the expected length. This is how a light client trusts a slice of a
 * payload, given only the payload CID from a block header.
 *
 * Only CIDv1 with sha2-256 is accepted anywhere in a path.
 *
 * @module
 */
import { importBytes, type ImporterOptions } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import { RAW, bytesEqual } from '../codec/cbor.ts'
import { UNIXFS_MAX_DEPTH, UNIXFS_MAX_LINKS, decodeFileNode, fileCid, selectChild, walkFile, type FileNode } from '../codec/unixfs.ts'
import { reject } from '../errors.ts'
import { abytes, aint } from '../assert.ts'

/** Bytes per tile = UnixFS chunk = raw leaf: 256 KiB. */
export const TILE_SIZE = 262144
/** Most links per dag-pb node (the balanced layout's fan-out). */
export const TILE_FANOUT = UNIXFS_MAX_LINKS

/**
 * The importer options that define a payload's CID. Changing any of them changes every payload
 * CID on the chain, so they are pinned here and used by importPayload only:
 * - cidVersion 1, rawLeaves: leaves are plain bytes under a raw CID (a tile hashes as itself);
 * - reduceSingleLeafToSelf: a payload of one tile is addressed by that leaf's CID;
 * - fixedSize 262144 chunks: tile t starts at byte t * TILE_SIZE, so offsets map to tiles;
 * - balanced layout, 1024 children per node: shallow trees (depth 1 up to 256 MiB).
 */
export const UNIXFS_OPTIONS: Readonly<ImporterOptions> = /* @__PURE__ */ Object.freeze({
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: TILE_SIZE }),
  layout: balanced({ maxChildrenPerNode: TILE_FANOUT })
})

/** Blocks from the payload root down to one tile. */
export interface TilePath {
  /** tile index: the leaf covers payload bytes [tile * TILE_SIZE, +TILE_SIZE) */
  tile: number
  /** root block first, then one dag-pb node per level, the raw leaf (the tile bytes) last */
  blocks: Uint8Array[]
}

// ---------------------------------------------------------------------------- import

/**
 * Import a payload as a UnixFS file with UNIXFS_OPTIONS.
 * Returns the root CID and every block, keyed by CID string (base32), for a store to keep. Leaf
 * blocks may be views into `bytes`; copy them if `bytes` will be reused.
 */
export async function importPayload(
  bytes: Uint8Array,
  options: { signal?: AbortSignal } = {}
): Promise<{ cid: CID; blocks: Map<string, Uint8Array> }> {
  abytes(bytes, 'bytes')
  if (bytes.length < 1) throw new RangeError('bytes: a payload is never empty')
  const signal = options.signal
  signal?.throwIfAborted()
  const blocks = new Map<string, Uint8Array>()
  // A put-only store: the importer only ever writes.
  const store = {
    put(cid: CID, block: Uint8Array): CID {
      signal?.throwIfAborted()
      blocks.set(cid.toString(), block)
      return cid
    }
  }
  const { cid } = await importBytes(bytes, store, { ...UNIXFS_OPTIONS })
  signal?.throwIfAborted()
  return { cid, blocks }
}

// ---------------------------------------------------------------------------- ranges

/** Number of tiles in a payload of `payloadSize` bytes. */
export function tileCount(payloadSize: number): number {
  aint(payloadSize, 'payloadSize', 1)
  return Math.ceil(payloadSize / TILE_SIZE)
}

/** Inclusive tile indexes holding payload bytes [offset, offset + length). */
export function tilesForRange(offset: number, length: number, payloadSize: number): { first: number; last: number } {
  aint(payloadSize, 'payloadSize', 1)
  aint(offset, 'offset', 0, payloadSize - 1)
  aint(length, 'length', 1, payloadSize - offset)
  return { first: Math.floor(offset / TILE_SIZE), last: Math.floor((offset + length - 1) / TILE_SIZE) }
}

// ---------------------------------------------------------------------------- paths

/**
 * Collect the path from `root` to `tile` by walking dag-pb nodes with their UnixFS blockSizes.
 * `getBlock` supplies blocks (from a local store, usually). Blocks are not hashed here; malformed
 * nodes give E_MERKLE. A tile past the end of the file: RangeError.
 */
export async function extractTilePath(
  root: CID,
  tile: number,
  getBlock: (cid: CID) => Promise<Uint8Array>
): Promise<TilePath> {
  acid(root, 'root')
  aint(tile, 'tile')
  if (typeof getBlock !== 'function') throw new TypeError('getBlock: expected function')
  const target = tile * TILE_SIZE
  const blocks: Uint8Array[] = []
  let cid = root
  let start = 0
  for (let depth = 0; depth <= UNIXFS_MAX_DEPTH; depth++) {
    const block = await getBlock(cid)
    abytes(block, 'getBlock result')
    blocks.push(block)
    const field = `blocks[${depth}]`
    if (cid.code === RAW) {
      if (depth === 0 && target >= block.length) throw new RangeError(`tile: ${tile} is past the single-tile payload`)
      if (start !== target) reject('E_MERKLE', field, `leaf starts at ${start}, not at tile offset ${target}`)
      return { tile, blocks }
    }
    const node = decodeFileNode(block, field)
    if (depth === 0 && target >= node.size) throw new RangeError(`tile: ${tile} is past the payload end ${node.size}`)
    const child = selectChild(node, start, target, field)
    cid = child.cid
    start = child.start
  }
  reject('E_MERKLE', 'blocks', `deeper than ${UNIXFS_MAX_DEPTH} levels`)
}

/**
 * Verify a TilePath against a trusted payload CID and return the tile: its payload byte offset
 * (tile * TILE_SIZE) and its bytes (the last block). Every block is hashed with WebCrypto
 * SHA-256, except interior nodes byte-identical to ones already verified (see `verifiedNodes`).
 * A dag-pb block that does not hash to the link naming it, a path that is too short or too long,
 * a node that is not a UnixFS file, or a leaf at the wrong offset or of the wrong length:
 * E_MERKLE. Tile bytes (the raw leaf) that do not hash to their CID: E_TILE.
 *
 * The walk runs synchronously on the bytes as they are at the call (WebCrypto copies its input
 * when called, and nodes are decoded from copies), so later changes to the caller's buffers cannot
 * make what was hashed differ from what was walked. Hashes are awaited together at the end.
 */
export async function verifyTilePath(root: CID, path: TilePath): Promise<{ offset: number; bytes: Uint8Array }> {
  acid(root, 'root')
  if (typeof path !== 'object' || path === null) throw new TypeError('path: expected TilePath')
  aint(path.tile, 'path.tile')
  if (!Array.isArray(path.blocks)) throw new TypeError('path.blocks: expected array')
  const blocks = path.blocks
  blocks.forEach((b, i) => abytes(b, `path.blocks[${i}]`))
  if (blocks.length < 1) reject('E_MERKLE', 'blocks', 'empty path')
  if (blocks.length > UNIXFS_MAX_DEPTH + 1) reject('E_MERKLE', 'blocks', `deeper than ${UNIXFS_MAX_DEPTH} levels`)

  const target = path.tile * TILE_SIZE
  /** Hashes still to check, in path order, and the interior nodes to remember once they pass. */
  const pending: { field: string; cid: CID; digest: Promise<Uint8Array>; leaf: boolean; copy?: Uint8Array; node?: FileNode }[] = []
  let expected = fileCid(root, 'root')
  let start = 0
  let size = -1 // bytes the parent says this block covers; unknown for the root
  let fileSize = -1
  let leaf: Uint8Array | undefined
  let leafCid = expected
  let leafField = ''
  for (let i = 0; i < blocks.length && leaf === undefined; i++) {
    const block = blocks[i]!
    const field = `blocks[${i}]`
    if (expected.code === RAW) {
      if (i !== blocks.length - 1) reject('E_MERKLE', 'blocks', 'path continues past the raw leaf')
      if (i === 0) {
        fileSize = block.length
        size = block.length
      }
      if (start !== target) reject('E_MERKLE', field, `leaf covers offset ${start}, tile ${path.tile} starts at ${target}`)
      const want = Math.min(TILE_SIZE, fileSize - target)
      if (block.length !== size || block.length !== want) {
        reject('E_MERKLE', field, `leaf is ${block.length} bytes, a tile here is ${want} and the parent says ${size}`)
      }
      leaf = block
      leafCid = expected
      leafField = field
      break
    }
    if (i === blocks.length - 1) reject('E_MERKLE', 'blocks', 'path ends at a dag-pb node, not at the tile')
    const key = expected.toString()
    const known = verifiedNodes.get(key)
    let node: FileNode
    if (known !== undefined && bytesEqual(known.bytes, block)) {
      node = known.node // these exact bytes hashed to this CID before
    } else {
      const copy = new Uint8Array(block) // a private copy even of a Buffer (whose slice() is a view)
      node = decodeFileNode(copy, field)
      pending.push({ field, cid: expected, digest: sha256(copy), leaf: false, copy, node })
    }
    if (i === 0) {
      fileSize = node.size
      if (target >= fileSize) reject('E_MERKLE', 'tile', `tile ${path.tile} is past the payload end ${fileSize}`)
    } else if (node.size !== size) {
      reject('E_MERKLE', field, `node covers ${node.size} bytes, its parent says ${size}`)
    }
    const child = selectChild(node, start, target, field)
    expected = child.cid
    start = child.start
    size = child.size
  }
  if (leaf === undefined) reject('E_MERKLE', 'blocks', 'path ends before the tile')
  // Hash the tile last, right before waiting: measured in Node 20, JS running on the main thread
  // while a WebCrypto digest is in flight slows that digest (3 us of JS cost 12 us), while the
  // same JS before the call costs only its own time.
  pending.push({ field: leafField, cid: leafCid, digest: sha256(leaf), leaf: true })
  const digests = pending.length === 1 ? [await pending[0]!.digest] : await Promise.all(pending.map((p) => p.digest))
  pending.forEach((p, k) => {
    if (!bytesEqual(digests[k]!, p.cid.multihash.digest)) {
      reject(p.leaf ? 'E_TILE' : 'E_MERKLE', p.field, `block does not hash to ${p.cid.toString()}`)
    }
  })
  for (const p of pending) if (p.copy !== undefined && p.node !== undefined) rememberNode(p.cid.toString(), p.copy, p.node)
  return { offset: target, bytes: leaf }
}

/**
 * Read a whole UnixFS file laid out as importPayload lays it out, from blocks already verified
 * against their CIDs (a store, a checked CAR). Returns the file bytes and every block CID of the DAG,
 * root first, depth-first. A block `getBlock` lacks: E_INCOMPLETE; a node that is not a UnixFS file
 * node, or sizes that disagree: E_MERKLE; a file over `maxBytes`: E_TOO_LARGE. Synchronous.
 */
export function readUnixfsFile(root: CID, getBlock: (cid: CID) => Uint8Array | undefined, maxBytes: number): { bytes: Uint8Array; cids: CID[] } {
  acid(root, 'root')
  aint(maxBytes, 'maxBytes', 1)
  const cids: CID[] = []
  let out: Uint8Array | undefined
  walkFile(root, getBlock, {
    maxBytes,
    visit: (cid, bytes, offset) => {
      cids.push(cid)
      // The root comes first: a one-tile file is its own leaf, else the buffer is the size the root states.
      if (out === undefined) out = cid.code === RAW ? bytes : new Uint8Array(decodeFileNode(bytes, 'root').size)
      else if (cid.code === RAW) out.set(bytes, offset)
    }
  })
  return { bytes: out as Uint8Array, cids }
}

/** Counts of what fetchUnixfsFile fetched. */
export interface FetchCounts {
  /** Raw leaves (tiles). */
  tiles: number
  /** All blocks: leaves and dag-pb nodes. */
  blocks: number
  bytes: number
}

/**
 * Fetch a whole UnixFS file block by block from an untrusted source and verify every block against
 * the CID that names it (WebCrypto SHA-256): the root against `root`, each child against its
 * parent's link. `size` is the file size the signed header states. Leaves are fetched `concurrency`
 * at a time. A block that does not hash to its CID: E_TILE (leaf) or E_MERKLE (node); sizes that
 * disagree: E_MERKLE. Counts go to `counts` as blocks arrive.
 */
export async function fetchUnixfsFile(
  root: CID,
  size: number,
  getBlock: (cid: CID, signal?: AbortSignal) => Promise<Uint8Array>,
  options: {
    signal?: AbortSignal
    concurrency?: number
    counts?: FetchCounts
    /**
     * `getBlock` itself checks each block against its CID (a Helia node hashing in the verify pool):
     * hashing again here is skipped. The tree's links and sizes are still checked.
     */
    getBlockVerifies?: boolean
  } = {}
): Promise<Uint8Array> {
  acid(root, 'root')
  aint(size, 'size', 1)
  const counts = options.counts ?? { tiles: 0, blocks: 0, bytes: 0 }
  const signal = options.signal
  const fetchVerified = async (cid: CID, field: string): Promise<Uint8Array> => {
    signal?.throwIfAborted()
    const bytes = new Uint8Array(await getBlock(cid, signal)) // a private copy, Buffer or not
    counts.blocks++
    counts.bytes += bytes.length
    if (cid.code === RAW) counts.tiles++
    if (options.getBlockVerifies !== true && !bytesEqual(await sha256(bytes), cid.multihash.digest)) reject(cid.code === RAW ? 'E_TILE' : 'E_MERKLE', field, `block does not hash to ${cid}`)
    return bytes
  }
  const rootCid = fileCid(root, 'root')
  const rootBytes = await fetchVerified(rootCid, 'root')
  if (rootCid.code === RAW) {
    if (rootBytes.length !== size) reject('E_MERKLE', 'root', `file of ${rootBytes.length} bytes, the header says ${size}`)
    return rootBytes
  }
  const top = decodeFileNode(rootBytes, 'root')
  if (top.size !== size) reject('E_MERKLE', 'root', `file of ${top.size} bytes, the header says ${size}`)
  const out = new Uint8Array(size)
  const concurrency = options.concurrency ?? 8
  // Breadth-first over levels: a level's children are fetched in parallel, written at their offsets.
  let level: { node: FileNode; start: number; field: string }[] = [{ node: top, start: 0, field: 'root' }]
  for (let depth = 1; level.length > 0; depth++) {
    if (depth > UNIXFS_MAX_DEPTH) reject('E_MERKLE', 'root', `deeper than ${UNIXFS_MAX_DEPTH} levels`)
    const jobs: { cid: CID; start: number; size: number; field: string }[] = []
    for (const { node, start, field } of level) {
      let at = start
      node.links.forEach((cid, i) => {
        jobs.push({ cid, start: at, size: node.sizes[i] as number, field: `${field}.Links[${i}]` })
        at += node.sizes[i] as number
      })
    }
    const next: typeof level = []
    let cursor = 0
    const worker = async (): Promise<void> => {
      while (cursor < jobs.length) {
        const job = jobs[cursor++] as (typeof jobs)[number]
        const block = await fetchVerified(job.cid, job.field)
        if (job.cid.code === RAW) {
          if (block.length !== job.size) reject('E_MERKLE', job.field, `leaf of ${block.length} bytes, the parent says ${job.size}`)
          out.set(block, job.start)
        } else {
          const node = decodeFileNode(block, job.field)
          if (node.size !== job.size) reject('E_MERKLE', job.field, `node covers ${node.size} bytes, the parent says ${job.size}`)
          next.push({ node, start: job.start, field: job.field })
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker))
    level = next
  }
  return out
}

/** Check one tile whose raw-leaf CID is already trusted (e.g. from a verified parent node). */
export async function verifyTile(leafCid: CID, bytes: Uint8Array): Promise<void> {
  acid(leafCid, 'leafCid')
  abytes(bytes, 'bytes')
  const cid = fileCid(leafCid, 'leafCid')
  if (cid.code !== RAW) reject('E_MERKLE', 'leafCid', 'a tile CID has the raw codec')
  if (bytes.length < 1 || bytes.length > TILE_SIZE) reject('E_TILE', 'bytes', `a tile is 1..${TILE_SIZE} bytes, got ${bytes.length}`)
  if (!bytesEqual(await sha256(bytes), cid.multihash.digest)) reject('E_TILE', 'bytes', `tile does not hash to ${cid.toString()}`)
}

// ---------------------------------------------------------------------------- utilities

/**
 * Interior nodes that verified: CID string -> a private copy of the exact bytes that hashed to it,
 * decoded. A light client verifies many tiles under one root, and a WebCrypto call costs ~50 us
 * of fixed overhead in Node plus ~40 us to decode a 32-link node, which is 40% on top of hashing
 * a 256 KiB tile; comparing against the remembered bytes costs about a microsecond. Only bytes
 * equal to ones that hashed to the same CID are trusted, so results are exactly those of
 * re-hashing. Bounded, oldest evicted first; memory at most VERIFIED_NODES_MAX nodes of <= 48 KiB.
 */
const verifiedNodes = new Map<string, { bytes: Uint8Array; node: FileNode }>()
const VERIFIED_NODES_MAX = 64

function rememberNode(key: string, bytes: Uint8Array, node: FileNode): void {
  verifiedNodes.delete(key)
  verifiedNodes.set(key, { bytes, node })
  if (verifiedNodes.size > VERIFIED_NODES_MAX) verifiedNodes.delete(verifiedNodes.keys().next().value!)
}

/** TypeError unless x is a CID object (caller-supplied roots). */
function acid(x: unknown, title: string): asserts x is CID {
  if (CID.asCID(x) === null) throw new TypeError(`${title}: expected CID`)
}

function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>).then((d) => new Uint8Array(d))
}
