/**
 * Autopilot: the leader keeps the Raft voter set healthy among identical agents, one membership change at a time.
 *
 * In order of priority, it:
 *   1. removes members that left the cluster, and members dead in gossip for longer than the grace period;
 *   2. adds every other alive agent as a learner (it receives the log: every agent holds the cluster state);
 *   3. promotes a caught-up learner while there are fewer voters than the target: 3, or 5 once at least 5 agents
 *      are healthy;
 *   4. removes a surplus voter (the highest id that is not the leader) when there are more voters than the target;
 *      it comes back as a learner through rule 2, so the voter set shrinks without losing an agent.
 * The decision is a pure function of what the leader sees, so it is tested without a cluster.
 */
import type { ConfChange, Status } from '../consensus/index.js';
import type { MemberSnapshot } from '../membership/index.js';

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
  const gone = (id: string): boolean => {
    const m = byId.get(id);
    if (!m) return false;
    if (m.status === 'left') return true;
    const since = input.deadSinceMs.get(id);
    return m.status === 'dead' && since !== undefined && input.nowMs - since >= input.graceMs;
  };
  // 1. Left or long dead: out, learners first (cheapest), never the last voter or ourselves.
  for (const id of [...learners, ...voters]) {
    if (id === self || !gone(id)) continue;
    if (voters.includes(id) && voters.length <= 1) continue;
    return { type: 'removeMember', member: id };
  }
  // 2. Alive agents outside the group join as learners.
  const alive = members.filter((m) => m.status === 'alive');
  for (const m of [...alive].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (!inConfig.has(m.id)) return { type: 'addLearner', member: m.id };
  }
  const healthyVoters = voters.filter((id) => byId.get(id)?.status === 'alive' || id === self);
  const target = voterTarget(alive.length);
  // 3. Promote a caught-up learner while the voter set is short.
  if (healthyVoters.length < target) {
    const ready = learners.find((id) => byId.get(id)?.status === 'alive' && (status.progress[id]?.match ?? 0) >= status.commit - input.maxLagEntries);
    if (ready) return { type: 'addVoter', member: ready };
  }
  // 4. Shrink a voter set larger than the target (only when every voter is healthy: a sick one goes by rule 1).
  if (voters.length > target && healthyVoters.length === voters.length) {
    const surplus = [...voters].reverse().find((id) => id !== self);
    if (surplus) return { type: 'removeMember', member: surplus };
  }
  return undefined;
}
