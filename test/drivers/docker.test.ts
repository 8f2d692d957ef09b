import t, { type Test } from 'tap';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import { DockerDriver, Demuxer, containerName } from '../../src/drivers/docker.js';
import type { TaskHandle } from '../../src/drivers/types.js';
import { startPrivateDockerd, TEST_IMAGE } from '../helpers/docker.js';
import { runDriverCompliance } from './compliance.js';

t.test('demuxing the engine log stream across chunk boundaries', async (t) => {
  const frame = (type: number, text: string): Buffer => {
    const body = Buffer.from(text);
    const head = Buffer.alloc(8);
    head[0] = type;
    head.writeUInt32BE(body.length, 4);
    return Buffer.concat([head, body]);
  };
  const all = Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n'), frame(1, 'more\n')]);
  const d = new Demuxer();
  const got = [...d.push(all.subarray(0, 5)), ...d.push(all.subarray(5, 15)), ...d.push(all.subarray(15))];
  t.same(got.map((c) => [c.stream, c.data.toString()]), [['stdout', 'out\n'], ['stderr', 'err\n'], ['stdout', 'more\n']]);
});

t.test('fingerprint reports unavailable, with the reason, when no engine answers', async (t) => {
  const d = new DockerDriver({ socketPath: '/tmp/shoal-no-such-docker.sock' });
  const fp = await d.fingerprint();
  t.equal(fp.available, false);
  t.match(fp.reason, /shoal-no-such-docker\.sock/);
  await t.rejects(d.start({ id: 'nodocker', name: 'x', image: TEST_IMAGE, command: 'true' }), { code: 'ERR_DRIVER_UNAVAILABLE', recoverable: true });
});

const engine = await startPrivateDockerd();
const skip = 'skip' in engine ? engine.skip : false;
if (skip) t.comment(`docker cases skipped: ${skip}`);
t.teardown(async () => {
  if (!('skip' in engine)) await engine.stop();
});

/** A registry on loopback that knows no image: the engine asks it and is told "manifest unknown". */
async function emptyRegistry(t: Test): Promise<string> {
  const server = http.createServer((req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Docker-Distribution-Api-Version', 'registry/2.0');
    if (req.url === '/v2/' || req.url === '/v2') {
      res.end('{}');
      return;
    }
    res.statusCode = 404;
    res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: {} }] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('docker compliance (private dockerd)', { skip }, async (t) => {
  if ('skip' in engine) return;
  const registry = await emptyRegistry(t);
  runDriverCompliance(t, {
    makeDriver: () => new DockerDriver({ socketPath: engine.socketPath }),
    baseSpec: { image: TEST_IMAGE, networkMode: 'host' },
    pass: (ms) => sleep(ms),
    killFromOutside: async (h: TaskHandle) => {
      await engine.docker.getContainer(h.state['containerId'] as string).kill({ signal: 'SIGKILL' });
    },
    oom: true,
    missingImage: `${registry}/shoal-test/missing:1`,
    hostProbes: true,
    idPrefix: `dk-${process.pid}`,
  });
});

t.test('containers are named and labelled for recovery; limits, env, binds reach the engine', { skip }, async (t) => {
  if ('skip' in engine) return;
  const d = new DockerDriver({ socketPath: engine.socketPath });
  t.teardown(() => d.close());
  const id = `lbl-${process.pid}`;
  const h = await d.start({
    id, name: 'web', image: TEST_IMAGE, command: 'sh', args: ['-c', 'echo "$GREETING" > /data/out; sleep 600'],
    env: { GREETING: 'hello' }, resources: { cpus: 0.5, memoryBytes: 64 * 1024 * 1024 },
    mounts: [{ source: engine.dir, target: '/data' }], labels: { team: 'a' }, stopSignal: 'SIGINT', stopGraceMs: 1500,
  });
  t.teardown(() => d.destroy(h));
  const info = await engine.docker.getContainer(containerName(id)).inspect();
  t.equal(info.Name, `/shoal-${id}`);
  t.match(info.Config.Labels, { 'shoal.alloc': id, 'shoal.managed': 'true', team: 'a' });
  t.equal(info.HostConfig.NanoCpus, 500_000_000);
  t.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
  t.equal(info.HostConfig.NetworkMode, 'none');
  t.equal((info.Config as { StopSignal?: string }).StopSignal, 'SIGINT');
  t.ok(info.Config.Env.includes('GREETING=hello'));
  const managed = await d.listManaged();
  t.ok(managed.some((m) => m.taskId === id), 'listed as managed');
  const { readFileSync, existsSync } = await import('node:fs');
  const out = `${engine.dir}/out`;
  for (let i = 0; i < 100 && !existsSync(out); i++) await sleep(50);
  t.equal(readFileSync(out, 'utf8'), 'hello\n', 'env and the bind mount reached the container');
  await d.destroy(h);
  const gone = await engine.docker.getContainer(containerName(id)).inspect().then(() => 0, (e: { statusCode?: number }) => e.statusCode);
  t.equal(gone, 404, 'destroy removed the container');
});

t.test('a service\'s options reach the engine: user, capabilities, sysctls, ulimits, init, host name, hosts, resolver, pids', { skip }, async (t) => {
  if ('skip' in engine) return;
  const d = new DockerDriver({ socketPath: engine.socketPath });
  t.teardown(() => d.close());
  const id = `opt-${process.pid}`;
  const h = await d.start({
    id, name: 'opt', image: TEST_IMAGE, command: 'sh', args: ['-c', 'id -u > /data/uid; hostname > /data/host; cat /etc/hosts > /data/hosts; ulimit -n > /data/nofile; sleep 600'],
    mounts: [{ source: engine.dir, target: '/data' }], networkMode: 'host',
    user: '0:0', capAdd: ['NET_ADMIN'], capDrop: ['MKNOD'], ulimits: [{ name: 'nofile', soft: 1234, hard: 2048 }], init: true,
    hostname: 'opt-1', extraHosts: ['db.local:10.0.0.5'], dnsSearch: ['example.org'], dnsOptions: ['ndots:2'], pidsLimit: 64, runtime: 'runc',
  });
  t.teardown(() => d.destroy(h));
  const info = await engine.docker.getContainer(containerName(id)).inspect();
  const hc = info.HostConfig as Record<string, unknown>;
  t.equal(info.Config.User, '0:0');
  t.same([hc['CapAdd'], hc['CapDrop'], hc['Init'], hc['PidsLimit']], [['NET_ADMIN'], ['MKNOD'], true, 64]);
  t.same(hc['Ulimits'], [{ Name: 'nofile', Soft: 1234, Hard: 2048 }]);
  t.same([hc['ExtraHosts'], hc['DnsSearch'], hc['DnsOptions'], hc['Runtime']], [['db.local:10.0.0.5'], ['example.org'], ['ndots:2'], 'runc']);
  const { readFileSync, existsSync } = await import('node:fs');
  for (let i = 0; i < 100 && !existsSync(`${engine.dir}/nofile`); i++) await sleep(50);
  t.equal(readFileSync(`${engine.dir}/nofile`, 'utf8').trim(), '1234', 'the ulimit holds inside');
  t.match(readFileSync(`${engine.dir}/hosts`, 'utf8'), /10\.0\.0\.5\s+db\.local/, 'the extra host is in /etc/hosts');
  await t.rejects(d.start({ id: `bad-${process.pid}`, name: 'bad', image: TEST_IMAGE, capAdd: ['net admin'] }), { code: 'ERR_TASK_INVALID', message: /capAdd\[0\]/ });
  await t.rejects(d.start({ id: `bad2-${process.pid}`, name: 'bad', image: TEST_IMAGE, hostname: 'no_underscores' }), { code: 'ERR_TASK_INVALID', message: /hostname/ });
});

t.test('named volumes outlive their containers; tmpfs mounts and a read-only root file system', { skip }, async (t) => {
  if ('skip' in engine) return;
  const d = new DockerDriver({ socketPath: engine.socketPath });
  t.teardown(() => d.close());
  const volume = `shoal-test-vol-${process.pid}`;
  t.teardown(() => engine.docker.getVolume(volume).remove().catch(() => undefined));
  const mounts = [{ type: 'volume' as const, source: volume, target: '/data' }, { type: 'tmpfs' as const, source: '', target: '/scratch' }];
  const run = async (id: string, script: string): Promise<string> => {
    const h = await d.start({ id, name: 'vol', image: TEST_IMAGE, command: 'sh', args: ['-c', script], mounts, readOnlyRootfs: true, networkMode: 'none' });
    await d.wait(h);
    let out = '';
    for await (const c of d.logs(h)) out += c.data.toString();
    await d.destroy(h);
    return out;
  };
  const first = await run(`vol1-${process.pid}`, 'echo kept > /data/file && echo tmp > /scratch/x && cat /scratch/x; touch /root-file 2>/dev/null || echo read-only');
  t.match(first, /tmp\nread-only/, 'tmpfs is writable; the root file system is not');
  t.equal((await run(`vol2-${process.pid}`, 'cat /data/file; ls /scratch | wc -l')).trim().split('\n').join(' '), 'kept 0', 'the volume\'s data is still there for the next container; the tmpfs is new');
  const info = await engine.docker.getVolume(volume).inspect();
  t.equal(info.Driver, 'local');
});

t.test('a leftover stopped container of the same allocation is replaced', { skip }, async (t) => {
  if ('skip' in engine) return;
  const d = new DockerDriver({ socketPath: engine.socketPath });
  t.teardown(() => d.close());
  const spec = { id: `left-${process.pid}`, name: 'x', image: TEST_IMAGE, command: 'sh', args: ['-c', 'exit 0'] };
  const first = await d.start(spec);
  await d.wait(first);
  const second = await d.start(spec);
  t.not(second.state['containerId'], first.state['containerId']);
  await d.wait(second);
  await d.destroy(second);
});

t.test('pull errors: unknown image is permanent, unreachable registry is recoverable; never-pull is clear', { skip }, async (t) => {
  if ('skip' in engine) return;
  const d = new DockerDriver({ socketPath: engine.socketPath });
  t.teardown(() => d.close());
  const progress: string[] = [];
  await t.rejects(d.start({ id: `unr-${process.pid}`, name: 'x', image: '127.0.0.1:9/shoal/none:1', command: 'true' }, { onPullProgress: (p) => progress.push(p.status) }), { code: 'ERR_IMAGE_PULL', recoverable: true, message: /127\.0\.0\.1:9\/shoal\/none:1/ });
  const never = new DockerDriver({ socketPath: engine.socketPath, pull: 'never' });
  await t.rejects(never.start({ id: `nev-${process.pid}`, name: 'x', image: 'shoal-test/absent:1', command: 'true' }), { code: 'ERR_IMAGE_NOT_FOUND', recoverable: false, message: /shoal-test\/absent:1.*does not pull/ });
  await t.rejects(d.start({ id: `noimg-${process.pid}`, name: 'x', command: 'true' }), { code: 'ERR_TASK_INVALID', message: /image/ });
});

t.test('find() rebuilds the handle of a container whose start an agent crash interrupted', { skip }, async (t) => {
  if ('skip' in engine) return;
  const first = new DockerDriver({ socketPath: engine.socketPath });
  const spec = { id: `find-${process.pid}`, name: 'x', image: TEST_IMAGE, command: 'sleep', args: ['600'], networkMode: 'host' as const };
  const started = await first.start(spec);
  await first.close();
  const again = new DockerDriver({ socketPath: engine.socketPath });
  t.teardown(() => again.close());
  t.equal(await again.find(`nope-${process.pid}`), undefined, 'nothing for an id it never started');
  const found = await again.find(spec.id);
  t.ok(found, 'found by the allocation id');
  t.equal(found!.state['containerId'], started.state['containerId'], 'the same container');
  t.same(found!.spec, started.spec, 'with the spec it was started with');
  await again.recover(found!);
  t.equal((await again.inspect(found!)).state, 'running');
  await again.destroy(found!);
  t.equal(await again.find(spec.id), undefined, 'gone after destroy');
});
