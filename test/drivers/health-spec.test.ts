import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { HealthTracker, httpProbe, tcpProbe } from '../../src/drivers/health.js';
import { stopParameters, validateTaskSpec } from '../../src/drivers/spec.js';
import { LIMITS } from '../../src/lib/limits.js';
import type { HealthCheckSpec, TaskSpec } from '../../src/drivers/types.js';

const hc: HealthCheckSpec = { test: { kind: 'cmd-shell', command: 'true' }, intervalMs: 100, timeoutMs: 100, retries: 3, startPeriodMs: 1000 };

t.test('health: failures inside the start period do not count until the first success', async (t) => {
  const h = new HealthTracker(hc, 0);
  t.equal(h.report().status, 'starting');
  for (let at = 100; at < 1000; at += 100) h.record(false, at, 'down');
  t.same(h.report(), { status: 'starting', failingStreak: 0, lastOutput: 'down' });
  h.record(false, 1000, 'down');
  h.record(false, 1100, 'down');
  t.equal(h.report().status, 'starting', 'two failures after the start period: not yet');
  h.record(false, 1200, 'down');
  t.same(h.report(), { status: 'unhealthy', failingStreak: 3, lastOutput: 'down' });
  h.record(true, 1300, 'up');
  t.same(h.report(), { status: 'healthy', failingStreak: 0, lastOutput: 'up' });
});

t.test('health: once healthy, failures count even inside the start period', async (t) => {
  const h = new HealthTracker(hc, 0);
  h.record(true, 100, 'up');
  for (const at of [200, 300, 400]) h.record(false, at, 'x'.repeat(LIMITS.driverHealthMaxOutputBytes + 10));
  t.equal(h.report().status, 'unhealthy');
  t.ok(h.report().lastOutput.length <= LIMITS.driverHealthMaxOutputBytes + 1, 'probe output is cut');
});

t.test('http and tcp probes against loopback', async (t) => {
  let status = 200;
  const server = http.createServer((_req, res) => {
    res.statusCode = status;
    res.end('x');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const port = (server.address() as AddressInfo).port;
  t.match(await httpProbe(port, '/health')(2000), { ok: true, output: /200/ });
  status = 503;
  t.match(await httpProbe(port, '/health')(2000), { ok: false, output: /503/ });
  t.match(await tcpProbe(port)(2000), { ok: true });
  // A listener that never answers HTTP: the probe gives up at its timeout.
  const held = new Set<net.Socket>();
  const silent = net.createServer((socket) => held.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of held) socket.destroy();
    silent.close(() => resolve());
  }));
  const silentPort = (silent.address() as AddressInfo).port;
  const r = await httpProbe(silentPort)(200);
  t.match(r, { ok: false, output: /no answer within 200 ms/ });
});

t.test('spec validation names the field', async (t) => {
  const base: TaskSpec = { id: 'a1', name: 'a', command: 'true' };
  t.doesNotThrow(() => validateTaskSpec(base, { command: true }));
  const bad: [Partial<TaskSpec>, RegExp][] = [
    [{ name: '' }, /name/],
    [{ env: { 'BAD-NAME': 'x' } }, /env\.BAD-NAME/],
    [{ resources: { cpus: 0 } }, /resources\.cpus/],
    [{ resources: { memoryBytes: 1024 } }, /resources\.memoryBytes/],
    [{ ports: [{ port: 70000 }] }, /ports\[0\]\.port/],
    [{ ports: [{ port: 80 }], networkMode: 'none' }, /network mode "none"/],
    [{ mounts: [{ source: 'rel', target: '/x' }] }, /mounts\[0\]\.source/],
    [{ stopGraceMs: LIMITS.driverMaxStopGraceMs + 1 }, /stopGraceMs/],
    [{ healthcheck: { ...hc, intervalMs: 1 } }, /healthcheck\.intervalMs/],
    [{ healthcheck: { ...hc, retries: 0 } }, /healthcheck\.retries/],
    [{ healthcheck: { ...hc, test: { kind: 'tcp', port: 0 } } }, /healthcheck\.test\.port/],
    [{ networkMode: 'overlay' as never }, /networkMode/],
    [{ networkMode: 'bridge' }, /networks: a task on bridges needs at least one network/],
    [{ networks: ['n1'] }, /networks: only a task in network mode "bridge" joins networks/],
    [{ networkMode: 'bridge', networks: ['n1'], addresses: { n2: '10.0.0.2' } }, /addresses\.n2: names a network the task is not on/],
    [{ networkMode: 'bridge', networks: ['n1'], addresses: { n1: 'fd00::2' } }, /addresses\.n1: must be an IPv4 address/],
    [{ dns: ['resolver.local'] }, /dns\[0\]: must be an IP address/],
    [{ ports: [{ port: 80, target: 0 }] }, /ports\[0\]\.target/],
    [{ ports: [{ port: 80, hostIp: 'localhost' }] }, /ports\[0\]\.hostIp/],
  ];
  for (const [patch, message] of bad) {
    t.throws(() => validateTaskSpec({ ...base, ...patch }), { code: 'ERR_TASK_INVALID', message }, String(message));
  }
  t.throws(() => validateTaskSpec({ ...base, command: undefined }, { command: true }), { message: /command/ });
  t.throws(() => validateTaskSpec(base, { image: true }), { message: /image/ });
  t.same(stopParameters(base), { signal: 'SIGTERM', graceMs: LIMITS.driverDefaultStopGraceMs });
  t.same(stopParameters({ ...base, stopSignal: 'SIGINT', stopGraceMs: 5 }), { signal: 'SIGINT', graceMs: 5 });
  t.same(stopParameters(base, 'SIGQUIT', 7), { signal: 'SIGQUIT', graceMs: 7 });
  t.throws(() => stopParameters(base, 'NOPE'), { code: 'ERR_TASK_INVALID' });
});
