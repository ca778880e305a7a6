/**
 * The browser miner: the wallet and donation runs behind the MinerApi (api.ts), what the miner
 * worker (miner.worker.ts) exposes to the Donate and Wallet views.
 *
 * A run is src/pol/mining.ts `mineOnce` (lease, fetch and verify, train, self-check, submit, follow)
 * with the wallet's key against the client's relay, its events folded into one DonateState the
 * page draws. The run is written to IndexedDB as it goes (src/store/miner-run.ts): the job once leased,
 * the candidate once submitted. After a reload `resume()` follows a submitted candidate to its
 * verdict (training it again would only be refused as a copy) or restarts an interrupted job.
 * Stop aborts through the AbortSignal mineOnce passes to the trainer, which checks it between steps.
 *
 * Isomorphic, like the Client: Node tests run it with fake-indexeddb against a real relay.
 *
 * ```ts
 * const miner = new Miner({})
 * await miner.createWallet()
 * await miner.onDonate((s) => draw(s))
 * await miner.startDonating({ relay: 'http://127.0.0.1:8080', backend: 'cpu', keepGoing: false })
 * ```
 *
 * @module
 */
import type { SecretKey } from '../chain/keys.ts'
import type { Architecture, MetaDocument } from '../chain/meta.ts'
import { createRelayClient } from '../net/relay-client.ts'
import { MinerChain } from '../pol/chain.ts'
import { proposalSubmission } from '../chain/proposal.ts'
import type { Job } from '../pol/job.ts'
import { formatLossChange, mineOnce, selfCheckVerdict, submitRule, type MinerEvent, type MineResult, type Trainer } from '../pol/mining.ts'
import { trainExpert } from '../train/train.ts'
import { trainerMsPerStep } from '../pol/trainer-probe.ts'
import { clearMinerRun, loadAttempts, loadMinerRun, recordAttempt, resumePlan, saveMinerRun, type StoredMinerRun } from '../store/miner-run.ts'
import type { KV } from '../store/kv.ts'
import { loadSettings } from '../store/settings.ts'
import { EXPORT_WARNING, WalletKeyError, createSecretKey, parseSecretKey } from '../wallet/keys.ts'
import { fetchActivity, followCandidate } from '../wallet/relay.ts'
import { deleteWallet, loadWallet, saveWallet, walletKV, walletRecord, type LoadedWallet, type WalletRecord } from '../wallet/store.ts'
import type {
  CandidateInfo,
  DatasetInfo,
  DatasetProposal,
  DeviceInfo,
  DonateJob,
  DonateOptions,
  DonateOutcome,
  DonateState,
  MinerApi,
  TrainBackend,
  TrainBackendInfo,
  WalletActivity,
  WalletExport,
  WalletInfo,
  WalletResult,
  WalletStatus
} from './api.ts'
import { sleep } from '../time.ts'

export interface MinerEnvironment {
  /** Where the wallet and the run are kept (default: IndexedDB `blyan-wallet`, `blyan-miner`). */
  readonly walletKV?: KV
  readonly minerKV?: KV
  readonly fetch?: typeof fetch
  /**
   * Trainers by backend. `cpu` defaults to the reference (src/train/train.ts `trainExpert`); a
   * backend without one is listed as unavailable (a WebGPU trainer plugs in here).
   */
  readonly trainers?: Partial<Record<TrainBackend, Trainer>>
  /** Cores, memory and GPU adapter of this device (the worker asks navigator). */
  readonly device?: () => Promise<Omit<DeviceInfo, 'backends' | 'measured'>>
  readonly now?: () => number
  /** How often a pending candidate is polled. @default 1000 */
  readonly pollMs?: number
  /** How long a keep-going run waits when no job is free. @default 30000 */
  readonly retryMs?: number
  /**
   * The chain A genesis the run trusts: the anchor the site pinned (its settings in IndexedDB) by
   * default, so the miner and the chat judge one chain; null trusts the relay's on first use.
   */
  readonly anchor?: () => Promise<string | null>
  /** Validation windows of the self-check (mineOnce's default when absent). */
  readonly selfCheckWindows?: number
}

/** State listeners are told at most this often (ms); steps come several times a second. */
const EMIT_MS = 100

const IDLE: DonateState = Object.freeze({
  phase: 'idle', backend: 'cpu', keepGoing: false, relay: null, job: null, expert: null, fetching: null, step: 0, steps: 0, losses: [],
  tokensPerSecond: null, selfCheck: null, delta: null, candidate: null, resumed: null, outcome: null, history: [], earned: 0,
  error: null, retryAt: null, startedAt: null
})

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

function info(r: WalletRecord): WalletInfo {
  return { publicKey: r.publicKey, createdAt: r.createdAt, source: r.source, exportedAt: r.exportedAt }
}

function status(w: LoadedWallet): WalletStatus {
  if (w.kind === 'ok') return { kind: 'ok', wallet: info(w.record) }
  return w
}

function jobOf(job: Job): DonateJob {
  return { id: job.id, expert: job.expert, base: job.base, baseVersion: job.baseVersion, steps: job.steps, batchSize: job.batchSize, seqLen: job.seqLen, learningRate: job.learningRate }
}

const improvementOf = (before: number | null, after: number | null): number | null =>
  before === null || after === null || !(before > 0) ? null : (before - after) / before

/** The outcome the page shows for a verdict. */
export function outcomeOf(c: CandidateInfo, expert: string, delta: number | null, at: number): DonateOutcome {
  return Object.freeze({
    status: c.status === 'accepted' ? 'accepted' : 'rejected',
    cid: c.cid,
    expert,
    code: c.status === 'pending' ? 'PENDING' : c.code,
    message: c.status === 'pending' ? 'the validators had not decided when the wait ended' : c.message,
    lossBefore: c.lossBefore,
    lossAfter: c.lossAfter,
    improvement: improvementOf(c.lossBefore, c.lossAfter),
    delta,
    amount: c.amount,
    reward: c.reward,
    rewardFinal: c.rewardFinal,
    certificate: c.certificate,
    at
  })
}

/** The run's backend has no trainer here. */
class NoTrainerError extends Error {
  override readonly name = 'NoTrainerError'
  readonly code = 'E_BACKEND'
}

/** An error's code for the page: the API's or the rule's (RelayError, RuleError, NoJobError ...), else ERROR. */
function codeOf(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'ERROR'
}

export class Miner implements MinerApi {
  readonly #env: MinerEnvironment
  readonly #walletKV: KV
  #state: Mutable<DonateState> = { ...IDLE }
  readonly #listeners = new Set<(s: DonateState) => void>()
  /** Each trainer's ms per step on a synthetic copy of a model, by architecture (measured once). */
  readonly #trainerTimes = new Map<string, Promise<{ cpu: number; webgpu: number }>>()
  #emitTimer: ReturnType<typeof setTimeout> | null = null
  #lastEmit = 0
  #run: { controller: AbortController; done: Promise<void> } | null = null
  #resumed: Promise<DonateState> | null = null
  /** Writes of the stored run, in order. */
  #saving: Promise<void> = Promise.resolve()

  constructor(env: MinerEnvironment = {}) {
    this.#env = env
    this.#walletKV = env.walletKV ?? walletKV()
  }

  #now(): number {
    return (this.#env.now ?? Date.now)()
  }

  #fetch(): typeof fetch {
    return this.#env.fetch ?? globalThis.fetch.bind(globalThis)
  }

  // ---------------------------------------------------------------------------- wallet

  async wallet(): Promise<WalletStatus> {
    return status(await loadWallet(this.#walletKV))
  }

  async createWallet(): Promise<WalletResult> {
    const existing = await loadWallet(this.#walletKV)
    if (existing.kind !== 'none') return { ok: false, code: 'E_WALLET_EXISTS', message: 'This browser already has a wallet: export it, then forget it, before making another.' }
    const record = walletRecord(createSecretKey(), 'created', this.#now())
    await saveWallet(record, this.#walletKV)
    return { ok: true, wallet: info(record) }
  }

  async importWallet(secretKey: string, replace: boolean): Promise<WalletResult> {
    let key: SecretKey
    try {
      key = parseSecretKey(secretKey)
    } catch (e) {
      if (e instanceof WalletKeyError) return { ok: false, code: e.code, message: e.message }
      throw e
    }
    const record = walletRecord(key, 'imported', this.#now())
    const existing = await loadWallet(this.#walletKV)
    if (existing.kind === 'ok' && existing.record.publicKey === record.publicKey) return { ok: true, wallet: info(existing.record) }
    if (existing.kind !== 'none' && !replace) {
      return { ok: false, code: 'E_WALLET_EXISTS', message: 'This browser already has another wallet. Replacing it loses it unless you exported its key.' }
    }
    await this.#stopAndForgetRun()
    await saveWallet(record, this.#walletKV)
    return { ok: true, wallet: info(record) }
  }

  async exportWallet(): Promise<WalletExport | { ok: false; code: string; message: string }> {
    const w = await loadWallet(this.#walletKV)
    if (w.kind !== 'ok') return { ok: false, code: 'E_NO_WALLET', message: w.kind === 'none' ? 'There is no wallet in this browser.' : w.reason }
    await saveWallet({ ...w.record, exportedAt: this.#now() }, this.#walletKV)
    return { ok: true, secretKey: w.record.secretKey, warning: EXPORT_WARNING }
  }

  async forgetWallet(): Promise<WalletStatus> {
    await this.#stopAndForgetRun()
    await deleteWallet(this.#walletKV)
    this.#set({ ...IDLE })
    return { kind: 'none' }
  }

  async activity(relay: string): Promise<WalletActivity | null> {
    const w = await loadWallet(this.#walletKV)
    if (w.kind !== 'ok') return null
    return fetchActivity(relay, w.record.publicKey, { fetch: this.#fetch(), now: this.#now() })
  }

  // ---------------------------------------------------------------------------- datasets

  async datasets(relay: string): Promise<DatasetInfo[]> {
    return createRelayClient(relay, this.#fetch()).datasets()
  }

  async proposeDataset(relay: string, proposal: DatasetProposal): Promise<{ ok: true; cid: string } | { ok: false; code: string; message: string }> {
    const w = await loadWallet(this.#walletKV)
    if (w.kind !== 'ok') return { ok: false, code: 'E_NO_WALLET', message: 'Create or import a wallet first: a proposal is signed with its key.' }
    try {
      // Built on the chain this worker verified (anchored like the donation runs), never on the relay's word.
      const anchor = await (this.#env.anchor ?? (async () => (await loadSettings()).trustAnchor))()
      const chain = new MinerChain(createRelayClient(relay, this.#fetch()), { anchor })
      await chain.sync()
      const { cid, car } = await proposalSubmission(chain.chain, w.key, proposal, this.#now())
      await chain.relay.submit(car)
      return { ok: true, cid: cid.toString() }
    } catch (e) {
      return { ok: false, code: codeOf(e), message: e instanceof Error ? e.message : String(e) }
    }
  }

  // ---------------------------------------------------------------------------- device

  #backends(gpu: string | null, softwareGpu: string | null): TrainBackendInfo[] {
    const t = this.#env.trainers ?? {}
    return [
      { name: 'cpu', available: true, detail: 'The JavaScript reference, on one thread', reason: null },
      t.webgpu !== undefined && gpu !== null
        ? { name: 'webgpu', available: true, detail: softwareGpu === null ? `The WebGPU trainer on ${gpu}` : `The WebGPU trainer on ${gpu}, a software GPU (${softwareGpu} runs on the CPU): slower than the CPU reference`, reason: null }
        : { name: 'webgpu', available: false, detail: 'WebGPU', reason: gpu === null ? 'No WebGPU adapter in this browser' : 'This runtime has no WebGPU trainer' }
    ]
  }

  async device(architecture?: Architecture): Promise<DeviceInfo> {
    const d = this.#env.device === undefined ? { cores: null, memoryGiB: null, gpu: null, softwareGpu: null } : await this.#env.device()
    const webgpu = this.#env.trainers?.webgpu
    let measured: DeviceInfo['measured'] = null
    if (architecture !== undefined && webgpu !== undefined && d.gpu !== null) {
      // Once per architecture: each trainer a few steps on a synthetic copy of the model.
      const key = JSON.stringify(architecture)
      const m = this.#trainerTimes.get(key) ?? (async () => ({
        cpu: await trainerMsPerStep(this.#env.trainers?.cpu ?? trainExpert, architecture),
        webgpu: await trainerMsPerStep(webgpu, architecture)
      }))()
      this.#trainerTimes.set(key, m)
      measured = await m.catch(() => null)
    }
    return { ...d, backends: this.#backends(d.gpu, d.softwareGpu), measured }
  }

  // ---------------------------------------------------------------------------- state

  async donateState(): Promise<DonateState> {
    return this.#snapshot()
  }

  async onDonate(listener: (state: DonateState) => void): Promise<void> {
    this.#listeners.add(listener)
    listener(this.#snapshot())
  }

  #snapshot(): DonateState {
    const s = this.#state
    return { ...s, losses: [...s.losses], history: [...s.history] }
  }

  #set(patch: Partial<DonateState>, now = false): void {
    Object.assign(this.#state, patch)
    if (this.#listeners.size === 0) return
    const wait = now ? 0 : Math.max(0, this.#lastEmit + EMIT_MS - Date.now())
    if (wait === 0) {
      if (this.#emitTimer !== null) clearTimeout(this.#emitTimer)
      this.#emitTimer = null
      this.#emit()
    } else if (this.#emitTimer === null) {
      this.#emitTimer = setTimeout(() => {
        this.#emitTimer = null
        this.#emit()
      }, wait)
    }
  }

  #emit(): void {
    this.#lastEmit = Date.now()
    const s = this.#snapshot()
    for (const l of this.#listeners) l(s)
  }

  // ---------------------------------------------------------------------------- runs

  resume(): Promise<DonateState> {
    this.#resumed ??= this.#resume()
    return this.#resumed
  }

  async #resume(): Promise<DonateState> {
    if (this.#run !== null) return this.#snapshot()
    const w = await loadWallet(this.#walletKV)
    const run = await loadMinerRun(this.#env.minerKV)
    const plan = resumePlan(run, w.kind === 'ok' ? w.record.publicKey : null)
    if (plan.kind === 'none') {
      if (run !== null) await clearMinerRun(this.#env.minerKV)
      return this.#snapshot()
    }
    if (w.kind !== 'ok') return this.#snapshot()
    this.#launch(plan.run, w.key, plan.kind)
    return this.#snapshot()
  }

  async startDonating(options: DonateOptions): Promise<DonateState> {
    if (this.#run !== null) return this.#snapshot()
    const w = await loadWallet(this.#walletKV)
    if (w.kind !== 'ok') {
      this.#set({ phase: 'error', error: { code: 'E_NO_WALLET', message: 'Create or import a wallet first: rewards are paid to it, and it signs what you submit.' } }, true)
      return this.#snapshot()
    }
    const backend = (await this.device()).backends.find((b) => b.name === options.backend)
    if (backend === undefined || !backend.available) {
      this.#set({ phase: 'error', error: { code: 'E_BACKEND', message: `${options.backend} cannot train here: ${backend?.reason ?? 'unknown backend'}` } }, true)
      return this.#snapshot()
    }
    let relay: string
    try {
      relay = new URL(options.relay).href.replace(/\/+$/, '')
    } catch {
      this.#set({ phase: 'error', error: { code: 'E_RELAY', message: `not a relay URL: ${options.relay}` } }, true)
      return this.#snapshot()
    }
    const run: StoredMinerRun = { relay, miner: w.record.publicKey, backend: options.backend, keepGoing: options.keepGoing, job: null, candidate: null, startedAt: this.#now() }
    await saveMinerRun(run, this.#env.minerKV)
    this.#launch(run, w.key, null)
    return this.#snapshot()
  }

  async stopDonating(): Promise<DonateState> {
    await this.#stopAndForgetRun()
    return this.#snapshot()
  }

  /** Abort the run and wait for it to unwind; the stored run is deleted (a reload resumes nothing). */
  async #stopAndForgetRun(): Promise<void> {
    const run = this.#run
    if (run !== null) {
      run.controller.abort(new DOMException('stopped', 'AbortError'))
      await run.done
    }
    await clearMinerRun(this.#env.minerKV)
  }

  /** Abort without touching the stored run, as a page that goes away does (tests simulate reloads with it). */
  async close(): Promise<void> {
    const run = this.#run
    this.#listeners.clear()
    if (run === null) return
    run.controller.abort(new DOMException('closed', 'AbortError'))
    await run.done.catch(() => undefined)
  }

  #launch(run: StoredMinerRun, key: SecretKey, resumed: 'follow' | 'restart' | null): void {
    const controller = new AbortController()
    this.#set({
      ...IDLE, history: this.#state.history, earned: this.#state.earned, outcome: this.#state.outcome,
      phase: resumed === 'follow' ? 'pending' : 'leasing', backend: run.backend, keepGoing: run.keepGoing, relay: run.relay,
      candidate: resumed === 'follow' ? run.candidate : null, expert: run.job?.expert ?? null, resumed, startedAt: this.#now()
    }, true)
    const done = this.#loop(run, key, controller.signal, resumed).finally(() => {
      if (this.#run?.controller === controller) this.#run = null
    })
    this.#run = { controller, done }
  }

  async #loop(first: StoredMinerRun, key: SecretKey, signal: AbortSignal, resumed: 'follow' | 'restart' | null): Promise<void> {
    let run = first
    let follow = resumed === 'follow' ? run.candidate : null
    let prefer = resumed === 'restart' ? (run.job?.id ?? null) : null
    // This key's attempts at each job, in any run before: a job is tried again (as its next attempt, on other windows) only after the less tried ones.
    const attempts = await loadAttempts(run.miner, this.#env.minerKV)
    // The run's own verified chain (the chat's header sync), synced before each job: delta, the
    // model, the job's base and data all come from it.
    const anchor = await (this.#env.anchor ?? (async () => (await loadSettings()).trustAnchor))()
    const chain = new MinerChain(createRelayClient(run.relay, this.#fetch()), { anchor })
    for (;;) {
      let delta: number | null = this.#state.delta
      try {
        await chain.sync(signal)
        delta = (chain.chain.head('A')?.document as MetaDocument | undefined)?.pol.delta ?? null
        this.#set({ delta })
        const outcome = follow !== null
          ? await this.#follow(run, follow, delta, signal)
          : await this.#mine(run, chain, key, delta, signal, prefer, (next) => (run = next), attempts)
        await this.#saving
        this.#settle(outcome)
        run = { ...run, job: null, candidate: null }
        if (!run.keepGoing) {
          await clearMinerRun(this.#env.minerKV)
          this.#set({ phase: 'done' }, true)
          return
        }
        await saveMinerRun(run, this.#env.minerKV)
      } catch (e) {
        await this.#saving
        if (signal.aborted) {
          this.#set({ phase: 'stopped', fetching: null }, true)
          return
        }
        if (run.candidate !== null && follow === null) {
          // Submitted, then the relay failed us while we waited: the candidate is still with the validators.
          follow = run.candidate
          await sleep(this.#env.pollMs ?? 1000, signal).catch(() => undefined)
          continue
        }
        const code = codeOf(e)
        const message = e instanceof Error ? e.message : String(e)
        if (!run.keepGoing) {
          await clearMinerRun(this.#env.minerKV)
          this.#set({ phase: 'error', fetching: null, error: { code, message } }, true)
          return
        }
        // Keep going: no job free, over quota, a relay hiccup: try again later.
        const retryAt = this.#now() + (this.#env.retryMs ?? 30_000)
        this.#set({ phase: 'waiting', fetching: null, error: { code, message }, retryAt }, true)
        try {
          await sleep(retryAt - this.#now(), signal)
        } catch {
          this.#set({ phase: 'stopped', retryAt: null }, true)
          return
        }
      }
      follow = null
      prefer = null
      this.#set({ phase: 'leasing', job: null, expert: null, fetching: null, step: 0, steps: 0, losses: [], tokensPerSecond: null, selfCheck: null, candidate: null, resumed: null, error: null, retryAt: null }, true)
    }
  }

  /** A reload found a submitted candidate: poll it until the validators decide. */
  async #follow(run: StoredMinerRun, cid: string, delta: number | null, signal: AbortSignal): Promise<DonateOutcome> {
    this.#set({ phase: 'pending', candidate: cid }, true)
    const c = await followCandidate(run.relay, cid, { fetch: this.#fetch(), signal, pollMs: this.#env.pollMs ?? 1000 })
    return outcomeOf(c, c.expert ?? run.job?.expert ?? 'an expert', delta, this.#now())
  }

  async #mine(run: StoredMinerRun, chain: MinerChain, key: SecretKey, delta: number | null, signal: AbortSignal, prefer: string | null, saved: (r: StoredMinerRun) => void, attempts: Map<string, number>): Promise<DonateOutcome> {
    const train = this.#env.trainers?.[run.backend] ?? (run.backend === 'cpu' ? trainExpert : undefined)
    if (train === undefined) throw new NoTrainerError(`no ${run.backend} trainer`)
    let current = run
    const save = (next: StoredMinerRun): void => {
      current = next
      saved(next)
      // Chained, so the candidate's record is never overtaken by the job's; the run awaits the chain before it settles.
      this.#saving = this.#saving.then(() => saveMinerRun(next, this.#env.minerKV)).catch(() => undefined)
    }
    let tokensPerSecond: number | null = null
    const onEvent = (e: MinerEvent): void => {
      switch (e.type) {
        case 'job':
          save({ ...current, job: { id: e.job.id, expert: e.job.expert }, candidate: null })
          this.#set({ phase: 'fetching', job: jobOf(e.job), expert: e.job.expert, steps: e.job.steps, step: 0, losses: [] }, true)
          break
        case 'fetch':
          this.#set({ phase: e.what === 'validation pool' ? 'self-check' : 'fetching', fetching: e.what }, true)
          break
        case 'step':
          // Smoothed: single steps jitter with the event loop.
          tokensPerSecond = tokensPerSecond === null ? e.tokensPerSecond : 0.7 * tokensPerSecond + 0.3 * e.tokensPerSecond
          this.#set({ phase: 'training', fetching: null, step: e.step + 1, steps: e.steps, losses: [...this.#state.losses, e.loss], tokensPerSecond })
          break
        case 'self-check':
          this.#set({ phase: 'submitting', fetching: null, selfCheck: { lossBefore: e.lossBefore, lossAfter: e.lossAfter, windows: e.windows, improvement: (e.lossBefore - e.lossAfter) / e.lossBefore } }, true)
          break
        case 'submitted':
          save({ ...current, candidate: e.cid })
          // Shown once stored: from then on a reload follows this candidate instead of training again.
          void this.#saving.then(() => {
            if (!signal.aborted) this.#set({ phase: 'pending', candidate: e.cid }, true)
          })
          break
        case 'outcome':
          break
      }
    }
    const result: MineResult = await mineOnce({
      relay: run.relay, chain, key, train, signal, onEvent, attempts, ...(prefer === null ? {} : { prefer }),
      ...(this.#env.pollMs === undefined ? {} : { pollMs: this.#env.pollMs }),
      ...(this.#env.selfCheckWindows === undefined ? {} : { selfCheckWindows: this.#env.selfCheckWindows })
    })
    const expert = result.job.expert
    // Counted whatever came of it: the next attempt at this job trains other windows.
    attempts.set(result.job.id, await recordAttempt(run.miner, result.job.id, this.#env.minerKV).catch(() => result.attempt + 1))
    if (result.outcome === null) {
      const sc = result.selfCheck
      const gain = sc === null ? null : improvementOf(sc.lossBefore, sc.lossAfter)
      return Object.freeze({
        status: 'no-gain', cid: null, expert, code: 'NO_GAIN',
        message: delta === null
          ? `The self-check on the public validation pool found ${gain === null ? 'no gain' : `loss ${formatLossChange(gain)}`}: nothing was submitted.`
          : `Self-check on the public validation pool: ${selfCheckVerdict(gain, delta)}. Nothing was submitted: ${submitRule(delta)}.`,
        lossBefore: sc?.lossBefore ?? null, lossAfter: sc?.lossAfter ?? null, improvement: gain, delta, amount: null, reward: null, rewardFinal: null, certificate: null, at: this.#now()
      })
    }
    if (result.outcome.status === 'pending') return this.#follow(current, result.outcome.cid, delta, signal)
    return outcomeOf(result.outcome, expert, delta, this.#now())
  }

  #settle(outcome: DonateOutcome): void {
    const earned = this.#state.earned + (outcome.status === 'accepted' ? (outcome.amount ?? 0) : 0)
    this.#set({ phase: 'done', outcome, history: [outcome, ...this.#state.history].slice(0, 50), earned, fetching: null }, true)
  }
}
