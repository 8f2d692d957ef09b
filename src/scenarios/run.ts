/**
 * The seed runner: `npm run sim -- --scenario NAME --seeds 1000 [--start 1] [--seed S] [--trace] [--record] [--agents N]`.
 *
 * Runs a scenario over many seeds and prints every failure with the seed that replays it. `--seed S` replays one
 * seed (add `--trace` to print its whole trace); `--record` appends new failing seeds to test/sim/regressions.json,
 * which the test suite replays on every run.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError as CommanderArgError } from 'commander';
import { runSeed, type SeedReport } from '../sim/scenario.js';
import { SCENARIOS, MUST_PASS } from './index.js';
import { readRegressions, type Regression } from './regressions.js';

const REGRESSIONS_PATH = fileURLToPath(new URL('../../test/sim/regressions.json', import.meta.url));

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new CommanderArgError(`expected a non-negative integer, got "${value}"`);
  return n;
}

export function main(argv: string[]): number {
  const program = new Command('sim')
    .description('run simulation scenarios over many seeds')
    .option('--scenario <name>', `scenario to run (${[...SCENARIOS.keys()].join(', ')}); default: every scenario that must pass`)
    .option('--seeds <n>', 'how many seeds (default 100, or what the scenario says: 1 for scale)', positiveInt)
    .option('--start <seed>', 'first seed', positiveInt, 1)
    .option('--seed <seed>', 'replay exactly one seed', positiveInt)
    .option('--trace', 'with --seed: print the full trace')
    .option('--record', 'append failing seeds to test/sim/regressions.json')
    .option('--agents <n>', 'cluster size, for the scenarios that take one (scale)', positiveInt)
    .option('--list', 'list the scenarios')
    .exitOverride();
  program.parse(argv, { from: 'user' });
  const opts = program.opts<{ scenario?: string; seeds?: number; start: number; seed?: number; trace?: boolean; record?: boolean; list?: boolean; agents?: number }>();

  if (opts.list) {
    for (const s of SCENARIOS.values()) console.log(`${s.name.padEnd(28)} ${s.description}`);
    return 0;
  }
  const names = opts.scenario ? [opts.scenario] : [...MUST_PASS];
  for (const name of names) {
    if (!SCENARIOS.has(name)) {
      console.error(`sim: unknown scenario "${name}"; known: ${[...SCENARIOS.keys()].join(', ')}`);
      return 2;
    }
  }
  const failures: SeedReport[] = [];
  for (const name of names) {
    const scenario = SCENARIOS.get(name)!;
    const seeds = opts.seed !== undefined ? [opts.seed] : Array.from({ length: opts.seeds ?? scenario.defaultSeeds ?? 100 }, (_, i) => opts.start + i);
    let passed = 0;
    const started = process.hrtime.bigint();
    for (const seed of seeds) {
      const report = runSeed(scenario, seed, { keepFullTrace: opts.trace === true, ...(opts.agents === undefined ? {} : { agents: opts.agents }) });
      if (report.ok) {
        passed++;
        if (report.result!.report !== undefined) console.log(report.result!.report);
        if (opts.seed !== undefined) console.log(`${name} seed ${seed}: ok hash=${report.result!.hash} events=${report.result!.events} ${JSON.stringify(report.result!.stats)}`);
      } else {
        failures.push(report);
        console.log(`FAIL ${name} seed ${seed}\n${report.error}\nreplay: npm run sim -- --scenario ${name} --seed ${seed} --trace\n`);
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`${name}: ${passed} passed, ${seeds.length - passed} failed (seeds ${seeds[0]}..${seeds[seeds.length - 1]}, ${seconds.toFixed(1)} s)`);
  }
  if (opts.record && failures.length > 0) {
    const existing = readRegressions(readFileSync(REGRESSIONS_PATH, 'utf8'), REGRESSIONS_PATH);
    const known = new Set(existing.map((r) => `${r.scenario}:${r.seed}`));
    const added: Regression[] = failures
      .filter((f) => !known.has(`${f.scenario}:${f.seed}`))
      .map((f) => ({ scenario: f.scenario, seed: f.seed, expect: 'pass', note: (f.error ?? '').split('\n')[0]!.slice(0, 200) }));
    writeFileSync(REGRESSIONS_PATH, `${JSON.stringify({ regressions: [...existing, ...added] }, null, 2)}\n`);
    console.log(`recorded ${added.length} new seed(s) in ${REGRESSIONS_PATH}`);
  }
  return failures.length === 0 ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    if (err instanceof Error && 'exitCode' in err) process.exitCode = Number((err as { exitCode: number }).exitCode) === 0 ? 0 : 2;
    else throw err;
  }
}
