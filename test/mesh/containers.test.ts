/**
 * Containers on Shoal's networks, end to end: three hosts (network namespaces), each with its own dockerd and a
 * real agent (test/helpers/netns-docker.ts). A docker service without `network_mode` runs on a bridge of its node
 * per Shoal network; inside the container, `web` (and `web.<job>`, `web.<job>.shoal`) resolves, through the agent
 * answering DNS on the bridge's gateway, to a virtual address on that bridge, where the agent forwards each
 * connection to a `web` task on whichever node runs it.
 *
 *   1. network_mode: host keeps the old behaviour (and shows the harness works): a container reaches another
 *      host's container by address, and through SHOAL_SERVICE_<NAME>, a listener of its own agent.
 *   2. `client` on h2 fetches http://web:8080/ by name from `web` on another host; SHOAL_SERVICE_WEB works too.
 *   3. With `networks: { front, back }`, a service on `front` only gets no address for `web` (on `back`), has no
 *      SHOAL_SERVICE_WEB, and cannot connect even at the address `back`'s containers use.
 *   4. The host of the only `web` is killed (agent SIGKILLed, its containers force-removed): once the scheduler has
 *      placed `web` on the other eligible host, new connections from `client` succeed again, and none hung.
 *
 * One cluster for all cases; every wait polls. Run: npx tap test/mesh/containers.test.ts
 */
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { waitFor } from '../helpers/agents.js';
import {
  DEFAULT_BRIDGE_POOL, dockerClusterUnavailable, dockerExec, startDockerCluster, TEST_IMAGE, type DockerCluster, type DockerHost,
} from '../helpers/netns-docker.js';

const skip = dockerClusterUnavailable() ?? false;

/** An HTTP server on `port` whose page names its container (busybox httpd, PID 1). */
const httpd = (port: number, tag: string): string[] =>
  ['sh', '-c', `mkdir -p /tmp/www && echo "${tag} $$HOSTNAME" > /tmp/www/index.html && exec httpd -f -p ${port} -h /tmp/www`];
const idle = ['sleep', '3600'];
const pin = (node: string): Record<string, unknown> => ({ replicas: 1, placement: { constraints: [`node.name == ${node}`] } });
/** web may run on h1 or h3, never beside the clients on h2: every connection crosses hosts, and it can move. */
const notOnClientHost = { replicas: 1, placement: { constraints: ['node.name != h2'] } };

interface Alloc {
  id?: string | null;
  service?: string | null;
  nodeName?: string | null;
  clientStatus?: string | null;
  desiredStatus?: string | null;
}

async function runningAllocs(via: DockerHost, job: string): Promise<Alloc[]> {
  const res = await via.client.allocations.list({ job });
  return (res.allocations ?? []).filter((a: Alloc) => a.clientStatus === 'running' && a.desiredStatus === 'run');
}

/** The container of a running allocation, and the host it runs on. */
async function containerOf(c: DockerCluster, a: Alloc): Promise<{ host: DockerHost; id: string }> {
  const host = c.hosts.find((h) => h.name === a.nodeName);
  if (!host) throw new Error(`allocation ${a.id} runs on unknown node ${a.nodeName}`);
  const list = await host.docker.listContainers({ filters: { label: [`shoal.alloc=${a.id}`] } });
  if (!list[0]) throw new Error(`no container labelled shoal.alloc=${a.id} on ${host.name}`);
  return { host, id: list[0].Id };
}

async function containerOfService(c: DockerCluster, job: string, service: string): Promise<{ host: DockerHost; id: string; alloc: Alloc }> {
  const a = (await runningAllocs(c.hosts[1]!, job)).find((x) => x.service === service);
  if (!a) throw new Error(`${job}/${service} has no running allocation`);
  return { ...(await containerOf(c, a)), alloc: a };
}

/** `sh -c script` in a container; null code when it did not end within timeoutMs. */
function sh(where: { host: DockerHost; id: string }, script: string, timeoutMs = 10_000) {
  return dockerExec(where.host.docker, where.id, ['sh', '-c', script], timeoutMs);
}

function envOf(env: string[] | undefined): Record<string, string> {
  return Object.fromEntries((env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

/** The addresses busybox's nslookup printed for the name (not the server's own "Address: ip:53" line). */
function nslookupAddresses(out: string): string[] {
  const after = out.split(/^Name:/m).slice(1).join('\n');
  return [...after.matchAll(/^Address:\s*([0-9.]+)\s*$/gm)].map((m) => m[1]!);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/') as [string, string];
  const n = (s: string): number => s.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(bits));
  return Math.floor(n(ip) / size) === Math.floor(n(base) / size);
}

/**
 * Registers a job (`job run --detach`) and waits until each of its services has a running allocation. Polled here
 * rather than by `job run`'s own progress loop, which gives up on the first read that finds no leader (a leader
 * change under load, while a dozen containers start on two CPUs, is not what this test is about).
 */
async function runJob(t: Test, c: DockerCluster, name: string, spec: { services: Record<string, unknown> } & Record<string, unknown>): Promise<void> {
  const file = join(c.dir, `${name}.yaml`);
  writeFileSync(file, stringify({ name, ...spec }));
  let run = await c.hosts[1]!.cli(['job', 'run', '--detach', file], { timeoutMs: 30_000 });
  for (let i = 0; i < 3 && run.status !== 0; i++) {
    t.comment(`job run ${name} failed, again: ${run.stderr.trim()}`);
    await sleep(1_000);
    run = await c.hosts[1]!.cli(['job', 'run', '--detach', file], { timeoutMs: 30_000 });
  }
  t.equal(run.status, 0, `job run ${name}: exit 0\n${run.stdout}\n${run.stderr}`);
  const services = Object.keys(spec.services);
  let last = '';
  await waitFor(`every service of ${name} runs`, async () => {
    const running = await runningAllocs(c.hosts[1]!, name);
    last = running.map((a) => `${a.service}@${a.nodeName}`).join(', ');
    return services.every((s) => running.some((a) => a.service === s));
  }, 60_000).catch((err: unknown) => t.fail(`${String(err)}; running: ${last}`));
}

t.test('containers on per-network bridges, across three hosts with their own engines', { skip }, async (t) => {
  const startedAt = Date.now();
  const c = await startDockerCluster(t, { hosts: 3, subnet: '10.77.83', bridgePool: DEFAULT_BRIDGE_POOL });
  if ('skip' in c) {
    t.plan(0, c.skip);
    return;
  }
  t.comment(`cluster up in ${Date.now() - startedAt} ms (${Object.entries(c.timings).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  const [, h2] = c.hosts as [DockerHost, DockerHost, DockerHost];
  try {
    // All three jobs at once: the checks below wait for what they need.
    const jobsAt = Date.now();
    await Promise.all([
      runJob(t, c, 'hostmode', {
        services: {
          // Two servers in h1's network: on h1's address, and on 127.0.0.1, where h1's agent forwards the mesh's
          // connections. Not on 0.0.0.0:18080: the agent itself listens on hweb's loopback virtual address,
          // 127.77.x.y:18080, in the same network (hweb may reach itself), and the kernel refuses that bind.
          hweb: {
            image: TEST_IMAGE, network_mode: 'host', expose: ['18080'], stop_grace_period: '1s', deploy: pin('h1'),
            command: ['sh', '-c', `mkdir -p /tmp/www && echo "hostmode $$SHOAL_NODE_ID" > /tmp/www/index.html && httpd -p ${c.hosts[0]!.ip}:18081 -h /tmp/www && exec httpd -f -p 127.0.0.1:18080 -h /tmp/www`],
          },
          hclient: { image: TEST_IMAGE, command: idle, network_mode: 'host', stop_grace_period: '1s', deploy: pin('h3') },
        },
      }),
      runJob(t, c, 'shop', {
        services: {
          web: { image: TEST_IMAGE, command: httpd(8080, 'web'), expose: ['8080'], stop_grace_period: '1s', deploy: notOnClientHost },
          client: { image: TEST_IMAGE, command: idle, stop_grace_period: '1s', deploy: pin('h2') },
        },
      }),
      runJob(t, c, 'split', {
        networks: { front: {}, back: {} },
        services: {
          web: { image: TEST_IMAGE, command: httpd(8080, 'split-web'), expose: ['8080'], networks: ['back'], stop_grace_period: '1s', deploy: notOnClientHost },
          insider: { image: TEST_IMAGE, command: idle, networks: ['back'], stop_grace_period: '1s', deploy: pin('h2') },
          outsider: { image: TEST_IMAGE, command: idle, networks: ['front'], stop_grace_period: '1s', deploy: pin('h2') },
        },
      }),
    ]);
    t.comment(`three jobs running in ${Date.now() - jobsAt} ms`);

    await t.test('network_mode: host containers run as before (and the harness works)', async (t) => {
      const web = await containerOfService(c, 'hostmode', 'hweb');
      const client = await containerOfService(c, 'hostmode', 'hclient');
      t.equal(web.host.name, 'h1');
      t.equal(client.host.name, 'h3');
      const expected = `hostmode ${web.host.agent.id}\n`;
      const info = await client.host.docker.getContainer(client.id).inspect();
      t.equal(info.HostConfig.NetworkMode, 'host', 'the client shares its host\'s network');
      // By address, across namespaces: h3's network reaches h1's, where hweb listens in h1's own network.
      let page = { code: null as number | null, stdout: '', stderr: '', ms: 0 };
      await waitFor('hweb answers at h1\'s address', async () => (page = await sh(client, `timeout 5 wget -q -O - http://${web.host.ip}:18081/`)).code === 0, 20_000);
      t.equal(page.stdout, expected, `h3's container gets h1's container's page at ${web.host.ip}`);
      // The mesh as before: SHOAL_SERVICE_HWEB is a listener of h3's agent on h3's address.
      const env = envOf(info.Config.Env);
      t.match(env['SHOAL_SERVICE_HWEB'] ?? '', new RegExp(`^${client.host.ip.replace(/\./g, '\\.')}:\\d+$`), `SHOAL_SERVICE_HWEB=${env['SHOAL_SERVICE_HWEB']}: a listener of h3's agent`);
      await waitFor('hweb answers at SHOAL_SERVICE_HWEB', async () => (page = await sh(client, 'timeout 5 wget -q -O - http://$SHOAL_SERVICE_HWEB/')).code === 0, 20_000)
        .catch((err: unknown) => t.fail(`${String(err)}; last try: code ${page.code}, ${page.stdout}${page.stderr}`));
      t.equal(page.stdout, expected, 'through the mesh, from hweb on h1');
    });

    await t.test('a container reaches a service by name on another host, through its bridge', async (t) => {
      const web = await containerOfService(c, 'shop', 'web');
      const client = await containerOfService(c, 'shop', 'client');
      t.not(web.host.name, 'h2', `web runs on ${web.host.name}`);
      const expected = `web ${web.id.slice(0, 12)}\n`;

      const info = await client.host.docker.getContainer(client.id).inspect();
      const networks = Object.entries(info.NetworkSettings.Networks ?? {});
      t.equal(networks.length, 1, `the client is on one engine network: ${networks.map(([n]) => n).join(', ')}`);
      t.not(info.HostConfig.NetworkMode, 'host', 'not in the host\'s network');
      const [netName, endpoint] = networks[0] ?? ['', undefined];
      const engineNet = netName ? await client.host.docker.getNetwork(netName).inspect().catch(() => undefined) : undefined;
      const subnet: string = engineNet?.IPAM?.Config?.[0]?.Subnet ?? '';
      const gateway: string = engineNet?.IPAM?.Config?.[0]?.Gateway ?? '';
      t.equal(engineNet?.Driver, 'bridge', `engine network ${netName} is a bridge`);
      t.match(subnet, /\/24$/, `a /24: ${subnet}`);
      t.ok(subnet !== '' && inCidr(subnet.split('/')[0]!, c.bridgePool), `${subnet} is in the pool ${c.bridgePool}`);
      t.ok(endpoint?.IPAddress && subnet && inCidr(endpoint.IPAddress, subnet), `the client's address ${endpoint?.IPAddress} is on it`);
      t.same(info.HostConfig.Dns, [gateway], `the container's DNS server is the bridge's gateway ${gateway}`);

      const env = envOf(info.Config.Env);
      const vipPort = env['SHOAL_SERVICE_WEB'] ?? '';
      const vip = vipPort.split(':')[0] ?? '';
      t.match(vipPort, /^\d+\.\d+\.\d+\.\d+:8080$/, `SHOAL_SERVICE_WEB=${vipPort}: the virtual address and the first target port`);
      t.equal(env['SHOAL_SERVICE_WEB_8080'], vipPort, 'SHOAL_SERVICE_WEB_8080 is the same');
      t.ok(subnet !== '' && inCidr(vip, subnet), `web's virtual address ${vip} is inside the bridge's subnet ${subnet}`);

      let page = { code: null as number | null, stdout: '', stderr: '', ms: 0 };
      await waitFor('client gets web\'s page by name', async () => (page = await sh(client, 'timeout 5 wget -q -O - http://web:8080/')).code === 0, 20_000)
        .catch((err: unknown) => t.fail(`${String(err)}; last try: code ${page.code}, ${page.stdout}${page.stderr}`));
      t.equal(page.stdout, expected, `http://web:8080/ from h2 is served by web on ${web.host.name}`);
      for (const name of ['web', 'web.shop', 'web.shop.shoal']) {
        const look = await sh(client, `timeout 5 nslookup ${name}`);
        t.same(nslookupAddresses(look.stdout), [vip], `${name} resolves to the virtual address (${look.stdout.replace(/\s+/g, ' ').trim()})`);
      }
      const byFqdn = await sh(client, 'timeout 5 wget -q -O - http://web.shop.shoal:8080/');
      t.equal(byFqdn.stdout, expected, 'http://web.shop.shoal:8080/ too');
      // tasks.web: web runs on another host, so its one task gets an address of client's bridge, of its own.
      const tasksLook = await sh(client, 'timeout 5 nslookup tasks.web');
      const taskAddresses = nslookupAddresses(tasksLook.stdout);
      t.equal(taskAddresses.length, 1, `tasks.web: one address per task (${tasksLook.stdout.replace(/\s+/g, ' ').trim()})`);
      t.ok(taskAddresses[0] !== vip && inCidr(taskAddresses[0] ?? '', subnet), 'on client\'s bridge, not the virtual address');
      const byTask = await sh(client, `timeout 5 wget -q -O - http://${taskAddresses[0]}:8080/`);
      t.equal(byTask.stdout, expected, 'and it reaches the task');
      const byEnv = await sh(client, 'timeout 5 wget -q -O - http://$SHOAL_SERVICE_WEB/');
      t.equal(byEnv.stdout, expected, 'http://$SHOAL_SERVICE_WEB/ too');
      const byNc = await sh(client, 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | timeout 5 nc web 8080');
      t.match(byNc.stdout, /^HTTP\/1\.[01] 200/, 'a raw TCP connection (nc web 8080) too');
      const unknown = await sh(client, 'timeout 5 nslookup nosuchservice');
      t.not(unknown.code, 0, 'a name that is no service does not resolve');
    });

    await t.test('a service on another network gets no address for web and cannot connect', async (t) => {
      const insider = await containerOfService(c, 'split', 'insider');
      const outsider = await containerOfService(c, 'split', 'outsider');
      const web = await containerOfService(c, 'split', 'web');
      const expected = `split-web ${web.id.slice(0, 12)}\n`;
      // The control: on `back`, web answers by name.
      let page = { code: null as number | null, stdout: '', stderr: '', ms: 0 };
      await waitFor('insider gets split web\'s page by name', async () => (page = await sh(insider, 'timeout 5 wget -q -O - http://web:8080/')).code === 0, 20_000)
        .catch((err: unknown) => t.fail(`${String(err)}; last try: code ${page.code}, ${page.stdout}${page.stderr}`));
      t.equal(page.stdout, expected, 'insider (on back) reaches web by name');
      const insiderEnv = envOf((await insider.host.docker.getContainer(insider.id).inspect()).Config.Env);
      const backVip = insiderEnv['SHOAL_SERVICE_WEB'] ?? '';
      t.match(backVip, /^\d+\.\d+\.\d+\.\d+:8080$/, `insider has SHOAL_SERVICE_WEB=${backVip}`);

      const outInfo = await outsider.host.docker.getContainer(outsider.id).inspect();
      const outEnv = envOf(outInfo.Config.Env);
      t.same(Object.keys(outEnv).filter((k) => k.startsWith('SHOAL_SERVICE_WEB')), [], 'outsider has no SHOAL_SERVICE_WEB*');
      t.same(Object.keys(outInfo.NetworkSettings.Networks ?? {}).length, 1, 'outsider is on one engine network');
      t.not(Object.keys(outInfo.NetworkSettings.Networks ?? {})[0], Object.keys((await insider.host.docker.getContainer(insider.id).inspect()).NetworkSettings.Networks ?? {})[0], 'not the insider\'s');
      const look = await sh(outsider, 'timeout 5 nslookup web');
      t.same(nslookupAddresses(look.stdout), [], `outsider: web does not resolve (${look.stdout.replace(/\s+/g, ' ').trim()} ${look.stderr.trim()})`);
      t.not(look.code, 0, 'nslookup web fails');
      const byName = await sh(outsider, 'timeout 5 wget -q -O - http://web:8080/');
      t.not(byName.code, 0, `outsider: http://web:8080/ fails (${byName.stderr.trim()})`);
      t.ok(byName.code !== 143 && byName.code !== null, `and fails by itself, not killed by a timeout (exit ${byName.code}, ${byName.ms} ms)`);
      for (const name of ['web.split', 'web.split.shoal']) {
        const r = await sh(outsider, `timeout 5 nslookup ${name}`);
        t.same(nslookupAddresses(r.stdout), [], `outsider: ${name} does not resolve`);
      }
      const otherJob = await sh(insider, 'timeout 5 nslookup web.shop');
      t.same(nslookupAddresses(otherJob.stdout), [], 'insider: web.shop (another job, no shared network) does not resolve');
      const forwarded = [...new Set(outsider.host.upstreamQueries())];
      t.comment(`names h2's agent forwarded to the host's resolver: ${forwarded.join(', ') || 'none'}`);
      t.same(forwarded.filter((n) => /^web\.(split|shop)$/i.test(n) || /\.shoal$/i.test(n)), [], 'web.<job> of an existing job and names under .shoal are answered by the agent, never forwarded');
      if (backVip !== '') {
        // The virtual address is an address of h2's own network namespace (on back's bridge); from front's bridge
        // it is one route away. The contract: the outsider cannot connect to web.
        const direct = await sh(outsider, `timeout 5 wget -q -O - http://${backVip}/`);
        t.not(direct.stdout, expected, `outsider cannot reach web at back's virtual address ${backVip} either (exit ${direct.code}, ${direct.stderr.trim()})`);
      }
    });

    await t.test('the host of the only web dies: new connections succeed once web runs elsewhere, none hangs', async (t) => {
      const web = await containerOfService(c, 'shop', 'web');
      const client = await containerOfService(c, 'shop', 'client');
      const before = await sh(client, 'timeout 5 wget -q -O - http://web:8080/');
      t.equal(before.stdout, `web ${web.id.slice(0, 12)}\n`, `before: served by web on ${web.host.name}`);
      const victim = web.host;
      const probeTimeoutS = 5;
      const probes: { at: number; ms: number; code: number | null; out: string }[] = [];
      let probing = true;
      const prober = (async () => {
        while (probing) {
          const at = Date.now();
          const r = await sh(client, `timeout ${probeTimeoutS} wget -q -O - http://web:8080/`, (probeTimeoutS + 5) * 1000)
            .catch((err: unknown) => ({ code: -1, stdout: String(err), stderr: '', ms: Date.now() - at }));
          probes.push({ at, ms: r.ms, code: r.code, out: r.stdout.trim() || r.stderr.trim() });
          await sleep(100);
        }
      })();
      await sleep(300);
      const killedAt = Date.now();
      await victim.kill();
      t.comment(`${victim.name} killed (agent SIGKILLed, containers removed) in ${Date.now() - killedAt} ms`);
      let moved: Alloc | undefined;
      await waitFor('the scheduler runs web on a survivor', async () => {
        moved = (await runningAllocs(h2, 'shop')).find((a) => a.service === 'web' && a.nodeName !== victim.name);
        return moved !== undefined;
      }, 60_000);
      const placedAt = Date.now();
      t.comment(`web running on ${moved?.nodeName} ${placedAt - killedAt} ms after the kill`);
      const next = await containerOf(c, moved!);
      const expected = `web ${next.id.slice(0, 12)}\n`;
      await waitFor('client gets the new web\'s page by name', () => probes.some((p) => p.at >= placedAt && p.code === 0 && `${p.out}\n` === expected), 30_000)
        .catch((err: unknown) => t.fail(String(err)));
      const recoveredAt = probes.find((p) => p.at >= killedAt && p.code === 0 && `${p.out}\n` === expected)?.at ?? Date.now();
      probing = false;
      await prober;
      t.comment(`client served again ${recoveredAt - killedAt} ms after the kill`);
      for (let i = 0; i < 5; i++) {
        const r = await sh(client, `timeout ${probeTimeoutS} wget -q -O - http://web:8080/`);
        t.equal(r.stdout, expected, `new connection ${i + 1} after recovery: served by web on ${next.host.name}`);
      }
      const byEnv = await sh(client, `timeout ${probeTimeoutS} wget -q -O - http://$SHOAL_SERVICE_WEB/`);
      t.equal(byEnv.stdout, expected, 'SHOAL_SERVICE_WEB still works (the virtual address did not change)');
      const during = probes.filter((p) => p.at >= killedAt);
      const hung = during.filter((p) => p.code === null || p.code === 143 || p.ms >= probeTimeoutS * 1000);
      const slowest = Math.max(0, ...during.map((p) => p.ms));
      t.comment(`${during.length} probes after the kill: ${during.filter((p) => p.code === 0).length} ok, ${during.filter((p) => p.code !== 0).length} failed, slowest ${slowest} ms`);
      t.same(hung.map((p) => `${p.at - killedAt} ms after the kill: ${p.ms} ms, exit ${p.code}`), [], `no connection hung (none reached the ${probeTimeoutS} s probe timeout)`);
    });
  } finally {
    if (!t.passing()) for (const h of c.hosts) t.comment(h.diagnostics());
    t.comment(`whole test ${Date.now() - startedAt} ms`);
  }
});
