/**
 * One answer to a text prompt: encode (BOS first), generate, stream text. Shared by `blyan generate`
 * (relay/node/run.ts) and the site's chat (src/client/chat-runner.ts), so a prompt at temperature 0 gives the
 * same tokens in both.
 *
 * @module
 */
import { Sampler } from '../model/sampler.ts'
import { TextStream, type Tokenizer } from '../model/tokenizer/index.ts'
import type { Engine, Generation, LoadEvent } from './engine.ts'

export interface CompleteOptions {
  /** Text (encoded with BOS first), or tokens already encoded (BOS first), e.g. a conversation fitted to the window. */
  readonly prompt: string | readonly number[]
  readonly maxTokens: number
  /** 0 is greedy (argmax). */
  readonly temperature: number
  readonly topP: number
  readonly seed: number
  /** Each generated token with the text it adds (may be '' while a UTF-8 character is incomplete). */
  readonly onToken?: (id: number, text: string) => void
  /** Stops between tokens (what was generated is returned with finish `stopped`) and aborts loads. */
  readonly signal?: AbortSignal
  /** The blocks the answer loads, as they load (Engine's LoadEvent). */
  readonly onLoad?: (event: LoadEvent) => void
}

export interface Completion extends Generation {
  readonly text: string
}

/** Generate after a prompt (BOS first); stops at EOS, or at BOS as llama2.c's stories do. */
export async function complete(engine: Engine, tokenizer: Tokenizer, options: CompleteOptions): Promise<Completion> {
  const prompt = typeof options.prompt === 'string' ? tokenizer.encode(options.prompt, { bos: true }) : options.prompt
  const stream = new TextStream(tokenizer)
  // The prompt gives the stream its context (a first word after BOS loses its space), but only what
  // the model adds is emitted.
  for (const t of prompt) stream.push(t)
  let text = ''
  const g = await engine.generate(prompt, {
    maxTokens: options.maxTokens,
    sampler: new Sampler(engine.model.architecture.vocab_size, { temperature: options.temperature, topP: options.topP, seed: options.seed }),
    stopTokens: [tokenizer.eos, tokenizer.bos],
    onToken: (id) => {
      const piece = stream.push(id)
      text += piece
      options.onToken?.(id, piece)
    },
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.onLoad === undefined ? {} : { onLoad: options.onLoad })
  })
  const tail = stream.flush()
  text += tail
  return { ...g, text }
}
