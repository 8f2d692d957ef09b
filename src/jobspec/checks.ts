/**
 * Rules of a canonical job that no single field can check on its own: which driver takes an image, what a global
 * service may say about replicas, which host ports collide, which constraints contradict each other. They run on the
 * canonical `Job`, so a Compose file (parse.ts) and a canonical JSON job (canonical.ts) obey the very same rules; each
 * caller maps the canonical field path to where the field came from.
 */
import { JOBSPEC_LIMITS } from './limits.js';
import type { Job, ServiceSpec } from './types.js';

/** Job and service names: they end up in allocation ids, container names and DNS labels. */
export const NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;
export const NAME_MAX_CHARS = 63;

/** Signals a task may be stopped with. */
export const SIGNALS: readonly string[] = ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGKILL', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGSTOP', 'SIGCONT', 'SIGALRM', 'SIGPWR'];

/** Attributes replicas can be spread across. */
export const SPREAD_RE = /^node\.(labels\.[A-Za-z0-9_.\-/]+|name|id)$/;

/** Attributes a canonical constraint can test (a Compose file's `node.hostname` is `node.name`). */
export const CONSTRAINT_ATTRIBUTE_RE = /^node\.(name|id|role|labels\.[A-Za-z0-9_.\-/]+)$/;

/** A path in the canonical job, e.g. `['services', 0, 'deploy', 'replicas']`. */
export type CanonicalPath = (string | number)[];

export type ReportIssue = (path: CanonicalPath, message: string) => void;

export function isValidName(name: string): boolean {
  return NAME_RE.test(name) && name.length <= NAME_MAX_CHARS;
}

/** Job-wide rules. Service paths start with `['services', index]`. */
export function checkJob(job: Job, report: ReportIssue): void {
  checkServiceCount(job.services.length, report);
  const seen = new Map<string, number>();
  job.services.forEach((service, i) => {
    const first = seen.get(service.name);
    if (first !== undefined) report(['services', i, 'name'], `service name "${service.name}" is used twice (also by services.${first})`);
    else seen.set(service.name, i);
    checkService(service, (path, message) => report(['services', i, ...path], message));
  });
}

export function checkServiceCount(count: number, report: ReportIssue): void {
  if (count === 0) report(['services'], 'a job needs at least one service');
  if (count > JOBSPEC_LIMITS.maxServicesPerJob) report(['services'], `a job may have at most ${JOBSPEC_LIMITS.maxServicesPerJob} services`);
}

/** Rules within one service. Paths are relative to the service. */
export function checkService(s: ServiceSpec, report: ReportIssue): void {
  if (s.driver === 'docker' && s.image === null) report(['image'], 'needs an "image" (or x-shoal.driver: process with a "command")');
  if (s.driver === 'process') {
    if (s.image !== null) report(['image'], 'a process service runs a command on the node and takes no image; remove "image" or use the docker driver');
    if (s.command === null || s.command.length === 0) report(['command'], 'a process service needs a "command"');
    if (s.entrypoint !== null) report(['entrypoint'], 'a process service takes no entrypoint; put the whole argv in "command"');
    if (s.networkMode === 'none') report(['networkMode'], 'the process driver runs tasks in the node\'s network; network_mode: none needs the docker driver');
  }
  if (s.networkMode === 'none' && s.ports.length > 0) report(['ports'], 'a service with network_mode: none cannot publish ports');
  s.ports.forEach((p, j) => {
    if (s.ports.findIndex((o) => o.published === p.published && o.protocol === p.protocol) < j) report(['ports', j], `host port ${p.published}/${p.protocol} is published twice`);
  });
  if (s.deploy.mode === 'global' && s.deploy.replicas !== 0) report(['deploy', 'replicas'], 'a global service runs one task on every eligible node; it takes no replica count');
  // Constraints that no node can ever satisfy are an error now rather than a job that never places.
  const constraints = s.deploy.placement.constraints;
  for (let j = 0; j < constraints.length; j++) {
    const b = constraints[j]!;
    const a = constraints.slice(0, j).find((a) => a.attribute === b.attribute && ((a.op === '==' && b.op === '==' && a.value !== b.value) || (a.op !== b.op && a.value === b.value)));
    if (a) report(['deploy', 'placement', 'constraints', j], `"${a.attribute}${a.op}${a.value}" and "${b.attribute}${b.op}${b.value}" can never both hold: no node could run this service`);
  }
  const spread = s.deploy.placement.spread;
  if (spread.length > JOBSPEC_LIMITS.maxSpreadPreferences) report(['deploy', 'placement', 'spread'], `at most ${JOBSPEC_LIMITS.maxSpreadPreferences} spread preferences are allowed, got ${spread.length}`);
  spread.forEach((attr, j) => {
    if (spread.indexOf(attr) < j) report(['deploy', 'placement', 'spread', j], `"${attr}" is spread across twice`);
  });
  const { reservations, limits } = s.deploy.resources;
  if (limits.cpuMillicores > 0 && reservations.cpuMillicores > limits.cpuMillicores) report(['deploy', 'resources', 'reservations', 'cpuMillicores'], 'reserves more CPU than its limit allows');
  if (limits.memoryBytes > 0 && reservations.memoryBytes > limits.memoryBytes) report(['deploy', 'resources', 'reservations', 'memoryBytes'], 'reserves more memory than its limit allows');
}
