/**
 * Interaction tests for what the paper's core leaves out: pre-vote, check-quorum, ReadIndex, snapshots and their
 * installation, membership changes and learners, leadership transfer, fast back-tracking, flow control, and the
 * failure paths of every request (not the leader, too much pending, a change already in flight).
 */
import t from 'tap';
import { NotLeaderError, ProposalDroppedError } from '../../src/consensus/errors.js';
import { MemoryLogStorage } from '../../src/consensus/storage.js';
import { hasCode } from '../../src/lib/errors.js';
import { Random } from '../../src/lib/random.js';
import { Cluster, dec, enc, thrown } from './cluster.js';

const opts = { electionTicks: 10, heartbeatTicks: 1 };

function payloads(c: Cluster, id: string): string[] {
  return c.get(id).applied.filter((e) => e.type === 'normal').map((e) => dec(e.data));
}

t.test('pre-vote: a partitioned member rejoining does not disrupt the healthy leader (its term never grew)', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  const term = c.raft('a').term;
  c.isolate('c');
  c.tickAll(100); // c times out again and again, but only pre-votes
  t.equal(c.raft('c').term, term, 'the isolated member did not bump its term');
  t.equal(c.raft('c').role, 'preCandidate');
  c.heal();
  c.tickAll(5);
  t.same(c.leaders(), ['a'], 'the leader stays');
  t.equal(c.raft('a').term, term, 'no new term');
  t.equal(c.raft('c').leader, 'a', 'c follows the leader again');
});

t.test('without pre-vote, the same rejoin forces an election (what pre-vote prevents)', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], { ...opts, preVote: false, checkQuorum: false });
  c.elect('a');
  const term = c.raft('a').term;
  c.isolate('c');
  c.tickAll(100);
  t.ok(c.raft('c').term > term, 'the isolated member bumped its term');
  c.heal();
  c.tickAll(50);
  t.ok(c.raft('a').term > term, 'the group moved to a new term');
});

t.test('check-quorum: a leader cut off from its quorum steps down within two election timeouts', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.isolate('a');
  c.tickAll(20);
  t.equal(c.raft('a').role, 'follower', 'the isolated leader stepped down');
  c.tickAll(50);
  t.equal(c.leaders().length, 1, 'the majority side elected its own leader');
  t.not(c.leaders()[0], 'a');
});

t.test('check-quorum: members that hear from a leader ignore a campaign (leader lease)', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], { ...opts, preVote: false });
  c.elect('a');
  const term = c.raft('a').term;
  // c campaigns without pre-vote while a and b are in contact: its vote requests are ignored.
  c.raft('c').campaign();
  c.settle();
  t.equal(c.raft('a').role, 'leader');
  t.equal(c.raft('b').term, term, 'b did not move to c\'s term');
});

t.test('a stale leader returning from a partition learns the new term and steps down', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], { ...opts, checkQuorum: false });
  c.elect('a');
  c.isolate('a');
  c.elect('b');
  t.equal(c.raft('b').role, 'leader');
  t.equal(c.raft('a').role, 'leader', 'without check-quorum the old leader still believes it leads');
  c.heal();
  c.raft('a').propose(enc('stale'));
  c.settle();
  t.equal(c.raft('a').role, 'follower');
  t.equal(c.raft('a').term, c.raft('b').term);
  c.tickAll(3);
  t.notOk(payloads(c, 'b').includes('stale'), 'the stale leader\'s entry never commits');
  t.notOk(payloads(c, 'a').includes('stale'));
});

t.test('proposals on a follower fail with the leader named; on a leaderless member with none', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  t.ok(((err: unknown) => err instanceof NotLeaderError && err.leader === undefined)(thrown(() => c.raft('b').propose(enc('x')))));
  t.throws(() => c.raft('b').readIndex('r'), { code: 'ERR_RAFT_NOT_LEADER' });
  c.elect('a');
  t.ok(((err: unknown) => err instanceof NotLeaderError && err.leader === 'a' && /the leader is a/.test(err.message))(thrown(() => c.raft('b').propose(enc('x')))));
});

t.test('a leader refuses proposals beyond the uncommitted-bytes limit and accepts again once they commit', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], { ...opts, limits: { maxUncommittedBytes: 100 } });
  c.elect('a');
  c.isolate('a');
  c.raft('a').propose(new Uint8Array(60));
  c.raft('a').propose(new Uint8Array(30));
  t.ok(((err: unknown) => err instanceof ProposalDroppedError && /raftMaxUncommittedBytes/.test(err.message))(thrown(() => c.raft('a').propose(new Uint8Array(30)))));
  c.heal();
  c.tickAll(2);
  t.doesNotThrow(() => c.raft('a').propose(new Uint8Array(30)), 'room again after the commit');
});

t.test('ReadIndex on the leader is confirmed by a heartbeat quorum; on a follower it goes through the leader', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.raft('a').propose(enc('v1'));
  c.settle();
  const commit = c.raft('a').log.committed;
  c.raft('a').readIndex('read-1');
  c.settle();
  t.same(c.get('a').readStates, [{ index: commit, context: 'read-1' }]);
  c.raft('c').readIndex('read-2');
  c.settle();
  t.same(c.get('c').readStates, [{ index: commit, context: 'read-2' }]);
});

t.test('ReadIndex is not confirmed by a leader that lost its quorum', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.isolate('a');
  c.raft('a').readIndex('lonely');
  c.settle();
  t.same(c.get('a').readStates, [], 'no quorum answered: no read state');
});

t.test('ReadIndex on a new leader waits until an entry of its term commits', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.hold = true;
  c.raft('a').campaign();
  c.settle();
  // Deliver by hand until a is leader but its no-op is not yet acknowledged.
  while (c.raft('a').role !== 'leader') {
    const m = c.queue.shift()!;
    c.raft(m.to).step(m);
    c.flush();
  }
  c.raft('a').readIndex('early');
  c.flush();
  t.same(c.get('a').readStates, [], 'not before the no-op commits');
  c.hold = false;
  c.settle();
  t.equal(c.get('a').readStates.length, 1);
  t.equal(c.get('a').readStates[0]!.index, c.raft('a').log.committed);
});

/** A lease-reading group that elected its leader on its own (right after start, members grant no vote). */
function leaseGroup(extra: Record<string, unknown> = {}): { c: Cluster; l: string; others: string[] } {
  const c = new Cluster(['a', 'b', 'c'], { ...opts, readOnly: 'lease', ...extra });
  for (let i = 0; i < 60 && c.leaders().length === 0; i++) c.tickAll(1);
  const l = c.leaders()[0]!;
  return { c, l, others: ['a', 'b', 'c'].filter((x) => x !== l) };
}

t.test('lease reads: answered by the leader alone while its lease holds, by a heartbeat round after', async (t) => {
  const fresh = new Cluster(['a', 'b', 'c'], { ...opts, readOnly: 'lease' });
  fresh.elect('a');
  t.equal(fresh.raft('a').role, 'preCandidate', 'right after start nobody grants a vote: a lease may still be held');
  const { c, l } = leaseGroup();
  c.tickAll(2);
  c.isolate(l);
  const before = c.get(l).readStates.length;
  c.raft(l).readIndex('lease');
  c.flush();
  t.equal(c.get(l).readStates.length, before + 1, 'answered from the lease, without a heartbeat round');
  for (let i = 0; i < 8; i++) c.tick(l);
  c.raft(l).readIndex('expired');
  c.settle();
  t.equal(c.get(l).readStates.length, before + 1, 'the lease ran out: the read waits for a quorum that does not answer');
  t.throws(() => new Cluster(['x'], { readOnly: 'lease', checkQuorum: false }), { code: 'ERR_INVALID_ARGUMENT' });
});

t.test('lease reads: a leadership transfer voids the lease', async (t) => {
  const { c, l, others } = leaseGroup();
  c.tickAll(2);
  c.hold = true;
  c.raft(l).transferLeadership(others[0]!);
  c.raft(l).readIndex('during-transfer');
  c.flush();
  t.notOk(c.get(l).readStates.some((r) => r.context === 'during-transfer'), 'not answered from the lease while handing over');
});

t.test('lease reads: a restarted member grants no vote for an election timeout (it forgot whose lease it holds)', async (t) => {
  const { c, l, others } = leaseGroup({ preVote: false });
  c.tickAll(2);
  const [x, y] = others as [string, string];
  c.restart(x);
  c.restart(y);
  c.isolate(l);
  c.raft(y).campaign();
  c.settle();
  t.not(c.raft(y).role, 'leader', `${x} refused: it may have granted ${l} a lease before it restarted`);
  c.tickAll(25);
  t.equal(c.leaders().filter((m) => m !== l).length, 1, 'after an election timeout the group elects again');
});

t.test('a follower far behind a compacted log catches up by snapshot', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.isolate('c');
  for (let i = 0; i < 20; i++) c.raft('a').propose(enc(`e${i}`));
  c.settle();
  // The leader's application snapshots at its applied index and compacts everything.
  const a = c.get('a');
  const applied = a.raft.log.applied;
  a.storage.createSnapshot(applied, a.raft.confState(), enc(`state@${applied}`));
  a.storage.compact(applied);
  c.heal();
  c.tickAll(3);
  const cm = c.get('c');
  t.equal(cm.snapshots.length, 1, 'c received and persisted a snapshot');
  t.equal(cm.snapshots[0]!.metadata.index, applied);
  t.equal(dec(cm.snapshots[0]!.data), `state@${applied}`);
  t.same(cm.snapshots[0]!.metadata.conf.voters.sort(), ['a', 'b', 'c']);
  t.equal(cm.storage.firstIndex(), applied + 1);
  c.raft('a').propose(enc('after'));
  c.settle();
  t.same(payloads(c, 'c'), ['after'], 'and then replicates normally after it');
});

t.test('a lost snapshot is sent again after an election timeout', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.isolate('c');
  for (let i = 0; i < 5; i++) c.raft('a').propose(enc(`e${i}`));
  c.settle();
  const a = c.get('a');
  a.storage.createSnapshot(a.raft.log.applied, a.raft.confState(), enc('s'));
  a.storage.compact(a.raft.log.applied);
  // c answers heartbeats but the snapshot itself is lost.
  c.heal();
  c.dropIf = (m) => m.type === 'snapshot';
  c.tickAll(3);
  t.ok(c.sent.some((m) => m.type === 'snapshot'), 'a snapshot was sent');
  t.equal(c.get('c').snapshots.length, 0, 'nothing arrived');
  c.dropIf = undefined;
  c.tickAll(15);
  t.equal(c.get('c').snapshots.length, 1, 'the snapshot was retried and installed');
});

t.test('fast back-tracking: a follower with a long divergent tail is repaired in a few round trips', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.raft('a').propose(enc('base'));
  c.settle();
  // a is cut off and appends 50 entries that will never commit; b becomes leader and appends 50 of its own.
  c.isolate('a');
  for (let i = 0; i < 50; i++) c.raft('a').propose(enc(`doomed${i}`));
  c.flush();
  c.queue.length = 0;
  c.tickAll(40);
  const leader = c.leaders().find((l) => l !== 'a')!;
  t.ok(leader, 'b or c took over');
  for (let i = 0; i < 50; i++) c.raft(leader).propose(enc(`kept${i}`));
  c.settle();
  c.heal();
  const before = c.sent.length;
  c.tickAll(3);
  const rejects = c.sent.slice(before).filter((m) => m.type === 'appendResp' && m.reject && m.from === 'a');
  t.ok(rejects.length <= 3, `${rejects.length} rejections, not one per divergent entry`);
  t.same(payloads(c, 'a'), payloads(c, leader));
  t.equal(payloads(c, 'a').length, 51);
  t.notOk(payloads(c, 'a').some((p) => p.startsWith('doomed')));
});

t.test('pipelining is bounded by the in-flight window', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], { ...opts, limits: { maxInflightAppends: 4, maxEntriesPerAppend: 1 } });
  c.elect('a');
  c.hold = true;
  for (let i = 0; i < 20; i++) c.raft('a').propose(enc(`p${i}`));
  c.flush();
  const toB = c.queue.filter((m) => m.type === 'append' && m.to === 'b' && m.entries.length > 0);
  t.equal(toB.length, 4, 'four appends in flight, no more');
  c.hold = false;
  c.settle();
  t.equal(payloads(c, 'b').length, 20, 'the rest follows as acknowledgements come back');
});

t.test('membership: a learner receives the log, does not vote or count, and is promoted', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.raft('a').propose(enc('before'));
  c.settle();
  c.add('d', { voters: [], learners: [] }, Random.fromSeed('d'));
  (c.ids as string[]).push('d');
  c.raft('a').proposeConfChange({ type: 'addLearner', member: 'd' });
  c.settle();
  c.tickAll(2);
  t.same(c.raft('a').learners, ['d']);
  t.same(payloads(c, 'd'), ['before'], 'the learner got the whole log, bootstrap included');
  t.same(c.raft('d').learners, ['d'], 'it knows it is a learner');
  // A learner never campaigns.
  c.isolate('d');
  c.tickAll(50);
  t.equal(c.raft('d').role, 'follower');
  c.heal();
  c.tickAll(2);
  // Cutting off two voters stops commits even though the learner acknowledges: it does not count.
  c.isolate('b');
  c.isolate('c');
  c.cut.delete('a->d');
  c.cut.delete('d->a');
  c.raft('a').propose(enc('needs a voter'));
  c.settle();
  t.notOk(payloads(c, 'a').includes('needs a voter'), 'a learner is not part of the quorum');
  c.heal();
  c.tickAll(2);
  c.raft(c.leaders()[0]!).proposeConfChange({ type: 'addVoter', member: 'd' });
  c.settle();
  c.tickAll(2);
  const leader = c.raft(c.leaders()[0]!);
  t.same([...leader.voters].sort(), ['a', 'b', 'c', 'd'], 'promoted');
  t.same(leader.learners, []);
});

t.test('membership: one change at a time, only after the leader committed in its term', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.hold = true;
  c.raft('a').campaign();
  c.settle();
  while (c.raft('a').role !== 'leader') {
    const m = c.queue.shift()!;
    c.raft(m.to).step(m);
    c.flush();
  }
  t.ok(((err: unknown) => err instanceof ProposalDroppedError && /own term/.test(err.message))(thrown(() => c.raft('a').proposeConfChange({ type: 'addLearner', member: 'd' }))));
  c.hold = false;
  c.settle();
  c.hold = true;
  c.raft('a').proposeConfChange({ type: 'addLearner', member: 'd' });
  t.ok(((err: unknown) => err instanceof ProposalDroppedError && /one change at a time/.test(err.message))(thrown(() => c.raft('a').proposeConfChange({ type: 'addLearner', member: 'e' }))));
  c.hold = false;
  c.settle();
  t.doesNotThrow(() => c.raft('a').proposeConfChange({ type: 'addLearner', member: 'e' }), 'the next change once the first committed');
  c.settle();
  t.throws(() => c.raft('a').proposeConfChange({ type: 'addVoter', member: 'a' }), { code: 'ERR_INVALID_ARGUMENT' });
  t.throws(() => c.raft('a').proposeConfChange({ type: 'removeMember', member: 'zz' }), { code: 'ERR_INVALID_ARGUMENT' });
  t.throws(() => c.raft('a').proposeConfChange({ type: 'addLearner', member: 'b' }), /demotion is not supported/);
});

t.test('membership: removing a voter shrinks the quorum; a removed leader steps down; a removed member cannot disrupt', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.raft('a').proposeConfChange({ type: 'removeMember', member: 'c' });
  c.settle();
  c.tickAll(2);
  t.same([...c.raft('a').voters].sort(), ['a', 'b']);
  // c never hears of its removal in time, campaigns with its old configuration: nobody votes for it.
  c.raft('c').campaign();
  c.settle();
  t.same(c.leaders(), ['a'], 'the removed member did not take over');
  c.raft('a').proposeConfChange({ type: 'removeMember', member: 'a' });
  c.settle();
  t.equal(c.raft('a').role, 'follower', 'the leader removed itself and stepped down');
  c.tickAll(40);
  t.same(c.leaders(), ['b'], 'the one remaining voter leads');
  c.raft('b').propose(enc('solo'));
  c.settle();
  t.same(payloads(c, 'b').slice(-1), ['solo'], 'and commits alone');
  t.throws(() => c.raft('b').proposeConfChange({ type: 'removeMember', member: 'b' }), /last voter/);
});

t.test('leadership transfer: the target catches up, campaigns at once and wins; proposals wait meanwhile', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.isolate('c');
  c.raft('a').propose(enc('c lacks this'));
  c.settle();
  c.heal();
  c.hold = true;
  c.raft('a').transferLeadership('c');
  t.ok(((err: unknown) => hasCode(err, 'ERR_RAFT_NOT_LEADER') && /being transferred/.test((err as Error).message))(thrown(() => c.raft('a').propose(enc('x')))));
  c.hold = false;
  c.settle();
  t.same(c.leaders(), ['c'], 'c leads');
  t.ok(c.sent.some((m) => m.type === 'timeoutNow' && m.to === 'c'));
  t.throws(() => c.raft('c').transferLeadership('zz'), { code: 'ERR_INVALID_ARGUMENT' });
});

t.test('leadership transfer to an unreachable member is abandoned after an election timeout', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.isolate('c');
  c.cut.delete('a->b');
  c.cut.delete('b->a');
  c.raft('a').transferLeadership('c');
  c.tickAll(12);
  t.same(c.leaders(), ['a']);
  t.doesNotThrow(() => c.raft('a').propose(enc('flowing again')));
});

t.test('a restarted member resumes from storage: term, vote, log, commit and configuration', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.raft('a').propose(enc('x'));
  c.settle();
  c.tickAll(2);
  const before = c.raft('b').status();
  const b = c.restart('b');
  c.flush();
  t.equal(b.raft.term, before.term);
  t.equal(b.raft.log.committed, before.commit);
  t.same([...b.raft.voters].sort(), ['a', 'b', 'c']);
  t.same(b.applied.filter((e) => e.type === 'normal').map((e) => dec(e.data)), ['x'], 'committed entries are handed out again for a fresh state machine');
});

t.test('storage bootstrap: the configuration is in the log, so a later member learns it by replication', async (t) => {
  const s = MemoryLogStorage.bootstrap(['x', 'y']);
  t.equal(s.lastIndex(), 2);
  t.same(s.initialState().hardState, { term: 1, vote: undefined, commit: 2 });
  t.throws(() => MemoryLogStorage.bootstrap([]), /distinct voters/);
});

t.test('ready/advance misuse is a programming error that fails loudly', async (t) => {
  const c = new Cluster(['a'], opts);
  c.raft('a').campaign();
  c.raft('a').ready();
  t.throws(() => c.raft('a').ready(), { code: 'ERR_INVARIANT' });
  c.raft('a').advance();
  t.throws(() => c.raft('a').advance(), { code: 'ERR_INVARIANT' });
  t.throws(() => c.raft('a').step({ group: 'other', type: 'heartbeat', from: 'b', to: 'a', term: 9, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 }), /group other/);
});

t.test('an unreachable follower goes back to probing; the runtime can report a failed snapshot', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.raft('a').propose(enc('x'));
  c.settle();
  t.equal(c.raft('a').status().progress['b']!.state, 'replicate');
  c.raft('a').reportUnreachable('b');
  t.equal(c.raft('a').status().progress['b']!.state, 'probe');
  c.raft('a').reportUnreachable('zz');
  c.raft('b').reportUnreachable('a');
  c.raft('a').reportSnapshot('b', false);
  t.equal(c.raft('a').status().progress['b']!.state, 'probe', 'a report for a follower not in snapshot state changes nothing');
  c.tickAll(2);
  c.raft('a').propose(enc('y'));
  c.settle();
  t.same(payloads(c, 'b'), ['x', 'y'], 'replication resumes');
});

t.test('a batch of proposals goes out as one append per follower, and commits together', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.raft('a').propose(enc('warm-up'));
  c.settle();
  const before = c.sent.length;
  const at = c.raft('a').proposeBatch([{ data: enc('p1') }, { data: enc('p2'), request: { clientId: 'cl', seq: 1 } }, { data: enc('p3') }]);
  t.same(at.map((x) => x.index), [at[0]!.index, at[0]!.index + 1, at[0]!.index + 2]);
  c.settle();
  const appends = c.sent.slice(before).filter((m) => m.type === 'append' && m.entries.length > 0);
  t.equal(appends.length, 2, 'one append per follower');
  t.same(payloads(c, 'c').slice(-3), ['p1', 'p2', 'p3']);
  t.same(c.get('c').applied.find((e) => dec(e.data) === 'p2')?.request, { clientId: 'cl', seq: 1 }, 'the request id travels with the entry');
  t.same(c.raft('a').proposeBatch([]), []);
  t.ok(thrown(() => c.raft('b').proposeBatch([{ data: enc('x') }])) instanceof NotLeaderError);
});
