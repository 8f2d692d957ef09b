/**
 * The next change a partition's primary makes to its Raft group so that the group's members become the nodes the
 * cluster placed the partition's replicas on (`desired`, from the scheduler's allocations): one membership change at
 * a time, as Raft requires, and never one that weakens the group before its replacement is ready.
 *
 *   desired node not a member          -> add it as a learner (it catches up by log, or by snapshot)
 *   a desired learner caught up        -> promote it to voter
 *   a member no longer desired         -> remove it, but only once every desired node is a voter (so the group
 *                                         never has fewer voters than it is meant to, by a move of ours);
 *                                         if that member is the primary itself, hand leadership to a caught-up
 *                                         desired voter first (a drain moves primaries first)
 *   a learner no longer desired        -> remove it at once (it holds no vote)
 *
 * Ties go in node id order, so every primary decides the same way. Pure: the runtime calls it after every change of
 * the placement or the group, and carries out what it returns.
 */

import { keyPosition } from './hash.js';

export type MembershipStep =
  | { kind: 'add-learner'; member: string }
  | { kind: 'promote'; member: string }
  | { kind: 'remove'; member: string }
  | { kind: 'transfer'; to: string };

export interface GroupView {
  /** This member: the primary. */
  self: string;
  voters: readonly string[];
  learners: readonly string[];
  /** The primary's view of each member's log (its acknowledged index). */
  match: Readonly<Record<string, number>>;
  /** The primary's last log index. */
  lastIndex: number;
}

/**
 * A learner this close to the primary's log counts as caught up (promoting it cannot stall commits for long). It must
 * have acknowledged something first: a learner added a moment ago (its node may not even run its replica yet) has a
 * match of 0, which a young log's length would otherwise forgive, and promoting it could cost the group its quorum.
 */
export function caughtUp(view: GroupView, member: string, lagEntries: number): boolean {
  const match = view.match[member] ?? 0;
  return match > 0 && match + lagEntries >= view.lastIndex;
}

export function nextMembershipStep(view: GroupView, desired: readonly string[], lagEntries: number): MembershipStep | undefined {
  const want = new Set(desired);
  const voters = new Set(view.voters);
  const learners = new Set(view.learners);
  const sorted = [...want].sort();
  for (const node of sorted) if (!voters.has(node) && !learners.has(node)) return { kind: 'add-learner', member: node };
  for (const node of sorted) if (learners.has(node) && caughtUp(view, node, lagEntries)) return { kind: 'promote', member: node };
  for (const node of [...learners].sort()) if (!want.has(node)) return { kind: 'remove', member: node };
  // Every desired node is a voter: surplus voters may go now.
  if (sorted.some((n) => !voters.has(n))) return undefined;
  const surplus = [...voters].filter((v) => !want.has(v)).sort();
  // Others before the primary itself, so it keeps leading through as many steps as it can.
  const other = surplus.find((v) => v !== view.self);
  if (other !== undefined) return { kind: 'remove', member: other };
  if (surplus.includes(view.self)) {
    const to = sorted.filter((n) => n !== view.self && caughtUp(view, n, 0)).sort((a, b) => (view.match[b] ?? 0) - (view.match[a] ?? 0) || (a < b ? -1 : 1))[0];
    return to === undefined ? undefined : { kind: 'transfer', to };
  }
  return undefined;
}

/**
 * The member that should lead a partition once its group is in place: the one with the highest XXH64 of
 * `<group>/<member>` (rendezvous hashing). Primaries then spread evenly over the nodes, every primary computes the
 * same answer, and when a node joins or leaves only the partitions it wins or loses change hands (Kafka's preferred
 * leader, without a stored preference).
 */
export function preferredPrimary(group: string, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = 0n;
  for (const m of [...members].sort()) {
    const score = keyPosition(`${group}/${m}`);
    if (best === undefined || score > bestScore) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}
