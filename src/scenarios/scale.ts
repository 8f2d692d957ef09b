/**
 * Scale: what the control plane costs as the cluster grows, measured on the simulator's virtual clock with the real
 * cores. N agents (default 5,000) each run the membership core (SWIM + Lifeguard) and the node core. The servers
 * run the Raft core and hold the whole `ClusterState`: 5 voters n1..n5, bootstrapped directly, and the read replicas
 * the leader's autopilot (`autopilotStep`, one change per round) adds as learners; an agent becomes a server when a
 * leader's message reaches it, as the agent does. The leader also keeps the node table in step with gossip and runs
 * the scheduler. Every other agent is a client: not in the Raft group, it holds only its node's slice (`NodeSlice`),
 * fed by a slice watch on one server.
 *
 *   client ──watch(since, wait)──► server: slice changed after `since`, or wait 0? answer `sliceDelta` now
 *                                          else park it until an apply batch touches the node (`drainTouchedNodes`)
 *                                          or the wait (LIMITS.sliceWatchMaxWaitMs less jitter) ends, then answer
 *   client ◄──slice delta──  merge, reconcile the node core (start tasks), report to the leader, watch again
 *
 * As src/runtime/slice-client.ts and slice-server.ts do: a client watches the server rendezvous hashing gives it among
 * the servers gossip shows (their roles are in their gossiped metadata), the leader last, sticks to it while it is
 * healthy, and asks for an answer at once (wait 0) until it holds a fresh slice; it starts once gossip shows it a
 * leader. Like the agent, the leader reconciles autopilot and the node table every 500 ms, and batches the status
 * reports of one tick into one proposal (the agent batches one event-loop turn); servers gossip their roles every
 * 500 ms; Raft ticks every 30 ms and heartbeats every LIMITS.raftHeartbeatIntervalMs in whole ticks. Since the
 * simulator's clock does not see CPU time, each plan is sent after the time the C1M benchmark measures for planning
 * it. Links are FIFO with a fixed delay, as the agent's stream links are.
 *
 *   formation ─► idle (no job changes, `idleMs`) ─► scheduling (C1M-style: jobs whose replicas fill ~`allocsPerNode`
 *                                                    per node, planned by the real scheduler, applied through Raft,
 *                                                    started by the nodes and reported running) until quiescent
 *
 * Per phase, every message an agent sends is counted by kind (gossip, i.e. SWIM's pings, acks and rumours; raft;
 * slice, i.e. watch requests and answers; report, i.e. status reports for the leader) in messages and bytes. Bytes:
 * gossip by the membership core's own measure, Raft as a 48-byte header plus `entryBytes` per entry, slice answers
 * and reports by their JSON, a watch request as 56 bytes plus the node id. Push-pull (gossip's anti-entropy: a full
 * state exchange with one random member every pushPullIntervalMs, scaled with log2 N) is counted apart: every
 * agent's first one falls within the first pushPullIntervalMs after it starts and the next ones a whole scaled
 * interval (40 s at 200 agents, 90 s at 5,000) later, so a window of a few seconds says nothing about it. Its
 * steady-state rate is measured over that first round, which holds exactly one exchange per agent, divided by the
 * scaled interval.
 *
 * Checked while it runs (invariants): every slice a client merges holds only that client's allocations, and the job
 * record of each of them; whenever the answering server has not moved on, the slice is that server's state
 * restricted to the node; no member is ever declared DEAD. At the end, after quiescence: every client's slice equals
 * the leader's state restricted to its node (`allocationsOnNode` and the referenced job records, compared whole), and
 * the traffic bounds hold (`checkScaleBounds`): the leader's idle Raft + slice traffic is its heartbeats to the other
 * servers (independent of N), gossip per agent stays within a constant per probe interval, and the leader's extra
 * bytes while scheduling, per allocation placed, stay within a constant (independent of N). The job-record check
 * found that `sliceDelta` sent a job's record only when the job changed after `since`, so a client whose index
 * had passed the job's registration before the job had an allocation on its node never received it (fixed in
 * src/state/slice.ts since).
 */
import { DEFAULT_FAILURE_DOMAIN_LABEL, autopilotStep } from '../autopilot/autopilot.js';
import { NotLeaderError, ProposalDroppedError } from '../consensus/errors.js';
import { RaftNode } from '../consensus/raft.js';
import { entryBytes, type Entry, type Message } from '../consensus/types.js';
import { parseJobFile } from '../jobspec/parse.js';
import type { Job } from '../jobspec/types.js';
import { invariant } from '../lib/assert.js';
import { InvalidArgumentError, ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { Random } from '../lib/random.js';
import { DEFAULT_MEMBERSHIP_CONFIG, pushPullIntervalForMs } from '../membership/config.js';
import { Membership } from '../membership/membership.js';
import { metaSizeBytes, rumourSizeBytes, utf8Bytes } from '../membership/meta.js';
import type { GossipMessage, MemberSnapshot, NodeMeta, PushPullState } from '../membership/types.js';
import { NodeCore, type NodeEffect, type NodeStateView } from '../node/node-core.js';
import { computePlan } from '../scheduler/scheduler.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../sim/scenario.js';
import { Simulator, type SimNode, type SimNodeContext } from '../sim/simulator.js';
import { ClusterState } from '../state/cluster-state.js';
import type { AllocUpdate, Command } from '../state/commands.js';
import { NodeSlice, sliceDelta, type SliceDelta } from '../state/slice.js';
import { LAN_LINK } from './membership.js';
import { SimRaftLog } from './sim-raft-log.js';

// --- Shape of the cluster -------------------------------------------------------------------------------------------

/** The agent's membership tick (src/runtime/agent.ts MEMBERSHIP_TICK_MS). */
const TICK_MS = 10;
/** Raft ticks every third membership tick: 30 ms, as the agent's RAFT_TICK_MS. */
const RAFT_TICK_EVERY = 3;
const RAFT_TICK_MS = TICK_MS * RAFT_TICK_EVERY;
const ELECTION_TICKS = 10;
/** Heartbeats every LIMITS.raftHeartbeatIntervalMs in whole ticks, at most a third of the election timeout (raft-group's default). */
const HEARTBEAT_TICKS = Math.max(1, Math.min(Math.round(LIMITS.raftHeartbeatIntervalMs / RAFT_TICK_MS), Math.floor(ELECTION_TICKS / 3)));
/** The first voters, bootstrapped directly; autopilot then adds the read replicas. */
export const VOTERS: readonly string[] = ['n1', 'n2', 'n3', 'n4', 'n5'];
/** Servers in all once autopilot is done: the voters and LIMITS.autopilotMaxReadReplicas read replicas. */
export const SERVER_COUNT = VOTERS.length + LIMITS.autopilotMaxReadReplicas;
/** Raft messages only a leader sends: one makes an agent that is not yet a server one (src/runtime/agent.ts). */
const LEADER_MESSAGES: ReadonlySet<string> = new Set(['append', 'heartbeat', 'snapshot']);
/** How often the leader reconciles the group (autopilot) and the node table with gossip (the agent's NODE_RECONCILE_MS). */
const NODE_RECONCILE_MS = 500;
const MiB = 1024 * 1024;
/** Room for 22 replicas of 200m each: ~20 per node fills the cluster to about 90%. */
const NODE_CAPACITY = { cpuMillicores: 4_400, memoryBytes: 8_192 * MiB };
/** A node re-runs its reconciliation (and resends reports the state does not show yet) at least this often. */
const TASK_RECONCILE_MS = LIMITS.nodeIdleReconcileMs;
/** Parked watches are checked for the end of their wait this often. */
const WATCH_SWEEP_EVERY_TICKS = 10;
/** One-way delay of every link (a LAN). */
const LINK_DELAY_MS = 0.5;
/** How often the harness checks whole-cluster conditions (formation, quiescence). */
const POLL_MS = 100;
/**
 * Virtual time the leader spends computing a plan, per placement: the C1M benchmark's ~34,000 placements/s
 * (docs/BENCHMARKS.md, planning and applying), so the scheduling phase lasts about as long as it would.
 */
const PLAN_MS_PER_PLACEMENT = 1_000 / 34_000;

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const encodeText = (s: string): Uint8Array => ENCODER.encode(s);
const decodeText = (b: Uint8Array): string => DECODER.decode(b);

// --- Messages and their sizes ---------------------------------------------------------------------------------------

export type TrafficKind = 'gossip' | 'raft' | 'slice' | 'report';
export const TRAFFIC_KINDS: readonly TrafficKind[] = ['gossip', 'raft', 'slice', 'report'];

export type ScaleMessage =
  | { kind: 'gossip'; bytes: number; gossip: GossipMessage }
  | { kind: 'raft'; bytes: number; raft: Message }
  /** A client asks its server for its slice's changes after `since` (Slices/Watch); `waitMs` 0: answer at once. */
  | { kind: 'watch'; bytes: number; since: number; waitMs: number }
  /** The server's answer; `leader` and `fresh` as the real answer's leader_id and fresh. */
  | { kind: 'slice'; bytes: number; delta: SliceDelta; leader: string; fresh: boolean }
  /** A node's status report for the leader (AllocReports/Update). */
  | { kind: 'report'; bytes: number; updates: AllocUpdate[] };

/** Counters per agent, in a flat array: [msgs, bytes] per kind in TRAFFIC_KINDS order (gossip without push-pull), then push-pull [msgs, bytes]. */
const PUSH_PULL_SLOT = TRAFFIC_KINDS.length;
const COUNTER_SLOTS = (TRAFFIC_KINDS.length + 1) * 2;

function trafficSlot(kind: ScaleMessage['kind']): number {
  switch (kind) {
    case 'gossip':
      return 0;
    case 'raft':
      return 1;
    case 'watch':
    case 'slice':
      return 2;
    case 'report':
      return 3;
  }
}

/** JSON size of a push-pull state besides its id and metadata (`null` stands for the metadata; 8 incarnation digits). */
const STATE_FIXED_BYTES = utf8Bytes(JSON.stringify({ id: '', incarnation: 0, status: 'alive', meta: null })) - 'null'.length + 8;

/**
 * A gossip message's size by the membership core's own measure (`rumourSizeBytes`, an upper bound of the JSON
 * form; metadata sizes are cached, so nothing is encoded again), plus its kind, sequence number and target.
 */
function gossipBytes(m: GossipMessage): number {
  let n = 40;
  if (m.kind === 'push-pull') {
    for (const s of m.states) n += STATE_FIXED_BYTES + utf8Bytes(s.id) + metaSizeBytes(s.meta);
    return n;
  }
  if ('target' in m) n += m.target.length;
  for (const r of m.rumours) n += rumourSizeBytes(r) + 1;
  return n;
}

function raftBytes(m: Message): number {
  let n = 48 + m.group.length;
  for (const e of m.entries) n += entryBytes(e);
  if (m.snapshot) n += m.snapshot.data.byteLength + 64;
  return n;
}

function describe(m: ScaleMessage): string {
  switch (m.kind) {
    case 'gossip':
      return m.gossip.kind === 'push-pull' ? `pp${m.gossip.reply ? '?' : ''} ${m.gossip.states.length}` : `${m.gossip.kind} ${m.gossip.rumours.length}`;
    case 'raft':
      return `${m.raft.type} t${m.raft.term} i${m.raft.index} c${m.raft.commit} e${m.raft.entries.length}${m.raft.reject ? ' rej' : ''}`;
    case 'watch':
      return `watch ${m.since}`;
    case 'slice':
      return `slice i${m.delta.index} a${m.delta.allocations.length}/${m.delta.allocIds.length} j${m.delta.jobs.length}`;
    case 'report':
      return `report ${m.updates.length}`;
  }
}

/**
 * FNV-1a of a string with murmur3's finalizer (FNV alone ranks similar strings unevenly): the rendezvous score of a
 * (client, server) pair, standing in for the real client's SHA-256. Deterministic, no I/O.
 */
function fnv(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// --- The world: what every agent shares (counters, the referee) -----------------------------------------------------

export class ScaleWorld {
  simRef: Simulator<ScaleMessage> | undefined;
  readonly ids: string[];
  readonly traffic = new Map<string, Float64Array>();
  /** One metadata object per agent, shared by every view of it (as a decoded message would be). */
  readonly meta = new Map<string, NodeMeta>();
  /** Agents that ever held the log: the first voters, then those autopilot added. */
  readonly servers = new Set<string>(VOTERS);
  problem: string | undefined;
  readonly counts = {
    sliceAnswers: 0,
    sliceAnswersOnWake: 0,
    sliceAnswersOnTimeout: 0,
    sliceExactChecks: 0,
    sliceMerges: 0,
    sliceStaleAnswers: 0,
    suspects: 0,
    plans: 0,
    reportsProposed: 0,
    taskStarts: 0,
    autopilotChanges: 0,
    becameServers: 0,
  };

  constructor(ids: string[]) {
    this.ids = ids;
    for (const id of ids) {
      this.traffic.set(id, new Float64Array(COUNTER_SLOTS));
      this.meta.set(id, metaFor(id, { voter: VOTERS.includes(id), leader: false }));
    }
  }

  get sim(): Simulator<ScaleMessage> {
    invariant(this.simRef !== undefined, 'the world has no simulator yet');
    return this.simRef;
  }

  fail(problem: string): void {
    this.problem ??= problem;
  }

  agent(id: string): ScaleAgent | undefined {
    return this.sim.node(id) as ScaleAgent | undefined;
  }

  count(from: string, m: ScaleMessage): void {
    const c = this.traffic.get(from)!;
    const slot = (m.kind === 'gossip' && m.gossip.kind === 'push-pull' ? PUSH_PULL_SLOT : trafficSlot(m.kind)) * 2;
    c[slot]! += 1;
    c[slot + 1]! += m.bytes;
  }

  /**
   * A client merged an answer. It must hold only its own allocations and the job record of each; when the server
   * that answered is still at the answer's index, the slice must be that server's state restricted to the node. At
   * every step that is checked by identity (the same allocations and job records, at the same modify index: every
   * change to a record bumps it); at the end, `sliceMismatch` compares the records whole.
   */
  checkSlice(client: string, slice: NodeSlice, delta: SliceDelta, server: string, since: number): void {
    for (const a of slice.allocations()) {
      if (a.nodeId !== client) {
        this.fail(`client ${client}'s slice holds allocation ${a.id} of node ${a.nodeId} (answer from ${server} at index ${delta.index})`);
        return;
      }
      if (slice.job(a.jobName) === undefined) {
        const rec = this.agent(server)?.server?.state.job(a.jobName);
        this.fail(
          `client ${client}'s slice at index ${slice.index} holds allocation ${a.id} of job ${a.jobName} but not the job's record: ` +
          `${server} answered its watch since ${since} with ${delta.allocations.length} allocations and jobs [${delta.jobs.map((j) => j.job.name).join(', ')}]; ` +
          `the job last changed at index ${rec?.modifyIndex ?? '?'}, ${rec && rec.modifyIndex <= since ? 'at or before' : 'after'} since=${since}, and the allocation was created at ${a.createIndex} ` +
          '(sliceDelta sends a job record only when the job changed after `since`, not when an allocation of it is new to the slice)',
        );
        return;
      }
    }
    const state = this.agent(server)?.server?.state;
    if (!delta.complete || state === undefined || state.index !== delta.index) return;
    this.counts.sliceExactChecks++;
    const want = state.allocationsOnNode(client);
    const have = slice.allocations();
    let problem: string | undefined;
    if (want.length !== have.length) problem = `it holds ${have.length} allocations; the state has ${want.length} on the node`;
    for (const w of want) {
      if (problem) break;
      const h = slice.allocation(w.id);
      if (h === undefined) problem = `it lacks allocation ${w.id}`;
      else if (h.modifyIndex !== w.modifyIndex) problem = `its allocation ${w.id} is at modify index ${h.modifyIndex}; the state's at ${w.modifyIndex}`;
      else if (slice.job(w.jobName)?.modifyIndex !== state.job(w.jobName)?.modifyIndex) problem = `its record of job ${w.jobName} is at modify index ${slice.job(w.jobName)?.modifyIndex}; the state's at ${state.job(w.jobName)?.modifyIndex}`;
    }
    if (problem === undefined && slice.jobs().length !== new Set(want.map((a) => a.jobName)).size) problem = `it holds ${slice.jobs().length} job records for allocations of ${new Set(want.map((a) => a.jobName)).size} jobs`;
    if (problem) this.fail(`client ${client}'s slice after merging ${server}'s answer at index ${delta.index} (since ${since}) is not the state restricted to the node: ${problem}`);
  }
}

/** How `slice` differs from `state` restricted to `nodeId` (allocations and referenced job records), if it does. */
export function sliceMismatch(nodeId: string, slice: NodeSlice, state: ClusterState): string | undefined {
  const want = state.allocationsOnNode(nodeId).sort((a, b) => (a.id < b.id ? -1 : 1));
  const have = slice.allocations().sort((a, b) => (a.id < b.id ? -1 : 1));
  if (want.length !== have.length) return `client ${nodeId}'s slice holds ${have.length} allocations; the state has ${want.length} on the node`;
  for (let i = 0; i < want.length; i++) {
    const w = JSON.stringify(want[i]);
    const h = JSON.stringify(have[i]);
    if (w !== h) return `client ${nodeId}'s allocation ${have[i]!.id} differs from the state's ${want[i]!.id}:\n  slice ${h}\n  state ${w}`;
  }
  const jobs = [...new Set(want.map((a) => a.jobName))].sort();
  const held = slice.jobs().map((j) => j.job.name).sort();
  if (jobs.join() !== held.join()) return `client ${nodeId}'s slice holds job records [${held.join(', ')}]; its allocations belong to [${jobs.join(', ')}]`;
  for (const name of jobs) {
    if (JSON.stringify(slice.job(name)) !== JSON.stringify(state.job(name))) return `client ${nodeId}'s record of job ${name} differs from the state's`;
  }
  return undefined;
}

function metaFor(id: string, roles: NodeMeta['roles']): NodeMeta {
  return {
    name: id,
    agentVersion: '0.1.0',
    addresses: [`${id}.sim:7645`],
    labels: { zone: `z${fnv(id) % 3}` },
    resources: { cpuMillicores: NODE_CAPACITY.cpuMillicores, memoryBytes: NODE_CAPACITY.memoryBytes, diskFreeBytes: 100 * 1024 * MiB },
    drivers: ['process'],
    roles,
  };
}

/** A node record as the agent's leader writes it from a member's gossiped metadata (src/runtime/agent.ts). */
function nodeSpec(m: MemberSnapshot): Extract<Command, { type: 'node.upsert' }>['node'] {
  const r = m.meta.roles;
  const roles = [...(r.voter ? ['voter'] : []), ...(r.leader ? ['leader'] : []), ...(r.replica ? ['replica'] : [])];
  return {
    id: m.id, name: m.meta.name, address: m.meta.addresses[0] ?? '', labels: m.meta.labels,
    capacity: { cpuMillicores: m.meta.resources.cpuMillicores, memoryBytes: m.meta.resources.memoryBytes }, drivers: m.meta.drivers,
    roles: roles.length > 0 ? roles : ['client'],
  };
}

// --- A server: the Raft core, the whole state, the slice watches, and (on the leader) the control loop --------------

export class ScaleServer {
  readonly raft: RaftNode;
  readonly state = new ClusterState();
  appliedIndex = 0;
  /** Parked watches by client: the index the client holds and when the wait ends. */
  readonly watches = new Map<string, { since: number; deadlineMs: number }>();
  readonly #log: SimRaftLog;
  readonly #agent: ScaleAgent;
  readonly #schedRandom: Random;
  #leaderTerm = -1;
  /** Index of the proposal awaited per purpose ("plan", "conf", "node:<id>", "report:<id>"). */
  readonly #awaiting = new Map<string, number>();
  /** Status reports waiting for the next batch, by node. */
  readonly #reports = new Map<string, AllocUpdate[]>();
  /** When the leader last reconciled the group and the node table with gossip, and when members were first seen dead. */
  #lastReconcileMs = -Infinity;
  readonly #deadSince = new Map<string, number>();

  constructor(agent: ScaleAgent, ctx: SimNodeContext<ScaleMessage>) {
    this.#agent = agent;
    this.#log = new SimRaftLog(ctx.storage, ctx.id, VOTERS);
    invariant(this.#log.bootSnapshot === undefined, 'the scale scenario never snapshots');
    this.#schedRandom = ctx.random.split();
    this.raft = new RaftNode({ group: 'cluster', id: ctx.id, storage: this.#log.mem, random: ctx.random.split(), electionTicks: ELECTION_TICKS, heartbeatTicks: HEARTBEAT_TICKS, preVote: true, checkQuorum: true });
  }

  get isLeader(): boolean {
    return this.raft.role === 'leader';
  }

  /** The leader has committed an entry of its term and applied everything committed: its state is current. */
  caughtUp(): boolean {
    return this.isLeader && this.raft.log.term(this.raft.log.committed) === this.raft.term && this.appliedIndex >= this.raft.log.committed;
  }

  /** A follower's state is fresh enough to act on while it knows a leader and has applied what it knows committed. */
  fresh(): boolean {
    return this.isLeader ? this.caughtUp() : this.raft.leader !== undefined && this.appliedIndex >= this.raft.log.committed;
  }

  tick(): void {
    this.raft.tick();
    this.process();
  }

  step(m: Message): void {
    this.raft.step(m);
    this.process();
  }

  propose(command: Command): number | undefined {
    try {
      const at = this.raft.propose(encodeText(JSON.stringify(command)));
      this.process();
      return at.index;
    } catch (err) {
      if (err instanceof NotLeaderError || err instanceof ProposalDroppedError) return undefined;
      throw err;
    }
  }

  /** Several commands in one append per follower (the runtime batches proposals of one event-loop turn the same way). */
  proposeBatch(commands: readonly Command[]): number[] | undefined {
    try {
      const at = this.raft.proposeBatch(commands.map((c) => ({ data: encodeText(JSON.stringify(c)) })));
      this.process();
      return at.map((a) => a.index);
    } catch (err) {
      if (err instanceof NotLeaderError || err instanceof ProposalDroppedError) return undefined;
      throw err;
    }
  }

  #awaited(key: string): boolean {
    const at = this.#awaiting.get(key);
    return at === undefined || this.appliedIndex >= at;
  }

  /**
   * Queues a node's status report for the next tick's batch: the agent proposes what arrives in one event-loop turn
   * as one Ready (one append per follower), and a 10 ms tick is the simulator's turn. A node with a report still
   * uncommitted is not heard again until it is applied (it resends whatever the state does not show then).
   */
  proposeReport(from: string, updates: AllocUpdate[]): void {
    if (!this.caughtUp() || !this.#awaited(`report:${from}`) || this.#reports.has(from)) return;
    this.#reports.set(from, updates);
  }

  #flushReports(): void {
    if (this.#reports.size === 0) return;
    const from = [...this.#reports.keys()];
    const at = this.proposeBatch(from.map((nodeId) => ({ type: 'alloc.update', nodeId, updates: this.#reports.get(nodeId)! })));
    this.#reports.clear();
    if (at === undefined) return;
    from.forEach((nodeId, i) => this.#awaiting.set(`report:${nodeId}`, at[i]!));
    this.#agent.world.counts.reportsProposed += from.length;
  }

  // --- Slice watches ------------------------------------------------------------------------------------------------

  /** As src/runtime/slice-server.ts: answer now if the slice changed after `since` or the client asks for no wait. */
  onWatch(client: string, since: number, askedWaitMs: number): void {
    const now = this.#agent.nowMs();
    const maxWaitMs = Math.max(0, Math.min(askedWaitMs, LIMITS.sliceWatchMaxWaitMs));
    const waitMs = maxWaitMs === 0 ? 0 : Math.max(1, maxWaitMs - this.#agent.random.int(Math.min(LIMITS.sliceWatchJitterMs, maxWaitMs - 1) + 1));
    if (this.state.index >= since && (this.state.nodeTouchedIndex(client) > since || waitMs === 0)) {
      this.#answer(client, since);
      return;
    }
    // (A server behind the client's index waits until it has applied it; the sweep answers then.)
    this.watches.set(client, { since, deadlineMs: now + waitMs });
  }

  /** Answers the watches whose wait is over ("no change", at the current index). */
  sweepWatches(): void {
    const now = this.#agent.nowMs();
    for (const [client, w] of this.watches) {
      if (now >= w.deadlineMs && this.state.index >= w.since) {
        this.#agent.world.counts.sliceAnswersOnTimeout++;
        this.#answer(client, w.since);
      }
    }
  }

  #answer(client: string, since: number): void {
    this.watches.delete(client);
    const world = this.#agent.world;
    const delta = sliceDelta(this.state, client, since, LIMITS.sliceMaxAllocsPerAnswer);
    // The wire copy: the client must never share the server's (mutable) records.
    const text = JSON.stringify(delta);
    world.counts.sliceAnswers++;
    const fresh = this.raft.leader !== undefined && this.appliedIndex >= this.raft.log.committed;
    this.#agent.send(client, { kind: 'slice', bytes: utf8Bytes(text) + 64, delta: JSON.parse(text) as SliceDelta, leader: this.raft.leader ?? '', fresh });
  }

  // --- The leader's control loop ------------------------------------------------------------------------------------

  lead(): void {
    if (this.#leaderTerm !== this.raft.term) {
      // A new reign: nothing proposed before is awaited any more.
      this.#leaderTerm = this.raft.term;
      this.#awaiting.clear();
      this.#reports.clear();
      this.#lastReconcileMs = -Infinity;
    }
    if (!this.caughtUp()) return;
    this.#flushReports();
    // 1 and 2: autopilot and the node table, every NODE_RECONCILE_MS as the agent does.
    if (this.#agent.nowMs() - this.#lastReconcileMs >= NODE_RECONCILE_MS) {
      this.#lastReconcileMs = this.#agent.nowMs();
      const members = this.#agent.membership.members();
      this.#autopilot(members);
      this.#syncNodeTable(members);
    }
    // 3. Scheduling: one plan in flight at a time, computed on the current state.
    if (!this.#awaited('plan')) return;
    const pending = this.state.pendingEvaluations();
    if (pending.length === 0) return;
    pending.sort((a, b) => a.createIndex - b.createIndex || (a.id < b.id ? -1 : 1));
    const next = pending[0]!;
    const superseded = pending.filter((e) => e.jobName === next.jobName && e.id !== next.id).map((e) => e.id);
    const plan = computePlan(this.state, next, this.#schedRandom);
    if (plan === undefined) {
      const at = this.propose({ type: 'eval.complete', evalIds: [next.id, ...superseded] });
      if (at !== undefined) this.#awaiting.set('plan', at);
      return;
    }
    this.#agent.world.counts.plans++;
    const commands: Command[] = superseded.length > 0 ? [{ type: 'eval.complete', evalIds: superseded }, { type: 'plan.apply', plan }] : [{ type: 'plan.apply', plan }];
    // Planning takes time the simulator's clock does not see: the plan goes out after what the C1M benchmark
    // measures per placement, with the state moving on meanwhile (the plan is checked against it when applied).
    const term = this.raft.term;
    this.#awaiting.set('plan', Number.MAX_SAFE_INTEGER);
    this.#agent.world.sim.after(Math.max(1, Math.round(plan.placements.length * PLAN_MS_PER_PLACEMENT)), `plan ${this.#agent.id} ${plan.jobName}`, () => {
      if (this.#agent.world.agent(this.#agent.id) !== this.#agent || this.raft.term !== term || !this.isLeader) return;
      const at = this.proposeBatch(commands);
      if (at !== undefined) this.#awaiting.set('plan', at[at.length - 1]!);
      else this.#awaiting.delete('plan');
    });
  }

  /** One membership change per round, decided by the real `autopilotStep` from gossip and the leader's progress. */
  #autopilot(members: MemberSnapshot[]): void {
    const now = this.#agent.nowMs();
    for (const m of members) {
      if (m.status === 'dead') {
        if (!this.#deadSince.has(m.id)) this.#deadSince.set(m.id, now);
      } else this.#deadSince.delete(m.id);
    }
    const change = autopilotStep({
      self: this.#agent.id, status: this.raft.status(), members, deadSinceMs: this.#deadSince, nowMs: now,
      graceMs: LIMITS.autopilotDeadGraceMs, maxLagEntries: LIMITS.autopilotMaxLagEntries,
      readReplicas: LIMITS.autopilotMaxReadReplicas, zoneLabel: DEFAULT_FAILURE_DOMAIN_LABEL,
    });
    if (change === undefined) return;
    try {
      this.raft.proposeConfChange(change);
      this.#agent.world.counts.autopilotChanges++;
      this.process();
    } catch (err) {
      // One change at a time, and only once the leader has committed in its term: the next round retries.
      if (!(err instanceof ProposalDroppedError || err instanceof NotLeaderError || (err instanceof ShoalError && err.code === 'ERR_INVALID_ARGUMENT'))) throw err;
    }
  }

  /** The node table follows gossip, as the agent's leader keeps it: one batch per round, the next once it applied. */
  #syncNodeTable(members: MemberSnapshot[]): void {
    if (!this.#awaited('nodes')) return;
    const commands: Command[] = [];
    for (const m of members) {
      const rec = this.state.node(m.id);
      if (m.status === 'alive') {
        const node = nodeSpec(m);
        if (!rec || rec.status !== 'ready' || JSON.stringify(node) !== JSON.stringify({ id: rec.id, name: rec.name, address: rec.address, labels: rec.labels, capacity: rec.capacity, drivers: rec.drivers, roles: rec.roles })) {
          commands.push({ type: 'node.upsert', node });
        }
      } else if (rec && m.status === 'dead' && rec.status === 'ready') commands.push({ type: 'node.status', nodeId: m.id, status: 'down' });
    }
    if (commands.length === 0) return;
    const at = this.proposeBatch(commands);
    if (at !== undefined) this.#awaiting.set('nodes', at[at.length - 1]!);
  }

  // --- Raft wiring: persist, then send, then apply --------------------------------------------------------------

  process(): void {
    const st = this.#agent.storage;
    let applied = false;
    while (this.raft.hasReady()) {
      const rd = this.raft.ready();
      this.#log.persist(rd);
      if (st.unsyncedWrites > 0) st.sync();
      for (const m of rd.messages) this.#agent.send(m.to, { kind: 'raft', bytes: raftBytes(m), raft: m });
      invariant(rd.snapshot === undefined, 'the scale scenario never snapshots');
      for (const e of rd.committedEntries) {
        this.#apply(e);
        applied = true;
      }
      this.raft.advance();
    }
    if (!applied) return;
    // On each apply batch: wake the watches of the nodes whose slice changed.
    for (const node of this.state.drainTouchedNodes()) {
      if (node === this.#agent.id) this.#agent.nodeDirty = true;
      const w = this.watches.get(node);
      if (w !== undefined && this.state.index >= w.since && this.state.nodeTouchedIndex(node) > w.since) {
        this.#agent.world.counts.sliceAnswersOnWake++;
        this.#answer(node, w.since);
      }
    }
  }

  #apply(e: Entry): void {
    this.appliedIndex = e.index;
    if (e.type !== 'normal' || e.data.byteLength === 0) return;
    const command = JSON.parse(decodeText(e.data)) as Command;
    this.state.apply(e.index, command);
  }
}

// --- A client: its node's slice, watched on one server ---------------------------------------------------------------

export class ScaleClient {
  readonly slice: NodeSlice;
  /** The server watched (chosen once gossip shows a leader among the servers). */
  server: string | undefined;
  leader = '';
  /** The last answer came from a server that had caught up with its leader. */
  fresh = false;
  /** When to watch again after an answer that was not fresh (the real client sleeps sliceRetryBaseMs). */
  retryAtMs: number | undefined;
  constructor(id: string) {
    this.slice = new NodeSlice(id);
  }
}

// --- One agent ------------------------------------------------------------------------------------------------------

export class ScaleAgent implements SimNode<ScaleMessage> {
  readonly id: string;
  readonly world: ScaleWorld;
  readonly membership: Membership;
  readonly node: NodeCore;
  /** Set once this agent holds the log (a voter from the start, or added by autopilot); then it is no client. */
  server: ScaleServer | undefined;
  client: ScaleClient | undefined;
  readonly random: Random;
  readonly #ctx: SimNodeContext<ScaleMessage>;
  #ticks = 0;
  nodeDirty = false;
  #lastReconcileMs = -Infinity;
  #lastRolesMs = -Infinity;
  /** Driver answers waiting for the next batch (the simulated driver answers a batch of starts at once). */
  #driverBatch: NodeEffect[] = [];

  constructor(ctx: SimNodeContext<ScaleMessage>, world: ScaleWorld) {
    this.#ctx = ctx;
    this.id = ctx.id;
    this.world = world;
    this.random = ctx.random.split();
    this.membership = new Membership({ id: ctx.id, meta: world.meta.get(ctx.id)!, clock: { nowMs: () => ctx.nowMs() }, random: ctx.random.split(), incarnation: 0 });
    this.node = new NodeCore(ctx.id);
    this.server = VOTERS.includes(ctx.id) ? new ScaleServer(this, ctx) : undefined;
    this.client = this.server === undefined ? new ScaleClient(ctx.id) : undefined;
    this.flushMembership();
  }

  /** A leader added this agent to the group: it holds the log from now on (empty at first), and stops watching. */
  #becomeServer(): ScaleServer {
    this.server = new ScaleServer(this, this.#ctx);
    this.client = undefined;
    this.world.servers.add(this.id);
    this.world.counts.becameServers++;
    this.nodeDirty = true;
    return this.server;
  }

  get storage(): SimNodeContext<ScaleMessage>['storage'] {
    return this.#ctx.storage;
  }

  nowMs(): number {
    return this.#ctx.nowMs();
  }

  send(to: string, m: ScaleMessage): void {
    this.world.count(this.id, m);
    this.#ctx.send(to, m);
  }

  tick(): void {
    this.#ticks++;
    // The membership core is ticked when it has something due (a 10 ms ticker would do the same, doing nothing between).
    if (this.nowMs() >= this.membership.nextWakeMs()) {
      this.membership.tick();
      this.flushMembership();
    }
    const server = this.server;
    if (server !== undefined) {
      if (this.#ticks % RAFT_TICK_EVERY === 0) server.tick();
      if (server.isLeader) server.lead();
      if (this.#ticks % WATCH_SWEEP_EVERY_TICKS === 0) server.sweepWatches();
      if (this.nowMs() - this.#lastRolesMs >= NODE_RECONCILE_MS) this.#announceRoles();
    } else this.#clientTick();
    if (this.nodeDirty || this.nowMs() - this.#lastReconcileMs >= TASK_RECONCILE_MS) this.#reconcile();
  }

  deliver(from: string, m: ScaleMessage): void {
    switch (m.kind) {
      case 'gossip':
        this.membership.receive(from, m.gossip);
        this.flushMembership();
        return;
      case 'raft':
        if (this.server === undefined && !LEADER_MESSAGES.has(m.raft.type)) return;
        (this.server ?? this.#becomeServer()).step(m.raft);
        return;
      case 'watch':
        this.server?.onWatch(from, m.since, m.waitMs);
        return;
      case 'slice':
        this.#onSlice(from, m.delta, m.leader, m.fresh);
        return;
      case 'report':
        if (this.server?.isLeader && m.updates.length > 0) this.server.proposeReport(from, m.updates);
        return;
    }
  }

  /** Runs the membership effects: persist (and sync) first, then send; events feed the checks and the node table. */
  flushMembership(): void {
    for (const effect of this.membership.drainEffects()) {
      switch (effect.kind) {
        case 'persist':
          this.#ctx.storage.put('membership/incarnation', effect.incarnation);
          this.#ctx.storage.sync();
          break;
        case 'send':
          this.send(effect.to, { kind: 'gossip', bytes: gossipBytes(effect.message), gossip: effect.message });
          break;
        case 'event': {
          const ev = effect.event;
          if (ev.kind === 'suspect') this.world.counts.suspects++;
          if (ev.kind === 'dead') this.world.fail(`${this.id} declared ${ev.member.id} DEAD (incarnation ${ev.member.incarnation}); no agent fails in this scenario`);
          break;
        }
      }
    }
  }

  /** A server gossips its Raft roles (voter, leader, replica) every NODE_RECONCILE_MS, as the agent does. */
  #announceRoles(): void {
    this.#lastRolesMs = this.nowMs();
    const server = this.server!;
    const voter = server.raft.confState().voters.includes(this.id);
    const leader = server.isLeader;
    const replica = !voter;
    const base = this.world.meta.get(this.id)!;
    if (base.roles.voter === voter && base.roles.leader === leader && (base.roles.replica === true) === replica) return;
    const meta: NodeMeta = { ...base, roles: { voter, leader, ...(replica ? { replica } : {}) } };
    this.world.meta.set(this.id, meta);
    this.membership.updateMeta(meta);
    this.flushMembership();
  }

  // --- Client side: the slice watch ---------------------------------------------------------------------------------

  #clientTick(): void {
    const client = this.client!;
    if (client.retryAtMs !== undefined && this.nowMs() >= client.retryAtMs) {
      client.retryAtMs = undefined;
      this.#watch();
    }
    // Until it has a server, a client looks for one every sliceRetryBaseMs, as the real one backs off.
    if (client.server !== undefined || this.#ticks % Math.max(1, Math.round(LIMITS.sliceRetryBaseMs / TICK_MS)) !== 0) return;
    // The servers, as this agent's gossip shows them (a voter or replica role), the leader last, by rendezvous
    // hashing. Only agents that ever held the log can gossip such a role, so those are the ones looked up.
    const servers: { id: string; leader: boolean }[] = [];
    for (const id of this.world.servers) {
      if (id === this.id) continue;
      const m = this.membership.member(id);
      if (m && m.status === 'alive' && (m.meta.roles.voter || m.meta.roles.replica === true)) servers.push({ id, leader: m.meta.roles.leader });
    }
    if (!servers.some((s) => s.leader)) return;
    servers.sort((a, b) => Number(a.leader) - Number(b.leader) || fnv(`${this.id}/${b.id}`) - fnv(`${this.id}/${a.id}`) || (a.id < b.id ? -1 : 1));
    client.server = servers[0]!.id;
    this.#watch();
  }

  /** Not fresh (the first watch, or after an answer from a server without a leader): ask for an answer at once. */
  #watch(): void {
    const client = this.client!;
    const waitMs = client.fresh && client.slice.complete ? LIMITS.sliceWatchMaxWaitMs : 0;
    this.send(client.server!, { kind: 'watch', bytes: 56 + this.id.length, since: client.slice.index, waitMs });
  }

  #onSlice(from: string, delta: SliceDelta, leader: string, fresh: boolean): void {
    const client = this.client;
    if (client === undefined) return;
    const before = client.slice.allocations().length;
    const since = client.slice.index;
    let merged = false;
    try {
      merged = client.slice.merge(delta);
    } catch (err) {
      if (err instanceof InvalidArgumentError) this.world.fail(`client ${this.id} refused ${from}'s answer at index ${delta.index}: ${err.message}`);
      else throw err;
    }
    this.world.counts.sliceMerges++;
    if (!merged) this.world.counts.sliceStaleAnswers++;
    client.leader = leader;
    client.fresh = fresh;
    if (merged) this.world.checkSlice(this.id, client.slice, delta, from, since);
    if (merged && (delta.allocations.length > 0 || delta.jobs.length > 0 || client.slice.allocations().length !== before)) this.nodeDirty = true;
    // Watch again at once, from the index now held; after an answer that was not fresh, a moment later.
    if (fresh) this.#watch();
    else client.retryAtMs = this.nowMs() + LIMITS.sliceRetryBaseMs;
  }

  // --- Node side: the node core over a driver that starts and stops at once ---------------------------------------

  #view(): NodeStateView | undefined {
    if (this.server !== undefined) return this.server.fresh() ? this.server.state : undefined;
    return this.client!.slice.complete ? this.client!.slice : undefined;
  }

  #reconcile(): void {
    this.#lastReconcileMs = this.nowMs();
    const view = this.#view();
    if (view === undefined) return;
    this.nodeDirty = false;
    this.node.observe(view);
    this.#performNodeEffects();
    const updates = this.node.reports(view);
    if (updates.length === 0) return;
    const leader = this.server !== undefined ? this.server.raft.leader : this.client!.leader;
    if (!leader) return;
    if (leader === this.id) this.server!.proposeReport(this.id, updates);
    else this.send(leader, { kind: 'report', bytes: utf8Bytes(JSON.stringify(updates)) + 48, updates });
  }

  #performNodeEffects(): void {
    const st = this.#ctx.storage;
    const effects = this.node.drainEffects();
    for (const e of effects) {
      if (e.kind === 'persist') {
        if (e.record === null) st.delete(`task/${e.allocId}`);
        else st.put(`task/${e.allocId}`, e.record);
      } else if (e.kind === 'start' || e.kind === 'stop') this.#driverBatch.push(e);
    }
    if (st.unsyncedWrites > 0) st.sync();
    if (this.#driverBatch.length === 0) return;
    const batch = this.#driverBatch;
    this.#driverBatch = [];
    this.world.counts.taskStarts += batch.filter((e) => e.kind === 'start').length;
    this.world.sim.after(1 + this.random.int(20), `driver ${this.id} ${batch.length}`, () => {
      if (this.world.agent(this.id) !== this) return;
      for (const e of batch) {
        if (e.kind === 'start') this.node.started(e.allocId, `${this.id}/${e.allocId}`);
        else if (e.kind === 'stop') this.node.stopped(e.allocId);
      }
      this.nodeDirty = true;
    });
  }
}

// --- The workload ----------------------------------------------------------------------------------------------------

export function scaleJobs(totalAllocs: number, replicasPerJob: number): Job[] {
  const jobs: Job[] = [];
  for (let placed = 0, j = 0; placed < totalAllocs; j++) {
    const replicas = Math.min(replicasPerJob, totalAllocs - placed);
    placed += replicas;
    jobs.push(parseJobFile(`name: job-${j}
services:
  svc:
    command: app --shard ${j}
    x-shoal: { driver: process }
    deploy:
      replicas: ${replicas}
      resources: { reservations: { cpus: 0.2, memory: 128M } }
`, { file: `job-${j}.yaml` }).job);
  }
  return jobs;
}

// --- Figures ----------------------------------------------------------------------------------------------------------

/** Rates of one agent (or a mean over agents) during a phase, per kind: messages/s and bytes/s. */
export interface Rates {
  msgs: Record<TrafficKind, number>;
  bytes: Record<TrafficKind, number>;
  pushPullMsgs: number;
  pushPullBytes: number;
}

export interface PhaseFigures {
  name: string;
  durationMs: number;
  leader: Rates;
  /** Mean over the non-leader servers, and the busiest of them. */
  server: Rates;
  serverMax: Rates;
  /** Mean over the clients, the median client (by bytes sent), and the busiest client. */
  client: Rates;
  clientMedian: Rates;
  clientMax: Rates;
  clientMedianId: string;
  /** Mean over every agent (servers and clients). */
  everyAgent: Rates;
}

/** Push-pull in steady state, per agent on average, from the first round (one exchange per agent). */
export interface PushPullFigures {
  /** The scaled interval between two exchanges an agent starts. */
  intervalMs: number;
  /** Mean size of one push-pull message (a request or its reply). */
  bytesPerMessage: number;
  msgsPerS: number;
  bytesPerS: number;
}

export interface ScaleFigures {
  agents: number;
  clients: number;
  leader: string;
  /** The voters and the read replicas autopilot added, once formed. */
  voters: string[];
  replicas: string[];
  /** Clients watching each server (the leader included), once formed. */
  watchers: Record<string, number>;
  formationMs: number;
  /** Undefined when the run did not wait out the first round (settleUntilMs below pushPullIntervalMs). */
  pushPull: PushPullFigures | undefined;
  idle: PhaseFigures;
  scheduling: PhaseFigures;
  allocations: number;
  jobs: number;
  plans: number;
  /** The leader's Raft + slice bytes and messages during scheduling beyond its idle rate, per allocation placed. */
  leaderBytesPerAllocation: number;
  leaderMsgsPerAllocation: number;
}

function ratesOf(counters: readonly Float64Array[], durationMs: number): Rates {
  const s = durationMs / 1000;
  const n = Math.max(1, counters.length);
  const sum = (slot: number): number => counters.reduce((acc, c) => acc + c[slot]!, 0) / n / s;
  const msgs = {} as Record<TrafficKind, number>;
  const bytes = {} as Record<TrafficKind, number>;
  TRAFFIC_KINDS.forEach((k, i) => {
    msgs[k] = sum(i * 2);
    bytes[k] = sum(i * 2 + 1);
  });
  return { msgs, bytes, pushPullMsgs: sum(PUSH_PULL_SLOT * 2), pushPullBytes: sum(PUSH_PULL_SLOT * 2 + 1) };
}

const totalBytes = (c: Float64Array): number => TRAFFIC_KINDS.reduce((acc, _k, i) => acc + c[i * 2 + 1]!, 0);

function phaseFigures(name: string, world: ScaleWorld, leader: string, serverIds: readonly string[], before: Map<string, Float64Array>, durationMs: number): PhaseFigures {
  const delta = new Map<string, Float64Array>();
  for (const [id, c] of world.traffic) {
    const b = before.get(id)!;
    delta.set(id, c.map((v, i) => v - b[i]!));
  }
  const servers = serverIds.filter((id) => id !== leader).map((id) => delta.get(id)!);
  const clientIds = world.ids.filter((id) => !serverIds.includes(id));
  const clients = clientIds.map((id) => delta.get(id)!);
  const byBytes = clientIds.map((id) => ({ id, bytes: totalBytes(delta.get(id)!) })).sort((a, b) => a.bytes - b.bytes || (a.id < b.id ? -1 : 1));
  const median = byBytes[Math.floor(byBytes.length / 2)];
  const busiest = (list: Float64Array[]): Float64Array => list.reduce((m, c) => (totalBytes(c) > totalBytes(m) ? c : m), list[0] ?? new Float64Array(COUNTER_SLOTS));
  return {
    name,
    durationMs,
    leader: ratesOf([delta.get(leader)!], durationMs),
    server: ratesOf(servers, durationMs),
    serverMax: ratesOf([busiest(servers)], durationMs),
    client: ratesOf(clients, durationMs),
    clientMedian: ratesOf(median ? [delta.get(median.id)!] : [], durationMs),
    clientMax: ratesOf([busiest(clients)], durationMs),
    clientMedianId: median?.id ?? '-',
    everyAgent: ratesOf([...delta.values()], durationMs),
  };
}

const fmt = (v: number): string => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v >= 10 ? v.toFixed(1) : v.toFixed(2));

function ratesRow(label: string, r: Rates): string {
  const cells = [...TRAFFIC_KINDS.map((k) => fmt(r.msgs[k])), ...TRAFFIC_KINDS.map((k) => fmt(r.bytes[k]))];
  return `  ${label.padEnd(34)}${cells.map((c) => c.padStart(12)).join('')}`;
}

export function formatScaleFigures(f: ScaleFigures, seed: number): string {
  const head = `  ${''.padEnd(34)}${[...TRAFFIC_KINDS.map((k) => `${k} m/s`), ...TRAFFIC_KINDS.map((k) => `${k} B/s`)].map((c) => c.padStart(12)).join('')}`;
  const phase = (p: PhaseFigures, title: string): string[] => [
    title,
    head,
    ratesRow(`leader ${f.leader}`, p.leader),
    ratesRow(`server, mean of ${f.voters.length + f.replicas.length - 1} non-leaders`, p.server),
    ratesRow('server, busiest non-leader', p.serverMax),
    ratesRow(`client, mean of ${f.clients}`, p.client),
    ratesRow(`client, median (${p.clientMedianId})`, p.clientMedian),
    ratesRow('client, busiest', p.clientMax),
    ratesRow(`every agent, mean of ${f.agents}`, p.everyAgent),
  ];
  return [
    `scale seed ${seed}: ${f.agents.toLocaleString('en-US')} agents (${f.voters.length} voters ${f.voters.join(' ')} + ${f.replicas.length} read replicas ${f.replicas.join(' ')} added by autopilot + ${f.clients.toLocaleString('en-US')} clients), formed in ${(f.formationMs / 1000).toFixed(1)} s (virtual)`,
    `clients watching each server: ${Object.entries(f.watchers).map(([id, n]) => `${id}${id === f.leader ? ' (leader)' : ''} ${n}`).join(', ')}`,
    ...phase(f.idle, `idle, ${(f.idle.durationMs / 1000).toFixed(1)} s virtual (sent per agent; m/s = messages/s, B/s = bytes/s; gossip without push-pull):`),
    ...phase(f.scheduling, `scheduling, ${(f.scheduling.durationMs / 1000).toFixed(1)} s virtual until quiescent: ${f.allocations.toLocaleString('en-US')} allocations of ${f.jobs} jobs in ${f.plans} plans, started and reported running, every slice caught up:`),
    `  leader during scheduling beyond its idle rate: ${fmt(f.leaderBytesPerAllocation)} bytes and ${fmt(f.leaderMsgsPerAllocation)} messages (raft + slice) per allocation placed`,
    f.pushPull === undefined
      ? 'push-pull: not measured (the run did not wait out the first round)'
      : `push-pull, steady state (any agent, leader included, on average): one exchange started every ${(f.pushPull.intervalMs / 1000).toFixed(0)} s and one answered, ${fmt(f.pushPull.bytesPerMessage)} bytes per message: ${fmt(f.pushPull.msgsPerS)} msgs/s, ${fmt(f.pushPull.bytesPerS)} B/s per agent on top of the gossip column`,
  ].join('\n');
}

// --- Bounds -----------------------------------------------------------------------------------------------------------

/** Heartbeats a leader sends per second to the other servers. */
export const LEADER_HEARTBEATS_PER_S = (SERVER_COUNT - 1) * (1000 / (RAFT_TICK_MS * HEARTBEAT_TICKS));
/** SWIM sends a constant number of messages per probe interval per agent: its ping, the acks it owes, a gossip round. */
export const GOSSIP_MSGS_PER_AGENT_BOUND_PER_S = 4 * (1000 / DEFAULT_MEMBERSHIP_CONFIG.probeIntervalMs);
/** Bytes the leader may send per allocation placed: its share of the plan and of the status report, to each follower, with room. */
export const LEADER_BYTES_PER_ALLOCATION_BOUND = (SERVER_COUNT - 1) * 1_500;

/** The traffic bounds that must hold whatever the cluster size; a problem names the figure and the bound. */
export function checkScaleBounds(f: ScaleFigures): string | undefined {
  const idleLeaderRaftSliceMsgs = f.idle.leader.msgs.raft + f.idle.leader.msgs.slice;
  if (idleLeaderRaftSliceMsgs > LEADER_HEARTBEATS_PER_S * 1.2) {
    return `idle, the leader sent ${fmt(idleLeaderRaftSliceMsgs)} raft + slice messages/s; its heartbeats to the ${SERVER_COUNT - 1} other servers are ${fmt(LEADER_HEARTBEATS_PER_S)}/s (bound: 1.2x that, whatever the number of agents)`;
  }
  const idleLeaderRaftSliceBytes = f.idle.leader.bytes.raft + f.idle.leader.bytes.slice;
  if (idleLeaderRaftSliceBytes > LEADER_HEARTBEATS_PER_S * 1.2 * 100) {
    return `idle, the leader sent ${fmt(idleLeaderRaftSliceBytes)} raft + slice bytes/s; bound ${fmt(LEADER_HEARTBEATS_PER_S * 1.2 * 100)} (100 bytes per heartbeat)`;
  }
  for (const [what, r] of [['mean agent', f.idle.everyAgent], ['leader', f.idle.leader], ['median client', f.idle.clientMedian]] as const) {
    if (r.msgs.gossip > GOSSIP_MSGS_PER_AGENT_BOUND_PER_S) return `idle, the ${what} sent ${fmt(r.msgs.gossip)} gossip messages/s besides push-pull; bound ${fmt(GOSSIP_MSGS_PER_AGENT_BOUND_PER_S)} (4 per probe interval)`;
  }
  if (f.leaderBytesPerAllocation > LEADER_BYTES_PER_ALLOCATION_BOUND) {
    return `scheduling, the leader sent ${fmt(f.leaderBytesPerAllocation)} raft + slice bytes per allocation placed beyond its idle rate; bound ${fmt(LEADER_BYTES_PER_ALLOCATION_BOUND)}`;
  }
  return undefined;
}

// --- The scenario ----------------------------------------------------------------------------------------------------

export interface ScaleOptions extends ScenarioOptions {
  /** Agents in the cluster (servers included); default 5,000. */
  agents?: number;
  /** Virtual time of the idle phase; default 35 s, a little more than one slice-watch wait, so every client renews once. */
  idleMs?: number;
  /** Allocations placed per node on average; default 20. */
  allocsPerNode?: number;
  /** Allocations in all, instead of allocsPerNode x agents. */
  totalAllocs?: number;
  /** Replicas per job; default 500. */
  replicasPerJob?: number;
  /** Virtual time the idle phase starts at, at the earliest; default pushPullIntervalMs (see runScale). */
  settleUntilMs?: number;
  /** Skip the traffic bounds (for tests that compare sizes themselves). */
  skipBounds?: boolean;
}

export class ScaleFailure extends ShoalError {
  constructor(seed: number, detail: string) {
    super('ERR_SIM_SCALE', `scale seed ${seed}: ${detail}`, { seed });
  }
}

export function runScale(seed: number, options: ScaleOptions = {}): ScenarioResult & { figures: ScaleFigures } {
  const agents = options.agents ?? 5_000;
  if (!Number.isSafeInteger(agents) || agents < SERVER_COUNT + 1) throw new InvalidArgumentError(`scale: agents must be an integer of at least ${SERVER_COUNT + 1}, got ${agents}`);
  const idleMs = options.idleMs ?? 35_000;
  const totalAllocs = options.totalAllocs ?? agents * (options.allocsPerNode ?? 20);
  const replicasPerJob = options.replicasPerJob ?? 500;
  const ids = Array.from({ length: agents }, (_, i) => `n${i + 1}`);
  const world = new ScaleWorld(ids);
  const formationTimeoutMs = 30_000;
  const schedulingTimeoutMs = 120_000;
  // Ticks dominate: one per agent per 10 ms, plus about one message per tick (SWIM, Raft, slices, reports).
  const maxEvents = Math.ceil(agents * ((formationTimeoutMs + idleMs + schedulingTimeoutMs) / TICK_MS) * 2 + totalAllocs * 20);

  const sim = new Simulator<ScaleMessage>({
    seed,
    nodeIds: ids,
    tickIntervalMs: TICK_MS,
    // Every peer message rides an ordered stream link in the agent, so links here are FIFO too: one fixed delay
    // (independent random delays would reorder Raft appends, and each reordering costs a reject and a resend).
    link: { ...LAN_LINK, delay: { kind: 'fixed', ms: LINK_DELAY_MS } },
    maxEvents,
    keepFullTrace: options.keepFullTrace ?? false,
    messageSizeBytes: (m) => m.bytes,
    describeMessage: describe,
    createNode: (ctx) => new ScaleAgent(ctx, world),
  });
  world.simRef = sim;
  sim.addInvariant('clients hold exactly their node\'s slice; nobody is declared DEAD', () => world.problem);
  const agentOf = (id: string): ScaleAgent => {
    const a = world.agent(id);
    invariant(a !== undefined, `agent ${id} is down`);
    return a;
  };

  // Warm start: every agent knows every other (as after a long-formed cluster), without gossiping it again.
  const states: PushPullState[] = ids.map((id) => ({ id, incarnation: 0, status: 'alive', meta: world.meta.get(id)! }));
  for (const id of ids) {
    const a = agentOf(id);
    a.membership.mergeStates(id, states, { gossip: false });
    a.flushMembership();
  }

  const leaderAgent = (): ScaleAgent | undefined => {
    let best: ScaleAgent | undefined;
    for (const id of world.servers) {
      const a = world.agent(id);
      if (a?.server?.isLeader && (!best || a.server.raft.term > best.server!.raft.term)) best = a;
    }
    return best;
  };
  const pollUntil = (done: () => string | undefined, timeoutMs: number, what: string): void => {
    const start = sim.nowMs();
    for (;;) {
      const waiting = done();
      if (waiting === undefined) return;
      if (sim.nowMs() - start >= timeoutMs) throw new ScaleFailure(seed, `${what} not reached within ${timeoutMs} ms (virtual): ${waiting}`);
      sim.runFor(POLL_MS);
    }
  };

  // --- Formation ------------------------------------------------------------------------------------------------
  pollUntil(() => {
    const l = leaderAgent();
    if (!l || !l.server!.caughtUp()) return 'no caught-up leader';
    const conf = l.server!.raft.confState();
    if (conf.voters.length !== VOTERS.length || conf.learners.length !== LIMITS.autopilotMaxReadReplicas) return `the group is voters [${conf.voters.join(',')}] learners [${conf.learners.join(',')}]`;
    const ready = l.server!.state.nodes().filter((n) => n.status === 'ready').length;
    if (ready < agents) return `${ready} of ${agents} nodes ready in the node table`;
    for (const id of [...conf.voters, ...conf.learners]) {
      const s = agentOf(id).server;
      if (!s || s.appliedIndex < l.server!.appliedIndex) return `server ${id} has applied ${s?.appliedIndex ?? 'nothing'} of ${l.server!.appliedIndex}`;
      const roles = world.meta.get(id)!.roles;
      if (roles.voter !== conf.voters.includes(id) || roles.leader !== (id === l.id) || (roles.replica === true) !== conf.learners.includes(id)) return `server ${id} does not gossip its roles yet`;
    }
    for (const id of ids) {
      const a = agentOf(id);
      if (a.client && (a.client.server === undefined || !a.client.slice.complete || !a.client.fresh || !agentOf(a.client.server).server!.watches.has(id))) return `client ${id} has no fresh slice or no watch parked yet`;
      if (a.membership.queuedRumours > 0) return `${id} still has rumours to gossip`;
    }
    return undefined;
  }, formationTimeoutMs, `formation (a leader, ${VOTERS.length} voters + ${LIMITS.autopilotMaxReadReplicas} replicas gossiping their roles, every node registered, every client watching)`);
  const formationMs = sim.nowMs();
  const formedConf = leaderAgent()!.server!.raft.confState();
  const serverIds = [...formedConf.voters, ...formedConf.learners];
  const watchers: Record<string, number> = Object.fromEntries(serverIds.map((id) => [id, 0]));
  for (const id of ids) {
    const c = agentOf(id).client;
    if (c?.server !== undefined) watchers[c.server] = (watchers[c.server] ?? 0) + 1;
  }
  // Every agent's first push-pull falls at a random time within the first pushPullIntervalMs of its start; the
  // later ones are spread over the scaled interval. Idle is measured once that start-up burst is over.
  const firstRoundEndMs = DEFAULT_MEMBERSHIP_CONFIG.pushPullIntervalMs;
  sim.runUntil(Math.max(sim.nowMs() + 250, options.settleUntilMs ?? firstRoundEndMs));
  let pushPull: PushPullFigures | undefined;
  if (sim.nowMs() >= firstRoundEndMs) {
    let msgs = 0;
    let bytes = 0;
    for (const c of world.traffic.values()) {
      msgs += c[PUSH_PULL_SLOT * 2]!;
      bytes += c[PUSH_PULL_SLOT * 2 + 1]!;
    }
    const intervalMs = pushPullIntervalForMs(DEFAULT_MEMBERSHIP_CONFIG.pushPullIntervalMs, agents);
    pushPull = { intervalMs, bytesPerMessage: bytes / Math.max(1, msgs), msgsPerS: msgs / agents / (intervalMs / 1000), bytesPerS: bytes / agents / (intervalMs / 1000) };
  }
  const leader = leaderAgent()!;
  const leaderTerm = leader.server!.raft.term;

  // --- Idle ---------------------------------------------------------------------------------------------------------
  const snapshot = (): Map<string, Float64Array> => new Map([...world.traffic].map(([id, c]) => [id, c.slice()]));
  let before = snapshot();
  const idleStart = sim.nowMs();
  sim.runFor(idleMs);
  const idle = phaseFigures('idle', world, leader.id, serverIds, before, sim.nowMs() - idleStart);
  if (leader.server!.state.allocations().length > 0) throw new ScaleFailure(seed, 'allocations appeared while idle');

  // --- Scheduling ---------------------------------------------------------------------------------------------------
  const jobs = scaleJobs(totalAllocs, replicasPerJob);
  before = snapshot();
  const schedStart = sim.nowMs();
  const plansBefore = world.counts.plans;
  const at = leader.server!.proposeBatch(jobs.map((job) => ({ type: 'job.register', job })));
  if (at === undefined) throw new ScaleFailure(seed, `the leader ${leader.id} refused the job registrations`);
  pollUntil(() => {
    const l = leaderAgent();
    if (!l || l.id !== leader.id) return `leadership moved from ${leader.id} to ${l?.id ?? 'nobody'}`;
    const s = l.server!;
    if (!s.caughtUp()) return 'the leader is not caught up';
    if (s.state.pendingEvaluations().length > 0) return `${s.state.pendingEvaluations().length} evaluations pending`;
    let running = 0;
    let live = 0;
    for (const a of s.state.allocations()) {
      if (a.desiredStatus !== 'run') continue;
      live++;
      if (a.clientStatus === 'running') running++;
    }
    if (live < totalAllocs) return `${live} of ${totalAllocs} allocations placed`;
    if (running < live) return `${running} of ${live} allocations running`;
    for (const id of serverIds) if (agentOf(id).server!.appliedIndex < s.appliedIndex) return `server ${id} has applied ${agentOf(id).server!.appliedIndex} of ${s.appliedIndex}`;
    for (const id of ids) {
      const c = agentOf(id).client;
      if (!c) continue;
      const touched = agentOf(c.server!).server!.state.nodeTouchedIndex(id);
      if (c.slice.index < touched || !c.slice.complete) return `client ${id}'s slice is at ${c.slice.index}; its server last changed it at ${touched}`;
    }
    return undefined;
  }, schedulingTimeoutMs, 'quiescence after scheduling (every allocation placed and running, every server and slice caught up)');
  const scheduling = phaseFigures('scheduling', world, leader.id, serverIds, before, sim.nowMs() - schedStart);
  if (leader.server!.raft.term !== leaderTerm) throw new ScaleFailure(seed, `the leader's term moved from ${leaderTerm} to ${leader.server!.raft.term}`);

  // --- End checks: every client's slice is exactly its node's part of the state -----------------------------------
  const state = leader.server!.state;
  for (const id of ids) {
    const c = agentOf(id).client;
    if (!c) continue;
    const problem = sliceMismatch(id, c.slice, state);
    if (problem) throw new ScaleFailure(seed, `at the end, after quiescence: ${problem}`);
  }
  if (world.problem) throw new ScaleFailure(seed, world.problem);

  const allocations = state.allocations().filter((a) => a.desiredStatus === 'run').length;
  const extra = (r: 'bytes' | 'msgs'): number =>
    (scheduling.leader[r].raft + scheduling.leader[r].slice - (idle.leader[r].raft + idle.leader[r].slice)) * (scheduling.durationMs / 1000) / Math.max(1, allocations);
  const figures: ScaleFigures = {
    agents,
    clients: agents - serverIds.length,
    voters: [...formedConf.voters],
    replicas: [...formedConf.learners],
    watchers,
    leader: leader.id,
    formationMs,
    pushPull,
    idle,
    scheduling,
    allocations,
    jobs: jobs.length,
    plans: world.counts.plans - plansBefore,
    leaderBytesPerAllocation: extra('bytes'),
    leaderMsgsPerAllocation: extra('msgs'),
  };
  if (!options.skipBounds) {
    const problem = checkScaleBounds(figures);
    if (problem) throw new ScaleFailure(seed, problem);
  }
  const r = (x: number): number => Math.round(x * 100) / 100;
  return {
    hash: sim.trace.hash(),
    events: sim.eventCount,
    virtualMs: sim.nowMs(),
    report: formatScaleFigures(figures, seed),
    figures,
    stats: {
      ...sim.stats(),
      agents,
      allocations,
      schedulingPlans: figures.plans,
      formationMs,
      schedulingMs: scheduling.durationMs,
      idleLeaderRaftMsgsPerS: r(idle.leader.msgs.raft),
      idleLeaderSliceMsgsPerS: r(idle.leader.msgs.slice),
      idleGossipMsgsPerAgentPerS: r(idle.everyAgent.msgs.gossip),
      leaderBytesPerAllocation: r(figures.leaderBytesPerAllocation),
      ...world.counts,
    },
  };
}

export const scaleScenario: Scenario = {
  name: 'scale',
  defaultSeeds: 1,
  description: 'N agents (default 5,000; --agents N): real SWIM on all, Raft on 5 voters + 2 read replicas chosen by autopilot, state + scheduler on the leader, a node slice per client fed by a slice watch; prints per-phase (idle, C1M-style scheduling) traffic of the leader, servers and clients, checks every slice is exactly its node\'s and the traffic bounds',
  run: (seed, options) => runScale(seed, options),
};

export const SCALE_SCENARIOS: readonly Scenario[] = [scaleScenario];
