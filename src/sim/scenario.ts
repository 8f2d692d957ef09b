/**
 * Scenarios and the seed runner. A scenario builds a simulation from a seed, drives it (workload and faults),
 * and returns a summary whose `hash` identifies the whole trace. A failing seed throws; `runSeeds` collects the
 * failures so the runner can print them, and the regression list replays them on every test run.
 */
import { describeError } from '../lib/errors.js';

export interface ScenarioResult {
  /** Hash of the full trace: the same seed must always give the same hash. */
  hash: string;
  events: number;
  virtualMs: number;
  /** Scenario-specific figures (messages sent, detection times...). */
  stats: Record<string, number>;
  /** Figures meant for a person (a table), printed by the runner when present. */
  report?: string;
}

export interface ScenarioOptions {
  keepFullTrace?: boolean;
  /** Cluster size, for the scenarios that take one (`scale`); the others ignore it. */
  agents?: number;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Seeds the runner sweeps when not told (default 100); a long scenario runs one. */
  readonly defaultSeeds?: number;
  run(seed: number, options?: ScenarioOptions): ScenarioResult;
}

export interface SeedReport {
  scenario: string;
  seed: number;
  ok: boolean;
  result?: ScenarioResult;
  error?: string;
}

export function runSeed(scenario: Scenario, seed: number, options?: ScenarioOptions): SeedReport {
  try {
    return { scenario: scenario.name, seed, ok: true, result: scenario.run(seed, options) };
  } catch (err) {
    const text = err instanceof Error && 'code' in err ? `${err.message}` : describeError(err);
    const stack = err instanceof Error && !('code' in err) && err.stack ? `\n${err.stack}` : '';
    return { scenario: scenario.name, seed, ok: false, error: text + stack };
  }
}

export function runSeeds(scenario: Scenario, seeds: Iterable<number>, onReport?: (report: SeedReport) => void): { passed: number; failed: SeedReport[] } {
  let passed = 0;
  const failed: SeedReport[] = [];
  for (const seed of seeds) {
    const report = runSeed(scenario, seed);
    if (report.ok) passed++;
    else failed.push(report);
    onReport?.(report);
  }
  return { passed, failed };
}
