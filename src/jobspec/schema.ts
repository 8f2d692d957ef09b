/**
 * The Compose subset Shoal accepts, as strict zod schemas over the YAML after variable substitution. A key that is
 * not here is an error, except the keys listed in HARMLESS_KEYS, which are dropped with a warning (as
 * `docker stack deploy` does). Values keep Compose's flexible shapes (strings or numbers, short or long syntax);
 * the conversion to the canonical job normalises them.
 */
import { z } from 'zod';

const scalar = z.union([z.string(), z.number(), z.boolean()]);
const stringMap = z.union([
  z.record(z.string(), z.union([scalar, z.null()])),
  z.array(z.string()),
]);
const intLike = z.union([z.number(), z.string()]);
const stringOrList = z.union([z.string(), z.array(z.union([z.string(), z.number()]))]);

const portLong = z.strictObject({
  target: intLike,
  published: intLike.optional(),
  protocol: z.string().optional(),
  mode: z.string().optional(),
  host_ip: z.string().optional(),
  name: z.string().optional(),
  app_protocol: z.string().optional(),
});

/** Booleans, also as the strings "true" and "false" that a ${VAR} substitution leaves (as Compose reads them). */
const boolLike = z.union([z.boolean(), z.string()]);

/**
 * A top-level network. Keys that only matter to a Docker network driver are accepted here and warned about (or
 * refused) by the conversion, so that the message can say why.
 */
const networkLong = z.strictObject({
  driver: z.string().optional(),
  internal: boolLike.optional(),
  external: z.union([boolLike, z.strictObject({ name: z.string() })]).optional(),
  name: z.string().optional(),
  attachable: z.unknown().optional(),
  labels: z.unknown().optional(),
  driver_opts: z.unknown().optional(),
  enable_ipv4: z.unknown().optional(),
  enable_ipv6: z.unknown().optional(),
  ipam: z.unknown().optional(),
});

/** A service's entry under `networks:` in the mapping form. */
const serviceNetworkLong = z.strictObject({
  aliases: z.array(z.string()).optional(),
  ipv4_address: z.unknown().optional(),
  ipv6_address: z.unknown().optional(),
  priority: z.unknown().optional(),
  gw_priority: z.unknown().optional(),
  link_local_ips: z.unknown().optional(),
  mac_address: z.unknown().optional(),
  driver_opts: z.unknown().optional(),
  interface_name: z.unknown().optional(),
});

const volumeLong = z.strictObject({
  type: z.string(),
  source: z.string().optional(),
  target: z.string(),
  read_only: z.boolean().optional(),
  bind: z.strictObject({ propagation: z.string().optional(), create_host_path: z.boolean().optional() }).optional(),
  volume: z.strictObject({ nocopy: z.boolean().optional() }).optional(),
  tmpfs: z.strictObject({ size: z.union([z.string(), z.number()]).optional(), mode: z.unknown().optional() }).optional(),
});

/**
 * A top-level secret or config. The keys Shoal refuses (`driver`, `template_driver`, `driver_opts`, and `content` on
 * a secret) are accepted here and refused by the conversion, so that the message can say why.
 */
const fileObjectLong = z.strictObject({
  file: z.string().optional(),
  environment: z.string().optional(),
  content: z.string().optional(),
  external: z.union([boolLike, z.strictObject({ name: z.string() })]).optional(),
  name: z.string().optional(),
  labels: z.unknown().optional(),
  driver: z.unknown().optional(),
  driver_opts: z.unknown().optional(),
  template_driver: z.unknown().optional(),
});

/** A service's use of a secret or config: its key alone, or Compose's long syntax (uid and gid are strings there). */
const fileRef = z.union([z.string(), z.strictObject({
  source: z.string(),
  target: z.string().optional(),
  uid: intLike.optional(),
  gid: intLike.optional(),
  mode: intLike.optional(),
})]);

const healthcheck = z.strictObject({
  test: stringOrList.optional(),
  interval: scalar.optional(),
  timeout: scalar.optional(),
  retries: intLike.optional(),
  start_period: scalar.optional(),
  start_interval: scalar.optional(),
  disable: z.boolean().optional(),
});

const reservations = z.strictObject({
  cpus: z.union([z.string(), z.number()]).optional(),
  memory: z.union([z.string(), z.number()]).optional(),
});
/** Limits take a pids count too; a reservation has none (Compose's schema has none either). */
const limits = reservations.extend({ pids: intLike.optional() });

const ulimit = z.union([intLike, z.strictObject({ soft: intLike, hard: intLike })]);

const deploy = z.strictObject({
  mode: z.string().optional(),
  replicas: intLike.optional(),
  endpoint_mode: z.string().optional(),
  labels: stringMap.optional(),
  placement: z.strictObject({
    constraints: z.array(z.string()).optional(),
    preferences: z.array(z.strictObject({ spread: z.string() })).optional(),
    max_replicas_per_node: intLike.optional(),
  }).optional(),
  resources: z.strictObject({ reservations: reservations.optional(), limits: limits.optional() }).optional(),
  restart_policy: z.strictObject({
    condition: z.string().optional(),
    delay: scalar.optional(),
    max_attempts: intLike.optional(),
    window: scalar.optional(),
  }).optional(),
});

/**
 * `x-shoal.state`: a stateful service. Values keep their loose shapes (a count may be a `${VAR}` string, a name a
 * number); the conversion checks them, and checks.ts the rules between them.
 */
const state = z.strictObject({
  partitions: intLike.optional(),
  replicas: intLike.optional(),
  scheme: z.string().optional(),
  names: z.array(z.union([z.string(), z.number()])).optional(),
  spread: z.string().optional(),
  collections: z.array(z.strictObject({ name: z.union([z.string(), z.number()]), kind: z.string() })).optional(),
});

export const serviceSchema = z.strictObject({
  image: z.string().optional(),
  command: z.union([z.string(), z.array(z.union([z.string(), z.number()]))]).optional(),
  entrypoint: z.union([z.string(), z.array(z.union([z.string(), z.number()]))]).optional(),
  working_dir: z.string().optional(),
  environment: stringMap.optional(),
  env_file: z.union([z.string(), z.array(z.union([z.string(), z.strictObject({ path: z.string(), required: boolLike.optional(), format: z.string().optional() })]))]).optional(),
  ports: z.array(z.union([z.string(), z.number(), portLong])).optional(),
  expose: z.array(z.union([z.string(), z.number()])).optional(),
  network_mode: z.string().optional(),
  networks: z.union([z.array(z.string()), z.record(z.string(), z.union([serviceNetworkLong, z.null()]))]).optional(),
  volumes: z.array(z.union([z.string(), volumeLong])).optional(),
  labels: stringMap.optional(),
  healthcheck: healthcheck.optional(),
  stop_grace_period: scalar.optional(),
  stop_signal: z.string().optional(),
  user: z.union([z.string(), z.number()]).optional(),
  cap_add: z.array(z.string()).optional(),
  cap_drop: z.array(z.string()).optional(),
  sysctls: stringMap.optional(),
  ulimits: z.record(z.string(), ulimit).optional(),
  init: boolLike.optional(),
  hostname: z.string().optional(),
  extra_hosts: z.union([z.array(z.string()), z.record(z.string(), z.string())]).optional(),
  dns: z.union([z.string(), z.array(z.string())]).optional(),
  dns_search: z.union([z.string(), z.array(z.string())]).optional(),
  dns_opt: z.array(z.string()).optional(),
  read_only: boolLike.optional(),
  platform: z.string().optional(),
  runtime: z.string().optional(),
  tmpfs: z.union([z.string(), z.array(z.string())]).optional(),
  secrets: z.array(fileRef).optional(),
  configs: z.array(fileRef).optional(),
  deploy: deploy.optional(),
  'x-shoal': z.strictObject({ driver: z.string().optional(), state: state.optional() }).optional(),
});

export const fileSchema = z.strictObject({
  name: z.string().optional(),
  services: z.record(z.string(), z.union([serviceSchema, z.null()])),
  'x-shoal': z.strictObject({ type: z.string().optional() }).optional(),
  networks: z.record(z.string(), z.union([networkLong, z.null()])).optional(),
  volumes: z.record(z.string(), z.union([z.strictObject({
    driver: z.string().optional(),
    driver_opts: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
    external: z.union([boolLike, z.strictObject({ name: z.string() })]).optional(),
    name: z.string().optional(),
    labels: z.unknown().optional(),
  }), z.null()])).optional(),
  secrets: z.record(z.string(), z.union([fileObjectLong, z.null()])).optional(),
  configs: z.record(z.string(), z.union([fileObjectLong, z.null()])).optional(),
});

export type ComposeFile = z.infer<typeof fileSchema>;
export type ComposeService = z.infer<typeof serviceSchema>;
export type ComposeNetwork = z.infer<typeof networkLong>;
export type ComposeServiceNetwork = z.infer<typeof serviceNetworkLong>;
export type ComposeFileObject = z.infer<typeof fileObjectLong>;
export type ComposeState = z.infer<typeof state>;

/**
 * Keys Shoal ignores with a warning, by where they appear. Either they are obsolete (`version`), or they only make
 * sense for a single Docker host and `docker stack deploy` ignores them too.
 */
export const HARMLESS_KEYS: { file: Record<string, string>; service: Record<string, string>; deploy: Record<string, string> } = {
  file: {
    version: 'the top-level "version" is obsolete and ignored',
  },
  service: {
    build: 'images are not built by Shoal; "build" is ignored (push the image, or build it on each node)',
    container_name: 'Shoal names containers after allocations; "container_name" is ignored',
    depends_on: '"depends_on" is ignored: services start independently in a cluster',
    restart: '"restart" is ignored: use deploy.restart_policy',
    links: '"links" is ignored',
    external_links: '"external_links" is ignored',
    domainname: '"domainname" is ignored',
    cgroup_parent: '"cgroup_parent" is ignored',
    security_opt: '"security_opt" is ignored',
    userns_mode: '"userns_mode" is ignored',
    logging: '"logging" is ignored: Shoal keeps task logs itself (`shoal alloc logs`)',
    tty: '"tty" is ignored',
    stdin_open: '"stdin_open" is ignored',
    // docker stack deploy ignores these too (docker/cli's unsupported properties): the task runs without them.
    privileged: '"privileged" is ignored, as docker stack deploy ignores it: the container runs unprivileged (add only the capabilities it needs with cap_add)',
    devices: '"devices" is ignored, as docker stack deploy ignores it: the container gets no host device',
    ipc: '"ipc" is ignored, as docker stack deploy ignores it: the task has its own IPC namespace',
    pid: '"pid" is ignored, as docker stack deploy ignores it: the task has its own PID namespace',
    mac_address: '"mac_address" is ignored, as docker stack deploy ignores it: addresses are assigned by Shoal',
    shm_size: '"shm_size" is ignored, as docker stack deploy ignores it: /dev/shm keeps the engine\'s default size (mount a tmpfs at /dev/shm for more)',
    cgroupns_mode: '"cgroupns_mode" is ignored, as docker stack deploy ignores it',
  },
  deploy: {
    update_config: 'deploy.update_config is not supported yet and is ignored: updates replace allocations at once',
    rollback_config: 'deploy.rollback_config is not supported yet and is ignored',
  },
};
