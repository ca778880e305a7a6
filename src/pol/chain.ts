/**
 * The miner's own verified chain: the same header sync the chat runs (src/net/sync.ts), over one
 * relay, into a MemoryChain. Everything a miner trains on and builds from comes from here: the
 * model (the chain A head's rules and the param index of accepted, certified versions), the
 * version a job supersedes, its training dataset, the validation pool, the rules and router a
 * candidate links. A relay's reports (the job board, `/api/status`) only say where to look; a job
 * that names anything this chain does not hold is refused before any training.
 *
 * Kept between jobs: each `sync()` takes only the headers it lacks.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { cidMatches } from '../codec/cbor.ts'
import type { DatasetDocument } from '../chain/dataset.ts'
import { poolsInForce } from '../chain/governance.ts'
import { MemoryChain } from '../chain/memory.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import { reject } from '../errors.ts'
import { type Tokenizer } from '../model/tokenizer/index.ts'
import { chainModel, chainTokenizer, type BlockGetter, type ChainModel } from '../model/source.ts'
import { relayBlockGetter, type RelayClient } from '../net/relay-client.ts'
import { HeaderSync, type Rejection } from '../net/sync.ts'
import { inlinePool } from '../net/verify-pool.ts'
import { fetchUnixfsFile } from '../tensor/tiles.ts'

export interface MinerChainOptions {
  /** The chain A genesis CID to trust, or null to pin the first one the relay serves (trust on first use). */
  readonly anchor?: string | null
  /** The clock rules judge timestamps by. */
  readonly now?: () => number
}

/** The verified chain cannot give what a miner needs yet (no rules, a parameter group without a version). */
export class ChainNotReadyError extends Error {
  override readonly name = 'ChainNotReadyError'
  readonly code = 'NOT_READY'
}

export class MinerChain {
  readonly relay: RelayClient
  readonly chain = new MemoryChain()
  readonly #sync: HeaderSync
  readonly #fetch: (cid: CID, signal?: AbortSignal) => Promise<Uint8Array>

  constructor(relay: RelayClient, options: MinerChainOptions = {}) {
    this.relay = relay
    this.#fetch = relayBlockGetter(relay)
    this.#sync = new HeaderSync({
      chain: this.chain,
      pool: inlinePool(),
      getBlock: (cid, what, signal) => this.block(cid, what, signal),
      anchor: options.anchor ?? null,
      ...(options.now === undefined ? {} : { now: options.now })
    })
  }

  /** The genesis this chain starts at (pinned on the first sync when none was given). */
  get anchor(): string | null {
    return this.#sync.anchor
  }

  /** Headers the relay offered that failed a rule here. */
  get rejected(): readonly Rejection[] {
    return this.#sync.rejected
  }

  /** Take every header the relay has beyond this chain, each checked by every rule. */
  async sync(signal?: AbortSignal): Promise<void> {
    await this.#sync.syncRelay(this.relay, signal)
  }

  /** A block's bytes from the relay, checked against the CID that names them. */
  async block(cid: CID, what: string, signal?: AbortSignal): Promise<Uint8Array> {
    const bytes = await this.#fetch(cid, signal)
    if (!cidMatches(cid, bytes)) reject('E_CID', what, `${this.relay.url} served bytes for ${cid} that do not hash to it`)
    return bytes
  }

  /** `block` as a BlockGetter (tiles, UnixFS files). */
  getter(what: string, signal?: AbortSignal): BlockGetter {
    return (cid, s) => this.block(cid, what, s ?? signal)
  }

  /** The model this chain names. */
  model(): ChainModel {
    const m = chainModel(this.chain)
    if ('missing' in m) throw new ChainNotReadyError(`the verified chain cannot make a model yet: ${m.missing}`)
    return m
  }

  /** The current version of an expert: the param index's block (undefined before its first). */
  current(expert: string): AcceptedBlock | undefined {
    return this.chain.paramIndex().get(expert)
  }

  /** The tokenizer chain A links, its file checked block by block. */
  async tokenizer(model: ChainModel, signal?: AbortSignal): Promise<Tokenizer> {
    const tokenizer = await chainTokenizer(model.meta, this.getter('tokenizer', signal), signal)
    if (tokenizer === null) throw new ChainNotReadyError('chain A links no tokenizer: there is no text to train on')
    return tokenizer
  }

  /** An accepted chain D dataset block (E_DATASET for a CID this chain does not hold as one). */
  dataset(cid: CID): { readonly block: AcceptedBlock; readonly document: DatasetDocument } {
    const block = this.chain.get(cid)
    if (block === undefined || block.header.chain_id !== 'D' || block.header.block_type !== 'dataset') reject('E_DATASET', 'dataset', `${cid} is not a dataset of the verified chain D`)
    return { block, document: block.document as DatasetDocument }
  }

  /**
   * The first validation pool in force under the chain A head (src/chain/governance.ts). The
   * validators judge on the pool their beacon picks, which is this one while one pool is in force.
   */
  validationPool(): CID {
    const head = this.chain.head('A')
    const pool = head === undefined ? undefined : poolsInForce(this.chain, head).validation[0]
    if (pool === undefined) throw new ChainNotReadyError('no validation pool is in force on the verified chain (validators have approved none)')
    return pool
  }

  /** The text of a verified chain D dataset, every block of it checked. */
  async datasetText(cid: CID, signal?: AbortSignal): Promise<string> {
    const { document } = this.dataset(cid)
    return new TextDecoder().decode(await fetchUnixfsFile(document.content, document.content_size, this.getter('dataset', signal)))
  }
}
