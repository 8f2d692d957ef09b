/**
 * Simulated stable storage for one node. Writes land in a volatile layer first (the page cache) and become durable
 * only on `sync()` (fsync). A crash drops the volatile layer, or, in "torn" mode, keeps a random prefix of it in
 * order, as a disk that flushed some of the writes before power went out would. Reads see volatile writes, like
 * a real file system.
 *
 * Values are deep-copied in and out (structuredClone) so a node can never mutate what is "on disk" by accident.
 */
import { invariant } from '../lib/assert.js';
import type { Random } from '../lib/random.js';

type Op = { kind: 'put'; key: string; value: unknown } | { kind: 'delete'; key: string };

export type CrashMode = 'drop-unsynced' | 'torn';

export class SimStorage {
  readonly #durable = new Map<string, unknown>();
  #pending: Op[] = [];
  #syncs = 0;

  get(key: string): unknown {
    for (let i = this.#pending.length - 1; i >= 0; i--) {
      const op = this.#pending[i] as Op;
      if (op.key === key) return op.kind === 'put' ? structuredClone(op.value) : undefined;
    }
    return structuredClone(this.#durable.get(key));
  }

  /** What a crash right now would certainly keep (for invariants; a node itself reads with `get`). */
  durable(key: string): unknown {
    return structuredClone(this.#durable.get(key));
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  put(key: string, value: unknown): void {
    invariant(value !== undefined, `SimStorage.put(${key}) with undefined; use delete`);
    this.#pending.push({ kind: 'put', key, value: structuredClone(value) });
  }

  delete(key: string): void {
    this.#pending.push({ kind: 'delete', key });
  }

  /** Keys (durable or pending, not deleted) that start with `prefix`, sorted. */
  keys(prefix = ''): string[] {
    const live = new Set<string>();
    for (const key of this.#durable.keys()) if (key.startsWith(prefix)) live.add(key);
    for (const op of this.#pending) {
      if (!op.key.startsWith(prefix)) continue;
      if (op.kind === 'put') live.add(op.key);
      else live.delete(op.key);
    }
    return [...live].sort();
  }

  /** Makes every write so far durable. */
  sync(): void {
    for (const op of this.#pending) this.#apply(op);
    this.#pending = [];
    this.#syncs++;
  }

  get unsyncedWrites(): number {
    return this.#pending.length;
  }

  get syncCount(): number {
    return this.#syncs;
  }

  /** Power loss: what was not synced is lost (all of it, or all but a random prefix in "torn" mode). */
  crash(random: Random, mode: CrashMode): number {
    const keep = mode === 'torn' ? random.int(this.#pending.length + 1) : 0;
    for (const op of this.#pending.slice(0, keep)) this.#apply(op);
    const lost = this.#pending.length - keep;
    this.#pending = [];
    return lost;
  }

  #apply(op: Op): void {
    if (op.kind === 'put') this.#durable.set(op.key, op.value);
    else this.#durable.delete(op.key);
  }
}
