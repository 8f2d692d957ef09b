/**
 * A node's slice of the cluster state (src/state/slice.ts) and the server that answers slice watches
 * (src/runtime/slice-server.ts): a client that merges the deltas holds exactly the server's view of its node, it
 * resumes at its index on another server, it never accepts another node's allocations, and a server answers
 * only the node's own agent, only once it has applied what the client holds, and wakes only the watches of the
 * nodes an apply touched.
 */
import t from 'tap';
import fc from 'fast-check';
import { ClusterState, NodeSlice, sliceDelta, type SliceDelta } from '../../src/state/index.js';
import { Random } from '../../src/lib/random.js';
import { SliceServer } from '../../src/runtime/slice-server.js';
import { silentLogger } from '../../src/log/logger.js';
import { shoal } from '../../src/gen/proto.js';
import type { CallContext } from '../../src/rpc/index.js';
import type { Status } from '../../src/consensus/index.js';
import { addNode, harness, job, nodeId, smallApp as app } from './helpers.js';


/** What the node core reads of its node, as plain data, to compare a slice with the full state. */
function view(s: { allocationsOnNode(n: string): { id: string; modifyIndex: number; desiredStatus: string }[]; job(name: string): { version: number } | undefined }, node: string) {
  const allocs = s.allocationsOnNode(node).map((a) => `${a.id}@${a.modifyIndex}:${a.desiredStatus}`).sort();
  const jobs = [...new Set(s.allocationsOnNode(node).map((a) => (a as unknown as { jobName: string }).jobName))].sort().map((j) => `${j}v${s.job(j)?.version}`);
  return { allocs, jobs };
}

t.test('a client that merges deltas holds exactly its node of the state, through changes, collection and a server change', async (t) => {
  const h = harness(7);
  for (let i = 1; i <= 4; i++) addNode(h, i);
  const slices = [1, 2, 3, 4].map((i) => new NodeSlice(nodeId(i)));
  const sync = (): void => {
    for (const s of slices) s.merge(sliceDelta(h.state, s.nodeId, s.index, 10_000));
  };
  h.apply({ type: 'job.register', job: job(app(8)) });
  h.drain();
  sync();
  for (const s of slices) t.same(view(s, s.nodeId), view(h.state, s.nodeId), `node ${s.nodeId.slice(-1)} after placement`);
  t.ok(slices.every((s) => s.complete && s.index === h.state.index));
  // Updates, a scale, a second job, a stop; a second server (a restored copy) serves the next deltas.
  const alloc = h.state.allocationsOnNode(nodeId(2))[0]!;
  h.apply({ type: 'alloc.update', nodeId: nodeId(2), updates: [{ allocId: alloc.id, clientStatus: 'running', clientMessage: '', restarts: 0, driverHandle: 'h' }] });
  h.apply({ type: 'job.scale', name: 'app', service: 'web', replicas: 3 });
  h.drain();
  h.apply({ type: 'job.register', job: job(app(2, 'other'), 'other') });
  h.drain();
  const other = ClusterState.restore(h.state.snapshot());
  for (const s of slices) s.merge(sliceDelta(other, s.nodeId, s.index, 10_000));
  for (const s of slices) t.same(view(s, s.nodeId), view(h.state, s.nodeId), `node ${s.nodeId.slice(-1)} after updates, served by another server`);
  t.equal(slices[1]!.allocation(alloc.id)?.clientStatus, 'running', 'a status report reaches the slice');
  h.apply({ type: 'job.stop', name: 'app' });
  h.drain();
  sync();
  for (const s of slices) t.same(view(s, s.nodeId), view(h.state, s.nodeId), 'after a stop');
  t.ok(slices.every((s) => s.jobs().every((j) => s.allocations().some((a) => a.jobName === j.job.name))), 'a slice keeps only the jobs of its allocations');
});

t.test('deltas carry only what changed, and only for the touched nodes', async (t) => {
  const h = harness(3);
  for (let i = 1; i <= 3; i++) addNode(h, i);
  h.apply({ type: 'job.register', job: job(app(3)) });
  h.drain();
  const at = h.state.index;
  const onOne = h.state.allocationsOnNode(nodeId(1))[0]!;
  h.state.drainTouchedNodes();
  h.apply({ type: 'alloc.update', nodeId: nodeId(1), updates: [{ allocId: onOne.id, clientStatus: 'running', clientMessage: '', restarts: 0, driverHandle: '' }] });
  t.same(h.state.drainTouchedNodes(), [nodeId(1)], 'one report touches one node');
  t.equal(h.state.nodeTouchedIndex(nodeId(1)), h.state.index);
  t.ok(h.state.nodeTouchedIndex(nodeId(2)) <= at, 'the others are untouched');
  const d = sliceDelta(h.state, nodeId(1), at, 100);
  t.same(d.allocations.map((a) => a.id), [onOne.id], 'only the changed allocation');
  t.same(d.jobs, [], 'the job did not change');
  t.same(sliceDelta(h.state, nodeId(2), at, 100).allocations, [], 'nothing for an untouched node');
  h.apply({ type: 'job.scale', name: 'app', service: 'web', replicas: 3 });
  t.same(h.state.drainTouchedNodes().sort(), [nodeId(1), nodeId(2), nodeId(3)], 'a job change touches every node with its allocations');
});

t.test('a node with more changes than one answer carries is sent them in parts, each complete up to its index', async (t) => {
  const h = harness(5);
  addNode(h, 1, { cpu: 100_000 });
  for (const n of ['a', 'b', 'c']) {
    h.apply({ type: 'job.register', job: job(app(5, n), n) });
    h.drain();
  }
  const slice = new NodeSlice(nodeId(1));
  const deltas: SliceDelta[] = [];
  for (let i = 0; i < 10 && !(slice.complete && slice.index === h.state.index); i++) {
    const d = sliceDelta(h.state, nodeId(1), slice.index, 6);
    deltas.push(d);
    slice.merge(d);
  }
  t.ok(deltas.length >= 3, `sent in ${deltas.length} parts`);
  t.ok(deltas.slice(0, -1).every((d) => !d.complete), 'every part but the last says more is coming');
  t.ok(deltas.every((d) => d.allocations.length <= 6 || new Set(d.allocations.map((a) => a.modifyIndex)).size === 1), 'a part is over the limit only when one index placed more');
  t.same(view(slice, nodeId(1)), view(h.state, nodeId(1)));
  t.ok(slice.complete);
  // One plan that placed more than the limit is sent whole rather than never.
  const big = sliceDelta(h.state, nodeId(1), 0, 2);
  t.ok(big.allocations.length === 5 && !big.complete, 'one index whole, then the rest');
});

t.test('an allocation new to a slice brings its job record, however old the job', async (t) => {
  const h = harness(11);
  addNode(h, 1);
  h.apply({ type: 'job.register', job: job(app(1, 'old'), 'old') });
  h.drain();
  const alloc = h.state.allocationsOnNode(nodeId(1))[0]!;
  addNode(h, 2);
  // Node 2's client is up to date, without any allocation (and so without the job).
  const slice = new NodeSlice(nodeId(2));
  slice.merge(sliceDelta(h.state, nodeId(2), 0, 100));
  t.equal(slice.job('old'), undefined);
  // Node 1 fails: its allocation is replaced on node 2; the job did not change.
  t.ok(alloc);
  h.apply({ type: 'node.status', nodeId: nodeId(1), status: 'down' });
  h.drain();
  const moved = h.state.allocationsOnNode(nodeId(2));
  t.equal(moved.length, 1, 'the replacement was placed on node 2');
  t.ok(h.state.job('old')!.modifyIndex <= slice.index, 'the job is older than the slice');
  slice.merge(sliceDelta(h.state, nodeId(2), slice.index, 100));
  t.equal(slice.job('old')?.version, 1, 'the slice has the job record of its new allocation');
});

t.test('a slice refuses another node\'s allocations and ignores an older answer', async (t) => {
  const h = harness(1);
  addNode(h, 1);
  addNode(h, 2);
  h.apply({ type: 'job.register', job: job(app(2)) });
  h.drain();
  const mine = new NodeSlice(nodeId(1));
  t.throws(() => mine.merge(sliceDelta(h.state, nodeId(2), 0, 100)), /belongs to node 0+2, not to this node/);
  t.equal(mine.index, 0, 'nothing merged');
  t.ok(mine.merge(sliceDelta(h.state, nodeId(1), 0, 100)));
  const old = { index: 1, allocIds: [], allocations: [], jobs: [], complete: true };
  t.notOk(mine.merge(old), 'an answer older than the slice is ignored');
  t.equal(mine.allocations().length, 1, 'and loses nothing');
  t.same(mine.allocationsOnNode(nodeId(2)), [], 'a slice knows only its node');
});

t.test('property: any sequence of deltas, from any server, at any limit, converges to the state', async () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 1_000 }), fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 8 }), (seed, ops, limit) => {
    const h = harness(seed);
    for (let i = 1; i <= 3; i++) addNode(h, i);
    const slice = new NodeSlice(nodeId(1));
    const rnd = Random.fromSeed(seed);
    for (const op of ops) {
      if (op <= 2) h.apply({ type: 'job.register', job: job(app(1 + op * 2, `j${op}`), `j${op}`) });
      else if (op === 3) h.apply({ type: 'job.stop', name: 'j1' });
      else {
        const a = h.state.allocationsOnNode(nodeId(1))[0];
        if (a) h.apply({ type: 'alloc.update', nodeId: nodeId(1), updates: [{ allocId: a.id, clientStatus: op === 4 ? 'running' : 'failed', clientMessage: '', restarts: op, driverHandle: '' }] });
      }
      h.drain();
      // Sometimes the client asks in between, sometimes not; every answer comes from a copy at the current index.
      if (rnd.int(2) === 0) slice.merge(sliceDelta(ClusterState.restore(h.state.snapshot()), nodeId(1), slice.index, limit));
    }
    for (let i = 0; i < 100 && !(slice.complete && slice.index === h.state.index); i++) slice.merge(sliceDelta(h.state, nodeId(1), slice.index, limit));
    const expected = view(h.state, nodeId(1));
    const got = view(slice, nodeId(1));
    return JSON.stringify(expected) === JSON.stringify(got) && slice.complete;
  }), { numRuns: 200 });
});

// --- The server ------------------------------------------------------------------------------------------------

const leaderStatus = (): Status => ({
  group: 'cluster', id: 's', role: 'follower', term: 3, vote: undefined, leader: 'L', commit: 0, applied: 0, lastIndex: 0,
  voters: ['L', 's', 'v'], learners: ['r'], leadTransferee: undefined, quiesced: false, progress: {},
});
const ctxFor = (forwardedFrom: string | undefined, timeoutMs = 5_000): CallContext => ({
  signal: AbortSignal.timeout(timeoutMs), timeoutMs, remoteAddress: 'peer', ...(forwardedFrom ? { forwardedFrom } : {}),
});
const watchReq = (node: string, since: number, waitMs = 2_000) => shoal.v1.SliceWatchRequest.fromObject({ nodeId: node, sinceIndex: since, waitMs });

t.test('slice server: only the node\'s own agent, only a server, only once it has applied what the client holds', async (t) => {
  const h = harness(2);
  addNode(h, 1);
  h.apply({ type: 'job.register', job: job(app(1)) });
  h.drain();
  let isServer = true;
  const server = new SliceServer({ logger: silentLogger(), random: Random.fromSeed(1), state: () => (isServer ? h.state : undefined), raftStatus: () => ({ ...leaderStatus(), commit: h.state.index, applied: h.state.index }) });
  await t.rejects(server.watch(watchReq(nodeId(1), 0), ctxFor(undefined)), { code: 'ERR_PERMISSION_DENIED' }, 'not over a peer link');
  await t.rejects(server.watch(watchReq(nodeId(1), 0), ctxFor(nodeId(2))), { code: 'ERR_PERMISSION_DENIED', message: /asked by 0{16}\)/ }, 'another node\'s agent');
  await t.rejects(server.watch(watchReq('', 0), ctxFor(nodeId(1))), { code: 'ERR_INVALID_ARGUMENT' });
  await t.rejects(server.watch(watchReq(nodeId(1), h.state.index + 5, 300), ctxFor(nodeId(1))), { code: 'ERR_SERVER_BEHIND' }, 'a server behind the client refuses rather than send it backwards');
  isServer = false;
  await t.rejects(server.watch(watchReq(nodeId(1), 0), ctxFor(nodeId(1))), { code: 'ERR_NOT_SERVER' });
  isServer = true;
  const first = await server.watch(watchReq(nodeId(1), 0), ctxFor(nodeId(1)));
  t.ok(first.changed && first.fresh && first.complete, 'the first answer is the node\'s whole slice');
  t.equal(first.leaderId, 'L');
  t.same(first.servers, ['L', 's', 'v', 'r'], 'and names the servers');
});

t.test('slice server: a watch waits for a change to its own node, and no other', async (t) => {
  const h = harness(4);
  addNode(h, 1);
  addNode(h, 2);
  const server = new SliceServer({ logger: silentLogger(), random: Random.fromSeed(2), state: () => h.state, raftStatus: () => ({ ...leaderStatus(), commit: h.state.index, applied: h.state.index }) });
  // A job on node 2 only (registering it changes the service catalog, which every client holds).
  h.apply({ type: 'node.eligibility', nodeId: nodeId(1), eligible: false });
  h.apply({ type: 'job.register', job: job(app(1, 'elsewhere'), 'elsewhere') });
  h.drain();
  h.state.drainTouchedNodes();
  server.applied();
  await new Promise((r) => setTimeout(r, 10));
  const since = h.state.index;
  let answered = false;
  const pending = server.watch(watchReq(nodeId(1), since, 5_000), ctxFor(nodeId(1), 10_000)).then((r) => {
    answered = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 50));
  t.equal(server.watching, 1, 'the watch is parked');
  // A change on node 2 only, and none to the catalog: node 1's watch stays parked.
  h.apply({ type: 'job.scale', name: 'elsewhere', service: 'app', replicas: 2 });
  h.drain();
  server.applied();
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(answered, 'a change on another node does not wake it');
  t.ok(h.state.allocationsOnNode(nodeId(2)).length > 0, 'something was placed on node 2');
  h.apply({ type: 'node.eligibility', nodeId: nodeId(1), eligible: true });
  h.apply({ type: 'node.eligibility', nodeId: nodeId(2), eligible: false });
  h.apply({ type: 'job.register', job: job(app(1)) });
  h.drain();
  t.ok(h.state.allocationsOnNode(nodeId(1)).length > 0, 'something was placed on node 1');
  server.applied();
  const res = await pending;
  t.ok(res.changed, 'a change on its node wakes it');
  t.equal(server.watching, 0);
  const allocs = JSON.parse(res.allocationsJson) as { nodeId: string }[];
  t.ok(allocs.length > 0 && allocs.every((a) => a.nodeId === nodeId(1)), 'with only its own allocations');
  const quiet = await server.watch(watchReq(nodeId(1), Number(res.index), 150), ctxFor(nodeId(1)));
  t.notOk(quiet.changed, 'with nothing new, it answers "no change" when the wait ends');
  t.equal(JSON.parse(quiet.allocationsJson).length, 0);
  // Restoring a snapshot (or demotion) wakes everyone.
  const again = server.watch(watchReq(nodeId(1), Number(quiet.index), 5_000), ctxFor(nodeId(1), 10_000));
  await new Promise((r) => setTimeout(r, 20));
  server.wakeAll();
  t.notOk((await again).changed, 'woken with no change: the client simply asks again');
});
