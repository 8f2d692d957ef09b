/**
 * The simulated network: decides, for every message, whether it is lost, when it arrives, and whether it arrives
 * twice. Everything it decides comes from its own seeded Random stream, so the same seed gives the same fates.
 *
 * Faults it models: per-link delay distributions, loss, duplication, reordering (extra random delay on some
 * messages), symmetric and one-way partitions (checked when a message is sent and again when it would arrive),
 * healing, and a per-message size limit.
 */
import { invariant } from '../lib/assert.js';
import type { Random } from '../lib/random.js';

export type DelayModel =
  | { kind: 'fixed'; ms: number }
  | { kind: 'uniform'; minMs: number; maxMs: number }
  /** A floor plus an exponential tail: most messages are fast, a few are slow. */
  | { kind: 'exponential'; minMs: number; meanExtraMs: number };

export interface LinkConfig {
  delay: DelayModel;
  /** Probability that a message is lost. */
  lossRate: number;
  /** Probability that a message is delivered a second time (with its own delay). */
  duplicateRate: number;
  /** Probability that a message is held back by up to `reorderWindowMs` extra, overtaking later ones. */
  reorderRate: number;
  reorderWindowMs: number;
}

export interface NetworkOptions {
  defaults: LinkConfig;
  maxMessageBytes: number;
}

export const CALM_LINK: LinkConfig = {
  delay: { kind: 'uniform', minMs: 1, maxMs: 5 },
  lossRate: 0,
  duplicateRate: 0,
  reorderRate: 0,
  reorderWindowMs: 0,
};

export type Fate =
  | { kind: 'drop'; reason: 'partitioned' | 'lost' | 'oversize' }
  | { kind: 'deliver'; delaysMs: number[] };

function validate(config: LinkConfig): void {
  for (const p of [config.lossRate, config.duplicateRate, config.reorderRate]) {
    invariant(p >= 0 && p <= 1, `link probability ${p} is outside [0, 1]`);
  }
  invariant(config.reorderWindowMs >= 0, 'reorderWindowMs must be non-negative');
  const d = config.delay;
  if (d.kind === 'fixed') invariant(d.ms >= 0, 'fixed delay must be non-negative');
  if (d.kind === 'uniform') invariant(d.minMs >= 0 && d.maxMs >= d.minMs, 'uniform delay needs 0 <= minMs <= maxMs');
  if (d.kind === 'exponential') invariant(d.minMs >= 0 && d.meanExtraMs >= 0, 'exponential delay needs non-negative parameters');
}

export class SimNetwork {
  readonly #random: Random;
  #defaults: LinkConfig;
  readonly #maxMessageBytes: number;
  readonly #links = new Map<string, Partial<LinkConfig>>();
  /** Directed cuts, "from->to". */
  readonly #cuts = new Set<string>();

  constructor(random: Random, options: NetworkOptions) {
    validate(options.defaults);
    invariant(options.maxMessageBytes > 0, 'maxMessageBytes must be positive');
    this.#random = random;
    this.#defaults = options.defaults;
    this.#maxMessageBytes = options.maxMessageBytes;
  }

  /** Changes the defaults for every link without an override (e.g. "5% loss from now on"). */
  setDefaults(patch: Partial<LinkConfig>): void {
    const next = { ...this.#defaults, ...patch };
    validate(next);
    this.#defaults = next;
  }

  /** Overrides the configuration of the directed link from -> to. */
  setLink(from: string, to: string, patch: Partial<LinkConfig>): void {
    validate({ ...this.#defaults, ...this.#links.get(`${from}->${to}`), ...patch });
    this.#links.set(`${from}->${to}`, { ...this.#links.get(`${from}->${to}`), ...patch });
  }

  linkConfig(from: string, to: string): LinkConfig {
    return { ...this.#defaults, ...this.#links.get(`${from}->${to}`) };
  }

  /** Cuts every link between nodes of different groups, both ways. Nodes in no group are untouched. */
  partition(groups: readonly (readonly string[])[]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = 0; j < groups.length; j++) {
        if (i === j) continue;
        for (const a of groups[i] as readonly string[]) for (const b of groups[j] as readonly string[]) this.#cuts.add(`${a}->${b}`);
      }
    }
  }

  /** Cuts the link from -> to only: `to` stops hearing `from`, while `from` still hears `to`. */
  cutOneWay(from: string, to: string): void {
    this.#cuts.add(`${from}->${to}`);
  }

  /** Cuts a node off from every other node in `all`, both ways. */
  isolate(node: string, all: readonly string[]): void {
    this.partition([[node], all.filter((n) => n !== node)]);
  }

  /** Restores every cut link. */
  heal(): void {
    this.#cuts.clear();
  }

  healLink(from: string, to: string): void {
    this.#cuts.delete(`${from}->${to}`);
  }

  isCut(from: string, to: string): boolean {
    return this.#cuts.has(`${from}->${to}`);
  }

  get cutCount(): number {
    return this.#cuts.size;
  }

  /** Decides what happens to a message of `sizeBytes` sent now from -> to. */
  fate(from: string, to: string, sizeBytes: number): Fate {
    if (this.isCut(from, to)) return { kind: 'drop', reason: 'partitioned' };
    if (sizeBytes > this.#maxMessageBytes) return { kind: 'drop', reason: 'oversize' };
    const link = this.linkConfig(from, to);
    if (this.#random.chance(link.lossRate)) return { kind: 'drop', reason: 'lost' };
    const delaysMs = [this.#delay(link)];
    if (this.#random.chance(link.duplicateRate)) delaysMs.push(this.#delay(link));
    return { kind: 'deliver', delaysMs };
  }

  #delay(link: LinkConfig): number {
    const d = link.delay;
    let ms: number;
    switch (d.kind) {
      case 'fixed':
        ms = d.ms;
        break;
      case 'uniform':
        ms = d.minMs + this.#random.float() * (d.maxMs - d.minMs);
        break;
      case 'exponential':
        ms = d.minMs + this.#random.exponential(d.meanExtraMs);
        break;
    }
    if (link.reorderRate > 0 && this.#random.chance(link.reorderRate)) ms += this.#random.float() * link.reorderWindowMs;
    // Whole microseconds keep traces readable and free of float noise.
    return Math.round(ms * 1000) / 1000;
  }
}
