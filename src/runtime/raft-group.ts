/**
 * One Raft group driven on the real clock: the runtime half of src/consensus.
 *
 *   timer ─► tick()             transport ─► step(msg)           propose()/read() ─► queued
 *                   \                |                                   |  (one flush per event-loop turn:
 *                    └──────────► #process(): while hasReady():          |   every proposal queued so far goes in
 *                                   1. PERSIST  storage.save(hardState, entries, snapshot)  one Ready, one fsync)
 *                                   2. SEND     messages through the transport
 *                                   3. APPLY    snapshot, committed entries -> state machine; wake proposers/readers
 *                                   4. advance()
 *
 * Group commit: proposals that arrive while a flush is pending are batched into one `proposeBatch`, so under load
 * many client writes share one transaction and one fsync. If persisting fails (a full disk), nothing of that Ready
 * is sent or applied: the group stops making progress until the disk has room, and proposals fail with the reason.
 * A Ready with nothing to persist (a heartbeat and its answer) opens no transaction.
 *
 * Ticks follow the clock, not the timer: the core is ticked once per `tickMs` of elapsed time, caught up before
 * every message it is given (so a message and the ticks before it keep their order). The timer only has to wake
 * the group when a tick may do something: a leader (or candidate) every heartbeat interval (`heartbeatTicks`
 * ticks), a follower only once an election timeout has passed since it last heard from its leader (each message
 * from the leader pushes that wake-up back). With the agent's 30 ms tick an idle leader wakes ~11 times a second
 * instead of ~33 and sends a third of the heartbeats, an idle follower wakes only for the leader's messages, and
 * elections are still timed in whole ticks: one starts at most a heartbeat interval after its timeout, never before.
 *
 * With `quiesce`, an idle group goes quiet (see src/consensus/raft.ts): a quiet member arms no timer at all, and
 * the runtime's failure detector stands in for the heartbeats through `memberUnreachable()`. Proposals, reads and
 * messages wake it; the ticks it slept through are caught up in one step.
 */
import type { Clock } from '../lib/clock.js';
import { describeError, ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { Logger } from '../log/logger.js';
import { silentLogger } from '../log/logger.js';
import { systemClock } from '../platform/system-clock.js';
import { MessageType } from '../wire/frame.js';
import type { Transport } from '../transport/index.js';
import { RaftNode, NotLeaderError, type ConfChange, type Entry, type Message, type RequestId, type Snapshot, type Status } from '../consensus/index.js';
import type { SqliteLogStorage } from '../storage/index.js';
import { decodeRaft, encodeRaft } from './raft-codec.js';

/** What a group replicates: commands applied in log order, identically on every member. */
export interface StateMachine {
  apply(entry: Entry): unknown;
  /**
   * Optional: applies a Ready's committed entries together (one storage transaction for all of them), returning one
   * result per entry (undefined for entries that are not `normal`). Without it, `apply` is called per normal entry.
   */
  applyAll?(entries: readonly Entry[]): unknown[];
  snapshot(): Uint8Array;
  restore(data: Uint8Array): void;
}

export interface RaftGroupOptions {
  group: string;
  nodeId: string;
  storage: SqliteLogStorage;
  transport: Transport;
  stateMachine: StateMachine;
  random: Random;
  /** Length of one Raft tick; the election timeout is electionTicks of them. */
  tickMs: number;
  electionTicks?: number;
  /**
   * Ticks between two heartbeats of the leader, which is also how often the group's timer wakes. Default:
   * LIMITS.raftHeartbeatIntervalMs in whole ticks, at most a third of the election timeout.
   */
  heartbeatTicks?: number;
  /** The clock ticks are counted on (tests pass a manual one). */
  clock?: Clock;
  /** Take a snapshot and compact the log every this many applied entries (0: never). */
  snapshotEveryEntries?: number;
  /** Go quiet when idle; then the runtime must call memberUnreachable() when its failure detector suspects a member. */
  quiesce?: boolean;
  /**
   * Called with a snapshot message before the core sees it; the message is stepped once it resolves true (and dropped
   * on false). For state machines whose snapshot travels apart from the Raft message (a partition's database is
   * fetched in chunks): the message only refers to it. One at a time: snapshot messages that arrive meanwhile are
   * dropped (the leader sends again).
   */
  stageSnapshot?: (from: string, snapshot: Snapshot) => Promise<boolean>;
  logger?: Logger;
}

interface Waiter {
  term: number;
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface Queued {
  data: Uint8Array;
  request?: RequestId;
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  timeoutMs: number;
}

export class RaftGroup {
  readonly group: string;
  readonly node: RaftNode;
  readonly #o: RaftGroupOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  /** The delay the timer was last armed with (refresh() re-arms it with the same one), and when it fires. */
  #timerDelayMs = 0;
  #wakeAtMs = Infinity;
  readonly #clock: Clock;
  readonly #heartbeatTicks: number;
  readonly #electionTicks: number;
  /** When tick 0 was (clock time), and how many ticks have been counted since. */
  #tickOriginMs = 0;
  #ticks = 0;
  #unsubscribe: (() => void) | undefined;
  readonly #unreachable = new Set<string>();
  #queue: Queued[] = [];
  #flushScheduled = false;
  readonly #waiters = new Map<number, Waiter>();
  readonly #reads = new Map<string, { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout; index?: number }>();
  #readSeq = 0;
  readonly #appliedListeners = new Set<(index: number) => void>();
  #applied: number;
  #sinceSnapshot = 0;
  #started = false;
  #stopped = false;
  /** A snapshot referred to by a message is being fetched (stageSnapshot). */
  #staging = false;
  /** Set when persisting failed: the group waits for the next tick to try again. */
  #stalled: ShoalError | undefined;

  constructor(options: RaftGroupOptions) {
    this.#o = options;
    this.group = options.group;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'raft', group: options.group });
    const snap = options.storage.snapshot();
    if (snap.metadata.index > 0) options.stateMachine.restore(snap.data);
    this.#applied = snap.metadata.index;
    this.#clock = options.clock ?? systemClock;
    this.#electionTicks = options.electionTicks ?? LIMITS.raftElectionTicks;
    this.#heartbeatTicks = options.heartbeatTicks ?? defaultHeartbeatTicks(options.tickMs, this.#electionTicks);
    this.node = new RaftNode({
      group: options.group, id: options.nodeId, storage: options.storage, random: options.random,
      ...(options.electionTicks === undefined ? {} : { electionTicks: options.electionTicks }),
      heartbeatTicks: this.#heartbeatTicks,
      preVote: true, checkQuorum: true, applied: this.#applied, quiesce: options.quiesce ?? false,
    });
  }

  start(): void {
    this.#unsubscribe = this.#o.transport.onMessage(({ from, envelope }) => {
      if (envelope.type !== MessageType.MESSAGE_TYPE_RAFT || envelope.group !== this.group) return;
      let m: Message;
      try {
        m = decodeRaft(envelope.payload, this.group);
        if (m.from !== from) throw new ShoalError('ERR_RAFT_MESSAGE_INVALID', `message claims to be from ${m.from.slice(0, 16)} but came over the link of ${from.slice(0, 16)}`);
      } catch (err) {
        this.#log.warn({ peer: from.slice(0, 16), err: describeError(err) }, 'dropped an invalid raft message');
        return;
      }
      if (m.type === 'snapshot' && m.snapshot && this.#o.stageSnapshot) this.#stage(from, m, m.snapshot);
      else this.#stepMessage(from, m);
    });
    this.#tickOriginMs = this.#clock.nowMs();
    this.#ticks = 0;
    this.#started = true;
    this.#arm(this.#o.tickMs * this.#heartbeatTicks);
  }

  #stepMessage(from: string, m: Message): void {
    if (this.#stopped) return;
    try {
      this.#catchUpTicks();
      this.node.step(m);
    } catch (err) {
      this.#log.warn({ peer: from.slice(0, 16), err: describeError(err) }, 'dropped an invalid raft message');
      return;
    }
    this.#process();
    this.#rearmAfterMessage(from);
    this.#checkQuietLeader();
  }

  /** Fetches what a snapshot message refers to, then steps the message; one at a time. */
  #stage(from: string, m: Message, snapshot: Snapshot): void {
    if (this.#staging) return;
    this.#staging = true;
    this.#o.stageSnapshot!(from, snapshot).then(
      (ok) => {
        this.#staging = false;
        if (ok) this.#stepMessage(from, m);
      },
      (err: unknown) => {
        this.#staging = false;
        this.#log.warn({ peer: from.slice(0, 16), index: snapshot.metadata.index, err: describeError(err) }, 'could not fetch a snapshot; the leader will send it again');
      },
    );
  }

  #onTimer(): void {
    this.#catchUpTicks();
    this.#process();
    if (this.node.quiesced) this.#disarm();
    else this.#arm(this.#o.tickMs * this.#heartbeatTicks);
  }

  /** After work that may have woken a quiet member: make sure its timer runs again. */
  #wake(): void {
    const heartbeatMs = this.#o.tickMs * this.#heartbeatTicks;
    if (!this.node.quiesced && this.#wakeAtMs > this.#clock.nowMs() + heartbeatMs) this.#arm(heartbeatMs);
  }

  #disarm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wakeAtMs = Infinity;
  }

  /**
   * The failure detector suspects `member` (or it is dead, or it left). Only a quiet group cares: its leader
   * resumes heartbeats, or, if `member` is the leader, a follower prepares to campaign (see RaftNode).
   */
  memberUnreachable(member: string): void {
    if (this.#stopped || !this.#started) return;
    // Remembered until it is reachable again: a leader reported gone (say, leaving) may still quiesce the group
    // just before it goes, and its followers must not then sleep under it for good.
    if (this.#unreachable.size < LIMITS.membershipMaxMembers) this.#unreachable.add(member);
    if (!this.node.quiesced) return;
    this.#catchUpTicks();
    this.node.memberUnreachable(member);
    this.#process();
    this.#wake();
  }

  /** The failure detector sees `member` alive again (or it was reaped): forget that it was unreachable. */
  memberReachable(member: string): void {
    this.#unreachable.delete(member);
  }

  /** A follower that just went quiet under a leader already reported unreachable wakes up at once. */
  #checkQuietLeader(): void {
    const leader = this.node.leader;
    if (this.node.quiesced && this.node.role !== 'leader' && leader !== undefined && this.#unreachable.has(leader)) {
      this.node.memberUnreachable(leader);
      this.#process();
      this.#wake();
    }
  }

  /**
   * A follower that just heard from its leader cannot start an election before a whole election timeout has passed:
   * it sleeps until then. Anyone else (a new leader, a candidate) wakes within a heartbeat interval.
   */
  #rearmAfterMessage(from: string): void {
    const heartbeatMs = this.#o.tickMs * this.#heartbeatTicks;
    if (this.node.quiesced) this.#disarm();
    else if (this.node.role === 'follower' && from === this.node.leader) this.#arm(this.#o.tickMs * this.#electionTicks);
    else if (this.#wakeAtMs > this.#clock.nowMs() + heartbeatMs) this.#arm(heartbeatMs);
  }

  #arm(delayMs: number): void {
    if (!this.#started || this.#stopped) return;
    this.#wakeAtMs = this.#clock.nowMs() + delayMs;
    if (this.#timer && this.#timerDelayMs === delayMs) {
      this.#timer.refresh();
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerDelayMs = delayMs;
    this.#timer = setTimeout(() => this.#onTimer(), delayMs);
  }

  /**
   * Ticks the core once for every tickMs elapsed since the last tick. Ticks more than a heartbeat interval past the
   * planned wake-up fell in a stall of this process (GC pause, stopped VM) and are dropped, as a plain interval
   * timer would drop them: a leader that was frozen must read its followers' answers before an election timeout's
   * worth of ticks runs out at once.
   */
  #catchUpTicks(): void {
    if (!this.#started || this.#stopped) return;
    const tickMs = this.#o.tickMs;
    const due = Math.floor((this.#clock.nowMs() - this.#tickOriginMs) / tickMs) - this.#ticks;
    if (due <= 0) return;
    const planned = Math.floor((this.#wakeAtMs + tickMs * this.#heartbeatTicks - this.#tickOriginMs) / tickMs) - this.#ticks;
    // A quiet member planned no wake-up (Infinity): every tick it slept through is caught up (RaftNode.tick
    // passes them at once while quiet).
    const run = Math.max(1, Math.min(due, planned));
    this.#ticks += due;
    this.node.tick(run);
    this.#stalled = undefined;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#unsubscribe?.();
    const err = new ShoalError('ERR_RAFT_STOPPED', `raft group ${this.group} stopped`);
    for (const q of this.#queue) q.reject(err);
    this.#queue = [];
    for (const [, w] of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.#waiters.clear();
    for (const [, r] of this.#reads) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    this.#reads.clear();
  }

  status(): Status {
    return this.node.status();
  }

  /**
   * Calls `listener` with the applied index after entries (or a snapshot) were applied, so the runtime can react to
   * a state change when it happens instead of polling for it. Returns the unsubscribe function.
   */
  onApplied(listener: (index: number) => void): () => void {
    this.#appliedListeners.add(listener);
    return () => this.#appliedListeners.delete(listener);
  }

  isLeader(): boolean {
    return this.node.status().role === 'leader';
  }

  /** Proposes a command; resolves with the state machine's result once it is committed and applied here. */
  propose(data: Uint8Array, options: { timeoutMs: number; request?: RequestId }): Promise<unknown> {
    if (this.#stopped) return Promise.reject(new ShoalError('ERR_RAFT_STOPPED', `raft group ${this.group} stopped`));
    const status = this.node.status();
    if (status.role !== 'leader') return Promise.reject(new NotLeaderError(this.group, this.#o.nodeId, status.leader));
    return new Promise((resolve, reject) => {
      this.#queue.push({ data, ...(options.request ? { request: options.request } : {}), resolve, reject, timeoutMs: options.timeoutMs });
      this.#scheduleFlush();
    });
  }

  /** Proposes one membership change (leader only; the core refuses a second while one is uncommitted). */
  changeMembership(cc: ConfChange): void {
    this.#catchUpTicks();
    this.node.proposeConfChange(cc);
    this.#process();
    this.#wake();
  }

  /** Hands leadership to `to`, a caught-up voter (leader only): it is told to campaign at once (TimeoutNow). */
  transferLeadership(to: string): void {
    this.#catchUpTicks();
    this.node.transferLeadership(to);
    this.#process();
    this.#wake();
  }

  /** Delivers a message that arrived before this group was started (it is what made the agent start it). */
  deliver(bytes: Uint8Array, from: string): void {
    let m: Message;
    try {
      m = decodeRaft(bytes, this.group);
    } catch (err) {
      this.#log.warn({ peer: from.slice(0, 16), err: describeError(err) }, 'dropped an invalid raft message');
      return;
    }
    if (m.from !== from) return;
    if (m.type === 'snapshot' && m.snapshot && this.#o.stageSnapshot) this.#stage(from, m, m.snapshot);
    else this.#stepMessage(from, m);
  }


  /** Resolves once this member may serve a linearizable read (ReadIndex confirmed and applied). */
  read(timeoutMs: number): Promise<void> {
    const context = `${this.#o.nodeId.slice(0, 8)}-${++this.#readSeq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#reads.delete(context);
        reject(new ShoalError('ERR_DEADLINE_EXCEEDED', `read on raft group ${this.group} was not confirmed by a quorum within ${timeoutMs} ms (no leader, or no quorum)`));
      }, timeoutMs);
      this.#reads.set(context, { resolve, reject, timer });
      try {
        this.#catchUpTicks();
        this.node.readIndex(context);
      } catch (err) {
        clearTimeout(timer);
        this.#reads.delete(context);
        reject(err as Error);
        return;
      }
      this.#process();
      this.#wake();
    });
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      const batch = this.#queue;
      this.#queue = [];
      if (batch.length === 0 || this.#stopped) return;
      let placed: { index: number; term: number }[];
      try {
        this.#catchUpTicks();
        placed = this.node.proposeBatch(batch.map((q) => ({ data: q.data, ...(q.request ? { request: q.request } : {}) })));
      } catch (err) {
        for (const q of batch) q.reject(err as Error);
        return;
      }
      placed.forEach((p, i) => {
        const q = batch[i]!;
        const timer = setTimeout(() => {
          this.#waiters.delete(p.index);
          q.reject(new ShoalError('ERR_DEADLINE_EXCEEDED', `proposal to raft group ${this.group} was not committed within ${q.timeoutMs} ms (no quorum?)`));
        }, q.timeoutMs);
        this.#waiters.set(p.index, { term: p.term, resolve: q.resolve, reject: q.reject, timer });
      });
      this.#process();
      this.#wake();
    });
  }

  /** Persist, then send, then apply; repeated while the core has work. */
  #process(): void {
    if (this.#stopped || this.#stalled) return;
    const appliedBefore = this.#applied;
    while (this.node.hasReady()) {
      const rd = this.node.ready();
      try {
        // Most Readies of an idle group carry only a heartbeat or its answer: no transaction for those. Nor for one
        // that only moves the commit index (mustSync false, as etcd's MustSync): a commit index is learned again from
        // the leader, so it is written with the next entries or vote rather than costing an fsync of its own.
        if (rd.mustSync || rd.entries.length > 0 || rd.snapshot) {
          this.#o.storage.save({ ...(rd.hardState ? { hardState: rd.hardState } : {}), entries: rd.entries, ...(rd.snapshot ? { snapshot: rd.snapshot } : {}) });
        }
      } catch (err) {
        // Nothing of this Ready may be sent or applied. The core still holds it as handed out; the group stays
        // stalled (ticks try again) and proposers hear why.
        this.#stalled = err instanceof ShoalError ? err : new ShoalError('ERR_STORAGE', describeError(err));
        this.#log.error({ err: describeError(err) }, 'cannot persist raft state; holding back messages and applies');
        for (const [index, w] of this.#waiters) {
          clearTimeout(w.timer);
          w.reject(this.#stalled);
          this.#waiters.delete(index);
        }
        return;
      }
      for (const m of rd.messages) {
        const res = this.#o.transport.send(m.to, { type: MessageType.MESSAGE_TYPE_RAFT, group: this.group, payload: encodeRaft(m) });
        if (!res.ok) {
          this.node.reportUnreachable(m.to);
          this.#o.transport.connect(m.to);
        }
      }
      if (rd.snapshot) {
        this.#o.stateMachine.restore(rd.snapshot.data);
        this.#applied = rd.snapshot.metadata.index;
      }
      const sm = this.#o.stateMachine;
      const results = sm.applyAll && rd.committedEntries.length > 0 ? sm.applyAll(rd.committedEntries) : undefined;
      for (const [i, e] of rd.committedEntries.entries()) {
        const result = results ? results[i] : e.type === 'normal' ? sm.apply(e) : undefined;
        this.#applied = e.index;
        this.#sinceSnapshot++;
        const w = this.#waiters.get(e.index);
        if (w) {
          clearTimeout(w.timer);
          this.#waiters.delete(e.index);
          if (w.term === e.term) w.resolve(result);
          else w.reject(new ShoalError('ERR_RAFT_PROPOSAL_DROPPED', `proposal at index ${e.index} was replaced by a new leader's entry; retry it`));
        }
      }
      for (const rs of rd.readStates) {
        const r = this.#reads.get(rs.context);
        if (r) r.index = rs.index;
      }
      for (const [ctx, r] of this.#reads) {
        if (r.index !== undefined && this.#applied >= r.index) {
          clearTimeout(r.timer);
          this.#reads.delete(ctx);
          r.resolve();
        }
      }
      this.node.advance();
      this.#maybeSnapshot();
    }
    if (this.#applied !== appliedBefore) for (const listener of this.#appliedListeners) listener(this.#applied);
  }

  /** Takes a snapshot now (a state machine whose last snapshot is unusable, say its copy was lost in a crash). */
  snapshotNow(): void {
    if (this.#stopped || this.#applied === 0) return;
    this.#maybeSnapshot(true);
  }

  #maybeSnapshot(force = false): void {
    const every = this.#o.snapshotEveryEntries ?? 0;
    if (!force && (every <= 0 || this.#sinceSnapshot < every)) return;
    this.#sinceSnapshot = 0;
    const snap = this.#o.storage.createSnapshot(this.#applied, this.node.confState(), this.#o.stateMachine.snapshot());
    // Keep some entries behind the snapshot so a follower slightly behind gets entries, not a whole snapshot.
    const keep = Math.floor(every / 2);
    if (snap.metadata.index - keep > 0) this.#o.storage.compact(snap.metadata.index - keep);
  }
}

/** LIMITS.raftHeartbeatIntervalMs in whole ticks (at least one), and at most a third of the election timeout. */
export function defaultHeartbeatTicks(tickMs: number, electionTicks: number): number {
  return Math.max(1, Math.min(Math.round(LIMITS.raftHeartbeatIntervalMs / tickMs), Math.floor(electionTicks / 3)));
}
