/**
 * The canonical job: what a Compose-style file converts to, what `shoal job run --output` prints, what the
 * cluster stores and schedules. Every unit is explicit in the field name; every default is filled in, so two
 * files that mean the same thing give the same canonical job.
 */

export type JobType = 'service' | 'batch';
export type DriverName = 'docker' | 'process';

export interface Job {
  name: string;
  type: JobType;
  /** Services by name, in the file's order. */
  services: ServiceSpec[];
  /**
   * The job's networks, sorted by name. `default` is always there (every service without `networks` is on it). A
   * service resolves and connects only to services that share a network with it.
   */
  networks: NetworkSpec[];
  /** The job's named volumes (top-level `volumes:`), sorted by name; absent when it declares none. */
  volumes?: VolumeSpec[];
  /** The job's secrets (top-level `secrets:`), sorted by name; absent when it declares none. */
  secrets?: FileObjectSpec[];
  /** The job's configs (top-level `configs:`), sorted by name; absent when it declares none. */
  configs?: FileObjectSpec[];
}

/**
 * A secret or a config the job declares. The canonical job holds only the reference: the contents of one the file
 * provides (`file:`, `environment:`, `content:`) are read on the CLI's machine (ParseResult.contents) and registered
 * with the job; an `external: true` one must already exist in the cluster (`shoal secret create`).
 */
export interface FileObjectSpec {
  /** The key the job's services use. */
  name: string;
  /**
   * Its name in the cluster: `name:` when the file gives one (as Compose honours it); else `<job>_<key>` for one the
   * file provides, and the key for an external one.
   */
  clusterName: string;
  external: boolean;
}

/** Where a secret's or a config's contents come from, for `shoal job run` to read on the CLI's machine. */
export interface FileObjectSource {
  kind: 'secret' | 'config';
  /** The job's key, and the name it registers under (FileObjectSpec.clusterName). */
  name: string;
  clusterName: string;
  /** Exactly one of these: an absolute path, an environment variable's name, or the contents themselves (configs). */
  file?: string;
  environment?: string;
  content?: string;
  /** Where the file declares it (`file:line path`), for errors. */
  where: string;
}

/**
 * A service's use of a secret or config (Compose's short or long syntax). For a container, `target` is the absolute
 * path in it (a secret's relative target is under /run/secrets, a config's under /); for a process task, a path
 * relative to SHOAL_SECRETS_DIR or SHOAL_CONFIGS_DIR (an absolute one is refused). Normalised either way; a service's
 * references keep the file's order.
 */
export interface FileRef {
  /** A key of the job's `secrets` or `configs`. */
  source: string;
  target: string;
  /** Owner and group of the file, numeric; null: root's for a container, the task's user for a process task. */
  uid: number | null;
  gid: number | null;
  /** Permission bits (Compose's octal `mode`); 0o444 by default. */
  mode: number;
}

/**
 * A named volume, with the local driver: a Docker volume for containers, a directory under the agent's data dir for
 * process tasks. As in Swarm, a volume belongs to one node: each node that runs a task of the job has its own.
 */
export interface VolumeSpec {
  /** The name the job's services use. */
  name: string;
  /** For `external: true`, the volume's own name on the nodes (`name:`, else the key); null: `<job>_<name>`. */
  external: string | null;
  /** `driver_opts` of the local driver (`type`, `o`, `device`). */
  driverOpts: Record<string, string>;
}

/** One resource limit of a container (Compose's `ulimits`). */
export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

/**
 * Compose keys about how a task runs. Containers honour every one; a process task honours `user` and refuses the
 * rest (checks.ts says why).
 */
export interface TaskOptions {
  /** `user`: a name or uid, with an optional `:group`; null: the image's (or the agent's) own. */
  user: string | null;
  /** Linux capabilities added and dropped (`CAP_` prefix optional, or `ALL`), upper case. */
  capAdd: string[];
  capDrop: string[];
  sysctls: Record<string, string>;
  ulimits: Ulimit[];
  /** Run an init as PID 1 that reaps zombies and forwards signals. */
  init: boolean;
  /** The container's host name; Swarm's templates ({{.Service.Name}}, {{.Task.Slot}}, {{.Node.Hostname}}...) allowed. */
  hostname: string | null;
  /** `host:ip` entries added to /etc/hosts. */
  extraHosts: string[];
  /** Nameservers, search domains and resolver options (after the agent's own nameserver on a bridge). */
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  /** `read_only`: the container's root file system is read-only (its volumes and tmpfs mounts are not). */
  readOnly: boolean;
  /** `platform` (`os/arch[/variant]`): the image is pulled for it. */
  platform: string | null;
  /** `runtime`: the engine's OCI runtime for the container (e.g. `io.containerd.wasmedge.v1`). */
  runtime: string | null;
  /** `deploy.resources.limits.pids`: most processes the task may have; 0: no limit. */
  pidsLimit: number;
}

export interface NetworkSpec {
  /** The name the job's services use (the key under top-level `networks`). */
  name: string;
  /**
   * For a network shared between jobs (`external: true`), its cluster-wide name (created with
   * `shoal network create`): the key, or `name:` when given. Null for a network of this job alone, whose
   * cluster-wide name is `<job>_<name>`.
   */
  external: string | null;
  /** No route out of the cluster for the tasks on it (containers' bridges get no outbound NAT). */
  internal: boolean;
}

export interface ServiceNetwork {
  /** A key of the job's `networks`. */
  name: string;
  /** Extra names the service answers to on this network, besides its own. */
  aliases: string[];
}

export interface ExposedPort {
  port: number;
  protocol: 'tcp' | 'udp';
}

export interface PortMapping {
  /** Port inside the task. */
  target: number;
  /** Port on the host (host mode: the same node port the task listens on). */
  published: number;
  protocol: 'tcp' | 'udp';
  /**
   * `ingress` (Compose's default): the port answers on every node, through the routing mesh, and goes to a healthy
   * task anywhere. `host`: only the nodes that run a task publish it, straight to the task.
   */
  mode: 'ingress' | 'host';
}

export interface BindMount {
  /**
   * Absent: a bind mount, `source` an absolute path on the host. `volume`: `source` is one of the job's volumes.
   * `tmpfs`: a memory file system at `target` (`source` is '').
   */
  type?: 'volume' | 'tmpfs';
  source: string;
  target: string;
  readOnly: boolean;
  /** A bind mount's propagation (`bind.propagation`: private, rprivate, shared, rshared, slave, rslave); absent: the engine's. */
  propagation?: BindPropagation;
  /** A volume mount: do not copy the image's files at the target into a new volume (`volume.nocopy`, `:nocopy`). */
  noCopy?: boolean;
  /** A tmpfs mount's size limit in bytes and its mode (`tmpfs.size`, `tmpfs.mode`, or `size=`/`mode=` options). */
  tmpfsSizeBytes?: number;
  tmpfsMode?: number;
}

export const BIND_PROPAGATIONS = ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'] as const;
export type BindPropagation = (typeof BIND_PROPAGATIONS)[number];

export interface HealthCheck {
  /** ["CMD", ...argv] or ["CMD-SHELL", "script"]. */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export type ConstraintOp = '==' | '!=';

export interface Constraint {
  /** `node.name`, `node.id`, `node.role` or `node.labels.<key>`. */
  attribute: string;
  op: ConstraintOp;
  value: string;
}

export interface Resources {
  cpuMillicores: number;
  memoryBytes: number;
}

export interface RestartPolicy {
  condition: 'none' | 'on-failure' | 'any';
  delayMs: number;
  /** Restarts allowed within `windowMs` (or ever, when windowMs is 0); null means unlimited. */
  maxAttempts: number | null;
  windowMs: number;
}

/** How a stateful service's keys map to its partitions (src/partitions/scheme.ts routes them). */
export type StateScheme =
  /** Keys hashed into the int64 space, split evenly into `partitions` ranges. */
  | { kind: 'uniform' }
  /** One partition per name, numbered in the order of `names`. */
  | { kind: 'named'; names: string[] }
  /** One partition, whatever the key. */
  | { kind: 'singleton' };

export const STATE_SCHEMES = ['uniform', 'named', 'singleton'] as const;
export const COLLECTION_KINDS = ['dictionary', 'queue'] as const;
export type CollectionKind = (typeof COLLECTION_KINDS)[number];

/** A reliable collection a stateful service declares up front (others are created on their first write). */
export interface StateCollection {
  name: string;
  kind: CollectionKind;
}

/**
 * `x-shoal.state`: the service is stateful. Its partitions are replicated, each by a Raft group of `replicas` members
 * on distinct nodes, and its task count is partitions × replicas (it takes no `deploy.replicas`). With no image and no
 * command it is a replicated store alone; with either, a task runs beside each replica.
 */
export interface StateSpec {
  /** Every scheme's partition count: uniform's as given (1 by default), named's `names.length`, singleton's 1. */
  partitions: number;
  /** Members of each partition's Raft group: odd, 1 to LIMITS.partitionReplicasMax; 3 by default. */
  replicas: number;
  scheme: StateScheme;
  /** A node label (its key) whose values the replicas of one partition spread across: the failure domain. */
  spread?: string;
  /** Sorted by name; empty when the file declares none. */
  collections: StateCollection[];
}

export interface ServiceSpec {
  name: string;
  driver: DriverName;
  image: string | null;
  /** argv; for docker, overrides the image's command when not null. */
  command: string[] | null;
  entrypoint: string[] | null;
  workingDir: string | null;
  environment: Record<string, string>;
  ports: PortMapping[];
  /** Ports reachable from the service's networks without being published, sorted by port. */
  expose: ExposedPort[];
  /** The networks the service is on, sorted by name; `[{ name: 'default', aliases: [] }]` when the file says none. */
  networks: ServiceNetwork[];
  /**
   * Where the tasks' network lives. `bridge` (a docker service's default): a container on a bridge of its node per
   * Shoal network, named and reached through the agent. `host`: the node's own network (a process task always).
   * `none`: no network at all.
   */
  networkMode: 'bridge' | 'host' | 'none';
  volumes: BindMount[];
  labels: Record<string, string>;
  healthcheck: HealthCheck | null;
  stopGraceMs: number;
  stopSignal: string;
  /** The secrets and configs the service's tasks get; absent when it uses none. */
  secrets?: FileRef[];
  configs?: FileRef[];
  /** How the task runs, beyond its command (Compose's user, cap_add, sysctls...); absent when the file sets none. */
  options?: TaskOptions;
  /** `x-shoal.state`: a stateful service's partitions and replicas; absent for a stateless service. */
  state?: StateSpec;
  deploy: {
    mode: 'replicated' | 'global';
    /** Replicas for replicated mode; 0 for global (one per eligible node) and for a stateful service (see `state`). */
    replicas: number;
    /** `vip`: one stable virtual address per service and network; `dnsrr`: names resolve to the tasks themselves. */
    endpointMode: 'vip' | 'dnsrr';
    placement: {
      constraints: Constraint[];
      /** 0 means no limit. */
      maxReplicasPerNode: number;
      /** Label attributes to spread replicas across, e.g. `node.labels.zone`. */
      spread: string[];
    };
    resources: { reservations: Resources; limits: Resources };
    restartPolicy: RestartPolicy;
  };
}
