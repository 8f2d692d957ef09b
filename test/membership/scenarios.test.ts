import t from 'tap';
import { runSeed } from '../../src/sim/scenario.js';
import { SCENARIOS, MUST_PASS } from '../../src/scenarios/index.js';
import { MEMBERSHIP_MUST_PASS, runFalsePositive } from '../../src/scenarios/membership.js';

// The must-pass membership scenarios also run 200 seeds each in test/sim/scenarios.test.ts; here the larger
// clusters run a few seeds, and the figures are printed.
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function runMany(t: any, name: string, seeds: number[]): Record<string, number>[] {
  const scenario = SCENARIOS.get(name);
  t.ok(scenario, `${name} is registered`);
  const stats: Record<string, number>[] = [];
  for (const seed of seeds) {
    const report = runSeed(scenario!, seed);
    t.ok(report.ok, `${name} seed ${seed}${report.error ? `\n${report.error}` : ''}`);
    if (report.result) stats.push(report.result.stats);
  }
  return stats;
}

t.test('the membership scenarios are registered and the must-pass ones are in MUST_PASS', async (t) => {
  for (const name of MEMBERSHIP_MUST_PASS) t.ok(MUST_PASS.includes(name), name);
  t.ok(SCENARIOS.has('membership-crash-50') && SCENARIOS.has('membership-crash-1000'));
});

t.test('5 nodes: a crashed node is DEAD everywhere, in well under 2 s of virtual time', async (t) => {
  const stats = runMany(t, 'membership-crash-5', Array.from({ length: 30 }, (_, i) => 500 + i));
  const times = stats.map((s) => s['detectionMs']!);
  t.comment(`detection at 5 nodes: median ${median(times).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms (virtual)`);
  t.ok(median(times) < 2_000, `median ${median(times)} ms`);
  t.ok(stats.every((s) => s['falseDead'] === 0));
});

t.test('50 nodes: a crashed node is DEAD everywhere', async (t) => {
  const stats = runMany(t, 'membership-crash-50', Array.from({ length: 8 }, (_, i) => 700 + i));
  t.comment(`detection at 50 nodes: median ${median(stats.map((s) => s['detectionMs']!)).toFixed(0)} ms (virtual)`);
});

t.test('1,000 nodes: a crashed node is DEAD everywhere', async (t) => {
  const stats = runMany(t, 'membership-crash-1000', [1, 2]);
  t.comment(`detection at 1,000 nodes: ${stats.map((s) => s['detectionMs']!.toFixed(0)).join(', ')} ms (virtual)`);
});

t.test('a membership scenario replays exactly from its seed', async (t) => {
  const a = runFalsePositive(77, { durationMs: 10_000 });
  const b = runFalsePositive(77, { durationMs: 10_000 });
  t.equal(a.hash, b.hash);
  t.equal(a.events, b.events);
  t.not(runFalsePositive(78, { durationMs: 10_000 }).hash, a.hash);
});

t.test('the false-DEAD invariant bites: pauses longer than any suspicion timeout are caught', async (t) => {
  // A member frozen for 8 s is, to everyone else, dead: the check must report it rather than pass vacuously.
  const seeds = [1, 2, 3, 4, 5];
  const failures = seeds.map((seed) => {
    try {
      runFalsePositive(seed, { durationMs: 20_000, maxPauseMs: 8_000 });
      return undefined;
    } catch (err) {
      return err as Error & { code?: string };
    }
  });
  const caught = failures.filter((e) => e !== undefined);
  t.ok(caught.length > 0, `caught on ${caught.length} of ${seeds.length} seeds`);
  t.match(caught[0]!.message, /declared healthy node n5 DEAD/);
  t.equal(caught[0]!.code, 'ERR_SIM_INVARIANT');
});
