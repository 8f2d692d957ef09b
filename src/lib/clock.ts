/**
 * Time as the cores see it. A core never reads the wall clock: it is handed a `Clock` (or just a `nowMs` value
 * in a tick) by whoever drives it. The system implementation lives in `src/platform`, outside the deterministic
 * folders; the manual one below drives tests and the simulator.
 */
import { invariant } from './assert.js';

export interface Clock {
  /** Milliseconds on a monotonic time line. Only differences are meaningful. */
  nowMs(): number;
}

/** A clock that moves only when told to. Time never goes backwards. */
export class ManualClock implements Clock {
  #nowMs: number;

  constructor(startMs = 0) {
    invariant(Number.isFinite(startMs) && startMs >= 0, 'ManualClock start must be a finite non-negative number');
    this.#nowMs = startMs;
  }

  nowMs(): number {
    return this.#nowMs;
  }

  advance(deltaMs: number): number {
    invariant(Number.isFinite(deltaMs) && deltaMs >= 0, `ManualClock cannot move by ${deltaMs} ms`);
    this.#nowMs += deltaMs;
    return this.#nowMs;
  }

  set(nowMs: number): void {
    invariant(nowMs >= this.#nowMs, `ManualClock cannot go back from ${this.#nowMs} to ${nowMs}`);
    this.#nowMs = nowMs;
  }
}
