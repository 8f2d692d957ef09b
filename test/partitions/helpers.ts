/**
 * Shared by the partition tests: a replica (state machine over a memory store) that numbers its own log, and a seeded
 * generator of random commands.
 */
import { PartitionState, type ApplyOptions } from '../../src/partitions/collections.js';
import type { CommandResult, Compare, Operation, PartitionCommand } from '../../src/partitions/commands.js';
import { Random } from '../../src/lib/random.js';
import { MemoryPartitionStore } from '../../src/partitions/memory-store.js';
import { toHex } from '../../src/partitions/bytes.js';

export const b = (text: string): Uint8Array => new TextEncoder().encode(text);
export const s = (bytes: Uint8Array | undefined): string | undefined => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));

export class Replica {
  store: MemoryPartitionStore;
  state: PartitionState;
  /** The index the next `apply` uses. */
  next: number;

  constructor(store = new MemoryPartitionStore(), options: { changeWindowEntries?: number } = {}) {
    this.store = store;
    this.state = PartitionState.open(store, options);
    this.next = store.appliedIndex() + 1;
  }

  apply(command: PartitionCommand, options?: ApplyOptions): CommandResult {
    return this.state.apply(this.next++, command, options);
  }

  /** Applies and returns the result, which must be a success. */
  ok(command: PartitionCommand): Extract<CommandResult, { ok: true }> {
    const r = this.apply(command);
    if (!r.ok) throw new Error(`expected success, got ${r.code}: ${r.message}`);
    return r;
  }

  snapshot(): Uint8Array {
    return this.store.snapshot();
  }

  /** A replica restored from this one's snapshot. */
  restore(options: { changeWindowEntries?: number } = {}): Replica {
    return new Replica(MemoryPartitionStore.fromSnapshot(this.snapshot()), options);
  }

  /** The state as readable text (for diffs): the snapshot without the applied index and clock. */
  data(): unknown {
    const json = JSON.parse(new TextDecoder().decode(this.snapshot()));
    delete json.appliedIndex;
    delete json.clockMs;
    return json;
  }
}

/** A result with byte arrays as hex, for deep comparison and readable diffs. */
export function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `hex:${toHex(v)}` : v)));
}

export const DICTS = ['users', 'carts', 'mixed'];
export const QUEUES = ['jobs', 'mail', 'mixed'];
/** Keys drawn by default: ASCII, two-byte and four-byte UTF-8, an embedded NUL. */
export const KEYS = ['a', 'b', 'c', 'd', 'é', '\u{1F600}', 'a\u0000', 'zz'];

/**
 * Random partition commands of every kind (conflicting collection kinds, conditions, transactions, leases, a leader
 * clock that sometimes lags, invalid commands), seeded: the same label gives the same commands.
 */
export class CommandGenerator {
  readonly #rnd: Random;
  /** Leases seen in results, so acks hit real leases (live, expired or used). */
  readonly leases: { queue: string; leaseId: string }[] = [];
  clockMs = 0;
  index = 0;

  constructor(label: string, readonly keys: readonly string[] = KEYS) {
    this.#rnd = Random.fromSeed(label);
  }

  get rnd(): Random {
    return this.#rnd;
  }

  /** Remembers the leases a command's result granted, with their queues. */
  record(command: PartitionCommand, result: CommandResult): void {
    if (!result.ok) return;
    if (result.type === 'dequeue' && result.item && command.type === 'dequeue') this.leases.push({ queue: command.queue, leaseId: result.item.leaseId });
    if (result.type === 'txn' && command.type === 'txn') {
      result.results.forEach((r, i) => {
        const op = command.ops[i]!;
        if (r.type === 'dequeue' && r.item && op.type === 'dequeue') this.leases.push({ queue: op.queue, leaseId: r.item.leaseId });
      });
    }
  }

  #value(): Uint8Array {
    const v = new Uint8Array(this.#rnd.int(6));
    for (let i = 0; i < v.length; i++) v[i] = this.#rnd.int(4);
    return v;
  }

  #version(): number {
    return this.#rnd.intBetween(1, Math.max(1, this.index));
  }

  #op(): Operation {
    const r = this.#rnd;
    const roll = r.float();
    if (roll < 0.35) {
      const condition = r.chance(0.2) ? { kind: 'absent' as const } : r.chance(0.2) ? { kind: 'version' as const, version: this.#version() } : undefined;
      return { type: 'put', collection: r.pick(DICTS), key: r.pick(this.keys), value: this.#value(), ...(condition ? { condition } : {}) };
    }
    if (roll < 0.5) return { type: 'delete', collection: r.pick(DICTS), key: r.pick(this.keys), ...(r.chance(0.3) ? { condition: { kind: 'version' as const, version: this.#version() } } : {}) };
    if (roll < 0.68) return { type: 'enqueue', queue: r.pick(QUEUES), value: this.#value() };
    if (roll < 0.84) return { type: 'dequeue', queue: r.pick(QUEUES), leaseMs: r.intBetween(1, 60) };
    if (this.leases.length > 0 && r.chance(0.85)) {
      const lease = r.pick(this.leases.slice(-4));
      return { type: 'ack', queue: r.chance(0.9) ? lease.queue : r.pick(QUEUES), leaseId: lease.leaseId };
    }
    return { type: 'ack', queue: r.pick(QUEUES), leaseId: `${r.int(this.index + 2)}.0.${r.int(this.index + 2)}` };
  }

  #compare(): Compare {
    const r = this.#rnd;
    const base = { collection: r.pick(DICTS), key: r.pick(this.keys) };
    const kind = r.int(3);
    if (kind === 0) return { ...base, kind: 'absent' };
    if (kind === 1) return { ...base, kind: 'version', version: this.#version() };
    return { ...base, kind: 'value', value: this.#value() };
  }

  command(): PartitionCommand {
    const r = this.#rnd;
    // The leader's clock: mostly forward, sometimes a new leader's clock that lags.
    this.clockMs = r.chance(0.1) ? Math.max(0, this.clockMs - r.int(100)) : this.clockMs + r.int(20);
    const nowMs = this.clockMs;
    const roll = r.float();
    if (roll < 0.03) return { type: 'declare', nowMs, collections: [{ name: r.pick([...DICTS, ...QUEUES, 'fresh']), kind: r.chance(0.5) ? 'dictionary' : 'queue' }] };
    if (roll < 0.06) return { type: 'put', collection: r.pick(DICTS), key: '', value: this.#value(), nowMs }; // invalid
    if (roll < 0.3) {
      return { type: 'txn', nowMs, compares: Array.from({ length: r.int(3) }, () => this.#compare()), ops: Array.from({ length: r.intBetween(1, 4) }, () => this.#op()) };
    }
    return { ...this.#op(), nowMs };
  }
}
