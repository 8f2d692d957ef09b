/**
 * Partition replicas inside the simulator (issue 12), wired as the agent wires them (src/runtime/partition-host.ts,
 * src/runtime/partition-replica.ts): a node hosts one replica of every partition placed on it; each replica is a
 * member of the partition's Raft group (the consensus core, pre-vote and check-quorum on) whose state machine is the
 * partition core, a `PartitionMachine` over a `MemoryPartitionStore`. Every group's messages travel on the one
 * simulated network between nodes; the group id in each message routes it to its replica.
 *
 * Storage and crashes. A node's groups share its one `SimStorage`, as the agent's partitions share one log database:
 * one fsync makes every group's writes durable. A group keeps its keys under `g/<group>/`: the Raft log, hard state
 * and snapshot (`SimRaftLog`), and `store`, the partition store. Every Ready is persisted and synced before its
 * messages leave, then applied. The store: on the agent it is a durable database that records its applied index in
 * the transaction of each apply. Here, after every Ready that applied something, the replica writes a canonical copy
 * of its store (`MemoryPartitionStore.snapshot()`, with the configuration at its applied index) to `store`, unsynced:
 * it becomes durable at the node's next fsync (any group's), and a crash before that loses it, or, in torn mode, may
 * keep some groups' copies and not others'. A copy is whole or absent, as a store transaction is. A restarted replica
 * opens the copy that survived (or its Raft snapshot, when that is newer); Raft hands it again the committed entries
 * after its snapshot index, and it skips those at or below the store's applied index, as partition-replica.ts does.
 * The store never runs behind the Raft snapshot: a snapshot is taken from the store, and synced with it.
 *
 * Hosting (partition-host.ts): on every reconcile pass (and when the placement changes) a node hosts the partitions
 * placed on it; a primary takes one membership step towards the placement (`nextMembershipStep`: add a learner,
 * promote it once caught up, remove the member that left, hand leadership away first when that is itself); a replica
 * no longer placed here is dropped (its keys deleted, durably) once its own configuration, or a primary, says it is out
 * of the group. At boot a node also hosts every group it holds keys of, so a replica moved away while the node was
 * down is still dropped. Two departures from the agent, each a fix for what this scenario found there (the options
 * bring the agent's rule back): a replica is a Raft member named by its node and the placement that created it, so a
 * node placed again in a group it left is a new member (`nodeMemberIds`); and a replica that knows no leader asks the
 * members of the placement whether it is still in the group (`askLeaderOnly`).
 */
import { applyConfChangeTo } from '../consensus/conf.js';
import { NotLeaderError, ProposalDroppedError } from '../consensus/errors.js';
import { RaftNode } from '../consensus/raft.js';
import { emptyConf } from '../consensus/storage.js';
import type { ConfState, Entry, Message, Snapshot } from '../consensus/types.js';
import { ShoalError } from '../lib/errors.js';
import type { PartitionState } from '../partitions/collections.js';
import type { PartitionCommand } from '../partitions/commands.js';
import { encodeEntry, PartitionMachine, type Applied, type SessionTag } from '../partitions/machine.js';
import { MemoryPartitionStore } from '../partitions/memory-store.js';
import { nextMembershipStep, type MembershipStep } from '../partitions/membership.js';
import type { SimNode, SimNodeContext } from '../sim/simulator.js';
import { SimRaftLog } from './sim-raft-log.js';

/** A group's keys on its node's storage. */
export const groupPrefix = (group: string): string => `g/${group}/`;
const storeKey = (group: string): string => `${groupPrefix(group)}store`;
/** The replica's Raft member id, written first: any key of the group that survives a crash comes with it. */
const memberKey = (group: string): string => `${groupPrefix(group)}member`;

/** What `store` holds: the store's canonical copy and the configuration at its applied index (for Raft snapshots). */
interface StoreRecord {
  data: Uint8Array;
  conf: ConfState;
}

/** A 64-bit digest (two FNV-1a lanes) of bytes: enough to compare replicas, far cheaper than keeping the bytes. */
export function digestBytes(bytes: Uint8Array): string {
  let lo = 0x811c9dc5;
  let hi = 0x050c5d1f;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    lo = Math.imul(lo ^ c, 0x01000193) >>> 0;
    hi = Math.imul(hi ^ c, 0x01000193 ^ 0x5bd1e995) >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** What the scenario's referee watches, for every replica (named by its member id) and incarnation. */
export interface PartitionObserver {
  /** A replica was opened (at boot, or hosted later) at `applied`; `digest` is its store's, when not empty. */
  opened(member: string, group: string, applied: number, digest: string | undefined): void;
  /** An entry applied (`applied` is the machine's answer for a `normal` entry, undefined for the others). */
  applied(member: string, group: string, entry: Entry, applied: Applied | undefined): void;
  /** The store's copy written after applying up to `index`. */
  stored(member: string, group: string, index: number, digest: string): void;
  /** A snapshot sent by the primary replaced the replica's store. */
  installed(member: string, group: string, index: number, digest: string): void;
  becameLeader(member: string, group: string, term: number): void;
  membershipStep(member: string, group: string, step: MembershipStep): void;
  dropped(member: string, group: string): void;
}

export interface PartitionHostConfig {
  electionTicks: number;
  heartbeatTicks: number;
  /** A replica snapshots its store into its Raft log, and compacts it, every this many applied entries. */
  snapshotEvery: number;
  keepEntriesAfterSnapshot: number;
  /** A learner this close to the primary's log is promoted. */
  promoteLagEntries: number;
  /** Ticks between two reconcile passes (the agent's LIMITS.partitionReconcileMs, in ticks). */
  reconcileEveryTicks: number;
  /** How far this node's wall clock is off: its primaries stamp commands with the virtual time plus this. */
  clockSkewMs: number;
  /** Every partition group of the service. */
  groups: readonly string[];
  /** The Raft members a partition's replicas are placed as now (the cluster state's allocations). */
  placement(group: string): readonly string[];
  /** The member `node` is placed as in `group`, if it is placed there. */
  memberOn(group: string, node: string): string | undefined;
  /** The node a member runs on. */
  nodeOfMember(member: string): string;
  /** The members a group was created with; they bootstrap it on their node's very first boot. */
  initialMembers(group: string): readonly string[];
  /** Asks `target`'s replica of `group` whether it counts `member` (undefined: unreachable, or not a primary). */
  askMembership(fromNode: string, target: string, group: string, member: string): boolean | undefined;
  /**
   * The agent's rule today (partition-host.ts #removedFromGroup): a replica no longer placed asks only the leader it
   * knows. One removed while it could not hear the primary knows none, and is never dropped (seed 4 of `partitions`).
   */
  askLeaderOnly?: boolean;
  observer: PartitionObserver;
}

/** A client's request to a node, and the node's answer. */
export type ClientRequest =
  | { kind: 'write'; group: string; command: PartitionCommand; session: SessionTag | undefined }
  /** A linearizable read: ReadIndex on the primary, then `serve` on its state once applied that far. */
  | { kind: 'read'; group: string; context: string; serve: (state: PartitionState) => unknown };

export type ClientReply =
  | { kind: 'not-leader'; leader: string | undefined }
  /** The proposal was refused or replaced by another leader's entry: retry it (with the same session seq). */
  | { kind: 'dropped' }
  | { kind: 'result'; value: unknown; index: number };

type Reply = (reply: ClientReply) => void;

/** One partition's replica on one node. */
export class PartitionReplica {
  readonly group: string;
  /** Its Raft member id: the node and the placement that created it (a replica placed again is a new member). */
  readonly member: string;
  readonly raft: RaftNode;
  readonly #node: PartitionSimNode;
  readonly #log: SimRaftLog;
  #store: MemoryPartitionStore;
  #machine: PartitionMachine;
  /** The configuration at the applied index: what a snapshot of the store is taken with. */
  #conf: ConfState;
  readonly #waiters = new Map<number, { term: number; done: Reply }>();
  readonly #reads = new Map<string, { index: number | undefined; serve: (state: PartitionState) => unknown; done: Reply }>();

  constructor(node: PartitionSimNode, group: string, member: string, bootstrapVoters: readonly string[]) {
    this.group = group;
    this.member = member;
    this.#node = node;
    const { ctx, cfg } = node;
    if (ctx.storage.get(memberKey(group)) === undefined) ctx.storage.put(memberKey(group), member);
    this.#log = new SimRaftLog(ctx.storage, member, bootstrapVoters, groupPrefix(group));
    const record = ctx.storage.get(storeKey(group)) as StoreRecord | undefined;
    this.#store = record ? MemoryPartitionStore.fromSnapshot(record.data) : new MemoryPartitionStore();
    this.#conf = record ? record.conf : emptyConf();
    const snap = this.#log.bootSnapshot;
    let digest = record ? digestBytes(record.data) : undefined;
    if (snap !== undefined && snap.metadata.index > this.#store.appliedIndex()) {
      this.#store = MemoryPartitionStore.fromSnapshot(snap.data);
      this.#conf = cloneConf(snap.metadata.conf);
      digest = digestBytes(snap.data);
    }
    this.#machine = PartitionMachine.open(this.#store);
    this.raft = new RaftNode({
      group,
      id: member,
      storage: this.#log.mem,
      random: ctx.random.split(),
      electionTicks: cfg.electionTicks,
      heartbeatTicks: cfg.heartbeatTicks,
      preVote: true,
      checkQuorum: true,
    });
    cfg.observer.opened(member, group, this.#machine.appliedIndex, digest);
    this.process();
  }

  get appliedIndex(): number {
    return this.#machine.appliedIndex;
  }

  get state(): PartitionState {
    return this.#machine.state;
  }

  /** The store's canonical bytes (equal states, equal bytes). */
  storeBytes(): Uint8Array {
    return this.#store.snapshot();
  }

  tick(): void {
    this.raft.tick();
    this.process();
  }

  step(m: Message): void {
    this.raft.step(m);
    this.process();
  }

  /** A client's write: stamped with this primary's time, proposed, answered once applied here. */
  write(command: PartitionCommand, session: SessionTag | undefined, done: Reply): void {
    if (this.raft.role !== 'leader') {
      done({ kind: 'not-leader', leader: this.raft.leader });
      return;
    }
    const nowMs = Math.max(0, Math.floor(this.#node.ctx.nowMs() + this.#node.cfg.clockSkewMs));
    const stamped = { ...command, nowMs } as PartitionCommand;
    let at: { index: number; term: number };
    try {
      at = this.raft.propose(encodeEntry(session ? { command: stamped, session } : { command: stamped }));
    } catch (err) {
      if (err instanceof NotLeaderError) done({ kind: 'not-leader', leader: err.leader });
      else if (err instanceof ProposalDroppedError) done({ kind: 'dropped' });
      else throw err;
      return;
    }
    this.#waiters.set(at.index, { term: at.term, done });
    this.process();
  }

  /** A linearizable read through ReadIndex, on the primary only. */
  read(context: string, serve: (state: PartitionState) => unknown, done: Reply): void {
    if (this.raft.role !== 'leader') {
      done({ kind: 'not-leader', leader: this.raft.leader });
      return;
    }
    this.#reads.set(context, { index: undefined, serve, done });
    this.raft.readIndex(context);
    this.process();
  }

  /** On the primary: one step of the group towards `desired` (partition-host.ts's #stepMembership). */
  stepMembership(desired: readonly string[]): void {
    if (this.raft.role !== 'leader') return;
    const st = this.raft.status();
    const match = Object.fromEntries(Object.entries(st.progress).map(([id, p]) => [id, p.match]));
    const step = nextMembershipStep({ self: st.id, voters: st.voters, learners: st.learners, match, lastIndex: st.lastIndex }, desired, this.#node.cfg.promoteLagEntries);
    if (step === undefined) return;
    try {
      if (step.kind === 'transfer') this.raft.transferLeadership(step.to);
      else this.raft.proposeConfChange({ type: step.kind === 'add-learner' ? 'addLearner' : step.kind === 'promote' ? 'addVoter' : 'removeMember', member: step.member });
    } catch (err) {
      // One change at a time, and only once the primary committed in its term: the next pass tries again.
      if (!(err instanceof ShoalError)) throw err;
      return;
    }
    this.#node.cfg.observer.membershipStep(this.member, this.group, step);
    this.process();
  }

  /** Persist (and sync), then send, then apply; repeated while the core has work. */
  process(): void {
    const { ctx, cfg } = this.#node;
    const st = ctx.storage;
    while (this.raft.hasReady()) {
      const rd = this.raft.ready();
      // 1. Persist, and make it durable: one fsync for the node, which also makes other groups' store copies durable.
      this.#log.persist(rd);
      if (st.unsyncedWrites > 0) st.sync();
      // 2. Send.
      for (const m of rd.messages) ctx.send(cfg.nodeOfMember(m.to), m);
      if (rd.softState?.role === 'leader') cfg.observer.becameLeader(this.member, this.group, this.raft.term);
      // 3. Apply.
      let changed = false;
      if (rd.snapshot && rd.snapshot.metadata.index > this.#machine.appliedIndex) {
        this.#install(rd.snapshot);
        changed = true;
      }
      for (const e of rd.committedEntries) {
        // Applied before a crash: the store holds it (Raft resumes from its snapshot's index).
        if (e.index <= this.#machine.appliedIndex) continue;
        const applied = this.#apply(e);
        changed = true;
        const w = this.#waiters.get(e.index);
        if (w === undefined) continue;
        this.#waiters.delete(e.index);
        w.done(w.term === e.term && applied !== undefined ? { kind: 'result', value: applied.result, index: e.index } : { kind: 'dropped' });
      }
      for (const rs of rd.readStates) {
        const r = this.#reads.get(rs.context);
        if (r) r.index = rs.index;
      }
      this.raft.advance();
      this.#serveReads();
      if (changed) this.#saveStore();
    }
  }

  #apply(e: Entry): Applied | undefined {
    let applied: Applied | undefined;
    if (e.type === 'normal') {
      applied = this.#machine.apply(e.index, e.data);
    } else {
      if (e.type === 'conf' && e.conf) this.#conf = applyConfChangeTo(this.#conf, e.conf);
      this.#machine.advance(e.index);
    }
    this.#node.cfg.observer.applied(this.member, this.group, e, applied);
    return applied;
  }

  #install(snap: Snapshot): void {
    const index = snap.metadata.index;
    this.#store = MemoryPartitionStore.fromSnapshot(snap.data);
    this.#machine = PartitionMachine.open(this.#store);
    this.#conf = cloneConf(snap.metadata.conf);
    // Proposals the snapshot covers never apply here: their clients time out and retry.
    for (const at of [...this.#waiters.keys()]) if (at <= index) this.#waiters.delete(at);
    this.#node.cfg.observer.installed(this.member, this.group, index, digestBytes(snap.data));
  }

  #serveReads(): void {
    for (const [context, r] of this.#reads) {
      if (r.index === undefined) {
        // A read the core dropped with its leadership: its client times out.
        if (this.raft.role !== 'leader') this.#reads.delete(context);
        continue;
      }
      if (r.index > this.#machine.appliedIndex) continue;
      this.#reads.delete(context);
      r.done({ kind: 'result', value: r.serve(this.#machine.state), index: this.#machine.appliedIndex });
    }
  }

  /** The store's copy, unsynced (the node's next fsync makes it durable); a Raft snapshot of it now and then. */
  #saveStore(): void {
    const { ctx, cfg } = this.#node;
    const applied = this.#machine.appliedIndex;
    const data = this.#store.snapshot();
    ctx.storage.put(storeKey(this.group), { data, conf: this.#conf } satisfies StoreRecord);
    cfg.observer.stored(this.member, this.group, applied, digestBytes(data));
    if (applied - this.#log.snapshotIndex >= cfg.snapshotEvery) this.#log.saveSnapshot(applied, this.#conf, data, cfg.keepEntriesAfterSnapshot);
  }
}

function cloneConf(conf: ConfState): ConfState {
  return { voters: [...conf.voters], learners: [...conf.learners] };
}

/** A node of the cluster: the partition replicas placed on it. */
export class PartitionSimNode implements SimNode<Message> {
  readonly replicas = new Map<string, PartitionReplica>();
  readonly ctx: SimNodeContext<Message>;
  readonly cfg: PartitionHostConfig;
  #ticks = 0;

  constructor(ctx: SimNodeContext<Message>, cfg: PartitionHostConfig) {
    this.ctx = ctx;
    this.cfg = cfg;
    for (const group of cfg.groups) {
      const member = (ctx.storage.get(memberKey(group)) as string | undefined) ?? cfg.memberOn(group, ctx.id);
      if (member === undefined) continue;
      // Only the very first boot creates a group; a member added later starts empty and is caught up by the primary.
      const initial = cfg.initialMembers(group);
      this.#host(group, member, ctx.incarnation === 1 && initial.includes(member) ? initial : []);
    }
  }

  tick(): void {
    for (const r of this.replicas.values()) r.tick();
    if (++this.#ticks % this.cfg.reconcileEveryTicks === 0) this.reconcile();
  }

  deliver(_from: string, msg: Message): void {
    // A group this node does not host (any more, or not yet): dropped, as the agent's transport handler does.
    this.replicas.get(msg.group)?.step(msg);
  }

  handle(req: ClientRequest, reply: Reply): void {
    const r = this.replicas.get(req.group);
    if (r === undefined) reply({ kind: 'not-leader', leader: undefined });
    else if (req.kind === 'write') r.write(req.command, req.session, reply);
    else r.read(req.context, req.serve, reply);
  }

  /** partition-host.ts's #reconcile: host what is placed here, step membership on primaries, drop what left. */
  reconcile(): void {
    const id = this.ctx.id;
    for (const group of this.cfg.groups) {
      const member = this.cfg.memberOn(group, id);
      if (member !== undefined && !this.replicas.has(group)) this.#host(group, member, []);
    }
    for (const r of [...this.replicas.values()]) {
      const desired = this.cfg.placement(r.group);
      if (desired.includes(r.member)) {
        r.stepMembership(desired);
        continue;
      }
      if (this.#removedFromGroup(r, desired)) this.#drop(r);
    }
  }

  /** This replica is out of its group: its own configuration says so, or its primary does. */
  #removedFromGroup(r: PartitionReplica, desired: readonly string[]): boolean {
    const self = r.member;
    const voters = r.raft.voters;
    const learners = r.raft.learners;
    if (voters.length + learners.length > 0 && !voters.includes(self) && !learners.includes(self)) return true;
    if (r.raft.role === 'leader') {
      r.stepMembership(desired);
      return false;
    }
    const leader = r.raft.leader;
    const said = leader === undefined || leader === self ? undefined : this.cfg.askMembership(this.ctx.id, leader, r.group, self);
    if (said !== undefined || this.cfg.askLeaderOnly) return said === false;
    // A member removed while it could not hear the primary never learns of it: its configuration still lists it and it
    // knows no leader (it campaigns, and is refused). The primary is then among the members the partition is placed as.
    for (const member of desired) {
      if (member === self || member === leader) continue;
      const answer = this.cfg.askMembership(this.ctx.id, member, r.group, self);
      if (answer !== undefined) return !answer;
    }
    return false;
  }

  #host(group: string, member: string, bootstrapVoters: readonly string[]): void {
    this.replicas.set(group, new PartitionReplica(this, group, member, bootstrapVoters));
  }

  #drop(r: PartitionReplica): void {
    // Whole and durable at once, as the agent drops a group's log in one transaction: a torn half would leave a log
    // with a gap behind it.
    for (const key of this.ctx.storage.keys(groupPrefix(r.group))) this.ctx.storage.delete(key);
    this.ctx.storage.sync();
    this.replicas.delete(r.group);
    this.cfg.observer.dropped(r.member, r.group);
  }
}

/** A node killed for good: whatever restarts it, it never runs again. */
export class GoneNode implements SimNode<Message> {
  tick(): void {
    // gone
  }

  deliver(): void {
    // gone
  }
}
