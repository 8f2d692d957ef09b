/**
 * The replicated cluster state: what every agent holds once it has applied the Raft log. Records are plain data
 * (snapshot-able as JSON); every record carries the log index that created it and the one that last changed it.
 */
import type { Job, Resources, ServiceSpec } from '../jobspec/types.js';

export type NodeStatus = 'ready' | 'down' | 'left';

/** A network shared between jobs (`shoal network create`); jobs name it with `external: true`. */
export interface NetworkRecord {
  name: string;
  /** No route out of the cluster for the tasks on it. */
  internal: boolean;
  createIndex: number;
}

export type FileObjectKind = 'secret' | 'config';

/**
 * A secret or a config held by the cluster (`shoal secret create`, or registered with a job whose file provides
 * it). Immutable: a new value takes a new name. The state machine never sees a secret's plaintext: the agent that
 * takes the write encrypts it first (src/runtime/secrets.ts), and only an agent holding the cluster key decrypts it.
 */
export interface FileObjectRecord {
  kind: FileObjectKind;
  name: string;
  /**
   * A secret: base64 of nonce and ciphertext (XChaCha20-Poly1305 under a key derived from the cluster key, the name
   * as associated data). A config: base64 of its contents.
   */
  data: string;
  /**
   * Hex digest of the contents, what users see to tell two values apart: a config's is SHA-256; a secret's is keyed
   * by the cluster key (HMAC-SHA256), so it says nothing of the value without the key.
   */
  digest: string;
  sizeBytes: number;
  /** The job whose file provides it (`<job>_<key>`); null when created on its own. */
  job: string | null;
  createIndex: number;
}

/** What a command carries to create a secret or config (the record without its index). */
export type FileObjectInput = Omit<FileObjectRecord, 'createIndex'>;

export interface NodeRecord {
  id: string;
  name: string;
  /** Peer address, for display. */
  address: string;
  labels: Record<string, string>;
  /** What the node offers to tasks. */
  capacity: Resources;
  drivers: string[];
  roles: string[];
  /** Ingress ports another program holds on the node (absent: none), as its agent gossips them. */
  portsTaken?: number[];
  status: NodeStatus;
  /** False when an operator made the node ineligible or it is draining: nothing new is placed on it. */
  eligible: boolean;
  draining: boolean;
  createIndex: number;
  modifyIndex: number;
}

export interface JobRecord {
  job: Job;
  /** Bumped on every registration that changes the job. */
  version: number;
  /**
   * Per service, the job version at which what its tasks run last changed (anything but the replica count).
   * Allocations older than that are replaced; scaling one service restarts nothing, and neither does a change to
   * another service.
   */
  serviceVersions: Record<string, number>;
  stopped: boolean;
  createIndex: number;
  modifyIndex: number;
}

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export type DesiredStatus = 'run' | 'stop';
export type ClientStatus = 'pending' | 'running' | 'complete' | 'failed' | 'lost';

export interface Allocation {
  id: string;
  jobName: string;
  jobVersion: number;
  service: string;
  /** Replica slot, 0-based (for global services, one slot per node, all 0). */
  slot: number;
  /**
   * A stateful service's allocation: the partition whose replica it hosts (slot = partition × replicas + replica
   * index). Absent for a stateless service.
   */
  partition?: number;
  /**
   * Set on the first placement of a partition only: the nodes placed together as its first members, which bootstrap
   * its Raft group. A replica placed later (a replacement, a move) joins the group as a learner instead; so a
   * partition that lost every replica is never silently re-created empty.
   */
  bootstrap?: string[];
  nodeId: string;
  /** Resources reserved on the node while the allocation is not terminal. */
  resources: Resources;
  /** Host ports ("8080/tcp") it holds on the node while it holds its resources; absent: none. */
  ports?: string[];
  desiredStatus: DesiredStatus;
  /** Why the leader wants it stopped (replaced, node down, job stopped, scaled down, drained). */
  desiredReason: string;
  clientStatus: ClientStatus;
  /** What the node last said about it (exit code, error). */
  clientMessage: string;
  restarts: number;
  /** The driver's handle, as reported by the node, so a restarted agent can re-attach. */
  driverHandle: string;
  /**
   * Target port (as a string key) to the port the task listens on, on its node, as reported by the node once the
   * task runs; absent: none (the task declares no `ports` or `expose`). The service mesh connects there.
   */
  taskPorts?: Record<string, number>;
  /** The task's health check as its node last saw it; absent when the service declares none. */
  health?: HealthStatus;
  /** The allocation this one replaces, if any. */
  previousAllocId: string;
  /** How many failed allocations this one replaces in a row (a replica is given up after LIMITS.schedulerMaxReschedules). */
  reschedules: number;
  createIndex: number;
  modifyIndex: number;
}

export type EvalTrigger = 'job-register' | 'job-stop' | 'job-scale' | 'node-update' | 'node-drain' | 'alloc-failed' | 'plan-rejected';

export interface Evaluation {
  id: string;
  jobName: string;
  trigger: EvalTrigger;
  status: 'pending' | 'complete' | 'failed';
  /** Placements that could not be made, by service, with the reasons counted. */
  failedPlacements: Record<string, { missing: number; reasons: Record<string, number> }>;
  createIndex: number;
  modifyIndex: number;
}

export function isTerminal(alloc: Allocation): boolean {
  return alloc.clientStatus === 'complete' || alloc.clientStatus === 'failed' || alloc.clientStatus === 'lost';
}

/** An allocation holds node resources until it is terminal or stopped by the leader. */
export function holdsResources(alloc: Allocation): boolean {
  return alloc.desiredStatus === 'run' && !isTerminal(alloc);
}

/**
 * A stateful service without a task (no image, no command, no entrypoint): a replicated store alone. Its allocations
 * are replicas hosted by the agent's partition host (src/runtime/partition-host.ts); no driver runs anything for
 * them, so they need no driver on their node, hold no port and reserve only what the service reserves explicitly.
 */
export function isStoreOnly(spec: ServiceSpec): boolean {
  return spec.state !== undefined && spec.image === null && (spec.command ?? null) === null && (spec.entrypoint ?? null) === null;
}
