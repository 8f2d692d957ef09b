/**
 * The link handshake and framing on in-process stream pairs: authentication, replay and reflection of proofs,
 * version negotiation, bad frames, timeouts and the bounded send queue. Real hyperswarm connections are covered by
 * loopback.test.ts and netns.test.ts; this file drives the exact same Link class byte by byte.
 */
import t from 'tap';
import { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync, writeFileSync, chmodSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Link, type LinkCloseReason, type LinkStream } from '../../src/transport/link.js';
import { computeProof, encodeHello, negotiateVersion, verifyProof } from '../../src/transport/handshake.js';
import { discoveryTopic, linkAuthKey, loadOrCreateNodeSeed, parseClusterKey, loadClusterKey } from '../../src/transport/keys.js';
import { WireVersionError } from '../../src/transport/errors.js';
import { encodeFrame, FrameDecoder, MessageType, type Envelope } from '../../src/wire/frame.js';
import { silentLogger } from '../../src/log/logger.js';
import { LIMITS, checkLimits } from '../../src/lib/limits.js';
import { writeClusterKey } from '../../src/cli/commands/keygen.js';

/** Two connected in-process duplex streams: what one writes, the other reads. */
function streamPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const mk = (other: () => Duplex): Duplex => new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      other().push(chunk);
      cb();
    },
    final(cb) {
      other().push(null);
      cb();
    },
    // Like a real connection: when one end is torn down, the other end closes too.
    destroy(err, cb) {
      if (!other().destroyed) other().destroy();
      cb(err);
    },
  });
  const a = mk(() => ends[1]!);
  const b = mk(() => ends[0]!);
  ends.push(a, b);
  return [a, b];
}

interface Side {
  link: Link;
  up: boolean;
  messages: Envelope[];
  closed: LinkCloseReason | undefined;
}

function side(stream: LinkStream, o: { initiator: boolean; local: Buffer; remote: Buffer; hash: Buffer; key: Buffer; range?: { min: number; max: number }; handshakeTimeoutMs?: number; queueMax?: number }): Side {
  const s: Side = { link: undefined as unknown as Link, up: false, messages: [], closed: undefined };
  s.link = new Link({
    stream, isInitiator: o.initiator, localPublicKey: o.local, remotePublicKey: o.remote, handshakeHash: o.hash,
    remoteAddress: 'test', authKey: linkAuthKey(o.key), range: o.range ?? { min: 1, max: 1 }, nodeName: o.initiator ? 'i' : 'r',
    agentVersion: 'test', logger: silentLogger(), handshakeTimeoutMs: o.handshakeTimeoutMs ?? 5_000,
    ...(o.queueMax !== undefined ? { sendQueueMaxFrames: o.queueMax } : {}),
    handlers: {
      onUp: () => { s.up = true; },
      onMessage: (_l, e) => { s.messages.push(e); },
      onClose: (_l, reason) => { s.closed = reason; },
    },
  });
  return s;
}

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

function pairOfLinks(keyA: Buffer, keyB = keyA, ranges: [{ min: number; max: number }, { min: number; max: number }] = [{ min: 1, max: 1 }, { min: 1, max: 1 }]) {
  const [sa, sb] = streamPair();
  const pa = randomBytes(32);
  const pb = randomBytes(32);
  const hash = randomBytes(64);
  const a = side(sa, { initiator: true, local: pa, remote: pb, hash, key: keyA, range: ranges[0] });
  const b = side(sb, { initiator: false, local: pb, remote: pa, hash, key: keyB, range: ranges[1] });
  a.link.start();
  b.link.start();
  return { a, b, sa, sb, pa, pb, hash };
}

const app = (text: string) => ({ type: MessageType.MESSAGE_TYPE_APP, group: '', payload: Buffer.from(text) });

/** Gives a stream pair datagrams, as hyperswarm's secret stream over UDX has: trySend on one end emits 'message' on the other. */
function withDatagrams(a: Duplex, b: Duplex, drop: (d: Uint8Array) => boolean = () => false): void {
  (a as unknown as LinkStream).trySend = (d: Uint8Array) => { if (!drop(d)) setImmediate(() => b.emit('message', d)); };
  (b as unknown as LinkStream).trySend = (d: Uint8Array) => { if (!drop(d)) setImmediate(() => a.emit('message', d)); };
}

t.test('datagrams: a small frame goes as one datagram and arrives; a large one, or a stream without datagrams, is refused', async (t) => {
  const { a, b, sa, sb } = pairOfLinks(randomBytes(32));
  t.notOk(a.link.sendDatagram(encodeFrame(app('early'))), 'no stream datagrams yet');
  withDatagrams(sa, sb);
  t.notOk(a.link.sendDatagram(encodeFrame(app('early'))), 'not before the link is up');
  await until('both up', () => a.up && b.up);
  t.ok(a.link.sendDatagram(encodeFrame(app('dg'))), 'sent as a datagram');
  await until('datagram delivered', () => b.messages.length === 1);
  t.equal(Buffer.from(b.messages[0]!.payload).toString(), 'dg');
  t.notOk(a.link.sendDatagram(encodeFrame(app('x'.repeat(LIMITS.transportMaxDatagramBytes)))), 'too large: the caller uses the stream');
  t.equal(b.messages.length, 1);
});

t.test('datagrams: garbage, a wrong length, a Hello, or one before the handshake is dropped; the link stays up', async (t) => {
  const { a, b, sa, sb } = pairOfLinks(randomBytes(32));
  withDatagrams(sa, sb);
  sb.emit('message', encodeFrame(app('before the handshake')));
  await until('both up', () => a.up && b.up);
  t.equal(b.messages.length, 0, 'the early datagram was dropped');
  const good = encodeFrame(app('ok'));
  sb.emit('message', randomBytes(40));
  sb.emit('message', good.subarray(0, good.length - 1));
  sb.emit('message', Buffer.concat([good, Buffer.from([0])]));
  sb.emit('message', new Uint8Array([0, 0]));
  sb.emit('message', encodeFrame({ type: MessageType.MESSAGE_TYPE_HELLO, group: '', payload: encodeHello({ range: { min: 1, max: 1 }, proof: randomBytes(32), nodeName: 'x', agentVersion: 'x' }) }));
  await tick(20);
  t.equal(b.messages.length, 0, 'nothing bad was delivered');
  t.equal(b.link.state, 'up');
  t.equal(a.link.sendFrame(encodeFrame(app('stream'))), undefined);
  await until('stream message', () => b.messages.length === 1);
  t.equal(Buffer.from(b.messages[0]!.payload).toString(), 'stream', 'the stream still works');
});

t.test('datagrams: a lost datagram is simply lost (no retransmission), the stream is unaffected', async (t) => {
  const { a, b, sa, sb } = pairOfLinks(randomBytes(32));
  withDatagrams(sa, sb, () => true);
  await until('both up', () => a.up && b.up);
  t.ok(a.link.sendDatagram(encodeFrame(app('lost'))));
  await tick(30);
  t.equal(b.messages.length, 0);
  t.equal(a.link.state, 'up');
});

t.test('two links with the same cluster key authenticate and exchange messages both ways', async (t) => {
  const key = randomBytes(32);
  const { a, b } = pairOfLinks(key);
  await until('both up', () => a.up && b.up);
  t.equal(a.link.remoteName, 'r');
  t.equal(b.link.remoteName, 'i');
  t.equal(a.link.wireVersion, 1);
  t.equal(a.link.sendFrame(encodeFrame(app('ping'))), undefined);
  t.equal(b.link.sendFrame(encodeFrame(app('pong'))), undefined);
  await until('messages', () => a.messages.length === 1 && b.messages.length === 1);
  t.equal(Buffer.from(b.messages[0]!.payload).toString(), 'ping');
  t.equal(Buffer.from(a.messages[0]!.payload).toString(), 'pong');
  a.link.close();
  await until('b sees close', () => b.closed !== undefined);
  t.equal(a.closed?.kind, 'local');
});

t.test('a peer with another cluster key is refused on both ends; nothing is delivered', async (t) => {
  const { a, b } = pairOfLinks(randomBytes(32), randomBytes(32));
  // The impostor (b) even sends application data right after its Hello.
  await tick();
  b.link.sendFrame(encodeFrame(app('sneaky')));
  await until('both closed', () => a.closed !== undefined && b.closed !== undefined);
  t.notOk(a.up, 'initiator never considered the link up');
  t.notOk(b.up);
  t.same(a.messages, [], 'no message reached the owner');
  t.same(b.messages, []);
  t.ok(['auth-failed', 'rejected-by-peer'].includes(a.closed!.kind), `a: ${a.closed!.kind}`);
  t.ok(['auth-failed', 'rejected-by-peer'].includes(b.closed!.kind), `b: ${b.closed!.kind}`);
  t.ok(a.closed!.kind === 'auth-failed' || b.closed!.kind === 'auth-failed', 'at least one side counted an authentication failure');
});

t.test('a proof captured on one connection does not work on another (replay) nor reflected back', async (t) => {
  const key = randomBytes(32);
  const pi = randomBytes(32);
  const pr = randomBytes(32);
  const hash1 = randomBytes(64);
  const hash2 = randomBytes(64);
  // The initiator's genuine Hello on connection 1.
  const proof1 = computeProof({ authKey: linkAuthKey(key), handshakeHash: hash1, initiatorPublicKey: pi, responderPublicKey: pr, role: 'initiator' });
  t.ok(verifyProof({ authKey: linkAuthKey(key), handshakeHash: hash1, initiatorPublicKey: pi, responderPublicKey: pr, role: 'initiator' }, proof1));
  const captured = encodeFrame({ type: MessageType.MESSAGE_TYPE_HELLO, group: '', payload: encodeHello({ range: { min: 1, max: 1 }, proof: proof1, nodeName: 'x', agentVersion: 'x' }) });

  // Replay on connection 2 (same keys, new Noise handshake): the responder refuses it.
  {
    const [raw, sb] = streamPair();
    const b = side(sb, { initiator: false, local: pr, remote: pi, hash: hash2, key });
    const replies: Envelope[] = [];
    const dec = new FrameDecoder('test');
    raw.on('data', (c: Buffer) => replies.push(...dec.push(c)));
    b.link.start();
    raw.write(captured);
    raw.write(encodeFrame(app('after replay')));
    await until('closed', () => b.closed !== undefined);
    t.equal(b.closed!.kind, 'auth-failed', 'replayed proof refused');
    t.same(b.messages, [], 'nothing delivered');
    await until('reject received', () => replies.some((e) => e.type === MessageType.MESSAGE_TYPE_REJECT));
  }
  // Reflection: the responder's own proof for this connection sent back to it.
  {
    const [raw, sb] = streamPair();
    const b = side(sb, { initiator: false, local: pr, remote: pi, hash: hash2, key });
    const dec = new FrameDecoder('test');
    raw.on('data', (c: Buffer) => {
      for (const e of dec.push(c)) if (e.type === MessageType.MESSAGE_TYPE_HELLO) raw.write(encodeFrame(e));
    });
    b.link.start();
    await until('closed', () => b.closed !== undefined);
    t.equal(b.closed!.kind, 'auth-failed', 'reflected proof refused');
  }
});

t.test('no overlap of wire versions: refused with an error naming both ranges', async (t) => {
  const key = randomBytes(32);
  const { a, b } = pairOfLinks(key, key, [{ min: 1, max: 1 }, { min: 2, max: 3 }]);
  await until('both closed', () => a.closed !== undefined && b.closed !== undefined);
  t.notOk(a.up);
  const mismatch = [a.closed!, b.closed!].find((c) => c.kind === 'version-mismatch');
  t.ok(mismatch, 'one side saw the version mismatch');
  t.match(mismatch!.error!.message, /1\.\.1/);
  t.match(mismatch!.error!.message, /2\.\.3/);
  const v = negotiateVersion({ min: 1, max: 3 }, { min: 2, max: 5 });
  t.equal(v, 3, 'the highest common version is chosen');
  t.type(negotiateVersion({ min: 1, max: 1 }, { min: 2, max: 2 }), WireVersionError);
});

t.test('anything but Hello before authentication is refused and not delivered', async (t) => {
  const [raw, sb] = streamPair();
  const b = side(sb, { initiator: false, local: randomBytes(32), remote: randomBytes(32), hash: randomBytes(64), key: randomBytes(32) });
  b.link.start();
  raw.write(encodeFrame(app('no hello')));
  await until('closed', () => b.closed !== undefined);
  t.equal(b.closed!.kind, 'auth-failed');
  t.same(b.messages, []);
});

t.test('a peer that never says Hello is dropped after the handshake timeout', async (t) => {
  const [, sb] = streamPair();
  const b = side(sb, { initiator: false, local: randomBytes(32), remote: randomBytes(32), hash: randomBytes(64), key: randomBytes(32), handshakeTimeoutMs: 50 });
  b.link.start();
  await until('closed', () => b.closed !== undefined);
  t.equal(b.closed!.kind, 'handshake-timeout');
});

t.test('oversized, truncated and random frames on an authenticated link close that link', async (t) => {
  const cases: Array<[string, (s: Duplex) => void]> = [
    ['oversized', (s) => {
      const h = Buffer.alloc(4);
      h.writeUInt32BE(LIMITS.maxFrameBytes + 1);
      s.write(h);
    }],
    ['truncated', (s) => {
      const h = Buffer.alloc(14);
      h.writeUInt32BE(100);
      s.write(h);
      s.end();
    }],
    ['random', (s) => {
      // A plausible length followed by bytes that are not an Envelope.
      const body = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
      const h = Buffer.alloc(4);
      h.writeUInt32BE(body.length);
      s.write(Buffer.concat([h, body]));
    }],
  ];
  for (const [name, inject] of cases) {
    const key = randomBytes(32);
    const { a, b, sa } = pairOfLinks(key);
    await until('up', () => a.up && b.up);
    inject(sa);
    await until(`${name}: closed`, () => b.closed !== undefined);
    t.equal(b.closed!.kind, 'framing', `${name} frame closes the link as a framing error`);
    t.match(b.closed!.detail ?? '', /frame|envelope|stream ended/i, `${name}: ${b.closed!.detail}`);
  }
});

t.test('the send queue is bounded while the stream is backpressured', async (t) => {
  const key = randomBytes(32);
  const { a, b, sa } = pairOfLinks(key);
  await until('up', () => a.up && b.up);
  // Make the stream report backpressure from now on.
  (sa as unknown as { write: (c: Uint8Array) => boolean }).write = () => false;
  const frame = encodeFrame(app('x'));
  t.equal(a.link.sendFrame(frame), undefined, 'first write goes to the stream (which reports full)');
  let refused = 0;
  for (let i = 0; i < LIMITS.transportSendQueueMaxFrames + 10; i++) if (a.link.sendFrame(frame) !== undefined) refused++;
  t.equal(a.link.queuedFrames, LIMITS.transportSendQueueMaxFrames, 'queue holds its maximum');
  t.equal(refused, 10, 'the rest is refused with SendQueueFullError');
  a.link.close();
});

t.test('bulk frames wait behind every other frame beyond a bounded budget, and their queue is bounded', async (t) => {
  const key = randomBytes(32);
  const { a, b, sa } = pairOfLinks(key);
  await until('up', () => a.up && b.up);
  // The stream reports full until we let it drain.
  const realWrite = (sa as unknown as { write: (c: Uint8Array) => boolean }).write.bind(sa);
  let full = true;
  (sa as unknown as { write: (c: Uint8Array) => boolean }).write = (c) => {
    realWrite(c);
    return !full;
  };
  const half = LIMITS.transportBulkInflightBytes / 2;
  const bulk = (text: string) => encodeFrame({ type: MessageType.MESSAGE_TYPE_STREAM, group: '', payload: Buffer.concat([Buffer.from(text), Buffer.alloc(half)]) });
  for (let i = 0; i < 4; i++) t.equal(a.link.sendFrame(bulk(`bulk-${i}`), true), undefined);
  t.ok(a.link.bulkQueuedBytes > 2 * half && a.link.bulkQueuedBytes < 3 * half, 'two frames (the budget) went to the stream, two wait');
  t.equal(a.link.sendFrame(encodeFrame(app('heartbeat'))), undefined, 'a control frame queues behind the full stream');
  full = false;
  sa.emit('drain');
  await until('all delivered', () => b.messages.length >= 5);
  t.same(b.messages.map((m) => Buffer.from(m.payload).subarray(0, 9).toString().replace(/\0+$/, '')), ['bulk-0', 'bulk-1', 'heartbeat', 'bulk-2', 'bulk-3'], 'the control frame overtook the bulk frames still waiting');
  t.equal(a.link.bulkQueuedBytes, 0);
  full = true;
  const big = encodeFrame({ type: MessageType.MESSAGE_TYPE_STREAM, group: '', payload: Buffer.alloc(LIMITS.maxEnvelopePayloadBytes) });
  let refused;
  for (let i = 0; i * big.length <= LIMITS.transportBulkQueueMaxBytes + 4 * big.length && !refused; i++) refused = a.link.sendFrame(big, true);
  t.equal(refused?.code, 'ERR_SEND_QUEUE_FULL', 'a full bulk queue refuses');
  t.ok(a.link.bulkQueuedBytes <= LIMITS.transportBulkQueueMaxBytes);
  a.link.close();
});

t.test('many small bulk frames on a stream that never reports full all go through (no stall after the budget)', async (t) => {
  const key = randomBytes(32);
  const { a, b } = pairOfLinks(key);
  await until('up', () => a.up && b.up);
  const n = Math.ceil((3 * LIMITS.transportBulkInflightBytes) / 1024);
  let refused = 0;
  for (let i = 0; i < n; i++) if (a.link.sendFrame(encodeFrame({ type: MessageType.MESSAGE_TYPE_STREAM, group: '', payload: Buffer.alloc(1024, i & 255) }), true) !== undefined) refused++;
  t.equal(refused, 0, 'every frame is accepted');
  await until(`${n} bulk frames delivered`, () => b.messages.length >= n);
  t.equal(b.messages.length, n, `${n} frames of 1 KiB, three budgets' worth, all arrived`);
  t.equal(a.link.bulkQueuedBytes, 0);
  a.link.close();
});

t.test('cluster key parsing, derived topic and auth key, node seed file', async (t) => {
  const key = randomBytes(32);
  t.same(Buffer.from(parseClusterKey(`${key.toString('hex')}\n`, 'x')), key, 'hex with newline');
  t.same(Buffer.from(parseClusterKey(key, 'x')), key, '32 raw bytes');
  t.throws(() => parseClusterKey('abc', 'file.key'), { code: 'ERR_KEY_FILE', message: /file\.key/ });
  t.throws(() => loadClusterKey({ env: {} }), { code: 'ERR_KEY_FILE', message: /SHOAL_CLUSTER_KEY/ });
  t.same(Buffer.from(loadClusterKey({ env: { SHOAL_CLUSTER_KEY: key.toString('hex') } })), key);
  t.notSame(discoveryTopic(key), linkAuthKey(key), 'topic and auth key differ');
  t.notSame(discoveryTopic(key), discoveryTopic(randomBytes(32)), 'another key, another topic');
  t.equal(discoveryTopic(key).length, 32);

  const dir = mkdtempSync(join(tmpdir(), 'shoal-seed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = loadOrCreateNodeSeed(dir);
  t.ok(first.created);
  t.equal(statSync(join(dir, 'node-key.seed')).mode & 0o777, 0o600, 'seed file is 0600');
  const again = loadOrCreateNodeSeed(dir);
  t.notOk(again.created);
  t.same(again.seed, first.seed, 'stable identity across restarts');
  chmodSync(join(dir, 'node-key.seed'), 0o644);
  t.throws(() => loadOrCreateNodeSeed(dir), { code: 'ERR_KEY_FILE', message: /readable by other users/ });
  writeFileSync(join(dir, 'node-key.seed'), Buffer.alloc(5));
  chmodSync(join(dir, 'node-key.seed'), 0o600);
  t.throws(() => loadOrCreateNodeSeed(dir), { code: 'ERR_KEY_FILE', message: /5 bytes/ });
});

t.test('shoal keygen writes a 0600 key file that the transport reads, and never overwrites by accident', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-keygen-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'cluster.key');
  writeClusterKey(file);
  t.equal(statSync(file).mode & 0o777, 0o600);
  const key = loadClusterKey({ file });
  t.equal(key.length, 32);
  t.throws(() => writeClusterKey(file), { code: 'ERR_KEYGEN', message: /exists already/ });
  const before = readFileSync(file, 'utf8');
  writeClusterKey(file, true);
  t.not(readFileSync(file, 'utf8'), before, '--force replaces it');
  t.throws(() => loadClusterKey({ file: join(dir, 'missing.key') }), { code: 'ERR_KEY_FILE', message: /missing\.key/ });
});

t.test('transport limits keep their relations', async (t) => {
  t.doesNotThrow(() => checkLimits());
  t.throws(() => checkLimits({ ...LIMITS, transportSendQueueMaxBytes: 1024 }));
});
