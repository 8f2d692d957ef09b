/**
 * Typed errors with a stable `code`.
 *
 * Operating errors (bad input, a peer that misbehaves, a full disk) are values of these classes and are handled
 * where they occur. Programmer errors (a broken invariant) are `InvariantError` and crash loudly.
 * The `code` is part of Shoal's contract: the CLI, the RPC layer and tests match on it, never on the message.
 */
export class ShoalError extends Error {
  /** Stable, machine-readable identifier, e.g. `ERR_FRAME_TOO_LARGE`. */
  readonly code: string;
  /** Structured context (field path, file, limit...) that a caller may render or log. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: string; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** A broken internal invariant: a bug in Shoal, never caused by input. */
export class InvariantError extends ShoalError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ERR_INVARIANT', message, details);
  }
}

/** Input (a flag, a file, a request field) that is malformed or out of range. */
export class InvalidArgumentError extends ShoalError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ERR_INVALID_ARGUMENT', message, details);
  }
}

/** Something looked up by name, id or id prefix that does not exist. */
export class NotFoundError extends ShoalError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ERR_NOT_FOUND', message, details);
  }
}

/** An id prefix that matches more than one id. */
export class AmbiguousIdError extends ShoalError {
  constructor(prefix: string, matches: readonly string[]) {
    super(
      'ERR_AMBIGUOUS_ID',
      `id prefix "${prefix}" matches ${matches.length} ids (${matches.slice(0, 5).join(', ')}${matches.length > 5 ? ', ...' : ''}); type more characters`,
      { prefix, matches: matches.slice(0, 20) },
    );
  }
}

/** A configured limit was exceeded (queue full, frame too large, too many retries). */
export class LimitExceededError extends ShoalError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
  }
}

/** Bytes from the wire or from disk that cannot be decoded. Always closes only the link/file it came from. */
export class DecodeError extends ShoalError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(code, message, details, options);
  }
}

/** True when `err` is a ShoalError with the given code. */
export function hasCode(err: unknown, code: string): boolean {
  return err instanceof ShoalError && err.code === code;
}

/** A readable one-line description of any thrown value, for logs. */
export function describeError(err: unknown): string {
  if (err instanceof ShoalError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
