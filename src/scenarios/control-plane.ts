/**
 * The whole control plane in the simulator: five agents, each running the Raft core with the replicated
 * `ClusterState` as its state machine, the node-side core (`NodeCore`) over a simulated machine that runs tasks, and,
 * on the leader, the scheduler loop (pending evaluations → `computePlan` → `plan.apply`), a failure detector that
 * keeps the node table up to date, and the proposals of the nodes' status reports (`alloc.update`).
 *
 * Jobs are registered, scaled, updated and stopped while a nemesis partitions the network, cuts links one way,
 * pauses agents, and crashes nodes of two kinds: an agent restart (the process dies, its tasks keep running and
 * are re-attached through `NodeCore.restore`) and a power-off (the tasks die with it). Tasks start and stop after a
 * small random delay, sometimes fail to start, and sometimes exit by themselves, which exercises the restart policy
 * on the node and the rescheduling on the leader.
 *
 * Checked after every event:
 *   - the replicated states agree: every member applies the same entry at each index, in order, and the state
 *     digest is the same on every member at the sampled indexes and at every snapshot taken or restored (the
 *     raft-kv approach, with `ClusterState.snapshot()` as the digest);
 *   - no machine runs two tasks (starting, running or stopping) for the same allocation;
 *   - in every member's state, no node has more resources reserved than it offers.
 * At the end, once the network healed, every node restarted and the run settled: every slot of every replicated
 * service (and every ready node of a global service) has exactly one desired-run allocation and exactly one running
 * task, on a ready node, whose allocation the state records as running; no task runs for an allocation the state
 * wants stopped or does not know; a stopped job runs nothing.
 *
 * Learners: n1..n3 bootstrap the group as voters; the leader adds n4 and n5 as learners (one change at a time), so
 * they receive the log and run tasks without voting, as the real agent's autopilot does.
 */
import { applyConfChangeTo } from '../consensus/conf.js';
import { NotLeaderError, ProposalDroppedError } from '../consensus/errors.js';
import { RaftNode } from '../consensus/raft.js';
import { emptyConf } from '../consensus/storage.js';
import type { ConfState, Entry, Message, Snapshot } from '../consensus/types.js';
import { parseJobFile } from '../jobspec/parse.js';
import type { Job } from '../jobspec/types.js';
import { ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { Random } from '../lib/random.js';
import { NodeCore, type NodeEffect, type TaskExit, type TaskRecord } from '../node/node-core.js';
import { computePlan } from '../scheduler/scheduler.js';
import { DEFAULT_NEMESIS, scheduleNemesis } from '../sim/nemesis.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../sim/scenario.js';
import { Simulator, type SimNode, type SimNodeContext } from '../sim/simulator.js';
import { ClusterState, type StateSnapshot } from '../state/cluster-state.js';
import type { AllocUpdate, Command } from '../state/commands.js';
import { holdsResources, type Allocation } from '../state/types.js';
import { SimRaftLog } from './sim-raft-log.js';

// --- Messages -------------------------------------------------------------------------------------------------------

export type CpMessage =
  | { kind: 'raft'; raft: Message }
  /** A node's status report for the leader, which proposes it as an `alloc.update`. */
  | { kind: 'report'; updates: AllocUpdate[] };

const TICK_MS = 10;
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
/** The leader marks a node down when it has heard nothing from it for this long. */
const NODE_DEAD_AFTER_MS = 2_000;
/** ...and brings it back once it hears from it again within this long. */
const NODE_ALIVE_WITHIN_MS = 300;
/** A follower acts on its state only while it hears from a leader (it is then caught up to within a heartbeat). */
const FOLLOWER_FRESH_MS = 300;
const SNAPSHOT_EVERY = 40;
const KEEP_AFTER_SNAPSHOT = 10;
/** Full state digests are compared at every index that is a multiple of this (and at every snapshot). */
const DIGEST_EVERY = 25;
const VOTERS = ['n1', 'n2', 'n3'];
const LEARNERS = ['n4', 'n5'];
const NODE_IDS = [...VOTERS, ...LEARNERS];
const MiB = 1024 * 1024;
const NODE_CAPACITY = { cpuMillicores: 1_500, memoryBytes: 2_048 * MiB };

const TASK_PREFIX = 'task/';
const encodeText = (s: string): Uint8Array => new TextEncoder().encode(s);
const decodeText = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Two FNV-1a lanes over a string: a cheap 64-bit digest of a state's JSON. */
function digestOf(text: string): string {
  let lo = 0x811c9dc5;
  let hi = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    lo = Math.imul(lo ^ c, 0x01000193) >>> 0;
    hi = Math.imul(hi ^ c, 0x01000193 ^ 0x5bd1e995) >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

const stateDigest = (state: ClusterState): string => digestOf(JSON.stringify(state.snapshot()));

const entryDigest = (e: Entry): string => `${e.term}/${e.type}/${e.conf ? `${e.conf.type}:${e.conf.member}` : digestOf(decodeText(e.data))}`;

// --- The referee: what every member applied, compared across members -------------------------------------------------

export class CpReferee {
  readonly entryAt = new Map<number, string>();
  readonly stateAt = new Map<number, string>();
  readonly lastApplied = new Map<string, number>();
  /** Committed commands by type (node.status split by status), for the run's figures. */
  readonly commands = new Map<string, number>();
  problem: string | undefined;
  applies = 0;
  digests = 0;
  installs = 0;
  maxApplied = 0;

  fail(problem: string): void {
    this.problem ??= problem;
  }

  booted(node: string): void {
    this.lastApplied.set(node, 0);
  }

  applied(node: string, entry: Entry, state: ClusterState): void {
    this.applies++;
    const last = this.lastApplied.get(node) ?? 0;
    if (entry.index !== last + 1) this.fail(`${node} applied index ${entry.index} after ${last} (gap or repeat)`);
    this.lastApplied.set(node, entry.index);
    if (entry.index > this.maxApplied) this.maxApplied = entry.index;
    const digest = entryDigest(entry);
    const known = this.entryAt.get(entry.index);
    if (known === undefined) {
      this.entryAt.set(entry.index, digest);
      if (entry.type === 'normal' && entry.data.byteLength > 0) {
        const command = JSON.parse(decodeText(entry.data)) as Command;
        const kind = command.type === 'node.status' ? `node.${command.status}` : command.type;
        this.commands.set(kind, (this.commands.get(kind) ?? 0) + 1);
      }
    }
    else if (known !== digest) this.fail(`${node} applied ${digest} at index ${entry.index} where another member applied ${known}`);
    if (entry.index % DIGEST_EVERY === 0) this.#compareState(node, entry.index, state, 'applied');
    if (entry.type === 'normal') this.#checkUsage(node, state);
  }

  snapshotTaken(node: string, index: number, state: ClusterState): void {
    this.#compareState(node, index, state, 'snapshot taken');
  }

  snapshotRestored(node: string, index: number, state: ClusterState, installed: boolean): void {
    if (installed) this.installs++;
    this.lastApplied.set(node, index);
    this.#compareState(node, index, state, installed ? 'snapshot installed' : 'snapshot read at boot');
    this.#checkUsage(node, state);
  }

  #compareState(node: string, index: number, state: ClusterState, how: string): void {
    this.digests++;
    const digest = stateDigest(state);
    const known = this.stateAt.get(index);
    if (known === undefined) this.stateAt.set(index, digest);
    else if (known !== digest) this.fail(`${node}'s state at index ${index} (${how}) has digest ${digest}; another member had ${known} there`);
  }

  /** No node has more reserved than it offers, or a host port held twice, in this member's state. */
  #checkUsage(member: string, state: ClusterState): void {
    for (const n of state.nodes()) {
      const holders = new Map<string, string>();
      for (const a of state.allocationsOnNode(n.id)) {
        if (!holdsResources(a)) continue;
        for (const port of a.ports ?? []) {
          const other = holders.get(port);
          if (other !== undefined) this.fail(`in ${member}'s state at index ${state.index}, node ${n.id} has port ${port} held by allocations ${other} and ${a.id}`);
          holders.set(port, a.id);
        }
      }
      const used = state.usage(n.id);
      if (used.cpuMillicores > n.capacity.cpuMillicores || used.memoryBytes > n.capacity.memoryBytes) {
        this.fail(`in ${member}'s state at index ${state.index}, node ${n.id} is over-committed: ${used.cpuMillicores}m/${used.memoryBytes}B reserved of ${n.capacity.cpuMillicores}m/${n.capacity.memoryBytes}B`);
      }
    }
  }
}

// --- The simulated machine: tasks that outlive the agent ------------------------------------------------------------

export interface Proc {
  pid: number;
  allocId: string;
  handle: string;
  state: 'starting' | 'running' | 'stopping' | 'dead';
  /** The agent incarnation that started it (its answer goes to that incarnation only). */
  incarnation: number;
}

export interface MachineOptions {
  /** Chance that a start fails (recoverable). */
  startFailRate: number;
  /** Chance that a started task exits by itself (failed) some time later, while faults run. */
  exitRate: number;
  /** Tasks exit by themselves only before this virtual time (the run then settles). */
  exitsUntilMs: number;
}

/**
 * One node's machine, with the task driver: it survives the agent's crash (tasks keep running and can be
 * re-attached) but not a power-off. Answers (started, failed, exited, stopped) come after a small random delay.
 */
export class SimMachine {
  readonly procs = new Map<number, Proc>();
  #nextPid = 1;
  problem: string | undefined;
  starts = 0;
  selfExits = 0;

  constructor(
    readonly id: string,
    readonly simOf: () => Simulator<CpMessage>,
    readonly random: Random,
    readonly options: MachineOptions,
  ) {}

  get sim(): Simulator<CpMessage> {
    return this.simOf();
  }

  /** Power-off: every task dies with the machine. */
  powerOff(): void {
    for (const p of this.procs.values()) p.state = 'dead';
    this.procs.clear();
  }

  live(): Proc[] {
    return [...this.procs.values()].filter((p) => p.state !== 'dead');
  }

  liveFor(allocId: string): Proc[] {
    return this.live().filter((p) => p.allocId === allocId);
  }

  aliveHandle(handle: string): boolean {
    for (const p of this.procs.values()) if (p.handle === handle && p.state !== 'dead') return true;
    return false;
  }

  #agent(incarnation?: number): ControlAgent | undefined {
    if (incarnation !== undefined && this.sim.incarnation(this.id) !== incarnation) return undefined;
    return this.sim.node(this.id) as ControlAgent | undefined;
  }

  start(allocId: string, incarnation: number): void {
    const already = this.liveFor(allocId);
    if (already.length > 0) {
      this.problem ??= `node ${this.id} was asked to start a second task for allocation ${allocId} while pid ${already[0]!.pid} (${already[0]!.state}) runs it`;
    }
    const pid = this.#nextPid++;
    const proc: Proc = { pid, allocId, handle: `${this.id}/pid-${pid}`, state: 'starting', incarnation };
    this.procs.set(pid, proc);
    this.starts++;
    this.sim.after(2 + this.random.int(30), `machine ${this.id} start-done ${allocId} pid ${pid}`, () => {
      if (proc.state !== 'starting') return;
      // The answer goes to the agent that asked; an agent restarted since then re-attached by allocation id and
      // watches the handle instead (a failed start is, to it, an exit).
      const asked = this.#agent(incarnation);
      const adopter = asked ? undefined : this.#agent();
      const adopted = adopter !== undefined && adopter.node.task(allocId)?.handle === proc.handle;
      if (this.random.chance(this.options.startFailRate)) {
        proc.state = 'dead';
        this.procs.delete(pid);
        asked?.driverStartFailed(allocId, 'simulated start failure', true);
        if (adopted) adopter.driverExited(allocId, { failed: true, message: 'simulated start failure' });
        return;
      }
      proc.state = 'running';
      asked?.driverStarted(allocId, proc.handle);
      if (this.sim.nowMs() < this.options.exitsUntilMs && this.random.chance(this.options.exitRate)) {
        this.sim.after(100 + this.random.int(3_000), `machine ${this.id} exit ${allocId} pid ${pid}`, () => {
          if (proc.state !== 'running' || this.sim.nowMs() >= this.options.exitsUntilMs) return;
          proc.state = 'dead';
          this.procs.delete(pid);
          this.selfExits++;
          // The (possibly restarted) agent that watches this handle hears of the exit.
          const agent = this.#agent();
          if (agent && agent.node.task(allocId)?.handle === proc.handle) agent.driverExited(allocId, { failed: true, message: 'exit code 1 (simulated)' });
        });
      }
    });
  }

  stop(allocId: string, handle: string, incarnation: number): void {
    const proc = [...this.procs.values()].find((p) => p.handle === handle && handle !== '');
    if (proc && proc.state !== 'dead') proc.state = 'stopping';
    this.sim.after(2 + this.random.int(40), `machine ${this.id} stop-done ${allocId}`, () => {
      if (proc) {
        proc.state = 'dead';
        this.procs.delete(proc.pid);
      }
      this.#agent(incarnation)?.driverStopped(allocId);
    });
  }

  check(): string | undefined {
    if (this.problem) return this.problem;
    return undefined;
  }
}

// --- One agent ------------------------------------------------------------------------------------------------------

export interface AgentEnv {
  /** Deliberately broken variant: the agent ignores its task records at start-up (must be caught: duplicate tasks). */
  unsafeForgetTasks: boolean;
  /** Deliberately broken variant: this member skips `alloc.update` entries (must be caught: states disagree). */
  unsafeSkipReportsOn: string | undefined;
  referee: CpReferee;
  machines: Map<string, SimMachine>;
  nodeSpec: (id: string) => Extract<Command, { type: 'node.upsert' }>['node'];
}

export class ControlAgent implements SimNode<CpMessage> {
  readonly raft: RaftNode;
  state = new ClusterState();
  conf: ConfState = emptyConf();
  appliedIndex = 0;
  readonly node: NodeCore;
  readonly #ctx: SimNodeContext<CpMessage>;
  readonly #env: AgentEnv;
  readonly #log: SimRaftLog;
  readonly #machine: SimMachine;
  readonly #schedRandom: Random;
  #ticks = 0;
  #lastLeaderMsgMs = -Infinity;
  // Leader-only bookkeeping, reset when leadership changes.
  #leaderTerm = -1;
  readonly #lastHeard = new Map<string, number>();
  /** Index of the last proposal awaited per purpose ("plan", "node:<id>", "report:<id>", "conf"). */
  readonly #awaiting = new Map<string, number>();
  plansProposed = 0;
  reportsProposed = 0;

  constructor(ctx: SimNodeContext<CpMessage>, env: AgentEnv) {
    this.#ctx = ctx;
    this.#env = env;
    this.#machine = env.machines.get(ctx.id)!;
    this.#schedRandom = ctx.random.split();
    env.referee.booted(ctx.id);
    const st = ctx.storage;
    this.#log = new SimRaftLog(st, ctx.id, VOTERS);
    const snap = this.#log.bootSnapshot;
    if (snap !== undefined) this.#restoreMachine(snap);
    this.raft = new RaftNode({
      group: 'cluster',
      id: ctx.id,
      storage: this.#log.mem,
      random: ctx.random,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      preVote: true,
      checkQuorum: true,
    });
    if (snap !== undefined) env.referee.snapshotRestored(ctx.id, snap.metadata.index, this.state, false);
    // The node side: re-adopt what the disk says may still run, asking the driver which tasks are alive.
    this.node = new NodeCore(ctx.id);
    const records = env.unsafeForgetTasks ? [] : st.keys(TASK_PREFIX).map((k) => st.get(k) as TaskRecord);
    for (const r of records) ctx.note(`restore ${r.allocId.slice(0, 8)} ${r.phase} handle=${r.handle || '-'} live=${this.#machine.liveFor(r.allocId).map((p) => p.handle).join(',') || '-'}`);
    this.node.restore(records.map((record) => {
      if (record.handle !== '') return { record, alive: this.#machine.aliveHandle(record.handle), lostReason: 'not found by the driver' };
      // A start the agent did not see finish: the driver looks for a task of that allocation.
      const found = record.phase === 'dead' ? undefined : this.#machine.liveFor(record.allocId)[0];
      return found ? { record, alive: true, handle: found.handle } : { record, alive: false, lostReason: 'not found by the driver' };
    }));
    this.#process();
    this.#performNodeEffects();
  }

  get id(): string {
    return this.#ctx.id;
  }

  tick(): void {
    this.#ticks++;
    this.raft.tick();
    this.#process();
    this.node.tick(this.#ctx.nowMs());
    if (this.#ticks % Math.max(1, Math.round(LIMITS.nodeReconcileMs / TICK_MS)) === 0) this.#reconcileNode();
    if (this.raft.role === 'leader') this.#lead();
    this.#performNodeEffects();
  }

  deliver(from: string, msg: CpMessage): void {
    this.#lastHeard.set(from, this.#ctx.nowMs());
    if (msg.kind === 'raft') {
      if (msg.raft.term >= this.raft.term && from === this.raft.leader) this.#lastLeaderMsgMs = this.#ctx.nowMs();
      this.raft.step(msg.raft);
      if (from === this.raft.leader) this.#lastLeaderMsgMs = this.#ctx.nowMs();
      this.#process();
      return;
    }
    if (this.raft.role === 'leader' && msg.updates.length > 0) this.#proposeReport(from, msg.updates);
  }

  /** Proposes a command if this agent leads; false when it cannot (not leader, dropped). */
  propose(command: Command): number | undefined {
    try {
      const at = this.raft.propose(encodeText(JSON.stringify(command)));
      this.#process();
      return at.index;
    } catch (err) {
      if (err instanceof NotLeaderError || err instanceof ProposalDroppedError) return undefined;
      throw err;
    }
  }

  /** The leader has committed an entry of its term and applied everything committed: its state is current. */
  caughtUp(): boolean {
    return this.raft.role === 'leader' && this.raft.log.term(this.raft.log.committed) === this.raft.term && this.appliedIndex >= this.raft.log.committed;
  }

  // --- Driver answers (from the simulated machine) -----------------------------------------------------------------

  driverStarted(allocId: string, handle: string): void {
    this.node.started(allocId, handle);
    this.#performNodeEffects();
  }

  driverStartFailed(allocId: string, message: string, recoverable: boolean): void {
    this.node.startFailed(allocId, message, recoverable);
    this.#performNodeEffects();
  }

  driverExited(allocId: string, exit: TaskExit): void {
    this.node.exited(allocId, exit);
    this.#performNodeEffects();
  }

  driverStopped(allocId: string): void {
    this.node.stopped(allocId);
    this.#performNodeEffects();
  }

  // --- Node side ---------------------------------------------------------------------------------------------------

  /** Whether this agent's applied state is current enough to act on (it hears from a leader, or it leads). */
  #fresh(): boolean {
    if (this.raft.role === 'leader') return this.caughtUp();
    return this.raft.leader !== undefined && this.#ctx.nowMs() - this.#lastLeaderMsgMs <= FOLLOWER_FRESH_MS;
  }

  #reconcileNode(): void {
    if (!this.#fresh()) return;
    this.node.observe(this.state);
    this.#performNodeEffects();
    const updates = this.node.reports(this.state);
    if (updates.length === 0) return;
    const leader = this.raft.leader;
    if (leader === undefined) return;
    if (leader === this.id) this.#proposeReport(this.id, updates);
    else this.#ctx.send(leader, { kind: 'report', updates });
  }

  #performNodeEffects(): void {
    const st = this.#ctx.storage;
    for (;;) {
      const effects: NodeEffect[] = this.node.drainEffects();
      if (effects.length === 0) break;
      for (const e of effects) {
        switch (e.kind) {
          case 'persist':
            if (e.record === null) st.delete(`${TASK_PREFIX}${e.allocId}`);
            else st.put(`${TASK_PREFIX}${e.allocId}`, e.record);
            break;
          case 'start':
            this.#ctx.note(`task start ${e.allocId.slice(0, 8)} (${e.alloc.jobName}/${e.alloc.service}[${e.alloc.slot}])`);
            if (st.unsyncedWrites > 0) st.sync();
            this.#machine.start(e.allocId, this.#ctx.incarnation);
            break;
          case 'stop':
            this.#ctx.note(`task stop ${e.allocId.slice(0, 8)} ${e.handle} (${e.reason})`);
            if (st.unsyncedWrites > 0) st.sync();
            this.#machine.stop(e.allocId, e.handle, this.#ctx.incarnation);
            break;
          case 'destroy':
            break;
        }
      }
    }
    if (st.unsyncedWrites > 0) st.sync();
  }

  // --- Leader side -------------------------------------------------------------------------------------------------

  #awaited(key: string): boolean {
    const at = this.#awaiting.get(key);
    return at === undefined || this.appliedIndex >= at;
  }

  #proposeAwaited(key: string, command: Command): void {
    const at = this.propose(command);
    if (at !== undefined) this.#awaiting.set(key, at);
  }

  #proposeReport(from: string, updates: AllocUpdate[]): void {
    if (!this.caughtUp() || !this.#awaited(`report:${from}`)) return;
    this.reportsProposed++;
    this.#proposeAwaited(`report:${from}`, { type: 'alloc.update', nodeId: from, updates });
  }

  #lead(): void {
    const now = this.#ctx.nowMs();
    if (this.#leaderTerm !== this.raft.term) {
      // A new reign: every node gets a full grace period, and nothing proposed before is awaited any more.
      this.#leaderTerm = this.raft.term;
      this.#awaiting.clear();
      for (const id of NODE_IDS) this.#lastHeard.set(id, now);
    }
    this.#lastHeard.set(this.id, now);
    if (!this.caughtUp()) return;
    // 1. Membership: the other agents join as learners, one change at a time.
    const conf = this.raft.confState();
    const missing = LEARNERS.find((l) => !conf.voters.includes(l) && !conf.learners.includes(l));
    if (missing !== undefined && this.#awaited('conf')) {
      try {
        const at = this.raft.proposeConfChange({ type: 'addLearner', member: missing });
        this.#awaiting.set('conf', at.index);
        this.#process();
      } catch (err) {
        if (!(err instanceof ProposalDroppedError || err instanceof NotLeaderError || (err instanceof ShoalError && err.code === 'ERR_INVALID_ARGUMENT'))) throw err;
      }
    }
    // 2. The node table, from what the leader hears (SWIM's job in the real agent).
    for (const id of NODE_IDS) {
      if (!this.#awaited(`node:${id}`)) continue;
      const rec = this.state.node(id);
      const silentMs = now - (this.#lastHeard.get(id) ?? -Infinity);
      if ((!rec || rec.status !== 'ready') && silentMs <= NODE_ALIVE_WITHIN_MS) {
        this.#proposeAwaited(`node:${id}`, { type: 'node.upsert', node: this.#env.nodeSpec(id) });
      } else if (rec && rec.status === 'ready' && silentMs > NODE_DEAD_AFTER_MS) {
        this.#proposeAwaited(`node:${id}`, { type: 'node.status', nodeId: id, status: 'down' });
      }
    }
    if (!this.caughtUp()) return;
    // 3. Scheduling: one plan in flight at a time, computed on the current state.
    if (!this.#awaited('plan')) return;
    const pending = this.state.pendingEvaluations().sort((a, b) => a.createIndex - b.createIndex || (a.id < b.id ? -1 : 1));
    const next = pending[0];
    if (next === undefined) return;
    const superseded = pending.filter((e) => e.jobName === next.jobName && e.id !== next.id).map((e) => e.id);
    const plan = computePlan(this.state, next, this.#schedRandom);
    if (plan === undefined) {
      this.#proposeAwaited('plan', { type: 'eval.complete', evalIds: [next.id, ...superseded] });
      return;
    }
    this.plansProposed++;
    // A rejected plan creates a fresh evaluation of the job, so completing the superseded ones is safe either way.
    if (superseded.length > 0) this.propose({ type: 'eval.complete', evalIds: superseded });
    this.#proposeAwaited('plan', { type: 'plan.apply', plan });
  }

  // --- Raft wiring: persist, then send, then apply (as raft-sim.ts) ------------------------------------------------

  #restoreMachine(snap: Snapshot): void {
    this.state = ClusterState.restore(JSON.parse(decodeText(snap.data)) as StateSnapshot);
    this.conf = { voters: [...snap.metadata.conf.voters], learners: [...snap.metadata.conf.learners] };
    this.appliedIndex = snap.metadata.index;
  }

  #apply(entry: Entry): void {
    this.appliedIndex = entry.index;
    if (entry.type === 'conf' && entry.conf) this.conf = applyConfChangeTo(this.conf, entry.conf);
    else if (entry.type === 'normal' && entry.data.byteLength > 0) {
      const command = JSON.parse(decodeText(entry.data)) as Command;
      if (command.type !== 'alloc.update' || this.#env.unsafeSkipReportsOn !== this.id) this.state.apply(entry.index, command);
    }
    this.#env.referee.applied(this.id, entry, this.state);
  }

  #process(): void {
    const st = this.#ctx.storage;
    while (this.raft.hasReady()) {
      const rd = this.raft.ready();
      this.#log.persist(rd);
      if (st.unsyncedWrites > 0) st.sync();
      for (const m of rd.messages) this.#ctx.send(m.to, { kind: 'raft', raft: m });
      if (rd.snapshot) {
        this.#restoreMachine(rd.snapshot);
        this.#env.referee.snapshotRestored(this.id, rd.snapshot.metadata.index, this.state, true);
      }
      for (const e of rd.committedEntries) this.#apply(e);
      this.raft.advance();
      this.#maybeSnapshot();
    }
  }

  #maybeSnapshot(): void {
    const applied = this.appliedIndex;
    if (applied - this.#log.snapshotIndex < SNAPSHOT_EVERY) return;
    this.#log.saveSnapshot(applied, this.conf, encodeText(JSON.stringify(this.state.snapshot())), KEEP_AFTER_SNAPSHOT);
    this.#env.referee.snapshotTaken(this.id, applied, this.state);
  }
}

// --- The workload ----------------------------------------------------------------------------------------------------

function jobOf(name: string, yaml: string): Job {
  return parseJobFile(yaml, { file: `${name}.yaml` }).job;
}

const WEB = (replicas: number): string => `name: web
services:
  web:
    command: web-server --port 8080
    x-shoal: { driver: process }
    deploy:
      replicas: ${replicas}
      resources: { reservations: { cpus: 0.2, memory: 128M } }
      placement: { max_replicas_per_node: 2 }
      restart_policy: { condition: any, delay: 200ms }
`;

const API = (version: number, replicas: number): string => `name: api
services:
  api:
    command: api-server --version ${version}
    x-shoal: { driver: process }
    deploy:
      replicas: ${replicas}
      resources: { reservations: { cpus: 0.25, memory: 256M } }
      restart_policy: { condition: on-failure, delay: 150ms, max_attempts: 1, window: 5s }
`;

const DAEMON = `name: daemon
services:
  agent:
    command: node-exporter
    x-shoal: { driver: process }
    ports: [{ target: 9100, published: 9100, mode: host }]
    deploy:
      mode: global
      resources: { reservations: { cpus: 0.1, memory: 64M } }
      restart_policy: { condition: any, delay: 100ms }
`;

const WORKER = `name: worker
services:
  worker:
    command: queue-worker
    x-shoal: { driver: process }
    ports: [{ target: 7070, published: 7070, mode: host }]
    deploy:
      replicas: 4
      resources: { reservations: { cpus: 0.2, memory: 128M } }
      restart_policy: { condition: any, delay: 300ms }
`;

interface OperatorStep {
  atMs: number;
  label: string;
  command: Command;
  /** The leader's state shows the step took effect. */
  done: (state: ClusterState) => boolean;
}

function operatorSteps(random: Random): OperatorStep[] {
  const web5 = jobOf('web', WEB(5));
  const api1 = jobOf('api', API(1, 3));
  const api2 = jobOf('api', API(2, 4));
  const daemon = jobOf('daemon', DAEMON);
  const worker = jobOf('worker', WORKER);
  const same = (a: Job, s: ClusterState): boolean => {
    const rec = s.job(a.name);
    return rec !== undefined && !rec.stopped && JSON.stringify(rec.job) === JSON.stringify(a);
  };
  const replicas = (s: ClusterState, job: string, n: number): boolean => s.job(job)?.job.services[0]?.deploy.replicas === n;
  const jitter = (): number => random.int(400);
  const webUp = 7 + random.int(2);
  const webDown = 5 + random.int(2);
  const web2 = jobOf('web', WEB(webDown).replace('--port 8080', '--port 8081'));
  return [
    { atMs: 900 + jitter(), label: 'register web', command: { type: 'job.register', job: web5 }, done: (s) => s.job('web') !== undefined },
    { atMs: 1_000 + jitter(), label: 'register api v1', command: { type: 'job.register', job: api1 }, done: (s) => s.job('api') !== undefined },
    { atMs: 1_100 + jitter(), label: 'register daemon', command: { type: 'job.register', job: daemon }, done: (s) => same(daemon, s) },
    { atMs: 1_600 + jitter(), label: 'register worker', command: { type: 'job.register', job: worker }, done: (s) => s.job('worker') !== undefined },
    { atMs: 2_800 + jitter(), label: `scale web to ${webUp}`, command: { type: 'job.scale', name: 'web', service: 'web', replicas: webUp }, done: (s) => replicas(s, 'web', webUp) },
    { atMs: 4_000 + jitter(), label: 'update api to v2 (4 replicas)', command: { type: 'job.register', job: api2 }, done: (s) => same(api2, s) },
    { atMs: 5_200 + jitter(), label: 'stop worker', command: { type: 'job.stop', name: 'worker' }, done: (s) => s.job('worker')?.stopped === true },
    { atMs: 6_300 + jitter(), label: `scale web to ${webDown}`, command: { type: 'job.scale', name: 'web', service: 'web', replicas: webDown }, done: (s) => replicas(s, 'web', webDown) },
    { atMs: 7_500 + jitter(), label: 'update web (new command: every replica replaced)', command: { type: 'job.register', job: web2 }, done: (s) => same(web2, s) },
    { atMs: 8_800 + jitter(), label: 'register worker again', command: { type: 'job.register', job: worker }, done: (s) => same(worker, s) },
    { atMs: 10_000 + jitter(), label: 'scale api to 2', command: { type: 'job.scale', name: 'api', service: 'api', replicas: 2 }, done: (s) => replicas(s, 'api', 2) },
    { atMs: 11_200 + jitter(), label: 'stop api', command: { type: 'job.stop', name: 'api' }, done: (s) => s.job('api')?.stopped === true },
    { atMs: 12_400 + jitter(), label: 'scale web to 8', command: { type: 'job.scale', name: 'web', service: 'web', replicas: 8 }, done: (s) => replicas(s, 'web', 8) },
  ];
}

// --- End check --------------------------------------------------------------------------------------------------------

/** The settled cluster, judged on the leader's state and what the machines actually run. */
export function checkConverged(state: ClusterState, machines: Map<string, SimMachine>, upNodes: ReadonlySet<string>): string | undefined {
  const running: { node: string; proc: Proc }[] = [];
  for (const [node, m] of machines) {
    for (const proc of m.live()) {
      if (proc.state !== 'running') return `node ${node} still has task pid ${proc.pid} of allocation ${proc.allocId} in state ${proc.state}`;
      running.push({ node, proc });
    }
  }
  const byAlloc = new Map<string, { node: string; proc: Proc }[]>();
  for (const r of running) {
    const list = byAlloc.get(r.proc.allocId) ?? [];
    list.push(r);
    byAlloc.set(r.proc.allocId, list);
    const alloc = state.allocation(r.proc.allocId);
    if (!alloc) return `node ${r.node} runs pid ${r.proc.pid} for allocation ${r.proc.allocId}, which the state does not know`;
    if (alloc.desiredStatus !== 'run') return `node ${r.node} runs pid ${r.proc.pid} for ${alloc.jobName}/${alloc.service}[${alloc.slot}] allocation ${alloc.id}, which the state wants stopped (${alloc.desiredReason})`;
    if (alloc.nodeId !== r.node) return `node ${r.node} runs allocation ${alloc.id}, which is placed on ${alloc.nodeId}`;
  }
  for (const [allocId, list] of byAlloc) if (list.length > 1) return `allocation ${allocId} runs ${list.length} times: ${list.map((r) => `${r.node}:${r.proc.pid}`).join(', ')}`;
  const readyNodes = state.nodes().filter((n) => n.status === 'ready' && n.eligible);
  for (const id of upNodes) if (!readyNodes.some((n) => n.id === id)) return `node ${id} is up but not ready in the state (${state.node(id)?.status ?? 'absent'})`;
  const oneRunning = (what: string, allocs: Allocation[]): string | undefined => {
    if (allocs.length !== 1) return `${what} has ${allocs.length} desired-run allocations (${allocs.map((a) => `${a.id}@${a.nodeId}:${a.clientStatus}`).join(', ')})`;
    const a = allocs[0]!;
    const tasks = byAlloc.get(a.id) ?? [];
    if (tasks.length !== 1) return `${what}: allocation ${a.id} on ${a.nodeId} (${a.clientStatus}: ${a.clientMessage}) has ${tasks.length} running tasks`;
    if (!upNodes.has(a.nodeId)) return `${what}: allocation ${a.id} is on ${a.nodeId}, which is down`;
    if (a.clientStatus !== 'running') return `${what}: allocation ${a.id} on ${a.nodeId} runs but the state says ${a.clientStatus} (${a.clientMessage})`;
    return undefined;
  };
  for (const rec of state.jobs()) {
    // A service whose restart policy never gives up is restarted on its node forever: it never fails.
    for (const a of state.allocationsOfJob(rec.job.name)) {
      const policy = rec.job.services.find((s) => s.name === a.service)?.deploy.restartPolicy;
      if (a.clientStatus === 'failed' && policy?.condition === 'any' && policy.maxAttempts === null) {
        return `allocation ${a.id} of ${rec.job.name}/${a.service} (restart policy any, unlimited) was reported failed: ${a.clientMessage}`;
      }
    }
    const live = state.allocationsOfJob(rec.job.name).filter((a) => a.desiredStatus === 'run');
    if (rec.stopped) {
      if (live.length > 0) return `stopped job ${rec.job.name} still has ${live.length} desired-run allocations`;
      continue;
    }
    for (const spec of rec.job.services) {
      const mine = live.filter((a) => a.service === spec.name);
      if (spec.deploy.mode === 'global') {
        for (const n of readyNodes) {
          const problem = oneRunning(`global ${rec.job.name}/${spec.name} on ${n.id}`, mine.filter((a) => a.nodeId === n.id));
          if (problem) return problem;
        }
        const stray = mine.filter((a) => !readyNodes.some((n) => n.id === a.nodeId));
        if (stray.length > 0) return `global ${rec.job.name}/${spec.name} has allocations on nodes that are not ready: ${stray.map((a) => a.nodeId).join(', ')}`;
        continue;
      }
      for (let slot = 0; slot < spec.deploy.replicas; slot++) {
        const problem = oneRunning(`${rec.job.name}/${spec.name}[${slot}]`, mine.filter((a) => a.slot === slot));
        if (problem) return problem;
      }
      const extra = mine.filter((a) => a.slot >= spec.deploy.replicas);
      if (extra.length > 0) return `${rec.job.name}/${spec.name} has desired-run allocations beyond ${spec.deploy.replicas} replicas: slots ${extra.map((a) => a.slot).join(', ')}`;
      if (mine.some((a) => holdsResources(a) && a.jobVersion < (rec.serviceVersions[spec.name] ?? rec.version))) return `${rec.job.name}/${spec.name} still runs an allocation of an older version`;
    }
  }
  return undefined;
}

export class ControlPlaneFailure extends ShoalError {
  constructor(seed: number, detail: string) {
    super('ERR_SIM_CONVERGENCE', `seed ${seed}: the control plane did not converge: ${detail}`, { seed });
  }
}

// --- The scenario ----------------------------------------------------------------------------------------------------

export interface ControlPlaneOptions extends ScenarioOptions {
  /** Virtual time the nemesis runs (from 500 ms). */
  faultMs?: number;
  /** False: no faults at all (a steady run). */
  faults?: boolean;
  /** Longest virtual time allowed to settle after the heal. */
  settleMs?: number;
  /** Deliberately broken: agents ignore their task records after a restart. Its seeds are expected to fail. */
  unsafeForgetTasks?: boolean;
  /** Deliberately broken: member n2 skips status reports when it applies the log. Its seeds are expected to fail. */
  unsafeDivergentMember?: boolean;
}

const SETTLE_STEP_MS = 500;

/** The trace of the latest run made with `keepFullTrace` (for debugging one seed: `--seed S --trace`). */
let lastFullTrace: readonly string[] = [];
export function lastControlPlaneTrace(): readonly string[] {
  return lastFullTrace;
}

export function runControlPlane(seed: number, options: ControlPlaneOptions = {}): ScenarioResult {
  const root = Random.fromSeed(`control-plane/${seed}`);
  const pick = root.split();
  const faults = options.faults ?? true;
  const startMs = 500;
  const endMs = startMs + (options.faultMs ?? 14_000);
  const lossRate = faults ? pick.pick([0, 0.01, 0.03]) : 0;
  const crashMode = pick.chance(0.5) ? 'torn' : 'drop-unsynced';
  const referee = new CpReferee();
  const machines = new Map<string, SimMachine>();
  const nodeSpec = (id: string): Extract<Command, { type: 'node.upsert' }>['node'] => ({
    id, name: id, address: `${id}.sim:7645`, labels: { zone: `z${NODE_IDS.indexOf(id) % 2}` }, capacity: NODE_CAPACITY, drivers: ['process'],
    roles: VOTERS.includes(id) ? ['voter'] : [],
  });
  const env: AgentEnv = { referee, machines, nodeSpec, unsafeForgetTasks: options.unsafeForgetTasks ?? false, unsafeSkipReportsOn: options.unsafeDivergentMember ? 'n2' : undefined };
  // Machines exist before the simulator boots the agents on them.
  const simRef: { sim?: Simulator<CpMessage> } = {};
  const machineRandom = root.split();
  for (const id of NODE_IDS) {
    machines.set(id, new SimMachine(id, () => simRef.sim!, machineRandom.split(), { startFailRate: faults ? 0.03 : 0, exitRate: faults ? 0.15 : 0, exitsUntilMs: endMs }));
  }

  const sim = new Simulator<CpMessage>({
    seed,
    nodeIds: NODE_IDS,
    tickIntervalMs: TICK_MS,
    link: { delay: { kind: 'exponential', minMs: 1, meanExtraMs: 3 }, lossRate, duplicateRate: faults ? 0.02 : 0, reorderRate: faults ? 0.05 : 0, reorderWindowMs: 30 },
    crashMode,
    keepFullTrace: options.keepFullTrace ?? false,
    messageSizeBytes: (m) => (m.kind === 'raft' ? 64 + m.raft.entries.reduce((s, e) => s + e.data.byteLength + 32, 0) + (m.raft.snapshot ? m.raft.snapshot.data.byteLength : 0) : 64 + m.updates.length * 96),
    describeMessage: (m) => {
      if (m.kind === 'report') return `report ${m.updates.map((u) => `${u.allocId.slice(0, 6)}:${u.clientStatus}`).join(',')}`;
      const r = m.raft;
      return `${r.type} t${r.term} i${r.index} lt${r.logTerm} c${r.commit}${r.entries.length ? ` e${r.entries[0]!.index}-${r.entries[r.entries.length - 1]!.index}` : ''}${r.reject ? ` rej h${r.rejectHint}` : ''}${r.snapshot ? ` snap@${r.snapshot.metadata.index}` : ''}`;
    },
    createNode: (ctx) => new ControlAgent(ctx, env),
  });
  simRef.sim = sim;
  if (options.keepFullTrace) lastFullTrace = sim.trace.full() ?? [];
  sim.addInvariant('replicated states agree and no node is over-committed', () => referee.problem);
  sim.addInvariant('no machine runs two tasks for one allocation', () => {
    for (const m of machines.values()) {
      const problem = m.check();
      if (problem) return problem;
    }
    return undefined;
  });

  const agentOf = (id: string): ControlAgent | undefined => sim.node(id) as ControlAgent | undefined;
  const leader = (): ControlAgent | undefined => {
    let best: ControlAgent | undefined;
    for (const id of sim.upNodeIds()) {
      const a = agentOf(id);
      if (a && a.raft.role === 'leader' && (!best || a.raft.term > best.raft.term)) best = a;
    }
    return best;
  };

  // --- Faults: the network and pauses from the shared nemesis; crashes of two kinds from our own schedule --------
  let agentRestarts = 0;
  let powerOffs = 0;
  if (faults) {
    scheduleNemesis(sim, root.split(), {
      ...DEFAULT_NEMESIS,
      weights: { ...DEFAULT_NEMESIS.weights, crash: 0 },
      meanIntervalMs: 700,
      maxFaultMs: 4_000,
      startMs,
      endMs,
      maxDownNodes: 1,
    });
    const crashRandom = root.split();
    const down = new Set<string>();
    for (let t = startMs + crashRandom.exponential(800); t < endMs; t += crashRandom.exponential(800)) {
      const victim = crashRandom.pick(NODE_IDS);
      const powerOff = crashRandom.chance(0.4);
      const lastsMs = 200 + crashRandom.int(4_500);
      sim.at(Math.round(t), `crash ${victim} (${powerOff ? 'power-off' : 'agent'})`, () => {
        // At most two nodes down at once, at most one voter: the group keeps a quorum through the crashes alone.
        if (!sim.isUp(victim) || down.size >= 2 || (VOTERS.includes(victim) && [...down].some((d) => VOTERS.includes(d)))) return;
        down.add(victim);
        if (powerOff) {
          powerOffs++;
          machines.get(victim)!.powerOff();
        } else agentRestarts++;
        sim.crash(victim);
        sim.after(lastsMs, `restart ${victim}`, () => {
          down.delete(victim);
          sim.restart(victim);
        });
      });
    }
  }

  // --- The operator: each step is proposed to the leader until the leader's state shows it -----------------------
  const steps = operatorSteps(root.split());
  let stepsDone = 0;
  const runStep = (i: number): void => {
    const step = steps[i];
    if (step === undefined) return;
    const attempt = (): void => {
      const l = leader();
      if (l && l.caughtUp() && step.done(l.state)) {
        stepsDone++;
        runStep(i + 1);
        return;
      }
      if (l && l.caughtUp()) l.propose(step.command);
      sim.after(250, `operator retry ${step.label}`, attempt);
    };
    sim.at(Math.max(sim.nowMs(), step.atMs), `operator ${step.label}`, attempt);
  };
  runStep(0);

  // --- Run, heal, settle ---------------------------------------------------------------------------------------------
  sim.runUntil(endMs);
  sim.network.heal();
  sim.network.setDefaults({ lossRate: 0, duplicateRate: 0, reorderRate: 0 });
  for (const id of NODE_IDS) sim.restart(id);
  const healedAt = sim.nowMs();
  const settleMs = options.settleMs ?? 30_000;
  let problem: string | undefined = 'no leader';
  while (sim.nowMs() - healedAt < settleMs) {
    sim.runFor(SETTLE_STEP_MS);
    const l = leader();
    if (!l || !l.caughtUp()) {
      problem = 'no caught-up leader';
      continue;
    }
    if (stepsDone < steps.length) {
      problem = `the operator finished ${stepsDone} of ${steps.length} steps`;
      continue;
    }
    problem = checkConverged(l.state, machines, new Set(sim.upNodeIds()));
    if (problem === undefined) {
      // Converged: the agreement must hold on every member that caught up.
      break;
    }
  }
  if (problem !== undefined) throw new ControlPlaneFailure(seed, `${problem} (after settling ${sim.nowMs() - healedAt} ms)`);
  const settledMs = sim.nowMs() - healedAt;
  const l = leader()!;
  const conf = l.raft.confState();
  if (conf.voters.join() !== VOTERS.join() || [...conf.learners].sort().join() !== LEARNERS.join()) {
    throw new ControlPlaneFailure(seed, `the group should be voters ${VOTERS.join(',')} and learners ${LEARNERS.join(',')}; it is voters ${conf.voters.join(',')} learners ${conf.learners.join(',')}`);
  }
  // Every member catches up with the leader and holds exactly the leader's state.
  const target = l.appliedIndex;
  const caughtUp = sim.runUntilTrue(() => NODE_IDS.every((id) => (agentOf(id)?.appliedIndex ?? 0) >= target), 5_000);
  if (!caughtUp) throw new ControlPlaneFailure(seed, `members did not all apply index ${target} within 5 s of convergence: ${NODE_IDS.map((id) => `${id}@${agentOf(id)?.appliedIndex ?? 'down'}`).join(' ')}`);
  const byIndex = new Map<number, { id: string; digest: string }>();
  for (const id of NODE_IDS) {
    const a = agentOf(id)!;
    const digest = stateDigest(a.state);
    const other = byIndex.get(a.appliedIndex);
    if (other && other.digest !== digest) throw new ControlPlaneFailure(seed, `${other.id} and ${id} both applied index ${a.appliedIndex} but hold different states`);
    byIndex.set(a.appliedIndex, { id, digest });
  }
  if (referee.problem) throw new ControlPlaneFailure(seed, referee.problem);
  return {
    hash: sim.trace.hash(),
    events: sim.eventCount,
    virtualMs: sim.nowMs(),
    stats: {
      ...sim.stats(),
      applied: referee.maxApplied,
      stateDigests: referee.digests,
      snapshotInstalls: referee.installs,
      allocations: l.state.allocations().length,
      evaluations: l.state.pendingEvaluations().length,
      taskStarts: [...machines.values()].reduce((s, m) => s + m.starts, 0),
      taskSelfExits: [...machines.values()].reduce((s, m) => s + m.selfExits, 0),
      agentRestarts,
      powerOffs,
      settledMs,
      lostAllocations: l.state.allocations().filter((a) => a.clientStatus === 'lost').length,
      failedAllocations: l.state.allocations().filter((a) => a.clientStatus === 'failed').length,
      ...Object.fromEntries([...referee.commands].map(([k, v]) => [`cmd:${k}`, v])),
    },
  };
}

export const controlPlaneScenario: Scenario = {
  name: 'control-plane',
  description: '5 agents (3 Raft voters + 2 learners) with the replicated cluster state, the scheduler on the leader and the node core over simulated machines; jobs registered, scaled, updated and stopped during partitions, agent restarts and power-offs; checks state agreement, no duplicate tasks, no over-commit or doubly held host port, and convergence after the heal',
  run: (seed, options) => runControlPlane(seed, options),
};

export const controlPlaneForgetfulScenario: Scenario = {
  name: 'control-plane-forgetful',
  description: 'control-plane with a deliberate bug (a restarted agent ignores its task records and starts its tasks again); the duplicate-task invariant must catch it',
  run: (seed, options) => runControlPlane(seed, { ...options, unsafeForgetTasks: true }),
};

export const controlPlaneDivergentScenario: Scenario = {
  name: 'control-plane-divergent',
  description: 'control-plane with a deliberate bug (member n2 skips status reports when applying the log); the state agreement check must catch it',
  run: (seed, options) => runControlPlane(seed, { ...options, unsafeDivergentMember: true }),
};

export const CONTROL_PLANE_SCENARIOS: readonly Scenario[] = [controlPlaneScenario, controlPlaneForgetfulScenario, controlPlaneDivergentScenario];
export const CONTROL_PLANE_MUST_PASS: readonly string[] = [controlPlaneScenario.name];
