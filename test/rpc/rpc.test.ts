import t, { type Test } from 'tap';
import { spawnSync, spawn } from 'node:child_process';
import net from 'node:net';
import { RpcServer, ShoalClient, parseApiAddress, isLoopback, MembersList, AgentSelf, RemoteError, httpStatusFor } from '../../src/rpc/index.js';
import { NotFoundError } from '../../src/lib/errors.js';
import { LIMITS } from '../../src/lib/limits.js';
import { shoal } from '../../src/gen/proto.js';

const members = [
  { id: 'a'.repeat(64), name: 'n1', address: '127.0.0.1:7001', status: shoal.v1.MemberStatus.MEMBER_STATUS_ALIVE, incarnation: 3, metadata: { agentVersion: '0.1.0', labels: { zone: 'a' }, drivers: ['process'], roles: ['voter'] } },
  { id: 'b'.repeat(64), name: 'n2', address: '127.0.0.1:7002', status: shoal.v1.MemberStatus.MEMBER_STATUS_DEAD, incarnation: 1, metadata: {} },
];

async function startServer(t: Test, extra: Partial<ConstructorParameters<typeof RpcServer>[0]> = {}) {
  const server = new RpcServer({ host: '127.0.0.1', port: 0, health: () => ({ name: 'n1', id: 'a'.repeat(64) }), ...extra });
  server.register(MembersList, (req) => {
    const wanted = req.statuses ?? [];
    return shoal.v1.ListMembersResponse.fromObject({ members: members.filter((m) => wanted.length === 0 || wanted.includes(m.status)) });
  });
  server.register(AgentSelf, async (_req, ctx) => {
    // Hangs until the deadline aborts it: the server must answer ERR_DEADLINE_EXCEEDED, not hang.
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    return shoal.v1.SelfResponse.create();
  });
  const address = await server.start();
  t.teardown(() => server.stop());
  return { server, url: `http://127.0.0.1:${address.port}` };
}

t.test('health, and a typed call over protobuf', async (t) => {
  const { url } = await startServer(t);
  const client = new ShoalClient({ address: url });
  t.same(await client.health(), { status: 'ok', name: 'n1', id: 'a'.repeat(64) });
  const all = await client.members.list();
  t.equal(all.members.length, 2);
  t.equal(all.members[0]!.metadata!.labels!['zone'], 'a');
  const dead = await client.members.list({ statuses: [shoal.v1.MemberStatus.MEMBER_STATUS_DEAD] });
  t.same(dead.members.map((m) => m.name), ['n2']);
});

t.test('proto3 JSON in and out, with enum names and 64-bit integers as decimal strings (more in json.test.ts)', async (t) => {
  const { url } = await startServer(t);
  const res = await fetch(`${url}/rpc/shoal.v1.Members/List`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ statuses: ['MEMBER_STATUS_ALIVE'] }) });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /application\/json/);
  const body = await res.json() as { members: { name: string; status: string; incarnation: string }[] };
  t.strictSame(body.members.map((m) => [m.name, m.status, m.incarnation]), [['n1', 'MEMBER_STATUS_ALIVE', '3']]);
  const empty = await fetch(`${url}/rpc/shoal.v1.Members/List`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  t.equal(empty.status, 200, 'an empty JSON body is an empty request');
});

t.test('bad requests get a precise error and a matching HTTP status', async (t) => {
  const { url } = await startServer(t);
  const post = (path: string, body: string | Uint8Array | undefined, type = 'application/json') => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
  const unknown = await post('/rpc/shoal.v1.Nope/Do', '{}');
  t.equal(unknown.status, 404);
  t.match(await unknown.json(), { code: 'ERR_UNKNOWN_METHOD', message: /no RPC method at \/rpc\/shoal\.v1\.Nope\/Do/ });
  const badType = await post('/rpc/shoal.v1.Members/List', 'x', 'text/plain');
  t.equal(badType.status, 415);
  t.equal(badType.headers.get('x-shoal-error-code'), 'ERR_UNSUPPORTED_MEDIA_TYPE');
  const badJson = await post('/rpc/shoal.v1.Members/List', '{"statuses":');
  t.equal(badJson.status, 400);
  t.match(await badJson.json(), { code: 'ERR_INVALID_ARGUMENT', message: /shoal\.v1\.Members\/List: cannot decode the JSON request/ });
  const notObject = await post('/rpc/shoal.v1.Members/List', '[1,2]');
  t.match(await notObject.json(), { code: 'ERR_INVALID_ARGUMENT', message: /must be a JSON object/ });
  const badProto = await post('/rpc/shoal.v1.Members/List', new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), 'application/x-protobuf');
  t.equal(badProto.status, 400);
  t.equal(badProto.headers.get('x-shoal-error-code'), 'ERR_INVALID_ARGUMENT');
  const wrongVerb = await fetch(`${url}/rpc/shoal.v1.Members/List`);
  t.equal(wrongVerb.status, 405);
  const badTimeout = await fetch(`${url}/rpc/shoal.v1.Members/List`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-shoal-timeout-ms': 'soon' }, body: '{}' });
  t.match(await badTimeout.json(), { code: 'ERR_INVALID_ARGUMENT', message: /x-shoal-timeout-ms/ });
  const healthPost = await fetch(`${url}/v1/health`, { method: 'POST' });
  t.equal(healthPost.status, 405);
});

t.test('an oversized body is refused without being buffered, and the server keeps serving', async (t) => {
  const { url } = await startServer(t);
  const big = new Uint8Array(4 * 1024 * 1024 + 1);
  const res = await fetch(`${url}/rpc/shoal.v1.Members/List`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: big }).catch((err: unknown) => err);
  if (res instanceof Response) {
    t.equal(res.status, 413);
    t.equal(res.headers.get('x-shoal-error-code'), 'ERR_REQUEST_TOO_LARGE');
  } else {
    t.pass('the server closed the connection while the oversized body was still streaming');
  }
  t.equal((await new ShoalClient({ address: url }).members.list()).members.length, 2);
});

t.test('handler errors keep their code; unexpected errors become ERR_INTERNAL', async (t) => {
  const server = new RpcServer({ host: '127.0.0.1', port: 0 });
  server.register(MembersList, () => { throw new NotFoundError('no member named "x"', { name: 'x' }); });
  server.register(AgentSelf, () => { throw new TypeError('boom'); });
  t.throws(() => server.register(AgentSelf, () => shoal.v1.SelfResponse.create()), { code: 'ERR_DUPLICATE_METHOD' });
  const { port } = await server.start();
  t.teardown(() => server.stop());
  const client = new ShoalClient({ address: `127.0.0.1:${port}` });
  const notFound = await client.members.list().catch((e: unknown) => e) as RemoteError;
  t.ok(notFound instanceof RemoteError);
  t.equal(notFound.code, 'ERR_NOT_FOUND');
  t.equal(notFound.httpStatus, 404);
  t.equal(notFound.message, 'no member named "x"');
  t.same(notFound.details, { name: 'x' });
  const internal = await client.agent.self().catch((e: unknown) => e) as RemoteError;
  t.equal(internal.code, 'ERR_INTERNAL');
  t.match(internal.message, /internal error in \/rpc\/shoal\.v1\.Agent\/Self: TypeError: boom/);
});

t.test('deadlines: a hanging handler fails within the deadline on both sides', async (t) => {
  const { url } = await startServer(t);
  const raw = await fetch(`${url}/rpc/shoal.v1.Agent/Self`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-shoal-timeout-ms': '100' }, body: '{}' });
  t.equal(raw.status, 504);
  t.match(await raw.json(), { code: 'ERR_DEADLINE_EXCEEDED', message: /shoal\.v1\.Agent\/Self did not complete within its deadline of 100 ms/ });
  const err = await new ShoalClient({ address: url, timeoutMs: 150 }).agent.self().catch((e: unknown) => e) as { code: string };
  t.equal(err.code, 'ERR_DEADLINE_EXCEEDED');
});

t.test('no agent at the address: a clear error, not a hang', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const err = await new ShoalClient({ address: `127.0.0.1:${port}` }).members.list().catch((e: unknown) => e) as Error & { code: string };
  t.equal(err.code, 'ERR_AGENT_UNREACHABLE');
  t.match(err.message, new RegExp(`no agent answers at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
  const health = await new ShoalClient({ address: `127.0.0.1:${port}` }).health().catch((e: unknown) => e) as { code: string };
  t.equal(health.code, 'ERR_AGENT_UNREACHABLE');
  const server = new RpcServer({ host: '127.0.0.1', port });
  await server.start();
  const clash = new RpcServer({ host: '127.0.0.1', port });
  await t.rejects(clash.start(), { code: 'ERR_API_LISTEN', message: new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`) });
  await server.stop();
  await server.stop();
});

/**
 * A TCP front for a real RpcServer that drops the first `drops` connections once the request has started to
 * arrive, as an agent closing an idle keep-alive connection at the moment the client reuses it does.
 */
async function flakyFront(t: Test, target: string, drops: number, how: 'close' | 'reset') {
  const [host, port] = new URL(target).host.split(':');
  let connections = 0;
  const front = net.createServer((socket) => {
    connections++;
    if (connections <= drops) {
      socket.once('data', () => (how === 'reset' ? socket.resetAndDestroy() : socket.destroy()));
      return;
    }
    const upstream = net.connect(Number(port), host!);
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => front.close(() => r())));
  return { url: `http://127.0.0.1:${(front.address() as net.AddressInfo).port}`, connections: () => connections };
}

t.test('a connection the agent drops as the request arrives is retried on a fresh one, a bounded number of times', async (t) => {
  const { url } = await startServer(t);
  for (const how of ['close', 'reset'] as const) {
    const once = await flakyFront(t, url, 1, how);
    const res = await new ShoalClient({ address: once.url }).members.list();
    t.equal(res.members.length, 2, `${how}: the retried call is answered`);
    t.equal(once.connections(), 2, `${how}: on a second connection`);
    // Never more than LIMITS.rpcStaleConnectionAttempts tries: an agent that drops every connection is reported
    // unreachable, with the cause. Two stale connections in a row (after a stall) are still got past.
    const twice = await flakyFront(t, url, 2, how);
    t.equal((await new ShoalClient({ address: twice.url }).members.list()).members.length, 2, `${how}: answered after two drops`);
    t.equal(twice.connections(), 3, `${how}: on a third connection`);
    const always = await flakyFront(t, url, Infinity, how);
    const err = await new ShoalClient({ address: always.url }).members.list().catch((e: unknown) => e) as Error & { code: string };
    t.equal(err.code, 'ERR_AGENT_UNREACHABLE', `${how}: unreachable`);
    t.match(err.message, /no agent answers at http:\/\/127\.0\.0\.1:\d+ \((UND_ERR_SOCKET|ECONNRESET|EPIPE)\)/);
    t.equal(always.connections(), LIMITS.rpcStaleConnectionAttempts, `${how}: after exactly ${LIMITS.rpcStaleConnectionAttempts} tries`);
  }
});

t.test('addresses: URLs, host:port and :port; bad ones are named', async (t) => {
  t.equal(parseApiAddress('http://127.0.0.1:7646'), 'http://127.0.0.1:7646');
  t.equal(parseApiAddress('127.0.0.1:9000'), 'http://127.0.0.1:9000');
  t.equal(parseApiAddress(':9000'), 'http://127.0.0.1:9000');
  t.equal(parseApiAddress('https://agent.example'), 'https://agent.example');
  t.throws(() => parseApiAddress(''), { code: 'ERR_INVALID_ARGUMENT' });
  t.throws(() => parseApiAddress('127.0.0.1'), { message: /has no port/ });
  t.throws(() => parseApiAddress('ftp://x:1'), { message: /must use http or https/ });
  t.throws(() => parseApiAddress('http://[bad'), { message: /not a valid agent address/ });
  t.equal(new ShoalClient({}).baseUrl, process.env['SHOAL_ADDR'] ? parseApiAddress(process.env['SHOAL_ADDR']) : 'http://127.0.0.1:7646');
  t.ok(isLoopback('127.0.0.1') && isLoopback('::1') && isLoopback('::ffff:127.0.0.5'));
  t.notOk(isLoopback('10.77.0.2') || isLoopback(undefined) || isLoopback('::ffff:10.0.0.1'));
  t.equal(httpStatusFor('ERR_NO_QUORUM'), 503);
  t.equal(httpStatusFor('ERR_GROUP_ID_TOO_LONG'), 400);
  t.equal(httpStatusFor('ERR_SOMETHING_ELSE'), 500);
});

// Remote access: a caller in a network namespace of our own reaches the API through a veth pair.
const ns = `shoal-rpc-${process.pid}`;
const canNetns = process.getuid?.() === 0 && spawnSync('ip', ['netns', 'add', ns]).status === 0;
if (canNetns) spawnSync('ip', ['netns', 'del', ns]);

t.test('remote callers need the bearer token; without one configured they are refused', { skip: canNetns ? false : 'needs root and `ip netns` to place a caller outside loopback' }, async (t) => {
  const hostIf = `shr${process.pid % 100000}h`;
  const nsIf = `shr${process.pid % 100000}n`;
  const run = (...args: string[]) => {
    const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
  };
  t.teardown(() => {
    spawnSync('ip', ['link', 'del', hostIf]);
    spawnSync('ip', ['netns', 'del', ns]);
  });
  run('ip', 'netns', 'add', ns);
  run('ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
  run('ip', 'link', 'set', nsIf, 'netns', ns);
  run('ip', 'addr', 'add', '10.77.253.1/30', 'dev', hostIf);
  run('ip', 'link', 'set', hostIf, 'up');
  run('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', '10.77.253.2/30', 'dev', nsIf);
  run('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up');
  run('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  process.env['SHOAL_NETGUARD_ALLOW'] = '10.77.253.0/30';
  t.teardown(() => { delete process.env['SHOAL_NETGUARD_ALLOW']; });

  const callFromNs = (port: number, token?: string) => new Promise<{ status: number; code: string | null }>((resolve, reject) => {
    const script = `fetch('http://10.77.253.1:${port}/rpc/shoal.v1.Members/List', { method: 'POST', headers: { 'content-type': 'application/json'${token ? `, authorization: 'Bearer ${token}'` : ''} }, body: '{}' })
      .then((r) => console.log(JSON.stringify({ status: r.status, code: r.headers.get('x-shoal-error-code') })), (e) => { console.error(e); process.exit(3); });`;
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { env: process.env });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as { status: number; code: string | null }) : reject(new Error(`caller exited ${code}`))));
  });

  const open = new RpcServer({ host: '10.77.253.1', port: 0 });
  open.register(MembersList, () => shoal.v1.ListMembersResponse.create());
  const { port: openPort } = await open.start();
  t.teardown(() => open.stop());
  t.same(await callFromNs(openPort), { status: 403, code: 'ERR_PERMISSION_DENIED' }, 'no token configured: remote access is off');

  const guarded = new RpcServer({ host: '10.77.253.1', port: 0, token: 's3cret' });
  guarded.register(MembersList, () => shoal.v1.ListMembersResponse.create());
  const { port } = await guarded.start();
  t.teardown(() => guarded.stop());
  t.same(await callFromNs(port), { status: 401, code: 'ERR_UNAUTHENTICATED' }, 'no token sent');
  t.same(await callFromNs(port, 'wrong'), { status: 401, code: 'ERR_UNAUTHENTICATED' }, 'wrong token');
  t.same(await callFromNs(port, 's3cret'), { status: 200, code: null }, 'right token');
});
