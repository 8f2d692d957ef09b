/**
 * RPC between agents over the authenticated peer links (MESSAGE_TYPE_APP envelopes, proto/shoal/v1/peer.proto).
 * It carries calls that only the Raft leader can serve from the agent that received them to the leader, so the API
 * can stay on loopback and no second port or credential is needed between agents: the link is already
 * authenticated by the cluster key.
 *
 * Every call has a deadline; a call whose link goes down fails at once with the reason. Pending calls are bounded.
 */
import { ShoalError, describeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { systemClock } from '../platform/system-clock.js';
import type { Logger } from '../log/logger.js';
import { shoal } from '../gen/proto.js';
import { MessageType } from '../wire/frame.js';
import type { Transport } from '../transport/index.js';
import { RemoteError, methodPath, type MethodDescriptor } from '../rpc/index.js';

export type PeerHandler = (method: string, body: Uint8Array, timeoutMs: number, from: string) => Promise<Uint8Array>;

interface Pending {
  nodeId: string;
  resolve: (body: Uint8Array) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** A request that never left (no link to send it on): unlike one lost on the way, it may be sent again. */
class NotSentError extends ShoalError {
  constructor(message: string) {
    super('ERR_PEER_UNREACHABLE', message);
  }
}

export class PeerRpc {
  readonly #transport: Transport;
  readonly #log: Logger;
  readonly #handle: PeerHandler;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #unsubscribe: (() => void)[] = [];

  /** Methods whose answers are bulk data (snapshot chunks): sent only when nothing else waits on the link. */
  readonly #bulkMethods: ReadonlySet<string>;

  constructor(transport: Transport, log: Logger, handle: PeerHandler, bulkMethods: readonly MethodDescriptor<unknown, unknown>[] = []) {
    this.#transport = transport;
    this.#log = log.child({ component: 'peer-rpc' });
    this.#handle = handle;
    this.#bulkMethods = new Set(bulkMethods.map((m) => methodPath(m)));
  }

  start(): void {
    this.#unsubscribe.push(
      this.#transport.onMessage(({ from, envelope }) => {
        if (envelope.type !== MessageType.MESSAGE_TYPE_APP) return;
        let msg: shoal.v1.PeerRpc;
        try {
          msg = shoal.v1.PeerRpc.decode(envelope.payload);
        } catch (err) {
          this.#log.warn({ peer: from.slice(0, 16), err: describeError(err) }, 'dropped an undecodable peer RPC message');
          return;
        }
        if (msg.request) this.#serve(from, msg.request);
        else if (msg.response) this.#answer(from, msg.response);
      }),
      this.#transport.onLinkDown((nodeId, reason) => {
        for (const [id, p] of this.#pending) {
          if (p.nodeId !== nodeId) continue;
          clearTimeout(p.timer);
          this.#pending.delete(id);
          p.reject(new ShoalError('ERR_PEER_UNREACHABLE', `the link to ${nodeId.slice(0, 16)} went down (${reason}) before it answered`));
        }
      }),
    );
  }

  stop(): void {
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new ShoalError('ERR_CANCELLED', 'the agent is stopping'));
    }
    this.#pending.clear();
  }

  /** Calls `method` on agent `nodeId`; resolves with its response or throws its error (RemoteError with its code). */
  async call<Req, Res>(nodeId: string, method: MethodDescriptor<Req, Res>, request: Req, timeoutMs: number, signal?: AbortSignal): Promise<Res> {
    if (signal?.aborted) throw new ShoalError('ERR_CANCELLED', `${method.service}/${method.method} to ${nodeId.slice(0, 16)} was cancelled`);
    if (this.#pending.size >= LIMITS.peerRpcMaxPending) {
      throw new ShoalError('ERR_LIMIT_EXCEEDED', `${LIMITS.peerRpcMaxPending} forwarded calls are already waiting (limit peerRpcMaxPending)`);
    }
    // No link to the peer yet (it just joined, or its link is being redialled): dial it and wait a little for it,
    // rather than fail a call that would go through a moment later.
    if (!this.#transport.links().some((l) => l.nodeId === nodeId)) {
      const started = systemClock.nowMs();
      await this.#awaitLink(nodeId, Math.min(LIMITS.peerRpcLinkWaitMs, timeoutMs / 2), signal);
      if (signal?.aborted) throw new ShoalError('ERR_CANCELLED', `${method.service}/${method.method} to ${nodeId.slice(0, 16)} was cancelled`);
      timeoutMs = Math.max(1, timeoutMs - (systemClock.nowMs() - started));
    }
    const path = `/rpc/${method.service}/${method.method}`;
    const body = method.requestType.encode(request).finish();
    const deadline = systemClock.nowMs() + timeoutMs;
    let bytes: Uint8Array;
    try {
      bytes = await this.#attempt(nodeId, method, path, body, timeoutMs, signal);
    } catch (err) {
      // The link went away between the check and the send (a duplicate connection replaced, say): the request never
      // left, so it is safe to wait for the link and send it once more.
      if (!(err instanceof NotSentError) || signal?.aborted) throw err;
      const left = deadline - systemClock.nowMs();
      if (left < 2) throw err;
      if (!this.#transport.links().some((l) => l.nodeId === nodeId)) await this.#awaitLink(nodeId, Math.min(LIMITS.peerRpcLinkWaitMs, left / 2), signal);
      bytes = await this.#attempt(nodeId, method, path, body, Math.max(1, deadline - systemClock.nowMs()), signal);
    }
    return method.responseType.decode(bytes);
  }

  /** Sends one request and waits for its answer. A request that could not be sent at all fails with NotSentError. */
  #attempt<Req, Res>(nodeId: string, method: MethodDescriptor<Req, Res>, path: string, body: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    const id = this.#nextId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new ShoalError('ERR_DEADLINE_EXCEEDED', `${method.service}/${method.method} forwarded to agent ${nodeId.slice(0, 16)} got no answer within ${timeoutMs} ms (deadline exceeded: that agent is down, paused or overloaded)`));
      }, timeoutMs);
      this.#pending.set(id, { nodeId, resolve, reject, timer });
      // The caller may give up (e.g. the peer is dead in gossip before the link notices): forget the call at once.
      signal?.addEventListener('abort', () => {
        if (!this.#pending.delete(id)) return;
        clearTimeout(timer);
        reject(new ShoalError('ERR_CANCELLED', `${method.service}/${method.method} to ${nodeId.slice(0, 16)} was cancelled`));
      }, { once: true });
      const sent = this.#transport.send(nodeId, { type: MessageType.MESSAGE_TYPE_APP, payload: shoal.v1.PeerRpc.encode({ request: { id, method: path, body, timeoutMs: Math.max(1, Math.floor(timeoutMs)) } }).finish() });
      if (!sent.ok) {
        clearTimeout(timer);
        this.#pending.delete(id);
        this.#transport.connect(nodeId);
        reject(new NotSentError(`cannot forward ${method.service}/${method.method} to ${nodeId.slice(0, 16)}: ${sent.error.message}`));
      }
    });
  }

  /** Dials `nodeId` and resolves once its link is up, or after `waitMs` (or an abort) either way. */
  #awaitLink(nodeId: string, waitMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', finish);
        resolve();
      };
      const timer = setTimeout(finish, Math.max(0, waitMs));
      const unsubscribe = this.#transport.onLinkUp((link) => {
        if (link.nodeId === nodeId) finish();
      });
      signal?.addEventListener('abort', finish, { once: true });
      this.#transport.connect(nodeId);
    });
  }

  #serve(from: string, req: shoal.v1.IPeerRpcRequest): void {
    const id = Number(req.id ?? 0);
    const timeoutMs = Math.min(Math.max(1, req.timeoutMs ?? 1), LIMITS.maxRpcTimeoutMs);
    const bulk = this.#bulkMethods.has(req.method ?? '');
    this.#handle(req.method ?? '', req.body ?? new Uint8Array(), timeoutMs, from).then(
      (body) => this.#reply(from, { id, body }, bulk),
      (err: unknown) => this.#reply(from, {
        id,
        errorCode: err instanceof ShoalError ? err.code : 'ERR_INTERNAL',
        errorMessage: err instanceof Error ? err.message : String(err),
      }),
    );
  }

  #reply(to: string, response: shoal.v1.IPeerRpcResponse, bulk = false): void {
    const sent = this.#transport.send(to, { type: MessageType.MESSAGE_TYPE_APP, payload: shoal.v1.PeerRpc.encode({ response }).finish(), ...(bulk ? { bulk: true } : {}) });
    if (!sent.ok) this.#log.warn({ peer: to.slice(0, 16), err: sent.error.message }, 'could not send a peer RPC answer');
  }

  #answer(from: string, res: shoal.v1.IPeerRpcResponse): void {
    const id = Number(res.id ?? 0);
    const p = this.#pending.get(id);
    // An answer from another node than the one asked, or after the deadline, is dropped.
    if (!p || p.nodeId !== from) return;
    clearTimeout(p.timer);
    this.#pending.delete(id);
    if (res.errorCode) p.reject(new RemoteError(res.errorCode, res.errorMessage ?? '', 0));
    else p.resolve(res.body ?? new Uint8Array());
  }
}
