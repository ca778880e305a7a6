/**
 * A miner's candidate: trained expert weights made into a new version block, as the browser miner,
 * `blyan mine` and the tests build it. The weights are encoded as the base was (int8 with per-row
 * scales, or fp32), imported as a UnixFS file, and the header names the expert, `supersedes` its
 * base, and depends on the rules block (the chain A head: validators refuse older rules), the base
 * and the layer's router (the block the expert is trained against). Signed by the miner, PoW solved,
 * and wrapped as a submission CAR without a certificate: validators supply that.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { sealBlockAsync, type HeaderDraft, type SealedBlock } from '../chain/build.ts'
import { compareCids } from '../codec/cbor.ts'
import { expertName } from '../chain/header.ts'
import type { SecretKey } from '../chain/keys.ts'
import type { Architecture } from '../chain/meta.ts'
import { encodeSubmission } from '../chain/submission.ts'
import type { MineOptions } from '../chain/pow.ts'
import type { ExpertWeights } from '../model/weights.ts'
import { buildPayload } from '../tensor/payload.ts'
import { importPayload } from '../tensor/tiles.ts'

/** A block the candidate links: its CID and its chain B height (index). */
export interface LinkedBlock {
  readonly cid: CID
  readonly index: number
}

export interface CandidateSpec {
  readonly architecture: Architecture
  readonly layer: number
  readonly expert: number
  readonly weights: ExpertWeights
  /** Encoding of the matrices: the base's (int8 unless the network stores fp32). */
  readonly dtype: 'int8' | 'fp32'
  /** The chain A head (the rules). */
  readonly rules: CID
  /** The version superseded, and the layer's router block. */
  readonly base: LinkedBlock
  readonly router: LinkedBlock
  readonly difficulty: number
  readonly timestamp: number
  readonly key: SecretKey
  readonly mine?: MineOptions
  /** DAG-CBOR documents the submission carries, given the payload's CID (the training record). */
  readonly documents?: (payload: CID) => readonly Uint8Array[]
}

export interface Candidate {
  readonly sealed: SealedBlock
  readonly payload: Uint8Array
  /** The submission CAR for `POST /api/blocks`. */
  readonly car: Uint8Array
}

/** The expert's payload: w1 (hidden, dim), w2 (dim, hidden), w3 (hidden, dim). */
export function expertPayload(arch: Architecture, w: ExpertWeights, dtype: 'int8' | 'fp32'): Uint8Array {
  const hidden = arch.expert_hidden_dim
  return buildPayload([
    { name: 'w1', values: w.w1, shape: [hidden, arch.dim], dtype },
    { name: 'w2', values: w.w2, shape: [arch.dim, hidden], dtype },
    { name: 'w3', values: w.w3, shape: [hidden, arch.dim], dtype }
  ])
}

export async function buildCandidate(spec: CandidateSpec): Promise<Candidate> {
  const payload = expertPayload(spec.architecture, spec.weights, spec.dtype)
  const file = await importPayload(payload)
  const draft = {
    chain_id: 'B',
    block_type: 'expert',
    index: 1 + Math.max(spec.base.index, spec.router.index),
    prev: null,
    depends_on: [spec.rules, spec.base.cid, spec.router.cid].sort(compareCids),
    expert_name: expertName(spec.layer, spec.expert),
    layer_id: spec.layer,
    payload: file.cid,
    payload_size: payload.length,
    timestamp: spec.timestamp,
    difficulty: spec.difficulty,
    supersedes: spec.base.cid,
    pol: null
  } as HeaderDraft
  const sealed = await sealBlockAsync(draft, spec.key, spec.mine ?? {})
  return { sealed, payload, car: await encodeSubmission({ header: sealed.bytes, payload, documents: spec.documents?.(file.cid) ?? [] }) }
}
