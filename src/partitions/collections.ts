/**
 * The replicated state machine of one partition, which every replica applies in log order: Service Fabric's
 * "reliable collections", dictionaries and queues, with transactions over them.
 *
 * It is deterministic. Everything an apply depends on is in the store or in the command: versions are log indexes,
 * ids are made of log indexes, and time is the `nowMs` the leader put in the command (kept monotonic, see
 * `clockMs`). It keeps no data of its own apart from the change feed, so it is as large as its store allows.
 *
 * Every apply is one store transaction, failed ones included (they still advance the applied index). A command that
 * fails changes nothing else: its writes are rolled back, which is what makes a transaction all or nothing.
 *
 * Exactly-once is not this machine's job. Raft client sessions (src/consensus/sessions.ts) drop a retried command
 * before it reaches `apply` and answer with the first result; the runtime keeps that table in the partition's store
 * (`withTxn`, `meta`), so it travels in snapshots. Should the same command still be applied at two indexes, nothing
 * breaks: the second is a new command (a second put of the same value gets a new version; a second enqueue adds a
 * second item; an ack of a lease already acknowledged fails with ERR_LEASE_UNKNOWN), and every invariant holds.
 */
import { invariant, unreachable } from '../lib/assert.js';
import { LIMITS } from '../lib/limits.js';
import { bytesEqual, compareKeys, utf8Length } from './bytes.js';
import { ChangeWindow, type ChangeFilter, type ChangeRecord, type WatchResult } from './changes.js';
import {
  checkCollectionName, checkKey, formatItemId, formatLeaseId, parseItemId, parseLeaseId, validateCommand,
  type CommandResult, type Compare, type DequeuedItem, type Operation, type OpResult, type PartitionCommand,
} from './commands.js';
import { failure, invalid, overLimit, type Failure } from './errors.js';
import type { CollectionKind, CollectionRecord, PartitionStore, StoreTxn } from './store.js';

export interface PartitionStateOptions {
  /** Change records kept for watchers (default LIMITS.partitionChangeWindowEntries). */
  changeWindowEntries?: number;
}

export interface ApplyOptions {
  /**
   * Runs inside the apply's store transaction, after the command and before the commit: the runtime records the
   * client session's result here, so the table and the state it guards are always persisted together.
   */
  withTxn?: (txn: Pick<StoreTxn, 'meta' | 'setMeta'>, result: CommandResult | undefined) => void;
}

export type GetResult =
  | { ok: true; found: false; index: number }
  | { ok: true; found: true; value: Uint8Array; version: number; index: number }
  | Failure;

export interface ScanOptions {
  /** First key (inclusive); absent: from the first key. A previous page's `continuation` goes here. */
  start?: string;
  /** Last key (exclusive); absent: to the end. */
  end?: string;
  /** Entries in the page, at most (default and maximum LIMITS.partitionScanMaxPageEntries). */
  limit?: number;
}

export type ScanResult =
  /** `continuation`: pass it as `start` for the next page; absent when the range is exhausted. */
  | { ok: true; entries: { key: string; value: Uint8Array; version: number }[]; continuation?: string; index: number }
  | Failure;

export interface QueueItemView {
  itemId: string;
  value: Uint8Array;
  enqueueVersion: number;
  deliveries: number;
  /** The latest lease, if it was ever dequeued; `active` is false once it ended (the item is available again). */
  lease?: { leaseId: string; expiresMs: number; active: boolean };
}

export type QueueScanResult =
  | { ok: true; items: QueueItemView[]; continuation?: string; index: number }
  | Failure;

/** What one apply is doing: where it is in the log, its time, and what it wrote. */
interface ApplyContext {
  index: number;
  nowMs: number;
  changes: ChangeRecord[];
  /** Items the command enqueued so far: the next one's ordinal. */
  enqueued: number;
}

export class PartitionState {
  readonly #store: PartitionStore;
  readonly #changes: ChangeWindow;

  private constructor(store: PartitionStore, options: PartitionStateOptions) {
    this.#store = store;
    this.#changes = new ChangeWindow(store.appliedIndex(), options.changeWindowEntries);
  }

  /** The state machine over `store`, at the store's applied index (a new store, or one restored from a snapshot). */
  static open(store: PartitionStore, options: PartitionStateOptions = {}): PartitionState {
    return new PartitionState(store, options);
  }

  get appliedIndex(): number {
    return this.#store.appliedIndex();
  }

  /**
   * The partition's time: the largest `nowMs` of any applied command. Leaders' clocks differ, so a new leader's may
   * be behind the last one's; taking the maximum keeps time from running backwards in the replicated state, so a
   * lease that ended never comes back.
   */
  get clockMs(): number {
    return this.#store.clockMs();
  }

  // --- Apply -----------------------------------------------------------------------------------------------------

  /** Applies the command committed at `index`. Indexes must increase; gaps are fine (entries of other kinds). */
  apply(index: number, command: PartitionCommand, options: ApplyOptions = {}): CommandResult {
    this.#checkIndex(index);
    const bad = validateCommand(command);
    const nowMs = bad === undefined && command.nowMs !== undefined ? Math.max(this.#store.clockMs(), command.nowMs) : this.#store.clockMs();
    const ctx: ApplyContext = { index, nowMs, changes: [], enqueued: 0 };
    let txn = this.#store.begin();
    let result: CommandResult;
    try {
      result = bad ?? this.#execute(txn, ctx, command);
    } catch (err) {
      txn.rollback();
      throw err;
    }
    if (!result.ok) {
      txn.rollback();
      ctx.changes.length = 0;
      txn = this.#store.begin();
    }
    this.#finish(txn, index, nowMs, options, result);
    this.#changes.append(ctx.changes);
    return result;
  }

  /**
   * Records that the entry at `index` carries nothing for this machine (a no-op, a configuration change, or a
   * retried command that client sessions dropped), so the applied index stays that of the log.
   */
  advance(index: number, options: ApplyOptions = {}): void {
    this.#checkIndex(index);
    this.#finish(this.#store.begin(), index, this.#store.clockMs(), options, undefined);
  }

  #checkIndex(index: number): void {
    invariant(Number.isSafeInteger(index) && index > this.#store.appliedIndex(), `partition apply index must increase: ${this.#store.appliedIndex()} -> ${index}`);
  }

  #finish(txn: StoreTxn, index: number, nowMs: number, options: ApplyOptions, result: CommandResult | undefined): void {
    try {
      txn.setApplied(index, nowMs);
      options.withTxn?.(txn, result);
      txn.commit();
    } catch (err) {
      txn.rollback();
      throw err;
    }
  }

  #execute(txn: StoreTxn, ctx: ApplyContext, command: PartitionCommand): CommandResult {
    switch (command.type) {
      case 'declare':
        return this.#declare(txn, ctx, command.collections);
      case 'txn': {
        for (const [i, c] of command.compares.entries()) {
          const bad = this.#compare(txn, c, i);
          if (bad) return bad;
        }
        const results: OpResult[] = [];
        for (const [i, op] of command.ops.entries()) {
          const r = this.#operation(txn, ctx, op, `ops[${i}].`);
          if ('ok' in r) return { ...r, op: i, message: `ops[${i}] (${op.type}) failed, so the transaction changed nothing: ${r.message}` };
          results.push(r);
        }
        return { ok: true, type: 'txn', results };
      }
      default: {
        const r = this.#operation(txn, ctx, command, '');
        return 'ok' in r ? r : { ok: true, ...r };
      }
    }
  }

  #declare(txn: StoreTxn, ctx: ApplyContext, declarations: readonly { name: string; kind: CollectionKind }[]): CommandResult {
    const created: string[] = [];
    for (const [i, d] of declarations.entries()) {
      const existing = txn.collection(d.name);
      if (existing) {
        if (existing.kind !== d.kind) return kindMismatch(existing, d.kind, `collections[${i}]`);
        if (!existing.declared) txn.putCollection({ ...existing, declared: true });
        continue;
      }
      const bad = this.#create(txn, ctx, d.name, d.kind, true, `collections[${i}].name`);
      if (bad) return bad;
      created.push(d.name);
    }
    return { ok: true, type: 'declare', created };
  }

  #create(txn: StoreTxn, ctx: ApplyContext, name: string, kind: CollectionKind, declared: boolean, field: string): Failure | undefined {
    const count = txn.collections().length;
    if (count >= LIMITS.partitionMaxCollections) return overLimit('partitionMaxCollections', count + 1, field, 'the number of collections');
    txn.putCollection({ name, kind, createVersion: ctx.index, declared });
    return undefined;
  }

  /**
   * Checks that `name` is not a collection of the other kind; creates it when `create` (a first write).
   * Returns whether it exists now.
   */
  #use(txn: StoreTxn, ctx: ApplyContext, name: string, kind: CollectionKind, create: boolean, field: string): boolean | Failure {
    const existing = txn.collection(name);
    if (existing) return existing.kind === kind ? true : kindMismatch(existing, kind, field);
    if (!create) return false;
    return this.#create(txn, ctx, name, kind, false, field) ?? true;
  }

  #compare(txn: StoreTxn, c: Compare, i: number): Failure | undefined {
    const field = `compares[${i}]`;
    const existing = txn.collection(c.collection);
    if (existing && existing.kind !== 'dictionary') return { ...kindMismatch(existing, 'dictionary', `${field}.collection`), compare: i };
    const current = existing ? txn.get(c.collection, c.key) : undefined;
    const held = c.kind === 'absent' ? current === undefined
      : c.kind === 'version' ? current?.version === c.version
        : current !== undefined && bytesEqual(current.value, c.value);
    if (held) return undefined;
    const now = current ? `is at version ${current.version}` : 'is absent';
    const wanted = c.kind === 'absent' ? 'to be absent' : c.kind === 'version' ? `at version ${c.version}` : 'to hold the given value';
    return failure('ERR_COMPARE_FAILED', `${field}: key "${c.key}" of "${c.collection}" ${now}, the transaction wanted it ${wanted}; nothing was changed`, { field, compare: i, currentVersion: current?.version ?? 0 });
  }

  /** One operation, alone or inside a transaction (`path` prefixes field names: "ops[2]."). */
  #operation(txn: StoreTxn, ctx: ApplyContext, op: Operation, path: string): OpResult | Failure {
    const { index } = ctx;
    switch (op.type) {
      case 'put': {
        const used = this.#use(txn, ctx, op.collection, 'dictionary', true, `${path}collection`);
        if (typeof used !== 'boolean') return used;
        const current = txn.get(op.collection, op.key);
        if (op.condition) {
          const held = op.condition.kind === 'absent' ? current === undefined : current?.version === op.condition.version;
          if (!held) return conditionFailed(op.collection, op.key, current?.version ?? 0, op.condition.kind === 'absent' ? 'to be absent' : `at version ${op.condition.version}`, `${path}condition`);
        }
        txn.put(op.collection, { key: op.key, value: op.value, version: index });
        ctx.changes.push({ version: index, collection: op.collection, key: op.key, kind: 'put' });
        return { type: 'put', version: index, previousVersion: current?.version ?? 0 };
      }
      case 'delete': {
        const used = this.#use(txn, ctx, op.collection, 'dictionary', false, `${path}collection`);
        if (typeof used !== 'boolean') return used;
        const current = used ? txn.get(op.collection, op.key) : undefined;
        if (op.condition && current?.version !== op.condition.version) {
          return conditionFailed(op.collection, op.key, current?.version ?? 0, `at version ${op.condition.version}`, `${path}condition`);
        }
        if (current === undefined) return { type: 'delete', deleted: false, previousVersion: 0 };
        txn.delete(op.collection, op.key);
        ctx.changes.push({ version: index, collection: op.collection, key: op.key, kind: 'delete' });
        return { type: 'delete', deleted: true, previousVersion: current.version };
      }
      case 'enqueue': {
        const used = this.#use(txn, ctx, op.queue, 'queue', true, `${path}queue`);
        if (typeof used !== 'boolean') return used;
        const ordinal = ctx.enqueued++;
        txn.putQueueItem(op.queue, { index, ordinal, value: op.value, deliveries: 0 });
        const itemId = formatItemId(index, ordinal);
        ctx.changes.push({ version: index, collection: op.queue, key: itemId, kind: 'enqueue' });
        return { type: 'enqueue', itemId, version: index };
      }
      case 'dequeue': {
        const used = this.#use(txn, ctx, op.queue, 'queue', false, `${path}queue`);
        if (typeof used !== 'boolean') return used;
        const next = used ? txn.queueNextAvailable(op.queue, ctx.nowMs) : undefined;
        if (!next) return { type: 'dequeue', item: null };
        invariant(next.lease === undefined || (next.lease.index < index && next.lease.expiresMs <= ctx.nowMs), 'a dequeue found an item under a live lease');
        const lease = { index, expiresMs: ctx.nowMs + op.leaseMs };
        txn.putQueueItem(op.queue, { ...next, deliveries: next.deliveries + 1, lease });
        const itemId = formatItemId(next.index, next.ordinal);
        ctx.changes.push({ version: index, collection: op.queue, key: itemId, kind: 'lease' });
        const item: DequeuedItem = {
          itemId, value: next.value, enqueueVersion: next.index, deliveries: next.deliveries + 1,
          leaseId: formatLeaseId(next.index, next.ordinal, index), leaseExpiresMs: lease.expiresMs,
        };
        return { type: 'dequeue', item };
      }
      case 'ack': {
        const field = `${path}leaseId`;
        const id = parseLeaseId(op.leaseId);
        invariant(id !== undefined, 'validateCommand let a malformed lease id through');
        const used = this.#use(txn, ctx, op.queue, 'queue', false, `${path}queue`);
        if (typeof used !== 'boolean') return used;
        const item = used ? txn.queueItem(op.queue, id) : undefined;
        const unknown = `no item of queue "${op.queue}" holds lease ${op.leaseId}: it was acknowledged already, or never granted`;
        if (!item || !item.lease || item.lease.index < id.leaseIndex) return failure('ERR_LEASE_UNKNOWN', `${field}: ${unknown}`, { field });
        if (item.lease.index > id.leaseIndex) {
          return failure('ERR_LEASE_EXPIRED', `${field}: lease ${op.leaseId} ended and item ${formatItemId(item.index, item.ordinal)} was delivered again (lease ${formatLeaseId(item.index, item.ordinal, item.lease.index)}); the new holder acknowledges it`, { field });
        }
        if (item.lease.expiresMs <= ctx.nowMs) {
          return failure('ERR_LEASE_EXPIRED', `${field}: lease ${op.leaseId} ended at ${item.lease.expiresMs} ms and it is ${ctx.nowMs} ms; the item is back in the queue for another dequeue`, { field });
        }
        txn.deleteQueueItem(op.queue, item);
        const itemId = formatItemId(item.index, item.ordinal);
        ctx.changes.push({ version: index, collection: op.queue, key: itemId, kind: 'ack' });
        return { type: 'ack', itemId };
      }
      default:
        return unreachable(op, 'unknown partition operation');
    }
  }

  // --- Reads -----------------------------------------------------------------------------------------------------
  // Reads answer from the applied state, with the index they read at. Whether that is linearizable (ReadIndex), a
  // leader lease read or a local read is the runtime's choice of when to call them.

  collections(): CollectionRecord[] {
    return this.#store.collections();
  }

  get(collection: string, key: string): GetResult {
    const bad = checkCollectionName(collection, 'collection') ?? checkKey(key, 'key') ?? this.#readable(collection, 'dictionary');
    if (bad) return bad;
    const index = this.#store.appliedIndex();
    const e = this.#store.get(collection, key);
    return e ? { ok: true, found: true, value: e.value, version: e.version, index } : { ok: true, found: false, index };
  }

  /** A page of the entries in [start, end), in UTF-8 byte order of keys. */
  scan(collection: string, options: ScanOptions = {}): ScanResult {
    const { start, end } = options;
    const limit = options.limit ?? LIMITS.partitionScanMaxPageEntries;
    const bad = checkCollectionName(collection, 'collection')
      ?? (start === undefined ? undefined : checkKey(start, 'start'))
      ?? (end === undefined ? undefined : checkKey(end, 'end'))
      ?? checkPageLimit(limit)
      ?? this.#readable(collection, 'dictionary');
    if (bad) return bad;
    const index = this.#store.appliedIndex();
    if (start !== undefined && end !== undefined && compareKeys(start, end) >= 0) return { ok: true, entries: [], index };
    const rows = this.#store.scan(collection, start, end, limit + 1);
    const entries: { key: string; value: Uint8Array; version: number }[] = [];
    let bytes = 0;
    for (const row of rows) {
      const size = utf8Length(row.key) + row.value.length;
      if (entries.length === limit || (entries.length > 0 && bytes + size > LIMITS.partitionScanMaxPageBytes)) {
        return { ok: true, entries, continuation: row.key, index };
      }
      bytes += size;
      entries.push({ key: row.key, value: row.value, version: row.version });
    }
    return { ok: true, entries, index };
  }

  /** A page of a queue's items in FIFO order, leased ones included (for inspection; consumers dequeue). */
  queueScan(queue: string, options: { after?: string; limit?: number } = {}): QueueScanResult {
    const limit = options.limit ?? LIMITS.partitionScanMaxPageEntries;
    const after = options.after === undefined ? undefined : parseItemId(options.after);
    const bad = checkCollectionName(queue, 'queue')
      ?? (options.after !== undefined && after === undefined ? invalid('after', `"${options.after.slice(0, 64)}" is not an item id (as "12.0")`) : undefined)
      ?? checkPageLimit(limit)
      ?? this.#readable(queue, 'queue');
    if (bad) return bad;
    const index = this.#store.appliedIndex();
    const clock = this.#store.clockMs();
    const rows = this.#store.queueScan(queue, after, limit + 1);
    const items: QueueItemView[] = [];
    let bytes = 0;
    for (const row of rows) {
      const itemId = formatItemId(row.index, row.ordinal);
      if (items.length === limit || (items.length > 0 && bytes + row.value.length > LIMITS.partitionScanMaxPageBytes)) {
        return { ok: true, items, continuation: items[items.length - 1]!.itemId, index };
      }
      bytes += row.value.length;
      items.push({
        itemId, value: row.value, enqueueVersion: row.index, deliveries: row.deliveries,
        ...(row.lease ? { lease: { leaseId: formatLeaseId(row.index, row.ordinal, row.lease.index), expiresMs: row.lease.expiresMs, active: row.lease.expiresMs > clock } } : {}),
      });
    }
    return { ok: true, items, index };
  }

  /** Items in a queue, leased ones included; 0 for a queue that does not exist. */
  queueLength(queue: string): number {
    return this.#store.queueLength(queue);
  }

  /** Changes after `fromVersion` matching `filter` (see changes.ts for paging and ERR_WATCH_COMPACTED). */
  watch(fromVersion: number, filter: ChangeFilter = {}, limit?: number): WatchResult {
    const bad = (filter.collection === undefined ? undefined : checkCollectionName(filter.collection, 'collection'))
      ?? (filter.key === undefined ? undefined : checkKey(filter.key, 'key'))
      ?? (filter.start === undefined ? undefined : checkKey(filter.start, 'start'))
      ?? (filter.end === undefined ? undefined : checkKey(filter.end, 'end'));
    if (bad) return bad;
    return this.#changes.since(fromVersion, this.#store.appliedIndex(), filter, limit);
  }

  /** The oldest version a watch may resume from on this replica. */
  get changeFloor(): number {
    return this.#changes.floor;
  }

  #readable(name: string, kind: CollectionKind): Failure | undefined {
    const existing = this.#store.collection(name);
    return existing && existing.kind !== kind ? kindMismatch(existing, kind, kind === 'queue' ? 'queue' : 'collection') : undefined;
  }
}

function checkPageLimit(limit: number): Failure | undefined {
  if (!Number.isSafeInteger(limit) || limit < 1) return invalid('limit', `must be a whole number from 1, got ${limit}`);
  if (limit > LIMITS.partitionScanMaxPageEntries) return overLimit('partitionScanMaxPageEntries', limit, 'limit', 'the page size');
  return undefined;
}

function kindMismatch(existing: CollectionRecord, wanted: CollectionKind, field: string): Failure {
  return failure('ERR_COLLECTION_KIND', `${field}: "${existing.name}" is a ${existing.kind} (since version ${existing.createVersion}), not a ${wanted}; use another name for the ${wanted}`, { field });
}

function conditionFailed(collection: string, key: string, currentVersion: number, wanted: string, field: string): Failure {
  const now = currentVersion === 0 ? 'is absent' : `is at version ${currentVersion}`;
  return failure('ERR_CONDITION_FAILED', `${field}: key "${key}" of "${collection}" ${now}, the write wanted it ${wanted}; nothing was changed`, { field, currentVersion });
}
