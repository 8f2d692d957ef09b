/**
 * The installed service on a real systemd: three Debian 12 containers booted with `systemd-nspawn -b` on a private
 * bridge (shoalbr0, 10.77.240.0/24), each provisioned with scripts/install.sh exactly as the Vagrantfile does.
 * Checks: the unit becomes active (only READY=1 makes a Type=notify unit active), the three agents form one
 * cluster, `systemctl stop` makes the others see LEFT, `systemctl kill -s KILL` is restarted by systemd and the
 * agent rejoins, re-running the installer upgrades in place, and uninstall.sh keeps or purges the data.
 *
 * The root file system is debootstrapped once (about 30 s, needs Debian's mirror) and cached in
 * /var/cache/shoal-test-rootfs/bookworm; each container runs on an overlay of it, so the cache stays clean.
 * The host's Node (/usr/bin/node) and the project tree (read-only, at /src/shoal) are bind-mounted in.
 * Needs root, debootstrap and systemd-nspawn (package systemd-container), nsenter and ip; otherwise skipped.
 */
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const CACHE = process.env['SHOAL_TEST_ROOTFS'] ?? '/var/cache/shoal-test-rootfs/bookworm';
const MIRROR = process.env['SHOAL_DEBIAN_MIRROR'] ?? 'http://deb.debian.org/debian';
const BRIDGE = 'shoalbr0';
const SUBNET = '10.77.240';
const NODES = 3;
const PEER_PORT = 7647;
const NODE_BIN = '/usr/bin/node';
const CONTAINER_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (systemd-nspawn, overlay mounts, a bridge)';
  for (const cmd of ['debootstrap', 'systemd-nspawn', 'nsenter', 'ip', 'mount']) {
    if (!has(cmd)) return `${cmd} is not installed (packages: debootstrap systemd-container util-linux iproute2)`;
  }
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return 'the kernel has no overlay file system';
  if (!existsSync(NODE_BIN)) return `${NODE_BIN} is missing: the containers borrow the host's Node from there`;
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) return 'the project is not built (npm run build)';
  return false;
}

/**
 * Runs a command, resolving with its output; rejects with stdout+stderr in the message. The child gets a process
 * group of its own (detached), so that nothing it runs can signal this test's group by accident.
 */
function exec(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} could not run: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code ?? signal}${signal === 'SIGKILL' ? `, after ${timeoutMs} ms?` : ''}):\n${stdout}\n${stderr}`));
    });
  });
}

function runSync(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns true; fails with `describe()` after `timeoutMs`. */
async function waitFor(what: string, check: () => Promise<boolean>, describe: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(500);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${describe()}`);
}

/** The cached minimal Debian, debootstrapped on first use. Built under a temporary name, renamed when complete. */
async function rootfs(t: Test): Promise<string> {
  if (existsSync(join(CACHE, '.shoal-rootfs-complete'))) return CACHE;
  const tmp = `${CACHE}.tmp-${process.pid}`;
  mkdirSync(join(CACHE, '..'), { recursive: true });
  rmSync(tmp, { recursive: true, force: true });
  t.comment(`debootstrapping a minimal bookworm into ${CACHE} (cached for later runs)`);
  try {
    await exec('debootstrap', ['--variant=minbase', '--include=systemd,systemd-sysv,dbus,iproute2,procps', 'bookworm', tmp, MIRROR], 600_000);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  writeFileSync(join(tmp, '.shoal-rootfs-complete'), `${new Date().toISOString()} ${MIRROR}\n`);
  rmSync(CACHE, { recursive: true, force: true });
  renameSync(tmp, CACHE);
  return CACHE;
}

interface Container {
  index: number;
  name: string;
  ip: string;
  dir: string;
  root: string;
  nspawn: ChildProcess | null;
  /** The container's PID 1 (systemd), in the host's pid namespace. */
  init: number;
  log: string;
  /** Units that failed during boot, when systemd reported "degraded". */
  degraded?: string;
}

/** Everything this test set up, torn down in reverse, also from a process 'exit' handler (synchronously). */
class Testbed {
  containers: Container[] = [];
  bridge = false;
  nspawnTmpfs = false;
  workDir: string | null = null;
  #done = false;

  /** Synchronous, idempotent: powers containers off (SIGTERM to nspawn), then kills what is left, unmounts. */
  destroySync(graceMs: number): void {
    if (this.#done) return;
    this.#done = true;
    for (const c of this.containers) if (c.nspawn && c.nspawn.exitCode === null && c.nspawn.signalCode === null) c.nspawn.kill('SIGTERM');
    const deadline = Date.now() + graceMs;
    for (const c of this.containers) {
      while (c.nspawn && isAlive(c.nspawn.pid) && Date.now() < deadline) spawnSync('sleep', ['0.2']);
      // PID 1 of a pid namespace takes every process of the container with it.
      if (c.init > 0 && isAlive(c.init)) process.kill(c.init, 'SIGKILL');
      if (c.nspawn && isAlive(c.nspawn.pid)) c.nspawn.kill('SIGKILL');
    }
    for (const c of this.containers) {
      for (let i = 0; i < 20 && runSync('mountpoint', ['-q', c.root]).status === 0; i++) {
        if (runSync('umount', [c.root]).status !== 0) spawnSync('sleep', ['0.25']);
      }
      if (runSync('mountpoint', ['-q', c.root]).status === 0) runSync('umount', ['-l', c.root]);
    }
    if (this.bridge) runSync('ip', ['link', 'del', BRIDGE]);
    if (this.nspawnTmpfs) runSync('umount', ['/run/systemd/nspawn']);
    if (this.workDir) rmSync(this.workDir, { recursive: true, force: true });
  }
}

function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (_err) {
    return false;
  }
}

/** Runs argv inside the container (all its namespaces), with a clean environment as a login would have. */
function inside(c: Container, argv: string[], timeoutMs = 60_000): Promise<string> {
  return exec('nsenter', ['-t', String(c.init), '-a', 'env', '-i', CONTAINER_PATH, 'HOME=/root', 'LANG=C.UTF-8', ...argv], timeoutMs);
}

async function boot(lower: string, c: Container): Promise<void> {
  mkdirSync(join(c.dir, 'upper'), { recursive: true });
  mkdirSync(join(c.dir, 'work'), { recursive: true });
  mkdirSync(c.root, { recursive: true });
  await exec('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${join(c.dir, 'upper')},workdir=${join(c.dir, 'work')}`, c.root]);
  writeFileSync(join(c.root, 'etc/hostname'), `${c.name}\n`);
  const out = openSync(c.log, 'w');
  c.nspawn = spawn('systemd-nspawn', ['-D', c.root, `--machine=${c.name}`, '--register=no', '--keep-unit', `--network-bridge=${BRIDGE}`,
    `--bind-ro=${NODE_BIN}`, `--bind-ro=${ROOT}:/src/shoal`, '--console=passive', '-b'], { stdio: ['ignore', out, out] });
  closeSync(out);
  const nspawnPid = c.nspawn.pid!;
  // nspawn's child, once the container is set up, is the container's systemd.
  await waitFor(`${c.name}: the container's init`, async () => {
    const children = readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    for (const p of children) if (readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'systemd') c.init = Number(p);
    return c.init > 0;
  }, () => readFileSync(c.log, 'utf8').slice(-2000), 60_000);
  // Exits 1 for "degraded" (some unit failed, e.g. one a container cannot run), which is still a booted system.
  const state = await inside(c, ['systemctl', 'is-system-running', '--wait'], 120_000).catch((err: Error) => err.message);
  if (!/\b(running|degraded)\b/.test(state)) throw new Error(`${c.name} did not boot: ${state}\n${readFileSync(c.log, 'utf8').slice(-3000)}`);
  if (/\bdegraded\b/.test(state)) c.degraded = await inside(c, ['systemctl', '--failed', '--no-legend', '--plain']).catch((err: Error) => err.message);
  // The veth's container end (host0) gets the container's own address; the bridge has none on the host side.
  await exec('nsenter', ['-t', String(c.init), '-n', 'ip', 'addr', 'add', `${c.ip}/24`, 'dev', 'host0']);
  await exec('nsenter', ['-t', String(c.init), '-n', 'ip', 'link', 'set', 'host0', 'up']);
}

/** The Vagrantfile's provisioning command, with the container's name and address. */
function installArgs(c: Container, first: Container): string[] {
  return ['/src/shoal/scripts/install.sh', '--source', '/src/shoal', '--name', c.name, '--bind', `${c.ip}:${PEER_PORT}`,
    ...(c === first ? [] : ['--join', `${first.ip}:${PEER_PORT}`]),
    '--cluster-key-file', '/root/shoal-cluster.key', '--bootstrap-expect', '3', '--labels', 'vagrant=true'];
}

async function members(c: Container): Promise<Record<string, string>> {
  const list = JSON.parse(await inside(c, ['shoal', 'members', '-o', 'json'], 20_000)) as { name: string; status: string }[];
  return Object.fromEntries(list.map((m) => [m.name, m.status.replace(/^MEMBER_STATUS_/, '')]));
}

async function unitProps(c: Container, ...props: string[]): Promise<Record<string, string>> {
  const out = await inside(c, ['systemctl', 'show', ...props.map((p) => `--property=${p}`), 'shoal.service']);
  return Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

const skip = skipReason();

t.test('three booted Debian containers run the installed service as one cluster', { skip, timeout: 540_000 }, async (t) => {
  const bed = new Testbed();
  const onExit = (): void => bed.destroySync(0);
  process.once('exit', onExit);
  let lastSeen = '';
  t.teardown(async () => {
    if (!t.passing()) {
      t.comment(`last view: ${lastSeen}`);
      for (const c of bed.containers) {
        if (c.init > 0 && isAlive(c.init)) t.comment(`--- ${c.name}: journalctl -u shoal ---\n${await inside(c, ['journalctl', '-u', 'shoal', '--no-pager', '-n', '60']).catch((e: Error) => e.message)}`);
        if (existsSync(c.log)) t.comment(`--- ${c.name}: nspawn output ---\n${readFileSync(c.log, 'utf8').slice(-1500)}`);
      }
    }
    bed.destroySync(30_000);
    process.removeListener('exit', onExit);
  });

  const lower = await rootfs(t);

  // A bridge left by a crashed run would make `ip link add` fail.
  runSync('ip', ['link', 'del', BRIDGE]);
  await exec('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  bed.bridge = true;
  await exec('ip', ['link', 'set', BRIDGE, 'up']);
  mkdirSync('/run/systemd/nspawn', { recursive: true });
  if (runSync('mountpoint', ['-q', '/run/systemd/nspawn']).status !== 0) {
    await exec('mount', ['-t', 'tmpfs', 'tmpfs', '/run/systemd/nspawn']);
    bed.nspawnTmpfs = true;
  }
  bed.workDir = mkdtempSync(join(tmpdir(), 'shoal-boot-'));
  const key = `${randomBytes(32).toString('hex')}\n`;
  for (let i = 1; i <= NODES; i++) {
    const dir = join(bed.workDir, `node${i}`);
    bed.containers.push({ index: i, name: `node${i}`, ip: `${SUBNET}.${10 + i}`, dir, root: join(dir, 'root'), nspawn: null, init: 0, log: join(bed.workDir, `node${i}.log`) });
  }
  await Promise.all(bed.containers.map((c) => boot(lower, c)));
  const [n1, n2, n3] = bed.containers as [Container, Container, Container];
  t.pass('three containers booted, systemd running in each');
  for (const c of bed.containers) if (c.degraded) t.comment(`${c.name} booted degraded; failed units: ${c.degraded.trim()}`);

  // --- Install on each, as `vagrant up` provisions: the first node starts the cluster, the others join it. ---
  for (const c of bed.containers) {
    // The provisioner writes the shared key to a root-only file first.
    writeFileSync(join(c.root, 'root/shoal-cluster.key'), key, { mode: 0o600 });
    await inside(c, installArgs(c, n1), 180_000);
    t.equal((await inside(c, ['systemctl', 'is-active', 'shoal']).catch((e: Error) => e.message)).trim(), 'active', `${c.name}: systemctl is-active shoal`);
  }
  const props = await unitProps(n1, 'Type', 'User', 'StatusText', 'NRestarts');
  t.equal(props['User'], 'shoal');
  t.match(props['StatusText'], /^member node1 .* running$/, 'STATUS= from the agent reached systemd (sd_notify works)');
  t.equal(await inside(n1, ['stat', '-c', '%U:%G %a', '/var/lib/shoal']).then((s) => s.trim()), 'shoal:shoal 750', 'StateDirectory');
  t.equal(await inside(n1, ['stat', '-c', '%U:%G %a', '/etc/shoal/cluster.key']).then((s) => s.trim()), 'root:shoal 640', 'the key: readable by the agent only');

  const allSee = (expected: Record<string, string>, ...viewers: Container[]) => async (): Promise<boolean> => {
    for (const v of viewers) {
      const seen = await members(v);
      lastSeen = `${v.name} sees ${JSON.stringify(seen)}`;
      for (const [name, status] of Object.entries(expected)) if (seen[name] !== status) return false;
    }
    return true;
  };
  const view = (): string => lastSeen;

  await waitFor('one cluster of three', allSee({ node1: 'ALIVE', node2: 'ALIVE', node3: 'ALIVE' }, n1, n2, n3), view, 90_000);
  t.pass('`shoal members -o json` on every node shows node1, node2 and node3 alive');

  // --- systemctl stop: the agent leaves gracefully. ---
  await inside(n3, ['systemctl', 'stop', 'shoal'], 60_000);
  const stopped = await unitProps(n3, 'ActiveState', 'Result', 'ExecMainStatus');
  t.same(stopped, { ActiveState: 'inactive', Result: 'success', ExecMainStatus: '0' }, 'node3 stopped cleanly (exit 0 within TimeoutStopSec)');
  await waitFor('node3 marked LEFT', allSee({ node3: 'LEFT' }, n1, n2), view, 60_000);
  t.pass('after `systemctl stop shoal` on node3, node1 and node2 mark it LEFT');

  await inside(n3, ['systemctl', 'start', 'shoal'], 120_000);
  await waitFor('node3 back after a start', allSee({ node1: 'ALIVE', node2: 'ALIVE', node3: 'ALIVE' }, n1, n3), view, 90_000);
  t.pass('started again, node3 rejoins');

  // --- SIGKILL: systemd restarts the agent (Restart=on-failure) and it rejoins. ---
  const before = await unitProps(n2, 'MainPID', 'NRestarts');
  // systemd 252 in a container on this hybrid (cgroup v1) host kills the main process, then walks the cgroup's
  // tasks, which include the dying process's own threads ("Sending signal SIGKILL to process 686 (node)"), and
  // sometimes reports "Failed to send signal SIGKILL to auxiliary processes: Input/output error" from that race.
  // What matters is checked below: systemd started a new main process.
  await inside(n2, ['systemctl', 'kill', '-s', 'KILL', 'shoal']).catch((err: Error) => {
    if (!/auxiliary processes/.test(err.message)) throw err;
    t.comment(`systemctl kill reported: ${err.message.trim().split('\n').pop()}`);
  });
  await waitFor('systemd to restart node2\'s agent', async () => {
    const p = await unitProps(n2, 'MainPID', 'NRestarts', 'ActiveState');
    lastSeen = `node2 unit: ${JSON.stringify(p)}`;
    return p['ActiveState'] === 'active' && Number(p['NRestarts']) > Number(before['NRestarts']) && p['MainPID'] !== before['MainPID'] && p['MainPID'] !== '0';
  }, view, 60_000);
  t.pass('`systemctl kill -s KILL shoal`: systemd restarted the agent (new MainPID, NRestarts went up)');
  await waitFor('node2 rejoined', allSee({ node1: 'ALIVE', node2: 'ALIVE', node3: 'ALIVE' }, n2, n1), view, 90_000);
  t.pass('the restarted agent rejoined: node2 sees everyone alive and node1 sees node2 alive');

  // --- Re-running the installer upgrades in place and keeps the identity. ---
  const id = (await inside(n1, ['shoal', 'members', '-o', 'json']).then((s) => (JSON.parse(s) as { name: string; id: string }[]).find((m) => m.name === 'node1')?.id));
  const config = await inside(n1, ['cat', '/etc/shoal/agent.yaml']);
  await inside(n1, installArgs(n1, n1), 180_000);
  t.equal(await inside(n1, ['cat', '/etc/shoal/agent.yaml']), config, 're-running with the same flags writes the same config');
  t.equal((await inside(n1, ['systemctl', 'is-active', 'shoal'])).trim(), 'active');
  await waitFor('node1 back after the upgrade', allSee({ node1: 'ALIVE', node2: 'ALIVE', node3: 'ALIVE' }, n1), view, 90_000);
  const idAfter = (await inside(n1, ['shoal', 'members', '-o', 'json']).then((s) => (JSON.parse(s) as { name: string; id: string }[]).find((m) => m.name === 'node1')?.id));
  t.equal(idAfter, id, 'same node id after the upgrade (identity kept in /var/lib/shoal)');

  // --- uninstall.sh keeps data and config; --purge removes them. ---
  await inside(n3, ['/src/shoal/scripts/uninstall.sh'], 120_000);
  await waitFor('node3 marked LEFT after uninstall', allSee({ node3: 'LEFT' }, n1), view, 60_000);
  t.equal(runSync('test', ['-e', join(n3.root, 'opt/shoal')]).status, 1, '/opt/shoal removed');
  t.equal(runSync('test', ['-e', join(n3.root, 'etc/systemd/system/shoal.service')]).status, 1, 'unit removed');
  t.ok(existsSync(join(n3.root, 'var/lib/shoal')) && existsSync(join(n3.root, 'etc/shoal/agent.yaml')), 'data and config kept');
  await inside(n3, ['/src/shoal/scripts/uninstall.sh', '--purge'], 120_000);
  t.notOk(existsSync(join(n3.root, 'var/lib/shoal')) || existsSync(join(n3.root, 'etc/shoal')), '--purge removes data and config');
  t.equal(await inside(n3, ['getent', 'passwd', 'shoal']).then(() => 'present', () => 'gone'), 'gone', '--purge removes the user');
});
