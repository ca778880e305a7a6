/**
 * `npm run genesis [-- --teacher FILE] [--tokenizer FILE] [--out DIR] [--cache DIR] [--threads N]`
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { GENESIS_RECIPE } from './config.ts'
import { corpusStage, loadTeacher, studentStage, writeStage, type ProgressEvent } from './pipeline.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const { values } = parseArgs({
  options: {
    teacher: { type: 'string', default: resolve(ROOT, '..', 'shared', 'data', 'stories260K.bin') },
    tokenizer: { type: 'string' },
    out: { type: 'string', default: join(ROOT, 'genesis') },
    cache: { type: 'string', default: join(ROOT, '.genesis-cache') },
    threads: { type: 'string', default: String(GENESIS_RECIPE.student.shards) }
  }
})
const teacherFile = values.teacher
const tokenizerFile = values.tokenizer ?? join(dirname(teacherFile), 'tok512.bin')
for (const f of [teacherFile, tokenizerFile]) {
  if (!existsSync(f)) {
    console.error(`genesis: ${f} not found (--teacher FILE takes a llama2.c checkpoint, --tokenizer FILE its tokenizer)`)
    process.exit(1)
  }
}

/** One line per stage event on a terminal (redrawn in place); elsewhere a line every 2% or 30 s. */
function progressPrinter(): (e: ProgressEvent) => void {
  const tty = process.stderr.isTTY
  const started = new Map<string, number>()
  let lastLine = 0
  let lastPercent = -1
  return (e) => {
    const now = performance.now()
    if (!started.has(e.stage)) started.set(e.stage, now)
    const fraction = e.total > 0 ? e.done / e.total : 1
    const elapsed = (now - (started.get(e.stage) as number)) / 1000
    const eta = fraction > 0 && fraction < 1 ? ` ETA ${formatSeconds((elapsed / fraction) * (1 - fraction))}` : ''
    const width = 24
    const bar = '#'.repeat(Math.round(fraction * width)).padEnd(width, '.')
    const line = `[${e.stage}] [${bar}] ${e.done}/${e.total} ${e.detail}${eta}`
    const percent = Math.floor(fraction * 50)
    if (tty) {
      process.stderr.write(`\r\x1b[2K${line}${e.done >= e.total ? '\n' : ''}`)
    } else if (percent !== lastPercent || now - lastLine > 30_000 || e.done >= e.total) {
      process.stderr.write(line + '\n')
      lastPercent = percent
      lastLine = now
    }
  }
}

function formatSeconds(s: number): string {
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`
}

const threads = Number(values.threads)
const onProgress = progressPrinter()
const teacher = loadTeacher(teacherFile, tokenizerFile)
console.error(`genesis: teacher ${teacherFile} (sha256 ${teacher.sha256.slice(0, 16)}…), recipe ${GENESIS_RECIPE.network}`)
const corpusStarted = performance.now()
const corpus = await corpusStage(teacher, GENESIS_RECIPE, threads, values.cache, onProgress)
const corpusSeconds = corpus.cached ? null : Math.round((performance.now() - corpusStarted) / 1000)
console.error(`genesis: corpus ${corpus.corpus.train.length} training + ${corpus.corpus.validation.length} validation stories, ${corpus.corpus.tokens} tokens, ${corpus.corpus.dropped} dropped`)
const student = await studentStage(teacher, GENESIS_RECIPE, corpus, values.cache, onProgress)
console.error(`genesis: student trained, ${student.history.length} steps in ${formatSeconds(student.seconds)}`)
const tinystoriesFile = join(dirname(teacherFile), 'tinystories_val_slice.txt')
const tinystories = existsSync(tinystoriesFile) ? readFileSync(tinystoriesFile, 'utf8') : null
if (tinystories === null) console.error(`genesis: ${tinystoriesFile} not found; the record will have no TinyStories losses`)
const manifest = await writeStage(teacher, GENESIS_RECIPE, corpus.corpus, student, { outDir: values.out, tinystories, corpusSeconds, root: ROOT }, onProgress)
const e = manifest.summary.evaluation
const line = (name: string, p: { student_chain: number; teacher: number; tokens: number }): string => `  ${name}: student ${p.student_chain.toFixed(3)}, teacher ${p.teacher.toFixed(3)} nats/token over ${p.tokens} tokens`
console.error(`genesis: written to ${values.out} (record ${manifest.record.cid})`)
console.error(line('held-out generated pool', e.heldout))
if (e.tinystories !== null) console.error(line('TinyStories validation slice', e.tinystories))
console.error(`  least-used expert: ${e.min_usage_vs_uniform.toFixed(3)} x its uniform share`)
