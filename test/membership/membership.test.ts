import t from 'tap';
import { ManualClock } from '../../src/lib/clock.js';
import { Random } from '../../src/lib/random.js';
import { LIMITS } from '../../src/lib/limits.js';
import { Membership } from '../../src/membership/membership.js';
import { emptyMeta, encodedSizeBytes } from '../../src/membership/meta.js';
import type { GossipMessage, MemberEvent, MembershipEffect, NodeMeta } from '../../src/membership/types.js';
import { DEFAULT_MEMBERSHIP_CONFIG, type MembershipConfig } from '../../src/membership/config.js';

const meta = (name: string, extra: Partial<NodeMeta> = {}): NodeMeta => ({ ...emptyMeta(), name, agentVersion: '0.1.0', addresses: [`${name}:7645`], ...extra });

interface Sent {
  from: string;
  to: string;
  message: GossipMessage;
}

/** A hand-driven network: messages wait in `wire` until the test delivers or drops them. */
class Bench {
  readonly clock = new ManualClock(0);
  readonly nodes = new Map<string, Membership>();
  readonly events = new Map<string, MemberEvent[]>();
  readonly persisted = new Map<string, number[]>();
  wire: Sent[] = [];
  lastEffects = new Map<string, MembershipEffect[]>();

  add(id: string, options: { incarnation?: number; config?: Partial<MembershipConfig>; meta?: NodeMeta } = {}): Membership {
    const m = new Membership({ id, meta: options.meta ?? meta(id), clock: this.clock, random: Random.fromSeed(id), incarnation: options.incarnation, config: options.config });
    this.nodes.set(id, m);
    this.events.set(id, []);
    this.persisted.set(id, []);
    this.collect(id);
    return m;
  }

  get(id: string): Membership {
    return this.nodes.get(id)!;
  }

  collect(id: string): MembershipEffect[] {
    const effects = this.get(id).drainEffects();
    this.lastEffects.set(id, effects);
    const sendIndex = effects.findIndex((e) => e.kind === 'send');
    const persistIndex = effects.findIndex((e) => e.kind === 'persist');
    if (persistIndex >= 0 && sendIndex >= 0 && persistIndex > sendIndex) throw new Error('persist came after a send');
    for (const e of effects) {
      if (e.kind === 'send') this.wire.push({ from: id, to: e.to, message: e.message });
      else if (e.kind === 'event') this.events.get(id)!.push(e.event);
      else this.persisted.get(id)!.push(e.incarnation);
    }
    return effects;
  }

  tick(id: string): void {
    this.get(id).tick();
    this.collect(id);
  }

  /** Advances the clock in 10 ms steps, ticking every node. */
  advance(ms: number, only?: string[]): void {
    for (let i = 0; i < ms / 10; i++) {
      this.clock.advance(10);
      for (const id of only ?? [...this.nodes.keys()]) this.tick(id);
    }
  }

  /** Delivers what is on the wire (and what that causes) until quiet; `drop` decides losses. */
  flush(drop: (s: Sent) => boolean = () => false, maxRounds = 50): void {
    for (let round = 0; round < maxRounds && this.wire.length > 0; round++) {
      const batch = this.wire;
      this.wire = [];
      for (const s of batch) {
        if (drop(s) || !this.nodes.has(s.to)) continue;
        this.get(s.to).receive(s.from, s.message);
        this.collect(s.to);
      }
    }
  }

  take(pred: (s: Sent) => boolean): Sent[] {
    const out = this.wire.filter(pred);
    this.wire = this.wire.filter((s) => !pred(s));
    return out;
  }

  /** Forms a full cluster by push-pull through the first node. */
  form(ids: string[], config?: Partial<MembershipConfig>): void {
    for (const id of ids) this.add(id, { config });
    for (const id of ids.slice(1)) {
      this.get(id).join([ids[0]!]);
      this.collect(id);
      this.flush();
    }
    // A second round lets the first members learn the later ones.
    for (const id of ids.slice(1)) {
      this.get(id).join([ids[0]!]);
      this.collect(id);
      this.flush();
    }
    for (const a of ids) for (const b of ids) if (this.get(a).member(b)?.status !== 'alive') throw new Error(`${a} does not see ${b}`);
    for (const id of ids) this.events.set(id, []);
  }

  kinds(id: string, about: string): string[] {
    return this.events.get(id)!.filter((e) => e.member.id === about).map((e) => e.kind);
  }
}

t.test('start: the starting incarnation is persisted first; bad options are refused with the field named', async (t) => {
  const b = new Bench();
  const m = new Membership({ id: 'a', meta: meta('a'), clock: b.clock, random: Random.fromSeed(1), incarnation: 4 });
  const effects = m.drainEffects();
  t.same(effects[0], { kind: 'persist', incarnation: 4 });
  t.equal(m.incarnation, 4);
  t.equal(m.member('a')?.status, 'alive');
  t.same(m.drainEffects(), [], 'drained');
  t.throws(() => new Membership({ id: '', meta: meta('a'), clock: b.clock, random: Random.fromSeed(1) }), { code: 'ERR_INVALID_ARGUMENT', message: /id must be a non-empty string/ });
  t.throws(() => new Membership({ id: 'a', meta: meta('a'), clock: b.clock, random: Random.fromSeed(1), incarnation: -1 }), { code: 'ERR_INVALID_ARGUMENT', message: /incarnation/ });
  t.throws(() => new Membership({ id: 'a', meta: meta('a'), clock: b.clock, random: Random.fromSeed(1), config: { probeTimeoutMs: 500 } }), { code: 'ERR_INVALID_ARGUMENT', message: /probeTimeoutMs/ });
  t.throws(() => new Membership({ id: 'a', meta: { ...meta('a'), labels: { x: 'y'.repeat(LIMITS.membershipMaxMetaBytes) } }, clock: b.clock, random: Random.fromSeed(1) }), { code: 'ERR_MEMBER_META_TOO_LARGE' });
});

t.test('join: push-pull with a seed fills both views with metadata', async (t) => {
  const b = new Bench();
  b.add('a');
  b.add('b', { meta: meta('b', { labels: { zone: 'z1' }, drivers: ['docker'], roles: { voter: true, leader: false } }) });
  b.get('b').join(['a', 'b']);
  b.collect('b');
  t.equal(b.wire.length, 1, 'one push-pull, never to itself');
  b.flush();
  t.equal(b.get('a').member('b')?.status, 'alive');
  t.same(b.get('a').member('b')?.meta.labels, { zone: 'z1' });
  t.equal(b.get('a').member('b')?.meta.roles.voter, true);
  t.equal(b.get('b').member('a')?.status, 'alive');
  t.same(b.kinds('a', 'b'), ['joined']);
  t.throws(() => b.get('a').join(['']), { code: 'ERR_INVALID_ARGUMENT' });
});

t.test('join is retried while the node knows nobody', async (t) => {
  const b = new Bench();
  b.add('a');
  b.add('b');
  b.get('b').join(['a']);
  b.collect('b');
  b.wire = []; // the first push-pull is lost
  b.advance(1_000, ['b']);
  t.ok(b.wire.some((s) => s.from === 'b' && s.to === 'a' && s.message.kind === 'push-pull'), 'retried after joinRetryIntervalMs');
  b.flush();
  t.equal(b.get('b').member('a')?.status, 'alive');
});

t.test('probe: a timely ack keeps the target alive and this node healthy', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  b.advance(200, ['a']);
  const pings = b.take((s) => s.from === 'a' && s.message.kind === 'ping');
  t.equal(pings.length, 1, 'one probe per interval');
  t.equal(pings[0]!.to, 'b');
  b.wire.push(...pings);
  b.flush();
  for (let i = 0; i < 40; i++) {
    b.advance(10, ['a']);
    b.flush();
  }
  t.equal(b.get('a').member('b')?.status, 'alive');
  t.equal(b.get('a').awarenessScore, 0);
  t.same(b.kinds('a', 'b'), []);
});

t.test('a ping addressed to another node is not answered', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  b.get('b').receive('a', { kind: 'ping', seq: 1, target: 'c', rumours: [] });
  t.same(b.collect('b').filter((e) => e.kind === 'send'), []);
});

t.test('probe failure: ping-req through k members, nacks, then SUSPECT; Lifeguard counts missed nacks', async (t) => {
  const b = new Bench();
  b.form(['a', 'b', 'c', 'd', 'e']);
  b.wire = [];
  // Step a alone until it pings someone.
  let ping: Sent | undefined;
  for (let i = 0; i < 40 && ping === undefined; i++) {
    b.advance(10, ['a']);
    ping = b.take((s) => s.message.kind === 'ping')[0];
  }
  t.ok(ping, 'a probed someone');
  const target = ping!.to;
  const others = ['b', 'c', 'd', 'e'].filter((id) => id !== target);
  b.wire = [];
  b.advance(100, ['a']); // the ack timeout passes
  const reqs = b.take((s) => s.message.kind === 'ping-req');
  t.equal(reqs.length, 3, 'k = 3 indirect probes');
  t.same(reqs.map((r) => r.to).sort(), others.sort(), 'through members other than the target');
  t.ok(reqs.every((r) => r.message.kind === 'ping-req' && r.message.target === target));
  // One helper gets the request and cannot reach the target either: it answers with a nack.
  const helper = reqs[0]!.to;
  b.get(helper).receive('a', reqs[0]!.message);
  b.collect(helper);
  t.ok(b.take((s) => s.from === helper && s.to === target && s.message.kind === 'ping').length === 1, 'the helper pings the target');
  b.advance(80, [helper]);
  const nacks = b.take((s) => s.message.kind === 'nack');
  t.equal(nacks.length, 1, 'nack after nackTimeoutMs');
  b.wire = nacks;
  b.flush();
  b.advance(100, ['a']); // the probe ends
  t.equal(b.get('a').member(target)?.status, 'suspect');
  t.same(b.kinds('a', target), ['suspect']);
  t.equal(b.get('a').awarenessScore, 2, 'three helpers asked, one nack: two missed nacks count against us');
  t.ok(b.get('a').suspicion(target), 'a suspicion timer runs');
});

t.test('indirect probe: the helper forwards the target\'s ack with the requester\'s seq', async (t) => {
  const b = new Bench();
  b.form(['a', 'b', 'c']);
  b.get('b').receive('a', { kind: 'ping-req', seq: 77, target: 'c', rumours: [] });
  b.collect('b');
  b.flush((s) => s.to === 'a' && s.message.kind !== 'ack');
  t.equal(b.wire.length, 0);
  // Check that the forwarded ack was seq 77 by replaying with a capture.
  const b2 = new Bench();
  b2.form(['a', 'b', 'c']);
  b2.get('b').receive('a', { kind: 'ping-req', seq: 77, target: 'c', rumours: [] });
  b2.collect('b');
  const ping = b2.take(() => true)[0]!;
  b2.get('c').receive('b', ping.message);
  b2.collect('c');
  const ack = b2.take(() => true)[0]!;
  b2.get('b').receive('c', ack.message);
  b2.collect('b');
  const forwarded = b2.take(() => true);
  t.equal(forwarded.length, 1);
  t.equal(forwarded[0]!.to, 'a');
  t.same(forwarded[0]!.message.kind === 'ack' && forwarded[0]!.message.seq, 77);
  // ping-req about itself or the requester is refused.
  b2.get('b').receive('a', { kind: 'ping-req', seq: 78, target: 'a', rumours: [] });
  t.same(b2.collect('b').filter((e) => e.kind === 'send'), []);
});

t.test('suspicion: DEAD after the timeout, sooner with independent confirmations', async (t) => {
  const b = new Bench();
  const ids = ['a', 'b', 'c', 'd', 'e'];
  b.form(ids);
  const a = b.get('a');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'b' }] });
  b.collect('a');
  t.equal(a.member('e')?.status, 'suspect');
  const start = b.clock.nowMs();
  // n = 5: min = 4 * 1 * 200 = 800 ms, max = 6 * 800 = 4,800 ms, k = 2.
  t.equal(a.suspicion('e')?.deadlineMs, start + 4_800);
  a.receive('c', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'c' }] });
  b.collect('a');
  t.equal(a.suspicion('e')?.confirmations, 1);
  t.ok(a.suspicion('e')!.deadlineMs < start + 4_800, 'one confirmation shortens it');
  a.receive('d', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'd' }] });
  b.collect('a');
  t.equal(a.suspicion('e')?.deadlineMs, start + 800, 'k confirmations: the minimum');
  b.advance(790, ['a']);
  t.equal(a.member('e')?.status, 'suspect');
  b.advance(10, ['a']);
  t.equal(a.member('e')?.status, 'dead');
  t.same(b.kinds('a', 'e'), ['suspect', 'dead']);
  // A stale suspicion does not touch a DEAD member; a stale alive does not revive it.
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'b' }, { kind: 'alive', node: 'e', incarnation: 0, meta: meta('e') }] });
  b.collect('a');
  t.equal(a.member('e')?.status, 'dead');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'alive', node: 'e', incarnation: 1, meta: meta('e') }] });
  b.collect('a');
  t.equal(a.member('e')?.status, 'alive', 'a higher incarnation brings it back');
  t.same(b.kinds('a', 'e'), ['suspect', 'dead', 'alive']);
});

t.test('refutation: a node accused at its incarnation out-bids it, persists first, and gossips alive', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  const a = b.get('a');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'a', incarnation: 0, from: 'b' }] });
  const effects = b.collect('a');
  t.same(effects[0], { kind: 'persist', incarnation: 1 });
  t.equal(a.incarnation, 1);
  t.equal(a.member('a')?.status, 'alive', 'never suspects itself');
  t.equal(a.awarenessScore, 1, 'being accused counts against local health');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'dead', node: 'a', incarnation: 1, from: 'b' }] });
  b.collect('a');
  t.equal(a.incarnation, 2, 'a DEAD verdict about a live node is refuted too');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'a', incarnation: 9, from: 'b' }] });
  b.collect('a');
  t.equal(a.incarnation, 10, 'out-bids a higher accused incarnation');
  t.same(b.persisted.get('a'), [0, 1, 2, 10], 'the start incarnation, then each refutation');
  // Next message from a carries the refutation.
  b.get('b').receive('a', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'a', incarnation: 0, from: 'b' }] });
  b.collect('b');
  b.wire = [];
  b.advance(200, ['a']);
  const out = b.wire.filter((s) => s.from === 'a');
  t.ok(out.some((s) => s.message.kind !== 'push-pull' && s.message.rumours.some((r) => r.kind === 'alive' && r.node === 'a' && r.incarnation === 10)));
});

t.test('a stale accusation gets the current incarnation back directly', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  b.get('a').receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'a', incarnation: 0, from: 'b' }] });
  b.collect('a');
  b.wire = [];
  // b still accuses a at 0 (it missed the refutation) in an ack: a answers b at once.
  b.get('a').receive('b', { kind: 'ack', seq: 999, rumours: [{ kind: 'suspect', node: 'a', incarnation: 0, from: 'b' }] });
  b.collect('a');
  const direct = b.take((s) => s.to === 'b');
  t.equal(direct.length, 1);
  t.ok(direct[0]!.message.kind === 'gossip' && direct[0]!.message.rumours[0]?.kind === 'alive' && direct[0]!.message.rumours[0]?.incarnation === 1);
  t.equal(b.get('a').incarnation, 1, 'no new refutation for a stale accusation');
});

t.test('buddy system: a probe of a suspect carries the suspicion, and the suspect refutes in its ack', async (t) => {
  const b = new Bench();
  b.form(['a', 'e']);
  b.get('a').receive('x', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'x' }] });
  b.collect('a');
  b.wire = [];
  b.advance(200, ['a']);
  const ping = b.take((s) => s.message.kind === 'ping')[0];
  t.ok(ping && ping.to === 'e');
  t.same(ping!.message.kind === 'ping' && ping!.message.rumours[0], { kind: 'suspect', node: 'e', incarnation: 0, from: 'a' }, 'the suspicion rides first');
  b.wire.push(ping!);
  b.flush();
  t.equal(b.get('e').incarnation, 1, 'e refuted on the ping itself');
  t.equal(b.get('a').member('e')?.status, 'alive', 'the ack carried the refutation back');
  t.equal(b.get('a').member('e')?.incarnation, 1);
});

t.test('leave: LEFT everywhere, not DEAD; a stale alive does not resurrect it; a higher incarnation rejoins', async (t) => {
  const b = new Bench();
  b.form(['a', 'b', 'c', 'd']);
  b.get('d').leave();
  b.get('d').leave(); // idempotent
  b.collect('d');
  t.equal(b.get('d').status, 'left');
  t.ok(b.wire.length >= 1 && b.wire.length <= 3, 'told up to leaveFanout members directly');
  b.flush();
  b.advance(500);
  b.flush();
  for (const id of ['a', 'b', 'c']) {
    t.equal(b.get(id).member('d')?.status, 'left', `${id} sees d LEFT`);
    t.notOk(b.kinds(id, 'd').includes('dead'), `${id} never saw d DEAD`);
  }
  const a = b.get('a');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'alive', node: 'd', incarnation: 0, meta: meta('d') }, { kind: 'dead', node: 'd', incarnation: 0, from: 'b' }] });
  b.collect('a');
  t.equal(a.member('d')?.status, 'left', 'LEFT holds against stale alive and dead rumours');
  // The leaving node does not refute rumours about itself, and stops probing.
  const d = b.get('d');
  d.receive('a', { kind: 'gossip', rumours: [{ kind: 'left', node: 'd', incarnation: 0 }] });
  t.equal(d.incarnation, 0);
  t.throws(() => d.updateMeta(meta('d')), { code: 'ERR_INVARIANT' });
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'alive', node: 'd', incarnation: 1, meta: meta('d') }] });
  b.collect('a');
  t.equal(a.member('d')?.status, 'alive', 'a restarted d at a higher incarnation is back');
});

t.test('restart: a node that lost its incarnation out-bids the rumours of its former life', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  const fresh = new Membership({ id: 'z', meta: meta('z'), clock: b.clock, random: Random.fromSeed(3), incarnation: 0 });
  fresh.receive('a', { kind: 'gossip', rumours: [{ kind: 'alive', node: 'z', incarnation: 5, meta: meta('z') }] });
  t.equal(fresh.incarnation, 6);
  fresh.receive('a', { kind: 'gossip', rumours: [{ kind: 'alive', node: 'z', incarnation: 6, meta: meta('z', { agentVersion: 'old' }) }] });
  t.equal(fresh.incarnation, 7, 'same incarnation but other metadata: out-bid as well');
  fresh.receive('a', { kind: 'gossip', rumours: [{ kind: 'left', node: 'z', incarnation: 7 }] });
  t.equal(fresh.incarnation, 8, 'a leave of a former life is out-bid');
  t.same(fresh.drainEffects()[0], { kind: 'persist', incarnation: 8 });
});

t.test('metadata update bumps the incarnation and reaches others as an update', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  b.get('a').updateMeta(meta('a', { roles: { voter: true, leader: true }, resources: { cpuMillicores: 2000, memoryBytes: 1, diskFreeBytes: 2 } }));
  b.collect('a');
  t.equal(b.get('a').incarnation, 1);
  t.same(b.persisted.get('a')!.at(-1), 1);
  b.advance(200, ['a']);
  b.flush();
  t.equal(b.get('b').member('a')?.meta.roles.leader, true);
  t.equal(b.get('b').member('a')?.incarnation, 1);
  t.same(b.kinds('b', 'a'), ['updated']);
  t.throws(() => b.get('a').updateMeta({ ...meta('a'), addresses: [3 as never] }), { code: 'ERR_INVALID_ARGUMENT', message: /addresses/ });
});

t.test('push-pull: what a peer calls DEAD we only SUSPECT; LEFT and new members merge', async (t) => {
  const b = new Bench();
  b.form(['a', 'b', 'c']);
  const a = b.get('a');
  a.receive('b', {
    kind: 'push-pull',
    reply: true,
    states: [
      { id: 'c', incarnation: 0, status: 'dead', meta: meta('c') },
      { id: 'n', incarnation: 2, status: 'alive', meta: meta('n') },
      { id: 'b', incarnation: 0, status: 'left', meta: meta('b') },
      { id: '', incarnation: 0, status: 'alive', meta: meta('') },
      { id: 'bad', incarnation: -1, status: 'alive', meta: meta('bad') },
    ],
  });
  const effects = b.collect('a');
  t.equal(a.member('c')?.status, 'suspect');
  t.equal(a.member('n')?.status, 'alive');
  t.equal(a.member('b')?.status, 'left');
  t.equal(a.member('bad'), undefined, 'malformed states are skipped');
  const reply = effects.find((e) => e.kind === 'send');
  t.ok(reply && reply.kind === 'send' && reply.message.kind === 'push-pull' && !reply.message.reply, 'answers with its own state');
  t.equal(reply?.kind === 'send' && reply.message.kind === 'push-pull' && reply.message.states[0]?.id, 'a', 'its own state first');
});

t.test('partition merge: a node another side calls DEAD refutes through push-pull, and reconnect targets the dead', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  const a = b.get('a');
  a.receive('x', { kind: 'gossip', rumours: [{ kind: 'dead', node: 'b', incarnation: 0, from: 'x' }] });
  b.collect('a');
  t.equal(a.member('b')?.status, 'dead');
  b.wire = [];
  b.advance(2_000, ['a']);
  const reconnect = b.take((s) => s.from === 'a' && s.to === 'b' && s.message.kind === 'push-pull');
  t.ok(reconnect.length >= 1, 'a push-pull to a DEAD member every reconnectIntervalMs');
  b.wire.push(reconnect[0]!);
  b.flush();
  t.equal(b.get('b').incarnation, 1, 'b learnt it was declared dead and refuted');
  t.equal(a.member('b')?.status, 'alive');
});

t.test('reaping: DEAD members are forgotten after deadReapAfterMs but stay unresurrectable at their incarnation', async (t) => {
  const b = new Bench();
  const config = { deadReapAfterMs: 30_000, leftReapAfterMs: 10_000 };
  b.form(['a', 'b', 'c'], config);
  const a = b.get('a');
  a.receive('x', { kind: 'gossip', rumours: [{ kind: 'dead', node: 'b', incarnation: 3, from: 'x' }, { kind: 'left', node: 'c', incarnation: 0 }] });
  b.collect('a');
  b.advance(12_000, ['a']);
  t.equal(a.member('c'), undefined, 'LEFT reaped after leftReapAfterMs');
  t.equal(a.member('b')?.status, 'dead');
  b.advance(20_000, ['a']);
  t.equal(a.member('b'), undefined, 'DEAD reaped');
  t.same(b.kinds('a', 'b').slice(-1), ['reaped']);
  a.receive('x', { kind: 'gossip', rumours: [{ kind: 'alive', node: 'b', incarnation: 3, meta: meta('b') }, { kind: 'alive', node: 'c', incarnation: 0, meta: meta('c') }] });
  b.collect('a');
  t.equal(a.member('b'), undefined, 'a stale alive does not resurrect a reaped member');
  t.equal(a.member('c'), undefined);
  a.receive('x', { kind: 'gossip', rumours: [{ kind: 'alive', node: 'b', incarnation: 4, meta: meta('b') }] });
  b.collect('a');
  t.equal(a.member('b')?.status, 'alive', 'a newer life joins again');
});

t.test('Lifeguard local health: a stalled node moves its own deadlines and slows down', async (t) => {
  const b = new Bench();
  b.form(['a', 'b', 'c', 'd', 'e']);
  const a = b.get('a');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'b' }] });
  b.collect('a');
  const before = a.suspicion('e')!.deadlineMs;
  b.advance(10, ['a']);
  b.clock.advance(1_000); // a GC pause: no ticks for a second
  b.tick('a');
  t.equal(a.counters.stalls, 1);
  t.equal(a.awarenessScore, 1);
  t.equal(a.suspicion('e')!.deadlineMs, before + 1_000, 'the suspicion waits the stall out');
  // With awareness 1 the probe interval doubles: count probes in 2 s.
  b.wire = [];
  const probesBefore = a.counters.probes;
  b.advance(2_000, ['a']);
  const probes = a.counters.probes - probesBefore;
  t.ok(probes <= 10 && probes >= 1, `probed ${probes} times in 2 s (10 at full speed)`);
  t.ok(a.nextWakeMs() > b.clock.nowMs(), 'nextWakeMs is in the future after a tick');
});

t.test('a stall while a probe waits for its ack is one stall: the probe still ends, and the node does not spin', async (t) => {
  // Found on 20 real agents: a stall during an unanswered probe moved the probe's end but not the next probe's
  // time, so the next tick saw that time far behind it, took it for another stall and moved the probe's end again.
  // The probe never ended, the node never probed anyone else, and its runtime woke every 2 ms.
  const b = new Bench();
  b.form(['a', 'b', 'c', 'd', 'e']);
  const a = b.get('a');
  // Let a's next probe go out, and lose everything from now on: nobody answers it.
  const probesBefore = a.counters.probes;
  for (let i = 0; i < 200 && a.counters.probes === probesBefore; i++) b.advance(10, ['a']);
  t.equal(a.counters.probes, probesBefore + 1, 'a probe is out');
  b.wire = [];
  b.clock.advance(1_000); // a GC pause with the probe in flight
  b.tick('a');
  t.equal(a.counters.stalls, 1);
  let ticks = 0;
  const start = b.clock.nowMs();
  // A runtime that sleeps until nextWakeMs() (at least 2 ms, as the agent does) for 5 s, losing every message.
  while (b.clock.nowMs() < start + 5_000) {
    b.clock.set(Math.max(a.nextWakeMs(), b.clock.nowMs() + 2));
    b.tick('a');
    b.wire = [];
    ticks++;
  }
  t.equal(a.counters.stalls, 1, 'no stall after the real one');
  t.ok(a.counters.probesFailed >= 1, 'the probe that was out failed');
  t.ok(a.counters.probes >= probesBefore + 3, `a went on probing (${a.counters.probes - probesBefore} probes)`);
  t.ok(ticks <= 200, `${ticks} ticks in 5 s (2,500 when spinning)`);
});

t.test('a refutation goes straight to the accusers, who may be out of reach of the gossip for too long', async (t) => {
  const b = new Bench();
  b.form(['a', 'b', 'c', 'd', 'e']);
  const e = b.get('e');
  b.wire = [];
  // e hears from b that a suspects it: a's timer runs against e.
  e.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'a' }] });
  b.collect('e');
  t.equal(e.incarnation, 1, 'e refuted');
  const direct = (to: string): Sent[] => b.wire.filter((s) => s.to === to && s.message.kind === 'gossip' && s.message.rumours.some((r) => r.kind === 'alive' && r.node === 'e' && r.incarnation === 1));
  t.equal(direct('a').length, 1, 'a, the accuser, is told at once');
  t.equal(direct('b').length, 0, 'b, who only passed the rumour on, waits for the gossip');
  // d passes on c's suspicion of the life e just out-bid: both c (the accuser) and d (the sender) are told.
  b.wire = [];
  e.receive('d', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'c' }] });
  b.collect('e');
  t.equal(direct('c').length, 1, 'c, an accuser, is told at once');
  t.equal(direct('d').length, 1, 'd still accused an old life');
  // An accuser that sends its accusation itself gets one answer, not two.
  b.wire = [];
  e.receive('c', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 1, from: 'c' }] });
  b.collect('e');
  t.equal(e.incarnation, 2);
  t.equal(b.wire.filter((s) => s.to === 'c').length, 1);
  // Accusers that are not live members, or this node itself, get nothing.
  b.wire = [];
  e.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 2, from: 'zz' }, { kind: 'dead', node: 'e', incarnation: 2, from: 'e' }] });
  b.collect('e');
  t.equal(e.incarnation, 3);
  t.same(b.wire.filter((s) => s.to === 'zz' || s.to === 'e'), []);
});

t.test('a late ack from a suspect gets the suspicion back, and its refutation comes straight back', async (t) => {
  const b = new Bench();
  b.form(['a', 'b', 'c', 'd', 'e']);
  const a = b.get('a');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'b' }] });
  b.collect('a');
  b.wire = [];
  // e was paused: its ack to a probe that ended long ago arrives, carrying nothing about itself.
  a.receive('e', { kind: 'ack', seq: 9_999, rumours: [] });
  b.collect('a');
  const back = b.wire.filter((s) => s.to === 'e');
  t.equal(back.length, 1);
  t.same(back[0]!.message, { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'a' }] });
  b.flush();
  t.equal(a.member('e')?.status, 'alive', 'e refuted to a directly');
  t.equal(a.member('e')?.incarnation, 1);
  // An ack that carries the refutation clears the suspicion first: nothing is sent back.
  a.receive('c', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 1, from: 'c' }] });
  b.collect('a');
  b.wire = [];
  a.receive('e', { kind: 'ack', seq: 9_998, rumours: [{ kind: 'alive', node: 'e', incarnation: 2, meta: meta('e') }] });
  b.collect('a');
  t.same(b.wire.filter((s) => s.to === 'e' && s.message.kind === 'gossip'), []);
  t.equal(a.member('e')?.status, 'alive');
});

t.test('a runtime may sleep until nextWakeMs(): a few ticks a second, no false stalls, a crash still detected fast', async (t) => {
  const b = new Bench();
  const ids = ['a', 'b', 'c', 'd', 'e'];
  b.form(ids);
  const ticks = new Map(ids.map((id) => [id, 0]));
  const alive = new Set(ids);
  // Ticks each node only when its nextWakeMs() is due; messages arrive at once (and are dropped to or from a dead node).
  const run = (untilMs: number): void => {
    for (let rounds = 0; rounds < 100_000; rounds++) {
      const next = Math.min(...[...alive].map((id) => b.get(id).nextWakeMs()));
      if (next > untilMs) {
        b.clock.set(untilMs);
        return;
      }
      if (next > b.clock.nowMs()) b.clock.set(next);
      for (const id of alive) {
        if (b.get(id).nextWakeMs() > b.clock.nowMs()) continue;
        b.tick(id);
        ticks.set(id, ticks.get(id)! + 1);
      }
      b.flush((s) => !alive.has(s.from) || !alive.has(s.to));
    }
    throw new Error('the nodes never went to sleep');
  };
  const start = b.clock.nowMs();
  run(start + 10_000);
  for (const id of ids) {
    const m = b.get(id);
    t.ok(ticks.get(id)! <= 100, `${id} ticked ${ticks.get(id)} times in 10 s (1,000 at a 10 ms period)`);
    t.ok(m.counters.probes >= 40, `${id} still probed ${m.counters.probes} times`);
    t.equal(m.counters.stalls, 0, `${id} saw no stall`);
    t.equal(m.awarenessScore, 0);
    t.same(b.events.get(id), [], `${id} suspected nobody`);
  }
  alive.delete('e');
  const crashMs = b.clock.nowMs();
  run(crashMs + 5_000);
  for (const id of ['a', 'b', 'c', 'd']) {
    const dead = b.events.get(id)!.find((e) => e.member.id === 'e' && e.kind === 'dead');
    t.ok(dead, `${id} declared e DEAD`);
    t.ok(dead!.member.statusChangedAtMs - crashMs <= 3_000, `${id} within ${dead!.member.statusChangedAtMs - crashMs} ms`);
    t.equal(b.get(id).counters.stalls, 0);
  }
  // A real stall is still one: nothing ran for a second while probes were due.
  b.clock.advance(1_000);
  b.tick('a');
  t.equal(b.get('a').counters.stalls, 1, 'a tick far past a due deadline is a stall');
});

t.test('nextWakeMs() leaves out timers that would do nothing', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  const a = b.get('a');
  for (let i = 0; i < 100 && (a.queuedRumours > 0 || b.get('b').queuedRumours > 0); i++) {
    b.advance(10);
    b.flush();
  }
  t.equal(a.queuedRumours, 0, 'the join rumours were all sent');
  const idle = a.nextWakeMs();
  t.ok(idle - b.clock.nowMs() <= DEFAULT_MEMBERSHIP_CONFIG.probeIntervalMs, 'the next probe is the next deadline');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'x', incarnation: 0, from: 'b' }, { kind: 'alive', node: 'c', incarnation: 0, meta: meta('c') }] });
  b.collect('a');
  t.ok(a.queuedRumours > 0);
  t.ok(a.nextWakeMs() <= b.clock.nowMs() + DEFAULT_MEMBERSHIP_CONFIG.gossipIntervalMs, 'a queued rumour brings the gossip round in');
  a.leave();
  b.collect('a');
  b.advance(2_000, ['a']);
  t.ok(a.nextWakeMs() > b.clock.nowMs(), 'a node that left does not ask to be woken for probes or joins it will not do');
});

t.test('every ping, ack and gossip message stays within membershipMaxMessageBytes', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  const a = b.get('a');
  const bigMeta = (i: number): NodeMeta => meta(`m${i}`, { labels: { blob: 'x'.repeat(1_200) } });
  for (let i = 0; i < 200; i++) a.receive('b', { kind: 'gossip', rumours: [{ kind: 'alive', node: `m${i}`, incarnation: 1, meta: bigMeta(i) }] });
  b.collect('a');
  t.ok(a.queuedRumours > 100);
  b.wire = [];
  b.advance(1_000, ['a']);
  const msgs = b.wire.filter((s) => s.message.kind !== 'push-pull');
  t.ok(msgs.length > 0);
  for (const s of msgs) t.ok(encodedSizeBytes(s.message) <= LIMITS.membershipMaxMessageBytes, `${s.message.kind} is ${encodedSizeBytes(s.message)} bytes`);
  t.ok(msgs.some((s) => s.message.kind !== 'push-pull' && s.message.rumours.length > 1), 'several rumours ride together');
});

t.test('malformed input from a peer is ignored, never thrown', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  const a = b.get('a');
  const junk: unknown[] = [
    { kind: 'gossip', rumours: [null, 3, { kind: 'alive' }, { kind: 'alive', node: 'q', incarnation: 1.5, meta: meta('q') }, { kind: 'alive', node: 'q', incarnation: 1, meta: { name: 1 } }, { kind: 'suspect', node: 'b', incarnation: 0 }, { kind: 'weird', node: 'b', incarnation: 9 }] },
    { kind: 'gossip' },
    { kind: 'push-pull', reply: false },
    { kind: 'push-pull', reply: false, states: [null, { id: 'x'.repeat(500), incarnation: 1, status: 'alive', meta: meta('x') }] },
    { kind: 'ping-req', seq: 1, target: 3, rumours: [] },
    null,
    'ping',
  ];
  for (const msg of junk) t.doesNotThrow(() => a.receive('b', msg as GossipMessage));
  t.doesNotThrow(() => a.receive('a', { kind: 'gossip', rumours: [] }), 'a message from itself');
  t.doesNotThrow(() => a.receive('x'.repeat(500), { kind: 'gossip', rumours: [] }));
  t.same(a.members().map((m) => `${m.id}:${m.status}`), ['a:alive', 'b:alive']);
});

t.test('the same seed gives the same behaviour', async (t) => {
  const run = (): string => {
    const b = new Bench();
    b.form(['a', 'b', 'c', 'd']);
    for (let i = 0; i < 100; i++) {
      b.advance(10);
      b.flush((s) => (s.message.kind === 'ping' ? s.message.seq % 7 === 0 : false));
    }
    return JSON.stringify([...b.nodes.values()].map((m) => [m.members(), m.counters]));
  };
  t.equal(run(), run());
});

t.test('a suspicion at a newer incarnation replaces an older one with a fresh timer', async (t) => {
  const b = new Bench();
  b.form(['a', 'b', 'c', 'd', 'e']);
  const a = b.get('a');
  a.receive('b', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 0, from: 'b' }] });
  b.collect('a');
  b.advance(4_000, ['a']);
  a.receive('c', { kind: 'gossip', rumours: [{ kind: 'suspect', node: 'e', incarnation: 1, from: 'c' }] });
  b.collect('a');
  t.equal(a.member('e')?.incarnation, 1);
  t.equal(a.suspicion('e')?.deadlineMs, b.clock.nowMs() + 4_800, 'the timer starts again');
  b.advance(1_000, ['a']);
  t.equal(a.member('e')?.status, 'suspect', 'not declared dead on the old timer');
  t.same(b.kinds('a', 'e'), ['suspect', 'suspect']);
});

t.test('an unknown sender is introduced by push-pull; a reaped one is told to refute', async (t) => {
  const b = new Bench();
  b.form(['a', 'b']);
  b.add('c');
  b.wire = [];
  // c knows a (say, from an earlier push-pull) and pings it; a has never heard of c.
  b.get('a').receive('c', { kind: 'ping', seq: 1, target: 'a', rumours: [] });
  b.collect('a');
  const toC = b.take((s) => s.to === 'c');
  t.ok(toC.some((s) => s.message.kind === 'ack'));
  t.ok(toC.some((s) => s.message.kind === 'push-pull' && s.message.reply), 'a asks c who it is');
  b.get('a').receive('c', { kind: 'gossip', rumours: [] });
  b.collect('a');
  t.equal(b.take((s) => s.to === 'c' && s.message.kind === 'push-pull').length, 0, 'once per joinRetryIntervalMs');
  b.wire = toC;
  b.flush();
  t.equal(b.get('a').member('c')?.status, 'alive');
  // Reaped: a forgets b after deadReapAfterMs; b (alive all along, cut off) talks again and is told to refute.
  const r = new Bench();
  r.form(['a', 'b'], { deadReapAfterMs: 30_000 });
  r.get('a').receive('x', { kind: 'gossip', rumours: [{ kind: 'dead', node: 'b', incarnation: 0, from: 'x' }] });
  r.collect('a');
  r.advance(32_000, ['a']);
  t.equal(r.get('a').member('b'), undefined);
  r.wire = [];
  r.get('a').receive('b', { kind: 'gossip', rumours: [] });
  r.collect('a');
  r.flush();
  t.equal(r.get('b').incarnation, 1, 'b refuted the verdict it was handed');
  r.advance(200, ['b']);
  r.flush();
  t.equal(r.get('a').member('b')?.status, 'alive', 'and is back in a\'s view');
});
