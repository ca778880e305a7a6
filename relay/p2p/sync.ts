/**
 * Bringing blocks from peers into the full node: one block with whatever it depends on, or a peer's
 * whole history, chain by chain (A, then D, then B, then C: the order their links run), then its
 * final checkpoints.
 *
 * Every block goes through `FullNode.submit`, so every rule and the one atomic write are those of
 * any submission; a block whose links name blocks this node lacks (E_UNKNOWN_DEP) has them fetched
 * by root from the same peer first, depth first, so a branch of any length arrives in order.
 *
 * What a peer sent is judged: bytes that do not match their CIDs, a block that is provably bad in
 * itself (a bad signature or PoW, a malformed document), or a history that leads to another genesis
 * are *offences*, reported to the network, which scores the peer down and disconnects it. A refusal
 * that depends on this node's state (a branch that finality has since closed, an already paid
 * reward) is not the sender's fault and is only skipped.
 *
 * @module
 */
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { CHAIN_IDS, decodeHeader, headerCid, type ChainId } from '../../src/chain/header.ts'
import { CarReader } from '@ipld/car'
import { decodeSubmission, writeCar, type Submission } from '../../src/chain/submission.ts'
import { fetchUnixfsFile } from '../../src/tensor/tiles.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { RuleError, type RuleCode } from '../../src/errors.ts'
import type { FullNode } from '../node/full-node.ts'
import { MAX_BLOCKS_PER_REQUEST, MAX_CHECKPOINTS_PER_REQUEST, MAX_FRAME_BYTES, type StatusMessage } from './messages.ts'
import type { PeerRequests } from './reqresp.ts'

/**
 * Refusals that prove the sender wrong whatever this node holds: the bytes, the encoding, the
 * proof of work, the signatures. (Others, such as E_FINALIZED or E_BALANCE, depend on the state of
 * the receiving node and an honest peer can send them in a race.)
 */
export const OFFENCE_CODES: ReadonlySet<RuleCode> = new Set<RuleCode>([
  'E_DECODE', 'E_NONCANONICAL', 'E_TOO_LARGE', 'E_SCHEMA', 'E_VERSION', 'E_CHAIN_ID', 'E_BLOCK_TYPE', 'E_EXPERT_NAME', 'E_POW', 'E_PUBKEY', 'E_SIG',
  'E_PAYLOAD', 'E_PAYLOAD_SIZE', 'E_META', 'E_CERT_SIG', 'E_CAR', 'E_INCOMPLETE', 'E_CID', 'E_TB_MAGIC', 'E_TB_VERSION', 'E_TB_DTYPE', 'E_TB_SHAPE',
  'E_TB_LAYOUT', 'E_TB_QUANT', 'E_TB_OFFSET', 'E_TB_RESERVED', 'E_TB_TRUNCATED', 'E_NONFINITE', 'E_PAYLOAD_MAGIC', 'E_PAYLOAD_INDEX', 'E_ANCHOR'
])

/** Why a peer is being scored down. */
export interface Offence {
  readonly peer: PeerId
  readonly code: RuleCode
  readonly message: string
}

/** What became of a block a peer sent: accepted (or already here), or refused, with the offence when the refusal proves the peer wrong. */
export interface ImportOutcome {
  readonly block: AcceptedBlock | null
  readonly offence: RuleError | null
}

/** Blocks a history sync brought, per chain, and the checkpoints it applied. */
export interface SyncReport {
  readonly accepted: number
  readonly checkpoints: number
  readonly ms: number
}

/** Most links followed back from one block (a partition's branch, a node far behind). */
const MAX_DEPTH = 100_000
/** Bytes of recently fetched tiles kept for a retried import. */
const TILE_CACHE_BYTES = 64 * 1024 * 1024
/** How far below its own head a node asks for a chain again: a peer's branch that forked off lower arrives through its links. */
const OVERLAP = 8

export interface BlockImporterOptions {
  readonly node: FullNode
  readonly requests: PeerRequests
  readonly onOffence: (offence: Offence) => void
  /**
   * A block by bitswap from any peer (bitswap.ts). Given, blocks are requested without their chain
   * B payload tiles, which come this way; absent, whole CARs are requested.
   */
  readonly want?: (cid: CID, signal?: AbortSignal) => Promise<Uint8Array>
}

/** What bitswap brought: payload tiles (and UnixFS nodes) of chain B blocks. */
export interface BitswapStats {
  blocks: number
  bytes: number
}

export class BlockImporter {
  readonly #node: FullNode
  readonly #requests: PeerRequests
  readonly #onOffence: (offence: Offence) => void
  readonly #want: BlockImporterOptions['want']
  /** Header CIDs being brought in from peers now (the network does not gossip them again). */
  readonly #importing = new Set<string>()
  readonly bitswap: BitswapStats = { blocks: 0, bytes: 0 }
  /**
   * Tiles fetched lately, by CID (at most TILE_CACHE_BYTES): an import that failed for another
   * reason and is tried again takes them from here, since a peer's bitswap does not send the same
   * block twice in quick succession to one node.
   */
  readonly #tiles = new Map<string, Uint8Array>()
  #tileBytes = 0

  constructor(options: BlockImporterOptions) {
    this.#node = options.node
    this.#requests = options.requests
    this.#onOffence = options.onOffence
    this.#want = options.want
  }

  /** Whether requests leave chain B payload tiles to bitswap. */
  get #files(): boolean {
    return this.#want === undefined
  }

  /** True while `cid` is being imported from a peer (so its 'accepted' event is not news of this node's). */
  importing(cid: CID): boolean {
    return this.#importing.has(cid.toString())
  }

  /**
   * Judge a submission CAR `peer` sent, after fetching from it any block it links that this node
   * lacks. The block is null when it was refused (with the offence, reported to the network, when
   * the refusal proves the peer wrong) or still lacks a link the peer could not give.
   */
  async importCar(car: Uint8Array, peer: PeerId, signal?: AbortSignal): Promise<ImportOutcome> {
    let submission: Submission
    try {
      submission = await decodeSubmission(await this.#complete(car, signal), MAX_FRAME_BYTES)
    } catch (e) {
      return { block: null, offence: this.#judgeRefusal(e, peer) }
    }
    let offence: RuleError | null = null
    const block = await this.#import(submission, peer, new Set(), 0, signal, (e) => { offence ??= e })
    return { block, offence }
  }

  /** True when every block `header` links is here (a gossiped block can be judged at once). */
  linksKnown(headerBytes: Uint8Array): boolean {
    const header = decodeHeader(headerBytes)
    return [header.prev, ...header.depends_on, header.supersedes].every((c) => c === null || this.#node.store.get(c) !== undefined)
  }

  async #import(
    submission: Submission, peer: PeerId, visiting: Set<string>, depth: number, signal: AbortSignal | undefined, onOffence: (e: RuleError) => void
  ): Promise<AcceptedBlock | null> {
    const judge = (e: unknown): null => {
      const offence = this.#judgeRefusal(e, peer)
      if (offence !== null) onOffence(offence)
      return null
    }
    const cid = headerCid(submission.input.header)
    const key = cid.toString()
    const known = this.#node.store.get(cid)
    if (known !== undefined) return known
    if (visiting.has(key) || depth > MAX_DEPTH) return null
    visiting.add(key)
    let header
    try {
      header = decodeHeader(submission.input.header)
    } catch (e) {
      return judge(e)
    }
    // Another network's genesis: the peer is on another chain A (status would have said so too).
    const genesis = this.#node.store.genesis()
    if (header.chain_id === 'A' && header.index === 0 && genesis !== undefined && !genesis.cid.equals(cid)) {
      return judge(new RuleError('E_ANCHOR', 'genesis', `leads to the genesis ${key}, this network's is ${genesis.cid}`))
    }
    const links = [header.prev, ...header.depends_on, header.supersedes].filter((c): c is CID => c !== null && this.#node.store.get(c) === undefined)
    if (links.length > 0) {
      const fetched = await this.#fetch(peer, links, signal, judge)
      for (const dep of fetched) {
        signal?.throwIfAborted()
        if ((await this.#import(dep, peer, visiting, depth + 1, signal, onOffence)) === null && this.#node.store.get(headerCid(dep.input.header)) === undefined) return null
      }
    }
    this.#importing.add(key)
    try {
      return await this.#node.submit(submission, signal === undefined ? {} : { signal })
    } catch (e) {
      return judge(e)
    } finally {
      this.#importing.delete(key)
    }
  }

  /** Blocks by root from `peer`, decoded (the CARs it sent are checked against their CIDs here). */
  async #fetch(peer: PeerId, roots: readonly CID[], signal: AbortSignal | undefined, judge: (e: unknown) => null): Promise<Submission[]> {
    const out: Submission[] = []
    for (let i = 0; i < roots.length; i += MAX_BLOCKS_PER_REQUEST) {
      const asked = roots.slice(i, i + MAX_BLOCKS_PER_REQUEST)
      for (const car of await this.#requests.blocksByRoot(peer, asked, { files: this.#files, ...(signal === undefined ? {} : { signal }) })) {
        try {
          const s = await decodeSubmission(await this.#complete(car, signal), MAX_FRAME_BYTES)
          const cid = headerCid(s.input.header)
          if (!asked.some((a) => a.equals(cid))) throw new RuleError('E_CID', 'roots', `answered ${cid}, which was not asked for`)
          out.push(s)
        } catch (e) {
          judge(e)
        }
      }
    }
    return out
  }

  /**
   * A chain B block's CAR without its payload tiles, completed with them by bitswap (any peer may
   * send them; bitswap checks each against its CID). Any other CAR is returned as it is, and so is
   * one that does not parse (decodeSubmission names what is wrong with it).
   */
  async #complete(car: Uint8Array, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const want = this.#want
    if (want === undefined) return car
    let roots: CID[]
    const blocks = new Map<string, { cid: CID; bytes: Uint8Array }>()
    let header
    try {
      const reader = await CarReader.fromBytes(car)
      roots = await reader.getRoots()
      for await (const b of reader.blocks()) blocks.set(b.cid.toString(), { cid: b.cid, bytes: b.bytes })
      const root = roots[0]
      header = root === undefined ? undefined : decodeHeader(blocks.get(root.toString())?.bytes ?? new Uint8Array())
    } catch {
      return car
    }
    if (header === undefined || header.chain_id !== 'B' || blocks.has(header.payload.toString())) return car
    await fetchUnixfsFile(header.payload, header.payload_size, async (cid) => {
      const key = cid.toString()
      const have = blocks.get(key)?.bytes ?? this.#tiles.get(key)
      const bytes = have ?? await want(cid, signal)
      if (have === undefined) {
        this.bitswap.blocks++
        this.bitswap.bytes += bytes.length
        this.#keepTile(key, bytes)
      }
      blocks.set(key, { cid, bytes })
      return bytes
    }, signal === undefined ? {} : { signal })
    return writeCar(roots, blocks.values())
  }

  #keepTile(key: string, bytes: Uint8Array): void {
    this.#tiles.set(key, bytes)
    this.#tileBytes += bytes.length
    for (const [k, b] of this.#tiles) {
      if (this.#tileBytes <= TILE_CACHE_BYTES) break
      this.#tiles.delete(k)
      this.#tileBytes -= b.length
    }
  }

  /** A refusal of what `peer` sent: an offence when it proves the peer wrong, else nothing to hold against it. */
  #judgeRefusal(e: unknown, peer: PeerId): RuleError | null {
    if (!(e instanceof RuleError)) throw e
    if (!OFFENCE_CODES.has(e.code)) return null
    this.#onOffence({ peer, code: e.code, message: e.message })
    return e
  }

  /**
   * Bring this node up to `peer`'s status: every chain, A then D then B then C, from a little below
   * this node's own head (or the final height) to the peer's head; then the checkpoints it lacks.
   */
  async syncFrom(peer: PeerId, status: StatusMessage, signal?: AbortSignal): Promise<SyncReport> {
    const t0 = Date.now()
    const store = this.#node.store
    const before = store.size
    for (const chain of SYNC_ORDER) {
      const theirs = status.heads[chain]
      if (theirs === undefined || store.get(theirs.cid) !== undefined) continue
      const ours = store.head(chain)
      const final = store.checkpoint()
      const finalHead = chain === 'B' || final === null ? null : final.heads[chain]
      const finalIndex = finalHead === null ? -1 : store.get(finalHead)?.header.index ?? -1
      let from = Math.max(finalIndex + 1, ours === undefined ? 0 : ours.header.index - OVERLAP, 0)
      while (from <= theirs.index) {
        signal?.throwIfAborted()
        const cars = await this.#requests.blocksByRange(peer, chain, from, MAX_BLOCKS_PER_REQUEST, { files: this.#files, ...(signal === undefined ? {} : { signal }) })
        for (const car of cars) {
          await this.importCar(car, peer, signal)
        }
        from += MAX_BLOCKS_PER_REQUEST
      }
    }
    const checkpoints = await this.syncCheckpoints(peer, status, signal)
    return { accepted: store.size - before, checkpoints, ms: Date.now() - t0 }
  }

  /** Apply `peer`'s final checkpoints after this node's last one. */
  async syncCheckpoints(peer: PeerId, status: StatusMessage, signal?: AbortSignal): Promise<number> {
    let applied = 0
    for (;;) {
      const last = this.#node.store.checkpoint()?.number ?? -1
      if (status.checkpoint === null || last >= status.checkpoint) return applied
      const docs = await this.#requests.checkpoints(peer, last + 1, MAX_CHECKPOINTS_PER_REQUEST, signal)
      if (docs.length === 0) return applied
      for (const bytes of docs) {
        try {
          await this.#node.submitCheckpoint(bytes)
          applied++
        } catch (e) {
          // A checkpoint whose heads this node lacks (it came in while we synced) waits for the next sync.
          if (!(e instanceof RuleError)) throw e
          if (e.code !== 'E_CHECKPOINT') this.#judgeRefusal(e, peer)
          return applied
        }
      }
    }
  }
}

/** The order history is fetched in: chain A first (everything depends on a rules block), then datasets, parameters, ledger. */
export const SYNC_ORDER: readonly ChainId[] = Object.freeze(['A', 'D', 'B', 'C'])

/** True when `status` names a head of some chain that `node` does not hold, or a later checkpoint. */
export function isAhead(node: FullNode, status: StatusMessage): boolean {
  const store = node.store
  if (CHAIN_IDS.some((c) => { const h = status.heads[c]; return h !== undefined && store.get(h.cid) === undefined })) return true
  return status.checkpoint !== null && (store.checkpoint()?.number ?? -1) < status.checkpoint
}
