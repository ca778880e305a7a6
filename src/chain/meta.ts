/**
 * Chain A meta documents: the network's rules, one full snapshot per block.
 *
 * A meta block's payload is a DAG-CBOR document holding the model architecture, the tokenizer link,
 * PoW difficulties per chain, PoL and reward parameters and the validator set. Every later block of
 * any chain names the meta block whose rules it follows (its single chain A dependency).
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { reject } from '../errors.ts'
import { DAG_PB, RAW, compareBytes, decodeCbor, encodeCbor, isProtocolCid } from '../codec/cbor.ts'
import { MAX_DIFFICULTY, MAX_DOCUMENT_BYTES, type ChainId } from './header.ts'
import { isValidPublicKey, type PublicKey } from './keys.ts'
import * as S from '../codec/schema.ts'

export const META_KIND = 'blyan/meta'
export const META_VERSION = 1
/** Most validators a meta block may list. */
export const MAX_VALIDATORS = 256

/** How the router's scores weight the selected experts' outputs. */
export type RouterWeighting =
  /** softmax over all experts, selected ones keep their probability (OLMoE, Qwen2-MoE `norm_topk_prob: false`). */
  | 'softmax'
  /** softmax over the selected experts only (Mixtral; `norm_topk_prob: true`). */
  | 'softmax_topk'
  /** every selected expert weighs 1: a dense FFN split into experts (MoEfication); top_k = n_experts is exactly dense. */
  | 'unit'
export const ROUTER_WEIGHTINGS: readonly RouterWeighting[] = Object.freeze(['softmax', 'softmax_topk', 'unit'])

/**
 * Llama-style decoder with a mixture-of-experts FFN in every layer.
 *
 * RoPE rotates *interleaved* pairs (q[2i], q[2i+1]) of each head, as llama2.c and Meta's original
 * checkpoints do; importers of Hugging Face checkpoints (whose rotate-half convention pairs q[i] with
 * q[i + head_dim/2]) permute the rows of wq and wk (and q_norm, k_norm, q/k biases) to match.
 */
export interface Architecture {
  readonly family: 'llama_moe'
  /** Model width (residual stream). */
  readonly dim: number
  readonly n_layers: number
  readonly n_heads: number
  /** Key/value heads (grouped-query attention); divides n_heads. */
  readonly n_kv_heads: number
  readonly head_dim: number
  readonly vocab_size: number
  readonly max_seq_len: number
  /** Hidden width of each routed expert's SwiGLU FFN. */
  readonly expert_hidden_dim: number
  readonly n_experts: number
  /** Experts used per token, 1..n_experts. */
  readonly top_k: number
  readonly router_weighting: RouterWeighting
  /** Hidden width of an always-on shared expert, 0 for none (Qwen2-MoE has one). */
  readonly shared_expert_hidden_dim: number
  /** Shared expert output scaled by sigmoid(shared_gate . x) (Qwen2-MoE). */
  readonly shared_expert_gate: boolean
  /** RMSNorm on the full q and k projections (OLMoE). */
  readonly qk_norm: boolean
  /** Biases on the q, k and v projections (Qwen2-MoE). */
  readonly attention_bias: boolean
  /** Classifier shares the token embedding matrix. */
  readonly tie_embeddings: boolean
  readonly norm_eps: number
  readonly rope_theta: number
}

/**
 * The architecture fields a plain llama-style MoE leaves at their defaults: no shared expert, no
 * qk-norm, no attention biases, tied embeddings, eps 1e-5, RoPE theta 10000 (spread last, so keys
 * keep the interface's order).
 */
export const PLAIN_MOE = Object.freeze({
  shared_expert_hidden_dim: 0,
  shared_expert_gate: false,
  qk_norm: false,
  attention_bias: false,
  tie_embeddings: true,
  norm_eps: 1e-5,
  rope_theta: 10000
} as const)

export interface Tokenizer {
  readonly format: 'llama2c' | 'hf_tokenizer_json'
  /** UnixFS file holding the tokenizer. */
  readonly payload: CID
  readonly size: number
  readonly bos_id: number
  readonly eos_id: number
}

/** Proof-of-Learning parameters. Quorum is fixed by the protocol: more than 2/3 of the validators. */
export interface PolParams {
  /** Minimum relative improvement: accept iff loss_after <= loss_before * (1 - delta). */
  readonly delta: number
  /** Sequences in a validation slice. */
  readonly eval_sequences: number
  /** Tokens per validation sequence. */
  readonly seq_len: number
}

/** Reward parameters: a certified improvement mints floor(base * (1 + min(improvement, 1))) units. */
export interface RewardParams {
  readonly base: number
  /**
   * The share of a certified version's reward that goes to the proposer of the training pool it
   * learned from (its certificate's `trained_on`), in [0, 1]; absent: DEFAULT_DATA_SHARE.
   */
  readonly data_share?: number
}

/** The data share where chain A names none. */
export const DEFAULT_DATA_SHARE = 0.1

/** The data share a meta document's reward parameters put in force. */
export function dataShareOf(params: RewardParams): number {
  return params.data_share ?? DEFAULT_DATA_SHARE
}

/**
 * Thresholds of the automatic quality gate validators run on a proposed dataset (src/pol/gate.ts).
 * Shares are of documents (blank-line separated) unless said otherwise.
 */
export interface GateParams {
  /** Largest content a proposal may have, in bytes. */
  readonly max_bytes: number
  /** Fewest documents. */
  readonly min_documents: number
  /** Largest share of documents that repeat (exactly or nearly) a document of an approved pool, or of the proposal itself. */
  readonly max_duplicate: number
  /** Largest share of documents that are (nearly) in an approved pool of the other role: validation text in training data, or the reverse. */
  readonly max_contamination: number
  /** Estimated Jaccard similarity of word 5-shingles at which two documents are near duplicates. */
  readonly near_duplicate: number
  /** Largest share of tokens that are byte-fallback tokens (text the tokenizer does not cover). */
  readonly max_byte_fallback: number
  /**
   * The current model's mean loss on a sample must lie in [loss_min, loss_max] × ln(vocab_size),
   * the loss of a uniform guess: below, text it has memorised; above, text it reads no better than
   * noise. Relative, so one setting fits a well-trained model and a freshly split one.
   */
  readonly loss_min: number
  readonly loss_max: number
  /** Largest share of documents holding e-mail addresses, phone numbers or secret keys. */
  readonly max_pii: number
}

/** The gate's thresholds where chain A names none (a meta document without `gate`). */
export const DEFAULT_GATE: GateParams = Object.freeze({
  max_bytes: 16 * 1024 * 1024,
  min_documents: 16,
  max_duplicate: 0.05,
  max_contamination: 0.01,
  near_duplicate: 0.8,
  max_byte_fallback: 0.01,
  loss_min: 0.08,
  loss_max: 0.85,
  max_pii: 0.01
})
const GATE_KEYS = ['max_bytes', 'min_documents', 'max_duplicate', 'max_contamination', 'near_duplicate', 'max_byte_fallback', 'loss_min', 'loss_max', 'max_pii'] as const

export interface MetaDocument {
  readonly kind: typeof META_KIND
  readonly version: typeof META_VERSION
  /** Network name; fixed after genesis. */
  readonly network: string
  readonly architecture: Architecture
  readonly tokenizer: Tokenizer | null
  /** Required header difficulty per chain. */
  readonly pow: Readonly<Record<ChainId, number>>
  readonly pol: PolParams
  readonly reward: RewardParams
  /** Validator public keys, strictly ascending by bytes. They sign meta blocks, genesis parameters, certificates and rewards. */
  readonly validators: readonly PublicKey[]
  /** The quality gate's thresholds; absent: DEFAULT_GATE. */
  readonly gate?: GateParams
}

/** The gate thresholds a meta document puts in force. */
export function gateOf(meta: MetaDocument): GateParams {
  return meta.gate ?? DEFAULT_GATE
}

const ARCH_KEYS = [
  'family', 'dim', 'n_layers', 'n_heads', 'n_kv_heads', 'head_dim', 'vocab_size', 'max_seq_len', 'expert_hidden_dim',
  'n_experts', 'top_k', 'router_weighting', 'shared_expert_hidden_dim', 'shared_expert_gate', 'qk_norm',
  'attention_bias', 'tie_embeddings', 'norm_eps', 'rope_theta'
] as const
const META_KEYS = ['kind', 'version', 'network', 'architecture', 'tokenizer', 'pow', 'pol', 'reward', 'validators'] as const
/** Dimension limits: generous for real models, small enough that products stay exact. */
const MAX_DIM = 1 << 20

export function encodeMeta(doc: MetaDocument): Uint8Array {
  return encodeCbor(doc)
}

/** Decode and check a meta document (E_META, E_ARCH, E_VALIDATORS). */
export function decodeMeta(bytes: Uint8Array): MetaDocument {
  const raw = decodeCbor(bytes, MAX_DOCUMENT_BYTES, 'payload')
  const withGate = typeof raw === 'object' && raw !== null && Object.hasOwn(raw, 'gate')
  const o = S.exactMap(raw, withGate ? [...META_KEYS, 'gate'] : META_KEYS, '', 'E_META')
  if (o['kind'] !== META_KIND) reject('E_META', 'kind', `expected "${META_KIND}"`)
  if (S.uint(o, 'version', '', undefined, 'E_META') !== META_VERSION) reject('E_VERSION', 'version', `meta version ${String(o['version'])}`)
  const network = S.str(o, 'network', '', 64, /^[a-z0-9][a-z0-9._-]*$/, 'E_META')
  const architecture = checkArchitecture(o['architecture'])
  const tokenizer = o['tokenizer'] === null ? null : checkTokenizer(o['tokenizer'], architecture)
  const powMap = S.exactMap(o['pow'], ['A', 'B', 'C', 'D'], 'pow', 'E_META')
  const pow = Object.freeze({
    A: S.uint(powMap, 'A', 'pow', MAX_DIFFICULTY, 'E_META'),
    B: S.uint(powMap, 'B', 'pow', MAX_DIFFICULTY, 'E_META'),
    C: S.uint(powMap, 'C', 'pow', MAX_DIFFICULTY, 'E_META'),
    D: S.uint(powMap, 'D', 'pow', MAX_DIFFICULTY, 'E_META')
  })
  const polMap = S.exactMap(o['pol'], ['delta', 'eval_sequences', 'seq_len'], 'pol', 'E_META')
  const delta = S.finite(polMap, 'delta', 'pol', 'E_META')
  if (!(delta >= 0 && delta < 1)) reject('E_META', 'pol.delta', 'must be in [0, 1)')
  const pol = Object.freeze({
    delta,
    eval_sequences: positive(polMap, 'eval_sequences', 'pol', 1 << 16),
    seq_len: positive(polMap, 'seq_len', 'pol', architecture.max_seq_len)
  })
  const rewardRaw = o['reward']
  const withShare = typeof rewardRaw === 'object' && rewardRaw !== null && Object.hasOwn(rewardRaw, 'data_share')
  const rewardMap = S.exactMap(rewardRaw, withShare ? ['base', 'data_share'] : ['base'], 'reward', 'E_META')
  const base = S.uint(rewardMap, 'base', 'reward', 2 ** 40, 'E_META')
  let share: { data_share: number } | Record<string, never> = {}
  if (withShare) {
    const v = S.finite(rewardMap, 'data_share', 'reward', 'E_META')
    if (!(v >= 0 && v <= 1)) reject('E_META', 'reward.data_share', 'a share in [0, 1]')
    share = { data_share: v }
  }
  const reward = Object.freeze({ base, ...share })
  const validators = checkValidators(S.list(o, 'validators', '', MAX_VALIDATORS, 'E_VALIDATORS'))
  const gate = withGate ? { gate: checkGate(o['gate']) } : {}
  return Object.freeze({ kind: META_KIND, version: META_VERSION, network, architecture, tokenizer, pow, pol, reward, validators, ...gate })
}

function checkGate(value: unknown): GateParams {
  const p = 'gate'
  const o = S.exactMap(value, GATE_KEYS, p, 'E_META')
  const share = (key: string): number => {
    const v = S.finite(o, key, p, 'E_META')
    if (!(v >= 0 && v <= 1)) reject('E_META', `gate.${key}`, 'a share in [0, 1]')
    return v
  }
  const g: GateParams = {
    max_bytes: positive(o, 'max_bytes', p, 1 << 30),
    min_documents: S.uint(o, 'min_documents', p, 1 << 30, 'E_META'),
    max_duplicate: share('max_duplicate'),
    max_contamination: share('max_contamination'),
    near_duplicate: share('near_duplicate'),
    max_byte_fallback: share('max_byte_fallback'),
    loss_min: S.finite(o, 'loss_min', p, 'E_META'),
    loss_max: S.finite(o, 'loss_max', p, 'E_META'),
    max_pii: share('max_pii')
  }
  if (!(g.loss_min >= 0 && g.loss_max > g.loss_min && g.loss_max <= 4)) reject('E_META', 'gate.loss_max', 'needs 0 <= loss_min < loss_max <= 4 (fractions of a uniform guess\'s loss)')
  return Object.freeze(g)
}

function positive(o: S.Fields, key: string, path: string, max: number, code: 'E_META' | 'E_ARCH' = 'E_META'): number {
  const v = S.uint(o, key, path, max, code)
  if (v === 0) reject(code, `${path}.${key}`, 'must be positive')
  return v
}

function checkArchitecture(value: unknown): Architecture {
  const o = S.exactMap(value, ARCH_KEYS, 'architecture', 'E_ARCH')
  const p = 'architecture'
  if (o['family'] !== 'llama_moe') reject('E_ARCH', 'architecture.family', 'expected "llama_moe"')
  const a: Architecture = {
    family: 'llama_moe',
    dim: positive(o, 'dim', p, MAX_DIM, 'E_ARCH'),
    n_layers: positive(o, 'n_layers', p, 1024, 'E_ARCH'),
    n_heads: positive(o, 'n_heads', p, 1024, 'E_ARCH'),
    n_kv_heads: positive(o, 'n_kv_heads', p, 1024, 'E_ARCH'),
    head_dim: positive(o, 'head_dim', p, 4096, 'E_ARCH'),
    vocab_size: positive(o, 'vocab_size', p, 1 << 22, 'E_ARCH'),
    max_seq_len: positive(o, 'max_seq_len', p, 1 << 20, 'E_ARCH'),
    expert_hidden_dim: positive(o, 'expert_hidden_dim', p, MAX_DIM, 'E_ARCH'),
    n_experts: positive(o, 'n_experts', p, 1024, 'E_ARCH'),
    top_k: positive(o, 'top_k', p, 1024, 'E_ARCH'),
    router_weighting: S.oneOf(o, 'router_weighting', p, ROUTER_WEIGHTINGS, 'E_ARCH'),
    shared_expert_hidden_dim: S.uint(o, 'shared_expert_hidden_dim', p, MAX_DIM, 'E_ARCH'),
    shared_expert_gate: S.bool(o, 'shared_expert_gate', p, 'E_ARCH'),
    qk_norm: S.bool(o, 'qk_norm', p, 'E_ARCH'),
    attention_bias: S.bool(o, 'attention_bias', p, 'E_ARCH'),
    tie_embeddings: S.bool(o, 'tie_embeddings', p, 'E_ARCH'),
    norm_eps: S.finite(o, 'norm_eps', p, 'E_ARCH'),
    rope_theta: S.finite(o, 'rope_theta', p, 'E_ARCH')
  }
  if (a.n_heads % a.n_kv_heads !== 0) reject('E_ARCH', 'architecture.n_kv_heads', 'must divide n_heads')
  if (a.head_dim % 2 !== 0) reject('E_ARCH', 'architecture.head_dim', 'RoPE rotates pairs: head_dim must be even')
  if (a.top_k > a.n_experts) reject('E_ARCH', 'architecture.top_k', 'must be at most n_experts')
  if (a.shared_expert_gate && a.shared_expert_hidden_dim === 0) reject('E_ARCH', 'architecture.shared_expert_gate', 'needs a shared expert')
  if (!(a.norm_eps > 0 && a.norm_eps < 1)) reject('E_ARCH', 'architecture.norm_eps', 'must be in (0, 1)')
  if (!(a.rope_theta > 1)) reject('E_ARCH', 'architecture.rope_theta', 'must be greater than 1')
  return Object.freeze(a)
}

function checkTokenizer(value: unknown, arch: Architecture): Tokenizer {
  const p = 'tokenizer'
  const o = S.exactMap(value, ['format', 'payload', 'size', 'bos_id', 'eos_id'], p, 'E_META')
  const payload = S.cid(o, 'payload', p, 'E_META')
  if (!isProtocolCid(payload, [DAG_PB, RAW])) reject('E_META', 'tokenizer.payload', 'a UnixFS file CID (dag-pb or raw, sha2-256, v1)')
  return Object.freeze({
    format: S.oneOf(o, 'format', p, ['llama2c', 'hf_tokenizer_json'] as const, 'E_META'),
    payload,
    size: positive(o, 'size', p, 1 << 30),
    bos_id: S.uint(o, 'bos_id', p, arch.vocab_size - 1, 'E_META'),
    eos_id: S.uint(o, 'eos_id', p, arch.vocab_size - 1, 'E_META')
  })
}

function checkValidators(list: readonly unknown[]): readonly PublicKey[] {
  if (list.length === 0) reject('E_VALIDATORS', 'validators', 'at least one validator')
  const keys = list.map((v, i) => S.bytes(S.item(v), '', `validators[${i}]`, 33, 'E_VALIDATORS'))
  keys.forEach((k, i) => {
    if (i > 0 && compareBytes(keys[i - 1] as Uint8Array, k) >= 0) reject('E_VALIDATORS', `validators[${i}]`, 'not strictly ascending')
    if (!isValidPublicKey(k)) reject('E_VALIDATORS', `validators[${i}]`, 'not a compressed secp256k1 point')
  })
  return Object.freeze(keys)
}

/** True when `publicKey` is in the meta document's validator set. */
export function isValidator(meta: MetaDocument, publicKey: Uint8Array): boolean {
  return meta.validators.some((v) => compareBytes(v, publicKey) === 0)
}

/** Quorum: more than 2/3 of `n` validators, i.e. the least q with 3q > 2n. */
export function quorumSize(n: number): number {
  return Math.floor((2 * n) / 3) + 1
}
