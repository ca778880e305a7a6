/**
 * Test entry: imports every `*.test.ts` under test/ into one node:test process.
 * One process is much faster than a process per file (see NOTES-stack), and discovery means a new
 * test file can never be forgotten. `TEST_FILTER=chain npm test` runs only files whose path matches.
 */
import { readdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('.', import.meta.url))
const filter = process.env['TEST_FILTER']

function* testFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory() && entry.name !== 'fixtures') yield* testFiles(path)
    else if (entry.isFile() && entry.name.endsWith('.test.ts')) yield path
  }
}

const files = [...testFiles(root)].sort().filter((f) => filter === undefined || relative(root, f).includes(filter))
if (files.length === 0) {
  console.error(`no test files matched${filter === undefined ? '' : ` TEST_FILTER=${filter}`}`)
  process.exit(1)
}
for (const file of files) await import(pathToFileURL(file).href)
