/**
 * The Proof-of-Learning service's own state, beside the chain store: candidates waiting for the
 * validators (with the submission CAR, so a killed node loses none), their outcomes (which set
 * each miner key's trust level), job leases with each key's request sequence (so a signed lease or
 * release cannot be replayed), and the checkpoint votes this node's validator keys signed (so a key
 * never signs two checkpoints of one number, even across restarts). This is node-local policy, not chain content:
 * a candidate enters the chain store only once certified, through the full node's rules.
 *
 * SQLite (better-sqlite3), WAL, synchronous=FULL, one file (`pol.sqlite` in the data directory).
 *
 * @module
 */
import Database from 'better-sqlite3'

/** `PRAGMA user_version` of the schema below; version 1 files are migrated on open. */
export const POL_SCHEMA_VERSION = 2
/** `PRAGMA application_id`: 'BLYP'. */
const APPLICATION_ID = 0x424c5950

/**
 * Tables schema version 2 made: leases keyed by job and miner (a job may be shared by several newbie
 * keys), each key's request sequence, and the validator keys' last votes. A version 1 file gets them
 * (its leases copied) and the candidates' two new columns on open.
 */
const V2_TABLES = `
CREATE TABLE leases (
  job        TEXT NOT NULL,
  miner      TEXT NOT NULL,
  leased_at  INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (job, miner)
) WITHOUT ROWID;
CREATE INDEX leases_miner ON leases(miner, expires_at);
CREATE TABLE lease_sequence (
  miner   TEXT PRIMARY KEY,
  last_at INTEGER NOT NULL
);
CREATE TABLE votes (
  validator TEXT PRIMARY KEY,
  number    INTEGER NOT NULL,
  body      BLOB NOT NULL
);
`
const TABLES = ['candidates', 'leases', 'lease_sequence', 'votes'] as const

const SCHEMA = `
CREATE TABLE candidates (
  cid         TEXT PRIMARY KEY,
  car         BLOB NOT NULL,
  miner       TEXT NOT NULL,
  expert      TEXT NOT NULL,
  base        TEXT NOT NULL,
  rules       TEXT NOT NULL,
  payload     TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
  code        TEXT,
  message     TEXT,
  beacon      TEXT,
  certificate TEXT,
  reward      TEXT,
  amount      INTEGER,
  loss_before REAL,
  loss_after  REAL,
  decided_at  INTEGER,
  attempts    INTEGER NOT NULL DEFAULT 0,
  last_error  TEXT
);
CREATE INDEX candidates_status ON candidates(status, received_at);
CREATE INDEX candidates_miner ON candidates(miner, received_at);
CREATE INDEX candidates_payload ON candidates(payload);
${V2_TABLES}`

export type CandidateStatus = 'pending' | 'accepted' | 'rejected'

/** A candidate as the service tracks it; CIDs and keys as strings (CID base32, key hex). */
export interface CandidateRecord {
  readonly cid: string
  readonly miner: string
  readonly expert: string
  readonly base: string
  /** The chain A block the candidate depends on (its rules). */
  readonly rules: string
  readonly payload: string
  readonly receivedAt: number
  readonly status: CandidateStatus
  /** Why it was rejected (a RuleCode) and the human message; null otherwise. */
  readonly code: string | null
  readonly message: string | null
  /** Set once evaluated: the beacon, the losses; once accepted: certificate, reward block and amount. */
  readonly beacon: string | null
  readonly certificate: string | null
  readonly reward: string | null
  readonly amount: number | null
  readonly lossBefore: number | null
  readonly lossAfter: number | null
  readonly decidedAt: number | null
  /** Rounds that failed to judge it (an error, not a verdict), and the last such error: it is retried. */
  readonly attempts: number
  readonly lastError: string | null
}

export interface Decision {
  readonly status: 'accepted' | 'rejected'
  readonly code?: string | null
  readonly message?: string | null
  readonly beacon?: string | null
  readonly certificate?: string | null
  readonly reward?: string | null
  readonly amount?: number | null
  readonly lossBefore?: number | null
  readonly lossAfter?: number | null
  readonly at: number
}

export interface Lease {
  readonly job: string
  readonly miner: string
  readonly leasedAt: number
  readonly expiresAt: number
}

interface CandidateRow {
  cid: string
  miner: string
  expert: string
  base: string
  rules: string
  payload: string
  received_at: number
  status: CandidateStatus
  code: string | null
  message: string | null
  beacon: string | null
  certificate: string | null
  reward: string | null
  amount: number | null
  loss_before: number | null
  loss_after: number | null
  decided_at: number | null
  attempts: number
  last_error: string | null
}

interface LeaseRow {
  job: string
  miner: string
  leased_at: number
  expires_at: number
}

function leaseOf(r: LeaseRow): Lease {
  return Object.freeze({ job: r.job, miner: r.miner, leasedAt: r.leased_at, expiresAt: r.expires_at })
}

const COLUMNS = 'cid, miner, expert, base, rules, payload, received_at, status, code, message, beacon, certificate, reward, amount, loss_before, loss_after, decided_at, attempts, last_error'

function record(r: CandidateRow): CandidateRecord {
  return Object.freeze({
    cid: r.cid, miner: r.miner, expert: r.expert, base: r.base, rules: r.rules, payload: r.payload, receivedAt: r.received_at,
    status: r.status, code: r.code, message: r.message, beacon: r.beacon, certificate: r.certificate, reward: r.reward,
    amount: r.amount, lossBefore: r.loss_before, lossAfter: r.loss_after, decidedAt: r.decided_at, attempts: r.attempts, lastError: r.last_error
  })
}

/** The file is not a PoL store of this version, or it is damaged. */
export class PolStoreError extends Error {
  override readonly name = 'PolStoreError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** Pragmas; the schema on a new file, the migration of a version 1 file, or the checks that this is our store and whole. */
function prepareFile(db: Database.Database, path: string): void {
  db.pragma('journal_mode = WAL') // reads the file header first: garbage fails here
  db.pragma('synchronous = FULL')
  const version = db.pragma('user_version', { simple: true }) as number
  const appId = db.pragma('application_id', { simple: true }) as number
  const names = new Set(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[])
  if (version === 0 && appId === 0 && names.size === 0) {
    db.transaction(() => {
      db.exec(SCHEMA)
      db.pragma(`application_id = ${APPLICATION_ID}`)
      db.pragma(`user_version = ${POL_SCHEMA_VERSION}`)
    })()
    return
  }
  if (appId !== APPLICATION_ID || (version !== POL_SCHEMA_VERSION && version !== 1)) {
    throw new PolStoreError(`${path}: not a Blyan PoL store of schema ${POL_SCHEMA_VERSION} (application_id ${appId}, version ${version})`)
  }
  const integrity = (db.pragma('integrity_check(10)') as { integrity_check: string }[]).map((r) => r.integrity_check)
  if (integrity.length !== 1 || integrity[0] !== 'ok') throw new PolStoreError(`${path}: damaged (integrity_check: ${integrity.join('; ')})`)
  if (version === 1) {
    db.transaction(() => {
      db.exec(`ALTER TABLE candidates ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE candidates ADD COLUMN last_error TEXT;
        ALTER TABLE leases RENAME TO leases_v1;
        DROP INDEX leases_miner;${V2_TABLES}
        INSERT INTO leases (job, miner, leased_at, expires_at) SELECT job, miner, leased_at, expires_at FROM leases_v1;
        DROP TABLE leases_v1;`)
      db.pragma(`user_version = ${POL_SCHEMA_VERSION}`)
    })()
    for (const t of ['lease_sequence', 'votes']) names.add(t)
  }
  for (const table of TABLES) if (!names.has(table)) throw new PolStoreError(`${path}: damaged (table ${table} missing)`)
  db.pragma(`user_version = ${POL_SCHEMA_VERSION}`) // a write now: a store the node cannot write stops it from starting
}

export class PolStore {
  readonly #db: Database.Database

  private constructor(db: Database.Database) {
    this.#db = db
  }

  /**
   * Open (or create) the PoL store at `path` (`:memory:` for tests). A version 1 file is migrated to
   * version 2 in one transaction. A file that is not a SQLite database, is another kind of database,
   * fails SQLite's integrity check or lacks a table is refused with PolStoreError naming the problem:
   * the node must not serve, or build on, a damaged record of its candidates.
   */
  static open(path: string): PolStore {
    let db: Database.Database | undefined
    try {
      db = new Database(path)
      prepareFile(db, path)
      return new PolStore(db)
    } catch (e) {
      db?.close()
      if (e instanceof PolStoreError) throw e
      const code = (e as { code?: unknown } | null)?.code
      if (e instanceof Database.SqliteError && typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')) {
        throw new PolStoreError(`${path}: damaged, not a readable SQLite database (${e.message})`, { cause: e })
      }
      if (e instanceof Database.SqliteError && typeof code === 'string' && (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM')) {
        throw new PolStoreError(`${path} is not writable (${e.message}): the node records candidates and votes there; fix the permissions or choose another data directory`, { cause: e })
      }
      throw e
    }
  }

  /** Queue a candidate (its submission CAR kept for the validators). Idempotent by CID. */
  add(c: Pick<CandidateRecord, 'cid' | 'miner' | 'expert' | 'base' | 'rules' | 'payload' | 'receivedAt'>, car: Uint8Array): void {
    this.#db.prepare(`INSERT OR IGNORE INTO candidates (cid, car, miner, expert, base, rules, payload, received_at, status)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')`).run(c.cid, car, c.miner, c.expert, c.base, c.rules, c.payload, c.receivedAt)
  }

  get(cid: string): CandidateRecord | undefined {
    const r = this.#db.prepare(`SELECT ${COLUMNS} FROM candidates WHERE cid = ?`).get(cid) as CandidateRow | undefined
    return r === undefined ? undefined : record(r)
  }

  car(cid: string): Uint8Array | undefined {
    return this.#db.prepare('SELECT car FROM candidates WHERE cid = ?').pluck().get(cid) as Uint8Array | undefined
  }

  /** Pending candidates, oldest first. */
  pending(): CandidateRecord[] {
    return (this.#db.prepare(`SELECT ${COLUMNS} FROM candidates WHERE status = 'pending' ORDER BY received_at, cid`).all() as CandidateRow[]).map(record)
  }

  /** The first candidate (any status: a rejected payload is not judged twice) that carried this payload. */
  byPayload(payload: string): CandidateRecord | undefined {
    const r = this.#db.prepare(`SELECT ${COLUMNS} FROM candidates WHERE payload = ? ORDER BY received_at LIMIT 1`).get(payload) as CandidateRow | undefined
    return r === undefined ? undefined : record(r)
  }

  /** Candidates of a miner, newest first. */
  byMiner(miner: string, limit = 100): CandidateRecord[] {
    return (this.#db.prepare(`SELECT ${COLUMNS} FROM candidates WHERE miner = ? ORDER BY received_at DESC, cid LIMIT ?`).all(miner, limit) as CandidateRow[]).map(record)
  }

  /** Candidates a miner submitted at or after `since` (ms), any status. */
  submittedSince(miner: string, since: number): number {
    return this.#db.prepare('SELECT count(*) FROM candidates WHERE miner = ? AND received_at >= ?').pluck().get(miner, since) as number
  }

  pendingOf(miner: string): number {
    return this.#db.prepare("SELECT count(*) FROM candidates WHERE miner = ? AND status = 'pending'").pluck().get(miner) as number
  }

  /** A miner's decided outcomes, oldest first (what its trust level is computed from). */
  outcomes(miner: string): ('accepted' | 'rejected')[] {
    return this.#db.prepare("SELECT status FROM candidates WHERE miner = ? AND status != 'pending' ORDER BY decided_at, cid").pluck().all(miner) as ('accepted' | 'rejected')[]
  }

  decide(cid: string, d: Decision): void {
    this.#db.prepare(`UPDATE candidates SET status = ?, code = ?, message = ?, beacon = ?, certificate = ?, reward = ?, amount = ?,
      loss_before = ?, loss_after = ?, decided_at = ? WHERE cid = ?`).run(
      d.status, d.code ?? null, d.message ?? null, d.beacon ?? null, d.certificate ?? null, d.reward ?? null, d.amount ?? null,
      d.lossBefore ?? null, d.lossAfter ?? null, d.at, cid
    )
  }

  /** A round failed to judge `cid` (an error, not a verdict): count it and keep why; it stays pending. */
  noteFailure(cid: string, error: string): void {
    this.#db.prepare("UPDATE candidates SET attempts = attempts + 1, last_error = ? WHERE cid = ? AND status = 'pending'").run(error, cid)
  }

  // ------------------------------------------------------------------------------------ leases

  /** The live leases on `job` at `now`, oldest first. */
  leasesOn(job: string, now: number): Lease[] {
    return (this.#db.prepare('SELECT job, miner, leased_at, expires_at FROM leases WHERE job = ? AND expires_at > ? ORDER BY leased_at, miner').all(job, now) as LeaseRow[]).map(leaseOf)
  }

  /** Live leases of a miner at `now`. */
  leasesOf(miner: string, now: number): number {
    return this.#db.prepare('SELECT count(*) FROM leases WHERE miner = ? AND expires_at > ?').pluck().get(miner, now) as number
  }

  putLease(l: Lease): void {
    this.#db.prepare('INSERT OR REPLACE INTO leases (job, miner, leased_at, expires_at) VALUES (?, ?, ?, ?)').run(l.job, l.miner, l.leasedAt, l.expiresAt)
  }

  dropLease(job: string, miner: string): void {
    this.#db.prepare('DELETE FROM leases WHERE job = ? AND miner = ?').run(job, miner)
  }

  /**
   * Take `at` as the key's next signed-request time: true when it is later than every `at` the key
   * used before (and recorded now), false for a replay or an older request.
   */
  advanceSequence(miner: string, at: number): boolean {
    return this.#db.transaction((): boolean => {
      const last = this.#db.prepare('SELECT last_at FROM lease_sequence WHERE miner = ?').pluck().get(miner) as number | undefined
      if (last !== undefined && at <= last) return false
      this.#db.prepare('INSERT INTO lease_sequence (miner, last_at) VALUES (?, ?) ON CONFLICT (miner) DO UPDATE SET last_at = excluded.last_at').run(miner, at)
      return true
    })()
  }

  // ------------------------------------------------------------------------------------ votes

  /** The body bytes of the last checkpoint vote `validator` (hex key) signed on this node, if any. */
  lastVote(validator: string): Uint8Array | undefined {
    const bytes = this.#db.prepare('SELECT body FROM votes WHERE validator = ?').pluck().get(validator) as Uint8Array | undefined
    return bytes === undefined ? undefined : new Uint8Array(bytes)
  }

  /** Remember the body `validator` just signed (its number and bytes), before the vote leaves the node. */
  recordVote(validator: string, number: number, body: Uint8Array): void {
    this.#db.prepare('INSERT INTO votes (validator, number, body) VALUES (?, ?, ?) ON CONFLICT (validator) DO UPDATE SET number = excluded.number, body = excluded.body').run(validator, number, body)
  }

  close(): void {
    this.#db.close()
  }
}
