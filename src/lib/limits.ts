/**
 * Every limit Shoal has, in one place, with its unit in its name.
 *
 * A limit is what keeps a bad peer, a bad file or a burst of load from using unbounded memory or time. Modules
 * import the value they need from here rather than inventing a local constant, and `checkLimits()` asserts the
 * relations between them when an agent starts (and in a test), so a change that breaks one fails at once.
 */
import { invariant } from './assert.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export const LIMITS = {
  // --- Wire ---------------------------------------------------------------------------------------------------
  /** Largest frame (length prefix excluded) a peer may send; checked before the body is buffered. */
  maxFrameBytes: 4 * MiB,
  /** Bytes of the length prefix in front of every frame. */
  frameHeaderBytes: 4,
  /** Largest payload a single envelope may carry (a frame also holds the envelope's own fields). */
  maxEnvelopePayloadBytes: 4 * MiB - 1 * KiB,
  /** Longest group id (Raft group or partition name) an envelope may carry. */
  maxGroupIdBytes: 256,

  // --- Simulator ------------------------------------------------------------------------------------------------
  /** Default largest message the simulated network carries; bigger ones are dropped and traced. */
  simMaxMessageBytes: 1 * MiB,
  /** Events kept in memory for printing when an invariant fails. */
  simTraceTailEvents: 64,
  /** Hard stop for one simulation run, so a livelocked scenario cannot hang CI. */
  simMaxEventsPerRun: 5_000_000,
  /** Messages in flight on the simulated network at once; more are dropped and traced. */
  simMaxInFlightMessages: 1_000_000,

  // --- Transport (src/transport; owner: peer network, issue 3) -------------------------------------------------
  /** Authenticated links an agent keeps open at once; opening one more closes the least recently used. */
  transportMaxLinks: 256,
  /**
   * Largest frame sent as one unreliable datagram (the membership's probes and rumours, which SWIM expects to lose
   * now and then, as memberlist sends them over UDP); larger ones, and everything else, go on the reliable stream.
   * Kept under a 1280-byte IPv6 MTU minus UDX, secretbox and IP/UDP headers.
   */
  transportMaxDatagramBytes: 1_024,
  /** Frames waiting in one link's send queue while the stream is backpressured; more are refused. */
  transportSendQueueMaxFrames: 4096,
  /** Bytes waiting in one link's send queue; must hold at least one largest frame. */
  transportSendQueueMaxBytes: 16 * MiB,
  /**
   * Bytes of bulk frames (forwarded connections' data, OutboundMessage.bulk) queued per link behind everything else.
   * The mesh's per-stream windows keep it far below this; a full bulk queue resets the stream that overflowed it.
   */
  transportBulkQueueMaxBytes: 64 * MiB,
  /** Bulk bytes a link writes into its stream between two drains: the most a control frame can find ahead of it. */
  transportBulkInflightBytes: 4 * MiB,
  /** Time a new connection has to complete the Hello exchange before it is closed. */
  transportHandshakeTimeoutMs: 10_000,
  /** Keep-alive interval on every encrypted stream, so a silent dead peer is noticed. */
  transportKeepAliveMs: 5_000,
  /** A stream with no traffic (keep-alives included) for this long is closed: the peer is gone. */
  transportStreamTimeoutMs: 15_000,
  /** First redial delay to a lost peer; doubles per failed attempt, with jitter. */
  transportRedialBaseMs: 250,
  /** Largest redial delay to a lost peer. */
  transportRedialMaxMs: 5_000,
  /** Delay of the one early discovery refresh after joining the topic (peers that joined together see each other). */
  transportFirstRefreshMs: 1_000,
  /**
   * Interval of the periodic discovery refresh once the agent has run for transportDiscoveryWarmupMs (gossip's
   * reconnects bring a host back after a partition sooner; this is the last resort). Each refresh also re-dials the
   * peers our DHT node holds announcements of.
   */
  transportDiscoveryRefreshMs: 60_000,
  /**
   * How long after start discovery refreshes every transportDiscoveryWarmupRefreshMs instead: while a cluster forms,
   * a missed peer must be found in seconds, or two groups that missed each other each bootstrap a Raft group.
   */
  transportDiscoveryWarmupMs: 120_000,
  transportDiscoveryWarmupRefreshMs: 10_000,
  /**
   * Interval at which an agent reads the announcements its own DHT node holds (local, no traffic), during the first
   * transportLocalRecordsPollWindowMs after start only; afterwards they are read when a DHT request about the
   * cluster's topic arrives and at every discovery refresh (src/transport/hyperswarm-transport.ts).
   */
  transportLocalRecordsCheckMs: 500,
  /** How long after start the local announcements are also polled (a fallback should the request hook see nothing). */
  transportLocalRecordsPollWindowMs: 10_000,
  /** Peer keys remembered for redialing (learned from links or given to connect()). */
  transportMaxKnownPeers: 4_096,
  /** Longest node name a Hello may carry. */
  transportMaxNodeNameBytes: 256,
  /** Longest agent version string a Hello may carry. */
  transportMaxAgentVersionBytes: 64,

  // --- Task drivers (src/drivers) -------------------------------------------------------------------------------
  /** Grace between the stop signal and SIGKILL when a task declares none (Docker's and Compose's default). */
  driverDefaultStopGraceMs: 10_000,
  /** Longest stop grace a task may ask for, so a stop always ends. */
  driverMaxStopGraceMs: 300_000,
  /** How often re-attached processes (not our children; one timer for all) are looked for in /proc, and `follow` logs poll. */
  driverProcessPollMs: 200,
  /** Size at which the process driver rotates a task's stdout/stderr file. */
  driverLogMaxFileBytes: 10 * MiB,
  /** Rotated files kept per stream (the live one included); older ones are deleted. */
  driverLogMaxFiles: 3,
  /** How often the process driver checks log sizes for rotation (one timer for all of its tasks). */
  driverLogRotateCheckMs: 1_000,
  /** Most lines `logs({ tail })` returns. */
  driverMaxLogTailLines: 100_000,
  /** Shortest health-check interval and timeout a task may declare. */
  driverHealthMinIntervalMs: 100,
  /** Longest health-check interval, timeout or start period a task may declare. */
  driverHealthMaxIntervalMs: 3_600_000,
  /** Most consecutive failures a health check may tolerate before the task is unhealthy. */
  driverHealthMaxRetries: 100,
  /** Bytes of a health probe's output kept for `inspect`. */
  driverHealthMaxOutputBytes: 4 * KiB,
  /** How long fingerprint waits for the Docker engine to answer before calling it unavailable. */
  driverDockerPingTimeoutMs: 3_000,
  /** Longest an image pull may take before the start fails (recoverable). */
  driverImagePullTimeoutMs: 600_000,
  /** Most environment variables, labels, ports or mounts one task may declare. */
  driverMaxTaskListEntries: 1_000,

  // --- Membership (src/membership; owner: gossip membership, issue 4) ------------------------------------------
  /** Largest ping/ack/gossip message with its piggybacked rumours (push-pull excepted); more rumours wait. */
  membershipMaxMessageBytes: 8 * KiB,
  /** Largest push-pull (full state) message; a bigger state is sent in part (self first, then a random sample). */
  membershipMaxPushPullBytes: 1 * MiB,
  /** Largest node metadata (name, addresses, labels...) in its JSON form; it must ride in one gossip message. */
  membershipMaxMetaBytes: 2 * KiB,
  /** Longest node id a membership message may name. */
  membershipMaxNodeIdBytes: 128,
  /** Most members one node tracks (dead and left included); rumours about further new nodes are ignored. */
  membershipMaxMembers: 20_000,
  /** Rumours queued for piggybacking; beyond it the most-sent rumour is dropped (push-pull repairs the loss). */
  membershipMaxQueuedRumours: 4_096,
  /** Indirect probes this node relays for others at once; further ping-req are ignored (they time out as misses). */
  membershipMaxPendingRelays: 256,
  /** Rumours one message may carry, whatever their size (bounds the work one message causes). */
  membershipMaxRumoursPerMessage: 256,
  /** Reaped members whose last incarnation is remembered, so a stale rumour cannot bring them back. */
  membershipMaxTombstones: 20_000,
  /** Unknown senders this node has recently answered with a push-pull (to learn who they are); older ones are forgotten. */
  membershipMaxIntroductions: 256,

  // --- Consensus (src/consensus): the Raft core --------------------------------------------------------------
  /** Ticks between two heartbeats of a leader (the core's default; a running group sets its own from raftHeartbeatIntervalMs). */
  raftHeartbeatTicks: 1,
  /**
   * How often a running Raft group's leader heartbeats each follower, rounded to whole ticks and at most a third of
   * the election timeout (src/runtime/raft-group.ts); the group's timer wakes this often too. With the agent's
   * 30 ms tick: every 90 ms, 3.3 to 6.7 heartbeats per election timeout. Reads and writes do not wait for it.
   */
  raftHeartbeatIntervalMs: 100,
  /** Base election timeout in ticks; each member draws its own from [T, 2T) after every reset. */
  raftElectionTicks: 10,
  /** Entries in one append message, at most. */
  raftMaxEntriesPerAppend: 64,
  /** Bytes of entries in one append message, at most (one larger entry is still sent alone). */
  raftMaxAppendBytes: 1 * MiB,
  /** Appends in flight to one follower before the leader waits for acknowledgements. */
  raftMaxInflightAppends: 64,
  /** Bytes in flight to one follower before the leader waits. */
  raftMaxInflightBytes: 8 * MiB,
  /** Bytes of proposals appended but not yet committed; more are refused (the group is not keeping up). */
  raftMaxUncommittedBytes: 16 * MiB,
  /** Committed entries handed out for applying in one Ready, at most. */
  raftMaxApplyEntriesPerReady: 1_024,
  /** Bytes of committed entries handed out for applying in one Ready, at most. */
  raftMaxApplyBytesPerReady: 16 * MiB,
  /** ReadIndex requests waiting on the leader at once; more are refused. */
  raftMaxPendingReads: 4_096,
  /** Client sessions a replicated state machine remembers for exactly-once application; the oldest is forgotten. */
  raftMaxClientSessions: 10_000,

  // --- Job files (src/jobspec) ---------------------------------------------------------------------------------
  /** Largest job file accepted; bigger ones are refused before parsing. */
  jobMaxFileBytes: 1 * MiB,
  /** YAML aliases resolved in one file (stops "billion laughs" expansion). */
  jobMaxYamlAliases: 1_000,
  /** Services in one job. */
  jobMaxServices: 100,
  /** Replicas of one service. */
  jobMaxReplicas: 10_000,
  /** Entries in one environment, label, port or volume list. */
  jobMaxListEntries: 1_000,
  /** Spread preferences of one service (each one nests the placement a level deeper). */
  jobMaxSpreadPreferences: 4,
  /** Longest stop grace period a service may ask for. */
  jobMaxStopGraceMs: 300_000,
  /** Largest restart_policy.max_attempts. */
  jobMaxRestartAttempts: 1_000_000,
  /** Shortest health-check interval or timeout. */
  jobMinHealthIntervalMs: 100,
  /** Longest health-check interval, timeout or start period. */
  jobMaxHealthIntervalMs: 3_600_000,
  /** Most consecutive health-check failures a service may tolerate. */
  jobMaxHealthRetries: 100,
  /** Networks of one job, `default` included. */
  jobMaxNetworks: 16,
  /** Networks one service is on. */
  jobMaxNetworksPerService: 16,
  /** Aliases one service has on one network. */
  jobMaxAliasesPerNetwork: 16,

  // --- Control plane (src/node, src/scheduler, src/runtime/control-plane.ts) ------------------------------------
  /** Times a failed allocation is replaced by a new one (on any node) before the leader gives up on that replica. */
  schedulerMaxReschedules: 3,
  /** Service shapes (driver + constraints) whose feasible nodes the scheduler remembers per version of the node table. */
  schedulerFeasibilityCacheShapes: 1_024,
  /** Finished tasks a node keeps (with their logs) after the leader no longer wants them; older ones are destroyed. */
  nodeMaxDeadTasksKept: 50,
  /** Allocation status changes a node sends the leader in one report. */
  nodeMaxUpdatesPerReport: 512,
  /** How often a node compares what it runs with what the replicated state says, and reports differences. */
  nodeReconcileMs: 100,
  /** The same, for a node runner that is also kicked whenever the state it reads changes, while something is in progress. */
  nodeIdleReconcileMs: 1_000,
  /**
   * The longest a node runner that is kicked on changes waits between rounds while its tasks all run and nothing is
   * in progress (task exits, driver answers and restart delays wake it anyway). A node with no live task does not poll.
   */
  nodeSettledReconcileMs: 10_000,
  /** How often a node asks its drivers whether tasks with a health check are healthy (only while such a task runs). */
  nodeHealthCheckMs: 1_000,
  /** Tasks a node starts or stops at once; the rest wait for a free slot. */
  nodeMaxConcurrentTaskOps: 16,
  /** Largest window of one output stream an Allocations/Logs call returns. */
  allocLogsMaxWindowBytes: 1 * MiB,
  /** Longest an Allocations/Logs call waits for new output. */
  allocLogsMaxWaitMs: 10_000,
  /** Longest a read waits for this agent to apply the log up to the `min_index` it asks for. */
  readMaxMinIndexWaitMs: 10_000,
  /** Evaluations and finished allocations kept in the replicated state per job before the oldest are collected. */
  stateMaxHistoryPerJob: 200,
  /** Virtual addresses (one per service and network, in 127.77.0.0/16) the cluster hands out. */
  stateMaxVips: 60_000,
  /** Shared networks (`shoal network create`) the cluster holds. */
  stateMaxNetworks: 1_024,
  /** Secrets and configs the cluster holds, together. */
  stateMaxFileObjects: 4_096,
  /** Bytes of one secret's or config's contents (Swarm's limit for a secret). */
  fileObjectMaxBytes: 500 * KiB,
  /** Secrets one job declares (top-level `secrets:`), external ones included; the same for configs. */
  jobMaxSecrets: 64,
  jobMaxConfigs: 64,
  /** A service's references to secrets, and separately to configs (one secret may be used at several targets). */
  jobMaxFileRefsPerService: 64,
  /** Bytes of the secrets and configs one job registration carries, together (they go in one Raft entry). */
  jobMaxFileObjectBytes: 1.5 * MiB,

  // --- Agent RPC (HTTP) ----------------------------------------------------------------------------------------
  /** Largest RPC request body the API accepts; checked while the body streams in. */
  maxRpcRequestBytes: 4 * MiB,
  /** Largest RPC response body a client accepts. */
  maxRpcResponseBytes: 64 * MiB,
  /** Deadline of an RPC call when the caller gives none. */
  defaultRpcTimeoutMs: 10_000,
  /** Longest deadline a caller may ask for; longer ones are cut to this. */
  maxRpcTimeoutMs: 300_000,
  /** Time a client has to send its request headers. */
  rpcHeadersTimeoutMs: 10_000,
  /** Tries of one client call that fails on a stale pooled keep-alive connection (EPIPE, ECONNRESET), in a row. */
  rpcStaleConnectionAttempts: 4,
  /** Connections the API serves at once; more are refused. */
  maxRpcConnections: 1_024,

  /** Calls forwarded to other agents (to the Raft leader) waiting for an answer at once. */
  peerRpcMaxPending: 4_096,
  /**
   * How long a forwarded call waits for a link to its peer that is not up yet (an agent that just joined, a link being
   * redialled) before it fails as unreachable; never more than half the call's own deadline.
   */
  peerRpcLinkWaitMs: 3_000,

  /** Tries of a leader-only call (job run, stop...) through an election before its error reaches the caller. */
  leaderRetryAttempts: 4,
  /** Pause before the n-th retry of a leader-only call is n times this (an election takes about one timeout). */
  leaderRetryPauseMs: 250,

  // --- Autopilot (src/runtime/autopilot.ts) -------------------------------------------------------------------------
  /** How long a Raft member must be DEAD in gossip before the leader removes it from the group. */
  autopilotDeadGraceMs: 5_000,
  /** A learner within this many entries of the commit index is caught up and may become a voter. */
  autopilotMaxLagEntries: 16,
  /**
   * Read replicas (non-voting servers, Raft learners) the leader keeps beside the voters, at most. They hold the
   * whole state, serve stale reads and client streams, and are promoted at once when a voter dies. Every other agent
   * is a client and holds no copy of the log. An agent may ask for fewer (`read_replicas`).
   */
  autopilotMaxReadReplicas: 2,

  // --- Clients (src/state/slice.ts, src/runtime/slice-*.ts) ----------------------------------------------------
  /** Longest a server holds a client's slice watch open when nothing in the slice changes (it then answers "no change"). */
  sliceWatchMaxWaitMs: 30_000,
  /** A server subtracts up to this much, drawn at random, from a watch's wait, so clients' watches do not align. */
  sliceWatchJitterMs: 3_000,
  /** Slice watches one server holds open at once; more are refused (the client tries another server). */
  sliceMaxWatchesPerServer: 8_192,
  /** Allocations one slice answer carries, at most; a node with more is sent the rest in the next answers. */
  sliceMaxAllocsPerAnswer: 2_048,
  /** First delay before a client retries a failed watch on another server; doubles per failure, with jitter. */
  sliceRetryBaseMs: 100,
  /** Largest delay between a client's watch retries while no server answers. */
  sliceRetryMaxMs: 2_000,
  /** How often a client checks, during a watch, that gossip still lists its server as an alive server. */
  sliceServerCheckMs: 2_000,

  // --- Service mesh (src/mesh): forwarded connections, service listeners, ingress --------------------------------
  /** Largest chunk of a forwarded connection's bytes sent in one frame. */
  meshChunkBytes: 64 * KiB,
  /**
   * Bytes a stream's sender may have unacknowledged on the peer link (per direction): the receiver grants more as it
   * writes them to its socket, so a slow reader slows its own stream only.
   */
  meshStreamWindowBytes: 512 * KiB,
  /** Forwarded connections open at once between this agent and one peer, in both directions together. */
  meshMaxStreamsPerPeer: 128,
  /** Connections a service listener or an ingress port holds open at once; more are refused at accept. */
  meshMaxConnectionsPerListener: 4_096,
  /** Connections the agent forwards at once, all listeners and streams together. */
  meshMaxConnections: 16_384,
  /** How long opening a connection to a task (local, or through a peer) may take before the next endpoint is tried. */
  meshConnectTimeoutMs: 1_000,
  /**
   * How long the agent waits for a peer to accept a stream (its own connect to the task included) before it tries
   * the next endpoint: a node that died a moment ago still has a link until the link times out.
   */
  meshRemoteOpenTimeoutMs: 1_500,
  /** Endpoints tried for one incoming connection before it is closed (HAProxy's `retries` with `redispatch`). */
  meshMaxConnectAttempts: 3,
  /** How long an endpoint that refused a connection is tried last by this agent. */
  meshFailedEndpointHoldMs: 5_000,
  /** Free ports tried when a process task or a service listener needs one, before giving up. */
  meshMaxPortProbes: 64,
  /** Service listeners and ingress ports one agent holds. */
  meshMaxListeners: 1_024,
  /** Largest DNS query the agent's DNS server reads; longer ones are dropped. */
  meshDnsMaxMessageBytes: 4 * KiB,
  /** Queries for outside names being forwarded at once per service; more get SERVFAIL. */
  meshDnsMaxForwards: 256,
  /** How long a forwarded query waits for a resolver before the next is asked. */
  meshDnsUpstreamTimeoutMs: 2_000,
  /** Resolvers asked for one forwarded query before SERVFAIL. */
  meshDnsMaxUpstreamTries: 3,
  /** Ports the agent hands to process tasks: the default range of `--task-ports`. */
  meshTaskPortsLow: 20_000,
  meshTaskPortsHigh: 29_999,
  /** Addresses of a bridge the agent keeps for its services (the top half of its /24, less the broadcast). */
  meshMaxVipsPerBridge: 127,
  /** Ingress ports taken on a node that its gossip metadata carries (the first, in order); a peer sending more is refused. */
  meshMaxPortsTakenReported: 64,
  /** Bridges one agent creates on its engine (one per Shoal network its containers are on). */
  meshMaxBridges: 64,
  /** Subnets of the pool tried when a bridge is created and the engine finds them taken, before giving up. */
  meshMaxBridgeSubnetTries: 16,
  /** The longest an engine network request or an `ip addr` may take. */
  meshBridgeRequestTimeoutMs: 15_000,

  // --- Logging --------------------------------------------------------------------------------------------------
  /** Longest string field a log line keeps; longer ones are cut. */
  maxLogFieldChars: 4 * KiB,

  // --- systemd notification (src/platform/sd-notify.ts) ---------------------------------------------------------
  /** Longest a `systemd-notify` child may run before it is killed; it normally exits within milliseconds. */
  sdNotifyTimeoutMs: 5_000,

  // --- Partitions (src/partitions: partitioning schemes and the replica state machine, issue 12) ---------------
  // The apply-time checks are part of the replicated semantics: every replica of a partition must run with the same
  // values, or the same command could succeed on one replica and fail on another. Relations between them are asserted
  // by checkLimits() below.
  /** Partitions of one stateful service (uniform `partitions`, or names of a `named` scheme). */
  partitionsMaxPerService: 1_024,
  /**
   * Replicas of one partition (`x-shoal.state.replicas`, odd, from 1): each is a member of the partition's Raft group
   * on a distinct node. An odd count, since an even one tolerates no more failures than the odd count below it.
   */
  partitionReplicasMax: 7,
  /** UTF-8 bytes of a partition key (what routes a call to its partition; a name of a `named` scheme). */
  partitionKeyMaxBytes: 1 * KiB,
  /** UTF-8 bytes of a collection's name. */
  partitionCollectionNameMaxBytes: 256,
  /** Collections (dictionaries and queues together) one partition holds. */
  partitionMaxCollections: 1_024,
  /** UTF-8 bytes of a dictionary key. */
  partitionEntryKeyMaxBytes: 1 * KiB,
  /** Bytes of one value (a dictionary entry's or a queue item's). */
  partitionEntryValueMaxBytes: 1 * MiB,
  /** Operations in one transaction, and separately compares (etcd's default --max-txn-ops). */
  partitionTxnMaxOps: 128,
  /** Bytes of the keys and values one command carries, together (it travels as one Raft entry). */
  partitionCommandMaxBytes: 2 * MiB,
  /** Longest lease a dequeue may ask for (SQS's longest visibility timeout). */
  partitionQueueLeaseMaxMs: 43_200_000,
  /** Entries one scan page returns, at most. */
  partitionScanMaxPageEntries: 1_000,
  /** Bytes of keys and values one scan page returns, at most (a page always holds at least one entry). */
  partitionScanMaxPageBytes: 4 * MiB,
  /** Change records a replica keeps in memory for watchers; a watcher further behind re-reads. */
  partitionChangeWindowEntries: 10_000,
  /**
   * Replica builds (a learner being sent a snapshot and the log) in flight at once across the cluster, every stateful
   * service together: placement (src/partitions/placement.ts) adds no learner beyond it. Promotions, removals and
   * primary transfers move no data and are not counted.
   */
  partitionMaxConcurrentMoves: 8,
  /** Replica builds one node receives at once (its disk and links take the snapshots); placement picks another node. */
  partitionMaxBuildsPerNode: 2,
  /**
   * Commands one client session of a partition may have outstanding (applied but not yet acknowledged by the client
   * as answered). The replica keeps each one's result for a retry; a command beyond the window is refused.
   */
  partitionSessionWindowCommands: 1_024,
  /** How often an agent hosting partition replicas looks at them unasked (membership steps, replicas leaving). */
  partitionReconcileMs: 1_000,
  /** How often an agent whose replicas are all as placed looks at them unasked (state changes kick it anyway). */
  partitionReconcileIdleMs: 5_000,
  /** A partition replica snapshots its database and compacts its Raft log every this many applied entries. */
  partitionSnapshotEveryEntries: 10_000,
  /** Bytes of one chunk of a partition snapshot fetched by a member being rebuilt (one peer RPC answer). */
  partitionSnapshotChunkBytes: 1 * MiB,
  /** A member being rebuilt fetches a snapshot at most this fast (the cap on snapshot bandwidth, per transfer). */
  partitionSnapshotMaxBytesPerSecond: 64 * MiB,
  /** One chunk of a snapshot must arrive within this; a transfer that stalls is abandoned and the primary sends again. */
  partitionSnapshotChunkTimeoutMs: 10_000,
  /** A partition's primary hands over to its preferred primary (spreading primaries over nodes) at most this often. */
  partitionPrimaryBalanceMs: 10_000,
  /** A primary an operator chose (`partition transfer`) is not balanced away for this long. */
  partitionTransferPinMs: 600_000,
  /** A learner within this many entries of the primary's log is promoted to voter. */
  partitionPromoteLagEntries: 64,
  /** Tries of one State call at a partition's members (following leader hints) before it fails unavailable. */
  partitionRouteMaxAttempts: 12,
  /** Pause before the n-th retry of a State call is n times this (an election takes about one election timeout). */
  partitionRouteRetryMs: 25,
  /** Partitions an agent keeps a routing session for (writes it forwards); the least recently opened is forgotten. */
  partitionRouterMaxSessions: 4_096,
  /** A dequeue's lease when the call gives none. */
  partitionDefaultLeaseMs: 30_000,
  /** Client sessions one partition remembers; past it the least recently used is forgotten (its client gets ERR_SESSION_EXPIRED). */
  partitionMaxClientSessions: 10_000,
} as const;

export type Limits = typeof LIMITS;

/** Asserts the relations between limits. Called at agent start-up and by the limits test. */
export function checkLimits(limits: Record<keyof Limits, number> = LIMITS): void {
  for (const [name, value] of Object.entries(limits)) {
    invariant(Number.isSafeInteger(value) && value > 0, `limit ${name} must be a positive integer, got ${value}`);
  }
  invariant(limits.maxEnvelopePayloadBytes + limits.maxGroupIdBytes + 64 <= limits.maxFrameBytes,
    'an envelope with the largest payload and group id must fit in the largest frame');
  invariant(limits.maxFrameBytes < 2 ** (8 * limits.frameHeaderBytes), 'the frame length prefix must be able to express maxFrameBytes');
  invariant(limits.raftElectionTicks > limits.raftHeartbeatTicks, 'the election timeout must be longer than the heartbeat interval');
  invariant(limits.raftMaxAppendBytes <= limits.maxEnvelopePayloadBytes, 'one append message must fit in one envelope');
  invariant(limits.raftMaxInflightBytes >= limits.raftMaxAppendBytes, 'the in-flight window must hold at least one full append');
  invariant(limits.simMaxMessageBytes <= limits.maxFrameBytes, 'the simulator must not accept messages the real wire would refuse');
  invariant(limits.sliceWatchJitterMs < limits.sliceWatchMaxWaitMs, 'a watch\'s jitter must leave part of its wait');
  invariant(limits.sliceWatchMaxWaitMs + 5_000 <= limits.maxRpcTimeoutMs, 'a slice watch, with time to answer, must fit within the longest RPC deadline');
  invariant(limits.sliceRetryBaseMs <= limits.sliceRetryMaxMs, 'the first watch retry delay must not exceed the largest one');
  invariant(limits.defaultRpcTimeoutMs <= limits.maxRpcTimeoutMs, 'the default RPC deadline must not exceed the longest one');
  invariant(limits.nodeReconcileMs <= limits.nodeIdleReconcileMs, 'a node runner that is kicked on changes polls no more often than one that is not');
  invariant(limits.driverDefaultStopGraceMs <= limits.driverMaxStopGraceMs, 'the default stop grace must be one a task may ask for');
  invariant(limits.driverHealthMinIntervalMs <= limits.driverHealthMaxIntervalMs, 'the health-check interval range must not be empty');
  invariant(limits.jobMaxNetworksPerService <= limits.jobMaxNetworks, 'a service cannot be on more networks than its job may have');
  invariant(limits.driverHealthMaxOutputBytes < limits.driverLogMaxFileBytes, 'a health probe keeps less output than a log file holds');
  invariant(limits.transportSendQueueMaxBytes >= limits.maxFrameBytes + limits.frameHeaderBytes, 'a link send queue must hold at least one largest frame');
  invariant(limits.meshMaxStreamsPerPeer * limits.meshStreamWindowBytes <= limits.transportBulkQueueMaxBytes, 'every stream to a peer filling its window must fit in the link\'s bulk queue');
  invariant(limits.meshChunkBytes + 64 <= limits.maxEnvelopePayloadBytes && limits.meshChunkBytes <= limits.meshStreamWindowBytes, 'a mesh chunk must fit in one envelope and in one window');
  invariant(limits.meshRemoteOpenTimeoutMs > limits.meshConnectTimeoutMs, 'a remote open must outlast the peer\'s own connect to the task');
  invariant(limits.meshTaskPortsLow < limits.meshTaskPortsHigh && limits.meshTaskPortsHigh <= 65_535, 'the default task port range must be a range of ports');
  invariant(limits.transportStreamTimeoutMs > 2 * limits.transportKeepAliveMs, 'the stream timeout must allow at least two missed keep-alives');
  invariant(limits.transportRedialBaseMs <= limits.transportRedialMaxMs, 'the first redial delay must not exceed the largest one');
  invariant(limits.transportFirstRefreshMs < limits.transportDiscoveryRefreshMs, 'the early discovery refresh must come before the periodic one');
  invariant(limits.transportLocalRecordsCheckMs < limits.transportDiscoveryRefreshMs, 'local announcements must be read more often than discovery refreshes');
  invariant(limits.membershipMaxMetaBytes + 2 * limits.membershipMaxNodeIdBytes + 256 <= limits.membershipMaxMessageBytes, 'an alive rumour with the largest metadata must fit in one gossip message');
  invariant(limits.membershipMaxMessageBytes <= limits.membershipMaxPushPullBytes, 'a push-pull message may be at least as large as a gossip message');
  invariant(limits.membershipMaxPushPullBytes <= limits.simMaxMessageBytes && limits.membershipMaxPushPullBytes <= limits.maxEnvelopePayloadBytes, 'a push-pull message must fit in one envelope and in the simulated network');
  invariant(limits.membershipMaxMetaBytes + 2 * limits.membershipMaxNodeIdBytes + 256 <= limits.membershipMaxPushPullBytes, 'a push-pull message must hold at least the sender\'s own state');

  invariant(limits.partitionEntryKeyMaxBytes + limits.partitionEntryValueMaxBytes <= limits.partitionCommandMaxBytes,
    'a put of the largest key and value must fit in one partition command');
  invariant(limits.partitionCommandMaxBytes + 64 * KiB <= limits.maxEnvelopePayloadBytes,
    'a partition command, with its framing, must fit in one Raft entry sent in one envelope');
  invariant(Math.ceil(limits.partitionCommandMaxBytes * 4 / 3) + 64 * KiB <= limits.maxRpcRequestBytes,
    'a partition command must fit in one RPC request, even as JSON with base64 values');
  invariant(limits.partitionCommandMaxBytes <= limits.raftMaxUncommittedBytes,
    'a partition command must fit in the bytes a Raft group may have uncommitted');
  invariant(Math.ceil((limits.partitionScanMaxPageBytes + limits.partitionEntryKeyMaxBytes + limits.partitionEntryValueMaxBytes) * 4 / 3) + 64 * KiB <= limits.maxRpcResponseBytes,
    'a full scan page (which may end with one largest entry past its byte budget) must fit in one RPC response');
  invariant(limits.partitionTxnMaxOps <= limits.partitionChangeWindowEntries,
    'the change window must hold every change of one transaction');
  invariant(limits.partitionTxnMaxOps <= limits.partitionScanMaxPageEntries,
    'a watch page, which never splits a transaction\'s changes, is bounded by the page size plus one transaction');
  invariant(limits.partitionEntryKeyMaxBytes <= limits.partitionKeyMaxBytes,
    'an entry\'s key must be usable as its partition key (the default)');
  invariant(limits.partitionMaxBuildsPerNode <= limits.partitionMaxConcurrentMoves,
    'a node cannot receive more replica builds at once than the cluster runs');
  invariant(limits.partitionSnapshotChunkBytes + 64 * KiB <= limits.maxEnvelopePayloadBytes, 'a partition snapshot chunk, with its framing, must fit in one envelope');
  invariant(limits.partitionReplicasMax % 2 === 1, 'the most replicas a partition may have must be odd, as every replica count is');
  invariant(limits.partitionsMaxPerService * limits.partitionReplicasMax <= limits.jobMaxReplicas,
    'a stateful service\'s tasks (partitions x replicas) must not outnumber the replicas a service may have');
}
