/**
 * One connection to one peer, from the moment the encrypted stream opens until it closes.
 *
 *   handshaking --(valid Hello from peer)--> up --(stream closed, bad frame, Reject, evicted, stop)--> closed
 *        \--(bad proof, version mismatch, bad frame, timeout, Reject)----------------------------------/
 *
 * In `handshaking` both sides have sent their Hello (proof bound to this connection's Noise handshake, see
 * handshake.ts); the only frame accepted from the peer is its Hello (or a Reject). Nothing reaches the owner's
 * onMessage before the peer's proof checked out. Any decode error closes this link only.
 *
 * The link works on any byte stream with write/end/destroy and data/end/close/drain events, so it is tested on
 * in-process stream pairs as well as on real hyperswarm connections.
 */
import type { Logger } from '../log/logger.js';
import { DecodeError, ShoalError, describeError } from '../lib/errors.js';
import { FrameDecoder, MessageType, decodeDatagram, encodeFrame, type Envelope, type FrameLimits } from '../wire/frame.js';
import { LIMITS } from '../lib/limits.js';
import { AuthFailedError, SendQueueFullError, WireVersionError } from './errors.js';
import {
  computeProof, decodeHello, decodeReject, encodeHello, encodeReject, negotiateVersion, verifyProof,
  type Role, type VersionRange,
} from './handshake.js';

export interface LinkStream {
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  destroy(err?: Error): unknown;
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'end' | 'close' | 'drain', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  /** Unreliable datagrams, where the stream has them (hyperswarm's secret stream over UDX). */
  on(event: 'message', listener: (datagram: Uint8Array) => void): unknown;
  trySend?(datagram: Uint8Array): unknown;
}

export type LinkState = 'handshaking' | 'up' | 'closed';

export type LinkCloseKind =
  | 'auth-failed' // the peer's proof was wrong or its Hello malformed
  | 'version-mismatch' // no common wire version
  | 'rejected-by-peer' // the peer sent Reject
  | 'framing' // undecodable, oversized or truncated frame, or a protocol violation
  | 'handshake-timeout'
  | 'stream-closed' // the peer went away, or the stream timed out
  | 'local'; // we closed it (eviction, replaced by a newer link, stop)

export interface LinkCloseReason {
  kind: LinkCloseKind;
  error?: ShoalError;
  detail?: string;
}

export interface LinkHandlers {
  onUp(link: Link): void;
  onMessage(link: Link, envelope: Envelope): void;
  onClose(link: Link, reason: LinkCloseReason): void;
}

export interface LinkOptions {
  stream: LinkStream;
  isInitiator: boolean;
  localPublicKey: Uint8Array;
  remotePublicKey: Uint8Array;
  handshakeHash: Uint8Array;
  remoteAddress: string;
  authKey: Uint8Array;
  range: VersionRange;
  nodeName: string;
  agentVersion: string;
  logger: Logger;
  handlers: LinkHandlers;
  handshakeTimeoutMs?: number;
  sendQueueMaxFrames?: number;
  sendQueueMaxBytes?: number;
  frameLimits?: FrameLimits;
}

const EMPTY = new Uint8Array(0);

/** How long a link that sent Reject waits for the peer to close before destroying the stream itself. */
const REJECT_LINGER_MS = 1_000;

export class Link {
  readonly remoteId: string;
  readonly remoteAddress: string;
  readonly isInitiator: boolean;
  /** Filled in once the peer's Hello is accepted. */
  remoteName = '';
  remoteAgentVersion = '';
  wireVersion = 0;
  /** Sequence number of the last send or receive, for least-recently-used eviction (no clock needed). */
  lastUsed = 0;

  readonly #o: LinkOptions;
  readonly #decoder: FrameDecoder;
  readonly #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  /** Bulk frames wait here until the stream is drained and no other frame waits (see sendFrame). */
  #bulk: Uint8Array[] = [];
  #bulkHead = 0;
  #bulkBytes = 0;
  /** Bulk bytes written since the stream reported full: what may be buffered ahead of the next control frame. */
  #bulkSinceDrain = 0;
  #backpressured = false;
  #state: LinkState = 'handshaking';
  #handshakeTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;
  readonly #log: Logger;

  constructor(options: LinkOptions) {
    this.#o = options;
    this.remoteId = Buffer.from(options.remotePublicKey).toString('hex');
    this.remoteAddress = options.remoteAddress;
    this.isInitiator = options.isInitiator;
    this.#log = options.logger.child({ peer: this.remoteId.slice(0, 16), address: options.remoteAddress });
    this.#decoder = new FrameDecoder(`link from ${this.remoteId.slice(0, 16)} (${options.remoteAddress})`, options.frameLimits);
    const s = options.stream;
    s.on('data', (chunk) => this.#onData(chunk));
    s.on('end', () => this.#onEnd());
    s.on('drain', () => this.#flush(true));
    s.on('message', (datagram) => this.#onDatagram(datagram));
    s.on('error', (err) => this.#log.debug({ err: describeError(err) }, 'link stream error'));
    s.on('close', () => {
      this.#clearTimers();
      this.#close({ kind: 'stream-closed' }, false);
    });
  }

  get state(): LinkState {
    return this.#state;
  }

  get queuedFrames(): number {
    return this.#queue.length;
  }

  /** Sends our Hello and arms the handshake timeout. Call once, right after construction. */
  start(): void {
    const role: Role = this.isInitiator ? 'initiator' : 'responder';
    const proof = computeProof({ ...this.#proofKeys(), role });
    this.#writeFrame(encodeFrame({
      type: MessageType.MESSAGE_TYPE_HELLO,
      group: '',
      payload: encodeHello({ range: this.#o.range, proof, nodeName: this.#o.nodeName, agentVersion: this.#o.agentVersion }),
    }));
    this.#handshakeTimer = setTimeout(() => {
      this.#handshakeTimer = undefined;
      if (this.#state === 'handshaking') this.#close({ kind: 'handshake-timeout', detail: 'no valid Hello in time' }, true);
    }, this.#o.handshakeTimeoutMs ?? LIMITS.transportHandshakeTimeoutMs);
  }

  /** Bulk bytes waiting to be written (forwarded connections' data). */
  get bulkQueuedBytes(): number {
    return this.#bulkBytes;
  }

  /**
   * Queues one encoded frame. Returns the error instead of sending when the queue is full.
   *
   * A `bulk` frame (a forwarded connection's bytes) is written only when the stream has room and no other frame
   * waits, so gossip and Raft never queue behind a transfer: at most one stream buffer of bulk data is ahead of them.
   */
  sendFrame(frame: Uint8Array, bulk = false): SendQueueFullError | undefined {
    if (bulk) {
      if (this.#bulkBytes + frame.length > LIMITS.transportBulkQueueMaxBytes) {
        return new SendQueueFullError(this.remoteId, this.#bulk.length - this.#bulkHead, this.#bulkBytes);
      }
      this.#bulk.push(frame);
      this.#bulkBytes += frame.length;
      this.#flush(false);
      return undefined;
    }
    if (this.#backpressured || this.#queue.length > 0) {
      const maxFrames = this.#o.sendQueueMaxFrames ?? LIMITS.transportSendQueueMaxFrames;
      const maxBytes = this.#o.sendQueueMaxBytes ?? LIMITS.transportSendQueueMaxBytes;
      if (this.#queue.length + 1 > maxFrames || this.#queuedBytes + frame.length > maxBytes) {
        return new SendQueueFullError(this.remoteId, this.#queue.length, this.#queuedBytes);
      }
      this.#queue.push(frame);
      this.#queuedBytes += frame.length;
      return undefined;
    }
    this.#writeFrame(frame);
    return undefined;
  }

  /**
   * Sends one encoded frame as an unreliable datagram. False (nothing sent) when the link is not up, the stream has
   * no datagrams, or the frame is larger than LIMITS.transportMaxDatagramBytes: the caller then uses sendFrame.
   */
  sendDatagram(frame: Uint8Array): boolean {
    const trySend = this.#o.stream.trySend;
    if (this.#state !== 'up' || trySend === undefined || frame.length > LIMITS.transportMaxDatagramBytes) return false;
    trySend.call(this.#o.stream, frame);
    return true;
  }

  /** Closes the link from our side (eviction, duplicate, stop). Idempotent. */
  close(detail = 'closed locally'): void {
    this.#close({ kind: 'local', detail }, true);
  }

  #proofKeys(): Omit<Parameters<typeof computeProof>[0], 'role'> {
    const o = this.#o;
    return {
      authKey: o.authKey,
      handshakeHash: o.handshakeHash,
      initiatorPublicKey: o.isInitiator ? o.localPublicKey : o.remotePublicKey,
      responderPublicKey: o.isInitiator ? o.remotePublicKey : o.localPublicKey,
    };
  }

  #writeFrame(frame: Uint8Array): void {
    if (this.#o.stream.write(frame) === false) this.#backpressured = true;
  }

  #flush(drained = true): void {
    if (drained) {
      this.#backpressured = false;
      this.#bulkSinceDrain = 0;
    }
    while (this.#queue.length > 0 && !this.#backpressured && this.#state === 'up') {
      const frame = this.#queue.shift()!;
      this.#queuedBytes -= frame.length;
      this.#writeFrame(frame);
    }
    // Bulk frames go only when no other frame waits. While the stream takes them (its buffer under its high-water
    // mark) they flow freely; once it reports full, at most LIMITS.transportBulkInflightBytes more go in before its
    // next drain: enough to keep a fast link busy, little enough that a heartbeat written next waits for at most that.
    while (this.#bulkHead < this.#bulk.length && this.#queue.length === 0 && this.#state === 'up'
      && (!this.#backpressured || this.#bulkSinceDrain < LIMITS.transportBulkInflightBytes)) {
      const frame = this.#bulk[this.#bulkHead]!;
      this.#bulk[this.#bulkHead++] = EMPTY;
      this.#bulkBytes -= frame.length;
      const full = this.#backpressured;
      this.#writeFrame(frame);
      if (full || this.#backpressured) this.#bulkSinceDrain += frame.length;
    }
    if (this.#bulkHead > 1024 && this.#bulkHead * 2 > this.#bulk.length) {
      this.#bulk = this.#bulk.slice(this.#bulkHead);
      this.#bulkHead = 0;
    }
  }

  #onData(chunk: Uint8Array): void {
    if (this.#state === 'closed') return;
    let envelopes: Envelope[];
    try {
      envelopes = this.#decoder.push(chunk);
    } catch (err) {
      this.#close({ kind: 'framing', error: err instanceof ShoalError ? err : undefined, detail: describeError(err) }, true);
      return;
    }
    for (const envelope of envelopes) {
      if (this.state === 'closed') return; // a previous envelope may have closed the link
      this.#onEnvelope(envelope);
    }
  }

  /** A datagram carries one whole frame. A bad one is dropped (and logged); unlike a bad stream frame it closes nothing. */
  #onDatagram(datagram: Uint8Array): void {
    if (this.#state !== 'up') return;
    let envelope: Envelope;
    try {
      envelope = decodeDatagram(datagram, `datagram from ${this.remoteId.slice(0, 16)} (${this.remoteAddress})`, this.#o.frameLimits);
    } catch (err) {
      this.#log.debug({ err: describeError(err) }, 'dropped an undecodable datagram');
      return;
    }
    if (envelope.type === MessageType.MESSAGE_TYPE_HELLO || envelope.type === MessageType.MESSAGE_TYPE_REJECT) {
      this.#log.debug({ type: envelope.type }, 'dropped a datagram of a stream-only message type');
      return;
    }
    this.#o.handlers.onMessage(this, envelope);
  }

  #onEnd(): void {
    if (this.#state === 'closed') return;
    try {
      this.#decoder.end();
    } catch (err) {
      if (err instanceof DecodeError) {
        this.#close({ kind: 'framing', error: err, detail: describeError(err) }, true);
        return;
      }
      throw err;
    }
    this.#close({ kind: 'stream-closed', detail: 'peer ended the stream' }, true);
  }

  #onEnvelope(envelope: Envelope): void {
    if (envelope.type === MessageType.MESSAGE_TYPE_REJECT) {
      const reject = decodeReject(envelope.payload);
      this.#close({ kind: 'rejected-by-peer', detail: `${reject.code}: ${reject.reason}` }, true);
      return;
    }
    if (this.#state === 'handshaking') {
      if (envelope.type !== MessageType.MESSAGE_TYPE_HELLO) {
        this.#reject({ kind: 'auth-failed', error: new AuthFailedError(`peer sent message type ${envelope.type} before its Hello`) });
        return;
      }
      this.#onHello(envelope.payload);
      return;
    }
    if (envelope.type === MessageType.MESSAGE_TYPE_HELLO) {
      this.#close({ kind: 'framing', detail: 'second Hello on an established link' }, true);
      return;
    }
    this.#o.handlers.onMessage(this, envelope);
  }

  #onHello(payload: Uint8Array): void {
    const hello = decodeHello(payload);
    if (hello instanceof AuthFailedError) {
      this.#reject({ kind: 'auth-failed', error: hello });
      return;
    }
    const remoteRole: Role = this.isInitiator ? 'responder' : 'initiator';
    if (!verifyProof({ ...this.#proofKeys(), role: remoteRole }, hello.proof)) {
      this.#reject({ kind: 'auth-failed', error: new AuthFailedError('the peer does not hold this cluster\'s key (link proof did not verify)') });
      return;
    }
    const version = negotiateVersion(this.#o.range, hello.range);
    if (version instanceof WireVersionError) {
      this.#reject({ kind: 'version-mismatch', error: version });
      return;
    }
    this.wireVersion = version;
    this.remoteName = hello.nodeName;
    this.remoteAgentVersion = hello.agentVersion;
    this.#state = 'up';
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#o.handlers.onUp(this);
    this.#flush();
  }

  /** Tells the peer why (Reject), then closes. The peer learns only the code and a generic reason. */
  #reject(reason: LinkCloseReason & { error: ShoalError }): void {
    this.#writeFrame(encodeFrame({
      type: MessageType.MESSAGE_TYPE_REJECT,
      group: '',
      payload: encodeReject(reason.error.code, reason.error.message),
    }));
    this.#close(reason, false);
    this.#o.stream.end();
    this.#lingerTimer = setTimeout(() => {
      this.#lingerTimer = undefined;
      this.#o.stream.destroy();
    }, REJECT_LINGER_MS);
  }

  #clearTimers(): void {
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    this.#handshakeTimer = undefined;
    this.#lingerTimer = undefined;
  }

  /** Destroys the stream now, even if a Reject is still lingering (used by stop()). */
  destroy(): void {
    this.#clearTimers();
    this.#close({ kind: 'local', detail: 'transport stopped' }, true);
    this.#o.stream.destroy();
  }

  #close(reason: LinkCloseReason, destroyStream: boolean): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#bulk = [];
    this.#bulkHead = 0;
    this.#bulkBytes = 0;
    if (destroyStream) {
      this.#clearTimers();
      this.#o.stream.destroy();
    }
    this.#o.handlers.onClose(this, reason);
  }
}
