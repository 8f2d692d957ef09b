/**
 * Invariant helpers. An invariant that fails is a bug in Shoal: it throws `InvariantError`, which nothing catches
 * except the top of the process (and the simulator, which prints the seed and the last events).
 *
 * We assert in positive and negative space: what must hold, and what must never happen.
 */
import { InvariantError } from './errors.js';

export function invariant(condition: unknown, message: string, details?: Record<string, unknown>): asserts condition {
  if (!condition) throw new InvariantError(message, details);
}

export function unreachable(value: never, message = 'unreachable'): never {
  throw new InvariantError(`${message}: ${JSON.stringify(value)}`);
}

export function assertInteger(value: number, name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): void {
  invariant(Number.isSafeInteger(value) && value >= min && value <= max, `${name} must be an integer in [${min}, ${max}], got ${value}`);
}

/** Asserts that a sequence of numbers never decreases (terms, indexes, incarnations). */
export function assertMonotonic(previous: number, next: number, name: string): void {
  invariant(next >= previous, `${name} went backwards: ${previous} -> ${next}`);
}
