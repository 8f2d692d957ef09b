/**
 * The in-memory PartitionStore (src/partitions/memory-store.ts): the store compliance suite, and what is its own,
 * the canonical snapshot.
 */
import t from 'tap';
import { MemoryPartitionStore } from '../../src/partitions/memory-store.js';
import { storeCompliance } from './store-compliance.js';

storeCompliance(t, {
  name: 'memory',
  create: () => new MemoryPartitionStore(),
  copy: (store) => MemoryPartitionStore.fromSnapshot((store as MemoryPartitionStore).snapshot()),
});

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

t.test('a snapshot is canonical: the same state in any order of writes gives the same bytes', async (t) => {
  const a = new MemoryPartitionStore();
  const b = new MemoryPartitionStore();
  let txn = a.begin();
  txn.putCollection({ name: 'd', kind: 'dictionary', createVersion: 1, declared: false });
  txn.putCollection({ name: 'c', kind: 'dictionary', createVersion: 1, declared: false });
  txn.put('d', { key: 'x', value: bytes('1'), version: 1 });
  txn.put('d', { key: 'a', value: bytes('2'), version: 1 });
  txn.put('c', { key: 'gone', value: bytes('2'), version: 1 });
  txn.delete('c', 'gone');
  txn.setApplied(1, 10);
  txn.commit();
  txn = b.begin();
  txn.putCollection({ name: 'c', kind: 'dictionary', createVersion: 1, declared: false });
  txn.putCollection({ name: 'd', kind: 'dictionary', createVersion: 1, declared: false });
  txn.put('d', { key: 'a', value: bytes('2'), version: 1 });
  txn.put('d', { key: 'x', value: bytes('1'), version: 1 });
  txn.setApplied(1, 10);
  txn.commit();
  t.same(a.snapshot(), b.snapshot());
  const restored = MemoryPartitionStore.fromSnapshot(a.snapshot());
  t.same(restored.snapshot(), a.snapshot(), 'restoring and snapshotting again gives the same bytes');
});

t.test('a snapshot is refused with a transaction open, and malformed snapshots are decode errors', async (t) => {
  const s = new MemoryPartitionStore();
  const txn = s.begin();
  t.throws(() => s.snapshot(), { code: 'ERR_INVARIANT' });
  txn.rollback();
  const good = JSON.parse(new TextDecoder().decode(s.snapshot()));
  const cases: [string, Uint8Array][] = [
    ['not JSON', bytes('{')],
    ['not UTF-8', new Uint8Array([0xff, 0xfe])],
    ['another format', bytes(JSON.stringify({ ...good, format: 'other/1' }))],
    ['a negative index', bytes(JSON.stringify({ ...good, appliedIndex: -1 }))],
    ['a section missing', bytes(JSON.stringify({ ...good, queues: undefined }))],
    ['a value not hex', bytes(JSON.stringify({ ...good, meta: [['k', 'zz']] }))],
    ['entries of an undeclared dictionary', bytes(JSON.stringify({ ...good, dictionaries: [['d', [['k', '00', 1]]]] }))],
    ['a bad collection kind', bytes(JSON.stringify({ ...good, collections: [{ name: 'd', kind: 'table', createVersion: 1 }] }))],
  ];
  for (const [name, data] of cases) t.throws(() => MemoryPartitionStore.fromSnapshot(data), { code: 'ERR_PARTITION_SNAPSHOT' }, name);
});
