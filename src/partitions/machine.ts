/**
 * A partition replica's state machine as Raft drives it: the bytes of a committed entry in, a result out, exactly
 * once per client command.
 *
 * An entry carries a `PartitionEntry`: the command (with the leader's `nowMs` in it) and, for a client's write, its
 * session `{ client, seq, acked }`. Clients are agents forwarding calls; one agent may have many commands of one
 * session in flight (64 concurrent writes through one agent are one session), so a session is a window, not a single
 * outstanding command as in `src/consensus/sessions.ts`:
 *
 * - `seq` numbers the client's commands, from 1; a retry (after a lost answer, a timeout, a new leader) reuses it.
 * - `acked` is the client's lowest seq whose answer it has not yet received: every answer below it arrived, so the
 *   replica forgets those results.
 * - A seq already applied answers its recorded result and changes nothing (a retry never applies twice, and a queue
 *   item is never delivered twice to the same request); a seq below the replica's `acked` is refused
 *   (`ERR_SESSION_WINDOW`: nobody is waiting for it); a seq `partitionSessionWindowCommands` or more past `acked` is
 *   refused too, which bounds what one session holds.
 * - The table holds at most `partitionMaxClientSessions` sessions; the one used least recently is forgotten. A
 *   forgotten session's next command is refused with `ERR_SESSION_EXPIRED` unless it is the session's first window
 *   (`acked` = 1), because an earlier attempt of it may have applied and the replica can no longer tell.
 *
 * The table is part of the replicated state: it lives in the store's meta rows, written in the same transaction as the
 * command it guards (`PartitionState.apply`'s `withTxn`), so a snapshot carries it and a crash never separates them.
 * Rows: `session/<client>` → `{ acked, lastIndex }`, and `result/<client>/<seq>` → the result. In memory only the
 * seqs and the order of use are kept, so memory does not grow with result sizes.
 *
 * Deterministic: the same entries give the same results and the same state on every replica.
 */
import { DecodeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { decodeUtf8, encodeUtf8, fromBase64, toBase64 } from './bytes.js';
import { PartitionState, type PartitionStateOptions } from './collections.js';
import type { CommandResult, PartitionCommand } from './commands.js';
import { failure } from './errors.js';
import type { PartitionStore, StoreTxn } from './store.js';

export interface SessionTag {
  client: string;
  /** From 1; a retry reuses it. */
  seq: number;
  /** The client's lowest seq still waiting for its answer (all below were answered). */
  acked: number;
}

export interface PartitionEntry {
  command: PartitionCommand;
  session?: SessionTag;
}

// --- Encoding -----------------------------------------------------------------------------------------------------
// JSON, with bytes as {"$b64": "..."}: every other object in a command is a structure the core defines, so the tag
// cannot collide with user data (keys and names are strings, values are bytes).

const BYTES_TAG = '$b64';

function replacer(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? { [BYTES_TAG]: toBase64(value) } : value;
}

function reviver(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const tagged = (value as Record<string, unknown>)[BYTES_TAG];
    if (keys.length === 1 && typeof tagged === 'string') {
      const bytes = fromBase64(tagged);
      if (bytes === undefined) throw new DecodeError('ERR_ENTRY_DECODE', 'a bytes field is not canonical base64');
      return bytes;
    }
  }
  return value;
}

/** A value with bytes in it, as JSON text's UTF-8 (entries and session results). */
export function encodeTagged(value: unknown): Uint8Array {
  return encodeUtf8(JSON.stringify(value, replacer));
}

export function decodeTagged(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decodeUtf8(bytes), reviver) as unknown;
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError('ERR_ENTRY_DECODE', `not a partition entry: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function encodeEntry(entry: PartitionEntry): Uint8Array {
  return encodeTagged(entry);
}

/** Decodes an entry's shape; the command itself is validated by `PartitionState.apply`. Throws DecodeError. */
export function decodeEntry(bytes: Uint8Array): PartitionEntry {
  const v = decodeTagged(bytes) as Partial<PartitionEntry> | null;
  if (typeof v !== 'object' || v === null || typeof v.command !== 'object' || v.command === null || typeof v.command.type !== 'string') {
    throw new DecodeError('ERR_ENTRY_DECODE', 'a partition entry needs a command with a type');
  }
  const s = v.session;
  if (s !== undefined) {
    const whole = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 1;
    if (typeof s !== 'object' || s === null || typeof s.client !== 'string' || s.client === '' || !whole(s.seq) || !whole(s.acked) || s.acked > s.seq) {
      throw new DecodeError('ERR_ENTRY_DECODE', 'a partition entry\'s session needs a client, and whole seq >= acked >= 1');
    }
  }
  return v as PartitionEntry;
}

// --- Sessions -----------------------------------------------------------------------------------------------------

interface Session {
  acked: number;
  lastIndex: number;
  /** Seqs whose results are stored (all >= acked). */
  seqs: Set<number>;
}

const SESSION_PREFIX = 'session/';
const RESULT_PREFIX = 'result/';
const sessionKey = (client: string): string => `${SESSION_PREFIX}${client}`;
/** Seqs padded so result rows sort numerically. */
const resultKey = (client: string, seq: number): string => `${RESULT_PREFIX}${client}/${String(seq).padStart(16, '0')}`;

export interface PartitionMachineOptions extends PartitionStateOptions {
  /** Sessions remembered (default LIMITS.partitionMaxClientSessions). */
  maxSessions?: number;
}

/** What applying one entry did. `result` is undefined for entries that carry nothing for this machine. */
export interface Applied {
  result: CommandResult | undefined;
  /** A retry answered from the session table: nothing was applied. */
  duplicate: boolean;
}

export class PartitionMachine {
  readonly state: PartitionState;
  readonly #store: PartitionStore;
  /** Ordered by last use (Map insertion order): the first is the one to forget. */
  readonly #sessions = new Map<string, Session>();
  readonly #maxSessions: number;

  private constructor(store: PartitionStore, options: PartitionMachineOptions) {
    this.#store = store;
    this.state = PartitionState.open(store, options);
    this.#maxSessions = options.maxSessions ?? LIMITS.partitionMaxClientSessions;
    const loaded = new Map<string, Session>();
    for (const key of store.metaKeys(SESSION_PREFIX)) {
      const row = decodeTagged(store.meta(key)!) as { acked: number; lastIndex: number };
      loaded.set(key.slice(SESSION_PREFIX.length), { acked: row.acked, lastIndex: row.lastIndex, seqs: new Set() });
    }
    for (const key of store.metaKeys(RESULT_PREFIX)) {
      const rest = key.slice(RESULT_PREFIX.length);
      const cut = rest.lastIndexOf('/');
      loaded.get(rest.slice(0, cut))?.seqs.add(Number(rest.slice(cut + 1)));
    }
    for (const [client, s] of [...loaded].sort((a, b) => a[1].lastIndex - b[1].lastIndex)) this.#sessions.set(client, s);
  }

  /** The machine over `store`, at its applied index (new, reopened after a crash, or installed from a snapshot). */
  static open(store: PartitionStore, options: PartitionMachineOptions = {}): PartitionMachine {
    return new PartitionMachine(store, options);
  }

  get appliedIndex(): number {
    return this.state.appliedIndex;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Applies the `normal` entry committed at `index`. */
  apply(index: number, data: Uint8Array): Applied {
    let entry: PartitionEntry;
    try {
      entry = decodeEntry(data);
    } catch (err) {
      // Every replica decodes the same bytes the same way: the entry applies as a failure, identically everywhere.
      this.state.advance(index);
      return { result: failure('ERR_ENTRY_DECODE', `the entry at index ${index} is not a partition command: ${(err as Error).message}`), duplicate: false };
    }
    const tag = entry.session;
    if (tag === undefined) return { result: this.state.apply(index, entry.command), duplicate: false };
    const session = this.#sessions.get(tag.client);
    if (session === undefined && tag.acked > 1) {
      this.state.advance(index);
      return {
        result: failure('ERR_SESSION_EXPIRED', `client session ${tag.client} is no longer remembered by this partition, so whether an earlier attempt of command ${tag.seq} applied is unknown; it was not applied again`),
        duplicate: false,
      };
    }
    if (session !== undefined) {
      if (session.seqs.has(tag.seq)) {
        this.state.advance(index);
        return { result: decodeTagged(this.#store.meta(resultKey(tag.client, tag.seq))!) as CommandResult, duplicate: true };
      }
      if (tag.seq < session.acked) {
        this.state.advance(index);
        return { result: failure('ERR_SESSION_WINDOW', `command ${tag.seq} of client session ${tag.client} is older than the ${session.acked} it acknowledged: nobody waits for its answer`), duplicate: false };
      }
    }
    const acked = Math.max(session?.acked ?? 1, tag.acked);
    if (tag.seq >= acked + LIMITS.partitionSessionWindowCommands) {
      this.state.advance(index);
      return {
        result: failure('ERR_SESSION_WINDOW', `command ${tag.seq} of client session ${tag.client} is ${LIMITS.partitionSessionWindowCommands} or more ahead of its oldest unanswered command (${acked}): partitionSessionWindowCommands`),
        duplicate: false,
      };
    }
    const next: Session = { acked, lastIndex: index, seqs: new Set([...(session?.seqs ?? [])].filter((s) => s >= acked)) };
    next.seqs.add(tag.seq);
    let evicted: [string, Session] | undefined;
    const result = this.state.apply(index, entry.command, {
      withTxn: (txn, r) => {
        for (const s of session?.seqs ?? []) if (s < acked) txn.setMeta(resultKey(tag.client, s), undefined);
        txn.setMeta(resultKey(tag.client, tag.seq), encodeTagged(r));
        txn.setMeta(sessionKey(tag.client), encodeTagged({ acked, lastIndex: index }));
        if (session === undefined && this.#sessions.size >= this.#maxSessions) {
          evicted = this.#sessions.entries().next().value as [string, Session];
          forget(txn, evicted[0], evicted[1]);
        }
      },
    });
    // The transaction committed: now the memory view follows it.
    if (evicted) this.#sessions.delete(evicted[0]);
    this.#sessions.delete(tag.client);
    this.#sessions.set(tag.client, next);
    return { result, duplicate: false };
  }

  /** An entry with nothing for this machine (a no-op, a membership change): the applied index follows the log. */
  advance(index: number): void {
    this.state.advance(index);
  }
}

function forget(txn: Pick<StoreTxn, 'setMeta'>, client: string, s: Session): void {
  for (const seq of s.seqs) txn.setMeta(resultKey(client, seq), undefined);
  txn.setMeta(sessionKey(client), undefined);
}
