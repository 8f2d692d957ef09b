/**
 * What the core reads from stable storage, and an in-memory implementation beside it.
 *
 * The core never writes to storage: the caller persists what a `Ready` hands it (hard state, entries, snapshot),
 * then appends the same to the `LogStorage` the core reads (for the in-memory one: `append`, `setHardState`,
 * `applySnapshot`). The SQLite implementation (src/storage, to come) implements the same interface.
 */
import { invariant } from '../lib/assert.js';
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from './errors.js';
import { EMPTY_DATA, entryBytes, type ConfState, type Entry, type HardState, type Snapshot } from './types.js';

export interface LogStorage {
  /** Hard state and configuration saved so far (a fresh member: term 0, no vote, commit 0, empty configuration). */
  initialState(): { hardState: HardState; conf: ConfState };
  /** Entries in [lo, hi), at most `maxBytes` of them (but always at least one). Throws CompactedError/UnavailableError. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of the entry at `index`; the snapshot's index is answered too. Undefined when compacted or past the end. */
  term(index: number): number | undefined;
  /** Index of the first entry still held (the snapshot's index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot. */
  snapshot(): Snapshot;
}

export function emptyConf(): ConfState {
  return { voters: [], learners: [] };
}

/**
 * The log in memory, with a dummy entry at position 0 standing for the snapshot (its index and term), as in
 * etcd's MemoryStorage. Used by tests, by the simulator (which mirrors it into its crash-prone SimStorage), and by
 * the runtime as the read cache in front of SQLite.
 */
export class MemoryLogStorage implements LogStorage {
  #hardState: HardState = { term: 0, vote: undefined, commit: 0 };
  #snapshot: Snapshot;
  /** #entries[0] is the dummy at the snapshot's index. */
  #entries: Entry[];

  constructor(conf: ConfState = emptyConf()) {
    this.#snapshot = { metadata: { index: 0, term: 0, conf: cloneConf(conf) }, data: EMPTY_DATA };
    this.#entries = [{ index: 0, term: 0, type: 'noop', data: EMPTY_DATA }];
  }

  /**
   * A fresh log for a new group, identical on every initial voter: one committed `addVoter` entry per voter at
   * term 1 (as etcd's Bootstrap does). Because the configuration is in the log, a member added later learns the
   * whole membership history by replicating it, like any other entry.
   */
  static bootstrap(voters: readonly string[]): MemoryLogStorage {
    invariant(voters.length > 0 && new Set(voters).size === voters.length, 'bootstrap needs distinct voters');
    const storage = new MemoryLogStorage();
    storage.append(bootstrapEntries(voters));
    storage.setHardState({ term: 1, vote: undefined, commit: voters.length });
    return storage;
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: { ...this.#hardState }, conf: cloneConf(this.#snapshot.metadata.conf) };
  }

  setHardState(hs: HardState): void {
    this.#hardState = { ...hs };
  }

  hardState(): HardState {
    return { ...this.#hardState };
  }

  #offset(): number {
    return (this.#entries[0] as Entry).index;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.#offset();
    if (lo <= offset) throw new CompactedError(lo, offset + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    invariant(lo <= hi, `entries(${lo}, ${hi}): lo > hi`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.#entries[i - offset] as Entry;
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(index: number): number | undefined {
    const offset = this.#offset();
    if (index < offset || index > this.lastIndex()) return undefined;
    return (this.#entries[index - offset] as Entry).term;
  }

  firstIndex(): number {
    return this.#offset() + 1;
  }

  lastIndex(): number {
    return this.#offset() + this.#entries.length - 1;
  }

  snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** Replaces the whole log by a snapshot received from the leader. */
  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.metadata.index <= this.#snapshot.metadata.index) throw new SnapshotOutOfDateError(snapshot.metadata.index, this.#snapshot.metadata.index);
    this.#snapshot = snapshot;
    this.#entries = [{ index: snapshot.metadata.index, term: snapshot.metadata.term, type: 'noop', data: EMPTY_DATA }];
  }

  /**
   * Records a snapshot the application took at `index` (which must be applied, so committed). The entries it
   * covers stay until `compact()`, so that a follower slightly behind can still be sent entries.
   */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.#snapshot.metadata.index) throw new SnapshotOutOfDateError(index, this.#snapshot.metadata.index);
    invariant(index <= this.lastIndex(), `snapshot index ${index} is past the last index ${this.lastIndex()}`);
    const term = this.term(index) as number;
    this.#snapshot = { metadata: { index, term, conf: cloneConf(conf) }, data };
    return this.#snapshot;
  }

  /** Drops entries up to and including `index` (which stays as the dummy entry); never past the snapshot. */
  compact(index: number): void {
    const offset = this.#offset();
    if (index <= offset) return;
    invariant(index <= this.#snapshot.metadata.index, `compact(${index}) is past the snapshot at ${this.#snapshot.metadata.index}`);
    invariant(index <= this.lastIndex(), `compact(${index}) is past the last index ${this.lastIndex()}`);
    const dummy = this.#entries[index - offset] as Entry;
    this.#entries = [{ index: dummy.index, term: dummy.term, type: 'noop', data: EMPTY_DATA }, ...this.#entries.slice(index - offset + 1)];
  }

  /** Appends entries, replacing any at the same or higher index (a new leader overwrote them). */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as Entry).index;
    const offset = this.#offset();
    invariant(first <= this.lastIndex() + 1, `append at ${first} leaves a gap after ${this.lastIndex()}`);
    // Entries already covered by the snapshot are skipped.
    const fresh = entries.filter((e) => e.index > offset);
    if (fresh.length === 0) return;
    const from = (fresh[0] as Entry).index;
    // In place: copying the whole log on every append would make a long log quadratic.
    this.#entries.length = from - offset;
    for (const e of fresh) this.#entries.push(e);
  }
}

export function cloneConf(conf: ConfState): ConfState {
  return { voters: [...conf.voters], learners: [...conf.learners] };
}

/** The entries that start a group: `addVoter` for each initial voter, committed at term 1. */
export function bootstrapEntries(voters: readonly string[]): Entry[] {
  return voters.map((member, i) => ({ index: i + 1, term: 1, type: 'conf', data: EMPTY_DATA, conf: { type: 'addVoter', member } }));
}
