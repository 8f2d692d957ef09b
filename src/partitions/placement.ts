/**
 * Where a stateful service's partition replicas live (issue 12, point 6), as a pure decision.
 *
 * Each partition is a Raft group of `replicas` voters on distinct nodes. The cluster leader calls `planPlacement` on
 * every change it sees (a node joins, dies, drains; a learner catches up; a membership change commits; a primary
 * moves) and carries out what it returns; `initialPlacement` chooses the members of a new service's partitions. Both
 * are functions of their input only, with every tie broken by node id, so any leader plans alike. The rules, and why,
 * are in README.md ("Placement").
 */
import { invariant } from '../lib/assert.js';
import { LIMITS } from '../lib/limits.js';

/**
 * ready: may host new replicas. draining: everything moves off it, primaries first. ineligible: keeps what it has and
 * gets nothing new. down: dead in gossip; its replicas are rebuilt elsewhere.
 */
export type NodeStatus = 'ready' | 'draining' | 'ineligible' | 'down';

export interface PlacementNode {
  readonly id: string;
  readonly status: NodeStatus;
  readonly labels: Readonly<Record<string, string>>;
}

export interface MemberView {
  readonly node: string;
  readonly role: 'voter' | 'learner';
  /** A learner: caught up with the primary, ready to promote. A voter: current enough to be handed the primary role. */
  readonly caughtUp: boolean;
}

export interface PartitionView {
  readonly partition: number;
  readonly members: readonly MemberView[];
  /** The node of the partition's Raft leader, when one is known. */
  readonly primary: string | undefined;
  /** A membership change of this partition is not finished yet: nothing is planned for it. */
  readonly changing: boolean;
}

/** What other stateful services already put on a node, so that services balance together. */
export interface NodeLoad {
  readonly replicas: number;
  readonly primaries: number;
  /** Learners of other services still being built on the node (counted against `partitionMaxBuildsPerNode`). */
  readonly builds?: number;
}

export interface ServicePlacementInput {
  /** Voters each partition should have: odd, 1 to LIMITS.partitionReplicasMax. */
  readonly replicas: number;
  /** A node label whose values are failure domains; nodes without it count as the value "". */
  readonly spread?: string | undefined;
  readonly nodes: readonly PlacementNode[];
  readonly partitions: readonly PartitionView[];
  /** By node id; a node missing here carries nothing of other services. */
  readonly load?: Readonly<Record<string, NodeLoad>>;
  /**
   * Replica builds in flight in other services (their learners not yet caught up). This service's own are counted
   * from `partitions`; a total that includes them as well only throttles harder.
   */
  readonly inFlight?: number;
}

export type AddReason = 'create' | 'rebuild' | 'drain' | 'rebalance';
/**
 * down: the member's node is down (a voter once its replacement is a voter). drain: the node drains (likewise).
 * ineligible: a learner on a node that takes nothing new. surplus: more voters than `replicas` on nodes that may keep
 * them (the end of a move, a node that returned, a lowered count), or a learner that would be the first to go.
 * degraded: a dead voter removed although no replacement can be placed, because the smaller group tolerates more
 * failures (README.md, "Placement").
 */
export type RemoveReason = 'down' | 'drain' | 'ineligible' | 'surplus' | 'degraded';

export type PlacementAction =
  | { readonly kind: 'add-learner'; readonly partition: number; readonly node: string; readonly reason: AddReason }
  | { readonly kind: 'promote'; readonly partition: number; readonly node: string }
  | { readonly kind: 'remove'; readonly partition: number; readonly node: string; readonly reason: RemoveReason }
  | { readonly kind: 'transfer-primary'; readonly partition: number; readonly to: string; readonly reason: 'drain' | 'rebalance' };

export interface PlacementPlan {
  /** In the order planned: completions and cheap changes first, then builds by priority (rebuild, drain, rebalance). */
  readonly actions: PlacementAction[];
  /** Partitions short of voters with no ready node free to take one: they run with what they have. */
  readonly degraded: number[];
  /** Partitions whose live voters are not a majority of their voters: nothing is planned for them. */
  readonly noQuorum: number[];
  /** Partitions with a voter on a draining node and no ready node free to take it: the drain waits for room. */
  readonly drainBlocked: number[];
}

export interface InitialPlacementInput {
  readonly partitions: number;
  readonly replicas: number;
  readonly spread?: string | undefined;
  readonly nodes: readonly PlacementNode[];
  readonly load?: Readonly<Record<string, NodeLoad>>;
}

export interface InitialPartition {
  readonly partition: number;
  /** Node ids, sorted. */
  readonly members: string[];
  /** The member that should lead first (primaries are spread like replicas). */
  readonly primary: string;
}

export type InitialPlacementResult =
  | { readonly ok: true; readonly partitions: InitialPartition[]; readonly degraded: number[] }
  | { readonly ok: false; readonly code: 'ERR_NO_READY_NODE'; readonly message: string };

// --- the view of the cluster one call works on ---------------------------------------------------------------------

interface Ctx {
  readonly want: number;
  readonly statusOf: (node: string) => NodeStatus;
  readonly zoneOf: (node: string) => string;
  /** Ready node ids, sorted. */
  readonly ready: readonly string[];
  /** Ready nodes per zone. */
  readonly readyPerZone: ReadonlyMap<string, number>;
  /** Replicas per node: this service's members (any role) plus other services'. */
  readonly replicas: Map<string, number>;
  /** Primaries per node: this service's plus other services'. */
  readonly primaries: Map<string, number>;
  /** Learners being built per node: this service's plus other services'. */
  readonly builds: Map<string, number>;
}

interface Part {
  readonly partition: number;
  readonly view: PartitionView;
  /** Every node holding a member, whatever its role and state. */
  readonly nodes: ReadonlySet<string>;
  readonly voters: number;
  /** Voters on nodes that are not down. */
  readonly liveVoters: number;
  /** Voters on ready or ineligible nodes: the ones that may stay. Sorted. */
  readonly keepers: readonly string[];
  readonly drainingVoters: readonly string[];
  readonly downVoters: readonly string[];
  /** Learners on ready nodes, sorted by node. */
  readonly learners: readonly MemberView[];
  /** Learners on nodes that are not ready: removed first. */
  readonly strayLearners: readonly MemberView[];
  /** The primary when it is a voter on a live node of a partition with a quorum; otherwise nothing is planned. */
  readonly primary: string | undefined;
  readonly quorum: boolean;
}

const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const get = (m: ReadonlyMap<string, number>, k: string): number => m.get(k) ?? 0;
const bump = (m: Map<string, number>, k: string, by: number): void => {
  m.set(k, get(m, k) + by);
};

function validateCommon(replicas: number, nodes: readonly PlacementNode[]): void {
  invariant(Number.isSafeInteger(replicas) && replicas >= 1 && replicas <= LIMITS.partitionReplicasMax && replicas % 2 === 1,
    `placement: replicas must be odd, from 1 to ${LIMITS.partitionReplicasMax}, got ${replicas}`);
  const seen = new Set<string>();
  for (const n of nodes) {
    invariant(!seen.has(n.id), `placement: node ${n.id} is listed twice`);
    seen.add(n.id);
  }
}

function makeCtx(want: number, spread: string | undefined, nodes: readonly PlacementNode[], load: Readonly<Record<string, NodeLoad>>): Ctx {
  const status = new Map(nodes.map((n) => [n.id, n.status]));
  const zone = new Map(nodes.map((n) => [n.id, spread === undefined ? '' : (n.labels[spread] ?? '')]));
  const replicas = new Map<string, number>();
  const primaries = new Map<string, number>();
  const builds = new Map<string, number>();
  for (const [node, l] of Object.entries(load)) {
    invariant(Number.isSafeInteger(l.replicas) && l.replicas >= 0 && Number.isSafeInteger(l.primaries) && l.primaries >= 0
      && (l.builds === undefined || (Number.isSafeInteger(l.builds) && l.builds >= 0)), `placement: load of node ${node} must be counts`);
    replicas.set(node, l.replicas);
    primaries.set(node, l.primaries);
    builds.set(node, l.builds ?? 0);
  }
  const readyPerZone = new Map<string, number>();
  for (const n of nodes) if (n.status === 'ready') bump(readyPerZone, zone.get(n.id)!, 1);
  return {
    want,
    readyPerZone,
    // A member on a node the leader no longer lists is as good as on a down one.
    statusOf: (node) => status.get(node) ?? 'down',
    zoneOf: (node) => zone.get(node) ?? '',
    ready: nodes.filter((n) => n.status === 'ready').map((n) => n.id).sort(byId),
    replicas,
    primaries,
    builds,
  };
}

function analyse(ctx: Ctx, view: PartitionView): Part {
  const nodes = new Set<string>();
  const keepers: string[] = [];
  const drainingVoters: string[] = [];
  const downVoters: string[] = [];
  const learners: MemberView[] = [];
  const strayLearners: MemberView[] = [];
  let voters = 0;
  for (const m of view.members) {
    invariant(!nodes.has(m.node), `placement: partition ${view.partition} has two members on node ${m.node}`);
    nodes.add(m.node);
    const status = ctx.statusOf(m.node);
    if (m.role === 'learner') {
      (status === 'ready' ? learners : strayLearners).push(m);
      continue;
    }
    voters++;
    if (status === 'down') downVoters.push(m.node);
    else if (status === 'draining') drainingVoters.push(m.node);
    else keepers.push(m.node);
  }
  const liveVoters = voters - downVoters.length;
  const primaryMember = view.members.find((m) => m.node === view.primary);
  const quorum = voters > 0 && liveVoters * 2 > voters;
  // A leader without a quorum commits nothing (and steps down): it counts as no primary.
  const primary = quorum && primaryMember?.role === 'voter' && ctx.statusOf(primaryMember.node) !== 'down' ? primaryMember.node : undefined;
  const order = (a: MemberView, b: MemberView): number => byId(a.node, b.node);
  return {
    partition: view.partition,
    view,
    nodes,
    voters,
    liveVoters,
    keepers: keepers.sort(byId),
    drainingVoters: drainingVoters.sort(byId),
    downVoters: downVoters.sort(byId),
    learners: learners.sort(order),
    strayLearners: strayLearners.sort(order),
    primary,
    quorum,
  };
}

function zoneCounts(ctx: Ctx, nodes: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of nodes) bump(counts, ctx.zoneOf(n), 1);
  return counts;
}

/**
 * The member of `set` that goes first when the set has one too many: the one in the most crowded failure domain, then
 * on the most loaded node, then not the primary (it would need a transfer first), then the largest id. Members on
 * ready nodes go before members on ineligible ones, which keep what they have.
 */
function worstOf(ctx: Ctx, set: readonly string[], primary: string | undefined, loadOf: (node: string) => number): string {
  invariant(set.length > 0, 'placement: worst of an empty set');
  const counts = zoneCounts(ctx, set);
  const onReady = set.filter((n) => ctx.statusOf(n) === 'ready');
  const pool = onReady.length > 0 ? onReady : set;
  let worst = pool[0]!;
  for (const n of pool.slice(1)) if (isWorse(ctx, counts, primary, loadOf, n, worst)) worst = n;
  return worst;
}

/** Whether `a` goes before `b` (see worstOf), with `counts` the zone counts of the set they are in. */
function isWorse(ctx: Ctx, counts: ReadonlyMap<string, number>, primary: string | undefined, loadOf: (node: string) => number, a: string, b: string): boolean {
  const dz = get(counts, ctx.zoneOf(a)) - get(counts, ctx.zoneOf(b));
  if (dz !== 0) return dz > 0;
  const dl = loadOf(a) - loadOf(b);
  if (dl !== 0) return dl > 0;
  const dp = (a === primary ? 0 : 1) - (b === primary ? 0 : 1);
  if (dp !== 0) return dp > 0;
  return a > b;
}

/**
 * The ready node a new replica of the partition should go to: not already a member, then in the failure domain
 * holding the fewest of `staying`, then the least loaded, then the smallest id. Spread is a preference that never
 * leaves a replica unplaced: a crowded domain is used when no other has a free node.
 */
function bestTarget(ctx: Ctx, taken: ReadonlySet<string>, staying: readonly string[], loadOf: (node: string) => number, buildRoom: boolean): string | undefined {
  const counts = zoneCounts(ctx, staying);
  let best: string | undefined;
  let bestZone = 0;
  let bestLoad = 0;
  for (const n of ctx.ready) {
    if (taken.has(n)) continue;
    if (buildRoom && get(ctx.builds, n) >= LIMITS.partitionMaxBuildsPerNode) continue;
    const z = get(counts, ctx.zoneOf(n));
    const l = loadOf(n);
    if (best === undefined || z < bestZone || (z === bestZone && l < bestLoad)) {
      best = n;
      bestZone = z;
      bestLoad = l;
    }
  }
  return best;
}

/**
 * A caught-up voter to hand the primary role to: on a ready node (on an ineligible one only when `orIneligible` and no
 * ready node has one), leading the fewest partitions, then by id.
 */
function transferTarget(ctx: Ctx, p: Part, except: string, orIneligible = false): string | undefined {
  const onReady = pickTransferTarget(ctx, p, except, 'ready');
  return onReady === undefined && orIneligible ? pickTransferTarget(ctx, p, except, 'ineligible') : onReady;
}

function pickTransferTarget(ctx: Ctx, p: Part, except: string, status: NodeStatus): string | undefined {
  let best: string | undefined;
  for (const m of p.view.members) {
    if (m.role !== 'voter' || !m.caughtUp || m.node === except || ctx.statusOf(m.node) !== status) continue;
    const d = best === undefined ? -1 : get(ctx.primaries, m.node) - get(ctx.primaries, best);
    if (d < 0 || (d === 0 && m.node < best!)) best = m.node;
  }
  return best;
}

/** Removing this voter keeps a majority of live voters among the voters left. */
function keepsQuorum(ctx: Ctx, p: Part, node: string): boolean {
  const live = p.liveVoters - (ctx.statusOf(node) === 'down' ? 0 : 1);
  return live * 2 > p.voters - 1;
}

/** Some ready node holds no member of the partition. */
function hasRoom(ctx: Ctx, p: Part): boolean {
  let onReady = 0;
  for (const n of p.nodes) if (ctx.statusOf(n) === 'ready') onReady++;
  return onReady < ctx.ready.length;
}

function shortOf(ctx: Ctx, p: Part): number {
  return Math.max(0, ctx.want - (p.keepers.length + p.drainingVoters.length + p.learners.length));
}

function transferPrimary(ctx: Ctx, p: Part, to: string, reason: 'drain' | 'rebalance'): PlacementAction {
  bump(ctx.primaries, p.primary!, -1);
  bump(ctx.primaries, to, 1);
  return { kind: 'transfer-primary', partition: p.partition, to, reason };
}

/**
 * The one change a partition gets that moves no data, in order: drop learners on nodes that are not ready, drop dead
 * voters already replaced, hand the primary away from a draining node, promote (or drop) a caught-up learner, drop a
 * draining voter already replaced, drop a surplus voter, and, when no replacement can be placed, shrink a group whose
 * dead voters cost it fault tolerance.
 */
function cheapAction(ctx: Ctx, p: Part, room: boolean, leavers: readonly string[]): PlacementAction | undefined {
  const want = ctx.want;
  const stray = p.strayLearners[0];
  if (stray) {
    const status = ctx.statusOf(stray.node);
    return { kind: 'remove', partition: p.partition, node: stray.node, reason: status === 'down' ? 'down' : status === 'draining' ? 'drain' : 'ineligible' };
  }
  // A dead voter goes once the live voters are enough without it: its replacement has been promoted.
  const dead = p.downVoters[0];
  if (dead !== undefined && p.keepers.length + p.drainingVoters.length >= want) {
    return { kind: 'remove', partition: p.partition, node: dead, reason: 'down' };
  }
  if (p.primary !== undefined && ctx.statusOf(p.primary) === 'draining') {
    // A draining node's partitions all move; when only ineligible nodes have a caught-up voter, one of them leads.
    const to = transferTarget(ctx, p, p.primary, true);
    if (to !== undefined) return transferPrimary(ctx, p, to, 'drain');
  }
  const learner = p.learners.find((m) => m.caughtUp);
  if (learner) {
    // Promoted while a slot is open; otherwise only when someone else would then be the one to go, so a learner
    // whose reason vanished (its drain was cancelled, the dead node returned) is not promoted only to be removed.
    if (p.keepers.length < want || !leavers.includes(learner.node)) {
      return { kind: 'promote', partition: p.partition, node: learner.node };
    }
    return { kind: 'remove', partition: p.partition, node: learner.node, reason: 'surplus' };
  }
  if (p.keepers.length >= want) {
    const leaving = p.drainingVoters.find((n) => n !== p.primary && keepsQuorum(ctx, p, n));
    if (leaving !== undefined) return { kind: 'remove', partition: p.partition, node: leaving, reason: 'drain' };
  }
  if (p.keepers.length > want && p.drainingVoters.length === 0) {
    const w = leavers.find((n) => p.keepers.includes(n));
    if (w === undefined) return undefined;
    if (w === p.primary) {
      const to = transferTarget(ctx, p, w, true);
      return to === undefined ? undefined : transferPrimary(ctx, p, to, 'rebalance');
    }
    if (keepsQuorum(ctx, p, w)) return { kind: 'remove', partition: p.partition, node: w, reason: 'surplus' };
  }
  // No room for a replacement: a dead voter is dropped when the group without its dead voters would tolerate more
  // failures (floor(live/2) < floor(voters/2)); otherwise it is kept, so a node that returns catches up from the log.
  if (dead !== undefined && !room && p.learners.length === 0 && Math.floor(p.liveVoters / 2) < Math.floor(p.voters / 2)) {
    return { kind: 'remove', partition: p.partition, node: dead, reason: 'degraded' };
  }
  return undefined;
}

/**
 * Which members leave the partitions that have more than `replicas` voters and learners on nodes that may keep them
 * (a move under way, a node that returned), and what each node will carry once they have: its replicas less those
 * leaving. Every later choice works on these loads. They do not change when a move finishes (the node loses a replica
 * and a leaver at once), so a partition's choice of who goes does not drift while other moves complete, which would
 * move more replicas off one node than planned and then move some back.
 *
 * A partition's own leavers are judged against the loads without them (it is deciding them); the first guess uses
 * the plain counts, and two rounds of refinement settle the rest, in partition order.
 */
function predictLeavers(ctx: Ctx, parts: readonly Part[]): { eff: Map<string, number>; leavers: Map<number, string[]> } {
  const eff = new Map(ctx.replicas);
  const leavers = new Map<number, string[]>();
  const sets = new Map<number, { p: Part; set: string[] }>();
  const predict = (p: Part, set: readonly string[], load: (n: string) => number): string[] => {
    const left = [...set];
    const out: string[] = [];
    while (left.length > ctx.want) {
      const w = worstOf(ctx, left, p.primary, load);
      left.splice(left.indexOf(w), 1);
      out.push(w);
    }
    return out;
  };
  for (const p of parts) {
    const set = [...p.keepers, ...p.learners.map((m) => m.node)];
    if (set.length <= ctx.want) continue;
    sets.set(p.partition, { p, set });
    const out = predict(p, set, (n) => get(ctx.replicas, n));
    leavers.set(p.partition, out);
    for (const n of out) bump(eff, n, -1);
  }
  for (let round = 0; round < 2; round++) {
    for (const [partition, { p, set }] of sets) {
      const before = leavers.get(partition)!;
      const after = predict(p, set, (n) => get(eff, n) + (before.includes(n) ? 1 : 0));
      if (after.join() === before.join()) continue;
      for (const n of before) bump(eff, n, 1);
      for (const n of after) bump(eff, n, -1);
      leavers.set(partition, after);
    }
  }
  return { eff, leavers };
}

interface Need {
  readonly p: Part;
  readonly reason: 'create' | 'rebuild' | 'drain';
  readonly rank: number;
  /** Live voters beyond a quorum: the partitions closest to losing theirs are rebuilt first. */
  readonly margin: number;
}

/** The learner a partition wants, if any: to replace a lost or missing voter first, a draining one second. */
function needOf(ctx: Ctx, p: Part): Need | undefined {
  if (p.learners.length > 0) return undefined; // one build at a time per partition
  const margin = p.liveVoters - (Math.floor(p.voters / 2) + 1);
  if (p.keepers.length + p.drainingVoters.length < ctx.want) return { p, reason: p.downVoters.length > 0 ? 'rebuild' : 'create', rank: 0, margin };
  if (p.drainingVoters.length > 0 && p.keepers.length < ctx.want) return { p, reason: 'drain', rank: 1, margin };
  return undefined;
}

/** Nothing to do but possibly rebalance: full, every voter on a node that may keep it, nothing in progress. */
function settled(ctx: Ctx, p: Part): boolean {
  return p.quorum && !p.view.changing && p.primary !== undefined && p.learners.length === 0 && p.strayLearners.length === 0
    && p.drainingVoters.length === 0 && p.downVoters.length === 0 && p.keepers.length === ctx.want;
}

/** Counts of learners not caught up on ready nodes: this service's builds in flight. */
export function buildsInFlight(partitions: readonly PartitionView[], nodes: readonly PlacementNode[]): number {
  const ready = new Set(nodes.filter((n) => n.status === 'ready').map((n) => n.id));
  let count = 0;
  for (const p of partitions) for (const m of p.members) if (m.role === 'learner' && !m.caughtUp && ready.has(m.node)) count++;
  return count;
}

/**
 * The next step for every partition of one stateful service: at most one action each (a membership change commits
 * before the next is planned), learners within the build throttle, and the partitions that are degraded, have lost
 * their quorum, or cannot finish a drain. Call it again whenever anything it reads changes.
 */
export function planPlacement(input: ServicePlacementInput): PlacementPlan {
  validateCommon(input.replicas, input.nodes);
  const inFlight = input.inFlight ?? 0;
  invariant(Number.isSafeInteger(inFlight) && inFlight >= 0, `placement: inFlight must be a count, got ${inFlight}`);
  const ctx = makeCtx(input.replicas, input.spread, input.nodes, input.load ?? {});
  const seen = new Set<number>();
  for (const view of input.partitions) {
    invariant(!seen.has(view.partition), `placement: partition ${view.partition} is listed twice`);
    seen.add(view.partition);
  }
  const parts = [...input.partitions].sort((a, b) => a.partition - b.partition).map((v) => analyse(ctx, v));

  // What each node carries and builds, this service included.
  let ownBuilds = 0;
  for (const p of parts) {
    for (const m of p.view.members) {
      bump(ctx.replicas, m.node, 1);
      if (m.role === 'learner' && !m.caughtUp && ctx.statusOf(m.node) === 'ready') {
        bump(ctx.builds, m.node, 1);
        ownBuilds++;
      }
    }
    if (p.primary !== undefined) bump(ctx.primaries, p.primary, 1);
  }
  const { eff, leavers } = predictLeavers(ctx, parts);

  const actions: PlacementAction[] = [];
  const degraded: number[] = [];
  const noQuorum: number[] = [];
  const drainBlocked: number[] = [];
  const acted = new Set<number>();
  const needs: Need[] = [];
  for (const p of parts) {
    if (!p.quorum) {
      noQuorum.push(p.partition);
      continue;
    }
    const room = hasRoom(ctx, p);
    if (!room && shortOf(ctx, p) > 0) degraded.push(p.partition);
    if (!room && p.drainingVoters.length > 0 && p.keepers.length + p.learners.length < ctx.want) drainBlocked.push(p.partition);
    // A membership change needs the partition's leader: without one (an election is under way) it waits.
    if (p.view.changing || p.primary === undefined) continue;
    const action = cheapAction(ctx, p, room, leavers.get(p.partition) ?? []);
    if (action) {
      actions.push(action);
      acted.add(p.partition);
      continue;
    }
    const need = needOf(ctx, p);
    if (need) needs.push(need);
  }

  // Builds, throttled cluster-wide: rebuilds (the most endangered partitions first), then drains, then rebalancing.
  let budget = Math.max(0, LIMITS.partitionMaxConcurrentMoves - inFlight - ownBuilds);
  const addLearner = (p: Part, node: string, reason: AddReason, leaving: string | undefined): void => {
    actions.push({ kind: 'add-learner', partition: p.partition, node, reason });
    acted.add(p.partition);
    bump(ctx.replicas, node, 1);
    bump(ctx.builds, node, 1);
    bump(eff, node, 1);
    if (leaving !== undefined) bump(eff, leaving, -1);
    budget--;
  };
  // Load balancing waits until every rebuild, drain and spread move has been planned: they change the loads, and
  // balancing ahead of them would move replicas that they then move again.
  let pending = false;
  needs.sort((a, b) => a.rank - b.rank || a.margin - b.margin || a.p.partition - b.p.partition);
  for (const need of needs) {
    // Spread counts the voters that stay: the draining and dead ones are on their way out.
    const target = budget > 0 ? bestTarget(ctx, need.p.nodes, need.p.keepers, (n) => get(eff, n), true) : undefined;
    if (target !== undefined) addLearner(need.p, target, need.reason, undefined);
    else if (hasRoom(ctx, need.p)) pending = true;
  }

  // Spread: a voter in a crowded failure domain moves to a free node in an emptier one.
  const spreadMove = (p: Part, buildRoom: boolean): { target: string; leaving: string } | undefined => {
    // Only a voter on a ready node can leave, for a free node in a zone holding at least two fewer.
    if (input.spread === undefined) return undefined;
    const counts = zoneCounts(ctx, p.keepers);
    let most = 0;
    const taken = new Map<string, number>();
    for (const n of p.keepers) {
      if (ctx.statusOf(n) !== 'ready') continue;
      most = Math.max(most, get(counts, ctx.zoneOf(n)));
      bump(taken, ctx.zoneOf(n), 1);
    }
    let emptier = false;
    for (const [zone, ready] of ctx.readyPerZone) if (ready > get(taken, zone) && get(counts, zone) + 2 <= most) emptier = true;
    if (!emptier) return undefined;
    const target = bestTarget(ctx, p.nodes, p.keepers, (n) => get(eff, n), buildRoom);
    if (target === undefined) return undefined;
    const leaving = worstOf(ctx, [...p.keepers, target], p.primary, (n) => get(eff, n) + (n === target ? 1 : 0));
    bump(counts, ctx.zoneOf(target), 1);
    return get(counts, ctx.zoneOf(leaving)) > get(counts, ctx.zoneOf(target)) ? { target, leaving } : undefined;
  };
  for (const p of parts) {
    if (acted.has(p.partition) || !settled(ctx, p)) continue;
    const move = budget > 0 ? spreadMove(p, true) : undefined;
    if (move) addLearner(p, move.target, 'rebalance', move.leaving);
    else if (spreadMove(p, false)) pending = true; // its emptier zone's nodes are busy building, or the budget is spent
  }

  if (!pending) rebalanceReplicas(ctx, parts, acted, eff, () => budget, addLearner);
  balancePrimaries(ctx, parts, acted, actions);

  return { actions, degraded, noQuorum, drainBlocked };
}

/**
 * Replicas move from the most loaded ready node to the least loaded one while they differ by more than one (this
 * service's replicas plus other services'), counting what moves under way will leave. A move is planned only when
 * the replica on the loaded node is the one the partition will drop once the learner is promoted, and spread then is
 * no worse; each move lowers the sum of squared loads, so rebalancing ends.
 */
function rebalanceReplicas(ctx: Ctx, parts: readonly Part[], acted: ReadonlySet<number>, eff: Map<string, number>, budget: () => number,
  addLearner: (p: Part, node: string, reason: AddReason, leaving: string | undefined) => void): void {
  if (ctx.ready.length < 2) return;
  const byNode = new Map<string, Part[]>();
  for (const p of parts) {
    if (!settled(ctx, p) || acted.has(p.partition)) continue;
    for (const n of p.keepers) {
      if (ctx.statusOf(n) !== 'ready') continue;
      const list = byNode.get(n) ?? [];
      list.push(p);
      byNode.set(n, list);
    }
  }
  const moved = new Set<number>();
  while (budget() > 0) {
    const load = (n: string): number => get(eff, n);
    const desc = [...ctx.ready].sort((a, b) => load(b) - load(a) || byId(a, b));
    const asc = [...ctx.ready].sort((a, b) => load(a) - load(b) || byId(a, b));
    if (load(desc[0]!) - load(asc[0]!) <= 1) return;
    const rankOf = new Map(asc.map((n, i) => [n, i]));
    const ascByZone = new Map<string, string[]>();
    for (const n of asc) {
      const list = ascByZone.get(ctx.zoneOf(n)) ?? [];
      list.push(n);
      ascByZone.set(ctx.zoneOf(n), list);
    }
    let done = false;
    for (const from of desc) {
      if (load(from) - load(asc[0]!) <= 1) return;
      // For each partition on `from`, the lightest node it could move there to; the lightest of those wins, then the
      // smallest partition number. Whether a partition drops its member on `from` for a learner depends on the
      // learner's zone only (the learner, two lighter, never goes first), so zones are tried whole.
      let best: { p: Part; to: string; rank: number } | undefined;
      for (const p of byNode.get(from) ?? []) {
        if (moved.has(p.partition)) continue;
        for (const [zone, nodes] of ascByZone) {
          for (const to of nodes) {
            const rank = rankOf.get(to)!;
            if ((best !== undefined && rank >= best.rank) || load(from) - load(to) <= 1) break;
            if (p.nodes.has(to) || get(ctx.builds, to) >= LIMITS.partitionMaxBuildsPerNode) continue;
            if (dropsFor(ctx, p, from, zone, load)) best = { p, to, rank };
            break;
          }
        }
      }
      if (best) {
        addLearner(best.p, best.to, 'rebalance', from);
        moved.add(best.p.partition);
        done = true;
        break;
      }
    }
    if (!done) return;
  }
}

/**
 * Whether `from` is the member a settled partition drops once a learner in `zone`, lighter than it, has joined: the
 * choice worstOf makes on the keepers and the learner, without building the set.
 */
function dropsFor(ctx: Ctx, p: Part, from: string, zone: string, load: (node: string) => number): boolean {
  const counts = zoneCounts(ctx, p.keepers);
  bump(counts, zone, 1);
  if (get(counts, ctx.zoneOf(from)) < get(counts, zone)) return false;
  for (const m of p.keepers) {
    if (m !== from && ctx.statusOf(m) === 'ready' && isWorse(ctx, counts, p.primary, load, m, from)) return false;
  }
  return true;
}

/**
 * Primaries move (a cheap leadership transfer) off a ready node leading more than ceil(primaries / ready nodes) + 1
 * partitions, all services counted, to the partition's caught-up voter on the ready node leading the fewest, and only
 * when the two differ by two or more: each transfer lowers the sum of squares, so transfers end and never swing back.
 */
function balancePrimaries(ctx: Ctx, parts: readonly Part[], acted: Set<number>, actions: PlacementAction[]): void {
  if (ctx.ready.length < 2) return;
  let total = 0;
  for (const n of ctx.ready) total += get(ctx.primaries, n);
  const cap = Math.ceil(total / ctx.ready.length) + 1;
  const led = new Map<string, Part[]>();
  for (const p of parts) {
    if (p.primary === undefined || !p.quorum || p.view.changing || acted.has(p.partition)) continue;
    const list = led.get(p.primary) ?? [];
    list.push(p);
    led.set(p.primary, list);
  }
  for (;;) {
    const over = ctx.ready.filter((n) => get(ctx.primaries, n) > cap).sort((a, b) => get(ctx.primaries, b) - get(ctx.primaries, a) || byId(a, b));
    let moved = false;
    search: for (const from of over) {
      for (const p of led.get(from) ?? []) {
        if (acted.has(p.partition)) continue;
        const to = transferTarget(ctx, p, from);
        if (to === undefined || get(ctx.primaries, from) - get(ctx.primaries, to) < 2) continue;
        actions.push(transferPrimary(ctx, p, to, 'rebalance'));
        acted.add(p.partition);
        moved = true;
        break search;
      }
    }
    if (!moved) return;
  }
}

/**
 * The members of a new service's partitions. Replicas are placed round by round (every partition's first replica,
 * then every second one...), each on a ready node not yet in the partition, in the failure domain holding the fewest
 * of its replicas, then on the least loaded node, then by id; then each partition's primary is the member leading the
 * fewest partitions. With fewer ready nodes than `replicas`, a partition gets what fits and is listed in `degraded`
 * (as Service Fabric places what it can and reports the partition below its target); `planPlacement` adds the rest as
 * nodes join. With no ready node at all nothing can be created.
 */
export function initialPlacement(input: InitialPlacementInput): InitialPlacementResult {
  validateCommon(input.replicas, input.nodes);
  invariant(Number.isSafeInteger(input.partitions) && input.partitions >= 1 && input.partitions <= LIMITS.partitionsMaxPerService,
    `placement: partitions must be from 1 to ${LIMITS.partitionsMaxPerService}, got ${input.partitions}`);
  const ctx = makeCtx(input.replicas, input.spread, input.nodes, input.load ?? {});
  if (ctx.ready.length === 0) {
    return { ok: false, code: 'ERR_NO_READY_NODE', message: 'no ready node to place the partitions on: wait for a node to join, or make one eligible' };
  }
  const members: string[][] = Array.from({ length: input.partitions }, () => []);
  for (let round = 0; round < input.replicas; round++) {
    for (const set of members) {
      const target = bestTarget(ctx, new Set(set), set, (n) => get(ctx.replicas, n), false);
      if (target === undefined) continue;
      set.push(target);
      bump(ctx.replicas, target, 1);
    }
  }
  const partitions = members.map((set, partition): InitialPartition => {
    let primary = set[0]!;
    for (const n of set) {
      const d = get(ctx.primaries, n) - get(ctx.primaries, primary);
      if (d < 0 || (d === 0 && n < primary)) primary = n;
    }
    bump(ctx.primaries, primary, 1);
    return { partition, members: [...set].sort(byId), primary };
  });
  const degraded = partitions.filter((p) => p.members.length < input.replicas).map((p) => p.partition);
  return { ok: true, partitions, degraded };
}
