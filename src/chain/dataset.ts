/**
 * Chain D documents: datasets used to train experts and to evaluate them for PoL.
 *
 * The data itself is a UnixFS file (`content`); the block records what it is, under which licence,
 * and which role it plays. Text datasets are UTF-8 with sequences separated by a blank line.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { DAG_PB, RAW, decodeCbor, encodeCbor, isProtocolCid } from '../codec/cbor.ts'
import { MAX_DOCUMENT_BYTES } from './header.ts'
import * as S from '../codec/schema.ts'

export const DATASET_KIND = 'blyan/dataset'
export const DATASET_VERSION = 1
export type DatasetSplit = 'train' | 'validation'
export const DATASET_SPLITS: readonly DatasetSplit[] = Object.freeze(['train', 'validation'])

export interface DatasetDocument {
  readonly kind: typeof DATASET_KIND
  readonly version: typeof DATASET_VERSION
  /** Short identifier, e.g. `tinystories-train`. */
  readonly name: string
  /** SPDX licence identifier, e.g. `CDLA-Sharing-1.0`. */
  readonly license: string
  /** Training shards, or the public validation pool PoL slices are drawn from. */
  readonly split: DatasetSplit
  readonly format: 'text/plain; blank-line-separated'
  /** The data: a UnixFS file. */
  readonly content: CID
  readonly content_size: number
  readonly description: string
  /**
   * Optional, with record_size: a UnixFS file recording how a model was trained on this data (a
   * genesis devnet links its JSON training record here; relay/genesis/genesis.ts GenesisRecord).
   */
  readonly record?: CID
  readonly record_size?: number
}

const KEYS = ['kind', 'version', 'name', 'license', 'split', 'format', 'content', 'content_size', 'description'] as const
const RECORD_KEYS = [...KEYS, 'record', 'record_size'] as const

export function encodeDataset(doc: DatasetDocument): Uint8Array {
  return encodeCbor(doc)
}

/** Decode and check a dataset document (E_DATASET). */
export function decodeDataset(bytes: Uint8Array): DatasetDocument {
  const raw = decodeCbor(bytes, MAX_DOCUMENT_BYTES, 'payload')
  const withRecord = typeof raw === 'object' && raw !== null && Object.hasOwn(raw, 'record')
  const o = S.exactMap(raw, withRecord ? RECORD_KEYS : KEYS, 'payload', 'E_DATASET')
  const p = 'payload'
  if (o['kind'] !== DATASET_KIND) reject('E_DATASET', 'payload.kind', `expected "${DATASET_KIND}"`)
  if (S.uint(o, 'version', p, undefined, 'E_DATASET') !== DATASET_VERSION) reject('E_VERSION', 'payload.version', `dataset version ${String(o['version'])}`)
  const content = S.cid(o, 'content', p, 'E_DATASET')
  if (!isProtocolCid(content, [DAG_PB, RAW])) reject('E_DATASET', 'payload.content', 'a UnixFS file CID (dag-pb or raw, sha2-256, v1)')
  const size = S.uint(o, 'content_size', p, undefined, 'E_DATASET')
  if (size === 0) reject('E_DATASET', 'payload.content_size', 'must be positive')
  let record: { record: CID; record_size: number } | null = null
  if (withRecord) {
    const cid = S.cid(o, 'record', p, 'E_DATASET')
    if (!isProtocolCid(cid, [DAG_PB, RAW])) reject('E_DATASET', 'payload.record', 'a UnixFS file CID (dag-pb or raw, sha2-256, v1)')
    const recordSize = S.uint(o, 'record_size', p, undefined, 'E_DATASET')
    if (recordSize === 0) reject('E_DATASET', 'payload.record_size', 'must be positive')
    record = { record: cid, record_size: recordSize }
  }
  return Object.freeze({
    kind: DATASET_KIND,
    version: DATASET_VERSION,
    name: S.str(o, 'name', p, 64, /^[a-z0-9][a-z0-9._-]*$/, 'E_DATASET'),
    license: S.str(o, 'license', p, 64, /^[A-Za-z0-9.+-]+$/, 'E_DATASET'),
    split: S.oneOf(o, 'split', p, DATASET_SPLITS, 'E_DATASET'),
    format: S.oneOf(o, 'format', p, ['text/plain; blank-line-separated'] as const, 'E_DATASET'),
    content,
    content_size: size,
    description: S.str(o, 'description', p, 4096, undefined, 'E_DATASET'),
    ...(record ?? {})
  })
}
