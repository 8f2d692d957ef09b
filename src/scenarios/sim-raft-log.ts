/**
 * A Raft member's log on the simulator's crashable storage, shared by every scenario that runs Raft: the hard state,
 * the entries (one key each) and the latest snapshot, mirrored into the `MemoryLogStorage` the Raft core reads.
 * It only writes; when to sync, and whether to send before syncing (a deliberate bug some scenarios need), stays
 * with the caller, so "persist, then send, then apply" is still visible in each scenario's Ready loop.
 */
import { MemoryLogStorage, bootstrapEntries } from '../consensus/storage.js';
import type { ConfState, Entry, HardState, Ready, Snapshot } from '../consensus/types.js';
import type { SimStorage } from '../sim/storage.js';

const HS_KEY = 'raft/hs';
const SNAP_KEY = 'raft/snap';
const ENTRY_PREFIX = 'raft/e/';
const entryKey = (index: number): string => `${ENTRY_PREFIX}${String(index).padStart(12, '0')}`;

export class SimRaftLog {
  readonly mem = new MemoryLogStorage();
  /** The snapshot found on disk at boot, which the caller restores its state machine from. */
  readonly bootSnapshot: Snapshot | undefined;
  #snapshotIndex = 0;
  #persistedLast = 0;
  readonly #st: SimStorage;

  /** Loads what survived on `st`; on the very first boot of an initial voter, writes the bootstrap entries durably. */
  constructor(st: SimStorage, id: string, initialVoters: readonly string[]) {
    this.#st = st;
    if (!st.has(HS_KEY) && !st.has(SNAP_KEY) && st.keys(ENTRY_PREFIX).length === 0 && initialVoters.includes(id)) {
      for (const e of bootstrapEntries([...initialVoters])) st.put(entryKey(e.index), e);
      st.put(HS_KEY, { term: 1, vote: undefined, commit: initialVoters.length } satisfies HardState);
      st.sync();
    }
    this.bootSnapshot = st.get(SNAP_KEY) as Snapshot | undefined;
    if (this.bootSnapshot !== undefined) {
      this.mem.applySnapshot(this.bootSnapshot);
      this.#snapshotIndex = this.bootSnapshot.metadata.index;
    }
    const entries = st.keys(ENTRY_PREFIX).map((k) => st.get(k) as Entry).filter((e) => e.index > this.#snapshotIndex);
    this.mem.append(entries);
    this.#persistedLast = this.mem.lastIndex();
    const hs = st.get(HS_KEY) as HardState | undefined;
    if (hs !== undefined) this.mem.setHardState(hs);
  }

  /** Index of the newest snapshot stored. */
  get snapshotIndex(): number {
    return this.#snapshotIndex;
  }

  /** Writes a Ready's snapshot, entries (replacing any conflicting tail) and hard state. Does not sync. */
  persist(rd: Ready): void {
    const st = this.#st;
    if (rd.snapshot) {
      for (const k of st.keys(ENTRY_PREFIX)) st.delete(k);
      st.put(SNAP_KEY, rd.snapshot);
      this.mem.applySnapshot(rd.snapshot);
      this.#snapshotIndex = rd.snapshot.metadata.index;
      this.#persistedLast = rd.snapshot.metadata.index;
    }
    if (rd.entries.length > 0) {
      const first = (rd.entries[0] as Entry).index;
      for (let i = first; i <= this.#persistedLast; i++) st.delete(entryKey(i));
      for (const e of rd.entries) st.put(entryKey(e.index), e);
      this.mem.append(rd.entries);
      this.#persistedLast = (rd.entries[rd.entries.length - 1] as Entry).index;
    }
    if (rd.hardState) {
      st.put(HS_KEY, rd.hardState);
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
    st.put(SNAP_KEY, snap);
    this.#snapshotIndex = applied;
    const compactTo = applied - keepEntries;
    if (compactTo > this.mem.firstIndex() - 1) {
      this.mem.compact(compactTo);
      for (const k of st.keys(ENTRY_PREFIX)) {
        if (Number(k.slice(ENTRY_PREFIX.length)) <= compactTo) st.delete(k);
      }
    }
    st.sync();
    return snap;
  }
}
