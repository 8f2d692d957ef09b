/**
 * The node side of the control plane on a real agent: drives the NodeCore (src/node) with the replicated state,
 * the clock and the task drivers. Effects are performed in the core's order: a `persist` is written and fsynced
 * before the `start` that follows it, so after a crash the agent knows of every task it may have started.
 *
 *   on kick() (the state changed), after every driver answer and task exit, when a restart delay ends, and as a
 *   safety net on a timer whose period depends on what the node is doing (see #nextRoundMs):
 *     something in progress (a task starting or stopping, a report to send or retry, a state not fresh): reconcileMs
 *     every live task running, nothing in progress: max(reconcileMs, LIMITS.nodeSettledReconcileMs)
 *     no live task: no timer at all (an idle agent must not wake for nothing; kick() brings new allocations)
 *     core.tick(now) ─► core.observe(state)   (only while the state is fresh: a leader is known and applied = commit)
 *       ─► effects: persist (sync, atomic file) ─► start / stop / destroy (async, at most N at once)
 *     core.reports(state) ─► one report in flight to the leader (AllocReports/Update); the state is the ack
 *
 * Task records live in <data-dir>/allocs/<alloc id>.json. At start-up each live record's driver handle goes to
 * `driver.recover()`; what answers is re-attached (its exit watched again), what does not is handed to the restart
 * policy as lost.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ShoalError, describeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Logger } from '../log/logger.js';
import { systemClock } from '../platform/system-clock.js';
import { writeFileDurably } from '../platform/durable-file.js';
import { DriverError } from '../drivers/errors.js';
import { type ExitResult, type HealthCheckSpec, type TaskDriver, type TaskHandle, type TaskSpec } from '../drivers/index.js';
import { NodeCore, type NodeEffect, type NodeStateView, type TaskRecord } from '../node/index.js';
import type { Job, ServiceSpec, VolumeSpec } from '../jobspec/types.js';
import type { AllocUpdate, Allocation } from '../state/index.js';
import { resolveUser } from '../drivers/process.js';
import type { ObjectSource, TaskFiles } from './task-files.js';

export interface NodeRunnerOptions {
  nodeId: string;
  /** The node's name, for a container's host name template ({{.Node.Hostname}}); default: the node id's start. */
  nodeName?: string;
  dataDir: string;
  drivers: ReadonlyMap<string, TaskDriver>;
  logger: Logger;
  /** The replicated state as applied now (the object changes when a snapshot is restored). */
  state: () => NodeStateView & ObjectSource;
  /** True when the state has caught up with the leader (acting on an old state would start what was since stopped). */
  fresh: () => boolean;
  /** Sends status updates to the leader; resolves once they are committed. */
  report: (updates: AllocUpdate[]) => Promise<void>;
  /**
   * How often to compare what runs with the state without being asked while something is in progress (default
   * LIMITS.nodeReconcileMs; the agent passes LIMITS.nodeIdleReconcileMs). The owner must call kick() whenever the
   * state it reads changes or becomes fresh: a node with no live task sets no timer and acts on kicks only.
   */
  reconcileMs?: number;
  /** Gives tasks their ports and the addresses of the services they reach (the service mesh); absent: none. */
  network?: TaskNetwork;
  /** Writes tasks' secrets and configs (absent: a task that uses one fails to start). */
  files?: TaskFiles;
}

/** What a task's network needs before it starts: the ports it listens on and the environment that tells it so. */
export interface TaskNetwork {
  /**
   * Ports (by target port) and environment for a task about to start. `previous` are the ports an earlier run of
   * the same allocation had (kept across restarts); `inUse` every port other live tasks on this node were given.
   * Throws, with what is wrong, when it cannot (no free port in the range).
   */
  prepare(alloc: Allocation, spec: ServiceSpec, previous: Record<string, number> | undefined, inUse: ReadonlySet<number>): Promise<PreparedNetwork>;
}

/** A task's network, as the mesh prepared it. */
export interface PreparedNetwork {
  env: Record<string, string>;
  ports: Record<string, number>;
  /** For a container on bridges: its engine networks (the first its primary), its address on each, its nameserver, its host-mode ports. */
  container?: {
    networks: string[];
    addresses: Record<string, string>;
    dns: string[];
    publish: { port: number; target: number; protocol: 'tcp' | 'udp'; hostIp?: string }[];
  };
}

export interface LogWindow {
  stdout: Buffer;
  stderr: Buffer;
  stdoutOffset: number;
  stderrOffset: number;
  finished: boolean;
}

export class NodeRunner {
  readonly core: NodeCore;
  readonly #o: NodeRunnerOptions;
  readonly #dir: string;
  /** The next safety-net round (see #nextRoundMs); an earlier one armed is kept. */
  #roundTimer: NodeJS.Timeout | undefined;
  #roundAtMs = Infinity;
  #reporting = false;
  /** The last report was not committed: it is retried on a timer, as no state change may come to kick the runner. */
  #reportFailed = false;
  /** The last round found status changes to report (they are sent, or wait for the one in flight). */
  #reportPending = false;
  #stopped = false;
  #running = 0;
  readonly #queue: (() => Promise<void>)[] = [];
  #stepScheduled = false;
  readonly #healthKills = new Set<string>();
  #healthTimer: NodeJS.Timeout | undefined;
  /** Wakes the runner when the earliest restart delay ends (the periodic round may be much further away). */
  #restartTimer: NodeJS.Timeout | undefined;
  #restartAtMs = Infinity;
  /** Per task: whether its handle declares a health check (entries of tasks the core forgot are pruned). */
  readonly #healthChecked = new Map<string, { handle: string; declared: boolean }>();

  constructor(options: NodeRunnerOptions) {
    this.#o = options;
    this.core = new NodeCore(options.nodeId);
    this.#dir = join(options.dataDir, 'allocs');
  }

  /** Loads the task records, re-attaches to the tasks still running, then starts reconciling. */
  async start(): Promise<void> {
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    const restored: { record: TaskRecord; alive: boolean; lostReason?: string }[] = [];
    for (const name of readdirSync(this.#dir)) {
      if (!name.endsWith('.json')) continue;
      const file = join(this.#dir, name);
      let record: TaskRecord;
      try {
        record = JSON.parse(readFileSync(file, 'utf8')) as TaskRecord;
        if (typeof record.allocId !== 'string' || typeof record.phase !== 'string') throw new Error('not a task record');
      } catch (err) {
        this.#o.logger.error({ file, err: describeError(err) }, 'ignoring an unreadable task record');
        continue;
      }
      let alive = false;
      let lostReason: string | undefined;
      let found: string | undefined;
      if (record.phase === 'starting' && record.handle === '') {
        // The agent died during the start: the task may exist although its handle never came back.
        for (const driver of this.#o.drivers.values()) {
          const handle = await driver.find?.(record.allocId).catch(() => undefined);
          if (!handle) continue;
          try {
            await driver.recover(handle);
            alive = (await driver.inspect(handle)).state === 'running';
          } catch (_lost) {
            alive = false;
          }
          if (alive) {
            found = JSON.stringify(handle);
            this.#watch(record.allocId, handle, found);
            this.#o.logger.info({ alloc: record.allocId.slice(0, 8) }, 'adopted a task whose start was interrupted by an agent restart');
          }
          break;
        }
      } else if (record.phase !== 'dead' && record.handle !== '') {
        try {
          const handle = this.#handle(record.handle);
          await this.#driver(handle.driver).recover(handle);
          const status = await this.#driver(handle.driver).inspect(handle);
          alive = status.state === 'running';
          if (!alive) lostReason = status.exit ? exitMessage(status.exit) : 'exited';
          if (alive) this.#watch(record.allocId, handle, record.handle);
        } catch (err) {
          lostReason = describeError(err);
        }
        this.#o.logger.info({ alloc: record.allocId.slice(0, 8), alive, reason: lostReason }, alive ? 're-attached to a task that kept running' : 'a task ended while the agent was down');
      }
      restored.push({ record, alive, ...(lostReason === undefined ? {} : { lostReason }), ...(found === undefined ? {} : { handle: found }) });
    }
    this.core.restore(restored);
    // Secrets of tasks that ended while the agent was down are not left behind.
    this.#o.files?.sweep(new Set(restored.filter((r) => r.alive).map((r) => r.record.allocId)));
    // The first round comes at once; it arms the next one (or none, on a node with nothing to run).
    this.#kick();
    this.#armHealthTimer();
  }

  /**
   * Health supervision runs only while a task with a health check runs: nothing else has a health status to ask
   * the drivers about, and a node whose tasks declare no check must not wake every second for them.
   */
  #armHealthTimer(): void {
    const tasks = this.core.tasks();
    if (this.#healthChecked.size > tasks.length) {
      const ids = new Set(tasks.map((t) => t.allocId));
      for (const id of this.#healthChecked.keys()) if (!ids.has(id)) this.#healthChecked.delete(id);
    }
    const running = !this.#stopped && tasks.some((t) => t.phase === 'running' && t.handle !== '' && this.#hasHealthcheck(t));
    if (running && !this.#healthTimer) {
      this.#healthTimer = setInterval(() => {
        void this.#checkHealth().catch((err: unknown) => this.#o.logger.warn({ err: describeError(err) }, 'health supervision round failed'));
      }, LIMITS.nodeHealthCheckMs);
    } else if (!running && this.#healthTimer) {
      clearInterval(this.#healthTimer);
      this.#healthTimer = undefined;
    }
  }

  /** Whether a task's spec declares a health check; remembered per task and handle, as every round asks. */
  #hasHealthcheck(t: Readonly<TaskRecord>): boolean {
    const known = this.#healthChecked.get(t.allocId);
    if (known?.handle === t.handle) return known.declared;
    let declared: boolean;
    try {
      declared = this.#handle(t.handle).spec.healthcheck !== undefined;
    } catch (_unreadable) {
      // Supervise it as before: the health round then logs what is wrong with the handle.
      declared = true;
    }
    this.#healthChecked.set(t.allocId, { handle: t.handle, declared });
    return declared;
  }

  /** Stops reconciling. Tasks keep running (a restarted agent re-attaches to them), like a Nomad client restart. */
  stop(): void {
    this.#stopped = true;
    if (this.#roundTimer) clearTimeout(this.#roundTimer);
    if (this.#healthTimer) clearInterval(this.#healthTimer);
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#roundTimer = undefined;
    this.#roundAtMs = Infinity;
    this.#healthTimer = undefined;
    this.#restartTimer = undefined;
  }

  /** Stops every task this node runs and waits for them (used when the agent leaves the cluster for good). */
  async stopAll(): Promise<void> {
    const live = this.core.tasks().filter((t) => t.handle !== '' && t.phase !== 'dead');
    await Promise.all(live.map(async (t) => {
      try {
        const handle = this.#handle(t.handle);
        await this.#driver(handle.driver).stop(handle);
      } catch (err) {
        this.#o.logger.warn({ alloc: t.allocId.slice(0, 8), err: describeError(err) }, 'could not stop a task');
      }
    }));
  }

  /** A window of a task's output after the given offsets; waits up to `waitMs` for something new. */
  async logs(allocId: string, offsets: { stdout: number; stderr: number }, maxBytes: number, waitMs: number, signal: AbortSignal): Promise<LogWindow> {
    const deadline = systemClock.nowMs() + waitMs;
    for (;;) {
      const record = this.core.task(allocId);
      if (!record || record.handle === '') {
        const finished = !record || record.phase === 'dead';
        return { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), stdoutOffset: offsets.stdout, stderrOffset: offsets.stderr, finished };
      }
      const finished = record.phase === 'dead';
      const handle = this.#handle(record.handle);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      for await (const chunk of this.#driver(handle.driver).logs(handle, { follow: false })) (chunk.stream === 'stdout' ? out : err).push(chunk.data);
      const all = { stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
      const stdout = all.stdout.subarray(offsets.stdout, offsets.stdout + maxBytes);
      const stderr = all.stderr.subarray(offsets.stderr, offsets.stderr + maxBytes);
      const more = offsets.stdout + stdout.length < all.stdout.length || offsets.stderr + stderr.length < all.stderr.length;
      if (stdout.length > 0 || stderr.length > 0 || finished || systemClock.nowMs() >= deadline || signal.aborted) {
        return {
          stdout, stderr, stdoutOffset: offsets.stdout + stdout.length, stderrOffset: offsets.stderr + stderr.length,
          finished: finished && !more,
        };
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Runs a reconcile round soon (the node's state changed), without waiting for the timer. */
  kick(): void {
    this.#kick();
  }

  /** Runs a reconcile round soon (after a driver answered), without waiting for the timer. */
  #kick(): void {
    if (this.#stepScheduled || this.#stopped) return;
    this.#stepScheduled = true;
    setImmediate(() => {
      this.#stepScheduled = false;
      this.#step();
    });
  }

  #step(): void {
    if (this.#stopped) return;
    const now = systemClock.nowMs();
    this.core.tick(now);
    this.#armRestartTimer(now);
    this.#armHealthTimer();
    const fresh = this.#o.fresh();
    if (!fresh) {
      this.#perform(this.core.drainEffects());
      this.#armRound(now, this.#nextRoundMs(false));
      return;
    }
    const state = this.#o.state();
    this.core.observe(state);
    this.#perform(this.core.drainEffects());
    if (!this.#reporting) {
      const updates = this.core.reports(state);
      this.#reportPending = updates.length > 0;
      if (updates.length > 0) {
        this.#reporting = true;
        this.#o.report(updates).then(
          () => {
            this.#reportFailed = false;
            this.#kick();
          },
          (err: unknown) => {
            this.#reportFailed = true;
            this.#o.logger.debug({ err: describeError(err), updates: updates.length }, 'allocation status report not committed; retrying');
            this.#armRound(systemClock.nowMs(), this.#period());
          },
        ).finally(() => {
          this.#reporting = false;
        });
      }
    }
    this.#armRound(now, this.#nextRoundMs(true));
  }

  #period(): number {
    return this.#o.reconcileMs ?? LIMITS.nodeReconcileMs;
  }

  /**
   * How long until the next safety-net round. Every change that matters wakes the runner by itself (kick() on a
   * state change, a driver answer, a task exit, the restart timer), so the timer only covers what has no event:
   * a report to retry, a state that may become fresh without changing, and an owner's missed kick while tasks run.
   */
  #nextRoundMs(fresh: boolean): number {
    const busy = !fresh || this.#reporting || this.#reportPending || this.#reportFailed || this.#running > 0 || this.#queue.length > 0;
    let live = false;
    let settled = true;
    for (const t of this.core.tasks()) {
      if (t.phase === 'dead') continue;
      live = true;
      if (t.phase !== 'running') settled = false;
    }
    if (busy || (live && !settled)) return this.#period();
    if (live) return Math.max(this.#period(), LIMITS.nodeSettledReconcileMs);
    return Infinity;
  }

  /** Makes sure a round runs within `delayMs` of `now` (Infinity: none is needed); an earlier armed round is kept. */
  #armRound(now: number, delayMs: number): void {
    const at = now + delayMs;
    if (this.#stopped || at === Infinity || at >= this.#roundAtMs) return;
    if (this.#roundTimer) clearTimeout(this.#roundTimer);
    this.#roundAtMs = at;
    this.#roundTimer = setTimeout(() => {
      this.#roundTimer = undefined;
      this.#roundAtMs = Infinity;
      this.#step();
    }, Math.max(0, Math.ceil(delayMs)));
  }

  /** Arms a one-shot wake-up for the earliest restart delay still running, unless one is armed for that time. */
  #armRestartTimer(now: number): void {
    let at = Infinity;
    for (const t of this.core.tasks()) if (t.phase === 'restarting' && !t.unwanted && t.restartAtMs > now) at = Math.min(at, t.restartAtMs);
    if (at === this.#restartAtMs) return;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#restartAtMs = at;
    if (at === Infinity) return;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#restartAtMs = Infinity;
      this.#step();
    }, Math.ceil(at - now));
  }

  #perform(effects: NodeEffect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'persist':
          this.#persist(e.allocId, e.record);
          break;
        case 'start':
          this.#enqueue(() => this.#start(e.allocId, e.alloc, e.spec, e.jobType));
          break;
        case 'stop':
          this.#enqueue(() => this.#stop(e.allocId, e.handle, e.reason));
          break;
        case 'destroy':
          this.#enqueue(async () => {
            try {
              const handle = this.#handle(e.handle);
              await this.#driver(handle.driver).destroy(handle);
            } catch (err) {
              this.#o.logger.warn({ alloc: e.allocId.slice(0, 8), err: describeError(err) }, 'could not destroy a finished task');
            }
            this.#o.files?.remove(e.allocId);
          });
          break;
      }
    }
  }

  #enqueue(op: () => Promise<void>): void {
    this.#queue.push(op);
    this.#drainQueue();
  }

  #drainQueue(): void {
    while (this.#running < LIMITS.nodeMaxConcurrentTaskOps && this.#queue.length > 0) {
      const op = this.#queue.shift()!;
      this.#running++;
      op().catch((err: unknown) => this.#o.logger.error({ err: describeError(err) }, 'task operation failed unexpectedly')).finally(() => {
        this.#running--;
        this.#drainQueue();
        this.#kick();
      });
    }
  }

  async #start(allocId: string, alloc: Allocation, spec: ServiceSpec, jobType: Job['type']): Promise<void> {
    const log = this.#o.logger.child({ alloc: allocId.slice(0, 8), job: alloc.jobName, service: alloc.service, slot: alloc.slot });
    let task: TaskSpec;
    let driver: TaskDriver;
    try {
      task = taskSpecFor(alloc, spec, jobType, this.#o.nodeId, this.#o.nodeName, this.#o.state().job(alloc.jobName)?.job.volumes);
      driver = this.#driver(spec.driver);
    } catch (err) {
      log.error({ err: describeError(err) }, 'cannot start the task');
      this.core.startFailed(allocId, describeError(err), false);
      return;
    }
    if ((spec.secrets?.length ?? 0) > 0 || (spec.configs?.length ?? 0) > 0) {
      const state = this.#o.state();
      const job = state.job(alloc.jobName)?.job;
      try {
        if (!this.#o.files || !job) throw new ShoalError('ERR_UNAVAILABLE', this.#o.files ? `job "${alloc.jobName}" is not known on this node` : 'this agent does not deliver secrets and configs');
        const owner = spec.driver === 'process' && task.user !== undefined ? await resolveUser(allocId, task.user) : null;
        const files = this.#o.files.write(allocId, spec, job, state, owner);
        task = { ...task, env: { ...task.env, ...files.env }, mounts: [...(task.mounts ?? []), ...files.mounts] };
      } catch (err) {
        this.#o.files?.remove(allocId);
        log.warn({ err: describeError(err) }, 'the task\'s secrets and configs could not be written');
        this.core.startFailed(allocId, describeError(err), (err as ShoalError).code === 'ERR_NOT_FOUND');
        return;
      }
    }
    let ports: Record<string, number> = {};
    if (this.#o.network) {
      try {
        const inUse = new Set<number>();
        for (const t of this.core.tasks()) if (t.allocId !== allocId && t.phase !== 'dead') for (const p of Object.values(t.ports ?? {})) inUse.add(p);
        const net = await this.#o.network.prepare(alloc, spec, this.core.task(allocId)?.ports, inUse);
        ports = net.ports;
        task = { ...task, env: { ...task.env, ...net.env } };
        if (net.container) {
          const c = net.container;
          // The agent's nameserver first, so that the cluster's names resolve; the service's own after it.
          task = { ...task, networks: c.networks, addresses: c.addresses, dns: [...c.dns, ...(task.dns ?? [])], ports: c.publish.map((p) => ({ port: p.port, target: p.target, protocol: p.protocol, ...(p.hostIp ? { hostIp: p.hostIp } : {}) })) };
        }
      } catch (err) {
        log.warn({ err: describeError(err) }, 'the task\'s network could not be prepared');
        this.core.startFailed(allocId, describeError(err), true);
        return;
      }
    }
    try {
      const handle = await driver.start(task);
      log.info({ driver: spec.driver, ports }, 'task started');
      const json = JSON.stringify(handle);
      this.core.started(allocId, json, ports, task.healthcheck !== undefined);
      this.#watch(allocId, handle, json);
    } catch (err) {
      const recoverable = err instanceof DriverError ? err.recoverable : true;
      log.warn({ err: describeError(err), recoverable }, 'task did not start');
      this.core.startFailed(allocId, describeError(err), recoverable);
    }
  }

  async #stop(allocId: string, handleJson: string, reason: string): Promise<void> {
    try {
      const handle = this.#handle(handleJson);
      await this.#driver(handle.driver).stop(handle);
      this.#o.logger.info({ alloc: allocId.slice(0, 8), reason }, 'task stopped');
    } catch (err) {
      // A task that is already gone is stopped; anything else is logged and still counted as stopped once the
      // driver no longer reports it running.
      this.#o.logger.warn({ alloc: allocId.slice(0, 8), err: describeError(err) }, 'stopping a task failed');
    }
    this.#o.files?.remove(allocId);
    this.core.stopped(allocId);
  }

  /**
   * Watches a task's exit and hands it to the core — unless the task was already replaced (a health kill restarts
   * it, and the old task's exit must not be taken for the new one's).
   */
  #watch(allocId: string, handle: TaskHandle, json: string): void {
    // A task killed for being unhealthy is handed to the core by the health path, with the reason.
    const current = (): boolean => this.core.task(allocId)?.handle === json && !this.#healthKills.has(allocId);
    this.#driver(handle.driver).wait(handle).then(
      (exit) => {
        if (!current()) return;
        this.core.exited(allocId, { failed: exit.failed, message: exitMessage(exit) });
        this.#kick();
      },
      (err: unknown) => {
        if (!current()) return;
        this.core.exited(allocId, { failed: true, message: `lost: ${describeError(err)}` });
        this.#kick();
      },
    );
  }

  /**
   * Compose health checks: a running task whose driver reports it unhealthy is killed and handed to the restart
   * policy as a failure (as Swarm replaces an unhealthy container).
   */
  async #checkHealth(): Promise<void> {
    for (const t of this.core.tasks()) {
      if (t.phase !== 'running' || t.handle === '' || this.#healthKills.has(t.allocId)) continue;
      const handle = this.#handle(t.handle);
      if (!handle.spec.healthcheck) continue;
      let report;
      try {
        report = (await this.#driver(handle.driver).inspect(handle)).health;
      } catch (_gone) {
        continue; // its exit is reported through wait()
      }
      if (this.core.task(t.allocId)?.handle !== t.handle) continue;
      if (report.status === 'starting' || report.status === 'healthy' || report.status === 'unhealthy') {
        const before = this.core.task(t.allocId)?.health;
        this.core.health(t.allocId, report.status);
        if (before !== report.status) this.#kick();
      }
      if (report.status !== 'unhealthy') continue;
      this.#healthKills.add(t.allocId);
      this.#o.logger.warn({ alloc: t.allocId.slice(0, 8), failingStreak: report.failingStreak, output: report.lastOutput }, 'task is unhealthy; restarting it');
      this.#enqueue(async () => {
        try {
          await this.#driver(handle.driver).stop(handle);
        } catch (err) {
          this.#o.logger.warn({ alloc: t.allocId.slice(0, 8), err: describeError(err) }, 'stopping an unhealthy task failed');
        }
        if (this.core.task(t.allocId)?.handle === t.handle) {
          this.core.exited(t.allocId, { failed: true, message: `unhealthy after ${report.failingStreak} failed checks${report.lastOutput ? ` (${report.lastOutput.trim().slice(0, 200)})` : ''}` });
        }
        this.#healthKills.delete(t.allocId);
      });
    }
  }

  #driver(name: string): TaskDriver {
    const d = this.#o.drivers.get(name);
    if (!d) throw new ShoalError('ERR_DRIVER_UNAVAILABLE', `task driver "${name}" is not available on this node`);
    return d;
  }

  /**
   * The tasks this node runs or is starting, for the mesh: allocation, `<job>/<service>`, and a container's
   * addresses on its bridges from its handle (so a restarted agent knows its containers again).
   */
  localTasks(): { allocId: string; service: string; addresses?: Record<string, string> }[] {
    return this.core.tasks().filter((t) => t.phase !== 'dead').map((t) => {
      let addresses: Record<string, string> | undefined;
      if (t.handle !== '') {
        try {
          const a = this.#handle(t.handle).state['addresses'];
          if (a && typeof a === 'object' && !Array.isArray(a)) addresses = Object.fromEntries(Object.entries(a).filter((e): e is [string, string] => typeof e[1] === 'string'));
        } catch {
          // a handle that does not parse has no addresses; the driver reports it lost
        }
      }
      return { allocId: t.allocId, service: `${t.jobName}/${t.service}`, ...(addresses ? { addresses } : {}) };
    });
  }

  #handle(json: string): TaskHandle {
    return JSON.parse(json) as TaskHandle;
  }

  /** Writes a record atomically and durably (temp file, fsync, rename), or deletes it. */
  #persist(allocId: string, record: TaskRecord | null): void {
    const file = join(this.#dir, `${allocId}.json`);
    if (record === null) {
      rmSync(file, { force: true });
      return;
    }
    writeFileDurably(file, JSON.stringify(record));
  }
}

export function exitMessage(exit: ExitResult): string {
  if (exit.unknownReason) return `exit status unknown (${exit.unknownReason})`;
  if (exit.oomKilled) return 'killed: out of memory';
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exit code ${exit.exitCode ?? 'unknown'}`;
}

function healthFor(h: ServiceSpec['healthcheck']): HealthCheckSpec | undefined {
  if (!h) return undefined;
  const [kind, ...rest] = h.test;
  const test = kind === 'CMD-SHELL' ? { kind: 'cmd-shell' as const, command: rest.join(' ') } : { kind: 'cmd' as const, argv: rest };
  return { test, intervalMs: h.intervalMs, timeoutMs: h.timeoutMs, retries: h.retries, startPeriodMs: h.startPeriodMs };
}

/** The driver-neutral task for an allocation of a service (the drivers validate it). */
export function taskSpecFor(alloc: Allocation, spec: ServiceSpec, jobType: Job['type'], nodeId: string, nodeName = nodeId.slice(0, 16), volumes: readonly VolumeSpec[] = []): TaskSpec {
  const limits = spec.deploy.resources.limits;
  const env = {
    ...spec.environment,
    SHOAL_JOB: alloc.jobName, SHOAL_SERVICE: alloc.service, SHOAL_SLOT: String(alloc.slot), SHOAL_NODE_ID: nodeId, SHOAL_JOB_TYPE: jobType,
  };
  let command: string | undefined;
  let args: string[] | undefined;
  if (spec.driver === 'process') {
    const argv = [...(spec.entrypoint ?? []), ...(spec.command ?? [])];
    command = argv[0];
    args = argv.slice(1);
  } else {
    if (spec.entrypoint) throw new ShoalError('ERR_UNSUPPORTED', `service "${spec.name}": entrypoint is not supported by the docker driver yet; put the program in command`);
    if (spec.command) {
      command = spec.command[0];
      args = spec.command.slice(1);
    }
  }
  const health = healthFor(spec.healthcheck);
  return {
    id: alloc.id,
    name: `${alloc.jobName}.${alloc.service}.${alloc.slot}`,
    ...(spec.image ? { image: spec.image } : {}),
    ...(command === undefined ? {} : { command }),
    ...(args === undefined ? {} : { args }),
    env,
    ...(spec.workingDir ? { workingDir: spec.workingDir } : {}),
    resources: {
      ...(limits.cpuMillicores > 0 ? { cpus: limits.cpuMillicores / 1000 } : {}),
      ...(limits.memoryBytes > 0 ? { memoryBytes: limits.memoryBytes } : {}),
    },
    ports: spec.ports.map((p) => ({ port: p.published, protocol: p.protocol })),
    mounts: spec.volumes.map((v) => {
      if (v.type === 'tmpfs') {
        return { type: 'tmpfs' as const, source: '', target: v.target, ...(v.tmpfsSizeBytes !== undefined ? { tmpfsSizeBytes: v.tmpfsSizeBytes } : {}), ...(v.tmpfsMode !== undefined ? { tmpfsMode: v.tmpfsMode } : {}) };
      }
      if (v.type !== 'volume') return { source: v.source, target: v.target, readOnly: v.readOnly, ...(v.propagation ? { propagation: v.propagation } : {}) };
      // A job's own volume is named after the job; an external one by its own name.
      const def = volumes.find((x) => x.name === v.source);
      return { type: 'volume' as const, source: def?.external ?? `${alloc.jobName}_${v.source}`, target: v.target, readOnly: v.readOnly, driverOpts: def?.driverOpts ?? {}, ...(v.noCopy ? { noCopy: true } : {}) };
    }),
    labels: { ...spec.labels, 'shoal.job': alloc.jobName, 'shoal.service': alloc.service },
    stopSignal: spec.stopSignal,
    stopGraceMs: spec.stopGraceMs,
    ...(health ? { healthcheck: health } : {}),
    networkMode: spec.networkMode,
    ...optionsFor(spec, alloc, nodeId, nodeName),
  };
}

/** A service's options as the driver takes them; the host name's Swarm templates filled in for this task. */
function optionsFor(spec: ServiceSpec, alloc: Allocation, nodeId: string, nodeName: string): Partial<TaskSpec> {
  const o = spec.options;
  if (!o) return {};
  const fill: Record<string, string> = {
    '.Service.Name': alloc.service, '.Service.ID': `${alloc.jobName}/${alloc.service}`, '.Task.Name': `${alloc.jobName}.${alloc.service}.${alloc.slot}`,
    '.Task.Slot': String(alloc.slot), '.Task.ID': alloc.id, '.Node.Hostname': nodeName, '.Node.ID': nodeId,
  };
  const hostname = o.hostname?.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (all, key: string) => fill[key] ?? all);
  return {
    ...(o.user !== null ? { user: o.user } : {}),
    ...(o.capAdd.length ? { capAdd: o.capAdd } : {}),
    ...(o.capDrop.length ? { capDrop: o.capDrop } : {}),
    ...(Object.keys(o.sysctls).length ? { sysctls: o.sysctls } : {}),
    ...(o.ulimits.length ? { ulimits: o.ulimits } : {}),
    ...(o.init ? { init: true } : {}),
    ...(hostname !== undefined ? { hostname } : {}),
    ...(o.extraHosts.length ? { extraHosts: o.extraHosts } : {}),
    ...(o.dns.length ? { dns: o.dns } : {}),
    ...(o.dnsSearch.length ? { dnsSearch: o.dnsSearch } : {}),
    ...(o.dnsOptions.length ? { dnsOptions: o.dnsOptions } : {}),
    ...(o.pidsLimit > 0 ? { pidsLimit: o.pidsLimit } : {}),
    ...(o.readOnly ? { readOnlyRootfs: true } : {}),
    ...(o.platform !== null ? { platform: o.platform } : {}),
    ...(o.runtime !== null ? { runtime: o.runtime } : {}),
  };
}
