/**
 * Autopilot: the leader chooses which identical agents are servers, one Raft membership change at a time.
 *
 *   servers = voters (3, or 5 once at least 5 agents are alive) + read replicas (Raft learners, at most
 *             `readReplicas`); they hold the log and the whole cluster state.
 *   clients = every other agent: not in the Raft group, no copy of the log; each streams its own slice of the
 *             state from a server (src/runtime/slice-client.ts).
 *
 * In order of priority, it:
 *   1. removes members that left the cluster, and members dead in gossip for longer than the grace period;
 *   2. promotes a caught-up read replica while there are fewer healthy voters than the target;
 *   3. adds an alive client as a read replica while there are fewer alive replicas than wanted (the replica count,
 *      or one when voters are short and no replica is alive to promote): a dead server is so replaced by a client;
 *   4. removes a surplus voter when every voter is healthy and there are more than the target; it becomes a client;
 *   5. removes a surplus alive replica (an agent of an older version, where every agent was a learner, converges
 *      here one change at a time).
 * Every choice spreads servers across the failure-domain label (`zoneLabel`, e.g. `zone`) when nodes have it: a new
 * server comes from the zone with the fewest servers, a surplus one leaves the most crowded zone; ties go to the
 * smallest node id (the largest when removing), so every leader decides alike.
 * The decision is a pure function of what the leader sees, so it is tested without a cluster.
 */
import type { ConfChange, Status } from '../consensus/index.js';
import type { MemberSnapshot } from '../membership/index.js';

/** The label that names a node's failure domain unless the agent is told another (`failure_domain_label`). */
export const DEFAULT_FAILURE_DOMAIN_LABEL = 'zone';

export interface AutopilotInput {
  self: string;
  status: Status;
  members: readonly MemberSnapshot[];
  /** When each member was first seen dead (and not since alive), by id. */
  deadSinceMs: ReadonlyMap<string, number>;
  nowMs: number;
  graceMs: number;
  /** A learner within this many entries of the commit index counts as caught up. */
  maxLagEntries: number;
  /** Read replicas to keep beside the voters (0 to LIMITS.autopilotMaxReadReplicas). */
  readReplicas: number;
  /** The node label whose values are failure domains; nodes without it form one domain. */
  zoneLabel: string;
}

export function voterTarget(healthy: number): number {
  return healthy >= 5 ? 5 : 3;
}

export function autopilotStep(input: AutopilotInput): ConfChange | undefined {
  const { status, members, self } = input;
  if (status.role !== 'leader') return undefined;
  const byId = new Map(members.map((m) => [m.id, m]));
  const voters = [...status.voters].sort();
  const learners = [...status.learners].sort();
  const inConfig = new Set([...voters, ...learners]);
  const isAlive = (id: string): boolean => id === self || byId.get(id)?.status === 'alive';
  const gone = (id: string): boolean => {
    const m = byId.get(id);
    if (!m) return false;
    if (m.status === 'left') return true;
    const since = input.deadSinceMs.get(id);
    return m.status === 'dead' && since !== undefined && input.nowMs - since >= input.graceMs;
  };
  const zoneOf = (id: string): string => byId.get(id)?.meta.labels[input.zoneLabel] ?? '';
  // 1. Left or long dead: out, learners first (cheapest), never the last voter or ourselves.
  for (const id of [...learners, ...voters]) {
    if (id === self || !gone(id)) continue;
    if (voters.includes(id) && voters.length <= 1) continue;
    return { type: 'removeMember', member: id };
  }
  const alive = members.filter((m) => m.status === 'alive');
  const healthyVoters = voters.filter(isAlive);
  const aliveLearners = learners.filter(isAlive);
  const target = voterTarget(alive.length);
  const short = healthyVoters.length < target;
  // 2. Promote a caught-up replica while the voter set is short, from the zone with the fewest voters.
  if (short) {
    const ready = aliveLearners.filter((id) => (status.progress[id]?.match ?? 0) >= status.commit - input.maxLagEntries);
    const pick = leastCrowded(ready, healthyVoters, zoneOf);
    if (pick) return { type: 'addVoter', member: pick };
  }
  // 3. Replicas: a client joins the group as a learner (it is sent the log; rule 2 promotes it once caught up).
  const wantedReplicas = Math.max(input.readReplicas, short && aliveLearners.length === 0 ? 1 : 0);
  if (aliveLearners.length < wantedReplicas) {
    const clients = alive.map((m) => m.id).filter((id) => !inConfig.has(id));
    const pick = leastCrowded(clients, [...healthyVoters, ...aliveLearners], zoneOf);
    if (pick) return { type: 'addLearner', member: pick };
  }
  // 4. Shrink a voter set larger than the target (only when every voter is healthy: a sick one goes by rule 1).
  if (voters.length > target && healthyVoters.length === voters.length) {
    const surplus = mostCrowded(voters.filter((id) => id !== self), voters, zoneOf);
    if (surplus) return { type: 'removeMember', member: surplus };
  }
  // 5. Shrink the replicas to what is wanted (dead ones wait for rule 1, so adding and removing never alternate).
  if (aliveLearners.length > wantedReplicas) {
    const surplus = mostCrowded(aliveLearners, [...healthyVoters, ...aliveLearners], zoneOf);
    if (surplus) return { type: 'removeMember', member: surplus };
  }
  return undefined;
}

/** The candidate in the zone holding the fewest of `placed`; ties to the smallest id. */
function leastCrowded(candidates: readonly string[], placed: readonly string[], zoneOf: (id: string) => string): string | undefined {
  const counts = zoneCounts(placed, zoneOf);
  let best: string | undefined;
  let bestCount = Infinity;
  for (const id of [...candidates].sort()) {
    const n = counts.get(zoneOf(id)) ?? 0;
    if (n < bestCount) {
      best = id;
      bestCount = n;
    }
  }
  return best;
}

/** The candidate in the zone holding the most of `placed`; ties to the largest id. */
function mostCrowded(candidates: readonly string[], placed: readonly string[], zoneOf: (id: string) => string): string | undefined {
  const counts = zoneCounts(placed, zoneOf);
  let best: string | undefined;
  let bestCount = -1;
  for (const id of [...candidates].sort().reverse()) {
    const n = counts.get(zoneOf(id)) ?? 0;
    if (n > bestCount) {
      best = id;
      bestCount = n;
    }
  }
  return best;
}

function zoneCounts(ids: readonly string[], zoneOf: (id: string) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(zoneOf(id), (counts.get(zoneOf(id)) ?? 0) + 1);
  return counts;
}
