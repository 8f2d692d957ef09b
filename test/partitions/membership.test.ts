/**
 * nextMembershipStep: a partition's group follows its placement one safe change at a time.
 */
import t from 'tap';
import { nextMembershipStep, type GroupView } from '../../src/partitions/membership.js';

const view = (o: Partial<GroupView> & { voters: string[] }): GroupView => ({ self: 'a', learners: [], match: {}, lastIndex: 100, ...o });
const all = (ids: string[], at = 100): Record<string, number> => Object.fromEntries(ids.map((id) => [id, at]));

t.test('in place: nothing to do', async (t) => {
  t.equal(nextMembershipStep(view({ voters: ['a', 'b', 'c'], match: all(['a', 'b', 'c']) }), ['c', 'b', 'a'], 10), undefined);
});

t.test('a replacement after a node died: add a learner, promote it once caught up, then remove the dead voter', async (t) => {
  const desired = ['a', 'b', 'd'];
  t.same(nextMembershipStep(view({ voters: ['a', 'b', 'c'] }), desired, 10), { kind: 'add-learner', member: 'd' });
  t.equal(nextMembershipStep(view({ voters: ['a', 'b', 'c'], learners: ['d'], match: { d: 50 } }), desired, 10), undefined, 'not caught up: wait, and never remove c before d votes');
  t.same(nextMembershipStep(view({ voters: ['a', 'b', 'c'], learners: ['d'], match: { d: 95 } }), desired, 10), { kind: 'promote', member: 'd' });
  t.same(nextMembershipStep(view({ voters: ['a', 'b', 'c', 'd'], match: all(['a', 'b', 'd']) }), desired, 10), { kind: 'remove', member: 'c' });
});

t.test('a learner that acknowledged nothing yet is never promoted, however young the log', async (t) => {
  t.equal(nextMembershipStep(view({ voters: ['a', 'b', 'c'], learners: ['d'], match: { d: 0 }, lastIndex: 16 }), ['a', 'b', 'd'], 64), undefined);
  t.same(nextMembershipStep(view({ voters: ['a', 'b', 'c'], learners: ['d'], match: { d: 3 }, lastIndex: 16 }), ['a', 'b', 'd'], 64), { kind: 'promote', member: 'd' });
});

t.test('a drain of the primary: others first, then leadership moves, and the new primary removes the old one', async (t) => {
  const desired = ['b', 'c', 'd'];
  t.same(nextMembershipStep(view({ voters: ['a', 'b', 'c', 'd'], match: all(['a', 'b', 'c', 'd']) }), desired, 10), { kind: 'transfer', to: 'b' });
  t.same(nextMembershipStep(view({ voters: ['a', 'b', 'c', 'd'], match: { a: 100, b: 90, c: 100, d: 100 } }), desired, 10), { kind: 'transfer', to: 'c' }, 'to a voter holding the whole log');
  t.equal(nextMembershipStep(view({ voters: ['a', 'b', 'c', 'd'], match: { a: 100, b: 90, c: 80, d: 70 } }), desired, 10), undefined, 'no voter is caught up: wait');
  t.same(nextMembershipStep(view({ self: 'b', voters: ['a', 'b', 'c', 'd'], match: all(['a', 'b', 'c', 'd']) }), desired, 10), { kind: 'remove', member: 'a' });
});

t.test('a learner no longer placed goes at once; a surplus voter waits for every placed node to vote', async (t) => {
  t.same(nextMembershipStep(view({ voters: ['a', 'b', 'c'], learners: ['x'] }), ['a', 'b', 'c'], 10), { kind: 'remove', member: 'x' });
  t.same(nextMembershipStep(view({ voters: ['a', 'b', 'c', 'x'] }), ['a', 'b', 'c', 'd'], 10), { kind: 'add-learner', member: 'd' });
});

t.test('ties are decided in node id order, so every primary decides alike', async (t) => {
  t.same(nextMembershipStep(view({ voters: ['a'] }), ['a', 'z', 'm'], 0), { kind: 'add-learner', member: 'm' });
  t.same(nextMembershipStep(view({ voters: ['a', 'x', 'y', 'q'] }), ['a'], 0), { kind: 'remove', member: 'q' });
});

t.test('a model run: from any group to any placement in a bounded number of steps, never below the placed voters', async (t) => {
  const nodes = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  let seed = 7;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
  for (let run = 0; run < 300; run++) {
    const pick = (k: number): string[] => [...nodes].sort(() => rnd(3) - 1).slice(0, k);
    let voters = pick(1 + 2 * rnd(3));
    let learners: string[] = [];
    let self = voters[0]!;
    const desired = pick(1 + 2 * rnd(3));
    for (let step = 0; step < 40; step++) {
      const s = nextMembershipStep({ self, voters, learners, match: all([...voters, ...learners]), lastIndex: 100 }, desired, 0);
      if (!s) break;
      const placedVoters = voters.filter((v) => desired.includes(v)).length;
      if (s.kind === 'add-learner') learners = [...learners, s.member];
      else if (s.kind === 'promote') {
        learners = learners.filter((l) => l !== s.member);
        voters = [...voters, s.member];
      }
      else if (s.kind === 'remove') {
        t.ok(!desired.includes(s.member), `run ${run}: removes only what is not placed`);
        voters = voters.filter((v) => v !== s.member);
        learners = learners.filter((l) => l !== s.member);
        t.ok(voters.filter((v) => desired.includes(v)).length >= placedVoters, `run ${run}: no placed voter lost`);
      } else self = s.to;
    }
    t.same([...voters].sort(), [...desired].sort(), `run ${run}: the group became its placement`);
    t.same(learners, []);
  }
});

t.test('preferred primaries: the same on every agent, spread evenly over nodes, few moves when a node joins', async (t) => {
  const { preferredPrimary } = await import('../../src/partitions/membership.js');
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  const groups = Array.from({ length: 64 }, (_, p) => `p/shop.7/carts/${p}`);
  const count = new Map<string, number>();
  for (const g of groups) {
    const members = nodes.filter((_, i) => (i + g.length) % 4 !== 0).slice(0, 3);
    const chosen = preferredPrimary(g, members)!;
    t.equal(preferredPrimary(g, [...members].reverse()), chosen, `${g}: independent of order`);
    t.ok(members.includes(chosen));
    count.set(chosen, (count.get(chosen) ?? 0) + 1);
  }
  t.ok(Math.max(...count.values()) <= 64 / 2, `spread: ${JSON.stringify([...count])}`);
  const full = (members: string[]) => groups.map((g) => preferredPrimary(g, members));
  const before = full(['n1', 'n2', 'n3']);
  const after = full(['n1', 'n2', 'n3', 'n4']);
  const moved = before.filter((b, i) => b !== after[i]);
  t.ok(moved.length > 0 && moved.length < 32, `a fourth node takes ${moved.length} of 64, all to itself`);
  t.ok(after.every((a, i) => a === before[i] || a === 'n4'));
  t.equal(preferredPrimary('g', []), undefined);
});
