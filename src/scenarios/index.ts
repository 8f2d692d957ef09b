/**
 * Every simulation scenario by name, for the seed runner (`npm run sim`) and the regression test.
 * Later cores (membership, consensus, scheduler, partitions) register theirs here.
 */
import type { Scenario } from '../sim/scenario.js';
import { CONTROL_PLANE_SCENARIOS } from './control-plane.js';
import { floodCounterScenario, floodCounterUnsafeScenario } from './flood-counter.js';
import { membershipScenarios, MEMBERSHIP_MUST_PASS } from './membership.js';
import { PARTITIONS_MUST_PASS, PARTITIONS_SCENARIOS } from './partitions.js';
import { RAFT_SCENARIOS, RAFT_MUST_PASS } from './raft-kv.js';
import { SCALE_SCENARIOS } from './scale.js';

export const SCENARIOS: ReadonlyMap<string, Scenario> = new Map(
  [floodCounterScenario, floodCounterUnsafeScenario, ...membershipScenarios, ...RAFT_SCENARIOS, ...CONTROL_PLANE_SCENARIOS, ...SCALE_SCENARIOS, ...PARTITIONS_SCENARIOS].map((s) => [s.name, s]),
);

/** Scenarios that must pass every seed (the unsafe toy is there to be caught, not to pass). */
export const MUST_PASS: readonly string[] = ['flood-counter', ...MEMBERSHIP_MUST_PASS, ...RAFT_MUST_PASS, ...PARTITIONS_MUST_PASS];
