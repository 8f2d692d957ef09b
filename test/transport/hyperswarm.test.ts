/**
 * The hyperswarm transport in this process: lifecycle (idempotent start/stop, nothing left behind), argument
 * checks, and a link between two agents sharing 127.0.0.1 (several agents on one address must work too); an idle
 * first agent finds a late joiner through the announcement its DHT node receives, without polling for it.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { HyperswarmTransport, parseBootstrapEntry } from '../../src/transport/hyperswarm-transport.js';
import { LIMITS } from '../../src/lib/limits.js';
import { MessageType } from '../../src/wire/frame.js';
import type { InboundMessage } from '../../src/transport/types.js';

const port = () => 30_000 + Math.floor(Math.random() * 10_000);
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('argument checks', async (t) => {
  t.throws(() => parseBootstrapEntry('10.0.0.5'), { code: 'ERR_INVALID_ARGUMENT', message: /not host:port/ });
  t.throws(() => parseBootstrapEntry('10.0.0.5:0'), { code: 'ERR_INVALID_ARGUMENT' });
  t.equal(parseBootstrapEntry(' 10.0.0.5:49737 '), '10.0.0.5:49737');
  const key = randomBytes(32);
  t.throws(() => new HyperswarmTransport({ clusterKey: key, seed: randomBytes(31), host: '127.0.0.1', port: 1, bootstrap: [] }), { code: 'ERR_INVALID_ARGUMENT' });
  t.throws(() => new HyperswarmTransport({ clusterKey: key, seed: randomBytes(32), host: '127.0.0.1', port: 1, bootstrap: ['nope'] }), { code: 'ERR_INVALID_ARGUMENT' });
  const first = new HyperswarmTransport({ clusterKey: key, seed: randomBytes(32), host: '127.0.0.1', port: 0, bootstrap: [] });
  await t.rejects(first.start(), { code: 'ERR_INVALID_ARGUMENT', message: /explicit IP address and port/ });
  await first.stop();
  const idle = new HyperswarmTransport({ clusterKey: key, seed: randomBytes(32), host: '127.0.0.1', port: port(), bootstrap: [] });
  const r = idle.send(idle.nodeId, { type: MessageType.MESSAGE_TYPE_APP, payload: Buffer.alloc(0) });
  t.notOk(r.ok);
  if (!r.ok) t.equal(r.error.code, 'ERR_TRANSPORT_STOPPED');
  t.throws(() => idle.connect('xyz'), { code: 'ERR_INVALID_ARGUMENT' });
  const seed = randomBytes(32);
  const x1 = new HyperswarmTransport({ clusterKey: key, seed, host: '127.0.0.1', port: 1, bootstrap: [] });
  const x2 = new HyperswarmTransport({ clusterKey: key, seed, host: '127.0.0.1', port: 1, bootstrap: [] });
  t.equal(x1.nodeId, x2.nodeId, 'same seed, same node id');
  t.match(x1.nodeId, /^[0-9a-f]{64}$/);
});

t.test('two agents on one address link up, talk, and stop without leaving a timer behind', async (t) => {
  const before = timers();
  const key = randomBytes(32);
  const p = port();
  const a = new HyperswarmTransport({ clusterKey: key, seed: randomBytes(32), host: '127.0.0.1', port: p, bootstrap: [], nodeName: 'a' });
  const b = new HyperswarmTransport({ clusterKey: key, seed: randomBytes(32), host: '127.0.0.1', port: p + 1, bootstrap: [`127.0.0.1:${p}`], nodeName: 'b' });
  t.teardown(async () => {
    await a.stop();
    await b.stop();
  });
  const startA = a.start();
  t.equal(a.start(), startA, 'start is idempotent');
  await startA;
  await b.start();
  const got: InboundMessage[] = [];
  b.onMessage((m) => got.push(m));
  await until('link a-b', () => a.links().length === 1 && b.links().length === 1);
  t.equal(a.links()[0]!.nodeId, b.nodeId);
  t.equal(a.links()[0]!.nodeName, 'b');
  t.ok(a.send(b.nodeId, { type: MessageType.MESSAGE_TYPE_GOSSIP, group: 'g', payload: Buffer.from('hello') }).ok);
  await until('message', () => got.length === 1);
  t.equal(got[0]!.from, a.nodeId);
  t.equal(got[0]!.envelope.group, 'g');
  t.equal(Buffer.from(got[0]!.envelope.payload).toString(), 'hello');

  const downs: string[] = [];
  a.onLinkDown((id, reason) => downs.push(`${id}:${reason}`));
  await b.stop();
  await b.stop();
  await until('a sees b leave', () => downs.length === 1);
  t.equal(downs[0], `${b.nodeId}:closed`);
  await a.stop();
  await t.rejects(a.start(), { code: 'ERR_TRANSPORT_STOPPED' });
  // hyperswarm/hyperdht close their own timers asynchronously after destroy(); give them a moment.
  await until('timers released', () => timers() <= before, 10_000);
  t.ok(timers() <= before, 'no timer left');
});

t.test('a first agent idle for a while finds a joiner as its announcement arrives, without polling its records', async (t) => {
  const key = randomBytes(32);
  const p = port();
  // No polling at all: only the request hook (and the discovery refresh, a minute away) can find the joiner.
  const a = new HyperswarmTransport({ clusterKey: key, seed: randomBytes(32), host: '127.0.0.1', port: p, bootstrap: [], nodeName: 'a', localRecordsPollWindowMs: 0 });
  const b = new HyperswarmTransport({ clusterKey: key, seed: randomBytes(32), host: '127.0.0.1', port: p + 1, bootstrap: [`127.0.0.1:${p}`], nodeName: 'b', localRecordsPollWindowMs: 0 });
  t.teardown(async () => {
    await b.stop();
    await a.stop();
  });
  await a.start();
  // Past a's early refresh: from now on a reads its records only when a request about the topic arrives.
  await new Promise((r) => setTimeout(r, LIMITS.transportFirstRefreshMs + 500));
  await b.start();
  // Well before a's next discovery refresh, which would also find b (that is what the old polling waited for).
  await until('link a-b', () => a.links().length === 1 && b.links().length === 1, Math.min(20_000, LIMITS.transportDiscoveryRefreshMs / 2));
  t.equal(a.links()[0]!.nodeId, b.nodeId);
});
