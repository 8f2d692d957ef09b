/**
 * A task's secrets and configs, written on its node just before it starts and removed when it is stopped or done.
 * Only a node that runs a task using a secret ever holds its plaintext, and only on a memory file system:
 *
 *   <root>/<node>/<alloc>/secrets/...   <root>: --secrets-dir, by default /run/shoal (when /run is a tmpfs) or
 *   <root>/<node>/<alloc>/configs/...           /dev/shm/shoal; <node>: the node id's start (agents may share a host)
 *
 * - A container gets each file bind-mounted, read-only, at its target (a secret's relative target is under
 *   /run/secrets), owned by the ref's uid and gid (root's by default), with its mode (0444 by default).
 * - A process task gets the two directories in SHOAL_SECRETS_DIR and SHOAL_CONFIGS_DIR, owned by the task's user
 *   with mode 0700 (no other user on the node may read them), each file at its relative target.
 *
 * A secret is written only if the directory is on tmpfs or ramfs: a task that needs one on another file system
 * fails to start, with the reason, rather than leave the plaintext on a disk.
 */
import { chmodSync, chownSync, mkdirSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ShoalError } from '../lib/errors.js';
import type { BindMount } from '../drivers/index.js';
import type { FileRef, Job, ServiceSpec } from '../jobspec/types.js';
import type { FileObjectKind, FileObjectRecord } from '../state/index.js';
import type { SecretVault } from './secrets.js';

export { SecretVault } from './secrets.js';

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/**
 * Where secrets go when --secrets-dir is not given: under systemd, the unit's RuntimeDirectory ($RUNTIME_DIRECTORY,
 * /run/shoal for agent/shoal.service) when it is a tmpfs; for root, /run/shoal on a host whose /run is a tmpfs,
 * else /dev/shm/shoal; for another user, $XDG_RUNTIME_DIR/shoal when that is a tmpfs, else /dev/shm/shoal-<uid>.
 */
export function defaultSecretsRoot(env: NodeJS.ProcessEnv = process.env): string {
  const uid = process.getuid?.() ?? 0;
  const onTmpfs = (dir: string): boolean => {
    try {
      return statfsSync(dir).type === TMPFS_MAGIC;
    } catch {
      return false;
    }
  };
  const unit = env['RUNTIME_DIRECTORY']?.split(':')[0];
  if (unit && onTmpfs(unit)) return unit;
  if (uid === 0) return onTmpfs('/run') ? '/run/shoal' : '/dev/shm/shoal';
  const runtime = env['XDG_RUNTIME_DIR'];
  return runtime && onTmpfs(runtime) ? join(runtime, 'shoal') : `/dev/shm/shoal-${uid}`;
}

/** The secrets and configs as the node holds them (the whole state on a server, the slice on a client). */
export interface ObjectSource {
  object(kind: FileObjectKind, name: string): FileObjectRecord | undefined;
}

/** What a task gets: files bind-mounted into a container, or directories named in a process task's environment. */
export interface TaskFilesResult {
  mounts: BindMount[];
  env: Record<string, string>;
}

export class TaskFiles {
  readonly #dir: string;
  readonly #vault: SecretVault;

  constructor(options: { root: string; nodeId: string; vault: SecretVault }) {
    this.#dir = join(options.root, options.nodeId.slice(0, 16));
    this.#vault = options.vault;
  }

  get dir(): string {
    return this.#dir;
  }

  /**
   * Writes the task's secrets and configs (replacing what an earlier run of the allocation left). `owner`: the uid
   * and gid a process task runs as (null: the agent's own).
   */
  write(allocId: string, spec: ServiceSpec, job: Job, objects: ObjectSource, owner: { uid: number; gid: number } | null): TaskFilesResult {
    const secrets = spec.secrets ?? [];
    const configs = spec.configs ?? [];
    const result: TaskFilesResult = { mounts: [], env: {} };
    if (secrets.length === 0 && configs.length === 0) return result;
    const base = join(this.#dir, allocId);
    rmSync(base, { recursive: true, force: true });
    // The root may be a directory of the system's (--secrets-dir /dev/shm): its mode is left alone unless it is made
    // here. The node's and the task's directories are this agent's own.
    if (mkdirSync(dirname(this.#dir), { recursive: true, mode: 0o711 }) !== undefined) chmodSync(dirname(this.#dir), 0o711);
    for (const d of [this.#dir, base]) {
      mkdirSync(d, { recursive: true, mode: 0o711 });
      chmodSync(d, 0o711);
    }
    if (secrets.length > 0) this.#checkMemoryFs(spec.name);
    const processTask = spec.driver === 'process';
    for (const [kind, refs] of [['secret', secrets], ['config', configs]] as const) {
      if (refs.length === 0) continue;
      const dir = join(base, `${kind}s`);
      mkdirSync(dir, { mode: 0o700 });
      for (const [i, ref] of refs.entries()) {
        const contents = this.#contents(kind, ref, job, objects, spec.name);
        const file = processTask ? join(dir, ref.target) : join(dir, String(i));
        if (!file.startsWith(`${dir}/`)) throw new ShoalError('ERR_INVALID_ARGUMENT', `service "${spec.name}": ${kind} target "${ref.target}" leaves SHOAL_${kind.toUpperCase()}S_DIR`);
        mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
        writeFileSync(file, contents, { mode: 0o600 });
        contents.fill(0);
        const uid = ref.uid ?? (processTask ? owner?.uid : 0);
        const gid = ref.gid ?? (processTask ? owner?.gid : 0);
        chmodSync(file, ref.mode);
        if (uid !== undefined && gid !== undefined) giveAway(file, uid, gid, ref.mode, `service "${spec.name}": ${kind} "${ref.source}" at ${ref.target}`);
        if (!processTask) result.mounts.push({ source: file, target: ref.target, readOnly: true });
      }
      if (processTask) {
        if (owner) chownTree(dir, owner.uid, owner.gid);
        result.env[kind === 'secret' ? 'SHOAL_SECRETS_DIR' : 'SHOAL_CONFIGS_DIR'] = dir;
      }
    }
    return result;
  }

  /** Removes what `write` wrote for an allocation (nothing happens when it wrote nothing). */
  remove(allocId: string): void {
    rmSync(join(this.#dir, allocId), { recursive: true, force: true });
  }

  /** Removes the files of every allocation not in `keep` (at start-up: those of tasks that ended meanwhile). */
  sweep(keep: ReadonlySet<string>): void {
    let names: string[];
    try {
      names = readdirSync(this.#dir);
    } catch {
      return;
    }
    for (const name of names) if (!keep.has(name)) this.remove(name);
  }

  #contents(kind: FileObjectKind, ref: FileRef, job: Job, objects: ObjectSource, service: string): Buffer {
    const declared = (kind === 'secret' ? job.secrets : job.configs)?.find((d) => d.name === ref.source);
    if (!declared) throw new ShoalError('ERR_INVALID_ARGUMENT', `service "${service}" uses ${kind} "${ref.source}", which job "${job.name}" does not declare`);
    const record = objects.object(kind, declared.clusterName);
    if (!record) throw new ShoalError('ERR_NOT_FOUND', `${kind} "${declared.clusterName}" (service "${service}"'s "${ref.source}") is not known on this node yet`);
    return this.#vault.open(record);
  }

  #checkMemoryFs(service: string): void {
    const type = statfsSync(this.#dir).type;
    if (type !== TMPFS_MAGIC && type !== RAMFS_MAGIC) {
      throw new ShoalError('ERR_UNSAFE_SECRETS_DIR', `service "${service}" uses secrets, but ${this.#dir} is not on a memory file system (statfs type 0x${type.toString(16)}): secrets are never written to disk; start the agent with --secrets-dir on a tmpfs`);
    }
  }
}

/**
 * Makes `file` the given owner's. An agent that is not root (the systemd unit's `shoal` user) cannot: the file stays
 * its own, which is enough when the mode lets others read it (a container's default, 0444); otherwise the task could
 * not read it, and it fails to start with the reason.
 */
function giveAway(file: string, uid: number, gid: number, mode: number, what: string): void {
  const me = process.getuid?.() ?? 0;
  if (me === 0) {
    chownSync(file, uid, gid);
    return;
  }
  if (uid === me || (mode & 0o004) !== 0) return;
  throw new ShoalError('ERR_UNSUPPORTED', `${what} is to be owned by uid ${uid} with mode 0${mode.toString(8)}, but this agent runs as uid ${me} and cannot give files away: run the agent as root, or use a mode that others may read`);
}

function chownTree(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) chownTree(join(dir, e.name), uid, gid);
  }
}
