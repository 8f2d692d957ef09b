/**
 * A node's slice of the cluster state: what a client agent needs to run its tasks, and nothing more (its
 * allocations, and the job records they belong to). Servers hold the whole state; a client holds only its slice,
 * kept up to date by an index-resumable watch on any server (src/runtime/slice-client.ts).
 *
 *   server: sliceDelta(state, node, since) ─► { index, allocIds (every allocation on the node now),
 *                                               allocations and jobs changed after `since`, complete }
 *   client: NodeSlice.merge(delta) ─► the same view of its node as the server's state at `index`
 *
 * A delta is computed against `since`, the index the client already has, so a client that moves to another
 * server resumes where it was instead of starting over, and a server that has not yet applied `since` must not
 * answer (the caller waits, or asks another server). Both halves are pure, so the simulator runs them as they are.
 */
import { InvalidArgumentError } from '../lib/errors.js';
import { sortedEntries, type CatalogService, type CatalogView } from './catalog.js';
import { objectKey, objectsUsed, type ClusterState } from './cluster-state.js';
import type { Allocation, FileObjectKind, FileObjectRecord, JobRecord } from './types.js';
import type { Job } from '../jobspec/types.js';

export interface SliceDelta {
  /** The server's applied index this delta brings the slice to. */
  index: number;
  /** Every allocation on the node at `index` (those absent are gone from the state). */
  allocIds: string[];
  /** Allocations on the node changed after the client's index, oldest change first. */
  allocations: Allocation[];
  /**
   * Job records that an allocation on the node belongs to and that changed after the client's index, or that an
   * allocation new to the client (created after that index) belongs to.
   */
  jobs: JobRecord[];
  /**
   * False when more allocations changed than one answer may carry: `index` is then the last index whose changes are
   * all included, and the client asks again at once.
   */
  complete: boolean;
  /**
   * The service catalog (catalog.ts) entries changed after the client's index; every client gets the whole catalog,
   * as its tasks may reach any service. Absent when nothing in it changed.
   */
  catalog?: CatalogService[];
  /** Every catalog key at `index` (entries absent are gone); present whenever `catalog` is. */
  catalogKeys?: string[];
  /**
   * The secrets (sealed) and configs that the services of `jobs` running on the node use; absent when none. They
   * never change, so they travel with the job records that name them.
   */
  objects?: FileObjectRecord[];
}

/** The part of a node's slice that changed after `since`, at most `maxAllocs` allocations of it. */
export function sliceDelta(state: ClusterState, nodeId: string, since: number, maxAllocs: number): SliceDelta {
  const mine = state.allocationsOnNode(nodeId);
  const changed = mine.filter((a) => a.modifyIndex > since).sort((a, b) => a.modifyIndex - b.modifyIndex || (a.id < b.id ? -1 : 1));
  let index = state.index;
  let allocations = changed;
  let complete = true;
  if (changed.length > maxAllocs) {
    // Cut between two indexes, never inside one: everything up to the cut is then complete.
    let cut = maxAllocs;
    const boundary = changed[cut]!.modifyIndex;
    while (cut > 0 && changed[cut - 1]!.modifyIndex === boundary) cut--;
    if (cut === 0) {
      // One index placed more than fit: send that index whole rather than never progress.
      cut = changed.findIndex((a) => a.modifyIndex > boundary);
      if (cut < 0) cut = changed.length;
    }
    allocations = changed.slice(0, cut);
    complete = cut === changed.length;
    if (!complete) index = changed[cut]!.modifyIndex - 1;
  }
  // A job record goes with the delta when it changed after `since`, and also when an allocation of it is new to the
  // client (created after `since`): the client may never have held that job (it had no allocation of it, or dropped
  // the record when its last one went), and the job itself may not have changed for a long time.
  const newJobs = new Set(allocations.filter((a) => a.createIndex > since).map((a) => a.jobName));
  const jobNames = new Set(mine.map((a) => a.jobName));
  const jobs: JobRecord[] = [];
  for (const name of [...jobNames].sort()) {
    const rec = state.job(name);
    if (rec && (rec.modifyIndex > since || newJobs.has(name))) jobs.push(rec);
  }
  const delta: SliceDelta = { index, allocIds: mine.map((a) => a.id).sort(), allocations, jobs, complete };
  const objects = jobs.flatMap((r) => objectsOnNode(r.job, mine, state));
  if (objects.length > 0) delta.objects = objects;
  // The catalog goes whole-state-at-`index` only when the delta is complete: a cut delta's index is older than the
  // state the catalog would come from. The client asks again at once and gets it then.
  if (complete && state.catalogIndex > since) {
    const all = state.catalog();
    delta.catalog = all.filter((e) => e.modifyIndex > since);
    delta.catalogKeys = all.map((e) => e.key);
  }
  return delta;
}

/** The secrets and configs used by the services of `job` that have an allocation among `mine`. */
function objectsOnNode(job: Job, mine: Allocation[], state: ClusterState): FileObjectRecord[] {
  if (!job.secrets && !job.configs) return [];
  const out: FileObjectRecord[] = [];
  for (const key of objectsUsed(job, new Set(mine.filter((a) => a.jobName === job.name).map((a) => a.service)))) {
    const slash = key.indexOf('/');
    const r = state.object(key.slice(0, slash) as FileObjectKind, key.slice(slash + 1));
    if (r) out.push(r);
  }
  return out;
}

/** Whether a client at `since` has anything to learn: its node's slice or the catalog changed after it. */
export function sliceChangedSince(state: ClusterState, nodeId: string, since: number): boolean {
  return state.nodeTouchedIndex(nodeId) > since || state.catalogIndex > since;
}

/** A client's copy of its node's slice; it reads like the parts of `ClusterState` the node core uses. */
export class NodeSlice implements CatalogView {
  #index = 0;
  #complete = false;
  readonly #catalog = new Map<string, CatalogService>();
  #catalogIndex = 0;
  readonly #allocs = new Map<string, Allocation>();
  readonly #jobs = new Map<string, JobRecord>();
  readonly #objects = new Map<string, FileObjectRecord>();

  constructor(readonly nodeId: string) {}

  /** The server index the slice is at (every change up to it is merged). */
  get index(): number {
    return this.#index;
  }

  /** True once a complete delta has been merged (the slice matches a server's state at `index`). */
  get complete(): boolean {
    return this.#complete;
  }

  /**
   * Merges a server's delta. Refuses one about another node's allocations (a server bug or a forged answer);
   * ignores one older than what it holds (a slow answer from a server left behind). Returns whether it merged.
   */
  merge(delta: SliceDelta): boolean {
    for (const [i, a] of delta.allocations.entries()) {
      if (a.nodeId !== this.nodeId) throw new InvalidArgumentError(`slice answer: allocations[${i}] (${a.id}) belongs to node ${a.nodeId}, not to this node ${this.nodeId}`);
    }
    if (delta.index < this.#index) return false;
    const present = new Set(delta.allocIds);
    for (const a of delta.allocations) this.#allocs.set(a.id, a);
    for (const id of [...this.#allocs.keys()]) if (!present.has(id)) this.#allocs.delete(id);
    for (const j of delta.jobs) this.#jobs.set(j.job.name, j);
    for (const o of delta.objects ?? []) this.#objects.set(objectKey(o.kind, o.name), o);
    // Jobs no allocation here belongs to any more are dropped, but only from a complete slice: in a partial one, a
    // job may already have come for allocations that have not yet (and it will not be sent again).
    if (delta.complete) {
      const used = new Set([...this.#allocs.values()].map((a) => a.jobName));
      for (const name of [...this.#jobs.keys()]) if (!used.has(name)) this.#jobs.delete(name);
      // Secrets and configs no task here uses any more are dropped too (one pass over the allocations, and none at
      // all on the usual node that holds no secret).
      if (this.#objects.size > 0) {
        const services = new Map<string, Set<string>>();
        for (const a of this.#allocs.values()) services.set(a.jobName, (services.get(a.jobName) ?? new Set()).add(a.service));
        const needed = new Set<string>();
        for (const r of this.#jobs.values()) for (const k of objectsUsed(r.job, services.get(r.job.name) ?? new Set())) needed.add(k);
        for (const k of [...this.#objects.keys()]) if (!needed.has(k)) this.#objects.delete(k);
      }
    }
    if (delta.catalog && delta.catalogKeys) {
      const keys = new Set(delta.catalogKeys);
      for (const e of delta.catalog) this.#catalog.set(e.key, e);
      for (const key of [...this.#catalog.keys()]) if (!keys.has(key)) this.#catalog.delete(key);
      this.#catalogIndex = delta.index;
    }
    this.#index = delta.index;
    this.#complete = delta.complete;
    return true;
  }

  get catalogIndex(): number {
    return this.#catalogIndex;
  }

  catalog(): CatalogService[] {
    return sortedEntries(this.#catalog.values());
  }

  catalogService(key: string): CatalogService | undefined {
    return this.#catalog.get(key);
  }

  allocationsOnNode(nodeId: string): Allocation[] {
    return nodeId === this.nodeId ? [...this.#allocs.values()] : [];
  }

  allocation(id: string): Allocation | undefined {
    return this.#allocs.get(id);
  }

  allocations(): Allocation[] {
    return [...this.#allocs.values()];
  }

  job(name: string): JobRecord | undefined {
    return this.#jobs.get(name);
  }

  object(kind: FileObjectKind, name: string): FileObjectRecord | undefined {
    return this.#objects.get(objectKey(kind, name));
  }

  jobs(): JobRecord[] {
    return [...this.#jobs.values()];
  }
}
