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
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../lib/clock.js';
import { ShoalError } from '../lib/errors.js';
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
  logger?: Logger;
}

/** Makes a group name safe as a file name: anything outside [A-Za-z0-9._-] becomes `_` plus its code. */
export function replicaFileName(group: string): string {
  return group.replace(/[^A-Za-z0-9._-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`);
}

/** The Raft side of a replica: entries in order, snapshots as database copies. */
class ReplicaMachine implements StateMachine {
  store: SqlitePartitionStore;
  machine: PartitionMachine;
  readonly file: string;
  readonly #file: string;

  constructor(file: string) {
    this.file = file;
    this.#file = file;
    this.store = SqlitePartitionStore.open(file, { create: true });
    this.machine = PartitionMachine.open(this.store);
  }

  apply(entry: Entry): unknown {
    // Entries up to the store's applied index were applied before a crash or restart: Raft hands them again because
    // its own applied index starts at its last snapshot.
    if (entry.index <= this.machine.appliedIndex) return undefined;
    return this.machine.apply(entry.index, entry.data).result;
  }

  snapshot(): Uint8Array {
    const tmp = `${this.#file}.snapshot-out`;
    rmSync(tmp, { force: true });
    try {
      this.store.snapshotTo(tmp);
      return readFileSync(tmp);
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /**
   * Installs a snapshot, unless this replica already holds that index or a later one: at start Raft restores its
   * last snapshot, which the database, applied up to its own index, is usually ahead of.
   */
  restore(data: Uint8Array): void {
    const tmp = `${this.#file}.snapshot-in`;
    writeFileSync(tmp, data);
    const peek = SqlitePartitionStore.open(tmp, { verify: 'quick' });
    const index = peek.appliedIndex();
    peek.close();
    if (index <= this.machine.appliedIndex) {
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${tmp}${suffix}`, { force: true });
      return;
    }
    this.store.close();
    try {
      SqlitePartitionStore.install(tmp, this.#file);
    } finally {
      rmSync(tmp, { force: true });
      this.store = SqlitePartitionStore.open(this.#file);
      this.machine = PartitionMachine.open(this.store);
    }
  }

  close(): void {
    if (!this.store.closed) this.store.close();
  }
}

export class PartitionReplica {
  readonly group: string;
  readonly raft: RaftGroup;
  readonly storage: SqliteLogStorage;
  readonly #sm: ReplicaMachine;
  readonly #clock: Clock;
  readonly #wallClockMs: () => number;
  readonly #log: Logger;

  constructor(options: PartitionReplicaOptions) {
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
    });
  }

  start(): void {
    this.raft.start();
  }

  stop(): void {
    this.raft.stop();
    this.#sm.close();
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
