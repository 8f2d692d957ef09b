// Idle cost and failure detection as the cluster grows, side by side with real HashiCorp Serf (Debian's `serf`,
// -profile=lan), measured in the same run.
//
//   npm run bench:scale                                   (sizes 5,20,50; 60 s idle window; about 10-25 min)
//   npm run build && node scripts/bench/scale/idle.mjs [--sizes 5,20,50] [--idle-seconds 60] [--settle-seconds 10]
//                                                       [--formation-timeout 240] [--detect-timeout 120] [--quick]
//                                                       [--only shoal|serf] [--shoal-net 127.0.1] [--shoal-port 7647]
//   --quick = --sizes 5,20 --idle-seconds 20 (explicit flags win).
//
// For every cluster size N, one system after the other (never both at once: the machine has 2 cores; the side that
// goes first alternates from size to size), each cluster killed completely before the next starts:
//
// 1. Formation. Shoal: agent 1 on 127.0.1.1:7647, agents 2..N on 127.0.1.2..127.0.1.N, same port, all with
//    --join 127.0.1.1:7647, one cluster key, --bootstrap-expect 3, APIs on 127.0.0.1 (ports the kernel picks), data in
//    temp dirs. Serf: agents on 127.0.0.1 with distinct free ports, -profile=lan, all -join the first. In both cases
//    the first agent is launched, the others as soon as it answers (the joiners need it up), and the time counts from
//    launching the first. Formed = every agent lists N alive members (Shoal: Members/List; Serf: its RPC `members`,
//    the same call `serf members` makes) and, for Shoal, a Raft leader exists (a member has the "leader" role and
//    that agent's Operator/RaftState says role "leader").
// 2. Idle window. After --settle-seconds of quiet, for --idle-seconds: CPU from /proc/PID/stat (utime+stime ticks
//    over the window, % of one core) and VmRSS from /proc/PID/status at the end, per agent (and RssAnon, the part
//    that is not the pages of mapped files such as the node binary, shared by all agents on a host). Printed as median and
//    max over the agents; for Shoal over the non-leader agents, with the Raft leader apart, and also by kind of agent
//    (its member roles after the window: leader, voter, replica, client). Nothing polls the agents
//    in the window except one Operator/RaftState on the leader every 5 s (to count leader changes); the Raft term
//    is read on the leader when the cluster formed and at the end of the window.
// 3. Detection. SIGKILL one agent (Shoal: a client if there is one, else a read replica, else a non-leader voter; Serf:
//    the last one) and poll every survivor every 100 ms until each reports it dead (Shoal MEMBER_STATUS_DEAD,
//    Serf "failed"). Printed: until the first survivor and until every survivor reports it.
//
// Then the goals are printed with PASS/FAIL (the machine is shared and noisy: nothing here asserts), and the last
// line of output is one JSON object with every figure. Everything started here is killed, and the temp dirs removed,
// at the end, also on failure or ^C.
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { cleanup, keygen, kill, median, run, sleep, start, startShoal, tempDir, waitUntil } from '../lib/harness.mjs';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

// ---------------------------------------------------------------------------------------------------------------
// Options

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt;
};
const QUICK = args.includes('--quick');
const SIZES = opt('--sizes', QUICK ? '5,20' : '5,20,50').split(',').map((s) => Number(s.trim()));
const IDLE_S = Number(opt('--idle-seconds', QUICK ? '20' : '60'));
const SETTLE_S = Number(opt('--settle-seconds', '10'));
const FORMATION_TIMEOUT_MS = Number(opt('--formation-timeout', '240')) * 1000;
const ONLY = opt('--only', undefined); // "shoal" or "serf": run one side alone (no ratios)
if (ONLY !== undefined && ONLY !== 'shoal' && ONLY !== 'serf') throw new Error(`--only takes shoal or serf, got ${ONLY}`);
const WITH_SERF = !args.includes('--no-serf') && ONLY !== 'shoal';
const WITH_SHOAL = ONLY !== 'serf';
const SHOAL_NET = opt('--shoal-net', '127.0.1'); // agent i binds <net>.<i>
const SHOAL_PEER_PORT = Number(opt('--shoal-port', '7647'));
const POLL_FORMATION_MS = 250;
const POLL_DETECT_MS = 100;
const DETECT_TIMEOUT_MS = Number(opt('--detect-timeout', '120')) * 1000;
const LEADER_SAMPLE_MS = 5_000;

for (const n of SIZES) if (!Number.isInteger(n) || n < 3 || n > 250) throw new Error(`--sizes: each size must be an integer in 3..250, got ${opt('--sizes', '')}`);
if (!(IDLE_S > 0)) throw new Error('--idle-seconds must be positive');

// Goals (from the issue); printed with PASS/FAIL.
const GOAL_CPU_PCT = 1; // % of one core, per agent
const GOAL_FLAT = 1.5; // median CPU at the largest size <= 1.5x the median at the smallest
const GOAL_RSS_MB = 70; // MB as in bench:transport: VmRSS kB / 1024
const GOAL_LEADER_X = 2; // leader CPU <= 2x the median client's
const GOAL_DETECT_RATIO = 1 / 3;

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

// ---------------------------------------------------------------------------------------------------------------
// /proc

/** utime+stime of a process, in clock ticks. */
function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return Number(f[11]) + Number(f[12]); // fields 14 (utime) and 15 (stime)
}

/** VmRSS in MB (kB / 1024, as bench:transport reports it). */
function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * RssAnon in MB: the resident memory that is the process's own (heaps, buffers), without the pages of files it
 * maps (the node or serf binary, shared libraries), which every agent on one host shares.
 */
function rssAnonMb(pid) {
  const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Whole-machine busy and total jiffies (all cores), for the background load during a window. */
function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal (guest is counted in user)
  const idle = f[3] + f[4];
  return { busy: total - idle, total, steal: f[7] ?? 0 };
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** Measures every pid over `seconds` while `during` runs (it gets the window's end time). */
async function idleWindow(pids, seconds, during) {
  const m0 = machineTicks();
  const t0 = performance.now();
  const c0 = pids.map(cpuTicks);
  const end = t0 + seconds * 1000;
  await during(end);
  const wait = end - performance.now();
  if (wait > 0) await sleep(wait);
  const c1 = pids.map(cpuTicks);
  const elapsedS = (performance.now() - t0) / 1000;
  const m1 = machineTicks();
  const rss = pids.map(rssMb);
  const rssAnon = pids.map(rssAnonMb);
  const cpuPct = pids.map((_p, i) => ((c1[i] - c0[i]) / CLK_TCK / elapsedS) * 100);
  const cores = Number(readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length ?? 1);
  const machineBusyPct = ((m1.busy - m0.busy) / (m1.total - m0.total)) * 100 * cores; // % of one core
  const stealPct = ((m1.steal - m0.steal) / (m1.total - m0.total)) * 100 * cores;
  const agentsPct = cpuPct.reduce((a, b) => a + b, 0);
  return { cpuPct, rss, rssAnon, elapsedS, machineBusyPct, stealPct, othersPct: Math.max(0, machineBusyPct - stealPct - agentsPct), cores };
}

// ---------------------------------------------------------------------------------------------------------------
// Ports

async function udpFree(host, port) {
  const s = dgram.createSocket('udp4');
  const ok = await new Promise((resolve) => s.once('error', () => resolve(false)).bind(port, host, () => resolve(true)));
  await new Promise((resolve) => s.close(() => resolve()));
  return ok;
}

function tcpListen(host, port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, host, () => resolve(srv));
  });
}

/** A port free for both TCP and UDP on `host` (memberlist uses both on its bind port), distinct from `taken`. */
async function freeTcpUdpPort(host, taken) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const srv = await tcpListen(host, 0);
    if (!srv) continue;
    const port = srv.address().port;
    const udpOk = !taken.has(port) && (await udpFree(host, port));
    await new Promise((resolve) => srv.close(() => resolve()));
    if (udpOk) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no port free for TCP and UDP on ${host} after 200 tries`);
}

// ---------------------------------------------------------------------------------------------------------------
// Shoal

async function shoalRpc(api, method, body = {}, timeoutMs = 3_000) {
  const res = await fetch(`http://${api}/rpc/shoal.v1.${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-shoal-timeout-ms': String(timeoutMs) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs + 500),
  });
  const out = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${method} on ${api}: HTTP ${res.status} ${out.message ?? ''}`);
  return out;
}

/** The members as one agent sees them: [{ name, status, roles }]. */
async function shoalMembers(api) {
  const body = await shoalRpc(api, 'Members/List');
  return (body.members ?? []).map((m) => ({ name: m.name, status: m.status, roles: m.metadata?.roles ?? [] }));
}

const raftState = (api) => shoalRpc(api, 'Operator/RaftState');

/**
 * Whether this RaftState answer is the asked agent's own: a client forwards the call to a server and says so
 * (agentRole "client", answeredBy the server), so its "role: leader" is the server's.
 */
const ownAnswer = (st, name) => st !== undefined && st.agentRole !== 'client' && (!st.answeredBy || st.answeredBy === name);
const saysLeader = (st, name) => ownAnswer(st, name) && st.role === 'leader';

async function runShoal(n) {
  const dir = tempDir(`scale-shoal-${n}`);
  const keyFile = keygen(dir);
  for (let i = 1; i <= n; i++) {
    if (!(await udpFree(`${SHOAL_NET}.${i}`, SHOAL_PEER_PORT))) throw new Error(`${SHOAL_NET}.${i}:${SHOAL_PEER_PORT} (UDP) is taken: pick another block with --shoal-net`);
  }
  const seed = `${SHOAL_NET}.1:${SHOAL_PEER_PORT}`;
  const agentOpts = (i) => ({
    name: `s${i}`, dataDir: join(dir, `s${i}`), bind: `${SHOAL_NET}.${i}:${SHOAL_PEER_PORT}`, keyFile,
    join: i === 1 ? undefined : seed, extraArgs: ['--bootstrap-expect', '3'], readyTimeoutMs: FORMATION_TIMEOUT_MS,
  });
  const agents = [];
  const r = { system: 'shoal', n, notes: [] };
  try {
    const t0 = performance.now();
    agents.push(await startShoal(agentOpts(1)));
    const started = await Promise.allSettled(Array.from({ length: n - 1 }, (_x, k) => startShoal(agentOpts(k + 2))));
    for (const s of started) {
      if (s.status === 'fulfilled') agents.push(s.value);
      else throw s.reason;
    }
    r.allReadyMs = performance.now() - t0;

    // Formation: poll the agents that have not yet shown N alive; once all have, one confirming round over all of
    // them (a view can regress: a member suspected meanwhile), and a leader must exist.
    const satisfied = new Set();
    const firstAllAlive = new Map(); // agent -> ms from launch until it first listed N alive
    let leader;
    const lastViews = new Map();
    let allSeenAt;
    const deadline = t0 + FORMATION_TIMEOUT_MS;
    for (;;) {
      const roundStart = performance.now();
      const pending = satisfied.size === n ? agents : agents.filter((a) => !satisfied.has(a.name));
      const views = await Promise.all(pending.map((a) => shoalMembers(a.api).catch(() => undefined)));
      const now = performance.now();
      pending.forEach((a, k) => {
        const v = views[k];
        if (v) lastViews.set(a.name, v);
        const alive = v ? v.filter((m) => m.status === 'MEMBER_STATUS_ALIVE').length : 0;
        if (alive === n) {
          satisfied.add(a.name);
          if (!firstAllAlive.has(a.name)) firstAllAlive.set(a.name, now - t0);
        } else {
          satisfied.delete(a.name);
        }
      });
      if (satisfied.size === n && leader === undefined) {
        // Who the leader is: the members gossiped with the "leader" role in the views just read (one can be stale)
        // and the leader named by agent 1's Raft state (a server's, forwarded, if agent 1 is a client); the one
        // whose own Raft state says leader.
        const named = new Set([...lastViews.values()].flat().filter((m) => m.roles.includes('leader')).map((m) => m.name));
        const viaRaft = (await raftState(agents[0].api).catch(() => undefined))?.leaderName;
        if (viaRaft) named.add(viaRaft);
        for (const cand of agents.filter((a) => named.has(a.name))) {
          const st = await raftState(cand.api).catch(() => undefined);
          if (saysLeader(st, cand.name)) {
            leader = { agent: cand, term: Number(st.term), at: performance.now() };
            break;
          }
        }
      }
      if (satisfied.size === n) allSeenAt ??= now;
      else allSeenAt = undefined;
      if (satisfied.size === n && leader !== undefined && pending.length === n) {
        r.formationMs = Math.max(allSeenAt, leader.at) - t0;
        break;
      }
      if (performance.now() > deadline) {
        const counts = agents.map((a) => (lastViews.get(a.name) ?? []).filter((m) => m.status === 'MEMBER_STATUS_ALIVE').length);
        r.formationMs = NaN;
        r.notes.push(`not formed within ${FORMATION_TIMEOUT_MS / 1000} s: alive members seen per agent ${counts.join(',')}; leader ${leader ? leader.agent.name : 'none'}`);
        break;
      }
      const wait = POLL_FORMATION_MS - (performance.now() - roundStart);
      if (wait > 0) await sleep(wait);
    }
    formationProgress(r, firstAllAlive, n);
    if (leader === undefined) {
      // No leader at formation: look once more, so that the idle window can still sample one.
      for (const a of agents) {
        const st = await raftState(a.api).catch(() => undefined);
        if (saysLeader(st, a.name)) {
          leader = { agent: a, term: Number(st.term), at: performance.now() };
          break;
        }
      }
    }
    if (leader === undefined) {
      const sts = await Promise.all(agents.map((a) => raftState(a.api).catch((err) => ({ error: String(err.message ?? err).slice(0, 80) }))));
      const views = new Map();
      sts.forEach((st, k) => {
        const key = st.error ? `error ${st.error}` : `${ownAnswer(st, agents[k].name) ? 'own' : `via ${st.answeredBy}`} member=${st.member ?? false} voters=${(st.peers ?? []).filter((x) => x.voter).length} role=${st.role || '-'} term=${st.term ?? 0} leader=${st.leaderName || '-'}${st.waiting ? ` waiting="${st.waiting}"` : ''}`;
        views.set(key, [...(views.get(key) ?? []), agents[k].name]);
      });
      r.notes.push(`no Raft leader; RaftState answers: ${[...views].map(([k, v]) => `[${k}] x${v.length}${v.length <= 4 ? ` (${v.join(',')})` : ''}`).join('; ')}`);
    }
    r.leader = leader?.agent.name;
    r.termAtFormation = leader?.term;
    const rolesIn = (view) => Object.fromEntries((view ?? []).filter((m) => m.roles.length > 0).map((m) => [m.name, m.roles.join('+')]));
    r.rolesAtFormation = rolesIn(lastViews.get(agents[0].name));

    // Idle window. The leader's Raft state is sampled at formation, before the window, every LEADER_SAMPLE_MS in it
    // (following the leader if it moves) and, on every agent, after it.
    const tForm = performance.now();
    const leaderSamples = leader ? [{ t: 0, from: leader.agent.name, role: 'leader', leader: leader.agent.name, term: leader.term }] : [];
    let cur = leader?.agent;
    const sampleLeader = async () => {
      if (!cur) return;
      const st = await raftState(cur.api).catch((err) => ({ error: String(err.message ?? err).slice(0, 120) }));
      leaderSamples.push({ t: Math.round(performance.now() - tForm), from: cur.name, role: ownAnswer(st, cur.name) ? st.role : `via ${st.answeredBy}`, leader: st.leaderName, term: st.term === undefined ? undefined : Number(st.term), error: st.error });
      if (!saysLeader(st, cur.name) && st.leaderName) cur = agents.find((a) => a.name === st.leaderName) ?? cur;
    };
    await sleep(SETTLE_S * 1000);
    await sampleLeader();
    r.termAtIdleStart = leaderSamples.at(-1)?.term;
    r.loadavgBefore = loadavg();
    const w = await idleWindow(agents.map((a) => a.child.pid), IDLE_S, async (end) => {
      while (cur && performance.now() + LEADER_SAMPLE_MS < end) {
        await sleep(LEADER_SAMPLE_MS);
        await sampleLeader();
      }
    });
    r.loadavgAfter = loadavg();
    const stEnd = await Promise.all(agents.map((a) => raftState(a.api).catch(() => undefined)));
    const claimLeader = stEnd.flatMap((st, k) => (saysLeader(st, agents[k].name) ? [k] : []));
    const leaderEnd = claimLeader.length ? claimLeader.reduce((best, k) => (Number(stEnd[k].term) > Number(stEnd[best].term) ? k : best)) : -1;
    if (claimLeader.length > 1) r.notes.push(`after the idle window, ${claimLeader.length} agents say they are leader: ${claimLeader.map((k) => `${agents[k].name} (term ${stEnd[k].term})`).join(', ')}`);
    const views = new Map();
    stEnd.forEach((st, k) => {
      const key = st ? `term ${st.term ?? 0} leader ${st.leaderName || '-'}` : 'no answer';
      views.set(key, [...(views.get(key) ?? []), agents[k].name]);
    });
    r.raftViewsAfterIdle = Object.fromEntries([...views].map(([k, v]) => [k, v.length]));
    if (views.size > 1) r.notes.push(`after the idle window, the agents' Raft views differ: ${[...views].map(([k, v]) => `${k}: ${v.length} agent(s)${v.length <= 3 ? ` (${v.join(',')})` : ''}`).join('; ')}`);
    r.leaderAtEnd = leaderEnd >= 0 ? agents[leaderEnd].name : undefined;
    r.termAfterIdle = leaderEnd >= 0 ? Number(stEnd[leaderEnd].term) : undefined;
    if (leaderEnd >= 0) leaderSamples.push({ t: Math.round(performance.now() - tForm), from: r.leaderAtEnd, role: 'leader', leader: r.leaderAtEnd, term: r.termAfterIdle });
    const named = leaderSamples.filter((x) => x.leader);
    r.leaderChanges = named.reduce((c, x, i) => c + (i > 0 && x.leader !== named[i - 1].leader ? 1 : 0), 0);
    r.termIncrease = r.termAfterIdle !== undefined && r.termAtFormation !== undefined ? r.termAfterIdle - r.termAtFormation : undefined;
    r.leaderSamples = leaderSamples;
    const sampleErrors = leaderSamples.filter((x) => x.error).length;
    if (sampleErrors) r.notes.push(`${sampleErrors} of ${leaderSamples.length} leader samples failed`);
    if (r.leaderChanges > 0 || r.termIncrease) {
      r.notes.push(`leader/term samples (ms after formation: leader@term as seen by the agent asked): ${leaderSamples.map((x) => `${x.t}: ${x.error ? `error from ${x.from}` : `${x.leader ?? '-'}@${x.term ?? '?'}${x.from !== x.leader ? ` (asked ${x.from}, ${x.role})` : ''}`}`).join(', ')}`);
    }
    const endViews = await Promise.all(agents.map((a) => shoalMembers(a.api).catch(() => undefined)));
    const notAllAlive = agents.filter((a, k) => (endViews[k] ?? []).filter((m) => m.status === 'MEMBER_STATUS_ALIVE').length !== n).map((a) => a.name);
    if (notAllAlive.length) r.notes.push(`after the idle window, ${notAllAlive.length} agent(s) did not list ${n} alive: ${notAllAlive.join(',')}`);
    r.rolesAfterIdle = rolesIn(endViews.find((v) => v));
    const roleOf = (name) => (endViews.find((v) => v)?.find((m) => m.name === name)?.roles ?? []);
    // Only the agent whose Raft state says leader counts as the leader (a gossiped "leader" role can be stale).
    const kinds = agents.map((a) => (a.name === (r.leaderAtEnd ?? r.leader) ? 'leader' : kindOf(roleOf(a.name).filter((x) => x !== 'leader'))));
    summarise(r, w, kinds);

    // Detection: a client if any, else a read replica (learner), else a non-leader voter.
    const candidates = agents.filter((_a, k) => kinds[k] !== 'leader').reverse();
    const victim = ['client', 'replica', 'voter'].map((kind) => candidates.find((a) => kinds[agents.indexOf(a)] === kind)).find(Boolean) ?? candidates[0];
    r.victim = victim.name;
    r.victimRoles = roleOf(victim.name).join('+') || 'none';
    const survivors = agents.filter((a) => a !== victim);
    Object.assign(r, await timeDetection(victim.child.pid, survivors, async (a) => (await shoalMembers(a.api)).find((m) => m.name === victim.name)?.status ?? 'absent', 'MEMBER_STATUS_DEAD'));
    return r;
  } finally {
    await Promise.all(agents.map((a) => kill(a)));
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Serf: its RPC protocol (msgpack over TCP) spoken directly, so that polling 50 agents does not cost 50 processes.

function mpEncode(v) {
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    if (b.length < 32) return Buffer.concat([Buffer.from([0xa0 | b.length]), b]);
    if (b.length < 256) return Buffer.concat([Buffer.from([0xd9, b.length]), b]);
    throw new Error('string too long');
  }
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) {
    if (v < 128) return Buffer.from([v]);
    const b = Buffer.alloc(5);
    b[0] = 0xce;
    b.writeUInt32BE(v, 1);
    return b;
  }
  if (v && typeof v === 'object') {
    const entries = Object.entries(v);
    return Buffer.concat([Buffer.from([0x80 | entries.length]), ...entries.flatMap(([k, x]) => [mpEncode(k), mpEncode(x)])]);
  }
  throw new Error(`cannot encode ${v}`);
}

class Incomplete extends Error {}

/** Decodes one msgpack value at `pos`; returns [value, next]. Throws Incomplete when the buffer ends first. */
function mpDecode(buf, pos) {
  const need = (k) => {
    if (pos + k > buf.length) throw new Incomplete();
  };
  need(1);
  const t = buf[pos++];
  const str = (len) => {
    need(len);
    const s = buf.toString('utf8', pos, pos + len);
    pos += len;
    return s;
  };
  const items = (len, isMap) => {
    const out = isMap ? {} : [];
    for (let i = 0; i < len; i++) {
      let k;
      if (isMap) [k, pos] = mpDecode(buf, pos);
      let v;
      [v, pos] = mpDecode(buf, pos);
      if (isMap) out[k] = v;
      else out.push(v);
    }
    return out;
  };
  const u = (bytes) => {
    need(bytes);
    const v = bytes === 1 ? buf.readUInt8(pos) : bytes === 2 ? buf.readUInt16BE(pos) : bytes === 4 ? buf.readUInt32BE(pos) : Number(buf.readBigUInt64BE(pos));
    pos += bytes;
    return v;
  };
  const s = (bytes) => {
    need(bytes);
    const v = bytes === 1 ? buf.readInt8(pos) : bytes === 2 ? buf.readInt16BE(pos) : bytes === 4 ? buf.readInt32BE(pos) : Number(buf.readBigInt64BE(pos));
    pos += bytes;
    return v;
  };
  let v;
  if (t <= 0x7f) v = t;
  else if (t >= 0xe0) v = t - 0x100;
  else if ((t & 0xf0) === 0x80) v = items(t & 0x0f, true);
  else if ((t & 0xf0) === 0x90) v = items(t & 0x0f, false);
  else if ((t & 0xe0) === 0xa0) v = str(t & 0x1f);
  else {
    switch (t) {
      case 0xc0: v = null; break;
      case 0xc2: v = false; break;
      case 0xc3: v = true; break;
      case 0xc4: case 0xd9: v = str(u(1)); break;
      case 0xc5: case 0xda: v = str(u(2)); break;
      case 0xc6: case 0xdb: v = str(u(4)); break;
      case 0xca: need(4); v = buf.readFloatBE(pos); pos += 4; break;
      case 0xcb: need(8); v = buf.readDoubleBE(pos); pos += 8; break;
      case 0xcc: v = u(1); break;
      case 0xcd: v = u(2); break;
      case 0xce: v = u(4); break;
      case 0xcf: v = u(8); break;
      case 0xd0: v = s(1); break;
      case 0xd1: v = s(2); break;
      case 0xd2: v = s(4); break;
      case 0xd3: v = s(8); break;
      case 0xdc: v = items(u(2), false); break;
      case 0xdd: v = items(u(4), false); break;
      case 0xde: v = items(u(2), true); break;
      case 0xdf: v = items(u(4), true); break;
      default: throw new Error(`msgpack type 0x${t.toString(16)} not supported`);
    }
  }
  return [v, pos];
}

/** name -> status ("alive", "failed", "left", ...) as the Serf agent at `rpc` sees it (what `serf members` prints). */
function serfMembers(rpc, timeoutMs = 3_000) {
  const [host, port] = rpc.split(':');
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), host);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`serf rpc ${rpc}: timed out`));
    }, timeoutMs);
    const fail = (err) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    sock.on('error', (err) => fail(new Error(`serf rpc ${rpc}: ${err.message}`)));
    sock.on('connect', () => sock.write(Buffer.concat([
      mpEncode({ Command: 'handshake', Seq: 0 }), mpEncode({ Version: 1 }),
      mpEncode({ Command: 'members', Seq: 1 }),
    ])));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      try {
        let [h0, p] = mpDecode(buf, 0);
        if (h0.Error) return fail(new Error(`serf rpc ${rpc}: handshake: ${h0.Error}`));
        let h1;
        [h1, p] = mpDecode(buf, p);
        if (h1.Error) return fail(new Error(`serf rpc ${rpc}: members: ${h1.Error}`));
        const [body] = mpDecode(buf, p);
        clearTimeout(timer);
        sock.destroy();
        resolve(Object.fromEntries((body.Members ?? []).map((m) => [m.Name, m.Status])));
      } catch (err) {
        if (!(err instanceof Incomplete)) fail(err);
      }
    });
  });
}

function startSerf({ name, bind, rpc, join: joinAddr }) {
  const argv = ['agent', `-node=${name}`, `-bind=${bind}`, `-rpc-addr=${rpc}`, '-profile=lan', '-log-level=warn', ...(joinAddr ? [`-join=${joinAddr}`] : [])];
  return { ...start('serf', argv), name, rpc };
}

async function runSerf(n) {
  const taken = new Set();
  const ports = [];
  for (let i = 0; i < n; i++) ports.push({ bind: await freeTcpUdpPort('127.0.0.1', taken), rpc: await freeTcpUdpPort('127.0.0.1', taken) });
  const agents = [];
  const r = { system: 'serf', n, notes: [] };
  const exitedEarly = () => {
    const gone = agents.find((a) => a.child.exitCode !== null || a.child.signalCode !== null);
    if (gone) throw new Error(`serf agent ${gone.name} exited (${gone.child.exitCode ?? gone.child.signalCode})\n${gone.output()}`);
  };
  try {
    const t0 = performance.now();
    const seed = `127.0.0.1:${ports[0].bind}`;
    agents.push(startSerf({ name: 'n1', bind: seed, rpc: `127.0.0.1:${ports[0].rpc}` }));
    await waitUntil('the first Serf agent to answer RPC', () => {
      exitedEarly();
      return serfMembers(agents[0].rpc).then(() => true);
    }, 30_000, 50);
    for (let i = 2; i <= n; i++) agents.push(startSerf({ name: `n${i}`, bind: `127.0.0.1:${ports[i - 1].bind}`, rpc: `127.0.0.1:${ports[i - 1].rpc}`, join: seed }));

    const satisfied = new Set();
    const firstAllAlive = new Map(); // agent -> ms from launch until it first listed N alive
    const lastCounts = new Map();
    let allSeenAt;
    const deadline = t0 + FORMATION_TIMEOUT_MS;
    for (;;) {
      exitedEarly();
      const roundStart = performance.now();
      const pending = satisfied.size === n ? agents : agents.filter((a) => !satisfied.has(a.name));
      const views = await Promise.all(pending.map((a) => serfMembers(a.rpc).catch(() => undefined)));
      const now = performance.now();
      pending.forEach((a, k) => {
        const alive = views[k] ? Object.values(views[k]).filter((s) => s === 'alive').length : 0;
        lastCounts.set(a.name, alive);
        if (alive === n) {
          satisfied.add(a.name);
          if (!firstAllAlive.has(a.name)) firstAllAlive.set(a.name, now - t0);
        } else {
          satisfied.delete(a.name);
        }
      });
      if (satisfied.size === n) allSeenAt ??= now;
      else allSeenAt = undefined;
      if (satisfied.size === n && pending.length === n) {
        r.formationMs = allSeenAt - t0;
        break;
      }
      if (performance.now() > deadline) {
        r.formationMs = NaN;
        r.notes.push(`not formed within ${FORMATION_TIMEOUT_MS / 1000} s: alive members seen per agent ${agents.map((a) => lastCounts.get(a.name) ?? 0).join(',')}`);
        break;
      }
      const wait = POLL_FORMATION_MS - (performance.now() - roundStart);
      if (wait > 0) await sleep(wait);
    }

    formationProgress(r, firstAllAlive, n);
    await sleep(SETTLE_S * 1000);
    r.loadavgBefore = loadavg();
    const w = await idleWindow(agents.map((a) => a.child.pid), IDLE_S, async () => {});
    r.loadavgAfter = loadavg();
    exitedEarly();
    const endViews = await Promise.all(agents.map((a) => serfMembers(a.rpc).catch(() => undefined)));
    const notAllAlive = agents.filter((_a, k) => Object.values(endViews[k] ?? {}).filter((s) => s === 'alive').length !== n).map((a) => a.name);
    if (notAllAlive.length) r.notes.push(`after the idle window, ${notAllAlive.length} agent(s) did not list ${n} alive: ${notAllAlive.join(',')}`);
    summarise(r, w, agents.map(() => 'agent'));

    const victim = agents[n - 1];
    r.victim = victim.name;
    const survivors = agents.filter((a) => a !== victim);
    Object.assign(r, await timeDetection(victim.child.pid, survivors, async (a) => (await serfMembers(a.rpc))[victim.name] ?? 'absent', 'failed'));
    return r;
  } finally {
    await Promise.all(agents.map((a) => kill(a)));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Shared steps

/** When the agents first listed N alive: the slowest three, and how many had by each 10% of the slowest's time. */
function formationProgress(r, firstAllAlive, n) {
  const times = [...firstAllAlive.values()].sort((a, b) => a - b);
  r.firstAllAliveMs = { median: median(times), max: times.length ? times[times.length - 1] : NaN, count: times.length };
  const slow = [...firstAllAlive].sort((a, b) => b[1] - a[1]).slice(0, 3);
  r.formationSlowest = slow.map(([name, ms]) => `${name} ${(ms / 1000).toFixed(1)} s`).join(', ');
  // Worth a note when the slowest agent took far longer than the median one: a straggler, not a slow cluster.
  if (times.length === n && r.firstAllAliveMs.max > 3 * r.firstAllAliveMs.median + 5_000) {
    r.notes.push(`formation stragglers: median agent listed ${n} alive at ${(r.firstAllAliveMs.median / 1000).toFixed(1)} s, slowest ${r.formationSlowest}`);
  }
  if (times.length < n) r.notes.push(`${n - times.length} agent(s) never listed ${n} alive during formation`);
}

/** What a Shoal agent is, from its member roles ("voter", "leader", "replica"/"learner", "client"). */
function kindOf(roles) {
  if (roles.includes('leader')) return 'leader';
  if (roles.includes('voter')) return 'voter';
  if (roles.includes('replica') || roles.includes('learner')) return 'replica';
  return 'client';
}

/** CPU and RSS over the non-leader agents, the leader apart, and (Shoal) by kind of agent. */
function summarise(r, w, kinds) {
  const others = w.cpuPct.filter((_c, i) => kinds[i] !== 'leader');
  const othersRss = w.rss.filter((_c, i) => kinds[i] !== 'leader');
  const li = kinds.indexOf('leader');
  r.idleSeconds = w.elapsedS;
  r.cpuPct = { median: median(others), max: Math.max(...others), leader: li >= 0 ? w.cpuPct[li] : undefined, all: w.cpuPct.map((x) => Number(x.toFixed(3))) };
  r.rssMb = { median: median(othersRss), max: Math.max(...othersRss), leader: li >= 0 ? w.rss[li] : undefined, maxAll: Math.max(...w.rss), all: w.rss.map((x) => Number(x.toFixed(1))) };
  const othersAnon = w.rssAnon.filter((_c, i) => kinds[i] !== 'leader');
  r.rssAnonMb = { median: median(othersAnon), max: Math.max(...othersAnon), leader: li >= 0 ? w.rssAnon[li] : undefined };
  r.kinds = kinds;
  r.byKind = {};
  for (const kind of new Set(kinds)) {
    const idx = kinds.flatMap((k, i) => (k === kind ? [i] : []));
    r.byKind[kind] = { count: idx.length, cpuMedian: median(idx.map((i) => w.cpuPct[i])), cpuMax: Math.max(...idx.map((i) => w.cpuPct[i])), rssMedian: median(idx.map((i) => w.rss[i])), rssMax: Math.max(...idx.map((i) => w.rss[i])) };
  }
  r.machine = { busyPctOfOneCore: w.machineBusyPct, othersPctOfOneCore: w.othersPct, stealPctOfOneCore: w.stealPct, cores: w.cores };
}

/**
 * SIGKILLs `pid`, then polls every survivor (those that have not yet reported it dead) every POLL_DETECT_MS until
 * each has. Returns ms until the first and until the last survivor reported it.
 */
async function timeDetection(pid, survivors, statusOf, dead) {
  const pending = new Set(survivors);
  const last = new Map();
  const reportsDead = async (a) => {
    const status = await statusOf(a);
    last.set(a, status);
    return status === dead;
  };
  const t0 = performance.now();
  process.kill(pid, 'SIGKILL');
  let firstMs;
  let pollErrors = 0;
  for (;;) {
    const slot = performance.now();
    const list = [...pending];
    const seen = await Promise.all(list.map((a) => reportsDead(a).catch(() => {
      pollErrors++;
      return false;
    })));
    const now = performance.now() - t0;
    list.forEach((a, k) => {
      if (seen[k]) pending.delete(a);
    });
    if (firstMs === undefined && seen.some(Boolean)) firstMs = now;
    if (pending.size === 0) return { detectFirstMs: firstMs, detectAllMs: now, detectPollErrors: pollErrors };
    if (now > DETECT_TIMEOUT_MS) {
      const statuses = {};
      for (const a of pending) statuses[last.get(a) ?? 'no answer'] = (statuses[last.get(a) ?? 'no answer'] ?? 0) + 1;
      return { detectFirstMs: firstMs ?? NaN, detectAllMs: NaN, detectPollErrors: pollErrors, detectMissing: [...pending].map((a) => a.name), detectLastStatuses: statuses };
    }
    const wait = POLL_DETECT_MS - (performance.now() - slot);
    if (wait > 0) await sleep(wait);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Output

const s1 = (ms) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a');
const pct = (x) => (Number.isFinite(x) ? `${x.toFixed(2)} %` : 'n/a');
const mb = (x) => (Number.isFinite(x) ? `${x.toFixed(1)} MB` : 'n/a');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
const rx = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

function printSize(n, sh, sf) {
  const rows = [
    ['formation (all N alive everywhere + leader)', s1(sh?.formationMs), s1(sf?.formationMs), rx(ratio(sh?.formationMs, sf?.formationMs))],
    ['  every agent process ready (Shoal)', s1(sh?.allReadyMs), '', ''],
    ['  median agent first lists N alive', s1(sh?.firstAllAliveMs?.median), s1(sf?.firstAllAliveMs?.median), rx(ratio(sh?.firstAllAliveMs?.median, sf?.firstAllAliveMs?.median))],
    ['idle CPU, median agent (% of a core)*', pct(sh?.cpuPct.median), pct(sf?.cpuPct.median), rx(ratio(sh?.cpuPct.median, sf?.cpuPct.median))],
    ['idle CPU, max agent*', pct(sh?.cpuPct.max), pct(sf?.cpuPct.max), rx(ratio(sh?.cpuPct.max, sf?.cpuPct.max))],
    ['idle CPU, Raft leader', pct(sh?.cpuPct.leader), 'n/a', ''],
    ['RSS, median agent*', mb(sh?.rssMb.median), mb(sf?.rssMb.median), rx(ratio(sh?.rssMb.median, sf?.rssMb.median))],
    ['RSS, max agent*', mb(sh?.rssMb.max), mb(sf?.rssMb.max), rx(ratio(sh?.rssMb.max, sf?.rssMb.max))],
    ['RSS, Raft leader', mb(sh?.rssMb.leader), 'n/a', ''],
    ['  of it the process\'s own (RssAnon), median*', mb(sh?.rssAnonMb?.median), mb(sf?.rssAnonMb?.median), rx(ratio(sh?.rssAnonMb?.median, sf?.rssAnonMb?.median))],
    ['Raft term: formed/idle start/end (leader changes)', sh ? `${sh.termAtFormation ?? '?'}/${sh.termAtIdleStart ?? '?'}/${sh.termAfterIdle ?? '?'} (${sh.leaderChanges})` : '', 'n/a', ''],
    ['detection: first survivor reports dead', s1(sh?.detectFirstMs), s1(sf?.detectFirstMs), rx(ratio(sh?.detectFirstMs, sf?.detectFirstMs))],
    ['detection: every survivor reports dead', s1(sh?.detectAllMs), s1(sf?.detectAllMs), rx(ratio(sh?.detectAllMs, sf?.detectAllMs))],
  ];
  const w = [48, 16, 16, 10];
  console.log('');
  console.log(`## ${n} agents`);
  console.log(`${'what'.padEnd(w[0])}${'Shoal'.padStart(w[1])}${'Serf'.padStart(w[2])}${'Shoal/Serf'.padStart(w[3] + 2)}`);
  for (const row of rows) console.log(`${row[0].padEnd(w[0])}${String(row[1]).padStart(w[1])}${String(row[2]).padStart(w[2])}${String(row[3]).padStart(w[3] + 2)}`);
  console.log('* Shoal: over the non-leader agents; Serf: over all agents.');
  if (sh) {
    const count = (roles) => Object.values(roles).reduce((c, v) => ({ ...c, [kindOf(v.split('+'))]: (c[kindOf(v.split('+'))] ?? 0) + 1 }), {});
    const counts = (roles) => Object.entries(count(roles)).map(([k, v]) => `${v} ${k}`).join(', ');
    console.log(`Shoal by kind (idle window): ${Object.entries(sh.byKind).map(([k, v]) => `${v.count} ${k}: CPU median ${pct(v.cpuMedian)} max ${pct(v.cpuMax)}, RSS median ${mb(v.rssMedian)} max ${mb(v.rssMax)}`).join('; ')}`);
    console.log(`Shoal: leader ${sh.leader ?? 'none'}${sh.leaderAtEnd && sh.leaderAtEnd !== sh.leader ? ` (at the end ${sh.leaderAtEnd})` : ''}; roles at formation: ${counts(sh.rolesAtFormation)}; after the idle window: ${counts(sh.rolesAfterIdle)}; ` +
      `victim ${sh.victim} (${sh.victimRoles}); idle window ${sh.idleSeconds.toFixed(1)} s, load avg ${sh.loadavgBefore} -> ${sh.loadavgAfter}, other processes ${sh.machine.othersPctOfOneCore.toFixed(1)} % + steal ${sh.machine.stealPctOfOneCore.toFixed(1)} % of a core`);
    for (const note of sh.notes) console.log(`Shoal note: ${note}`);
    if (sh.detectMissing) console.log(`Shoal note: within ${DETECT_TIMEOUT_MS / 1000} s, never reported dead by ${sh.detectMissing.length} survivor(s): ${sh.detectMissing.join(',')} (failed polls: ${sh.detectPollErrors}; the victim's status in their last answers: ${Object.entries(sh.detectLastStatuses).map(([k, v]) => `${k} x${v}`).join(', ')})`);
  }
  if (sf) {
    console.log(`Serf: victim ${sf.victim}; idle window ${sf.idleSeconds.toFixed(1)} s, load avg ${sf.loadavgBefore} -> ${sf.loadavgAfter}, other processes ${sf.machine.othersPctOfOneCore.toFixed(1)} % + steal ${sf.machine.stealPctOfOneCore.toFixed(1)} % of a core`);
    for (const note of sf.notes) console.log(`Serf note: ${note}`);
    if (sf.detectMissing) console.log(`Serf note: within ${DETECT_TIMEOUT_MS / 1000} s, never reported dead by ${sf.detectMissing.length} survivor(s): ${sf.detectMissing.join(',')} (failed polls: ${sf.detectPollErrors}; the victim's status in their last answers: ${Object.entries(sf.detectLastStatuses).map(([k, v]) => `${k} x${v}`).join(', ')})`);
  }
}

function goals(results) {
  const sizes = results.map((x) => x.n);
  const sh = (n) => results.find((x) => x.n === n)?.shoal;
  const sf = (n) => results.find((x) => x.n === n)?.serf;
  const big = Math.max(...sizes);
  const small = Math.min(...sizes);
  const at = big === 50 ? 'at 50' : `at ${big} (largest size run; the goal is stated at 50)`;
  const out = [];
  const add = (goal, pass, detail) => out.push({ goal, pass: results.some((x) => x.shoal) ? pass : null, detail: results.some((x) => x.shoal) ? detail : 'Shoal not run' });

  const cpuOk = sizes.every((n) => sh(n) && sh(n).cpuPct.max <= GOAL_CPU_PCT);
  add(`idle CPU per agent <= ${GOAL_CPU_PCT} % of a core (max over non-leader agents, every size)`, cpuOk,
    sizes.map((n) => `${n}: max ${pct(sh(n)?.cpuPct.max)}, median ${pct(sh(n)?.cpuPct.median)}`).join('; '));
  const flat = ratio(sh(big)?.cpuPct.median, sh(small)?.cpuPct.median);
  add(`idle CPU flat from ${small} to ${big} (median at ${big} <= ${GOAL_FLAT}x median at ${small})`, sizes.length > 1 ? flat <= GOAL_FLAT : null,
    `${pct(sh(small)?.cpuPct.median)} -> ${pct(sh(big)?.cpuPct.median)} (x${rx(flat)})`);
  const rssOk = sizes.every((n) => sh(n) && sh(n).rssMb.maxAll <= GOAL_RSS_MB);
  add(`RSS <= ${GOAL_RSS_MB} MB per agent (max over all agents incl. leader, every size)`, rssOk,
    sizes.map((n) => `${n}: max ${mb(sh(n)?.rssMb.maxAll)}`).join('; '));
  // A client: the median agent of role "client" where there are some, else the median non-leader agent.
  const clientCpu = (x) => x?.byKind.client?.cpuMedian ?? x?.cpuPct.median;
  const leaderOk = sizes.every((n) => sh(n) && sh(n).cpuPct.leader <= GOAL_LEADER_X * clientCpu(sh(n)));
  add(`leader CPU <= ${GOAL_LEADER_X}x a client's (median "client" agent, or median non-leader where none; every size)`, leaderOk,
    sizes.map((n) => `${n}: leader ${pct(sh(n)?.cpuPct.leader)} = x${rx(ratio(sh(n)?.cpuPct.leader, clientCpu(sh(n))))} of ${pct(clientCpu(sh(n)))} (${sh(n)?.byKind.client ? 'clients' : 'non-leaders, no clients'})`).join('; '));
  const b = sh(big);
  add(`no election after formation ${at}`, b !== undefined && b.termIncrease === 0 && b.leaderChanges === 0,
    b ? `term ${b.termAtFormation ?? '?'} -> ${b.termAfterIdle ?? '?'}, ${b.leaderChanges} leader change(s)` : 'not run');
  const dr = ratio(sh(big)?.detectAllMs, sf(big)?.detectAllMs);
  add(`detection ${at} <= 1/3 of Serf's (every survivor reports it dead)`, sf(big) ? dr <= GOAL_DETECT_RATIO : null,
    `${s1(sh(big)?.detectAllMs)} vs ${s1(sf(big)?.detectAllMs)}: ratio ${rx(dr)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

/** The newest modification time among dist/'s files: the agent build that new agents will load. */
function distStamp() {
  let newest = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else newest = Math.max(newest, statSync(join(d, e.name)).mtimeMs);
    }
  };
  walk(join(ROOT, 'dist'));
  return new Date(newest).toISOString();
}

/** The commit of this tree, and whether src/ differs from it (dist/ is built from the working tree). */
function treeVersion() {
  const git = (...argv) => execFileSync('git', ['-C', ROOT, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--', 'src') ? ', src/ has uncommitted changes' : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

async function main() {
  if (!existsSync(join(ROOT, 'dist/cli/main.js')) || !existsSync(join(ROOT, 'dist/gen/proto.js'))) throw new Error('dist/ is not built: run `npm run build` first');
  const serfVersion = WITH_SERF ? run('serf', ['version']).split('\n')[0] : 'not run';
  const budget = SIZES.length * (WITH_SERF ? 2 : 1) * (SETTLE_S + IDLE_S);
  console.log(`# Idle cost and failure detection by cluster size, Shoal vs Serf, one after the other: sizes ${SIZES.join(',')}, settle ${SETTLE_S} s, idle window ${IDLE_S} s`);
  const dist0 = distStamp();
  console.log(`# Shoal: bin/shoal agent (this tree, ${treeVersion()}; dist/ built ${dist0}), peers on ${SHOAL_NET}.1..${SHOAL_NET}.${Math.max(...SIZES)}:${SHOAL_PEER_PORT}, --bootstrap-expect 3`);
  console.log(`# Serf: ${serfVersion}, -profile=lan, 127.0.0.1; ${Number(readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length)} cores, load avg ${loadavg()}; at least ${(budget / 60).toFixed(1)} min of settle + idle windows`);
  const results = [];
  for (const [k, n] of SIZES.entries()) {
    const order = k % 2 === 0 || !WITH_SERF ? ['shoal', 'serf'] : ['serf', 'shoal'];
    const entry = { n };
    for (const sys of order) {
      if ((sys === 'serf' && !WITH_SERF) || (sys === 'shoal' && !WITH_SHOAL)) continue;
      const t = performance.now();
      console.log(`# ${n} agents: ${sys} ...`);
      const distNow = distStamp();
      if (sys === 'shoal' && distNow !== dist0) console.log(`# WARNING: dist/ was rebuilt during this run (now ${distNow}): these agents run other code than the earlier sizes`);
      try {
        entry[sys] = sys === 'shoal' ? await runShoal(n) : await runSerf(n);
        if (sys === 'shoal') entry.shoal.dist = distNow;
      } catch (err) {
        console.log(`# ${n} agents: ${sys} failed: ${String(err.stack ?? err).split('\n').slice(0, 12).join('\n#   ')}`);
        entry[`${sys}Error`] = String(err.message ?? err).split('\n')[0];
      }
      console.log(`# ${n} agents: ${sys} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
      await sleep(2_000); // let the killed cluster's sockets and the page cache settle before the next
    }
    results.push(entry);
    printSize(n, entry.shoal, entry.serf);
  }

  console.log('');
  console.log('## Ratios Shoal/Serf by size');
  console.log(`${'size'.padEnd(6)}${'formation'.padStart(11)}${'CPU median'.padStart(12)}${'RSS median'.padStart(12)}${'detect all'.padStart(12)}`);
  for (const e of results) {
    console.log(`${String(e.n).padEnd(6)}${rx(ratio(e.shoal?.formationMs, e.serf?.formationMs)).padStart(11)}${rx(ratio(e.shoal?.cpuPct.median, e.serf?.cpuPct.median)).padStart(12)}` +
      `${rx(ratio(e.shoal?.rssMb.median, e.serf?.rssMb.median)).padStart(12)}${rx(ratio(e.shoal?.detectAllMs, e.serf?.detectAllMs)).padStart(12)}`);
  }

  const g = goals(results);
  console.log('');
  console.log('## Goals');
  for (const x of g) console.log(`${x.pass === null ? 'n/a ' : x.pass ? 'PASS' : 'FAIL'}  ${x.goal}: ${x.detail}`);
  console.log('');
  const round = (o) => JSON.parse(JSON.stringify(o, (_k, v) => (typeof v === 'number' ? (Number.isFinite(v) ? Number(v.toFixed(3)) : null) : v)));
  console.log(JSON.stringify(round({
    bench: 'scale-idle', at: new Date().toISOString(), sizes: SIZES, idleSeconds: IDLE_S, settleSeconds: SETTLE_S, serf: serfVersion, results, goals: g,
  })));
}

try {
  await main();
} catch (err) {
  console.error(`scale/idle: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
