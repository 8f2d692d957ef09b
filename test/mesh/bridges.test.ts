/**
 * Container bridges on a real, private Docker engine (test/helpers/docker.ts): two "agents" sharing one engine get
 * bridges of their own (names, interfaces, subnets), service addresses land on the bridge's interface and survive a
 * restart, concurrent containers get distinct addresses, a full pool is a clear error, and unused bridges go away.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { DockerBridges } from '../../src/drivers/docker-networks.js';
import { ContainerBridges, checkBridgePool } from '../../src/mesh/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { startPrivateDockerd } from '../helpers/docker.js';

t.test('a bridge pool is an IPv4 CIDR that holds at least one /24', async (t) => {
  t.equal(checkBridgePool(' 10.213.0.0/16 '), '10.213.0.0/16');
  t.equal(checkBridgePool('192.168.50.0/24'), '192.168.50.0/24');
  t.throws(() => checkBridgePool('10.213.0.0/25'), /prefix length from 8 to 24/);
  t.throws(() => checkBridgePool('10.0.0.0/7'), /prefix length from 8 to 24/);
  t.throws(() => checkBridgePool('fd00::/64'), /is not an IPv4 CIDR/);
  t.throws(() => checkBridgePool('10.300.0.0/16'), /is not an IPv4 CIDR/);
});

const engine = await startPrivateDockerd();
const skip = 'skip' in engine ? engine.skip : false;

t.test('bridges on a real engine', { skip }, async (t) => {
  if ('skip' in engine) return;
  const docker = engine.docker;
  t.teardown(async () => {
    // Bridges outlive their engine as host interfaces: remove every network this test made before dockerd stops.
    for (const n of await docker.listNetworks()) if (n.Labels?.['shoal.managed'] === 'true') await docker.getNetwork(n.Id).remove().catch(() => undefined);
    await engine.stop();
  });
  const api = new DockerBridges(engine.socketPath);
  const make = (nodeId: string, saved = new Map<string, number>(), pool = '10.213.0.0/16') => new ContainerBridges({
    engine: api, nodeId, pool, saved, save: () => undefined, catalog: () => undefined, upstreams: () => [], logger: silentLogger(),
  });
  const hostAddresses = (dev: string): string => spawnSync('ip', ['-4', 'addr', 'show', 'dev', dev], { encoding: 'utf8' }).stdout;

  const savedA = new Map<string, number>();
  const a = make('node-a', savedA);
  const b = make('node-b');
  const [ba, bb, again] = await Promise.all([a.ensure('shop_default', false), b.ensure('shop_default', true), a.ensure('shop_default', false)]);
  t.equal(again, ba, 'one bridge per network per agent, even when asked twice at once');
  t.not(ba.engineName, bb.engineName, 'two agents on one engine: distinct network names');
  t.not(ba.bridgeName, bb.bridgeName, 'and distinct interfaces');
  t.not(ba.prefix, bb.prefix, 'and distinct subnets');
  t.ok(ba.bridgeName.length <= 15, 'an interface name fits the kernel\'s 15 characters');
  t.match(ba.gateway, /^10\.213\.\d+\.1$/);
  const info = await docker.getNetwork(bb.engineName).inspect() as { Internal: boolean; Labels: Record<string, string>; IPAM: { Config: { Subnet: string; IPRange: string }[] } };
  t.equal(info.Internal, true, 'an internal network is an internal bridge');
  t.same(info.Labels, { 'shoal.managed': 'true', 'shoal.node': 'node-b', 'shoal.network': 'shop_default' });
  t.equal(info.IPAM.Config[0]!.Subnet, `${bb.prefix}0/24`);
  t.equal(info.IPAM.Config[0]!.IPRange, `${bb.prefix}0/25`, 'the engine places containers in the lower half only');

  const addrs = await Promise.all(['x1', 'x2', 'x3'].map((id) => a.containerAddress(ba, id, 'shop/web')));
  t.equal(new Set(addrs).size, 3, 'containers starting at once get distinct addresses');
  t.equal(await a.containerAddress(ba, 'x2', 'shop/web'), addrs[1], 'the same allocation keeps its address');
  t.equal(a.askerOf(addrs[0]!), 'shop/web', 'the address names the container\'s service (for DNS)');
  t.equal(a.hostOf('x3'), addrs[2]);

  const vip = await a.serviceAddress(ba, 'shop/api');
  t.equal(vip, `${ba.prefix}128`, 'services take the upper half');
  t.match(hostAddresses(ba.bridgeName), `${vip}/32`, 'the service address is on the bridge\'s interface');
  t.equal(await a.serviceAddress(ba, 'shop/api'), vip, 'asked again: the same address');
  t.equal(savedA.get('bridge:shop_default|shop/api'), 128, 'and it is kept for a restart');
  t.equal(await a.serviceAddress(ba, 'shop/db'), `${ba.prefix}129`);

  // A restarted agent finds its bridge on the engine, and its services keep their addresses.
  const a2 = make('node-a', new Map(savedA));
  await a2.load();
  t.same(a2.bridges.map((x) => [x.network, x.engineName, x.prefix]), [['shop_default', ba.engineName, ba.prefix]]);
  t.equal(a2.bridges[0]!.vips.get('shop/api'), vip);

  // A pool whose only /24 another agent holds: a clear error, nothing created.
  const full = make('node-c', new Map(), `${bb.prefix}0/24`);
  await t.rejects(full.ensure('other_default', false), /no free \/24 for network other_default in bridge pool 10\.213\.\d+\.0\/24/);

  // A bridge with containers recorded stays; without, and not wanted, it goes.
  a2.adoptContainer(ba.engineName, addrs[0]!, 'x1', 'shop/web'); // a container found running after the restart
  t.equal(a2.askerOf(addrs[0]!), 'shop/web');
  await a2.prune(new Set());
  t.equal(a2.bridges.length, 1, 'kept while a container is on it');
  a2.forgetContainers(new Set());
  await a2.prune(new Set(['shop_default']));
  t.equal(a2.bridges.length, 1, 'kept while a local task is on its network');
  await a2.prune(new Set());
  t.equal(a2.bridges.length, 0, 'removed once nothing here is on it');
  await t.rejects(docker.getNetwork(ba.engineName).inspect(), /no such network|404/i, 'gone from the engine');
});
