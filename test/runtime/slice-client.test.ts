/**
 * The slice client's failure paths, against real SliceServers over a scripted peer call: it resumes on another
 * server at the index it holds, gives up on a server gossip no longer lists, is not fresh while no server answers,
 * refuses a forged answer, and a quick stop-start never runs two watch loops.
 */
import t from 'tap';
import { LIMITS } from '../../src/lib/limits.js';
import { Random } from '../../src/lib/random.js';
import { ShoalError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import { shoal } from '../../src/gen/proto.js';
import { SliceClient, type ServerInfo } from '../../src/runtime/slice-client.js';
import { SliceServer } from '../../src/runtime/slice-server.js';
import type { MethodDescriptor } from '../../src/rpc/index.js';
import type { Status } from '../../src/consensus/index.js';
import { addNode, harness, job, nodeId, smallApp as app } from '../scheduler/helpers.js';


const wait = async (what: string, check: () => boolean, ms = 5_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

t.test('slice client: resumes on another server, gives up on one gossip drops, refuses forged answers', async (t) => {
  const h = harness(9);
  addNode(h, 1);
  addNode(h, 2);
  h.apply({ type: 'job.register', job: job(app(2)) });
  h.drain();
  const me = nodeId(1);
  const status = (): Status => ({
    group: 'cluster', id: 'x', role: 'follower', term: 2, vote: undefined, leader: 'A', commit: h.state.index, applied: h.state.index,
    lastIndex: h.state.index, voters: ['A', 'B', 'C'], learners: [], leadTransferee: undefined, quiesced: false, progress: {},
  });
  // Three servers on one state (as at one index on a real cluster); each can be made to fail or to lie.
  const servers = new Map<string, { server: SliceServer; broken?: 'error' | 'hang' | 'forge'; calls: number }>();
  for (const id of ['A', 'B', 'C']) {
    servers.set(id, { server: new SliceServer({ logger: silentLogger(), random: Random.fromSeed(id.charCodeAt(0)), state: () => h.state, raftStatus: status }), calls: 0 });
  }
  let alive: ServerInfo[] = [{ id: 'A', leader: true }, { id: 'B', leader: false }, { id: 'C', leader: false }];
  let changes = 0;
  const client = new SliceClient({
    nodeId: me, logger: silentLogger(), random: Random.fromSeed(3),
    servers: () => alive,
    onChange: () => changes++,
    call: async <Req, Res>(to: string, _m: MethodDescriptor<Req, Res>, request: Req, timeoutMs: number, signal?: AbortSignal): Promise<Res> => {
      const s = servers.get(to)!;
      s.calls++;
      if (s.broken === 'error') throw new ShoalError('ERR_PEER_UNREACHABLE', `${to} is down`);
      if (s.broken === 'hang') {
        return new Promise<Res>((_resolve, reject) => signal?.addEventListener('abort', () => reject(new ShoalError('ERR_CANCELLED', 'cancelled'))));
      }
      const res = await s.server.watch(request as shoal.v1.SliceWatchRequest, { signal: signal ?? AbortSignal.timeout(timeoutMs), timeoutMs, remoteAddress: 'peer', forwardedFrom: me });
      if (s.broken === 'forge') res.allocationsJson = JSON.stringify(h.state.allocationsOnNode(nodeId(2)));
      return res as Res;
    },
  });
  client.start();
  t.teardown(() => client.stop());
  await wait('a fresh slice', () => client.fresh);
  const first = client.server!;
  t.not(first, 'A', 'the leader is watched last');
  t.equal(client.leader, 'A', 'the answer names the leader');
  t.same(client.slice.allocations().map((a) => a.id), h.state.allocationsOnNode(me).map((a) => a.id));
  t.ok(changes >= 1, 'the node runner was kicked');

  // The watched server fails: the client moves on and resumes at its index.
  servers.get(first)!.broken = 'error';
  h.apply({ type: 'job.register', job: job(app(2, 'second'), 'second') });
  h.drain();
  for (const s of servers.values()) s.server.wakeAll(); // one shared state: applied() would drain its touched nodes for the first server only
  await wait('the new job reaches the client through another server', () => client.fresh && client.server !== undefined && client.server !== first && client.slice.index === h.state.index);
  t.equal(client.slice.allocations().length, h.state.allocationsOnNode(me).length);
  const second = client.server!;

  // Gossip drops the watched server while its watch hangs: the client gives up on it without waiting for the link.
  servers.get(second)!.broken = 'hang';
  const hungCalls = servers.get(second)!.calls;
  servers.get(second)!.server.wakeAll();
  await wait('a hanging watch', () => servers.get(second)!.calls > hungCalls);
  alive = alive.filter((s) => s.id !== second);
  await wait('moved off the dropped server', () => client.server !== undefined && client.server !== second, LIMITS.sliceServerCheckMs + 3_000);

  // No server at all: the slice is kept but not fresh.
  for (const s of servers.values()) s.broken = 'error';
  h.apply({ type: 'job.stop', name: 'second' });
  h.drain();
  for (const s of servers.values()) s.server.wakeAll(); // one shared state: applied() would drain its touched nodes for the first server only
  await wait('not fresh without servers', () => !client.fresh);
  t.ok(client.slice.allocations().length > 0, 'the slice (and so the tasks) is kept');

  // A forged answer with another node's allocations is refused and changes nothing.
  const before = client.slice.index;
  for (const s of servers.values()) s.broken = 'forge';
  alive = [{ id: 'A', leader: true }];
  h.apply({ type: 'job.register', job: job(app(4, 'third'), 'third') });
  h.drain();
  await new Promise((r) => setTimeout(r, 300));
  t.equal(client.slice.index, before, 'nothing of the forged answer merged');
  t.notOk(client.fresh);
  for (const s of servers.values()) delete s.broken;
  await wait('fresh again once an honest server answers', () => client.fresh && client.slice.index === h.state.index);

  // Stop then start at once: one loop, not two.
  await client.stop();
  const calls = (): number => [...servers.values()].reduce((n, s) => n + s.calls, 0);
  void client.stop();
  client.start();
  await wait('fresh after a restart', () => client.fresh);
  await new Promise((r) => setTimeout(r, 200));
  const parked = [...servers.values()].reduce((n, s) => n + s.server.watching, 0);
  t.equal(parked, 1, `one watch at a time after a quick stop-start (${calls()} calls in all)`);
});
