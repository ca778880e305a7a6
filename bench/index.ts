/**
 * Benchmarks: runs every `bench/*.bench.ts` (each exports `run()`), one after another, in this
 * process. Benchmarks print ratios against a baseline measured in the same run, never thresholds:
 * these machines are shared and noisy. `BENCH_FILTER=tiles npm run bench` runs a subset.
 */
import { readdirSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { join } from 'node:path'

const dir = fileURLToPath(new URL('.', import.meta.url))
const filter = process.env['BENCH_FILTER']
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts') && (filter === undefined || f.includes(filter))).sort()
for (const file of files) {
  console.log(`\n## ${file.replace('.bench.ts', '')}`)
  const mod = (await import(pathToFileURL(join(dir, file)).href)) as { run: () => Promise<void> }
  await mod.run()
}
