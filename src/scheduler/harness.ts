/**
 * An in-process leader loop over a `ClusterState`: take pending evaluations, compute plans, apply them at the next
 * log index, and record every plan. Tests, the scheduler benchmark and the simulator drive scheduling through it,
 * the way Nomad's scheduler tests use a harness that records plans; the real leader does the same steps with Raft
 * between "compute" and "apply".
 */
import type { Random } from '../lib/random.js';
import type { ClusterState } from '../state/cluster-state.js';
import type { Command, Plan } from '../state/commands.js';
import { computePlan, DEFAULT_SCHEDULER_OPTIONS, type SchedulerOptions } from './scheduler.js';

export class SchedulerHarness {
  readonly plans: Plan[] = [];
  readonly rejected: { plan: Plan; message: string }[] = [];

  constructor(
    readonly state: ClusterState,
    readonly random: Random,
    readonly options: SchedulerOptions = DEFAULT_SCHEDULER_OPTIONS,
  ) {}

  /** Applies a command at the next index, as a committed log entry would be. */
  apply(command: Command) {
    return this.state.apply(this.state.index + 1, command);
  }

  /** Processes pending evaluations (and those they cause) until none is left or `maxRounds` plans were made. */
  drain(maxRounds = 10_000): number {
    let rounds = 0;
    for (;;) {
      const pending = this.state.pendingEvaluations().sort((a, b) => a.createIndex - b.createIndex || (a.id < b.id ? -1 : 1));
      const next = pending[0];
      if (next === undefined || rounds >= maxRounds) return rounds;
      rounds++;
      // Older evaluations of the same job are superseded by this one's plan: the scheduler always plans the whole job.
      const plan = computePlan(this.state, next, this.random, this.options);
      const superseded = pending.filter((e) => e.jobName === next.jobName && e.id !== next.id);
      if (plan === undefined) {
        this.#complete([next, ...superseded].map((e) => e.id));
        continue;
      }
      this.plans.push(plan);
      const result = this.apply({ type: 'plan.apply', plan });
      if (!result.ok) this.rejected.push({ plan, message: result.message });
      else this.#complete(superseded.map((e) => e.id));
    }
  }

  #complete(ids: string[]): void {
    if (ids.length > 0) this.apply({ type: 'eval.complete', evalIds: ids });
  }
}
