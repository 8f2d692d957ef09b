/**
 * The raft simulation scenarios themselves: deterministic, and their checks bite. (The seed sweep of the
 * must-pass scenario runs in test/sim/scenarios.test.ts; `npm run sim -- --scenario raft-kv --seeds N` runs more.)
 */
import t from 'tap';
import { runSeed } from '../../src/sim/scenario.js';
import { SCENARIOS, MUST_PASS } from '../../src/scenarios/index.js';
import { runRaftKv } from '../../src/scenarios/raft-kv.js';

t.test('raft-kv is registered and must pass', async (t) => {
  t.ok(MUST_PASS.includes('raft-kv'));
  for (const name of ['raft-kv', 'raft-membership-churn', 'raft-kv-harsh', 'raft-kv-plain', 'raft-kv-lease', 'raft-kv-unsafe', 'raft-kv-stale-reads', 'raft-kv-no-dedup']) t.ok(SCENARIOS.has(name), name);
});

t.test('a raft-kv seed replays exactly: same seed, same trace hash', async (t) => {
  const a = runRaftKv(77);
  const b = runRaftKv(77);
  t.equal(a.hash, b.hash);
  t.equal(a.events, b.events);
  t.not(runRaftKv(78).hash, a.hash);
});

t.test('the workload does real work: clients are answered, entries commit, reads are served', async (t) => {
  const r = runRaftKv(5, { voters: 5, membershipChurn: true });
  t.ok(r.stats['answered']! > 50, `answered ${r.stats['answered']}`);
  t.ok(r.stats['committed']! > 50, `committed ${r.stats['committed']}`);
  t.ok(r.stats['reads']! > 10, `reads ${r.stats['reads']}`);
  t.ok(r.stats['confChanges']! > 0, `membership changes ${r.stats['confChanges']}`);
  t.ok(r.stats['snapshotInstalls']! > 0, `snapshots installed from the leader ${r.stats['snapshotInstalls']}`);
  t.equal(r.stats['linearizabilityUnknown'], 0);
});

t.test('safety holds with pre-vote and check-quorum off too (they are for liveness, not safety)', async (t) => {
  for (const seed of [1, 2, 3]) {
    t.doesNotThrow(() => runRaftKv(seed, { preVote: false, checkQuorum: false }), `seed ${seed}`);
  }
});

t.test('membership churn: a few seeds pass', async (t) => {
  for (const seed of [11, 12, 13]) {
    const report = runSeed(SCENARIOS.get('raft-membership-churn')!, seed);
    t.ok(report.ok, `seed ${seed}${report.error ? `: ${report.error}` : ''}`);
  }
});

t.test('sending before syncing is caught by the durability invariant', async (t) => {
  const report = runSeed(SCENARIOS.get('raft-kv-unsafe')!, 1);
  t.notOk(report.ok);
  t.match(report.error, /invariant "raft safety" failed .* acts on term \d+ vote \S+ but its disk holds/);
  t.match(report.error, /seed 1/);
});

t.test('applying a retried command twice (no client sessions) is caught by the linearizability check', async (t) => {
  const report = runSeed(SCENARIOS.get('raft-kv-no-dedup')!, 49);
  t.notOk(report.ok);
  t.match(report.error, /client history is not linearizable/);
  t.ok(runSeed(SCENARIOS.get('raft-kv')!, 49).ok, 'the same seed passes with client sessions');
});

t.test('stale local reads are caught by the linearizability check', async (t) => {
  const failing = [1, 2, 3, 4, 5, 6].map((seed) => runSeed(SCENARIOS.get('raft-kv-stale-reads')!, seed)).filter((r) => !r.ok);
  t.ok(failing.length > 0, `${failing.length} of 6 seeds caught`);
  t.match(failing[0]!.error, /client history is not linearizable/);
});

t.test('the referee catches two leaders in a term, a changed committed entry, and a term going back on disk', async (t) => {
  const { Referee } = await import('../../src/scenarios/raft-kv.js');
  const { Simulator } = await import('../../src/sim/simulator.js');
  type FakeLog = { committed: number; entries: { index: number; term: number }[] };
  const fake = (role: string, term: number, log: FakeLog) => ({
    tick() {},
    deliver() {},
    raft: {
      role,
      term,
      vote: undefined,
      log: {
        committed: log.committed,
        firstIndex: () => 1,
        term: (i: number) => log.entries[i - 1]?.term,
        slice: (lo: number, hi: number) => log.entries.slice(lo - 1, hi - 1).map((e) => ({ ...e, type: 'normal', data: new Uint8Array(0) })),
      },
    },
  });
  const build = (nodes: Record<string, ReturnType<typeof fake>>) =>
    new Simulator<never>({ seed: 1, nodeIds: Object.keys(nodes), tickIntervalMs: 10, createNode: (ctx) => nodes[ctx.id] as never });

  let referee = new Referee(false);
  let sim = build({ a: fake('leader', 3, { committed: 0, entries: [] }), b: fake('leader', 3, { committed: 0, entries: [] }) });
  t.match(referee.check(sim as never), /two leaders in term 3: a and b/);

  referee = new Referee(false);
  sim = build({ a: fake('follower', 2, { committed: 1, entries: [{ index: 1, term: 1 }] }), b: fake('follower', 2, { committed: 1, entries: [{ index: 1, term: 2 }] }) });
  t.match(referee.check(sim as never), /committed entry 1 changed/);

  referee = new Referee(false);
  sim = build({ a: fake('follower', 2, { committed: 1, entries: [{ index: 1, term: 1 }] }), b: fake('leader', 3, { committed: 0, entries: [] }) });
  t.match(referee.check(sim as never), /leader b of term 3 lacks entry 1 .* committed by term 2/);

  referee = new Referee(false);
  sim = build({ a: fake('follower', 2, { committed: 0, entries: [] }) });
  sim.storage('a').put('raft/hs', { term: 5, vote: 'a', commit: 0 });
  sim.storage('a').sync();
  t.equal(referee.check(sim as never), undefined);
  sim.storage('a').put('raft/hs', { term: 4, vote: 'a', commit: 0 });
  sim.storage('a').sync();
  t.match(referee.check(sim as never), /term on disk went back from 5 to 4/);
  referee = new Referee(false);
  sim.storage('a').put('raft/hs', { term: 5, vote: 'a', commit: 0 });
  sim.storage('a').sync();
  referee.check(sim as never);
  sim.storage('a').put('raft/hs', { term: 5, vote: 'b', commit: 0 });
  sim.storage('a').sync();
  t.match(referee.check(sim as never), /vote on disk changed within term 5/);
});

t.test('a steady run under 5% loss keeps its first leader: no spurious elections from check-quorum or pre-vote', async (t) => {
  for (const voters of [3, 5] as const) {
    const r = runRaftKv(9, { voters, faults: false, lossRate: 0.05, faultMs: 30_000 });
    t.equal(r.stats['terms'], 1, `${voters} voters: one leader for ${r.virtualMs} ms of virtual time`);
    t.ok(r.stats['answered']! > 500, `${r.stats['answered']} client operations answered`);
  }
});
