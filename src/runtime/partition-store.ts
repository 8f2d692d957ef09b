/**
 * A partition replica's state on disk: the `PartitionStore` of src/partitions, one SQLite database (better-sqlite3)
 * per replica, in the agent's data directory.
 *
 * Schema (one file, format `shoal.partition.sqlite/1`, SQLite `application_id` 'SHPS', `user_version` 1):
 *
 *   partition_info (one row)   applied index, partition clock, format
 *   meta (key)                 the caller's rows (`setMeta`: the runtime's client sessions)
 *   collections (name)         kind, create version, declared
 *   entries (collection, key)  value BLOB, version
 *   queue_items (queue, idx, ordinal)   value BLOB, deliveries, lease index and expiry (NULL: never leased)
 *
 * Every row carries a CRC-32 of its contents (names and keys included, so a row cannot move unnoticed). Keys and
 * names are TEXT: the database is UTF-8 and the BINARY collation compares TEXT with memcmp, which is UTF-8 byte order,
 * the order `compareKeys` gives the memory store (embedded U+0000 included; the compliance suite checks it). A string
 * with a lone surrogate has no UTF-8 form (SQLite would store U+FFFD bytes and merge distinct keys), so writing one is
 * an invariant failure; the core refuses such keys before they get here.
 *
 * Transactions. `begin()` is `BEGIN IMMEDIATE` and `commit()` is `COMMIT`: one apply, one transaction, durable when
 * it returns (`journal_mode=WAL`, `synchronous=FULL`). Inside `batch(fn)` the store has already opened one outer
 * transaction, and `begin()`/`commit()`/`rollback()` become `SAVEPOINT apply`/`RELEASE`/`ROLLBACK TO`: a failed
 * command still undoes only its own writes, and the whole batch costs one fsync, at its end. Until then nothing of the
 * batch is durable, and if the batch fails none of it is kept (the PartitionState over the store must then be
 * reopened: its change feed already holds the lost applies).
 *
 * Durability needs FULL only because the runtime compacts its Raft log once it believes an index is applied: a lost
 * committed apply could otherwise never be replayed. `synchronous: 'normal'` is safe only with a `checkpoint()`
 * before every log compaction.
 *
 * Opening checks, so a damaged replica is refused rather than served as a smaller or empty one: the file must exist
 * (unless `create`), be non-empty, start with SQLite's magic and this store's application id, not be shorter than its
 * header says, pass `PRAGMA quick_check`, have this schema's version and an applied-index row that matches its
 * checksum; with `verify: 'full'` (the default) every row's checksum is checked too. Every read checks the checksums
 * of the rows it returns, so damage that appears later is an error, never a divergent replica.
 *
 * Snapshots are taken between applies: `snapshotTo(file)` is `VACUUM INTO` a temporary file (a consistent, compact
 * copy, in one read transaction), fsync, rename, fsync of the directory. `install(received, file)` checks a received
 * copy as `open` does, fsyncs it, removes the old replica's WAL and renames the copy into place, then fsyncs the
 * directory: after a crash the replica is the old database or the new one, whole. A new database is made the same way
 * (built under a temporary name, then renamed), so a crash while creating leaves no half-made replica.
 *
 * Errors name the file and what was wrong: `ERR_STORAGE_CORRUPT` (damage; restore the replica from a snapshot),
 * `ERR_STORAGE_FULL` (nothing of the write was kept; free space and retry), `ERR_STORAGE_VERSION` (another schema
 * version), `ERR_STORAGE` (any other failure, with the operation), `ERR_NOT_FOUND` (no database where one was
 * expected). Misuse (two transactions, a closed store, a snapshot with a transaction open) is an `InvariantError`.
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { invariant } from '../lib/assert.js';
import { NotFoundError, ShoalError } from '../lib/errors.js';
import { isWellFormed } from '../partitions/bytes.js';
import { readerOf, type CollectionKind, type CollectionRecord, type EntryRecord, type ItemPosition, type PartitionStore, type QueueItemRecord, type StoreTxn } from '../partitions/store.js';

/** Written in every partition database; a database of another format is refused. */
export const PARTITION_STORE_FORMAT = 'shoal.partition.sqlite/1';
/** SQLite header field `application_id` ('SHPS'): marks the file as a partition store (file(1) shows it too). */
export const PARTITION_STORE_APPLICATION_ID = 0x53485053;
/** SQLite header field `user_version`: the schema below. */
export const PARTITION_STORE_SCHEMA_VERSION = 1;
/** At most this many problems found by `PRAGMA quick_check` are quoted in an ERR_STORAGE_CORRUPT message. */
export const PARTITION_STORE_CHECK_MAX_PROBLEMS = 10;

const SCHEMA = `
CREATE TABLE partition_info (
  id INTEGER PRIMARY KEY CHECK (id = 0), format TEXT NOT NULL,
  applied_index INTEGER NOT NULL, clock_ms INTEGER NOT NULL, crc INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL, crc INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE collections (
  name TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('dictionary', 'queue')),
  create_version INTEGER NOT NULL, declared INTEGER NOT NULL, crc INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE entries (
  collection TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, version INTEGER NOT NULL, crc INTEGER NOT NULL,
  PRIMARY KEY (collection, key)
) WITHOUT ROWID;
CREATE TABLE queue_items (
  queue TEXT NOT NULL, idx INTEGER NOT NULL, ordinal INTEGER NOT NULL, value BLOB NOT NULL,
  deliveries INTEGER NOT NULL, lease_index INTEGER, lease_expires_ms INTEGER, crc INTEGER NOT NULL,
  PRIMARY KEY (queue, idx, ordinal)
) WITHOUT ROWID;
`;
const TABLES = ['partition_info', 'meta', 'collections', 'entries', 'queue_items'];

// --- Errors ----------------------------------------------------------------------------------------------------------

/** The database is damaged: it is never served. */
export class PartitionStoreCorruptError extends ShoalError {
  constructor(file: string, what: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('ERR_STORAGE_CORRUPT', `the partition database ${file} is corrupt: ${what}; restore this replica from a snapshot (or remove the file and let the replica be rebuilt)`, { file, ...details }, options);
  }
}

/** The database was written by a Shoal with another schema: never read as this one. */
export class PartitionStoreVersionError extends ShoalError {
  constructor(file: string, version: unknown) {
    super('ERR_STORAGE_VERSION', `the partition database ${file} has schema version ${String(version)}; this agent reads version ${PARTITION_STORE_SCHEMA_VERSION} (run the Shoal version that wrote it, or restore this replica from a snapshot)`, { file, schemaVersion: version });
  }
}

/** The disk (or the configured size) is full. Nothing of the write was kept. */
export class PartitionStoreFullError extends ShoalError {
  constructor(file: string, operation: string, cause: unknown) {
    super('ERR_STORAGE_FULL', `the partition database ${file} cannot grow: the disk is full during ${operation} (nothing of this write was kept; free space and the agent continues)`, { file, operation }, { cause });
  }
}

/** Any other failure of the database, with the operation that failed. */
export class PartitionStoreError extends ShoalError {
  constructor(file: string, operation: string, cause: unknown) {
    super('ERR_STORAGE', `the partition database ${file}: ${operation} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { file, operation }, { cause });
  }
}

function sqliteCode(err: unknown): string {
  return String((err as { code?: unknown }).code ?? '');
}

function isDiskFull(err: unknown): boolean {
  return sqliteCode(err) === 'SQLITE_FULL' || (sqliteCode(err) === 'SQLITE_IOERR_WRITE' && /full/i.test(String((err as Error).message)));
}

function isCorrupt(err: unknown): boolean {
  const code = sqliteCode(err);
  return code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB';
}

/** A ShoalError for `err`, thrown while `operation` ran on `file`. ShoalErrors (invariants included) pass through. */
function storageError(file: string, operation: string, err: unknown): ShoalError {
  if (err instanceof ShoalError) return err;
  if (isDiskFull(err)) return new PartitionStoreFullError(file, operation, err);
  if (isCorrupt(err)) return new PartitionStoreCorruptError(file, `SQLite found damage during ${operation} (${(err as Error).message})`, { operation }, { cause: err });
  return new PartitionStoreError(file, operation, err);
}

// --- Checksums -------------------------------------------------------------------------------------------------------

const SEPARATOR = Buffer.from([0x1f]);

function checksum(...parts: (string | number | Uint8Array | null)[]): number {
  let c = 0;
  for (const p of parts) {
    const bytes = p instanceof Uint8Array ? p : Buffer.from(p === null ? '\u0000' : String(p));
    // crc32 of an empty buffer without a backing store (an empty BLOB from SQLite) returns 0, not the running value.
    if (bytes.length > 0) c = crc32(bytes, c);
    c = crc32(SEPARATOR, c); // ("ab", "c") and ("a", "bc") differ
  }
  return c >>> 0;
}

const infoCrc = (format: string, applied: number, clock: number): number => checksum('info', format, applied, clock);
const metaCrc = (key: string, value: Uint8Array): number => checksum('meta', key, value);
const collectionCrc = (name: string, kind: string, createVersion: number, declared: number): number => checksum('collection', name, kind, createVersion, declared);
const entryCrc = (collection: string, key: string, value: Uint8Array, version: number): number => checksum('entry', collection, key, value, version);
const itemCrc = (queue: string, r: Omit<ItemRow, 'queue' | 'crc' | 'value'> & { value: Uint8Array }): number =>
  checksum('item', queue, r.idx, r.ordinal, r.value, r.deliveries, r.lease_index, r.lease_expires_ms);

// --- Rows ------------------------------------------------------------------------------------------------------------

interface InfoRow { format: string; applied_index: number; clock_ms: number; crc: number }
interface MetaRow { key: string; value: Buffer; crc: number }
interface CollectionRow { name: string; kind: string; create_version: number; declared: number; crc: number }
interface EntryRow { collection: string; key: string; value: Buffer; version: number; crc: number }
interface ItemRow { queue: string; idx: number; ordinal: number; value: Buffer; deliveries: number; lease_index: number | null; lease_expires_ms: number | null; crc: number }

/** A view of SQLite's fresh Buffer as a plain Uint8Array (callers compare and serialise Uint8Arrays; a Buffer has toJSON). */
function bytesOf(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

// --- Files -----------------------------------------------------------------------------------------------------------

/** Absolute paths of the databases open in this process: a second handle on one replica is a bug. */
const OPEN_FILES = new Set<string>();

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function removeDatabaseFiles(file: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
}

/** Reads what the SQLite header says before SQLite does, for errors that say plainly what is wrong with the file. */
function checkHeader(file: string): void {
  const size = statSync(file).size;
  if (size === 0) throw new PartitionStoreCorruptError(file, 'the file is empty (0 bytes), so it holds no partition state (truncated, or never finished)', { size });
  const header = Buffer.alloc(100);
  const fd = openSync(file, 'r');
  let read: number;
  try {
    read = readSync(fd, header, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  if (read < 100 || header.toString('latin1', 0, 16) !== 'SQLite format 3\u0000') {
    throw new PartitionStoreCorruptError(file, `the file does not start with a SQLite header (${size} bytes)`, { size });
  }
  const applicationId = header.readUInt32BE(68);
  if (applicationId !== PARTITION_STORE_APPLICATION_ID) {
    throw new PartitionStoreCorruptError(file, `it is a SQLite database but not a Shoal partition store (application_id 0x${applicationId.toString(16)}, expected 0x${PARTITION_STORE_APPLICATION_ID.toString(16)})`, { applicationId });
  }
  // Without a WAL the file is the whole database, and the header's page count (valid when its version-valid-for
  // number matches the change counter) says how long it must be. With a WAL, pages may legitimately be missing
  // until SQLite recovers it; quick_check then judges.
  const wal = `${file}-wal`;
  if (existsSync(wal) && statSync(wal).size > 0) return;
  const pageSize = header.readUInt16BE(16) === 1 ? 65_536 : header.readUInt16BE(16);
  const pages = header.readUInt32BE(28);
  if (pages > 0 && header.readUInt32BE(92) === header.readUInt32BE(24) && size < pages * pageSize) {
    throw new PartitionStoreCorruptError(file, `the file is truncated: its header says ${pages} pages of ${pageSize} bytes (${pages * pageSize} bytes), the file has ${size}`, { size, expectedBytes: pages * pageSize });
  }
}

// --- The store -------------------------------------------------------------------------------------------------------

export interface SqlitePartitionStoreOptions {
  /** Create the database if the file does not exist. Default false: a missing replica is an error, never an empty one. */
  create?: boolean;
  /**
   * What opening checks beyond the header, schema and applied-index row: 'full' (default) runs quick_check and
   * verifies every row's checksum (reads the whole database); 'quick' runs quick_check only.
   */
  verify?: 'full' | 'quick';
  /**
   * 'full' (default): every commit is fsynced (WAL). 'normal': commits survive a crash of the process but the last
   * ones may be lost on power loss; call `checkpoint()` before the Raft log is compacted.
   */
  synchronous?: 'full' | 'normal';
  /** For tests: SQLite's max_page_count, a small "disk" that fills up. */
  maxPageCount?: number;
}

export interface PartitionSnapshotInfo {
  /** The consistent copy (a SQLite database). */
  file: string;
  appliedIndex: number;
  clockMs: number;
  sizeBytes: number;
}

type Statements = ReturnType<typeof prepare>;

function prepare(db: Database.Database) {
  return {
    begin: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    savepoint: db.prepare('SAVEPOINT apply'),
    release: db.prepare('RELEASE apply'),
    rollbackTo: db.prepare('ROLLBACK TO apply'),
    info: db.prepare('SELECT format, applied_index, clock_ms, crc FROM partition_info WHERE id = 0'),
    setInfo: db.prepare('UPDATE partition_info SET applied_index = ?, clock_ms = ?, crc = ? WHERE id = 0'),
    meta: db.prepare('SELECT key, value, crc FROM meta WHERE key = ?'),
    putMeta: db.prepare('INSERT OR REPLACE INTO meta (key, value, crc) VALUES (?, ?, ?)'),
    deleteMeta: db.prepare('DELETE FROM meta WHERE key = ?'),
    metaKeysFrom: db.prepare('SELECT key FROM meta WHERE key >= ? ORDER BY key').pluck(),
    collection: db.prepare('SELECT name, kind, create_version, declared, crc FROM collections WHERE name = ?'),
    collections: db.prepare('SELECT name, kind, create_version, declared, crc FROM collections ORDER BY name'),
    putCollection: db.prepare('INSERT OR REPLACE INTO collections (name, kind, create_version, declared, crc) VALUES (?, ?, ?, ?, ?)'),
    get: db.prepare('SELECT collection, key, value, version, crc FROM entries WHERE collection = ? AND key = ?'),
    scanAll: db.prepare('SELECT collection, key, value, version, crc FROM entries WHERE collection = ? ORDER BY key LIMIT ?'),
    scanFrom: db.prepare('SELECT collection, key, value, version, crc FROM entries WHERE collection = ? AND key >= ? ORDER BY key LIMIT ?'),
    scanTo: db.prepare('SELECT collection, key, value, version, crc FROM entries WHERE collection = ? AND key < ? ORDER BY key LIMIT ?'),
    scanRange: db.prepare('SELECT collection, key, value, version, crc FROM entries WHERE collection = ? AND key >= ? AND key < ? ORDER BY key LIMIT ?'),
    put: db.prepare('INSERT OR REPLACE INTO entries (collection, key, value, version, crc) VALUES (?, ?, ?, ?, ?)'),
    delete: db.prepare('DELETE FROM entries WHERE collection = ? AND key = ?'),
    item: db.prepare('SELECT * FROM queue_items WHERE queue = ? AND idx = ? AND ordinal = ?'),
    // Skips the leased items at the head, as the memory store does: at most the items in flight.
    nextAvailable: db.prepare('SELECT * FROM queue_items WHERE queue = ? AND (lease_expires_ms IS NULL OR lease_expires_ms <= ?) ORDER BY idx, ordinal LIMIT 1'),
    itemsFromHead: db.prepare('SELECT * FROM queue_items WHERE queue = ? ORDER BY idx, ordinal LIMIT ?'),
    itemsAfter: db.prepare('SELECT * FROM queue_items WHERE queue = ? AND (idx, ordinal) > (?, ?) ORDER BY idx, ordinal LIMIT ?'),
    queueLength: db.prepare('SELECT count(*) AS n FROM queue_items WHERE queue = ?'),
    putItem: db.prepare('INSERT OR REPLACE INTO queue_items (queue, idx, ordinal, value, deliveries, lease_index, lease_expires_ms, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
    deleteItem: db.prepare('DELETE FROM queue_items WHERE queue = ? AND idx = ? AND ordinal = ?'),
  };
}

export class SqlitePartitionStore implements PartitionStore {
  readonly file: string;
  readonly #path: string;
  readonly #db: Database.Database;
  readonly #q: Statements;
  /** The open apply transaction, if any. */
  #txn: object | undefined;
  /** True inside `batch()`: an outer transaction is open and applies are savepoints in it. */
  #batch = false;
  /** Set when SQLite rolled back a batch's outer transaction by itself (after an I/O error or a full disk). */
  #batchLost = false;
  #closed = false;

  private constructor(file: string, path: string, db: Database.Database) {
    this.file = file;
    this.#path = path;
    this.#db = db;
    this.#q = prepare(db);
  }

  /** Opens the replica's database at `file`, checking it (see the file comment); creates it only with `create`. */
  static open(file: string, options: SqlitePartitionStoreOptions = {}): SqlitePartitionStore {
    const path = resolve(file);
    invariant(!OPEN_FILES.has(path), `the partition database ${file} is already open in this process`);
    if (!existsSync(file)) {
      if (options.create !== true) {
        throw new NotFoundError(`the partition database ${file} does not exist: this replica has no state here (create it as a new replica, or restore it from a snapshot)`, { file });
      }
      SqlitePartitionStore.#create(file);
    }
    try {
      checkHeader(file);
    } catch (err) {
      throw storageError(file, 'open', err);
    }
    let db: Database.Database;
    try {
      db = new Database(file);
    } catch (err) {
      throw storageError(file, 'open', err);
    }
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      invariant(mode === 'wal', `the partition database ${file} did not switch to WAL (journal_mode is ${String(mode)})`);
      db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma('cell_size_check = ON');
      if (options.maxPageCount !== undefined) db.pragma(`max_page_count = ${options.maxPageCount}`);
      SqlitePartitionStore.#checkStructure(file, db);
      const store = new SqlitePartitionStore(file, path, db);
      store.appliedIndex(); // checks the applied-index row and its checksum
      if ((options.verify ?? 'full') === 'full') store.verify();
      OPEN_FILES.add(path);
      return store;
    } catch (err) {
      db.close();
      throw storageError(file, 'open', err);
    }
  }

  /**
   * Puts a received snapshot (`snapshotTo`'s file, moved or streamed here) in place of the replica at `file`: checks
   * it as `open` would, fsyncs it, removes the old database's WAL (recovering it into the old file first, so a crash
   * before the rename leaves the old replica whole), renames it over `file` and fsyncs the directory. The replica must
   * be closed. `snapshotFile` must be on the same file system as `file` (a rename); receive it into the same
   * directory. On failure the old replica is left as it was.
   */
  static install(snapshotFile: string, file: string): PartitionSnapshotInfo {
    invariant(!OPEN_FILES.has(resolve(file)), `the partition database ${file} must be closed before a snapshot is installed over it`);
    invariant(resolve(snapshotFile) !== resolve(file), `a snapshot cannot be installed over itself (${file})`);
    if (!existsSync(snapshotFile)) throw new NotFoundError(`the partition snapshot ${snapshotFile} does not exist`, { file: snapshotFile });
    const copy = SqlitePartitionStore.open(snapshotFile, { verify: 'full' });
    const info = { appliedIndex: copy.appliedIndex(), clockMs: copy.clockMs() };
    copy.close();
    try {
      fsyncPath(snapshotFile);
      if (existsSync(`${file}-wal`)) SqlitePartitionStore.#recoverWal(file);
      for (const suffix of ['-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
      renameSync(snapshotFile, file);
      fsyncPath(dirname(file));
      if (dirname(resolve(snapshotFile)) !== dirname(resolve(file))) fsyncPath(dirname(snapshotFile));
    } catch (err) {
      if ((err as { code?: string }).code === 'EXDEV') {
        throw new PartitionStoreError(file, `install of the snapshot ${snapshotFile}`, new Error('the snapshot is on another file system; receive it into the directory of the replica'));
      }
      throw storageError(file, `install of the snapshot ${snapshotFile}`, err);
    }
    return { file, ...info, sizeBytes: statSync(file).size };
  }

  /** `install`, then `open` the installed replica. */
  static restore(snapshotFile: string, file: string, options: Omit<SqlitePartitionStoreOptions, 'create'> = {}): SqlitePartitionStore {
    SqlitePartitionStore.install(snapshotFile, file);
    // install checked every row already.
    return SqlitePartitionStore.open(file, { verify: 'quick', ...options });
  }

  /** Builds an empty replica under a temporary name and renames it into place: `file` is whole or absent. */
  static #create(file: string): void {
    const tmp = `${file}.creating`;
    try {
      removeDatabaseFiles(tmp);
      const db = new Database(tmp);
      try {
        db.pragma(`application_id = ${PARTITION_STORE_APPLICATION_ID}`);
        db.pragma(`user_version = ${PARTITION_STORE_SCHEMA_VERSION}`);
        db.transaction(() => {
          db.exec(SCHEMA);
          db.prepare('INSERT INTO partition_info (id, format, applied_index, clock_ms, crc) VALUES (0, ?, 0, 0, ?)').run(PARTITION_STORE_FORMAT, infoCrc(PARTITION_STORE_FORMAT, 0, 0));
        })();
        db.pragma('journal_mode = WAL');
      } finally {
        db.close();
      }
      fsyncPath(tmp);
      // A WAL without its database (the file was deleted, its WAL was not) would be replayed onto the new one.
      for (const suffix of ['-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
      renameSync(tmp, file);
      fsyncPath(dirname(file));
    } catch (err) {
      throw storageError(file, 'create', err);
    }
  }

  /** Lets SQLite recover a WAL left by a crash into its database, so removing the WAL loses nothing. */
  static #recoverWal(file: string): void {
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
      db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      // The old replica is damaged beyond its WAL: it is being replaced, and keeping its WAL would corrupt the copy.
      if (!isCorrupt(err)) throw err;
    } finally {
      db?.close();
    }
  }

  static #checkStructure(file: string, db: Database.Database): void {
    const problems = (db.pragma(`quick_check(${PARTITION_STORE_CHECK_MAX_PROBLEMS})`) as { quick_check: string }[]).map((r) => r.quick_check);
    if (problems.length !== 1 || problems[0] !== 'ok') {
      throw new PartitionStoreCorruptError(file, `SQLite's quick_check found damage: ${problems.join('; ')}`, { problems });
    }
    const version = db.pragma('user_version', { simple: true });
    if (version !== PARTITION_STORE_SCHEMA_VERSION) throw new PartitionStoreVersionError(file, version);
    const tables = new Set((db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name));
    const missing = TABLES.filter((name) => !tables.has(name));
    if (missing.length > 0) throw new PartitionStoreCorruptError(file, `tables are missing: ${missing.join(', ')}`, { missing });
  }

  // --- Reads -----------------------------------------------------------------------------------------------------

  appliedIndex(): number {
    return this.#info().applied_index;
  }

  clockMs(): number {
    return this.#info().clock_ms;
  }

  meta(key: string): Uint8Array | undefined {
    const row = this.#read('read meta', () => this.#q.meta.get(key) as MetaRow | undefined);
    if (!row) return undefined;
    const value = bytesOf(row.value);
    if (metaCrc(row.key, value) !== row.crc) throw this.#corruptRow(`the meta row "${row.key}" fails its checksum`, { table: 'meta', key: row.key });
    return value;
  }

  metaKeys(prefix: string): string[] {
    const keys: string[] = [];
    this.#read('list meta keys', () => {
      for (const key of this.#q.metaKeysFrom.iterate(prefix) as IterableIterator<string>) {
        if (!key.startsWith(prefix)) break;
        keys.push(key);
      }
    });
    return keys;
  }

  collection(name: string): CollectionRecord | undefined {
    const row = this.#read('read a collection', () => this.#q.collection.get(name) as CollectionRow | undefined);
    return row && this.#collectionRecord(row);
  }

  collections(): CollectionRecord[] {
    return this.#read('list collections', () => this.#q.collections.all() as CollectionRow[]).map((r) => this.#collectionRecord(r));
  }

  get(collection: string, key: string): EntryRecord | undefined {
    const row = this.#read('read an entry', () => this.#q.get.get(collection, key) as EntryRow | undefined);
    return row && this.#entryRecord(row);
  }

  scan(collection: string, start: string | undefined, end: string | undefined, limit: number): EntryRecord[] {
    const rows = this.#read('scan', () => (
      start === undefined
        ? end === undefined ? this.#q.scanAll.all(collection, limit) : this.#q.scanTo.all(collection, end, limit)
        : end === undefined ? this.#q.scanFrom.all(collection, start, limit) : this.#q.scanRange.all(collection, start, end, limit)
    ) as EntryRow[]);
    return rows.map((r) => this.#entryRecord(r));
  }

  queueItem(queue: string, position: ItemPosition): QueueItemRecord | undefined {
    const row = this.#read('read a queue item', () => this.#q.item.get(queue, position.index, position.ordinal) as ItemRow | undefined);
    return row && this.#itemRecord(row);
  }

  queueNextAvailable(queue: string, nowMs: number): QueueItemRecord | undefined {
    const row = this.#read('find the next queue item', () => this.#q.nextAvailable.get(queue, nowMs) as ItemRow | undefined);
    return row && this.#itemRecord(row);
  }

  queueScan(queue: string, after: ItemPosition | undefined, limit: number): QueueItemRecord[] {
    const rows = this.#read('scan a queue', () => (
      after === undefined ? this.#q.itemsFromHead.all(queue, limit) : this.#q.itemsAfter.all(queue, after.index, after.ordinal, limit)
    ) as ItemRow[]);
    return rows.map((r) => this.#itemRecord(r));
  }

  /** Counts the queue's rows: linear in its length (the interface has no counter to keep). */
  queueLength(queue: string): number {
    return this.#read('count a queue', () => (this.#q.queueLength.get(queue) as { n: number }).n);
  }

  /** Checks every row's checksum (what `open` does with `verify: 'full'`); throws ERR_STORAGE_CORRUPT at the first bad one. */
  verify(): void {
    this.#read('verify', () => {
      this.#info();
      for (const row of this.#db.prepare('SELECT key, value, crc FROM meta').iterate() as IterableIterator<MetaRow>) {
        if (metaCrc(row.key, row.value) !== row.crc) throw this.#corruptRow(`the meta row "${row.key}" fails its checksum`, { table: 'meta', key: row.key });
      }
      for (const row of this.#db.prepare('SELECT name, kind, create_version, declared, crc FROM collections').iterate() as IterableIterator<CollectionRow>) this.#collectionRecord(row);
      for (const row of this.#db.prepare('SELECT collection, key, value, version, crc FROM entries').iterate() as IterableIterator<EntryRow>) this.#entryRecord(row);
      for (const row of this.#db.prepare('SELECT * FROM queue_items').iterate() as IterableIterator<ItemRow>) this.#itemRecord(row);
    });
  }

  // --- Transactions ----------------------------------------------------------------------------------------------

  begin(): StoreTxn {
    this.#checkOpen();
    invariant(this.#txn === undefined, 'a partition store transaction is already open');
    if (this.#batch && (this.#batchLost || !this.#db.inTransaction)) {
      throw new PartitionStoreError(this.file, 'begin an apply in a batch', new Error('SQLite rolled the batch back after an earlier error in it; end the batch'));
    }
    const token = {};
    this.#run('begin an apply', () => (this.#batch ? this.#q.savepoint : this.#q.begin).run());
    this.#txn = token;
    const open = (): void => invariant(this.#txn === token && !this.#closed, `this partition store transaction (${this.file}) is closed`);
    const write = (operation: string, fn: () => void): void => {
      open();
      this.#run(operation, fn);
    };
    return {
      ...readerOf(this),
      setApplied: (index, clockMs) => {
        open();
        const info = this.#info();
        invariant(Number.isSafeInteger(index) && index > info.applied_index, `applied index went backwards: ${info.applied_index} -> ${index}`);
        invariant(Number.isSafeInteger(clockMs) && clockMs >= info.clock_ms, `partition clock went backwards: ${info.clock_ms} -> ${clockMs}`);
        write('record the applied index', () => this.#q.setInfo.run(index, clockMs, infoCrc(info.format, index, clockMs)));
      },
      setMeta: (key, value) => {
        invariant(isWellFormed(key), `a meta key must be well-formed UTF-16 (a lone surrogate has no UTF-8 form): ${JSON.stringify(key)}`);
        write('write meta', () => {
          if (value === undefined) this.#q.deleteMeta.run(key);
          else this.#q.putMeta.run(key, value, metaCrc(key, value));
        });
      },
      putCollection: (r) => {
        invariant(isWellFormed(r.name), `a collection name must be well-formed UTF-16: ${JSON.stringify(r.name)}`);
        const declared = r.declared ? 1 : 0;
        write('write a collection', () => this.#q.putCollection.run(r.name, r.kind, r.createVersion, declared, collectionCrc(r.name, r.kind, r.createVersion, declared)));
      },
      put: (collection, e) => {
        invariant(isWellFormed(collection) && isWellFormed(e.key), `a collection name and key must be well-formed UTF-16: ${JSON.stringify([collection, e.key])}`);
        write('write an entry', () => this.#q.put.run(collection, e.key, e.value, e.version, entryCrc(collection, e.key, e.value, e.version)));
      },
      delete: (collection, key) => write('delete an entry', () => this.#q.delete.run(collection, key)),
      putQueueItem: (queue, item) => {
        invariant(isWellFormed(queue), `a queue name must be well-formed UTF-16: ${JSON.stringify(queue)}`);
        const row = { idx: item.index, ordinal: item.ordinal, value: item.value, deliveries: item.deliveries, lease_index: item.lease?.index ?? null, lease_expires_ms: item.lease?.expiresMs ?? null };
        write('write a queue item', () => this.#q.putItem.run(queue, row.idx, row.ordinal, row.value, row.deliveries, row.lease_index, row.lease_expires_ms, itemCrc(queue, row)));
      },
      deleteQueueItem: (queue, p) => write('delete a queue item', () => this.#q.deleteItem.run(queue, p.index, p.ordinal)),
      commit: () => {
        open();
        // On failure the transaction stays open: the caller rolls it back (PartitionState does).
        this.#run(this.#batch ? 'finish an apply in a batch' : 'commit an apply', () => (this.#batch ? this.#q.release : this.#q.commit).run());
        this.#txn = undefined;
      },
      rollback: () => {
        open();
        try {
          // SQLite may already have rolled the transaction back by itself (a full disk, an I/O error).
          if (!this.#db.inTransaction) {
            if (this.#batch) this.#batchLost = true;
          } else if (this.#batch) {
            this.#run('roll back an apply in a batch', () => {
              this.#q.rollbackTo.run();
              this.#q.release.run();
            });
          } else {
            this.#run('roll back an apply', () => this.#q.rollback.run());
          }
        } finally {
          this.#txn = undefined;
        }
      },
    };
  }

  /**
   * Runs `fn` inside one outer transaction: every apply in it is a savepoint, and the whole batch is committed (one
   * fsync) when `fn` returns, or rolled back if it throws. Nothing of the batch is durable before `batch` returns, so
   * the runtime sends nothing that depends on it before then; if `batch` throws, none of its applies were kept and
   * the PartitionState over this store must be reopened (`PartitionState.open(store)`).
   */
  batch<T>(fn: () => T): T {
    this.#checkOpen();
    invariant(this.#txn === undefined && !this.#batch, 'a partition store batch cannot start inside a transaction or another batch');
    this.#run('begin a batch', () => this.#q.begin.run());
    this.#batch = true;
    this.#batchLost = false;
    try {
      let result: T;
      try {
        result = fn();
        invariant(!(result instanceof Promise), 'a partition store batch must be synchronous: its transaction would commit before the promise settles');
        invariant(this.#txn === undefined, 'a partition store batch ended with an apply transaction still open');
        if (this.#batchLost) throw new PartitionStoreError(this.file, 'a batch of applies', new Error('SQLite rolled the batch back after an error inside it; none of its applies were kept'));
      } catch (err) {
        this.#txn = undefined;
        if (this.#db.open && this.#db.inTransaction) this.#run('roll back a batch', () => this.#q.rollback.run());
        throw err;
      }
      try {
        this.#run('commit a batch of applies', () => this.#q.commit.run());
      } catch (err) {
        if (this.#db.inTransaction) this.#run('roll back a batch', () => this.#q.rollback.run());
        throw err;
      }
      return result;
    } finally {
      this.#batch = false;
    }
  }

  /**
   * Copies the WAL into the database file and fsyncs it: with `synchronous: 'normal'`, a durability barrier before
   * the Raft log is compacted past the applied index.
   */
  checkpoint(): void {
    this.#checkOpen();
    invariant(this.#txn === undefined && !this.#batch, 'a partition store checkpoint was asked for with a transaction open');
    this.#run('checkpoint', () => this.#db.pragma('wal_checkpoint(FULL)'));
  }

  // --- Snapshots -------------------------------------------------------------------------------------------------

  /**
   * Writes a consistent copy of the database to `file` (which must not exist): VACUUM INTO a temporary file beside
   * it, fsync, rename, fsync of the directory. Taken between applies; it blocks for as long as the copy takes.
   */
  snapshotTo(file: string): PartitionSnapshotInfo {
    this.#checkOpen();
    invariant(this.#txn === undefined && !this.#batch, 'a partition store snapshot was taken with a transaction open');
    invariant(!existsSync(file), `the snapshot file ${file} already exists`);
    const tmp = `${file}.tmp`;
    const info = this.#info();
    try {
      removeDatabaseFiles(tmp);
      this.#db.prepare('VACUUM INTO ?').run(tmp);
      // SQLite does not fsync what VACUUM INTO writes.
      fsyncPath(tmp);
      renameSync(tmp, file);
      fsyncPath(dirname(file));
    } catch (err) {
      rmSync(tmp, { force: true });
      throw storageError(this.file, `snapshot to ${file}`, err);
    }
    return { file, appliedIndex: info.applied_index, clockMs: info.clock_ms, sizeBytes: statSync(file).size };
  }

  /** Closes the database; idempotent. A transaction or batch still open is rolled back, as a crash would. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#txn = undefined;
    this.#batch = false;
    OPEN_FILES.delete(this.#path);
    try {
      this.#db.close();
    } catch (err) {
      throw storageError(this.file, 'close', err);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  // --- Internals -------------------------------------------------------------------------------------------------

  #checkOpen(): void {
    invariant(!this.#closed, `the partition database ${this.file} is closed`);
  }

  #run<T>(operation: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw storageError(this.file, operation, err);
    }
  }

  #read<T>(operation: string, fn: () => T): T {
    this.#checkOpen();
    return this.#run(operation, fn);
  }

  #info(): InfoRow {
    const row = this.#read('read the applied index', () => this.#q.info.get() as InfoRow | undefined);
    if (!row) throw new PartitionStoreCorruptError(this.file, 'it has no applied-index row (partition_info)', { table: 'partition_info' });
    if (row.format !== PARTITION_STORE_FORMAT) throw new PartitionStoreCorruptError(this.file, `its format is "${row.format}", not ${PARTITION_STORE_FORMAT}`, { format: row.format });
    if (infoCrc(row.format, row.applied_index, row.clock_ms) !== row.crc) {
      throw this.#corruptRow(`the applied-index row (index ${row.applied_index}, clock ${row.clock_ms}) fails its checksum`, { table: 'partition_info' });
    }
    return row;
  }

  #corruptRow(what: string, details: Record<string, unknown>): PartitionStoreCorruptError {
    return new PartitionStoreCorruptError(this.file, what, details);
  }

  #collectionRecord(row: CollectionRow): CollectionRecord {
    if (collectionCrc(row.name, row.kind, row.create_version, row.declared) !== row.crc) {
      throw this.#corruptRow(`the collection row "${row.name}" fails its checksum`, { table: 'collections', collection: row.name });
    }
    return { name: row.name, kind: row.kind as CollectionKind, createVersion: row.create_version, declared: row.declared === 1 };
  }

  #entryRecord(row: EntryRow): EntryRecord {
    const value = bytesOf(row.value);
    if (entryCrc(row.collection, row.key, value, row.version) !== row.crc) {
      throw this.#corruptRow(`the entry "${row.key}" of "${row.collection}" fails its checksum`, { table: 'entries', collection: row.collection, key: row.key });
    }
    return { key: row.key, value, version: row.version };
  }

  #itemRecord(row: ItemRow): QueueItemRecord {
    const value = bytesOf(row.value);
    if (itemCrc(row.queue, row) !== row.crc) {
      throw this.#corruptRow(`the item ${row.idx}.${row.ordinal} of queue "${row.queue}" fails its checksum`, { table: 'queue_items', queue: row.queue, item: `${row.idx}.${row.ordinal}` });
    }
    return {
      index: row.idx,
      ordinal: row.ordinal,
      value,
      deliveries: row.deliveries,
      ...(row.lease_index !== null && row.lease_expires_ms !== null ? { lease: { index: row.lease_index, expiresMs: row.lease_expires_ms } } : {}),
    };
  }
}
