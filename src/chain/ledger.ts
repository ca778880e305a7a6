/**
 * Chain C documents: transfers and PoL rewards, and the reward formula.
 *
 * Amounts are integer units (a safe integer, so they survive JSON and float64 arithmetic exactly);
 * balances start at zero and only rewards mint. A transfer is signed by its sender (the header's
 * miner_pub); a reward by a validator, for a certificate that no earlier reward on the same branch
 * used.
 *
 * @module
 */
import { reject } from '../errors.ts'
import { decodeCbor, encodeCbor } from '../codec/cbor.ts'
import { MAX_DOCUMENT_BYTES } from './header.ts'
import { isValidPublicKey, type PublicKey } from './keys.ts'
import type { RewardParams } from './meta.ts'
import { improvement, type CertificateBody } from './pol.ts'
import * as S from '../codec/schema.ts'

export const TRANSFER_KIND = 'blyan/transfer'
export const REWARD_KIND = 'blyan/reward'
export const LEDGER_VERSION = 1

export interface TransferDocument {
  readonly kind: typeof TRANSFER_KIND
  readonly version: typeof LEDGER_VERSION
  readonly to: PublicKey
  readonly amount: number
  /** Free text for the recipient, at most 256 characters. */
  readonly memo: string
}

export interface RewardDocument {
  readonly kind: typeof REWARD_KIND
  readonly version: typeof LEDGER_VERSION
  /** The candidate's miner_pub. */
  readonly to: PublicKey
  /** The miner's part of {@link rewardAmount}: all of it, less the data share when there is one. */
  readonly amount: number
  /** The data share, to the proposer of the pool the version learned from (rewardSplit). */
  readonly data?: { readonly to: PublicKey; readonly amount: number }
}

export type LedgerDocument = TransferDocument | RewardDocument

export function encodeLedgerDocument(doc: LedgerDocument): Uint8Array {
  return encodeCbor(doc)
}

/** Decode the payload of a chain C block of type `blockType` (E_SCHEMA, E_PUBKEY, E_AMOUNT). */
export function decodeLedgerDocument(bytes: Uint8Array, blockType: 'transfer' | 'reward'): LedgerDocument {
  const raw = decodeCbor(bytes, MAX_DOCUMENT_BYTES, 'payload')
  const withData = blockType === 'reward' && typeof raw === 'object' && raw !== null && Object.hasOwn(raw, 'data')
  const keys = blockType === 'transfer' ? ['kind', 'version', 'to', 'amount', 'memo'] : withData ? ['kind', 'version', 'to', 'amount', 'data'] : ['kind', 'version', 'to', 'amount']
  const o = S.exactMap(raw, keys, 'payload')
  const kind = blockType === 'transfer' ? TRANSFER_KIND : REWARD_KIND
  if (o['kind'] !== kind) reject('E_SCHEMA', 'payload.kind', `expected "${kind}"`)
  if (S.uint(o, 'version', 'payload') !== LEDGER_VERSION) reject('E_VERSION', 'payload.version', `ledger version ${String(o['version'])}`)
  const to = S.bytes(o, 'to', 'payload', 33)
  if (!isValidPublicKey(to)) reject('E_PUBKEY', 'payload.to', 'not a compressed secp256k1 point')
  const amount = o['amount']
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) reject('E_AMOUNT', 'payload.amount')
  if (blockType === 'reward') {
    if (!withData) return Object.freeze({ kind: REWARD_KIND, version: LEDGER_VERSION, to, amount })
    const d = S.exactMap(o['data'], ['to', 'amount'], 'payload.data')
    const dataTo = S.bytes(d, 'to', 'payload.data', 33)
    if (!isValidPublicKey(dataTo)) reject('E_PUBKEY', 'payload.data.to', 'not a compressed secp256k1 point')
    const dataAmount = d['amount']
    if (typeof dataAmount !== 'number' || !Number.isSafeInteger(dataAmount) || dataAmount <= 0) reject('E_AMOUNT', 'payload.data.amount')
    return Object.freeze({ kind: REWARD_KIND, version: LEDGER_VERSION, to, amount, data: Object.freeze({ to: dataTo, amount: dataAmount }) })
  }
  const memo = S.str(o, 'memo', 'payload', 256)
  return Object.freeze({ kind: TRANSFER_KIND, version: LEDGER_VERSION, to, amount, memo })
}

/**
 * How a reward of `total` units splits: the data share, floor(total × share), to the training pool's
 * proposer when the certificate names a pool (and the share is at least one unit); the rest to the miner.
 */
export function rewardSplit(total: number, share: number, trainedOn: boolean): { readonly miner: number; readonly data: number } {
  const data = trainedOn ? Math.floor(total * share) : 0
  return { miner: total - data, data }
}

/** Balance changes of a chain C block, by key (hex): what a reward mints, what a transfer moves. */
export function ledgerCredits(block: { readonly header: { readonly block_type: string; readonly miner_pub: Uint8Array }; readonly document: unknown }): { pub: PublicKey; delta: number }[] {
  const doc = block.document as LedgerDocument
  const deltas = new Map<string, { pub: PublicKey; delta: number }>()
  const add = (pub: PublicKey, delta: number): void => {
    const k = Array.from(pub, (b) => b.toString(16).padStart(2, '0')).join('')
    const entry = deltas.get(k)
    if (entry === undefined) deltas.set(k, { pub, delta })
    else entry.delta += delta
  }
  add(doc.to, doc.amount)
  if (doc.kind === REWARD_KIND && doc.data !== undefined) add(doc.data.to, doc.data.amount)
  if (block.header.block_type === 'transfer') add(block.header.miner_pub, -doc.amount)
  return [...deltas.values()]
}

/** Units minted for a certified improvement: floor(base * (1 + min(improvement, 1))). */
export function rewardAmount(cert: CertificateBody, params: RewardParams): number {
  const gain = Math.min(Math.max(improvement(cert), 0), 1)
  return Math.floor(params.base * (1 + gain))
}
