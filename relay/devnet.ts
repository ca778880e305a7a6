/**
 * `blyan init`: a new devnet from an imported model.
 *
 * Makes validator keys, then submits through the full node, exactly as any network submission:
 * the genesis meta block (architecture, tokenizer, PoW/PoL/reward parameters, validator set), one
 * chain D block per dataset, the validators' approval of each (gold) and chain A block 1 that brings
 * them into force (src/chain/governance.ts), and one chain B block per parameter group (embedding, a router per
 * layer, every expert), each signed by validator 0 (initial versions are vouched for by a validator);
 * then checkpoint 0, signed by every validator key, so the genesis is final before anyone else can
 * submit a competing block.
 *
 * Also the layout of a data directory (the chain store, validator keys, jobs.json) and opening the
 * store of one that exists, for the other commands and `serve`.
 *
 * @module
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { documentPayload, sealBlock, type HeaderDraft } from '../src/chain/build.ts'
import { compareBytes } from '../src/codec/cbor.ts'
import { encodeDataset, type DatasetDocument, type DatasetSplit } from '../src/chain/dataset.ts'
import { EMBEDDING_NAME } from '../src/chain/header.ts'
import { publicKeyOf, randomSecretKey, type SecretKey } from '../src/chain/keys.ts'
import { encodeMeta, type Architecture, type MetaDocument, type PolParams } from '../src/chain/meta.ts'
import { encodeSubmission } from '../src/chain/submission.ts'
import type { AcceptedBlock } from '../src/chain/view.ts'
import { type ImportedModel, type ImportedTokenizer } from '../src/model/imported.ts'
import { blockNames } from '../src/chain/params.ts'
import { buildPayload } from '../src/tensor/payload.ts'
import { importPayload } from '../src/tensor/tiles.ts'
import { encodeCheckpoint } from '../src/chain/checkpoint.ts'
import { openChainStore } from './node/chain-store.ts'
import { CheckpointSigner, memoryVoteLog } from './node/finality.ts'
import type { FullNode } from './node/full-node.ts'
import type { ChainStore } from './node/interface.ts'
import { decisionSubmission, nextRulesSubmission } from './node/governance.ts'

/** Where a devnet keeps its files inside the data directory. */
export const STORE_FILE = 'chain.sqlite'
export const KEYS_DIR = 'keys'
/** Node policy: the training settings of the jobs this node publishes (JobSettings JSON; absent: the defaults). */
export const JOBS_FILE = 'jobs.json'
/** Peers a node made by `blyan init --join` dials at every start (JSON list of multiaddrs). */
export const PEERS_FILE = 'peers.json'

/** The multiaddrs in `<data>/peers.json` (none when the file is absent). */
export function readPeersFile(dataDir: string): string[] {
  const path = join(dataDir, PEERS_FILE)
  if (!existsSync(path)) return []
  const peers = JSON.parse(readFileSync(path, 'utf8')) as unknown
  if (!Array.isArray(peers) || !peers.every((p) => typeof p === 'string')) throw new Error(`${path}: expected a JSON list of multiaddrs`)
  return peers
}

export interface DatasetFile {
  /** Dataset name in chain D (also its role when it is `train` or `validation`). */
  readonly name: string
  readonly split: DatasetSplit
  readonly bytes: Uint8Array
  readonly license: string
  readonly description: string
  /** A record of how the genesis model was trained on this data (a genesis devnet's JSON record), linked as `record`. */
  readonly record?: Uint8Array
}

/** A model whose chain B payloads are already built (a genesis directory's): stored byte for byte. */
export interface PrebuiltModel {
  readonly architecture: Architecture
  readonly tokenizer: ImportedTokenizer | null
  /** Block name -> its payload, for every name of blockNames(architecture). */
  readonly payloads: ReadonlyMap<string, Uint8Array>
}

export interface InitOptions {
  readonly node: FullNode
  readonly dataDir: string
  readonly model: ImportedModel | PrebuiltModel
  /** Weight matrices as int8 TensorBlocks (default) or full precision. Vectors are always fp32. Ignored for a PrebuiltModel. */
  readonly dtype?: 'int8' | 'f32'
  readonly validators?: number
  readonly datasets?: readonly DatasetFile[]
  /** PoW difficulty of every chain (default 8: a few hundred hashes, fast but real). */
  readonly difficulty?: number
  readonly network?: string
  /** PoL parameters (default delta 0.005, 16 sequences of up to 64 tokens). */
  readonly pol?: PolParams
  readonly onProgress?: (event: { readonly done: number; readonly total: number; readonly what: string }) => void
}

export interface InitResult {
  readonly genesis: AcceptedBlock
  readonly blocks: number
  readonly validatorKeys: readonly string[]
}

/** The chain store file of a data directory. */
export function storePath(dataDir: string): string {
  return join(dataDir, STORE_FILE)
}

/** Open the store of a data directory that must already hold one. */
export function openExistingStore(dataDir: string): ChainStore {
  const path = storePath(dataDir)
  if (!existsSync(path)) throw new Error(`${dataDir}: no devnet here (no ${STORE_FILE}); create one with blyan init`)
  return openChainStore(path)
}

/** Secret key files: one hex line each, readable by the owner only. */
export function writeKeyFile(path: string, key: SecretKey): void {
  writeFileSync(path, Buffer.from(key).toString('hex') + '\n', { mode: 0o600 })
  chmodSync(path, 0o600)
}

/** The validator keys of a data directory (`keys/validator-N.key`, in file order), with their paths. */
export function readValidatorKeys(dataDir: string): { keys: SecretKey[]; files: string[] } {
  const keysDir = join(dataDir, KEYS_DIR)
  if (!existsSync(keysDir)) return { keys: [], files: [] }
  const files = readdirSync(keysDir).filter((f) => /^validator-\d+\.key$/.test(f)).sort().map((f) => join(keysDir, f))
  return { keys: files.map(readKeyFile), files }
}

/** Give a node its own validator key (`blyan init --join --validator-key`): `keys/validator-0.key`, no validators.json. */
export function writeValidatorKey(dataDir: string, key: SecretKey): void {
  const keysDir = join(dataDir, KEYS_DIR)
  mkdirSync(keysDir, { recursive: true })
  const path = join(keysDir, 'validator-0.key')
  if (existsSync(path)) throw new Error(`${path} exists: refusing to overwrite a key`)
  writeKeyFile(path, key)
}

export function readKeyFile(path: string): SecretKey {
  const text = readFileSync(path, 'utf8').trim()
  if (!/^[0-9a-f]{64}$/.test(text)) throw new Error(`${path}: expected 64 hex characters (a secp256k1 secret key)`)
  return Uint8Array.from(Buffer.from(text, 'hex'))
}

export async function initDevnet(options: InitOptions): Promise<InitResult> {
  const { node, model } = options
  const difficulty = options.difficulty ?? 8
  const keysDir = join(options.dataDir, KEYS_DIR)
  mkdirSync(keysDir, { recursive: true })
  const count = options.validators ?? 1
  if (!Number.isInteger(count) || count < 1 || count > 64) throw new RangeError('validators: 1..64')
  const keys = Array.from({ length: count }, () => randomSecretKey()).sort((a, b) => compareBytes(publicKeyOf(a), publicKeyOf(b)))
  const keyFiles = keys.map((key, i) => {
    const path = join(keysDir, `validator-${i}.key`)
    if (existsSync(path)) throw new Error(`${path} exists: refusing to overwrite a key`)
    writeKeyFile(path, key)
    return path
  })
  writeFileSync(join(keysDir, 'validators.json'), JSON.stringify(keys.map((k) => Buffer.from(publicKeyOf(k)).toString('hex')), null, 2) + '\n')
  const signer = keys[0] as SecretKey

  let clock = Date.now()
  const tick = (): number => (clock = Math.max(clock + 1, Date.now()))
  const names = blockNames(model.architecture)
  const datasetCount = options.datasets?.length ?? 0
  const total = 1 + 2 * datasetCount + (datasetCount > 0 ? 1 : 0) + names.length
  let done = 0
  const progress = (what: string): void => options.onProgress?.({ done: ++done, total, what })

  // Genesis: the rules, and the tokenizer file it links.
  const tokenizer = model.tokenizer === null ? null : await importPayload(model.tokenizer.bytes)
  const meta: MetaDocument = {
    kind: 'blyan/meta',
    version: 1,
    network: options.network ?? 'blyan-devnet',
    architecture: model.architecture,
    tokenizer: model.tokenizer === null || tokenizer === null ? null : {
      format: model.tokenizer.format,
      payload: tokenizer.cid,
      size: model.tokenizer.bytes.length,
      bos_id: model.tokenizer.bos_id,
      eos_id: model.tokenizer.eos_id
    },
    pow: { A: difficulty, B: difficulty, C: difficulty, D: difficulty },
    pol: options.pol ?? { delta: 0.005, eval_sequences: 16, seq_len: Math.min(64, model.architecture.max_seq_len) },
    reward: { base: 1000 },
    validators: keys.map(publicKeyOf)
  }
  const metaDoc = documentPayload(encodeMeta(meta))
  const base = { index: 0, prev: null, expert_name: null, layer_id: null, difficulty, supersedes: null, pol: null }
  const genesisSealed = sealBlock({ ...base, chain_id: 'A', block_type: 'meta', depends_on: [], payload: metaDoc.cid, payload_size: metaDoc.size, timestamp: tick() } as HeaderDraft, signer)
  const genesis = await node.submitCar(await encodeSubmission({ header: genesisSealed.bytes, payload: metaDoc.bytes, files: model.tokenizer === null ? [] : [model.tokenizer.bytes] }))
  progress('genesis')

  // Chain D: the datasets, linear.
  let prev: AcceptedBlock | null = null
  for (const ds of options.datasets ?? []) {
    const content = await importPayload(ds.bytes)
    const record = ds.record === undefined ? null : { record: (await importPayload(ds.record)).cid, record_size: ds.record.length }
    const doc = documentPayload(encodeDataset({
      kind: 'blyan/dataset', version: 1, name: ds.name, license: ds.license, split: ds.split,
      format: 'text/plain; blank-line-separated', content: content.cid, content_size: ds.bytes.length, description: ds.description,
      ...(record ?? {})
    }))
    const sealed = sealBlock({
      ...base, chain_id: 'D', block_type: 'dataset', index: prev === null ? 0 : prev.header.index + 1, prev: prev?.cid ?? null,
      depends_on: [genesis.cid], payload: doc.cid, payload_size: doc.size, timestamp: tick()
    } as HeaderDraft, signer)
    prev = await node.submitCar(await encodeSubmission({ header: sealed.bytes, payload: doc.bytes, files: ds.record === undefined ? [ds.bytes] : [ds.bytes, ds.record] }))
    progress(`dataset ${ds.name}`)
  }
  // The validators approve the genesis datasets (gold: validation and training), and chain A block 1 brings them into force.
  const proposed = (options.datasets ?? []).length === 0 ? [] : node.store.headers('D', 0, prev?.header.index ?? 0, 1 << 16)
  for (const block of proposed) {
    await node.submitCar(await decisionSubmission(node.store, keys, { dataset: block.cid, verdict: 'approve', tier: 'gold' }, tick()))
    progress(`approve ${(block.document as DatasetDocument).name}`)
  }
  if (proposed.length > 0) {
    await node.submitCar(await nextRulesSubmission(node.store, signer, tick()))
    progress('rules with the approved datasets in force')
  }

  // Chain B: one block per parameter group, initial versions.
  const matrixType = options.dtype === 'f32' ? 'fp32' : 'int8'
  for (const name of names) {
    const payload = 'payloads' in model ? model.payloads.get(name) : builtPayload(model, name, matrixType)
    if (payload === undefined) throw new Error(`the model has no payload for ${name}`)
    const file = await importPayload(payload)
    const kind = name === EMBEDDING_NAME ? 'embedding' : name.endsWith('.router') ? 'router' : 'expert'
    const layer = kind === 'embedding' ? null : Number(/^layer(\d+)\./.exec(name)?.[1])
    const sealed = sealBlock({
      ...base, chain_id: 'B', block_type: kind, expert_name: name, layer_id: layer,
      depends_on: [genesis.cid], payload: file.cid, payload_size: payload.length, timestamp: tick()
    } as HeaderDraft, signer)
    await node.submitCar(await encodeSubmission({ header: sealed.bytes, payload }))
    progress(name)
  }

  // Finality: every validator key votes for the heads, so the genesis blocks are final from the start.
  const vote = new CheckpointSigner(keys, memoryVoteLog()).vote(node.store)
  if (vote !== null) await node.submitVote(encodeCheckpoint(vote))
  return { genesis, blocks: total, validatorKeys: keyFiles }
}

function builtPayload(model: ImportedModel, name: string, matrixType: 'int8' | 'fp32'): Uint8Array {
  const tensors = model.blocks.get(name)
  if (tensors === undefined) throw new Error(`the imported model has no ${name}`)
  return buildPayload(tensors.map((t) => ({ name: t.name, values: t.values, shape: t.shape, dtype: t.shape.length === 1 ? 'fp32' : matrixType })))
}
