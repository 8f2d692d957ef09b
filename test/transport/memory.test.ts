/** The in-memory transport keeps the Transport contract: links, delivery in order, cuts, pool and queue bounds. */
import t from 'tap';
import { MemoryHub } from '../../src/transport/memory.js';
import { MessageType } from '../../src/wire/frame.js';
import type { InboundMessage, LinkDownReason } from '../../src/transport/types.js';

const app = (text: string) => ({ type: MessageType.MESSAGE_TYPE_APP, payload: Buffer.from(text) });
const text = (m: InboundMessage) => Buffer.from(m.envelope.payload).toString();

t.test('agents that start on a hub link to each other and exchange messages in order', async (t) => {
  const hub = new MemoryHub();
  const [a, b, c] = ['a', 'b', 'c'].map((id) => hub.transport(id)) as [ReturnType<MemoryHub['transport']>, ReturnType<MemoryHub['transport']>, ReturnType<MemoryHub['transport']>];
  const got: string[] = [];
  b.onMessage((m) => got.push(`${m.from}:${text(m)}`));
  const ups: string[] = [];
  a.onLinkUp((l) => ups.push(l.nodeId));
  await a.start();
  await b.start();
  await c.start();
  t.same(ups.sort(), ['b', 'c']);
  for (let i = 0; i < 5; i++) t.ok(a.send('b', app(`m${i}`)).ok);
  t.ok(c.send('b', app('from c')).ok);
  await hub.settle();
  t.same(got, ['a:m0', 'a:m1', 'a:m2', 'a:m3', 'a:m4', 'c:from c']);
  t.equal(a.stats().messagesSent, 5);
  t.equal(b.stats().messagesReceived, 6);
  await Promise.all([a.stop(), b.stop(), c.stop()]);
  await a.stop();
  t.equal(a.send('b', app('x')).ok, false, 'a stopped transport refuses to send');
});

t.test('a cut takes the link down both ways; heal brings it back; sends without a link fail with ERR_NO_LINK', async (t) => {
  const hub = new MemoryHub();
  const a = hub.transport('a');
  const b = hub.transport('b');
  const downs: Array<[string, LinkDownReason]> = [];
  a.onLinkDown((id, r) => downs.push([id, r]));
  await a.start();
  await b.start();
  hub.cut('a', 'b');
  t.same(downs, [['b', 'closed']]);
  const r = a.send('b', app('lost'));
  t.notOk(r.ok);
  if (!r.ok) t.equal(r.error.code, 'ERR_NO_LINK');
  a.connect('b');
  t.same(a.links(), [], 'connect does not cross a cut');
  hub.heal('a', 'b');
  t.same(a.links().map((l) => l.nodeId), ['b']);
  a.forget('b');
  t.same(b.links(), [], 'forget closes the link on both sides');
});

t.test('messages in flight when the link goes down are dropped, not delivered late', async (t) => {
  const hub = new MemoryHub();
  const a = hub.transport('a');
  const b = hub.transport('b');
  const got: string[] = [];
  b.onMessage((m) => got.push(text(m)));
  await a.start();
  await b.start();
  a.send('b', app('x'));
  hub.cut('a', 'b');
  await hub.settle();
  t.same(got, []);
});

t.test('the link pool is bounded: the least recently used link is closed first', async (t) => {
  const hub = new MemoryHub();
  const a = hub.transport('a', { maxLinks: 2 });
  const others = ['b', 'c', 'd'].map((id) => hub.transport(id));
  const downs: Array<[string, LinkDownReason]> = [];
  a.onLinkDown((id, r) => downs.push([id, r]));
  await a.start();
  await others[0]!.start();
  await others[1]!.start();
  a.send('b', app('keep b warm'));
  await others[2]!.start();
  t.same(downs, [['c', 'evicted']], 'c was the least recently used');
  t.same(a.links().map((l) => l.nodeId).sort(), ['b', 'd']);
  t.equal(a.stats().evictions, 1);
});

t.test('the per-link queue is bounded and an unknown message type is refused', async (t) => {
  const hub = new MemoryHub();
  const a = hub.transport('a', { sendQueueMaxFrames: 3 });
  const b = hub.transport('b');
  await a.start();
  await b.start();
  const results = Array.from({ length: 5 }, () => a.send('b', app('x')));
  t.same(results.map((r) => r.ok), [true, true, true, false, false]);
  const full = results[3]!;
  if (!full.ok) t.equal(full.error.code, 'ERR_SEND_QUEUE_FULL');
  await hub.settle();
  t.ok(a.send('b', app('room again')).ok, 'delivery frees the queue');
  const bad = a.send('b', { type: 999 as MessageType, payload: Buffer.alloc(0) });
  t.notOk(bad.ok);
  t.throws(() => hub.transport('a'), { code: 'ERR_INVALID_ARGUMENT' });
});
