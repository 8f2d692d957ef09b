import { parseJobFile } from '../../src/jobspec/index.js';
import type { Job } from '../../src/jobspec/types.js';
import { ClusterState } from '../../src/state/index.js';
import { SchedulerHarness } from '../../src/scheduler/index.js';
import { Random } from '../../src/lib/random.js';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

export function nodeId(i: number): string {
  return i.toString(16).padStart(64, '0');
}

export function addNode(h: SchedulerHarness, i: number, opts: { cpu?: number; mem?: number; labels?: Record<string, string>; drivers?: string[] } = {}) {
  return h.apply({
    type: 'node.upsert',
    node: { id: nodeId(i), name: `n${i}`, address: `127.0.0.${i}:7000`, labels: opts.labels ?? {}, capacity: { cpuMillicores: opts.cpu ?? 4000, memoryBytes: opts.mem ?? 8 * GiB }, drivers: opts.drivers ?? ['docker', 'process'], roles: [] },
  });
}

export function job(yaml: string, name = 'app'): Job {
  return parseJobFile(yaml, { file: `${name}.yaml` }).job;
}

export function harness(seed = 1): SchedulerHarness {
  return new SchedulerHarness(new ClusterState(), Random.fromSeed(seed));
}

export function running(h: SchedulerHarness, jobName: string, service?: string) {
  return h.state.allocationsOfJob(jobName).filter((a) => a.desiredStatus === 'run' && (service === undefined || a.service === service));
}

/** A job of one image service with `replicas` small replicas (a few millicores, 1 MiB each). */
export function smallApp(replicas: number, name = 'app'): string {
  return `
name: ${name}
services:
  web:
    image: nginx
    deploy:
      replicas: ${replicas}
      resources: { reservations: { cpus: "0.01", memory: 1M } }
`;
}
