/**
 * llama2.c checkpoints (karpathy/llama2.c): parse, dequantize, and cut into chain blocks.
 *
 * Three layouts, all little-endian, as `export.py` writes them and `run.c` / `runq.c` read them:
 *
 * **version 0** (legacy, `legacy_export`; what `run.c`'s `memory_map_weights` maps):
 *
 *   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len   (vocab_size < 0: unshared classifier)
 *   float32 tok_embeddings [vocab, dim]
 *   per layer attention_norm [dim]; per layer wq [dim, dim]; wk [kv_dim, dim]; wv [kv_dim, dim]; wo [dim, dim]
 *   per layer ffn_norm [dim]; per layer w1 [hidden, dim]; w2 [dim, hidden]; w3 [hidden, dim]
 *   norm [dim]; freq_cis_real [seq_len, head_size/2]; freq_cis_imag [seq_len, head_size/2]   (read past, unused)
 *   output [vocab, dim]   (only when unshared)
 *
 * **version 1** (`version1_export`): a 256-byte header (uint32 magic 0x616b3432 "ak42", int32 version 1,
 * the 7 config ints, uint8 shared_classifier, zero padding), then float32 attention norms, ffn norms,
 * norm, tok_embeddings, wq.., wk.., wv.., wo.., w1.., w2.., w3.., output (when unshared).
 *
 * **version 2** (`version2_export`, `runq.c`): the same header with int32 group_size at byte 37 (packed,
 * unaligned), then float32 attention norms, ffn norms, norm, then Q8_0 tensors in the version 1 order,
 * each as int8 values followed by its float32 scales (one per group of group_size values):
 * value = q * scale, exactly as `runq.c`'s `dequantize` computes it in float32.
 *
 * head_size = dim / n_heads and kv_dim = head_size * n_kv_heads. RoPE in llama2.c rotates interleaved
 * pairs, the chain's convention (docs/protocol.md §7), so q and k rows are stored unpermuted.
 *
 * @module
 */
import { aint } from '../assert.ts'
import { EMBEDDING_NAME, expertName, routerName } from '../chain/header.ts'
import type { Architecture } from '../chain/meta.ts'
import { ByteReader, checkFinite } from './_bytes.ts'
import { formatError } from './errors.ts'
import { assembleModel, checkArchitecture, type ImportedModel, type ImportedTokenizer, type NamedTensor } from './imported.ts'
import { moefy } from './moefy.ts'

/** "ak42" read as a little-endian uint32: the magic of versions 1 and 2. */
export const LLAMA2C_MAGIC = 0x616b3432
/** Header size of versions 1 and 2. */
export const LLAMA2C_HEADER_SIZE = 256
/** llama2.c's fixed hyperparameters (run.c): RMSNorm epsilon and RoPE base. */
export const LLAMA2C_NORM_EPS = 1e-5
export const LLAMA2C_ROPE_THETA = 10000
/** Default number of experts a dense FFN is split into. */
export const LLAMA2C_DEFAULT_EXPERTS = 4

export interface Llama2cConfig {
  readonly version: 0 | 1 | 2
  /** Model width. */
  readonly dim: number
  /** Dense FFN width. */
  readonly hidden_dim: number
  readonly n_layers: number
  readonly n_heads: number
  readonly n_kv_heads: number
  /** Always positive here; the sign flag of version 0 is `shared_classifier`. */
  readonly vocab_size: number
  readonly seq_len: number
  /** Classifier is the token embedding (no `output` tensor in the file). */
  readonly shared_classifier: boolean
  /** Q8_0 group size (version 2), else 0. */
  readonly group_size: number
}

export interface Llama2cLayer {
  readonly attention_norm: Float32Array // (dim,)
  readonly wq: Float32Array // (n_heads * head_size, dim)
  readonly wk: Float32Array // (n_kv_heads * head_size, dim)
  readonly wv: Float32Array // (n_kv_heads * head_size, dim)
  readonly wo: Float32Array // (dim, n_heads * head_size)
  readonly ffn_norm: Float32Array // (dim,)
  readonly w1: Float32Array // (hidden_dim, dim)
  readonly w2: Float32Array // (dim, hidden_dim)
  readonly w3: Float32Array // (hidden_dim, dim)
}

export interface Llama2cWeights {
  readonly tok_embeddings: Float32Array // (vocab_size, dim)
  readonly layers: readonly Llama2cLayer[]
  readonly norm: Float32Array // (dim,)
  /** (vocab_size, dim), null when the classifier is shared */
  readonly output: Float32Array | null
}

export interface Llama2cCheckpoint {
  readonly config: Llama2cConfig
  readonly weights: Llama2cWeights
}

type LayerKey = keyof Llama2cLayer
type TopKey = 'tok_embeddings' | 'norm' | 'output' | 'freq_cis_real' | 'freq_cis_imag'
/**
 * A run of tensors in file order: one tensor (`layer` false) or one per layer (`layers[l].key`),
 * each of `count` values, float32 or Q8_0. Sizes come from groups arithmetically, so a header
 * claiming 2^31 layers costs nothing before it is compared with the file length.
 */
interface Group {
  readonly key: LayerKey | TopKey
  readonly perLayer: boolean
  readonly count: number
  readonly q8: boolean
}

// ---------------------------------------------------------------------------------------------
// header

const CONFIG_FIELDS = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const

function readConfig(r: ByteReader): Llama2cConfig {
  const size = r.bytes.length
  let version: 0 | 1 | 2 = 0
  if (size >= 4 && new DataView(r.bytes.buffer, r.bytes.byteOffset, 4).getUint32(0, true) === LLAMA2C_MAGIC) {
    r.pos = 4
    const v = r.i32('version')
    if (v !== 1 && v !== 2) formatError(r.file, 4, `unsupported llama2.c version ${v} (supported: 0, 1, 2)`)
    version = v
  }
  const start = r.pos
  const raw: number[] = CONFIG_FIELDS.map((f) => r.i32(`config.${f}`))
  const at = (f: (typeof CONFIG_FIELDS)[number]): number => start + 4 * CONFIG_FIELDS.indexOf(f)
  const [dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocabRaw, seq_len] = raw as [number, number, number, number, number, number, number]
  let shared = vocabRaw > 0
  let group_size = 0
  if (version !== 0) {
    const flag = r.u8('shared_classifier')
    if (flag > 1) formatError(r.file, r.pos - 1, `shared_classifier flag is ${flag}, expected 0 or 1`)
    shared = flag === 1
    if (version === 2) group_size = r.i32('group_size')
    r.need(LLAMA2C_HEADER_SIZE - r.pos, 'header padding')
    for (let i = r.pos; i < LLAMA2C_HEADER_SIZE; i++) {
      if (r.bytes[i] !== 0) formatError(r.file, i, `header padding byte ${i} is ${r.bytes[i]}, expected 0`)
    }
    r.pos = LLAMA2C_HEADER_SIZE
    if (vocabRaw <= 0) formatError(r.file, at('vocab_size'), `config.vocab_size is ${vocabRaw}, expected a positive count`)
    if (version === 2 && group_size <= 0) formatError(r.file, 37, `group_size is ${group_size}, expected a positive count`)
  }
  const positive = { dim, hidden_dim, n_layers, n_heads, n_kv_heads, seq_len }
  for (const [f, v] of Object.entries(positive)) {
    if (v <= 0) formatError(r.file, at(f as (typeof CONFIG_FIELDS)[number]), `config.${f} is ${v}, expected a positive count`)
  }
  if (vocabRaw === 0) formatError(r.file, at('vocab_size'), `config.vocab_size is ${vocabRaw}`)
  if (dim % n_heads !== 0) formatError(r.file, at('n_heads'), `config.n_heads ${n_heads} does not divide dim ${dim}`)
  if (n_heads % n_kv_heads !== 0) formatError(r.file, at('n_kv_heads'), `config.n_kv_heads ${n_kv_heads} does not divide n_heads ${n_heads}`)
  if ((dim / n_heads) % 2 !== 0) formatError(r.file, at('n_heads'), `head size ${dim / n_heads} is odd: RoPE rotates pairs`)
  return Object.freeze({ version, dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size: Math.abs(vocabRaw), seq_len, shared_classifier: shared, group_size })
}

// ---------------------------------------------------------------------------------------------
// layout: the tensors in file order

function layout(c: Llama2cConfig): Group[] {
  const { dim, hidden_dim: hidden, vocab_size: vocab } = c
  const headSize = dim / c.n_heads
  const kvDim = headSize * c.n_kv_heads
  const q = c.version === 2
  const L = (key: LayerKey, count: number, q8: boolean): Group => ({ key, perLayer: true, count, q8 })
  const T = (key: TopKey, count: number, q8: boolean): Group => ({ key, perLayer: false, count, q8 })
  const matrices = [L('wq', dim * dim, q), L('wk', kvDim * dim, q), L('wv', kvDim * dim, q), L('wo', dim * dim, q)]
  const ffn = [L('w1', hidden * dim, q), L('w2', dim * hidden, q), L('w3', hidden * dim, q)]
  const output = c.shared_classifier ? [] : [T('output', vocab * dim, q)]
  if (c.version === 0) {
    const freqs = (c.seq_len * headSize) / 2
    return [T('tok_embeddings', vocab * dim, false), L('attention_norm', dim, false), ...matrices, L('ffn_norm', dim, false), ...ffn, T('norm', dim, false), T('freq_cis_real', freqs, false), T('freq_cis_imag', freqs, false), ...output]
  }
  return [L('attention_norm', dim, false), L('ffn_norm', dim, false), T('norm', dim, false), T('tok_embeddings', vocab * dim, q), ...matrices, ...ffn, ...output]
}

/** Bytes one tensor of a group takes: float32 values, or int8 values plus one float32 scale per group of values. */
function tensorBytes(g: Group, groupSize: number): number {
  return g.q8 ? g.count + (g.count / groupSize) * 4 : g.count * 4
}

// ---------------------------------------------------------------------------------------------
// parse

/**
 * Parse a llama2.c checkpoint (version 0, 1 or 2) into float32 weights; version 2 is dequantized.
 * The whole layout is sized from the header and checked against the file length before anything
 * is allocated; a short file names the tensor it cuts, a long one the trailing bytes.
 */
export function parseLlama2c(bytes: Uint8Array, file: string | null = null): Llama2cCheckpoint {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes: expected Uint8Array')
  const r = new ByteReader(bytes, file)
  const config = readConfig(r)
  const groups = layout(config)
  const gs = config.group_size
  const L = config.n_layers
  // Size everything first (floats: exact below 2^53, and anything larger is larger than the file).
  let end = r.pos
  for (const g of groups) {
    if (g.q8 && g.count % gs !== 0) formatError(file, 37, `${g.key} has ${g.count} values, not a multiple of group_size ${gs}`)
    const each = tensorBytes(g, gs)
    const n = g.perLayer ? each * L : each
    if (end + n > bytes.length) {
      const layer = g.perLayer ? Math.floor((bytes.length - end) / each) : 0
      const start = end + layer * each
      const name = g.perLayer ? `layers[${layer}].${g.key}` : g.key
      const far = end + n > 2 * bytes.length ? ' (the header describes a model far larger than the file)' : ''
      formatError(file, bytes.length, `truncated at byte ${bytes.length}: expected ${start + each - bytes.length} more bytes of ${name}${far}`)
    }
    end += n
  }
  if (end !== bytes.length) formatError(file, end, `${bytes.length - end} trailing bytes after the last tensor (expected ${end} bytes for this config, file is ${bytes.length})`)
  // Now every tensor is known to be in the file: read them.
  const layers = Array.from({ length: L }, () => ({}) as Record<LayerKey, Float32Array>)
  const top: Partial<Record<TopKey, Float32Array>> = {}
  for (const g of groups) {
    for (let l = 0; l < (g.perLayer ? L : 1); l++) {
      const name = g.perLayer ? `layers[${l}].${g.key}` : g.key
      if (g.key === 'freq_cis_real' || g.key === 'freq_cis_imag') {
        r.take(g.count * 4, name) // RoPE tables of version 0: unused (the chain recomputes them)
        continue
      }
      const values = g.q8 ? readQ8(r, g.count, gs, name) : r.f32s(g.count, name)
      if (g.perLayer) layers[l]![g.key as LayerKey] = values
      else top[g.key as TopKey] = values
    }
  }
  r.end('the last tensor')
  return Object.freeze({
    config,
    weights: Object.freeze({
      tok_embeddings: top.tok_embeddings as Float32Array,
      layers: Object.freeze(layers.map((l) => Object.freeze(l))),
      norm: top.norm as Float32Array,
      output: config.shared_classifier ? null : (top.output as Float32Array)
    })
  })
}

/** One Q8_0 tensor: `count` int8 values then count / gs float32 scales; value = q * scale (runq.c `dequantize`). */
function readQ8(r: ByteReader, count: number, gs: number, name: string): Float32Array {
  const q = r.take(count, name)
  const scalesAt = r.pos
  const scales = r.f32s(count / gs, `${name} scales`)
  const out = new Float32Array(count)
  for (let i = 0; i < count; i++) out[i] = (((q[i] as number) << 24) >> 24) * (scales[Math.floor(i / gs)] as number)
  checkFinite(out, r.file, scalesAt, `${name} (dequantized)`, 0)
  return out
}

// ---------------------------------------------------------------------------------------------
// blocks

export interface Llama2cImportOptions {
  /** Experts each dense FFN is split into. @default 4 */
  readonly experts?: number
  /** Experts used per token. @default experts (the MoE then equals the dense model exactly) */
  readonly topK?: number
  /** Seed of the unit clustering (moefy.ts). @default 0 */
  readonly seed?: number
  readonly tokenizer?: ImportedTokenizer | null
  /** File name for error messages. */
  readonly file?: string | null
}

/**
 * The chain architecture of a llama2.c model split into `experts` experts (router_weighting `unit`).
 * Throws ModelFormatError when the model cannot be stored on chain (e.g. a vocabulary over 2^22).
 */
export function llama2cArchitecture(c: Llama2cConfig, experts: number, topK: number, file: string | null = null): Architecture {
  return checkArchitecture(
    {
      family: 'llama_moe',
      dim: c.dim,
      n_layers: c.n_layers,
      n_heads: c.n_heads,
      n_kv_heads: c.n_kv_heads,
      head_dim: c.dim / c.n_heads,
      vocab_size: c.vocab_size,
      max_seq_len: c.seq_len,
      expert_hidden_dim: Math.ceil(c.hidden_dim / experts),
      n_experts: experts,
      top_k: topK,
      router_weighting: 'unit',
      shared_expert_hidden_dim: 0,
      shared_expert_gate: false,
      qk_norm: false,
      attention_bias: false,
      tie_embeddings: c.shared_classifier,
      norm_eps: LLAMA2C_NORM_EPS,
      rope_theta: LLAMA2C_ROPE_THETA
    },
    file
  )
}

/** Cut a parsed checkpoint into chain blocks, splitting every FFN into experts (moefy.ts). */
export function llama2cToModel(ckpt: Llama2cCheckpoint, options: Llama2cImportOptions = {}): ImportedModel {
  const { config: c, weights: w } = ckpt
  const experts = options.experts ?? LLAMA2C_DEFAULT_EXPERTS
  aint(experts, 'experts', 1, Math.min(1024, c.hidden_dim))
  const topK = options.topK ?? experts
  aint(topK, 'topK', 1, experts)
  const file = options.file ?? null
  const arch = llama2cArchitecture(c, experts, topK, file)
  const t = (name: string, shape: number[], values: Float32Array): NamedTensor => ({ name, shape, values })
  const { dim, vocab_size: vocab } = c
  const blocks = new Map<string, readonly NamedTensor[]>()
  blocks.set(EMBEDDING_NAME, [
    t('tok_embeddings', [vocab, dim], w.tok_embeddings),
    t('norm', [dim], w.norm),
    ...(w.output === null ? [] : [t('output', [vocab, dim], w.output)])
  ])
  const qDim = arch.n_heads * arch.head_dim
  const kvDim = arch.n_kv_heads * arch.head_dim
  w.layers.forEach((layer, l) => {
    const split = moefy({ dim, hidden: c.hidden_dim, w1: layer.w1, w2: layer.w2, w3: layer.w3 }, { experts, seed: options.seed ?? 0 })
    blocks.set(routerName(l), [
      t('attention_norm', [dim], layer.attention_norm),
      t('wq', [qDim, dim], layer.wq),
      t('wk', [kvDim, dim], layer.wk),
      t('wv', [kvDim, dim], layer.wv),
      t('wo', [dim, qDim], layer.wo),
      t('ffn_norm', [dim], layer.ffn_norm),
      t('gate', [experts, dim], split.gate)
    ])
    const h = split.expertHidden
    split.experts.forEach((e, i) => blocks.set(expertName(l, i), [t('w1', [h, dim], e.w1), t('w2', [dim, h], e.w2), t('w3', [h, dim], e.w3)]))
  })
  return assembleModel('llama2c', arch, blocks, options.tokenizer ?? null, file)
}

/** Parse and cut in one step: `importLlama2c(bytes, { file: 'stories260K.bin', experts: 4 })`. */
export function importLlama2c(bytes: Uint8Array, options: Llama2cImportOptions = {}): ImportedModel {
  return llama2cToModel(parseLlama2c(bytes, options.file ?? null), options)
}
