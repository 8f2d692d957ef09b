/**
 * A private Docker engine for tests, started as /work/shared/ENVIRONMENT.md shows: its own socket, data-root,
 * exec-root and pidfile under a temp dir on the local disk, no bridge, no iptables. It is stopped by its pid
 * (SIGTERM, then SIGKILL) and its directory removed, also when the test fails.
 *
 * When it cannot run here (not root, no dockerd or busybox binary, or it does not come up), the caller gets
 * `{ skip: reason }` and must mark its docker cases skipped, never passed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';

export const TEST_IMAGE = 'shoal-test/busybox:1';

export interface PrivateDockerd {
  readonly socketPath: string;
  readonly dir: string;
  readonly pid: number;
  readonly docker: Docker;
  stop(): Promise<void>;
}

export function onPath(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (_e) {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone (or 5 s after the SIGKILL). */
export async function stopPid(pid: number, graceMs = 20_000): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; waited < graceMs && alive(pid); waited += 100) await sleep(100);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
}

/** dockerd leaves a bind mount of its network namespace (exec/netns/default) behind; unmount what is under dir. */
function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined && m.startsWith(`${dir}/`));
  for (const m of mounts.sort().reverse()) spawnSync('umount', ['-l', m]);
}

/** Imports a static busybox (with every applet linked) as TEST_IMAGE. */
export async function importBusybox(docker: Docker, dir: string, busybox: string): Promise<void> {
  const root = path.join(dir, 'image-root');
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  mkdirSync(path.join(root, 'tmp'), { recursive: true });
  copyFileSync(busybox, path.join(root, 'bin', 'busybox'));
  const list = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter((a) => a !== '' && a !== 'busybox');
  for (const applet of list) symlinkSync('busybox', path.join(root, 'bin', applet));
  const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [repo, tag] = TEST_IMAGE.split(':') as [string, string];
  const stream = await docker.importImage(tar.stdout, { repo, tag });
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err: unknown) => (err ? reject(err) : resolve())));
}

export async function startPrivateDockerd(): Promise<PrivateDockerd | { skip: string }> {
  if (process.getuid?.() !== 0) return { skip: 'dockerd needs root, and this test runs as another user' };
  const dockerd = onPath('dockerd');
  if (!dockerd) return { skip: 'no dockerd binary (apt-get install docker.io)' };
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) return { skip: 'no static busybox to build the test image from (apt-get install busybox-static)' };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shoal-dockerd-'));
  const socketPath = path.join(dir, 'docker.sock');
  const logPath = path.join(dir, 'dockerd.log');
  const log = openSync(logPath, 'a');
  const child = spawn(dockerd, [
    '--host', `unix://${socketPath}`, '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'exec'),
    '--pidfile', path.join(dir, 'dockerd.pid'), '--bridge=none', '--iptables=false',
  ], { stdio: ['ignore', log, log], detached: true });
  closeSync(log);
  const pid = child.pid!;
  child.unref();
  const docker = new Docker({ socketPath });
  const stop = async (): Promise<void> => {
    await stopPid(pid);
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  };
  const reason = (what: string): string => `${what}; dockerd log tail: ${readFileSync(logPath, 'utf8').split('\n').slice(-5).join(' | ')}`;
  let up = false;
  for (let i = 0; i < 300 && !up && alive(pid); i++) {
    up = await docker.ping().then(() => true, () => false);
    if (!up) await sleep(100);
  }
  if (!up) {
    const why = reason(alive(pid) ? 'dockerd did not answer within 30 s' : 'dockerd exited at start');
    await stop();
    return { skip: why };
  }
  try {
    await importBusybox(docker, dir, busybox);
  } catch (err) {
    const why = reason(`importing the busybox image failed: ${String(err)}`);
    await stop();
    return { skip: why };
  }
  return { socketPath, dir, pid, docker, stop };
}
