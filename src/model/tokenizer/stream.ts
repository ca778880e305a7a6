/**
 * Streaming detokenization: text out as tokens come, never splitting a UTF-8 character.
 *
 * @module
 */
import { aint } from '../../assert.ts'
import type { Tokenizer } from './interface.ts'

/**
 * Incremental detokenization for streaming generation: `push` each generated id and append what
 * it returns. Text is held back while it ends in an incomplete UTF-8 character, and every piece is
 * decoded with the token before it, so context-dependent rules (the space dropped after BOS or at
 * the start of a SentencePiece text) come out as `decode` of the whole sequence would give them.
 * This is the prefix/read-offset scheme of Hugging Face's text-generation-inference.
 */
export class TextStream {
  readonly #tokenizer: Tokenizer
  /** Ids from the first one still needed as context. */
  #ids: number[] = []
  /** #ids[0, #read) has been emitted. */
  #read = 0

  constructor(tokenizer: Tokenizer) {
    this.#tokenizer = tokenizer
  }

  /** Add one generated id; returns the text it completes ('' while a character is incomplete). */
  push(token: number): string {
    aint(token, 'token', 0, this.#tokenizer.vocabSize - 1)
    this.#ids.push(token)
    const done = this.#tokenizer.decode(this.#ids.slice(0, this.#read))
    const all = this.#tokenizer.decode(this.#ids)
    if (all.length <= done.length || all.endsWith('\uFFFD') || !all.startsWith(done)) return ''
    // Keep the last emitted token as context for the next piece.
    this.#ids = this.#ids.slice(this.#read)
    this.#read = this.#ids.length
    return all.slice(done.length)
  }

  /** The text still held back (an incomplete character comes out as U+FFFD); resets the stream. */
  flush(): string {
    const done = this.#tokenizer.decode(this.#ids.slice(0, this.#read))
    const all = this.#tokenizer.decode(this.#ids)
    this.#ids = []
    this.#read = 0
    return all.startsWith(done) ? all.slice(done.length) : all
  }
}
