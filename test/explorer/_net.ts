/**
 * Devnets as the site's client sees them: every block of a devnet (built and accepted by the
 * product's own builders and validator, test/fixtures/devnet.ts) validated again into a fresh
 * MemoryChain the way the light client validates it (chain B without its payload), and every IPLD
 * block they brought (headers, documents, certificates, each payload's UnixFS blocks) in a map that
 * stands in for a relay's gateway.
 */
import type { CID } from 'multiformats/cid'
import type { HeaderDraft } from '../../src/chain/build.ts'
import { DAG_CBOR, cidOf } from '../../src/codec/cbor.ts'
import { expertName } from '../../src/chain/header.ts'
import { MemoryChain } from '../../src/chain/memory.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { TILE_SIZE, importPayload } from '../../src/tensor/tiles.ts'
import { Devnet, NOW, TINY_ARCH, type Built } from '../fixtures/devnet.ts'

export interface LightNet {
  readonly devnet: Devnet
  /** The page's chain: every devnet block, chain B judged without its payload. */
  readonly chain: MemoryChain
  /** Every block by CID string, as a relay serves them. */
  readonly store: Map<string, Uint8Array>
  /** The pinned anchor: the devnet's genesis CID. */
  readonly anchor: string
  /** An honest relay. */
  readonly getBlock: (cid: CID) => Promise<Uint8Array>
  /** The built block (header bytes, payload, certificate) of an accepted block. */
  built(block: AcceptedBlock): Built
}

/** Put `built`'s blocks in `store` and return the block input the light client judges. */
async function stock(store: Map<string, Uint8Array>, built: Built): Promise<{ header: Uint8Array; payload: Uint8Array | null; certificate?: Uint8Array }> {
  const { header, payload, certificate } = built.input
  store.set(built.sealed.cid.toString(), header)
  if (certificate !== undefined) store.set(cidOf(certificate, DAG_CBOR).toString(), certificate)
  if (built.sealed.header.chain_id === 'B') {
    for (const [cid, bytes] of (await importPayload(payload)).blocks) store.set(cid, bytes.slice())
    return certificate === undefined ? { header, payload: null } : { header, payload: null, certificate }
  }
  store.set(built.sealed.header.payload.toString(), payload)
  return certificate === undefined ? { header, payload } : { header, payload, certificate }
}

/** Validate every accepted block of `devnet` into a light chain, in the order the devnet accepted them. */
export async function lightNet(devnet: Devnet): Promise<LightNet> {
  const byCid = new Map([...devnet.built.values()].map((b) => [b.sealed.cid.toString(), b]))
  const chain = new MemoryChain()
  const store = new Map<string, Uint8Array>()
  for (const block of devnet.chain.blocks()) {
    const built = byCid.get(block.cid.toString())
    if (built === undefined) throw new Error(`no built block for ${block.cid}`)
    await chain.submit(await stock(store, built), { now: NOW })
  }
  const getBlock = async (cid: CID): Promise<Uint8Array> => {
    const bytes = store.get(cid.toString())
    if (bytes === undefined) throw new Error(`relay: no block ${cid}`)
    return bytes
  }
  return {
    devnet,
    chain,
    store,
    anchor: devnet.cid('genesis').toString(),
    getBlock,
    built: (block) => {
      const b = byCid.get(block.cid.toString())
      if (b === undefined) throw new Error(`no built block for ${block.cid}`)
      return b
    }
  }
}

/**
 * The tiny architecture with wide experts: each expert payload is three int8 matrices of
 * 3072 x 64 (about 627 KB), so three tiles, the last one short.
 */
export const WIDE_ARCH = Object.freeze({ ...TINY_ARCH, dim: 64, head_dim: 32, expert_hidden_dim: 3072 })

/**
 * A devnet whose expert blocks span several tiles: genesis, a validation dataset and the quorum's
 * approval, layer0.expert0 (v0, by a validator) and its certified v1 (by the miner; the beacon brings
 * the approval into force), all accepted by the full validator.
 */
export async function wideDevnet(): Promise<Devnet> {
  const d = new Devnet(WIDE_ARCH)
  await d.submit(d.genesis())
  await d.submit(await d.dataset('validation', 'validation', 'A cat sat.\n\nA dog ran.\n', null))
  await d.submit(d.decision('approve-validation', 'validation', 'validation'))
  await d.submit(await d.param('expert0.0', expertName(0, 0), { seed: 7 }))
  await d.submit(await d.newVersion('expert0.0v1', 'expert0.0', expertName(0, 0), 8))
  return d
}

/** Tiles in the huge payload: one more than a dag-pb node links, so the tree has an interior level. */
export const HUGE_TILES = 1025

/**
 * Experts wide enough that a payload of HUGE_TILES tiles is within what the architecture allows
 * (3 fp32 matrices of 400,000 x 64: about 307 MB; validate.ts refuses a payload_size beyond it).
 */
export const HUGE_ARCH = Object.freeze({ ...WIDE_ARCH, expert_hidden_dim: 400_000 })

/** A devnet under HUGE_ARCH with only its genesis: no expert of that size is ever built. */
export async function hugeDevnet(): Promise<Devnet> {
  const d = new Devnet(HUGE_ARCH)
  await d.submit(d.genesis())
  return d
}

/**
 * A chain B header (by a validator, so an initial version) whose payload CID names a UnixFS file of
 * HUGE_TILES tiles: root -> 2 interior nodes -> leaves. The bytes are not a parameter payload (the
 * light client judges chain B without it; a full node would refuse it with E_PAYLOAD_MAGIC), which
 * is all the Merkle path walk needs. Returns the sealed header and adds its blocks to `net`.
 */
export async function hugeTileBlock(net: LightNet): Promise<{ built: Built; block: AcceptedBlock }> {
  const size = HUGE_TILES * TILE_SIZE - 1000
  const bytes = new Uint8Array(size)
  const view = new DataView(bytes.buffer)
  for (let t = 0; t < HUGE_TILES; t++) view.setUint32(t * TILE_SIZE, t + 1, true) // every tile differs
  const file = await importPayload(bytes)
  for (const [cid, block] of file.blocks) net.store.set(cid, block)
  const d = net.devnet
  const draft = {
    ...d.base('B', 'expert'),
    expert_name: expertName(1, 1),
    layer_id: 1,
    payload: file.cid,
    payload_size: size
  } as HeaderDraft
  const built = d.make('huge', draft, bytes, d.validators[0] as Uint8Array)
  net.store.set(built.sealed.cid.toString(), built.sealed.bytes)
  const block = await net.chain.submit({ header: built.sealed.bytes, payload: null }, { now: NOW })
  return { built, block }
}
