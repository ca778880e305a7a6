/**
 * What every importer produces: a model already cut into the chain's block layout.
 *
 * One entry per chain B block (`embedding`, `layer<L>.router`, `layer<L>.expert<E>`), each holding
 * exactly `expectedTensors(name, architecture)` (src/chain/params.ts), in that order, as float32.
 * Building payloads from it is `buildPayload(tensors.map(...))` per block (src/tensor/payload.ts).
 *
 * ```ts
 * const model = importLlama2c(bytes, { file: 'stories260K.bin', experts: 4 })
 * for (const [name, tensors] of model.blocks) buildPayload(tensors.map((t) => ({ ...t, dtype: 'fp32' })))
 * ```
 *
 * @module
 */
import { decodeMeta, encodeMeta, type Architecture, type MetaDocument } from '../chain/meta.ts'
import { blockNames, expectedTensors } from '../chain/params.ts'
import { fromHex } from '../codec/cbor.ts'
import { ModelFormatError, formatError } from './errors.ts'
import type { TokenizerFormat } from './tokenizer/interface.ts'

/** One tensor of a block: float32 values, row-major over `shape` ([out, in] for matrices). */
export interface NamedTensor {
  readonly name: string
  readonly shape: readonly number[]
  /** (product of shape) row-major */
  readonly values: Float32Array
}

/** The tokenizer file as it will be stored on chain (a UnixFS file named by the meta document). */
export interface ImportedTokenizer {
  readonly format: TokenizerFormat
  /** The file's bytes, unchanged. */
  readonly bytes: Uint8Array
  readonly bos_id: number
  readonly eos_id: number
}

/** The file format a model was imported from. */
export type ModelFormat = 'llama2c' | 'mixtral' | 'olmoe' | 'qwen2_moe'

export interface ImportedModel {
  readonly source: ModelFormat
  /** decodeMeta-valid (it is decodeMeta's own frozen copy). */
  readonly architecture: Architecture
  /** expert name (embedding, layer<L>.router, layer<L>.expert<E>) -> its tensors, exactly expectedTensors(name, architecture) in that order */
  readonly blocks: ReadonlyMap<string, readonly NamedTensor[]>
  readonly tokenizer: ImportedTokenizer | null
}

/** The secp256k1 generator, compressed: a valid public key for the throwaway document below. */
const SOME_KEY = /* @__PURE__ */ fromHex('0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798')

/**
 * Check `arch` against the chain A meta schema by round-tripping it through encodeMeta/decodeMeta
 * inside a minimal document, so importers and validators can never disagree about what is valid.
 * Returns decodeMeta's frozen copy; a violation is a ModelFormatError naming the field.
 */
export function checkArchitecture(arch: Architecture, file: string | null): Architecture {
  const doc: MetaDocument = {
    kind: 'blyan/meta',
    version: 1,
    network: 'import-check',
    architecture: arch,
    tokenizer: null,
    pow: { A: 0, B: 0, C: 0, D: 0 },
    pol: { delta: 0, eval_sequences: 1, seq_len: 1 },
    reward: { base: 0 },
    validators: [SOME_KEY]
  }
  try {
    return decodeMeta(encodeMeta(doc)).architecture
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e)
    throw new ModelFormatError(file, null, `the model's architecture is not valid on chain: ${why}`, { cause: e })
  }
}

/**
 * Freeze an importer's result after checking it: every block of the architecture is present and
 * holds exactly its expected tensors, in order, with matching value counts; the tokenizer's ids
 * are inside the vocabulary. A mismatch here is an importer bug, reported as a ModelFormatError
 * so callers still see one error type.
 */
export function assembleModel(
  source: ModelFormat,
  architecture: Architecture,
  blocks: ReadonlyMap<string, readonly NamedTensor[]>,
  tokenizer: ImportedTokenizer | null,
  file: string | null
): ImportedModel {
  const names = blockNames(architecture)
  if (blocks.size !== names.length) formatError(file, null, `importer produced ${blocks.size} blocks, architecture needs ${names.length}`)
  const out = new Map<string, readonly NamedTensor[]>()
  for (const name of names) {
    const held = blocks.get(name)
    if (held === undefined) formatError(file, null, `importer produced no block ${name}`)
    const specs = expectedTensors(name, architecture)
    if (held.length !== specs.length) formatError(file, null, `${name}: ${held.length} tensors, expected ${specs.length}`)
    out.set(
      name,
      Object.freeze(
        specs.map((spec, i) => {
          const t = held[i] as NamedTensor
          const n = spec.shape.reduce((a, b) => a * b, 1)
          if (t.name !== spec.name || t.shape.length !== spec.shape.length || t.shape.some((d, j) => d !== spec.shape[j]) || t.values.length !== n) {
            formatError(file, null, `${name}: tensor ${i} is ${t.name} [${t.shape.join(', ')}] (${t.values.length} values), expected ${spec.name} [${spec.shape.join(', ')}]`)
          }
          return Object.freeze({ name: spec.name, shape: Object.freeze([...spec.shape]), values: t.values })
        })
      )
    )
  }
  if (tokenizer !== null) {
    for (const key of ['bos_id', 'eos_id'] as const) {
      const id = tokenizer[key]
      if (!Number.isSafeInteger(id) || id < 0 || id >= architecture.vocab_size) {
        formatError(file, null, `tokenizer ${key} ${id} is outside the vocabulary of ${architecture.vocab_size}`)
      }
    }
  }
  return Object.freeze({ source, architecture, blocks: out, tokenizer: tokenizer === null ? null : Object.freeze({ ...tokenizer }) })
}
