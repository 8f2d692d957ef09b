/**
 * The deterministic simulator: whole clusters on one seeded virtual clock.
 *
 * Nodes are state machines driven only by `tick()` and `deliver(from, msg)`; what they do to the outside world
 * goes through their context (send, storage, a seeded Random). The simulator owns time, the network and faults:
 * crashes (which lose unsynced writes), restarts, pauses (a GC-stalled process), partitions, loss, delay,
 * duplication and reordering. After every event it runs the invariant checks; the first failure stops the run
 * with the seed, the virtual time and the last events, so the failure can be replayed exactly.
 *
 * Determinism rules followed here: one Random per purpose, split from the seed in a fixed order; events ordered
 * by (time, sequence); Map iteration in insertion order only; no wall clock, no timers, no I/O.
 */
import { invariant } from '../lib/assert.js';
import { ManualClock } from '../lib/clock.js';
import { ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { Random } from '../lib/random.js';
import { EventQueue } from './event-queue.js';
import { CALM_LINK, SimNetwork, type LinkConfig } from './network.js';
import { SimStorage, type CrashMode } from './storage.js';
import { Trace } from './trace.js';

export interface SimNodeContext<M> {
  readonly id: string;
  /** Bumped on every restart of this node. */
  readonly incarnation: number;
  nowMs(): number;
  send(to: string, msg: M): void;
  readonly storage: SimStorage;
  readonly random: Random;
  /** Adds a line to the trace (and so to the run's hash). */
  note(text: string): void;
}

export interface SimNode<M> {
  tick(): void;
  deliver(from: string, msg: M): void;
}

export interface SimulatorOptions<M> {
  seed: number;
  nodeIds: readonly string[];
  createNode: (ctx: SimNodeContext<M>) => SimNode<M>;
  tickIntervalMs: number;
  link?: Partial<LinkConfig>;
  maxMessageBytes?: number;
  /** Size a message would have on the wire; defaults to the length of its JSON. */
  messageSizeBytes?: (msg: M) => number;
  /** How a message appears in the trace; defaults to its JSON. */
  describeMessage?: (msg: M) => string;
  crashMode?: CrashMode;
  keepFullTrace?: boolean;
  maxEvents?: number;
}

export type Invariant<M> = (sim: Simulator<M>) => string | undefined | void;

export class SimulationFailure extends ShoalError {
  constructor(
    readonly seed: number,
    readonly invariantName: string,
    readonly problem: string,
    readonly atMs: number,
    readonly eventIndex: number,
    readonly tail: readonly string[],
  ) {
    super(
      'ERR_SIM_INVARIANT',
      [
        `invariant "${invariantName}" failed at virtual time ${atMs} ms (event #${eventIndex}, seed ${seed}): ${problem}`,
        'last events:',
        ...tail.map((line) => `  ${line}`),
      ].join('\n'),
      { seed, invariantName, atMs, eventIndex },
    );
  }
}

type SimEvent<M> =
  | { atMs: number; seq: number; kind: 'tick'; node: string; incarnation: number }
  | { atMs: number; seq: number; kind: 'deliver'; from: string; to: string; msg: M; msgId: number }
  | { atMs: number; seq: number; kind: 'action'; label: string; fn: () => void };

interface NodeSlot<M> {
  readonly id: string;
  up: boolean;
  incarnation: number;
  node: SimNode<M> | undefined;
  readonly storage: SimStorage;
  readonly random: Random;
  pausedUntilMs: number;
}

export class Simulator<M> {
  readonly seed: number;
  readonly network: SimNetwork;
  readonly trace: Trace;
  readonly #clock = new ManualClock(0);
  readonly #queue = new EventQueue<SimEvent<M>>();
  readonly #slots = new Map<string, NodeSlot<M>>();
  readonly #invariants: { name: string; check: Invariant<M> }[] = [];
  readonly #options: SimulatorOptions<M>;
  readonly #faultRandom: Random;
  readonly #maxEvents: number;
  #seq = 0;
  #msgId = 0;
  #events = 0;
  #inFlight = 0;
  #delivered = 0;
  #dropped = 0;

  constructor(options: SimulatorOptions<M>) {
    invariant(options.nodeIds.length > 0, 'a simulation needs at least one node');
    invariant(new Set(options.nodeIds).size === options.nodeIds.length, 'node ids must be unique');
    invariant(options.tickIntervalMs > 0, 'tickIntervalMs must be positive');
    this.seed = options.seed;
    this.#options = options;
    this.#maxEvents = options.maxEvents ?? LIMITS.simMaxEventsPerRun;
    const root = Random.fromSeed(options.seed);
    // Split in a fixed order: network, faults, then one stream per node in the order given.
    this.network = new SimNetwork(root.split(), {
      defaults: { ...CALM_LINK, ...options.link },
      maxMessageBytes: options.maxMessageBytes ?? LIMITS.simMaxMessageBytes,
    });
    this.#faultRandom = root.split();
    this.trace = new Trace(LIMITS.simTraceTailEvents, options.keepFullTrace ?? false);
    for (const id of options.nodeIds) {
      this.#slots.set(id, { id, up: false, incarnation: 0, node: undefined, storage: new SimStorage(), random: root.split(), pausedUntilMs: 0 });
    }
    for (const id of options.nodeIds) this.#boot(this.#slot(id), root.int(options.tickIntervalMs));
  }

  // --- Observation -----------------------------------------------------------------------------------------------

  nowMs(): number {
    return this.#clock.nowMs();
  }

  nodeIds(): string[] {
    return [...this.#slots.keys()];
  }

  upNodeIds(): string[] {
    return [...this.#slots.values()].filter((s) => s.up).map((s) => s.id);
  }

  isUp(id: string): boolean {
    return this.#slot(id).up;
  }

  /** The live state machine of a node, for invariants and assertions. Undefined while the node is down. */
  node(id: string): SimNode<M> | undefined {
    const slot = this.#slot(id);
    return slot.up ? slot.node : undefined;
  }

  storage(id: string): SimStorage {
    return this.#slot(id).storage;
  }

  incarnation(id: string): number {
    return this.#slot(id).incarnation;
  }

  get eventCount(): number {
    return this.#events;
  }

  stats(): { events: number; delivered: number; dropped: number; inFlight: number } {
    return { events: this.#events, delivered: this.#delivered, dropped: this.#dropped, inFlight: this.#inFlight };
  }

  // --- Control ---------------------------------------------------------------------------------------------------

  addInvariant(name: string, check: Invariant<M>): void {
    this.#invariants.push({ name, check });
  }

  /** Schedules a scenario action (a partition, a crash, a client request) at an absolute virtual time. */
  at(atMs: number, label: string, fn: () => void): void {
    invariant(atMs >= this.nowMs(), `cannot schedule "${label}" in the past (${atMs} < ${this.nowMs()})`);
    this.#queue.push({ atMs, seq: this.#seq++, kind: 'action', label, fn });
  }

  after(delayMs: number, label: string, fn: () => void): void {
    this.at(this.nowMs() + delayMs, label, fn);
  }

  /** Power loss on one node: it stops, and whatever it had not synced is lost. */
  crash(id: string): void {
    const slot = this.#slot(id);
    if (!slot.up) return;
    slot.up = false;
    slot.node = undefined;
    const lost = slot.storage.crash(this.#faultRandom, this.#options.crashMode ?? 'drop-unsynced');
    this.#record(`crash ${id} lost-writes=${lost}`);
  }

  /** Starts a crashed node again from what its storage kept. */
  restart(id: string): void {
    const slot = this.#slot(id);
    if (slot.up) return;
    this.#boot(slot, 0);
  }

  /** Freezes a node (no ticks, no deliveries) for `durationMs`, as a long GC pause or a stopped VM would. */
  pause(id: string, durationMs: number): void {
    const slot = this.#slot(id);
    slot.pausedUntilMs = Math.max(slot.pausedUntilMs, this.nowMs() + durationMs);
    this.#record(`pause ${id} until=${slot.pausedUntilMs}`);
  }

  /** Runs one event. Returns false when nothing is left to run. */
  step(): boolean {
    const event = this.#queue.pop();
    if (event === undefined) return false;
    if (++this.#events > this.#maxEvents) {
      throw new ShoalError('ERR_SIM_EVENT_LIMIT', `simulation (seed ${this.seed}) exceeded ${this.#maxEvents} events`, { seed: this.seed });
    }
    this.#clock.set(event.atMs);
    this.#dispatch(event);
    this.#checkInvariants();
    return true;
  }

  /** Runs every event up to and including virtual time `untilMs`. */
  runUntil(untilMs: number): void {
    for (;;) {
      const next = this.#queue.peek();
      if (next === undefined || next.atMs > untilMs) break;
      this.step();
    }
    if (this.nowMs() < untilMs) this.#clock.set(untilMs);
  }

  runFor(durationMs: number): void {
    this.runUntil(this.nowMs() + durationMs);
  }

  /** Runs until `done()` holds (checked after every event) or `timeoutMs` of virtual time pass. */
  runUntilTrue(done: () => boolean, timeoutMs: number): boolean {
    const deadline = this.nowMs() + timeoutMs;
    while (!done()) {
      const next = this.#queue.peek();
      if (next === undefined || next.atMs > deadline) {
        this.#clock.set(Math.max(this.nowMs(), deadline));
        return done();
      }
      this.step();
    }
    return true;
  }

  // --- Internals -------------------------------------------------------------------------------------------------

  #slot(id: string): NodeSlot<M> {
    const slot = this.#slots.get(id);
    invariant(slot !== undefined, `unknown simulated node ${id}`);
    return slot;
  }

  #boot(slot: NodeSlot<M>, firstTickDelayMs: number): void {
    slot.incarnation++;
    slot.up = true;
    const incarnation = slot.incarnation;
    const ctx: SimNodeContext<M> = {
      id: slot.id,
      incarnation,
      nowMs: () => this.nowMs(),
      send: (to, msg) => this.#send(slot, incarnation, to, msg),
      storage: slot.storage,
      random: slot.random.split(),
      note: (text) => this.#record(`note ${slot.id} ${text}`),
    };
    this.#record(`boot ${slot.id} incarnation=${incarnation}`);
    slot.node = this.#options.createNode(ctx);
    this.#queue.push({ atMs: this.nowMs() + firstTickDelayMs, seq: this.#seq++, kind: 'tick', node: slot.id, incarnation });
  }

  #send(slot: NodeSlot<M>, incarnation: number, to: string, msg: M): void {
    // A message sent by an incarnation that has since crashed is a bug in the harness, not in the node.
    invariant(slot.up && slot.incarnation === incarnation, `node ${slot.id} sent a message while down`);
    invariant(this.#slots.has(to), `node ${slot.id} sent to unknown node ${to}`);
    const id = this.#msgId++;
    const size = this.#options.messageSizeBytes ? this.#options.messageSizeBytes(msg) : JSON.stringify(msg).length;
    const fate = this.network.fate(slot.id, to, size);
    if (fate.kind === 'drop') {
      this.#dropped++;
      this.#record(`drop #${id} ${slot.id}->${to} ${fate.reason}`);
      return;
    }
    for (const delayMs of fate.delaysMs) {
      if (this.#inFlight >= LIMITS.simMaxInFlightMessages) {
        this.#dropped++;
        this.#record(`drop #${id} ${slot.id}->${to} in-flight-limit`);
        continue;
      }
      this.#inFlight++;
      this.#queue.push({ atMs: this.nowMs() + delayMs, seq: this.#seq++, kind: 'deliver', from: slot.id, to, msg, msgId: id });
    }
  }

  #dispatch(event: SimEvent<M>): void {
    switch (event.kind) {
      case 'action':
        this.#record(`action ${event.label}`);
        event.fn();
        return;
      case 'tick': {
        const slot = this.#slot(event.node);
        if (!slot.up || slot.incarnation !== event.incarnation) return; // the tick chain of a crashed incarnation ends
        if (this.#defer(slot, event)) return;
        this.#record(`tick ${slot.id}`);
        (slot.node as SimNode<M>).tick();
        this.#queue.push({ ...event, atMs: this.nowMs() + this.#options.tickIntervalMs, seq: this.#seq++ });
        return;
      }
      case 'deliver': {
        const slot = this.#slot(event.to);
        if (slot.up && this.#defer(slot, event)) return;
        this.#inFlight--;
        if (!slot.up) {
          this.#dropped++;
          this.#record(`drop #${event.msgId} ${event.from}->${event.to} receiver-down`);
          return;
        }
        if (this.network.isCut(event.from, event.to)) {
          this.#dropped++;
          this.#record(`drop #${event.msgId} ${event.from}->${event.to} partitioned-in-flight`);
          return;
        }
        this.#delivered++;
        const text = this.#options.describeMessage ? this.#options.describeMessage(event.msg) : JSON.stringify(event.msg);
        this.#record(`deliver #${event.msgId} ${event.from}->${event.to} ${text}`);
        (slot.node as SimNode<M>).deliver(event.from, event.msg);
        return;
      }
    }
  }

  /** A paused node handles nothing: its events wait until the pause ends, keeping their order. */
  #defer(slot: NodeSlot<M>, event: SimEvent<M>): boolean {
    if (slot.pausedUntilMs <= this.nowMs()) return false;
    this.#queue.push({ ...event, atMs: slot.pausedUntilMs, seq: this.#seq++ });
    return true;
  }

  #record(line: string): void {
    this.trace.record(`${this.nowMs()} ${line}`);
  }

  #checkInvariants(): void {
    for (const { name, check } of this.#invariants) {
      const problem = check(this);
      if (typeof problem === 'string') {
        throw new SimulationFailure(this.seed, name, problem, this.nowMs(), this.#events, [...(this.trace.full() ?? this.trace.tail())]);
      }
    }
  }
}
