/**
 * What the chain's model is, said from the chain itself: chain A's rules (architecture, tokenizer,
 * network), the parameter blocks of chain B (their tensors' shapes give the parameter count, their
 * certificates the versions learned since genesis) and the datasets of chain D. The held-out loss
 * comes from a genesis training record, which the caller fetches and checks (it is a file, not a block).
 *
 * @module
 */
import type { DatasetDocument } from '../chain/dataset.ts'
import { DATASET_KIND } from '../chain/dataset.ts'
import type { Architecture, MetaDocument } from '../chain/meta.ts'
import { parameterCount } from '../chain/params.ts'
import type { AcceptedBlock } from '../chain/view.ts'

/**
 * What the chain's model is, from the page's own verified chain: chain A's architecture and
 * tokenizer, chain D's datasets, and the genesis training record's held-out loss when one is linked.
 */
export interface ModelCard {
  /** The network chain A names (e.g. `blyan-genesis`). */
  readonly network: string
  readonly parameters: number
  readonly layers: number
  readonly experts: number
  readonly topK: number
  /** Context window (max_seq_len), in tokens. */
  readonly context: number
  readonly vocabulary: number
  readonly datasets: readonly { readonly name: string; readonly split: string; readonly license: string; readonly description: string; readonly cid: string }[]
  /** Mean loss (nats per token) of the chain's genesis model on held-out text, from the genesis record. */
  readonly heldOut: { readonly loss: number; readonly tokens: number; readonly dataset: string } | null
  /** Certified versions accepted since genesis. */
  readonly certifiedVersions: number
  /** The architecture itself (what a trainer probe times a synthetic copy of). */
  readonly architecture: Architecture
}

/** The card of the model `rules` (the chain A head) names, over every accepted block. */
export function modelCard(rules: AcceptedBlock, blocks: readonly AcceptedBlock[], heldOut: ModelCard['heldOut']): ModelCard {
  const meta = rules.document as MetaDocument
  const a = meta.architecture
  const datasets = blocks
    .filter((b) => b.header.chain_id === 'D' && (b.document as DatasetDocument | null)?.kind === DATASET_KIND)
    .map((b) => {
      const d = b.document as DatasetDocument
      return { name: d.name, split: d.split, license: d.license, description: d.description, cid: b.cid.toString() }
    })
  const certifiedVersions = blocks.filter((b) => b.header.chain_id === 'B' && b.expertVersion > 0).length
  // The shapes chain A's architecture fixes (the light client holds headers, not tensor indexes).
  return { architecture: a, network: meta.network, parameters: parameterCount(a), layers: a.n_layers, experts: a.n_experts, topK: a.top_k, context: a.max_seq_len, vocabulary: a.vocab_size, datasets, heldOut, certifiedVersions }
}
