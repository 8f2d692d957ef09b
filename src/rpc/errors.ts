/**
 * RPC errors. On the wire an error is an `RpcError` {code, message, details}; the HTTP status follows from the code
 * (Twirp is the precedent) so proxies and curl users see a sensible status too.
 */
import { ShoalError } from '../lib/errors.js';

const STATUS_BY_CODE: Record<string, number> = {
  ERR_INVALID_ARGUMENT: 400,
  ERR_BAD_REQUEST: 400,
  ERR_UNAUTHENTICATED: 401,
  ERR_PERMISSION_DENIED: 403,
  ERR_NOT_FOUND: 404,
  ERR_UNKNOWN_METHOD: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_AMBIGUOUS_ID: 409,
  ERR_CONFLICT: 409,
  ERR_REQUEST_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_LIMIT_EXCEEDED: 429,
  ERR_UNSUPPORTED: 400,
  // Stateful services (the partition core's codes and the router's).
  ERR_PARTITION_LIMIT: 400,
  ERR_COLLECTION_KIND: 400,
  ERR_WRONG_PARTITION_KIND: 400,
  ERR_ENTRY_DECODE: 400,
  ERR_UNKNOWN_PARTITION_NAME: 404,
  ERR_LEASE_UNKNOWN: 404,
  ERR_CONDITION_FAILED: 409,
  ERR_COMPARE_FAILED: 409,
  ERR_LEASE_EXPIRED: 409,
  ERR_SESSION_EXPIRED: 409,
  ERR_SESSION_WINDOW: 409,
  ERR_WATCH_COMPACTED: 409,
  ERR_JOB_STOPPED: 409,
  ERR_PARTITION_UNAVAILABLE: 503,
  ERR_PARTITION_NOT_HOSTED: 503,
  ERR_NO_SERVER: 503,
  ERR_NOT_A_SERVER: 503,
  ERR_INTERNAL: 500,
  ERR_NO_LEADER: 503,
  ERR_NO_QUORUM: 503,
  ERR_NOT_LEADER: 503,
  ERR_RAFT_NOT_LEADER: 503,
  ERR_PEER_UNREACHABLE: 503,
  ERR_UNAVAILABLE: 503,
  ERR_DEADLINE_EXCEEDED: 504,
};

export function httpStatusFor(code: string): number {
  return STATUS_BY_CODE[code] ?? (code.endsWith('_TOO_LARGE') || code.endsWith('_TOO_LONG') ? 400 : 500);
}

/** An error the agent returned: its code and message are the agent's own. */
export class RemoteError extends ShoalError {
  constructor(code: string, message: string, readonly httpStatus: number, details: Record<string, string> = {}) {
    super(code, message, details);
  }
}

/** No agent answered at the address (refused, unreachable, reset before a response). */
export class AgentUnreachableError extends ShoalError {
  constructor(url: string, reason: string, cause?: unknown) {
    super('ERR_AGENT_UNREACHABLE', `no agent answers at ${url} (${reason}); is \`shoal agent\` running there? (set --address or SHOAL_ADDR)`, { url, reason }, { cause });
  }
}

export class DeadlineExceededError extends ShoalError {
  constructor(what: string, timeoutMs: number) {
    super('ERR_DEADLINE_EXCEEDED', `${what} did not complete within its deadline of ${timeoutMs} ms`, { timeoutMs });
  }
}
