/**
 * Resource limits for the process driver. Which mechanism is used is decided once per driver, by what this
 * kernel offers and lets us write:
 *   cgroup v2  /sys/fs/cgroup/shoal/<task>/{memory.max, cpu.max}        (unified hierarchy, controllers delegated)
 *   cgroup v1  /sys/fs/cgroup/memory/shoal/<task>/memory.limit_in_bytes and /sys/fs/cgroup/cpu/shoal/<task>/cpu.cfs_*
 *   prlimit    `prlimit --as=<bytes>` (address-space limit only; CPU is not limited, and programs that reserve large
 *              virtual ranges, like Node or the JVM, may fail to start under a tight limit)
 *   none       nothing enforced (no cgroup access and no prlimit binary)
 * A task joins its cgroup before exec: it is spawned through `sh -c 'echo $$ > cgroup.procs; exec "$@"'`, so not
 * even its first allocation escapes the limit.
 *
 * A pids limit (`deploy.resources.limits.pids`) takes the pids controller (cgroup v2, or the v1 pids hierarchy);
 * `ulimits` are set by prlimit (util-linux) between joining the cgroup and exec, whatever the isolation. A task that
 * asks for either on a node that cannot enforce it fails to start, with the reason, rather than run unlimited.
 */
import { promises as fs, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import type { TaskResources } from './types.js';

export type IsolationKind = 'cgroup v2' | 'cgroup v1' | 'prlimit' | 'none';

export interface Isolation {
  readonly kind: IsolationKind;
  /** cgroup v2: the shoal parent; v1: per-controller shoal parents; prlimit: the binary. */
  readonly v2Root?: string;
  readonly v1MemoryRoot?: string;
  readonly v1CpuRoot?: string;
  readonly prlimitPath?: string;
  /** The pids controller is enabled in the v2 root (pids.max can be written); v1: the pids hierarchy's shoal parent. */
  readonly v2Pids?: boolean;
  readonly v1PidsRoot?: string;
  /** Why a better mechanism was not used (shown by fingerprint). */
  readonly note: string;
}

/** What a task's cgroup consists of; stored in the handle so a recovered task still has it. */
export interface TaskCgroup {
  readonly version: 1 | 2;
  /** Directories created for the task (removed by destroy). */
  readonly dirs: string[];
  /** The directory whose memory files are read (usage, OOM kills). */
  readonly memoryDir: string;
}

const CFS_PERIOD_US = 100_000;

async function writable(file: string): Promise<boolean> {
  try {
    await fs.access(file, fsConstants.W_OK);
    return true;
  } catch (_e) {
    return false;
  }
}

async function mkdirp(dir: string): Promise<boolean> {
  try {
    await fs.mkdir(dir, { recursive: true });
    return true;
  } catch (_e) {
    return false;
  }
}

async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      await fs.access(candidate, fsConstants.X_OK);
      return candidate;
    } catch (_e) {
      continue;
    }
  }
  return undefined;
}

/** Picks the best mechanism available; `prefer` forces a weaker one (tests, or operators who manage cgroups). */
export async function detectIsolation(prefer: 'auto' | 'prlimit' | 'none' = 'auto', cgroupFs = '/sys/fs/cgroup'): Promise<Isolation> {
  const notes: string[] = [];
  // prlimit sets ulimits under any isolation, and is the memory limit of last resort.
  const prlimit = prefer === 'none' ? undefined : await findOnPath('prlimit');
  const withPrlimit = prlimit ? { prlimitPath: prlimit } : {};
  if (prefer === 'auto') {
    try {
      const controllers = (await fs.readFile(path.join(cgroupFs, 'cgroup.controllers'), 'utf8')).split(/\s+/);
      if (controllers.includes('memory') && controllers.includes('cpu')) {
        const root = path.join(cgroupFs, 'shoal');
        // Controllers must be enabled in every ancestor's subtree_control for the task's files to exist; pids if it
        // can be, without it if not.
        const enable = async (dir: string): Promise<'with pids' | 'without' | 'no'> => {
          const file = path.join(dir, 'cgroup.subtree_control');
          if (controllers.includes('pids') && (await fs.writeFile(file, '+memory +cpu +pids').then(() => true, () => false))) return 'with pids';
          return (await fs.writeFile(file, '+memory +cpu').then(() => true, () => false)) ? 'without' : 'no';
        };
        await enable(cgroupFs);
        const enabled = (await mkdirp(root)) ? await enable(root) : 'no';
        if (enabled !== 'no') {
          const pids = enabled === 'with pids';
          return { kind: 'cgroup v2', v2Root: root, v2Pids: pids, ...withPrlimit, note: `cgroup v2 at ${root}${pids ? '' : ' (no pids controller: pids limits refused)'}` };
        }
        notes.push(`cgroup v2 found at ${cgroupFs} but controllers could not be delegated to ${root}`);
      } else {
        notes.push(`cgroup v2 at ${cgroupFs} lacks the memory or cpu controller`);
      }
    } catch (_e) {
      const memory = path.join(cgroupFs, 'memory');
      const cpu = path.join(cgroupFs, 'cpu');
      if ((await writable(memory)) && (await writable(cpu))) {
        const memoryRoot = path.join(memory, 'shoal');
        const cpuRoot = path.join(cpu, 'shoal');
        if ((await mkdirp(memoryRoot)) && (await mkdirp(cpuRoot))) {
          const pidsRoot = path.join(cgroupFs, 'pids', 'shoal');
          const pids = (await writable(path.join(cgroupFs, 'pids'))) && (await mkdirp(pidsRoot));
          return {
            kind: 'cgroup v1', v1MemoryRoot: memoryRoot, v1CpuRoot: cpuRoot, ...(pids ? { v1PidsRoot: pidsRoot } : {}), ...withPrlimit,
            note: `cgroup v1 at ${memoryRoot} and ${cpuRoot}${pids ? ` and ${pidsRoot}` : ' (no writable pids hierarchy: pids limits refused)'}`,
          };
        }
      }
      notes.push(`no writable cgroup v2 (${cgroupFs}/cgroup.controllers) or v1 memory+cpu hierarchy`);
    }
  }
  if (prefer !== 'none') {
    if (prlimit) return { kind: 'prlimit', prlimitPath: prlimit, note: [...notes, 'memory as an address-space rlimit via prlimit; CPU and pids not limited'].join('; ') };
    notes.push('no prlimit binary (util-linux)');
  }
  return { kind: 'none', note: [...notes, 'no limits enforced'].join('; ') };
}

/** Why this isolation cannot enforce a pids limit or ulimits, or undefined when it can (or none is asked for). */
export function unenforceable(iso: Isolation, pidsLimit: number | undefined, ulimits: readonly { name: string }[] | undefined): string | undefined {
  if (pidsLimit !== undefined && !(iso.kind === 'cgroup v2' && iso.v2Pids) && !(iso.kind === 'cgroup v1' && iso.v1PidsRoot)) {
    return `a pids limit needs the cgroup pids controller, and this node has none Shoal can write (${iso.kind}: ${iso.note})`;
  }
  if ((ulimits?.length ?? 0) > 0 && !iso.prlimitPath) return `ulimits are set with prlimit (util-linux), which this node lacks (${iso.note})`;
  return undefined;
}

/** Creates the task's cgroup(s) with its limits. Undefined when the isolation is not a cgroup. */
export async function createTaskCgroup(iso: Isolation, taskId: string, resources: TaskResources | undefined, pidsLimit?: number): Promise<TaskCgroup | undefined> {
  if (iso.kind === 'cgroup v2' && iso.v2Root) {
    const dir = path.join(iso.v2Root, taskId);
    await fs.mkdir(dir, { recursive: true });
    if (resources?.memoryBytes !== undefined) {
      await fs.writeFile(path.join(dir, 'memory.max'), String(resources.memoryBytes));
      // Without this the kernel would swap instead of killing, and the limit would only slow the task down.
      await fs.writeFile(path.join(dir, 'memory.swap.max'), '0').catch(() => undefined);
    }
    if (resources?.cpus !== undefined) {
      await fs.writeFile(path.join(dir, 'cpu.max'), `${Math.max(1000, Math.round(resources.cpus * CFS_PERIOD_US))} ${CFS_PERIOD_US}`);
    }
    if (pidsLimit !== undefined) await fs.writeFile(path.join(dir, 'pids.max'), String(pidsLimit));
    return { version: 2, dirs: [dir], memoryDir: dir };
  }
  if (iso.kind === 'cgroup v1' && iso.v1MemoryRoot && iso.v1CpuRoot) {
    const memDir = path.join(iso.v1MemoryRoot, taskId);
    await fs.mkdir(memDir, { recursive: true });
    const dirs = [memDir];
    if (resources?.memoryBytes !== undefined) {
      await fs.writeFile(path.join(memDir, 'memory.limit_in_bytes'), String(resources.memoryBytes));
      await fs.writeFile(path.join(memDir, 'memory.memsw.limit_in_bytes'), String(resources.memoryBytes)).catch(() => undefined);
    }
    if (resources?.cpus !== undefined) {
      const cpuDir = path.join(iso.v1CpuRoot, taskId);
      await fs.mkdir(cpuDir, { recursive: true });
      await fs.writeFile(path.join(cpuDir, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      await fs.writeFile(path.join(cpuDir, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(resources.cpus * CFS_PERIOD_US))));
      dirs.push(cpuDir);
    }
    if (pidsLimit !== undefined && iso.v1PidsRoot) {
      const pidsDir = path.join(iso.v1PidsRoot, taskId);
      await fs.mkdir(pidsDir, { recursive: true });
      await fs.writeFile(path.join(pidsDir, 'pids.max'), String(pidsLimit));
      dirs.push(pidsDir);
    }
    return { version: 1, dirs, memoryDir: memDir };
  }
  return undefined;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** prlimit's option for one ulimit (Compose's names are prlimit's), -1 meaning unlimited. */
function ulimitArg(u: { name: string; soft: number; hard: number }): string {
  const v = (n: number): string => (n < 0 ? 'unlimited' : String(n));
  return `--${u.name}=${v(u.soft)}:${v(u.hard)}`;
}

/**
 * argv that joins the cgroup (or applies prlimit) and then execs the task's own argv. `ulimits` go through prlimit
 * (`unenforceable` says first whether there is one).
 */
export function wrapArgv(
  iso: Isolation, cg: TaskCgroup | undefined, resources: TaskResources | undefined, argv: readonly string[], ids?: { uid: number; gid: number },
  ulimits: readonly { name: string; soft: number; hard: number }[] = [],
): string[] {
  const limits = ulimits.map(ulimitArg);
  if (cg) {
    const procs = cg.dirs.map((d) => shellQuote(path.join(d, 'cgroup.procs'))).join(' ');
    // Joining the cgroup takes root: the task's own user (if it has one) is taken after, by setpriv (util-linux);
    // ulimits before that, as raising a hard limit takes root too.
    const prl = limits.length > 0 && iso.prlimitPath ? `${[iso.prlimitPath, ...limits].map(shellQuote).join(' ')} -- ` : '';
    const drop = ids ? `setpriv --reuid=${ids.uid} --regid=${ids.gid} --clear-groups -- ` : '';
    return ['/bin/sh', '-c', `for f in ${procs}; do echo $$ > "$f" || exit 125; done; exec ${prl}${drop}"$@"`, 'shoal-task', ...argv];
  }
  if (iso.kind === 'prlimit' && iso.prlimitPath && resources?.memoryBytes !== undefined) limits.unshift(`--as=${resources.memoryBytes}`);
  if (limits.length > 0 && iso.prlimitPath) return [iso.prlimitPath, ...limits, '--', ...argv];
  return [...argv];
}

async function readCounter(file: string, key: string): Promise<number> {
  try {
    const text = await fs.readFile(file, 'utf8');
    const line = text.split('\n').find((l) => l.startsWith(`${key} `));
    return line ? Number(line.split(' ')[1]) : 0;
  } catch (_e) {
    return 0;
  }
}

/** Number of OOM kills in the task's cgroup (kernel 4.13+ for v1). */
export function oomKills(cg: TaskCgroup): Promise<number> {
  return cg.version === 2 ? readCounter(path.join(cg.memoryDir, 'memory.events'), 'oom_kill') : readCounter(path.join(cg.memoryDir, 'memory.oom_control'), 'oom_kill');
}

export async function memoryUsageBytes(cg: TaskCgroup): Promise<number | undefined> {
  try {
    return Number((await fs.readFile(path.join(cg.memoryDir, cg.version === 2 ? 'memory.current' : 'memory.usage_in_bytes'), 'utf8')).trim());
  } catch (_e) {
    return undefined;
  }
}

/** Pids still in the task's cgroup: also those that left its process group (setsid), which a group kill misses. */
export async function cgroupPids(cg: TaskCgroup): Promise<number[]> {
  const pids = new Set<number>();
  for (const dir of cg.dirs) {
    try {
      for (const p of (await fs.readFile(path.join(dir, 'cgroup.procs'), 'utf8')).split('\n')) if (p.trim() !== '') pids.add(Number(p));
    } catch (_e) {
      continue;
    }
  }
  return [...pids];
}

/** Removes the task's cgroup directories (only possible once they hold no process). */
export async function removeTaskCgroup(cg: TaskCgroup): Promise<void> {
  for (const dir of cg.dirs) await fs.rmdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
}
