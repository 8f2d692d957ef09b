/**
 * The service catalog derived from the replicated state (src/state/catalog.ts): who is an endpoint, when a task
 * leaves it, how it reaches clients with their slice, and which services a task may reach.
 */
import t from 'tap';
import { ClusterState } from '../../src/state/cluster-state.js';
import { NodeSlice, sliceDelta } from '../../src/state/slice.js';
import { mayReach, reachableServices, serviceEnvName } from '../../src/state/catalog.js';
import type { Command } from '../../src/state/commands.js';
import { parseJobFile } from '../../src/jobspec/parse.js';
import type { Job } from '../../src/jobspec/types.js';

const STACK = `
name: shop
networks:
  front: {}
  back: { internal: true }
services:
  web:
    x-shoal: { driver: process }
    command: node web.js
    ports: ["8080:80"]
    networks: [front]
  api:
    x-shoal: { driver: process }
    command: node api.js
    expose: [3000]
    networks:
      front: { aliases: [backend] }
      back: {}
    healthcheck: { test: ["CMD", "true"], interval: 1s }
  db:
    x-shoal: { driver: process }
    command: redis-server
    expose: ["6379"]
    networks: [back]
`;

function job(text = STACK): Job {
  return parseJobFile(text, { file: 'shop.yaml' }).job;
}

class World {
  readonly state = new ClusterState();
  index = 0;
  apply(command: Command) {
    const r = this.state.apply(++this.index, command);
    return r;
  }
  node(id: string) {
    this.apply({ type: 'node.upsert', node: { id, name: id, address: `${id}:1`, labels: {}, capacity: { cpuMillicores: 8000, memoryBytes: 8e9 }, drivers: ['process'], roles: [] } });
  }
  place(allocs: { id: string; service: string; node: string }[], j = job()) {
    const rec = this.state.job(j.name)!;
    const evalId = this.state.evaluationsOfJob(j.name)[0]!.id;
    return this.apply({
      type: 'plan.apply',
      plan: {
        evalId, jobName: j.name, jobVersion: rec.version, baseIndex: this.state.index, stops: [], failedPlacements: {},
        placements: allocs.map((a, slot) => ({ id: a.id, jobName: j.name, jobVersion: rec.version, service: a.service, slot, nodeId: a.node, resources: { cpuMillicores: 0, memoryBytes: 0 }, previousAllocId: '', reschedules: 0 })),
      },
    });
  }
  report(node: string, allocId: string, extra: Partial<{ taskPorts: Record<string, number>; health: 'starting' | 'healthy' | 'unhealthy'; clientStatus: 'running' | 'failed' }> = {}) {
    this.apply({ type: 'alloc.update', nodeId: node, updates: [{ allocId, clientStatus: extra.clientStatus ?? 'running', clientMessage: '', restarts: 0, driverHandle: '{}', ...(extra.taskPorts ? { taskPorts: extra.taskPorts } : {}), ...(extra.health ? { health: extra.health } : {}) }] });
  }
}

function setup(): World {
  const w = new World();
  w.node('n1');
  w.node('n2');
  w.apply({ type: 'job.register', job: job() });
  w.place([{ id: 'web-1', service: 'web', node: 'n1' }, { id: 'api-1', service: 'api', node: 'n1' }, { id: 'api-2', service: 'api', node: 'n2' }, { id: 'db-1', service: 'db', node: 'n2' }]);
  return w;
}

t.test('a registered job has an entry per service, with networks, ports and no endpoint until a task runs', async (t) => {
  const w = setup();
  const keys = w.state.catalog().map((e) => e.key);
  t.same(keys, ['shop/api', 'shop/db', 'shop/web']);
  const api = w.state.catalogService('shop/api')!;
  t.same(api.networks.map(({ network, aliases }) => ({ network, aliases })), [{ network: 'shop_back', aliases: [] }, { network: 'shop_front', aliases: ['backend'] }]);
  t.ok(api.networks.every((n) => /^127\.77\.\d+\.\d+$/.test(n.vip)), 'a virtual address on each network');
  t.not(api.networks[0]!.vip, api.networks[1]!.vip, 'one per network');
  t.same(api.targetPorts, [3000]);
  t.same(api.endpoints, [], 'placed but not running: no endpoint');
  t.equal(api.healthChecked, true);
  const web = w.state.catalogService('shop/web')!;
  t.same(web.ingress, [{ published: 8080, target: 80 }]);
  t.equal(web.endpointMode, 'vip');
});

t.test('running tasks are endpoints; a health check must pass; an unready node drops its tasks', async (t) => {
  const w = setup();
  w.report('n1', 'web-1', { taskPorts: { 80: 20001 } });
  t.same(w.state.catalogService('shop/web')!.endpoints, [{ allocId: 'web-1', nodeId: 'n1', ports: { 80: 20001 } }]);
  w.report('n1', 'api-1', { taskPorts: { 3000: 20002 }, health: 'starting' });
  t.same(w.state.catalogService('shop/api')!.endpoints, [], 'a task whose check has not passed yet is not an endpoint');
  w.report('n1', 'api-1', { taskPorts: { 3000: 20002 }, health: 'healthy' });
  w.report('n2', 'api-2', { taskPorts: { 3000: 20003 }, health: 'healthy' });
  t.same(w.state.catalogService('shop/api')!.endpoints.map((e) => e.allocId), ['api-1', 'api-2']);
  w.report('n2', 'api-2', { taskPorts: { 3000: 20003 }, health: 'unhealthy' });
  t.same(w.state.catalogService('shop/api')!.endpoints.map((e) => e.allocId), ['api-1'], 'an unhealthy task leaves');
  const before = w.state.catalogIndex;
  w.apply({ type: 'node.status', nodeId: 'n1', status: 'down' });
  t.same(w.state.catalogService('shop/api')!.endpoints, [], 'a node that is down takes its tasks out');
  t.ok(w.state.catalogIndex > before);
  w.apply({ type: 'node.status', nodeId: 'n1', status: 'ready' });
  t.same(w.state.catalogService('shop/api')!.endpoints.map((e) => e.allocId), ['api-1'], 'and back when it returns');
});

t.test('a stopped task leaves the catalog in the entry that stops it; a stopped job leaves it whole', async (t) => {
  const w = setup();
  w.report('n1', 'web-1', { taskPorts: { 80: 20001 } });
  const rec = w.state.job('shop')!;
  w.apply({ type: 'job.scale', name: 'shop', service: 'web', replicas: 0 });
  const evalId = w.state.evaluationsOfJob('shop')[0]!.id;
  w.apply({ type: 'plan.apply', plan: { evalId, jobName: 'shop', jobVersion: w.state.job('shop')!.version, baseIndex: w.state.index, placements: [], stops: [{ allocId: 'web-1', reason: 'scaled down', markLost: false }], failedPlacements: {} } });
  t.equal(w.state.allocation('web-1')!.clientStatus, 'running', 'the task still runs (its node has not stopped it yet)');
  t.same(w.state.catalogService('shop/web')!.endpoints, [], 'but it is no endpoint any more');
  void rec;
  w.apply({ type: 'job.stop', name: 'shop' });
  t.same(w.state.catalog(), [], 'a stopped job has no services');
});

t.test('a report that changes nothing the catalog shows does not move its index', async (t) => {
  const w = setup();
  w.report('n1', 'web-1', { taskPorts: { 80: 20001 } });
  const index = w.state.catalogIndex;
  w.apply({ type: 'alloc.update', nodeId: 'n1', updates: [{ allocId: 'web-1', clientStatus: 'running', clientMessage: 'restarted once', restarts: 1, driverHandle: '{}', taskPorts: { 80: 20001 } }] });
  t.equal(w.state.catalogIndex, index);
  w.report('n1', 'web-1', { taskPorts: { 80: 20009 } });
  t.ok(w.state.catalogIndex > index, 'a new port is a change');
});

t.test('clients get the catalog with their slice, and lose entries that are gone', async (t) => {
  const w = setup();
  w.report('n1', 'web-1', { taskPorts: { 80: 20001 } });
  const slice = new NodeSlice('n2');
  t.ok(slice.merge(sliceDelta(w.state, 'n2', 0, 100)));
  t.same(slice.catalog().map((e) => e.key), ['shop/api', 'shop/db', 'shop/web'], 'the whole catalog, not only this node\'s services');
  t.same(slice.catalogService('shop/web')!.endpoints.map((e) => e.nodeId), ['n1'], 'with endpoints on other nodes');
  const at = slice.index;
  const quiet = sliceDelta(w.state, 'n2', at, 100);
  t.equal(quiet.catalog, undefined, 'nothing changed: no catalog in the delta');
  w.report('n1', 'api-1', { taskPorts: { 3000: 20002 }, health: 'healthy' });
  const d = sliceDelta(w.state, 'n2', at, 100);
  t.same(d.catalog!.map((e) => e.key), ['shop/api'], 'only what changed');
  t.ok(slice.merge(d));
  t.same(slice.catalogService('shop/api')!.endpoints.map((e) => e.allocId), ['api-1']);
  w.apply({ type: 'job.stop', name: 'shop' });
  t.ok(slice.merge(sliceDelta(w.state, 'n2', slice.index, 100)));
  t.same(slice.catalog(), [], 'entries of a stopped job are removed from the client too');
});

t.test('who reaches whom: shared networks, aliases, and the environment variable names', async (t) => {
  const w = setup();
  const all = w.state.catalog();
  const [api, db, web] = all as [typeof all[0], typeof all[0], typeof all[0]];
  t.ok(mayReach(web, api), 'web and api share front');
  t.notOk(mayReach(web, db), 'web is not on back: it cannot reach db');
  t.same([...reachableServices(web, all).keys()].sort(), ['api', 'backend', 'web']);
  t.same([...reachableServices(db, all).keys()].sort(), ['api', 'db']);
  t.equal(serviceEnvName('my-api.v2'), 'SHOAL_SERVICE_MY_API_V2');
});

t.test('ingress ports are one job\'s: a second job publishing the same port is refused', async (t) => {
  const w = setup();
  const other = job(`
name: other
services:
  site:
    x-shoal: { driver: process }
    command: node site.js
    ports: ["8080:8000"]
`);
  const r = w.apply({ type: 'job.register', job: other });
  t.equal(r.ok, false);
  t.match(r.ok ? '' : r.message, /8080\/tcp.*job "shop".*service "web"/);
  t.equal(w.state.job('other'), undefined, 'nothing registered');
  const hostMode = job(`
name: other
services:
  site:
    x-shoal: { driver: process }
    command: node site.js
    ports: [{ target: 8000, published: 9090, mode: host }]
`);
  t.equal(w.apply({ type: 'job.register', job: hostMode }).ok, true, 'another port is fine');
});

t.test('a restored state rebuilds the same catalog', async (t) => {
  const w = setup();
  w.report('n1', 'web-1', { taskPorts: { 80: 20001 } });
  const restored = ClusterState.restore(w.state.snapshot());
  t.same(restored.catalog().map((e) => ({ ...e, modifyIndex: 0 })), w.state.catalog().map((e) => ({ ...e, modifyIndex: 0 })));
  t.equal(restored.catalogIndex, w.state.index);
});

t.test('shared networks: a job joins only one that exists; one in use cannot be removed; snapshots keep them', async (t) => {
  const w = new World();
  const external = job(`
name: api
networks:
  shared: { external: true, name: backbone }
services:
  api:
    x-shoal: { driver: process }
    command: node api.js
    expose: [3000]
    networks: { shared: { aliases: [api-v1] } }
`);
  const refused = w.apply({ type: 'job.register', job: external });
  t.equal(refused.ok, false);
  t.match(refused.ok ? '' : refused.message, /network "backbone" .* does not exist/);
  t.equal(w.apply({ type: 'network.create', name: 'backbone', internal: false }).ok, true);
  t.match(w.apply({ type: 'network.create', name: 'backbone', internal: false }), { ok: false, code: 'ERR_ALREADY_EXISTS' });
  t.equal(w.apply({ type: 'job.register', job: external }).ok, true);
  t.same(w.state.catalogService('api/api')!.networks.map(({ network, aliases }) => ({ network, aliases })), [{ network: 'backbone', aliases: ['api-v1'] }]);
  t.same(w.state.jobsOnNetwork('backbone'), ['api']);
  t.match(w.apply({ type: 'network.delete', name: 'backbone' }), { ok: false, code: 'ERR_IN_USE' });
  const restored = ClusterState.restore(w.state.snapshot());
  t.same(restored.networks().map((n) => n.name), ['backbone'], 'a snapshot keeps the networks');
  w.apply({ type: 'job.stop', name: 'api' });
  t.equal(w.apply({ type: 'network.delete', name: 'backbone' }).ok, true, 'removable once no running job uses it');
  t.match(w.apply({ type: 'network.delete', name: 'backbone' }), { ok: false, code: 'ERR_NOT_FOUND' });
});

t.test('virtual addresses: unique, stable across new versions of the job, freed when it stops, kept by snapshots', async (t) => {
  const w = setup();
  const vips = () => w.state.catalog().flatMap((e) => e.networks.map((n) => `${e.key}@${n.network}=${n.vip}`));
  const first = vips();
  const addresses = first.map((v) => v.split('=')[1]!);
  t.equal(new Set(addresses).size, addresses.length, 'no two services share one');
  t.ok(addresses.every((a) => a.startsWith('127.77.')));
  // A new version (another command for web) keeps every address.
  w.apply({ type: 'job.register', job: job(STACK.replace('command: node web.js', 'command: node web2.js')) });
  t.same(vips(), first, 'the same addresses after an update');
  t.same(ClusterState.restore(w.state.snapshot()).catalog().flatMap((e) => e.networks.map((n) => `${e.key}@${n.network}=${n.vip}`)), first, 'and after a restore');
  w.apply({ type: 'job.stop', name: 'shop' });
  const other = job(STACK.replace('name: shop', 'name: shop2'));
  w.apply({ type: 'job.register', job: { ...other, services: other.services.map((s) => ({ ...s, ports: [] })) } });
  const reused = w.state.catalog().flatMap((e) => e.networks.map((n) => n.vip)).filter((v) => v !== '');
  t.ok(reused.length > 0);
  t.ok(reused.every((v) => /^127\.77\./.test(v)), 'a stopped job\'s addresses are free for others');
});
