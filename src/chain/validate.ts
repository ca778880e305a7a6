/**
 * Block validation: every rule of chains A-D, in one place, over a {@link ChainView}.
 *
 * Rules run cheapest first, so junk costs little: decode and header-only rules, PoW (one hash),
 * links to accepted blocks, the signature, the payload, then certificates and balances. The first
 * broken rule throws a RuleError naming it; nothing is returned or stored for an invalid block.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { maxPayloadSize, parsePayload } from '../tensor/payload.ts'
import { importPayload } from '../tensor/tiles.ts'
import { DAG_CBOR, cidMatches, cidOf, compareBytes } from '../codec/cbor.ts'
import { decodeDataset } from './dataset.ts'
import { decodeDecision } from './decision.ts'
import { checkDecision, datasetStates, governanceOf, poolsInForce, validationPoolFor } from './governance.ts'
import { decodeHeader, headerCid, signingBytes, type Header, type LedgerHeader, type ParamHeader } from './header.ts'
import { verifyMessage } from './keys.ts'
import { decodeLedgerDocument, rewardAmount, rewardSplit, type LedgerDocument, type RewardDocument } from './ledger.ts'
import { dataShareOf, decodeMeta, isValidator, type MetaDocument } from './meta.ts'
import { ancestorAt, descendsFrom } from './forkchoice.ts'
import { checkParamShapes, expectedTensors, type IndexedTensors } from './params.ts'
import { checkCertificate, decodeCertificate, sliceStart, type Certificate } from './pol.ts'
import { blockWork, leadingZeroBits } from './pow.ts'
import type { AcceptedBlock, ChainView } from './view.ts'

/** How far a timestamp may run ahead of the validator's clock. */
export const MAX_FUTURE_MS = 15 * 60 * 1000

/**
 * A block as submitted: header bytes, the full payload, and a PoL certificate where one is needed.
 *
 * A light client may pass `payload: null` for a chain B block: every header, link, signature and
 * certificate rule still runs, and the payload rules (E_PAYLOAD, E_PAYLOAD_SIZE, TensorBlocks,
 * E_SHAPE) are deferred to when its tiles are fetched, each verified against the payload CID, and
 * decoded (src/model/weights.ts `readBlockTensors`). Documents (chains A, C, D) are always needed.
 */
export interface BlockInput {
  readonly header: Uint8Array
  readonly payload: Uint8Array | null
  readonly certificate?: Uint8Array
}

/** A block with its whole payload: what full nodes judge and submissions carry. */
export type FullBlockInput = BlockInput & { readonly payload: Uint8Array }

export interface ValidateOptions {
  /** The validator's clock, ms since the epoch. */
  readonly now: number
  readonly signal?: AbortSignal
  /**
   * A new chain B version may come without its certificate: every other rule runs, and the result
   * (with `certificate: null`) is a candidate for the validators, never a block to store. The node
   * queues it, validators evaluate it, and it is stored only when submitted again with a certificate.
   */
  readonly deferCertificate?: boolean
}

/** Validate a block against accepted state; returns what to store, or throws RuleError. */
export async function validateBlock(input: BlockInput, view: ChainView, options: ValidateOptions): Promise<AcceptedBlock> {
  const header = decodeHeader(input.header)
  const cid = headerCid(input.header)
  checkPow(cid, header.difficulty)
  if (header.timestamp > options.now + MAX_FUTURE_MS) reject('E_FUTURE', 'timestamp', `${header.timestamp - options.now} ms ahead, at most ${MAX_FUTURE_MS}`)

  switch (header.chain_id) {
    case 'A':
      return validateMeta(header, cid, input, view)
    case 'B':
      return validateParam(header, cid, input, view, options)
    case 'C':
      return validateLedger(header, cid, input, view)
    case 'D':
      return validateDataset(header, cid, input, view)
  }
}

/** Rule E_POW: the CID digest has `difficulty` leading zero bits. */
export function checkPow(cid: CID, difficulty: number): void {
  const zeros = leadingZeroBits(cid.multihash.digest)
  if (zeros < difficulty) reject('E_POW', 'nonce', `${zeros} leading zero bits, difficulty ${difficulty}`)
}

/** Rule E_SIG: `payload_sig` is miner_pub's signature over the signing bytes (decodeHeader checked the key). */
export function checkSignature(header: Header): void {
  if (!verifyMessage(header.payload_sig, signingBytes(header), header.miner_pub)) reject('E_SIG', 'payload_sig')
}

// ---------------------------------------------------------------------------------------------
// Shared link rules

/** An accepted block a link names; unknown -> E_UNKNOWN_DEP, rejected -> E_INVALID_DEP. */
function linked(view: ChainView, cid: CID, field: string): AcceptedBlock {
  const block = view.get(cid)
  if (block !== undefined) return block
  if (view.isRejected(cid)) reject('E_INVALID_DEP', field, `${cid} was rejected`)
  reject('E_UNKNOWN_DEP', field, `${cid} is not known`)
}

function metaOf(block: AcceptedBlock): MetaDocument {
  return block.document as MetaDocument
}

/**
 * Linear chains: prev is an accepted block of the same chain; index and timestamp follow it; and the
 * block extends the chain's final block, if a checkpoint made one (checkFinality).
 */
function checkPrev(header: Header, cid: CID, view: ChainView): AcceptedBlock | null {
  const prev = header.prev === null ? null : linked(view, header.prev, 'prev')
  if (prev !== null) {
    if (prev.header.chain_id !== header.chain_id) reject('E_PREV', 'prev', `is a chain ${prev.header.chain_id} block`)
    if (header.index !== prev.header.index + 1) reject('E_INDEX', 'index', `prev has index ${prev.header.index}`)
    if (header.timestamp < prev.header.timestamp) reject('E_TIMESTAMP', 'timestamp', 'before prev')
  }
  checkFinality(header, cid, prev, view)
  return prev
}

/**
 * Rule E_FINALIZED: once a checkpoint made block F final on this chain, a new block must sit above
 * F's height on F's branch. Every height up to F's is taken by the final branch, so a new block at
 * or below it can only displace a final block, whatever its work.
 */
function checkFinality(header: Header, cid: CID, prev: AcceptedBlock | null, view: ChainView): void {
  if (header.chain_id === 'B') return
  const head = view.checkpoint()?.heads[header.chain_id] ?? null
  const final = head === null ? undefined : view.get(head)
  if (final === undefined) return
  if (header.index <= final.header.index) {
    // The final branch's own block, judged again (the explorer re-checks accepted blocks): it displaces nothing.
    if (ancestorAt(view, final, header.index)?.cid.equals(cid) === true) return
    reject('E_FINALIZED', 'index', `${header.chain_id}:${final.header.index} ${final.cid} is final: a new block at height ${header.index} would displace the final branch`)
  }
  const at = prev === null ? undefined : ancestorAt(view, prev, final.header.index)
  if (at === undefined || !at.cid.equals(final.cid)) reject('E_FINALIZED', 'prev', `not on the branch of the final block ${header.chain_id}:${final.header.index} ${final.cid}`)
}

/**
 * Chains B, C, D: every dependency is accepted, exactly one is a chain A block (the rules), it is
 * not older than the rules of the block's other links, and the timestamp is not before any of them.
 */
function checkDependencies(header: Header, view: ChainView, prev: AcceptedBlock | null): { meta: AcceptedBlock; deps: AcceptedBlock[] } {
  const deps = header.depends_on.map((d, i) => linked(view, d, `depends_on[${i}]`))
  const metas = deps.filter((d) => d.header.chain_id === 'A')
  if (metas.length !== 1) reject('E_META_DEP', 'depends_on', `names ${metas.length} chain A blocks, needs exactly 1`)
  const meta = metas[0] as AcceptedBlock
  for (const [i, d] of deps.entries()) {
    if (header.timestamp < d.header.timestamp) reject('E_TIMESTAMP', 'timestamp', `before depends_on[${i}]`)
  }
  for (const other of prev === null ? deps : [...deps, prev]) {
    if (other.header.chain_id === 'A') continue
    const otherRules = view.get(other.meta)
    if (otherRules !== undefined && otherRules.header.index > meta.header.index) {
      reject('E_META_DEP', 'depends_on', `rules are older than those of ${other.cid}`)
    }
  }
  return { meta, deps }
}

/**
 * Rule E_DIFFICULTY: a block's difficulty is exactly what its rules require on its chain. Never
 * more: fork choice counts work, and work an author may choose is work an author may buy (a branch
 * of a few blocks at a higher difficulty would outweigh the honest one).
 */
function checkDifficulty(header: Header, meta: MetaDocument): void {
  const required = meta.pow[header.chain_id]
  if (header.difficulty !== required) reject('E_DIFFICULTY', 'difficulty', `${header.difficulty}, chain ${header.chain_id} requires exactly ${required}`)
}

function checkValidatorSigner(header: Header, meta: MetaDocument, why: string): void {
  if (!isValidator(meta, header.miner_pub)) reject('E_UNAUTHORIZED', 'miner_pub', `${why} must be signed by a validator`)
}

/** The document of a chain A, C or D block: required, hashing to `payload`, of `payload_size` bytes. */
function documentPayload(header: Header, input: BlockInput): Uint8Array {
  const payload = input.payload
  if (payload === null) reject('E_PAYLOAD', 'payload', `a chain ${header.chain_id} block is judged with its document`)
  if (payload.length !== header.payload_size) reject('E_PAYLOAD_SIZE', 'payload_size', `payload has ${payload.length} bytes`)
  if (!cidMatches(header.payload, payload)) reject('E_PAYLOAD', 'payload', 'payload bytes do not hash to it')
  return payload
}

/** A linear-chain block's record: cumulative work continues from prev. */
function acceptedLinear(
  cid: CID, input: BlockInput, header: Header, prev: AcceptedBlock | null, meta: CID,
  document: NonNullable<AcceptedBlock['document']>, certificate: AcceptedBlock['certificate'] = null
): AcceptedBlock {
  const work = (prev?.work ?? 0n) + blockWork(header.difficulty)
  return Object.freeze({ cid, bytes: input.header, header, document, tensors: null, certificate, meta, work, expertVersion: 0 })
}

// ---------------------------------------------------------------------------------------------
// Chain A: meta

function validateMeta(header: Header & { chain_id: 'A' }, cid: CID, input: BlockInput, view: ChainView): AcceptedBlock {
  const prev = checkPrev(header, cid, view)
  const doc = decodeMeta(documentPayload(header, input))
  // The genesis states its own rules; every later meta block follows its predecessor's.
  const rules = prev === null ? doc : metaOf(prev)
  checkDifficulty(header, rules)
  checkValidatorSigner(header, rules, prev === null ? 'the genesis' : 'a meta block')
  checkGovernanceLink(header, prev, view)
  if (prev !== null) {
    const before = metaOf(prev)
    if (doc.network !== before.network) reject('E_ARCH_CHANGE', 'payload.network', 'the network name is fixed at genesis')
    for (const key of Object.keys(before.architecture) as (keyof MetaDocument['architecture'])[]) {
      if (doc.architecture[key] !== before.architecture[key]) reject('E_ARCH_CHANGE', `payload.architecture.${key}`, 'the architecture is fixed at genesis')
    }
  }
  checkSignature(header)
  return acceptedLinear(cid, input, header, prev, cid, doc)
}

/**
 * A chain A block names at most one chain D block: the one whose dataset decisions are in force
 * under it (governance.ts). The genesis names none; after a block that names one, every block names
 * it or a block that extends it (E_DEPS), so an approval or a retirement is never taken back by the
 * rules; the chain D block's own rules are on this chain A branch (E_META_DEP).
 */
function checkGovernanceLink(header: Header & { chain_id: 'A' }, prev: AcceptedBlock | null, view: ChainView): void {
  const before = prev === null ? null : governanceOf(prev)
  const at = header.depends_on[0]
  if (at === undefined) {
    if (before !== null) reject('E_DEPS', 'depends_on', `must name ${before} or a chain D block after it: dataset decisions in force are never taken back`)
    return
  }
  if (prev === null) reject('E_DEPS', 'depends_on', 'the genesis has no dependencies')
  const d = linked(view, at, 'depends_on[0]')
  if (d.header.chain_id !== 'D') reject('E_DEPS', 'depends_on[0]', `a chain A block depends on a chain D block, not chain ${d.header.chain_id}`)
  if (header.timestamp < d.header.timestamp) reject('E_TIMESTAMP', 'timestamp', 'before depends_on[0]')
  if (before !== null && !descendsFrom(view, d, linked(view, before, 'prev.depends_on[0]'))) {
    reject('E_DEPS', 'depends_on[0]', `does not extend ${before}, the chain D block prev names: dataset decisions in force are never taken back`)
  }
  const rules = view.get(d.meta)
  if (rules === undefined || !descendsFrom(view, prev, rules)) reject('E_META_DEP', 'depends_on[0]', 'the chain D block follows rules that are not on this chain A branch')
}

// ---------------------------------------------------------------------------------------------
// Chain B: parameters

async function validateParam(header: ParamHeader, cid: CID, input: BlockInput, view: ChainView, options: ValidateOptions): Promise<AcceptedBlock> {
  const { meta, deps } = checkDependencies(header, view, null)
  const rules = metaOf(meta)
  const paramDeps = deps.filter((d) => d.header.chain_id !== 'A')
  for (const d of paramDeps) {
    const at = header.depends_on.findIndex((c) => c.equals(d.cid))
    if (d.header.chain_id !== 'B') reject('E_DEPS', `depends_on[${at}]`, `chain B blocks depend on chain A and B blocks only, not ${d.header.chain_id}`)
  }
  const height = paramDeps.length === 0 ? 0 : 1 + Math.max(...paramDeps.map((d) => d.header.index))
  if (header.index !== height) reject('E_INDEX', 'index', `must be ${height}: 1 + the highest chain B dependency`)
  checkDifficulty(header, rules)
  const tensors = expectedTensors(header.expert_name, rules.architecture) // E_LAYER / E_EXPERT_NAME outside the architecture
  // The architecture fixes how large this block's payload can be: a header claiming more is refused before any payload byte is read.
  const most = maxPayloadSize(tensors)
  if (header.payload_size > most) reject('E_PAYLOAD_SIZE', 'payload_size', `${header.payload_size} bytes; ${header.expert_name} holds at most ${most} under the architecture`)

  let base: AcceptedBlock | null = null
  if (header.supersedes === null) {
    // An initial version carries no certificate: the validators vouch for it by signing it.
    checkValidatorSigner(header, rules, 'an initial parameter version')
  } else {
    base = deps.find((d) => d.cid.equals(header.supersedes as CID)) as AcceptedBlock
    if (base.header.chain_id !== 'B' || base.header.expert_name !== header.expert_name) {
      reject('E_SUPERSEDES', 'supersedes', `is not a version of ${header.expert_name}`)
    }
  }
  checkSignature(header)

  let index: IndexedTensors | null = null
  if (input.payload !== null) {
    if (input.payload.length !== header.payload_size) reject('E_PAYLOAD_SIZE', 'payload_size', `payload has ${input.payload.length} bytes`)
    const imported = await importPayload(input.payload, options.signal === undefined ? {} : { signal: options.signal })
    if (!imported.cid.equals(header.payload)) reject('E_PAYLOAD', 'payload', `payload bytes import as ${imported.cid}`)
    index = parsePayload(input.payload).index
    checkParamShapes(header.expert_name, rules.architecture, index)
  }

  let certificate: AcceptedBlock['certificate'] = null
  if (base !== null && !(input.certificate === undefined && options.deferCertificate === true)) {
    if (input.certificate === undefined) reject('E_POL', 'certificate', 'a new version is accepted only with its PoL certificate')
    const value = decodeCertificate(input.certificate)
    checkCertificateContext(value, cid, meta, view)
    checkCertificate(value, cid, header, metaOf(linked(view, value.meta, 'certificate.meta')))
    certificate = Object.freeze({ cid: cidOf(input.certificate, DAG_CBOR), bytes: input.certificate, value })
  }
  return Object.freeze({
    cid,
    bytes: input.header,
    header,
    document: null,
    tensors: index,
    certificate,
    meta: meta.cid,
    work: blockWork(header.difficulty),
    expertVersion: base === null ? 0 : base.expertVersion + 1
  })
}

/**
 * The certificate's rules block is the beacon: the chain A block right after the candidate's rules
 * block, which did not exist when the miner fixed the candidate. The slice is the one the candidate
 * and the beacon derive (sliceStart, pol.eval_sequences sequences) of the validation pool the
 * beacon's rules put in force for that start (governance.ts validationPoolFor; E_POOL otherwise):
 * no one who is not a validator quorum can choose the data a candidate is judged on.
 */
function checkCertificateContext(cert: Certificate, candidateCid: CID, candidateMeta: AcceptedBlock, view: ChainView): void {
  const certMeta = view.get(cert.meta)
  if (certMeta === undefined || certMeta.header.chain_id !== 'A') reject('E_CERT', 'certificate.meta', 'not an accepted chain A block')
  if (certMeta.header.prev === null || !certMeta.header.prev.equals(candidateMeta.cid)) {
    reject('E_CERT', 'certificate.meta', `must be the chain A block right after the candidate's rules block A:${candidateMeta.header.index} (the beacon)`)
  }
  const start = sliceStart(candidateCid, cert.meta)
  if (cert.slice.start !== start) reject('E_CERT', 'certificate.slice.start', `the candidate and the beacon give ${start}`)
  const count = metaOf(certMeta).pol.eval_sequences
  if (cert.slice.count !== count) reject('E_CERT', 'certificate.slice.count', `pol.eval_sequences is ${count}`)
  const pool = validationPoolFor(poolsInForce(view, certMeta), start)
  if (pool === undefined) reject('E_POOL', 'certificate.slice.dataset', `no validation pool is in force under A:${certMeta.header.index}`)
  if (!cert.slice.dataset.equals(pool)) reject('E_POOL', 'certificate.slice.dataset', `the pool in force for this slice is ${pool}`)
  // The pool the candidate learned from (its record's) is a training pool in force under the candidate's own rules.
  if (cert.trained_on !== null && !poolsInForce(view, candidateMeta).train.some((c) => c.equals(cert.trained_on as CID))) {
    reject('E_POOL', 'certificate.trained_on', `not a training pool in force under the candidate's rules block A:${candidateMeta.header.index}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Chain C: ledger

function validateLedger(header: LedgerHeader, cid: CID, input: BlockInput, view: ChainView): AcceptedBlock {
  const prev = checkPrev(header, cid, view)
  const { meta, deps } = checkDependencies(header, view, prev)
  const rules = metaOf(meta)
  checkDifficulty(header, rules)
  const others = deps.filter((d) => d !== meta)
  let candidate: AcceptedBlock | null = null
  if (header.block_type === 'transfer') {
    if (others.length > 0) reject('E_DEPS', 'depends_on', 'a transfer depends on its chain A block only')
  } else {
    candidate = others[0] ?? null
    if (others.length !== 1 || candidate === null || candidate.header.chain_id !== 'B') {
      reject('E_DEPS', 'depends_on', 'a reward depends on its chain A block and the rewarded chain B block')
    }
    checkValidatorSigner(header, rules, 'a reward')
  }
  checkSignature(header)
  const doc = decodeLedgerDocument(documentPayload(header, input), header.block_type)

  let certificate: AcceptedBlock['certificate'] = null
  if (candidate === null) {
    const balance = view.balance(header.miner_pub, header.prev)
    if (balance < doc.amount) reject('E_BALANCE', 'payload.amount', `balance ${balance} < ${doc.amount}`)
  } else {
    certificate = checkReward(header, doc, candidate, rules, input, view)
  }
  return acceptedLinear(cid, input, header, prev, meta.cid, doc, certificate)
}

/** A reward mints for a certified candidate once per branch, to its miner, exactly the formula's amount. */
function checkReward(header: LedgerHeader, doc: LedgerDocument, candidate: AcceptedBlock, rules: MetaDocument, input: BlockInput, view: ChainView): NonNullable<AcceptedBlock['certificate']> {
  if (input.certificate === undefined) reject('E_POL', 'certificate', 'a reward is accepted only with its PoL certificate')
  if (!cidMatches(header.pol as CID, input.certificate)) reject('E_POL', 'pol', 'the certificate bytes do not hash to it')
  const value = decodeCertificate(input.certificate)
  if (!value.candidate.equals(candidate.cid)) reject('E_REWARD', 'pol', 'certifies another block than the one this reward depends on')
  checkCertificateContext(value, candidate.cid, view.get(candidate.meta) as AcceptedBlock, view)
  checkCertificate(value, candidate.cid, candidate.header as ParamHeader, metaOf(linked(view, value.meta, 'certificate.meta')))
  if (view.isRewarded(candidate.cid, header.prev)) reject('E_REWARD', 'pol', `${candidate.cid} was already rewarded on this branch`)
  if (compareBytes(doc.to, candidate.header.miner_pub) !== 0) reject('E_REWARD', 'payload.to', 'rewards go to the candidate\'s miner')
  const split = rewardSplit(rewardAmount(value, rules.reward), dataShareOf(rules.reward), value.trained_on !== null)
  if (doc.amount !== split.miner) reject('E_REWARD', 'payload.amount', `the miner's part of what the certificate earns is ${split.miner}`)
  const data = (doc as RewardDocument).data
  if (split.data === 0) {
    if (data !== undefined) reject('E_REWARD', 'payload.data', 'no data share is due')
  } else {
    // The data share goes to whoever proposed the pool the version learned from.
    const pool = linked(view, value.trained_on as CID, 'certificate.trained_on')
    if (data === undefined || data.amount !== split.data) reject('E_REWARD', 'payload.data', `the training pool's proposer is due ${split.data}`)
    if (compareBytes(data.to, pool.header.miner_pub) !== 0) reject('E_REWARD', 'payload.data.to', 'the data share goes to the training pool\'s proposer')
  }
  return Object.freeze({ cid: header.pol as CID, bytes: input.certificate, value })
}

// ---------------------------------------------------------------------------------------------
// Chain D: datasets and decisions on them

/** A proposal is open to any key (PoW only): it is used for nothing until a decision approves it. */
function validateDataset(header: Header & { chain_id: 'D' }, cid: CID, input: BlockInput, view: ChainView): AcceptedBlock {
  const prev = checkPrev(header, cid, view)
  const { meta, deps } = checkDependencies(header, view, prev)
  checkDifficulty(header, metaOf(meta))
  if (header.block_type === 'decision') return validateDecision(header, cid, input, view, prev, meta, deps)
  if (deps.length !== 1) reject('E_DEPS', 'depends_on', 'a dataset depends on its chain A block only')
  checkSignature(header)
  return acceptedLinear(cid, input, header, prev, meta.cid, decodeDataset(documentPayload(header, input)))
}

/** A decision: made by a validator, signed by a quorum, on a dataset proposed earlier on its branch (governance.ts). */
function validateDecision(
  header: Header & { chain_id: 'D' }, cid: CID, input: BlockInput, view: ChainView, prev: AcceptedBlock | null, meta: AcceptedBlock, deps: AcceptedBlock[]
): AcceptedBlock {
  const others = deps.filter((d) => d !== meta)
  const dataset = others[0]
  if (others.length !== 1 || dataset === undefined || dataset.header.chain_id !== 'D' || dataset.header.block_type !== 'dataset') {
    reject('E_DEPS', 'depends_on', 'a decision depends on its chain A block and the chain D dataset block it decides on')
  }
  if (prev === null || !descendsFrom(view, prev, dataset)) reject('E_DEPS', 'depends_on', `the dataset ${dataset.cid} is not on this block's chain D branch`)
  checkValidatorSigner(header, metaOf(meta), 'a dataset decision')
  checkSignature(header)
  const doc = decodeDecision(documentPayload(header, input))
  checkDecision(doc, dataset, meta, datasetStates(view, prev))
  return acceptedLinear(cid, input, header, prev, meta.cid, doc)
}
