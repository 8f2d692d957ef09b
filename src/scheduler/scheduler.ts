/**
 * The scheduler: a pure function from (cluster state, evaluation) to a plan. No I/O, no clock; randomness only from
 * the seeded Random it is given, so the same inputs always give the same plan.
 *
 * For one job it reconciles what should run with what does, per service:
 *   - allocations on nodes that are down or gone are stopped as lost and replaced; on draining nodes, stopped and
 *     replaced; failed ones replaced when the restart policy allows; ones of an older job version replaced;
 *     slots beyond the replica count stopped; duplicates of a slot (after a partition) stopped;
 *   - missing slots are placed: replicated services fill slots 0..N-1, global services one per eligible node.
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
import type { Allocation, Evaluation, JobRecord, NodeRecord } from '../state/types.js';

/** What the scheduler reads. `ClusterState` implements it. */
export interface StateView {
  readonly index: number;
  job(name: string): JobRecord | undefined;
  node(id: string): NodeRecord | undefined;
  nodes(): NodeRecord[];
  allocationsOfJob(jobName: string): Allocation[];
  usage(nodeId: string): Resources;
}

export interface SchedulerOptions {
  /** Feasible nodes with room that are scored per placement; more is slower and packs slightly better. */
  candidateLimit: number;
}

export const DEFAULT_SCHEDULER_OPTIONS: SchedulerOptions = { candidateLimit: 4 };

/** The resources a placement reserves: the reservations when any are set, else the limits. */
export function requestOf(spec: ServiceSpec): Resources {
  const r = spec.deploy.resources.reservations;
  return r.cpuMillicores > 0 || r.memoryBytes > 0 ? r : spec.deploy.resources.limits;
}

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
  if (!node.drivers.includes(spec.driver)) return `driver ${spec.driver} unavailable`;
  for (const c of spec.deploy.placement.constraints) if (!satisfies(node, c)) return `constraint ${c.attribute}${c.op}${c.value}`;
  return undefined;
}

interface Overlay {
  /** Resources added (placements) minus freed (stops) on each node by this plan. */
  delta: Map<string, Resources>;
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
  const overlay: Overlay = { delta: new Map() };
  const nodes = view.nodes();
  const nodeById = (id: string): NodeRecord | undefined => view.node(id);
  const allocs = view.allocationsOfJob(rec.job.name).filter((a) => a.desiredStatus === 'run');
  const stop = (a: Allocation, reason: string, markLost = false): void => {
    plan.stops.push({ allocId: a.id, reason, markLost } satisfies PlannedStop);
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
    } else if (a.jobVersion < (rec.serviceVersions[spec.name] ?? rec.version)) {
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
  const spreadAttr = spec.deploy.placement.spread[0];
  const global = spec.deploy.mode === 'global';
  // Global services need the whole feasible set; otherwise feasibility is checked lazily, node by node, as the
  // random walk reaches them, so a placement costs a few node visits however large the cluster.
  const fullScan = global;
  const reasons: Reasons = {};
  const walk = new NodeWalk(fullScan ? nodes.filter((n) => {
    const why = staticReject(n, spec);
    if (why !== undefined) count(reasons, why);
    return why === undefined;
  }) : nodes, fullScan ? undefined : spec, reasons, random);
  // Replicas of this service per node and per spread value, counting what is kept and what this plan places.
  const perNode = new Map<string, number>();
  for (const a of keep) if (a.clientStatus !== 'complete' && a.clientStatus !== 'failed') perNode.set(a.nodeId, (perNode.get(a.nodeId) ?? 0) + 1);
  const wanted: { slot: number; previous: string; reschedules: number; node?: NodeRecord }[] = [];
  const successor = (prev: Allocation | undefined): { previous: string; reschedules: number } => ({
    previous: prev?.id ?? '',
    reschedules: prev ? (prev.reschedules ?? 0) + (prev.clientStatus === 'failed' ? 1 : 0) : 0,
  });
  if (global) {
    const feasibleIds = new Set(walk.pool.map((n) => n.id));
    const covered = new Set(keep.map((a) => a.nodeId));
    for (const a of keep) {
      if (!feasibleIds.has(a.nodeId)) stop(a, 'node no longer eligible for this global service');
    }
    for (const n of walk.pool) if (!covered.has(n.id)) wanted.push({ slot: 0, ...successor(replace.find((r) => r.nodeId === n.id)), node: n });
  } else {
    const n = spec.deploy.replicas;
    const seen = new Set<number>();
    for (const a of keep) {
      if (a.slot >= n) stop(a, `scaled down to ${n}`);
      else if (seen.has(a.slot)) stop(a, `duplicate of replica ${a.slot}`);
      else seen.add(a.slot);
    }
    for (let slot = 0; slot < n; slot++) {
      if (!seen.has(slot)) wanted.push({ slot, ...successor(replace.find((r) => r.slot === slot)) });
    }
  }
  if (wanted.length === 0) return;
  const spreadCounts = new Map<string, number>();
  const spreadValues = new Set<string>();
  if (spreadAttr !== undefined) {
    // The values present in the cluster (not only on feasible nodes): the spread score ranks nodes by how many
    // replicas their value already has, and that order does not depend on how many values there are.
    for (const v of distinctValues(nodes, spreadAttr)) spreadValues.add(v);
    for (const a of keep) {
      const node = nodeById(a.nodeId);
      const v = node ? nodeAttribute(node, spreadAttr) : undefined;
      if (v !== undefined) spreadCounts.set(v, (spreadCounts.get(v) ?? 0) + 1);
    }
  }
  const maxPerNode = spec.deploy.placement.maxReplicasPerNode;
  const desired = Math.max(1, global ? 1 : spec.deploy.replicas);
  let missing = 0;
  const failReasons = reasons;
  for (const w of wanted) {
    let chosen: NodeRecord | undefined;
    if (w.node) {
      const free = freeOn(view, overlay, w.node);
      if (free.cpuMillicores >= request.cpuMillicores && free.memoryBytes >= request.memoryBytes) chosen = w.node;
      else count(failReasons, free.cpuMillicores < request.cpuMillicores ? 'resources: cpu exhausted' : 'resources: memory exhausted');
    } else {
      let bestScore = -Infinity;
      let found = 0;
      for (let visited = 0; visited < walk.size && found < options.candidateLimit; visited++) {
        const node = walk.next();
        if (node === undefined) continue;
        const onNode = perNode.get(node.id) ?? 0;
        if (maxPerNode > 0 && onNode >= maxPerNode) {
          count(failReasons, 'max_replicas_per_node reached');
          continue;
        }
        const free = freeOn(view, overlay, node);
        if (free.cpuMillicores < request.cpuMillicores) {
          count(failReasons, 'resources: cpu exhausted');
          continue;
        }
        if (free.memoryBytes < request.memoryBytes) {
          count(failReasons, 'resources: memory exhausted');
          continue;
        }
        found++;
        let score = binPackScore(node, { cpuMillicores: free.cpuMillicores - request.cpuMillicores, memoryBytes: free.memoryBytes - request.memoryBytes });
        let parts = 1;
        if (onNode > 0) {
          score -= (onNode + 1) / desired;
          parts++;
        }
        if (spreadAttr !== undefined && spreadValues.size > 0) {
          const v = nodeAttribute(node, spreadAttr);
          const target = (keep.length + plan.placements.length + 1) / spreadValues.size;
          const have = v === undefined ? target : spreadCounts.get(v) ?? 0;
          score += Math.max(-1, Math.min(1, (target - have) / target));
          parts++;
        }
        score /= parts;
        if (score > bestScore) {
          chosen = node;
          bestScore = score;
        }
      }
      if (walk.size === 0) count(failReasons, 'no nodes');
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
      nodeId: chosen.id,
      resources: request,
      previousAllocId: w.previous,
      reschedules: w.reschedules,
    };
    plan.placements.push(placed);
    shift(overlay, chosen.id, request, 1);
    perNode.set(chosen.id, (perNode.get(chosen.id) ?? 0) + 1);
    if (spreadAttr !== undefined) {
      const v = nodeAttribute(chosen, spreadAttr);
      if (v !== undefined) spreadCounts.set(v, (spreadCounts.get(v) ?? 0) + 1);
    }
  }
  if (missing > 0) plan.failedPlacements[spec.name] = { missing, reasons: failReasons };
}

const distinctCache = new WeakMap<NodeRecord[], Map<string, Set<string>>>();

/** Distinct values of an attribute over a node list, memoised per list (the state rebuilds the list on change). */
function distinctValues(nodes: NodeRecord[], attribute: string): Set<string> {
  let byAttr = distinctCache.get(nodes);
  if (!byAttr) distinctCache.set(nodes, (byAttr = new Map()));
  let values = byAttr.get(attribute);
  if (!values) {
    values = new Set();
    for (const n of nodes) {
      const v = nodeAttribute(n, attribute);
      if (v !== undefined) values.add(v);
    }
    byAttr.set(attribute, values);
  }
  return values;
}

/**
 * A seeded random walk over a pool of nodes that never repeats a node before it has visited them all: a
 * Fisher-Yates shuffle done lazily, one swap per step, so a walk that stops after a few nodes costs a few steps.
 * When `spec` is given, each node is checked for static feasibility the first time it is reached (and the reason
 * for a rejection counted once); rejected nodes are skipped (`next()` returns undefined for them).
 */
class NodeWalk {
  readonly #perm: Uint32Array;
  readonly #verdict: Int8Array;
  #shuffled = 0;
  #cursor = 0;

  constructor(readonly pool: NodeRecord[], private readonly spec: ServiceSpec | undefined, private readonly reasons: Reasons, private readonly random: Random) {
    this.#perm = new Uint32Array(pool.length);
    for (let i = 0; i < pool.length; i++) this.#perm[i] = i;
    this.#verdict = new Int8Array(pool.length);
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
    const idx = this.#perm[at]!;
    const node = this.pool[idx]!;
    if (this.spec === undefined) return node;
    if (this.#verdict[idx] === 0) {
      const why = staticReject(node, this.spec);
      this.#verdict[idx] = why === undefined ? 1 : 2;
      if (why !== undefined) count(this.reasons, why);
    }
    return this.#verdict[idx] === 1 ? node : undefined;
  }
}
