import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { networkInterfaces } from 'node:os';
import { isAllowedHost, guardViolations, clearGuardViolations } from '../../src/testing/netguard.js'; // shares the state of the guard preloaded from dist

const guardUrl = new URL('../../dist/testing/netguard.js', import.meta.url).href;

t.test('the guard is active in this test process', async (t) => {
  t.match(process.env['NODE_OPTIONS'] ?? '', /--import=.*netguard\.js/, 'children inherit it through NODE_OPTIONS');
});

t.test('which targets are allowed', async (t) => {
  for (const ok of ['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1', 'localhost', '[::1]']) t.ok(isAllowedHost(ok), ok);
  for (const own of Object.values(networkInterfaces()).flatMap((l) => l ?? []).map((a) => a.address)) t.ok(isAllowedHost(own), `own interface address ${own}`);
  for (const bad of ['192.0.2.1', '10.0.0.1', '8.8.8.8', '2001:db8::1', 'example.com', 'node1.hyperdht.org']) t.notOk(isAllowedHost(bad), bad);
  process.env['SHOAL_NETGUARD_ALLOW'] = '10.77.0.0/24, fd00::/8';
  t.ok(isAllowedHost('10.77.0.9'));
  t.notOk(isAllowedHost('10.77.1.9'));
  t.ok(isAllowedHost('fd00::5'));
  delete process.env['SHOAL_NETGUARD_ALLOW'];
  t.notOk(isAllowedHost('10.77.0.9'));
});

t.test('refused in-process: TCP, UDP and DNS to the outside throw before sending', async (t) => {
  // These calls are refused synchronously by the guard; no socket reaches the kernel with an outside address.
  t.throws(() => net.connect(9, '192.0.2.1'), { code: 'ERR_NETWORK_GUARD' });
  const u = dgram.createSocket('udp4');
  t.throws(() => u.send(Buffer.from('x'), 9, '192.0.2.1'), { code: 'ERR_NETWORK_GUARD' });
  u.close();
  t.throws(() => dns.lookup('example.com', () => {}), { code: 'ERR_NETWORK_GUARD' });
  await t.rejects(Promise.resolve().then(() => dns.promises.resolve4('example.com')), { code: 'ERR_NETWORK_GUARD' });
  t.equal(guardViolations().length, 4);
  clearGuardViolations();
});

t.test('loopback still works under the guard', async (t) => {
  const server = net.createServer((s) => s.end('hi'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const got = await new Promise<string>((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    let data = '';
    c.on('data', (d) => (data += d));
    c.on('end', () => resolve(data));
    c.on('error', reject);
  });
  t.equal(got, 'hi');
  server.close();
  t.same(guardViolations(), []);
});

t.test('a child process that reaches out fails even when it swallows the error', async (t) => {
  // Run inside a fresh, empty network namespace when we can (root): then nothing could leave even if the guard broke.
  const script = `
    const net = require('node:net');
    try { net.connect(9, '192.0.2.1').on('error', () => {}); } catch (e) { console.log('caught ' + e.code); }
    try { require('node:dns').lookup('public.example', () => {}); } catch (e) { console.log('caught ' + e.code); }
  `;
  const unshare = spawnSync('unshare', ['--net', 'true']);
  const useNs = unshare.status === 0;
  const cmd = useNs ? 'unshare' : process.execPath;
  const args = useNs ? ['--net', process.execPath, `--import=${guardUrl}`, '-e', script] : [`--import=${guardUrl}`, '-e', script];
  const res = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  t.match(res.stdout, /caught ERR_NETWORK_GUARD\ncaught ERR_NETWORK_GUARD/);
  t.match(res.stderr, /network guard: 2 refused attempt\(s\) in this process; failing it/);
  t.equal(res.status, 1, 'the process exits non-zero');
  t.comment(useNs ? 'ran inside an empty network namespace' : 'unshare unavailable: ran in the test namespace (the guard refused before any send)');
});

t.test('hyperdht with bootstrap left undefined is stopped at the guard', async (t) => {
  // hyperdht falls back to the public bootstrap hosts, by name: the guard refuses the lookup.
  const script = `
    const DHT = require('hyperdht');
    process.on('uncaughtException', (e) => { console.log('uncaught ' + (e.code || e.message)); });
    const dht = new DHT();
    dht.ready().then(() => console.log('ready'), (e) => console.log('failed ' + (e.code || e.message))).finally(() => dht.destroy());
  `;
  const unshare = spawnSync('unshare', ['--net', 'true']);
  const useNs = unshare.status === 0;
  const cwd = fileURLToPath(new URL('../..', import.meta.url));
  const args = [`--import=${guardUrl}`, '-e', script];
  const res = useNs
    ? spawnSync('unshare', ['--net', process.execPath, ...args], { encoding: 'utf8', cwd, env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 })
    : spawnSync(process.execPath, args, { encoding: 'utf8', cwd, env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 });
  t.match(res.stderr, /network guard: refused (DNS lookup|UDX send)/, 'the public bootstrap attempt was refused');
  t.not(res.status, 0, 'and the process failed');
});
