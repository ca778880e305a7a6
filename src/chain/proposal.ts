/**
 * Proposing a dataset: the chain D `dataset` block any key may make (governance.ts says what happens
 * to it), with its content file, as a submission CAR. Used by `blyan dataset propose`, the site's
 * Datasets view and tests.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { importPayload } from '../tensor/tiles.ts'
import { documentPayload, sealBlock, type HeaderDraft } from './build.ts'
import { DATASET_KIND, DATASET_VERSION, decodeDataset, encodeDataset, type DatasetSplit } from './dataset.ts'
import type { SecretKey } from './keys.ts'
import type { MetaDocument } from './meta.ts'
import { encodeSubmission } from './submission.ts'
import type { AcceptedBlock } from './view.ts'

/** What a block maker reads of a chain: a node's store, or a light client's verified chain (MemoryChain). */
export interface ChainHeads {
  head(chain: 'A' | 'D'): AcceptedBlock | undefined
  get(cid: CID): AcceptedBlock | undefined
}

export interface ProposalRequest {
  readonly name: string
  readonly license: string
  readonly split: DatasetSplit
  readonly description: string
  /** The text: UTF-8, documents separated by blank lines. */
  readonly content: Uint8Array
}

/**
 * A dataset proposal after the chain D head, under the chain A head, signed by `key`, with its
 * content file. The document's own rules (E_DATASET: name, licence, sizes) run before any PoW.
 */
export async function proposalSubmission(chain: ChainHeads, key: SecretKey, request: ProposalRequest, now: number): Promise<{ cid: CID; car: Uint8Array }> {
  const rules = chain.head('A')
  if (rules === undefined) throw new Error('the chain has no chain A block yet')
  const prev = chain.head('D')
  const content = await importPayload(request.content)
  const doc = documentPayload(encodeDataset({
    kind: DATASET_KIND, version: DATASET_VERSION, name: request.name, license: request.license, split: request.split,
    format: 'text/plain; blank-line-separated', content: content.cid, content_size: request.content.length, description: request.description
  }))
  decodeDataset(doc.bytes)
  const sealed = sealBlock({
    chain_id: 'D', block_type: 'dataset', index: prev === undefined ? 0 : prev.header.index + 1, prev: prev?.cid ?? null, depends_on: [rules.cid],
    expert_name: null, layer_id: null, payload: doc.cid, payload_size: doc.size,
    timestamp: Math.max(now, rules.header.timestamp, prev?.header.timestamp ?? 0), difficulty: (rules.document as MetaDocument).pow.D, supersedes: null, pol: null
  } as HeaderDraft, key)
  return { cid: sealed.cid, car: await encodeSubmission({ header: sealed.bytes, payload: doc.bytes, files: [request.content] }) }
}
