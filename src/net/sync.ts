/**
 * Header sync: chains A-D from relays into the page's own validated chain (a MemoryChain).
 *
 * Every header is checked twice over before use: its own proofs (decoding, CID, PoW, signature) in
 * the verify pool, in parallel; then every rule of src/chain/validate.ts against what this page has
 * already accepted, with the documents and certificates it links (fetched by CID and verified).
 * Chain B headers are judged without their payloads (light mode): payload rules run when tiles are
 * fetched. The param index the chat uses is built here from accepted blocks, never taken from a
 * relay.
 *
 * A new chain B version is accepted only with its PoL certificate, which it cannot link (the
 * certificate names the block). Its CID comes from the relay's block view, or from the chain C
 * reward that names the block and links the certificate in `pol`; either is only where to look: the
 * bytes are fetched by CID and the rules judge them. A version whose certificate is not known yet
 * waits (its reward usually arrives right after it).
 *
 * Trust starts at the anchor: chain A's genesis CID. With none pinned, the first genesis accepted
 * is pinned (trust on first use, reported through onAnchor); later, a relay whose chain starts
 * elsewhere is set aside as `wrong-network` and a genesis other than the anchor is refused (E_ANCHOR).
 *
 * Finality checkpoints (src/chain/checkpoint.ts) follow the headers: each is applied in sequence by
 * the page's own rules (the validator quorum of its signers, heads that extend the last one), once
 * the heads it names are accepted here; until then it waits. From then on the page's fork choice
 * keeps to the final branch and refuses blocks that would displace it, whatever a relay offers.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { fromHex } from '../codec/cbor.ts'
import { FINAL_CHAINS, checkpointId, decodeCheckpoint, type Checkpoint } from '../chain/checkpoint.ts'
import { CHAIN_IDS, decodeHeader, type ChainId, type Header } from '../chain/header.ts'
import { orderBlocks } from '../chain/dag.ts'
import type { MemoryChain } from '../chain/memory.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import { isRuleError, RuleError } from '../errors.ts'
import { validateBlock } from '../chain/validate.ts'
import type { VerifyPool } from './verify-pool.ts'
import { RelayError, type CheckpointEntry, type HeaderEntry, type RelayClient } from './relay-client.ts'

/** A header offered by a relay that failed a check here. */
export interface Rejection {
  readonly cid: string
  readonly code: string
  readonly field: string
  readonly message: string
  readonly relay: string
}

export interface SyncOptions {
  readonly chain: MemoryChain
  readonly pool: Pick<VerifyPool, 'checkHeaderProofs'>
  /** Verified bytes by CID (documents, certificates): the Helia node, cache first. */
  readonly getBlock: (cid: CID, what: string, signal?: AbortSignal) => Promise<Uint8Array>
  /** The pinned chain A genesis CID, or null to pin the first one accepted. */
  readonly anchor: string | null
  readonly onAnchor?: (cid: string) => void
  readonly onAccepted?: (block: AcceptedBlock) => void
  readonly onRejected?: (rejection: Rejection) => void
  /** A checkpoint was applied: its heads (and everything below them) are final here. */
  readonly onFinalized?: (checkpoint: Checkpoint, bytes: Uint8Array) => void
  /** The clock rules judge timestamps by. */
  readonly now?: () => number
}

/** Offered headers: CID and bytes, with where they came from. */
export interface Offered {
  readonly cid: string
  readonly bytes: Uint8Array
  /** The relay that served them, or `cache` for headers this page stored earlier. */
  readonly source: string
  /** Where a new chain B version's certificate is, as the relay says (HeaderEntry.certificate). */
  readonly certificate?: string
}

const MAX_REJECTIONS = 200

/** Refusals that speak of a certificate rather than of the block that was certified. */
const CERTIFICATE_CODES = ['E_POL', 'E_CERT', 'E_POOL', 'E_CERT_SIGNER', 'E_CERT_SIG', 'E_QUORUM', 'E_POL_THRESHOLD'] as const

/** Rules that may pass later (an orphan whose parent has not arrived, a clock ahead): retried. */
function isTransient(e: unknown): boolean {
  return isRuleError(e, 'E_UNKNOWN_DEP') || isRuleError(e, 'E_FUTURE')
}

export class HeaderSync {
  readonly chain: MemoryChain
  readonly #options: SyncOptions
  #anchor: string | null
  readonly #rejected: Rejection[] = []
  /** Offered headers that may pass once their links arrive. */
  readonly #pending = new Map<string, Offered>()
  /** Offered checkpoints (by number) waiting for the heads they name, or for the ones before them. */
  readonly #pendingCheckpoints = new Map<number, { readonly bytes: Uint8Array; readonly source: string }>()

  constructor(options: SyncOptions) {
    this.chain = options.chain
    this.#options = options
    this.#anchor = options.anchor
  }

  get anchor(): string | null {
    return this.#anchor
  }

  get rejected(): readonly Rejection[] {
    return this.#rejected
  }

  /**
   * Everything a relay has that this page lacks. A relay on another network (its genesis is not the
   * anchor) throws WrongNetworkError before any header is taken from it.
   */
  async syncRelay(relay: RelayClient, signal?: AbortSignal): Promise<{ accepted: number; relays: readonly string[] }> {
    const status = await relay.status(signal)
    if (status.genesis === null) return { accepted: 0, relays: [] }
    if (this.#anchor !== null && status.genesis !== this.#anchor) {
      throw new WrongNetworkError(relay.url, status.genesis, this.#anchor)
    }
    const offered: Offered[] = []
    for (const chain of CHAIN_IDS) {
      if (status.heads[chain] === null) continue
      const entries = await relay.headers(chain, this.#resumeFrom(chain), signal)
      for (const e of entries) if (!this.#known(e.cid)) offered.push(toOffered(e, relay.url))
    }
    const result = await this.ingest(offered, signal)
    await this.syncCheckpoints(relay, signal)
    // The other relays of its network it announces (a relay on a peer network): the page may follow them too.
    return { ...result, relays: status.relays ?? [] }
  }

  /** The finality checkpoints a relay has beyond this page's last one, applied in sequence. */
  async syncCheckpoints(relay: RelayClient, signal?: AbortSignal): Promise<void> {
    let entries: CheckpointEntry[]
    try {
      entries = await relay.checkpoints((this.chain.checkpoint()?.number ?? -1) + 1, signal)
    } catch (e) {
      if (e instanceof RelayError && e.status === 404) return // a relay without finality: nothing to apply
      throw e
    }
    for (const entry of entries) this.offerCheckpoint(entry, relay.url)
  }

  /** A checkpoint (from a relay's list or its live feed): applied now if it can be, else kept until it can. */
  offerCheckpoint(entry: CheckpointEntry, relay: string): void {
    let bytes: Uint8Array
    try {
      bytes = fromHex(entry.hex)
    } catch {
      return this.#reject({ cid: entry.id, code: 'E_DECODE', field: 'checkpoint', message: `checkpoint ${entry.number}: not hex`, relay })
    }
    this.offerCheckpointBytes(entry.number, bytes, relay)
  }

  /** Checkpoint bytes said to be number `number` (a relay's, or this page's cache: `source` names which). */
  offerCheckpointBytes(number: number, bytes: Uint8Array, source: string): void {
    const last = this.chain.checkpoint()?.number ?? -1
    if (number <= last || this.#pendingCheckpoints.has(number)) return
    this.#pendingCheckpoints.set(number, { bytes, source })
    this.#applyCheckpoints()
  }

  /** Apply waiting checkpoints in sequence while the next one's heads are all accepted here. */
  #applyCheckpoints(): void {
    for (;;) {
      const number = (this.chain.checkpoint()?.number ?? -1) + 1
      const next = this.#pendingCheckpoints.get(number)
      if (next === undefined) return
      let checkpoint: Checkpoint
      try {
        checkpoint = decodeCheckpoint(next.bytes)
      } catch (e) {
        this.#pendingCheckpoints.delete(number)
        if (e instanceof RuleError) this.#reject({ cid: `checkpoint ${number}`, code: e.code, field: e.field, message: e.message, relay: next.source })
        continue
      }
      // Heads this page has not accepted yet: the checkpoint waits for them (headers come first).
      if (FINAL_CHAINS.some((c) => { const h = checkpoint.heads[c]; return h !== null && this.chain.get(h) === undefined })) return
      this.#pendingCheckpoints.delete(number)
      try {
        this.chain.applyCheckpoint(next.bytes)
      } catch (e) {
        if (!(e instanceof RuleError)) throw e
        this.#reject({ cid: checkpointId(checkpoint).toString(), code: e.code, field: e.field, message: e.message, relay: next.source })
        continue
      }
      this.#options.onFinalized?.(checkpoint, next.bytes)
    }
  }

  /** A header from a live feed. */
  async offer(entry: HeaderEntry, relay: string, signal?: AbortSignal): Promise<{ accepted: number }> {
    return this.ingest([toOffered(entry, relay)], signal)
  }

  /**
   * Check and accept offered headers: proofs in the pool (in parallel), then the rules in
   * dependency order. Headers whose links are not known yet wait for a later call.
   */
  async ingest(offered: readonly Offered[], signal?: AbortSignal): Promise<{ accepted: number }> {
    const fresh = offered.filter((o) => !this.#known(o.cid))
    const checks = await Promise.all(fresh.map((o) => this.#options.pool.checkHeaderProofs(o.bytes, o.cid)))
    let given: { cid: CID; header: Header; offered: Offered }[] = []
    fresh.forEach((o, i) => {
      const check = checks[i] as Awaited<ReturnType<VerifyPool['checkHeaderProofs']>>
      if (!check.ok) return this.#reject({ cid: o.cid, code: check.code, field: check.field, message: check.message, relay: o.source })
      given.push({ cid: CID.parse(o.cid), header: decodeHeader(o.bytes), offered: o })
    })
    let accepted = 0
    for (;;) {
      const candidates = given
      for (const p of this.#pending.values()) {
        if (!candidates.some((c) => c.offered.cid === p.cid)) candidates.push({ cid: CID.parse(p.cid), header: decodeHeader(p.bytes), offered: p })
      }
      given = []
      let ordered: typeof candidates
      try {
        // Links outside the set are for the rules to judge: an orphan (its parent not here yet, as when
        // live offers overtake each other) fails E_UNKNOWN_DEP in #accept and waits.
        ordered = orderBlocks(candidates, () => true)
      } catch (e) {
        // A cycle needs a hash collision; if one is ever offered, judge in offer order and let the rules refuse.
        if (!isRuleError(e, 'E_CYCLE')) throw e
        ordered = candidates
      }
      const certificates = certificateHints(candidates)
      let progress = 0
      for (const c of ordered) {
        signal?.throwIfAborted()
        if (await this.#accept(c.cid, c.header, c.offered, certificates.get(c.offered.cid), signal)) progress++
      }
      accepted += progress
      if (progress > 0) this.#applyCheckpoints()
      // Waiting blocks may pass now: a new version judged before the beacon or validation dataset its
      // certificate names (it does not depend on them), or a block another ingest left waiting for one
      // this ingest accepted (live feed offers run side by side). Go again while blocks keep getting in.
      if (progress === 0 || this.#pending.size === 0) break
    }
    return { accepted }
  }

  /** Linear chains resume at their highest accepted index (siblings there are re-offered and skipped); chain B from 0. */
  #resumeFrom(chain: ChainId): number {
    if (chain === 'B') return 0
    let top = 0
    for (const b of this.chain.blocks(chain)) top = Math.max(top, b.header.index)
    return top
  }

  #known(cid: string): boolean {
    let c: CID
    try {
      c = CID.parse(cid)
    } catch {
      return false // not a CID: the proof check refuses it (E_CID), naming the relay
    }
    return this.chain.get(c) !== undefined || this.chain.isRejected(c)
  }

  async #accept(cid: CID, header: Header, offered: Offered, certificateHint: CID | undefined, signal?: AbortSignal): Promise<boolean> {
    const key = cid.toString()
    if (this.chain.get(cid) !== undefined) {
      this.#pending.delete(key)
      return false
    }
    if (header.chain_id === 'A' && header.prev === null && this.#anchor !== null && key !== this.#anchor) {
      this.#pending.delete(key)
      this.#reject({ cid: key, code: 'E_ANCHOR', field: 'prev', message: `a chain A genesis ${key} other than the trust anchor ${this.#anchor}`, relay: offered.source })
      return false
    }
    const newVersion = header.chain_id === 'B' && header.supersedes !== null
    const certificateCid = header.pol ?? (newVersion ? certificateHint : undefined)
    if (newVersion && certificateCid === undefined) {
      // Not refused: its certificate is somewhere we have not been told of yet (its reward comes next).
      this.#pending.set(key, offered)
      return false
    }
    try {
      const payload = header.chain_id === 'B' ? null : await this.#options.getBlock(header.payload, `the document of ${key}`, signal)
      const certificate = certificateCid === undefined ? undefined : await this.#options.getBlock(certificateCid, `the PoL certificate of ${key}`, signal)
      const input = { header: offered.bytes, payload, ...(certificate === undefined ? {} : { certificate }) }
      const options = { now: this.#options.now?.() ?? Date.now(), ...(signal === undefined ? {} : { signal }) }
      if (newVersion) {
        // A certificate that fails says nothing against the block: anyone can name one, and one judged
        // before the beacon or dataset it names was accepted fails for now. Judge it on the side; the
        // block waits (for those blocks, or another hint) instead of being refused for good.
        try {
          await validateBlock(input, this.chain, options)
        } catch (e) {
          if (e instanceof RuleError && (CERTIFICATE_CODES as readonly string[]).includes(e.code)) {
            this.#pending.set(key, offered)
            return false
          }
        }
      }
      const block = await this.chain.submit(input, options)
      this.#pending.delete(key)
      if (header.chain_id === 'A' && header.prev === null && this.#anchor === null) {
        this.#anchor = key
        this.#options.onAnchor?.(key)
      }
      this.#options.onAccepted?.(block)
      return true
    } catch (e) {
      if (isTransient(e)) {
        this.#pending.set(key, offered)
        return false
      }
      this.#pending.delete(key)
      if (e instanceof RuleError) {
        this.#reject({ cid: key, code: e.code, field: e.field, message: e.message, relay: offered.source })
        return false
      }
      // Not a rule: the document or certificate could not be had (every relay down or lying). Retry later.
      this.#pending.set(key, offered)
      throw e
    }
  }

  #reject(r: Rejection): void {
    if (this.#rejected.some((x) => x.cid === r.cid && x.code === r.code)) return
    this.#rejected.unshift(r)
    this.#rejected.length = Math.min(this.#rejected.length, MAX_REJECTIONS)
    this.#options.onRejected?.(r)
  }
}

/**
 * Where each offered new chain B version's certificate is: a chain C reward among the offered that
 * names the block in depends_on links it in `pol` (the chain's own word, preferred), else the
 * relay's hint. Keyed by the block's CID string.
 */
function certificateHints(candidates: readonly { header: Header; offered: Offered }[]): Map<string, CID> {
  const hints = new Map<string, CID>()
  for (const { header } of candidates) {
    if (header.chain_id !== 'C' || header.pol === null) continue
    for (const dep of header.depends_on) hints.set(dep.toString(), header.pol)
  }
  for (const { offered } of candidates) {
    if (offered.certificate === undefined || hints.has(offered.cid)) continue
    try {
      hints.set(offered.cid, CID.parse(offered.certificate))
    } catch {
      // Not a CID: no hint (the version waits for its reward).
    }
  }
  return hints
}

/** A relay serves a chain that does not start at the pinned anchor. */
export class WrongNetworkError extends Error {
  override readonly name = 'WrongNetworkError'
  readonly code = 'E_ANCHOR'
  readonly relay: string
  readonly genesis: string
  readonly anchor: string
  constructor(relay: string, genesis: string, anchor: string) {
    super(`${relay} serves a chain starting at ${genesis}, not at the trust anchor ${anchor}`)
    this.relay = relay
    this.genesis = genesis
    this.anchor = anchor
  }
}

function toOffered(entry: HeaderEntry, source: string): Offered {
  let bytes: Uint8Array
  try {
    bytes = fromHex(entry.header_hex)
  } catch {
    bytes = new Uint8Array(0) // refused by the proof check (E_DECODE), with the relay named
  }
  return entry.certificate === undefined ? { cid: entry.cid, bytes, source } : { cid: entry.cid, bytes, source, certificate: entry.certificate }
}
