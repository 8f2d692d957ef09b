// The `partitions` scenario (issue 12): stateful partitions (Raft groups of the partition core) under every nemesis,
// with rebuilds, drains and moves, checked for linearizability, exactly-once and lease safety. scenarios.test.ts
// sweeps it too (it is in MUST_PASS, seeds from 1000); this file sweeps other seeds, proves the checks bite on the
// deliberately broken variant, and tests the end checks on hand-made histories.
import t from 'tap';
import { runSeed, runSeeds } from '../../src/sim/scenario.js';
import { SCENARIOS } from '../../src/scenarios/index.js';
import { checkNoLostWrites, partitionKvModel, runPartitions, type PkvInput, type PkvOutput } from '../../src/scenarios/partitions.js';
import { checkLinearizable, type Operation } from '../../src/sim/linearizability.js';

/** About 0.25 s a seed on a 2-core machine: the default keeps the file well under a minute (about 45 s). */
const SEEDS = Number(process.env['SHOAL_SIM_PARTITIONS_SEEDS'] ?? 150);
/** Seeds of the broken variant; it fails on nearly every one. */
const BROKEN_SEEDS = 10;

t.test(`partitions: ${SEEDS} seeds keep every check`, async (t) => {
  const scenario = SCENARIOS.get('partitions')!;
  const totals: Record<string, number> = {};
  const { passed, failed } = runSeeds(scenario, Array.from({ length: SEEDS }, (_, i) => i + 1), (report) => {
    for (const [k, v] of Object.entries(report.result?.stats ?? {})) totals[k] = (totals[k] ?? 0) + v;
  });
  for (const f of failed) t.fail(`seed ${f.seed} failed (replay: npm run sim -- --scenario partitions --seed ${f.seed} --trace)\n${f.error}`);
  t.equal(passed, SEEDS);
  // The seeds did what the scenario is for.
  if (SEEDS >= 20) {
    for (const what of ['killed', 'drained', 'placementMoves', 'membershipSteps', 'snapshotInstalls', 'retriesDeduplicated', 'storesReplayed', 'itemsDelivered', 'acked']) {
      t.ok((totals[what] ?? 0) > 0, `${what}: ${totals[what] ?? 0} over ${SEEDS} seeds`);
    }
  }
});

t.test('a seed replays exactly: same seed, same trace hash', async (t) => {
  const a = runPartitions(4242);
  const b = runPartitions(4242);
  t.equal(a.hash, b.hash);
  t.equal(a.events, b.events);
  t.not(runPartitions(4243).hash, a.hash);
});

t.test('writes without client sessions are caught applying twice', async (t) => {
  const seeds = Array.from({ length: BROKEN_SEEDS }, (_, i) => i + 1);
  const reports = seeds.map((seed) => runSeed(SCENARIOS.get('partitions-no-sessions')!, seed));
  const caught = reports.filter((r) => !r.ok);
  t.ok(caught.length > 0, `caught on ${caught.length} of ${seeds.length} seeds`);
  for (const r of caught) t.match(r.error, /exactly once: .* (applied twice|is duplicated)/, `seed ${r.seed}`);
  t.match(caught[0]?.error, new RegExp(`seed ${caught[0]?.seed}`));

  // Without the check at apply time, what the clients saw and the final state still give it away.
  const blackBox = seeds.map((seed) => runSeed({ name: 'no-sessions-black-box', description: '', run: (s) => runPartitions(s, { noSessions: true, checkExactlyOnceAtApply: false }) }, seed));
  const seen = blackBox.filter((r) => !r.ok);
  t.ok(seen.length > 0, `caught by the clients' view on ${seen.length} of ${seeds.length} seeds`);
  for (const r of seen) t.match(r.error, /not linearizable|one write applied twice|holds .* twice|acknowledged/, `seed ${r.seed}`);
});

const op = (clientId: string, input: PkvInput, output: PkvOutput | undefined, callMs: number, returnMs: number): Operation<PkvInput, PkvOutput> => ({ clientId, input, output, callMs, returnMs });

t.test('the per-key model: a version condition is the value written there', async (t) => {
  const ok = [
    op('a', { kind: 'put', key: 'k', value: 'v1' }, true, 0, 10),
    op('b', { kind: 'cas', key: 'k', expect: 'v1', value: 'v2' }, true, 20, 30),
    op('c', { kind: 'del', key: 'k', expect: 'v1' }, false, 40, 50),
    op('c', { kind: 'tput', key: 'k', value: 'v3' }, false, 60, 70),
    op('a', { kind: 'get', key: 'k' }, 'v2', 80, 90),
    op('b', { kind: 'del', key: 'k' }, true, 100, 110),
    op('a', { kind: 'get', key: 'k' }, null, 120, 130),
  ];
  t.same(checkLinearizable(partitionKvModel, ok), { ok: true });
  // A conditional put that failed although the key held what it expected: the write it names applied twice.
  const twice = [op('a', { kind: 'put', key: 'k', value: 'v1' }, true, 0, 10), op('b', { kind: 'cas', key: 'k', expect: 'v1', value: 'v2' }, false, 20, 30)];
  t.equal(checkLinearizable(partitionKvModel, twice).ok, false);
  // A transaction's put that did not apply leaves the key alone; one whose outcome is unknown may have applied.
  const unknown = [op('a', { kind: 'tput', key: 'k', value: 'v1' }, undefined, 0, Infinity), op('b', { kind: 'get', key: 'k' }, 'v1', 20, 30)];
  t.same(checkLinearizable(partitionKvModel, unknown), { ok: true });
});

t.test('the lost-write check: the final read returns the last acknowledged write or a later one', async (t) => {
  const writes = [
    op('a', { kind: 'put', key: 'k', value: 'v1' }, true, 0, 10),
    op('b', { kind: 'put', key: 'k', value: 'v2' }, true, 20, 30),
    // Unknown outcome: it may have applied at any time after its call.
    op('c', { kind: 'put', key: 'k', value: 'v3' }, undefined, 5, Infinity),
    // A failed conditional put wrote nothing.
    op('d', { kind: 'cas', key: 'k', expect: 'zz', value: 'v4' }, false, 40, 50),
  ];
  const final = (value: string | null): Operation<PkvInput, PkvOutput>[] => [op('final', { kind: 'get', key: 'k' }, value, 100, 101)];
  t.equal(checkNoLostWrites(writes, final('v2')), undefined);
  t.equal(checkNoLostWrites(writes, final('v3')), undefined);
  t.match(checkNoLostWrites(writes, final('v1')), /acknowledged write lost: the final read of k at 100 ms returned "v1"/);
  t.match(checkNoLostWrites(writes, final('v4')), /acknowledged write lost/);
  t.match(checkNoLostWrites(writes, final(null)), /acknowledged write lost/);
  // Concurrent writes: either may be last.
  const concurrent = [op('a', { kind: 'put', key: 'k', value: 'v1' }, true, 0, 30), op('b', { kind: 'put', key: 'k', value: 'v2' }, true, 10, 20)];
  t.equal(checkNoLostWrites(concurrent, final('v1')), undefined);
  t.equal(checkNoLostWrites(concurrent, final('v2')), undefined);
  // An acknowledged delete.
  t.equal(checkNoLostWrites([...writes.slice(0, 2), op('e', { kind: 'del', key: 'k' }, true, 60, 70)], final(null)), undefined);
});
