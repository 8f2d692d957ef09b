/**
 * The partition host's housekeeping on a real data dir: replica files that no live allocation names are removed at
 * the first fresh look after a start (their Raft rows too); file names stand for group names both ways.
 */
import t from 'tap';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryHub } from '../../src/transport/index.js';
import { SqliteLogDatabase } from '../../src/storage/index.js';
import { bootstrapEntries } from '../../src/consensus/index.js';
import { Random } from '../../src/lib/random.js';
import { silentLogger } from '../../src/log/logger.js';
import { PartitionHost, partitionGroup } from '../../src/runtime/partition-host.js';
import { groupOfFileName, replicaFileName } from '../../src/runtime/partition-replica.js';
import type { Allocation } from '../../src/state/index.js';

t.test('replica file names stand for their group names, both ways', async (t) => {
  for (const g of ['p/shop.16/carts/3', 'p/a_b.1/c-d/0', 'p/x y.2/é/10', 'p/_5f.3/s/1']) {
    const name = replicaFileName(g);
    t.match(name, /^[A-Za-z0-9._-]+$/, `${g} -> ${name}`);
    t.equal(groupOfFileName(name), g);
  }
  t.not(replicaFileName('p/a_2f'), replicaFileName('p/a/'), 'an underscore in a name cannot pass for an escape');
});

t.test('files of replicas no live allocation names are removed at the first fresh look', async (t) => {
  const dataDir = t.testdir({});
  const dir = join(dataDir, 'partitions');
  mkdirSync(dir, { recursive: true });
  const orphan = partitionGroup('old', 5, 'kv', 0);
  const finished = partitionGroup('done', 9, 'kv', 1);
  for (const g of [orphan, finished]) {
    for (const suffix of ['.db', '.db.snap', '.alloc']) writeFileSync(join(dir, `${replicaFileName(g)}${suffix}`), 'x');
  }
  const logs = new SqliteLogDatabase(join(dir, 'raft.db'));
  for (const g of [orphan, finished]) logs.openGroup(g).save({ entries: bootstrapEntries(['n1']), hardState: { term: 1, vote: undefined, commit: 1 } });
  logs.close();
  const doneAlloc = { id: 'a1', jobName: 'done', service: 'kv', partition: 1, nodeId: 'n1', desiredStatus: 'stop', clientStatus: 'complete' } as Allocation;
  let fresh = false;
  const hub = new MemoryHub();
  const host = new PartitionHost({
    nodeId: 'n1', dataDir, transport: hub.transport('n1'), random: Random.fromSeed(1), logger: silentLogger(), tickMs: 10,
    state: () => ({ index: 1, allocationsOnNode: () => [doneAlloc], allocation: () => undefined, job: (n) => (n === 'done' ? { job: { services: [{ name: 'kv', state: { partitions: 2 } }] }, createIndex: 9 } as never : undefined) }),
    fresh: () => fresh,
    placement: async () => undefined, report: async () => undefined, askMembership: async () => undefined,
    memberAlive: () => true, fetchSnapshotChunk: async () => { throw new Error('unused'); },
  });
  t.teardown(() => host.stop());
  host.kick();
  await new Promise((r) => setTimeout(r, 50));
  t.equal(readdirSync(dir).filter((n) => n.endsWith('.alloc')).length, 2, 'nothing is touched while the view is not fresh');
  fresh = true;
  host.kick();
  const deadline = Date.now() + 5_000;
  while (readdirSync(dir).some((n) => n.endsWith('.alloc')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.same(readdirSync(dir).filter((n) => !n.startsWith('raft.db')), [], 'every file of both replicas is gone');
  const check = new SqliteLogDatabase(join(dir, 'raft.db'));
  t.same(check.groups(), [], 'and their Raft rows');
  check.close();
  t.ok(existsSync(join(dir, 'raft.db')));
});
