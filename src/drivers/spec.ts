/**
 * Validation of a TaskSpec at the driver's edge, so every driver rejects the same bad input with the same
 * error (field path included) before it creates anything.
 */
import { constants } from 'node:os';
import { isIP } from 'node:net';
import { LIMITS } from '../lib/limits.js';
import { InvalidTaskError } from './errors.js';
import type { HealthCheckSpec, TaskSpec } from './types.js';

/** Allocation ids become container names, cgroup and directory names: keep them to a safe alphabet. */
const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const DEFAULT_STOP_SIGNAL = 'SIGTERM';

export function isSignalName(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(constants.signals, name);
}

export function signalNumber(name: string): number {
  return (constants.signals as Record<string, number>)[name] ?? 0;
}

function checkCount(id: string, field: string, n: number): void {
  if (n > LIMITS.driverMaxTaskListEntries) throw new InvalidTaskError(id, field, `${n} entries, at most ${LIMITS.driverMaxTaskListEntries} allowed`);
}

function checkMs(id: string, field: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidTaskError(id, field, `must be an integer number of milliseconds in [${min}, ${max}], got ${value}`);
  }
}

function checkHealth(id: string, hc: HealthCheckSpec): void {
  const { driverHealthMinIntervalMs: min, driverHealthMaxIntervalMs: max } = LIMITS;
  checkMs(id, 'healthcheck.intervalMs', hc.intervalMs, min, max);
  checkMs(id, 'healthcheck.timeoutMs', hc.timeoutMs, min, max);
  checkMs(id, 'healthcheck.startPeriodMs', hc.startPeriodMs, 0, max);
  if (!Number.isSafeInteger(hc.retries) || hc.retries < 1 || hc.retries > LIMITS.driverHealthMaxRetries) {
    throw new InvalidTaskError(id, 'healthcheck.retries', `must be an integer in [1, ${LIMITS.driverHealthMaxRetries}], got ${hc.retries}`);
  }
  const test = hc.test;
  if (test.kind === 'cmd' && test.argv.length === 0) throw new InvalidTaskError(id, 'healthcheck.test', 'CMD needs at least the executable');
  if (test.kind === 'cmd-shell' && test.command.trim() === '') throw new InvalidTaskError(id, 'healthcheck.test', 'CMD-SHELL needs a command');
  if ((test.kind === 'http' || test.kind === 'tcp') && (!Number.isSafeInteger(test.port) || test.port < 1 || test.port > 65535)) {
    throw new InvalidTaskError(id, 'healthcheck.test.port', `must be a port number in [1, 65535], got ${test.port}`);
  }
}

/** Throws InvalidTaskError naming the first bad field; `needs` says which of image/command the driver requires. */
export function validateTaskSpec(spec: TaskSpec, needs: { image?: boolean; command?: boolean } = {}): void {
  const id = typeof spec.id === 'string' ? spec.id : String(spec.id);
  if (!TASK_ID.test(id)) throw new InvalidTaskError(id.slice(0, 80), 'id', 'must be 1-128 characters of [A-Za-z0-9_.-], starting with a letter or digit');
  if (typeof spec.name !== 'string' || spec.name === '') throw new InvalidTaskError(id, 'name', 'must be a non-empty string');
  if (needs.image && (typeof spec.image !== 'string' || spec.image === '')) throw new InvalidTaskError(id, 'image', 'this driver needs an image');
  if (needs.command && (typeof spec.command !== 'string' || spec.command === '')) throw new InvalidTaskError(id, 'command', 'this driver needs a command');
  const env = spec.env ?? {};
  checkCount(id, 'env', Object.keys(env).length);
  for (const [k, v] of Object.entries(env)) {
    if (!ENV_NAME.test(k)) throw new InvalidTaskError(id, `env.${k}`, 'is not a valid environment variable name');
    if (typeof v !== 'string' || v.includes('\0')) throw new InvalidTaskError(id, `env.${k}`, 'must be a string without NUL bytes');
  }
  checkCount(id, 'args', spec.args?.length ?? 0);
  checkCount(id, 'labels', Object.keys(spec.labels ?? {}).length);
  checkCount(id, 'ports', spec.ports?.length ?? 0);
  checkCount(id, 'mounts', spec.mounts?.length ?? 0);
  const r = spec.resources;
  if (r?.cpus !== undefined && !(Number.isFinite(r.cpus) && r.cpus > 0 && r.cpus <= 1024)) {
    throw new InvalidTaskError(id, 'resources.cpus', `must be a number in (0, 1024], got ${r.cpus}`);
  }
  // 6 MiB is Docker's own floor; a smaller limit would only kill the task before it starts.
  if (r?.memoryBytes !== undefined && !(Number.isSafeInteger(r.memoryBytes) && r.memoryBytes >= 6 * 1024 * 1024)) {
    throw new InvalidTaskError(id, 'resources.memoryBytes', `must be an integer of at least 6 MiB, got ${r.memoryBytes}`);
  }
  (spec.ports ?? []).forEach((p, i) => {
    if (!Number.isSafeInteger(p.port) || p.port < 1 || p.port > 65535) throw new InvalidTaskError(id, `ports[${i}].port`, `must be in [1, 65535], got ${p.port}`);
    if (p.target !== undefined && (!Number.isSafeInteger(p.target) || p.target < 1 || p.target > 65535)) throw new InvalidTaskError(id, `ports[${i}].target`, `must be in [1, 65535], got ${p.target}`);
    if (p.hostIp !== undefined && isIP(p.hostIp) === 0) throw new InvalidTaskError(id, `ports[${i}].hostIp`, `must be an IP address, got "${p.hostIp}"`);
  });
  (spec.dns ?? []).forEach((d, i) => {
    if (isIP(d) === 0) throw new InvalidTaskError(id, `dns[${i}]`, `must be an IP address, got "${d}"`);
  });
  if (spec.user !== undefined && !/^[^:\s]+(:[^:\s]+)?$/.test(spec.user)) throw new InvalidTaskError(id, 'user', `must be USER or USER:GROUP (names or ids), got "${spec.user}"`);
  for (const field of ['capAdd', 'capDrop'] as const) {
    (spec[field] ?? []).forEach((cap, i) => {
      if (!/^(?:CAP_)?[A-Z][A-Z_]*$|^ALL$/.test(cap)) throw new InvalidTaskError(id, `${field}[${i}]`, `"${cap}" is not a capability name`);
    });
  }
  (spec.ulimits ?? []).forEach((u, i) => {
    if (!Number.isSafeInteger(u.soft) || !Number.isSafeInteger(u.hard) || u.soft < -1 || u.hard < -1) throw new InvalidTaskError(id, `ulimits[${i}]`, `${u.name}: limits must be whole numbers (-1 for unlimited)`);
  });
  if (spec.pidsLimit !== undefined && (!Number.isSafeInteger(spec.pidsLimit) || spec.pidsLimit < 1)) throw new InvalidTaskError(id, 'pidsLimit', `must be a whole number of at least 1, got ${spec.pidsLimit}`);
  if (spec.hostname !== undefined && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(spec.hostname)) throw new InvalidTaskError(id, 'hostname', `"${spec.hostname}" is not a host name (letters, digits, "-" and ".")`);
  checkCount(id, 'extraHosts', spec.extraHosts?.length ?? 0);
  if (spec.networkMode === 'bridge' && (spec.networks?.length ?? 0) === 0) throw new InvalidTaskError(id, 'networks', 'a task on bridges needs at least one network');
  if (spec.networkMode !== 'bridge' && (spec.networks?.length ?? 0) > 0) throw new InvalidTaskError(id, 'networks', 'only a task in network mode "bridge" joins networks');
  checkCount(id, 'networks', spec.networks?.length ?? 0);
  for (const [name, ip] of Object.entries(spec.addresses ?? {})) {
    if (!(spec.networks ?? []).includes(name)) throw new InvalidTaskError(id, `addresses.${name}`, 'names a network the task is not on');
    if (isIP(ip) !== 4) throw new InvalidTaskError(id, `addresses.${name}`, `must be an IPv4 address, got "${ip}"`);
  }
  if ((spec.ports?.length ?? 0) > 0 && spec.networkMode === 'none') throw new InvalidTaskError(id, 'ports', 'a task with network mode "none" cannot publish ports');
  (spec.mounts ?? []).forEach((m, i) => {
    if (m.type !== undefined && m.type !== 'volume' && m.type !== 'tmpfs') throw new InvalidTaskError(id, `mounts[${i}].type`, `must be "volume", "tmpfs" or absent (a bind mount), got "${String(m.type)}"`);
    if (m.type === 'volume' && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(m.source)) throw new InvalidTaskError(id, `mounts[${i}].source`, `"${m.source}" is not a volume name`);
    if (m.type === undefined && !m.source.startsWith('/')) throw new InvalidTaskError(id, `mounts[${i}].source`, `must be an absolute host path, got "${m.source}"`);
    if (!m.target.startsWith('/')) throw new InvalidTaskError(id, `mounts[${i}].target`, `must be an absolute path, got "${m.target}"`);
  });
  if (spec.networkMode !== undefined && spec.networkMode !== 'bridge' && spec.networkMode !== 'host' && spec.networkMode !== 'none') {
    throw new InvalidTaskError(id, 'networkMode', `must be "bridge", "host" or "none", got "${String(spec.networkMode)}"`);
  }
  if (spec.stopSignal !== undefined && !isSignalName(spec.stopSignal)) throw new InvalidTaskError(id, 'stopSignal', `"${spec.stopSignal}" is not a signal name (e.g. SIGTERM)`);
  if (spec.stopGraceMs !== undefined) checkMs(id, 'stopGraceMs', spec.stopGraceMs, 0, LIMITS.driverMaxStopGraceMs);
  if (spec.healthcheck) checkHealth(id, spec.healthcheck);
}

/** The stop signal and grace to use, from the call's arguments else the spec else the defaults. */
export function stopParameters(spec: TaskSpec, signal?: string, graceMs?: number): { signal: string; graceMs: number } {
  const sig = signal ?? spec.stopSignal ?? DEFAULT_STOP_SIGNAL;
  if (!isSignalName(sig)) throw new InvalidTaskError(spec.id, 'stop signal', `"${sig}" is not a signal name`);
  const grace = graceMs ?? spec.stopGraceMs ?? LIMITS.driverDefaultStopGraceMs;
  checkMs(spec.id, 'stop grace', grace, 0, LIMITS.driverMaxStopGraceMs);
  return { signal: sig, graceMs: grace };
}

/** Cuts probe output to the kept size. */
export function clip(text: string): string {
  return text.length > LIMITS.driverHealthMaxOutputBytes ? `${text.slice(0, LIMITS.driverHealthMaxOutputBytes)}…` : text;
}
