/** Shared by the partition tests: a replica (state machine over a memory store) that numbers its own log. */
import { PartitionState, type ApplyOptions } from '../../src/partitions/collections.js';
import type { CommandResult, PartitionCommand } from '../../src/partitions/commands.js';
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
