// Start-to-running latency of Shoal's task drivers against their peers, measured in the same run:
//   docker driver (start() resolves once the container runs)  vs  `docker -H unix://... run -d` through the CLI
//   process driver (start() resolves once the process runs)    vs  bare child_process.spawn (until 'spawn')
// Starts are interleaved (driver, peer, driver, peer...) so drift on a shared machine hits both alike.
// Needs root, dockerd and busybox-static (it starts its own private dockerd, as the tests do). Run `npm run build` first.
// Usage: node scripts/bench/drivers/start-latency.mjs [starts=20]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, symlinkSync, openSync, closeSync, rmSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { DockerDriver, ProcessDriver } from '../../../dist/drivers/index.js';
import { median, pidAlive } from '../lib/harness.mjs';

const N = Number(process.argv[2] ?? 20);
const IMAGE = 'shoal-bench/busybox:1';
const fmt = (ms) => `${ms.toFixed(1)} ms`;

async function startDockerd() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-dockerd-'));
  const socketPath = path.join(dir, 'docker.sock');
  const log = openSync(path.join(dir, 'dockerd.log'), 'a');
  const child = spawn('dockerd', ['--host', `unix://${socketPath}`, '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'exec'),
    '--pidfile', path.join(dir, 'dockerd.pid'), '--bridge=none', '--iptables=false'], { stdio: ['ignore', log, log], detached: true });
  closeSync(log);
  child.unref();
  const docker = new Docker({ socketPath });
  let up = false;
  for (let i = 0; i < 300 && !up && pidAlive(child.pid); i++) {
    up = await docker.ping().then(() => true, () => false);
    if (!up) await sleep(100);
  }
  const stop = async () => {
    if (pidAlive(child.pid)) process.kill(child.pid, 'SIGTERM');
    for (let i = 0; i < 200 && pidAlive(child.pid); i++) await sleep(100);
    if (pidAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(`${dir}/`));
    for (const m of mounts.sort().reverse()) spawnSync('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  };
  if (!up) {
    await stop();
    throw new Error('dockerd did not come up');
  }
  const root = path.join(dir, 'image-root');
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  copyFileSync(busybox, path.join(root, 'bin', 'busybox'));
  for (const a of ['sh', 'sleep']) symlinkSync('busybox', path.join(root, 'bin', a));
  const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [repo, tag] = IMAGE.split(':');
  const stream = await docker.importImage(tar.stdout, { repo, tag });
  await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  return { socketPath, docker, stop };
}

function cli(args) {
  return new Promise((resolve, reject) => {
    const p = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`docker ${args.join(' ')}: ${err.trim()}`))));
  });
}

async function benchDocker() {
  const engine = await startDockerd();
  try {
    const driver = new DockerDriver({ socketPath: engine.socketPath });
    const host = `unix://${engine.socketPath}`;
    // Warm both paths once (first container start pays for overlay setup).
    const warm = await driver.start({ id: 'warm', name: 'warm', image: IMAGE, command: 'sleep', args: ['600'], stopGraceMs: 0 });
    await driver.destroy(warm);
    await cli(['-H', host, 'rm', '-f', (await cli(['-H', host, 'run', '-d', '--network', 'none', IMAGE, 'sleep', '600']))]);
    const ours = [];
    const theirs = [];
    for (let i = 0; i < N; i++) {
      let t0 = performance.now();
      const h = await driver.start({ id: `bench-${i}`, name: 'bench', image: IMAGE, command: 'sleep', args: ['600'], stopGraceMs: 0 });
      ours.push(performance.now() - t0);
      t0 = performance.now();
      const id = await cli(['-H', host, 'run', '-d', '--network', 'none', '--name', `cli-${i}`, IMAGE, 'sleep', '600']);
      theirs.push(performance.now() - t0);
      await driver.destroy(h);
      await cli(['-H', host, 'rm', '-f', id]);
    }
    await driver.close();
    return { ours: median(ours), theirs: median(theirs) };
  } finally {
    await engine.stop();
  }
}

async function benchProcess(isolation, n) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-proc-'));
  const driver = new ProcessDriver({ dataDir, isolation });
  const iso = (await driver.isolation()).kind;
  const ours = [];
  const theirs = [];
  try {
    for (let i = 0; i < n; i++) {
      let t0 = performance.now();
      const h = await driver.start({ id: `bench-${i}`, name: 'bench', command: 'sleep', args: ['600'], stopGraceMs: 0, resources: { memoryBytes: 256 * 1024 * 1024 } });
      ours.push(performance.now() - t0);
      t0 = performance.now();
      const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
      await new Promise((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      theirs.push(performance.now() - t0);
      await driver.destroy(h);
      child.kill('SIGKILL');
    }
  } finally {
    await driver.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { iso, ours: median(ours), theirs: median(theirs) };
}

const rows = [];
const dockerAvailable = process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v dockerd && command -v docker']).status === 0;
if (dockerAvailable) {
  const d = await benchDocker();
  rows.push(['docker driver start()', d.ours, '`docker run -d` (CLI)', d.theirs]);
} else {
  console.log('docker: skipped (needs root, dockerd and the docker CLI)');
}
for (const isolation of ['auto', 'none']) {
  // Process starts are cheap and noisy: take more of them.
  const p = await benchProcess(isolation, N * 3);
  rows.push([`process driver start() [${p.iso}, 256 MiB limit] (n=${N * 3})`, p.ours, 'child_process.spawn', p.theirs]);
}
console.log(`start-to-running latency, medians of interleaved starts (docker n=${N}) (${os.cpus().length} cores, ${os.release()})`);
for (const [a, ours, b, theirs] of rows) {
  console.log(`  ${a.padEnd(50)} ${fmt(ours).padStart(10)}   vs ${b.padEnd(24)} ${fmt(theirs).padStart(10)}   ratio ${(ours / theirs).toFixed(2)}x`);
}
