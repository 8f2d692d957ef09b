/**
 * Every limit of LIMITS' "Partitions" section: a violation is an ERR_PARTITION_LIMIT result naming the limit, its
 * value and the field, and it changes nothing; the value at the limit itself is accepted.
 */
import t from 'tap';
import { LIMITS, checkLimits } from '../../src/lib/limits.js';
import type { PartitionCommand } from '../../src/partitions/commands.js';
import type { PartitionLimitName } from '../../src/partitions/errors.js';
import { partitionFor, validateScheme } from '../../src/partitions/scheme.js';
import { Replica, b } from './helpers.js';

const MiB = 1024 * 1024;
const bytesOf = (n: number): Uint8Array => new Uint8Array(n);
const puts = (n: number, size = 0): PartitionCommand => ({ type: 'txn', compares: [], ops: Array.from({ length: n }, (_, i) => ({ type: 'put' as const, collection: 'd', key: `k${i}`, value: bytesOf(size) })) });

t.test('the partition limits hold their relations, and a broken one is caught', async (t) => {
  t.doesNotThrow(() => checkLimits(), 'the new section passes the shared checks (positive integers)');
  t.doesNotThrow(() => checkLimits());
  t.throws(() => checkLimits({ ...LIMITS, partitionEntryValueMaxBytes: LIMITS.partitionCommandMaxBytes }), { message: /largest key and value must fit in one partition command/ });
  t.throws(() => checkLimits({ ...LIMITS, partitionCommandMaxBytes: 4 * MiB }), { message: /one Raft entry/ });
  t.throws(() => checkLimits({ ...LIMITS, partitionChangeWindowEntries: LIMITS.partitionTxnMaxOps - 1 }), { message: /change window must hold every change of one transaction/ });
  t.throws(() => checkLimits({ ...LIMITS, partitionScanMaxPageBytes: 60 * MiB }), { message: /one RPC response/ });
  t.throws(() => checkLimits({ ...LIMITS, partitionEntryKeyMaxBytes: LIMITS.partitionKeyMaxBytes + 1 }), { message: /partition key/ });
});

interface Case {
  limit: PartitionLimitName;
  field: string;
  /** Over the limit: refused. */
  over: PartitionCommand | ((r: Replica) => unknown);
  /** At the limit: accepted (omitted where "at the limit" is the refused case's neighbour elsewhere). */
  at?: PartitionCommand | ((r: Replica) => unknown);
  /** Commands applied first. */
  setup?: PartitionCommand[];
}

const KEY = LIMITS.partitionEntryKeyMaxBytes;
const VALUE = LIMITS.partitionEntryValueMaxBytes;
const NAME = LIMITS.partitionCollectionNameMaxBytes;

const cases: Case[] = [
  { limit: 'partitionEntryKeyMaxBytes', field: 'key', over: { type: 'put', collection: 'd', key: 'k'.repeat(KEY + 1), value: b('') }, at: { type: 'put', collection: 'd', key: 'k'.repeat(KEY), value: b('') } },
  { limit: 'partitionEntryKeyMaxBytes', field: 'key', over: { type: 'put', collection: 'd', key: '€'.repeat(KEY / 3 + 1), value: b('') }, at: { type: 'put', collection: 'd', key: '€'.repeat(Math.floor(KEY / 3)), value: b('') } },
  { limit: 'partitionEntryKeyMaxBytes', field: 'key', over: { type: 'delete', collection: 'd', key: 'k'.repeat(KEY + 1) } },
  { limit: 'partitionEntryKeyMaxBytes', field: 'compares[0].key', over: { type: 'txn', compares: [{ collection: 'd', key: 'k'.repeat(KEY + 1), kind: 'absent' }], ops: [] } },
  { limit: 'partitionEntryKeyMaxBytes', field: 'key', over: (r) => r.state.get('d', 'k'.repeat(KEY + 1)), at: (r) => r.state.get('d', 'k'.repeat(KEY)) },
  { limit: 'partitionEntryKeyMaxBytes', field: 'start', over: (r) => r.state.scan('d', { start: 'k'.repeat(KEY + 1) }) },
  { limit: 'partitionEntryKeyMaxBytes', field: 'key', over: (r) => r.state.watch(0, { key: 'k'.repeat(KEY + 1) }) },
  { limit: 'partitionEntryValueMaxBytes', field: 'value', over: { type: 'put', collection: 'd', key: 'k', value: bytesOf(VALUE + 1) }, at: { type: 'put', collection: 'd', key: 'k', value: bytesOf(VALUE) } },
  { limit: 'partitionEntryValueMaxBytes', field: 'value', over: { type: 'enqueue', queue: 'q', value: bytesOf(VALUE + 1) }, at: { type: 'enqueue', queue: 'q', value: bytesOf(VALUE) } },
  { limit: 'partitionEntryValueMaxBytes', field: 'ops[1].value', over: { type: 'txn', compares: [], ops: [{ type: 'enqueue', queue: 'q', value: b('') }, { type: 'put', collection: 'd', key: 'k', value: bytesOf(VALUE + 1) }] } },
  { limit: 'partitionEntryValueMaxBytes', field: 'compares[0].value', over: { type: 'txn', compares: [{ collection: 'd', key: 'k', kind: 'value', value: bytesOf(VALUE + 1) }], ops: [] } },
  { limit: 'partitionCollectionNameMaxBytes', field: 'collection', over: { type: 'put', collection: 'c'.repeat(NAME + 1), key: 'k', value: b('') }, at: { type: 'put', collection: 'c'.repeat(NAME), key: 'k', value: b('') } },
  { limit: 'partitionCollectionNameMaxBytes', field: 'queue', over: { type: 'enqueue', queue: 'q'.repeat(NAME + 1), value: b('') } },
  { limit: 'partitionCollectionNameMaxBytes', field: 'collections[1].name', over: { type: 'declare', collections: [{ name: 'a', kind: 'queue' }, { name: 'q'.repeat(NAME + 1), kind: 'queue' }] } },
  { limit: 'partitionCollectionNameMaxBytes', field: 'queue', over: (r) => r.state.queueScan('q'.repeat(NAME + 1)) },
  {
    limit: 'partitionMaxCollections', field: 'collection',
    // The last collection allowed is created by a first write; the next first write is refused.
    setup: [
      { type: 'declare', collections: Array.from({ length: LIMITS.partitionMaxCollections - 1 }, (_, i) => ({ name: `c${i}`, kind: 'dictionary' as const })) },
      { type: 'enqueue', queue: 'last', value: b('') },
    ],
    over: { type: 'put', collection: 'one-too-many', key: 'k', value: b('') },
  },
  {
    limit: 'partitionMaxCollections', field: 'collections[0].name',
    setup: [{ type: 'declare', collections: Array.from({ length: LIMITS.partitionMaxCollections }, (_, i) => ({ name: `c${i}`, kind: 'dictionary' as const })) }],
    over: { type: 'declare', collections: [{ name: 'extra', kind: 'queue' }] },
  },
  { limit: 'partitionMaxCollections', field: 'collections', over: { type: 'declare', collections: Array.from({ length: LIMITS.partitionMaxCollections + 1 }, (_, i) => ({ name: `c${i}`, kind: 'queue' as const })) } },
  { limit: 'partitionTxnMaxOps', field: 'ops', over: puts(LIMITS.partitionTxnMaxOps + 1), at: puts(LIMITS.partitionTxnMaxOps) },
  {
    limit: 'partitionTxnMaxOps', field: 'compares',
    over: { type: 'txn', compares: Array.from({ length: LIMITS.partitionTxnMaxOps + 1 }, (_, i) => ({ collection: 'd', key: `k${i}`, kind: 'absent' as const })), ops: [] },
    at: { type: 'txn', compares: Array.from({ length: LIMITS.partitionTxnMaxOps }, (_, i) => ({ collection: 'd', key: `k${i}`, kind: 'absent' as const })), ops: [] },
  },
  { limit: 'partitionCommandMaxBytes', field: 'txn', over: puts(3, VALUE), at: puts(2, VALUE - KEY) },
  { limit: 'partitionQueueLeaseMaxMs', field: 'leaseMs', over: { type: 'dequeue', queue: 'q', leaseMs: LIMITS.partitionQueueLeaseMaxMs + 1, nowMs: 0 }, at: { type: 'dequeue', queue: 'q', leaseMs: LIMITS.partitionQueueLeaseMaxMs, nowMs: 0 } },
  { limit: 'partitionQueueLeaseMaxMs', field: 'ops[0].leaseMs', over: { type: 'txn', nowMs: 0, compares: [], ops: [{ type: 'dequeue', queue: 'q', leaseMs: LIMITS.partitionQueueLeaseMaxMs + 1 }] } },
  { limit: 'partitionScanMaxPageEntries', field: 'limit', over: (r) => r.state.scan('d', { limit: LIMITS.partitionScanMaxPageEntries + 1 }), at: (r) => r.state.scan('d', { limit: LIMITS.partitionScanMaxPageEntries }) },
  { limit: 'partitionScanMaxPageEntries', field: 'limit', over: (r) => r.state.queueScan('q', { limit: LIMITS.partitionScanMaxPageEntries + 1 }) },
  { limit: 'partitionScanMaxPageEntries', field: 'limit', over: (r) => r.state.watch(0, {}, LIMITS.partitionScanMaxPageEntries + 1) },
];

t.test('every limit: the value over it is refused by name and changes nothing; the value at it is accepted', async (t) => {
  const covered = new Set<string>();
  for (const c of cases) {
    const r = new Replica();
    for (const cmd of c.setup ?? []) r.ok(cmd);
    const before = r.data();
    const result = typeof c.over === 'function' ? c.over(r) : r.apply(c.over);
    const label = `${c.limit} at ${c.field}`;
    t.match(result, { ok: false, code: 'ERR_PARTITION_LIMIT', limit: c.limit, max: LIMITS[c.limit], field: c.field }, label);
    const f = result as { actual?: number; max?: number; message?: string };
    t.ok(f.actual !== undefined && f.max !== undefined && f.actual > f.max, `${label}: says how much was asked for (${f.actual})`);
    t.match(f.message, new RegExp(`more than the limit ${c.limit} \\(${LIMITS[c.limit]}\\)`), `${label}: the message names the limit`);
    t.same(r.data(), before, `${label}: nothing changed`);
    if (c.at) {
      const ok = typeof c.at === 'function' ? c.at(r) : r.apply(c.at);
      t.match(ok, { ok: true }, `${label}: the limit itself is allowed`);
    }
    covered.add(c.limit);
  }
  // The scheme limits are exercised in scheme.test.ts; the page bytes and the change window are sizes, not refusals
  // (collections.test.ts shows a page stopping at its byte budget and the window compacting).
  t.match(validateScheme({ kind: 'uniform', partitions: LIMITS.partitionsMaxPerService + 1 }), { code: 'ERR_PARTITION_LIMIT', limit: 'partitionsMaxPerService' });
  t.match(partitionFor({ kind: 'singleton' }, { kind: 'key', key: 'k'.repeat(LIMITS.partitionKeyMaxBytes + 1) }), { code: 'ERR_PARTITION_LIMIT', limit: 'partitionKeyMaxBytes' });
  covered.add('partitionsMaxPerService').add('partitionKeyMaxBytes').add('partitionScanMaxPageBytes').add('partitionChangeWindowEntries');
  // Limits enforced elsewhere, each with its own tests: the job file (test/jobspec/state.test.ts), the session table
  // (test/partitions/machine.test.ts), placement (test/partitions/placement.test.ts), and the runtime's pacing of
  // replicas and routing (test/runtime/partition-replica.test.ts, test/runtime/stateful-agents.test.ts).
  for (const elsewhere of [
    'partitionReplicasMax', 'partitionSessionWindowCommands', 'partitionMaxClientSessions', 'partitionMaxConcurrentMoves', 'partitionMaxBuildsPerNode',
    'partitionReconcileMs', 'partitionReconcileIdleMs', 'partitionSnapshotEveryEntries', 'partitionPromoteLagEntries', 'partitionRouteMaxAttempts', 'partitionRouteRetryMs',
    'partitionRouterMaxSessions', 'partitionDefaultLeaseMs', 'partitionSnapshotChunkBytes', 'partitionSnapshotMaxBytesPerSecond', 'partitionSnapshotChunkTimeoutMs', 'partitionPrimaryBalanceMs', 'partitionTransferPinMs',
  ]) covered.add(elsewhere);
  const section = Object.keys(LIMITS).filter((k) => k.startsWith('partition'));
  t.same([...covered].sort(), section.sort(), 'every limit of the section is covered');
});
