/**
 * The parts under the core: the in-memory log storage, the log with its unstable tail, progress and in-flight
 * tracking, the client session table, and the configuration arithmetic.
 */
import t from 'tap';
import { applyConfChangeTo } from '../../src/consensus/conf.js';
import { RaftLog } from '../../src/consensus/log.js';
import { Inflights, Progress } from '../../src/consensus/progress.js';
import { ClientSessions } from '../../src/consensus/sessions.js';
import { MemoryLogStorage } from '../../src/consensus/storage.js';
import type { Entry } from '../../src/consensus/types.js';
import { checkLimits, LIMITS } from '../../src/lib/limits.js';
import { enc } from './cluster.js';

const ent = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: enc(`${index}`) });

t.test('MemoryLogStorage: append, overwrite, term, snapshot, compact and their errors', async (t) => {
  const s = new MemoryLogStorage({ voters: ['a'], learners: [] });
  t.equal(s.firstIndex(), 1);
  t.equal(s.lastIndex(), 0);
  s.append([ent(1, 1), ent(2, 1), ent(3, 2)]);
  t.equal(s.term(3), 2);
  t.equal(s.term(4), undefined);
  s.append([ent(2, 3)]);
  t.equal(s.lastIndex(), 2, 'a conflicting append replaces the tail');
  t.equal(s.term(2), 3);
  t.throws(() => s.append([ent(5, 3)]), /gap/);
  t.same(s.entries(1, 3, 1).map((e) => e.index), [1], 'maxBytes keeps at least one entry');
  t.throws(() => s.entries(1, 9, Infinity), { code: 'ERR_RAFT_UNAVAILABLE' });
  s.createSnapshot(2, { voters: ['a'], learners: [] }, enc('snap'));
  s.compact(1);
  t.equal(s.firstIndex(), 2);
  t.throws(() => s.entries(1, 2, Infinity), { code: 'ERR_RAFT_COMPACTED' });
  t.equal(s.term(1), 1, 'the compaction point still answers its term');
  t.throws(() => s.compact(3), /past/);
  t.throws(() => s.createSnapshot(1, { voters: [], learners: [] }, enc('')), { code: 'ERR_RAFT_SNAPSHOT_OUT_OF_DATE' });
  s.applySnapshot({ metadata: { index: 10, term: 4, conf: { voters: ['a', 'b'], learners: [] } }, data: enc('x') });
  t.equal(s.firstIndex(), 11);
  t.equal(s.lastIndex(), 10);
  t.equal(s.term(10), 4);
  t.same(s.initialState().conf.voters, ['a', 'b']);
  t.throws(() => s.applySnapshot({ metadata: { index: 5, term: 4, conf: { voters: [], learners: [] } }, data: enc('') }), { code: 'ERR_RAFT_SNAPSHOT_OUT_OF_DATE' });
});

t.test('RaftLog: unstable tail, conflict search, commit rules', async (t) => {
  const s = new MemoryLogStorage();
  s.append([ent(1, 1), ent(2, 1)]);
  const log = new RaftLog(s);
  log.append([ent(3, 2), ent(4, 2)]);
  t.equal(log.lastIndex(), 4);
  t.same(log.entriesToPersist().map((e) => e.index), [3, 4]);
  t.same(log.slice(1, 5, Infinity, Infinity).map((e) => e.index), [1, 2, 3, 4], 'spans storage and the unstable tail');
  t.same(log.slice(1, 5, Infinity, 2).map((e) => e.index), [1, 2], 'maxCount');
  t.equal(log.maybeAppend(4, 1, 0, []), undefined, 'a mismatched previous entry is refused');
  t.equal(log.maybeAppend(2, 1, 3, [ent(3, 3)]), 3, 'a conflicting suffix is replaced');
  t.equal(log.lastIndex(), 3);
  t.equal(log.committed, 3);
  t.same(log.findConflictByTerm(3, 2), { index: 2, term: 1 }, 'skips the whole term the other side cannot have');
  t.notOk(log.maybeCommit(2, 3), 'an entry of another term is not committed by counting');
  t.throws(() => log.append([ent(2, 9)]), /overwrite committed/);
  t.ok(log.isUpToDate(3, 3));
  t.notOk(log.isUpToDate(9, 2));
  t.throws(() => log.commitTo(9), /past the last index/);
  s.append(log.entriesToPersist());
  log.stableTo(3, 3);
  t.same(log.entriesToPersist(), []);
  t.equal(log.unstableOffset, 4);
});

t.test('Progress: probe -> replicate -> probe, stale answers, in-flight window', async (t) => {
  const pr = new Progress(5, false, 2, 1000);
  t.equal(pr.state, 'probe');
  pr.sentEntries(6, 10);
  t.ok(pr.isPaused(), 'one probe at a time');
  t.notOk(pr.maybeDecrTo(3, 0), 'a rejection of another probe is stale');
  t.ok(pr.maybeDecrTo(4, 2));
  t.equal(pr.next, 3, 'jumps to the hint');
  t.ok(pr.maybeUpdate(6));
  pr.becomeReplicate();
  t.equal(pr.next, 7);
  pr.sentEntries(8, 10);
  pr.sentEntries(9, 10);
  t.ok(pr.isPaused(), 'the window is full');
  pr.inflights.freeLE(8);
  t.notOk(pr.isPaused());
  t.equal(pr.next, 10);
  t.notOk(pr.maybeDecrTo(5, 5), 'a rejection below match is stale in replicate');
  t.ok(pr.maybeDecrTo(9, 7));
  pr.becomeSnapshot(20);
  t.ok(pr.isPaused());
  pr.becomeProbe();
  t.equal(pr.next, 21, 'after a snapshot, continue past it');
  const inf = new Inflights(10, 25);
  inf.add(1, 10);
  inf.add(2, 10);
  t.notOk(inf.full());
  inf.add(3, 10);
  t.ok(inf.full(), 'full by bytes');
  t.throws(() => inf.add(4, 1), /full/);
  inf.freeFirst();
  t.equal(inf.count, 2);
});

t.test('ClientSessions: a retried command applies once, older ones are stale, the table is bounded', async (t) => {
  const s = new ClientSessions<string>(2);
  let applied = 0;
  const apply = (): string => `r${++applied}`;
  t.same(s.applyOnce({ clientId: 'c', seq: 1 }, apply), { result: 'r1', applied: true });
  t.same(s.applyOnce({ clientId: 'c', seq: 1 }, apply), { result: 'r1', applied: false }, 'duplicate: same answer, not applied');
  t.same(s.applyOnce({ clientId: 'c', seq: 2 }, apply), { result: 'r2', applied: true });
  t.same(s.applyOnce({ clientId: 'c', seq: 1 }, apply), { result: undefined, applied: false }, 'stale');
  t.same(s.applyOnce(undefined, apply), { result: 'r3', applied: true }, 'no request id: always applied');
  s.applyOnce({ clientId: 'd', seq: 1 }, apply);
  s.applyOnce({ clientId: 'e', seq: 1 }, apply);
  t.equal(s.size, 2, 'bounded');
  t.same(s.check({ clientId: 'c', seq: 2 }), { kind: 'new' }, 'the least recently applied client was forgotten');
  const copy = ClientSessions.fromJSON(JSON.parse(JSON.stringify(s.toJSON())) as ReturnType<typeof s.toJSON>, 2);
  t.same(copy.toJSON(), s.toJSON(), 'snapshots round-trip');
  t.throws(() => new ClientSessions(0), /positive/);
});

t.test('configuration changes, one server at a time', async (t) => {
  const c0 = { voters: ['a', 'b'], learners: [] as string[] };
  const c1 = applyConfChangeTo(c0, { type: 'addLearner', member: 'c' });
  t.same(c1, { voters: ['a', 'b'], learners: ['c'] });
  const c2 = applyConfChangeTo(c1, { type: 'addVoter', member: 'c' });
  t.same(c2, { voters: ['a', 'b', 'c'], learners: [] }, 'promotion');
  t.same(applyConfChangeTo(c2, { type: 'addLearner', member: 'a' }), c2, 'no demotion');
  t.same(applyConfChangeTo(c2, { type: 'addVoter', member: 'a' }), c2, 'adding a voter twice changes nothing');
  t.same(applyConfChangeTo(c2, { type: 'removeMember', member: 'b' }), { voters: ['a', 'c'], learners: [] });
});

t.test('the consensus limits hold their relations', async (t) => {
  t.doesNotThrow(() => checkLimits());
  t.throws(() => checkLimits({ ...LIMITS, raftElectionTicks: 1, raftHeartbeatTicks: 1 }), /election timeout/);
});
