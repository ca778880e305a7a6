/**
 * `npm run devnet`: a local network to watch: 4 validator nodes, each holding only its own key, and
 * 1 relay serving the site, on one machine, talking libp2p over loopback.
 *
 * First run: `blyan init --genesis genesis/ --validators 4` into `<data>/seed`, then one data
 * directory per node (`validator-0` .. `validator-3`, `relay`), each a copy of the seed's store,
 * each validator with its own key (the seed keeps none). Later runs start the same nodes again.
 *
 * Environment: `BLYAN_DEVNET` (data directory, default `.blyan-devnet/`), `PORT` (the relay's HTTP
 * port, default 8080; validators take the next four), `HOST` (127.0.0.1).
 *
 * @module
 */
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { main } from './cli.ts'
import { JOBS_FILE, KEYS_DIR, STORE_FILE, readValidatorKeys, writeValidatorKey } from './devnet.ts'
import { stopWithParent } from './lifetime.ts'
import { serve, type Served } from './serve.ts'
import { ensureBuilt } from './site-build.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const VALIDATORS = 4

/** Make the node directories from a fresh genesis devnet (first run only). */
async function create(data: string): Promise<void> {
  const seed = join(data, 'seed')
  const code = await main(['init', '--data', seed, '--genesis', join(ROOT, 'genesis'), '--validators', String(VALIDATORS)])
  if (code !== 0) throw new Error('could not create the seed devnet')
  const { keys } = readValidatorKeys(seed)
  const names = [...keys.map((_, i) => `validator-${i}`), 'relay']
  names.forEach((name, i) => {
    const dir = join(data, name)
    mkdirSync(dir, { recursive: true })
    for (const f of [STORE_FILE, JOBS_FILE]) if (existsSync(join(seed, f))) copyFileSync(join(seed, f), join(dir, f))
    const key = keys[i]
    if (key !== undefined) writeValidatorKey(dir, key)
  })
  // The seed keeps no keys: each validator's key lives in its own node's directory only.
  rmSync(join(seed, KEYS_DIR), { recursive: true, force: true })
}

async function run(): Promise<void> {
  const data = resolve(ROOT, process.env['BLYAN_DEVNET'] || '.blyan-devnet')
  const host = process.env['HOST'] || '127.0.0.1'
  const port = Number(process.env['PORT'] || 8080)
  await ensureBuilt({ root: ROOT })
  if (!existsSync(join(data, 'relay', STORE_FILE))) {
    console.log(`first run: creating a ${VALIDATORS}-validator network in ${data}`)
    await create(data)
  }
  const served: Served[] = []
  const quiet = (name: string) => (line: string) => { if (!line.startsWith('checking store')) console.log(`[${name}] ${line}`) }
  for (let i = 0; i < VALIDATORS; i++) {
    const name = `validator-${i}`
    served.push(await serve({
      dataDir: join(data, name), port: port + 1 + i, host, log: quiet(name),
      p2p: { listen: [`/ip4/${host}/tcp/0`], peers: served.map((s) => s.network?.multiaddrs()[0] as string) }
    }))
  }
  const relay = await serve({
    dataDir: join(data, 'relay'), port, host, siteRoot: join(ROOT, 'dist'), log: quiet('relay'),
    p2p: { listen: [`/ip4/${host}/tcp/0`], peers: served.map((s) => s.network?.multiaddrs()[0] as string) }
  })
  served.push(relay)
  console.log(`\nBlyan devnet: ${VALIDATORS} validators and a relay. Open ${relay.url} (the Network view shows the peers).`)
  for (const s of served) console.log(`  ${s.url}  ${s.network?.multiaddrs()[0] ?? ''}`)
  // Ctrl+C, SIGTERM, or npm (its parent) gone: every node closes (relay/lifetime.ts).
  stopWithParent(async () => void (await Promise.allSettled(served.map((s) => s.close()))))
}

run().catch((e: unknown) => {
  console.error(`devnet: ${e instanceof Error ? e.message : String(e)}`)
  process.exit(1)
})
