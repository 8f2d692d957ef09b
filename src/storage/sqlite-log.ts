/**
 * The Raft log, hard state and snapshot of every group of this agent, in one SQLite database (better-sqlite3).
 *
 * - WAL journal with synchronous=FULL: a committed transaction survives power loss.
 * - `save()` writes one Ready (snapshot, entries, hard state) in ONE transaction: all of it is durable when it
 *   returns, or none of it is there. The caller sends the Ready's messages only after `save()` returned.
 * - Every row carries a CRC-32 of its contents. On open every row is checked: a bad row at or below the commit
 *   index is fatal (committed data is never silently applied); a bad uncommitted tail is reported and, only when the
 *   caller allows it, cut off (Raft re-replicates uncommitted entries from the leader).
 * - Reads come from an in-memory mirror (`MemoryLogStorage`) updated after each successful write, so the core's
 *   reads never touch the disk.
 * - A full disk is a typed, recoverable error (`ERR_STORAGE_FULL`): the transaction is rolled back, the mirror is
 *   unchanged, and the agent keeps running.
 */
import Database from 'better-sqlite3';
import { crc32 } from 'node:zlib';
import { invariant } from '../lib/assert.js';
import type { Logger } from '../log/logger.js';
import { silentLogger } from '../log/logger.js';
import { MemoryLogStorage, type LogStorage } from '../consensus/storage.js';
import type { ConfState, Entry, EntryType, HardState, Snapshot } from '../consensus/types.js';
import { StorageCorruptError, StorageError, StorageFullError } from './errors.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS raft_entries (
  group_id TEXT NOT NULL, idx INTEGER NOT NULL, term INTEGER NOT NULL, type TEXT NOT NULL,
  data BLOB NOT NULL, request TEXT, conf TEXT, crc INTEGER NOT NULL,
  PRIMARY KEY (group_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS raft_state (
  group_id TEXT PRIMARY KEY, term INTEGER NOT NULL, vote TEXT, commit_idx INTEGER NOT NULL, crc INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS raft_snapshots (
  group_id TEXT PRIMARY KEY, idx INTEGER NOT NULL, term INTEGER NOT NULL, conf TEXT NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL
) WITHOUT ROWID;
`;

function checksum(...parts: (string | number | Uint8Array | null | undefined)[]): number {
  let c = 0;
  for (const p of parts) {
    const bytes = p instanceof Uint8Array ? p : Buffer.from(p === null || p === undefined ? '\u0000' : String(p));
    // Node 20's crc32 returns 0 for an empty buffer with no backing store (as SQLite hands back an empty BLOB)
    // instead of the running value: an empty part adds nothing, so skip it.
    if (bytes.length > 0) c = crc32(bytes, c);
    c = crc32(Buffer.from([0x1f]), c); // separator: ("ab","c") and ("a","bc") differ
  }
  return c >>> 0;
}

function entryCrc(group: string, e: { idx: number; term: number; type: string; data: Uint8Array; request: string | null; conf: string | null }): number {
  return checksum(group, e.idx, e.term, e.type, e.data, e.request, e.conf);
}

function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_WRITE' && /full/i.test(String((err as Error).message));
}

export interface SqliteLogOptions {
  logger?: Logger;
  /** Cut off a corrupt uncommitted tail instead of refusing to open (the leader re-sends those entries). */
  truncateCorruptTail?: boolean;
  /** For tests: SQLite's max_page_count, to make a small "disk" that fills up. */
  maxPageCount?: number;
}

/** One SQLite file shared by every Raft group of the agent. */
export class SqliteLogDatabase {
  readonly file: string;
  readonly db: Database.Database;
  readonly #log: Logger;
  #closed = false;

  constructor(file: string, options: SqliteLogOptions = {}) {
    this.file = file;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'storage' });
    try {
      this.db = new Database(file);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      if (options.maxPageCount !== undefined) this.db.pragma(`max_page_count = ${options.maxPageCount}`);
      this.db.exec(SCHEMA);
    } catch (err) {
      throw new StorageError(file, 'open', err);
    }
  }

  openGroup(group: string, options: SqliteLogOptions = {}): SqliteLogStorage {
    return new SqliteLogStorage(this, group, { logger: this.#log, ...options });
  }

  /** Every group that has anything stored (its log, hard state or snapshot). */
  groups(): string[] {
    try {
      return (this.db.prepare('SELECT group_id FROM raft_state UNION SELECT group_id FROM raft_entries UNION SELECT group_id FROM raft_snapshots ORDER BY 1').pluck().all() as string[]);
    } catch (err) {
      throw new StorageError(this.file, 'list groups', err);
    }
  }

  /** Deletes everything of `group` (a replica that left its group), in one transaction. Open storages of it go stale. */
  dropGroup(group: string): void {
    try {
      this.db.transaction(() => {
        for (const table of ['raft_entries', 'raft_state', 'raft_snapshots']) this.db.prepare(`DELETE FROM ${table} WHERE group_id = ?`).run(group);
      })();
    } catch (err) {
      throw new StorageError(this.file, `drop group ${group}`, err);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.db.close();
  }
}

export interface SaveRequest {
  hardState?: HardState;
  entries?: readonly Entry[];
  snapshot?: Snapshot;
}

export class SqliteLogStorage implements LogStorage {
  readonly group: string;
  readonly #db: SqliteLogDatabase;
  readonly #log: Logger;
  #mirror: MemoryLogStorage;
  readonly #stmts: {
    insertEntry: Database.Statement;
    deleteFrom: Database.Statement;
    deleteUpTo: Database.Statement;
    upsertState: Database.Statement;
    upsertSnapshot: Database.Statement;
  };

  constructor(db: SqliteLogDatabase, group: string, options: SqliteLogOptions) {
    this.#db = db;
    this.group = group;
    this.#log = (options.logger ?? silentLogger()).child({ group });
    const d = db.db;
    this.#stmts = {
      insertEntry: d.prepare('INSERT OR REPLACE INTO raft_entries (group_id, idx, term, type, data, request, conf, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      deleteFrom: d.prepare('DELETE FROM raft_entries WHERE group_id = ? AND idx >= ?'),
      deleteUpTo: d.prepare('DELETE FROM raft_entries WHERE group_id = ? AND idx <= ?'),
      upsertState: d.prepare('INSERT OR REPLACE INTO raft_state (group_id, term, vote, commit_idx, crc) VALUES (?, ?, ?, ?, ?)'),
      upsertSnapshot: d.prepare('INSERT OR REPLACE INTO raft_snapshots (group_id, idx, term, conf, data, crc) VALUES (?, ?, ?, ?, ?, ?)'),
    };
    this.#mirror = this.#load(options.truncateCorruptTail === true);
  }

  // --- LogStorage (reads, from the mirror) ---------------------------------------------------------------------

  initialState(): { hardState: HardState; conf: ConfState } {
    return this.#mirror.initialState();
  }

  hardState(): HardState {
    return this.#mirror.hardState();
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.#mirror.entries(lo, hi, maxBytes);
  }

  term(index: number): number | undefined {
    return this.#mirror.term(index);
  }

  firstIndex(): number {
    return this.#mirror.firstIndex();
  }

  lastIndex(): number {
    return this.#mirror.lastIndex();
  }

  snapshot(): Snapshot {
    return this.#mirror.snapshot();
  }

  // --- Writes ------------------------------------------------------------------------------------------------------

  /** Persists one Ready's snapshot, entries and hard state in one durable transaction, then updates the mirror. */
  save(req: SaveRequest): void {
    const g = this.group;
    const write = this.#db.db.transaction(() => {
      if (req.snapshot) {
        const s = req.snapshot;
        const conf = JSON.stringify(s.metadata.conf);
        this.#stmts.upsertSnapshot.run(g, s.metadata.index, s.metadata.term, conf, s.data, checksum(g, s.metadata.index, s.metadata.term, conf, s.data));
        this.#stmts.deleteUpTo.run(g, s.metadata.index);
      }
      const entries = req.entries ?? [];
      if (entries.length > 0) {
        this.#stmts.deleteFrom.run(g, entries[0]!.index);
        for (const e of entries) {
          const row = { idx: e.index, term: e.term, type: e.type, data: e.data, request: e.request ? JSON.stringify(e.request) : null, conf: e.conf ? JSON.stringify(e.conf) : null };
          this.#stmts.insertEntry.run(g, row.idx, row.term, row.type, row.data, row.request, row.conf, entryCrc(g, row));
        }
      }
      if (req.hardState) {
        const hs = req.hardState;
        this.#stmts.upsertState.run(g, hs.term, hs.vote ?? null, hs.commit, checksum(g, hs.term, hs.vote ?? null, hs.commit));
      }
    });
    this.#run('save', () => write.immediate());
    if (req.snapshot) this.#mirror.applySnapshot(req.snapshot);
    if (req.entries && req.entries.length > 0) this.#mirror.append(req.entries);
    if (req.hardState) this.#mirror.setHardState(req.hardState);
  }

  /** Records a snapshot the application took at `index` (committed and applied); entries stay until compact(). */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    const term = this.#mirror.term(index);
    invariant(term !== undefined, `no entry at snapshot index ${index}`);
    const confText = JSON.stringify(conf);
    this.#run('snapshot', () => this.#stmts.upsertSnapshot.run(this.group, index, term, confText, data, checksum(this.group, index, term, confText, data)));
    return this.#mirror.createSnapshot(index, conf, data);
  }

  /** Drops entries up to and including `index` (never past the snapshot). */
  compact(index: number): void {
    this.#run('compact', () => this.#stmts.deleteUpTo.run(this.group, Math.min(index, this.#mirror.snapshot().metadata.index)));
    this.#mirror.compact(index);
  }

  #run<T>(operation: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (isDiskFull(err)) throw new StorageFullError(this.#db.file, err);
      throw new StorageError(this.#db.file, operation, err);
    }
  }

  /** Reads the group back, checking every checksum and the continuity of the log. */
  #load(truncateCorruptTail: boolean): MemoryLogStorage {
    const d = this.#db.db;
    const g = this.group;
    const file = this.#db.file;
    const stateRow = d.prepare('SELECT term, vote, commit_idx AS commitIdx, crc FROM raft_state WHERE group_id = ?').get(g) as { term: number; vote: string | null; commitIdx: number; crc: number } | undefined;
    if (stateRow && checksum(g, stateRow.term, stateRow.vote, stateRow.commitIdx) !== stateRow.crc) {
      throw new StorageCorruptError(file, g, 'the hard state (term, vote, commit) fails its checksum');
    }
    const hardState: HardState = stateRow ? { term: stateRow.term, vote: stateRow.vote ?? undefined, commit: stateRow.commitIdx } : { term: 0, vote: undefined, commit: 0 };
    const snapRow = d.prepare('SELECT idx, term, conf, data, crc FROM raft_snapshots WHERE group_id = ?').get(g) as { idx: number; term: number; conf: string; data: Buffer; crc: number } | undefined;
    const mirror = new MemoryLogStorage();
    if (snapRow) {
      if (checksum(g, snapRow.idx, snapRow.term, snapRow.conf, snapRow.data) !== snapRow.crc) throw new StorageCorruptError(file, g, `the snapshot at index ${snapRow.idx} fails its checksum`);
      mirror.applySnapshot({ metadata: { index: snapRow.idx, term: snapRow.term, conf: JSON.parse(snapRow.conf) as ConfState }, data: new Uint8Array(snapRow.data) });
    }
    const first = mirror.firstIndex();
    const rows = d.prepare('SELECT idx, term, type, data, request, conf, crc FROM raft_entries WHERE group_id = ? AND idx >= ? ORDER BY idx').all(g, first) as { idx: number; term: number; type: string; data: Buffer; request: string | null; conf: string | null; crc: number }[];
    const entries: Entry[] = [];
    let expected = first;
    for (const row of rows) {
      const problem = row.idx !== expected
        ? `entry ${expected} is missing (found ${row.idx} next)`
        : entryCrc(g, row) !== row.crc ? `entry ${row.idx} fails its checksum` : undefined;
      if (problem !== undefined) {
        const at = Math.min(row.idx, expected);
        if (at <= hardState.commit) throw new StorageCorruptError(file, g, `${problem}, at or below the commit index ${hardState.commit}: committed data is damaged; restore this member from a snapshot or remove it from the group`, { index: at });
        if (!truncateCorruptTail) throw new StorageCorruptError(file, g, `${problem} in the uncommitted tail (after commit index ${hardState.commit}); restart with the corrupt tail cut off to let the leader re-send it`, { index: at, uncommitted: true });
        this.#log.warn({ index: at, problem }, 'cutting off a corrupt uncommitted log tail; the leader re-sends it');
        this.#run('truncate corrupt tail', () => this.#stmts.deleteFrom.run(g, at));
        break;
      }
      const entry: Entry = { index: row.idx, term: row.term, type: row.type as EntryType, data: new Uint8Array(row.data) };
      if (row.request) entry.request = JSON.parse(row.request) as Entry['request'];
      if (row.conf) entry.conf = JSON.parse(row.conf) as Entry['conf'];
      entries.push(entry);
      expected++;
    }
    if (entries.length > 0) mirror.append(entries);
    mirror.setHardState(hardState);
    if (hardState.commit > mirror.lastIndex()) {
      throw new StorageCorruptError(file, g, `the commit index ${hardState.commit} is past the last entry ${mirror.lastIndex()}: committed entries are missing`);
    }
    return mirror;
  }
}
