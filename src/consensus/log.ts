/**
 * The log as the core sees it: the stable part in `LogStorage`, plus the unstable tail (entries and possibly a
 * snapshot) that the core has accepted but the caller has not persisted yet. `committed` and `applied` are tracked
 * here; `applied <= committed <= lastIndex` always holds.
 */
import { invariant } from '../lib/assert.js';
import type { LogStorage } from './storage.js';
import { entryBytes, type Entry, type Snapshot } from './types.js';

export class RaftLog {
  readonly storage: LogStorage;
  /** Entries from `unstableOffset` on, not yet handed to the caller's storage. */
  unstable: Entry[] = [];
  unstableOffset: number;
  unstableSnapshot: Snapshot | undefined;
  committed: number;
  applied: number;
  /** Highest index already handed out for persisting in a Ready (entries after it go in the next Ready). */
  #handedOutTo: number;

  constructor(storage: LogStorage) {
    this.storage = storage;
    const first = storage.firstIndex();
    this.unstableOffset = storage.lastIndex() + 1;
    this.committed = first - 1;
    this.applied = first - 1;
    this.#handedOutTo = storage.lastIndex();
  }

  firstIndex(): number {
    if (this.unstableSnapshot) return this.unstableSnapshot.metadata.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstable.length > 0) return this.unstableOffset + this.unstable.length - 1;
    if (this.unstableSnapshot) return this.unstableSnapshot.metadata.index;
    return this.storage.lastIndex();
  }

  term(index: number): number | undefined {
    const snap = this.unstableSnapshot;
    if (snap !== undefined) {
      if (index === snap.metadata.index) return snap.metadata.term;
      if (index < snap.metadata.index) return undefined;
    }
    if (index >= this.unstableOffset) return this.unstable[index - this.unstableOffset]?.term;
    return this.storage.term(index);
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) as number;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The follower's side of AppendEntries: if the entry at `prevIndex` has `prevTerm`, appends what is new (cutting
   * off a conflicting suffix), advances the commit index, and returns the index of the last new entry.
   */
  maybeAppend(prevIndex: number, prevTerm: number, committed: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    const conflict = this.#findConflict(entries);
    if (conflict !== 0) {
      invariant(conflict > this.committed, `entry ${conflict} conflicts with the committed prefix (committed ${this.committed})`);
      this.append(entries.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** The first index whose term differs from ours, or the first new index, or 0 when all are present. */
  #findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term` (fast back-tracking: every entry in between belongs to a
   * term the other side cannot match).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    for (; i > 0; i--) {
      const t = this.term(i);
      if (t === undefined) break; // compacted: the caller falls back to a snapshot
      if (t <= term) return { index: i, term: t };
    }
    return { index: i, term: this.term(i) ?? 0 };
  }

  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const first = (entries[0] as Entry).index;
    invariant(first - 1 >= this.committed, `append at ${first} would overwrite committed entries (committed ${this.committed})`);
    invariant(first <= this.lastIndex() + 1, `append at ${first} leaves a gap after ${this.lastIndex()}`);
    if (first === this.unstableOffset + this.unstable.length) {
      this.unstable.push(...entries);
    } else if (first <= this.unstableOffset) {
      // Replaces everything unstable, and part of what storage holds: the caller overwrites it when persisting.
      this.unstableOffset = first;
      this.unstable = [...entries];
    } else {
      this.unstable = [...this.unstable.slice(0, first - this.unstableOffset), ...entries];
    }
    if (first - 1 < this.#handedOutTo) this.#handedOutTo = first - 1;
    return this.lastIndex();
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    invariant(index <= this.lastIndex(), `commit ${index} is past the last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Raft §5.4.2: only an entry of the current term is committed by counting replicas. */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    invariant(index <= this.committed && index >= this.applied, `applied ${index} is outside [${this.applied}, ${this.committed}]`);
    this.applied = index;
  }

  /** Entries in [lo, hi), at most maxBytes (at least one), from storage and the unstable tail. */
  slice(lo: number, hi: number, maxBytes: number, maxCount: number): Entry[] {
    if (lo >= hi) return [];
    invariant(lo >= this.firstIndex(), `slice from ${lo} below the first index ${this.firstIndex()}`);
    invariant(hi <= this.lastIndex() + 1, `slice to ${hi} past the last index ${this.lastIndex()}`);
    const out: Entry[] = [];
    let bytes = 0;
    if (lo < this.unstableOffset) {
      const stored = this.storage.entries(lo, Math.min(hi, this.unstableOffset), maxBytes);
      for (const e of stored) {
        bytes += entryBytes(e);
        out.push(e);
        if (out.length >= maxCount) return out;
      }
      if (out.length < Math.min(hi, this.unstableOffset) - lo) return out; // storage stopped at maxBytes
    }
    for (let i = Math.max(lo, this.unstableOffset); i < hi; i++) {
      const e = this.unstable[i - this.unstableOffset] as Entry;
      bytes += entryBytes(e);
      if (out.length > 0 && (bytes > maxBytes || out.length >= maxCount)) break;
      out.push(e);
    }
    return out;
  }

  /** Entries not yet handed to the caller for persisting. */
  entriesToPersist(): Entry[] {
    const from = Math.max(this.#handedOutTo + 1, this.unstableOffset);
    return this.unstable.slice(from - this.unstableOffset);
  }

  markHandedOut(index: number): void {
    this.#handedOutTo = Math.max(this.#handedOutTo, index);
  }

  /** The caller persisted entries up to `index` with `term`: they leave the unstable tail. */
  stableTo(index: number, term: number): void {
    if (index < this.unstableOffset) return;
    const e = this.unstable[index - this.unstableOffset];
    // A newer leader may have replaced the entry meanwhile: then it is still unstable.
    if (e === undefined || e.term !== term) return;
    this.unstable = this.unstable.slice(index + 1 - this.unstableOffset);
    this.unstableOffset = index + 1;
  }

  stableSnapshotTo(index: number): void {
    if (this.unstableSnapshot && this.unstableSnapshot.metadata.index === index) this.unstableSnapshot = undefined;
  }

  /** Committed entries not yet handed out for applying, after `from` (exclusive). */
  committedAfter(from: number, maxBytes: number, maxCount: number): Entry[] {
    const lo = Math.max(from + 1, this.firstIndex());
    if (this.committed + 1 <= lo) return [];
    return this.slice(lo, this.committed + 1, maxBytes, maxCount);
  }

  /** Replaces the log by a snapshot (the follower's log did not contain the snapshot's last entry). */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstableSnapshot = snapshot;
    this.unstable = [];
    this.unstableOffset = snapshot.metadata.index + 1;
    this.#handedOutTo = snapshot.metadata.index;
  }
}
