export { Simulator, SimulationFailure, type SimNode, type SimNodeContext, type SimulatorOptions, type Invariant } from './simulator.js';
export { SimNetwork, CALM_LINK, type LinkConfig, type DelayModel, type Fate } from './network.js';
export { SimStorage, type CrashMode } from './storage.js';
export { Trace } from './trace.js';
export { EventQueue } from './event-queue.js';
export { type Scenario, type ScenarioResult, type ScenarioOptions, runSeed, runSeeds, type SeedReport } from './scenario.js';
export { scheduleNemesis, DEFAULT_NEMESIS, type NemesisOptions } from './nemesis.js';
export { checkLinearizable, kvModel, type Operation, type Model, type CheckResult, type KvInput, type KvOutput } from './linearizability.js';
