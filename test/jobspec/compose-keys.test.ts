/**
 * The "Every Compose key" tables of src/jobspec/README.md, held to what the parser does. The tables are read from the
 * README itself, so the document and this test cannot drift: every row is parsed twice per driver (with its key and
 * without it) and the README's status is checked against the outcome. The Compose Specification's JSON schema, when
 * its git mirror is on this machine, says which keys the tables must list.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { parse as parseYaml, stringify } from 'yaml';
import { JobSpecError, parseJobFile } from '../../src/jobspec/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const README = path.join(here, '../../src/jobspec/README.md');
const SECTION = '## Every Compose key';
/** A bare git repository of compose-spec/compose-spec; its schema is read at HEAD. */
const SCHEMA_GIT_DIR = process.env['COMPOSE_SPEC_GIT_DIR'] ?? '/work/.mirror/compose-spec+compose-spec/repo';
const SCHEMA_PATH = 'schema/compose-spec.json';

type Status = 'honoured' | 'containers only' | 'ignored' | 'no effect' | 'refused';
const STATUSES: readonly Status[] = ['honoured', 'containers only', 'ignored', 'no effect', 'refused'];
type Driver = 'docker' | 'process';
type Outcome = 'honoured' | 'ignored' | 'no effect' | 'refused';

/** What each status means for each driver's parse. */
const EXPECTED: Record<Status, Record<Driver, Outcome>> = {
  'honoured': { docker: 'honoured', process: 'honoured' },
  'containers only': { docker: 'honoured', process: 'refused' },
  'ignored': { docker: 'ignored', process: 'ignored' },
  'no effect': { docker: 'no effect', process: 'no effect' },
  'refused': { docker: 'refused', process: 'refused' },
};

type Path = (string | number)[];

/** Where a table's keys live in a job file, and what else the file needs for them to make sense. */
interface Place {
  at: Path;
  /** YAML merged into the file (with and without the key). */
  context?: string;
}

/** Each README table, by its heading: the snippets' id and where its keys are written (several places: each is run). */
const TABLES: Record<string, { id: string; places: Place[] }> = {
  'Top level': { id: 'top', places: [{ at: [] }] },
  'A service (`services.<name>`)': { id: 'service', places: [{ at: ['services', 'web'] }] },
  '`deploy` (`services.<name>.deploy`)': { id: 'deploy', places: [{ at: ['services', 'web', 'deploy'] }] },
  '`healthcheck` (`services.<name>.healthcheck`)': {
    id: 'healthcheck', places: [{ at: ['services', 'web', 'healthcheck'], context: 'services: { web: { healthcheck: { test: [CMD, "true"] } } }' }],
  },
  'A network (`networks.<name>`)': { id: 'network', places: [{ at: ['networks', 'front'] }] },
  'A service\'s network (`services.<name>.networks.<network>`)': {
    id: 'service-network', places: [{ at: ['services', 'web', 'networks', 'front'], context: 'networks: { front: {} }' }],
  },
  'A volume (`volumes.<name>`)': { id: 'volume', places: [{ at: ['volumes', 'data'] }] },
  'A secret (`secrets.<name>`)': { id: 'secret', places: [{ at: ['secrets', 's'] }] },
  'A config (`configs.<name>`)': { id: 'config', places: [{ at: ['configs', 'c'] }] },
  'A service\'s secret or config, long syntax (`services.<name>.secrets[]`, `services.<name>.configs[]`)': {
    id: 'file-ref', places: [
      { at: ['services', 'web', 'secrets', 0], context: 'secrets: { s: { file: ./s.txt } }' },
      { at: ['services', 'web', 'configs', 0], context: 'configs: { s: { file: ./s.txt } }' },
    ],
  },
  'A port, long syntax (`services.<name>.ports[]`)': { id: 'port', places: [{ at: ['services', 'web', 'ports', 0] }] },
  'A mount, long syntax (`services.<name>.volumes[]`)': {
    id: 'mount', places: [{ at: ['services', 'web', 'volumes', 0], context: 'volumes: { data: {} }' }],
  },
  'An env file, long syntax (`services.<name>.env_file[]`)': { id: 'env-file', places: [{ at: ['services', 'web', 'env_file', 0] }] },
};

/**
 * A plausible use of each key, as YAML written where the table's keys live (a `top` part goes at the top level of the
 * file, with and without the key). The value differs from the default, so that a key that is honoured changes the job.
 */
type Snippet = string | { yaml: string; top: string };
const SNIPPETS: Record<string, Record<string, Snippet>> = {
  'top': {
    'version': 'version: "3.8"',
    'name': 'name: shop',
    'include': 'include: [other.yaml]',
    'services': 'services: { api: { image: redis } }',
    'models': 'models: { llm: { model: ai/smollm2 } }',
    'networks': 'networks: { front: {} }',
    'volumes': 'volumes: { data: {} }',
    'secrets': 'secrets: { s: { file: ./s.txt } }',
    'configs': 'configs: { c: { content: hello } }',
    'x-*': 'x-defaults: { image: nginx }',
  },
  'service': {
    'annotations': 'annotations: { com.example.a: b }',
    'attach': 'attach: false',
    'blkio_config': 'blkio_config: { weight: 300 }',
    'build': 'build: .',
    'cap_add': 'cap_add: [NET_ADMIN]',
    'cap_drop': 'cap_drop: [ALL]',
    'cgroup': 'cgroup: private',
    'cgroup_parent': 'cgroup_parent: m-executor',
    'command': 'command: [echo, hi]',
    'configs': { yaml: 'configs: [c]', top: 'configs: { c: { content: hello } }' },
    'container_name': 'container_name: web1',
    'cpu_count': 'cpu_count: 2',
    'cpu_percent': 'cpu_percent: 50',
    'cpu_period': 'cpu_period: 100000',
    'cpu_quota': 'cpu_quota: 50000',
    'cpu_rt_period': 'cpu_rt_period: 1000000',
    'cpu_rt_runtime': 'cpu_rt_runtime: 950000',
    'cpu_shares': 'cpu_shares: 512',
    'cpus': 'cpus: 1.5',
    'cpuset': 'cpuset: "0-1"',
    'credential_spec': 'credential_spec: { config: my-spec }',
    'depends_on': 'depends_on: [db]',
    'deploy': 'deploy: { replicas: 2 }',
    'develop': 'develop: { watch: [{ path: ./src, action: sync, target: /app }] }',
    'device_cgroup_rules': 'device_cgroup_rules: ["c 1:3 mr"]',
    'devices': 'devices: ["/dev/ttyUSB0:/dev/ttyUSB0"]',
    'dns': 'dns: [10.0.0.2]',
    'dns_opt': 'dns_opt: [use-vc]',
    'dns_search': 'dns_search: [example.com]',
    'domainname': 'domainname: example.com',
    'entrypoint': 'entrypoint: [/entry.sh]',
    'env_file': 'env_file: ./web.env',
    'environment': 'environment: { A: "1" }',
    'expose': 'expose: ["3000"]',
    'extends': 'extends: { file: common.yaml, service: base }',
    'external_links': 'external_links: [redis_1]',
    'extra_hosts': 'extra_hosts: ["db:10.0.0.3"]',
    'gpus': 'gpus: all',
    'group_add': 'group_add: [mail]',
    'healthcheck': 'healthcheck: { test: [CMD, "true"] }',
    'hostname': 'hostname: web',
    'image': 'image: nginx:1.27',
    'init': 'init: true',
    'ipc': 'ipc: host',
    'isolation': 'isolation: default',
    'label_file': 'label_file: ./web.labels',
    'labels': 'labels: { a: b }',
    'links': 'links: [db]',
    'logging': 'logging: { driver: syslog }',
    'mac_address': 'mac_address: "02:42:ac:11:65:43"',
    'mem_limit': 'mem_limit: 512m',
    'mem_reservation': 'mem_reservation: 256m',
    'mem_swappiness': 'mem_swappiness: 0',
    'memswap_limit': 'memswap_limit: 1g',
    'models': 'models: [llm]',
    'network_mode': 'network_mode: none',
    'networks': { yaml: 'networks: [front]', top: 'networks: { front: {} }' },
    'oom_kill_disable': 'oom_kill_disable: true',
    'oom_score_adj': 'oom_score_adj: 500',
    'pid': 'pid: host',
    'pids_limit': 'pids_limit: 100',
    'platform': 'platform: linux/amd64',
    'ports': 'ports: ["8080:80"]',
    'post_start': 'post_start: [{ command: [echo, hi] }]',
    'pre_stop': 'pre_stop: [{ command: [echo, bye] }]',
    'privileged': 'privileged: true',
    'profiles': 'profiles: [debug]',
    'provider': 'provider: { type: awesomecloud }',
    'pull_policy': 'pull_policy: always',
    'pull_refresh_after': 'pull_refresh_after: 1h',
    'read_only': 'read_only: true',
    'restart': 'restart: always',
    'runtime': 'runtime: runc',
    'scale': 'scale: 2',
    'secrets': { yaml: 'secrets: [s]', top: 'secrets: { s: { file: ./s.txt } }' },
    'security_opt': 'security_opt: ["no-new-privileges:true"]',
    'shm_size': 'shm_size: 64m',
    'stdin_open': 'stdin_open: true',
    'stop_grace_period': 'stop_grace_period: 30s',
    'stop_signal': 'stop_signal: SIGQUIT',
    'storage_opt': 'storage_opt: { size: 1G }',
    'sysctls': 'sysctls: { net.core.somaxconn: 1024 }',
    'tmpfs': 'tmpfs: [/run]',
    'tty': 'tty: true',
    'ulimits': 'ulimits: { nofile: 65536 }',
    'use_api_socket': 'use_api_socket: true',
    'user': 'user: "1000:1000"',
    'userns_mode': 'userns_mode: host',
    'uts': 'uts: host',
    'volumes': 'volumes: ["/srv/data:/data"]',
    'volumes_from': 'volumes_from: [other]',
    'working_dir': 'working_dir: /app',
    'x-*': 'x-note: hi',
  },
  'deploy': {
    'endpoint_mode': 'endpoint_mode: dnsrr',
    'labels': 'labels: { a: b }',
    'mode': 'mode: global',
    'placement': 'placement: { constraints: [node.role==manager] }',
    'placement.constraints': 'placement: { constraints: [node.labels.zone==a] }',
    'placement.max_replicas_per_node': 'placement: { max_replicas_per_node: 2 }',
    'placement.preferences': 'placement: { preferences: [{ spread: node.labels.zone }] }',
    'replicas': 'replicas: 3',
    'resources': 'resources: { limits: { cpus: "0.5" } }',
    'resources.limits': 'resources: { limits: { memory: 512M } }',
    'resources.limits.cpus': 'resources: { limits: { cpus: "0.5" } }',
    'resources.limits.memory': 'resources: { limits: { memory: 512M } }',
    'resources.limits.pids': 'resources: { limits: { pids: 100 } }',
    'resources.reservations': 'resources: { reservations: { memory: 256M } }',
    'resources.reservations.cpus': 'resources: { reservations: { cpus: "0.25" } }',
    'resources.reservations.devices': 'resources: { reservations: { devices: [{ capabilities: [gpu] }] } }',
    'resources.reservations.generic_resources': 'resources: { reservations: { generic_resources: [{ discrete_resource_spec: { kind: gpu, value: 1 } }] } }',
    'resources.reservations.memory': 'resources: { reservations: { memory: 256M } }',
    'restart_policy': 'restart_policy: { condition: on-failure }',
    'restart_policy.condition': 'restart_policy: { condition: none }',
    'restart_policy.delay': 'restart_policy: { delay: 10s }',
    'restart_policy.max_attempts': 'restart_policy: { max_attempts: 3 }',
    'restart_policy.window': 'restart_policy: { window: 2m }',
    'rollback_config': 'rollback_config: { parallelism: 1 }',
    'rollback_config.delay': 'rollback_config: { delay: 10s }',
    'rollback_config.failure_action': 'rollback_config: { failure_action: pause }',
    'rollback_config.max_failure_ratio': 'rollback_config: { max_failure_ratio: 0.1 }',
    'rollback_config.monitor': 'rollback_config: { monitor: 30s }',
    'rollback_config.order': 'rollback_config: { order: start-first }',
    'rollback_config.parallelism': 'rollback_config: { parallelism: 2 }',
    'update_config': 'update_config: { parallelism: 2 }',
    'update_config.delay': 'update_config: { delay: 10s }',
    'update_config.failure_action': 'update_config: { failure_action: rollback }',
    'update_config.max_failure_ratio': 'update_config: { max_failure_ratio: 0.1 }',
    'update_config.monitor': 'update_config: { monitor: 30s }',
    'update_config.order': 'update_config: { order: start-first }',
    'update_config.parallelism': 'update_config: { parallelism: 2 }',
    'x-*': 'x-note: hi',
  },
  'healthcheck': {
    'disable': 'disable: true',
    'interval': 'interval: 10s',
    'retries': 'retries: 5',
    'start_interval': 'start_interval: 5s',
    'start_period': 'start_period: 30s',
    'test': 'test: [CMD-SHELL, "curl -f http://localhost/"]',
    'timeout': 'timeout: 5s',
    'x-*': 'x-note: hi',
  },
  'network': {
    'attachable': 'attachable: true',
    'driver': 'driver: macvlan',
    'driver_opts': 'driver_opts: { a: b }',
    'enable_ipv4': 'enable_ipv4: true',
    'enable_ipv6': 'enable_ipv6: true',
    'external': 'external: true',
    'internal': 'internal: true',
    'ipam': 'ipam: { config: [{ subnet: 10.5.0.0/16 }] }',
    'labels': 'labels: { a: b }',
    'name': 'name: shared-front',
    'x-*': 'x-note: hi',
  },
  'service-network': {
    'aliases': 'aliases: [www]',
    'driver_opts': 'driver_opts: { a: b }',
    'gw_priority': 'gw_priority: 100',
    'interface_name': 'interface_name: eth1',
    'ipv4_address': 'ipv4_address: 10.5.0.5',
    'ipv6_address': 'ipv6_address: "2001:db8::5"',
    'link_local_ips': 'link_local_ips: [169.254.0.5]',
    'mac_address': 'mac_address: "02:42:ac:11:65:43"',
    'priority': 'priority: 100',
    'x-*': 'x-note: hi',
  },
  'volume': {
    'driver': 'driver: nfs',
    'driver_opts': 'driver_opts: { type: nfs, o: addr=10.0.0.1, device: ":/export" }',
    'external': 'external: true',
    'labels': 'labels: { a: b }',
    'name': 'name: shared-data',
    'x-*': 'x-note: hi',
  },
  'secret': {
    'driver': '{ file: ./s.txt, driver: vault }',
    'driver_opts': '{ file: ./s.txt, driver_opts: { a: b } }',
    'environment': '{ environment: SHOAL_KEYS_VALUE }',
    'external': '{ external: true }',
    'file': '{ file: ./s.txt }',
    'labels': '{ file: ./s.txt, labels: { a: b } }',
    'name': '{ file: ./s.txt, name: db_pw }',
    'template_driver': '{ file: ./s.txt, template_driver: golang }',
    'x-*': '{ file: ./s.txt, x-note: hi }',
  },
  'config': {
    'content': '{ content: hello }',
    'environment': '{ environment: SHOAL_KEYS_VALUE }',
    'external': '{ external: true }',
    'file': '{ file: ./c.txt }',
    'labels': '{ file: ./c.txt, labels: { a: b } }',
    'name': '{ file: ./c.txt, name: app_conf }',
    'template_driver': '{ file: ./c.txt, template_driver: golang }',
    'x-*': '{ file: ./c.txt, x-note: hi }',
  },
  'file-ref': {
    'gid': '{ source: s, gid: "1000" }',
    'mode': '{ source: s, mode: "0400" }',
    'source': '{ source: s }',
    'target': '{ source: s, target: pw }',
    'uid': '{ source: s, uid: "1000" }',
    'x-*': '{ source: s, x-note: hi }',
  },
  'port': {
    'app_protocol': '{ target: 80, app_protocol: http }',
    'host_ip': '{ target: 80, host_ip: 127.0.0.1 }',
    'mode': '{ target: 80, mode: host }',
    'name': '{ target: 80, name: http }',
    'protocol': '{ target: 53, protocol: udp, mode: host }',
    'published': '{ target: 80, published: 8080 }',
    'target': '{ target: 80 }',
    'x-*': '{ target: 80, x-note: hi }',
  },
  'mount': {
    'bind': '{ type: bind, source: /srv/data, target: /data, bind: { propagation: rshared } }',
    'bind.create_host_path': '{ type: bind, source: /srv/data, target: /data, bind: { create_host_path: true } }',
    'bind.propagation': '{ type: bind, source: /srv/data, target: /data, bind: { propagation: rshared } }',
    'bind.recursive': '{ type: bind, source: /srv/data, target: /data, bind: { recursive: readonly } }',
    'bind.selinux': '{ type: bind, source: /srv/data, target: /data, bind: { selinux: z } }',
    'consistency': '{ type: bind, source: /srv/data, target: /data, consistency: cached }',
    'image': '{ type: bind, source: /srv/data, target: /data, image: { subpath: etc } }',
    'image.subpath': '{ type: bind, source: /srv/data, target: /data, image: { subpath: etc } }',
    'read_only': '{ type: bind, source: /srv/data, target: /data, read_only: true }',
    'source': '{ type: bind, source: /srv/data, target: /data }',
    'target': '{ type: bind, source: /srv/data, target: /data }',
    'tmpfs': '{ type: tmpfs, target: /cache, tmpfs: { size: 64m } }',
    'tmpfs.mode': '{ type: tmpfs, target: /cache, tmpfs: { mode: 1777 } }',
    'tmpfs.size': '{ type: tmpfs, target: /cache, tmpfs: { size: 64m } }',
    'type': '{ type: bind, source: /srv/data, target: /data }',
    'volume': '{ type: volume, source: data, target: /data, volume: { nocopy: true } }',
    'volume.labels': '{ type: volume, source: data, target: /data, volume: { labels: { a: b } } }',
    'volume.nocopy': '{ type: volume, source: data, target: /data, volume: { nocopy: true } }',
    'volume.subpath': '{ type: volume, source: data, target: /data, volume: { subpath: sub } }',
    'x-*': '{ type: bind, source: /srv/data, target: /data, x-note: hi }',
  },
  'env-file': {
    'format': '{ path: ./web.env, format: raw }',
    'path': '{ path: ./web.env }',
    'required': '{ path: ./missing.env, required: false }',
  },
};

/**
 * Refusals the parser reports somewhere other than at the key (table id | key -> the path it names). Each is a known
 * flaw of the parser's location, kept here so that this test notices when it is fixed.
 */
const REFUSED_ELSEWHERE: Record<string, string> = {
  // A process task's tmpfs mounts are refused by checks.ts on the canonical `volumes`, which the service's `tmpfs`
  // key does not map back to.
  'service|tmpfs': 'services.web',
};

/**
 * Options of a mount type a process task refuses whatever its options (a tmpfs mount): for a process task the option
 * changes nothing, the mount being refused with or without it, at the mount.
 */
const MOOT_FOR_PROCESS = new Set(['mount|tmpfs', 'mount|tmpfs.mode', 'mount|tmpfs.size']);

// ---------------------------------------------------------------------------------------------------------------
// The README's tables.

interface Row { table: string; id: string; key: string; status: Status; notes: string; line: number }

function readmeRows(): { rows: Row[]; problems: string[] } {
  const lines = readFileSync(README, 'utf8').split('\n');
  const start = lines.indexOf(SECTION);
  const rows: Row[] = [];
  const problems: string[] = [];
  if (start < 0) return { rows, problems: [`no "${SECTION}" section`] };
  let table: string | undefined;
  for (let n = start + 1; n < lines.length; n++) {
    const line = lines[n]!;
    if (line.startsWith('## ')) break;
    if (line.startsWith('### ')) {
      table = line.slice(4).trim();
      if (!(table in TABLES)) problems.push(`README line ${n + 1}: table "${table}" is not known to this test`);
      continue;
    }
    if (!line.startsWith('|')) continue;
    const cells = line.replace(/^\|/, '').replace(/\|\s*$/, '').split(/(?<!\\)\|/).map((c) => c.trim());
    if (cells[0] === 'key' || /^-+$/.test(cells[0] ?? '')) continue;
    if (table === undefined || !(table in TABLES)) continue;
    const [keyCell = '', status = '', notes = ''] = cells;
    const key = keyCell.replace(/^`|`$/g, '');
    if (cells.length !== 3) problems.push(`README line ${n + 1}: expected 3 cells (key | status | notes), got ${cells.length}`);
    if (!STATUSES.includes(status as Status)) problems.push(`README line ${n + 1}: status "${status}" is not one of ${STATUSES.join(', ')}`);
    else rows.push({ table, id: TABLES[table]!.id, key, status: status as Status, notes, line: n + 1 });
  }
  return { rows, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Building and parsing a file for one row.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(into: Obj, from: unknown): void {
  if (!isObj(from)) return;
  for (const [k, v] of Object.entries(from)) {
    if (isObj(v) && isObj(into[k])) merge(into[k], v);
    else into[k] = structuredClone(v);
  }
}

/** Puts `value` at `at` in `root`, creating the mappings and lists on the way, merging into a mapping already there. */
function putAt(root: Obj, at: Path, value: unknown): void {
  if (at.length === 0) return merge(root, value);
  let node = root as Record<string | number, unknown>;
  for (const [i, k] of at.entries()) {
    if (i === at.length - 1) {
      if (isObj(node[k]) && isObj(value)) merge(node[k], value);
      else node[k] = value;
      return;
    }
    if (node[k] === undefined || node[k] === null) node[k] = typeof at[i + 1] === 'number' ? [] : {};
    node = node[k] as Record<string | number, unknown>;
  }
}

/** The key's actual path in the snippet (`x-*` matches any `x-` field); undefined when the snippet does not set it. */
function keyPathIn(snippet: unknown, key: string): string[] | undefined {
  const out: string[] = [];
  let node = snippet;
  for (const segment of key.split('.')) {
    if (!isObj(node)) return undefined;
    const found = segment === 'x-*' ? Object.keys(node).find((k) => k.startsWith('x-')) : segment in node ? segment : undefined;
    if (found === undefined) return undefined;
    out.push(found);
    node = node[found];
  }
  return out;
}

function withoutKey(snippet: unknown, keyPath: string[]): unknown {
  const copy = structuredClone(snippet) as Obj;
  let node = copy;
  for (const k of keyPath.slice(0, -1)) node = node[k] as Obj;
  delete node[keyPath[keyPath.length - 1]!];
  return copy;
}

function jobFile(place: Place, snippet: Snippet, value: unknown, driver: Driver): string {
  const web = driver === 'docker' ? { image: 'nginx' } : { 'x-shoal': { driver: 'process' }, command: ['sleep', '1'] };
  const root: Obj = { services: { web } };
  if (place.context !== undefined) merge(root, parseYaml(place.context));
  if (typeof snippet === 'object') merge(root, parseYaml(snippet.top));
  putAt(root, place.at, value);
  return stringify(root);
}

/** As `shoal job run` parses: it reads env files on its machine (here: any file but a "missing" one holds A=1). */
const OPTIONS = {
  file: 'job.yaml', env: { SHOAL_KEYS_VALUE: 'v' }, baseDir: '/srv', home: '/home/u',
  readFile: (file: string): string => {
    if (file.includes('missing')) throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
    return 'A=1\n';
  },
};

type Parsed = { ok: true; result: unknown; warnings: { path: string; text: string }[] } | { ok: false; issues: { path: string; message: string }[] };

function parse(text: string): Parsed {
  try {
    const { job, contents, warnings } = parseJobFile(text, OPTIONS);
    // A warning reads "file:line:column: path: message" (no line and column when unknown).
    return { ok: true, result: { job, contents }, warnings: warnings.map((w) => ({ path: /^[^:]+(?::\d+:\d+)?: (\S+): /.exec(w)?.[1] ?? '', text: w })) };
  } catch (err) {
    if (!(err instanceof JobSpecError)) throw err;
    return { ok: false, issues: err.issues.map((i) => ({ path: i.path, message: i.message })) };
  }
}

const sameOutcome = (a: Parsed, b: Parsed): boolean => (a.ok && b.ok ? isDeepStrictEqual(a.result, b.result) : !a.ok && !b.ok && isDeepStrictEqual(a.issues, b.issues));

/**
 * What the parser does with the row's key for one driver and place: the file is parsed with the snippet and with
 * the snippet less the key. A message "names the key" when it is at the key, inside it, or at a key that contains it
 * below the table's place (a warning at `deploy.update_config` names `update_config.delay`).
 */
function observe(row: Row, place: Place, driver: Driver): { outcome: Outcome | string; issue?: { path: string; message: string } } {
  const snippet = SNIPPETS[row.id]![row.key]!;
  const value = parseYaml(typeof snippet === 'string' ? snippet : snippet.yaml) as unknown;
  const keyPath = keyPathIn(value, row.key)!;
  const full = [...place.at, ...keyPath].join('.');
  const names = (p: string): boolean => {
    if (p === full || p.startsWith(`${full}.`)) return true;
    for (let n = place.at.length + 1; n < place.at.length + keyPath.length; n++) if (p === [...place.at, ...keyPath].slice(0, n).join('.')) return true;
    return false;
  };
  const elsewhere = REFUSED_ELSEWHERE[`${row.id}|${row.key}`];
  const withIt = parse(jobFile(place, snippet, value, driver));
  const without = parse(jobFile(place, snippet, withoutKey(value, keyPath), driver));
  if (!withIt.ok) {
    const issue = withIt.issues.find((i) => names(i.path) || (i.path === elsewhere && (without.ok || !without.issues.some((j) => j.path === elsewhere))));
    if (issue) return { outcome: 'refused', issue };
    if (sameOutcome(withIt, without)) return { outcome: 'no effect' };
    return { outcome: `an error that does not name ${full}: ${withIt.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}` };
  }
  if (withIt.warnings.some((w) => names(w.path))) {
    return { outcome: sameOutcome(withIt, without) ? 'ignored' : `a warning about ${full}, yet the job changes with it` };
  }
  return { outcome: sameOutcome(withIt, without) ? 'no effect' : 'honoured' };
}

// ---------------------------------------------------------------------------------------------------------------
// The Compose Specification's keys, by table.

type SchemaNode = Record<string, any>;

/** The mapping form of a schema node: through `$ref`, list `items` and `oneOf`, the first node with `properties`. */
function objectForm(schema: SchemaNode, node: SchemaNode | undefined): SchemaNode | undefined {
  if (node === undefined) return undefined;
  if (typeof node['$ref'] === 'string') return objectForm(schema, node['$ref'].replace(/^#\//, '').split('/').reduce((n: SchemaNode, k: string) => n?.[k], schema));
  if (node['properties']) return node;
  for (const branch of [node['items'], ...(node['oneOf'] ?? []), ...(node['anyOf'] ?? [])]) {
    const found = objectForm(schema, branch);
    if (found) return found;
  }
  return undefined;
}

/** The keys of a schema object, those of its mapping-valued keys too down to `depth` levels, and `x-*` if it allows them. */
function schemaKeys(schema: SchemaNode, node: SchemaNode | undefined, depth: number, prefix = ''): string[] {
  const object = objectForm(schema, node);
  if (!object) throw new Error(`the schema has no mapping at ${prefix || 'the root'}`);
  const keys: string[] = [];
  for (const [key, child] of Object.entries(object['properties'] as Record<string, SchemaNode>)) {
    keys.push(`${prefix}${key}`);
    const sub = child['properties'] ? child : undefined; // mappings written inline; lists and $refs are leaves here
    if (depth > 1 && sub) keys.push(...schemaKeys(schema, sub, depth - 1, `${prefix}${key}.`));
  }
  if (prefix === '' && object['patternProperties'] && '^x-' in object['patternProperties']) keys.push('x-*');
  return keys;
}

function specKeysByTable(schema: SchemaNode): Record<string, string[]> {
  const d = schema['definitions'] as SchemaNode;
  const service = d['service']['properties'] as SchemaNode;
  // A service's `networks` is a list of names or a mapping of names (a pattern) to an entry: that entry.
  const serviceNetworks = { oneOf: (service['networks']['oneOf'] as SchemaNode[]).flatMap((b) => Object.values(b['patternProperties'] ?? {})) };
  return {
    'top': schemaKeys(schema, schema, 1),
    'service': schemaKeys(schema, d['service'], 1),
    'deploy': schemaKeys(schema, d['deployment'], 3),
    'healthcheck': schemaKeys(schema, d['healthcheck'], 1),
    'network': schemaKeys(schema, d['network'], 1),
    'service-network': schemaKeys(schema, serviceNetworks, 1),
    'volume': schemaKeys(schema, d['volume'], 1),
    'secret': schemaKeys(schema, d['secret'], 1),
    'config': schemaKeys(schema, d['config'], 1),
    'file-ref': schemaKeys(schema, service['secrets'], 1),
    'port': schemaKeys(schema, service['ports'], 1),
    'mount': schemaKeys(schema, service['volumes'], 2),
    'env-file': schemaKeys(schema, { oneOf: [d['env_file']['oneOf'][1]['items']] }, 1),
  };
}

function readSchema(): SchemaNode | string {
  if (!existsSync(SCHEMA_GIT_DIR)) return `no compose-spec mirror at ${SCHEMA_GIT_DIR} (set COMPOSE_SPEC_GIT_DIR to a clone's git directory)`;
  const text = execFileSync('git', ['--git-dir', SCHEMA_GIT_DIR, 'show', `HEAD:${SCHEMA_PATH}`], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(text) as SchemaNode;
}

// ---------------------------------------------------------------------------------------------------------------

const { rows, problems } = readmeRows();

t.test('the README\'s tables are well-formed, and every row has a snippet that sets its key', async (t) => {
  t.same(problems, [], 'every table is known and every row reads as key | status | notes');
  t.ok(rows.length > 100, `the tables have rows (${rows.length})`);
  for (const id of new Set(Object.values(TABLES).map((x) => x.id))) t.ok(rows.some((r) => r.id === id), `table ${id} is in the README`);
  const seen = new Set<string>();
  for (const row of rows) {
    const at = `${row.table}: ${row.key} (README line ${row.line})`;
    t.notOk(seen.has(`${row.id}|${row.key}`), `${at} is listed once`);
    seen.add(`${row.id}|${row.key}`);
    const snippet = SNIPPETS[row.id]?.[row.key];
    if (snippet === undefined) {
      t.fail(`${at} has no snippet in SNIPPETS.${row.id}`);
      continue;
    }
    t.ok(keyPathIn(parseYaml(typeof snippet === 'string' ? snippet : snippet.yaml), row.key), `${at}: the snippet sets the key`);
    if (row.status === 'refused' || row.status === 'containers only') t.not(row.notes, '', `${at}: a refusal gives its reason`);
  }
  for (const [id, snippets] of Object.entries(SNIPPETS)) {
    for (const key of Object.keys(snippets)) t.ok(seen.has(`${id}|${key}`), `the snippet ${id}.${key} has a row in the README`);
  }
});

const schema = readSchema();
t.test('the README lists the Compose Specification\'s keys, and only those', { skip: typeof schema === 'string' ? schema : false }, async (t) => {
  if (typeof schema === 'string') return;
  const spec = specKeysByTable(schema);
  for (const [id, keys] of Object.entries(spec)) {
    const listed = new Set(rows.filter((r) => r.id === id).map((r) => r.key));
    t.same(keys.filter((k) => !listed.has(k)).sort(), [], `${id}: every key of the schema has a row`);
    t.same([...listed].filter((k) => !keys.includes(k)).sort(), [], `${id}: every row is a key of the schema`);
  }
});

for (const [table, { id, places }] of Object.entries(TABLES)) {
  t.test(`${table}: each key does what the README says`, async (t) => {
    for (const row of rows.filter((r) => r.id === id && SNIPPETS[id]?.[r.key] !== undefined)) {
      for (const [n, place] of places.entries()) {
        for (const driver of ['docker', 'process'] as const) {
          const expected = driver === 'process' && MOOT_FOR_PROCESS.has(`${row.id}|${row.key}`) ? 'no effect' : EXPECTED[row.status][driver];
          const where = `${row.key} (README line ${row.line}, ${driver}${places.length > 1 ? `, place ${n + 1}` : ''})`;
          const seen = observe(row, place, driver);
          t.equal(seen.outcome, expected, `${where}: ${expected}`);
          // A refusal the README calls an unknown key gets no reason from the parser, and the README says so.
          if (row.status === 'refused' && seen.issue) {
            const bare = /^unknown key "[^"]+"$/.test(seen.issue.message);
            t.equal(bare, row.notes.startsWith('unknown key'), `${where}: the note ("${row.notes}") says whether the message gives a reason ("${seen.issue.message}")`);
          }
        }
      }
    }
  });
}

t.test('a refusal reported away from its key is still reported there (else: fix REFUSED_ELSEWHERE)', async (t) => {
  for (const [entry, at] of Object.entries(REFUSED_ELSEWHERE)) {
    const [id, key] = entry.split('|') as [string, string];
    const row = rows.find((r) => r.id === id && r.key === key);
    if (!row) {
      t.fail(`${entry} is not a row of the README`);
      continue;
    }
    const place = Object.values(TABLES).find((x) => x.id === id)!.places[0]!;
    const seen = observe(row, place, 'process');
    t.equal(seen.issue?.path, at, `${entry}: refused at ${at}`);
  }
});
