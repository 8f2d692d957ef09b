/**
 * Containers on bridges through a real agent and a private Docker engine: a container reaches another service by
 * name (the agent's DNS on the bridge's gateway) and by SHOAL_SERVICE_*, an ingress port and a host-mode port reach
 * a container, a service on another network gets no answer, a SIGKILLed agent takes its containers and bridges back
 * with the same addresses, and stopping the job removes the bridges.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, startAgent, waitFor, type AgentProcess } from '../helpers/agents.js';
import { startPrivateDockerd, TEST_IMAGE } from '../helpers/docker.js';

const POOL = '10.215.0.0/16';
const engine = await startPrivateDockerd();
const dockerCli = spawnSync('sh', ['-c', 'command -v docker'], { encoding: 'utf8' }).stdout.trim();
const skip = 'skip' in engine ? engine.skip : dockerCli === '' ? 'no docker CLI (apt-get install docker.io)' : false;

t.test('containers find each other by name on their bridges, across an agent restart', { skip }, async (t) => {
  if ('skip' in engine) return;
  const docker = engine.docker;
  t.teardown(async () => {
    for (const c of await docker.listContainers({ all: true })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    for (const n of await docker.listNetworks()) if (n.Labels?.['shoal.managed'] === 'true') await docker.getNetwork(n.Id).remove().catch(() => undefined);
    await engine.stop();
  });
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  mkdirSync(join(dir, 'www'));
  writeFileSync(join(dir, 'www', 'index.html'), 'hello from web\n');
  const peerPort = await freeUdpPort('127.0.0.1');
  const ingress = 42_000 + (process.pid % 1000);
  const hostPort = ingress + 1000;
  const start = (): Promise<AgentProcess> => startAgent(t, {
    name: 'box', dataDir: join(dir, 'box'), bind: `127.0.0.1:${peerPort}`, keyFile,
    extraArgs: ['--bootstrap-expect', '1', '--docker-socket', engine.socketPath, '--task-ports', '44000-44099', '--bridge-pool', POOL],
    // The agent answers its containers' DNS queries and connects to them: addresses of the bridges this test makes.
    env: { SHOAL_NETGUARD_ALLOW: POOL },
  });
  let agent = await start();
  await waitFor('the docker driver', async () => (await agent.client.nodes.list()).nodes[0]?.drivers?.includes('docker') === true);
  const file = join(dir, 'web.yaml');
  writeFileSync(file, [
    'name: shop',
    'networks: { front: {}, back: {}, other: {} }',
    'services:',
    '  web:',
    `    image: ${TEST_IMAGE}`,
    '    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]',
    `    volumes: ["${join(dir, 'www')}:/www:ro"]`,
    '    networks: [back, front]',
    `    ports: ["${ingress}:8080", { target: 8080, published: ${hostPort}, mode: host }]`,
    '    stop_grace_period: 1s',
    '  client:',
    `    image: ${TEST_IMAGE}`,
    '    command: ["sleep", "600"]',
    '    networks: [back]',
    '    stop_grace_period: 1s',
    '  outsider:',
    `    image: ${TEST_IMAGE}`,
    '    command: ["sleep", "600"]',
    '    networks:',
    '      other: {}',
    '    stop_grace_period: 1s',
    '',
  ].join('\n'));
  const run = spawnSync(process.execPath, [SHOAL_BIN, '--address', agent.api, 'job', 'run', file], { encoding: 'utf8', timeout: 120_000 });
  t.equal(run.status, 0, `job run: ${run.stdout}${run.stderr}`);

  const inContainer = (service: string, script: string): { code: number | null; out: string } => {
    const name = spawnSync(dockerCli, ['-H', `unix://${engine.socketPath}`, 'ps', '--filter', `label=shoal.service=${service}`, '--format', '{{.Names}}'], { encoding: 'utf8' }).stdout.trim().split('\n')[0] ?? '';
    const r = spawnSync(dockerCli, ['-H', `unix://${engine.socketPath}`, 'exec', name, 'sh', '-c', script], { encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };
  const GET = 'printf "GET / HTTP/1.0\\r\\n\\r\\n"';
  const fetchIn = (service: string, target: string): string => inContainer(service, `${GET} | nc -w 3 ${target}`).out;
  const get = async (port: number): Promise<string> => (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3_000) })).text();

  await waitFor('web answers by name from client', () => fetchIn('client', 'web 8080').includes('hello from web'), 60_000, 500);
  const env = inContainer('client', 'echo "$SHOAL_SERVICE_WEB $SHOAL_DNS"').out.trim();
  const [vip, dns] = env.split(' ');
  t.match(vip, /^10\.215\.\d+\.(12[89]|1[3-9]\d|2[0-4]\d|25[0-4]):8080$/, 'SHOAL_SERVICE_WEB is web\'s address on the bridge');
  t.match(dns, /^10\.215\.\d+\.1:53$/, 'SHOAL_DNS is the bridge\'s gateway');
  t.match(fetchIn('client', vip!.replace(':', ' ')), /hello from web/, 'SHOAL_SERVICE_WEB answers');
  t.match(fetchIn('client', 'web.shop.shoal 8080'), /hello from web/, '<service>.<job>.shoal answers');
  // tasks.web: web runs on this node and shares client's bridge, so its task answers at its own address, directly.
  const tasksWeb = inContainer('client', 'nslookup tasks.web').out;
  const own = /Name:\s*tasks\.web[\s\S]*?Address:\s*(10\.215\.\d+\.(\d+))/.exec(tasksWeb);
  t.ok(own && Number(own[2]) < 128, `tasks.web is web's own container address (${tasksWeb.replace(/\s+/g, ' ').trim()})`);
  t.match(fetchIn('client', `${own?.[1]} 8080`), /hello from web/, 'which answers');
  t.match(await get(ingress), /hello from web/, 'the ingress port reaches the container');
  t.match(await get(hostPort), /hello from web/, 'the host-mode port is published on the agent\'s address');
  // (A short name the cluster does not answer would go to the host's resolvers, which tests may not reach.)
  const outsider = inContainer('outsider', `${GET} | nc -w 2 web.shop.shoal 8080; echo rc=$?`).out;
  t.notMatch(outsider, /hello from web/, 'a service on another network gets no answer for web');
  t.match(outsider, /bad address 'web\.shop\.shoal'/, `the name does not resolve for it (${outsider.trim()})`);
  const direct = inContainer('outsider', `${GET} | nc -w 2 ${vip!.replace(':', ' ')}; echo rc=$?`).out;
  t.notMatch(direct, /hello from web/, `nor does web's address on the other bridge answer it (${direct.trim()})`);

  // SIGKILL: the containers go on running; the restarted agent takes its bridges back, DNS included.
  agent.child.kill('SIGKILL');
  await agent.exited;
  agent = await start();
  await waitFor('web answers by name again after the agent restarted', () => fetchIn('client', 'web 8080').includes('hello from web'), 60_000);
  t.match(fetchIn('client', vip!.replace(':', ' ')), /hello from web/, 'the address in SHOAL_SERVICE_WEB still answers');
  t.equal(inContainer('client', 'echo $SHOAL_SERVICE_WEB').out.trim(), vip, 'the container was not restarted');

  const stop = spawnSync(process.execPath, [SHOAL_BIN, '--address', agent.api, 'job', 'stop', 'shop'], { encoding: 'utf8', timeout: 120_000 });
  t.equal(stop.status, 0, `job stop: ${stop.stdout}${stop.stderr}`);
  await waitFor('the bridges are removed', async () => (await docker.listNetworks()).every((n) => n.Labels?.['shoal.network'] === undefined), 60_000);
  t.pass('no bridge of the job is left on the engine');

  // An agent that leaves (SIGTERM) stops its containers and removes its bridges.
  const again = spawnSync(process.execPath, [SHOAL_BIN, '--address', agent.api, 'job', 'run', file], { encoding: 'utf8', timeout: 120_000 });
  t.equal(again.status, 0, `job run again: ${again.stdout}${again.stderr}`);
  t.ok((await docker.listNetworks()).some((n) => n.Labels?.['shoal.network'] !== undefined), 'bridges again');
  agent.child.kill('SIGTERM');
  t.equal(await agent.exited, 0, 'the agent left');
  t.same((await docker.listNetworks()).filter((n) => n.Labels?.['shoal.network'] !== undefined).map((n) => n.Name), [], 'and took its bridges with it');
});
