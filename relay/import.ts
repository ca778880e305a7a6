/**
 * Model import, file side: read a llama2.c checkpoint or a Hugging Face MoE directory from disk
 * and hand the bytes to the isomorphic importers in src/model.
 *
 * ```ts
 * const model = await importModel('../shared/data/stories260K.bin', { experts: 4 })  // finds tok512.bin beside it
 * const moe = await importModel('models/OLMoE-1B-7B-0924')                            // config.json + shards + tokenizer.json
 * ```
 *
 * Every problem with the files (missing, unreadable, wrong kind of path, malformed) is a
 * ModelFormatError naming the file; bad options are RangeErrors.
 *
 * @module
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, readdirSync, statSync, type Stats } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { ModelFormatError } from '../src/model/errors.ts'
import { hfArchitecture, hfTokenizer, importHf, parseShardIndex, shardedSource, type SafetensorsShard } from '../src/model/hf.ts'
import type { ImportedModel, ImportedTokenizer } from '../src/model/imported.ts'
import { llama2cToModel, parseLlama2c } from '../src/model/llama2c.ts'
import { parseSafetensorsHeader, safetensorsPrefixLength } from '../src/model/safetensors.ts'
import { llama2cTokenizer } from '../src/model/tokenizer/llama2c-file.ts'
import { tokenizerOf, type Tokenizer } from '../src/model/tokenizer/index.ts'

export interface ImportOptions {
  /** llama2.c only: experts each dense FFN is split into. @default 4 */
  readonly experts?: number
  /** Experts used per token. @default llama2.c: experts (exactly the dense model); HF: config num_experts_per_tok */
  readonly topK?: number
  /** Tokenizer file: llama2.c `tok*.bin`, or an HF `tokenizer.json`. @default found beside the model */
  readonly tokenizer?: string
  /** llama2.c only: seed of the expert clustering. @default 0 */
  readonly seed?: number
}

/** What importModel returns: the model, and for a Hugging Face directory its tokenizer.json built for encoding and decoding. */
export interface ImportResult extends ImportedModel {
  /** Hugging Face only: the tokenizer, ready to use (null without tokenizer.json). */
  readonly textTokenizer?: Tokenizer | null
}

/** Index file of a sharded HF checkpoint. */
export const HF_INDEX_FILE = 'model.safetensors.index.json'

/**
 * Import a model: a `.bin` file is a llama2.c checkpoint (tokenizer: `options.tokenizer`, else
 * `tok<vocab_size>.bin` beside it when present); a directory holding `config.json` (or that
 * `config.json` itself) is a Hugging Face MoE checkpoint (tokenizer: `options.tokenizer`, else
 * `tokenizer.json` in the directory when present, with BOS/EOS from config.json / tokenizer_config.json;
 * `textTokenizer` is that file built into a Tokenizer, so an unusable tokenizer.json fails here).
 */
export async function importModel(path: string, options: ImportOptions = {}): Promise<ImportResult> {
  if (typeof path !== 'string' || path === '') throw new TypeError('path: expected a file or directory name')
  const kind = statOf(path)
  if (kind.isDirectory()) {
    if (!existsSync(join(path, 'config.json'))) throw new ModelFormatError(path, null, 'is a directory without config.json: not a Hugging Face model directory')
    return importHfDirectory(path, options)
  }
  if (!kind.isFile()) throw new ModelFormatError(path, null, 'is not a regular file or directory')
  if (basename(path) === 'config.json') return importHfDirectory(dirname(path), options)
  if (!path.endsWith('.bin')) throw new ModelFormatError(path, null, 'is not a llama2.c checkpoint (.bin) or a Hugging Face model directory (config.json + .safetensors)')
  return importLlama2cFile(path, options)
}

// ---------------------------------------------------------------------------------------------
// llama2.c

async function importLlama2cFile(path: string, options: ImportOptions): Promise<ImportedModel> {
  const ckpt = parseLlama2c(readAll(path), path)
  let tokenizer: ImportedTokenizer | null = null
  const tokPath = options.tokenizer ?? join(dirname(path), `tok${ckpt.config.vocab_size}.bin`)
  if (options.tokenizer !== undefined || existsSync(tokPath)) tokenizer = llama2cTokenizer(readAll(tokPath), ckpt.config.vocab_size, tokPath)
  return llama2cToModel(ckpt, {
    file: path,
    tokenizer,
    ...(options.experts === undefined ? {} : { experts: options.experts }),
    ...(options.topK === undefined ? {} : { topK: options.topK }),
    ...(options.seed === undefined ? {} : { seed: options.seed })
  })
}

// ---------------------------------------------------------------------------------------------
// Hugging Face

async function importHfDirectory(dir: string, options: ImportOptions): Promise<ImportResult> {
  const configPath = join(dir, 'config.json')
  const config = readJson(configPath)
  const topK = options.topK === undefined ? {} : { topK: options.topK }
  const { architecture } = hfArchitecture(config, { configFile: configPath, ...topK })
  if (options.experts !== undefined && options.experts !== architecture.n_experts) {
    throw new RangeError(`experts: ${configPath} has ${architecture.n_experts} experts per layer; a Hugging Face MoE keeps its own experts (the option splits llama2.c FFNs)`)
  }
  if (options.seed !== undefined) throw new RangeError('seed: applies to llama2.c checkpoints only')
  const shards = openShards(dir)
  try {
    const tokPath = options.tokenizer ?? join(dir, 'tokenizer.json')
    let tokenizer: ImportedTokenizer | null = null
    if (options.tokenizer !== undefined || existsSync(tokPath)) {
      const tcPath = join(dirname(tokPath), 'tokenizer_config.json')
      tokenizer = hfTokenizer(readAll(tokPath), config, existsSync(tcPath) ? readJson(tcPath) : null, tokPath)
    }
    // Build the tokenizer before reading any tensor: a tokenizer.json that cannot encode (a feature
    // src/model/tokenizer/hf.ts lacks, a token id past the vocabulary) fails the import, not the
    // first chat. BOS / EOS outside the vocabulary are left for importHf to report.
    const inVocab = (id: number): boolean => id < architecture.vocab_size
    const textTokenizer = tokenizer !== null && inVocab(tokenizer.bos_id) && inVocab(tokenizer.eos_id) ? tokenizerOf(tokenizer, architecture.vocab_size, tokPath) : null
    const model = importHf(config, shards.source, { configFile: configPath, tokenizer, ...topK })
    return Object.freeze({ ...model, textTokenizer })
  } finally {
    shards.close()
  }
}

/** Open the directory's safetensors shards (through the index when there is one) and check their headers. */
function openShards(dir: string): { source: ReturnType<typeof shardedSource>; close: () => void } {
  const indexPath = join(dir, HF_INDEX_FILE)
  let index: ReadonlyMap<string, string> | null = null
  let names: string[]
  if (existsSync(indexPath)) {
    index = parseShardIndex(readJson(indexPath), indexPath)
    names = [...new Set(index.values())].sort()
  } else if (existsSync(join(dir, 'model.safetensors'))) {
    names = ['model.safetensors']
  } else {
    names = listDir(dir).filter((n) => n.endsWith('.safetensors')).sort()
    if (names.length === 0) throw new ModelFormatError(dir, null, 'holds no .safetensors file')
    if (names.length > 1) throw new ModelFormatError(dir, null, `holds ${names.length} .safetensors files but no ${HF_INDEX_FILE} saying which tensor is where`)
  }
  const fds: number[] = []
  const close = (): void => {
    for (const fd of fds.splice(0)) closeSync(fd)
  }
  try {
    const shards: SafetensorsShard[] = names.map((name) => {
      const file = join(dir, name)
      const fd = openFd(file)
      fds.push(fd)
      const size = fstatSync(fd).size
      const prefixLength = safetensorsPrefixLength(readAt(fd, file, 0, Math.min(8, size)), size, file)
      const header = parseSafetensorsHeader(readAt(fd, file, 0, prefixLength), size, file)
      return { file, header, read: (entry) => readAt(fd, file, entry.begin, entry.end - entry.begin) }
    })
    return { source: shardedSource(shards, index, indexPath), close }
  } catch (e) {
    close()
    throw e
  }
}

// ---------------------------------------------------------------------------------------------
// files: every failure becomes a ModelFormatError naming the file

function why(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code
  return code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : e instanceof Error ? e.message : String(e)
}

function statOf(path: string): Stats {
  try {
    return statSync(path)
  } catch (e) {
    throw new ModelFormatError(path, null, `cannot read: ${why(e)}`, { cause: e })
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch (e) {
    throw new ModelFormatError(dir, null, `cannot list: ${why(e)}`, { cause: e })
  }
}

function readAll(path: string): Uint8Array {
  try {
    const b = readFileSync(path)
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
  } catch (e) {
    throw new ModelFormatError(path, null, `cannot read: ${why(e)}`, { cause: e })
  }
}

function readJson(path: string): unknown {
  const bytes = readAll(path)
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (e) {
    throw new ModelFormatError(path, null, `is not valid UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`, { cause: e })
  }
}

function openFd(path: string): number {
  try {
    return openSync(path, 'r')
  } catch (e) {
    throw new ModelFormatError(path, null, `cannot read: ${why(e)}`, { cause: e })
  }
}

/** Exactly `length` bytes at `position` (in chunks below readSync's 2 GiB limit). */
function readAt(fd: number, file: string, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length)
  let done = 0
  while (done < length) {
    let n: number
    try {
      n = readSync(fd, out, done, Math.min(length - done, 1 << 30), position + done)
    } catch (e) {
      throw new ModelFormatError(file, position + done, `cannot read: ${why(e)}`, { cause: e })
    }
    if (n === 0) throw new ModelFormatError(file, position + done, `truncated at byte ${position + done}: the file shrank while being read`)
    done += n
  }
  return out
}
