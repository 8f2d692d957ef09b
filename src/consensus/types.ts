/**
 * The data a Raft group exchanges and persists. Everything here is plain data (no classes), so the runtime can
 * encode it for the wire and for SQLite, and the simulator can deep-copy it.
 */

/** A member of a group: in Shoal, an agent's node id. */
export type MemberId = string;

/** A client's identity for exactly-once application of a retried command. */
export interface RequestId {
  clientId: string;
  /** Increases with every new command of this client; a retry reuses the same seq. */
  seq: number;
}

/**
 * - `normal`: an application command.
 * - `noop`: the empty entry a new leader appends to commit the entries of earlier terms (Raft §5.4.2, §8).
 * - `conf`: a membership change, applied to the group's configuration when it commits.
 */
export type EntryType = 'normal' | 'noop' | 'conf';

export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  data: Uint8Array;
  /** Set on `normal` entries that came from a client with a request id. */
  request?: RequestId;
  /** Set on `conf` entries. */
  conf?: ConfChange;
}

export type ConfChangeType = 'addVoter' | 'addLearner' | 'removeMember';

/** One server at a time (Raft dissertation §4.1). `addVoter` on a learner promotes it. */
export interface ConfChange {
  type: ConfChangeType;
  member: MemberId;
}

export interface ConfState {
  voters: MemberId[];
  learners: MemberId[];
}

/** What must be on stable storage before any message of the same `Ready` is sent. */
export interface HardState {
  term: number;
  vote: MemberId | undefined;
  commit: number;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  conf: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** The application's state machine at `metadata.index`, opaque to the core. */
  data: Uint8Array;
}

export type MessageType =
  | 'preVote'
  | 'preVoteResp'
  | 'vote'
  | 'voteResp'
  | 'append'
  | 'appendResp'
  | 'heartbeat'
  | 'heartbeatResp'
  | 'snapshot'
  | 'timeoutNow'
  | 'readIndex'
  | 'readIndexResp'
  /** A quiet follower that lost sight of its leader asks it to heartbeat again (see quiescence in raft.ts). */
  | 'wake';

/**
 * One flat message shape for every kind, as in etcd's raftpb.Message: fields a kind does not use keep their zero
 * value. `group` lets one transport carry many groups.
 */
export interface Message {
  group: string;
  type: MessageType;
  from: MemberId;
  to: MemberId;
  term: number;
  /** append: term of the entry at `index`; vote: candidate's last log term; appendResp reject: hint term. */
  logTerm: number;
  /**
   * append: index before the first entry; vote: candidate's last index; appendResp: last index acknowledged or
   * rejected; readIndexResp: the read index; heartbeat and its answer: the leader's tick when it sent it (leases).
   */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** appendResp reject: the follower's guess of the last index that may match (fast back-tracking). */
  rejectHint: number;
  snapshot?: Snapshot;
  /** heartbeat/readIndex: the read request this round confirms; vote: 'transfer' for a TimeoutNow campaign. */
  context?: string;
  /** heartbeat: the leader's last before it goes quiet (not answered). */
  quiesce?: boolean;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export interface SoftState {
  leader: MemberId | undefined;
  role: Role;
}

/** A read that may be served once the state machine has applied `index`. */
export interface ReadState {
  index: number;
  context: string;
}

/**
 * Everything the core wants done, as data. The caller must, in this order:
 *   1. persist `hardState`, `entries` (replacing any entries at the same or higher index) and `snapshot`,
 *      and sync them to disk when `mustSync`;
 *   2. send `messages`;
 *   3. apply `snapshot` (if any) and then `committedEntries` to the state machine, and serve `readStates`
 *      once `applied >= index`;
 *   4. call `advance()`.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  messages: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
  /** True when hardState or entries changed: the write must be durable (fsync) before sending. */
  mustSync: boolean;
}

export const EMPTY_DATA: Uint8Array = new Uint8Array(0);

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

export function entryBytes(e: Entry): number {
  return e.data.byteLength + 32;
}
