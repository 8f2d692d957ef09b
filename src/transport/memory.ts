/**
 * An in-memory Transport for runtime tests: several agents in one process exchange messages through a MemoryHub,
 * with the same contract as the hyperswarm transport (links come up and go down, send needs a link, bounded pool
 * and bounded per-link queue). It sets no timer: deliveries are queued as microtasks, in order per link, so a
 * test awaits them with `await hub.settle()`. Partitions are explicit (`cut`/`heal`).
 *
 * It is not the simulator's network (src/sim/network.ts): the simulator needs seeded delays and loss on a virtual
 * clock, which this hub deliberately does not model.
 */
import { LIMITS } from '../lib/limits.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { WIRE_VERSION, encodeFrame, type Envelope } from '../wire/frame.js';
import { NoLinkError, SendQueueFullError, TransportStoppedError } from './errors.js';
import {
  Listeners, emptyStats,
  type InboundMessage, type LinkDownReason, type LinkInfo, type OutboundMessage, type SendResult, type Transport,
  type TransportStats, type Unsubscribe,
} from './types.js';

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

export class MemoryHub {
  readonly #members = new Map<string, MemoryTransport>();
  readonly #cuts = new Set<string>();
  #inFlight = 0;
  #idle: Array<() => void> = [];

  /** Creates a transport for `nodeId` (any unique string; 64 hex characters to look like the real thing). */
  transport(nodeId: string, options: { maxLinks?: number; sendQueueMaxFrames?: number } = {}): MemoryTransport {
    if (this.#members.has(nodeId)) throw new InvalidArgumentError(`memory hub: node ${nodeId} exists already`, { nodeId });
    const t = new MemoryTransport(this, nodeId, options.maxLinks ?? LIMITS.transportMaxLinks, options.sendQueueMaxFrames ?? LIMITS.transportSendQueueMaxFrames);
    this.#members.set(nodeId, t);
    return t;
  }

  /** Cuts the pair both ways: their link goes down and cannot come back until heal(). */
  cut(a: string, b: string): void {
    this.#cuts.add(pairKey(a, b));
    this.#members.get(a)?._linkDown(b, 'closed');
    this.#members.get(b)?._linkDown(a, 'closed');
  }

  /** Restores the pair; peers that knew each other link again (as the real transport's redial would). */
  heal(a: string, b: string): void {
    this.#cuts.delete(pairKey(a, b));
    const ta = this.#members.get(a);
    const tb = this.#members.get(b);
    if (ta && tb && (ta._knows(b) || tb._knows(a))) this._link(ta, tb);
  }

  /** Resolves once every queued delivery has been handed to its listeners. */
  settle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  _running(): MemoryTransport[] {
    return [...this.#members.values()].filter((m) => m.running);
  }

  _get(nodeId: string): MemoryTransport | undefined {
    return this.#members.get(nodeId);
  }

  _link(a: MemoryTransport, b: MemoryTransport): boolean {
    if (a === b || !a.running || !b.running || this.#cuts.has(pairKey(a.nodeId, b.nodeId))) return false;
    if (a._hasLink(b.nodeId)) return true;
    a._linkUp(b.nodeId);
    b._linkUp(a.nodeId);
    return true;
  }

  _deliver(from: MemoryTransport, to: MemoryTransport, envelope: Envelope, done: () => void): void {
    this.#inFlight++;
    queueMicrotask(() => {
      this.#inFlight--;
      done();
      if (to.running && to._hasLink(from.nodeId) && from._hasLink(to.nodeId)) to._receive(from.nodeId, envelope);
      if (this.#inFlight === 0) {
        const idle = this.#idle;
        this.#idle = [];
        for (const r of idle) r();
      }
    });
  }
}

export class MemoryTransport implements Transport {
  readonly nodeId: string;
  running = false;
  readonly #hub: MemoryHub;
  readonly #maxLinks: number;
  readonly #queueMax: number;
  readonly #links = new Map<string, { lastUsed: number; queued: number }>();
  readonly #known = new Set<string>();
  readonly #stats: TransportStats = emptyStats();
  readonly #messages = new Listeners<[InboundMessage]>();
  readonly #ups = new Listeners<[LinkInfo]>();
  readonly #downs = new Listeners<[string, LinkDownReason]>();
  #seq = 0;
  #stopped = false;

  constructor(hub: MemoryHub, nodeId: string, maxLinks: number, queueMax: number) {
    this.#hub = hub;
    this.nodeId = nodeId;
    this.#maxLinks = maxLinks;
    this.#queueMax = queueMax;
  }

  /** Joins the hub and links to every running member, as discovery on the cluster topic would. */
  async start(): Promise<void> {
    if (this.running) return;
    if (this.#stopped) throw new TransportStoppedError('start after stop');
    this.running = true;
    for (const other of this.#hub._running()) this.#hub._link(this, other);
  }

  async stop(): Promise<void> {
    if (!this.running) {
      this.#stopped = true;
      return;
    }
    this.running = false;
    this.#stopped = true;
    for (const id of [...this.#links.keys()]) {
      this._linkDown(id, 'stopped');
      this.#hub._get(id)?._linkDown(this.nodeId, 'closed');
    }
  }

  send(nodeId: string, message: OutboundMessage): SendResult {
    if (!this.running) return { ok: false, error: new TransportStoppedError('send') };
    const link = this.#links.get(nodeId);
    const peer = this.#hub._get(nodeId);
    if (!link || !peer) return { ok: false, error: new NoLinkError(nodeId) };
    // Encode like the real wire does, so a message too large or of an unknown type fails here too.
    try {
      encodeFrame({ type: message.type, group: message.group ?? '', payload: message.payload });
    } catch (err) {
      return { ok: false, error: err as InvalidArgumentError };
    }
    if (link.queued >= this.#queueMax) {
      this.#stats.sendQueueFull++;
      return { ok: false, error: new SendQueueFullError(nodeId, link.queued, 0) };
    }
    link.queued++;
    link.lastUsed = ++this.#seq;
    this.#stats.messagesSent++;
    const envelope: Envelope = { version: WIRE_VERSION, type: message.type, group: message.group ?? '', payload: Uint8Array.from(message.payload) };
    this.#hub._deliver(this, peer, envelope, () => {
      link.queued--;
    });
    return { ok: true };
  }

  connect(nodeId: string): void {
    if (nodeId === this.nodeId) return;
    this.#known.add(nodeId);
    const peer = this.#hub._get(nodeId);
    if (this.running && peer) this.#hub._link(this, peer);
  }

  forget(nodeId: string): void {
    this.#known.delete(nodeId);
    if (this.#links.has(nodeId)) {
      this._linkDown(nodeId, 'closed');
      this.#hub._get(nodeId)?._linkDown(this.nodeId, 'closed');
    }
  }

  links(): LinkInfo[] {
    return [...this.#links.keys()].map((id) => ({ nodeId: id, nodeName: '', address: 'memory', initiator: id > this.nodeId, wireVersion: WIRE_VERSION }));
  }

  stats(): TransportStats {
    return { ...this.#stats };
  }

  onMessage(handler: (message: InboundMessage) => void): Unsubscribe {
    return this.#messages.add(handler);
  }

  onLinkUp(handler: (link: LinkInfo) => void): Unsubscribe {
    return this.#ups.add(handler);
  }

  onLinkDown(handler: (nodeId: string, reason: LinkDownReason) => void): Unsubscribe {
    return this.#downs.add(handler);
  }

  _knows(nodeId: string): boolean {
    return this.#known.has(nodeId);
  }

  _hasLink(nodeId: string): boolean {
    return this.#links.has(nodeId);
  }

  _linkUp(nodeId: string): void {
    if (this.#links.size >= this.#maxLinks) {
      let oldest: [string, { lastUsed: number }] | undefined;
      for (const entry of this.#links) if (!oldest || entry[1].lastUsed < oldest[1].lastUsed) oldest = entry;
      if (oldest) {
        this.#stats.evictions++;
        this._linkDown(oldest[0], 'evicted');
        this.#hub._get(oldest[0])?._linkDown(this.nodeId, 'closed');
      }
    }
    this.#links.set(nodeId, { lastUsed: ++this.#seq, queued: 0 });
    this.#known.add(nodeId);
    this.#stats.linksOpened++;
    this.#ups.emit({ nodeId, nodeName: '', address: 'memory', initiator: nodeId > this.nodeId, wireVersion: WIRE_VERSION });
  }

  _linkDown(nodeId: string, reason: LinkDownReason): void {
    if (!this.#links.delete(nodeId)) return;
    if (reason === 'evicted') this.#known.delete(nodeId);
    this.#stats.linksClosed++;
    this.#downs.emit(nodeId, reason);
  }

  _receive(from: string, envelope: Envelope): void {
    const link = this.#links.get(from);
    if (link) link.lastUsed = ++this.#seq;
    this.#stats.messagesReceived++;
    this.#messages.emit({ from, envelope });
  }
}
