/**
 * The automatic quality gate validators run on a proposed dataset before deciding on it.
 *
 * Deterministic, so that validators agree: the same proposal, approved pools, tokenizer, model and
 * thresholds (chain A's `gate`, meta.ts GateParams) give byte-identical reports. Checks, cheapest
 * first; a failed size or format check stops the gate (the later checks need readable text):
 *
 * 1. `size`: content bytes at most `max_bytes`.
 * 2. `utf8`: the content is UTF-8 without control characters other than tab and newlines.
 * 3. `documents`: at least `min_documents` blank-line separated documents (src/pol/sequences.ts).
 * 4. `duplicates`: the share of documents that repeat a document exactly (whitespace-normalised)
 *    or nearly (MinHash estimate of word 5-shingle Jaccard >= `near_duplicate`, minhash.ts), in an
 *    approved pool or earlier in the proposal itself.
 * 5. `contamination`: the share of documents (nearly) in an approved pool of the other role.
 * 6. `pii`: the share of documents holding an e-mail address, a phone number or a secret key.
 * 7. `byte_fallback`: the share of tokens of a sample that are byte-fallback tokens.
 * 8. `loss`: the current model's mean next-token loss on windows of the sample lies in
 *    [`loss_min`, `loss_max`] × ln(vocabulary size), a uniform guess's loss: gibberish scores high,
 *    text the model memorised scores low.
 *
 * The report is a DAG-CBOR document (`blyan/dataset-report`) a decision links.
 *
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import type { CID } from 'multiformats/cid'
import { decodeCbor, encodeCbor, DAG_CBOR, cidOf } from '../codec/cbor.ts'
import type { DatasetSplit } from '../chain/dataset.ts'
import type { GateParams } from '../chain/meta.ts'
import type { Tokenizer } from '../model/tokenizer/index.ts'
import { evaluateLoss, type FloatModel } from '../train/train.ts'
import { MinHashIndex, signature } from './minhash.ts'
import { splitDocuments, tokenStream } from './sequences.ts'

export const REPORT_KIND = 'blyan/dataset-report'
export const REPORT_VERSION = 1
/** Bytes of text the tokenizer and loss checks read (from the start of the documents). */
export const SAMPLE_BYTES = 256 * 1024
/** Windows of the sample the model is scored on, spread evenly. */
export const LOSS_WINDOWS = 16

export type CheckName = 'size' | 'utf8' | 'documents' | 'duplicates' | 'contamination' | 'pii' | 'byte_fallback' | 'loss'

export interface GateCheck {
  readonly name: CheckName
  /** What was measured (a count, a share or nats per token), rounded to 6 decimals. */
  readonly value: number
  /** The threshold it is held to (`loss`: the upper one; the lower is in `detail`). */
  readonly limit: number
  readonly pass: boolean
  /** One line for people. */
  readonly detail: string
}

export interface GateReport {
  readonly kind: typeof REPORT_KIND
  readonly version: typeof REPORT_VERSION
  /** The chain D dataset block screened. */
  readonly dataset: CID
  readonly role: DatasetSplit
  /** The thresholds in force. */
  readonly params: GateParams
  /** The approved pools compared against, in the order given. */
  readonly references: readonly CID[]
  readonly checks: readonly GateCheck[]
  readonly pass: boolean
}

/** An approved pool and its text. */
export interface ReferencePool {
  readonly cid: CID
  readonly role: DatasetSplit
  readonly text: string
}

export interface GateInput {
  readonly dataset: CID
  readonly role: DatasetSplit
  readonly content: Uint8Array
  readonly params: GateParams
  readonly references: readonly ReferencePool[]
  readonly tokenizer: Tokenizer
  readonly model: FloatModel
  /** Tokens per scored window (chain A's pol.seq_len). */
  readonly seqLen: number
  readonly signal?: AbortSignal
}

const round = (v: number): number => Math.round(v * 1e6) / 1e6
const pct = (v: number): string => `${(100 * v).toFixed(2)}%`

/** Run every check on a proposal; the report says which failed and why. */
export async function runGate(input: GateInput): Promise<GateReport> {
  const { params } = input
  const checks: GateCheck[] = []
  const add = (name: CheckName, value: number, limit: number, pass: boolean, detail: string): boolean => {
    checks.push(Object.freeze({ name, value: round(value), limit, pass, detail }))
    return pass
  }
  const report = (): GateReport => Object.freeze({
    kind: REPORT_KIND, version: REPORT_VERSION, dataset: input.dataset, role: input.role, params,
    references: Object.freeze(input.references.map((r) => r.cid)), checks: Object.freeze(checks), pass: checks.every((c) => c.pass)
  })

  const size = input.content.length
  if (!add('size', size, params.max_bytes, size <= params.max_bytes, `${size} bytes, at most ${params.max_bytes}`)) return report()
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(input.content)
  } catch {
    add('utf8', 1, 0, false, 'not UTF-8 text')
    return report()
  }
  const controls = (text.match(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g) ?? []).length
  if (!add('utf8', controls, 0, controls === 0, controls === 0 ? 'UTF-8 text' : `${controls} control characters (only tab and newlines may appear)`)) return report()
  const docs = splitDocuments(text)
  add('documents', docs.length, params.min_documents, docs.length >= params.min_documents, `${docs.length} documents, at least ${params.min_documents}`)
  input.signal?.throwIfAborted()

  // Duplicates and contamination: exact (normalised) and near (MinHash) matches.
  const same = new MinHashIndex()
  const other = new MinHashIndex()
  const sameExact = new Set<string>()
  const otherExact = new Set<string>()
  for (const pool of input.references) {
    const index = pool.role === input.role ? same : other
    const exact = pool.role === input.role ? sameExact : otherExact
    for (const d of splitDocuments(pool.text)) {
      exact.add(fingerprint(d))
      index.add(signature(d))
    }
    input.signal?.throwIfAborted()
  }
  let duplicated = 0
  let contaminated = 0
  for (const d of docs) {
    const f = fingerprint(d)
    const sig = signature(d)
    const isOther = otherExact.has(f) || other.nearest(sig) >= params.near_duplicate
    // A document the other role holds counts as contamination, not also as a duplicate.
    if (isOther) contaminated++
    else if (sameExact.has(f) || same.nearest(sig) >= params.near_duplicate) duplicated++
    sameExact.add(f)
    same.add(sig)
  }
  const n = Math.max(1, docs.length)
  add('duplicates', duplicated / n, params.max_duplicate, duplicated / n <= params.max_duplicate,
    `${duplicated} of ${docs.length} documents repeat an approved pool's or an earlier one (${pct(duplicated / n)}, at most ${pct(params.max_duplicate)})`)
  add('contamination', contaminated / n, params.max_contamination, contaminated / n <= params.max_contamination,
    `${contaminated} of ${docs.length} documents are in an approved ${input.role === 'train' ? 'validation' : 'training'} pool (${pct(contaminated / n)}, at most ${pct(params.max_contamination)})`)
  const withPii = docs.filter(hasPii).length
  add('pii', withPii / n, params.max_pii, withPii / n <= params.max_pii,
    `${withPii} of ${docs.length} documents hold an e-mail address, a phone number or a key (${pct(withPii / n)}, at most ${pct(params.max_pii)})`)
  input.signal?.throwIfAborted()

  // The tokenizer and the model on a sample: whole documents from the start, up to SAMPLE_BYTES.
  const sample: string[] = []
  let bytes = 0
  for (const d of docs) {
    if (bytes > 0 && bytes + d.length > SAMPLE_BYTES) break
    sample.push(d)
    bytes += d.length
  }
  const tokens = tokenStream(sample.join('\n\n'), input.tokenizer)
  let byteTokens = 0
  for (const t of tokens) if (input.tokenizer.isByteToken(t)) byteTokens++
  const fallback = byteTokens / Math.max(1, tokens.length)
  add('byte_fallback', fallback, params.max_byte_fallback, fallback <= params.max_byte_fallback,
    `${byteTokens} of ${tokens.length} tokens spell bytes the vocabulary lacks (${pct(fallback)}, at most ${pct(params.max_byte_fallback)})`)
  const windows = spreadWindows(tokens, input.seqLen, LOSS_WINDOWS)
  if (windows.length === 0) {
    add('loss', 0, params.loss_max, false, `too little text for one window of ${input.seqLen} tokens`)
    return report()
  }
  const loss = await evaluateLoss(input.model, windows, input.signal === undefined ? {} : { signal: input.signal })
  // Limits relative to a uniform guess over the vocabulary (ln V nats).
  const uniform = Math.log(input.tokenizer.vocabSize)
  const [low, high] = [round(params.loss_min * uniform), round(params.loss_max * uniform)]
  add('loss', loss, high, loss >= low && loss <= high,
    `the model's loss is ${loss.toFixed(3)} nats per token on ${windows.length} windows, must be in [${low}, ${high}] (${params.loss_min} to ${params.loss_max} of a uniform guess, ${uniform.toFixed(3)})${loss < low ? ': text the model already knows' : loss > high ? ': text the model cannot read (gibberish, another language or format)' : ''}`)
  return report()
}

/** A document's identity for exact matches: sha256 of its words joined by single spaces, lower-cased. */
function fingerprint(doc: string): string {
  return Array.from(sha256(new TextEncoder().encode(doc.toLowerCase().split(/\s+/).join(' ')))).map((b) => b.toString(16).padStart(2, '0')).join('')
}

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/
/** Ten or more digits, allowing the usual separators: +1 (555) 123-4567, 020 7946 0958. */
const PHONE = /(?:\+?\d[\s().-]*){10,}/
/** Private key blocks, 64-hex-digit secrets, and common API key shapes. */
const KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----|\b[0-9a-fA-F]{64}\b|\bAKIA[0-9A-Z]{16}\b|\bsk-[A-Za-z0-9]{20,}\b/

export function hasPii(doc: string): boolean {
  return EMAIL.test(doc) || PHONE.test(doc) || KEY.test(doc)
}

/** `count` windows of seqLen + 1 tokens spread evenly over the stream (fewer when it is short). */
function spreadWindows(tokens: Int32Array, seqLen: number, count: number): Int32Array[] {
  const available = Math.floor((tokens.length - 1) / seqLen)
  const take = Math.min(count, available)
  const out: Int32Array[] = []
  for (let i = 0; i < take; i++) {
    const j = Math.floor((i * available) / take)
    out.push(tokens.subarray(j * seqLen, j * seqLen + seqLen + 1))
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// The report document

export function encodeReport(report: GateReport): Uint8Array {
  return encodeCbor({
    kind: report.kind, version: report.version, dataset: report.dataset, role: report.role, params: { ...report.params },
    references: [...report.references], checks: report.checks.map((c) => ({ ...c })), pass: report.pass
  })
}

/** The report's CID (a decision's `report` link). */
export function reportCid(bytes: Uint8Array): CID {
  return cidOf(bytes, DAG_CBOR)
}

/** Decode a report a relay served (its CID already checked); shape only. */
export function decodeReport(bytes: Uint8Array): GateReport {
  const o = decodeCbor(bytes, 1 << 20, 'report') as GateReport
  if (o === null || typeof o !== 'object' || o.kind !== REPORT_KIND || o.version !== REPORT_VERSION || !Array.isArray(o.checks)) throw new TypeError('not a blyan/dataset-report version 1')
  return o
}
