/**
 * Real hyperswarm agents as separate processes on loopback, each on its own 127.0.0.x address (a realistic setup,
 * and it keeps clear of hyperdht's same-IP race). Only the first agent's address is given to the others (--join).
 *
 * The agents run in a namespace that has nothing but loopback: bound to 127.0.0.x (not .1), hyperdht advertises
 * and probes the machine's interface addresses, which the network guard rightly refuses; in an isolated loopback
 * there are none.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { startPeer, waitFullMesh, exchangeAll, randomPort, runRawPeer, waitStats, type Peer, type TestContext } from './harness.js';
import { createLoopbackHost, netnsAvailable } from '../helpers/netns.js';

const MESH_DEADLINE_MS = 60_000;
const NET = '127.0.0';
if (!netnsAvailable()) {
  t.plan(0, 'needs root and iproute2 (network namespaces)');
  process.exit(0);
}

type T = TestContext;

async function cluster(tt: T, n: number, firstHost: number, key = randomBytes(32).toString('hex'), ns = createLoopbackHost(tt).ns): Promise<Peer[]> {
  const port = randomPort();
  const first = await startPeer(tt, { name: 'a1', netns: ns, host: `${NET}.${firstHost}`, port, bootstrap: [], clusterKey: key });
  const join = [`${NET}.${firstHost}:${first.port}`];
  const rest = await Promise.all(Array.from({ length: n - 1 }, (_, i) =>
    startPeer(tt, { name: `a${i + 2}`, netns: ns, host: `${NET}.${firstHost + i + 1}`, port, bootstrap: join, clusterKey: key })));
  return [first, ...rest];
}

t.test('three agents find each other from one --join address and exchange messages both ways', async (t) => {
  const peers = await cluster(t, 3, 10);
  await waitFullMesh(peers, MESH_DEADLINE_MS);
  await exchangeAll(peers, 'm3', MESH_DEADLINE_MS);
  for (const p of peers) {
    const { stats } = await p.stats();
    t.equal(stats['authFailures'], 0, `${p.name}: no authentication failures`);
    t.equal(stats['framingErrors'], 0, `${p.name}: no framing errors`);
  }
});

t.test('five agents form a full mesh and exchange messages both ways', async (t) => {
  const peers = await cluster(t, 5, 20);
  await waitFullMesh(peers, MESH_DEADLINE_MS);
  await exchangeAll(peers, 'm5', MESH_DEADLINE_MS);
  t.pass('every agent received a message from every other');
});

t.test('messages marked unreliable travel as datagrams when they fit, and on the stream when they do not', async (t) => {
  const [a, b] = await cluster(t, 2, 30);
  await waitFullMesh([a!, b!], MESH_DEADLINE_MS);
  const big = `big:${'x'.repeat(2_000)}`;
  a!.command({ cmd: 'send', to: b!.nodeId, text: big, unreliable: true });
  await b!.waitEvent('the large message', (e) => e.ev === 'msg' && e['text'] === big, MESH_DEADLINE_MS);
  t.equal((await a!.stats()).stats['datagramsSent'], 0, 'the large one went on the stream');
  // Datagrams may be lost (rarely, on loopback): send until one arrives.
  let n = 0;
  await b!.waitFor('a datagram', () => {
    a!.command({ cmd: 'send', to: b!.nodeId, text: `dg${++n}`, unreliable: true });
    return b!.events.some((e) => e.ev === 'msg' && String(e['text']).startsWith('dg')) ? true : undefined;
  }, MESH_DEADLINE_MS);
  t.ok((await a!.stats()).stats['datagramsSent']! >= 1, 'sent as datagrams');
});

t.test('an agent with another cluster key is never admitted; the members it dials log and count the refusal', async (t) => {
  const { ns } = createLoopbackHost(t);
  const members = await cluster(t, 3, 30, randomBytes(32).toString('hex'), ns);
  await waitFullMesh(members, MESH_DEADLINE_MS);
  const impostor = await startPeer(t, {
    name: 'impostor', netns: ns, host: `${NET}.39`, port: members[0]!.port, clusterKey: randomBytes(32).toString('hex'),
    bootstrap: [`${NET}.30:${members[0]!.port}`],
  });
  // It cannot find the topic (another key, another topic), so it dials the members' keys directly, as if it had
  // overheard them; then it tries to send.
  for (const m of members) impostor.command({ cmd: 'connect', to: m.nodeId });
  for (const m of members) {
    await waitStats(m, 'an authentication failure', (s) => (s['authFailures'] ?? 0) >= 1, MESH_DEADLINE_MS);
    await m.waitFor('refusal logged with the impostor key', () =>
      (m.stderrTail.some((l) => l.includes('refused a peer that failed authentication') && l.includes(impostor.nodeId)) ? true : undefined), 10_000);
  }
  for (const m of members) impostor.command({ cmd: 'send', to: m.nodeId, text: 'let me in' });
  const refusals = await impostor.waitFor('send results', () => {
    const r = impostor.events.filter((e) => e.ev === 'sent');
    return r.length >= members.length ? r : undefined;
  }, 10_000);
  t.ok(refusals.every((r) => r['ok'] === false && r['code'] === 'ERR_NO_LINK'), 'the impostor has no link to send on');
  t.equal(impostor.up.size, 0, 'the impostor never had an authenticated link');
  for (const m of members) {
    t.notOk(m.up.has(impostor.nodeId), `${m.name} never admitted it`);
    t.notOk(m.events.some((e) => e.ev === 'msg' && e['from'] === impostor.nodeId), `${m.name} received nothing from it`);
  }
  await exchangeAll(members, 'after-impostor', MESH_DEADLINE_MS);
  t.pass('the members still talk to each other');
});

t.test('an oversized, a truncated and a random frame each close only that link; the agent keeps serving the others', async (t) => {
  const { ns } = createLoopbackHost(t);
  const key = randomBytes(32).toString('hex');
  const members = await cluster(t, 3, 40, key, ns);
  await waitFullMesh(members, MESH_DEADLINE_MS);
  const target = members[1]!;
  let expectedErrors = 0;
  for (const mode of ['oversized', 'truncated', 'random'] as const) {
    const result = await runRawPeer(t, {
      netns: ns, host: `${NET}.49`, port: target.port, bootstrap: [`${NET}.40:${members[0]!.port}`], target: target.nodeId, clusterKey: key, mode,
    });
    t.ok(result.authenticated, `${mode}: the misbehaving peer got past the handshake (it holds the key)`);
    t.ok(result.closedByRemote, `${mode}: the agent closed that link`);
    expectedErrors++;
    await waitStats(target, `${expectedErrors} framing errors`, (s) => (s['framingErrors'] ?? 0) >= expectedErrors, MESH_DEADLINE_MS);
    await exchangeAll(members, `after-${mode}`, MESH_DEADLINE_MS);
    t.ok(members.every((m) => m.exitCode === undefined), `${mode}: every agent is still running`);
  }
  const { stats, links } = await target.stats();
  t.equal(stats['framingErrors'], 3);
  t.same([...links].sort(), members.filter((m) => m !== target).map((m) => m.nodeId).sort(), 'its links to the members stayed up');
});
