/**
 * The behaviour every PartitionStore must have, as one suite: the memory store runs it here, and the SQLite store
 * (src/runtime, to come) runs the same suite, so the simulator and the agent cannot disagree on what a store does.
 *
 * `copy` makes a consistent copy of a store between applies (serialise and restore; copy the database file).
 */
import type { Test } from 'tap';
import type { PartitionStore, QueueItemRecord, StoreTxn } from '../../src/partitions/store.js';

export interface StoreFactory {
  name: string;
  create(): PartitionStore;
  copy(store: PartitionStore): PartitionStore;
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

function inTxn(store: PartitionStore, index: number, fn: (txn: StoreTxn) => void): void {
  const txn = store.begin();
  fn(txn);
  txn.setApplied(index, 0);
  txn.commit();
}

function dict(store: PartitionStore, txn?: StoreTxn): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of (txn ?? store).scan('d', undefined, undefined, 1000)) out[e.key] = `${text(e.value)}@${e.version}`;
  return out;
}

function queue(reader: Pick<PartitionStore, 'queueScan'>, name = 'q'): string[] {
  return reader.queueScan(name, undefined, 1000).map((i) => `${i.index}.${i.ordinal}:${text(i.value)}${i.lease ? `@${i.lease.index}<${i.lease.expiresMs}` : ''}`);
}

export function storeCompliance(t: Test, factory: StoreFactory): void {
  t.test(`${factory.name}: a new store is empty`, async (t) => {
    const s = factory.create();
    t.equal(s.appliedIndex(), 0);
    t.equal(s.clockMs(), 0);
    t.same(s.collections(), []);
    t.equal(s.get('d', 'k'), undefined);
    t.same(s.scan('d', undefined, undefined, 10), []);
    t.equal(s.queueLength('q'), 0);
    t.equal(s.queueNextAvailable('q', 0), undefined);
    t.equal(s.meta('m'), undefined);
  });

  t.test(`${factory.name}: a transaction sees its own writes; the store sees them once committed`, async (t) => {
    const s = factory.create();
    const txn = s.begin();
    txn.putCollection({ name: 'd', kind: 'dictionary', createVersion: 1, declared: false });
    txn.put('d', { key: 'a', value: bytes('1'), version: 1 });
    txn.setMeta('session/c1', bytes('r1'));
    txn.setApplied(1, 500);
    t.same(dict(s, txn), { a: '1@1' });
    t.equal(text(txn.meta('session/c1')), 'r1');
    t.equal(txn.appliedIndex(), 1);
    txn.commit();
    t.same(dict(s), { a: '1@1' });
    t.same(s.collections(), [{ name: 'd', kind: 'dictionary', createVersion: 1, declared: false }]);
    t.equal(s.appliedIndex(), 1);
    t.equal(s.clockMs(), 500);
    t.throws(() => txn.put('d', { key: 'b', value: bytes('2'), version: 2 }), { code: 'ERR_INVARIANT' }, 'a committed transaction is closed');
  });

  t.test(`${factory.name}: metaKeys lists one prefix in UTF-8 order, and sees the open transaction's rows`, async (t) => {
    const s = factory.create();
    inTxn(s, 1, (x) => {
      for (const k of ['s/b', 's/\u{1F600}', 's/\uFFFD', 's/a', 'sa', 'r/z', 's']) x.setMeta(k, bytes(k));
    });
    t.same(s.metaKeys('s/'), ['s/a', 's/b', 's/\uFFFD', 's/\u{1F600}'], 'U+FFFD sorts before an astral character, as in UTF-8');
    t.same(s.metaKeys('q'), []);
    t.same(s.metaKeys(''), ['r/z', 's', 's/a', 's/b', 's/\uFFFD', 's/\u{1F600}', 'sa']);
    const txn = s.begin();
    txn.setMeta('s/a', undefined);
    txn.setMeta('s/c', bytes('c'));
    t.same(txn.metaKeys('s/'), ['s/b', 's/c', 's/\uFFFD', 's/\u{1F600}']);
    txn.rollback();
    t.same(s.metaKeys('s/'), ['s/a', 's/b', 's/\uFFFD', 's/\u{1F600}']);
  });

  t.test(`${factory.name}: rollback undoes every kind of write`, async (t) => {
    const s = factory.create();
    inTxn(s, 1, (x) => {
      x.putCollection({ name: 'd', kind: 'dictionary', createVersion: 1, declared: false });
      x.putCollection({ name: 'q', kind: 'queue', createVersion: 1, declared: true });
      x.put('d', { key: 'a', value: bytes('1'), version: 1 });
      x.put('d', { key: 'b', value: bytes('2'), version: 1 });
      x.putQueueItem('q', { index: 1, ordinal: 0, value: bytes('x'), deliveries: 0 });
      x.putQueueItem('q', { index: 1, ordinal: 1, value: bytes('y'), deliveries: 0 });
      x.setMeta('m', bytes('old'));
    });
    const before = { dict: dict(s), queue: queue(s), collections: s.collections(), meta: text(s.meta('m')) };
    const txn = s.begin();
    txn.putCollection({ name: 'd', kind: 'dictionary', createVersion: 1, declared: true });
    txn.putCollection({ name: 'd2', kind: 'dictionary', createVersion: 2, declared: false });
    txn.put('d', { key: 'a', value: bytes('changed'), version: 2 });
    txn.delete('d', 'b');
    txn.put('d', { key: 'c', value: bytes('new'), version: 2 });
    txn.put('d2', { key: 'z', value: bytes('new'), version: 2 });
    txn.putQueueItem('q', { index: 1, ordinal: 0, value: bytes('x'), deliveries: 1, lease: { index: 2, expiresMs: 10 } });
    txn.deleteQueueItem('q', { index: 1, ordinal: 1 });
    txn.putQueueItem('q', { index: 2, ordinal: 0, value: bytes('z'), deliveries: 0 });
    txn.putQueueItem('q2', { index: 2, ordinal: 0, value: bytes('z'), deliveries: 0 });
    txn.setMeta('m', undefined);
    txn.setMeta('m2', bytes('new'));
    txn.setApplied(2, 99);
    t.same(dict(s, txn), { a: 'changed@2', c: 'new@2' }, 'the transaction sees its writes');
    txn.rollback();
    t.same({ dict: dict(s), queue: queue(s), collections: s.collections(), meta: text(s.meta('m')) }, before);
    t.same(s.scan('d2', undefined, undefined, 10), []);
    t.equal(s.queueLength('q2'), 0);
    t.equal(s.meta('m2'), undefined);
    t.equal(s.appliedIndex(), 1);
    t.equal(s.clockMs(), 0);
    t.throws(() => txn.commit(), { code: 'ERR_INVARIANT' }, 'a rolled-back transaction is closed');
  });

  t.test(`${factory.name}: one transaction at a time; the applied index and clock only move forward`, async (t) => {
    const s = factory.create();
    const txn = s.begin();
    t.throws(() => s.begin(), { code: 'ERR_INVARIANT' });
    txn.setApplied(5, 100);
    txn.commit();
    const next = s.begin();
    t.throws(() => next.setApplied(5, 100), { code: 'ERR_INVARIANT' }, 'the same index twice');
    t.throws(() => next.setApplied(6, 99), { code: 'ERR_INVARIANT' }, 'the clock going back');
    next.rollback();
  });

  t.test(`${factory.name}: scans follow UTF-8 byte order, with an inclusive start, an exclusive end and a limit`, async (t) => {
    const s = factory.create();
    // U+FFFD sorts before U+1F600 in UTF-8 (EF BF BD < F0 9F 98 80), though not in UTF-16 (0xFFFD > 0xD83D).
    const keys = ['b', 'a', 'ab', '\u{1F600}', '\uFFFD', 'é', 'B', 'a\u0000'];
    inTxn(s, 1, (x) => {
      x.putCollection({ name: 'd', kind: 'dictionary', createVersion: 1, declared: false });
      for (const k of keys) x.put('d', { key: k, value: bytes(k), version: 1 });
    });
    const all = s.scan('d', undefined, undefined, 100).map((e) => e.key);
    t.same(all, ['B', 'a', 'a\u0000', 'ab', 'b', 'é', '\uFFFD', '\u{1F600}']);
    t.same(s.scan('d', 'a', 'b', 100).map((e) => e.key), ['a', 'a\u0000', 'ab']);
    t.same(s.scan('d', 'a\u0000', undefined, 2).map((e) => e.key), ['a\u0000', 'ab']);
    t.same(s.scan('d', undefined, 'a', 100).map((e) => e.key), ['B']);
    t.same(s.scan('d', '\uFFFE', undefined, 100).map((e) => e.key), ['\u{1F600}']);
    t.same(s.scan('other', undefined, undefined, 100), []);
  });

  t.test(`${factory.name}: queues keep FIFO order by position; a lease ends at its expiry`, async (t) => {
    const s = factory.create();
    inTxn(s, 3, (x) => {
      x.putCollection({ name: 'q', kind: 'queue', createVersion: 3, declared: false });
      x.putQueueItem('q', { index: 3, ordinal: 1, value: bytes('b'), deliveries: 0 });
      x.putQueueItem('q', { index: 3, ordinal: 0, value: bytes('a'), deliveries: 0 });
    });
    inTxn(s, 4, (x) => x.putQueueItem('q', { index: 4, ordinal: 0, value: bytes('c'), deliveries: 0 }));
    t.same(queue(s), ['3.0:a', '3.1:b', '4.0:c']);
    inTxn(s, 5, (x) => x.putQueueItem('q', { index: 3, ordinal: 0, value: bytes('a'), deliveries: 1, lease: { index: 5, expiresMs: 100 } }));
    t.same(queue(s), ['3.0:a@5<100', '3.1:b', '4.0:c'], 'a new lease keeps the item in its place');
    t.match(s.queueNextAvailable('q', 99), { index: 3, ordinal: 1 }, 'a live lease hides the item');
    t.match(s.queueNextAvailable('q', 100), { index: 3, ordinal: 0, deliveries: 1 }, 'at its expiry the item is available again, first');
    t.same(s.queueScan('q', { index: 3, ordinal: 0 }, 10).map((i) => i.ordinal), [1, 0], 'after is exclusive');
    t.same(s.queueScan('q', { index: 3, ordinal: 5 }, 10).map((i) => i.index), [4], 'after need not be an item');
    t.same(s.queueScan('q', undefined, 1).length, 1);
    inTxn(s, 6, (x) => x.deleteQueueItem('q', { index: 3, ordinal: 1 }));
    t.same(queue(s), ['3.0:a@5<100', '4.0:c']);
    t.equal(s.queueLength('q'), 2);
    t.match(s.queueItem('q', { index: 4, ordinal: 0 }), { value: bytes('c'), deliveries: 0 });
    t.equal(s.queueItem('q', { index: 3, ordinal: 1 }), undefined);
  });

  t.test(`${factory.name}: values are copied in and out`, async (t) => {
    const s = factory.create();
    const v = bytes('abc');
    const item: QueueItemRecord = { index: 1, ordinal: 0, value: bytes('q'), deliveries: 0 };
    inTxn(s, 1, (x) => {
      x.putCollection({ name: 'd', kind: 'dictionary', createVersion: 1, declared: false });
      x.putCollection({ name: 'q', kind: 'queue', createVersion: 1, declared: false });
      x.put('d', { key: 'k', value: v, version: 1 });
      x.putQueueItem('q', item);
    });
    v[0] = 0x7a;
    item.value[0] = 0x7a;
    const got = s.get('d', 'k')!;
    t.equal(text(got.value), 'abc', 'changing the buffer written does not change the store');
    got.value[0] = 0x7a;
    t.equal(text(s.get('d', 'k')!.value), 'abc', 'changing the buffer read does not change the store');
    t.equal(text(s.queueItem('q', item)!.value), 'q');
  });

  t.test(`${factory.name}: a copy holds the same state and is independent`, async (t) => {
    const s = factory.create();
    inTxn(s, 7, (x) => {
      x.putCollection({ name: 'd', kind: 'dictionary', createVersion: 7, declared: true });
      x.putCollection({ name: 'q', kind: 'queue', createVersion: 7, declared: false });
      x.put('d', { key: 'k', value: bytes('v'), version: 7 });
      x.putQueueItem('q', { index: 7, ordinal: 0, value: bytes('i'), deliveries: 2, lease: { index: 7, expiresMs: 1234 } });
      x.setMeta('sessions', bytes('{}'));
    });
    const c = factory.copy(s);
    t.equal(c.appliedIndex(), 7);
    t.same(c.collections(), s.collections());
    t.same(dict(c), dict(s));
    t.same(queue(c), queue(s));
    t.equal(text(c.meta('sessions')), '{}');
    inTxn(c, 8, (x) => x.put('d', { key: 'k2', value: bytes('v2'), version: 8 }));
    t.equal(s.get('d', 'k2'), undefined, 'writing to the copy leaves the original alone');
  });
}
