import t from 'tap';
import { autopilotStep, voterTarget } from '../../src/autopilot/index.js';
import { bootstrapDecision, proposalHash, BOOTSTRAP_LABEL } from '../../src/runtime/bootstrap.js';
import type { MemberSnapshot, MemberStatus } from '../../src/membership/index.js';
import type { Status } from '../../src/consensus/index.js';
import { emptyMeta } from '../../src/membership/index.js';

const member = (id: string, status: MemberStatus = 'alive', bootstrap?: string): MemberSnapshot => ({
  id, incarnation: 1, status, statusChangedAtMs: 0, meta: { ...emptyMeta(), name: `n-${id}`, labels: bootstrap ? { [BOOTSTRAP_LABEL]: bootstrap } : {} },
});

const status = (over: Partial<Status>): Status => ({
  group: 'cluster', id: 'a', role: 'leader', term: 2, vote: 'a', leader: 'a', commit: 100, applied: 100, lastIndex: 100,
  voters: ['a', 'b', 'c'], learners: [], leadTransferee: undefined, quiesced: false, progress: {}, ...over,
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

const caught = (match: number): Status['progress'][string] => ({ match, next: match + 1, state: 'replicate', learner: true, active: true });
const zoned = (id: string, zone: string, status: MemberStatus = 'alive'): MemberSnapshot => ({ ...member(id, status), meta: { ...emptyMeta(), name: `n-${id}`, labels: { zone } } });
const base = { self: 'a', deadSinceMs: new Map<string, number>(), nowMs: 100_000, graceMs: 5_000, maxLagEntries: 16, readReplicas: 2, zoneLabel: 'zone' };

t.test('autopilot: remove the gone, add learners, promote to the target, never more voters than the target', async (t) => {
  t.equal(voterTarget(3), 3);
  t.equal(voterTarget(4), 3);
  t.equal(voterTarget(7), 5);
  t.equal(autopilotStep({ ...base, status: status({ role: 'follower' }), members: [member('a')] }), undefined, 'only the leader acts');
  const five = ['a', 'b', 'c', 'd', 'e'].map((id) => member(id));
  t.same(autopilotStep({ ...base, status: status({}), members: five }), { type: 'addLearner', member: 'd' });
  const withLearners = status({ learners: ['d', 'e'], progress: { d: caught(90), e: { match: 10, next: 11, state: 'probe', learner: true, active: true } } });
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

t.test('autopilot: servers are the voters and a few read replicas; every other agent stays a client', async (t) => {
  const ten = 'abcdefghij'.split('').map((id) => member(id));
  const settled = status({ voters: ['a', 'b', 'c', 'd', 'e'], learners: ['f', 'g'], progress: { f: caught(100), g: caught(100) } });
  t.equal(autopilotStep({ ...base, status: settled, members: ten }), undefined, '5 voters + 2 replicas: the other 3 agents are never added');
  t.equal(autopilotStep({ ...base, readReplicas: 0, status: status({ voters: ['a', 'b', 'c', 'd', 'e'] }), members: ten }), undefined, 'with no replicas wanted, none is added');
  t.same(autopilotStep({ ...base, status: status({ voters: ['a', 'b', 'c', 'd', 'e'], learners: ['f'], progress: { f: caught(100) } }), members: ten }), { type: 'addLearner', member: 'g' }, 'one replica short: the first client by id joins');
  // An older cluster where every agent was a learner converges, one removal at a time, the largest id first.
  const everyone = status({ voters: ['a', 'b', 'c', 'd', 'e'], learners: ['f', 'g', 'h', 'i', 'j'], progress: Object.fromEntries('fghij'.split('').map((id) => [id, caught(100)])) });
  t.same(autopilotStep({ ...base, status: everyone, members: ten }), { type: 'removeMember', member: 'j' });
});

t.test('autopilot: a dead server is replaced, by a replica at once or else by a client', async (t) => {
  const eight = 'abcdefgh'.split('').map((id) => (id === 'e' ? member(id, 'dead') : member(id)));
  const within = new Map([['e', 99_000]]);
  const replicas = status({ voters: ['a', 'b', 'c', 'd', 'e'], learners: ['f', 'g'], progress: { f: caught(100), g: caught(100) } });
  t.same(autopilotStep({ ...base, status: replicas, members: eight, deadSinceMs: within }), { type: 'addVoter', member: 'f' }, 'a caught-up replica is promoted while the dead voter is still in its grace period');
  const promoted = status({ voters: ['a', 'b', 'c', 'd', 'e', 'f'], learners: ['g'], progress: { g: caught(100) } });
  t.same(autopilotStep({ ...base, status: promoted, members: eight, deadSinceMs: within }), { type: 'addLearner', member: 'h' }, 'then a client becomes a replica');
  t.same(autopilotStep({ ...base, status: promoted, members: eight, deadSinceMs: new Map([['e', 90_000]]) }), { type: 'removeMember', member: 'e' }, 'and the dead voter goes after its grace period');
  const noReplicas = status({ voters: ['a', 'b', 'c', 'd', 'e'] });
  t.same(autopilotStep({ ...base, readReplicas: 0, status: noReplicas, members: eight, deadSinceMs: within }), { type: 'addLearner', member: 'f' }, 'without replicas a client is added, to be promoted once caught up');
  // A dead replica is not counted: a client replaces it, and nothing is removed until its grace period ends (no flapping).
  const deadReplica = 'abcdefghi'.split('').map((id) => (id === 'g' ? member(id, 'dead') : member(id)));
  const st = status({ voters: ['a', 'b', 'c', 'd', 'e'], learners: ['f', 'g'], progress: { f: caught(100), g: caught(100) } });
  t.same(autopilotStep({ ...base, status: st, members: deadReplica, deadSinceMs: new Map([['g', 99_000]]) }), { type: 'addLearner', member: 'h' });
  const refilled = status({ voters: ['a', 'b', 'c', 'd', 'e'], learners: ['f', 'g', 'h'], progress: { f: caught(100), g: caught(100), h: caught(100) } });
  t.equal(autopilotStep({ ...base, status: refilled, members: deadReplica, deadSinceMs: new Map([['g', 99_000]]) }), undefined);
});

t.test('autopilot: servers spread across the failure-domain label', async (t) => {
  const members = [zoned('a', 'z1'), zoned('b', 'z1'), zoned('c', 'z2'), zoned('d', 'z1'), zoned('e', 'z3'), zoned('f', 'z1')];
  const st = status({ voters: ['a', 'b', 'c'], learners: ['d', 'e'], progress: { d: caught(100), e: caught(100) } });
  t.same(autopilotStep({ ...base, status: st, members }), { type: 'addVoter', member: 'e' }, 'the replica in the zone without a voter is promoted first');
  const clients = [zoned('a', 'z1'), zoned('b', 'z1'), zoned('c', 'z3'), zoned('x', 'z1'), zoned('y', 'z2')];
  t.same(autopilotStep({ ...base, status: status({}), members: clients }), { type: 'addLearner', member: 'y' }, 'a new replica comes from the emptiest zone');
  const crowded = [zoned('a', 'z1'), zoned('b', 'z2'), zoned('c', 'z3'), zoned('d', 'z1')];
  t.same(autopilotStep({ ...base, readReplicas: 0, status: status({ voters: ['a', 'b', 'c', 'd'] }), members: crowded }), { type: 'removeMember', member: 'd' }, 'a surplus voter leaves the most crowded zone');
  t.same(autopilotStep({ ...base, zoneLabel: 'rack', status: status({}), members: clients }), { type: 'addLearner', member: 'x' }, 'another label: no zones, smallest id');
});
