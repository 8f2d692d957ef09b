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
  // Reasons count nodes, whatever the number of replicas left out: n2 fails the constraint, n1 is full.
  t.same(e.failedPlacements['w']!.reasons, { 'constraint node.labels.zone==a': 1, 'resources: cpu exhausted': 1 });
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

/** How many replicas of `jobName` run per value of `label` (nodes without it under "-"). */
function countBy(h: SchedulerHarness, jobName: string, label: (n: { labels: Record<string, string> }) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of running(h, jobName)) {
    const k = label(h.state.node(a.nodeId)!);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

t.test('spread as Swarm applies it: nested preferences, nodes without the label, groups that fill up', async (t) => {
  // Zone a has 1 node, zone b has 3 (two racks): bin-packing and anti-affinity alone would favour zone b.
  const h = harness(11);
  addNode(h, 1, { labels: { zone: 'a', rack: 'r1' } });
  addNode(h, 2, { labels: { zone: 'b', rack: 'r1' } });
  addNode(h, 3, { labels: { zone: 'b', rack: 'r2' } });
  addNode(h, 4, { labels: { zone: 'b', rack: 'r2' } });
  h.apply({ type: 'job.register', job: job('services:\n  s:\n    image: x\n    deploy: { replicas: 8, placement: { preferences: [{ spread: node.labels.zone }, { spread: node.labels.rack }] } }\n', 'nest') });
  h.drain();
  t.same(countBy(h, 'nest', (n) => n.labels['zone']!), { a: 4, b: 4 }, 'even across zones first');
  t.same(countBy(h, 'nest', (n) => `${n.labels['zone']}/${n.labels['rack']}`), { 'a/r1': 4, 'b/r1': 2, 'b/r2': 2 }, 'then across the racks of each zone');

  // Nodes without the label are one more group, as in Swarm.
  addNode(h, 5, { labels: {} });
  h.apply({ type: 'job.register', job: job('services:\n  s:\n    image: x\n    deploy: { replicas: 6, placement: { preferences: [{ spread: node.labels.zone }] } }\n', 'unlabelled') });
  h.drain();
  t.same(countBy(h, 'unlabelled', (n) => n.labels['zone'] ?? '-'), { a: 2, b: 2, '-': 2 });

  // A zone with room for only one replica takes one; the rest are spread over the others, and nothing is lost.
  const f = harness(12);
  addNode(f, 1, { cpu: 1000, labels: { zone: 'a' } });
  for (let i = 2; i <= 5; i++) addNode(f, i, { cpu: 8000, labels: { zone: i % 2 ? 'b' : 'c' } });
  const reg = f.apply({ type: 'job.register', job: job('services:\n  s:\n    image: x\n    deploy: { replicas: 9, resources: { reservations: { cpus: 1 } }, placement: { preferences: [{ spread: node.labels.zone }] } }\n', 'full') });
  f.drain();
  t.same(countBy(f, 'full', (n) => n.labels['zone']!), { a: 1, b: 4, c: 4 });
  t.same(f.state.evaluation(reg.evalIds[0]!)!.failedPlacements, {}, 'every replica placed');

  // Constraints first: a spread over zones the constraints exclude is a spread over the zones that remain.
  h.apply({ type: 'job.register', job: job('services:\n  s:\n    image: x\n    deploy: { replicas: 4, placement: { constraints: ["node.labels.zone!=a"], preferences: [{ spread: node.labels.rack }] } }\n', 'constrained') });
  h.drain();
  const racks = countBy(h, 'constrained', (n) => n.labels['rack'] ?? '-');
  t.same(Object.keys(racks).sort(), ['-', 'r1', 'r2'], 'over the racks of the nodes that qualify');
  t.same(Object.values(racks).sort(), [1, 1, 2], 'evenly');
  t.notOk(running(h, 'constrained').some((a) => h.state.node(a.nodeId)!.labels['zone'] === 'a'), 'never on the excluded zone');
});

t.test('host ports are a node resource: one holder per node, across jobs, freed by what the plan stops', async (t) => {
  const h = harness(21);
  addNode(h, 1);
  addNode(h, 2);
  const reg = h.apply({ type: 'job.register', job: job('services:\n  web:\n    image: x\n    ports: [{ target: 80, published: 8080, mode: host }]\n    deploy: { replicas: 3 }\n', 'web') });
  h.drain();
  const web = running(h, 'web');
  t.equal(web.length, 2, 'two nodes, one 8080 each');
  t.equal(new Set(web.map((a) => a.nodeId)).size, 2);
  t.same(web[0]!.ports, ['8080/tcp']);
  t.same(h.state.evaluation(reg.evalIds[0]!)!.failedPlacements['web'], { missing: 1, reasons: { 'port 8080/tcp in use': 2 } }, 'reasons count nodes');
  // Another job's replica wanting the same port finds no node; one on another port or protocol fits.
  h.apply({ type: 'job.register', job: job('services:\n  other:\n    image: x\n    ports: [{ target: 80, published: 8080, mode: host }, { target: 9000, published: 9000, protocol: udp, mode: host }]\n', 'other') });
  h.apply({ type: 'job.register', job: job('services:\n  udp:\n    image: x\n    ports: [{ target: 80, published: 8080, protocol: udp, mode: host }]\n    deploy: { replicas: 2 }\n', 'udp') });
  h.drain();
  t.equal(running(h, 'other').length, 0);
  t.equal(running(h, 'udp').length, 2, '8080/udp is another port');
  // A new version of the job replaces its replicas in place: the stopped ones free the port for their successors.
  h.apply({ type: 'job.register', job: job('services:\n  web:\n    image: y\n    ports: [{ target: 80, published: 8080, mode: host }]\n    deploy: { replicas: 2 }\n', 'web') });
  h.drain();
  t.equal(running(h, 'web').length, 2);
  t.ok(running(h, 'web').every((a) => a.jobVersion === 2), 'both replaced');
  t.equal(h.rejected.length, 0, 'no plan was rejected');
  // Scaling web down frees a node's port: the other job takes it.
  h.apply({ type: 'job.scale', name: 'web', service: 'web', replicas: 1 });
  h.drain();
  h.apply({ type: 'job.register', job: job('services:\n  other:\n    image: x\n    ports: [{ target: 80, published: 8080, mode: host }]\n', 'other') });
  h.drain();
  t.equal(running(h, 'other').length, 1);
  t.not(running(h, 'other')[0]!.nodeId, running(h, 'web')[0]!.nodeId);
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
  port: fc.option(fc.constantFrom(8080, 8081), { nil: undefined }),
});

type ServiceShape = typeof serviceArb extends fc.Arbitrary<infer T> ? T : never;

function makeJob(name: string, services: ServiceShape[]): Job {
  const yaml = ['services:'];
  services.forEach((s, i) => {
    const constraints = [s.zone ? `"node.labels.zone==${s.zone}"` : '', s.notZone && s.notZone !== s.zone ? `"node.labels.zone!=${s.notZone}"` : ''].filter(Boolean);
    yaml.push(`  s${i}:`);
    yaml.push(s.driver === 'docker' ? '    image: x' : '    command: run\n    x-shoal: { driver: process }');
    if (s.port !== undefined) yaml.push(`    ports: [{ target: 80, published: ${s.port}, mode: host }]`);
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
    const ports = holding.flatMap((a) => a.ports ?? []);
    if (new Set(ports).size !== ports.length) return `node ${n.name} has a host port held twice: ${ports.join(', ')}`;
    for (const a of holding) for (const port of a.ports ?? []) if (s.portHolder(n.id, port) !== a.id) return `port index of ${n.name} does not name ${a.id} for ${port}`;
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

/** Replicas of `jobName` per zone, over every zone that has a ready node (a zone with none counts 0). */
function perZone(h: SchedulerHarness, jobName: string): number[] {
  const zones = new Set(h.state.nodes().filter((n) => n.status === 'ready').map((n) => n.labels['zone']!));
  const counts = countBy(h, jobName, (n) => n.labels['zone']!);
  return [...zones].map((z) => counts[z] ?? 0);
}

t.test('property: with room everywhere, a spread service is even across the label\'s values, also after a node dies', async (t) => {
  fc.assert(fc.property(
    fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 4 }),
    fc.integer({ min: 1, max: 30 }),
    fc.integer({ min: 0, max: 400 }),
    fc.integer({ min: 1, max: 1000 }),
    (nodesPerZone, replicas, cpu, seed) => {
      const h = harness(seed);
      let i = 0;
      // Nodes of different sizes, so that bin-packing alone would crowd the biggest ones.
      nodesPerZone.forEach((count, z) => {
        for (let k = 0; k < count; k++) addNode(h, ++i, { cpu: 16_000 * (1 + (i % 3)), mem: 64 * GiB, labels: { zone: `z${z}` } });
      });
      h.apply({ type: 'job.register', job: job(`services:\n  s:\n    image: x\n    deploy: { replicas: ${replicas}, resources: { reservations: { cpus: ${cpu / 1000} } }, placement: { preferences: [{ spread: node.labels.zone }] } }\n`, 'sp') });
      h.drain();
      const check = (when: string) => {
        const counts = perZone(h, 'sp');
        const placed = counts.reduce((a, b) => a + b, 0);
        if (placed !== replicas) throw new Error(`${when}: ${placed} of ${replicas} placed`);
        if (Math.max(...counts) - Math.min(...counts) > 1) throw new Error(`${when}: uneven spread ${JSON.stringify(counts)}`);
      };
      check('placed');
      // A node of a zone that has another node dies: its replicas move, and the spread stays even.
      const zoneWithTwo = nodesPerZone.findIndex((c) => c >= 2);
      if (zoneWithTwo >= 0) {
        const victim = h.state.nodes().find((n) => n.labels['zone'] === `z${zoneWithTwo}`)!;
        h.apply({ type: 'node.status', nodeId: victim.id, status: 'down' });
        h.drain();
        check(`after ${victim.name} died`);
      }
      return true;
    },
  ), { numRuns: 150 });
  t.pass();
});

t.test('property: the same state, evaluation and seed always give the same plan', async (t) => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 10 }),
    fc.array(serviceArb, { minLength: 1, maxLength: 3 }),
    fc.integer({ min: 1, max: 1000 }),
    (nodes, services, seed) => {
      const build = () => {
        const h = harness(7);
        for (let i = 1; i <= nodes; i++) addNode(h, i, { cpu: 2000 + (i % 3) * 1000, mem: (2 + (i % 4)) * GiB, labels: { zone: ['a', 'b', 'c'][i % 3]! } });
        const reg = h.state.apply(h.state.index + 1, { type: 'job.register', job: makeJob('d', services) });
        return { s: h.state, e: h.state.evaluation(reg.evalIds[0]!)! };
      };
      const a = build();
      const b = build();
      const pa = JSON.stringify(computePlan(a.s, a.e, Random.fromSeed(seed)));
      const pb = JSON.stringify(computePlan(b.s, b.e, Random.fromSeed(seed)));
      if (pa !== pb) throw new Error('two identical states planned differently');
      return true;
    },
  ), { numRuns: 150 });
  t.pass();
});
