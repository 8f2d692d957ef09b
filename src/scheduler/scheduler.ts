/**
 * The scheduler: a pure function from (cluster state, evaluation) to a plan. No I/O, no clock; randomness only from
 * the seeded Random it is given, so the same inputs always give the same plan.
 *
 * For one job it reconciles what should run with what does, per service:
 *   - allocations on nodes that are down or gone are stopped as lost and replaced; on draining nodes, stopped and
 *     replaced; failed ones replaced when the restart policy allows; ones of an older job version replaced;
 *     slots beyond the replica count stopped; duplicates of a slot (after a partition) stopped;
 *   - missing slots are placed: replicated services fill slots 0..N-1, global services one per eligible node,
 *     stateful services slots 0..partitions×replicas-1 (slot s is a replica of partition ⌊s / replicas⌋), never two
 *     live replicas of a partition on one node, spread per partition across `state.spread`, and the first placement
 *     of a partition names the nodes that bootstrap its Raft group (README.md, "Stateful services").
 * Placement filters nodes (ready, eligible, driver, constraints: checked once per service), then walks a seeded
 * random order of the feasible nodes and scores the first `candidateLimit` that have room (max_replicas_per_node,
 * CPU, memory), keeping the best: bin-packing as Nomad scores it, anti-affinity between replicas of a service, and
 * even spread across the values of a label. Looking at a few random candidates instead of every node is what keeps a
 * placement O(1) in the number of nodes (Nomad's "limit" iterator; the power of two choices).
 */
import type { Random } from '../lib/random.js';
import { newId } from '../lib/ids.js';
import { LIMITS } from '../lib/limits.js';
import type { Constraint, Resources, ServiceSpec } from '../jobspec/types.js';
import type { Plan, PlannedAllocation, PlannedStop } from '../state/commands.js';
import { isStoreOnly, type Allocation, type Evaluation, type JobRecord, type NodeRecord } from '../state/types.js';
import { portsOf, takePorts, takenPort } from '../state/cluster-state.js';

/** What the scheduler reads. `ClusterState` implements it. */
export interface StateView {
  readonly index: number;
  job(name: string): JobRecord | undefined;
  node(id: string): NodeRecord | undefined;
  /**
   * Every node. The scheduler memoises what it derives from this list (feasible nodes, spread groups) by the
   * list's identity, so a new array must be returned whenever any node changes, and the array never modified.
   */
  nodes(): NodeRecord[];
  allocationsOfJob(jobName: string): Allocation[];
  usage(nodeId: string): Resources;
  /** The allocation holding a host port ("8080/tcp") on a node, if any. */
  portHolder(nodeId: string, port: string): string | undefined;
  /** Whether a partition of a stateful service was bootstrapped already (its later replicas join its group). */
  partitionBootstrapped(jobName: string, service: string, partition: number): boolean;
}

export interface SchedulerOptions {
  /** Feasible nodes with room that are scored per placement; more is slower and packs slightly better. */
  candidateLimit: number;
}

export const DEFAULT_SCHEDULER_OPTIONS: SchedulerOptions = { candidateLimit: 4 };

const NOTHING: Resources = { cpuMillicores: 0, memoryBytes: 0 };

/**
 * The resources a placement reserves: the reservations when any are set, else the limits. A replicated store (a
 * stateful service without a task) reserves only what it reserves explicitly: its replicas run inside the agent,
 * whose own cost they are, and its limits limit no task.
 */
export function requestOf(spec: ServiceSpec): Resources {
  const r = spec.deploy.resources.reservations;
  if (r.cpuMillicores > 0 || r.memoryBytes > 0) return r;
  return isStoreOnly(spec) ? NOTHING : spec.deploy.resources.limits;
}

/** Why a node is passed over for a replica of a partition that already has one there. */
export const SAME_PARTITION = 'a replica of this partition is already on the node';

export function nodeAttribute(node: NodeRecord, attribute: string): string | undefined {
  if (attribute === 'node.name') return node.name;
  if (attribute === 'node.id') return node.id;
  if (attribute === 'node.role') return node.roles.includes('leader') ? 'leader' : node.roles.includes('voter') ? 'voter' : 'worker';
  if (attribute.startsWith('node.labels.')) return node.labels[attribute.slice('node.labels.'.length)];
  return undefined;
}

export function satisfies(node: NodeRecord, c: Constraint): boolean {
  const v = nodeAttribute(node, c.attribute);
  return c.op === '==' ? v === c.value : v !== c.value;
}

type Reasons = Record<string, number>;

function count(reasons: Reasons, reason: string, n = 1): void {
  reasons[reason] = (reasons[reason] ?? 0) + n;
}

/** Why a node can never take this service (independent of current load), or undefined. */
function staticReject(node: NodeRecord, spec: ServiceSpec): string | undefined {
  if (node.status !== 'ready') return 'node not ready';
  if (!node.eligible) return node.draining ? 'node draining' : 'node ineligible';
  if (!isStoreOnly(spec) && !node.drivers.includes(spec.driver)) return `driver ${spec.driver} unavailable`;
  for (const c of spec.deploy.placement.constraints) if (!satisfies(node, c)) return `constraint ${c.attribute}${c.op}${c.value}`;
  return undefined;
}

interface Overlay {
  /** Resources added (placements) minus freed (stops) on each node by this plan. */
  delta: Map<string, Resources>;
  /** Allocations this plan stops (their host ports are free for its placements). */
  stopped: Set<string>;
  /** Host ports this plan's placements take, per node. */
  ports: Map<string, Set<string>>;
}


function freeOn(view: StateView, overlay: Overlay, node: NodeRecord): Resources {
  const used = view.usage(node.id);
  const d = overlay.delta.get(node.id);
  return {
    cpuMillicores: node.capacity.cpuMillicores - used.cpuMillicores - (d?.cpuMillicores ?? 0),
    memoryBytes: node.capacity.memoryBytes - used.memoryBytes - (d?.memoryBytes ?? 0),
  };
}

function shift(overlay: Overlay, nodeId: string, r: Resources, sign: 1 | -1): void {
  const d = overlay.delta.get(nodeId) ?? { cpuMillicores: 0, memoryBytes: 0 };
  overlay.delta.set(nodeId, { cpuMillicores: d.cpuMillicores + sign * r.cpuMillicores, memoryBytes: d.memoryBytes + sign * r.memoryBytes });
}

/** Nomad's bin-packing fit: higher when the node would be fuller after the placement (0..1). */
function binPackScore(node: NodeRecord, freeAfter: Resources): number {
  const pct = (free: number, cap: number): number => (cap <= 0 ? 0 : Math.min(1, Math.max(0, free / cap)));
  const total = 10 ** pct(freeAfter.cpuMillicores, node.capacity.cpuMillicores) + 10 ** pct(freeAfter.memoryBytes, node.capacity.memoryBytes);
  return (20 - total) / 18;
}

export function computePlan(view: StateView, evaluation: Evaluation, random: Random, options: SchedulerOptions = DEFAULT_SCHEDULER_OPTIONS): Plan | undefined {
  const rec = view.job(evaluation.jobName);
  if (!rec) return undefined;
  const plan: Plan = { evalId: evaluation.id, jobName: rec.job.name, jobVersion: rec.version, baseIndex: view.index, placements: [], stops: [], failedPlacements: {} };
  const overlay: Overlay = { delta: new Map(), stopped: new Set(), ports: new Map() };
  const nodes = view.nodes();
  const nodeById = (id: string): NodeRecord | undefined => view.node(id);
  const allocs = view.allocationsOfJob(rec.job.name).filter((a) => a.desiredStatus === 'run');
  const stop = (a: Allocation, reason: string, markLost = false): void => {
    plan.stops.push({ allocId: a.id, reason, markLost } satisfies PlannedStop);
    overlay.stopped.add(a.id);
    if (a.clientStatus !== 'complete' && a.clientStatus !== 'failed' && a.clientStatus !== 'lost') shift(overlay, a.nodeId, a.resources, -1);
  };
  if (rec.stopped) {
    for (const a of allocs) stop(a, 'job stopped');
    return plan;
  }
  const byService = new Map<string, Allocation[]>();
  for (const a of allocs) {
    const list = byService.get(a.service) ?? [];
    list.push(a);
    byService.set(a.service, list);
  }
  for (const [service, list] of byService) {
    if (!rec.job.services.some((s) => s.name === service)) for (const a of list) stop(a, 'service removed from the job');
  }
  for (const spec of rec.job.services) {
    scheduleService(view, rec, spec, byService.get(spec.name) ?? [], nodes, nodeById, overlay, plan, stop, random, options);
  }
  return plan;
}

function scheduleService(
  view: StateView,
  rec: JobRecord,
  spec: ServiceSpec,
  current: Allocation[],
  nodes: NodeRecord[],
  nodeById: (id: string) => NodeRecord | undefined,
  overlay: Overlay,
  plan: Plan,
  stop: (a: Allocation, reason: string, markLost?: boolean) => void,
  random: Random,
  options: SchedulerOptions,
): void {
  const batch = rec.job.type === 'batch';
  const policy = spec.deploy.restartPolicy.condition;
  const state = spec.state;
  const keep: Allocation[] = [];
  const replace: Allocation[] = [];
  // Deterministic order: slot, then age.
  const sorted = [...current].sort((a, b) => a.slot - b.slot || a.createIndex - b.createIndex || (a.id < b.id ? -1 : 1));
  for (const a of sorted) {
    const node = nodeById(a.nodeId);
    if (!node || node.status !== 'ready') {
      stop(a, node ? `node ${node.name} is ${node.status}` : 'node is gone', true);
      replace.push(a);
    } else if (node.draining) {
      stop(a, `node ${node.name} is draining`);
      replace.push(a);
    } else if (a.clientStatus === 'lost') {
      stop(a, 'lost', true);
      replace.push(a);
    } else if (a.clientStatus === 'failed') {
      // The node already applied the restart policy; a replacement elsewhere is tried a bounded number of times.
      if (policy !== 'none' && (a.reschedules ?? 0) < LIMITS.schedulerMaxReschedules) {
        stop(a, 'failed');
        replace.push(a);
      } else keep.push(a); // counted as done: the user asked for no restarts
    } else if (a.clientStatus === 'complete') {
      if (!batch && policy === 'any') {
        stop(a, 'completed; restart policy is any');
        replace.push(a);
      } else keep.push(a);
    } else if (state === undefined && a.jobVersion < (rec.serviceVersions[spec.name] ?? rec.version)) {
      // (A replica of a stateful service is never replaced for a new version: its data lives on its node.)
      stop(a, `job updated to version ${rec.version}`);
      replace.push(a);
    } else if (!spec.deploy.placement.constraints.every((c) => satisfies(node, c))) {
      stop(a, `node ${node.name} no longer satisfies the constraints`);
      replace.push(a);
    } else {
      keep.push(a);
    }
  }
  const request = requestOf(spec);
  const ports = portsOf(spec);
  const global = spec.deploy.mode === 'global' && state === undefined;
  // The nodes that can ever take this service (ready, eligible, driver, constraints), computed once per node table
  // and service shape and shared by every plan until a node changes; the walk then only meets candidates.
  const feasible = feasibleNodes(nodes, spec);
  // Kept allocations are never lost (those are replaced): the live ones are the ones not finished.
  const liveKept = (a: Allocation): boolean => a.clientStatus !== 'complete' && a.clientStatus !== 'failed';
  // Replicas of this service per node, counting what is kept and what this plan places.
  const perNode = new Map<string, number>();
  for (const a of keep) if (liveKept(a)) perNode.set(a.nodeId, (perNode.get(a.nodeId) ?? 0) + 1);
  // A stateful service: per partition, the nodes of its live replicas (kept, then placed by this plan), and their
  // failure domains (values of the `state.spread` label; a node without it is in the domain "").
  const replicasPerPartition = state?.replicas ?? 1;
  const partitionOf = (slot: number): number => Math.floor(slot / replicasPerPartition);
  const holders = new Map<number, Set<string>>();
  const domains = new Map<number, Set<string>>();
  const spreadKey = state?.spread;
  const domainOf = (node: NodeRecord): string => (spreadKey === undefined ? '' : node.labels[spreadKey] ?? '');
  const hold = (partition: number, node: NodeRecord): void => {
    let on = holders.get(partition);
    if (!on) holders.set(partition, (on = new Set()));
    on.add(node.id);
    let used = domains.get(partition);
    if (!used) domains.set(partition, (used = new Set()));
    used.add(domainOf(node));
  };
  const wanted: { slot: number; previous: string; reschedules: number; node?: NodeRecord }[] = [];
  const successor = (prev: Allocation | undefined): { previous: string; reschedules: number } => ({
    previous: prev?.id ?? '',
    reschedules: prev ? (prev.reschedules ?? 0) + (prev.clientStatus === 'failed' ? 1 : 0) : 0,
  });
  if (global) {
    const feasibleIds = new Set(feasible.pool.map((n) => n.id));
    const covered = new Set(keep.map((a) => a.nodeId));
    for (const a of keep) {
      if (!feasibleIds.has(a.nodeId)) stop(a, 'node no longer eligible for this global service');
    }
    for (const n of feasible.pool) if (!covered.has(n.id)) wanted.push({ slot: 0, ...successor(replace.find((r) => r.nodeId === n.id)), node: n });
  } else {
    const n = state ? state.partitions * state.replicas : spec.deploy.replicas;
    const seen = new Set<number>();
    for (const a of keep) {
      if (a.slot >= n) stop(a, state ? `replica ${a.slot} is beyond the ${state.partitions} partitions × ${state.replicas} replicas` : `scaled down to ${n}`);
      else if (seen.has(a.slot)) stop(a, `duplicate of replica ${a.slot}`);
      else if (state && liveKept(a) && holders.get(partitionOf(a.slot))?.has(a.nodeId)) {
        // No plan makes this (the state machine refuses it); should it exist, the replica moves rather than share.
        stop(a, `another replica of partition ${partitionOf(a.slot)} is on node ${nodeById(a.nodeId)?.name ?? a.nodeId}`);
        replace.push(a);
      } else {
        seen.add(a.slot);
        if (state && liveKept(a)) hold(partitionOf(a.slot), nodeById(a.nodeId)!);
      }
    }
    for (let slot = 0; slot < n; slot++) {
      if (!seen.has(slot)) wanted.push({ slot, ...successor(replace.find((r) => r.slot === slot)) });
    }
  }
  if (wanted.length === 0) return;
  // Partitions placed before: the ones with a live replica kept, and the ones a replacement is placed for.
  const placedBefore = new Set(holders.keys());
  for (const w of wanted) if (state && w.previous !== '') placedBefore.add(partitionOf(w.slot));
  const maxPerNode = spec.deploy.placement.maxReplicasPerNode;
  // The anti-affinity penalty is relative to the replicas wanted. A stateful service's replicas cost their agents what
  // no reservation shows (Raft traffic, disk, a primary's work): they are spread as if each partition were a service.
  const desired = Math.max(1, state ? state.replicas : global ? 1 : spec.deploy.replicas);
  const failReasons: Reasons = {};
  /**
   * A failed walk's reasons. A stateless service fails one walk at most per plan; a stateful one may fail one per
   * partition, over the same nodes, so the largest count of each reason is kept: reasons still count nodes.
   */
  const addReasons = (why: Reasons): void => {
    for (const [reason, n] of Object.entries(why)) {
      if (state) failReasons[reason] = Math.max(failReasons[reason] ?? 0, n);
      else count(failReasons, reason, n);
    }
  };
  /** Set when a failed walk passed over a node for holding a replica of the partition being placed. */
  let passedOverSame = false;
  /**
   * The best of the first `candidateLimit` nodes with room met on `w`, or undefined when none of its nodes has room;
   * then every node of the walk was visited, and why each one could not take the replica is added to the reasons
   * (so they count nodes, as Nomad's do). `same` are nodes that hold a replica of the partition being placed; only
   * nodes `admit` accepts are considered, and a walk that admits some only is a preference: its failure says nothing.
   */
  const pickFrom = (w: NodeWalk, same?: ReadonlySet<string>, admit?: (node: NodeRecord) => boolean): NodeRecord | undefined => {
    const why: Reasons = {};
    let chosen: NodeRecord | undefined;
    let bestScore = -Infinity;
    let found = 0;
    for (let visited = 0; visited < w.size && found < options.candidateLimit; visited++) {
      const node = w.next();
      if (node === undefined) continue;
      if (admit !== undefined && !admit(node)) continue;
      if (same?.has(node.id)) {
        count(why, SAME_PARTITION);
        continue;
      }
      const onNode = perNode.get(node.id) ?? 0;
      if (maxPerNode > 0 && onNode >= maxPerNode) {
        count(why, 'max_replicas_per_node reached');
        continue;
      }
      const free = freeOn(view, overlay, node);
      if (free.cpuMillicores < request.cpuMillicores) {
        count(why, 'resources: cpu exhausted');
        continue;
      }
      const port = takenPort(view, node.id, ports, overlay.stopped, overlay.ports);
      if (port !== undefined) {
        count(why, `port ${port} in use`);
        continue;
      }
      if (free.memoryBytes < request.memoryBytes) {
        count(why, 'resources: memory exhausted');
        continue;
      }
      found++;
      let score = binPackScore(node, { cpuMillicores: free.cpuMillicores - request.cpuMillicores, memoryBytes: free.memoryBytes - request.memoryBytes });
      if (onNode > 0) score = (score - (onNode + 1) / desired) / 2;
      if (score > bestScore) {
        chosen = node;
        bestScore = score;
      }
    }
    if (!chosen && admit === undefined) {
      addReasons(why);
      if (why[SAME_PARTITION] !== undefined) passedOverSame = true;
    }
    return chosen;
  };
  // Swarm's spread groups fill up for good within a plan, except for a stateful service: a group whose nodes all hold
  // a replica of one partition may still take another partition's.
  const spread = !global && spec.deploy.placement.spread.length > 0
    ? new SpreadTree(feasible.pool, spec.deploy.placement.spread, 0, (pool) => new NodeWalk(pool, random), state === undefined)
    : undefined;
  let walk: NodeWalk | undefined;
  if (spread) {
    for (const a of keep) {
      const node = nodeById(a.nodeId);
      if (node && liveKept(a)) spread.add(node);
    }
  }
  let missing = 0;
  // Within a plan, room only shrinks: once a replica finds no node, the ones after it cannot either.
  let full = false;
  /**
   * A replica of `partition`: on a node without one of its replicas, and with `state.spread`, preferably in a failure
   * domain it is not in yet (among the domains the feasible nodes offer); any allowed node when none of those has room.
   */
  const placeReplica = (partition: number): NodeRecord | undefined => {
    const same = holders.get(partition);
    const choose = (admit?: (node: NodeRecord) => boolean): NodeRecord | undefined => {
      const pick = (w: NodeWalk): NodeRecord | undefined => pickFrom(w, same, admit);
      return spread ? spread.choose(pick) : pick((walk ??= new NodeWalk(feasible.pool, random)));
    };
    const used = domains.get(partition);
    if (spreadKey !== undefined && used !== undefined && [...groupBy(feasible.pool, `node.labels.${spreadKey}`).keys()].some((v) => !used.has(v === MISSING ? '' : v))) {
      const chosen = choose((node) => !used.has(domainOf(node)));
      if (chosen) return chosen;
    }
    passedOverSame = false;
    const chosen = choose();
    // No node was passed over for holding this partition: every node is out of room, for every partition.
    if (!chosen && !passedOverSame) full = true;
    return chosen;
  };
  // Partitions that found no node: their nodes only fill up within a plan, so their other replicas cannot either.
  const stuck = new Set<number>();
  const placedOf = new Map<number, PlannedAllocation[]>();
  for (const w of wanted) {
    let chosen: NodeRecord | undefined;
    const partition = state ? partitionOf(w.slot) : undefined;
    if (w.node) {
      const free = freeOn(view, overlay, w.node);
      const port = takenPort(view, w.node.id, ports, overlay.stopped, overlay.ports);
      if (free.cpuMillicores < request.cpuMillicores) count(failReasons, 'resources: cpu exhausted');
      else if (free.memoryBytes < request.memoryBytes) count(failReasons, 'resources: memory exhausted');
      else if (port !== undefined) count(failReasons, `port ${port} in use`);
      else chosen = w.node;
    } else if (partition !== undefined) {
      if (!full && !stuck.has(partition)) {
        chosen = placeReplica(partition);
        if (!chosen) stuck.add(partition);
      }
    } else if (!full) {
      chosen = spread ? spread.choose(pickFrom) : pickFrom((walk ??= new NodeWalk(feasible.pool, random)));
      full = chosen === undefined;
    }
    if (!chosen) {
      missing++;
      continue;
    }
    const placed: PlannedAllocation = {
      id: newId(random),
      jobName: rec.job.name,
      jobVersion: rec.version,
      service: spec.name,
      slot: w.slot,
      ...(partition !== undefined ? { partition } : {}),
      nodeId: chosen.id,
      resources: request,
      ...(ports.length > 0 ? { ports } : {}),
      previousAllocId: w.previous,
      reschedules: w.reschedules,
    };
    plan.placements.push(placed);
    shift(overlay, chosen.id, request, 1);
    takePorts(overlay.ports, chosen.id, ports);
    perNode.set(chosen.id, (perNode.get(chosen.id) ?? 0) + 1);
    if (partition !== undefined) {
      hold(partition, chosen);
      const list = placedOf.get(partition);
      if (list) list.push(placed);
      else placedOf.set(partition, [placed]);
    }
  }
  // A partition placed for the first time: its replicas placed together bootstrap its Raft group, each with the same
  // list of members. Any later replica (a replacement, one that found no room before) joins the group instead, so a
  // partition that lost every replica is never re-created empty.
  for (const [partition, list] of placedOf) {
    if (placedBefore.has(partition) || view.partitionBootstrapped(rec.job.name, spec.name, partition)) continue;
    const members = list.map((p) => p.nodeId).sort();
    for (const p of list) p.bootstrap = [...members];
  }
  if (missing > 0) {
    for (const [why, n] of Object.entries(feasible.rejected)) count(failReasons, why, n);
    if (nodes.length === 0) count(failReasons, 'no nodes');
    plan.failedPlacements[spec.name] = { missing, reasons: failReasons };
  }
}

const MISSING = '\u0000missing';
const groupCache = new WeakMap<NodeRecord[], Map<string, Map<string, NodeRecord[]>>>();

/**
 * The nodes of a list grouped by their value of an attribute (nodes without it in one group of their own, as
 * Swarm does), memoised per list: the state rebuilds its node list when a node changes, and the groups, being
 * memoised lists themselves, memoise their own sub-groups.
 */
function groupBy(nodes: NodeRecord[], attribute: string): Map<string, NodeRecord[]> {
  let byAttr = groupCache.get(nodes);
  if (!byAttr) groupCache.set(nodes, (byAttr = new Map()));
  let groups = byAttr.get(attribute);
  if (!groups) {
    groups = new Map();
    for (const n of nodes) {
      const v = nodeAttribute(n, attribute) ?? MISSING;
      const g = groups.get(v);
      if (g) g.push(n);
      else groups.set(v, [n]);
    }
    byAttr.set(attribute, groups);
  }
  return groups;
}

/**
 * Placement preferences as Swarm applies them: replicas are divided evenly among the values of the first spread
 * attribute, then within each value among the values of the next, and so on; nodes are scored only inside the
 * group chosen. A replica goes to the group with the fewest replicas that still has a node with room (ties: the
 * group that received one least recently, first by value name), so the spread is even whenever capacity allows,
 * and a group that has no room left is passed over for the rest of the plan (with `prune`; without it, a group that
 * could not take one replica is tried again for the next, which a stateful service needs: see scheduleService).
 */
class SpreadTree {
  /** Children by value, bucketed by replica count; a bucket's insertion order breaks ties. */
  readonly #buckets = new Map<number, Set<string>>();
  readonly #counts = new Map<string, number>();
  readonly #children = new Map<string, SpreadTree>();
  readonly #groups: Map<string, NodeRecord[]> | undefined;
  #walk: NodeWalk | undefined;

  constructor(
    private readonly pool: NodeRecord[],
    private readonly attributes: readonly string[],
    private readonly depth: number,
    private readonly makeWalk: (pool: NodeRecord[]) => NodeWalk,
    private readonly prune = true,
  ) {
    if (depth < attributes.length) {
      this.#groups = groupBy(pool, attributes[depth]!);
      for (const v of [...this.#groups.keys()].sort()) this.#counts.set(v, 0);
      this.#buckets.set(0, new Set(this.#counts.keys()));
    }
  }

  /** Counts a replica already on `node` (one of this tree's nodes). */
  add(node: NodeRecord): void {
    if (!this.#groups) return;
    const v = nodeAttribute(node, this.attributes[this.depth]!) ?? MISSING;
    if (!this.#counts.has(v)) return;
    this.#bump(v);
    this.#child(v).add(node);
  }

  /** The node for the next replica, or undefined when no group has room. */
  choose(pickFrom: (walk: NodeWalk) => NodeRecord | undefined): NodeRecord | undefined {
    if (!this.#groups) return pickFrom((this.#walk ??= this.makeWalk(this.pool)));
    for (const c of [...this.#buckets.keys()].sort((a, b) => a - b)) {
      const bucket = this.#buckets.get(c)!;
      for (const v of bucket) {
        const node = this.#child(v).choose(pickFrom);
        if (node) {
          this.#bump(v);
          return node;
        }
        if (!this.prune) continue;
        // Nothing in this group has room, and nothing in a plan frees room: it is full for the rest of the plan.
        bucket.delete(v);
        this.#counts.delete(v);
      }
      if (bucket.size === 0) this.#buckets.delete(c);
    }
    return undefined;
  }

  #child(v: string): SpreadTree {
    let child = this.#children.get(v);
    if (!child) this.#children.set(v, (child = new SpreadTree(this.#groups!.get(v)!, this.attributes, this.depth + 1, this.makeWalk, this.prune)));
    return child;
  }

  #bump(v: string): void {
    const c = this.#counts.get(v)!;
    const from = this.#buckets.get(c)!;
    from.delete(v);
    if (from.size === 0) this.#buckets.delete(c);
    let to = this.#buckets.get(c + 1);
    if (!to) this.#buckets.set(c + 1, (to = new Set()));
    to.add(v);
    this.#counts.set(v, c + 1);
  }
}

/**
 * A seeded random walk over a pool of nodes that never repeats a node before it has visited them all: a
 * Fisher-Yates shuffle done lazily, one swap per step, so a walk that stops after a few nodes costs a few steps.
 */
class NodeWalk {
  readonly #perm: Uint32Array;
  #shuffled = 0;
  #cursor = 0;

  constructor(readonly pool: NodeRecord[], private readonly random: Random) {
    this.#perm = new Uint32Array(pool.length);
    for (let i = 0; i < pool.length; i++) this.#perm[i] = i;
  }

  get size(): number {
    return this.pool.length;
  }

  next(): NodeRecord | undefined {
    const n = this.pool.length;
    if (n === 0) return undefined;
    const at = this.#cursor;
    if (at === this.#shuffled && this.#shuffled < n) {
      const j = at + this.random.int(n - at);
      const tmp = this.#perm[at]!;
      this.#perm[at] = this.#perm[j]!;
      this.#perm[j] = tmp;
      this.#shuffled++;
    }
    this.#cursor = (at + 1) % n;
    return this.pool[this.#perm[at]!];
  }
}

interface Feasible {
  /** The nodes that pass every static check, in the node table's order. */
  pool: NodeRecord[];
  /** How many nodes failed each check (reported with a placement failure). */
  rejected: Reasons;
}

const feasibleCache = new WeakMap<NodeRecord[], Map<string, Feasible>>();

/**
 * The nodes that can ever run `spec`, memoised per node list (the state rebuilds it when a node changes) and per
 * shape (driver and constraints): jobs of the same shape share one scan of the node table. At most
 * LIMITS.schedulerFeasibilityCacheShapes shapes are kept per node list.
 */
function feasibleNodes(nodes: NodeRecord[], spec: ServiceSpec): Feasible {
  let byShape = feasibleCache.get(nodes);
  if (!byShape) feasibleCache.set(nodes, (byShape = new Map()));
  const shape = `${isStoreOnly(spec) ? '' : spec.driver}\u0000${spec.deploy.placement.constraints.map((c) => `${c.attribute}${c.op}${c.value}`).join('\u0000')}`;
  let f = byShape.get(shape);
  if (!f) {
    f = { pool: [], rejected: {} };
    for (const n of nodes) {
      const why = staticReject(n, spec);
      if (why === undefined) f.pool.push(n);
      else count(f.rejected, why);
    }
    if (byShape.size >= LIMITS.schedulerFeasibilityCacheShapes) byShape.clear();
    byShape.set(shape, f);
  }
  return f;
}

