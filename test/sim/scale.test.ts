// The scale scenario at CI size: a small and a large cluster (200 and 2,000 agents by default) with the same
// workload, so that what grows with the number of agents and what does not can be told apart, and the small one on
// a few seeds. Every run keeps the scenario's own checks: each client's slice is exactly its node's part of the state
// at every step and at the end (every allocation with its job record), nobody is declared DEAD, and the traffic
// bounds hold. The full-size run (5,000 agents, about 10 minutes) is `npm run sim -- --scenario scale`.
import t from 'tap';
import {
  GOSSIP_MSGS_PER_AGENT_BOUND_PER_S,
  LEADER_BYTES_PER_ALLOCATION_BOUND,
  LEADER_HEARTBEATS_PER_S,
  checkScaleBounds,
  runScale,
  type ScaleFigures,
  type ScaleOptions,
} from '../../src/scenarios/scale.js';

const SMALL = Number(process.env['SHOAL_SIM_SCALE_SMALL'] ?? 200);
const LARGE = Number(process.env['SHOAL_SIM_SCALE_LARGE'] ?? 2_000);
/** The size comparison runs on the first seed; every seed runs the small cluster with all of the scenario's checks. */
const SEEDS = (process.env['SHOAL_SIM_SCALE_SEEDS'] ?? '1,2,3').split(',').map(Number);
/** The same changes in both sizes: the leader's scheduling traffic must then be about the same. */
const ALLOCS = 2_000;
const COMMON: ScaleOptions = { idleMs: 1_000, settleUntilMs: 0, totalAllocs: ALLOCS, replicasPerJob: 500 };

const raftSlice = (f: ScaleFigures, phase: 'idle' | 'scheduling', what: 'msgs' | 'bytes'): number => f[phase].leader[what].raft + f[phase].leader[what].slice;
/** What the leader sent (raft + slice) over the whole scheduling phase. */
const schedulingTotal = (f: ScaleFigures, what: 'msgs' | 'bytes'): number => raftSlice(f, 'scheduling', what) * (f.scheduling.durationMs / 1000);
/** Gossip messages per agent besides push-pull (which the figures count apart). */
const nonPushPull = (f: ScaleFigures): number => f.idle.everyAgent.msgs.gossip;

const small = new Map<number, ScaleFigures>();
for (const seed of SEEDS) {
  t.test(`seed ${seed}: ${SMALL} agents keep every check (slices exact at every step and at the end, bounds)`, async (t) => {
    const f = runScale(seed, { ...COMMON, agents: SMALL }).figures;
    small.set(seed, f);
    t.equal(f.allocations, ALLOCS);
    t.equal(checkScaleBounds(f), undefined);
  });
}

t.test(`seed ${SEEDS[0]}: ${SMALL} vs ${LARGE} agents, ${ALLOCS} allocations each`, async (t) => {
  const s = small.get(SEEDS[0]!) ?? runScale(SEEDS[0]!, { ...COMMON, agents: SMALL }).figures;
  const l = runScale(SEEDS[0]!, { ...COMMON, agents: LARGE }).figures;
  t.comment(`idle leader raft+slice: ${raftSlice(s, 'idle', 'msgs').toFixed(1)} msgs/s at ${SMALL} agents, ${raftSlice(l, 'idle', 'msgs').toFixed(1)} at ${LARGE}`);
  t.comment(`scheduling leader raft+slice: ${Math.round(schedulingTotal(s, 'bytes'))} bytes at ${SMALL} agents, ${Math.round(schedulingTotal(l, 'bytes'))} at ${LARGE}`);
  t.equal(checkScaleBounds(l), undefined, 'the large run keeps the bounds');

  // Idle: the leader's Raft traffic is its heartbeats to the other servers, and it serves no slice watch
  // (clients watch the other servers), whatever the number of agents.
  for (const f of [s, l]) {
    t.ok(Math.abs(f.idle.leader.msgs.raft - LEADER_HEARTBEATS_PER_S) <= LEADER_HEARTBEATS_PER_S * 0.1, `${f.agents} agents: idle leader raft ${f.idle.leader.msgs.raft.toFixed(1)} msgs/s ≈ heartbeats ${LEADER_HEARTBEATS_PER_S.toFixed(1)}/s`);
    t.equal(f.idle.leader.msgs.slice, 0, `${f.agents} agents: the idle leader answers no slice watch`);
  }
  t.ok(raftSlice(l, 'idle', 'msgs') <= raftSlice(s, 'idle', 'msgs') * 1.1, 'idle leader raft+slice messages/s do not grow with the agents (10% tolerance)');
  t.ok(raftSlice(l, 'idle', 'bytes') <= raftSlice(s, 'idle', 'bytes') * 1.1, 'idle leader raft+slice bytes/s do not grow with the agents (10% tolerance)');

  // Gossip: SWIM's messages per agent are a constant per probe interval (push-pull, whose size grows with the
  // membership up to its cap, is counted apart).
  for (const f of [s, l]) {
    t.ok(nonPushPull(f) <= GOSSIP_MSGS_PER_AGENT_BOUND_PER_S, `${f.agents} agents: ${nonPushPull(f).toFixed(2)} gossip msgs/s per agent, within ${GOSSIP_MSGS_PER_AGENT_BOUND_PER_S}`);
    t.ok(f.idle.leader.msgs.gossip <= GOSSIP_MSGS_PER_AGENT_BOUND_PER_S, `${f.agents} agents: the leader gossips like any agent`);
  }
  t.ok(Math.abs(nonPushPull(l) - nonPushPull(s)) <= nonPushPull(s) * 0.2, `gossip msgs/s per agent: ${nonPushPull(s).toFixed(2)} at ${SMALL}, ${nonPushPull(l).toFixed(2)} at ${LARGE} (20% tolerance)`);

  // Scheduling the same allocations costs the leader about the same, whatever the number of agents.
  t.equal(l.allocations, ALLOCS);
  t.ok(schedulingTotal(l, 'bytes') <= schedulingTotal(s, 'bytes') * 1.25, 'the leader\'s raft+slice bytes while scheduling do not grow with the agents (25% tolerance)');
  for (const f of [s, l]) t.ok(f.leaderBytesPerAllocation <= LEADER_BYTES_PER_ALLOCATION_BOUND, `${f.agents} agents: ${Math.round(f.leaderBytesPerAllocation)} leader bytes per allocation`);
});

t.test(`the leader's scheduling traffic grows with the allocations placed (${SMALL} agents, ${ALLOCS} then ${2 * ALLOCS})`, async (t) => {
  const one = small.get(SEEDS[0]!) ?? runScale(SEEDS[0]!, { ...COMMON, agents: SMALL }).figures;
  const two = runScale(SEEDS[0]!, { ...COMMON, agents: SMALL, totalAllocs: 2 * ALLOCS }).figures;
  const ratio = schedulingTotal(two, 'bytes') / schedulingTotal(one, 'bytes');
  t.ok(ratio > 1.6 && ratio < 2.4, `twice the allocations, ${ratio.toFixed(2)}x the leader's bytes`);
});

t.test('a seed replays exactly', async (t) => {
  const options: ScaleOptions = { ...COMMON, agents: 60, totalAllocs: 300 };
  const a = runScale(7, options);
  const b = runScale(7, options);
  t.equal(a.hash, b.hash);
  t.equal(a.events, b.events);
  t.not(runScale(8, options).hash, a.hash);
});
