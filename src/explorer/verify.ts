/**
 * The explorer's Verify action: re-check one block from its bytes, step by step.
 *
 * Every step runs a rule of src/chain or src/tensor (never a second implementation of one) and
 * settles as `passed` or `failed` with a detail that carries the numbers; `skipped` says why. Each
 * step builds on the trust the ones before it established (the header is the CID's, the payload
 * CID is the signer's, ...), so after the first failure every later step is skipped:
 *
 *   cid         the header bytes hash to the CID                           headerCid
 *   decode      header schema and header-only rules                        decodeHeader
 *   pow         the CID digest has `difficulty` leading zero bits           checkPow
 *   signature   `payload_sig` is `miner_pub`'s over the signing bytes       checkSignature
 *   anchor      its chain A rules block leads by `prev` to the pinned genesis (skipped when none is pinned)
 *   rules       every rule of its chain against the page's accepted chain  validateBlock
 *               (documents and certificates fetched by CID and checked; chain B judged without its
 *               payload, as the light client accepted it)
 *   pol         chain B: the certificate's quorum, or the genesis rules'    checkCertificate, quorumSize
 *               validator signature of an initial version
 *   tile-root   chain B: the payload root block hashes to the signed payload CID
 *   tile-node-d one per interior level: the block hashes to its parent's link and covers the tile
 *   tile-leaf   the tile hashes to its CID, at its offset with its length; verifyTilePath agrees
 *
 * Blocks other than the header come from `getBlock`, which is untrusted (a relay): each is checked
 * against the CID that names it before it is used.
 *
 * ```ts
 * const report = await verifyBlock({ cid, headerBytes, view: chain, anchor, getBlock, tile: 2, now: Date.now() },
 *   (step) => console.log(step.id, step.status, step.detail))
 * ```
 *
 * @module
 */
import { abytes } from '../assert.ts'
import { CID } from 'multiformats/cid'
import { RAW, cidMatches, toHex } from '../codec/cbor.ts'
import { decodeHeader, headerCid, signingBytes, type Header, type ParamHeader } from '../chain/header.ts'
import type { LedgerDocument } from '../chain/ledger.ts'
import { isValidator, quorumSize, type MetaDocument } from '../chain/meta.ts'
import { checkCertificate, improvement } from '../chain/pol.ts'
import { leadingZeroBits } from '../chain/pow.ts'
import { checkPow, checkSignature, validateBlock } from '../chain/validate.ts'
import type { AcceptedBlock, ChainView } from '../chain/view.ts'
import { isRuleError } from '../errors.ts'
import { decodeFileNode, selectChild, type FileNode } from '../codec/unixfs.ts'
import { TILE_FANOUT, TILE_SIZE, tileCount, verifyTile, verifyTilePath } from '../tensor/tiles.ts'
import type { VerifyReport, VerifyStep } from './types.ts'

export interface VerifyInput {
  /** The block to check. */
  readonly cid: CID
  /** Its header bytes as fetched: untrusted. */
  readonly headerBytes: Uint8Array
  /** The page's validated chain (it includes this block when the page accepted it). */
  readonly view: ChainView
  /** The pinned chain A genesis CID, or null when none is pinned. */
  readonly anchor: string | null
  /** Bytes by CID from anywhere (a relay): untrusted, every one is checked against its CID. */
  readonly getBlock: (cid: CID, signal?: AbortSignal) => Promise<Uint8Array>
  /** Chain B: the tile whose Merkle path to check; null means tile 0. Ignored on other chains. */
  readonly tile: number | null
  /** The verifier's clock, ms since the epoch (the rules' E_FUTURE). */
  readonly now: number
  readonly signal?: AbortSignal
}

/** Step labels, as the UI shows them (ids are the keys; `tile-node-<d>` is `Tile path level <d>`). */
const LABELS = Object.freeze({
  cid: 'Header hash',
  decode: 'Header schema',
  pow: 'Proof of work',
  signature: 'Signature',
  anchor: 'Trust anchor',
  rules: 'Chain rules',
  pol: 'Proof of learning',
  tileRoot: 'Payload root',
  tileLeaf: 'Tile'
})

/** A step's own failure (not a RuleError from a rule function): its message is the detail. */
export class VerifyStepError extends Error {
  override readonly name = 'VerifyStepError'
}

function fail(detail: string): never {
  throw new VerifyStepError(detail)
}

/** Settles steps in order; after the first failure, every later step is skipped. */
class StepRunner {
  readonly steps: VerifyStep[] = []
  #failed: string | null = null

  constructor(readonly onStep: ((step: VerifyStep) => void) | undefined, readonly signal: AbortSignal | undefined) {}

  get ok(): boolean {
    return this.#failed === null
  }

  #settle(step: VerifyStep): void {
    const frozen = Object.freeze(step)
    this.steps.push(frozen)
    this.onStep?.(frozen)
  }

  /** Run one check: its returned string is the passed detail, a thrown error the failed one. */
  async run(id: string, label: string, check: () => string | Promise<string>): Promise<boolean> {
    if (this.#failed !== null) {
      this.skip(id, label, `not checked: ${this.#failed} failed`)
      return false
    }
    this.signal?.throwIfAborted()
    try {
      this.#settle({ id, label, status: 'passed', detail: await check() })
      return true
    } catch (e) {
      if (this.signal?.aborted === true) throw e
      this.#failed = id
      this.#settle({ id, label, status: 'failed', detail: describeError(e) })
      return false
    }
  }

  skip(id: string, label: string, detail: string): void {
    this.#settle({ id, label, status: 'skipped', detail })
  }

  /** Skip, saying `why`, or when an earlier step failed, saying that. */
  skipBecause(id: string, label: string, why: string): void {
    this.skip(id, label, this.#failed === null ? why : `not checked: ${this.#failed} failed`)
  }

  /** Skip a step that cannot run because an earlier one failed. */
  skipAfterFailure(id: string, label: string): void {
    this.skip(id, label, `not checked: ${this.#failed ?? 'an earlier step'} failed`)
  }
}

function describeError(e: unknown): string {
  if (e instanceof VerifyStepError || isRuleError(e)) return e.message
  if (e instanceof Error) return `${e.name}: ${e.message}`
  return String(e)
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`
}

/** `bafyreia…xyz`: enough of a CID or key to recognise it in a sentence. */
function short(text: string): string {
  return text.length <= 20 ? text : `${text.slice(0, 10)}…${text.slice(-6)}`
}

/** Re-check one block from its bytes, calling `onStep` as each step settles. */
export async function verifyBlock(input: VerifyInput, onStep?: (step: VerifyStep) => void): Promise<VerifyReport> {
  const { cid, headerBytes, view, anchor, getBlock, now, signal } = input
  abytes(headerBytes, 'headerBytes')
  if (typeof getBlock !== 'function') throw new TypeError('getBlock: expected function')
  if (anchor !== null && typeof anchor !== 'string') throw new TypeError('anchor: expected string or null')
  const steps = new StepRunner(onStep, signal)
  const fetchChecked = async (want: CID, what: string): Promise<Uint8Array> => {
    signal?.throwIfAborted()
    const bytes = await getBlock(want, signal)
    abytes(bytes, `getBlock(${what})`)
    if (!cidMatches(want, bytes)) fail(`the ${bytes.length} bytes served for ${what} ${want} do not hash to it`)
    return bytes
  }

  // 1. The header bytes are the block the CID names.
  await steps.run('cid', LABELS.cid, () => {
    const actual = headerCid(headerBytes)
    if (!actual.equals(cid)) fail(`the ${headerBytes.length} header bytes hash to ${actual}, not ${cid}`)
    return `${headerBytes.length} header bytes hash (sha2-256, dag-cbor) to ${cid}`
  })

  // 2. Header-only rules.
  const decoded: { header?: Header } = {}
  await steps.run('decode', LABELS.decode, () => {
    const h = decodeHeader(headerBytes)
    decoded.header = h
    const what = h.chain_id === 'B' && h.expert_name !== h.block_type ? `${h.block_type} ${h.expert_name}` : h.block_type
    return `canonical DAG-CBOR header, 17 fields, version ${h.version}: chain ${h.chain_id} ${what} at index ${h.index}`
  })
  const h = decoded.header ?? null

  // 3, 4. Proof of work and signature.
  await steps.run('pow', LABELS.pow, () => {
    const hh = h as Header
    checkPow(cid, hh.difficulty)
    return `${leadingZeroBits(cid.multihash.digest)} leading zero bits in the CID digest >= difficulty ${hh.difficulty} (nonce ${hh.nonce})`
  })
  await steps.run('signature', LABELS.signature, () => {
    const hh = h as Header
    checkSignature(hh)
    return `low-S secp256k1 signature by ${short(toHex(hh.miner_pub))} over sha256 of the ${signingBytes(hh).length} signing bytes verifies`
  })

  // 5. Trust anchor: the rules block, followed by prev, leads to the pinned genesis.
  if (anchor === null) steps.skipBecause('anchor', LABELS.anchor, 'no trust anchor pinned: the chain was not checked against a genesis (pin one with ?genesis=<cid>)')
  else await steps.run('anchor', LABELS.anchor, () => checkAnchor(h as Header, cid, anchor, view, fetchChecked))

  // 6. Every rule of the block's chain against the page's chain.
  const judged: { block?: AcceptedBlock } = {}
  await steps.run('rules', LABELS.rules, async () => {
    const hh = h as Header
    const known = view.get(cid)
    let payload: Uint8Array | null = null
    if (hh.chain_id !== 'B') payload = await fetchChecked(hh.payload, 'the document')
    let certificate: Uint8Array | undefined
    const certCid = hh.chain_id === 'C' ? hh.pol : hh.supersedes !== null ? known?.certificate?.cid ?? null : null
    if (certCid !== null) certificate = await fetchChecked(certCid, 'the PoL certificate')
    else if (hh.supersedes !== null) fail('a new expert version is judged with its PoL certificate, and this page has none for it (the block is not in its chain)')
    const result = await validateBlock(certificate === undefined ? { header: headerBytes, payload } : { header: headerBytes, payload, certificate }, view, signal === undefined ? { now } : { now, signal })
    judged.block = result
    return rulesDetail(result, view)
  })

  // 7. PoL, chain B only.
  if (h === null || h.chain_id !== 'B') {
    steps.skipBecause('pol', LABELS.pol, h === null ? 'the header did not decode' : `chain ${h.chain_id}: PoL certifies chain B versions${h.block_type === 'reward' ? ' (this reward\'s certificate passed the rules step)' : ''}`)
  } else {
    await steps.run('pol', LABELS.pol, () => polDetail(judged.block as AcceptedBlock, view))
  }

  // 8. Chain B: the Merkle path from the payload CID to one tile.
  let tile: number | null = null
  if (h !== null && h.chain_id === 'B') {
    tile = input.tile ?? 0
    await verifyTileSteps(h.payload, h.payload_size, tile, fetchBlock(getBlock, signal), steps)
  }

  return Object.freeze({ cid: cid.toString(), ok: steps.ok, steps: Object.freeze(steps.steps), anchor, tile })
}

/** getBlock with the signal checked, and the result's type checked (still unverified). */
function fetchBlock(getBlock: VerifyInput['getBlock'], signal: AbortSignal | undefined): (cid: CID) => Promise<Uint8Array> {
  return async (cid) => {
    signal?.throwIfAborted()
    const bytes = await getBlock(cid, signal)
    abytes(bytes, `getBlock(${cid})`)
    return bytes
  }
}

// ---------------------------------------------------------------------------------------------
// Anchor

/**
 * Walk from the block's chain A rules block back along `prev` to a genesis and compare it with the
 * pinned anchor. Headers come from the page's chain when it has them, else from getBlock (checked
 * against their CIDs and decoded). The walk is bounded by the rules block's height.
 */
async function checkAnchor(header: Header, cid: CID, anchor: string, view: ChainView, fetchChecked: (c: CID, what: string) => Promise<Uint8Array>): Promise<string> {
  let pinned: CID
  try {
    pinned = CID.parse(anchor.trim())
  } catch {
    fail(`the pinned anchor "${anchor}" is not a CID`)
  }
  const headerOf = async (c: CID, what: string): Promise<Header> => {
    if (c.equals(cid)) return header
    return view.get(c)?.header ?? decodeHeader(await fetchChecked(c, what))
  }
  let rules: CID | null = null
  if (header.chain_id === 'A') rules = cid
  else {
    for (const [i, dep] of header.depends_on.entries()) {
      if ((await headerOf(dep, `depends_on[${i}]`)).chain_id === 'A') {
        rules = dep
        break
      }
    }
  }
  if (rules === null) fail('the block names no chain A block: it follows no network\'s rules')
  const start = await headerOf(rules, 'the rules block')
  let at = rules
  let h = start
  let links = 0
  while (h.prev !== null) {
    if (links > start.index) fail(`more than ${start.index} prev links from A:${start.index} without reaching a genesis`)
    at = h.prev
    h = await headerOf(at, `chain A block ${at}`)
    if (h.chain_id !== 'A') fail(`prev of a chain A block is a chain ${h.chain_id} block (${at})`)
    links++
  }
  const genesis = at.toString()
  const from = header.chain_id === 'A' ? `this block (A:${start.index})` : `rules block A:${start.index} ${short(rules.toString())}`
  if (!at.equals(pinned)) fail(`${from} leads by ${links} prev links to genesis ${genesis}, not the pinned anchor ${anchor}`)
  return `${from} leads by ${links} prev link${links === 1 ? '' : 's'} to genesis ${genesis}, the pinned anchor`
}

// ---------------------------------------------------------------------------------------------
// Rules and PoL details

/** The rules block's document: chain A judges by its predecessor's (its own at genesis). */
function rulesOf(block: AcceptedBlock, view: ChainView): { doc: MetaDocument; at: string } | null {
  if (block.header.chain_id === 'A') {
    const prev = block.header.prev === null ? null : view.get(block.header.prev)
    if (block.header.prev === null) return { doc: block.document as MetaDocument, at: 'its own genesis document' }
    return prev === undefined || prev === null ? null : { doc: prev.document as MetaDocument, at: `A:${prev.header.index}` }
  }
  const meta = view.get(block.meta)
  return meta === undefined ? null : { doc: meta.document as MetaDocument, at: `A:${meta.header.index}` }
}

function rulesDetail(block: AcceptedBlock, view: ChainView): string {
  const h = block.header
  const rules = rulesOf(block, view)
  const parts = [`every chain ${h.chain_id} rule passes under the rules of ${rules?.at ?? short(block.meta.toString())}`]
  if (rules !== null) parts.push(`difficulty ${h.difficulty} >= ${rules.doc.pow[h.chain_id]} required`)
  if (h.chain_id === 'A') parts.push(h.prev === null ? 'genesis signed by one of its own validators' : `index ${h.index} follows A:${h.index - 1}, signed by a validator`)
  if (h.chain_id === 'B') {
    const bDeps = h.depends_on.length - 1
    parts.push(`${plural(h.depends_on.length, 'dependency', 'dependencies')} accepted (${bDeps} in chain B), index ${h.index}`)
    parts.push(h.supersedes === null ? 'initial version (v0)' : `version ${block.expertVersion}, superseding ${short(h.supersedes.toString())}`)
    parts.push(block.tensors === null ? 'payload judged per tile (light mode)' : `payload of ${block.tensors.tensors.length} tensors matches the architecture`)
  }
  if (h.chain_id === 'C') {
    const doc = block.document as LedgerDocument
    const data = doc.kind === 'blyan/reward' && doc.data !== undefined ? ` and ${doc.data.amount} to the proposer of the pool it learned from` : ''
    parts.push(h.block_type === 'reward' ? `reward of ${doc.amount} to the certified block's miner${data}` : `transfer of ${doc.amount} covered by the sender's balance`)
  }
  if (h.chain_id !== 'B') parts.push(`document of ${h.payload_size} bytes hashes to ${short(h.payload.toString())}`)
  return parts.join('; ')
}

function polDetail(block: AcceptedBlock, view: ChainView): string {
  const h = block.header
  const cert = block.certificate
  if (h.supersedes === null) {
    const rules = rulesOf(block, view)
    if (rules === null || !isValidator(rules.doc, h.miner_pub)) fail(`initial version, but its signer ${short(toHex(h.miner_pub))} is not a validator of its rules`)
    return `genesis version (v0), certified by the genesis rules: signed by validator ${short(toHex(h.miner_pub))}, one of the ${rules.doc.validators.length} of ${rules.at}`
  }
  if (cert === null) fail(`version ${block.expertVersion} has no PoL certificate`)
  const certMeta = view.get(cert.value.meta)
  if (certMeta === undefined) fail(`the certificate's rules block ${cert.value.meta} is not in this page's chain`)
  const meta = certMeta.document as MetaDocument
  checkCertificate(cert.value, block.cid, h as ParamHeader, meta)
  const n = meta.validators.length
  const k = cert.value.signatures.length
  const gain = (improvement(cert.value) * 100).toFixed(2)
  return `${k} of ${n} validators of A:${certMeta.header.index} signed, ${quorumSize(n)} needed; ` +
    `loss ${cert.value.loss_before} -> ${cert.value.loss_after} nats (${gain}% better, delta ${meta.pol.delta * 100}%); certificate ${short(cert.cid.toString())}`
}

// ---------------------------------------------------------------------------------------------
// Tile path

/** Interior (non-root) dag-pb levels a balanced payload of `count` tiles has. */
function interiorLevels(count: number): number {
  let levels = 0
  for (let cap = TILE_FANOUT; cap < count; cap *= TILE_FANOUT) levels++
  return levels
}

/** Deepest path walked, as src/tensor/tiles.ts (verifyTilePath refuses deeper ones). */
const MAX_LEVELS = 8

/**
 * The tile steps: `tile-root`, `tile-node-1` ... , `tile-leaf`, walking from the signed payload CID
 * down to `tile`, hashing each block against the link that names it before reading it. The path
 * is then handed whole to verifyTilePath, the rule the engine's tile fetches run.
 */
async function verifyTileSteps(
  payload: CID,
  payloadSize: number,
  tile: number,
  getBlock: (cid: CID) => Promise<Uint8Array>,
  steps: StepRunner
): Promise<void> {
  const count = tileCount(payloadSize)
  const leafLabel = `${LABELS.tileLeaf} ${tile}`
  /** After a failure: the levels a balanced tree of `count` tiles has below `fromLevel`, and the leaf. */
  const skipRest = (fromLevel: number): void => {
    for (let d = fromLevel; d <= interiorLevels(count); d++) steps.skipAfterFailure(`tile-node-${d}`, `Tile path level ${d}`)
    steps.skipAfterFailure('tile-leaf', leafLabel)
  }
  if (!steps.ok) {
    steps.skipAfterFailure('tile-root', LABELS.tileRoot)
    skipRest(1)
    return
  }

  const target = tile * TILE_SIZE
  const blocks: Uint8Array[] = []
  /** The next block to walk to: its CID, and the payload bytes [start, start + size) its parent says it covers. */
  let next = { cid: payload, start: 0, size: payloadSize }
  const rootOk = await steps.run('tile-root', LABELS.tileRoot, async () => {
    if (!Number.isSafeInteger(tile) || tile < 0 || tile >= count) {
      fail(`tile ${tile} is out of range: the payload's ${payloadSize} bytes make ${count} tile${count === 1 ? '' : 's'} (0..${count - 1})`)
    }
    const bytes = await getBlock(payload)
    if (!cidMatches(payload, bytes)) fail(`the ${bytes.length} bytes served as the payload root do not hash to the payload CID ${payload} in the signed header`)
    blocks.push(bytes)
    if (payload.code === RAW) {
      if (bytes.length !== payloadSize) fail(`the single-tile payload is ${bytes.length} bytes, the header says ${payloadSize}`)
      return `the payload is one tile: its ${bytes.length} bytes hash to the payload CID ${short(payload.toString())} in the signed header`
    }
    const node = decodeFileNode(bytes, 'root')
    if (node.size !== payloadSize) fail(`the root describes a file of ${node.size} bytes, the header says ${payloadSize}`)
    const child = selectChild(node, 0, target, 'root')
    next = child
    return `${bytes.length}-byte dag-pb node hashes to the payload CID ${short(payload.toString())} in the signed header; ` +
      `UnixFS file of ${node.size} bytes in ${node.links.length} links; tile ${tile} (byte ${target}) is under link ${linkIndex(node, 0, child.start)}, bytes [${child.start}, ${child.start + child.size})`
  })
  if (!rootOk) {
    skipRest(1)
    return
  }

  // Interior levels: each node hashes to its parent's link and covers the range its parent states.
  let depth = 1
  while (next.cid.code !== RAW) {
    const level = depth
    const { cid, start, size } = next
    const ok = await steps.run(`tile-node-${level}`, `Tile path level ${level}`, async () => {
      if (level > MAX_LEVELS) fail(`the path is deeper than ${MAX_LEVELS} levels`)
      const bytes = await getBlock(cid)
      if (!cidMatches(cid, bytes)) fail(`the ${bytes.length} bytes served for ${cid} do not hash to the link in their parent`)
      blocks.push(bytes)
      const node = decodeFileNode(bytes, `blocks[${level}]`)
      if (node.size !== size) fail(`the node covers ${node.size} bytes, its parent says ${size}`)
      const child = selectChild(node, start, target, `blocks[${level}]`)
      next = child
      return `${bytes.length}-byte dag-pb node hashes to ${short(cid.toString())}, the link in its parent; covers bytes [${start}, ${start + size}) in ${node.links.length} links; ` +
        `tile ${tile} is under link ${linkIndex(node, start, child.start)}, bytes [${child.start}, ${child.start + child.size})`
    })
    if (!ok) {
      skipRest(level + 1)
      return
    }
    depth++
  }

  // The leaf: the tile bytes hash to their raw CID, sit at the tile's offset with its length.
  await steps.run('tile-leaf', leafLabel, async () => {
    const leafCid = next.cid
    let bytes: Uint8Array
    if (payload.code === RAW) bytes = blocks[0] as Uint8Array // the root was the leaf, hashed above
    else {
      bytes = await getBlock(leafCid)
      await verifyTile(leafCid, bytes) // E_TILE when the bytes do not hash to the raw CID
      blocks.push(bytes)
    }
    const want = Math.min(TILE_SIZE, payloadSize - target)
    if (next.start !== target) fail(`the leaf covers payload offset ${next.start}, tile ${tile} starts at ${target}`)
    if (bytes.length !== want || bytes.length !== next.size) fail(`the leaf is ${bytes.length} bytes, tile ${tile} is ${want} and its parent says ${next.size}`)
    await verifyTilePath(payload, { tile, blocks })
    return `${bytes.length} bytes at payload offset ${target} hash to the raw leaf ${short(leafCid.toString())}; ` +
      `path of ${blocks.length} block${blocks.length === 1 ? '' : 's'} from the payload CID verified (tile ${tile} of ${count})`
  })
}

/** Which link of `node` (starting at payload byte `nodeStart`) begins at `childStart`. */
function linkIndex(node: FileNode, nodeStart: number, childStart: number): number {
  let at = nodeStart
  for (let i = 0; i < node.sizes.length; i++) {
    if (at === childStart) return i
    at += node.sizes[i] as number
  }
  return -1
}
