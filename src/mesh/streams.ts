/**
 * Forwarded TCP connections over the peer links: many streams per link, each with its own window, as bulk frames
 * that never delay gossip or Raft on the same link (src/transport/link.ts writes them only when nothing else waits).
 *
 *   opener                                         acceptor (the node that runs the task)
 *   OPEN {alloc, target port} ───────────────────►  is it an endpoint here? connect to 127.0.0.1:<task port>
 *         ◄─────────────────────────── ACCEPT       (or RESET: the opener tries another endpoint; the client's
 *   DATA ⇄ DATA, CREDIT ⇄ CREDIT                     socket was never read, so nothing is lost)
 *   END (half-close) ⇄ END;  RESET on error, on a link going down, or on a protocol violation
 *
 * Flow control: each side may have at most LIMITS.meshStreamWindowBytes of a stream's data unacknowledged; the
 * receiver grants more (CREDIT) as its socket takes the bytes, so a slow reader slows its own stream only, and a
 * link's bulk queue never holds more than the streams' windows.
 */
import net from 'node:net';
import { ShoalError, describeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Logger } from '../log/logger.js';
import { shoal } from '../gen/proto.js';
import { MessageType } from '../wire/frame.js';
import type { Transport } from '../transport/index.js';

const Kind = shoal.v1.StreamFrameKind;
const ACCEPTOR_BIT = 0x8000_0000;
const HEADER_BYTES = 5;

export interface StreamTarget {
  allocId: string;
  targetPort: number;
  /** `<job>/<service>`. */
  service: string;
}

export interface StreamMuxOptions {
  transport: Transport;
  logger: Logger;
  /**
   * Where a task this node runs listens for `target`: its port on 127.0.0.1, or an error (code and reason) when the
   * allocation is not an endpoint here (stopping, unhealthy, gone).
   */
  resolve: (target: StreamTarget) => { host: string; port: number } | { code: string; reason: string };
}

export interface StreamStats {
  open: number;
  opened: number;
  accepted: number;
  resets: number;
  bytesSent: number;
  bytesReceived: number;
}

/** Why opening a stream failed; the caller tries another endpoint. */
export class StreamOpenError extends ShoalError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

interface Stream {
  peer: string;
  /** The id as the opener numbered it (below 2^31). */
  id: number;
  /** This side opened it. */
  mine: boolean;
  socket: net.Socket | undefined;
  /** Bytes this side may still send before the peer grants more. */
  sendWindow: number;
  /** Bytes the peer may still send before this side grants more. */
  recvWindow: number;
  /** Bytes written to the socket and not yet granted back. */
  toGrant: number;
  sentEnd: boolean;
  gotEnd: boolean;
  done: boolean;
  /** While opening (this side is the opener): settles the open promise. */
  pending?: { resolve: () => void; reject: (err: StreamOpenError) => void; timer: NodeJS.Timeout };
}

export class StreamMux {
  readonly #o: StreamMuxOptions;
  readonly #log: Logger;
  /** Per peer: streams by key (`m<id>` for ours, `t<id>` for theirs). */
  readonly #peers = new Map<string, Map<string, Stream>>();
  #nextId = 1;
  readonly #stats: StreamStats = { open: 0, opened: 0, accepted: 0, resets: 0, bytesSent: 0, bytesReceived: 0 };

  constructor(options: StreamMuxOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'mesh-streams' });
  }

  stats(): StreamStats {
    return { ...this.#stats };
  }

  /** Streams open now with `peer` (both directions). */
  openWith(peer: string): number {
    return this.#peers.get(peer)?.size ?? 0;
  }

  /**
   * Opens a stream to a task on `peer` and, once the peer has connected to it, joins `socket` to it. The socket must
   * be paused and unread: when the open fails, it is left as it was, so the caller can try another endpoint.
   */
  open(peer: string, target: StreamTarget, socket: net.Socket): Promise<void> {
    const streams = this.#streamsOf(peer);
    if (streams.size >= LIMITS.meshMaxStreamsPerPeer) {
      return Promise.reject(new StreamOpenError('ERR_LIMIT_EXCEEDED', `${streams.size} streams are open with node ${peer.slice(0, 16)} (limit meshMaxStreamsPerPeer)`));
    }
    const id = this.#nextId;
    this.#nextId = this.#nextId >= ACCEPTOR_BIT - 1 ? 1 : this.#nextId + 1;
    const s = this.#newStream(peer, id, true);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.#failOpen(s, 'ERR_TIMEOUT', `node ${peer.slice(0, 16)} did not answer within ${LIMITS.meshRemoteOpenTimeoutMs} ms`), LIMITS.meshRemoteOpenTimeoutMs);
      s.pending = {
        resolve: () => {
          clearTimeout(timer);
          this.#attach(s, socket);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
        timer,
      };
      streams.set(key(s), s);
      this.#stats.open++;
      const body = shoal.v1.StreamOpen.encode({ allocId: target.allocId, targetPort: target.targetPort, service: target.service }).finish();
      if (!this.#send(s, Kind.STREAM_FRAME_KIND_OPEN, body)) this.#failOpen(s, 'ERR_NO_LINK', `no link to node ${peer.slice(0, 16)}`);
    });
  }

  /** A MESSAGE_TYPE_STREAM payload from `peer`. Never throws: a bad frame resets its stream, or is dropped. */
  receive(peer: string, payload: Uint8Array): void {
    if (payload.length < HEADER_BYTES) {
      this.#log.warn({ peer: peer.slice(0, 16), bytes: payload.length }, 'dropped a stream frame shorter than its header');
      return;
    }
    const kind = payload[0]!;
    const raw = ((payload[1]! << 24) | (payload[2]! << 16) | (payload[3]! << 8) | payload[4]!) >>> 0;
    const ours = (raw & ACCEPTOR_BIT) !== 0;
    const id = raw & ~ACCEPTOR_BIT;
    const body = payload.subarray(HEADER_BYTES);
    if (kind === Kind.STREAM_FRAME_KIND_OPEN && !ours) {
      this.#accept(peer, id, body);
      return;
    }
    const s = this.#peers.get(peer)?.get(`${ours ? 'm' : 't'}${id}`);
    if (!s) {
      // A frame for a stream already gone (it was reset while this was on its way): tell the peer, unless it is a
      // reset itself.
      if (kind !== Kind.STREAM_FRAME_KIND_RESET) this.#sendRaw(peer, Kind.STREAM_FRAME_KIND_RESET, ours ? id : id | ACCEPTOR_BIT, resetBody('ERR_CLOSED', 'no such stream'));
      return;
    }
    switch (kind) {
      case Kind.STREAM_FRAME_KIND_ACCEPT:
        if (!s.mine || !s.pending) return this.#reset(s, 'ERR_PROTOCOL', 'ACCEPT for a stream that is not opening');
        s.pending.resolve();
        s.pending = undefined;
        this.#stats.opened++;
        return;
      case Kind.STREAM_FRAME_KIND_DATA:
        return this.#onData(s, body);
      case Kind.STREAM_FRAME_KIND_CREDIT: {
        if (body.length !== 4) return this.#reset(s, 'ERR_PROTOCOL', 'a CREDIT frame carries 4 bytes');
        const n = ((body[0]! << 24) | (body[1]! << 16) | (body[2]! << 8) | body[3]!) >>> 0;
        if (n === 0 || s.sendWindow + n > LIMITS.meshStreamWindowBytes) return this.#reset(s, 'ERR_PROTOCOL', `a grant of ${n} bytes exceeds the window`);
        s.sendWindow += n;
        if (s.socket && s.socket.isPaused() && s.sendWindow > 0 && !s.pending) s.socket.resume();
        return;
      }
      case Kind.STREAM_FRAME_KIND_END:
        s.gotEnd = true;
        s.socket?.end();
        this.#maybeDone(s);
        return;
      case Kind.STREAM_FRAME_KIND_RESET: {
        let reason = { code: 'ERR_CLOSED', reason: 'reset by the peer' };
        try {
          const r = shoal.v1.StreamReset.decode(body);
          reason = { code: r.code || reason.code, reason: r.reason || reason.reason };
        } catch {
          // the reason is a courtesy; the reset stands without it
        }
        if (s.pending) return this.#failOpen(s, reason.code, reason.reason, false);
        this.#close(s);
        s.socket?.destroy();
        return;
      }
      default:
        return this.#reset(s, 'ERR_PROTOCOL', `unknown stream frame kind ${kind}`);
    }
  }

  /** The link to `peer` went down: every stream with it ends (their clients see the connection close). */
  linkDown(peer: string): void {
    const streams = this.#peers.get(peer);
    if (!streams) return;
    for (const s of [...streams.values()]) {
      if (s.pending) this.#failOpen(s, 'ERR_NO_LINK', `the link to node ${peer.slice(0, 16)} went down`, false);
      else {
        this.#close(s);
        s.socket?.destroy();
      }
    }
  }

  /**
   * Gossip suspects `peer` (or declared it dead): opens still waiting for it fail at once, so their connections try
   * another endpoint now rather than at the open timeout. Open streams are left alone: a suspicion may be false.
   */
  peerUnreachable(peer: string): void {
    for (const s of [...(this.#peers.get(peer)?.values() ?? [])]) {
      if (s.pending) this.#failOpen(s, 'ERR_PEER_UNREACHABLE', `node ${peer.slice(0, 16)} is suspected by gossip`);
    }
  }

  /** Ends every stream (the agent stops). */
  stop(): void {
    for (const peer of [...this.#peers.keys()]) {
      for (const s of [...(this.#peers.get(peer)?.values() ?? [])]) this.#reset(s, 'ERR_CLOSED', 'the agent is stopping');
    }
  }

  // --- internals ---------------------------------------------------------------------------------------------------

  #streamsOf(peer: string): Map<string, Stream> {
    let m = this.#peers.get(peer);
    if (!m) this.#peers.set(peer, (m = new Map()));
    return m;
  }

  #newStream(peer: string, id: number, mine: boolean): Stream {
    return {
      peer, id, mine, socket: undefined, sendWindow: LIMITS.meshStreamWindowBytes, recvWindow: LIMITS.meshStreamWindowBytes,
      toGrant: 0, sentEnd: false, gotEnd: false, done: false,
    };
  }

  #accept(peer: string, id: number, body: Uint8Array): void {
    const streams = this.#streamsOf(peer);
    const s = this.#newStream(peer, id, false);
    if (streams.has(key(s))) {
      this.#sendRaw(peer, Kind.STREAM_FRAME_KIND_RESET, id | ACCEPTOR_BIT, resetBody('ERR_PROTOCOL', `stream ${id} is already open`));
      return;
    }
    if (streams.size >= LIMITS.meshMaxStreamsPerPeer) {
      this.#sendRaw(peer, Kind.STREAM_FRAME_KIND_RESET, id | ACCEPTOR_BIT, resetBody('ERR_LIMIT_EXCEEDED', `${streams.size} streams are open with this node (limit meshMaxStreamsPerPeer)`));
      return;
    }
    let open: shoal.v1.StreamOpen;
    try {
      open = shoal.v1.StreamOpen.decode(body);
    } catch (err) {
      this.#sendRaw(peer, Kind.STREAM_FRAME_KIND_RESET, id | ACCEPTOR_BIT, resetBody('ERR_PROTOCOL', `OPEN does not decode: ${describeError(err)}`));
      return;
    }
    const to = this.#o.resolve({ allocId: open.allocId, targetPort: open.targetPort, service: open.service });
    if ('code' in to) {
      this.#sendRaw(peer, Kind.STREAM_FRAME_KIND_RESET, id | ACCEPTOR_BIT, resetBody(to.code, to.reason));
      return;
    }
    streams.set(key(s), s);
    this.#stats.open++;
    const socket = net.connect({ host: to.host, port: to.port, allowHalfOpen: true });
    socket.pause();
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${LIMITS.meshConnectTimeoutMs} ms`)), LIMITS.meshConnectTimeoutMs);
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      if (s.done) {
        socket.destroy();
        return;
      }
      this.#stats.accepted++;
      this.#send(s, Kind.STREAM_FRAME_KIND_ACCEPT, new Uint8Array(0));
      this.#attach(s, socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      if (!connected) this.#reset(s, 'ERR_CONNECT', `task ${open.allocId.slice(0, 8)} (${open.service}) did not accept on ${to.host}:${to.port}: ${describeError(err)}`);
    });
  }

  /** Joins an open stream and a socket: bytes both ways, within the windows, half-closes passed on. */
  #attach(s: Stream, socket: net.Socket): void {
    s.socket = socket;
    if (socket.destroyed) {
      this.#reset(s, 'ERR_CLOSED', 'the connection closed while the stream opened');
      return;
    }
    socket.on('data', (chunk: Buffer) => {
      for (let off = 0; off < chunk.length; off += LIMITS.meshChunkBytes) {
        const part = chunk.subarray(off, Math.min(chunk.length, off + LIMITS.meshChunkBytes));
        s.sendWindow -= part.length;
        this.#stats.bytesSent += part.length;
        if (!this.#send(s, Kind.STREAM_FRAME_KIND_DATA, part)) return;
      }
      if (s.sendWindow <= 0) socket.pause();
    });
    socket.on('end', () => {
      if (s.done || s.sentEnd) return;
      s.sentEnd = true;
      this.#send(s, Kind.STREAM_FRAME_KIND_END, new Uint8Array(0));
      this.#maybeDone(s);
    });
    socket.on('error', (err) => {
      if (!s.done) this.#reset(s, 'ERR_CLOSED', `the connection failed: ${describeError(err)}`);
    });
    socket.on('close', () => {
      if (!s.done) this.#reset(s, 'ERR_CLOSED', 'the connection closed');
    });
    socket.resume();
  }

  #onData(s: Stream, data: Uint8Array): void {
    if (!s.socket || s.gotEnd) return this.#reset(s, 'ERR_PROTOCOL', 'DATA on a stream that is not open for data');
    if (data.length > s.recvWindow) return this.#reset(s, 'ERR_PROTOCOL', `${data.length} bytes exceed the ${s.recvWindow} the window allows`);
    s.recvWindow -= data.length;
    this.#stats.bytesReceived += data.length;
    const n = data.length;
    // The frame's buffer belongs to the link's decoder: copy what the socket may keep past this turn.
    s.socket.write(Buffer.from(data), () => {
      if (s.done) return;
      s.toGrant += n;
      // Grant in batches (a quarter window at least), or at once when the peer is nearly out of window.
      if (s.toGrant >= LIMITS.meshStreamWindowBytes / 4 || s.recvWindow + s.toGrant >= LIMITS.meshStreamWindowBytes) this.#grant(s);
      else if (s.recvWindow < LIMITS.meshChunkBytes) this.#grant(s);
    });
  }

  #grant(s: Stream): void {
    const n = s.toGrant;
    if (n === 0) return;
    s.toGrant = 0;
    s.recvWindow += n;
    const body = new Uint8Array(4);
    new DataView(body.buffer).setUint32(0, n);
    this.#send(s, Kind.STREAM_FRAME_KIND_CREDIT, body);
  }

  #maybeDone(s: Stream): void {
    if (s.sentEnd && s.gotEnd) this.#close(s);
  }

  #failOpen(s: Stream, code: string, reason: string, tell = true): void {
    const pending = s.pending;
    if (!pending) return;
    s.pending = undefined;
    if (tell) this.#send(s, Kind.STREAM_FRAME_KIND_RESET, resetBody(code, reason));
    this.#close(s);
    pending.reject(new StreamOpenError(code, reason));
  }

  /** Ends a stream abnormally: tells the peer, destroys the socket. */
  #reset(s: Stream, code: string, reason: string): void {
    if (s.done) return;
    if (s.pending) return this.#failOpen(s, code, reason);
    this.#log.debug({ peer: s.peer.slice(0, 16), stream: s.id, code, reason }, 'stream reset');
    this.#stats.resets++;
    this.#send(s, Kind.STREAM_FRAME_KIND_RESET, resetBody(code, reason));
    this.#close(s);
    s.socket?.destroy();
  }

  #close(s: Stream): void {
    if (s.done) return;
    s.done = true;
    this.#stats.open--;
    const streams = this.#peers.get(s.peer);
    streams?.delete(key(s));
    if (streams?.size === 0) this.#peers.delete(s.peer);
  }

  /** Sends a frame about `s`; on failure (no link, queue full) the stream is closed and false returned. */
  #send(s: Stream, kind: number, body: Uint8Array): boolean {
    const ok = this.#sendRaw(s.peer, kind, s.mine ? s.id : s.id | ACCEPTOR_BIT, body);
    if (!ok && !s.done && kind !== Kind.STREAM_FRAME_KIND_RESET) {
      if (s.pending) {
        const pending = s.pending;
        s.pending = undefined;
        this.#close(s);
        pending.reject(new StreamOpenError('ERR_NO_LINK', `cannot send to node ${s.peer.slice(0, 16)}`));
      } else {
        this.#close(s);
        s.socket?.destroy();
      }
    }
    return ok;
  }

  #sendRaw(peer: string, kind: number, rawId: number, body: Uint8Array): boolean {
    const payload = new Uint8Array(HEADER_BYTES + body.length);
    payload[0] = kind;
    new DataView(payload.buffer).setUint32(1, rawId >>> 0);
    payload.set(body, HEADER_BYTES);
    // Data, and the END that must not overtake it, wait behind gossip and Raft; the small frames that steer (open,
    // accept, credit, reset) go ahead, so a busy link still opens streams and grants windows promptly.
    const bulk = kind === Kind.STREAM_FRAME_KIND_DATA || kind === Kind.STREAM_FRAME_KIND_END;
    const r = this.#o.transport.send(peer, { type: MessageType.MESSAGE_TYPE_STREAM, payload, bulk });
    if (!r.ok) this.#log.debug({ peer: peer.slice(0, 16), err: describeError(r.error) }, 'a stream frame could not be sent');
    return r.ok;
  }
}

function key(s: Stream): string {
  return `${s.mine ? 'm' : 't'}${s.id}`;
}

function resetBody(code: string, reason: string): Uint8Array {
  return shoal.v1.StreamReset.encode({ code, reason: reason.slice(0, 512) }).finish();
}
