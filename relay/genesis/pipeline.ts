/**
 * `npm run genesis`: the whole pipeline, seeded throughout (config.ts holds the recipe).
 *
 *   1. teacher: a llama2.c checkpoint (default ../shared/data/stories260K.bin) and its tokenizer;
 *   2. corpus: stories sampled from the teacher, split into training and validation pools (corpus.ts),
 *      on worker threads (story i is the same whichever thread samples it);
 *   3. student: a MoE trained from scratch by distillation (student.ts);
 *   4. evaluation and the genesis directory (genesis.ts).
 *
 * Steps 2 and 3 are cached under `cacheDir`, keyed by a hash of everything they depend on (teacher
 * bytes, recipe), so a rerun after a crash or a change to a later step does not redo hours of work.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { importLlama2c } from '../../src/model/llama2c.ts'
import { createTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.ts'
import { floatModel, type FloatModel } from '../../src/train/train.ts'
import { llama2cTokenizer } from '../../src/model/tokenizer/llama2c-file.ts'
import type { ImportedTokenizer } from '../../src/model/imported.ts'
import type { GenesisRecipe } from './config.ts'
import { assembleCorpus, type Corpus, type CorpusOptions } from './corpus.ts'
import type { CorpusShardData } from './corpus-shard.ts'
import { copyWeights, parameterSet, trainStudent, weightsOf, type StepRecord } from './student.ts'
import { startTsWorker } from './worker.ts'
import { chainModel, chainPayloads, expertUsage, lossPair } from './evaluate.ts'
import { writeGenesis, type DatasetEntry, type GenesisManifest, type GenesisRecord } from './genesis.ts'
import { poolText } from './corpus.ts'
import { splitDocuments } from '../../src/pol/sequences.ts'
import { execFileSync } from 'node:child_process'
import { importPayload } from '../../src/tensor/tiles.ts'
import { sequenceDraw } from '../../src/model/random.ts'

export type Stage = 'teacher' | 'corpus' | 'student' | 'evaluation' | 'write'

export interface ProgressEvent {
  readonly stage: Stage
  readonly done: number
  readonly total: number
  /** What the numbers count, and anything worth showing (losses, speed). */
  readonly detail: string
}

export interface Teacher {
  readonly file: string
  readonly sha256: string
  readonly model: FloatModel
  /** The teacher's parameters in parameterSet layout (what workers get). */
  readonly flat: Float32Array
  readonly tokenizer: Tokenizer
  readonly tokenizerFile: ImportedTokenizer
}

export function loadTeacher(file: string, tokenizerFile: string): Teacher {
  const bytes = readFileSync(file)
  const imported = importLlama2c(bytes, { file, experts: 1 })
  const blocks = new Map([...imported.blocks].map(([name, tensors]) => [name, new Map(tensors.map((t) => [t.name, t.values]))]))
  const model = floatModel(imported.architecture, blocks)
  const flat = new Float32Array(parameterSet(model.architecture, null).length)
  copyWeights(model, parameterSet(model.architecture, flat.buffer).params)
  const tok = llama2cTokenizer(readFileSync(tokenizerFile), model.architecture.vocab_size, tokenizerFile)
  const tokenizer = createTokenizer('llama2c', tok.bytes, model.architecture.vocab_size, tok.bos_id, tok.eos_id, tokenizerFile)
  return { file, sha256: sha256Hex(bytes), model, flat, tokenizer, tokenizerFile: tok }
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Step 2: the corpus, sampled on `threads` workers (cached). */
export async function corpusStage(teacher: Teacher, recipe: GenesisRecipe, threads: number, cacheDir: string, onProgress: (e: ProgressEvent) => void): Promise<{ corpus: Corpus; key: string; cached: boolean }> {
  const key = sha256Hex(JSON.stringify({ teacher: teacher.sha256, tokenizer: sha256Hex(teacher.tokenizerFile.bytes), corpus: recipe.corpus }))
  const file = join(cacheDir, `corpus-${key.slice(0, 16)}.json`)
  const options: CorpusOptions = { ...recipe.corpus, architecture: teacher.model.architecture, weights: teacher.model.weights, tokenizer: teacher.tokenizer }
  if (existsSync(file)) {
    const corpus = JSON.parse(readFileSync(file, 'utf8')) as Corpus
    onProgress({ stage: 'corpus', done: recipe.corpus.stories, total: recipe.corpus.stories, detail: `from cache ${file}` })
    return { corpus, key, cached: true }
  }
  const n = recipe.corpus.stories
  const stories: (number[] | undefined)[] = new Array(n)
  let done = 0
  let tokens = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: Math.max(1, Math.min(threads, n)) }, (_, w) => new Promise<void>((resolve, reject) => {
    const indices = Array.from({ length: n }, (_, i) => i).filter((i) => i % threads === w)
    const data: CorpusShardData = {
      architecture: teacher.model.architecture, teacher: teacher.flat, tokenizer: teacher.tokenizerFile.bytes,
      bos: teacher.tokenizer.bos, eos: teacher.tokenizer.eos, recipe: recipe.corpus, indices
    }
    const worker = startTsWorker(new URL('./corpus-shard.ts', import.meta.url), data)
    let left = indices.length
    if (left === 0) return void worker.terminate().then(() => resolve())
    worker.on('message', (m: { index: number; ids: number[] }) => {
      stories[m.index] = m.ids
      done++
      tokens += m.ids.length
      const rate = tokens / ((performance.now() - started) / 1000)
      onProgress({ stage: 'corpus', done, total: n, detail: `stories, ${tokens} tokens, ${rate.toFixed(0)} tokens/s` })
      if (--left === 0) void worker.terminate().then(() => resolve())
    })
    worker.on('error', reject)
  })))
  const corpus = assembleCorpus(options, stories as number[][])
  writeAtomic(file, JSON.stringify(corpus))
  return { corpus, key, cached: false }
}

/** Training sequences from a pool: BOS, then the story's tokens, cut at the student's context. */
export function poolSequences(tokenizer: Tokenizer, stories: readonly string[], maxSeqLen: number): Int32Array[] {
  return stories.map((s) => Int32Array.from([tokenizer.bos, ...tokenizer.encode(s)].slice(0, maxSeqLen + 1))).filter((s) => s.length >= 2)
}

export interface StudentStage {
  readonly model: FloatModel
  readonly history: readonly StepRecord[]
  readonly key: string
  readonly seconds: number
}

/** Step 3: the student (cached). */
export async function studentStage(teacher: Teacher, recipe: GenesisRecipe, corpus: { corpus: Corpus; key: string }, cacheDir: string, onProgress: (e: ProgressEvent) => void): Promise<StudentStage> {
  const c = recipe.student
  const key = sha256Hex(JSON.stringify({ corpus: corpus.key, student: c }))
  const file = join(cacheDir, `student-${key.slice(0, 16)}`)
  const arch = c.architecture
  if (existsSync(`${file}.json`)) {
    const saved = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as { history: StepRecord[]; seconds: number }
    const raw = readFileSync(`${file}.bin`)
    const flat = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))
    onProgress({ stage: 'student', done: c.steps, total: c.steps, detail: `from cache ${file}.bin` })
    return { model: { architecture: arch, weights: weightsOf(parameterSet(arch, flat.buffer).params) }, history: saved.history, key, seconds: saved.seconds }
  }
  const sequences = poolSequences(teacher.tokenizer, corpus.corpus.train, arch.max_seq_len)
  const started = performance.now()
  const result = await trainStudent({
    config: c, teacher: teacher.model, sequences,
    onStep: (r, rate) => onProgress({ stage: 'student', done: r.step + 1, total: c.steps, detail: `steps, loss ${r.ce.toFixed(3)} (objective ${r.objective.toFixed(3)}), lr ${r.learningRate.toExponential(1)}, ${rate.toFixed(0)} tokens/s` })
  })
  const seconds = (performance.now() - started) / 1000
  const flat = new Float32Array(parameterSet(arch, null).length)
  copyWeights(result.model, parameterSet(arch, flat.buffer).params)
  writeAtomic(`${file}.bin`, new Uint8Array(flat.buffer))
  writeAtomic(`${file}.json`, JSON.stringify({ history: result.history, seconds }))
  return { model: result.model, history: result.history, key, seconds }
}

export interface WriteOptions {
  readonly outDir: string
  /** TinyStories text to measure both models on as well (../shared/data/tinystories_val_slice.txt), or null. */
  readonly tinystories: string | null
  readonly corpusSeconds: number | null
  /** The source tree, for the record's commit. */
  readonly root: string
}

/** Step 4: evaluate, then write genesis/ (genesis.ts). */
export async function writeStage(teacher: Teacher, recipe: GenesisRecipe, corpus: Corpus, student: StudentStage, o: WriteOptions, onProgress: (e: ProgressEvent) => void): Promise<GenesisManifest> {
  const arch = recipe.student.architecture
  if (corpus.train.length === 0 || corpus.validation.length === 0) throw new RangeError(`corpus: ${corpus.train.length} training and ${corpus.validation.length} validation stories; a genesis needs both (sample more stories)`)
  const progress = (done: number, detail: string): void => onProgress({ stage: 'evaluation', done, total: 4, detail })
  const payloads = chainPayloads(student.model)
  const onChain = chainModel(student.model, payloads)
  const heldoutSeqs = poolSequences(teacher.tokenizer, corpus.validation.slice(0, recipe.evaluationStories), arch.max_seq_len)
  progress(0, 'held-out pool losses')
  const heldout = await lossPair(student.model, onChain, teacher.model, heldoutSeqs)
  progress(1, 'TinyStories losses')
  const tinystories = o.tinystories === null ? null : await lossPair(student.model, onChain, teacher.model,
    poolSequences(teacher.tokenizer, splitDocuments(o.tinystories).slice(0, recipe.evaluationStories), arch.max_seq_len))
  progress(2, 'expert usage')
  const usage = expertUsage(onChain, heldoutSeqs)
  const minUsage = Math.min(...usage.flat()) * arch.n_experts
  progress(3, 'files')

  const seed = recipe.corpus.seed
  const texts = new Map([
    ['genesis-train', new TextEncoder().encode(poolText(corpus.train))],
    ['genesis-validation', new TextEncoder().encode(poolText(corpus.validation))]
  ])
  const datasets: DatasetEntry[] = []
  for (const [name, bytes] of texts) {
    const train = name === 'genesis-train'
    const { cid } = await importPayload(bytes)
    datasets.push({
      name, split: train ? 'train' : 'validation', license: 'MIT', cid: cid.toString(), size: bytes.length,
      stories: train ? corpus.train.length : corpus.validation.length,
      description: `${train ? 'Training' : 'Held-out validation'} pool of stories sampled from the teacher ${basenameOf(teacher.file)} (llama2.c, MIT) by npm run genesis, seed ${seed}, temperature ${recipe.corpus.temperature}, top-p ${recipe.corpus.topP}; pools split by sha256(seed, text).`
    })
  }
  const blocks = []
  for (const [name, bytes] of payloads) blocks.push({ name, cid: (await importPayload(bytes)).cid.toString(), size: bytes.length })
  const tokenizerCid = (await importPayload(teacher.tokenizerFile.bytes)).cid.toString()
  const every = Math.max(1, Math.floor(student.history.length / 200))
  const curve = student.history.filter((r, i) => i % every === 0 || i === student.history.length - 1).map((r) => [r.step, round(r.ce), round(r.objective)] as const)
  const record: GenesisRecord = {
    kind: 'blyan/genesis-record', version: 1, network: recipe.network,
    code: codeVersion(o.root),
    teacher: { file: basenameOf(teacher.file), sha256: teacher.sha256, architecture: teacher.model.architecture },
    recipe,
    datasets,
    model: { architecture: arch, parameters: parameterSet(arch, null).length, blocks: blocks.map((b) => ({ name: b.name, cid: b.cid })) },
    training: { steps: student.history.length, tokens: trainedTokens(poolSequences(teacher.tokenizer, corpus.train, arch.max_seq_len), recipe), loss_curve: curve },
    evaluation: { heldout, tinystories, expert_usage: usage.map((l) => l.map(round)), min_usage_vs_uniform: round(minUsage) }
  }
  const manifest: Omit<GenesisManifest, 'record'> = {
    kind: 'blyan/genesis', version: 1, network: recipe.network, architecture: arch, pol: recipe.pol, jobs: recipe.jobs,
    tokenizer: { format: 'llama2c', cid: tokenizerCid, size: teacher.tokenizerFile.bytes.length, bos_id: teacher.tokenizer.bos, eos_id: teacher.tokenizer.eos },
    blocks, datasets,
    seconds: { corpus: o.corpusSeconds, student: Math.round(student.seconds) },
    summary: record
  }
  const written = await writeGenesis(o.outDir, manifest, { tokenizer: teacher.tokenizerFile.bytes, blocks: payloads, datasets: texts }, record)
  progress(4, `written to ${o.outDir}`)
  return written
}

/** Predicted tokens the student trained on: the batches student.ts drew, replayed. */
function trainedTokens(sequences: readonly Int32Array[], recipe: GenesisRecipe): number {
  const draw = sequenceDraw(sequences.length, recipe.student.seed + 1)
  let tokens = 0
  for (let i = 0; i < recipe.student.steps * recipe.student.batchSize; i++) tokens += (sequences[draw()] as Int32Array).length - 1
  return tokens
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6
}

function basenameOf(file: string): string {
  return file.split(/[\\/]/).pop() ?? file
}

/** git HEAD of `root`, and whether the training code (src, relay, shaders) has uncommitted changes. */
function codeVersion(root: string): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'relay', 'shaders'], { cwd: root, encoding: 'utf8' }).trim() !== ''
    return { commit, dirty }
  } catch {
    return { commit: 'unknown', dirty: true }
  }
}

function writeAtomic(file: string, data: string | Uint8Array): void {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(`${file}.tmp`, data)
  renameSync(`${file}.tmp`, file)
}
