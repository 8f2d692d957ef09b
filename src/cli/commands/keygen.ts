/**
 * `shoal keygen`: writes a new cluster key (32 random bytes, as 64 hex characters) to a file readable only by its
 * owner. Every agent of a cluster is given the same file (--cluster-key-file) or value (SHOAL_CLUSTER_KEY).
 * The format is the one src/transport/keys.ts parses.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Command } from 'commander';
import { ShoalError } from '../../lib/errors.js';

export class KeygenError extends ShoalError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ERR_KEYGEN', message, details);
  }
}

/** Writes a fresh key to `file` (mode 0600); refuses to overwrite an existing file unless `force`. */
export function writeClusterKey(file: string, force = false): void {
  let fd: number;
  try {
    fd = openSync(file, force ? 'w' : 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new KeygenError(`${file} exists already; keep it, or pass --force to replace it (every agent then needs the new key)`, { file });
    throw new KeygenError(`cannot create ${file}: ${(err as Error).message}`, { file });
  }
  try {
    writeSync(fd, `${randomBytes(32).toString('hex')}\n`);
  } finally {
    closeSync(fd);
  }
}

export function registerKeygen(program: Command): void {
  program
    .command('keygen')
    .description('write a new cluster key (32 random bytes, hex) to a file only its owner can read')
    .argument('<file>', 'where to write the key, e.g. /etc/shoal/cluster.key')
    .option('-f, --force', 'replace an existing file', false)
    .action((file: string, opts: { force: boolean }) => {
      writeClusterKey(file, opts.force);
      process.stdout.write(`wrote a new cluster key to ${file}; give it to every agent with --cluster-key-file\n`);
    });
}
