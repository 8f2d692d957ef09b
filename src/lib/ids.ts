/**
 * Identifiers.
 *
 * - A node id is the agent's Ed25519 public key in lower-case hex (64 characters): stable across restarts,
 *   and something a peer can prove it owns during the Noise handshake.
 * - Every other id (allocation, evaluation, job version...) is 128 random bits in hex (32 characters), drawn from
 *   the caller's seeded `Random` so a core stays deterministic.
 * - Users see the first 8 characters and may type any unique prefix, as with Nomad.
 */
import { invariant } from './assert.js';
import { AmbiguousIdError, InvalidArgumentError, NotFoundError } from './errors.js';
import type { Random } from './random.js';

export const NODE_ID_HEX_CHARS = 64;
export const ID_HEX_CHARS = 32;
export const SHORT_ID_CHARS = 8;

const HEX = /^[0-9a-f]+$/;

export type NodeId = string;

export function isNodeId(value: string): value is NodeId {
  return value.length === NODE_ID_HEX_CHARS && HEX.test(value);
}

export function parseNodeId(value: string, where = 'node id'): NodeId {
  const lower = value.trim().toLowerCase();
  if (!isNodeId(lower)) {
    throw new InvalidArgumentError(`${where}: expected ${NODE_ID_HEX_CHARS} hex characters, got "${value.slice(0, 80)}"`, { where });
  }
  return lower;
}

export function newId(random: Random): string {
  const id = random.hex(ID_HEX_CHARS / 2);
  invariant(id.length === ID_HEX_CHARS, 'newId produced an id of the wrong length');
  return id;
}

export function shortId(id: string): string {
  return id.slice(0, SHORT_ID_CHARS);
}

/**
 * Finds the one id among `ids` that starts with `prefix`. An exact match wins even when it is also the prefix of
 * a longer id. Throws NotFoundError or AmbiguousIdError with a message meant for the user.
 */
export function resolveIdPrefix(prefix: string, ids: Iterable<string>, kind = 'id'): string {
  const wanted = prefix.trim().toLowerCase();
  if (wanted.length === 0) throw new InvalidArgumentError(`${kind} prefix is empty`);
  const matches: string[] = [];
  for (const id of ids) {
    if (id === wanted) return id;
    if (id.startsWith(wanted)) matches.push(id);
  }
  if (matches.length === 0) throw new NotFoundError(`no ${kind} starts with "${wanted}"`, { prefix: wanted, kind });
  if (matches.length > 1) throw new AmbiguousIdError(wanted, matches.sort());
  return matches[0] as string;
}

/** The shortest prefix length (at least SHORT_ID_CHARS) that tells every id in the set apart. */
export function uniquePrefixLength(ids: readonly string[]): number {
  const sorted = [...ids].sort();
  let length = SHORT_ID_CHARS;
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1] as string;
    const b = sorted[i] as string;
    let common = 0;
    while (common < a.length && common < b.length && a[common] === b[common]) common++;
    length = Math.max(length, common + 1);
  }
  return length;
}

/** FNV-1a, 32 bits: a cheap, stable hash of a string, for spreading choices (a start in a range), never for security. */
export function fnv1a32(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}
