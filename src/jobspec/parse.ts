/**
 * Job files in, canonical jobs out.
 *
 *   text ─► size check ─► YAML (merge keys on) ─► drop harmless keys (warnings) ─► ${VAR} substitution
 *        ─► strict schema (zod) ─► conversion + semantic checks ─► Job
 *
 * Every problem becomes a JobIssue with the file, line, column and field path, and all of them are reported at
 * once. Nothing here touches the cluster: a file that fails changes nothing.
 */
import { LineCounter, parseDocument, isMap, isScalar, type Document } from 'yaml';
import type { ZodError } from 'zod';
import { JobSpecError, formatIssue, type JobIssue } from './errors.js';
import { interpolate, type Env } from './interpolate.js';
import { HARMLESS_KEYS, fileSchema, type ComposeFile, type ComposeService } from './schema.js';
import { parseBytes, parseCpuMillicores, parseDurationMs, splitCommand } from './units.js';
import type { BindMount, Constraint, HealthCheck, Job, PortMapping, Resources, RestartPolicy, ServiceSpec } from './types.js';
import { JOBSPEC_LIMITS } from './limits.js';

export interface ParseOptions {
  /** Shown in every message; its base name is the job's name when the file has none. */
  file: string;
  /** Variables for ${VAR} substitution (the CLI passes its environment). */
  env?: Env;
  /** `--name`: used when the file has no top-level `name`. */
  name?: string;
  /** Directory relative bind-mount sources are resolved against (the file's own directory). */
  baseDir?: string;
}

export interface ParseResult {
  job: Job;
  warnings: string[];
}

type Path = (string | number)[];

const NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;
const SIGNALS = new Set(['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGKILL', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGSTOP', 'SIGCONT', 'SIGALRM', 'SIGPWR']);

class Collector {
  readonly issues: JobIssue[] = [];
  readonly warnings: JobIssue[] = [];
  constructor(readonly file: string, readonly doc: Document | undefined, readonly lines: LineCounter) {}

  position(path: Path, key?: string): { line: number; column: number } {
    if (!this.doc) return { line: 0, column: 0 };
    if (key !== undefined) {
      const map = this.doc.getIn(path, true);
      if (isMap(map)) {
        for (const pair of map.items) {
          const k = pair.key;
          if (isScalar(k) && String(k.value) === key && k.range) return this.#pos(k.range[0]);
        }
      }
    }
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && node.range) return this.#pos(node.range[0]);
    }
    return { line: 0, column: 0 };
  }

  error(path: Path, message: string, key?: string): void {
    this.issues.push({ file: this.file, ...this.position(path, key), path: [...path, ...(key === undefined ? [] : [key])].join('.'), message });
  }

  warn(path: Path, message: string, key?: string): void {
    this.warnings.push({ file: this.file, ...this.position(path, key), path: [...path, ...(key === undefined ? [] : [key])].join('.'), message });
  }

  #pos(offset: number): { line: number; column: number } {
    const p = this.lines.linePos(offset);
    return { line: p.line, column: p.col };
  }
}

export function parseJobFile(text: string, options: ParseOptions): ParseResult {
  const file = options.file;
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > JOBSPEC_LIMITS.maxJobFileBytes) {
    throw new JobSpecError([{ file, line: 0, column: 0, path: '', message: `file is ${bytes} bytes; a job file may be at most ${JOBSPEC_LIMITS.maxJobFileBytes} bytes` }]);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, merge: true, prettyErrors: false, uniqueKeys: true });
  const c = new Collector(file, doc, lines);
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = lines.linePos(e.pos[0]);
      c.issues.push({ file, line: pos.line, column: pos.col, path: '', message: `YAML syntax error: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}` });
    }
    throw new JobSpecError(c.issues);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: JOBSPEC_LIMITS.maxYamlAliases });
  } catch (err) {
    throw new JobSpecError([{ file, line: 0, column: 0, path: '', message: `cannot read the YAML: ${err instanceof Error ? err.message : String(err)}` }]);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new JobSpecError([{ file, line: 1, column: 1, path: '', message: 'a job file must be a mapping with a "services" key' }]);
  }
  const tree = raw as Record<string, unknown>;
  dropHarmless(tree, c);
  const substituted = substitute(tree, [], options.env ?? {}, c);
  if (c.issues.length > 0) throw new JobSpecError(c.issues);
  const parsed = fileSchema.safeParse(substituted);
  if (!parsed.success) {
    reportZod(parsed.error, substituted, c);
    throw new JobSpecError(c.issues);
  }
  const job = convert(parsed.data, options, c);
  if (c.issues.length > 0 || job === undefined) throw new JobSpecError(c.issues);
  return { job, warnings: c.warnings.map(formatIssue) };
}

function dropHarmless(tree: Record<string, unknown>, c: Collector): void {
  for (const key of Object.keys(tree)) {
    if (key in HARMLESS_KEYS.file) {
      c.warn([], HARMLESS_KEYS.file[key]!, key);
      delete tree[key];
    } else if (key.startsWith('x-') && key !== 'x-shoal') {
      delete tree[key]; // Compose extension fields: anchors and tooling data, ignored by definition
    }
  }
  const services = tree['services'];
  if (typeof services !== 'object' || services === null || Array.isArray(services)) return;
  for (const [name, svc] of Object.entries(services as Record<string, unknown>)) {
    if (typeof svc !== 'object' || svc === null || Array.isArray(svc)) continue;
    const service = svc as Record<string, unknown>;
    for (const key of Object.keys(service)) {
      if (key in HARMLESS_KEYS.service) {
        c.warn(['services', name], HARMLESS_KEYS.service[key]!, key);
        delete service[key];
      } else if (key.startsWith('x-') && key !== 'x-shoal') {
        delete service[key];
      }
    }
    const deploy = service['deploy'];
    if (typeof deploy === 'object' && deploy !== null && !Array.isArray(deploy)) {
      for (const key of Object.keys(deploy)) {
        if (key in HARMLESS_KEYS.deploy) {
          c.warn(['services', name, 'deploy'], HARMLESS_KEYS.deploy[key]!, key);
          delete (deploy as Record<string, unknown>)[key];
        }
      }
    }
  }
}

function substitute(value: unknown, path: Path, env: Env, c: Collector): unknown {
  if (typeof value === 'string') {
    const r = interpolate(value, env);
    if ('error' in r) {
      c.error(path, r.error);
      return value;
    }
    return r.value;
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, [...path, i], env, c));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, [...path, k], env, c)]));
  }
  return value;
}

const UNSUPPORTED_HINTS: Record<string, string> = {
  secrets: 'secrets are not supported yet',
  configs: 'configs are not supported yet',
  networks: 'per-service networks are not supported: use network_mode: host or none',
  expose: '"expose" has no effect without service networks; use ports (host mode)',
  privileged: '"privileged" is not allowed',
  devices: 'devices are not supported',
  cap_add: 'capabilities are not supported yet',
  user: '"user" is not supported yet',
};

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function reportZod(error: ZodError, root: unknown, c: Collector): void {
  reportIssues(error.issues, [], root, c);
}

type ZodIssueList = ZodError['issues'];

/** The branch of a union that got furthest into the value is the one the author meant: report its issues. */
function bestBranch(branches: readonly ZodIssueList[]): ZodIssueList | undefined {
  let best: ZodIssueList | undefined;
  let bestDepth = 0;
  for (const branch of branches) {
    const depth = Math.max(0, ...branch.map((i) => i.path.length + (i.code === 'unrecognized_keys' ? 1 : 0)));
    if (depth > bestDepth) {
      best = branch;
      bestDepth = depth;
    }
  }
  return best;
}

function reportIssues(issues: ZodIssueList, base: Path, root: unknown, c: Collector): void {
  for (const issue of issues) {
    const path = [...base, ...issue.path.filter((p): p is string | number => typeof p !== 'symbol')];
    if (issue.code === 'invalid_union') {
      const branch = bestBranch(issue.errors as ZodIssueList[]);
      if (branch) {
        reportIssues(branch, path, root, c);
        continue;
      }
    }
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const hint = UNSUPPORTED_HINTS[key];
        c.error(path, hint ? `unsupported key "${key}": ${hint}` : `unknown key "${key}"`, key);
      }
    } else if (issue.code === 'invalid_type' && valueAt(root, path) === undefined) {
      c.error(path, `is required (expected ${issue.expected})`);
    } else if (issue.code === 'invalid_type' || issue.code === 'invalid_union') {
      c.error(path, `has the wrong type: got ${describeType(valueAt(root, path))}${issue.code === 'invalid_type' ? `, expected ${issue.expected}` : ''}`);
    } else {
      c.error(path, issue.message);
    }
  }
}

function asInt(value: unknown, path: Path, c: Collector, min: number, max: number, what: string): number | undefined {
  const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    c.error(path, `${what} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
    return undefined;
  }
  return n;
}

function unit<T>(result: T | string, path: Path, c: Collector): T | undefined {
  if (typeof result === 'string') {
    c.error(path, result);
    return undefined;
  }
  return result;
}

function toStringMap(value: Record<string, unknown> | string[] | undefined, path: Path, c: Collector, env: Env, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (value === undefined) return out;
  if (Array.isArray(value)) {
    value.forEach((entry, i) => {
      const eq = entry.indexOf('=');
      const key = eq < 0 ? entry : entry.slice(0, eq);
      if (key === '') {
        c.error([...path, i], `${what} entry "${entry}" has no name`);
        return;
      }
      // "KEY" alone takes the value from the environment, as Compose does.
      const v = eq < 0 ? env[key] : entry.slice(eq + 1);
      if (v !== undefined) out[key] = v;
    });
  } else {
    for (const [k, v] of Object.entries(value)) {
      if (v === null || v === undefined) {
        const fromEnv = env[k];
        if (fromEnv !== undefined) out[k] = fromEnv;
      } else out[k] = String(v);
    }
  }
  if (Object.keys(out).length > JOBSPEC_LIMITS.maxListEntries) c.error(path, `has ${Object.keys(out).length} entries; at most ${JOBSPEC_LIMITS.maxListEntries} are allowed`);
  return out;
}

function toArgv(value: string | (string | number)[] | undefined, path: Path, c: Collector): string[] | null {
  if (value === undefined) return null;
  if (Array.isArray(value)) return value.map(String);
  const split = splitCommand(value);
  if (typeof split === 'string') {
    c.error(path, split);
    return null;
  }
  return split;
}

function joinPath(base: string, rel: string): string {
  const parts = `${base}/${rel}`.split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return `/${out.join('/')}`;
}

function convertPorts(ports: ComposeService['ports'], path: Path, c: Collector): PortMapping[] {
  const out: PortMapping[] = [];
  (ports ?? []).forEach((p, i) => {
    const at = [...path, i];
    let target: number | undefined;
    let published: number | undefined;
    let protocol = 'tcp';
    if (typeof p === 'number' || typeof p === 'string') {
      const m = /^(?:(?:(\d+\.\d+\.\d+\.\d+):)?(\d+):)?(\d+)(?:\/(tcp|udp))?$/.exec(String(p).trim());
      if (!m) {
        c.error(at, `"${p}" is not a port mapping (expected "PUBLISHED:TARGET", "TARGET" or "PUBLISHED:TARGET/udp"; ranges are not supported)`);
        return;
      }
      if (m[1] !== undefined) c.warn(at, `host IP ${m[1]} is ignored: tasks bind the ports they publish on the node`);
      target = Number(m[3]);
      published = m[2] === undefined ? target : Number(m[2]);
      protocol = m[4] ?? 'tcp';
    } else {
      if (p.mode !== undefined && p.mode !== 'host') {
        c.error([...at, 'mode'], `port mode "${p.mode}" is not supported: Shoal publishes ports in host mode only (there is no routing mesh)`);
        return;
      }
      target = asInt(p.target, [...at, 'target'], c, 1, 65535, 'target port');
      published = p.published === undefined ? target : asInt(p.published, [...at, 'published'], c, 1, 65535, 'published port');
      protocol = p.protocol ?? 'tcp';
    }
    if (target === undefined || published === undefined) return;
    if (target < 1 || target > 65535 || published < 1 || published > 65535) {
      c.error(at, `ports must be between 1 and 65535, got ${published}:${target}`);
      return;
    }
    if (protocol !== 'tcp' && protocol !== 'udp') {
      c.error(at, `protocol must be tcp or udp, got "${protocol}"`);
      return;
    }
    if (out.some((o) => o.published === published && o.protocol === protocol)) {
      c.error(at, `host port ${published}/${protocol} is published twice`);
      return;
    }
    out.push({ target, published, protocol });
  });
  return out;
}

function convertVolumes(volumes: ComposeService['volumes'], path: Path, c: Collector, baseDir: string): BindMount[] {
  const out: BindMount[] = [];
  (volumes ?? []).forEach((v, i) => {
    const at = [...path, i];
    let source: string;
    let target: string;
    let readOnly: boolean;
    if (typeof v === 'string') {
      const parts = v.split(':');
      if (parts.length < 2 || parts.length > 3) {
        c.error(at, `"${v}" is not a bind mount (expected SOURCE:TARGET[:ro]); anonymous volumes are not supported`);
        return;
      }
      [source, target] = parts as [string, string];
      const mode = parts[2];
      if (mode !== undefined && mode !== 'ro' && mode !== 'rw') {
        c.error(at, `mount option "${mode}" is not supported (use ro or rw)`);
        return;
      }
      readOnly = mode === 'ro';
    } else {
      if (v.type !== 'bind') {
        c.error([...at, 'type'], `volume type "${v.type}" is not supported: only bind mounts are (named volumes need a volume driver Shoal does not have yet)`);
        return;
      }
      if (v.source === undefined) {
        c.error(at, 'a bind mount needs a source');
        return;
      }
      source = v.source;
      target = v.target;
      readOnly = v.read_only ?? false;
    }
    if (!(source.startsWith('/') || source.startsWith('.') || source.startsWith('~'))) {
      c.error(at, `"${source}" looks like a named volume; only bind mounts (absolute or ./relative paths) are supported`);
      return;
    }
    if (source.startsWith('~')) {
      c.error(at, `"${source}": "~" is not expanded on cluster nodes; use an absolute path`);
      return;
    }
    if (!target.startsWith('/')) {
      c.error(at, `mount target "${target}" must be an absolute path`);
      return;
    }
    out.push({ source: source.startsWith('/') ? joinPath('/', source) : joinPath(baseDir, source), target, readOnly });
  });
  return out;
}

function convertHealth(h: ComposeService['healthcheck'], path: Path, c: Collector): HealthCheck | null {
  if (h === undefined || h.disable === true) return null;
  let test: string[];
  if (h.test === undefined) {
    c.error(path, 'a healthcheck needs a "test" (or disable: true)');
    return null;
  }
  if (typeof h.test === 'string') test = ['CMD-SHELL', h.test];
  else {
    const list = h.test.map(String);
    if (list[0] === 'NONE') return null;
    if (list[0] !== 'CMD' && list[0] !== 'CMD-SHELL') {
      c.error([...path, 'test'], `a healthcheck test list must start with "CMD", "CMD-SHELL" or "NONE", got "${list[0] ?? ''}"`);
      return null;
    }
    if (list.length < 2) {
      c.error([...path, 'test'], `"${list[0]}" needs a command after it`);
      return null;
    }
    test = list;
  }
  const L = JOBSPEC_LIMITS;
  const ms = (v: unknown, key: string, dflt: number, min: number): number => {
    if (v === undefined) return dflt;
    const d = unit(parseDurationMs(v), [...path, key], c);
    if (d === undefined) return dflt;
    if (d < min || d > L.maxHealthIntervalMs) c.error([...path, key], `must be between ${min} ms and ${L.maxHealthIntervalMs / 1000} s, got ${d} ms`);
    return d;
  };
  return {
    test,
    intervalMs: ms(h.interval, 'interval', 30_000, L.minHealthIntervalMs),
    timeoutMs: ms(h.timeout, 'timeout', 30_000, L.minHealthIntervalMs),
    retries: h.retries === undefined ? 3 : asInt(h.retries, [...path, 'retries'], c, 1, L.maxHealthRetries, 'retries') ?? 3,
    startPeriodMs: ms(h.start_period, 'start_period', 0, 0),
  };
}

const CONSTRAINT_RE = /^\s*(node\.(?:name|id|role|hostname|labels\.[A-Za-z0-9_.\-/]+))\s*(==|!=)\s*(.+?)\s*$/;

function convertConstraints(list: string[] | undefined, path: Path, c: Collector): Constraint[] {
  const out: Constraint[] = [];
  (list ?? []).forEach((text, i) => {
    const m = CONSTRAINT_RE.exec(text);
    if (!m) {
      c.error([...path, i], `"${text}" is not a constraint (expected node.name==X, node.labels.KEY==V or !=; attributes: node.name, node.id, node.role, node.hostname, node.labels.*)`);
      return;
    }
    const attribute = m[1] === 'node.hostname' ? 'node.name' : (m[1] as string);
    out.push({ attribute, op: m[2] as '==' | '!=', value: m[3] as string });
  });
  // Constraints that no node can ever satisfy are an error now rather than a job that never places.
  for (let i = 0; i < out.length; i++) {
    for (let j = i + 1; j < out.length; j++) {
      const a = out[i]!;
      const b = out[j]!;
      if (a.attribute !== b.attribute) continue;
      const contradict = (a.op === '==' && b.op === '==' && a.value !== b.value) || (a.op !== b.op && a.value === b.value);
      if (contradict) c.error([...path, j], `"${a.attribute}${a.op}${a.value}" and "${b.attribute}${b.op}${b.value}" can never both hold: no node could run this service`);
    }
  }
  return out;
}

function convertResources(r: { cpus?: string | number; memory?: string | number } | undefined, path: Path, c: Collector): Resources {
  const cpu = r?.cpus === undefined ? 0 : unit(parseCpuMillicores(r.cpus), [...path, 'cpus'], c) ?? 0;
  const memory = r?.memory === undefined ? 0 : unit(parseBytes(r.memory), [...path, 'memory'], c) ?? 0;
  return { cpuMillicores: cpu, memoryBytes: memory };
}

function convertRestart(r: NonNullable<ComposeService['deploy']>['restart_policy'], path: Path, c: Collector, batch: boolean): RestartPolicy {
  const condition = r?.condition ?? (batch ? 'on-failure' : 'any');
  if (condition !== 'none' && condition !== 'on-failure' && condition !== 'any') {
    c.error([...path, 'condition'], `must be none, on-failure or any, got "${condition}"`);
  }
  const delayMs = r?.delay === undefined ? 5_000 : unit(parseDurationMs(r.delay), [...path, 'delay'], c) ?? 5_000;
  const windowMs = r?.window === undefined ? 0 : unit(parseDurationMs(r.window), [...path, 'window'], c) ?? 0;
  const maxAttempts = r?.max_attempts === undefined ? null : asInt(r.max_attempts, [...path, 'max_attempts'], c, 0, JOBSPEC_LIMITS.maxRestartAttempts, 'max_attempts') ?? null;
  return { condition: condition as RestartPolicy['condition'], delayMs, maxAttempts, windowMs };
}

function convertService(name: string, s: ComposeService, path: Path, c: Collector, env: Env, baseDir: string, batch: boolean): ServiceSpec | undefined {
  if (!NAME_RE.test(name) || name.length > 63) c.error(['services'], `service name "${name}" must be 1-63 lower-case letters, digits, "-" or "_", starting with a letter or digit`, name);
  const driverName = s['x-shoal']?.driver ?? 'docker';
  if (driverName !== 'docker' && driverName !== 'process') c.error([...path, 'x-shoal', 'driver'], `driver must be "docker" or "process", got "${driverName}"`);
  const driver = driverName === 'process' ? 'process' : 'docker';
  const command = toArgv(s.command, [...path, 'command'], c);
  const entrypoint = toArgv(s.entrypoint, [...path, 'entrypoint'], c);
  if (driver === 'docker' && s.image === undefined) c.error(path, 'needs an "image" (or x-shoal.driver: process with a "command")', undefined);
  if (driver === 'process') {
    if (s.image !== undefined) c.error([...path, 'image'], 'a process service runs a command on the node and takes no image; remove "image" or use the docker driver');
    if (command === null || command.length === 0) c.error(path, 'a process service needs a "command"');
    if (entrypoint !== null) c.error([...path, 'entrypoint'], 'a process service takes no entrypoint; put the whole argv in "command"');
  }
  const networkMode = s.network_mode ?? 'host';
  if (networkMode !== 'host' && networkMode !== 'none') {
    c.error([...path, 'network_mode'], `network_mode "${networkMode}" is not supported: bridge and overlay networks are refused until Shoal has its own; use host or none`);
  }
  const ports = convertPorts(s.ports, [...path, 'ports'], c);
  if (networkMode === 'none' && ports.length > 0) c.error([...path, 'ports'], 'a service with network_mode: none cannot publish ports');
  if (driver === 'process' && networkMode === 'none') c.error([...path, 'network_mode'], 'the process driver runs tasks in the node\'s network; network_mode: none needs the docker driver');
  const d = s.deploy ?? {};
  const mode = d.mode ?? 'replicated';
  if (mode !== 'replicated' && mode !== 'global') c.error([...path, 'deploy', 'mode'], `must be replicated or global, got "${mode}"`);
  let replicas = 1;
  if (mode === 'global') {
    if (d.replicas !== undefined) c.error([...path, 'deploy', 'replicas'], 'a global service runs one task on every eligible node; it takes no replica count');
    replicas = 0;
  } else if (d.replicas !== undefined) {
    replicas = asInt(d.replicas, [...path, 'deploy', 'replicas'], c, 0, JOBSPEC_LIMITS.maxReplicas, 'replicas') ?? 1;
  }
  const placement = d.placement ?? {};
  const maxPerNode = placement.max_replicas_per_node === undefined ? 0 : asInt(placement.max_replicas_per_node, [...path, 'deploy', 'placement', 'max_replicas_per_node'], c, 1, JOBSPEC_LIMITS.maxReplicas, 'max_replicas_per_node') ?? 0;
  const spread = (placement.preferences ?? []).map((p, i) => {
    if (!/^node\.(labels\.[A-Za-z0-9_.\-/]+|name|id)$/.test(p.spread)) c.error([...path, 'deploy', 'placement', 'preferences', i, 'spread'], `can spread only across node.labels.<key>, node.name or node.id, got "${p.spread}"`);
    return p.spread;
  });
  const reservations = convertResources(d.resources?.reservations, [...path, 'deploy', 'resources', 'reservations'], c);
  const limits = convertResources(d.resources?.limits, [...path, 'deploy', 'resources', 'limits'], c);
  if (limits.cpuMillicores > 0 && reservations.cpuMillicores > limits.cpuMillicores) c.error([...path, 'deploy', 'resources', 'reservations', 'cpus'], 'reserves more CPU than its limit allows');
  if (limits.memoryBytes > 0 && reservations.memoryBytes > limits.memoryBytes) c.error([...path, 'deploy', 'resources', 'reservations', 'memory'], 'reserves more memory than its limit allows');
  const stopGraceMs = s.stop_grace_period === undefined ? 10_000 : unit(parseDurationMs(s.stop_grace_period), [...path, 'stop_grace_period'], c) ?? 10_000;
  if (stopGraceMs > JOBSPEC_LIMITS.maxStopGraceMs) c.error([...path, 'stop_grace_period'], `must be at most ${JOBSPEC_LIMITS.maxStopGraceMs / 1000} s`);
  let stopSignal = (s.stop_signal ?? 'SIGTERM').toUpperCase();
  if (!stopSignal.startsWith('SIG')) stopSignal = `SIG${stopSignal}`;
  if (!SIGNALS.has(stopSignal)) c.error([...path, 'stop_signal'], `"${s.stop_signal}" is not a signal Shoal can send (${[...SIGNALS].join(', ')})`);
  const labels = { ...toStringMap(s.labels, [...path, 'labels'], c, env, 'label'), ...toStringMap(d.labels, [...path, 'deploy', 'labels'], c, env, 'label') };
  return {
    name,
    driver,
    image: s.image ?? null,
    command,
    entrypoint,
    workingDir: s.working_dir ?? null,
    environment: toStringMap(s.environment, [...path, 'environment'], c, env, 'environment'),
    ports,
    networkMode: networkMode === 'none' ? 'none' : 'host',
    volumes: convertVolumes(s.volumes, [...path, 'volumes'], c, baseDir),
    labels,
    healthcheck: convertHealth(s.healthcheck, [...path, 'healthcheck'], c),
    stopGraceMs,
    stopSignal,
    deploy: {
      mode: mode === 'global' ? 'global' : 'replicated',
      replicas,
      placement: { constraints: convertConstraints(placement.constraints, [...path, 'deploy', 'placement', 'constraints'], c), maxReplicasPerNode: maxPerNode, spread },
      resources: { reservations, limits },
      restartPolicy: convertRestart(d.restart_policy, [...path, 'deploy', 'restart_policy'], c, batch),
    },
  };
}

function convert(file: ComposeFile, options: ParseOptions, c: Collector): Job | undefined {
  const base = options.file.split('/').pop() ?? options.file;
  const fallback = base.replace(/\.(ya?ml|json)$/i, '');
  const name = file.name ?? options.name ?? fallback;
  if (!NAME_RE.test(name) || name.length > 63) {
    c.error(file.name !== undefined ? ['name'] : [], `job name "${name}" must be 1-63 lower-case letters, digits, "-" or "_", starting with a letter or digit${file.name === undefined && options.name === undefined ? ' (it came from the file name; set a top-level "name" or pass --name)' : ''}`);
  }
  if (file.networks !== undefined) c.error([], 'top-level networks are not supported: bridge and overlay networks are refused until Shoal has its own; use network_mode: host or none', 'networks');
  if (file.volumes !== undefined) c.error([], 'named volumes are not supported: use bind mounts', 'volumes');
  const type = file['x-shoal']?.type ?? 'service';
  if (type !== 'service' && type !== 'batch') c.error(['x-shoal', 'type'], `job type must be service or batch, got "${type}"`);
  const entries = Object.entries(file.services);
  if (entries.length === 0) c.error(['services'], 'a job needs at least one service');
  if (entries.length > JOBSPEC_LIMITS.maxServicesPerJob) c.error(['services'], `a job may have at most ${JOBSPEC_LIMITS.maxServicesPerJob} services`);
  const services: ServiceSpec[] = [];
  for (const [svcName, svc] of entries) {
    if (svc === null) {
      c.error(['services', svcName], 'is empty: a service needs at least an image or a command');
      continue;
    }
    const spec = convertService(svcName, svc, ['services', svcName], c, options.env ?? {}, options.baseDir ?? '/', type === 'batch');
    if (spec) services.push(spec);
  }
  return c.issues.length === 0 ? { name, type: type === 'batch' ? 'batch' : 'service', services } : undefined;
}
