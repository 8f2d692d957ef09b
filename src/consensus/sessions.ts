/**
 * Exactly-once application of client commands, for the replicated state machines built on the core.
 *
 * A client tags each command with (clientId, seq), increasing seq per new command and reusing it on a retry. A
 * retry can commit twice (the first attempt committed but its answer was lost); every replica then sees the same
 * two entries in the same order, and this table makes the second a no-op that returns the first one's result
 * (Raft dissertation §6.3). Clients have one command outstanding at a time, so one result per client suffices.
 *
 * The table is part of the state machine: it must be in its snapshots (`toJSON` / `fromJSON`). It is bounded: past
 * `maxSessions`, the client that was least recently applied is forgotten, identically on every replica because
 * eviction depends only on the applied sequence.
 */
import { invariant } from '../lib/assert.js';
import { LIMITS } from '../lib/limits.js';
import type { RequestId } from './types.js';

export type SessionCheck<R> =
  /** Not seen before: apply it, then `record` the result. */
  | { kind: 'new' }
  /** The same command applied already: answer with its result, do not apply again. */
  | { kind: 'duplicate'; result: R }
  /** Older than the last command of this client: the client has moved on, so nobody waits for the answer. */
  | { kind: 'stale' };

export interface SessionRecord<R> {
  clientId: string;
  seq: number;
  result: R;
}

export class ClientSessions<R> {
  /** Insertion order = order of last application: the first key is the one to evict. */
  readonly #sessions = new Map<string, { seq: number; result: R }>();
  readonly #maxSessions: number;

  constructor(maxSessions: number = LIMITS.raftMaxClientSessions) {
    invariant(maxSessions > 0, 'maxSessions must be positive');
    this.#maxSessions = maxSessions;
  }

  check(request: RequestId): SessionCheck<R> {
    const s = this.#sessions.get(request.clientId);
    if (s === undefined || request.seq > s.seq) return { kind: 'new' };
    if (request.seq === s.seq) return { kind: 'duplicate', result: s.result };
    return { kind: 'stale' };
  }

  record(request: RequestId, result: R): void {
    this.#sessions.delete(request.clientId);
    this.#sessions.set(request.clientId, { seq: request.seq, result });
    while (this.#sessions.size > this.#maxSessions) {
      const oldest = this.#sessions.keys().next().value as string;
      this.#sessions.delete(oldest);
    }
  }

  /**
   * Applies `request` through `apply` exactly once: a duplicate returns the recorded result, a stale one returns
   * undefined without applying.
   */
  applyOnce(request: RequestId | undefined, apply: () => R): { result: R | undefined; applied: boolean } {
    if (request === undefined) return { result: apply(), applied: true };
    const c = this.check(request);
    if (c.kind === 'duplicate') return { result: c.result, applied: false };
    if (c.kind === 'stale') return { result: undefined, applied: false };
    const result = apply();
    this.record(request, result);
    return { result, applied: true };
  }

  get size(): number {
    return this.#sessions.size;
  }

  toJSON(): SessionRecord<R>[] {
    return [...this.#sessions].map(([clientId, s]) => ({ clientId, seq: s.seq, result: s.result }));
  }

  static fromJSON<R>(records: readonly SessionRecord<R>[], maxSessions?: number): ClientSessions<R> {
    const table = new ClientSessions<R>(maxSessions);
    for (const r of records) table.record({ clientId: r.clientId, seq: r.seq }, r.result);
    return table;
  }
}
