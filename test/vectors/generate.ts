/**
 * Protocol test vectors: built deterministically from the test devnet (fixed keys, fixed clock,
 * RFC 6979 signatures, seeded weights) and written to test/vectors/protocol.json.
 *
 * `npm run vectors` rewrites the file; test/chain/vectors.test.ts rebuilds the vectors and fails if
 * they differ from the committed file, so any change to an encoding is a deliberate, visible one.
 */
import { PROTOCOLS, encodeBlockAnnouncement, encodeRequest, encodeResponseHead, encodeStatus, topicsOf } from '../../relay/p2p/messages.ts'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { sha256 } from '@noble/hashes/sha2.js'
import type { CID } from 'multiformats/cid'
import { RAW, cidOf, fromHex, toHex } from '../../src/codec/cbor.ts'
import { encodeReport } from '../../src/pol/gate.ts'
import { batchOrderHash, encodeRecord } from '../../src/chain/record.ts'
import { batchOrder } from '../../src/model/random.ts'
import { assembleCheckpoint, checkpointBodyBytes, checkpointId, encodeCheckpoint, signCheckpoint } from '../../src/chain/checkpoint.ts'
import { publicKeyOf, signMessage } from '../../src/chain/keys.ts'
import { DEFAULT_GATE, quorumSize } from '../../src/chain/meta.ts'
import { attemptTerms, leaseMessage } from '../../src/pol/job.ts'
import { signingBytes } from '../../src/chain/header.ts'
import { encodeDataset } from '../../src/chain/dataset.ts'
import { encodeParamIndex, paramIndexDocument } from '../../src/chain/paramindex.ts'
import { buildPayload } from '../../src/tensor/payload.ts'
import { encodeTensorBlock } from '../../src/tensor/tensorblock.ts'
import { extractTilePath, importPayload, tileCount } from '../../src/tensor/tiles.ts'
import { Devnet, submissionCar } from '../fixtures/devnet.ts'
import { CarReader } from '@ipld/car'
import type { DType } from '../../src/tensor/tblock.ts'

export interface HeaderVector {
  name: string
  chain_id: string
  block_type: string
  dag_cbor_hex: string
  cid: string
  signing_bytes_hex: string
  /** 33-byte compressed secp256k1 key. */
  pubkey_hex: string
  /** Test key only: lets another implementation reproduce the RFC 6979 signature. */
  secret_key_hex: string
  /** 64-byte r || s, low-S. */
  signature_hex: string
  difficulty: number
  nonce: number
}

export interface TensorBlockVector {
  name: string
  header_hex: string
  bytes_hex: string
  dtype: DType
  shape: number[]
  values: number[]
}

export interface PayloadVector {
  name: string
  /** How the bytes were made, when they are too long to list. */
  recipe?: string
  bytes_hex?: string
  bytes_sha256?: string
  size: number
  root_cid: string
  tile_cids: string[]
}

export interface DocumentVector {
  name: string
  kind: string
  dag_cbor_hex: string
  cid: string
}

export interface SubmissionVector {
  name: string
  /** The whole submission CAR (CARv1). */
  car_hex: string
  roots: string[]
  /** CIDs of the blocks in the CAR, in order. */
  blocks: string[]
}

export interface CheckpointVector {
  name: string
  number: number
  /** What each validator signs: sha256 of these bytes (the checkpoint without `signatures`). */
  body_hex: string
  /** The checkpoint's id: the CID of body_hex. */
  id: string
  /** The checkpoint as it travels and is stored, with its signatures. */
  dag_cbor_hex: string
  cid: string
  /** Each signer, in the document's order (ascending by key); test keys only. */
  signers: { pubkey_hex: string; secret_key_hex: string; signature_hex: string }[]
  /** Size of the signing set, and the quorum (more than 2/3) a final checkpoint needs. */
  validators: number
  quorum: number
}

export interface LeaseVector {
  name: string
  job: string
  miner_hex: string
  secret_key_hex: string
  at: number
  action: 'lease' | 'release'
  /** The UTF-8 text signed (sha256 of it). */
  message: string
  signature_hex: string
  /** The JSON body of POST|DELETE /api/jobs/<job>/lease. */
  body: string
}

/** Where an attempt at a job trains (docs/protocol.md §15 Attempts, src/pol/job.ts attemptTerms). */
export interface AttemptVector {
  name: string
  base: string
  base_bytes_hex: string
  miner_hex: string
  attempt: number
  /** The sha256 input: UTF-8 "blyan-attempt/1" ‖ base CID bytes ‖ key ‖ uint32be(attempt). */
  input_hex: string
  start: number
  seed: number
}

export interface ProtocolVectors {
  description: string
  headers: HeaderVector[]
  documents: DocumentVector[]
  tensorblocks: TensorBlockVector[]
  payloads: PayloadVector[]
  submissions: SubmissionVector[]
  checkpoints: CheckpointVector[]
  leases: LeaseVector[]
  attempts: AttemptVector[]
  peer: PeerMessageVector[]
}

/** Tile CIDs of a payload, in byte order, read from its own UnixFS DAG. */
async function tileCids(bytes: Uint8Array): Promise<{ root: CID; tiles: string[] }> {
  const { cid, blocks } = await importPayload(bytes)
  const get = async (c: CID): Promise<Uint8Array> => blocks.get(c.toString()) as Uint8Array
  const tiles: string[] = []
  for (let t = 0; t < tileCount(bytes.length); t++) {
    const path = await extractTilePath(cid, t, get)
    tiles.push(cidOf(path.blocks[path.blocks.length - 1] as Uint8Array, RAW).toString())
  }
  return { root: cid, tiles }
}

/** Signer of each devnet block, by role. */
function signerOf(d: Devnet, name: string): Uint8Array {
  return name === 'transfer' || name === 'expert0.0v1' ? d.miner : (d.validators[0] as Uint8Array)
}

export async function buildVectors(): Promise<ProtocolVectors> {
  const d = await Devnet.standard()
  const headers: HeaderVector[] = []
  for (const [name, built] of d.built) {
    const h = built.sealed.header
    headers.push({
      name,
      chain_id: h.chain_id,
      block_type: h.block_type,
      dag_cbor_hex: toHex(built.sealed.bytes),
      cid: built.sealed.cid.toString(),
      signing_bytes_hex: toHex(signingBytes(h)),
      pubkey_hex: toHex(h.miner_pub),
      secret_key_hex: toHex(signerOf(d, name)),
      signature_hex: toHex(h.payload_sig),
      difficulty: h.difficulty,
      nonce: h.nonce
    })
  }

  const documents: DocumentVector[] = []
  const doc = (name: string, kind: string, bytes: Uint8Array): void => {
    documents.push({ name, kind, dag_cbor_hex: toHex(bytes), cid: cidOf(bytes).toString() })
  }
  doc('genesis meta', 'blyan/meta', d.built.get('genesis')!.input.payload)
  doc('train dataset', 'blyan/dataset', d.built.get('train')!.input.payload)
  // a dataset linking a training record (a genesis devnet's datasets do): both files are UnixFS files
  const content = await importPayload(new TextEncoder().encode('Once upon a time.\n\nThe end.\n'))
  const record = new TextEncoder().encode('{"kind":"blyan/genesis-record","version":1}\n')
  doc('dataset with a training record', 'blyan/dataset', encodeDataset({
    kind: 'blyan/dataset', version: 1, name: 'genesis-train', license: 'MIT', split: 'train', format: 'text/plain; blank-line-separated',
    content: content.cid, content_size: 29, description: 'a training pool', record: (await importPayload(record)).cid, record_size: record.length
  }))
  doc('approval of the validation dataset (gold, 3 of 4 validators)', 'blyan/dataset-decision', d.built.get('approve-validation')!.input.payload)
  // A gate report as a node writes it (src/pol/gate.ts): fixed values, every field present.
  doc('gate report (a training pool rejected for duplicates)', 'blyan/dataset-report', encodeReport({
    kind: 'blyan/dataset-report', version: 1, dataset: d.cid('train'), role: 'train', params: DEFAULT_GATE,
    references: [d.cid('validation')],
    checks: [
      { name: 'size', value: 28, limit: DEFAULT_GATE.max_bytes, pass: true, detail: `28 bytes, at most ${DEFAULT_GATE.max_bytes}` },
      { name: 'utf8', value: 0, limit: 0, pass: true, detail: 'UTF-8 text' },
      { name: 'documents', value: 2, limit: 16, pass: false, detail: '2 documents, at least 16' },
      { name: 'duplicates', value: 0.5, limit: 0.05, pass: false, detail: '1 of 2 documents repeat an approved pool\'s or an earlier one (50.00%, at most 5.00%)' }
    ],
    pass: false
  }))
  // A training record (src/chain/record.ts) with small, fixed values: an encoding example.
  const names = ['embedding', 'router0', 'expert0.0', 'expert0.1', 'router1', 'expert1.0', 'expert1.1']
  const text = (s: string): Uint8Array => sha256(new TextEncoder().encode(s))
  doc('training record (2 steps on the CPU reference)', 'blyan/training-record', encodeRecord({
    kind: 'blyan/training-record', version: 2, expert: 'layer0.expert0', base: d.cid('expert0.0'),
    payload: d.built.get('expert0.0v1')!.sealed.header.payload,
    model: Object.fromEntries(names.map((n) => [n === 'embedding' ? 'embedding' : n.startsWith('router') ? `layer${n.slice(6)}.router` : `layer${n[6]}.expert${n[8]}`, d.cid(n)])),
    dataset: d.cid('train'), start: 5, count: 4, seq_len: 16, seed: 7, attempt: 0, steps: 2, batch_size: 2, learning_rate: 0.002,
    batch_order: batchOrderHash(batchOrder(4, 2, 2, 7)), backend: 'cpu', losses: [2.5, 2.25],
    step_hashes: [text('step 0'), text('step 1')], weights: text('weights')
  }))
  doc('reward', 'blyan/reward', d.built.get('reward')!.input.payload)
  doc('transfer', 'blyan/transfer', d.built.get('transfer')!.input.payload)
  doc('certificate of expert0.0v1', 'blyan/pol-certificate', d.built.get('expert0.0v1')!.input.certificate!)
  doc('param index', 'blyan/param-index', encodeParamIndex(paramIndexDocument(d.chain.paramIndex())).bytes)

  const tb = (name: string, dtype: DType, shape: number[], values: number[]): TensorBlockVector => {
    const bytes = encodeTensorBlock(Float32Array.from(values), shape, dtype)
    return { name, header_hex: toHex(bytes.subarray(0, 128)), bytes_hex: toHex(bytes), dtype, shape, values }
  }
  const tensorblocks = [
    tb('fp32 2x3', 'fp32', [2, 3], [1, -2, 0.5, 3.25, 0, -0.125]),
    tb('fp16 vector', 'fp16', [5], [1, -2.5, 65504, 0.0001, 0.333333]),
    tb('int8 3x4 per-row scales', 'int8', [3, 4], [0.5, -1, 0.25, 0.125, 10, 20, -30, 40, 0, 0, 0, 0])
  ]

  const payloads: PayloadVector[] = []
  const small = d.built.get('embedding')!.input.payload
  const smallTiles = await tileCids(small)
  payloads.push({ name: 'devnet embedding (one tile)', bytes_hex: toHex(small), size: small.length, root_cid: smallTiles.root.toString(), tile_cids: smallTiles.tiles })
  const rows = 600
  const cols = 256
  const ramp = new Float32Array(rows * cols).map((_, i) => ((i % 1000) - 500) / 256)
  const big = buildPayload([{ name: 'ramp', values: ramp, shape: [rows, cols], dtype: 'fp32' }])
  const bigTiles = await tileCids(big)
  payloads.push({
    name: 'ramp (three tiles)',
    recipe: 'buildPayload of one fp32 tensor "ramp", shape [600, 256], values[i] = ((i mod 1000) - 500) / 256',
    bytes_sha256: toHex(sha256(big)),
    size: big.length,
    root_cid: bigTiles.root.toString(),
    tile_cids: bigTiles.tiles
  })

  const submissions: SubmissionVector[] = []
  for (const name of ['transfer', 'reward']) {
    const car = await submissionCar(d.built.get(name)!)
    const reader = await CarReader.fromBytes(car)
    const blocks: string[] = []
    for await (const { cid } of reader.blocks()) blocks.push(cid.toString())
    submissions.push({ name, car_hex: toHex(car), roots: (await reader.getRoots()).map(String), blocks })
  }

  // Finality: checkpoint 0 over the standard devnet's heads, signed by 3 of its 4 validators (the quorum),
  // and one validator's vote for the same body (a vote is the same document with fewer signatures).
  const body = d.checkpointBody()
  const checkpoint = (name: string, signers: number): CheckpointVector => {
    const keys = d.validators.slice(0, signers)
    const cp = assembleCheckpoint(body, keys.map((k) => signCheckpoint(body, k)))
    const bytes = encodeCheckpoint(cp)
    const secretOf = (pub: Uint8Array): Uint8Array => keys.find((k) => toHex(publicKeyOf(k)) === toHex(pub)) as Uint8Array
    return {
      name, number: cp.number, body_hex: toHex(checkpointBodyBytes(body)), id: checkpointId(body).toString(), dag_cbor_hex: toHex(bytes), cid: cidOf(bytes).toString(),
      signers: cp.signatures.map((s) => ({ pubkey_hex: toHex(s.validator), secret_key_hex: toHex(secretOf(s.validator)), signature_hex: toHex(s.signature) })),
      validators: d.meta.validators.length, quorum: quorumSize(d.meta.validators.length)
    }
  }
  const checkpoints = [checkpoint('checkpoint 0 (3 of 4 validators: final)', 3), checkpoint('a vote for checkpoint 0 (1 signature)', 1)]

  // Job leases: a request signed by the miner, `at` its sequence number.
  const lease = (name: string, action: 'lease' | 'release', at: number): LeaseVector => {
    const job = '0123456789abcdef'
    const miner = toHex(publicKeyOf(d.miner))
    const message = leaseMessage(job, miner, at, action)
    const signature = toHex(signMessage(message, d.miner))
    return { name, job, miner_hex: miner, secret_key_hex: toHex(d.miner), at, action, message: new TextDecoder().decode(message), signature_hex: signature, body: JSON.stringify({ miner, at, signature }) }
  }
  const leases = [lease('lease', 'lease', 1796083200000), lease('release', 'release', 1796083260000)]

  // Attempts: a base (the raw CID of a short text), a key, two attempt numbers.
  const attemptBase = cidOf(new TextEncoder().encode('layer0.expert0 v0'), RAW)
  const attemptKey = '02' + '11'.repeat(32)
  const attempt = (n: number): AttemptVector => {
    const input = Uint8Array.from([...new TextEncoder().encode('blyan-attempt/1'), ...attemptBase.bytes, ...fromHex(attemptKey), n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255])
    const t = attemptTerms(attemptBase, attemptKey, n)
    return { name: `attempt ${n}`, base: attemptBase.toString(), base_bytes_hex: toHex(attemptBase.bytes), miner_hex: attemptKey, attempt: n, input_hex: toHex(input), start: t.start, seed: t.seed }
  }
  const attempts = [attempt(0), attempt(3)]

  // The peer network (§18): a gossiped block, a status answer, the three requests and an answer's head.
  const transferCar = await submissionCar(d.built.get('transfer')!)
  const genesisCid = d.cid('genesis')
  const peer = (name: string, bytes: Uint8Array, extra: Record<string, string> = {}): PeerMessageVector => ({ name, dag_cbor_hex: toHex(bytes), ...extra })
  const transfer = d.chain.get(d.cid('transfer'))!
  const peerMessages = [
    peer('block announcement of the transfer, with its submission CAR', encodeBlockAnnouncement(d.built.get('transfer')!.input.header, transferCar), { topic: topicsOf(genesisCid).blocks }),
    peer('block announcement of the transfer, header only', encodeBlockAnnouncement(d.built.get('transfer')!.input.header, null), { topic: topicsOf(genesisCid).blocks }),
    peer('status of a relay', encodeStatus({
      genesis: genesisCid, heads: { A: { cid: genesisCid, index: 0 }, C: { cid: transfer.cid, index: transfer.header.index } }, checkpoint: 0, blocks: 12, validator: null,
      relays: ['http://127.0.0.1:8080']
    }), { protocol: PROTOCOLS.status }),
    peer('blocks by range: chain B heights 0..63, payload tiles left to bitswap', encodeRequest({ kind: 'blyan/blocks-by-range', version: 1, chain: 'B', from: 0, count: 64, files: false }), { protocol: PROTOCOLS.blocksByRange }),
    peer('blocks by root: the transfer', encodeRequest({ kind: 'blyan/blocks-by-root', version: 1, roots: [transfer.cid], files: true }), { protocol: PROTOCOLS.blocksByRoot }),
    peer('checkpoints from number 0', encodeRequest({ kind: 'blyan/checkpoints', version: 1, from: 0, count: 256 }), { protocol: PROTOCOLS.checkpoints }),
    peer('answer head: 1 item follows', encodeResponseHead('ok', 1)),
    peer('answer head: refused, over the request budget', encodeResponseHead('rate_limited', 0, 'over 50 requests/s'))
  ]

  return {
    description: 'Blyan protocol test vectors (docs/protocol.md). Test keys: sha256("blyan test key <role>"). Regenerate with `npm run vectors`.',
    headers,
    documents,
    tensorblocks,
    payloads,
    submissions,
    checkpoints,
    leases,
    attempts,
    peer: peerMessages
  }
}

export interface PeerMessageVector {
  name: string
  dag_cbor_hex: string
  topic?: string
  protocol?: string
}

export const VECTORS_PATH = fileURLToPath(new URL('./protocol.json', import.meta.url))

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const vectors = await buildVectors()
  writeFileSync(VECTORS_PATH, JSON.stringify(vectors, null, 2) + '\n')
  console.log(`wrote ${VECTORS_PATH}: ${vectors.headers.length} headers, ${vectors.documents.length} documents, ${vectors.tensorblocks.length} TensorBlocks, ${vectors.payloads.length} payloads, ${vectors.checkpoints.length} checkpoints, ${vectors.leases.length} lease requests, ${vectors.peer.length} peer messages`)
}
