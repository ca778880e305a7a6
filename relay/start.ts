/**
 * `npm start`: build the site if it is stale, create the devnet on first run, then serve it all.
 *
 * Environment: `PORT` (default 8080), `HOST` (127.0.0.1), `BLYAN_DATA` (data directory, default
 * `.blyan/`), and for the first run `BLYAN_MODEL` / `BLYAN_TOKENIZER` (a model to import instead;
 * by default the devnet is the project's own genesis in `genesis/`: the MoE `npm run genesis`
 * trained, its generated training and validation pools and its training record, all offline).
 *
 * @module
 */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureBuilt } from './site-build.ts'
import { describe, main } from './cli.ts'
import { serve, stopOnSignals } from './serve.ts'
import { STORE_FILE } from './devnet.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const GENESIS_DIR = join(ROOT, 'genesis')

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
  const model = process.env['BLYAN_MODEL']
  const args = ['init', '--data', dataDir]
  if (model === undefined || model === '') {
    // the project's own genesis: a MoE it trained, with the datasets it generated (npm run genesis)
    args.push('--genesis', GENESIS_DIR)
    console.log(`first run: creating a devnet in ${dataDir} from the genesis in ${GENESIS_DIR}`)
  } else {
    if (!existsSync(model)) fail(`BLYAN_MODEL=${model}: no such file or directory (a llama2.c checkpoint, with BLYAN_TOKENIZER, or a Hugging Face MoE directory)`)
    args.push('--model', model)
    const tokenizer = process.env['BLYAN_TOKENIZER']
    if (tokenizer !== undefined && tokenizer !== '') args.push('--tokenizer', tokenizer)
    console.log(`first run: creating a devnet in ${dataDir} from ${model}`)
  }
  const code = await main(args)
  if (code !== 0) process.exit(code)
}

try {
  const served = await serve({ dataDir, port, host, siteRoot: join(ROOT, 'dist') })
  console.log(`serving the site (dist/), the API (/api), the IPFS gateway (/ipfs) and the /ws feed; Ctrl+C stops it`)
  // Also stops when npm (the parent: the start script execs node) is gone.
  stopOnSignals(served)
} catch (e) {
  fail(describe(e))
}
