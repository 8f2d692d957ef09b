/**
 * Forwarded connections over peer links (src/mesh/streams.ts): real TCP sockets at both ends, the in-memory
 * transport between the two agents. Covers data both ways, half-close, large transfers within the windows, refused
 * opens (so the caller can try another endpoint), links going down, and peers that break the protocol.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { MemoryHub, type MemoryTransport } from '../../src/transport/memory.js';
import { MessageType } from '../../src/wire/frame.js';
import { StreamMux, StreamOpenError, type StreamTarget } from '../../src/mesh/streams.js';
import { silentLogger } from '../../src/log/logger.js';
import { LIMITS } from '../../src/lib/limits.js';
import { shoal } from '../../src/gen/proto.js';

interface Pair {
  hub: MemoryHub;
  a: MemoryTransport;
  b: MemoryTransport;
  muxA: StreamMux;
  muxB: StreamMux;
}

/** Two agents: `a` opens streams, `b` runs the "task" listening on `port` (resolve maps every target there). */
async function pair(t: Test, resolve: (target: StreamTarget) => { host: string; port: number } | { code: string; reason: string }): Promise<Pair> {
  const hub = new MemoryHub();
  const a = hub.transport('a');
  const b = hub.transport('b');
  const muxA = new StreamMux({ transport: a, logger: silentLogger(), resolve: () => ({ code: 'ERR_NOT_ENDPOINT', reason: 'nothing runs on a' }) });
  const muxB = new StreamMux({ transport: b, logger: silentLogger(), resolve });
  a.onMessage((m) => m.envelope.type === MessageType.MESSAGE_TYPE_STREAM && muxA.receive(m.from, m.envelope.payload));
  b.onMessage((m) => m.envelope.type === MessageType.MESSAGE_TYPE_STREAM && muxB.receive(m.from, m.envelope.payload));
  a.onLinkDown((peer) => muxA.linkDown(peer));
  b.onLinkDown((peer) => muxB.linkDown(peer));
  await a.start();
  await b.start();
  t.teardown(async () => {
    muxA.stop();
    muxB.stop();
    await Promise.all([a.stop(), b.stop()]);
  });
  return { hub, a, b, muxA, muxB };
}

async function listen(t: Test, onConnection: (s: net.Socket) => void): Promise<number> {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => undefined); // streams that are reset reset their task's connection too
    onConnection(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => {
    for (const s of open) s.destroy();
    server.close(() => r());
  }));
  return (server.address() as net.AddressInfo).port;
}

/** A client socket as the mesh hands it over: connected, paused, nothing read. */
async function clientSocket(t: Test): Promise<{ client: net.Socket; inner: net.Socket }> {
  const accepted: net.Socket[] = [];
  const port = await listen(t, (s) => accepted.push(s));
  const server = accepted;
  const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  client.on('error', () => undefined); // a reset stream resets the client: the tests look at 'close'
  await once(client, 'connect');
  while (server.length === 0) await new Promise((r) => setImmediate(r));
  const inner = server[0]!;
  inner.pause();
  t.teardown(() => {
    client.destroy();
    inner.destroy();
  });
  return { client, inner };
}

function collect(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => socket.once('end', () => resolve(Buffer.concat(chunks))));
}

const target: StreamTarget = { allocId: 'alloc-1', targetPort: 80, service: 'job/web' };

t.test('a stream carries bytes both ways and passes half-closes on', async (t) => {
  const taskPort = await listen(t, (s) => {
    // An echo task that upper-cases and closes its side once the client has closed its own.
    s.on('data', (d: Buffer) => s.write(d.toString().toUpperCase()));
    s.on('end', () => s.end('!'));
  });
  const { muxA, muxB } = await pair(t, () => ({ host: '127.0.0.1', port: taskPort }));
  const { client, inner } = await clientSocket(t);
  await muxA.open('b', target, inner);
  t.equal(muxA.openWith('b'), 1);
  const got = collect(client);
  client.write('hello ');
  client.write('mesh');
  client.end();
  t.equal((await got).toString(), 'HELLO MESH!');
  if (!client.destroyed) await new Promise((r) => client.once('close', r));
  await new Promise((r) => setTimeout(r, 20));
  t.equal(muxA.openWith('b'), 0, 'the opener forgot the stream once both sides ended');
  t.equal(muxB.openWith('a'), 0, 'and so did the acceptor');
  t.equal(muxA.stats().opened, 1);
  t.equal(muxB.stats().accepted, 1);
});

t.test('a transfer far larger than the window arrives whole, in order, and never overruns the window', async (t) => {
  const size = 24 * 1024 * 1024;
  const payload = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) payload.writeUInt32LE(i, i);
  const taskPort = await listen(t, (s) => {
    s.end(payload);
  });
  const { a, muxA, muxB } = await pair(t, () => ({ host: '127.0.0.1', port: taskPort }));
  // Watch every frame b sends to a: the bytes of DATA not yet granted back never exceed the window.
  let outstanding = 0;
  let worst = 0;
  a.onMessage((m) => {
    const p = m.envelope.payload;
    if (p[0] === shoal.v1.StreamFrameKind.STREAM_FRAME_KIND_DATA) {
      outstanding += p.length - 5;
      worst = Math.max(worst, outstanding);
    }
  });
  const origSend = a.send.bind(a);
  a.send = (nodeId, message) => {
    const p = message.payload;
    if (p[0] === shoal.v1.StreamFrameKind.STREAM_FRAME_KIND_CREDIT) outstanding -= Buffer.from(p.subarray(5)).readUInt32BE(0);
    return origSend(nodeId, message);
  };
  const { client, inner } = await clientSocket(t);
  await muxA.open('b', target, inner);
  client.end();
  const got = await collect(client);
  t.equal(got.length, size);
  t.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(payload).digest('hex'), 'same bytes');
  t.ok(worst <= LIMITS.meshStreamWindowBytes, `at most one window in flight (worst ${worst})`);
  t.ok(muxB.stats().bytesSent >= size);
});

t.test('an open the peer cannot serve fails with its reason and leaves the client untouched', async (t) => {
  const { muxA } = await pair(t, () => ({ code: 'ERR_NOT_ENDPOINT', reason: 'allocation alloc-1 is stopping' }));
  const { client, inner } = await clientSocket(t);
  client.write('early bytes');
  const err = await muxA.open('b', target, inner).then(() => undefined, (e: unknown) => e);
  t.type(err, StreamOpenError);
  t.equal((err as StreamOpenError).code, 'ERR_NOT_ENDPOINT');
  t.match((err as Error).message, /stopping/);
  t.notOk(inner.destroyed, 'the client connection is still open for the next endpoint');
  t.equal(muxA.openWith('b'), 0);
  // The bytes are still unread in the socket: the next endpoint gets them.
  inner.resume();
  const [first] = await once(inner, 'data') as [Buffer];
  t.equal(first.toString(), 'early bytes');
});

t.test('a task that refuses the connection fails the open with ERR_CONNECT', async (t) => {
  // Nothing listens on a port that was bound and closed.
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const dead = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const { muxA, muxB } = await pair(t, () => ({ host: '127.0.0.1', port: dead }));
  const { inner } = await clientSocket(t);
  const err = await muxA.open('b', target, inner).then(() => undefined, (e: unknown) => e);
  t.type(err, StreamOpenError);
  t.equal((err as StreamOpenError).code, 'ERR_CONNECT');
  t.match((err as Error).message, new RegExp(`127\\.0\\.0\\.1:${dead}`));
  t.notOk(inner.destroyed);
  t.equal(muxB.openWith('a'), 0, 'the acceptor keeps nothing');
});

t.test('a link going down ends its streams; opening without a link fails at once', async (t) => {
  const taskPort = await listen(t, (s) => s.on('data', () => undefined));
  const { hub, muxA } = await pair(t, () => ({ host: '127.0.0.1', port: taskPort }));
  const { client, inner } = await clientSocket(t);
  await muxA.open('b', target, inner);
  client.write('x');
  const closed = new Promise((r) => client.once('close', r));
  hub.cut('a', 'b');
  await closed;
  t.equal(muxA.openWith('b'), 0, 'the stream is gone');
  const next = await clientSocket(t);
  const err = await muxA.open('b', target, next.inner).then(() => undefined, (e: unknown) => e);
  t.type(err, StreamOpenError);
  t.equal((err as StreamOpenError).code, 'ERR_NO_LINK');
});

t.test('a peer that sends more than the window, or garbage, gets its stream reset and nothing else breaks', async (t) => {
  const received: Buffer[] = [];
  const taskPort = await listen(t, (s) => s.on('data', (d: Buffer) => received.push(d)));
  // `a` here is a bare transport with no mux: the test speaks the protocol by hand.
  const hub = new MemoryHub();
  const a = hub.transport('a');
  const b = hub.transport('b');
  const muxB = new StreamMux({ transport: b, logger: silentLogger(), resolve: () => ({ host: '127.0.0.1', port: taskPort }) });
  b.onMessage((m) => m.envelope.type === MessageType.MESSAGE_TYPE_STREAM && muxB.receive(m.from, m.envelope.payload));
  await a.start();
  await b.start();
  t.teardown(async () => {
    muxB.stop();
    await Promise.all([a.stop(), b.stop()]);
  });
  const frame = (kind: number, id: number, body: Uint8Array): Uint8Array => {
    const p = Buffer.alloc(5 + body.length);
    p[0] = kind;
    p.writeUInt32BE(id, 1);
    Buffer.from(body).copy(p, 5);
    return p;
  };
  const send = (p: Uint8Array) => a.send('b', { type: MessageType.MESSAGE_TYPE_STREAM, payload: p });
  const resets: string[] = [];
  a.onMessage((m) => {
    const p = m.envelope.payload;
    if (p[0] === shoal.v1.StreamFrameKind.STREAM_FRAME_KIND_RESET) resets.push(shoal.v1.StreamReset.decode(p.subarray(5)).code);
  });
  send(frame(shoal.v1.StreamFrameKind.STREAM_FRAME_KIND_OPEN, 7, shoal.v1.StreamOpen.encode({ allocId: 'x', targetPort: 80, service: 'job/web' }).finish()));
  for (let i = 0; i < 50 && muxB.openWith('a') === 0; i++) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 30));
  // One window and one byte more, in one frame (before any grant could widen the window).
  send(frame(shoal.v1.StreamFrameKind.STREAM_FRAME_KIND_DATA, 7, Buffer.alloc(LIMITS.meshStreamWindowBytes + 1)));
  for (let i = 0; i < 100 && !resets.includes('ERR_PROTOCOL'); i++) await new Promise((r) => setTimeout(r, 5));
  t.ok(resets.includes('ERR_PROTOCOL'), `the stream that overran its window was reset (${resets.join(',')})`);
  t.equal(muxB.openWith('a'), 0);
  send(new Uint8Array([3, 0]));
  send(frame(99, 8, new Uint8Array(0)));
  send(frame(shoal.v1.StreamFrameKind.STREAM_FRAME_KIND_OPEN, 9, new Uint8Array([0xff, 0xff, 0xff])));
  await new Promise((r) => setTimeout(r, 20));
  t.ok(resets.length >= 2, 'garbage is answered with resets, never a crash');
  t.equal(muxB.openWith('a'), 0);
});

t.test('opens waiting on a peer gossip suspects fail at once; open streams stay', async (t) => {
  const hub = new MemoryHub();
  const a = hub.transport('a');
  const b = hub.transport('b'); // frozen: receives, never answers
  const mux = new StreamMux({ transport: a, logger: silentLogger(), resolve: () => ({ code: 'ERR_NOT_ENDPOINT', reason: 'none' }) });
  a.onMessage((m) => m.envelope.type === MessageType.MESSAGE_TYPE_STREAM && mux.receive(m.from, m.envelope.payload));
  await a.start();
  await b.start();
  t.teardown(async () => {
    mux.stop();
    await Promise.all([a.stop(), b.stop()]);
  });
  const { inner } = await clientSocket(t);
  const started = Date.now();
  const opening = mux.open('b', target, inner).then(() => undefined, (e: unknown) => e);
  await new Promise((r) => setTimeout(r, 50));
  mux.peerUnreachable('b');
  const err = await opening;
  t.type(err, StreamOpenError);
  t.equal((err as StreamOpenError).code, 'ERR_PEER_UNREACHABLE');
  t.ok(Date.now() - started < LIMITS.meshRemoteOpenTimeoutMs, 'well before the open timeout');
  t.notOk(inner.destroyed, 'the client is left for the next endpoint');
});
