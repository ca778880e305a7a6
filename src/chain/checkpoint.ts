/**
 * Finality checkpoints: the validators' signed statement of the heads of chains A, C and D.
 *
 * Light PoW is spam protection, not security: a branch of a few cheap blocks could overturn a
 * ledger entry under any heaviest-branch rule. So the validator quorum finalizes. A checkpoint body
 * names the heads; each validator signs it (quorum.ts, the signatures PoL certificates use); with
 * signatures from more than 2/3 of the validator set it is final, and no block at or below a final
 * height, nor on a branch without the final block, is accepted any more (E_FINALIZED in
 * validate.ts), by any amount of work. Fork choice only picks among tips that descend from the
 * final blocks (forkchoice.ts `headOf`).
 *
 * Checkpoints form a sequence: number 0, 1, 2, ... Each one's heads descend from (or equal) the
 * previous one's, and its signers are the validator set of the previous checkpoint's chain A head
 * (`meta`; number 0: the chain A genesis). So a validator-set change in chain A takes effect for
 * finality only once the old set has finalized it: one rogue validator's meta block cannot name a
 * new set and finalize with it.
 *
 * A *vote* is the same document with fewer signatures than a quorum: a node pools votes for one
 * body until they reach a quorum (the network carries votes; no other message is needed). Chain B
 * is not checkpointed: it is a DAG whose blocks are never displaced (each is certified; the param
 * index picks among versions by rule), and the chain C reward that pays for a version is final
 * with chain C.
 *
 * Identity: a checkpoint is named by its *id*, the CID (dag-cbor, sha2-256) of its body bytes, so
 * the same body with different signature subsets is one checkpoint.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { DAG_CBOR, cidOf, decodeCbor, encodeCbor, isProtocolCid } from '../codec/cbor.ts'
import { ancestorAt, descendsFrom } from './forkchoice.ts'
import type { SecretKey } from './keys.ts'
import type { MetaDocument } from './meta.ts'
import { checkSignatures, decodeSignatures, signBody, signaturesForEncoding, sortSignatures, type ValidatorSignature } from './quorum.ts'
import * as S from '../codec/schema.ts'
import type { AcceptedBlock, ChainView, Finality } from './view.ts'

export const CHECKPOINT_KIND = 'blyan/checkpoint'
export const CHECKPOINT_VERSION = 1
/** Largest checkpoint document (256 signatures are about 25 KiB). */
export const MAX_CHECKPOINT_BYTES = 64 * 1024
/** The chains a checkpoint finalizes: the linear ones. */
export const FINAL_CHAINS = Object.freeze(['A', 'C', 'D'] as const)
export type FinalChain = (typeof FINAL_CHAINS)[number]

export interface CheckpointHeads {
  /** Chain A head (the chain always has its genesis). */
  readonly A: CID
  /** Chain C and D heads; null while the chain is empty. */
  readonly C: CID | null
  readonly D: CID | null
}

/** What validators sign. */
export interface CheckpointBody {
  readonly kind: typeof CHECKPOINT_KIND
  readonly version: typeof CHECKPOINT_VERSION
  /** 0 for the first checkpoint, then the previous number + 1. */
  readonly number: number
  /** The chain A block whose validator set signs: the previous checkpoint's chain A head (number 0: the chain A genesis). */
  readonly meta: CID
  readonly heads: CheckpointHeads
}

export interface Checkpoint extends CheckpointBody {
  /** Strictly ascending by validator key. A quorum makes it final; fewer make it a vote. */
  readonly signatures: readonly ValidatorSignature[]
}

const BODY_KEYS = ['kind', 'version', 'number', 'meta', 'heads'] as const

function bodyFields(body: CheckpointBody): Record<string, unknown> {
  return { kind: body.kind, version: body.version, number: body.number, meta: body.meta, heads: { A: body.heads.A, C: body.heads.C, D: body.heads.D } }
}

/** Canonical bytes validators sign. */
export function checkpointBodyBytes(body: CheckpointBody): Uint8Array {
  return encodeCbor(bodyFields(body))
}

/** The checkpoint's id: the CID of its body bytes (whatever signatures it carries). */
export function checkpointId(body: CheckpointBody): CID {
  return cidOf(checkpointBodyBytes(body), DAG_CBOR)
}

export function encodeCheckpoint(checkpoint: Checkpoint): Uint8Array {
  return encodeCbor({ ...bodyFields(checkpoint), signatures: signaturesForEncoding(checkpoint.signatures) })
}

/** One validator's signature over a checkpoint body. */
export function signCheckpoint(body: CheckpointBody, secretKey: SecretKey): ValidatorSignature {
  return signBody(checkpointBodyBytes(body), secretKey)
}

/** A checkpoint (or vote) from a body and signatures, sorted as the encoding requires. */
export function assembleCheckpoint(body: CheckpointBody, signatures: readonly ValidatorSignature[]): Checkpoint {
  const b = bodyFields(body) as unknown as CheckpointBody
  return Object.freeze({ ...b, heads: Object.freeze({ ...b.heads }), signatures: sortSignatures(signatures) })
}

/** Decode checkpoint bytes and check their schema (E_CHECKPOINT) and signature order (E_CERT_SIGNER). */
export function decodeCheckpoint(bytes: Uint8Array): Checkpoint {
  const p = 'checkpoint'
  const o = S.exactMap(decodeCbor(bytes, MAX_CHECKPOINT_BYTES, p), [...BODY_KEYS, 'signatures'], p, 'E_CHECKPOINT')
  if (o['kind'] !== CHECKPOINT_KIND) reject('E_CHECKPOINT', 'checkpoint.kind', `expected "${CHECKPOINT_KIND}"`)
  if (S.uint(o, 'version', p, undefined, 'E_CHECKPOINT') !== CHECKPOINT_VERSION) reject('E_VERSION', 'checkpoint.version', `checkpoint version ${String(o['version'])}`)
  const number = S.uint(o, 'number', p, undefined, 'E_CHECKPOINT')
  const link = (obj: S.Fields, key: string, path: string, nullable: boolean): CID | null => {
    const c = nullable ? S.cidOrNull(obj, key, path, 'E_CHECKPOINT') : S.cid(obj, key, path, 'E_CHECKPOINT')
    if (c !== null && !isProtocolCid(c, [DAG_CBOR])) reject('E_CHECKPOINT', `${path}.${key}`, 'not a block CID')
    return c
  }
  const meta = link(o, 'meta', p, false) as CID
  const h = S.exactMap(o['heads'], FINAL_CHAINS, `${p}.heads`, 'E_CHECKPOINT')
  const heads: CheckpointHeads = Object.freeze({
    A: link(h, 'A', `${p}.heads`, false) as CID,
    C: link(h, 'C', `${p}.heads`, true),
    D: link(h, 'D', `${p}.heads`, true)
  })
  const signatures = decodeSignatures(o, p, 'E_CHECKPOINT')
  return Object.freeze({ kind: CHECKPOINT_KIND, version: CHECKPOINT_VERSION, number, meta, heads, signatures })
}

/**
 * Check a checkpoint (or, with `quorum: false`, a vote) against a view and the checkpoint before it
 * (null for number 0):
 * - it is the next in sequence (E_CHECKPOINT `number`);
 * - `meta` is the previous checkpoint's chain A head, or for number 0 the chain A genesis of its
 *   chain A head (E_CHECKPOINT `meta`);
 * - each head is an accepted block of its chain, and descends from (or is) the previous head of that
 *   chain; a chain that had a head keeps one (E_CHECKPOINT `heads.X`);
 * - every signer is in `meta`'s validator set and verifies, and with `quorum` they are more than 2/3
 *   (E_CERT_SIGNER, E_CERT_SIG, E_QUORUM).
 * Returns the final blocks it names.
 */
export function checkCheckpoint(checkpoint: Checkpoint, view: ChainView, previous: Finality | null, options: { readonly quorum: boolean }): Readonly<Record<FinalChain, AcceptedBlock | null>> {
  const p = 'checkpoint'
  const expected = previous === null ? 0 : previous.number + 1
  if (checkpoint.number !== expected) reject('E_CHECKPOINT', `${p}.number`, `the next checkpoint is number ${expected}`)
  const heads = {} as Record<FinalChain, AcceptedBlock | null>
  for (const chain of FINAL_CHAINS) {
    const field = `${p}.heads.${chain}`
    const cid = checkpoint.heads[chain]
    const before = previous?.heads[chain] ?? null
    if (cid === null) {
      if (before !== null) reject('E_CHECKPOINT', field, `chain ${chain} had a final head in checkpoint ${previous?.number}`)
      heads[chain] = null
      continue
    }
    const block = view.get(cid)
    if (block === undefined || block.header.chain_id !== chain) reject('E_CHECKPOINT', field, `${cid} is not an accepted chain ${chain} block here`)
    if (before !== null) {
      const last = view.get(before)
      if (last === undefined || !descendsFrom(view, block, last)) reject('E_CHECKPOINT', field, `does not extend the final ${chain} head of checkpoint ${previous?.number}`)
    }
    heads[chain] = block
  }
  const a = heads.A as AcceptedBlock
  const signers = previous === null ? ancestorAt(view, a, 0) : view.get(previous.heads.A)
  if (signers === undefined || !checkpoint.meta.equals(signers.cid)) {
    reject('E_CHECKPOINT', `${p}.meta`, previous === null ? 'the first checkpoint is signed under the chain A genesis' : `must be checkpoint ${previous.number}'s chain A head ${previous.heads.A}`)
  }
  checkSignatures(checkpointBodyBytes(checkpoint), checkpoint.signatures, signers.document as MetaDocument, p, options.quorum)
  return Object.freeze(heads)
}

/** The body that would finalize `heads` after `previous` (null: the first, signed under `genesis`). */
export function nextCheckpointBody(previous: Finality | null, genesis: CID, heads: CheckpointHeads): CheckpointBody {
  return Object.freeze({
    kind: CHECKPOINT_KIND,
    version: CHECKPOINT_VERSION,
    number: previous === null ? 0 : previous.number + 1,
    meta: previous === null ? genesis : previous.heads.A,
    heads: Object.freeze({ ...heads })
  })
}

/** True when `block` (of chain A, C or D) is at or below its chain's head in `checkpoint`, on the final branch. */
export function isFinal(view: ChainView, block: AcceptedBlock, checkpoint: Finality | null): boolean {
  if (checkpoint === null || block.header.chain_id === 'B') return false
  const head = checkpoint.heads[block.header.chain_id]
  const final = head === null ? undefined : view.get(head)
  return final !== undefined && descendsFrom(view, final, block)
}
