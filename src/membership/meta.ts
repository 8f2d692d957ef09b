/**
 * Node metadata checks and the size measure used for every membership bound.
 *
 * Sizes are measured as the UTF-8 length of the JSON form. The protobuf form the runtime sends is smaller, so a
 * message that fits by this measure fits on the wire too; and the measure is deterministic and needs no codec in
 * the core.
 */
import { LimitExceededError, InvalidArgumentError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { NodeMeta, Rumour } from './types.js';

/** UTF-8 byte length of a string, without an encoder. */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * The size of a rumour by the same measure, without re-encoding its metadata: an upper bound of its JSON form
 * (the fixed part is at most 64 bytes: kind, field names, an incarnation of up to 16 digits).
 */
export function rumourSizeBytes(r: Rumour): number {
  const fixed = 64 + utf8Bytes(r.node);
  if (r.kind === 'alive') return fixed + metaSizeBytes(r.meta);
  if (r.kind === 'left') return fixed;
  return fixed + utf8Bytes(r.from);
}

export function encodedSizeBytes(value: unknown): number {
  return utf8Bytes(JSON.stringify(value));
}

/** Metadata of a node that has told us nothing yet (a seed we only know by id). */
export function emptyMeta(): NodeMeta {
  return { name: '', agentVersion: '', addresses: [], labels: {}, resources: { cpuMillicores: 0, memoryBytes: 0, diskFreeBytes: 0 }, drivers: [], roles: { voter: false, leader: false } };
}

/** A canonical string form, for equality checks (labels sorted, so key order does not matter). */
export function metaKey(meta: NodeMeta): string {
  const labels = Object.keys(meta.labels).sort().map((k) => [k, meta.labels[k]]);
  return JSON.stringify([meta.name, meta.agentVersion, meta.addresses, labels, meta.resources.cpuMillicores, meta.resources.memoryBytes, meta.resources.diskFreeBytes, meta.drivers, meta.roles.voter, meta.roles.leader, meta.roles.replica === true]);
}

/** Checks that metadata is well formed and within LIMITS; throws naming the field. Used on our own updates. */
export function validateMeta(meta: NodeMeta): void {
  const problem = metaProblem(meta);
  if (problem === undefined) return;
  if (problem.startsWith('too large')) {
    throw new LimitExceededError('ERR_MEMBER_META_TOO_LARGE', `node metadata is ${problem}; shorten labels, addresses or drivers`, { limit: LIMITS.membershipMaxMetaBytes });
  }
  throw new InvalidArgumentError(`node metadata: ${problem}`);
}

/**
 * Verdicts and sizes per metadata object. Metadata is treated as immutable once handed to the core (a decoded
 * message, our own update), and the same object is passed along by every rumour and push-pull that repeats it,
 * so measuring it once saves re-encoding it on every hop.
 */
const verdicts = new WeakMap<object, string | undefined>();
const sizes = new WeakMap<object, number>();

/** The encoded size of a metadata object, measured once. */
export function metaSizeBytes(meta: NodeMeta): number {
  let size = sizes.get(meta);
  if (size === undefined) {
    size = encodedSizeBytes(meta);
    sizes.set(meta, size);
  }
  return size;
}

/** Why metadata (possibly from a peer) is unacceptable, or undefined when it is fine. Never throws. */
export function metaProblem(meta: unknown): string | undefined {
  if (typeof meta !== 'object' || meta === null) return 'must be an object';
  if (verdicts.has(meta)) return verdicts.get(meta);
  const verdict = checkMeta(meta);
  verdicts.set(meta, verdict);
  return verdict;
}

function checkMeta(meta: object): string | undefined {
  const m = meta as Partial<NodeMeta>;
  if (typeof m.name !== 'string') return 'name must be a string';
  if (typeof m.agentVersion !== 'string') return 'agentVersion must be a string';
  if (!Array.isArray(m.addresses) || !m.addresses.every((a) => typeof a === 'string')) return 'addresses must be a list of strings';
  if (typeof m.labels !== 'object' || m.labels === null || Array.isArray(m.labels)) return 'labels must be an object';
  for (const [k, v] of Object.entries(m.labels)) if (typeof v !== 'string') return `labels.${k} must be a string`;
  const r = m.resources;
  if (typeof r !== 'object' || r === null) return 'resources must be an object';
  for (const f of ['cpuMillicores', 'memoryBytes', 'diskFreeBytes'] as const) {
    if (!Number.isSafeInteger(r[f]) || r[f] < 0) return `resources.${f} must be a non-negative integer`;
  }
  if (!Array.isArray(m.drivers) || !m.drivers.every((d) => typeof d === 'string')) return 'drivers must be a list of strings';
  if (typeof m.roles !== 'object' || m.roles === null || typeof m.roles.voter !== 'boolean' || typeof m.roles.leader !== 'boolean') return 'roles must be { voter: boolean, leader: boolean }';
  if (m.roles.replica !== undefined && typeof m.roles.replica !== 'boolean') return 'roles.replica must be a boolean';
  const size = metaSizeBytes(meta as NodeMeta);
  if (size > LIMITS.membershipMaxMetaBytes) return `too large (${size} bytes, limit membershipMaxMetaBytes = ${LIMITS.membershipMaxMetaBytes})`;
  return undefined;
}
