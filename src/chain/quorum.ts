/**
 * Validator signatures and quorums, as PoL certificates and finality checkpoints both use them.
 *
 * A validator signs sha256 of a document's *body*: its canonical DAG-CBOR bytes without the
 * `signatures` list. Bodies carry a `kind` (`blyan/pol-certificate`, `blyan/checkpoint`), so a
 * signature over one kind of body can never be read as a signature over another. A signed document
 * lists its signatures strictly ascending by validator key; it counts when signatures from more
 * than 2/3 of the validator set of the chain A block it names verify.
 *
 * @module
 */
import { reject, type RuleCode } from '../errors.ts'
import { compareBytes } from '../codec/cbor.ts'
import { publicKeyOf, signMessage, verifyMessage, type PublicKey, type SecretKey } from './keys.ts'
import { isValidator, quorumSize, type MetaDocument } from './meta.ts'
import * as S from '../codec/schema.ts'

/** Most signatures a signed document may list (the validator set's limit, MAX_VALIDATORS). */
export const MAX_SIGNATURES = 256

export interface ValidatorSignature {
  readonly validator: PublicKey
  /** 64-byte compact low-S signature over sha256(body bytes). */
  readonly signature: Uint8Array
}

/** One validator's signature over body bytes. */
export function signBody(bodyBytes: Uint8Array, secretKey: SecretKey): ValidatorSignature {
  return Object.freeze({ validator: publicKeyOf(secretKey), signature: signMessage(bodyBytes, secretKey) })
}

/** Signatures sorted as the encoding requires (ascending by validator key). */
export function sortSignatures(signatures: readonly ValidatorSignature[]): readonly ValidatorSignature[] {
  return Object.freeze([...signatures].sort((a, b) => compareBytes(a.validator, b.validator)))
}

/** Plain objects for encoding (a ValidatorSignature may carry other fields). */
export function signaturesForEncoding(signatures: readonly ValidatorSignature[]): { validator: Uint8Array; signature: Uint8Array }[] {
  return signatures.map((s) => ({ validator: s.validator, signature: s.signature }))
}

/**
 * Decode a document's `signatures` list: each `{validator (33 bytes), signature (64 bytes)}`
 * (`code` otherwise), strictly ascending by validator (E_CERT_SIGNER: unsorted or repeated).
 */
export function decodeSignatures(o: S.Fields, path: string, code: RuleCode): readonly ValidatorSignature[] {
  const signatures = S.list(o, 'signatures', path, MAX_SIGNATURES, code).map((v, i) => {
    const field = `${path}.signatures[${i}]`
    const s = S.exactMap(v, ['validator', 'signature'], field, code)
    return Object.freeze({ validator: S.bytes(s, 'validator', field, 33, code), signature: S.bytes(s, 'signature', field, 64, code) })
  })
  signatures.forEach((s, i) => {
    if (i > 0 && compareBytes((signatures[i - 1] as ValidatorSignature).validator, s.validator) >= 0) {
      reject('E_CERT_SIGNER', `${path}.signatures[${i}]`, 'validators not strictly ascending (or repeated)')
    }
  })
  return Object.freeze(signatures)
}

/**
 * Every signature is by a validator of `meta` (E_CERT_SIGNER) and verifies over `bodyBytes`
 * (E_CERT_SIG); with `quorum`, they are more than 2/3 of the set (E_QUORUM).
 */
export function checkSignatures(bodyBytes: Uint8Array, signatures: readonly ValidatorSignature[], meta: MetaDocument, path: string, quorum: boolean): void {
  signatures.forEach((s, i) => {
    if (!isValidator(meta, s.validator)) reject('E_CERT_SIGNER', `${path}.signatures[${i}].validator`, 'not in the validator set')
    if (!verifyMessage(s.signature, bodyBytes, s.validator)) reject('E_CERT_SIG', `${path}.signatures[${i}].signature`)
  })
  const need = quorumSize(meta.validators.length)
  if (quorum && signatures.length < need) reject('E_QUORUM', `${path}.signatures`, `${signatures.length} of ${meta.validators.length}, need ${need}`)
}
