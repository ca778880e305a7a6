/**
 * One chat exchange (a prompt and its answer) and how client events change it. Pure, so the
 * streaming logic is tested in Node; chat.svelte.ts keeps a reactive list of these.
 *
 * @module
 */
import type { BackendInfo, BackendChoice, BackendName, ChatEvent, ChatFailure, ChatProgress, ChatResult, Sampling, UsedExpertInfo } from '../client/api.ts'
import { errorMessage } from './format.ts'

/** Sampling settings being edited (the API's type is read-only). */
export type EditableSampling = { -readonly [K in keyof Sampling]: Sampling[K] }

export type TurnStatus = 'running' | 'done' | 'failed' | 'error'

export interface Turn {
  readonly id: number
  readonly prompt: string
  readonly sampling: Sampling
  /** The answer so far (token texts appended), then the result's text. */
  text: string
  tokens: number
  status: TurnStatus
  progress: ChatProgress | null
  backend: BackendInfo | null
  result: ChatResult | null
  /** The client refused (e.g. an expert no relay served honestly). */
  failure: ChatFailure | null
  /** The call itself threw (worker gone, bug): the message. */
  error: string | null
}

export function newTurn(id: number, prompt: string, sampling: Sampling): Turn {
  return { id, prompt, sampling, text: '', tokens: 0, status: 'running', progress: null, backend: null, result: null, failure: null, error: null }
}

/** Apply one streamed event to a running turn. */
export function applyChatEvent(turn: Turn, event: ChatEvent): void {
  if (turn.status !== 'running') return
  switch (event.type) {
    case 'token':
      turn.text += event.text
      turn.tokens++
      break
    case 'progress':
      turn.progress = event.progress
      break
    case 'backend':
      turn.backend = event.backend
      break
  }
}

export type ChatOutcome = { ok: true; result: ChatResult } | { ok: false; failure: ChatFailure }

/** Settle a turn with the chat call's outcome, or with the error it threw. */
export function finishTurn(turn: Turn, outcome: ChatOutcome | { error: unknown }): void {
  if ('error' in outcome) {
    turn.status = 'error'
    turn.error = errorMessage(outcome.error)
  } else if (outcome.ok) {
    turn.status = 'done'
    turn.result = outcome.result
    turn.text = outcome.result.text
    turn.backend = outcome.result.backend
  } else {
    turn.status = 'failed'
    turn.failure = outcome.failure
  }
  turn.progress = null
}

const BACKEND_LABELS: Record<BackendName, string> = { webgpu: 'WebGPU', 'ort-wasm': 'ORT WASM', cpu: 'CPU' }
const CHOICE_LABELS: Record<BackendChoice, string> = { auto: 'Automatic', ...BACKEND_LABELS }

export function backendLabel(name: BackendName): string {
  return BACKEND_LABELS[name]
}

export function backendChoiceLabel(choice: BackendChoice): string {
  return CHOICE_LABELS[choice]
}

/** Why the answer ended, in words. */
export function finishLabel(finish: ChatResult['finish']): string {
  switch (finish) {
    case 'end':
      return 'finished'
    case 'length':
      return 'stopped at the token limit'
    case 'stopped':
      return 'stopped by you'
  }
}

/** What the progress bar is doing, in words. */
export function phaseLabel(phase: ChatProgress['phase']): string {
  switch (phase) {
    case 'sync':
      return 'Syncing headers'
    case 'fetch':
      return 'Fetching and verifying experts'
    case 'load':
      return 'Loading experts onto the device'
    case 'run':
      return 'Generating'
  }
}

/** `temperature 0 (greedy) · top-p 0.9 · 128 tokens · seed 42`. */
export function samplingSummary(s: Sampling): string {
  const t = s.temperature === 0 ? 'temperature 0 (greedy)' : `temperature ${s.temperature}`
  return `${t} · top-p ${s.topP} · ${s.maxTokens} tokens · seed ${s.seed}`
}

/**
 * The newer accepted version of an expert an answer used, from the page's current param index: the
 * current block when its version is above the one used, else null (same version, or not known).
 */
export function newerVersion(used: Pick<UsedExpertInfo, 'name' | 'version' | 'cid'>, current: Readonly<Record<string, { readonly cid: string; readonly version: number }>>): { cid: string; version: number } | null {
  const now = current[used.name]
  if (now === undefined || now.cid === used.cid || now.version <= used.version) return null
  return { cid: now.cid, version: now.version }
}
