#!/usr/bin/env node
// Steady-state stability of the cluster's Raft group under write load: three agents on loopback, W concurrent
// writers committing barrier writes through the leader for D seconds, every agent's Raft state sampled every
// second. Prints writes/s, write latency percentiles, and the number of leader changes (the goal is zero: pre-vote
// and check-quorum must keep a healthy leader in place).
//
// Usage: npm run build && node scripts/bench/consensus/steady.mjs [--seconds 600] [--writers 8]
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freeUdpPort, keygen, startShoal, tempDir } from '../lib/harness.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 600);
const WRITERS = arg('writers', 8);
const dir = tempDir('steady');
const startAgent = (name, ip, port, joinAddr) => startShoal({
  name, dataDir: join(dir, name), bind: `${ip}:${port}`, join: joinAddr, keyFile: join(dir, 'cluster.key'), extraArgs: ['--bootstrap-expect', '3'],
});

async function rpc(api, method, timeoutMs = 2000) {
  const res = await fetch(`http://${api}/rpc/shoal.v1.Operator/${method}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-shoal-timeout-ms': String(timeoutMs) }, body: '{}', signal: AbortSignal.timeout(timeoutMs + 500) });
  const body = await res.json();
  if (!res.ok) throw Object.assign(new Error(body.message), { code: body.code });
  return body;
}

keygen(dir);
const port = await freeUdpPort('127.0.0.111');
const agents = [await startAgent('s1', '127.0.0.111', port)];
for (const i of [2, 3]) agents.push(await startAgent(`s${i}`, `127.0.0.11${i}`, 0, `127.0.0.111:${port}`));
let leaderApi;
for (;;) {
  const states = await Promise.all(agents.map((a) => rpc(a.api, 'RaftState').catch(() => ({}))));
  const leader = states.find((s) => s.role === 'leader');
  if (leader && states.every((s) => s.leaderId === leader.leaderId)) {
    leaderApi = agents[states.indexOf(leader)].api;
    break;
  }
  await new Promise((r) => setTimeout(r, 200));
}
const first = await rpc(agents[0].api, 'RaftState');
console.log(`cluster formed: leader ${first.leaderName}, term ${first.term}; ${WRITERS} writers for ${SECONDS} s`);

const latencies = [];
let errors = 0;
const end = performance.now() + SECONDS * 1000;
const writer = async () => {
  while (performance.now() < end) {
    const t0 = performance.now();
    try {
      await rpc(leaderApi, 'RaftBarrier', 2000);
      latencies.push(performance.now() - t0);
    } catch {
      errors++;
    }
  }
};
const leaders = new Set([first.leaderId]);
const terms = new Set([first.term]);
let samples = 0;
const sampler = (async () => {
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, 1000));
    const states = await Promise.all(agents.map((a) => rpc(a.api, 'RaftState').catch(() => undefined)));
    for (const s of states) {
      if (!s) continue;
      if (s.leaderId) leaders.add(s.leaderId);
      terms.add(s.term);
    }
    samples++;
  }
})();
await Promise.all([...Array.from({ length: WRITERS }, writer), sampler]);
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]?.toFixed(1);
console.log(`writes committed: ${latencies.length} (${(latencies.length / SECONDS).toFixed(0)}/s), failed: ${errors}`);
console.log(`latency p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`);
console.log(`samples: ${samples}; distinct leaders seen: ${leaders.size}; distinct terms seen: ${terms.size}; leader changes: ${leaders.size - 1}`);
process.exit(0);
