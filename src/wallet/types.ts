/**
 * The wallet and what a relay reports about it: the key as the UI may see it (never the secret,
 * but for an export behind a warning), its balance, trust level and candidates.
 *
 * @module
 */
import type { CandidateInfo } from '../net/relay-api.ts'

export type { CandidateInfo, CandidateStatus } from '../net/relay-api.ts'

/** The wallet as the UI sees it: never the secret (only exportWallet returns that). */
export interface WalletInfo {
  /** Compressed secp256k1 public key, hex: where rewards go, who signs candidates. */
  readonly publicKey: string
  readonly createdAt: number
  readonly source: 'created' | 'imported'
  /** When the secret was last shown for export, null if never. */
  readonly exportedAt: number | null
}

export type WalletStatus =
  | { readonly kind: 'none' }
  | { readonly kind: 'ok'; readonly wallet: WalletInfo }
  /** A stored record that does not hold together (kept, not overwritten, until the user forgets it). */
  | { readonly kind: 'damaged'; readonly reason: string }

/** A wallet operation's answer: the wallet, or a code (E_KEY_HEX, E_KEY_LENGTH, E_KEY_RANGE, E_WALLET_EXISTS, ...) and a message for the user. */
export type WalletResult = { readonly ok: true; readonly wallet: WalletInfo } | { readonly ok: false; readonly code: string; readonly message: string }

/** What a relay reports about a wallet: balance at the chain C head, trust level and quota, candidates newest first. */
export interface WalletActivity {
  readonly relay: string
  /** null when the relay did not say. */
  readonly balance: number | null
  /** The part of `balance` no branch can take away: the balance at the final chain C block. The rest is pending until the validators' next checkpoint. */
  readonly finalBalance: number | null
  readonly trust: 'newbie' | 'trusted' | null
  readonly quota: { readonly perDay: number; readonly pending: number; readonly leases: number } | null
  readonly candidates: readonly CandidateInfo[]
  /** Why part of it is missing (relay down, no PoL service there). */
  readonly error: string | null
  readonly at: number
}

export interface WalletExport {
  readonly ok: true
  readonly secretKey: string
  readonly warning: string
}
