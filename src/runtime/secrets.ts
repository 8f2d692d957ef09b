/**
 * Secrets at rest: the agent that takes a write seals a secret before it is proposed, so the Raft log, its
 * snapshots and every agent's data dir hold only ciphertext; an agent that runs a task using it opens it, with the
 * cluster key every member holds.
 *
 *   contents ─► XChaCha20-Poly1305 (libsodium, sodium-native), key = HMAC(cluster key, label), fresh 24-byte nonce,
 *               the secret's name as associated data ─► base64(nonce ‖ ciphertext) in the FileObjectRecord
 *
 * The threat this answers is a data dir or a backup that leaks: the cluster key file lives apart from the data dir
 * (`--cluster-key-file`), and without it nothing in the data dir can be read. It does not protect against someone
 * who holds the cluster key (any member), nor root on a node while a task that uses the secret runs there (the
 * plaintext is then on that node's tmpfs). The name as associated data keeps one secret's ciphertext from being
 * passed off as another's.
 *
 * A config is not encrypted: its contents are stored as they are (base64), and `shoal config status` shows them.
 */
import { createHash, createHmac } from 'node:crypto';
import sodium from 'sodium-native';
import { InvalidArgumentError, ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { FileObjectInput, FileObjectKind, FileObjectRecord } from '../state/types.js';
import { secretDigestKey, secretsKey } from '../transport/index.js';

const NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
const TAG_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES;

/** Names as Docker allows them for secrets and configs. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function validObjectName(name: string): boolean {
  return NAME_RE.test(name);
}

export class SecretVault {
  readonly #key: Buffer;
  readonly #digestKey: Buffer;

  constructor(clusterKey: Uint8Array) {
    this.#key = secretsKey(clusterKey);
    this.#digestKey = secretDigestKey(clusterKey);
  }

  /** The record to propose for `contents`, sealed when it is a secret. `job`: the job whose file provides it. */
  seal(kind: FileObjectKind, name: string, contents: Buffer, job: string | null): FileObjectInput {
    if (!validObjectName(name)) throw new InvalidArgumentError(`${kind} name "${name}" must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit`);
    if (contents.length > LIMITS.fileObjectMaxBytes) throw new InvalidArgumentError(`${kind} "${name}" has ${contents.length} bytes, more than ${LIMITS.fileObjectMaxBytes} (fileObjectMaxBytes)`);
    if (kind === 'config') {
      return { kind, name, data: contents.toString('base64'), digest: createHash('sha256').update(contents).digest('hex'), sizeBytes: contents.length, job };
    }
    const nonce = Buffer.alloc(NONCE_BYTES);
    sodium.randombytes_buf(nonce);
    const sealed = Buffer.alloc(contents.length + TAG_BYTES);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(sealed, contents, associatedData(name), null, nonce, this.#key);
    return {
      kind, name, data: Buffer.concat([nonce, sealed]).toString('base64'),
      digest: createHmac('sha256', this.#digestKey).update(contents).digest('hex'), sizeBytes: contents.length, job,
    };
  }

  /** The contents of a record; a secret that does not open (another cluster key, or altered) throws, naming it. */
  open(record: Pick<FileObjectRecord, 'kind' | 'name' | 'data'>): Buffer {
    const raw = Buffer.from(record.data, 'base64');
    if (record.kind === 'config') return raw;
    if (raw.length < NONCE_BYTES + TAG_BYTES) throw new ShoalError('ERR_DATA_LOSS', `secret "${record.name}" is stored truncated (${raw.length} bytes)`);
    const out = Buffer.alloc(raw.length - NONCE_BYTES - TAG_BYTES);
    try {
      sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, raw.subarray(NONCE_BYTES), associatedData(record.name), raw.subarray(0, NONCE_BYTES), this.#key);
    } catch {
      throw new ShoalError('ERR_DATA_LOSS', `secret "${record.name}" does not decrypt with this agent's cluster key: it was written under another key, or altered`);
    }
    return out;
  }
}

function associatedData(name: string): Buffer {
  return Buffer.from(`shoal/v1/secret:${name}`);
}
