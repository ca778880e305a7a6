/**
 * Screening proposed datasets: a node with validator keys runs the quality gate (src/pol/gate.ts)
 * on every chain D proposal it accepts, and decides on it with its keys when they are a quorum.
 *
 * Policy (the node's, not a chain rule; blyan dataset approve/reject/retire decide by hand):
 * - the gate fails: the proposal is **rejected**, the failed checks as reasons, the report linked;
 * - a training pool passes: it is **approved `silver`** (jobs may draw shards from it);
 * - a validation pool passes: it is **screened** and waits. Only validators approving it by hand
 *   (`gold`) make it a pool PoL slices come from: an automatic approval would hand the choice of
 *   the data candidates are judged on to whoever writes text that passes the gate.
 *
 * Reports are deterministic, so the node keeps the screened ones in memory and screens again after a
 * restart; a decision carries its report in the chain.
 *
 * On a peer network (`network`), each validator's node holds one key: it signs the decision body
 * and sends that vote (a decision with its one signature) to the other validators ('vote' event,
 * `submitVote`); the node of validator `dataset index mod n` seals the decision block once a quorum
 * signed the same body (any validator's node takes over after AGGREGATOR_TAKEOVER_MS).
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import type { DatasetDocument } from '../../src/chain/dataset.ts'
import { datasetStates, type DatasetState } from '../../src/chain/governance.ts'
import type { SecretKey } from '../../src/chain/keys.ts'
import { gateOf, isValidator, quorumSize, type MetaDocument } from '../../src/chain/meta.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { chainModel, chainTokenizer } from '../../src/model/source.ts'
import { encodeReport, runGate, type GateReport, type ReferencePool } from '../../src/pol/gate.ts'
import { loadFloatModel } from '../../src/pol/float-model.ts'
import { fetchUnixfsFile } from '../../src/tensor/tiles.ts'
import type { FullNode } from '../node/full-node.ts'
import { decisionBody, decisionSubmission, sealedDecision } from '../node/governance.ts'
import { EventEmitter } from 'node:events'
import { DAG_CBOR, cidOf, toHex } from '../../src/codec/cbor.ts'
import { assembleDecision, decisionBodyBytes, decodeDecision, encodeDecision, signDecision, type Decision, type DecisionBody } from '../../src/chain/decision.ts'
import { checkSignatures, type ValidatorSignature } from '../../src/chain/quorum.ts'

export interface ScreenerOptions {
  readonly node: FullNode
  /** The node's validator keys: they decide when they are a quorum of chain A's head. */
  readonly validators: readonly SecretKey[]
  readonly now?: () => number
  readonly log?: (line: string) => void
  /** Validators on their own nodes: decisions are voted on over the network. */
  readonly network?: boolean
}

export interface ScreenerEvents {
  /** This node's vote on a proposal (a decision with its key's signature), for the network to carry. */
  vote: [bytes: Uint8Array]
}

/** How long a quorum waits for the scheduled validator to seal the decision before another does. */
const AGGREGATOR_TAKEOVER_MS = 10_000

export interface Screened {
  readonly report: GateReport
  readonly bytes: Uint8Array
}

export class DatasetScreener extends EventEmitter<ScreenerEvents> {
  readonly node: FullNode
  readonly #validators: readonly SecretKey[]
  readonly #now: () => number
  readonly #log: (line: string) => void
  readonly #reports = new Map<string, Screened>()
  #queue: Promise<unknown> = Promise.resolve()
  readonly #network: boolean
  /** Sealing decisions, one at a time. */
  #assembling: Promise<void> = Promise.resolve()
  /** Votes on proposals by body (hex of its bytes): the body, validator -> signature, when a quorum was first seen. */
  readonly #votes = new Map<string, { body: DecisionBody; signatures: Map<string, ValidatorSignature>; report: Uint8Array | undefined; quorumAt: number | null }>()

  constructor(options: ScreenerOptions) {
    super()
    this.#network = options.network === true
    this.node = options.node
    this.#validators = options.validators
    this.#now = options.now ?? Date.now
    this.#log = options.log ?? (() => undefined)
    this.node.on('accepted', (block) => {
      if (block.header.block_type === 'dataset') void this.screen(block.cid).catch((e: unknown) => this.#log(`datasets: could not screen ${block.cid}: ${e instanceof Error ? e.message : String(e)}`))
    })
  }

  /** Resolves when no screening is running or queued. */
  async idle(): Promise<void> {
    for (let q = this.#queue; ; q = this.#queue) {
      await q.catch(() => undefined)
      if (q === this.#queue) return
    }
  }

  /** Screen every proposal on the chain D head's branch that is still `proposed` (at start). */
  async screenPending(): Promise<void> {
    for (const state of this.states().values()) if (state.stage === 'proposed') await this.screen(state.dataset)
  }

  /** Dataset states on the chain D head's branch. */
  states(): ReadonlyMap<string, DatasetState> {
    const store = this.node.store
    return datasetStates(store, store.head('D') ?? null)
  }

  /** The node's report on a dataset it screened (null when it has not, or has not yet). */
  report(dataset: CID): Screened | null {
    return this.#reports.get(dataset.toString()) ?? null
  }

  /** Screen one proposal (queued: one at a time); decides on it when policy and keys allow. */
  screen(dataset: CID): Promise<Screened | null> {
    const run = this.#queue.then(() => this.#screenNow(dataset))
    this.#queue = run.catch(() => undefined)
    return run
  }

  async #screenNow(cid: CID): Promise<Screened | null> {
    const store = this.node.store
    const block = store.get(cid)
    const state = this.states().get(cid.toString())
    if (block === undefined || state === undefined || state.stage !== 'proposed') return null
    const rules = store.head('A') as AcceptedBlock
    const meta = rules.document as MetaDocument
    const doc = block.document as DatasetDocument
    const raw = async (c: CID): Promise<Uint8Array> => {
      const bytes = store.getRaw(c)
      if (bytes === undefined) throw new Error(`the store lacks block ${c}`)
      return bytes
    }
    const references: ReferencePool[] = []
    for (const s of this.states().values()) {
      if (s.stage !== 'approved') continue
      const ref = store.get(s.dataset) as AcceptedBlock
      const refDoc = ref.document as DatasetDocument
      references.push({ cid: s.dataset, role: s.role, text: new TextDecoder().decode(await fetchUnixfsFile(refDoc.content, refDoc.content_size, raw)) })
    }
    const model = chainModel(store)
    const tokenizer = await chainTokenizer(meta, raw)
    if (tokenizer === null || 'missing' in model) throw new Error('the chain has no model and tokenizer to screen with')
    const started = performance.now()
    const report = await runGate({
      dataset: cid,
      role: doc.split,
      content: await fetchUnixfsFile(doc.content, doc.content_size, raw),
      params: gateOf(meta),
      references,
      tokenizer,
      model: await loadFloatModel(meta.architecture, model.blocks, raw),
      seqLen: meta.pol.seq_len
    })
    const screened = { report, bytes: encodeReport(report) }
    this.#reports.set(cid.toString(), screened)
    const failed = report.checks.filter((c) => !c.pass)
    this.#log(`datasets: ${doc.name} (${doc.split}) ${cid} ${report.pass ? 'passes' : `fails ${failed.map((c) => c.name).join(', ')}`} the gate (${Math.round(performance.now() - started)} ms)`)
    await this.#decide(cid, doc, screened, meta)
    return screened
  }

  async #decide(cid: CID, doc: DatasetDocument, screened: Screened, meta: MetaDocument): Promise<void> {
    const keys = this.#validators.filter((k) => isValidator(meta, publicKeyOf(k)))
    if (keys.length < quorumSize(meta.validators.length) && !(this.#network && keys.length > 0)) return
    const { report, bytes } = screened
    if (report.pass && doc.split === 'validation') {
      this.#log(`datasets: ${doc.name} is screened; a validation pool is approved by hand (blyan dataset approve ${cid} --tier gold)`)
      return
    }
    const request = report.pass
      ? { dataset: cid, verdict: 'approve' as const, tier: 'silver' as const, report: bytes }
      : { dataset: cid, verdict: 'reject' as const, reasons: report.checks.filter((c) => !c.pass).map((c) => `${c.name}: ${c.detail}`), report: bytes }
    if (keys.length >= quorumSize(meta.validators.length)) {
      const decision = await this.node.submitCar(await decisionSubmission(this.node.store, keys, request, this.#now()))
      this.#log(`datasets: ${request.verdict === 'approve' ? 'approved (silver)' : 'rejected'} ${doc.name}: D:${decision.header.index} ${decision.cid}`)
      return
    }
    // A peer network: this node's key votes; the scheduled validator's node seals the quorum.
    const body = decisionBody(this.node.store, request)
    for (const key of keys) {
      const vote = assembleDecision(body, [signDecision(body, key)])
      this.#count(vote, bytes)
      this.emit('vote', encodeDecision(vote))
    }
    this.#log(`datasets: voted to ${request.verdict} ${doc.name}`)
    await this.#assemble()
  }

  /**
   * A decision vote from another validator's node: counted when its rules block is known here and
   * every signature is by one of its validators (RuleError E_CERT_SIG / E_CERT_SIGNER otherwise);
   * `ignored` when it cannot be used.
   */
  async submitVote(bytes: Uint8Array): Promise<'counted' | 'ignored'> {
    const vote = decodeDecision(bytes)
    const rules = this.node.store.get(vote.meta)
    if (rules === undefined || rules.header.chain_id !== 'A') return 'ignored'
    checkSignatures(decisionBodyBytes(vote), vote.signatures, rules.document as MetaDocument, 'decision', false)
    if (this.states().get(vote.dataset.toString())?.stage !== 'proposed') return 'ignored'
    if (!this.#count(vote, undefined)) return 'ignored'
    await this.#assemble()
    return 'counted'
  }

  /** Add a vote's signatures to its body's tally; false when it brought none new. */
  #count(vote: Decision, report: Uint8Array | undefined): boolean {
    const { signatures, ...body } = vote
    const id = toHex(decisionBodyBytes(body))
    const entry = this.#votes.get(id) ?? { body, signatures: new Map(), report: undefined, quorumAt: null }
    entry.report ??= report
    let added = false
    for (const s of signatures) {
      const v = toHex(s.validator)
      if (entry.signatures.has(v)) continue
      entry.signatures.set(v, s)
      added = true
    }
    this.#votes.set(id, entry)
    return added
  }

  /**
   * Seal the decision of a body that a quorum signed, when this node's key is the scheduled one
   * (validator dataset index mod n) or the takeover time passed; its own report is what the body
   * names (reports are deterministic), so a node that has not screened the proposal waits.
   */
  #assemble(): Promise<void> {
    const run = this.#assembling.then(() => this.#assembleNow()).catch((e: unknown) => this.#log(`datasets: could not seal a decision: ${e instanceof Error ? e.message : String(e)}`))
    this.#assembling = run
    return run
  }

  async #assembleNow(): Promise<void> {
    const store = this.node.store
    for (const [id, entry] of this.#votes) {
      if (this.states().get(entry.body.dataset.toString())?.stage !== 'proposed') {
        this.#votes.delete(id)
        continue
      }
      const meta = store.get(entry.body.meta)?.document as MetaDocument | undefined
      // The report the body names: from this node's own screening (reports are deterministic).
      const own = this.#reports.get(entry.body.dataset.toString())
      entry.report ??= own !== undefined && entry.body.report?.equals(cidOf(own.bytes, DAG_CBOR)) === true ? own.bytes : undefined
      if (meta === undefined || entry.signatures.size < quorumSize(meta.validators.length) || (entry.body.report !== null && entry.report === undefined)) continue
      entry.quorumAt ??= this.#now()
      const dataset = store.get(entry.body.dataset) as AcceptedBlock
      const turn = toHex(meta.validators[dataset.header.index % meta.validators.length] as Uint8Array)
      const sealer = this.#validators.find((k) => toHex(publicKeyOf(k)) === turn) ?? (this.#now() - entry.quorumAt >= AGGREGATOR_TAKEOVER_MS ? this.#validators[0] : undefined)
      if (sealer === undefined) {
        // Not this node's turn yet: look again when the scheduled validator may have gone away.
        setTimeout(() => void this.#assemble().catch(() => undefined), AGGREGATOR_TAKEOVER_MS).unref()
        continue
      }
      const decision = await this.node.submitCar(await sealedDecision(store, assembleDecision(entry.body, [...entry.signatures.values()]), sealer, entry.report, this.#now()))
      this.#votes.delete(id)
      this.#log(`datasets: decided (${entry.body.verdict}) on ${entry.body.dataset} with ${entry.signatures.size} signatures: D:${decision.header.index} ${decision.cid}`)
    }
  }
}
