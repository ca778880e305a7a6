/**
 * The wallet record in IndexedDB (database `blyan-wallet`, through src/store's KV seam): the
 * secret key, its public key, when and how it came to this browser, and when it was last exported.
 *
 * A record read back is checked as untrusted: the secret must parse and its public key must match
 * the one stored beside it. A record that fails is reported as damaged, never silently replaced,
 * since replacing it would throw away whatever the user could still recover from it.
 *
 * @module
 */
import { aint, aoneOf } from '../assert.ts'
import type { SecretKey } from '../chain/keys.ts'
import { idbKV, type KV } from '../store/kv.ts'
import { parseSecretKey, publicKeyHex, secretKeyHex } from './keys.ts'

const WALLET = 'wallet'

export type WalletSource = 'created' | 'imported'
export const WALLET_SOURCES: readonly WalletSource[] = Object.freeze(['created', 'imported'])

export interface WalletRecord {
  /** 64 hex digits. */
  readonly secretKey: string
  /** 66 hex digits, compressed. */
  readonly publicKey: string
  readonly createdAt: number
  readonly source: WalletSource
  /** Last time the secret was shown for export (ms), null if never: the UI nags until it was. */
  readonly exportedAt: number | null
}

/** What loading found: no wallet, a wallet, or a record that does not hold together. */
export type LoadedWallet =
  | { readonly kind: 'none' }
  | { readonly kind: 'ok'; readonly record: WalletRecord; readonly key: SecretKey }
  | { readonly kind: 'damaged'; readonly reason: string }

let defaultKV: KV | undefined
/** The wallet database (opened on first use). */
export function walletKV(): KV {
  defaultKV ??= idbKV('blyan-wallet', 'wallet')
  return defaultKV
}

/** A record for `key`, made now. */
export function walletRecord(key: SecretKey, source: WalletSource, now: number): WalletRecord {
  aoneOf(source, WALLET_SOURCES, 'source')
  aint(now, 'now')
  return Object.freeze({ secretKey: secretKeyHex(key), publicKey: publicKeyHex(key), createdAt: now, source, exportedAt: null })
}

/** Judge a stored value. Never throws. */
export function walletFrom(raw: unknown): LoadedWallet {
  if (raw === undefined || raw === null) return { kind: 'none' }
  if (typeof raw !== 'object') return { kind: 'damaged', reason: 'the stored wallet is not a record' }
  const r = raw as Record<string, unknown>
  let key: SecretKey
  try {
    key = parseSecretKey(typeof r['secretKey'] === 'string' ? r['secretKey'] : '')
  } catch (e) {
    return { kind: 'damaged', reason: `the stored secret key is unreadable: ${e instanceof Error ? e.message : String(e)}` }
  }
  const publicKey = publicKeyHex(key)
  if (r['publicKey'] !== publicKey) return { kind: 'damaged', reason: 'the stored public key does not belong to the stored secret key' }
  const createdAt = typeof r['createdAt'] === 'number' && Number.isSafeInteger(r['createdAt']) && r['createdAt'] >= 0 ? r['createdAt'] : 0
  const source = (WALLET_SOURCES as readonly unknown[]).includes(r['source']) ? (r['source'] as WalletSource) : 'imported'
  const exportedAt = typeof r['exportedAt'] === 'number' && Number.isSafeInteger(r['exportedAt']) ? r['exportedAt'] : null
  return { kind: 'ok', key, record: Object.freeze({ secretKey: secretKeyHex(key), publicKey, createdAt, source, exportedAt }) }
}

export async function loadWallet(kv: KV = walletKV()): Promise<LoadedWallet> {
  try {
    return walletFrom(await kv.get(WALLET))
  } catch (e) {
    return { kind: 'damaged', reason: `IndexedDB could not be read: ${e instanceof Error ? e.message : String(e)}` }
  }
}

/** Store `record` (checked: a record our code made). */
export async function saveWallet(record: WalletRecord, kv: KV = walletKV()): Promise<void> {
  const judged = walletFrom(record)
  if (judged.kind !== 'ok') throw new TypeError(`record: ${judged.kind === 'damaged' ? judged.reason : 'missing'}`)
  await kv.setMany([[WALLET, { ...judged.record }]])
}

export async function deleteWallet(kv: KV = walletKV()): Promise<void> {
  await kv.delMany([WALLET])
}
