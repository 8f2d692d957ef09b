/**
 * One Raft group member, as a deterministic state machine in the style of etcd-io/raft's `raft` + `RawNode`.
 *
 * Inputs: `tick()` (a unit of logical time), `step(message)`, `propose()`, `proposeConfChange()`, `readIndex()`,
 * `transferLeadership()`. Output: `ready()` hands out, as data, what must be persisted, sent and applied; the
 * caller does it in that order and then calls `advance()`. No clock, no I/O, no randomness except the seeded
 * `Random` that draws election timeouts.
 *
 * A role is a pair of functions (how to tick, how to step a message), swapped on every transition:
 *
 *   follower ──election timeout──► preCandidate ──pre-vote quorum──► candidate ──vote quorum──► leader
 *      ▲  ▲                            │                               │                        │
 *      │  └────── pre-vote lost ───────┘                               │                        │
 *      └───────────── higher term, leader's append, vote lost ─────────┴── check-quorum lost ───┘
 *
 * Membership changes apply when their entry commits, one server at a time. A leader proposes one only once an
 * entry of its own term is committed and no other change is uncommitted (the rule from Ongaro's correction to
 * the single-server change algorithm).
 *
 * Quiescence (`quiesce: true`), as CockroachDB does it: a leader with nothing to do (everything committed, every
 * member caught up and answering, no read, transfer or membership change pending) for an election timeout sends
 * one last heartbeat marked `quiesce` and stops heartbeating; a follower that gets it stops counting toward an
 * election and keeps the leader's lease. An idle group then sends nothing at all. Anything the leader has to do
 * (a proposal, a read, a transfer) wakes it; so does a follower's `wake`, or a campaign it hears of. Losing the
 * heartbeats, followers need another way to learn that the leader died: the runtime's failure detector calls
 * `memberUnreachable(leader)`, and a quiesced follower then lets go of the lease, asks the leader to wake (in case
 * the suspicion was wrong) and campaigns within a third of an election timeout unless the leader answers.
 */
import { invariant } from '../lib/assert.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import { NotLeaderError, ProposalDroppedError } from './errors.js';
import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import type { LogStorage } from './storage.js';
import {
  EMPTY_DATA,
  entryBytes,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type MemberId,
  type Message,
  type ReadState,
  type Ready,
  type RequestId,
  type Role,
  type SoftState,
} from './types.js';

/** Context of a campaign started because the failure detector reported the (quiet) leader unreachable: + its id. */
export const UNREACHABLE_CONTEXT_PREFIX = 'leader-unreachable:';

export interface RaftLimits {
  maxEntriesPerAppend: number;
  maxAppendBytes: number;
  maxInflightAppends: number;
  maxInflightBytes: number;
  maxUncommittedBytes: number;
  maxApplyEntriesPerReady: number;
  maxApplyBytesPerReady: number;
  maxPendingReads: number;
}

export interface RaftConfig {
  group: string;
  id: MemberId;
  storage: LogStorage;
  /** Draws the randomized election timeouts. */
  random: Random;
  /** Base election timeout T in ticks: each member waits a random number of ticks in [T, 2T). */
  electionTicks?: number;
  heartbeatTicks?: number;
  /** Pre-vote (Raft dissertation §9.6): a member that cannot win does not bump terms and disrupt the group. */
  preVote?: boolean;
  /** A leader that has not heard from a quorum for an election timeout steps down; followers then ignore votes while they hear from a leader. */
  checkQuorum?: boolean;
  /**
   * 'safe': a ReadIndex read is confirmed by a heartbeat round to a quorum. 'lease': while a quorum acknowledged
   * a heartbeat sent less than an election timeout ago, the leader answers alone (needs checkQuorum; assumes tick
   * rates agree and nothing pauses the leader; see README). All members of a group must use the same mode.
   */
  readOnly?: 'safe' | 'lease';
  /** Index the state machine had applied before this start (defaults to the snapshot's index). */
  applied?: number;
  limits?: Partial<RaftLimits>;
  /**
   * Go quiet when idle (see the header). Only for a runtime that calls `memberUnreachable()` from a failure
   * detector: without it, a quiesced follower would never notice its leader's death. All members must agree.
   */
  quiesce?: boolean;
}

export interface Status {
  group: string;
  id: MemberId;
  role: Role;
  term: number;
  vote: MemberId | undefined;
  leader: MemberId | undefined;
  commit: number;
  applied: number;
  lastIndex: number;
  voters: MemberId[];
  learners: MemberId[];
  leadTransferee: MemberId | undefined;
  /** Quiet: a leader that stopped heartbeating, or a follower that stopped counting toward an election. */
  quiesced: boolean;
  /** Leader only: what it knows of each member's log. */
  progress: Record<MemberId, { match: number; next: number; state: string; learner: boolean; active: boolean }>;
}

const DEFAULT_LIMITS: RaftLimits = {
  maxEntriesPerAppend: LIMITS.raftMaxEntriesPerAppend,
  maxAppendBytes: LIMITS.raftMaxAppendBytes,
  maxInflightAppends: LIMITS.raftMaxInflightAppends,
  maxInflightBytes: LIMITS.raftMaxInflightBytes,
  maxUncommittedBytes: LIMITS.raftMaxUncommittedBytes,
  maxApplyEntriesPerReady: LIMITS.raftMaxApplyEntriesPerReady,
  maxApplyBytesPerReady: LIMITS.raftMaxApplyBytesPerReady,
  maxPendingReads: LIMITS.raftMaxPendingReads,
};

interface PendingRead {
  context: string;
  from: MemberId;
  index: number;
  acks: Set<MemberId>;
}

interface ReadyInFlight {
  lastEntry: { index: number; term: number } | undefined;
  snapshotIndex: number | undefined;
  lastApplied: number | undefined;
  hardState: HardState | undefined;
  softState: SoftState | undefined;
  uncommittedReleased: number;
}

type MessageFields = Partial<Message> & Pick<Message, 'type' | 'to'>;

export class RaftNode {
  readonly group: string;
  readonly id: MemberId;
  readonly log: RaftLog;
  readonly #random: Random;
  readonly #electionTicks: number;
  readonly #heartbeatTicks: number;
  readonly #preVote: boolean;
  readonly #checkQuorum: boolean;
  readonly #readOnly: 'safe' | 'lease';
  readonly #limits: RaftLimits;
  readonly #quiesce: boolean;
  #quiesced = false;
  /** Leader: consecutive ticks with nothing to do (it quiesces after an election timeout of them). */
  #idleTicks = 0;

  #term = 0;
  #vote: MemberId | undefined;
  #lead: MemberId | undefined;
  #role: Role = 'follower';
  #voters = new Set<MemberId>();
  #learners = new Set<MemberId>();
  /** Index up to which committed configuration changes have been applied to #voters/#learners. */
  #confAppliedTo = 0;
  readonly #prs = new Map<MemberId, Progress>();
  readonly #votes = new Map<MemberId, boolean>();
  #msgs: Message[] = [];
  #electionElapsed = 0;
  /**
   * The leader the failure detector reported unreachable while this follower was quiet (memberUnreachable), until a
   * leader is heard from again: the campaign that follows says so (context UNREACHABLE_CONTEXT_PREFIX + id).
   */
  #unreachableLeader: MemberId | undefined;
  /** Ticks since this member started: the clock that lease reads are measured on. */
  #ticks = 0;
  /** Lease reads: acknowledgements of heartbeats sent at or before this tick do not count (a TimeoutNow went out). */
  #leaseFloorTick = -1;
  /**
   * Lease reads: a member that just started does not know whose lease it granted before it stopped, so it grants
   * no vote for an election timeout (or until it hears from a leader).
   */
  #bootGuard: boolean;
  #heartbeatElapsed = 0;
  #randomizedElectionTimeout = 0;
  #leadTransferee: MemberId | undefined;
  /** Index of the last configuration change proposed by this leader. */
  #pendingConfIndex = 0;
  #uncommittedBytes = 0;
  #readQueue: PendingRead[] = [];
  /** Reads received before this leader committed an entry of its term: they wait for it. */
  #readsBeforeCommit: { context: string; from: MemberId }[] = [];
  #readStates: ReadState[] = [];
  /** Highest index handed out for applying (in a Ready not yet advanced, or applied). */
  #applying: number;
  #snapshotHandedOut = false;
  #prevHard: HardState;
  #prevSoft: SoftState;
  #inFlight: ReadyInFlight | undefined;
  #step: (m: Message) => void = (m) => this.#stepFollower(m);
  #tick: () => void = () => this.#tickElection();

  constructor(config: RaftConfig) {
    invariant(config.group.length > 0 && config.group.length <= LIMITS.maxGroupIdBytes, `raft group id must be 1..${LIMITS.maxGroupIdBytes} characters`);
    invariant(config.id.length > 0, 'raft member id must not be empty');
    this.group = config.group;
    this.id = config.id;
    this.#random = config.random;
    this.#electionTicks = config.electionTicks ?? LIMITS.raftElectionTicks;
    this.#heartbeatTicks = config.heartbeatTicks ?? LIMITS.raftHeartbeatTicks;
    invariant(this.#heartbeatTicks > 0 && this.#electionTicks > this.#heartbeatTicks, `election timeout (${this.#electionTicks} ticks) must exceed the heartbeat interval (${this.#heartbeatTicks} ticks)`);
    this.#preVote = config.preVote ?? true;
    this.#checkQuorum = config.checkQuorum ?? true;
    this.#readOnly = config.readOnly ?? 'safe';
    if (this.#readOnly === 'lease' && !this.#checkQuorum) throw new InvalidArgumentError(`group ${this.group}: lease reads need checkQuorum (a leader must know it still holds its lease)`);
    this.#limits = { ...DEFAULT_LIMITS, ...config.limits };
    this.#quiesce = config.quiesce ?? false;

    this.log = new RaftLog(config.storage);
    const { hardState, conf } = config.storage.initialState();
    this.#setConf(conf);
    this.#confAppliedTo = config.storage.firstIndex() - 1;
    if (hardState.commit > 0) {
      invariant(hardState.commit <= this.log.lastIndex(), `stored commit ${hardState.commit} is past the stored log (last index ${this.log.lastIndex()})`);
      this.log.commitTo(hardState.commit);
    }
    this.#term = hardState.term;
    this.#vote = hardState.vote;
    const applied = config.applied ?? this.log.firstIndex() - 1;
    invariant(applied <= this.log.committed, `applied index ${applied} is past the commit index ${this.log.committed}`);
    this.log.applied = Math.max(applied, this.log.applied);
    this.#applying = this.log.applied;
    this.#bootGuard = this.#readOnly === 'lease';
    this.#applyCommittedConf();
    this.#becomeFollower(this.#term, undefined);
    this.#prevHard = this.#hardState();
    this.#prevSoft = this.#softState();
  }

  // --- Observation -----------------------------------------------------------------------------------------------

  get term(): number {
    return this.#term;
  }

  get vote(): MemberId | undefined {
    return this.#vote;
  }

  get role(): Role {
    return this.#role;
  }

  get leader(): MemberId | undefined {
    return this.#lead;
  }

  /** Whether this member is quiet (see the header): the runtime need not wake it for ticks. */
  get quiesced(): boolean {
    return this.#quiesced;
  }

  get voters(): readonly MemberId[] {
    return [...this.#voters];
  }

  get learners(): readonly MemberId[] {
    return [...this.#learners];
  }

  confState(): ConfState {
    return { voters: [...this.#voters], learners: [...this.#learners] };
  }

  status(): Status {
    const progress: Status['progress'] = {};
    if (this.#role === 'leader') {
      for (const [id, pr] of this.#prs) progress[id] = { match: pr.match, next: pr.next, state: pr.state, learner: pr.isLearner, active: pr.recentActive };
    }
    return {
      group: this.group,
      id: this.id,
      role: this.#role,
      term: this.#term,
      vote: this.#vote,
      leader: this.#lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      voters: [...this.#voters],
      learners: [...this.#learners],
      leadTransferee: this.#leadTransferee,
      quiesced: this.#quiesced,
      progress,
    };
  }

  // --- Inputs ----------------------------------------------------------------------------------------------------

  /**
   * `count` units of logical time pass (default one). Once quiet, the rest pass at once: they only move the clock
   * that leases are measured on, so a group that slept for hours catches up in constant time.
   */
  tick(count = 1): void {
    for (let i = 0; i < count; i++) {
      if (this.#quiesced) {
        this.#ticks += count - i;
        return;
      }
      this.#ticks++;
      this.#tick();
    }
  }

  /** Hands a message from the network to the member. Messages of another group are a routing bug. */
  step(m: Message): void {
    invariant(m.group === this.group, `message for group ${m.group} stepped into group ${this.group}`);
    if (m.to !== this.id) return;
    // readIndex and readIndexResp carry no term: they are requests, not claims of leadership.
    if (m.term === 0) {
      this.#step(m);
      this.#applyCommittedConf();
      return;
    }
    if (m.term > this.#term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        const force = m.context === 'transfer';
        // Someone campaigns: a quiet leader resumes its heartbeats, which end the campaign if the leader is fine.
        if (this.#role === 'leader' && this.#quiesced && (this.#voters.has(m.from) || this.#learners.has(m.from))) this.#wakeLeader(true);
        // A quiet follower counts again: if the leader is fine its heartbeats resume, if not the lease runs out. A
        // campaign by the leader itself means it restarted and leads no more: the lease is gone at once.
        if (this.#role !== 'leader' && this.#quiesced) {
          this.#quiesced = false;
          // Quiet, the lease rests on the failure detector alone. A campaigner whose detector reports our leader
          // unreachable (ours will too, once gossip reaches us) ends it now: waiting for our own verdict would
          // reject this campaign, and the next would come an election timeout later.
          if (m.from === this.#lead || (this.#lead !== undefined && m.context === `${UNREACHABLE_CONTEXT_PREFIX}${this.#lead}`)) this.#electionElapsed = this.#electionTicks;
        }
        const inLease = this.#checkQuorum && (this.#lead !== undefined || this.#bootGuard) && this.#electionElapsed < this.#electionTicks;
        // A member that hears from a live leader ignores campaigns: a returning or partitioned node cannot disrupt.
        if (!force && inLease) return;
      }
      if (m.type === 'preVote') {
        // Answering a pre-vote never changes our term.
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // The grant carries the term we would campaign in; we move to it only by campaigning.
      } else {
        const lead = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot' ? m.from : undefined;
        this.#becomeFollower(m.term, lead);
      }
    } else if (m.term < this.#term) {
      if ((this.#checkQuorum || this.#preVote) && (m.type === 'append' || m.type === 'heartbeat')) {
        // A stale leader (say, back from a partition) learns our term from the answer and steps down. Without the
        // answer it would keep sending forever while we, with pre-vote, never bump its term.
        this.#send({ type: 'appendResp', to: m.from });
      } else if (m.type === 'preVote') {
        this.#send({ type: 'preVoteResp', to: m.from, reject: true });
      }
      return;
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      // Votes do not depend on this member's view of the configuration (as in the dissertation, §4.2.3, and etcd): a
      // voter whose configuration is behind would otherwise refuse a member added since, and with one voter down no
      // candidate could win again. A removed member cannot disrupt a live leader (the lease above) and cannot win with
      // a log that lacks what was committed since (isUpToDate). But a member that knows no configuration at all (an
      // empty replica, say one placed back on a node it had left) grants nothing: it would vote for any stale log,
      // and a configuration it never saw may still count it.
      const empty = this.#voters.size === 0 && this.#learners.size === 0;
      const canVote = !empty && (this.#vote === m.from || (this.#vote === undefined && this.#lead === undefined) || (m.type === 'preVote' && m.term > this.#term));
      if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
        // The answer carries the term of the request: for a pre-vote, the term the candidate would use.
        this.#send({ type: m.type === 'vote' ? 'voteResp' : 'preVoteResp', to: m.from, term: m.term });
        if (m.type === 'vote') {
          this.#electionElapsed = 0;
          this.#vote = m.from;
        }
      } else {
        this.#send({ type: m.type === 'vote' ? 'voteResp' : 'preVoteResp', to: m.from, reject: true });
      }
    } else {
      this.#step(m);
    }
    this.#applyCommittedConf();
  }

  /** Starts an election now (tests and operators; the group does it on its own after an election timeout). */
  campaign(): void {
    this.#hup(false);
    this.#applyCommittedConf();
  }

  /** Appends a command to the log (leader only). Returns where it will be if it commits. */
  propose(data: Uint8Array, request?: RequestId): { index: number; term: number } {
    const item: { data: Uint8Array; request?: RequestId } = { data };
    if (request) item.request = request;
    const [at] = this.proposeBatch([item]);
    return at as { index: number; term: number };
  }

  /**
   * Appends several commands at once (leader only): one append message per follower carries them all, which is
   * how the runtime batches proposals under load. All or none are accepted.
   */
  proposeBatch(items: readonly { data: Uint8Array; request?: RequestId }[]): { index: number; term: number }[] {
    this.#checkCanPropose();
    if (items.length === 0) return [];
    const bytes = items.reduce((sum, it) => sum + it.data.byteLength, 0);
    if (this.#uncommittedBytes > 0 && this.#uncommittedBytes + bytes > this.#limits.maxUncommittedBytes) {
      throw new ProposalDroppedError(this.group, `${this.#uncommittedBytes} bytes are already waiting to commit (limit raftMaxUncommittedBytes=${this.#limits.maxUncommittedBytes}); retry later`);
    }
    const entries = items.map((it) => {
      const entry: Entry = { index: 0, term: 0, type: 'normal', data: it.data };
      if (it.request) entry.request = { clientId: it.request.clientId, seq: it.request.seq };
      return entry;
    });
    this.#uncommittedBytes += bytes;
    this.#appendEntries(entries);
    this.#bcastAppend();
    this.#applyCommittedConf();
    return entries.map((e) => ({ index: e.index, term: e.term }));
  }

  /** Proposes a membership change (leader only; one at a time, once the leader has committed in its term). */
  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    this.#checkCanPropose();
    if (this.log.term(this.log.committed) !== this.#term) {
      throw new ProposalDroppedError(this.group, 'the leader has not committed an entry of its own term yet; retry in a moment');
    }
    if (this.#pendingConfIndex > this.log.committed) {
      throw new ProposalDroppedError(this.group, `membership change at index ${this.#pendingConfIndex} is still uncommitted; one change at a time`);
    }
    switch (cc.type) {
      case 'addVoter':
        if (this.#voters.has(cc.member)) throw new InvalidArgumentError(`group ${this.group}: ${cc.member} is already a voter`);
        break;
      case 'addLearner':
        if (this.#voters.has(cc.member)) throw new InvalidArgumentError(`group ${this.group}: ${cc.member} is a voter; demotion is not supported, remove it first`);
        if (this.#learners.has(cc.member)) throw new InvalidArgumentError(`group ${this.group}: ${cc.member} is already a learner`);
        break;
      case 'removeMember':
        if (!this.#voters.has(cc.member) && !this.#learners.has(cc.member)) throw new InvalidArgumentError(`group ${this.group}: ${cc.member} is not a member`);
        if (this.#voters.has(cc.member) && this.#voters.size === 1) throw new InvalidArgumentError(`group ${this.group}: cannot remove the last voter ${cc.member}`);
        break;
    }
    const index = this.#appendEntries([{ index: 0, term: 0, type: 'conf', data: EMPTY_DATA, conf: { type: cc.type, member: cc.member } }]);
    this.#pendingConfIndex = index;
    this.#bcastAppend();
    this.#applyCommittedConf();
    return { index, term: this.#term };
  }

  /**
   * Asks for a linearizable read point. When confirmed, a `ReadState { index, context }` comes out of `ready()`:
   * the read may be served once the state machine has applied `index`. On a follower the request goes to the
   * leader. Contexts should be unique per request.
   */
  readIndex(context: string): void {
    if (this.#role === 'leader') {
      this.#handleReadIndex(this.id, context);
      return;
    }
    if (this.#lead === undefined) throw new NotLeaderError(this.group, this.id, undefined, 'no leader to confirm a read');
    this.#send({ type: 'readIndex', to: this.#lead, term: 0, context });
  }

  /** Hands leadership to `to` (a voter): it is brought up to date, then told to campaign at once (TimeoutNow). */
  transferLeadership(to: MemberId): void {
    if (this.#role !== 'leader') throw new NotLeaderError(this.group, this.id, this.#lead);
    if (to === this.id) return;
    if (!this.#voters.has(to)) throw new InvalidArgumentError(`group ${this.group}: cannot transfer leadership to ${to}: not a voter`);
    if (this.#leadTransferee === to) return;
    this.#wakeLeader(true);
    this.#leadTransferee = to;
    // The transfer must finish within one election timeout, or it is abandoned (see #tickHeartbeat).
    this.#electionElapsed = 0;
    const pr = this.#prs.get(to) as Progress;
    if (pr.match === this.log.lastIndex()) this.#sendTimeoutNow(to);
    else this.#sendAppend(to, true);
  }

  /**
   * The runtime could not deliver to `to` (connection down): stop pipelining to it and probe again, so appends
   * lost with the connection are re-sent from what the follower really holds.
   */
  reportUnreachable(to: MemberId): void {
    const pr = this.#prs.get(to);
    if (this.#role !== 'leader' || pr === undefined || to === this.id) return;
    if (pr.state === 'replicate') pr.becomeProbe();
  }

  /** The runtime could not deliver a snapshot to `to` (or it was applied): lets the leader retry or go on. */
  reportSnapshot(to: MemberId, ok: boolean): void {
    const pr = this.#prs.get(to);
    if (this.#role !== 'leader' || pr === undefined || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    pr.probeSent = true;
  }

  /**
   * The runtime's failure detector suspects `member` (or declared it dead, or it left). A quiet leader that loses
   * sight of a member resumes heartbeating, so check-quorum can do its work. A quiet follower that loses sight of
   * its leader lets go of the lease (it will grant votes), asks the leader to wake in case the suspicion is wrong,
   * and campaigns within a third of an election timeout (a random tick) unless the leader's heartbeat comes first. A member
   * that is not quiet ignores this: its own timers are already counting.
   */
  memberUnreachable(member: MemberId): void {
    if (!this.#quiesced || member === this.id) return;
    if (this.#role === 'leader') {
      if (this.#prs.has(member)) this.#wakeLeader(true);
      return;
    }
    if (member !== this.#lead) return;
    this.#quiesced = false;
    this.#unreachableLeader = member;
    // The lease is gone (at least an election timeout elapsed), and the campaign starts within a third of an
    // election timeout, at a different tick on each member: the detector already took its time to suspect.
    this.#electionElapsed = Math.max(this.#electionTicks, this.#randomizedElectionTimeout - 1 - this.#random.int(Math.max(1, Math.floor(this.#electionTicks / 3))));
    this.#send({ type: 'wake', to: member });
  }

  // --- Ready / advance -------------------------------------------------------------------------------------------

  hasReady(): boolean {
    if (this.#inFlight) return false;
    if (this.#msgs.length > 0 || this.#readStates.length > 0) return true;
    if (this.log.entriesToPersist().length > 0) return true;
    if (this.log.unstableSnapshot && !this.#snapshotHandedOut) return true;
    if (this.log.committed > this.#applying) return true;
    if (!sameHard(this.#hardState(), this.#prevHard)) return true;
    const soft = this.#softState();
    return soft.leader !== this.#prevSoft.leader || soft.role !== this.#prevSoft.role;
  }

  /** What to persist, send and apply now. Call `advance()` once it is done before asking again. */
  ready(): Ready {
    invariant(this.#inFlight === undefined, `group ${this.group}: ready() called again before advance()`);
    const entries = this.log.entriesToPersist();
    const last = entries[entries.length - 1];
    if (last) this.log.markHandedOut(last.index);
    let snapshot = undefined;
    if (this.log.unstableSnapshot && !this.#snapshotHandedOut) {
      snapshot = this.log.unstableSnapshot;
      this.#snapshotHandedOut = true;
      this.#applying = Math.max(this.#applying, snapshot.metadata.index);
    }
    const committedEntries = this.log.committedAfter(this.#applying, this.#limits.maxApplyBytesPerReady, this.#limits.maxApplyEntriesPerReady);
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (lastCommitted) this.#applying = lastCommitted.index;
    let uncommittedReleased = 0;
    if (this.#role === 'leader') for (const e of committedEntries) if (e.term === this.#term && e.type === 'normal') uncommittedReleased += e.data.byteLength;
    const hard = this.#hardState();
    const soft = this.#softState();
    const hardChanged = !sameHard(hard, this.#prevHard);
    const softChanged = soft.leader !== this.#prevSoft.leader || soft.role !== this.#prevSoft.role;
    const rd: Ready = {
      entries,
      messages: this.#msgs,
      committedEntries,
      readStates: this.#readStates,
      mustSync: entries.length > 0 || snapshot !== undefined || hard.term !== this.#prevHard.term || hard.vote !== this.#prevHard.vote,
    };
    if (hardChanged) rd.hardState = hard;
    if (softChanged) rd.softState = soft;
    if (snapshot) rd.snapshot = snapshot;
    this.#msgs = [];
    this.#readStates = [];
    this.#inFlight = {
      lastEntry: last ? { index: last.index, term: last.term } : undefined,
      snapshotIndex: snapshot?.metadata.index,
      lastApplied: lastCommitted?.index ?? snapshot?.metadata.index,
      hardState: hardChanged ? hard : undefined,
      softState: softChanged ? soft : undefined,
      uncommittedReleased,
    };
    return rd;
  }

  /** The last Ready was persisted, sent and applied. */
  advance(): void {
    const done = this.#inFlight;
    invariant(done !== undefined, `group ${this.group}: advance() without a ready()`);
    this.#inFlight = undefined;
    if (done.snapshotIndex !== undefined) {
      this.log.stableSnapshotTo(done.snapshotIndex);
      this.#snapshotHandedOut = false;
      if (this.log.applied < done.snapshotIndex) this.log.applied = done.snapshotIndex;
    }
    if (done.lastEntry) this.log.stableTo(done.lastEntry.index, done.lastEntry.term);
    if (done.lastApplied !== undefined && done.lastApplied > this.log.applied) this.log.appliedTo(done.lastApplied);
    if (done.hardState) this.#prevHard = done.hardState;
    if (done.softState) this.#prevSoft = done.softState;
    this.#uncommittedBytes = Math.max(0, this.#uncommittedBytes - done.uncommittedReleased);
  }

  // --- Roles -----------------------------------------------------------------------------------------------------

  #reset(term: number): void {
    if (term !== this.#term) {
      this.#term = term;
      this.#vote = undefined;
    }
    this.#lead = undefined;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#quiesced = false;
    this.#idleTicks = 0;
    this.#randomizedElectionTimeout = this.#electionTicks + this.#random.int(this.#electionTicks);
    this.#leadTransferee = undefined;
    this.#votes.clear();
    this.#prs.clear();
    for (const id of this.#voters) this.#prs.set(id, this.#newProgress(false));
    for (const id of this.#learners) this.#prs.set(id, this.#newProgress(true));
    const self = this.#prs.get(this.id);
    if (self) self.match = this.log.lastIndex();
    this.#pendingConfIndex = 0;
    this.#uncommittedBytes = 0;
    this.#readQueue = [];
    this.#readsBeforeCommit = [];
  }

  #newProgress(learner: boolean): Progress {
    const pr = new Progress(this.log.lastIndex() + 1, learner, this.#limits.maxInflightAppends, this.#limits.maxInflightBytes);
    pr.recentActive = true;
    return pr;
  }

  #becomeFollower(term: number, lead: MemberId | undefined): void {
    this.#reset(term);
    this.#lead = lead;
    if (lead !== undefined) this.#unreachableLeader = undefined;
    this.#role = 'follower';
    this.#step = (m) => this.#stepFollower(m);
    this.#tick = () => this.#tickElection();
  }

  #becomePreCandidate(): void {
    invariant(this.#role !== 'leader', 'a leader cannot become a pre-candidate');
    // Neither the term nor the vote changes: that is the point of pre-vote.
    this.#votes.clear();
    this.#lead = undefined;
    this.#role = 'preCandidate';
    this.#step = (m) => this.#stepCandidate(m);
    this.#tick = () => this.#tickElection();
  }

  #becomeCandidate(): void {
    invariant(this.#role !== 'leader', 'a leader cannot become a candidate');
    this.#reset(this.#term + 1);
    this.#vote = this.id;
    this.#role = 'candidate';
    this.#step = (m) => this.#stepCandidate(m);
    this.#tick = () => this.#tickElection();
  }

  #becomeLeader(): void {
    invariant(this.#role === 'candidate', `only a candidate can become leader (was ${this.#role})`);
    this.#reset(this.#term);
    this.#unreachableLeader = undefined;
    this.#lead = this.id;
    this.#role = 'leader';
    this.#step = (m) => this.#stepLeader(m);
    this.#tick = () => this.#tickHeartbeat();
    // Followers start in probe at our last index + 1 (set by #reset); our own progress simply replicates.
    const self = this.#prs.get(this.id);
    if (self) {
      self.match = this.log.lastIndex();
      self.becomeReplicate();
    }
    // Changes already in the log may be uncommitted: no new change until they are (conservatively, until the no-op is).
    this.#pendingConfIndex = this.log.lastIndex() + 1;
    // The no-op commits the entries of earlier terms (only an entry of the current term commits by counting).
    this.#appendEntries([{ index: 0, term: 0, type: 'noop', data: EMPTY_DATA }]);
  }

  #promotable(): boolean {
    return this.#voters.has(this.id);
  }

  #hup(transfer: boolean): void {
    if (this.#role === 'leader' || !this.#promotable()) return;
    if (this.#preVote && !transfer) this.#campaign('pre', false);
    else this.#campaign('election', transfer);
  }

  #campaign(kind: 'pre' | 'election', transfer: boolean): void {
    let term: number;
    if (kind === 'pre') {
      this.#becomePreCandidate();
      term = this.#term + 1;
    } else {
      this.#becomeCandidate();
      term = this.#term;
    }
    if (this.#poll(this.id, true) === 'won') {
      if (kind === 'pre') this.#campaign('election', transfer);
      else this.#becomeLeader();
      return;
    }
    for (const id of this.#voters) {
      if (id === this.id) continue;
      const m: MessageFields = { type: kind === 'pre' ? 'preVote' : 'vote', to: id, term, index: this.log.lastIndex(), logTerm: this.log.lastTerm() };
      if (transfer) m.context = 'transfer';
      else if (this.#unreachableLeader !== undefined) m.context = `${UNREACHABLE_CONTEXT_PREFIX}${this.#unreachableLeader}`;
      this.#send(m);
    }
  }

  #poll(id: MemberId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.#votes.has(id)) this.#votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const voter of this.#voters) {
      const v = this.#votes.get(voter);
      if (v === true) yes++;
      else if (v === false) no++;
    }
    const q = this.#quorum();
    if (yes >= q) return 'won';
    if (this.#voters.size - no < q) return 'lost';
    return 'pending';
  }

  #quorum(): number {
    return Math.floor(this.#voters.size / 2) + 1;
  }

  // --- Ticks -----------------------------------------------------------------------------------------------------

  #tickElection(): void {
    // Quiet: the leader said it has nothing to send; only memberUnreachable() or its next message wakes us.
    if (this.#quiesced) return;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#electionTicks) this.#bootGuard = false;
    if (this.#promotable() && this.#electionElapsed >= this.#randomizedElectionTimeout) {
      this.#electionElapsed = 0;
      this.#hup(false);
      this.#applyCommittedConf();
    }
  }

  #tickHeartbeat(): void {
    if (this.#quiesced) return;
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#electionTicks) {
      this.#electionElapsed = 0;
      if (this.#checkQuorum && !this.#quorumActive()) {
        this.#becomeFollower(this.#term, undefined);
        return;
      }
      // A transfer that did not finish within an election timeout is abandoned, so proposals flow again.
      this.#leadTransferee = undefined;
    }
    for (const pr of this.#prs.values()) {
      // A snapshot lost on the way would otherwise block the follower forever.
      if (pr.state === 'snapshot' && ++pr.snapshotTicks > this.#electionTicks) {
        pr.pendingSnapshot = 0;
        pr.becomeProbe();
      }
    }
    if (this.#heartbeatElapsed >= this.#heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#bcastHeartbeat(undefined);
    }
    if (this.#quiesce) this.#maybeQuiesce();
  }

  /** Leader: after an election timeout of ticks with nothing to do, one last heartbeat marked `quiesce`, then quiet. */
  #maybeQuiesce(): void {
    if (!this.#idle()) {
      this.#idleTicks = 0;
      return;
    }
    if (++this.#idleTicks < this.#electionTicks) return;
    this.#quiesced = true;
    for (const id of this.#prs.keys()) {
      if (id !== this.id) this.#send({ type: 'heartbeat', to: id, commit: this.log.committed, index: this.#ticks, quiesce: true });
    }
  }

  /**
   * Nothing to do: every entry (one of this term among them) committed and held by every member, each of which
   * answered one of the last two heartbeats; no membership change, transfer or read under way.
   */
  #idle(): boolean {
    const last = this.log.lastIndex();
    if (this.log.committed !== last || this.log.term(last) !== this.#term || this.#pendingConfIndex > last) return false;
    if (this.#leadTransferee !== undefined || this.#readQueue.length > 0 || this.#readsBeforeCommit.length > 0) return false;
    for (const [id, pr] of this.#prs) {
      if (id === this.id) continue;
      if (pr.match !== last || pr.leaseTick < this.#ticks - 2 * this.#heartbeatTicks) return false;
    }
    return true;
  }

  /**
   * Leader: back to heartbeating. The check-quorum period restarts with nobody counted as heard from, so a leader
   * that woke up alone steps down an election timeout later.
   */
  #wakeLeader(heartbeat: boolean): void {
    this.#idleTicks = 0;
    if (!this.#quiesced) return;
    this.#quiesced = false;
    this.#heartbeatElapsed = 0;
    this.#electionElapsed = 0;
    for (const [id, pr] of this.#prs) if (id !== this.id) pr.recentActive = false;
    if (heartbeat) this.#bcastHeartbeat(undefined);
  }

  /** Whether a quorum of voters was heard from since the last check; starts the next period. */
  #quorumActive(): boolean {
    let active = 0;
    for (const [id, pr] of this.#prs) {
      if (id === this.id) {
        if (this.#voters.has(id)) active++;
        continue;
      }
      if (pr.recentActive && this.#voters.has(id)) active++;
      pr.recentActive = false;
    }
    return active >= this.#quorum();
  }

  // --- Step functions --------------------------------------------------------------------------------------------

  /** A leader of our term spoke: the election clock restarts, and an earlier report of it as unreachable is void. */
  #heardFromLeader(id: MemberId): void {
    this.#electionElapsed = 0;
    this.#lead = id;
    this.#unreachableLeader = undefined;
  }

  #stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.#heardFromLeader(m.from);
        this.#quiesced = false;
        this.#handleAppend(m);
        return;
      case 'heartbeat':
        this.#heardFromLeader(m.from);
        if (m.quiesce === true && this.#quiesce) {
          // The leader goes quiet: no answer (a late one would wake it again), and no election counting from now.
          this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
          this.#quiesced = true;
          return;
        }
        this.#quiesced = false;
        this.#handleHeartbeat(m);
        return;
      case 'snapshot':
        this.#heardFromLeader(m.from);
        this.#quiesced = false;
        this.#handleSnapshot(m);
        return;
      case 'timeoutNow':
        this.#hup(true);
        return;
      case 'readIndexResp':
        this.#readStates.push({ index: m.index, context: m.context ?? '' });
        return;
      default:
        return;
    }
  }

  #stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
        this.#becomeFollower(m.term, m.from);
        this.#handleAppend(m);
        return;
      case 'heartbeat':
        this.#becomeFollower(m.term, m.from);
        this.#handleHeartbeat(m);
        return;
      case 'snapshot':
        this.#becomeFollower(m.term, m.from);
        this.#handleSnapshot(m);
        return;
      case 'preVoteResp':
      case 'voteResp': {
        const expected = this.#role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
        if (m.type !== expected) return;
        const result = this.#poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.#role === 'preCandidate') this.#campaign('election', false);
          else {
            this.#becomeLeader();
            this.#bcastAppend();
          }
        } else if (result === 'lost') {
          this.#becomeFollower(this.#term, undefined);
        }
        return;
      }
      default:
        return;
    }
  }

  #stepLeader(m: Message): void {
    if (m.type === 'readIndex') {
      this.#handleReadIndex(m.from, m.context ?? '');
      return;
    }
    if (m.type === 'wake') {
      if (this.#prs.has(m.from)) this.#wakeLeader(true);
      return;
    }
    const pr = this.#prs.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case 'appendResp': {
        pr.recentActive = true;
        if (m.reject) {
          let hint = m.rejectHint;
          if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
          if (pr.maybeDecrTo(m.index, hint)) {
            if (pr.state === 'replicate') pr.becomeProbe();
            this.#sendAppend(m.from, true);
          }
          return;
        }
        const wasPaused = pr.isPaused();
        if (!pr.maybeUpdate(m.index)) return;
        if (pr.state === 'probe') pr.becomeReplicate();
        else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) pr.becomeReplicate();
        else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);
        if (this.#maybeCommit()) this.#bcastAppend();
        else if (wasPaused) this.#sendAppend(m.from, false);
        // Fill the pipeline: keep sending while the window has room and there are entries.
        while (this.#prs.get(m.from) === pr && this.#sendAppend(m.from, false)) {
          // each round sends one append
        }
        if (m.from === this.#leadTransferee && pr.match === this.log.lastIndex()) this.#sendTimeoutNow(m.from);
        return;
      }
      case 'heartbeatResp': {
        pr.recentActive = true;
        if (m.index > pr.leaseTick) pr.leaseTick = m.index;
        pr.probeSent = false;
        // A full window whose appends were all lost would never drain: free one slot, the follower's rejection
        // of the next (gapped) append then puts it back into probe.
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
        if (pr.match < this.log.lastIndex()) this.#sendAppend(m.from, true);
        if (m.context) this.#ackRead(m.from, m.context);
        return;
      }
      default:
        return;
    }
  }

  // --- Follower handlers -----------------------------------------------------------------------------------------

  #handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.#send({ type: 'appendResp', to: m.from, index: this.log.committed });
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.#send({ type: 'appendResp', to: m.from, index: lastNew });
      return;
    }
    // Fast back-tracking: name the last index that could match, with its term, so the leader skips whole terms.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.#send({ type: 'appendResp', to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term });
  }

  #handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    // Echo the leader's send tick: it measures its lease from when the heartbeat left, not when the answer came.
    const resp: MessageFields = { type: 'heartbeatResp', to: m.from, index: m.index };
    if (m.context !== undefined) resp.context = m.context;
    this.#send(resp);
  }

  #handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap === undefined) return;
    const { index, term } = snap.metadata;
    if (index <= this.log.committed) {
      this.#send({ type: 'appendResp', to: m.from, index: this.log.committed });
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We already hold the snapshot's last entry: just commit up to it.
      this.log.commitTo(index);
      this.#send({ type: 'appendResp', to: m.from, index: this.log.committed });
      return;
    }
    this.log.restore(snap);
    this.#snapshotHandedOut = false;
    this.#setConf(snap.metadata.conf);
    this.#confAppliedTo = index;
    this.#send({ type: 'appendResp', to: m.from, index: this.log.lastIndex() });
  }

  // --- Leader helpers --------------------------------------------------------------------------------------------

  #checkCanPropose(): void {
    if (this.#role !== 'leader') throw new NotLeaderError(this.group, this.id, this.#lead);
    if (this.#leadTransferee !== undefined) throw new NotLeaderError(this.group, this.id, this.#leadTransferee, `leadership is being transferred to ${this.#leadTransferee}`);
  }

  /** Appends entries at the end of the leader's log, stamping index and term. Returns the last index. */
  #appendEntries(entries: Entry[]): number {
    // The appends that follow wake the followers.
    this.#wakeLeader(false);
    let index = this.log.lastIndex();
    for (const e of entries) {
      e.index = ++index;
      e.term = this.#term;
    }
    const last = this.log.append(entries);
    const self = this.#prs.get(this.id);
    if (self) self.maybeUpdate(last);
    this.#maybeCommit();
    return last;
  }

  /** Advances the commit index to what a quorum of voters holds (if that entry is of the current term). */
  #maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.#voters) matches.push(this.#prs.get(id)?.match ?? 0);
    if (matches.length === 0) return false;
    matches.sort((a, b) => b - a);
    const index = matches[this.#quorum() - 1] as number;
    const wasCommittedInTerm = this.log.term(this.log.committed) === this.#term;
    if (!this.log.maybeCommit(index, this.#term)) return false;
    if (!wasCommittedInTerm) {
      // First commit of this term: reads that waited for it can go now.
      const waiting = this.#readsBeforeCommit;
      this.#readsBeforeCommit = [];
      for (const r of waiting) this.#handleReadIndex(r.from, r.context);
    }
    return true;
  }

  /** Sends `to` the entries it lacks (or a snapshot). Returns whether something was sent. */
  #sendAppend(to: MemberId, sendIfEmpty: boolean): boolean {
    const pr = this.#prs.get(to);
    if (pr === undefined || to === this.id || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined || pr.next < this.log.firstIndex()) return this.#sendSnapshot(to, pr);
    const lastIndex = this.log.lastIndex();
    const entries = pr.next <= lastIndex ? this.log.slice(pr.next, lastIndex + 1, this.#limits.maxAppendBytes, this.#limits.maxEntriesPerAppend) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.#send({ type: 'append', to, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed });
    const last = entries[entries.length - 1];
    if (last) pr.sentEntries(last.index, entries.reduce((s, e) => s + entryBytes(e), 0));
    else if (pr.state === 'probe') pr.probeSent = true;
    return true;
  }

  #sendSnapshot(to: MemberId, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    const snapshot = this.log.storage.snapshot();
    invariant(snapshot.metadata.index > 0, `group ${this.group}: entries below ${this.log.firstIndex()} are compacted but storage has no snapshot`);
    this.#send({ type: 'snapshot', to, snapshot });
    pr.becomeSnapshot(snapshot.metadata.index);
    return true;
  }

  #bcastAppend(): void {
    for (const id of this.#prs.keys()) if (id !== this.id) this.#sendAppend(id, true);
  }

  #bcastHeartbeat(context: string | undefined): void {
    for (const [id, pr] of this.#prs) {
      if (id === this.id) continue;
      // Never tell a follower to commit past what it is known to hold.
      const m: MessageFields = { type: 'heartbeat', to: id, commit: Math.min(pr.match, this.log.committed), index: this.#ticks };
      if (context !== undefined) m.context = context;
      this.#send(m);
    }
  }

  #handleReadIndex(from: MemberId, context: string): void {
    // The read's own heartbeat round (or the lease) does what a wake-up heartbeat would.
    this.#wakeLeader(false);
    const respond = (index: number): void => {
      if (from === this.id) this.#readStates.push({ index, context });
      else this.#send({ type: 'readIndexResp', to: from, term: 0, index, context });
    };
    if (this.#voters.size === 1 && this.#voters.has(this.id)) {
      respond(this.log.committed);
      return;
    }
    if (this.#readQueue.length + this.#readsBeforeCommit.length >= this.#limits.maxPendingReads) {
      if (from === this.id) throw new ProposalDroppedError(this.group, `${this.#limits.maxPendingReads} reads are already waiting (limit raftMaxPendingReads)`);
      return;
    }
    // Until an entry of this term commits, the leader does not know the true commit index (Raft §6.4).
    if (this.log.term(this.log.committed) !== this.#term) {
      this.#readsBeforeCommit.push({ context, from });
      return;
    }
    if (this.#readOnly === 'lease' && this.#leaseValid()) {
      respond(this.log.committed);
      return;
    }
    this.#readQueue.push({ context, from, index: this.log.committed, acks: new Set([this.id]) });
    this.#bcastHeartbeat(context);
  }

  /**
   * Whether no other leader can exist now: a quorum acknowledged a heartbeat sent less than an election timeout
   * ago (minus two ticks for tick phase and rate differences), and those voters refuse votes for an election
   * timeout after hearing from us. Assumes tick rates agree across members and no pause stops this member's clock.
   */
  #leaseValid(): boolean {
    if (this.#leadTransferee !== undefined) return false;
    const sent: number[] = [];
    for (const id of this.#voters) sent.push(id === this.id ? this.#ticks : (this.#prs.get(id)?.leaseTick ?? -1));
    sent.sort((a, b) => b - a);
    const quorumTick = sent[this.#quorum() - 1] ?? -1;
    return quorumTick > this.#leaseFloorTick && this.#ticks - quorumTick < this.#electionTicks - 2;
  }

  #sendTimeoutNow(to: MemberId): void {
    // The target may now win votes from members that granted us their lease: leases from before do not count.
    this.#leaseFloorTick = this.#ticks;
    this.#send({ type: 'timeoutNow', to });
  }

  #ackRead(from: MemberId, context: string): void {
    const at = this.#readQueue.findIndex((r) => r.context === context);
    if (at < 0) return;
    const read = this.#readQueue[at] as PendingRead;
    read.acks.add(from);
    let acks = 0;
    for (const id of read.acks) if (this.#voters.has(id)) acks++;
    if (acks < this.#quorum()) return;
    // The heartbeat round for this read also confirms every read queued before it.
    const released = this.#readQueue.splice(0, at + 1);
    for (const r of released) {
      if (r.from === this.id) this.#readStates.push({ index: r.index, context: r.context });
      else this.#send({ type: 'readIndexResp', to: r.from, term: 0, index: r.index, context: r.context });
    }
  }

  // --- Configuration ---------------------------------------------------------------------------------------------

  #setConf(conf: ConfState): void {
    this.#voters = new Set(conf.voters);
    this.#learners = new Set(conf.learners.filter((l) => !this.#voters.has(l)));
  }

  /** Applies the membership changes that have committed since the last call. */
  #applyCommittedConf(): void {
    if (this.#confAppliedTo >= this.log.committed) return;
    const committed = this.log.committed;
    let from = Math.max(this.#confAppliedTo + 1, this.log.firstIndex());
    let changed = false;
    // In bounded batches: after a restart the range can be the whole log since the snapshot.
    while (from <= committed) {
      const batch = this.log.slice(from, committed + 1, this.#limits.maxApplyBytesPerReady, this.#limits.maxApplyEntriesPerReady);
      for (const e of batch) {
        if (e.type === 'conf' && e.conf) {
          this.#applyConfChange(e.conf);
          changed = true;
        }
      }
      from = (batch[batch.length - 1] as Entry).index + 1;
    }
    this.#confAppliedTo = committed;
    if (!changed || this.#role !== 'leader') return;
    if (!this.#voters.has(this.id)) {
      // Removed from the voters: stop leading; the remaining voters elect a leader among themselves.
      this.#becomeFollower(this.#term, undefined);
      return;
    }
    if (this.#maybeCommit()) this.#applyCommittedConf();
    this.#bcastAppend();
  }

  #applyConfChange(cc: ConfChange): void {
    const leader = this.#role === 'leader';
    switch (cc.type) {
      case 'addVoter':
        this.#learners.delete(cc.member);
        this.#voters.add(cc.member);
        break;
      case 'addLearner':
        if (this.#voters.has(cc.member)) return;
        this.#learners.add(cc.member);
        break;
      case 'removeMember':
        this.#voters.delete(cc.member);
        this.#learners.delete(cc.member);
        if (this.#leadTransferee === cc.member) this.#leadTransferee = undefined;
        break;
    }
    if (!leader) return;
    if (cc.type === 'removeMember') {
      this.#prs.delete(cc.member);
      return;
    }
    const pr = this.#prs.get(cc.member);
    if (pr) pr.isLearner = this.#learners.has(cc.member);
    else this.#prs.set(cc.member, this.#newProgress(this.#learners.has(cc.member)));
  }

  // --- Plumbing --------------------------------------------------------------------------------------------------

  #send(fields: MessageFields): void {
    this.#msgs.push({
      group: this.group,
      from: this.id,
      term: this.#term,
      logTerm: 0,
      index: 0,
      entries: [],
      commit: 0,
      reject: false,
      rejectHint: 0,
      ...fields,
    });
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.log.committed };
  }

  #softState(): SoftState {
    return { leader: this.#lead, role: this.#role };
  }
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
