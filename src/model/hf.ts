/**
 * Hugging Face MoE checkpoints (config.json + safetensors shards) -> chain blocks.
 *
 * Three families, with the tensor names their published checkpoints use (checked against
 * transformers' modeling_mixtral.py, modular_olmoe.py, modular_qwen2_moe.py and the on-disk
 * `source_patterns` of transformers' conversion_mapping.py):
 *
 * | chain tensor | Mixtral (`mixtral`) | OLMoE (`olmoe`), Qwen2-MoE (`qwen2_moe`) |
 * |---|---|---|
 * | tok_embeddings, norm, output | model.embed_tokens.weight, model.norm.weight, lm_head.weight | same |
 * | attention_norm, ffn_norm | model.layers.{i}.input_layernorm.weight, .post_attention_layernorm.weight | same |
 * | wq, wk, wv, wo | .self_attn.{q,k,v,o}_proj.weight | same |
 * | bq, bk, bv | - | Qwen2-MoE: .self_attn.{q,k,v}_proj.bias |
 * | q_norm, k_norm | - | OLMoE: .self_attn.q_norm.weight, .self_attn.k_norm.weight |
 * | gate | .block_sparse_moe.gate.weight | .mlp.gate.weight |
 * | expert w1, w2, w3 | .block_sparse_moe.experts.{j}.w1/w2/w3.weight | .mlp.experts.{j}.gate_proj/down_proj/up_proj.weight |
 * | shared_w1, shared_w2, shared_w3, shared_gate | - | Qwen2-MoE: .mlp.shared_expert.gate_proj/down_proj/up_proj.weight, .mlp.shared_expert_gate.weight |
 *
 * Router weighting: Mixtral `softmax_topk` (softmax, top-k, renormalise = softmax over the top-k
 * logits); OLMoE and Qwen2-MoE `softmax` when `norm_topk_prob` is false, `softmax_topk` when true.
 *
 * RoPE: Hugging Face rotates halves (pairs q[i], q[i + head_dim/2]), the chain rotates interleaved
 * pairs (docs/protocol.md §7). Per head, the rows of wq and wk (and of q_norm, k_norm, bq, bk) are
 * permuted so that new row 2i = old row i and new row 2i+1 = old row i + head_dim/2. q·k is unchanged
 * because q and k move together, and the RMSNorms of OLMoE's q_norm / k_norm act on whole vectors,
 * so permuting their weights with their inputs changes nothing either.
 *
 * Refused (ModelFormatError naming config.json): other model types, `hidden_act` other than silu,
 * rope scaling or partial rotary, a sliding window that is actually used, dense layers mixed in
 * (`mlp_only_layers`, `decoder_sparse_step` != 1), OLMoE `clip_qkv`, attention biases outside
 * Qwen2-MoE, quantized checkpoints, and any tensor the table does not name (other than
 * `rotary_emb.inv_freq` buffers, and `lm_head.weight` equal to the embedding when tied).
 *
 * @module
 */
import { aint } from '../assert.ts'
import { EMBEDDING_NAME, expertName, routerName } from '../chain/header.ts'
import type { Architecture, RouterWeighting } from '../chain/meta.ts'
import { product } from './_bytes.ts'
import { ModelFormatError, formatError } from './errors.ts'
import { assembleModel, checkArchitecture, type ImportedModel, type ImportedTokenizer, type NamedTensor } from './imported.ts'
import { decodeSafetensorsTensor, type SafetensorsEntry, type SafetensorsHeader } from './safetensors.ts'

export type HfFamily = 'mixtral' | 'olmoe' | 'qwen2_moe'
export const HF_FAMILIES: readonly HfFamily[] = Object.freeze(['mixtral', 'olmoe', 'qwen2_moe'])

/** Where a checkpoint's tensors come from (in-memory shards, or files read on demand by relay/import.ts). */
export interface HfTensorSource {
  /** Every tensor name in the checkpoint. */
  names(): Iterable<string>
  /** Shape from the header (no data read), undefined when absent. */
  shape(name: string): readonly number[] | undefined
  /** The tensor as float32 (throws ModelFormatError for a bad file). */
  read(name: string): Float32Array
  /** The file holding it, for messages. */
  fileOf(name: string): string | null
}

export interface HfImportOptions {
  /** Experts used per token. @default config num_experts_per_tok */
  readonly topK?: number
  readonly tokenizer?: ImportedTokenizer | null
  /** Name of the config file, for messages. @default 'config.json' */
  readonly configFile?: string
}

// ---------------------------------------------------------------------------------------------
// config.json

type Json = Record<string, unknown>

class ConfigReader {
  constructor(
    readonly o: Json,
    readonly file: string
  ) {}

  fail(detail: string): never {
    throw new ModelFormatError(this.file, null, detail)
  }

  has(key: string): boolean {
    return this.o[key] !== undefined && this.o[key] !== null
  }

  int(key: string, fallback?: number): number {
    const v = this.o[key] ?? fallback
    if (v === undefined || v === null) this.fail(`${key} is missing`)
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.fail(`${key} must be a positive integer, got ${JSON.stringify(v)}`)
    return v
  }

  num(key: string): number {
    const v = this.o[key]
    if (v === undefined || v === null) this.fail(`${key} is missing`)
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(`${key} must be a number, got ${JSON.stringify(v)}`)
    return v
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.o[key] ?? fallback
    if (typeof v !== 'boolean') this.fail(`${key} must be true or false, got ${JSON.stringify(v)}`)
    return v
  }
}

function ropeTheta(c: ConfigReader): number {
  const params = c.o['rope_parameters']
  const scaling = c.o['rope_scaling']
  const isDefault = (v: unknown): boolean => {
    if (v === undefined || v === null) return true
    if (typeof v !== 'object' || Array.isArray(v)) return false
    const t = (v as Json)['rope_type'] ?? (v as Json)['type']
    return t === undefined || t === 'default'
  }
  if (!isDefault(scaling)) c.fail(`rope_scaling ${JSON.stringify(scaling)} is not supported (only plain RoPE)`)
  if (!isDefault(params)) c.fail(`rope_parameters ${JSON.stringify(params)} is not supported (only plain RoPE)`)
  const prf = c.o['partial_rotary_factor']
  if (prf !== undefined && prf !== null && prf !== 1) c.fail(`partial_rotary_factor ${JSON.stringify(prf)} is not supported`)
  if (c.has('rope_theta')) return c.num('rope_theta')
  if (typeof params === 'object' && params !== null && typeof (params as Json)['rope_theta'] === 'number') return (params as Json)['rope_theta'] as number
  return c.fail('rope_theta is missing')
}

/** Read `config.json` (already parsed) into the chain architecture, refusing unsupported features. */
export function hfArchitecture(config: unknown, options: HfImportOptions = {}): { family: HfFamily; architecture: Architecture } {
  const file = options.configFile ?? 'config.json'
  if (typeof config !== 'object' || config === null || Array.isArray(config)) formatError(file, null, 'is not a JSON object')
  const c = new ConfigReader(config as Json, file)
  const type = c.o['model_type']
  if (!HF_FAMILIES.includes(type as HfFamily)) c.fail(`model_type ${JSON.stringify(type)} is not supported (supported: ${HF_FAMILIES.join(', ')})`)
  const family = type as HfFamily
  if (c.o['hidden_act'] !== 'silu') c.fail(`hidden_act ${JSON.stringify(c.o['hidden_act'])} is not supported (SwiGLU needs "silu")`)
  if (c.has('quantization_config')) c.fail('quantized checkpoints (quantization_config) are not supported')
  const dim = c.int('hidden_size')
  const heads = c.int('num_attention_heads')
  const kv = c.int('num_key_value_heads', heads)
  if (!c.has('head_dim') && dim % heads !== 0) c.fail(`num_attention_heads ${heads} does not divide hidden_size ${dim} and head_dim is missing`)
  const headDim = c.int('head_dim', dim / heads)
  const maxPos = c.int('max_position_embeddings')
  const layerTypes = c.o['layer_types']
  if (layerTypes !== undefined && layerTypes !== null) {
    if (!Array.isArray(layerTypes) || layerTypes.some((t) => t !== 'full_attention')) c.fail(`layer_types ${JSON.stringify(layerTypes)}: only full attention is supported`)
  }
  let nExperts: number
  let hidden: number
  let weighting: RouterWeighting
  let shared = 0
  let attentionBias = false
  const normTopk = (): RouterWeighting => (c.bool('norm_topk_prob', false) ? 'softmax_topk' : 'softmax')
  if (family === 'mixtral') {
    nExperts = c.int('num_local_experts')
    hidden = c.int('intermediate_size')
    weighting = 'softmax_topk'
    const sw = c.o['sliding_window']
    if (sw !== undefined && sw !== null && !(typeof sw === 'number' && sw >= maxPos)) c.fail(`sliding_window ${JSON.stringify(sw)} is used (below max_position_embeddings ${maxPos}): not supported`)
  } else if (family === 'olmoe') {
    nExperts = c.int('num_experts')
    hidden = c.int('intermediate_size')
    weighting = normTopk()
    if (c.has('clip_qkv')) c.fail(`clip_qkv ${JSON.stringify(c.o['clip_qkv'])} is not supported`)
  } else {
    nExperts = c.int('num_experts')
    hidden = c.int('moe_intermediate_size')
    shared = c.int('shared_expert_intermediate_size')
    weighting = normTopk()
    if (c.int('decoder_sparse_step', 1) !== 1) c.fail(`decoder_sparse_step ${JSON.stringify(c.o['decoder_sparse_step'])}: dense layers mixed in are not supported`)
    const mlpOnly = c.o['mlp_only_layers']
    if (mlpOnly !== undefined && mlpOnly !== null && !(Array.isArray(mlpOnly) && mlpOnly.length === 0)) c.fail(`mlp_only_layers ${JSON.stringify(mlpOnly)}: dense layers mixed in are not supported`)
    if (c.bool('use_sliding_window', false)) c.fail('use_sliding_window true is not supported')
    attentionBias = c.bool('qkv_bias', true)
  }
  if (family !== 'qwen2_moe' && c.bool('attention_bias', false)) c.fail('attention_bias true is not supported for this family (it also biases o_proj)')
  const topK = options.topK ?? c.int('num_experts_per_tok')
  if (options.topK !== undefined) aint(topK, 'topK', 1, nExperts)
  const architecture = checkArchitecture(
    {
      family: 'llama_moe',
      dim,
      n_layers: c.int('num_hidden_layers'),
      n_heads: heads,
      n_kv_heads: kv,
      head_dim: headDim,
      vocab_size: c.int('vocab_size'),
      max_seq_len: maxPos,
      expert_hidden_dim: hidden,
      n_experts: nExperts,
      top_k: topK,
      router_weighting: weighting,
      shared_expert_hidden_dim: shared,
      shared_expert_gate: shared > 0,
      qk_norm: family === 'olmoe',
      attention_bias: attentionBias,
      tie_embeddings: c.bool('tie_word_embeddings', false),
      norm_eps: c.num('rms_norm_eps'),
      rope_theta: ropeTheta(c)
    },
    file
  )
  return { family, architecture }
}

// ---------------------------------------------------------------------------------------------
// tensors

/** Rotate-half -> interleaved, per head: new row h*hd + 2i = old h*hd + i, new h*hd + 2i + 1 = old h*hd + i + hd/2. */
export function permuteRope(values: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  if (values.length !== heads * headDim * cols) throw new RangeError(`permuteRope: ${values.length} values, expected ${heads * headDim * cols}`)
  const out = new Float32Array(values.length)
  const half = headDim / 2
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      const base = h * headDim
      out.set(values.subarray((base + i) * cols, (base + i + 1) * cols), (base + 2 * i) * cols)
      out.set(values.subarray((base + i + half) * cols, (base + i + half + 1) * cols), (base + 2 * i + 1) * cols)
    }
  }
  return out
}

/** One chain tensor: its HF key and, for q/k tensors, the head count to permute by. */
interface Source {
  readonly name: string
  readonly key: string
  readonly shape: readonly number[]
  readonly ropeHeads?: number
}

/** Each block's sources, generated block by block (a hostile config's 1024 x 1024 experts cost nothing until they are checked). */
function* blockSources(family: HfFamily, a: Architecture): Generator<[string, Source[]]> {
  const { dim, head_dim: hd, n_heads: heads, n_kv_heads: kv, vocab_size: vocab } = a
  const q = heads * hd
  const k = kv * hd
  const h = a.expert_hidden_dim
  yield [EMBEDDING_NAME, [
    { name: 'tok_embeddings', key: 'model.embed_tokens.weight', shape: [vocab, dim] },
    { name: 'norm', key: 'model.norm.weight', shape: [dim] },
    ...(a.tie_embeddings ? [] : [{ name: 'output', key: 'lm_head.weight', shape: [vocab, dim] }])
  ]]
  const moe = family === 'mixtral' ? 'block_sparse_moe' : 'mlp'
  const [k1, k2, k3] = family === 'mixtral' ? ['w1', 'w2', 'w3'] : ['gate_proj', 'down_proj', 'up_proj']
  for (let l = 0; l < a.n_layers; l++) {
    const p = `model.layers.${l}.`
    const router: Source[] = [
      { name: 'attention_norm', key: `${p}input_layernorm.weight`, shape: [dim] },
      { name: 'wq', key: `${p}self_attn.q_proj.weight`, shape: [q, dim], ropeHeads: heads },
      { name: 'wk', key: `${p}self_attn.k_proj.weight`, shape: [k, dim], ropeHeads: kv },
      { name: 'wv', key: `${p}self_attn.v_proj.weight`, shape: [k, dim] },
      { name: 'wo', key: `${p}self_attn.o_proj.weight`, shape: [dim, q] }
    ]
    if (a.attention_bias) {
      router.push(
        { name: 'bq', key: `${p}self_attn.q_proj.bias`, shape: [q], ropeHeads: heads },
        { name: 'bk', key: `${p}self_attn.k_proj.bias`, shape: [k], ropeHeads: kv },
        { name: 'bv', key: `${p}self_attn.v_proj.bias`, shape: [k] }
      )
    }
    if (a.qk_norm) {
      router.push({ name: 'q_norm', key: `${p}self_attn.q_norm.weight`, shape: [q], ropeHeads: heads }, { name: 'k_norm', key: `${p}self_attn.k_norm.weight`, shape: [k], ropeHeads: kv })
    }
    router.push({ name: 'ffn_norm', key: `${p}post_attention_layernorm.weight`, shape: [dim] }, { name: 'gate', key: `${p}${moe}.gate.weight`, shape: [a.n_experts, dim] })
    const sh = a.shared_expert_hidden_dim
    if (sh > 0) {
      router.push(
        { name: 'shared_w1', key: `${p}mlp.shared_expert.gate_proj.weight`, shape: [sh, dim] },
        { name: 'shared_w2', key: `${p}mlp.shared_expert.down_proj.weight`, shape: [dim, sh] },
        { name: 'shared_w3', key: `${p}mlp.shared_expert.up_proj.weight`, shape: [sh, dim] }
      )
      if (a.shared_expert_gate) router.push({ name: 'shared_gate', key: `${p}mlp.shared_expert_gate.weight`, shape: [1, dim] })
    }
    yield [routerName(l), router]
    for (let e = 0; e < a.n_experts; e++) {
      const x = `${p}${moe}.experts.${e}.`
      yield [expertName(l, e), [
        { name: 'w1', key: `${x}${k1}.weight`, shape: [h, dim] },
        { name: 'w2', key: `${x}${k2}.weight`, shape: [dim, h] },
        { name: 'w3', key: `${x}${k3}.weight`, shape: [h, dim] }
      ]]
    }
  }
}

/** Harmless buffers some checkpoints carry: RoPE inverse frequencies (recomputed from rope_theta). */
const IGNORED = /\.rotary_emb\.inv_freq$/

/**
 * Import a Hugging Face MoE checkpoint: `config` is config.json parsed, `source` its tensors.
 * Every expected tensor must be there with the expected shape, and every tensor there must be expected.
 */
export function importHf(config: unknown, source: HfTensorSource, options: HfImportOptions = {}): ImportedModel {
  const configFile = options.configFile ?? 'config.json'
  const { family, architecture: a } = hfArchitecture(config, options)
  // Names and shapes first, from the headers alone: nothing is read before the whole plan fits.
  const used = new Set<string>()
  for (const [, sources] of blockSources(family, a)) {
    for (const s of sources) {
      const shape = source.shape(s.key)
      if (shape === undefined) formatError(configFile, null, `tensor ${s.key} (${s.name}) is missing from the checkpoint`)
      if (shape.length !== s.shape.length || shape.some((d, i) => d !== s.shape[i])) {
        formatError(source.fileOf(s.key), null, `tensor ${s.key} has shape [${shape.join(', ')}], ${configFile} implies [${s.shape.join(', ')}]`)
      }
      used.add(s.key)
    }
  }
  let tiedHead = false
  for (const name of source.names()) {
    if (used.has(name) || IGNORED.test(name)) continue
    if (name === 'lm_head.weight' && a.tie_embeddings) {
      tiedHead = true
      continue
    }
    formatError(source.fileOf(name), null, `tensor ${name} is not part of a ${family} model as the importer knows it (unsupported feature?)`)
  }
  const blocks = new Map<string, readonly NamedTensor[]>()
  for (const [block, sources] of blockSources(family, a)) {
    blocks.set(
      block,
      sources.map((s) => {
        const raw = source.read(s.key)
        if (raw.length !== product(s.shape)) formatError(source.fileOf(s.key), null, `tensor ${s.key} read ${raw.length} values, expected ${product(s.shape)}`)
        const values = s.ropeHeads === undefined ? raw : permuteRope(raw, s.ropeHeads, a.head_dim, s.shape.length === 2 ? (s.shape[1] as number) : 1)
        return { name: s.name, shape: s.shape, values }
      })
    )
  }
  if (tiedHead) {
    const head = source.read('lm_head.weight')
    const emb = (blocks.get(EMBEDDING_NAME) as readonly NamedTensor[])[0] as NamedTensor
    if (head.length !== emb.values.length || head.some((v, i) => v !== emb.values[i])) {
      formatError(source.fileOf('lm_head.weight'), null, 'tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight')
    }
  }
  return assembleModel(family, a, blocks, options.tokenizer ?? null, configFile)
}

// ---------------------------------------------------------------------------------------------
// shards

/** `model.safetensors.index.json` (parsed) -> tensor name -> shard file name (a bare file name). */
export function parseShardIndex(json: unknown, file: string | null = 'model.safetensors.index.json'): ReadonlyMap<string, string> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) formatError(file, null, 'is not a JSON object')
  const map = (json as Json)['weight_map']
  if (typeof map !== 'object' || map === null || Array.isArray(map)) formatError(file, null, 'weight_map is missing or not an object')
  const out = new Map<string, string>()
  for (const [name, shard] of Object.entries(map as Json)) {
    if (typeof shard !== 'string' || !/^[^/\\]+\.safetensors$/.test(shard) || shard.startsWith('..')) {
      formatError(file, null, `weight_map[${JSON.stringify(name)}] = ${JSON.stringify(shard)} is not a .safetensors file name in the model directory`)
    }
    out.set(name, shard)
  }
  if (out.size === 0) formatError(file, null, 'weight_map is empty')
  return out
}

/** One safetensors file: its name, checked header, and a way to read an entry's bytes. */
export interface SafetensorsShard {
  readonly file: string
  readonly header: SafetensorsHeader
  readonly read: (entry: SafetensorsEntry) => Uint8Array
}

/**
 * A tensor source over shards. With an index, the index and the shards must agree exactly (each
 * listed tensor in the shard named, each shard tensor listed for that shard); without one, tensor
 * names must not repeat across shards.
 */
export function shardedSource(shards: readonly SafetensorsShard[], index: ReadonlyMap<string, string> | null, indexFile: string | null = 'model.safetensors.index.json'): HfTensorSource {
  const where = new Map<string, SafetensorsShard>()
  for (const shard of shards) {
    for (const name of shard.header.tensors.keys()) {
      const other = where.get(name)
      if (other !== undefined) formatError(shard.file, null, `tensor ${name} is also in ${other.file}`)
      if (index !== null && index.get(name) === undefined) formatError(shard.file, null, `tensor ${name} is not listed in ${indexFile}`)
      if (index !== null && !sameFile(shard.file, index.get(name) as string)) formatError(shard.file, null, `tensor ${name} is listed in ${indexFile} under ${index.get(name)}`)
      where.set(name, shard)
    }
  }
  if (index !== null) {
    for (const [name, shard] of index) if (!where.has(name)) formatError(indexFile, null, `tensor ${name} is listed for ${shard} but that shard does not hold it`)
  }
  return {
    names: () => where.keys(),
    shape: (name) => where.get(name)?.header.tensors.get(name)?.shape,
    fileOf: (name) => where.get(name)?.file ?? null,
    read: (name) => {
      const shard = where.get(name)
      const entry = shard?.header.tensors.get(name)
      if (shard === undefined || entry === undefined) return formatError(null, null, `tensor ${name} is not in the checkpoint`)
      return decodeSafetensorsTensor(entry, shard.read(entry), shard.file)
    }
  }
}

/** Is `path` the file `name` (a bare name from the index)? */
function sameFile(path: string, name: string): boolean {
  return path === name || path.endsWith(`/${name}`) || path.endsWith(`\\${name}`)
}

// ---------------------------------------------------------------------------------------------
// tokenizer

/**
 * Wrap `tokenizer.json` for the chain. BOS / EOS ids come from config.json (`bos_token_id`,
 * `eos_token_id`; a list means its first), else from tokenizer_config.json's `bos_token` /
 * `eos_token` looked up in tokenizer.json (added_tokens, then model.vocab). A model that declares
 * no BOS (OLMoE) uses its EOS, as GPT-NeoX-style tokenizers use one `<|endoftext|>` for both.
 */
export function hfTokenizer(bytes: Uint8Array, config: unknown, tokenizerConfig: unknown, file: string | null = 'tokenizer.json'): ImportedTokenizer {
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (e) {
    formatError(file, null, `is not valid UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json) || typeof (json as Json)['model'] !== 'object' || (json as Json)['model'] === null) {
    formatError(file, null, 'is not a tokenizers JSON file (no "model" object)')
  }
  const tok = json as Json
  const idOf = (content: string): number | undefined => {
    const added = tok['added_tokens']
    if (Array.isArray(added)) {
      for (const t of added) if (typeof t === 'object' && t !== null && (t as Json)['content'] === content && typeof (t as Json)['id'] === 'number') return (t as Json)['id'] as number
    }
    const vocab = (tok['model'] as Json)['vocab']
    if (typeof vocab === 'object' && vocab !== null && !Array.isArray(vocab) && Object.hasOwn(vocab, content)) {
      const id = (vocab as Json)[content]
      if (typeof id === 'number') return id
    }
    return undefined
  }
  const cfg = (typeof config === 'object' && config !== null ? config : {}) as Json
  const tcfg = (typeof tokenizerConfig === 'object' && tokenizerConfig !== null ? tokenizerConfig : {}) as Json
  const pick = (idKey: string, tokenKey: string): number | undefined => {
    let v = cfg[idKey]
    if (Array.isArray(v)) v = v[0]
    if (typeof v === 'number') return v
    let t = tcfg[tokenKey]
    if (typeof t === 'object' && t !== null) t = (t as Json)['content']
    return typeof t === 'string' ? idOf(t) : undefined
  }
  const eos = pick('eos_token_id', 'eos_token')
  if (eos === undefined) formatError(file, null, 'no EOS token id in config.json or tokenizer_config.json')
  const bos = pick('bos_token_id', 'bos_token') ?? eos
  for (const [k, v] of [['bos', bos], ['eos', eos]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) formatError(file, null, `${k} token id ${v} is not a token id`)
  }
  return Object.freeze({ format: 'hf_tokenizer_json', bytes, bos_id: bos, eos_id: eos })
}
