import t from 'tap';
import { BroadcastQueue } from '../../src/membership/broadcast-queue.js';
import {
  DEFAULT_MEMBERSHIP_CONFIG,
  expectedConfirmations,
  pushPullIntervalForMs,
  retransmitLimit,
  suspicionMinTimeoutMs,
  suspicionTimeoutMs,
  validateMembershipConfig,
} from '../../src/membership/config.js';
import { Suspicion } from '../../src/membership/suspicion.js';
import { emptyMeta, metaProblem, rumourSizeBytes, encodedSizeBytes, validateMeta, utf8Bytes } from '../../src/membership/meta.js';
import type { Rumour } from '../../src/membership/types.js';
import { LIMITS, checkLimits } from '../../src/lib/limits.js';

const suspect = (node: string, incarnation = 1, from = 'x'): Rumour => ({ kind: 'suspect', node, incarnation, from });

t.test('broadcast queue: a newer rumour about a node replaces the older one', async (t) => {
  const q = new BroadcastQueue(16);
  q.enqueue(suspect('a', 1));
  q.enqueue({ kind: 'alive', node: 'a', incarnation: 2, meta: emptyMeta() });
  t.equal(q.size, 1);
  t.same(q.peek('a'), { kind: 'alive', node: 'a', incarnation: 2, meta: emptyMeta() });
  const taken = q.take(10_000, 1, 3);
  t.equal(taken.length, 1);
  t.equal(taken[0]!.kind, 'alive', 'the stale suspicion is never sent');
});

t.test('broadcast queue: each rumour is sent at most `limit` times, least-sent first', async (t) => {
  const q = new BroadcastQueue(16);
  q.enqueue(suspect('a'));
  t.same(q.take(10_000, 1, 2).map((r) => r.node), ['a']);
  q.enqueue(suspect('b'));
  // b has been sent 0 times and a once: b goes first.
  t.same(q.take(10_000, 1, 2).map((r) => r.node), ['b', 'a']);
  t.equal(q.transmits('a'), undefined, 'a reached its limit and is gone');
  t.same(q.take(10_000, 1, 2).map((r) => r.node), ['b']);
  t.equal(q.size, 0);
  t.same(q.take(10_000, 1, 2), [], 'an empty queue gives nothing');
});

t.test('broadcast queue: rumours that do not fit the byte budget wait for the next message', async (t) => {
  const q = new BroadcastQueue(16);
  for (const node of ['a', 'b', 'c']) q.enqueue(suspect(node));
  const one = rumourSizeBytes(suspect('a'));
  const first = q.take(one + 1, 1, 5);
  t.equal(first.length, 1, 'only one fits');
  t.equal(q.take(0, 1, 5).length, 0, 'no budget, nothing taken');
  const rest = q.take(10 * one, 1, 5);
  t.equal(rest.length, 3, 'everything fits in a larger budget');
  t.equal(rest[0]!.node === first[0]!.node, false, 'the unsent ones go first');
  t.same(q.take(10 * one, 1, 5, 'a').map((r) => r.node).includes('a'), false, 'skipNode leaves a rumour out');
});

t.test('broadcast queue: bounded; the most-sent rumour is dropped first', async (t) => {
  const q = new BroadcastQueue(2);
  q.enqueue(suspect('a'));
  q.take(10_000, 1, 10);
  q.enqueue(suspect('b'));
  q.enqueue(suspect('c'));
  t.equal(q.size, 2);
  t.equal(q.peek('a'), undefined, 'a (already sent once) made room');
  t.throws(() => new BroadcastQueue(0), { code: 'ERR_INVARIANT' });
  q.clear();
  t.equal(q.size, 0);
});

t.test('rumour size is an upper bound of its JSON form', async (t) => {
  const meta = { ...emptyMeta(), name: 'nødé', labels: { zone: 'eu-1' }, addresses: ['10.0.0.1:7645'] };
  const rumours: Rumour[] = [
    { kind: 'alive', node: 'n1', incarnation: 123456789012, meta },
    suspect('n2', 99, 'n3'),
    { kind: 'dead', node: 'n2', incarnation: 7, from: 'n3' },
    { kind: 'left', node: 'n4', incarnation: 2 ** 52 },
  ];
  for (const r of rumours) t.ok(rumourSizeBytes(r) >= encodedSizeBytes(r), `${r.kind}: ${rumourSizeBytes(r)} >= ${encodedSizeBytes(r)}`);
  t.equal(utf8Bytes('aé€😀'), 1 + 2 + 3 + 4);
});

t.test('retransmit limit grows with log10 of the cluster size', async (t) => {
  t.equal(retransmitLimit(4, 1), 4);
  t.equal(retransmitLimit(4, 5), 4);
  t.equal(retransmitLimit(4, 9), 4);
  t.equal(retransmitLimit(4, 10), 8);
  t.equal(retransmitLimit(4, 1_000), 16);
  t.equal(retransmitLimit(4, 10_000), 20);
});

t.test('suspicion timeout: starts at max, falls logarithmically to min at k confirmations', async (t) => {
  t.equal(suspicionTimeoutMs(0, 3, 1_000, 6_000), 6_000);
  // log(2)/log(4) = 0.5: one confirmation takes half the way.
  t.equal(suspicionTimeoutMs(1, 3, 1_000, 6_000), 3_500);
  t.equal(suspicionTimeoutMs(2, 3, 1_000, 6_000), Math.floor(6_000 - (Math.log(3) / Math.log(4)) * 5_000));
  t.equal(suspicionTimeoutMs(3, 3, 1_000, 6_000), 1_000);
  t.equal(suspicionTimeoutMs(10, 3, 1_000, 6_000), 1_000, 'never below the minimum');
  t.equal(suspicionTimeoutMs(0, 0, 1_000, 6_000), 1_000, 'k = 0: the minimum at once');
  for (let c = 0; c < 5; c++) t.ok(suspicionTimeoutMs(c + 1, 4, 500, 3_000) <= suspicionTimeoutMs(c, 4, 500, 3_000), 'monotone in confirmations');
  t.throws(() => suspicionTimeoutMs(0, 3, 2_000, 1_000), { code: 'ERR_INVARIANT' });
});

t.test('suspicion bounds scale with log10(n) and the probe interval', async (t) => {
  const cfg = { suspicionMult: 4, probeIntervalMs: 200 };
  t.equal(suspicionMinTimeoutMs(cfg, 1), 800);
  t.equal(suspicionMinTimeoutMs(cfg, 5), 800, 'below 10 members log10 is floored at 1');
  t.equal(suspicionMinTimeoutMs(cfg, 100), 1_600);
  t.equal(suspicionMinTimeoutMs(cfg, 1_000), 2_400);
  t.equal(expectedConfirmations(4, 5), 2);
  t.equal(expectedConfirmations(4, 3), 0, 'too few members to confirm');
  t.equal(pushPullIntervalForMs(10_000, 32), 10_000);
  t.equal(pushPullIntervalForMs(10_000, 64), 20_000);
  t.equal(pushPullIntervalForMs(10_000, 1_000), 60_000);
});

t.test('a Suspicion counts each accuser once and moves its deadline earlier', async (t) => {
  const s = new Suspicion({ incarnation: 3, startMs: 1_000, firstAccuser: 'a', expectedConfirmations: 2, minMs: 800, maxMs: 4_800 });
  t.equal(s.deadlineMs, 1_000 + 4_800);
  t.equal(s.confirm('a'), false, 'the first accuser does not confirm itself');
  t.equal(s.confirm('b'), true);
  t.equal(s.confirm('b'), false, 'the same accuser twice counts once');
  t.equal(s.confirmations, 1);
  t.equal(s.deadlineMs, 1_000 + suspicionTimeoutMs(1, 2, 800, 4_800));
  t.equal(s.confirm('c'), true);
  t.equal(s.deadlineMs, 1_000 + 800);
  t.equal(s.confirm('d'), false, 'past k confirmations there is nothing to gain');
  s.shift(250);
  t.equal(s.deadlineMs, 1_000 + 800 + 250, 'a local stall pushes the deadline out');
  t.throws(() => s.shift(-1), { code: 'ERR_INVARIANT' });
});

t.test('config: defaults are valid; every relation is enforced with the field named', async (t) => {
  t.doesNotThrow(() => validateMembershipConfig({ ...DEFAULT_MEMBERSHIP_CONFIG }));
  const bad: [Partial<typeof DEFAULT_MEMBERSHIP_CONFIG>, RegExp][] = [
    [{ probeTimeoutMs: 200 }, /probeTimeoutMs \(200\) must be less than probeIntervalMs/],
    [{ nackTimeoutMs: 100 }, /nackTimeoutMs/],
    [{ probeIntervalMs: 0 }, /probeIntervalMs must be a positive integer/],
    [{ gossipFanout: 1.5 }, /gossipFanout must be a positive integer/],
    [{ suspicionMult: 1 }, /suspicionMult/],
    [{ indirectChecks: 17 }, /indirectChecks/],
    [{ stallThresholdMs: 50 }, /stallThresholdMs/],
    [{ pushPullIntervalMs: 100 }, /pushPullIntervalMs/],
    [{ deadReapAfterMs: 1_000 }, /deadReapAfterMs/],
  ];
  for (const [patch, message] of bad) t.throws(() => validateMembershipConfig({ ...DEFAULT_MEMBERSHIP_CONFIG, ...patch }), { code: 'ERR_INVALID_ARGUMENT', message }, JSON.stringify(patch));
});

t.test('metadata: checked field by field and bounded in size', async (t) => {
  t.equal(metaProblem(emptyMeta()), undefined);
  t.match(metaProblem(null), /object/);
  t.match(metaProblem({ ...emptyMeta(), name: 3 }), /name/);
  t.match(metaProblem({ ...emptyMeta(), labels: { a: 1 } }), /labels\.a/);
  t.match(metaProblem({ ...emptyMeta(), resources: { cpuMillicores: -1, memoryBytes: 0, diskFreeBytes: 0 } }), /resources\.cpuMillicores/);
  t.match(metaProblem({ ...emptyMeta(), roles: { voter: 'yes', leader: false } }), /roles/);
  t.match(metaProblem({ ...emptyMeta(), drivers: [1] }), /drivers/);
  const huge = { ...emptyMeta(), labels: { big: 'x'.repeat(LIMITS.membershipMaxMetaBytes) } };
  t.throws(() => validateMeta(huge), { code: 'ERR_MEMBER_META_TOO_LARGE' });
  t.throws(() => validateMeta({ ...emptyMeta(), addresses: 'a' } as never), { code: 'ERR_INVALID_ARGUMENT', message: /addresses/ });
  t.doesNotThrow(() => checkLimits(), 'the membership limits keep every relation');
});
