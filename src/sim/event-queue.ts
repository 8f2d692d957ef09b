/**
 * A min-heap of events ordered by (time, insertion sequence). The sequence number breaks ties so that two events
 * at the same virtual millisecond always run in the same order: that is what makes a seed replay exactly.
 */
import { invariant } from '../lib/assert.js';

export interface QueuedEvent {
  readonly atMs: number;
  readonly seq: number;
}

export class EventQueue<E extends QueuedEvent> {
  #heap: E[] = [];

  get size(): number {
    return this.#heap.length;
  }

  push(event: E): void {
    invariant(Number.isFinite(event.atMs), 'event time must be finite');
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i] as E, heap[parent] as E)) break;
      swap(heap, i, parent);
      i = parent;
    }
  }

  peek(): E | undefined {
    return this.#heap[0];
  }

  pop(): E | undefined {
    const heap = this.#heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop() as E;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l] as E, heap[m] as E)) m = l;
        if (r < heap.length && before(heap[r] as E, heap[m] as E)) m = r;
        if (m === i) break;
        swap(heap, i, m);
        i = m;
      }
    }
    return top;
  }

  /** Removes every event for which `drop` returns true (used when a node crashes). */
  removeWhere(drop: (event: E) => boolean): number {
    const kept = this.#heap.filter((e) => !drop(e));
    const removed = this.#heap.length - kept.length;
    this.#heap = [];
    for (const e of kept.sort((a, b) => (before(a, b) ? -1 : 1))) this.#heap.push(e);
    return removed;
  }
}

function before(a: QueuedEvent, b: QueuedEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

function swap<T>(arr: T[], i: number, j: number): void {
  const t = arr[i] as T;
  arr[i] = arr[j] as T;
  arr[j] = t;
}
