/**
 * Keys of the peer network: the cluster key (shared secret every member holds), what is derived from it, and the
 * node's own identity key pair (its seed persisted in the data directory).
 *
 * Derivations use HMAC-SHA256 keyed by the cluster key with a distinct label each, so the discovery topic (which
 * every DHT node can see) reveals nothing about the key used to authenticate links, nor about the key itself.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { KeyFileError } from './errors.js';

export const CLUSTER_KEY_BYTES = 32;
export const NODE_SEED_BYTES = 32;
/** File in the data directory holding the 32-byte seed of the node's Ed25519 key pair. */
export const NODE_SEED_FILE = 'node-key.seed';

const TOPIC_LABEL = 'shoal/v1/discovery-topic';
const AUTH_LABEL = 'shoal/v1/link-auth-key';
const SECRETS_LABEL = 'shoal/v1/secrets-at-rest-key';
const SECRET_DIGEST_LABEL = 'shoal/v1/secret-digest-key';

/**
 * Parses a cluster key: 64 hex characters (what `shoal keygen` writes, surrounding whitespace allowed) or exactly
 * 32 raw bytes.
 */
export function parseClusterKey(data: Uint8Array | string, where: string): Uint8Array {
  const text = typeof data === 'string' ? data : Buffer.from(data).toString('latin1');
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Uint8Array.from(Buffer.from(trimmed, 'hex'));
  if (typeof data !== 'string' && data.length === CLUSTER_KEY_BYTES) return Uint8Array.from(data);
  throw new KeyFileError(`${where}: a cluster key must be 64 hex characters (as written by \`shoal keygen\`) or 32 raw bytes`, { where });
}

/** Reads the cluster key from a file (--cluster-key-file) or, when no file is given, from SHOAL_CLUSTER_KEY. */
export function loadClusterKey(options: { file?: string; env?: NodeJS.ProcessEnv }): Uint8Array {
  if (options.file !== undefined) {
    let raw: Buffer;
    try {
      raw = readFileSync(options.file);
    } catch (err) {
      throw new KeyFileError(`cannot read cluster key file ${options.file}: ${(err as Error).message}`, { file: options.file });
    }
    return parseClusterKey(raw, options.file);
  }
  const fromEnv = (options.env ?? process.env)['SHOAL_CLUSTER_KEY'];
  if (fromEnv === undefined || fromEnv === '') {
    throw new KeyFileError('no cluster key: pass --cluster-key-file or set SHOAL_CLUSTER_KEY (create one with `shoal keygen`)');
  }
  return parseClusterKey(fromEnv, 'SHOAL_CLUSTER_KEY');
}

function derive(clusterKey: Uint8Array, label: string): Buffer {
  if (clusterKey.length !== CLUSTER_KEY_BYTES) throw new KeyFileError(`cluster key must be ${CLUSTER_KEY_BYTES} bytes, got ${clusterKey.length}`);
  return createHmac('sha256', clusterKey).update(label).digest();
}

/** The 32-byte discovery topic: agents without the cluster key cannot compute it, so they cannot find members. */
export function discoveryTopic(clusterKey: Uint8Array): Buffer {
  return derive(clusterKey, TOPIC_LABEL);
}

/** The key that link proofs are computed with (never the cluster key itself). */
export function linkAuthKey(clusterKey: Uint8Array): Buffer {
  return derive(clusterKey, AUTH_LABEL);
}

/** The key secrets are encrypted under in the Raft log, snapshots and data dirs (src/runtime/secrets.ts). */
export function secretsKey(clusterKey: Uint8Array): Buffer {
  return derive(clusterKey, SECRETS_LABEL);
}

/** The key a secret's digest is computed with, so that the digest reveals nothing about the value without it. */
export function secretDigestKey(clusterKey: Uint8Array): Buffer {
  return derive(clusterKey, SECRET_DIGEST_LABEL);
}

/**
 * Returns the node's identity seed from `<dataDir>/node-key.seed`, creating it (mode 0600) on first start.
 * The node id is the public key derived from it, so the seed must survive restarts.
 */
export function loadOrCreateNodeSeed(dataDir: string): { seed: Uint8Array; created: boolean } {
  const file = join(dataDir, NODE_SEED_FILE);
  let fd: number;
  let created = false;
  try {
    // 'wx' fails if the file exists: two agents racing on one data dir cannot both write a seed.
    fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, randomBytes(NODE_SEED_BYTES));
    } finally {
      closeSync(fd);
    }
    chmodSync(file, 0o600);
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new KeyFileError(`cannot create node key ${file}: ${(err as Error).message}`, { file });
    }
  }
  let seed: Buffer;
  try {
    const rfd = openSync(file, 'r');
    try {
      const st = fstatSync(rfd);
      if ((st.mode & 0o077) !== 0) {
        throw new KeyFileError(`node key ${file} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 on it`, { file });
      }
      seed = readFileSync(rfd);
    } finally {
      closeSync(rfd);
    }
  } catch (err) {
    if (err instanceof KeyFileError) throw err;
    throw new KeyFileError(`cannot read node key ${file}: ${(err as Error).message}`, { file });
  }
  if (seed.length !== NODE_SEED_BYTES) {
    throw new KeyFileError(`node key ${file} holds ${seed.length} bytes, expected ${NODE_SEED_BYTES}; move it away to create a new identity`, { file });
  }
  return { seed: Uint8Array.from(seed), created };
}
