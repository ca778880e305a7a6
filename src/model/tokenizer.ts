/**
 * Text <-> token ids for the models the chain carries: the interface every tokenizer implements,
 * the factory that builds one from a tokenizer file as stored on chain, and a streaming decoder.
 *
 * ```ts
 * const tok = createTokenizer('llama2c', tok512Bytes, 512, 1, 2)
 * const ids = tok.encode('Once upon a time', { bos: true })   // [1, 403, 407, 261, 378]
 * tok.decode(ids)                                             // 'Once upon a time'
 * const stream = new TextStream(tok)
 * for (const id of generated) ui.append(stream.push(id))      // never splits a UTF-8 character
 * ```
 *
 * Two implementations, one per file format of `ImportedTokenizer.format`:
 * - `llama2c` (src/model/bpe-llama2c.ts): llama2.c's `tokenizer.bin`, encoded and decoded exactly
 *   as run.c's `encode` / `decode` do.
 * - `hf_tokenizer_json` (src/model/tokenizer-hf.ts): a Hugging Face `tokenizer.json` with a BPE
 *   model, in both families the chain imports: SentencePiece-style with byte fallback (Mixtral)
 *   and GPT-2 byte-level (OLMoE, Qwen2-MoE).
 *
 * A tokenizer file is data from the network: anything wrong with it, or any feature this code does
 * not implement, is a ModelFormatError naming the feature when the tokenizer is built, never a wrong
 * encoding later. Misuse by our own code (a token id outside the vocabulary) is a RangeError.
 *
 * @module
 */
import { aint } from '../assert.ts'
import { llama2cBpe } from './bpe-llama2c.ts'
import type { ImportedTokenizer } from './imported.ts'
import { hfTokenizerJson } from './tokenizer-hf.ts'

export interface EncodeOptions {
  /** Put the BOS id first. @default false */
  readonly bos?: boolean
  /** Put the EOS id last. @default false */
  readonly eos?: boolean
}

export interface Tokenizer {
  /** The model's vocabulary size: every id this tokenizer produces or accepts is below it. */
  readonly vocabSize: number
  readonly bos: number
  readonly eos: number
  /** Token ids for text; with bos, a BOS id first (llama2.c's encode(text, bos=1, eos=0)). */
  encode(text: string, options?: EncodeOptions): number[]
  /**
   * The text piece `token` adds after `previous` (-1: nothing before it). llama2c: run.c's decode,
   * so after BOS the leading space is dropped and `<0x0A>` byte tokens become their byte.
   * tokenizer.json: decode([previous, token]) less decode([previous]), so the decoder's rules for
   * the first token (Strip, Metaspace) apply after BOS too. A byte token that is only part of a
   * UTF-8 character comes out as U+FFFD: stream with {@link TextStream}, or `decode` whole sequences.
   */
  decodeToken(previous: number, token: number): string
  /** Whole sequence to text (multi-byte UTF-8 split across byte tokens comes out whole). BOS, EOS and special tokens add nothing. */
  decode(tokens: readonly number[]): string
}

export type TokenizerFormat = ImportedTokenizer['format']
export const TOKENIZER_FORMATS: readonly TokenizerFormat[] = Object.freeze(['llama2c', 'hf_tokenizer_json'])

/**
 * Build the tokenizer for a file of `format` and a model of `vocabSize` tokens with the given BOS
 * and EOS ids. A bad or unsupported file throws ModelFormatError (naming `file` when given); bad
 * arguments throw TypeError / RangeError.
 */
export function createTokenizer(format: TokenizerFormat, bytes: Uint8Array, vocabSize: number, bos: number, eos: number, file: string | null = null): Tokenizer {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes: expected Uint8Array')
  aint(vocabSize, 'vocabSize', 1)
  aint(bos, 'bos', 0, vocabSize - 1)
  aint(eos, 'eos', 0, vocabSize - 1)
  if (format === 'llama2c') return llama2cBpe(bytes, vocabSize, bos, eos, file)
  if (format === 'hf_tokenizer_json') return hfTokenizerJson(bytes, vocabSize, bos, eos, file)
  throw new RangeError(`format: expected one of ${TOKENIZER_FORMATS.join(', ')}, got ${JSON.stringify(format)}`)
}

/** The tokenizer for an imported (or on-chain) tokenizer file, for a model of `vocabSize` tokens. */
export function tokenizerOf(imported: ImportedTokenizer, vocabSize: number, file: string | null = null): Tokenizer {
  return createTokenizer(imported.format, imported.bytes, vocabSize, imported.bos_id, imported.eos_id, file)
}

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
