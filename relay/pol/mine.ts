/**
 * `blyan mine`: a miner in Node for scripts and tests. Takes jobs from a relay, trains on the CPU
 * reference (or WebGPU), submits candidates and reports what the validators decided.
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { toHex } from '../../src/codec/cbor.ts'
import { publicKeyOf, randomSecretKey, type SecretKey } from '../../src/chain/keys.ts'
import { createRelayClient } from '../../src/net/relay-client.ts'
import { MinerChain } from '../../src/pol/chain.ts'
import { NoJobError, formatLossChange, mineOnce, submitRule, type MineResult, type MinerEvent, type Trainer } from '../../src/pol/mining.ts'
import { MAX_TRIED_JOBS, isJobId } from '../../src/store/miner-run.ts'
import { readKeyFile, writeKeyFile } from '../devnet.ts'

/** The default key file: created on first use, readable by its owner only. */
export const DEFAULT_KEY_FILE = join(homedir(), '.config', 'blyan', 'miner.key')

/** The miner's key from `path`, created there when missing (`created` says so). */
export function loadOrCreateKey(path: string): { key: SecretKey; created: boolean } {
  if (existsSync(path)) return { key: readKeyFile(path), created: false }
  mkdirSync(dirname(path), { recursive: true })
  const key = randomSecretKey()
  writeKeyFile(path, key)
  return { key, created: true }
}

export interface MinerRun {
  readonly relay: string
  readonly key: SecretKey
  readonly jobs: number
  /** The chain A genesis CID to trust (default: the one the relay serves first). */
  readonly anchor?: string
  readonly train?: Trainer
  readonly json: boolean
  readonly print: (line: string) => void
  readonly signal?: AbortSignal
  /**
   * Where this key's attempt counts are kept between runs (JSON: job id -> attempts), so a later
   * run's attempt at a job trains other windows; none: counted for this run only.
   */
  readonly attemptsFile?: string
}

/** The attempt counts kept in `file` (empty when there is none or it does not parse). */
function readAttempts(file: string | undefined): Map<string, number> {
  if (file === undefined || !existsSync(file)) return new Map()
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return new Map()
    return new Map(Object.entries(v).filter((e): e is [string, number] => isJobId(e[0]) && Number.isSafeInteger(e[1]) && (e[1] as number) > 0))
  } catch {
    return new Map()
  }
}

/** Keep the newest counts, as the browser does (job ids name bases, so old ones go stale). */
function writeAttempts(file: string | undefined, attempts: ReadonlyMap<string, number>): void {
  if (file !== undefined) writeFileSync(file, JSON.stringify(Object.fromEntries([...attempts].slice(-MAX_TRIED_JOBS))))
}

/** The attempts file kept beside a key file. */
export function attemptsFileOf(keyPath: string): string {
  return `${keyPath}.attempts.json`
}

/** Mine `jobs` jobs one after another; the results, in order. */
export async function runMiner(run: MinerRun): Promise<MineResult[]> {
  const results: MineResult[] = []
  const attempts = readAttempts(run.attemptsFile)
  const chain = new MinerChain(createRelayClient(run.relay), run.anchor === undefined ? {} : { anchor: run.anchor }) // synced before each job
  for (let i = 0; i < run.jobs; i++) {
    let result: MineResult
    try {
      result = await mineOnce({
        attempts, chain,
        relay: run.relay, key: run.key, ...(run.train === undefined ? {} : { train: run.train }), ...(run.signal === undefined ? {} : { signal: run.signal }),
        ...(run.json ? {} : { onEvent: (e: MinerEvent) => run.print(describe(e)) })
      })
    } catch (e) {
      if (e instanceof NoJobError) {
        run.print(`no job: ${e.message}`)
        break
      }
      throw e
    }
    results.push(result)
    // Counted whatever came of it: the next attempt at this job trains other windows with another seed.
    attempts.set(result.job.id, result.attempt + 1)
    writeAttempts(run.attemptsFile, attempts)
    if (run.json) run.print(JSON.stringify(summary(result)))
    else if (result.outcome === null) run.print(`not submitted: ${submitRule(result.delta)}`)
  }
  return results
}

function describe(e: MinerEvent): string {
  switch (e.type) {
    case 'job': return `job ${e.job.id}: ${e.job.expert} v${e.job.baseVersion}, ${e.job.steps} steps of ${e.job.batchSize} x ${e.job.seqLen} tokens, lr ${e.job.learningRate}`
    case 'fetch': return e.what === 'chain' ? 'syncing and verifying the chain headers' : `fetching and verifying the ${e.what}`
    case 'step': return e.step % 5 === 0 || e.step === e.steps - 1 ? `step ${e.step + 1}/${e.steps}: loss ${e.loss.toFixed(4)} (${e.tokensPerSecond.toFixed(0)} tokens/s)` : ''
    case 'self-check': return `self-check on ${e.windows} validation windows: ${e.lossBefore.toFixed(5)} -> ${e.lossAfter.toFixed(5)} (loss ${formatLossChange((e.lossBefore - e.lossAfter) / e.lossBefore)})`
    case 'submitted': return `submitted candidate ${e.cid}; waiting for the validators`
    case 'outcome': {
      const o = e.outcome
      if (o.status === 'accepted') return `accepted: loss ${o.lossBefore?.toFixed(5)} -> ${o.lossAfter?.toFixed(5)}, reward ${o.amount} (block ${o.reward})`
      if (o.status === 'rejected') return `rejected: ${o.message ?? o.code}`
      return 'still pending when the wait ended'
    }
  }
}

function summary(r: MineResult): Record<string, unknown> {
  return { job: r.job.id, expert: r.job.expert, attempt: r.attempt, losses: [...r.losses], selfCheck: r.selfCheck, outcome: r.outcome }
}

export function minerKeyLine(key: SecretKey, path: string, created: boolean): string {
  return `${created ? 'created' : 'using'} miner key ${path} (public key ${toHex(publicKeyOf(key))})`
}

/** Training on WebGPU in Node: Dawn through the `webgpu` package (a real GPU, or SwiftShader). */
export async function webgpuTrainer(): Promise<{ train: Trainer; device: string }> {
  const { nodeGpu } = await import('../../src/gpu/node.ts')
  const gpu = await nodeGpu()
  if (gpu === null) throw new Error('mine: no WebGPU adapter: install a GPU driver with Vulkan, or Debian\'s chromium (SwiftShader) and libvulkan1; or use --backend cpu')
  const { requestTrainingDevice } = await import('../../src/gpu/device.ts')
  const { trainExpertWebGpu } = await import('../../src/train/webgpu-trainer.ts')
  const device = await requestTrainingDevice(gpu.adapter)
  const info = gpu.adapter.info
  return {
    train: (model, options) => trainExpertWebGpu(device, model, { ...options, wgslLanguageFeatures: gpu.wgslLanguageFeatures }),
    device: [info.vendor, info.architecture, info.description].filter((x) => x !== '').join(' ')
  }
}
