/**
 * llama2.c tokenizer files (`tokenizer.bin`, `tok512.bin`, written by llama2.c's tokenizer.py):
 *
 *   int32 max_token_length
 *   per token, vocab_size times: float32 score, int32 length, `length` bytes (the piece, UTF-8 or a raw byte)
 *
 * The file does not store its vocabulary size: run.c reads as many tokens as the model's config
 * says. Here the file must hold exactly that many, with nothing after them, each piece 1..max bytes
 * and each score finite. BOS is 1 and EOS is 2 (llama2.c / sentencepiece convention).
 * Encoding and decoding text live elsewhere; this only validates and keeps the bytes.
 *
 * @module
 */
import { aint } from '../../assert.ts'
import { ByteReader } from '../_bytes.ts'
import { formatError } from '../errors.ts'
import type { ImportedTokenizer } from '../imported.ts'

export const LLAMA2C_BOS = 1
export const LLAMA2C_EOS = 2

export interface Llama2cToken {
  /** The piece's bytes (a view into the file). */
  readonly piece: Uint8Array
  readonly score: number
}

export interface Llama2cVocab {
  readonly max_token_length: number
  readonly tokens: readonly Llama2cToken[]
}

/** Parse and validate a llama2.c tokenizer for a model with `vocabSize` tokens. */
export function parseLlama2cTokenizer(bytes: Uint8Array, vocabSize: number, file: string | null = null): Llama2cVocab {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes: expected Uint8Array')
  aint(vocabSize, 'vocabSize', 1)
  if (vocabSize < 3) formatError(file, null, `a llama2.c tokenizer needs BOS ${LLAMA2C_BOS} and EOS ${LLAMA2C_EOS}, so at least 3 tokens; the model has ${vocabSize}`)
  const r = new ByteReader(bytes, file)
  const max = r.i32('max_token_length')
  if (max < 1 || max > 1 << 16) formatError(file, 0, `max_token_length is ${max}, expected 1..65536`)
  const tokens: Llama2cToken[] = []
  for (let i = 0; i < vocabSize; i++) {
    const at = r.pos
    const score = r.f32(`token ${i} score`)
    if (!Number.isFinite(score)) formatError(file, at, `token ${i} score is ${score}`)
    const len = r.i32(`token ${i} length`)
    if (len < 1 || len > max) formatError(file, at + 4, `token ${i} length is ${len}, expected 1..${max} (max_token_length)`)
    tokens.push(Object.freeze({ piece: r.take(len, `token ${i} piece`), score }))
  }
  if (r.remaining !== 0) {
    formatError(file, r.pos, `${r.remaining} trailing bytes after ${vocabSize} tokens: the tokenizer's vocabulary is larger than the model's`)
  }
  return Object.freeze({ max_token_length: max, tokens: Object.freeze(tokens) })
}

/** Validate a llama2.c tokenizer for a model of `vocabSize` tokens and wrap it for the chain. */
export function llama2cTokenizer(bytes: Uint8Array, vocabSize: number, file: string | null = null): ImportedTokenizer {
  parseLlama2cTokenizer(bytes, vocabSize, file)
  return Object.freeze({ format: 'llama2c', bytes, bos_id: LLAMA2C_BOS, eos_id: LLAMA2C_EOS })
}
