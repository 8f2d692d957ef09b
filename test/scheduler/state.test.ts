import t from 'tap';
import { ClusterState } from '../../src/state/index.js';
import { addNode, harness, job, nodeId, running, GiB } from './helpers.js';

const web = job('services:\n  web:\n    image: x\n    deploy: { replicas: 3, resources: { reservations: { cpus: 1, memory: 1g } } }\n  db:\n    image: y\n', 'app');

t.test('registering a job creates an evaluation; the same job again changes nothing', async (t) => {
  const h = harness();
  const first = h.apply({ type: 'job.register', job: web });
  t.ok(first.ok && first.evalIds.length === 1);
  t.equal(h.state.job('app')!.version, 1);
  const again = h.apply({ type: 'job.register', job: web });
  t.same(again, { ok: true, evalIds: [] });
  t.equal(h.state.job('app')!.version, 1);
  t.throws(() => h.state.apply(1, { type: 'job.stop', name: 'app' }), { code: 'ERR_INVARIANT', message: /went backwards/ });
});

t.test('scaling or changing one service replaces only what changed', async (t) => {
  const h = harness();
  for (let i = 1; i <= 3; i++) addNode(h, i);
  h.apply({ type: 'job.register', job: web });
  h.drain();
  const before = running(h, 'app').map((a) => a.id).sort();
  t.equal(before.length, 4);
  t.same(h.apply({ type: 'job.scale', name: 'app', service: 'web', replicas: 5 }).ok, true);
  h.drain();
  const afterScale = running(h, 'app');
  t.equal(afterScale.length, 6);
  t.ok(before.every((id) => afterScale.some((a) => a.id === id)), 'scaling up restarted nothing');
  const changed = job('services:\n  web:\n    image: x\n    deploy: { replicas: 5, resources: { reservations: { cpus: 1, memory: 1g } } }\n  db:\n    image: y2\n', 'app');
  h.apply({ type: 'job.register', job: changed });
  h.drain();
  const afterChange = running(h, 'app');
  t.same(afterChange.filter((a) => a.service === 'web').map((a) => a.id).sort(), afterScale.filter((a) => a.service === 'web').map((a) => a.id).sort(), 'web kept its allocations');
  const db = afterChange.filter((a) => a.service === 'db');
  t.equal(db.length, 1);
  t.notOk(afterScale.some((a) => a.id === db[0]!.id), 'db was replaced');
  t.equal(db[0]!.previousAllocId, afterScale.find((a) => a.service === 'db')!.id);
  t.match(h.apply({ type: 'job.scale', name: 'app', service: 'nope', replicas: 1 }), { ok: false, code: 'ERR_NOT_FOUND', message: /has no service "nope" \(it has web, db\)/ });
  t.match(h.apply({ type: 'job.scale', name: 'ghost', service: 'web', replicas: 1 }), { ok: false, code: 'ERR_NOT_FOUND' });
});

t.test('usage follows allocations: placed, reported, stopped', async (t) => {
  const h = harness();
  addNode(h, 1);
  h.apply({ type: 'job.register', job: job('services:\n  w:\n    image: x\n    deploy: { replicas: 2, resources: { reservations: { cpus: 1, memory: 1g } } }\n', 'u') });
  h.drain();
  t.same(h.state.usage(nodeId(1)), { cpuMillicores: 2000, memoryBytes: 2 * GiB });
  const [a, b] = running(h, 'u');
  h.apply({ type: 'alloc.update', nodeId: nodeId(1), updates: [{ allocId: a!.id, clientStatus: 'running', clientMessage: '', restarts: 0, driverHandle: 'h1' }] });
  t.equal(h.state.allocation(a!.id)!.clientStatus, 'running');
  const failed = h.apply({ type: 'alloc.update', nodeId: nodeId(1), updates: [{ allocId: b!.id, clientStatus: 'failed', clientMessage: 'exit 1', restarts: 3, driverHandle: '' }] });
  t.ok(failed.ok && failed.evalIds.length === 1, 'a failure triggers an evaluation');
  t.same(h.state.usage(nodeId(1)), { cpuMillicores: 1000, memoryBytes: GiB }, 'a failed allocation frees its resources');
  const ignored = h.apply({ type: 'alloc.update', nodeId: nodeId(2), updates: [{ allocId: a!.id, clientStatus: 'failed', clientMessage: '', restarts: 0, driverHandle: '' }] });
  t.same(ignored, { ok: true, evalIds: [] }, 'a report from the wrong node changes nothing');
  h.drain();
  t.equal(running(h, 'u').filter((x) => x.clientStatus !== 'failed').length, 2, 'the failed replica was replaced');
  h.apply({ type: 'job.stop', name: 'u' });
  h.drain();
  t.equal(running(h, 'u').length, 0);
  t.same(h.state.usage(nodeId(1)), { cpuMillicores: 0, memoryBytes: 0 });
  t.match(h.apply({ type: 'job.stop', name: 'ghost' }), { ok: false, code: 'ERR_NOT_FOUND' });
  t.match(h.apply({ type: 'node.drain', nodeId: nodeId(99), draining: true }), { ok: false, code: 'ERR_NOT_FOUND' });
});

t.test('a plan computed on stale state is rejected whole and re-evaluated', async (t) => {
  const h = harness();
  addNode(h, 1, { cpu: 2000 });
  addNode(h, 2, { cpu: 2000 });
  const reg = h.apply({ type: 'job.register', job: job('services:\n  w:\n    image: x\n    deploy: { replicas: 2, resources: { reservations: { cpus: 1 } } }\n', 'p') });
  const evaluation = h.state.evaluation(reg.evalIds[0]!)!;
  const { computePlan } = await import('../../src/scheduler/index.js');
  const { Random } = await import('../../src/lib/random.js');
  const plan = computePlan(h.state, evaluation, Random.fromSeed(3))!;
  t.equal(plan.placements.length, 2);
  // Before the plan lands, one of its nodes goes down.
  h.apply({ type: 'node.status', nodeId: plan.placements[0]!.nodeId, status: 'down' });
  const snapshotBefore = JSON.stringify(h.state.allocations());
  const res = h.apply({ type: 'plan.apply', plan });
  t.match(res, { ok: false, code: 'ERR_PLAN_REJECTED', message: /is no longer ready and eligible/ });
  t.equal(JSON.stringify(h.state.allocations()), snapshotBefore, 'nothing of the plan was applied');
  t.equal(h.state.evaluation(evaluation.id)!.status, 'failed');
  t.ok(!res.ok && res.evalIds.length === 1, 'a new evaluation replaces it');
  h.drain();
  t.equal(running(h, 'p').length, 2, 'the re-evaluation placed both replicas on what is left... when they fit');
  t.ok(running(h, 'p').every((a) => a.nodeId !== plan.placements[0]!.nodeId || h.state.node(a.nodeId)!.status === 'ready'));
});

t.test('plans that over-commit, reuse ids, or target a changed job are rejected', async (t) => {
  const h = harness();
  addNode(h, 1, { cpu: 1000 });
  const reg = h.apply({ type: 'job.register', job: job('services:\n  w:\n    image: x\n    deploy: { replicas: 1, resources: { reservations: { cpus: 1 } } }\n', 'q') });
  const base = { evalId: reg.evalIds[0]!, jobName: 'q', jobVersion: 1, baseIndex: h.state.index, stops: [], failedPlacements: {} };
  const alloc = (id: string) => ({ id, jobName: 'q', jobVersion: 1, service: 'w', slot: 0, nodeId: nodeId(1), resources: { cpuMillicores: 1000, memoryBytes: 0 }, previousAllocId: '', reschedules: 0 });
  t.match(h.apply({ type: 'plan.apply', plan: { ...base, placements: [alloc('a'.repeat(32)), alloc('b'.repeat(32))] } }), { ok: false, message: /no longer has room/ });
  t.ok(h.apply({ type: 'plan.apply', plan: { ...base, placements: [alloc('c'.repeat(32))] } }).ok);
  t.match(h.apply({ type: 'plan.apply', plan: { ...base, placements: [alloc('c'.repeat(32))] } }), { ok: false, message: /already taken/ });
  t.match(h.apply({ type: 'plan.apply', plan: { ...base, jobVersion: 7, placements: [] } }), { ok: false, message: /changed to version 1 after the plan was computed for version 7/ });
  t.match(h.apply({ type: 'plan.apply', plan: { ...base, placements: [], stops: [{ allocId: 'nope', reason: 'x', markLost: false }] } }), { ok: false, message: /to stop does not exist/ });
  t.match(h.apply({ type: 'plan.apply', plan: { ...base, jobName: 'ghost', placements: [] } }), { ok: false, message: /no longer exists/ });
});

t.test('a plan that takes a host port in use is rejected whole; stopping the holder in the same plan frees it', async (t) => {
  const h = harness();
  addNode(h, 1);
  const reg = h.apply({ type: 'job.register', job: job('services:\n  w:\n    image: x\n    ports: ["8080:80"]\n', 'p') });
  const base = { evalId: reg.evalIds[0]!, jobName: 'p', jobVersion: 1, baseIndex: h.state.index, stops: [], failedPlacements: {} };
  const alloc = (id: string, slot = 0) => ({ id, jobName: 'p', jobVersion: 1, service: 'w', slot, nodeId: nodeId(1), resources: { cpuMillicores: 0, memoryBytes: 0 }, ports: ['8080/tcp'], previousAllocId: '', reschedules: 0 });
  t.match(h.apply({ type: 'plan.apply', plan: { ...base, placements: [alloc('a'.repeat(32)), alloc('b'.repeat(32), 1)] } }), { ok: false, message: /port 8080\/tcp on node n1 is no longer free for allocation b{32}/ });
  t.equal(h.state.allocations().length, 0, 'nothing of the rejected plan was applied');
  t.ok(h.apply({ type: 'plan.apply', plan: { ...base, placements: [alloc('c'.repeat(32))] } }).ok);
  t.equal(h.state.portHolder(nodeId(1), '8080/tcp'), 'c'.repeat(32));
  t.match(h.apply({ type: 'plan.apply', plan: { ...base, placements: [alloc('d'.repeat(32))] } }), { ok: false, message: /no longer free/ });
  t.ok(h.apply({ type: 'plan.apply', plan: { ...base, stops: [{ allocId: 'c'.repeat(32), reason: 'replaced', markLost: false }], placements: [alloc('e'.repeat(32))] } }).ok, 'the stopped holder frees it');
  t.equal(h.state.portHolder(nodeId(1), '8080/tcp'), 'e'.repeat(32));
  // The holder's task fails: the port is free. A report that the given-up task runs again does not take it back.
  h.apply({ type: 'alloc.update', nodeId: nodeId(1), updates: [{ allocId: 'e'.repeat(32), clientStatus: 'failed', clientMessage: 'exit 1', restarts: 0, driverHandle: '' }] });
  t.equal(h.state.portHolder(nodeId(1), '8080/tcp'), undefined);
  t.ok(h.apply({ type: 'plan.apply', plan: { ...base, baseIndex: h.state.index, placements: [alloc('f'.repeat(32))] } }).ok);
  h.apply({ type: 'alloc.update', nodeId: nodeId(1), updates: [{ allocId: 'e'.repeat(32), clientStatus: 'running', clientMessage: '', restarts: 1, driverHandle: 'h' }] });
  t.equal(h.state.portHolder(nodeId(1), '8080/tcp'), 'f'.repeat(32));
  const restored = ClusterState.restore(JSON.parse(JSON.stringify(h.state.snapshot())));
  t.equal(restored.portHolder(nodeId(1), '8080/tcp'), 'f'.repeat(32), 'a restored replica picks the same holder, whatever order it reads them in');
});

t.test('snapshots restore the same state, indexes included', async (t) => {
  const h = harness();
  for (let i = 1; i <= 3; i++) addNode(h, i, { labels: { zone: i % 2 ? 'a' : 'b' } });
  h.apply({ type: 'job.register', job: web });
  h.drain();
  const snap = h.state.snapshot();
  const restored = ClusterState.restore(JSON.parse(JSON.stringify(snap)));
  t.same(restored.snapshot(), snap);
  for (let i = 1; i <= 3; i++) {
    t.same(restored.usage(nodeId(i)), h.state.usage(nodeId(i)));
    t.same(restored.allocationsOnNode(nodeId(i)).map((a) => a.id).sort(), h.state.allocationsOnNode(nodeId(i)).map((a) => a.id).sort());
  }
  t.equal(restored.index, h.state.index);
});
