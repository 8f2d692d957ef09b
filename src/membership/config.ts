/**
 * Membership timing and sizing, with defaults and the reasons for them (README.md has the table).
 *
 * Defaults aim at detecting a crashed member of a small LAN cluster in well under 2 s (Serf's LAN profile takes
 * about 6 s), without declaring a healthy but briefly stalled member dead. memberlist's LAN profile probes every
 * 1 s with a 500 ms timeout; on the links Shoal targets (a LAN or one data centre, round trips of a few ms) a
 * 100 ms ack timeout still leaves a wide margin, so we probe five times as often and lean on Lifeguard (local
 * health awareness, dynamic suspicion, buddy refutation) to keep false positives down.
 */
import { invariant } from '../lib/assert.js';
import { InvalidArgumentError } from '../lib/errors.js';

export interface MembershipConfig {
  /** Time between two probes of this node (one member per round), before Lifeguard scaling. */
  probeIntervalMs: number;
  /** Time to wait for a direct ack before asking `indirectChecks` members to probe, before Lifeguard scaling. */
  probeTimeoutMs: number;
  /** Members asked to probe a target that missed its direct ack (SWIM's k). */
  indirectChecks: number;
  /** An intermediary that got no ack from the target within this time answers the requester with a nack. */
  nackTimeoutMs: number;
  /** Time between two piggyback-only gossip rounds (only sent while rumours are queued). */
  gossipIntervalMs: number;
  /** Members a gossip round sends to. */
  gossipFanout: number;
  /** Each rumour is sent at most retransmitMult * ceil(log10(n + 1)) times by each node. */
  retransmitMult: number;
  /** Minimum suspicion timeout = suspicionMult * max(1, log10(n)) * probeIntervalMs. */
  suspicionMult: number;
  /** Maximum suspicion timeout = suspicionMaxTimeoutMult * minimum; it shrinks toward the minimum with confirmations. */
  suspicionMaxTimeoutMult: number;
  /** Lifeguard local health: probe interval and timeout are multiplied by (score + 1), score < this value. */
  awarenessMaxMultiplier: number;
  /** Time between two push-pull state exchanges with one random member (scaled up above 32 members). */
  pushPullIntervalMs: number;
  /** Time between two push-pull attempts with a random DEAD member, to merge a cluster back after a partition. */
  reconnectIntervalMs: number;
  /** A DEAD member is forgotten (a tombstone keeps its incarnation) after this long. */
  deadReapAfterMs: number;
  /** A LEFT member is forgotten (a tombstone keeps its incarnation) after this long. */
  leftReapAfterMs: number;
  /** A tick this much later than a failure-detection deadline means this node itself stalled (GC, stopped VM): its own deadlines move on. */
  stallThresholdMs: number;
  /** Members a leaving node tells directly, on top of the piggybacked rumour. */
  leaveFanout: number;
  /** While this node knows no live member but itself, it retries the seeds given to join() this often. */
  joinRetryIntervalMs: number;
}

export const DEFAULT_MEMBERSHIP_CONFIG: Readonly<MembershipConfig> = Object.freeze({
  probeIntervalMs: 200,
  probeTimeoutMs: 100,
  indirectChecks: 3,
  nackTimeoutMs: 80,
  gossipIntervalMs: 100,
  gossipFanout: 3,
  retransmitMult: 4,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  awarenessMaxMultiplier: 8,
  pushPullIntervalMs: 10_000,
  reconnectIntervalMs: 2_000,
  deadReapAfterMs: 3_600_000,
  leftReapAfterMs: 300_000,
  stallThresholdMs: 100,
  leaveFanout: 3,
  joinRetryIntervalMs: 1_000,
});

/**
 * What the agent runs (src/runtime/agent.ts): two thirds of the defaults' probe rate, so an idle agent wakes less
 * often for probes, with a shortest suspicion of 0.9 s up to 10 members (0.8 s with the defaults). Push-pull every
 * 30 s, as memberlist's LAN profile: rumours do the spreading, the full exchange only repairs what they missed.
 * Chosen in the simulator: a probe every 400 ms with suspicionMult 2 (same shortest suspicion as the defaults)
 * declared a healthy, pausing member DEAD in 4 of 200 `membership-false-positive` seeds; this one in none of 600,
 * and a crashed member of 5 is declared dead in 1.49 s (median of 60 seeds; defaults 1.19 s, Serf about 6 s).
 * The defaults stay what the unit tests were written against; the `-agent` scenarios run this one.
 */
export const AGENT_MEMBERSHIP_CONFIG: Readonly<Partial<MembershipConfig>> = Object.freeze({
  probeIntervalMs: 300,
  probeTimeoutMs: 150,
  nackTimeoutMs: 120,
  suspicionMult: 3,
  stallThresholdMs: 150,
  pushPullIntervalMs: 30_000,
});

/** Checks every value and the relations between them; throws InvalidArgumentError naming the field. */
export function validateMembershipConfig(config: MembershipConfig): void {
  for (const [name, value] of Object.entries(config)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidArgumentError(`membership config: ${name} must be a positive integer, got ${String(value)}`, { field: name });
    }
  }
  const rel = (ok: boolean, text: string, field: string): void => {
    if (!ok) throw new InvalidArgumentError(`membership config: ${text}`, { field });
  };
  rel(config.probeTimeoutMs < config.probeIntervalMs, `probeTimeoutMs (${config.probeTimeoutMs}) must be less than probeIntervalMs (${config.probeIntervalMs}), so indirect probes have time to answer`, 'probeTimeoutMs');
  rel(config.nackTimeoutMs < config.probeTimeoutMs, `nackTimeoutMs (${config.nackTimeoutMs}) must be less than probeTimeoutMs (${config.probeTimeoutMs}), so a nack arrives before the probe ends`, 'nackTimeoutMs');
  rel(config.indirectChecks <= 16, `indirectChecks (${config.indirectChecks}) must be at most 16`, 'indirectChecks');
  rel(config.gossipFanout <= 16, `gossipFanout (${config.gossipFanout}) must be at most 16`, 'gossipFanout');
  rel(config.suspicionMult >= 2, `suspicionMult (${config.suspicionMult}) must be at least 2`, 'suspicionMult');
  rel(config.suspicionMaxTimeoutMult >= 1, 'suspicionMaxTimeoutMult must be at least 1', 'suspicionMaxTimeoutMult');
  rel(config.awarenessMaxMultiplier >= 1 && config.awarenessMaxMultiplier <= 64, 'awarenessMaxMultiplier must be in [1, 64]', 'awarenessMaxMultiplier');
  rel(config.pushPullIntervalMs >= config.probeIntervalMs, 'pushPullIntervalMs must be at least probeIntervalMs', 'pushPullIntervalMs');
  rel(config.stallThresholdMs >= config.probeTimeoutMs, `stallThresholdMs (${config.stallThresholdMs}) must be at least probeTimeoutMs (${config.probeTimeoutMs}): a shorter delay is an ordinary late tick`, 'stallThresholdMs');
  rel(config.deadReapAfterMs > suspicionMinTimeoutMs(config, 2) * config.suspicionMaxTimeoutMult, 'deadReapAfterMs must exceed the longest suspicion timeout', 'deadReapAfterMs');
}

/** How many times each node sends one rumour, in a cluster of `members` members. */
export function retransmitLimit(retransmitMult: number, members: number): number {
  return retransmitMult * Math.ceil(Math.log10(Math.max(1, members) + 1));
}

/** The shortest suspicion timeout, reached once `expectedConfirmations` independent accusers have spoken. */
export function suspicionMinTimeoutMs(config: Pick<MembershipConfig, 'suspicionMult' | 'probeIntervalMs'>, members: number): number {
  return Math.round(config.suspicionMult * Math.max(1, Math.log10(Math.max(1, members))) * config.probeIntervalMs);
}

/**
 * Lifeguard's dynamic suspicion timeout: it starts at `maxMs` and falls toward `minMs` logarithmically as
 * independent confirmations arrive, reaching `minMs` at `expected` confirmations (k). The log makes the first
 * confirmations count most: one other accuser already says much more than the first one alone.
 */
export function suspicionTimeoutMs(confirmations: number, expected: number, minMs: number, maxMs: number): number {
  invariant(confirmations >= 0 && minMs > 0 && maxMs >= minMs, 'suspicionTimeoutMs: bad arguments', { confirmations, minMs, maxMs });
  if (expected < 1) return minMs;
  const fraction = Math.log(confirmations + 1) / Math.log(expected + 1);
  return Math.max(minMs, Math.floor(maxMs - fraction * (maxMs - minMs)));
}

/** Confirmations (besides the first accuser) that bring a suspicion to its minimum timeout, as memberlist does. */
export function expectedConfirmations(suspicionMult: number, members: number): number {
  const k = suspicionMult - 2;
  // In a tiny cluster there may not be k other members to confirm; then the timeout is simply the minimum.
  return members - 2 < k ? 0 : k;
}

/** memberlist's push-pull scaling: the interval grows with log2 of the cluster size above 32 members. */
export function pushPullIntervalForMs(pushPullIntervalMs: number, members: number): number {
  if (members <= 32) return pushPullIntervalMs;
  return Math.round(pushPullIntervalMs * (Math.ceil(Math.log2(members) - Math.log2(32)) + 1));
}
