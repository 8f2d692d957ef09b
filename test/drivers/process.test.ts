import t from 'tap';
import { appendFileSync, mkdtempSync, rmSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProcessDriver, resolveUser } from '../../src/drivers/process.js';
import { detectIsolation } from '../../src/drivers/cgroup.js';
import { rotateIfNeeded, readLogs } from '../../src/drivers/logfiles.js';
import type { TaskHandle } from '../../src/drivers/types.js';
import { runDriverCompliance } from './compliance.js';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'shoal-process-driver-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

const iso = await detectIsolation();
t.comment(`process driver isolation here: ${iso.kind} (${iso.note})`);

function killFromOutside(handle: TaskHandle): Promise<void> {
  process.kill(-(handle.state['pid'] as number), 'SIGKILL');
  return Promise.resolve();
}

t.test('compliance', async (t) => {
  runDriverCompliance(t, {
    makeDriver: () => new ProcessDriver({ dataDir }),
    pass: (ms) => sleep(ms),
    killFromOutside,
    oom: iso.kind.startsWith('cgroup') ? true : `memory limits here are ${iso.kind}, which cannot report an OOM kill`,
    missingImage: { skip: 'the process driver runs no images' },
    hostProbes: true,
    idPrefix: `proc-${process.pid}`,
  });
});

t.test('compliance with prlimit-only isolation (no cgroups)', async (t) => {
  runDriverCompliance(t, {
    makeDriver: () => new ProcessDriver({ dataDir, isolation: 'prlimit' }),
    pass: (ms) => sleep(ms),
    killFromOutside,
    oom: 'prlimit makes allocations fail instead of killing the task, so there is no OOM kill to report',
    missingImage: { skip: 'the process driver runs no images' },
    hostProbes: true,
    idPrefix: `prl-${process.pid}`,
  });
});

t.test('fingerprint names the isolation in use', async (t) => {
  const d = new ProcessDriver({ dataDir, isolation: 'none' });
  const fp = await d.fingerprint();
  t.equal(fp.attributes['isolation'], 'none');
  const aFile = path.join(dataDir, 'a-file');
  writeFileSync(aFile, 'not a directory');
  const unusable = new ProcessDriver({ dataDir: path.join(aFile, 'data') });
  const fp2 = await unusable.fingerprint();
  t.equal(fp2.available, false);
  t.match(fp2.reason, /not writable/);
});

t.test('a prlimit address-space limit makes a large allocation fail', { skip: iso.kind === 'none' ? 'no prlimit here' : false }, async (t) => {
  const d = new ProcessDriver({ dataDir, isolation: 'prlimit' });
  t.teardown(() => d.close());
  const h = await d.start({ id: `as-${process.pid}`, name: 'as', command: 'sh', args: ['-c', 'dd if=/dev/zero of=/dev/null bs=256M count=1'], resources: { memoryBytes: 64 * 1024 * 1024 } });
  const exit = await d.wait(h);
  t.equal(exit.failed, true, 'dd cannot allocate its buffer');
  t.equal(exit.oomKilled, false);
  let text = '';
  for await (const c of d.logs(h)) text += c.data.toString();
  t.match(text, /memory|allocate/i);
  await d.destroy(h);
});

t.test('a cgroup CPU quota is written for the task', { skip: iso.kind.startsWith('cgroup') ? false : `no writable cgroups (${iso.kind})` }, async (t) => {
  const d = new ProcessDriver({ dataDir });
  t.teardown(() => d.close());
  const h = await d.start({ id: `cpu-${process.pid}`, name: 'cpu', command: 'sleep', args: ['600'], resources: { cpus: 0.5, memoryBytes: 64 * 1024 * 1024 } });
  const cg = h.state['cgroup'] as { dirs: string[] };
  t.ok(cg.dirs.length >= 1);
  const { readFileSync } = await import('node:fs');
  const files = cg.dirs.flatMap((dir) => readdirSync(dir).filter((f) => /^(cpu\.max|cpu\.cfs_quota_us|memory\.max|memory\.limit_in_bytes)$/.test(f)).map((f) => `${f}=${readFileSync(path.join(dir, f), 'utf8').trim()}`));
  t.ok(files.some((f) => f === 'cpu.max=50000 100000' || f === 'cpu.cfs_quota_us=50000'), files.join(', '));
  t.ok(files.some((f) => f === `memory.max=${64 * 1024 * 1024}` || f === `memory.limit_in_bytes=${64 * 1024 * 1024}`), files.join(', '));
  // The task joins its cgroup in its first instruction (before exec); start() may return just before that.
  const inCgroup = (): boolean => readFileSync(path.join(cg.dirs[0]!, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number).includes(h.state['pid'] as number);
  for (let i = 0; i < 100 && !inCgroup(); i++) await sleep(50);
  t.ok(inCgroup(), 'the task runs inside its cgroup');
  await d.destroy(h);
  for (const dir of cg.dirs) t.throws(() => statSync(dir), 'destroy removed the cgroup');
});

t.test('the stop signal reaches the whole process group', async (t) => {
  const d = new ProcessDriver({ dataDir, isolation: 'none' });
  t.teardown(() => d.close());
  const marker = path.join(dataDir, `grandchild-${process.pid}`);
  const h = await d.start({ id: `grp-${process.pid}`, name: 'grp', command: 'sh', args: ['-c', `sleep 600 & echo $! > ${marker}; wait`] });
  for (let i = 0; i < 100 && !readdirSync(dataDir).includes(path.basename(marker)); i++) await sleep(50);
  await sleep(100);
  const { readFileSync } = await import('node:fs');
  const grandchild = Number(readFileSync(marker, 'utf8').trim());
  t.ok(grandchild > 0);
  await d.stop(h, 'SIGTERM', 5000);
  let alive = true;
  for (let i = 0; i < 100 && alive; i++) {
    try {
      process.kill(grandchild, 0);
      await sleep(50);
    } catch (_e) {
      alive = false;
    }
  }
  t.equal(alive, false, 'the background child died with its group');
  await d.destroy(h);
});

t.test('recover refuses a pid that now belongs to another process', async (t) => {
  const d = new ProcessDriver({ dataDir, isolation: 'none' });
  t.teardown(() => d.close());
  const h = await d.start({ id: `reuse-${process.pid}`, name: 'reuse', command: 'sleep', args: ['600'] });
  // Same pid, different start time: what a reused pid looks like.
  const forged: TaskHandle = { ...h, state: { ...h.state, startTicks: (h.state['startTicks'] as number) - 1 } };
  const fresh = new ProcessDriver({ dataDir, isolation: 'none' });
  t.teardown(() => fresh.close());
  await t.rejects(fresh.recover(forged), { code: 'ERR_TASK_LOST', message: /another process/ });
  await d.destroy(h);
});

t.test('handles from another driver and bad working dirs are refused', async (t) => {
  const d = new ProcessDriver({ dataDir, isolation: 'none' });
  t.teardown(() => d.close());
  await t.rejects(d.start({ id: `wd-${process.pid}`, name: 'wd', command: 'true', workingDir: path.join(dataDir, 'missing-dir') }), { code: 'ERR_TASK_INVALID', message: /workingDir/ });
  await t.rejects(d.inspect({ version: 1, driver: 'docker', taskId: 'x', spec: { id: 'x', name: 'x' }, startedAtMs: 0, state: {} }), { code: 'ERR_TASK_INVALID' });
  await t.rejects(d.start({ id: `nc-${process.pid}`, name: 'nc' }), { code: 'ERR_TASK_INVALID', message: /command/ });
});

t.test('user: a process runs as the user and group named, in its cgroup too; an unknown user is refused', async (t) => {
  const files = { passwd: path.join(dataDir, 'passwd'), group: path.join(dataDir, 'group') };
  writeFileSync(files.passwd, 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  writeFileSync(files.group, 'root:x:0:\nnogroup:x:65534:\nstaff:x:50:\n');
  t.same(await resolveUser('t', 'nobody', files), { uid: 65534, gid: 65534 });
  t.same(await resolveUser('t', 'nobody:staff', files), { uid: 65534, gid: 50 });
  t.same(await resolveUser('t', '1234', files), { uid: 1234, gid: 1234 }, 'a bare uid unknown here: gid = uid');
  t.same(await resolveUser('t', '1234:99', files), { uid: 1234, gid: 99 });
  await t.rejects(resolveUser('t', 'ghost', files), { code: 'ERR_TASK_INVALID', message: /no user "ghost" on this node/ });
  await t.rejects(resolveUser('t', 'nobody:ghosts', files), { message: /no group "ghosts" on this node/ });
  if (process.getuid?.() !== 0) return;
  for (const isolation of ['auto', 'none'] as const) {
    const d = new ProcessDriver({ dataDir, isolation });
    t.teardown(() => d.close());
    const h = await d.start({ id: `user-${isolation}-${process.pid}`, name: 'u', command: 'sh', args: ['-c', 'echo "$(id -u):$(id -g)"'], user: '65534:65534', workingDir: '/', resources: { memoryBytes: 64 * 1024 * 1024 } });
    const exit = await d.wait(h);
    t.equal(exit.exitCode, 0, `${isolation}: exits 0`);
    let out = '';
    for await (const c of d.logs(h)) out += c.data.toString();
    t.equal(out.trim(), '65534:65534', `${isolation}: runs as 65534:65534`);
  }
});

t.test('a named volume is a directory of the node, kept across runs and named in SHOAL_VOLUME_<NAME>; tmpfs is refused', async (t) => {
  const d = new ProcessDriver({ dataDir, isolation: 'none' });
  t.teardown(() => d.close());
  const mounts = [{ type: 'volume' as const, source: 'shop_db-data', target: '/var/lib/db' }];
  const run = async (id: string, script: string): Promise<string> => {
    const h = await d.start({ id, name: 'v', command: 'sh', args: ['-c', script], mounts });
    await d.wait(h);
    let out = '';
    for await (const c of d.logs(h)) out += c.data.toString();
    return out;
  };
  t.equal((await run(`vol1-${process.pid}`, 'echo kept > "$SHOAL_VOLUME_SHOP_DB_DATA/f"; echo "$SHOAL_VOLUME_SHOP_DB_DATA"')).trim(), path.join(dataDir, 'volumes', 'shop_db-data'));
  t.equal((await run(`vol2-${process.pid}`, 'cat "$SHOAL_VOLUME_SHOP_DB_DATA/f"')).trim(), 'kept', 'the next run finds the data');
  await t.rejects(d.start({ id: `tmpfs-${process.pid}`, name: 't', command: 'true', mounts: [{ type: 'tmpfs', source: '', target: '/x' }] }), { code: 'ERR_TASK_INVALID', message: /tmpfs mount is for containers/ });
});

t.test('log files rotate by size and reading spans the rotated files', async (t) => {
  const dir = mkdtempSync(path.join(dataDir, 'rot-'));
  writeFileSync(path.join(dir, 'stdout.log'), 'a1\na2\n');
  await rotateIfNeeded(dir, 4, 3);
  writeFileSync(path.join(dir, 'stdout.log'), 'b1\nb2\n');
  await rotateIfNeeded(dir, 4, 3);
  writeFileSync(path.join(dir, 'stdout.log'), 'c1\n');
  await rotateIfNeeded(dir, 4, 3);
  t.same(readdirSync(dir).sort(), ['stdout.log', 'stdout.log.1', 'stdout.log.2']);
  let all = '';
  for await (const c of readLogs(dir, {}, () => true)) all += c.data.toString();
  t.equal(all, 'a1\na2\nb1\nb2\nc1\n', 'oldest first, across rotations');
  appendFileSync(path.join(dir, 'stdout.log'), 'd1\nd2\n');
  await rotateIfNeeded(dir, 4, 3);
  all = '';
  for await (const c of readLogs(dir, { tail: 2 }, () => true)) all += c.data.toString();
  t.equal(all, 'd1\nd2\n', 'tail counts lines');
  all = '';
  for await (const c of readLogs(dir, {}, () => true)) all += c.data.toString();
  t.equal(all, 'b1\nb2\nc1\nd1\nd2\n', 'the oldest file was dropped at the limit');
});

t.test('cgroup v2 layout, on a stand-in cgroup filesystem (this machine is v1)', async (t) => {
  const { readFileSync, mkdirSync } = await import('node:fs');
  const fake = mkdtempSync(path.join(dataDir, 'cgroup2-'));
  writeFileSync(path.join(fake, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
  writeFileSync(path.join(fake, 'cgroup.subtree_control'), '');
  const d = new ProcessDriver({ dataDir, cgroupFs: fake });
  t.teardown(() => d.close());
  t.equal((await d.fingerprint()).attributes['isolation'], 'cgroup v2');
  t.equal(readFileSync(path.join(fake, 'shoal', 'cgroup.subtree_control'), 'utf8'), '+memory +cpu +pids', 'controllers delegated to the shoal parent');
  const id = `v2-${process.pid}`;
  const h = await d.start({ id, name: 'v2', command: 'sh', args: ['-c', 'sleep 0.5'], resources: { cpus: 1.5, memoryBytes: 32 * 1024 * 1024 } });
  const dir = path.join(fake, 'shoal', id);
  t.equal(readFileSync(path.join(dir, 'memory.max'), 'utf8'), String(32 * 1024 * 1024));
  t.equal(readFileSync(path.join(dir, 'memory.swap.max'), 'utf8'), '0');
  t.equal(readFileSync(path.join(dir, 'cpu.max'), 'utf8'), '150000 100000');
  // What the kernel would write when it OOM-kills something in the group.
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
  const exit = await d.wait(h);
  t.equal(exit.oomKilled, true, 'oom_kill in memory.events is reported');
  t.equal(readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim(), String(h.state['pid']), 'the task wrote itself into cgroup.procs before exec');
  await d.destroy(h);
});

t.test('find() re-adopts a task whose handle never reached the agent (it died during start)', async (t) => {
  const first = new ProcessDriver({ dataDir, isolation: 'none' });
  const id = `find-${process.pid}`;
  const started = await first.start({ id, name: 'find', command: 'sleep', args: ['600'] });
  await first.close();
  // A new driver instance is a restarted agent that only knows the allocation id.
  const again = new ProcessDriver({ dataDir, isolation: 'none' });
  t.teardown(() => again.close());
  t.equal(await again.find(`nope-${process.pid}`), undefined, 'nothing for an id it never started');
  const found = await again.find(id);
  t.ok(found, 'the task is found by its id');
  t.equal(found!.state['pid'], started.state['pid'], 'the same process');
  await again.recover(found!);
  t.equal((await again.inspect(found!)).state, 'running');
  await again.stop(found!, 'SIGKILL', 0);
  await again.destroy(found!);
  t.equal(await again.find(id), undefined, 'destroyed tasks are not found');
});

t.test('ulimits through prlimit and a pids limit through the cgroup; refused where the node cannot enforce them', async (t) => {
  const output = async (d: ProcessDriver, h: TaskHandle): Promise<string> => {
    let out = '';
    for await (const c of d.logs(h)) out += c.data.toString();
    return out;
  };
  for (const isolation of ['auto', 'prlimit'] as const) {
    const d = new ProcessDriver({ dataDir, isolation });
    t.teardown(() => d.close());
    const h = await d.start({
      id: `ulimit-${isolation}-${process.pid}`, name: 'u', command: 'sh', args: ['-c', 'echo "$(ulimit -Sn) $(ulimit -Hn) $(ulimit -Sc)"'], workingDir: '/',
      ulimits: [{ name: 'nofile', soft: 64, hard: 128 }, { name: 'core', soft: -1, hard: -1 }],
    });
    t.equal((await d.wait(h)).exitCode, 0);
    t.equal((await output(d, h)).trim(), '64 128 unlimited', `${isolation}: the task runs with its ulimits`);
  }
  const auto = await detectIsolation();
  const pids = (auto.kind === 'cgroup v2' && auto.v2Pids) || (auto.kind === 'cgroup v1' && auto.v1PidsRoot !== undefined);
  if (pids) {
    const d = new ProcessDriver({ dataDir });
    t.teardown(() => d.close());
    // 20 sleeps in the background under a limit of 8 processes: the shell cannot fork them all (and dash gives up).
    const script = 'for i in $(seq 20); do sleep 3 & done; echo all-started; kill $(jobs -p)';
    const logs = async (h: TaskHandle): Promise<{ out: string; err: string }> => {
      let out = '';
      let err = '';
      for await (const c of d.logs(h)) if (c.stream === 'stdout') out += c.data.toString(); else err += c.data.toString();
      return { out, err };
    };
    const limited = await d.start({ id: `pids-${process.pid}`, name: 'p', command: 'sh', args: ['-c', script], workingDir: '/', pidsLimit: 8 });
    await d.wait(limited);
    const l = await logs(limited);
    t.notMatch(l.out, /all-started/, 'under pids: 8 the twenty children do not all start');
    t.match(l.err, /Cannot fork|Resource temporarily unavailable/, 'fork fails');
    const free = await d.start({ id: `nopids-${process.pid}`, name: 'p', command: 'sh', args: ['-c', script], workingDir: '/' });
    await d.wait(free);
    t.match((await logs(free)).out, /all-started/, 'without the limit they do');
  } else t.comment(`no pids controller here (${auto.kind}): the refusal below is what such a node does`);
  const none = new ProcessDriver({ dataDir, isolation: 'none' });
  t.teardown(() => none.close());
  await t.rejects(none.start({ id: `nopids-${process.pid}`, name: 'n', command: 'true', pidsLimit: 8 }), { code: 'ERR_TASK_INVALID', message: /pidsLimit: a pids limit needs the cgroup pids controller/ });
  await t.rejects(none.start({ id: `noulimit-${process.pid}`, name: 'n', command: 'true', ulimits: [{ name: 'nofile', soft: 1, hard: 1 }] }), { code: 'ERR_TASK_INVALID', message: /ulimits: ulimits are set with prlimit/ });
});
