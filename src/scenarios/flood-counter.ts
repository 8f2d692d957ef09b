/**
 * A toy protocol that proves the simulation kit: a grow-only counter replicated by flooding.
 *
 * Every node counts its own events; it persists its count, then tells everyone (and, for anti-entropy, sends its
 * whole vector to one random peer per tick). Receivers keep the maximum they have seen per node.
 *
 * Safety: no node ever believes another has counted more than that node durably has. A node that sent before it
 * synced can lose the increment in a crash after others have seen it: the `unsafe` variant does exactly that, and
 * the invariant catches it (the kit's own test depends on it).
 * Liveness: once faults stop and the network heals, every node's vector converges to everyone's durable count.
 */
import { Random } from '../lib/random.js';
import { Simulator, type SimNode, type SimNodeContext } from '../sim/simulator.js';
import { scheduleNemesis, DEFAULT_NEMESIS } from '../sim/nemesis.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../sim/scenario.js';
import { ShoalError } from '../lib/errors.js';

type Vector = Record<string, number>;
interface CounterMsg {
  counts: Vector;
}

const COUNT_KEY = 'count';

export class FloodCounterNode implements SimNode<CounterMsg> {
  readonly counts: Vector = {};
  quiet = false;
  #unsyncedSend = false;

  constructor(
    private readonly ctx: SimNodeContext<CounterMsg>,
    private readonly peers: readonly string[],
    private readonly unsafe: boolean,
  ) {
    this.counts[ctx.id] = (ctx.storage.get(COUNT_KEY) as number | undefined) ?? 0;
  }

  tick(): void {
    if (this.unsafe && this.#unsyncedSend) {
      this.ctx.storage.sync();
      this.#unsyncedSend = false;
    }
    if (!this.quiet && this.ctx.random.chance(0.3)) {
      const next = (this.counts[this.ctx.id] ?? 0) + 1;
      this.counts[this.ctx.id] = next;
      this.ctx.storage.put(COUNT_KEY, next);
      // The rule the real runtime follows: persist, then send. The unsafe variant sends first and syncs a tick later.
      if (this.unsafe) this.#unsyncedSend = true;
      else this.ctx.storage.sync();
      for (const peer of this.peers) if (peer !== this.ctx.id) this.ctx.send(peer, { counts: { [this.ctx.id]: next } });
    }
    const others = this.peers.filter((p) => p !== this.ctx.id);
    if (others.length > 0) this.ctx.send(this.ctx.random.pick(others), { counts: { ...this.counts } });
  }

  deliver(_from: string, msg: CounterMsg): void {
    for (const [node, count] of Object.entries(msg.counts)) {
      if (count > (this.counts[node] ?? 0)) this.counts[node] = count;
    }
  }
}

export class ConvergenceFailure extends ShoalError {
  constructor(seed: number, detail: string) {
    super('ERR_SIM_LIVENESS', `seed ${seed}: did not converge after the network healed: ${detail}`, { seed });
  }
}

export interface FloodCounterOptions extends ScenarioOptions {
  nodes?: number;
  unsafe?: boolean;
  /** Leave out the safety invariant (to show that the unsafe variant then goes unnoticed). */
  withoutSafetyInvariant?: boolean;
}

export function runFloodCounter(seed: number, options: FloodCounterOptions = {}): ScenarioResult {
  const n = options.nodes ?? 5;
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const sim = new Simulator<CounterMsg>({
    seed,
    nodeIds: ids,
    tickIntervalMs: 100,
    link: {
      delay: { kind: 'exponential', minMs: 1, meanExtraMs: 10 },
      lossRate: 0.05,
      duplicateRate: 0.05,
      reorderRate: 0.1,
      reorderWindowMs: 50,
    },
    crashMode: 'torn',
    keepFullTrace: options.keepFullTrace ?? false,
    createNode: (ctx) => new FloodCounterNode(ctx, ids, options.unsafe ?? false),
  });
  const durableCount = (id: string): number => (sim.storage(id).durable(COUNT_KEY) as number | undefined) ?? 0;
  if (!options.withoutSafetyInvariant) {
    sim.addInvariant('no node believes in an increment that was not made durable', (s) => {
      for (const id of s.upNodeIds()) {
        const node = s.node(id) as FloodCounterNode;
        for (const [other, seen] of Object.entries(node.counts)) {
          // A node's own count may run ahead of its disk only in the unsafe variant, between send and sync.
          if (other === id) continue;
          const limit = s.isUp(other) ? Math.max(durableCount(other), (s.node(other) as FloodCounterNode).counts[other] ?? 0) : durableCount(other);
          if (seen > limit) return `${id} saw ${other} at ${seen}, but ${other} has only ${limit}`;
        }
      }
      return undefined;
    });
  }
  const faults = Random.fromSeed(seed).split();
  scheduleNemesis(sim, faults, { ...DEFAULT_NEMESIS, startMs: 500, endMs: 20_000, maxDownNodes: 2 });
  sim.runUntil(20_000);
  // Liveness: stop counting, let gossip run on a healed network, and demand agreement.
  for (const id of ids) (sim.node(id) as FloodCounterNode).quiet = true;
  sim.network.setDefaults({ lossRate: 0, duplicateRate: 0, reorderRate: 0 });
  sim.runFor(1_000);
  for (const id of ids) (sim.storage(id)).sync();
  const converged = (): boolean => ids.every((a) => ids.every((b) => ((sim.node(a) as FloodCounterNode).counts[b] ?? 0) === durableCount(b)));
  if (!sim.runUntilTrue(converged, 10_000)) {
    const views = ids.map((a) => `${a}=${JSON.stringify((sim.node(a) as FloodCounterNode).counts)}`).join(' ');
    throw new ConvergenceFailure(seed, `durable=${JSON.stringify(Object.fromEntries(ids.map((b) => [b, durableCount(b)])))} views: ${views}`);
  }
  return {
    hash: sim.trace.hash(),
    events: sim.eventCount,
    virtualMs: sim.nowMs(),
    stats: { ...sim.stats(), total: ids.reduce((s, id) => s + durableCount(id), 0) },
  };
}

export const floodCounterScenario: Scenario = {
  name: 'flood-counter',
  description: 'toy grow-only counter replicated by flooding, under loss, duplication, reordering, partitions, pauses and torn crashes',
  run: (seed, options) => runFloodCounter(seed, options),
};

export const floodCounterUnsafeScenario: Scenario = {
  name: 'flood-counter-unsafe',
  description: 'the toy counter with a deliberate bug (sends before it syncs); its seeds are expected to fail',
  run: (seed, options) => runFloodCounter(seed, { ...options, unsafe: true }),
};
