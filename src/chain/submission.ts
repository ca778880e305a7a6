/**
 * Submissions: a block and every IPLD block it brings, as one CARv1.
 *
 * `POST /api/blocks` takes this format, miners (browser or CLI) write it, and `blyan import-car`
 * replays exports made of it. Roots: the header CID, then the PoL certificate CID when the block
 * needs one. Blocks: the header; the payload (its document block, or every block of its UnixFS
 * file); every block of each file its document links (a meta block's tokenizer, a dataset's
 * content); the certificate. Nothing else: a node stores exactly what a submission brings, so a CAR
 * cannot smuggle unrelated data into the store.
 *
 * Decoding checks every block's bytes against its CID and reassembles the payload; the rules of
 * validate.ts then judge the block, and `checkSubmissionBlocks` that the rest is complete and used.
 *
 * @module
 */
import { CarReader, CarWriter } from '@ipld/car'
import { concatBytes } from '@noble/hashes/utils.js'
import { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { readUnixfsFile, importPayload } from '../tensor/tiles.ts'
import { DAG_CBOR, DAG_PB, RAW, cidMatches, cidOf, decodeCbor, isProtocolCid } from '../codec/cbor.ts'
import type { DatasetDocument } from './dataset.ts'
import type { Decision } from './decision.ts'
import { MAX_RECORD_BYTES, RECORD_KIND, decodeRecord, type TrainingRecord } from './record.ts'
import { MAX_PARAM_PAYLOAD_BYTES, decodeHeader, type Header } from './header.ts'
import type { MetaDocument } from './meta.ts'
import type { FullBlockInput } from './validate.ts'
import type { AcceptedBlock } from './view.ts'

/** Largest submission CAR accepted, in bytes. */
export const MAX_SUBMISSION_BYTES = 1024 * 1024 * 1024
/** Largest linked file (tokenizer, dataset content) a submission may carry. */
export const MAX_LINKED_FILE_BYTES = 512 * 1024 * 1024

export interface Submission {
  /** What validateBlock judges. */
  readonly input: FullBlockInput
  /** Every block in the CAR, CID string -> bytes, each checked against its CID. */
  readonly blocks: ReadonlyMap<string, Uint8Array>
}

/** A file a document links to, which the submission must carry whole. */
export interface LinkedFile {
  readonly cid: CID
  readonly size: number
  /** Where the link is, e.g. `payload.tokenizer.payload`. */
  readonly field: string
}

/** Files an accepted block's document links to (tokenizer of a meta block, content of a dataset). */
export function linkedFiles(block: Pick<AcceptedBlock, 'header' | 'document'>): LinkedFile[] {
  if (block.header.chain_id === 'A') {
    const tokenizer = (block.document as MetaDocument).tokenizer
    return tokenizer === null ? [] : [{ cid: tokenizer.payload, size: tokenizer.size, field: 'payload.tokenizer.payload' }]
  }
  if (block.header.chain_id === 'D' && block.header.block_type === 'dataset') {
    const doc = block.document as DatasetDocument
    const files = [{ cid: doc.content, size: doc.content_size, field: 'payload.content' }]
    if (doc.record !== undefined && doc.record_size !== undefined) files.push({ cid: doc.record, size: doc.record_size, field: 'payload.record' })
    return files
  }
  return []
}

/**
 * DAG-CBOR documents a block links, which its submission must carry: a decision's gate report, a
 * certified version's training record (its certificate's `record`).
 */
export function linkedDocuments(block: Pick<AcceptedBlock, 'header' | 'document'> & { readonly certificate?: AcceptedBlock['certificate'] }): LinkedDocument[] {
  if (block.header.block_type === 'decision') {
    const report = (block.document as Decision).report
    return report === null ? [] : [{ cid: report, field: 'payload.report' }]
  }
  const record = block.header.chain_id === 'B' ? block.certificate?.value.record ?? null : null
  return record === null ? [] : [{ cid: record, field: 'certificate.record' }]
}

/** A DAG-CBOR block a document or certificate links, which the submission carries whole. */
export interface LinkedDocument {
  readonly cid: CID
  /** Where the link is, e.g. `payload.report`. */
  readonly field: string
}

/**
 * The training record a chain B candidate was submitted with: a DAG-CBOR block of the submission,
 * not its header, payload or certificate, that decodes as a record (E_RECORD otherwise) of this
 * header's payload and base. Null when it brought none.
 */
export function trainingRecordIn(header: Header, blocks: ReadonlyMap<string, Uint8Array>, certificate: CID | null): { readonly cid: CID; readonly bytes: Uint8Array; readonly record: TrainingRecord } | null {
  if (header.chain_id !== 'B' || header.supersedes === null) return null
  const skip = new Set([header.payload.toString(), certificate?.toString()])
  for (const [key, bytes] of blocks) {
    const cid = CID.parse(key)
    if (cid.code !== DAG_CBOR || skip.has(key)) continue
    if ((decodeCbor(bytes, MAX_RECORD_BYTES, 'record') as { kind?: unknown } | null)?.kind !== RECORD_KIND) continue
    const record = decodeRecord(bytes)
    if (!record.payload.equals(header.payload)) reject('E_RECORD', 'record.payload', 'names other weights than the candidate\'s payload')
    if (!record.base.equals(header.supersedes)) reject('E_RECORD', 'record.base', 'names another base than the candidate supersedes')
    if (record.expert !== header.expert_name) reject('E_RECORD', 'record.expert', `names ${record.expert}, the candidate is ${header.expert_name}`)
    return { cid, bytes, record }
  }
  return null
}

export interface SubmissionParts {
  readonly header: Uint8Array
  /** The payload: document bytes (chains A, C, D) or the parameter payload (chain B). */
  readonly payload: Uint8Array
  readonly certificate?: Uint8Array
  /** Bytes of each file the document links (tokenizer, dataset content). */
  readonly files?: readonly Uint8Array[]
  /** DAG-CBOR documents the document links (a decision's gate report), each a block of its own. */
  readonly documents?: readonly Uint8Array[]
}

/** Write a submission CAR. */
export async function encodeSubmission(parts: SubmissionParts): Promise<Uint8Array> {
  // Only the chain matters here (file or document payload); judging the header is the node's job,
  // so a client can even submit a header the rules will refuse.
  const chain = (decodeCbor(parts.header, MAX_SUBMISSION_BYTES, 'header') as { chain_id?: unknown } | null)?.chain_id
  const headerCid = cidOf(parts.header, DAG_CBOR)
  const blocks = new Map<string, { cid: CID; bytes: Uint8Array }>()
  const add = (cid: CID, bytes: Uint8Array): void => void blocks.set(cid.toString(), { cid, bytes })
  add(headerCid, parts.header)
  const addFile = async (bytes: Uint8Array): Promise<void> => {
    const file = await importPayload(bytes)
    for (const [key, block] of file.blocks) add(CID.parse(key), block)
  }
  if (chain === 'B') await addFile(parts.payload)
  else add(cidOf(parts.payload, DAG_CBOR), parts.payload)
  for (const file of parts.files ?? []) await addFile(file)
  for (const doc of parts.documents ?? []) add(cidOf(doc, DAG_CBOR), doc)
  const roots = [headerCid]
  if (parts.certificate !== undefined) {
    const certCid = cidOf(parts.certificate, DAG_CBOR)
    add(certCid, parts.certificate)
    roots.push(certCid)
  }
  return writeCar(roots, blocks.values())
}

/** A CARv1 of `blocks` under `roots`, in memory. Writes what it is given: checking is the reader's job. */
export async function writeCar(roots: readonly CID[], blocks: Iterable<{ readonly cid: CID; readonly bytes: Uint8Array }>): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create([...roots])
  const chunks: Uint8Array[] = []
  const collected = (async () => {
    for await (const chunk of out) chunks.push(chunk)
  })()
  for (const { cid, bytes } of blocks) await writer.put({ cid, bytes })
  await writer.close()
  await collected
  return concatBytes(...chunks)
}

/**
 * Read a submission CAR: every block hashes to its CID (E_CAR), the roots name the header and the
 * certificate (E_CAR), and the payload is complete (E_INCOMPLETE). The header itself is judged later,
 * by validateBlock.
 */
export async function decodeSubmission(car: Uint8Array, maxBytes = MAX_SUBMISSION_BYTES): Promise<Submission> {
  if (car.length > maxBytes) reject('E_TOO_LARGE', 'car', `${car.length} bytes, limit ${maxBytes}`)
  const blocks = new Map<string, Uint8Array>()
  let roots: CID[]
  try {
    const reader = await CarReader.fromBytes(car)
    roots = await reader.getRoots()
    for await (const { cid, bytes } of reader.blocks()) {
      const key = cid.toString()
      if (!isProtocolCid(cid, [DAG_CBOR, DAG_PB, RAW])) reject('E_CAR', key, 'blocks are CIDv1 sha2-256 dag-cbor, dag-pb or raw')
      if (!cidMatches(cid, bytes)) reject('E_CAR', key, 'bytes do not hash to the CID')
      if (blocks.has(key)) reject('E_CAR', key, 'block repeated')
      blocks.set(key, bytes)
    }
  } catch (e) {
    if (e instanceof Error && e.name === 'RuleError') throw e
    reject('E_CAR', 'car', e instanceof Error ? e.message : String(e))
  }
  if (roots.length < 1 || roots.length > 2) reject('E_CAR', 'roots', 'roots are the header CID, then the certificate CID if any')
  const get = (cid: CID): Uint8Array | undefined => blocks.get(cid.toString())
  const headerBytes = get(roots[0] as CID)
  if (headerBytes === undefined) reject('E_CAR', 'roots[0]', 'the header block is not in the CAR')
  const header = decodeHeader(headerBytes)
  let payload: Uint8Array
  if (header.chain_id === 'B') {
    payload = readUnixfsFile(header.payload, get, MAX_PARAM_PAYLOAD_BYTES).bytes
  } else {
    const doc = get(header.payload)
    if (doc === undefined) reject('E_INCOMPLETE', 'payload', `document block ${header.payload} is not in the CAR`)
    payload = doc
  }
  let certificate: Uint8Array | undefined
  if (roots.length === 2) {
    certificate = get(roots[1] as CID)
    if (certificate === undefined || roots[1]?.code !== DAG_CBOR) reject('E_CAR', 'roots[1]', 'the certificate block is not in the CAR')
  }
  const input: FullBlockInput = certificate === undefined ? { header: headerBytes, payload } : { header: headerBytes, payload, certificate }
  return { input, blocks }
}

/**
 * After validateBlock accepted `block`: the files its document links are whole and of the stated
 * size (E_INCOMPLETE), and the submission holds no block that neither the header, the payload, the
 * certificate nor a linked file uses (E_CAR).
 */
export function checkSubmissionBlocks(block: AcceptedBlock, blocks: ReadonlyMap<string, Uint8Array>): void {
  const get = (cid: CID): Uint8Array | undefined => blocks.get(cid.toString())
  const used = new Set<string>([block.cid.toString()])
  const h = block.header
  if (h.chain_id === 'B') for (const cid of readUnixfsFile(h.payload, get, MAX_PARAM_PAYLOAD_BYTES).cids) used.add(cid.toString())
  else used.add(h.payload.toString())
  if (block.certificate !== null) used.add(block.certificate.cid.toString())
  for (const file of linkedFiles(block)) {
    const { bytes, cids } = readUnixfsFile(file.cid, get, MAX_LINKED_FILE_BYTES)
    if (bytes.length !== file.size) reject('E_INCOMPLETE', file.field, `file has ${bytes.length} bytes, the document says ${file.size}`)
    for (const cid of cids) used.add(cid.toString())
  }
  for (const doc of linkedDocuments(block)) {
    if (get(doc.cid) === undefined) reject('E_INCOMPLETE', doc.field, `document ${doc.cid} is not in the CAR`)
    used.add(doc.cid.toString())
  }
  // A candidate (no certificate yet) brings its training record for the validators.
  if (block.certificate === null) {
    const record = trainingRecordIn(h, blocks, null)
    if (record !== null) used.add(record.cid.toString())
  }
  for (const key of blocks.keys()) if (!used.has(key)) reject('E_CAR', key, 'block not used by this submission')
}
