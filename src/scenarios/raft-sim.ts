/**
 * A Raft group member inside the simulator, wired exactly as the real runtime will be: every Ready is persisted
 * (hard state, entries, snapshot) and synced BEFORE its messages are sent, then applied, then advanced. The
 * simulated disk (SimStorage) loses whatever was not synced when the node crashes, so a shortcut here would be
 * caught by the invariants in raft-kv.ts.
 *
 * The replicated state machine is a small key-value store (put / cas, reads through ReadIndex) with exactly-once
 * application of retried commands through ClientSessions.
 */
import { applyConfChangeTo } from '../consensus/conf.js';
import { NotLeaderError, ProposalDroppedError } from '../consensus/errors.js';
import { RaftNode } from '../consensus/raft.js';
import { ClientSessions, type SessionRecord } from '../consensus/sessions.js';
import { emptyConf } from '../consensus/storage.js';
import type { ConfState, Entry, Message, RequestId, Snapshot } from '../consensus/types.js';
import { ShoalError } from '../lib/errors.js';
import type { SimNode, SimNodeContext } from '../sim/simulator.js';
import { SimRaftLog } from './sim-raft-log.js';

export type KvCommand = { op: 'put'; key: string; value: string } | { op: 'cas'; key: string; expect: string | null; value: string };
export type KvResult = 'ok' | boolean;


export const encodeText = (s: string): Uint8Array => new TextEncoder().encode(s);
export const decodeText = (b: Uint8Array): string => new TextDecoder().decode(b);

/** The applied state: what a snapshot holds, and what every replica must agree on at every index. */
export class KvMachine {
  readonly data = new Map<string, string>();
  sessions = new ClientSessions<KvResult>();
  conf: ConfState = emptyConf();
  appliedIndex = 0;

  /** `withoutDedup`: the deliberately broken variant that applies a retried command again. */
  constructor(readonly withoutDedup = false) {}

  apply(entry: Entry): KvResult | undefined {
    this.appliedIndex = entry.index;
    if (entry.type === 'conf' && entry.conf) {
      this.conf = applyConfChangeTo(this.conf, entry.conf);
      return undefined;
    }
    if (entry.type !== 'normal') return undefined;
    const cmd = JSON.parse(decodeText(entry.data)) as KvCommand;
    return this.sessions.applyOnce(this.withoutDedup ? undefined : entry.request, () => {
      if (cmd.op === 'put') {
        this.data.set(cmd.key, cmd.value);
        return 'ok';
      }
      const current = this.data.get(cmd.key) ?? null;
      if (current !== cmd.expect) return false;
      this.data.set(cmd.key, cmd.value);
      return true;
    }).result;
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  encode(): Uint8Array {
    const kv = [...this.data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return encodeText(JSON.stringify({ kv, sessions: this.sessions.toJSON() }));
  }

  restore(snapshot: Snapshot): void {
    const parsed = JSON.parse(decodeText(snapshot.data)) as { kv: [string, string][]; sessions: SessionRecord<KvResult>[] };
    this.data.clear();
    for (const [k, v] of parsed.kv) this.data.set(k, v);
    this.sessions = ClientSessions.fromJSON(parsed.sessions);
    this.conf = { voters: [...snapshot.metadata.conf.voters], learners: [...snapshot.metadata.conf.learners] };
    this.appliedIndex = snapshot.metadata.index;
  }

  /** Identifies the state for cross-replica comparison. */
  digest(): string {
    return decodeText(this.encode());
  }
}

/** What the scenario watches: every apply, snapshot and durable write, across all nodes and incarnations. */
export interface RaftObserver {
  /** `term`: the member's term when it applied the entry (at least the term in which the entry committed). */
  applied(node: string, entry: Entry, machine: KvMachine, term: number): void;
  snapshotTaken(node: string, index: number, machine: KvMachine): void;
  /** `installed`: sent by the leader (InstallSnapshot), as opposed to read back from the node's own disk at boot. */
  snapshotRestored(node: string, snapshot: Snapshot, machine: KvMachine, installed: boolean): void;
  answered(node: string, request: RequestId, result: KvResult | undefined): void;
}

export interface RaftSimOptions {
  group: string;
  /** The initial voters; they bootstrap the group. Other nodes start empty and wait to be added. */
  initialVoters: readonly string[];
  electionTicks: number;
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  readOnly?: 'safe' | 'lease';
  /** Take a snapshot (and compact the log) every this many applied entries. */
  snapshotEvery: number;
  /** Entries kept behind the snapshot for slow followers. */
  keepEntriesAfterSnapshot: number;
  /** Deliberately broken variant: sync a few ticks after sending instead of before (must be caught). */
  unsafeSyncLate: boolean;
  /** Deliberately broken variant: retried commands applied again (no client sessions). */
  unsafeNoDedup?: boolean;
  /** Deliberately broken variant: reads answered from the local state, without ReadIndex (stale reads). */
  unsafeLocalReads?: boolean;
  /** Idle groups go quiet; the scenario's failure detector then calls memberUnreachable(). */
  quiesce?: boolean;
  observer: RaftObserver;
}

export class SimClientError extends ShoalError {
  constructor(message: string) {
    super('ERR_SIM_CLIENT', message);
  }
}

type ReadWaiter = { key: string; done: (value: string | null) => void };

export class RaftSimNode implements SimNode<Message> {
  readonly raft: RaftNode;
  readonly machine: KvMachine;
  readonly #ctx: SimNodeContext<Message>;
  readonly #opts: RaftSimOptions;
  readonly #log: SimRaftLog;
  readonly #writeWaiters = new Map<string, ((r: KvResult | undefined) => void)[]>();
  readonly #readWaiters = new Map<string, ReadWaiter>();
  #readsToServe: { index: number; context: string }[] = [];
  #unsyncedSince = false;
  #lateTicks = 0;

  constructor(ctx: SimNodeContext<Message>, opts: RaftSimOptions) {
    this.#ctx = ctx;
    this.#opts = opts;
    this.machine = new KvMachine(opts.unsafeNoDedup ?? false);
    this.#log = new SimRaftLog(ctx.storage, ctx.id, opts.initialVoters);
    const snap = this.#log.bootSnapshot;
    if (snap !== undefined) this.machine.restore(snap);
    this.raft = new RaftNode({
      group: opts.group,
      id: ctx.id,
      storage: this.#log.mem,
      random: ctx.random,
      electionTicks: opts.electionTicks,
      heartbeatTicks: opts.heartbeatTicks,
      preVote: opts.preVote,
      checkQuorum: opts.checkQuorum,
      readOnly: opts.readOnly ?? 'safe',
      quiesce: opts.quiesce ?? false,
    });
    if (snap !== undefined) opts.observer.snapshotRestored(ctx.id, snap, this.machine, false);
    this.#process();
  }

  tick(): void {
    if (this.#unsyncedSince && ++this.#lateTicks >= 5) {
      this.#lateTicks = 0;
      this.#ctx.storage.sync();
      this.#unsyncedSince = false;
    }
    this.raft.tick();
    this.#process();
  }

  deliver(_from: string, msg: Message): void {
    this.raft.step(msg);
    this.#process();
  }

  /** A client command. Throws NotLeaderError (with the leader's id when known) on a follower. */
  submit(request: RequestId, cmd: KvCommand, done: (r: KvResult | undefined) => void): { index: number; term: number } {
    const at = this.raft.propose(encodeText(JSON.stringify(cmd)), request);
    const key = `${request.clientId}#${request.seq}`;
    const list = this.#writeWaiters.get(key) ?? [];
    list.push(done);
    this.#writeWaiters.set(key, list);
    this.#process();
    return at;
  }

  /** A linearizable read through ReadIndex (on the leader, or forwarded to it by a follower). */
  read(context: string, key: string, done: (value: string | null) => void): void {
    if (this.#opts.unsafeLocalReads) {
      done(this.machine.get(key));
      return;
    }
    this.raft.readIndex(context);
    this.#readWaiters.set(context, { key, done });
    this.#process();
  }

  /** Operator action: a membership change. */
  changeMembership(type: 'addVoter' | 'addLearner' | 'removeMember', member: string): boolean {
    try {
      this.raft.proposeConfChange({ type, member });
    } catch (err) {
      if (err instanceof NotLeaderError || err instanceof ProposalDroppedError || (err instanceof ShoalError && err.code === 'ERR_INVALID_ARGUMENT')) {
        this.#ctx.note(`conf change refused: ${err.code}`);
        return false;
      }
      throw err;
    }
    this.#process();
    return true;
  }

  /** The failure detector suspects `member` (the runtime's gossip does this for real agents). */
  memberUnreachable(member: string): void {
    this.raft.memberUnreachable(member);
    this.#process();
  }

  transfer(to: string): void {
    this.raft.transferLeadership(to);
    this.#process();
  }

  #process(): void {
    const st = this.#ctx.storage;
    while (this.raft.hasReady()) {
      const rd = this.raft.ready();
      // 1. Persist, and make it durable.
      this.#log.persist(rd);
      if (this.#opts.unsafeSyncLate) this.#unsyncedSince = st.unsyncedWrites > 0;
      else if (st.unsyncedWrites > 0) st.sync();
      // 2. Send.
      for (const m of rd.messages) this.#ctx.send(m.to, m);
      // 3. Apply.
      if (rd.snapshot) {
        this.machine.restore(rd.snapshot);
        this.#opts.observer.snapshotRestored(this.#ctx.id, rd.snapshot, this.machine, true);
      }
      for (const e of rd.committedEntries) {
        const result = this.machine.apply(e);
        this.#opts.observer.applied(this.#ctx.id, e, this.machine, this.raft.term);
        if (e.request) {
          const key = `${e.request.clientId}#${e.request.seq}`;
          const waiters = this.#writeWaiters.get(key);
          this.#opts.observer.answered(this.#ctx.id, e.request, result);
          if (waiters) {
            this.#writeWaiters.delete(key);
            for (const w of waiters) w(result);
          }
        }
      }
      this.#readsToServe.push(...rd.readStates);
      this.raft.advance();
      this.#serveReads();
      this.#maybeSnapshot();
    }
  }

  #serveReads(): void {
    if (this.#readsToServe.length === 0) return;
    const later: { index: number; context: string }[] = [];
    for (const rs of this.#readsToServe) {
      if (rs.index > this.machine.appliedIndex) {
        later.push(rs);
        continue;
      }
      const waiter = this.#readWaiters.get(rs.context);
      if (!waiter) continue;
      this.#readWaiters.delete(rs.context);
      waiter.done(this.machine.get(waiter.key));
    }
    this.#readsToServe = later;
  }

  #maybeSnapshot(): void {
    const applied = this.machine.appliedIndex;
    if (applied - this.#log.snapshotIndex < this.#opts.snapshotEvery) return;
    if (this.#opts.unsafeSyncLate && this.#unsyncedSince) return;
    // Keep a tail of entries behind the snapshot, so a follower a little behind needs no snapshot.
    this.#log.saveSnapshot(applied, this.machine.conf, this.machine.encode(), this.#opts.keepEntriesAfterSnapshot);
    this.#opts.observer.snapshotTaken(this.#ctx.id, applied, this.machine);
  }
}
