/**
 * The `shoal` package's public API for programs: errors, ids, the seeded Random, and (as later modules land) the
 * typed RPC client.
 */
export { ShoalError, InvariantError, InvalidArgumentError, NotFoundError, AmbiguousIdError, LimitExceededError, DecodeError, hasCode } from './lib/errors.js';
export { resolveIdPrefix, shortId, newId, isNodeId } from './lib/ids.js';
export { Random } from './lib/random.js';
export { LIMITS } from './lib/limits.js';
export { ShoalClient, parseApiAddress, RemoteError, AgentUnreachableError, DeadlineExceededError, type ShoalClientOptions, type CallOptions } from './rpc/index.js';
