/**
 * A seeded, splittable pseudo-random generator (xoshiro128**), the only source of randomness a core may use.
 *
 * Its whole state is four 32-bit words, so it can be saved with a snapshot and restored to replay a run.
 * `split()` derives an independent stream (one per simulated node, one for the network...), so adding a
 * consumer of randomness in one place does not shift the numbers every other place sees.
 */
import { invariant } from './assert.js';

export type RandomState = readonly [number, number, number, number];

/** splitmix32: spreads a 32-bit seed into well-mixed words, as xoshiro's authors recommend for seeding. */
function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Folds a seed given as a number (up to 2^53) or a string into 32 bits. */
export function seedToUint32(seed: number | string): number {
  if (typeof seed === 'number') {
    invariant(Number.isSafeInteger(seed) && seed >= 0, `seed must be a non-negative safe integer, got ${seed}`);
    const low = seed >>> 0;
    const high = Math.floor(seed / 0x1_0000_0000) >>> 0;
    return (low ^ Math.imul(high, 0x9e3779b1)) >>> 0;
  }
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export class Random {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  private constructor(state: RandomState) {
    this.#s0 = state[0] >>> 0;
    this.#s1 = state[1] >>> 0;
    this.#s2 = state[2] >>> 0;
    this.#s3 = state[3] >>> 0;
    invariant((this.#s0 | this.#s1 | this.#s2 | this.#s3) !== 0, 'xoshiro128** state must not be all zero');
  }

  static fromSeed(seed: number | string): Random {
    const next = splitmix32(seedToUint32(seed));
    return new Random([next(), next(), next(), next()]);
  }

  static fromState(state: RandomState): Random {
    invariant(state.length === 4 && state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff), 'invalid Random state');
    return new Random(state);
  }

  state(): RandomState {
    return [this.#s0, this.#s1, this.#s2, this.#s3];
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.#s1 << 9) >>> 0;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    this.#s0 >>>= 0;
    this.#s1 >>>= 0;
    this.#s2 >>>= 0;
    return result;
  }

  /** A float in [0, 1) with 53 bits of precision. */
  float(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** An integer in [0, bound), without modulo bias. */
  int(bound: number): number {
    invariant(Number.isInteger(bound) && bound > 0 && bound <= 0x1_0000_0000, `Random.int bound must be in [1, 2^32], got ${bound}`);
    if (bound === 0x1_0000_0000) return this.nextUint32();
    const limit = 0x1_0000_0000 - (0x1_0000_0000 % bound);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % bound;
    }
  }

  /** An integer in [min, max], both included. */
  intBetween(min: number, max: number): number {
    invariant(Number.isInteger(min) && Number.isInteger(max) && max >= min, `Random.intBetween(${min}, ${max}) is not a valid range`);
    return min + this.int(max - min + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    invariant(items.length > 0, 'Random.pick from an empty list');
    return items[this.int(items.length)] as T;
  }

  /** Fisher-Yates shuffle, returning a new array. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = out[i] as T;
      out[i] = out[j] as T;
      out[j] = tmp;
    }
    return out;
  }

  /** An exponentially distributed value with the given mean (for delays and inter-arrival times). */
  exponential(mean: number): number {
    invariant(mean >= 0, 'exponential mean must be non-negative');
    return -Math.log(1 - this.float()) * mean;
  }

  /** Lower-case hex string of `bytes` random bytes. */
  hex(bytes: number): string {
    let out = '';
    for (let i = 0; i < bytes; i++) out += (this.nextUint32() & 0xff).toString(16).padStart(2, '0');
    return out;
  }

  /** An independent generator seeded from this one's stream. */
  split(): Random {
    const next = splitmix32(this.nextUint32() ^ Math.imul(this.nextUint32(), 0x9e3779b1));
    return new Random([next(), next(), next(), next()]);
  }
}
