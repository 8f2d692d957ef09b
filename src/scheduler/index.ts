export { SchedulerHarness } from './harness.js';
export { computePlan, requestOf, satisfies, nodeAttribute, DEFAULT_SCHEDULER_OPTIONS, type StateView, type SchedulerOptions } from './scheduler.js';
