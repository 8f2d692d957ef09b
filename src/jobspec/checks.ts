/**
 * Rules of a canonical job that no single field can check on its own: which driver takes an image, what a global
 * service may say about replicas, which published ports collide, which constraints contradict each other, which
 * networks a service may name and which names answer on each network, which secrets and configs a service may use and
 * where their files may go. They run on the canonical `Job`, so a Compose file (parse.ts) and a canonical JSON job
 * (canonical.ts) obey the very same rules; each caller maps the canonical field path to where the field came from.
 */
import { JOBSPEC_LIMITS } from './limits.js';
import { normaliseAbsolute, normaliseRelative, type FileObjectKind } from './file-objects.js';
import type { DriverName, ExposedPort, Job, ServiceSpec, StateSpec, TaskOptions } from './types.js';
import { isWellFormed, utf8Length } from '../lib/utf8.js';

/** Job and service names: they end up in allocation ids, container names and DNS labels. */
export const NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;
export const NAME_MAX_CHARS = 63;

/**
 * Secret and config names, as keys of the job file and in the cluster: Docker's rule for secret names (letters of
 * either case, digits, `_`, `.` and `-`). A job's own are named `<job>_<key>` in the cluster, so that fits too.
 */
export const FILE_OBJECT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
export const FILE_OBJECT_NAME_MAX_CHARS = 64;
const FILE_OBJECT_NAME_RULE = `1-${FILE_OBJECT_NAME_MAX_CHARS} letters, digits, "_", "." or "-", starting with a letter or digit`;

export function isValidFileObjectName(name: string): boolean {
  return FILE_OBJECT_NAME_RE.test(name) && name.length <= FILE_OBJECT_NAME_MAX_CHARS;
}

/** Signals a task may be stopped with. */
export const SIGNALS: readonly string[] = ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGKILL', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGSTOP', 'SIGCONT', 'SIGALRM', 'SIGPWR'];

/** Attributes replicas can be spread across. */
export const SPREAD_RE = /^node\.(labels\.[A-Za-z0-9_.\-/]+|name|id)$/;

/** Attributes a canonical constraint can test (a Compose file's `node.hostname` is `node.name`). */
export const CONSTRAINT_ATTRIBUTE_RE = /^node\.(name|id|role|labels\.[A-Za-z0-9_.\-/]+)$/;

/**
 * Node label keys, as an agent's configuration allows them (src/runtime/config.ts): what `x-shoal.state.spread`
 * names.
 */
const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_.\-/]*$/;

/** The replica counts a partition may have: odd, from 1 to the limit. */
const REPLICA_COUNTS = Array.from({ length: Math.ceil(JOBSPEC_LIMITS.maxPartitionReplicas / 2) }, (_, i) => 2 * i + 1);

/** `a, b or c`, as messages list choices. */
export function oneOf(choices: readonly (string | number)[]): string {
  return choices.length < 2 ? choices.join('') : `${choices.slice(0, -1).join(', ')} or ${String(choices[choices.length - 1])}`;
}

/** A path in the canonical job, e.g. `['services', 0, 'deploy', 'replicas']`. */
export type CanonicalPath = (string | number)[];

export type ReportIssue = (path: CanonicalPath, message: string) => void;

/**
 * How a message names another field (the first of two that clash): the canonical path by default; parse.ts names
 * the Compose key or entry it came from instead (`services.api.ports.0`).
 */
export type DescribePath = (path: CanonicalPath) => string;

const canonicalPath: DescribePath = (path) => path.join('.');

/** An IPv4 address (dotted quad) or an IPv6 address (hex groups, `::` allowed once). No I/O: the core cannot use node:net. */
export function isIpAddress(text: string): boolean {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) return v4.slice(1).every((o) => Number(o) <= 255 && (o === '0' || !o.startsWith('0')));
  if (!/^[0-9a-fA-F:]+$/.test(text) || !text.includes(':')) return false;
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  if (groups.some((g) => g.length === 0 || g.length > 4)) return false;
  return halves.length === 2 ? groups.length < 8 : groups.length === 8;
}

/** The network every service without `networks` is on; every job has it. */
export const DEFAULT_NETWORK = 'default';

/** Code-point order, the same on every machine (localeCompare is not). */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The order of a service's exposed ports: by port, then protocol. */
export function compareExposed(a: ExposedPort, b: ExposedPort): number {
  return a.port - b.port || compareNames(a.protocol, b.protocol);
}

export function isValidName(name: string): boolean {
  return NAME_RE.test(name) && name.length <= NAME_MAX_CHARS;
}

/**
 * Whether a service runs a task. Every stateless service does; a stateful one with neither image nor command (nor
 * entrypoint) does not: it is a replicated store alone, used through the API.
 */
export function hasTask(s: ServiceSpec): boolean {
  return s.state === undefined || s.image !== null || s.command !== null || s.entrypoint !== null;
}

/**
 * Job-wide rules. Service paths start with `['services', index]`. `describe` names the first of two clashing fields
 * in messages.
 */
export function checkJob(job: Job, report: ReportIssue, describe: DescribePath = canonicalPath): void {
  checkServiceCount(job.services.length, report);
  checkJobRules(job, report, describe);
}

export function checkServiceCount(count: number, report: ReportIssue): void {
  if (count === 0) report(['services'], 'a job needs at least one service');
  if (count > JOBSPEC_LIMITS.maxServicesPerJob) report(['services'], `a job may have at most ${JOBSPEC_LIMITS.maxServicesPerJob} services`);
}

/**
 * checkJob without the service count. A Compose file counts its service entries, empty ones included (those are
 * reported on their own and missing from the converted job), so parse.ts counts them itself and runs the rest here.
 */
export function checkJobRules(job: Job, report: ReportIssue, describe: DescribePath = canonicalPath): void {
  const seen = new Map<string, number>();
  job.services.forEach((service, i) => {
    const first = seen.get(service.name);
    if (first !== undefined) report(['services', i, 'name'], `service name "${service.name}" is used twice (also by ${describe(['services', first])})`);
    else seen.set(service.name, i);
    checkService(service, (path, message) => report(['services', i, ...path], message));
  });
  checkNetworks(job, report);
  checkVolumes(job, report);
  checkFileObjects(job, report, describe);
  checkPublishedPorts(job, report, describe);
  checkAliases(job, report, describe);
}

/** The job's volumes, and each mount by its type: a bind from an absolute path, a volume the job declares, a tmpfs. */
function checkVolumes(job: Job, report: ReportIssue): void {
  const names = new Set<string>();
  (job.volumes ?? []).forEach((v, k) => {
    if (names.has(v.name)) report(['volumes', k, 'name'], `volume "${v.name}" is listed twice`);
    names.add(v.name);
    if (v.external !== null && !isValidName(v.external)) report(['volumes', k, 'external'], `external volume name "${v.external}" must be 1-63 lower-case letters, digits, "-" or "_"`);
  });
  if (names.size > JOBSPEC_LIMITS.maxNetworks) report(['volumes'], `a job may have at most ${JOBSPEC_LIMITS.maxNetworks} volumes, got ${names.size}`);
  job.services.forEach((s, i) => {
    s.volumes.forEach((m, k) => {
      const at = ['services', i, 'volumes', k];
      if (m.type === undefined && !m.source.startsWith('/')) report([...at, 'source'], `a bind mount source must be an absolute path, got "${m.source}"`);
      if (m.type === 'volume' && !names.has(m.source)) report([...at, 'source'], `volume "${m.source}" is not one of the job's volumes: declare it under the top-level "volumes"`);
      if (m.type === 'tmpfs' && (m.source !== '' || m.readOnly)) report(at, 'a tmpfs mount has no source and is writable');
      if (m.type === 'tmpfs' && s.driver === 'process') report(at, 'a tmpfs mount is for containers: a process sees its node\'s file systems');
      if (m.propagation !== undefined && m.type !== undefined) report([...at, 'propagation'], 'propagation is for a bind mount');
      if (m.propagation !== undefined && s.driver === 'process') report([...at, 'propagation'], 'propagation is for a container\'s bind mount: a process sees its node\'s mounts as they are');
      if (m.noCopy !== undefined && m.type !== 'volume') report([...at, 'noCopy'], 'noCopy is for a volume mount');
      if (m.noCopy === true && s.driver === 'process') report([...at, 'noCopy'], 'noCopy is for a container: a process task\'s volume is a directory, with nothing to copy into it');
      if ((m.tmpfsSizeBytes !== undefined || m.tmpfsMode !== undefined) && m.type !== 'tmpfs') report(at, 'a size and mode are for a tmpfs mount');
    });
  });
}

/** The job's networks, and that its services name only those. */
function checkNetworks(job: Job, report: ReportIssue): void {
  const names = new Set<string>();
  job.networks.forEach((network, k) => {
    if (names.has(network.name)) report(['networks', k, 'name'], `network "${network.name}" is listed twice`);
    names.add(network.name);
  });
  if (!names.has(DEFAULT_NETWORK)) report(['networks'], `the job's networks must include "${DEFAULT_NETWORK}"`);
  if (job.networks.length > JOBSPEC_LIMITS.maxNetworks) report(['networks'], `a job may have at most ${JOBSPEC_LIMITS.maxNetworks} networks ("${DEFAULT_NETWORK}" included), got ${job.networks.length}`);
  const known = [...names].sort(compareNames).join(', ');
  job.services.forEach((service, i) => {
    service.networks.forEach((n, k) => {
      if (!names.has(n.name)) report(['services', i, 'networks', k], `network "${n.name}" is not one of the job's networks (${known}): declare it under the top-level "networks"`);
    });
    // An internal bridge has no way to the host's ports: Docker publishes nothing for a container on internal ones only.
    const internal = new Set(job.networks.filter((n) => n.internal).map((n) => n.name));
    const hostPort = service.ports.findIndex((p) => p.mode === 'host');
    if (service.networkMode === 'bridge' && hostPort >= 0 && service.networks.length > 0 && service.networks.every((n) => internal.has(n.name))) {
      report(['services', i, 'ports', hostPort], 'a container on internal networks only cannot publish a port in host mode: publish it in ingress mode, or add a network that is not internal');
    }
  });
}

/**
 * Published ports that would collide. An ingress port answers on every node, so it belongs to one entry of the whole
 * job: no other entry, of any mode, may publish it. A host-mode port is taken only on the nodes that run the service,
 * so two services may both publish it (the scheduler places them on different nodes, as Swarm does); one service
 * may not publish it twice.
 */
function checkPublishedPorts(job: Job, report: ReportIssue, describe: DescribePath): void {
  const first = new Map<string, { at: CanonicalPath; service: number; ingress: boolean }>();
  job.services.forEach((service, i) => {
    service.ports.forEach((p, j) => {
      const key = `${p.published}/${p.protocol}`;
      const at = ['services', i, 'ports', j];
      const before = first.get(key);
      const ingress = p.mode === 'ingress';
      if (before && (before.ingress || ingress || before.service === i)) {
        report(at, `published port ${key} is published twice in the job: also by ${describe(before.at)}`);
      } else if (!before || ingress) first.set(key, { at, service: i, ingress });
    });
  });
}

/**
 * On one network, each name resolves to one service: no alias may be another service's name there, and no two
 * services may share an alias there. (A service may repeat its own name as an alias: it answers to it anyway.)
 */
function checkAliases(job: Job, report: ReportIssue, describe: DescribePath): void {
  const members = new Map<string, number[]>();
  job.services.forEach((service, i) => {
    for (const n of service.networks) {
      const list = members.get(n.name);
      if (list === undefined) members.set(n.name, [i]);
      else if (list[list.length - 1] !== i) list.push(i);
    }
  });
  for (const [network, services] of members) {
    const owners = new Map<string, CanonicalPath>();
    for (const i of services) owners.set(job.services[i]!.name, ['services', i]);
    const aliases = new Map<string, { service: number; at: CanonicalPath }>();
    for (const i of services) {
      const service = job.services[i]!;
      const k = service.networks.findIndex((n) => n.name === network);
      service.networks[k]!.aliases.forEach((alias, m) => {
        if (alias === service.name) return;
        const at = ['services', i, 'networks', k, 'aliases', m];
        const owner = owners.get(alias);
        const before = aliases.get(alias);
        if (owner) report(at, `alias "${alias}" on network "${network}" is the name of another service on it (${describe(owner)})`);
        else if (before && before.service !== i) report(at, `alias "${alias}" on network "${network}" is also an alias of ${describe(before.at)}: on one network a name may lead to one service only`);
        else if (!before) aliases.set(alias, { service: i, at });
      });
    }
  }
}

/** Rules within one service. Paths are relative to the service. */
export function checkService(s: ServiceSpec, report: ReportIssue): void {
  s.ports.forEach((p, j) => {
    if (p.mode === 'ingress' && p.protocol === 'udp') report(['ports', j, 'mode'], `port ${p.published}/udp: the routing mesh carries TCP only; publish a UDP port with mode: host (long syntax)`);
  });
  const task = hasTask(s);
  if (s.driver === 'docker' && s.image === null && task) {
    report(['image'], s.state === undefined
      ? 'needs an "image" (or x-shoal.driver: process with a "command")'
      : 'needs an "image" for the task it runs beside each replica (or x-shoal.driver: process with a "command"); a stateful service with neither image nor command is a replicated store alone');
  }
  if (s.driver === 'process') {
    if (s.image !== null) report(['image'], 'a process service runs a command on the node and takes no image; remove "image" or use the docker driver');
    if (task && (s.command === null || s.command.length === 0)) report(['command'], 'a process service needs a "command"');
    if (s.entrypoint !== null) report(['entrypoint'], 'a process service takes no entrypoint; put the whole argv in "command"');
    if (s.networkMode === 'none') report(['networkMode'], 'the process driver runs tasks in the node\'s network; network_mode: none needs the docker driver');
    if (s.networkMode === 'bridge') report(['networkMode'], 'the process driver runs tasks in the node\'s network; a bridge needs the docker driver');
    if (s.options) checkProcessOptions(s.options, report);
  }
  checkFileRefTargets(s, report);
  if (s.networkMode === 'none' && s.ports.length > 0) report(['ports'], 'a service with network_mode: none cannot publish ports');
  if (s.networkMode === 'none' && s.expose.length > 0) report(['expose'], 'a service with network_mode: none cannot expose ports');
  if (s.ports.length > JOBSPEC_LIMITS.maxListEntries) report(['ports'], `has ${s.ports.length} entries; at most ${JOBSPEC_LIMITS.maxListEntries} are allowed`);
  if (s.expose.length > JOBSPEC_LIMITS.maxListEntries) report(['expose'], `has ${s.expose.length} entries; at most ${JOBSPEC_LIMITS.maxListEntries} are allowed`);
  const exposed = new Set<string>();
  s.expose.forEach((p, j) => {
    const key = `${p.port}/${p.protocol}`;
    if (exposed.has(key)) report(['expose', j], `port ${key} is exposed twice`);
    exposed.add(key);
  });
  checkServiceNetworks(s, report);
  if (s.deploy.mode === 'global' && s.deploy.replicas !== 0 && s.state === undefined) report(['deploy', 'replicas'], 'a global service runs one task on every eligible node; it takes no replica count');
  if (s.state !== undefined) checkState(s, s.state, task, report);
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

/** What `deploy.replicas` on a stateful service is told. */
export const STATEFUL_REPLICAS = 'a stateful service takes no replica count: its task count is partitions × replicas (set them in x-shoal.state)';

/**
 * The rules of `x-shoal.state`: an odd replica count, a partition count that matches the scheme, distinct and valid
 * names of partitions and collections, within their limits; no `deploy.replicas`, no global mode, and no published
 * port without a task to publish it. Ranges of single numbers are checked where they are read (parse.ts, canonical.ts).
 */
function checkState(s: ServiceSpec, state: StateSpec, task: boolean, report: ReportIssue): void {
  const L = JOBSPEC_LIMITS;
  if (state.replicas % 2 === 0) {
    report(['state', 'replicas'], `replicas must be odd (${oneOf(REPLICA_COUNTS)}), got ${state.replicas}: a partition needs a majority of its replicas, and an even count survives no more failures than the odd count below it`);
  }
  const scheme = state.scheme;
  if (scheme.kind === 'named') {
    const names = scheme.names;
    if (names.length === 0) report(['state', 'scheme', 'names'], 'a named scheme needs "names": one partition per name');
    if (names.length > L.maxPartitionsPerService) report(['state', 'scheme', 'names'], `a stateful service may have at most ${L.maxPartitionsPerService} partitions, got ${names.length} names`);
    else if (state.partitions !== names.length) report(['state', 'partitions'], `a named scheme has one partition per name: partitions must be ${names.length}, the number of names, got ${state.partitions}`);
    names.forEach((name, k) => {
      const problem = stateTextProblem('partition', name, L.maxPartitionNameBytes);
      if (problem !== undefined) report(['state', 'scheme', 'names', k], problem);
      else if (names.indexOf(name) < k) report(['state', 'scheme', 'names', k], `partition name "${name}" is listed twice`);
    });
  } else if (scheme.kind === 'singleton' && state.partitions !== 1) {
    report(['state', 'partitions'], `a singleton scheme has one partition: partitions must be 1, got ${state.partitions}`);
  }
  if (state.spread !== undefined && !LABEL_KEY_RE.test(state.spread)) {
    report(['state', 'spread'], `spread names a node label, such as zone: "${state.spread}" is not a label key (letters, digits, "_", ".", "-", "/", starting with a letter or digit)`);
  }
  const collections = state.collections;
  if (collections.length > L.maxCollectionsPerService) report(['state', 'collections'], `a stateful service may declare at most ${L.maxCollectionsPerService} collections, got ${collections.length}`);
  collections.forEach((c, k) => {
    const problem = stateTextProblem('collection', c.name, L.maxCollectionNameBytes);
    if (problem !== undefined) report(['state', 'collections', k, 'name'], problem);
    else if (collections.findIndex((d) => d.name === c.name) < k) report(['state', 'collections', k, 'name'], `collection "${c.name}" is declared twice`);
  });
  if (s.deploy.replicas !== 0) report(['deploy', 'replicas'], STATEFUL_REPLICAS);
  if (s.deploy.mode === 'global') report(['deploy', 'mode'], 'a stateful service cannot be global: its tasks are the replicas of its partitions (partitions × replicas), placed on distinct nodes');
  if (!task && s.ports.length > 0) report(['ports'], 'a stateful service without a task (no image, no command) has nothing to publish a port for: remove "ports", or give it a task');
}

/** Why a partition's or a collection's name cannot be used (as src/partitions checks them), if it cannot. */
function stateTextProblem(kind: 'partition' | 'collection', text: string, maxBytes: number): string | undefined {
  if (text.length === 0) return `a ${kind} name must not be empty`;
  const chars = [...text];
  const shown = chars.length > 40 ? `${chars.slice(0, 40).join('')}...` : text;
  if (!isWellFormed(text)) return `${kind} name "${shown}" contains a lone UTF-16 surrogate, which has no UTF-8 form`;
  const bytes = utf8Length(text);
  if (bytes > maxBytes) return `${kind} name "${shown}" is ${bytes} bytes in UTF-8; at most ${maxBytes} are allowed`;
  return undefined;
}

/**
 * A process task honours `user`, `ulimits` (through prlimit) and the pids limit (through its cgroup; a node that has
 * neither refuses the task when it starts, with the reason); every other option is a container's, and is refused.
 */
function checkProcessOptions(o: TaskOptions, report: ReportIssue): void {
  const refuse = (field: keyof TaskOptions, set: boolean, why: string): void => {
    if (set) report(['options', field], `${why} (a process task honours "user", "ulimits" and the pids limit only; use the docker driver)`);
  };
  refuse('capAdd', o.capAdd.length > 0, 'a process runs with the agent\'s capabilities');
  refuse('capDrop', o.capDrop.length > 0, 'a process runs with the agent\'s capabilities');
  refuse('sysctls', Object.keys(o.sysctls).length > 0, 'a process shares its node\'s kernel settings');
  refuse('init', o.init, 'the agent itself reaps a process task and its children');
  refuse('hostname', o.hostname !== null, 'a process has its node\'s host name');
  refuse('extraHosts', o.extraHosts.length > 0, 'a process reads its node\'s /etc/hosts');
  refuse('dns', o.dns.length > 0, 'a process uses its node\'s resolver (and SHOAL_DNS for the cluster\'s names)');
  refuse('dnsSearch', o.dnsSearch.length > 0, 'a process uses its node\'s resolver');
  refuse('dnsOptions', o.dnsOptions.length > 0, 'a process uses its node\'s resolver');
  refuse('readOnly', o.readOnly, 'a process shares its node\'s file systems');
  refuse('platform', o.platform !== null, 'a process runs its node\'s own binaries');
  refuse('runtime', o.runtime !== null, 'an OCI runtime runs containers');
}

/**
 * Why a reference's canonical target cannot be used, if it cannot. A container's is an absolute path to a file in
 * it; a process task's is a path inside SHOAL_SECRETS_DIR (SHOAL_CONFIGS_DIR), the only place its files are written:
 * the rest of the file system it sees is its node's own. Either is written normalised, so that two references to
 * one path are seen to clash.
 */
function targetProblem(kind: FileObjectKind, driver: DriverName, target: string): string | undefined {
  if (driver === 'process') {
    if (target.startsWith('/')) return `target "${target}": a process task sees the node's own file system: its secrets are files in SHOAL_SECRETS_DIR (configs: SHOAL_CONFIGS_DIR), named by a relative target`;
    const normal = normaliseRelative(target);
    if (normal.split('/')[0] === '..') return `target "${target}" would leave SHOAL_${kind.toUpperCase()}S_DIR: a relative target may not go above it with ".."`;
    if (normal === '') return `target "${target}" names no file`;
    if (normal !== target) return `target "${target}" must be written normalised, as "${normal}"`;
    return undefined;
  }
  if (!target.startsWith('/')) return `a container's ${kind} target must be an absolute path, got "${target}"`;
  const normal = normaliseAbsolute(target);
  if (normal === '/') return `target "${target}" names no file`;
  if (normal !== target) return `target "${target}" must be written normalised, as "${normal}"`;
  return undefined;
}

/** The targets of a service's secrets and configs, by its driver. */
function checkFileRefTargets(s: ServiceSpec, report: ReportIssue): void {
  for (const kind of ['secret', 'config'] as const) {
    const plural = `${kind}s` as const;
    const refs = s[plural] ?? [];
    if (refs.length > JOBSPEC_LIMITS.maxFileRefsPerService) report([plural], `a service may use at most ${JOBSPEC_LIMITS.maxFileRefsPerService} ${plural}, got ${refs.length}`);
    refs.forEach((ref, j) => {
      const problem = targetProblem(kind, s.driver, ref.target);
      if (problem !== undefined) report([plural, j, 'target'], problem);
    });
  }
}

/**
 * The job's secrets and configs, and the services' use of them: each names one the job declares, and no two of a
 * service's files land on one path (a container's secrets and configs share its file system; a process task's are in
 * two directories).
 */
function checkFileObjects(job: Job, report: ReportIssue, describe: DescribePath): void {
  const declared = { secret: new Set<string>(), config: new Set<string>() };
  for (const kind of ['secret', 'config'] as const) {
    const plural = `${kind}s` as const;
    const list = job[plural] ?? [];
    const limit = kind === 'secret' ? JOBSPEC_LIMITS.maxSecretsPerJob : JOBSPEC_LIMITS.maxConfigsPerJob;
    if (list.length > limit) report([plural], `a job may declare at most ${limit} ${plural}, got ${list.length}`);
    const clusterNames = new Map<string, { at: CanonicalPath; external: boolean }>();
    list.forEach((o, k) => {
      const at = [plural, k];
      if (declared[kind].has(o.name)) report([...at, 'name'], `${kind} "${o.name}" is listed twice`);
      declared[kind].add(o.name);
      if (!isValidFileObjectName(o.name)) {
        report([...at, 'name'], `${kind} name "${o.name}" must be ${FILE_OBJECT_NAME_RULE}`);
        return;
      }
      // (A name made from a job name that is not valid is reported with the job's name.)
      if (!isValidFileObjectName(o.clusterName) && !(o.clusterName === `${job.name}_${o.name}` && !isValidName(job.name))) {
        const hint = !o.external && o.clusterName === `${job.name}_${o.name}` ? ` (a job's own ${kind} is named <job>_<key> in the cluster: shorten the key, or set "name")` : '';
        report([...at, 'clusterName'], `${kind} "${o.name}": its name in the cluster, "${o.clusterName}", must be ${FILE_OBJECT_NAME_RULE}${hint}`);
        return;
      }
      // Two external entries may well name one object; one the job provides must be the only one of its name.
      const before = clusterNames.get(o.clusterName);
      if (before && !(before.external && o.external)) {
        report([...at, 'clusterName'], `${kind} "${o.name}" has the cluster name "${o.clusterName}" of ${describe(before.at)} too: a ${kind} the job provides must be the only one of its name`);
      } else if (!before) clusterNames.set(o.clusterName, { at, external: o.external });
    });
  }
  job.services.forEach((s, i) => {
    // A container's files share one name space; a process task's secrets and configs are in separate directories.
    const targets: { kind: FileObjectKind; target: string; at: CanonicalPath }[] = [];
    for (const kind of ['secret', 'config'] as const) {
      const plural = `${kind}s` as const;
      const known = [...declared[kind]].sort(compareNames).join(', ');
      (s[plural] ?? []).forEach((ref, j) => {
        const at = ['services', i, plural, j];
        if (!declared[kind].has(ref.source)) {
          report([...at, 'source'], `${kind} "${ref.source}" is not one of the job's ${plural} (${known === '' ? 'it declares none' : known}): declare it under the top-level "${plural}"`);
        }
        if (targetProblem(kind, s.driver, ref.target) !== undefined) return;
        const clash = targets.find((t) => (s.driver === 'docker' || t.kind === kind) && (t.target === ref.target || ref.target.startsWith(`${t.target}/`) || t.target.startsWith(`${ref.target}/`)));
        if (clash === undefined) targets.push({ kind, target: ref.target, at });
        else if (clash.target === ref.target) report([...at, 'target'], `${kind} target "${ref.target}" is also the target of ${describe(clash.at)}`);
        else report([...at, 'target'], `${kind} target "${ref.target}" and the target "${clash.target}" of ${describe(clash.at)} are one inside the other`);
      });
    }
  });
}

function checkServiceNetworks(s: ServiceSpec, report: ReportIssue): void {
  // A Compose file cannot say both (it is an error there); a canonical job must not either.
  if (s.networkMode === 'none' && s.networks.length > 0) report(['networks'], 'a service with network_mode: none is on no network');
  if (s.networkMode === 'bridge' && s.networks.length === 0) report(['networks'], 'a container on a bridge must be on at least one network');
  if (s.networks.length > JOBSPEC_LIMITS.maxNetworksPerService) report(['networks'], `a service may be on at most ${JOBSPEC_LIMITS.maxNetworksPerService} networks, got ${s.networks.length}`);
  const names = new Set<string>();
  s.networks.forEach((n, k) => {
    if (names.has(n.name)) report(['networks', k], `network "${n.name}" is listed twice`);
    names.add(n.name);
    if (n.aliases.length > JOBSPEC_LIMITS.maxAliasesPerNetwork) report(['networks', k, 'aliases'], `a service may have at most ${JOBSPEC_LIMITS.maxAliasesPerNetwork} aliases on one network, got ${n.aliases.length}`);
    n.aliases.forEach((alias, m) => {
      if (n.aliases.indexOf(alias) < m) report(['networks', k, 'aliases', m], `alias "${alias}" is repeated on network "${n.name}"`);
    });
  });
}
