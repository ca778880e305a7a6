/**
 * The explorer's questions, answered from the page's own verified chain: block lists and pages,
 * search, the DAG, a dataset's training record, the param index; a block's proofs re-checked from
 * raw bytes (Verify); and the relays' reports of what they refused (reports, not verified here).
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { toHex } from '../codec/cbor.ts'
import type { ChainId } from '../chain/header.ts'
import type { DatasetDocument } from '../chain/dataset.ts'
import type { LedgerDocument } from '../chain/ledger.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import { isRuleError } from '../errors.ts'
import { dagView } from '../explorer/dag-view.ts'
import { MAX_RECORD_BYTES, RecordError, parseGenesisRecord } from '../explorer/record.ts'
import { modelCard } from '../explorer/model-card.ts'
import { listBlocks, searchBlocks } from '../explorer/search.ts'
import { blockLabel, detail, summarize, withFinality } from '../explorer/summaries.ts'
import { verifyBlock } from '../explorer/verify.ts'
import { unavailable, type PageBlocks } from '../net/blocks.ts'
import type { RelaySet } from '../net/relays.ts'
import { decodePayloadIndex, type PayloadIndex } from '../tensor/payload.ts'
import { extractTilePath, fetchUnixfsFile } from '../tensor/tiles.ts'
import type { AuditReport, BlockPage, BlockSummary, DagView, DatasetRecordFile, ModelCard, NetworkView, Provenance, RejectionInfo, RejectionList, VerifyReport, VerifyStep } from './api.ts'
import { auditCertifiedVersion } from '../pol/audit.ts'
import type { ChainFollower } from './follower.ts'

/** How long the explorer waits for a dataset's training record before it says no relay served it. */
const RECORD_TIMEOUT_MS = 60_000

export interface QueriesOptions {
  readonly blocks: PageBlocks
  readonly relays: RelaySet
  /** The page's chain now (the client replaces its follower when relays or the anchor change). */
  readonly follower: () => ChainFollower
}

export class ExplorerQueries {
  readonly #options: QueriesOptions
  /** Chain B payload indexes read for block pages (payload CID -> index; null when it could not be had). */
  readonly #payloadIndexes = new Map<string, PayloadIndex | null>()
  /** The held-out loss read from a dataset's training record (the dataset block's CID). */
  #heldOut: { readonly key: string; readonly loss: NonNullable<ModelCard['heldOut']> } | null = null

  constructor(options: QueriesOptions) {
    this.#options = options
  }

  /** Forget what was read for block pages (the chain was rebuilt, or the cache cleared). */
  forget(): void {
    this.#payloadIndexes.clear()
  }

  /** A summary (or detail) with its finality by this page's own checkpoints. */
  summary<T extends BlockSummary>(summary: T, block: AcceptedBlock | undefined = this.#chain.get(CID.parse(summary.cid))): T {
    return block === undefined ? summary : withFinality(summary, block, (b) => this.#chain.isFinal(b))
  }

  /** A newly accepted block as the explorer's live feed shows it (a decision named after the dataset it decides). */
  live(block: AcceptedBlock): BlockSummary {
    return this.summary(summarize(block, this.#chain.paramIndex(), (cid) => this.#chain.get(cid)), block)
  }

  listBlocks(chain: ChainId, limit: number, before?: number): BlockSummary[] {
    return listBlocks(this.#chain.blocks(), this.#chain.paramIndex(), chain, limit, before).map((s) => this.summary(s))
  }

  search(query: string): BlockSummary[] {
    return searchBlocks(query, this.#chain.blocks(), this.#chain.paramIndex()).map((s) => this.summary(s))
  }

  async block(cid: string): Promise<BlockPage | null> {
    const block = this.#accepted(cid)
    if (block === undefined) return null
    const payloadIndex = block.header.chain_id === 'B' ? await this.#payloadIndex(block) : null
    const all = this.#chain.blocks()
    return Object.freeze({ ...this.summary(detail(block, this.#chain.paramIndex(), all, payloadIndex), block), ...polLinks(block, all) })
  }

  async datasetRecord(cid: string): Promise<DatasetRecordFile> {
    let c: CID
    try {
      c = CID.parse(cid)
    } catch {
      return { ok: false, code: 'not-found', message: `not a CID: ${cid}` }
    }
    const block = this.#chain.get(c)
    if (block === undefined || block.header.chain_id !== 'D') return { ok: false, code: 'not-found', message: `no chain D block ${cid} in this page's verified chain` }
    // The record's CID and size are the verified document's: a relay's word is not taken for them.
    const doc = block.document as DatasetDocument
    if (doc.record === undefined || doc.record_size === undefined) return { ok: false, code: 'no-record', message: `dataset ${doc.name} links no training record` }
    const root = doc.record
    const size = doc.record_size
    if (size > MAX_RECORD_BYTES) return { ok: false, code: 'too-large', message: `the record is ${size} bytes, more than the ${MAX_RECORD_BYTES} the explorer reads` }
    let bytes: Uint8Array
    try {
      bytes = await fetchUnixfsFile(root, size, async (x, signal) => (await this.#options.blocks.get(x, `a block of the training record of ${doc.name}`, signal)).bytes, {
        getBlockVerifies: true,
        signal: AbortSignal.timeout(RECORD_TIMEOUT_MS)
      })
    } catch (e) {
      if (isRuleError(e)) return { ok: false, code: 'invalid', message: `the record file ${root} fails a check against its CID and the document's record_size: ${e.message}` }
      const gone = unavailable(e)
      if (gone !== null) return { ok: false, code: 'unavailable', message: gone.message }
      const timedOut = e instanceof Error && e.name === 'TimeoutError'
      return { ok: false, code: 'unavailable', message: timedOut ? `no relay served the record ${root} within ${RECORD_TIMEOUT_MS / 1000} s` : `the record ${root} could not be fetched: ${e instanceof Error ? e.message : String(e)}` }
    }
    try {
      return { ok: true, cid: root.toString(), size, bytes, record: parseGenesisRecord(bytes) }
    } catch (e) {
      if (e instanceof RecordError) return { ok: false, code: 'not-a-record', message: `the file ${root} matches its CID, but it is ${e.message}` }
      throw e
    }
  }

  /** What the chain's model is; the held-out loss from the first training record a dataset links (read once). */
  async modelCard(): Promise<ModelCard | null> {
    const rules = this.#chain.head('A')
    if (rules === undefined) return null
    const blocks = this.#chain.blocks()
    const withRecord = blocks.find((b) => b.header.chain_id === 'D' && (b.document as DatasetDocument | null)?.record !== undefined)
    let heldOut: ModelCard['heldOut'] = null
    if (withRecord !== undefined) {
      const key = withRecord.cid.toString()
      if (this.#heldOut?.key !== key) {
        const file = await this.datasetRecord(key)
        // A record that cannot be had now is asked for again on the next card.
        if (!file.ok) return modelCard(rules, blocks, null)
        const r = file.record
        const loss = { loss: r.evaluation.heldout.student_chain, tokens: r.evaluation.heldout.tokens, dataset: r.datasets.find((d) => d.split === 'validation')?.name ?? 'held-out text' }
        this.#heldOut = { key, loss }
      }
      heldOut = this.#heldOut.loss
    }
    return modelCard(rules, blocks, heldOut)
  }

  currentExperts(): Record<string, { cid: string; version: number }> {
    const out: Record<string, { cid: string; version: number }> = {}
    for (const [name, b] of this.#chain.paramIndex()) out[name] = { cid: b.cid.toString(), version: b.expertVersion }
    return out
  }

  dag(): DagView {
    return dagView(this.#chain.blocks(), this.#chain.paramIndex())
  }

  /** Re-check a block's proofs (and one tile's Merkle path) from raw bytes, step by step. */
  async verify(cid: string, tile: number | null, onStep?: (step: VerifyStep) => void): Promise<VerifyReport> {
    const c = CID.parse(cid)
    const blocks = this.#options.blocks
    const headerBytes = this.#chain.get(c)?.bytes ?? (await blocks.untrusted(c))
    return verifyBlock({
      cid: c,
      headerBytes,
      view: this.#chain,
      anchor: this.#options.follower().anchor,
      getBlock: (x) => blocks.untrusted(x),
      tile,
      now: Date.now()
    }, onStep)
  }

  /**
   * Audit a certified version's training record on this device (src/pol/audit.ts): replay the
   * training it names, every block fetched and verified like the chat's, and say where the replay
   * first differs. Costs a training run of the record's steps.
   */
  async audit(cid: string, onStep?: (step: number, steps: number) => void): Promise<AuditReport> {
    const version = this.#accepted(cid)
    if (version === undefined) return { ok: false, message: `${cid} is not a block of this page's verified chain` }
    try {
      const a = await auditCertifiedVersion(version, this.#chain, async (x) => (await this.#options.blocks.get(x, 'a block the audit replays')).bytes, onStep === undefined ? {} : { onStep })
      return {
        ok: true, pass: a.pass, mode: a.mode, firstDifference: a.firstDifference, detail: a.detail, expert: a.record.expert,
        record: a.recordCid.toString(), dataset: a.record.dataset.toString(), datasetName: a.datasetName, steps: a.record.steps
      }
    } catch (e) {
      return { ok: false, message: e instanceof Error ? e.message : String(e) }
    }
  }

  /** What the relays refused lately: the first relay that answers (those up first). */
  async rejections(limit: number): Promise<RejectionList> {
    const errors: string[] = []
    for (const url of this.#relayOrder()) {
      try {
        return { relay: url, rejections: await this.#options.relays.client(url).rejections(limit), error: null }
      } catch (e) {
        errors.push(e instanceof Error ? e.message : String(e))
      }
    }
    return { relay: null, rejections: [], error: errors.length === 0 ? 'no relay is configured' : errors.join('; ') }
  }

  /** The first relay that says how `cid` reached its node. */
  async provenance(cid: string): Promise<Provenance | null> {
    for (const url of this.#relayOrder()) {
      try {
        const r = await this.#options.relays.client(url).received(cid)
        if (r !== null) return { relay: url, ...r }
      } catch {
        continue
      }
    }
    return null
  }

  /** Every relay's report of its node's peers, asked at once (a relay off the peer network reports none). */
  async network(): Promise<NetworkView> {
    const relays = this.#options.relays
    const states = new Map(relays.states().map((s) => [s.url, s.health]))
    return {
      relays: await Promise.all(relays.urls.map(async (url) => {
        try {
          return { url, health: states.get(url) ?? 'unknown', network: await relays.client(url).network(AbortSignal.timeout(10_000)), error: null }
        } catch (e) {
          return { url, health: states.get(url) ?? 'unknown', network: null, error: e instanceof Error ? e.message : String(e) }
        }
      }))
    }
  }

  /** A relay's refusal of `cid`, from the first relay that has one. */
  async rejectionOf(cid: string): Promise<(RejectionInfo & { relay: string }) | null> {
    for (const url of this.#relayOrder()) {
      try {
        const r = await this.#options.relays.client(url).rejectionOf(cid)
        if (r !== null) return { ...r, relay: url }
      } catch {
        continue
      }
    }
    return null
  }

  get #chain(): ChainFollower['chain'] {
    return this.#options.follower().chain
  }

  #accepted(cid: string): AcceptedBlock | undefined {
    try {
      return this.#chain.get(CID.parse(cid))
    } catch {
      return undefined
    }
  }

  /** Relays to ask for reports (rejections): those up first. */
  #relayOrder(): string[] {
    const states = this.#options.relays.states()
    return [...states.filter((r) => r.health === 'up'), ...states.filter((r) => r.health !== 'up' && r.health !== 'wrong-network')].map((r) => r.url)
  }

  /** A chain B block's tensor index, from its first tile (verified); null when it cannot be had. */
  async #payloadIndex(block: AcceptedBlock): Promise<PayloadIndex | null> {
    const key = block.header.payload.toString()
    if (this.#payloadIndexes.has(key)) return this.#payloadIndexes.get(key) ?? null
    let index: PayloadIndex | null = null
    try {
      const path = await extractTilePath(block.header.payload, 0, async (cid) => (await this.#options.blocks.get(cid, `a tile of ${block.header.expert_name ?? key}`)).bytes)
      index = decodePayloadIndex(path.blocks[path.blocks.length - 1] as Uint8Array)
    } catch {
      index = null
    }
    this.#payloadIndexes.set(key, index)
    return index
  }
}

/**
 * PoL links of a block within the page's chain: a certified chain B version's reward (the chain C
 * block whose `pol` is its certificate), and a reward's certified version.
 */
function polLinks(block: AcceptedBlock, all: readonly AcceptedBlock[]): Pick<BlockPage, 'reward' | 'rewardFor'> {
  const h = block.header
  if (h.chain_id === 'B' && block.certificate !== null) {
    const cert = block.certificate.cid
    const reward = all.find((b) => b.header.chain_id === 'C' && b.header.pol?.equals(cert) === true)
    if (reward === undefined) return { reward: null, rewardFor: null }
    const doc = reward.document as LedgerDocument | null
    return { reward: { cid: reward.cid.toString(), label: blockLabel(reward), amount: doc?.amount ?? null, to: doc === null ? null : toHex(doc.to) }, rewardFor: null }
  }
  if (h.chain_id === 'C' && h.pol !== null) {
    const pol = h.pol
    const certified = all.find((b) => b.header.chain_id === 'B' && b.certificate?.cid.equals(pol) === true)
    return { reward: null, rewardFor: certified?.cid.toString() ?? null }
  }
  return { reward: null, rewardFor: null }
}
