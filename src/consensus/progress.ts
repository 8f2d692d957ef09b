/**
 * The leader's view of each follower (etcd's tracker.Progress), as a small state machine:
 *
 *   probe ──append accepted──► replicate ──append rejected / window stuck──► probe
 *     │                                                                       ▲
 *     └──needed entries were compacted──► snapshot ──follower caught up / timed out──┘
 *
 * - probe: one append at a time, until the follower says where its log matches ours.
 * - replicate: appends are pipelined optimistically (`next` runs ahead of `match`), bounded by the in-flight window.
 * - snapshot: a snapshot is on its way; nothing else is sent until it lands or is given up on.
 */
import { invariant } from '../lib/assert.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** Last indexes of appends sent but not yet acknowledged, oldest first, with their sizes. */
export class Inflights {
  readonly #indexes: number[] = [];
  readonly #bytes: number[] = [];
  #totalBytes = 0;

  constructor(readonly maxCount: number, readonly maxBytes: number) {}

  add(lastIndex: number, bytes: number): void {
    invariant(!this.full(), 'inflights: add while full');
    this.#indexes.push(lastIndex);
    this.#bytes.push(bytes);
    this.#totalBytes += bytes;
  }

  /** Forgets every append whose last index is <= `index` (the follower has it). */
  freeLE(index: number): void {
    while (this.#indexes.length > 0 && (this.#indexes[0] as number) <= index) this.freeFirst();
  }

  freeFirst(): void {
    if (this.#indexes.length === 0) return;
    this.#indexes.shift();
    this.#totalBytes -= this.#bytes.shift() as number;
  }

  full(): boolean {
    return this.#indexes.length >= this.maxCount || this.#totalBytes >= this.maxBytes;
  }

  get count(): number {
    return this.#indexes.length;
  }

  reset(): void {
    this.#indexes.length = 0;
    this.#bytes.length = 0;
    this.#totalBytes = 0;
  }
}

export class Progress {
  /** Highest index known to be replicated on the follower. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an append was sent and we wait for its answer (or a heartbeat answer) before the next one. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Ticks spent in snapshot state (a lost snapshot is given up on after an election timeout). */
  snapshotTicks = 0;
  /** Lease reads: the leader's tick when it sent the latest heartbeat this follower acknowledged. */
  leaseTick = -1;
  /** Heard from in the current check-quorum period. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(next: number, public isLearner: boolean, maxInflight: number, maxInflightBytes: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  #reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotTicks = 0;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // Coming back from a snapshot, continue after it (or after match, whichever is further).
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.#reset('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.#reset('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.#reset('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.#reset('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** An append up to `index` was accepted. Returns false when the answer is stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * An append at `rejected` was refused; `matchHint` is the highest index that may still match. Returns false when
   * the rejection is stale (answers an older append than the one in flight).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Appends sent in `replicate` state move `next` ahead optimistically. */
  sentEntries(lastIndex: number, bytes: number): void {
    if (this.state === 'replicate') {
      this.next = lastIndex + 1;
      this.inflights.add(lastIndex, bytes);
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
