/**
 * What a model is made of, and where it is read from: the chain A head's rules (architecture,
 * tokenizer link) and one chain B block per parameter group, the newest certified version (the
 * param index). `chainModel` reads it off any validated chain (the page's MemoryChain, the node's
 * store), so the chat, the miners and the node's validators all run the model their own verified
 * chain names, never a list a relay reports.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import type { MetaDocument, Architecture } from '../chain/meta.ts'
import { blockNames } from '../chain/params.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import { fetchUnixfsFile } from '../tensor/tiles.ts'
import { createTokenizer, type Tokenizer } from './tokenizer/index.ts'

/** Bytes by CID from somewhere (a relay, a cache, a store); callers say whether they are verified. */
export type BlockGetter = (cid: CID, signal?: AbortSignal) => Promise<Uint8Array>

/** A parameter block the engine may load. */
export interface BlockRef {
  /** `embedding`, `layer<L>.router` or `layer<L>.expert<E>`. */
  readonly name: string
  /** The chain B block (its header CID): what a generation reports as used. */
  readonly cid: CID
  /** Its payload (UnixFS file) and size. */
  readonly payload: CID
  readonly payloadSize: number
}

/** What to run: the architecture from chain A and the param index's blocks. */
export interface ModelSource {
  readonly architecture: Architecture
  /** Expert name -> block, for every parameter group of the architecture. */
  readonly blocks: ReadonlyMap<string, BlockRef>
}

/** The model a validated chain names. */
export interface ChainModel extends ModelSource {
  readonly meta: MetaDocument
  /** The chain A head whose rules these are. */
  readonly rules: AcceptedBlock
  /** One string per model: the rules block and every block CID (equal keys, equal models). */
  readonly key: string
}

/** A validated chain, as far as the model is concerned: chain A's head and the param index. */
export interface ModelChain {
  head(chain: 'A'): AcceptedBlock | undefined
  paramIndex(): ReadonlyMap<string, AcceptedBlock>
}

/** The block a model loads for a chain B block. */
export function blockRef(block: AcceptedBlock): BlockRef {
  return { name: block.header.expert_name as string, cid: block.cid, payload: block.header.payload, payloadSize: block.header.payload_size }
}

/**
 * The model `chain` names: its chain A head's architecture, and for every parameter group of that
 * architecture the param index's block. When the chain lacks some (a light client still syncing),
 * the answer says which: `{ missing }`, a sentence for the user.
 */
export function chainModel(chain: ModelChain): ChainModel | { readonly missing: string } {
  const rules = chain.head('A')
  if (rules === undefined) return { missing: 'no verified chain A yet' }
  const meta = rules.document as MetaDocument
  const index = chain.paramIndex()
  const blocks = new Map<string, BlockRef>()
  const missing: string[] = []
  for (const name of blockNames(meta.architecture)) {
    const b = index.get(name)
    if (b === undefined) missing.push(name)
    else blocks.set(name, blockRef(b))
  }
  if (missing.length > 0) return { missing: `no verified block yet for ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''}` }
  const key = [rules.cid.toString(), ...[...blocks.values()].map((b) => b.cid.toString())].join(',')
  return { architecture: meta.architecture, blocks, meta, rules, key }
}

/** The tokenizer chain A's rules link (null when they link none), its file read through `get`. */
export async function chainTokenizer(meta: MetaDocument, get: BlockGetter, signal?: AbortSignal): Promise<Tokenizer | null> {
  const t = meta.tokenizer
  if (t === null) return null
  return createTokenizer(t.format, await fetchUnixfsFile(t.payload, t.size, get, signal === undefined ? {} : { signal }), meta.architecture.vocab_size, t.bos_id, t.eos_id)
}
