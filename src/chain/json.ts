/**
 * JSON views of protocol objects, for the relay API and the explorer: CIDs become their base32
 * string, byte strings lowercase hex, bigints decimal strings. One-way: clients verify the DAG-CBOR
 * bytes (served alongside), never this view.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { toHex } from '../codec/cbor.ts'
import type { AcceptedBlock } from './view.ts'

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** Convert any decoded protocol value to JSON. */
export function toJson(value: unknown): Json {
  if (value === null || value === undefined) return null
  if (typeof value === 'boolean' || typeof value === 'number' || typeof value === 'string') return value
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return toHex(value)
  const cid = CID.asCID(value)
  if (cid !== null) return cid.toString()
  if (Array.isArray(value)) return value.map(toJson)
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), toJson(v)]))
  if (typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]))
  throw new TypeError(`toJson: cannot represent ${typeof value}`)
}

/** An accepted block as the API shows it: header fields, derived facts, and the header bytes to verify. */
export function blockToJson(block: AcceptedBlock): { [key: string]: Json } {
  return {
    cid: block.cid.toString(),
    header: toJson(block.header),
    header_hex: toHex(block.bytes),
    meta: block.meta.toString(),
    work: block.work.toString(),
    expert_version: block.expertVersion,
    document: toJson(block.document),
    tensors: block.tensors === null ? null : toJson(block.tensors.tensors),
    certificate: block.certificate === null ? null : { cid: block.certificate.cid.toString(), ...(toJson(block.certificate.value) as { [key: string]: Json }) }
  }
}
