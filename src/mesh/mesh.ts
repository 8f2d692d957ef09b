/**
 * The service mesh on one agent: the ports of the tasks it runs, a listener per service its tasks reach, the
 * routing mesh's ingress ports, and the route of every connection they accept.
 *
 *   task ──► SHOAL_SERVICE_API=<bind ip>:<listener port> ──► agent: pick an endpoint of `api` (this node's first)
 *                                                              ├─ here:   127.0.0.1:<task port>
 *                                                              └─ remote: a stream over the peer link (streams.ts)
 *                                                                         ──► that agent ──► 127.0.0.1:<task port>
 *   client ──► <any node's bind ip>:<published port> (ingress) ──► the same route
 *
 * A failed attempt (refused, timed out, the peer says the task is no longer an endpoint) tries the next endpoint,
 * at most LIMITS.meshMaxConnectAttempts, before any byte of the client's is read: the client sees no error while
 * another endpoint answers. The catalog (src/state/catalog.ts) says which tasks are endpoints; the last hop checks
 * it again on the node that runs the task, so a task that is stopping gets no new connection.
 */
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShoalError, describeError } from '../lib/errors.js';
import { fnv1a32 } from '../lib/ids.js';
import { LIMITS } from '../lib/limits.js';
import type { Logger } from '../log/logger.js';
import { writeFileDurably } from '../platform/durable-file.js';
import type { ServiceSpec } from '../jobspec/types.js';
import type { Transport } from '../transport/index.js';
import { reachableServices, serviceEnvName, serviceKey, targetPortsOf, type Allocation, type CatalogService, type CatalogView } from '../state/index.js';
import { orderEndpoints, type BalanceStrategy } from './balance.js';
import { ContainerBridges, type Bridge, type BridgeEngine } from './bridges.js';
import { ServiceDns, systemUpstreams, type Upstream } from './dns.js';
import { sharedVip } from './names.js';
import { StreamMux, type StreamTarget } from './streams.js';

export const LISTENERS_FILE = 'mesh-listeners.json';

/** How long a port given to a starting task is not given to another (by then the task runs and holds it). */
const HANDED_OUT_HOLD_MS = 60_000;

export interface PortRange {
  low: number;
  high: number;
}

export interface ServiceMeshOptions {
  nodeId: string;
  /** The IP the agent's `--bind` names: service listeners and ingress ports listen there (every interface for 0.0.0.0). */
  bindHost: string;
  /** `--task-ports`: where process tasks' ports and service listeners come from. */
  taskPorts: PortRange;
  dataDir: string;
  /** The catalog as this agent holds it now (a server's state, a client's slice); undefined before it has one. */
  catalog: () => CatalogView | undefined;
  transport: Transport;
  logger: Logger;
  balance?: BalanceStrategy;
  /** `<job>/<service>` of every task this node runs (or is starting): their virtual addresses are listened on. */
  localServices?: () => string[];
  /** Resolvers for names that are not the cluster's; default: the nameservers of /etc/resolv.conf. */
  dnsUpstreams?: Upstream[];
  /**
   * False for a node gossip suspects or declared dead: its endpoints are tried last, before the catalog drops them
   * (a node that died a moment ago still has a link, and a stream to it waits out its open timeout).
   */
  peerHealthy?: (nodeId: string) => boolean;
  /** Containers on bridges (`networkMode: bridge`): the engine, and the pool the bridges' /24s come from. */
  bridges?: { engine: BridgeEngine; pool: string };
  /** The tasks this node runs or is starting, with a container's addresses on its bridges once it has started. */
  localTasks?: () => readonly LocalTask[];
  /** The ingress ports another program holds here changed (sorted, at most LIMITS.meshMaxPortsTakenReported). */
  onPortsTaken?: (ports: number[]) => void;
}

export interface LocalTask {
  allocId: string;
  /** `<job>/<service>`. */
  service: string;
  /** Engine network name to the container's address on it (containers on bridges). */
  addresses?: Readonly<Record<string, string>>;
}

/** How a container on bridges is attached: what the node runner adds to its task before it starts. */
export interface ContainerAttachment {
  /** Engine network names, the first the container's primary. */
  networks: string[];
  /** Its address on each. */
  addresses: Record<string, string>;
  /** Its nameserver: the agent, on its first bridge's gateway. */
  dns: string[];
  /** Ports published in host mode, on the agent's bind address. */
  publish: { port: number; target: number; protocol: 'tcp' | 'udp'; hostIp?: string }[];
}

export interface ListenerStatus {
  kind: 'service' | 'ingress' | 'vip' | 'task';
  service: string;
  targetPort: number;
  /** The address it listens on; for an ingress port, the published port. */
  address: string;
  connections: number;
  /** Why it does not listen (the port is taken on this node), or ''. */
  error: string;
}

interface Listener {
  kind: 'service' | 'ingress' | 'vip' | 'task';
  /** The address it listens on (the bind IP, or a virtual address). */
  host: string;
  /** Service key `<job>/<service>`. */
  service: string;
  target: number;
  port: number;
  server: net.Server | undefined;
  connections: Set<net.Socket>;
  error: string;
  /** A service's address on a bridge answers only its own bridge (addresses starting so): networks stay apart. */
  onlyFrom?: string;
  /** A task's own address (`tasks.<service>`, `dnsrr`): connections go to this allocation only. */
  allocId?: string;
}

/** Where the addresses of single tasks come from, for tasks on the host's network (a bridge has its own). */
const TASK_VIP_PREFIX = '127.78.';
const TASK_VIP_COUNT = 65_534;

export class ServiceMesh {
  readonly streams: StreamMux;
  readonly #o: ServiceMeshOptions;
  readonly #log: Logger;
  /** Service listeners by `<job>/<service>:<target>`, ingress ones by `ingress:<published>`. */
  readonly #listeners = new Map<string, Listener>();
  /** Service listener ports as persisted, so tasks keep their SHOAL_SERVICE_* addresses across agent restarts. */
  readonly #servicePorts = new Map<string, number>();
  readonly #opening = new Map<string, Promise<number>>();
  /** Ports given to tasks that may not have started yet (a task's own ports reach the runner once it runs). */
  readonly #handedOut = new Map<number, number>();
  readonly #turns = new Map<string, number>();
  /** DNS servers by the service whose tasks ask. */
  readonly #dns = new Map<string, ServiceDns>();
  readonly #dnsOpening = new Map<string, Promise<ServiceDns>>();
  #upstreams: Upstream[] | undefined;
  readonly #active = new Map<string, number>();
  readonly #failedUntil = new Map<string, number>();
  #connections = 0;
  #cursor = 0;
  #refreshScheduled = false;
  #refreshing: Promise<void> = Promise.resolve();
  #stopped = false;
  #refusedConnections = 0;
  readonly #bridges: ContainerBridges | undefined;
  #portsTaken: number[] = [];
  /**
   * The ports containers in the host's network listen on, by allocation: a virtual-address listener on one of them
   * would take the port from the container (its bind to 0.0.0.0 would fail), so none is opened there.
   */
  readonly #hostNetworkPorts = new Map<string, number[]>();
  /** Loopback addresses given to single tasks, by allocation. */
  readonly #taskVips = new Map<string, string>();
  #taskVipCursor = 0;

  constructor(options: ServiceMeshOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'mesh' });
    this.streams = new StreamMux({ transport: options.transport, logger: options.logger, resolve: (t) => this.#resolveLocal(t) });
    if (options.bridges) {
      this.#bridges = new ContainerBridges({
        engine: options.bridges.engine, pool: options.bridges.pool, nodeId: options.nodeId, catalog: options.catalog, logger: this.#log,
        upstreams: () => (this.#upstreams ??= options.dnsUpstreams ?? systemUpstreams()),
        saved: this.#servicePorts, save: () => this.#saveServicePorts(),
        taskAddresses: (bridge, from, to) => this.#taskAddresses(to, bridge),
      });
    }
    this.#cursor = (fnv1a32(options.nodeId) % Math.max(1, options.taskPorts.high - options.taskPorts.low + 1));
  }

  /** Opens the service listeners tasks were given before a restart, then the ingress ports. */
  async start(): Promise<void> {
    let saved: Record<string, number> = {};
    try {
      saved = JSON.parse(readFileSync(join(this.#o.dataDir, LISTENERS_FILE), 'utf8')) as Record<string, number>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log.warn({ err: describeError(err) }, `${LISTENERS_FILE} is unreadable; service listeners get new ports`);
    }
    for (const [k, port] of Object.entries(saved)) {
      if (typeof port !== 'number' || !Number.isInteger(port)) continue;
      if (k.startsWith('dns:') || k.startsWith('bridge:')) {
        this.#servicePorts.set(k, port); // reopened by the refresh below, for the services that run here
        continue;
      }
      const sep = k.lastIndexOf(':');
      const service = k.slice(0, sep);
      const target = Number(k.slice(sep + 1));
      if (!service.includes('/') || !Number.isInteger(target)) continue;
      this.#servicePorts.set(k, port);
      await this.#openService(service, target, port).catch((err: unknown) => this.#log.warn({ service, target, port, err: describeError(err) }, 'could not reopen a service listener'));
    }
    this.refresh();
  }

  /** The catalog changed (or may have): opens and closes ingress ports and drops listeners of services gone. */
  refresh(): void {
    if (this.#refreshScheduled || this.#stopped) return;
    this.#refreshScheduled = true;
    // One refresh at a time: two at once would open the same port twice and lose track of one listener.
    this.#refreshing = this.#refreshing.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(async () => {
      this.#refreshScheduled = false;
      if (!this.#stopped) await this.#refresh().catch((err: unknown) => this.#log.warn({ err: describeError(err) }, 'mesh refresh failed'));
    });
  }

  /** Resolves once every refresh asked for so far is done (for tests and an orderly stop). */
  settled(): Promise<void> {
    return this.#refreshing;
  }

  /** A MESSAGE_TYPE_STREAM payload from a peer. */
  receive(from: string, payload: Uint8Array): void {
    this.streams.receive(from, payload);
  }

  linkDown(peer: string): void {
    this.streams.linkDown(peer);
  }

  /** Gossip suspects the node or declared it dead: connections waiting on it try another endpoint now. */
  peerUnreachable(peer: string): void {
    this.streams.peerUnreachable(peer);
  }

  status(): ListenerStatus[] {
    return [...this.#listeners.values()].map((l) => ({
      kind: l.kind, service: l.service, targetPort: l.target, address: `${l.host}:${l.port}`, connections: l.connections.size, error: l.error,
    })).sort((a, b) => (a.address < b.address ? -1 : 1));
  }

  /** The ingress ports another program holds on this node (what `onPortsTaken` last reported). */
  get portsTaken(): readonly number[] {
    return this.#portsTaken;
  }

  get refusedConnections(): number {
    return this.#refusedConnections;
  }

  /** The address tasks are given for a listener: the bind IP, or loopback when the agent binds every interface. */
  get advertisedHost(): string {
    const h = this.#o.bindHost;
    return h === '0.0.0.0' || h === '::' || h === '' ? '127.0.0.1' : h;
  }

  /**
   * The TaskNetwork of the node runner: the ports a task listens on and its environment (PORT, SHOAL_PORT_<TARGET>,
   * SHOAL_SERVICE_<NAME>[_<TARGET>], SHOAL_DNS). Opens what the task will use first: the service listeners, the
   * virtual addresses of the services it reaches, and its service's DNS server.
   */
  async prepare(alloc: Allocation, spec: ServiceSpec, previous: Record<string, number> | undefined, inUse: ReadonlySet<number>): Promise<{ env: Record<string, string>; ports: Record<string, number>; container?: ContainerAttachment }> {
    if (spec.driver === 'docker' && spec.networkMode === 'bridge') return this.#prepareContainer(alloc, spec);
    if (spec.driver === 'docker' && spec.networkMode === 'host') {
      this.#hostNetworkPorts.set(alloc.id, targetPortsOf(spec));
      await this.#releaseHostPorts();
    }
    const ports: Record<string, number> = {};
    const env: Record<string, string> = {};
    const order = [...spec.ports.map((p) => p.target), ...spec.expose.map((p) => p.port)];
    const taken = new Set(inUse);
    for (const target of targetPortsOf(spec)) {
      const hostMode = spec.ports.find((p) => p.target === target && p.mode === 'host');
      let port: number;
      if (spec.driver !== 'process') port = target; // a container in the host's network listens on its own ports
      else if (hostMode) port = hostMode.published;
      else port = previous?.[String(target)] ?? await this.#freePort(taken, '0.0.0.0');
      taken.add(port);
      this.#handedOut.set(port, Date.now());
      ports[String(target)] = port;
      env[`SHOAL_PORT_${target}`] = String(port);
    }
    const first = order.find((t) => ports[String(t)] !== undefined);
    if (first !== undefined) env['PORT'] = String(ports[String(first)]);
    const view = this.#o.catalog();
    const self = view?.catalogService(serviceKey(alloc.jobName, spec.name));
    if (view && self) {
      for (const [name, to] of reachableServices(self, view.catalog())) {
        if (to.key === self.key && name === spec.name && to.targetPorts.length === 0) continue;
        let firstAddress: string | undefined;
        for (const target of to.targetPorts) {
          const port = await this.#serviceListener(to.key, target);
          const address = `${this.advertisedHost}:${port}`;
          env[`${serviceEnvName(name)}_${target}`] = address;
          firstAddress ??= address;
        }
        if (firstAddress) env[serviceEnvName(name)] = firstAddress;
      }
      await this.#syncVips([self.key]);
      const dns = await this.#dnsFor(self.key);
      env['SHOAL_DNS'] = `${this.advertisedHost}:${dns.port}`;
    }
    return { env, ports };
  }

  /** Closes virtual-address listeners on ports a container in the host's network needs (before it starts). */
  async #releaseHostPorts(): Promise<void> {
    const reserved = new Set([...this.#hostNetworkPorts.values()].flat());
    for (const [k, l] of this.#listeners) {
      if (l.kind !== 'vip' || !reserved.has(l.port)) continue;
      this.#listeners.delete(k);
      await this.#close(l);
      this.#log.info({ service: l.service, address: `${l.host}:${l.port}` }, 'a container in the host\'s network listens on this port: no virtual address on it here');
    }
  }

  /** A container on bridges: a bridge per network it is on, an address on each, the services' addresses there. */
  async #prepareContainer(alloc: Allocation, spec: ServiceSpec): Promise<{ env: Record<string, string>; ports: Record<string, number>; container: ContainerAttachment }> {
    const bridges = this.#bridges;
    if (!bridges) throw new ShoalError('ERR_UNSUPPORTED', 'this agent runs containers on bridges only with the docker driver enabled; use network_mode: host');
    const view = this.#o.catalog();
    const self = view?.catalogService(serviceKey(alloc.jobName, spec.name));
    if (!view || !self) throw new ShoalError('ERR_UNAVAILABLE', `service ${alloc.jobName}/${spec.name} is not in this agent's catalog yet`);
    const container: ContainerAttachment = { networks: [], addresses: {}, dns: [], publish: [] };
    for (const n of self.networks) {
      const bridge = await bridges.ensure(n.network, n.internal === true);
      container.networks.push(bridge.engineName);
      container.addresses[bridge.engineName] = await bridges.containerAddress(bridge, alloc.id, self.key);
      if (container.dns.length === 0) {
        await bridges.dns(bridge);
        container.dns.push(bridge.gateway);
      }
    }
    await this.#syncVips([self.key]);
    const ports: Record<string, number> = {};
    const env: Record<string, string> = {};
    for (const target of targetPortsOf(spec)) {
      ports[String(target)] = target; // a container listens on its own address
      env[`SHOAL_PORT_${target}`] = String(target);
    }
    const first = [...spec.ports.map((p) => p.target), ...spec.expose.map((p) => p.port)][0];
    if (first !== undefined) env['PORT'] = String(first);
    for (const p of spec.ports) {
      if (p.mode !== 'host' || p.published <= 0) continue;
      const hostIp = this.#o.bindHost === '0.0.0.0' || this.#o.bindHost === '' ? undefined : this.#o.bindHost;
      container.publish.push({ port: p.published, target: p.target, protocol: p.protocol, ...(hostIp ? { hostIp } : {}) });
    }
    for (const [name, to] of reachableServices(self, view.catalog())) {
      const vip = bridges.vipOf(self, to);
      if (vip === '' || to.targetPorts.length === 0) continue;
      for (const target of to.targetPorts) env[`${serviceEnvName(name)}_${target}`] = `${vip}:${target}`;
      env[serviceEnvName(name)] = `${vip}:${to.targetPorts[0]}`;
    }
    if (container.dns[0]) env['SHOAL_DNS'] = `${container.dns[0]}:53`;
    return { env, ports, container };
  }

  /** Closes every listener; `removeBridges` (the node left, its tasks are stopped) also removes its bridges. */
  async stop(options: { removeBridges?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    await this.#refreshing;
    if (options.removeBridges && this.#bridges) {
      this.#bridges.forgetContainers(new Set());
      await this.#bridges.prune(new Set());
    }
    this.#bridges?.close();
    this.streams.stop();
    for (const d of this.#dns.values()) d.close();
    this.#dns.clear();
    const closing: Promise<void>[] = [];
    for (const l of this.#listeners.values()) closing.push(this.#close(l));
    this.#listeners.clear();
    await Promise.all(closing);
  }

  // --- listeners -----------------------------------------------------------------------------------------------------

  async #refresh(): Promise<void> {
    const view = this.#o.catalog();
    if (!view || view.catalogIndex === 0) return;
    const catalog = view.catalog();
    const byKey = new Map(catalog.map((e) => [e.key, e]));
    // Ingress: every TCP port published through the mesh, by any job. Two services publishing the same port is
    // refused when the second job is registered; if it happens anyway, the first by key keeps it.
    const wanted = new Map<number, { service: CatalogService; target: number }>();
    for (const e of catalog) for (const p of e.ingress) if (!wanted.has(p.published)) wanted.set(p.published, { service: e, target: p.target });
    for (const [k, l] of this.#listeners) {
      if (l.kind === 'ingress') {
        const w = wanted.get(l.port);
        if (!w || w.service.key !== l.service || w.target !== l.target) {
          this.#listeners.delete(k);
          await this.#close(l);
        }
      } else if (l.kind === 'service' && !byKey.has(l.service)) {
        this.#listeners.delete(k);
        this.#servicePorts.delete(k);
        await this.#close(l);
        this.#saveServicePorts();
      }
    }
    for (const [key, d] of this.#dns) {
      if (byKey.has(key)) continue;
      d.close();
      this.#dns.delete(key);
      this.#servicePorts.delete(`dns:${key}`);
      this.#saveServicePorts();
    }
    const tasks = this.#o.localTasks?.() ?? [];
    const local = new Set(tasks.map((t) => t.allocId));
    for (const id of this.#hostNetworkPorts.keys()) if (this.#o.localTasks && !local.has(id)) this.#hostNetworkPorts.delete(id);
    await this.#refreshBridges(catalog, tasks);
    await this.#pruneTaskListeners(catalog);
    await this.#syncVips(this.#o.localServices?.() ?? []);
    for (const key of new Set(this.#o.localServices?.() ?? [])) if (byKey.has(key)) await this.#dnsFor(key).catch((err: unknown) => this.#log.warn({ service: key, err: describeError(err) }, 'cannot serve DNS for a service'));
    for (const [published, w] of wanted) {
      const k = `ingress:${published}`;
      const existing = this.#listeners.get(k);
      if (existing && existing.server) continue;
      if (existing) this.#listeners.delete(k); // retry one that failed before: the port may be free now
      if (this.#listeners.size >= LIMITS.meshMaxListeners) break;
      const l: Listener = { kind: 'ingress', host: this.#o.bindHost, service: w.service.key, target: w.target, port: published, server: undefined, connections: new Set(), error: '' };
      this.#listeners.set(k, l);
      try {
        l.server = await this.#listen(l, published);
        this.#log.info({ service: l.service, port: published, target: w.target }, 'ingress port open');
      } catch (err) {
        l.error = `port ${published} is taken on this node: ${describeError(err)}`;
        if (!existing || existing.error !== l.error) this.#log.warn({ service: l.service, port: published, err: describeError(err) }, 'cannot publish an ingress port on this node');
      }
    }
    const taken = [...this.#listeners.values()].filter((l) => l.kind === 'ingress' && !l.server && l.error !== '').map((l) => l.port).sort((a, b) => a - b).slice(0, LIMITS.meshMaxPortsTakenReported);
    if (taken.join(',') !== this.#portsTaken.join(',')) {
      this.#portsTaken = taken;
      this.#o.onPortsTaken?.(taken);
    }
  }

  /**
   * The bridges follow the containers here: addresses of containers found running after a restart are taken back,
   * those of containers gone are forgotten, each bridge with containers answers DNS, and bridges of networks no task
   * here is on are removed.
   */
  async #refreshBridges(catalog: readonly CatalogService[], tasks: readonly LocalTask[]): Promise<void> {
    const bridges = this.#bridges;
    if (!bridges) return;
    try {
      await bridges.load(); // once: this agent's bridges from before a restart, with the containers still on them
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, 'cannot list the engine\'s networks; container bridges are left as they are');
      return;
    }
    const keep = new Set<string>();
    for (const t of tasks) {
      keep.add(t.allocId);
      for (const [engineName, ip] of Object.entries(t.addresses ?? {})) bridges.adoptContainer(engineName, ip, t.allocId, t.service);
    }
    bridges.forgetContainers(keep);
    const local = new Set(tasks.map((t) => t.service));
    const networks = new Set(catalog.filter((e) => local.has(e.key)).flatMap((e) => e.networks.map((n) => n.network)));
    for (const b of bridges.bridges) {
      if (b.containers.size > 0) await bridges.dns(b).catch((err: unknown) => this.#log.warn({ network: b.network, err: describeError(err) }, 'cannot answer DNS on a bridge'));
    }
    await bridges.prune(networks);
  }

  /**
   * Listens on the virtual addresses of the services the tasks here reach (each on the service's ports), and stops
   * listening on those no task here reaches any more. `local` are the services of the tasks on this node.
   */
  async #syncVips(local: readonly string[]): Promise<void> {
    const view = this.#o.catalog();
    if (!view) return;
    const catalog = view.catalog();
    const wanted = new Map<string, { service: string; vip: string; port: number; onlyFrom?: string }>();
    for (const key of new Set(local)) {
      const from = view.catalogService(key);
      if (!from) continue;
      for (const to of new Set(reachableServices(from, catalog).values())) {
        const vip = sharedVip(from, to);
        if (vip === '') continue;
        for (const port of to.targetPorts) wanted.set(`vip:${vip}:${port}`, { service: to.key, vip, port });
      }
    }
    // Containers reach every service on their bridges' networks at its address on the bridge.
    for (const w of await this.#bridges?.serviceListeners(catalog) ?? []) wanted.set(`vip:${w.host}:${w.port}`, { service: w.service, vip: w.host, port: w.port, onlyFrom: w.onlyFrom });
    // A container in the host's network holds these ports on every address: no virtual address may take them.
    const reserved = new Set([...this.#hostNetworkPorts.values()].flat());
    for (const [k, w] of wanted) if (reserved.has(w.port)) wanted.delete(k);
    // Only a full refresh (every local service) may close what is no longer wanted; a task starting adds only.
    if (local.length === new Set(this.#o.localServices?.() ?? local).size) {
      for (const [k, l] of this.#listeners) {
        const w = wanted.get(k);
        if (l.kind === 'vip' && (!w || w.service !== l.service)) {
          this.#listeners.delete(k);
          await this.#close(l);
        }
      }
    }
    for (const [k, w] of wanted) {
      const existing = this.#listeners.get(k);
      // Listening, or being opened by a task starting at the same moment (no error yet): nothing to do.
      if (existing && (existing.server || existing.error === '')) continue;
      if (this.#listeners.size >= LIMITS.meshMaxListeners) break;
      const l: Listener = { kind: 'vip', host: w.vip, service: w.service, target: w.port, port: w.port, server: undefined, connections: new Set(), error: '', ...(w.onlyFrom ? { onlyFrom: w.onlyFrom } : {}) };
      this.#listeners.set(k, l);
      try {
        l.server = await this.#listen(l, w.port);
      } catch (err) {
        l.error = `cannot listen on ${w.vip}:${w.port}: ${describeError(err)}`;
        if (!existing) this.#log.warn({ service: w.service, vip: w.vip, port: w.port, err: describeError(err) }, 'cannot listen on a virtual address');
      }
    }
  }

  /** The DNS server of a service's tasks on this node, started if needed on a persisted port. */
  #dnsFor(service: string): Promise<ServiceDns> {
    const running = this.#dns.get(service);
    if (running) return Promise.resolve(running);
    let opening = this.#dnsOpening.get(service);
    if (!opening) {
      opening = this.#openDns(service).finally(() => this.#dnsOpening.delete(service));
      this.#dnsOpening.set(service, opening);
    }
    return opening;
  }

  async #openDns(service: string): Promise<ServiceDns> {
    this.#upstreams ??= this.#o.dnsUpstreams ?? systemUpstreams();
    const k = `dns:${service}`;
    const saved = this.#servicePorts.get(k);
    const candidates = saved !== undefined ? [saved] : [];
    const taken = new Set<number>();
    for (let i = 0; i < LIMITS.meshMaxPortProbes; i++) {
      const port = candidates.shift() ?? await this.#freePort(taken, this.#o.bindHost);
      const dns = new ServiceDns({ asker: service, taskAddresses: (_from, to) => this.#taskAddresses(to, undefined), catalog: this.#o.catalog, upstreams: this.#upstreams, logger: this.#log });
      try {
        await dns.listen(this.#o.bindHost, port);
      } catch {
        taken.add(port);
        continue;
      }
      this.#dns.set(service, dns);
      if (saved !== port) {
        this.#servicePorts.set(k, port);
        this.#saveServicePorts();
      }
      return dns;
    }
    throw new ShoalError('ERR_NO_PORT', `no free port in --task-ports ${this.#o.taskPorts.low}-${this.#o.taskPorts.high} for the DNS server of ${service}`);
  }

  /**
   * The port of the listener for a service's target port, opened if needed (and persisted). Tasks starting at the
   * same time share one opening: two listeners for one service would give them different addresses.
   */
  #serviceListener(service: string, target: number): Promise<number> {
    const k = `${service}:${target}`;
    const l = this.#listeners.get(k);
    if (l?.server) return Promise.resolve(l.port);
    let opening = this.#opening.get(k);
    if (!opening) {
      opening = this.#openServiceListener(service, target).finally(() => this.#opening.delete(k));
      this.#opening.set(k, opening);
    }
    return opening;
  }

  async #openServiceListener(service: string, target: number): Promise<number> {
    const k = `${service}:${target}`;
    const l = this.#listeners.get(k);
    if (l?.server) return l.port;
    const saved = this.#servicePorts.get(k);
    if (saved !== undefined) {
      try {
        await this.#openService(service, target, saved);
        return saved;
      } catch (err) {
        this.#log.warn({ service, target, port: saved, err: describeError(err) }, 'a service listener\'s port is taken; choosing another');
      }
    }
    if (this.#listeners.size >= LIMITS.meshMaxListeners) throw new ShoalError('ERR_LIMIT_EXCEEDED', `this agent holds ${this.#listeners.size} listeners (limit meshMaxListeners)`);
    const taken = new Set<number>();
    for (let i = 0; i < LIMITS.meshMaxPortProbes; i++) {
      const port = await this.#freePort(taken, this.#o.bindHost);
      try {
        await this.#openService(service, target, port);
        this.#servicePorts.set(k, port);
        this.#saveServicePorts();
        return port;
      } catch {
        taken.add(port);
      }
    }
    throw new ShoalError('ERR_NO_PORT', `no free port in --task-ports ${this.#o.taskPorts.low}-${this.#o.taskPorts.high} for a listener of ${service}`);
  }

  async #openService(service: string, target: number, port: number): Promise<void> {
    const k = `${service}:${target}`;
    const l: Listener = { kind: 'service', host: this.#o.bindHost, service, target, port, server: undefined, connections: new Set(), error: '' };
    l.server = await this.#listen(l, port);
    const old = this.#listeners.get(k);
    if (old) await this.#close(old);
    this.#listeners.set(k, l);
  }

  #listen(l: Listener, port: number): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.#accept(l, socket));
      server.once('error', reject);
      server.listen({ host: l.host, port, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.#log.warn({ service: l.service, port, err: describeError(err) }, 'listener error'));
        resolve(server);
      });
    });
  }

  #close(l: Listener): Promise<void> {
    for (const s of l.connections) s.destroy();
    l.connections.clear();
    const server = l.server;
    l.server = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  /** A free port in the task range: not given to a task or a listener, and bindable now on `host`. */
  async #freePort(taken: ReadonlySet<number>, host: string): Promise<number> {
    const { low, high } = this.#o.taskPorts;
    const size = high - low + 1;
    const ours = new Set<number>([...this.#listeners.values()].map((l) => l.port));
    for (const p of this.#servicePorts.values()) ours.add(p);
    const recent = Date.now() - HANDED_OUT_HOLD_MS;
    for (const [p, at] of this.#handedOut) {
      if (at < recent) this.#handedOut.delete(p);
      else ours.add(p);
    }
    for (let tries = 0, probes = 0; tries < size && probes < LIMITS.meshMaxPortProbes; tries++) {
      const port = low + ((this.#cursor++) % size);
      if (taken.has(port) || ours.has(port)) continue;
      probes++;
      if (await bindable(host, port)) return port;
    }
    throw new ShoalError('ERR_NO_PORT', `no free port in --task-ports ${low}-${high} (${taken.size + ours.size} given out; ${LIMITS.meshMaxPortProbes} probed)`);
  }

  #saveServicePorts(): void {
    try {
      writeFileDurably(join(this.#o.dataDir, LISTENERS_FILE), JSON.stringify(Object.fromEntries([...this.#servicePorts].sort())));
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, `could not save ${LISTENERS_FILE}: after a restart, tasks' service addresses may change`);
    }
  }

  // --- single tasks (tasks.<service>, dnsrr) ----------------------------------------------------------------------

  /**
   * One address per endpoint of `to` that answers on a port, each listened on (on every target port) by this agent
   * and routed to that task alone: a loopback address for tasks on the host's network, an address of `bridge` for
   * containers on it (a container on the same bridge of this node answers at its own address, directly).
   */
  async #taskAddresses(to: CatalogService, bridge: Bridge | undefined): Promise<string[]> {
    const out: string[] = [];
    for (const e of to.endpoints) {
      const ports = to.targetPorts.filter((p) => e.ports[String(p)] !== undefined);
      if (ports.length === 0) continue;
      const own = bridge ? [...bridge.containers].find(([, c]) => c.allocId === e.allocId)?.[0] : undefined;
      if (own) {
        out.push(own);
        continue;
      }
      const ip = bridge ? await this.#bridges!.serviceAddress(bridge, `task:${e.allocId}`, false) : this.#taskVip(e.allocId);
      for (const port of ports) {
        const k = `task:${ip}:${port}`;
        if (this.#listeners.get(k)?.server) continue;
        if (this.#listeners.size >= LIMITS.meshMaxListeners) throw new ShoalError('ERR_LIMIT_EXCEEDED', `this agent holds ${this.#listeners.size} listeners (limit meshMaxListeners)`);
        const l: Listener = { kind: 'task', host: ip, service: to.key, target: port, port, server: undefined, connections: new Set(), error: '', allocId: e.allocId, ...(bridge ? { onlyFrom: bridge.prefix } : {}) };
        this.#listeners.set(k, l);
        try {
          l.server = await this.#listen(l, port);
        } catch (err) {
          this.#listeners.delete(k);
          throw err;
        }
      }
      out.push(ip);
    }
    return out;
  }

  #taskVip(allocId: string): string {
    const have = this.#taskVips.get(allocId);
    if (have) return have;
    const used = new Set(this.#taskVips.values());
    for (let i = 0; i < TASK_VIP_COUNT; i++) {
      const n = 1 + ((this.#taskVipCursor++) % TASK_VIP_COUNT);
      const ip = `${TASK_VIP_PREFIX}${n >> 8}.${n & 255}`;
      if (used.has(ip)) continue;
      this.#taskVips.set(allocId, ip);
      return ip;
    }
    throw new ShoalError('ERR_LIMIT_EXCEEDED', `every task address of ${TASK_VIP_PREFIX}0.0/16 is given out`);
  }

  /** Closes the listeners of single tasks that are no longer endpoints, and frees their addresses. */
  async #pruneTaskListeners(catalog: readonly CatalogService[]): Promise<void> {
    const live = new Set(catalog.flatMap((e) => e.endpoints.map((x) => x.allocId)));
    for (const [k, l] of this.#listeners) {
      if (l.kind !== 'task' || live.has(l.allocId!)) continue;
      this.#listeners.delete(k);
      await this.#close(l);
    }
    for (const id of this.#taskVips.keys()) if (!live.has(id)) this.#taskVips.delete(id);
    this.#bridges?.forgetTasks(live);
  }

  // --- connections ---------------------------------------------------------------------------------------------------

  #accept(l: Listener, socket: net.Socket): void {
    const from = socket.remoteAddress ?? '';
    if (this.#connections >= LIMITS.meshMaxConnections || l.connections.size >= LIMITS.meshMaxConnectionsPerListener || (l.onlyFrom !== undefined && !from.replace(/^::ffff:/, '').startsWith(l.onlyFrom))) {
      this.#refusedConnections++;
      socket.destroy();
      return;
    }
    this.#connections++;
    l.connections.add(socket);
    socket.once('close', () => {
      this.#connections--;
      l.connections.delete(socket);
    });
    socket.on('error', () => undefined); // the route below, or the stream, reports what matters
    void this.#route(l, socket);
  }

  async #route(l: Listener, socket: net.Socket): Promise<void> {
    const view = this.#o.catalog();
    const entry = view?.catalogService(l.service);
    const key = String(l.target);
    const endpoints = (entry?.endpoints ?? []).filter((e) => e.ports[key] !== undefined && (l.allocId === undefined || e.allocId === l.allocId));
    const now = Date.now();
    for (const [id, until] of this.#failedUntil) if (until <= now) this.#failedUntil.delete(id);
    const failed = new Set(this.#failedUntil.keys());
    const healthy = this.#o.peerHealthy;
    if (healthy) for (const e of endpoints) if (e.nodeId !== this.#o.nodeId && !healthy(e.nodeId)) failed.add(e.allocId);
    const turn = this.#turns.get(l.service) ?? 0;
    this.#turns.set(l.service, turn + 1);
    const order = orderEndpoints({
      endpoints, selfNodeId: this.#o.nodeId, strategy: this.#o.balance ?? 'round-robin', turn,
      active: (id) => this.#active.get(id) ?? 0, failed,
    }).slice(0, LIMITS.meshMaxConnectAttempts);
    for (const e of order) {
      if (socket.destroyed) return;
      try {
        if (e.nodeId === this.#o.nodeId) await this.#connectLocal(socket, this.#bridges?.hostOf(e.allocId) ?? '127.0.0.1', e.ports[key]!);
        else {
          const target: StreamTarget = { allocId: e.allocId, targetPort: l.target, service: l.service };
          await this.streams.open(e.nodeId, target, socket);
        }
        this.#active.set(e.allocId, (this.#active.get(e.allocId) ?? 0) + 1);
        socket.once('close', () => {
          const n = (this.#active.get(e.allocId) ?? 1) - 1;
          if (n <= 0) this.#active.delete(e.allocId);
          else this.#active.set(e.allocId, n);
        });
        return;
      } catch (err) {
        this.#failedUntil.set(e.allocId, Date.now() + LIMITS.meshFailedEndpointHoldMs);
        this.#log.debug({ service: l.service, alloc: e.allocId.slice(0, 8), node: e.nodeId.slice(0, 16), err: describeError(err) }, 'endpoint failed; trying the next');
      }
    }
    if (!socket.destroyed) {
      this.#log.debug({ service: l.service, endpoints: endpoints.length }, 'no endpoint answered; closing the connection');
      socket.destroy();
    }
  }

  /** Connects to a task on this node and joins the client to it; rejects (client untouched) when it does not answer. */
  #connectLocal(client: net.Socket, host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const up = net.connect({ host, port, allowHalfOpen: true });
      const timer = setTimeout(() => up.destroy(new Error(`no answer within ${LIMITS.meshConnectTimeoutMs} ms`)), LIMITS.meshConnectTimeoutMs);
      up.once('error', (err) => {
        clearTimeout(timer);
        reject(new ShoalError('ERR_CONNECT', `${host}:${port}: ${describeError(err)}`));
      });
      up.once('connect', () => {
        clearTimeout(timer);
        up.removeAllListeners('error');
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        up.on('close', () => {
          if (!client.writableEnded) client.destroy();
        });
        client.on('close', () => {
          if (!up.writableEnded) up.destroy();
        });
        client.pipe(up);
        up.pipe(client);
        client.resume();
        resolve();
      });
    });
  }

  /** The last hop, on the node that runs the task: is it an endpoint here, and on which port? */
  #resolveLocal(t: StreamTarget): { host: string; port: number } | { code: string; reason: string } {
    const entry = this.#o.catalog()?.catalogService(t.service);
    const e = entry?.endpoints.find((x) => x.allocId === t.allocId);
    if (!e || e.nodeId !== this.#o.nodeId) return { code: 'ERR_NOT_ENDPOINT', reason: `allocation ${t.allocId.slice(0, 8)} of ${t.service} is not an endpoint on this node` };
    const port = e.ports[String(t.targetPort)];
    if (port === undefined) return { code: 'ERR_NOT_ENDPOINT', reason: `${t.service} does not listen on target port ${t.targetPort}` };
    return { host: this.#bridges?.hostOf(t.allocId) ?? '127.0.0.1', port };
  }
}

function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

