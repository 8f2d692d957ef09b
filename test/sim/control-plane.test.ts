import t from 'tap';
import { runSeed, runSeeds } from '../../src/sim/scenario.js';
import { SCENARIOS } from '../../src/scenarios/index.js';
import { CpReferee, SimMachine, checkConverged, runControlPlane } from '../../src/scenarios/control-plane.js';
import { parseJobFile } from '../../src/jobspec/index.js';
import { Random } from '../../src/lib/random.js';
import { ClusterState } from '../../src/state/index.js';
import { SchedulerHarness } from '../../src/scheduler/index.js';
import type { Entry } from '../../src/consensus/types.js';

const SEEDS = Number(process.env['SHOAL_SIM_CP_SEEDS'] ?? process.env['SHOAL_SIM_SEEDS'] ?? 200);

t.test(`control-plane: ${SEEDS} seeds keep every invariant and converge`, async (t) => {
  const scenario = SCENARIOS.get('control-plane')!;
  const { passed, failed } = runSeeds(scenario, Array.from({ length: SEEDS }, (_, i) => 1000 + i));
  for (const f of failed) t.fail(`seed ${f.seed} failed (replay: npm run sim -- --scenario control-plane --seed ${f.seed})\n${f.error}`);
  t.equal(passed, SEEDS);
});

t.test('a seed replays exactly: same seed, same trace hash', async (t) => {
  const a = runControlPlane(4242);
  const b = runControlPlane(4242);
  t.equal(a.hash, b.hash);
  t.equal(a.events, b.events);
  t.not(runControlPlane(4243).hash, a.hash);
  // The run did what it is meant to exercise: crashes of both kinds, tasks that exit by themselves, snapshots.
  t.ok(a.stats['agentRestarts']! + a.stats['powerOffs']! > 0, 'nodes crashed');
  t.ok(a.stats['taskStarts']! > 20, 'tasks started');
});

t.test('a restarted agent that forgets its task records is caught starting a duplicate task', async (t) => {
  const reports = Array.from({ length: 10 }, (_, i) => runSeed(SCENARIOS.get('control-plane-forgetful')!, i + 1));
  const caught = reports.filter((r) => !r.ok);
  t.ok(caught.length > 0, `caught on ${caught.length} of ${reports.length} seeds`);
  const dup = reports.find((r) => /no machine runs two tasks/.test(r.error ?? ''));
  t.ok(dup, 'at least one seed fails on the duplicate-task invariant itself');
  t.match(dup?.error, /was asked to start a second task for allocation [0-9a-f]+ while pid \d+/);
  t.match(dup?.error, new RegExp(`seed ${dup?.seed}`));
});

t.test('a member whose state diverges is caught by the state agreement check', async (t) => {
  const report = runSeed(SCENARIOS.get('control-plane-divergent')!, 2);
  t.notOk(report.ok);
  t.match(report.error, /invariant "replicated states agree and no node is over-committed" failed/);
  t.match(report.error, /state at index \d+ .* has digest [0-9a-f]{16}; another member had [0-9a-f]{16} there/);
});

const MiB = 1024 * 1024;
const upsert = (h: SchedulerHarness, id: string, cpu: number) =>
  h.apply({ type: 'node.upsert', node: { id, name: id, address: `${id}:1`, labels: {}, capacity: { cpuMillicores: cpu, memoryBytes: 1024 * MiB }, drivers: ['process'], roles: [] } });
const entryAt = (index: number): Entry => ({ index, term: 1, type: 'normal', data: new TextEncoder().encode('{}') });

t.test('the referee reports a node over-committed in a member\'s state', async (t) => {
  const h = new SchedulerHarness(new ClusterState(), Random.fromSeed(1));
  upsert(h, 'a', 1000);
  h.apply({ type: 'job.register', job: parseJobFile('services:\n  w:\n    command: run\n    x-shoal: { driver: process }\n    deploy: { replicas: 2, resources: { reservations: { cpus: 0.4 } } }\n', { file: 'w.yaml' }).job });
  h.drain();
  const referee = new CpReferee();
  referee.booted('n1');
  referee.applied('n1', entryAt(1), h.state);
  t.equal(referee.problem, undefined, 'two 400m tasks fit in 1000m');
  // The node comes back smaller than what it already holds: the state accepts it, the check does not.
  upsert(h, 'a', 500);
  referee.applied('n1', entryAt(2), h.state);
  t.match(referee.problem, /node a is over-committed: 800m\/0B reserved of 500m/);
});

t.test('the end check demands exactly one running task per slot, and none for stopped allocations', async (t) => {
  const h = new SchedulerHarness(new ClusterState(), Random.fromSeed(2));
  for (const id of ['a', 'b']) upsert(h, id, 4000);
  h.apply({ type: 'job.register', job: parseJobFile('services:\n  w:\n    command: run\n    x-shoal: { driver: process }\n    deploy: { replicas: 3 }\n', { file: 'w.yaml' }).job });
  h.drain();
  const allocs = h.state.allocationsOfJob('w');
  t.equal(allocs.length, 3);
  h.apply({ type: 'alloc.update', nodeId: 'a', updates: allocs.filter((a) => a.nodeId === 'a').map((a) => ({ allocId: a.id, clientStatus: 'running', clientMessage: '', restarts: 0, driverHandle: 'h' })) });
  h.apply({ type: 'alloc.update', nodeId: 'b', updates: allocs.filter((a) => a.nodeId === 'b').map((a) => ({ allocId: a.id, clientStatus: 'running', clientMessage: '', restarts: 0, driverHandle: 'h' })) });
  const noSim = () => {
    throw new Error('the end check must not touch the simulator');
  };
  const machines = new Map(['a', 'b'].map((id) => [id, new SimMachine(id, noSim, Random.fromSeed(3), { startFailRate: 0, exitRate: 0, exitsUntilMs: 0 })]));
  let pid = 1;
  const run = (node: string, allocId: string) => {
    const p = pid++;
    machines.get(node)!.procs.set(p, { pid: p, allocId, handle: `${node}/${p}`, state: 'running', incarnation: 1 });
    return p;
  };
  const pids = allocs.map((a) => run(a.nodeId, a.id));
  const up = new Set(['a', 'b']);
  t.equal(checkConverged(h.state, machines, up), undefined, 'one running task per slot converges');

  const first = allocs[0]!;
  machines.get(first.nodeId)!.procs.delete(pids[0]!);
  t.match(checkConverged(h.state, machines, up), new RegExp(`w/w\\[${first.slot}\\]: allocation ${first.id} .* has 0 running tasks`));
  run(first.nodeId, first.id);

  const other = first.nodeId === 'a' ? 'b' : 'a';
  run(other, first.id);
  t.match(checkConverged(h.state, machines, up), new RegExp(`node ${other} runs allocation ${first.id}, which is placed on ${first.nodeId}`));
  machines.get(other)!.procs.delete(pid - 1);

  h.apply({ type: 'job.scale', name: 'w', service: 'w', replicas: 2 });
  h.drain();
  t.match(checkConverged(h.state, machines, up), /which the state wants stopped \(scaled down to 2\)/);
});
