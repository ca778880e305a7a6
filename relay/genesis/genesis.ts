/**
 * The `genesis/` directory: what `npm run genesis` writes and `npm start` initialises a devnet from.
 *
 *   genesis/genesis.car    CARv1: every block of every file below (UnixFS, as importPayload lays
 *                          them out); roots: the record, then the files in manifest order
 *   genesis/manifest.json  GenesisManifest: the file CIDs by role, and the record's content again
 *                          for people to read
 *
 * Files: the tokenizer (chain A's meta links it), one parameter payload per chain B block (int8
 * matrices, fp32 vectors: exactly what the chain stores), one text per dataset (chain D content),
 * and the training record (JSON, GenesisRecord), which the chain D dataset documents link as
 * `record`: how the genesis model was made from these datasets.
 *
 * readGenesis checks every block of the CAR against its CID and every manifest entry against the
 * file it names, so a damaged or edited genesis directory is refused (GenesisError), never loaded.
 *
 * @module
 */
import { readFileSync, writeFileSync, mkdirSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { CarReader, CarWriter } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { cidMatches } from '../../src/codec/cbor.ts'
import type { Architecture, PolParams } from '../../src/chain/meta.ts'
import type { JobSettings } from '../../src/pol/job.ts'
import { RecordError, parseGenesisRecord, type GenesisRecordView, type RecordDataset, type RecordLossPair } from '../../src/explorer/record.ts'
import { blockNames } from '../../src/chain/params.ts'
import { importPayload, readUnixfsFile } from '../../src/tensor/tiles.ts'
import type { DatasetFile, PrebuiltModel } from '../devnet.ts'

export const GENESIS_CAR = 'genesis.car'
export const GENESIS_MANIFEST = 'manifest.json'
export const GENESIS_KIND = 'blyan/genesis'

/** A loss measurement (nats per predicted token); the explorer's parser defines it. */
export type LossPair = RecordLossPair

/** A dataset of the genesis: its file, split and count (the record lists them, the manifest too). */
export type DatasetEntry = RecordDataset

/**
 * The proof-of-data-learning record of the genesis model (a JSON file in the CAR): one definition,
 * the explorer's (src/explorer/record.ts), whose parser checks every record read back.
 */
export type GenesisRecord = GenesisRecordView

export interface GenesisManifest {
  readonly kind: typeof GENESIS_KIND
  readonly version: 1
  readonly network: string
  readonly architecture: Architecture
  /** The network's PoL parameters (chain A meta) and the jobs its nodes publish. */
  readonly pol: PolParams
  readonly jobs: JobSettings
  readonly tokenizer: { readonly format: 'llama2c'; readonly cid: string; readonly size: number; readonly bos_id: number; readonly eos_id: number }
  /** Chain B: one payload per block name, canonical order (embedding, then per layer router and experts). */
  readonly blocks: readonly { readonly name: string; readonly cid: string; readonly size: number }[]
  readonly datasets: readonly DatasetEntry[]
  readonly record: { readonly cid: string; readonly size: number }
  /** Wall-clock seconds of the run that made it (not part of the record: it differs between reruns). */
  readonly seconds: { readonly corpus: number | null; readonly student: number }
  /** A copy of the record's content, for people reading the manifest. */
  readonly summary: GenesisRecord
}

export class GenesisError extends Error {
  override readonly name = 'GenesisError'
}

/** What writeGenesis needs: the files' bytes (the record is built by the caller from their CIDs). */
export interface GenesisFiles {
  readonly tokenizer: Uint8Array
  readonly blocks: ReadonlyMap<string, Uint8Array>
  readonly datasets: ReadonlyMap<string, Uint8Array>
}

/** Write genesis.car and manifest.json into `dir` (each through a temporary file, then renamed). */
export async function writeGenesis(dir: string, manifest: Omit<GenesisManifest, 'record'>, files: GenesisFiles, record: GenesisRecord): Promise<GenesisManifest> {
  const recordBytes = new TextEncoder().encode(JSON.stringify(record, null, 1) + '\n')
  const imported = new Map<string, { cid: CID; blocks: Map<string, Uint8Array> }>()
  const add = async (bytes: Uint8Array): Promise<CID> => {
    const r = await importPayload(bytes)
    imported.set(r.cid.toString(), r)
    return r.cid
  }
  const recordCid = await add(recordBytes)
  await add(files.tokenizer)
  for (const b of files.blocks.values()) await add(b)
  for (const d of files.datasets.values()) await add(d)
  const full: GenesisManifest = { ...manifest, record: { cid: recordCid.toString(), size: recordBytes.length } }
  checkManifestFiles(full, (cid) => imported.has(cid))

  const { writer, out } = CarWriter.create([...imported.values()].map((r) => r.cid))
  const chunks: Uint8Array[] = []
  const pump = (async () => {
    for await (const c of out) chunks.push(c)
  })()
  const written = new Set<string>()
  for (const r of imported.values()) {
    for (const [key, bytes] of r.blocks) {
      if (written.has(key)) continue
      written.add(key)
      await writer.put({ cid: CID.parse(key), bytes })
    }
  }
  await writer.close()
  await pump
  mkdirSync(dir, { recursive: true })
  const write = (name: string, data: Uint8Array | string): void => {
    writeFileSync(join(dir, `${name}.tmp`), data)
    renameSync(join(dir, `${name}.tmp`), join(dir, name))
  }
  write(GENESIS_CAR, Buffer.concat(chunks))
  write(GENESIS_MANIFEST, JSON.stringify(full, null, 1) + '\n')
  return full
}

/** A genesis directory, checked: the manifest, and every file it names, by CID. */
export interface LoadedGenesis {
  readonly manifest: GenesisManifest
  readonly record: GenesisRecord
  /** The bytes of the file `cid` names (a CID the manifest lists). */
  file(cid: string): Uint8Array
}

export async function readGenesis(dir: string): Promise<LoadedGenesis> {
  let manifest: GenesisManifest
  let car: Uint8Array
  try {
    manifest = JSON.parse(readFileSync(join(dir, GENESIS_MANIFEST), 'utf8')) as GenesisManifest
    car = readFileSync(join(dir, GENESIS_CAR))
  } catch (e) {
    throw new GenesisError(`${dir}: cannot read the genesis (${e instanceof Error ? e.message : String(e)}); run npm run genesis to make one`, { cause: e })
  }
  if (manifest?.kind !== GENESIS_KIND || manifest.version !== 1) throw new GenesisError(`${join(dir, GENESIS_MANIFEST)}: not a ${GENESIS_KIND} version 1 manifest`)
  let reader: CarReader
  try {
    reader = await CarReader.fromBytes(car)
  } catch (e) {
    throw new GenesisError(`${join(dir, GENESIS_CAR)}: not a CAR file (${e instanceof Error ? e.message : String(e)})`, { cause: e })
  }
  const blocks = new Map<string, Uint8Array>()
  for await (const { cid, bytes } of reader.blocks()) {
    if (!cidMatches(cid, bytes)) throw new GenesisError(`${join(dir, GENESIS_CAR)}: block ${cid.toString()} does not match its CID (the file is damaged)`)
    blocks.set(cid.toString(), bytes)
  }
  const cache = new Map<string, Uint8Array>()
  const file = (cid: string): Uint8Array => {
    const hit = cache.get(cid)
    if (hit !== undefined) return hit
    let root: CID
    try {
      root = CID.parse(cid)
    } catch (e) {
      throw new GenesisError(`manifest: ${JSON.stringify(cid)} is not a CID`, { cause: e })
    }
    try {
      const bytes = readUnixfsFile(root, (c) => blocks.get(c.toString()), 64 * 1024 * 1024).bytes
      cache.set(cid, bytes)
      return bytes
    } catch (e) {
      throw new GenesisError(`${join(dir, GENESIS_CAR)}: file ${cid} is missing or incomplete (${e instanceof Error ? e.message : String(e)})`, { cause: e })
    }
  }
  checkManifestFiles(manifest, (cid) => {
    file(cid)
    return true
  })
  const sizes: [string, number, number][] = [
    [manifest.tokenizer.cid, manifest.tokenizer.size, file(manifest.tokenizer.cid).length],
    [manifest.record.cid, manifest.record.size, file(manifest.record.cid).length],
    ...manifest.blocks.map((b): [string, number, number] => [b.cid, b.size, file(b.cid).length]),
    ...manifest.datasets.map((d): [string, number, number] => [d.cid, d.size, file(d.cid).length])
  ]
  for (const [cid, want, got] of sizes) if (want !== got) throw new GenesisError(`manifest: file ${cid} is ${got} bytes, the manifest says ${want}`)
  // the explorer's parser checks the record's shape: one definition of what a record is
  try {
    parseGenesisRecord(file(manifest.record.cid))
  } catch (e) {
    if (e instanceof RecordError) throw new GenesisError(`record ${manifest.record.cid}: ${e.message}`, { cause: e })
    throw e
  }
  const record = JSON.parse(new TextDecoder().decode(file(manifest.record.cid))) as GenesisRecord
  return { manifest, record, file }
}

/** Every block of the architecture has exactly one payload, in canonical order, and every file is present. */
function checkManifestFiles(m: GenesisManifest, present: (cid: string) => boolean): void {
  const names = blockNames(m.architecture)
  if (m.blocks.length !== names.length || m.blocks.some((b, i) => b.name !== names[i])) {
    throw new GenesisError(`manifest: blocks must be ${names.length} payloads named ${names[0]}, ${names[1]}, … in canonical order`)
  }
  for (const cid of [m.tokenizer.cid, m.record.cid, ...m.blocks.map((b) => b.cid), ...m.datasets.map((d) => d.cid)]) {
    if (!present(cid)) throw new GenesisError(`manifest: file ${cid} is not in ${GENESIS_CAR}`)
  }
  if (!m.datasets.some((d) => d.split === 'train') || !m.datasets.some((d) => d.split === 'validation')) {
    throw new GenesisError('manifest: a genesis needs a train and a validation dataset (PoL draws on both)')
  }
}

/** What blyan init needs from a genesis directory: the model's payloads and tokenizer, and the datasets linking the record. */
export function devnetParts(g: LoadedGenesis): { model: PrebuiltModel; datasets: DatasetFile[]; pol: PolParams; jobs: JobSettings } {
  const m = g.manifest
  const model: PrebuiltModel = {
    architecture: m.architecture,
    tokenizer: { format: m.tokenizer.format, bytes: g.file(m.tokenizer.cid), bos_id: m.tokenizer.bos_id, eos_id: m.tokenizer.eos_id },
    payloads: new Map(m.blocks.map((b) => [b.name, g.file(b.cid)]))
  }
  const record = g.file(m.record.cid)
  const datasets = m.datasets.map((d): DatasetFile => ({ name: d.name, split: d.split, bytes: g.file(d.cid), license: d.license, description: d.description, record }))
  return { model, datasets, pol: m.pol, jobs: m.jobs }
}
