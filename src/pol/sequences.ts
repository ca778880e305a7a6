/**
 * Proof-of-Learning token sequences: how a chain D dataset (UTF-8 text, documents separated by a
 * blank line) becomes the fixed-length token windows miners train on and validators evaluate. The
 * browser miner and every validator must cut the same windows, so this is specified exactly
 * (docs/protocol.md §6):
 *
 * 1. Documents: the text with `\r\n` read as `\n`, split at runs of blank lines (a line of only
 *    spaces and tabs is blank), each trimmed; empty documents dropped.
 * 2. The token stream: each document encoded with chain A's tokenizer, BOS first, no EOS; the
 *    encodings concatenated in document order.
 * 3. Window j (0 <= j < N, N = floor((L - 1) / seqLen) for a stream of L tokens) is tokens
 *    [j * seqLen, j * seqLen + seqLen]: seqLen + 1 tokens, seqLen predictions.
 * 4. A slice {start, count} is windows (start + i) mod N for i < count.
 *
 * @module
 */
import type { Tokenizer } from '../model/tokenizer/index.ts'

/** The dataset has fewer tokens than one window needs. */
export class DatasetTooSmallError extends Error {
  override readonly name = 'DatasetTooSmallError'
  constructor(tokens: number, seqLen: number) {
    super(`the dataset encodes to ${tokens} tokens: a window of seq_len ${seqLen} needs ${seqLen + 1}`)
  }
}

/** Step 1: the documents of a blank-line separated text. */
export function splitDocuments(text: string): string[] {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((d) => d.trim())
    .filter((d) => d !== '')
}

/** Step 2: every document encoded with BOS first, concatenated. */
export function tokenStream(text: string, tokenizer: Tokenizer): Int32Array {
  const parts = splitDocuments(text).map((d) => tokenizer.encode(d, { bos: true }))
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Steps 3 and 4: the windows of a token stream. */
export class SequencePool {
  readonly stream: Int32Array
  readonly seqLen: number
  /** N: how many windows the stream holds. */
  readonly size: number

  constructor(stream: Int32Array, seqLen: number) {
    if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`seqLen: a positive integer, got ${seqLen}`)
    const size = Math.floor((stream.length - 1) / seqLen)
    if (size < 1) throw new DatasetTooSmallError(stream.length, seqLen)
    this.stream = stream
    this.seqLen = seqLen
    this.size = size
  }

  static fromText(text: string, tokenizer: Tokenizer, seqLen: number): SequencePool {
    return new SequencePool(tokenStream(text, tokenizer), seqLen)
  }

  /** Window j: seqLen + 1 tokens (a view into the stream, not a copy). */
  window(j: number): Int32Array {
    if (!Number.isInteger(j) || j < 0 || j >= this.size) throw new RangeError(`window ${j}: the pool has ${this.size}`)
    return this.stream.subarray(j * this.seqLen, j * this.seqLen + this.seqLen + 1)
  }

  /** Windows (start + i) mod N for i < count. */
  slice(start: number, count: number): Int32Array[] {
    if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`slice start: a non-negative integer, got ${start}`)
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`slice count: a positive integer, got ${count}`)
    return Array.from({ length: count }, (_, i) => this.window((start + i) % this.size))
  }
}
