/**
 * Whole-store archives and replays: `blyan export`, `blyan import-car`, `blyan verify`.
 *
 * An export is one CARv1 whose roots are every accepted header CID in acceptance order (so
 * dependencies come first), then every finality checkpoint in sequence, and whose blocks are
 * everything those blocks brought and the checkpoints' documents. Import splits it back into
 * submissions and judges each with the same rules as a network submission, then applies the
 * checkpoints; verify does the same against a fresh in-memory chain, so the store is re-checked from
 * genesis with nothing taken on trust. Blocks first, checkpoints after, is a faithful replay: every
 * stored block was valid when it came (finality only refuses), and each checkpoint extends the one
 * before.
 *
 * @module
 */
import { createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { CarReader, CarWriter } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { DAG_CBOR, cidMatches, cidOf } from '../../src/codec/cbor.ts'
import { decodeCheckpoint } from '../../src/chain/checkpoint.ts'
import { decodeDecision } from '../../src/chain/decision.ts'
import { MAX_PARAM_PAYLOAD_BYTES, decodeHeader, headerCid } from '../../src/chain/header.ts'
import { MemoryChain } from '../../src/chain/memory.ts'
import { decodeCertificate } from '../../src/chain/pol.ts'
import { checkSubmissionBlocks, writeCar, type Submission } from '../../src/chain/submission.ts'
import { readUnixfsFile } from '../../src/tensor/tiles.ts'
import { validateBlock } from '../../src/chain/validate.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { reject } from '../../src/errors.ts'
import type { ChainStore } from './interface.ts'
import { walkDag } from './ipld.ts'
import type { FullNode } from './full-node.ts'

type GetBlock = (cid: CID) => Uint8Array | undefined

/**
 * The submission of the block `cid` from a pool of verified blocks: its header, everything its
 * payload reaches (document and linked files, or the UnixFS file), and its certificate, found
 * through `certificateOf` (a reward names it in `pol`; a new expert version is named by one).
 */
export function assembleSubmission(cid: CID, get: GetBlock, certificateOf: (candidate: CID) => CID | undefined): Submission {
  const headerBytes = get(cid)
  if (headerBytes === undefined) reject('E_INCOMPLETE', cid.toString(), 'header block missing')
  const header = decodeHeader(headerBytes)
  const blocks = new Map<string, Uint8Array>([[cid.toString(), headerBytes]])
  let missing: CID | null = null
  // The payload and the UnixFS files it links; a document's links to other blocks (a decision names
  // its dataset and rules blocks) are not part of its submission.
  const isPart = (c: CID): boolean => c.equals(header.payload) || c.code !== DAG_CBOR
  for (const b of walkDag(header.payload, get, { follow: isPart, missing: (c) => { if (isPart(c)) missing ??= c } })) {
    if (isPart(b.cid)) blocks.set(b.cid.toString(), b.bytes)
  }
  if (missing !== null) reject('E_INCOMPLETE', 'payload', `block ${String(missing)} missing`)
  const payload = header.chain_id === 'B' ? readUnixfsFile(header.payload, get, MAX_PARAM_PAYLOAD_BYTES).bytes : (get(header.payload) as Uint8Array)
  // A decision carries the gate report it links.
  const report = header.block_type === 'decision' ? decodeDecision(payload).report : null
  const reportBytes = report === null ? undefined : get(report)
  if (report !== null && reportBytes !== undefined) blocks.set(report.toString(), reportBytes)
  const certCid = header.pol ?? (header.supersedes === null ? undefined : certificateOf(cid))
  const certificate = certCid === undefined ? undefined : get(certCid)
  if (certificate !== undefined && certCid !== undefined) {
    blocks.set(certCid.toString(), certificate)
    // A certified version carries the training record its certificate links.
    const record = header.chain_id === 'B' ? decodeCertificate(certificate).record : null
    const recordBytes = record === null ? undefined : get(record)
    if (record !== null && recordBytes !== undefined) blocks.set(record.toString(), recordBytes)
  }
  const input = certificate === undefined ? { header: headerBytes, payload } : { header: headerBytes, payload, certificate }
  return { input, blocks }
}

/** Submission of an accepted block, rebuilt from the store. */
export function storedSubmission(store: ChainStore, block: AcceptedBlock): Submission {
  return assembleSubmission(block.cid, (c) => store.getRaw(c), () => block.certificate?.cid)
}

/**
 * The submission CAR of an accepted block, as its author sent it (roots: header, then certificate):
 * what peers serve each other. `files: false` leaves out a chain B payload's UnixFS blocks (the
 * receiver fetches those tiles by bitswap): only the DAG-CBOR blocks (header, certificate, record).
 */
export function storedSubmissionCar(store: ChainStore, block: AcceptedBlock, options: { files?: boolean } = {}): Promise<Uint8Array> {
  const submission = storedSubmission(store, block)
  const roots = block.certificate === null ? [block.cid] : [block.cid, block.certificate.cid]
  const light = options.files === false && block.header.chain_id === 'B'
  const blocks = [...submission.blocks].map(([key, bytes]) => ({ cid: CID.parse(key), bytes })).filter((b) => !light || b.cid.code === DAG_CBOR)
  return writeCar(roots, blocks)
}

/** Write every accepted block to a CAR file; returns the number of blocks and IPLD blocks written. */
export async function exportCar(store: ChainStore, path: string): Promise<{ blocks: number; ipldBlocks: number; checkpoints: number }> {
  const accepted = [...store.all()]
  const checkpoints = storedCheckpoints(store).map((bytes) => ({ cid: cidOf(bytes, DAG_CBOR), bytes }))
  const { writer, out } = CarWriter.create([...accepted.map((b) => b.cid), ...checkpoints.map((c) => c.cid)])
  const file = createWriteStream(path)
  const pump = (async () => {
    for await (const chunk of out) if (!file.write(chunk)) await once(file, 'drain')
    file.end()
    await once(file, 'finish')
  })()
  const written = new Set<string>()
  for (const block of accepted) {
    for (const cid of store.rawCidsOf(block.cid)) {
      const key = cid.toString()
      if (written.has(key)) continue
      written.add(key)
      await writer.put({ cid, bytes: store.getRaw(cid) as Uint8Array })
    }
  }
  for (const checkpoint of checkpoints) await writer.put(checkpoint)
  await writer.close()
  await pump
  return { blocks: accepted.length, ipldBlocks: written.size, checkpoints: checkpoints.length }
}

/** Every checkpoint of a store, in sequence, as bytes. */
function storedCheckpoints(store: ChainStore): Uint8Array[] {
  const all: Uint8Array[] = []
  for (;;) {
    const page = store.checkpoints(all.length, 1000)
    all.push(...page.map((r) => r.bytes))
    if (page.length < 1000) return all
  }
}

/** True when `bytes` are a checkpoint document (an export's root is a header or a checkpoint). */
function isCheckpoint(bytes: Uint8Array): boolean {
  try {
    decodeCheckpoint(bytes)
    return true
  } catch {
    return false
  }
}

/** Read an export CAR into memory: the ordered header roots and a pool of verified blocks. */
export async function readArchive(bytes: Uint8Array): Promise<{ roots: CID[]; get: GetBlock; certificateOf: (candidate: CID) => CID | undefined }> {
  let reader: CarReader
  try {
    reader = await CarReader.fromBytes(bytes)
  } catch (e) {
    reject('E_CAR', 'car', e instanceof Error ? e.message : String(e))
  }
  const pool = new Map<string, Uint8Array>()
  const certificates = new Map<string, CID>()
  let offset = 0
  for await (const { cid, bytes: block } of reader.blocks()) {
    offset++
    if (!cidMatches(cid, block)) reject('E_CAR', `blocks[${offset - 1}]`, `${cid} does not match its bytes`)
    pool.set(cid.toString(), block)
    if (cid.code === DAG_CBOR) {
      try {
        certificates.set(decodeCertificate(block).candidate.toString(), cid)
      } catch {
        // not a certificate: headers and documents share the codec
      }
    }
  }
  return { roots: await reader.getRoots(), get: (c) => pool.get(c.toString()), certificateOf: (c) => certificates.get(c.toString()) }
}

/** Submit every block of an export to a node, in order. */
export async function importCar(node: FullNode, bytes: Uint8Array, onProgress?: (done: number, total: number) => void): Promise<{ accepted: number }> {
  const archive = await readArchive(bytes)
  let done = 0
  for (const root of archive.roots) {
    const bytes = archive.get(root)
    if (bytes !== undefined && isCheckpoint(bytes)) await node.submitCheckpoint(bytes)
    else await node.submit(assembleSubmission(root, archive.get, archive.certificateOf))
    onProgress?.(++done, archive.roots.length)
  }
  return { accepted: done }
}

export interface VerifyReport {
  readonly blocks: number
  readonly byChain: Readonly<Record<string, number>>
  readonly heads: Readonly<Record<string, string | null>>
  readonly experts: number
  /** Finality checkpoints replayed, and the last one's number (null: none). */
  readonly checkpoints: number
}

/**
 * Re-verify a store from genesis: integrity (store.check), then every block replayed through
 * validateBlock into a fresh in-memory chain, then the replay's heads and param index must equal the
 * store's. Throws the first failure (StoreDamagedError, RuleError, or Error naming the mismatch).
 */
export async function verifyStore(store: ChainStore, options: { now?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<VerifyReport> {
  store.check()
  const replay = new MemoryChain()
  const total = store.size
  const byChain: Record<string, number> = { A: 0, B: 0, C: 0, D: 0 }
  let done = 0
  for (const block of store.all()) {
    const submission = storedSubmission(store, block)
    if (!headerCid(submission.input.header).equals(block.cid)) throw new Error(`${block.cid}: stored header bytes hash elsewhere`)
    const again = await validateBlock(submission.input, replay, { now: options.now ?? Date.now() })
    checkSubmissionBlocks(again, submission.blocks)
    replay.add(again)
    byChain[block.header.chain_id] = (byChain[block.header.chain_id] ?? 0) + 1
    options.onProgress?.(++done, total)
  }
  // Then finality, each checkpoint judged again by the rules against the replayed chain.
  const checkpoints = storedCheckpoints(store)
  for (const bytes of checkpoints) replay.applyCheckpoint(bytes)
  const heads: Record<string, string | null> = {}
  for (const chain of ['A', 'B', 'C', 'D'] as const) {
    const stored = store.head(chain)?.cid.toString() ?? null
    // Linear chains: fork choice must agree. Chain B has no single head; the param index below covers it.
    if (chain !== 'B') {
      const replayed = replay.head(chain)?.cid.toString() ?? null
      if (stored !== replayed) throw new Error(`chain ${chain}: the store's head ${stored} differs from the replay's ${replayed}`)
    }
    heads[chain] = stored
  }
  const storedIndex = store.paramIndex()
  const replayIndex = replay.paramIndex()
  if (storedIndex.size !== replayIndex.size) throw new Error(`param index: ${storedIndex.size} experts stored, ${replayIndex.size} replayed`)
  for (const [name, block] of replayIndex) {
    if (!storedIndex.get(name)?.cid.equals(block.cid)) throw new Error(`param index: ${name} is ${storedIndex.get(name)?.cid} in the store, ${block.cid} in the replay`)
  }
  return { blocks: done, byChain, heads, experts: replayIndex.size, checkpoints: checkpoints.length }
}
