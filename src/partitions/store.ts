/**
 * The storage a partition replica's state machine reads and writes through, and nothing else: the core keeps no copy
 * of the data, so a partition may be larger than memory once the SQLite store holds it.
 *
 * One apply is one store transaction: `begin()`, reads and writes through the transaction (which sees its own
 * writes), then `commit()` or `rollback()`, and the applied index is written in that same transaction. A store
 * therefore never holds half a command, and after a crash it holds exactly the commands up to its applied index;
 * Raft replays the rest. The SQLite store (src/runtime/partition-store.ts) maps `begin` to BEGIN IMMEDIATE, or to a
 * SAVEPOINT inside its `batch()`, so the runtime may open one outer transaction around many applies (one fsync for a
 * whole Ready) and write its own rows, such as Raft client sessions, in it; `PartitionState.apply`'s `withTxn` hook
 * does the same for a single apply.
 *
 * `commit()` may fail with an operating error (a full disk): the transaction is then still open, and the caller
 * rolls it back. Reads on the store while a transaction is open see its writes. Keys and names are well-formed
 * UTF-16 (no unpaired surrogate): SQLite would store one as U+FFFD and merge distinct keys.
 *
 * Snapshots are not part of this interface: a consistent copy is taken between applies, never with a transaction
 * open. The memory store serialises itself (`MemoryPartitionStore.snapshot`); the SQLite store writes a consistent
 * copy of its database (`VACUUM INTO`) and installs a received one by atomic rename.
 * Either way the copy carries the applied index, so a replica restored from it resumes the log right after it.
 *
 * All methods are synchronous: better-sqlite3 is, and the state machine must not interleave two applies.
 */

export type CollectionKind = 'dictionary' | 'queue';

export interface CollectionRecord {
  name: string;
  kind: CollectionKind;
  /** Log index of the command that created it. */
  createVersion: number;
  /** True once declared (job file `collections:` or a `declare` command); false if created by a first write. */
  declared: boolean;
}

export interface EntryRecord {
  key: string;
  value: Uint8Array;
  /** Log index of the entry's last write. */
  version: number;
}

/** Where an item stands in its queue: FIFO order is (index, ordinal). */
export interface ItemPosition {
  /** Log index of the command that enqueued it. */
  index: number;
  /** Its place among the items that command enqueued (0 for a lone enqueue; a transaction may enqueue several). */
  ordinal: number;
}

export interface QueueItemRecord extends ItemPosition {
  value: Uint8Array;
  /** Times it was dequeued. */
  deliveries: number;
  /** The latest lease: granted by the dequeue applied at `index`, held until `expiresMs` (exclusive). */
  lease?: { index: number; expiresMs: number };
}

export interface StoreReader {
  /** Index of the last command applied (0 for a new replica). */
  appliedIndex(): number;
  /** The partition's time: the largest `nowMs` any applied command carried (0 before any). */
  clockMs(): number;
  /** Metadata a caller stored in an apply's transaction (`setMeta`), e.g. the runtime's client sessions. */
  meta(key: string): Uint8Array | undefined;
  /** Keys of the meta rows that start with `prefix`, in UTF-8 byte order (the runtime reloads its sessions by it). */
  metaKeys(prefix: string): string[];
  collection(name: string): CollectionRecord | undefined;
  /** Every collection, by name (UTF-8 byte order). */
  collections(): CollectionRecord[];
  get(collection: string, key: string): EntryRecord | undefined;
  /** Entries with start <= key < end (an absent bound is open), in UTF-8 byte order of keys, at most `limit`. */
  scan(collection: string, start: string | undefined, end: string | undefined, limit: number): EntryRecord[];
  queueItem(queue: string, position: ItemPosition): QueueItemRecord | undefined;
  /** The first item in FIFO order that is not leased, or whose lease ended at or before `nowMs`. */
  queueNextAvailable(queue: string, nowMs: number): QueueItemRecord | undefined;
  /** Items after `after` (exclusive; absent: from the head), in FIFO order, at most `limit`. */
  queueScan(queue: string, after: ItemPosition | undefined, limit: number): QueueItemRecord[];
  queueLength(queue: string): number;
}

export interface StoreTxn extends StoreReader {
  /** Records the apply this transaction belongs to; written in every apply, failed ones included. */
  setApplied(index: number, clockMs: number): void;
  setMeta(key: string, value: Uint8Array | undefined): void;
  putCollection(record: CollectionRecord): void;
  put(collection: string, entry: EntryRecord): void;
  delete(collection: string, key: string): void;
  /** Adds an item, or replaces the item at the same position (a new lease). */
  putQueueItem(queue: string, item: QueueItemRecord): void;
  deleteQueueItem(queue: string, position: ItemPosition): void;
  commit(): void;
  rollback(): void;
}

export interface PartitionStore extends StoreReader {
  /** Opens the transaction of one apply. At most one is open at a time. */
  begin(): StoreTxn;
}

/** A transaction's reads: the store's own, since a transaction sees its own writes through the store. */
export function readerOf(store: StoreReader): StoreReader {
  return {
    appliedIndex: () => store.appliedIndex(),
    clockMs: () => store.clockMs(),
    meta: (key) => store.meta(key),
    metaKeys: (prefix) => store.metaKeys(prefix),
    collection: (name) => store.collection(name),
    collections: () => store.collections(),
    get: (c, k) => store.get(c, k),
    scan: (c, s, e, l) => store.scan(c, s, e, l),
    queueItem: (q, p) => store.queueItem(q, p),
    queueNextAvailable: (q, n) => store.queueNextAvailable(q, n),
    queueScan: (q, a, l) => store.queueScan(q, a, l),
    queueLength: (q) => store.queueLength(q),
  };
}

/** Orders queue items (FIFO). */
export function comparePositions(a: ItemPosition, b: ItemPosition): number {
  return a.index - b.index || a.ordinal - b.ordinal;
}
