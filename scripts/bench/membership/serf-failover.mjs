// Failure detection, side by side with real HashiCorp Serf (Debian's `serf`, -profile=lan), measured in the same
// run, plus a soak that counts false DEAD verdicts under 5% random packet loss.
//
//   npm run build && node scripts/bench/membership/serf-failover.mjs [--runs 5]
//   node scripts/bench/membership/serf-failover.mjs --soak 600 [--no-serf]      (needs root: network namespaces)
//
// Mode 1 (default): for each of --runs runs, alternating which system goes first, start five members on loopback
// (each on its own 127.0.0.x address), wait until all five see five alive, SIGKILL one by its pid and poll a
// chosen survivor every 50 ms until it reports the victim dead (Shoal: MEMBER_STATUS_DEAD over the HTTP RPC;
// Serf: "failed" from `serf members -format json`). Prints all samples, both medians and the ratio Shoal/Serf.
// The issue's goal: Shoal <= 1/3 of Serf's time. Nothing here asserts on speed: the machine is shared and noisy.
//
// Mode 2 (--soak SECONDS): five network namespaces (shoalb-*) on a bridge, subnet 10.77.250.0/24, one Shoal agent
// (and, unless --no-serf, one Serf agent) in each. Once every member sees five alive, `iptables -A INPUT -i eth0 -m
// statistic --mode random --probability 0.05 -j DROP` goes into every namespace (only on eth0, the link between the
// hosts: on `lo` it would also drop the benchmark's own polls of the local API / Serf RPC, turning them into TCP
// retransmits and missed samples, while the agents' traffic with each other is all on eth0), and for SECONDS every member's view
// is sampled each second (a poller inside each namespace, soak-poller.mjs). Nobody is killed, so every transition
// of a member to DEAD (Serf: failed) is a false verdict. SUSPECT sightings are counted for information (Serf does
// not expose suspicion through `serf members`).
//
// Everything started here (agents, pollers, namespaces, temp dirs) is removed at the end, also on failure or ^C.
import { spawnSync, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { cleanup, freeUdpPort, keygen, kill, median, onCleanup, run, sleep, start, startShoal, tempDir, waitUntil } from '../lib/harness.mjs';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const POLLER = fileURLToPath(new URL('./soak-poller.mjs', import.meta.url));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt;
};
const RUNS = Number(opt('--runs', '5'));
const SOAK = args.includes('--soak') ? Number(opt('--soak', '600')) : undefined;
const WITH_SERF = !args.includes('--no-serf');
const MEMBERS = 5;
const POLL_MS = 50;
const DETECT_TIMEOUT_MS = 90_000;
const CONVERGE_TIMEOUT_MS = 120_000;
const NS_PREFIX = 'shoalb';
const SUBNET = '10.77.250';
const LOSS = 0.05;

// ---------------------------------------------------------------------------------------------------------------
// Bookkeeping of everything we start, so that it is removed whatever happens.
const namespaces = [];
onCleanup(() => {
  for (const ns of namespaces.splice(0).reverse()) spawnSync('ip', ['netns', 'del', ns]);
});



const fmt = (ms) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a');





// ---------------------------------------------------------------------------------------------------------------
// Shoal



/** name -> status ("MEMBER_STATUS_ALIVE", ...) as the agent with this API sees it. */
async function shoalView(api) {
  const res = await fetch(`http://${api}/rpc/shoal.v1.Members/List`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(2_000),
  });
  if (!res.ok) throw new Error(`Members/List on ${api}: HTTP ${res.status}`);
  const body = await res.json();
  return Object.fromEntries((body.members ?? []).map((m) => [m.name, m.status]));
}

async function shoalCluster() {
  const dir = tempDir('shoal');
  const keyFile = keygen(dir);
  const firstPort = await freeUdpPort('127.0.0.41');
  const agents = [];
  try {
    agents.push(await startShoal({ name: 's1', dataDir: join(dir, 's1'), bind: `127.0.0.41:${firstPort}`, keyFile }));
    const rest = [];
    for (let i = 2; i <= MEMBERS; i++) {
      rest.push(startShoal({ name: `s${i}`, dataDir: join(dir, `s${i}`), bind: `127.0.0.${40 + i}:0`, join: `127.0.0.41:${firstPort}`, keyFile }));
    }
    agents.push(...(await Promise.all(rest)));
    await waitUntil('five Shoal agents to see five alive', async () => {
      const views = await Promise.all(agents.map((a) => shoalView(a.api)));
      return views.every((v) => Object.values(v).filter((s) => s === 'MEMBER_STATUS_ALIVE').length === MEMBERS);
    }, CONVERGE_TIMEOUT_MS, 200);
  } catch (err) {
    await Promise.all(agents.map((a) => kill(a)));
    throw err;
  }
  return { agents, dir };
}

// ---------------------------------------------------------------------------------------------------------------
// Serf

function serfMembers(rpc, ns) {
  const [cmd, argv] = ns ? ['ip', ['netns', 'exec', ns, 'serf', 'members', `-rpc-addr=${rpc}`, '-format=json']] : ['serf', ['members', `-rpc-addr=${rpc}`, '-format=json']];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { timeout: 5_000 }, (err, stdout) => {
      if (err) return reject(new Error(`serf members -rpc-addr=${rpc}: ${String(err.message).split('\n')[0]}`));
      try {
        resolve(Object.fromEntries((JSON.parse(stdout).members ?? []).map((m) => [m.name, m.status])));
      } catch (e) {
        reject(e);
      }
    });
  });
}

function startSerf({ name, bind, rpc, join: joinAddr, ns }) {
  const argv = ['agent', `-node=${name}`, `-bind=${bind}`, `-rpc-addr=${rpc}`, '-profile=lan', '-log-level=warn', ...(joinAddr ? [`-join=${joinAddr}`] : [])];
  return { ...start('serf', argv, { ns }), name, rpc, ns };
}

async function serfCluster() {
  const agents = [];
  try {
    // Serf's ports are fixed per address: each member has its own 127.0.0.(60+N).
    agents.push(startSerf({ name: 'n1', bind: '127.0.0.61:7946', rpc: '127.0.0.61:7373' }));
    await waitUntil('the first Serf agent to answer RPC', () => serfMembers('127.0.0.61:7373').then(() => true), 30_000, 100);
    for (let i = 2; i <= MEMBERS; i++) agents.push(startSerf({ name: `n${i}`, bind: `127.0.0.${60 + i}:7946`, rpc: `127.0.0.${60 + i}:7373`, join: '127.0.0.61:7946' }));
    await waitUntil('five Serf agents to see five alive', async () => {
      for (const a of agents) {
        if (a.child.exitCode !== null) throw new Error(`serf agent ${a.name} exited\n${a.output()}`);
      }
      const views = await Promise.all(agents.map((a) => serfMembers(a.rpc)));
      return views.every((v) => Object.values(v).filter((s) => s === 'alive').length === MEMBERS);
    }, CONVERGE_TIMEOUT_MS, 200);
  } catch (err) {
    await Promise.all(agents.map((a) => kill(a)));
    throw err;
  }
  return { agents };
}

// ---------------------------------------------------------------------------------------------------------------
// Mode 1: detection time

/** SIGKILLs `victim`, then polls `observe()` every POLL_MS until it returns true; ms from the kill to that answer. */
async function timeDetection(victim, observe) {
  const t0 = performance.now();
  process.kill(victim.child.pid, 'SIGKILL');
  for (;;) {
    const slot = performance.now();
    let seen = false;
    try {
      seen = await observe();
    } catch (_err) {
      // A slow or failed poll on a busy machine: try again at the next slot.
    }
    const now = performance.now();
    if (seen) return now - t0;
    if (now - t0 > DETECT_TIMEOUT_MS) return NaN;
    const wait = POLL_MS - (now - slot);
    if (wait > 0) await sleep(wait);
  }
}

async function shoalRun() {
  const { agents } = await shoalCluster();
  try {
    const victim = agents[MEMBERS - 1];
    const survivor = agents[0];
    const ms = await timeDetection(victim, async () => (await shoalView(survivor.api))[victim.name] === 'MEMBER_STATUS_DEAD');
    return ms;
  } finally {
    await Promise.all(agents.map((a) => kill(a)));
  }
}

async function serfRun() {
  const { agents } = await serfCluster();
  try {
    const victim = agents[MEMBERS - 1];
    const survivor = agents[0];
    return await timeDetection(victim, async () => (await serfMembers(survivor.rpc))[victim.name] === 'failed');
  } finally {
    await Promise.all(agents.map((a) => kill(a)));
  }
}

async function detection() {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is not built: run `npm run build` first');
  console.log(`# Failure detection: 5 members on loopback, SIGKILL one, time until a survivor reports it dead (poll ${POLL_MS} ms), ${RUNS} runs`);
  console.log(`# Serf: ${run('serf', ['version']).split('\n')[0]}, -profile=lan; Shoal: bin/shoal agent (this tree)`);
  const shoal = [];
  const serf = [];
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 === 0 ? ['shoal', 'serf'] : ['serf', 'shoal'];
    for (const sys of order) {
      const ms = sys === 'shoal' ? await shoalRun() : await serfRun();
      (sys === 'shoal' ? shoal : serf).push(ms);
      console.log(`run ${i + 1}/${RUNS} ${sys.padEnd(5)} ${Number.isFinite(ms) ? fmt(ms) : `not detected within ${DETECT_TIMEOUT_MS / 1000} s`}`);
    }
  }
  const ms = median(shoal.filter(Number.isFinite));
  const mf = median(serf.filter(Number.isFinite));
  console.log('');
  const list = (xs) => xs.map((x) => (Number.isFinite(x) ? (x / 1000).toFixed(2) : 'timeout')).join(', ');
  console.log(`shoal samples (s): ${list(shoal)}`);
  console.log(`serf  samples (s): ${list(serf)}`);
  console.log(`shoal median: ${fmt(ms)}`);
  console.log(`serf  median: ${fmt(mf)}`);
  console.log(`ratio shoal/serf: ${(ms / mf).toFixed(3)} (goal <= 0.333)`);
}

// ---------------------------------------------------------------------------------------------------------------
// Mode 2: soak under 5% loss in network namespaces

function createNetwork(hosts) {
  const id = randomBytes(3).toString('hex');
  const sw = `${NS_PREFIX}-${id}-sw`;
  const addNs = (ns) => {
    run('ip', ['netns', 'add', ns]);
    namespaces.push(ns);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  };
  addNs(sw);
  run('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
  run('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
  const out = [];
  for (let i = 1; i <= hosts; i++) {
    const ns = `${NS_PREFIX}-${id}-h${i}`;
    addNs(ns);
    run('ip', ['-n', sw, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    run('ip', ['-n', sw, 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
    const ip = `${SUBNET}.${i}`;
    run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    out.push({ ns, ip });
  }
  return out;
}

function removeStaleNamespaces() {
  const names = run('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${NS_PREFIX}-`));
  for (const n of names) spawnSync('ip', ['netns', 'del', n]);
  if (names.length > 0) console.log(`# removed ${names.length} stale namespaces of an earlier run: ${names.join(' ')}`);
}

async function soak(seconds) {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is not built: run `npm run build` first');
  if (process.getuid?.() !== 0) throw new Error('the soak needs root (ip netns, iptables)');
  removeStaleNamespaces();
  const hosts = createNetwork(MEMBERS);
  const dir = tempDir('soak');
  const keyFile = keygen(dir);
  const SHOAL_PORT = 7647;
  const SHOAL_API = '127.0.0.1:7646';
  const SERF_PORT = 7946;
  const SERF_RPC = '127.0.0.1:7373';
  console.log(`# Soak: ${MEMBERS} members in namespaces on ${SUBNET}.0/24, ${LOSS * 100}% random inbound loss (iptables statistic) in every namespace, ${seconds} s, views sampled every 1 s${WITH_SERF ? '; Shoal and Serf side by side in the same namespaces' : ''}`);

  const shoalAgents = [];
  shoalAgents.push(await startShoal({ name: 'h1', dataDir: join(dir, 'h1'), bind: `${hosts[0].ip}:${SHOAL_PORT}`, keyFile, ns: hosts[0].ns, api: SHOAL_API }));
  shoalAgents.push(...(await Promise.all(hosts.slice(1).map((h, i) => startShoal({
    name: `h${i + 2}`, dataDir: join(dir, `h${i + 2}`), bind: `${h.ip}:${SHOAL_PORT}`, join: `${hosts[0].ip}:${SHOAL_PORT}`, keyFile, ns: h.ns, api: SHOAL_API,
  })))));
  const serfAgents = [];
  if (WITH_SERF) {
    serfAgents.push(startSerf({ name: 'n1', bind: `${hosts[0].ip}:${SERF_PORT}`, rpc: SERF_RPC, ns: hosts[0].ns }));
    await waitUntil('the first Serf agent to answer RPC', () => serfMembers(SERF_RPC, hosts[0].ns).then(() => true), 30_000, 100);
    hosts.slice(1).forEach((h, i) => serfAgents.push(startSerf({ name: `n${i + 2}`, bind: `${h.ip}:${SERF_PORT}`, rpc: SERF_RPC, join: `${hosts[0].ip}:${SERF_PORT}`, ns: h.ns })));
  }

  // Pollers, one per namespace; each prints one JSON line per second.
  const samples = hosts.map(() => []);
  const pollers = hosts.map((h, i) => {
    const p = start(process.execPath, [POLLER, '--shoal-api', SHOAL_API, ...(WITH_SERF ? ['--serf-rpc', SERF_RPC] : []), '--interval-ms', '1000'], { ns: h.ns, stdin: 'pipe' });
    let buf = '';
    p.child.stdout.on('data', (d) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') samples[i].push({ at: Date.now(), ...JSON.parse(line) });
    });
    return p;
  });
  const latest = (i) => samples[i][samples[i].length - 1];
  const allAlive = (view, alive) => view && !view.error && Object.values(view).filter((s) => s === alive).length === MEMBERS;
  await waitUntil('every member (Shoal and Serf) to see five alive', () => hosts.every((_h, i) => {
    const s = latest(i);
    return s && allAlive(s.shoal, 'MEMBER_STATUS_ALIVE') && (!WITH_SERF || allAlive(s.serf, 'alive'));
  }), CONVERGE_TIMEOUT_MS, 500);

  for (const h of hosts) run('ip', ['netns', 'exec', h.ns, 'iptables', '-A', 'INPUT', '-i', 'eth0', '-m', 'statistic', '--mode', 'random', '--probability', String(LOSS), '-j', 'DROP']);
  const soakStart = Date.now();
  const from = hosts.map((_h, i) => samples[i].length);
  console.log(`# converged; loss on; soaking for ${seconds} s from ${new Date(soakStart).toISOString()}`);
  let nextReport = soakStart + 60_000;
  while (Date.now() - soakStart < seconds * 1000) {
    await sleep(1000);
    for (const [i, a] of shoalAgents.entries()) if (a.child.exitCode !== null || a.child.signalCode !== null) throw new Error(`shoal agent h${i + 1} exited during the soak\n${a.output()}`);
    if (Date.now() >= nextReport) {
      nextReport += 60_000;
      const partial = tally(samples.map((s, i) => s.slice(from[i])));
      console.log(`#   ${Math.round((Date.now() - soakStart) / 1000)} s: shoal false DEAD ${partial.shoal.falseDead}, suspect sightings ${partial.shoal.suspectSamples}${WITH_SERF ? `; serf false failed ${partial.serf.falseDead}` : ''}`);
    }
  }
  const durationS = (Date.now() - soakStart) / 1000;
  for (const h of hosts) {
    const counters = run('ip', ['netns', 'exec', h.ns, 'iptables', '-L', 'INPUT', '-v', '-n', '-x']).split('\n').find((l) => l.includes('statistic'));
    h.dropped = counters ? Number(counters.trim().split(/\s+/)[0]) : NaN;
  }
  const result = tally(samples.map((s, i) => s.slice(from[i])));
  for (const p of pollers) await kill(p, 'SIGTERM');
  await Promise.all([...shoalAgents, ...serfAgents].map((a) => kill(a)));

  console.log('');
  console.log(`duration: ${durationS.toFixed(0)} s with ${LOSS * 100}% inbound loss (packets dropped per namespace: ${hosts.map((h) => h.dropped).join(', ')})`);
  for (const [sys, r] of Object.entries(result)) {
    if (sys === 'serf' && !WITH_SERF) continue;
    console.log(`${sys.padEnd(5)}: samples ${r.samples} (views of ${MEMBERS} viewers x ${MEMBERS} members: ${r.memberSamples}), poll errors ${r.errors}, ` +
      `false ${sys === 'shoal' ? 'DEAD' : 'failed'} verdicts ${r.falseDead}${r.falseDeadList.length ? ` [${r.falseDeadList.join('; ')}]` : ''}, ` +
      (sys === 'shoal' ? `suspect sightings ${r.suspectSamples} (member-samples) in ${r.suspectEpisodes} episodes` : 'suspect sightings n/a (serf members does not show suspicion)'));
  }
}

/** Counts, per system, transitions into DEAD/failed and SUSPECT sightings over every viewer's samples. */
function tally(perViewer) {
  const out = {};
  for (const [sys, dead, suspect] of [['shoal', 'MEMBER_STATUS_DEAD', 'MEMBER_STATUS_SUSPECT'], ['serf', 'failed', undefined]]) {
    const r = { samples: 0, memberSamples: 0, errors: 0, falseDead: 0, falseDeadList: [], suspectSamples: 0, suspectEpisodes: 0 };
    perViewer.forEach((list, v) => {
      const prev = {};
      for (const s of list) {
        const view = s[sys];
        if (view === undefined) continue;
        r.samples++;
        if (view.error) {
          r.errors++;
          continue;
        }
        for (const [name, status] of Object.entries(view)) {
          r.memberSamples++;
          if (status === dead && prev[name] !== dead) {
            r.falseDead++;
            r.falseDeadList.push(`viewer ${v + 1} saw ${name} at +${Math.round(s.t / 1000)} s`);
          }
          if (suspect && status === suspect) {
            r.suspectSamples++;
            if (prev[name] !== suspect) r.suspectEpisodes++;
          }
          prev[name] = status;
        }
      }
    });
    out[sys] = r;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

try {
  if (SOAK !== undefined) {
    if (!(SOAK > 0)) throw new Error(`--soak needs a positive number of seconds, got ${opt('--soak', '')}`);
    await soak(SOAK);
  } else {
    await detection();
  }
} catch (err) {
  console.error(`serf-failover: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
