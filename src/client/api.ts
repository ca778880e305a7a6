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
import type { Architecture } from '../chain/meta.ts'
import type { Settings } from '../store/settings.ts'
import type { CacheUsage } from '../store/caches.ts'
import type { TrainBackend } from '../store/miner-run.ts'
import type { RelayState } from '../net/relays.ts'
import type { ModelCard } from '../explorer/model-card.ts'
import type { PolStatus, BlockSummary, BlockPage, RejectionInfo, RejectionList, DatasetRecordFile, DagView, VerifyStep, VerifyReport } from '../explorer/types.ts'
import type { WalletStatus, WalletResult, WalletActivity, WalletExport } from '../wallet/types.ts'
import type { DatasetInfo } from '../net/relay-api.ts'
import type { NetworkStatus } from '../net/relay-client.ts'
import type { ProposalRequest as DatasetProposal } from '../chain/proposal.ts'

// The types the client passes on are defined by the layers that make them; the UI finds them all here.
export type { BackendChoice, Settings } from '../store/settings.ts'
export { BACKEND_CHOICES, DEFAULT_CACHE_BUDGET } from '../store/settings.ts'
export type { CacheUsage } from '../store/caches.ts'
export type { TrainBackend } from '../store/miner-run.ts'
export { TRAIN_BACKENDS } from '../store/miner-run.ts'
export type { RelayHealth, RelayLie, RelayState } from '../net/relays.ts'
export type { ModelCard } from '../explorer/model-card.ts'
export type { PolStatus, BlockSummary, BlockDetail, BlockPage, RejectionInfo, RejectionList, DatasetRecordFile, DagView, VerifyStepStatus, VerifyStep, VerifyReport } from '../explorer/types.ts'
export type { WalletInfo, WalletStatus, WalletResult, CandidateStatus, CandidateInfo, WalletActivity, WalletExport } from '../wallet/types.ts'
export type { DatasetInfo } from '../net/relay-api.ts'
export type { ProposalRequest as DatasetProposal } from '../chain/proposal.ts'

// ------------------------------------------------------------------------------------ settings

export type BackendName = 'webgpu' | 'ort-wasm' | 'cpu'

// ------------------------------------------------------------------------------------ status

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

export interface BackendInfo {
  readonly name: BackendName
  /** E.g. `WebGPU nvidia ampere` or `ONNX Runtime Web (wasm, 4 threads)`. */
  readonly detail: string
  /** Why this backend and not the one asked for (e.g. `no WebGPU adapter`), or null. */
  readonly fallback: string | null
  /**
   * The automatic choice's measurement, when it made one: ms per decoded token of a synthetic copy
   * of the model on each candidate backend (the faster one runs the chat).
   */
  readonly measured?: { readonly webgpu: number; readonly 'ort-wasm': number }
}

export interface ClientStatus {
  readonly relays: readonly RelayState[]
  readonly sync: SyncState
  readonly cache: CacheUsage
  /** The engine's backend once a chat has started one. */
  readonly backend: BackendInfo | null
}

// ------------------------------------------------------------------------------------ explorer

// ------------------------------------------------------------------------------------ chat

export interface Sampling {
  /** 0 is greedy (argmax). */
  readonly temperature: number
  readonly topP: number
  /** At most this many tokens; the chat lowers it to what the model's context leaves (ChatContext.maxTokens). */
  readonly maxTokens: number
  /** A fixed seed repeats an answer; null draws a new one for each answer (ChatResult.seed says which). */
  readonly seed: number | null
}

export const DEFAULT_SAMPLING: Sampling = Object.freeze({ temperature: 0.8, topP: 0.9, maxTokens: 128, seed: null })

/** One earlier exchange of the conversation, as the model reads it back. */
export interface ChatExchange {
  readonly prompt: string
  readonly answer: string
}

/** What to answer: the new prompt after the conversation so far (oldest first). */
export interface ChatRequest {
  readonly prompt: string
  readonly history: readonly ChatExchange[]
  readonly sampling: Sampling
}

/**
 * How the conversation fit the model's context window (max_seq_len tokens, the answer included):
 * the newest exchanges that fit are read back, older ones are dropped, and a prompt longer than the
 * window keeps its end.
 */
export interface ChatContext {
  /** The model's context window, in tokens. */
  readonly window: number
  /** Tokens the model read before answering (BOS, earlier exchanges, the prompt). */
  readonly promptTokens: number
  /** Earlier exchanges read back / left out (the oldest) for want of room. */
  readonly usedExchanges: number
  readonly droppedExchanges: number
  /** Tokens cut from the start of the prompt itself (0 when it fit). */
  readonly trimmedTokens: number
  /** The prompt's tokens in all, before any trimming. */
  readonly promptLength: number
  /** The answer's token budget: the sampling's maxTokens, lowered to what the window leaves. */
  readonly maxTokens: number
  /** Prompt tokens the tokenizer could only spell as raw bytes (text outside the model's vocabulary). */
  readonly byteTokens: number
}


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
  /** The answer as shown: cut back to a word or sentence end when the token limit stopped it mid-word. */
  readonly text: string
  /** The seed the sampler used (the settings' one, or the one drawn for this answer). */
  readonly seed: number
  readonly context: ChatContext
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
  /**
   * Answer a prompt after the conversation so far (as much of it as the context window holds): fetch
   * and verify the experts it routes to, stream tokens, report what ran.
   */
  chat(request: ChatRequest, onEvent: (event: ChatEvent) => void): Promise<{ ok: true; result: ChatResult } | { ok: false; failure: ChatFailure }>
  /** What the chain's model is (null until chain A is verified). */
  modelCard(): Promise<ModelCard | null>
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
  /** How a block reached the relays' nodes on the peer network (from which peer, when): the first relay that says. */
  provenance(cid: string): Promise<Provenance | null>
  /** The peer network as each relay's node sees it (its peers, their heads, latency, score, validator keys). */
  network(): Promise<NetworkView>
  /** Replay a certified version's training record on this device (a training run's cost). */
  audit(cid: string, onStep?: (step: number, steps: number) => void): Promise<AuditReport>

  clearCache(): Promise<CacheUsage>
}

/** A relay's word on how a block reached its node: the peer id it came from (`local`: submitted there) and when. */
export interface Provenance {
  readonly relay: string
  readonly from: string
  readonly at: number
}

/** The peer network through the page's relays: what each relay's node reports (unverified), or why it did not answer. */
export interface NetworkView {
  readonly relays: readonly { readonly url: string; readonly health: RelayState['health']; readonly network: NetworkStatus | null; readonly error: string | null }[]
}

/** An audit of a training record on the page's device: the replay's verdict, or why none ran. */
export type AuditReport =
  | { readonly ok: false; readonly message: string }
  | {
    readonly ok: true
    readonly pass: boolean
    readonly mode: 'exact' | 'tolerance'
    /** The first step where the replay left the record (`steps`: the final weights), or null. */
    readonly firstDifference: number | null
    readonly detail: string
    readonly expert: string
    readonly record: string
    readonly dataset: string
    readonly datasetName: string
    readonly steps: number
  }

// ------------------------------------------------------------------------------------ wallet

// ------------------------------------------------------------------------------------ donating

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
  /** The software renderer the adapter is (`SwiftShader`: it runs on the CPU), null for a real GPU or none. */
  readonly softwareGpu: string | null
  readonly backends: readonly TrainBackendInfo[]
  /**
   * Milliseconds per training step each trainer measured on a synthetic copy of the model
   * (src/pol/trainer-probe.ts), when device() was given its architecture and both can run; the
   * Donate view's default is the faster.
   */
  readonly measured: { readonly cpu: number; readonly webgpu: number } | null
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
  /** The datasets `relay` reports (proposals, stages, gate reports, earnings). */
  datasets(relay: string): Promise<DatasetInfo[]>
  /** Propose a dataset at `relay`, signed with the wallet's key, on the chain this worker verified. */
  proposeDataset(relay: string, proposal: DatasetProposal): Promise<{ readonly ok: true; readonly cid: string } | { readonly ok: false; readonly code: string; readonly message: string }>

  /** This device and its trainers; with the model's architecture, each trainer timed on a synthetic copy of it. */
  device(architecture?: Architecture): Promise<DeviceInfo>
  donateState(): Promise<DonateState>
  /** Called with the whole state whenever it changes (at most every 100 ms). */
  onDonate(listener: (state: DonateState) => void): Promise<void>
  /** After a page load: follow a submitted candidate, restart an interrupted job; idle when no run was active. */
  resume(): Promise<DonateState>
  startDonating(options: DonateOptions): Promise<DonateState>
  /** Abort the run (training stops at the next step); a submitted candidate stays with the validators. */
  stopDonating(): Promise<DonateState>
}

