/** The task drivers an agent offers: each is probed once at start; the usable ones run tasks and are gossiped. */
import { describeError } from '../lib/errors.js';
import type { Logger } from '../log/logger.js';
import { DockerDriver, ProcessDriver, type Fingerprint, type TaskDriver } from '../drivers/index.js';
import { DockerBridges } from '../drivers/docker-networks.js';
import type { BridgeEngine } from '../mesh/index.js';
import type { AgentConfig } from './config.js';

/** Probes every driver; the usable ones are returned (and gossiped in the node's metadata), the others logged with the reason. */
export async function fingerprintDrivers(config: Pick<AgentConfig, 'dataDir' | 'dockerSocket'>, log: Logger): Promise<{ drivers: Map<string, TaskDriver>; fingerprints: Fingerprint[] }> {
  const candidates: TaskDriver[] = [
    new ProcessDriver({ dataDir: config.dataDir, logger: log }),
    new DockerDriver({ socketPath: config.dockerSocket, logger: log }),
  ];
  const fingerprints = await Promise.all(candidates.map(async (d) => {
    try {
      return await d.fingerprint();
    } catch (err) {
      return { driver: d.name, available: false, reason: describeError(err), attributes: {} } satisfies Fingerprint;
    }
  }));
  const drivers = new Map<string, TaskDriver>();
  for (const [i, fp] of fingerprints.entries()) {
    if (fp.available) {
      drivers.set(fp.driver, candidates[i]!);
      log.info({ driver: fp.driver, version: fp.version, ...fp.attributes }, 'task driver available');
    } else {
      log.warn({ driver: fp.driver, reason: fp.reason }, 'task driver unavailable');
    }
  }
  return { drivers, fingerprints };
}

/** The mesh's container bridges, on the docker driver's engine; none when this agent has no docker driver. */
export function bridgesFor(config: Pick<AgentConfig, 'dockerSocket' | 'bridgePool'>, drivers: ReadonlyMap<string, TaskDriver>): { bridges?: { engine: BridgeEngine; pool: string } } {
  return drivers.has('docker') ? { bridges: { engine: new DockerBridges(config.dockerSocket), pool: config.bridgePool } } : {};
}
