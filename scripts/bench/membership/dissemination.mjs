// Simulated dissemination: how fast one rumour reaches 99.9% of 1,000 and 10,000 members, and what it costs in
// messages per member per second. Virtual time from the deterministic simulator (src/sim), so the figures do not
// depend on this machine's load; the seed is printed and replays exactly.
//
//   npm run build && node scripts/bench/membership/dissemination.mjs [--seeds 3]
//
// Three measurements:
//   1. "full": 1,000 real Membership cores (probing, gossip, push-pull, Lifeguard) in the simulator; node n1
//      updates its metadata and we time until the new incarnation is in 99.9% / 100% of the views.
//   2. "model": the same dissemination rules (the real BroadcastQueue and retransmit limit, piggybacking on probes
//      and acks, gossip rounds of gossipFanout) on nodes that keep no member views, so that 10,000 members fit in
//      memory (10,000 full views would be 10^8 member records). Run at 1,000 too, to check it against (1).
//   3. The same model with memberlist's LAN defaults (gossip 200 ms x 3, probe 1 s, retransmit mult 4), the
//      parameters behind Serf's convergence figure (99.99% of 1,000 nodes in 2.2 s), measured in this same run.
import { MembershipHarness } from '../../../dist/scenarios/membership.js';
import { BroadcastQueue, DEFAULT_MEMBERSHIP_CONFIG, retransmitLimit } from '../../../dist/membership/index.js';
import { Simulator } from '../../../dist/sim/simulator.js';
import { emptyMeta } from '../../../dist/membership/meta.js';

const args = process.argv.slice(2);
const seedsArg = args.indexOf('--seeds');
const SEEDS = seedsArg >= 0 ? Number(args[seedsArg + 1]) : 3;
const LAN = { delay: { kind: 'exponential', minMs: 0.2, meanExtraMs: 1 }, lossRate: 0 };
const MEMBERLIST_MODEL_MS = 2_200;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** (1) Full cores: time for n1's metadata update to reach 99.9% and 100% of 1,000 views. */
function full(seed, n) {
  const h = new MembershipHarness({ seed, nodes: n, warmStart: true, tickIntervalMs: 10, link: LAN });
  // Let the start-up gossip (every node announces itself once) die down, then measure a steady second.
  h.sim.runFor(4_000);
  const m0 = h.messagesSent;
  h.sim.runFor(1_000);
  const idleRate = (h.messagesSent - m0) / n;
  let reached = 1;
  let target = -1;
  const t = { p999: -1, p100: -1 };
  const need999 = Math.ceil(n * 0.999);
  const original = h.onEvent.bind(h);
  h.onEvent = (viewer, event) => {
    original(viewer, event);
    if (event.member.id === 'n1' && event.member.incarnation === target && event.kind === 'updated') {
      reached++;
      if (reached >= need999 && t.p999 < 0) t.p999 = h.sim.nowMs() - start;
      if (reached >= n && t.p100 < 0) t.p100 = h.sim.nowMs() - start;
    }
  };
  const n1 = h.node('n1');
  const start = h.sim.nowMs();
  const sentBefore = h.messagesSent;
  n1.membership.updateMeta({ ...emptyMeta(), name: 'n1', agentVersion: 'updated', addresses: ['n1.sim:7645'] });
  target = n1.membership.incarnation;
  n1.flush();
  h.sim.runUntilTrue(() => t.p999 >= 0, 20_000);
  const windowMs = Math.max(1, h.sim.nowMs() - start);
  const rate = (h.messagesSent - sentBefore) / n / (windowMs / 1000);
  h.sim.runUntilTrue(() => t.p100 >= 0, 20_000);
  return { p999: t.p999, p100: t.p100, rate, idleRate };
}

/** (2)/(3) Dissemination-only nodes with the real BroadcastQueue. */
class ModelNode {
  constructor(ctx, n, cfg, result) {
    this.ctx = ctx;
    this.n = n;
    this.cfg = cfg;
    this.result = result;
    this.queue = new BroadcastQueue(4_096);
    this.has = false;
    this.limit = retransmitLimit(cfg.retransmitMult, n);
    this.nextProbe = ctx.nowMs() + ctx.random.int(cfg.probeIntervalMs);
    this.nextGossip = ctx.nowMs() + ctx.random.int(cfg.gossipIntervalMs);
    this.index = Number(ctx.id.slice(1));
  }
  peer() {
    let p = this.ctx.random.int(this.n - 1);
    if (p >= this.index) p++;
    return `m${p}`;
  }
  piggyback() {
    return this.queue.take(8 * 1024 - 192, 1, this.limit);
  }
  send(to, msg) {
    this.result.messages++;
    this.ctx.send(to, msg);
  }
  tick() {
    const now = this.ctx.nowMs();
    if (now >= this.nextProbe) {
      this.nextProbe += this.cfg.probeIntervalMs;
      this.send(this.peer(), { kind: 'ping', rumours: this.piggyback() });
    }
    if (now >= this.nextGossip) {
      this.nextGossip += this.cfg.gossipIntervalMs;
      for (let i = 0; i < this.cfg.gossipFanout && this.queue.size > 0; i++) this.send(this.peer(), { kind: 'gossip', rumours: this.piggyback() });
    }
  }
  deliver(from, msg) {
    for (const r of msg.rumours) {
      if (!this.has) {
        this.has = true;
        this.queue.enqueue(r);
        this.result.onReach(this.ctx.nowMs());
      }
    }
    if (msg.kind === 'ping') this.send(from, { kind: 'ack', rumours: this.piggyback() });
  }
  inject(rumour) {
    this.has = true;
    this.queue.enqueue(rumour);
  }
}

function model(seed, n, cfg, tickIntervalMs) {
  const ids = Array.from({ length: n }, (_, i) => `m${i}`);
  const result = { messages: 0, reached: 1, p999: -1, p9999: -1, start: 0, onReach: undefined };
  const need999 = Math.ceil(n * 0.999);
  const need9999 = Math.ceil(n * 0.9999);
  result.onReach = (now) => {
    result.reached++;
    if (result.reached >= need999 && result.p999 < 0) result.p999 = now - result.start;
    if (result.reached >= need9999 && result.p9999 < 0) result.p9999 = now - result.start;
  };
  const sim = new Simulator({
    seed,
    nodeIds: ids,
    tickIntervalMs,
    link: LAN,
    messageSizeBytes: () => 100,
    describeMessage: (m) => `${m.kind}:${m.rumours.length}`,
    createNode: (ctx) => new ModelNode(ctx, n, cfg, result),
  });
  sim.runFor(1_000);
  const base = result.messages;
  sim.runFor(1_000);
  const idleRate = (result.messages - base) / n;
  result.start = sim.nowMs();
  const before = result.messages;
  sim.node('m0').inject({ kind: 'suspect', node: 'm1', incarnation: 1, from: 'm0' });
  sim.runUntilTrue(() => result.p999 >= 0, 30_000);
  const rate = (result.messages - before) / n / (Math.max(1, sim.nowMs() - result.start) / 1000);
  sim.runUntilTrue(() => result.p9999 >= 0, 30_000);
  return { p999: result.p999, p9999: result.p9999, rate, idleRate };
}

const MEMBERLIST_LAN = { probeIntervalMs: 1_000, gossipIntervalMs: 200, gossipFanout: 3, retransmitMult: 4 };
const fmt = (ms) => (ms < 0 ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);

console.log(`membership dissemination (simulated, LAN links 0.2 ms + exp(1 ms), no loss), ${SEEDS} seed(s), medians`);
console.log(`shoal defaults: probe ${DEFAULT_MEMBERSHIP_CONFIG.probeIntervalMs} ms, gossip ${DEFAULT_MEMBERSHIP_CONFIG.gossipIntervalMs} ms x ${DEFAULT_MEMBERSHIP_CONFIG.gossipFanout}, retransmit mult ${DEFAULT_MEMBERSHIP_CONFIG.retransmitMult}`);
const rows = [];
const seeds = Array.from({ length: SEEDS }, (_, i) => 1 + i);
{
  const rs = seeds.map((s) => full(s, 1_000));
  rows.push(['shoal full cores', 1_000, median(rs.map((r) => r.p999)), median(rs.map((r) => r.p100)), median(rs.map((r) => r.rate)), median(rs.map((r) => r.idleRate))]);
}
for (const n of [1_000, 10_000]) {
  const rs = seeds.map((s) => model(s, n, DEFAULT_MEMBERSHIP_CONFIG, 10));
  rows.push(['shoal model', n, median(rs.map((r) => r.p999)), median(rs.map((r) => r.p9999)), median(rs.map((r) => r.rate)), median(rs.map((r) => r.idleRate))]);
  const ml = seeds.map((s) => model(s, n, MEMBERLIST_LAN, 10));
  rows.push(['memberlist LAN model', n, median(ml.map((r) => r.p999)), median(ml.map((r) => r.p9999)), median(ml.map((r) => r.rate)), median(ml.map((r) => r.idleRate))]);
}
console.log('');
console.log(`${'run'.padEnd(22)} ${'members'.padStart(7)}  ${'99.9%'.padStart(8)}  ${'99.99%'.padStart(8)}  ${'msgs/member/s (rumour)'.padStart(22)}  ${'msgs/member/s (idle)'.padStart(20)}`);
for (const [name, n, p999, p9999, rate, idle] of rows) {
  console.log(`${name.padEnd(22)} ${String(n).padStart(7)}  ${fmt(p999).padStart(8)}  ${fmt(p9999).padStart(8)}  ${rate.toFixed(1).padStart(22)}  ${idle.toFixed(1).padStart(20)}`);
}
const ours1k = rows[0][3];
const ml1k = rows[2][3];
console.log('');
console.log(`99.99% of 1,000: shoal (full cores) ${fmt(ours1k)} vs memberlist LAN model in this run ${fmt(ml1k)}: ratio ${(ours1k / ml1k).toFixed(2)}`);
console.log(`99.99% of 1,000: shoal (full cores) ${fmt(ours1k)} vs Serf's published convergence model 2.20 s: ratio ${(ours1k / MEMBERLIST_MODEL_MS).toFixed(2)}`);
