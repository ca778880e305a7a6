/**
 * `npm run genesis`, step 1: a synthetic story corpus sampled from a teacher model, split into a
 * training pool and a disjoint validation pool. Seeded throughout: the same teacher, seed and
 * settings give the same stories, in the same order, in the same pools.
 *
 * Each story is sampled from BOS with the CPU reference forward pass (src/model/forward.ts) and the
 * project's sampler (seed = base seed + story index), until EOS or BOS (llama2.c's stories end
 * there) or `maxTokens`. Duplicates and stories shorter than `minTokens` are dropped; each
 * remaining story goes to the validation pool when the first 4 bytes of sha256(seed, its text) fall
 * under `validationFraction`, so a story's pool does not depend on how many were sampled.
 *
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js'
import type { Architecture } from '../../src/chain/meta.ts'
import { RunState, forward, ropeTable, type ReferenceWeights } from '../../src/model/forward.ts'
import { Sampler } from '../../src/model/sampler.ts'
import type { Tokenizer } from '../../src/model/tokenizer/index.ts'

export interface CorpusOptions {
  readonly architecture: Architecture
  /** The teacher, every expert present (a dense import is one expert per layer). */
  readonly weights: ReferenceWeights
  readonly tokenizer: Tokenizer
  readonly stories: number
  readonly seed: number
  /** @default 1.0 */
  readonly temperature?: number
  /** @default 0.95 */
  readonly topP?: number
  /** @default the teacher's max_seq_len - 1 */
  readonly maxTokens?: number
  /** @default 16 */
  readonly minTokens?: number
  /** @default 0.1 */
  readonly validationFraction?: number
  readonly signal?: AbortSignal
  readonly onProgress?: (done: number, total: number, tokens: number) => void
}

export interface Corpus {
  readonly train: readonly string[]
  readonly validation: readonly string[]
  /** Tokens sampled (BOS excluded), stories dropped as duplicates or too short. */
  readonly tokens: number
  readonly dropped: number
}

/** One story from BOS: token ids sampled until EOS/BOS or maxTokens. */
export function sampleStory(arch: Architecture, weights: ReferenceWeights, s: RunState, table: ReturnType<typeof ropeTable>, tokenizer: Tokenizer, sampler: Sampler, maxTokens: number): number[] {
  const out: number[] = []
  let token = tokenizer.bos
  for (let pos = 0; pos < Math.min(maxTokens, arch.max_seq_len - 1); pos++) {
    const r = forward(arch, weights, s, table, token, pos)
    if (!('logits' in r)) throw new Error('the teacher is missing experts: load every expert')
    const next = sampler.sample(r.logits)
    if (next === tokenizer.eos || next === tokenizer.bos) break
    out.push(next)
    token = next
  }
  return out
}

/** Whether a story belongs to the validation pool (a function of the seed and the text alone). */
export function isValidation(seed: number, text: string, fraction: number): boolean {
  const d = sha256(new TextEncoder().encode(`${seed}\n${text}`))
  return ((d[0] as number) * 2 ** 24 + (d[1] as number) * 2 ** 16 + (d[2] as number) * 2 ** 8 + (d[3] as number)) / 2 ** 32 < fraction
}

/** Story `index`'s token ids: sampled from BOS with sampler seed o.seed + index (the same in any process). */
export function storyIds(o: CorpusOptions, index: number, s: RunState, table: ReturnType<typeof ropeTable>): number[] {
  const sampler = new Sampler(o.architecture.vocab_size, { temperature: o.temperature ?? 1, topP: o.topP ?? 0.95, seed: o.seed + index })
  return sampleStory(o.architecture, o.weights, s, table, o.tokenizer, sampler, o.maxTokens ?? o.architecture.max_seq_len - 1)
}

/** The corpus from every story's ids, in story order: drops duplicates and short stories, assigns pools. */
export function assembleCorpus(o: CorpusOptions, stories: readonly (readonly number[])[]): Corpus {
  const minTokens = o.minTokens ?? 16
  const fraction = o.validationFraction ?? 0.1
  const seen = new Set<string>()
  const train: string[] = []
  const validation: string[] = []
  let tokens = 0
  let dropped = 0
  for (const ids of stories) {
    tokens += ids.length
    const text = o.tokenizer.decode([...ids]).trim()
    if (ids.length < minTokens || seen.has(text)) {
      dropped++
    } else {
      seen.add(text)
      ;(isValidation(o.seed, text, fraction) ? validation : train).push(text)
    }
  }
  return { train, validation, tokens, dropped }
}

/** sampleCorpus on this thread: storyIds for 0..stories-1, then assembleCorpus. */
export async function sampleCorpus(o: CorpusOptions): Promise<Corpus> {
  const table = ropeTable(o.architecture)
  const s = new RunState(o.architecture)
  const stories: number[][] = []
  let tokens = 0
  let lastYield = performance.now()
  for (let i = 0; i < o.stories; i++) {
    o.signal?.throwIfAborted()
    const ids = storyIds(o, i, s, table)
    stories.push(ids)
    tokens += ids.length
    o.onProgress?.(i + 1, o.stories, tokens)
    if (performance.now() - lastYield > 50) {
      await new Promise((r) => setTimeout(r, 0)) // let progress and aborts through
      lastYield = performance.now()
    }
  }
  return assembleCorpus(o, stories)
}

/** A pool as a chain D dataset text: stories separated by a blank line (src/pol/sequences.ts reads it back). */
export function poolText(stories: readonly string[]): string {
  return stories.map((s) => s.replace(/\n[ \t]*\n/g, '\n')).join('\n\n') + '\n'
}
