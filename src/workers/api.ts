/**
 * The client's interface: what the site's UI asks of the client worker (src/workers/client.worker.ts)
 * over comlink. The UI imports these types only; every value crossing is structured-cloneable
 * (strings, numbers, plain objects, Uint8Array), and callbacks are passed as comlink proxies.
 *
 * The client worker owns everything that is not drawing: relays, header sync and verification
 * (with the verify pool), the IndexedDB caches, Helia, and the engine with its WebGPU device.
 *
 * @module
 */
import type { ChainId } from '../chain/header.ts'
import type { Json } from '../chain/json.ts'
import type { GenesisRecordView } from '../explorer/record.ts'

// ------------------------------------------------------------------------------------ settings

/** Which engine backend to run: `auto` is WebGPU when an adapter exists, else ONNX Runtime WASM. */
export type BackendChoice = 'auto' | 'webgpu' | 'ort-wasm' | 'cpu'
export type BackendName = 'webgpu' | 'ort-wasm' | 'cpu'
export const BACKEND_CHOICES: readonly BackendChoice[] = Object.freeze(['auto', 'webgpu', 'ort-wasm', 'cpu'])

export interface Settings {
  /** Relay base URLs (e.g. `http://127.0.0.1:8080`), tried in this order for blocks. */
  readonly relays: readonly string[]
  /** Most bytes the tile cache keeps before evicting the least recently used tiles. */
  readonly cacheBudgetBytes: number
  readonly backend: BackendChoice
  /**
   * The trust anchor: chain A's genesis CID. null until pinned; the first sync pins the genesis it
   * verifies (trust on first use), and later syncs refuse a relay whose chain starts elsewhere.
   */
  readonly trustAnchor: string | null
}

export const DEFAULT_CACHE_BUDGET = 512 * 1024 * 1024

// ------------------------------------------------------------------------------------ status

export type RelayHealth = 'unknown' | 'up' | 'down' | 'wrong-network'

export interface RelayLie {
  /** The CID whose bytes did not hash to it. */
  readonly cid: string
  /** What the block is, when the client knows (e.g. `tile 0 of layer0.expert1`). */
  readonly what: string
  readonly at: number
}

export interface RelayState {
  readonly url: string
  readonly health: RelayHealth
  /** Why it is down or on the wrong network. */
  readonly error: string | null
  /** Blocks it served that did not match their CID (newest first): it lied. Never used while an honest relay has the block. */
  readonly lies: readonly RelayLie[]
  /** Verified blocks it served, and their bytes. */
  readonly blocks: number
  readonly bytes: number
  /** ms since the epoch of the last good answer. */
  readonly lastSeen: number | null
  /** When the next reconnect is tried (down relays back off exponentially). */
  readonly retryAt: number | null
}

export interface HeadInfo {
  readonly height: number
  readonly cid: string
}

export interface SyncState {
  /** `syncing` while headers are fetched and verified, `live` once caught up and subscribed. */
  readonly phase: 'starting' | 'syncing' | 'live' | 'offline' | 'error'
  /** The pinned trust anchor (chain A genesis CID), null before the first sync. */
  readonly anchor: string | null
  readonly heads: Readonly<Record<ChainId, HeadInfo | null>>
  /** Headers verified and accepted by this page. */
  readonly verified: number
  /** Headers a relay offered that failed a rule here. */
  readonly rejected: readonly { readonly cid: string; readonly code: string; readonly field: string; readonly message: string; readonly relay: string }[]
  readonly error: string | null
  /** Ms from the client's start (or last restart) to its first `live`: the cost of a sync; null until then. */
  readonly liveMs: number | null
  /** The newest validator checkpoint this page verified: everything at or below these heads is final. null before one. */
  readonly finality: { readonly number: number; readonly heads: Readonly<Record<'A' | 'C' | 'D', HeadInfo | null>> } | null
}

export interface CacheUsage {
  /** Tile cache (payload blocks): bytes and blocks held, against the budget. */
  readonly tileBytes: number
  readonly tileBlocks: number
  readonly budgetBytes: number
  /** Header cache (headers, documents, certificates): not evicted. */
  readonly headerBytes: number
  readonly headerBlocks: number
  /** navigator.storage.estimate(), when the browser gives one. */
  readonly quotaBytes: number | null
  /** Set after a quota error the client could not recover from by evicting. */
  readonly error: string | null
}

export interface BackendInfo {
  readonly name: BackendName
  /** E.g. `WebGPU nvidia ampere` or `ONNX Runtime Web (wasm, 4 threads)`. */
  readonly detail: string
  /** Why this backend and not the one asked for (e.g. `no WebGPU adapter`), or null. */
  readonly fallback: string | null
}

export interface ClientStatus {
  readonly relays: readonly RelayState[]
  readonly sync: SyncState
  readonly cache: CacheUsage
  /** The engine's backend once a chat has started one. */
  readonly backend: BackendInfo | null
}

// ------------------------------------------------------------------------------------ explorer

export type PolStatus = 'genesis' | 'certified' | 'none'

/** One accepted block, as lists and search results show it. */
export interface BlockSummary {
  readonly cid: string
  readonly chain: ChainId
  readonly index: number
  readonly blockType: string
  readonly expertName: string | null
  readonly layer: number | null
  readonly timestamp: number
  /** Compressed secp256k1 key, hex. */
  readonly minerPub: string
  readonly difficulty: number
  readonly payload: string
  readonly payloadSize: number
  readonly prev: string | null
  readonly dependsOn: readonly string[]
  readonly supersedes: string | null
  /** Chain B: expert version (0 initial). */
  readonly version: number
  /** Chain B: how the version is certified; chains A, C, D: `none`. */
  readonly pol: PolStatus
  /** Chain B: this block is the param index's current version of its expert. */
  readonly current: boolean
  /**
   * Chains A, C, D: `final` once a validator checkpoint (verified here) holds it, so no branch can
   * displace it; `pending` until then. null on chain B (its blocks are never displaced) or when not known.
   */
  readonly finality: 'final' | 'pending' | null
}

export interface BlockDetail extends BlockSummary {
  /** Every header field, as JSON (CIDs as strings, bytes as hex). */
  readonly header: { readonly [key: string]: Json }
  readonly headerHex: string
  /** The chain A block whose rules apply. */
  readonly meta: string
  /** Cumulative work (linear chains) or own work (chain B), decimal. */
  readonly work: string
  /** Decoded document (chains A, C, D). */
  readonly document: Json
  /** Chain B: the payload's tensors. */
  readonly tensors: readonly { readonly name: string; readonly dtype: string; readonly shape: readonly number[]; readonly offset: number; readonly size: number }[] | null
  /** PoL certificate, when the block has one. */
  readonly certificate: { readonly cid: string; readonly body: Json; readonly signers: readonly string[] } | null
  /** Chain B: tiles in the payload (the Verify action can check any one's Merkle path). */
  readonly tiles: number
  /** Blocks that name this one in depends_on or supersedes. */
  readonly dependents: readonly string[]
}

/**
 * A block page: the explorer's detail plus the Proof-of-Learning links the client finds in its own
 * chain (a certified version and the chain C reward minted for its certificate).
 */
export interface BlockPage extends BlockDetail {
  /** Chain B, PoL certified: the chain C reward whose `pol` names this block's certificate. */
  readonly reward: { readonly cid: string; readonly amount: number | null; readonly to: string | null } | null
  /** Chain C reward: the chain B block whose certificate it pays for. */
  readonly rewardFor: string | null
}

/** A submission a relay refused (`GET /api/rejections`): reported by the relay, not verified here. */
export interface RejectionInfo {
  /** The refused block's CID, when the submission got as far as having one. */
  readonly cid: string | null
  readonly code: string
  /** What the rule code means (src/errors.ts RULES), when it is a rule code. */
  readonly rule: string | null
  readonly field: string | null
  readonly message: string
  readonly at: number
  readonly chain: string | null
  readonly blockType: string | null
}

export interface RejectionList {
  /** The relay that answered, null when none did. */
  readonly relay: string | null
  readonly rejections: readonly RejectionInfo[]
  /** Why no relay answered. */
  readonly error: string | null
}

/**
 * A chain D dataset's training record (its document's `record`): the file fetched whole through the
 * page's verified path (the cache, else a relay, each block checked against its CID, the UnixFS
 * tree's links and sizes against the root and the document's `record_size`), then parsed as a
 * genesis record (src/explorer/record.ts). The CID and size come from the page's own verified chain,
 * never from a relay's JSON. `code` on failure: `not-found` (no such chain D block here),
 * `no-record` (its document links none), `too-large`, `unavailable` (no relay served bytes that
 * match), `invalid` (the file's tree breaks a rule), `not-a-record` (verified bytes, but not a
 * training record: the message names the field).
 */
export type DatasetRecordFile =
  | { readonly ok: true; readonly cid: string; readonly size: number; readonly bytes: Uint8Array; readonly record: GenesisRecordView }
  | { readonly ok: false; readonly code: 'not-found' | 'no-record' | 'too-large' | 'unavailable' | 'invalid' | 'not-a-record'; readonly message: string }

/** Chain B as a graph: a node per block, edges for depends_on (within B) and supersedes. */
export interface DagView {
  readonly nodes: readonly BlockSummary[]
  readonly edges: readonly { readonly from: string; readonly to: string; readonly kind: 'depends_on' | 'supersedes' }[]
}

export type VerifyStepStatus = 'pending' | 'passed' | 'failed' | 'skipped'

export interface VerifyStep {
  /** Stable id: `cid`, `pow`, `signature`, `rules`, `pol`, `anchor`, `tile-root`, `tile-node-1`, ..., `tile-leaf`. */
  readonly id: string
  readonly label: string
  readonly status: VerifyStepStatus
  /** What was checked, with the numbers (e.g. `20 leading zero bits >= difficulty 8`) or why it failed. */
  readonly detail: string
}

export interface VerifyReport {
  readonly cid: string
  readonly ok: boolean
  readonly steps: readonly VerifyStep[]
  /** The trust anchor the chain was checked against. */
  readonly anchor: string | null
  /** The tile whose Merkle path was checked, if any. */
  readonly tile: number | null
}

// ------------------------------------------------------------------------------------ chat

export interface Sampling {
  /** 0 is greedy (argmax). */
  readonly temperature: number
  readonly topP: number
  readonly maxTokens: number
  readonly seed: number
}

export const DEFAULT_SAMPLING: Sampling = Object.freeze({ temperature: 0.8, topP: 0.9, maxTokens: 128, seed: 42 })

export interface UsedExpertInfo {
  readonly name: string
  readonly layer: number
  readonly expert: number
  /** The chain B block the weights came from. */
  readonly cid: string
  readonly version: number
  readonly pol: PolStatus
}

export interface ChatProgress {
  /** `fetch`: tiles arriving and being verified; `load`: uploading to the device. */
  readonly phase: 'sync' | 'fetch' | 'load' | 'run'
  /** The block being loaded, when one is. */
  readonly block: string | null
  /** Bytes and tiles fetched over the network so far in this answer, and those read from the cache. */
  readonly bytes: number
  readonly tiles: number
  readonly cachedTiles: number
  /** Total bytes of the blocks this step needs, when known (for a determinate bar). */
  readonly totalBytes: number | null
}

export type ChatEvent =
  | { readonly type: 'backend'; readonly backend: BackendInfo }
  | { readonly type: 'progress'; readonly progress: ChatProgress }
  | { readonly type: 'token'; readonly id: number; readonly text: string }

export interface ChatResult {
  readonly text: string
  readonly tokens: readonly number[]
  readonly experts: readonly UsedExpertInfo[]
  readonly backend: BackendInfo
  /** `stopped` after stop(), `length` at maxTokens, `end` at an end token. */
  readonly finish: 'end' | 'length' | 'stopped'
  readonly stats: {
    readonly promptTokens: number
    readonly generatedTokens: number
    readonly tokensPerSecond: number
    /** Prompt submitted to first generated token. */
    readonly firstTokenMs: number
    /**
     * Where the first token's time went when this answer had to start the model (zeros when it was
     * already running): the backend (device, buffers), and fetching, verifying and uploading the
     * shared blocks (embedding, routers, tokenizer) with the kernels compiled; the rest is experts and the prompt.
     */
    readonly setup: { readonly backendMs: number; readonly sharedMs: number }
    /** Network fetches for this answer: tiles and bytes; tiles served by the cache. */
    readonly fetchedTiles: number
    readonly fetchedBytes: number
    readonly cachedTiles: number
  }
}

/**
 * Why a chat could not run. `expert` names the block when one could not be had verified (every
 * relay that has it served bytes that do not match; or none has it), `relays` the ones that lied.
 */
export interface ChatFailure {
  readonly code: string
  readonly message: string
  readonly expert: string | null
  readonly relays: readonly string[]
}

// ------------------------------------------------------------------------------------ the API

export interface ClientApi {
  /** Load settings (IndexedDB), open caches, start syncing. `overrides` come from the URL (`?relay=`). */
  start(overrides?: Partial<Settings>): Promise<ClientStatus>
  status(): Promise<ClientStatus>
  /** Called on every status change (relay health, sync progress, cache usage). */
  onStatus(listener: (status: ClientStatus) => void): Promise<void>
  /** Called for each block accepted after the initial sync (the explorer's live updates). */
  onBlock(listener: (block: BlockSummary) => void): Promise<void>

  settings(): Promise<Settings>
  /** Change settings; relays and trust anchor changes restart sync. */
  updateSettings(patch: Partial<Settings>): Promise<ClientStatus>

  /**
   * The chat is open: once the model is known, start the backend and compile its kernels (no
   * weights are fetched), so the first answer does not wait for them.
   */
  prepareChat(): Promise<void>
  /** Answer a prompt: fetch and verify the experts it routes to, stream tokens, report what ran. */
  chat(prompt: string, sampling: Sampling, onEvent: (event: ChatEvent) => void): Promise<{ ok: true; result: ChatResult } | { ok: false; failure: ChatFailure }>
  /** Stop the running chat (its promise resolves with finish `stopped`). */
  stop(): Promise<void>

  /** Newest first, at most `limit`, below index `before` when given. */
  listBlocks(chain: ChainId, limit: number, before?: number): Promise<BlockSummary[]>
  /** By CID (header or payload), height (`A:3`, or a bare number: every chain), expert name (prefix), or public key (hex). */
  search(query: string): Promise<BlockSummary[]>
  block(cid: string): Promise<BlockPage | null>
  /** Refused submissions, newest first, as the first relay that answers reports them. */
  rejections(limit: number): Promise<RejectionList>
  /** What a relay says about a block this page does not have: its rejection, or null. */
  rejectionOf(cid: string): Promise<(RejectionInfo & { readonly relay: string }) | null>
  /** The training record a chain D dataset block (header CID) links, fetched and checked against its CID. */
  datasetRecord(cid: string): Promise<DatasetRecordFile>
  /** The param index of the page's own verified chain: expert name -> current block and version. */
  currentExperts(): Promise<Record<string, { readonly cid: string; readonly version: number }>>
  dag(): Promise<DagView>
  /** Re-check a block step by step (onStep as each one settles); chain B checks `tile`'s Merkle path (default 0). */
  verify(cid: string, tile: number | null, onStep?: (step: VerifyStep) => void): Promise<VerifyReport>

  clearCache(): Promise<CacheUsage>
}

// ------------------------------------------------------------------------------------ wallet

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

export type CandidateStatus = 'pending' | 'accepted' | 'rejected'

/** A candidate as the relay's PoL service reports it (`GET /api/candidates/<cid>`, `/api/miners/<key>`). */
export interface CandidateInfo {
  readonly cid: string
  readonly status: CandidateStatus
  readonly expert: string | null
  readonly code: string | null
  readonly message: string | null
  readonly lossBefore: number | null
  readonly lossAfter: number | null
  /** Credits minted for it, and the chain C reward block. */
  readonly amount: number | null
  readonly reward: string | null
  /** Whether the reward block is under a validator checkpoint (final) or not yet (pending); null without a reward, or when the relay did not say. */
  readonly rewardFinal: boolean | null
  readonly certificate: string | null
  readonly receivedAt: number | null
  readonly decidedAt: number | null
}

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

// ------------------------------------------------------------------------------------ donating

/** What trains the expert: the CPU reference, or WebGPU once a trainer exists. */
export type TrainBackend = 'cpu' | 'webgpu'
export const TRAIN_BACKENDS: readonly TrainBackend[] = Object.freeze(['cpu', 'webgpu'])

export interface TrainBackendInfo {
  readonly name: TrainBackend
  readonly available: boolean
  /** E.g. `CPU (JavaScript reference, one thread)`. */
  readonly detail: string
  /** Why it is not available. */
  readonly reason: string | null
}

export interface DeviceInfo {
  /** navigator.hardwareConcurrency, navigator.deviceMemory (GiB) where the browser tells. */
  readonly cores: number | null
  readonly memoryGiB: number | null
  /** The WebGPU adapter (`google swiftshader`), null without one. */
  readonly gpu: string | null
  readonly backends: readonly TrainBackendInfo[]
}

/** The job being trained (src/pol/job.ts, the fields the UI shows). */
export interface DonateJob {
  readonly id: string
  readonly expert: string
  readonly base: string
  readonly baseVersion: number
  readonly steps: number
  readonly batchSize: number
  readonly seqLen: number
  readonly learningRate: number
}

/**
 * Where a donation run is: `leasing` a job, `fetching` and verifying the model and data,
 * `training`, `self-check` on the public validation pool, `submitting` (PoW and upload), `pending`
 * with the validators, `done` (the outcome is in), `waiting` for a job (none free, or over quota),
 * `stopped` by the user, `error`.
 */
export type DonatePhase = 'idle' | 'leasing' | 'fetching' | 'training' | 'self-check' | 'submitting' | 'pending' | 'done' | 'waiting' | 'stopped' | 'error'

export interface DonateOutcome {
  /** `no-gain`: the self-check found no gain worth submitting, nothing was sent. */
  readonly status: 'accepted' | 'rejected' | 'no-gain'
  readonly cid: string | null
  readonly expert: string
  readonly code: string | null
  readonly message: string | null
  /** Validators' losses (accepted, or rejected on the threshold), else the self-check's. */
  readonly lossBefore: number | null
  readonly lossAfter: number | null
  /** (before - after) / before. */
  readonly improvement: number | null
  /** The chain's PoL threshold: accepted iff improvement >= delta. */
  readonly delta: number | null
  readonly amount: number | null
  readonly reward: string | null
  /** Whether the reward is final yet (a validator checkpoint holds it); null when unknown. */
  readonly rewardFinal: boolean | null
  readonly certificate: string | null
  readonly at: number
}

export interface DonateState {
  readonly phase: DonatePhase
  readonly backend: TrainBackend
  readonly keepGoing: boolean
  readonly relay: string | null
  readonly job: DonateJob | null
  /** The expert being improved: the job's, or a followed candidate's (known from the stored run). */
  readonly expert: string | null
  /** What is being fetched and verified (`model`, `training data`, `validation pool`). */
  readonly fetching: string | null
  /** Steps done of `steps`, and the training loss after each. */
  readonly step: number
  readonly steps: number
  readonly losses: readonly number[]
  readonly tokensPerSecond: number | null
  readonly selfCheck: { readonly lossBefore: number; readonly lossAfter: number; readonly windows: number; readonly improvement: number } | null
  readonly delta: number | null
  readonly candidate: string | null
  /** How this run began after a reload: following a submitted candidate, or restarting its job. */
  readonly resumed: 'follow' | 'restart' | null
  /** The latest outcome, and this session's (newest first). */
  readonly outcome: DonateOutcome | null
  readonly history: readonly DonateOutcome[]
  /** Credits earned in this session. */
  readonly earned: number
  readonly error: { readonly code: string; readonly message: string } | null
  /** `waiting`: when the next try is. */
  readonly retryAt: number | null
  readonly startedAt: number | null
}

export interface DonateOptions {
  /** The relay to take jobs from and submit to (the client's). */
  readonly relay: string
  readonly backend: TrainBackend
  readonly keepGoing: boolean
}

/** The miner worker (src/workers/miner.worker.ts): the wallet and the donation runs. */
export interface MinerApi {
  wallet(): Promise<WalletStatus>
  /** A new random key; refused (E_WALLET_EXISTS) while a wallet exists. */
  createWallet(): Promise<WalletResult>
  /** A pasted secret key (hex); replacing an existing wallet needs `replace`. */
  importWallet(secretKey: string, replace: boolean): Promise<WalletResult>
  /** The secret key, to be shown once with {@link WalletExport.warning}; records the export time. */
  exportWallet(): Promise<WalletExport | { readonly ok: false; readonly code: string; readonly message: string }>
  /** Delete the wallet from this browser (stops donating first). */
  forgetWallet(): Promise<WalletStatus>
  /** Balance and history at `relay`; null without a wallet. */
  activity(relay: string): Promise<WalletActivity | null>

  device(): Promise<DeviceInfo>
  donateState(): Promise<DonateState>
  /** Called with the whole state whenever it changes (at most every 100 ms). */
  onDonate(listener: (state: DonateState) => void): Promise<void>
  /** After a page load: follow a submitted candidate, restart an interrupted job; idle when no run was active. */
  resume(): Promise<DonateState>
  startDonating(options: DonateOptions): Promise<DonateState>
  /** Abort the run (training stops at the next step); a submitted candidate stays with the validators. */
  stopDonating(): Promise<DonateState>
}

export interface WalletExport {
  readonly ok: true
  readonly secretKey: string
  readonly warning: string
}
