/**
 * The commands the Raft log carries for the cluster state. The leader proposes them; every agent applies the
 * committed ones in log order, so every agent's state is the same at the same index.
 */
import type { Job, Resources } from '../jobspec/types.js';
import type { Allocation, ClientStatus, FileObjectInput, FileObjectKind, HealthStatus, NodeStatus } from './types.js';

/** An allocation the scheduler wants created (indexes and statuses are filled in when the plan is applied). */
export type PlannedAllocation = Pick<Allocation, 'id' | 'jobName' | 'jobVersion' | 'service' | 'slot' | 'partition' | 'bootstrap' | 'nodeId' | 'resources' | 'ports' | 'previousAllocId' | 'reschedules'>;

export interface PlannedStop {
  allocId: string;
  reason: string;
  /** Set to 'lost' when the node that ran it is gone. */
  markLost: boolean;
}

export interface Plan {
  evalId: string;
  jobName: string;
  jobVersion: number;
  /** The state index the plan was computed at. */
  baseIndex: number;
  placements: PlannedAllocation[];
  stops: PlannedStop[];
  failedPlacements: Record<string, { missing: number; reasons: Record<string, number> }>;
}

export interface AllocUpdate {
  allocId: string;
  clientStatus: ClientStatus;
  clientMessage: string;
  restarts: number;
  driverHandle: string;
  /** The ports the task listens on, by target port; absent: none. */
  taskPorts?: Record<string, number>;
  /** Its health check's status; absent: it has none. */
  health?: HealthStatus;
}

export type Command =
  /**
   * `objects`: secrets and configs the job's file provides, created with it (or already there with the same digest);
   * the registration fails whole if one exists with other contents.
   */
  | { type: 'job.register'; job: Job; objects?: FileObjectInput[] }
  | { type: 'job.stop'; name: string }
  | { type: 'job.scale'; name: string; service: string; replicas: number }
  | {
      type: 'node.upsert';
      node: { id: string; name: string; address: string; labels: Record<string, string>; capacity: Resources; drivers: string[]; roles: string[]; portsTaken?: number[] };
    }
  | { type: 'node.status'; nodeId: string; status: NodeStatus }
  | { type: 'node.eligibility'; nodeId: string; eligible: boolean }
  | { type: 'node.drain'; nodeId: string; draining: boolean }
  | { type: 'plan.apply'; plan: Plan }
  | { type: 'alloc.update'; nodeId: string; updates: AllocUpdate[] }
  | { type: 'network.create'; name: string; internal: boolean }
  | { type: 'network.delete'; name: string }
  | { type: 'object.create'; object: FileObjectInput }
  | { type: 'object.delete'; kind: FileObjectKind; name: string }
  /** Changes nothing: a write that proves the group can commit (Operator/RaftBarrier). */
  | { type: 'barrier' }
  /** Marks evaluations done without a plan (superseded by a newer one for the same job, or their job is gone). */
  | { type: 'eval.complete'; evalIds: string[] };

export type ApplyResult =
  | { ok: true; evalIds: string[]; allocations?: Allocation[]; index?: number }
  | { ok: false; code: string; message: string; evalIds: string[] };
