/**
 * A wallet's key as people handle it: created in the browser, exported as 64 hex digits, imported
 * back from what someone pasted. The key is the account: it signs candidates and leases (so it
 * mines as its holder) and it is what chain C pays rewards to (so it spends them).
 *
 * ```ts
 * const key = createSecretKey()
 * const text = secretKeyHex(key)          // 64 lowercase hex digits, what export shows
 * const back = parseSecretKey(` 0x${text.toUpperCase()} `)
 * publicKeyHex(back) === publicKeyHex(key) // true
 * ```
 *
 * Pasted text is judged here, once: wrong characters, wrong length and a number that is not a
 * secp256k1 secret key (zero, or not below the group order) each get their own code, so the form
 * can say which it was. Nothing else throws for bad text.
 *
 * @module
 */
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { fromHex, toHex } from '../codec/cbor.ts'
import { publicKeyOf, randomSecretKey, type SecretKey } from '../chain/keys.ts'
import { abytes } from '../assert.ts'

export type WalletKeyCode = 'E_KEY_EMPTY' | 'E_KEY_HEX' | 'E_KEY_LENGTH' | 'E_KEY_RANGE'

/** Text that is not a secret key; `code` says why (tests and the form read it, not the message). */
export class WalletKeyError extends Error {
  override readonly name = 'WalletKeyError'
  readonly code: WalletKeyCode
  constructor(code: WalletKeyCode, message: string) {
    super(message)
    this.code = code
  }
}

/** A fresh key from the platform's CSPRNG (crypto.getRandomValues through noble). */
export function createSecretKey(): SecretKey {
  return randomSecretKey()
}

/**
 * The secret key in pasted text: 64 hex digits, any case, an optional `0x`, surrounding and inner
 * whitespace ignored (keys get wrapped when copied out of a note). Throws WalletKeyError.
 */
export function parseSecretKey(text: string): SecretKey {
  if (typeof text !== 'string') throw new TypeError(`text: expected string, got ${text === null ? 'null' : typeof text}`)
  const hex = text.replace(/\s+/g, '').replace(/^0x/i, '')
  if (hex === '') throw new WalletKeyError('E_KEY_EMPTY', 'Paste the 64 hex digits of a secret key.')
  const bad = /[^0-9a-f]/i.exec(hex)
  if (bad !== null) throw new WalletKeyError('E_KEY_HEX', `A secret key is hex (0-9, a-f); "${bad[0]}" at position ${bad.index + 1} is not.`)
  if (hex.length !== 64) throw new WalletKeyError('E_KEY_LENGTH', `A secret key is 64 hex digits (32 bytes); this is ${hex.length}.`)
  const key = fromHex(hex)
  if (!secp256k1.utils.isValidSecretKey(key)) throw new WalletKeyError('E_KEY_RANGE', 'These 32 bytes are not a secp256k1 secret key (zero, or not below the curve order).')
  return key
}

/** The secret key as export shows it: 64 lowercase hex digits. */
export function secretKeyHex(key: SecretKey): string {
  abytes(key, 'key', 32)
  return toHex(key)
}

/** The compressed public key (33 bytes) as hex: the wallet's address on chain C and the job board. */
export function publicKeyHex(key: SecretKey): string {
  return toHex(publicKeyOf(key))
}

/** What export warns, word for word in the UI and the docs. */
export const EXPORT_WARNING =
  'Anyone who has this key can spend your credits and mine in your name. Keep it somewhere only you can read; Blyan cannot recover or revoke it.'
