/**
 * `npm start`: build the site if it is stale, create the devnet on first run, then serve it all.
 *
 * Environment: `PORT` (default 8080), `HOST` (127.0.0.1), `BLYAN_DATA` (data directory, default
 * `.blyan/`), and for the first run `BLYAN_MODEL` / `BLYAN_TOKENIZER` (default
 * `../shared/data/stories260K.bin` and `tok512.bin` when present, with the TinyStories slices beside
 * them as the training and validation datasets).
 *
 * @module
 */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureBuilt } from './build.ts'
import { describe, main, serve, stopOnSignals } from './cli.ts'
import { STORE_FILE } from './devnet.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SHARED = resolve(ROOT, '..', 'shared', 'data')

function fail(message: string): never {
  console.error(`blyan: ${message}`)
  process.exit(1)
}

function portFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') return 8080
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`PORT must be an integer from 0 to 65535, got "${value}"`)
  return port
}

const port = portFromEnv(process.env['PORT'])
const host = process.env['HOST'] || '127.0.0.1'
const dataDir = resolve(ROOT, process.env['BLYAN_DATA'] || '.blyan')

try {
  await ensureBuilt({ root: ROOT })
} catch (e) {
  fail(e instanceof Error ? e.message : String(e))
}

if (!existsSync(join(dataDir, STORE_FILE))) {
  const model = process.env['BLYAN_MODEL'] || join(SHARED, 'stories260K.bin')
  if (!existsSync(model)) {
    fail(`no devnet in ${dataDir} and no model to create one from (looked for ${model}).\n` +
      'Set BLYAN_MODEL to a llama2.c checkpoint (and BLYAN_TOKENIZER to its tokenizer) or a Hugging Face MoE directory, then run npm start again.')
  }
  const args = ['init', '--data', dataDir, '--model', model]
  const tokenizer = process.env['BLYAN_TOKENIZER'] || (process.env['BLYAN_MODEL'] ? '' : join(SHARED, 'tok512.bin'))
  if (tokenizer !== '' && existsSync(tokenizer)) args.push('--tokenizer', tokenizer)
  if (!process.env['BLYAN_MODEL']) {
    const train = join(SHARED, 'tinystories_train_slice.txt')
    const validation = join(SHARED, 'tinystories_val_slice.txt')
    if (existsSync(train)) args.push('--dataset', `tinystories-train=${train}`)
    if (existsSync(validation)) args.push('--dataset', `validation-tinystories=${validation}`)
    args.push('--license', 'CDLA-Sharing-1.0')
  }
  console.log(`first run: creating a devnet in ${dataDir} from ${model}`)
  const code = await main(args)
  if (code !== 0) process.exit(code)
}

try {
  stopOnSignals(await serve({ dataDir, port, host, siteRoot: join(ROOT, 'dist') }))
} catch (e) {
  fail(describe(e))
}
