/**
 * The node side of the control plane, as a deterministic state machine: which tasks this node should run, when to
 * restart them, when to stop and destroy them, and what to tell the leader. It reads no clock (time comes in with
 * `tick`), sets no timers and touches no driver: it returns effects as data, and the runtime (or the simulator)
 * performs them and reports back what happened (`started`, `startFailed`, `exited`, `stopped`).
 *
 * What it reconciles, on every `observe` of the replicated state:
 *   - an allocation placed here, desired `run`, not finished, that this node has no task for → start it;
 *   - a task whose allocation the leader no longer wants (desired `stop`, or unknown to the state) → stop it;
 *   - a task that exited → the service's restart policy, applied here without asking the leader: restart after
 *     `delayMs` while the attempts inside `windowMs` stay under `maxAttempts`, else report it failed (the leader
 *     may then place a replacement elsewhere);
 *   - what the leader last recorded for each allocation differs from what this node knows → report it. The state
 *     is the acknowledgement: a report that was lost is simply sent again on the next round.
 *
 * Local records (`persist` effects) are written before the task they describe is started, so after an agent
 * restart `restore` knows every task that may still be running and re-attaches instead of starting a duplicate.
 *
 * An allocation of a replicated store (a stateful service without a task, `isStoreOnly`) is not a task: the agent's
 * partition host (src/runtime/partition-host.ts) hosts its replica and reports it. This core ignores it entirely.
 */
import type { Job, RestartPolicy, ServiceSpec } from '../jobspec/types.js';
import { LIMITS } from '../lib/limits.js';
import type { AllocUpdate } from '../state/commands.js';
import { isStoreOnly, type Allocation, type ClientStatus, type HealthStatus } from '../state/types.js';

export type TaskPhase = 'starting' | 'running' | 'restarting' | 'stopping' | 'dead';

/** What a node keeps on disk per task. Plain JSON. */
export interface TaskRecord {
  allocId: string;
  jobName: string;
  service: string;
  phase: TaskPhase;
  /** What the node reports to the leader. */
  clientStatus: ClientStatus;
  clientMessage: string;
  restarts: number;
  /** When each restart happened (ms, the core's time), for the restart policy's window. */
  restartTimesMs: number[];
  /** The driver's handle (JSON) once started; '' before. */
  handle: string;
  /** When a `restarting` task starts again. */
  restartAtMs: number;
  /** When the task became dead (for collecting the oldest dead tasks first). */
  deadAtMs: number;
  /** The leader no longer wants this allocation. */
  unwanted: boolean;
  /** How the task last ended (kept after a restart so users see why it restarted). */
  lastExit?: string;
  /** The ports the running task was given, by target port (the service mesh connects there). */
  ports?: Record<string, number>;
  /** Its health check's status while it runs; absent when the service declares none. */
  health?: HealthStatus;
}

export interface TaskExit {
  failed: boolean;
  /** Human description ("exit code 1", "killed by SIGKILL", "OOM killed"). */
  message: string;
}

export type NodeEffect =
  /** Write (or, with `record: null`, delete) the local record; done before the effects that follow it. */
  | { kind: 'persist'; allocId: string; record: TaskRecord | null }
  /** Start a task for the allocation with this service spec; answer with `started` or `startFailed`. */
  | { kind: 'start'; allocId: string; alloc: Allocation; spec: ServiceSpec; jobType: Job['type'] }
  /** Stop the task (signal, grace, kill); answer with `stopped`. Its files stay (logs remain readable). */
  | { kind: 'stop'; allocId: string; handle: string; reason: string }
  /** Remove everything the driver created for a dead task. No answer expected. */
  | { kind: 'destroy'; allocId: string; handle: string };

/** What the core reads from the replicated state. `ClusterState` implements it. */
export interface NodeStateView {
  readonly index: number;
  allocationsOnNode(nodeId: string): Allocation[];
  allocation(id: string): Allocation | undefined;
  job(name: string): { job: Job } | undefined;
}

export class NodeCore {
  readonly #tasks = new Map<string, TaskRecord>();
  #effects: NodeEffect[] = [];
  #nowMs = 0;

  constructor(readonly nodeId: string) {}

  /**
   * Re-adopts the records found on disk at start-up, with what the driver said about each task. A record still
   * `starting` has no handle (the agent died before the driver answered), yet the start may have gone through: the
   * runtime asks the driver for a task of that allocation (drivers name tasks by allocation id) and passes `alive`
   * and the `handle` it found, so the task is re-attached rather than started a second time.
   */
  restore(records: readonly { record: TaskRecord; alive: boolean; lostReason?: string; handle?: string }[]): void {
    for (const { record, alive, lostReason, handle } of records) {
      const r: TaskRecord = { ...record, restartTimesMs: [...record.restartTimesMs] };
      this.#tasks.set(r.allocId, r);
      if (r.phase === 'dead') continue;
      if (r.phase === 'starting' && r.handle === '' && alive && handle !== undefined && handle !== '') {
        // The start went through while the agent was down: adopt the task, as `started` would have.
        this.#adopt(r, handle);
      } else if (r.phase === 'starting' && r.handle === '') {
        // The agent died between recording the start and the driver answering: nothing known to re-attach to.
        // (The restart policy is applied at the first `observe`, once the service's spec is known.)
        r.phase = 'running';
        this.#pendingExits.set(r.allocId, { failed: true, message: 'the agent restarted while the task was starting' });
      } else if (r.phase === 'restarting') {
        // Its restart timer died with the agent: keep waiting from the recorded time.
      } else if (!alive) {
        r.phase = 'running';
        this.#pendingExits.set(r.allocId, { failed: true, message: `lost while the agent was down${lostReason ? ` (${lostReason})` : ''}` });
      } else if (r.phase === 'stopping') {
        this.#emit({ kind: 'stop', allocId: r.allocId, handle: r.handle, reason: 'stop resumed after an agent restart' });
      } else {
        r.phase = 'running';
      }
    }
  }

  task(allocId: string): Readonly<TaskRecord> | undefined {
    return this.#tasks.get(allocId);
  }

  tasks(): Readonly<TaskRecord>[] {
    return [...this.#tasks.values()];
  }

  /** Advances time: restarts whose delay has passed start now. */
  tick(nowMs: number): void {
    this.#nowMs = Math.max(this.#nowMs, nowMs);
    for (const r of this.#tasks.values()) {
      if (r.phase === 'restarting' && !r.unwanted && r.restartAtMs <= this.#nowMs) this.#pendingStart.add(r.allocId);
    }
  }

  readonly #pendingStart = new Set<string>();
  /** Whether `observe` ran yet (the restart policies are learned there). */
  #observed = false;
  readonly #pendingExits = new Map<string, TaskExit>();

  /** Reconciles with the replicated state (call it with a state that has caught up with the leader). */
  observe(state: NodeStateView): void {
    this.#observed = true;
    const placed = state.allocationsOnNode(this.nodeId).filter((a) => !hostedByPartitions(state, a));
    for (const alloc of placed) {
      const spec = state.job(alloc.jobName)?.job.services.find((s) => s.name === alloc.service);
      if (spec) this.#policies.set(alloc.id, { policy: spec.deploy.restartPolicy, batch: state.job(alloc.jobName)!.job.type === 'batch' });
    }
    for (const [id, exit] of this.#pendingExits) {
      this.#pendingExits.delete(id);
      this.exited(id, exit);
    }
    for (const alloc of placed) {
      const r = this.#tasks.get(alloc.id);
      if (alloc.desiredStatus === 'stop') {
        if (r) this.#unwant(r, alloc.desiredReason || 'stopped by the leader');
        else if (alloc.clientStatus === 'pending' || alloc.clientStatus === 'running') {
          // Stopped before this node ever started it (or after it forgot it): say it is not running.
          const dead = this.#newRecord(alloc);
          dead.unwanted = true;
          this.#tasks.set(alloc.id, dead);
          this.#finish(dead, 'complete', `never started here: ${alloc.desiredReason || 'stopped by the leader'}`);
        }
        continue;
      }
      if (r) continue;
      // Finished here before (the record was collected) or marked finished by the leader: never start again.
      if (alloc.clientStatus === 'complete' || alloc.clientStatus === 'failed' || alloc.clientStatus === 'lost') continue;
      const job = state.job(alloc.jobName);
      const spec = job?.job.services.find((s) => s.name === alloc.service);
      const record = this.#newRecord(alloc);
      this.#tasks.set(alloc.id, record);
      if (!job || !spec) {
        this.#finish(record, 'failed', `job "${alloc.jobName}" has no service "${alloc.service}" in the replicated state`);
        continue;
      }
      this.#start(record, alloc, spec, job.job.type);
    }
    for (const r of this.#tasks.values()) {
      if (r.unwanted) continue;
      const alloc = state.allocation(r.allocId);
      if (!alloc || alloc.nodeId !== this.nodeId) this.#unwant(r, 'the allocation is not in the replicated state');
    }
    for (const id of this.#pendingStart) {
      this.#pendingStart.delete(id);
      const r = this.#tasks.get(id);
      const alloc = state.allocation(id);
      const job = alloc ? state.job(alloc.jobName) : undefined;
      const spec = job?.job.services.find((s) => s.name === alloc?.service);
      if (!r || r.phase !== 'restarting' || r.unwanted || !alloc || !job || !spec) continue;
      this.#start(r, alloc, spec, job.job.type);
    }
    this.#collect();
  }

  /**
   * The driver started the task, listening on `ports` (by target port), with a health check whose first status is
   * `starting` when `checked`.
   */
  started(allocId: string, handle: string, ports: Record<string, number> = {}, checked = false): void {
    const r = this.#tasks.get(allocId);
    if (!r || r.phase !== 'starting') return;
    if (Object.keys(ports).length > 0) r.ports = { ...ports };
    else delete r.ports;
    if (checked) r.health = 'starting';
    else delete r.health;
    this.#adopt(r, handle);
  }

  /** What the task's health check says now (the runner asks the driver while the task runs). */
  health(allocId: string, status: HealthStatus): void {
    const r = this.#tasks.get(allocId);
    if (!r || r.phase !== 'running' || r.health === undefined || r.health === status) return;
    r.health = status;
    this.#persist(r);
  }

  /** A start of `r` succeeded with `handle`: it runs, and is stopped at once if it stopped being wanted meanwhile. */
  #adopt(r: TaskRecord, handle: string): void {
    r.phase = 'running';
    r.handle = handle;
    r.clientStatus = 'running';
    r.clientMessage = r.restarts > 0 ? `restarted ${r.restarts} time${r.restarts === 1 ? '' : 's'}; last exit: ${r.lastExit ?? 'unknown'}` : '';
    this.#persist(r);
    if (r.unwanted) {
      r.phase = 'stopping';
      this.#persist(r);
      this.#emit({ kind: 'stop', allocId: r.allocId, handle, reason: 'no longer wanted' });
    }
  }

  /** The driver could not start the task. `recoverable` false means retrying cannot help (missing image or command). */
  startFailed(allocId: string, message: string, recoverable: boolean): void {
    const r = this.#tasks.get(allocId);
    if (!r || r.phase !== 'starting') return;
    if (r.unwanted) return this.#finish(r, 'complete', `not started: ${r.clientMessage}`);
    if (!recoverable) return this.#finish(r, 'failed', `start failed: ${message}`);
    this.#exited(r, { failed: true, message: `start failed: ${message}` });
  }

  /** The task ended on its own (not through a `stop` effect). */
  exited(allocId: string, exit: TaskExit): void {
    const r = this.#tasks.get(allocId);
    if (!r || r.phase !== 'running') return;
    if (r.unwanted) return this.#finish(r, 'complete', r.clientMessage);
    // Before the first `observe` (right after a restart) no restart policy is known yet: apply it at that observe,
    // as for the tasks found dead by `restore`, rather than treating the exit as final.
    if (!this.#observed) {
      this.#pendingExits.set(allocId, exit);
      return;
    }
    this.#exited(r, exit);
  }

  /** A `stop` effect finished: the task is dead. */
  stopped(allocId: string): void {
    const r = this.#tasks.get(allocId);
    if (!r || r.phase === 'dead') return;
    this.#finish(r, 'complete', r.clientMessage || 'stopped');
  }

  /** Reports for every allocation whose replicated status differs from what this node knows. */
  reports(state: NodeStateView, max = LIMITS.nodeMaxUpdatesPerReport): AllocUpdate[] {
    const out: AllocUpdate[] = [];
    for (const r of this.#tasks.values()) {
      if (out.length >= max) break;
      const a = state.allocation(r.allocId);
      if (!a || a.nodeId !== this.nodeId) continue;
      // Nothing to say about a task that is only being started, or that the leader has written off and that never ran.
      if (r.phase === 'starting' && r.restarts === 0) continue;
      const ports = r.phase === 'running' ? r.ports : undefined;
      const health = r.phase === 'running' ? r.health : undefined;
      if (a.clientStatus === r.clientStatus && a.clientMessage === r.clientMessage && a.restarts === r.restarts && a.driverHandle === r.handle
        && a.health === health && samePorts(a.taskPorts, ports)) continue;
      out.push({
        allocId: r.allocId, clientStatus: r.clientStatus, clientMessage: r.clientMessage, restarts: r.restarts, driverHandle: r.handle,
        ...(ports ? { taskPorts: { ...ports } } : {}), ...(health ? { health } : {}),
      });
    }
    return out;
  }

  drainEffects(): NodeEffect[] {
    const out = this.#effects;
    this.#effects = [];
    return out;
  }

  // --- internals ---------------------------------------------------------------------------------------------------

  #newRecord(alloc: Allocation): TaskRecord {
    return {
      allocId: alloc.id, jobName: alloc.jobName, service: alloc.service, phase: 'starting', clientStatus: 'pending', clientMessage: '',
      restarts: 0, restartTimesMs: [], handle: '', restartAtMs: 0, deadAtMs: 0, unwanted: false,
    };
  }

  #start(r: TaskRecord, alloc: Allocation, spec: ServiceSpec, jobType: Job['type']): void {
    r.phase = 'starting';
    r.clientStatus = 'pending';
    // The handle of the previous run (a restart) names a dead task: a record that is `starting` has no handle until
    // `started`, so that `restore` asks the driver for the allocation's task instead of trusting a stale handle.
    r.handle = '';
    this.#persist(r);
    this.#emit({ kind: 'start', allocId: r.allocId, alloc, spec, jobType });
  }

  #unwant(r: TaskRecord, reason: string): void {
    if (r.unwanted) return;
    r.unwanted = true;
    if (r.phase === 'running') {
      r.phase = 'stopping';
      r.clientMessage = `stopping: ${reason}`;
      this.#persist(r);
      this.#emit({ kind: 'stop', allocId: r.allocId, handle: r.handle, reason });
    } else if (r.phase === 'restarting') {
      this.#finish(r, 'complete', `not restarted: ${reason}`);
    } else if (r.phase === 'starting') {
      // The start is in flight; `started` stops it and `startFailed` finishes it.
      r.clientMessage = reason;
      this.#persist(r);
    } else {
      this.#persist(r);
    }
  }

  /** The restart policy, applied to a task that ended by itself or could not start. */
  #exited(r: TaskRecord, exit: TaskExit): void {
    const spec = this.#policyOf(r);
    const batchDone = !exit.failed && spec.batch;
    const wantsRestart = !batchDone && (spec.policy.condition === 'any' || (spec.policy.condition === 'on-failure' && exit.failed));
    if (!wantsRestart) return this.#finish(r, exit.failed ? 'failed' : 'complete', exit.message);
    const window = spec.policy.windowMs;
    const recent = r.restartTimesMs.filter((t) => window === 0 || t > this.#nowMs - window);
    if (spec.policy.maxAttempts !== null && recent.length >= spec.policy.maxAttempts) {
      return this.#finish(r, 'failed', `${exit.message}; gave up after ${recent.length} restart${recent.length === 1 ? '' : 's'}${window > 0 ? ` within ${window} ms` : ''}`);
    }
    // Keep only what the window can still count (bounded by max attempts when there is no window).
    r.restartTimesMs = [...recent, this.#nowMs].slice(-Math.max(1, Math.min(spec.policy.maxAttempts ?? 1_000, 1_000)));
    r.restarts++;
    r.lastExit = exit.message;
    r.phase = 'restarting';
    r.restartAtMs = this.#nowMs + spec.policy.delayMs;
    r.clientStatus = 'pending';
    r.clientMessage = `${exit.message}; restarting in ${spec.policy.delayMs} ms`;
    this.#persist(r);
    if (spec.policy.delayMs === 0) this.#pendingStart.add(r.allocId);
  }

  /** The restart policy of each task, from its service as the replicated state has it. */
  readonly #policies = new Map<string, { policy: RestartPolicy; batch: boolean }>();

  /** The policy of the task's service; a task whose job the state no longer has is not restarted. */
  #policyOf(r: TaskRecord): { policy: RestartPolicy; batch: boolean } {
    return this.#policies.get(r.allocId) ?? { policy: { condition: 'none', delayMs: 0, maxAttempts: 0, windowMs: 0 }, batch: false };
  }

  #finish(r: TaskRecord, status: ClientStatus, message: string): void {
    r.phase = 'dead';
    r.clientStatus = status;
    r.clientMessage = message;
    r.deadAtMs = this.#nowMs;
    this.#persist(r);
  }

  /** Dead tasks the leader no longer wants are destroyed once more than the kept number of them exist, oldest first. */
  #collect(): void {
    const dead = [...this.#tasks.values()].filter((r) => r.phase === 'dead' && r.unwanted);
    if (dead.length <= LIMITS.nodeMaxDeadTasksKept) return;
    dead.sort((a, b) => a.deadAtMs - b.deadAtMs || (a.allocId < b.allocId ? -1 : 1));
    for (const r of dead.slice(0, dead.length - LIMITS.nodeMaxDeadTasksKept)) {
      this.#tasks.delete(r.allocId);
      this.#policies.delete(r.allocId);
      this.#emit({ kind: 'persist', allocId: r.allocId, record: null });
      if (r.handle !== '') this.#emit({ kind: 'destroy', allocId: r.allocId, handle: r.handle });
    }
  }

  #persist(r: TaskRecord): void {
    this.#emit({ kind: 'persist', allocId: r.allocId, record: { ...r, restartTimesMs: [...r.restartTimesMs] } });
  }

  #emit(e: NodeEffect): void {
    this.#effects.push(e);
  }
}

/** An allocation whose replica the partition host runs and reports: one of a stateful service without a task. */
function hostedByPartitions(state: NodeStateView, alloc: Allocation): boolean {
  if (alloc.partition === undefined) return false;
  const spec = state.job(alloc.jobName)?.job.services.find((s) => s.name === alloc.service);
  return spec !== undefined && isStoreOnly(spec);
}

function samePorts(a: Record<string, number> | undefined, b: Record<string, number> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  const kb = Object.keys(b ?? {});
  return ka.length === kb.length && ka.every((k) => a![k] === b?.[k]);
}
