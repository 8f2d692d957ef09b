import t from 'tap';
import fc from 'fast-check';
import { computePlan, satisfies, SchedulerHarness } from '../../src/scheduler/index.js';
import { ClusterState, holdsResources } from '../../src/state/index.js';
import { Random } from '../../src/lib/random.js';
import type { Job, ServiceSpec } from '../../src/jobspec/types.js';
import { addNode, harness, job, nodeId, running, GiB, MiB } from './helpers.js';

t.test('constraints, drivers and resources decide where replicas go', async (t) => {
  const h = harness();
  addNode(h, 1, { labels: { zone: 'a' } });
  addNode(h, 2, { labels: { zone: 'b' } });
  addNode(h, 3, { labels: { zone: 'a' }, drivers: ['process'] });
  h.apply({ type: 'job.register', job: job('services:\n  w:\n    image: x\n    deploy: { replicas: 4, placement: { constraints: ["node.labels.zone==a"] } }\n', 'c') });
  h.drain();
  const allocs = running(h, 'c');
  t.equal(allocs.length, 4);
  t.ok(allocs.every((a) => a.nodeId === nodeId(1)), 'only n1 is in zone a and has docker');
});

t.test('a placement that cannot be made is reported with the reasons', async (t) => {
  const h = harness();
  addNode(h, 1, { cpu: 1000, labels: { zone: 'a' } });
  addNode(h, 2, { cpu: 1000, labels: { zone: 'b' } });
  const reg = h.apply({ type: 'job.register', job: job('services:\n  w:\n    image: x\n    deploy: { replicas: 3, resources: { reservations: { cpus: 1 } }, placement: { constraints: ["node.labels.zone==a"] } }\n', 'f') });
  h.drain();
  t.equal(running(h, 'f').length, 1);
  const e = h.state.evaluation(reg.evalIds[0]!)!;
  t.equal(e.failedPlacements['w']!.missing, 2);
  t.match(e.failedPlacements['w']!.reasons, { 'constraint node.labels.zone==a': 1, 'resources: cpu exhausted': 2 });
});

t.test('max_replicas_per_node and spread', async (t) => {
  const h = harness(5);
  for (let i = 1; i <= 6; i++) addNode(h, i, { labels: { rack: `r${i % 3}` } });
  h.apply({ type: 'job.register', job: job('services:\n  w:\n    image: x\n    deploy: { replicas: 6, placement: { max_replicas_per_node: 1 } }\n', 'm') });
  h.apply({ type: 'job.register', job: job('services:\n  s:\n    image: x\n    deploy: { replicas: 9, placement: { preferences: [{ spread: node.labels.rack }] } }\n', 's') });
  h.drain();
  const m = running(h, 'm');
  t.equal(new Set(m.map((a) => a.nodeId)).size, 6, 'one replica per node');
  const byRack = new Map<string, number>();
  for (const a of running(h, 's')) {
    const rack = h.state.node(a.nodeId)!.labels['rack']!;
    byRack.set(rack, (byRack.get(rack) ?? 0) + 1);
  }
  t.same([...byRack.values()].sort(), [3, 3, 3], 'spread evenly over the three racks');
  h.apply({ type: 'job.scale', name: 'm', service: 'w', replicas: 7 });
  h.drain();
  t.equal(running(h, 'm').length, 6, 'a seventh replica has nowhere to go');
});

t.test('global services run once on every eligible node, following nodes as they come and go', async (t) => {
  const h = harness();
  addNode(h, 1);
  addNode(h, 2, { labels: { gpu: 'no' } });
  h.apply({ type: 'job.register', job: job('services:\n  agent:\n    image: x\n    deploy: { mode: global, placement: { constraints: ["node.labels.gpu!=no"] } }\n', 'g') });
  h.drain();
  t.same(running(h, 'g').map((a) => a.nodeId), [nodeId(1)]);
  addNode(h, 3);
  h.drain();
  t.same(running(h, 'g').map((a) => a.nodeId).sort(), [nodeId(1), nodeId(3)]);
  h.apply({ type: 'node.drain', nodeId: nodeId(3), draining: true });
  h.drain();
  t.same(running(h, 'g').map((a) => a.nodeId), [nodeId(1)]);
});

t.test('a dead node: its allocations are lost and rescheduled; when it returns nothing runs twice', async (t) => {
  const h = harness();
  for (let i = 1; i <= 3; i++) addNode(h, i);
  h.apply({ type: 'job.register', job: job('services:\n  w:\n    image: x\n    deploy: { replicas: 6 }\n', 'd') });
  h.drain();
  const onN1 = running(h, 'd').filter((a) => a.nodeId === nodeId(1));
  h.apply({ type: 'node.status', nodeId: nodeId(1), status: 'down' });
  h.drain();
  const after = running(h, 'd');
  t.equal(after.length, 6);
  t.ok(after.every((a) => a.nodeId !== nodeId(1)));
  for (const a of onN1) {
    const old = h.state.allocation(a.id)!;
    t.equal(old.desiredStatus, 'stop');
    t.equal(old.clientStatus, 'lost');
  }
  h.apply({ type: 'node.status', nodeId: nodeId(1), status: 'ready' });
  h.drain();
  t.equal(running(h, 'd').length, 6, 'still six: the returning node\'s old allocations stay stopped');
  t.equal(new Set(running(h, 'd').map((a) => a.slot)).size, 6, 'every slot once');
});

t.test('draining moves work away; scaling down stops the highest slots; stopping a job stops all', async (t) => {
  const h = harness();
  for (let i = 1; i <= 2; i++) addNode(h, i);
  h.apply({ type: 'job.register', job: job('services:\n  w:\n    image: x\n    deploy: { replicas: 4 }\n', 'x') });
  h.drain();
  h.apply({ type: 'node.drain', nodeId: nodeId(1), draining: true });
  h.drain();
  t.ok(running(h, 'x').every((a) => a.nodeId === nodeId(2)));
  h.apply({ type: 'job.scale', name: 'x', service: 'w', replicas: 2 });
  h.drain();
  t.same(running(h, 'x').map((a) => a.slot).sort(), [0, 1]);
  h.apply({ type: 'job.stop', name: 'x' });
  h.drain();
  t.equal(running(h, 'x').length, 0);
});

t.test('batch jobs: completed tasks are done; failed ones are retried', async (t) => {
  const h = harness();
  addNode(h, 1);
  h.apply({ type: 'job.register', job: job('x-shoal: { type: batch }\nservices:\n  b:\n    image: x\n    deploy: { replicas: 2 }\n', 'b') });
  h.drain();
  const [a, b] = running(h, 'b');
  h.apply({ type: 'alloc.update', nodeId: nodeId(1), updates: [
    { allocId: a!.id, clientStatus: 'complete', clientMessage: 'exit 0', restarts: 0, driverHandle: '' },
    { allocId: b!.id, clientStatus: 'failed', clientMessage: 'exit 1', restarts: 0, driverHandle: '' },
  ] });
  h.drain();
  const live = running(h, 'b');
  t.ok(live.some((x) => x.id === a!.id && x.clientStatus === 'complete'), 'the completed one is kept as done');
  t.ok(live.some((x) => x.slot === b!.slot && x.id !== b!.id && x.clientStatus === 'pending'), 'the failed one was replaced');
});

t.test('the same state and seed give the same plan', async (t) => {
  const build = () => {
    const s = new ClusterState();
    let i = 0;
    for (let n = 1; n <= 20; n++) s.apply(++i, { type: 'node.upsert', node: { id: nodeId(n), name: `n${n}`, address: '', labels: { zone: `z${n % 3}` }, capacity: { cpuMillicores: 4000, memoryBytes: 8 * GiB }, drivers: ['docker'], roles: [] } });
    const reg = s.apply(i + 1, { type: 'job.register', job: job('services:\n  w:\n    image: x\n    deploy: { replicas: 30, resources: { reservations: { cpus: 0.5, memory: 256M } }, placement: { preferences: [{ spread: node.labels.zone }] } }\n', 'det') });
    return { s, e: s.evaluation(reg.evalIds[0]!)! };
  };
  const a = build();
  const b = build();
  t.same(computePlan(a.s, a.e, Random.fromSeed(9)), computePlan(b.s, b.e, Random.fromSeed(9)));
  t.not(JSON.stringify(computePlan(a.s, a.e, Random.fromSeed(9))), JSON.stringify(computePlan(a.s, a.e, Random.fromSeed(10))));
});

// --- Properties over random clusters, jobs and node events -------------------------------------------------------

const serviceArb = fc.record({
  replicas: fc.integer({ min: 0, max: 12 }),
  global: fc.boolean(),
  cpu: fc.integer({ min: 0, max: 3000 }),
  memMiB: fc.integer({ min: 0, max: 4096 }),
  zone: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: undefined }),
  notZone: fc.option(fc.constantFrom('a', 'b'), { nil: undefined }),
  maxPerNode: fc.integer({ min: 0, max: 3 }),
  spread: fc.boolean(),
  driver: fc.constantFrom('docker', 'process'),
});

type ServiceShape = typeof serviceArb extends fc.Arbitrary<infer T> ? T : never;

function makeJob(name: string, services: ServiceShape[]): Job {
  const yaml = ['services:'];
  services.forEach((s, i) => {
    const constraints = [s.zone ? `"node.labels.zone==${s.zone}"` : '', s.notZone && s.notZone !== s.zone ? `"node.labels.zone!=${s.notZone}"` : ''].filter(Boolean);
    yaml.push(`  s${i}:`);
    yaml.push(s.driver === 'docker' ? '    image: x' : '    command: run\n    x-shoal: { driver: process }');
    yaml.push('    deploy:');
    yaml.push(s.global ? '      mode: global' : `      replicas: ${s.replicas}`);
    yaml.push(`      resources: { reservations: { cpus: ${s.cpu / 1000}, memory: ${s.memMiB}M } }`);
    yaml.push(`      placement: { constraints: [${constraints.join(', ')}]${s.maxPerNode > 0 && !s.global ? `, max_replicas_per_node: ${s.maxPerNode}` : ''}${s.spread ? ', preferences: [{ spread: node.labels.zone }]' : ''} }`);
  });
  return job(yaml.join('\n'), name);
}

function checkInvariants(h: SchedulerHarness): string | undefined {
  const s = h.state;
  // The harness applies each plan on the state it was computed from: a rejection can only be a scheduler bug.
  if (h.rejected.length > 0) return `plan rejected: ${h.rejected[0]!.message}`;
  for (const n of s.nodes()) {
    const holding = s.allocationsOnNode(n.id).filter(holdsResources);
    const cpu = holding.reduce((x, a) => x + a.resources.cpuMillicores, 0);
    const mem = holding.reduce((x, a) => x + a.resources.memoryBytes, 0);
    if (cpu > n.capacity.cpuMillicores || mem > n.capacity.memoryBytes) return `node ${n.name} over-committed: ${cpu}m/${mem}B`;
    if (cpu !== s.usage(n.id).cpuMillicores || mem !== s.usage(n.id).memoryBytes) return `usage index of ${n.name} is out of date`;
  }
  for (const rec of s.jobs()) {
    for (const spec of rec.job.services as ServiceSpec[]) {
      const live = s.allocationsOfJob(rec.job.name).filter((a) => a.service === spec.name && holdsResources(a));
      for (const a of live) {
        const node = s.node(a.nodeId)!;
        if (node.status === 'ready' && !spec.deploy.placement.constraints.every((c) => satisfies(node, c))) return `${a.id} on ${node.name} breaks a constraint`;
        if (!node.drivers.includes(spec.driver)) return `${a.id} on ${node.name} lacks driver ${spec.driver}`;
      }
      const onReady = live.filter((a) => s.node(a.nodeId)!.status === 'ready');
      if (spec.deploy.mode === 'replicated') {
        if (onReady.length > spec.deploy.replicas) return `${rec.job.name}/${spec.name} runs ${onReady.length} > ${spec.deploy.replicas}`;
        if (new Set(onReady.map((a) => a.slot)).size !== onReady.length) return `${rec.job.name}/${spec.name} runs a slot twice`;
        const perNode = new Map<string, number>();
        for (const a of onReady) perNode.set(a.nodeId, (perNode.get(a.nodeId) ?? 0) + 1);
        if (spec.deploy.placement.maxReplicasPerNode > 0 && [...perNode.values()].some((c) => c > spec.deploy.placement.maxReplicasPerNode)) return `${rec.job.name}/${spec.name} breaks max_replicas_per_node`;
      } else if (new Set(onReady.map((a) => a.nodeId)).size !== onReady.length) return `global ${rec.job.name}/${spec.name} runs twice on one node`;
    }
  }
  return undefined;
}

t.test('property: never over-commits, respects every constraint and limit, under node failures and drains', async (t) => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 12 }),
    fc.array(fc.array(serviceArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 4 }),
    fc.array(fc.record({ kind: fc.constantFrom('down', 'up', 'drain', 'undrain', 'scale'), node: fc.integer({ min: 1, max: 12 }), n: fc.integer({ min: 0, max: 10 }) }), { maxLength: 8 }),
    fc.integer({ min: 1, max: 1000 }),
    (nodes, jobs, events, seed) => {
      const h = harness(seed);
      for (let i = 1; i <= nodes; i++) addNode(h, i, { cpu: 2000 + (i % 3) * 1000, mem: (2 + (i % 4)) * GiB, labels: { zone: ['a', 'b', 'c'][i % 3]! }, drivers: i % 4 === 0 ? ['process'] : ['docker', 'process'] });
      jobs.forEach((services, j) => h.apply({ type: 'job.register', job: makeJob(`j${j}`, services) }));
      h.drain(500);
      let problem = checkInvariants(h);
      for (const e of events) {
        if (problem) break;
        const id = nodeId(((e.node - 1) % nodes) + 1);
        if (e.kind === 'down') h.apply({ type: 'node.status', nodeId: id, status: 'down' });
        if (e.kind === 'up') h.apply({ type: 'node.status', nodeId: id, status: 'ready' });
        if (e.kind === 'drain') h.apply({ type: 'node.drain', nodeId: id, draining: true });
        if (e.kind === 'undrain') {
          h.apply({ type: 'node.drain', nodeId: id, draining: false });
          h.apply({ type: 'node.eligibility', nodeId: id, eligible: true });
        }
        if (e.kind === 'scale') {
          const rec = h.state.jobs()[e.n % h.state.jobs().length]!;
          const svc = rec.job.services.find((s) => s.deploy.mode === 'replicated');
          if (svc) h.apply({ type: 'job.scale', name: rec.job.name, service: svc.name, replicas: e.n });
        }
        h.drain(500);
        problem = checkInvariants(h);
      }
      if (problem) throw new Error(problem);
      return true;
    },
  ), { numRuns: 150 });
  t.pass();
});

t.test('property: whatever is not placed is reported as missing, never silently dropped', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.array(serviceArb, { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 100 }), (nodes, services, seed) => {
    const h = harness(seed);
    for (let i = 1; i <= nodes; i++) addNode(h, i, { cpu: 3000, mem: 4 * GiB, labels: { zone: ['a', 'b', 'c'][i % 3]! } });
    const reg = h.apply({ type: 'job.register', job: makeJob('p', services.map((s) => ({ ...s, global: false }))) });
    h.drain();
    const e = h.state.evaluation(reg.evalIds[0]!)!;
    return h.state.job('p')!.job.services.every((spec) => running(h, 'p', spec.name).length + (e.failedPlacements[spec.name]?.missing ?? 0) === spec.deploy.replicas);
  }), { numRuns: 200 });
  t.pass();
  t.equal(MiB, 1024 * 1024);
});
