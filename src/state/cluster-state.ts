/**
 * The cluster state machine: jobs, nodes, allocations and evaluations, changed only by applying committed
 * commands in log order. It is deterministic (ids it creates come from a Random seeded by the log index), keeps
 * the indexes the scheduler needs (allocations by node and by job, resources in use per node), and can be
 * snapshotted and restored whole.
 *
 * Plans are applied with optimistic concurrency: a plan computed at an older index is checked against the current
 * state, and if any placement no longer fits or any stop refers to an allocation that changed, the whole plan is
 * rejected and a new evaluation is created, so the scheduler recomputes. A plan is never half-applied.
 */
import { invariant } from '../lib/assert.js';
import { newId } from '../lib/ids.js';
import { Random } from '../lib/random.js';
import type { Job, Resources, ServiceSpec, StateSpec } from '../jobspec/types.js';
import type { ApplyResult, Command, Plan } from './commands.js';
import { LIMITS } from '../lib/limits.js';
import { jobCatalog, jobVipKeys, pickVip, sameEntry, sortedEntries, type CatalogService, type CatalogView } from './catalog.js';
import { holdsResources, isStoreOnly, isTerminal, type Allocation, type EvalTrigger, type Evaluation, type FileObjectInput, type FileObjectKind, type FileObjectRecord, type JobRecord, type NetworkRecord, type NodeRecord } from './types.js';

export interface StateSnapshot {
  index: number;
  /** Absent in snapshots taken before shared networks existed. */
  networks?: NetworkRecord[];
  /** Secrets and configs (secrets encrypted); absent in older snapshots. */
  objects?: FileObjectRecord[];
  /** Virtual addresses by service and network (catalog.ts `vipKey`); absent in older snapshots. */
  vips?: [string, string][];
  /** The partitions of stateful services whose Raft group was bootstrapped; absent in older snapshots. */
  bootstrapped?: { job: string; service: string; partitions: number[] }[];
  jobs: JobRecord[];
  nodes: NodeRecord[];
  allocations: Allocation[];
  evaluations: Evaluation[];
}

const ZERO: Resources = { cpuMillicores: 0, memoryBytes: 0 };

export class ClusterState implements CatalogView {
  #index = 0;
  readonly #jobs = new Map<string, JobRecord>();
  readonly #nodes = new Map<string, NodeRecord>();
  readonly #allocs = new Map<string, Allocation>();
  readonly #evals = new Map<string, Evaluation>();
  readonly #networks = new Map<string, NetworkRecord>();
  /** Secrets and configs, by `objectKey(kind, name)`. */
  readonly #objects = new Map<string, FileObjectRecord>();
  /** Virtual address per service and network, and the addresses in use. */
  readonly #vips = new Map<string, string>();
  readonly #vipsUsed = new Set<string>();
  readonly #evalsByJob = new Map<string, Set<string>>();
  readonly #allocsByNode = new Map<string, Set<string>>();
  readonly #allocsByJob = new Map<string, Set<string>>();
  readonly #usage = new Map<string, Resources>();
  /** Per node and host port, the allocations holding it: normally one (see `portHolder`). */
  readonly #portClaims = new Map<string, Map<string, Allocation[]>>();
  /**
   * Per job and stateful service, the partitions whose Raft group was bootstrapped (a plan placed them with
   * `bootstrap`). A partition's group is bootstrapped once: later replicas join it. Forgotten when every replica is
   * dropped with it (the job stopped, the service removed), so that running it again starts afresh.
   */
  readonly #bootstrapped = new Map<string, Map<string, Set<number>>>();
  #nodeList: NodeRecord[] | undefined;
  /**
   * Per node, the last index at which anything in its slice (its allocations, or a job they belong to) changed;
   * nodes absent from the map last changed at or before `#restoredIndex`. Servers answer clients' slice watches
   * from it (src/state/slice.ts). Not part of the snapshot: it is derived.
   */
  readonly #nodeTouched = new Map<string, number>();
  #restoredIndex = 0;
  /** Nodes whose slice changed since `drainTouchedNodes()` was last called; kept only once someone has called it. */
  #touchedSinceDrain: Set<string> | undefined;
  /** The service catalog (catalog.ts), derived: rebuilt on restore, refreshed per job as commands touch it. */
  readonly #catalog = new Map<string, CatalogService>();
  #catalogIndex = 0;
  /** Jobs whose catalog entries the command being applied may have changed. */
  readonly #catalogDirty = new Set<string>();

  // --- Queries ---------------------------------------------------------------------------------------------------

  get index(): number {
    return this.#index;
  }

  job(name: string): JobRecord | undefined {
    return this.#jobs.get(name);
  }

  jobs(): JobRecord[] {
    return [...this.#jobs.values()];
  }

  node(id: string): NodeRecord | undefined {
    return this.#nodes.get(id);
  }

  /** All nodes, in a stable order. The array is shared and rebuilt only when the node table changes: do not modify it. */
  nodes(): NodeRecord[] {
    this.#nodeList ??= [...this.#nodes.values()];
    return this.#nodeList;
  }

  allocation(id: string): Allocation | undefined {
    return this.#allocs.get(id);
  }

  allocations(): Allocation[] {
    return [...this.#allocs.values()];
  }

  allocationsOnNode(nodeId: string): Allocation[] {
    return [...(this.#allocsByNode.get(nodeId) ?? [])].map((id) => this.#allocs.get(id)!);
  }

  allocationsOfJob(jobName: string): Allocation[] {
    return [...(this.#allocsByJob.get(jobName) ?? [])].map((id) => this.#allocs.get(id)!);
  }

  /** Resources reserved on a node by allocations that hold them. */
  usage(nodeId: string): Resources {
    return this.#usage.get(nodeId) ?? ZERO;
  }

  /**
   * The allocation holding a host port ("8080/tcp") on a node, if any. Plans never place two holders of a port on a
   * node, but a node may report a task it had given up on as running again after its replacement took the port:
   * the port then belongs to the newest claimant. That is a rule of the claimants alone, not of the order they came
   * in, so a replica restored from a snapshot agrees.
   */
  portHolder(nodeId: string, port: string): string | undefined {
    const claims = this.#portClaims.get(nodeId)?.get(port);
    if (!claims || claims.length === 0) return undefined;
    return claims.reduce((a, b) => (b.createIndex > a.createIndex || (b.createIndex === a.createIndex && b.id > a.id) ? b : a)).id;
  }

  /**
   * Whether partition `partition` of a stateful service was bootstrapped: placed once already, so that a replica placed
   * now joins its group and never creates it anew (which would create it empty).
   */
  partitionBootstrapped(jobName: string, service: string, partition: number): boolean {
    return this.#bootstrapped.get(jobName)?.get(service)?.has(partition) ?? false;
  }

  /** Shared networks, sorted by name. */
  networks(): NetworkRecord[] {
    return [...this.#networks.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  network(name: string): NetworkRecord | undefined {
    return this.#networks.get(name);
  }

  /** Jobs (not stopped) whose services use the shared network `name`. */
  jobsOnNetwork(name: string): string[] {
    return [...this.#jobs.values()].filter((r) => !r.stopped && r.job.networks.some((n) => n.external === name)).map((r) => r.job.name).sort();
  }

  /** Secrets (or configs), sorted by name. */
  objects(kind: FileObjectKind): FileObjectRecord[] {
    return [...this.#objects.values()].filter((o) => o.kind === kind).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  object(kind: FileObjectKind, name: string): FileObjectRecord | undefined {
    return this.#objects.get(objectKey(kind, name));
  }

  /** Jobs (not stopped) whose services use the secret (or config) `name`. */
  jobsUsingObject(kind: FileObjectKind, name: string): string[] {
    return [...this.#jobs.values()].filter((r) => !r.stopped && jobObjectNames(r.job, kind).includes(name)).map((r) => r.job.name).sort();
  }

  evaluation(id: string): Evaluation | undefined {
    return this.#evals.get(id);
  }

  /** The job's evaluations, newest first. */
  evaluationsOfJob(jobName: string): Evaluation[] {
    return this.#evalsOf(jobName).sort((a, b) => b.createIndex - a.createIndex || (a.id < b.id ? -1 : 1));
  }

  #evalsOf(jobName: string): Evaluation[] {
    return [...(this.#evalsByJob.get(jobName) ?? [])].map((id) => this.#evals.get(id)!);
  }

  pendingEvaluations(): Evaluation[] {
    return [...this.#evals.values()].filter((e) => e.status === 'pending');
  }

  /** The last index at which the slice of `nodeId` (its allocations and their jobs) changed. */
  nodeTouchedIndex(nodeId: string): number {
    return this.#nodeTouched.get(nodeId) ?? this.#restoredIndex;
  }

  /**
   * The nodes whose slice changed since the previous call (the first call starts the tracking and returns every
   * node with allocations). A server calls it after applying, to answer the slice watches of those nodes' clients.
   */
  drainTouchedNodes(): string[] {
    if (!this.#touchedSinceDrain) {
      this.#touchedSinceDrain = new Set();
      return [...this.#allocsByNode.keys()];
    }
    const out = [...this.#touchedSinceDrain];
    this.#touchedSinceDrain.clear();
    return out;
  }

  #touch(nodeId: string): void {
    this.#nodeTouched.set(nodeId, this.#index);
    this.#touchedSinceDrain?.add(nodeId);
  }

  /** A job record changed: every node with one of its allocations sees it in its slice. */
  #touchJob(jobName: string): void {
    this.#catalogDirty.add(jobName);
    for (const id of this.#allocsByJob.get(jobName) ?? []) this.#touch(this.#allocs.get(id)!.nodeId);
  }

  /** The index of the newest change to the catalog. */
  get catalogIndex(): number {
    return this.#catalogIndex;
  }

  /** Every service of every running job, with its endpoints, sorted by key. */
  catalog(): CatalogService[] {
    return sortedEntries(this.#catalog.values());
  }

  catalogService(key: string): CatalogService | undefined {
    return this.#catalog.get(key);
  }

  /** Recomputes the catalog entries of the jobs the last command touched; bumps the index of those that changed. */
  #refreshCatalog(): void {
    for (const name of this.#catalogDirty) {
      const rec = this.#jobs.get(name);
      const entries = rec ? jobCatalog(rec, this.allocationsOfJob(name), (id) => this.#nodes.get(id)?.status === 'ready', this.#index, (k) => this.#vips.get(k) ?? '') : [];
      const keep = new Set(entries.map((e) => e.key));
      for (const [key, old] of this.#catalog) {
        if (old.job === name && !keep.has(key)) {
          this.#catalog.delete(key);
          this.#catalogIndex = this.#index;
        }
      }
      for (const e of entries) {
        const old = this.#catalog.get(e.key);
        if (old && sameEntry(old, e)) continue;
        this.#catalog.set(e.key, e);
        this.#catalogIndex = this.#index;
      }
    }
    this.#catalogDirty.clear();
  }

  // --- Apply -----------------------------------------------------------------------------------------------------

  /** Applies the command committed at `index`. Indexes must increase. */
  apply(index: number, command: Command): ApplyResult {
    invariant(index > this.#index, `state apply index went backwards: ${this.#index} -> ${index}`);
    this.#index = index;
    const result = this.#applyCommand(index, command);
    if (this.#catalogDirty.size > 0) this.#refreshCatalog();
    return result;
  }

  #applyCommand(index: number, command: Command): ApplyResult {
    const ids = Random.fromSeed(index);
    switch (command.type) {
      case 'job.register': {
        const refusedState = this.#refuseStateful(command.job);
        if (refusedState) return refusedState;
        const objects = command.objects ?? [];
        for (const o of objects) {
          const refused = this.#refuseObject(o);
          if (refused) return refused;
        }
        // Every secret and config the job names must exist, or come with it.
        for (const kind of ['secret', 'config'] as const) {
          for (const name of jobObjectNames(command.job, kind)) {
            if (this.#objects.has(objectKey(kind, name)) || objects.some((o) => o.kind === kind && o.name === name)) continue;
            return { ok: false, code: 'ERR_NOT_FOUND', evalIds: [], message: `${kind} "${name}" (used by job "${command.job.name}") does not exist: create it with \`shoal ${kind} create ${name} FILE\`` };
          }
        }
        const result = this.#registerJob(index, ids, command.job);
        if (result.ok) for (const o of objects) this.#addObject(index, o);
        return result;
      }
      case 'job.stop': {
        const rec = this.#jobs.get(command.name);
        if (!rec) return { ok: false, code: 'ERR_NOT_FOUND', message: `no job named "${command.name}"`, evalIds: [] };
        rec.stopped = true;
        rec.modifyIndex = index;
        this.#assignVips(command.name, []);
        this.#touchJob(command.name);
        return { ok: true, evalIds: [this.#createEval(index, ids, command.name, 'job-stop')] };
      }
      case 'job.scale': {
        const rec = this.#jobs.get(command.name);
        if (!rec) return { ok: false, code: 'ERR_NOT_FOUND', message: `no job named "${command.name}"`, evalIds: [] };
        const svc = rec.job.services.find((s) => s.name === command.service);
        if (!svc) return { ok: false, code: 'ERR_NOT_FOUND', message: `job "${command.name}" has no service "${command.service}" (it has ${rec.job.services.map((s) => s.name).join(', ')})`, evalIds: [] };
        if (svc.deploy.mode === 'global') return { ok: false, code: 'ERR_INVALID_ARGUMENT', message: `service "${command.service}" is global: it runs on every eligible node and cannot be scaled`, evalIds: [] };
        if (svc.state) {
          return {
            ok: false, code: 'ERR_INVALID_ARGUMENT', evalIds: [],
            message: `service "${command.service}" is stateful: it runs ${svc.state.partitions} partition${svc.state.partitions === 1 ? '' : 's'} × ${svc.state.replicas} replica${svc.state.replicas === 1 ? '' : 's'} (x-shoal.state) and cannot be scaled`,
          };
        }
        const job: Job = { ...rec.job, services: rec.job.services.map((s) => (s.name === command.service ? { ...s, deploy: { ...s.deploy, replicas: command.replicas } } : s)) };
        rec.job = job;
        rec.version++;
        rec.stopped = false;
        rec.serviceVersions = nextServiceVersions(rec, job, rec.version);
        rec.modifyIndex = index;
        this.#touchJob(command.name);
        return { ok: true, evalIds: [this.#createEval(index, ids, command.name, 'job-scale')] };
      }
      case 'node.upsert': {
        const existing = this.#nodes.get(command.node.id);
        const rec: NodeRecord = {
          ...command.node,
          status: 'ready',
          eligible: existing?.eligible ?? true,
          draining: existing?.draining ?? false,
          createIndex: existing?.createIndex ?? index,
          modifyIndex: index,
        };
        this.#nodes.set(rec.id, rec);
        this.#nodeList = undefined;
        if (existing?.status !== 'ready') this.#nodeCatalogDirty(rec.id);
        return { ok: true, evalIds: this.#evalJobsForNode(index, ids, rec.id, true) };
      }
      case 'node.status':
      case 'node.eligibility':
      case 'node.drain': {
        const rec = this.#nodes.get(command.nodeId);
        if (!rec) return { ok: false, code: 'ERR_NOT_FOUND', message: `no node with id ${command.nodeId}`, evalIds: [] };
        if (command.type === 'node.status') {
          if (rec.status !== command.status) this.#nodeCatalogDirty(rec.id);
          rec.status = command.status;
        } else if (command.type === 'node.eligibility') rec.eligible = command.eligible;
        else {
          // Draining makes the node ineligible; ending a drain makes it eligible again (as Nomad does by default).
          rec.draining = command.draining;
          rec.eligible = !command.draining;
        }
        rec.modifyIndex = index;
        // A new list: what is memoised per node list (the scheduler's feasible nodes) must see the change.
        this.#nodeList = undefined;
        const widen = (command.type === 'node.status' && command.status === 'ready') || (command.type === 'node.eligibility' && command.eligible) || (command.type === 'node.drain' && !command.draining);
        return { ok: true, evalIds: this.#evalJobsForNode(index, ids, rec.id, widen) };
      }
      case 'plan.apply':
        return this.#applyPlan(index, ids, command.plan);
      case 'network.create': {
        if (this.#networks.has(command.name)) return { ok: false, code: 'ERR_ALREADY_EXISTS', message: `network "${command.name}" already exists`, evalIds: [] };
        if (this.#networks.size >= LIMITS.stateMaxNetworks) return { ok: false, code: 'ERR_LIMIT_EXCEEDED', message: `the cluster has ${this.#networks.size} shared networks (limit stateMaxNetworks)`, evalIds: [] };
        this.#networks.set(command.name, { name: command.name, internal: command.internal, createIndex: index });
        return { ok: true, evalIds: [] };
      }
      case 'network.delete': {
        if (!this.#networks.has(command.name)) return { ok: false, code: 'ERR_NOT_FOUND', message: `no network named "${command.name}"`, evalIds: [] };
        const users = this.jobsOnNetwork(command.name);
        if (users.length > 0) return { ok: false, code: 'ERR_IN_USE', message: `network "${command.name}" is in use by job${users.length > 1 ? 's' : ''} ${users.map((u) => `"${u}"`).join(', ')}: stop ${users.length > 1 ? 'them' : 'it'} first`, evalIds: [] };
        this.#networks.delete(command.name);
        return { ok: true, evalIds: [] };
      }
      case 'object.create': {
        const refused = this.#refuseObject(command.object);
        if (refused) return refused;
        this.#addObject(index, command.object);
        return { ok: true, evalIds: [] };
      }
      case 'object.delete': {
        const key = objectKey(command.kind, command.name);
        if (!this.#objects.has(key)) return { ok: false, code: 'ERR_NOT_FOUND', message: `no ${command.kind} named "${command.name}"`, evalIds: [] };
        const users = this.jobsUsingObject(command.kind, command.name);
        if (users.length > 0) return { ok: false, code: 'ERR_IN_USE', message: `${command.kind} "${command.name}" is in use by job${users.length > 1 ? 's' : ''} ${users.map((u) => `"${u}"`).join(', ')}: stop ${users.length > 1 ? 'them' : 'it'}, or point ${users.length > 1 ? 'them' : 'it'} at another ${command.kind}, first`, evalIds: [] };
        this.#objects.delete(key);
        return { ok: true, evalIds: [] };
      }
      case 'barrier':
        return { ok: true, evalIds: [], index };
      case 'eval.complete': {
        for (const id of command.evalIds) {
          const e = this.#evals.get(id);
          if (e && e.status === 'pending') {
            e.status = 'complete';
            e.modifyIndex = index;
          }
        }
        return { ok: true, evalIds: [] };
      }
      case 'alloc.update': {
        const failedJobs = new Set<string>();
        for (const u of command.updates) {
          const alloc = this.#allocs.get(u.allocId);
          // A report from a node about an allocation placed elsewhere (or long gone) changes nothing.
          if (!alloc || alloc.nodeId !== command.nodeId) continue;
          const held = holdsResources(alloc);
          const wasFailed = alloc.clientStatus === 'failed';
          alloc.clientStatus = u.clientStatus;
          alloc.clientMessage = u.clientMessage;
          alloc.restarts = u.restarts;
          alloc.driverHandle = u.driverHandle;
          if (u.taskPorts && Object.keys(u.taskPorts).length > 0) alloc.taskPorts = { ...u.taskPorts };
          else delete alloc.taskPorts;
          if (u.health) alloc.health = u.health;
          else delete alloc.health;
          alloc.modifyIndex = index;
          this.#touch(alloc.nodeId);
          this.#catalogDirty.add(alloc.jobName);
          this.#adjustUsage(alloc, held);
          if (u.clientStatus === 'failed' && !wasFailed && alloc.desiredStatus === 'run') failedJobs.add(alloc.jobName);
        }
        return { ok: true, evalIds: [...failedJobs].sort().map((job) => this.#createEval(index, ids, job, 'alloc-failed')) };
      }
    }
  }

  /**
   * Why a secret or config cannot be created, or undefined when it can: one of that name with the same digest is
   * already there (creating it again changes nothing), or there is room for it.
   */
  #refuseObject(o: FileObjectInput): ApplyResult | undefined {
    const have = this.#objects.get(objectKey(o.kind, o.name));
    if (have) {
      if (have.digest === o.digest) return undefined;
      return {
        ok: false, code: 'ERR_ALREADY_EXISTS', evalIds: [],
        message: `${o.kind} "${o.name}" already exists with other contents (digest ${have.digest.slice(0, 12)}, new ${o.digest.slice(0, 12)}): a ${o.kind} never changes; give the new value a new name (e.g. "${o.name}_v2") and point the service at it, which rolls the service`,
      };
    }
    if (this.#objects.size >= LIMITS.stateMaxFileObjects) return { ok: false, code: 'ERR_LIMIT_EXCEEDED', evalIds: [], message: `the cluster holds ${this.#objects.size} secrets and configs (limit stateMaxFileObjects)` };
    return undefined;
  }

  /**
   * Why the stateful services of `job` cannot be registered, or undefined. A task beside each replica is not run yet.
   * A running job keeps the layout of its stateful services (partition count, scheme, replicas): keys would move to
   * other partitions, or slots to other partitions, and moving their data is not built; nor may a service become
   * stateful, or stop being so, in place. A stopped job whose service has nothing placed any more may change it: its
   * replicas were dropped with it, and it starts afresh. Declared collections may change.
   */
  #refuseStateful(job: Job): ApplyResult | undefined {
    for (const spec of job.services) {
      if (spec.state === undefined || isStoreOnly(spec)) continue;
      const task = [spec.image !== null ? 'image' : '', (spec.command ?? null) !== null ? 'command' : '', (spec.entrypoint ?? null) !== null ? 'entrypoint' : ''].filter((f) => f !== '');
      return {
        ok: false, code: 'ERR_UNSUPPORTED', evalIds: [],
        message: `service "${spec.name}" is stateful and has a task (${task.join(', ')}): a task beside each replica is not run yet; remove ${task.join(' and ')} to run it as a replicated store`,
      };
    }
    const existing = this.#jobs.get(job.name);
    if (!existing) return undefined;
    // The services with allocations still to run, and those of them with replicas of partitions (looked up once, if
    // needed: most registrations are of stateless jobs that add no service).
    let live: { placed: Set<string>; replicated: Set<string> } | undefined;
    const liveServices = (): { placed: Set<string>; replicated: Set<string> } => {
      if (live) return live;
      live = { placed: new Set(), replicated: new Set() };
      for (const a of this.allocationsOfJob(job.name)) {
        if (a.desiredStatus !== 'run') continue;
        live.placed.add(a.service);
        if (a.partition !== undefined) live.replicated.add(a.service);
      }
      return live;
    };
    const refuse = (message: string): ApplyResult => ({ ok: false, code: 'ERR_INVALID_ARGUMENT', evalIds: [], message });
    for (const spec of job.services) {
      const before = existing.job.services.find((s) => s.name === spec.name);
      if (!before) {
        // Removed from the job, and back before the scheduler stopped what it had placed: which layout that was, the
        // job no longer says.
        const { placed, replicated } = liveServices();
        if (replicated.has(spec.name) || (spec.state !== undefined && placed.has(spec.name))) {
          return refuse(`service "${spec.name}" was removed from the job and its allocations are still being stopped; register it again once they are (shoal job status ${job.name})`);
        }
        continue;
      }
      if (before.state === undefined && spec.state === undefined) continue;
      if (existing.stopped && !liveServices().placed.has(spec.name)) continue;
      const change = stateLayoutChange(spec.name, before.state, spec.state);
      if (change !== undefined) return refuse(change);
    }
    return undefined;
  }

  #addObject(index: number, o: FileObjectInput): void {
    const key = objectKey(o.kind, o.name);
    if (this.#objects.has(key)) return;
    this.#objects.set(key, { ...o, createIndex: index });
  }

  #registerJob(index: number, ids: Random, job: Job): ApplyResult {
    const existing = this.#jobs.get(job.name);
    if (existing && !existing.stopped && JSON.stringify(existing.job) === JSON.stringify(job)) {
      // Registering the same job again changes nothing and schedules nothing (like `nomad job run` on an unchanged file).
      return { ok: true, evalIds: [] };
    }
    // A shared network must exist before a job joins it (and cannot be removed while a job uses it).
    for (const n of job.networks) {
      if (n.external !== null && !this.#networks.has(n.external)) {
        return { ok: false, code: 'ERR_NOT_FOUND', evalIds: [], message: `network "${n.external}" (the job's "${n.name}", external) does not exist: create it with \`shoal network create ${n.external}\`` };
      }
    }
    // Ingress ports answer on every node: one job's claim on a port excludes every other job's.
    for (const spec of job.services) {
      for (const p of spec.ports) {
        if (p.mode !== 'ingress') continue;
        for (const other of this.#jobs.values()) {
          if (other.stopped || other.job.name === job.name) continue;
          const holder = other.job.services.find((o) => o.ports.some((q) => q.mode === 'ingress' && q.published === p.published && q.protocol === p.protocol));
          if (holder) {
            return {
              ok: false, code: 'ERR_PORT_IN_USE', evalIds: [],
              message: `service "${spec.name}" publishes port ${p.published}/${p.protocol} through the routing mesh, but job "${other.job.name}" (service "${holder.name}") already publishes it on every node; choose another port or stop that job`,
            };
          }
        }
      }
    }
    if (!this.#assignVips(job.name, jobVipKeys(job))) {
      return { ok: false, code: 'ERR_LIMIT_EXCEEDED', evalIds: [], message: `no virtual address is free for job "${job.name}" (${this.#vipsUsed.size} in use)` };
    }
    const version = existing ? existing.version + 1 : 1;
    this.#jobs.set(job.name, {
      job,
      version,
      serviceVersions: nextServiceVersions(existing, job, version),
      stopped: false,
      createIndex: existing?.createIndex ?? index,
      modifyIndex: index,
    });
    this.#touchJob(job.name);
    return { ok: true, evalIds: [this.#createEval(index, ids, job.name, 'job-register')] };
  }

  /** Checks a plan against the current state; applies all of it or none of it. */
  #applyPlan(index: number, ids: Random, plan: Plan): ApplyResult {
    const evaluation = this.#evals.get(plan.evalId);
    const rec = this.#jobs.get(plan.jobName);
    const reject = (message: string): ApplyResult => {
      if (evaluation) {
        evaluation.status = 'failed';
        evaluation.modifyIndex = index;
      }
      const evalIds = rec ? [this.#createEval(index, ids, plan.jobName, 'plan-rejected')] : [];
      return { ok: false, code: 'ERR_PLAN_REJECTED', message, evalIds };
    };
    if (!rec) return reject(`job "${plan.jobName}" no longer exists`);
    if (rec.version !== plan.jobVersion) return reject(`job "${plan.jobName}" changed to version ${rec.version} after the plan was computed for version ${plan.jobVersion}`);
    // Per node: resources in use now, minus what the plan's stops free, plus what its placements add.
    const projected = new Map<string, { cpuMillicores: number; memoryBytes: number }>();
    const project = (nodeId: string): { cpuMillicores: number; memoryBytes: number } => {
      let p = projected.get(nodeId);
      if (!p) {
        const used = this.usage(nodeId);
        projected.set(nodeId, (p = { cpuMillicores: used.cpuMillicores, memoryBytes: used.memoryBytes }));
      }
      return p;
    };
    for (const stop of plan.stops) {
      const alloc = this.#allocs.get(stop.allocId);
      if (!alloc) return reject(`allocation ${stop.allocId} to stop does not exist`);
      if (alloc.modifyIndex > plan.baseIndex && alloc.desiredStatus === 'stop') return reject(`allocation ${stop.allocId} was already stopped after the plan was computed`);
      if (holdsResources(alloc)) {
        const p = project(alloc.nodeId);
        p.cpuMillicores -= alloc.resources.cpuMillicores;
        p.memoryBytes -= alloc.resources.memoryBytes;
      }
    }
    const stopped = new Set(plan.stops.map((st) => st.allocId));
    const taking = new Map<string, Set<string>>();
    // The replicas of stateful partitions, live and not stopped by the plan, and those it places, as
    // `job|service|partition|node`: built on the first placement of a partition.
    let replicas: Set<string> | undefined;
    for (const p of plan.placements) {
      if (this.#allocs.has(p.id)) return reject(`allocation id ${p.id} is already taken`);
      const node = this.#nodes.get(p.nodeId);
      if (!node || node.status !== 'ready' || !node.eligible) return reject(`node ${p.nodeId} is no longer ready and eligible`);
      const after = project(p.nodeId);
      after.cpuMillicores += p.resources.cpuMillicores;
      after.memoryBytes += p.resources.memoryBytes;
      if (after.cpuMillicores > node.capacity.cpuMillicores || after.memoryBytes > node.capacity.memoryBytes) {
        return reject(`node ${node.name} no longer has room for allocation ${p.id}`);
      }
      const port = takenPort(this, p.nodeId, p.ports ?? [], stopped, taking);
      if (port !== undefined) return reject(`port ${port} on node ${node.name} is no longer free for allocation ${p.id}`);
      takePorts(taking, p.nodeId, p.ports ?? []);
      if (p.partition !== undefined) {
        // Two replicas of one partition on one node would be one failure domain, and one Raft member.
        replicas ??= this.#liveReplicas(plan, stopped);
        const key = replicaKey(p.jobName, p.service, p.partition, p.nodeId);
        if (replicas.has(key)) return reject(`node ${node.name} already holds a replica of partition ${p.partition} of service "${p.service}": allocation ${p.id} would be a second one there`);
        replicas.add(key);
        if (p.bootstrap !== undefined && this.partitionBootstrapped(p.jobName, p.service, p.partition)) {
          return reject(`partition ${p.partition} of service "${p.service}" was bootstrapped before: allocation ${p.id} must join its group, not bootstrap it again`);
        }
      }
    }
    for (const stop of plan.stops) {
      const alloc = this.#allocs.get(stop.allocId)!;
      const held = holdsResources(alloc);
      alloc.desiredStatus = 'stop';
      alloc.desiredReason = stop.reason;
      if (stop.markLost && alloc.clientStatus !== 'complete' && alloc.clientStatus !== 'failed') alloc.clientStatus = 'lost';
      alloc.modifyIndex = index;
      this.#adjustUsage(alloc, held);
      this.#touch(alloc.nodeId);
      this.#catalogDirty.add(alloc.jobName);
    }
    const created: Allocation[] = [];
    for (const p of plan.placements) {
      // Field by field rather than spread: one object shape for every allocation, and several times faster to
      // build (the C1M benchmark creates a million).
      const alloc: Allocation = {
        id: p.id,
        jobName: p.jobName,
        jobVersion: p.jobVersion,
        service: p.service,
        slot: p.slot,
        nodeId: p.nodeId,
        resources: p.resources,
        desiredStatus: 'run',
        desiredReason: '',
        clientStatus: 'pending',
        clientMessage: '',
        restarts: 0,
        driverHandle: '',
        previousAllocId: p.previousAllocId,
        reschedules: p.reschedules,
        createIndex: index,
        modifyIndex: index,
      };
      if (p.ports && p.ports.length > 0) alloc.ports = p.ports;
      if (p.partition !== undefined) alloc.partition = p.partition;
      if (p.bootstrap !== undefined && p.bootstrap.length > 0) alloc.bootstrap = [...p.bootstrap];
      this.#allocs.set(alloc.id, alloc);
      indexAdd(this.#allocsByNode, alloc.nodeId, alloc.id);
      indexAdd(this.#allocsByJob, alloc.jobName, alloc.id);
      this.#adjustUsage(alloc, false);
      this.#touch(alloc.nodeId);
      created.push(alloc);
    }
    this.#noteBootstrapped(rec, plan);
    if (evaluation) {
      evaluation.status = 'complete';
      evaluation.failedPlacements = plan.failedPlacements;
      evaluation.modifyIndex = index;
    }
    this.#collect(plan.jobName);
    return { ok: true, evalIds: [], allocations: created };
  }

  /** `replicaKey`s of the live replicas of the plan's job that the plan does not stop. */
  #liveReplicas(plan: Plan, stopped: ReadonlySet<string>): Set<string> {
    const out = new Set<string>();
    for (const a of this.allocationsOfJob(plan.jobName)) {
      if (a.partition !== undefined && holdsResources(a) && !stopped.has(a.id)) out.add(replicaKey(a.jobName, a.service, a.partition, a.nodeId));
    }
    return out;
  }

  /**
   * Records the partitions an applied plan bootstrapped, and forgets those whose replicas all go: every partition of a
   * stopped job (its plan stops everything) and of a service no longer in the job.
   */
  #noteBootstrapped(rec: JobRecord, plan: Plan): void {
    let byService = this.#bootstrapped.get(plan.jobName);
    if (byService) {
      for (const service of [...byService.keys()]) {
        if (rec.stopped || !rec.job.services.some((s) => s.name === service && s.state !== undefined)) byService.delete(service);
      }
    }
    for (const p of plan.placements) {
      if (p.partition === undefined || p.bootstrap === undefined || p.bootstrap.length === 0) continue;
      if (!byService) this.#bootstrapped.set(plan.jobName, (byService = new Map()));
      let set = byService.get(p.service);
      if (!set) byService.set(p.service, (set = new Set()));
      set.add(p.partition);
    }
    if (byService && byService.size === 0) this.#bootstrapped.delete(plan.jobName);
  }

  /**
   * Keeps a job's history bounded: of its finished evaluations and of its allocations that are both stopped and
   * finished, only the newest LIMITS.stateMaxHistoryPerJob stay. Deterministic (by index, then id), so every
   * replica collects the same records.
   */
  #collect(jobName: string): void {
    const keep = LIMITS.stateMaxHistoryPerJob;
    const newestFirst = <T extends { modifyIndex: number; id: string }>(a: T, b: T): number => b.modifyIndex - a.modifyIndex || (a.id < b.id ? -1 : 1);
    const dead = this.allocationsOfJob(jobName).filter((a) => a.desiredStatus === 'stop' && isTerminal(a));
    if (dead.length > keep) {
      for (const a of dead.sort(newestFirst).slice(keep)) {
        this.#allocs.delete(a.id);
        this.#touch(a.nodeId);
        this.#allocsByNode.get(a.nodeId)?.delete(a.id);
        this.#allocsByJob.get(a.jobName)?.delete(a.id);
      }
    }
    const done = this.#evalsOf(jobName).filter((e) => e.status !== 'pending');
    if (done.length > keep) {
      for (const e of done.sort(newestFirst).slice(keep)) {
        this.#evals.delete(e.id);
        this.#evalsByJob.get(jobName)?.delete(e.id);
      }
    }
  }

  #adjustUsage(alloc: Allocation, heldBefore: boolean): void {
    const holds = holdsResources(alloc);
    if (holds === heldBefore) return;
    const cur = this.#usage.get(alloc.nodeId) ?? ZERO;
    const sign = holds ? 1 : -1;
    const next = { cpuMillicores: cur.cpuMillicores + sign * alloc.resources.cpuMillicores, memoryBytes: cur.memoryBytes + sign * alloc.resources.memoryBytes };
    invariant(next.cpuMillicores >= 0 && next.memoryBytes >= 0, `resource usage of node ${alloc.nodeId} went negative`);
    this.#usage.set(alloc.nodeId, next);
    if (!alloc.ports || alloc.ports.length === 0) return;
    let claims = this.#portClaims.get(alloc.nodeId);
    if (!claims) this.#portClaims.set(alloc.nodeId, (claims = new Map()));
    for (const port of alloc.ports) {
      const list = (claims.get(port) ?? []).filter((a) => a.id !== alloc.id);
      if (holds) list.push(alloc);
      if (list.length > 0) claims.set(port, list);
      else claims.delete(port);
    }
  }

  /**
   * Gives each of `keys` (a job's services on its networks) a virtual address, keeping the ones it has, and frees the
   * job's addresses no longer needed. False, changing nothing, when the range is full.
   */
  #assignVips(jobName: string, keys: readonly string[]): boolean {
    const prefix = `|${jobName}/`;
    const wanted = new Set(keys);
    const missing = keys.filter((k) => !this.#vips.has(k));
    if (this.#vipsUsed.size + missing.length > LIMITS.stateMaxVips) return false;
    for (const [k, ip] of this.#vips) {
      if (k.includes(prefix) && !wanted.has(k)) {
        this.#vips.delete(k);
        this.#vipsUsed.delete(ip);
      }
    }
    for (const k of missing) {
      const ip = pickVip(k, this.#vipsUsed);
      if (ip === undefined) return false;
      this.#vips.set(k, ip);
      this.#vipsUsed.add(ip);
    }
    return true;
  }

  /** A node became ready or stopped being: its tasks join or leave the catalog. */
  #nodeCatalogDirty(nodeId: string): void {
    for (const id of this.#allocsByNode.get(nodeId) ?? []) this.#catalogDirty.add(this.#allocs.get(id)!.jobName);
  }

  #createEval(index: number, ids: Random, jobName: string, trigger: EvalTrigger): string {
    const id = newId(ids);
    this.#evals.set(id, { id, jobName, trigger, status: 'pending', failedPlacements: {}, createIndex: index, modifyIndex: index });
    indexAdd(this.#evalsByJob, jobName, id);
    return id;
  }

  /**
   * Evaluations a node change calls for: every job with work on the node, and, when the node gained capacity
   * (joined, came back, became eligible), every running job, since it may now place what it could not.
   */
  #evalJobsForNode(index: number, ids: Random, nodeId: string, widened: boolean): string[] {
    const jobs = new Set<string>();
    for (const a of this.allocationsOnNode(nodeId)) if (a.desiredStatus === 'run') jobs.add(a.jobName);
    if (widened) for (const r of this.#jobs.values()) if (!r.stopped) jobs.add(r.job.name);
    return [...jobs].sort().map((job) => this.#createEval(index, ids, job, widened ? 'node-update' : 'node-drain'));
  }

  // --- Snapshots -------------------------------------------------------------------------------------------------

  snapshot(): StateSnapshot {
    return structuredClone({
      index: this.#index,
      networks: this.networks(),
      objects: [...this.#objects.values()].sort((a, b) => (objectKey(a.kind, a.name) < objectKey(b.kind, b.name) ? -1 : 1)),
      vips: [...this.#vips].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
      bootstrapped: [...this.#bootstrapped].flatMap(([job, byService]) => [...byService].map(([service, set]) => ({ job, service, partitions: [...set].sort((a, b) => a - b) }))),
      jobs: this.jobs(),
      nodes: this.nodes(),
      allocations: this.allocations(),
      evaluations: [...this.#evals.values()],
    });
  }

  static restore(snapshot: StateSnapshot): ClusterState {
    const s = new ClusterState();
    const copy = structuredClone(snapshot);
    s.#index = copy.index;
    s.#restoredIndex = copy.index;
    for (const j of copy.jobs) s.#jobs.set(j.job.name, j);
    for (const n of copy.nodes) s.#nodes.set(n.id, n);
    for (const n of copy.networks ?? []) s.#networks.set(n.name, n);
    for (const o of copy.objects ?? []) s.#objects.set(objectKey(o.kind, o.name), o);
    for (const [k, ip] of copy.vips ?? []) {
      s.#vips.set(k, ip);
      s.#vipsUsed.add(ip);
    }
    for (const b of copy.bootstrapped ?? []) {
      let byService = s.#bootstrapped.get(b.job);
      if (!byService) s.#bootstrapped.set(b.job, (byService = new Map()));
      byService.set(b.service, new Set(b.partitions));
    }
    s.#nodeList = undefined;
    for (const e of copy.evaluations) {
      s.#evals.set(e.id, e);
      indexAdd(s.#evalsByJob, e.jobName, e.id);
    }
    for (const a of copy.allocations) {
      s.#allocs.set(a.id, a);
      indexAdd(s.#allocsByNode, a.nodeId, a.id);
      indexAdd(s.#allocsByJob, a.jobName, a.id);
      s.#adjustUsage(a, false);
    }
    for (const name of s.#jobs.keys()) s.#catalogDirty.add(name);
    s.#refreshCatalog();
    s.#catalogIndex = copy.index;
    for (const e of s.#catalog.values()) e.modifyIndex = Math.min(e.modifyIndex, copy.index);
    return s;
  }
}

/** What a service's tasks run: its spec without the replica count (scaling alone replaces nothing). */
export function taskSignature(spec: ServiceSpec, job?: Job): string {
  // What the job declares for the service's secrets, configs and volumes is part of what its tasks run: pointing a
  // secret's key at another cluster name (a rotation) rolls the services that use it, and only those.
  const uses = (list: { name: string }[] | undefined, names: string[]): unknown[] => (list ?? []).filter((d) => names.includes(d.name));
  const declared = job ? {
    secrets: uses(job.secrets, (spec.secrets ?? []).map((r) => r.source)),
    configs: uses(job.configs, (spec.configs ?? []).map((r) => r.source)),
    volumes: uses(job.volumes, spec.volumes.filter((v) => v.type === 'volume').map((v) => v.source)),
  } : {};
  return JSON.stringify({ ...spec, deploy: { ...spec.deploy, replicas: 0 }, declared });
}

/** What a registration would change in the layout of a running stateful service, as the message refusing it. */
function stateLayoutChange(service: string, before: StateSpec | undefined, after: StateSpec | undefined): string | undefined {
  const again = 'or stop the job, which drops its data, and run it again';
  if (before === undefined) return `service "${service}" is stateless in the running job: it cannot become stateful (x-shoal.state) in place; give the stateful service a new name, ${again}`;
  if (after === undefined) return `service "${service}" is stateful in the running job: removing x-shoal.state would abandon its partitions; keep it, ${again}`;
  if (before.partitions !== after.partitions) {
    return `service "${service}": changing the partition count from ${before.partitions} to ${after.partitions} needs a partition split, which is not built; keep partitions: ${before.partitions}, ${again}`;
  }
  if (JSON.stringify(before.scheme) !== JSON.stringify(after.scheme)) {
    return `service "${service}": changing the partition scheme from ${describeScheme(before.scheme)} to ${describeScheme(after.scheme)} moves keys to other partitions, which is not built; keep the scheme, ${again}`;
  }
  if (before.replicas !== after.replicas) {
    return `service "${service}": changing the replicas of each partition from ${before.replicas} to ${after.replicas} is not built; keep replicas: ${before.replicas}, ${again}`;
  }
  return undefined;
}

function describeScheme(scheme: StateSpec['scheme']): string {
  return scheme.kind === 'named' ? `named [${scheme.names.join(', ')}]` : scheme.kind;
}

/** A replica of a stateful partition on a node, as a key (names hold no NUL). */
function replicaKey(job: string, service: string, partition: number, nodeId: string): string {
  return `${job}\u0000${service}\u0000${partition}\u0000${nodeId}`;
}

function nextServiceVersions(previous: JobRecord | undefined, job: Job, version: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of job.services) {
    const before = previous?.job.services.find((s) => s.name === spec.name);
    const kept = before !== undefined && taskSignature(before, previous!.job) === taskSignature(spec, job) ? previous?.serviceVersions[spec.name] : undefined;
    out[spec.name] = kept ?? version;
  }
  return out;
}

/**
 * The first of `ports` a plan cannot take on `nodeId`: held by an allocation the plan does not stop, or already taken
 * by the plan (`taking`, per node). The one rule of host ports, for the scheduler and for applying its plans.
 */
export function takenPort(
  state: { portHolder(nodeId: string, port: string): string | undefined },
  nodeId: string,
  ports: readonly string[],
  stopped: ReadonlySet<string>,
  taking: ReadonlyMap<string, ReadonlySet<string>>,
): string | undefined {
  for (const port of ports) {
    const holder = state.portHolder(nodeId, port);
    if ((holder !== undefined && !stopped.has(holder)) || taking.get(nodeId)?.has(port)) return port;
  }
  return undefined;
}

/**
 * The host ports a replica of `spec` holds on its node, as "8080/tcp": the ports it publishes in host mode (ingress
 * ports belong to the routing mesh on every node). A docker task runs in the host's network, so it also holds the
 * target ports it listens on; a process task is given free ports by its node instead.
 */
export function portsOf(spec: ServiceSpec): string[] {
  // A replicated store runs no task: nothing of it listens on its node.
  if (isStoreOnly(spec)) return [];
  const out = new Set<string>();
  for (const p of spec.ports) if (p.mode === 'host' && p.published > 0) out.add(`${p.published}/${p.protocol}`);
  if (spec.driver === 'docker' && spec.networkMode === 'host') {
    for (const p of spec.ports) if (p.mode === 'ingress') out.add(`${p.target}/${p.protocol}`);
    for (const p of spec.expose) out.add(`${p.port}/${p.protocol}`);
  }
  return [...out];
}

/** Records that a plan takes `ports` on `nodeId`. */
export function takePorts(taking: Map<string, Set<string>>, nodeId: string, ports: readonly string[]): void {
  if (ports.length === 0) return;
  let set = taking.get(nodeId);
  if (!set) taking.set(nodeId, (set = new Set()));
  for (const port of ports) set.add(port);
}

function indexAdd(index: Map<string, Set<string>>, key: string, id: string): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(id);
}

export function objectKey(kind: FileObjectKind, name: string): string {
  return `${kind}/${name}`;
}

/**
 * The secrets and configs the services of a job use (all of them, or only `services`), as `kind/clusterName` keys:
 * what a registration needs to exist, what blocks a removal, and what a node's slice carries.
 */
export function objectsUsed(job: Job, services?: ReadonlySet<string>): Set<string> {
  const used = new Set<string>();
  if (!job.secrets && !job.configs) return used;
  for (const spec of job.services) {
    if (services && !services.has(spec.name)) continue;
    for (const kind of ['secret', 'config'] as const) {
      const declared = kind === 'secret' ? job.secrets : job.configs;
      for (const ref of (kind === 'secret' ? spec.secrets : spec.configs) ?? []) {
        const d = declared?.find((x) => x.name === ref.source);
        if (d) used.add(objectKey(kind, d.clusterName));
      }
    }
  }
  return used;
}

/** The cluster names of the secrets (or configs) a job's services use, sorted. */
export function jobObjectNames(job: Job, kind: FileObjectKind): string[] {
  const prefix = `${kind}/`;
  return [...objectsUsed(job)].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)).sort();
}
