/**
 * Stateful services on one agent (issue 12): the replicas it hosts (`partition-host.ts`) and the State and Partitions
 * RPC it serves (`state-rpc.ts`), wired together so the agent only creates, kicks and stops one object.
 */
import { LIMITS } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { Logger } from '../log/logger.js';
import { shoal } from '../gen/proto.js';
import type { Transport } from '../transport/index.js';
import { PartitionsReplica, PartitionsSnapshotChunk, type MethodDescriptor, type RpcServer } from '../rpc/index.js';
import type { NodeStateView } from '../node/index.js';
import type { AllocUpdate } from '../state/index.js';
import { PartitionHost } from './partition-host.js';
import { StateRpc, type PlacementView } from './state-rpc.js';

export interface StatefulPartitionsOptions {
  nodeId: string;
  dataDir: string;
  transport: Transport;
  random: Random;
  logger: Logger;
  /** The Raft tick of partition groups (the agent's, so elections take as long as the cluster group's). */
  tickMs: number;
  /** This node's allocations (a server's state, a client's slice), and whether it is caught up. */
  nodeView: () => NodeStateView;
  fresh: () => boolean;
  /** The whole state on a server; undefined on a client. */
  fullState: () => PlacementView | undefined;
  report: (updates: AllocUpdate[]) => Promise<void>;
  pickServer: () => string | undefined;
  memberAlive: (nodeId: string) => boolean;
  callPeer: <Req, Res>(nodeId: string, method: MethodDescriptor<Req, Res>, request: Req, timeoutMs: number) => Promise<Res>;
}

export class StatefulPartitions {
  readonly host: PartitionHost;
  readonly rpc: StateRpc;

  constructor(o: StatefulPartitionsOptions) {
    this.host = new PartitionHost({
      nodeId: o.nodeId, dataDir: o.dataDir, transport: o.transport, random: o.random.split(), logger: o.logger,
      tickMs: o.tickMs, state: o.nodeView, fresh: o.fresh, report: o.report,
      placement: (job, service) => this.rpc.placement(job, service),
      memberAlive: o.memberAlive,
      fetchSnapshotChunk: async (nodeId, group, index, offset) => {
        const res = await o.callPeer(nodeId, PartitionsSnapshotChunk, shoal.v1.SnapshotChunkRequest.fromObject({ group, index, offset }), LIMITS.partitionSnapshotChunkTimeoutMs);
        return { data: res.data, totalBytes: Number(res.totalBytes), crc32: res.crc32 };
      },
      askMembership: async (nodeId, group, member) => {
        const st = await o.callPeer(nodeId, PartitionsReplica, shoal.v1.ReplicaStatusRequest.fromObject({ group }), LIMITS.defaultRpcTimeoutMs);
        // Only a leader's answer settles it: a follower may lag behind the removal.
        if (!st.hosted || st.role !== 'primary') return undefined;
        return (st.voters ?? []).includes(member) || (st.learners ?? []).includes(member);
      },
    });
    this.rpc = new StateRpc({
      nodeId: o.nodeId, logger: o.logger, random: o.random.split(), host: this.host, state: o.fullState, pickServer: o.pickServer, memberAlive: o.memberAlive, callPeer: o.callPeer,
    });
  }

  register(rpc: RpcServer): void {
    this.rpc.register(rpc);
  }

  kick(): void {
    this.host.kick();
  }

  memberUnreachable(nodeId: string): void {
    this.host.memberUnreachable(nodeId);
  }

  memberReachable(nodeId: string): void {
    this.host.memberReachable(nodeId);
  }

  stop(): void {
    this.host.stop();
  }
}
