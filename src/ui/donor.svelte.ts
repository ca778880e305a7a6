/**
 * The wallet and the donation run as the views see them, one instance per page (made by App,
 * shared through context), so a run keeps drawing while the user looks at the chat or explorer.
 * Everything comes from the miner worker (MinerApi); this only keeps the latest answers.
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import type { DeviceInfo, DonateState, MinerApi, TrainBackend, WalletActivity, WalletResult, WalletStatus } from '../client/api.ts'
import { pageContext } from './context.ts'
import { errorMessage } from './format.ts'

export class Donor {
  readonly miner: MinerApi
  /** null until the worker answered. */
  wallet: WalletStatus | null = $state(null)
  activity: WalletActivity | null = $state(null)
  /** True while the relay is being asked for the activity. */
  loadingActivity = $state(false)
  state: DonateState | null = $state(null)
  device: DeviceInfo | null = $state(null)
  /** Set when the miner worker could not start (no Workers, a module that failed to load). */
  error: string | null = $state(null)
  #lastOutcome: number | null = null
  #relay: string | null = null

  constructor(miner: MinerApi) {
    this.miner = miner
  }

  /** Subscribe to the run and pick up one a reload interrupted. */
  async start(): Promise<void> {
    try {
      await this.miner.onDonate((s) => this.#receive(s))
      this.wallet = await this.miner.wallet()
      this.state = await this.miner.resume()
    } catch (e) {
      this.error = errorMessage(e)
    }
  }

  #receive(s: DonateState): void {
    this.state = s
    // A new outcome changes the balance: ask the relay again.
    const at = s.outcome?.at ?? null
    if (at !== null && at !== this.#lastOutcome) {
      this.#lastOutcome = at
      if (this.#relay !== null) void this.refresh(this.#relay)
    }
  }

  /** This device and its trainers; with the model's architecture, each trainer timed on it (once). */
  async loadDevice(architecture?: Architecture): Promise<void> {
    if (architecture === undefined) {
      this.device ??= await this.miner.device()
      return
    }
    if (this.device?.measured != null) return
    this.device = await this.miner.device(architecture)
  }

  /** Balance and history from `relay`. */
  async refresh(relay: string): Promise<void> {
    this.#relay = relay
    if (this.wallet?.kind !== 'ok') {
      this.activity = null
      return
    }
    this.loadingActivity = true
    try {
      this.activity = await this.miner.activity(relay)
    } finally {
      this.loadingActivity = false
    }
  }

  async create(): Promise<WalletResult> {
    const r = await this.miner.createWallet()
    this.wallet = await this.miner.wallet()
    return r
  }

  async import(secret: string, replace: boolean): Promise<WalletResult> {
    const r = await this.miner.importWallet(secret, replace)
    if (r.ok) {
      this.wallet = { kind: 'ok', wallet: r.wallet }
      this.activity = null
    }
    return r
  }

  exportKey(): ReturnType<MinerApi['exportWallet']> {
    return this.miner.exportWallet().then(async (r) => {
      this.wallet = await this.miner.wallet()
      return r
    })
  }

  async forget(): Promise<void> {
    this.wallet = await this.miner.forgetWallet()
    this.activity = null
  }

  async startDonating(relay: string, backend: TrainBackend, keepGoing: boolean): Promise<void> {
    this.#relay = relay
    this.state = await this.miner.startDonating({ relay, backend, keepGoing })
  }

  async stop(): Promise<void> {
    this.state = await this.miner.stopDonating()
  }
}

const context = pageContext<Donor>('donor', 'getDonor')
export const setDonor = context.set
export const getDonor = context.get
