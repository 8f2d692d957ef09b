/**
 * A partition's replicas on real SQLite (the agent's log database and each replica's own state database), over the
 * in-memory transport: writes through the primary, reads at both consistencies, a retry at a new primary that
 * applies once, a restart from disk, and a wiped replica rebuilt from a snapshot.
 */
import t from 'tap';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryHub } from '../../src/transport/index.js';
import { SqliteLogDatabase } from '../../src/storage/index.js';
import { bootstrapEntries } from '../../src/consensus/index.js';
import { Random } from '../../src/lib/random.js';
import { PartitionReplica, replicaFileName } from '../../src/runtime/partition-replica.js';
import { LIMITS } from '../../src/lib/limits.js';

const ids = ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)];
const GROUP = 'p/shop/carts/3';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

interface Member { id: string; logs: SqliteLogDatabase; replica: PartitionReplica }

/** The replicas running now, by node: a member being rebuilt fetches snapshot chunks from them (the agent does it over peer RPC). */
const running = new Map<string, PartitionReplica>();
let chunksFetched = 0;
/** Chunks to corrupt (a flipped byte) before they reach the member being rebuilt: the transfer must notice. */
let corruptNext = 0;

async function member(hub: MemoryHub, dir: string, id: string, seed: number, fresh: boolean, snapshotEveryEntries = 0): Promise<Member> {
  const logs = new SqliteLogDatabase(join(dir, `${id.slice(0, 4)}-raft.db`));
  if (fresh) logs.openGroup(GROUP).save({ entries: bootstrapEntries(ids), hardState: { term: 1, vote: undefined, commit: ids.length } });
  const transport = hub._get(id) ?? hub.transport(id);
  await transport.start();
  for (const other of ids) if (other !== id) transport.connect(other);
  const replica = new PartitionReplica({
    group: GROUP, nodeId: id, logs, dir: join(dir, id.slice(0, 4)), transport, random: Random.fromSeed(seed), tickMs: 10, electionTicks: 10, snapshotEveryEntries,
    fetchSnapshotChunk: async (nodeId, group, index, offset) => {
      const source = running.get(nodeId);
      if (!source || group !== GROUP) throw new Error(`no replica of ${group} on ${nodeId.slice(0, 4)}`);
      chunksFetched++;
      const chunk = source.readSnapshotChunk(index, offset);
      if (corruptNext > 0) {
        corruptNext--;
        const data = Buffer.from(chunk.data);
        data[data.length >> 1]! ^= 0xff;
        return { ...chunk, data };
      }
      return chunk;
    },
  });
  running.set(id, replica);
  replica.start();
  return { id, logs, replica };
}

function stop(m: Member): void {
  if (running.get(m.id) === m.replica) running.delete(m.id);
  m.replica.stop();
  m.logs.close();
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const put = (key: string, value: string) => ({ type: 'put' as const, collection: 'carts', key, value: enc(value) });

async function localValue(m: Member, key: string): Promise<string | undefined> {
  return m.replica.read('local', 1000, (s) => {
    const r = s.get('carts', key);
    return r.ok && r.found ? dec(r.value) : undefined;
  });
}

t.test('writes go through the primary, reach every replica, and read back at both consistencies', async (t) => {
  const dir = t.testdir({});
  const hub = new MemoryHub();
  const members = await Promise.all(ids.map((id, i) => member(hub, dir, id, i + 1, true)));
  t.teardown(() => members.forEach(stop));
  await waitFor('a primary', () => members.some((m) => m.replica.role() === 'primary'));
  const primary = members.find((m) => m.replica.role() === 'primary')!;
  const secondary = members.find((m) => m !== primary)!;
  await waitFor('the secondary knows its primary', () => secondary.replica.role() === 'secondary');
  await t.rejects(secondary.replica.write(put('k', 'v'), undefined, 1000), { code: 'ERR_RAFT_NOT_LEADER' }, 'a secondary refuses writes');

  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => primary.replica.write(put(`k${i}`, `v${i}`), undefined, 10_000)));
  t.ok(results.every((r) => r.ok), `every write succeeded (${JSON.stringify(results.find((r) => !r.ok) ?? null)})`);
  const versions = results.map((r) => (r.ok && r.type === 'put' ? r.version : 0));
  t.equal(new Set(versions).size, 50, 'each write has its own version (its log index)');
  const seen = await secondary.replica.read('linearizable', 5000, (s) => s.get('carts', 'k49'));
  t.match(seen, { ok: true, found: true, version: versions[49] }, 'a linearizable read on a secondary sees the last acknowledged write');
  await waitFor('every replica applied the writes', () => members.every((m) => m.replica.appliedIndex >= versions[49]!));
  for (const m of members) t.equal(await localValue(m, 'k7'), 'v7');
  t.ok(existsSync(join(dir, primary.id.slice(0, 4), `${replicaFileName(GROUP)}.db`)), 'the state is in the replica\'s own database');
});

t.test('a write retried at a new primary with the same session applies once', async (t) => {
  const dir = t.testdir({});
  const hub = new MemoryHub();
  const members = await Promise.all(ids.map((id, i) => member(hub, dir, id, i + 11, true)));
  t.teardown(() => members.forEach((m) => { try { stop(m); } catch { /* stopped in the test */ } }));
  await waitFor('a primary', () => members.some((m) => m.replica.role() === 'primary'));
  const first = members.find((m) => m.replica.role() === 'primary')!;
  const session = { client: 'router-1', seq: 1, acked: 1 };
  const enqueue = { type: 'enqueue' as const, queue: 'orders', value: enc('order-1') };
  const r1 = await first.replica.write(enqueue, session, 10_000);
  t.match(r1, { ok: true, type: 'enqueue' });
  // The answer is "lost": the primary dies, and the router retries at whoever leads next.
  stop(first);
  await hub._get(first.id)!.stop();
  const rest = members.filter((m) => m !== first);
  await waitFor('a new primary', () => rest.some((m) => m.replica.role() === 'primary'), 20_000);
  const second = rest.find((m) => m.replica.role() === 'primary')!;
  const r2 = await second.replica.write(enqueue, session, 10_000);
  t.same(r2, r1, 'the retry answers the first attempt\'s result');
  const length = await second.replica.read('linearizable', 5000, (s) => s.queueLength('orders'));
  t.equal(length, 1, 'the item was enqueued once');
  const r3 = await second.replica.write(enqueue, { client: 'router-1', seq: 2, acked: 2 }, 10_000);
  t.not((r3 as { itemId: string }).itemId, (r1 as { itemId: string }).itemId, 'a new seq is a new command');
});

t.test('a replica restarts from its databases, and a wiped one is rebuilt from a snapshot', async (t) => {
  const dir = t.testdir({});
  const hub = new MemoryHub();
  const members = await Promise.all(ids.map((id, i) => member(hub, dir, id, i + 21, true, 20)));
  t.teardown(() => members.forEach((m) => { try { stop(m); } catch { /* already stopped */ } }));
  await waitFor('a primary', () => members.some((m) => m.replica.role() === 'primary'));
  let primary = members.find((m) => m.replica.role() === 'primary')!;
  for (let i = 0; i < 30; i++) await primary.replica.write(put(`a${i}`, `${i}`), undefined, 10_000);

  // Restart a secondary from disk: it skips what it applied already and catches up with what it missed.
  const restartAt = members.findIndex((m) => m !== primary);
  stop(members[restartAt]!);
  for (let i = 0; i < 10; i++) await primary.replica.write(put(`b${i}`, `${i}`), undefined, 10_000);
  members[restartAt] = await member(hub, dir, ids[restartAt]!, 99, false, 20);
  const restarted = members[restartAt]!;
  await waitFor('the restarted replica caught up', () => restarted.replica.appliedIndex >= primary.replica.appliedIndex);
  t.equal(await localValue(restarted, 'a3'), '3');
  t.equal(await localValue(restarted, 'b9'), '9');

  // Wipe the other secondary (its log and its state), write past the primary's compaction point, and bring it back
  // empty: the log it needs is gone, so it gets a snapshot, a copy of the primary's database.
  primary = members.find((m) => m.replica.role() === 'primary')!;
  const wipeAt = members.findIndex((m) => m !== primary && m !== restarted);
  const wiped = members[wipeAt]!;
  stop(wiped);
  rmSync(join(dir, `${wiped.id.slice(0, 4)}-raft.db`), { force: true });
  for (const suffix of ['-wal', '-shm']) rmSync(join(dir, `${wiped.id.slice(0, 4)}-raft.db${suffix}`), { force: true });
  rmSync(join(dir, wiped.id.slice(0, 4)), { recursive: true, force: true });
  // Large values: the database the wiped replica must receive is bigger than any one message (an envelope).
  const big = 'x'.repeat(200 * 1024);
  for (let i = 0; i < 60; i++) await primary.replica.write(put(`c${i}`, `${i}${big}`), undefined, 10_000);
  t.ok(primary.replica.storage.firstIndex() > 2, `the primary compacted its log (first index ${primary.replica.storage.firstIndex()})`);
  t.ok(primary.replica.sizeBytes() > LIMITS.maxEnvelopePayloadBytes, `the partition (${primary.replica.sizeBytes()} bytes) is larger than an envelope`);
  chunksFetched = 0;
  // The first transfer arrives damaged: its CRC fails, nothing is installed, and the primary's next send succeeds.
  corruptNext = 1;
  members[wipeAt] = await member(hub, dir, ids[wipeAt]!, 77, false, 20);
  const rebuilt = members[wipeAt]!;
  await waitFor('the wiped replica was rebuilt', () => rebuilt.replica.appliedIndex >= primary.replica.appliedIndex, 30_000);
  t.equal(await localValue(rebuilt, 'a0'), '0', 'it holds what was written before it was wiped');
  t.equal(await localValue(rebuilt, 'c59'), `59${big}`);
  t.ok(chunksFetched >= 2 * Math.ceil(LIMITS.maxEnvelopePayloadBytes / LIMITS.partitionSnapshotChunkBytes), `the snapshot came in chunks, twice (${chunksFetched}): the damaged transfer was refused`);
  t.equal(corruptNext, 0, 'the damaged chunk was used');
  // And it takes part again: a write commits with it in the quorum.
  stop(restarted);
  const last = await primary.replica.write(put('after', 'rebuild'), undefined, 10_000);
  t.match(last, { ok: true }, 'a write commits with the rebuilt replica as the second member of the quorum');
});
