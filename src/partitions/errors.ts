/**
 * Failures of the partition core, as data.
 *
 * A command that cannot be applied (a failed condition, a limit, an expired lease) is not a bug and not an exception:
 * it is a result, the same on every replica, that the runtime hands back to the client (and that Raft's client
 * sessions record for a retry). `toError` turns one into a `ShoalError` with the same stable `code` for the RPC edge.
 */
import { InvalidArgumentError, LimitExceededError, ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';

export type PartitionErrorCode =
  /** A malformed field: an empty key, a lone surrogate, a negative time, a lease id this core never formats. */
  | 'ERR_INVALID_ARGUMENT'
  /** A limit of LIMITS' "Partitions" section was exceeded; `limit` names it. */
  | 'ERR_PARTITION_LIMIT'
  /** A dictionary operation on a queue, or the other way round; or a declaration of the other kind. */
  | 'ERR_COLLECTION_KIND'
  /** A put's or delete's condition did not hold; `currentVersion` is the key's version now (0: absent). */
  | 'ERR_CONDITION_FAILED'
  /** A transaction's compare did not hold; `compare` is its position, and nothing changed. */
  | 'ERR_COMPARE_FAILED'
  /** An ack for a lease that ended (by time, or because the item was delivered again under a newer lease). */
  | 'ERR_LEASE_EXPIRED'
  /** An ack for a lease no item holds: the item was acknowledged already, or the lease never existed. */
  | 'ERR_LEASE_UNKNOWN'
  /** A watch resuming from a version older than the change window: re-read, then watch from the read's index. */
  | 'ERR_WATCH_COMPACTED'
  /** A partition key of a kind the scheme does not take (an int64 key for a named scheme...). */
  | 'ERR_WRONG_PARTITION_KIND'
  /** A partition key naming no partition of a named scheme. */
  | 'ERR_UNKNOWN_PARTITION_NAME'
  /**
   * A command of a client session this partition no longer remembers (it was forgotten to keep the table bounded):
   * whether an earlier attempt of it applied is unknown, so it is not applied again. The client starts a new session.
   */
  | 'ERR_SESSION_EXPIRED'
  /** A command of a session outside its window: older than what the client acknowledged, or too far ahead of it. */
  | 'ERR_SESSION_WINDOW'
  /** The bytes of a Raft entry do not decode as a partition command (a bug or a corrupt log). */
  | 'ERR_ENTRY_DECODE';

/** The limits of LIMITS' "Partitions" section: what an `ERR_PARTITION_LIMIT` failure may name. */
export type PartitionLimitName =
  | 'partitionsMaxPerService'
  | 'partitionKeyMaxBytes'
  | 'partitionCollectionNameMaxBytes'
  | 'partitionMaxCollections'
  | 'partitionEntryKeyMaxBytes'
  | 'partitionEntryValueMaxBytes'
  | 'partitionTxnMaxOps'
  | 'partitionCommandMaxBytes'
  | 'partitionQueueLeaseMaxMs'
  | 'partitionScanMaxPageEntries'
  | 'partitionScanMaxPageBytes'
  | 'partitionChangeWindowEntries'
  | 'partitionSessionWindowCommands'
  | 'partitionMaxClientSessions';

export interface Failure {
  ok: false;
  code: PartitionErrorCode;
  /** What was wrong, where, and what to do; for people. Code matches on `code` and the fields below. */
  message: string;
  /** The request field at fault, as a path: `ops[2].value`, `compares[0].key`. */
  field?: string;
  /** ERR_PARTITION_LIMIT: which limit, its value, and how much was asked for. */
  limit?: PartitionLimitName;
  max?: number;
  actual?: number;
  /** ERR_COMPARE_FAILED: the position of the compare that failed. */
  compare?: number;
  /** A failure inside a transaction's operation: the operation's position. */
  op?: number;
  /** ERR_CONDITION_FAILED and ERR_COMPARE_FAILED: the key's version when the command applied (0: absent). */
  currentVersion?: number;
  /** ERR_WATCH_COMPACTED: watches may resume from this version or a later one. */
  compactedVersion?: number;
}

export function failure(code: PartitionErrorCode, message: string, extra: Omit<Failure, 'ok' | 'code' | 'message'> = {}): Failure {
  return { ok: false, code, message, ...extra };
}

export function invalid(field: string, message: string): Failure {
  return failure('ERR_INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

/** `what` (e.g. "key", "value") of `actual` units exceeds `limit`. */
export function overLimit(limit: PartitionLimitName, actual: number, field: string, what: string): Failure {
  const max = LIMITS[limit];
  return failure('ERR_PARTITION_LIMIT', `${field}: ${what} is ${actual}, more than the limit ${limit} (${max})`, { field, limit, max, actual });
}

/** A partition failure as a `ShoalError` with the same code, for the RPC edge and the CLI. */
export function toError(f: Failure): ShoalError {
  const { ok: _ok, code, message, ...details } = f;
  if (code === 'ERR_INVALID_ARGUMENT') return new InvalidArgumentError(message, details);
  if (code === 'ERR_PARTITION_LIMIT') return new LimitExceededError(code, message, details);
  return new ShoalError(code, message, details);
}
