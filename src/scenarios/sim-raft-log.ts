/**
 * A Raft member's log on the simulator's crashable storage, shared by every scenario that runs Raft: the hard state,
 * the entries (one key each) and the latest snapshot, mirrored into the `MemoryLogStorage` the Raft core reads.
 * It only writes; when to sync, and whether to send before syncing (a deliberate bug some scenarios need), stays
 * with the caller, so "persist, then send, then apply" is still visible in each scenario's Ready loop.
 *
 * Several groups may share one node's storage (one fsync for all of them, as the agent's one log database): each then
 * keeps its keys under its own `prefix`.
 */
import { MemoryLogStorage, bootstrapEntries } from '../consensus/storage.js';
import type { ConfState, Entry, HardState, Ready, Snapshot } from '../consensus/types.js';
import type { SimStorage } from '../sim/storage.js';

const HS_KEY = 'raft/hs';
const SNAP_KEY = 'raft/snap';
const ENTRY_PREFIX = 'raft/e/';
const INDEX_DIGITS = 12;

export class SimRaftLog {
  readonly mem = new MemoryLogStorage();
  /** The snapshot found on disk at boot, which the caller restores its state machine from. */
  readonly bootSnapshot: Snapshot | undefined;
  #snapshotIndex = 0;
  #persistedLast = 0;
  readonly #st: SimStorage;
  readonly #hsKey: string;
  readonly #snapKey: string;
  readonly #entryPrefix: string;

  /**
   * Loads what survived on `st` under `prefix`; on the very first boot of an initial voter, writes the bootstrap
   * entries durably.
   */
  constructor(st: SimStorage, id: string, initialVoters: readonly string[], prefix = '') {
    this.#st = st;
    this.#hsKey = `${prefix}${HS_KEY}`;
    this.#snapKey = `${prefix}${SNAP_KEY}`;
    this.#entryPrefix = `${prefix}${ENTRY_PREFIX}`;
    if (!st.has(this.#hsKey) && !st.has(this.#snapKey) && st.keys(this.#entryPrefix).length === 0 && initialVoters.includes(id)) {
      for (const e of bootstrapEntries([...initialVoters])) st.put(this.#entryKey(e.index), e);
      st.put(this.#hsKey, { term: 1, vote: undefined, commit: initialVoters.length } satisfies HardState);
      st.sync();
    }
    this.bootSnapshot = st.get(this.#snapKey) as Snapshot | undefined;
    if (this.bootSnapshot !== undefined) {
      this.mem.applySnapshot(this.bootSnapshot);
      this.#snapshotIndex = this.bootSnapshot.metadata.index;
    }
    const entries = st.keys(this.#entryPrefix).map((k) => st.get(k) as Entry).filter((e) => e.index > this.#snapshotIndex);
    this.mem.append(entries);
    this.#persistedLast = this.mem.lastIndex();
    const hs = st.get(this.#hsKey) as HardState | undefined;
    if (hs !== undefined) this.mem.setHardState(hs);
  }

  #entryKey(index: number): string {
    return `${this.#entryPrefix}${String(index).padStart(INDEX_DIGITS, '0')}`;
  }

  /** Index of the newest snapshot stored. */
  get snapshotIndex(): number {
    return this.#snapshotIndex;
  }

  /** Writes a Ready's snapshot, entries (replacing any conflicting tail) and hard state. Does not sync. */
  persist(rd: Ready): void {
    const st = this.#st;
    if (rd.snapshot) {
      for (const k of st.keys(this.#entryPrefix)) st.delete(k);
      st.put(this.#snapKey, rd.snapshot);
      this.mem.applySnapshot(rd.snapshot);
      this.#snapshotIndex = rd.snapshot.metadata.index;
      this.#persistedLast = rd.snapshot.metadata.index;
    }
    if (rd.entries.length > 0) {
      const first = (rd.entries[0] as Entry).index;
      for (let i = first; i <= this.#persistedLast; i++) st.delete(this.#entryKey(i));
      for (const e of rd.entries) st.put(this.#entryKey(e.index), e);
      this.mem.append(rd.entries);
      this.#persistedLast = (rd.entries[rd.entries.length - 1] as Entry).index;
    }
    if (rd.hardState) {
      st.put(this.#hsKey, rd.hardState);
      this.mem.setHardState(rd.hardState);
    }
  }

  /**
   * Stores a snapshot of the state machine at `applied` and compacts the log up to `keepEntries` behind it (a
   * follower a little behind then needs no snapshot). Synced. Returns the snapshot.
   */
  saveSnapshot(applied: number, conf: ConfState, data: Uint8Array, keepEntries: number): Snapshot {
    const st = this.#st;
    const snap = this.mem.createSnapshot(applied, conf, data);
    st.put(this.#snapKey, snap);
    this.#snapshotIndex = applied;
    const compactTo = applied - keepEntries;
    if (compactTo > this.mem.firstIndex() - 1) {
      this.mem.compact(compactTo);
      for (const k of st.keys(this.#entryPrefix)) {
        if (Number(k.slice(this.#entryPrefix.length)) <= compactTo) st.delete(k);
      }
    }
    st.sync();
    return snap;
  }
}
