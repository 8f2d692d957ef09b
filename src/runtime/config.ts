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
import { z } from 'zod';
import { InvalidArgumentError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { DEFAULT_FAILURE_DOMAIN_LABEL } from '../autopilot/index.js';
import { LOG_LEVELS } from '../log/logger.js';

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
}>;

const fileSchema = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  data_dir: z.string().min(1).optional(),
  bind: z.string().optional(),
  join: z.union([z.array(z.string()), z.string()]).optional(),
  cluster_key_file: z.string().optional(),
  api: z.string().optional(),
  api_token_file: z.string().optional(),
  labels: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  log_level: z.string().optional(),
  public_dht: z.boolean().optional(),
  bootstrap_expect: z.number().int().optional(),
  docker_socket: z.string().optional(),
  read_replicas: z.number().int().optional(),
  failure_domain_label: z.string().min(1).max(128).optional(),
});

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

function readConfigFile(file: string): z.infer<typeof fileSchema> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { file });
  }
  const doc = parseDocument(text, { lineCounter: new LineCounter() });
  if (doc.errors.length > 0) throw new InvalidArgumentError(`${file}: YAML syntax error: ${doc.errors[0]!.message.split('\n')[0]}`, { file });
  const raw: unknown = doc.toJS() ?? {};
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const messages = parsed.error.issues.flatMap((i) => {
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${file}:${locate(text, [...i.path, k])}: unknown key "${k}"`);
      return [`${file}:${locate(text, i.path)}: ${i.path.join('.') || '(top level)'}: ${i.message}`];
    });
    throw new InvalidArgumentError(messages.join('\n'), { file });
  }
  return parsed.data;
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
  };
}
