/**
 * The change feed behind `Watch`: every write an apply makes leaves a record (collection, key, version, kind), and a
 * replica keeps the newest `LIMITS.partitionChangeWindowEntries` of them in memory.
 *
 * The feed says what changed, not the values: a watcher that wants a value reads it (or the runtime attaches the
 * current one), so the window costs a bounded amount of memory whatever the values' sizes. It is level-triggered for
 * values: a put superseded by a later one is still listed, with its own version, and a read returns the later value.
 *
 * A watcher resumes with the version it has seen everything up to. The window can serve it when that version is at
 * least the window's floor: the newest version any evicted record had, or the applied index when the replica was
 * opened (what happened before is not in memory). An older one gets ERR_WATCH_COMPACTED and must re-read (Get or
 * Scan, whose answers carry the index they read at) and watch from that index. The window is not part of the
 * replicated state, so replicas may answer that differently; both answers are correct.
 */
import { invariant } from '../lib/assert.js';
import { LIMITS } from '../lib/limits.js';
import { compareKeys } from './bytes.js';
import { failure, invalid, overLimit, type Failure } from './errors.js';

export type ChangeKind =
  /** A dictionary key was written. */
  | 'put'
  /** A dictionary key was deleted (deleting an absent key changes nothing and leaves no record). */
  | 'delete'
  /** An item was added to a queue; `key` is its item id. */
  | 'enqueue'
  /** An item was dequeued (leased); `key` is its item id. */
  | 'lease'
  /** An item was acknowledged and left its queue; `key` is its item id. */
  | 'ack';

export interface ChangeRecord {
  /** Log index of the write. */
  version: number;
  collection: string;
  key: string;
  kind: ChangeKind;
}

/** Which changes a watcher wants: one collection, optionally one key or a key range [start, end). */
export interface ChangeFilter {
  collection?: string;
  key?: string;
  start?: string;
  end?: string;
}

export type WatchResult =
  /**
   * `resumeVersion`: watch from it next time. Every change up to it has been considered; a page ends at a version's
   * last record, so no version is ever split between two answers.
   */
  | { ok: true; changes: ChangeRecord[]; resumeVersion: number }
  | Failure;

export class ChangeWindow {
  readonly #capacity: number;
  /** Records in version order; the live ones start at #head (the array is compacted now and then). */
  #records: ChangeRecord[] = [];
  #head = 0;
  #floor: number;

  constructor(floor: number, capacity: number = LIMITS.partitionChangeWindowEntries) {
    invariant(Number.isSafeInteger(capacity) && capacity >= LIMITS.partitionTxnMaxOps, `a change window must hold at least one transaction's changes (${LIMITS.partitionTxnMaxOps}), got ${capacity}`);
    this.#capacity = capacity;
    this.#floor = floor;
  }

  /** Watches may resume from this version or a later one. */
  get floor(): number {
    return this.#floor;
  }

  get size(): number {
    return this.#records.length - this.#head;
  }

  /** Adds the changes of one apply (all at the same, newest version). */
  append(records: readonly ChangeRecord[]): void {
    for (const r of records) {
      const last = this.#records[this.#records.length - 1];
      invariant(last === undefined || r.version >= last.version, `change versions went backwards: ${last?.version} -> ${r.version}`);
      this.#records.push(r);
    }
    while (this.size > this.#capacity) {
      this.#floor = Math.max(this.#floor, this.#records[this.#head]!.version);
      this.#head++;
    }
    if (this.#head > this.#capacity) {
      this.#records = this.#records.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Changes after `afterVersion` that match `filter`, at most about `limit` (whole versions only). */
  since(afterVersion: number, appliedIndex: number, filter: ChangeFilter = {}, limit: number = LIMITS.partitionScanMaxPageEntries): WatchResult {
    if (!Number.isSafeInteger(afterVersion) || afterVersion < 0) return invalid('fromVersion', `must be a version (from 0), got ${afterVersion}`);
    if (!Number.isSafeInteger(limit) || limit < 1) return invalid('limit', `must be a whole number from 1, got ${limit}`);
    if (limit > LIMITS.partitionScanMaxPageEntries) return overLimit('partitionScanMaxPageEntries', limit, 'limit', 'the page size');
    if (afterVersion < this.#floor) {
      return failure('ERR_WATCH_COMPACTED', `fromVersion: changes after version ${afterVersion} are no longer held (this replica keeps those after ${this.#floor}); read again, then watch from the index the read returns`, { field: 'fromVersion', compactedVersion: this.#floor });
    }
    const changes: ChangeRecord[] = [];
    let i = this.#firstAfter(afterVersion);
    for (; i < this.#records.length; i++) {
      const r = this.#records[i]!;
      const last = changes[changes.length - 1];
      if (changes.length >= limit && last !== undefined && r.version !== last.version) {
        return { ok: true, changes, resumeVersion: last.version };
      }
      if (matches(r, filter)) changes.push(r);
    }
    return { ok: true, changes, resumeVersion: Math.max(afterVersion, appliedIndex) };
  }

  #firstAfter(version: number): number {
    let lo = this.#head;
    let hi = this.#records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#records[mid]!.version <= version) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function matches(r: ChangeRecord, f: ChangeFilter): boolean {
  if (f.collection !== undefined && r.collection !== f.collection) return false;
  if (f.key !== undefined && r.key !== f.key) return false;
  if (f.start !== undefined && compareKeys(r.key, f.start) < 0) return false;
  if (f.end !== undefined && compareKeys(r.key, f.end) >= 0) return false;
  return true;
}
