/**
 * The transmit-limited broadcast queue (SWIM's piggyback buffer, memberlist's TransmitLimitedQueue).
 *
 * Each queued rumour is sent at most `limit` times by this node; the least-sent rumours go first (ties: newest
 * first), so a fresh rumour spreads before old ones are repeated. Rumours are keyed by the node they are about:
 * queueing a new rumour about a node drops the older one, which is both a space bound and correctness (nobody
 * should keep spreading "X is suspect" after "X is alive at a higher incarnation").
 */
import { invariant } from '../lib/assert.js';
import type { Rumour } from './types.js';
import { rumourSizeBytes } from './meta.js';

interface Item {
  rumour: Rumour;
  sizeBytes: number;
  transmits: number;
  /** Insertion order, to send the newest first among equally-sent rumours. */
  id: number;
}

export class BroadcastQueue {
  readonly #items = new Map<string, Item>();
  readonly #maxItems: number;
  #nextId = 0;

  constructor(maxItems: number) {
    invariant(Number.isSafeInteger(maxItems) && maxItems > 0, 'BroadcastQueue maxItems must be a positive integer');
    this.#maxItems = maxItems;
  }

  get size(): number {
    return this.#items.size;
  }

  /** Queues a rumour, replacing any queued rumour about the same node. */
  enqueue(rumour: Rumour): void {
    this.#items.delete(rumour.node);
    this.#items.set(rumour.node, { rumour, sizeBytes: rumourSizeBytes(rumour), transmits: 0, id: this.#nextId++ });
    if (this.#items.size > this.#maxItems) this.#dropMostSent();
  }

  /** The queued rumour about `node`, if any (for tests and the buddy system). */
  peek(node: string): Rumour | undefined {
    return this.#items.get(node)?.rumour;
  }

  /** Transmits of the rumour about `node` so far, or undefined when none is queued. */
  transmits(node: string): number | undefined {
    return this.#items.get(node)?.transmits;
  }

  /**
   * Takes as many rumours as fit in `budgetBytes` (each costs its encoded size plus `perItemOverheadBytes`),
   * counting one transmit for each and dropping those that reached `limit`. `skipNode` leaves out a rumour the
   * caller already placed in the message.
   */
  take(budgetBytes: number, perItemOverheadBytes: number, limit: number, skipNode?: string): Rumour[] {
    if (this.#items.size === 0 || budgetBytes <= 0) return [];
    const ordered = [...this.#items.values()].sort((a, b) => a.transmits - b.transmits || b.id - a.id);
    const out: Rumour[] = [];
    let left = budgetBytes;
    for (const item of ordered) {
      if (item.rumour.node === skipNode) continue;
      const cost = item.sizeBytes + perItemOverheadBytes;
      if (cost > left) continue;
      left -= cost;
      out.push(item.rumour);
      item.transmits++;
      if (item.transmits >= limit) this.#items.delete(item.rumour.node);
      if (left < perItemOverheadBytes) break;
    }
    return out;
  }

  /** Drops everything (a node that leaves or restarts starts over). */
  clear(): void {
    this.#items.clear();
  }

  #dropMostSent(): void {
    let worst: Item | undefined;
    for (const item of this.#items.values()) {
      if (worst === undefined || item.transmits > worst.transmits || (item.transmits === worst.transmits && item.id < worst.id)) worst = item;
    }
    if (worst !== undefined) this.#items.delete(worst.rumour.node);
  }
}
