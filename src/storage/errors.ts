import { ShoalError } from '../lib/errors.js';

/** The database refused a write because the disk (or its configured size) is full. Nothing of the write was kept. */
export class StorageFullError extends ShoalError {
  constructor(file: string, cause: unknown) {
    super('ERR_STORAGE_FULL', `the Raft log ${file} cannot grow: the disk is full (nothing of this write was kept; free space and the agent continues)`, { file }, { cause });
  }
}

/** An entry, hard state or snapshot whose checksum does not match: it is never applied. */
export class StorageCorruptError extends ShoalError {
  constructor(file: string, group: string, what: string, details: Record<string, unknown> = {}) {
    super('ERR_STORAGE_CORRUPT', `the Raft log ${file} (group "${group}") is corrupt: ${what}`, { file, group, ...details });
  }
}

/** Any other failure of the database, with the operation that failed. */
export class StorageError extends ShoalError {
  constructor(file: string, operation: string, cause: unknown) {
    super('ERR_STORAGE', `the Raft log ${file}: ${operation} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { file, operation }, { cause });
  }
}
