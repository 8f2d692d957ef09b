/**
 * The real transport: a node of the cluster's private hyperswarm DHT, discovery on a topic derived from the cluster
 * key, Noise-encrypted streams authenticated with a proof of the cluster key (link.ts), length-prefixed protobuf
 * envelopes (src/wire/frame.ts), a bounded pool of links, and redialing of lost peers.
 *
 * Why the options look the way they do (see ../../../shared ENVIRONMENT notes in README.md):
 * - every agent is a full, non-ephemeral, non-firewalled DHT node on its bind address, so a cluster needs no
 *   separate bootstrap server and never the public DHT (bootstrap is always an explicit list);
 * - hyperswarm alone gives up on a peer after a long cut, and peers that join together can miss each other until
 *   its next refresh 10 minutes later: we refresh discovery early and then periodically, and redial every peer
 *   we ever had a link with (or were told about with connect()) with capped, jittered exponential backoff;
 * - keep-alive + stream timeout make a silent dead peer's link close (LIMITS.transportStreamTimeoutMs);
 * - an idle agent sets no timer that fires more often than the discovery refresh: announcements held by our own DHT
 *   node are read when a request about the topic arrives, not by polling (see #watchTopicRequests).
 */
import { isIP } from 'node:net';
import DHT from 'hyperdht';
import Hyperswarm from 'hyperswarm';
import type { NoiseSecretStream } from '@hyperswarm/secret-stream';
import type { PeerDiscovery } from 'hyperswarm';
import { LIMITS } from '../lib/limits.js';
import { InvalidArgumentError, describeError } from '../lib/errors.js';
import type { Random } from '../lib/random.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { seededFromEntropy } from '../platform/system-clock.js';
import { encodeFrame } from '../wire/frame.js';
import { NoLinkError, TransportStoppedError } from './errors.js';
import { LOCAL_WIRE_RANGE, type VersionRange } from './handshake.js';
import { discoveryTopic, linkAuthKey } from './keys.js';
import { Link, type LinkCloseReason } from './link.js';
import {
  Listeners, emptyStats,
  type InboundMessage, type LinkDownReason, type LinkInfo, type OutboundMessage, type SendResult, type Transport,
  type TransportStats, type Unsubscribe,
} from './types.js';

export interface HyperswarmTransportOptions {
  /** The 32-byte cluster key every member holds. */
  clusterKey: Uint8Array;
  /** 32-byte seed of this node's key pair (loadOrCreateNodeSeed); the node id is its public key. */
  seed: Uint8Array;
  /** Address and UDP port of this agent's DHT node (--bind). */
  host: string;
  port: number;
  /** DHT nodes to bootstrap from, as "host:port" (--join). Empty for the first agent of a cluster. */
  bootstrap: readonly string[];
  /** Also use the public hyperswarm DHT (--public-dht). Off by default: see README.md for the trade-off. */
  publicDht?: boolean;
  nodeName?: string;
  agentVersion?: string;
  logger?: Logger;
  /** Wire versions this agent speaks; only tests and future upgrades change it. */
  wireRange?: VersionRange;
  maxLinks?: number;
  random?: Random;
  /** How long after start our DHT node's announcements are also polled (LIMITS.transportLocalRecordsPollWindowMs); tests pass 0. */
  localRecordsPollWindowMs?: number;
}

interface RedialState {
  key: Buffer;
  attempt: number;
  timer: NodeJS.Timeout | undefined;
}

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[^\s:]+):(\d{1,5})$/;

/** Validates a --join entry. hyperdht needs "host:port"; anything else would silently do something else. */
export function parseBootstrapEntry(entry: string): string {
  const m = HOST_PORT.exec(entry.trim());
  const port = m ? Number(m[1]) : 0;
  if (!m || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`--join entry "${entry}" is not host:port (e.g. 10.0.0.5:49737)`, { entry });
  }
  return entry.trim();
}

export class HyperswarmTransport implements Transport {
  readonly nodeId: string;

  readonly #o: HyperswarmTransportOptions;
  readonly #keyPair: ReturnType<typeof DHT.keyPair>;
  readonly #authKey: Buffer;
  readonly #topic: Buffer;
  readonly #log: Logger;
  readonly #random: Random;
  readonly #maxLinks: number;
  readonly #stats: TransportStats = emptyStats();
  readonly #links = new Map<string, Link>();
  readonly #pending = new Set<Link>();
  readonly #known = new Map<string, RedialState>();
  readonly #messageListeners = new Listeners<[InboundMessage]>();
  readonly #upListeners = new Listeners<[LinkInfo]>();
  readonly #downListeners = new Listeners<[string, LinkDownReason]>();
  #useSeq = 0;
  #dht: DHT | undefined;
  #swarm: Hyperswarm | undefined;
  #discovery: PeerDiscovery | undefined;
  #firstRefresh: NodeJS.Timeout | undefined;
  #refreshInterval: NodeJS.Timeout | undefined;
  #recordsInterval: NodeJS.Timeout | undefined;
  #recordsPollEnd: NodeJS.Timeout | undefined;
  /** A read of our DHT node's records is queued (requests about our topic come in bursts; one read serves them). */
  #recordsReadQueued: NodeJS.Immediate | undefined;
  /** Keys found in our own DHT node's records and dialed since the last refresh (each is dialed once per refresh). */
  readonly #recordDialed = new Set<string>();
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #running = false;

  constructor(options: HyperswarmTransportOptions) {
    if (options.seed.length !== 32) throw new InvalidArgumentError(`node seed must be 32 bytes, got ${options.seed.length}`);
    for (const entry of options.bootstrap) parseBootstrapEntry(entry);
    this.#o = options;
    this.#keyPair = DHT.keyPair(options.seed);
    this.nodeId = this.#keyPair.publicKey.toString('hex');
    this.#authKey = linkAuthKey(options.clusterKey);
    this.#topic = discoveryTopic(options.clusterKey);
    this.#log = (options.logger ?? silentLogger()).child({ component: 'transport', node: this.nodeId.slice(0, 16) });
    this.#random = options.random ?? seededFromEntropy().random;
    this.#maxLinks = options.maxLinks ?? LIMITS.transportMaxLinks;
  }

  /** The DHT node's bound address (host, UDP port); others pass it to --join. */
  address(): { host: string; port: number } {
    if (!this.#dht) throw new TransportStoppedError('read the address');
    const a = this.#dht.address();
    return { host: this.#o.host, port: a.port };
  }

  start(): Promise<void> {
    if (this.#stopping) return Promise.reject(new TransportStoppedError('start after stop'));
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const o = this.#o;
    // Never pass bootstrap undefined/null/false: hyperdht would fall back to the public DHT.
    const usePublic = o.publicDht === true;
    const bootstrap = usePublic && o.bootstrap.length === 0 ? undefined : [...o.bootstrap];
    const dhtOptions = {
      ...(bootstrap === undefined ? {} : { bootstrap, nodes: [] }),
      // A private cluster's agents are all reachable DHT nodes; on the public DHT hyperdht decides for itself.
      ...(usePublic ? {} : { ephemeral: false, firewalled: false }),
      host: o.host,
      port: o.port,
      anyPort: false,
      keyPair: this.#keyPair,
      connectionKeepAlive: LIMITS.transportKeepAliveMs,
    };
    // The first agent has nobody to tell it its own address, and without one a DHT node stays ephemeral (no id,
    // in nobody's routing table, holding no records): bootstrapper() seeds it with its bind address.
    const first = bootstrap !== undefined && bootstrap.length === 0;
    if (first && (o.port === 0 || !isIP(o.host))) {
      throw new InvalidArgumentError(`the first agent of a cluster (no --join) needs an explicit IP address and port to bind, got ${o.host}:${o.port}`);
    }
    const dht = first ? DHT.bootstrapper(o.port, o.host, dhtOptions) : new DHT(dhtOptions);
    this.#dht = dht;
    this.#watchTopicRequests(dht);
    await dht.ready();
    const swarm = new Hyperswarm({
      dht,
      keyPair: this.#keyPair,
      // hyperswarm stops dialing at maxPeers / 4 connections once it has explicit peers.
      maxPeers: 4 * this.#maxLinks + 8,
    });
    this.#swarm = swarm;
    swarm.on('connection', (conn: NoiseSecretStream) => this.#onConnection(conn));
    this.#discovery = swarm.join(this.#topic, { server: true, client: true });
    this.#running = true;
    // One refresh about a second after joining is what lets peers that joined together see each other;
    // then a periodic one, so a peer cut off for minutes is found again (hyperswarm alone waits ~10 min).
    this.#firstRefresh = setTimeout(() => {
      this.#firstRefresh = undefined;
      this.#refresh();
    }, LIMITS.transportFirstRefreshMs);
    // Often while the cluster forms (LIMITS.transportDiscoveryWarmupMs), rarely after.
    const startedAt = Date.now();
    this.#refreshInterval = setInterval(() => {
      this.#refresh();
      if (Date.now() - startedAt < LIMITS.transportDiscoveryWarmupMs || !this.#running) return;
      if (this.#refreshInterval) clearInterval(this.#refreshInterval);
      this.#refreshInterval = setInterval(() => this.#refresh(), LIMITS.transportDiscoveryRefreshMs);
    }, LIMITS.transportDiscoveryWarmupRefreshMs);
    // Announcements reach our node as DHT requests, which #watchTopicRequests sees; polling them as well for a few
    // seconds after start is a cheap fallback for the moment a cluster forms, should that hook ever see nothing
    // (hyperdht internals). After that an idle agent reads them at every refresh only, and never wakes for them.
    const pollWindowMs = o.localRecordsPollWindowMs ?? LIMITS.transportLocalRecordsPollWindowMs;
    if (pollWindowMs > 0) {
      this.#recordsInterval = setInterval(() => this.#dialLocalRecords(), LIMITS.transportLocalRecordsCheckMs);
      this.#recordsPollEnd = setTimeout(() => {
        this.#recordsPollEnd = undefined;
        if (this.#recordsInterval) clearInterval(this.#recordsInterval);
        this.#recordsInterval = undefined;
      }, pollWindowMs);
    }
    this.#log.info({ address: this.address(), bootstrap: o.bootstrap, publicDht: usePublic }, 'transport started');
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.#starting) {
      try {
        await this.#starting;
      } catch (err) {
        this.#log.debug({ err: describeError(err) }, 'start had failed; stopping what was started');
      }
    }
    this.#running = false;
    if (this.#firstRefresh) clearTimeout(this.#firstRefresh);
    if (this.#refreshInterval) clearInterval(this.#refreshInterval);
    if (this.#recordsInterval) clearInterval(this.#recordsInterval);
    if (this.#recordsPollEnd) clearTimeout(this.#recordsPollEnd);
    if (this.#recordsReadQueued) clearImmediate(this.#recordsReadQueued);
    this.#firstRefresh = undefined;
    this.#refreshInterval = undefined;
    this.#recordsInterval = undefined;
    this.#recordsPollEnd = undefined;
    this.#recordsReadQueued = undefined;
    for (const state of this.#known.values()) {
      if (state.timer) clearTimeout(state.timer);
      state.timer = undefined;
    }
    for (const link of [...this.#pending, ...this.#links.values()]) link.destroy();
    this.#pending.clear();
    this.#links.clear();
    if (this.#swarm) await this.#swarm.destroy();
    if (this.#dht && !this.#dht.destroyed) await this.#dht.destroy();
    this.#log.info('transport stopped');
  }

  send(nodeId: string, message: OutboundMessage): SendResult {
    if (!this.#running) return { ok: false, error: new TransportStoppedError('send') };
    const link = this.#links.get(nodeId);
    if (!link) return { ok: false, error: new NoLinkError(nodeId) };
    let frame: Uint8Array;
    try {
      frame = encodeFrame({ type: message.type, group: message.group ?? '', payload: message.payload });
    } catch (err) {
      // A message we cannot encode is the caller's bug; return it rather than crash the agent's I/O loop.
      return { ok: false, error: err as InvalidArgumentError };
    }
    const datagram = message.unreliable === true && link.sendDatagram(frame);
    if (datagram) this.#stats.datagramsSent++;
    const error = datagram ? undefined : link.sendFrame(frame, message.bulk === true);
    if (error) {
      this.#stats.sendQueueFull++;
      return { ok: false, error };
    }
    link.lastUsed = ++this.#useSeq;
    this.#stats.messagesSent++;
    return { ok: true };
  }

  connect(nodeId: string): void {
    if (!/^[0-9a-f]{64}$/.test(nodeId)) throw new InvalidArgumentError(`node id "${nodeId}" is not 64 lowercase hex characters`, { nodeId });
    if (nodeId === this.nodeId) return;
    this.#remember(nodeId);
    if (!this.#running || this.#links.has(nodeId)) return;
    this.#swarm?.joinPeer(Buffer.from(nodeId, 'hex'));
    this.#scheduleRedial(nodeId);
  }

  forget(nodeId: string): void {
    const state = this.#known.get(nodeId);
    if (state) {
      if (state.timer) clearTimeout(state.timer);
      this.#known.delete(nodeId);
      this.#swarm?.leavePeer(state.key);
    }
    this.#links.get(nodeId)?.close('peer forgotten');
  }

  links(): LinkInfo[] {
    return [...this.#links.values()].map((l) => linkInfo(l));
  }

  stats(): TransportStats {
    return { ...this.#stats };
  }

  onMessage(handler: (message: InboundMessage) => void): Unsubscribe {
    return this.#messageListeners.add(handler);
  }

  onLinkUp(handler: (link: LinkInfo) => void): Unsubscribe {
    return this.#upListeners.add(handler);
  }

  onLinkDown(handler: (nodeId: string, reason: LinkDownReason) => void): Unsubscribe {
    return this.#downListeners.add(handler);
  }

  #onConnection(conn: NoiseSecretStream): void {
    const remoteAddress = `${conn.rawStream?.remoteHost ?? '?'}:${conn.rawStream?.remotePort ?? '?'}`;
    if (!this.#running) {
      conn.on('error', () => undefined);
      conn.destroy();
      return;
    }
    const handshakeHash = conn.handshakeHash;
    if (!handshakeHash) {
      // Cannot happen with hyperdht's connections (the Noise handshake is done before 'connection').
      this.#log.error({ remoteAddress }, 'connection without a Noise handshake hash; closing it');
      conn.on('error', () => undefined);
      conn.destroy();
      return;
    }
    conn.setTimeout(LIMITS.transportStreamTimeoutMs);
    const link = new Link({
      stream: conn,
      isInitiator: conn.isInitiator,
      localPublicKey: this.#keyPair.publicKey,
      remotePublicKey: conn.remotePublicKey,
      handshakeHash,
      remoteAddress,
      authKey: this.#authKey,
      range: this.#o.wireRange ?? LOCAL_WIRE_RANGE,
      nodeName: this.#o.nodeName ?? '',
      agentVersion: this.#o.agentVersion ?? '',
      logger: this.#log,
      handlers: {
        onUp: (l) => this.#onLinkUp(l),
        onMessage: (l, envelope) => {
          l.lastUsed = ++this.#useSeq;
          this.#stats.messagesReceived++;
          this.#messageListeners.emit({ from: l.remoteId, envelope });
        },
        onClose: (l, reason) => this.#onLinkClosed(l, reason),
      },
    });
    this.#pending.add(link);
    link.start();
  }

  #onLinkUp(link: Link): void {
    this.#pending.delete(link);
    const id = link.remoteId;
    const existing = this.#links.get(id);
    if (existing) {
      // hyperswarm keeps one connection per peer and replaces a stale one with the newer; follow it silently:
      // the peer stayed reachable throughout.
      this.#links.delete(id);
      existing.close('replaced by a newer link');
    } else if (this.#links.size >= this.#maxLinks) {
      this.#evictLeastRecentlyUsed();
    }
    link.lastUsed = ++this.#useSeq;
    this.#links.set(id, link);
    this.#remember(id);
    const state = this.#known.get(id);
    if (state) {
      state.attempt = 0;
      if (state.timer) clearTimeout(state.timer);
      state.timer = undefined;
    }
    this.#stats.linksOpened++;
    this.#log.info({ peer: id.slice(0, 16), name: link.remoteName, address: link.remoteAddress, initiator: link.isInitiator }, 'link up');
    if (!existing) this.#upListeners.emit(linkInfo(link));
  }

  #evictLeastRecentlyUsed(): void {
    let oldest: Link | undefined;
    for (const l of this.#links.values()) if (!oldest || l.lastUsed < oldest.lastUsed) oldest = l;
    if (!oldest) return;
    this.#links.delete(oldest.remoteId);
    this.#stats.evictions++;
    this.#log.info({ peer: oldest.remoteId.slice(0, 16) }, 'link pool full: closing the least recently used link');
    oldest.close('evicted from the link pool');
    this.#stats.linksClosed++;
    this.#downListeners.emit(oldest.remoteId, 'evicted');
  }

  #onLinkClosed(link: Link, reason: LinkCloseReason): void {
    const wasPending = this.#pending.delete(link);
    const fields = { peer: link.remoteId, address: link.remoteAddress, reason: reason.kind, detail: reason.detail ?? reason.error?.message };
    switch (reason.kind) {
      case 'auth-failed':
        this.#stats.authFailures++;
        this.#log.warn(fields, 'refused a peer that failed authentication');
        break;
      case 'version-mismatch':
        this.#stats.versionMismatches++;
        this.#log.warn(fields, 'refused a peer with an incompatible wire version');
        break;
      case 'rejected-by-peer':
        this.#stats.rejectsReceived++;
        this.#log.warn(fields, 'the peer refused this link');
        break;
      case 'framing':
        this.#stats.framingErrors++;
        this.#log.warn(fields, 'closed a link that sent an invalid frame');
        break;
      case 'handshake-timeout':
        this.#stats.handshakeTimeouts++;
        this.#log.warn(fields, 'closed a link that did not complete the handshake in time');
        break;
      default:
        this.#log.debug(fields, 'link closed');
    }
    if (wasPending || this.#links.get(link.remoteId) !== link) return;
    this.#links.delete(link.remoteId);
    this.#stats.linksClosed++;
    const down: LinkDownReason = !this.#running ? 'stopped'
      : reason.kind === 'framing' ? 'framing'
        : reason.kind === 'rejected-by-peer' ? 'rejected'
          : 'closed';
    this.#log.info(fields, 'link down');
    this.#downListeners.emit(link.remoteId, down);
    if (this.#running && this.#known.has(link.remoteId)) this.#scheduleRedial(link.remoteId);
  }

  #remember(nodeId: string): void {
    if (this.#known.has(nodeId)) return;
    if (this.#known.size >= LIMITS.transportMaxKnownPeers) {
      this.#log.warn({ peer: nodeId.slice(0, 16), max: LIMITS.transportMaxKnownPeers }, 'too many known peers; this one will not be redialed');
      return;
    }
    this.#known.set(nodeId, { key: Buffer.from(nodeId, 'hex'), attempt: 0, timer: undefined });
  }

  #scheduleRedial(nodeId: string): void {
    const state = this.#known.get(nodeId);
    if (!state || state.timer || !this.#running || this.#links.has(nodeId)) return;
    const capped = Math.min(LIMITS.transportRedialMaxMs, LIMITS.transportRedialBaseMs * 2 ** Math.min(state.attempt, 20));
    // "Equal jitter": half fixed, half random, so peers that lost each other at once do not redial in lockstep.
    const delayMs = Math.round(capped / 2 + this.#random.float() * (capped / 2));
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (!this.#running || this.#links.has(nodeId) || this.#known.get(nodeId) !== state) return;
      state.attempt++;
      this.#stats.redials++;
      const swarm = this.#swarm!;
      // hyperswarm stops trying an explicit peer after a few failures (then waits ~10 min): reset its counter.
      const info = swarm.peers.get(nodeId);
      if (info) {
        info.attempts = 0;
        if (info.banned) info.ban(false);
      }
      swarm.joinPeer(state.key);
      this.#scheduleRedial(nodeId);
    }, delayMs);
  }

  #refresh(): void {
    if (!this.#running || !this.#discovery) return;
    this.#discovery.refresh({ client: true, server: true }).catch((err: unknown) => {
      this.#log.debug({ err: describeError(err) }, 'discovery refresh failed; the next one will retry');
    });
    for (const id of this.#known.keys()) this.#scheduleRedial(id);
    this.#recordDialed.clear();
    this.#dialLocalRecords();
  }

  /**
   * Reads our node's records (#dialLocalRecords) after every DHT request about the cluster's topic it serves: an
   * announce stores a record there (a peer that just joined, or refreshed), a lookup means someone is looking for
   * the cluster. So a record is read as soon as it arrives, and an idle agent sets no timer for it.
   * This wraps hyperdht's `onrequest` (dht-rpc's documented extension point, hyperdht's override of it; pinned
   * version). The wrapper only observes: the request is handled exactly as before, and if hyperdht stops calling
   * it, records are still read at every discovery refresh and, for a while after start, on a timer.
   */
  #watchTopicRequests(dht: DHT): void {
    const node = dht as unknown as { onrequest?: (req: { target?: Uint8Array | null }) => boolean };
    const handle = node.onrequest;
    if (typeof handle !== 'function') {
      this.#log.warn('hyperdht has no onrequest method: announcements held by this node are read at discovery refreshes only');
      return;
    }
    node.onrequest = (req) => {
      const handled = handle.call(dht, req);
      const target = req.target;
      if (target && target.byteLength === this.#topic.length && this.#topic.equals(target)) this.#queueRecordsRead();
      return handled;
    };
  }

  #queueRecordsRead(): void {
    if (this.#recordsReadQueued || !this.#running) return;
    this.#recordsReadQueued = setImmediate(() => {
      this.#recordsReadQueued = undefined;
      this.#dialLocalRecords();
    });
  }

  /**
   * A DHT lookup never asks the node doing it, so an announcement stored on our own DHT node is invisible to our
   * lookups. In a two-agent cluster that is every announcement: each holds the other's record and neither finds
   * the other. The first agent of a cluster is worse off still: it announced when no other node existed, so
   * nobody finds it until its next refresh. So we also read the records our node holds for the topic and dial
   * those peers (each once per refresh interval, so a stranger announcing on our topic costs little): when a
   * request about the topic arrives (#watchTopicRequests), at every refresh, and often for a while after start.
   * This reads hyperdht internals (`_persistent.records`, pinned version); if they change it finds nothing and
   * discovery falls back to lookups only.
   */
  #dialLocalRecords(): void {
    const swarm = this.#swarm;
    if (!swarm || !this.#running) return;
    const records = localTopicRecords(this.#dht, this.#topic);
    for (const record of records) {
      const key = record.subarray(0, 32);
      const id = key.toString('hex');
      if (id === this.nodeId || this.#links.has(id) || this.#recordDialed.has(id)) continue;
      if (this.#recordDialed.size >= LIMITS.transportMaxKnownPeers) return;
      this.#recordDialed.add(id);
      swarm.joinPeer(key);
    }
  }
}

interface RecordStore {
  _persistent?: { records?: { get?: (key: string, max: number) => unknown } } | null;
}

/** Announcement records (publicKey first) that our own DHT node stores for `topic`; [] if unavailable. */
function localTopicRecords(dht: DHT | undefined, topic: Buffer): Buffer[] {
  const get = (dht as unknown as RecordStore | undefined)?._persistent?.records?.get;
  if (typeof get !== 'function') return [];
  const records = get.call((dht as unknown as RecordStore)._persistent!.records, topic.toString('hex'), 20);
  if (!Array.isArray(records)) return [];
  return records.filter((r): r is Buffer => Buffer.isBuffer(r) && r.length >= 32);
}

function linkInfo(link: Link): LinkInfo {
  return { nodeId: link.remoteId, nodeName: link.remoteName, address: link.remoteAddress, initiator: link.isInitiator, wireVersion: link.wireVersion };
}
