/**
 * The nemesis: a seeded schedule of faults laid over a simulation (Jepsen's name for it). Every decision comes
 * from the Random it is given, so a seed replays the same faults at the same virtual times.
 */
import { invariant } from '../lib/assert.js';
import type { Random } from '../lib/random.js';
import type { Simulator } from './simulator.js';

export interface NemesisOptions {
  /** Faults are scheduled in [startMs, endMs); at endMs the network heals and every node is restarted. */
  startMs: number;
  endMs: number;
  /** Mean virtual time between two faults. */
  meanIntervalMs: number;
  /** How long a fault lasts before it is undone, at most. */
  maxFaultMs: number;
  /** Relative weights of each kind of fault (0 disables it). */
  weights: { partition: number; oneWay: number; isolate: number; crash: number; pause: number; flap: number };
  /** Never crash or pause more than this many nodes at once (keeps a quorum alive when a scenario needs it). */
  maxDownNodes: number;
}

export const DEFAULT_NEMESIS: Omit<NemesisOptions, 'startMs' | 'endMs'> = {
  meanIntervalMs: 2_000,
  maxFaultMs: 5_000,
  weights: { partition: 3, oneWay: 1, isolate: 2, crash: 3, pause: 1, flap: 1 },
  maxDownNodes: 1,
};

/** Schedules the whole fault plan up front (it depends only on the seed, not on what the nodes do). */
export function scheduleNemesis<M>(sim: Simulator<M>, random: Random, options: NemesisOptions): void {
  invariant(options.endMs > options.startMs, 'nemesis window is empty');
  const ids = sim.nodeIds();
  const kinds = Object.entries(options.weights).filter(([, w]) => w > 0) as [keyof NemesisOptions['weights'], number][];
  const total = kinds.reduce((s, [, w]) => s + w, 0);
  let down = 0;
  let t = options.startMs + random.exponential(options.meanIntervalMs);
  while (t < options.endMs && total > 0) {
    let r = random.float() * total;
    let kind = kinds[0]![0];
    for (const [k, w] of kinds) {
      if (r < w) {
        kind = k;
        break;
      }
      r -= w;
    }
    const at = Math.round(t);
    const lastsMs = Math.round(Math.min(options.maxFaultMs, options.endMs - at) * (0.2 + 0.8 * random.float()));
    switch (kind) {
      case 'partition': {
        const shuffled = random.shuffle(ids);
        const cut = 1 + random.int(Math.max(1, ids.length - 1));
        const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
        sim.at(at, `nemesis partition ${JSON.stringify(groups)}`, () => sim.network.partition(groups));
        sim.at(at + lastsMs, 'nemesis heal', () => sim.network.heal());
        break;
      }
      case 'oneWay': {
        const [a, b] = random.shuffle(ids);
        if (a !== undefined && b !== undefined) {
          sim.at(at, `nemesis cut ${a}->${b}`, () => sim.network.cutOneWay(a, b));
          sim.at(at + lastsMs, `nemesis heal ${a}->${b}`, () => sim.network.healLink(a, b));
        }
        break;
      }
      case 'isolate': {
        const victim = random.pick(ids);
        sim.at(at, `nemesis isolate ${victim}`, () => sim.network.isolate(victim, ids));
        sim.at(at + lastsMs, 'nemesis heal', () => sim.network.heal());
        break;
      }
      case 'flap': {
        const [a, b] = random.shuffle(ids);
        if (a !== undefined && b !== undefined) {
          const periodMs = 50 + random.int(400);
          for (let s = at; s < at + lastsMs; s += periodMs) {
            sim.at(s, `nemesis flap-cut ${a}<->${b}`, () => sim.network.partition([[a], [b]]));
            sim.at(s + Math.round(periodMs / 2), `nemesis flap-heal ${a}<->${b}`, () => { sim.network.healLink(a, b); sim.network.healLink(b, a); });
          }
        }
        break;
      }
      case 'crash': {
        const victim = random.pick(ids);
        sim.at(at, `nemesis crash ${victim}`, () => {
          if (down >= options.maxDownNodes || !sim.isUp(victim)) return;
          down++;
          sim.crash(victim);
          sim.after(lastsMs, `nemesis restart ${victim}`, () => {
            down--;
            sim.restart(victim);
          });
        });
        break;
      }
      case 'pause': {
        const victim = random.pick(ids);
        sim.at(at, `nemesis pause ${victim}`, () => sim.pause(victim, lastsMs));
        break;
      }
    }
    t += random.exponential(options.meanIntervalMs);
  }
  sim.at(options.endMs, 'nemesis end: heal and restart all', () => {
    sim.network.heal();
    for (const id of ids) sim.restart(id);
  });
}
