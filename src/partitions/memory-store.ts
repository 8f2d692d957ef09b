/**
 * A PartitionStore in memory, for the simulator and tests: sorted arrays of keys and queue items, transactions
 * undone from an undo log, and a snapshot that is a canonical serialisation (two stores holding the same state give
 * the same bytes, which is how tests compare replicas).
 *
 * Values are copied in and out, so a caller that later mutates a buffer it passed or received cannot change what the
 * store holds.
 */
import { invariant } from '../lib/assert.js';
import { DecodeError } from '../lib/errors.js';
import { compareKeys, decodeUtf8, encodeUtf8, fromHex, toHex } from './bytes.js';
import { comparePositions, readerOf, type CollectionRecord, type EntryRecord, type ItemPosition, type PartitionStore, type QueueItemRecord, type StoreTxn } from './store.js';

const SNAPSHOT_FORMAT = 'shoal.partition.memory/1';

interface Dictionary {
  /** Sorted by compareKeys. */
  keys: string[];
  entries: Map<string, EntryRecord>;
}

interface SnapshotJson {
  format: string;
  appliedIndex: number;
  clockMs: number;
  meta: [string, string][];
  collections: CollectionRecord[];
  dictionaries: [string, [string, string, number][]][];
  queues: [string, [number, number, string, number, number | null, number | null][]][];
}

export class MemoryPartitionStore implements PartitionStore {
  #applied = 0;
  #clockMs = 0;
  readonly #meta = new Map<string, Uint8Array>();
  readonly #collections = new Map<string, CollectionRecord>();
  readonly #dicts = new Map<string, Dictionary>();
  /** Items of each queue, in FIFO order. */
  readonly #queues = new Map<string, QueueItemRecord[]>();
  /** Undo steps of the open transaction, if one is open. */
  #undo: (() => void)[] | undefined;

  // --- Reads -------------------------------------------------------------------------------------------------

  appliedIndex(): number {
    return this.#applied;
  }

  clockMs(): number {
    return this.#clockMs;
  }

  meta(key: string): Uint8Array | undefined {
    return this.#meta.get(key)?.slice();
  }

  metaKeys(prefix: string): string[] {
    return [...this.#meta.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
  }

  collection(name: string): CollectionRecord | undefined {
    const c = this.#collections.get(name);
    return c && { ...c };
  }

  collections(): CollectionRecord[] {
    return [...this.#collections.values()].sort((a, b) => compareKeys(a.name, b.name)).map((c) => ({ ...c }));
  }

  get(collection: string, key: string): EntryRecord | undefined {
    const e = this.#dicts.get(collection)?.entries.get(key);
    return e && copyEntry(e);
  }

  scan(collection: string, start: string | undefined, end: string | undefined, limit: number): EntryRecord[] {
    const d = this.#dicts.get(collection);
    if (!d) return [];
    const out: EntryRecord[] = [];
    for (let i = start === undefined ? 0 : lowerBound(d.keys, start); i < d.keys.length && out.length < limit; i++) {
      const key = d.keys[i] as string;
      if (end !== undefined && compareKeys(key, end) >= 0) break;
      out.push(copyEntry(d.entries.get(key)!));
    }
    return out;
  }

  queueItem(queue: string, position: ItemPosition): QueueItemRecord | undefined {
    const items = this.#queues.get(queue);
    if (!items) return undefined;
    const i = positionIndex(items, position);
    return i >= 0 ? copyItem(items[i]!) : undefined;
  }

  queueNextAvailable(queue: string, nowMs: number): QueueItemRecord | undefined {
    for (const item of this.#queues.get(queue) ?? []) if (!item.lease || item.lease.expiresMs <= nowMs) return copyItem(item);
    return undefined;
  }

  queueScan(queue: string, after: ItemPosition | undefined, limit: number): QueueItemRecord[] {
    const items = this.#queues.get(queue) ?? [];
    let i = 0;
    if (after) {
      i = positionLowerBound(items, after);
      if (i < items.length && comparePositions(items[i]!, after) === 0) i++;
    }
    return items.slice(i, i + limit).map(copyItem);
  }

  queueLength(queue: string): number {
    return this.#queues.get(queue)?.length ?? 0;
  }

  // --- Transactions ------------------------------------------------------------------------------------------

  begin(): StoreTxn {
    invariant(this.#undo === undefined, 'a partition store transaction is already open');
    const undo: (() => void)[] = [];
    this.#undo = undo;
    const open = (): void => invariant(this.#undo === undo, 'this partition store transaction is closed');
    const txn: StoreTxn = {
      ...readerOf(this),
      setApplied: (index, clockMs) => {
        open();
        invariant(index > this.#applied, `applied index went backwards: ${this.#applied} -> ${index}`);
        invariant(clockMs >= this.#clockMs, `partition clock went backwards: ${this.#clockMs} -> ${clockMs}`);
        const [a, c] = [this.#applied, this.#clockMs];
        undo.push(() => {
          this.#applied = a;
          this.#clockMs = c;
        });
        this.#applied = index;
        this.#clockMs = clockMs;
      },
      setMeta: (key, value) => {
        open();
        const before = this.#meta.get(key);
        undo.push(() => (before === undefined ? this.#meta.delete(key) : this.#meta.set(key, before)));
        if (value === undefined) this.#meta.delete(key);
        else this.#meta.set(key, value.slice());
      },
      putCollection: (record) => {
        open();
        const before = this.#collections.get(record.name);
        undo.push(() => (before === undefined ? this.#collections.delete(record.name) : this.#collections.set(record.name, before)));
        this.#collections.set(record.name, { ...record });
      },
      put: (collection, entry) => {
        open();
        let d = this.#dicts.get(collection);
        if (!d) {
          d = { keys: [], entries: new Map() };
          this.#dicts.set(collection, d);
          undo.push(() => this.#dicts.delete(collection));
        }
        const dict = d;
        const before = dict.entries.get(entry.key);
        if (before === undefined) {
          dict.keys.splice(lowerBound(dict.keys, entry.key), 0, entry.key);
          undo.push(() => {
            dict.keys.splice(lowerBound(dict.keys, entry.key), 1);
            dict.entries.delete(entry.key);
          });
        } else {
          undo.push(() => dict.entries.set(entry.key, before));
        }
        dict.entries.set(entry.key, copyEntry(entry));
      },
      delete: (collection, key) => {
        open();
        const dict = this.#dicts.get(collection);
        const before = dict?.entries.get(key);
        if (!dict || before === undefined) return;
        dict.keys.splice(lowerBound(dict.keys, key), 1);
        dict.entries.delete(key);
        undo.push(() => {
          dict.keys.splice(lowerBound(dict.keys, key), 0, key);
          dict.entries.set(key, before);
        });
      },
      putQueueItem: (queue, item) => {
        open();
        let q = this.#queues.get(queue);
        if (!q) {
          q = [];
          this.#queues.set(queue, q);
          undo.push(() => this.#queues.delete(queue));
        }
        const items = q;
        const at = positionLowerBound(items, item);
        const copy = copyItem(item);
        if (at < items.length && comparePositions(items[at]!, item) === 0) {
          const before = items[at]!;
          items[at] = copy;
          undo.push(() => {
            items[positionIndex(items, before)] = before;
          });
        } else {
          items.splice(at, 0, copy);
          undo.push(() => {
            items.splice(positionIndex(items, copy), 1);
          });
        }
      },
      deleteQueueItem: (queue, position) => {
        open();
        const items = this.#queues.get(queue);
        if (!items) return;
        const at = positionIndex(items, position);
        if (at < 0) return;
        const [before] = items.splice(at, 1);
        undo.push(() => {
          items.splice(positionLowerBound(items, before!), 0, before!);
        });
      },
      commit: () => {
        open();
        this.#undo = undefined;
      },
      rollback: () => {
        open();
        for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
        this.#undo = undefined;
      },
    };
    return txn;
  }

  // --- Snapshots ---------------------------------------------------------------------------------------------

  /** A canonical copy of everything the store holds; taken between applies only. */
  snapshot(): Uint8Array {
    invariant(this.#undo === undefined, 'a partition store snapshot was taken with a transaction open');
    const byName = <T>(m: Map<string, T>): [string, T][] => [...m.entries()].sort((a, b) => compareKeys(a[0], b[0]));
    const json: SnapshotJson = {
      format: SNAPSHOT_FORMAT,
      appliedIndex: this.#applied,
      clockMs: this.#clockMs,
      meta: byName(this.#meta).map(([k, v]) => [k, toHex(v)]),
      collections: this.collections(),
      dictionaries: byName(this.#dicts)
        .filter(([, d]) => d.keys.length > 0)
        .map(([name, d]) => [name, d.keys.map((k) => {
          const e = d.entries.get(k)!;
          return [k, toHex(e.value), e.version];
        })]),
      queues: byName(this.#queues)
        .filter(([, items]) => items.length > 0)
        .map(([name, items]) => [name, items.map((i) => [i.index, i.ordinal, toHex(i.value), i.deliveries, i.lease?.index ?? null, i.lease?.expiresMs ?? null])]),
    };
    return encodeUtf8(JSON.stringify(json));
  }

  /** A store holding what `snapshot()` copied. Throws DecodeError on bytes that are not such a snapshot. */
  static fromSnapshot(bytes: Uint8Array): MemoryPartitionStore {
    let json: SnapshotJson;
    try {
      json = JSON.parse(decodeUtf8(bytes)) as SnapshotJson;
    } catch (err) {
      throw new DecodeError('ERR_PARTITION_SNAPSHOT', `partition snapshot is not UTF-8 JSON: ${(err as Error).message}`);
    }
    const bad = (what: string): never => {
      throw new DecodeError('ERR_PARTITION_SNAPSHOT', `partition snapshot is malformed: ${what}`);
    };
    const hex = (text: unknown): Uint8Array => (typeof text === 'string' ? fromHex(text) : undefined) ?? bad('a value is not hex');
    const int = (n: unknown, what: string): number => (Number.isSafeInteger(n) && (n as number) >= 0 ? (n as number) : bad(`${what} is not a whole number`));
    if (json === null || typeof json !== 'object' || json.format !== SNAPSHOT_FORMAT) bad(`format is not ${SNAPSHOT_FORMAT}`);
    const s = new MemoryPartitionStore();
    s.#applied = int(json.appliedIndex, 'appliedIndex');
    s.#clockMs = int(json.clockMs, 'clockMs');
    if (!Array.isArray(json.meta) || !Array.isArray(json.collections) || !Array.isArray(json.dictionaries) || !Array.isArray(json.queues)) bad('a section is missing');
    for (const [k, v] of json.meta) s.#meta.set(String(k), hex(v));
    for (const c of json.collections) {
      if (typeof c?.name !== 'string' || (c.kind !== 'dictionary' && c.kind !== 'queue')) bad('a collection record');
      s.#collections.set(c.name, { name: c.name, kind: c.kind, createVersion: int(c.createVersion, 'createVersion'), declared: c.declared === true });
    }
    for (const [name, rows] of json.dictionaries) {
      if (s.#collections.get(name)?.kind !== 'dictionary' || !Array.isArray(rows)) bad(`dictionary "${name}" is not declared as one`);
      const d: Dictionary = { keys: [], entries: new Map() };
      for (const [key, value, version] of rows) {
        if (typeof key !== 'string') bad('a key is not a string');
        d.keys.push(key);
        d.entries.set(key, { key, value: hex(value), version: int(version, 'version') });
      }
      d.keys.sort(compareKeys);
      s.#dicts.set(name, d);
    }
    for (const [name, rows] of json.queues) {
      if (s.#collections.get(name)?.kind !== 'queue' || !Array.isArray(rows)) bad(`queue "${name}" is not declared as one`);
      const items: QueueItemRecord[] = rows.map(([index, ordinal, value, deliveries, leaseIndex, expiresMs]) => ({
        index: int(index, 'item index'),
        ordinal: int(ordinal, 'item ordinal'),
        value: hex(value),
        deliveries: int(deliveries, 'deliveries'),
        ...(leaseIndex === null ? {} : { lease: { index: int(leaseIndex, 'lease index'), expiresMs: int(expiresMs, 'lease expiry') } }),
      }));
      items.sort(comparePositions);
      s.#queues.set(name, items);
    }
    return s;
  }
}

function copyEntry(e: EntryRecord): EntryRecord {
  return { key: e.key, value: e.value.slice(), version: e.version };
}

function copyItem(i: QueueItemRecord): QueueItemRecord {
  return { index: i.index, ordinal: i.ordinal, value: i.value.slice(), deliveries: i.deliveries, ...(i.lease ? { lease: { ...i.lease } } : {}) };
}

/** First position in sorted `keys` whose key is >= `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function positionLowerBound(items: readonly ItemPosition[], p: ItemPosition): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (comparePositions(items[mid]!, p) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function positionIndex(items: readonly ItemPosition[], p: ItemPosition): number {
  const i = positionLowerBound(items, p);
  return i < items.length && comparePositions(items[i]!, p) === 0 ? i : -1;
}
