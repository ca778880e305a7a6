/**
 * A genesis training record, as the explorer reads it: the JSON file a chain D dataset document
 * links as `record` (how the genesis model was trained on that data). The pipeline that writes it is
 * Node-only (relay/genesis/genesis.ts, `GenesisRecord`); the site reads it with this parser, which
 * checks the whole shape and throws a {@link RecordError} naming the offending field (e.g.
 * `evaluation.heldout.teacher`) rather than drawing a page from a file that does not hold together.
 *
 * The bytes are the record file's, fetched by its CID and checked against it (the client's
 * `datasetRecord`); this parser only decides whether those bytes are a record. Fields it does not
 * know are ignored (a later pipeline may add some); every field it knows must be there, of its type,
 * and consistent: the expert usage has a row per layer and a share per expert of the student's
 * architecture.
 *
 * ```ts
 * const record = parseGenesisRecord(bytes)   // GenesisRecordView, or throws RecordError
 * record.evaluation.heldout.student_chain    // nats/token of the int8 model the chain stores
 * ```
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import type { DatasetSplit } from '../chain/dataset.ts'

export const RECORD_KIND = 'blyan/genesis-record'
export const RECORD_VERSION = 1
/** Largest record file the explorer reads (the smoke record is ~8 KiB; a big model's ~100 KiB). */
export const MAX_RECORD_BYTES = 4 * 1024 * 1024

/** A loss measurement: mean nats per predicted token over `tokens` predictions. */
export interface RecordLossPair {
  readonly student: number
  /** The student as the chain stores it (int8 matrices): what the network runs. */
  readonly student_chain: number
  readonly teacher: number
  readonly sequences: number
  readonly tokens: number
}

/** The architecture fields the explorer shows (the record holds the chain's whole Architecture). */
export interface RecordArchitecture {
  readonly family: string
  readonly dim: number
  readonly n_layers: number
  readonly n_heads: number
  readonly vocab_size: number
  readonly max_seq_len: number
  readonly expert_hidden_dim: number
  readonly n_experts: number
  readonly top_k: number
}

export interface RecordDataset {
  readonly name: string
  readonly split: DatasetSplit
  readonly license: string
  readonly description: string
  readonly cid: string
  readonly size: number
  readonly stories: number
}

/** The parts of relay/genesis/genesis.ts GenesisRecord the explorer reads, checked. */
export interface GenesisRecordView {
  readonly kind: typeof RECORD_KIND
  readonly version: typeof RECORD_VERSION
  readonly network: string
  /** The code that trained it: git commit (`unknown` outside a checkout), uncommitted changes. */
  readonly code: { readonly commit: string; readonly dirty: boolean }
  readonly teacher: { readonly file: string; readonly sha256: string; readonly architecture: RecordArchitecture }
  /** Everything the pipeline was given, as it wrote it (not interpreted here). */
  readonly recipe: unknown
  readonly datasets: readonly RecordDataset[]
  readonly model: { readonly architecture: RecordArchitecture; readonly parameters: number; readonly blocks: readonly { readonly name: string; readonly cid: string }[] }
  readonly training: {
    readonly steps: number
    readonly tokens: number
    /** [step, batch next-token loss (nats/token), batch objective], steps ascending. */
    readonly loss_curve: readonly (readonly [number, number, number])[]
  }
  readonly evaluation: {
    /** The held-out generated pool (the validation dataset). */
    readonly heldout: RecordLossPair
    /** A TinyStories validation slice, when the pipeline had it. */
    readonly tinystories: RecordLossPair | null
    /** [layer][expert]: share of the layer's routing slots (uniform = 1 / n_experts). */
    readonly expert_usage: readonly (readonly number[])[]
    /** min over layers and experts of share x n_experts: 1 is perfectly even. */
    readonly min_usage_vs_uniform: number
  }
}

/** The bytes are not a training record: `path` names the field (`record` for the whole file). */
export class RecordError extends Error {
  override readonly name = 'RecordError'
  readonly path: string
  constructor(path: string, detail: string) {
    super(`not a valid training record: ${path}: ${detail}`)
    this.path = path
  }
}

type Obj = Readonly<Record<string, unknown>>

function describe(value: unknown): string {
  if (value === undefined) return 'missing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return `an array of ${value.length}`
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`
  if (typeof value === 'object') return 'an object'
  return String(value)
}

/** `a.b`, or `b` at the top level (path ''). */
function at(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

function fail(path: string, expected: string, value: unknown): never {
  throw new RecordError(path, `expected ${expected}, got ${describe(value)}`)
}

function object(value: unknown, path: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'an object', value)
  return value as Obj
}

function array(value: unknown, path: string, max = 1_000_000): readonly unknown[] {
  if (!Array.isArray(value)) fail(path, 'an array', value)
  if (value.length > max) throw new RecordError(path, `more than ${max} entries`)
  return value
}

function str(o: Obj, key: string, path: string, pattern?: RegExp, what = 'a non-empty string'): string {
  const v = o[key]
  if (typeof v !== 'string' || v === '' || v.length > 4096 || (pattern !== undefined && !pattern.test(v))) fail(at(path, key), what, v)
  return v
}

function bool(o: Obj, key: string, path: string): boolean {
  const v = o[key]
  if (typeof v !== 'boolean') fail(at(path, key), 'true or false', v)
  return v
}

function uint(o: Obj, key: string, path: string, min = 0): number {
  const v = o[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(at(path, key), `an integer >= ${min}`, v)
  return v
}

function finite(v: unknown, path: string, min = -Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) fail(path, min === -Infinity ? 'a finite number' : `a finite number >= ${min}`, v)
  return v
}

function cidString(o: Obj, key: string, path: string): string {
  const v = o[key]
  if (typeof v !== 'string') fail(at(path, key), 'a CID', v)
  try {
    return CID.parse(v).toString()
  } catch {
    return fail(at(path, key), 'a CID', v)
  }
}

function architecture(value: unknown, path: string): RecordArchitecture {
  const o = object(value, path)
  const a: RecordArchitecture = {
    family: str(o, 'family', path),
    dim: uint(o, 'dim', path, 1),
    n_layers: uint(o, 'n_layers', path, 1),
    n_heads: uint(o, 'n_heads', path, 1),
    vocab_size: uint(o, 'vocab_size', path, 1),
    max_seq_len: uint(o, 'max_seq_len', path, 1),
    expert_hidden_dim: uint(o, 'expert_hidden_dim', path, 1),
    n_experts: uint(o, 'n_experts', path, 1),
    top_k: uint(o, 'top_k', path, 1)
  }
  if (a.n_layers > 4096 || a.n_experts > 4096) throw new RecordError(path, `${a.n_layers} layers of ${a.n_experts} experts: more than a record can describe`)
  if (a.top_k > a.n_experts) throw new RecordError(`${path}.top_k`, `top_k ${a.top_k} is more than n_experts ${a.n_experts}`)
  return a
}

function lossPair(value: unknown, path: string): RecordLossPair {
  const o = object(value, path)
  return {
    student: finite(o['student'], `${path}.student`, 0),
    student_chain: finite(o['student_chain'], `${path}.student_chain`, 0),
    teacher: finite(o['teacher'], `${path}.teacher`, 0),
    sequences: uint(o, 'sequences', path, 1),
    tokens: uint(o, 'tokens', path, 1)
  }
}

function dataset(value: unknown, path: string): RecordDataset {
  const o = object(value, path)
  const split = o['split']
  if (split !== 'train' && split !== 'validation') fail(`${path}.split`, '"train" or "validation"', split)
  return {
    name: str(o, 'name', path),
    split,
    license: str(o, 'license', path),
    description: typeof o['description'] === 'string' ? o['description'] : fail(`${path}.description`, 'a string', o['description']),
    cid: cidString(o, 'cid', path),
    size: uint(o, 'size', path, 1),
    stories: uint(o, 'stories', path)
  }
}

function lossCurve(value: unknown, path: string): (readonly [number, number, number])[] {
  const out: (readonly [number, number, number])[] = []
  array(value, path).forEach((point, i) => {
    const p = `${path}[${i}]`
    const t = array(point, p)
    if (t.length !== 3) fail(p, '[step, loss, objective]', point)
    const step = t[0]
    if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) fail(`${p}[0]`, 'a step (an integer >= 0)', step)
    const before = out[out.length - 1]
    if (before !== undefined && step <= before[0]) throw new RecordError(`${p}[0]`, `step ${step} does not follow step ${before[0]}`)
    out.push([step, finite(t[1], `${p}[1]`, 0), finite(t[2], `${p}[2]`)])
  })
  return out
}

function usage(value: unknown, path: string, arch: RecordArchitecture): number[][] {
  const rows = array(value, path)
  if (rows.length !== arch.n_layers) throw new RecordError(path, `${rows.length} layers, the student has ${arch.n_layers}`)
  return rows.map((row, l) => {
    const shares = array(row, `${path}[${l}]`)
    if (shares.length !== arch.n_experts) throw new RecordError(`${path}[${l}]`, `${shares.length} experts, the student has ${arch.n_experts}`)
    return shares.map((s, e) => {
      const share = finite(s, `${path}[${l}][${e}]`, 0)
      if (share > 1) fail(`${path}[${l}][${e}]`, 'a share between 0 and 1', s)
      return share
    })
  })
}

/**
 * Parse a training record file (its bytes, or its text). Throws {@link RecordError} when it is not
 * UTF-8 JSON, not a `blyan/genesis-record` of version 1, or any field is missing, of the wrong type,
 * out of range, or inconsistent with the student's architecture.
 */
export function parseGenesisRecord(input: Uint8Array | string): GenesisRecordView {
  const size = typeof input === 'string' ? input.length : input.byteLength
  if (size > MAX_RECORD_BYTES) throw new RecordError('record', `${size} bytes, more than the ${MAX_RECORD_BYTES} a record may have`)
  let text: string
  try {
    text = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input)
  } catch {
    throw new RecordError('record', 'the file is not UTF-8 text')
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    throw new RecordError('record', `the file is not JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  const r = object(raw, 'record')
  if (r['kind'] !== RECORD_KIND) fail('kind', `"${RECORD_KIND}"`, r['kind'])
  if (r['version'] !== RECORD_VERSION) fail('version', `${RECORD_VERSION}`, r['version'])
  // Field by field in the order the pipeline writes them, so the first one wrong is the one named.
  const network = str(r, 'network', '')
  const code = object(r['code'], 'code')
  const codeView = { commit: str(code, 'commit', 'code'), dirty: bool(code, 'dirty', 'code') }
  const teacher = object(r['teacher'], 'teacher')
  const teacherView = {
    file: str(teacher, 'file', 'teacher'),
    sha256: str(teacher, 'sha256', 'teacher', /^[0-9a-f]{64}$/, 'a SHA-256 (64 lowercase hex digits)'),
    architecture: architecture(teacher['architecture'], 'teacher.architecture')
  }
  if (!Object.hasOwn(r, 'recipe')) fail('recipe', 'the recipe', undefined)
  const datasets = array(r['datasets'], 'datasets', 1024).map((d, i) => dataset(d, `datasets[${i}]`))
  const model = object(r['model'], 'model')
  const modelArch = architecture(model['architecture'], 'model.architecture')
  const modelView = {
    architecture: modelArch,
    parameters: uint(model, 'parameters', 'model', 1),
    blocks: array(model['blocks'], 'model.blocks').map((b, i) => {
      const o = object(b, `model.blocks[${i}]`)
      return { name: str(o, 'name', `model.blocks[${i}]`), cid: cidString(o, 'cid', `model.blocks[${i}]`) }
    })
  }
  const training = object(r['training'], 'training')
  const trainingView = {
    steps: uint(training, 'steps', 'training'),
    tokens: uint(training, 'tokens', 'training'),
    loss_curve: lossCurve(training['loss_curve'], 'training.loss_curve')
  }
  const evaluation = object(r['evaluation'], 'evaluation')
  const tinystories = evaluation['tinystories']
  return {
    kind: RECORD_KIND,
    version: RECORD_VERSION,
    network,
    code: codeView,
    teacher: teacherView,
    recipe: r['recipe'],
    datasets,
    model: modelView,
    training: trainingView,
    evaluation: {
      heldout: lossPair(evaluation['heldout'], 'evaluation.heldout'),
      tinystories: tinystories === null ? null : lossPair(tinystories, 'evaluation.tinystories'),
      expert_usage: usage(evaluation['expert_usage'], 'evaluation.expert_usage', modelArch),
      min_usage_vs_uniform: finite(evaluation['min_usage_vs_uniform'], 'evaluation.min_usage_vs_uniform', 0)
    }
  }
}
