/**
 * The agent's configuration: one typed schema, defaults documented beside each field, parsed and validated once at
 * the edge. Sources, lowest precedence first: built-in defaults, the YAML file (`--config`, default
 * /etc/shoal/agent.yaml when it exists), environment variables (SHOAL_CLUSTER_KEY, SHOAL_LOG_LEVEL), flags.
 * Every error names the source (file and line, or the flag) and the field.
 */
import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isScalar } from 'yaml';
import { InvalidArgumentError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { DEFAULT_FAILURE_DOMAIN_LABEL } from '../autopilot/index.js';
import { LOG_LEVELS } from '../log/logger.js';
import { DEFAULT_BRIDGE_POOL, checkBridgePool } from '../mesh/bridges.js';

export const DEFAULT_CONFIG_FILE = '/etc/shoal/agent.yaml';
export const DEFAULT_API = '127.0.0.1:7646';
export const DEFAULT_BIND = '0.0.0.0:7647';
export const DEFAULT_DATA_DIR = '/var/lib/shoal';

export interface AgentConfig {
  /** Node name shown in `shoal members`; default: the host name. */
  name: string;
  /** Where the agent keeps its identity key, Raft log and task logs. */
  dataDir: string;
  /** host:port of the peer socket (the cluster's private DHT node and gossip). */
  bind: { host: string; port: number };
  /** DHT nodes to bootstrap from (host:port, IP addresses); empty for the first agent of a cluster. */
  join: { host: string; port: number }[];
  /** File holding the cluster key (`shoal keygen` writes one); SHOAL_CLUSTER_KEY may give the key itself. */
  clusterKeyFile: string | null;
  /** host:port of the HTTP API; default 127.0.0.1:7646. */
  api: { host: string; port: number };
  /** File with the bearer token remote API callers must send; without it remote access is refused. */
  apiTokenFile: string | null;
  labels: Record<string, string>;
  logLevel: string;
  /** Also announce on the public hyperswarm DHT. Off by default: the cluster's own DHT is enough and private. */
  publicDht: boolean;
  /** Members that must be alive before the first Raft group forms (1 for a single-agent development cluster). */
  bootstrapExpect: number;
  /** Docker engine socket for the docker driver. */
  dockerSocket: string;
  /**
   * Read replicas (non-voting servers) the leader keeps beside the voters, 0 to LIMITS.autopilotMaxReadReplicas;
   * every other agent is a client. It matters on the agent that leads: give every agent the same value.
   */
  readReplicas: number;
  /** The node label whose values are failure domains; autopilot spreads the servers across them. */
  failureDomainLabel: string;
  /**
   * `--task-ports LOW-HIGH`: the ports this agent gives process tasks (PORT, SHOAL_PORT_<TARGET>) and its service
   * listeners. Agents that share a host need ranges that do not overlap.
   */
  taskPorts: { low: number; high: number };
  /** How the mesh spreads connections over a service's endpoints: round-robin or least-connections. */
  meshBalance: 'round-robin' | 'least-connections';
  /**
   * `--bridge-pool CIDR`: where this agent's container bridges take their /24s. Agents that share a Docker engine
   * may share a pool (a subnet the engine already has is skipped).
   */
  bridgePool: string;
  /**
   * `--secrets-dir`: where tasks' secrets and configs are written, on a memory file system (tmpfs); null: the
   * default, `/run/shoal` when /run is a tmpfs, else `/dev/shm/shoal` (src/runtime/task-files.ts).
   */
  secretsDir: string | null;
}

/** What flags (or a test) may set; undefined means "not given". */
export type ConfigOverrides = Partial<{
  name: string;
  dataDir: string;
  bind: string;
  join: string;
  clusterKeyFile: string;
  api: string;
  apiTokenFile: string;
  labels: string;
  logLevel: string;
  publicDht: boolean;
  bootstrapExpect: string | number;
  dockerSocket: string;
  readReplicas: string | number;
  failureDomainLabel: string;
  taskPorts: string;
  meshBalance: string;
  bridgePool: string;
  secretsDir: string;
}>;

/** The agent config file's keys and what each takes (checked by hand: zod would cost every agent 5 MB of memory). */
type FileValueKind = 'string' | 'name' | 'strings-or-string' | 'labels' | 'boolean' | 'integer';
export const FILE_KEYS = {
  name: 'name', data_dir: 'string', bind: 'string', join: 'strings-or-string', cluster_key_file: 'string', api: 'string',
  api_token_file: 'string', labels: 'labels', log_level: 'string', public_dht: 'boolean', bootstrap_expect: 'integer',
  docker_socket: 'string', read_replicas: 'integer', failure_domain_label: 'name', task_ports: 'string', mesh_balance: 'string',
  bridge_pool: 'string', secrets_dir: 'string',
} as const satisfies Record<string, FileValueKind>;
type FileConfig = { -readonly [K in keyof typeof FILE_KEYS]?: FileValue<(typeof FILE_KEYS)[K]> };
type FileValue<T extends FileValueKind> = T extends 'boolean' ? boolean : T extends 'integer' ? number : T extends 'labels' ? Record<string, string | number | boolean> : T extends 'strings-or-string' ? string | string[] : string;

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a map' : `${typeof v} ${JSON.stringify(v)}`);

/** What is wrong with `value` for a key of this kind, with the path inside the value when it is nested; or undefined. */
function fileValueProblem(kind: FileValueKind, value: unknown): { path: (string | number)[]; message: string } | undefined {
  const at = (message: string, path: (string | number)[] = []): { path: (string | number)[]; message: string } => ({ path, message });
  switch (kind) {
    case 'string':
      return typeof value === 'string' ? (value === '' ? at('must not be empty') : undefined) : at(`expected a string, got ${typeName(value)}`);
    case 'name':
      if (typeof value !== 'string') return at(`expected a string, got ${typeName(value)}`);
      return value.length < 1 || value.length > 128 ? at('must be 1 to 128 characters') : undefined;
    case 'strings-or-string':
      if (typeof value === 'string') return undefined;
      if (!Array.isArray(value)) return at(`expected a string or a list of strings, got ${typeName(value)}`);
      for (const [i, item] of value.entries()) if (typeof item !== 'string') return at(`expected a string, got ${typeName(item)}`, [i]);
      return undefined;
    case 'labels':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return at(`expected a map of label names to values, got ${typeName(value)}`);
      for (const [k, v] of Object.entries(value)) if (!['string', 'number', 'boolean'].includes(typeof v)) return at(`expected a string, number or boolean, got ${typeName(v)}`, [k]);
      return undefined;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : at(`expected true or false, got ${typeName(value)}`);
    case 'integer':
      return Number.isSafeInteger(value) ? undefined : at(`expected an integer, got ${typeName(value)}`);
  }
}

/** Parses host:port where host must be an IP address (hyperdht does no DNS; a name would leak a lookup). */
export function parseHostPort(text: string, where: string, opts: { requireIp?: boolean; defaultHost?: string } = {}): { host: string; port: number } {
  const t = text.trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(t);
  if (!m) throw new InvalidArgumentError(`${where}: "${text}" is not HOST:PORT`, { where });
  const host = m[1] ?? (m[2] === '' ? (opts.defaultHost ?? '0.0.0.0') : (m[2] as string));
  const port = Number(m[3]);
  if (port < 0 || port > 65535) throw new InvalidArgumentError(`${where}: port ${port} is out of range (0-65535)`, { where });
  if (opts.requireIp && !/^(\d{1,3}\.){3}\d{1,3}$/.test(host) && !host.includes(':')) {
    throw new InvalidArgumentError(`${where}: "${host}" must be an IP address (the peer network does not resolve names)`, { where });
  }
  return { host, port };
}

export function parseLabels(text: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`${where}: "${part}" is not KEY=VALUE`, { where });
    const key = part.slice(0, eq).trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9_.\-/]*$/.test(key)) throw new InvalidArgumentError(`${where}: label key "${key}" may hold only letters, digits, "_", ".", "-", "/"`, { where });
    if (key.startsWith('shoal.')) throw new InvalidArgumentError(`${where}: label keys starting with "shoal." are reserved for Shoal itself ("${key}")`, { where });
    out[key] = part.slice(eq + 1).trim();
  }
  return out;
}

function locate(text: string, path: readonly PropertyKey[]): string {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as (string | number)[], true) as { range?: [number, number, number] } | undefined;
    if (node?.range) {
      const p = lines.linePos(node.range[0]);
      return `${p.line}:${p.col}`;
    }
  }
  const root = doc.contents;
  if (isMap(root) && path.length > 0) {
    for (const pair of root.items) if (isScalar(pair.key) && pair.key.value === path[0] && pair.key.range) return String(lines.linePos(pair.key.range[0]).line);
  }
  return '1';
}

function readConfigFile(file: string): FileConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file });
  }
  const doc = parseDocument(text, { lineCounter: new LineCounter() });
  if (doc.errors.length > 0) throw new InvalidArgumentError(`${file}: YAML syntax error: ${doc.errors[0]!.message.split('\n')[0]}`, { file });
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InvalidArgumentError(`${file}:1: expected a map of settings, got ${typeName(raw)}`, { file });
  const messages: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const kind = (FILE_KEYS as Record<string, FileValueKind>)[key];
    if (kind === undefined) {
      messages.push(`${file}:${locate(text, [key])}: unknown key "${key}"`);
      continue;
    }
    const problem = fileValueProblem(kind, value);
    if (problem) messages.push(`${file}:${locate(text, [key, ...problem.path])}: ${[key, ...problem.path].join('.')}: ${problem.message}`);
  }
  if (messages.length > 0) throw new InvalidArgumentError(messages.join('\n'), { file });
  return raw as FileConfig;
}

/** Builds the configuration from defaults, the file, the environment and flags (in rising precedence). */
export function loadAgentConfig(overrides: ConfigOverrides & { config?: string }, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const file = overrides.config ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  const f = file ? readConfigFile(file) : {};
  const from = (flag: string, key: string): string => (file && !(flag in overrides) ? `${file}: ${key}` : `--${flag}`);
  const pick = <K extends keyof ConfigOverrides>(key: K, fileValue: ConfigOverrides[K] | undefined): ConfigOverrides[K] | undefined => overrides[key] ?? fileValue;

  const bindText = pick('bind', f.bind) ?? DEFAULT_BIND;
  const joinRaw = overrides.join ?? (Array.isArray(f.join) ? f.join.join(',') : f.join) ?? '';
  const apiText = pick('api', f.api) ?? DEFAULT_API;
  const logLevel = (pick('logLevel', f.log_level) ?? env['SHOAL_LOG_LEVEL'] ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new InvalidArgumentError(`${overrides.logLevel !== undefined ? '--log-level' : f.log_level !== undefined ? `${file}: log_level` : 'SHOAL_LOG_LEVEL'}: "${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  }
  const bootstrapRaw = overrides.bootstrapExpect ?? f.bootstrap_expect ?? 3;
  const bootstrapExpect = Number(bootstrapRaw);
  if (!Number.isInteger(bootstrapExpect) || bootstrapExpect < 1 || bootstrapExpect > 7 || bootstrapExpect === 2) {
    throw new InvalidArgumentError(`${from('bootstrap-expect', 'bootstrap_expect')}: must be 1 (development) or 3 to 7 members, got ${JSON.stringify(bootstrapRaw)} (2 cannot survive the loss of either member)`);
  }
  const replicasRaw = overrides.readReplicas ?? f.read_replicas ?? LIMITS.autopilotMaxReadReplicas;
  const readReplicas = Number(replicasRaw);
  if (!Number.isInteger(readReplicas) || readReplicas < 0 || readReplicas > LIMITS.autopilotMaxReadReplicas) {
    throw new InvalidArgumentError(`${from('read-replicas', 'read_replicas')}: must be 0 to ${LIMITS.autopilotMaxReadReplicas} (limit autopilotMaxReadReplicas), got ${JSON.stringify(replicasRaw)}`);
  }
  const failureDomainLabel = pick('failureDomainLabel', f.failure_domain_label) ?? DEFAULT_FAILURE_DOMAIN_LABEL;
  if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/.test(failureDomainLabel)) {
    throw new InvalidArgumentError(`${from('failure-domain-label', 'failure_domain_label')}: "${failureDomainLabel}" is not a label name (letters, digits, '.', '_', '-', '/')`);
  }
  const taskPortsText = pick('taskPorts', f.task_ports) ?? `${LIMITS.meshTaskPortsLow}-${LIMITS.meshTaskPortsHigh}`;
  const range = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(taskPortsText);
  const taskPorts = range ? { low: Number(range[1]), high: Number(range[2]) } : undefined;
  if (!taskPorts || taskPorts.low < 1024 || taskPorts.high > 65535 || taskPorts.high - taskPorts.low < 15) {
    throw new InvalidArgumentError(`${from('task-ports', 'task_ports')}: "${taskPortsText}" is not a range LOW-HIGH of at least 16 ports between 1024 and 65535`);
  }
  const meshBalance = pick('meshBalance', f.mesh_balance) ?? 'round-robin';
  if (meshBalance !== 'round-robin' && meshBalance !== 'least-connections') {
    throw new InvalidArgumentError(`${from('mesh-balance', 'mesh_balance')}: "${meshBalance}" is not round-robin or least-connections`);
  }
  const bridgePoolText = pick('bridgePool', f.bridge_pool) ?? DEFAULT_BRIDGE_POOL;
  let bridgePool: string;
  try {
    bridgePool = checkBridgePool(bridgePoolText);
  } catch (err) {
    throw new InvalidArgumentError(`${from('bridge-pool', 'bridge_pool')}: ${(err as Error).message}`);
  }
  const baseDir = file ? resolve(file, '..') : process.cwd();
  const absolute = (p: string | undefined): string | null => (p === undefined ? null : isAbsolute(p) ? p : resolve(baseDir, p));
  const labels = overrides.labels !== undefined
    ? parseLabels(overrides.labels, '--labels')
    : Object.fromEntries(Object.entries(f.labels ?? {}).map(([k, v]) => [k, String(v)]));
  return {
    name: pick('name', f.name) ?? hostname(),
    dataDir: absolute(pick('dataDir', f.data_dir)) ?? DEFAULT_DATA_DIR,
    bind: parseHostPort(bindText, from('bind', 'bind'), { requireIp: true }),
    join: joinRaw.split(',').map((s) => s.trim()).filter(Boolean).map((j) => parseHostPort(j, from('join', 'join'), { requireIp: true })),
    clusterKeyFile: absolute(pick('clusterKeyFile', f.cluster_key_file)),
    api: parseHostPort(apiText, from('api', 'api'), { defaultHost: '127.0.0.1' }),
    apiTokenFile: absolute(pick('apiTokenFile', f.api_token_file)),
    labels,
    logLevel,
    publicDht: overrides.publicDht ?? f.public_dht ?? false,
    bootstrapExpect,
    dockerSocket: pick('dockerSocket', f.docker_socket) ?? '/var/run/docker.sock',
    readReplicas,
    failureDomainLabel,
    taskPorts,
    meshBalance,
    bridgePool,
    secretsDir: absolute(pick('secretsDir', f.secrets_dir)),
  };
}

/** The bearer token remote API callers must send (`--api-token-file`): at least 16 characters. */
export function readApiToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the API token file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (token.length < 16) throw new InvalidArgumentError(`the API token in ${file} is shorter than 16 characters`);
  return token;
}
