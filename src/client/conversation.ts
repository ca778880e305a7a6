/**
 * A conversation as the model reads it: the newest exchanges that fit the context window, then the
 * new prompt, with room left for the answer. Pure over a tokenizer, so the budget rules are tested
 * in Node with the chain's real tokenizer.
 *
 * The models on the chain continue text (there is no chat template), so the conversation is one
 * text: each earlier exchange is its prompt followed by its answer, exchanges end with a newline,
 * and the new prompt comes last. The window (max_seq_len) holds BOS, that text and the answer:
 *
 * - the answer gets the sampling's maxTokens, lowered so that the prompt keeps up to half the window;
 * - a prompt longer than what is left keeps its end (the start is cut, and said);
 * - earlier exchanges fill what remains, newest first; the oldest that do not fit are left out.
 *
 * @module
 */
import type { Tokenizer } from '../model/tokenizer/index.ts'
import type { ChatContext, ChatExchange } from './api.ts'

/** What ends an earlier exchange in the text the model reads. */
export const EXCHANGE_END = '\n'

export interface FittedConversation {
  /** The tokens the model reads before answering, BOS first. */
  readonly tokens: number[]
  readonly context: ChatContext
}

/** Fit `history` (oldest first) and `prompt` into `window` tokens with room for up to `maxTokens` of answer. */
export function fitConversation(tokenizer: Tokenizer, window: number, history: readonly ChatExchange[], prompt: string, maxTokens: number): FittedConversation {
  if (!Number.isInteger(window) || window < 2) throw new RangeError(`window: at least 2 tokens, got ${window}`)
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`maxTokens: a whole number >= 1, got ${maxTokens}`)
  const promptTokens = tokenizer.encode(prompt)
  const room = window - 1 // BOS is always read
  // The prompt is guaranteed up to half the window; the answer gets the rest, up to maxTokens.
  const answer = Math.max(1, Math.min(maxTokens, room - Math.min(promptTokens.length, Math.floor(room / 2))))
  const forPrompt = room - answer
  const kept = promptTokens.slice(Math.max(0, promptTokens.length - forPrompt))
  let left = forPrompt - kept.length
  const earlier: number[][] = []
  // Newest first; the first exchange that does not fit ends the search, so the text read back has no gap.
  for (let i = history.length - 1; i >= 0 && kept.length === promptTokens.length; i--) {
    const h = history[i] as ChatExchange
    const t = tokenizer.encode(h.prompt + h.answer + EXCHANGE_END)
    if (t.length > left) break
    earlier.unshift(t)
    left -= t.length
  }
  const tokens = [tokenizer.bos, ...earlier.flat(), ...kept]
  return {
    tokens,
    context: {
      window,
      promptTokens: tokens.length,
      usedExchanges: earlier.length,
      droppedExchanges: history.length - earlier.length,
      trimmedTokens: promptTokens.length - kept.length,
      promptLength: promptTokens.length,
      maxTokens: answer,
      byteTokens: promptTokens.reduce((n, t) => n + (tokenizer.isByteToken(t) ? 1 : 0), 0)
    }
  }
}

/** A context for an answer that never reached the model (stopped while loading). */
export function unreadContext(window: number, maxTokens: number): ChatContext {
  return { window, promptTokens: 0, usedExchanges: 0, droppedExchanges: 0, trimmedTokens: 0, promptLength: 0, maxTokens, byteTokens: 0 }
}

/** A sentence ends here: `.`, `!` or `?`, maybe closed by a quote or bracket. */
const SENTENCE_END = /[.!?]["'”’)\]]*(?=\s|$)/g

/**
 * An answer the token limit stopped, cut back to a clean end: the last full sentence when that
 * keeps at least half the text, else the last whole word followed by `…`. Other answers are only
 * trimmed of trailing space.
 */
export function tidyAnswer(text: string, finish: 'end' | 'length' | 'stopped'): string {
  const t = text.trimEnd()
  if (finish !== 'length' || t === '') return t
  if (/[.!?]["'”’)\]]*$/.test(t)) return t
  let sentence = -1
  for (const m of t.matchAll(SENTENCE_END)) sentence = m.index + m[0].length
  if (sentence >= t.length / 2) return t.slice(0, sentence)
  const space = t.search(/\s\S*$/)
  return `${(space > 0 ? t.slice(0, space) : t).replace(/[\s,;:—-]+$/, '')}…`
}

/** A 32-bit seed drawn for an answer whose settings fix none. */
export function drawSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] as number
}
