/**
 * The service mesh of two agents (src/mesh/mesh.ts) over the in-memory transport, with real sockets: tasks are
 * real HTTP servers, the catalog comes from a real ClusterState. Covers task ports and environment, service
 * listeners (local first, then over the peer link), retries on a refusing endpoint, the last hop's check of a
 * stopping task, ingress ports on every node, a port already taken, and listener ports kept across restarts.
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import net from 'node:net';
import dgram from 'node:dgram';
import dns2 from 'dns2';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryHub, type MemoryTransport } from '../../src/transport/memory.js';
import { MessageType } from '../../src/wire/frame.js';
import { ServiceMesh } from '../../src/mesh/mesh.js';
import { silentLogger } from '../../src/log/logger.js';
import { ClusterState } from '../../src/state/cluster-state.js';
import type { Command } from '../../src/state/commands.js';
import { parseJobFile } from '../../src/jobspec/parse.js';
import type { Job } from '../../src/jobspec/types.js';

const STACK = `
name: shop
networks:
  front: {}
  back: {}
services:
  web:
    x-shoal: { driver: process }
    command: node web.js
    ports: ["18480:80"]
    networks: [front]
  api:
    x-shoal: { driver: process }
    command: node api.js
    expose: [3000]
    networks: [front, back]
  db:
    x-shoal: { driver: process }
    command: redis-server
    expose: [6379]
    networks: [back]
`;

class World {
  readonly state = new ClusterState();
  readonly job: Job = parseJobFile(STACK, { file: 'shop.yaml' }).job;
  #index = 0;
  apply(command: Command): void {
    const r = this.state.apply(++this.#index, command);
    if (!r.ok) throw new Error(r.message);
  }
  constructor() {
    for (const id of ['n1', 'n2']) {
      this.apply({ type: 'node.upsert', node: { id, name: id, address: `${id}:1`, labels: {}, capacity: { cpuMillicores: 8000, memoryBytes: 8e9 }, drivers: ['process'], roles: [] } });
    }
    this.apply({ type: 'job.register', job: this.job });
  }
  place(allocs: { id: string; service: string; node: string }[]): void {
    const evalId = this.state.evaluationsOfJob('shop')[0]!.id;
    this.apply({
      type: 'plan.apply',
      plan: {
        evalId, jobName: 'shop', jobVersion: this.state.job('shop')!.version, baseIndex: this.state.index, stops: [], failedPlacements: {},
        placements: allocs.map((a, slot) => ({ id: a.id, jobName: 'shop', jobVersion: 1, service: a.service, slot, nodeId: a.node, resources: { cpuMillicores: 0, memoryBytes: 0 }, previousAllocId: '', reschedules: 0 })),
      },
    });
  }
  running(node: string, allocId: string, ports: Record<string, number>): void {
    this.apply({ type: 'alloc.update', nodeId: node, updates: [{ allocId, clientStatus: 'running', clientMessage: '', restarts: 0, driverHandle: '{}', taskPorts: ports }] });
  }
  stop(allocId: string): void {
    this.apply({ type: 'job.scale', name: 'shop', service: 'api', replicas: 1 });
    const evalId = this.state.evaluationsOfJob('shop')[0]!.id;
    this.apply({ type: 'plan.apply', plan: { evalId, jobName: 'shop', jobVersion: this.state.job('shop')!.version, baseIndex: this.state.index, placements: [], stops: [{ allocId, reason: 'scaled down', markLost: false }], failedPlacements: {} } });
  }
}

/** An HTTP "task" that answers with its name. */
async function task(t: Test, name: string): Promise<number> {
  const server = http.createServer((_req, res) => res.end(name));
  server.keepAliveTimeout = 100;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return (server.address() as net.AddressInfo).port;
}

async function deadPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function get(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timed out')));
  });
}

interface Agents {
  world: World;
  hub: MemoryHub;
  meshes: Record<'n1' | 'n2', ServiceMesh>;
  transports: Record<'n1' | 'n2', MemoryTransport>;
  dirs: Record<'n1' | 'n2', string>;
}

const RANGES = { n1: { low: 41000, high: 41199 }, n2: { low: 41200, high: 41399 } };
const HOSTS = { n1: '127.0.0.1', n2: '127.0.0.2' };

async function agents(t: Test, world = new World(), views: Partial<Record<'n1' | 'n2', () => ClusterState>> = {}): Promise<Agents> {
  const hub = new MemoryHub();
  const out = { world, hub, meshes: {}, transports: {}, dirs: {} } as Agents;
  for (const id of ['n1', 'n2'] as const) {
    const transport = hub.transport(id);
    const dir = mkdtempSync(join(tmpdir(), `shoal-mesh-${id}-`));
    const mesh = new ServiceMesh({ nodeId: id, bindHost: HOSTS[id], taskPorts: RANGES[id], dataDir: dir, catalog: views[id] ?? (() => world.state), transport, logger: silentLogger() });
    transport.onMessage((m) => m.envelope.type === MessageType.MESSAGE_TYPE_STREAM && mesh.receive(m.from, m.envelope.payload));
    transport.onLinkDown((peer) => mesh.linkDown(peer));
    await transport.start();
    await mesh.start();
    out.meshes[id] = mesh;
    out.transports[id] = transport;
    out.dirs[id] = dir;
    t.teardown(async () => {
      await mesh.stop();
      await transport.stop();
      rmSync(dir, { recursive: true, force: true });
    });
  }
  return out;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 30));
}

t.test('a task gets its ports and the addresses of the services it may reach, and nothing else', async (t) => {
  const a = await agents(t);
  a.world.place([{ id: 'web-1', service: 'web', node: 'n1' }]);
  const web = a.world.job.services.find((s) => s.name === 'web')!;
  const alloc = a.world.state.allocation('web-1')!;
  const net1 = await a.meshes.n1.prepare(alloc, web, undefined, new Set([41000, 41001]));
  const port = net1.ports['80']!;
  t.ok(port >= 41000 && port <= 41199 && port !== 41000 && port !== 41001, `a free port of the range, not one in use (${port})`);
  t.equal(net1.env['PORT'], String(port));
  t.equal(net1.env['SHOAL_PORT_80'], String(port));
  t.match(net1.env['SHOAL_SERVICE_API'], /^127\.0\.0\.1:\d+$/, 'api shares front with web');
  t.equal(net1.env['SHOAL_SERVICE_API_3000'], net1.env['SHOAL_SERVICE_API']);
  t.equal(net1.env['SHOAL_SERVICE_DB'], undefined, 'db is only on back: web is not told of it');
  const again = await a.meshes.n1.prepare(alloc, web, net1.ports, new Set());
  t.same(again.ports, net1.ports, 'a restart keeps the ports');
  t.equal(again.env['SHOAL_SERVICE_API'], net1.env['SHOAL_SERVICE_API'], 'and the service addresses');
  const docker = { ...web, driver: 'docker' as const, image: 'nginx', command: null };
  t.same((await a.meshes.n1.prepare(alloc, docker, undefined, new Set())).ports, { 80: 80 }, 'a container in the host network listens on its own port');
  const host = { ...web, ports: [{ target: 80, published: 18481, protocol: 'tcp' as const, mode: 'host' as const }] };
  t.same((await a.meshes.n1.prepare(alloc, host, undefined, new Set())).ports, { 80: 18481 }, 'a host-mode port is the published one');
});

t.test('a service listener prefers a task on its own node, else crosses the peer link, and skips a refusing one', async (t) => {
  const a = await agents(t);
  a.world.place([{ id: 'web-1', service: 'web', node: 'n1' }, { id: 'api-1', service: 'api', node: 'n1' }, { id: 'api-2', service: 'api', node: 'n2' }]);
  const api1 = await task(t, 'api-1');
  const api2 = await task(t, 'api-2');
  a.world.running('n1', 'api-1', { 3000: api1 });
  a.world.running('n2', 'api-2', { 3000: api2 });
  const web = a.world.job.services.find((s) => s.name === 'web')!;
  const env = (await a.meshes.n1.prepare(a.world.state.allocation('web-1')!, web, undefined, new Set())).env;
  const [host, port] = env['SHOAL_SERVICE_API']!.split(':') as [string, string];
  for (let i = 0; i < 4; i++) t.equal(await get(host, Number(port)), 'api-1', 'the local task answers every time');
  // The local task dies without its node noticing yet: the next connection goes to the other node, at once.
  a.world.running('n1', 'api-1', { 3000: await deadPort() });
  t.equal(await get(host, Number(port)), 'api-2', 'a refused connection is retried on the remote endpoint');
  t.equal(await get(host, Number(port)), 'api-2');
  t.ok(a.meshes.n1.streams.stats().opened >= 2, 'through streams over the peer link');
  t.equal(a.meshes.n2.streams.stats().accepted, a.meshes.n1.streams.stats().opened);
});

t.test('a task that is stopping gets no new connection, even from an agent whose catalog is behind', async (t) => {
  // n1's catalog is frozen from before the stop; n2, which runs the task, sees the stop.
  const world = new World();
  let n1View = world.state;
  const a = await agents(t, world, { n1: () => n1View });
  a.world.place([{ id: 'web-1', service: 'web', node: 'n1' }, { id: 'api-1', service: 'api', node: 'n2' }, { id: 'api-2', service: 'api', node: 'n2' }]);
  a.world.running('n2', 'api-1', { 3000: await task(t, 'api-1') });
  a.world.running('n2', 'api-2', { 3000: await task(t, 'api-2') });
  n1View = ClusterState.restore(a.world.state.snapshot());
  const web = a.world.job.services.find((s) => s.name === 'web')!;
  const env = (await a.meshes.n1.prepare(n1View.allocation('web-1')!, web, undefined, new Set())).env;
  const [host, port] = env['SHOAL_SERVICE_API']!.split(':') as [string, string];
  a.world.stop('api-1');
  t.equal(n1View.catalogService('shop/api')!.endpoints.length, 2, 'n1 still believes both tasks are endpoints');
  for (let i = 0; i < 6; i++) t.equal(await get(host, Number(port)), 'api-2', 'the node that runs the stopping task refuses it; the other answers');
});

t.test('an ingress port answers on every node; a port taken on one node is reported there while the others serve', async (t) => {
  // Take web's published port on n2's address before the mesh can.
  const squatter = net.createServer();
  squatter.listen(18480, '127.0.0.2');
  await once(squatter, 'listening');
  t.teardown(() => new Promise<void>((r) => squatter.close(() => r())));
  const a = await agents(t);
  a.world.place([{ id: 'web-1', service: 'web', node: 'n2' }]);
  a.world.running('n2', 'web-1', { 80: await task(t, 'web-1') });
  a.meshes.n1.refresh();
  a.meshes.n2.refresh();
  await settle();
  t.equal(await get('127.0.0.1', 18480), 'web-1', 'n1 forwards its ingress port to the task on n2');
  const n2 = a.meshes.n2.status().find((l) => l.kind === 'ingress')!;
  t.match(n2.error, /port 18480 is taken on this node/, 'n2 reports the port it could not take');
  t.same(a.meshes.n2.portsTaken, [18480], 'and gossips it (node ls, job status)');
  t.same(a.meshes.n1.portsTaken, []);
  const n1 = a.meshes.n1.status().find((l) => l.kind === 'ingress')!;
  t.equal(n1.error, '');
  t.equal(n1.address, '127.0.0.1:18480');
  // The port frees up: the next refresh takes it.
  await new Promise<void>((r) => squatter.close(() => r()));
  a.meshes.n2.refresh();
  await settle();
  t.equal(await get('127.0.0.2', 18480), 'web-1', 'n2 publishes the port once it is free');
  t.same(a.meshes.n2.portsTaken, [], 'and no longer reports it');
  // The job stops: the ingress ports close everywhere.
  a.world.apply({ type: 'job.stop', name: 'shop' });
  a.meshes.n1.refresh();
  a.meshes.n2.refresh();
  await settle();
  t.same(a.meshes.n1.status(), []);
  await t.rejects(get('127.0.0.1', 18480), 'nothing listens any more');
});

t.test('service listener ports survive an agent restart, so running tasks keep their addresses', async (t) => {
  const a = await agents(t);
  a.world.place([{ id: 'web-1', service: 'web', node: 'n1' }, { id: 'api-1', service: 'api', node: 'n1' }]);
  a.world.running('n1', 'api-1', { 3000: await task(t, 'api-1') });
  const web = a.world.job.services.find((s) => s.name === 'web')!;
  const env = (await a.meshes.n1.prepare(a.world.state.allocation('web-1')!, web, undefined, new Set())).env;
  await a.meshes.n1.stop();
  const restarted = new ServiceMesh({ nodeId: 'n1', bindHost: HOSTS.n1, taskPorts: RANGES.n1, dataDir: a.dirs.n1, catalog: () => a.world.state, transport: a.transports.n1, logger: silentLogger() });
  t.teardown(() => restarted.stop());
  await restarted.start();
  const [host, port] = env['SHOAL_SERVICE_API']!.split(':') as [string, string];
  t.equal(await get(host, Number(port)), 'api-1', 'the old address answers after the restart');
  const again = (await restarted.prepare(a.world.state.allocation('web-1')!, web, undefined, new Set())).env;
  t.equal(again['SHOAL_SERVICE_API'], env['SHOAL_SERVICE_API']);
});

/** Asks a DNS server one question over UDP; resolves with the parsed answer. */
async function query(server: string, name: string, type: number): Promise<InstanceType<typeof dns2.Packet>> {
  const [host, port] = server.split(':') as [string, string];
  const socket = dgram.createSocket('udp4');
  const req = new dns2.Packet();
  req.header.id = 1 + Math.floor(Math.random() * 60_000);
  req.header.rd = 1;
  req.questions.push({ name, type, class: dns2.Packet.CLASS.IN } as never);
  const answer = new Promise<InstanceType<typeof dns2.Packet>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no DNS answer for ${name}`)), 5_000);
    socket.once('message', (msg) => {
      clearTimeout(timer);
      resolve(dns2.Packet.parse(msg));
    });
  });
  socket.send(req.toBuffer(), Number(port), host);
  try {
    return await answer;
  } finally {
    socket.close();
  }
}

t.test('names: a task resolves the services it shares a network with to their virtual addresses, which connect', async (t) => {
  // A stand-in for the host's resolver: answers every name with 192.0.2.1.
  const upstream = dgram.createSocket('udp4');
  upstream.on('message', (msg, rinfo) => {
    const res = dns2.Packet.createResponseFromRequest(dns2.Packet.parse(msg));
    res.answers.push(dns2.Packet.createResourceFromQuestion({ name: res.questions[0]!.name, type: dns2.Packet.TYPE.A, class: dns2.Packet.CLASS.IN, ttl: 60 } as never, { address: '192.0.2.1' } as never));
    upstream.send(res.toBuffer(), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => upstream.close());
  const world = new World();
  const hub = new MemoryHub();
  const dir = mkdtempSync(join(tmpdir(), 'shoal-mesh-dns-'));
  const transport = hub.transport('n1');
  await transport.start();
  const mesh = new ServiceMesh({
    nodeId: 'n1', bindHost: '127.0.0.1', taskPorts: { low: 41600, high: 41799 }, dataDir: dir, catalog: () => world.state, transport, logger: silentLogger(),
    localServices: () => ['shop/web'], dnsUpstreams: [{ host: '127.0.0.1', port: upstream.address().port }],
  });
  await mesh.start();
  t.teardown(async () => {
    await mesh.stop();
    await transport.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  world.place([{ id: 'web-1', service: 'web', node: 'n1' }, { id: 'api-1', service: 'api', node: 'n1' }]);
  world.running('n1', 'api-1', { 3000: await task(t, 'api-1') });
  const web = world.job.services.find((s) => s.name === 'web')!;
  const env = (await mesh.prepare(world.state.allocation('web-1')!, web, undefined, new Set())).env;
  const dns = env['SHOAL_DNS']!;
  t.match(dns, /^127\.0\.0\.1:\d+$/, 'the task is told where its DNS server is');
  const { A, AAAA, SRV } = dns2.Packet.TYPE;
  const api = await query(dns, 'api', A);
  const vip = (api.answers[0] as unknown as { address: string }).address;
  t.match(vip, /^127\.77\.\d+\.\d+$/, `"api" is its virtual address (${vip})`);
  t.equal(api.header.aa, 1, 'authoritative');
  t.equal(((await query(dns, 'api.shop', A)).answers[0] as unknown as { address: string }).address, vip, '<service>.<job> too');
  t.equal(((await query(dns, 'API.shop.shoal.', A)).answers[0] as unknown as { address: string }).address, vip, 'and <service>.<job>.shoal, in any case');
  t.equal(await get(vip, 3000), 'api-1', 'the virtual address connects, on the service\'s own port');
  const srv = await query(dns, 'api', SRV);
  t.same(srv.answers.map((a) => (a as unknown as { port: number }).port), [3000], 'SRV names the port');
  const aaaa = await query(dns, 'api', AAAA);
  t.same([aaaa.header.rcode, aaaa.answers.length], [0, 0], 'no IPv6 record, and no error');
  const db = await query(dns, 'db.shop.shoal', A);
  t.equal(db.header.rcode, 3, 'db is not on a network web is on: NXDOMAIN in the cluster\'s zone');
  const outside = await query(dns, 'example.org', A);
  t.equal((outside.answers[0] as unknown as { address: string }).address, '192.0.2.1', 'other names go to the host\'s resolver, answer unchanged');
  t.equal(outside.header.id !== 0, true);
  const listeners = mesh.status().filter((l) => l.kind === 'vip');
  t.same(listeners.map((l) => l.service).sort(), ['shop/api', 'shop/web'], 'the agent listens on the virtual addresses of what its tasks reach (web reaches itself too), not db\'s');
  t.ok(listeners.some((l) => l.address === `${vip}:3000`));

  // tasks.<service>: one address per task, each reaching that task alone.
  world.place([{ id: 'api-2', service: 'api', node: 'n1' }]);
  world.running('n1', 'api-2', { 3000: await task(t, 'api-2') });
  const addressesOf = async (name: string): Promise<string[]> => (await query(dns, name, A)).answers.map((a) => (a as unknown as { address: string }).address);
  const tasks = await addressesOf('tasks.api');
  t.equal(tasks.length, 2, `tasks.api answers one address per task (${tasks.join(', ')})`);
  t.ok(tasks.every((a) => /^127\.78\.\d+\.\d+$/.test(a)) && !tasks.includes(vip), 'addresses of their own, not the virtual address');
  const seen = [];
  for (const a of tasks) for (let i = 0; i < 3; i++) seen.push(`${a}=${await get(a, 3000)}`);
  t.same(new Set(seen).size, 2, `each address always reaches the same task (${[...new Set(seen)].join(', ')})`);
  t.same(await addressesOf('tasks.api.shop.shoal'), tasks, 'tasks.<service>.<job>.shoal too');
  t.same(await addressesOf('api'), [vip], 'the service name itself keeps its virtual address (endpoint_mode vip)');
  world.stop('api-2');
  mesh.refresh();
  await mesh.settled();
  const left = await addressesOf('tasks.api');
  t.equal(left.length, 1, 'a task that stops leaves tasks.api');
  t.equal(await get(left[0]!, 3000), 'api-1');
  t.equal(mesh.status().filter((l) => l.kind === 'task').length, 1, 'and its address is no longer listened on');

  // A container in the host's network that listens on 3000 itself: no virtual address may hold port 3000 here
  // (its bind to 0.0.0.0:3000 would fail), before it starts and after every refresh.
  t.ok(mesh.status().some((l) => l.kind === 'vip' && l.address.endsWith(':3000')), 'api\'s virtual address listens on 3000');
  world.place([{ id: 'api-3', service: 'api', node: 'n1' }]);
  const apiSpec = world.job.services.find((s) => s.name === 'api')!;
  await mesh.prepare(world.state.allocation('api-3')!, { ...apiSpec, driver: 'docker', image: 'x', command: null, networkMode: 'host' }, undefined, new Set());
  t.notOk(mesh.status().some((l) => l.kind === 'vip' && l.address.endsWith(':3000')), 'closed before the container starts');
  mesh.refresh();
  await mesh.settled();
  t.notOk(mesh.status().some((l) => l.kind === 'vip' && l.address.endsWith(':3000')), 'and not opened again');
});

t.test('a peer that holds its link but answers nothing: retried after the open timeout, or skipped at once when gossip suspects it', async (t) => {
  const world = new World();
  world.apply({ type: 'node.upsert', node: { id: 'n3', name: 'n3', address: 'n3:1', labels: {}, capacity: { cpuMillicores: 8000, memoryBytes: 8e9 }, drivers: ['process'], roles: [] } });
  let suspectN3 = false;
  const hub = new MemoryHub();
  const dir = mkdtempSync(join(tmpdir(), 'shoal-mesh-dead-'));
  const [t1, t2, t3] = ['n1', 'n2', 'n3'].map((id) => hub.transport(id)) as [MemoryTransport, MemoryTransport, MemoryTransport];
  const mesh1 = new ServiceMesh({ nodeId: 'n1', bindHost: '127.0.0.1', taskPorts: { low: 41800, high: 41899 }, dataDir: dir, catalog: () => world.state, transport: t1, logger: silentLogger(), peerHealthy: (id) => !(id === 'n3' && suspectN3) });
  const mesh2 = new ServiceMesh({ nodeId: 'n2', bindHost: '127.0.0.2', taskPorts: { low: 41900, high: 41999 }, dataDir: dir, catalog: () => world.state, transport: t2, logger: silentLogger() });
  t1.onMessage((m) => m.envelope.type === MessageType.MESSAGE_TYPE_STREAM && mesh1.receive(m.from, m.envelope.payload));
  t2.onMessage((m) => m.envelope.type === MessageType.MESSAGE_TYPE_STREAM && mesh2.receive(m.from, m.envelope.payload));
  // n3's agent is frozen: its link is up, nothing it receives is answered.
  for (const x of [t1, t2, t3]) await x.start();
  t.teardown(async () => {
    await mesh1.stop();
    await mesh2.stop();
    for (const x of [t1, t2, t3]) await x.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  world.place([{ id: 'web-1', service: 'web', node: 'n1' }, { id: 'api-2', service: 'api', node: 'n2' }, { id: 'api-3', service: 'api', node: 'n3' }]);
  world.running('n2', 'api-2', { 3000: await task(t, 'api-2') });
  world.running('n3', 'api-3', { 3000: 1 });
  const web = world.job.services.find((s) => s.name === 'web')!;
  const env = (await mesh1.prepare(world.state.allocation('web-1')!, web, undefined, new Set())).env;
  const [host, port] = env['SHOAL_SERVICE_API']!.split(':') as [string, string];
  // Round-robin puts n3 first on some turn: that request waits out the open timeout, then n2 answers.
  const times: number[] = [];
  for (let i = 0; i < 2; i++) {
    const start = Date.now();
    t.equal(await get(host, Number(port)), 'api-2');
    times.push(Date.now() - start);
  }
  t.ok(Math.max(...times) >= 1_400, `one request waited for the frozen peer, then went on (${times.join(', ')} ms)`);
  suspectN3 = true;
  await new Promise((r) => setTimeout(r, 5_100)); // the frozen peer's failure mark expires
  const fast: number[] = [];
  for (let i = 0; i < 4; i++) {
    const start = Date.now();
    t.equal(await get(host, Number(port)), 'api-2');
    fast.push(Date.now() - start);
  }
  t.ok(Math.max(...fast) < 1_000, `with n3 suspected, no request waits for it (${fast.join(', ')} ms)`);
});
