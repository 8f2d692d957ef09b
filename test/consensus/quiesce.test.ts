/**
 * Quiescence: an idle group goes quiet (no heartbeats at all), wakes for work, and a failure detector
 * (memberUnreachable) stands in for the heartbeats it no longer sends.
 */
import t from 'tap';
import { Cluster, dec, enc } from './cluster.js';

const opts = { electionTicks: 10, heartbeatTicks: 1, quiesce: true };

/** A three-member group led by a, gone quiet after an idle election timeout. */
function quietGroup(): Cluster {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.tickAll(15);
  return c;
}

t.test('an idle group goes quiet: one last heartbeat, then nothing is sent however long it idles', async (t) => {
  const c = quietGroup();
  for (const id of ['a', 'b', 'c']) t.ok(c.raft(id).quiesced, `${id} is quiet`);
  const before = c.sent.length;
  c.tickAll(1_000);
  t.equal(c.sent.length, before, 'no message in 1,000 ticks');
  t.same(c.leaders(), ['a']);
  t.equal(c.raft('a').status().quiesced, true, 'status shows it');
});

t.test('without quiescence the same group heartbeats every tick', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], { ...opts, quiesce: false });
  c.elect('a');
  c.tickAll(15);
  const before = c.sent.length;
  c.tickAll(100);
  t.ok(c.sent.length - before >= 200, `${c.sent.length - before} messages`);
  t.notOk(c.raft('b').quiesced);
});

t.test('the group does not go quiet while a member lags or is silent', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.isolate('c');
  c.raft('a').propose(enc('x'));
  c.tickAll(100);
  t.notOk(c.raft('a').quiesced, 'c never caught up: the leader keeps heartbeating');
  c.heal();
  c.tickAll(20);
  t.ok(c.raft('a').quiesced, 'quiet once c caught up');
  t.same(c.get('c').applied.filter((e) => e.type === 'normal').map((e) => dec(e.data)), ['x']);
});

t.test('a proposal wakes the group and commits; it goes quiet again afterwards', async (t) => {
  const c = quietGroup();
  c.raft('a').propose(enc('y'));
  c.settle();
  t.notOk(c.raft('a').quiesced, 'the leader woke');
  t.notOk(c.raft('b').quiesced, 'followers woke on the append');
  for (const id of ['a', 'b', 'c']) t.same(c.get(id).applied.filter((e) => e.type === 'normal').map((e) => dec(e.data)), ['y'], id);
  c.tickAll(15);
  t.ok(c.raft('a').quiesced && c.raft('b').quiesced);
});

t.test('a read on a quiet follower wakes the leader and is confirmed by a quorum', async (t) => {
  const c = quietGroup();
  c.raft('b').readIndex('r1');
  c.settle();
  t.same(c.get('b').readStates.map((r) => r.context), ['r1']);
  t.notOk(c.raft('a').quiesced);
});

t.test('a quiet follower that is told its leader is unreachable campaigns, and a new leader is elected', async (t) => {
  const c = quietGroup();
  c.isolate('a');
  c.raft('b').memberUnreachable('a');
  c.raft('c').memberUnreachable('a');
  c.tickAll(30);
  const leaders = c.leaders().filter((id) => id !== 'a');
  t.equal(leaders.length, 1, `one new leader (${leaders.join()})`);
  t.ok(c.raft(leaders[0]!).term > c.raft('a').term);
});

t.test('without the failure detector a quiet follower never notices (why the runtime must call it)', async (t) => {
  const c = quietGroup();
  c.isolate('a');
  c.tickAll(200);
  t.same(c.leaders(), ['a'], 'nobody campaigned');
  t.ok(c.raft('b').quiesced);
});

t.test('a false suspicion of a live leader wakes it, and it keeps leading', async (t) => {
  const c = quietGroup();
  const term = c.raft('a').term;
  c.raft('b').memberUnreachable('a');
  c.settle();
  t.notOk(c.raft('a').quiesced, 'b\'s wake reached the leader, which heartbeats again');
  c.tickAll(30);
  t.same(c.leaders(), ['a']);
  t.equal(c.raft('a').term, term, 'no election');
});

t.test('a leader that restarted and campaigns is not held off by followers still quiet under it', async (t) => {
  const c = quietGroup();
  c.restart('a');
  c.tickAll(60);
  t.equal(c.leaders().length, 1, 'a leader again');
  t.ok(c.raft('b').term > 1 || c.raft('b').leader !== undefined);
});

t.test('a follower that missed the quiesce heartbeat campaigns; the quiet leader wakes and keeps it', async (t) => {
  const c = new Cluster(['a', 'b', 'c'], opts);
  c.elect('a');
  c.dropIf = (m) => m.quiesce === true && m.to === 'c';
  c.tickAll(15);
  t.ok(c.raft('a').quiesced);
  t.notOk(c.raft('c').quiesced, 'c never heard the leader go quiet');
  c.dropIf = undefined;
  const term = c.raft('a').term;
  c.tickAll(40);
  t.same(c.leaders(), ['a'], 'c\'s pre-vote woke the leader; its heartbeat brought c back');
  t.equal(c.raft('a').term, term);
});

t.test('a quiet leader told that a member is unreachable heartbeats again, so check-quorum can act', async (t) => {
  const c = quietGroup();
  c.isolate('a');
  c.raft('a').memberUnreachable('b');
  t.notOk(c.raft('a').quiesced);
  c.tickAll(25);
  t.not(c.raft('a').role, 'leader', 'alone, it stepped down');
});

t.test('ticks slept through pass at once: tick(n) on a quiet member costs no work per tick', async (t) => {
  const c = quietGroup();
  const before = c.sent.length;
  c.raft('b').tick(1_000_000_000);
  c.raft('a').tick(1_000_000_000);
  c.settle();
  t.equal(c.sent.length, before);
  t.ok(c.raft('a').quiesced && c.raft('b').quiesced);
});

t.test('a campaign that says the quiet leader is unreachable ends a quiet follower\'s lease at once', async (t) => {
  // Only b's detector has reported a: c would still refuse b, and b would try again an election timeout later.
  const c = quietGroup();
  c.isolate('a');
  c.raft('b').memberUnreachable('a');
  let ticks = 0;
  while (c.leaders().filter((id) => id !== 'a').length === 0 && ticks < 100) {
    c.tickAll(1);
    ticks++;
  }
  t.same(c.leaders().filter((id) => id !== 'a'), ['b'], 'b leads');
  t.ok(ticks <= 4, `elected ${ticks} ticks after the report (a third of an election timeout is 3), without c's own report`);
  const preVote = c.sent.find((m) => m.type === 'preVote' && m.from === 'b' && m.to === 'c');
  t.equal(preVote?.context, 'leader-unreachable:a', 'the campaign says why');
  t.equal(c.sent.find((m) => m.type === 'vote' && m.from === 'b' && m.to === 'c')?.context, 'leader-unreachable:a');
});

t.test('a quiet follower keeps its lease against a campaign that does not name its leader as unreachable', async (t) => {
  for (const context of [undefined, 'leader-unreachable:z']) {
    const c = quietGroup();
    c.isolate('a');
    // b campaigns on its own (its election timer, or a claim about someone else): c, quiet, still trusts a.
    c.dropIf = (m) => {
      if ((m.type === 'preVote' || m.type === 'vote') && m.from === 'b' && m.to === 'c') {
        if (context === undefined) delete m.context;
        else m.context = context;
      }
      return false;
    };
    c.raft('b').memberUnreachable('a');
    c.tickAll(4);
    t.same(c.leaders().filter((id) => id !== 'a'), [], `no new leader within 4 ticks (context ${String(context)})`);
    const answer = c.sent.find((m) => m.type === 'preVoteResp' && m.from === 'c' && m.to === 'b');
    t.equal(answer, undefined, 'c ignored the pre-vote');
  }
});

t.test('hearing from the leader again forgets the report: a later campaign does not claim it', async (t) => {
  const c = quietGroup();
  c.raft('b').memberUnreachable('a');
  c.settle();
  // a is fine: it answers b's wake with heartbeats, and the group goes quiet again.
  c.tickAll(20);
  t.same(c.leaders(), ['a']);
  c.raft('b').campaign();
  c.settle();
  const preVote = c.sent.filter((m) => m.type === 'preVote' && m.from === 'b').at(-1);
  t.ok(preVote, 'b campaigned');
  t.equal(preVote?.context, undefined, 'without the claim');
});
