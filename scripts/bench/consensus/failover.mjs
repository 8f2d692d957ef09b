// Raft side by side with real etcd (Debian's `etcd-server`, default heartbeat 100 ms / election 1000 ms, fsync on),
// both measured in the same run.
//
//   npm run build && node scripts/bench/consensus/failover.mjs [--runs 5] [--duration 10] [--deadline-ms 300]
//                                                                [--skip-failover] [--skip-throughput] [--verbose]
//                                                                [--steady 600 [--steady-concurrency 8]] [--idle-before-kill-ms 2000]
//
// Part 1, failover (--runs runs, alternating which system goes first): start three members on loopback, wait for a
// leader and a first successful write, find the leader (etcd: /v3/maintenance/status on every member, header.member_id
// == leader; Shoal: Operator/RaftState.leaderId matched to the ids the agents printed when ready), SIGKILL it by pid,
// then from one survivor issue writes in a loop, each with a short deadline (--deadline-ms) and retried at once on
// failure, and record the time from the kill until the first write succeeds. Prints all samples, both medians and the
// ratio Shoal/etcd. The issue's goal: Shoal <= 0.5 s (etcd here: about 1.3 s). Beside the writes, the other survivor
// is asked every 20 ms whom it takes for leader, which splits the time into "new leader known" and "write through";
// the failed writes are counted by error code (--verbose: with the agent's message, to see where they got stuck).
//
// Part 2, throughput and latency: a fresh 3-member group of each system; C concurrent writers (C = 1 and 64), each
// issuing its next write as soon as the previous one answered, for --duration seconds, through one member (etcd: the
// leader; Shoal: a follower, which forwards to the leader, and then the leader itself). Prints writes/s, p50 and p99
// latency of the successful writes, the errors, and the ratios Shoal/etcd.
//
// What "a write" is: etcd: `POST /v3/kv/put` on the JSON gateway (key bench/<writer>, 16-byte value), answered once
// the entry is committed by a quorum and applied. Shoal: `POST /rpc/shoal.v1.Operator/RaftBarrier` (JSON), answered
// once a barrier entry is committed through the leader. Both clients are the same Node fetch() with keep-alive, in
// this process; the etcd gateway adds an HTTP->gRPC hop inside etcd, Shoal's RPC is HTTP natively.
//
// Part 3, only with --steady SECONDS: the issue's "no spurious leader change during a 10-minute steady run under write
// load". Each system in turn, fresh group, --steady-concurrency writers (default 8) for SECONDS; every member is asked
// for (leader, term) every 250 ms and every change is counted (nobody is killed, so each one is spurious).
//
// Everything started here (etcd and Shoal processes, temp dirs) is killed/removed at the end, also on failure or ^C.
// Nothing here asserts on speed: this machine is shared and noisy.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { cleanup, freeUdpPort, keygen, kill, median, sleep, start, startShoal, tempDir, waitUntil } from '../lib/harness.mjs';
import { freeTcpPort, postJson } from '../lib/etcd.mjs';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt;
};
const RUNS = Number(opt('--runs', '5'));
const DURATION_S = Number(opt('--duration', '10'));
const WRITE_DEADLINE_MS = Number(opt('--deadline-ms', '300'));
const CONCURRENCY = opt('--concurrency', '1,64').split(',').map(Number);
const SKIP_FAILOVER = args.includes('--skip-failover');
const SKIP_THROUGHPUT = args.includes('--skip-throughput');
const VERBOSE = args.includes('--verbose');
// Idle time between the first write and the kill: with 2000, Shoal's group has gone quiet (no heartbeats; gossip's
// failure detector reports the leader's death), which is how an idle cluster loses its leader. 0: killed at once.
const IDLE_BEFORE_KILL_MS = Number(opt('--idle-before-kill-ms', '0'));
const MEMBERS = 3;
const FAILOVER_TIMEOUT_MS = 60_000;
const THROUGHPUT_DEADLINE_MS = 10_000;

// ---------------------------------------------------------------------------------------------------------------
// Bookkeeping of everything we start, so that it is removed whatever happens.



const quantile = (sorted, q) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]);
const fmtS = (ms) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(3)} s` : 'n/a');
const fmtMs = (ms) => (Number.isFinite(ms) ? `${ms.toFixed(2)} ms` : 'n/a');




const alive = (proc) => proc.child.exitCode === null && proc.child.signalCode === null;


// ---------------------------------------------------------------------------------------------------------------
// Systems. Each cluster object has: members [{name, proc, ...}], leader() -> member, write(member, deadlineMs) ->
// resolves on success / throws on failure, stop().

const ETCD_VALUE = Buffer.from('0123456789abcdef').toString('base64');

async function etcdCluster() {
  const dir = tempDir('etcd');
  const ports = [];
  for (let i = 1; i <= MEMBERS; i++) ports.push({ client: await freeTcpPort('127.0.0.1'), peer: await freeTcpPort('127.0.0.1') });
  const initial = ports.map((p, i) => `e${i + 1}=http://127.0.0.1:${p.peer}`).join(',');
  const token = `bench-${process.pid}-${Date.now()}`;
  const members = ports.map((p, i) => {
    const name = `e${i + 1}`;
    const proc = start('etcd', [
      '--name', name, '--data-dir', join(dir, name),
      '--listen-client-urls', `http://127.0.0.1:${p.client}`, '--advertise-client-urls', `http://127.0.0.1:${p.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${p.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', token,
      '--logger', 'zap', '--log-level', 'warn',
    ]);
    return { name, proc, url: `http://127.0.0.1:${p.client}` };
  });
  const cluster = {
    system: 'etcd',
    members,
    async status(m) {
      const r = await postJson(`${m.url}/v3/maintenance/status`, {}, 1_000);
      if (!r.ok) throw new Error(`etcd ${m.name} status: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async leader() {
      for (const m of members.filter((x) => alive(x.proc))) {
        const st = await cluster.status(m);
        m.id = st.header?.member_id;
        if (st.leader && st.leader !== '0' && st.header?.member_id === st.leader) return m;
      }
      return undefined;
    },
    /** {leaderId, term} as member m sees them ('' when it knows no leader). */
    async view(m) {
      const st = await cluster.status(m);
      return { leaderId: st.leader && st.leader !== '0' ? st.leader : '', term: Number(st.raftTerm ?? 0) };
    },
    async write(m, deadlineMs, key = 'bench/0') {
      const r = await postJson(`${m.url}/v3/kv/put`, { key: Buffer.from(key).toString('base64'), value: ETCD_VALUE }, deadlineMs);
      if (!r.ok || r.body.error !== undefined) throw new Error(`etcd put on ${m.name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
    },
    async stop() {
      await Promise.all(members.map((m) => kill(m.proc)));
    },
  };
  try {
    await waitUntil('etcd to elect a leader and accept a write', async () => {
      for (const m of members) if (!alive(m.proc)) throw new Error(`etcd ${m.name} exited\n${m.proc.output()}`);
      if (!(await cluster.leader())) return false;
      await cluster.write(members[0], 2_000);
      return true;
    });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}



/** Whether the tree's agents were checked for Operator/RaftBarrier (once, on the first cluster). */
let shoalHasBarrierChecked = false;

async function shoalCluster() {
  const dir = tempDir('shoal');
  const keyFile = keygen(dir);
  const firstPort = await freeUdpPort('127.0.0.101');
  const members = [];
  const cluster = {
    system: 'shoal',
    members,
    async raftState(m) {
      const r = await postJson(`${m.url}/rpc/shoal.v1.Operator/RaftState`, {}, 1_000);
      if (!r.ok) throw new Error(`shoal ${m.name} RaftState: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async leader() {
      for (const m of members.filter((x) => alive(x.proc))) {
        const st = await cluster.raftState(m);
        if (st.leaderId) return members.find((x) => x.id === st.leaderId && alive(x.proc));
      }
      return undefined;
    },
    async view(m) {
      const st = await cluster.raftState(m);
      return { leaderId: st.leaderId ?? '', term: Number(st.term ?? 0) };
    },
    async write(m, deadlineMs) {
      // The agent's own deadline is the same as ours; the client-side abort is a little later so that the agent's
      // typed error (ERR_NO_LEADER, ...) normally arrives first.
      const r = await postJson(`${m.url}/rpc/shoal.v1.Operator/RaftBarrier`, {}, deadlineMs + 50, { 'x-shoal-timeout-ms': String(deadlineMs) });
      if (!r.ok) throw new Error(`shoal RaftBarrier on ${m.name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
    },
    async stop() {
      await Promise.all(members.map((m) => kill(m.proc)));
    },
  };
  try {
    members.push(await startShoal({ name: 's1', dataDir: join(dir, 's1'), bind: `127.0.0.101:${firstPort}`, keyFile, extraArgs: ['--bootstrap-expect', String(MEMBERS)] }));
    const rest = [];
    for (let i = 2; i <= MEMBERS; i++) {
      rest.push(startShoal({ name: `s${i}`, dataDir: join(dir, `s${i}`), bind: `127.0.0.${100 + i}:0`, join: `127.0.0.101:${firstPort}`, keyFile, extraArgs: ['--bootstrap-expect', String(MEMBERS)] }));
    }
    members.push(...(await Promise.all(rest)));
    if (!shoalHasBarrierChecked) {
      // An agent built before Operator/RaftBarrier existed answers "unknown method": say so instead of timing out.
      const r = await postJson(`${members[0].url}/rpc/shoal.v1.Operator/RaftBarrier`, {}, 2_000, { 'x-shoal-timeout-ms': '1000' });
      if (r.status === 404 || r.body?.code === 'ERR_UNKNOWN_METHOD') {
        throw new Error(`this tree's agent does not serve Operator/RaftBarrier (HTTP ${r.status} ${JSON.stringify(r.body)}): rebuild with \`npm run build\``);
      }
      shoalHasBarrierChecked = true;
    }
    await waitUntil('the three Shoal agents to elect a Raft leader and commit a write', async () => {
      for (const m of members) if (!alive(m.proc)) throw new Error(`shoal agent ${m.name} exited\n${m.proc.output()}`);
      if (!(await cluster.leader())) return false;
      await cluster.write(members[0], 2_000);
      return true;
    });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

// ---------------------------------------------------------------------------------------------------------------
// Part 1: failover

/** A short name for why a write failed: the agent's error code, etcd's message, or the client's own deadline. */
function errorKind(err) {
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return 'client deadline';
  const msg = String(err?.message ?? err);
  const code = /"code":"(ERR_[A-Z_]+)"/.exec(msg);
  // The agent's message says where the deadline ran out (forwarding, waiting for a leader, ...); digits are
  // blanked so that messages group.
  const message = /"message":"([^"]{1,90})/.exec(msg);
  if (code) return VERBOSE && message ? `${code[1]} (${message[1].replace(/\d+/g, 'N')})` : code[1];
  const etcdMsg = /"(?:error|message)":"([^"]{1,60})/.exec(msg);
  if (etcdMsg) return etcdMsg[1];
  const http = /HTTP (\d+)/.exec(msg);
  return http ? `HTTP ${http[1]}` : msg.slice(0, 60);
}

async function failoverRun(make) {
  const cluster = await make();
  try {
    const leader = await cluster.leader();
    if (!leader) throw new Error(`${cluster.system}: no leader found`);
    const survivor = cluster.members.find((m) => m !== leader);
    const victimId = leader.id;
    let attempts = 0;
    let lastErr = '';
    const errorKinds = new Map();
    let done = false;
    let leaderSeenMs = NaN;
    let lastObserved = 'no answer';
    if (IDLE_BEFORE_KILL_MS > 0) await sleep(IDLE_BEFORE_KILL_MS);
    const t0 = performance.now();
    process.kill(leader.proc.child.pid, 'SIGKILL');
    // Beside the writes, the other survivor is asked every 20 ms whom it takes for leader: splits the failover time
    // into "a new leader is known" and "a write gets through". (Asking the writing survivor too would add load
    // to the member under test.)
    const observer = cluster.members.find((m) => m !== leader && m !== survivor);
    const poller = (async () => {
      while (!done) {
        const slot = performance.now();
        try {
          const v = await cluster.view(observer);
          lastObserved = `leader ${v.leaderId || '-'} term ${v.term} (victim ${victimId})`;
          if (v.leaderId && v.leaderId !== victimId) {
            leaderSeenMs = performance.now() - t0;
            return;
          }
        } catch (err) {
          // Busy or between leaders: ask again at the next slot.
          lastObserved = `error: ${String(err.message ?? err).slice(0, 120)}`;
        }
        await sleep(Math.max(0, 20 - (performance.now() - slot)));
      }
    })();
    try {
      for (;;) {
        attempts++;
        try {
          await cluster.write(survivor, WRITE_DEADLINE_MS);
          return { ms: performance.now() - t0, attempts, leader: leader.name, survivor: survivor.name, observer: observer.name, errorKinds, get leaderSeenMs() { return leaderSeenMs; }, get lastObserved() { return lastObserved; } };
        } catch (err) {
          lastErr = String(err.message ?? err);
          const kind = errorKind(err);
          errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
          const since = performance.now() - t0;
          if (since > FAILOVER_TIMEOUT_MS) return { ms: NaN, attempts, leader: leader.name, survivor: survivor.name, observer: observer.name, errorKinds, lastErr, get leaderSeenMs() { return leaderSeenMs; }, get lastObserved() { return lastObserved; } };
          // A refused or instantly failing write would spin: at most one attempt per 10 ms.
          await sleep(Math.max(0, 10 - (since % 10)));
        }
      }
    } finally {
      // The observer may learn of the new leader a little after the write got through: give it up to 3 s.
      await Promise.race([poller, sleep(3_000)]);
      done = true;
      await poller;
    }
  } finally {
    await cluster.stop();
  }
}

async function failover() {
  console.log(`# Part 1: failover. ${MEMBERS} members on loopback, SIGKILL the leader, time until a write from a survivor succeeds`);
  console.log(`#   (each write with a ${WRITE_DEADLINE_MS} ms deadline, retried at once on failure); ${RUNS} runs, alternating which system goes first`);
  const samples = { shoal: [], etcd: [] };
  const seen = { shoal: [], etcd: [] };
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 === 0 ? ['shoal', 'etcd'] : ['etcd', 'shoal'];
    for (const sys of order) {
      const r = await failoverRun(sys === 'shoal' ? shoalCluster : etcdCluster);
      samples[sys].push(r.ms);
      seen[sys].push(r.leaderSeenMs);
      console.log(`run ${i + 1}/${RUNS} ${sys.padEnd(5)} ${Number.isFinite(r.ms) ? fmtS(r.ms) : `no write within ${FAILOVER_TIMEOUT_MS / 1000} s (${r.lastErr})`}` +
        `  (killed ${r.leader}, wrote via ${r.survivor}, ${r.attempts} attempts; ${r.observer} knew the new leader at ${Number.isFinite(r.leaderSeenMs) ? fmtS(r.leaderSeenMs) : `n/a, last answer: ${r.lastObserved}`}; ` +
        `failed writes: ${[...r.errorKinds].map(([k, n]) => `${n} x ${k}`).join(', ') || 'none'})`);
    }
  }
  const list = (xs) => xs.map((x) => (Number.isFinite(x) ? (x / 1000).toFixed(3) : 'timeout')).join(', ');
  const ms = median(samples.shoal.filter(Number.isFinite));
  const me = median(samples.etcd.filter(Number.isFinite));
  console.log('');
  console.log(`shoal samples (s): ${list(samples.shoal)}`);
  console.log(`etcd  samples (s): ${list(samples.etcd)}`);
  console.log(`shoal median: ${fmtS(ms)}   (goal <= 0.5 s)`);
  console.log(`etcd  median: ${fmtS(me)}`);
  console.log(`ratio shoal/etcd: ${(ms / me).toFixed(3)}`);
  console.log(`new leader known to the other survivor, medians: shoal ${fmtS(median(seen.shoal.filter(Number.isFinite)))}, etcd ${fmtS(median(seen.etcd.filter(Number.isFinite)))}`);
  return { shoal: samples.shoal, etcd: samples.etcd, ms, me };
}

// ---------------------------------------------------------------------------------------------------------------
// Part 2: throughput and latency

async function load(cluster, member, concurrency, seconds) {
  const lat = [];
  let errors = 0;
  let firstErr = '';
  const end = performance.now() + seconds * 1000;
  const writer = async (w) => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        await cluster.write(member, THROUGHPUT_DEADLINE_MS, `bench/${w}`);
        lat.push(performance.now() - t);
      } catch (err) {
        errors++;
        if (!firstErr) firstErr = String(err.message ?? err).slice(0, 200);
        await sleep(10);
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => writer(w)));
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { writes: lat.length, perS: lat.length / elapsed, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), errors, firstErr };
}

async function throughput() {
  console.log('');
  console.log(`# Part 2: throughput and latency. ${MEMBERS}-member groups (fsync on in both), C concurrent writers for ${DURATION_S} s each, C in {${CONCURRENCY.join(', ')}}`);
  const rows = [];
  const line = (r) => console.log(`${r.label.padEnd(26)} C=${String(r.c).padStart(3)}  ${r.perS.toFixed(0).padStart(6)} writes/s  p50 ${fmtMs(r.p50).padStart(10)}  p99 ${fmtMs(r.p99).padStart(10)}  (${r.writes} writes, ${r.errors} errors${r.firstErr ? `: ${r.firstErr}` : ''})`);
  const etcd = await etcdCluster();
  try {
    const leader = await etcd.leader();
    for (const c of CONCURRENCY) {
      const r = { label: `etcd via leader ${leader.name}`, sys: 'etcd', via: 'leader', c, ...(await load(etcd, leader, c, DURATION_S)) };
      rows.push(r);
      line(r);
    }
  } finally {
    await etcd.stop();
  }
  const shoal = await shoalCluster();
  try {
    const leader = await shoal.leader();
    const follower = shoal.members.find((m) => m !== leader);
    for (const [via, m] of [['follower', follower], ['leader', leader]]) {
      for (const c of CONCURRENCY) {
        const r = { label: `shoal via ${via} ${m.name}`, sys: 'shoal', via, c, ...(await load(shoal, m, c, DURATION_S)) };
        rows.push(r);
        line(r);
      }
    }
    const after = await shoal.leader();
    if (after !== leader) console.log(`# NOTE: Shoal's leader changed during the load (${leader.name} -> ${after?.name ?? 'none'})`);
  } finally {
    await shoal.stop();
  }
  console.log('');
  for (const c of CONCURRENCY) {
    const e = rows.find((r) => r.sys === 'etcd' && r.c === c);
    for (const via of ['follower', 'leader']) {
      const s = rows.find((r) => r.sys === 'shoal' && r.via === via && r.c === c);
      if (!e || !s) continue;
      console.log(`ratio shoal(via ${via})/etcd C=${String(c).padStart(3)}: writes/s ${(s.perS / e.perS).toFixed(2)}, p50 ${(s.p50 / e.p50).toFixed(2)}, p99 ${(s.p99 / e.p99).toFixed(2)}`);
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// Part 3 (only with --steady SECONDS): leader stability under a steady write load. Nobody is killed, so every
// change of leader or term seen by any member is spurious.

async function steadyOne(make, seconds, concurrency) {
  const cluster = await make();
  try {
    const leader = await cluster.leader();
    const via = cluster.system === 'shoal' ? cluster.members.find((m) => m !== leader) : leader;
    const changes = [];
    const last = new Map();
    let polls = 0;
    let pollErrors = 0;
    let stop = false;
    const t0 = performance.now();
    const poller = (async () => {
      while (!stop) {
        const slot = performance.now();
        await Promise.all(cluster.members.map(async (m) => {
          try {
            const v = await cluster.view(m);
            polls++;
            const prev = last.get(m.name);
            if (prev && (prev.leaderId !== v.leaderId || prev.term !== v.term)) {
              changes.push(`+${((performance.now() - t0) / 1000).toFixed(1)} s ${m.name}: leader ${prev.leaderId.slice(0, 8) || '-'}/term ${prev.term} -> ${v.leaderId.slice(0, 8) || '-'}/term ${v.term}`);
            }
            last.set(m.name, v);
          } catch (_err) {
            pollErrors++;
          }
        }));
        await sleep(Math.max(0, 250 - (performance.now() - slot)));
      }
    })();
    const minute = setInterval(() => console.log(`#   ${cluster.system}: ${Math.round((performance.now() - t0) / 1000)} s, ${changes.length} leader/term changes so far`), 60_000);
    let r;
    try {
      r = await load(cluster, via, concurrency, seconds);
    } finally {
      clearInterval(minute);
      stop = true;
      await poller;
    }
    for (const m of cluster.members) if (!alive(m.proc)) changes.push(`${m.name} exited: ${m.proc.output()}`);
    return { system: cluster.system, via: `${via === leader ? 'leader' : 'follower'} ${via.name}`, changes, polls, pollErrors, ...r };
  } finally {
    await cluster.stop();
  }
}

async function steady(seconds, concurrency) {
  console.log('');
  console.log(`# Part 3: steady run. ${MEMBERS} members, ${concurrency} concurrent writers for ${seconds} s (Shoal through a follower, etcd through the leader);`);
  console.log('#   every member asked for (leader, term) every 250 ms; nobody is killed, so every change is spurious');
  for (const make of [shoalCluster, etcdCluster]) {
    const r = await steadyOne(make, seconds, concurrency);
    console.log(`${r.system.padEnd(5)} via ${r.via}: ${r.changes.length} leader/term changes${r.changes.length ? ` [${r.changes.join('; ')}]` : ''}; ` +
      `${r.perS.toFixed(0)} writes/s, p50 ${fmtMs(r.p50)}, p99 ${fmtMs(r.p99)}, ${r.errors} write errors${r.firstErr ? ` (${r.firstErr})` : ''}; ${r.polls} polls, ${r.pollErrors} poll errors`);
  }
}

// ---------------------------------------------------------------------------------------------------------------

const STEADY_S = args.includes('--steady') ? Number(opt('--steady', '600')) : undefined;
const STEADY_C = Number(opt('--steady-concurrency', '8'));

try {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is not built: run `npm run build` first');
  const etcdVersion = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (etcdVersion.status !== 0) throw new Error('etcd is not installed: apt-get install -y --no-install-recommends etcd-server etcd-client');
  if (!(RUNS > 0) || !(DURATION_S > 0) || !(WRITE_DEADLINE_MS > 0) || CONCURRENCY.some((c) => !(c > 0))) throw new Error('--runs, --duration, --deadline-ms and --concurrency need positive numbers');
  if (STEADY_S !== undefined && (!(STEADY_S > 0) || !(STEADY_C > 0))) throw new Error('--steady and --steady-concurrency need positive numbers');
  console.log(`# etcd: ${etcdVersion.stdout.split('\n')[0]} (defaults: heartbeat 100 ms, election 1000 ms); Shoal: bin/shoal agent (this tree), --bootstrap-expect ${MEMBERS}`);
  if (!SKIP_FAILOVER) await failover();
  if (!SKIP_THROUGHPUT) await throughput();
  if (STEADY_S !== undefined) await steady(STEADY_S, STEADY_C);
} catch (err) {
  console.error(`consensus bench: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
