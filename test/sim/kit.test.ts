import t from 'tap';
import { Simulator, SimulationFailure, type SimNode, type SimNodeContext } from '../../src/sim/simulator.js';
import { EventQueue } from '../../src/sim/event-queue.js';
import { SimStorage } from '../../src/sim/storage.js';
import { SimNetwork, CALM_LINK } from '../../src/sim/network.js';
import { Trace } from '../../src/sim/trace.js';
import { Random } from '../../src/lib/random.js';

/** A node that pings every other node on each tick and records what it hears. */
class Pinger implements SimNode<{ n: number; pad?: string }> {
  heard: string[] = [];
  sent = 0;
  constructor(readonly ctx: SimNodeContext<{ n: number; pad?: string }>, readonly peers: string[]) {}
  tick(): void {
    for (const p of this.peers) if (p !== this.ctx.id) this.ctx.send(p, { n: this.sent++ });
  }
  deliver(from: string, msg: { n: number }): void {
    this.heard.push(`${from}:${msg.n}`);
  }
}

function pingers(seed: number, extra: Partial<ConstructorParameters<typeof Simulator<{ n: number }>>[0]> = {}) {
  const ids = ['a', 'b', 'c'];
  return new Simulator<{ n: number; pad?: string }>({ seed, nodeIds: ids, tickIntervalMs: 10, createNode: (ctx) => new Pinger(ctx, ids), ...extra });
}

t.test('event queue orders by time, then by insertion', async (t) => {
  const q = new EventQueue<{ atMs: number; seq: number; label: string }>();
  const input = [[5, 0, 'e'], [1, 1, 'a'], [3, 2, 'c'], [1, 3, 'b'], [3, 4, 'd']] as const;
  for (const [atMs, seq, label] of input) q.push({ atMs, seq, label });
  t.equal(q.peek()?.label, 'a');
  t.equal(q.removeWhere((e) => e.label === 'd'), 1);
  const out: string[] = [];
  for (let e = q.pop(); e; e = q.pop()) out.push(e.label);
  t.same(out, ['a', 'b', 'c', 'e']);
  t.throws(() => q.push({ atMs: Number.NaN, seq: 9, label: 'x' }), { code: 'ERR_INVARIANT' });
});

t.test('storage: reads see unsynced writes; a crash drops them; torn crashes keep an ordered prefix', async (t) => {
  const s = new SimStorage();
  s.put('a', { v: 1 });
  t.same(s.get('a'), { v: 1 });
  t.equal(s.durable('a'), undefined);
  s.sync();
  t.same(s.durable('a'), { v: 1 });
  s.put('a', { v: 2 });
  s.delete('a');
  t.equal(s.get('a'), undefined);
  t.same(s.keys(), []);
  t.equal(s.crash(Random.fromSeed(1), 'drop-unsynced'), 2);
  t.same(s.get('a'), { v: 1 }, 'the crash lost the unsynced overwrite and delete');
  const value = s.get('a') as { v: number };
  value.v = 99;
  t.same(s.get('a'), { v: 1 }, 'values are copied out, never aliased');
  // Torn: whatever is kept is a prefix of the pending writes, in order.
  for (let seed = 1; seed <= 30; seed++) {
    const st = new SimStorage();
    for (let i = 1; i <= 5; i++) st.put(`k${i}`, i);
    const lost = st.crash(Random.fromSeed(seed), 'torn');
    const kept = st.keys();
    t.same(kept, ['k1', 'k2', 'k3', 'k4', 'k5'].slice(0, 5 - lost), `seed ${seed}: kept a prefix`);
  }
  t.throws(() => s.put('x', undefined), { code: 'ERR_INVARIANT' });
});

t.test('network: partitions, one-way cuts, loss, duplication, size limit', async (t) => {
  const net = new SimNetwork(Random.fromSeed(3), { defaults: CALM_LINK, maxMessageBytes: 100 });
  t.same(net.fate('a', 'b', 101), { kind: 'drop', reason: 'oversize' });
  net.partition([['a'], ['b', 'c']]);
  t.same(net.fate('a', 'b', 1), { kind: 'drop', reason: 'partitioned' });
  t.same(net.fate('c', 'a', 1), { kind: 'drop', reason: 'partitioned' });
  t.equal(net.fate('b', 'c', 1).kind, 'deliver');
  net.heal();
  net.cutOneWay('a', 'b');
  t.ok(net.isCut('a', 'b'));
  t.notOk(net.isCut('b', 'a'), 'a one-way cut leaves the other direction open');
  net.healLink('a', 'b');
  t.equal(net.cutCount, 0);
  net.setDefaults({ lossRate: 0.3, duplicateRate: 0.2 });
  let lost = 0;
  let dup = 0;
  for (let i = 0; i < 10000; i++) {
    const f = net.fate('a', 'b', 1);
    if (f.kind === 'drop') lost++;
    else if (f.delaysMs.length === 2) dup++;
  }
  t.ok(lost > 2700 && lost < 3300, `loss ~30% (${lost})`);
  t.ok(dup > 1200 && dup < 1600, `duplicates ~20% of delivered (${dup})`);
  net.setLink('a', 'c', { delay: { kind: 'fixed', ms: 7 }, lossRate: 0, duplicateRate: 0 });
  t.same(net.fate('a', 'c', 1), { kind: 'deliver', delaysMs: [7] });
  t.throws(() => net.setDefaults({ lossRate: 2 }), { code: 'ERR_INVARIANT' });
  t.throws(() => net.setLink('a', 'b', { delay: { kind: 'uniform', minMs: 5, maxMs: 1 } }), { code: 'ERR_INVARIANT' });
  net.isolate('c', ['a', 'b', 'c']);
  t.ok(net.isCut('c', 'a') && net.isCut('b', 'c'));
});

t.test('network: reordering lets later messages overtake earlier ones', async (t) => {
  const net = new SimNetwork(Random.fromSeed(5), { defaults: { ...CALM_LINK, delay: { kind: 'fixed', ms: 1 }, reorderRate: 0.5, reorderWindowMs: 100 }, maxMessageBytes: 100 });
  const arrivals = Array.from({ length: 50 }, (_, i) => {
    const f = net.fate('a', 'b', 1);
    return f.kind === 'deliver' ? i + f.delaysMs[0]! : Infinity;
  });
  const inversions = arrivals.filter((x, i) => i > 0 && x < arrivals[i - 1]!).length;
  t.ok(inversions > 0, `${inversions} messages overtook an earlier one`);
});

t.test('the same seed replays the same trace hash; another seed does not', async (t) => {
  const run = (seed: number) => {
    const sim = pingers(seed, { link: { delay: { kind: 'exponential', minMs: 1, meanExtraMs: 5 }, lossRate: 0.1, duplicateRate: 0.1, reorderRate: 0.2, reorderWindowMs: 20 } });
    sim.at(100, 'cut a', () => sim.network.isolate('a', sim.nodeIds()));
    sim.at(200, 'crash b', () => sim.crash('b'));
    sim.at(300, 'heal', () => { sim.network.heal(); sim.restart('b'); });
    sim.runUntil(500);
    return sim.trace.hash();
  };
  t.equal(run(11), run(11));
  t.not(run(11), run(12));
});

t.test('crash stops a node, restart boots a new incarnation from its storage, pause defers its events', async (t) => {
  const sim = pingers(1, { link: { delay: { kind: 'fixed', ms: 1 } } });
  sim.runUntil(50);
  t.ok(sim.isUp('a'));
  sim.crash('a');
  sim.crash('a'); // idempotent
  t.notOk(sim.isUp('a'));
  t.equal(sim.node('a'), undefined);
  t.same(sim.upNodeIds(), ['b', 'c']);
  sim.runUntil(100);
  t.ok(sim.stats().dropped > 0, 'messages to a crashed node are dropped');
  sim.restart('a');
  t.equal(sim.incarnation('a'), 2);
  const fresh = sim.node('a') as Pinger;
  t.same(fresh.heard, [], 'a restarted node keeps nothing but its storage');
  sim.pause('b', 100);
  const heardBefore = (sim.node('b') as Pinger).heard.length;
  sim.runUntil(190);
  t.equal((sim.node('b') as Pinger).heard.length, heardBefore, 'a paused node handles nothing');
  sim.runUntil(220);
  t.ok((sim.node('b') as Pinger).heard.length > heardBefore, 'it catches up when the pause ends');
  t.throws(() => sim.at(0, 'past', () => {}), { code: 'ERR_INVARIANT' });
  t.throws(() => sim.node('nope'), { code: 'ERR_INVARIANT' });
});

t.test('oversized messages are dropped and traced', async (t) => {
  const ids = ['a', 'b'];
  const sim = new Simulator<{ n: number; pad?: string }>({
    seed: 1, nodeIds: ids, tickIntervalMs: 10, maxMessageBytes: 5, keepFullTrace: true,
    createNode: (ctx) => new Pinger(ctx, ids),
  });
  sim.runUntil(30);
  t.ok(sim.trace.full()!.some((l) => l.includes('oversize')));
  t.equal(sim.stats().delivered, 0);
});

t.test('a failing invariant stops the run with the seed and the last events', async (t) => {
  const sim = pingers(77);
  sim.addInvariant('nobody hears more than 5 messages', (s) => {
    for (const id of s.upNodeIds()) if ((s.node(id) as Pinger).heard.length > 5) return `${id} heard ${(s.node(id) as Pinger).heard.length}`;
    return undefined;
  });
  const err = t.throws(() => sim.runUntil(1000)) as SimulationFailure;
  t.ok(err instanceof SimulationFailure);
  t.equal(err.code, 'ERR_SIM_INVARIANT');
  t.equal(err.seed, 77);
  t.match(err.message, /invariant "nobody hears more than 5 messages" failed at virtual time [\d.]+ ms \(event #\d+, seed 77\)/);
  t.ok(err.tail.length > 0 && err.tail.some((l) => l.includes('deliver')), 'the last events are attached');
});

t.test('an event budget stops a run that never ends', async (t) => {
  const sim = pingers(1, { maxEvents: 100 });
  t.throws(() => sim.runUntil(100000), { code: 'ERR_SIM_EVENT_LIMIT' });
});

t.test('runUntilTrue reports success or a timeout', async (t) => {
  const sim = pingers(2);
  t.ok(sim.runUntilTrue(() => (sim.node('a') as Pinger).heard.length >= 3, 1000));
  t.notOk(sim.runUntilTrue(() => false, 50));
});

t.test('trace hash separates line boundaries and keeps a bounded tail', async (t) => {
  const a = new Trace(2);
  a.record('ab');
  a.record('c');
  const b = new Trace(2);
  b.record('a');
  b.record('bc');
  t.not(a.hash(), b.hash());
  a.record('d');
  t.same(a.tail(), ['c', 'd']);
  t.equal(a.count, 3);
  t.equal(a.full(), undefined);
});
