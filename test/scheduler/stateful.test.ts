/**
 * Placement of stateful services (x-shoal.state, issue 12): one slot per replica of each partition, never two live
 * replicas of a partition on one node, a spread across a failure-domain label per partition, `bootstrap` exactly on a
 * partition's first placement, and replicas that stay through new job versions. Table tests, then properties over
 * seeded random clusters (src/lib/random.ts), each run printing its seed on failure.
 */
import t from 'tap';
import { SAME_PARTITION } from '../../src/scheduler/scheduler.js';
import type { SchedulerHarness } from '../../src/scheduler/index.js';
import { Random } from '../../src/lib/random.js';
import { holdsResources, type Allocation } from '../../src/state/index.js';
import { addNode, harness, job, nodeId, running } from './helpers.js';

/** A job of one replicated store `db` (no task), with `state` inside x-shoal.state and `extra` lines of the service. */
function store(state: string, extra: string[] = [], name = 'kv'): ReturnType<typeof job> {
  return job(['services:', '  db:', `    x-shoal: { state: { ${state} } }`, ...extra.map((l) => `    ${l}`), ''].join('\n'), name);
}

/** Live allocations (desired run, not terminal) of the job, by partition. */
function byPartition(h: SchedulerHarness, jobName: string): Map<number, Allocation[]> {
  const out = new Map<number, Allocation[]>();
  for (const a of h.state.allocationsOfJob(jobName)) {
    if (!holdsResources(a)) continue;
    const list = out.get(a.partition!) ?? [];
    list.push(a);
    out.set(a.partition!, list);
  }
  return out;
}

function registerEval(h: SchedulerHarness, j: ReturnType<typeof job>) {
  const reg = h.apply({ type: 'job.register', job: j });
  if (!reg.ok) throw new Error(reg.message);
  h.drain();
  return h.state.evaluation(reg.evalIds[0]!)!;
}

t.test('a store of 4 partitions × 3 replicas: partitions by slot, distinct nodes, one bootstrap list per partition, no reservation, no driver needed', async (t) => {
  const h = harness(3);
  for (let i = 1; i <= 5; i++) addNode(h, i, { drivers: i === 5 ? [] : ['docker'] });
  const e = registerEval(h, store('partitions: 4, replicas: 3'));
  t.same(e.failedPlacements, {});
  const live = running(h, 'kv');
  t.equal(live.length, 12);
  for (const a of live) t.equal(a.partition, Math.floor(a.slot / 3), `slot ${a.slot} is a replica of partition ${Math.floor(a.slot / 3)}`);
  t.same([...new Set(live.map((a) => a.slot))].sort((a, b) => a - b), [...Array(12).keys()]);
  for (const [p, list] of byPartition(h, 'kv')) {
    const nodes = list.map((a) => a.nodeId).sort();
    t.equal(new Set(nodes).size, 3, `partition ${p} on three distinct nodes`);
    for (const a of list) t.same(a.bootstrap, nodes, `partition ${p}: every replica bootstraps with the same members`);
    t.ok(list.every((a) => a.previousAllocId === '' && a.ports === undefined));
  }
  t.ok(live.every((a) => a.resources.cpuMillicores === 0 && a.resources.memoryBytes === 0), 'a replicated store reserves nothing');
  for (let i = 1; i <= 5; i++) t.same(h.state.usage(nodeId(i)), { cpuMillicores: 0, memoryBytes: 0 });
  t.ok(live.some((a) => a.nodeId === nodeId(5)), 'a node without drivers hosts replicas: a store runs no task');
  // The anti-affinity spreads 12 replicas over 5 nodes, rather than packing them.
  const perNode = new Map<string, number>();
  for (const a of live) perNode.set(a.nodeId, (perNode.get(a.nodeId) ?? 0) + 1);
  t.ok(Math.max(...perNode.values()) <= 4, `spread over the nodes: ${JSON.stringify([...perNode.values()])}`);
});

t.test('a store with reservations reserves them; its limits alone reserve nothing', async (t) => {
  const h = harness();
  addNode(h, 1);
  addNode(h, 2);
  addNode(h, 3);
  registerEval(h, store('partitions: 1, replicas: 3', ['deploy: { resources: { reservations: { cpus: "0.5", memory: 64M } } }'], 'res'));
  registerEval(h, store('partitions: 1, replicas: 3', ['deploy: { resources: { limits: { cpus: 2, memory: 1G } } }'], 'lim'));
  t.ok(running(h, 'res').every((a) => a.resources.cpuMillicores === 500 && a.resources.memoryBytes === 64 * 1024 ** 2));
  t.ok(running(h, 'lim').every((a) => a.resources.cpuMillicores === 0 && a.resources.memoryBytes === 0));
  t.same(h.state.usage(nodeId(1)), { cpuMillicores: 500, memoryBytes: 64 * 1024 ** 2 });
});

t.test('too few nodes: each partition is placed on every node there is, the rest reported missing; later nodes add replicas without bootstrap', async (t) => {
  const h = harness(7);
  for (let i = 1; i <= 3; i++) addNode(h, i);
  const e = registerEval(h, store('partitions: 2, replicas: 5'));
  const parts = byPartition(h, 'kv');
  t.same([...parts.keys()].sort(), [0, 1]);
  for (const [p, list] of parts) {
    t.equal(new Set(list.map((a) => a.nodeId)).size, 3, `partition ${p} on all three nodes`);
    t.ok(list.every((a) => a.bootstrap?.length === 3), `partition ${p} bootstraps with the three`);
  }
  t.equal(e.failedPlacements['db']!.missing, 4);
  // Reasons count nodes: each of the three was passed over because it holds a replica of the partition.
  t.same(e.failedPlacements['db']!.reasons, { [SAME_PARTITION]: 3 });
  const first = new Set(running(h, 'kv').map((a) => a.id));
  addNode(h, 4);
  addNode(h, 5);
  h.drain();
  const later = running(h, 'kv').filter((a) => !first.has(a.id));
  t.equal(later.length, 4, 'the missing replicas are placed on the new nodes');
  t.ok(later.every((a) => a.bootstrap === undefined && a.previousAllocId === ''), 'they join the groups: no bootstrap');
  t.ok(later.every((a) => a.nodeId === nodeId(4) || a.nodeId === nodeId(5)));
  for (const [p, list] of byPartition(h, 'kv')) t.equal(new Set(list.map((a) => a.nodeId)).size, 5, `partition ${p} on five distinct nodes`);
});

t.test('with no node at all, a partition placed later still bootstraps: it never had a replica', async (t) => {
  const h = harness();
  const e = registerEval(h, store('partitions: 2, replicas: 1'));
  t.equal(e.failedPlacements['db']!.missing, 2);
  addNode(h, 1);
  h.drain();
  t.ok(running(h, 'kv').every((a) => a.bootstrap !== undefined && a.bootstrap.length === 1 && a.bootstrap[0] === nodeId(1)));
});

t.test('a node goes down: its replicas are replaced in their partitions, on other nodes, with previousAllocId and no bootstrap', async (t) => {
  const h = harness(11);
  for (let i = 1; i <= 6; i++) addNode(h, i);
  registerEval(h, store('partitions: 6, replicas: 3'));
  const victim = nodeId(1);
  const lost = running(h, 'kv').filter((a) => a.nodeId === victim);
  t.ok(lost.length > 0);
  h.apply({ type: 'node.status', nodeId: victim, status: 'down' });
  h.drain();
  for (const old of lost) {
    t.equal(h.state.allocation(old.id)!.clientStatus, 'lost');
    const next = running(h, 'kv').find((a) => a.previousAllocId === old.id)!;
    t.ok(next, `a replacement for ${old.id}`);
    t.equal(next.slot, old.slot);
    t.equal(next.partition, old.partition);
    t.equal(next.bootstrap, undefined);
    t.not(next.nodeId, victim);
  }
  for (const [p, list] of byPartition(h, 'kv')) {
    t.equal(list.length, 3);
    t.equal(new Set(list.map((a) => a.nodeId)).size, 3, `partition ${p} still on distinct nodes`);
  }
});

t.test('a drain moves replicas the same way', async (t) => {
  const h = harness(12);
  for (let i = 1; i <= 4; i++) addNode(h, i);
  registerEval(h, store('partitions: 4, replicas: 3'));
  const moved = running(h, 'kv').filter((a) => a.nodeId === nodeId(2));
  h.apply({ type: 'node.drain', nodeId: nodeId(2), draining: true });
  h.drain();
  t.ok(moved.length > 0);
  for (const old of moved) {
    t.equal(h.state.allocation(old.id)!.desiredStatus, 'stop');
    t.match(h.state.allocation(old.id)!.desiredReason, /draining/);
    const next = running(h, 'kv').find((a) => a.previousAllocId === old.id)!;
    t.equal(next.partition, old.partition);
    t.equal(next.bootstrap, undefined);
  }
  t.ok(running(h, 'kv').every((a) => a.nodeId !== nodeId(2)));
  for (const [p, list] of byPartition(h, 'kv')) t.equal(new Set(list.map((a) => a.nodeId)).size, 3, `partition ${p} on the three nodes left`);
});

t.test('too few nodes after a failure: the partition runs degraded rather than doubling up, and is completed later without bootstrap', async (t) => {
  const h = harness(5);
  for (let i = 1; i <= 3; i++) addNode(h, i);
  registerEval(h, store('partitions: 3, replicas: 3'));
  h.apply({ type: 'node.status', nodeId: nodeId(3), status: 'down' });
  h.drain();
  for (const [p, list] of byPartition(h, 'kv')) t.equal(list.length, 2, `partition ${p} has two replicas left`);
  const e = h.state.evaluationsOfJob('kv').find((x) => x.trigger === 'node-drain' && x.status === 'complete')!;
  t.equal(e.failedPlacements['db']!.missing, 3);
  addNode(h, 4);
  h.drain();
  for (const [p, list] of byPartition(h, 'kv')) {
    t.equal(new Set(list.map((a) => a.nodeId)).size, 3, `partition ${p} complete again`);
    t.ok(list.filter((a) => a.nodeId === nodeId(4)).every((a) => a.bootstrap === undefined), 'the new replica joins');
  }
});

t.test('a partition that lost every replica is never bootstrapped again, even once its replacement lost its previousAllocId', async (t) => {
  const h = harness(9);
  addNode(h, 1);
  registerEval(h, store('partitions: 2, replicas: 1'));
  t.ok(running(h, 'kv').every((a) => a.bootstrap !== undefined));
  h.apply({ type: 'node.status', nodeId: nodeId(1), status: 'down' });
  h.drain();
  t.equal(running(h, 'kv').length, 0, 'nowhere to go');
  t.ok(h.state.partitionBootstrapped('kv', 'db', 0) && h.state.partitionBootstrapped('kv', 'db', 1));
  addNode(h, 2);
  h.drain();
  const now = running(h, 'kv');
  t.equal(now.length, 2);
  // The plan that stopped the lost replicas placed nothing, so these carry no previousAllocId: the state remembers.
  t.ok(now.every((a) => a.previousAllocId === '' && a.bootstrap === undefined), 'placed to join a group, never to create it empty');
});

t.test('a new job version keeps stateful replicas (their data is on their nodes) and replaces stateless tasks', async (t) => {
  const h = harness(4);
  for (let i = 1; i <= 3; i++) addNode(h, i);
  const v1 = job('services:\n  db:\n    x-shoal: { state: { partitions: 2, replicas: 3 } }\n  web:\n    image: nginx:1\n', 'mix');
  registerEval(h, v1);
  const before = running(h, 'mix');
  const v2 = job('services:\n  db:\n    x-shoal: { state: { partitions: 2, replicas: 3, collections: [{ name: carts, kind: dictionary }] } }\n    deploy: { resources: { reservations: { memory: 16M } } }\n  web:\n    image: nginx:2\n', 'mix');
  registerEval(h, v2);
  t.equal(h.state.job('mix')!.version, 2);
  t.ok(h.state.job('mix')!.serviceVersions['db'] === 2, 'db changed in version 2');
  const after = running(h, 'mix');
  t.same(after.filter((a) => a.service === 'db').map((a) => a.id).sort(), before.filter((a) => a.service === 'db').map((a) => a.id).sort(), 'every replica kept');
  t.ok(after.filter((a) => a.service === 'db').every((a) => a.jobVersion === 1));
  const web = after.filter((a) => a.service === 'web');
  t.equal(web.length, 1);
  t.not(web[0]!.id, before.find((a) => a.service === 'web')!.id, 'the stateless task was replaced');
});

t.test('a failed replica is replaced in its partition, possibly on the same node, with no bootstrap', async (t) => {
  const h = harness(2);
  for (let i = 1; i <= 3; i++) addNode(h, i);
  registerEval(h, store('partitions: 1, replicas: 3'));
  const [a] = running(h, 'kv');
  h.apply({ type: 'alloc.update', nodeId: a!.nodeId, updates: [{ allocId: a!.id, clientStatus: 'failed', clientMessage: 'cannot host', restarts: 0, driverHandle: '' }] });
  h.drain();
  const next = running(h, 'kv').find((x) => x.previousAllocId === a!.id)!;
  t.equal(next.partition, 0);
  t.equal(next.bootstrap, undefined);
  t.equal(next.reschedules, 1);
  t.equal(new Set(byPartition(h, 'kv').get(0)!.map((x) => x.nodeId)).size, 3);
});

t.test('spread per partition: each partition covers the label\'s values first, then falls back when they have no room', async (t) => {
  const h = harness(21);
  // Zone a has four nodes, b and c one each, and one node has no zone (its value is "").
  const zones = ['a', 'a', 'a', 'a', 'b', 'c', undefined];
  zones.forEach((z, i) => addNode(h, i + 1, { labels: z ? { zone: z } : {} }));
  registerEval(h, store('partitions: 8, replicas: 3, spread: zone'));
  for (const [p, list] of byPartition(h, 'kv')) {
    const values = new Set(list.map((a) => h.state.node(a.nodeId)!.labels['zone'] ?? ''));
    t.equal(values.size, 3, `partition ${p} spans three failure domains`);
  }
  // Only zone a has room: the replicas fall back to it, still on distinct nodes.
  const h2 = harness(22);
  zones.forEach((z, i) => addNode(h2, i + 1, { labels: z ? { zone: z } : {}, cpu: z === 'a' ? 4000 : 100 }));
  const e = registerEval(h2, store('partitions: 2, replicas: 3, spread: zone', ['deploy: { resources: { reservations: { cpus: "0.5" } } }']));
  t.same(e.failedPlacements, {});
  for (const [p, list] of byPartition(h2, 'kv')) {
    t.equal(list.length, 3);
    t.equal(new Set(list.map((a) => a.nodeId)).size, 3, `partition ${p} on distinct nodes`);
    t.ok(list.every((a) => h2.state.node(a.nodeId)!.labels['zone'] === 'a'), `partition ${p} fell back to the only zone with room`);
  }
});

t.test('deploy.placement.spread keeps working beside the per-partition spread', async (t) => {
  const h = harness(8);
  for (let i = 1; i <= 6; i++) addNode(h, i, { labels: { rack: `r${i % 2}`, zone: `z${i % 3}` } });
  registerEval(h, store('partitions: 4, replicas: 3, spread: zone', ['deploy: { placement: { preferences: [{ spread: node.labels.rack }] } }']));
  const perRack = new Map<string, number>();
  for (const a of running(h, 'kv')) perRack.set(h.state.node(a.nodeId)!.labels['rack']!, (perRack.get(h.state.node(a.nodeId)!.labels['rack']!) ?? 0) + 1);
  t.same([...perRack.values()], [6, 6], 'even over the racks');
  for (const [p, list] of byPartition(h, 'kv')) t.equal(new Set(list.map((a) => h.state.node(a.nodeId)!.labels['zone'])).size, 3, `partition ${p} over three zones`);
});

// --- properties over seeded random clusters ------------------------------------------------------------------------

/** Every invariant of stateful placement that holds at any time, or the first one broken. */
function violation(h: SchedulerHarness, jobName: string, replicas: number): string | undefined {
  const all = h.state.allocationsOfJob(jobName);
  for (const a of all) {
    if (a.partition !== Math.floor(a.slot / replicas)) return `allocation ${a.id} of slot ${a.slot} has partition ${a.partition}`;
  }
  for (const [p, list] of byPartition(h, jobName)) {
    if (new Set(list.map((a) => a.nodeId)).size !== list.length) return `partition ${p} has two live replicas on one node`;
    if (list.length > replicas) return `partition ${p} has ${list.length} live replicas`;
  }
  // Bootstrap: set on one placement per partition only (one create index), the same sorted list on each, naming
  // exactly the nodes of that placement.
  const boots = new Map<number, Allocation[]>();
  for (const a of all) if (a.bootstrap) boots.set(a.partition!, [...(boots.get(a.partition!) ?? []), a]);
  for (const [p, list] of boots) {
    if (new Set(list.map((a) => a.createIndex)).size !== 1) return `partition ${p} was bootstrapped twice`;
    const nodes = list.map((a) => a.nodeId).sort();
    if (list.some((a) => JSON.stringify(a.bootstrap) !== JSON.stringify(nodes))) return `partition ${p}: bootstrap lists differ from the nodes placed`;
    if (list.some((a) => a.previousAllocId !== '')) return `partition ${p}: a replacement bootstraps`;
  }
  for (const a of all) if (!a.bootstrap && !boots.has(a.partition!)) return `partition ${a.partition} has replicas but was never bootstrapped`;
  return undefined;
}

/** Distinct failure domains among a partition's live replicas, and the most it could have. */
function coverage(h: SchedulerHarness, list: Allocation[], domains: number): { got: number; best: number } {
  return { got: new Set(list.map((a) => h.state.node(a.nodeId)!.labels['zone'] ?? '')).size, best: Math.min(list.length, domains) };
}

t.test('property: on random clusters, under deaths, drains, returns and new versions, replicas of a partition never share a node, and bootstrap marks first placements only', async (t) => {
  let rejected = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const r = Random.fromSeed(seed);
    const h = harness(seed);
    const nodes = r.intBetween(1, 9);
    for (let i = 1; i <= nodes; i++) {
      const zone: Record<string, string> = r.chance(0.8) ? { zone: `z${r.int(3)}` } : {};
      addNode(h, i, { labels: zone, cpu: 1000 * r.intBetween(1, 4), drivers: r.chance(0.5) ? ['docker'] : [] });
    }
    const partitions = r.intBetween(1, 8);
    const replicas = [1, 3, 5][r.int(3)]!;
    const cpus = r.chance(0.5) ? '0.4' : '0';
    const make = (collections: number) => store(
      `partitions: ${partitions}, replicas: ${replicas}, spread: zone${collections > 0 ? `, collections: [{ name: c${collections}, kind: queue }]` : ''}`,
      cpus === '0' ? [] : [`deploy: { resources: { reservations: { cpus: "${cpus}" } } }`],
    );
    const reg = h.apply({ type: 'job.register', job: make(0) });
    h.drain();
    const e = h.state.evaluation(reg.evalIds[0]!)!;
    const placed = running(h, 'kv').length;
    if (placed + (e.failedPlacements['db']?.missing ?? 0) !== partitions * replicas) t.fail(`seed ${seed}: ${placed} placed and ${e.failedPlacements['db']?.missing ?? 0} missing of ${partitions * replicas}`);
    let problem = violation(h, 'kv', replicas);
    let version = 0;
    let total = nodes;
    for (let step = 0; step < 10 && problem === undefined; step++) {
      const id = nodeId(r.intBetween(1, total));
      const kind = r.int(6);
      if (kind === 0) h.apply({ type: 'node.status', nodeId: id, status: 'down' });
      if (kind === 1) h.apply({ type: 'node.status', nodeId: id, status: 'ready' });
      if (kind === 2) h.apply({ type: 'node.drain', nodeId: id, draining: true });
      if (kind === 3) h.apply({ type: 'node.drain', nodeId: id, draining: false });
      if (kind === 4) {
        const before = running(h, 'kv').map((a) => a.id);
        h.apply({ type: 'job.register', job: make(++version) });
        h.drain();
        const after = new Set(running(h, 'kv').map((a) => a.id));
        if (!before.every((id) => after.has(id))) problem = 'a new version replaced replicas';
      }
      if (kind === 5) addNode(h, ++total, { labels: { zone: `z${r.int(4)}` } });
      h.drain();
      problem ??= violation(h, 'kv', replicas);
    }
    rejected += h.rejected.length;
    if (problem !== undefined) t.fail(`seed ${seed}: ${problem}`);
  }
  t.equal(rejected, 0, 'the state machine accepted every plan');
});

t.test('property: with room, each partition spans as many failure domains as there are, also after nodes die or drain', async (t) => {
  let checked = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const r = Random.fromSeed(1000 + seed);
    const h = harness(seed);
    const nodes = r.intBetween(2, 12);
    const zoneCount = r.intBetween(1, 5);
    for (let i = 1; i <= nodes; i++) addNode(h, i, { labels: r.chance(0.9) ? { zone: `z${r.int(zoneCount)}` } : {} });
    const replicas = [1, 3, 5, 7][r.int(4)]!;
    const partitions = r.intBetween(1, 10);
    h.apply({ type: 'job.register', job: store(`partitions: ${partitions}, replicas: ${replicas}, spread: zone`) });
    h.drain();
    const check = (when: string): boolean => {
      const ready = h.state.nodes().filter((n) => n.status === 'ready' && n.eligible);
      const domains = new Set(ready.map((n) => n.labels['zone'] ?? '')).size;
      for (const [p, list] of byPartition(h, 'kv')) {
        const { got, best } = coverage(h, list, domains);
        if (got !== best) {
          t.fail(`seed ${seed} ${when}: partition ${p} spans ${got} domains, ${best} possible`);
          return false;
        }
        if (list.length !== Math.min(replicas, ready.length)) {
          t.fail(`seed ${seed} ${when}: partition ${p} has ${list.length} replicas on ${ready.length} nodes`);
          return false;
        }
        checked++;
      }
      return true;
    };
    if (!check('placed')) continue;
    for (let step = 0; step < 3; step++) {
      const ready = h.state.nodes().filter((n) => n.status === 'ready' && n.eligible);
      if (ready.length <= 1) break;
      const victim = ready[r.int(ready.length)]!;
      if (r.chance(0.5)) h.apply({ type: 'node.status', nodeId: victim.id, status: 'down' });
      else h.apply({ type: 'node.drain', nodeId: victim.id, draining: true });
      h.drain();
      if (!check(`after losing ${victim.name}`)) break;
    }
  }
  t.ok(checked > 1000, `${checked} partitions checked`);
});
