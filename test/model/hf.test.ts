import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync, readFileSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { importModel } from '../../relay/import.ts'
import { ModelFormatError } from '../../src/model/errors.ts'
import { hfTokenizer, importHf, permuteRope, shardedSource, type HfFamily } from '../../src/model/hf.ts'
import type { ImportedModel, NamedTensor } from '../../src/model/imported.ts'
import { parseSafetensorsHeader } from '../../src/model/safetensors.ts'
import { TOKENIZER_JSON, hfConfig, writeHfCheckpoint, type HfCheckpoint, type Json } from '../fixtures/hf.ts'
import { createRandom } from '../fixtures/random.ts'

const root = mkdtempSync(join(tmpdir(), 'blyan-hf-'))
after(() => rmSync(root, { recursive: true, force: true }))
let counter = 0
const fresh = (): string => join(root, `m${counter++}`)

/** Rotate-half -> interleaved per head, written from the protocol text (docs/protocol.md §7). */
function interleave(values: Float32Array, heads: number, hd: number): Float32Array {
  const cols = values.length / (heads * hd)
  const out = new Float32Array(values.length)
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let c = 0; c < cols; c++) {
        out[(h * hd + 2 * i) * cols + c] = values[(h * hd + i) * cols + c] as number
        out[(h * hd + 2 * i + 1) * cols + c] = values[(h * hd + i + hd / 2) * cols + c] as number
      }
    }
  }
  return out
}

/** What each chain tensor must equal: [HF key, RoPE head count or 0]. */
function expectedSource(family: HfFamily, block: string, tensor: string, cfg: Json): [string, number] {
  const heads = cfg['num_attention_heads'] as number
  const kv = cfg['num_key_value_heads'] as number
  if (block === 'embedding') return [{ tok_embeddings: 'model.embed_tokens.weight', norm: 'model.norm.weight', output: 'lm_head.weight' }[tensor] as string, 0]
  const m = /^layer(\d+)\.(?:router|expert(\d+))$/.exec(block) as RegExpExecArray
  const p = `model.layers.${m[1]}.`
  const moe = family === 'mixtral' ? 'block_sparse_moe' : 'mlp'
  if (m[2] !== undefined) {
    const names = family === 'mixtral' ? { w1: 'w1', w2: 'w2', w3: 'w3' } : { w1: 'gate_proj', w2: 'down_proj', w3: 'up_proj' }
    return [`${p}${moe}.experts.${m[2]}.${names[tensor as 'w1']}.weight`, 0]
  }
  const table: Record<string, [string, number]> = {
    attention_norm: [`${p}input_layernorm.weight`, 0],
    wq: [`${p}self_attn.q_proj.weight`, heads],
    wk: [`${p}self_attn.k_proj.weight`, kv],
    wv: [`${p}self_attn.v_proj.weight`, 0],
    wo: [`${p}self_attn.o_proj.weight`, 0],
    bq: [`${p}self_attn.q_proj.bias`, heads],
    bk: [`${p}self_attn.k_proj.bias`, kv],
    bv: [`${p}self_attn.v_proj.bias`, 0],
    q_norm: [`${p}self_attn.q_norm.weight`, heads],
    k_norm: [`${p}self_attn.k_norm.weight`, kv],
    ffn_norm: [`${p}post_attention_layernorm.weight`, 0],
    gate: [`${p}${moe}.gate.weight`, 0],
    shared_w1: [`${p}mlp.shared_expert.gate_proj.weight`, 0],
    shared_w2: [`${p}mlp.shared_expert.down_proj.weight`, 0],
    shared_w3: [`${p}mlp.shared_expert.up_proj.weight`, 0],
    shared_gate: [`${p}mlp.shared_expert_gate.weight`, 0]
  }
  return table[tensor] as [string, number]
}

/** Every stored tensor equals its source tensor (after the RoPE permutation), exactly in float32; every source tensor is used. */
function checkAgainstSource(model: ImportedModel, ck: HfCheckpoint, family: HfFamily): void {
  const hd = model.architecture.head_dim
  const used = new Set<string>()
  for (const [block, tensors] of model.blocks) {
    for (const t of tensors as NamedTensor[]) {
      const [key, heads] = expectedSource(family, block, t.name, ck.config)
      const src = ck.tensors.get(key)
      assert.ok(src !== undefined, `${block}.${t.name}: no source ${key}`)
      assert.deepEqual(t.values, heads === 0 ? src.values : interleave(src.values, heads, hd), `${block}.${t.name} = ${key}`)
      used.add(key)
    }
  }
  assert.deepEqual([...ck.tensors.keys()].filter((k) => !used.has(k)), [], 'every checkpoint tensor is stored')
}

function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  return assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${String(e)}`)
    assert.match(e.message, re)
    assert.doesNotMatch(e.message, /\n/)
    return true
  })
}

describe('Hugging Face MoE: the three families', () => {
  test('Mixtral, 2 shards + index (BF16): softmax_topk, every tensor exact', async () => {
    const ck = writeHfCheckpoint(fresh(), 'mixtral', { shards: 2 })
    const model = await importModel(ck.dir)
    assert.equal(model.source, 'mixtral')
    const a = model.architecture
    assert.deepEqual(
      [a.dim, a.n_layers, a.n_heads, a.n_kv_heads, a.head_dim, a.vocab_size, a.max_seq_len, a.expert_hidden_dim, a.n_experts, a.top_k, a.router_weighting, a.rope_theta, a.norm_eps],
      [16, 2, 4, 2, 4, 40, 64, 12, 4, 2, 'softmax_topk', 1e6, 1e-5]
    )
    assert.deepEqual([a.qk_norm, a.attention_bias, a.shared_expert_hidden_dim, a.tie_embeddings], [false, false, 0, false])
    checkAgainstSource(model, ck, 'mixtral')
    assert.deepEqual({ ...model.tokenizer, bytes: null }, { format: 'hf_tokenizer_json', bytes: null, bos_id: 1, eos_id: 2 })
    assert.deepEqual(model.tokenizer?.bytes, new Uint8Array(readFileSync(join(ck.dir, 'tokenizer.json'))))
  })

  test('OLMoE (F32): q_norm / k_norm permuted with wq / wk; softmax; BOS falls back to EOS', async () => {
    const ck = writeHfCheckpoint(fresh(), 'olmoe')
    const model = await importModel(ck.dir)
    const a = model.architecture
    assert.deepEqual([a.qk_norm, a.attention_bias, a.router_weighting, a.expert_hidden_dim, a.rope_theta], [true, false, 'softmax', 8, 10000])
    checkAgainstSource(model, ck, 'olmoe')
    assert.deepEqual([model.tokenizer?.bos_id, model.tokenizer?.eos_id], [3, 3])
    const topk = await importModel(writeHfCheckpoint(fresh(), 'olmoe', { overrides: { norm_topk_prob: true } }).dir)
    assert.equal(topk.architecture.router_weighting, 'softmax_topk')
  })

  test('Qwen2-MoE (F16): biases, shared expert and its gate; tied embeddings', async () => {
    const ck = writeHfCheckpoint(fresh(), 'qwen2_moe')
    const model = await importModel(ck.dir, { topK: 3 })
    const a = model.architecture
    assert.deepEqual([a.attention_bias, a.qk_norm, a.shared_expert_hidden_dim, a.shared_expert_gate, a.router_weighting, a.top_k, a.norm_eps], [true, false, 12, true, 'softmax', 3, 1e-6])
    checkAgainstSource(model, ck, 'qwen2_moe')
    assert.deepEqual([model.tokenizer?.bos_id, model.tokenizer?.eos_id], [4, 4])
    const tied = writeHfCheckpoint(fresh(), 'qwen2_moe', { overrides: { tie_word_embeddings: true, norm_topk_prob: true } })
    const m2 = await importModel(tied.dir)
    assert.deepEqual([m2.architecture.tie_embeddings, m2.architecture.router_weighting], [true, 'softmax_topk'])
    assert.deepEqual(m2.blocks.get('embedding')?.map((t) => t.name), ['tok_embeddings', 'norm'])
    checkAgainstSource(m2, tied, 'qwen2_moe')
  })

  test('the RoPE permutation: interleaved RoPE on permuted weights = rotate-half RoPE on the originals (q·k at every position pair)', () => {
    const rnd = createRandom(5)
    const hd = 8
    const dim = 6
    const heads = 2
    const wq = Float32Array.from({ length: heads * hd * dim }, () => rnd.float(1))
    const wk = Float32Array.from({ length: heads * hd * dim }, () => rnd.float(1))
    const x = Float64Array.from({ length: dim }, () => rnd.float(1))
    const y = Float64Array.from({ length: dim }, () => rnd.float(1))
    const mat = (w: Float32Array, v: Float64Array): Float64Array => Float64Array.from({ length: w.length / dim }, (_, r) => v.reduce((s, xv, c) => s + (w[r * dim + c] as number) * xv, 0))
    const freq = (i: number): number => 10000 ** (-(2 * i) / hd)
    const rotateHalf = (v: Float64Array, pos: number): Float64Array => {
      const o = v.slice()
      for (let h = 0; h < heads; h++) for (let i = 0; i < hd / 2; i++) {
        const a = v[h * hd + i] as number, b = v[h * hd + i + hd / 2] as number, t = pos * freq(i)
        o[h * hd + i] = a * Math.cos(t) - b * Math.sin(t)
        o[h * hd + i + hd / 2] = b * Math.cos(t) + a * Math.sin(t)
      }
      return o
    }
    const interleaved = (v: Float64Array, pos: number): Float64Array => {
      const o = v.slice()
      for (let h = 0; h < heads; h++) for (let i = 0; i < hd / 2; i++) {
        const a = v[h * hd + 2 * i] as number, b = v[h * hd + 2 * i + 1] as number, t = pos * freq(i)
        o[h * hd + 2 * i] = a * Math.cos(t) - b * Math.sin(t)
        o[h * hd + 2 * i + 1] = a * Math.sin(t) + b * Math.cos(t)
      }
      return o
    }
    const dots = (q: Float64Array, k: Float64Array): number[] => Array.from({ length: heads }, (_, h) => q.subarray(h * hd, (h + 1) * hd).reduce((s, v, i) => s + v * (k[h * hd + i] as number), 0))
    const pq = permuteRope(wq, heads, hd, dim)
    const pk = permuteRope(wk, heads, hd, dim)
    assert.deepEqual(pq, interleave(wq, heads, hd))
    for (const [m, n] of [[0, 0], [3, 1], [17, 5], [40, 39]] as const) {
      const a = dots(rotateHalf(mat(wq, x), m), rotateHalf(mat(wk, y), n))
      const b = dots(interleaved(mat(pq, x), m), interleaved(mat(pk, y), n))
      a.forEach((v, h) => assert.ok(Math.abs(v - (b[h] as number)) < 1e-9 * (1 + Math.abs(v)), `head ${h} at (${m}, ${n}): ${v} vs ${b[h]}`))
    }
  })
})

describe('Hugging Face MoE: refusals', () => {
  /** A valid checkpoint whose config.json then gets `overrides`. */
  const refuse = (family: HfFamily, overrides: Json, re: RegExp): Promise<void> => {
    const ck = writeHfCheckpoint(fresh(), family)
    writeFileSync(join(ck.dir, 'config.json'), JSON.stringify(hfConfig(family, overrides)))
    return rejects(importModel(ck.dir), re)
  }
  test('unsupported configurations name config.json and the feature', async () => {
    await refuse('qwen2_moe', { mlp_only_layers: [1] }, /config\.json: mlp_only_layers \[1\]: dense layers mixed in are not supported$/)
    await refuse('qwen2_moe', { decoder_sparse_step: 2 }, /decoder_sparse_step 2: dense layers/)
    await refuse('qwen2_moe', { use_sliding_window: true }, /use_sliding_window true is not supported/)
    await refuse('qwen2_moe', { shared_expert_intermediate_size: 0 }, /shared_expert_intermediate_size must be a positive integer/)
    await refuse('mixtral', { sliding_window: 32 }, /sliding_window 32 is used/)
    await refuse('mixtral', { rope_scaling: { type: 'linear', factor: 2 } }, /rope_scaling .* is not supported/)
    await refuse('mixtral', { rope_parameters: { rope_type: 'yarn', factor: 4 }, rope_theta: null }, /rope_parameters .* is not supported/)
    await refuse('mixtral', { attention_bias: true }, /attention_bias true is not supported/)
    await refuse('olmoe', { clip_qkv: 8 }, /clip_qkv 8 is not supported/)
    await refuse('olmoe', { hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/)
    await refuse('olmoe', { model_type: 'llama' }, /model_type "llama" is not supported \(supported: mixtral, olmoe, qwen2_moe\)/)
    await refuse('olmoe', { quantization_config: { quant_method: 'gptq' } }, /quantized checkpoints/)
    await refuse('olmoe', { hidden_size: 'big' }, /hidden_size must be a positive integer, got "big"/)
    await refuse('olmoe', { rms_norm_eps: null }, /rms_norm_eps is missing/)
    await refuse('olmoe', { num_experts_per_tok: 5 }, /architecture is not valid on chain: E_ARCH \(architecture\.top_k\)/)
    await refuse('mixtral', { layer_types: ['sliding_attention', 'full_attention'] }, /only full attention is supported/)
  })

  test('tensors must match the config exactly: missing, misshaped, unknown, untied head', async () => {
    const ck = writeHfCheckpoint(fresh(), 'olmoe')
    // config says 3 layers: layer 2 is missing
    writeFileSync(join(ck.dir, 'config.json'), JSON.stringify(hfConfig('olmoe', { num_hidden_layers: 3 })))
    await rejects(importModel(ck.dir), /tensor model\.layers\.2\.input_layernorm\.weight \(attention_norm\) is missing from the checkpoint/)
    writeFileSync(join(ck.dir, 'config.json'), JSON.stringify(hfConfig('olmoe', { intermediate_size: 9 })))
    await rejects(importModel(ck.dir), /model\.safetensors: tensor model\.layers\.0\.mlp\.experts\.0\.gate_proj\.weight has shape \[8, 16\], .*config\.json implies \[9, 16\]/)
    const extra = { name: 'model.layers.0.self_attn.o_proj.bias', dtype: 'F32' as const, shape: [16], values: new Float32Array(16) }
    await rejects(importModel(writeHfCheckpoint(fresh(), 'olmoe', { extra: [extra] }).dir), /tensor model\.layers\.0\.self_attn\.o_proj\.bias is not part of a olmoe model/)
    const inv = { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32' as const, shape: [2], values: new Float32Array(2) }
    await importModel(writeHfCheckpoint(fresh(), 'olmoe', { extra: [inv] }).dir) // harmless buffer, ignored
    const head = { name: 'lm_head.weight', dtype: 'F16' as const, shape: [40, 16], values: new Float32Array(640).fill(0.5) }
    await rejects(importModel(writeHfCheckpoint(fresh(), 'qwen2_moe', { overrides: { tie_word_embeddings: true }, extra: [head] }).dir), /tie_word_embeddings is true but lm_head\.weight differs/)
  })

  test('shards and index must agree', async () => {
    const ck = writeHfCheckpoint(fresh(), 'mixtral', { shards: 2 })
    const indexPath = join(ck.dir, 'model.safetensors.index.json')
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> }
    const first = Object.keys(index.weight_map)[0] as string
    const shard1 = index.weight_map[first] as string
    const other = Object.values(index.weight_map).find((s) => s !== shard1) as string
    const edit = (f: (m: Record<string, string>) => void): void => {
      const copy = structuredClone(index)
      f(copy.weight_map)
      writeFileSync(indexPath, JSON.stringify(copy))
    }
    edit((m) => (m[first] = other))
    await rejects(importModel(ck.dir), /is listed in .*model\.safetensors\.index\.json under/)
    edit((m) => (m[first] = '../escape.safetensors'))
    await rejects(importModel(ck.dir), /is not a \.safetensors file name in the model directory/)
    edit((m) => void delete m[first])
    await rejects(importModel(ck.dir), /is not listed in .*index\.json/)
    edit((m) => (m['model.extra.weight'] = shard1))
    await rejects(importModel(ck.dir), /tensor model\.extra\.weight is listed for .* but that shard does not hold it/)
    edit(() => undefined)
    unlinkSync(join(ck.dir, other))
    await rejects(importModel(ck.dir), new RegExp(`${other}: cannot read: no such file or directory`))
    unlinkSync(indexPath)
    writeFileSync(join(ck.dir, 'b.safetensors'), new Uint8Array(0))
    await rejects(importModel(ck.dir), /holds 2 \.safetensors files but no model\.safetensors\.index\.json/)
  })

  test('tokenizer: ids from config.json, else tokenizer_config.json; an unusable tokenizer.json is refused', () => {
    const bytes = new TextEncoder().encode(JSON.stringify(TOKENIZER_JSON))
    assert.deepEqual([hfTokenizer(bytes, { bos_token_id: 1, eos_token_id: [2, 3] }, null).bos_id, hfTokenizer(bytes, { bos_token_id: 1, eos_token_id: [2, 3] }, null).eos_id], [1, 2])
    const t = hfTokenizer(bytes, {}, { bos_token: { content: '<s>' }, eos_token: '<|im_end|>' })
    assert.deepEqual([t.bos_id, t.eos_id], [1, 4])
    assert.throws(() => hfTokenizer(bytes, {}, {}), /no EOS token id/)
    assert.throws(() => hfTokenizer(new TextEncoder().encode('{"version":"1.0"}'), { eos_token_id: 1 }, null), /not a tokenizers JSON file/)
    assert.throws(() => hfTokenizer(new Uint8Array([0xff]), { eos_token_id: 1 }, null), (e: unknown) => e instanceof ModelFormatError && /tokenizer\.json: is not valid UTF-8 JSON/.test(e.message))
  })

  test('a tokenizer id outside the vocabulary is refused', async () => {
    await rejects(importModel(writeHfCheckpoint(fresh(), 'mixtral', { overrides: { eos_token_id: 40 } }).dir), /tokenizer eos_id 40 is outside the vocabulary of 40/)
  })

  test('the pure API works on in-memory shards', () => {
    const ck = writeHfCheckpoint(fresh(), 'qwen2_moe', { tokenizer: false })
    const bytes = new Uint8Array(readFileSync(join(ck.dir, 'model.safetensors')))
    const header = parseSafetensorsHeader(bytes, bytes.length, 'model.safetensors')
    const source = shardedSource([{ file: 'model.safetensors', header, read: (e) => bytes.subarray(e.begin, e.end) }], null)
    const model = importHf(ck.config, source)
    checkAgainstSource(model, ck, 'qwen2_moe')
    assert.equal(model.tokenizer, null)
  })
})
