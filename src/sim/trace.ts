/**
 * The record of a simulation run. Every event is appended as one line; the lines are folded into a 64-bit hash
 * (two independent FNV-1a lanes) so two runs can be compared cheaply, and the last few are kept to print when an
 * invariant fails. The full trace can be kept too, for debugging a single seed.
 */
export class Trace {
  #lo = 0x811c9dc5;
  #hi = 0x050c5d1f;
  #count = 0;
  readonly #tail: string[] = [];
  readonly #tailSize: number;
  readonly #full: string[] | undefined;

  constructor(tailSize: number, keepFull = false) {
    this.#tailSize = tailSize;
    this.#full = keepFull ? [] : undefined;
  }

  record(line: string): void {
    let lo = this.#lo;
    let hi = this.#hi;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      lo = Math.imul(lo ^ c, 0x01000193) >>> 0;
      hi = Math.imul(hi ^ c, 0x01000193 ^ 0x5bd1e995) >>> 0;
    }
    // A separator, so that ["ab", "c"] and ["a", "bc"] hash differently.
    this.#lo = Math.imul(lo ^ 0x0a, 0x01000193) >>> 0;
    this.#hi = Math.imul(hi ^ 0x0a, 0x01000193 ^ 0x5bd1e995) >>> 0;
    this.#count++;
    this.#tail.push(line);
    if (this.#tail.length > this.#tailSize) this.#tail.shift();
    this.#full?.push(line);
  }

  get count(): number {
    return this.#count;
  }

  /** 16 hex characters identifying everything that happened, in order. */
  hash(): string {
    return this.#hi.toString(16).padStart(8, '0') + this.#lo.toString(16).padStart(8, '0');
  }

  tail(): readonly string[] {
    return this.#tail;
  }

  full(): readonly string[] | undefined {
    return this.#full;
  }
}
