/**
 * The Transport interface: what the runtime uses to talk to other agents. Two implementations: the hyperswarm
 * transport (real network) and the in-memory hub (runtime tests). Node ids are Ed25519 public keys in hex.
 */
import type { ShoalError } from '../lib/errors.js';
import type { Envelope, MessageType } from '../wire/frame.js';

/** What a caller hands to send(): an envelope without the version (the link fills it in). */
export interface OutboundMessage {
  type: MessageType;
  group?: string;
  payload: Uint8Array;
  /**
   * Best effort: sent as one encrypted datagram when it fits (LIMITS.transportMaxDatagramBytes), so it may be lost,
   * duplicated or overtaken, and costs no acknowledgement on the wire. For messages whose protocol expects loss
   * (SWIM's probes and rumours). Otherwise, or when it does not fit, it goes on the reliable stream.
   */
  unreliable?: boolean;
  /**
   * Forwarded bytes (the service mesh's streams): sent on the reliable stream, but only when nothing else waits, so
   * that a transfer never delays gossip or Raft on the same link. At most LIMITS.transportBulkQueueMaxBytes wait.
   */
  bulk?: boolean;
}

export interface InboundMessage {
  from: string;
  envelope: Envelope;
}

export interface LinkInfo {
  nodeId: string;
  nodeName: string;
  address: string;
  initiator: boolean;
  wireVersion: number;
}

export type LinkDownReason = 'closed' | 'evicted' | 'replaced' | 'stopped' | 'framing' | 'rejected';

export type SendResult = { ok: true } | { ok: false; error: ShoalError };

/** Counters a metrics exporter can read; they only ever grow. */
export interface TransportStats {
  linksOpened: number;
  linksClosed: number;
  /** Connections whose peer failed the cluster-key proof (or sent garbage before its Hello). */
  authFailures: number;
  versionMismatches: number;
  /** Links closed because of an oversized, truncated or undecodable frame. */
  framingErrors: number;
  handshakeTimeouts: number;
  /** Rejects received from peers (our proof failed on their side, or versions did not overlap). */
  rejectsReceived: number;
  evictions: number;
  messagesSent: number;
  messagesReceived: number;
  sendQueueFull: number;
  redials: number;
  /** Messages sent as unreliable datagrams (OutboundMessage.unreliable that fitted); also counted in messagesSent. */
  datagramsSent: number;
}

export type Unsubscribe = () => void;

export interface Transport {
  /** This agent's node id (public key, hex). Known before start(). */
  readonly nodeId: string;
  /** Starts listening and discovering. Idempotent. */
  start(): Promise<void>;
  /** Closes every link and the network node; leaves no timer. Idempotent. */
  stop(): Promise<void>;
  /** Sends one message on the authenticated link to `nodeId`. Never throws for operating errors. */
  send(nodeId: string, message: OutboundMessage): SendResult;
  /** Dials a peer whose key is known (from gossip); keeps redialing it with backoff until forget(). */
  connect(nodeId: string): void;
  /** Stops redialing a peer (it left the cluster) and closes its link. */
  forget(nodeId: string): void;
  /** Authenticated links open now. */
  links(): LinkInfo[];
  stats(): TransportStats;
  onMessage(handler: (message: InboundMessage) => void): Unsubscribe;
  onLinkUp(handler: (link: LinkInfo) => void): Unsubscribe;
  onLinkDown(handler: (nodeId: string, reason: LinkDownReason) => void): Unsubscribe;
}

export function emptyStats(): TransportStats {
  return {
    linksOpened: 0, linksClosed: 0, authFailures: 0, versionMismatches: 0, framingErrors: 0, handshakeTimeouts: 0,
    rejectsReceived: 0, evictions: 0, messagesSent: 0, messagesReceived: 0, sendQueueFull: 0, redials: 0, datagramsSent: 0,
  };
}

/** A small typed event list; handlers that throw are the caller's bug and propagate. */
export class Listeners<A extends unknown[]> {
  readonly #handlers = new Set<(...args: A) => void>();

  add(handler: (...args: A) => void): Unsubscribe {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  emit(...args: A): void {
    for (const h of [...this.#handlers]) h(...args);
  }
}
