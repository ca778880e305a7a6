/**
 * One chat exchange (a prompt and its answer) and how client events change it. Pure, so the
 * streaming logic is tested in Node; chat.svelte.ts keeps a reactive list of these.
 *
 * @module
 */
import type { BackendInfo, BackendChoice, BackendName, ChatContext, ChatEvent, ChatExchange, ChatFailure, ChatProgress, ChatResult, Sampling, UsedExpertInfo } from '../client/api.ts'
import { errorMessage } from './format.ts'

/** Sampling settings being edited (the API's type is read-only). */
export type EditableSampling = { -readonly [K in keyof Sampling]: Sampling[K] }

/** `interrupted`: the page was reloaded or closed while the answer ran (what had streamed is kept). */
export type TurnStatus = 'running' | 'done' | 'failed' | 'error' | 'interrupted'

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

/** `temperature 0 (greedy) · top-p 0.9 · 128 tokens · seed 42` (or `random seed`). */
export function samplingSummary(s: Sampling): string {
  const t = s.temperature === 0 ? 'temperature 0 (greedy)' : `temperature ${s.temperature}`
  return `${t} · top-p ${s.topP} · ${s.maxTokens} tokens · ${s.seed === null ? 'random seed' : `seed ${s.seed}`}`
}

/**
 * The conversation the model reads back before a new prompt: every earlier exchange that has an
 * answer (a stopped or interrupted one counts with what it wrote; a refused one does not).
 */
export function historyOf(turns: readonly Turn[]): ChatExchange[] {
  return turns.filter((t) => t.status !== 'running' && t.text !== '' && t.failure === null && t.error === null).map((t) => ({ prompt: t.prompt, answer: t.text }))
}

/**
 * The answer goes on from the middle of the prompt's sentence (`, there was…`): it is shown after
 * the prompt's last words ({@link promptTail}), so it reads as the continuation it is.
 */
export function continuesPrompt(answer: string): boolean {
  return /^[,;:.!?)\]'’-]|^[a-z]/.test(answer)
}

/** The last `words` words of a prompt, after `…` when there were more: `…upon a time`. */
export function promptTail(prompt: string, words = 4): string {
  const all = prompt.trim().split(/\s+/)
  return `${all.length > words ? '…' : ''}${all.slice(-words).join(' ')}`
}

/** A share of a prompt's tokens spelled as raw bytes above which the page warns that the model cannot read it. */
export const BYTE_TOKEN_WARNING = 0.25

/** What the page tells about how an answer's conversation fit the model's context window. */
export function contextNotices(c: ChatContext): string[] {
  const out: string[] = []
  if (c.trimmedTokens > 0) {
    out.push(`Your prompt is ${c.promptLength} tokens, more than the ${c.window}-token context this model reads with room for an answer: its first ${c.trimmedTokens} tokens were left out.`)
  }
  if (c.droppedExchanges > 0) {
    out.push(`${c.droppedExchanges === 1 ? 'The oldest exchange was' : `The ${c.droppedExchanges} oldest exchanges were`} left out: they no longer fit the model's ${c.window}-token context.`)
  }
  if (c.promptLength > 0 && c.byteTokens / c.promptLength >= BYTE_TOKEN_WARNING) {
    out.push(`${c.byteTokens} of your prompt's ${c.promptLength} tokens are raw bytes: the model's vocabulary has no words for that text (it learned from English stories), so expect an answer that does not follow it.`)
  }
  return out
}

/** `Memory: 2 earlier exchanges · 143 of 256 tokens`. */
export function memorySummary(c: ChatContext): string {
  const earlier = c.usedExchanges === 0 ? 'no earlier exchange' : `${c.usedExchanges} earlier exchange${c.usedExchanges === 1 ? '' : 's'}`
  return `Memory: ${earlier} · ${c.promptTokens} of ${c.window} tokens read, ${c.maxTokens} left for the answer`
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
