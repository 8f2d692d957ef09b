/**
 * Three agents on three "hosts" (network namespaces on a bridge, test/helpers/netns.ts), joined from one address;
 * then one host is cut off with iptables for 10 s and for 120 s and restored: the links must come back by
 * themselves, without restarting anything. Deadlines are generous; how fast it recovers is only commented.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { startPeer, waitFullMesh, exchangeAll, randomPort, type Peer } from './harness.js';
import { createNetwork, netnsAvailable, type NetnsHost, type NetnsNetwork } from '../helpers/netns.js';

if (!netnsAvailable()) {
  t.plan(0, 'needs root and iproute2 (network namespaces)');
  process.exit(0);
}

const DEADLINE_MS = 90_000;

async function threeHosts(tt: Parameters<typeof startPeer>[0]): Promise<{ net: NetnsNetwork; peers: Peer[] }> {
  const net = createNetwork(tt, { hosts: 3, subnet: `10.77.${100 + Math.floor(Math.random() * 100)}` });
  const key = randomBytes(32).toString('hex');
  const port = randomPort();
  const h = net.hosts as [NetnsHost, NetnsHost, NetnsHost];
  const first = await startPeer(tt, { name: 'h1', netns: h[0].ns, host: h[0].ip, port, bootstrap: [], clusterKey: key });
  const join = [`${h[0].ip}:${first.port}`];
  const rest = await Promise.all([1, 2].map((i) => startPeer(tt, { name: `h${i + 1}`, netns: h[i]!.ns, host: h[i]!.ip, port, bootstrap: join, clusterKey: key })));
  return { net, peers: [first, ...rest] };
}

async function partitionAndHeal(t: Parameters<typeof startPeer>[0], net: NetnsNetwork, peers: Peer[], cutMs: number, tag: string): Promise<void> {
  const victim = peers[2]!;
  const others = peers.slice(0, 2);
  net.cut(net.hosts[2]!);
  const cutAt = Date.now();
  // The others notice the loss (keep-alive + stream timeout), and so does the victim.
  for (const p of others) await p.waitFor(`link to ${victim.name} down`, () => (p.up.has(victim.nodeId) ? undefined : true), DEADLINE_MS);
  await victim.waitFor('all links down', () => (victim.up.size === 0 ? true : undefined), DEADLINE_MS);
  t.comment(`${tag}: cut noticed after ${Date.now() - cutAt} ms`);
  const left = cutMs - (Date.now() - cutAt);
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  net.restore(net.hosts[2]!);
  const healedAt = Date.now();
  await waitFullMesh(peers, DEADLINE_MS);
  t.comment(`${tag}: full mesh again ${Date.now() - healedAt} ms after the restore`);
  await exchangeAll(peers, tag, DEADLINE_MS);
}

t.test('three agents in three namespaces find each other from one --join address and exchange messages', async (t) => {
  const { peers } = await threeHosts(t);
  await waitFullMesh(peers, DEADLINE_MS);
  await exchangeAll(peers, 'ns', DEADLINE_MS);
  t.pass('full mesh across namespaces, messages both ways');
});

t.test('a host cut off for 10 s and then for 120 s comes back without a restart', async (t) => {
  const { net, peers } = await threeHosts(t);
  await waitFullMesh(peers, DEADLINE_MS);
  await partitionAndHeal(t, net, peers, 10_000, 'cut-10s');
  t.pass('back after a 10 s cut');
  await partitionAndHeal(t, net, peers, 120_000, 'cut-120s');
  t.pass('back after a 120 s cut');
  for (const p of peers) t.equal(p.exitCode, undefined, `${p.name} was never restarted`);
});
