/**
 * One replica of one partition of a stateful service (issue 12): a Raft group (`src/runtime/raft-group.ts`) whose
 * state machine is the reliable-collections core (`src/partitions/machine.ts`) over the replica's own SQLite
 * database (`src/runtime/partition-store.ts`).
 *
 *   write(command, session) ─► leader stamps nowMs ─► RaftGroup.propose(encodeEntry) ─► quorum on disk ─► commit
 *        ◄──────────────── result (the machine's, or the session table's for a retry) ◄── apply on every replica
 *   read(consistency, fn)   ─► linearizable: ReadIndex confirmed by a quorum, then fn(state) here once applied
 *                              local: fn(state) at once, on any replica; the answer carries the index it read at
 *
 * - The Raft log lives in the agent's shared log database (`SqliteLogDatabase`, one group per partition); the state
 *   lives in `<dir>/<group file name>.db`. The store records the index of every apply in the same transaction as the
 *   apply, so after a crash the replica skips the committed entries Raft hands it again up to that index.
 * - A Raft snapshot of a partition is a consistent copy of its database (`VACUUM INTO`), installed by atomic rename.
 *   It travels inside one Raft message today, so a partition larger than an envelope (LIMITS.maxEnvelopePayloadBytes)
 *   cannot yet be sent to a new replica: streaming it in checksummed chunks is left for a later change.
 * - Retries: a write carries the caller's session tag; the machine answers a retried (client, seq) from its session
 *   table, so a write retried at a new leader never applies twice.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import { ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { Logger } from '../log/logger.js';
import { silentLogger } from '../log/logger.js';
import { systemClock } from '../platform/system-clock.js';
import type { Transport } from '../transport/index.js';
import type { Entry } from '../consensus/index.js';
import type { SqliteLogDatabase, SqliteLogStorage } from '../storage/index.js';
import { encodeEntry, PartitionMachine, type SessionTag } from '../partitions/machine.js';
import type { CommandResult, PartitionCommand } from '../partitions/commands.js';
import type { PartitionState } from '../partitions/collections.js';
import { SqlitePartitionStore } from './partition-store.js';
import { RaftGroup, type StateMachine } from './raft-group.js';

export type ReadConsistency = 'linearizable' | 'local';

export interface PartitionReplicaOptions {
  /** The Raft group's name, unique in the cluster (e.g. `p/<job>/<service>/<partition>`). */
  group: string;
  nodeId: string;
  /** The agent's log database; the group's log, hard state and Raft snapshots go there. */
  logs: SqliteLogDatabase;
  /** Directory of the replica's state database. */
  dir: string;
  transport: Transport;
  random: Random;
  tickMs: number;
  electionTicks?: number;
  clock?: Clock;
  /**
   * Wall-clock milliseconds the primary stamps on commands (queue leases). Leaders on different hosts must share a
   * time line, so this is the hosts' (NTP-synchronised) wall clock, never the monotonic `clock`; the partition's
   * own clock is the largest time ever applied, so a lagging new primary cannot bring an ended lease back.
   */
  wallClockMs?: () => number;
  /** Take a Raft snapshot (a copy of the database) and compact the log every this many applied entries. */
  snapshotEveryEntries?: number;
  quiesce?: boolean;
  /** How a member being rebuilt fetches the snapshot its primary refers to (absent: snapshots cannot be received). */
  fetchSnapshotChunk?: FetchSnapshotChunk;
  logger?: Logger;
}

/** Makes a group name safe as a file name: anything outside [A-Za-z0-9.-] becomes `_` and its code in two hex digits. */
export function replicaFileName(group: string): string {
  return group.replace(/[^A-Za-z0-9.-]/g, (c) => {
    const code = c.charCodeAt(0);
    // Group names are ASCII (job and service names, numbers); anything else keeps a four-digit escape.
    return code < 0x100 ? `_${code.toString(16).padStart(2, '0')}` : `_u${code.toString(16).padStart(4, '0')}`;
  });
}

/** The group a replica's file name stands for (the inverse of `replicaFileName`). */
export function groupOfFileName(name: string): string {
  return name.replace(/_u([0-9a-f]{4})|_([0-9a-f]{2})/g, (_m, wide: string | undefined, narrow: string | undefined) => String.fromCharCode(parseInt(wide ?? narrow!, 16)));
}

/**
 * What a partition's Raft snapshot carries: not the database, which may be far larger than a message, but a reference
 * to a consistent copy of it kept beside the replica (`<file>.snap`), which a member being rebuilt fetches in chunks.
 */
export interface SnapshotRef {
  format: typeof SNAPSHOT_REF_FORMAT;
  /** The copy's applied index (at least the Raft snapshot's index: a restarted replica may be ahead of its log). */
  index: number;
  sizeBytes: number;
  crc32: number;
}

const SNAPSHOT_REF_FORMAT = 'shoal.partition.snapref/1';

export function decodeSnapshotRef(data: Uint8Array): SnapshotRef {
  let ref: Partial<SnapshotRef>;
  try {
    ref = JSON.parse(Buffer.from(data).toString('utf8')) as Partial<SnapshotRef>;
  } catch (err) {
    throw new ShoalError('ERR_SNAPSHOT_REF', `a partition snapshot reference is not JSON: ${(err as Error).message}`);
  }
  const whole = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (ref.format !== SNAPSHOT_REF_FORMAT || !whole(ref.index) || !whole(ref.sizeBytes) || !whole(ref.crc32)) {
    throw new ShoalError('ERR_SNAPSHOT_REF', `not a partition snapshot reference (${SNAPSHOT_REF_FORMAT})`);
  }
  return ref as SnapshotRef;
}

/**
 * The database is not fsynced at every commit (`synchronous=NORMAL` in WAL mode: a commit survives the process, not a
 * power loss). The Raft log, which is fsynced, holds every entry the database may lose, and it is only compacted after
 * a checkpoint has made the database durable (`snapshot`); after a power loss Raft applies the lost tail again.
 */
const STORE_OPTIONS = { create: true, synchronous: 'normal' } as const;

/** CRC-32 of a file, read in chunks (a snapshot may be larger than memory should hold at once). */
function fileCrc32(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(LIMITS.partitionSnapshotChunkBytes);
    let crc = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) return crc >>> 0;
      crc = crc32(buf.subarray(0, n), crc);
    }
  } finally {
    closeSync(fd);
  }
}

/** The Raft side of a replica: entries in order, snapshots as references to database copies. */
class ReplicaMachine implements StateMachine {
  store: SqlitePartitionStore;
  machine: PartitionMachine;
  readonly file: string;
  /** The last copy this replica made for snapshots, and its reference. */
  snap: SnapshotRef | undefined;

  constructor(file: string) {
    this.file = file;
    this.store = SqlitePartitionStore.open(file, STORE_OPTIONS);
    this.machine = PartitionMachine.open(this.store);
  }

  get snapFile(): string {
    return `${this.file}.snap`;
  }

  /** Where a fetched snapshot waits, whole and checked, until the Raft message that refers to it is applied. */
  get stagedFile(): string {
    return `${this.file}.snapshot-in`;
  }

  apply(entry: Entry): unknown {
    // Entries up to the store's applied index were applied before a crash or restart: Raft hands them again because
    // its own applied index starts at its last snapshot.
    if (entry.index <= this.machine.appliedIndex) return undefined;
    return this.machine.apply(entry.index, entry.data).result;
  }

  /**
   * A Ready's entries in one database transaction (each apply a savepoint in it): one commit for all of them. If the
   * transaction fails (a full disk), none of them is kept, and the machine is reopened from what the database holds.
   */
  applyAll(entries: readonly Entry[]): unknown[] {
    try {
      return this.store.batch(() => entries.map((e) => (e.type === 'normal' ? this.apply(e) : undefined)));
    } catch (err) {
      this.machine = PartitionMachine.open(this.store);
      throw err;
    }
  }

  /** A consistent copy of the database (`VACUUM INTO`), renamed into place whole; the reference goes in the log. */
  snapshot(): Uint8Array {
    // The Raft log is compacted up to this snapshot next: what it held must be on disk in the database first (its
    // commits are not fsynced one by one, see STORE_OPTIONS).
    this.store.checkpoint();
    const tmp = `${this.file}.snapshot-out`;
    rmSync(tmp, { force: true });
    const info = this.store.snapshotTo(tmp);
    renameSync(tmp, this.snapFile);
    this.snap = { format: SNAPSHOT_REF_FORMAT, index: info.appliedIndex, sizeBytes: info.sizeBytes, crc32: fileCrc32(this.snapFile) };
    return Buffer.from(JSON.stringify(this.snap));
  }

  /**
   * Installs the snapshot a reference names, unless this replica already holds that index or a later one (at start
   * Raft restores its last snapshot, which the database, applied up to its own index, is usually ahead of). The copy
   * was fetched and checked before the message was stepped (`stage`); without it the replica cannot go on.
   */
  restore(data: Uint8Array): void {
    const ref = decodeSnapshotRef(data);
    if (ref.index <= this.machine.appliedIndex) return;
    if (!existsSync(this.stagedFile)) {
      throw new ShoalError('ERR_SNAPSHOT_MISSING', `the snapshot at index ${ref.index} was never fetched to ${this.stagedFile}; this replica cannot resume and must be rebuilt`);
    }
    this.store.close();
    try {
      SqlitePartitionStore.install(this.stagedFile, this.file);
    } finally {
      rmSync(this.stagedFile, { force: true });
      this.store = SqlitePartitionStore.open(this.file, { synchronous: 'normal' });
      this.machine = PartitionMachine.open(this.store);
    }
  }

  close(): void {
    if (!this.store.closed) this.store.close();
  }
}

/** One chunk of a snapshot copy, as a fetch returns it. */
export interface SnapshotChunk {
  data: Uint8Array;
  totalBytes: number;
  crc32: number;
}

/** Fetches a chunk of `group`'s snapshot at `index` from `nodeId` (a peer RPC on the agent). */
export type FetchSnapshotChunk = (nodeId: string, group: string, index: number, offset: number) => Promise<SnapshotChunk>;

export class PartitionReplica {
  readonly group: string;
  readonly raft: RaftGroup;
  readonly storage: SqliteLogStorage;
  readonly #sm: ReplicaMachine;
  readonly #clock: Clock;
  readonly #wallClockMs: () => number;
  readonly #log: Logger;
  readonly #fetch: FetchSnapshotChunk | undefined;
  #stopped = false;

  constructor(options: PartitionReplicaOptions) {
    this.#fetch = options.fetchSnapshotChunk;
    this.group = options.group;
    this.#clock = options.clock ?? systemClock;
    this.#wallClockMs = options.wallClockMs ?? Date.now;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'partition', group: options.group });
    mkdirSync(options.dir, { recursive: true });
    this.#sm = new ReplicaMachine(join(options.dir, `${replicaFileName(options.group)}.db`));
    this.storage = options.logs.openGroup(options.group);
    this.raft = new RaftGroup({
      group: options.group, nodeId: options.nodeId, storage: this.storage, transport: options.transport, stateMachine: this.#sm,
      random: options.random, tickMs: options.tickMs, clock: this.#clock, logger: this.#log,
      ...(options.electionTicks === undefined ? {} : { electionTicks: options.electionTicks }),
      ...(options.snapshotEveryEntries === undefined ? {} : { snapshotEveryEntries: options.snapshotEveryEntries }),
      ...(options.quiesce === undefined ? {} : { quiesce: options.quiesce }),
      stageSnapshot: (from, snapshot) => this.#stage(from, snapshot.data),
    });
  }

  start(): void {
    this.raft.start();
    // The copy the last snapshot refers to must be there, whole, for members being rebuilt; a crash between writing
    // a copy and recording its reference leaves them apart, and then a new snapshot is taken now.
    const stored = this.storage.snapshot();
    if (stored.metadata.index === 0) return;
    try {
      const ref = decodeSnapshotRef(stored.data);
      if (existsSync(this.#sm.snapFile) && statSync(this.#sm.snapFile).size === ref.sizeBytes && fileCrc32(this.#sm.snapFile) === ref.crc32) {
        this.#sm.snap = ref;
        return;
      }
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'the last snapshot reference is unusable');
    }
    this.raft.snapshotNow();
  }

  stop(): void {
    this.#stopped = true;
    this.raft.stop();
    this.#sm.close();
  }

  /**
   * A snapshot message refers to a copy of the primary's database: fetch it in chunks into a part file, at most
   * LIMITS.partitionSnapshotMaxBytesPerSecond, check its size and CRC-32, and only then rename it into the staged
   * name that `restore` installs. A reference this replica is already past needs nothing (Raft ignores it).
   */
  async #stage(from: string, data: Uint8Array): Promise<boolean> {
    const ref = decodeSnapshotRef(data);
    if (ref.index <= this.#sm.machine.appliedIndex) return true;
    if (!this.#fetch) throw new ShoalError('ERR_SNAPSHOT_UNSUPPORTED', 'this replica has no way to fetch a snapshot');
    const part = `${this.#sm.stagedFile}.part`;
    rmSync(part, { force: true });
    const fd = openSync(part, 'w');
    const startedMs = this.#clock.nowMs();
    let offset = 0;
    let crc = 0;
    try {
      while (offset < ref.sizeBytes) {
        if (this.#stopped) return false;
        const chunk = await this.#fetch(from, this.group, ref.index, offset);
        if (chunk.totalBytes !== ref.sizeBytes || chunk.crc32 !== ref.crc32) {
          throw new ShoalError('ERR_SNAPSHOT_GONE', `the primary's snapshot changed during the transfer (index ${ref.index})`);
        }
        if (chunk.data.length === 0) throw new ShoalError('ERR_SNAPSHOT_TRUNCATED', `an empty chunk at offset ${offset} of ${ref.sizeBytes}`);
        writeSync(fd, chunk.data, 0, chunk.data.length, offset);
        crc = crc32(chunk.data, crc);
        offset += chunk.data.length;
        // The bandwidth cap: never ahead of what the rate allows since the transfer began.
        const aheadMs = (offset / LIMITS.partitionSnapshotMaxBytesPerSecond) * 1000 - (this.#clock.nowMs() - startedMs);
        if (aheadMs > 1) await new Promise((r) => setTimeout(r, aheadMs));
      }
    } finally {
      closeSync(fd);
    }
    if (offset !== ref.sizeBytes || (crc >>> 0) !== ref.crc32) {
      rmSync(part, { force: true });
      throw new ShoalError('ERR_SNAPSHOT_CORRUPT', `the snapshot at index ${ref.index} arrived with ${offset} bytes and CRC ${crc >>> 0}, not ${ref.sizeBytes} and ${ref.crc32}`);
    }
    renameSync(part, this.#sm.stagedFile);
    this.#log.info({ index: ref.index, bytes: ref.sizeBytes, ms: Math.round(this.#clock.nowMs() - startedMs) }, 'fetched a snapshot');
    return !this.#stopped;
  }

  /** Serves a chunk of this replica's latest snapshot copy to a member being rebuilt. */
  readSnapshotChunk(index: number, offset: number): SnapshotChunk {
    const snap = this.#sm.snap;
    if (!snap || snap.index !== index) {
      throw new ShoalError('ERR_SNAPSHOT_GONE', `this replica of ${this.group} has no snapshot at index ${index} (its latest is ${snap?.index ?? 'none'}); wait for the primary to send a new one`);
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= snap.sizeBytes) {
      throw new ShoalError('ERR_INVALID_ARGUMENT', `offset ${offset} is outside the snapshot (${snap.sizeBytes} bytes)`);
    }
    const length = Math.min(LIMITS.partitionSnapshotChunkBytes, snap.sizeBytes - offset);
    const data = Buffer.alloc(length);
    const fd = openSync(this.#sm.snapFile, 'r');
    try {
      readSync(fd, data, 0, length, offset);
    } finally {
      closeSync(fd);
    }
    return { data, totalBytes: snap.sizeBytes, crc32: snap.crc32 };
  }

  /** `primary` (the Raft leader), `secondary` (a voter or learner following one), or `none` (no leader known). */
  role(): 'primary' | 'secondary' | 'none' {
    const st = this.raft.status();
    if (st.role === 'leader') return 'primary';
    return st.leader === undefined ? 'none' : 'secondary';
  }

  get appliedIndex(): number {
    return this.#sm.machine.appliedIndex;
  }

  /** Bytes of the replica's database on disk (its WAL included). */
  sizeBytes(): number {
    let total = 0;
    for (const suffix of ['', '-wal']) {
      try {
        total += statSync(`${this.#sm.file}${suffix}`).size;
      } catch {
        // absent
      }
    }
    return total;
  }

  /**
   * Proposes a write on the primary and resolves with its result once a quorum has it on disk and it applied here.
   * Refused at once (ERR_RAFT_NOT_LEADER, naming the leader) on a secondary. The command's time is this primary's.
   */
  async write(command: PartitionCommand, session: SessionTag | undefined, timeoutMs: number): Promise<CommandResult> {
    const stamped = { ...command, nowMs: Math.max(0, Math.floor(this.#wallClockMs())) } as PartitionCommand;
    const result = await this.raft.propose(encodeEntry({ command: stamped, ...(session ? { session } : {}) }), { timeoutMs });
    if (result === undefined) throw new ShoalError('ERR_INTERNAL', `partition group ${this.group}: the write committed but this replica had applied it before (restart?); retry with the same session to read its result`);
    return result as CommandResult;
  }

  /**
   * Runs `fn` on the replica's state: `linearizable` after a ReadIndex round confirms this replica is current (on the
   * primary, or forwarded to it by Raft), `local` at once on whatever this replica has applied.
   */
  async read<T>(consistency: ReadConsistency, timeoutMs: number, fn: (state: PartitionState) => T): Promise<T> {
    if (consistency === 'linearizable') await this.raft.read(timeoutMs);
    return fn(this.#sm.machine.state);
  }
}
