/**
 * Stateful services in the replicated state (src/state, issue 12): which registrations are accepted and which are
 * refused (a task beside each replica; a running service's partition count, scheme or replicas; a service becoming
 * stateful or stateless in place), the plans refused (two live replicas of a partition on one node, a second
 * bootstrap), and `partition` and `bootstrap` kept through plans, snapshots and a client's slice.
 */
import t from 'tap';
import { ClusterState, NodeSlice, sliceDelta, type Allocation } from '../../src/state/index.js';
import type { Plan, PlannedAllocation } from '../../src/state/commands.js';
import { addNode, harness, job, nodeId, running } from '../scheduler/helpers.js';

const kv = (state: string, extra = ''): ReturnType<typeof job> => job(`services:\n  db:\n    x-shoal: { state: { ${state} } }\n${extra}  web:\n    image: nginx\n`, 'kv');

t.test('registration: a replicated store is accepted; a stateful service with a task is refused, naming it and what to remove', async (t) => {
  const h = harness();
  const withTask = [
    ['services:\n  db:\n    x-shoal: { driver: process, state: { partitions: 2 } }\n    command: node db.js\n', 'command'],
    ['services:\n  db:\n    x-shoal: { state: { partitions: 2 } }\n    image: redis\n', 'image'],
    ['services:\n  db:\n    x-shoal: { state: { partitions: 2 } }\n    image: redis\n    entrypoint: [redis-server]\n', 'image and entrypoint'],
  ] as const;
  for (const [yaml, what] of withTask) {
    const r = h.apply({ type: 'job.register', job: job(yaml, 'st') });
    t.match(r, { ok: false, code: 'ERR_UNSUPPORTED', evalIds: [] });
    if (!r.ok) t.equal(r.message, `service "db" is stateful and has a task (${what.replace(' and ', ', ')}): a task beside each replica is not run yet; remove ${what} to run it as a replicated store`);
  }
  t.equal(h.state.job('st'), undefined);
  t.same(h.state.pendingEvaluations(), []);
  const ok = h.apply({ type: 'job.register', job: kv('partitions: 2') });
  t.ok(ok.ok && ok.evalIds.length === 1);
});

t.test('a running stateful service keeps its layout; its collections and spread may change', async (t) => {
  const h = harness();
  for (let i = 1; i <= 3; i++) addNode(h, i);
  t.equal(h.apply({ type: 'job.register', job: kv('partitions: 16') }).ok, true);
  h.drain();
  const refusals: [string, ReturnType<typeof job>, RegExp][] = [
    ['the partition count', kv('partitions: 32'), /^service "db": changing the partition count from 16 to 32 needs a partition split, which is not built; keep partitions: 16, or stop the job/],
    ['the scheme', kv('partitions: 16, scheme: named, names: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]'), /^service "db": changing the partition scheme from uniform to named \[a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p\] moves keys to other partitions/],
    ['the replicas', kv('partitions: 16, replicas: 5'), /^service "db": changing the replicas of each partition from 3 to 5 is not built/],
    ['stateful to stateless', job('services:\n  db:\n    image: redis\n  web:\n    image: nginx\n', 'kv'), /^service "db" is stateful in the running job: removing x-shoal.state would abandon its partitions/],
    ['stateless to stateful', job('services:\n  db:\n    x-shoal: { state: { partitions: 16 } }\n  web:\n    x-shoal: { state: {} }\n', 'kv'), /^service "web" is stateless in the running job: it cannot become stateful \(x-shoal.state\) in place/],
  ];
  for (const [what, j, message] of refusals) {
    const r = h.apply({ type: 'job.register', job: j });
    t.match(r, { ok: false, code: 'ERR_INVALID_ARGUMENT', evalIds: [], message }, `changing ${what} is refused`);
  }
  t.equal(h.state.job('kv')!.version, 1, 'the job is as it was');
  const more = h.apply({ type: 'job.register', job: kv('partitions: 16, spread: zone, collections: [{ name: carts, kind: dictionary }]') });
  t.equal(more.ok, true, 'collections and spread may change');
  t.equal(h.state.job('kv')!.version, 2);
  const before = running(h, 'kv', 'db').map((a) => a.id).sort();
  h.drain();
  t.same(running(h, 'kv', 'db').map((a) => a.id).sort(), before, 'no replica replaced');
  t.match(h.apply({ type: 'job.scale', name: 'kv', service: 'db', replicas: 5 }), { ok: false, code: 'ERR_INVALID_ARGUMENT', message: 'service "db" is stateful: it runs 16 partitions × 3 replicas (x-shoal.state) and cannot be scaled' });
  // Stopped, and its replicas stopped: it starts afresh, and may change.
  h.apply({ type: 'job.stop', name: 'kv' });
  t.match(h.apply({ type: 'job.register', job: kv('partitions: 32') }), { ok: false, code: 'ERR_INVALID_ARGUMENT' }, 'not while its replicas are still placed');
  h.drain();
  t.equal(h.state.partitionBootstrapped('kv', 'db', 0), false, 'a stopped job\'s partitions are forgotten with its replicas');
  t.equal(h.apply({ type: 'job.register', job: kv('partitions: 32') }).ok, true);
  h.drain();
  const fresh = running(h, 'kv', 'db');
  t.equal(fresh.length, 96);
  t.ok(fresh.every((a) => a.bootstrap?.length === 3), 'every partition bootstraps anew');
});

/** A plan for job `kv`, version as it is, placing `placements` (partial) and stopping `stops`. */
function plan(h: ReturnType<typeof harness>, placements: Partial<PlannedAllocation>[], stops: string[] = []): Plan {
  const rec = h.state.job('kv')!;
  const evalId = h.state.evaluationsOfJob('kv')[0]!.id;
  return {
    evalId, jobName: 'kv', jobVersion: rec.version, baseIndex: h.state.index, failedPlacements: {},
    stops: stops.map((allocId) => ({ allocId, reason: 'test', markLost: false })),
    placements: placements.map((p, i) => ({
      id: `p${i}-${h.state.index}`, jobName: 'kv', jobVersion: rec.version, service: 'db', slot: 0, partition: 0, nodeId: nodeId(1),
      resources: { cpuMillicores: 0, memoryBytes: 0 }, previousAllocId: '', reschedules: 0, ...p,
    })),
  };
}

t.test('plan.apply refuses two live replicas of one partition on one node, as it refuses a port clash', async (t) => {
  const h = harness();
  for (let i = 1; i <= 3; i++) addNode(h, i);
  h.apply({ type: 'job.register', job: kv('partitions: 2, replicas: 3') });
  const both = h.apply({ type: 'plan.apply', plan: plan(h, [{ slot: 0 }, { slot: 1 }]) });
  t.match(both, { ok: false, code: 'ERR_PLAN_REJECTED', message: /^node n1 already holds a replica of partition 0 of service "db": allocation p1-\d+ would be a second one there$/ });
  t.equal(h.state.allocationsOfJob('kv').length, 0, 'nothing applied');
  t.equal(h.state.pendingEvaluations().length, 1, 'a new evaluation replaces the rejected plan\'s');
  const one = h.apply({ type: 'plan.apply', plan: plan(h, [{ slot: 0, bootstrap: [nodeId(1), nodeId(2)] }, { slot: 1, nodeId: nodeId(2), bootstrap: [nodeId(1), nodeId(2)] }, { slot: 3, partition: 1 }]) });
  t.equal(one.ok, true, 'two partitions may share a node');
  const [a0] = h.state.allocationsOfJob('kv').filter((a) => a.slot === 0);
  t.match(h.apply({ type: 'plan.apply', plan: plan(h, [{ slot: 2 }]) }), { ok: false, message: /already holds a replica of partition 0/ }, 'nor beside a live one');
  t.equal(h.apply({ type: 'plan.apply', plan: plan(h, [{ slot: 2 }], [a0!.id]) }).ok, true, 'the plan that stops the live one may place another there');
  // A terminal replica is not live: a replica of its partition may go to its node.
  const [a2] = h.state.allocationsOfJob('kv').filter((a) => a.slot === 2);
  h.apply({ type: 'alloc.update', nodeId: nodeId(1), updates: [{ allocId: a2!.id, clientStatus: 'failed', clientMessage: 'x', restarts: 0, driverHandle: '' }] });
  t.equal(h.apply({ type: 'plan.apply', plan: plan(h, [{ slot: 2 }]) }).ok, true);
  t.match(h.apply({ type: 'plan.apply', plan: plan(h, [{ slot: 2, nodeId: nodeId(3), bootstrap: [nodeId(3)] }]) }), { ok: false, message: /^partition 0 of service "db" was bootstrapped before: allocation p0-\d+ must join its group, not bootstrap it again$/ });
  t.equal(h.apply({ type: 'plan.apply', plan: plan(h, [{ slot: 4, partition: 1, nodeId: nodeId(3), bootstrap: [nodeId(3)] }]) }).ok, true, 'partition 1 was never bootstrapped');
  t.ok(h.state.partitionBootstrapped('kv', 'db', 0) && h.state.partitionBootstrapped('kv', 'db', 1));
});

t.test('partition and bootstrap survive the plan, a snapshot, and a client\'s slice (carried as JSON)', async (t) => {
  const h = harness(3);
  for (let i = 1; i <= 3; i++) addNode(h, i);
  h.apply({ type: 'job.register', job: kv('partitions: 2, replicas: 3') });
  h.drain();
  const db = running(h, 'kv', 'db');
  t.equal(db.length, 6);
  const fields = (list: Allocation[]) => list.filter((a) => a.service === 'db').map((a) => ({ id: a.id, partition: a.partition, bootstrap: a.bootstrap })).sort((a, b) => (a.id < b.id ? -1 : 1));
  t.ok(fields(db).every((f) => f.partition !== undefined && f.bootstrap?.length === 3));
  const restored = ClusterState.restore(JSON.parse(JSON.stringify(h.state.snapshot())));
  t.same(fields(restored.allocationsOfJob('kv')), fields(db), 'a snapshot keeps them');
  t.ok(restored.partitionBootstrapped('kv', 'db', 0) && restored.partitionBootstrapped('kv', 'db', 1) && !restored.partitionBootstrapped('kv', 'db', 2), 'and which partitions were bootstrapped');
  t.same(h.state.allocationsOfJob('kv').find((a) => a.service === 'web')!.partition, undefined, 'a stateless allocation has no partition');
  for (let i = 1; i <= 3; i++) {
    const slice = new NodeSlice(nodeId(i));
    // Slices.Watch carries allocations as JSON (allocations_json): the same round trip.
    slice.merge(JSON.parse(JSON.stringify(sliceDelta(h.state, nodeId(i), 0, 10_000))));
    t.same(fields(slice.allocationsOnNode(nodeId(i))), fields(db.filter((a) => a.nodeId === nodeId(i))), `node ${i}'s slice carries them`);
  }
});

t.test('a stateful service removed and added back waits until its replicas are stopped; then it starts afresh', async (t) => {
  const h = harness(5);
  for (let i = 1; i <= 3; i++) addNode(h, i);
  h.apply({ type: 'job.register', job: kv('partitions: 2') });
  h.drain();
  const webOnly = job('services:\n  web:\n    image: nginx\n', 'kv');
  t.equal(h.apply({ type: 'job.register', job: webOnly }).ok, true);
  t.match(h.apply({ type: 'job.register', job: kv('partitions: 4') }), { ok: false, code: 'ERR_INVALID_ARGUMENT', message: 'service "db" was removed from the job and its allocations are still being stopped; register it again once they are (shoal job status kv)' });
  t.match(h.apply({ type: 'job.register', job: job('services:\n  db:\n    image: redis\n  web:\n    image: nginx\n', 'kv') }), { ok: false, message: /^service "db" was removed/ }, 'nor as a stateless service');
  h.drain();
  t.equal(running(h, 'kv', 'db').length, 0);
  t.equal(h.state.partitionBootstrapped('kv', 'db', 0), false, 'its partitions are forgotten with it');
  t.equal(h.apply({ type: 'job.register', job: kv('partitions: 4') }).ok, true);
  h.drain();
  t.ok(running(h, 'kv', 'db').every((a) => a.bootstrap?.length === 3), 'and bootstrap anew');
});
