/**
 * The contract between the agent and whatever runs a task: one `TaskDriver` interface (after Nomad's
 * plugins/drivers/driver.go), one driver-neutral `TaskSpec`, and a `TaskHandle` that is plain JSON so the agent can
 * persist it and, after a restart, hand it to `recover()` to re-attach to a task that kept running meanwhile.
 */
import type { DriverError } from './errors.js';

export type DriverName = 'docker' | 'process' | 'mock';
export type NetworkMode = 'bridge' | 'host' | 'none';

/** A port the task listens on. Tasks run in host network mode, so the host port is the port. */
export interface PortSpec {
  /** The port on the host. */
  readonly port: number;
  readonly protocol?: 'tcp' | 'udp';
  /** The container's port, for a container on bridges (default: `port`). */
  readonly target?: number;
  /** The host address the port is published on, for a container on bridges (default: every address). */
  readonly hostIp?: string;
}

/** A host path bound into the task (docker) or simply expected to exist (process). */
export interface BindMount {
  /**
   * Absent: a host path (`source`) bound at `target`. `volume`: the named volume `source` (docker: an engine volume of
   * the local driver, created with `driverOpts` when missing; process: a directory under the driver's data dir, named
   * to the task in SHOAL_VOLUME_<NAME>). `tmpfs`: a memory file system at `target` (docker only).
   */
  readonly type?: 'volume' | 'tmpfs';
  readonly source: string;
  readonly target: string;
  readonly readOnly?: boolean;
  readonly driverOpts?: Readonly<Record<string, string>>;
  /** Docker only: a bind mount's propagation, a volume's no-copy, a tmpfs's size and mode. */
  readonly propagation?: string;
  readonly noCopy?: boolean;
  readonly tmpfsSizeBytes?: number;
  readonly tmpfsMode?: number;
}

/** What a health probe does (Compose `healthcheck.test`, plus HTTP and TCP probes run by the agent). */
export type HealthTest =
  | { readonly kind: 'cmd'; readonly argv: readonly string[] }
  | { readonly kind: 'cmd-shell'; readonly command: string }
  | { readonly kind: 'http'; readonly port: number; readonly path?: string; readonly host?: string }
  | { readonly kind: 'tcp'; readonly port: number; readonly host?: string };

/** Compose `healthcheck` semantics: failures during `startPeriodMs` do not count; `retries` in a row make it unhealthy. */
export interface HealthCheckSpec {
  readonly test: HealthTest;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly startPeriodMs: number;
}

export interface TaskResources {
  /** CPU cores (fractions allowed), enforced as a CFS quota. */
  readonly cpus?: number;
  /** Memory limit; exceeding it kills the task (reported as `oomKilled` where the driver can tell). */
  readonly memoryBytes?: number;
}

/** A task as every driver sees it; the control plane maps Compose YAML onto this. */
export interface TaskSpec {
  /** The allocation id: unique per run of the task, used to name and find what the driver creates. */
  readonly id: string;
  /** Human name (service name in the job), for labels and logs. */
  readonly name: string;
  /** Container image (docker driver; the mock accepts it and ignores it). */
  readonly image?: string;
  /** Executable (process driver: resolved on PATH; docker: overrides the image's command). */
  readonly command?: string;
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly workingDir?: string;
  readonly resources?: TaskResources;
  readonly ports?: readonly PortSpec[];
  readonly mounts?: readonly BindMount[];
  readonly labels?: Readonly<Record<string, string>>;
  /** Signal sent first on stop (default SIGTERM). */
  readonly stopSignal?: string;
  /** Time between the stop signal and SIGKILL (default LIMITS.driverDefaultStopGraceMs). */
  readonly stopGraceMs?: number;
  readonly healthcheck?: HealthCheckSpec;
  /**
   * Default 'none' for docker; processes always share the host network. 'bridge' (docker only): the container
   * joins the engine networks named in `networks`, the first as its primary.
   */
  readonly networkMode?: NetworkMode;
  /** Engine network names, for 'bridge'. */
  readonly networks?: readonly string[];
  /** The container's address on each of `networks` (chosen by the caller, so that it knows who the container is). */
  readonly addresses?: Readonly<Record<string, string>>;
  /** Nameservers the container uses (docker). */
  readonly dns?: readonly string[];
  /** Search domains and resolver options (docker). */
  readonly dnsSearch?: readonly string[];
  readonly dnsOptions?: readonly string[];
  /** The user the task runs as: a name or uid, with an optional `:group` (docker: the image's by default; process: the agent's). */
  readonly user?: string;
  /**
   * Docker only: capabilities, sysctls, an init, the host name, /etc/hosts entries. Both drivers: ulimits (the
   * process driver through prlimit) and a pids limit (through the task's cgroup).
   */
  readonly capAdd?: readonly string[];
  readonly capDrop?: readonly string[];
  readonly sysctls?: Readonly<Record<string, string>>;
  readonly ulimits?: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  readonly init?: boolean;
  readonly hostname?: string;
  readonly extraHosts?: readonly string[];
  readonly pidsLimit?: number;
  /** Docker only: the root file system is read-only (mounts are not). */
  readonly readOnlyRootfs?: boolean;
  /** Docker only: the image's platform (`os/arch[/variant]`), and the engine's OCI runtime. */
  readonly platform?: string;
  readonly runtime?: string;
  /** Options only one driver reads (e.g. the mock's script). Plain JSON. */
  readonly driverConfig?: Readonly<Record<string, unknown>>;
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** Everything needed to find a task again. Plain JSON: persist it as is. */
export interface TaskHandle {
  readonly version: 1;
  readonly driver: DriverName;
  readonly taskId: string;
  readonly spec: TaskSpec;
  /** Wall-clock start time (epoch ms) as the driver recorded it (for display only). */
  readonly startedAtMs: number;
  /** Driver-private state (container id, pid and start time...). */
  readonly state: { readonly [key: string]: Json };
}

export interface ExitResult {
  /** Exit code, or null when the task died from a signal or its status could not be learned. */
  readonly exitCode: number | null;
  /** Terminating signal when the driver knows it (process driver). Docker reports 128+n as exitCode instead. */
  readonly signal: string | null;
  /** Killed for exceeding its memory limit. */
  readonly oomKilled: boolean;
  /** Anything but a clean exit 0. A task stopped through `stop()` is also `failed` unless it exited 0. */
  readonly failed: boolean;
  /** Set when the exit status is unknown (a re-attached process is not our child, so its status is not ours to read). */
  readonly unknownReason?: string;
}

export type HealthStatus = 'none' | 'starting' | 'healthy' | 'unhealthy';

export interface HealthReport {
  readonly status: HealthStatus;
  /** Consecutive failed probes. */
  readonly failingStreak: number;
  /** Output (or error) of the latest probe, cut to LIMITS.driverHealthMaxOutputBytes. */
  readonly lastOutput: string;
}

export type TaskState = 'running' | 'exited';

export interface TaskStatus {
  readonly taskId: string;
  readonly state: TaskState;
  readonly pid?: number;
  readonly exit?: ExitResult;
  readonly health: HealthReport;
}

export interface TaskStats {
  /** CPU time used so far, in nanoseconds (the caller takes differences for a rate). */
  readonly cpuTimeNs: number;
  readonly memoryBytes: number;
  /** Where the figures come from ("cgroup v1", "/proc", "docker"...). */
  readonly source: string;
}

export interface LogOptions {
  /** Keep streaming until the task exits (default false: what exists now). */
  readonly follow?: boolean;
  /** Start with only the last N lines of each stream. */
  readonly tail?: number;
  /** Include stdout (default true). */
  readonly stdout?: boolean;
  /** Include stderr (default true). */
  readonly stderr?: boolean;
  /** Ends a follow early. */
  readonly signal?: AbortSignal;
}

export interface LogChunk {
  readonly stream: 'stdout' | 'stderr';
  readonly data: Buffer;
}

export interface Fingerprint {
  readonly driver: DriverName;
  readonly available: boolean;
  /** Why not, when unavailable. */
  readonly reason?: string;
  readonly version?: string;
  readonly cpus?: number;
  readonly memoryBytes?: number;
  /** Extra facts (e.g. `isolation: 'cgroup v1'`). */
  readonly attributes: Readonly<Record<string, string>>;
}

export interface PullProgress {
  readonly image: string;
  readonly status: string;
  readonly currentBytes?: number;
  readonly totalBytes?: number;
}

export interface StartOptions {
  /** Called while an image is pulled (docker). */
  readonly onPullProgress?: (progress: PullProgress) => void;
}

/**
 * One driver per kind of workload. Lifecycle of a task through it:
 *   start -> running -> (exits | stop) -> exited -> destroy
 * and, across an agent restart, recover(handle) -> running | exited | TaskLostError.
 * All errors thrown are `DriverError`s carrying `recoverable`.
 */
export interface TaskDriver {
  readonly name: DriverName;
  /** Is this driver usable here, and with what. Never throws: unavailability is a value. */
  fingerprint(): Promise<Fingerprint>;
  /** Starts the task; resolves once it runs. Idempotent per task id only through `recover`. */
  start(spec: TaskSpec, options?: StartOptions): Promise<TaskHandle>;
  /** Sends `signal` (default: the spec's stop signal) and SIGKILL after `graceMs`; resolves once the task is dead. */
  stop(handle: TaskHandle, signal?: string, graceMs?: number): Promise<void>;
  /** Resolves with how the task ended (at once if it already has). */
  wait(handle: TaskHandle): Promise<ExitResult>;
  inspect(handle: TaskHandle): Promise<TaskStatus>;
  logs(handle: TaskHandle, options?: LogOptions): AsyncIterable<LogChunk>;
  stats(handle: TaskHandle): Promise<TaskStats>;
  /** Re-attaches to a task from a handle persisted before an agent restart; throws TaskLostError if it is gone. */
  recover(handle: TaskHandle): Promise<void>;
  /**
   * Finds a task this driver started under `taskId` whose handle never reached the caller (the agent died during
   * `start`), so it can be recovered instead of started twice. Optional: drivers without it cannot close that window.
   */
  find?(taskId: string): Promise<TaskHandle | undefined>;
  /** Stops the task if it still runs and removes what the driver created for it (container, cgroup, logs). */
  destroy(handle: TaskHandle): Promise<void>;
  /** Releases the driver's own resources (timers, monitors, connections). Tasks keep running. Idempotent. */
  close(): Promise<void>;
}

export type { DriverError };
