/**
 * The client half of how state reaches an agent that is not a server: it keeps this node's slice of the cluster
 * state (src/state/slice.ts) current through `Slices/Watch` on one server at a time, and nothing else of the state.
 *
 *   choose a server ─► watch(since = slice.index) ─► merge the delta ─► watch again ...
 *        ▲                      │ the server fails, is dead in gossip, stops being a server, or is behind
 *        └──── backoff ◄────────┘ (the slice is kept: tasks keep running; it is not "fresh" until a server answers)
 *
 * The server is chosen by rendezvous hashing of (client, server) among the alive servers gossip knows, the leader
 * last, so clients spread evenly over the servers, each sticks to its own while the set of servers is the same, and
 * a server that joins takes its share at the clients' next watch. Resuming on
 * another server continues from the index the client holds: nothing is sent twice and no task restarts.
 */
import { createHash } from 'node:crypto';
import { ShoalError, describeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { Logger } from '../log/logger.js';
import { shoal } from '../gen/proto.js';
import { systemClock } from '../platform/system-clock.js';
import { NodeSlice, type Allocation, type CatalogService, type FileObjectRecord, type JobRecord } from '../state/index.js';
import { SlicesWatch, type MethodDescriptor } from '../rpc/index.js';

/** Answers in a row from a server that is not caught up with a leader before the client tries another server. */
const BEHIND_ANSWERS_BEFORE_SWITCH = 3;
/** How long a server that failed a watch (or kept answering without a leader) is ranked last. */
const SERVER_AVOID_MS = 30_000;

export interface ServerInfo {
  id: string;
  leader: boolean;
}

export interface SliceClientOptions {
  nodeId: string;
  logger: Logger;
  random: Random;
  /** The alive servers (voters and read replicas) as gossip shows them, this agent excluded. */
  servers: () => ServerInfo[];
  call: <Req, Res>(nodeId: string, method: MethodDescriptor<Req, Res>, request: Req, timeoutMs: number, signal?: AbortSignal) => Promise<Res>;
  /** Called after the slice changed. */
  onChange: () => void;
}

export class SliceClient {
  readonly slice: NodeSlice;
  readonly #o: SliceClientOptions;
  readonly #log: Logger;
  #server: string | undefined;
  #fresh = false;
  #leader = '';
  #stopped = true;
  /** Bumped by every start and stop, so a loop left over from before a quick stop-start ends instead of running twice. */
  #generation = 0;
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #sleepTimer: NodeJS.Timeout | undefined;
  #wakeSleep: (() => void) | undefined;
  /** Servers that failed recently, avoided while another is available. */
  readonly #avoid = new Map<string, number>();
  #lastAnswered: string | undefined;

  constructor(options: SliceClientOptions) {
    this.#o = options;
    this.slice = new NodeSlice(options.nodeId);
    this.#log = options.logger.child({ component: 'slice-client' });
  }

  /** True while the slice is complete and the last answer came from a server that had caught up with its leader. */
  get fresh(): boolean {
    return this.#fresh && this.slice.complete;
  }

  /** The server watched now (undefined while none answers). */
  get server(): string | undefined {
    return this.#server;
  }

  /** The leader the last answer named ('' when unknown). */
  get leader(): string {
    return this.#leader;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    // Until a server answers, what the slice holds may be old (this agent was a server, or just restarted).
    this.#fresh = false;
    const generation = ++this.#generation;
    this.#loop = (this.#loop ?? Promise.resolve()).then(() => this.#run(generation));
  }

  /** Stops watching; the slice is kept as it is. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#generation++;
    this.#fresh = false;
    this.#abort?.abort();
    if (this.#sleepTimer) clearTimeout(this.#sleepTimer);
    this.#wakeSleep?.();
    const loop = this.#loop;
    await loop;
    if (this.#loop === loop) this.#loop = undefined;
  }

  /** The server to forward a call to: the watched one, else the best alive one (undefined when none is known). */
  pickServer(): string | undefined {
    if (this.#server && this.#o.servers().some((s) => s.id === this.#server)) return this.#server;
    return this.#choose();
  }

  async #run(generation: number): Promise<void> {
    let failures = 0;
    let behind = 0;
    while (!this.#stopped && generation === this.#generation) {
      const server = this.#choose();
      if (!server) {
        this.#setServer(undefined);
        failures++;
        await this.#sleep(this.#backoff(failures));
        continue;
      }
      this.#setServer(server);
      try {
        const answer = await this.#watchOnce(server);
        failures = 0;
        if (answer === 'behind') {
          // A server without a leader, or behind it: ask again shortly, and after a few times try another one.
          behind++;
          if (behind >= BEHIND_ANSWERS_BEFORE_SWITCH) {
            behind = 0;
            this.#avoidServer(server);
            this.#setServer(undefined);
          }
          await this.#sleep(LIMITS.sliceRetryBaseMs);
        } else {
          behind = 0;
        }
      } catch (err) {
        if (this.#stopped || generation !== this.#generation) return;
        failures++;
        this.#fresh = false;
        this.#avoidServer(server);
        this.#log.info({ server: server.slice(0, 16), err: describeError(err) }, 'slice watch failed; trying another server');
        this.#setServer(undefined);
        await this.#sleep(this.#backoff(failures));
      }
    }
  }

  async #watchOnce(server: string): Promise<'ok' | 'behind'> {
    const abort = new AbortController();
    this.#abort = abort;
    // Gossip may know before the link does that the server died or stopped being one: give up on it then. This is
    // the one timer of an idle client, so it is slow (LIMITS.sliceServerCheckMs): gossip takes seconds to declare a
    // server dead anyway, a server that closes its link fails the call at once, and one that is demoted answers.
    const check = setInterval(() => {
      if (!this.#o.servers().some((s) => s.id === server)) abort.abort();
    }, LIMITS.sliceServerCheckMs);
    let res: shoal.v1.SliceWatchResponse;
    try {
      res = await this.#o.call(server, SlicesWatch, shoal.v1.SliceWatchRequest.fromObject({
        // Not fresh (first watch, a new server, or after a failure): ask for an answer at once, so the node runner
        // may act again as soon as a server confirms the slice, not when the slice next changes.
        nodeId: this.#o.nodeId, sinceIndex: this.slice.index, waitMs: this.fresh && server === this.#lastAnswered ? LIMITS.sliceWatchMaxWaitMs : 0,
      }), LIMITS.sliceWatchMaxWaitMs + 5_000, abort.signal);
    } finally {
      clearInterval(check);
      this.#abort = undefined;
    }
    let allocations: Allocation[];
    let jobs: JobRecord[];
    let catalog: CatalogService[] | undefined;
    let objects: FileObjectRecord[];
    try {
      allocations = JSON.parse(res.allocationsJson || '[]') as Allocation[];
      jobs = JSON.parse(res.jobsJson || '[]') as JobRecord[];
      if (res.catalogChanged) catalog = JSON.parse(res.catalogJson || '[]') as CatalogService[];
      objects = JSON.parse(res.objectsJson || '[]') as FileObjectRecord[];
      if (!Array.isArray(allocations) || !Array.isArray(jobs) || !Array.isArray(objects) || (catalog !== undefined && !Array.isArray(catalog))) throw new Error('not arrays');
    } catch (err) {
      throw new ShoalError('ERR_SLICE_INVALID', `server ${server.slice(0, 16)} sent a slice that does not decode: ${describeError(err)}`);
    }
    const before = this.slice.index;
    const wasFresh = this.fresh;
    const merged = this.slice.merge({
      index: Number(res.index), allocIds: res.allocIds, allocations, jobs, complete: res.complete,
      ...(catalog ? { catalog, catalogKeys: res.catalogKeys } : {}), ...(objects.length > 0 ? { objects } : {}),
    });
    this.#lastAnswered = server;
    this.#leader = res.leaderId;
    this.#fresh = res.fresh;
    // Becoming fresh is a change too: the node runner acts only on a fresh slice, and waits for a kick to do so.
    if ((merged && (res.changed || Number(res.index) !== before)) || (!wasFresh && this.fresh)) this.#o.onChange();
    if (!res.fresh) return 'behind';
    return 'ok';
  }

  #setServer(server: string | undefined): void {
    if (server === this.#server) return;
    if (server) this.#log.info({ server: server.slice(0, 16), index: this.slice.index }, 'watching this node\'s slice on a server');
    this.#server = server;
  }

  /** Rendezvous hashing over the alive servers, the leader and recently failed ones last. */
  #choose(): string | undefined {
    const all = this.#o.servers();
    if (all.length === 0) return undefined;
    const now = systemClock.nowMs();
    for (const [id, until] of this.#avoid) if (until <= now) this.#avoid.delete(id);
    // No preference for the current server: rendezvous hashing keeps every client on its server while the set of
    // servers is the same, and moves only about 1/n of them to a server that joins (the next watch goes there).
    const score = (s: ServerInfo): [number, number, string] => [
      (this.#avoid.get(s.id) ?? 0) > now ? 1 : 0,
      s.leader && all.length > 1 ? 1 : 0,
      createHash('sha256').update(`${this.#o.nodeId}/${s.id}`).digest('hex'),
    ];
    const ranked = all.map((s) => ({ s, k: score(s) })).sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || (a.k[2] < b.k[2] ? -1 : 1));
    return ranked[0]!.s.id;
  }

  /** A server that failed is ranked last for a while, so the client does not flap back to it while it is sick. */
  #avoidServer(server: string): void {
    this.#avoid.set(server, systemClock.nowMs() + SERVER_AVOID_MS);
  }

  #backoff(failures: number): number {
    const base = Math.min(LIMITS.sliceRetryMaxMs, LIMITS.sliceRetryBaseMs * 2 ** Math.min(failures - 1, 10));
    return Math.floor(base / 2 + this.#o.random.int(Math.floor(base / 2) + 1));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeSleep = resolve;
      this.#sleepTimer = setTimeout(resolve, ms);
    });
  }
}
