/**
 * The Proof-of-Learning service of a full node: admits candidates (new expert versions submitted
 * without a certificate), runs validation rounds, and turns verdicts into chain blocks.
 *
 * A round, for the candidates waiting (docs/design.md §12 says why each step is there):
 * 1. The beacon: the chain A block right after the candidates' rules block (the A head when they
 *    were admitted), sealed now by the node's first validator key with the same rules. It did not
 *    exist when the miner fixed its candidate, so the validation slice it selects (sliceStart) could
 *    not be known in advance.
 * 2. Each validator key the node holds evaluates independently, on the CPU reference: the model of
 *    the param index with the base version, then with the candidate (evaluatePair: the layers below
 *    the expert's run once), on the slice of the newest
 *    validation dataset (src/pol/sequences.ts). Accept iff loss_after <= loss_before * (1 - delta);
 *    an accepting validator signs the certificate body.
 * 3. A body signed by a quorum becomes the certificate: the candidate is submitted with it (every
 *    rule runs again, the certificate's included) and a chain C reward is minted to its miner.
 *    Otherwise the candidate is rejected, with the losses, and the rejection is logged where the
 *    explorer shows rejections.
 *
 * Admission (before a candidate waits): it must be built on the current chain A head
 * (E_STALE_RULES), supersede its expert's current version (E_STALE_BASE), bring weights never seen
 * before (E_COPY), and its key must be within the quota of its trust level (E_QUOTA).
 *
 * @module
 */
import { EventEmitter } from 'node:events'
import { CID } from 'multiformats/cid'
import { documentPayload, sealBlock, type HeaderDraft } from '../../src/chain/build.ts'
import { compareCids, toHex } from '../../src/codec/cbor.ts'
import type { DatasetDocument } from '../../src/chain/dataset.ts'
import { decodeHeader, type ParamHeader } from '../../src/chain/header.ts'
import { isValidPublicKey, publicKeyOf, verifyMessage, type SecretKey } from '../../src/chain/keys.ts'
import { encodeLedgerDocument, rewardAmount, rewardSplit } from '../../src/chain/ledger.ts'
import { dataShareOf, isValidator, type MetaDocument } from '../../src/chain/meta.ts'
import { assembleCertificate, certificateBodyBytes, decodeCertificate, encodeCertificate, signCertificate, sliceStart, type CertificateBody, type CertificateSignature } from '../../src/chain/pol.ts'
import { checkSignatures } from '../../src/chain/quorum.ts'
import { decodeSubmission, encodeSubmission, trainingRecordIn, type Submission } from '../../src/chain/submission.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { chainModel, chainTokenizer } from '../../src/model/source.ts'
import { RuleError, reject, type RuleCode } from '../../src/errors.ts'
import { evaluatePair, type FloatModel } from '../../src/train/train.ts'
import type { Tokenizer } from '../../src/model/tokenizer/index.ts'
import { dequantizeAll, expertWeights, readBlockTensors } from '../../src/model/weights.ts'
import { DEFAULT_JOB_SETTINGS, leaseMessage, type Job, type JobSettings } from '../../src/pol/job.ts'
import { loadFloatModel, withExpert } from '../../src/pol/float-model.ts'
import { SequencePool } from '../../src/pol/sequences.ts'
import { fetchUnixfsFile } from '../../src/tensor/tiles.ts'
import type { ChainStore } from '../node/interface.ts'
import { checkRecordAgainstJob, deriveJobs, type JobHolders } from './jobs.ts'
import { nextGovernance, poolsAt, poolsInForce, validationPoolFor } from '../../src/chain/governance.ts'
import { decisionsPending, nextRulesSubmission } from '../node/governance.ts'
import type { CandidateGate, FullNode } from '../node/full-node.ts'
import type { CandidateRecord, Lease, PolStore } from './pol-store.ts'
import { PolVotes } from './votes.ts'
import { DAY_MS, QUOTAS, trustLevel, type TrustLevel } from './trust.ts'

export interface PolServiceOptions {
  readonly node: FullNode
  readonly polStore: PolStore
  /** Validator keys this node holds; the first seals beacons and rewards. None: candidates wait for a node that has some. */
  readonly validators: readonly SecretKey[]
  readonly now?: () => number
  /** How long a job lease lasts. @default 15 minutes */
  readonly leaseMs?: number
  readonly jobSettings?: JobSettings
  readonly log?: (line: string) => void
  /**
   * `local` (default): this node's keys are the validators that vote; it seals beacons and rewards
   * with its first key and decides as soon as its keys have voted (one machine, a devnet).
   * `network`: validators run on their own nodes (relay/p2p). Candidates and votes travel by gossip
   * (the 'candidate' and 'vote' events out, `submitVote` in); a beacon is sealed by the validator a
   * schedule names (takeover after BEACON_TAKEOVER_MS), the beacon's sealer assembles the
   * certificate and mints the reward (takeover after AGGREGATOR_TAKEOVER_MS), and a candidate
   * without a quorum when every validator voted, or at `voteDeadlineMs` after its beacon, is refused.
   */
  readonly schedule?: 'local' | 'network'
  /** Network schedule: how long votes are awaited after the beacon. @default 60 s */
  readonly voteDeadlineMs?: number
}

export interface PolServiceEvents {
  /** A candidate this node admitted (its header and submission CAR), for the network to carry to the other validators. */
  candidate: [header: Uint8Array, car: Uint8Array]
  /** A vote of this node's key (a certificate with its one signature), for the network to carry. */
  vote: [bytes: Uint8Array]
}

/**
 * Network schedule: how long a candidate waits before its beacon is sealed, so that the candidate's
 * gossip reaches every validator before the beacon makes its rules block stale (E_STALE_RULES).
 */
export const BEACON_DELAY_MS = 1000
/** How often a candidate still waiting for its beacon is announced again (past gossip's 30 s duplicate window). */
export const REANNOUNCE_MS = 35_000
/** How long the scheduled beacon sealer has before the next validator seals instead. */
export const BEACON_TAKEOVER_MS = 5000
/** How long a quorum may wait for the beacon's sealer to assemble it before another validator does. */
export const AGGREGATOR_TAKEOVER_MS = 10_000

/** One validator's verdict on a candidate. */
export interface Verdict {
  readonly validator: string
  readonly lossBefore: number
  readonly lossAfter: number
  readonly accept: boolean
}

export interface RoundReport {
  readonly beacon: string | null
  readonly decided: readonly { readonly cid: string; readonly status: 'accepted' | 'rejected'; readonly code: string | null; readonly verdicts: readonly Verdict[] }[]
  /** Candidates this round could not judge (an error, not a verdict): they stay pending and are retried. */
  readonly failed: readonly { readonly cid: string; readonly error: string }[]
}

/** A lease request the service refuses: `status` is the HTTP status to answer with. */
export class LeaseError extends Error {
  override readonly name = 'LeaseError'
  readonly status: number
  readonly code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

/** How far a lease request's clock may be from ours. */
const LEASE_CLOCK_SKEW_MS = 5 * 60 * 1000

export class PolService extends EventEmitter<PolServiceEvents> implements CandidateGate<CandidateRecord> {
  readonly node: FullNode
  readonly store: ChainStore
  readonly polStore: PolStore
  readonly #validators: readonly SecretKey[]
  readonly #now: () => number
  readonly #leaseMs: number
  readonly #jobSettings: JobSettings
  readonly #log: (line: string) => void
  #round: Promise<RoundReport> | null = null
  #timer: ReturnType<typeof setTimeout> | null = null
  #running = false
  #intervalMs = 5000
  /** Chain A blocks this node is making (#nextRules). */
  #rulesQueue: Promise<unknown> = Promise.resolve()
  /** The validation pool's windows, by dataset CID and seq_len (tokenizing is the slow part). */
  #pools = new Map<string, SequencePool>()
  readonly #network: boolean
  readonly #voteDeadlineMs: number
  /** Votes on candidates: this node's keys' and, on a network, other validators'. */
  readonly #votes = new PolVotes()
  /** When this node last announced a waiting candidate (network schedule). */
  readonly #announced = new Map<string, number>()
  /** When this node first held a quorum for a candidate it does not aggregate (for the takeover). */
  readonly #quorumSeen = new Map<string, number>()

  constructor(options: PolServiceOptions) {
    super()
    this.node = options.node
    this.store = options.node.store
    this.polStore = options.polStore
    this.#validators = options.validators
    this.#now = options.now ?? Date.now
    this.#leaseMs = options.leaseMs ?? 15 * 60 * 1000
    this.#jobSettings = options.jobSettings ?? DEFAULT_JOB_SETTINGS
    this.#log = options.log ?? (() => undefined)
    this.#network = options.schedule === 'network'
    this.#voteDeadlineMs = options.voteDeadlineMs ?? 60_000
    // A dataset decision comes into force with the next chain A block: a node with validator keys makes it at once.
    this.node.on('accepted', (block) => {
      // On a network, a beacon, a certified version or a reward from another node moves a waiting candidate on.
      if (this.#network && block.header.block_type !== 'decision' && this.polStore.pending().length > 0) this.#wake()
      if (block.header.block_type !== 'decision' || this.#validators.length === 0) return
      // On a network, the node that sealed the decision brings it into force (one rules block, not one per validator).
      if (this.#network && !this.#validators.some((k) => toHex(publicKeyOf(k)) === toHex(block.header.miner_pub))) return
      this.#takeIntoForce().catch((e: unknown) => this.#log(`governance: could not bring ${block.cid} into force: ${e instanceof Error ? e.message : String(e)}`))
    })
  }

  // ------------------------------------------------------------------------------ admission

  /** CandidateGate: the admission policy, then the candidate waits (called in the node's queue). */
  admit(block: AcceptedBlock, submission: Submission, car: Uint8Array): CandidateRecord {
    const cid = block.cid.toString()
    const known = this.polStore.get(cid)
    if (known !== undefined && known.status === 'rejected') reject((known.code ?? 'E_POL') as RuleCode, 'candidate', `already judged: ${known.message ?? 'rejected'}`)
    if (known !== undefined) return known
    const header = block.header as ParamHeader
    const head = this.store.head('A')
    if (head === undefined || !head.cid.equals(block.meta)) {
      reject('E_STALE_RULES', 'depends_on', `the candidate's rules block is not the chain A head${head === undefined ? '' : ` A:${head.header.index} ${head.cid}`}: rebuild on it`)
    }
    const current = this.store.paramIndex().get(header.expert_name)
    if (current === undefined || header.supersedes === null || !current.cid.equals(header.supersedes)) {
      reject('E_STALE_BASE', 'supersedes', `${header.expert_name}'s current version is ${current === undefined ? 'none' : `v${current.expertVersion} ${current.cid}`}`)
    }
    const payload = header.payload.toString()
    const copied = this.store.paramByPayload(header.payload) ?? this.polStore.byPayload(payload)
    if (copied !== undefined) {
      const by = 'miner' in copied ? copied.miner : toHex(copied.header.miner_pub)
      const verdict = 'miner' in copied && copied.status !== 'pending' ? ` (${copied.status}${copied.code === null ? '' : `: ${copied.code}`})` : ''
      reject('E_COPY', 'payload', `these weights (${payload}) were already submitted by ${by.slice(0, 12)}… in ${'miner' in copied ? copied.cid : copied.cid.toString()}${verdict}`)
    }
    const miner = toHex(header.miner_pub)
    const now = this.#now()
    const level = this.trustOf(miner)
    const quota = QUOTAS[level]
    if (this.polStore.pendingOf(miner) >= quota.pending) reject('E_QUOTA', 'miner_pub', `${quota.pending} candidate(s) of this key already wait (${level})`)
    if (this.polStore.submittedSince(miner, now - DAY_MS) >= quota.perDay) reject('E_QUOTA', 'miner_pub', `${quota.perDay} candidates in 24 hours is the ${level} quota`)
    this.polStore.add({ cid, miner, expert: header.expert_name, base: header.supersedes.toString(), rules: block.meta.toString(), payload, receivedAt: now }, car)
    this.#log(`pol: candidate ${cid} for ${header.expert_name} by ${miner.slice(0, 12)}… (${level}) waits for the validators`)
    this.emit('candidate', submission.input.header, car)
    this.#wake()
    return this.polStore.get(cid) as CandidateRecord
  }

  trustOf(miner: string): TrustLevel {
    return trustLevel(this.polStore.outcomes(miner))
  }

  candidate(cid: string): CandidateRecord | undefined {
    return this.polStore.get(cid)
  }

  // ----------------------------------------------------------------------------------- jobs

  jobs(): Job[] {
    const now = this.#now()
    return deriveJobs(this.store, (id) => this.#holders(id, now), this.#jobSettings)
  }

  /** Who holds `job` at `now`: a trusted key's lease is exclusive, newbie keys' leases are shared. */
  #holders(job: string, now: number): JobHolders {
    const leases = this.polStore.leasesOn(job, now)
    const exclusive = leases.find((l) => this.trustOf(l.miner) === 'trusted') ?? null
    return { exclusive, shared: leases.filter((l) => l !== exclusive) }
  }

  /**
   * Lease `job` to `miner` (hex key) who signed leaseMessage(job, miner, at) with it: 404 unknown
   * job, 400 bad request, 401 bad signature, 409 E_REPLAY for an `at` not later than the key's last
   * request, 409 LEASED when a trusted key holds it exclusively, 429 over the key's lease quota.
   *
   * Only a trusted key (3 accepted candidates in a row) leases exclusively; a newbie key's lease is
   * shared, so any number of fresh keys cannot keep anyone off the board: another miner may take
   * the same job, and the first accepted candidate wins (the other's base is then stale).
   */
  lease(jobId: string, miner: string, at: number, signature: string): Lease {
    const job = this.jobs().find((j) => j.id === jobId)
    if (job === undefined) throw new LeaseError(404, 'NOT_FOUND', `no job ${jobId} (jobs change when an expert gets a new version)`)
    this.#checkSigned(jobId, miner, at, signature, 'lease')
    const now = this.#now()
    const held = this.#holders(jobId, now)
    if (held.exclusive !== null && held.exclusive.miner !== miner) throw new LeaseError(409, 'LEASED', `leased to a trusted key until ${new Date(held.exclusive.expiresAt).toISOString()}`)
    const level = this.trustOf(miner)
    const renewing = held.exclusive?.miner === miner || held.shared.some((l) => l.miner === miner)
    if (!renewing && this.polStore.leasesOf(miner, now) >= QUOTAS[level].leases) throw new LeaseError(429, 'E_QUOTA', `${QUOTAS[level].leases} lease(s) at once is the ${level} quota`)
    const lease: Lease = { job: jobId, miner, leasedAt: now, expiresAt: now + this.#leaseMs }
    this.polStore.putLease(lease)
    return lease
  }

  /** Drop `miner`'s lease on `jobId` (signed like a lease, action `release`): 404 when it holds none. */
  release(jobId: string, miner: string, at: number, signature: string): void {
    this.#checkSigned(jobId, miner, at, signature, 'release')
    if (!this.polStore.leasesOn(jobId, this.#now()).some((l) => l.miner === miner)) throw new LeaseError(404, 'NOT_FOUND', `${miner.slice(0, 12)}… holds no lease on job ${jobId}`)
    this.polStore.dropLease(jobId, miner)
  }

  #checkSigned(jobId: string, miner: string, at: number, signature: string, action: 'lease' | 'release'): void {
    if (!/^[0-9a-f]{66}$/.test(miner) || !/^[0-9a-f]{128}$/.test(signature)) throw new LeaseError(400, 'BAD_REQUEST', 'miner is 33 bytes and signature 64 bytes, in lowercase hex')
    const now = this.#now()
    if (!Number.isSafeInteger(at) || Math.abs(at - now) > LEASE_CLOCK_SKEW_MS) throw new LeaseError(400, 'BAD_REQUEST', `at: the request time in ms, within ${LEASE_CLOCK_SKEW_MS / 60000} minutes of the node's clock`)
    const key = Uint8Array.from(Buffer.from(miner, 'hex'))
    const sig = Uint8Array.from(Buffer.from(signature, 'hex'))
    if (!isValidPublicKey(key) || !verifyMessage(sig, leaseMessage(jobId, miner, at, action), key)) throw new LeaseError(401, 'E_SIG', `the signature is not by miner over leaseMessage(job, miner, at, '${action}')`)
    // `at` is the key's sequence: a request no later than one already taken is a replay.
    if (!this.polStore.advanceSequence(miner, at)) throw new LeaseError(409, 'E_REPLAY', `this key already made a request at or after ${at}: a signed request is taken once (sign a new one with a later time)`)
  }

  // --------------------------------------------------------------------------------- rounds

  /**
   * Run a round every `intervalMs`, and at once when a candidate is admitted. The schedule never
   * lapses: whatever a round does (judges, fails, finds nothing), the next one is set when it ends,
   * so a candidate left pending by a failed round is tried again within one interval.
   */
  start(intervalMs = 5000): void {
    this.#running = true
    this.#intervalMs = intervalMs
    this.#schedule(0)
  }

  async stop(): Promise<void> {
    this.#running = false
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    await this.#round?.catch(() => undefined)
  }

  /** The next round in `delayMs` (replacing a later one); none once stopped. */
  #schedule(delayMs: number): void {
    if (!this.#running) return
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.runRound()
        .catch((e: unknown) => this.#log(`pol: round failed: ${e instanceof Error ? e.message : String(e)}`))
        .finally(() => {
          if (this.#timer === null) this.#schedule(this.#intervalMs)
        })
    }, delayMs)
  }

  #wake(): void {
    this.#schedule(0)
  }

  /** One round over every waiting candidate (rounds never overlap: a second call waits for the first). */
  runRound(signal?: AbortSignal): Promise<RoundReport> {
    const previous = this.#round ?? Promise.resolve(null)
    const round = previous.catch(() => null).then(() => this.#roundNow(signal))
    this.#round = round
    return round
  }

  async #roundNow(signal: AbortSignal | undefined): Promise<RoundReport> {
    const waiting = this.polStore.pending()
    // A node without keys judges nothing, except on a network, where it follows the validators' votes.
    if (waiting.length === 0 || (this.#validators.length === 0 && !this.#network)) return { beacon: null, decided: [], failed: [] }
    const decided: RoundReport['decided'][number][] = []
    const failed: RoundReport['failed'][number][] = []
    let lastBeacon: string | null = null
    for (const c of waiting) {
      signal?.throwIfAborted()
      try {
        const beacon = await this.#beaconFor(c)
        if (beacon === 'waiting') {
          await this.#reannounce(c)
          continue
        }
        if (beacon === null) {
          decided.push(await this.#reject(c, new RuleError('E_STALE_RULES', 'depends_on', 'its rules block has no successor on chain A and is not the head'), null, []))
          continue
        }
        lastBeacon = beacon.cid.toString()
        const outcome = await this.#judge(c, beacon, signal)
        if (outcome !== null) decided.push(outcome)
      } catch (e) {
        if (signal?.aborted === true) throw e
        // Not a verdict: the node could not judge it this time (a missing dataset, a store error).
        // It stays pending, says why, and the next round tries again.
        const why = e instanceof Error ? e.message : String(e)
        this.polStore.noteFailure(c.cid, why)
        failed.push({ cid: c.cid, error: why })
        this.#log(`pol: could not judge ${c.expert} candidate ${c.cid} (attempt ${c.attempts + 1}): ${why}; retrying next round`)
      }
    }
    return { beacon: lastBeacon, decided, failed }
  }

  /**
   * The chain A block after the candidate's rules block (the beacon): an accepted one, or a new one
   * when the rules block is the head and this node seals it (local: its first key; network: the key
   * the schedule names now), or `waiting` for the scheduled validator's beacon to arrive.
   */
  #beaconFor(c: CandidateRecord): Promise<AcceptedBlock | null | 'waiting'> {
    const rules = CID.parse(c.rules)
    return this.#nextRules(async () => {
      const r = this.store.get(rules)
      if (r === undefined) return null
      const next = this.store.headers('A', r.header.index + 1, r.header.index + 1, 100).filter((b) => b.header.prev?.equals(rules) === true)
      if (next.length > 0) return next.sort((a, b) => compareCids(a.cid, b.cid))[0] as AcceptedBlock
      const head = this.store.head('A')
      if (head === undefined || !head.cid.equals(rules)) return null
      const waited = this.#now() - c.receivedAt
      if (this.#network && waited < BEACON_DELAY_MS) {
        this.#schedule(BEACON_DELAY_MS - waited)
        return 'waiting'
      }
      const sealer = this.#network ? this.#scheduledSealer(r, waited) : (this.#validators[0] ?? null)
      if (sealer === null) return 'waiting'
      // A beacon fixes the pool its candidates are judged on: none is made before validators approve one.
      if (poolsAt(this.store, nextGovernance(this.store, head, this.store.head('D'))[0] ?? null).validation.length === 0) {
        throw new Error('no validation pool is in force: candidates wait until validators approve one (blyan dataset approve)')
      }
      const beacon = await this.node.submitCar(await nextRulesSubmission(this.store, sealer, this.#now()))
      this.#log(`pol: beacon A:${beacon.header.index} ${beacon.cid}`)
      return beacon
    })
  }

  /**
   * Network schedule: a candidate still waiting for its beacon is announced again every
   * REANNOUNCE_MS (gossip does not replay: a validator that joined the mesh late never saw it).
   */
  async #reannounce(c: CandidateRecord): Promise<void> {
    if (!this.#network) return
    const last = this.#announced.get(c.cid) ?? c.receivedAt
    if (this.#now() - last < REANNOUNCE_MS) return
    const car = this.polStore.car(c.cid)
    if (car === undefined) return
    this.#announced.set(c.cid, this.#now())
    this.emit('candidate', (await decodeSubmission(car)).input.header, car)
  }

  /**
   * Network schedule: the validator that seals the beacon after `rules`, `elapsedMs` after the
   * candidate arrived: validator (rules index + 1) mod n, then the next every BEACON_TAKEOVER_MS.
   * Its key if this node holds it, else null (this node waits for the beacon).
   */
  #scheduledSealer(rules: AcceptedBlock, elapsedMs: number): SecretKey | null {
    const validators = (rules.document as MetaDocument).validators
    const turn = (rules.header.index + 1 + Math.floor(Math.max(0, elapsedMs) / BEACON_TAKEOVER_MS)) % validators.length
    const pub = toHex(validators[turn] as Uint8Array)
    return this.#validators.find((k) => toHex(publicKeyOf(k)) === pub) ?? null
  }

  /** Decisions on chain D come into force with a new chain A block (when the head does not already bring them). */
  #takeIntoForce(): Promise<AcceptedBlock | null> {
    return this.#nextRules(async () => {
      if (!decisionsPending(this.store)) return null
      const rules = await this.node.submitCar(await nextRulesSubmission(this.store, this.#validators[0] as SecretKey, this.#now()))
      this.#log(`governance: A:${rules.header.index} ${rules.cid} brings the chain D decisions up to ${String(rules.header.depends_on[0])} into force`)
      return rules
    })
  }

  /** Chain A blocks this node makes, one at a time: a beacon and a governance block never race for one height. */
  #nextRules<T>(make: () => Promise<T>): Promise<T> {
    const run = this.#rulesQueue.then(make)
    this.#rulesQueue = run.catch(() => undefined)
    return run
  }

  /**
   * Judge a candidate on its beacon: this node's keys vote (once), then the votes are counted. The
   * decided outcome, or null while votes are awaited (network schedule) or another node assembles.
   */
  async #judge(c: CandidateRecord, beacon: AcceptedBlock, signal: AbortSignal | undefined): Promise<RoundReport['decided'][number] | null> {
    const submission = await decodeSubmission(this.polStore.car(c.cid) as Uint8Array)
    const stored = this.store.get(CID.parse(c.cid))
    if (stored !== undefined) {
      // Certified in an earlier round that did not finish (a crash before the reward), or by another node: finish it.
      if (stored.certificate !== null) return this.#reward(c, stored, beacon, [])
      return this.#reject(c, new RuleError('E_REPLAY', 'header', 'already accepted'), beacon, [])
    }
    const current = this.store.paramIndex().get(c.expert)
    if (current === undefined || current.cid.toString() !== c.base) {
      return this.#reject(c, new RuleError('E_STALE_BASE', 'supersedes', `${c.expert} got a new version while this candidate waited`), beacon, [])
    }
    // The training record, when the candidate brought one, must be the job's (relay/pol/jobs.ts).
    let record: ReturnType<typeof trainingRecordIn> = null
    try {
      const header = decodeHeader(submission.input.header)
      record = trainingRecordIn(header, submission.blocks, null)
      if (record !== null) checkRecordAgainstJob(record.record, toHex(header.miner_pub), this.store.get(CID.parse(c.rules)) as AcceptedBlock, this.store, this.#jobSettings)
    } catch (e) {
      if (e instanceof RuleError) return this.#reject(c, e, beacon, [])
      throw e
    }
    const meta = beacon.document as MetaDocument
    const start = sliceStart(CID.parse(c.cid), beacon.cid)
    const validation = validationPoolFor(poolsInForce(this.store, beacon), start)
    // The beacon fixes the pools: one without a validation pool can never certify this candidate.
    if (validation === undefined) return this.#reject(c, new RuleError('E_POOL', 'certificate.slice.dataset', `no validation pool is in force under the beacon A:${beacon.header.index}`), beacon, [])
    const body = { candidate: CID.parse(c.cid), base: CID.parse(c.base), meta: beacon.cid, slice: { dataset: validation, start, count: meta.pol.eval_sequences }, record: record?.cid ?? null, trained_on: record?.record.dataset ?? null }
    const voters = this.#validators.filter((k) => isValidator(meta, publicKeyOf(k)) && !this.#votes.has(c.cid, toHex(publicKeyOf(k))))
    if (voters.length > 0) {
      try {
        await this.#vote(c, submission, beacon, body, voters, signal)
      } catch (e) {
        if (e instanceof RuleError) return this.#reject(c, e, beacon, [])
        throw e
      }
    }
    return this.#count(c, submission, beacon, record?.bytes)
  }

  /**
   * Each of `keys` evaluates on its own (its own model load, its own two passes: base and candidate,
   * on the beacon's slice) and signs the body with the losses it measured: its vote, counted here
   * and, on a network, sent to the other validators.
   */
  async #vote(
    c: CandidateRecord, submission: Submission, beacon: AcceptedBlock, fields: Omit<CertificateBody, 'kind' | 'version' | 'loss_before' | 'loss_after'>,
    keys: readonly SecretKey[], signal: AbortSignal | undefined
  ): Promise<void> {
    const meta = beacon.document as MetaDocument
    const arch = meta.architecture
    const pool = await this.#pool(fields.slice.dataset, meta)
    const sequences = pool.slice(fields.slice.start, meta.pol.eval_sequences)
    const [layer, expert] = (/^layer(\d+)\.expert(\d+)$/.exec(c.expert) ?? []).slice(1).map(Number) as [number, number]
    const candidateWeights = expertWeights(dequantizeAll(readBlockTensors(c.expert, arch, submission.input.payload)))
    for (const key of keys) {
      const base = await this.#model(arch, signal)
      // The two models differ from `layer` up: layers below it run once per window.
      const { lossBefore, lossAfter } = await evaluatePair(base, withExpert(base, { layer, expert }, candidateWeights), layer, sequences, signal === undefined ? {} : { signal })
      const body: CertificateBody = { kind: 'blyan/pol-certificate', version: 1, ...fields, loss_before: lossBefore, loss_after: lossAfter }
      const vote = assembleCertificate(body, [signCertificate(body, key)])
      this.#votes.add(vote, meta.pol.delta)
      if (this.#network) this.emit('vote', encodeCertificate(vote))
    }
  }

  /**
   * A vote from another validator's node (a certificate with its signatures): counted when its
   * beacon and candidate are known here and its signatures are by the beacon's validators (a
   * RuleError, E_CERT_SIG / E_CERT_SIGNER, otherwise). `ignored` when it cannot be used (yet).
   */
  submitVote(bytes: Uint8Array): 'counted' | 'ignored' {
    const vote = decodeCertificate(bytes)
    const beacon = this.store.get(vote.meta)
    if (beacon === undefined || beacon.header.chain_id !== 'A') return 'ignored'
    const meta = beacon.document as MetaDocument
    checkSignatures(certificateBodyBytes(vote), vote.signatures, meta, 'vote', false)
    const c = this.polStore.get(vote.candidate.toString())
    if (c === undefined || c.status !== 'pending') return 'ignored'
    if (!this.#votes.add(vote, meta.pol.delta)) return 'ignored'
    this.#wake()
    return 'counted'
  }

  /** Count the votes on `c`: certify (where this node assembles), refuse (no quorum possible), or wait (null). */
  async #count(c: CandidateRecord, submission: Submission, beacon: AcceptedBlock, record: Uint8Array | undefined): Promise<RoundReport['decided'][number] | null> {
    const meta = beacon.document as MetaDocument
    const late = this.#network && this.#now() - beacon.header.timestamp > this.#voteDeadlineMs
    const tally = this.#votes.tally(c.cid, meta, !this.#network || late)
    const verdicts: Verdict[] = tally.votes.map((v) => ({ validator: v.validator, lossBefore: v.body.loss_before, lossAfter: v.body.loss_after, accept: v.accept }))
    if (tally.quorum !== null) {
      if (!this.#assembles(c, beacon)) return null
      return this.#accept(c, submission, beacon, tally.quorum.body, tally.quorum.signatures, verdicts, record)
    }
    if (!tally.impossible) return null
    const first = tally.votes.find((v) => this.#validators.some((k) => toHex(publicKeyOf(k)) === v.validator)) ?? tally.votes[0]
    const n = meta.validators.length
    const why = first === undefined
      ? new RuleError('E_QUORUM', 'certificate.signatures', `no validator voted within ${this.#voteDeadlineMs / 1000} s of the beacon`)
      : tally.accepting === 0
        ? new RuleError('E_POL_THRESHOLD', 'loss_after', `loss ${first.body.loss_before.toFixed(5)} -> ${first.body.loss_after.toFixed(5)} nats on ${first.body.slice.count} validation windows from ${first.body.slice.start}: needs at most ${(first.body.loss_before * (1 - meta.pol.delta)).toFixed(5)} (delta ${meta.pol.delta})`)
        : new RuleError('E_QUORUM', 'certificate.signatures', `${tally.accepting} of ${n} validators accepted${tally.votes.length < n ? ` (${tally.votes.length} voted)` : ''}, ${tally.need} needed${tally.accepting > 0 && new Set(tally.votes.filter((v) => v.accept).map((v) => toHex(certificateBodyBytes(v.body)))).size > 1 ? ' (their losses differ)' : ''}`)
    return this.#reject(c, why, beacon, verdicts)
  }

  /**
   * Whether this node assembles the certificate (and mints the reward): always on one machine; on a
   * network, the node holding the beacon's sealer key, or any validator's node once a quorum waited
   * AGGREGATOR_TAKEOVER_MS here (the sealer went away).
   */
  #assembles(c: CandidateRecord, beacon: AcceptedBlock): boolean {
    if (!this.#network) return true
    if (this.#validators.length === 0) return false
    const sealer = toHex(beacon.header.miner_pub)
    if (this.#validators.some((k) => toHex(publicKeyOf(k)) === sealer)) return true
    const seen = this.#quorumSeen.get(c.cid) ?? this.#now()
    this.#quorumSeen.set(c.cid, seen)
    return this.#now() - seen >= AGGREGATOR_TAKEOVER_MS
  }

  async #accept(
    c: CandidateRecord, submission: Submission, beacon: AcceptedBlock, body: CertificateBody, signatures: CertificateSignature[], verdicts: Verdict[], record: Uint8Array | undefined
  ): Promise<RoundReport['decided'][number] | null> {
    const certificate = encodeCertificate(assembleCertificate(body, signatures))
    let accepted: AcceptedBlock
    try {
      accepted = await this.node.submitCar(await encodeSubmission({
        header: submission.input.header, payload: submission.input.payload, certificate, files: [], documents: record === undefined ? [] : [record]
      }))
    } catch (e) {
      if (e instanceof RuleError) return this.#reject(c, e, beacon, verdicts)
      throw e
    }
    return this.#reward(c, accepted, beacon, verdicts)
  }

  /** Mint the reward of an accepted candidate (unless this branch already paid it) and record the verdict. */
  async #reward(c: CandidateRecord, accepted: AcceptedBlock, beacon: AcceptedBlock, verdicts: Verdict[]): Promise<RoundReport['decided'][number] | null> {
    const cert = accepted.certificate as NonNullable<AcceptedBlock['certificate']>
    const meta = beacon.document as MetaDocument
    // The miner's part, and the data share for whoever proposed the pool it learned from (src/chain/ledger.ts rewardSplit).
    const trainedOn = cert.value.trained_on === null ? undefined : this.store.get(cert.value.trained_on)
    const split = rewardSplit(rewardAmount(cert.value, meta.reward), dataShareOf(meta.reward), trainedOn !== undefined)
    const amount = split.miner
    const prev = this.store.head('C')
    let rewardCid: CID | null = null
    const paid = this.store.isRewarded(accepted.cid, prev?.cid ?? null)
    // On a network the assembler mints; the others wait for its reward block.
    if (!paid && !this.#assembles(c, beacon)) return null
    if (!paid) {
      const data = trainedOn === undefined || split.data === 0 ? {} : { data: { to: trainedOn.header.miner_pub, amount: split.data } }
      const doc = documentPayload(encodeLedgerDocument({ kind: 'blyan/reward', version: 1, to: accepted.header.miner_pub, amount, ...data }))
      const sealed = sealBlock({
        chain_id: 'C', block_type: 'reward', index: prev === undefined ? 0 : prev.header.index + 1, prev: prev?.cid ?? null,
        depends_on: [beacon.cid, accepted.cid].sort(compareCids), expert_name: null, layer_id: null, payload: doc.cid, payload_size: doc.size,
        timestamp: Math.max(this.#now(), accepted.header.timestamp + 1, (prev?.header.timestamp ?? 0) + 1), difficulty: meta.pow.C, supersedes: null, pol: cert.cid
      } as HeaderDraft, this.#sealingKey(beacon))
      rewardCid = (await this.node.submitCar(await encodeSubmission({ header: sealed.bytes, payload: doc.bytes, certificate: cert.bytes }))).cid
    }
    this.#votes.forget(c.cid)
    this.#quorumSeen.delete(c.cid)
    this.polStore.decide(c.cid, {
      status: 'accepted', beacon: beacon.cid.toString(), certificate: cert.cid.toString(), reward: rewardCid?.toString() ?? null, amount,
      lossBefore: cert.value.loss_before, lossAfter: cert.value.loss_after, at: this.#now()
    })
    this.#log(`pol: accepted ${c.expert} v${accepted.expertVersion} ${c.cid}: loss ${cert.value.loss_before.toFixed(5)} -> ${cert.value.loss_after.toFixed(5)} (${cert.value.signatures.length} signatures), reward ${amount} to ${c.miner.slice(0, 12)}…${split.data > 0 ? `, ${split.data} to the training pool's proposer` : ''}`)
    return { cid: c.cid, status: 'accepted', code: null, verdicts }
  }

  /** The key that seals a reward: the beacon's sealer when held here, else this node's first. */
  #sealingKey(beacon: AcceptedBlock): SecretKey {
    const sealer = toHex(beacon.header.miner_pub)
    return this.#validators.find((k) => toHex(publicKeyOf(k)) === sealer) ?? (this.#validators[0] as SecretKey)
  }

  async #reject(c: CandidateRecord, e: RuleError, beacon: AcceptedBlock | null, verdicts: Verdict[]): Promise<RoundReport['decided'][number]> {
    const v = verdicts[0]
    this.#votes.forget(c.cid)
    this.#quorumSeen.delete(c.cid)
    this.polStore.decide(c.cid, {
      status: 'rejected', code: e.code, message: e.message, beacon: beacon?.cid.toString() ?? null,
      lossBefore: v?.lossBefore ?? null, lossAfter: v?.lossAfter ?? null, at: this.#now()
    })
    const car = this.polStore.car(c.cid)
    // A verdict (the validators' losses) blames the candidate's weights; anything else is judged by refusal.ts.
    const verdict = verdicts.length > 0 && (e.code === 'E_POL_THRESHOLD' || e.code === 'E_QUORUM')
    if (car !== undefined) this.node.logRejection(e, (await decodeSubmission(car)).input.header, verdict ? 'block' : undefined)
    this.#log(`pol: rejected ${c.expert} candidate ${c.cid}: ${e.message}`)
    return { cid: c.cid, status: 'rejected', code: e.code, verdicts }
  }

  /** The store's model (src/model/source.ts `chainModel`) in float32, blocks verified on the way in. */
  #model(arch: MetaDocument['architecture'], signal: AbortSignal | undefined): Promise<FloatModel> {
    const model = chainModel(this.store)
    if ('missing' in model) throw new Error(`the store cannot make the model: ${model.missing}`)
    return loadFloatModel(arch, model.blocks, (cid) => this.#raw(cid), signal)
  }

  async #raw(cid: CID): Promise<Uint8Array> {
    const bytes = this.store.getRaw(cid)
    if (bytes === undefined) throw new Error(`the store lacks block ${cid}`)
    return bytes
  }

  /** A validation pool's windows under `meta`'s tokenizer and seq_len. */
  async #pool(dataset: CID, meta: MetaDocument): Promise<SequencePool> {
    const ds = this.store.get(dataset) as AcceptedBlock
    const t = meta.tokenizer
    if (t === null) throw new Error('chain A links no tokenizer: candidates cannot be judged')
    const key = `${ds.cid}|${meta.pol.seq_len}|${t.payload}`
    const cached = this.#pools.get(key)
    if (cached !== undefined) return cached
    const doc = ds.document as DatasetDocument
    const text = new TextDecoder().decode(await fetchUnixfsFile(doc.content, doc.content_size, (cid) => this.#raw(cid)))
    const pool = SequencePool.fromText(text, await chainTokenizer(meta, (cid) => this.#raw(cid)) as Tokenizer, meta.pol.seq_len)
    this.#pools.set(key, pool)
    return pool
  }
}
