/**
 * The service catalog: which tasks answer for each service, on which node and port, and who may reach them. It is
 * derived from the replicated state (jobs, allocations, nodes), so every server computes the same catalog at the same
 * index, and clients receive it with their slice (src/state/slice.ts). The service mesh and the `Services` RPC read it.
 *
 * An allocation is an endpoint while the leader wants it (`desiredStatus: run`), its node reports it `running`, its
 * health check (when it has one) passes, and its node is ready. A task the leader stops therefore leaves the catalog
 * in the same entry that tells its node to stop it, before its stop signal: no new connection is sent to it.
 */
import { fnv1a32 } from '../lib/ids.js';
import type { Job, NetworkSpec, ServiceSpec } from '../jobspec/types.js';
import type { Allocation, JobRecord } from './types.js';

export interface CatalogEndpoint {
  allocId: string;
  nodeId: string;
  /** Target port (as a string key) to the port the task listens on, on its node. */
  ports: Record<string, number>;
}

export interface CatalogNetwork {
  /** Cluster-wide network name: `<job>_<name>` for a job's own network, the external name for a shared one. */
  network: string;
  /** Names the service answers to on it besides its own. */
  aliases: string[];
  /**
   * The service's stable virtual address on this network (`vipFor`), which names resolve to and every agent whose
   * tasks reach the service listens on; '' when the service answers on no TCP port.
   */
  vip: string;
  /** The network has no route out of the cluster (`internal: true`): containers on it get no default route. */
  internal?: boolean;
}

/** Virtual addresses are loopback addresses: every host routes them to itself, where its agent listens. */
export const VIP_PREFIX = '127.77.';
export const VIP_COUNT = 65_534;

/** The key a virtual address is held under: one per service and network. */
export function vipKey(network: string, service: string): string {
  return `${network}|${service}`;
}

/**
 * A free virtual address for `key`: from a start that depends on the key only, the first not in `used`. Pure, so
 * every replica of the state picks the same one.
 */
export function pickVip(key: string, used: ReadonlySet<string>): string | undefined {
  const h = fnv1a32(key);
  for (let probe = 0; probe < VIP_COUNT; probe++) {
    const n = ((h + probe) % VIP_COUNT) + 1;
    const ip = `${VIP_PREFIX}${n >> 8}.${n & 255}`;
    if ((n & 255) === 0 || (n & 255) === 255) continue;
    if (!used.has(ip)) return ip;
  }
  return undefined;
}

export interface IngressPort {
  published: number;
  target: number;
}

export interface CatalogService {
  /** `<job>/<service>`. */
  key: string;
  job: string;
  service: string;
  networks: CatalogNetwork[];
  endpointMode: 'vip' | 'dnsrr';
  /** TCP ports the service answers on inside its networks (its ports' targets and its exposed ports), sorted. */
  targetPorts: number[];
  /** TCP ports published through the routing mesh on every node. */
  ingress: IngressPort[];
  /** Sorted by allocation id. */
  endpoints: CatalogEndpoint[];
  /** The service declares a health check: its endpoints pass it. */
  healthChecked: boolean;
  /** The index at which this entry last changed. */
  modifyIndex: number;
}

/** What the mesh and the RPC read: a server's `ClusterState` and a client's `NodeSlice` both provide it. */
export interface CatalogView {
  /** The index of the newest change to any entry (0: none yet). */
  readonly catalogIndex: number;
  catalog(): CatalogService[];
  catalogService(key: string): CatalogService | undefined;
}

/** Catalog entries in key order (how every view lists them). */
export function sortedEntries(entries: Iterable<CatalogService>): CatalogService[] {
  return [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export function serviceKey(job: string, service: string): string {
  return `${job}/${service}`;
}

export function clusterNetworkName(job: string, network: NetworkSpec): string {
  return network.external ?? `${job}_${network.name}`;
}

/**
 * The variable name a task finds a service under: `SHOAL_SERVICE_<NAME>`, NAME in upper case with every character
 * outside A-Z0-9 replaced by `_`.
 */
export function serviceEnvName(service: string): string {
  return `SHOAL_SERVICE_${service.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** TCP ports a service answers on inside its networks. */
export function targetPortsOf(spec: ServiceSpec): number[] {
  const ports = new Set<number>();
  for (const p of spec.ports) if (p.protocol === 'tcp') ports.add(p.target);
  for (const p of spec.expose) if (p.protocol === 'tcp') ports.add(p.port);
  return [...ports].sort((a, b) => a - b);
}

export function isEndpoint(alloc: Allocation, nodeReady: boolean): boolean {
  return alloc.desiredStatus === 'run' && alloc.clientStatus === 'running' && nodeReady && (alloc.health === undefined || alloc.health === 'healthy');
}

/** The catalog entry of one service of a job that is not stopped. */
export function catalogEntry(job: Job, spec: ServiceSpec, allocs: readonly Allocation[], nodeReady: (nodeId: string) => boolean, index: number, vip: (key: string) => string = () => ''): CatalogService {
  const nets = new Map(job.networks.map((n) => [n.name, n]));
  const endpoints = allocs
    .filter((a) => a.service === spec.name && isEndpoint(a, nodeReady(a.nodeId)))
    .map((a) => ({ allocId: a.id, nodeId: a.nodeId, ports: { ...(a.taskPorts ?? {}) } }))
    .sort((a, b) => (a.allocId < b.allocId ? -1 : a.allocId > b.allocId ? 1 : 0));
  return {
    key: serviceKey(job.name, spec.name),
    job: job.name,
    service: spec.name,
    networks: spec.networks.map((n) => {
      const net = nets.get(n.name);
      const network = net ? clusterNetworkName(job.name, net) : `${job.name}_${n.name}`;
      return { network, aliases: [...n.aliases], vip: vip(vipKey(network, serviceKey(job.name, spec.name))), ...(net?.internal ? { internal: true } : {}) };
    }),
    endpointMode: spec.deploy.endpointMode,
    targetPorts: targetPortsOf(spec),
    ingress: spec.ports.filter((p) => p.mode === 'ingress' && p.protocol === 'tcp').map((p) => ({ published: p.published, target: p.target })),
    endpoints,
    healthChecked: spec.healthcheck !== null,
    modifyIndex: index,
  };
}

/** Whether two entries say the same thing (their indexes aside). */
export function sameEntry(a: CatalogService, b: CatalogService): boolean {
  return JSON.stringify({ ...a, modifyIndex: 0 }) === JSON.stringify({ ...b, modifyIndex: 0 });
}

/** Whether a task of `from` may resolve and connect to `to`: they share a network. */
export function mayReach(from: CatalogService, to: CatalogService): boolean {
  const mine = new Set(from.networks.map((n) => n.network));
  return to.networks.some((n) => mine.has(n.network));
}

/**
 * The services a task of `from` may reach, by the name it knows them by: services of its own job by their name,
 * and services of other jobs on a shared network by their aliases there (a same-job service wins a name clash).
 */
export function reachableServices(from: CatalogService, all: readonly CatalogService[]): Map<string, CatalogService> {
  const out = new Map<string, CatalogService>();
  const mine = new Set(from.networks.map((n) => n.network));
  const sorted = sortedEntries(all);
  for (const to of sorted) {
    if (to.job !== from.job) continue;
    if (!mayReach(from, to)) continue;
    out.set(to.service, to);
    for (const n of to.networks) if (mine.has(n.network)) for (const alias of n.aliases) if (!out.has(alias)) out.set(alias, to);
  }
  for (const to of sorted) {
    if (to.job === from.job) continue;
    for (const n of to.networks) {
      if (!mine.has(n.network)) continue;
      for (const alias of n.aliases) if (!out.has(alias)) out.set(alias, to);
    }
  }
  return out;
}

/** Catalog entries of every service of a job record (none when the job is stopped). */
export function jobCatalog(rec: JobRecord, allocs: readonly Allocation[], nodeReady: (nodeId: string) => boolean, index: number, vip: (key: string) => string = () => ''): CatalogService[] {
  if (rec.stopped) return [];
  return rec.job.services.map((spec) => catalogEntry(rec.job, spec, allocs, nodeReady, index, vip));
}

/** The virtual-address keys a job needs: one per service that answers on a TCP port, per network it is on. */
export function jobVipKeys(job: Job): string[] {
  const nets = new Map(job.networks.map((n) => [n.name, n]));
  const out: string[] = [];
  for (const spec of job.services) {
    if (targetPortsOf(spec).length === 0) continue;
    for (const n of spec.networks) {
      const net = nets.get(n.name);
      out.push(vipKey(net ? clusterNetworkName(job.name, net) : `${job.name}_${n.name}`, serviceKey(job.name, spec.name)));
    }
  }
  return out.sort();
}
