export * from './types.js';
export * from './errors.js';
export { validateTaskSpec, stopParameters, isSignalName } from './spec.js';
export { HealthTracker, HealthMonitor, tcpProbe, httpProbe, NO_HEALTH, type Probe, type ProbeResult } from './health.js';
export { ProcessDriver, type ProcessDriverOptions } from './process.js';
export { detectIsolation, type Isolation, type IsolationKind } from './cgroup.js';
export { DockerDriver, DEFAULT_DOCKER_SOCKET, LABEL_ALLOC, LABEL_MANAGED, containerName, type DockerDriverOptions } from './docker.js';
export { MockDriver, MockWorld, parseMockScript, type MockScript, type MockDriverOptions } from './mock.js';
