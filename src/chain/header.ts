/**
 * Block headers: schema, DAG-CBOR encoding, CID, signing bytes.
 *
 * A header is a DAG-CBOR map with exactly the 17 keys of {@link HEADER_KEYS}; a field that does not
 * apply to a block holds `null`, so the key set never varies. Its identity is its CIDv1
 * (dag-cbor, sha2-256). The signing bytes are the DAG-CBOR encoding of the header without
 * `payload_sig` and `nonce`, so a miner signs once and then searches the nonce for PoW.
 *
 * `decodeHeader` enforces every rule that needs nothing but the header itself; rules that need other
 * blocks live in validate.ts.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { DAG_CBOR, DAG_PB, RAW, cidOf, compareCids, decodeCbor, encodeCbor, isProtocolCid } from '../codec/cbor.ts'
import { isValidPublicKey } from './keys.ts'
import * as S from '../codec/schema.ts'

/** Header format version this code reads and writes. */
export const HEADER_VERSION = 1
/** Largest header accepted, in bytes (a header with 64 dependencies is about 2.7 KiB). */
export const MAX_HEADER_BYTES = 16 * 1024
/** Most entries `depends_on` may hold. */
export const MAX_DEPENDENCIES = 64
/** Largest payload of a DAG-CBOR document block (chains A, C, D). */
export const MAX_DOCUMENT_BYTES = 1024 * 1024
/** Largest parameter payload (chain B), 2 GiB - 1: what a browser ArrayBuffer can hold. */
export const MAX_PARAM_PAYLOAD_BYTES = 2 ** 31 - 1
/** Highest difficulty a header may state (bits of a 256-bit digest). */
export const MAX_DIFFICULTY = 256

export type ChainId = 'A' | 'B' | 'C' | 'D'
export const CHAIN_IDS: readonly ChainId[] = Object.freeze(['A', 'B', 'C', 'D'])

/** Block types allowed on each chain. */
export const BLOCK_TYPES = Object.freeze({
  A: Object.freeze(['meta'] as const),
  B: Object.freeze(['embedding', 'router', 'expert'] as const),
  C: Object.freeze(['transfer', 'reward'] as const),
  D: Object.freeze(['dataset', 'decision'] as const)
})
export type MetaBlockType = (typeof BLOCK_TYPES.A)[number]
export type ParamBlockType = (typeof BLOCK_TYPES.B)[number]
export type LedgerBlockType = (typeof BLOCK_TYPES.C)[number]
export type DatasetBlockType = (typeof BLOCK_TYPES.D)[number]
export type BlockType = MetaBlockType | ParamBlockType | LedgerBlockType | DatasetBlockType

/** Every header key, in the order docs/protocol.md lists them. */
export const HEADER_KEYS = Object.freeze([
  'version', 'chain_id', 'index', 'prev', 'depends_on', 'block_type', 'expert_name', 'layer_id',
  'payload', 'payload_size', 'timestamp', 'nonce', 'difficulty', 'miner_pub', 'payload_sig',
  'supersedes', 'pol'
] as const)
export type HeaderKey = (typeof HEADER_KEYS)[number]
/** Keys left out of the signing bytes. */
export const UNSIGNED_KEYS: readonly HeaderKey[] = Object.freeze(['payload_sig', 'nonce'])

interface HeaderFields {
  /** Header format version, 1. */
  readonly version: 1
  /** Height: linear chains count from 0 at the chain's first block; on chain B, 1 + the highest B dependency (0 without one). */
  readonly index: number
  /** Previous block of the same linear chain (A, C, D); null for index 0 and on chain B. */
  readonly prev: CID | null
  /**
   * Blocks this one builds on, strictly ascending by CID bytes: the chain A meta block, and on chain B
   * its parameter dependencies. A chain A block names at most one: the chain D block in force under it.
   */
  readonly depends_on: readonly CID[]
  /** The payload: a DAG-CBOR document (chains A, C, D) or a UnixFS file of TensorBlocks (chain B). */
  readonly payload: CID
  /** Payload length in bytes (for UnixFS: the file length, not the DAG size). */
  readonly payload_size: number
  /** Milliseconds since the Unix epoch, UTC. */
  readonly timestamp: number
  /** PoW nonce, a safe integer; not signed. */
  readonly nonce: number
  /** Leading zero bits the CID digest must have. */
  readonly difficulty: number
  /** Signer: 33-byte compressed secp256k1 public key. */
  readonly miner_pub: Uint8Array
  /** 64-byte compact (r || s, low-S) ECDSA signature over sha256(signing bytes). */
  readonly payload_sig: Uint8Array
  /** Chain B: the earlier version of the same expert this block replaces (also listed in depends_on). */
  readonly supersedes: CID | null
  /** Chain C rewards: the PoL certificate being rewarded. */
  readonly pol: CID | null
}

/** Chain A: network rules (architecture, PoW, PoL, rewards, validator set). */
export interface MetaHeader extends HeaderFields {
  readonly chain_id: 'A'
  readonly block_type: MetaBlockType
  readonly expert_name: null
  readonly layer_id: null
}
/** Chain B: model parameters, one block per expert, per layer router, or the embedding. */
export interface ParamHeader extends HeaderFields {
  readonly chain_id: 'B'
  readonly block_type: ParamBlockType
  /** `embedding`, `layer<L>.router` or `layer<L>.expert<E>`. */
  readonly expert_name: string
  /** L for router and expert blocks, null for the embedding. */
  readonly layer_id: number | null
}
/** Chain C: ledger (transfers, PoL rewards). */
export interface LedgerHeader extends HeaderFields {
  readonly chain_id: 'C'
  readonly block_type: LedgerBlockType
  readonly expert_name: null
  readonly layer_id: null
}
/** Chain D: datasets proposed (`dataset`) and the validators' decisions on them (`decision`). */
export interface DatasetHeader extends HeaderFields {
  readonly chain_id: 'D'
  readonly block_type: DatasetBlockType
  readonly expert_name: null
  readonly layer_id: null
}
export type Header = MetaHeader | ParamHeader | LedgerHeader | DatasetHeader
/** A header before signing and PoW. */
export type UnsignedHeader = Omit<Header, 'payload_sig' | 'nonce'>

// ---------------------------------------------------------------------------------------------
// Expert names

export const EMBEDDING_NAME = 'embedding'
export const routerName = (layer: number): string => `layer${layer}.router`
export const expertName = (layer: number, expert: number): string => `layer${layer}.expert${expert}`

export type ParsedName =
  | { readonly kind: 'embedding' }
  | { readonly kind: 'router'; readonly layer: number }
  | { readonly kind: 'expert'; readonly layer: number; readonly expert: number }

const NAME_RE = /^(?:embedding|layer(0|[1-9]\d{0,4})\.(?:router|expert(0|[1-9]\d{0,4})))$/

/** Parse an expert name; null when it is not one of the three forms (no leading zeros). */
export function parseExpertName(name: string): ParsedName | null {
  const m = NAME_RE.exec(name)
  if (m === null) return null
  if (name === EMBEDDING_NAME) return { kind: 'embedding' }
  const layer = Number(m[1])
  return m[2] === undefined ? { kind: 'router', layer } : { kind: 'expert', layer, expert: Number(m[2]) }
}

// ---------------------------------------------------------------------------------------------
// Encoding

function toFields(h: UnsignedHeader & Partial<Pick<Header, 'payload_sig' | 'nonce'>>, signed: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = {}
  for (const key of HEADER_KEYS) {
    if (!signed && UNSIGNED_KEYS.includes(key)) continue
    o[key] = (h as Record<string, unknown>)[key]
  }
  return o
}

/** Canonical DAG-CBOR bytes of a header. */
export function encodeHeader(header: Header): Uint8Array {
  return encodeCbor(toFields(header, true))
}

/** The bytes a miner signs: DAG-CBOR of the header without `payload_sig` and `nonce`. */
export function signingBytes(header: UnsignedHeader): Uint8Array {
  return encodeCbor(toFields(header, false))
}

/** CID of encoded header bytes. */
export function headerCid(bytes: Uint8Array): CID {
  return cidOf(bytes, DAG_CBOR)
}

/**
 * Decode untrusted header bytes and enforce every rule that needs only the header.
 * Throws RuleError naming the rule and field; returns a frozen, fully typed header.
 */
export function decodeHeader(bytes: Uint8Array): Header {
  const o = S.exactMap(decodeCbor(bytes, MAX_HEADER_BYTES, 'header'), HEADER_KEYS, '')
  const version = S.uint(o, 'version', '')
  if (version !== HEADER_VERSION) reject('E_VERSION', 'version', `header version ${version}, this code reads ${HEADER_VERSION}`)
  const chainId = S.str(o, 'chain_id', '', 1)
  if (!(CHAIN_IDS as readonly string[]).includes(chainId)) reject('E_CHAIN_ID', 'chain_id', `unknown chain "${chainId}"`)
  const chain = chainId as ChainId
  const blockType = S.oneOf(o, 'block_type', '', BLOCK_TYPES[chain], 'E_BLOCK_TYPE')
  const index = S.uint(o, 'index', '')
  const prev = S.cidOrNull(o, 'prev', '')
  const deps = S.list(o, 'depends_on', '', MAX_DEPENDENCIES).map((d, i) => S.cid(S.item(d), '', `depends_on[${i}]`))
  const expertNameValue = o['expert_name'] === null ? null : S.str(o, 'expert_name', '', 64)
  const layerId = o['layer_id'] === null ? null : S.uint(o, 'layer_id', '')
  const payload = S.cid(o, 'payload', '')
  const payloadSize = S.uint(o, 'payload_size', '')
  const timestamp = S.uint(o, 'timestamp', '')
  const nonce = S.uint(o, 'nonce', '')
  const difficulty = S.uint(o, 'difficulty', '', MAX_DIFFICULTY)
  const minerPub = S.bytes(o, 'miner_pub', '', 33)
  const sig = S.bytes(o, 'payload_sig', '', 64)
  const supersedes = S.cidOrNull(o, 'supersedes', '')
  const pol = S.cidOrNull(o, 'pol', '')

  // prev and index: linear chains link to their previous block; chain B is a DAG and has no prev.
  if (chain === 'B') {
    if (prev !== null) reject('E_PREV', 'prev', 'chain B blocks have no prev')
  } else {
    if (index === 0 && prev !== null) reject('E_PREV', 'prev', 'index 0 has no prev')
    if (index > 0 && prev === null) reject('E_PREV', 'prev', `index ${index} needs a prev`)
    if (prev !== null && !isProtocolCid(prev, [DAG_CBOR])) reject('E_PREV', 'prev', 'not a dag-cbor sha2-256 CIDv1')
  }
  // depends_on: header links only, strictly ascending (one encoding per set); chain A names at most
  // one block, the chain D block whose dataset decisions are in force under it (governance.ts).
  if (chain === 'A' && deps.length > 1) reject('E_DEPS', 'depends_on', 'a chain A block names at most one dependency: its chain D block')
  deps.forEach((d, i) => {
    if (!isProtocolCid(d, [DAG_CBOR])) reject('E_DEPS', `depends_on[${i}]`, 'not a dag-cbor sha2-256 CIDv1')
    if (i > 0 && compareCids(deps[i - 1] as CID, d) >= 0) reject('E_DEPS', `depends_on[${i}]`, 'not strictly ascending')
  })
  // expert_name and layer_id name the parameters a chain B block holds.
  if (chain === 'B') {
    if (expertNameValue === null) reject('E_EXPERT_NAME', 'expert_name', 'chain B blocks name their parameters')
    const parsed = parseExpertName(expertNameValue)
    if (parsed === null || parsed.kind !== blockType) reject('E_EXPERT_NAME', 'expert_name', `"${expertNameValue}" is not a ${blockType} name`)
    const nameLayer = parsed.kind === 'embedding' ? null : parsed.layer
    if (layerId !== nameLayer) reject('E_LAYER', 'layer_id', `expert_name "${expertNameValue}" needs layer_id ${nameLayer}`)
  } else {
    if (expertNameValue !== null) reject('E_EXPERT_NAME', 'expert_name', `must be null on chain ${chain}`)
    if (layerId !== null) reject('E_LAYER', 'layer_id', `must be null on chain ${chain}`)
  }
  // payload: a document block (dag-cbor) or a UnixFS file (dag-pb root, or one raw leaf).
  const payloadCodecs = chain === 'B' ? [DAG_PB, RAW] : [DAG_CBOR]
  if (!isProtocolCid(payload, payloadCodecs)) reject('E_PAYLOAD', 'payload', `chain ${chain} payloads are sha2-256 CIDv1 with codec ${payloadCodecs.map((c) => '0x' + c.toString(16)).join(' or ')}`)
  const maxPayload = chain === 'B' ? MAX_PARAM_PAYLOAD_BYTES : MAX_DOCUMENT_BYTES
  if (payloadSize === 0 || payloadSize > maxPayload) reject('E_PAYLOAD_SIZE', 'payload_size', `must be 1..${maxPayload}`)
  if (!isValidPublicKey(minerPub)) reject('E_PUBKEY', 'miner_pub', 'not a compressed secp256k1 point')
  // supersedes: only parameters have versions; the old version must be a dependency.
  if (supersedes !== null) {
    if (chain !== 'B') reject('E_SUPERSEDES', 'supersedes', `must be null on chain ${chain}`)
    if (!deps.some((d) => d.equals(supersedes))) reject('E_SUPERSEDES', 'supersedes', 'must also be listed in depends_on')
  }
  // pol: only a reward links a PoL certificate.
  const needsPol = chain === 'C' && blockType === 'reward'
  if (needsPol && (pol === null || !isProtocolCid(pol, [DAG_CBOR]))) reject('E_POL', 'pol', 'a reward links its PoL certificate (dag-cbor CID)')
  if (!needsPol && pol !== null) reject('E_POL', 'pol', 'only chain C rewards link a PoL certificate')

  return Object.freeze({
    version: HEADER_VERSION,
    chain_id: chain,
    index,
    prev,
    depends_on: Object.freeze(deps),
    block_type: blockType,
    expert_name: expertNameValue,
    layer_id: layerId,
    payload,
    payload_size: payloadSize,
    timestamp,
    nonce,
    difficulty,
    miner_pub: minerPub,
    payload_sig: sig,
    supersedes,
    pol
  }) as Header
}
