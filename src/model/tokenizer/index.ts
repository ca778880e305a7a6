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
 * - `llama2c` (src/model/tokenizer/llama2c.ts): llama2.c's `tokenizer.bin`, encoded and decoded exactly
 *   as run.c's `encode` / `decode` do.
 * - `hf_tokenizer_json` (src/model/tokenizer/hf.ts): a Hugging Face `tokenizer.json` with a BPE
 *   model, in both families the chain imports: SentencePiece-style with byte fallback (Mixtral)
 *   and GPT-2 byte-level (OLMoE, Qwen2-MoE).
 *
 * A tokenizer file is data from the network: anything wrong with it, or any feature this code does
 * not implement, is a ModelFormatError naming the feature when the tokenizer is built, never a wrong
 * encoding later. Misuse by our own code (a token id outside the vocabulary) is a RangeError.
 *
 * @module
 */
import { aint } from '../../assert.ts'
import type { ImportedTokenizer } from '../imported.ts'
import { hfTokenizerJson } from './hf.ts'
import { TOKENIZER_FORMATS, type Tokenizer, type TokenizerFormat } from './interface.ts'
import { llama2cBpe } from './llama2c.ts'

export type { EncodeOptions, Tokenizer, TokenizerFormat } from './interface.ts'
export { TOKENIZER_FORMATS } from './interface.ts'
export { TextStream } from './stream.ts'

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
