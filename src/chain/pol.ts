/**
 * Proof-of-Learning certificates.
 *
 * Validators evaluate a candidate expert block against the version it supersedes on a validation
 * slice and, when the loss dropped by at least delta, sign the certificate body. The certificate is a
 * DAG-CBOR document named by its CID; it is handed in with the candidate (chain B accepts a new version
 * only with one) and linked from the chain C reward (`pol`).
 *
 * Each signature is over sha256 of the body: the certificate without `signatures`. A certificate
 * counts when signatures from more than 2/3 of the validator set of its `meta` block verify.
 *
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { DAG_CBOR, decodeCbor, encodeCbor, isProtocolCid } from '../codec/cbor.ts'
import type { ParamHeader } from './header.ts'
import type { SecretKey } from './keys.ts'
import type { MetaDocument } from './meta.ts'
import { checkSignatures, decodeSignatures, signBody, signaturesForEncoding, sortSignatures, type ValidatorSignature } from './quorum.ts'
import * as S from '../codec/schema.ts'

export const CERT_KIND = 'blyan/pol-certificate'
export const CERT_VERSION = 1
export const MAX_CERT_BYTES = 64 * 1024

/** Which sequences of the validation pool were evaluated. */
export interface ValidationSlice {
  /** The chain D dataset block of the validation pool. */
  readonly dataset: CID
  /** First sequence index in the pool. */
  readonly start: number
  /** Number of sequences. */
  readonly count: number
}

/** What validators sign. */
export interface CertificateBody {
  readonly kind: typeof CERT_KIND
  readonly version: typeof CERT_VERSION
  /** The chain B candidate block. */
  readonly candidate: CID
  /** The version it supersedes (its `supersedes`). */
  readonly base: CID
  /** The chain A block whose validator set and PoL parameters apply. */
  readonly meta: CID
  readonly slice: ValidationSlice
  /** Mean cross-entropy (nats per token) of the model with `base`, then with `candidate`. */
  readonly loss_before: number
  readonly loss_after: number
  /** The training record the candidate was submitted with and the validators checked (record.ts), or null for none. */
  readonly record: CID | null
  /** The training pool the record names (a chain D dataset block), whose proposer shares the reward; null without a record. */
  readonly trained_on: CID | null
}

/** A validator's signature over a certificate body (quorum.ts). */
export type CertificateSignature = ValidatorSignature

export interface Certificate extends CertificateBody {
  /** Strictly ascending by validator key. */
  readonly signatures: readonly CertificateSignature[]
}

const BODY_KEYS = ['kind', 'version', 'candidate', 'base', 'meta', 'slice', 'loss_before', 'loss_after', 'record', 'trained_on'] as const

/** The body fields alone (a Certificate passed as a body would otherwise carry its signatures). */
function bodyFields(cert: CertificateBody): Record<string, unknown> {
  const o: Record<string, unknown> = {}
  for (const k of BODY_KEYS) o[k] = cert[k]
  return o
}

/** Canonical bytes validators sign. */
export function certificateBodyBytes(body: CertificateBody): Uint8Array {
  return encodeCbor(bodyFields(body))
}

export function encodeCertificate(cert: Certificate): Uint8Array {
  return encodeCbor({ ...bodyFields(cert), signatures: signaturesForEncoding(cert.signatures) })
}

/** One validator's signature over a certificate body. */
export function signCertificate(body: CertificateBody, secretKey: SecretKey): CertificateSignature {
  return signBody(certificateBodyBytes(body), secretKey)
}

/** Assemble a certificate from signatures, sorted as the encoding requires. */
export function assembleCertificate(body: CertificateBody, signatures: readonly CertificateSignature[]): Certificate {
  return Object.freeze({ ...(bodyFields(body) as unknown as CertificateBody), signatures: sortSignatures(signatures) })
}

/** Decode certificate bytes and check their schema (E_CERT), signature order (E_CERT_SIGNER). */
export function decodeCertificate(bytes: Uint8Array): Certificate {
  const o = S.exactMap(decodeCbor(bytes, MAX_CERT_BYTES, 'certificate'), [...BODY_KEYS, 'signatures'], 'certificate', 'E_CERT')
  const p = 'certificate'
  if (o['kind'] !== CERT_KIND) reject('E_CERT', 'certificate.kind', `expected "${CERT_KIND}"`)
  if (S.uint(o, 'version', p, undefined, 'E_CERT') !== CERT_VERSION) reject('E_VERSION', 'certificate.version', `certificate version ${String(o['version'])}`)
  const links = (['candidate', 'base', 'meta'] as const).map((k) => {
    const c = S.cid(o, k, p, 'E_CERT')
    if (!isProtocolCid(c, [DAG_CBOR])) reject('E_CERT', `certificate.${k}`, 'not a block CID')
    return c
  }) as [CID, CID, CID]
  const sl = S.exactMap(o['slice'], ['dataset', 'start', 'count'], 'certificate.slice', 'E_CERT')
  const slice: ValidationSlice = Object.freeze({
    dataset: S.cid(sl, 'dataset', 'certificate.slice', 'E_CERT'),
    start: S.uint(sl, 'start', 'certificate.slice', undefined, 'E_CERT'),
    count: S.uint(sl, 'count', 'certificate.slice', 1 << 16, 'E_CERT')
  })
  if (slice.count === 0) reject('E_CERT', 'certificate.slice.count', 'must be positive')
  const lossBefore = S.finite(o, 'loss_before', p, 'E_CERT')
  const lossAfter = S.finite(o, 'loss_after', p, 'E_CERT')
  if (lossBefore <= 0 || lossAfter < 0) reject('E_CERT', 'certificate.loss_before', 'losses are non-negative, loss_before positive')
  const record = S.cidOrNull(o, 'record', p, 'E_CERT')
  if (record !== null && !isProtocolCid(record, [DAG_CBOR])) reject('E_CERT', 'certificate.record', 'not a dag-cbor document CID')
  const trainedOn = S.cidOrNull(o, 'trained_on', p, 'E_CERT')
  if ((trainedOn === null) !== (record === null)) reject('E_CERT', 'certificate.trained_on', 'names the pool of the record, and only with one')
  if (trainedOn !== null && !isProtocolCid(trainedOn, [DAG_CBOR])) reject('E_CERT', 'certificate.trained_on', 'not a block CID')
  const signatures = decodeSignatures(o, p, 'E_CERT')
  return Object.freeze({
    kind: CERT_KIND,
    version: CERT_VERSION,
    candidate: links[0],
    base: links[1],
    meta: links[2],
    slice,
    loss_before: lossBefore,
    loss_after: lossAfter,
    record,
    trained_on: trainedOn,
    signatures
  })
}

/**
 * Where a candidate's validation slice starts: the first 6 bytes, big-endian, of
 * sha256(candidate CID bytes || beacon CID bytes), the beacon being the chain A block right after the
 * candidate's rules block (the certificate's `meta`). The miner fixes the candidate, and so its CID,
 * before the beacon exists, so it cannot choose the slice; anyone can recompute it from two CIDs.
 * Sequence i of the slice is sequence (start + i) mod N of the validation pool's N (protocol.md §6).
 */
export function sliceStart(candidate: CID, beacon: CID): number {
  const joined = new Uint8Array(candidate.bytes.length + beacon.bytes.length)
  joined.set(candidate.bytes, 0)
  joined.set(beacon.bytes, candidate.bytes.length)
  const d = sha256(joined)
  let start = 0
  for (let i = 0; i < 6; i++) start = start * 256 + (d[i] as number)
  return start
}

/** The PoL acceptance rule: loss_after <= loss_before * (1 - delta). */
export function meetsThreshold(lossBefore: number, lossAfter: number, delta: number): boolean {
  return lossAfter <= lossBefore * (1 - delta)
}

/** Relative improvement (loss_before - loss_after) / loss_before. */
export function improvement(cert: CertificateBody): number {
  return (cert.loss_before - cert.loss_after) / cert.loss_before
}

/**
 * Check a certificate for a candidate under the rules of its meta block:
 * it names the candidate and its base (E_CERT), meets delta (E_POL_THRESHOLD), every signer is a
 * validator (E_CERT_SIGNER), every signature verifies (E_CERT_SIG), and they reach quorum (E_QUORUM).
 */
export function checkCertificate(cert: Certificate, candidateCid: CID, candidate: ParamHeader, meta: MetaDocument): void {
  if (!cert.candidate.equals(candidateCid)) reject('E_CERT', 'certificate.candidate', 'names another block')
  if (candidate.supersedes === null || !cert.base.equals(candidate.supersedes)) reject('E_CERT', 'certificate.base', 'is not the candidate\'s supersedes')
  if (!meetsThreshold(cert.loss_before, cert.loss_after, meta.pol.delta)) {
    reject('E_POL_THRESHOLD', 'certificate.loss_after', `${cert.loss_after} > ${cert.loss_before} * (1 - ${meta.pol.delta})`)
  }
  checkSignatures(certificateBodyBytes(cert), cert.signatures, meta, 'certificate', true)
}
