/**
 * Containers on Shoal's networks: on each node, one Docker bridge per Shoal network that a container there is on.
 *
 *   bridge <network> on this node: a /24 of the agent's pool (`--bridge-pool`, default 10.213.0.0/16)
 *     .1         the gateway: the host's side, where this agent answers DNS (port 53) for the containers on it
 *     .2-.126    containers: the agent picks each one's address before it starts, so it knows who asks for a name
 *     .128-.254  the services on the network: one address each, added to the bridge's interface; the agent listens
 *                there on the service's ports and routes each connection as it does every other (mesh.ts)
 *
 * A container resolves `web` through its DNS server (Docker's embedded resolver forwards to the gateway from the
 * container's own address); the answer is web's address on the bridge, and the connection goes to the agent, which
 * sends it to a healthy `web` task on this node or, over the peer link, on another. A service's address on a bridge
 * is kept in `mesh-listeners.json` with the listener ports, so a container keeps its SHOAL_SERVICE_* addresses across
 * agent restarts. Names, pool and bridges are unique per agent, so several agents can share one engine.
 *
 * A service's address on a bridge accepts connections from that bridge only (the host would deliver a packet from
 * another bridge to it too: its addresses are all local), so networks stay apart as in Swarm.
 *
 * An `internal: true` network becomes an internal bridge: its containers have no route out of it (they still reach
 * the agent on their own bridge). Bridges no local task needs any more are removed.
 */
import { networkInterfaces } from 'node:os';
import { ShoalError, describeError } from '../lib/errors.js';
import { fnv1a32 } from '../lib/ids.js';
import { LIMITS } from '../lib/limits.js';
import type { Logger } from '../log/logger.js';
import type { CatalogService, CatalogView } from '../state/index.js';
import { ServiceDns, type Upstream } from './dns.js';

export const DEFAULT_BRIDGE_POOL = '10.213.0.0/16';
export const BRIDGE_LABEL_NODE = 'shoal.node';
export const BRIDGE_LABEL_NETWORK = 'shoal.network';
const DNS_PORT = 53;
const FIRST_CONTAINER = 2;
const LAST_CONTAINER = 126;
const FIRST_SERVICE = 128;
const LAST_SERVICE = FIRST_SERVICE + LIMITS.meshMaxVipsPerBridge - 1;

/** An engine network, as the mesh needs it. */
export interface EngineNetwork {
  name: string;
  /** The host interface of a bridge network ('' when the engine does not say). */
  bridgeName: string;
  subnets: string[];
  labels: Record<string, string>;
}

export interface BridgeCreate {
  name: string;
  bridgeName: string;
  subnet: string;
  gateway: string;
  /** Where the engine may give containers addresses (the rest of the subnet is the agent's). */
  ipRange: string;
  /** No route out of the bridge for its containers. */
  internal: boolean;
  labels: Record<string, string>;
}

/** What the mesh asks of the engine and the host for its bridges (`src/drivers/docker-networks.ts`). */
export interface BridgeEngine {
  list(): Promise<EngineNetwork[]>;
  create(network: BridgeCreate): Promise<void>;
  /** Removes a network; one that still has containers, or is gone, is left as it is (resolves false). */
  remove(name: string): Promise<boolean>;
  /** The addresses the engine has given on a network. */
  addresses(name: string): Promise<string[]>;
  /** Gives the host `ip`/32 on the interface `bridgeName`; an address already there is fine. */
  addAddress(bridgeName: string, ip: string): Promise<void>;
}

export interface Bridge {
  /** The Shoal network (`<job>_<name>`, or a shared network's name). */
  network: string;
  /** The engine's network name. */
  engineName: string;
  /** The host interface. */
  bridgeName: string;
  /** The /24's first three octets and a dot. */
  prefix: string;
  gateway: string;
  /** Service key to its address here. */
  vips: Map<string, string>;
  /** Container address to the allocation and service it was given to. */
  containers: Map<string, { allocId: string; service: string }>;
  dns: ServiceDns | undefined;
}

export interface ContainerBridgesOptions {
  engine: BridgeEngine;
  nodeId: string;
  /** CIDR the bridges' /24s come from, prefix length 8-24. */
  pool: string;
  catalog: () => CatalogView | undefined;
  upstreams: () => Upstream[];
  logger: Logger;
  /** Persisted service addresses, `bridge:<network>|<service>` to the last octet (the mesh saves them). */
  saved: Map<string, number>;
  save: () => void;
  /** Addresses of single tasks on a bridge (`tasks.<service>`, `dnsrr`): the mesh gives them and listens there. */
  taskAddresses?: (bridge: Bridge, from: CatalogService, to: CatalogService) => Promise<string[]>;
}

/** A /24 or larger, as [first address, count]. */
export function parseCidr(cidr: string): { first: number; size: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const bits = m ? Number(m[5]) : -1;
  if (!m || octets.some((o) => o > 255) || bits < 0 || bits > 32) throw new ShoalError('ERR_INVALID_ARGUMENT', `"${cidr}" is not an IPv4 CIDR such as 10.213.0.0/16`);
  const size = 2 ** (32 - bits);
  const addr = ((octets[0]! << 24) >>> 0) + (octets[1]! << 16) + (octets[2]! << 8) + octets[3]!;
  return { first: addr - (addr % size), size };
}

/** Checks a `--bridge-pool`: an IPv4 CIDR of prefix 8-24, so that it holds at least one /24. */
export function checkBridgePool(cidr: string): string {
  const { size } = parseCidr(cidr);
  if (size < 256 || size > 2 ** 24) throw new ShoalError('ERR_INVALID_ARGUMENT', `bridge pool "${cidr}" must have a prefix length from 8 to 24 (it is cut into /24s)`);
  return cidr.trim();
}

const dotted = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');


export class ContainerBridges {
  readonly #o: ContainerBridgesOptions;
  readonly #bridges = new Map<string, Bridge>();
  readonly #ensuring = new Map<string, Promise<Bridge>>();
  #adopted: Promise<void> | undefined;

  constructor(options: ContainerBridgesOptions) {
    this.#o = options;
  }

  get bridges(): readonly Bridge[] {
    return [...this.#bridges.values()];
  }

  /** The bridge of a Shoal network on this node, created on the engine if needed. */
  ensure(network: string, internal: boolean): Promise<Bridge> {
    const have = this.#bridges.get(network);
    if (have) return Promise.resolve(have);
    let p = this.#ensuring.get(network);
    if (!p) {
      p = this.load().then(() => this.#bridges.get(network) ?? this.#create(network, internal)).finally(() => this.#ensuring.delete(network));
      this.#ensuring.set(network, p);
    }
    return p;
  }

  /** A container address on a bridge for a starting allocation (the same one again for the same allocation). */
  async containerAddress(bridge: Bridge, allocId: string, service: string): Promise<string> {
    for (const [ip, c] of bridge.containers) if (c.allocId === allocId) return ip;
    const engine = await this.#o.engine.addresses(bridge.engineName);
    // Read after the await: a container starting at the same moment may have taken an address meanwhile.
    for (const [ip, c] of bridge.containers) if (c.allocId === allocId) return ip;
    const taken = new Set([...engine, ...bridge.containers.keys()]);
    for (let i = FIRST_CONTAINER; i <= LAST_CONTAINER; i++) {
      const ip = `${bridge.prefix}${i}`;
      if (taken.has(ip)) continue;
      bridge.containers.set(ip, { allocId, service });
      return ip;
    }
    throw new ShoalError('ERR_LIMIT_EXCEEDED', `bridge ${bridge.engineName} (network ${bridge.network}) has no free container address (${LAST_CONTAINER - FIRST_CONTAINER + 1} in use)`);
  }

  /** Records a container found running after a restart (its handle names its addresses). */
  adoptContainer(engineName: string, ip: string, allocId: string, service: string): void {
    for (const b of this.#bridges.values()) if (b.engineName === engineName) b.containers.set(ip, { allocId, service });
  }

  /** Forgets the addresses of allocations no longer on this node. */
  forgetContainers(keep: ReadonlySet<string>): void {
    for (const b of this.#bridges.values()) for (const [ip, c] of b.containers) if (!keep.has(c.allocId)) b.containers.delete(ip);
  }

  /**
   * The address of a service (or `task:<alloc id>`, a single task) on a bridge, added to the bridge's interface the
   * first time; `persist`: kept across restarts (a service's is in its containers' SHOAL_SERVICE_*; a task's is not).
   */
  async serviceAddress(bridge: Bridge, service: string, persist = true): Promise<string> {
    const have = bridge.vips.get(service);
    if (have) return have;
    const key = `bridge:${bridge.network}|${service}`;
    const used = new Set(bridge.vips.values());
    const saved = this.#o.saved.get(key);
    let octet = saved !== undefined && !used.has(`${bridge.prefix}${saved}`) ? saved : undefined;
    for (let i = FIRST_SERVICE; octet === undefined && i <= LAST_SERVICE; i++) if (!used.has(`${bridge.prefix}${i}`)) octet = i;
    if (octet === undefined) throw new ShoalError('ERR_LIMIT_EXCEEDED', `network ${bridge.network} has more than ${LIMITS.meshMaxVipsPerBridge} services with ports on this node (limit meshMaxVipsPerBridge)`);
    const ip = `${bridge.prefix}${octet}`;
    await this.#o.engine.addAddress(bridge.bridgeName, ip);
    bridge.vips.set(service, ip);
    if (persist && saved !== octet) {
      this.#o.saved.set(key, octet);
      this.#o.save();
    }
    return ip;
  }

  /** Forgets the addresses of single tasks that are no longer endpoints (`live`: the endpoints' allocations). */
  forgetTasks(live: ReadonlySet<string>): void {
    for (const b of this.#bridges.values()) for (const key of [...b.vips.keys()]) if (key.startsWith('task:') && !live.has(key.slice(5))) b.vips.delete(key);
  }

  /** The bridge's DNS server, on its gateway, answering each container as its own service sees names. */
  async dns(bridge: Bridge): Promise<ServiceDns> {
    if (bridge.dns) return bridge.dns;
    const tasks = this.#o.taskAddresses;
    const dns = new ServiceDns({
      asker: (address) => this.askerOf(address),
      vipOf: (from, to) => this.vipOf(from, to),
      ...(tasks ? { taskAddresses: (from: CatalogService, to: CatalogService) => tasks(this.#sharedBridge(from, to) ?? bridge, from, to) } : {}),
      catalog: this.#o.catalog, upstreams: this.#o.upstreams(), logger: this.#o.logger,
    });
    await dns.listen(bridge.gateway, DNS_PORT);
    if (bridge.dns) {
      dns.close(); // opened twice at once: keep the first
      return bridge.dns;
    }
    bridge.dns = dns;
    return dns;
  }

  /** The service of the container that has `address` on one of this node's bridges. */
  askerOf(address: string): string | undefined {
    for (const b of this.#bridges.values()) {
      const c = b.containers.get(address);
      if (c) return c.service;
    }
    return undefined;
  }

  /** `to`'s address on the first network it shares with `from` that has a bridge here, or ''. */
  vipOf(from: CatalogService, to: CatalogService): string {
    const mine = new Set(from.networks.map((n) => n.network));
    for (const n of [...to.networks].sort((a, b) => (a.network < b.network ? -1 : 1))) {
      if (!mine.has(n.network)) continue;
      const ip = this.#bridges.get(n.network)?.vips.get(to.key);
      if (ip) return ip;
    }
    return '';
  }

  /** The bridge of the first network `from` and `to` share that has one here. */
  #sharedBridge(from: CatalogService, to: CatalogService): Bridge | undefined {
    const mine = new Set(from.networks.map((n) => n.network));
    return [...to.networks].sort((a, b) => (a.network < b.network ? -1 : 1)).filter((n) => mine.has(n.network)).map((n) => this.#bridges.get(n.network)).find((b) => b !== undefined);
  }

  /** The address a container of this node has on its first bridge, for connecting to it. */
  hostOf(allocId: string): string | undefined {
    for (const b of this.#bridges.values()) for (const [ip, c] of b.containers) if (c.allocId === allocId) return ip;
    return undefined;
  }

  /**
   * Gives every service on each bridge's network an address there (they are what names answer), and returns the
   * listeners the mesh must hold: each service address on each of the service's ports.
   */
  async serviceListeners(catalog: readonly CatalogService[]): Promise<{ service: string; host: string; port: number; onlyFrom: string }[]> {
    const out: { service: string; host: string; port: number; onlyFrom: string }[] = [];
    for (const b of this.#bridges.values()) {
      for (const e of catalog) {
        if (e.targetPorts.length === 0 || !e.networks.some((n) => n.network === b.network)) continue;
        try {
          const ip = await this.serviceAddress(b, e.key);
          for (const port of e.targetPorts) out.push({ service: e.key, host: ip, port, onlyFrom: b.prefix });
        } catch (err) {
          this.#o.logger.warn({ network: b.network, service: e.key, err: describeError(err) }, 'cannot give a service an address on a bridge');
        }
      }
      for (const [service, ip] of b.vips) {
        if (service.startsWith('task:') || catalog.some((e) => e.key === service && e.networks.some((n) => n.network === b.network))) continue;
        b.vips.delete(service);
        this.#o.saved.delete(`bridge:${b.network}|${service}`);
        this.#o.save();
        this.#o.logger.debug({ network: b.network, service, ip }, 'a service left a bridge');
      }
    }
    return out;
  }

  /** Removes the bridges of networks no task here is on; one the engine still has containers on stays. */
  async prune(keep: ReadonlySet<string>): Promise<void> {
    for (const b of [...this.#bridges.values()]) {
      if (keep.has(b.network) || b.containers.size > 0) continue;
      const removed = await this.#o.engine.remove(b.engineName).catch((err: unknown) => {
        this.#o.logger.warn({ network: b.network, bridge: b.engineName, err: describeError(err) }, 'cannot remove a bridge');
        return false;
      });
      if (!removed) continue;
      b.dns?.close();
      this.#bridges.delete(b.network);
      for (const k of [...this.#o.saved.keys()]) if (k.startsWith(`bridge:${b.network}|`)) this.#o.saved.delete(k);
      this.#o.save();
      this.#o.logger.info({ network: b.network, bridge: b.engineName }, 'bridge removed');
    }
  }

  close(): void {
    for (const b of this.#bridges.values()) b.dns?.close();
  }

  /** Finds this agent's bridges on the engine (after a restart), once. */
  load(): Promise<void> {
    this.#adopted ??= (async () => {
      for (const n of await this.#o.engine.list()) {
        const network = n.labels[BRIDGE_LABEL_NETWORK];
        if (n.labels[BRIDGE_LABEL_NODE] !== this.#o.nodeId || network === undefined || n.subnets.length === 0) continue;
        const { first } = parseCidr(n.subnets[0]!);
        this.#bridges.set(network, this.#bridge(network, n.name, n.bridgeName, first));
      }
    })().catch((err: unknown) => {
      this.#adopted = undefined; // ask the engine again next time
      throw err;
    });
    return this.#adopted;
  }

  #bridge(network: string, engineName: string, bridgeName: string, first: number): Bridge {
    const prefix = dotted(first).replace(/\.\d+$/, '.');
    const b: Bridge = { network, engineName, bridgeName, prefix, gateway: `${prefix}1`, vips: new Map(), containers: new Map(), dns: undefined };
    for (const [k, octet] of this.#o.saved) if (k.startsWith(`bridge:${network}|`)) b.vips.set(k.slice(`bridge:${network}|`.length), `${prefix}${octet}`);
    return b;
  }

  async #create(network: string, internal: boolean): Promise<Bridge> {
    if (this.#bridges.size >= LIMITS.meshMaxBridges) throw new ShoalError('ERR_LIMIT_EXCEEDED', `this agent has ${this.#bridges.size} bridges (limit meshMaxBridges)`);
    const pool = parseCidr(this.#o.pool);
    const blocks = Math.floor(pool.size / 256);
    // Subnets the engine has, and those of the host's own interfaces (another engine's bridges, the LAN): a /24
    // that overlaps one would route the wrong way.
    const host = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((i) => i.family === 'IPv4' && i.cidr).map((i) => i.cidr!));
    const used = [...(await this.#o.engine.list()).flatMap((n) => n.subnets), ...host].map((s) => {
      try {
        return parseCidr(s);
      } catch {
        return undefined; // an IPv6 subnet cannot overlap ours
      }
    }).filter((r): r is { first: number; size: number } => r !== undefined);
    const start = fnv1a32(`${this.#o.nodeId}|${network}`) % blocks;
    const node = fnv1a32(this.#o.nodeId).toString(16).padStart(8, '0');
    const engineName = `shoal-${node}-${network}`;
    let tries = 0;
    let last = '';
    for (let i = 0; i < blocks && tries < LIMITS.meshMaxBridgeSubnetTries; i++) {
      const first = pool.first + ((start + i) % blocks) * 256;
      if (used.some((u) => first < u.first + u.size && u.first < first + 256)) continue;
      tries++;
      const bridgeName = `shl${fnv1a32(`${this.#o.nodeId}|${network}|${tries}`).toString(16).padStart(8, '0')}`;
      const subnet = `${dotted(first)}/24`;
      try {
        await this.#o.engine.create({
          name: engineName, bridgeName, subnet, gateway: dotted(first + 1), ipRange: `${dotted(first)}/25`, internal,
          labels: { [BRIDGE_LABEL_NODE]: this.#o.nodeId, [BRIDGE_LABEL_NETWORK]: network },
        });
      } catch (err) {
        last = describeError(err);
        // Another agent on this engine took the subnet (or the interface name) a moment ago: try the next.
        if (/overlap|in use|already exists|conflict/i.test(last)) continue;
        throw err;
      }
      const b = this.#bridge(network, engineName, bridgeName, first);
      this.#bridges.set(network, b);
      this.#o.logger.info({ network, bridge: engineName, subnet, interface: bridgeName, internal }, 'bridge created');
      return b;
    }
    throw new ShoalError('ERR_NO_SUBNET', `no free /24 for network ${network} in bridge pool ${this.#o.pool}${last ? ` (last try: ${last})` : ''}`);
  }
}
