/**
 * Placement of partition replicas (src/partitions/placement.ts): scripted cases for each rule, then a seeded model
 * check. The model applies every planned action (a learner catches up after one to three rounds, a promotion, removal
 * or transfer takes effect at once), lets nodes die, return, join, drain and turn ineligible, and calls planPlacement
 * again until it plans nothing; every step is checked against the rules and every fixed point against the goals.
 * A failing seed replays alone with PLACEMENT_SEED=n (PLACEMENT_TRACE=1 prints every round); PLACEMENT_SEEDS=n runs more.
 */
import t from 'tap';
import { LIMITS, checkLimits } from '../../src/lib/limits.js';
import { Random } from '../../src/lib/random.js';
import {
  buildsInFlight, initialPlacement, planPlacement,
  type MemberView, type NodeLoad, type NodeStatus, type PartitionView, type PlacementAction, type PlacementNode, type PlacementPlan, type ServicePlacementInput,
} from '../../src/partitions/placement.js';

const MAX_MOVES = LIMITS.partitionMaxConcurrentMoves;
const PER_NODE = LIMITS.partitionMaxBuildsPerNode;

const node = (id: string, status: NodeStatus = 'ready', zone?: string): PlacementNode => ({ id, status, labels: zone === undefined ? {} : { zone } });
const voter = (n: string, caughtUp = true): MemberView => ({ node: n, role: 'voter', caughtUp });
const learner = (n: string, caughtUp: boolean): MemberView => ({ node: n, role: 'learner', caughtUp });
const part = (partition: number, voters: string[], opts: { primary?: string; learners?: MemberView[]; changing?: boolean } = {}): PartitionView => ({
  partition,
  members: [...voters.map((v) => voter(v)), ...(opts.learners ?? [])],
  primary: 'primary' in opts ? opts.primary : voters[0],
  changing: opts.changing ?? false,
});
const plan = (input: Partial<ServicePlacementInput> & Pick<ServicePlacementInput, 'nodes' | 'partitions'>): PlacementPlan =>
  planPlacement({ replicas: 3, load: {}, inFlight: 0, ...input });

t.test('initial placement: distinct nodes, balanced replicas and primaries, spread across zones', async (t) => {
  const nodes = ['a', 'b', 'c', 'd', 'e', 'f'].map((id, i) => node(id, 'ready', `z${i % 3}`));
  const res = initialPlacement({ partitions: 16, replicas: 3, spread: 'zone', nodes });
  if (!res.ok) throw new Error(res.message);
  t.same(res.degraded, []);
  const replicas = new Map<string, number>();
  const primaries = new Map<string, number>();
  for (const p of res.partitions) {
    t.equal(new Set(p.members).size, 3, `partition ${p.partition}: three distinct nodes`);
    t.equal(new Set(p.members.map((m) => nodes.find((n) => n.id === m)!.labels.zone)).size, 3, `partition ${p.partition}: one replica per zone`);
    t.ok(p.members.includes(p.primary));
    for (const m of p.members) replicas.set(m, (replicas.get(m) ?? 0) + 1);
    primaries.set(p.primary, (primaries.get(p.primary) ?? 0) + 1);
  }
  t.ok(Math.max(...replicas.values()) - Math.min(...replicas.values()) <= 1, `replicas per node ${[...replicas.values()]}`);
  t.ok(Math.max(...primaries.values()) - Math.min(...primaries.values()) <= 1, `primaries per node ${[...primaries.values()]}`);
  // What it creates is already a fixed point: planPlacement moves nothing.
  const views = res.partitions.map((p) => part(p.partition, p.members, { primary: p.primary }));
  t.same(plan({ nodes, spread: 'zone', partitions: views }).actions, []);
});

t.test('initial placement with fewer ready nodes than replicas places what fits and reports the rest', async (t) => {
  const nodes = [node('a'), node('b'), node('c', 'ineligible'), node('d', 'down'), node('e', 'draining')];
  const res = initialPlacement({ partitions: 3, replicas: 5, nodes });
  if (!res.ok) throw new Error(res.message);
  t.same(res.partitions.map((p) => p.members), [['a', 'b'], ['a', 'b'], ['a', 'b']], 'only ready nodes receive replicas');
  t.same(res.degraded, [0, 1, 2]);
  const none = initialPlacement({ partitions: 1, replicas: 1, nodes: [node('a', 'down')] });
  t.match(none, { ok: false, code: 'ERR_NO_READY_NODE' });
  t.throws(() => initialPlacement({ partitions: 1, replicas: 2, nodes }), /odd/, 'an even replica count is a programmer error');
  t.throws(() => initialPlacement({ partitions: 0, replicas: 1, nodes }), /partitions must be/);
});

t.test('initial placement counts other services\' load', async (t) => {
  const nodes = [node('a'), node('b'), node('c'), node('d')];
  const res = initialPlacement({ partitions: 2, replicas: 1, nodes, load: { a: { replicas: 5, primaries: 5 }, b: { replicas: 5, primaries: 5 } } });
  if (!res.ok) throw new Error(res.message);
  t.same(res.partitions.map((p) => p.members), [['c'], ['d']]);
});

t.test('rebuild: add a learner, promote it once caught up, then remove the dead voter', async (t) => {
  const nodes = [node('a'), node('b'), node('c', 'down'), node('d')];
  let p = part(0, ['a', 'b', 'c']);
  t.same(plan({ nodes, partitions: [p] }).actions, [{ kind: 'add-learner', partition: 0, node: 'd', reason: 'rebuild' }]);
  p = part(0, ['a', 'b', 'c'], { learners: [learner('d', false)] });
  t.same(plan({ nodes, partitions: [p] }).actions, [], 'nothing while the learner catches up: the dead voter stays');
  p = part(0, ['a', 'b', 'c'], { learners: [learner('d', true)] });
  t.same(plan({ nodes, partitions: [p] }).actions, [{ kind: 'promote', partition: 0, node: 'd' }]);
  p = part(0, ['a', 'b', 'c', 'd']);
  t.same(plan({ nodes, partitions: [p] }).actions, [{ kind: 'remove', partition: 0, node: 'c', reason: 'down' }]);
  p = part(0, ['a', 'b', 'd']);
  t.same(plan({ nodes, partitions: [p] }), { actions: [], degraded: [], noQuorum: [], drainBlocked: [] });
});

t.test('a member on a node the leader does not list counts as down; a learner there goes at once', async (t) => {
  const nodes = [node('a'), node('b'), node('d')];
  t.same(plan({ nodes, partitions: [part(0, ['a', 'b', 'gone'])] }).actions, [{ kind: 'add-learner', partition: 0, node: 'd', reason: 'rebuild' }]);
  t.same(plan({ nodes, partitions: [part(0, ['a', 'b', 'd'], { learners: [learner('gone', false)] })] }).actions,
    [{ kind: 'remove', partition: 0, node: 'gone', reason: 'down' }]);
});

t.test('degraded: no free node keeps the dead voter (it may return); a joining node rebuilds the partition', async (t) => {
  const nodes = [node('a'), node('b'), node('c', 'down')];
  const r = plan({ nodes, partitions: [part(0, ['a', 'b', 'c'])] });
  t.same(r.actions, [], 'a 3-voter group with one dead voter is no safer as a 2-voter group: the dead voter is kept');
  t.same(r.degraded, [0]);
  const joined = plan({ nodes: [...nodes, node('d')], partitions: [part(0, ['a', 'b', 'c'])] });
  t.same(joined.actions, [{ kind: 'add-learner', partition: 0, node: 'd', reason: 'rebuild' }]);
  t.same(joined.degraded, []);
  // A partition created short grows the same way, as a 'create'.
  t.same(plan({ nodes: [node('a'), node('b')], partitions: [part(0, ['a'])] }).actions, [{ kind: 'add-learner', partition: 0, node: 'b', reason: 'create' }]);
});

t.test('degraded with five replicas and two dead voters: the dead are dropped, since three of three tolerate a failure', async (t) => {
  const nodes = [node('a'), node('b'), node('c'), node('d', 'down'), node('e', 'down')];
  let r = plan({ nodes, replicas: 5, partitions: [part(0, ['a', 'b', 'c', 'd', 'e'])] });
  t.same(r.actions, [{ kind: 'remove', partition: 0, node: 'd', reason: 'degraded' }]);
  r = plan({ nodes, replicas: 5, partitions: [part(0, ['a', 'b', 'c', 'e'])] });
  t.same(r.actions, [{ kind: 'remove', partition: 0, node: 'e', reason: 'degraded' }]);
  r = plan({ nodes, replicas: 5, partitions: [part(0, ['a', 'b', 'c'])] });
  t.same(r.actions, []);
  t.same(r.degraded, [0]);
  // With room for a replacement the dead voters stay until replaced.
  r = plan({ nodes: [...nodes, node('f')], replicas: 5, partitions: [part(0, ['a', 'b', 'c', 'd', 'e'])] });
  t.same(r.actions, [{ kind: 'add-learner', partition: 0, node: 'f', reason: 'rebuild' }]);
});

t.test('no quorum: reported, and nothing is planned for the partition', async (t) => {
  const nodes = [node('a'), node('b', 'down'), node('c', 'down'), node('d'), node('e')];
  const r = plan({ nodes, partitions: [part(0, ['a', 'b', 'c']), part(1, ['a', 'd', 'b'])] });
  t.same(r.noQuorum, [0]);
  t.same(r.actions, [{ kind: 'add-learner', partition: 1, node: 'e', reason: 'rebuild' }]);
  t.same(plan({ nodes, replicas: 1, partitions: [part(0, ['b'])] }).noQuorum, [0], 'a single replica on a dead node has lost quorum');
  t.same(plan({ nodes, partitions: [{ partition: 0, members: [], primary: undefined, changing: false }] }).noQuorum, [0], 'a partition with no voter has none');
});

t.test('nothing is planned for a partition mid-change or without a primary', async (t) => {
  const nodes = [node('a'), node('b'), node('c', 'down'), node('d')];
  t.same(plan({ nodes, partitions: [part(0, ['a', 'b', 'c'], { changing: true })] }).actions, []);
  t.same(plan({ nodes, partitions: [part(0, ['a', 'b', 'c'], { primary: undefined })] }).actions, []);
  t.same(plan({ nodes, partitions: [part(0, ['a', 'b', 'c'], { primary: 'c' })] }).actions, [], 'a primary on a dead node: an election is under way');
});

t.test('drain: the primary leaves first, then the replica moves (add, promote, remove)', async (t) => {
  const nodes = [node('a', 'draining'), node('b'), node('c'), node('d')];
  let p = part(0, ['a', 'b', 'c'], { primary: 'a' });
  t.same(plan({ nodes, partitions: [p] }).actions, [{ kind: 'transfer-primary', partition: 0, to: 'b', reason: 'drain' }]);
  p = part(0, ['a', 'b', 'c'], { primary: 'b' });
  t.same(plan({ nodes, partitions: [p] }).actions, [{ kind: 'add-learner', partition: 0, node: 'd', reason: 'drain' }]);
  p = part(0, ['a', 'b', 'c'], { primary: 'b', learners: [learner('d', true)] });
  t.same(plan({ nodes, partitions: [p] }).actions, [{ kind: 'promote', partition: 0, node: 'd' }]);
  p = part(0, ['a', 'b', 'c', 'd'], { primary: 'b' });
  t.same(plan({ nodes, partitions: [p] }).actions, [{ kind: 'remove', partition: 0, node: 'a', reason: 'drain' }]);
  // The primary goes to the caught-up voter leading the fewest partitions.
  const lagging = { partition: 1, members: [voter('a'), voter('b', false), voter('c')], primary: 'a', changing: false };
  t.same(plan({ nodes, partitions: [lagging] }).actions, [{ kind: 'transfer-primary', partition: 1, to: 'c', reason: 'drain' }]);
  // With nowhere to go, the drain waits and says so.
  const r = plan({ nodes: [node('a', 'draining'), node('b'), node('c')], partitions: [part(0, ['a', 'b', 'c'], { primary: 'b' })] });
  t.same(r.actions, []);
  t.same(r.drainBlocked, [0]);
  t.same(r.degraded, [], 'a drain that waits leaves the partition its replicas');
});

t.test('ineligible nodes keep their replicas and receive none; a learner there is dropped', async (t) => {
  const nodes = [node('a', 'ineligible'), node('b'), node('d', 'ineligible'), node('e', 'down')];
  t.same(plan({ nodes, partitions: [part(0, ['a', 'b', 'd'])] }).actions, []);
  const r = plan({ nodes, partitions: [part(0, ['a', 'b', 'e'])] });
  t.same(r.actions, [], 'd is ineligible, so the dead voter cannot be replaced');
  t.same(r.degraded, [0]);
  t.same(plan({ nodes: [...nodes, node('c')], partitions: [part(0, ['a', 'b', 'c'], { learners: [learner('d', true)] })] }).actions,
    [{ kind: 'remove', partition: 0, node: 'd', reason: 'ineligible' }]);
  // A surplus voter leaves a ready node before an ineligible one.
  t.same(plan({ nodes: [...nodes, node('c')], partitions: [part(0, ['a', 'b', 'c', 'd'], { primary: 'b' })], load: { b: { replicas: 0, primaries: 9 } } }).actions,
    [{ kind: 'remove', partition: 0, node: 'c', reason: 'surplus' }]);
});

t.test('spread: a rebuild goes to the emptiest zone; nodes without the label form the zone ""', async (t) => {
  const nodes = [node('a', 'ready', 'x'), node('b', 'ready', 'y'), node('c', 'down', 'z'), node('d', 'ready', 'x'), node('e', 'ready', 'z'), node('f', 'ready')];
  t.same(plan({ nodes, spread: 'zone', partitions: [part(0, ['a', 'b', 'c'])] }).actions,
    [{ kind: 'add-learner', partition: 0, node: 'e', reason: 'rebuild' }], 'zone z holds none of the live voters; zone "" none either, e < f');
  // Without the label every node is in one zone: the least loaded node wins.
  t.same(plan({ nodes, partitions: [part(0, ['a', 'b', 'c']), part(1, ['d', 'e', 'b'])] }).actions,
    [{ kind: 'add-learner', partition: 0, node: 'f', reason: 'rebuild' }]);
  // A partition crowded into one zone spreads out once a zone has a free node (a move, one step at a time).
  const crowded = [node('a', 'ready', 'x'), node('b', 'ready', 'x'), node('c', 'ready', 'y'), node('d', 'ready', 'z')];
  t.same(plan({ nodes: crowded, spread: 'zone', partitions: [part(0, ['a', 'b', 'c'], { primary: 'c' })] }).actions,
    [{ kind: 'add-learner', partition: 0, node: 'd', reason: 'rebalance' }]);
  t.same(plan({ nodes: crowded, spread: 'zone', partitions: [part(0, ['a', 'b', 'c', 'd'], { primary: 'c' })] }).actions,
    [{ kind: 'remove', partition: 0, node: 'b', reason: 'surplus' }], 'the voter that goes is in the crowded zone');
});

t.test('five replicas over three zones: no zone holds more than two', async (t) => {
  const nodes = Array.from({ length: 9 }, (_, i) => node(`n${i}`, 'ready', `z${i % 3}`));
  const res = initialPlacement({ partitions: 8, replicas: 5, spread: 'zone', nodes });
  if (!res.ok) throw new Error(res.message);
  for (const p of res.partitions) {
    const perZone = ['z0', 'z1', 'z2'].map((z) => p.members.filter((m) => nodes.find((n) => n.id === m)!.labels.zone === z).length);
    t.same([...perZone].sort(), [1, 2, 2], `partition ${p.partition}: ${perZone}`);
  }
});

t.test('the throttle: builds in flight count against the limit, rebuilds before drains before rebalancing', async (t) => {
  const nodes = [node('a'), node('b'), node('c', 'down'), node('d', 'draining'), ...Array.from({ length: 12 }, (_, i) => node(`x${String(i).padStart(2, '0')}`))];
  const partitions: PartitionView[] = [];
  for (let i = 0; i < 6; i++) partitions.push(part(i, ['a', 'b', 'd'], { primary: 'a' }));
  for (let i = 6; i < 12; i++) partitions.push(part(i, ['a', 'b', 'c']));
  const adds = (r: PlacementPlan): PlacementAction[] => r.actions.filter((a) => a.kind === 'add-learner');
  let r = plan({ nodes, partitions, inFlight: MAX_MOVES - 3 });
  t.equal(adds(r).length, 3);
  t.ok(adds(r).every((a) => a.kind === 'add-learner' && a.reason === 'rebuild' && a.partition >= 6), 'rebuilds first');
  r = plan({ nodes, partitions, inFlight: MAX_MOVES });
  t.equal(adds(r).length, 0, 'no build when the cluster runs its maximum');
  r = plan({ nodes, partitions, inFlight: MAX_MOVES + 5 });
  t.equal(adds(r).length, 0);
  // This service's own learners still building count too.
  const building = partitions.map((p, i) => (i < 2 ? { ...p, members: [...p.members, learner(`x${String(i).padStart(2, '0')}`, false)] } : p));
  r = plan({ nodes, partitions: building, inFlight: MAX_MOVES - 4 });
  t.equal(adds(r).length, 2);
  r = plan({ nodes, partitions, inFlight: 0 });
  t.equal(adds(r).length, Math.min(MAX_MOVES, 12));
  t.same(adds(r).map((a) => a.partition).slice(0, 6), [6, 7, 8, 9, 10, 11], 'rebuilds, then drains');
  const perNode = new Map<string, number>();
  for (const a of adds(r)) if (a.kind === 'add-learner') perNode.set(a.node, (perNode.get(a.node) ?? 0) + 1);
  t.ok([...perNode.values()].every((n) => n <= PER_NODE), 'no node receives more builds than partitionMaxBuildsPerNode');
  t.ok(r.actions.filter((a) => a.kind !== 'add-learner').every((a) => a.kind === 'transfer-primary' && a.reason === 'rebalance' && a.partition >= 2),
    'the partitions without a build this round balance their primaries (a leads them all), unthrottled');
});

t.test('the most endangered partitions are rebuilt first', async (t) => {
  const nodes = [node('a'), node('b'), node('c'), node('d', 'down'), node('e', 'down'), node('f')];
  const partitions = [part(0, ['a', 'b', 'c', 'd', 'f']), part(1, ['a', 'b', 'c', 'd', 'e'])];
  const r = plan({ nodes, replicas: 5, partitions, inFlight: MAX_MOVES - 1 });
  t.same(r.actions, [{ kind: 'add-learner', partition: 1, node: 'f', reason: 'rebuild' }], 'partition 1 tolerates no further failure');
});

t.test('primaries: a node leading too many hands some over, cheaply, and stops', async (t) => {
  const nodes = [node('a'), node('b'), node('c')];
  const partitions = Array.from({ length: 9 }, (_, i) => part(i, ['a', 'b', 'c'], { primary: 'a' }));
  const r = plan({ nodes, partitions });
  t.ok(r.actions.every((a) => a.kind === 'transfer-primary' && a.reason === 'rebalance'));
  const led = new Map([['a', 9], ['b', 0], ['c', 0]]);
  for (const a of r.actions) if (a.kind === 'transfer-primary') {
    led.set('a', led.get('a')! - 1);
    led.set(a.to, led.get(a.to)! + 1);
  }
  t.ok(led.get('a')! <= Math.ceil(9 / 3) + 1, `a leads ${led.get('a')}`);
  const after = partitions.map((p, i) => ({ ...p, primary: r.actions.find((a) => a.partition === i && a.kind === 'transfer-primary') ? (r.actions.find((a) => a.partition === i) as { to: string }).to : 'a' }));
  t.same(plan({ nodes, partitions: after }).actions, [], 'the next call transfers nothing more');
  // Other services' primaries count.
  const one = [part(0, ['a', 'b', 'c'], { primary: 'a' })];
  t.same(plan({ nodes, partitions: one, load: { a: { replicas: 1, primaries: 4 } } }).actions, [{ kind: 'transfer-primary', partition: 0, to: 'b', reason: 'rebalance' }]);
});

t.test('replicas lowered: surplus voters leave, the primary last (after a transfer)', async (t) => {
  const nodes = [node('a'), node('b'), node('c')];
  t.same(plan({ nodes, replicas: 1, partitions: [part(0, ['a', 'b', 'c'], { primary: 'c' })] }).actions, [{ kind: 'remove', partition: 0, node: 'b', reason: 'surplus' }]);
  // The primary is the worst (its node is the most loaded): it hands over first.
  t.same(plan({ nodes, replicas: 1, partitions: [part(0, ['a', 'b'], { primary: 'a' })], load: { a: { replicas: 3, primaries: 0 } } }).actions,
    [{ kind: 'transfer-primary', partition: 0, to: 'b', reason: 'rebalance' }]);
});

t.test('a learner whose reason went away is dropped rather than promoted', async (t) => {
  // A rebuild learner on d; meanwhile c came back. Promoting d would only make it the one to remove.
  const nodes = [node('a'), node('b'), node('c'), node('d')];
  const r = plan({ nodes, partitions: [part(0, ['a', 'b', 'c'], { learners: [learner('d', true)] })], load: { d: { replicas: 5, primaries: 0 } } });
  t.same(r.actions, [{ kind: 'remove', partition: 0, node: 'd', reason: 'surplus' }]);
});

t.test('the placement limits hold their relation', async (t) => {
  t.doesNotThrow(() => checkLimits());
  t.throws(() => checkLimits({ ...LIMITS, partitionMaxBuildsPerNode: LIMITS.partitionMaxConcurrentMoves + 1 }), /more replica builds at once than the cluster runs/);
});

t.test('invalid input is a programmer error', async (t) => {
  const nodes = [node('a'), node('b'), node('c')];
  t.throws(() => plan({ nodes: [...nodes, node('a')], partitions: [] }), /listed twice/);
  t.throws(() => plan({ nodes, partitions: [part(0, ['a', 'a', 'b'])] }), /two members on node a/);
  t.throws(() => plan({ nodes, partitions: [part(0, ['a']), part(0, ['b'])] }), /partition 0 is listed twice/);
  t.throws(() => plan({ nodes, replicas: 9, partitions: [] }), /odd, from 1/);
  t.throws(() => plan({ nodes, inFlight: -1, partitions: [] }), /inFlight/);
});

t.test('buildsInFlight counts the learners still catching up on ready nodes', async (t) => {
  const nodes = [node('a'), node('b'), node('c'), node('d', 'down')];
  const partitions = [
    part(0, ['a'], { learners: [learner('b', false), learner('d', false)] }),
    part(1, ['a'], { learners: [learner('c', true)] }),
  ];
  t.equal(buildsInFlight(partitions, nodes), 1);
});

t.test('a draining primary goes to an ineligible node only when no ready node has a caught-up voter', async (t) => {
  const nodes = [node('a', 'draining'), node('b', 'ineligible'), node('c'), node('d')];
  const p = { partition: 0, members: [voter('a'), voter('b'), voter('c', false)], primary: 'a', changing: false };
  t.same(plan({ nodes, partitions: [p] }).actions, [{ kind: 'transfer-primary', partition: 0, to: 'b', reason: 'drain' }]);
  const q = { ...p, members: [voter('a'), voter('b'), voter('c')] };
  t.same(plan({ nodes, partitions: [q] }).actions, [{ kind: 'transfer-primary', partition: 0, to: 'c', reason: 'drain' }]);
});

// --- the model -------------------------------------------------------------------------------------------------------

interface MNode { id: string; status: NodeStatus; zone: string | undefined }
interface MMember { node: string; role: 'voter' | 'learner'; caughtUp: boolean; buildRounds: number }
interface MPart { partition: number; members: MMember[]; primary: string | undefined }
type Event = 'kill' | 'revive' | 'join' | 'drain' | 'undrain' | 'ineligible' | 'eligible';

class Model {
  readonly nodes = new Map<string, MNode>();
  parts: MPart[];
  readonly rnd: Random;
  adds = 0;
  round = 0;
  readonly log: string[] = [];

  constructor(readonly label: string, readonly replicas: number, readonly spread: string | undefined, nodes: readonly PlacementNode[],
    initial: readonly { partition: number; members: string[]; primary: string }[], readonly load: Record<string, NodeLoad>, rnd?: Random, readonly zones = 0) {
    this.rnd = rnd ?? Random.fromSeed(label);
    for (const n of nodes) this.nodes.set(n.id, { id: n.id, status: n.status, zone: spread === undefined ? undefined : n.labels[spread] });
    this.parts = initial.map((p) => ({ partition: p.partition, primary: p.primary, members: p.members.map((m) => ({ node: m, role: 'voter' as const, caughtUp: true, buildRounds: 0 })) }));
  }

  /** A random cluster, placed by initialPlacement while every node was ready. */
  static random(rnd: Random, seed: number): Model {
    const count = rnd.intBetween(3, 40);
    const replicas = rnd.pick([1, 3, 3, 5]);
    const partitions = rnd.intBetween(1, 64);
    const zones = rnd.chance(0.5) ? rnd.intBetween(2, 5) : 0;
    const spread = zones > 0 ? 'zone' : undefined;
    const nodes: PlacementNode[] = [];
    for (let i = 0; i < count; i++) nodes.push(Model.newNode(rnd, zones));
    const load: Record<string, NodeLoad> = {};
    if (rnd.chance(0.4)) {
      for (const n of nodes) if (rnd.chance(0.5)) load[n.id] = { replicas: rnd.int(12), primaries: rnd.int(4), builds: rnd.chance(0.1) ? 1 : 0 };
    }
    const res = initialPlacement({ partitions, replicas, spread, nodes, load });
    if (!res.ok) throw new Error(`seed ${seed}: ${res.message}`);
    return new Model(`seed ${seed}`, replicas, spread, nodes, res.partitions, load, rnd, zones);
  }

  static newNode(rnd: Random, zones: number): PlacementNode {
    const zone = zones > 0 && rnd.chance(0.9) ? `z${rnd.int(zones)}` : undefined;
    return node(`n${rnd.hex(3)}`, 'ready', zone);
  }

  statusOf(id: string): NodeStatus {
    return this.nodes.get(id)?.status ?? 'down';
  }

  zoneOf(id: string): string {
    return this.nodes.get(id)?.zone ?? '';
  }

  readyIds(): string[] {
    return [...this.nodes.values()].filter((n) => n.status === 'ready').map((n) => n.id).sort();
  }

  input(changing: ReadonlySet<number>, inFlight: number): ServicePlacementInput {
    return {
      replicas: this.replicas,
      spread: this.spread,
      nodes: [...this.nodes.values()].map((n) => node(n.id, n.status, n.zone)),
      partitions: this.parts.map((p) => ({
        partition: p.partition,
        primary: p.primary,
        changing: changing.has(p.partition),
        members: p.members.map((m) => ({ node: m.node, role: m.role, caughtUp: m.caughtUp })),
      })),
      load: this.load,
      inFlight,
    };
  }

  hasQuorum(p: MPart): boolean {
    const voters = p.members.filter((m) => m.role === 'voter');
    const live = voters.filter((m) => this.statusOf(m.node) !== 'down').length;
    return voters.length > 0 && live * 2 > voters.length;
  }

  /** Raft's failover, which placement leaves alone: a partition with a quorum and no live primary elects a live voter. */
  elect(): void {
    for (const p of this.parts) {
      const primary = p.members.find((m) => m.node === p.primary);
      if (primary && primary.role === 'voter' && this.statusOf(primary.node) !== 'down') continue;
      const live = p.members.filter((m) => m.role === 'voter' && this.statusOf(m.node) !== 'down');
      p.primary = this.hasQuorum(p) ? this.rnd.pick(live).node : undefined;
    }
  }

  event(kind: Event): void {
    const all = [...this.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    const pick = (status: NodeStatus[]): MNode | undefined => {
      const c = all.filter((n) => status.includes(n.status));
      return c.length === 0 ? undefined : this.rnd.pick(c);
    };
    let target: MNode | undefined;
    switch (kind) {
      case 'kill': target = pick(['ready', 'draining', 'ineligible']); if (target) target.status = 'down'; break;
      case 'revive': target = pick(['down']); if (target) target.status = 'ready'; break;
      case 'join': {
        const n = Model.newNode(this.rnd, this.zones);
        this.nodes.set(n.id, { id: n.id, status: 'ready', zone: this.spread === undefined ? undefined : n.labels.zone });
        target = this.nodes.get(n.id);
        break;
      }
      case 'drain': target = pick(['ready']); if (target) target.status = 'draining'; break;
      case 'undrain': target = pick(['draining']); if (target) target.status = 'ready'; break;
      case 'ineligible': target = pick(['ready']); if (target) target.status = 'ineligible'; break;
      case 'eligible': target = pick(['ineligible']); if (target) target.status = 'ready'; break;
    }
    // A member on a node that died and returned has missed entries: a learner there restarts its build.
    if (kind === 'revive' && target) {
      for (const p of this.parts) for (const m of p.members) if (m.node === target.id && m.role === 'learner') {
        m.caughtUp = false;
        m.buildRounds = 1;
      }
    }
    this.log.push(`round ${this.round}: ${kind} ${target?.id ?? '-'}`);
    this.elect();
  }

  buildingLearners(): number {
    let n = 0;
    for (const p of this.parts) for (const m of p.members) if (m.role === 'learner' && !m.caughtUp && this.statusOf(m.node) === 'ready') n++;
    return n;
  }

  /** Checks a plan against the rules, then applies it. Throws with the seed and the recent events when one breaks. */
  step(changing: ReadonlySet<number>, inFlight: number, churn?: Churn): PlacementPlan {
    const input = this.input(changing, inFlight);
    const result = planPlacement(input);
    if (process.env.PLACEMENT_TRACE) {
      const loads = Object.entries(this.replicaCounts()).sort().map(([n, c]) => `${n}@${this.zoneOf(n)}${this.statusOf(n) === 'ready' ? '' : `(${this.statusOf(n)})`}=${c}+${this.load[n]?.replicas ?? 0}`).join(' ');
      const acts = result.actions.map((a) => `${a.kind} p${a.partition} ${'node' in a ? a.node : a.to}${'reason' in a ? ` (${a.reason})` : ''}`).join(', ');
      console.log(`round ${this.round} inFlight ${inFlight}: ${loads}\n  ${acts || '-'}`);
    }
    const fail = (msg: string): never => {
      throw new Error(`${this.label} round ${this.round}: ${msg}\n  ${this.log.slice(-8).join('\n  ')}`);
    };
    for (const a of result.actions) count(`${a.kind}${'reason' in a ? `:${a.reason}` : ''}`);
    if (result.degraded.length > 0) count('degraded');
    if (result.noQuorum.length > 0) count('noQuorum');
    if (result.drainBlocked.length > 0) count('drainBlocked');
    const byPart = new Map(this.parts.map((p) => [p.partition, p]));
    // noQuorum matches an independent count.
    const noQuorum = this.parts.filter((p) => !this.hasQuorum(p)).map((p) => p.partition);
    if (JSON.stringify(noQuorum) !== JSON.stringify(result.noQuorum)) fail(`noQuorum ${result.noQuorum} but ${noQuorum}`);
    const seen = new Set<number>();
    const adds = result.actions.filter((a) => a.kind === 'add-learner');
    const building = this.buildingLearners();
    const allowed = Math.max(0, MAX_MOVES - inFlight - building);
    if (adds.length > allowed) fail(`${adds.length} builds planned, the throttle allows ${allowed}`);
    const buildsOn = new Map<string, number>();
    for (const p of this.parts) for (const m of p.members) if (m.role === 'learner' && !m.caughtUp && this.statusOf(m.node) === 'ready') buildsOn.set(m.node, (buildsOn.get(m.node) ?? 0) + 1);
    for (const a of adds) if (a.kind === 'add-learner') buildsOn.set(a.node, (buildsOn.get(a.node) ?? 0) + 1);
    for (const a of adds) {
      if (a.kind !== 'add-learner') continue;
      const total = buildsOn.get(a.node)! + (this.load[a.node]?.builds ?? 0);
      if (total > PER_NODE) fail(`node ${a.node} would build ${total} replicas at once`);
    }
    for (const a of result.actions) {
      if (seen.has(a.partition)) fail(`two actions for partition ${a.partition}`);
      seen.add(a.partition);
      if (changing.has(a.partition)) fail(`an action for partition ${a.partition}, mid-change`);
      if (noQuorum.includes(a.partition)) fail(`an action for partition ${a.partition}, which has no quorum`);
      const p = byPart.get(a.partition) ?? fail(`unknown partition ${a.partition}`);
      this.checkAction(p, a, result, buildsOn, fail);
      const problem = churn?.record(a);
      if (problem !== undefined) fail(problem);
    }
    // Apply: each action alone must keep a quorum that the partition had.
    for (const a of result.actions) {
      const p = byPart.get(a.partition)!;
      this.apply(p, a);
      if (!this.hasQuorum(p)) fail(`${JSON.stringify(a)} left partition ${p.partition} without a quorum`);
      const nodes = p.members.map((m) => m.node);
      if (new Set(nodes).size !== nodes.length) fail(`partition ${p.partition} has two members on one node`);
    }
    // Learners catch up.
    for (const p of this.parts) for (const m of p.members) {
      if (m.role === 'learner' && !m.caughtUp && this.statusOf(m.node) !== 'down' && --m.buildRounds <= 0) m.caughtUp = true;
    }
    this.round++;
    return result;
  }

  checkAction(p: MPart, a: PlacementAction, result: PlacementPlan, buildsOn: ReadonlyMap<string, number>, fail: (msg: string) => never): void {
    const member = (n: string): MMember | undefined => p.members.find((m) => m.node === n);
    const keepers = p.members.filter((m) => m.role === 'voter' && ['ready', 'ineligible'].includes(this.statusOf(m.node))).map((m) => m.node);
    const zoneCount = (zone: string, set: readonly string[]): number => set.filter((n) => this.zoneOf(n) === zone).length;
    switch (a.kind) {
      case 'add-learner': {
        if (this.statusOf(a.node) !== 'ready') fail(`a learner on ${a.node}, which is ${this.statusOf(a.node)}`);
        if (member(a.node)) fail(`a second member of partition ${p.partition} on ${a.node}`);
        if (p.members.some((m) => m.role === 'learner')) fail(`a second learner for partition ${p.partition}`);
        const mine = zoneCount(this.zoneOf(a.node), keepers);
        if (a.reason === 'rebalance') {
          // A move leaves spread no worse: some voter on a ready node could leave from the same zone or a zone at least
          // as crowded as the target's will be.
          const ok = keepers.some((n) => this.statusOf(n) === 'ready' && (this.zoneOf(n) === this.zoneOf(a.node) || zoneCount(this.zoneOf(n), keepers) >= mine + 1));
          if (!ok) fail(`rebalancing partition ${p.partition} to ${a.node} crowds zone ${this.zoneOf(a.node)} (${mine + 1})`);
        } else {
          // A new replica goes to the emptiest zone that has a free ready node able to take a build.
          for (const n of this.readyIds()) {
            // A node still below the per-node limit once the whole plan is counted had room when this was chosen.
            if (member(n) || (buildsOn.get(n) ?? 0) + (this.load[n]?.builds ?? 0) >= PER_NODE) continue;
            if (zoneCount(this.zoneOf(n), keepers) < mine) fail(`partition ${p.partition}: ${a.reason} to ${a.node} (zone ${this.zoneOf(a.node)}: ${mine}) while ${n} (zone ${this.zoneOf(n)}) is emptier`);
          }
        }
        break;
      }
      case 'promote': {
        const m = member(a.node);
        if (!m || m.role !== 'learner' || !m.caughtUp || this.statusOf(a.node) !== 'ready') fail(`promote ${a.node} in partition ${p.partition}: ${JSON.stringify(m)}`);
        break;
      }
      case 'remove': {
        const m = member(a.node) ?? fail(`remove ${a.node}, not a member of partition ${p.partition}`);
        if (a.node === p.primary) fail(`the primary of partition ${p.partition} removed`);
        if (m.role === 'voter') {
          const status = this.statusOf(a.node);
          const rest = p.members.filter((x) => x.role === 'voter' && x !== m);
          if (status === 'down') {
            const live = rest.filter((x) => this.statusOf(x.node) !== 'down').length;
            if (a.reason === 'degraded') {
              if (!result.degraded.includes(p.partition)) fail(`a dead voter dropped early from partition ${p.partition}, which is not degraded`);
            } else if (live < this.replicas) fail(`the dead voter ${a.node} of partition ${p.partition} removed before its replacement was promoted`);
          } else {
            // A live voter goes only once its replacement is a voter: never below `replicas` on nodes that may keep them.
            const kept = rest.filter((x) => ['ready', 'ineligible'].includes(this.statusOf(x.node))).length;
            if (kept < this.replicas) fail(`live voter ${a.node} (${status}) of partition ${p.partition} removed with ${kept} voters left to keep`);
          }
        }
        break;
      }
      case 'transfer-primary': {
        const m = member(a.to);
        if (!m || m.role !== 'voter' || !m.caughtUp || !['ready', 'ineligible'].includes(this.statusOf(a.to)) || a.to === p.primary) {
          fail(`transfer of partition ${p.partition}'s primary to ${a.to}: ${JSON.stringify(m)}`);
        }
        break;
      }
    }
  }

  apply(p: MPart, a: PlacementAction): void {
    switch (a.kind) {
      case 'add-learner':
        p.members.push({ node: a.node, role: 'learner', caughtUp: false, buildRounds: this.rnd.intBetween(1, 3) });
        this.adds++;
        break;
      case 'promote':
        p.members.find((m) => m.node === a.node)!.role = 'voter';
        break;
      case 'remove':
        p.members = p.members.filter((m) => m.node !== a.node);
        break;
      case 'transfer-primary':
        p.primary = a.to;
        break;
    }
  }

  replicaCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of this.parts) for (const m of p.members) out[m.node] = (out[m.node] ?? 0) + 1;
    return out;
  }

  /** Steps with nothing happening until a plan is empty and nothing is being built; returns the rounds it took. */
  runToFixedPoint(maxRounds: number, churn = new Churn()): number {
    for (let r = 0; r < maxRounds; r++) {
      const res = this.step(new Set(), 0, churn);
      // Learners that caught up in this step are promoted by the next plan: only an empty second plan ends the run.
      if (res.actions.length === 0 && this.buildingLearners() === 0 && this.step(new Set(), 0, churn).actions.length === 0) return r;
    }
    return maxRounds;
  }

  /** The goals a fixed point must meet. Returns the first one missed. */
  checkFixedPoint(result: PlacementPlan): string | undefined {
    const ready = this.readyIds();
    const load = new Map<string, number>();
    const led = new Map<string, number>();
    for (const n of ready) {
      load.set(n, this.load[n]?.replicas ?? 0);
      led.set(n, this.load[n]?.primaries ?? 0);
    }
    for (const p of this.parts) {
      for (const m of p.members) load.set(m.node, (load.get(m.node) ?? 0) + 1);
      if (p.primary !== undefined && this.hasQuorum(p)) led.set(p.primary, (led.get(p.primary) ?? 0) + 1);
    }
    const readyZones = new Set(ready.map((n) => this.zoneOf(n)));
    for (const p of this.parts) {
      if (!this.hasQuorum(p)) continue;
      const nodes = new Set(p.members.map((m) => m.node));
      const free = ready.filter((n) => !nodes.has(n));
      const voters = p.members.filter((m) => m.role === 'voter');
      const keepers = voters.filter((m) => ['ready', 'ineligible'].includes(this.statusOf(m.node))).map((m) => m.node);
      const draining = voters.filter((m) => this.statusOf(m.node) === 'draining');
      const dead = voters.filter((m) => this.statusOf(m.node) === 'down');
      if (p.members.some((m) => m.role === 'learner')) return `partition ${p.partition} still has a learner`;
      if (free.length > 0) {
        if (keepers.length !== this.replicas || draining.length + dead.length > 0) return `partition ${p.partition} has room but ${keepers.length} voters to keep, ${draining.length} draining, ${dead.length} dead`;
      } else {
        const short = keepers.length + draining.length < this.replicas;
        if (short !== result.degraded.includes(p.partition)) return `partition ${p.partition}: short ${short}, degraded ${result.degraded}`;
        if (dead.length > 0 && !short) return `partition ${p.partition} keeps a dead voter though it is not short`;
        if (keepers.length > this.replicas) return `partition ${p.partition} has ${keepers.length} voters`;
      }
      // Spread, balanced as far as free nodes allow.
      const counts = (z: string): number => keepers.filter((n) => this.zoneOf(n) === z).length;
      const zonesWithFree = new Set(free.map((n) => this.zoneOf(n)));
      for (const a of new Set(keepers.map((n) => this.zoneOf(n)))) {
        const movable = keepers.some((n) => this.zoneOf(n) === a && this.statusOf(n) === 'ready');
        for (const b of zonesWithFree) {
          if (movable && counts(a) > counts(b) + 1) return `partition ${p.partition}: zone ${a} holds ${counts(a)}, zone ${b} ${counts(b)} and has a free node`;
        }
      }
      if (this.spread !== undefined && free.length > 0 && readyZones.size >= this.replicas && keepers.every((n) => this.statusOf(n) === 'ready')) {
        const distinct = new Set(keepers.map((n) => this.zoneOf(n))).size;
        const zonesWithRoom = new Set([...zonesWithFree, ...keepers.map((n) => this.zoneOf(n))]).size;
        if (distinct < Math.min(this.replicas, zonesWithRoom)) return `partition ${p.partition} covers ${distinct} zones of ${zonesWithRoom}`;
      }
      // Replicas: no move from a ready node to one two lighter is left that would not crowd a zone.
      for (const h of keepers) {
        if (this.statusOf(h) !== 'ready') continue;
        for (const l of free) {
          if (load.get(h)! - load.get(l)! <= 1) continue;
          if (this.zoneOf(h) === this.zoneOf(l) || counts(this.zoneOf(l)) < counts(this.zoneOf(h))) {
            return `partition ${p.partition} could move from ${h} (${load.get(h)}) to ${l} (${load.get(l)})`;
          }
        }
      }
    }
    // Primaries: no node over the cap can hand one to a node leading two fewer.
    const total = ready.reduce((s, n) => s + led.get(n)!, 0);
    const cap = Math.ceil(total / Math.max(1, ready.length)) + 1;
    if (ready.length >= 2) {
      for (const p of this.parts) {
        if (p.primary === undefined || !this.hasQuorum(p) || this.statusOf(p.primary) !== 'ready' || led.get(p.primary)! <= cap) continue;
        for (const m of p.members) {
          if (m.role === 'voter' && m.caughtUp && m.node !== p.primary && this.statusOf(m.node) === 'ready' && led.get(p.primary)! - led.get(m.node)! >= 2) {
            return `partition ${p.partition}: primary on ${p.primary} (${led.get(p.primary)}, cap ${cap}) could go to ${m.node} (${led.get(m.node)})`;
          }
        }
      }
    }
    // No member is left on a draining node unless there is no room, and none on a down node unless degraded.
    return undefined;
  }
}

/**
 * Moves once nothing changes any more. A replica may come back to a node it left when two goals pull apart (a
 * spread move takes it off the busiest node of its zone, later balancing refills that node and picks the same
 * partition), but a partition must never go back and forth: a third build on one node is oscillation.
 */
class Churn {
  readonly removed = new Set<string>();
  readonly added = new Map<string, number>();
  adds = 0;
  moveBacks = 0;

  record(a: PlacementAction): string | undefined {
    if (a.kind === 'remove') this.removed.add(`${a.partition}@${a.node}`);
    if (a.kind !== 'add-learner') return undefined;
    const key = `${a.partition}@${a.node}`;
    this.adds++;
    if (this.removed.has(key)) this.moveBacks++;
    const n = (this.added.get(key) ?? 0) + 1;
    this.added.set(key, n);
    return n > 2 ? `partition ${a.partition} is built on ${a.node} for the ${n}th time: oscillation` : undefined;
  }
}

function shuffled(input: ServicePlacementInput, rnd: Random): ServicePlacementInput {
  return {
    ...input,
    nodes: rnd.shuffle(input.nodes),
    partitions: rnd.shuffle(input.partitions).map((p) => ({ ...p, members: rnd.shuffle(p.members) })),
    load: Object.fromEntries(rnd.shuffle(Object.entries(input.load ?? {}))),
  };
}

t.test('a node joins: replicas move to it until loads differ by at most one, and no more move than that', async (t) => {
  const nodes = [node('a'), node('b'), node('c')];
  const res = initialPlacement({ partitions: 12, replicas: 3, nodes });
  if (!res.ok) throw new Error(res.message);
  const model = new Model(`rebalance-join`, 3, undefined, [...nodes, node('d')], res.partitions, {});
  const rounds = model.runToFixedPoint(200);
  t.ok(rounds < 200, `fixed point after ${rounds} rounds`);
  const load = model.replicaCounts();
  t.same(load, { a: 9, b: 9, c: 9, d: 9 });
  t.equal(model.adds, 9, 'nine replicas moved to the new node, no more');
});

t.test('the same input in any order gives the same plan', async (t) => {
  const rnd = Random.fromSeed('placement-order');
  for (let i = 0; i < 20; i++) {
    const m = Model.random(rnd.split(), i);
    const input = m.input(new Set(), 0);
    const a = planPlacement(input);
    const b = planPlacement(shuffled(input, rnd));
    t.same(b, a);
  }
});

/** How often each kind of action and report came up in the model runs, so agreement is not agreement on nothing. */
const OUTCOMES = new Map<string, number>();
const count = (key: string): void => {
  OUTCOMES.set(key, (OUTCOMES.get(key) ?? 0) + 1);
};

const SEEDS = process.env.PLACEMENT_SEED ? [Number(process.env.PLACEMENT_SEED)] : Array.from({ length: Number(process.env.PLACEMENT_SEEDS ?? 300) }, (_, i) => i + 1);
const EVENTS: Event[] = ['kill', 'kill', 'revive', 'join', 'join', 'drain', 'undrain', 'ineligible', 'eligible'];

t.test('from random clusters, with nodes dying, returning, joining and draining, placement reaches a fixed point that meets every goal', async (t) => {
  let failures = 0;
  let worstRounds = 0;
  let worstRatio = 0;
  let totalRounds = 0;
  let adds = 0;
  let moveBacks = 0;
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  for (const seed of SEEDS) {
    const rnd = Random.fromSeed(`placement-${seed}`);
    const m = Model.random(rnd, seed);
    // Some nodes start out of the ordinary, then events arrive during the first rounds.
    const events: { round: number; kind: Event }[] = [];
    const eventCount = rnd.intBetween(0, 8);
    for (let i = 0; i < eventCount; i++) events.push({ round: rnd.intBetween(0, 30), kind: rnd.pick(EVENTS) });
    const lastEvent = Math.max(0, ...events.map((e) => e.round));
    const totalReplicas = m.parts.length * m.replicas;
    // Once nothing changes, every replica moves at most once and a move takes at most six rounds (add, catch up in up
    // to three, promote, transfer the primary, remove); at least PER_NODE builds run at a time, even when every move
    // goes to the one node that joined.
    const bound = 30 + 6 * Math.ceil(totalReplicas / PER_NODE);
    let error: string | undefined;
    try {
      let fixedAt: number | undefined;
      const churn = new Churn();
      for (let round = 0; round <= lastEvent + bound; round++) {
        for (const e of events) if (e.round === round) m.event(e.kind);
        const busy = round <= lastEvent;
        const changing = new Set<number>();
        if (busy) for (const p of m.parts) if (rnd.chance(0.03)) changing.add(p.partition);
        const inFlight = rnd.chance(0.3) ? rnd.intBetween(1, MAX_MOVES + 1) : 0;
        if (seed % 10 === 0) {
          // Now and then the same input, shuffled, must give the same plan.
          const input = m.input(changing, inFlight);
          if (JSON.stringify(planPlacement(input)) !== JSON.stringify(planPlacement(shuffled(input, rnd)))) throw new Error(`seed ${seed} round ${round}: the plan depends on input order`);
        }
        const res = m.step(changing, inFlight, busy ? undefined : churn);
        if (!busy && res.actions.length === 0 && m.buildingLearners() === 0) {
          // A quiet round whose builds the other services' inFlight held back is not a fixed point: confirm with none.
          const confirm = m.step(new Set(), 0, churn);
          if (confirm.actions.length === 0 && m.buildingLearners() === 0) {
            fixedAt = round - lastEvent;
            error = m.checkFixedPoint(confirm);
            if (error !== undefined && process.env.PLACEMENT_TRACE) console.log(JSON.stringify(m.input(new Set(), 0)));
            break;
          }
        }
      }
      if (fixedAt === undefined) error = `no fixed point within ${bound} rounds of the last event`;
      else if (churn.adds > totalReplicas) error = `${churn.adds} builds after the last event, for ${totalReplicas} replicas`;
      else if (churn.moveBacks > Math.max(2, churn.adds / 10)) error = `${churn.moveBacks} of ${churn.adds} builds went back to a node the partition had left`;
      else {
        adds += churn.adds;
        moveBacks += churn.moveBacks;
        if (process.env.PLACEMENT_STATS) console.log(`seed ${seed} nodes ${m.nodes.size} parts ${m.parts.length} r ${m.replicas} zones ${m.zones} rounds ${fixedAt} adds ${churn.adds} back ${churn.moveBacks} replicas ${totalReplicas}`);
        worstRounds = Math.max(worstRounds, fixedAt);
        worstRatio = Math.max(worstRatio, fixedAt / bound);
        totalRounds += fixedAt;
      }
    } catch (e) {
      error = (e as Error).message;
    }
    if (error !== undefined) {
      failures++;
      t.fail(`seed ${seed} (replay: PLACEMENT_SEED=${seed}): ${error}`);
      if (failures >= 5) break;
    }
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const cpuMs = process.cpuUsage(cpu).user / 1e3;
  t.equal(failures, 0, `${SEEDS.length} seeds: fixed points reached (slowest ${worstRounds} rounds after the last event, `
    + `${Math.round(worstRatio * 100)}% of its bound; ${totalRounds} rounds in all; ${adds} builds after the last events, ${moveBacks} back to a node left) in ${Math.round(ms)} ms (${Math.round(cpuMs)} ms of CPU)`);
  if (SEEDS.length >= 100) {
    const want = ['add-learner:create', 'add-learner:rebuild', 'add-learner:drain', 'add-learner:rebalance', 'promote', 'remove:down', 'remove:drain', 'remove:ineligible',
      'remove:surplus', 'remove:degraded', 'transfer-primary:drain', 'transfer-primary:rebalance', 'degraded', 'noQuorum', 'drainBlocked'];
    for (const w of want) t.ok((OUTCOMES.get(w) ?? 0) > 0, `the runs reach ${w}: ${OUTCOMES.get(w) ?? 0} times`);
  }
});
