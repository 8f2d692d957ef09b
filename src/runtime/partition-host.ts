/**
 * The partition replicas this agent hosts (issue 12): one `PartitionReplica` per allocation of a stateful service
 * placed on this node, started, kept in its group, and let go of when the placement moves it.
 *
 *   kick() (the state changed) / timer ─► #reconcile():
 *     an allocation to run here             ─► host its replica (a first placement bootstraps the group with the
 *                                               nodes the scheduler placed together: `alloc.bootstrap`)
 *     a replica this node leads (primary)   ─► one membership step towards the placement (src/partitions/membership)
 *     an allocation stopped by the leader   ─► keep serving until the group no longer counts this node (the primary
 *                                               removes it once the replacement is a voter), then drop the replica's
 *                                               files and report the allocation complete
 *     the job stopped or gone               ─► drop the replica at once (every replica of the group is going)
 *
 * The Raft logs of every hosted partition share one database, `<data-dir>/partitions/raft.db`, opened when the first
 * replica starts (an agent that hosts none has no such file); the state of each is its own database beside it.
 * A stateful service without a task has nothing for the node runner to start: this host reports its allocations
 * `running` once the replica runs.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describeError, ShoalError } from '../lib/errors.js';
import { writeFileDurably } from '../platform/durable-file.js';
import { LIMITS } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { Logger } from '../log/logger.js';
import type { Transport } from '../transport/index.js';
import { bootstrapEntries } from '../consensus/index.js';
import { SqliteLogDatabase } from '../storage/index.js';
import type { ServiceSpec } from '../jobspec/types.js';
import type { NodeStateView } from '../node/index.js';
import { isStoreOnly, type AllocUpdate, type Allocation } from '../state/index.js';
import { caughtUp, nextMembershipStep, preferredPrimary, type MembershipStep } from '../partitions/membership.js';
import { groupOfFileName, PartitionReplica, replicaFileName, type FetchSnapshotChunk } from './partition-replica.js';

/** The Raft group of one partition of one stateful service; the job's create index keeps a re-created job's data apart. */
export function partitionGroup(job: string, jobCreateIndex: number, service: string, partition: number): string {
  return `p/${job}.${jobCreateIndex}/${service}/${partition}`;
}


/** Where a partition's replicas are placed: the nodes of its live allocations. */
export interface PartitionPlacement {
  /** Nodes that should be members (allocations to run, not terminal). */
  members: string[];
  /** Nodes whose allocation was stopped but is not terminal yet (members on their way out). */
  leaving?: string[];
}

export interface PartitionHostOptions {
  nodeId: string;
  dataDir: string;
  transport: Transport;
  random: Random;
  logger: Logger;
  tickMs: number;
  /** This node's allocations and the jobs they belong to (a server's state, a client's slice). */
  state: () => NodeStateView;
  /** True when the state has caught up with the leader (acting on an old one could drop a replica still placed). */
  fresh: () => boolean;
  /** The placement of every partition of a stateful service, by partition number. */
  placement: (job: string, service: string) => Promise<Map<number, PartitionPlacement> | undefined>;
  report: (updates: AllocUpdate[]) => Promise<void>;
  /** Gossip's view of a node: a preferred primary that is not alive is not handed anything. */
  memberAlive: (nodeId: string) => boolean;
  /** Fetches a chunk of a snapshot from the agent that refers to it (a member being rebuilt). */
  fetchSnapshotChunk: FetchSnapshotChunk;
  /** Asks another agent whether it counts `member` in `group` (undefined: it does not host the group or cannot tell). */
  askMembership: (nodeId: string, group: string, member: string) => Promise<boolean | undefined>;
}

interface Hosted {
  group: string;
  job: string;
  service: string;
  partition: number;
  replica: PartitionReplica;
  allocId: string;
  storeOnly: boolean;
  reported: string;
}

export class PartitionHost {
  readonly #o: PartitionHostOptions;
  readonly #log: Logger;
  readonly #hosted = new Map<string, Hosted>();
  #logs: SqliteLogDatabase | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #again = false;
  #stopped = false;
  /** The last pass left something to finish soon (see #arm). */
  #busy = false;
  /** Placements asked during the current pass. */
  readonly #placements = new Map<string, Promise<Map<number, PartitionPlacement> | undefined>>();
  /** Orphaned replica files were looked for (once per start). */
  #swept = false;
  /** When each group's primary last handed over to its preferred primary. */
  readonly #balancedAtMs = new Map<string, number>();
  /** Groups an operator handed to this node (`partition transfer`): not balanced away before this time. */
  readonly #pinnedUntilMs = new Map<string, number>();

  constructor(options: PartitionHostOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'partitions' });
  }

  get dir(): string {
    return join(this.#o.dataDir, 'partitions');
  }

  /** The replica of `group` if this agent hosts it. */
  replica(group: string): PartitionReplica | undefined {
    return this.#hosted.get(group)?.replica;
  }

  hostedGroups(): string[] {
    return [...this.#hosted.keys()];
  }

  /** The state may have changed: look again (coalesced; at most one pass runs at a time). */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    void this.#reconcile()
      .catch((err: unknown) => this.#log.warn({ err: describeError(err) }, 'partition reconcile failed; retrying'))
      .finally(() => {
        this.#running = false;
        if (this.#stopped) return;
        if (this.#again) {
          this.#again = false;
          setImmediate(() => this.kick());
        } else this.#arm();
      });
  }

  /** An operator made this node the primary of `group`: keep it, rather than hand it back to the preferred one. */
  pin(group: string): void {
    if (this.#pinnedUntilMs.size >= LIMITS.partitionRouterMaxSessions) this.#pinnedUntilMs.clear();
    this.#pinnedUntilMs.set(group, Date.now() + LIMITS.partitionTransferPinMs);
  }

  /** The failure detector suspects `nodeId`: quiet groups led by it wake and elect another primary. */
  memberUnreachable(nodeId: string): void {
    for (const h of this.#hosted.values()) h.replica.raft.memberUnreachable(nodeId);
  }

  memberReachable(nodeId: string): void {
    for (const h of this.#hosted.values()) h.replica.raft.memberReachable(nodeId);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const h of this.#hosted.values()) h.replica.stop();
    this.#hosted.clear();
    this.#logs?.close();
  }

  /**
   * While replicas are hosted, look again now and then: membership steps wait on catching up, which sends no kick.
   * Soon (LIMITS.partitionReconcileMs) while some group is not yet as placed, a replica is leaving or knows no
   * leader; else rarely (LIMITS.partitionReconcileIdleMs), so an idle agent neither wakes nor asks a server for
   * placements every second.
   */
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#hosted.size === 0) return;
    this.#timer = setTimeout(() => this.kick(), this.#busy ? LIMITS.partitionReconcileMs : LIMITS.partitionReconcileIdleMs);
    this.#timer.unref?.();
  }

  /** The placement of a service's partitions, asked once per pass however many of its primaries are here. */
  #placementOf(job: string, service: string): Promise<Map<number, PartitionPlacement> | undefined> {
    const key = `${job}\u0000${service}`;
    let p = this.#placements.get(key);
    if (!p) {
      p = this.#o.placement(job, service).catch((err: unknown) => {
        this.#log.debug({ job, service, err: describeError(err) }, 'placement unknown for now');
        return undefined;
      });
      this.#placements.set(key, p);
    }
    return p;
  }

  #openLogs(): SqliteLogDatabase {
    if (!this.#logs) {
      mkdirSync(this.dir, { recursive: true });
      this.#logs = new SqliteLogDatabase(join(this.dir, 'raft.db'), { logger: this.#log });
    }
    return this.#logs;
  }

  async #reconcile(): Promise<void> {
    this.#placements.clear();
    this.#busy = false;
    if (!this.#o.fresh()) {
      this.#busy = this.#hosted.size > 0;
      return;
    }
    const view = this.#o.state();
    const placed = new Map<string, { alloc: Allocation; spec: ServiceSpec; jobStopped: boolean; createIndex: number }>();
    for (const alloc of view.allocationsOnNode(this.#o.nodeId)) {
      if (alloc.partition === undefined) continue;
      const rec = view.job(alloc.jobName) as { job: { services: ServiceSpec[] }; stopped?: boolean; createIndex?: number } | undefined;
      const spec = rec?.job.services.find((s) => s.name === alloc.service);
      if (!rec || !spec?.state) continue;
      const group = partitionGroup(alloc.jobName, rec.createIndex ?? 0, alloc.service, alloc.partition);
      const prev = placed.get(group);
      // Two allocations of one partition on this node (a replacement placed back here): the live one wins.
      if (prev && prev.alloc.desiredStatus === 'run' && alloc.desiredStatus !== 'run') continue;
      placed.set(group, { alloc, spec, jobStopped: rec.stopped === true, createIndex: rec.createIndex ?? 0 });
    }
    const updates: AllocUpdate[] = [];
    // Start what is placed here and not hosted yet.
    for (const [group, p] of placed) {
      if (this.#hosted.has(group) || p.jobStopped) continue;
      if (p.alloc.clientStatus === 'complete' || p.alloc.clientStatus === 'failed' || p.alloc.clientStatus === 'lost') continue;
      // A replica on its way out is hosted again after a restart (it is still a member until the primary removes it,
      // and only hosted can it learn that and go); a stopped allocation never started here is not.
      if (p.alloc.desiredStatus !== 'run' && this.#markerOwner(group) !== p.alloc.id) continue;
      try {
        this.#host(group, p.alloc, isStoreOnly(p.spec));
      } catch (err) {
        this.#log.error({ group, err: describeError(err) }, 'cannot host a partition replica');
        updates.push(this.#update(p.alloc, 'failed', `cannot host replica of ${group}: ${describeError(err)}`));
      }
    }
    if (!this.#swept) {
      this.#swept = true;
      this.#sweepOrphans(placed);
    }
    for (const h of [...this.#hosted.values()]) {
      const p = placed.get(h.group);
      if (!p || p.jobStopped) {
        this.#drop(h, p ? 'the job was stopped' : 'its allocation is gone');
        if (p && h.storeOnly) updates.push(this.#update(p.alloc, 'complete', 'the job was stopped'));
        continue;
      }
      if (h.allocId !== p.alloc.id) {
        // A new allocation of the same partition placed back on this node: the replica carries on under it.
        writeFileDurably(join(this.dir, `${replicaFileName(h.group)}.alloc`), `${p.alloc.id}\n`);
        h.allocId = p.alloc.id;
      }
      if (p.alloc.desiredStatus !== 'run') {
        this.#busy = true;
        if (await this.#removedFromGroup(h)) {
          this.#drop(h, `removed from its group: ${p.alloc.desiredReason || 'stopped by the leader'}`);
          if (h.storeOnly) updates.push(this.#update(p.alloc, 'complete', `replica moved: ${p.alloc.desiredReason || 'stopped by the leader'}`));
        }
        continue;
      }
      if (h.storeOnly) {
        const message = `replica ${h.replica.role()}`;
        if (p.alloc.clientStatus !== 'running' || h.reported !== message) {
          h.reported = message;
          updates.push(this.#update(p.alloc, 'running', message));
        }
      }
      const role = h.replica.role();
      if (role === 'none') this.#busy = true;
      if (role === 'primary') await this.#stepMembership(h);
    }
    if (updates.length > 0) await this.#o.report(updates);
  }

  #update(alloc: Allocation, clientStatus: AllocUpdate['clientStatus'], message: string): AllocUpdate {
    return { allocId: alloc.id, clientStatus, clientMessage: message, restarts: 0, driverHandle: '' };
  }

  /**
   * Starts the replica of `group` for `alloc`. A marker file names the allocation the files on disk belong to: files
   * of another allocation (a replica this node held before, under a stopped job, or one it was down for) are stale,
   * and a replica must never resume from them, so they are wiped first. The group is bootstrapped only by the
   * allocation that the scheduler marked as the partition's first placement, and only on that allocation's first
   * start here: a replica that already ran and lost its files must not vote again from an empty log (Raft's safety
   * rests on votes being remembered), so it fails and is replaced, and the replacement joins as a learner.
   */
  #host(group: string, alloc: Allocation, storeOnly: boolean): void {
    const logs = this.#openLogs();
    const marker = join(this.dir, `${replicaFileName(group)}.alloc`);
    const owner = this.#markerOwner(group);
    if (owner !== alloc.id) {
      this.#wipe(group);
      writeFileDurably(marker, `${alloc.id}\n`);
    }
    const storage = logs.openGroup(group);
    if (storage.lastIndex() === 0) {
      if (owner === alloc.id && alloc.clientStatus !== 'pending') {
        throw new ShoalError('ERR_REPLICA_LOST', `the replica's Raft log is gone (its files were removed while it ran); it is replaced rather than allowed to vote from an empty log`);
      }
      if (alloc.bootstrap && alloc.bootstrap.length > 0) {
        // The first placement of this partition: every node placed in it writes the same initial configuration.
        storage.save({ entries: bootstrapEntries([...alloc.bootstrap].sort()), hardState: { term: 1, vote: undefined, commit: alloc.bootstrap.length } });
      }
    }
    const replica = new PartitionReplica({
      group, nodeId: this.#o.nodeId, logs, dir: this.dir, transport: this.#o.transport, random: this.#o.random.split(),
      tickMs: this.#o.tickMs, quiesce: true, snapshotEveryEntries: LIMITS.partitionSnapshotEveryEntries, logger: this.#log,
      fetchSnapshotChunk: this.#o.fetchSnapshotChunk,
    });
    replica.start();
    const [, , service, partition] = group.split('/');
    this.#hosted.set(group, { group, job: alloc.jobName, service: service!, partition: Number(partition), replica, allocId: alloc.id, storeOnly, reported: '' });
    this.#log.info({ group, bootstrap: alloc.bootstrap?.length ?? 0 }, 'hosting a partition replica');
  }

  #drop(h: Hosted, why: string): void {
    h.replica.stop();
    this.#hosted.delete(h.group);
    this.#balancedAtMs.delete(h.group);
    try {
      this.#wipe(h.group);
    } catch (err) {
      this.#log.warn({ group: h.group, err: describeError(err) }, 'could not remove the files of a dropped replica');
    }
    this.#log.info({ group: h.group, why }, 'dropped a partition replica');
  }

  /**
   * Once per agent start, on the first fresh view: replica files that no live allocation on this node names any more
   * (the agent was down while its allocation was stopped and collected) are removed, or they would stay for good.
   */
  #sweepOrphans(placed: ReadonlyMap<string, { alloc: Allocation }>): void {
    let names: string[];
    try {
      names = existsSync(this.dir) ? readdirSync(this.dir).filter((n) => n.endsWith('.alloc')) : [];
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, 'cannot list the partitions directory');
      return;
    }
    for (const name of names) {
      const group = groupOfFileName(name.slice(0, -'.alloc'.length));
      const p = placed.get(group);
      const live = p !== undefined && !['complete', 'failed', 'lost'].includes(p.alloc.clientStatus);
      if (live || this.#hosted.has(group)) continue;
      try {
        this.#wipe(group);
        this.#log.info({ group }, 'removed the files of a replica no allocation names any more');
      } catch (err) {
        this.#log.warn({ group, err: describeError(err) }, 'could not remove an orphaned replica\'s files');
      }
    }
  }

  /** The allocation whose replica of `group` the files here belong to ('' when none). */
  #markerOwner(group: string): string {
    const marker = join(this.dir, `${replicaFileName(group)}.alloc`);
    return existsSync(marker) ? readFileSync(marker, 'utf8').trim() : '';
  }

  /** Removes everything of `group` on this node: its Raft log rows, its database, its marker (the marker last). */
  #wipe(group: string): void {
    this.#openLogs().dropGroup(group);
    const base = join(this.dir, replicaFileName(group));
    for (const suffix of ['.db', '.db-wal', '.db-shm', '.db.snap', '.db.snapshot-in', '.db.snapshot-in.part', '.db.snapshot-out', '.alloc']) rmSync(`${base}${suffix}`, { force: true });
  }

  /** This node's replica is out of its group: its own applied configuration says so, or a member that leads does. */
  async #removedFromGroup(h: Hosted): Promise<boolean> {
    const st = h.replica.raft.status();
    const self = this.#o.nodeId;
    if (st.voters.length + st.learners.length > 0 && !st.voters.includes(self) && !st.learners.includes(self)) return true;
    if (st.role === 'leader') {
      await this.#stepMembership(h);
      return false;
    }
    const leader = st.leader;
    if (leader !== undefined && leader !== self) {
      const said = await this.#o.askMembership(leader, h.group, self).catch(() => undefined);
      if (said !== undefined) return !said;
    }
    // No leader known, or it did not answer as one: a replica removed while it could not hear its primary (or placed
    // and moved away before it was ever added) knows no leader for good. Ask the placement's members; only a
    // primary's answer counts.
    const placement = (await this.#placementOf(h.job, h.service))?.get(h.partition);
    for (const node of [...(placement?.members ?? []), ...(placement?.leaving ?? [])]) {
      if (node === self || node === leader) continue;
      const said = await this.#o.askMembership(node, h.group, self).catch(() => undefined);
      if (said !== undefined) return !said;
    }
    return false;
  }

  /**
   * Once the group is in place, its primary hands over to the partition's preferred primary (rendezvous hashing over
   * the placed nodes) if that one is a caught-up voter gossip sees alive: otherwise the first agent to win the
   * elections would lead every partition, and its loss would stop them all at once. At most one try per group every
   * LIMITS.partitionPrimaryBalanceMs, so an unhealthy preferred node cannot make leadership flap.
   */
  #balanceStep(h: Hosted, desired: readonly string[], voters: readonly string[], match: Record<string, number>, lastIndex: number): MembershipStep | undefined {
    const preferred = preferredPrimary(h.group, desired);
    if (preferred === undefined || preferred === this.#o.nodeId || !voters.includes(preferred) || !this.#o.memberAlive(preferred)) return undefined;
    if (!caughtUp({ self: this.#o.nodeId, voters, learners: [], match, lastIndex }, preferred, 0)) return undefined;
    const now = Date.now();
    if (now < (this.#pinnedUntilMs.get(h.group) ?? 0)) return undefined;
    if (now - (this.#balancedAtMs.get(h.group) ?? -Infinity) < LIMITS.partitionPrimaryBalanceMs) return undefined;
    this.#balancedAtMs.set(h.group, now);
    return { kind: 'transfer', to: preferred };
  }

  async #stepMembership(h: Hosted): Promise<void> {
    const desired = (await this.#placementOf(h.job, h.service))?.get(h.partition)?.members;
    if (!desired || desired.length === 0) {
      this.#busy = true;
      return;
    }
    const st = h.replica.raft.status();
    if (st.role !== 'leader') return;
    // Not yet as placed (a member to add, promote or remove), or its primary not yet the preferred one: look again soon.
    const inPlace = st.learners.length === 0 && st.voters.length === desired.length && desired.every((n) => st.voters.includes(n));
    if (!inPlace || preferredPrimary(h.group, desired) !== this.#o.nodeId) this.#busy = true;
    const match = Object.fromEntries(Object.entries(st.progress).map(([id, p]) => [id, p.match]));
    const step = nextMembershipStep({ self: this.#o.nodeId, voters: st.voters, learners: st.learners, match, lastIndex: st.lastIndex }, desired, LIMITS.partitionPromoteLagEntries)
      ?? this.#balanceStep(h, desired, st.voters, match, st.lastIndex);
    if (!step) return;
    try {
      if (step.kind === 'transfer') h.replica.raft.transferLeadership(step.to);
      else h.replica.raft.changeMembership({ type: step.kind === 'add-learner' ? 'addLearner' : step.kind === 'promote' ? 'addVoter' : 'removeMember', member: step.member });
      this.#log.info({ group: h.group, step }, 'partition membership step');
    } catch (err) {
      // One change at a time: a change still uncommitted (or a leader without an entry of its term) waits for the
      // next pass.
      if (!(err instanceof ShoalError)) throw err;
      this.#log.debug({ group: h.group, step, err: describeError(err) }, 'membership step deferred');
    }
  }
}
