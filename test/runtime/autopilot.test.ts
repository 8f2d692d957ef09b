import t from 'tap';
import { autopilotStep, voterTarget } from '../../src/runtime/autopilot.js';
import { bootstrapDecision, proposalHash, BOOTSTRAP_LABEL } from '../../src/runtime/bootstrap.js';
import type { MemberSnapshot, MemberStatus } from '../../src/membership/index.js';
import type { Status } from '../../src/consensus/index.js';
import { emptyMeta } from '../../src/membership/index.js';

const member = (id: string, status: MemberStatus = 'alive', bootstrap?: string): MemberSnapshot => ({
  id, incarnation: 1, status, statusChangedAtMs: 0, meta: { ...emptyMeta(), name: `n-${id}`, labels: bootstrap ? { [BOOTSTRAP_LABEL]: bootstrap } : {} },
});

const status = (over: Partial<Status>): Status => ({
  group: 'cluster', id: 'a', role: 'leader', term: 2, vote: 'a', leader: 'a', commit: 100, applied: 100, lastIndex: 100,
  voters: ['a', 'b', 'c'], learners: [], leadTransferee: undefined, progress: {}, ...over,
});

t.test('bootstrap: the chosen members must all be alive and agree', async (t) => {
  const h = proposalHash(['a', 'b', 'c']);
  t.match(bootstrapDecision('a', [member('a'), member('b')], 3), { waiting: /waiting for 3 members .* \(2 known\)/ });
  t.match(bootstrapDecision('a', [member('a'), member('b'), member('c')], 3), { advertise: `proposed:${h}`, waiting: /waiting for n-b, n-c to agree/ });
  t.same(bootstrapDecision('a', [member('a'), member('b', 'alive', `proposed:${h}`), member('c', 'alive', `done:${h}`)], 3).voters, ['a', 'b', 'c']);
  t.match(bootstrapDecision('d', [member('a'), member('b'), member('c'), member('d')], 3), { waiting: /not among the first voters/ });
  t.match(bootstrapDecision('a', [member('a'), member('b', 'dead', `proposed:${h}`), member('c', 'alive', `proposed:${h}`)], 3), { waiting: /waiting for n-b \(chosen as first voters\) to be alive/ });
  // A member with a smaller id appears: the proposal changes, and the old one no longer counts as agreement.
  const h2 = proposalHash(['0', 'a', 'b']);
  const withZero = bootstrapDecision('a', [member('0'), member('a'), member('b', 'alive', `proposed:${h}`), member('c', 'alive', `proposed:${h}`)], 3);
  t.equal(withZero.advertise, `proposed:${h2}`);
  t.notOk(withZero.voters);
  // Someone already bootstrapped another set: never start a second group.
  t.match(bootstrapDecision('a', [member('a'), member('b', 'alive', `proposed:${h}`), member('c', 'alive', `proposed:${h}`), member('x', 'alive', 'done:ffff')], 3), { waiting: /was bootstrapped by n-x; waiting to be added/ });
  t.same(bootstrapDecision('a', [member('a')], 1).voters, ['a'], 'a development cluster of one');
  t.match(bootstrapDecision('a', [member('a'), member('b', 'left')], 2), { waiting: /\(1 known\)/ }, 'members that left do not count');
});

t.test('autopilot: remove the gone, add learners, promote to the target, never more voters than the target', async (t) => {
  const base = { self: 'a', deadSinceMs: new Map<string, number>(), nowMs: 100_000, graceMs: 5_000, maxLagEntries: 16 };
  t.equal(voterTarget(3), 3);
  t.equal(voterTarget(4), 3);
  t.equal(voterTarget(7), 5);
  t.equal(autopilotStep({ ...base, status: status({ role: 'follower' }), members: [member('a')] }), undefined, 'only the leader acts');
  const five = ['a', 'b', 'c', 'd', 'e'].map((id) => member(id));
  t.same(autopilotStep({ ...base, status: status({}), members: five }), { type: 'addLearner', member: 'd' });
  const withLearners = status({ learners: ['d', 'e'], progress: { d: { match: 90, next: 91, state: 'replicate', learner: true, active: true }, e: { match: 10, next: 11, state: 'probe', learner: true, active: true } } });
  t.same(autopilotStep({ ...base, status: withLearners, members: five }), { type: 'addVoter', member: 'd' }, 'a caught-up learner is promoted');
  const lagging = status({ voters: ['a', 'b', 'c', 'd'], learners: ['e'], progress: { e: { match: 10, next: 11, state: 'probe', learner: true, active: true } } });
  t.equal(autopilotStep({ ...base, status: lagging, members: five }), undefined, 'a lagging learner waits');
  const deadTwo = [member('a'), member('b'), member('c'), member('d', 'dead'), member('e', 'dead')];
  const fiveVoters = status({ voters: ['a', 'b', 'c', 'd', 'e'] });
  t.equal(autopilotStep({ ...base, status: fiveVoters, members: deadTwo, deadSinceMs: new Map([['d', 99_000], ['e', 99_000]]) }), undefined, 'within the grace period nothing is removed');
  t.same(autopilotStep({ ...base, status: fiveVoters, members: deadTwo, deadSinceMs: new Map([['d', 90_000], ['e', 90_000]]) }), { type: 'removeMember', member: 'd' });
  t.same(autopilotStep({ ...base, status: status({ learners: ['x'] }), members: [member('a'), member('b'), member('c'), member('x', 'left')] }), { type: 'removeMember', member: 'x' }, 'a member that left goes at once');
  const tooMany = status({ voters: ['a', 'b', 'c', 'd'] });
  t.same(autopilotStep({ ...base, status: tooMany, members: ['a', 'b', 'c', 'd'].map((id) => member(id)) }), { type: 'removeMember', member: 'd' }, 'four healthy voters shrink to three');
  t.equal(autopilotStep({ ...base, status: status({ voters: ['a'] }), members: [member('a'), member('b', 'left')] }), undefined);
  t.equal(autopilotStep({ ...base, status: status({ voters: ['a', 'b'] }), members: [member('a', 'left')] }), undefined, 'never removes itself');
});
