/**
 * One suspicion: a member some node failed to reach, with the deadline after which it is declared DEAD.
 *
 * Lifeguard's dynamic suspicion: the timeout starts at `maxMs` and shrinks toward `minMs` as independent
 * members confirm the suspicion (each distinct accuser counts once). A member that is merely slow gets the long
 * timeout and time to refute; a member that several others cannot reach goes down fast.
 */
import { invariant } from '../lib/assert.js';
import { suspicionTimeoutMs } from './config.js';

export class Suspicion {
  readonly incarnation: number;
  readonly startMs: number;
  readonly #accusers = new Set<string>();
  readonly #expected: number;
  readonly #minMs: number;
  readonly #maxMs: number;
  /** Extra time granted because this node itself stalled (its own clock ran, it did not). */
  #shiftMs = 0;

  constructor(options: { incarnation: number; startMs: number; firstAccuser: string; expectedConfirmations: number; minMs: number; maxMs: number }) {
    invariant(options.maxMs >= options.minMs && options.minMs > 0, 'suspicion bounds must satisfy 0 < minMs <= maxMs');
    this.incarnation = options.incarnation;
    this.startMs = options.startMs;
    this.#accusers.add(options.firstAccuser);
    this.#expected = options.expectedConfirmations;
    this.#minMs = options.minMs;
    this.#maxMs = options.maxMs;
  }

  /** Independent confirmations beyond the first accuser. */
  get confirmations(): number {
    return this.#accusers.size - 1;
  }

  get deadlineMs(): number {
    return this.startMs + this.#shiftMs + suspicionTimeoutMs(Math.min(this.confirmations, Math.max(0, this.#expected)), this.#expected, this.#minMs, this.#maxMs);
  }

  /** Counts an accuser; true when it is a new one (the caller then re-gossips the suspicion). */
  confirm(accuser: string): boolean {
    if (this.#accusers.has(accuser)) return false;
    // Past k confirmations the timeout is already at its minimum; further accusers are not worth re-gossiping.
    if (this.confirmations >= this.#expected) return false;
    this.#accusers.add(accuser);
    return true;
  }

  shift(ms: number): void {
    invariant(ms >= 0, 'a suspicion deadline only moves later');
    this.#shiftMs += ms;
  }
}
