/**
 * Raft under a nemesis, with a key-value workload checked for linearizability.
 *
 * Each seed picks a group (3 or 5 voters), a lossy, duplicating, reordering network, a crash mode, and a fault
 * schedule (partitions, one-way cuts, flapping links, isolation, crashes that lose unsynced writes, restarts,
 * pauses). Clients put, compare-and-set and read (through ReadIndex) three keys, retrying with the same request
 * id on any node when an answer does not come.
 *
 * Checked after every event:
 *   - election safety: at most one leader per term, ever;
 *   - committed entries never change: the first time any member's commit index covers an index, the entry there
 *     is recorded; every member's log at a committed index must match it, and a new leader's log must hold every
 *     entry committed before it;
 *   - state machine safety: every member applies the same entry at each index, in order with no gap, and the
 *     state at a snapshot index is the same everywhere;
 *   - the hard state on disk: the term never decreases and the vote never changes within a term.
 * At the end: the client history is linearizable (Wing–Gong–Lowe, per key), and once the nemesis stops and the
 * network heals, a leader is elected and a new write commits within a bound (liveness).
 */
import { ShoalError } from '../lib/errors.js';
import { Random } from '../lib/random.js';
import { NotLeaderError, ProposalDroppedError } from '../consensus/errors.js';
import type { Entry, HardState, Message, RequestId } from '../consensus/types.js';
import { checkLinearizable, kvModel, type KvInput, type KvOutput, type Operation } from '../sim/linearizability.js';
import { DEFAULT_NEMESIS, scheduleNemesis } from '../sim/nemesis.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../sim/scenario.js';
import { Simulator } from '../sim/simulator.js';
import { decodeText, RaftSimNode, type KvCommand, type KvMachine, type KvResult, type RaftObserver } from './raft-sim.js';

export class RaftLivenessFailure extends ShoalError {
  constructor(seed: number, detail: string) {
    super('ERR_SIM_LIVENESS', `seed ${seed}: ${detail}`, { seed });
  }
}

export class RaftLinearizabilityFailure extends ShoalError {
  constructor(seed: number, detail: string) {
    super('ERR_SIM_LINEARIZABILITY', `seed ${seed}: client history is not linearizable: ${detail}`, { seed });
  }
}

export interface RaftKvOptions extends ScenarioOptions {
  voters?: 3 | 5;
  /** Spare nodes outside the group that an operator adds and removes during the run (default: a third of the seeds). */
  membershipChurn?: boolean;
  /** The deliberately broken variant: syncs after sending. Its seeds must fail. */
  unsafeSyncLate?: boolean;
  /** The deliberately broken variant: a retried command is applied again. */
  unsafeNoDedup?: boolean;
  /** The deliberately broken variant: reads served locally without ReadIndex. Must fail linearizability. */
  unsafeLocalReads?: boolean;
  preVote?: boolean;
  /** Reads through the leader's lease instead of a heartbeat round. */
  readOnly?: 'safe' | 'lease';
  /** Leave process pauses out of the fault mix (a paused leader's clock stops: leases cannot survive that). */
  noPauses?: boolean;
  checkQuorum?: boolean;
  /** Check that what a node acts on is durable (off: leave the protocol-level checks alone to catch a bug). */
  checkDurability?: boolean;
  /** Faults four times as often (each crash may take down any number of nodes) and 10% loss. */
  harsh?: boolean;
  /** False: no nemesis, no transfers, no churn, only the lossy network (a steady run). Default true. */
  faults?: boolean;
  /** Network loss rate (default: picked by the seed among 0, 1% and 5%). */
  lossRate?: number;
  /** Virtual time the nemesis runs. */
  faultMs?: number;
  /**
   * Idle groups go quiet. Clients then think 100-700 ms between operations, so the group idles often, and a failure
   * detector stands in for gossip: a member that cannot reach another (down, or the link cut either way) for
   * FD_DELAY_MS suspects it, again every FD_REPEAT_MS while it lasts (gossip's suspect, then dead), and now and
   * then a member suspects a healthy one by mistake.
   */
  quiesce?: boolean;
}

const TICK_MS = 10;
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
const CLIENT_TIMEOUT_MS = 400;
const LIVENESS_BOUND_MS = 3_000;
/** The quiesce variant's failure detector: how often it looks, how long a fault lasts before it suspects, how often it says so again. */
const FD_PERIOD_MS = 50;
const FD_DELAY_MS = 150;
const FD_REPEAT_MS = 300;
/** Chance, per look, that one member suspects a random healthy one (a false suspicion, which Lifeguard makes rare but not impossible). */
const FD_FALSE_SUSPICION_RATE = 0.01;
const KEYS = ['k0', 'k1', 'k2'];
const HS_KEY = 'raft/hs';

const entryDigest = (e: Entry): string =>
  `${e.term}/${e.type}/${decodeText(e.data)}/${e.request ? `${e.request.clientId}#${e.request.seq}` : ''}/${e.conf ? `${e.conf.type}:${e.conf.member}` : ''}`;

/** The global record the invariants compare every member against. */
export class Referee implements RaftObserver {
  readonly leaderByTerm = new Map<number, string>();
  /**
   * Committed entries by index: the entry, and the lowest term any member was in when it saw the entry committed
   * (an upper bound of the term in which it was committed).
   */
  readonly committed = new Map<number, { digest: string; term: number; entryTerm: number }>();
  maxCommitted = 0;
  readonly stateAt = new Map<number, string>();
  readonly lastApplied = new Map<string, number>();
  /** Per node: commit index already checked against `committed` (reset at every boot). */
  readonly checkedTo = new Map<string, { incarnation: number; index: number }>();
  readonly durable = new Map<string, { term: number; vote: string | undefined }>();
  readonly durableCache = new Map<string, { version: string; hs: HardState | undefined }>();
  problem: string | undefined;
  installs = 0;
  confChanges = 0;

  constructor(readonly checkDurability: boolean) {}

  fail(problem: string): void {
    this.problem ??= problem;
  }

  #recordCommitted(node: string, entry: Entry, observerTerm: number): void {
    const digest = entryDigest(entry);
    const known = this.committed.get(entry.index);
    if (known === undefined) {
      this.committed.set(entry.index, { digest, term: observerTerm, entryTerm: entry.term });
      if (entry.index > this.maxCommitted) this.maxCommitted = entry.index;
    } else if (known.digest !== digest) {
      this.fail(`committed entry ${entry.index} changed: recorded ${known.digest}, ${node} has ${digest}`);
    } else if (observerTerm < known.term) {
      known.term = observerTerm;
    }
  }

  applied(node: string, entry: Entry, machine: KvMachine, term: number): void {
    const last = this.lastApplied.get(node) ?? 0;
    if (entry.index !== last + 1) this.fail(`${node} applied index ${entry.index} after ${last} (gap or repeat)`);
    this.lastApplied.set(node, entry.index);
    if (!this.committed.has(entry.index) && entry.type === 'conf' && entry.term > 1) this.confChanges++;
    this.#recordCommitted(node, entry, term);
    const state = this.stateAt.get(entry.index);
    if (state !== undefined && state !== machine.digest()) this.fail(`${node} state at ${entry.index} differs from the snapshot taken there`);
  }

  snapshotTaken(node: string, index: number, machine: KvMachine): void {
    const digest = machine.digest();
    const known = this.stateAt.get(index);
    if (known === undefined) this.stateAt.set(index, digest);
    else if (known !== digest) this.fail(`${node} snapshot at ${index} differs from another member's state there`);
  }

  snapshotRestored(node: string, snapshot: { metadata: { index: number } }, machine: KvMachine, installed: boolean): void {
    const index = snapshot.metadata.index;
    if (installed) this.installs++;
    this.lastApplied.set(node, index);
    const known = this.stateAt.get(index);
    if (known !== undefined && known !== machine.digest()) this.fail(`${node} restored a snapshot at ${index} that differs from the state recorded there`);
  }

  answered(): void {
    // Answers are checked through the client history (linearizability), not here.
  }

  booted(node: string): void {
    // A restarted node re-applies from its snapshot (or from the start): its apply sequence starts over.
    this.lastApplied.set(node, 0);
  }

  check(sim: Simulator<Message>): string | undefined {
    if (this.problem) return this.problem;
    for (const id of sim.nodeIds()) {
      // Hard state on disk: terms never go down, a vote is never changed within a term.
      // The disk changes only on a sync (or, in torn mode, at a crash, seen at the restart): read it only then.
      const storage = sim.storage(id);
      const version = `${storage.syncCount}/${sim.incarnation(id)}`;
      let cached = this.durableCache.get(id);
      if (cached === undefined || cached.version !== version) {
        cached = { version, hs: storage.durable(HS_KEY) as HardState | undefined };
        this.durableCache.set(id, cached);
      }
      const hs = cached.hs;
      if (hs !== undefined) {
        const prev = this.durable.get(id);
        if (prev && hs.term < prev.term) return `${id}: term on disk went back from ${prev.term} to ${hs.term}`;
        if (prev && hs.term === prev.term && prev.vote !== undefined && hs.vote !== prev.vote) return `${id}: vote on disk changed within term ${hs.term}: ${prev.vote} -> ${hs.vote}`;
        this.durable.set(id, { term: hs.term, vote: hs.vote });
      }
      const node = sim.node(id) as RaftSimNode | undefined;
      if (!node) continue;
      const raft = node.raft;
      // Persist before send: between events, what a node acts on (and has told others) is on disk.
      if (this.checkDurability && (hs === undefined ? raft.term > 0 : hs.term !== raft.term || hs.vote !== raft.vote)) {
        return `${id} acts on term ${raft.term} vote ${raft.vote ?? '-'} but its disk holds term ${hs?.term ?? '-'} vote ${hs?.vote ?? '-'}`;
      }
      // Election safety.
      if (raft.role === 'leader') {
        const known = this.leaderByTerm.get(raft.term);
        if (known === undefined) {
          this.leaderByTerm.set(raft.term, id);
          // Leader completeness: the new leader holds every entry committed in an earlier term. (A stale leader of
          // an old term, elected late by a delayed vote, may lack entries committed in later terms; that is fine.)
          for (let i = Math.max(raft.log.firstIndex(), 1); i <= this.maxCommitted; i++) {
            const want = this.committed.get(i);
            if (want === undefined || want.term >= raft.term) continue;
            const t = raft.log.term(i);
            if (t !== want.entryTerm) return `leader ${id} of term ${raft.term} lacks entry ${i} (${want.digest}) committed by term ${want.term}; its term there is ${t}`;
          }
        } else if (known !== id) {
          return `two leaders in term ${raft.term}: ${known} and ${id}`;
        }
      }
      // Log matching for committed entries.
      const inc = sim.incarnation(id);
      let checked = this.checkedTo.get(id);
      if (!checked || checked.incarnation !== inc) {
        checked = { incarnation: inc, index: 0 };
        this.checkedTo.set(id, checked);
      }
      const commit = raft.log.committed;
      if (commit > checked.index) {
        const from = Math.max(checked.index + 1, raft.log.firstIndex());
        if (from <= commit) {
          for (const e of raft.log.slice(from, commit + 1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)) {
            this.#recordCommitted(id, e, raft.term);
          }
        }
        checked.index = commit;
        if (this.problem) return this.problem;
      }
    }
    return undefined;
  }
}

interface ClientOp {
  op: Operation<KvInput, KvOutput>;
  request: RequestId;
  attempt: number;
  done: boolean;
}

export function runRaftKv(seed: number, options: RaftKvOptions = {}): ScenarioResult {
  const root = Random.fromSeed(seed);
  const pick = root.split();
  const voterCount = options.voters ?? (pick.chance(0.5) ? 3 : 5);
  const churn = (options.faults ?? true) && (options.membershipChurn ?? pick.chance(1 / 3));
  const voters = Array.from({ length: voterCount }, (_, i) => `n${i + 1}`);
  const spares = churn ? ['s1', 's2'] : [];
  const ids = [...voters, ...spares];
  const pickedLoss = pick.pick([0, 0.01, 0.05]);
  const lossRate = options.lossRate ?? (options.harsh ? 0.1 : pickedLoss);
  const faults = options.faults ?? true;
  const crashMode = pick.chance(0.5) ? 'torn' : 'drop-unsynced';
  const faultMs = options.faultMs ?? 6_000;
  const startMs = 500;
  const endMs = startMs + faultMs;
  const referee = new Referee(options.checkDurability ?? true);

  const sim = new Simulator<Message>({
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
      `${m.type} t${m.term} i${m.index} lt${m.logTerm} c${m.commit}${m.entries.length ? ` e${m.entries[0]!.index}-${m.entries[m.entries.length - 1]!.index}` : ''}${m.reject ? ` rej h${m.rejectHint}` : ''}${m.snapshot ? ` snap@${m.snapshot.metadata.index}` : ''}${m.context ? ` ctx=${m.context}` : ''}`,
    createNode: (ctx) => {
      referee.booted(ctx.id);
      return new RaftSimNode(ctx, {
        group: 'kv',
        initialVoters: voters,
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: HEARTBEAT_TICKS,
        preVote: options.preVote ?? true,
        checkQuorum: options.checkQuorum ?? true,
        readOnly: options.readOnly ?? 'safe',
        snapshotEvery: 40,
        keepEntriesAfterSnapshot: 10,
        unsafeSyncLate: options.unsafeSyncLate ?? false,
        unsafeLocalReads: options.unsafeLocalReads ?? false,
        unsafeNoDedup: options.unsafeNoDedup ?? false,
        quiesce: options.quiesce ?? false,
        observer: referee,
      });
    },
  });
  sim.addInvariant('raft safety', (s) => referee.check(s));

  const nodeOf = (id: string): RaftSimNode | undefined => sim.node(id) as RaftSimNode | undefined;
  const leaderNode = (): { id: string; node: RaftSimNode } | undefined => {
    let best: { id: string; node: RaftSimNode } | undefined;
    for (const id of sim.upNodeIds()) {
      const node = nodeOf(id);
      if (node && node.raft.role === 'leader' && (!best || node.raft.term > best.node.raft.term)) best = { id, node };
    }
    return best;
  };

  // --- Faults -----------------------------------------------------------------------------------------------------
  const nemesisRandom = root.split();
  if (faults) {
    scheduleNemesis(sim, nemesisRandom, {
      ...DEFAULT_NEMESIS,
      weights: { ...DEFAULT_NEMESIS.weights, pause: options.noPauses ? 0 : DEFAULT_NEMESIS.weights.pause },
      meanIntervalMs: options.harsh ? 250 : 600,
      maxFaultMs: 2_500,
      startMs,
      endMs,
      // A harsh run may take down a majority at once: safety must still hold, liveness only after the heal.
      maxDownNodes: options.harsh ? voterCount : voterCount === 5 ? 2 : 1,
    });
  }

  // --- Failure detector (quiesce variant) --------------------------------------------------------------------------
  let quietLooks = 0;
  if (options.quiesce) {
    const fdRandom = root.split();
    const since = new Map<string, { fromMs: number; toldMs: number }>();
    const look = (): void => {
      const now = sim.nowMs();
      const up = sim.upNodeIds();
      const l = leaderNode();
      if (l?.node.raft.quiesced) quietLooks++;
      for (const a of up) {
        for (const b of ids) {
          if (a === b) continue;
          const key = `${a}>${b}`;
          if (sim.isUp(b) && !sim.network.isCut(a, b) && !sim.network.isCut(b, a)) {
            since.delete(key);
            continue;
          }
          const s = since.get(key) ?? { fromMs: now, toldMs: -Infinity };
          since.set(key, s);
          if (now - s.fromMs >= FD_DELAY_MS && now - s.toldMs >= FD_REPEAT_MS) {
            s.toldMs = now;
            nodeOf(a)?.memberUnreachable(b);
          }
        }
      }
      if (up.length > 1 && fdRandom.float() < FD_FALSE_SUSPICION_RATE) {
        const a = fdRandom.pick(up);
        nodeOf(a)?.memberUnreachable(fdRandom.pick(ids.filter((id) => id !== a)));
      }
      sim.after(FD_PERIOD_MS, 'failure detector', look);
    };
    sim.at(FD_PERIOD_MS, 'failure detector', look);
  }

  // --- Membership churn: an operator adds a spare as learner, promotes it, removes a voter, and again -----------
  if (churn) {
    const opRandom = root.split();
    for (let t = startMs + 300; t < endMs; t += 400 + opRandom.int(400)) {
      sim.at(t, 'operator membership step', () => {
        const l = leaderNode();
        if (!l) return;
        const conf = l.node.raft.confState();
        const outside = ids.filter((id) => !conf.voters.includes(id) && !conf.learners.includes(id));
        const learner = conf.learners[0];
        if (learner !== undefined) l.node.changeMembership('addVoter', learner);
        else if (conf.voters.length > voterCount) {
          // Any voter, the leader included: a leader that removes itself steps down once the change commits.
          l.node.changeMembership('removeMember', opRandom.pick(conf.voters));
        } else if (outside.length > 0) l.node.changeMembership('addLearner', opRandom.pick(outside));
      });
    }
  }

  // --- Leadership transfers now and then ------------------------------------------------------------------------
  const transferRandom = root.split();
  for (let t = startMs + 700; faults && t < endMs; t += 1_500 + transferRandom.int(1_500)) {
    sim.at(t, 'operator transfer leadership', () => {
      const l = leaderNode();
      if (!l) return;
      const others = l.node.raft.voters.filter((v) => v !== l.id && sim.isUp(v));
      if (others.length > 0) l.node.transfer(transferRandom.pick(others));
    });
  }

  // --- Clients --------------------------------------------------------------------------------------------------
  const history: ClientOp[] = [];
  const clientRandom = root.split();
  const workloadEndMs = endMs;
  const clients = ['c1', 'c2', 'c3'];
  const leaderHint = new Map<string, string>();
  let answered = 0;

  const finish = (c: ClientOp, output: KvOutput): void => {
    if (c.done) return;
    c.done = true;
    c.op.output = output;
    c.op.returnMs = sim.nowMs();
    answered++;
    const clientId = c.request.clientId;
    const thinkMs = options.quiesce ? 100 + clientRandom.int(600) : 5 + clientRandom.int(40);
    if (sim.nowMs() < workloadEndMs) sim.after(thinkMs, `client ${clientId} next`, () => startOp(clientId));
  };

  const attempt = (c: ClientOp): void => {
    if (c.done) return;
    c.attempt++;
    const clientId = c.request.clientId;
    const hint = leaderHint.get(clientId);
    const target = hint !== undefined && sim.isUp(hint) ? hint : clientRandom.pick(ids);
    const node = nodeOf(target);
    const thisAttempt = c.attempt;
    const retry = (delayMs: number): void => {
      sim.after(delayMs, `client ${clientId} retry`, () => {
        if (!c.done && c.attempt === thisAttempt) attempt(c);
      });
    };
    if (!node) {
      leaderHint.delete(clientId);
      retry(20);
      return;
    }
    try {
      const input = c.op.input;
      if (input.kind === 'get') {
        node.read(`${clientId}#${c.request.seq}#${thisAttempt}`, input.key, (value) => finish(c, value));
      } else {
        const cmd: KvCommand = input.kind === 'put' ? { op: 'put', key: input.key, value: input.value } : { op: 'cas', key: input.key, expect: input.expect, value: input.value };
        node.submit(c.request, cmd, (r: KvResult | undefined) => {
          if (r !== undefined) finish(c, r);
        });
      }
    } catch (err) {
      if (err instanceof NotLeaderError || err instanceof ProposalDroppedError) {
        if (err instanceof NotLeaderError && err.leader !== undefined && err.leader !== target) leaderHint.set(clientId, err.leader);
        else leaderHint.delete(clientId);
        retry(err instanceof NotLeaderError && err.leader !== undefined ? 1 : 30);
        return;
      }
      throw err;
    }
    retry(CLIENT_TIMEOUT_MS);
    // A timeout also makes the next attempt try someone else.
    sim.after(CLIENT_TIMEOUT_MS - 1, `client ${clientId} forget leader`, () => {
      if (!c.done && c.attempt === thisAttempt) leaderHint.delete(clientId);
    });
  };

  const seqs = new Map<string, number>();
  const startOp = (clientId: string): void => {
    if (sim.nowMs() >= workloadEndMs) return;
    const seq = (seqs.get(clientId) ?? 0) + 1;
    seqs.set(clientId, seq);
    const key = clientRandom.pick(KEYS);
    const r = clientRandom.float();
    const value = `${clientId}.${seq}`;
    let input: KvInput;
    if (r < 0.4) input = { kind: 'get', key };
    else if (r < 0.75) input = { kind: 'put', key, value };
    else {
      const prior = [...history].reverse().find((h) => h.op.input.key === key && h.done && h.op.input.kind !== 'get');
      const expect = prior && prior.op.input.kind !== 'get' ? prior.op.input.value : null;
      input = { kind: 'cas', key, expect, value };
    }
    const c: ClientOp = { op: { clientId, input, output: undefined, callMs: sim.nowMs(), returnMs: Infinity }, request: { clientId, seq }, attempt: 0, done: false };
    history.push(c);
    attempt(c);
  };
  for (const [i, clientId] of clients.entries()) sim.at(300 + i * 7, `client ${clientId} start`, () => startOp(clientId));

  // --- Run ------------------------------------------------------------------------------------------------------
  sim.runUntil(endMs);
  // Liveness: the nemesis healed the network and restarted everyone at endMs. Within the bound a leader exists
  // and a fresh write commits.
  sim.network.setDefaults({ lossRate: 0, duplicateRate: 0, reorderRate: 0 });
  const healedAt = sim.nowMs();
  let marker: { index: number; term: number; leader: string } | undefined;
  let livenessSeq = 0;
  const live = sim.runUntilTrue(() => {
    const l = leaderNode();
    if (!l) return false;
    if (marker === undefined || marker.leader !== l.id || marker.term !== l.node.raft.term) {
      try {
        const at = l.node.submit({ clientId: 'liveness', seq: ++livenessSeq }, { op: 'put', key: 'liveness', value: String(sim.nowMs()) }, () => {});
        marker = { ...at, leader: l.id };
      } catch (err) {
        if (err instanceof NotLeaderError || err instanceof ProposalDroppedError) return false;
        throw err;
      }
    }
    return l.node.raft.log.committed >= marker.index && l.node.raft.log.term(marker.index) === marker.term;
  }, LIVENESS_BOUND_MS);
  if (!live) {
    const view = ids.map((id) => {
      const n = nodeOf(id);
      return n ? `${id}:${n.raft.role}@t${n.raft.term} c${n.raft.log.committed} last${n.raft.log.lastIndex()}` : `${id}:down`;
    });
    throw new RaftLivenessFailure(seed, `no write committed within ${LIVENESS_BOUND_MS} ms after the network healed at ${healedAt} ms: ${view.join(' ')}`);
  }
  const recoveryMs = sim.nowMs() - healedAt;
  // Let pending client retries finish, then check the history.
  sim.runFor(1_000);
  const ops = history.map((h) => h.op);
  const lin = checkLinearizable(kvModel, ops, { maxSteps: 500_000 });
  if (lin.ok === false) throw new RaftLinearizabilityFailure(seed, `${lin.reason}\n${lin.operations.slice(-40).join('\n')}`);

  return {
    hash: sim.trace.hash(),
    events: sim.eventCount,
    virtualMs: sim.nowMs(),
    stats: {
      ...sim.stats(),
      voters: voterCount,
      ops: ops.length,
      answered,
      committed: referee.maxCommitted,
      terms: referee.leaderByTerm.size,
      snapshotInstalls: referee.installs,
      confChanges: referee.confChanges,
      reads: history.filter((h) => h.done && h.op.input.kind === 'get').length,
      recoveryMs,
      quietLooks,
      linearizabilityUnknown: lin.ok === 'unknown' ? 1 : 0,
    },
  };
}

export const raftKvScenario: Scenario = {
  name: 'raft-kv',
  description: 'Raft group (3 or 5 voters; a third of the seeds with membership churn) under loss, duplication, reordering, partitions, flapping links, crashes and pauses, with leadership transfers; KV clients checked for linearizability',
  run: (seed, options) => runRaftKv(seed, options),
};

export const raftChurnScenario: Scenario = {
  name: 'raft-membership-churn',
  description: 'raft-kv with an operator adding learners, promoting them and removing voters during the faults',
  run: (seed, options) => runRaftKv(seed, { ...options, voters: 3, membershipChurn: true }),
};

export const raftHarshScenario: Scenario = {
  name: 'raft-kv-harsh',
  description: 'raft-kv with faults four times as often, 10% loss, and crashes of any number of nodes at once',
  run: (seed, options) => runRaftKv(seed, { ...options, harsh: true }),
};

export const raftPlainScenario: Scenario = {
  name: 'raft-kv-plain',
  description: 'raft-kv without pre-vote and check-quorum: they serve liveness, safety must hold without them',
  run: (seed, options) => runRaftKv(seed, { ...options, preVote: false, checkQuorum: false }),
};

export const raftLeaseScenario: Scenario = {
  name: 'raft-kv-lease',
  description: 'raft-kv reading through the leader lease (readOnly: lease), without process pauses, which no lease survives',
  run: (seed, options) => runRaftKv(seed, { ...options, readOnly: 'lease', noPauses: true }),
};

export const raftQuiesceScenario: Scenario = {
  name: 'raft-kv-quiesce',
  description: 'raft-kv with quiet idle groups (no heartbeats while idle): clients pause between operations, a failure detector (with false suspicions) tells members who is unreachable',
  run: (seed, options) => runRaftKv(seed, { ...options, quiesce: true }),
};

export const raftUnsafeScenario: Scenario = {
  name: 'raft-kv-unsafe',
  description: 'raft-kv with a deliberate bug (messages sent before the hard state and entries are synced); its seeds are expected to fail',
  run: (seed, options) => runRaftKv(seed, { ...options, unsafeSyncLate: true }),
};

export const raftStaleReadsScenario: Scenario = {
  name: 'raft-kv-stale-reads',
  description: 'raft-kv with a deliberate bug (reads served from local state without ReadIndex); the linearizability check must catch it',
  run: (seed, options) => runRaftKv(seed, { ...options, unsafeLocalReads: true }),
};

export const raftNoDedupScenario: Scenario = {
  name: 'raft-kv-no-dedup',
  description: 'raft-kv with a deliberate bug (a retried command is applied again, no client sessions); the linearizability check must catch it on some seeds',
  run: (seed, options) => runRaftKv(seed, { ...options, unsafeNoDedup: true }),
};

export const RAFT_SCENARIOS: readonly Scenario[] = [raftKvScenario, raftChurnScenario, raftHarshScenario, raftPlainScenario, raftLeaseScenario, raftQuiesceScenario, raftUnsafeScenario, raftStaleReadsScenario, raftNoDedupScenario];

/** The raft scenarios every seed must pass (the test suite sweeps them; the unsafe one must fail). */
export const RAFT_MUST_PASS: readonly string[] = [raftKvScenario.name, raftQuiesceScenario.name];
