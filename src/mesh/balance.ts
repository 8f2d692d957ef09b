/**
 * Which endpoints a new connection tries, in order. Pure, so it is tested on its own.
 *
 * Endpoints on this node come first (no hop over a peer link), then the others. Within each group the strategy
 * picks: `round-robin` rotates a per-service counter; `least-connections` prefers the endpoints this agent has
 * fewest connections open to (ties in round-robin order). Endpoints that just failed go last, so a retry does not
 * pick them again while others remain (HAProxy's `redispatch`).
 */
import type { CatalogEndpoint } from '../state/catalog.js';

export type BalanceStrategy = 'round-robin' | 'least-connections';

export const BALANCE_STRATEGIES: readonly BalanceStrategy[] = ['round-robin', 'least-connections'];

export interface BalanceInput {
  endpoints: readonly CatalogEndpoint[];
  selfNodeId: string;
  strategy: BalanceStrategy;
  /** The service's round-robin counter (the caller increments it per connection). */
  turn: number;
  /** Connections this agent has open to each allocation. */
  active: (allocId: string) => number;
  /** Allocations that failed recently: tried last. */
  failed: ReadonlySet<string>;
}

export function orderEndpoints(input: BalanceInput): CatalogEndpoint[] {
  const rotate = (list: CatalogEndpoint[]): CatalogEndpoint[] => {
    if (list.length === 0) return list;
    const k = input.turn % list.length;
    return [...list.slice(k), ...list.slice(0, k)];
  };
  const pick = (list: CatalogEndpoint[]): CatalogEndpoint[] => {
    const rotated = rotate(list);
    if (input.strategy === 'round-robin') return rotated;
    // A stable sort keeps the rotation among equals.
    return rotated.map((e, i) => ({ e, i, n: input.active(e.allocId) })).sort((a, b) => a.n - b.n || a.i - b.i).map((x) => x.e);
  };
  const healthy = input.endpoints.filter((e) => !input.failed.has(e.allocId));
  const failed = input.endpoints.filter((e) => input.failed.has(e.allocId));
  const local = healthy.filter((e) => e.nodeId === input.selfNodeId);
  const remote = healthy.filter((e) => e.nodeId !== input.selfNodeId);
  return [...pick(local), ...pick(remote), ...rotate(failed)];
}
