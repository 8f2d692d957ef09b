/**
 * `shoal.v1.State` and `shoal.v1.Partitions` (issue 12): reliable collections reached through any agent.
 *
 *   API call ─► this agent ─(client)─► a server, which routes it          (a client holds no placement)
 *                          ─(server)─► key → partition (the service's scheme) → the partition's group and members
 *                                      → the primary (last known leader, else each member in turn)
 *                                      ─► peer RPC with `forwarded` {group, partition, session} (or locally)
 *   forwarded call ─► the replica here: a write is proposed (primary only: else ERR_RAFT_NOT_LEADER naming the
 *                     leader, and the router retries there with the same session, so the retry applies once);
 *                     a linearizable read waits for ReadIndex, a local read answers at once with its index
 *
 * Sessions: the routing agent numbers its writes per partition (one session per agent run and partition, many
 * writes in flight), and tells the replica which answers it already has (`acked`), so a retry at a new primary is
 * answered from the partition's session table instead of applying twice (src/partitions/machine.ts).
 */
import { describeError, InvalidArgumentError, NotFoundError, ShoalError } from '../lib/errors.js';
import { resolveIdPrefix } from '../lib/ids.js';
import { NotLeaderError } from '../consensus/index.js';
import { LIMITS } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { Logger } from '../log/logger.js';
import { shoal } from '../gen/proto.js';
import {
  PartitionsList, PartitionsPlacement, PartitionsReplica, PartitionsSnapshotChunk, PartitionsTransfer, StateAck, StateDelete, StateDequeue, StateEnqueue, StateGet, StatePut, StateScan, StateTxn,
  type CallContext, type MethodDescriptor, type RpcServer,
} from '../rpc/index.js';
import type { ServiceSpec, StateSpec } from '../jobspec/types.js';
import type { Allocation, JobRecord } from '../state/index.js';
import { isTerminal } from '../state/index.js';
import { partitionFor, partitionsOf, parseInt64, type PartitionKey, type PartitionScheme } from '../partitions/scheme.js';
import { validateCommand, type CommandResult, type Compare, type Operation, type OpResult, type PartitionCommand } from '../partitions/commands.js';
import { toError, type Failure } from '../partitions/errors.js';
import type { SessionTag } from '../partitions/machine.js';
import type { ReadConsistency } from './partition-replica.js';
import { partitionGroup, type PartitionHost, type PartitionPlacement } from './partition-host.js';

/** What a server's copy of the cluster state offers the router. */
export interface PlacementView {
  readonly index: number;
  job(name: string): JobRecord | undefined;
  jobs(): JobRecord[];
  allocationsOfJob(jobName: string): Allocation[];
  node(id: string): { name: string } | undefined;
}

export interface StateRpcOptions {
  nodeId: string;
  logger: Logger;
  random: Random;
  host: PartitionHost;
  /** The whole state on a server; undefined on a client (it forwards to a server). */
  state: () => PlacementView | undefined;
  pickServer: () => string | undefined;
  /** Gossip's view: a member it suspects or found dead is tried last (a call to it would wait out its link). */
  memberAlive?: (nodeId: string) => boolean;
  callPeer: <Req, Res>(nodeId: string, method: MethodDescriptor<Req, Res>, request: Req, timeoutMs: number) => Promise<Res>;
}

export function schemeOf(state: StateSpec): PartitionScheme {
  if (state.scheme.kind === 'named') return { kind: 'named', names: state.scheme.names };
  if (state.scheme.kind === 'singleton') return { kind: 'singleton' };
  return { kind: 'uniform', partitions: state.partitions };
}

/** Where each partition of a stateful service is placed, from a server's state. */
export function placementOf(view: PlacementView, job: string, service: string): Map<number, PartitionPlacement & { leaving: string[] }> {
  const out = new Map<number, PartitionPlacement & { leaving: string[] }>();
  const spec = view.job(job)?.job.services.find((s) => s.name === service);
  for (let p = 0; p < (spec?.state?.partitions ?? 0); p++) out.set(p, { members: [], leaving: [] });
  for (const a of view.allocationsOfJob(job)) {
    if (a.service !== service || a.partition === undefined || isTerminal(a)) continue;
    const entry = out.get(a.partition);
    if (!entry) continue;
    const list = a.desiredStatus === 'run' ? entry.members : entry.leaving;
    if (!list.includes(a.nodeId)) list.push(a.nodeId);
  }
  for (const e of out.values()) e.leaving = e.leaving.filter((n) => !e.members.includes(n));
  return out;
}

type StateMethod = 'Get' | 'Put' | 'Delete' | 'Enqueue' | 'Dequeue' | 'Ack';
const WRITES = new Set(['Put', 'Delete', 'Enqueue', 'Dequeue', 'Ack', 'Txn']);

interface Target {
  group: string;
  partition: number;
  members: string[];
}

/** The answer of a forwarded call, before it becomes the method's response. */
type Outcome =
  | { kind: 'write'; result: CommandResult }
  | { kind: 'read'; value: unknown; index: number }
  /** Served by another agent: its answer is the method's response already. */
  | { kind: 'remote'; response: unknown };

export class StateRpc {
  readonly #o: StateRpcOptions;
  readonly #log: Logger;
  /** The last primary seen per group. */
  readonly #leaders = new Map<string, string>();
  /** This agent's session per group: the next seq, and the seqs whose answers have not arrived. */
  readonly #sessions = new Map<string, { client: string; next: number; open: Set<number> }>();
  readonly #clientBase: string;
  #sessionNames = 0;

  constructor(options: StateRpcOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'state-rpc' });
    this.#clientBase = `${options.nodeId.slice(0, 16)}.${options.random.hex(6)}`;
  }

  register(rpc: RpcServer): void {
    const simple = (m: MethodDescriptor<shoal.v1.StateRequest, unknown>, name: StateMethod): void => {
      rpc.register(m, (req, ctx) => this.#call(m, name, req, ctx));
    };
    simple(StateGet as MethodDescriptor<shoal.v1.StateRequest, unknown>, 'Get');
    simple(StatePut as MethodDescriptor<shoal.v1.StateRequest, unknown>, 'Put');
    simple(StateDelete as MethodDescriptor<shoal.v1.StateRequest, unknown>, 'Delete');
    simple(StateEnqueue as MethodDescriptor<shoal.v1.StateRequest, unknown>, 'Enqueue');
    simple(StateDequeue as MethodDescriptor<shoal.v1.StateRequest, unknown>, 'Dequeue');
    simple(StateAck as MethodDescriptor<shoal.v1.StateRequest, unknown>, 'Ack');
    rpc.register(StateScan, (req, ctx) => this.#call(StateScan as MethodDescriptor<unknown, unknown>, 'Scan', req, ctx) as Promise<shoal.v1.StateScanResponse>);
    rpc.register(StateTxn, (req, ctx) => this.#call(StateTxn as MethodDescriptor<unknown, unknown>, 'Txn', req, ctx) as Promise<shoal.v1.StateTxnResponse>);
    rpc.register(PartitionsPlacement, (req, ctx) => this.#placementCall(req, ctx));
    rpc.register(PartitionsReplica, (req) => this.#replicaStatus(req.group ?? ''));
    rpc.register(PartitionsSnapshotChunk, (req, ctx) => {
      if (!ctx.forwardedFrom) throw new InvalidArgumentError('snapshot chunks are fetched by agents over the peer links, not through the API');
      const replica = this.#o.host.replica(req.group ?? '');
      if (!replica) throw new ShoalError('ERR_PARTITION_NOT_HOSTED', `this agent hosts no replica of ${req.group ?? ''}`, { group: req.group ?? '' });
      const chunk = replica.readSnapshotChunk(Number(req.index), Number(req.offset));
      return shoal.v1.SnapshotChunkResponse.fromObject({ data: chunk.data, totalBytes: chunk.totalBytes, crc32: chunk.crc32 });
    });
    rpc.register(PartitionsList, (req, ctx) => this.#list(req, ctx));
    rpc.register(PartitionsTransfer, (req, ctx) => this.#transfer(req, ctx));
  }

  /** Placement for the partition host: from this server's state, or asked of a server. */
  async placement(job: string, service: string): Promise<Map<number, PartitionPlacement> | undefined> {
    const view = this.#o.state();
    if (view) return placementOf(view, job, service);
    const server = this.#o.pickServer();
    if (!server) return undefined;
    const res = await this.#o.callPeer(server, PartitionsPlacement, shoal.v1.PlacementRequest.fromObject({ job, service }), LIMITS.defaultRpcTimeoutMs);
    return new Map((res.partitions ?? []).map((p) => [p.partition ?? 0, { members: p.members ?? [], leaving: p.leaving ?? [] }]));
  }

  // --- Calls ---------------------------------------------------------------------------------------------------

  async #call(m: MethodDescriptor<unknown, unknown>, name: string, req: StateCall, ctx: CallContext): Promise<unknown> {
    if (req.forwarded) {
      if (!ctx.forwardedFrom) throw new InvalidArgumentError('"forwarded" is set by agents when they route a call; leave it out');
      return this.#respond(name, await this.#serveLocal(name, req, req.forwarded, ctx.timeoutMs), req.forwarded.partition ?? 0);
    }
    const view = this.#o.state();
    if (!view) {
      // A client holds no placement: a server routes the call.
      if (ctx.forwardedFrom) throw new ShoalError('ERR_NOT_A_SERVER', 'a call forwarded to a client cannot be routed there; send it to a server');
      const server = this.#o.pickServer();
      if (!server) throw new ShoalError('ERR_NO_SERVER', 'this agent is a client and knows no server to route the call through');
      return this.#o.callPeer(server, m, req, Math.max(1, ctx.timeoutMs - 50));
    }
    const spec = this.#service(view, req.job ?? '', req.service ?? '');
    const command = name === 'Get' || name === 'Scan' ? undefined : toCommand(name, req);
    if (command) {
      const bad = validateCommand(command);
      if (bad) throw toError(bad);
    }
    const target = this.#target(view, spec, req, name);
    const consistency = readConsistency(req.consistency);
    const outcome = await this.#route(name, req, target, consistency, ctx);
    return this.#respond(name, outcome, target.partition);
  }

  #service(view: PlacementView, job: string, service: string): ServiceSpec & { state: StateSpec } {
    const rec = view.job(job);
    if (!rec) throw new NotFoundError(`no job named "${job}"`, { job });
    const spec = rec.job.services.find((s) => s.name === service);
    if (!spec) throw new NotFoundError(`job "${job}" has no service "${service}" (it has ${rec.job.services.map((s) => s.name).join(', ')})`, { job, service });
    if (!spec.state) throw new InvalidArgumentError(`service "${service}" of job "${job}" is not stateful (it has no x-shoal.state)`, { job, service });
    if (rec.stopped) throw new ShoalError('ERR_JOB_STOPPED', `job "${job}" is stopped: its partitions are gone`, { job });
    return spec as ServiceSpec & { state: StateSpec };
  }

  #target(view: PlacementView, spec: ServiceSpec & { state: StateSpec }, req: StateCall, name: string): Target {
    const key = routingKey(req, name);
    const scheme = schemeOf(spec.state);
    const at = partitionFor(scheme, key);
    if (!at.ok) throw toError(at);
    if (name === 'Txn') {
      // Every key the transaction touches must live in the same partition: a Txn never spans two.
      for (const [i, k] of txnKeys(req as shoal.v1.IStateTxnRequest).entries()) {
        if (req.partitionKey) break;
        const other = partitionFor(scheme, { kind: 'key', key: k });
        if (other.ok && other.partition !== at.partition) {
          throw new InvalidArgumentError(`a transaction must stay in one partition: key "${k}" (${i}) is in partition ${other.partition}, the transaction's first key in ${at.partition}; give a partitionKey to route every op together`, { field: 'ops' });
        }
      }
    }
    const rec = view.job(req.job ?? '')!;
    const group = partitionGroup(rec.job.name, rec.createIndex, spec.name, at.partition);
    const members = placementOf(view, rec.job.name, spec.name).get(at.partition)?.members ?? [];
    return { group, partition: at.partition, members };
  }

  /** Tries the primary (or, for a local read, a replica), following leader hints, until the deadline. */
  async #route(name: string, req: StateCall, target: Target, consistency: ReadConsistency, ctx: CallContext): Promise<Outcome> {
    const write = WRITES.has(name);
    const session = write ? this.#openSession(target.group) : undefined;
    const deadline = Date.now() + ctx.timeoutMs - 50;
    const tried: string[] = [];
    let last: Error | undefined;
    try {
      for (let attempt = 0; attempt < LIMITS.partitionRouteMaxAttempts && Date.now() < deadline; attempt++) {
        const node = this.#pick(target, consistency, write, tried);
        if (!node) break;
        tried.push(node);
        const forwarded = { partition: target.partition, group: target.group, ...(session ? { client: session.client, seq: session.seq, acked: session.acked } : {}) };
        try {
          const remaining = Math.max(1, deadline - Date.now());
          const outcome = node === this.#o.nodeId
            ? await this.#serveLocal(name, req, forwarded, remaining)
            : await this.#remote(name, req, forwarded, node, remaining);
          if (write || consistency === 'linearizable') this.#leaders.set(target.group, node);
          return outcome;
        } catch (err) {
          last = err as Error;
          const code = (err as { code?: string }).code;
          const hint = (err as { details?: Record<string, unknown> }).details?.['leader'];
          if (code === 'ERR_RAFT_NOT_LEADER' || code === 'ERR_RAFT_PROPOSAL_DROPPED' || code === 'ERR_PARTITION_NOT_HOSTED' || code === 'ERR_PEER_UNREACHABLE' || code === 'ERR_RAFT_STOPPED' || code === 'ERR_DEADLINE_EXCEEDED') {
            if (typeof hint === 'string' && hint !== '') this.#leaders.set(target.group, hint);
            else this.#leaders.delete(target.group);
            // Named as the leader: worth another try even if it was tried already (it may have just won).
            if (code === 'ERR_RAFT_NOT_LEADER' && typeof hint === 'string' && tried.includes(hint)) tried.splice(tried.indexOf(hint), 1);
            await new Promise((r) => setTimeout(r, Math.min(LIMITS.partitionRouteRetryMs * (attempt + 1), Math.max(0, deadline - Date.now()))));
            continue;
          }
          throw err;
        }
      }
    } finally {
      if (session) this.#closeSession(target.group, session.seq);
    }
    const members = target.members.map((n) => n.slice(0, 12)).join(', ') || 'none placed';
    throw new ShoalError('ERR_PARTITION_UNAVAILABLE',
      `partition ${target.partition} (${target.group}) has no primary that answered (members: ${members}): it may be electing one, or have lost its quorum${last ? `; last error: ${describeError(last)}` : ''}`,
      { group: target.group, partition: target.partition });
  }

  #pick(target: Target, consistency: ReadConsistency, write: boolean, tried: string[]): string | undefined {
    if (!write && consistency === 'local' && target.members.includes(this.#o.nodeId) && this.#o.host.replica(target.group)) return this.#o.nodeId;
    const alive = this.#o.memberAlive ?? (() => true);
    // Members gossip believes alive first; the others only when no live one is left to try.
    const members = [...target.members.filter((n) => alive(n)), ...target.members.filter((n) => !alive(n))];
    const hint = this.#leaders.get(target.group);
    if (hint && alive(hint) && members.includes(hint) && tried.filter((t) => t === hint).length < 2) return hint;
    const fresh = members.find((n) => !tried.includes(n));
    if (fresh) return fresh;
    // Everyone was tried once: go round the live ones again (an election may have finished meanwhile).
    const live = members.filter((n) => alive(n));
    const pool = live.length > 0 ? live : members;
    return pool.length > 0 ? pool[tried.length % pool.length] : undefined;
  }

  async #remote(name: string, req: StateCall, forwarded: shoal.v1.IForwardedCall, node: string, timeoutMs: number): Promise<Outcome> {
    const m = METHODS[name]!;
    const body = { ...(req as object), forwarded };
    return { kind: 'remote', response: await this.#o.callPeer(node, m, m.requestType.fromObject(toPlain(body)), timeoutMs) };
  }

  /** Serves a call on the replica hosted here. */
  async #serveLocal(name: string, req: StateCall, fwd: shoal.v1.IForwardedCall, timeoutMs: number): Promise<Outcome> {
    const group = fwd.group ?? '';
    const replica = this.#o.host.replica(group);
    if (!replica) throw new ShoalError('ERR_PARTITION_NOT_HOSTED', `this agent hosts no replica of ${group}`, { group });
    if (name === 'Get' || name === 'Scan') {
      const consistency = readConsistency(req.consistency);
      let index = 0;
      const value = await replica.read(consistency, timeoutMs, (s) => {
        index = s.appliedIndex;
        if (name === 'Get') return s.get(req.collection ?? '', (req as shoal.v1.IStateRequest).key ?? '');
        const r = req as shoal.v1.IStateScanRequest;
        return s.scan(r.collection ?? '', {
          ...(r.start ? { start: r.start } : {}), ...(r.end ? { end: r.end } : {}), ...(r.limit ? { limit: r.limit } : {}),
        });
      });
      return { kind: 'read', value, index };
    }
    const session: SessionTag | undefined = fwd.client ? { client: fwd.client, seq: Number(fwd.seq), acked: Number(fwd.acked) } : undefined;
    const result = await replica.write(toCommand(name, req), session, timeoutMs);
    return { kind: 'write', result };
  }

  #respond(name: string, outcome: Outcome, partition: number): unknown {
    if (outcome.kind === 'remote') return outcome.response;
    if (outcome.kind === 'read') {
      const r = outcome.value as { ok: boolean } & Record<string, unknown>;
      if (!r.ok) throw toError(r as unknown as Failure);
      if (name === 'Get') {
        return shoal.v1.StateGetResponse.fromObject({ found: r['found'], ...(r['found'] ? { value: r['value'], version: r['version'] } : {}), index: r['index'] ?? outcome.index, partition });
      }
      const entries = (r['entries'] as { key: string; value: Uint8Array; version: number }[]).map((e) => ({ key: e.key, value: e.value, version: e.version }));
      return shoal.v1.StateScanResponse.fromObject({ entries, continuation: (r['continuation'] as string | undefined) ?? '', index: r['index'] ?? outcome.index, partition });
    }
    const result = outcome.result;
    if (!result.ok) throw toError(result);
    if (name === 'Txn') {
      const results = (result as { results: OpResult[] }).results.map(opResult);
      return shoal.v1.StateTxnResponse.fromObject({ results, partition });
    }
    if (name === 'Dequeue') {
      const item = (result as { item: unknown }).item as Parameters<typeof itemOf>[0] | null;
      return shoal.v1.StateDequeueResponse.fromObject({ ...(item ? { item: itemOf(item) } : {}), partition });
    }
    return shoal.v1.StateWriteResponse.fromObject({ ...opResult(result as OpResult), partition });
  }

  // --- Sessions ------------------------------------------------------------------------------------------------

  #openSession(group: string): { client: string; seq: number; acked: number } {
    let s = this.#sessions.get(group);
    if (!s) {
      if (this.#sessions.size >= LIMITS.partitionRouterMaxSessions) this.#sessions.delete(this.#sessions.keys().next().value as string);
      // A new name every time: a partition that still remembers an evicted session's name would refuse its seqs.
      s = { client: `${this.#clientBase}.${++this.#sessionNames}`, next: 1, open: new Set() };
      this.#sessions.set(group, s);
    }
    const seq = s.next++;
    s.open.add(seq);
    let acked = seq;
    for (const o of s.open) if (o < acked) acked = o;
    return { client: s.client, seq, acked };
  }

  #closeSession(group: string, seq: number): void {
    this.#sessions.get(group)?.open.delete(seq);
  }

  // --- Partitions ----------------------------------------------------------------------------------------------

  async #placementCall(req: shoal.v1.PlacementRequest, ctx: CallContext): Promise<shoal.v1.PlacementResponse> {
    const view = this.#o.state();
    if (!view) {
      const server = this.#o.pickServer();
      if (!server || ctx.forwardedFrom) throw new ShoalError('ERR_NO_SERVER', 'this agent is a client and knows no server to ask for the placement');
      return this.#o.callPeer(server, PartitionsPlacement, req, Math.max(1, ctx.timeoutMs - 50));
    }
    const rec = view.job(req.job ?? '');
    const spec = this.#service(view, req.job ?? '', req.service ?? '');
    const placed = placementOf(view, rec!.job.name, spec.name);
    return shoal.v1.PlacementResponse.fromObject({
      groupPrefix: partitionGroup(rec!.job.name, rec!.createIndex, spec.name, 0).replace(/0$/, ''),
      partitions: [...placed].map(([partition, p]) => ({ partition, members: p.members, leaving: p.leaving })),
      index: view.index,
    });
  }

  #replicaStatus(group: string): shoal.v1.ReplicaStatusResponse {
    const replica = this.#o.host.replica(group);
    if (!replica) return shoal.v1.ReplicaStatusResponse.fromObject({ hosted: false });
    const st = replica.raft.status();
    return shoal.v1.ReplicaStatusResponse.fromObject({
      hosted: true, role: replica.role(), leader: st.leader ?? '', term: st.term, commit: st.commit, applied: replica.appliedIndex,
      voters: st.voters, learners: st.learners,
      match: Object.fromEntries(Object.entries(st.progress).map(([id, p]) => [id, p.match])),
      sizeBytes: replica.sizeBytes(),
    });
  }

  /**
   * `partition transfer`: a server resolves the partition's group and the node, then asks each member in turn (the
   * last primary seen first); the primary hands over (Raft's leadership transfer: the target is brought up to date,
   * then told to campaign at once) and answers once the target leads, or says who leads.
   */
  async #transfer(req: shoal.v1.TransferPrimaryRequest, ctx: CallContext): Promise<shoal.v1.TransferPrimaryResponse> {
    if (req.group) {
      if (!ctx.forwardedFrom) throw new InvalidArgumentError('"group" is set by agents when they route a transfer; leave it out');
      const replica = this.#o.host.replica(req.group);
      if (!replica) throw new ShoalError('ERR_PARTITION_NOT_HOSTED', `this agent hosts no replica of ${req.group}`, { group: req.group });
      const to = req.toNodeId ?? '';
      const st = replica.raft.status();
      // The node an operator chose: it pins the role (its balancing leaves the group here for a while), and answers
      // for the transfer only if it already leads.
      if (to === this.#o.nodeId) this.#o.host.pin(req.group);
      if (st.role !== 'leader') throw new NotLeaderError(req.group, this.#o.nodeId, st.leader, 'only the primary hands its role over');
      if (to !== this.#o.nodeId) {
        if (!st.voters.includes(to)) throw new InvalidArgumentError(`node ${to.slice(0, 12)} is not a voter of ${req.group} (voters: ${st.voters.map((v) => v.slice(0, 12)).join(', ')})`, { field: 'to' });
        replica.raft.transferLeadership(to);
        const deadline = Date.now() + Math.max(0, ctx.timeoutMs - 100);
        while (replica.raft.status().leader !== to && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        if (replica.raft.status().leader !== to) throw new ShoalError('ERR_DEADLINE_EXCEEDED', `node ${to.slice(0, 12)} did not take over ${req.group} in time (it may be behind, or unreachable); the primary is still ${(replica.raft.status().leader ?? 'unknown').slice(0, 12)}`);
      }
      return shoal.v1.TransferPrimaryResponse.fromObject({ primaryNodeId: to });
    }
    const view = this.#o.state();
    if (!view) {
      const server = this.#o.pickServer();
      if (!server || ctx.forwardedFrom) throw new ShoalError('ERR_NO_SERVER', 'this agent is a client and knows no server to route the transfer through');
      return this.#o.callPeer(server, PartitionsTransfer, req, Math.max(1, ctx.timeoutMs - 50));
    }
    const spec = this.#service(view, req.job ?? '', req.service ?? '');
    const rec = view.job(req.job ?? '')!;
    const partition = req.partition ?? 0;
    if (partition >= spec.state.partitions) throw new InvalidArgumentError(`service "${spec.name}" has partitions 0 to ${spec.state.partitions - 1}, not ${partition}`, { field: 'partition' });
    const group = partitionGroup(rec.job.name, rec.createIndex, spec.name, partition);
    const members = placementOf(view, rec.job.name, spec.name).get(partition)?.members ?? [];
    const named = members.filter((n) => view.node(n)?.name === req.to);
    const toNodeId = named.length === 1 ? named[0]! : resolveIdPrefix(req.to ?? '', members, `replica node of partition ${partition} (by name or id)`);
    // First tell the chosen node (it pins the role, so its balancing does not hand it straight back); if it cannot be
    // told, the transfer still happens and may later be balanced away, which is no error of the transfer.
    const body = shoal.v1.TransferPrimaryRequest.fromObject({ ...req, group, toNodeId });
    const internal = { ...ctx, forwardedFrom: this.#o.nodeId };
    const budget = Math.max(1, Math.min(2_000, ctx.timeoutMs / 4));
    await (toNodeId === this.#o.nodeId ? this.#transfer(body, internal) : this.#o.callPeer(toNodeId, PartitionsTransfer, body, budget)).catch(() => undefined);
    const order = [...new Set([this.#leaders.get(group), ...members].filter((n): n is string => n !== undefined && members.includes(n)))];
    let last: Error | undefined;
    for (let i = 0; i < order.length; i++) {
      const node = order[i]!;
      try {
        const res = node === this.#o.nodeId
          ? await this.#transfer(body, internal)
          : await this.#o.callPeer(node, PartitionsTransfer, body, Math.max(1, ctx.timeoutMs - 100));
        this.#leaders.set(group, toNodeId);
        return shoal.v1.TransferPrimaryResponse.fromObject({ primaryNodeId: res.primaryNodeId, primaryNodeName: view.node(res.primaryNodeId ?? '')?.name ?? '' });
      } catch (err) {
        last = err as Error;
        const code = (err as { code?: string }).code;
        if (code !== 'ERR_RAFT_NOT_LEADER' && code !== 'ERR_PARTITION_NOT_HOSTED' && code !== 'ERR_PEER_UNREACHABLE') throw err;
        const hint = (err as { details?: Record<string, unknown> }).details?.['leader'];
        if (typeof hint === 'string' && members.includes(hint) && !order.slice(i + 1).includes(hint)) order.splice(i + 1, 0, hint);
      }
    }
    throw new ShoalError('ERR_PARTITION_UNAVAILABLE', `partition ${partition} of ${spec.name} has no primary that answered${last ? `: ${describeError(last)}` : ''}`, { group });
  }

  async #list(req: shoal.v1.ListPartitionsRequest, ctx: CallContext): Promise<shoal.v1.ListPartitionsResponse> {
    const view = this.#o.state();
    if (!view) {
      const server = this.#o.pickServer();
      if (!server || ctx.forwardedFrom) throw new ShoalError('ERR_NO_SERVER', 'this agent is a client and knows no server to ask');
      return this.#o.callPeer(server, PartitionsList, req, Math.max(1, ctx.timeoutMs - 50));
    }
    const jobs = req.job ? [view.job(req.job)].filter((j): j is JobRecord => j !== undefined) : view.jobs();
    if (req.job && jobs.length === 0) throw new NotFoundError(`no job named "${req.job}"`, { job: req.job });
    const out: shoal.v1.IPartitionInfo[] = [];
    const budget = Math.max(200, Math.min(2_000, ctx.timeoutMs / 4));
    for (const rec of jobs) {
      for (const spec of rec.job.services) {
        if (!spec.state || (req.service && spec.name !== req.service)) continue;
        const placed = placementOf(view, rec.job.name, spec.name);
        const infos = partitionsOf(schemeOf(spec.state));
        await Promise.all([...placed].map(async ([partition, p]) => {
          const group = partitionGroup(rec.job.name, rec.createIndex, spec.name, partition);
          out.push(await this.#partitionInfo(view, rec, spec, partition, group, p, infos[partition], budget));
        }));
      }
    }
    out.sort((a, b) => (a.job! < b.job! ? -1 : a.job! > b.job! ? 1 : a.service! < b.service! ? -1 : a.service! > b.service! ? 1 : a.partition! - b.partition!));
    return shoal.v1.ListPartitionsResponse.fromObject({ partitions: out });
  }

  async #partitionInfo(
    view: PlacementView, rec: JobRecord, spec: ServiceSpec & { state?: StateSpec }, partition: number, group: string,
    placed: PartitionPlacement & { leaving: string[] }, info: ReturnType<typeof partitionsOf>[number] | undefined, budgetMs: number,
  ): Promise<shoal.v1.IPartitionInfo> {
    const nodes = [...placed.members, ...placed.leaving];
    const answers = new Map<string, shoal.v1.IReplicaStatusResponse>();
    await Promise.all(nodes.map(async (n) => {
      try {
        const r = n === this.#o.nodeId ? this.#replicaStatus(group) : await this.#o.callPeer(n, PartitionsReplica, shoal.v1.ReplicaStatusRequest.fromObject({ group }), budgetMs);
        if (r.hosted) answers.set(n, r);
      } catch (err) {
        this.#log.debug({ group, node: n.slice(0, 12), err: describeError(err) }, 'replica did not answer');
      }
    }));
    const primaryId = [...answers].find(([, r]) => r.role === 'primary')?.[0];
    const primary = primaryId ? answers.get(primaryId) : undefined;
    const lastIndex = Number(primary?.commit ?? 0);
    const members: shoal.v1.IPartitionMember[] = nodes.map((n) => {
      const r = answers.get(n);
      const match = primary?.match?.[n];
      const role = placed.leaving.includes(n) ? 'leaving' : n === primaryId ? 'primary' : primary?.learners?.includes(n) ? 'learner' : 'secondary';
      return {
        nodeId: n, nodeName: view.node(n)?.name ?? n.slice(0, 12), role, appliedIndex: Number(r?.applied ?? 0),
        lag: n === primaryId ? 0 : Math.max(0, lastIndex - Number(match ?? r?.applied ?? 0)), reachable: r !== undefined,
      };
    });
    const voters = primary?.voters ?? [];
    const wanted = spec.state?.replicas ?? 0;
    // Ready: the group's voters are exactly its placement, at full strength. Anything else (a replica missing, one
    // still catching up as a learner, a dead or moved member not yet removed) is degraded while a primary leads.
    const inPlace = placed.members.length >= wanted && voters.length === placed.members.length && placed.members.every((n) => voters.includes(n));
    const state = primary === undefined
      ? (answers.size === 0 && placed.members.length > 0 ? 'starting' : 'no quorum')
      : inPlace ? 'ready' : 'degraded';
    const range = info?.kind === 'uniform' ? `[${info.low}, ${info.high}]` : info?.kind === 'named' ? info.name : '';
    return {
      job: rec.job.name, service: spec.name, partition, range, primaryNodeId: primaryId ?? '', members,
      sizeBytes: Number(primary?.sizeBytes ?? 0), state, replicasWanted: wanted, commitIndex: lastIndex,
    };
  }
}

// --- Requests to commands, results to answers ------------------------------------------------------------------

type StateCall = (shoal.v1.IStateRequest | shoal.v1.IStateScanRequest | shoal.v1.IStateTxnRequest) & {
  job?: string | null; service?: string | null; collection?: string | null; consistency?: string | null; partitionKey?: string | null; partitionKind?: string | null;
  forwarded?: shoal.v1.IForwardedCall | null;
};

const METHODS: Record<string, MethodDescriptor<unknown, unknown>> = {
  Get: StateGet, Put: StatePut, Delete: StateDelete, Enqueue: StateEnqueue, Dequeue: StateDequeue, Ack: StateAck, Scan: StateScan, Txn: StateTxn,
} as unknown as Record<string, MethodDescriptor<unknown, unknown>>;

function readConsistency(text: string | null | undefined): ReadConsistency {
  if (!text || text === 'linearizable') return 'linearizable';
  if (text === 'local') return 'local';
  if (text === 'lease') throw new ShoalError('ERR_UNSUPPORTED', 'consistency "lease" is not built yet; use "linearizable" (the default) or "local"', { field: 'consistency' });
  throw new InvalidArgumentError(`consistency must be "linearizable" or "local", not "${text}"`, { field: 'consistency' });
}

function routingKey(req: StateCall, name: string): PartitionKey {
  const kind = req.partitionKind || 'key';
  const explicit = req.partitionKey ?? '';
  const fallback = name === 'Scan' ? (req as shoal.v1.IStateScanRequest).start ?? ''
    : name === 'Txn' ? (txnKeys(req as shoal.v1.IStateTxnRequest)[0] ?? '')
      : (req as shoal.v1.IStateRequest).key ?? '';
  const key = explicit !== '' ? explicit : fallback;
  switch (kind) {
    case 'key':
      if (key === '') return { kind: 'singleton' };
      return { kind: 'key', key };
    case 'int64': {
      const v = parseInt64(key, 'partitionKey');
      if (typeof v !== 'bigint') throw toError(v);
      return { kind: 'int64', value: v };
    }
    case 'named':
      return { kind: 'named', name: key };
    case 'singleton':
      return { kind: 'singleton' };
    default:
      throw new InvalidArgumentError(`partitionKind must be "key", "int64", "named" or "singleton", not "${kind}"`, { field: 'partitionKind' });
  }
}

function txnKeys(req: shoal.v1.IStateTxnRequest): string[] {
  return [...(req.ops ?? []).map((o) => o.key ?? ''), ...(req.compares ?? []).map((c) => c.key ?? '')].filter((k) => k !== '');
}

const bytes = (v: Uint8Array | null | undefined): Uint8Array => (v ? new Uint8Array(v) : new Uint8Array(0));

function condition(ifVersion: unknown, ifAbsent: unknown): { kind: 'version'; version: number } | { kind: 'absent' } | undefined {
  const v = Number(ifVersion ?? 0);
  if (v > 0 && ifAbsent) throw new InvalidArgumentError('ifVersion and ifAbsent cannot both be set', { field: 'ifAbsent' });
  if (v > 0) return { kind: 'version', version: v };
  return ifAbsent ? { kind: 'absent' } : undefined;
}

function toOperation(type: string, r: shoal.v1.IStateOp | shoal.v1.IStateRequest, collection: string): Operation {
  switch (type) {
    case 'put': {
      const c = condition(r.ifVersion, r.ifAbsent);
      return { type: 'put', collection, key: r.key ?? '', value: bytes(r.value), ...(c ? { condition: c } : {}) };
    }
    case 'delete': {
      if (r.ifAbsent) throw new InvalidArgumentError('a delete takes ifVersion, not ifAbsent', { field: 'ifAbsent' });
      const c = condition(r.ifVersion, false);
      return { type: 'delete', collection, key: r.key ?? '', ...(c && c.kind === 'version' ? { condition: c } : {}) };
    }
    case 'enqueue':
      return { type: 'enqueue', queue: collection, value: bytes(r.value) };
    case 'dequeue':
      return { type: 'dequeue', queue: collection, leaseMs: Number(r.leaseMs ?? 0) || LIMITS.partitionDefaultLeaseMs };
    case 'ack':
      return { type: 'ack', queue: collection, leaseId: r.leaseId ?? '' };
    default:
      throw new InvalidArgumentError(`op type must be put, delete, enqueue, dequeue or ack, not "${type}"`, { field: 'type' });
  }
}

function toCommand(name: string, req: StateCall): PartitionCommand {
  if (name === 'Txn') {
    const t = req as shoal.v1.IStateTxnRequest;
    const compares: Compare[] = (t.compares ?? []).map((c, i) => {
      const base = { collection: c.collection ?? '', key: c.key ?? '' };
      if (c.kind === 'version') return { ...base, kind: 'version', version: Number(c.version ?? 0) };
      if (c.kind === 'value') return { ...base, kind: 'value', value: bytes(c.value) };
      if (c.kind === 'absent') return { ...base, kind: 'absent' };
      throw new InvalidArgumentError(`compares[${i}].kind must be version, value or absent, not "${c.kind ?? ''}"`, { field: `compares[${i}].kind` });
    });
    return { type: 'txn', compares, ops: (t.ops ?? []).map((o) => toOperation(o.type ?? '', o, o.collection ?? '')) };
  }
  const r = req as shoal.v1.IStateRequest;
  return toOperation(name.toLowerCase(), r, r.collection ?? '');
}

function itemOf(item: { itemId: string; value: Uint8Array; enqueueVersion: number; deliveries: number; leaseId: string; leaseExpiresMs: number }): shoal.v1.IStateItem {
  return { itemId: item.itemId, value: item.value, enqueueVersion: item.enqueueVersion, deliveries: item.deliveries, leaseId: item.leaseId, leaseExpiresMs: item.leaseExpiresMs };
}

function opResult(r: OpResult): shoal.v1.IStateOpResult & shoal.v1.IStateWriteResponse {
  switch (r.type) {
    case 'put':
      return { type: 'put', version: r.version, previousVersion: r.previousVersion };
    case 'delete':
      return { type: 'delete', deleted: r.deleted, previousVersion: r.previousVersion };
    case 'enqueue':
      return { type: 'enqueue', itemId: r.itemId, version: r.version };
    case 'dequeue':
      return { type: 'dequeue', ...(r.item ? { item: itemOf(r.item) } : {}) };
    case 'ack':
      return { type: 'ack', itemId: r.itemId };
  }
}

/** A decoded protobuf message as a plain object (Longs and bytes kept) for fromObject. */
function toPlain(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined)) as Record<string, unknown>;
}
