/**
 * The one error a model importer throws for a bad model file.
 *
 * Model files (llama2.c checkpoints, tokenizers, safetensors shards, config.json) come from users
 * and the network, so every importer treats them as hostile: any way a file can be wrong ends in a
 * {@link ModelFormatError} naming the file, the byte offset where that is known, and what is
 * wrong, in one line. Never a RangeError from a DataView, never an allocation sized by an
 * unchecked header. Misuse of the API by our own code (a negative expert count) throws the
 * built-in TypeError / RangeError instead, as src/errors.ts describes.
 *
 * @module
 */

/**
 * A model file is truncated, oversized, malformed or uses a feature the importer does not support.
 *
 * Match on `name` (stable), never on `message` (for humans), e.g.
 * `stories260K.bin: truncated at byte 1048576: expected 4096 more bytes of layers[2].wq`.
 */
export class ModelFormatError extends Error {
  override readonly name = 'ModelFormatError'
  /** The file as the caller named it, or null for bytes with no file. */
  readonly file: string | null
  /** Byte offset in `file` where the problem is, or null when it is not about one place. */
  readonly offset: number | null

  constructor(file: string | null, offset: number | null, detail: string, options?: { cause?: unknown }) {
    const line = detail.replace(/\s*[\r\n]+\s*/g, ' ')
    super(file === null ? line : `${file}: ${line}`, options)
    this.file = file
    this.offset = offset
  }
}

/** Throw a ModelFormatError: a one-liner for guard clauses. */
export function formatError(file: string | null, offset: number | null, detail: string): never {
  throw new ModelFormatError(file, offset, detail)
}
