/**
 * The full node's chain store: accepted blocks, every IPLD block they brought, and the indexes the
 * node's queries need, in one SQLite file (better-sqlite3; WAL, `synchronous = FULL`, foreign keys on).
 *
 * ```ts
 * const store = openChainStore('.blyan/chain.db')
 * store.check()                                       // at start: refuse to serve a damaged store
 * const block = await validateBlock(input, store, { now: Date.now() })
 * store.put(block, blocks)                            // header, payload blocks, certificate, files
 * store.balance(pub, store.head('C')?.cid ?? null)
 * ```
 *
 * **Why the IPLD bytes live in SQLite too** (and not in blockstore-fs beside an index): one SQLite
 * transaction covers a block's index rows *and* all its bytes, so after a crash at any instant
 * (SIGKILL, or power loss: commits are fsynced) a block is either fully present and indexed, or
 * absent; no partial block is ever visible and start-up needs no repair scan. Two stores (files +
 * index) cannot commit together: a crash between them leaves bytes nobody indexed or an index whose
 * bytes are missing. Blocks are at most 1 MiB (tiles 256 KiB, protocol §11), well inside what
 * SQLite stores comfortably.
 *
 * **Rules stay in src/chain.** This module stores what validateBlock accepted and answers
 * queries; fork choice is `headOf` over the tips it indexes and the last checkpoint, the param index is `buildParamIndex`
 * over each expert's top versions, and decoding is the chain's own decoders.
 *
 * Schema, version 2 (`PRAGMA user_version`; `PRAGMA application_id` = 'BLYN'; a version 1 file is
 * migrated on open):
 *
 * | table | rows |
 * |---|---|
 * | `raw(cid, bytes)` | IPLD block bytes by CID string (base32 CIDv1) |
 * | `blocks(seq, cid, ...)` | one per accepted block: `seq` the acceptance order; header columns (`chain`, `idx`, `prev`, `block_type`, `expert_name`, `timestamp`, `difficulty`, `payload`, `payload_size`), `key` the CID bytes (tie order), derived `meta`, `work` (decimal), `expert_version`, `certificate` (CID), `payload_index` (chain B: the payload's first 16 + L bytes), `extended` (a block names this one as `prev`) |
 * | `owners(raw, block, ord)` | which accepted block brought which raw block, `ord` 0 = its header; a raw block may have several owners |
 * | `deps(block, dep)` | `depends_on` edges |
 * | `ledger(block, pub, delta)` | chain C balance changes: a transfer `-amount` for the sender, `+amount` for `to`; a reward `+amount` |
 * | `rewards(block, candidate)` | chain C reward -> the chain B block it rewards |
 * | `checkpoints(number, id, bytes)` | finality checkpoints in sequence: `id` the body CID, `bytes` the document with its quorum signatures (src/chain/checkpoint.ts) |
 * | `rejections(id, ..., scope)` | refused submissions (a bounded log, not content); `scope` says whether the block itself is to blame (src/chain/refusal.ts) |
 *
 * Raw rows are only ever written together with their owner rows, and `getRaw`/`hasRaw` serve only
 * owned bytes. Balances and reward lookups walk the branch with a recursive CTE over `prev`
 * (bounded below by the oldest relevant row), header ranges are index range scans.
 *
 * @module
 */
import { createHash, type Hash } from 'node:crypto'
import Database from 'better-sqlite3'
import { CID } from 'multiformats/cid'
import { aint, aoneOf } from '../../src/assert.ts'
import { DAG_CBOR, DAG_PB, RAW, bytesEqual, cidMatches, isProtocolCid } from '../../src/codec/cbor.ts'
import { decodeDataset } from '../../src/chain/dataset.ts'
import { decodeDecision } from '../../src/chain/decision.ts'
import { linkedDocuments, linkedFiles } from '../../src/chain/submission.ts'
import { checkCheckpoint, checkpointId, decodeCheckpoint, type Checkpoint } from '../../src/chain/checkpoint.ts'
import { headOf } from '../../src/chain/forkchoice.ts'
import { fileHead, walkFile } from '../../src/codec/unixfs.ts'
import type { RefusalScope } from '../../src/chain/refusal.ts'
import { CHAIN_IDS, decodeHeader, type ChainId, type Header } from '../../src/chain/header.ts'
import type { PublicKey } from '../../src/chain/keys.ts'
import { decodeLedgerDocument, ledgerCredits } from '../../src/chain/ledger.ts'
import { decodeMeta } from '../../src/chain/meta.ts'
import { buildParamIndex } from '../../src/chain/paramindex.ts'
import { decodeCertificate, type Certificate } from '../../src/chain/pol.ts'
import { blockWork } from '../../src/chain/pow.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { RULES, TRANSIENT_CODES, isRuleError, type RuleCode } from '../../src/errors.ts'
import { PAYLOAD_PREFIX_SIZE, decodePayloadIndex, payloadIndexLength } from '../../src/tensor/payload.ts'
import { StoreAccessError, StoreDamagedError, type ChainStore, type Rejection } from './interface.ts'

/** `PRAGMA user_version` of the schema below; a file with another version is refused. */
export const SCHEMA_VERSION = 2
/** `PRAGMA application_id`: ASCII 'BLYN', so a foreign SQLite file is never mistaken for a store. */
const APPLICATION_ID = 0x424c594e

export interface ChainStoreOptions {
  /** Decoded blocks kept in memory, least recently used evicted first. @default 4096 */
  readonly cacheSize?: number
  /** Rejections kept in the log; older ones are dropped. @default 100000 */
  readonly maxRejections?: number
}

/** What version 2 added: finality checkpoints, and the scope of a rejection (version 1 rows were all logged against their block). */
const V2 = `
ALTER TABLE rejections ADD COLUMN scope TEXT NOT NULL DEFAULT 'block' CHECK (scope IN ('block', 'submission'));
CREATE TABLE checkpoints (
  number INTEGER PRIMARY KEY,
  id     TEXT NOT NULL UNIQUE,
  bytes  BLOB NOT NULL
);
`
const SCHEMA = `
CREATE TABLE raw (
  cid   TEXT PRIMARY KEY,
  bytes BLOB NOT NULL
);
CREATE TABLE blocks (
  seq            INTEGER PRIMARY KEY,
  cid            TEXT NOT NULL UNIQUE REFERENCES raw(cid),
  key            BLOB NOT NULL,
  chain          TEXT NOT NULL CHECK (chain IN ('A', 'B', 'C', 'D')),
  idx            INTEGER NOT NULL,
  prev           TEXT REFERENCES blocks(cid),
  block_type     TEXT NOT NULL,
  expert_name    TEXT,
  timestamp      INTEGER NOT NULL,
  difficulty     INTEGER NOT NULL,
  payload        TEXT NOT NULL REFERENCES raw(cid),
  payload_size   INTEGER NOT NULL,
  meta           TEXT NOT NULL REFERENCES blocks(cid),
  work           TEXT NOT NULL,
  expert_version INTEGER NOT NULL,
  certificate    TEXT REFERENCES raw(cid),
  payload_index  BLOB,
  extended       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX blocks_range ON blocks(chain, idx, key);
CREATE INDEX blocks_prev ON blocks(prev) WHERE prev IS NOT NULL;
CREATE INDEX blocks_tips ON blocks(chain) WHERE extended = 0 AND chain != 'B';
CREATE INDEX blocks_versions ON blocks(chain, expert_name, expert_version);
CREATE TABLE owners (
  raw   TEXT NOT NULL REFERENCES raw(cid),
  block INTEGER NOT NULL REFERENCES blocks(seq),
  ord   INTEGER NOT NULL,
  PRIMARY KEY (raw, block)
) WITHOUT ROWID;
CREATE UNIQUE INDEX owners_block ON owners(block, ord);
CREATE TABLE deps (
  block INTEGER NOT NULL REFERENCES blocks(seq),
  dep   TEXT NOT NULL REFERENCES blocks(cid),
  PRIMARY KEY (block, dep)
) WITHOUT ROWID;
CREATE TABLE ledger (
  block INTEGER NOT NULL REFERENCES blocks(seq),
  pub   BLOB NOT NULL,
  delta INTEGER NOT NULL,
  PRIMARY KEY (block, pub)
) WITHOUT ROWID;
CREATE INDEX ledger_pub ON ledger(pub, block);
CREATE TABLE rewards (
  block     INTEGER PRIMARY KEY REFERENCES blocks(seq),
  candidate TEXT NOT NULL REFERENCES blocks(cid)
);
CREATE INDEX rewards_candidate ON rewards(candidate);
CREATE TABLE rejections (
  id         INTEGER PRIMARY KEY,
  cid        TEXT,
  code       TEXT NOT NULL,
  field      TEXT NOT NULL,
  message    TEXT NOT NULL,
  at         INTEGER NOT NULL,
  chain      TEXT,
  block_type TEXT
);
CREATE INDEX rejections_at ON rejections(at, id);
CREATE INDEX rejections_cid ON rejections(cid) WHERE cid IS NOT NULL;
${V2}`
const TABLES = ['raw', 'blocks', 'owners', 'deps', 'ledger', 'rewards', 'rejections', 'checkpoints'] as const

/** Rows read per page when walking a whole table. */
const PAGE = 256

// ---------------------------------------------------------------------------------------------
// Rows

interface BlockRow {
  seq: number
  cid: string
  key: Uint8Array
  chain: ChainId
  idx: number
  prev: string | null
  block_type: string
  expert_name: string | null
  timestamp: number
  difficulty: number
  payload: string
  payload_size: number
  meta: string
  work: string
  expert_version: number
  certificate: string | null
  payload_index: Uint8Array | null
  extended: number
}

/** A block row with the bytes `get` decodes. */
interface FullRow extends BlockRow {
  header_bytes: Uint8Array | null
  payload_bytes: Uint8Array | null
  cert_bytes: Uint8Array | null
}

interface RejectionRow {
  cid: string | null
  code: string
  field: string
  message: string
  at: number
  chain: string | null
  block_type: string | null
  scope: RefusalScope
}

const BLOCK_COLUMNS = 'b.seq, b.cid, b.key, b.chain, b.idx, b.prev, b.block_type, b.expert_name, b.timestamp, b.difficulty, b.payload, b.payload_size, b.meta, b.work, b.expert_version, b.certificate, b.payload_index, b.extended'
const FULL_SELECT = `SELECT ${BLOCK_COLUMNS}, h.bytes AS header_bytes, p.bytes AS payload_bytes, c.bytes AS cert_bytes
  FROM blocks b
  LEFT JOIN raw h ON h.cid = b.cid
  LEFT JOIN raw p ON b.chain != 'B' AND p.cid = b.payload
  LEFT JOIN raw c ON c.cid = b.certificate`

/** A recursive walk down `prev` from block `@at` that continues only above index `floor` (a SQL expression). */
const branchCte = (floor: string): string => `branch(seq, prev, idx) AS (
    SELECT seq, prev, idx FROM blocks WHERE cid = @at
    UNION ALL
    SELECT b.seq, b.prev, b.idx FROM blocks b JOIN branch ON b.cid = branch.prev WHERE branch.idx > ${floor}
  )`

// ---------------------------------------------------------------------------------------------
// Opening

/**
 * Open (or create) the chain store at `path`. A new or empty file gets the schema. A file that is
 * not a SQLite database, or is a database of another kind or another schema version, is refused
 * with StoreDamagedError (`item` = the path, or `'schema'`). Opening does not run `check()`.
 */
export function openChainStore(path: string, options: ChainStoreOptions = {}): ChainStore {
  if (typeof path !== 'string' || path === '') throw new TypeError('path: expected a file path')
  const cacheSize = options.cacheSize ?? 4096
  const maxRejections = options.maxRejections ?? 100_000
  aint(cacheSize, 'options.cacheSize')
  aint(maxRejections, 'options.maxRejections', 1)
  let db: Database.Database | undefined
  try {
    db = new Database(path)
    prepareFile(db)
    return new SqliteChainStore(db, path, cacheSize, maxRejections)
  } catch (e) {
    db?.close()
    if (isCorruption(e)) throw new StoreDamagedError(path, `not a readable SQLite database: ${messageOf(e)}`, { cause: e })
    if (isReadOnly(e)) throw new StoreAccessError(path, messageOf(e), { cause: e })
    throw e
  }
}

/** Pragmas, then the schema on an empty file, or the checks that this is our schema. */
function prepareFile(db: Database.Database): void {
  db.pragma('journal_mode = WAL') // reads the file header first: garbage fails here
  db.pragma('synchronous = FULL')
  db.pragma('foreign_keys = ON')
  const version = db.pragma('user_version', { simple: true }) as number
  const appId = db.pragma('application_id', { simple: true }) as number
  const names = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]))
  if (version === 0 && appId === 0 && names.size === 0) {
    // A new file: schema and version in one transaction, so a crash leaves an empty file or a store.
    db.transaction(() => {
      db.exec(SCHEMA)
      db.pragma(`application_id = ${APPLICATION_ID}`)
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
    })()
    return
  }
  if (appId !== APPLICATION_ID) throw new StoreDamagedError('schema', `not a Blyan chain store (application_id ${appId}, ${names.size} tables)`)
  // A write now, not at the first block: a store the node cannot write must stop it from starting.
  db.pragma(`user_version = ${version}`)
  if (version === 1) {
    db.transaction(() => {
      db.exec(V2)
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
    })()
    names.add('checkpoints')
  } else if (version !== SCHEMA_VERSION) {
    throw new StoreDamagedError('schema', `schema version ${version}; this code reads version ${SCHEMA_VERSION}`)
  }
  for (const table of TABLES) if (!names.has(table)) throw new StoreDamagedError(table, 'table missing')
}

/** SQLite could not write (a read-only file, directory or file system) or open the file. */
export function isReadOnly(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code
  return e instanceof Database.SqliteError && typeof code === 'string' && (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH')
}

function isCorruption(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code
  return e instanceof Database.SqliteError && typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

// ---------------------------------------------------------------------------------------------
// The store

class SqliteChainStore implements ChainStore {
  readonly #db: Database.Database
  readonly #path: string
  readonly #cacheSize: number
  readonly #maxRejections: number
  /** CID string -> decoded block, in recency order (oldest first). */
  readonly #cache = new Map<string, AcceptedBlock>()
  #size: number
  /** Expert name -> newest version; rebuilt after a chain B block is put. */
  #paramIndex: Map<string, AcceptedBlock> | null = null
  /** The newest checkpoint (decoded from its row; check() re-verifies the whole sequence). */
  #checkpoint: Checkpoint | null
  readonly #s

  constructor(db: Database.Database, path: string, cacheSize: number, maxRejections: number) {
    this.#db = db
    this.#path = path
    this.#cacheSize = cacheSize
    this.#maxRejections = maxRejections
    const transient = TRANSIENT_CODES.map((c) => `'${c}'`).join(', ')
    // Every statement is prepared once, here.
    this.#s = {
      full: db.prepare<[string], FullRow>(`${FULL_SELECT} WHERE b.cid = ?`),
      fullRange: db.prepare<[string, number, number, number], FullRow>(`${FULL_SELECT} WHERE b.chain = ? AND b.idx BETWEEN ? AND ? ORDER BY b.idx, b.key LIMIT ?`),
      row: db.prepare<[string], BlockRow>(`SELECT ${BLOCK_COLUMNS} FROM blocks b WHERE b.cid = ?`),
      rowsAfter: db.prepare<[number, number], BlockRow>(`SELECT ${BLOCK_COLUMNS} FROM blocks b WHERE b.seq > ? ORDER BY b.seq LIMIT ?`),
      cidsAfter: db.prepare<[number, number], { seq: number; cid: string }>('SELECT seq, cid FROM blocks WHERE seq > ? ORDER BY seq LIMIT ?'),
      has: db.prepare<[string], number>('SELECT 1 FROM blocks WHERE cid = ?').pluck(),
      count: db.prepare<[], number>('SELECT count(*) FROM blocks').pluck(),
      tips: db.prepare<[string], { cid: string; work: string }>("SELECT cid, work FROM blocks WHERE chain = ? AND extended = 0 AND chain != 'B'"),
      headB: db.prepare<[], string>("SELECT cid FROM blocks WHERE chain = 'B' AND idx = (SELECT max(idx) FROM blocks WHERE chain = 'B') ORDER BY key LIMIT 1").pluck(),
      root: db.prepare<{ at: string }, string>(`WITH RECURSIVE ${branchCte('0')} SELECT b.cid FROM branch JOIN blocks b ON b.seq = branch.seq WHERE branch.idx = 0`).pluck(),
      topVersions: db.prepare<[], string>(`WITH top AS (SELECT expert_name, max(expert_version) AS v FROM blocks WHERE chain = 'B' GROUP BY expert_name)
        SELECT b.cid FROM top JOIN blocks b ON b.chain = 'B' AND b.expert_name = top.expert_name AND b.expert_version = top.v`).pluck(),
      balance: db.prepare<{ at: string; pub: Uint8Array }, number>(`WITH RECURSIVE
          lowest(idx) AS (SELECT min(b.idx) FROM ledger l JOIN blocks b ON b.seq = l.block WHERE l.pub = @pub),
          ${branchCte('(SELECT idx FROM lowest)')}
        SELECT coalesce(sum(l.delta), 0) FROM branch JOIN ledger l ON l.block = branch.seq AND l.pub = @pub`).pluck(),
      rewarded: db.prepare<{ at: string; candidate: string }, number>(`WITH RECURSIVE
          lowest(idx) AS (SELECT min(b.idx) FROM rewards r JOIN blocks b ON b.seq = r.block WHERE r.candidate = @candidate),
          ${branchCte('(SELECT idx FROM lowest)')}
        SELECT EXISTS (SELECT 1 FROM branch JOIN rewards r ON r.block = branch.seq WHERE r.candidate = @candidate)`).pluck(),
      rejected: db.prepare<{ cid: string }, number>(`SELECT EXISTS (SELECT 1 FROM rejections WHERE cid = @cid AND scope = 'block' AND code NOT IN (${transient}))
        AND NOT EXISTS (SELECT 1 FROM blocks WHERE cid = @cid)`).pluck(),
      raw: db.prepare<[string], Uint8Array>('SELECT bytes FROM raw WHERE cid = ?').pluck(),
      ownedRaw: db.prepare<[string], Uint8Array>('SELECT r.bytes FROM raw r WHERE r.cid = ? AND EXISTS (SELECT 1 FROM owners o WHERE o.raw = r.cid)').pluck(),
      hasOwnedRaw: db.prepare<[string], number>('SELECT EXISTS (SELECT 1 FROM owners WHERE raw = ?)').pluck(),
      rawCidsOf: db.prepare<[string], string>('SELECT o.raw FROM owners o JOIN blocks b ON b.seq = o.block WHERE b.cid = ? ORDER BY o.ord').pluck(),
      ownersOf: db.prepare<[number], { raw: string; ord: number }>('SELECT raw, ord FROM owners WHERE block = ? ORDER BY ord'),
      depsOf: db.prepare<[number], string>('SELECT dep FROM deps WHERE block = ? ORDER BY dep').pluck(),
      ledgerOf: db.prepare<[number], { pub: Uint8Array; delta: number }>('SELECT pub, delta FROM ledger WHERE block = ? ORDER BY pub'),
      rewardOf: db.prepare<[number], string>('SELECT candidate FROM rewards WHERE block = ?').pluck(),
      isExtended: db.prepare<[string], number>('SELECT EXISTS (SELECT 1 FROM blocks WHERE prev = ?)').pluck(),
      insertRaw: db.prepare<[string, Uint8Array]>('INSERT INTO raw (cid, bytes) VALUES (?, ?) ON CONFLICT (cid) DO NOTHING'),
      insertBlock: db.prepare<[string, Uint8Array, string, number, string | null, string, string | null, number, number, string, number, string, string, number, string | null, Uint8Array | null]>(
        `INSERT INTO blocks (cid, key, chain, idx, prev, block_type, expert_name, timestamp, difficulty, payload, payload_size, meta, work, expert_version, certificate, payload_index)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cid) DO NOTHING`),
      insertOwner: db.prepare<[string, number, number]>('INSERT INTO owners (raw, block, ord) VALUES (?, ?, ?)'),
      insertDep: db.prepare<[number, string]>('INSERT INTO deps (block, dep) VALUES (?, ?)'),
      insertLedger: db.prepare<[number, Uint8Array, number]>('INSERT INTO ledger (block, pub, delta) VALUES (?, ?, ?)'),
      insertReward: db.prepare<[number, string]>('INSERT INTO rewards (block, candidate) VALUES (?, ?)'),
      extend: db.prepare<[string]>('UPDATE blocks SET extended = 1 WHERE cid = ? AND extended = 0'),
      insertRejection: db.prepare<[string | null, string, string, string, number, string | null, string | null, RefusalScope]>(
        'INSERT INTO rejections (cid, code, field, message, at, chain, block_type, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      pruneRejections: db.prepare<[number]>('DELETE FROM rejections WHERE id <= ?'),
      rejections: db.prepare<[number, number], RejectionRow>('SELECT cid, code, field, message, at, chain, block_type, scope FROM rejections WHERE at < ? ORDER BY at DESC, id DESC LIMIT ?'),
      rejectionOf: db.prepare<[string, RefusalScope], RejectionRow>('SELECT cid, code, field, message, at, chain, block_type, scope FROM rejections WHERE cid = ? AND scope = ? ORDER BY id DESC LIMIT 1'),
      checkpointLast: db.prepare<[], { number: number; bytes: Uint8Array }>('SELECT number, bytes FROM checkpoints ORDER BY number DESC LIMIT 1'),
      checkpointsFrom: db.prepare<[number, number], { number: number; id: string; bytes: Uint8Array }>('SELECT number, id, bytes FROM checkpoints WHERE number >= ? ORDER BY number LIMIT ?'),
      insertCheckpoint: db.prepare<[number, string, Uint8Array]>('INSERT INTO checkpoints (number, id, bytes) VALUES (?, ?, ?)'),
      paramByPayload: db.prepare<[string], string>("SELECT cid FROM blocks WHERE chain = 'B' AND payload = ? ORDER BY seq LIMIT 1").pluck(),
      countRaw: db.prepare<[], number>('SELECT count(*) FROM raw').pluck(),
      rawAfter: db.prepare<[string, number], { cid: string; bytes: Uint8Array }>('SELECT cid, bytes FROM raw WHERE cid > ? ORDER BY cid LIMIT ?'),
      orphanRaw: db.prepare<[], string>('SELECT r.cid FROM raw r WHERE NOT EXISTS (SELECT 1 FROM owners o WHERE o.raw = r.cid) LIMIT 1').pluck(),
      hash: [
        ['raw', 'SELECT cid, bytes FROM raw ORDER BY cid'],
        ['blocks', `SELECT cid, key, chain, idx, prev, block_type, expert_name, timestamp, difficulty, payload, payload_size, meta, work,
           expert_version, certificate, payload_index, extended FROM blocks ORDER BY cid`],
        ['owners', 'SELECT b.cid, o.raw, o.ord FROM owners o JOIN blocks b ON b.seq = o.block ORDER BY b.cid, o.raw'],
        ['deps', 'SELECT b.cid, d.dep FROM deps d JOIN blocks b ON b.seq = d.block ORDER BY b.cid, d.dep'],
        ['ledger', 'SELECT b.cid, l.pub, l.delta FROM ledger l JOIN blocks b ON b.seq = l.block ORDER BY b.cid, l.pub'],
        ['rewards', 'SELECT b.cid, r.candidate FROM rewards r JOIN blocks b ON b.seq = r.block ORDER BY b.cid'],
        ['checkpoints', 'SELECT number, id, bytes FROM checkpoints ORDER BY number']
      ].map(([table, sql]) => ({ table: table as string, stmt: db.prepare(sql as string).raw(true).safeIntegers(true) }))
    }
    this.#size = this.#s.count.get() as number
    const last = this.#s.checkpointLast.get()
    this.#checkpoint = last === undefined ? null : decodeCheckpoint(plain(last.bytes))
  }

  // -------------------------------------------------------------------------------------------
  // ChainView

  get(cid: CID): AcceptedBlock | undefined {
    const key = cid.toString()
    const cached = this.#cache.get(key)
    if (cached !== undefined) {
      this.#cache.delete(key)
      this.#cache.set(key, cached)
      return cached
    }
    const row = this.#s.full.get(key)
    return row === undefined ? undefined : this.#remember(this.#rebuild(row))
  }

  isRejected(cid: CID): boolean {
    return this.#s.rejected.get({ cid: cid.toString() }) === 1
  }

  balance(publicKey: PublicKey, at: CID | null): number {
    if (at === null) return 0
    return this.#s.balance.get({ at: at.toString(), pub: publicKey }) as number
  }

  isRewarded(candidate: CID, at: CID | null): boolean {
    if (at === null) return false
    return this.#s.rewarded.get({ at: at.toString(), candidate: candidate.toString() }) === 1
  }

  checkpoint(): Checkpoint | null {
    return this.#checkpoint
  }

  // -------------------------------------------------------------------------------------------
  // Writing

  put(block: AcceptedBlock, blocks: ReadonlyMap<string, Uint8Array>): void {
    if (typeof block !== 'object' || block === null || CID.asCID(block.cid) === null || !(block.bytes instanceof Uint8Array)) {
      throw new TypeError('block: expected an AcceptedBlock')
    }
    if (!(blocks instanceof Map)) throw new TypeError('blocks: expected a Map of CID string -> bytes')
    const key = block.cid.toString()
    if (this.#s.has.get(key) === 1) return
    if (block.cid.code !== DAG_CBOR || !cidMatches(block.cid, block.bytes)) throw new RangeError(`block: header bytes do not hash to ${key}`)
    const h = block.header
    for (const link of h.prev === null ? h.depends_on : [h.prev, ...h.depends_on]) {
      if (this.#s.has.get(link.toString()) !== 1) throw new RangeError(`block: ${key} links ${link}, which is not in the store: put dependencies first`)
    }

    // What the block brings, header first; every byte string checked against its CID once.
    const verified = new Set<string>()
    const fromMap: GetBlock = (cid) => {
      const k = cid.toString()
      const bytes = blocks.get(k)
      if (bytes === undefined || verified.has(k)) return bytes
      if (!(bytes instanceof Uint8Array) || !cidMatches(cid, bytes)) throw new RangeError(`blocks: the bytes under ${k} do not hash to it`)
      verified.add(k)
      return bytes
    }
    const raws = new Map<string, Uint8Array>([[key, block.bytes]])
    const need = (cid: CID, what: string): Uint8Array => {
      const bytes = fromMap(cid)
      if (bytes === undefined) throw new RangeError(`blocks: ${what} ${cid} is missing`)
      raws.set(cid.toString(), bytes)
      return bytes
    }
    const file = (root: CID, size: number, what: string): void => {
      try {
        for (const k of fileBlocks(root, size, fromMap)) raws.set(k, blocks.get(k) as Uint8Array)
      } catch (e) {
        if (isRuleError(e)) throw new RangeError(`blocks: ${what} ${root}: ${e.message}`)
        throw e
      }
    }
    let payloadIndex: Uint8Array | null = null
    if (h.chain_id === 'B') {
      file(h.payload, h.payload_size, 'payload')
      payloadIndex = payloadPrefix(h.payload, fromMap)
    } else {
      need(h.payload, 'payload document')
    }
    const cert = block.certificate
    if (cert !== null) {
      if (!cidMatches(cert.cid, cert.bytes)) throw new RangeError(`block: certificate bytes do not hash to ${cert.cid}`)
      raws.set(cert.cid.toString(), cert.bytes)
    }
    // Files the document links travel when the submitter brought them; then they must be complete.
    for (const linked of linkedFiles(block)) {
      if (blocks.has(linked.cid.toString())) file(linked.cid, linked.size, linked.field)
    }
    for (const doc of linkedDocuments(block)) need(doc.cid, doc.field)

    const ledger = ledgerDeltas(block)
    const candidate = h.block_type === 'reward' ? block.certificate?.value.candidate.toString() ?? null : null
    const row = [
      key, block.cid.bytes, h.chain_id, h.index, h.prev?.toString() ?? null, h.block_type, h.expert_name, h.timestamp, h.difficulty,
      h.payload.toString(), h.payload_size, block.meta.toString(), block.work.toString(), block.expertVersion, cert?.cid.toString() ?? null, payloadIndex
    ] as const
    const s = this.#s
    const added = this.#db.transaction((): boolean => {
      for (const [k, bytes] of raws) s.insertRaw.run(k, bytes)
      const info = s.insertBlock.run(...row)
      if (info.changes === 0) return false
      const seq = Number(info.lastInsertRowid)
      let ord = 0
      for (const k of raws.keys()) s.insertOwner.run(k, seq, ord++)
      for (const dep of h.depends_on) s.insertDep.run(seq, dep.toString())
      for (const { pub, delta } of ledger) s.insertLedger.run(seq, pub, delta)
      if (candidate !== null) s.insertReward.run(seq, candidate)
      if (h.prev !== null) s.extend.run(h.prev.toString())
      return true
    })()
    if (!added) return
    this.#size++
    if (h.chain_id === 'B') this.#paramIndex = null
  }

  putCheckpoint(checkpoint: Checkpoint, bytes: Uint8Array): void {
    if (typeof checkpoint !== 'object' || checkpoint === null || !(bytes instanceof Uint8Array)) throw new TypeError('putCheckpoint: expected a decoded checkpoint and its bytes')
    const expected = this.#checkpoint === null ? 0 : this.#checkpoint.number + 1
    if (checkpoint.number !== expected) throw new RangeError(`checkpoint: number ${checkpoint.number}, the next is ${expected}`)
    this.#s.insertCheckpoint.run(checkpoint.number, checkpointId(checkpoint).toString(), bytes)
    this.#checkpoint = checkpoint
  }

  checkpoints(from: number, limit: number): { number: number; id: string; bytes: Uint8Array }[] {
    aint(from, 'from')
    aint(limit, 'limit')
    return this.#s.checkpointsFrom.all(from, limit).map((r) => ({ number: r.number, id: r.id, bytes: plain(r.bytes) }))
  }

  addRejection(rejection: Rejection): void {
    if (typeof rejection !== 'object' || rejection === null) throw new TypeError('rejection: expected a Rejection')
    const { cid, code, field, message, at, chain, blockType, scope } = rejection
    if (cid !== null && typeof cid !== 'string') throw new TypeError('rejection.cid: expected string or null')
    aoneOf(code, Object.keys(RULES) as RuleCode[], 'rejection.code')
    if (typeof field !== 'string' || typeof message !== 'string') throw new TypeError('rejection.field, rejection.message: expected strings')
    aint(at, 'rejection.at')
    if (chain !== null) aoneOf(chain, CHAIN_IDS, 'rejection.chain')
    if (blockType !== null && typeof blockType !== 'string') throw new TypeError('rejection.blockType: expected string or null')
    aoneOf(scope, ['block', 'submission'] as const, 'rejection.scope')
    // The log is bounded: a flood of junk costs at most maxRejections rows (ids only grow).
    this.#db.transaction(() => {
      const id = Number(this.#s.insertRejection.run(cid, code, field, message, at, chain, blockType, scope).lastInsertRowid)
      if (id > this.#maxRejections) this.#s.pruneRejections.run(id - this.#maxRejections)
    })()
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  getRaw(cid: CID): Uint8Array | undefined {
    const bytes = this.#s.ownedRaw.get(cid.toString())
    return bytes === undefined ? undefined : plain(bytes)
  }

  hasRaw(cid: CID): boolean {
    return this.#s.hasOwnedRaw.get(cid.toString()) === 1
  }

  rawCidsOf(block: CID): CID[] {
    return this.#s.rawCidsOf.all(block.toString()).map((k) => CID.parse(k))
  }

  headers(chain: ChainId, from: number, to: number, limit: number): AcceptedBlock[] {
    aoneOf(chain, CHAIN_IDS, 'chain')
    aint(from, 'from')
    aint(to, 'to')
    aint(limit, 'limit')
    if (to < from || limit === 0) return []
    return this.#s.fullRange.all(chain, from, to, limit).map((row) => this.#cache.get(row.cid) ?? this.#remember(this.#rebuild(row)))
  }

  genesis(): AcceptedBlock | undefined {
    const head = this.head('A')
    if (head === undefined) return undefined
    const root = this.#s.root.get({ at: head.cid.toString() })
    return root === undefined ? undefined : this.get(CID.parse(root))
  }

  head(chain: ChainId): AcceptedBlock | undefined {
    aoneOf(chain, CHAIN_IDS, 'chain')
    if (chain === 'B') {
      const cid = this.#s.headB.get()
      return cid === undefined ? undefined : this.get(CID.parse(cid))
    }
    const final = this.#checkpoint?.heads[chain] ?? null
    return headOf(this, this.#s.tips.all(chain).map((t) => this.#must(t.cid)), final === null ? undefined : this.get(final))
  }

  paramIndex(): Map<string, AcceptedBlock> {
    // Only each expert's top versions can win (compareVersions orders by version first).
    this.#paramIndex ??= buildParamIndex(this.#s.topVersions.all().map((k) => this.#must(k)))
    return new Map(this.#paramIndex)
  }

  rejections(limit: number, before?: number): Rejection[] {
    aint(limit, 'limit')
    if (before !== undefined) aint(before, 'before')
    return this.#s.rejections.all(before ?? Number.MAX_SAFE_INTEGER, limit).map(toRejection)
  }

  rejectionOf(cid: CID, scope: RefusalScope = 'block'): Rejection | undefined {
    const row = this.#s.rejectionOf.get(cid.toString(), scope)
    return row === undefined ? undefined : toRejection(row)
  }

  paramByPayload(payload: CID): AcceptedBlock | undefined {
    const cid = this.#s.paramByPayload.get(payload.toString())
    return cid === undefined ? undefined : this.#must(cid)
  }

  *all(): Iterable<AcceptedBlock> {
    // Paged by seq, so callers may put or query between items.
    let after = 0
    for (;;) {
      const page = this.#s.cidsAfter.all(after, PAGE)
      for (const { cid } of page) yield this.#must(cid)
      if (page.length < PAGE) return
      after = (page[page.length - 1] as { seq: number }).seq
    }
  }

  get size(): number {
    return this.#size
  }

  contentHash(): string {
    const hash = createHash('sha256').update('blyan chain store content v1\n')
    for (const { table, stmt } of this.#s.hash) {
      hash.update(`\ntable ${table}\n`)
      let rows = 0n
      for (const row of stmt.iterate() as Iterable<unknown[]>) {
        hash.update(ROW)
        for (const value of row) feed(hash, value)
        rows++
      }
      feed(hash, rows)
    }
    return hash.digest('hex')
  }

  close(): void {
    if (!this.#db.open) return
    this.#cache.clear()
    this.#db.pragma('optimize') // keeps the planner's statistics current, cheaply
    this.#db.close()
  }

  // -------------------------------------------------------------------------------------------
  // Checking

  check(options: { onProgress?: (done: number, total: number) => void } = {}): void {
    const onProgress = options.onProgress
    if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError('options.onProgress: expected function')
    try {
      this.#check(onProgress)
    } catch (e) {
      if (isCorruption(e)) throw new StoreDamagedError(this.#path, `SQLite: ${messageOf(e)}`, { cause: e })
      throw e
    }
  }

  #check(onProgress: ((done: number, total: number) => void) | undefined): void {
    const integrity = (this.#db.pragma('integrity_check(10)') as { integrity_check: string }[]).map((r) => r.integrity_check)
    if (integrity.length !== 1 || integrity[0] !== 'ok') throw new StoreDamagedError(this.#path, `integrity_check: ${integrity.join('; ')}`)
    const total = (this.#s.countRaw.get() as number) + (this.#s.count.get() as number)
    let done = 0
    const tick = (): void => {
      done++
      if (onProgress !== undefined && (done % PAGE === 0 || done === total)) onProgress(done, total)
    }
    onProgress?.(0, total)

    // Every raw row hashes to its CID.
    let after = ''
    for (;;) {
      const page = this.#s.rawAfter.all(after, PAGE)
      for (const { cid, bytes } of page) {
        const problem = rawProblem(cid, bytes)
        if (problem !== null) throw new StoreDamagedError(cid, problem)
        tick()
      }
      if (page.length < PAGE) break
      after = (page[page.length - 1] as { cid: string }).cid
    }

    // Every block row agrees with its header, its links, its bytes and its derived rows.
    let seq = 0
    for (;;) {
      const page = this.#s.rowsAfter.all(seq, PAGE)
      for (const row of page) {
        try {
          this.#checkBlock(row)
        } catch (e) {
          if (e instanceof StoreDamagedError || isCorruption(e)) throw e
          throw new StoreDamagedError(row.cid, messageOf(e), { cause: e })
        }
        tick()
      }
      if (page.length < PAGE) break
      seq = (page[page.length - 1] as BlockRow).seq
    }

    const fk = this.#db.pragma('foreign_key_check') as { table: string; rowid: number | null; parent: string }[]
    if (fk.length > 0) {
      const first = fk[0] as { table: string; rowid: number | null; parent: string }
      throw new StoreDamagedError(first.table, `${fk.length} rows reference missing ${first.parent} rows (first: rowid ${String(first.rowid)})`)
    }
    const orphan = this.#s.orphanRaw.get()
    if (orphan !== undefined) throw new StoreDamagedError(orphan, 'raw block owned by no accepted block')

    // Checkpoints: the sequence from 0, each id its body's CID, each final under the rules against the store.
    let previous: Checkpoint | null = null
    for (let from = 0; ; from += PAGE) {
      const page = this.checkpoints(from, PAGE)
      for (const row of page) {
        const item = `checkpoint ${row.number}`
        let checkpoint: Checkpoint
        try {
          checkpoint = decodeCheckpoint(row.bytes)
          if (checkpointId(checkpoint).toString() !== row.id) throw new Error(`id ${row.id} is not its body's CID ${checkpointId(checkpoint)}`)
          checkCheckpoint(checkpoint, this, previous, { quorum: true })
        } catch (e) {
          throw new StoreDamagedError(item, messageOf(e), { cause: e })
        }
        previous = checkpoint
      }
      if (page.length < PAGE) break
    }
  }

  /** Re-derive everything about one block row from its bytes; throws StoreDamagedError at the first difference. */
  #checkBlock(row: BlockRow): void {
    const fail = (detail: string, item: string = row.cid): never => {
      throw new StoreDamagedError(item, detail)
    }
    const rawOf = (cid: CID): Uint8Array | undefined => {
      const bytes = this.#s.raw.get(cid.toString())
      return bytes === undefined ? undefined : plain(bytes)
    }
    let cid: CID
    try {
      cid = CID.parse(row.cid)
    } catch (e) {
      return fail(`block CID does not parse: ${messageOf(e)}`)
    }
    const headerBytes = rawOf(cid) ?? fail('header bytes missing from raw')
    let header: Header
    try {
      header = decodeHeader(headerBytes)
    } catch (e) {
      return fail(`header does not decode: ${messageOf(e)}`)
    }

    // Columns against the header.
    if (!bytesEqual(plain(row.key), cid.bytes)) fail('column key is not the CID bytes')
    const columns: [keyof BlockRow, unknown][] = [
      ['chain', header.chain_id], ['idx', header.index], ['prev', header.prev?.toString() ?? null], ['block_type', header.block_type],
      ['expert_name', header.expert_name], ['timestamp', header.timestamp], ['difficulty', header.difficulty],
      ['payload', header.payload.toString()], ['payload_size', header.payload_size]
    ]
    for (const [name, want] of columns) if (row[name] !== want) fail(`column ${name} is ${String(row[name])}, the header says ${String(want)}`)

    // Links: deps rows are depends_on; prev and every dependency are accepted blocks.
    const deps = this.#s.depsOf.all(row.seq)
    const wantDeps = header.depends_on.map(String).sort()
    if (deps.length !== wantDeps.length || deps.some((d, i) => d !== wantDeps[i])) fail(`deps rows [${deps.join(', ')}] differ from depends_on [${wantDeps.join(', ')}]`)
    const linked = (link: CID, what: string): BlockRow => this.#s.row.get(link.toString()) ?? fail(`${what} ${link} is not an accepted block`)
    const prev = header.prev === null ? null : linked(header.prev, 'prev')
    if (prev !== null && prev.chain !== row.chain) fail(`prev ${prev.cid} is on chain ${prev.chain}`)
    const depRows = header.depends_on.map((d, i) => linked(d, `depends_on[${i}]`))

    // Derived columns: rules block, cumulative work, expert version.
    const metas = depRows.filter((d) => d.chain === 'A')
    const wantMeta = header.chain_id === 'A' ? row.cid : metas.length === 1 ? (metas[0] as BlockRow).cid : null
    if (wantMeta === null || row.meta !== wantMeta) fail(`column meta is ${row.meta}; the rules block is ${String(wantMeta)}`)
    const wantWork = (header.chain_id === 'B' || prev === null ? 0n : BigInt(prev.work)) + blockWork(header.difficulty)
    if (row.work !== wantWork.toString()) fail(`column work is ${row.work}, expected ${wantWork}`)
    const base = header.supersedes === null ? null : depRows.find((d) => d.cid === (header.supersedes as CID).toString()) ?? null
    const wantVersion = base === null ? 0 : base.expert_version + 1
    if (row.expert_version !== wantVersion) fail(`column expert_version is ${row.expert_version}, expected ${wantVersion}`)

    // Payload: the document, or the complete UnixFS file and its index prefix.
    const owned = [row.cid]
    const file = (root: CID, size: number, what: string): void => {
      try {
        owned.push(...fileBlocks(root, size, rawOf))
      } catch (e) {
        if (isRuleError(e)) fail(`${what} of block ${row.cid}: ${e.message}`, e.field)
        throw e
      }
    }
    let document: AcceptedBlock['document'] = null
    if (header.chain_id === 'B') {
      file(header.payload, header.payload_size, 'payload')
      const prefix = payloadPrefix(header.payload, rawOf)
      if (row.payload_index === null || !bytesEqual(plain(row.payload_index), prefix)) fail('column payload_index differs from the payload\'s first bytes')
    } else {
      const doc = rawOf(header.payload) ?? fail(`payload document of block ${row.cid} is missing`, header.payload.toString())
      if (doc.length !== header.payload_size) fail(`payload document is ${doc.length} bytes, payload_size ${header.payload_size}`)
      owned.push(header.payload.toString())
      try {
        document = decodeDocument(header, doc)
      } catch (e) {
        fail(`payload document does not decode: ${messageOf(e)}`)
      }
    }

    // Certificate: chain B new versions carry one naming the block; rewards carry the one `pol` names.
    const needsCert = header.supersedes !== null || header.block_type === 'reward'
    if (needsCert !== (row.certificate !== null)) fail(`column certificate is ${String(row.certificate)}`)
    let candidate: string | null = null
    let certValue: Certificate | null = null
    if (row.certificate !== null) {
      if (header.pol !== null && row.certificate !== header.pol.toString()) fail(`column certificate is ${row.certificate}, pol is ${header.pol}`)
      const certCid = CID.parse(row.certificate)
      const bytes = rawOf(certCid) ?? fail(`certificate of block ${row.cid} is missing`, row.certificate)
      try {
        certValue = decodeCertificate(bytes)
        candidate = certValue.candidate.toString()
      } catch (e) {
        fail(`certificate does not decode: ${messageOf(e)}`, row.certificate)
      }
      if (header.chain_id === 'B' && candidate !== row.cid) fail(`certificate ${row.certificate} names candidate ${candidate}`)
      owned.push(row.certificate)
    }

    // Derived rows: ledger deltas and the rewarded candidate.
    const probe = { header, document, certificate: certValue === null ? null : { value: certValue } } as AcceptedBlock
    const wantLedger = ledgerDeltas(probe).map((l) => `${Buffer.from(l.pub).toString('hex')}:${l.delta}`).sort()
    const gotLedger = this.#s.ledgerOf.all(row.seq).map((l) => `${Buffer.from(l.pub).toString('hex')}:${l.delta}`).sort()
    if (wantLedger.join() !== gotLedger.join()) fail(`ledger rows [${gotLedger.join(', ')}] differ from the document [${wantLedger.join(', ')}]`)
    const reward = this.#s.rewardOf.get(row.seq) ?? null
    const wantReward = header.block_type === 'reward' ? candidate : null
    if (reward !== wantReward) fail(`rewards row names ${String(reward)}, expected ${String(wantReward)}`)

    // Owners: exactly the header, payload, certificate and the linked files this block brought.
    const owners = this.#s.ownersOf.all(row.seq)
    if (owners[0]?.raw !== row.cid || owners[0]?.ord !== 0) fail('the header is not the first raw block the block owns')
    const ownedSet = new Set(owners.map((o) => o.raw))
    for (const l of linkedFiles(probe)) if (ownedSet.has(l.cid.toString())) file(l.cid, l.size, l.field)
    for (const d of linkedDocuments(probe)) owned.push(d.cid.toString())
    const want = new Set(owned)
    for (const k of want) if (!ownedSet.has(k)) fail(`owners row for ${k} is missing`, k)
    for (const k of ownedSet) if (!want.has(k)) fail(`owns raw block ${k}, which it did not bring`)

    const extended = this.#s.isExtended.get(row.cid) as number
    if (row.extended !== extended) fail(`column extended is ${row.extended}, expected ${extended}`)
  }

  // -------------------------------------------------------------------------------------------
  // Decoding

  /** The block at a CID string that an index row names; damage if it is gone. */
  #must(key: string): AcceptedBlock {
    const block = this.get(CID.parse(key))
    if (block === undefined) throw new StoreDamagedError(key, 'indexed block row vanished')
    return block
  }

  #remember(block: AcceptedBlock): AcceptedBlock {
    if (this.#cacheSize === 0) return block
    const key = block.cid.toString()
    this.#cache.set(key, block)
    if (this.#cache.size > this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value as string)
    return block
  }

  /** An AcceptedBlock from stored bytes and derived columns (StoreDamagedError if they do not decode). */
  #rebuild(row: FullRow): AcceptedBlock {
    try {
      if (row.header_bytes === null) throw new Error('header bytes missing from raw')
      const bytes = plain(row.header_bytes)
      const header = decodeHeader(bytes)
      let document: AcceptedBlock['document'] = null
      let tensors: AcceptedBlock['tensors'] = null
      if (header.chain_id === 'B') {
        if (row.payload_index === null) throw new Error('payload index missing')
        tensors = decodePayloadIndex(plain(row.payload_index))
      } else {
        if (row.payload_bytes === null) throw new Error('payload document missing from raw')
        document = decodeDocument(header, plain(row.payload_bytes))
      }
      let certificate: AcceptedBlock['certificate'] = null
      if (row.certificate !== null) {
        if (row.cert_bytes === null) throw new Error('certificate missing from raw')
        const certBytes = plain(row.cert_bytes)
        certificate = Object.freeze({ cid: CID.parse(row.certificate), bytes: certBytes, value: decodeCertificate(certBytes) })
      }
      return Object.freeze({
        cid: CID.decode(plain(row.key)),
        bytes,
        header,
        document,
        tensors,
        certificate,
        meta: CID.parse(row.meta),
        work: BigInt(row.work),
        expertVersion: row.expert_version
      })
    } catch (e) {
      throw new StoreDamagedError(row.cid, `stored block does not decode: ${messageOf(e)}`, { cause: e })
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function decodeDocument(header: Header, bytes: Uint8Array): NonNullable<AcceptedBlock['document']> {
  switch (header.chain_id) {
    case 'A':
      return decodeMeta(bytes)
    case 'C':
      return decodeLedgerDocument(bytes, header.block_type)
    case 'D':
      return header.block_type === 'decision' ? decodeDecision(bytes) : decodeDataset(bytes)
    case 'B':
      throw new TypeError('chain B payloads are files, not documents')
  }
}

/** Chain C balance changes of a block (a self-transfer nets to zero). */
function ledgerDeltas(block: Pick<AcceptedBlock, 'header' | 'document'>): { pub: Uint8Array; delta: number }[] {
  return block.header.chain_id === 'C' ? ledgerCredits(block) : []
}

/** Why a raw row is damaged, or null: its CID must be CIDv1 sha2-256 (dag-cbor, dag-pb or raw) of its bytes. */
function rawProblem(key: string, bytes: Uint8Array): string | null {
  let cid: CID
  try {
    cid = CID.parse(key)
  } catch (e) {
    return `raw CID does not parse: ${messageOf(e)}`
  }
  if (!isProtocolCid(cid, [DAG_CBOR, DAG_PB, RAW])) return 'raw CID is not a CIDv1 sha2-256 dag-cbor, dag-pb or raw CID'
  if (cid.toString() !== key) return 'raw CID is not in its canonical form'
  if (!bytesEqual(createHash('sha256').update(bytes).digest(), cid.multihash.digest)) return 'raw bytes do not hash to their CID'
  return null
}

/** Bytes from SQLite (a Buffer) as a plain Uint8Array over memory of its own. */
function plain(bytes: Uint8Array): Uint8Array {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return new Uint8Array(bytes.buffer)
  return new Uint8Array(bytes)
}

const ROW = Uint8Array.of(0xff)

/** Type-tagged, length-prefixed value for the content hash: the encoding is injective. */
function feed(hash: Hash, value: unknown): void {
  if (value === null) {
    hash.update(Uint8Array.of(0))
  } else if (typeof value === 'bigint') {
    const b = Buffer.alloc(9)
    b[0] = 1
    b.writeBigInt64BE(value, 1)
    hash.update(b)
  } else if (typeof value === 'number') {
    const b = Buffer.alloc(9)
    b[0] = 2
    b.writeDoubleBE(value, 1)
    hash.update(b)
  } else if (typeof value === 'string') {
    const s = Buffer.from(value, 'utf8')
    const b = Buffer.alloc(5)
    b[0] = 3
    b.writeUInt32BE(s.length, 1)
    hash.update(b).update(s)
  } else if (value instanceof Uint8Array) {
    const b = Buffer.alloc(5)
    b[0] = 4
    b.writeUInt32BE(value.length, 1)
    hash.update(b).update(value)
  } else {
    throw new TypeError(`contentHash: unexpected column value ${typeof value}`)
  }
}

// ---------------------------------------------------------------------------------------------
// UnixFS files over a block source

type GetBlock = (cid: CID) => Uint8Array | undefined

/**
 * Every block of the UnixFS file at `root` (each once, root first), the file checked by the codec's
 * walk (src/codec/unixfs.ts): present, well-formed, sizes agreeing, `size` bytes in all. A problem
 * is a RuleError whose field is the CID of the block at fault.
 */
function fileBlocks(root: CID, size: number, get: GetBlock): string[] {
  const out = new Set<string>()
  walkFile(root, get, { size, field: (cid) => cid.toString(), visit: (cid) => void out.add(cid.toString()) })
  return [...out]
}

/** A chain B payload's prefix: 16 header bytes and the L-byte index (what decodePayloadIndex reads). */
function payloadPrefix(root: CID, get: GetBlock): Uint8Array {
  const byCid = { field: (cid: CID) => cid.toString() }
  const first = fileHead(root, get, PAYLOAD_PREFIX_SIZE, byCid)
  return fileHead(root, get, PAYLOAD_PREFIX_SIZE + payloadIndexLength(first), byCid)
}

function toRejection(r: RejectionRow): Rejection {
  return Object.freeze({
    cid: r.cid,
    code: r.code as RuleCode,
    field: r.field,
    message: r.message,
    at: r.at,
    chain: r.chain as ChainId | null,
    blockType: r.block_type,
    scope: r.scope
  })
}
