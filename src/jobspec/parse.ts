/**
 * Job files in, canonical jobs out.
 *
 *   text ─► size check ─► YAML (merge keys on; `mode: 0440` kept octal) ─► drop harmless keys (warnings)
 *        ─► ${VAR} substitution ─► strict schema (zod) ─► conversion + semantic checks
 *        ─► Job, and where the contents of its own secrets and configs are (for the CLI to read)
 *
 * A canonical job in JSON (what `shoal job run --output` prints) goes to canonical.ts instead; the cross-field
 * rules of checks.ts apply to both.
 *
 * Every problem becomes a JobIssue with the file, line, column and field path, and all of them are reported at
 * once. Nothing here touches the cluster: a file that fails changes nothing.
 */
import { LineCounter, parseDocument, isMap, isScalar, type Document } from 'yaml';
import { JobSpecError, formatIssue, formatWhere, type JobIssue } from './errors.js';
import { interpolate, type Env } from './interpolate.js';
import { HARMLESS_KEYS, fileSchema, type ComposeFile, type ComposeFileObject, type ComposeNetwork, type ComposeService, type ComposeState } from './schema.js';
import { parseBytes, parseCpuMillicores, parseDurationMs, splitCommand } from './units.js';
import { BIND_PROPAGATIONS, COLLECTION_KINDS, STATE_SCHEMES, type BindPropagation, type CollectionKind } from './types.js';
import type { BindMount, Constraint, DriverName, ExposedPort, FileObjectSource, FileObjectSpec, FileRef, HealthCheck, Job, NetworkSpec, PortMapping, Resources, RestartPolicy, ServiceNetwork, ServiceSpec, StateCollection, StateScheme, StateSpec, TaskOptions, VolumeSpec } from './types.js';
import { JOBSPEC_LIMITS } from './limits.js';
import { DEFAULT_NETWORK, SIGNALS, SPREAD_RE, STATEFUL_REPLICAS, checkJobRules, checkServiceCount, compareExposed, compareNames, isIpAddress, isValidName, oneOf, type CanonicalPath } from './checks.js';
import { reportZodIssues } from './zod-issues.js';
import { markOrigin, mergeCompose, originKey } from './merge.js';
import { looksCanonical, parseCanonicalJob } from './canonical.js';
import { DEFAULT_FILE_MODE, MAX_FILE_OWNER_ID, isPlausibleMode, markOctalModes, parseFileMode, resolveTarget, type FileObjectKind } from './file-objects.js';

export interface ParseOptions {
  /** Shown in every message; its base name is the job's name when the file has none. */
  file: string;
  /** Variables for ${VAR} substitution (the CLI passes its environment). */
  env?: Env;
  /** `--name`: used when the file has no top-level `name`. */
  name?: string;
  /** Directory relative bind-mount sources are resolved against (the file's own directory). */
  baseDir?: string;
  /**
   * Reads a file named by the job file (`env_file`), on the CLI's machine; throws (with an errno `code`) when it
   * cannot. Absent: a job file that names one is refused (this core does no I/O itself).
   */
  readFile?: (path: string) => string;
  /** The CLI user's home directory, for a bind source (or a secret's file) written `~/...`; absent: refused. */
  home?: string;
}

export interface ParseResult {
  job: Job;
  warnings: string[];
  /**
   * The contents to read for the job's own secrets and configs (those not `external`), one per declared entry, in
   * the job's order (secrets, then configs, each by name); the caller (the CLI) reads them and registers them with
   * the job. Nothing here reads them: a file is a path, an environment variable a name. Empty for canonical JSON.
   */
  contents: FileObjectSource[];
}

type Path = (string | number)[];


/** One YAML file of a job, for locating what it set. */
interface Source {
  file: string;
  doc: Document;
  lines: LineCounter;
  /**
   * Where the file wrote the x-shoal fields it gave as dotted keys (`x-shoal.state:`), by their folded path
   * (`originKey` of `services.db.x-shoal.state`): the path of the dotted key's value.
   */
  dotted?: Map<string, Path>;
}

/** A path of the folded tree as the file writes it, through its dotted x-shoal keys; a key may be one of them. */
function undotted(source: Source, path: Path, key: string | undefined): { path: Path; key: string | undefined } {
  const dotted = source.dotted;
  if (dotted === undefined) return { path, key };
  const whole = key === undefined ? undefined : dotted.get(originKey([...path, key]));
  if (whole !== undefined) return { path: whole.slice(0, -1), key: String(whole[whole.length - 1]) };
  for (let n = path.length; n > 0; n--) {
    const at = dotted.get(originKey(path.slice(0, n)));
    if (at !== undefined) return { path: [...at, ...path.slice(n)], key };
  }
  return { path, key };
}

class Collector {
  readonly issues: JobIssue[] = [];
  readonly warnings: JobIssue[] = [];
  #source: Source;

  /**
   * `originOf` says which of several merged files set a path (the last one); one file: always the first. `inFile`
   * gives a path's path in that file (a list entry may have another index there).
   */
  constructor(readonly file: string, doc: Document | undefined, lines: LineCounter, readonly sources: Source[] = [], readonly originOf: (path: Path) => number = () => 0, readonly inFile: (path: Path) => Path = (path) => path) {
    this.#source = { file, doc: doc as Document, lines };
  }

  #sourceOf(path: Path, key?: string): Source | undefined {
    if (this.sources.length === 0) return this.#source.doc ? this.#source : undefined;
    return this.sources[this.originOf(key === undefined ? path : [...path, key])] ?? this.sources[0];
  }

  /** This file, for a merge of several to locate what it set. */
  get source(): Source {
    return this.#source;
  }

  /** The x-shoal field at `folded` was written as the dotted key at `written`. */
  noteDotted(folded: Path, written: Path): void {
    (this.#source.dotted ??= new Map()).set(originKey(folded), written);
  }

  position(merged: Path, mergedKey?: string): { line: number; column: number } {
    const source = this.#sourceOf(merged, mergedKey);
    if (!source) return { line: 0, column: 0 };
    const { path, key } = undotted(source, this.inFile(merged), mergedKey);
    const doc = source.doc;
    const pos = (offset: number) => {
      const p = source.lines.linePos(offset);
      return { line: p.line, column: p.col };
    };
    if (key !== undefined) {
      const map = doc.getIn(path, true);
      if (isMap(map)) {
        for (const pair of map.items) {
          const k = pair.key;
          if (isScalar(k) && String(k.value) === key && k.range) return pos(k.range[0]);
        }
      }
    }
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && node.range) return pos(node.range[0]);
    }
    return { line: 0, column: 0 };
  }

  error(path: Path, message: string, key?: string): void {
    this.issues.push({ file: this.#sourceOf(path, key)?.file ?? this.file, ...this.position(path, key), path: [...path, ...(key === undefined ? [] : [key])].join('.'), message });
  }

  warn(path: Path, message: string, key?: string): void {
    this.warnings.push({ file: this.#sourceOf(path, key)?.file ?? this.file, ...this.position(path, key), path: [...path, ...(key === undefined ? [] : [key])].join('.'), message });
  }

  /** `file:line:column: path` of a field, as an issue there would name it (for errors found later, by the CLI). */
  where(path: Path, key?: string): string {
    return formatWhere({ file: this.#sourceOf(path, key)?.file ?? this.file, ...this.position(path, key), path: [...path, ...(key === undefined ? [] : [key])].join('.') });
  }
}

/** One job file read as YAML, its harmless keys dropped (with their warnings): a tree to convert, or to merge. */
function readYaml(text: string, file: string, bytesLimit = JOBSPEC_LIMITS.maxJobFileBytes): { source: Source; tree: Record<string, unknown>; c: Collector } {
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > bytesLimit) {
    throw new JobSpecError([{ file, line: 0, column: 0, path: '', message: `file is ${bytes} bytes; a job file may be at most ${bytesLimit} bytes` }]);
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
  markOctalModes(doc, tree);
  dropHarmless(tree, c);
  return { source: c.source, tree, c };
}

export function parseJobFile(text: string, options: ParseOptions): ParseResult {
  // Canonical JSON names itself and is already converted: no substitution, no defaults, no --name.
  if (new TextEncoder().encode(text).length <= JOBSPEC_LIMITS.maxJobFileBytes && looksCanonical(text, options.file)) return { job: parseCanonicalJob(text, options.file), warnings: [], contents: [] };
  const { tree, c } = readYaml(text, options.file);
  return convertTree(tree, c, options);
}

/**
 * Several Compose files merged in order, as `docker stack deploy -c a -c b` merges them: mappings key by key, a later
 * scalar or list replacing an earlier one, except the lists Compose appends to (ports, expose, volumes, dns...) and
 * those it merges by key (environment, labels, sysctls). The job's name comes from the first file; an error names
 * the file that set the key in error last.
 */
export function parseJobFiles(files: { file: string; text: string }[], options: Omit<ParseOptions, 'file'>): ParseResult {
  if (files.length === 0) throw new JobSpecError([{ file: '', line: 0, column: 0, path: '', message: 'no job file given' }]);
  if (files.length === 1) return parseJobFile(files[0]!.text, { ...options, file: files[0]!.file });
  const read = files.map((f) => {
    if (looksCanonical(f.text, f.file)) throw new JobSpecError([{ file: f.file, line: 1, column: 1, path: '', message: 'a canonical JSON job cannot be merged with other files; give it alone' }]);
    return readYaml(f.text, f.file);
  });
  const origins = new Map<string, number>();
  const moved = new Map<string, Path>();
  let tree: unknown = read[0]!.tree;
  markOrigin(origins, [], tree, 0);
  for (let i = 1; i < read.length; i++) tree = mergeCompose(tree, read[i]!.tree, [], i, origins, moved);
  const originOf = (path: Path): number => {
    for (let n = path.length; n >= 0; n--) {
      const i = origins.get(originKey(path.slice(0, n)));
      if (i !== undefined) return i;
    }
    return 0;
  };
  const inFile = (path: Path): Path => {
    for (let n = path.length; n > 0; n--) {
      const at = moved.get(originKey(path.slice(0, n)));
      if (at !== undefined) return [...at, ...path.slice(n)];
    }
    return path;
  };
  const c = new Collector(files[0]!.file, undefined, read[0]!.source.lines, read.map((r) => r.source), originOf, inFile);
  for (const r of read) c.warnings.push(...r.c.warnings);
  const result = convertTree(tree as Record<string, unknown>, c, { ...options, file: files[0]!.file });
  return result;
}

function convertTree(tree: Record<string, unknown>, c: Collector, options: ParseOptions): ParseResult {
  const substituted = substitute(tree, [], options.env ?? {}, c);
  if (c.issues.length > 0) throw new JobSpecError(c.issues);
  const parsed = fileSchema.safeParse(substituted);
  if (!parsed.success) {
    reportZodIssues(parsed.error, substituted, (path, message, key) => c.error(path, message, key), UNSUPPORTED_HINTS);
    throw new JobSpecError(c.issues);
  }
  const converted = convert(parsed.data, options, c);
  if (c.issues.length > 0 || converted === undefined) throw new JobSpecError(c.issues);
  return { job: converted.job, warnings: c.warnings.map(formatIssue), contents: converted.contents };
}

/**
 * `x-shoal.driver: process` (a dotted key) means the same as `x-shoal: { driver: process }`: fold the dotted form in,
 * so it is validated like the nested one instead of being dropped as an unknown extension field.
 */
function foldDottedShoalKeys(map: Record<string, unknown>, path: Path, c: Collector): void {
  for (const key of Object.keys(map)) {
    if (!key.startsWith('x-shoal.')) continue;
    const field = key.slice('x-shoal.'.length);
    const nested = map['x-shoal'] ?? {};
    if (typeof nested !== 'object' || nested === null || Array.isArray(nested)) continue; // the schema reports it
    if (field in nested) {
      c.error(path, `"${key}" repeats x-shoal.${field}, which is also set in the x-shoal mapping`, key);
      continue;
    }
    map['x-shoal'] = { ...nested, [field]: map[key] };
    delete map[key];
    c.noteDotted([...path, 'x-shoal', field], [...path, key]);
  }
}

function dropHarmless(tree: Record<string, unknown>, c: Collector): void {
  foldDottedShoalKeys(tree, [], c);
  for (const key of Object.keys(tree)) {
    if (key in HARMLESS_KEYS.file) {
      c.warn([], HARMLESS_KEYS.file[key]!, key);
      delete tree[key];
    } else if (key.startsWith('x-') && key !== 'x-shoal') {
      delete tree[key]; // Compose extension fields: anchors and tooling data, ignored by definition
    }
  }
  dropExtensions(tree['networks']);
  dropExtensions(tree['secrets']);
  dropExtensions(tree['configs']);
  const services = tree['services'];
  if (typeof services !== 'object' || services === null || Array.isArray(services)) return;
  for (const [name, svc] of Object.entries(services as Record<string, unknown>)) {
    if (typeof svc !== 'object' || svc === null || Array.isArray(svc)) continue;
    const service = svc as Record<string, unknown>;
    foldDottedShoalKeys(service, ['services', name], c);
    for (const key of Object.keys(service)) {
      if (key in HARMLESS_KEYS.service) {
        c.warn(['services', name], HARMLESS_KEYS.service[key]!, key);
        delete service[key];
      } else if (key.startsWith('x-') && key !== 'x-shoal') {
        delete service[key];
      }
    }
    const networks = service['networks'];
    if (typeof networks === 'object' && networks !== null && !Array.isArray(networks)) dropExtensions(networks);
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

/** Drops `x-*` fields from each entry of a mapping of network (secret, config) definitions, as Compose ignores them. */
function dropExtensions(map: unknown): void {
  if (typeof map !== 'object' || map === null || Array.isArray(map)) return;
  for (const entry of Object.values(map)) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) continue;
    for (const key of Object.keys(entry)) if (key.startsWith('x-')) delete (entry as Record<string, unknown>)[key];
  }
}

function substitute(value: unknown, path: Path, env: Env, c: Collector): unknown {
  if (typeof value === 'string') {
    const r = interpolate(value, env);
    if ('error' in r) {
      c.error(path, r.error);
      return value;
    }
    for (const name of new Set(r.unset ?? [])) c.warn(path, `variable ${name} is not set: an empty string is used (as Compose does)`);
    return r.value;
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, [...path, i], env, c));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, [...path, k], env, c)]));
  }
  return value;
}

const RESOURCES = 'resource limits and reservations are set with deploy.resources (as docker stack deploy requires)';
const UNSUPPORTED_HINTS: Record<string, string> = {
  cpus: RESOURCES, cpu_count: RESOURCES, cpu_percent: RESOURCES, cpu_shares: RESOURCES, cpu_period: RESOURCES, cpu_quota: RESOURCES,
  mem_limit: RESOURCES, mem_reservation: RESOURCES, memswap_limit: RESOURCES,
  pids_limit: 'the limit is deploy.resources.limits.pids (as docker stack deploy requires)',
  scale: 'the replica count is deploy.replicas',
  include: 'give each file with -c (shoal job run -c a.yml -c b.yml), as docker stack deploy takes them',
  extends: 'docker stack deploy does not support it either: merge files with -c instead',
  volumes_from: 'share a named volume between the services instead',
  // Only deploy.resources.reservations.devices reaches the schema: a service's own `devices` is dropped before, with
  // a warning, as docker stack deploy ignores it.
  devices: 'Shoal does not reserve devices (GPUs) for tasks',
};

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

/** The mappings, and for each the index of the entry it came from (entries in error are skipped). */
function convertPorts(ports: ComposeService['ports'], path: Path, c: Collector): { ports: PortMapping[]; from: number[] } {
  const out: PortMapping[] = [];
  const from: number[] = [];
  (ports ?? []).forEach((p, i) => {
    const at = [...path, i];
    let target: number | undefined;
    let published: number | undefined;
    let protocol: string;
    // The short syntax publishes through the routing mesh, as in Swarm; so does the long one unless it says host.
    let mode: PortMapping['mode'] = 'ingress';
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
      if (p.mode !== undefined && p.mode !== 'ingress' && p.mode !== 'host') {
        c.error([...at, 'mode'], `port mode must be ingress or host, got "${p.mode}"`);
        return;
      }
      if (p.mode === 'host') mode = 'host';
      if (p.host_ip !== undefined) c.warn(at, `host IP ${p.host_ip} is ignored: tasks bind the ports they publish on the node`, 'host_ip');
      if (p.name !== undefined) c.warn(at, '"name" of a port is ignored', 'name');
      if (p.app_protocol !== undefined) c.warn(at, '"app_protocol" is ignored: the mesh carries TCP as it is', 'app_protocol');
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
    if (protocol === 'udp' && mode === 'ingress') {
      if (typeof p === 'object' && p.mode === 'ingress') {
        c.error([...at, 'mode'], `port ${published}/udp: the routing mesh carries TCP only; publish a UDP port with mode: host`);
        return;
      }
      // Compose's default for UDP would be the mesh, which carries TCP only: keep the file working, on the nodes
      // that run the task, and say so.
      c.warn(at, `port ${published}/udp is published in host mode (on the nodes that run the task): the routing mesh carries TCP only`);
      mode = 'host';
    }
    out.push({ target, published, protocol, mode });
    from.push(i);
  });
  return { ports: out, from };
}

/** Exposed ports, sorted by port then protocol, and for each the index of the entry it came from. */
function convertExpose(expose: ComposeService['expose'], path: Path, c: Collector): { expose: ExposedPort[]; from: number[] } {
  const entries: { port: ExposedPort; from: number }[] = [];
  (expose ?? []).forEach((e, i) => {
    const text = String(e).trim();
    if (/^\d+-\d+(\/\w+)?$/.test(text)) {
      c.error([...path, i], `"${text}": port ranges are not supported; list each port`);
      return;
    }
    const m = /^(\d+)(?:\/(\w+))?$/.exec(text);
    if (!m) {
      c.error([...path, i], `"${text}" is not a port (expected 3000, "3000/tcp" or "53/udp")`);
      return;
    }
    const port = Number(m[1]);
    const protocol = m[2] ?? 'tcp';
    if (port < 1 || port > 65535) {
      c.error([...path, i], `ports must be between 1 and 65535, got ${port}`);
      return;
    }
    if (protocol !== 'tcp' && protocol !== 'udp') {
      c.error([...path, i], `protocol must be tcp or udp, got "${protocol}"`);
      return;
    }
    entries.push({ port: { port, protocol }, from: i });
  });
  entries.sort((a, b) => compareExposed(a.port, b.port)); // stable: of two equal entries, the later stays second
  return { expose: entries.map((e) => e.port), from: entries.map((e) => e.from) };
}

/** `"true"`/`"false"` as well as booleans: what a `${VAR}` leaves is a string. */
function asBool(value: boolean | string | undefined, path: Path, c: Collector): boolean {
  if (value === undefined || typeof value === 'boolean') return value ?? false;
  if (value === 'true' || value === 'false') return value === 'true';
  c.error(path, `must be true or false, got "${value}"`);
  return false;
}

const IGNORED_NETWORK_KEYS = ['attachable', 'labels', 'driver_opts', 'enable_ipv4', 'enable_ipv6'] as const;

/** The top-level `networks`, sorted by name, `default` added when the file does not configure it. */
function convertJobNetworks(networks: ComposeFile['networks'], c: Collector): NetworkSpec[] {
  const out: NetworkSpec[] = [];
  for (const [name, def] of Object.entries(networks ?? {})) {
    if (!isValidName(name)) c.error(['networks'], `network name "${name}" must be 1-63 lower-case letters, digits, "-" or "_", starting with a letter or digit`, name);
    out.push(convertNetwork(name, def ?? {}, ['networks', name], c));
  }
  if (!out.some((n) => n.name === DEFAULT_NETWORK)) out.push({ name: DEFAULT_NETWORK, external: null, internal: false });
  return out.sort((a, b) => compareNames(a.name, b.name));
}

function convertNetwork(name: string, def: ComposeNetwork, path: Path, c: Collector): NetworkSpec {
  // `external: { name: X }` is Compose's deprecated spelling of `external: true` with `name: X`.
  const externalName = typeof def.external === 'object' ? def.external.name : undefined;
  const external = typeof def.external === 'object' || asBool(def.external, [...path, 'external'], c);
  if (external) {
    // As Compose: a network made outside the file is used as it is, so nothing about it may be configured here.
    for (const key of Object.keys(def)) {
      if (key !== 'external' && key !== 'name') c.error(path, `an external network takes no other key than "name": remove "${key}" (it is configured where the network is created)`, key);
    }
    if (externalName !== undefined && def.name !== undefined && def.name !== externalName) {
      c.error(path, `external.name "${externalName}" and name "${def.name}" disagree; use name alone (external.name is deprecated)`, 'name');
    }
    const cluster = def.name ?? externalName ?? name;
    if (!isValidName(cluster)) c.error(def.name !== undefined ? [...path, 'name'] : path, `external network name "${cluster}" must be 1-63 lower-case letters, digits, "-" or "_", starting with a letter or digit`);
    return { name, external: cluster, internal: false };
  }
  if (def.driver !== undefined && def.driver !== 'overlay' && def.driver !== 'bridge') {
    c.warn([...path, 'driver'], `network driver "${def.driver}" is ignored: Shoal connects the job's networks itself`);
  }
  for (const key of IGNORED_NETWORK_KEYS) if (def[key] !== undefined) c.warn(path, `"${key}" is ignored: Shoal connects the job's networks itself`, key);
  if (def.name !== undefined) {
    c.warn(path, `"name" is ignored: a network of this job is named <job>_${name} in the cluster; to share a network between jobs, create it with \`shoal network create\` and mark it external: true`, 'name');
  }
  if (def.ipam !== undefined) c.error(path, '"ipam" is not supported: Shoal assigns the addresses on its networks itself', 'ipam');
  return { name, external: null, internal: asBool(def.internal, [...path, 'internal'], c) };
}

const IGNORED_SERVICE_NETWORK_KEYS = ['priority', 'gw_priority', 'link_local_ips', 'mac_address', 'driver_opts', 'interface_name'] as const;

/** Where a service's canonical networks came from in the file. */
interface NetworkOrigins {
  /** Per canonical network, the list index or the mapping key it came from. */
  networks: (string | number)[];
  /** Per canonical network, per canonical alias, the index in the file's `aliases`. */
  aliases: number[][];
}

/** A service's `networks` (list or mapping), sorted by name; `default` when it names none. */
function convertServiceNetworks(s: ComposeService, path: Path, c: Collector): { networks: ServiceNetwork[]; origins: NetworkOrigins } {
  if (s.network_mode !== undefined && s.networks !== undefined) {
    c.error(path, 'network_mode and networks cannot both be given (as in Compose): a service on networks is reached through them; remove one', 'network_mode');
  }
  // As in Compose, network_mode: none puts the service on no network at all.
  if (s.network_mode === 'none') return { networks: [], origins: { networks: [], aliases: [] } };
  const entries: { network: ServiceNetwork; from: string | number; aliasesFrom: number[] }[] = [];
  if (Array.isArray(s.networks)) {
    s.networks.forEach((name, i) => entries.push({ network: { name, aliases: [] }, from: i, aliasesFrom: [] }));
  } else if (s.networks !== undefined) {
    for (const [name, def] of Object.entries(s.networks)) {
      const at = [...path, 'networks', name];
      const aliases: { alias: string; from: number }[] = [];
      (def?.aliases ?? []).forEach((alias, m) => {
        if (isValidName(alias)) aliases.push({ alias, from: m });
        else c.error([...at, 'aliases', m], `alias "${alias}" must be 1-63 lower-case letters, digits, "-" or "_", starting with a letter or digit`);
      });
      for (const key of ['ipv4_address', 'ipv6_address'] as const) {
        if (def?.[key] !== undefined) c.error(at, `"${key}" is not supported: Shoal assigns the addresses on its networks itself`, key);
      }
      for (const key of IGNORED_SERVICE_NETWORK_KEYS) if (def?.[key] !== undefined) c.warn(at, `"${key}" is ignored: Shoal connects the job's networks itself`, key);
      aliases.sort((a, b) => compareNames(a.alias, b.alias)); // stable: of a repeated alias, the later entry stays second
      entries.push({ network: { name, aliases: aliases.map((a) => a.alias) }, from: name, aliasesFrom: aliases.map((a) => a.from) });
    }
  }
  // Compose puts a service that names no network on the default one (an empty list included).
  if (entries.length === 0) return { networks: [{ name: DEFAULT_NETWORK, aliases: [] }], origins: { networks: [], aliases: [[]] } };
  entries.sort((a, b) => compareNames(a.network.name, b.network.name));
  return { networks: entries.map((e) => e.network), origins: { networks: entries.map((e) => e.from), aliases: entries.map((e) => e.aliasesFrom) } };
}

/**
 * A service's mounts: bind mounts (absolute, ./relative, or ~ expanded with the CLI's home), named volumes the job
 * declares (`name:/target`, or `type: volume`), and tmpfs mounts (`type: tmpfs`, or the service's `tmpfs`).
 */
function convertVolumes(s: ComposeService, path: Path, c: Collector, baseDir: string, home: string | undefined): BindMount[] {
  const out: BindMount[] = [];
  (s.volumes ?? []).forEach((v, i) => {
    const at = [...path, 'volumes', i];
    const extra: Pick<BindMount, 'propagation' | 'noCopy' | 'tmpfsSizeBytes' | 'tmpfsMode'> = {};
    let source: string;
    let target: string;
    let readOnly: boolean;
    let type: string;
    if (typeof v === 'string') {
      const parts = v.split(':');
      if (parts.length < 2 || parts.length > 3) {
        c.error(at, `"${v}" is not a mount (expected SOURCE:TARGET[:ro]); anonymous volumes are not supported: name the volume`);
        return;
      }
      [source, target] = parts as [string, string];
      if (source === '') {
        c.error(at, `"${v}" has an empty source (a variable that is not set?)`);
        return;
      }
      const mode = parts[2];
      const options = mode?.split(',') ?? [];
      if (!options.every((m) => ['ro', 'rw', 'z', 'Z', 'nocopy', ...BIND_PROPAGATIONS].includes(m))) {
        c.error(at, `mount option "${mode}" is not supported (ro, rw, nocopy, z, Z, or a propagation: ${BIND_PROPAGATIONS.join(', ')})`);
        return;
      }
      readOnly = options.includes('ro');
      type = source.startsWith('/') || source.startsWith('.') || source.startsWith('~') ? 'bind' : 'volume';
      const propagation = options.find((o): o is BindPropagation => (BIND_PROPAGATIONS as readonly string[]).includes(o));
      if (propagation !== undefined) {
        if (type === 'bind') extra.propagation = propagation;
        else c.error(at, `"${propagation}" is a bind mount's propagation; "${source}" is a volume`);
      }
      if (options.includes('nocopy')) {
        if (type === 'volume') extra.noCopy = true;
        else c.error(at, `"nocopy" is for a volume; "${source}" is a bind mount`);
      }
    } else {
      type = v.type;
      if (type !== 'bind' && type !== 'volume' && type !== 'tmpfs') {
        c.error([...at, 'type'], `mount type "${type}" is not supported (bind, volume or tmpfs)`);
        return;
      }
      if (type !== 'tmpfs' && v.source === undefined) {
        c.error(at, `a ${type} mount needs a source`);
        return;
      }
      source = v.source ?? '';
      target = v.target;
      readOnly = v.read_only ?? false;
      const only = (key: 'bind' | 'volume' | 'tmpfs'): boolean => {
        if (v[key] === undefined || type === key) return v[key] !== undefined;
        c.error([...at, key], `"${key}" options are for a ${key} mount; this one is a ${type} mount`);
        return false;
      };
      if (only('bind')) {
        const p = v.bind!.propagation;
        if (p !== undefined) {
          if ((BIND_PROPAGATIONS as readonly string[]).includes(p)) extra.propagation = p as BindPropagation;
          else c.error([...at, 'bind', 'propagation'], `"${p}" is not a propagation (${BIND_PROPAGATIONS.join(', ')})`);
        }
        if (v.bind!.create_host_path !== undefined) c.warn([...at, 'bind'], '"create_host_path" is ignored: the source must exist on the node, as docker stack deploy requires', 'create_host_path');
      }
      if (only('volume') && v.volume!.nocopy === true) extra.noCopy = true;
      if (only('tmpfs')) {
        if (v.tmpfs!.size !== undefined) {
          const size = parseBytesAt(v.tmpfs!.size, [...at, 'tmpfs', 'size'], c);
          if (size !== undefined) extra.tmpfsSizeBytes = size;
        }
        if (v.tmpfs!.mode !== undefined) {
          // Octal, as the tmpfs option mode=1777 is, however it is written.
          const m = parseFileMode(String(v.tmpfs!.mode));
          if (typeof m === 'string') c.error([...at, 'tmpfs', 'mode'], m);
          else extra.tmpfsMode = m;
        }
      }
    }
    if (!target.startsWith('/')) {
      c.error(at, `mount target "${target}" must be an absolute path`);
      return;
    }
    if (type === 'tmpfs') {
      out.push({ type: 'tmpfs', source: '', target, readOnly: false, ...extra });
      return;
    }
    if (type === 'volume') {
      out.push({ type: 'volume', source, target, readOnly, ...extra });
      return;
    }
    if (source.startsWith('~')) {
      if (home === undefined || !(source === '~' || source.startsWith('~/'))) {
        c.error(at, `"${source}": "~" is expanded only by \`shoal job run\` on its machine, and only as "~/..."; use an absolute path`);
        return;
      }
      source = joinPath(home, source.slice(1));
    }
    out.push({ source: source.startsWith('/') ? joinPath('/', source) : joinPath(baseDir, source), target, readOnly, ...extra });
  });
  const tmpfs = s.tmpfs === undefined ? [] : Array.isArray(s.tmpfs) ? s.tmpfs : [s.tmpfs];
  tmpfs.forEach((t, i) => {
    const at = [...path, 'tmpfs', ...(Array.isArray(s.tmpfs) ? [i] : [])];
    const [target = '', options = ''] = splitOnce(t, ':');
    if (!target.startsWith('/')) {
      c.error(at, `tmpfs target "${target}" must be an absolute path`);
      return;
    }
    // `size=` and `mode=` are honoured, as the long syntax's tmpfs.size and tmpfs.mode; other mount options are not.
    const mount: BindMount = { type: 'tmpfs', source: '', target, readOnly: false };
    for (const o of options === '' ? [] : options.split(',')) {
      const [key = '', value = ''] = splitOnce(o, '=');
      if (key === 'size') {
        const size = parseBytesAt(value, at, c);
        if (size !== undefined) mount.tmpfsSizeBytes = size;
      } else if (key === 'mode') {
        const m = parseFileMode(value);
        if (typeof m === 'string') c.error(at, m);
        else mount.tmpfsMode = m;
      } else c.warn(at, `tmpfs option "${o}" is ignored: only size= and mode= are set (as docker stack deploy sets them)`);
    }
    out.push(mount);
  });
  return out;
}

function splitOnce(text: string, sep: string): [string, string] {
  const i = text.indexOf(sep);
  return i < 0 ? [text, ''] : [text.slice(0, i), text.slice(i + 1)];
}

/** A size in Compose's units (`64m`, `1g`, or bytes), or an error at `at`. */
function parseBytesAt(value: string | number, at: Path, c: Collector): number | undefined {
  const n = parseBytes(value);
  if (typeof n === 'string') c.error(at, n);
  else if (n > 0) return n;
  else c.error(at, `a size must be more than 0, got "${value}"`);
  return undefined;
}

/** The top-level `volumes:`, with the local driver only; sorted by name. */
function convertJobVolumes(volumes: ComposeFile['volumes'], c: Collector): VolumeSpec[] | undefined {
  if (volumes === undefined) return undefined;
  const out: VolumeSpec[] = [];
  for (const [name, def] of Object.entries(volumes)) {
    const at = ['volumes', name];
    if (!isValidName(name)) c.error(['volumes'], `volume name "${name}" must be 1-63 lower-case letters, digits, "-" or "_", starting with a letter or digit`, name);
    if (def?.driver !== undefined && def.driver !== 'local') c.error([...at, 'driver'], `volume driver "${def.driver}" is not available: Shoal's volumes use the local driver (driver_opts type, o and device are honoured)`);
    if (def?.labels !== undefined) c.warn(at, '"labels" of a volume are ignored', 'labels');
    if (def?.name !== undefined && def.external === undefined) c.warn(at, `"name" is ignored: a volume of the job is named <job>_${name} on each node; to use a volume by its own name, create it and mark it external: true`, 'name');
    const ext = def?.external;
    const isExternal = typeof ext === 'object' ? true : ext === undefined ? false : asBool(ext, [...at, 'external'], c);
    const external = isExternal ? (typeof ext === 'object' ? ext.name : def?.name ?? name) : null;
    if (isExternal && def?.driver_opts !== undefined) c.error([...at, 'driver_opts'], 'an external volume exists already: its driver_opts are its own');
    const driverOpts = Object.fromEntries(Object.entries(def?.driver_opts ?? {}).map(([k, v]) => [k, String(v)]));
    out.push({ name, external, driverOpts });
  }
  return out.sort((a, b) => compareNames(a.name, b.name));
}

const FILE_OBJECT_SOURCES = ['file', 'environment', 'content'] as const;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The top-level `secrets:` or `configs:`, sorted by name (none: undefined), and where the contents of those the job
 * provides come from, in the same order. Nothing is read here: a file is resolved to an absolute path, an environment
 * variable is checked to be set (its value is not kept), a config's `content` is taken as written (after ${VAR}
 * substitution). `shoal job run` reads them; `--output` and `job plan` do not.
 */
function convertFileObjects(kind: FileObjectKind, defs: Record<string, ComposeFileObject | null> | undefined, job: string, options: ParseOptions, c: Collector): { specs: FileObjectSpec[] | undefined; contents: FileObjectSource[] } {
  const plural = `${kind}s`;
  const specs: FileObjectSpec[] = [];
  const contents: FileObjectSource[] = [];
  const choices = kind === 'secret' ? 'file, environment or external: true' : 'file, environment, content or external: true';
  for (const [key, entry] of Object.entries(defs ?? {})) {
    const at = [plural, key];
    const def: ComposeFileObject = entry ?? {};
    if (def.labels !== undefined) c.warn(at, `"labels" of a ${kind} are ignored`, 'labels');
    for (const field of ['driver', 'driver_opts', 'template_driver'] as const) {
      if (def[field] !== undefined) c.error(at, `"${field}" is not supported: Shoal keeps ${plural} itself, as they are given (by \`shoal job run\`, or \`shoal ${kind} create\`)`, field);
    }
    // A secret's value in the file would be in every copy of it, and in its history.
    const refused = kind === 'secret' && def.content !== undefined;
    if (refused) c.error(at, 'a secret\'s value must not be written in the job file; use file: or environment:', 'content');
    const ext = def.external;
    const external = typeof ext === 'object' || (ext !== undefined && asBool(ext, [...at, 'external'], c));
    const given: string[] = FILE_OBJECT_SOURCES.filter((f) => def[f] !== undefined && !(refused && f === 'content'));
    if (external) given.push('external');
    // (An `external` that is not a boolean is reported as such: whatever it meant, it was about the source.)
    const externalRead = ext === undefined || typeof ext === 'object' || typeof ext === 'boolean' || ext === 'true' || ext === 'false';
    if (given.length > 1) c.error(at, `${kind} "${key}" takes one of ${choices}, got ${given.join(' and ')}`);
    else if (given.length === 0 && !refused && externalRead) c.error([plural], `${kind} "${key}" needs one of ${choices}`, key);
    const externalName = typeof ext === 'object' ? ext.name : undefined;
    if (externalName !== undefined && def.name !== undefined && def.name !== externalName) {
      c.error(at, `external.name "${externalName}" and name "${def.name}" disagree; use name alone (external.name is deprecated)`, 'name');
    }
    // As Compose: `name:` names the object in the cluster; else an external one is its key, and the job's own is
    // `<job>_<key>`, so that two jobs' `db_password` are two secrets.
    const clusterName = external ? def.name ?? externalName ?? key : def.name ?? `${job}_${key}`;
    specs.push({ name: key, clusterName, external });
    if (external || given.length !== 1 || given[0] === 'external') continue;
    const field = given[0] as (typeof FILE_OBJECT_SOURCES)[number];
    const where = c.where([...at, field]);
    if (field === 'file') {
      const file = resolveObjectFile(def.file!, [...at, 'file'], options, c);
      if (file !== undefined) contents.push({ kind, name: key, clusterName, file, where });
    } else if (field === 'environment') {
      const variable = def.environment!;
      if (!ENV_NAME_RE.test(variable)) c.error([...at, 'environment'], `"${variable}" is not the name of an environment variable (letters, digits and "_", not starting with a digit)`);
      else if ((options.env ?? {})[variable] === undefined) c.error([...at, 'environment'], `the environment variable ${variable} is not set: \`shoal job run\` takes the ${kind}'s value from it`);
      else contents.push({ kind, name: key, clusterName, environment: variable, where });
    } else {
      contents.push({ kind, name: key, clusterName, content: def.content!, where });
    }
  }
  specs.sort((a, b) => compareNames(a.name, b.name));
  contents.sort((a, b) => compareNames(a.name, b.name));
  return { specs: specs.length > 0 ? specs : undefined, contents };
}

/** A secret's or config's `file:`, as an absolute path on the CLI's machine (resolved as a bind mount's source). */
function resolveObjectFile(file: string, path: Path, options: ParseOptions, c: Collector): string | undefined {
  if (file === '') {
    c.error(path, 'is empty (a variable that is not set?)');
    return undefined;
  }
  if (file.startsWith('~')) {
    if (options.home === undefined || !(file === '~' || file.startsWith('~/'))) {
      c.error(path, `"${file}": "~" is expanded only by \`shoal job run\` on its machine, and only as "~/..."; use an absolute path`);
      return undefined;
    }
    return joinPath(options.home, file.slice(1));
  }
  if (file.startsWith('/')) return joinPath('/', file);
  if (options.baseDir === undefined) {
    c.error(path, `"${file}" is relative, and there is no job file directory to resolve it against; use an absolute path`);
    return undefined;
  }
  return joinPath(options.baseDir, file);
}

/**
 * A service's `secrets:` or `configs:` (short syntax: the key; long: `{ source, target, uid, gid, mode }`), in the
 * file's order, with their canonical targets for the service's driver (file-objects.ts), and for each the index of
 * the entry it came from. Whether each source is declared, and each target usable, is checked on the job
 * (checks.ts). None: undefined.
 */
function convertFileRefs(kind: FileObjectKind, list: ComposeService['secrets'], driver: DriverName, path: Path, c: Collector): { refs: FileRef[] | undefined; from: number[] } {
  const refs: FileRef[] = [];
  const from: number[] = [];
  (list ?? []).forEach((entry, i) => {
    const at = [...path, i];
    const ref: { source: string; target?: string; uid?: string | number; gid?: string | number; mode?: string | number } = typeof entry === 'string' ? { source: entry } : entry;
    if (ref.target === '') {
      c.error([...at, 'target'], 'is empty (a variable that is not set?)');
      return;
    }
    const owner = (field: 'uid' | 'gid'): number | null => (ref[field] === undefined ? null : asInt(ref[field], [...at, field], c, 0, MAX_FILE_OWNER_ID, field) ?? null);
    let mode = DEFAULT_FILE_MODE;
    if (ref.mode !== undefined) {
      const parsed = parseFileMode(ref.mode);
      if (typeof parsed === 'string') {
        c.error([...at, 'mode'], parsed);
        return;
      }
      mode = parsed;
      // `mode: 440` is decimal to Docker too (0670: group-writable); its author most likely meant 0440. (256, the
      // decimal 0400, or 420, 0644, are left alone: they are what they say.)
      if (typeof ref.mode === 'number' && /^[0-7]{3,4}$/.test(String(ref.mode)) && !isPlausibleMode(mode)) {
        c.warn([...at, 'mode'], `mode ${ref.mode} is the decimal number ${ref.mode} (0${mode.toString(8)} in octal), as Docker reads it; for the permission bits 0${ref.mode}, write 0${ref.mode}`);
      }
    }
    refs.push({ source: ref.source, target: resolveTarget(kind, driver, ref.source, ref.target), uid: owner('uid'), gid: owner('gid'), mode });
    from.push(i);
  });
  return { refs: refs.length > 0 ? refs : undefined, from };
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
  if (h.start_interval !== undefined) c.warn(path, 'healthcheck.start_interval is ignored: checks run every "interval", during the start period too', 'start_interval');
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

function convertConstraints(list: string[] | undefined, path: Path, c: Collector): { constraints: Constraint[]; from: number[] } {
  const out: Constraint[] = [];
  const from: number[] = [];
  (list ?? []).forEach((text, i) => {
    const m = CONSTRAINT_RE.exec(text);
    if (!m) {
      c.error([...path, i], `"${text}" is not a constraint (expected node.name==X, node.labels.KEY==V or !=; attributes: node.name, node.id, node.role, node.hostname, node.labels.*)`);
      return;
    }
    const attribute = m[1] === 'node.hostname' ? 'node.name' : (m[1] as string);
    out.push({ attribute, op: m[2] as '==' | '!=', value: m[3] as string });
    from.push(i);
  });
  return { constraints: out, from };
}

function convertResources(r: { cpus?: string | number; memory?: string | number } | undefined, path: Path, c: Collector): Resources {
  const cpu = r?.cpus === undefined ? 0 : unit(parseCpuMillicores(r.cpus), [...path, 'cpus'], c) ?? 0;
  const memory = r?.memory === undefined ? 0 : unit(parseBytes(r.memory), [...path, 'memory'], c) ?? 0;
  return { cpuMillicores: cpu, memoryBytes: memory };
}

const ULIMIT_NAMES = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];
const CAPABILITY_RE = /^(?:CAP_)?[A-Z][A-Z_]*$|^ALL$/;
const HOSTNAME_TEMPLATES = ['.Service.Name', '.Service.ID', '.Task.Name', '.Task.Slot', '.Task.ID', '.Node.Hostname', '.Node.ID'];
const SERVICE_OPTION_KEYS = ['user', 'cap_add', 'cap_drop', 'sysctls', 'ulimits', 'init', 'hostname', 'extra_hosts', 'dns', 'dns_search', 'dns_opt', 'read_only', 'platform', 'runtime'] as const;

const listOf = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** How the task runs (user, capabilities, sysctls, ulimits...): undefined when the file sets none of it. */
function convertOptions(s: ComposeService, path: Path, c: Collector, env: Env): TaskOptions | undefined {
  const pids = s.deploy?.resources?.limits?.pids;
  if (!SERVICE_OPTION_KEYS.some((k) => s[k] !== undefined) && pids === undefined) return undefined;
  const caps = (key: 'cap_add' | 'cap_drop'): string[] => (s[key] ?? []).map((cap, i) => {
    const upper = cap.trim().toUpperCase();
    if (!CAPABILITY_RE.test(upper)) c.error([...path, key, i], `"${cap}" is not a Linux capability name (such as NET_ADMIN or CAP_NET_ADMIN, or ALL)`);
    return upper;
  });
  const ulimits = Object.entries(s.ulimits ?? {}).map(([name, v]) => {
    const at = [...path, 'ulimits', name];
    if (!ULIMIT_NAMES.includes(name)) c.error(at, `"${name}" is not a ulimit (${ULIMIT_NAMES.join(', ')})`);
    const limit = (x: string | number, p: Path) => asInt(x, p, c, -1, Number.MAX_SAFE_INTEGER, `ulimit ${name}`) ?? 0;
    const soft = typeof v === 'object' ? limit(v.soft, [...at, 'soft']) : limit(v, at);
    const hard = typeof v === 'object' ? limit(v.hard, [...at, 'hard']) : soft;
    if (hard !== -1 && (soft === -1 || soft > hard)) c.error(at, `soft limit ${soft} is above the hard limit ${hard}`);
    return { name, soft, hard };
  }).sort((a, b) => compareNames(a.name, b.name));
  const hostname = s.hostname ?? null;
  for (const m of (hostname ?? '').matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
    if (!HOSTNAME_TEMPLATES.includes(m[1]!)) c.error([...path, 'hostname'], `"{{${m[1]}}}" is not a template Shoal fills in (${HOSTNAME_TEMPLATES.map((x) => `{{${x}}}`).join(', ')})`);
  }
  const extraHosts = Array.isArray(s.extra_hosts)
    ? s.extra_hosts.map((e, i) => {
      const m = /^([^:=\s]+)[:=](.+)$/.exec(e.trim());
      if (!m) c.error([...path, 'extra_hosts', i], `"${e}" is not HOST:IP`);
      return m ? [m[1]!, m[2]!.replace(/^\[|\]$/g, '')] as const : ['', ''] as const;
    })
    : Object.entries(s.extra_hosts ?? {});
  extraHosts.forEach(([host, ip], i) => {
    if (host !== '' && !isIpAddress(ip)) c.error([...path, 'extra_hosts', Array.isArray(s.extra_hosts) ? i : host], `"${ip}" (for ${host}) is not an IP address`);
  });
  const dns = listOf(s.dns);
  dns.forEach((d, i) => {
    if (!isIpAddress(d)) c.error([...path, 'dns', ...(Array.isArray(s.dns) ? [i] : [])], `nameserver "${d}" is not an IP address`);
  });
  return {
    user: s.user === undefined ? null : String(s.user),
    capAdd: caps('cap_add'),
    capDrop: caps('cap_drop'),
    sysctls: toStringMap(s.sysctls, [...path, 'sysctls'], c, env, 'sysctl'),
    ulimits,
    init: s.init === undefined ? false : asBool(s.init, [...path, 'init'], c),
    hostname,
    extraHosts: extraHosts.filter(([host]) => host !== '').map(([host, ip]) => `${host}:${ip}`),
    dns,
    dnsSearch: listOf(s.dns_search),
    dnsOptions: s.dns_opt ?? [],
    readOnly: s.read_only === undefined ? false : asBool(s.read_only, [...path, 'read_only'], c),
    platform: s.platform === undefined ? null : s.platform.toLowerCase(),
    runtime: s.runtime ?? null,
    pidsLimit: pids === undefined ? 0 : asInt(pids, [...path, 'deploy', 'resources', 'limits', 'pids'], c, 1, 4_194_304, 'pids') ?? 0,
  };
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

/** Where the entries of a converted service's lists came from in the file, for mapping canonical paths back. */
interface ServiceOrigins extends NetworkOrigins {
  ports: number[];
  expose: number[];
  constraints: number[];
  secrets: number[];
  configs: number[];
  /** Per canonical collection of `state`, the index of the entry in `x-shoal.state.collections`. */
  collections: number[];
}

/** A converted service, with what is needed to name its fields as the file does. */
interface Converted {
  spec: ServiceSpec;
  compose: ComposeService;
  path: Path;
  origins: ServiceOrigins;
}

const PORT_WARNING = 'PORT is set by Shoal for a service with ports or expose: the job\'s value is overridden';

/** A process task is handed its port in PORT; a value the file sets would be replaced, so say so where it is set. */
function warnPortVariable(spec: ServiceSpec, environment: ComposeService['environment'], path: Path, c: Collector, env: Env): void {
  if (spec.driver !== 'process' || (spec.ports.length === 0 && spec.expose.length === 0) || spec.environment['PORT'] === undefined) return;
  if (!Array.isArray(environment)) {
    c.warn(path, PORT_WARNING, 'PORT');
    return;
  }
  // The entry whose value the service got: the last one that sets PORT.
  let last = -1;
  environment.forEach((entry, i) => {
    if (entry.startsWith('PORT=') || (entry === 'PORT' && env['PORT'] !== undefined)) last = i;
  });
  c.warn(last < 0 ? path : [...path, last], PORT_WARNING);
}

/**
 * The variables of a service's `env_file`s, in order (a later file wins), as Compose reads them: `KEY=VALUE` lines,
 * `#` comments and blank lines skipped, a value in matching quotes unquoted, `${VAR}` substituted.
 */
function envFiles(s: ComposeService, path: Path, c: Collector, env: Env, baseDir: string, readFile: ParseOptions['readFile']): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = s.env_file === undefined ? [] : Array.isArray(s.env_file) ? s.env_file : [s.env_file];
  entries.forEach((entry, i) => {
    const at = [...path, 'env_file', ...(Array.isArray(s.env_file) ? [i] : [])];
    const file = typeof entry === 'string' ? entry : entry.path;
    const required = typeof entry === 'string' || entry.required === undefined ? true : asBool(entry.required, [...at, 'required'], c);
    if (typeof entry !== 'string' && entry.format !== undefined) c.warn(at, `"format: ${entry.format}" is ignored: an env file is read as KEY=VALUE lines, with Compose's quoting and \${VAR}`, 'format');
    const full = file.startsWith('/') ? file : `${baseDir.replace(/\/$/, '')}/${file}`;
    if (!readFile) {
      c.error(at, `env_file "${file}" is read by \`shoal job run\` on the CLI's machine; send the job from there, or put the variables in "environment"`);
      return;
    }
    let text: string;
    try {
      text = readFile(full);
    } catch (err) {
      if (required) c.error(at, `cannot read env_file "${full}": ${(err as { code?: string }).code ?? String(err)}`);
      return;
    }
    const parsed = parseEnvText(text, full, env);
    for (const e of parsed.errors) c.error(at, e);
    Object.assign(out, parsed.vars);
  });
  return out;
}

/**
 * An env file (`env_file`, `--env-file`) as Compose reads it: `KEY=VALUE` lines (`export` allowed), `#` comments
 * and blank lines skipped, a value in matching quotes unquoted (single quotes: taken literally), `${VAR}`
 * substituted from `env`. Errors name `where` and the line.
 */
export function parseEnvText(text: string, where: string, env: Env): { vars: Record<string, string>; errors: string[] } {
  const vars: Record<string, string> = {};
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((line, n) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(trimmed);
    if (!m) {
      errors.push(`${where}:${n + 1}: "${trimmed.slice(0, 40)}" is not KEY=VALUE`);
      return;
    }
    let value = m[2]!;
    const quoted = /^(["'])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2]!;
    else value = value.replace(/\s+#.*$/, '');
    const r = quoted?.[1] === "'" ? { value } : interpolate(value, env);
    if ('error' in r) errors.push(`${where}:${n + 1}: ${r.error}`);
    else vars[m[1]!] = r.value;
  });
  return { vars, errors };
}

function convertService(name: string, s: ComposeService, path: Path, c: Collector, env: Env, baseDir: string, batch: boolean, readFile?: ParseOptions['readFile'], home?: string): Converted {
  if (!isValidName(name)) c.error(['services'], `service name "${name}" must be 1-63 lower-case letters, digits, "-" or "_", starting with a letter or digit`, name);
  const driverName = s['x-shoal']?.driver ?? 'docker';
  if (driverName !== 'docker' && driverName !== 'process') c.error([...path, 'x-shoal', 'driver'], `driver must be "docker" or "process", got "${driverName}"`);
  const driver = driverName === 'process' ? 'process' : 'docker';
  const command = toArgv(s.command, [...path, 'command'], c);
  const entrypoint = toArgv(s.entrypoint, [...path, 'entrypoint'], c);
  // A container goes on the job's networks (a bridge per network on its node) unless the file says otherwise; a
  // process always shares its node's network.
  const networkMode = s.network_mode ?? (driver === 'docker' ? 'bridge' : 'host');
  if (s.network_mode !== undefined && networkMode !== 'host' && networkMode !== 'none') {
    c.error([...path, 'network_mode'], `network_mode "${networkMode}" is not supported: put the service on the job's networks with "networks", or use network_mode host or none`);
  }
  const ports = convertPorts(s.ports, [...path, 'ports'], c);
  const expose = convertExpose(s.expose, [...path, 'expose'], c);
  const networks = convertServiceNetworks(s, path, c);
  const stateful = s['x-shoal']?.state;
  const state = stateful === undefined ? undefined : convertState(stateful, [...path, 'x-shoal', 'state'], c);
  const d = s.deploy ?? {};
  const mode = d.mode ?? 'replicated';
  if (mode !== 'replicated' && mode !== 'global') c.error([...path, 'deploy', 'mode'], `must be replicated or global, got "${mode}"`);
  const endpointMode = d.endpoint_mode ?? 'vip';
  if (endpointMode !== 'vip' && endpointMode !== 'dnsrr') c.error([...path, 'deploy', 'endpoint_mode'], `must be vip or dnsrr, got "${endpointMode}"`);
  let replicas = 1;
  if (state !== undefined) {
    // A stateful service's task count is partitions × replicas: no count of its own, not even the default one.
    if (d.replicas !== undefined) c.error([...path, 'deploy', 'replicas'], STATEFUL_REPLICAS);
    replicas = 0;
  } else if (mode === 'global') {
    // A replica count on a global service is refused by checkService; keep it so that it can be.
    replicas = d.replicas === undefined ? 0 : asInt(d.replicas, [...path, 'deploy', 'replicas'], c, 0, JOBSPEC_LIMITS.maxReplicas, 'replicas') ?? 0;
  } else if (d.replicas !== undefined) {
    replicas = asInt(d.replicas, [...path, 'deploy', 'replicas'], c, 0, JOBSPEC_LIMITS.maxReplicas, 'replicas') ?? 1;
  }
  const placement = d.placement ?? {};
  const maxPerNode = placement.max_replicas_per_node === undefined ? 0 : asInt(placement.max_replicas_per_node, [...path, 'deploy', 'placement', 'max_replicas_per_node'], c, 1, JOBSPEC_LIMITS.maxReplicas, 'max_replicas_per_node') ?? 0;
  const spread = (placement.preferences ?? []).map((p, i) => {
    if (!SPREAD_RE.test(p.spread)) c.error([...path, 'deploy', 'placement', 'preferences', i, 'spread'], `can spread only across node.labels.<key>, node.name or node.id, got "${p.spread}"`);
    return p.spread;
  });
  const reservations = convertResources(d.resources?.reservations, [...path, 'deploy', 'resources', 'reservations'], c);
  const limits = convertResources(d.resources?.limits, [...path, 'deploy', 'resources', 'limits'], c);
  const stopGraceMs = s.stop_grace_period === undefined ? 10_000 : unit(parseDurationMs(s.stop_grace_period), [...path, 'stop_grace_period'], c) ?? 10_000;
  if (stopGraceMs > JOBSPEC_LIMITS.maxStopGraceMs) c.error([...path, 'stop_grace_period'], `must be at most ${JOBSPEC_LIMITS.maxStopGraceMs / 1000} s`);
  let stopSignal = (s.stop_signal ?? 'SIGTERM').toUpperCase();
  if (!stopSignal.startsWith('SIG')) stopSignal = `SIG${stopSignal}`;
  if (!SIGNALS.includes(stopSignal)) c.error([...path, 'stop_signal'], `"${s.stop_signal}" is not a signal Shoal can send (${SIGNALS.join(', ')})`);
  const labels = { ...toStringMap(s.labels, [...path, 'labels'], c, env, 'label'), ...toStringMap(d.labels, [...path, 'deploy', 'labels'], c, env, 'label') };
  const constraints = convertConstraints(placement.constraints, [...path, 'deploy', 'placement', 'constraints'], c);
  const options = convertOptions(s, path, c, env);
  const secrets = convertFileRefs('secret', s.secrets, driver, [...path, 'secrets'], c);
  const configs = convertFileRefs('config', s.configs, driver, [...path, 'configs'], c);
  const spec: ServiceSpec = {
    name,
    driver,
    image: s.image ?? null,
    command,
    entrypoint,
    workingDir: s.working_dir ?? null,
    // As in Compose, "environment" wins over the env files.
    environment: { ...envFiles(s, path, c, env, baseDir, readFile), ...toStringMap(s.environment, [...path, 'environment'], c, env, 'environment') },
    ports: ports.ports,
    expose: expose.expose,
    networks: networks.networks,
    networkMode: networkMode === 'none' ? 'none' : networkMode === 'bridge' ? 'bridge' : 'host',
    volumes: convertVolumes(s, path, c, baseDir, home),
    labels,
    healthcheck: convertHealth(s.healthcheck, [...path, 'healthcheck'], c),
    stopGraceMs,
    stopSignal,
    ...(secrets.refs ? { secrets: secrets.refs } : {}),
    ...(configs.refs ? { configs: configs.refs } : {}),
    ...(options ? { options } : {}),
    ...(state ? { state: state.state } : {}),
    deploy: {
      mode: mode === 'global' ? 'global' : 'replicated',
      replicas,
      endpointMode: endpointMode === 'dnsrr' ? 'dnsrr' : 'vip',
      placement: { constraints: constraints.constraints, maxReplicasPerNode: maxPerNode, spread },
      resources: { reservations, limits },
      restartPolicy: convertRestart(d.restart_policy, [...path, 'deploy', 'restart_policy'], c, batch),
    },
  };
  warnPortVariable(spec, s.environment, [...path, 'environment'], c, env);
  return {
    spec, compose: s, path,
    origins: { ports: ports.from, expose: expose.from, constraints: constraints.from, secrets: secrets.from, configs: configs.from, collections: state?.collectionsFrom ?? [], ...networks.origins },
  };
}

/**
 * `x-shoal.state` as the canonical StateSpec: defaults filled in (a uniform scheme of 1 partition, 3 replicas), the
 * partition count filled in for every scheme, the collections sorted by name (with, for each, the index of the entry
 * it came from). Counts and kinds are checked here, where the file writes them; the rules between fields, and the
 * names, on the canonical job (checks.ts).
 */
function convertState(x: ComposeState, path: Path, c: Collector): { state: StateSpec; collectionsFrom: number[] } {
  const L = JOBSPEC_LIMITS;
  const schemeName = x.scheme ?? 'uniform';
  const known = (STATE_SCHEMES as readonly string[]).includes(schemeName);
  if (!known) c.error([...path, 'scheme'], `scheme must be ${oneOf(STATE_SCHEMES)}, got "${schemeName}"`);
  const replicas = x.replicas === undefined ? 3 : asInt(x.replicas, [...path, 'replicas'], c, 1, L.maxPartitionReplicas, 'replicas') ?? 3;
  const given = x.partitions === undefined ? undefined : asInt(x.partitions, [...path, 'partitions'], c, 1, L.maxPartitionsPerService, 'partitions');
  const names = x.names?.map(String);
  if (names !== undefined && known && schemeName !== 'named') c.error([...path, 'names'], `names are for scheme: named (one partition per name); this scheme is ${schemeName}`);
  let scheme: StateScheme = { kind: 'uniform' };
  let partitions = given ?? 1;
  if (schemeName === 'named') {
    // Without names, the canonical job has none, and checks.ts says that a named scheme needs them.
    scheme = { kind: 'named', names: names ?? [] };
    partitions = scheme.names.length;
    if (given !== undefined && names !== undefined && given !== partitions) {
      c.error([...path, 'partitions'], `a named scheme has one partition per name: leave partitions out, or make it ${partitions}, the number of names; got ${given}`);
    }
  } else if (schemeName === 'singleton') {
    scheme = { kind: 'singleton' };
    partitions = 1;
    if (given !== undefined && given !== 1) c.error([...path, 'partitions'], `a singleton scheme has one partition: leave partitions out, or make it 1; got ${given}`);
  }
  const entries: { collection: StateCollection; from: number }[] = [];
  (x.collections ?? []).forEach((entry, i) => {
    if (!(COLLECTION_KINDS as readonly string[]).includes(entry.kind)) {
      c.error([...path, 'collections', i, 'kind'], `kind must be ${oneOf(COLLECTION_KINDS)}, got "${entry.kind}"`);
      return;
    }
    entries.push({ collection: { name: String(entry.name), kind: entry.kind as CollectionKind }, from: i });
  });
  entries.sort((a, b) => compareNames(a.collection.name, b.collection.name)); // stable: of a repeated name, the later entry stays second
  // `node.labels.zone`, as deploy.placement.preferences writes it, names the label `zone` too.
  const spread = x.spread?.startsWith('node.labels.') ? x.spread.slice('node.labels.'.length) : x.spread;
  return {
    state: { partitions, replicas, scheme, ...(spread !== undefined ? { spread } : {}), collections: entries.map((e) => e.collection) },
    collectionsFrom: entries.map((e) => e.from),
  };
}

const COMPOSE_KEYS: Record<string, string> = {
  networkMode: 'network_mode', cpuMillicores: 'cpus', memoryBytes: 'memory', spread: 'preferences', endpointMode: 'endpoint_mode',
  capAdd: 'cap_add', capDrop: 'cap_drop', extraHosts: 'extra_hosts', dnsSearch: 'dns_search', dnsOptions: 'dns_opt', pidsLimit: 'deploy',
  readOnly: 'read_only', driverOpts: 'driver_opts',
};

/** A canonical mount's options, where the long syntax writes them. */
const MOUNT_KEYS: Record<string, string[]> = {
  propagation: ['bind', 'propagation'], noCopy: ['volume', 'nocopy'], tmpfsSizeBytes: ['tmpfs', 'size'], tmpfsMode: ['tmpfs', 'mode'],
};

/**
 * Where a field of the canonical service came from in the Compose service `s`: keys renamed, list indices mapped
 * back to the entries (or mapping keys) they were converted from, and a field the file does not have reported at its
 * parent.
 */
function composePath(at: CanonicalPath, s: ComposeService, base: Path, origins: ServiceOrigins): Path {
  if (at[0] === 'state') return [...base, ...statePath(at.slice(1), s, origins.collections)];
  const out: Path = [];
  let node: unknown = s;
  for (const [i, part] of at.entries()) {
    if (i === 0 && part === 'options') continue; // a service's options are keys of the service itself in Compose
    const mountKey = typeof part === 'string' && at[i - 2] === 'volumes' ? MOUNT_KEYS[part] : undefined;
    if (mountKey) {
      // A mount's option is nested in the long syntax (bind.propagation); in the short one, it is the entry itself.
      for (const k of mountKey) {
        const next = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[k] : undefined;
        if (next === undefined) break;
        out.push(k);
        node = next;
      }
      break;
    }
    let key: string | number = typeof part === 'string' ? COMPOSE_KEYS[part] ?? part : part;
    if (typeof part === 'number') {
      const list = at[i - 1];
      const network = at[i - 2];
      key = (list === 'ports' ? origins.ports[part]
        : list === 'expose' ? origins.expose[part]
          : list === 'constraints' ? origins.constraints[part]
            : list === 'secrets' ? origins.secrets[part]
            : list === 'configs' ? origins.configs[part]
            : list === 'networks' ? origins.networks[part]
              : list === 'aliases' && typeof network === 'number' ? origins.aliases[network]?.[part]
                : part) ?? part;
    } else if (part === 'name' && at[i - 2] === 'networks') {
      break; // a service network's name is its list entry or mapping key, already in the path
    }
    const next = typeof node === 'object' && node !== null ? (node as Record<string | number, unknown>)[key] : undefined;
    if (next === undefined) break;
    out.push(key);
    node = next;
  }
  return [...base, ...out];
}

/**
 * A canonical path inside a service's `state` as the file writes it, as far as the file has it: under x-shoal.state,
 * a scheme's names beside `scheme` (at `scheme` when the file gives none), collections by the entries they came from.
 */
function statePath(at: CanonicalPath, s: ComposeService, collectionsFrom: number[]): Path {
  const x = s['x-shoal']?.state;
  let want: CanonicalPath = at;
  if (at[0] === 'scheme') want = at[1] === 'names' && x?.names !== undefined ? ['names', ...at.slice(2)] : ['scheme'];
  else if (at[0] === 'collections' && typeof at[1] === 'number') want = ['collections', collectionsFrom[at[1]] ?? at[1], ...at.slice(2)];
  const out: Path = ['x-shoal', 'state'];
  let node: unknown = x;
  for (const key of want) {
    const next = typeof node === 'object' && node !== null ? (node as Record<string | number, unknown>)[key] : undefined;
    if (next === undefined) break;
    out.push(key);
    node = next;
  }
  return out;
}

/**
 * A job name from a file's base name, normalised as Compose normalises project names: lower case, characters
 * outside [a-z0-9_-] removed, leading "_" and "-" trimmed, cut to 63 characters ('' when nothing is left).
 */
export function jobNameFromFile(file: string): string {
  const base = (file.split('/').pop() ?? file).replace(/\.(ya?ml|json)$/i, '');
  return base.toLowerCase().replace(/[^a-z0-9_-]/g, '').replace(/^[-_]+/, '').slice(0, 63);
}

function convert(file: ComposeFile, options: ParseOptions, c: Collector): { job: Job; contents: FileObjectSource[] } | undefined {
  const fromFile = file.name === undefined && options.name === undefined;
  const name = file.name ?? options.name ?? jobNameFromFile(options.file);
  if (!isValidName(name)) {
    const what = fromFile ? `the file name "${options.file.split('/').pop() ?? options.file}" leaves no job name (letters, digits, "-" or "_"); set a top-level "name" or pass --name` : `job name "${name}" must be 1-63 lower-case letters, digits, "-" or "_", starting with a letter or digit`;
    c.error(file.name !== undefined ? ['name'] : [], what);
  }
  const type = file['x-shoal']?.type ?? 'service';
  if (type !== 'service' && type !== 'batch') c.error(['x-shoal', 'type'], `job type must be service or batch, got "${type}"`);
  const networks = convertJobNetworks(file.networks, c);
  const entries = Object.entries(file.services);
  // Counted here rather than by checkJob: an empty entry is a service the file has, though it converts to nothing.
  checkServiceCount(entries.length, (at, message) => c.error(at, message));
  const converted: Converted[] = [];
  for (const [svcName, svc] of entries) {
    if (svc === null) {
      c.error(['services', svcName], 'is empty: a service needs at least an image or a command');
      continue;
    }
    converted.push(convertService(svcName, svc, ['services', svcName], c, options.env ?? {}, options.baseDir ?? '/', type === 'batch', options.readFile, options.home));
  }
  const volumes = convertJobVolumes(file.volumes, c);
  const secrets = convertFileObjects('secret', file.secrets, name, options, c);
  const configs = convertFileObjects('config', file.configs, name, options, c);
  const job: Job = {
    name, type: type === 'batch' ? 'batch' : 'service', services: converted.map((s) => s.spec), networks, ...(volumes ? { volumes } : {}),
    ...(secrets.specs ? { secrets: secrets.specs } : {}), ...(configs.specs ? { configs: configs.specs } : {}),
  };
  // The shared rules speak of canonical paths (`services.0.ports.1`); report them, and name the fields they cite, as
  // the file has them (`services.api.ports.1`).
  const toCompose = (at: CanonicalPath): Path => {
    const [root, index, ...rest] = at;
    if (root === 'services' && typeof index === 'number' && converted[index] !== undefined) {
      const svc = converted[index];
      return composePath(rest, svc.compose, svc.path, svc.origins);
    }
    if (root === 'volumes') {
      const volume = typeof index === 'number' ? volumes?.[index]?.name : undefined;
      return volume !== undefined && file.volumes !== undefined && volume in file.volumes ? ['volumes', volume] : ['volumes'];
    }
    if (root === 'networks') {
      const network = typeof index === 'number' ? networks[index]?.name : undefined;
      if (file.networks === undefined) return [];
      return network !== undefined && network in file.networks ? ['networks', network] : ['networks'];
    }
    if (root === 'secrets' || root === 'configs') {
      const key = typeof index === 'number' ? job[root]?.[index]?.name : undefined;
      const defs = file[root];
      if (key === undefined || defs === undefined || !(key in defs)) return [root];
      // A cluster name the file gives is at `name` (or the deprecated `external.name`); else it comes from the key.
      const def = defs[key];
      if (rest[0] === 'clusterName' && def?.name !== undefined) return [root, key, 'name'];
      if (rest[0] === 'clusterName' && typeof def?.external === 'object') return [root, key, 'external', 'name'];
      return [root, key];
    }
    return at.slice(0, 1);
  };
  checkJobRules(job, (at, message) => {
    const path = toCompose(at);
    const last = path[path.length - 1];
    // An entry of a networks (secrets, configs) mapping is often empty (`backend:`), and a top-level key's value
    // starts a line below it: point at the key.
    const keyed = path[path.length - 2] === 'networks' || (path.length === 2 && (path[0] === 'secrets' || path[0] === 'configs'));
    if (typeof last === 'string' && (path.length === 1 || keyed)) c.error(path.slice(0, -1), message, last);
    else c.error(path, message);
  }, (at) => toCompose(at).join('.'));
  return c.issues.length === 0 ? { job, contents: [...secrets.contents, ...configs.contents] } : undefined;
}
