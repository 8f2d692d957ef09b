export { SqliteLogDatabase, SqliteLogStorage, type SqliteLogOptions, type SaveRequest } from './sqlite-log.js';
export { StorageFullError, StorageCorruptError, StorageError } from './errors.js';
