/**
 * Stateful partitions under a nemesis (issue 12, "Tests → Simulator").
 *
 * Each seed picks 5 to 7 nodes and a service of 4 to 8 partitions × 3 replicas (placed by `initialPlacement`; with 6
 * or more nodes the last one starts empty), each partition a Raft group whose state machine is the partition core
 * (partitions-sim.ts). Clients run a KV and queue workload through the primaries: puts, conditional puts, deletes
 * (plain and conditional), linearizable gets (ReadIndex on the primary), transactions within one partition (a compare,
 * two puts, now and then an enqueue), enqueues, dequeues with a lease and acks. A client routes a key with
 * `partitionFor`, sends to the last primary it heard of (else to a member of the placement), follows NotLeader
 * hints, and retries on a timeout or a dropped proposal with the SAME session seq; requests and answers are lost now
 * and then on the way. Primaries stamp commands with their own clock, which is off by up to ±40 ms.
 *
 * Nemesis: message loss (0, 1 or 5%), duplication, reordering, partitions, one-way cuts, flapping links, isolation,
 * pauses, crashes that lose unsynced writes (or keep a random prefix of them: torn) and restarts; and placement
 * changes carried out by the primaries one membership step at a time (`nextMembershipStep`): a node killed for good
 * (its replicas rebuilt on other nodes, by log or by snapshot), a node drained (its primaries hand over first), and
 * single replicas moved (rebalancing, often onto the node that started empty). The placement names Raft members, a
 * node and the placement that created the replica (`n3.2`); it is planned again every few hundred milliseconds, so a
 * move that found no free node happens once one is free.
 *
 * Checked at every event (the referee): one primary per term per group; every replica applies the same entry at each
 * index, in order with no gap, and gets the same answer; replicas that applied the same index hold the same store
 * (canonical snapshot bytes compared, at every store copy and snapshot install); the partition clock and leases as
 * applied (a dequeue never takes an item under a live lease or after its ack; an ack applies once, within its
 * lease); exactly once (no client's value is written or enqueued twice). As answers arrive: no unexpected failure,
 * a key's value is seen with one version only, no item is delivered to a dequeue called after its ack was answered.
 * After the heal, within a bound: every group has a primary, exactly its placement as voters and no learner, and
 * takes a write; all replicas of a group reach the same index with identical stores; nodes keep no replica they were
 * moved off. At the end: the history of every key is linearizable (Wing–Gong–Lowe), the final read of each key
 * returns its last acknowledged value or a later one, and every acknowledged enqueue was acknowledged by exactly one
 * dequeue's ack or is still in its queue, with no item delivered under overlapping leases.
 */
import { ShoalError } from '../lib/errors.js';
import { invariant } from '../lib/assert.js';
import { Random } from '../lib/random.js';
import type { Entry, Message } from '../consensus/types.js';
import { decodeUtf8, encodeUtf8 } from '../partitions/bytes.js';
import type { GetResult, QueueScanResult } from '../partitions/collections.js';
import { parseLeaseId, validateCommand, type CommandResult, type DequeuedItem, type Operation as PartitionOp, type OpResult, type PartitionCommand } from '../partitions/commands.js';
import { decodeEntry, encodeTagged, type Applied } from '../partitions/machine.js';
import type { MembershipStep } from '../partitions/membership.js';
import { initialPlacement } from '../partitions/placement.js';
import { partitionFor } from '../partitions/scheme.js';
import { checkLinearizable, type Model, type Operation } from '../sim/linearizability.js';
import { DEFAULT_NEMESIS, scheduleNemesis } from '../sim/nemesis.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../sim/scenario.js';
import { Simulator } from '../sim/simulator.js';
import { digestBytes, GoneNode, groupPrefix, PartitionSimNode, type ClientReply, type ClientRequest, type PartitionObserver } from './partitions-sim.js';
import { RaftLinearizabilityFailure, RaftLivenessFailure } from './raft-kv.js';

export class PartitionsCheckFailure extends ShoalError {
  constructor(seed: number, detail: string) {
    super('ERR_SIM_CHECK', `seed ${seed}: ${detail}`, { seed });
  }
}

export interface PartitionsOptions extends ScenarioOptions {
  /** The deliberately broken variant: writes carry no session, so a retry after a lost answer applies again. */
  noSessions?: boolean;
  /** Virtual time the nemesis and the workload run (default 6 s). */
  faultMs?: number;
  /**
   * A replica moved off a node asks only the leader it knows whether it is out of its group (the agent's rule before
   * this scenario found replicas that know no leader leaking forever); by default it asks the placement's members too.
   */
  askLeaderOnly?: boolean;
  /**
   * A replica's Raft member id is its node id, as on the agent (the default), or, with `false`, its node and the
   * placement that created it (CockroachDB's replica ids). With node ids, a node placed back in a group it left is the
   * same member, starting empty: the consensus core's rule that a member knowing no configuration grants no vote is
   * what keeps a stale configuration from winning with that empty member's vote (seed 62 split the brain without it).
   */
  nodeMemberIds?: boolean;
  /**
   * Check at every apply that no client value is written or enqueued twice (default true). Off, only what clients
   * and the final state show is left to catch a command applied twice (the test of the broken variant uses it).
   */
  checkExactlyOnceAtApply?: boolean;
}

const TICK_MS = 10;
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
const SNAPSHOT_EVERY = 30;
const KEEP_ENTRIES_AFTER_SNAPSHOT = 10;
/** The agent's partitionPromoteLagEntries (64), scaled to the simulator's short logs. */
const PROMOTE_LAG_ENTRIES = 8;
/** The agent's partitionReconcileMs (1 s), scaled to the simulator's short runs. */
const RECONCILE_TICKS = 10;
const REPLICAS = 3;
const MAX_CLOCK_SKEW_MS = 40;
const START_MS = 500;
const CLIENTS = ['c1', 'c2', 'c3'];
const LANES_PER_CLIENT = 2;
const CLIENT_TIMEOUT_MS = 400;
/** Each way, on the client's link to a node. */
const CLIENT_LINK_LOSS = 0.03;
const LEASE_MIN_MS = 100;
const LEASE_SPREAD_MS = 400;
/** Chance that a client acknowledges an item it dequeued (else it abandons it, and the lease runs out). */
const ACK_CHANCE = 0.85;
const LIVENESS_BOUND_MS = 10_000;
const SETTLE_BOUND_MS = 3_000;
const KV = 'kv';

// --- The per-key model -----------------------------------------------------------------------------------------

export type PkvInput =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; value: string }
  /** A conditional put: applies if the key holds `expect` (null: absent). A version condition names the value written at that version. */
  | { kind: 'cas'; key: string; expect: string | null; value: string }
  /** A delete; with `expect`, only if the key holds it. */
  | { kind: 'del'; key: string; expect?: string }
  /** One put of a transaction whose compares are on another key: its output says whether the transaction applied. */
  | { kind: 'tput'; key: string; value: string };

/** get: the value or null; put: true; cas, conditional del, tput: applied; del: whether a value was deleted. */
export type PkvOutput = string | null | boolean;

/**
 * A register per key, with deletes. Every write carries a value no other write carries, so a version (a log index)
 * is named by the value written there, and "at version v" conditions become "holds that value".
 */
export const partitionKvModel: Model<string | null, PkvInput, PkvOutput> = {
  init: () => null,
  step(state, input, output, completed) {
    switch (input.kind) {
      case 'get':
        return !completed || output === state ? state : undefined;
      case 'put':
        return input.value;
      case 'cas': {
        const ok = state === input.expect;
        if (completed && output !== ok) return undefined;
        return ok ? input.value : state;
      }
      case 'del': {
        if (input.expect === undefined) return completed && output !== (state !== null) ? undefined : null;
        const ok = state === input.expect;
        if (completed && output !== ok) return undefined;
        return ok ? null : state;
      }
      case 'tput':
        return completed && output === false ? state : input.value;
    }
  },
  key: (state) => (state === null ? '\u0000' : state),
  partition(operations) {
    const byKey = new Map<string, Operation<PkvInput, PkvOutput>[]>();
    for (const o of operations) {
      const list = byKey.get(o.input.key) ?? [];
      list.push(o);
      byKey.set(o.input.key, list);
    }
    return [...byKey.values()];
  },
  describe: (o) => {
    const i = o.input;
    const args = i.kind === 'get' ? '' : i.kind === 'del' ? (i.expect === undefined ? '' : ` if=${i.expect}`) : i.kind === 'cas' ? ` if=${i.expect ?? 'absent'} =${i.value}` : `=${i.value}`;
    return `${o.clientId} ${i.kind}(${i.key}${args}) -> ${Number.isFinite(o.returnMs) ? JSON.stringify(o.output) : '?'} [${o.callMs}, ${o.returnMs}]`;
  },
};

// --- The referee: what every replica applies ------------------------------------------------------------------

interface ItemLife {
  value: string;
  deliveries: { leaseId: string; nowMs: number; expiresMs: number; index: number }[];
  /** Index of the ack that removed it. */
  ackedAt: number | undefined;
}

const itemKey = (group: string, queue: string, itemId: string): string => `${group}|${queue}|${itemId}`;

function entryDigest(e: Entry): string {
  return `${e.term}/${e.type}/${e.conf ? `${e.conf.type}:${e.conf.member}` : ''}/${digestBytes(e.data)}`;
}

function appliedDigest(a: Applied | undefined): string {
  if (a === undefined || a.result === undefined) return '-';
  return `${a.duplicate ? 'dup:' : ''}${digestBytes(encodeTagged(a.result))}`;
}

/**
 * The global record every replica is compared against, fed by every apply on every node. The first replica to apply
 * an index records its entry and answer, and the semantic checks run on that first apply (every index is applied
 * first by some replica, in log order).
 */
export class PartitionsReferee implements PartitionObserver {
  problem: string | undefined;
  readonly #leaders = new Map<string, Map<number, string>>();
  readonly #entries = new Map<string, Map<number, string>>();
  readonly #states = new Map<string, Map<number, string>>();
  readonly #lastApplied = new Map<string, number>();
  /** Per group, the partition's clock as the machine keeps it (the largest nowMs applied). */
  readonly #clocks = new Map<string, number>();
  readonly #written = new Map<string, number>();
  readonly #enqueued = new Map<string, number>();
  readonly items = new Map<string, ItemLife>();
  installs = 0;
  steps = 0;
  stores = 0;
  maxIndex = 0;
  /** Retries the session table answered without applying them again. */
  deduplicated = 0;
  /** Replicas reopened behind what they had applied (a crash lost the store's latest copy): Raft applied it again. */
  replayed = 0;

  /** `exactlyOnce`: fail as soon as a client's value is written or enqueued a second time. */
  constructor(readonly exactlyOnce = true) {}

  fail(problem: string): void {
    this.problem ??= problem;
  }

  opened(member: string, group: string, applied: number, digest: string | undefined): void {
    const before = this.#lastApplied.get(`${member}/${group}`);
    if (before !== undefined && applied < before) this.replayed++;
    this.#lastApplied.set(`${member}/${group}`, applied);
    if (digest !== undefined) this.#state(member, group, applied, digest, 'reopened its store');
  }

  applied(member: string, group: string, entry: Entry, applied: Applied | undefined): void {
    const k = `${member}/${group}`;
    const last = this.#lastApplied.get(k) ?? 0;
    if (entry.index !== last + 1) this.fail(`${member} applied index ${entry.index} of ${group} after ${last} (a gap or a repeat)`);
    this.#lastApplied.set(k, entry.index);
    const digest = `${entryDigest(entry)} -> ${appliedDigest(applied)}`;
    const byIndex = mapOf(this.#entries, group);
    const known = byIndex.get(entry.index);
    if (known === undefined) {
      byIndex.set(entry.index, digest);
      if (entry.index > this.maxIndex) this.maxIndex = entry.index;
      this.#firstApply(group, entry, applied);
    } else if (known !== digest) {
      this.fail(`${member} applied ${digest} at index ${entry.index} of ${group}; another replica applied ${known} there`);
    }
  }

  stored(member: string, group: string, index: number, digest: string): void {
    this.stores++;
    this.#state(member, group, index, digest, 'stored');
  }

  installed(member: string, group: string, index: number, digest: string): void {
    this.installs++;
    this.#lastApplied.set(`${member}/${group}`, index);
    this.#state(member, group, index, digest, 'installed a snapshot');
  }

  becameLeader(member: string, group: string, term: number): void {
    const byTerm = mapOf(this.#leaders, group);
    const known = byTerm.get(term);
    if (known === undefined) byTerm.set(term, member);
    else if (known !== member) this.fail(`two primaries of ${group} in term ${term}: ${known} and ${member}`);
  }

  membershipStep(_member: string, _group: string, _step: MembershipStep): void {
    this.steps++;
  }

  dropped(member: string, group: string): void {
    this.#lastApplied.delete(`${member}/${group}`);
  }

  #state(member: string, group: string, index: number, digest: string, what: string): void {
    const byIndex = mapOf(this.#states, group);
    const known = byIndex.get(index);
    if (known === undefined) byIndex.set(index, digest);
    else if (known !== digest) this.fail(`${member} ${what} for ${group} at index ${index} with digest ${digest}; another replica held ${known} there`);
  }

  #firstApply(group: string, entry: Entry, applied: Applied | undefined): void {
    if (entry.type !== 'normal' || applied === undefined) return;
    if (applied.duplicate) {
      this.deduplicated++;
      return;
    }
    const { command } = decodeEntry(entry.data);
    const result = applied.result;
    if (result === undefined) return;
    // The machine's clock moves on every command it runs (failed ones included), not on session refusals.
    const refused = !result.ok && (result.code === 'ERR_SESSION_WINDOW' || result.code === 'ERR_SESSION_EXPIRED' || result.code === 'ERR_ENTRY_DECODE');
    if (refused || validateCommand(command) !== undefined) return;
    const clock = Math.max(this.#clocks.get(group) ?? 0, command.nowMs ?? 0);
    this.#clocks.set(group, clock);
    if (!result.ok) return;
    if (command.type === 'txn') {
      if (result.type !== 'txn') return this.fail(`${group} index ${entry.index}: a transaction answered ${result.type}`);
      command.ops.forEach((op, i) => this.#effect(group, entry.index, op, result.results[i]!, clock));
    } else if (command.type !== 'declare' && result.type !== 'txn' && result.type !== 'declare') {
      this.#effect(group, entry.index, command, result, clock);
    }
  }

  #effect(group: string, index: number, op: PartitionOp, r: OpResult, nowMs: number): void {
    switch (op.type) {
      case 'put': {
        const k = `${group}|${op.collection}|${op.key}|${decodeUtf8(op.value)}`;
        const prev = this.#written.get(k);
        if (prev !== undefined && this.exactlyOnce) this.fail(`exactly once: ${op.key}=${decodeUtf8(op.value)} was written at index ${prev} of ${group} and again at ${index}: a retried write applied twice`);
        this.#written.set(k, index);
        return;
      }
      case 'enqueue': {
        const value = decodeUtf8(op.value);
        const k = `${group}|${op.queue}|${value}`;
        const prev = this.#enqueued.get(k);
        if (prev !== undefined && this.exactlyOnce) this.fail(`exactly once: ${value} was enqueued on ${op.queue} at index ${prev} of ${group} and again at ${index}: the item is duplicated`);
        this.#enqueued.set(k, index);
        if (r.type === 'enqueue') this.items.set(itemKey(group, op.queue, r.itemId), { value, deliveries: [], ackedAt: undefined });
        return;
      }
      case 'dequeue': {
        if (r.type !== 'dequeue' || r.item === null) return;
        const item = r.item;
        const life = this.items.get(itemKey(group, op.queue, item.itemId));
        if (life === undefined) return this.fail(`${group} index ${index}: dequeue delivered ${item.itemId}, which no enqueue applied`);
        if (life.ackedAt !== undefined) this.fail(`${group} index ${index}: item ${item.itemId} delivered again after its ack applied at ${life.ackedAt}`);
        const leaseNowMs = item.leaseExpiresMs - op.leaseMs;
        if (leaseNowMs !== nowMs) this.fail(`${group} index ${index}: lease ${item.leaseId} granted at partition time ${leaseNowMs}, but the partition clock was ${nowMs}`);
        const last = life.deliveries[life.deliveries.length - 1];
        if (last && leaseNowMs < last.expiresMs) this.fail(`${group} index ${index}: item ${item.itemId} delivered under lease ${item.leaseId} at ${leaseNowMs} ms while lease ${last.leaseId} ran until ${last.expiresMs} ms`);
        life.deliveries.push({ leaseId: item.leaseId, nowMs: leaseNowMs, expiresMs: item.leaseExpiresMs, index });
        if (item.deliveries !== life.deliveries.length) this.fail(`${group} index ${index}: item ${item.itemId} says delivery ${item.deliveries}, but it is its delivery ${life.deliveries.length}`);
        return;
      }
      case 'ack': {
        if (r.type !== 'ack') return;
        const life = this.items.get(itemKey(group, op.queue, r.itemId));
        if (life === undefined) return this.fail(`${group} index ${index}: ack of ${r.itemId}, which no enqueue applied`);
        if (life.ackedAt !== undefined) this.fail(`${group} index ${index}: item ${r.itemId} acknowledged again (first at ${life.ackedAt})`);
        life.ackedAt = index;
        const last = life.deliveries[life.deliveries.length - 1];
        if (last === undefined || last.leaseId !== op.leaseId) this.fail(`${group} index ${index}: ack of lease ${op.leaseId} succeeded, but item ${r.itemId}'s latest lease is ${last?.leaseId ?? 'none'}`);
        else if (nowMs >= last.expiresMs) this.fail(`${group} index ${index}: ack of lease ${op.leaseId} succeeded at ${nowMs} ms, after the lease ended at ${last.expiresMs} ms`);
        return;
      }
      default:
        return;
    }
  }
}

function mapOf<V>(m: Map<string, Map<number, V>>, group: string): Map<number, V> {
  let inner = m.get(group);
  if (inner === undefined) {
    inner = new Map();
    m.set(group, inner);
  }
  return inner;
}

// --- Clients ---------------------------------------------------------------------------------------------------

type OpSpec =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; value: string }
  /** `version` 0: the key must be absent (`expect` null). */
  | { kind: 'cput'; key: string; value: string; expect: string | null; version: number }
  | { kind: 'del'; key: string }
  | { kind: 'cdel'; key: string; expect: string; version: number }
  | { kind: 'txn'; a: string; b: string; expect: string | null; version: number; valueA: string; valueB: string; queue: string | undefined; queueValue: string }
  | { kind: 'enqueue'; queue: string; value: string }
  | { kind: 'dequeue'; queue: string; leaseMs: number }
  | { kind: 'ack'; queue: string; leaseId: string; itemId: string };

interface ClientOp {
  id: number;
  client: string;
  spec: OpSpec;
  group: string;
  /** The session seq of a write (undefined for reads). */
  seq: number | undefined;
  callMs: number;
  returnMs: number;
  done: boolean;
  attempt: number;
  value: unknown;
}

interface Known {
  value: string | null;
  /** 0 when absent. */
  version: number;
}

/** A client's session with one partition, numbered from 1 as the agent's router numbers its writes (state-rpc.ts). */
interface Session {
  next: number;
  /** Seqs of writes whose answer has not arrived: the lowest is the session's `acked`. */
  open: Set<number>;
}

interface Client {
  id: string;
  sessions: Map<string, Session>;
  /** What this client last saw of each key (for conditions). */
  known: Map<string, Known>;
  hint: Map<string, string>;
}

interface Lane {
  client: Client;
  /** A lease this lane holds and will acknowledge next. */
  held: { queue: string; leaseId: string; itemId: string } | undefined;
}

const bytes = (text: string): Uint8Array => encodeUtf8(text);

function commandOf(spec: OpSpec): PartitionCommand | undefined {
  switch (spec.kind) {
    case 'get':
      return undefined;
    case 'put':
      return { type: 'put', collection: KV, key: spec.key, value: bytes(spec.value) };
    case 'cput':
      return { type: 'put', collection: KV, key: spec.key, value: bytes(spec.value), condition: spec.version === 0 ? { kind: 'absent' } : { kind: 'version', version: spec.version } };
    case 'del':
      return { type: 'delete', collection: KV, key: spec.key };
    case 'cdel':
      return { type: 'delete', collection: KV, key: spec.key, condition: { kind: 'version', version: spec.version } };
    case 'txn': {
      const ops: PartitionOp[] = [
        { type: 'put', collection: KV, key: spec.a, value: bytes(spec.valueA) },
        { type: 'put', collection: KV, key: spec.b, value: bytes(spec.valueB) },
      ];
      if (spec.queue !== undefined) ops.push({ type: 'enqueue', queue: spec.queue, value: bytes(spec.queueValue) });
      return {
        type: 'txn',
        compares: [spec.version === 0 ? { collection: KV, key: spec.a, kind: 'absent' } : { collection: KV, key: spec.a, kind: 'version', version: spec.version }],
        ops,
      };
    }
    case 'enqueue':
      return { type: 'enqueue', queue: spec.queue, value: bytes(spec.value) };
    case 'dequeue':
      return { type: 'dequeue', queue: spec.queue, leaseMs: spec.leaseMs };
    case 'ack':
      return { type: 'ack', queue: spec.queue, leaseId: spec.leaseId };
  }
}

/** The failure codes an operation may answer with; any other is a bug. */
function expectedFailures(kind: OpSpec['kind']): readonly string[] {
  switch (kind) {
    case 'cput':
    case 'cdel':
      return ['ERR_CONDITION_FAILED'];
    case 'txn':
      return ['ERR_COMPARE_FAILED'];
    case 'ack':
      return ['ERR_LEASE_EXPIRED', 'ERR_LEASE_UNKNOWN'];
    default:
      return [];
  }
}

/** What the per-key model sees of an operation: one entry per key it touches. */
function projections(op: ClientOp): Operation<PkvInput, PkvOutput>[] {
  const completed = op.done;
  const base = { clientId: `${op.client}#${op.id}`, callMs: op.callMs, returnMs: completed ? op.returnMs : Infinity };
  const r = op.value as (CommandResult & GetResult) | undefined;
  const ok = completed && r !== undefined && r.ok;
  const s = op.spec;
  switch (s.kind) {
    case 'get': {
      const g = op.value as GetResult | undefined;
      const output = completed && g !== undefined && g.ok && g.found ? decodeUtf8(g.value) : null;
      return [{ ...base, input: { kind: 'get', key: s.key }, output }];
    }
    case 'put':
      return [{ ...base, input: { kind: 'put', key: s.key, value: s.value }, output: true }];
    case 'cput':
      return [{ ...base, input: { kind: 'cas', key: s.key, expect: s.expect, value: s.value }, output: ok }];
    case 'del': {
      const deleted = ok && (op.value as { deleted?: boolean }).deleted === true;
      return [{ ...base, input: { kind: 'del', key: s.key }, output: deleted }];
    }
    case 'cdel':
      return [{ ...base, input: { kind: 'del', key: s.key, expect: s.expect }, output: ok }];
    case 'txn':
      return [
        { ...base, input: { kind: 'cas', key: s.a, expect: s.expect, value: s.valueA }, output: ok },
        { ...base, input: { kind: 'tput', key: s.b, value: s.valueB }, output: ok },
      ];
    default:
      return [];
  }
}

interface AckedEnqueue {
  group: string;
  queue: string;
  value: string;
  itemId: string;
}

interface SeenDelivery {
  item: string;
  leaseId: string;
  startMs: number;
  expiresMs: number;
}

// --- The run ---------------------------------------------------------------------------------------------------

export function runPartitions(seed: number, options: PartitionsOptions = {}): ScenarioResult {
  const root = Random.fromSeed(seed);
  const pick = root.split();
  const nodeCount = 5 + pick.int(3);
  const partitions = 4 + pick.int(5);
  const ids = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
  const lossRate = pick.pick([0, 0.01, 0.05]);
  const crashMode = pick.chance(0.5) ? 'torn' : 'drop-unsynced';
  const skews = new Map(ids.map((id) => [id, pick.int(2 * MAX_CLOCK_SKEW_MS + 1) - MAX_CLOCK_SKEW_MS]));
  const faultMs = options.faultMs ?? 6_000;
  const endMs = START_MS + faultMs;
  const noSessions = options.noSessions ?? false;
  const referee = new PartitionsReferee(options.checkExactlyOnceAtApply ?? true);

  // --- Placement: the cluster state's view of where each partition's replicas go ---------------------------------
  const groups = Array.from({ length: partitions }, (_, i) => `p${i}`);
  const scheme = { kind: 'uniform', partitions } as const;
  // With 6 or 7 nodes the last starts empty: rebalancing and rebuilds have somewhere new to go.
  const firstNodes = nodeCount >= 6 ? ids.slice(0, -1) : ids;
  const initial = initialPlacement({ partitions, replicas: REPLICAS, nodes: firstNodes.map((id) => ({ id, status: 'ready' as const, labels: {} })) });
  invariant(initial.ok, 'the initial placement needs ready nodes');
  // A replica is a Raft member named by its node, as on the agent (or, with `nodeMemberIds: false`, by its node and
  // the placement that created it, `n3.2`): see `nodeMemberIds`.
  const nodeMemberIds = options.nodeMemberIds ?? true;
  const generations = new Map<string, number>();
  const newMember = (group: string, node: string): string => {
    if (nodeMemberIds) return node;
    const gen = (generations.get(group) ?? 0) + 1;
    generations.set(group, gen);
    return `${node}.${gen}`;
  };
  const nodeOfMember = (member: string): string => (nodeMemberIds ? member : member.slice(0, member.lastIndexOf('.')));
  const initialMembers = new Map(initial.partitions.map((p) => [`p${p.partition}`, p.members.map((n) => (nodeMemberIds ? n : `${n}.0`))]));
  const placement = new Map([...initialMembers].map(([g, members]) => [g, [...members]]));
  const placementOf = (group: string): readonly string[] => placement.get(group) ?? [];
  const nodesOf = (group: string): string[] => placementOf(group).map(nodeOfMember);
  const memberOn = (group: string, node: string): string | undefined => placementOf(group).find((m) => nodeOfMember(m) === node);
  const gone = new Set<string>();
  const draining = new Set<string>();

  const nodeOf = (id: string): PartitionSimNode | undefined => {
    const n = sim.node(id);
    return n instanceof PartitionSimNode ? n : undefined;
  };

  const sim: Simulator<Message> = new Simulator<Message>({
    seed,
    nodeIds: ids,
    tickIntervalMs: TICK_MS,
    link: {
      delay: { kind: 'exponential', minMs: 1, meanExtraMs: 3 },
      lossRate,
      duplicateRate: 0.02,
      reorderRate: 0.05,
      reorderWindowMs: 30,
    },
    crashMode,
    keepFullTrace: options.keepFullTrace ?? false,
    messageSizeBytes: (m) => 64 + m.entries.reduce((s, e) => s + e.data.byteLength + 32, 0) + (m.snapshot ? m.snapshot.data.byteLength : 0),
    describeMessage: (m) =>
      `${m.group} ${m.type} t${m.term} i${m.index} lt${m.logTerm} c${m.commit}${m.entries.length ? ` e${m.entries[0]!.index}-${m.entries[m.entries.length - 1]!.index}` : ''}${m.reject ? ` rej h${m.rejectHint}` : ''}${m.snapshot ? ` snap@${m.snapshot.metadata.index}` : ''}${m.context ? ` ctx=${m.context}` : ''}`,
    createNode: (ctx) => {
      if (gone.has(ctx.id)) return new GoneNode();
      return new PartitionSimNode(ctx, {
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: HEARTBEAT_TICKS,
        snapshotEvery: SNAPSHOT_EVERY,
        keepEntriesAfterSnapshot: KEEP_ENTRIES_AFTER_SNAPSHOT,
        promoteLagEntries: PROMOTE_LAG_ENTRIES,
        reconcileEveryTicks: RECONCILE_TICKS,
        clockSkewMs: skews.get(ctx.id) ?? 0,
        groups,
        placement: placementOf,
        memberOn,
        nodeOfMember,
        initialMembers: (group) => initialMembers.get(group) ?? [],
        askLeaderOnly: options.askLeaderOnly ?? false,
        askMembership: (fromNode, target, group, member) => {
          const node = nodeOfMember(target);
          if (gone.has(node) || sim.network.isCut(fromNode, node) || sim.network.isCut(node, fromNode)) return undefined;
          const r = nodeOf(node)?.replicas.get(group);
          if (r === undefined || r.member !== target || r.raft.role !== 'leader') return undefined;
          return r.raft.voters.includes(member) || r.raft.learners.includes(member);
        },
        observer: referee,
      });
    },
  });
  sim.addInvariant('partition replicas agree', () => referee.problem);

  const leaderOf = (group: string): { id: string; node: PartitionSimNode } | undefined => {
    let best: { id: string; node: PartitionSimNode; term: number } | undefined;
    for (const id of sim.upNodeIds()) {
      const node = nodeOf(id);
      const r = node?.replicas.get(group);
      if (node && r && r.raft.role === 'leader' && (!best || r.raft.term > best.term)) best = { id, node, term: r.raft.term };
    }
    return best;
  };
  const kick = (): void => {
    for (const id of sim.upNodeIds()) nodeOf(id)?.reconcile();
  };

  // --- Faults --------------------------------------------------------------------------------------------------
  scheduleNemesis(sim, root.split(), {
    ...DEFAULT_NEMESIS,
    meanIntervalMs: 600,
    maxFaultMs: 2_500,
    startMs: START_MS,
    endMs,
    maxDownNodes: 1,
  });

  // --- Placement changes: rebuild (a node killed for good), drain, rebalancing moves ------------------------------
  const placeRandom = root.split();
  const eligible = (): string[] => ids.filter((id) => !gone.has(id) && !draining.has(id));
  const loadOf = (node: string): number => groups.filter((g) => nodesOf(g).includes(node)).length;
  // A node still holding a replica of the group (moved off it, not yet dropped) is not placed in it again: a node
  // holds one replica per group.
  const holds = (node: string, group: string): boolean =>
    sim.isUp(node) ? (nodeOf(node)?.replicas.has(group) ?? false) : sim.storage(node).keys(groupPrefix(group)).length > 0;
  let moves = 0;
  const move = (group: string, from: string, why: string): boolean => {
    const members = placementOf(group);
    const taken = nodesOf(group);
    const to = eligible().filter((n) => !taken.includes(n) && !holds(n, group)).sort((a, b) => loadOf(a) - loadOf(b) || (a < b ? -1 : 1))[0];
    if (to === undefined) return false;
    const member = newMember(group, to);
    placement.set(group, members.map((m) => (m === from ? member : m)));
    moves++;
    sim.trace.record(`${sim.nowMs()} placement ${group}: ${from} -> ${member} (${why})`);
    return true;
  };
  // The cluster leader plans again now and then: a member left on a dead or draining node, for lack of a free node
  // when it went, moves once one is free (a node that dropped its old replica of the group).
  const replan = (): void => {
    let moved = false;
    for (const g of groups) {
      for (const m of placementOf(g)) {
        const node = nodeOfMember(m);
        if (gone.has(node) || draining.has(node)) moved = move(g, m, `${node} is ${gone.has(node) ? 'gone' : 'draining'}`) || moved;
      }
    }
    if (moved) kick();
    sim.after(RECONCILE_TICKS * TICK_MS * 3, 'placement: plan again', replan);
  };
  sim.at(START_MS, 'placement: plan again', replan);
  const changeWindow = (): number => START_MS + 800 + placeRandom.int(Math.max(1, faultMs - 3_800));
  const killed = placeRandom.chance(0.5);
  if (killed) {
    sim.at(changeWindow(), 'placement: kill a node for good', () => {
      if (eligible().length <= REPLICAS) return;
      const victim = placeRandom.pick(eligible());
      gone.add(victim);
      sim.crash(victim);
      for (const g of groups) {
        const member = memberOn(g, victim);
        if (member !== undefined) move(g, member, `${victim} is gone`);
      }
      kick();
    });
  }
  const drained = placeRandom.chance(0.5);
  if (drained) {
    sim.at(changeWindow(), 'placement: drain a node', () => {
      if (eligible().length <= REPLICAS) return;
      const node = placeRandom.pick(eligible());
      draining.add(node);
      for (const g of groups) {
        const member = memberOn(g, node);
        if (member !== undefined) move(g, member, `${node} drains`);
      }
      kick();
    });
  }
  const rebalances = placeRandom.int(3);
  for (let i = 0; i < rebalances; i++) {
    sim.at(changeWindow(), 'placement: move a replica', () => {
      const g = placeRandom.pick(groups);
      if (move(g, placeRandom.pick(placementOf(g)), 'rebalance')) kick();
    });
  }

  // --- Keys and queues: two keys and one queue per partition ---------------------------------------------------
  const partitionOf = (key: string): number => {
    const r = partitionFor(scheme, { kind: 'key', key });
    invariant(r.ok, `partitionFor refused ${key}`);
    return r.partition;
  };
  const keysOf = groups.map((): string[] => []);
  const queueOf: (string | undefined)[] = groups.map(() => undefined);
  for (let n = 0; keysOf.some((k) => k.length < 2); n++) {
    const list = keysOf[partitionOf(`k${n}`)]!;
    if (list.length < 2) list.push(`k${n}`);
  }
  for (let n = 0; queueOf.some((q) => q === undefined); n++) queueOf[partitionOf(`q${n}`)] ??= `q${n}`;
  const keys = keysOf.flat();
  const queues = queueOf as string[];
  const groupOfName = (name: string): string => `p${partitionOf(name)}`;

  // --- Clients -------------------------------------------------------------------------------------------------
  const clientRandom = root.split();
  const history: ClientOp[] = [];
  const ackedEnqueues: AckedEnqueue[] = [];
  const seenDeliveries: SeenDelivery[] = [];
  const ackAnsweredAt = new Map<string, number>();
  const versionOfValue = new Map<string, number>();
  const valueAtVersion = new Map<string, string>();
  let clientsStopped = false;
  let opIds = 0;
  let answered = 0;
  const clients: Client[] = CLIENTS.map((id) => ({ id, sessions: new Map(), known: new Map(), hint: new Map() }));
  const sessionOf = (c: Client, group: string): Session => {
    let s = c.sessions.get(group);
    if (s === undefined) {
      s = { next: 1, open: new Set() };
      c.sessions.set(group, s);
    }
    return s;
  };

  const observeVersion = (op: ClientOp, key: string, value: string, version: number): void => {
    const vk = `${key}=${value}`;
    const v = versionOfValue.get(vk);
    if (v !== undefined && v !== version) referee.fail(`${op.client} saw ${key}=${value} at version ${version}, and it was seen at version ${v} before: one write applied twice`);
    versionOfValue.set(vk, version);
    const kk = `${key}@${version}`;
    const w = valueAtVersion.get(kk);
    if (w !== undefined && w !== value) referee.fail(`${op.client} saw ${key} at version ${version} hold ${value}, and it was seen holding ${w} there before`);
    valueAtVersion.set(kk, value);
  };

  const observe = (op: ClientOp, lane: Lane): void => {
    const c = lane.client;
    const s = op.spec;
    const r = op.value as CommandResult | GetResult;
    if (!r.ok) {
      if (!expectedFailures(s.kind).includes(r.code)) referee.fail(`${op.client} ${s.kind} on ${op.group} answered ${r.code}: ${r.message}`);
      if (s.kind === 'cput' || s.kind === 'cdel') c.known.delete(s.key);
      if (s.kind === 'txn') c.known.delete(s.a);
      return;
    }
    switch (s.kind) {
      case 'get': {
        const g = r as GetResult & { ok: true };
        if (g.found) {
          const value = decodeUtf8(g.value);
          c.known.set(s.key, { value, version: g.version });
          observeVersion(op, s.key, value, g.version);
        } else {
          c.known.set(s.key, { value: null, version: 0 });
        }
        return;
      }
      case 'put':
      case 'cput': {
        const version = (r as { version: number }).version;
        c.known.set(s.key, { value: s.value, version });
        observeVersion(op, s.key, s.value, version);
        return;
      }
      case 'del':
      case 'cdel':
        c.known.set(s.key, { value: null, version: 0 });
        return;
      case 'txn': {
        const results = (r as { results: OpResult[] }).results;
        const [ra, rb, rq] = results;
        if (ra?.type === 'put' && rb?.type === 'put') {
          c.known.set(s.a, { value: s.valueA, version: ra.version });
          c.known.set(s.b, { value: s.valueB, version: rb.version });
          observeVersion(op, s.a, s.valueA, ra.version);
          observeVersion(op, s.b, s.valueB, rb.version);
        }
        if (s.queue !== undefined && rq?.type === 'enqueue') ackedEnqueues.push({ group: op.group, queue: s.queue, value: s.queueValue, itemId: rq.itemId });
        return;
      }
      case 'enqueue':
        ackedEnqueues.push({ group: op.group, queue: s.queue, value: s.value, itemId: (r as { itemId: string }).itemId });
        return;
      case 'dequeue': {
        const item = (r as { item: DequeuedItem | null }).item;
        if (item === null) return;
        const k = itemKey(op.group, s.queue, item.itemId);
        const ackedAt = ackAnsweredAt.get(k);
        if (ackedAt !== undefined && ackedAt < op.callMs) referee.fail(`${op.client} dequeued ${item.itemId} from ${s.queue} (called at ${op.callMs} ms) after its ack was answered at ${ackedAt} ms`);
        seenDeliveries.push({ item: k, leaseId: item.leaseId, startMs: item.leaseExpiresMs - s.leaseMs, expiresMs: item.leaseExpiresMs });
        if (clientRandom.chance(ACK_CHANCE)) lane.held = { queue: s.queue, leaseId: item.leaseId, itemId: item.itemId };
        return;
      }
      case 'ack':
        ackAnsweredAt.set(itemKey(op.group, s.queue, s.itemId), op.returnMs);
        return;
    }
  };

  const nextSpec = (c: Client, lane: Lane, id: number): OpSpec => {
    if (lane.held) {
      const { queue, leaseId, itemId } = lane.held;
      lane.held = undefined;
      return { kind: 'ack', queue, leaseId, itemId };
    }
    const value = `${c.id}.${id}`;
    if (clientRandom.chance(0.6)) {
      const key = clientRandom.pick(keys);
      const known = c.known.get(key);
      const r = clientRandom.float();
      if (r < 0.3) return { kind: 'get', key };
      if (r < 0.55) return { kind: 'put', key, value };
      if (r < 0.72) return { kind: 'cput', key, value, expect: known?.value ?? null, version: known?.value ? known.version : 0 };
      if (r < 0.82) {
        if (known?.value && clientRandom.chance(0.5)) return { kind: 'cdel', key, expect: known.value, version: known.version };
        return { kind: 'del', key };
      }
      const p = partitionOf(key);
      const [a, b] = clientRandom.shuffle(keysOf[p]!);
      const ka = c.known.get(a!);
      return {
        kind: 'txn', a: a!, b: b!, expect: ka?.value ?? null, version: ka?.value ? ka.version : 0,
        valueA: `${value}a`, valueB: `${value}b`, queue: clientRandom.chance(0.3) ? queueOf[p] : undefined, queueValue: `${value}q`,
      };
    }
    const queue = clientRandom.pick(queues);
    if (clientRandom.chance(0.5)) return { kind: 'enqueue', queue, value };
    return { kind: 'dequeue', queue, leaseMs: LEASE_MIN_MS + clientRandom.int(LEASE_SPREAD_MS) };
  };

  const send = (target: string, label: string, fn: (node: PartitionSimNode) => void): void => {
    if (clientRandom.chance(CLIENT_LINK_LOSS)) return;
    sim.after(1 + clientRandom.int(4), label, () => {
      const node = nodeOf(target);
      if (node) fn(node);
    });
  };

  const attempt = (op: ClientOp, lane: Lane): void => {
    if (op.done || clientsStopped) return;
    const c = lane.client;
    const n = ++op.attempt;
    const hinted = c.hint.get(op.group);
    const target = hinted !== undefined && !gone.has(hinted) ? hinted : clientRandom.pick(nodesOf(op.group));
    const retry = (delayMs: number): void => {
      sim.after(delayMs, `client ${c.id} retry op ${op.id}`, () => {
        if (!op.done && op.attempt === n) attempt(op, lane);
      });
    };
    const onReply = (reply: ClientReply): void => {
      if (op.done || clientsStopped) return;
      if (reply.kind === 'result') {
        // Any attempt's answer is the operation's answer: every attempt of a write carries the same session seq.
        finish(op, lane, reply.value);
        return;
      }
      if (op.attempt !== n) return;
      const leader = reply.kind === 'not-leader' && reply.leader !== undefined ? nodeOfMember(reply.leader) : undefined;
      if (leader !== undefined && leader !== target) {
        c.hint.set(op.group, leader);
        retry(1);
      } else {
        c.hint.delete(op.group);
        retry(reply.kind === 'dropped' ? 10 : 30);
      }
    };
    let request: ClientRequest;
    if (op.spec.kind === 'get') {
      const key = op.spec.key;
      request = { kind: 'read', group: op.group, context: `${c.id}/${op.id}/${n}`, serve: (state) => state.get(KV, key) };
    } else {
      const seq = op.seq as number;
      const session = noSessions ? undefined : { client: c.id, seq, acked: Math.min(...sessionOf(c, op.group).open) };
      request = { kind: 'write', group: op.group, command: commandOf(op.spec)!, session };
    }
    send(target, `client ${c.id} op ${op.id} -> ${target}`, (node) => {
      node.handle(request, (reply) => {
        if (clientRandom.chance(CLIENT_LINK_LOSS)) return;
        sim.after(1 + clientRandom.int(4), `client ${c.id} op ${op.id} <- ${target} ${reply.kind}`, () => onReply(reply));
      });
    });
    // A timeout also makes the next attempt try someone else.
    sim.after(CLIENT_TIMEOUT_MS, `client ${c.id} op ${op.id} timeout`, () => {
      if (op.done || op.attempt !== n || clientsStopped) return;
      c.hint.delete(op.group);
      attempt(op, lane);
    });
  };

  const finish = (op: ClientOp, lane: Lane, value: unknown): void => {
    op.done = true;
    op.value = value;
    op.returnMs = sim.nowMs();
    answered++;
    if (op.seq !== undefined) sessionOf(lane.client, op.group).open.delete(op.seq);
    observe(op, lane);
    const thinkMs = lane.held ? 10 + clientRandom.int(300) : 5 + clientRandom.int(40);
    sim.after(thinkMs, `client ${lane.client.id} next`, () => startOp(lane));
  };

  const startOp = (lane: Lane): void => {
    if (sim.nowMs() >= endMs || clientsStopped) return;
    const c = lane.client;
    const id = ++opIds;
    const spec = nextSpec(c, lane, id);
    const name = spec.kind === 'txn' ? spec.a : 'key' in spec ? spec.key : spec.queue;
    const group = groupOfName(name);
    let seq: number | undefined;
    if (spec.kind !== 'get') {
      const session = sessionOf(c, group);
      seq = session.next++;
      session.open.add(seq);
    }
    const op: ClientOp = { id, client: c.id, spec, group, seq, callMs: sim.nowMs(), returnMs: Infinity, done: false, attempt: 0, value: undefined };
    history.push(op);
    attempt(op, lane);
  };
  clients.forEach((c, i) => {
    for (let l = 0; l < LANES_PER_CLIENT; l++) {
      const lane: Lane = { client: c, held: undefined };
      sim.at(300 + i * 7 + l * 3, `client ${c.id} lane ${l} start`, () => startOp(lane));
    }
  });

  // --- Run, heal, converge -------------------------------------------------------------------------------------
  sim.runUntil(endMs);
  // The nemesis healed the network and restarted every node (a node killed for good stays gone).
  sim.network.setDefaults({ lossRate: 0, duplicateRate: 0, reorderRate: 0 });
  const healedAt = sim.nowMs();
  const describeGroups = (): string =>
    groups.map((g) => {
      const l = leaderOf(g);
      const conf = l?.node.replicas.get(g)?.raft.confState();
      const replicas = sim.upNodeIds().flatMap((id) => {
        const r = nodeOf(id)?.replicas.get(g);
        if (r === undefined) return [];
        const c = r.raft.confState();
        return [`${r.member}: ${r.raft.role} t${r.raft.term} leader ${r.raft.leader ?? '-'} c${r.raft.log.committed} last ${r.raft.log.lastIndex()} applied ${r.appliedIndex} voters ${c.voters.join(',')}${c.learners.length ? ` learners ${c.learners.join(',')}` : ''}`];
      });
      const state = l ? `primary ${l.id}, voters ${conf!.voters.join(',')}${conf!.learners.length ? `, learners ${conf!.learners.join(',')}` : ''}` : 'no primary';
      return `${g}: placed ${placementOf(g).join(',')}; ${state}\n  ${replicas.join('\n  ')}`;
    }).join('\n');
  const converged = (): boolean =>
    groups.every((g) => {
      const r = leaderOf(g)?.node.replicas.get(g);
      if (r === undefined) return false;
      const conf = r.raft.confState();
      const want = placementOf(g);
      return conf.learners.length === 0 && conf.voters.length === want.length && want.every((m) => conf.voters.includes(m)) && r.raft.log.term(r.raft.log.committed) === r.raft.term;
    });
  if (!sim.runUntilTrue(converged, LIVENESS_BOUND_MS)) {
    throw new RaftLivenessFailure(seed, `the groups did not reach their placement with a primary within ${LIVENESS_BOUND_MS} ms after the heal at ${healedAt} ms:\n${describeGroups()}`);
  }

  // Every partition takes a write, then every client operation still pending gets its answer (or stays unknown).
  interface Final { group: string; request: (n: number) => ClientRequest; done: boolean; asked: { node: string; term: number } | undefined; value: unknown; callMs: number; returnMs: number }
  let finalAsks = 0;
  const runFinals = (finals: Final[], what: string): void => {
    const ask = (f: Final): void => {
      const l = leaderOf(f.group);
      if (!l) return;
      const r = l.node.replicas.get(f.group)!;
      f.asked = { node: l.id, term: r.raft.term };
      // The first ask's time: an earlier ask's answer may be the one that arrives.
      if (f.callMs < 0) f.callMs = sim.nowMs();
      l.node.handle(f.request(++finalAsks), (reply) => {
        if (reply.kind === 'result') {
          f.done = true;
          f.value = reply.value;
          f.returnMs = sim.nowMs();
        } else {
          f.asked = undefined;
        }
      });
    };
    const done = sim.runUntilTrue(() => {
      for (const f of finals) {
        if (f.done) continue;
        const l = f.asked ? nodeOf(f.asked.node)?.replicas.get(f.group) : undefined;
        if (f.asked && (l === undefined || l.raft.role !== 'leader' || l.raft.term !== f.asked.term)) f.asked = undefined;
        if (!f.asked) ask(f);
      }
      return finals.every((f) => f.done);
    }, SETTLE_BOUND_MS);
    if (!done) throw new RaftLivenessFailure(seed, `${what} not answered within ${SETTLE_BOUND_MS} ms after the groups converged:\n${describeGroups()}`);
  };
  const final = (group: string, request: (n: number) => ClientRequest): Final => ({ group, request, done: false, asked: undefined, value: undefined, callMs: -1, returnMs: 0 });
  runFinals(groups.map((g) => final(g, () => ({ kind: 'write', group: g, command: { type: 'put', collection: 'live', key: 'live', value: bytes(g) }, session: undefined }))), 'a write to every partition');
  // From the heal until every partition has its placement as voters, a primary, and took a write.
  const recoveryMs = sim.nowMs() - healedAt;
  sim.runUntilTrue(() => history.every((op) => op.done), SETTLE_BOUND_MS);
  clientsStopped = true;

  // Final reads through the primaries: every key, every queue.
  const keyReads = keys.map((key) => final(groupOfName(key), (n) => ({ kind: 'read', group: groupOfName(key), context: `final/${key}/${n}`, serve: (state) => state.get(KV, key) })));
  const queueReads = queues.map((q) => final(groupOfName(q), (n) => ({ kind: 'read', group: groupOfName(q), context: `final/${q}/${n}`, serve: (state) => state.queueScan(q, { limit: 1_000 }) })));
  runFinals([...keyReads, ...queueReads], 'the final reads');

  // Every replica catches up; their stores must then be identical.
  const placedReplicas = (g: string): { id: string; applied: number; bytes: () => Uint8Array }[] =>
    placementOf(g).map((id) => {
      const r = nodeOf(nodeOfMember(id))?.replicas.get(g);
      return { id, applied: r?.member === id ? r.appliedIndex : -1, bytes: () => r!.storeBytes() };
    });
  const caughtUp = (): boolean => groups.every((g) => {
    const l = leaderOf(g)?.node.replicas.get(g);
    return l !== undefined && placedReplicas(g).every((r) => r.applied === l.raft.log.committed);
  });
  if (!sim.runUntilTrue(caughtUp, SETTLE_BOUND_MS)) {
    const view = groups.map((g) => `${g}: ${placedReplicas(g).map((r) => `${r.id}@${r.applied}`).join(' ')}`).join('\n');
    throw new RaftLivenessFailure(seed, `replicas did not catch up with their primary within ${SETTLE_BOUND_MS} ms:\n${view}`);
  }
  for (const g of groups) {
    const [first, ...rest] = placedReplicas(g).map((r) => ({ ...r, digest: digestBytes(r.bytes()) }));
    for (const r of rest) {
      if (r.digest !== first!.digest) throw new PartitionsCheckFailure(seed, `${g}: replicas at index ${r.applied} differ: ${first!.id} holds ${first!.digest}, ${r.id} holds ${r.digest}`);
    }
  }
  // Nodes let go of the replicas moved off them.
  kick();
  sim.runFor(RECONCILE_TICKS * TICK_MS * 3);
  const leftovers: string[] = [];
  for (const id of sim.upNodeIds()) {
    for (const [g, r] of nodeOf(id)?.replicas ?? []) {
      if (placementOf(g).includes(r.member)) continue;
      const conf = r.raft.confState();
      leftovers.push(`${g}: ${r.member} (${r.raft.role} of term ${r.raft.term}, leader ${r.raft.leader ?? 'unknown'}, voters ${conf.voters.join(',') || '-'}, learners ${conf.learners.join(',') || '-'}, applied ${r.appliedIndex})`);
    }
  }
  if (leftovers.length > 0) throw new PartitionsCheckFailure(seed, `replicas left on nodes the placement moved them off: ${leftovers.join(', ')}\n${describeGroups()}`);
  if (referee.problem) throw new PartitionsCheckFailure(seed, referee.problem);

  // --- The end checks ------------------------------------------------------------------------------------------
  const finalOps: Operation<PkvInput, PkvOutput>[] = keyReads.map((f, i) => {
    const g = f.value as GetResult;
    return { clientId: 'final', input: { kind: 'get', key: keys[i]! }, output: g.ok && g.found ? decodeUtf8(g.value) : null, callMs: f.callMs, returnMs: f.returnMs };
  });
  const ops = [...history.flatMap(projections), ...finalOps];
  const lin = checkLinearizable(partitionKvModel, ops, { maxSteps: 500_000 });
  if (lin.ok === false) throw new RaftLinearizabilityFailure(seed, `${lin.reason}\n${lin.operations.slice(-40).join('\n')}`);
  const lost = checkNoLostWrites(ops, finalOps);
  if (lost) throw new PartitionsCheckFailure(seed, lost);
  const finalQueues = new Map(queueReads.map((f, i) => [queues[i]!, f.value as QueueScanResult]));
  const queueProblem = checkQueues(ackedEnqueues, seenDeliveries, ackAnsweredAt, referee, finalQueues, groupOfName);
  if (queueProblem) throw new PartitionsCheckFailure(seed, queueProblem);

  return {
    hash: sim.trace.hash(),
    events: sim.eventCount,
    virtualMs: sim.nowMs(),
    stats: {
      ...sim.stats(),
      nodes: nodeCount,
      partitions,
      ops: history.length,
      answered,
      unknown: history.filter((op) => !op.done).length,
      enqueued: ackedEnqueues.length,
      itemsDelivered: seenDeliveries.length,
      acked: ackAnsweredAt.size,
      placementMoves: moves,
      killed: gone.size,
      drained: draining.size,
      membershipSteps: referee.steps,
      retriesDeduplicated: referee.deduplicated,
      storesReplayed: referee.replayed,
      snapshotInstalls: referee.installs,
      storeCopies: referee.stores,
      maxIndex: referee.maxIndex,
      recoveryMs,
      linearizabilityUnknown: lin.ok === 'unknown' ? 1 : 0,
    },
  };
}

/**
 * No acknowledged write is lost: the final read of each key returns the value of a write that no acknowledged write
 * is known (in real time) to have overwritten: one that returned before that write was called. Null stands for the
 * initial state and for deletes.
 */
export function checkNoLostWrites(ops: readonly Operation<PkvInput, PkvOutput>[], finals: readonly Operation<PkvInput, PkvOutput>[]): string | undefined {
  for (const f of finals) {
    const key = f.input.key;
    const writes: { value: string | null; callMs: number; returnMs: number; effective: boolean }[] = [{ value: null, callMs: -Infinity, returnMs: -Infinity, effective: true }];
    for (const o of ops) {
      if (o.input.key !== key || o.input.kind === 'get') continue;
      const completed = Number.isFinite(o.returnMs);
      // An operation that did not write (a failed condition) neither supersedes nor is a candidate.
      const wrote = !completed || o.input.kind === 'put' || (o.input.kind === 'del' && o.input.expect === undefined) || o.output === true;
      if (!wrote) continue;
      const value = o.input.kind === 'del' ? null : o.input.value;
      writes.push({ value, callMs: o.callMs, returnMs: o.returnMs, effective: completed });
    }
    const live = writes.filter((w) => !writes.some((w2) => w2 !== w && w2.effective && w2.callMs > w.returnMs));
    if (!live.some((w) => w.value === f.output)) {
      const latest = live.filter((w) => w.effective).map((w) => JSON.stringify(w.value)).join(' or ');
      return `acknowledged write lost: the final read of ${key} at ${f.callMs} ms returned ${JSON.stringify(f.output)}, but the last acknowledged write left ${latest || 'something else'} (or a later one)`;
    }
  }
  return undefined;
}

/**
 * Queues, from the clients' answers, the replicas' applies and the final state: every acknowledged enqueue is still in
 * its queue or was acknowledged by an ack, never both; no value is in a queue twice; an item whose ack was answered is
 * gone; no two deliveries a client saw of one item overlap in partition time.
 */
export function checkQueues(
  ackedEnqueues: readonly AckedEnqueue[],
  seen: readonly SeenDelivery[],
  ackAnsweredAt: ReadonlyMap<string, number>,
  referee: PartitionsReferee,
  finalQueues: ReadonlyMap<string, QueueScanResult>,
  groupOf: (queue: string) => string,
): string | undefined {
  const present = new Map<string, string>();
  for (const [queue, scan] of finalQueues) {
    if (!scan.ok) return `the final scan of ${queue} failed: ${scan.code}`;
    invariant(scan.continuation === undefined, `queue ${queue} holds more items than one scan page`);
    const values = new Set<string>();
    for (const item of scan.items) {
      const value = decodeUtf8(item.value);
      if (values.has(value)) return `queue ${queue} holds ${value} twice`;
      values.add(value);
      present.set(itemKey(groupOf(queue), queue, item.itemId), value);
    }
  }
  for (const e of ackedEnqueues) {
    const k = itemKey(e.group, e.queue, e.itemId);
    const acked = referee.items.get(k)?.ackedAt !== undefined;
    if (present.has(k) && acked) return `item ${e.itemId} (${e.value}) of ${e.queue} was acknowledged and is still in the queue`;
    if (!present.has(k) && !acked) return `acknowledged enqueue lost: ${e.value} (item ${e.itemId}) is neither in ${e.queue} nor acknowledged by a dequeue's ack`;
  }
  for (const k of ackAnsweredAt.keys()) if (present.has(k)) return `item ${k} is still in its queue after its ack was answered`;
  const byItem = new Map<string, SeenDelivery[]>();
  for (const d of seen) {
    const list = byItem.get(d.item) ?? [];
    list.push(d);
    byItem.set(d.item, list);
  }
  for (const [item, list] of byItem) {
    const order = (d: SeenDelivery): number => parseLeaseId(d.leaseId)!.leaseIndex;
    const sorted = [...list].sort((a, b) => order(a) - order(b));
    for (let i = 1; i < sorted.length; i++) {
      const [a, b] = [sorted[i - 1]!, sorted[i]!];
      if (a.leaseId !== b.leaseId && b.startMs < a.expiresMs) return `item ${item} delivered under lease ${b.leaseId} from ${b.startMs} ms while lease ${a.leaseId} ran until ${a.expiresMs} ms`;
    }
  }
  return undefined;
}

export const partitionsScenario: Scenario = {
  name: 'partitions',
  description: 'a stateful service of 4-8 partitions × 3 replicas (Raft groups of the partition core) on 5-7 nodes under loss, duplication, reordering, partitions, torn crashes and restarts, with a node killed for good, a drain and replica moves; KV and queue clients checked for linearizability, exactly-once and lease safety',
  run: (seed, options) => runPartitions(seed, options),
};

export const partitionsNoSessionsScenario: Scenario = {
  name: 'partitions-no-sessions',
  description: 'partitions with a deliberate bug (writes carry no client session, so a retry after a lost answer applies again); the exactly-once checks must catch it',
  run: (seed, options) => runPartitions(seed, { ...options, noSessions: true }),
};

export const PARTITIONS_SCENARIOS: readonly Scenario[] = [partitionsScenario, partitionsNoSessionsScenario];
export const PARTITIONS_MUST_PASS: readonly string[] = [partitionsScenario.name];
