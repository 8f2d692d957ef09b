/**
 * The docker driver: a task is one container, created through the Engine API (dockerode).
 *
 * - The container is named `shoal-<alloc id>` and labelled `shoal.alloc=<id>`, `shoal.managed=true`, so a
 *   restarted agent finds it from the persisted handle (and an operator can list what Shoal owns).
 * - The image is pulled only when missing; progress goes to the caller's callback. Pull errors that mean "this
 *   image does not exist" are permanent (ImageNotFoundError), others (registry unreachable) recoverable.
 * - Network mode `none` by default, `host` when asked or when the task declares ports (host mode: the port is
 *   the port), `bridge` for a task on Shoal's networks: the container joins the engine networks the task names
 *   (the mesh creates them, `docker-networks.ts`), its ports are published on the host address given, and its
 *   address on each network is kept in the handle (`addresses`).
 * - CMD/CMD-SHELL health checks are Docker's own (they keep running while the agent restarts); HTTP/TCP probes
 *   run in the agent, against the container's address on bridges, else the host's network.
 * - stop sends the signal itself and SIGKILL after the grace period, in milliseconds (the Engine's own stop
 *   counts whole seconds).
 * - dockerode (with docker-modem and ssh2 behind it, ~20 MB of an agent's memory) is loaded on the first container
 *   operation; the fingerprint asks the engine with two plain HTTP requests, so an agent that runs no container
 *   never loads it.
 */
import { request } from 'node:http';
import type Docker from 'dockerode';
import type { Clock } from '../lib/clock.js';
import { LIMITS } from '../lib/limits.js';
import type { Logger } from '../log/logger.js';
import { silentLogger } from '../log/logger.js';
import { systemClock } from '../platform/system-clock.js';
import {
  CommandNotFoundError,
  DriverError,
  DriverOperationError,
  DriverUnavailableError,
  ImageNotFoundError,
  ImagePullError,
  InvalidTaskError,
  TaskLostError,
  TaskStartError,
} from './errors.js';
import { HealthMonitor, NO_HEALTH, httpProbe, tcpProbe } from './health.js';
import { lastLines } from './logfiles.js';
import { stopParameters, validateTaskSpec } from './spec.js';
import type { ExitResult, Fingerprint, HealthReport, HealthStatus, LogChunk, LogOptions, PortSpec, PullProgress, StartOptions, TaskDriver, TaskHandle, TaskSpec, TaskStats, TaskStatus } from './types.js';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
export const LABEL_ALLOC = 'shoal.alloc';
export const LABEL_MANAGED = 'shoal.managed';
/** The task spec, so find() can rebuild the handle of a container whose start an agent crash interrupted. */
export const LABEL_SPEC = 'shoal.spec';

export interface DockerDriverOptions {
  /** Unix socket of the engine (the agent's --docker-socket). */
  socketPath?: string;
  /** 'missing' (default) pulls absent images; 'never' fails instead. */
  pull?: 'missing' | 'never';
  logger?: Logger;
  clock?: Clock;
}

interface EngineError {
  statusCode?: number;
  json?: { message?: string } | null;
  message?: string;
}

const statusOf = (err: unknown): number | undefined => (err as EngineError | undefined)?.statusCode;
const engineMessage = (err: unknown): string => {
  const e = err as EngineError | undefined;
  return (e?.json?.message ?? e?.message ?? String(err)).trim();
};

export const containerName = (taskId: string): string => `shoal-${taskId}`;

/** A container's address on each engine network it is on. */
function addressesOf(info: Docker.ContainerInspectInfo): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, n] of Object.entries(info.NetworkSettings?.Networks ?? {})) if (n.IPAddress) out[name] = n.IPAddress;
  return out;
}

/** The address of a container on bridges on its first network, as its handle recorded it. */
export function firstAddress(handle: TaskHandle): string | undefined {
  const addresses = handle.state['addresses'];
  const first = handle.spec.networks?.[0];
  if (!first || typeof addresses !== 'object' || addresses === null || Array.isArray(addresses)) return undefined;
  const a = (addresses as Record<string, unknown>)[first];
  return typeof a === 'string' ? a : undefined;
}

/** Splits the Engine's multiplexed stream (8-byte header: stream type, 3 zero bytes, big-endian length). */
export class Demuxer {
  #pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): LogChunk[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const out: LogChunk[] = [];
    while (this.#pending.length >= 8) {
      const size = this.#pending.readUInt32BE(4);
      if (this.#pending.length < 8 + size) break;
      const type = this.#pending[0];
      const data = this.#pending.subarray(8, 8 + size);
      if (type === 1 || type === 2) out.push({ stream: type === 1 ? 'stdout' : 'stderr', data: Buffer.from(data) });
      this.#pending = this.#pending.subarray(8 + size);
    }
    return out;
  }
}

interface Entry {
  handle: TaskHandle;
  containerId: string;
  monitor?: HealthMonitor;
  exit?: Promise<ExitResult>;
}

function exitFromState(state: Docker.ContainerInspectInfo['State']): ExitResult {
  const oom = state.OOMKilled === true;
  return { exitCode: state.ExitCode, signal: null, oomKilled: oom, failed: state.ExitCode !== 0 || oom };
}

export class DockerDriver implements TaskDriver {
  readonly name = 'docker' as const;
  readonly socketPath: string;
  #docker: Promise<Docker> | undefined;
  readonly #pull: 'missing' | 'never';
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();

  constructor(options: DockerDriverOptions = {}) {
    this.socketPath = options.socketPath ?? DEFAULT_DOCKER_SOCKET;
    this.#pull = options.pull ?? 'missing';
    this.#log = (options.logger ?? silentLogger()).child({ component: 'driver.docker' });
    this.#clock = options.clock ?? systemClock;
  }

  async fingerprint(): Promise<Fingerprint> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${LIMITS.driverDockerPingTimeoutMs} ms`)), LIMITS.driverDockerPingTimeoutMs);
    });
    try {
      const [version, info] = await Promise.race([Promise.all([
        engineGet(this.socketPath, '/version') as Promise<{ Version?: string; ApiVersion?: string }>,
        engineGet(this.socketPath, '/info') as Promise<{ NCPU?: number; MemTotal?: number; CgroupVersion?: string; Driver?: string }>,
      ]), timeout]);
      return {
        driver: 'docker',
        available: true,
        ...(version.Version === undefined ? {} : { version: version.Version }),
        cpus: info.NCPU,
        memoryBytes: info.MemTotal,
        attributes: { apiVersion: String(version.ApiVersion ?? ''), socket: this.socketPath, cgroupVersion: String(info.CgroupVersion ?? ''), storageDriver: String(info.Driver ?? '') },
      };
    } catch (err) {
      const reason = `no Docker engine answers on ${this.socketPath}: ${engineMessage(err)}`;
      this.#log.warn({ reason }, 'docker driver unavailable');
      return { driver: 'docker', available: false, reason, attributes: { socket: this.socketPath } };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The Engine API client, loaded and created on first use. */
  #engine(): Promise<Docker> {
    this.#docker ??= import('dockerode').then(({ default: Dockerode }) => new Dockerode({ socketPath: this.socketPath }));
    return this.#docker;
  }

  /** Rethrows an engine failure as a DriverError, naming the socket when the engine itself is gone. */
  #engineError(taskId: string, operation: string, err: unknown): DriverError {
    if (err instanceof DriverError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES') return new DriverUnavailableError('docker', `${this.socketPath}: ${engineMessage(err)}`, { cause: err });
    return new DriverOperationError(taskId, operation, engineMessage(err), { cause: err });
  }

  async #ensureImage(spec: TaskSpec, onProgress: ((p: PullProgress) => void) | undefined): Promise<void> {
    const image = spec.image!;
    try {
      await (await this.#engine()).getImage(image).inspect();
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw this.#engineError(spec.id, `inspect image ${image}`, err);
    }
    if (this.#pull === 'never') throw new ImageNotFoundError(image, 'not present locally, and this driver does not pull');
    this.#log.info({ task: spec.id, image }, 'pulling image');
    let timer: NodeJS.Timeout | undefined;
    try {
      const docker = await this.#engine();
      const pulled = new Promise<void>((resolve, reject) => {
        docker.pull(image, spec.platform ? { platform: spec.platform } : {}, (err: unknown, stream?: NodeJS.ReadableStream) => {
          if (err || !stream) return reject(err ?? new Error('the engine answered the pull with no stream'));
          docker.modem.followProgress(
            stream,
            (doneErr: unknown) => (doneErr ? reject(doneErr) : resolve()),
            (event: { status?: string; progressDetail?: { current?: number; total?: number } }) => {
              onProgress?.({ image, status: event.status ?? '', currentBytes: event.progressDetail?.current, totalBytes: event.progressDetail?.total });
            },
          );
        });
      });
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new ImagePullError(image, `pull took longer than ${LIMITS.driverImagePullTimeoutMs} ms`)), LIMITS.driverImagePullTimeoutMs);
      });
      await Promise.race([pulled, timeout]);
    } catch (err) {
      if (err instanceof DriverError) throw err;
      const message = engineMessage(err);
      // The registry answered that the image or tag does not exist (or is not ours to read): retrying won't help.
      if (statusOf(err) === 404 || /not found|manifest unknown|does not exist|pull access denied|unauthorized|invalid reference/i.test(message)) {
        throw new ImageNotFoundError(image, message, { cause: err });
      }
      throw new ImagePullError(image, message, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  #createOptions(spec: TaskSpec): Docker.ContainerCreateOptions {
    const networkMode = spec.networkMode === 'bridge' ? 'bridge' : spec.networkMode ?? ((spec.ports?.length ?? 0) > 0 ? 'host' : 'none');
    const stop = stopParameters(spec);
    const hc = spec.healthcheck;
    const ns = (ms: number): number => ms * 1_000_000;
    const test = hc?.test;
    const healthcheck: Docker.HealthConfig | undefined = hc && test && (test.kind === 'cmd' || test.kind === 'cmd-shell')
      ? {
        Test: test.kind === 'cmd' ? ['CMD', ...test.argv] : ['CMD-SHELL', test.command],
        Interval: ns(hc.intervalMs),
        Timeout: ns(hc.timeoutMs),
        Retries: hc.retries,
        StartPeriod: ns(hc.startPeriodMs),
      }
      : undefined;
    const bridge = spec.networkMode === 'bridge';
    const portKey = (p: PortSpec): string => `${p.target ?? p.port}/${p.protocol ?? 'tcp'}`;
    return {
      name: containerName(spec.id),
      Image: spec.image!,
      ...(bridge && spec.ports?.length ? { ExposedPorts: Object.fromEntries(spec.ports.map((p) => [portKey(p), {}])) } : {}),
      ...(spec.command !== undefined ? { Cmd: [spec.command, ...(spec.args ?? [])] } : spec.args ? { Cmd: [...spec.args] } : {}),
      Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
      ...(spec.user !== undefined ? { User: spec.user } : {}),
      ...(spec.hostname !== undefined ? { Hostname: spec.hostname } : {}),
      ...(spec.workingDir !== undefined ? { WorkingDir: spec.workingDir } : {}),
      Labels: { ...spec.labels, [LABEL_ALLOC]: spec.id, [LABEL_MANAGED]: 'true', 'shoal.task': spec.name, [LABEL_SPEC]: JSON.stringify(spec) },
      StopSignal: stop.signal,
      StopTimeout: Math.ceil(stop.graceMs / 1000),
      ...(healthcheck ? { Healthcheck: healthcheck } : {}),
      ...(bridge && spec.addresses?.[spec.networks![0]!] ? { NetworkingConfig: { EndpointsConfig: { [spec.networks![0]!]: { IPAMConfig: { IPv4Address: spec.addresses[spec.networks![0]!]! } } } } } : {}),
      HostConfig: {
        NetworkMode: bridge ? spec.networks![0]! : networkMode,
        ...(bridge && spec.ports?.length ? { PortBindings: Object.fromEntries(spec.ports.map((p) => [portKey(p), [{ HostIp: p.hostIp ?? '', HostPort: String(p.port) }]])) } : {}),
        ...(spec.dns?.length ? { Dns: [...spec.dns] } : {}),
        ...(spec.dnsSearch?.length ? { DnsSearch: [...spec.dnsSearch] } : {}),
        ...(spec.dnsOptions?.length ? { DnsOptions: [...spec.dnsOptions] } : {}),
        ...(spec.capAdd?.length ? { CapAdd: [...spec.capAdd] } : {}),
        ...(spec.capDrop?.length ? { CapDrop: [...spec.capDrop] } : {}),
        ...(spec.sysctls && Object.keys(spec.sysctls).length > 0 ? { Sysctls: { ...spec.sysctls } } : {}),
        ...(spec.ulimits?.length ? { Ulimits: spec.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })) } : {}),
        ...(spec.init ? { Init: true } : {}),
        ...(spec.extraHosts?.length ? { ExtraHosts: [...spec.extraHosts] } : {}),
        ...(spec.pidsLimit ? { PidsLimit: spec.pidsLimit } : {}),
        ...(spec.resources?.cpus !== undefined ? { NanoCpus: Math.round(spec.resources.cpus * 1e9) } : {}),
        // MemorySwap equal to Memory: no swap, so the limit kills instead of slowing down.
        ...(spec.resources?.memoryBytes !== undefined ? { Memory: spec.resources.memoryBytes, MemorySwap: spec.resources.memoryBytes } : {}),
        Binds: (spec.mounts ?? []).filter((m) => m.type === undefined).map((m) => {
          const options = [...(m.readOnly ? ['ro'] : []), ...(m.propagation ? [m.propagation] : [])];
          return `${m.source}:${m.target}${options.length > 0 ? `:${options.join(',')}` : ''}`;
        }),
        ...((spec.mounts ?? []).some((m) => m.type !== undefined) ? {
          Mounts: (spec.mounts ?? []).filter((m) => m.type !== undefined).map((m): Docker.MountSettings => (m.type === 'tmpfs'
            ? {
              Type: 'tmpfs', Source: '', Target: m.target,
              // The engine takes either field alone (its types say both): an absent one keeps the engine's default.
              ...(m.tmpfsSizeBytes !== undefined || m.tmpfsMode !== undefined ? {
                TmpfsOptions: { ...(m.tmpfsSizeBytes !== undefined ? { SizeBytes: m.tmpfsSizeBytes } : {}), ...(m.tmpfsMode !== undefined ? { Mode: m.tmpfsMode } : {}) } as { SizeBytes: number; Mode: number },
              } : {}),
            }
            : { Type: 'volume', Source: m.source, Target: m.target, ReadOnly: m.readOnly === true, VolumeOptions: { NoCopy: m.noCopy === true, Labels: { [LABEL_MANAGED]: 'true' }, DriverConfig: { Name: 'local', Options: { ...m.driverOpts } } } })),
        } : {}),
        ...(spec.readOnlyRootfs ? { ReadonlyRootfs: true } : {}),
        ...(spec.runtime ? { Runtime: spec.runtime } : {}),
      },
    };
  }

  async start(spec: TaskSpec, options: StartOptions = {}): Promise<TaskHandle> {
    validateTaskSpec(spec, { image: true });
    if ((spec.ports?.length ?? 0) > 0 && spec.networkMode === 'none') throw new InvalidTaskError(spec.id, 'ports', 'need network mode host');
    await this.#ensureImage(spec, options.onPullProgress);
    const create = this.#createOptions(spec);
    let container: Docker.Container;
    try {
      container = await (await this.#engine()).createContainer(create);
    } catch (err) {
      if (statusOf(err) !== 409) throw this.#startError(spec, err);
      // A container of this name is left over (an earlier attempt of this allocation): replace it unless it runs.
      const old = (await this.#engine()).getContainer(containerName(spec.id));
      const info = await old.inspect().catch((e: unknown) => Promise.reject(this.#startError(spec, e)));
      if (info.State.Running) throw new InvalidTaskError(spec.id, 'id', `container ${create.name} is already running`);
      await old.remove({ force: true }).catch(() => undefined);
      container = await (await this.#engine()).createContainer(create).catch((e: unknown) => Promise.reject(this.#startError(spec, e)));
    }
    let addresses: Record<string, string> = {};
    try {
      // The engine's API 1.41 joins one network at creation; the others are joined before the start.
      for (const name of spec.networkMode === 'bridge' ? (spec.networks ?? []).slice(1) : []) {
        const ip = spec.addresses?.[name];
        await (await this.#engine()).getNetwork(name).connect({ Container: container.id, ...(ip ? { EndpointConfig: { IPAMConfig: { IPv4Address: ip } } } : {}) });
      }
      await container.start();
      if (spec.networkMode === 'bridge') addresses = addressesOf(await container.inspect());
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined);
      throw this.#startError(spec, err);
    }
    const handle: TaskHandle = {
      version: 1,
      driver: 'docker',
      taskId: spec.id,
      spec,
      startedAtMs: Date.now(),
      state: { containerId: container.id, containerName: create.name!, ...(spec.networkMode === 'bridge' ? { addresses } : {}) },
    };
    this.#attach(handle, container.id, true);
    this.#log.info({ task: spec.id, container: container.id.slice(0, 12), image: spec.image }, 'container started');
    return handle;
  }

  #startError(spec: TaskSpec, err: unknown): DriverError {
    const message = engineMessage(err);
    if (/executable file not found|no such file or directory|not found in \$PATH/i.test(message) && spec.command !== undefined) {
      return new CommandNotFoundError(spec.command, `in image ${spec.image} (${message})`, { cause: err });
    }
    if (err instanceof DriverError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return new DriverUnavailableError('docker', `${this.socketPath}: ${message}`, { cause: err });
    return new TaskStartError(spec.id, message, { cause: err });
  }

  #attach(handle: TaskHandle, containerId: string, running: boolean): Entry {
    const entry: Entry = { handle, containerId };
    const test = handle.spec.healthcheck?.test;
    if (running && handle.spec.healthcheck && test && (test.kind === 'http' || test.kind === 'tcp')) {
      // A container on bridges answers on its own address, not on the host's.
      const host = test.host ?? firstAddress(handle);
      const probe = test.kind === 'tcp' ? tcpProbe(test.port, host) : httpProbe(test.port, test.path, host);
      entry.monitor = new HealthMonitor(handle.spec.healthcheck, probe, this.#clock, this.#clock.nowMs());
    }
    this.#entries.set(handle.taskId, entry);
    return entry;
  }

  #containerId(handle: TaskHandle): string {
    if (handle.driver !== 'docker') throw new InvalidTaskError(handle.taskId, 'handle.driver', `"${handle.driver}" handle given to the docker driver`);
    const id = handle.state['containerId'];
    if (typeof id !== 'string' || id === '') throw new InvalidTaskError(handle.taskId, 'handle.state', 'has no container id');
    return id;
  }

  async #inspectContainer(handle: TaskHandle): Promise<Docker.ContainerInspectInfo> {
    try {
      return await (await this.#engine()).getContainer(this.#containerId(handle)).inspect();
    } catch (err) {
      if (statusOf(err) === 404) throw new TaskLostError(handle.taskId, `container ${String(handle.state['containerName'])} no longer exists`);
      throw this.#engineError(handle.taskId, 'inspect', err);
    }
  }

  async find(taskId: string): Promise<TaskHandle | undefined> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await (await this.#engine()).getContainer(containerName(taskId)).inspect();
    } catch (_absent) {
      return undefined;
    }
    const labels = info.Config.Labels ?? {};
    if (labels[LABEL_ALLOC] !== taskId || labels[LABEL_SPEC] === undefined) return undefined;
    let spec: TaskSpec;
    try {
      spec = JSON.parse(labels[LABEL_SPEC]) as TaskSpec;
    } catch (_bad) {
      return undefined;
    }
    const state = { containerId: info.Id, containerName: info.Name.replace(/^\//, ''), ...(spec.networkMode === 'bridge' ? { addresses: addressesOf(info) } : {}) };
    return { version: 1, driver: 'docker', taskId, spec, startedAtMs: Date.parse(info.State.StartedAt) || 0, state };
  }

  async recover(handle: TaskHandle): Promise<void> {
    const info = await this.#inspectContainer(handle);
    if (info.Config.Labels?.[LABEL_ALLOC] !== handle.taskId) {
      throw new TaskLostError(handle.taskId, `container ${info.Name} is not labelled ${LABEL_ALLOC}=${handle.taskId}`);
    }
    this.#entries.get(handle.taskId)?.monitor?.stop();
    this.#attach(handle, info.Id, info.State.Running);
  }

  #entry(handle: TaskHandle): Entry {
    return this.#entries.get(handle.taskId) ?? this.#attach(handle, this.#containerId(handle), false);
  }

  wait(handle: TaskHandle): Promise<ExitResult> {
    const entry = this.#entry(handle);
    entry.exit ??= (async () => {
      try {
        await (await this.#engine()).getContainer(entry.containerId).wait();
      } catch (err) {
        if (statusOf(err) === 404) throw new TaskLostError(handle.taskId, 'its container was removed while it was awaited');
        throw this.#engineError(handle.taskId, 'wait', err);
      }
      const info = await this.#inspectContainer(handle);
      entry.monitor?.stop();
      return exitFromState(info.State);
    })();
    // A failed wait (engine restarting) must not be cached: the next call asks again.
    entry.exit.catch(() => (entry.exit = undefined));
    return entry.exit;
  }

  async stop(handle: TaskHandle, signal?: string, graceMs?: number): Promise<void> {
    const params = stopParameters(handle.spec, signal, graceMs);
    const info = await this.#inspectContainer(handle);
    if (!info.State.Running) return;
    const container = (await this.#engine()).getContainer(info.Id);
    const kill = async (sig: string): Promise<void> => {
      try {
        await container.kill({ signal: sig });
      } catch (err) {
        // 409: not running any more, which is what we wanted.
        if (statusOf(err) !== 409 && statusOf(err) !== 404) throw this.#engineError(handle.taskId, `kill ${sig}`, err);
      }
    };
    await kill(params.signal);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace'>((resolve) => (timer = setTimeout(() => resolve('grace'), params.graceMs)));
    const first = await Promise.race([this.wait(handle).then(() => 'exited' as const), graceOver]);
    clearTimeout(timer);
    if (first === 'grace') {
      this.#log.info({ task: handle.taskId, graceMs: params.graceMs }, 'container ignored its stop signal; killing it');
      await kill('SIGKILL');
      await this.wait(handle);
    }
  }

  async inspect(handle: TaskHandle): Promise<TaskStatus> {
    const info = await this.#inspectContainer(handle);
    const entry = this.#entry(handle);
    let health: HealthReport = entry.monitor?.report() ?? NO_HEALTH;
    const h = info.State.Health;
    if (h) {
      const last = h.Log?.[h.Log.length - 1];
      health = { status: (h.Status as HealthStatus) || 'none', failingStreak: h.FailingStreak ?? 0, lastOutput: (last?.Output ?? '').slice(0, LIMITS.driverHealthMaxOutputBytes) };
    }
    if (info.State.Running) return { taskId: handle.taskId, state: 'running', pid: info.State.Pid, health };
    entry.monitor?.stop();
    return { taskId: handle.taskId, state: 'exited', exit: exitFromState(info.State), health };
  }

  logs(handle: TaskHandle, options: LogOptions = {}): AsyncIterable<LogChunk> {
    const id = this.#containerId(handle);
    const engine = (): Promise<Docker> => this.#engine();
    const wantOut = options.stdout !== false;
    const wantErr = options.stderr !== false;
    const tail = options.tail === undefined ? {} : { tail: Math.min(Math.max(0, Math.floor(options.tail)), LIMITS.driverMaxLogTailLines) };
    const engineError = (err: unknown): DriverError => (statusOf(err) === 404 ? new TaskLostError(handle.taskId, 'its container no longer exists') : this.#engineError(handle.taskId, 'logs', err));
    return {
      async *[Symbol.asyncIterator]() {
        const container = (await engine()).getContainer(id);
        if (!options.follow) {
          const fetch = async (lines: number | undefined): Promise<LogChunk[]> => {
            try {
              const buf = (await container.logs({ follow: false, stdout: wantOut, stderr: wantErr, ...(lines === undefined ? {} : { tail: lines }) })) as unknown as Buffer;
              return new Demuxer().push(Buffer.isBuffer(buf) ? buf : Buffer.from(buf));
            } catch (err) {
              throw engineError(err);
            }
          };
          const join = (chunks: LogChunk[], stream: 'stdout' | 'stderr'): Buffer => Buffer.concat(chunks.filter((c) => c.stream === stream).map((c) => c.data));
          const lineCount = (b: Buffer): number => b.reduce((n, byte) => n + (byte === 0x0a ? 1 : 0), 0);
          let chunks: LogChunk[];
          if (tail.tail === undefined) {
            chunks = await fetch(undefined);
          } else {
            // The engine's tail counts lines of both streams together; ours counts each stream. Widen the window
            // until every wanted stream has its N lines or the whole log fits in it.
            const n = tail.tail;
            let window = Math.max(n, 1);
            for (;;) {
              chunks = await fetch(window);
              const total = lineCount(Buffer.concat(chunks.map((c) => c.data)));
              const enough = (['stdout', 'stderr'] as const).every((st) => (st === 'stdout' ? !wantOut : !wantErr) || lineCount(join(chunks, st)) >= n);
              if (enough || total < window || window >= LIMITS.driverMaxLogTailLines) break;
              window = Math.min(window * 4, LIMITS.driverMaxLogTailLines);
            }
          }
          for (const [stream, wanted] of [['stdout', wantOut], ['stderr', wantErr]] as const) {
            if (!wanted) continue;
            const data = tail.tail === undefined ? join(chunks, stream) : lastLines(join(chunks, stream), tail.tail);
            if (data.length > 0) yield { stream, data };
          }
          return;
        }
        let stream: NodeJS.ReadableStream;
        try {
          stream = await container.logs({ follow: true, stdout: wantOut, stderr: wantErr, ...tail });
        } catch (err) {
          throw engineError(err);
        }
        const abort = (): void => (stream as unknown as { destroy(): void }).destroy();
        options.signal?.addEventListener('abort', abort, { once: true });
        const demux = new Demuxer();
        try {
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            for (const c of demux.push(chunk)) yield c;
          }
        } catch (err) {
          if (!options.signal?.aborted) throw engineError(err);
        } finally {
          options.signal?.removeEventListener('abort', abort);
          abort();
        }
      },
    };
  }

  async stats(handle: TaskHandle): Promise<TaskStats> {
    const info = await this.#inspectContainer(handle);
    if (!info.State.Running) throw new DriverOperationError(handle.taskId, 'stats', 'the task is not running');
    try {
      const s = await (await this.#engine()).getContainer(info.Id).stats({ stream: false });
      return { cpuTimeNs: s.cpu_stats?.cpu_usage?.total_usage ?? 0, memoryBytes: s.memory_stats?.usage ?? 0, source: 'docker' };
    } catch (err) {
      throw this.#engineError(handle.taskId, 'stats', err);
    }
  }

  async destroy(handle: TaskHandle): Promise<void> {
    const id = this.#containerId(handle);
    try {
      const info = await (await this.#engine()).getContainer(id).inspect();
      if (info.State.Running) await this.stop(handle);
      await (await this.#engine()).getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      if (statusOf(err) !== 404 && !(err instanceof TaskLostError)) throw this.#engineError(handle.taskId, 'remove', err);
    }
    this.#entries.get(handle.taskId)?.monitor?.stop();
    this.#entries.delete(handle.taskId);
  }

  async close(): Promise<void> {
    for (const entry of this.#entries.values()) entry.monitor?.stop();
    this.#entries.clear();
  }

  /** Containers this engine holds for Shoal (labelled shoal.managed=true), e.g. to garbage-collect orphans. */
  async listManaged(): Promise<{ id: string; taskId: string; state: string }[]> {
    try {
      const list = await (await this.#engine()).listContainers({ all: true, filters: { label: [`${LABEL_MANAGED}=true`] } });
      return list.map((c) => ({ id: c.Id, taskId: c.Labels[LABEL_ALLOC] ?? '', state: c.State }));
    } catch (err) {
      throw this.#engineError('*', 'list containers', err);
    }
  }
}

/** GET `path` from the Engine API on its unix socket; rejects like dockerode does (statusCode, json.message). */
function engineGet(socketPath: string, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', headers: { host: 'docker' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch (_notJson) {
          json = null;
        }
        if (res.statusCode !== 200) {
          const message = (json as { message?: string } | null)?.message ?? `HTTP ${res.statusCode ?? '?'} from ${path}`;
          reject(Object.assign(new Error(message), { statusCode: res.statusCode, json }));
        } else if (json === null) {
          reject(new Error(`${path} did not answer JSON`));
        } else {
          resolve(json);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}
