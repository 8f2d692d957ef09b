/**
 * The partition state machine (src/partitions/collections.ts): dictionaries, conditional writes, transactions,
 * collections and their kinds, scans, the change feed, and what an apply persists.
 */
import t from 'tap';
import { LIMITS } from '../../src/lib/limits.js';
import { PartitionState } from '../../src/partitions/collections.js';
import type { CommandResult, PartitionCommand } from '../../src/partitions/commands.js';
import { toError } from '../../src/partitions/errors.js';
import { MemoryPartitionStore } from '../../src/partitions/memory-store.js';
import { Replica, b, plain, s } from './helpers.js';

t.test('a put gets the log index as its version; get answers found, value, version and the index read at', async (t) => {
  const r = new Replica();
  t.same(r.apply({ type: 'put', collection: 'cart', key: 'apple', value: b('1') }), { ok: true, type: 'put', version: 1, previousVersion: 0 });
  r.ok({ type: 'put', collection: 'cart', key: 'pear', value: b('2') });
  t.same(r.apply({ type: 'put', collection: 'cart', key: 'apple', value: b('3') }), { ok: true, type: 'put', version: 3, previousVersion: 1 });
  t.same(plain(r.state.get('cart', 'apple')), { ok: true, found: true, value: `hex:${Buffer.from('3').toString('hex')}`, version: 3, index: 3 });
  t.same(r.state.get('cart', 'plum'), { ok: true, found: false, index: 3 });
  t.same(r.state.get('nothing', 'plum'), { ok: true, found: false, index: 3 }, 'a collection never written reads as empty');
  t.same(r.apply({ type: 'delete', collection: 'cart', key: 'pear' }), { ok: true, type: 'delete', deleted: true, previousVersion: 2 });
  t.same(r.apply({ type: 'delete', collection: 'cart', key: 'pear' }), { ok: true, type: 'delete', deleted: false, previousVersion: 0 });
  t.same(r.apply({ type: 'delete', collection: 'never', key: 'x' }), { ok: true, type: 'delete', deleted: false, previousVersion: 0 });
  t.same(r.state.collections().map((c) => c.name), ['cart'], 'a delete does not create a collection');
  t.equal(r.state.appliedIndex, 6);
});

t.test('conditional writes: each failure is data, names the current version, and changes nothing', async (t) => {
  type Case = { name: string; setup?: PartitionCommand[]; command: PartitionCommand; code?: string; currentVersion?: number };
  const put = (key: string, condition?: { kind: 'version'; version: number } | { kind: 'absent' }): PartitionCommand => ({ type: 'put', collection: 'd', key, value: b('new'), ...(condition ? { condition } : {}) });
  const seed: PartitionCommand[] = [{ type: 'put', collection: 'd', key: 'k', value: b('old') }]; // k at version 1
  const cases: Case[] = [
    { name: 'put if absent, absent', command: put('other', { kind: 'absent' }) },
    { name: 'put if absent, present', setup: seed, command: put('k', { kind: 'absent' }), code: 'ERR_CONDITION_FAILED', currentVersion: 1 },
    { name: 'put at version, matching', setup: seed, command: put('k', { kind: 'version', version: 1 }) },
    { name: 'put at version, stale', setup: [...seed, ...seed], command: put('k', { kind: 'version', version: 1 }), code: 'ERR_CONDITION_FAILED', currentVersion: 2 },
    { name: 'put at version, absent', command: put('k', { kind: 'version', version: 1 }), code: 'ERR_CONDITION_FAILED', currentVersion: 0 },
    { name: 'delete at version, matching', setup: seed, command: { type: 'delete', collection: 'd', key: 'k', condition: { kind: 'version', version: 1 } } },
    { name: 'delete at version, stale', setup: [...seed, ...seed], command: { type: 'delete', collection: 'd', key: 'k', condition: { kind: 'version', version: 1 } }, code: 'ERR_CONDITION_FAILED', currentVersion: 2 },
    { name: 'delete at version, absent', command: { type: 'delete', collection: 'd', key: 'k', condition: { kind: 'version', version: 1 } }, code: 'ERR_CONDITION_FAILED', currentVersion: 0 },
    { name: 'put at version 0', command: put('k', { kind: 'version', version: 0 }), code: 'ERR_INVALID_ARGUMENT' },
    { name: 'delete if absent', command: { type: 'delete', collection: 'd', key: 'k', condition: { kind: 'absent' } as never }, code: 'ERR_INVALID_ARGUMENT' },
  ];
  for (const c of cases) {
    const r = new Replica();
    for (const cmd of c.setup ?? []) r.ok(cmd);
    const before = r.data();
    const clock = r.state.clockMs;
    const result = r.apply({ ...c.command, nowMs: 50 } as PartitionCommand);
    if (!c.code) {
      t.equal(result.ok, true, c.name);
      continue;
    }
    t.match(result, { ok: false, code: c.code }, c.name);
    if (c.currentVersion !== undefined) t.match(result, { currentVersion: c.currentVersion, field: 'condition' }, `${c.name}: current version`);
    t.same(r.data(), before, `${c.name}: nothing changed`);
    t.equal(r.state.appliedIndex, (c.setup?.length ?? 0) + 1, `${c.name}: the failed command still advanced the applied index`);
    if (c.code === 'ERR_CONDITION_FAILED') t.equal(r.state.clockMs, 50, `${c.name}: and the clock`);
    else t.equal(r.state.clockMs, clock, `${c.name}: an invalid command does not move the clock`);
  }
});

t.test('collections: created on first write or declared; a dictionary and a queue cannot share a name', async (t) => {
  const r = new Replica();
  t.same(r.apply({ type: 'declare', collections: [{ name: 'orders', kind: 'queue' }, { name: 'carts', kind: 'dictionary' }] }), { ok: true, type: 'declare', created: ['orders', 'carts'] });
  r.ok({ type: 'put', collection: 'sessions', key: 'a', value: b('1') });
  t.same(r.apply({ type: 'declare', collections: [{ name: 'sessions', kind: 'dictionary' }, { name: 'orders', kind: 'queue' }] }), { ok: true, type: 'declare', created: [] }, 'declaring again is idempotent');
  t.same(r.state.collections(), [
    { name: 'carts', kind: 'dictionary', createVersion: 1, declared: true },
    { name: 'orders', kind: 'queue', createVersion: 1, declared: true },
    { name: 'sessions', kind: 'dictionary', createVersion: 2, declared: true },
  ]);
  const before = r.data();
  const cases: [string, PartitionCommand | (() => CommandResult | { ok: boolean })][] = [
    ['put into a queue', { type: 'put', collection: 'orders', key: 'k', value: b('v') }],
    ['delete from a queue', { type: 'delete', collection: 'orders', key: 'k' }],
    ['enqueue into a dictionary', { type: 'enqueue', queue: 'carts', value: b('v') }],
    ['dequeue from a dictionary', { type: 'dequeue', queue: 'carts', leaseMs: 10, nowMs: 1 }],
    ['ack on a dictionary', { type: 'ack', queue: 'carts', leaseId: '1.0.2', nowMs: 1 }],
    ['declare a dictionary as a queue', { type: 'declare', collections: [{ name: 'carts', kind: 'queue' }] }],
    ['declare one name as both kinds', { type: 'declare', collections: [{ name: 'fresh', kind: 'queue' }, { name: 'fresh', kind: 'dictionary' }] }],
    ['compare on a queue', { type: 'txn', compares: [{ collection: 'orders', key: 'k', kind: 'absent' }], ops: [{ type: 'put', collection: 'carts', key: 'k', value: b('v') }] }],
    ['get from a queue', () => r.state.get('orders', 'k')],
    ['scan a queue', () => r.state.scan('orders')],
    ['queue-scan a dictionary', () => r.state.queueScan('carts')],
  ];
  for (const [name, what] of cases) {
    const result = typeof what === 'function' ? what() : r.apply(what);
    t.match(result, { ok: false, code: 'ERR_COLLECTION_KIND' }, name);
  }
  const msg = r.apply({ type: 'put', collection: 'orders', key: 'k', value: b('v') });
  t.match(!msg.ok && msg.message, /collection: "orders" is a queue \(since version 1\), not a dictionary/);
  t.same(r.data(), before, 'none of it changed anything');
  t.same(r.state.collections().map((c) => c.name), ['carts', 'orders', 'sessions'], 'the failed declaration created nothing');
});

t.test('scans page through a range in key order with a continuation, bounded by entries and bytes', async (t) => {
  const r = new Replica();
  const keys = Array.from({ length: 25 }, (_, i) => `k${String(i).padStart(2, '0')}`);
  for (const k of [...keys].reverse()) r.ok({ type: 'put', collection: 'd', key: k, value: b(k) });
  const seen: string[] = [];
  let start: string | undefined;
  let pages = 0;
  for (;;) {
    const page = r.state.scan('d', { ...(start === undefined ? {} : { start }), limit: 10 });
    if (!page.ok) throw new Error(page.message);
    pages++;
    seen.push(...page.entries.map((e) => e.key));
    t.equal(page.index, 25);
    if (page.continuation === undefined) break;
    start = page.continuation;
  }
  t.same(seen, keys, 'every key once, in order');
  t.equal(pages, 3, 'pages of 10, 10 and 5: the last page knows it is last');
  const range = r.state.scan('d', { start: 'k05', end: 'k08' });
  t.same(range.ok && range.entries.map((e) => e.key), ['k05', 'k06', 'k07'], 'start inclusive, end exclusive');
  t.same(r.state.scan('d', { start: 'k08', end: 'k05' }), { ok: true, entries: [], index: 25 }, 'an empty range');
  const exact = r.state.scan('d', { end: 'k02', limit: 2 });
  t.same(exact.ok && [exact.entries.length, exact.continuation], [2, undefined], 'a page that ends the range has no continuation');
  t.match(r.state.scan('d', { limit: 0 }), { ok: false, code: 'ERR_INVALID_ARGUMENT', field: 'limit' });
  t.match(r.state.scan('d', { start: '' }), { ok: false, code: 'ERR_INVALID_ARGUMENT', field: 'start' });

  // Bytes: 1 MiB values, 4 MiB pages: three whole entries fit, the fourth would not.
  const big = new Replica();
  const value = new Uint8Array(LIMITS.partitionEntryValueMaxBytes);
  for (let i = 0; i < 6; i++) big.ok({ type: 'put', collection: 'blobs', key: `b${i}`, value });
  const first = big.state.scan('blobs');
  t.same(first.ok && [first.entries.map((e) => e.key), first.continuation], [['b0', 'b1', 'b2'], 'b3'], `a page stops before ${LIMITS.partitionScanMaxPageBytes} bytes`);
});

t.test('transactions: compares on value, version and absence; all or nothing', async (t) => {
  const r = new Replica();
  r.ok({ type: 'put', collection: 'acct', key: 'alice', value: b('100') }); // 1
  r.ok({ type: 'put', collection: 'acct', key: 'bob', value: b('5') }); // 2
  const transfer: PartitionCommand = {
    type: 'txn',
    compares: [
      { collection: 'acct', key: 'alice', kind: 'value', value: b('100') },
      { collection: 'acct', key: 'bob', kind: 'version', version: 2 },
      { collection: 'acct', key: 'carol', kind: 'absent' },
    ],
    ops: [
      { type: 'put', collection: 'acct', key: 'alice', value: b('90') },
      { type: 'put', collection: 'acct', key: 'bob', value: b('15') },
      { type: 'delete', collection: 'acct', key: 'nobody' },
      { type: 'enqueue', queue: 'audit', value: b('alice->bob 10') },
      { type: 'enqueue', queue: 'audit', value: b('fee 0') },
    ],
  };
  t.same(r.apply(transfer), {
    ok: true, type: 'txn', results: [
      { type: 'put', version: 3, previousVersion: 1 },
      { type: 'put', version: 3, previousVersion: 2 },
      { type: 'delete', deleted: false, previousVersion: 0 },
      { type: 'enqueue', itemId: '3.0', version: 3 },
      { type: 'enqueue', itemId: '3.1', version: 3 },
    ],
  });
  t.equal(s((r.state.get('acct', 'alice') as { value: Uint8Array }).value), '90');

  // The same transaction again: every compare now fails; the first failing one is reported.
  const before = r.data();
  const again = r.apply(transfer);
  t.match(again, { ok: false, code: 'ERR_COMPARE_FAILED', compare: 0, currentVersion: 3, field: 'compares[0]' });
  t.match(!again.ok && again.message, /compares\[0\]: key "alice" of "acct" is at version 3, the transaction wanted it to hold the given value; nothing was changed/);
  t.same(r.data(), before);

  const compareCases: [string, PartitionCommand, number, number][] = [
    ['version mismatch', { type: 'txn', compares: [{ collection: 'acct', key: 'bob', kind: 'version', version: 2 }], ops: [] }, 0, 3],
    ['absent but present', { type: 'txn', compares: [{ collection: 'acct', key: 'x', kind: 'absent' }, { collection: 'acct', key: 'bob', kind: 'absent' }], ops: [] }, 1, 3],
    ['value of an absent key', { type: 'txn', compares: [{ collection: 'acct', key: 'zed', kind: 'value', value: b('') }], ops: [] }, 0, 0],
    ['version of a key in a collection never written', { type: 'txn', compares: [{ collection: 'none', key: 'zed', kind: 'version', version: 1 }], ops: [] }, 0, 0],
  ];
  for (const [name, cmd, compare, currentVersion] of compareCases) t.match(r.apply(cmd), { ok: false, code: 'ERR_COMPARE_FAILED', compare, currentVersion }, name);

  // An operation failing midway undoes the ones before it: puts, an enqueue, a dequeue, a new collection.
  const midway = r.apply({
    type: 'txn', nowMs: 1_000, compares: [],
    ops: [
      { type: 'put', collection: 'acct', key: 'alice', value: b('0') },
      { type: 'put', collection: 'brand-new', key: 'k', value: b('v') },
      { type: 'dequeue', queue: 'audit', leaseMs: 100 },
      { type: 'enqueue', queue: 'audit', value: b('x') },
      { type: 'put', collection: 'acct', key: 'bob', value: b('0'), condition: { kind: 'absent' } },
    ],
  });
  t.match(midway, { ok: false, code: 'ERR_CONDITION_FAILED', op: 4, field: 'ops[4].condition', currentVersion: 3 });
  t.match(!midway.ok && midway.message, /^ops\[4\] \(put\) failed, so the transaction changed nothing: /);
  t.same(r.data(), before, 'nothing of the transaction remains');
  t.equal(r.state.clockMs, 1_000, 'though the time it carried was recorded');

  // Operations see the writes of those before them.
  const chained = r.apply({
    type: 'txn', nowMs: 2_000, compares: [],
    ops: [
      { type: 'enqueue', queue: 'jobs', value: b('first') },
      { type: 'dequeue', queue: 'jobs', leaseMs: 100 },
      { type: 'dequeue', queue: 'jobs', leaseMs: 100 },
    ],
  });
  t.match(chained, { ok: true, results: [{ type: 'enqueue', itemId: '10.0' }, { type: 'dequeue', item: { itemId: '10.0', leaseId: '10.0.10', leaseExpiresMs: 2_100 } }, { type: 'dequeue', item: null }] });
  const ack = r.apply({ type: 'txn', nowMs: 2_050, compares: [], ops: [{ type: 'ack', queue: 'jobs', leaseId: '10.0.10' }, { type: 'ack', queue: 'jobs', leaseId: '10.0.10' }] });
  t.match(ack, { ok: false, code: 'ERR_LEASE_UNKNOWN', op: 1 }, 'acking twice in one transaction fails it');
  t.equal(r.state.queueLength('jobs'), 1, 'and the first ack was undone');
});

t.test('malformed commands are refused with the field at fault', async (t) => {
  const r = new Replica();
  const cases: [PartitionCommand, string][] = [
    [{ type: 'put', collection: '', key: 'k', value: b('v') }, 'collection'],
    [{ type: 'put', collection: 'd', key: '', value: b('v') }, 'key'],
    [{ type: 'put', collection: 'd', key: '\udc00', value: b('v') }, 'key'],
    [{ type: 'put', collection: 'd\ud800', key: 'k', value: b('v') }, 'collection'],
    [{ type: 'put', collection: 'd', key: 'k', value: 'v' as never }, 'value'],
    [{ type: 'put', collection: 'd', key: 'k', value: b('v'), nowMs: -1 }, 'nowMs'],
    [{ type: 'put', collection: 'd', key: 'k', value: b('v'), nowMs: 1.5 }, 'nowMs'],
    [{ type: 'put', collection: 'd', key: 'k', value: b('v'), condition: { kind: 'maybe' } as never }, 'condition.kind'],
    [{ type: 'dequeue', queue: 'q', leaseMs: 10 } as PartitionCommand, 'nowMs'],
    [{ type: 'dequeue', queue: 'q', leaseMs: 0, nowMs: 1 }, 'leaseMs'],
    [{ type: 'ack', queue: 'q', leaseId: '1.0', nowMs: 1 }, 'leaseId'],
    [{ type: 'ack', queue: 'q', leaseId: '01.0.2', nowMs: 1 }, 'leaseId'],
    [{ type: 'ack', queue: 'q', leaseId: '1.0.2' } as PartitionCommand, 'nowMs'],
    [{ type: 'txn', compares: [], ops: [] }, 'txn'],
    [{ type: 'txn', compares: [], ops: [{ type: 'dequeue', queue: 'q', leaseMs: 5 }] }, 'nowMs'],
    [{ type: 'txn', compares: [], ops: [{ type: 'put', collection: 'd', key: 'k', value: b('v') }, { type: 'put', collection: 'd', key: '', value: b('v') }] }, 'ops[1].key'],
    [{ type: 'txn', compares: [{ collection: 'd', key: 'k', kind: 'version', version: -3 }], ops: [] }, 'compares[0].version'],
    [{ type: 'txn', compares: [{ collection: 'd', key: 'k', kind: 'newer' } as never], ops: [] }, 'compares[0].kind'],
    [{ type: 'txn', compares: [], ops: [{ type: 'truncate', collection: 'd' } as never] }, 'ops[0].type'],
    [{ type: 'declare', collections: [] }, 'collections'],
    [{ type: 'declare', collections: [{ name: 'x', kind: 'table' as never }] }, 'collections[0].kind'],
  ];
  for (const [cmd, field] of cases) t.match(r.apply(cmd), { ok: false, code: 'ERR_INVALID_ARGUMENT', field }, `${JSON.stringify(cmd).slice(0, 90)} -> ${field}`);
  t.same(r.state.collections(), [], 'none created anything');
  t.equal(r.state.appliedIndex, cases.length);
  t.throws(() => r.state.apply(cases.length, { type: 'put', collection: 'd', key: 'k', value: b('v') }), { code: 'ERR_INVARIANT' }, 'an index that does not increase is a bug');
  t.throws(() => r.state.apply(1.5, { type: 'put', collection: 'd', key: 'k', value: b('v') }), { code: 'ERR_INVARIANT' });
});

t.test('applied index, no-op entries and the runtime\'s own rows go through the store in the apply\'s transaction', async (t) => {
  const store = new MemoryPartitionStore();
  const state = PartitionState.open(store);
  state.apply(3, { type: 'put', collection: 'd', key: 'k', value: b('v') }, {
    withTxn: (txn, result) => txn.setMeta('session/c1', b(JSON.stringify({ seq: 1, result: plain(result) }))),
  });
  t.equal(store.appliedIndex(), 3, 'gaps in the indexes are fine');
  t.match(JSON.parse(s(store.meta('session/c1'))!), { seq: 1, result: { ok: true, version: 3 } });
  state.advance(4, { withTxn: (txn, result) => txn.setMeta('noop', b(String(result))) });
  t.equal(store.appliedIndex(), 4, 'an entry with nothing for the machine still advances the index');
  t.equal(s(store.meta('noop')), 'undefined');
  t.throws(() => state.advance(4), { code: 'ERR_INVARIANT' });
  const failing = state.apply(5, { type: 'put', collection: 'd', key: 'k', value: b('v2'), condition: { kind: 'absent' } }, {
    withTxn: (txn, result) => txn.setMeta('session/c1', b(JSON.stringify({ seq: 2, result }))),
  });
  t.equal(failing.ok, false);
  t.match(JSON.parse(s(store.meta('session/c1'))!), { seq: 2, result: { ok: false, code: 'ERR_CONDITION_FAILED' } }, 'a failed command\'s result is recorded too');

  // A hook that throws is a bug: the whole apply is rolled back and nothing is persisted.
  t.throws(() => state.apply(6, { type: 'put', collection: 'd', key: 'x', value: b('v') }, { withTxn: () => { throw new Error('boom'); } }), { message: 'boom' });
  t.equal(store.appliedIndex(), 5);
  t.equal(store.get('d', 'x'), undefined);
  // Reopening the store resumes where it was.
  const reopened = PartitionState.open(store);
  t.equal(reopened.appliedIndex, 5);
  t.match(reopened.apply(6, { type: 'put', collection: 'd', key: 'x', value: b('v') }), { ok: true, version: 6 });
});

t.test('the change feed: a record per write, filtered, paged by whole versions, compacted with a clear error', async (t) => {
  const r = new Replica(undefined, { changeWindowEntries: LIMITS.partitionTxnMaxOps + 2 });
  r.ok({ type: 'put', collection: 'd', key: 'a', value: b('1') }); // 1
  r.ok({ type: 'put', collection: 'd', key: 'b', value: b('1') }); // 2
  r.ok({ type: 'delete', collection: 'd', key: 'a' }); // 3
  r.ok({ type: 'delete', collection: 'd', key: 'zz' }); // 4: nothing deleted, no record
  r.apply({ type: 'put', collection: 'd', key: 'b', value: b('x'), condition: { kind: 'absent' } }); // 5: failed, no record
  r.ok({ type: 'enqueue', queue: 'q', value: b('i') }); // 6
  const lease = r.ok({ type: 'dequeue', queue: 'q', leaseMs: 10, nowMs: 100 }) as { item: { leaseId: string } }; // 7
  r.ok({ type: 'ack', queue: 'q', leaseId: lease.item.leaseId, nowMs: 105 }); // 8
  r.ok({ type: 'txn', compares: [], ops: [{ type: 'put', collection: 'd', key: 'c', value: b('1') }, { type: 'put', collection: 'e', key: 'c', value: b('1') }] }); // 9
  t.same(r.state.watch(0), {
    ok: true, resumeVersion: 9, changes: [
      { version: 1, collection: 'd', key: 'a', kind: 'put' },
      { version: 2, collection: 'd', key: 'b', kind: 'put' },
      { version: 3, collection: 'd', key: 'a', kind: 'delete' },
      { version: 6, collection: 'q', key: '6.0', kind: 'enqueue' },
      { version: 7, collection: 'q', key: '6.0', kind: 'lease' },
      { version: 8, collection: 'q', key: '6.0', kind: 'ack' },
      { version: 9, collection: 'd', key: 'c', kind: 'put' },
      { version: 9, collection: 'e', key: 'c', kind: 'put' },
    ],
  });
  t.same(r.state.watch(3, { collection: 'd' }), { ok: true, resumeVersion: 9, changes: [{ version: 9, collection: 'd', key: 'c', kind: 'put' }] });
  t.same(r.state.watch(0, { collection: 'd', key: 'a' }).ok && (r.state.watch(0, { collection: 'd', key: 'a' }) as { changes: { version: number }[] }).changes.map((c) => c.version), [1, 3]);
  t.same((r.state.watch(0, { collection: 'd', start: 'b', end: 'c' }) as { changes: { key: string }[] }).changes.map((c) => c.key), ['b']);
  t.same(r.state.watch(9), { ok: true, changes: [], resumeVersion: 9 }, 'up to date');
  t.same(r.state.watch(50), { ok: true, changes: [], resumeVersion: 50 }, 'a watcher ahead of this replica keeps its place');
  // Pages end on a version boundary: a limit of 7 stops inside version 9, so version 9 comes whole.
  const page = r.state.watch(0, {}, 7);
  t.same(page.ok && [page.changes.length, page.resumeVersion], [8, 9]);
  const small = r.state.watch(0, {}, 2);
  t.same(small.ok && [small.changes.map((c) => c.version), small.resumeVersion], [[1, 2], 2]);
  t.match(r.state.watch(0, {}, LIMITS.partitionScanMaxPageEntries + 1), { ok: false, code: 'ERR_PARTITION_LIMIT', limit: 'partitionScanMaxPageEntries' });
  t.match(r.state.watch(-1), { ok: false, code: 'ERR_INVALID_ARGUMENT', field: 'fromVersion' });
  t.match(r.state.watch(0, { key: '' }), { ok: false, code: 'ERR_INVALID_ARGUMENT', field: 'key' });

  // Fill the window past its size with one big transaction: older versions are gone.
  r.ok({ type: 'txn', compares: [], ops: Array.from({ length: LIMITS.partitionTxnMaxOps }, (_, i) => ({ type: 'put' as const, collection: 'd', key: `bulk${i}`, value: b('') })) }); // 10
  t.equal(r.state.changeFloor, 8, 'the window holds the last 130 records: versions 9 and 10');
  const gone = r.state.watch(3);
  t.match(gone, { ok: false, code: 'ERR_WATCH_COMPACTED', compactedVersion: 8, field: 'fromVersion' });
  t.match(!gone.ok && gone.message, /read again, then watch from the index the read returns/);
  t.match(r.state.watch(8), { ok: true, resumeVersion: 10 });
  t.match(r.state.watch(8, {}, 1), { ok: true, resumeVersion: 9 }, 'version 9 alone makes a page');

  // The re-read the error asks for gives the index to watch from.
  const read = r.state.scan('d');
  t.match(read.ok && r.state.watch(read.index), { ok: true, changes: [] });

  // A replica opened on a restored store holds nothing from before its index.
  const restored = r.restore();
  t.equal(restored.state.changeFloor, 10);
  t.match(restored.state.watch(9), { ok: false, code: 'ERR_WATCH_COMPACTED', compactedVersion: 10 });
  restored.ok({ type: 'put', collection: 'd', key: 'after', value: b('') });
  t.same(restored.state.watch(10), { ok: true, resumeVersion: 11, changes: [{ version: 11, collection: 'd', key: 'after', kind: 'put' }] });
});

t.test('the default change window is LIMITS.partitionChangeWindowEntries', async (t) => {
  const r = new Replica();
  const per = LIMITS.partitionTxnMaxOps;
  const txns = Math.ceil(LIMITS.partitionChangeWindowEntries / per) + 1;
  for (let i = 0; i < txns; i++) {
    r.ok({ type: 'txn', compares: [], ops: Array.from({ length: per }, (_, j) => ({ type: 'put' as const, collection: 'd', key: `k${j}`, value: b('') })) });
  }
  t.equal(r.state.changeFloor, txns - Math.floor(LIMITS.partitionChangeWindowEntries / per), 'the oldest versions left the window');
  t.match(r.state.watch(0), { ok: false, code: 'ERR_WATCH_COMPACTED' });
  t.match(r.state.watch(r.state.changeFloor), { ok: true });
});

t.test('the same command applied at two indexes breaks nothing (client sessions normally drop the second)', async (t) => {
  const r = new Replica();
  const commands: PartitionCommand[] = [
    { type: 'put', collection: 'd', key: 'k', value: b('v') },
    { type: 'put', collection: 'd', key: 'n', value: b('v'), condition: { kind: 'absent' } },
    { type: 'delete', collection: 'd', key: 'k' },
    { type: 'enqueue', queue: 'q', value: b('job') },
    { type: 'dequeue', queue: 'q', leaseMs: 1_000, nowMs: 10 },
    { type: 'declare', collections: [{ name: 'x', kind: 'queue' }] },
    { type: 'txn', compares: [], ops: [{ type: 'enqueue', queue: 'q', value: b('a') }, { type: 'put', collection: 'd', key: 't', value: b('1') }] },
  ];
  const results = commands.map((c) => [r.apply(c), r.apply(c)]);
  t.match(results[0], [{ ok: true, version: 1 }, { ok: true, version: 2, previousVersion: 1 }], 'a second put is a new version');
  t.match(results[1], [{ ok: true }, { ok: false, code: 'ERR_CONDITION_FAILED' }], 'a second put-if-absent fails');
  t.match(results[2], [{ ok: true, deleted: true }, { ok: true, deleted: false }]);
  t.match(results[3], [{ ok: true, itemId: '7.0' }, { ok: true, itemId: '8.0' }], 'a second enqueue adds a second item');
  t.match(results[4], [{ ok: true, item: { itemId: '7.0' } }, { ok: true, item: { itemId: '8.0' } }], 'a second dequeue leases the next item');
  const lease = (results[4]![0] as { item: { leaseId: string } }).item.leaseId;
  t.match([r.apply({ type: 'ack', queue: 'q', leaseId: lease, nowMs: 20 }), r.apply({ type: 'ack', queue: 'q', leaseId: lease, nowMs: 20 })], [{ ok: true }, { ok: false, code: 'ERR_LEASE_UNKNOWN' }]);
  t.match(results[6], [{ ok: true, results: [{ itemId: '13.0' }, { version: 13 }] }, { ok: true, results: [{ itemId: '14.0' }, { version: 14 }] }]);
});

t.test('failures become ShoalErrors with the same code at the edge', async (t) => {
  const r = new Replica();
  const limit = r.apply({ type: 'put', collection: 'd', key: 'k'.repeat(LIMITS.partitionEntryKeyMaxBytes + 1), value: b('') });
  const bad = r.apply({ type: 'put', collection: 'd', key: '', value: b('') });
  r.ok({ type: 'put', collection: 'd', key: 'k', value: b('') });
  const cond = r.apply({ type: 'put', collection: 'd', key: 'k', value: b(''), condition: { kind: 'absent' } });
  if (limit.ok || bad.ok || cond.ok) throw new Error('expected failures');
  t.match(toError(limit), { name: 'LimitExceededError', code: 'ERR_PARTITION_LIMIT', details: { limit: 'partitionEntryKeyMaxBytes', max: LIMITS.partitionEntryKeyMaxBytes, field: 'key' } });
  t.match(toError(bad), { name: 'InvalidArgumentError', code: 'ERR_INVALID_ARGUMENT', details: { field: 'key' } });
  t.match(toError(cond), { name: 'ShoalError', code: 'ERR_CONDITION_FAILED', details: { currentVersion: 3 } });
  t.notOk('ok' in toError(cond).details);
});
