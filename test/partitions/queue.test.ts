/**
 * Reliable queues (src/partitions/collections.ts): FIFO by enqueue index, leases whose time comes in the command,
 * expired leases returning the item to its place, acks that fail as data; and a seeded model check that every
 * enqueued item is acknowledged exactly once or is still in the queue.
 */
import t from 'tap';
import { Random } from '../../src/lib/random.js';
import { MAX_NOW_MS, type CommandResult, type DequeuedItem } from '../../src/partitions/commands.js';
import { Replica, b, s } from './helpers.js';

function item(r: CommandResult): DequeuedItem {
  if (!r.ok || r.type !== 'dequeue' || r.item === null) throw new Error(`expected an item, got ${JSON.stringify(r)}`);
  return r.item;
}

t.test('dequeue hands out items in FIFO order under a lease; an expired lease returns the item to its place', async (t) => {
  const r = new Replica();
  for (const v of ['a', 'b', 'c']) r.ok({ type: 'enqueue', queue: 'q', value: b(v) }); // 1, 2, 3
  const a1 = item(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 100, nowMs: 1_000 })); // 4
  t.same({ ...a1, value: s(a1.value) }, { itemId: '1.0', value: 'a', enqueueVersion: 1, deliveries: 1, leaseId: '1.0.4', leaseExpiresMs: 1_100 });
  const b1 = item(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 100, nowMs: 1_010 })); // 5
  t.equal(b1.itemId, '2.0', 'a leased item is skipped');
  t.same(r.apply({ type: 'ack', queue: 'q', leaseId: b1.leaseId, nowMs: 1_020 }), { ok: true, type: 'ack', itemId: '2.0' }); // 6
  const view = r.state.queueScan('q');
  t.same(view.ok && view.items.map((i) => [i.itemId, i.deliveries, i.lease?.active ?? null]), [['1.0', 1, true], ['3.0', 0, null]]);

  const a2 = item(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 50, nowMs: 1_100 })); // 7: a's lease ended at 1100
  t.match(a2, { itemId: '1.0', deliveries: 2, leaseId: '1.0.7', leaseExpiresMs: 1_150 }, 'the expired item comes back first, before c');
  t.match(r.apply({ type: 'ack', queue: 'q', leaseId: a1.leaseId, nowMs: 1_101 }), { ok: false, code: 'ERR_LEASE_EXPIRED', field: 'leaseId', message: /delivered again \(lease 1\.0\.7\)/ }, 'the first holder cannot ack any more');
  t.match(r.apply({ type: 'ack', queue: 'q', leaseId: a2.leaseId, nowMs: 1_102 }), { ok: true, itemId: '1.0' });
  t.match(r.apply({ type: 'ack', queue: 'q', leaseId: a2.leaseId, nowMs: 1_103 }), { ok: false, code: 'ERR_LEASE_UNKNOWN', message: /acknowledged already, or never granted/ }, 'acking twice');
  const c1 = item(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 10, nowMs: 1_104 }));
  t.equal(c1.itemId, '3.0');
  t.same(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 10, nowMs: 1_105 }), { ok: true, type: 'dequeue', item: null }, 'every item is leased');
  t.equal(r.state.queueLength('q'), 1);
});

t.test('acks fail as data: after expiry, twice, unknown leases, unknown queues', async (t) => {
  const setup = (): { r: Replica; lease: DequeuedItem } => {
    const r = new Replica();
    r.ok({ type: 'enqueue', queue: 'q', value: b('x') }); // 1
    r.ok({ type: 'enqueue', queue: 'q', value: b('y') }); // 2
    return { r, lease: item(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 10, nowMs: 100 })) }; // 3: lease 1.0.3 until 110
  };
  const cases: { name: string; leaseId?: string; queue?: string; nowMs: number; code?: string; before?: (r: Replica) => void }[] = [
    { name: 'just before expiry', nowMs: 109 },
    { name: 'at expiry', nowMs: 110, code: 'ERR_LEASE_EXPIRED' },
    { name: 'after expiry', nowMs: 5_000, code: 'ERR_LEASE_EXPIRED' },
    { name: 'twice', nowMs: 105, code: 'ERR_LEASE_UNKNOWN', before: (r) => void r.ok({ type: 'ack', queue: 'q', leaseId: '1.0.3', nowMs: 104 }) },
    { name: 'an item never dequeued', leaseId: '2.0.3', nowMs: 105, code: 'ERR_LEASE_UNKNOWN' },
    { name: 'a lease newer than any granted', leaseId: '1.0.9', nowMs: 105, code: 'ERR_LEASE_UNKNOWN' },
    { name: 'an item that never existed', leaseId: '77.0.78', nowMs: 105, code: 'ERR_LEASE_UNKNOWN' },
    { name: 'a queue that does not exist', queue: 'other', nowMs: 105, code: 'ERR_LEASE_UNKNOWN' },
    { name: 'a malformed lease id', leaseId: 'lease-1', nowMs: 105, code: 'ERR_INVALID_ARGUMENT' },
    { name: 'a clock behind the partition\'s (the lease is judged at the partition time)', nowMs: 50, before: (r) => void r.ok({ type: 'put', collection: 'd', key: 'k', value: b(''), nowMs: 108 }) },
    { name: 'a clock behind, after the partition time passed the expiry', nowMs: 50, code: 'ERR_LEASE_EXPIRED', before: (r) => void r.ok({ type: 'put', collection: 'd', key: 'k', value: b(''), nowMs: 110 }) },
  ];
  for (const c of cases) {
    const { r, lease } = setup();
    c.before?.(r);
    const before = r.data();
    const result = r.apply({ type: 'ack', queue: c.queue ?? 'q', leaseId: c.leaseId ?? lease.leaseId, nowMs: c.nowMs });
    if (!c.code) {
      t.match(result, { ok: true, itemId: '1.0' }, c.name);
      continue;
    }
    t.match(result, { ok: false, code: c.code }, c.name);
    t.same(r.data(), before, `${c.name}: nothing changed`);
  }
});

t.test('the partition clock never runs backwards, so an expired lease stays expired', async (t) => {
  const r = new Replica();
  r.ok({ type: 'enqueue', queue: 'q', value: b('x'), nowMs: 1_000 });
  const first = item(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 100, nowMs: 1_000 }));
  r.ok({ type: 'put', collection: 'd', key: 'k', value: b(''), nowMs: 1_200 }); // the lease ended at 1100
  t.equal(r.state.clockMs, 1_200);
  // A new leader whose clock is 500 ms behind proposes a dequeue: the item is available, judged at 1200.
  const again = item(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 100, nowMs: 700 }));
  t.match(again, { itemId: first.itemId, deliveries: 2, leaseExpiresMs: 1_300 }, 'a lease runs from the partition time');
  t.equal(r.state.clockMs, 1_200);
  t.match(r.apply({ type: 'ack', queue: 'q', leaseId: first.leaseId, nowMs: 700 }), { ok: false, code: 'ERR_LEASE_EXPIRED' });
  t.match(r.apply({ type: 'ack', queue: 'q', leaseId: again.leaseId, nowMs: 700 }), { ok: true });
  t.match(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 1, nowMs: MAX_NOW_MS }), { ok: true, item: null }, 'the latest time accepted');
  t.match(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 1, nowMs: MAX_NOW_MS + 1 }), { ok: false, code: 'ERR_INVALID_ARGUMENT', field: 'nowMs' });
});

t.test('dequeue from a queue that is empty or does not exist returns no item and creates nothing', async (t) => {
  const r = new Replica();
  t.same(r.apply({ type: 'dequeue', queue: 'ghost', leaseMs: 5, nowMs: 0 }), { ok: true, type: 'dequeue', item: null });
  t.same(r.state.collections(), []);
  r.ok({ type: 'declare', collections: [{ name: 'empty', kind: 'queue' }] });
  t.same(r.apply({ type: 'dequeue', queue: 'empty', leaseMs: 5, nowMs: 0 }), { ok: true, type: 'dequeue', item: null });
  t.same(r.state.queueScan('ghost'), { ok: true, items: [], index: 3 });
});

t.test('queueScan pages in FIFO order and shows leases', async (t) => {
  const r = new Replica();
  r.ok({ type: 'txn', compares: [], ops: Array.from({ length: 5 }, (_, i) => ({ type: 'enqueue' as const, queue: 'q', value: b(`v${i}`) })) }); // 1.0 .. 1.4
  r.ok({ type: 'enqueue', queue: 'q', value: b('v5') }); // 2.0
  item(r.apply({ type: 'dequeue', queue: 'q', leaseMs: 10, nowMs: 0 })); // 3: 1.0 until 10
  const p1 = r.state.queueScan('q', { limit: 4 });
  t.same(p1.ok && [p1.items.map((i) => i.itemId), p1.continuation], [['1.0', '1.1', '1.2', '1.3'], '1.3']);
  t.same(p1.ok && p1.items[0]!.lease, { leaseId: '1.0.3', expiresMs: 10, active: true });
  const p2 = r.state.queueScan('q', { after: '1.3', limit: 4 });
  t.same(p2.ok && [p2.items.map((i) => i.itemId), p2.continuation], [['1.4', '2.0'], undefined]);
  r.ok({ type: 'put', collection: 'd', key: 'k', value: b(''), nowMs: 10 });
  const p3 = r.state.queueScan('q', { limit: 1 });
  t.same(p3.ok && p3.items[0]!.lease?.active, false, 'at the partition time 10 the lease has ended');
  t.match(r.state.queueScan('q', { after: 'x' }), { ok: false, code: 'ERR_INVALID_ARGUMENT', field: 'after' });
});

/**
 * The model: a list of items in enqueue order, each with its current lease and whether it was acknowledged. Every
 * result the replica gives must be the one the model predicts, and after every step the queue must hold exactly the
 * items not acknowledged, in order.
 */
t.test('model check: every enqueued item is acknowledged exactly once or is still in the queue', async (t) => {
  const seeds = [1, 2, 3, 42, 1234];
  for (const seed of seeds) {
    const rnd = Random.fromSeed(`partition-queue-${seed}`);
    const r = new Replica();
    interface ModelItem { id: string; value: string; leaseId?: string; expiresMs?: number; acks: number }
    const items: ModelItem[] = [];
    const leases: string[] = [];
    let clock = 0;
    let next = 0;
    let problems = 0;
    const problem = (what: string): void => {
      if (problems++ < 5) t.fail(`seed ${seed}, index ${r.next - 1}: ${what}`);
    };
    const ack = (leaseId: string, nowMs: number): void => {
      clock = Math.max(clock, nowMs);
      const res = r.apply({ type: 'ack', queue: 'jobs', leaseId, nowMs });
      const owner = items.find((i) => leaseId.startsWith(`${i.id}.`));
      const want = !owner || owner.acks > 0 ? 'ERR_LEASE_UNKNOWN' : owner.leaseId !== leaseId || owner.expiresMs! <= clock ? 'ERR_LEASE_EXPIRED' : 'ok';
      if ((res.ok ? 'ok' : res.code) !== want) problem(`ack ${leaseId} gave ${res.ok ? 'ok' : res.code}, the model says ${want}`);
      if (res.ok && owner) owner.acks++;
    };
    for (let step = 0; step < 1_500; step++) {
      const nowMs = rnd.chance(0.1) ? Math.max(0, clock - rnd.int(30)) : clock + rnd.int(8);
      const roll = rnd.float();
      if (roll < 0.3) {
        const value = `m${next++}`;
        clock = Math.max(clock, nowMs);
        const res = r.apply({ type: 'enqueue', queue: 'jobs', value: b(value), nowMs });
        if (!res.ok || res.type !== 'enqueue') problem(`enqueue failed: ${JSON.stringify(res)}`);
        else items.push({ id: res.itemId, value, acks: 0 });
      } else if (roll < 0.65) {
        const leaseMs = rnd.intBetween(1, 40);
        clock = Math.max(clock, nowMs);
        const expected = items.find((i) => i.acks === 0 && (i.expiresMs === undefined || i.expiresMs <= clock));
        const res = r.apply({ type: 'dequeue', queue: 'jobs', leaseMs, nowMs });
        const got = res.ok && res.type === 'dequeue' ? res.item : undefined;
        if ((got?.itemId ?? null) !== (expected?.id ?? null)) problem(`dequeue gave ${got?.itemId ?? null}, the model says ${expected?.id ?? null}`);
        if (got && expected) {
          if (s(got.value) !== expected.value) problem(`item ${got.itemId} carries ${s(got.value)}, not ${expected.value}`);
          expected.leaseId = got.leaseId;
          expected.expiresMs = clock + leaseMs;
          if (got.leaseExpiresMs !== expected.expiresMs) problem(`lease ends at ${got.leaseExpiresMs}, the model says ${expected.expiresMs}`);
          leases.push(got.leaseId);
        }
      } else if (roll < 0.95 && leases.length > 0) {
        // Any lease ever granted: live, expired, superseded or acknowledged already.
        ack(rnd.chance(0.7) ? leases[leases.length - 1 - rnd.int(Math.min(5, leases.length))]! : rnd.pick(leases), nowMs);
      } else {
        clock = Math.max(clock, nowMs);
        r.ok({ type: 'put', collection: 'tick', key: 't', value: b(''), nowMs });
      }
      if (r.state.clockMs !== clock) problem(`partition time ${r.state.clockMs}, the model says ${clock}`);
      const inQueue = (r.state.queueScan('jobs') as { items: { itemId: string }[] }).items?.map((i) => i.itemId) ?? [];
      const pending = items.filter((i) => i.acks === 0).map((i) => i.id);
      if (inQueue.join() !== pending.join()) problem(`the queue holds [${inQueue.slice(0, 8)}], the model [${pending.slice(0, 8)}]`);
      if (items.some((i) => i.acks > 1)) problem('an item was acknowledged twice');
    }
    // Drain: past every lease, take and acknowledge everything left.
    const end = clock + 1_000;
    for (;;) {
      const res = r.apply({ type: 'dequeue', queue: 'jobs', leaseMs: 10, nowMs: end });
      const got = res.ok && res.type === 'dequeue' ? res.item : null;
      if (!got) break;
      clock = end;
      const owner = items.find((i) => i.id === got.itemId)!;
      owner.leaseId = got.leaseId;
      owner.expiresMs = end + 10;
      ack(got.leaseId, end);
    }
    t.equal(problems, 0, `seed ${seed}: ${items.length} items, every result as the model predicts`);
    t.ok(items.length > 300 && items.every((i) => i.acks === 1), `seed ${seed}: after draining, every one of ${items.length} items was acknowledged exactly once`);
    t.equal(r.state.queueLength('jobs'), 0, `seed ${seed}: the queue is empty`);
  }
});
