/**
 * The agent: one per host, every host the same. It owns the process's real resources (clock, timers, sockets,
 * files) and drives the deterministic cores with them.
 *
 *   start: data dir ─► identity + cluster key ─► transport (private DHT, authenticated links)
 *          ─► membership core ticking on the real clock ─► API (health + RPC)
 *   stop:  leave (gossip it for a moment) ─► API down ─► transport down           (reverse order, idempotent)
 *
 * Effects from the membership core are performed here in the one order that is safe: persist (the incarnation,
 * fsynced), then send, then act on events.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, ShoalError, describeError } from '../lib/errors.js';
import { checkLimits, LIMITS } from '../lib/limits.js';
import { createLogger, type Logger } from '../log/logger.js';
import { systemClock, seededFromEntropy } from '../platform/system-clock.js';
import { MessageType } from '../wire/frame.js';
import { shoal } from '../gen/proto.js';
import { HyperswarmTransport, loadClusterKey, loadOrCreateNodeSeed, type Transport } from '../transport/index.js';
import { AGENT_MEMBERSHIP_CONFIG, Membership, type MembershipEffect, type NodeMeta } from '../membership/index.js';
import { RpcServer, AgentSelf, MembersList, PartitionsSnapshotChunk, OperatorRaftState, OperatorRaftBarrier, SlicesDemote, SlicesWatch, type CallContext, type MethodDescriptor } from '../rpc/index.js';
import type { Fingerprint, TaskDriver } from '../drivers/index.js';
import { bridgesFor, fingerprintDrivers } from './drivers-setup.js';
import { PeerRpc } from './peer-rpc.js';
import { SqliteLogDatabase, type SqliteLogStorage } from '../storage/index.js';
import { bootstrapEntries, type Status } from '../consensus/index.js';
import { ClusterState, type Command } from '../state/index.js';
import type { Random } from '../lib/random.js';
import { RaftGroup } from './raft-group.js';
import { BOOTSTRAP_LABEL, bootstrapDecision, proposalHash } from './bootstrap.js';
import { autopilotStep } from '../autopilot/index.js';
import { readApiToken, type AgentConfig } from './config.js';
import { decodeGossip, encodeGossip } from './gossip-codec.js';
import { AGENT_VERSION } from './version.js';
import { advertisedHost, checkBindable, isServerMember, localMeta, noLeaderError, memberToProto, persistIncarnation, readIncarnation, rolesOf } from './members.js';
import { ControlPlane } from './control-plane.js';
import { NodeRunner } from './node-runner.js';
import type { NodeStateView } from '../node/index.js';
import { SecretVault, TaskFiles, defaultSecretsRoot, type ObjectSource } from './task-files.js';
import { ServiceMesh } from '../mesh/index.js';
import { ServicesRpc } from './services-rpc.js';
import { StatefulPartitions } from './partitions.js';
import { decodeRaft } from './raft-codec.js';
import { SliceClient, type ServerInfo } from './slice-client.js';
import { SliceServer } from './slice-server.js';

/** The membership core is ticked at its next deadline (`nextWakeMs`), at most this long and at least MIN apart. */
export const MEMBERSHIP_MAX_SLEEP_MS = 1_000;
export const MEMBERSHIP_MIN_SLEEP_MS = 2;
/**
 * How often an idle agent checks bootstrap, the leader's scheduling loop, its roles and (leader) autopilot and the
 * node table. Gossip events and Raft changes run a round HOUSEKEEPING_SOON_MS later: this bounds a missed one.
 */
export const HOUSEKEEPING_MS = 1_000;
const HOUSEKEEPING_SOON_MS = 50;
/** How long a leaving agent keeps gossiping so its leave reaches everyone before the links close. */
export const LEAVE_PROPAGATION_MS = 600;
/** The Raft log, hard state and snapshots of the groups this agent serves; only servers have one. */
const RAFT_DB_FILE = 'raft.db';
/** Raft messages that only a leader sends to a member of its group: one of them is what makes an agent a server. */
const LEADER_MESSAGES = new Set(['append', 'heartbeat', 'snapshot']);
/** A candidate's requests: they make an agent a server only while the cluster has no leader yet (it is forming). */
const VOTE_MESSAGES = new Set(['preVote', 'vote']);
const DEMOTE_RETRY_MS = 2_000; // how often the leader may tell one agent again that it is no longer a server
/** The Raft group that replicates the cluster state (jobs, nodes, allocations). */
export const CLUSTER_GROUP = 'cluster';
/** One Raft tick; the election timeout is 10 ticks, drawn in [10, 20) per member: 0.3 to 0.6 s. */
export const RAFT_TICK_MS = 30;
const PROPOSE_TIMEOUT_MS = 5_000;

export interface AgentOptions {
  config: AgentConfig;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
}

export class Agent {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly #env: NodeJS.ProcessEnv;
  readonly #startedAtMs = systemClock.nowMs();
  #transport: HyperswarmTransport | undefined;
  #membership: Membership | undefined;
  #rpc: RpcServer | undefined;
  #tick: NodeJS.Timeout | undefined;
  /** When the membership timer fires next (Infinity when none is set). */
  #tickAtMs = Infinity;
  /** Set once the agent's timers are cleared while stopping: nothing may arm them again. */
  #halted = false;
  #housekeeping: NodeJS.Timeout | undefined;
  #housekeepingSoon: NodeJS.Timeout | undefined;
  /** Raft role, leader, term and membership at the last housekeeping round: an apply that changes them runs one soon. */
  #raftSeen = '';
  #control: ControlPlane | undefined;
  #unsubscribe: (() => void)[] = [];
  #stopping: Promise<void> | undefined;
  #apiAddress = '';
  #drivers = new Map<string, TaskDriver>();
  #fingerprints: Fingerprint[] = [];
  #db: SqliteLogDatabase | undefined;
  #storage: SqliteLogStorage | undefined;
  #raft: RaftGroup | undefined;
  #state = new ClusterState();
  #raftRandom: Random | undefined;
  #bootstrapWaiting = '';
  #reconciling = false;
  readonly #deadSince = new Map<string, number>();
  #peerRpc: PeerRpc | undefined;
  #runner: NodeRunner | undefined;
  #partitions: StatefulPartitions | undefined;
  #sliceClient: SliceClient | undefined;
  #sliceServer: SliceServer | undefined;
  #mesh: ServiceMesh | undefined;
  #services: ServicesRpc | undefined;
  readonly #demotedAt = new Map<string, number>();

  constructor(options: AgentOptions) {
    this.config = options.config;
    this.#env = options.env ?? process.env;
    this.log = options.logger ?? createLogger({ level: options.config.logLevel });
  }

  get nodeId(): string {
    if (!this.#transport) throw new ShoalError('ERR_NOT_STARTED', 'the agent has not started');
    return this.#transport.nodeId;
  }

  get transport(): Transport | undefined {
    return this.#transport;
  }

  get membership(): Membership | undefined {
    return this.#membership;
  }

  get apiAddress(): string {
    return this.#apiAddress;
  }

  /** What each task driver said about itself at start-up (available or not, and why). */
  get fingerprints(): readonly Fingerprint[] {
    return this.#fingerprints;
  }

  /** The usable task drivers, by name. */
  get drivers(): ReadonlyMap<string, TaskDriver> {
    return this.#drivers;
  }

  async start(): Promise<void> {
    checkLimits();
    const c = this.config;
    try {
      mkdirSync(c.dataDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new InvalidArgumentError(`cannot create the data directory ${c.dataDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const clusterKey = loadClusterKey({ ...(c.clusterKeyFile === null ? {} : { file: c.clusterKeyFile }), env: this.#env });
    const vault = new SecretVault(clusterKey);
    const { seed, created } = loadOrCreateNodeSeed(c.dataDir);
    const { seed: randomSeed, random } = seededFromEntropy();
    const transport = new HyperswarmTransport({
      clusterKey, seed, host: c.bind.host, port: c.bind.port,
      bootstrap: c.join.map((j) => `${j.host}:${j.port}`),
      publicDht: c.publicDht, nodeName: c.name, agentVersion: AGENT_VERSION, logger: this.log, random: random.split(),
    });
    this.#transport = transport;
    this.log.info({ node: transport.nodeId, name: c.name, newIdentity: created, seed: randomSeed }, 'agent starting');
    const found = await fingerprintDrivers(c, this.log);
    this.#drivers = found.drivers;
    this.#fingerprints = found.fingerprints;
    await checkBindable(c.bind.host);
    await transport.start();
    const peerAddress = `${advertisedHost(c.bind.host)}:${transport.address().port}`;

    const incarnation = readIncarnation(c.dataDir) + 1;
    const membership = new Membership({ id: transport.nodeId, meta: localMeta(c, [...this.#drivers.keys()], peerAddress, this.log), clock: systemClock, random: random.split(), incarnation, config: AGENT_MEMBERSHIP_CONFIG });
    this.#membership = membership;
    persistIncarnation(c.dataDir, incarnation);

    const mesh = new ServiceMesh({
      nodeId: transport.nodeId, bindHost: c.bind.host, taskPorts: c.taskPorts, dataDir: c.dataDir, transport, logger: this.log,
      balance: c.meshBalance, catalog: () => (this.#raft ? this.#state : this.#sliceClient?.slice),
      localServices: () => (this.#runner?.core.tasks() ?? []).filter((t) => t.phase !== 'dead').map((t) => `${t.jobName}/${t.service}`),
      localTasks: () => this.#runner?.localTasks() ?? [], ...bridgesFor(c, found.drivers),
      onPortsTaken: (ports) => this.#patchMeta((meta) => ({ ...meta, portsTaken: ports })), // shown by `node ls`, `job status`
      peerHealthy: (id) => membership.member(id)?.status === 'alive',
    });
    this.#mesh = mesh;
    this.#unsubscribe.push(
      transport.onLinkDown((nodeId) => mesh.linkDown(nodeId)),
      transport.onMessage(({ from, envelope }) => {
        if (envelope.type === MessageType.MESSAGE_TYPE_STREAM) return mesh.receive(from, envelope.payload);
        if (envelope.type === MessageType.MESSAGE_TYPE_RAFT && envelope.group === CLUSTER_GROUP && !this.#raft) {
          // A leader added this agent to the group (a read replica, maybe later a voter): it becomes a server with an
          // empty log, and the leader sends the rest. Any other Raft message (a stale member's vote request) is not
          // a reason to start holding the log.
          let type: string;
          try {
            type = decodeRaft(envelope.payload, CLUSTER_GROUP).type;
          } catch (err) {
            this.log.warn({ peer: from.slice(0, 16), err: describeError(err) }, 'dropped an invalid raft message');
            return;
          }
          // While the cluster forms, agents that chose the same first voters bootstrap at slightly different moments,
          // and one that saw another set first waits to be added: it must answer the first candidate's (pre-)vote
          // requests with an empty log, or that candidate can never win. Once gossip shows a leader, only the leader's
          // own messages make an agent a server (a removed member's stale vote requests do not).
          const forming = VOTE_MESSAGES.has(type) && !membership.members().some((m) => m.status === 'alive' && m.meta.roles.leader);
          if (!(LEADER_MESSAGES.has(type) || forming) || membership.leaving || this.#stopping) return;
          this.log.info({ leader: from.slice(0, 16) }, 'added to the cluster\'s Raft group: this agent is now a server');
          this.#openStorage();
          this.#startRaft();
          this.#raft!.deliver(envelope.payload, from);
          return;
        }
        if (envelope.type !== MessageType.MESSAGE_TYPE_GOSSIP) return;
        try {
          membership.receive(from, decodeGossip(envelope.payload));
        } catch (err) {
          this.log.warn({ peer: from.slice(0, 16), err: describeError(err) }, 'dropped an invalid gossip message');
          return;
        }
        this.#flush();
      }),
      transport.onLinkUp((link) => {
        if (!membership.member(link.nodeId)) {
          membership.join([link.nodeId]);
          this.#flush();
        }
      }),
    );
    // Links that came up while the transport started, before the handlers above existed: join through them too,
    // or a node whose peers all connected early would never learn of anyone.
    const early = transport.links().map((l) => l.nodeId).filter((id) => !membership.member(id));
    if (early.length > 0) {
      membership.join(early);
      this.#flush();
    }

    this.#raftRandom = random.split();
    this.#sliceServer = new SliceServer({
      logger: this.log, random: random.split(),
      state: () => (this.#raft ? this.#state : undefined),
      raftStatus: () => this.#raft?.status(),
    });
    this.#sliceClient = new SliceClient({
      nodeId: transport.nodeId, logger: this.log, random: random.split(),
      servers: () => this.#servers(),
      call: (nodeId, method, request, timeoutMs, signal) => this.#peerRpc!.call(nodeId, method, request, timeoutMs, signal),
      onChange: () => {
        this.#runner?.kick();
        this.#partitions?.kick();
        this.#catalogChanged();
      },
    });
    // A server keeps its log across restarts; an agent that never was one (a client) has none.
    if (existsSync(join(c.dataDir, RAFT_DB_FILE))) {
      this.#openStorage();
      if (this.#storage!.lastIndex() > 0) this.#startRaft();
      else this.#dropStorage();
    }

    const rpc = new RpcServer({
      host: c.api.host, port: c.api.port, logger: this.log,
      ...(c.apiTokenFile === null ? {} : { token: readApiToken(c.apiTokenFile) }),
      health: () => ({ name: c.name, id: transport.nodeId }),
    });
    rpc.register(AgentSelf, () => shoal.v1.SelfResponse.fromObject({
      member: memberToProto(membership.member(transport.nodeId)!),
      uptimeMs: Math.round(systemClock.nowMs() - this.#startedAtMs),
      apiAddress: this.#apiAddress,
    }));
    rpc.register(OperatorRaftState, (req, ctx) => this.#raftStateRouted(req, ctx));
    rpc.register(SlicesWatch, (req, ctx) => this.#sliceServer!.watch(req, ctx));
    rpc.register(SlicesDemote, (req, ctx) => this.#demoted(req, ctx));
    rpc.register(OperatorRaftBarrier, (req, ctx) => this.#leaderOnly(OperatorRaftBarrier, req, ctx, async (raft) => {
      const result = await this.#proposeOrExplain(raft, { type: 'barrier' }, ctx);
      return shoal.v1.RaftBarrierResponse.fromObject({ index: result.index ?? 0, leaderId: transport.nodeId });
    }));
    rpc.register(MembersList, (req) => {
      const wanted = new Set(req.statuses ?? []);
      const members = membership.members().map(memberToProto).filter((m) => wanted.size === 0 || wanted.has(m.status!));
      members.sort((a, b) => (a.name! < b.name! ? -1 : a.name! > b.name! ? 1 : 0));
      return shoal.v1.ListMembersResponse.fromObject({ members });
    });
    const control = new ControlPlane({
      nodeId: transport.nodeId, logger: this.log, random: random.split(), vault,
      state: () => this.#state, raft: () => this.#raft, runner: () => this.#runner,
      slice: () => (this.#raft ? undefined : this.#sliceClient!.slice),
      pickServer: () => this.#sliceClient!.pickServer(),
      leaderHint: () => this.#leaderHint(),
      leaderOnly: (method, request, ctx, local) => this.#leaderOnly(method, request, ctx, local),
      propose: (raft, command, ctx) => this.#proposeOrExplain(raft, command, ctx) as never,
      callPeer: (nodeId, method, request, timeoutMs) => this.#peerRpc!.call(nodeId, method, request, timeoutMs),
    });
    control.register(rpc);
    this.#services = new ServicesRpc({
      catalog: () => (this.#raft ? this.#state : this.#sliceClient?.slice),
      listeners: () => mesh.status(),
      nodeName: (id) => membership.member(id)?.meta.name ?? this.#state.node(id)?.name ?? id.slice(0, 12),
    });
    this.#services.register(rpc);
    const bound = await rpc.start();
    this.#rpc = rpc;
    this.#apiAddress = `${bound.address}:${bound.port}`;
    if (c.api.port === 0) {
      // The API port was picked now: gossip the real one.
      this.#patchMeta((meta) => ({ ...meta, addresses: [peerAddress, `${advertisedHost(c.api.host)}:${bound.port}`] }));
    }
    this.#peerRpc = new PeerRpc(transport, this.log, (method, body, timeoutMs, from) => rpc.dispatch(method, body, timeoutMs, from), [PartitionsSnapshotChunk as MethodDescriptor<unknown, unknown>]);
    this.#peerRpc.start();
    this.#runner = new NodeRunner({
      nodeId: transport.nodeId, nodeName: c.name, dataDir: c.dataDir, drivers: this.#drivers, logger: this.log,
      state: () => this.#nodeView(), fresh: () => this.#fresh(), report: (updates) => control.reportLocal(updates),
      // Kicked whenever the state it reads changes (applies on a server, slice answers on a client).
      reconcileMs: LIMITS.nodeIdleReconcileMs,
      network: mesh, files: new TaskFiles({ root: c.secretsDir ?? defaultSecretsRoot(), nodeId: transport.nodeId, vault }),
    });
    this.#partitions = new StatefulPartitions({
      nodeId: transport.nodeId, dataDir: c.dataDir, transport, random: random.split(), logger: this.log, tickMs: RAFT_TICK_MS,
      nodeView: () => this.#nodeView(), fresh: () => this.#fresh(), fullState: () => (this.#raft ? this.#state : undefined),
      report: (updates) => control.reportLocal(updates), pickServer: () => this.#sliceClient!.pickServer(),
      memberAlive: (id) => this.#membership?.member(id)?.status === 'alive',
      callPeer: (nodeId, method, request, timeoutMs) => this.#peerRpc!.call(nodeId, method, request, timeoutMs),
    });
    this.#partitions.register(rpc);
    this.#control = control;
    await mesh.start();
    await this.#runner.start();
    if (!this.#raft) this.#sliceClient.start();
    this.#scheduleTick();
    if (!this.#raft) this.#maybeBootstrap();
    this.#housekeeping = setInterval(() => this.#housekeep(), HOUSEKEEPING_MS);
    this.log.info({ node: transport.nodeId, peer: peerAddress, api: this.#apiAddress, incarnation }, 'agent ready');
  }

  /** What this node runs from: a server its copy of the whole state, a client its slice. */
  #nodeView(): NodeStateView & ObjectSource {
    return this.#raft ? this.#state : this.#sliceClient!.slice;
  }

  /** True once the node's view has caught up with the leader (acting on an old one would undo newer decisions). */
  #fresh(): boolean {
    if (!this.#raft) return this.#sliceClient!.fresh;
    const st = this.#raft.status();
    return st.leader !== undefined && st.applied >= st.commit && this.#state.index > 0;
  }

  /** Leaves the cluster (when `leave`), then stops everything in reverse order. Idempotent. */
  stop(options: { leave?: boolean } = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.leave ?? true);
    return this.#stopping;
  }

  async #stop(leave: boolean): Promise<void> {
    const membership = this.#membership;
    this.#runner?.stop();
    const sliceStopped = this.#sliceClient?.stop();
    if (leave && membership && this.#tickAtMs !== Infinity) {
      membership.leave();
      this.#flush();
      // A node that left has its allocations placed elsewhere: stop its tasks rather than leave duplicates behind.
      await Promise.all([this.#runner?.stopAll(), new Promise((resolve) => setTimeout(resolve, LEAVE_PROPAGATION_MS))]);
    }
    this.#halted = true;
    if (this.#tick) clearTimeout(this.#tick);
    this.#tick = undefined;
    this.#tickAtMs = Infinity;
    if (this.#housekeeping) clearInterval(this.#housekeeping);
    this.#housekeeping = undefined;
    if (this.#housekeepingSoon) clearTimeout(this.#housekeepingSoon);
    this.#housekeepingSoon = undefined;
    this.#peerRpc?.stop();
    await sliceStopped;
    this.#sliceServer?.wakeAll();
    this.#partitions?.stop();
    this.#raft?.stop();
    this.#db?.close();
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    await this.#rpc?.stop();
    await this.#mesh?.stop({ removeBridges: leave }); // a node that left stopped its containers: their bridges go too
    await this.#transport?.stop();
    this.log.info({ left: leave }, 'agent stopped');
  }

  /**
   * Arms the membership timer for the core's next deadline (bounded both ways), earlier or later than it was armed.
   * Called after every tick and input: a message can bring the deadline forward, or end the probe it was armed for.
   */
  #scheduleTick(): void {
    const membership = this.#membership;
    if (!membership || this.#halted) return;
    const now = systemClock.nowMs();
    const at = Math.min(Math.max(membership.nextWakeMs(), now + MEMBERSHIP_MIN_SLEEP_MS), now + MEMBERSHIP_MAX_SLEEP_MS);
    if (this.#tick && this.#tickAtMs <= at && this.#tickAtMs >= at - MEMBERSHIP_MIN_SLEEP_MS) return;
    if (this.#tick) clearTimeout(this.#tick);
    this.#tickAtMs = at;
    this.#tick = setTimeout(() => {
      this.#tick = undefined;
      this.#tickAtMs = Infinity;
      membership.tick();
      this.#flush();
    }, Math.max(0, at - now));
  }

  /** After entries were applied here: the leader plans, the node runner reconciles, slice watches wake. */
  #onApplied(): void {
    this.#control?.kick();
    this.#runner?.kick();
    this.#partitions?.kick();
    this.#catalogChanged();
    const st = this.#raft?.status();
    if (st && raftKey(st) !== this.#raftSeen) this.#housekeepSoon();
  }

  /** The catalog may have changed (an apply here, a slice answer): the mesh and blocking catalog queries look again. */
  #catalogChanged(): void {
    this.#mesh?.refresh();
    this.#services?.changed();
  }

  #housekeep(): void {
    if (this.#halted || !this.#membership) return;
    const st = this.#raft?.status();
    this.#raftSeen = st ? raftKey(st) : '';
    if (!this.#raft && !this.#leaderHint()) this.#maybeBootstrap();
    this.#control?.kick();
    this.#reconcileNodes();
  }

  #housekeepSoon(): void {
    if (this.#housekeepingSoon || this.#halted) return;
    this.#housekeepingSoon = setTimeout(() => ((this.#housekeepingSoon = undefined), this.#housekeep()), HOUSEKEEPING_SOON_MS);
  }

  /** Persist, then send, then act on events: a refutation must never go out at an incarnation a restart could reuse. */
  #flush(): void {
    const membership = this.#membership;
    const transport = this.#transport;
    if (!membership || !transport) return;
    const effects: MembershipEffect[] = membership.drainEffects();
    for (const e of effects) if (e.kind === 'persist') persistIncarnation(this.config.dataDir, e.incarnation);
    for (const e of effects) {
      if (e.kind !== 'send') continue;
      // Probes and rumours as datagrams (SWIM expects loss); push-pull on the stream. No link: dial it, probe missed.
      const result = transport.send(e.to, { type: MessageType.MESSAGE_TYPE_GOSSIP, payload: encodeGossip(e.message), unreliable: e.message.kind !== 'push-pull' });
      if (!result.ok) transport.connect(e.to);
    }
    for (const e of effects) {
      if (e.kind !== 'event') continue;
      const { kind, member } = e.event;
      if (member.id === transport.nodeId) continue;
      // Someone joined, left, died or changed its roles: bootstrap, autopilot and the node table look again.
      this.#housekeepSoon();
      this.log.info({ member: member.meta.name || member.id.slice(0, 16), id: member.id.slice(0, 16), status: member.status, incarnation: member.incarnation }, `member ${kind}`);
      if (kind === 'joined' || kind === 'alive') transport.connect(member.id);
      if (kind === 'left' || kind === 'reaped') transport.forget(member.id);
      // A quiet Raft group has no heartbeats to miss: gossip's failure detector stands in for them.
      if (kind === 'suspect' || kind === 'dead' || kind === 'left') {
        this.#raft?.memberUnreachable(member.id);
        this.#partitions?.memberUnreachable(member.id);
        this.#mesh?.peerUnreachable(member.id);
      } else {
        this.#raft?.memberReachable(member.id);
        this.#partitions?.memberReachable(member.id);
      }
    }
    this.#scheduleTick();
  }

  /** The replicated cluster state as this agent has applied it. */
  get clusterState(): ClusterState {
    return this.#state;
  }

  get raft(): RaftGroup | undefined {
    return this.#raft;
  }

  #maybeBootstrap(): void {
    const membership = this.#membership!;
    if (membership.leaving) return;
    const decision = bootstrapDecision(membership.id, membership.members(), this.config.bootstrapExpect);
    if (!decision.voters) {
      if (decision.waiting !== this.#bootstrapWaiting) this.log.info({ reason: decision.waiting }, 'cluster not bootstrapped yet');
      this.#bootstrapWaiting = decision.waiting ?? '';
      this.#advertiseBootstrap(decision.advertise);
      return;
    }
    const voters = decision.voters;
    this.#openStorage();
    this.#storage!.save({ entries: bootstrapEntries(voters), hardState: { term: 1, vote: undefined, commit: voters.length } });
    this.log.info({ voters: voters.map((v) => v.slice(0, 16)) }, 'bootstrapped the cluster\'s Raft group');
    this.#startRaft();
  }

  /** Gossips this agent's bootstrap proposal (or that it is in the group) in the reserved label. */
  #advertiseBootstrap(value: string): void {
    const self = this.#membership?.member(this.#membership.id);
    if (!self || (self.meta.labels[BOOTSTRAP_LABEL] ?? '') === value) return;
    const { [BOOTSTRAP_LABEL]: _old, ...labels } = self.meta.labels;
    this.#patchMeta((meta) => ({ ...meta, labels: value === '' ? labels : { ...labels, [BOOTSTRAP_LABEL]: value } }));
  }

  /** Changes this agent's gossiped metadata (not while it leaves) and sends the news at once. */
  #patchMeta(change: (meta: NodeMeta) => NodeMeta): void {
    const membership = this.#membership;
    const self = membership?.member(membership.id);
    if (!membership || !self || membership.leaving) return;
    membership.updateMeta(change(self.meta));
    this.#flush();
  }

  /** Opens (creating it if needed) this agent's Raft log: only a server has one. */
  #openStorage(): void {
    if (this.#storage) return;
    this.#db ??= new SqliteLogDatabase(join(this.config.dataDir, RAFT_DB_FILE), { logger: this.log });
    this.#storage = this.#db.openGroup(CLUSTER_GROUP);
  }

  /** Closes the Raft log and deletes its files: a client holds no copy of the log. */
  #dropStorage(): void {
    this.#storage = undefined;
    this.#db?.close();
    this.#db = undefined;
    const file = join(this.config.dataDir, RAFT_DB_FILE);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  }

  /**
   * Stops serving the log and becomes a client: the Raft group stops, the log is deleted, and the node's slice is
   * streamed from a server from now on. Tasks keep running: the slice names the same allocations.
   */
  #becomeClient(reason: string): void {
    const raft = this.#raft;
    if (!raft || this.#stopping) return;
    this.log.info({ reason }, 'this agent is no longer a server: dropping its copy of the log and becoming a client');
    raft.stop();
    this.#raft = undefined;
    this.#dropStorage();
    this.#state = new ClusterState();
    this.#sliceServer?.wakeAll();
    this.#sliceClient?.start();
    this.#reconcileNodes();
  }

  /** `shoal.v1.Slices/Demote`: the leader says this agent is no longer in the Raft group. */
  #demoted(req: shoal.v1.DemoteRequest, ctx: CallContext): shoal.v1.DemoteResponse {
    if (!ctx.forwardedFrom) throw new ShoalError('ERR_PERMISSION_DENIED', 'only the Raft leader demotes a server, over the peer network');
    const raft = this.#raft;
    if (!raft) return shoal.v1.DemoteResponse.fromObject({ demoted: false });
    const st = raft.status();
    // Only the leader of this agent's term or a later one; a deposed leader's word is stale.
    const stale = Number(req.term) < st.term || (st.leader !== undefined && st.leader !== ctx.forwardedFrom && Number(req.term) === st.term);
    if (st.role === 'leader' || stale) {
      this.log.info({ from: ctx.forwardedFrom.slice(0, 16), term: Number(req.term), ourTerm: st.term }, 'ignored a stale demotion');
      return shoal.v1.DemoteResponse.fromObject({ demoted: false });
    }
    this.#becomeClient(`the leader (term ${Number(req.term)}) removed it from the Raft group`);
    return shoal.v1.DemoteResponse.fromObject({ demoted: true });
  }

  /** The alive servers as gossip shows them, this agent excluded. */
  #servers(): ServerInfo[] {
    const membership = this.#membership;
    if (!membership) return [];
    return membership.members()
      .filter((m) => m.id !== membership.id && m.status === 'alive' && isServerMember(m))
      .map((m) => ({ id: m.id, leader: m.meta.roles.leader }));
  }

  /** The leader as this agent knows it: from its own Raft group, else from its server's answers, else gossip. */
  #leaderHint(): string | undefined {
    if (this.#raft) return this.#raft.status().leader;
    const fromSlice = this.#sliceClient?.leader;
    const membership = this.#membership;
    const alive = (id: string): boolean => membership?.member(id)?.status === 'alive';
    if (fromSlice && alive(fromSlice)) return fromSlice;
    return membership?.members().find((m) => m.status === 'alive' && m.meta.roles.leader)?.id;
  }

  #startRaft(): void {
    void this.#sliceClient?.stop();
    const group = new RaftGroup({
      group: CLUSTER_GROUP, nodeId: this.#transport!.nodeId, storage: this.#storage!, transport: this.#transport!, random: this.#raftRandom!,
      tickMs: RAFT_TICK_MS, electionTicks: 10, snapshotEveryEntries: 10_000, logger: this.log, quiesce: true,
      stateMachine: {
        apply: (entry) => {
          const result = { ...this.#state.apply(entry.index, JSON.parse(new TextDecoder().decode(entry.data)) as Command), index: entry.index };
          this.#sliceServer?.applied();
          return result;
        },
        snapshot: () => new TextEncoder().encode(JSON.stringify(this.#state.snapshot())),
        restore: (data) => {
          this.#state = ClusterState.restore(JSON.parse(new TextDecoder().decode(data)));
          this.#sliceServer?.wakeAll();
        },
      },
    });
    this.#raft = group;
    group.onApplied(() => this.#onApplied());
    group.start();
    const voters = this.#storage!.entries(this.#storage!.firstIndex(), Math.min(this.#storage!.lastIndex(), this.#storage!.firstIndex() + 6) + 1, Infinity)
      .filter((e) => e.type === 'conf' && e.conf?.type === 'addVoter').map((e) => e.conf!.member);
    this.#advertiseBootstrap(`done:${voters.length > 0 ? proposalHash(voters) : 'joined'}`);
  }

  /** Roles gossiped with membership follow the Raft group; the leader keeps the node table in step with gossip. */
  #reconcileNodes(): void {
    const membership = this.#membership;
    const raft = this.#raft;
    if (!membership || membership.leaving) return;
    const status = raft?.status();
    const self = membership.member(membership.id);
    const voter = status?.voters.includes(membership.id) ?? false;
    const leader = status?.role === 'leader';
    const replica = !voter && raft !== undefined;
    if (self && (self.meta.roles.voter !== voter || self.meta.roles.leader !== leader || (self.meta.roles.replica === true) !== replica)) {
      this.#patchMeta((meta) => ({ ...meta, roles: { voter, leader, ...(replica ? { replica } : {}) } }));
    }
    if (!raft || !status || !leader || this.#reconciling) return;
    this.#autopilot();
    this.#demoteStale(status);
    const commands: Command[] = [];
    for (const m of membership.members()) {
      const rec = this.#state.node(m.id);
      const node = {
        id: m.id, name: m.meta.name, address: m.meta.addresses[0] ?? '', labels: m.meta.labels,
        capacity: { cpuMillicores: m.meta.resources.cpuMillicores, memoryBytes: m.meta.resources.memoryBytes }, drivers: m.meta.drivers,
        roles: rolesOf(m), ...(m.meta.portsTaken?.length ? { portsTaken: m.meta.portsTaken } : {}),
      };
      if (m.status === 'alive' && (!rec || rec.status !== 'ready' || JSON.stringify({ ...node }) !== JSON.stringify({ id: rec.id, name: rec.name, address: rec.address, labels: rec.labels, capacity: rec.capacity, drivers: rec.drivers, roles: rec.roles, ...(rec.portsTaken?.length ? { portsTaken: rec.portsTaken } : {}) }))) {
        commands.push({ type: 'node.upsert', node });
      } else if (rec && m.status === 'dead' && rec.status === 'ready') {
        commands.push({ type: 'node.status', nodeId: m.id, status: 'down' });
      } else if (rec && m.status === 'left' && rec.status !== 'left') {
        commands.push({ type: 'node.status', nodeId: m.id, status: 'left' });
      }
    }
    if (commands.length === 0) return;
    this.#reconciling = true;
    Promise.all(commands.map((c) => raft.propose(new TextEncoder().encode(JSON.stringify(c)), { timeoutMs: PROPOSE_TIMEOUT_MS }))).then(
      () => undefined,
      (err: unknown) => this.log.debug({ err: describeError(err) }, 'node table update did not commit; retrying'),
    ).finally(() => {
      this.#reconciling = false;
    });
  }

  /**
   * Tells every alive agent that gossips a server role but is not in the Raft group (autopilot removed it, maybe
   * while it was down) to drop its log and become a client. Not while a membership change is in flight.
   */
  #demoteStale(status: Status): void {
    const membership = this.#membership!;
    if (status.applied < status.lastIndex) return;
    const inGroup = new Set([...status.voters, ...status.learners]);
    const now = systemClock.nowMs();
    for (const m of membership.members()) {
      if (m.id === membership.id || m.status !== 'alive' || !isServerMember(m) || inGroup.has(m.id)) continue;
      if (now - (this.#demotedAt.get(m.id) ?? -Infinity) < DEMOTE_RETRY_MS) continue;
      this.#demotedAt.set(m.id, now);
      this.log.info({ member: m.meta.name || m.id.slice(0, 16) }, 'autopilot: telling an agent that is no longer a server to become a client');
      this.#peerRpc!.call(m.id, SlicesDemote, shoal.v1.DemoteRequest.fromObject({ term: status.term, commitIndex: status.commit }), LIMITS.defaultRpcTimeoutMs).then(
        () => undefined,
        (err: unknown) => this.log.debug({ member: m.id.slice(0, 16), err: describeError(err) }, 'demotion not delivered; retrying'),
      );
    }
    for (const id of [...this.#demotedAt.keys()]) if (inGroup.has(id) || !membership.member(id)) this.#demotedAt.delete(id);
  }

  /**
   * Serves a call that only the Raft leader can serve: here when this agent leads, else forwarded to the leader over
   * the peer network. Without a leader it fails at once, saying whether the cluster has lost its quorum.
   */
  /**
   * Serves a call only the leader can serve, here or at the leader. An election under way (the leader lost its place
   * between the check and the proposal, or the one forwarded to no longer leads) is waited out and the call tried
   * again, a few times within its deadline: what reached no leader was not applied.
   */
  async #leaderOnly<Req, Res>(method: MethodDescriptor<Req, Res>, request: Req, ctx: CallContext, local: (raft: RaftGroup) => Promise<Res>): Promise<Res> {
    const deadline = Date.now() + ctx.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#leaderOnlyOnce(method, request, { ...ctx, timeoutMs: Math.max(1, deadline - Date.now()) }, local);
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        const pauseMs = LIMITS.leaderRetryPauseMs * attempt;
        if (ctx.forwardedFrom || attempt >= LIMITS.leaderRetryAttempts || !LEADER_CHANGE_CODES.has(code) || Date.now() + pauseMs * 2 > deadline) throw err;
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    }
  }

  async #leaderOnlyOnce<Req, Res>(method: MethodDescriptor<Req, Res>, request: Req, ctx: CallContext, local: (raft: RaftGroup) => Promise<Res>): Promise<Res> {
    const raft = this.#raft;
    if (!raft) {
      // A client: straight to the leader it knows of (from its server, or gossip).
      const leader = this.#leaderHint();
      if (ctx.forwardedFrom) throw new ShoalError('ERR_NOT_LEADER', 'this agent is a client, not the leader; retry');
      if (!leader) {
        throw new ShoalError('ERR_NO_LEADER', this.#bootstrapWaiting && this.#servers().length === 0
          ? `the cluster has no leader yet: ${this.#bootstrapWaiting}`
          : 'this agent is a client and knows of no leader right now (an election, or every server is unreachable); retry in a moment');
      }
      return this.#peerRpc!.call(leader, method, request, Math.max(1, ctx.timeoutMs - Math.min(50, ctx.timeoutMs / 10)));
    }
    const status = raft.status();
    if (status.role === 'leader') return local(raft);
    if (ctx.forwardedFrom) throw new ShoalError('ERR_NOT_LEADER', `this agent is no longer the leader (term ${status.term}); retry`);
    if (!status.leader) throw noLeaderError(this.#membership!, status.term, status.voters);
    // Keep a little of the deadline to answer with the leader's error rather than a bare timeout.
    return this.#peerRpc!.call(status.leader, method, request, Math.max(1, ctx.timeoutMs - Math.min(50, ctx.timeoutMs / 10)));
  }

  /** Proposes a state command; a timeout is reported as what it most likely is (no quorum), with the counts. */
  async #proposeOrExplain(raft: RaftGroup, command: Command, ctx: CallContext): Promise<{ ok: boolean; index?: number }> {
    try {
      // Leave a little of the caller's deadline to explain a timeout (no quorum) before the RPC layer cuts it off.
      const timeoutMs = Math.max(1, ctx.timeoutMs - Math.min(100, ctx.timeoutMs / 5));
      return (await raft.propose(new TextEncoder().encode(JSON.stringify(command)), { timeoutMs })) as { ok: boolean; index?: number };
    } catch (err) {
      if (err instanceof ShoalError && err.code === 'ERR_DEADLINE_EXCEEDED') {
        const st = raft.status();
        const noQuorum = noLeaderError(this.#membership!, st.term, st.voters);
        if (noQuorum.code === 'ERR_NO_QUORUM') throw noQuorum;
      }
      throw err;
    }
  }

  /** One membership change per round, decided by autopilotStep from what gossip and the leader's progress say. */
  #autopilot(): void {
    const membership = this.#membership!;
    const raft = this.#raft!;
    const now = systemClock.nowMs();
    for (const m of membership.members()) {
      if (m.status === 'dead') {
        if (!this.#deadSince.has(m.id)) this.#deadSince.set(m.id, now);
      } else this.#deadSince.delete(m.id);
    }
    const change = autopilotStep({
      self: membership.id, status: raft.status(), members: membership.members(), deadSinceMs: this.#deadSince, nowMs: now,
      graceMs: LIMITS.autopilotDeadGraceMs, maxLagEntries: LIMITS.autopilotMaxLagEntries,
      readReplicas: this.config.readReplicas, zoneLabel: this.config.failureDomainLabel,
    });
    if (!change) return;
    try {
      raft.changeMembership(change);
      this.log.info({ change: change.type, member: membership.member(change.member)?.meta.name || change.member.slice(0, 16) }, 'autopilot: membership change proposed');
    } catch (err) {
      // One change at a time, and only once the leader has committed in its term: the next round retries.
      this.log.debug({ err: describeError(err) }, 'autopilot: change not proposed now');
    }
  }

  /** On a server, its own view; on a client, a server's, forwarded (the CLI works the same against any agent). */
  async #raftStateRouted(req: shoal.v1.RaftStateRequest, ctx: CallContext): Promise<shoal.v1.RaftStateResponse> {
    const membership = this.#membership!;
    if (this.#raft || req.local || ctx.forwardedFrom) return this.#raftState();
    const server = this.#sliceClient!.pickServer();
    if (!server) return this.#raftState();
    const res = await this.#peerRpc!.call(server, OperatorRaftState, shoal.v1.RaftStateRequest.fromObject({ local: true }), Math.max(1, ctx.timeoutMs - Math.min(50, ctx.timeoutMs / 10)));
    res.agentRole = 'client';
    res.answeredBy = membership.member(server)?.meta.name ?? server.slice(0, 16);
    return res;
  }

  #raftState(): shoal.v1.RaftStateResponse {
    const raft = this.#raft;
    const membership = this.#membership!;
    const clients = membership.members().filter((m) => m.status === 'alive' && !isServerMember(m)).length;
    if (!raft) {
      const waiting = this.#bootstrapWaiting || (this.#servers().length > 0 ? 'this agent is a client: no server answered' : 'not a member of the cluster\'s Raft group yet');
      return shoal.v1.RaftStateResponse.fromObject({ member: false, waiting, agentRole: 'client', clients });
    }
    const st = raft.status();
    const name = (id: string | undefined): string => (id ? membership.member(id)?.meta.name ?? '' : '');
    const peers = [...st.voters.map((id) => ({ id, voter: true })), ...st.learners.map((id) => ({ id, voter: false }))].map((p) => ({
      id: p.id, name: name(p.id), voter: p.voter, matchIndex: st.progress[p.id]?.match ?? 0,
    }));
    return shoal.v1.RaftStateResponse.fromObject({
      member: true, term: st.term, leaderId: st.leader ?? '', leaderName: name(st.leader), role: st.role,
      commitIndex: st.commit, appliedIndex: st.applied, lastIndex: st.lastIndex, peers,
      agentRole: 'server', answeredBy: membership.member(membership.id)?.meta.name ?? '', clients, quiesced: st.quiesced,
    });
  }
}

/** Answers that mean "no leader right now, or not this one": a call that got one was not applied, and may be retried. */
const LEADER_CHANGE_CODES = new Set(['ERR_RAFT_NOT_LEADER', 'ERR_NOT_LEADER', 'ERR_NO_LEADER', 'ERR_RAFT_PROPOSAL_DROPPED']);

/** What housekeeping acts on from the Raft status: a change of it (an election, a committed membership change) runs a round soon. */
const raftKey = (st: Status): string => `${st.role}/${st.leader ?? ''}/${st.term}/${st.voters.length}/${st.learners.length}`;
