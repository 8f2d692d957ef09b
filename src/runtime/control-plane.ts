/**
 * The control plane's runtime half: the leader's scheduling loop and the RPC services over the replicated state
 * (Jobs, Allocations, Nodes, AllocReports). Writes go through `leaderOnly` (served on the leader, else forwarded
 * to it); reads are served from this agent's replica once it has applied the caller's `min_index`.
 *
 * Scheduling loop (leader only, one plan in flight):
 *   new term ─► barrier committed (the state now holds everything earlier leaders committed)
 *   pending evaluations, oldest first ─► computePlan(state at index i) ─► propose plan.apply(baseIndex i)
 *   ─► the state machine applies it whole or rejects it (stale: a new evaluation is created and planned again)
 */
import { InvalidArgumentError, NotFoundError, ShoalError, describeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { resolveIdPrefix } from '../lib/ids.js';
import type { Random } from '../lib/random.js';
import type { Logger } from '../log/logger.js';
import { systemClock } from '../platform/system-clock.js';
import { shoal } from '../gen/proto.js';
import type { Job } from '../jobspec/types.js';
import { isValidName } from '../jobspec/checks.js';
import { computePlan } from '../scheduler/index.js';
import { ClusterState, isTerminal, type NodeSlice, type AllocUpdate, type Allocation, type ApplyResult, type Command, type Evaluation, type JobRecord, type NodeRecord } from '../state/index.js';
import {
  AllocReportsUpdate, AllocationsGet, AllocationsList, AllocationsLogs, JobsGet, JobsList, JobsPlan, JobsRegister, JobsScale, JobsStop,
  NetworksCreate, NetworksDelete, NetworksList, NodesDrain, NodesEligibility, NodesList, type CallContext, type MethodDescriptor, type RpcServer,
} from '../rpc/index.js';
import type { RaftGroup } from './raft-group.js';
import type { NodeRunner } from './node-runner.js';
import { registerObjectRpc, sealJobObjects } from './objects-rpc.js';
import type { SecretVault } from './secrets.js';

const CLIENT_STATUSES = new Set(['pending', 'running', 'complete', 'failed', 'lost']);
const HEALTH_STATUSES = new Set(['starting', 'healthy', 'unhealthy']);
const validPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
const MAX_CLIENT_MESSAGE_CHARS = 1_024;
const MAX_DRIVER_HANDLE_CHARS = 64 * 1_024;
const EVALUATIONS_SHOWN = 5;

export interface ControlPlaneOptions {
  nodeId: string;
  logger: Logger;
  random: Random;
  state: () => ClusterState;
  raft: () => RaftGroup | undefined;
  runner: () => NodeRunner | undefined;
  /** This node's slice while the agent is a client (it then has no Raft group and no copy of the whole state). */
  slice: () => NodeSlice | undefined;
  /** A server a client forwards reads to (undefined when none is known). */
  pickServer: () => string | undefined;
  /** The Raft leader as this agent knows it. */
  leaderHint: () => string | undefined;
  /** Serves a write on the leader, or forwards it there. */
  leaderOnly: <Req, Res>(method: MethodDescriptor<Req, Res>, request: Req, ctx: CallContext, local: (raft: RaftGroup) => Promise<Res>) => Promise<Res>;
  /** Proposes a command on the leader; the result is the state machine's, with the index it committed at. */
  propose: (raft: RaftGroup, command: Command, ctx: CallContext) => Promise<ApplyResult & { index?: number }>;
  /** Seals secrets before they are proposed, and opens configs for `Configs.Get`. */
  vault: SecretVault;
  /** Calls a method on another agent over the peer network. */
  callPeer: <Req, Res>(nodeId: string, method: MethodDescriptor<Req, Res>, request: Req, timeoutMs: number) => Promise<Res>;
}

export class ControlPlane {
  readonly #o: ControlPlaneOptions;
  #scheduling = false;
  #readyTerm = -1;
  /** The applied index at which the last round found no pending evaluation: nothing to do until the state moves. */
  #idleAtIndex = -1;

  constructor(options: ControlPlaneOptions) {
    this.#o = options;
  }

  // --- Leader scheduling loop ----------------------------------------------------------------------------------------

  /** Called often (reconcile timer, after applies); runs the loop when this agent leads and nothing is in flight. */
  kick(): void {
    const raft = this.#o.raft();
    if (!raft || this.#scheduling) return;
    const st = raft.status();
    if (st.role !== 'leader') return;
    if (this.#readyTerm === st.term && this.#o.state().index === this.#idleAtIndex) return;
    this.#scheduling = true;
    void this.#schedule(raft, st.term).catch((err: unknown) => {
      this.#o.logger.debug({ err: describeError(err) }, 'scheduling round ended early; retrying');
    }).finally(() => {
      this.#scheduling = false;
    });
  }

  async #schedule(raft: RaftGroup, term: number): Promise<void> {
    const ctx = internalContext(LIMITS.defaultRpcTimeoutMs);
    if (this.#readyTerm !== term) {
      // A new leader may not have applied everything its predecessors committed: one committed write of its own
      // term makes sure it has, before it plans from its state. (If it fails, the next kick tries again.)
      await this.#o.propose(raft, { type: 'barrier' }, ctx);
      this.#readyTerm = term;
    }
    for (let rounds = 0; rounds < 64; rounds++) {
      if (raft.status().role !== 'leader' || raft.status().term !== term) return;
      const state = this.#o.state();
      const pending = state.pendingEvaluations().sort((a, b) => a.createIndex - b.createIndex || (a.id < b.id ? -1 : 1));
      const next = pending[0];
      if (!next) {
        this.#idleAtIndex = state.index;
        return;
      }
      const superseded = pending.filter((e) => e.jobName === next.jobName && e.id !== next.id).map((e) => e.id);
      const plan = computePlan(state, next, this.#o.random);
      if (!plan) {
        await this.#o.propose(raft, { type: 'eval.complete', evalIds: [next.id, ...superseded] }, ctx);
        continue;
      }
      const result = await this.#o.propose(raft, { type: 'plan.apply', plan }, ctx);
      if (!result.ok) {
        this.#o.logger.info({ job: plan.jobName, reason: result.message }, 'plan rejected; planning again on the current state');
        continue;
      }
      if (plan.placements.length > 0 || plan.stops.length > 0) {
        this.#o.logger.info({ job: plan.jobName, eval: plan.evalId.slice(0, 8), place: plan.placements.length, stop: plan.stops.length, unplaced: Object.values(plan.failedPlacements).reduce((n, f) => n + f.missing, 0) }, 'plan applied');
      }
      if (superseded.length > 0) await this.#o.propose(raft, { type: 'eval.complete', evalIds: superseded }, ctx);
    }
  }

  // --- RPC -----------------------------------------------------------------------------------------------------------

  register(rpc: RpcServer): void {
    const o = this.#o;
    rpc.register(JobsRegister, (req, ctx) => o.leaderOnly(JobsRegister, req, ctx, async (raft) => {
      const job = await parseJobJson(req.jobJson);
      const objects = sealJobObjects(job, req, o.vault);
      const result = await this.#write(raft, { type: 'job.register', job, ...(objects.length > 0 ? { objects } : {}) }, ctx);
      const rec = o.state().job(job.name);
      return shoal.v1.RegisterJobResponse.fromObject({
        name: job.name, version: rec?.version ?? 0, evalId: result.evalIds[0] ?? '', index: result.index ?? 0, changed: result.evalIds.length > 0,
      });
    }));
    rpc.register(JobsPlan, (req, ctx) => o.leaderOnly(JobsPlan, req, ctx, async () => this.#plan(await parseJobJson(req.jobJson))));
    rpc.register(JobsStop, (req, ctx) => o.leaderOnly(JobsStop, req, ctx, async (raft) => {
      const name = nonEmpty(req.name, 'job name');
      const result = await this.#write(raft, { type: 'job.stop', name }, ctx);
      return shoal.v1.StopJobResponse.fromObject({ evalId: result.evalIds[0] ?? '', index: result.index ?? 0 });
    }));
    rpc.register(JobsScale, (req, ctx) => o.leaderOnly(JobsScale, req, ctx, async (raft) => {
      const name = nonEmpty(req.name, 'job name');
      const service = nonEmpty(req.service, 'service name');
      if (!(req.replicas >= 0 && req.replicas <= LIMITS.jobMaxReplicas)) throw new InvalidArgumentError(`replicas must be from 0 to ${LIMITS.jobMaxReplicas}, got ${req.replicas}`);
      const result = await this.#write(raft, { type: 'job.scale', name, service, replicas: req.replicas }, ctx);
      return shoal.v1.ScaleJobResponse.fromObject({ evalId: result.evalIds[0] ?? '', index: result.index ?? 0, version: o.state().job(name)?.version ?? 0 });
    }));
    rpc.register(JobsGet, (req, ctx) => this.#serveRead(JobsGet, req, ctx, (state) => {
      const rec = state.job(nonEmpty(req.name, 'job name'));
      if (!rec) throw new NotFoundError(`no job named "${req.name}"`, { job: req.name });
      const evals = state.evaluationsOfJob(rec.job.name);
      const shown = [...evals.filter((e) => e.status === 'pending'), ...evals.filter((e) => e.status !== 'pending').slice(0, EVALUATIONS_SHOWN)];
      return shoal.v1.GetJobResponse.fromObject({
        job: jobSummary(state, rec), jobJson: JSON.stringify(rec.job),
        allocations: state.allocationsOfJob(rec.job.name).sort(byCreation).map((a) => allocToProto(state, a)),
        evaluations: shown.map(evalToProto), index: state.index, portsTaken: portsTakenOf(state, rec.job),
      });
    }));
    rpc.register(JobsList, (req, ctx) => this.#serveRead(JobsList, req, ctx, (state) => {
      const jobs = state.jobs().sort((a, b) => (a.job.name < b.job.name ? -1 : 1)).map((r) => jobSummary(state, r));
      return shoal.v1.ListJobsResponse.fromObject({ jobs, index: state.index });
    }));
    rpc.register(AllocationsList, (req, ctx) => this.#serveRead(AllocationsList, req, ctx, (state) => {
      let allocs = req.job ? state.allocationsOfJob(req.job) : state.allocations();
      if (req.job && !state.job(req.job)) throw new NotFoundError(`no job named "${req.job}"`, { job: req.job });
      if (req.node) {
        const node = resolveNode(state, req.node);
        allocs = allocs.filter((a) => a.nodeId === node.id);
      }
      if (!req.all) allocs = allocs.filter((a) => a.desiredStatus === 'run' || !isTerminal(a));
      return shoal.v1.ListAllocationsResponse.fromObject({ allocations: allocs.sort(byCreation).map((a) => allocToProto(state, a)), index: state.index });
    }));
    rpc.register(AllocationsGet, (req, ctx) => this.#serveRead(AllocationsGet, req, ctx, (state) => {
      const alloc = resolveAlloc(state, req.id);
      return shoal.v1.GetAllocationResponse.fromObject({ allocation: allocToProto(state, alloc), index: state.index });
    }));
    rpc.register(AllocationsLogs, async (req, ctx) => {
      const maxBytes = Math.min(req.maxBytes || LIMITS.allocLogsMaxWindowBytes, LIMITS.allocLogsMaxWindowBytes);
      const waitMs = Math.min(req.waitMs, LIMITS.allocLogsMaxWaitMs, Math.max(0, ctx.timeoutMs - 500));
      const slice = o.raft() ? undefined : o.slice();
      if (slice) {
        // A client knows only its own allocations: serve those, and ask a server about any other.
        const own = resolveIdPrefixOrUndefined(nonEmpty(req.id, 'allocation id'), slice.allocations().map((a) => a.id));
        if (!own) {
          if (ctx.forwardedFrom) throw new ShoalError('ERR_WRONG_NODE', `allocation ${req.id} does not run on this node`);
          const server = o.pickServer();
          if (!server) throw new ShoalError('ERR_NO_SERVER', 'this agent is a client and knows no alive server to look the allocation up; are the servers down?');
          return o.callPeer(server, AllocationsLogs, shoal.v1.AllocationLogsRequest.fromObject({ ...req, waitMs }), Math.max(1, ctx.timeoutMs - 100));
        }
        return this.#localLogs(slice.allocation(own)!, req, maxBytes, waitMs, ctx);
      }
      const state = o.state();
      const alloc = resolveAlloc(state, req.id);
      if (alloc.nodeId !== o.nodeId) {
        // One hop only: a server proxies a call a client forwarded to the node that runs the task; that node serves
        // it or refuses, and never forwards it again.
        if (ctx.forwardedFrom && (!o.raft() || ctx.forwardedFrom === alloc.nodeId)) throw new ShoalError('ERR_WRONG_NODE', `allocation ${alloc.id.slice(0, 8)} does not run on this node`);
        const node = state.node(alloc.nodeId);
        if (node && node.status !== 'ready') throw new ShoalError('ERR_UNAVAILABLE', `allocation ${alloc.id.slice(0, 8)} ran on node ${node.name}, which is ${node.status}: its logs cannot be read now`);
        return o.callPeer(alloc.nodeId, AllocationsLogs, shoal.v1.AllocationLogsRequest.fromObject({ ...req, id: alloc.id, waitMs }), Math.max(1, ctx.timeoutMs - 100));
      }
      return this.#localLogs(alloc, req, maxBytes, waitMs, ctx);
    });
    rpc.register(NodesList, (req, ctx) => this.#serveRead(NodesList, req, ctx, (state) => {
      return shoal.v1.ListNodesResponse.fromObject({ nodes: state.nodes().map((n) => nodeToProto(state, n)).sort((a, b) => (a.name! < b.name! ? -1 : 1)), index: state.index });
    }));
    rpc.register(NodesDrain, (req, ctx) => o.leaderOnly(NodesDrain, req, ctx, async (raft) => {
      const node = resolveNode(o.state(), req.node);
      const result = await this.#write(raft, { type: 'node.drain', nodeId: node.id, draining: req.enable }, ctx);
      return shoal.v1.DrainNodeResponse.fromObject({ nodeId: node.id, index: result.index ?? 0 });
    }));
    rpc.register(NodesEligibility, (req, ctx) => o.leaderOnly(NodesEligibility, req, ctx, async (raft) => {
      const node = resolveNode(o.state(), req.node);
      const result = await this.#write(raft, { type: 'node.eligibility', nodeId: node.id, eligible: req.eligible }, ctx);
      return shoal.v1.NodeEligibilityResponse.fromObject({ nodeId: node.id, index: result.index ?? 0 });
    }));
    rpc.register(NetworksCreate, (req, ctx) => o.leaderOnly(NetworksCreate, req, ctx, async (raft) => {
      const name = nonEmpty(req.name, 'network name');
      if (!isValidName(name)) throw new InvalidArgumentError(`network name "${name}" must be 1-63 lower-case letters, digits, "-" or "_", starting with a letter or digit`);
      const result = await this.#write(raft, { type: 'network.create', name, internal: req.internal === true }, ctx);
      return shoal.v1.CreateNetworkResponse.fromObject({ index: result.index ?? 0 });
    }));
    rpc.register(NetworksDelete, (req, ctx) => o.leaderOnly(NetworksDelete, req, ctx, async (raft) => {
      const result = await this.#write(raft, { type: 'network.delete', name: nonEmpty(req.name, 'network name') }, ctx);
      return shoal.v1.DeleteNetworkResponse.fromObject({ index: result.index ?? 0 });
    }));
    rpc.register(NetworksList, (req, ctx) => this.#serveRead(NetworksList, req, ctx, (state) => shoal.v1.ListNetworksResponse.fromObject({
      networks: state.networks().map((n) => ({ name: n.name, internal: n.internal, jobs: state.jobsOnNetwork(n.name), createIndex: n.createIndex })),
      index: state.index,
    })));
    registerObjectRpc(rpc, {
      vault: o.vault, leaderOnly: o.leaderOnly, state: o.state,
      write: (raft, command, ctx) => this.#write(raft, command, ctx),
      read: (method, req, ctx, local) => this.#serveRead(method, req, ctx, local),
    });
    rpc.register(AllocReportsUpdate, (req, ctx) => {
      // Only an agent reports, over its authenticated peer link (or the leader's own node runner, in process).
      if (!ctx.forwardedFrom || ctx.forwardedFrom !== req.nodeId) {
        throw new ShoalError('ERR_PERMISSION_DENIED', 'allocation status is reported by agents over the peer network, for their own node only');
      }
      return o.leaderOnly(AllocReportsUpdate, req, ctx, async (raft) => this.#acceptReport(raft, req, ctx));
    });
  }

  /** This agent's node runner reports here: accepted directly on the leader, else sent to the leader. */
  async reportLocal(updates: AllocUpdate[]): Promise<void> {
    const raft = this.#o.raft();
    const req = shoal.v1.AllocReportRequest.fromObject({ nodeId: this.#o.nodeId, updates });
    const ctx = internalContext(LIMITS.defaultRpcTimeoutMs, this.#o.nodeId);
    if (raft?.status().role === 'leader') {
      await this.#acceptReport(raft, req, ctx);
      return;
    }
    const leader = raft ? raft.status().leader : this.#o.leaderHint();
    if (!leader) throw new ShoalError('ERR_NO_LEADER', 'no leader known');
    await this.#o.callPeer(leader, AllocReportsUpdate, req, LIMITS.defaultRpcTimeoutMs);
  }

  async #acceptReport(raft: RaftGroup, req: shoal.v1.AllocReportRequest, ctx: CallContext): Promise<shoal.v1.AllocReportResponse> {
    if (req.updates.length > LIMITS.nodeMaxUpdatesPerReport) throw new InvalidArgumentError(`a report carries at most ${LIMITS.nodeMaxUpdatesPerReport} updates, got ${req.updates.length}`);
    const updates: AllocUpdate[] = req.updates.map((raw, i) => {
      const u = { allocId: raw.allocId ?? '', clientStatus: raw.clientStatus ?? '', clientMessage: raw.clientMessage ?? '', restarts: raw.restarts ?? 0, driverHandle: raw.driverHandle ?? '' };
      if (!CLIENT_STATUSES.has(u.clientStatus)) throw new InvalidArgumentError(`updates[${i}].client_status: "${u.clientStatus}" is not one of ${[...CLIENT_STATUSES].join(', ')}`);
      if (u.driverHandle.length > MAX_DRIVER_HANDLE_CHARS) throw new InvalidArgumentError(`updates[${i}].driver_handle is longer than ${MAX_DRIVER_HANDLE_CHARS} characters`);
      const taskPorts: Record<string, number> = {};
      for (const [target, port] of Object.entries(raw.taskPorts ?? {})) {
        if (!validPort(Number(target)) || !validPort(Number(port))) throw new InvalidArgumentError(`updates[${i}].task_ports: ${target} -> ${port} is not a pair of ports`);
        taskPorts[String(Number(target))] = Number(port);
      }
      if (Object.keys(taskPorts).length > LIMITS.driverMaxTaskListEntries) throw new InvalidArgumentError(`updates[${i}].task_ports has more than ${LIMITS.driverMaxTaskListEntries} entries`);
      const health = raw.health ?? '';
      if (health !== '' && !HEALTH_STATUSES.has(health)) throw new InvalidArgumentError(`updates[${i}].health: "${health}" is not one of ${[...HEALTH_STATUSES].join(', ')}`);
      return {
        allocId: u.allocId, clientStatus: u.clientStatus as AllocUpdate['clientStatus'], clientMessage: u.clientMessage.slice(0, MAX_CLIENT_MESSAGE_CHARS), restarts: u.restarts, driverHandle: u.driverHandle,
        ...(Object.keys(taskPorts).length > 0 ? { taskPorts } : {}), ...(health === '' ? {} : { health: health as NonNullable<AllocUpdate['health']> }),
      };
    });
    const result = await this.#o.propose(raft, { type: 'alloc.update', nodeId: req.nodeId, updates }, ctx);
    return shoal.v1.AllocReportResponse.fromObject({ index: result.index ?? 0 });
  }

  async #write(raft: RaftGroup, command: Command, ctx: CallContext): Promise<ApplyResult & { index?: number }> {
    const result = await this.#o.propose(raft, command, ctx);
    if (!result.ok) throw new ShoalError(result.code, result.message);
    this.kick();
    return result;
  }

  /**
   * Serves a read. On a server: linearizable by default (a ReadIndex confirmed through the leader, then answered
   * from this server's copy once it has applied that far), or from its copy as it is with `stale`; `min_index` is
   * waited for either way. On a client, which has no copy: forwarded to a server (the one it watches its slice on).
   */
  async #serveRead<Req extends { minIndex?: number | null; stale?: boolean | null }, Res>(
    method: MethodDescriptor<Req, Res>, req: Req, ctx: CallContext, local: (state: ClusterState) => Res,
  ): Promise<Res> {
    const o = this.#o;
    const raft = o.raft();
    if (!raft) {
      if (ctx.forwardedFrom) throw new ShoalError('ERR_NOT_SERVER', 'this agent is a client: it holds no copy of the cluster state');
      const server = o.pickServer();
      if (!server) throw new ShoalError('ERR_NO_SERVER', 'this agent is a client and knows no alive server to forward the read to; are the servers down?');
      return o.callPeer(server, method, req, Math.max(1, ctx.timeoutMs - Math.min(50, ctx.timeoutMs / 10)));
    }
    if (!req.stale) {
      try {
        await raft.read(Math.max(1, ctx.timeoutMs - Math.min(100, ctx.timeoutMs / 5)));
      } catch (err) {
        throw new ShoalError(err instanceof ShoalError ? err.code : 'ERR_UNAVAILABLE', `a consistent read needs the leader and a quorum: ${describeError(err)}; \`--stale\` reads this server's copy as it is`);
      }
    }
    return local(await this.#read(req.minIndex ?? undefined, ctx));
  }

  async #localLogs(alloc: Allocation, req: shoal.v1.AllocationLogsRequest, maxBytes: number, waitMs: number, ctx: CallContext): Promise<shoal.v1.AllocationLogsResponse> {
    const o = this.#o;
    const runner = o.runner();
    if (!runner) throw new ShoalError('ERR_UNAVAILABLE', 'this agent does not run tasks yet');
    const w = await runner.logs(alloc.id, { stdout: Number(req.stdoutOffset), stderr: Number(req.stderrOffset) }, maxBytes, waitMs, ctx.signal);
    return shoal.v1.AllocationLogsResponse.fromObject({
      stdout: w.stdout, stderr: w.stderr, stdoutOffset: w.stdoutOffset, stderrOffset: w.stderrOffset,
      finished: w.finished || (alloc.desiredStatus === 'stop' && isTerminal(alloc) && runner.core.task(alloc.id) === undefined),
      nodeId: o.nodeId, allocId: alloc.id,
    });
  }

  /** Waits (bounded) until this agent has applied `minIndex`, then returns its state. */
  async #read(minIndex: number | undefined, ctx: CallContext): Promise<ClusterState> {
    const wanted = Number(minIndex ?? 0);
    const deadline = systemClock.nowMs() + Math.min(LIMITS.readMaxMinIndexWaitMs, ctx.timeoutMs);
    while (this.#o.state().index < wanted) {
      if (systemClock.nowMs() >= deadline || ctx.signal.aborted) {
        throw new ShoalError('ERR_DEADLINE_EXCEEDED', `this agent has applied the cluster state up to index ${this.#o.state().index}, not yet ${wanted}; retry, or ask another agent`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.#o.state();
  }

  /** What registering `job` would do, computed on a copy of the leader's state. */
  #plan(job: Job): shoal.v1.PlanJobResponse {
    const state = this.#o.state();
    const before = state.job(job.name);
    const copy = ClusterState.restore(state.snapshot());
    // The job's own secrets and configs come with `job run`; the plan never sees their contents, so the ones not in
    // the cluster yet stand in as placeholders. A registration the state machine would refuse is the plan's error.
    const objects = (['secret', 'config'] as const).flatMap((kind) => ((kind === 'secret' ? job.secrets : job.configs) ?? [])
      .filter((d) => !d.external && !state.object(kind, d.clusterName))
      .map((d) => ({ kind, name: d.clusterName, data: '', digest: 'from-the-job-file', sizeBytes: 0, job: job.name })));
    const applied = copy.apply(copy.index + 1, { type: 'job.register', job, ...(objects.length > 0 ? { objects } : {}) });
    if (!applied.ok) throw new ShoalError(applied.code, applied.message);
    const evaluation = applied.ok && applied.evalIds[0] ? copy.evaluation(applied.evalIds[0]) : undefined;
    const plan = evaluation ? computePlan(copy, evaluation, this.#o.random) : undefined;
    const services = job.services.map((s) => {
      const stopReasons: Record<string, number> = {};
      let stop = 0;
      for (const st of plan?.stops ?? []) {
        const a = state.allocation(st.allocId);
        if (a?.service !== s.name) continue;
        stop++;
        stopReasons[st.reason] = (stopReasons[st.reason] ?? 0) + 1;
      }
      const current = state.allocationsOfJob(job.name).filter((a) => a.service === s.name && a.desiredStatus === 'run').length;
      return { name: s.name, place: plan?.placements.filter((p) => p.service === s.name).length ?? 0, stop, keep: current - stop, stopReasons };
    });
    return shoal.v1.PlanJobResponse.fromObject({
      jobChange: !before ? 'create' : evaluation ? 'update' : 'unchanged',
      currentVersion: before?.version ?? 0,
      services,
      failedPlacements: Object.entries(plan?.failedPlacements ?? {}).map(([service, f]) => ({ service, missing: f.missing, reasons: f.reasons })),
      diff: before ? jsonDiff(before.stopped ? {} : before.job, job) : [],
      index: state.index,
    });
  }
}

function internalContext(timeoutMs: number, forwardedFrom?: string): CallContext {
  return { signal: AbortSignal.timeout(timeoutMs), timeoutMs, remoteAddress: 'internal', ...(forwardedFrom ? { forwardedFrom } : {}) };
}

function nonEmpty(value: string, what: string): string {
  if (!value || value.trim() === '') throw new InvalidArgumentError(`${what} is empty`);
  return value;
}

/**
 * The job a client sent, validated. The job spec's validator (and zod under it) loads on the first job this agent
 * checks: only a leader does, so the other agents never pay its memory.
 */
async function parseJobJson(text: string): Promise<Job> {
  if (!text) throw new InvalidArgumentError('job_json is empty: send the canonical job as JSON (`shoal job run --output FILE` prints it)');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`job_json is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { validateJob } = await import('../jobspec/canonical.js');
  return validateJob(value, 'job_json');
}

function byCreation(a: Allocation, b: Allocation): number {
  return a.createIndex - b.createIndex || (a.service < b.service ? -1 : a.service > b.service ? 1 : a.slot - b.slot);
}

/** The full id `prefix` names among `ids`, or undefined when it names none (still an error when it names several). */
function resolveIdPrefixOrUndefined(prefix: string, ids: string[]): string | undefined {
  if (!ids.some((id) => id.startsWith(prefix))) return undefined;
  return resolveIdPrefix(prefix, ids, 'allocation');
}

function resolveAlloc(state: ClusterState, id: string): Allocation {
  const full = resolveIdPrefix(nonEmpty(id, 'allocation id'), state.allocations().map((a) => a.id), 'allocation');
  return state.allocation(full)!;
}

/** A node by exact name, else by id or unique id prefix. */
function resolveNode(state: ClusterState, text: string): NodeRecord {
  const wanted = nonEmpty(text, 'node');
  const byName = state.nodes().filter((n) => n.name === wanted);
  if (byName.length === 1) return byName[0]!;
  if (byName.length > 1) throw new ShoalError('ERR_AMBIGUOUS_ID', `${byName.length} nodes are named "${wanted}"; use the node id (\`shoal node ls\`)`);
  return state.node(resolveIdPrefix(wanted, state.nodes().map((n) => n.id), 'node (by name or id)'))!;
}

function allocToProto(state: ClusterState, a: Allocation): shoal.v1.IAllocation {
  return {
    id: a.id, jobName: a.jobName, jobVersion: a.jobVersion, service: a.service, slot: a.slot, nodeId: a.nodeId, nodeName: state.node(a.nodeId)?.name ?? '',
    desiredStatus: a.desiredStatus, desiredReason: a.desiredReason, clientStatus: a.clientStatus, clientMessage: a.clientMessage, restarts: a.restarts,
    cpuMillicores: a.resources.cpuMillicores, memoryBytes: a.resources.memoryBytes, previousAllocId: a.previousAllocId, createIndex: a.createIndex, modifyIndex: a.modifyIndex,
    taskPorts: Object.fromEntries(Object.entries(a.taskPorts ?? {}).map(([t, p]) => [Number(t), p])), hostPorts: a.ports ?? [], health: a.health ?? '',
    ...(a.partition === undefined ? {} : { partition: a.partition, stateful: true }),
  };
}

function evalToProto(e: Evaluation): shoal.v1.IEvaluation {
  return {
    id: e.id, jobName: e.jobName, trigger: e.trigger, status: e.status, createIndex: e.createIndex, modifyIndex: e.modifyIndex,
    failedPlacements: Object.entries(e.failedPlacements).map(([service, f]) => ({ service, missing: f.missing, reasons: f.reasons })),
  };
}

/** The job's ingress ports that another program holds on a ready node, as those nodes' agents gossip them. */
function portsTakenOf(state: ClusterState, job: Job): shoal.v1.IPortTaken[] {
  const out: shoal.v1.IPortTaken[] = [];
  for (const s of job.services) {
    for (const p of s.ports) {
      if (p.mode !== 'ingress' || p.protocol !== 'tcp') continue;
      for (const n of state.nodes()) if (n.status === 'ready' && n.portsTaken?.includes(p.published)) out.push({ port: p.published, service: s.name, nodeId: n.id, nodeName: n.name });
    }
  }
  return out;
}

function nodeToProto(state: ClusterState, n: NodeRecord): shoal.v1.INode {
  const used = state.usage(n.id);
  return {
    id: n.id, name: n.name, address: n.address, status: n.status, eligible: n.eligible, draining: n.draining, labels: n.labels, drivers: n.drivers, roles: n.roles,
    cpuMillicores: n.capacity.cpuMillicores, memoryBytes: n.capacity.memoryBytes, allocatedCpuMillicores: used.cpuMillicores, allocatedMemoryBytes: used.memoryBytes,
    allocations: state.allocationsOnNode(n.id).filter((a) => a.desiredStatus === 'run' && !isTerminal(a)).length,
    portsTaken: n.portsTaken ?? [],
  };
}

export function jobSummary(state: ClusterState, rec: JobRecord): shoal.v1.IJobSummary {
  const allocs = state.allocationsOfJob(rec.job.name);
  const latest = state.evaluationsOfJob(rec.job.name).find((e) => e.status !== 'pending');
  const services = rec.job.services.map((s) => {
    const mine = allocs.filter((a) => a.service === s.name && a.desiredStatus === 'run');
    const count = (status: string): number => mine.filter((a) => a.clientStatus === status).length;
    const unplaced = latest?.failedPlacements[s.name]?.missing ?? 0;
    return {
      name: s.name, driver: s.driver, mode: s.deploy.mode,
      desired: rec.stopped ? 0 : s.deploy.mode === 'global' ? mine.length + unplaced : s.state ? s.state.partitions * s.state.replicas : s.deploy.replicas,
      running: count('running'), pending: count('pending'), failed: count('failed'), complete: count('complete'), lost: count('lost'), unplaced,
    };
  });
  // Tasks still alive, whatever the leader wants of them: a stopped job is "stopping" until its nodes report them gone.
  const alive = allocs.filter((a) => a.clientStatus === 'running' || a.clientStatus === 'pending').length;
  const status = rec.stopped
    ? alive > 0 ? 'stopping' : 'dead'
    : rec.job.type === 'batch' && services.every((s) => s.complete >= s.desired) ? 'complete'
      : services.some((s) => s.running > 0) ? 'running' : 'pending';
  return { name: rec.job.name, type: rec.job.type, version: rec.version, stopped: rec.stopped, status, services, createIndex: rec.createIndex, modifyIndex: rec.modifyIndex };
}

/** Field-level differences between two JSON values, as "path: old -> new" lines (services keyed by name). */
export function jsonDiff(before: unknown, after: unknown): string[] {
  const out: string[] = [];
  const keyed = (v: unknown): unknown => (Array.isArray(v) && v.every((x) => x && typeof x === 'object' && typeof (x as { name?: unknown }).name === 'string')
    ? Object.fromEntries(v.map((x) => [(x as { name: string }).name, x]))
    : v);
  const walk = (a: unknown, b: unknown, path: string): void => {
    a = keyed(a);
    b = keyed(b);
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    const isObj = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
    if (isObj(a) && isObj(b)) {
      for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) walk(a[k], b[k], path ? `${path}.${k}` : k);
      return;
    }
    const show = (x: unknown): string => (x === undefined ? '(none)' : JSON.stringify(x));
    out.push(`${path || '(job)'}: ${show(a)} -> ${show(b)}`);
  };
  walk(before, after, '');
  return out.slice(0, 200);
}
