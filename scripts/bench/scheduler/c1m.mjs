#!/usr/bin/env node
// C1M-style scheduler benchmark, in one process against the pure scheduler and the state machine that applies its
// plans: N simulated nodes, M allocations placed from jobs of varied shapes. Prints placements per second (planning
// alone, and planning + applying the plans), peak memory, and the ratio against Nomad's published C1M figure
// (~3,750 placements/s across 5 servers). Goal: >= 16,000 placements/s on a 2-core machine.
//
// Usage: npm run build && node --max-old-space-size=8192 scripts/bench/scheduler/c1m.mjs [--nodes 5000] [--allocs 1000000]
import { performance } from 'node:perf_hooks';
import { ClusterState } from '../../../dist/state/index.js';
import { computePlan } from '../../../dist/scheduler/index.js';
import { Random } from '../../../dist/lib/random.js';
import { parseJobFile } from '../../../dist/jobspec/index.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const NODES = arg('nodes', 5000);
const ALLOCS = arg('allocs', 1_000_000);
const NOMAD_C1M_PER_S = 3750;
const GiB = 1024 ** 3;

const state = new ClusterState();
let index = 0;
const zones = ['z1', 'z2', 'z3', 'z4', 'z5'];
for (let i = 0; i < NODES; i++) {
  state.apply(++index, {
    type: 'node.upsert',
    node: {
      id: i.toString(16).padStart(64, '0'), name: `node-${i}`, address: '', roles: [],
      labels: { zone: zones[i % zones.length], rack: `r${i % 50}`, class: i % 10 === 0 ? 'big' : 'std' },
      capacity: { cpuMillicores: i % 10 === 0 ? 64_000 : 32_000, memoryBytes: (i % 10 === 0 ? 256 : 128) * GiB },
      drivers: i % 7 === 0 ? ['process'] : ['docker', 'process'],
    },
  });
}

// Job shapes, cycled: (replicas, yaml deploy block). Sized so that 1,000,000 allocations fill about half of the
// cluster's CPU (as in C1M, where the cluster had room for the whole load); a cluster with no room left measures
// how fast the scheduler says "no", which is another benchmark.
const shapes = [
  { replicas: 100, deploy: 'resources: { reservations: { cpus: 0.1, memory: 128M } }' },
  { replicas: 100, deploy: 'resources: { reservations: { cpus: 0.1, memory: 256M } }, placement: { constraints: ["node.labels.zone==z2"] }' },
  { replicas: 100, deploy: 'resources: { reservations: { cpus: 0.05, memory: 64M } }, placement: { preferences: [{ spread: node.labels.zone }] }' },
  { replicas: 100, deploy: 'resources: { reservations: { cpus: 0.02, memory: 32M } }, placement: { max_replicas_per_node: 1 }' },
  { replicas: 100, deploy: 'resources: { reservations: { cpus: 0.1, memory: 512M } }, placement: { constraints: ["node.labels.class!=big"] }' },
];
const jobs = [];
let planned = 0;
for (let j = 0; planned < ALLOCS; j++) {
  const shape = shapes[j % shapes.length];
  const replicas = Math.min(shape.replicas, ALLOCS - planned);
  planned += replicas;
  jobs.push(parseJobFile(`name: job-${j}\nservices:\n  svc:\n    image: app:${j}\n    deploy: { replicas: ${replicas}, ${shape.deploy} }\n`, { file: `job-${j}.yaml` }).job);
}

const random = Random.fromSeed(1);
let planMs = 0;
let placed = 0;
let failed = 0;
let peakRss = 0;
const started = performance.now();
const cpuStarted = process.cpuUsage();
let planCpuUs = 0;
for (const job of jobs) {
  const reg = state.apply(++index, { type: 'job.register', job });
  const evaluation = state.evaluation(reg.evalIds[0]);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const plan = computePlan(state, evaluation, random);
  planMs += performance.now() - t0;
  const c1 = process.cpuUsage(c0);
  planCpuUs += c1.user + c1.system;
  const res = state.apply(++index, { type: 'plan.apply', plan });
  if (!res.ok) throw new Error(`plan rejected: ${res.message}`);
  placed += plan.placements.length;
  for (const f of Object.values(plan.failedPlacements)) failed += f.missing;
  if (placed % 100_000 < 100) peakRss = Math.max(peakRss, process.memoryUsage().rss);
}
const totalMs = performance.now() - started;
const cpu = process.cpuUsage(cpuStarted);
const totalCpuS = (cpu.user + cpu.system) / 1e6;
peakRss = Math.max(peakRss, process.memoryUsage().rss);

const planRate = placed / (planMs / 1000);
const totalRate = placed / (totalMs / 1000);
console.log(`nodes=${NODES} jobs=${jobs.length} placed=${placed} unplaced=${failed}`);
console.log(`planning only:        ${Math.round(planRate).toLocaleString('en')} placements/s (${(planMs / 1000).toFixed(1)} s)`);
console.log(`planning + applying:  ${Math.round(totalRate).toLocaleString('en')} placements/s (${(totalMs / 1000).toFixed(1)} s)`);
console.log(`per CPU-second (robust to a busy machine): planning ${Math.round(placed / (planCpuUs / 1e6)).toLocaleString('en')}/s, planning + applying ${Math.round(placed / totalCpuS).toLocaleString('en')}/s`);
console.log(`peak RSS:             ${(peakRss / 1024 ** 2).toFixed(0)} MiB`);
console.log(`ratio vs Nomad C1M (${NOMAD_C1M_PER_S}/s, 5 servers): ${(totalRate / NOMAD_C1M_PER_S).toFixed(2)}x (planning + applying, 1 process)`);
console.log(`goal >= 16,000/s: ${totalRate >= 16_000 ? 'met' : 'NOT met'}`);
