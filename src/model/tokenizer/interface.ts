/**
 * What every tokenizer implements (text <-> token ids), and the file formats the chain carries.
 * The implementations (llama2c.ts, hf.ts) and the factory (index.ts) build on this file alone.
 *
 * @module
 */

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
  /**
   * True for a byte-fallback token (a `<0xXX>` piece): text the vocabulary has no piece for is
   * spelled byte by byte. A byte-level tokenizer (GPT-2's alphabet) has none.
   */
  isByteToken(token: number): boolean
}

/** The tokenizer file formats the chain carries (a meta document's `tokenizer.format`). */
export type TokenizerFormat = 'llama2c' | 'hf_tokenizer_json'
export const TOKENIZER_FORMATS: readonly TokenizerFormat[] = Object.freeze(['llama2c', 'hf_tokenizer_json'])
