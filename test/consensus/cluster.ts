/**
 * A tiny synchronous harness for interaction tests, after etcd-io/raft's `network` in raft_test.go: members with
 * in-memory storage, a message queue delivered until quiet, and links that can be cut. Every Ready is handled in
 * the contract's order (persist, send, apply, advance).
 */
import { RaftNode, type RaftConfig } from '../../src/consensus/raft.js';
import { MemoryLogStorage } from '../../src/consensus/storage.js';
import type { ConfState, Entry, Message, ReadState, Snapshot } from '../../src/consensus/types.js';
import { Random } from '../../src/lib/random.js';

export interface Member {
  raft: RaftNode;
  storage: MemoryLogStorage;
  applied: Entry[];
  snapshots: Snapshot[];
  readStates: ReadState[];
}

export type MemberOptions = Partial<Omit<RaftConfig, 'group' | 'id' | 'storage' | 'random'>>;

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export class Cluster {
  readonly members = new Map<string, Member>();
  readonly queue: Message[] = [];
  readonly cut = new Set<string>();
  /** Every message ever sent, for assertions. */
  readonly sent: Message[] = [];
  /** When set, messages are kept in the queue instead of delivered by `settle()`. */
  hold = false;
  /** Messages for which this returns true are lost. */
  dropIf: ((m: Message) => boolean) | undefined;

  constructor(readonly ids: string[], readonly options: MemberOptions = {}, conf: ConfState = { voters: ids, learners: [] }, seed = 1) {
    const root = Random.fromSeed(seed);
    for (const id of ids) this.add(id, conf, root.split());
  }

  add(id: string, conf: ConfState, random: Random = Random.fromSeed(id), storage = new MemoryLogStorage(conf)): Member {
    const raft = new RaftNode({ group: 'g', id, storage, random, ...this.options });
    const m: Member = { raft, storage, applied: [], snapshots: [], readStates: [] };
    this.members.set(id, m);
    return m;
  }

  /** Restarts a member from its storage (what a crash after every sync would keep). */
  restart(id: string, random: Random = Random.fromSeed(`${id}-again`)): Member {
    const old = this.get(id);
    const raft = new RaftNode({ group: 'g', id, storage: old.storage, random, ...this.options });
    const m: Member = { raft, storage: old.storage, applied: [], snapshots: [], readStates: [] };
    this.members.set(id, m);
    return m;
  }

  get(id: string): Member {
    const m = this.members.get(id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  raft(id: string): RaftNode {
    return this.get(id).raft;
  }

  /** Handles every pending Ready once; queues the messages. */
  flush(): void {
    for (const [, m] of this.members) {
      while (m.raft.hasReady()) {
        const rd = m.raft.ready();
        if (rd.snapshot) m.storage.applySnapshot(rd.snapshot);
        m.storage.append(rd.entries);
        if (rd.hardState) m.storage.setHardState(rd.hardState);
        for (const msg of rd.messages) {
          this.sent.push(msg);
          this.queue.push(msg);
        }
        if (rd.snapshot) m.snapshots.push(rd.snapshot);
        m.applied.push(...rd.committedEntries);
        m.readStates.push(...rd.readStates);
        m.raft.advance();
      }
    }
  }

  /** Delivers messages until none are left (cut links drop theirs). */
  settle(maxRounds = 10_000): void {
    for (let i = 0; i < maxRounds; i++) {
      this.flush();
      if (this.hold) return;
      const msg = this.queue.shift();
      if (msg === undefined) return;
      if (this.cut.has(`${msg.from}->${msg.to}`) || this.dropIf?.(msg)) continue;
      const to = this.members.get(msg.to);
      if (to) to.raft.step(msg);
    }
    throw new Error('cluster did not settle');
  }

  tick(id: string, n = 1): void {
    for (let i = 0; i < n; i++) this.raft(id).tick();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const m of this.members.values()) m.raft.tick();
      this.settle();
    }
  }

  isolate(id: string): void {
    for (const other of this.ids) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  elect(id: string): void {
    this.raft(id).campaign();
    this.settle();
  }

  leaders(): string[] {
    return [...this.members].filter(([, m]) => m.raft.role === 'leader').map(([id]) => id);
  }
}

/** Runs `fn`, expecting it to throw an error for which `check` holds; returns a description for the assertion. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}
