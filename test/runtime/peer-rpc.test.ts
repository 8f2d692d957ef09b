import t, { type Test } from 'tap';
import { MemoryHub } from '../../src/transport/index.js';
import { PeerRpc } from '../../src/runtime/peer-rpc.js';
import { RpcServer, MembersList, AgentSelf } from '../../src/rpc/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { NotFoundError, ShoalError } from '../../src/lib/errors.js';
import { shoal } from '../../src/gen/proto.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

async function pair(t: Test) {
  const hub = new MemoryHub();
  const ta = hub.transport(A);
  const tb = hub.transport(B);
  await ta.start();
  await tb.start();
  ta.connect(B);
  await hub.settle();
  // B serves: a registry of handlers exactly as the agent's API has them.
  const server = new RpcServer({ host: '127.0.0.1', port: 0 });
  server.register(MembersList, (_req, ctx) => shoal.v1.ListMembersResponse.fromObject({ members: [{ name: `served for ${ctx.forwardedFrom?.slice(0, 4)}` }] }));
  server.register(AgentSelf, async (_req, ctx) => {
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    throw new NotFoundError('never');
  });
  const pb = new PeerRpc(tb, silentLogger(), (method, body, timeoutMs, from) => server.dispatch(method, body, timeoutMs, from));
  const pa = new PeerRpc(ta, silentLogger(), async () => { throw new NotFoundError('a serves nothing'); });
  pa.start();
  pb.start();
  t.teardown(() => { pa.stop(); pb.stop(); });
  return { hub, pa, pb };
}

t.test('a forwarded call is served by the other agent\'s handlers and answered', async (t) => {
  const { pa } = await pair(t);
  const res = await pa.call(B, MembersList, shoal.v1.ListMembersRequest.create(), 2_000);
  t.equal(res.members[0]!.name, 'served for aaaa', 'the handler knows who forwarded the call');
});

t.test('errors come back with their code; deadlines and lost links fail the call', async (t) => {
  const { hub, pa } = await pair(t);
  await t.rejects(pa.call(B, AgentSelf, shoal.v1.SelfRequest.create(), 200), { code: 'ERR_DEADLINE_EXCEEDED' });
  const unknown = { ...MembersList, service: 'shoal.v1.Nope' };
  await t.rejects(pa.call(B, unknown, shoal.v1.ListMembersRequest.create(), 2_000), { code: 'ERR_UNKNOWN_METHOD', message: /no RPC method at \/rpc\/shoal\.v1\.Nope\/List/ });
  await t.rejects(pa.call('c'.repeat(64), MembersList, shoal.v1.ListMembersRequest.create(), 2_000), { code: 'ERR_PEER_UNREACHABLE' }, 'no link to that agent');
  const pending = pa.call(B, AgentSelf, shoal.v1.SelfRequest.create(), 5_000);
  hub.cut(A, B);
  await t.rejects(pending, { code: 'ERR_PEER_UNREACHABLE', message: /went down/ }, 'a link that goes down fails the call at once');
});

t.test('a call to a peer whose link is not up yet waits a little for it and goes through once it is', async (t) => {
  const hub = new MemoryHub();
  const ta = hub.transport(A);
  const tb = hub.transport(B);
  await ta.start();
  const server = new RpcServer({ host: '127.0.0.1', port: 0 });
  server.register(MembersList, () => shoal.v1.ListMembersResponse.fromObject({ members: [{ name: 'late' }] }));
  const pb = new PeerRpc(tb, silentLogger(), (method, body, timeoutMs, from) => server.dispatch(method, body, timeoutMs, from));
  const pa = new PeerRpc(ta, silentLogger(), async () => { throw new NotFoundError('a serves nothing'); });
  pa.start();
  pb.start();
  t.teardown(() => { pa.stop(); pb.stop(); });
  t.equal(ta.links().length, 0, 'no link yet: B has not started');
  // B comes up 100 ms into the call (an agent that just joined): the call is served, not failed as unreachable.
  setTimeout(() => void tb.start(), 100);
  const res = await pa.call(B, MembersList, shoal.v1.ListMembersRequest.create(), 2_000);
  t.equal(res.members[0]!.name, 'late', 'the call waited for the link and was served');
  // A peer that never comes up still fails as unreachable, after the wait (half the deadline at most).
  const started = Date.now();
  await t.rejects(pa.call('c'.repeat(64), MembersList, shoal.v1.ListMembersRequest.create(), 400), { code: 'ERR_PEER_UNREACHABLE' });
  t.ok(Date.now() - started < 400, 'within the call\'s deadline');
});

t.test('a request whose link vanished just before the send is sent again once the link is back', async (t) => {
  const { hub, pa } = await pair(t);
  const ta = hub._get(A)!;
  const send = ta.send.bind(ta);
  let refused = 0;
  // The first send finds no link (a duplicate connection was replaced between the check and the send).
  ta.send = (nodeId, message) => (refused++ === 0 ? { ok: false, error: new ShoalError('ERR_NO_LINK', `transport: no authenticated link to node ${nodeId.slice(0, 16)}`) } : send(nodeId, message));
  const res = await pa.call(B, MembersList, shoal.v1.ListMembersRequest.create(), 2_000);
  t.equal(res.members[0]!.name, 'served for aaaa', 'the call went through on the second send');
  t.equal(refused, 2, 'sent twice');
  // A request that did leave and then lost its link is not sent again (it may have been served): it fails.
  const pending = pa.call(B, AgentSelf, shoal.v1.SelfRequest.create(), 5_000);
  await new Promise((r) => setTimeout(r, 20));
  hub.cut(A, B);
  await t.rejects(pending, { code: 'ERR_PEER_UNREACHABLE', message: /went down/ });
});
