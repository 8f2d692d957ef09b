import t from 'tap';
import { join } from 'node:path';
import { MemoryHub, type MemoryTransport } from '../../src/transport/index.js';
import { SqliteLogDatabase } from '../../src/storage/index.js';
import { RaftGroup, defaultHeartbeatTicks, type StateMachine } from '../../src/runtime/raft-group.js';
import { encodeRaft, decodeRaft } from '../../src/runtime/raft-codec.js';
import { bootstrapEntries, type Entry } from '../../src/consensus/index.js';
import { Random } from '../../src/lib/random.js';

class Kv implements StateMachine {
  data = new Map<string, string>();
  applied: string[] = [];
  apply(e: Entry): unknown {
    const [k, v] = new TextDecoder().decode(e.data).split('=');
    this.data.set(k!, v!);
    this.applied.push(`${k}=${v}`);
    return `set ${k}`;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify([...this.data]));
  }
  restore(data: Uint8Array): void {
    this.data = new Map(JSON.parse(new TextDecoder().decode(data)) as [string, string][]);
  }
}

const ids = ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)];
const enc = (s: string) => new TextEncoder().encode(s);

interface Member { id: string; db: SqliteLogDatabase; transport: MemoryTransport; group: RaftGroup; kv: Kv; saves: number; transactions: number }

async function member(hub: MemoryHub, dir: string, id: string, seed: number, fresh: boolean, quiesce = false): Promise<Member> {
  const db = new SqliteLogDatabase(join(dir, `${id.slice(0, 4)}.db`));
  const storage = db.openGroup('cluster');
  if (fresh) storage.save({ entries: bootstrapEntries(ids), hardState: { term: 1, vote: undefined, commit: ids.length } });
  let saves = 0;
  let transactions = 0;
  const save = storage.save.bind(storage);
  storage.save = (req) => {
    if ((req.entries?.length ?? 0) > 0) saves++;
    transactions++;
    save(req);
  };
  const transport = hub._get(id) ?? hub.transport(id);
  await transport.start();
  for (const other of ids) if (other !== id) transport.connect(other);
  const kv = new Kv();
  const group = new RaftGroup({ group: 'cluster', nodeId: id, storage, transport, stateMachine: kv, random: Random.fromSeed(seed), tickMs: 10, electionTicks: 10, snapshotEveryEntries: 50, quiesce });
  group.start();
  const m: Member = { id, db, transport, group, kv, get saves() { return saves; }, get transactions() { return transactions; } } as Member;
  return m;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('three members on SQLite: a leader is elected, writes commit in batches, a member restarts from disk', async (t) => {
  const dir = t.testdir({});
  const hub = new MemoryHub();
  const members = await Promise.all(ids.map((id, i) => member(hub, dir, id, i + 1, true)));
  t.teardown(() => { for (const m of members) { m.group.stop(); m.db.close(); } });
  await waitFor('a leader', () => members.some((m) => m.group.isLeader()));
  const leader = members.find((m) => m.group.isLeader())!;
  const follower = members.find((m) => m !== leader)!;
  await t.rejects(follower.group.propose(enc('x=1'), { timeoutMs: 1000 }), { code: 'ERR_RAFT_NOT_LEADER' }, 'a follower refuses writes and names the leader');

  const savesBefore = leader.saves;
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => leader.group.propose(enc(`k${i}=v${i}`), { timeoutMs: 10_000 })));
  t.equal(results[7], 'set k7', 'the proposer gets the state machine result');
  t.ok(leader.saves - savesBefore < 50, `200 proposals were persisted in ${leader.saves - savesBefore} transactions (group commit)`);
  await waitFor('all members applied 200 writes', () => members.every((m) => m.kv.data.size === 200));
  t.same(members[0]!.kv.applied, members[1]!.kv.applied, 'every member applied the same sequence');
  await leader.group.read(5_000);
  t.pass('a linearizable read is confirmed by a quorum');

  // Restart a follower from its SQLite file: it comes back with its state (snapshot + log) and catches up.
  const restartId = follower.id;
  follower.group.stop();
  follower.db.close();
  await leader.group.propose(enc('after=restart'), { timeoutMs: 10_000 });
  const again = await member(hub, dir, restartId, 9, false);
  members[members.indexOf(follower)] = again;
  await waitFor('the restarted member catches up', () => again.kv.data.get('after') === 'restart' && again.kv.data.size === 201);
  t.pass('restarted from disk and caught up');
});

t.test('losing the leader: a new one is elected and committed writes survive; without quorum writes fail in time', async (t) => {
  const dir = t.testdir({});
  const hub = new MemoryHub();
  const members = await Promise.all(ids.map((id, i) => member(hub, dir, id, 10 + i, true)));
  t.teardown(() => { for (const m of members) { m.group.stop(); m.db.close(); } });
  await waitFor('a leader', () => members.some((m) => m.group.isLeader()));
  const old = members.find((m) => m.group.isLeader())!;
  await old.group.propose(enc('before=1'), { timeoutMs: 10_000 });
  for (const other of ids) if (other !== old.id) hub.cut(old.id, other);
  const rest = members.filter((m) => m !== old);
  await waitFor('a new leader among the other two', () => rest.some((m) => m.group.isLeader()));
  const leader = rest.find((m) => m.group.isLeader())!;
  await leader.group.propose(enc('after=2'), { timeoutMs: 10_000 });
  t.equal(leader.kv.data.get('before'), '1', 'the committed write survived the leader change');
  await waitFor('the old leader steps down (check-quorum)', () => !old.group.isLeader());
  await t.rejects(old.group.propose(enc('lost=3'), { timeoutMs: 500 }), { code: 'ERR_RAFT_NOT_LEADER' });
  // The majority side loses one more member: no quorum, a write fails within its deadline rather than hanging.
  hub.cut(rest[0]!.id, rest[1]!.id);
  await waitFor('no leader without quorum', () => !rest.some((m) => m.group.isLeader()), 10_000).catch(() => undefined);
  const stillLeader = rest.find((m) => m.group.isLeader());
  if (stillLeader) await t.rejects(stillLeader.group.propose(enc('q=4'), { timeoutMs: 300 }), /ERR_DEADLINE_EXCEEDED|not committed|not the leader/);
  await t.rejects(rest[0]!.group.read(300), { code: /ERR_DEADLINE_EXCEEDED|ERR_RAFT/ }, 'a read without quorum fails within its deadline');
});

t.test('an idle group: heartbeats every heartbeat interval, no transaction per heartbeat, elections still on time', async (t) => {
  t.equal(defaultHeartbeatTicks(30, 10), 3, 'the agent\'s 30 ms tick: a heartbeat every 90 ms');
  t.equal(defaultHeartbeatTicks(10, 10), 3, 'at most a third of the election timeout');
  t.equal(defaultHeartbeatTicks(200, 10), 1, 'at least every tick');
  const dir = t.testdir({});
  const hub = new MemoryHub();
  const members = await Promise.all(ids.map((id, i) => member(hub, dir, id, 30 + i, true)));
  t.teardown(() => { for (const m of members) { m.group.stop(); m.db.close(); } });
  await waitFor('a leader', () => members.some((m) => m.group.isLeader()));
  const leader = members.find((m) => m.group.isLeader())!;
  await leader.group.propose(enc('k=v'), { timeoutMs: 10_000 });
  await waitFor('everyone applied', () => members.every((m) => m.kv.data.get('k') === 'v'));
  await new Promise((r) => setTimeout(r, 100));
  const sent = new Map<string, number>();
  const transactionsBefore = members.map((m) => m.transactions);
  for (const m of members) {
    const send = m.transport.send.bind(m.transport);
    m.transport.send = (to, message) => {
      const type = decodeRaft(message.payload, 'cluster').type;
      sent.set(`${m.id === leader.id ? 'leader' : 'follower'} ${type}`, (sent.get(`${m.id === leader.id ? 'leader' : 'follower'} ${type}`) ?? 0) + 1);
      return send(to, message);
    };
  }
  const windowMs = 900;
  await new Promise((r) => setTimeout(r, windowMs));
  t.ok(leader.group.isLeader(), 'the leader kept its leadership');
  // tickMs 10, electionTicks 10: a heartbeat every 3 ticks (30 ms) to each of two followers, ~60 in 900 ms (180 at one per tick).
  const heartbeats = sent.get('leader heartbeat') ?? 0;
  t.ok(heartbeats >= 20 && heartbeats <= 90, `the leader sent ${heartbeats} heartbeats in ${windowMs} ms`);
  t.equal(sent.get('follower heartbeatResp') ?? 0, heartbeats, 'each heartbeat is answered');
  t.same([...sent.keys()].sort(), ['follower heartbeatResp', 'leader heartbeat'], 'nothing else is sent while idle');
  t.same(members.map((m) => m.transactions), transactionsBefore, 'no transaction is opened for a heartbeat or its answer');

  // The followers sleep while they hear from the leader; without it they still elect a new one in time.
  const startedMs = Date.now();
  for (const other of ids) if (other !== leader.id) hub.cut(leader.id, other);
  const rest = members.filter((m) => m !== leader);
  await waitFor('a new leader among the other two', () => rest.some((m) => m.group.isLeader()));
  const tookMs = Date.now() - startedMs;
  // Election timeout 100-200 ms, pre-vote and vote rounds, at most one heartbeat interval of timer lateness.
  t.ok(tookMs < 2_000, `a new leader within ${tookMs} ms`);
});

t.test('raft messages round-trip on the wire; bad ones are typed errors', async (t) => {
  const m = {
    group: 'g', type: 'append' as const, from: 'a', to: 'b', term: 3, logTerm: 2, index: 7, commit: 6, reject: false, rejectHint: 0,
    entries: [{ index: 8, term: 3, type: 'normal' as const, data: enc('x'), request: { clientId: 'c', seq: 4 } }, { index: 9, term: 3, type: 'conf' as const, data: new Uint8Array(), conf: { type: 'addLearner' as const, member: 'd' } }],
    snapshot: { metadata: { index: 5, term: 2, conf: { voters: ['a', 'b'], learners: ['d'] } }, data: enc('snap') },
    context: '',
  };
  t.same(decodeRaft(encodeRaft(m), 'g'), m);
  const { context: _context, snapshot: _snapshot, ...plain } = m;
  t.same(decodeRaft(encodeRaft(plain), 'g'), plain, 'absent context and snapshot stay absent');
  t.throws(() => decodeRaft(new Uint8Array([0x0a, 0x03, 0x66, 0x6f, 0x6f]), 'g'), { code: 'ERR_RAFT_MESSAGE_INVALID', message: /unknown type "foo"/ });
  t.throws(() => decodeRaft(new Uint8Array([0x0a, 0xff]), 'g'), { code: 'ERR_RAFT_MESSAGE_INVALID', message: /not valid protobuf/ });
  t.throws(() => decodeRaft(encodeRaft({ ...plain, from: '' }), 'g'), { message: /names no sender/ });
  const quiet = { ...plain, type: 'heartbeat' as const, entries: [], quiesce: true };
  t.same(decodeRaft(encodeRaft(quiet), 'g'), quiet, 'a quiesce heartbeat keeps its mark');
  const wake = { ...plain, type: 'wake' as const, entries: [] };
  t.same(decodeRaft(encodeRaft(wake), 'g'), wake, 'a wake round-trips, with no quiesce mark');
});

t.test('a quiet group on real timers: sends nothing while idle, wakes for a write, and replaces a dead leader once told', async (t) => {
  const dir = t.testdir({});
  const hub = new MemoryHub();
  const members = await Promise.all(ids.map((id, i) => member(hub, dir, id, 50 + i, true, true)));
  t.teardown(() => { for (const m of members) { m.group.stop(); m.db.close(); } });
  await waitFor('a leader', () => members.some((m) => m.group.isLeader()));
  const leader = members.find((m) => m.group.isLeader())!;
  await leader.group.propose(enc('a=1'), { timeoutMs: 10_000 });
  await waitFor('every member quiet', () => members.every((m) => m.group.status().quiesced));
  let sent = 0;
  for (const m of members) {
    const send = m.transport.send.bind(m.transport);
    m.transport.send = (to, message) => {
      sent++;
      return send(to, message);
    };
  }
  await new Promise((r) => setTimeout(r, 500));
  t.equal(sent, 0, 'nothing sent in 500 ms (50 ticks) of quiet');
  await leader.group.propose(enc('b=2'), { timeoutMs: 10_000 });
  await waitFor('everyone applied the write that woke the group', () => members.every((m) => m.kv.data.get('b') === '2'));
  t.ok(sent > 0);
  await waitFor('quiet again', () => members.every((m) => m.group.status().quiesced));

  // Reported unreachable while the group is awake (a leader that announced its leave), then the group goes quiet:
  // the followers must not sleep under it. While it lasts the group keeps talking; once reachable again it sleeps.
  const followers = members.filter((m) => m !== leader);
  await leader.group.propose(enc('d=4'), { timeoutMs: 10_000 });
  for (const m of followers) m.group.memberUnreachable(leader.id);
  // Past the idle election timeout (100 ms) after which the group would have gone quiet for good without the fix.
  await new Promise((r) => setTimeout(r, 300));
  const before = sent;
  await new Promise((r) => setTimeout(r, 400));
  t.ok(sent > before, 'a follower under a leader reported unreachable does not stay quiet');
  for (const m of followers) m.group.memberReachable(leader.id);
  await waitFor('quiet once the leader is reachable again', () => members.every((m) => m.group.status().quiesced && (m.group.status().leader === members.find((x) => x.group.isLeader())?.id)));

  // The leader dies while the group is quiet: nobody notices until the failure detector says so.
  const quietLeader = members.find((m) => m.group.isLeader())!;
  for (const other of ids) if (other !== quietLeader.id) hub.cut(quietLeader.id, other);
  const rest = members.filter((m) => m !== quietLeader);
  await new Promise((r) => setTimeout(r, 500));
  t.notOk(rest.some((m) => m.group.isLeader()), 'no election without a failure detector');
  for (const m of rest) m.group.memberUnreachable(quietLeader.id);
  await waitFor('a new leader among the other two', () => rest.some((m) => m.group.isLeader()));
  const next = rest.find((m) => m.group.isLeader())!;
  await next.group.propose(enc('c=3'), { timeoutMs: 10_000 });
  t.equal(next.kv.data.get('a'), '1', 'committed writes survived');
});

t.test('a full disk stops the group from sending or applying, and proposers hear why', async (t) => {
  const dir = t.testdir({});
  const hub = new MemoryHub();
  const id = 'd'.repeat(64);
  const db = new SqliteLogDatabase(join(dir, 'full.db'), { maxPageCount: 60 });
  const storage = db.openGroup('cluster');
  storage.save({ entries: bootstrapEntries([id]), hardState: { term: 1, vote: undefined, commit: 1 } });
  const transport = hub.transport(id);
  await transport.start();
  const kv = new Kv();
  const group = new RaftGroup({ group: 'cluster', nodeId: id, storage, transport, stateMachine: kv, random: Random.fromSeed(5), tickMs: 10, electionTicks: 10 });
  group.start();
  t.teardown(() => { group.stop(); db.close(); });
  await waitFor('the single voter leads', () => group.isLeader());
  await group.propose(enc('small=1'), { timeoutMs: 5_000 });
  const big = 'x'.repeat(100 * 1024);
  let failure: { code?: string } | undefined;
  for (let i = 0; i < 50 && !failure; i++) {
    failure = await group.propose(enc(`big${i}=${big}`), { timeoutMs: 5_000 }).then(() => undefined, (e: { code?: string }) => e);
  }
  t.equal(failure?.code, 'ERR_STORAGE_FULL', 'the proposer is told the disk is full');
  t.equal(kv.data.get('small'), '1', 'what committed before is applied and kept');
  const appliedBefore = kv.applied.length;
  await new Promise((r) => setTimeout(r, 100));
  t.equal(kv.applied.length, appliedBefore, 'nothing that was not persisted gets applied');
  db.close();
  const reopenedDb = new SqliteLogDatabase(join(dir, 'full.db'));
  t.teardown(() => reopenedDb.close());
  const reopened = reopenedDb.openGroup('cluster');
  t.ok(reopened.lastIndex() >= 2, 'the log on disk is intact and readable');
});
