/**
 * What a name means to a task: the answer the agent's DNS server gives, as a pure function of the asking task's
 * service and the catalog (tested on its own).
 *
 *   <service> or an alias          a service of the task's own job, or an alias on a network it shares
 *   <service>.<job>[.shoal]        a service of any job, on a network the task shares with it
 *   tasks.<any of the above>       the same service's tasks, one address each (as Swarm's tasks.<service>)
 *   anything else under .shoal     no such name (NXDOMAIN): the zone is ours
 *   any other name                 forwarded to the host's resolvers
 *
 * A name answers with the service's virtual address on the network the two share (the first, by network name):
 * the asking task's agent listens there on each of the service's ports and spreads connections over its endpoints.
 * `tasks.` names, and every name of a service with `endpoint_mode: dnsrr`, answer with one address per task
 * instead (`tasks: true`; the DNS server asks the mesh for them).
 * Names are case-insensitive; a trailing dot is ignored.
 */
import { mayReach, reachableServices, type CatalogService } from '../state/catalog.js';

export const SHOAL_ZONE = 'shoal';

export type NameAnswer =
  | { kind: 'service'; service: CatalogService; vip: string; tasks: boolean }
  | { kind: 'nxdomain' }
  | { kind: 'forward' };

/** The virtual address of `to` on the first network it shares with `from`, or '' when they share none. */
export function sharedVip(from: CatalogService, to: CatalogService): string {
  const mine = new Set(from.networks.map((n) => n.network));
  const shared = to.networks.filter((n) => mine.has(n.network) && n.vip !== '').sort((a, b) => (a.network < b.network ? -1 : 1));
  return shared[0]?.vip ?? '';
}

/**
 * `vipOf` gives the address `to` answers at for `from` ('' for none): by default its virtual address on their first
 * shared network; a bridge's DNS server gives the bridge's own addresses instead.
 */
export function resolveName(qname: string, asker: CatalogService, catalog: readonly CatalogService[], vipOf: (from: CatalogService, to: CatalogService) => string = sharedVip): NameAnswer {
  let name = qname.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  const inZone = name === SHOAL_ZONE || name.endsWith(`.${SHOAL_ZONE}`);
  if (inZone) name = name === SHOAL_ZONE ? '' : name.slice(0, -SHOAL_ZONE.length - 1);
  const all = name === '' ? [] : name.split('.');
  // `tasks.<name>`: the same name, answered with the tasks; a service named "tasks" of job <name> comes second.
  if (all[0] === 'tasks' && all.length >= 2) {
    const answer = resolveLabels(all.slice(1), inZone, asker, catalog, vipOf, true);
    if (answer.kind === 'service') return answer;
  }
  return resolveLabels(all, inZone, asker, catalog, vipOf, false);
}

function resolveLabels(labels: string[], inZone: boolean, asker: CatalogService, catalog: readonly CatalogService[], vipOf: (from: CatalogService, to: CatalogService) => string, tasks: boolean): NameAnswer {
  const found = (to: CatalogService | undefined): NameAnswer => {
    const vip = to ? vipOf(asker, to) : '';
    return to && vip !== '' ? { kind: 'service', service: to, vip, tasks: tasks || to.endpointMode === 'dnsrr' } : { kind: 'nxdomain' };
  };
  if (labels.length === 1 && !inZone) {
    const to = reachableServices(asker, catalog).get(labels[0]!);
    return to ? found(to) : { kind: 'forward' };
  }
  if (labels.length === 2) {
    const [service, job] = labels as [string, string];
    const to = catalog.find((e) => e.job === job && e.service === service && mayReach(asker, e));
    if (to) return found(to);
    // `<service>.<job>` outside the zone may be a real domain (`api.example`): ask upstream unless the job exists.
    if (!inZone && !catalog.some((e) => e.job === job)) return { kind: 'forward' };
    return { kind: 'nxdomain' };
  }
  return inZone ? { kind: 'nxdomain' } : { kind: 'forward' };
}
