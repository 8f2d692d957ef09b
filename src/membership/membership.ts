/**
 * The membership core: SWIM failure detection and gossip with Lifeguard, as a deterministic state machine.
 *
 * It owns no timer, socket or clock. The runtime (or the simulator) calls `tick()` at `nextWakeMs()` or on a short
 * fixed period (see README.md), hands it every message with `receive(from, message)`, and after each call takes
 * the effects with `drainEffects()`: the incarnation to persist (always first: persist before sending), messages
 * to send, and member events. Time comes from the `Clock` it is given; randomness from the seeded `Random`.
 *
 * The rules for ordering rumours (README.md has the diagram): a higher incarnation always wins; at an equal
 * incarnation suspect/dead/left beat alive; only the node itself raises its incarnation, to refute an accusation
 * or to announce new metadata.
 */
import { invariant } from '../lib/assert.js';
import type { Clock } from '../lib/clock.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import { BroadcastQueue } from './broadcast-queue.js';
import {
  DEFAULT_MEMBERSHIP_CONFIG,
  expectedConfirmations,
  pushPullIntervalForMs,
  retransmitLimit,
  suspicionMinTimeoutMs,
  validateMembershipConfig,
  type MembershipConfig,
} from './config.js';
import { metaKey, metaProblem, metaSizeBytes, rumourSizeBytes, utf8Bytes, validateMeta } from './meta.js';
import { Suspicion } from './suspicion.js';
import type {
  GossipMessage,
  MemberEventKind,
  MemberSnapshot,
  MemberStatus,
  MembershipEffect,
  NodeMeta,
  PushPullState,
  Rumour,
} from './types.js';

export interface MembershipOptions {
  /** This node's id (stable across restarts). */
  id: string;
  meta: NodeMeta;
  clock: Clock;
  random: Random;
  /** The incarnation to start with: one more than the last one persisted (0 on a first start). */
  incarnation?: number;
  config?: Partial<MembershipConfig>;
}

interface Member {
  readonly id: string;
  incarnation: number;
  status: MemberStatus;
  meta: NodeMeta;
  metaSizeBytes: number;
  statusChangedAtMs: number;
}

interface Probe {
  seq: number;
  target: string;
  ackDeadlineMs: number;
  endMs: number;
  indirectStarted: boolean;
  indirectSent: number;
  nacks: number;
}

interface Relay {
  requester: string;
  requesterSeq: number;
  nackAtMs: number;
  nackSent: boolean;
  expiresAtMs: number;
}

/** Bytes a message costs besides its rumours (kind, seq, target, framing), counted generously. */
const MESSAGE_OVERHEAD_BYTES = 64 + LIMITS.membershipMaxNodeIdBytes;
/** Bytes between two rumours in a list (the comma in the JSON measure). */
const PER_RUMOUR_OVERHEAD_BYTES = 1;
/** Bytes a push-pull state costs besides its id and metadata. */
const PER_STATE_OVERHEAD_BYTES = 64;

export class Membership {
  readonly id: string;
  readonly config: Readonly<MembershipConfig>;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #members = new Map<string, Member>();
  /** Ids of alive and suspect members other than this node, for O(1) random picks. */
  readonly #live: string[] = [];
  readonly #liveIndex = new Map<string, number>();
  /** Ids of dead members (not left), for reconnect attempts after a partition. */
  readonly #dead = new Set<string>();
  /** Ids of left members, so reaping looks only at the members it may reap. */
  readonly #left = new Set<string>();
  /** Incarnations of reaped members, so a stale rumour cannot resurrect them. Insertion order = age. */
  readonly #tombstones = new Map<string, number>();
  readonly #suspicions = new Map<string, Suspicion>();
  readonly #queue = new BroadcastQueue(LIMITS.membershipMaxQueuedRumours);
  readonly #relays = new Map<number, Relay>();
  #effects: MembershipEffect[] = [];
  #persistIncarnation: number | undefined;
  #awareness = 0;
  #seq = 0;
  #probe: Probe | undefined;
  #probeOrder: string[] = [];
  #probeIndex = 0;
  #lastTickMs: number | undefined;
  #nextProbeMs: number;
  #nextGossipMs: number;
  #nextPushPullMs: number;
  #nextReconnectMs: number;
  #nextReapMs: number;
  #nextJoinRetryMs = 0;
  #seeds: string[] = [];
  #leaving = false;
  #quiet = false;
  /** Set while handling a message that accused us at an incarnation we already out-bid. */
  #staleAccusation = false;
  /** While handling a message: the nodes whose own timers run against us (the `from` of suspect and dead rumours). */
  readonly #accusers = new Set<string>();
  /** Unknown senders we answered with a push-pull, and when: a node that joined while we missed its rumour. */
  readonly #introductions = new Map<string, number>();
  /** Counters for tests, benchmarks and metrics. */
  readonly counters = { messagesSent: 0, probes: 0, probesFailed: 0, refutations: 0, stalls: 0 };

  constructor(options: MembershipOptions) {
    const config = { ...DEFAULT_MEMBERSHIP_CONFIG, ...options.config };
    validateMembershipConfig(config);
    checkNodeId(options.id, 'id');
    validateMeta(options.meta);
    const incarnation = options.incarnation ?? 0;
    if (!Number.isSafeInteger(incarnation) || incarnation < 0) {
      throw new InvalidArgumentError(`membership: incarnation must be a non-negative integer, got ${String(incarnation)}`, { field: 'incarnation' });
    }
    this.id = options.id;
    this.config = Object.freeze(config);
    this.#clock = options.clock;
    this.#random = options.random;
    const now = this.#clock.nowMs();
    this.#members.set(this.id, { id: this.id, incarnation, status: 'alive', meta: options.meta, metaSizeBytes: metaSizeBytes(options.meta), statusChangedAtMs: now });
    // Spread the timers of nodes that start together, so they do not probe and gossip in lockstep.
    this.#nextProbeMs = now + this.#random.int(config.probeIntervalMs);
    this.#nextGossipMs = now + this.#random.int(config.gossipIntervalMs);
    this.#nextPushPullMs = now + this.#random.int(config.pushPullIntervalMs);
    this.#nextReconnectMs = now + this.#random.int(config.reconnectIntervalMs);
    this.#nextReapMs = now + config.reconnectIntervalMs;
    this.#persistIncarnation = incarnation;
    this.#queue.enqueue(this.#selfAliveRumour());
  }

  // --- Observation -----------------------------------------------------------------------------------------------

  get incarnation(): number {
    return this.#self().incarnation;
  }

  /** This node's status in its own view: ALIVE, or LEFT once it has left. */
  get status(): MemberStatus {
    return this.#self().status;
  }

  get leaving(): boolean {
    return this.#leaving;
  }

  /** Lifeguard's local health score: 0 is healthy; probe interval and timeout are scaled by (score + 1). */
  get awarenessScore(): number {
    return this.#awareness;
  }

  /** Members alive or suspect, this node included: the "n" of every formula. */
  get liveCount(): number {
    return this.#live.length + 1;
  }

  get queuedRumours(): number {
    return this.#queue.size;
  }

  member(id: string): MemberSnapshot | undefined {
    const m = this.#members.get(id);
    return m === undefined ? undefined : snapshot(m);
  }

  /** Every member this node knows, itself included, sorted by id. */
  members(): MemberSnapshot[] {
    return [...this.#members.values()].map(snapshot).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The active suspicion about `id`, for tests: its confirmations and deadline. */
  suspicion(id: string): { confirmations: number; deadlineMs: number } | undefined {
    const s = this.#suspicions.get(id);
    return s === undefined ? undefined : { confirmations: s.confirmations, deadlineMs: s.deadlineMs };
  }

  /**
   * The earliest virtual time at which `tick()` has something to do, for a runtime that sleeps between ticks: call
   * `tick()` then, and ask again after every call into the core (a message can bring an earlier deadline). Timers
   * that would do nothing are left out (the gossip round while no rumour is queued, reconnects while nobody is DEAD,
   * reaping while nobody is DEAD or LEFT, probing once leaving), so an idle node wakes about once per probe interval.
   */
  nextWakeMs(): number {
    let t = Math.min(this.#dueMs(), this.#nextPushPullMs);
    if (this.#queue.size > 0) t = Math.min(t, this.#nextGossipMs);
    if (this.#dead.size > 0) t = Math.min(t, this.#nextReconnectMs);
    if (this.#dead.size > 0 || this.#left.size > 0) t = Math.min(t, this.#nextReapMs);
    if (this.#live.length === 0 && this.#seeds.length > 0 && !this.#leaving) t = Math.min(t, this.#nextJoinRetryMs);
    return t;
  }

  /**
   * The earliest deadline that failure detection waits on (the next probe, the current probe's ack or end, a
   * suspicion, a relayed probe); Infinity when there is none. A tick that comes more than stallThresholdMs after it
   * means this process did not run in between (see `tick`).
   */
  #dueMs(): number {
    // While a probe is out, the next one waits for it to end: its own deadlines are the ones that matter.
    let t = this.#leaving ? Infinity : this.#nextProbeMs;
    if (this.#probe) t = this.#probe.indirectStarted ? this.#probe.endMs : this.#probe.ackDeadlineMs;
    for (const s of this.#suspicions.values()) t = Math.min(t, s.deadlineMs);
    for (const r of this.#relays.values()) t = Math.min(t, r.nackSent ? r.expiresAtMs : r.nackAtMs);
    return t;
  }

  /** Takes the effects produced so far: the incarnation to persist first (if it changed), then sends and events. */
  drainEffects(): MembershipEffect[] {
    const out = this.#effects;
    this.#effects = [];
    if (this.#persistIncarnation !== undefined) {
      out.unshift({ kind: 'persist', incarnation: this.#persistIncarnation });
      this.#persistIncarnation = undefined;
    }
    return out;
  }

  // --- Commands --------------------------------------------------------------------------------------------------

  /** Contacts seed members with a push-pull; their answers fill this node's view. */
  join(seedIds: readonly string[]): void {
    for (const seed of seedIds) checkNodeId(seed, 'seed');
    // Remembered for retries: a lost push-pull must not leave a node alone for good.
    this.#seeds = seedIds.filter((seed) => seed !== this.id).slice(0, LIMITS.membershipMaxMembers);
    this.#nextJoinRetryMs = this.#clock.nowMs() + this.config.joinRetryIntervalMs;
    for (const seed of this.#seeds) this.#send(seed, { kind: 'push-pull', reply: true, states: this.#localStates() });
  }

  /**
   * Adds members known out of band (a runtime's saved peer list, a simulator's warm start) as if a push-pull had
   * brought them. `from` is who vouches for them.
   */
  mergeStates(from: string, states: readonly PushPullState[], options: { gossip?: boolean } = {}): void {
    // Without gossip, members new to us are not re-announced: everyone learns them the same way.
    this.#quiet = options.gossip === false;
    try {
      this.#mergeStates(from, states);
    } finally {
      this.#quiet = false;
    }
  }

  /** Announces new metadata: bumps the incarnation (persisted first) and gossips it. */
  updateMeta(meta: NodeMeta): void {
    validateMeta(meta);
    invariant(!this.#leaving, 'updateMeta after leave');
    const self = this.#self();
    const previousIncarnation = self.incarnation;
    self.incarnation++;
    self.meta = meta;
    self.metaSizeBytes = metaSizeBytes(meta);
    this.#persistIncarnation = self.incarnation;
    this.#queue.enqueue(this.#selfAliveRumour());
    this.#emit('updated', self, 'alive', previousIncarnation);
  }

  /**
   * Graceful leave: tells `leaveFanout` members at once and keeps gossiping the leave until the runtime stops the
   * node (it should keep ticking for a few gossip intervals). Others mark this node LEFT, never DEAD.
   */
  leave(): void {
    if (this.#leaving) return;
    this.#leaving = true;
    const self = this.#self();
    self.status = 'left';
    self.statusChangedAtMs = this.#clock.nowMs();
    this.#probe = undefined;
    const rumour: Rumour = { kind: 'left', node: this.id, incarnation: self.incarnation };
    this.#queue.clear();
    this.#queue.enqueue(rumour);
    for (const to of this.#pickLive(this.config.leaveFanout, undefined)) this.#send(to, { kind: 'gossip', rumours: [rumour] });
    this.#emit('left', self, 'alive', self.incarnation);
  }

  /**
   * Advances timers to the clock's current time. Call it at `nextWakeMs()` (or on any short fixed period). A tick
   * that comes more than stallThresholdMs after a failure-detection deadline fell due means this process did not
   * run in between (GC pause, stopped VM): its deadlines move on by the whole time since the last tick. Measured
   * against the deadline rather than the previous tick, so a runtime may sleep until the next deadline.
   */
  tick(): void {
    const now = this.#clock.nowMs();
    if (this.#lastTickMs !== undefined) {
      invariant(now >= this.#lastTickMs, 'membership clock went backwards', { now, last: this.#lastTickMs });
      if (now - this.#dueMs() > this.config.stallThresholdMs) this.#onStall(now - this.#lastTickMs);
    }
    this.#lastTickMs = now;
    this.#tickRelays(now);
    this.#tickProbe(now);
    this.#tickSuspicions(now);
    if (now >= this.#nextGossipMs) {
      this.#nextGossipMs = now + this.config.gossipIntervalMs;
      this.#gossip();
    }
    if (now >= this.#nextPushPullMs) {
      this.#nextPushPullMs = now + pushPullIntervalForMs(this.config.pushPullIntervalMs, this.liveCount);
      const [to] = this.#pickLive(1, undefined);
      if (to !== undefined && !this.#leaving) this.#send(to, { kind: 'push-pull', reply: true, states: this.#localStates() });
    }
    if (now >= this.#nextReconnectMs) {
      this.#nextReconnectMs = now + this.config.reconnectIntervalMs;
      if (this.#dead.size > 0 && !this.#leaving) {
        const to = this.#random.pick([...this.#dead]);
        this.#send(to, { kind: 'push-pull', reply: true, states: this.#localStates() });
      }
    }
    if (this.#live.length === 0 && this.#seeds.length > 0 && now >= this.#nextJoinRetryMs && !this.#leaving) {
      this.#nextJoinRetryMs = now + this.config.joinRetryIntervalMs;
      for (const seed of this.#seeds) this.#send(seed, { kind: 'push-pull', reply: true, states: this.#localStates() });
    }
    if (now >= this.#nextReapMs) {
      this.#nextReapMs = now + this.config.reconnectIntervalMs;
      this.#reap(now);
    }
  }

  /** Handles one message from `from`. Malformed parts are ignored: a bad peer cannot break this node. */
  receive(from: string, message: GossipMessage): void {
    if (typeof from !== 'string' || from === this.id || utf8Bytes(from) > LIMITS.membershipMaxNodeIdBytes || from === '') return;
    if (typeof message !== 'object' || message === null) return;
    if (message.kind === 'push-pull') {
      if (!Array.isArray(message.states)) return;
      this.#mergeStates(from, message.states);
      if (message.reply && !this.#leaving) this.#send(from, { kind: 'push-pull', reply: false, states: this.#localStates() });
      return;
    }
    if (!Array.isArray(message.rumours)) return;
    const rumours = message.rumours.slice(0, LIMITS.membershipMaxRumoursPerMessage);
    this.#staleAccusation = false;
    this.#accusers.clear();
    for (const r of rumours) this.#applyRumour(r);
    // The sender still accuses an older life of ours: it missed our refutation, so hand it over directly
    // (in the ack, or in a message of its own) rather than hope the gossip reaches it before its timer fires.
    // The accusers themselves are the nodes whose suspicion timers will declare us DEAD: random gossip may miss
    // one of them for longer than its timeout (seen with 5% loss and a pausing node), so they hear it from us too.
    const tellSelf = (this.#staleAccusation || this.#accusers.has(from)) && !this.#leaving;
    this.#staleAccusation = false;
    if (tellSelf && !(message.kind === 'ping' && message.target === this.id)) this.#send(from, { kind: 'gossip', rumours: this.#piggyback(this.#selfAliveRumour()) });
    if (this.#accusers.size > 0 && !this.#leaving) {
      let told = 0;
      for (const accuser of this.#accusers) {
        if (accuser === from || !this.#liveIndex.has(accuser)) continue;
        if (++told > this.config.gossipFanout) break;
        this.#send(accuser, { kind: 'gossip', rumours: [this.#selfAliveRumour()] });
      }
      this.#accusers.clear();
    }
    if (!this.#members.has(from)) this.#introduce(from);
    switch (message.kind) {
      case 'ping': {
        if (message.target !== this.id) return;
        this.#send(from, { kind: 'ack', seq: message.seq, rumours: this.#piggyback(tellSelf ? this.#selfAliveRumour() : this.#accusationAbout(from)) });
        return;
      }
      case 'ack': {
        // An answer from a member we still suspect (a late one, after a pause): it runs, so it can refute what it
        // may never have heard. Its rumours were applied above, so a refutation it carried already cleared this.
        const accusation = this.#accusationAbout(from);
        if (accusation?.kind === 'suspect' && !this.#leaving) this.#send(from, { kind: 'gossip', rumours: [accusation] });
        const probe = this.#probe;
        if (probe !== undefined && probe.seq === message.seq) {
          // Lifeguard: a timely answer is evidence this node is healthy.
          this.#probe = undefined;
          this.#adjustAwareness(-1);
          return;
        }
        const relay = this.#relays.get(message.seq);
        if (relay !== undefined) {
          this.#relays.delete(message.seq);
          this.#send(relay.requester, { kind: 'ack', seq: relay.requesterSeq, rumours: this.#piggyback(undefined) });
        }
        return;
      }
      case 'nack': {
        if (this.#probe !== undefined && this.#probe.seq === message.seq) this.#probe.nacks++;
        return;
      }
      case 'ping-req': {
        if (typeof message.target !== 'string' || message.target === this.id || message.target === from) return;
        if (this.#relays.size >= LIMITS.membershipMaxPendingRelays) return;
        const now = this.#clock.nowMs();
        const seq = ++this.#seq;
        this.#relays.set(seq, {
          requester: from,
          requesterSeq: message.seq,
          nackAtMs: now + this.config.nackTimeoutMs,
          nackSent: false,
          expiresAtMs: now + this.config.probeIntervalMs * this.config.awarenessMaxMultiplier,
        });
        this.#send(message.target, { kind: 'ping', seq, target: message.target, rumours: this.#piggyback(this.#accusationAbout(message.target)) });
        return;
      }
      case 'gossip':
        return;
    }
  }

  /**
   * A member we do not know talks to us (it joined and its alive rumour missed us): a push-pull tells us who it
   * is, and it who we are, without waiting for the next periodic exchange. At most once per joinRetryIntervalMs
   * per sender, and for a bounded number of senders.
   */
  #introduce(from: string): void {
    if (this.#leaving) return;
    const now = this.#clock.nowMs();
    const last = this.#introductions.get(from);
    if (last !== undefined && now - last < this.config.joinRetryIntervalMs) return;
    if (last === undefined && this.#introductions.size >= LIMITS.membershipMaxIntroductions) {
      for (const [id, at] of this.#introductions) if (now - at >= this.config.joinRetryIntervalMs) this.#introductions.delete(id);
      if (this.#introductions.size >= LIMITS.membershipMaxIntroductions) return;
    }
    this.#introductions.delete(from);
    this.#introductions.set(from, now);
    const tomb = this.#tombstones.get(from);
    // A member we reaped is talking: its alive state would not beat the tombstone, so tell it what we last knew
    // and let it refute with a higher incarnation.
    if (tomb !== undefined) this.#send(from, { kind: 'gossip', rumours: [{ kind: 'dead', node: from, incarnation: tomb, from: this.id }] });
    else this.#send(from, { kind: 'push-pull', reply: true, states: this.#localStates() });
  }

  // --- Probing ---------------------------------------------------------------------------------------------------

  #tickProbe(now: number): void {
    const probe = this.#probe;
    if (probe !== undefined) {
      if (!probe.indirectStarted && now >= probe.ackDeadlineMs) {
        probe.indirectStarted = true;
        const helpers = this.#pickLive(this.config.indirectChecks, probe.target);
        for (const helper of helpers) this.#send(helper, { kind: 'ping-req', seq: probe.seq, target: probe.target, rumours: this.#piggyback(undefined) });
        probe.indirectSent = helpers.length;
      }
      if (now >= probe.endMs) {
        this.#probe = undefined;
        this.counters.probesFailed++;
        // Lifeguard: missing nacks mean the problem may be ours (we did not hear the helpers either).
        this.#adjustAwareness(probe.indirectSent > 0 ? Math.max(0, probe.indirectSent - probe.nacks) : 1);
        const target = this.#members.get(probe.target);
        if (target !== undefined && (target.status === 'alive' || target.status === 'suspect')) {
          this.#onSuspect(target.id, target.incarnation, this.id);
        }
      }
    }
    if (this.#probe === undefined && now >= this.#nextProbeMs && !this.#leaving) {
      const scale = this.#awareness + 1;
      this.#nextProbeMs = now + this.config.probeIntervalMs * scale;
      const target = this.#nextProbeTarget();
      if (target === undefined) return;
      const seq = ++this.#seq;
      this.#probe = {
        seq,
        target: target.id,
        ackDeadlineMs: now + this.config.probeTimeoutMs * scale,
        endMs: now + this.config.probeIntervalMs * scale,
        indirectStarted: false,
        indirectSent: 0,
        nacks: 0,
      };
      this.counters.probes++;
      // Buddy system: a probe of a suspect carries the suspicion, so a live suspect refutes at once.
      this.#send(target.id, { kind: 'ping', seq, target: target.id, rumours: this.#piggyback(this.#accusationAbout(target.id)) });
    }
  }

  /** Randomized round robin: every live member once per round, in a fresh random order each round. */
  #nextProbeTarget(): Member | undefined {
    for (let attempts = 0; attempts < 2; attempts++) {
      while (this.#probeIndex < this.#probeOrder.length) {
        const id = this.#probeOrder[this.#probeIndex++] as string;
        const m = this.#members.get(id);
        if (m !== undefined && (m.status === 'alive' || m.status === 'suspect')) return m;
      }
      this.#probeOrder = this.#random.shuffle(this.#live);
      this.#probeIndex = 0;
    }
    return undefined;
  }

  #tickRelays(now: number): void {
    if (this.#relays.size === 0) return;
    for (const [seq, relay] of this.#relays) {
      if (!relay.nackSent && now >= relay.nackAtMs) {
        relay.nackSent = true;
        this.#send(relay.requester, { kind: 'nack', seq: relay.requesterSeq, rumours: [] });
      }
      if (now >= relay.expiresAtMs) this.#relays.delete(seq);
    }
  }

  #tickSuspicions(now: number): void {
    if (this.#suspicions.size === 0) return;
    for (const [id, s] of [...this.#suspicions]) {
      if (now < s.deadlineMs) continue;
      this.#suspicions.delete(id);
      const m = this.#members.get(id);
      if (m !== undefined && m.status === 'suspect' && m.incarnation === s.incarnation) this.#onDead(id, m.incarnation, this.id);
    }
  }

  /**
   * This node did not run for `gapMs` (GC pause, stopped VM, overloaded host). Its deadlines were measured on a
   * clock that kept going while it could hear nothing, so they move on by the gap: a stalled node must not
   * blame others for acks and refutations it was not there to receive. It also counts against its own health.
   */
  #onStall(gapMs: number): void {
    this.counters.stalls++;
    this.#adjustAwareness(1);
    // Every deadline moves by the gap, the next probe's too: one left behind would look like a new stall at each
    // tick, and each would move the rest again.
    this.#nextProbeMs += gapMs;
    if (this.#probe !== undefined) {
      this.#probe.ackDeadlineMs += gapMs;
      this.#probe.endMs += gapMs;
    }
    for (const s of this.#suspicions.values()) s.shift(gapMs);
    for (const r of this.#relays.values()) {
      r.nackAtMs += gapMs;
      r.expiresAtMs += gapMs;
    }
  }

  #adjustAwareness(delta: number): void {
    this.#awareness = Math.max(0, Math.min(this.config.awarenessMaxMultiplier - 1, this.#awareness + delta));
  }

  // --- Rumours ---------------------------------------------------------------------------------------------------

  #applyRumour(r: Rumour): void {
    if (typeof r !== 'object' || r === null || typeof r.node !== 'string' || r.node === '' || utf8Bytes(r.node) > LIMITS.membershipMaxNodeIdBytes) return;
    if (!Number.isSafeInteger(r.incarnation) || r.incarnation < 0) return;
    switch (r.kind) {
      case 'alive':
        this.#onAlive(r.node, r.incarnation, r.meta);
        return;
      case 'suspect':
        if (typeof r.from === 'string') this.#onSuspect(r.node, r.incarnation, r.from);
        return;
      case 'dead':
        if (typeof r.from === 'string') this.#onDead(r.node, r.incarnation, r.from);
        return;
      case 'left':
        this.#onLeft(r.node, r.incarnation);
        return;
    }
  }

  #onAlive(id: string, incarnation: number, meta: NodeMeta): void {
    if (id === this.id) {
      if (metaProblem(meta) !== undefined) return;
      const self = this.#self();
      // Someone spreads an older life of ours (we restarted without our last incarnation): out-bid it.
      if (!this.#leaving && (incarnation > self.incarnation || (incarnation === self.incarnation && metaKey(meta) !== metaKey(self.meta)))) this.#refute(incarnation);
      return;
    }
    const m = this.#members.get(id);
    // Cheap checks first: most alive rumours repeat what we already know.
    if (m !== undefined && incarnation <= m.incarnation) return;
    if (metaProblem(meta) !== undefined) return;
    if (m === undefined) {
      const tomb = this.#tombstones.get(id);
      if (tomb !== undefined && incarnation <= tomb) return;
      if (this.#members.size >= LIMITS.membershipMaxMembers) return;
      this.#tombstones.delete(id);
      const member: Member = { id, incarnation, status: 'alive', meta, metaSizeBytes: metaSizeBytes(meta), statusChangedAtMs: this.#clock.nowMs() };
      this.#members.set(id, member);
      this.#setLive(id, true);
      if (!this.#quiet) this.#queue.enqueue({ kind: 'alive', node: id, incarnation, meta });
      this.#emit('joined', member, undefined, undefined);
      return;
    }
    // Alive needs a strictly higher incarnation: only the node itself can refute an accusation or a leave.
    if (incarnation <= m.incarnation) return;
    const previousStatus = m.status;
    const previousIncarnation = m.incarnation;
    this.#suspicions.delete(id);
    m.incarnation = incarnation;
    m.meta = meta;
    m.metaSizeBytes = metaSizeBytes(meta);
    this.#setStatus(m, 'alive');
    this.#queue.enqueue({ kind: 'alive', node: id, incarnation, meta });
    this.#emit(previousStatus === 'alive' ? 'updated' : 'alive', m, previousStatus, previousIncarnation);
  }

  #onSuspect(id: string, incarnation: number, from: string): void {
    if (id === this.id) {
      this.#accusers.add(from);
      if (!this.#leaving && incarnation >= this.#self().incarnation) this.#refute(incarnation);
      else this.#staleAccusation = true;
      return;
    }
    const m = this.#members.get(id);
    if (m === undefined || incarnation < m.incarnation) return;
    if (m.status === 'dead' || m.status === 'left') return;
    const previousStatus = m.status;
    if (m.status === 'suspect' && incarnation === m.incarnation) {
      const s = this.#suspicions.get(id);
      // An independent accuser shortens the timeout (Lifeguard); pass the confirmation on so others count it too.
      if (s !== undefined && s.confirm(from)) this.#queue.enqueue({ kind: 'suspect', node: id, incarnation, from });
      return;
    }
    // Alive, or suspect at an older incarnation: the member refuted the old suspicion (we missed that) and is
    // suspected anew, so the new suspicion gets a fresh timer rather than the old one's remainder.
    const previousIncarnation = m.incarnation;
    m.incarnation = incarnation;
    this.#setStatus(m, 'suspect');
    const n = this.liveCount;
    const minMs = suspicionMinTimeoutMs(this.config, n);
    this.#suspicions.set(id, new Suspicion({
      incarnation,
      startMs: this.#clock.nowMs(),
      firstAccuser: from,
      expectedConfirmations: expectedConfirmations(this.config.suspicionMult, n),
      minMs,
      maxMs: minMs * this.config.suspicionMaxTimeoutMult,
    }));
    this.#queue.enqueue({ kind: 'suspect', node: id, incarnation, from });
    this.#emit('suspect', m, previousStatus, previousIncarnation);
  }

  #onDead(id: string, incarnation: number, from: string): void {
    if (id === this.id) {
      this.#accusers.add(from);
      if (!this.#leaving && incarnation >= this.#self().incarnation) this.#refute(incarnation);
      else this.#staleAccusation = true;
      return;
    }
    const m = this.#members.get(id);
    if (m === undefined || incarnation < m.incarnation) return;
    if (m.status === 'dead' || m.status === 'left') return;
    const previousStatus = m.status;
    const previousIncarnation = m.incarnation;
    this.#suspicions.delete(id);
    m.incarnation = incarnation;
    this.#setStatus(m, 'dead');
    this.#queue.enqueue({ kind: 'dead', node: id, incarnation, from });
    this.#emit('dead', m, previousStatus, previousIncarnation);
  }

  #onLeft(id: string, incarnation: number): void {
    if (id === this.id) {
      // A leave from an earlier life of ours (we restarted and rejoined): out-bid it.
      if (!this.#leaving && incarnation >= this.#self().incarnation) this.#refute(incarnation);
      return;
    }
    const m = this.#members.get(id);
    if (m === undefined || incarnation < m.incarnation || m.status === 'left') return;
    const previousStatus = m.status;
    const previousIncarnation = m.incarnation;
    this.#suspicions.delete(id);
    m.incarnation = incarnation;
    this.#setStatus(m, 'left');
    this.#queue.enqueue({ kind: 'left', node: id, incarnation });
    this.#emit('left', m, previousStatus, previousIncarnation);
  }

  /** Someone says we are suspect, dead or gone at `accusedIncarnation`: announce we are alive at a higher one. */
  #refute(accusedIncarnation: number): void {
    const self = this.#self();
    const previousIncarnation = self.incarnation;
    self.incarnation = Math.max(self.incarnation, accusedIncarnation) + 1;
    this.#persistIncarnation = self.incarnation;
    this.counters.refutations++;
    // Lifeguard: being accused suggests we are slow to answer; probe more gently for a while.
    this.#adjustAwareness(1);
    this.#queue.enqueue(this.#selfAliveRumour());
    this.#emit('updated', self, 'alive', previousIncarnation);
  }

  /** The accusation we hold against `id` (suspect or dead), to hand to it so it can refute at once. */
  #accusationAbout(id: string): Rumour | undefined {
    const m = this.#members.get(id);
    if (m === undefined) return undefined;
    if (m.status === 'suspect') return { kind: 'suspect', node: id, incarnation: m.incarnation, from: this.id };
    if (m.status === 'dead') return { kind: 'dead', node: id, incarnation: m.incarnation, from: this.id };
    return undefined;
  }

  // --- Dissemination ---------------------------------------------------------------------------------------------

  /** Rumours for one message: `first` (if any) and then as many queued rumours as fit. */
  #piggyback(first: Rumour | undefined): Rumour[] {
    let budget = LIMITS.membershipMaxMessageBytes - MESSAGE_OVERHEAD_BYTES;
    const out: Rumour[] = [];
    if (first !== undefined) {
      out.push(first);
      budget -= rumourSizeBytes(first) + PER_RUMOUR_OVERHEAD_BYTES;
    }
    const limit = retransmitLimit(this.config.retransmitMult, this.liveCount);
    for (const r of this.#queue.take(budget, PER_RUMOUR_OVERHEAD_BYTES, limit, first?.node)) {
      if (out.length >= LIMITS.membershipMaxRumoursPerMessage) break;
      out.push(r);
    }
    return out;
  }

  #gossip(): void {
    if (this.#queue.size === 0) return;
    for (const to of this.#pickLive(this.config.gossipFanout, undefined)) {
      const rumours = this.#piggyback(undefined);
      if (rumours.length === 0) return;
      this.#send(to, { kind: 'gossip', rumours });
    }
  }

  /** This node's view for a push-pull, within LIMITS: itself first, then everyone (a random sample if too big). */
  #localStates(): PushPullState[] {
    const self = this.#self();
    const out: PushPullState[] = [toState(self)];
    let budget = LIMITS.membershipMaxPushPullBytes - MESSAGE_OVERHEAD_BYTES - stateSize(self);
    let total = 0;
    for (const m of this.#members.values()) total += stateSize(m);
    const others = total <= budget ? [...this.#members.values()] : this.#random.shuffle([...this.#members.values()]);
    for (const m of others) {
      if (m.id === this.id) continue;
      const size = stateSize(m);
      if (size > budget) continue;
      budget -= size;
      out.push(toState(m));
    }
    return out;
  }

  #mergeStates(from: string, states: readonly PushPullState[]): void {
    let count = 0;
    for (const s of states) {
      if (++count > LIMITS.membershipMaxMembers) break;
      if (typeof s !== 'object' || s === null || typeof s.id !== 'string' || s.id === '' || utf8Bytes(s.id) > LIMITS.membershipMaxNodeIdBytes) continue;
      if (!Number.isSafeInteger(s.incarnation) || s.incarnation < 0) continue;
      switch (s.status) {
        case 'alive':
          this.#onAlive(s.id, s.incarnation, s.meta);
          break;
        case 'left':
          this.#onLeft(s.id, s.incarnation);
          break;
        // What another node believes dead, we only suspect: it may be a partition on their side, and the
        // suspicion gives the member the time to refute (memberlist does the same).
        case 'dead':
        case 'suspect':
          this.#onSuspect(s.id, s.incarnation, from);
          break;
      }
    }
  }

  // --- Bookkeeping -----------------------------------------------------------------------------------------------

  #reap(now: number): void {
    for (const id of [...this.#dead, ...this.#left]) {
      const m = this.#members.get(id) as Member;
      const age = now - m.statusChangedAtMs;
      if ((m.status === 'dead' && age >= this.config.deadReapAfterMs) || (m.status === 'left' && age >= this.config.leftReapAfterMs)) {
        this.#members.delete(m.id);
        this.#dead.delete(m.id);
        this.#left.delete(m.id);
        this.#tombstones.set(m.id, m.incarnation);
        if (this.#tombstones.size > LIMITS.membershipMaxTombstones) {
          const oldest = this.#tombstones.keys().next().value;
          if (oldest !== undefined) this.#tombstones.delete(oldest);
        }
        this.#emit('reaped', m, m.status, m.incarnation);
      }
    }
  }

  #setStatus(m: Member, status: MemberStatus): void {
    if (m.status === status) return;
    m.status = status;
    m.statusChangedAtMs = this.#clock.nowMs();
    this.#setLive(m.id, status === 'alive' || status === 'suspect');
    if (status === 'dead') this.#dead.add(m.id);
    else this.#dead.delete(m.id);
    if (status === 'left') this.#left.add(m.id);
    else this.#left.delete(m.id);
  }

  #setLive(id: string, live: boolean): void {
    const index = this.#liveIndex.get(id);
    if (live && index === undefined) {
      this.#liveIndex.set(id, this.#live.length);
      this.#live.push(id);
    } else if (!live && index !== undefined) {
      const last = this.#live.pop() as string;
      if (last !== id) {
        this.#live[index] = last;
        this.#liveIndex.set(last, index);
      }
      this.#liveIndex.delete(id);
    }
  }

  /** Up to `count` distinct random live members, never `exclude`. */
  #pickLive(count: number, exclude: string | undefined): string[] {
    const pool = this.#live.length - (exclude !== undefined && this.#liveIndex.has(exclude) ? 1 : 0);
    const want = Math.min(count, pool);
    if (want <= 0) return [];
    if (want * 3 >= this.#live.length) return this.#random.shuffle(this.#live.filter((id) => id !== exclude)).slice(0, want);
    const picked = new Set<string>();
    while (picked.size < want) {
      const id = this.#live[this.#random.int(this.#live.length)] as string;
      if (id !== exclude) picked.add(id);
    }
    return [...picked];
  }

  #self(): Member {
    return this.#members.get(this.id) as Member;
  }

  #selfAliveRumour(): Rumour {
    const self = this.#self();
    return { kind: 'alive', node: this.id, incarnation: self.incarnation, meta: self.meta };
  }

  #send(to: string, message: GossipMessage): void {
    this.counters.messagesSent++;
    this.#effects.push({ kind: 'send', to, message });
  }

  #emit(kind: MemberEventKind, m: Member, previousStatus: MemberStatus | undefined, previousIncarnation: number | undefined): void {
    this.#effects.push({ kind: 'event', event: { kind, member: snapshot(m), previousStatus, previousIncarnation } });
  }
}

function snapshot(m: Member): MemberSnapshot {
  return { id: m.id, incarnation: m.incarnation, status: m.status, meta: m.meta, statusChangedAtMs: m.statusChangedAtMs };
}

function toState(m: Member): PushPullState {
  return { id: m.id, incarnation: m.incarnation, status: m.status, meta: m.meta };
}

function stateSize(m: Member): number {
  return m.metaSizeBytes + utf8Bytes(m.id) + PER_STATE_OVERHEAD_BYTES;
}

function checkNodeId(id: unknown, field: string): void {
  if (typeof id !== 'string' || id === '' || utf8Bytes(id) > LIMITS.membershipMaxNodeIdBytes) {
    throw new InvalidArgumentError(`membership: ${field} must be a non-empty string of at most ${LIMITS.membershipMaxNodeIdBytes} bytes, got ${JSON.stringify(id)}`, { field });
  }
}
