/**
 * Serve a data directory: open and check its chain store (chain.sqlite) and PoL store
 * (pol.sqlite), load its validator keys, then compose the full node, its finality signer, the
 * Proof-of-Learning service and the HTTP server (`blyan start`, `npm start`).
 *
 * ```ts
 * const served = await serve({ dataDir: '.blyan', port: 8080, host: '127.0.0.1', siteRoot: 'dist' })
 * stopOnSignals(served)
 * ```
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { toHex } from '../src/codec/cbor.ts'
import { publicKeyOf, type SecretKey } from '../src/chain/keys.ts'
import { isValidator, type MetaDocument } from '../src/chain/meta.ts'
import { JOBS_FILE, KEYS_DIR, openExistingStore, readKeyFile, readPeersFile, readValidatorKeys } from './devnet.ts'
import { createRelay } from './http/server.ts'
import { CheckpointSigner } from './node/finality.ts'
import { FullNode } from './node/full-node.ts'
import type { ChainStore } from './node/interface.ts'
import { checkJobSettings } from './pol/jobs.ts'
import { PolStore } from './pol/pol-store.ts'
import { DatasetScreener } from './pol/screener.ts'
import { PolService, type PolServiceOptions } from './pol/service.ts'
import { stopWithParent } from './lifetime.ts'
import { progressLine } from './progress.ts'
import { PEER_KEY_FILE, loadPeerKey } from './p2p/host.ts'
import { PeerNetwork } from './p2p/network.ts'

/** This node's version (package.json): `blyan --version`, `/api/status` and the `/ws` hello. */
export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

export interface ServeOptions {
  readonly dataDir: string
  readonly port: number
  readonly host: string
  /** The built site to serve; omitted: API, gateway and feed only. */
  readonly siteRoot?: string
  /** Status lines (validator keys, the URL, finality). @default console.log */
  readonly log?: (line: string) => void
  /**
   * The peer network: multiaddrs to listen on and peers to dial (`--listen`, `--peer`; a node made
   * by `blyan init --join` also dials the peers in `<data>/peers.json`). Absent, with no
   * peers.json: a one-machine network (`npm start`).
   */
  readonly p2p?: { readonly listen?: readonly string[]; readonly peers?: readonly string[] }
  /** On a peer network: how long PoL votes are awaited after a beacon (PolService voteDeadlineMs). */
  readonly voteDeadlineMs?: number
}

export interface Served {
  readonly url: string
  readonly node: FullNode
  readonly pol: PolService
  /** Screens proposed datasets (a node with validator keys; else undefined). */
  readonly screener: DatasetScreener | undefined
  /** The node on the peer network, when it is on one. */
  readonly network: PeerNetwork | undefined
  close(): Promise<void>
}

/**
 * Check a store and serve it: full node + relay. Refuses, with one line, to start on a store it
 * cannot write or that is damaged (chain.sqlite or pol.sqlite), or with validator keys that are
 * missing, unreadable or not validators of the network.
 */
export async function serve(options: ServeOptions): Promise<Served> {
  const log = options.log ?? ((line: string) => console.log(line))
  const p2p = networkOptions(options)
  const store = openExistingStore(options.dataDir)
  let polStore: PolStore | undefined
  let node: FullNode
  let pol: PolService
  let screener: DatasetScreener | undefined
  let validators: SecretKey[]
  try {
    const show = progressLine('checking store')
    store.check({ onProgress: (done, total) => total > 0 && show(done, total) })
    polStore = PolStore.open(join(options.dataDir, 'pol.sqlite'))
    validators = validatorKeys(options.dataDir, store)
    if (p2p !== null && validators.length > 1) {
      throw new Error(`${join(options.dataDir, KEYS_DIR)} holds ${validators.length} validator keys: on a peer network each validator runs its own node with its own key (move the others to their nodes)`)
    }
    if (validators.length > 0) log(`validator keys: ${validators.length} (Proof-of-Learning rounds, finality votes)`)
    node = new FullNode(store, {
      ...(validators.length === 0 ? {} : { signer: new CheckpointSigner(validators, polStore) }),
      ...(p2p === null ? {} : { aggregation: 'scheduled' as const })
    })
    pol = polService(options.dataDir, node, polStore, validators, log, p2p === null ? {} : { schedule: 'network', ...(options.voteDeadlineMs === undefined ? {} : { voteDeadlineMs: options.voteDeadlineMs }) })
    if (validators.length > 0) screener = new DatasetScreener({ node, validators, log, network: p2p !== null })
  } catch (e) {
    polStore?.close()
    store.close()
    throw e
  }
  let network: PeerNetwork | undefined
  if (p2p !== null) {
    try {
      network = await PeerNetwork.start({
        node, pol, ...(screener === undefined ? {} : { screener }), privateKey: await loadPeerKey(join(options.dataDir, PEER_KEY_FILE)), ...p2p, log,
        validator: validators.length === 1 ? publicKeyOf(validators[0] as SecretKey) : null
      })
    } catch (e) {
      pol.polStore.close()
      store.close()
      throw e
    }
  }
  const relay = createRelay({ node, version: VERSION, pol, ...(network === undefined ? {} : { network }), ...(screener === undefined ? {} : { screener }), ...(options.siteRoot === undefined ? {} : { siteRoot: options.siteRoot }) })
  await new Promise<void>((resolvePromise, rejectPromise) => {
    relay.server.once('error', (e: NodeJS.ErrnoException) => {
      const where = `${options.host}:${options.port}`
      if (e.code === 'EADDRINUSE') rejectPromise(new Error(`port ${options.port} on ${options.host} is already in use; choose another port`))
      else if (e.code === 'EACCES') rejectPromise(new Error(`no permission to listen on ${where}; use a port above 1023`))
      else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') rejectPromise(new Error(`host ${options.host} is not an address of this machine`))
      else rejectPromise(e)
    })
    relay.server.listen(options.port, options.host, () => resolvePromise())
  })
  const address = relay.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : options.port
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}/`
  const genesis = store.genesis()
  log(`Blyan node at ${url}  (genesis ${genesis?.cid.toString() ?? 'none'}, ${store.size} blocks)`)
  if (network !== undefined) {
    network.setRelayUrl(url)
    log(`peer network: ${network.multiaddrs().join(' ')}`)
  }
  // Heads accepted while no key voted (a store from before finality, a crash) are finalized now.
  await node.vote()
  const final = store.checkpoint()
  if (final !== null) log(`finality: checkpoint ${final.number}`)
  pol.start()
  // Proposals that arrived while the node was down (or before a restart) are screened now.
  screener?.screenPending().catch((e: unknown) => log(`datasets: screening stopped: ${e instanceof Error ? e.message : String(e)}`))
  return {
    url,
    node,
    pol,
    screener,
    network,
    close: async () => {
      await network?.stop()
      await pol.stop()
      await screener?.idle()
      await relay.close()
      pol.polStore.close()
      store.close()
    }
  }
}

/**
 * The validator keys in `<data>/keys/` (a devnet made by `blyan init` has them all; a node without
 * keys relays, queues candidates and pools others' votes). Every key `keys/validators.json` lists
 * must be there and match, and every key must be a validator of chain A's head: a node that
 * silently judged with fewer keys than its operator thinks would never reach a quorum.
 */
function validatorKeys(dataDir: string, store: ChainStore): SecretKey[] {
  const keysDir = join(dataDir, KEYS_DIR)
  const { keys, files } = readValidatorKeys(dataDir)
  const listed = join(keysDir, 'validators.json')
  if (existsSync(listed)) {
    const pubs = JSON.parse(readFileSync(listed, 'utf8')) as unknown
    if (!Array.isArray(pubs) || !pubs.every((p) => typeof p === 'string')) throw new Error(`${listed}: expected a JSON list of public keys (hex)`)
    pubs.forEach((pub: string, i) => {
      const file = join(keysDir, `validator-${i}.key`)
      if (!existsSync(file)) throw new Error(`${file} is missing: ${listed} lists ${pubs.length} validator keys`)
      if (toHex(publicKeyOf(readKeyFile(file))) !== pub) throw new Error(`${file} is not the key ${listed} lists as validator ${i} (${pub.slice(0, 12)}…)`)
    })
  }
  const meta = store.head('A')?.document as MetaDocument | undefined
  for (const [i, key] of keys.entries()) {
    if (meta !== undefined && !isValidator(meta, publicKeyOf(key))) throw new Error(`${files[i] as string} is not a validator of this network (chain A head A:${store.head('A')?.header.index})`)
  }
  return keys
}

/** The node's PoL service over `<data>/pol.sqlite`, judging with the node's validator keys. */
function polService(
  dataDir: string, node: FullNode, polStore: PolStore, validators: SecretKey[], log: (line: string) => void, schedule: Pick<PolServiceOptions, 'schedule' | 'voteDeadlineMs'>
): PolService {
  const jobsFile = join(dataDir, JOBS_FILE)
  const jobSettings = existsSync(jobsFile) ? checkJobSettings(JSON.parse(readFileSync(jobsFile, 'utf8')) as unknown, jobsFile) : undefined
  return new PolService({ node, polStore, validators, log, ...schedule, ...(jobSettings === undefined ? {} : { jobSettings }) })
}


/** The peer network's options: those given, with the peers a joined node remembers; null for a one-machine network. */
function networkOptions(options: ServeOptions): { listen?: readonly string[]; peers: readonly string[] } | null {
  const remembered = readPeersFile(options.dataDir)
  if (options.p2p === undefined && remembered.length === 0) return null
  const peers = [...new Set([...(options.p2p?.peers ?? []), ...remembered])]
  return options.p2p?.listen === undefined ? { peers } : { listen: options.p2p.listen, peers }
}

/**
 * Close the node cleanly on Ctrl+C or SIGTERM, and when the process that started it (npm, npx, a
 * shell) is gone (relay/lifetime.ts): killing `npm start` stops the server.
 */
export function stopOnSignals(served: Served): () => void {
  return stopWithParent(() => served.close())
}
