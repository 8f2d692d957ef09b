/**
 * The real clock and the real source of entropy. This folder is the edge where the deterministic world meets
 * the machine: runtime code takes a `Clock` and a `Random` from here and hands them to the cores.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import { Random } from '../lib/random.js';

/** Monotonic milliseconds since the process started; never jumps with NTP or a changed wall clock. */
export class SystemClock implements Clock {
  nowMs(): number {
    return performance.now();
  }
}

export const systemClock: Clock = new SystemClock();

/** A seed from the operating system's entropy, for production runs (tests and the simulator pass their own). */
export function entropySeed(): number {
  return randomBytes(6).readUIntBE(0, 6);
}

/** A Random seeded from entropy; the seed is returned too so it can be logged and the run replayed. */
export function seededFromEntropy(): { seed: number; random: Random } {
  const seed = entropySeed();
  return { seed, random: Random.fromSeed(seed) };
}
