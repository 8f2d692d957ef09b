/**
 * The server half of how state reaches clients: `shoal.v1.Slices/Watch`, served by every server (Raft voter or
 * read replica) from its applied copy of the cluster state.
 *
 *   watch(node, since) ─► refuse unless the caller is that node's own agent (its authenticated peer link)
 *                     ─► wait (bounded) until this server has applied `since`, else ERR_SERVER_BEHIND
 *                     ─► the node's slice changed after `since`? answer the delta now
 *                     ─► else park until an apply touches the node (notify) or the wait ends (answer "no change")
 *
 * Waiting watches are kept per node, so an apply wakes only the watches of the nodes it touched: a server's cost
 * follows the changes, not the number of clients. Both the number of watches and their wait are bounded.
 */
import { InvalidArgumentError, ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { Logger } from '../log/logger.js';
import { systemClock } from '../platform/system-clock.js';
import { shoal } from '../gen/proto.js';
import { sliceChangedSince, sliceDelta, type ClusterState } from '../state/index.js';
import type { CallContext } from '../rpc/index.js';
import type { Status } from '../consensus/index.js';

/** How long a watch may wait for this server to apply the index the client already has before it is refused. */
const BEHIND_WAIT_MS = 2_000;
const BEHIND_POLL_MS = 20;

export interface SliceServerOptions {
  logger: Logger;
  random: Random;
  /** The applied cluster state while this agent is a server, else undefined. */
  state: () => ClusterState | undefined;
  /** The Raft status while this agent is a server. */
  raftStatus: () => Status | undefined;
}

interface Waiter {
  wake: () => void;
}

export class SliceServer {
  readonly #o: SliceServerOptions;
  readonly #waiters = new Map<string, Set<Waiter>>();
  #count = 0;
  #wakeScheduled = false;
  #catalogIndexSeen = 0;

  constructor(options: SliceServerOptions) {
    this.#o = options;
  }

  /** Watches held open now (for tests and metrics). */
  get watching(): number {
    return this.#count;
  }

  /** Called after entries were applied: wakes the watches of the nodes they touched (coalesced per event-loop turn). */
  applied(): void {
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      const state = this.#o.state();
      if (!state) return;
      const catalogChanged = state.catalogIndex > this.#catalogIndexSeen;
      this.#catalogIndexSeen = state.catalogIndex;
      // Every client holds the whole catalog: a change to it answers every watch.
      if (catalogChanged) this.wakeAll();
      for (const node of state.drainTouchedNodes()) this.#wake(node);
    });
  }

  /** The state was replaced (a snapshot restored, or this agent stopped being a server): every watch answers. */
  wakeAll(): void {
    for (const node of [...this.#waiters.keys()]) this.#wake(node);
  }

  #wake(node: string): void {
    const set = this.#waiters.get(node);
    if (!set) return;
    this.#waiters.delete(node);
    for (const w of set) w.wake();
  }

  async watch(req: shoal.v1.SliceWatchRequest, ctx: CallContext): Promise<shoal.v1.SliceWatchResponse> {
    if (!req.nodeId) throw new InvalidArgumentError('node_id is empty');
    if (!ctx.forwardedFrom || ctx.forwardedFrom !== req.nodeId) {
      throw new ShoalError('ERR_PERMISSION_DENIED', `the slice of node ${req.nodeId.slice(0, 16)} is served only to that node's own agent, over its peer link${ctx.forwardedFrom ? ` (asked by ${ctx.forwardedFrom.slice(0, 16)})` : ''}`);
    }
    const since = Number(req.sinceIndex ?? 0);
    // 0 asks for an answer at once: a client (re)connecting learns at once that it is up to date.
    const maxWaitMs = Math.max(0, Math.min(req.waitMs ?? 0, LIMITS.sliceWatchMaxWaitMs, ctx.timeoutMs - 1_000));
    const waitMs = maxWaitMs === 0 ? 0 : Math.max(1, maxWaitMs - this.#o.random.int(Math.min(LIMITS.sliceWatchJitterMs, maxWaitMs - 1) + 1));
    const start = systemClock.nowMs();
    // A client never goes backwards: a server that has not applied what the client holds must catch up first.
    while ((this.#server().index) < since) {
      if (systemClock.nowMs() - start >= Math.min(BEHIND_WAIT_MS, Math.max(maxWaitMs, BEHIND_POLL_MS)) || ctx.signal.aborted) {
        throw new ShoalError('ERR_SERVER_BEHIND', `this server has applied the cluster state up to index ${this.#server().index}, behind the ${since} the client holds; ask another server`);
      }
      await new Promise((resolve) => setTimeout(resolve, BEHIND_POLL_MS));
    }
    let state = this.#server();
    if (!sliceChangedSince(state, req.nodeId, since) && waitMs > 0) {
      if (this.#count >= LIMITS.sliceMaxWatchesPerServer) {
        throw new ShoalError('ERR_LIMIT_EXCEEDED', `this server holds ${LIMITS.sliceMaxWatchesPerServer} slice watches already (limit sliceMaxWatchesPerServer); try another server`);
      }
      await this.#park(req.nodeId, waitMs, ctx.signal);
      state = this.#server();
    }
    return this.#answer(state, req.nodeId, since);
  }

  #park(node: string, waitMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(node);
      if (!set) this.#waiters.set(node, (set = new Set()));
      const waiter: Waiter = { wake: () => done() };
      const timer = setTimeout(() => done(), waitMs);
      const onAbort = (): void => done();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#count++;
      set.add(waiter);
      let finished = false;
      const done = (): void => {
        if (finished) return;
        finished = true;
        this.#count--;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        const s = this.#waiters.get(node);
        s?.delete(waiter);
        if (s?.size === 0) this.#waiters.delete(node);
        resolve();
      };
    });
  }

  #server(): ClusterState {
    const state = this.#o.state();
    if (!state) throw new ShoalError('ERR_NOT_SERVER', 'this agent is not a server (it holds no copy of the cluster state); ask a voter or a read replica');
    return state;
  }

  #answer(state: ClusterState, node: string, since: number): shoal.v1.SliceWatchResponse {
    const st = this.#o.raftStatus();
    const changed = sliceChangedSince(state, node, since);
    let maxAllocs: number = LIMITS.sliceMaxAllocsPerAnswer;
    for (;;) {
      const d = sliceDelta(state, node, since, maxAllocs);
      const allocationsJson = JSON.stringify(d.allocations);
      const jobsJson = JSON.stringify(d.jobs);
      const catalogJson = d.catalog ? JSON.stringify(d.catalog) : '';
      const objectsJson = d.objects ? JSON.stringify(d.objects) : '';
      // Keep the answer well inside one envelope: halve the allocations carried until it fits.
      if (allocationsJson.length + jobsJson.length + catalogJson.length + objectsJson.length + 80 * d.allocIds.length > LIMITS.maxEnvelopePayloadBytes / 2 && maxAllocs > 1) {
        maxAllocs = Math.max(1, Math.floor(maxAllocs / 2));
        continue;
      }
      return shoal.v1.SliceWatchResponse.fromObject({
        index: d.index, changed, allocIds: d.allocIds, allocationsJson, jobsJson, complete: d.complete,
        fresh: st !== undefined && st.leader !== undefined && st.applied >= st.commit,
        leaderId: st?.leader ?? '', term: st?.term ?? 0, servers: st ? [...st.voters, ...st.learners] : [],
        catalogJson, catalogKeys: d.catalogKeys ?? [], catalogChanged: d.catalog !== undefined, objectsJson,
      });
    }
  }
}
