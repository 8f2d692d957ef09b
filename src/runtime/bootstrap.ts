/**
 * Choosing the first Raft voters among identical agents, with no agent configured as a server.
 *
 * Every agent computes the same answer from what gossip told it: the `expect` members with the smallest node ids
 * among every member it has ever seen (alive, suspect or dead; not those that left). It bootstraps only when it is
 * one of them and all of them are alive. Two agents that have seen each other can therefore never choose different
 * sets: a half of a partition that lacks one of the chosen members waits instead of forming a second cluster.
 * (Agents that never saw each other at all are two clusters by definition.)
 */
import type { MemberSnapshot } from '../membership/index.js';

export interface BootstrapDecision {
  /** The voters to bootstrap with, when this agent should bootstrap now. */
  voters?: string[];
  /** Why not yet, for logs and `shoal operator raft`. */
  waiting?: string;
}

export function bootstrapDecision(self: string, members: readonly MemberSnapshot[], expect: number): BootstrapDecision {
  const known = members.filter((m) => m.status !== 'left');
  if (known.length < expect) return { waiting: `waiting for ${expect} members to bootstrap the cluster (${known.length} known)` };
  const chosen = [...known].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, expect);
  const notAlive = chosen.filter((m) => m.status !== 'alive');
  if (notAlive.length > 0) return { waiting: `waiting for ${notAlive.map((m) => m.meta.name || m.id.slice(0, 8)).join(', ')} (chosen as first voters) to be alive` };
  if (!chosen.some((m) => m.id === self)) return { waiting: 'not among the first voters; waiting to be added to the cluster' };
  return { voters: chosen.map((m) => m.id).sort() };
}
