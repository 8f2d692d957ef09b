/**
 * The engine side of the mesh's container bridges (`src/mesh/bridges.ts`): Docker networks of the `bridge` driver,
 * created, listed and removed through the Engine API (dockerode, loaded on first use), and the extra host addresses
 * the agent listens on, added to the bridge's interface with iproute2 (`ip addr add`).
 *
 * Each network is labelled `shoal.managed=true` here, and `shoal.node=<node id>` and `shoal.network=<network>` by the
 * mesh, so that an agent finds its own bridges again after a restart and several agents can share one engine.
 */
import { execFile } from 'node:child_process';
import type Docker from 'dockerode';
import { LIMITS } from '../lib/limits.js';
import { DriverOperationError, DriverUnavailableError } from './errors.js';
import { DEFAULT_DOCKER_SOCKET, LABEL_MANAGED } from './docker.js';

/** A bridge to create: names, the /24, where the engine may place containers, and whether it has a way out. */
type BridgeCreate = { name: string; bridgeName: string; subnet: string; gateway: string; ipRange: string; internal: boolean; labels: Record<string, string> };

interface EngineError {
  statusCode?: number;
  json?: { message?: string } | null;
  message?: string;
}

const messageOf = (err: unknown): string => {
  const e = err as EngineError | undefined;
  return (e?.json?.message ?? e?.message ?? String(err)).trim();
};

/** The mesh's `BridgeEngine` (src/mesh/bridges.ts), on a Docker engine. */
export class DockerBridges {
  readonly socketPath: string;
  #docker: Promise<Docker> | undefined;

  constructor(socketPath = DEFAULT_DOCKER_SOCKET) {
    this.socketPath = socketPath;
  }

  #engine(): Promise<Docker> {
    this.#docker ??= import('dockerode').then((m) => new m.default({ socketPath: this.socketPath, timeout: LIMITS.meshBridgeRequestTimeoutMs }));
    return this.#docker;
  }

  #error(op: string, err: unknown): Error {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return new DriverUnavailableError('docker', `${this.socketPath}: ${messageOf(err)}`, { cause: err });
    return new DriverOperationError('network', op, messageOf(err), { cause: err });
  }

  async list(): Promise<{ name: string; bridgeName: string; subnets: string[]; labels: Record<string, string> }[]> {
    let nets: Docker.NetworkInspectInfo[];
    try {
      nets = await (await this.#engine()).listNetworks();
    } catch (err) {
      throw this.#error('list networks', err);
    }
    return nets.map((n) => ({
      name: n.Name,
      bridgeName: n.Options?.['com.docker.network.bridge.name'] ?? '',
      subnets: (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? '').filter((s) => s !== ''),
      labels: n.Labels ?? {},
    }));
  }

  async create(n: BridgeCreate): Promise<void> {
    try {
      await (await this.#engine()).createNetwork({
        Name: n.name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Internal: n.internal,
        Labels: { ...n.labels, [LABEL_MANAGED]: 'true' },
        Options: { 'com.docker.network.bridge.name': n.bridgeName },
        IPAM: { Driver: 'default', Config: [{ Subnet: n.subnet, Gateway: n.gateway, IPRange: n.ipRange }] },
      });
    } catch (err) {
      throw this.#error(`create network ${n.name} (${n.subnet})`, err);
    }
  }

  async remove(name: string): Promise<boolean> {
    try {
      await (await this.#engine()).getNetwork(name).remove();
      return true;
    } catch (err) {
      const status = (err as EngineError).statusCode;
      if (status === 404 || status === 403 || status === 409) return false; // gone, or containers still on it
      throw this.#error(`remove network ${name}`, err);
    }
  }

  async addresses(name: string): Promise<string[]> {
    try {
      const info = await (await this.#engine()).getNetwork(name).inspect() as { Containers?: Record<string, { IPv4Address?: string }> };
      return Object.values(info.Containers ?? {}).map((c) => (c.IPv4Address ?? '').replace(/\/\d+$/, '')).filter((a) => a !== '');
    } catch (err) {
      throw this.#error(`inspect network ${name}`, err);
    }
  }

  addAddress(bridgeName: string, ip: string): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile('ip', ['addr', 'add', `${ip}/32`, 'dev', bridgeName], { timeout: LIMITS.meshBridgeRequestTimeoutMs }, (err, _stdout, stderr) => {
        if (!err || /File exists|Address already assigned/i.test(stderr)) resolve();
        else reject(new DriverOperationError('network', `add address ${ip} to ${bridgeName}`, (stderr || err.message).trim(), { cause: err }));
      });
    });
  }
}
