/**
 * Partitioning schemes of `x-shoal.state` (Service Fabric's three): which partition a partition key belongs to.
 *
 * - `uniform`: the int64 space [-2^63, 2^63 - 1] split into `partitions` contiguous ranges of equal size (sizes
 *   differ by at most one). With S = 2^64 and u = position + 2^63, partition i holds
 *   u in [floor(i*S/N), floor((i+1)*S/N) - 1]. A string key's position is its XXH64 (hash.ts); an int64 key (the
 *   gateway's `PartitionKind=Int64Range`) is its own position.
 * - `named`: one partition per name, numbered in the order the names are declared; a key must be one of them.
 * - `singleton`: one partition, number 0; any string key goes there, as does the absence of a key.
 *
 * A scheme is validated once (`validateScheme`) where it enters, as every job field is; `partitionFor` then trusts
 * it and only checks the key.
 */
import { invariant } from '../lib/assert.js';
import { LIMITS } from '../lib/limits.js';
import { isWellFormed, utf8Length } from './bytes.js';
import { failure, invalid, overLimit, type Failure } from './errors.js';
import { keyPosition } from './hash.js';

export type PartitionScheme =
  | { kind: 'uniform'; partitions: number }
  | { kind: 'named'; names: readonly string[] }
  | { kind: 'singleton' };

export type PartitionKey =
  /** A string key, what State calls carry (the entry's key by default): hashed, a name, or anything for a singleton. */
  | { kind: 'key'; key: string }
  /** A position in the int64 space, Service Fabric's Int64Range partition key. */
  | { kind: 'int64'; value: bigint }
  /** A partition's name, Service Fabric's Named partition key. */
  | { kind: 'named'; name: string }
  /** No key, Service Fabric's singleton partition key. */
  | { kind: 'singleton' };

export type PartitionInfo =
  | { partition: number; kind: 'uniform'; low: string; high: string }
  | { partition: number; kind: 'named'; name: string }
  | { partition: number; kind: 'singleton' };

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
const SPACE = 2n ** 64n;

export function validateScheme(scheme: PartitionScheme, field = 'state'): Failure | undefined {
  switch (scheme.kind) {
    case 'uniform':
      if (!Number.isSafeInteger(scheme.partitions) || scheme.partitions < 1) return invalid(`${field}.partitions`, `must be a whole number from 1, got ${scheme.partitions}`);
      if (scheme.partitions > LIMITS.partitionsMaxPerService) return overLimit('partitionsMaxPerService', scheme.partitions, `${field}.partitions`, 'the partition count');
      return undefined;
    case 'named': {
      if (scheme.names.length === 0) return invalid(`${field}.names`, 'a named scheme needs at least one name');
      if (scheme.names.length > LIMITS.partitionsMaxPerService) return overLimit('partitionsMaxPerService', scheme.names.length, `${field}.names`, 'the number of names');
      const seen = new Set<string>();
      for (const [i, name] of scheme.names.entries()) {
        const bad = checkPartitionKeyText(name, `${field}.names[${i}]`);
        if (bad) return bad;
        if (seen.has(name)) return invalid(`${field}.names[${i}]`, `"${name}" is listed twice; partition names must be distinct`);
        seen.add(name);
      }
      return undefined;
    }
    case 'singleton':
      return undefined;
  }
}

/** The number of partitions of a (valid) scheme. */
export function partitionCount(scheme: PartitionScheme): number {
  switch (scheme.kind) {
    case 'uniform':
      return scheme.partitions;
    case 'named':
      return scheme.names.length;
    case 'singleton':
      return 1;
  }
}

/** The inclusive int64 bounds of partition `i` of a uniform scheme of `partitions`. */
export function uniformRange(partitions: number, i: number): { low: bigint; high: bigint } {
  invariant(Number.isSafeInteger(partitions) && partitions >= 1 && Number.isSafeInteger(i) && i >= 0 && i < partitions, `no partition ${i} of ${partitions}`);
  const n = BigInt(partitions);
  const low = (BigInt(i) * SPACE) / n + INT64_MIN;
  const high = ((BigInt(i) + 1n) * SPACE) / n - 1n + INT64_MIN;
  return { low, high };
}

/**
 * The partition of a uniform scheme holding int64 `position`: the largest i with floor(i*S/N) <= u, which is
 * floor(((u+1)*N - 1) / S).
 */
export function uniformPartitionOf(partitions: number, position: bigint): number {
  invariant(position >= INT64_MIN && position <= INT64_MAX, `position ${position} is outside the int64 range`);
  const u = position - INT64_MIN;
  return Number(((u + 1n) * BigInt(partitions) - 1n) / SPACE);
}

/** Every partition of a (valid) scheme, with what a task is told about it (SHOAL_PARTITION_LOW/HIGH or _NAME). */
export function partitionsOf(scheme: PartitionScheme): PartitionInfo[] {
  switch (scheme.kind) {
    case 'uniform':
      return Array.from({ length: scheme.partitions }, (_, partition) => {
        const { low, high } = uniformRange(scheme.partitions, partition);
        return { partition, kind: 'uniform' as const, low: low.toString(), high: high.toString() };
      });
    case 'named':
      return scheme.names.map((name, partition) => ({ partition, kind: 'named' as const, name }));
    case 'singleton':
      return [{ partition: 0, kind: 'singleton' }];
  }
}

/** The partition a key belongs to under a scheme already validated by `validateScheme`. */
export function partitionFor(scheme: PartitionScheme, key: PartitionKey): { ok: true; partition: number } | Failure {
  switch (key.kind) {
    case 'key': {
      const bad = checkPartitionKeyText(key.key, 'partitionKey');
      if (bad) return bad;
      if (scheme.kind === 'uniform') return { ok: true, partition: uniformPartitionOf(scheme.partitions, keyPosition(key.key)) };
      if (scheme.kind === 'named') return named(scheme.names, key.key);
      return { ok: true, partition: 0 };
    }
    case 'int64':
      if (key.value < INT64_MIN || key.value > INT64_MAX) return invalid('partitionKey', `${key.value} is outside the int64 range [${INT64_MIN}, ${INT64_MAX}]`);
      if (scheme.kind !== 'uniform') return wrongKind(scheme, key);
      return { ok: true, partition: uniformPartitionOf(scheme.partitions, key.value) };
    case 'named': {
      if (scheme.kind !== 'named') return wrongKind(scheme, key);
      const bad = checkPartitionKeyText(key.name, 'partitionKey');
      return bad ?? named(scheme.names, key.name);
    }
    case 'singleton':
      if (scheme.kind !== 'singleton') return wrongKind(scheme, key);
      return { ok: true, partition: 0 };
  }
}

/**
 * The partition key of a gateway request (`?PartitionKey=K&PartitionKind=Int64Range|Named`, Service Fabric's reverse
 * proxy): a kind without a key, or a kind not listed, is refused; a key without a kind is a string key; neither is
 * the singleton key.
 */
export function gatewayPartitionKey(kind: string | undefined, key: string | undefined): PartitionKey | Failure {
  if (kind === undefined) return key === undefined ? { kind: 'singleton' } : { kind: 'key', key };
  if (key === undefined) return invalid('PartitionKey', `PartitionKind=${kind} needs a PartitionKey`);
  if (kind === 'Int64Range') {
    const value = parseInt64(key, 'PartitionKey');
    return typeof value === 'bigint' ? { kind: 'int64', value } : value;
  }
  if (kind === 'Named') return { kind: 'named', name: key };
  return invalid('PartitionKind', `"${kind}" is not a partition kind; use Int64Range or Named`);
}

/** A decimal int64, as Service Fabric writes Int64Range keys and partition bounds. */
export function parseInt64(text: string, field: string): bigint | Failure {
  if (!/^-?(0|[1-9][0-9]{0,18})$/.test(text)) return invalid(field, `"${text.slice(0, 40)}" is not a decimal int64`);
  const value = BigInt(text);
  if (value < INT64_MIN || value > INT64_MAX) return invalid(field, `${text} is outside the int64 range [${INT64_MIN}, ${INT64_MAX}]`);
  return value;
}

function checkPartitionKeyText(text: string, field: string): Failure | undefined {
  if (text.length === 0) return invalid(field, 'must not be empty');
  if (!isWellFormed(text)) return invalid(field, 'contains a lone UTF-16 surrogate; it has no UTF-8 form');
  const bytes = utf8Length(text);
  if (bytes > LIMITS.partitionKeyMaxBytes) return overLimit('partitionKeyMaxBytes', bytes, field, 'the partition key\'s UTF-8 length');
  return undefined;
}

function named(names: readonly string[], name: string): { ok: true; partition: number } | Failure {
  const partition = names.indexOf(name);
  if (partition >= 0) return { ok: true, partition };
  const listed = names.slice(0, 10).map((n) => `"${n}"`).join(', ') + (names.length > 10 ? ', ...' : '');
  return failure('ERR_UNKNOWN_PARTITION_NAME', `partitionKey: "${name}" is not a partition of this service; its partitions are ${listed}`, { field: 'partitionKey' });
}

const KEY_KIND_WORDS: Record<PartitionKey['kind'], string> = { key: 'a string key', int64: 'an Int64Range key', named: 'a Named key', singleton: 'no key' };
const SCHEME_WANTS: Record<PartitionScheme['kind'], string> = {
  uniform: 'a string key (hashed) or an Int64Range key',
  named: 'one of its names, as a string or Named key',
  singleton: 'no key, or any string key',
};

function wrongKind(scheme: PartitionScheme, key: PartitionKey): Failure {
  return failure('ERR_WRONG_PARTITION_KIND', `partitionKey: the service is partitioned ${scheme.kind}, which takes ${SCHEME_WANTS[scheme.kind]}, not ${KEY_KIND_WORDS[key.kind]}`, { field: 'partitionKey' });
}
