/**
 * `blyan`: the full node's command line.
 *
 *   blyan init --data DIR --model FILE [--tokenizer FILE] [--experts N] [--top-k K] [--dtype int8|f32]
 *   blyan init --data DIR --genesis DIR [--validators N] [--difficulty D]
 *              [--dataset NAME=FILE ...] [--license SPDX] [--validators K] [--difficulty BITS]
 *   blyan init --data DIR --join MULTIADDR|URL [--anchor CID] [--validator-key FILE]
 *   blyan start --data DIR [--port P] [--host H] [--site DIR] [--listen MULTIADDR]... [--peer MULTIADDR]...
 *   blyan relay --data DIR --peer MULTIADDR|URL... [--port P] [--host H] [--site DIR] [--listen MULTIADDR]...
 *   blyan verify --data DIR
 *   blyan export --data DIR --car FILE
 *   blyan import-car --data DIR --car FILE
 *   blyan generate --data DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--seed S] [--backend cpu|webgpu|ort] [--json]
 *   blyan eval --data DIR --text FILE [--max-tokens N] [--backend B] [--json]
 *   blyan mine --relay URL [--key FILE] [--jobs N] [--backend cpu|webgpu] [--anchor CID] [--json]
 *
 * Every failure is one line on stderr naming the argument, the file or the damaged item, and a
 * non-zero exit: 2 for usage errors, 1 for everything else.
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { CID } from 'multiformats/cid'
import { isRuleError } from '../src/errors.ts'
import { ModelFormatError } from '../src/model/errors.ts'
import { JOBS_FILE, STORE_FILE, initDevnet, openExistingStore, readKeyFile, readValidatorKeys, storePath, writeValidatorKey, type DatasetFile } from './devnet.ts'
import { joinNetwork } from './p2p/join.ts'
import { isValidator, type MetaDocument } from '../src/chain/meta.ts'
import { publicKeyOf } from '../src/chain/keys.ts'
import { datasetLines, decideDataset, listDatasets, proposeDataset } from './datasets.ts'
import { auditVersion } from './audit.ts'
import { devnetParts, readGenesis } from './genesis/genesis.ts'
import { importModel } from './import.ts'
import { exportCar, importCar, verifyStore } from './node/archive.ts'
import { openChainStore } from './node/chain-store.ts'
import { FullNode } from './node/full-node.ts'
import { StoreDamagedError } from './node/interface.ts'
import { BACKENDS, evaluateText, generate, openRun, type BackendName } from './node/run.ts'
import { checkJobSettings } from './pol/jobs.ts'
import { DEFAULT_KEY_FILE, attemptsFileOf, loadOrCreateKey, minerKeyLine, runMiner, webgpuTrainer } from './pol/mine.ts'
import { PolStoreError } from './pol/pol-store.ts'
import { progressLine } from './progress.ts'
import { VERSION, serve, stopOnSignals } from './serve.ts'

/** A problem with the command line itself: exit code 2, with the command's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

const USAGE: Record<string, string> = {
  init: `blyan init --data DIR (--model FILE | --genesis DIR) [options]
  Create a devnet in DIR: validator keys, the genesis (architecture, tokenizer, PoW/PoL/reward
  parameters, validator set), the model's parameter blocks and dataset blocks.
    --genesis DIR         a genesis directory (npm run genesis; the project's own is genesis/): its
                          model, tokenizer, datasets and training record, stored byte for byte
    --model FILE          llama2.c checkpoint (.bin) or a Hugging Face MoE directory (config.json + *.safetensors)
    --tokenizer FILE      llama2.c tokenizer (tok*.bin); HF directories bring tokenizer.json
    --experts N           experts per layer when splitting a dense llama2.c FFN (default 4)
    --top-k K             experts used per token (default: all of them, which equals the dense model)
    --dtype int8|f32      weight matrices as int8 with per-channel scales (default) or float32
    --dataset NAME=FILE   a text dataset (blank-line separated); NAME "validation..." is the PoL
                          validation pool, anything else a training shard; repeatable
    --license SPDX        licence of the datasets (default NOASSERTION)
    --validators K        number of validator keys (default 1)
    --difficulty BITS     PoW difficulty of every chain (default 8)
       blyan init --data DIR --join MULTIADDR|URL [--anchor CID] [--validator-key FILE]
  A node of an existing network: its genesis and history from a peer (a multiaddr with /p2p/ID, or
  the URL of a node whose /api/status lists its multiaddrs), judged block by block.
    --anchor CID          the genesis to trust: refuse a peer on another network
    --validator-key FILE  this node's own validator key (a secp256k1 key file), if it is a validator`,
  start: `blyan start --data DIR [--port P] [--host H] [--site DIR]
  Run the full node and relay: API, IPFS trustless gateway, /ws feed, and the built site.
    --port P              default 8080 (0 picks a free port)
    --host H              default 127.0.0.1
    --site DIR            built site to serve (default: dist/ of this project, when built)
    --listen MULTIADDR    join the peer network, listening here (e.g. /ip4/0.0.0.0/tcp/4001); repeatable
    --peer MULTIADDR      a peer to dial and keep dialling (/ip4/HOST/tcp/PORT/p2p/ID); repeatable.
                          Either puts the node on the peer network (a node made by init --join always is)`,
  relay: `blyan relay --data DIR --peer MULTIADDR|URL... [--port P] [--host H] [--site DIR] [--listen MULTIADDR]...
  A relay: a node without validator keys that follows the network (blocks by gossip and sync) and
  serves browsers as blyan start does. An empty --data joins through the first --peer first.`,
  verify: `blyan verify --data DIR
  Re-verify the whole store from genesis: hashes, completeness, then every block replayed through
  the validation rules. Prints a summary; exits 1 on the first failure.`,
  export: `blyan export --data DIR --car FILE
  Write every accepted block and everything it brought, then the finality checkpoints, to one CAR
  (roots: headers in acceptance order, then checkpoints in sequence).`,
  'import-car': `blyan import-car --data DIR --car FILE
  Submit every block of an export CAR to the store in DIR (created if missing), validating each.`,
  generate: `blyan generate --data DIR --prompt TEXT [options]
  Generate text with the devnet's model; weights are read and verified block by block, and only the
  experts the router picks are loaded.
    --max-tokens N        tokens to generate (default 128)
    --temperature T       0 (default) is greedy
    --top-p P             nucleus sampling (default 0.9; 1 disables)
    --seed S              sampler seed (default 42)
    --backend B           cpu (reference), webgpu (our WGSL kernels; Dawn in Node) or ort (ONNX Runtime Web, wasm); default cpu
    --max-experts N       most experts resident at once (default: all)
    --json                one JSON object: text, tokens, experts (blocks used), stats`,
  eval: `blyan eval --data DIR --text FILE [--max-tokens N] [--backend B] [--json]
  Mean next-token cross-entropy (nats) of FILE, tokenized as one sequence from BOS, over its first N
  tokens (default 1024), in windows of the model's max_seq_len.`,
  dataset: `blyan dataset propose FILE --relay URL --name NAME --split train|validation [--license SPDX] [--description TEXT] [--key FILE]
       blyan dataset list --relay URL [--json]
       blyan dataset approve|reject|retire CID --relay URL --data DIR [--tier gold|silver|experimental] [--reason TEXT]...
  propose: offer a text file (UTF-8, documents separated by blank lines) as a chain D dataset. Any key
  may; it is used for nothing until validators approve it. The node's validators run the quality
  gate on it (a report of size, format, duplicates, contamination, PII, tokenizer coverage and model
  loss); a training pool that passes is approved (silver), one that fails is rejected with reasons,
  a validation pool that passes waits for validators to approve it by hand.
  list: every proposal, its stage, tier and gate result.
  approve, reject, retire: a decision signed by the validator keys in DIR/keys (a quorum), linking the
  relay's gate report on the dataset. Approve names a tier (default gold: validation and training;
  silver: training only; experimental: recorded, not used); reject and retire need --reason.`,
  audit: `blyan audit CID --relay URL [--json]
  Replay the training record of a certified version (its certificate links it): the model, training
  pool, windows, seed and settings it names, on the CPU reference, step by step. Exits 0 when the
  version is what that training gives (bit for bit for a CPU-trained record, within tolerance for a
  WebGPU one), 1 with the first step where the replay differs.`,
  mine: `blyan mine --relay URL [--key FILE] [--jobs N] [--backend cpu|webgpu] [--anchor CID] [--json]
  Donate compute: sync and verify the relay's chain headers (every rule, as the site does), lease a
  job whose base is the current version there, fetch and verify the weights and the training shard,
  train the job's expert, check the gain on the public validation pool, then submit the new version
  (signed, PoW solved) and wait for the validators' verdict and reward.
    --key FILE            the miner's secp256k1 key (created if missing; default ${DEFAULT_KEY_FILE})
    --jobs N              jobs to do one after another (default 1)
    --backend B           cpu (the reference trainer, default) or webgpu
    --anchor CID          the chain A genesis to trust (default: the relay's, on first use)
    --json                one JSON object per job instead of progress lines`
}

const HELP = `blyan ${VERSION}: the Blyan full node

Usage: blyan <command> [options]   (blyan <command> --help for details)

${Object.values(USAGE).map((u) => '  ' + (u.split('\n')[0] ?? '')).join('\n')}
`

type Values = Record<string, string | boolean | string[] | undefined>

function parse(command: string, args: string[], options: ParseArgsConfig['options']): Values {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean' } }, allowPositionals: false, strict: true }).values as Values
  } catch (e) {
    throw new UsageError(`${command}: ${e instanceof Error ? e.message.replace(/\. To specify.*$/s, '') : String(e)}`)
  }
}

function required(command: string, values: Values, name: string): string {
  const v = values[name]
  if (typeof v !== 'string' || v === '') throw new UsageError(`${command}: --${name} is required`)
  return v
}

function positiveInt(command: string, values: Values, name: string, fallback: number | undefined, max = 1 << 20): number | undefined {
  const v = values[name]
  if (v === undefined) return fallback
  const n = Number(v)
  if (typeof v !== 'string' || !Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${command}: --${name} must be an integer from 1 to ${max}, got "${String(v)}"`)
  return n
}

function readFile(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path))
  } catch (e) {
    throw new Error(`${path}: cannot read ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
}

/** `--dataset NAME=FILE` to a dataset: NAME starting with "validation" is the validation pool. */
export function parseDataset(spec: string, license: string): DatasetFile {
  const eq = spec.indexOf('=')
  const name = eq < 0 ? '' : spec.slice(0, eq)
  if (eq < 1 || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) throw new UsageError(`init: --dataset expects NAME=FILE with NAME of [a-z0-9._-], got "${spec}"`)
  const path = spec.slice(eq + 1)
  return {
    name,
    split: name.startsWith('validation') ? 'validation' : 'train',
    bytes: readFile(path, 'the dataset'),
    license,
    description: `${basename(path)}, imported by blyan init`
  }
}

async function init(args: string[]): Promise<void> {
  const v = parse('init', args, {
    data: { type: 'string' }, model: { type: 'string' }, genesis: { type: 'string' }, tokenizer: { type: 'string' }, experts: { type: 'string' },
    'top-k': { type: 'string' }, dtype: { type: 'string' }, dataset: { type: 'string', multiple: true },
    license: { type: 'string' }, validators: { type: 'string' }, difficulty: { type: 'string' },
    join: { type: 'string' }, anchor: { type: 'string' }, 'validator-key': { type: 'string' }
  })
  if (v['help'] === true) return void console.log(USAGE['init'])
  const dataDir = resolve(required('init', v, 'data'))
  if (typeof v['join'] === 'string') return initJoin(dataDir, v['join'], v)
  if (typeof v['genesis'] === 'string') return initFromGenesis(dataDir, v['genesis'], v)
  const modelPath = required('init', v, 'model')
  const dtype = (v['dtype'] as string | undefined) ?? 'int8'
  if (dtype !== 'int8' && dtype !== 'f32') throw new UsageError(`init: --dtype must be int8 or f32, got "${dtype}"`)
  const experts = positiveInt('init', v, 'experts', undefined, 1024)
  const topK = positiveInt('init', v, 'top-k', undefined, 1024)
  const validators = positiveInt('init', v, 'validators', 1, 64)
  const difficulty = Number(v['difficulty'] ?? 8)
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > 32) throw new UsageError('init: --difficulty must be an integer from 0 to 32')
  const license = (v['license'] as string | undefined) ?? 'NOASSERTION'
  const datasets = ((v['dataset'] as string[] | undefined) ?? []).map((s) => parseDataset(s, license))
  if (existsSync(storePath(dataDir))) throw new Error(`${dataDir} already holds a devnet (${STORE_FILE}); choose another --data`)

  const model = await importModel(modelPath, {
    ...(experts === undefined ? {} : { experts }),
    ...(topK === undefined ? {} : { topK }),
    ...(typeof v['tokenizer'] === 'string' ? { tokenizer: v['tokenizer'] } : {})
  })
  mkdirSync(dataDir, { recursive: true })
  const store = openChainStore(storePath(dataDir))
  try {
    const node = new FullNode(store)
    const show = progressLine('init')
    const result = await initDevnet({
      node, dataDir, model, dtype, validators: validators ?? 1, datasets, difficulty,
      onProgress: (e) => show(e.done, e.total, e.what)
    })
    const a = model.architecture
    console.log(`devnet in ${dataDir}: ${result.blocks} blocks; genesis ${result.genesis.cid}`)
    console.log(`model: ${model.source}, ${a.n_layers} layers x ${a.n_experts} experts (top-${a.top_k}), dim ${a.dim}, vocab ${a.vocab_size}, ${dtype} weights`)
    console.log(`validator keys: ${result.validatorKeys.join(', ')}`)
  } finally {
    store.close()
  }
}

/** `blyan init --genesis DIR`: the devnet of a genesis directory (npm run genesis): its model, tokenizer, datasets and record. */
async function initFromGenesis(dataDir: string, dir: string, v: Values): Promise<void> {
  for (const option of ['model', 'tokenizer', 'experts', 'top-k', 'dtype', 'dataset', 'license']) {
    if (v[option] !== undefined) throw new UsageError(`init: --${option} does not go with --genesis (the genesis directory holds the model and its datasets)`)
  }
  const validators = positiveInt('init', v, 'validators', 1, 64)
  const difficulty = Number(v['difficulty'] ?? 8)
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > 32) throw new UsageError('init: --difficulty must be an integer from 0 to 32')
  if (existsSync(storePath(dataDir))) throw new Error(`${dataDir} already holds a devnet (${STORE_FILE}); choose another --data`)
  const genesis = await readGenesis(resolve(dir))
  const { model, datasets, pol, jobs } = devnetParts(genesis)
  mkdirSync(dataDir, { recursive: true })
  const store = openChainStore(storePath(dataDir))
  try {
    const show = progressLine('init')
    const result = await initDevnet({
      node: new FullNode(store), dataDir, model, validators: validators ?? 1, datasets, difficulty, network: genesis.manifest.network, pol,
      onProgress: (e) => show(e.done, e.total, e.what)
    })
    writeFileSync(join(dataDir, JOBS_FILE), JSON.stringify(checkJobSettings(jobs, 'genesis manifest: jobs'), null, 2) + '\n')
    const a = model.architecture
    const e = genesis.record.evaluation
    console.log(`devnet in ${dataDir}: ${result.blocks} blocks from the genesis in ${dir}; genesis ${result.genesis.cid}`)
    console.log(`model: ${a.n_layers} layers x ${a.n_experts} experts (top-${a.top_k}), dim ${a.dim}, vocab ${a.vocab_size}; held-out loss ${e.heldout.student_chain.toFixed(3)} (teacher ${e.heldout.teacher.toFixed(3)})`)
    console.log(`validator keys: ${result.validatorKeys.join(', ')}`)
  } finally {
    store.close()
  }
}

/** `blyan init --join`: a node of an existing network, its history synced from a peer. */
async function initJoin(dataDir: string, target: string, v: Values): Promise<void> {
  for (const option of ['model', 'genesis', 'tokenizer', 'experts', 'top-k', 'dtype', 'dataset', 'license', 'validators', 'difficulty']) {
    if (v[option] !== undefined) throw new UsageError(`init: --${option} does not go with --join (the network's genesis decides)`)
  }
  const anchor = typeof v['anchor'] === 'string' ? parseAnchor('init', v['anchor']) : undefined
  if (existsSync(storePath(dataDir))) throw new Error(`${dataDir} already holds a devnet (${STORE_FILE}); choose another --data`)
  const keyFile = v['validator-key']
  const key = typeof keyFile === 'string' ? readKeyFile(resolve(keyFile)) : undefined
  mkdirSync(dataDir, { recursive: true })
  const store = openChainStore(storePath(dataDir))
  try {
    const r = await joinNetwork({ node: new FullNode(store), dataDir, target, ...(anchor === undefined ? {} : { anchor }), onProgress: (line) => console.log(line) })
    if (key !== undefined) {
      const meta = store.head('A')?.document as MetaDocument
      if (!isValidator(meta, publicKeyOf(key))) throw new Error(`${String(keyFile)} is not a validator of this network`)
      writeValidatorKey(dataDir, key)
    }
    console.log(`joined the network of genesis ${r.genesis} through ${r.peer}: ${store.size} blocks, ${r.checkpoints} checkpoints in ${(r.ms / 1000).toFixed(1)} s (${r.bitswap.blocks} payload blocks, ${(r.bitswap.bytes / 2 ** 20).toFixed(1)} MiB, by bitswap)${key === undefined ? '' : '; this node holds its validator key'}`)
  } catch (e) {
    store.close()
    rmSync(storePath(dataDir), { force: true })
    throw e
  }
  store.close()
}

function parseAnchor(command: string, text: string): CID {
  try {
    return CID.parse(text)
  } catch {
    throw new UsageError(`${command}: --anchor must be a CID, got "${text}"`)
  }
}

const NETWORK_OPTIONS = { listen: { type: 'string', multiple: true }, peer: { type: 'string', multiple: true } } as const

async function start(args: string[]): Promise<void> {
  const v = parse('start', args, { data: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, site: { type: 'string' }, ...NETWORK_OPTIONS })
  if (v['help'] === true) return void console.log(USAGE['start'])
  await startNode('start', v)
}

/** `blyan relay`: a node without validator keys on the peer network; an empty data directory joins first. */
async function relayCommand(args: string[]): Promise<void> {
  const v = parse('relay', args, { data: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, site: { type: 'string' }, ...NETWORK_OPTIONS, anchor: { type: 'string' } })
  if (v['help'] === true) return void console.log(USAGE['relay'])
  const dataDir = resolve(required('relay', v, 'data'))
  const peers = (v['peer'] as string[] | undefined) ?? []
  if (peers.length === 0) throw new UsageError('relay: give at least one --peer')
  if (readValidatorKeys(dataDir).keys.length > 0) throw new Error(`${join(dataDir, 'keys')} holds validator keys: a relay holds none (run the validator with blyan start)`)
  if (!existsSync(storePath(dataDir))) {
    await initJoin(dataDir, peers[0] as string, typeof v['anchor'] === 'string' ? { anchor: v['anchor'] } : {})
  }
  // A relay URL joined through is not a multiaddr to dial: start with the peers init --join remembered.
  await startNode('relay', { ...v, peer: peers.filter((p) => !/^https?:\/\//.test(p)), listen: (v['listen'] as string[] | undefined) ?? ['/ip4/127.0.0.1/tcp/0'] })
}

async function startNode(command: string, v: Values): Promise<void> {
  const dataDir = resolve(required(command, v, 'data'))
  const port = v['port'] === undefined ? 8080 : Number(v['port'])
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`${command}: --port must be an integer from 0 to 65535, got "${String(v['port'])}"`)
  const defaultSite = new URL('../dist', import.meta.url).pathname
  const site = typeof v['site'] === 'string' ? resolve(v['site']) : existsSync(join(defaultSite, 'index.html')) ? defaultSite : undefined
  if (site !== undefined && !statSync(site, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${site}: --site is not a directory`)
  const listen = v['listen'] as string[] | undefined
  const peers = v['peer'] as string[] | undefined
  const p2p = listen === undefined && peers === undefined ? undefined : { ...(listen === undefined ? {} : { listen }), peers: peers ?? [] }
  const served = await serve({ dataDir, port, host: (v['host'] as string | undefined) ?? '127.0.0.1', ...(site === undefined ? {} : { siteRoot: site }), ...(p2p === undefined ? {} : { p2p }) })
  if (site === undefined) console.log('no built site found (run npm run build); serving API, gateway and feed only')
  stopOnSignals(served)
}

async function verify(args: string[]): Promise<void> {
  const v = parse('verify', args, { data: { type: 'string' } })
  if (v['help'] === true) return void console.log(USAGE['verify'])
  const store = openExistingStore(resolve(required('verify', v, 'data')))
  try {
    const started = performance.now()
    const report = await verifyStore(store, { onProgress: progressLine('verify') })
    const secs = ((performance.now() - started) / 1000).toFixed(1)
    console.log(`verified ${report.blocks} blocks from genesis in ${secs} s: A ${report.byChain['A']}, B ${report.byChain['B']}, C ${report.byChain['C']}, D ${report.byChain['D']}; ${report.experts} parameter groups in the param index`)
    for (const [chain, head] of Object.entries(report.heads)) console.log(`  head ${chain}: ${head ?? '(empty)'}`)
    console.log(`  finality: ${report.checkpoints === 0 ? 'no checkpoint' : `${report.checkpoints} checkpoints, the last number ${report.checkpoints - 1}`}`)
  } finally {
    store.close()
  }
}

async function exportCommand(args: string[]): Promise<void> {
  const v = parse('export', args, { data: { type: 'string' }, car: { type: 'string' } })
  if (v['help'] === true) return void console.log(USAGE['export'])
  const carPath = required('export', v, 'car')
  const store = openExistingStore(resolve(required('export', v, 'data')))
  try {
    const r = await exportCar(store, carPath)
    console.log(`exported ${r.blocks} blocks (${r.ipldBlocks} IPLD blocks) and ${r.checkpoints} checkpoints to ${carPath}`)
  } finally {
    store.close()
  }
}

async function importCommand(args: string[]): Promise<void> {
  const v = parse('import-car', args, { data: { type: 'string' }, car: { type: 'string' } })
  if (v['help'] === true) return void console.log(USAGE['import-car'])
  const dataDir = resolve(required('import-car', v, 'data'))
  const carPath = required('import-car', v, 'car')
  const bytes = readFile(carPath, 'the CAR')
  mkdirSync(dataDir, { recursive: true })
  const store = openChainStore(storePath(dataDir))
  try {
    const before = store.size
    const r = await importCar(new FullNode(store), bytes, progressLine('import'))
    console.log(`imported ${carPath}: ${r.accepted} blocks judged, ${store.size - before} new`)
  } finally {
    store.close()
  }
}

function backendOf(command: string, values: Values): BackendName {
  const b = (values['backend'] as string | undefined) ?? 'cpu'
  if (!(BACKENDS as readonly string[]).includes(b)) throw new UsageError(`${command}: --backend must be one of ${BACKENDS.join(', ')}, got "${b}"`)
  return b as BackendName
}

function numberOption(command: string, values: Values, name: string, fallback: number, min: number, max: number): number {
  const v = values[name]
  if (v === undefined) return fallback
  const n = Number(v)
  if (typeof v !== 'string' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`${command}: --${name} must be a number from ${min} to ${max}, got "${String(v)}"`)
  return n
}

async function generateCommand(args: string[]): Promise<void> {
  const v = parse('generate', args, {
    data: { type: 'string' }, prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' },
    'top-p': { type: 'string' }, seed: { type: 'string' }, backend: { type: 'string' }, 'max-experts': { type: 'string' }, json: { type: 'boolean' }
  })
  if (v['help'] === true) return void console.log(USAGE['generate'])
  const prompt = typeof v['prompt'] === 'string' ? v['prompt'] : required('generate', v, 'prompt')
  const backend = backendOf('generate', v)
  const maxTokens = positiveInt('generate', v, 'max-tokens', 128, 1 << 20) as number
  const temperature = numberOption('generate', v, 'temperature', 0, 0, 100)
  const topP = numberOption('generate', v, 'top-p', 0.9, 0, 1)
  const seed = numberOption('generate', v, 'seed', 42, 0, Number.MAX_SAFE_INTEGER)
  const maxExperts = positiveInt('generate', v, 'max-experts', undefined, 1 << 20)
  const json = v['json'] === true
  const store = openExistingStore(resolve(required('generate', v, 'data')))
  try {
    const run = await openRun(store, backend, maxExperts === undefined ? {} : { maxResidentExperts: maxExperts })
    const result = await generate(run, backend, { prompt, maxTokens, temperature, topP, seed, ...(json ? {} : { onText: (t: string) => void process.stdout.write(t) }) })
    run.engine.destroy()
    if (json) console.log(JSON.stringify(result))
    else process.stdout.write('\n')
  } finally {
    store.close()
  }
}

async function evalCommand(args: string[]): Promise<void> {
  const v = parse('eval', args, { data: { type: 'string' }, text: { type: 'string' }, 'max-tokens': { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' } })
  if (v['help'] === true) return void console.log(USAGE['eval'])
  const textPath = required('eval', v, 'text')
  const backend = backendOf('eval', v)
  const maxTokens = positiveInt('eval', v, 'max-tokens', 1024, 1 << 24) as number
  const text = new TextDecoder().decode(readFile(textPath, 'the text'))
  const store = openExistingStore(resolve(required('eval', v, 'data')))
  try {
    const run = await openRun(store, backend)
    const started = performance.now()
    const r = await evaluateText(run, text, maxTokens)
    run.engine.destroy()
    const seconds = (performance.now() - started) / 1000
    if (v['json'] === true) console.log(JSON.stringify({ loss: r.loss, predicted: r.predicted, tokens: r.tokens, backend, seconds }))
    else console.log(`mean cross-entropy ${r.loss.toFixed(6)} nats over ${r.predicted} predictions (${r.tokens} tokens, ${backend}, ${seconds.toFixed(1)} s)`)
  } finally {
    store.close()
  }
}

async function mineCommand(args: string[]): Promise<void> {
  const v = parse('mine', args, { relay: { type: 'string' }, key: { type: 'string' }, jobs: { type: 'string' }, backend: { type: 'string' }, anchor: { type: 'string' }, json: { type: 'boolean' } })
  if (v['help'] === true) return void console.log(USAGE['mine'])
  const relay = required('mine', v, 'relay')
  if (!/^https?:\/\//.test(relay)) throw new UsageError(`mine: --relay must be an http(s) URL, got "${relay}"`)
  const jobs = positiveInt('mine', v, 'jobs', 1, 1000) as number
  const anchor = v['anchor'] as string | undefined
  if (anchor !== undefined) {
    try {
      CID.parse(anchor)
    } catch {
      throw new UsageError(`mine: --anchor must be a CID, got "${anchor}"`)
    }
  }
  const backend = (v['backend'] as string | undefined) ?? 'cpu'
  if (backend !== 'cpu' && backend !== 'webgpu') throw new UsageError(`mine: --backend must be cpu or webgpu, got "${backend}"`)
  const gpu = backend === 'webgpu' ? await webgpuTrainer() : undefined
  const train = gpu?.train
  const keyPath = resolve((v['key'] as string | undefined) ?? DEFAULT_KEY_FILE)
  const { key, created } = loadOrCreateKey(keyPath)
  const json = v['json'] === true
  if (!json) console.log(minerKeyLine(key, keyPath, created))
  if (!json) console.log(gpu === undefined ? 'training on the CPU reference' : `training on WebGPU: ${gpu.device}`)
  const controller = new AbortController()
  process.once('SIGINT', () => controller.abort(new Error('interrupted')))
  await runMiner({ relay, key, jobs, json, attemptsFile: attemptsFileOf(keyPath), print: (line) => line !== '' && console.log(line), signal: controller.signal, ...(train === undefined ? {} : { train }), ...(anchor === undefined ? {} : { anchor }) })
}

async function datasetCommand(args: string[]): Promise<void> {
  const [action, ...more] = args
  // `propose FILE`, `approve CID`, ...: the one positional comes first.
  const target = action === 'list' || more[0]?.startsWith('-') === true ? undefined : more[0]
  const rest = target === undefined ? more : more.slice(1)
  const v = parse('dataset', rest, {
    relay: { type: 'string' }, key: { type: 'string' }, name: { type: 'string' }, split: { type: 'string' }, license: { type: 'string' },
    description: { type: 'string' }, data: { type: 'string' }, tier: { type: 'string' }, reason: { type: 'string', multiple: true }, json: { type: 'boolean' }
  })
  if (v['help'] === true || action === undefined || action === '--help') return void console.log(USAGE['dataset'])
  const relay = required('dataset', v, 'relay')
  if (!/^https?:\/\//.test(relay)) throw new UsageError(`dataset: --relay must be an http(s) URL, got "${relay}"`)
  const print = (line: string): void => console.log(line)
  if (action === 'list') {
    const list = await listDatasets(relay)
    if (v['json'] === true) console.log(JSON.stringify(list))
    else for (const line of datasetLines(list)) console.log(line)
    if (v['json'] !== true && list.length === 0) console.log('no datasets on this relay\'s chain D')
    return
  }
  if (target === undefined) throw new UsageError(`dataset ${action}: name the ${action === 'propose' ? 'FILE' : 'dataset CID'}`)
  if (action === 'propose') {
    const split = required('dataset', v, 'split')
    if (split !== 'train' && split !== 'validation') throw new UsageError(`dataset: --split must be train or validation, got "${split}"`)
    const { key, created } = loadOrCreateKey(resolve((v['key'] as string | undefined) ?? DEFAULT_KEY_FILE))
    if (created) print(`created a key for you: ${(v['key'] as string | undefined) ?? DEFAULT_KEY_FILE}`)
    const info = await proposeDataset(relay, key, {
      name: required('dataset', v, 'name'), split, license: (v['license'] as string | undefined) ?? 'NOASSERTION',
      description: (v['description'] as string | undefined) ?? '', content: readFile(target, 'the dataset')
    }, print)
    if (info !== null) for (const line of datasetLines([info])) print(line)
    return
  }
  if (action !== 'approve' && action !== 'reject' && action !== 'retire') throw new UsageError(`dataset: unknown action "${action}" (propose, list, approve, reject, retire)`)
  const tier = v['tier'] as string | undefined
  if (tier !== undefined && (action !== 'approve' || !['gold', 'silver', 'experimental'].includes(tier))) throw new UsageError('dataset: --tier is gold, silver or experimental, and only for approve')
  const reasons = (v['reason'] as string[] | undefined) ?? []
  if (action !== 'approve' && reasons.length === 0) throw new UsageError(`dataset ${action}: give at least one --reason`)
  const { keys } = readValidatorKeys(resolve(required('dataset', v, 'data')))
  if (keys.length === 0) throw new Error(`${required('dataset', v, 'data')}: no validator keys (keys/validator-N.key)`)
  await decideDataset(relay, keys, { dataset: target, verdict: action, ...(tier === undefined ? {} : { tier: tier as 'gold' }), reasons }, print)
}

async function auditCommand(args: string[]): Promise<void> {
  const target = args[0]?.startsWith('-') === false ? args[0] : undefined
  const v = parse('audit', target === undefined ? args : args.slice(1), { relay: { type: 'string' }, json: { type: 'boolean' } })
  if (v['help'] === true) return void console.log(USAGE['audit'])
  if (target === undefined) throw new UsageError('audit: name the version\'s CID')
  const relay = required('audit', v, 'relay')
  const json = v['json'] === true
  const result = await auditVersion(relay, target, (line) => !json && console.log(line))
  if (json) console.log(JSON.stringify(result))
  else console.log(`${result.pass ? 'PASS' : 'FAIL'} (${result.mode}): ${result.detail}`)
  if (!result.pass) throw new AuditFailed(result.firstDifference === null ? result.detail : `the replay differs from step ${result.firstDifference}`)
}

/** An audit that ran and failed: exit 1 with its one line. */
class AuditFailed extends Error {
  override readonly name = 'AuditFailed'
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  audit: auditCommand,
  mine: mineCommand,
  dataset: datasetCommand,
  init, start, relay: relayCommand, verify, export: exportCommand, 'import-car': importCommand, generate: generateCommand, eval: evalCommand
}

/** Run the CLI; resolves to the exit code (the server of `start` keeps the process alive). */
export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP)
    return command === undefined ? 2 : 0
  }
  if (command === '--version') {
    console.log(VERSION)
    return 0
  }
  const run = COMMANDS[command]
  if (run === undefined) {
    console.error(`blyan: unknown command "${command}"\n\n${HELP}`)
    return 2
  }
  try {
    await run(args)
    return 0
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`blyan ${e.message}\n\n${USAGE[command] ?? ''}`)
      return 2
    }
    console.error(`blyan ${command}: ${describe(e)}`)
    return 1
  }
}

/** One line for any failure, naming what failed. */
export function describe(e: unknown): string {
  if (isRuleError(e)) return `rejected: ${e.message}`
  if (e instanceof StoreDamagedError || e instanceof ModelFormatError || e instanceof PolStoreError) return e.message
  if (e instanceof Error) return e.message
  return String(e)
}
