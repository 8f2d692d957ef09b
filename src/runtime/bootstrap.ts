/**
 * Choosing the first Raft voters among identical agents, with no agent configured as a server.
 *
 * Every agent computes a proposal from what gossip told it: the `expect` members with the smallest node ids among
 * every member it has seen (alive, suspect or dead; not those that left). It gossips the proposal (a short hash, in
 * the reserved label `shoal.bootstrap`) and bootstraps only when
 *   - it is one of the chosen members, all of them alive, and
 *   - every other chosen member gossips the same proposal (or has already bootstrapped with it), and
 *   - no member gossips that it bootstrapped a different cluster.
 * Once bootstrapped (or added to the group by a leader) an agent gossips `done:<hash>` for good.
 *
 * Why the agreement step: agents discover each other one by one. An agent that has seen only three members would
 * otherwise bootstrap with those three while a fourth, with a smaller id, bootstraps with another three: two
 * overlapping groups. Requiring every chosen member to have proposed the same set means two agents that have seen
 * each other can never start groups with different voters, and neither half of a partition can start its own group
 * unless all the voters it chose are in it and agree. (Agents that never saw each other at all are two clusters by
 * definition.)
 */
import { createHash } from 'node:crypto';
import type { MemberSnapshot } from '../membership/index.js';

/** Reserved label carrying the bootstrap proposal: `proposed:<hash>` or `done:<hash>`. */
export const BOOTSTRAP_LABEL = 'shoal.bootstrap';

export interface BootstrapDecision {
  /** What this agent should gossip in BOOTSTRAP_LABEL now. */
  advertise: string;
  /** The voters to bootstrap with, when this agent should bootstrap now. */
  voters?: string[];
  /** Why not yet, for logs and `shoal operator raft`. */
  waiting?: string;
}

export function proposalHash(voters: readonly string[]): string {
  return createHash('sha256').update([...voters].sort().join(',')).digest('hex').slice(0, 16);
}

export function bootstrapDecision(self: string, members: readonly MemberSnapshot[], expect: number): BootstrapDecision {
  const others = members.filter((m) => m.id !== self && m.status !== 'left');
  const alreadyDone = others.filter((m) => (m.meta.labels[BOOTSTRAP_LABEL] ?? '').startsWith('done:'));
  const known = members.filter((m) => m.status !== 'left');
  if (known.length < expect) return { advertise: '', waiting: `waiting for ${expect} members to bootstrap the cluster (${known.length} known)` };
  const chosen = [...known].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, expect);
  const hash = proposalHash(chosen.map((m) => m.id));
  const advertise = `proposed:${hash}`;
  if (alreadyDone.some((m) => m.meta.labels[BOOTSTRAP_LABEL] !== `done:${hash}`)) {
    return { advertise, waiting: `the cluster was bootstrapped by ${alreadyDone.map((m) => m.meta.name || m.id.slice(0, 8)).join(', ')}; waiting to be added to it` };
  }
  if (!chosen.some((m) => m.id === self)) return { advertise, waiting: 'not among the first voters; waiting to be added to the cluster' };
  const notAlive = chosen.filter((m) => m.status !== 'alive');
  if (notAlive.length > 0) return { advertise, waiting: `waiting for ${notAlive.map((m) => m.meta.name || m.id.slice(0, 8)).join(', ')} (chosen as first voters) to be alive` };
  const disagree = chosen.filter((m) => m.id !== self && m.meta.labels[BOOTSTRAP_LABEL] !== advertise && m.meta.labels[BOOTSTRAP_LABEL] !== `done:${hash}`);
  if (disagree.length > 0) return { advertise, waiting: `waiting for ${disagree.map((m) => m.meta.name || m.id.slice(0, 8)).join(', ')} to agree on the first voters` };
  return { advertise, voters: chosen.map((m) => m.id).sort() };
}
