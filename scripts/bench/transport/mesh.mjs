// Transport benchmark: time from starting five agents (separate processes, loopback, each on its own 127.0.0.x
// address) until every agent has an authenticated link to every other, and the resident memory of one idle agent.
// The peer, measured in the same run: five plain hyperswarm processes with the same DHT setup (non-ephemeral,
// non-firewalled nodes, a bootstrapper in the first process, one discovery refresh after a second), to a full mesh
// of raw connections. Run `npm run build` first, then: node scripts/bench/transport/mesh.mjs [runs]
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';

const RUNS = Number(process.argv[2] ?? 5);

// The agents run in a network namespace holding only loopback (when we are root): bound to 127.0.0.x, hyperdht
// also advertises the machine's interface addresses and then tries them, which has nothing to do with either
// implementation and only adds noise. Without namespaces the agents share 127.0.0.1 on distinct ports.
const NS = `shoalbench-${randomBytes(3).toString('hex')}`;
const useNs = spawnSync('ip', ['netns', 'add', NS]).status === 0;
if (useNs) {
  spawnSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  process.on('exit', () => spawnSync('ip', ['netns', 'del', NS]));
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));
}
const AGENTS = 5;
const DIST = new URL('../../../dist/transport/index.js', import.meta.url).href;

// One Shoal agent: the HyperswarmTransport from dist, reporting link events on stdout.
const SHOAL_AGENT = `
import { HyperswarmTransport } from ${JSON.stringify(DIST)};
const c = JSON.parse(process.env.BENCH_CFG);
const t = new HyperswarmTransport({ clusterKey: Buffer.from(c.key, 'hex'), seed: Buffer.from(c.seed, 'hex'), host: c.host, port: c.port, bootstrap: c.bootstrap });
t.onLinkUp(() => console.log(JSON.stringify({ ev: 'links', n: t.links().length })));
await t.start();
console.log(JSON.stringify({ ev: 'ready' }));
process.stdin.on('data', () => {}); process.stdin.on('end', async () => { await t.stop(); process.exit(0); });
`;

// The peer: plain hyperswarm, same DHT options, no authentication layer.
const PLAIN_AGENT = `
import DHT from 'hyperdht';
import Hyperswarm from 'hyperswarm';
const c = JSON.parse(process.env.BENCH_CFG);
// Plain hyperswarm does not find a member that is itself the bootstrap node, so the first process runs a
// dedicated bootstrapper beside its swarm (as in the experiment that gave the ~1.3 s baseline).
const boot = c.bootstrap.length === 0 ? DHT.bootstrapper(c.port, c.host, { host: c.host }) : null;
if (boot) await boot.ready();
const bootstrap = boot ? [c.host + ':' + c.port] : c.bootstrap;
const opts = { bootstrap, nodes: [], ephemeral: false, firewalled: false, host: c.host, port: boot ? c.port + 1 : c.port, anyPort: false };
const dht = new DHT(opts);
await dht.ready();
const swarm = new Hyperswarm({ dht });
const peers = new Set();
swarm.on('connection', (conn) => {
  conn.on('error', () => {});
  peers.add(conn.remotePublicKey.toString('hex'));
  conn.on('close', () => peers.delete(conn.remotePublicKey.toString('hex')));
  console.log(JSON.stringify({ ev: 'links', n: peers.size }));
});
const d = swarm.join(Buffer.from(c.key, 'hex'), { server: true, client: true });
const timer = setTimeout(() => d.refresh({ server: true, client: true }).catch(() => {}), 1000);
console.log(JSON.stringify({ ev: 'ready' }));
process.stdin.on('data', () => {}); process.stdin.on('end', async () => { clearTimeout(timer); await swarm.destroy(); if (boot) await boot.destroy(); process.exit(0); });
`;

function startAgent(code, cfg, cwd) {
  const args = ['--input-type=module', '-e', code];
  const child = spawn(useNs ? 'ip' : process.execPath, useNs ? ['netns', 'exec', NS, process.execPath, ...args] : args, {
    cwd, env: { ...process.env, BENCH_CFG: JSON.stringify(cfg), NODE_OPTIONS: '' }, stdio: ['pipe', 'pipe', 'inherit'],
  });
  const agent = { child, links: 0, ready: false, waiters: [] };
  createInterface({ input: child.stdout }).on('line', (line) => {
    let e;
    try { e = JSON.parse(line); } catch { return; }
    if (e.ev === 'ready') agent.ready = true;
    if (e.ev === 'links') agent.links = e.n;
    for (const w of agent.waiters.splice(0)) w();
  });
  return agent;
}

function until(agents, cond, what, ms = 60_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    const check = () => {
      if (cond()) { clearTimeout(timer); resolve(); return; }
      for (const a of agents) a.waiters.push(check);
    };
    check();
  });
}

function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function stopAll(agents) {
  await Promise.all(agents.map((a) => new Promise((resolve) => {
    const kill = setTimeout(() => a.child.kill('SIGKILL'), 10_000);
    a.child.on('exit', () => { clearTimeout(kill); resolve(); });
    a.child.stdin.end();
  })));
}

async function meshOnce(code, run) {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const net = `127.0.${10 + (run % 200)}`;
  const host = (i) => (useNs ? `${net}.${i}` : '127.0.0.1');
  const portOf = (i) => (useNs ? port : port + 2 * i);
  const key = randomBytes(32).toString('hex');
  const cwd = new URL('../../../', import.meta.url).pathname;
  const t0 = performance.now();
  const first = startAgent(code, { host: host(1), port: portOf(1), bootstrap: [], key, seed: randomBytes(32).toString('hex') }, cwd);
  await until([first], () => first.ready, 'first agent ready');
  const rest = Array.from({ length: AGENTS - 1 }, (_, i) =>
    startAgent(code, { host: host(i + 2), port: portOf(i + 2), bootstrap: [`${host(1)}:${portOf(1)}`], key, seed: randomBytes(32).toString('hex') }, cwd));
  const agents = [first, ...rest];
  await until(agents, () => agents.every((a) => a.ready), 'all agents ready');
  const readyMs = performance.now() - t0;
  await until(agents, () => agents.every((a) => a.links >= AGENTS - 1), `full mesh (${code === SHOAL_AGENT ? "shoal" : "plain"})`).catch((err) => { throw new Error(`${err.message}; links per agent: ${agents.map((a) => a.links).join(",")}`); });
  const meshMs = performance.now() - t0;
  // Idle for a moment, then read one agent's resident memory.
  await new Promise((r) => setTimeout(r, 2_000));
  const rss = rssMb(rest[0].child.pid);
  await stopAll(agents);
  return { meshMs, afterReadyMs: meshMs - readyMs, rss };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const shoal = [];
const plain = [];
for (let run = 0; run < RUNS; run++) {
  plain.push(await meshOnce(PLAIN_AGENT, run * 2));
  shoal.push(await meshOnce(SHOAL_AGENT, run * 2 + 1));
  const fmt = (r) => `${r.meshMs.toFixed(0)} ms (${r.afterReadyMs.toFixed(0)} ms after all were up)`;
  console.log(`run ${run + 1}/${RUNS}: shoal ${fmt(shoal.at(-1))}, plain hyperswarm ${fmt(plain.at(-1))}`);
}
const sMesh = median(shoal.map((r) => r.meshMs));
const pMesh = median(plain.map((r) => r.meshMs));
const sAfter = median(shoal.map((r) => r.afterReadyMs));
const pAfter = median(plain.map((r) => r.afterReadyMs));
const sRss = median(shoal.map((r) => r.rss));
const pRss = median(plain.map((r) => r.rss));
console.log(`\n(${useNs ? 'agents on 127.0.0.1-5 in an isolated loopback namespace' : 'agents on 127.0.0.1, distinct ports'})`);
console.log(`full authenticated mesh of ${AGENTS} agents (median of ${RUNS}): shoal ${sMesh.toFixed(0)} ms vs plain hyperswarm ${pMesh.toFixed(0)} ms (ratio ${(sMesh / pMesh).toFixed(2)}); aim < 1000 ms, earlier baseline ~1300 ms`);
console.log(`  of which after every process had started: shoal ${sAfter.toFixed(0)} ms vs plain ${pAfter.toFixed(0)} ms (ratio ${(sAfter / pAfter).toFixed(2)})`);
console.log(`idle agent RSS (median): shoal ${sRss.toFixed(1)} MB vs plain hyperswarm ${pRss.toFixed(1)} MB (ratio ${(sRss / pRss).toFixed(2)}); aim < 60 MB, earlier baseline ~53 MB`);
