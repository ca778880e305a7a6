/**
 * Keys and signatures: secp256k1 ECDSA (@noble/curves), low-S, 64-byte compact r || s.
 *
 * What is signed is always sha256 of canonical DAG-CBOR bytes (a header's signing bytes, a PoL
 * certificate body). Signing is deterministic (RFC 6979), so vectors are reproducible. Verification
 * returns false for any signature it cannot accept; only argument types throw.
 *
 * @module
 */
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { abytes } from '../assert.ts'

/** Secret key: 32 bytes. */
export type SecretKey = Uint8Array
/** Public key: 33-byte compressed point. */
export type PublicKey = Uint8Array

/** A fresh random secret key (CSPRNG). */
export function randomSecretKey(): SecretKey {
  return secp256k1.utils.randomSecretKey()
}

/** Compressed public key of a secret key. */
export function publicKeyOf(secretKey: SecretKey): PublicKey {
  abytes(secretKey, 'secretKey', 32)
  return secp256k1.getPublicKey(secretKey, true)
}

/** True when `publicKey` is a 33-byte compressed point on secp256k1. */
export function isValidPublicKey(publicKey: Uint8Array): boolean {
  return publicKey instanceof Uint8Array && publicKey.length === 33 && secp256k1.utils.isValidPublicKey(publicKey, true)
}

/** Sign sha256(message); returns 64-byte compact low-S r || s. Verifies its own output before returning. */
export function signMessage(message: Uint8Array, secretKey: SecretKey): Uint8Array {
  abytes(message, 'message')
  abytes(secretKey, 'secretKey', 32)
  const digest = sha256(message)
  const signature = secp256k1.sign(digest, secretKey, { prehash: false, lowS: true, format: 'compact' })
  if (!secp256k1.verify(signature, digest, secp256k1.getPublicKey(secretKey, true), { prehash: false, lowS: true })) {
    throw new Error('signMessage: produced signature does not verify')
  }
  return signature
}

/** Verify a 64-byte compact low-S signature over sha256(message). False on any failure. */
export function verifyMessage(signature: Uint8Array, message: Uint8Array, publicKey: PublicKey): boolean {
  abytes(signature, 'signature')
  abytes(message, 'message')
  abytes(publicKey, 'publicKey')
  if (signature.length !== 64 || publicKey.length !== 33) return false
  try {
    return secp256k1.verify(signature, sha256(message), publicKey, { prehash: false, lowS: true, format: 'compact' })
  } catch {
    return false
  }
}
