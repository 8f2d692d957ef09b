/**
 * The commands a partition's Raft log carries, what applying them returns, and their validation.
 *
 * `validateCommand` is pure and runs twice: on the leader before proposing (so a bad request costs no log entry) and
 * in `PartitionState.apply` (so a replica never trusts the log blindly). Both give the same answer for the same
 * command because they read nothing but the command and LIMITS.
 */
import { LIMITS } from '../lib/limits.js';
import { isWellFormed, utf8Length } from './bytes.js';
import { invalid, overLimit, type Failure } from './errors.js';
import type { CollectionKind } from './store.js';

/** A put's condition: the key is at exactly this version, or is absent. */
export type Condition = { kind: 'version'; version: number } | { kind: 'absent' };

/** A transaction's compare on one dictionary key; all must hold for any operation to apply. */
export type Compare = { collection: string; key: string } & (
  | { kind: 'version'; version: number }
  | { kind: 'value'; value: Uint8Array }
  | { kind: 'absent' }
);

export type Operation =
  | { type: 'put'; collection: string; key: string; value: Uint8Array; condition?: Condition }
  | { type: 'delete'; collection: string; key: string; condition?: { kind: 'version'; version: number } }
  | { type: 'enqueue'; queue: string; value: Uint8Array }
  | { type: 'dequeue'; queue: string; leaseMs: number }
  | { type: 'ack'; queue: string; leaseId: string };

export interface CollectionDeclaration {
  name: string;
  kind: CollectionKind;
}

/**
 * `nowMs` is the leader's wall-clock time when it proposed the command. A core never reads a clock: time enters the
 * replicated state only this way, so every replica sees the same time at the same index. Dequeues and acks need it.
 */
export type PartitionCommand =
  | (Operation & { nowMs?: number })
  | { type: 'txn'; compares: Compare[]; ops: Operation[]; nowMs?: number }
  | { type: 'declare'; collections: CollectionDeclaration[]; nowMs?: number };

export interface DequeuedItem {
  itemId: string;
  value: Uint8Array;
  /** Log index of the enqueue. */
  enqueueVersion: number;
  /** Times it was dequeued, this time included (more than 1: an earlier lease ended without an ack). */
  deliveries: number;
  leaseId: string;
  /** The partition time at which the lease ends; an ack must apply before it. */
  leaseExpiresMs: number;
}

export type OpResult =
  /** `previousVersion`: the version replaced, 0 when the key was absent. */
  | { type: 'put'; version: number; previousVersion: number }
  | { type: 'delete'; deleted: boolean; previousVersion: number }
  | { type: 'enqueue'; itemId: string; version: number }
  /** `item` is null when no item is available (the queue is empty, or every item is leased). */
  | { type: 'dequeue'; item: DequeuedItem | null }
  | { type: 'ack'; itemId: string };

export type CommandResult =
  | ({ ok: true } & OpResult)
  | { ok: true; type: 'txn'; results: OpResult[] }
  | { ok: true; type: 'declare'; created: string[] }
  | Failure;

// --- Item and lease ids ------------------------------------------------------------------------------------------
// An item is named by its position (enqueue index, ordinal); a lease by its item and the index of the dequeue that
// granted it. Both are therefore unique forever without a counter in the state, and an ack finds its item directly.

export function formatItemId(index: number, ordinal: number): string {
  return `${index}.${ordinal}`;
}

export function formatLeaseId(index: number, ordinal: number, leaseIndex: number): string {
  return `${index}.${ordinal}.${leaseIndex}`;
}

const ID_PART = '(0|[1-9][0-9]{0,15})';
const ITEM_ID = new RegExp(`^${ID_PART}\\.${ID_PART}$`);
const LEASE_ID = new RegExp(`^${ID_PART}\\.${ID_PART}\\.${ID_PART}$`);

export function parseItemId(text: string): { index: number; ordinal: number } | undefined {
  const m = ITEM_ID.exec(text);
  if (!m) return undefined;
  const [index, ordinal] = [Number(m[1]), Number(m[2])];
  return Number.isSafeInteger(index) && Number.isSafeInteger(ordinal) ? { index, ordinal } : undefined;
}

export function parseLeaseId(text: string): { index: number; ordinal: number; leaseIndex: number } | undefined {
  const m = LEASE_ID.exec(text);
  if (!m) return undefined;
  const [index, ordinal, leaseIndex] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return [index, ordinal, leaseIndex].every(Number.isSafeInteger) ? { index, ordinal, leaseIndex } : undefined;
}

// --- Validation ----------------------------------------------------------------------------------------------------

/** The largest `nowMs` accepted: a lease of the longest length from it must still be a safe integer. */
export const MAX_NOW_MS = Number.MAX_SAFE_INTEGER - LIMITS.partitionQueueLeaseMaxMs;

export function validateCommand(command: PartitionCommand): Failure | undefined {
  if (command === null || typeof command !== 'object') return invalid('command', 'must be an object');
  if (command.nowMs !== undefined && !(Number.isSafeInteger(command.nowMs) && command.nowMs >= 0 && command.nowMs <= MAX_NOW_MS)) {
    return invalid('nowMs', `must be a whole number of milliseconds from 0 to ${MAX_NOW_MS}, got ${command.nowMs}`);
  }
  let bytes = 0;
  switch (command.type) {
    case 'declare': {
      if (!Array.isArray(command.collections) || command.collections.length === 0) return invalid('collections', 'must list at least one collection');
      if (command.collections.length > LIMITS.partitionMaxCollections) return overLimit('partitionMaxCollections', command.collections.length, 'collections', 'the number of collections declared');
      for (const [i, c] of command.collections.entries()) {
        const bad = checkCollectionName(c?.name, `collections[${i}].name`);
        if (bad) return bad;
        if (c.kind !== 'dictionary' && c.kind !== 'queue') return invalid(`collections[${i}].kind`, `must be "dictionary" or "queue", got ${JSON.stringify(c.kind)}`);
      }
      return undefined;
    }
    case 'txn': {
      if (!Array.isArray(command.compares) || !Array.isArray(command.ops)) return invalid('txn', 'needs a list of compares and a list of ops');
      if (command.compares.length === 0 && command.ops.length === 0) return invalid('txn', 'has no compares and no ops');
      if (command.compares.length > LIMITS.partitionTxnMaxOps) return overLimit('partitionTxnMaxOps', command.compares.length, 'compares', 'the number of compares');
      if (command.ops.length > LIMITS.partitionTxnMaxOps) return overLimit('partitionTxnMaxOps', command.ops.length, 'ops', 'the number of operations');
      for (const [i, c] of command.compares.entries()) {
        const bad = checkCompare(c, `compares[${i}]`);
        if (bad) return bad;
        bytes += c.key.length * 3 + (c.kind === 'value' ? c.value.length : 0);
      }
      for (const [i, op] of command.ops.entries()) {
        const bad = checkOperation(op, `ops[${i}].`);
        if (bad) return { ...bad, op: i };
        bytes += operationBytes(op);
      }
      if (command.ops.some((op) => op.type === 'dequeue' || op.type === 'ack') && command.nowMs === undefined) return invalid('nowMs', 'a transaction that dequeues or acks needs the leader\'s time');
      break;
    }
    default: {
      const bad = checkOperation(command, '');
      if (bad) return bad;
      if ((command.type === 'dequeue' || command.type === 'ack') && command.nowMs === undefined) return invalid('nowMs', `a ${command.type} needs the leader's time`);
      bytes = operationBytes(command);
    }
  }
  // Keys were counted at 3 bytes per UTF-16 unit, an upper bound of their UTF-8 size: exact only when it matters.
  if (bytes > LIMITS.partitionCommandMaxBytes) {
    const exact = commandBytes(command);
    if (exact > LIMITS.partitionCommandMaxBytes) return overLimit('partitionCommandMaxBytes', exact, command.type === 'txn' ? 'txn' : command.type, 'the size of keys and values');
  }
  return undefined;
}

/** Bytes of the keys and values a command carries (what partitionCommandMaxBytes bounds). */
export function commandBytes(command: PartitionCommand): number {
  if (command.type === 'declare') return 0;
  if (command.type !== 'txn') return exactOperationBytes(command);
  let n = 0;
  for (const c of command.compares) n += utf8Length(c.key) + (c.kind === 'value' ? c.value.length : 0);
  for (const op of command.ops) n += exactOperationBytes(op);
  return n;
}

function operationBytes(op: Operation): number {
  switch (op.type) {
    case 'put':
      return op.key.length * 3 + op.value.length;
    case 'delete':
      return op.key.length * 3;
    case 'enqueue':
      return op.value.length;
    default:
      return 0;
  }
}

function exactOperationBytes(op: Operation): number {
  switch (op.type) {
    case 'put':
      return utf8Length(op.key) + op.value.length;
    case 'delete':
      return utf8Length(op.key);
    case 'enqueue':
      return op.value.length;
    default:
      return 0;
  }
}

function checkOperation(op: Operation, path: string): Failure | undefined {
  if (op === null || typeof op !== 'object') return invalid(path || 'op', 'must be an object');
  switch (op.type) {
    case 'put':
      return checkCollectionName(op.collection, `${path}collection`) ?? checkKey(op.key, `${path}key`) ?? checkValue(op.value, `${path}value`) ?? checkCondition(op.condition, `${path}condition`);
    case 'delete':
      if (op.condition !== undefined && op.condition.kind !== 'version') return invalid(`${path}condition`, 'a delete may only require a version');
      return checkCollectionName(op.collection, `${path}collection`) ?? checkKey(op.key, `${path}key`) ?? checkCondition(op.condition, `${path}condition`);
    case 'enqueue':
      return checkCollectionName(op.queue, `${path}queue`) ?? checkValue(op.value, `${path}value`);
    case 'dequeue':
      if (!Number.isSafeInteger(op.leaseMs) || op.leaseMs < 1) return invalid(`${path}leaseMs`, `must be a whole number of milliseconds from 1, got ${op.leaseMs}`);
      if (op.leaseMs > LIMITS.partitionQueueLeaseMaxMs) return overLimit('partitionQueueLeaseMaxMs', op.leaseMs, `${path}leaseMs`, 'the lease');
      return checkCollectionName(op.queue, `${path}queue`);
    case 'ack':
      if (typeof op.leaseId !== 'string' || parseLeaseId(op.leaseId) === undefined) return invalid(`${path}leaseId`, `"${String(op.leaseId).slice(0, 64)}" is not a lease id (a dequeue returns one, as "12.0.15")`);
      return checkCollectionName(op.queue, `${path}queue`);
    default:
      return invalid(`${path}type`, `unknown operation ${JSON.stringify((op as { type: unknown }).type)}`);
  }
}

function checkCompare(c: Compare, path: string): Failure | undefined {
  if (c === null || typeof c !== 'object') return invalid(path, 'must be an object');
  const bad = checkCollectionName(c.collection, `${path}.collection`) ?? checkKey(c.key, `${path}.key`);
  if (bad) return bad;
  switch (c.kind) {
    case 'version':
      return checkVersion(c.version, `${path}.version`);
    case 'value':
      return checkValue(c.value, `${path}.value`);
    case 'absent':
      return undefined;
    default:
      return invalid(`${path}.kind`, `must be "version", "value" or "absent", got ${JSON.stringify((c as { kind: unknown }).kind)}`);
  }
}

function checkCondition(c: Condition | undefined, path: string): Failure | undefined {
  if (c === undefined) return undefined;
  if (c.kind === 'absent') return undefined;
  if (c.kind === 'version') return checkVersion(c.version, `${path}.version`);
  return invalid(`${path}.kind`, `must be "version" or "absent", got ${JSON.stringify((c as { kind: unknown }).kind)}`);
}

function checkVersion(v: number, path: string): Failure | undefined {
  if (!Number.isSafeInteger(v) || v < 1) return invalid(path, `must be a version (a log index, from 1), got ${v}; to require absence use the "absent" kind`);
  return undefined;
}

export function checkCollectionName(name: string, path: string): Failure | undefined {
  if (typeof name !== 'string' || name.length === 0) return invalid(path, 'must be a non-empty string');
  if (!isWellFormed(name)) return invalid(path, 'contains a lone UTF-16 surrogate; it has no UTF-8 form');
  const bytes = utf8Length(name);
  if (bytes > LIMITS.partitionCollectionNameMaxBytes) return overLimit('partitionCollectionNameMaxBytes', bytes, path, 'the collection name\'s UTF-8 length');
  return undefined;
}

export function checkKey(key: string, path: string): Failure | undefined {
  if (typeof key !== 'string' || key.length === 0) return invalid(path, 'must be a non-empty string');
  if (!isWellFormed(key)) return invalid(path, 'contains a lone UTF-16 surrogate; it has no UTF-8 form');
  const bytes = utf8Length(key);
  if (bytes > LIMITS.partitionEntryKeyMaxBytes) return overLimit('partitionEntryKeyMaxBytes', bytes, path, 'the key\'s UTF-8 length');
  return undefined;
}

function checkValue(value: Uint8Array, path: string): Failure | undefined {
  if (!(value instanceof Uint8Array)) return invalid(path, 'must be bytes');
  if (value.length > LIMITS.partitionEntryValueMaxBytes) return overLimit('partitionEntryValueMaxBytes', value.length, path, 'the value\'s length in bytes');
  return undefined;
}
