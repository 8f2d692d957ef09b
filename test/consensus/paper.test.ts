/**
 * The essential cases of etcd-io/raft's raft_paper_test.go, ported as interaction tests against RaftNode: each
 * checks one statement of the Raft paper (§5.1-§5.4), driving a member with ticks and messages and looking at
 * what comes out of ready().
 */
import t from 'tap';
import { RaftNode, type RaftConfig } from '../../src/consensus/raft.js';
import { MemoryLogStorage } from '../../src/consensus/storage.js';
import { EMPTY_DATA, type Entry, type Message, type Ready } from '../../src/consensus/types.js';
import { Random } from '../../src/lib/random.js';
import { Cluster, enc } from './cluster.js';

const ELECTION = 10;

function ent(index: number, term: number, data = ''): Entry {
  return { index, term, type: 'normal', data: enc(data) };
}

function node(id: string, voters: string[], init: { entries?: Entry[]; term?: number; vote?: string; commit?: number } = {}, options: Partial<RaftConfig> = {}): { raft: RaftNode; storage: MemoryLogStorage } {
  const storage = new MemoryLogStorage({ voters, learners: [] });
  storage.append(init.entries ?? []);
  storage.setHardState({ term: init.term ?? 0, vote: init.vote, commit: init.commit ?? 0 });
  const raft = new RaftNode({ group: 'g', id, storage, random: Random.fromSeed(id), electionTicks: ELECTION, heartbeatTicks: 1, preVote: false, checkQuorum: false, ...options });
  return { raft, storage };
}

/** Takes a Ready, persists it into `storage`, and advances. */
function drain(raft: RaftNode, storage?: MemoryLogStorage): Ready {
  const rd = raft.ready();
  if (storage) {
    if (rd.snapshot) storage.applySnapshot(rd.snapshot);
    storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
  }
  raft.advance();
  return rd;
}

function msg(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to' | 'term'>): Message {
  return { group: 'g', logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...fields };
}

function ticks(raft: RaftNode, n: number): void {
  for (let i = 0; i < n; i++) raft.tick();
}

/** Elects `a` leader of a, b, c by hand (no pre-vote) and drains the no-op append messages. */
function leaderOf3(): { raft: RaftNode; storage: MemoryLogStorage } {
  const n = node('a', ['a', 'b', 'c']);
  n.raft.campaign();
  drain(n.raft, n.storage);
  n.raft.step(msg({ type: 'voteResp', from: 'b', to: 'a', term: 1 }));
  t.equal(n.raft.role, 'leader');
  drain(n.raft, n.storage);
  return n;
}

// --- §5.1: terms ------------------------------------------------------------------------------------------------

t.test('§5.1 a member of any role that sees a higher term becomes a follower in that term', async (t) => {
  for (const role of ['follower', 'candidate', 'leader'] as const) {
    const { raft } = node('a', ['a', 'b', 'c'], { term: 1 });
    if (role !== 'follower') raft.campaign();
    if (role === 'leader') raft.step(msg({ type: 'voteResp', from: 'b', to: 'a', term: 2 }));
    t.equal(raft.role, role);
    raft.step(msg({ type: 'append', from: 'b', to: 'a', term: 5 }));
    t.equal(raft.role, 'follower', `${role} steps down`);
    t.equal(raft.term, 5);
    t.equal(raft.leader, 'b');
  }
});

t.test('§5.1 a message with a stale term is ignored', async (t) => {
  const { raft } = node('a', ['a', 'b', 'c'], { term: 2 });
  raft.step(msg({ type: 'append', from: 'b', to: 'a', term: 1, entries: [ent(1, 1, 'x')] }));
  t.equal(raft.log.lastIndex(), 0, 'nothing appended');
  t.equal(raft.leader, undefined);
});

t.test('§5.2 a member starts as a follower', async (t) => {
  const { raft } = node('a', ['a', 'b', 'c']);
  t.equal(raft.role, 'follower');
  t.equal(raft.term, 0);
});

// --- §5.2: leader election ------------------------------------------------------------------------------------

t.test('§5.2 a leader sends heartbeats every heartbeat interval', async (t) => {
  const { raft, storage } = leaderOf3();
  raft.tick();
  const beats = drain(raft, storage).messages.filter((m) => m.type === 'heartbeat');
  t.same(beats.map((m) => m.to).sort(), ['b', 'c']);
  t.ok(beats.every((m) => m.term === 1 && m.entries.length === 0));
});

t.test('§5.2 a follower or candidate that hears nothing for an election timeout starts an election', async (t) => {
  for (const start of ['follower', 'candidate'] as const) {
    const { raft, storage } = node('a', ['a', 'b', 'c'], { term: 1 });
    if (start === 'candidate') raft.campaign();
    const before = raft.term;
    drain(raft, storage);
    ticks(raft, 2 * ELECTION);
    t.equal(raft.role, 'candidate', `${start} -> candidate`);
    t.equal(raft.term, before + 1, 'term incremented');
    const rd = drain(raft, storage);
    t.equal(rd.hardState?.vote, 'a', 'votes for itself, durably');
    const votes = rd.messages.filter((m) => m.type === 'vote');
    t.same(votes.map((m) => m.to).sort(), ['b', 'c']);
    t.ok(votes.every((m) => m.term === before + 1));
  }
});

t.test('§5.2 a candidate wins with a majority, waits without one, loses to a majority of rejections', async (t) => {
  const cases: { size: number; votes: Record<string, boolean>; role: string }[] = [
    { size: 1, votes: {}, role: 'leader' },
    { size: 3, votes: { b: true, c: true }, role: 'leader' },
    { size: 3, votes: { b: true }, role: 'leader' },
    { size: 5, votes: { b: true, c: true, d: true, e: true }, role: 'leader' },
    { size: 5, votes: { b: true, c: true }, role: 'leader' },
    { size: 3, votes: {}, role: 'candidate' },
    { size: 5, votes: { b: true }, role: 'candidate' },
    { size: 5, votes: { b: false, c: false }, role: 'candidate' },
    { size: 3, votes: { b: false, c: false }, role: 'follower' },
    { size: 5, votes: { b: false, c: false, d: false }, role: 'follower' },
  ];
  for (const c of cases) {
    const ids = ['a', 'b', 'c', 'd', 'e'].slice(0, c.size);
    const { raft } = node('a', ids);
    raft.campaign();
    for (const [from, granted] of Object.entries(c.votes)) raft.step(msg({ type: 'voteResp', from, to: 'a', term: 1, reject: !granted }));
    t.equal(raft.role, c.role, `${c.size} voters, votes ${JSON.stringify(c.votes)}`);
    t.equal(raft.term, 1);
  }
});

t.test('§5.2 a follower votes at most once per term, first come first served', async (t) => {
  const cases: { vote: string | undefined; from: string; grant: boolean }[] = [
    { vote: undefined, from: 'b', grant: true },
    { vote: undefined, from: 'c', grant: true },
    { vote: 'b', from: 'b', grant: true },
    { vote: 'c', from: 'c', grant: true },
    { vote: 'b', from: 'c', grant: false },
    { vote: 'c', from: 'b', grant: false },
  ];
  for (const c of cases) {
    const { raft, storage } = node('a', ['a', 'b', 'c'], { term: 1, vote: c.vote });
    raft.step(msg({ type: 'vote', from: c.from, to: 'a', term: 1 }));
    const resp = drain(raft, storage).messages.find((m) => m.type === 'voteResp');
    t.equal(resp?.reject, !c.grant, `voted ${c.vote ?? 'nobody'}, asked by ${c.from}`);
    if (c.grant) t.equal(storage.hardState().vote, c.from, 'the vote is in the hard state to persist');
  }
});

t.test('§5.2 a candidate that hears from a leader of its term or a later one falls back to follower', async (t) => {
  for (const term of [1, 2]) {
    const { raft } = node('a', ['a', 'b', 'c']);
    raft.campaign();
    raft.step(msg({ type: 'append', from: 'b', to: 'a', term }));
    t.equal(raft.role, 'follower');
    t.equal(raft.term, term);
    t.equal(raft.leader, 'b');
  }
});

t.test('§5.2 election timeouts are randomized in [T, 2T) and differ between members', async (t) => {
  const seen = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const { raft } = node(`n${i}`, [`n${i}`, 'x', 'y'], { term: 1 });
    let n = 0;
    while (raft.role === 'follower') {
      raft.tick();
      n++;
    }
    t.ok(n >= ELECTION && n < 2 * ELECTION, `timeout ${n} in [${ELECTION}, ${2 * ELECTION})`);
    seen.add(n);
  }
  t.ok(seen.size > 3, `timeouts vary (${[...seen].sort().join(',')})`);
});

// --- §5.3: log replication ------------------------------------------------------------------------------------

t.test('§5.3 a leader appends a proposal and sends it to every follower after its previous entry', async (t) => {
  const { raft, storage } = leaderOf3();
  const li = raft.log.lastIndex();
  // While a follower is probed (no answer yet), the leader sends it nothing more.
  raft.propose(enc('early'));
  t.same(drain(raft, storage).messages.filter((m) => m.type === 'append'), [], 'probing followers are not flooded');
  // Once they acknowledged the no-op, they are replicated to, pipelined.
  for (const f of ['b', 'c']) raft.step(msg({ type: 'appendResp', from: f, to: 'a', term: 1, index: li }));
  drain(raft, storage);
  const { index } = raft.propose(enc('some data'));
  const rd = drain(raft, storage);
  t.same(rd.entries.map((e) => [e.index, e.term]), [[index, 1]], 'the entry is handed out for persisting');
  const apps = rd.messages.filter((m) => m.type === 'append' && m.entries.length > 0);
  t.same(apps.map((m) => m.to).sort(), ['b', 'c']);
  for (const m of apps) {
    t.same(m.entries.map((e) => [e.index, e.term]), [[index, 1]]);
    t.equal(m.index, index - 1, 'after its previous entry');
    t.equal(m.logTerm, 1);
  }
});

t.test('§5.3 an entry commits once a majority stored it; the leader then tells the followers', async (t) => {
  for (const [size, acks, commits] of [[1, 0, true], [3, 0, false], [3, 1, true], [5, 1, false], [5, 2, true]] as const) {
    const ids = ['a', 'b', 'c', 'd', 'e'].slice(0, size);
    const { raft, storage } = node('a', ids);
    raft.campaign();
    for (const id of ids.slice(1)) raft.step(msg({ type: 'voteResp', from: id, to: 'a', term: 1 }));
    drain(raft, storage);
    const { index } = raft.propose(enc('x'));
    drain(raft, storage);
    for (const id of ids.slice(1, 1 + acks)) raft.step(msg({ type: 'appendResp', from: id, to: 'a', term: 1, index }));
    t.equal(raft.log.committed >= index, commits, `${size} voters, ${acks} acks`);
    if (commits && size > 1) {
      const rd = drain(raft, storage);
      t.ok(rd.committedEntries.some((e) => e.index === index), 'handed out for applying');
      t.ok(rd.messages.filter((m) => m.type === 'append').every((m) => m.commit >= index), 'the new commit index goes out');
    }
  }
});

t.test('§5.3 committing an entry commits every entry before it (including earlier terms)', async (t) => {
  const { raft, storage } = node('a', ['a', 'b', 'c'], { entries: [ent(1, 1, 'p'), ent(2, 2, 'q')], term: 2 });
  raft.campaign();
  raft.step(msg({ type: 'voteResp', from: 'b', to: 'a', term: 3 }));
  drain(raft, storage);
  raft.step(msg({ type: 'appendResp', from: 'b', to: 'a', term: 3, index: 3 }));
  t.equal(raft.log.committed, 3);
  t.same(drain(raft, storage).committedEntries.map((e) => e.index), [1, 2, 3]);
});

t.test('§5.3 a follower commits what the leader says is committed, up to what it holds', async (t) => {
  const { raft, storage } = node('a', ['a', 'b', 'c'], { term: 1 });
  raft.step(msg({ type: 'append', from: 'b', to: 'a', term: 1, index: 0, logTerm: 0, entries: [ent(1, 1, 'x'), ent(2, 1, 'y')], commit: 1 }));
  t.equal(raft.log.committed, 1);
  t.same(drain(raft, storage).committedEntries.map((e) => e.index), [1]);
  raft.step(msg({ type: 'heartbeat', from: 'b', to: 'a', term: 1, commit: 5 }));
  t.equal(raft.log.committed, 2, 'never past its own last index');
});

t.test('§5.3 a follower rejects an append whose previous entry it does not hold (consistency check)', async (t) => {
  const entries = [ent(1, 1), ent(2, 2)];
  const cases: { index: number; logTerm: number; reject: boolean }[] = [
    { index: 0, logTerm: 0, reject: false },
    { index: 1, logTerm: 1, reject: false },
    { index: 2, logTerm: 2, reject: false },
    { index: 1, logTerm: 2, reject: true },
    { index: 3, logTerm: 3, reject: true },
  ];
  for (const c of cases) {
    const { raft, storage } = node('a', ['a', 'b', 'c'], { entries, term: 2, commit: 1 });
    raft.step(msg({ type: 'append', from: 'b', to: 'a', term: 2, index: c.index, logTerm: c.logTerm }));
    const resp = drain(raft, storage).messages.find((m) => m.type === 'appendResp');
    t.equal(resp?.reject, c.reject, `prev (${c.index}, ${c.logTerm})`);
    if (c.reject) t.ok(resp!.rejectHint <= Math.min(c.index, 2), 'the hint never points past our log');
  }
});

t.test('§5.3 a follower deletes a conflicting suffix and appends what is new', async (t) => {
  const cases: { index: number; logTerm: number; entries: Entry[]; want: [number, number][] }[] = [
    { index: 2, logTerm: 2, entries: [ent(3, 3)], want: [[1, 1], [2, 2], [3, 3]] },
    { index: 1, logTerm: 1, entries: [ent(2, 3), ent(3, 4)], want: [[1, 1], [2, 3], [3, 4]] },
    { index: 0, logTerm: 0, entries: [ent(1, 1)], want: [[1, 1], [2, 2]] },
    { index: 0, logTerm: 0, entries: [ent(1, 3)], want: [[1, 3]] },
  ];
  for (const c of cases) {
    const { raft, storage } = node('a', ['a', 'b', 'c'], { entries: [ent(1, 1), ent(2, 2)], term: 2 });
    raft.step(msg({ type: 'append', from: 'b', to: 'a', term: 3, index: c.index, logTerm: c.logTerm, entries: c.entries }));
    drain(raft, storage);
    const got = raft.log.slice(1, raft.log.lastIndex() + 1, Infinity, Infinity).map((e) => [e.index, e.term]);
    t.same(got, c.want, `append after (${c.index}, ${c.logTerm})`);
    t.same(storage.entries(1, storage.lastIndex() + 1, Infinity).map((e) => [e.index, e.term]), c.want, 'storage holds the same after persisting');
  }
});

t.test('§5.3 (figure 7) a new leader brings every kind of divergent follower log in line with its own', async (t) => {
  const terms = (ts: number[]): Entry[] => ts.map((term, i) => ent(i + 1, term, `t${term}i${i + 1}`));
  const leaderLog = terms([1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
  const followers = [
    terms([1, 1, 1, 4, 4, 5, 5, 6, 6]),
    terms([1, 1, 1, 4]),
    terms([1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
    terms([1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
    terms([1, 1, 1, 4, 4, 4, 4]),
    terms([1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
  ];
  for (const [i, flog] of followers.entries()) {
    const c = new Cluster(['a', 'b', 'c'], { preVote: false, checkQuorum: false, electionTicks: ELECTION });
    const seed = (id: string, entries: Entry[], term: number): void => {
      const storage = new MemoryLogStorage({ voters: ['a', 'b', 'c'], learners: [] });
      storage.append(entries);
      storage.setHardState({ term, vote: undefined, commit: 0 });
      c.add(id, { voters: ['a', 'b', 'c'], learners: [] }, Random.fromSeed(id), storage);
    };
    seed('a', leaderLog, 8);
    seed('b', flog, 8);
    // c has nothing, so b alone must be brought in line (and cannot win an election with c's help).
    seed('c', [], 8);
    c.cut.add('c->b');
    c.cut.add('b->c');
    c.elect('a');
    t.equal(c.raft('a').role, 'leader', `case ${i}: a leads`);
    const want = c.raft('a').log.slice(1, c.raft('a').log.lastIndex() + 1, Infinity, Infinity).map((e) => [e.index, e.term]);
    const got = c.raft('b').log.slice(1, c.raft('b').log.lastIndex() + 1, Infinity, Infinity).map((e) => [e.index, e.term]);
    t.same(got, want, `case ${i}: follower log matches the leader's`);
  }
});

// --- §5.4: safety ---------------------------------------------------------------------------------------------

t.test('§5.4.1 a member votes only for a candidate whose log is at least as up to date', async (t) => {
  const ours = [ent(1, 2), ent(2, 2)];
  const cases: { index: number; logTerm: number; grant: boolean }[] = [
    { index: 1, logTerm: 1, grant: false },
    { index: 2, logTerm: 1, grant: false },
    { index: 3, logTerm: 1, grant: false },
    { index: 1, logTerm: 2, grant: false },
    { index: 2, logTerm: 2, grant: true },
    { index: 3, logTerm: 2, grant: true },
    { index: 1, logTerm: 3, grant: true },
  ];
  for (const c of cases) {
    const { raft, storage } = node('a', ['a', 'b', 'c'], { entries: ours, term: 2 });
    raft.step(msg({ type: 'vote', from: 'b', to: 'a', term: 3, index: c.index, logTerm: c.logTerm }));
    const resp = drain(raft, storage).messages.find((m) => m.type === 'voteResp');
    t.equal(resp?.reject, !c.grant, `candidate last (${c.index}, ${c.logTerm})`);
  }
});

t.test('§5.4.2 a leader commits an entry of an earlier term only by committing one of its own term', async (t) => {
  const { raft, storage } = node('a', ['a', 'b', 'c'], { entries: [ent(1, 1), ent(2, 2)], term: 2 });
  raft.campaign();
  raft.step(msg({ type: 'voteResp', from: 'b', to: 'a', term: 3 }));
  drain(raft, storage);
  // b has the term-2 entry but not the no-op of term 3: the old entry is replicated on a majority, yet not committed.
  raft.step(msg({ type: 'appendResp', from: 'b', to: 'a', term: 3, index: 2 }));
  t.equal(raft.log.committed, 0, 'an entry of an earlier term is not committed by counting replicas');
  raft.step(msg({ type: 'appendResp', from: 'b', to: 'a', term: 3, index: 3 }));
  t.equal(raft.log.committed, 3, 'it commits along with the current term\'s no-op');
});

t.test('§5.4 a new leader appends a no-op of its term', async (t) => {
  const { raft } = leaderOf3();
  const last = raft.log.slice(raft.log.lastIndex(), raft.log.lastIndex() + 1, Infinity, Infinity)[0]!;
  t.equal(last.type, 'noop');
  t.equal(last.term, raft.term);
  t.same(last.data, EMPTY_DATA);
});
